//! `cargo xtask vm-test`: run some of the integration-test binaries inside
//! Debian's stock cloud kernels under qemu (TCG), one boot per kernel, and
//! report pass/fail per kernel, probe set and test binary.
//!
//! The guest is an initramfs holding every binary at its host absolute path
//! (the tests have mntrace's path baked in and find the fixture next to
//! their own directory), busybox for the shell tools, and the host's
//! util-linux/coreutils tools whose exact behaviour the tests rely on.
//! `/init` copies that tree onto a fresh ext4 disk and switches root to it,
//! so that, as on a real node, `/tmp` (the tests' scratch trees) is a
//! directory of an ext4 root filesystem (the race test checks the fstype
//! and the mountinfo root of a bind of it); Go's toolchain is a second,
//! read-only disk (some tests build Go programs).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::cmd::{self, cargo, is_root, run, stdout_of};
use crate::setup;

/// Debian packages only `vm-test` needs: qemu (installing it replaces a
/// newer `qemu-utils`, which is accepted), cpio for the initramfs, kmod for
/// `depmod`/`modprobe --show-depends` over the extracted kernel's modules,
/// xz to decompress them (busybox `insmod` may not), e2fsprogs for the
/// guest's disks, binutils for `strip`.
const VM_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "e2fsprogs",
    "binutils",
];

/// A Debian 12 cloud kernel, pinned by package name (the newest listed by
/// `apt-cache search linux-image | grep cloud-amd64-unsigned` in 2026-11;
/// bump when the archive drops it).
struct Kernel {
    label: &'static str,
    package: &'static str,
}

const KERNELS: &[Kernel] = &[
    Kernel {
        label: "6.1",
        package: "linux-image-6.1.0-57-cloud-amd64-unsigned",
    },
    Kernel {
        label: "6.12",
        package: "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
    },
];

/// Modules the guest loads when they are not built in: overlayfs (the
/// replicas' layers), and virtio-pci + virtio-blk for the root and Go
/// disks. Their dependencies are added by `modprobe --show-depends`.
const MODULES: &[&str] = &["overlay", "virtio_pci", "virtio_blk"];

/// Host tools copied into the guest (with their libraries) instead of
/// busybox's applets: the tests pass util-linux options busybox lacks
/// (`unshare`, `setpriv`), and coreutils `rm` (`--one-file-system`, its
/// fd-based walk) is the deleter the tests model. The shell is the host's
/// `dash` too: busybox's `sh` runs its own `rm` applet in-process (comm
/// `sh`, path-based deletions) instead of coreutils' `rm`.
const HOST_TOOLS: &[&str] = &["unshare", "setpriv", "mount", "umount", "rm", "dash"];

/// Test targets run by default; one that does not exist yet is skipped.
const DEFAULT_TESTS: &[&str] = &[
    "race",
    "crossing",
    "uring",
    "rename",
    "kernel_probes",
    "guard",
];

/// Size of the guest's sparse root disk.
const ROOT_DISK_BYTES: u64 = 4 << 30;

/// `cargo xtask vm-test` options.
#[derive(clap::Args)]
pub struct VmTest {
    /// Kernel to boot (repeatable; default: all).
    #[arg(long = "kernel", value_parser = ["6.1", "6.12"])]
    kernels: Vec<String>,
    /// Probe set, passed as `MNTRACE_PROBES` (repeatable; default: all).
    #[arg(long = "set", value_parser = ["syscall", "kernel"])]
    sets: Vec<String>,
    /// Test target of the tracer package (repeatable; default: race,
    /// crossing, uring, rename and kernel_probes, those that exist).
    #[arg(long = "test")]
    tests: Vec<String>,
    /// Seconds one kernel's boot and runs may take before qemu is killed.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// `--test-threads` of each test binary.
    #[arg(long, default_value_t = 2)]
    test_threads: usize,
    /// Extra arguments for each test binary (after `--`), e.g. a filter.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

/// The binaries that go into the guest, at their host paths.
struct Payload {
    mntrace: PathBuf,
    fixture: PathBuf,
    /// (test target name, executable).
    tests: Vec<(String, PathBuf)>,
    /// Go's GOROOT, if Go is installed (its disk is then attached).
    goroot: Option<PathBuf>,
}

/// One kernel's extracted package.
struct Extracted {
    vmlinuz: PathBuf,
    /// `lib/modules/<version>` inside the extraction.
    root: PathBuf,
    version: String,
    config: String,
}

/// What one (set, test) run inside the guest came to.
struct RunResult {
    set: String,
    test: String,
    rc: Option<i32>,
    counts: Option<(u64, u64, u64)>,
    failures: Vec<String>,
    time: Option<Duration>,
}

/// One kernel's boot: what the guest said and how long things took.
struct Boot {
    label: &'static str,
    uname: Option<String>,
    timed_out: bool,
    to_init: Option<Duration>,
    total: Duration,
    runs: Vec<RunResult>,
}

/// Boots each kernel asked for and runs the tests in it; what failed, one
/// entry each (empty when everything passed).
fn run_all(opts: VmTest) -> Result<Vec<String>> {
    let start = Instant::now();
    setup::setup()?;
    setup::apt_install(VM_PACKAGES, is_root())?;
    let dir = cmd::target_dir().join("vm");
    fs::create_dir_all(dir.join("kernels"))?;

    let kernels: Vec<&Kernel> = KERNELS
        .iter()
        .filter(|k| opts.kernels.is_empty() || opts.kernels.iter().any(|l| l == k.label))
        .collect();
    let sets = if opts.sets.is_empty() {
        vec!["syscall".to_owned(), "kernel".to_owned()]
    } else {
        opts.sets.clone()
    };
    let tests = select_tests(&opts.tests)?;

    let t = Instant::now();
    let mut extracted = Vec::new();
    for kernel in &kernels {
        extracted.push(extract_kernel(kernel, &dir.join("kernels"))?);
    }
    println!("vm-test: kernels ready in {:.1?}", t.elapsed());

    let t = Instant::now();
    let payload = build_payload(&tests)?;
    println!("vm-test: payload built in {:.1?}", t.elapsed());
    let go_disk = payload
        .goroot
        .as_deref()
        .map(|goroot| go_disk(goroot, &dir))
        .transpose()?;

    let mut boots = Vec::new();
    for (kernel, ext) in kernels.iter().zip(&extracted) {
        let t = Instant::now();
        let initrd = build_initramfs(kernel, ext, &payload, &sets, &opts, &dir)?;
        let root_disk = root_disk(kernel, &dir)?;
        println!(
            "vm-test: {} initramfs ({} MiB) and root disk in {:.1?}",
            kernel.label,
            fs::metadata(&initrd)?.len() >> 20,
            t.elapsed()
        );
        let mut disks = vec![(root_disk, false)];
        disks.extend(go_disk.clone().map(|d| (d, true)));
        boots.push(boot(kernel, ext, &initrd, &disks, &opts, &dir)?);
    }

    let failures = report(&boots, &sets, &payload.tests);
    println!("vm-test: total {:.1?}", start.elapsed());
    Ok(failures)
}

/// `cargo xtask vm-test`: the exit code of [`run_all`].
pub fn vm_test(opts: VmTest) -> Result<ExitCode> {
    Ok(if run_all(opts)?.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A `vm-test` run as a step of `cargo xtask test`: its error names what
/// failed (kernel, set, test), so the step's summary says it.
pub fn step(args: &[&str]) -> Result<()> {
    let failures = run_all(step_opts(args)?)?;
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Parses [`VmTest`] from a step's argument list.
fn step_opts(args: &[&str]) -> Result<VmTest> {
    let cli = <VmTestCli as clap::Parser>::try_parse_from(
        std::iter::once("vm-test").chain(args.iter().copied()),
    )?;
    Ok(cli.opts)
}

#[derive(clap::Parser)]
struct VmTestCli {
    #[command(flatten)]
    opts: VmTest,
}

/// The test targets to run: those asked for (each must exist), or the
/// defaults that exist, naming the ones skipped.
fn select_tests(asked: &[String]) -> Result<Vec<String>> {
    let dir = cmd::workspace_root().join("tracer").join("tests");
    let exists = |name: &str| {
        dir.join(format!("{name}.rs")).is_file() || dir.join(name).join("main.rs").is_file()
    };
    if !asked.is_empty() {
        for name in asked {
            ensure!(exists(name), "no test target `{name}` in tracer/tests/");
        }
        return Ok(asked.to_vec());
    }
    let mut tests = Vec::new();
    for name in DEFAULT_TESTS {
        if exists(name) {
            tests.push((*name).to_owned());
        } else {
            println!("vm-test: note: default test `{name}` does not exist yet; skipped");
        }
    }
    Ok(tests)
}

/// Downloads (`apt-get download`) and extracts the kernel package once;
/// later runs reuse the extraction.
fn extract_kernel(kernel: &Kernel, dir: &Path) -> Result<Extracted> {
    let root = dir.join(kernel.package);
    if find_in(&root.join("boot"), "vmlinuz-")?.is_none() {
        let t = Instant::now();
        let download = || {
            run(Command::new("apt-get")
                .args(["download", kernel.package])
                .current_dir(dir))
        };
        // Package lists may be missing or older than the archive (a fresh
        // machine's set-up runs `apt-get update` only when it installs
        // something): update them once and retry.
        download()
            .or_else(|err| {
                eprintln!("vm-test: {err:#}; updating the package lists and retrying");
                run(Command::new("apt-get").arg("update"))?;
                download()
            })
            .with_context(|| {
                format!(
                    "downloading {} (if the archive no longer has it, bump KERNELS in \
                 xtask/src/vm.rs to what `apt-cache search cloud-amd64-unsigned` lists; \
                 or run `apt-get update`)",
                    kernel.package
                )
            })?;
        let deb = find_in(dir, &format!("{}_", kernel.package))?
            .with_context(|| format!("apt-get download left no {}_*.deb", kernel.package))?;
        let partial = dir.join(format!("{}.partial", kernel.package));
        remove_dir_if_any(&partial)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        fs::rename(&partial, &root)?;
        fs::remove_file(&deb)?;
        println!(
            "vm-test: {} downloaded and extracted in {:.1?}",
            kernel.label,
            t.elapsed()
        );
    }
    let vmlinuz = find_in(&root.join("boot"), "vmlinuz-")?.context("no boot/vmlinuz-*")?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz name")?
        .to_owned();
    let config = fs::read_to_string(root.join("boot").join(format!("config-{version}")))
        .context("reading the kernel's boot/config-*")?;
    Ok(Extracted {
        vmlinuz,
        root,
        version,
        config,
    })
}

/// The first entry of `dir` whose name starts with `prefix` (None if `dir`
/// does not exist).
fn find_in(dir: &Path, prefix: &str) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn remove_dir_if_any(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Builds the fixture, mntrace and the test binaries (debug, as `cargo
/// test` does) and finds Go.
fn build_payload(tests: &[String]) -> Result<Payload> {
    let root = cmd::workspace_root();
    let built = cargo_executables(
        cargo().current_dir(&root).args([
            "build",
            "-p",
            "mntrace-fixture",
            "-p",
            "tracer",
            "--bin",
            "mntrace",
            "--bin",
            "mntrace-fixture",
        ]),
        "bin",
    )?;
    let find = |name: &str| {
        built
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .with_context(|| format!("cargo built no `{name}` executable"))
    };
    let (mntrace, fixture) = (find("mntrace")?, find("mntrace-fixture")?);
    let mut test_cmd = cargo();
    test_cmd
        .current_dir(&root)
        .args(["test", "-p", "tracer", "--no-run"]);
    for test in tests {
        test_cmd.args(["--test", test]);
    }
    let mut built_tests = cargo_executables(&mut test_cmd, "test")?;
    // Run them in the order asked for.
    built_tests.sort_by_key(|(name, _)| tests.iter().position(|t| t == name));
    let tests = built_tests;
    // The tests look for the fixture at <test exe dir>/../mntrace-fixture.
    for (name, exe) in &tests {
        let expected = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("mntrace-fixture"));
        ensure!(
            expected.as_deref() == Some(&fixture),
            "test `{name}` ({}) would not find the fixture at {}",
            exe.display(),
            fixture.display()
        );
    }
    let goroot =
        stdout_of(Command::new("go").args(["env", "GOROOT"]))?.map(|s| PathBuf::from(s.trim()));
    if goroot.is_none() {
        println!("vm-test: note: no `go` on the host; tests that build Go programs will fail");
    }
    Ok(Payload {
        mntrace,
        fixture,
        tests,
        goroot,
    })
}

/// Runs a cargo build with `--message-format=json` and returns the
/// (target name, executable) of every artifact of targets of `kind`
/// (`bin`, `test`).
fn cargo_executables(cmd: &mut Command, kind: &str) -> Result<Vec<(String, PathBuf)>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    eprintln!("+ {}", cmd::display(cmd));
    let out = cmd
        .spawn()
        .and_then(|child| child.wait_with_output())
        .with_context(|| format!("running `{}`", cmd::display(cmd)))?;
    ensure!(out.status.success(), "`{}` failed", cmd::display(cmd));
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if !msg["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == kind))
        {
            continue;
        }
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            exes.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    Ok(exes)
}

/// A read-only ext4 image of GOROOT, made once and reused. Debian's GOROOT
/// links `src` and others to /usr/share, so the image is made from a copy
/// with the links followed.
fn go_disk(goroot: &Path, dir: &Path) -> Result<PathBuf> {
    let name = goroot.file_name().context("GOROOT name")?.to_string_lossy();
    let image = dir.join(format!("{name}.img"));
    if !image.exists() {
        let copy = dir.join(format!("{name}.root"));
        remove_dir_if_any(&copy)?;
        run(Command::new("cp").arg("-rL").arg(goroot).arg(&copy))?;
        let partial = image.with_extension("partial");
        let size = dir_size(&copy)? * 3 / 2 + (64 << 20);
        make_ext4(&partial, size, Some(&copy))?;
        fs::remove_dir_all(&copy)?;
        fs::rename(&partial, &image)?;
    }
    Ok(image)
}

/// Bytes of the files under `dir` (links not followed).
fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// A fresh, sparse ext4 image for the guest's root.
fn root_disk(kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    let image = dir.join(format!("{}-root.img", kernel.label));
    let _ = fs::remove_file(&image);
    make_ext4(&image, ROOT_DISK_BYTES, None)?;
    Ok(image)
}

/// `mkfs.ext4` on a sparse file of `size` bytes, filled from `content`.
fn make_ext4(image: &Path, size: u64, content: Option<&Path>) -> Result<()> {
    fs::File::create(image)?.set_len(size)?;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"]);
    if let Some(content) = content {
        mkfs.arg("-d").arg(content);
    }
    run(mkfs.arg(image))
}

/// Stages the guest's file tree (in `target/vm/<label>-initramfs/`) and
/// packs it into an uncompressed newc cpio: nothing for the emulated CPU to
/// decompress (a gzip one was not measured).
fn build_initramfs(
    kernel: &Kernel,
    ext: &Extracted,
    payload: &Payload,
    sets: &[String],
    opts: &VmTest,
    dir: &Path,
) -> Result<PathBuf> {
    let stage = dir.join(format!("{}-initramfs", kernel.label));
    remove_dir_if_any(&stage)?;
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "etc", "modules",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )?;
    fs::write(stage.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    let mut libs = BTreeSet::new();
    for exe in [&payload.mntrace, &payload.fixture]
        .into_iter()
        .chain(payload.tests.iter().map(|(_, exe)| exe))
    {
        copy_stripped(exe, &stage)?;
        libs.extend(shared_libs(exe)?);
    }
    for tool in HOST_TOOLS {
        let path = which(tool)?;
        copy_stripped(&path, &stage)?;
        libs.extend(shared_libs(&path)?);
    }
    for lib in &libs {
        copy_stripped(lib, &stage)?;
    }
    install_busybox(&stage)?;
    let modules = stage_modules(ext, &stage)?;
    let init = init_script(kernel, payload, &modules, sets, opts);
    let init_path = stage.join("init");
    fs::write(&init_path, init)?;
    fs::set_permissions(&init_path, fs::Permissions::from_mode(0o755))?;

    let archive = dir.join(format!("{}.cpio", kernel.label));
    run(Command::new("sh")
        .args(["-c", r#"find . | cpio --quiet -o -H newc -R 0:0 > "$0""#])
        .arg(&archive)
        .current_dir(&stage))?;
    Ok(archive)
}

/// `which NAME`, resolved to the real file.
fn which(name: &str) -> Result<PathBuf> {
    let out = stdout_of(Command::new("which").arg(name))?
        .with_context(|| format!("`{name}` not found on the host"))?;
    Ok(fs::canonicalize(out.trim())?)
}

/// Copies `src` to the same absolute path under `stage`, without debug
/// info (the test binaries' is most of their size).
fn copy_stripped(src: &Path, stage: &Path) -> Result<()> {
    let dst = stage.join(src.strip_prefix("/").context("absolute path")?);
    fs::create_dir_all(dst.parent().context("parent")?)?;
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&dst)
        .arg(src)
        .output()
        .context("running strip")?;
    ensure!(
        out.status.success(),
        "strip --strip-debug {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The shared libraries and dynamic loader `ldd` lists for `exe` (none for
/// a static one).
fn shared_libs(exe: &Path) -> Result<Vec<PathBuf>> {
    let Some(out) = stdout_of(Command::new("ldd").arg(exe))? else {
        return Ok(Vec::new());
    };
    Ok(out
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// The static busybox and a symlink per applet, except where a host tool
/// was copied.
fn install_busybox(stage: &Path) -> Result<()> {
    let busybox = which("busybox")?;
    fs::copy(&busybox, stage.join("bin/busybox"))?;
    let list =
        stdout_of(Command::new(&busybox).arg("--list-full"))?.context("busybox --list-full")?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        let link = stage.join(applet);
        if HOST_TOOLS.contains(&name) || name == "sh" || link.exists() {
            continue;
        }
        fs::create_dir_all(link.parent().context("parent")?)?;
        symlink("/bin/busybox", &link)?;
    }
    // `sh` is the host's dash (see `HOST_TOOLS`).
    symlink(which("dash")?, stage.join("bin/sh"))?;
    Ok(())
}

/// Resolves `MODULES` and their dependencies (in load order) with
/// `depmod`/`modprobe --show-depends` on the extracted package, and puts
/// them, decompressed, in `/modules`. Returns their guest paths in order.
fn stage_modules(ext: &Extracted, stage: &Path) -> Result<Vec<String>> {
    if !ext
        .root
        .join("lib/modules")
        .join(&ext.version)
        .join("modules.dep")
        .exists()
    {
        run(Command::new("depmod")
            .arg("-b")
            .arg(&ext.root)
            .arg(&ext.version))?;
    }
    let out = stdout_of(
        Command::new("modprobe")
            .arg("-d")
            .arg(&ext.root)
            .args(["-S", &ext.version, "--show-depends", "-a"])
            .args(MODULES),
    )?
    .context("modprobe --show-depends failed")?;
    let mut guest = Vec::new();
    for line in out.lines() {
        let Some(path) = line
            .strip_prefix("insmod ")
            .and_then(|r| r.split_whitespace().next())
        else {
            continue; // `builtin NAME`
        };
        let name = Path::new(path)
            .file_name()
            .context("module name")?
            .to_string_lossy();
        let name = name.trim_end_matches(".xz").to_owned();
        let target = format!("/modules/{name}");
        if guest.contains(&target) {
            continue;
        }
        let dst = stage.join(target.trim_start_matches('/'));
        if path.ends_with(".xz") {
            let out = Command::new("xz").args(["-dc", path]).output()?;
            ensure!(out.status.success(), "xz -dc {path} failed");
            fs::write(&dst, out.stdout)?;
        } else {
            fs::copy(path, &dst)?;
        }
        guest.push(target);
    }
    Ok(guest)
}

/// Quotes `s` for the guest's shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `/init`. Run from the initramfs: load the modules, copy
/// the tree onto the root disk and switch root to it, running itself again
/// as `/init stage2`, which mounts the pseudo filesystems and the Go disk,
/// prints what the kernel is, runs every (set, test) between markers and
/// powers off.
fn init_script(
    kernel: &Kernel,
    payload: &Payload,
    modules: &[String],
    sets: &[String],
    opts: &VmTest,
) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n\
         if [ \"$1\" != stage2 ]; then\n\
         mount -t devtmpfs devtmpfs /dev\n",
    );
    for module in modules {
        let _ = writeln!(s, "insmod {module}");
    }
    s += "mkdir /newroot && mount -t ext4 /dev/vda /newroot\n\
          for f in /*; do case $f in /newroot|/dev|/proc|/sys) ;; *) cp -a $f /newroot/ ;; esac; done\n\
          mkdir -p /newroot/dev /newroot/proc /newroot/sys && chmod 1777 /newroot/tmp\n\
          mount --move /dev /newroot/dev\n\
          exec switch_root /newroot /init stage2\n\
          fi\n\
          mount -t proc proc /proc\n\
          mount -t sysfs sysfs /sys\n\
          mount -t tmpfs tmpfs /run\n\
          mount -t securityfs securityfs /sys/kernel/security\n\
          mount -t tracefs tracefs /sys/kernel/tracing\n\
          mount -t debugfs debugfs /sys/kernel/debug\n\
          mount -t bpf bpf /sys/fs/bpf\n\
          mount -t cgroup2 cgroup2 /sys/fs/cgroup\n";
    if let Some(goroot) = &payload.goroot {
        let goroot = sh_quote(&goroot.to_string_lossy());
        let _ = writeln!(
            s,
            "mkdir -p {goroot} && mount -t ext4 -o ro /dev/vdb {goroot} && ln -sf {goroot}/bin/go /usr/bin/go"
        );
    }
    s += "echo \"=== VMTEST UNAME $(uname -r)\"\n\
          echo \"=== VMTEST LSM $(cat /sys/kernel/security/lsm)\"\n\
          echo \"=== VMTEST BTF $(test -e /sys/kernel/btf/vmlinux && echo yes || echo no)\"\n\
          cd /tmp\n";
    let extra: String = opts
        .args
        .iter()
        .map(|a| format!(" {}", sh_quote(a)))
        .collect();
    // `MNTRACE_EXPECT_BPF_LSM`: the kernel line adds `bpf` to the LSMs
    // (`kernel_cmdline`), so the tests of `--guard deny` must find it on.
    for set in sets {
        for (test, exe) in &payload.tests {
            let id = format!("{} {set} {test}", kernel.label);
            let _ = writeln!(
                s,
                "echo '=== VMTEST BEGIN {id}'\n\
                 MNTRACE_PROBES={set} MNTRACE_EXPECT_BPF_LSM=1 RUST_BACKTRACE=1 {} --test-threads={}{extra}\n\
                 echo \"=== VMTEST END {id} rc=$?\"",
                sh_quote(&exe.to_string_lossy()),
                opts.test_threads,
            );
        }
    }
    s += "sync\npoweroff -f\n";
    s
}

/// `console=ttyS0 panic=-1 quiet` and the kernel's own default LSM list
/// (CONFIG_LSM) with `bpf` appended if missing, so BPF LSM is on.
fn kernel_cmdline(config: &str) -> String {
    let lsm = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_LSM="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    let mut list: Vec<&str> = lsm.split(',').filter(|s| !s.is_empty()).collect();
    if !list.contains(&"bpf") {
        list.push("bpf");
    }
    format!("console=ttyS0 panic=-1 quiet lsm={}", list.join(","))
}

/// Boots one kernel under TCG (the host's /dev/kvm cannot run a stock
/// kernel), streams the serial console to `target/vm/<label>.log` and the
/// terminal, kills qemu after `--timeout`, and parses what ran.
fn boot(
    kernel: &'static Kernel,
    ext: &Extracted,
    initrd: &Path,
    disks: &[(PathBuf, bool)],
    opts: &VmTest,
    dir: &Path,
) -> Result<Boot> {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-m",
        "2G",
        "-nographic",
        "-no-reboot",
    ])
    .args(["-nic", "none", "-kernel"])
    .arg(&ext.vmlinuz)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", &kernel_cmdline(&ext.config)]);
    for (disk, read_only) in disks {
        let ro = if *read_only { ",readonly=on" } else { "" };
        qemu.arg("-drive")
            .arg(format!("file={},format=raw,if=virtio{ro}", disk.display()));
    }
    qemu.stdin(Stdio::null()).stdout(Stdio::piped());
    eprintln!("+ {}", cmd::display(&qemu));
    let start = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("starting `{}`", cmd::display(&qemu)))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let log_path = dir.join(format!("{}.log", kernel.label));
    let mut log = fs::File::create(&log_path)?;
    let reader = thread::spawn(move || {
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        let mut stdout = BufReader::new(stdout);
        while stdout.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            let _ = log.write_all(&buf);
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            println!("[{}] {line}", kernel.label);
            lines.push((start.elapsed(), line));
            buf.clear();
        }
        lines
    });
    let deadline = start + Duration::from_secs(opts.timeout);
    let mut timed_out = false;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            println!(
                "vm-test: {}: timed out after {}s; killing qemu",
                kernel.label, opts.timeout
            );
            child.kill()?;
            child.wait()?;
            timed_out = true;
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("console reader panicked"))?;
    println!(
        "vm-test: {} console log: {}",
        kernel.label,
        log_path.display()
    );
    Ok(parse_console(
        kernel.label,
        &lines,
        timed_out,
        start.elapsed(),
    ))
}

/// Reads the markers `/init` printed, the libtest summaries and failing
/// test names between them, and times each run by the host's clock.
fn parse_console(
    label: &'static str,
    lines: &[(Duration, String)],
    timed_out: bool,
    total: Duration,
) -> Boot {
    let mut boot = Boot {
        label,
        uname: None,
        timed_out,
        to_init: None,
        total,
        runs: Vec::new(),
    };
    let mut current: Option<(Duration, RunResult)> = None;
    for (at, line) in lines {
        if let Some(marker) = line.find("=== VMTEST ").map(|i| &line[i + 11..]) {
            boot.to_init.get_or_insert(*at);
            let mut words = marker.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("UNAME"), Some(uname), ..) => boot.uname = Some(uname.to_owned()),
                (Some("BEGIN"), Some(_), Some(set), Some(test)) => {
                    let run = RunResult {
                        set: set.to_owned(),
                        test: test.to_owned(),
                        rc: None,
                        counts: None,
                        failures: Vec::new(),
                        time: None,
                    };
                    current = Some((*at, run));
                }
                (Some("END"), ..) => {
                    if let Some((began, mut run)) = current.take() {
                        run.rc = words
                            .next()
                            .and_then(|w| w.strip_prefix("rc="))
                            .and_then(|rc| rc.parse().ok());
                        run.time = Some(*at - began);
                        boot.runs.push(run);
                    }
                }
                _ => {}
            }
        } else if let Some((_, run)) = current.as_mut() {
            if let Some(summary) = line.find("test result: ").map(|i| &line[i..]) {
                run.counts = libtest_counts(summary);
            } else if let Some(name) = failed_test(line) {
                run.failures.push(name);
            }
        }
    }
    if let Some((_, run)) = current {
        boot.runs.push(run); // cut off: no END
    }
    boot
}

/// `test result: FAILED. 7 passed; 1 failed; 0 ignored; ...` →
/// (passed, failed, ignored).
fn libtest_counts(summary: &str) -> Option<(u64, u64, u64)> {
    let count = |what: &str| {
        summary.split(';').find_map(|part| {
            let mut words = part.split_whitespace().rev();
            (words.next()? == what)
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
    };
    Some((count("passed")?, count("failed")?, count("ignored")?))
}

/// `test NAME ... FAILED` → NAME (output of other threads may precede it on
/// the line).
fn failed_test(line: &str) -> Option<String> {
    let head = line.strip_suffix(" ... FAILED")?;
    let start = head.rfind("test ")?;
    Some(head[start + 5..].to_owned())
}

/// Prints the table and the failing tests; returns what failed (kernel,
/// set, test and name, or why a run has no result), empty when every
/// expected run passed.
fn report(boots: &[Boot], sets: &[String], tests: &[(String, PathBuf)]) -> Vec<String> {
    println!();
    for boot in boots {
        println!(
            "vm-test: {} ({}): boot to /init {}, whole boot {:.1?}{}",
            boot.label,
            boot.uname.as_deref().unwrap_or("uname unknown"),
            boot.to_init
                .map_or("never".to_owned(), |d| format!("{d:.1?}")),
            boot.total,
            if boot.timed_out { ", TIMED OUT" } else { "" }
        );
    }
    println!(
        "\n{:<7} {:<28} {:<8} {:<16} {:<8} {:>6} {:>6} {:>7} {:>9}",
        "kernel", "uname -r", "set", "test", "result", "passed", "failed", "ignored", "time"
    );
    let mut failures = Vec::new();
    for boot in boots {
        for set in sets {
            for (test, _) in tests {
                let run = boot.runs.iter().find(|r| &r.set == set && &r.test == test);
                let result = match run {
                    None if boot.timed_out => "timeout",
                    None => "missing",
                    Some(r) if r.rc.is_none() && boot.timed_out => "timeout",
                    Some(r) if r.rc == Some(0) && r.counts.is_some_and(|c| c.1 == 0) => "ok",
                    Some(_) => "FAILED",
                };
                let counts = run.and_then(|r| r.counts);
                let num = |f: fn((u64, u64, u64)) -> u64| {
                    counts.map_or("-".to_owned(), |c| f(c).to_string())
                };
                println!(
                    "{:<7} {:<28} {:<8} {:<16} {:<8} {:>6} {:>6} {:>7} {:>9}",
                    boot.label,
                    boot.uname.as_deref().unwrap_or("?"),
                    set,
                    test,
                    result,
                    num(|c| c.0),
                    num(|c| c.1),
                    num(|c| c.2),
                    run.and_then(|r| r.time)
                        .map_or("-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64())),
                );
                if run.is_none() && result != "ok" {
                    failures.push(format!(
                        "{} {set} {test}: {result} (see target/vm/{}.log)",
                        boot.label, boot.label
                    ));
                }
                if let Some(run) = run {
                    for name in &run.failures {
                        failures.push(format!("{} {set} {test}: {name}", boot.label));
                    }
                    if result != "ok" && run.failures.is_empty() {
                        failures.push(format!(
                            "{} {set} {test}: rc={} (see target/vm/{}.log)",
                            boot.label,
                            run.rc.map_or("none".to_owned(), |rc| rc.to_string()),
                            boot.label
                        ));
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailing:");
        for failure in &failures {
            println!("  {failure}");
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_parses_its_options_as_the_command_line_does() {
        let opts = step_opts(&["--kernel", "6.12", "--set", "kernel", "--test", "uring"]).unwrap();
        assert_eq!(opts.kernels, ["6.12"]);
        assert_eq!(opts.sets, ["kernel"]);
        assert_eq!(opts.tests, ["uring"]);
        assert_eq!(opts.timeout, 3600);
        assert!(step_opts(&["--kernel", "5.4"]).is_err());
        let opts = step_opts(&["--test", "race", "--", "one_test", "--exact"]).unwrap();
        assert_eq!(opts.args, ["one_test", "--exact"]);
    }

    #[test]
    fn libtest_summary() {
        assert_eq!(
            libtest_counts(
                "test result: FAILED. 7 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 3.1s"
            ),
            Some((7, 1, 2))
        );
        assert_eq!(libtest_counts("test result: ok."), None);
    }

    #[test]
    fn failing_names() {
        assert_eq!(
            failed_test("noise test a::b ... FAILED").as_deref(),
            Some("a::b")
        );
        assert_eq!(failed_test("test a ... ok"), None);
    }

    #[test]
    fn lsm_gets_bpf() {
        assert_eq!(
            kernel_cmdline("CONFIG_LSM=\"landlock,yama\"\n"),
            "console=ttyS0 panic=-1 quiet lsm=landlock,yama,bpf"
        );
        assert!(kernel_cmdline("CONFIG_LSM=\"yama,bpf\"").ends_with("lsm=yama,bpf"));
    }
}
