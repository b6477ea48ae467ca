//! A real container engine as a benign workload: Debian's containerd 1.6 +
//! runc, a private daemon in its own mount namespace, a busybox image built
//! here (nothing can be pulled), containers run and removed. mntrace must see
//! the engine's overlay mounts of snapshot layers, its unmounts and its
//! snapshot deletions, and raise no incident.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mntrace::{model::Args, EventKind};

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A one-layer busybox image in `docker save` layout.
fn build_image(dir: &Path) -> PathBuf {
    let img = dir.join("img");
    let bin = img.join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed by cargo xtask setup");
    for a in ["sh", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).expect("symlink");
    }
    let layer = img.join("layer.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(img.join("rootfs"))
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    let diff = sha256(&layer);
    let config = img.join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#),
    )
    .expect("config");
    let cfg = sha256(&config);
    std::fs::rename(&config, img.join(format!("{cfg}.json"))).expect("rename");
    std::fs::create_dir_all(img.join(&diff)).expect("mkdir");
    std::fs::rename(&layer, img.join(&diff).join("layer.tar")).expect("rename");
    std::fs::write(
        img.join("manifest.json"),
        format!(r#"[{{"Config":"{cfg}.json","RepoTags":["mntrace.test/bb:1"],"Layers":["{diff}/layer.tar"]}}]"#),
    )
    .expect("manifest");
    let tar = dir.join("image.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&img)
        .arg("-cf")
        .arg(&tar)
        .args(["manifest.json", &format!("{cfg}.json"), &diff]));
    tar
}

/// containerd in a private mount namespace; killed (with its shims) on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{1}\"\n",
                dir.display(),
                sock.display()
            ),
        )
        .expect("config");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "containerd", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start containerd (installed by cargo xtask setup)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            dir: dir.to_owned(),
            sock,
        }
    }

    fn ctr(&self, args: &[&str]) {
        sh(Command::new("ctr").arg("-a").arg(&self.sock).args(args));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive the daemon: they carry the state path.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.dir.join("state"))
            .status();
    }
}

#[test]
fn a_real_containerd_workload_is_traced_and_raises_no_incident() {
    require_root();
    let s = scratch();
    let image = build_image(s.path());
    let daemon = Daemon::start(s.path());
    // Every deletion is captured: the correlator sees all of the engine's
    // unmounts and RemoveAll walks and must still find nothing; and the
    // guard, on, must never act on the engine (the only test of this
    // binary: nothing else runs while this unfiltered tracer guards).
    let mut live = Live::start(mntrace::config::TraceOptions {
        guard: mntrace::config::GuardMode::Stop,
        ..all_deletes()
    });
    daemon.ctr(&["images", "import", image.to_str().expect("utf-8")]);
    for i in 0..4 {
        daemon.ctr(&[
            "run",
            "--rm",
            "mntrace.test/bb:1",
            &format!("c{i}"),
            "/bin/sh",
            "-c",
            "echo hi > /tmp/x; true",
        ]);
    }
    let root = s.path().join("root");
    let snapshots = root.join("io.containerd.snapshotter.v1.overlayfs/snapshots");
    let under = |p: &[u8]| p.starts_with(b(&snapshots));
    let snapshot_deletes = |evs: &[mntrace::model::Event]| {
        evs.iter()
            .filter(|e| e.ret == 0)
            .filter(|e| matches!(&e.args, Args::Delete { dir, .. } if under(&dir.path.bytes)))
            .count()
    };
    // The engine removes a container's snapshot in the background after
    // `ctr run --rm` returns: wait for it while the daemon (and its
    // namespace) is still alive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        live.pump();
        if snapshot_deletes(&live.out.events) >= 4 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(daemon);
    let incidents = live.finish();
    let evs = &live.out.events;
    let overlays = evs
        .iter()
        .filter(|e| e.ret == 0)
        .filter(|e| matches!(&e.args, Args::Mount { fstype, data, .. }
            if fstype.value() == Some(b"overlay") && data.value().is_some_and(|d| d.windows(b(&snapshots).len()).any(|w| w == b(&snapshots)))))
        .count();
    assert!(
        overlays >= 4,
        "an overlay of the snapshot layers per container, got {overlays}"
    );
    let umounts = evs
        .iter()
        .filter(|e| e.kind == EventKind::Umount && e.ret == 0)
        .count();
    assert!(umounts >= 4, "the engine unmounted them, got {umounts}");
    let snapshot_deletes = snapshot_deletes(evs);
    assert!(
        snapshot_deletes >= 4,
        "the engine removed container snapshots, got {snapshot_deletes}"
    );
    let mine: Vec<_> = incidents
        .iter()
        .filter(|i| i.mount.mountpoint.starts_with(b(s.path())))
        .collect();
    assert!(
        mine.is_empty(),
        "a benign engine workload raised incidents: {mine:#?}"
    );
    let guarded: Vec<_> = evs.iter().filter(|e| e.kind == EventKind::Guard).collect();
    assert!(guarded.is_empty(), "the guard acted: {guarded:#?}");
    assert_eq!(
        live.pipeline.stats.guard,
        [0; mntrace::model::GUARD_ACTIONS]
    );
    assert_eq!(live.traced.drops().total(), 0);
}
