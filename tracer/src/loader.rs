//! Loading and attaching, after the [`preflight`] checks. Each failure maps
//! to a [`StartError`] that says what is wrong and what to do.
//!
//! Detaching is concurrent ([`Links`]): closing the perf event of a syscall
//! tracepoint waits for an RCU grace period in the kernel (about 65 ms on
//! kernel 6.18), so closing the ~23 links one after another took 1.5-1.7 s.
//! The kernel holds one mutex across that wait (`event_mutex`, in
//! `perf_trace_destroy`), so closes from several threads still complete one
//! at a time, but their other work overlaps: about 40 ms per link, ~0.95 s
//! for all of them (measured, idle, SIGINT to exit).

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{FEntry, FExit, KProbe, Lsm, ProgramError, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{
    config::{
        CFG_COMM_FILTER, CFG_FAILED_ONLY, CFG_GUARD_CROSSINGS, CFG_PID_FILTER, DELETES_ALL,
        DELETES_RACE, DIR_WALK_DELETE, DIR_WALK_DELETE_TOP, DIR_WALK_MOVE_MOUNT_TO,
        DIR_WALK_RENAME_NEW, DIR_WALK_RENAME_OLD, DIR_WALK_URING_RENAME, DIR_WALK_URING_RENAME_NEW,
    },
    counters::DropReason,
    Config, EventKind,
};

use crate::config::{nanos, DeleteMode, GuardMode, ProbeSet, TraceOptions};
use crate::drops::Drops;
use crate::error::StartError;
use crate::preflight::{self, Hooks};
use crate::probes::{probes, KernelHook, Probe, Variant, KERNEL_HOOKS};

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Tracer {
    /// Closed (concurrently) first on drop, before the programs and maps.
    links: Links,
    ebpf: Ebpf,
    drops: PerCpuArray<MapData, u64>,
    pub kinds: Vec<EventKind>,
    /// Which probe set runs, and why (for stderr, one line).
    pub probes: ProbesChosen,
    /// What the guard does (never `Auto`), and why.
    pub guard: GuardChosen,
    /// What works only in part with this process's capabilities (for
    /// stderr): see [`preflight::enrichment_warnings`].
    pub warnings: Vec<String>,
}

/// The probe set that runs: `Syscall` or `Kernel` (never `Auto`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbesChosen {
    pub set: ProbeSet,
    /// With `Kernel`: how its hooks are attached.
    pub variant: Option<Variant>,
    /// Why this set, in words (`auto`'s fallback gives the kernel's refusal).
    pub why: String,
}

impl ProbesChosen {
    /// The start-up line: which set runs and why.
    pub fn line(&self) -> String {
        match self.variant {
            Some(v) => format!(
                "probes: kernel ({} and syscall tracepoints): {}",
                v.name(),
                self.why
            ),
            None => format!("probes: syscall (syscall tracepoints): {}", self.why),
        }
    }
}

pub(crate) fn refused<E>(what: impl Into<String>, e: E) -> StartError
where
    anyhow::Error: From<E>,
{
    StartError::Refused {
        what: what.into(),
        // The whole cause chain: aya's top-level messages omit the errno.
        detail: format!("{:#}", anyhow::Error::from(e)),
    }
}

pub fn possible_cpus() -> Result<u32, StartError> {
    let n = aya::util::nr_cpus()
        .map_err(|(path, e)| StartError::Other(anyhow::anyhow!("cannot read {path}: {e}")))?;
    Ok(n as u32)
}

/// Create the object's maps (the ring buffer of `ring_size` bytes) and
/// relocate its programs against the kernel's BTF; no program is loaded yet
/// (aya loads each on its own `load()`).
pub fn load_object(ring_size: u32) -> Result<Ebpf, StartError> {
    let cpus = possible_cpus()?;
    load_object_with(ring_size, cpus)
        .map_err(|e| refused("the eBPF object (maps, BTF relocations)", e))
}

/// [`load_object`] with aya's own error (its source chain carries the
/// errno), for `mntrace doctor`.
pub fn load_object_with(ring_size: u32, cpus: u32) -> Result<Ebpf, aya::EbpfError> {
    let object = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));
    // The verifier's reason and statistics only, unless the whole log is
    // asked for: a full instruction log of a large program is megabytes.
    let level = if verifier_log_file().is_some() {
        aya::VerifierLogLevel::VERBOSE | aya::VerifierLogLevel::STATS
    } else {
        aya::VerifierLogLevel::STATS
    };
    EbpfLoader::new()
        .verifier_log_level(level)
        .map_max_entries("EVENTS", ring_size)
        .map_max_entries("SCRATCH", cpus)
        .load(object)
}

/// The program `name` of the object, as type `P` (`TracePoint`,
/// `RawTracePoint`, ...).
pub fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, StartError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow::anyhow!("program {name} missing from the object"))?;
    Ok(<&mut P>::try_from(prog).map_err(anyhow::Error::from)?)
}

/// The kernel refused to load program `name`: why, with the end of the
/// verifier log.
pub(crate) fn load_refused(name: &str, e: &ProgramError) -> StartError {
    refused(format!("program {name}"), anyhow::anyhow!(program_error(e)))
}

/// Attach the loaded tracepoint program `name` to `p`'s tracepoint; its
/// link goes to `links`.
pub(crate) fn attach_tracepoint(
    prog: &mut TracePoint,
    name: &str,
    p: &Probe,
    links: &mut Links,
) -> Result<(), StartError> {
    let id = prog.attach(p.category, &p.tracepoint).map_err(|e| {
        refused(
            format!("attaching {name} to {}/{}", p.category, p.tracepoint),
            e,
        )
    })?;
    links.push(prog.take_link(id).map_err(anyhow::Error::from)?);
    Ok(())
}

/// `MNTRACE_VERIFIER_LOG=FILE`: ask the verifier for its whole
/// instruction log, and write a refused program's log to FILE (what a
/// report of a kernel refusing a program needs; see the README).
pub const VERIFIER_LOG_ENV: &str = "MNTRACE_VERIFIER_LOG";

fn verifier_log_file() -> Option<std::path::PathBuf> {
    std::env::var_os(VERIFIER_LOG_ENV)
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// With [`VERIFIER_LOG_ENV`]: how many instructions the verifier went
/// through for each loaded program, into `FILE.counts` (one `name count`
/// line each): how close a program is to the kernel's limit of a million.
fn write_verified_counts(ebpf: &aya::Ebpf, log: &std::path::Path) {
    let mut lines: Vec<String> = ebpf
        .programs()
        .filter_map(|(name, prog)| {
            let count = prog.info().ok()?.verified_instruction_count()?;
            Some(format!("{name} {count}\n"))
        })
        .collect();
    lines.sort();
    let mut path = log.as_os_str().to_owned();
    path.push(".counts");
    if let Err(e) = std::fs::write(&path, lines.concat()) {
        eprintln!(
            "mntrace: warning: cannot write {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

/// Shorten a verifier log to its last lines (the reason is at the end);
/// say so when it is empty (refused before the verifier ran). With
/// [`VERIFIER_LOG_ENV`] the whole log goes to its file.
pub fn program_error(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            if log.trim().is_empty() {
                return format!("{io_error}; the verifier log is empty");
            }
            let whole = match verifier_log_file() {
                Some(path) => match std::fs::write(&path, &log) {
                    Ok(()) => format!(" (whole log in {})", path.display()),
                    Err(e) => format!(
                        " (could not write the whole log to {}: {e})",
                        path.display()
                    ),
                },
                None => String::new(),
            };
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "{io_error}; verifier log (end){whole}:\n{}",
                tail.join("\n")
            )
        }
        // aya's own message omits the cause (the errno, the file): add
        // the chain.
        other => {
            let mut s = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                s.push_str(&format!(": {c}"));
                cause = c.source();
            }
            s
        }
    }
}

/// Attach the kernel probe set's hooks as `variant` into `links`: all the
/// required ones, and the optional ones the kernel has (what is left out
/// goes to `notes`). On a refusal nothing stays attached and the reason is
/// returned.
fn attach_kernel_hooks(
    ebpf: &mut Ebpf,
    variant: Variant,
    btf: Option<&Btf>,
    links: &mut Links,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let mut attached = Links::default();
    let mut skip_optional = false;
    for hook in &KERNEL_HOOKS {
        if !hook.required && skip_optional {
            continue;
        }
        if let Err(e) = attach_hook(ebpf, variant, btf, hook, &mut attached) {
            if hook.required {
                return Err(e);
            }
            // The entry hook is pointless without its return hook.
            skip_optional = true;
            notes.push(format!(
                "the inodes io_uring deletions remove are not read: {e}"
            ));
        }
    }
    links.0.append(&mut attached.0);
    Ok(())
}

fn attach_hook(
    ebpf: &mut Ebpf,
    variant: Variant,
    btf: Option<&Btf>,
    hook: &KernelHook,
    links: &mut Links,
) -> Result<(), String> {
    let name = hook.program(variant);
    let what = |e: &dyn std::fmt::Display| format!("{} on {}: {e}", variant.name(), hook.function);
    let load_err = |e: ProgramError| what(&program_error(&e));
    let start_err = |e: StartError| what(&e);
    match (variant, hook.exit) {
        (Variant::Trampoline, exit) => {
            let btf = btf.ok_or_else(|| what(&"no kernel BTF"))?;
            if exit {
                let prog: &mut FExit = program(ebpf, &name).map_err(start_err)?;
                prog.load(hook.function, btf).map_err(load_err)?;
                let id = prog.attach().map_err(load_err)?;
                links.push(prog.take_link(id).map_err(load_err)?);
            } else {
                let prog: &mut FEntry = program(ebpf, &name).map_err(start_err)?;
                prog.load(hook.function, btf).map_err(load_err)?;
                let id = prog.attach().map_err(load_err)?;
                links.push(prog.take_link(id).map_err(load_err)?);
            }
        }
        (Variant::Kprobe, _) => {
            let prog: &mut KProbe = program(ebpf, &name).map_err(start_err)?;
            prog.load().map_err(load_err)?;
            let id = prog.attach(hook.function, 0).map_err(load_err)?;
            links.push(prog.take_link(id).map_err(load_err)?);
        }
    }
    Ok(())
}

/// Attach the kernel probe set if `asked` wants it and the kernel accepts
/// one of its variants; say which set runs and why.
fn choose_probes(
    ebpf: &mut Ebpf,
    asked: ProbeSet,
    links: &mut Links,
    notes: &mut Vec<String>,
) -> Result<ProbesChosen, StartError> {
    if asked == ProbeSet::Syscall {
        return Ok(ProbesChosen {
            set: ProbeSet::Syscall,
            variant: None,
            why: "asked for (--probes syscall)".into(),
        });
    }
    let btf = Btf::from_sys_fs().ok();
    let mut refusals = Vec::new();
    for variant in Variant::ALL {
        match attach_kernel_hooks(ebpf, variant, btf.as_ref(), links, notes) {
            Ok(()) => {
                let why = if refusals.is_empty() {
                    format!("--probes {}, the kernel accepts them", asked.name())
                } else {
                    format!(
                        "--probes {}, the kernel accepts them ({})",
                        asked.name(),
                        refusals.join("; ")
                    )
                };
                return Ok(ProbesChosen {
                    set: ProbeSet::Kernel,
                    variant: Some(variant),
                    why,
                });
            }
            Err(e) => refusals.push(e),
        }
    }
    let refusals = refusals.join("; ");
    if asked == ProbeSet::Kernel {
        return Err(StartError::Refused {
            what: "the kernel probe set (--probes kernel)".into(),
            detail: format!(
                "{refusals}. Use --probes syscall (or auto), which every kernel with BTF \
                 accepts; `mntrace doctor` lists the program types this kernel accepts"
            ),
        });
    }
    Ok(ProbesChosen {
        set: ProbeSet::Syscall,
        variant: None,
        why: format!("--probes auto, the kernel refuses kernel-function hooks ({refusals})"),
    })
}

/// What the guard does: `mode` is never `Auto`; `why` says why `auto`
/// became what it is (empty when the mode was asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardChosen {
    pub mode: GuardMode,
    pub why: String,
}

/// The guard's BPF LSM programs (`probes/lsm.rs`) and their hooks.
const GUARD_LSM: [(&str, &str); 3] = [
    ("guard_path_unlink", "path_unlink"),
    ("guard_path_rmdir", "path_rmdir"),
    ("guard_path_rename", "path_rename"),
];

/// Load and attach the guard's LSM programs (for `deny`, or `auto` where
/// the kernel accepts them, else `stop`). A refusal of `deny` says what the
/// kernel said; nothing of it stays attached.
fn choose_guard(
    ebpf: &mut Ebpf,
    asked: GuardMode,
    links: &mut Links,
) -> Result<GuardChosen, StartError> {
    if !matches!(asked, GuardMode::Deny | GuardMode::Auto) {
        return Ok(GuardChosen {
            mode: asked,
            why: String::new(),
        });
    }
    let mut attached = Links::default();
    let result = attach_guard_lsm(ebpf, &mut attached);
    match (result, asked) {
        (Ok(()), _) => {
            links.0.append(&mut attached.0);
            Ok(GuardChosen {
                mode: GuardMode::Deny,
                why: if asked == GuardMode::Auto {
                    "--guard auto, the kernel accepts BPF LSM programs".into()
                } else {
                    String::new()
                },
            })
        }
        (Err(e), GuardMode::Deny) => Err(StartError::Refused {
            what: "--guard deny".into(),
            detail: format!(
                "denying a deletion (EPERM) needs BPF LSM programs on path_unlink, path_rmdir \
                 and path_rename, and this kernel refused them: {e}. BPF LSM needs a kernel \
                 built with CONFIG_BPF_LSM and CONFIG_SECURITY_PATH, with bpf in its active \
                 LSMs (the lsm= boot parameter); `mntrace doctor` says what this kernel accepts. \
                 Use --guard stop or --guard kill, which need none of it (--guard auto is deny \
                 where the kernel accepts it, else stop)"
            ),
        }),
        (Err(e), _) => Ok(GuardChosen {
            mode: GuardMode::Stop,
            why: format!("--guard auto, the kernel refuses BPF LSM programs ({e})"),
        }),
    }
}

/// [`choose_guard`]'s loading and attaching, into `links`.
fn attach_guard_lsm(ebpf: &mut Ebpf, links: &mut Links) -> Result<(), String> {
    // Where `bpf` is not an active LSM its programs load and attach, and
    // never run.
    if let Some((false, list)) = crate::doctor::bpf_lsm_active() {
        return Err(format!(
            "bpf is not an active LSM ({list}): its programs would attach and never run"
        ));
    }
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
    for (name, hook) in GUARD_LSM {
        let prog: &mut Lsm = program(ebpf, name).map_err(|e| e.to_string())?;
        let lsm_error =
            |what: &str, e: &ProgramError| format!("{what}lsm/{hook}: {}", program_error(e));
        prog.load(hook, &btf).map_err(|e| lsm_error("", &e))?;
        let id = prog.attach().map_err(|e| lsm_error("attaching ", &e))?;
        let link = prog.take_link(id).map_err(|e| lsm_error("", &e))?;
        links.push(link);
    }
    Ok(())
}

/// Load the program `name` that probes reach by tail call (to walk a
/// directory) and put it at `index` in the `DIR_WALKS` array: before the
/// probes that reach it are attached.
fn load_dir_walk(ebpf: &mut Ebpf, name: &str, index: u32) -> Result<(), StartError> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load().map_err(|e| load_refused(name, &e))?;
    let fd = prog
        .fd()
        .map_err(|e| load_refused(name, &e))?
        .try_clone()
        .map_err(|e| refused("duplicating the walk program's fd", e))?;
    let map = ebpf
        .map_mut("DIR_WALKS")
        .ok_or_else(|| anyhow::anyhow!("no DIR_WALKS map"))?;
    let mut walks: ProgramArray<_> = ProgramArray::try_from(map).map_err(anyhow::Error::from)?;
    walks
        .set(index, &fd, 0)
        .map_err(|e| refused("writing the DIR_WALKS map", e))
}

/// A chain of programs reached by tail call: each one's name and
/// `DIR_WALKS` index, those reached last first (the order they are loaded
/// in).
type Walks = &'static [(&'static str, u32)];

/// What `uring_submit` reaches for a rename request.
const URING_RENAME_WALKS: Walks = &[
    ("walk_uring_rename_new", DIR_WALK_URING_RENAME_NEW),
    ("uring_rename_submit", DIR_WALK_URING_RENAME),
];

/// The programs `p`'s program reaches by tail call (none for most).
fn entry_walks(p: &Probe) -> Walks {
    if !p.entry {
        &[]
    } else if p.kind == EventKind::MoveMount {
        &[("walk_move_mount_to", DIR_WALK_MOVE_MOUNT_TO)]
    } else if p.kind.is_rename() {
        &[
            ("walk_rename_new", DIR_WALK_RENAME_NEW),
            ("walk_rename_old", DIR_WALK_RENAME_OLD),
        ]
    } else {
        &[]
    }
}

/// Load a chain of programs reached by tail call (`load_dir_walk`).
fn load_dir_walks(ebpf: &mut Ebpf, walks: Walks) -> Result<(), StartError> {
    walks
        .iter()
        .try_for_each(|&(name, index)| load_dir_walk(ebpf, name, index))
}

impl Tracer {
    /// Check the host, load the object, configure the filters, attach.
    pub fn start(opts: &TraceOptions) -> Result<Tracer, StartError> {
        let mut kinds = opts.attached_kinds();
        let mut probes = probes(&kinds);
        let warnings = preflight::check(Hooks::SyscallTracepoints(
            probes.first().map(|p| p.tracepoint.as_str()),
        ))?;
        let mut ebpf = load_object(opts.ring_size)?;
        // Owned by `links` as soon as each is attached: an error below
        // detaches those already attached (concurrently) on the way out.
        let mut links = Links::default();
        // The LSM programs first: they do nothing until `CONFIG` says deny.
        let guard = choose_guard(&mut ebpf, opts.guard, &mut links)?;

        let cfg = Config {
            flags: (if opts.pids.is_empty() {
                0
            } else {
                CFG_PID_FILTER
            }) | (if opts.comm.is_some() {
                CFG_COMM_FILTER
            } else {
                0
            }) | (if opts.failed_only { CFG_FAILED_ONLY } else { 0 })
                | (if opts.guard_crossings {
                    CFG_GUARD_CROSSINGS
                } else {
                    0
                }),
            self_tgid: std::process::id(),
            comm: comm_key(opts.comm.as_deref()),
            delete_mode: match opts.deletes {
                DeleteMode::All => DELETES_ALL,
                DeleteMode::Race => DELETES_RACE,
            },
            guard: guard.mode.kernel(),
            busy_window_ns: nanos(opts.busy_window),
            burst_gap_ns: nanos(opts.burst_gap),
            busy_grace_ns: nanos(opts.busy_grace),
            tick_ns: crate::kernel_tick::tick_ns().unwrap_or(0),
        };
        {
            let map = ebpf
                .map_mut("CONFIG")
                .ok_or_else(|| anyhow::anyhow!("no CONFIG map"))?;
            let mut config: Array<_, Config> = Array::try_from(map).map_err(anyhow::Error::from)?;
            config
                .set(0, cfg, 0)
                .map_err(|e| refused("writing the CONFIG map", e))?;
        }
        if !opts.pids.is_empty() {
            let map = ebpf
                .map_mut("PIDS")
                .ok_or_else(|| anyhow::anyhow!("no PIDS map"))?;
            let mut pids: HashMap<_, u32, u8> =
                HashMap::try_from(map).map_err(anyhow::Error::from)?;
            for &pid in &opts.pids {
                pids.insert(pid, 1, 0)
                    .map_err(|e| refused("writing the PIDS map", e))?;
            }
        }
        let drops_map = ebpf
            .take_map("DROPS")
            .ok_or_else(|| anyhow::anyhow!("no DROPS map"))?;
        let drops = PerCpuArray::try_from(drops_map).map_err(anyhow::Error::from)?;

        if kinds.iter().any(|k| k.is_delete()) {
            load_dir_walk(&mut ebpf, "walk_delete_dir", DIR_WALK_DELETE)?;
            load_dir_walk(&mut ebpf, "walk_delete_top", DIR_WALK_DELETE_TOP)?;
        }
        let mut warnings = warnings;
        // Before the tracepoints whose calls they add to, so that no call
        // taken at its entry misses them.
        let chosen = choose_probes(&mut ebpf, opts.probes, &mut links, &mut warnings)?;
        // Every program is loaded before any is attached, so that a kind
        // the kernel refuses is left out whole (entry and exit).
        let mut refused_kinds = Vec::new();
        let mut walks_loaded = Vec::new();
        for p in &probes {
            // What an entry program reaches by tail call, loaded once (the
            // three rename kinds share theirs).
            let walks = entry_walks(p);
            let walk = match walks.last() {
                Some(&(_, index)) if !walks_loaded.contains(&index) => {
                    load_dir_walks(&mut ebpf, walks).map(|()| walks_loaded.push(index))
                }
                _ => Ok(()),
            };
            let prog: &mut TracePoint = program(&mut ebpf, &p.program)?;
            let loaded = walk.and_then(|()| prog.load().map_err(|e| load_refused(&p.program, &e)));
            if let Err(e) = loaded {
                // The mount-API and rename probes are left out with a
                // warning where the kernel refuses them (6.1's verifier gave
                // up on some) unless they were asked for: the race needs
                // only mount, umount and the deletions.
                let optional = p.kind.is_mount_api() || p.kind.is_rename();
                if !optional || !opts.kinds.is_empty() {
                    return Err(e);
                }
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default();
                warnings.push(format!(
                    "{} is not traced: {why} (`{VERIFIER_LOG_ENV}=FILE` writes the verifier's \
                     whole log to FILE)",
                    p.kind.syscall()
                ));
                refused_kinds.push(p.kind);
            }
        }
        kinds.retain(|k| !refused_kinds.contains(k));
        probes.retain(|p| !refused_kinds.contains(&p.kind));
        for p in &probes {
            let prog: &mut TracePoint = program(&mut ebpf, &p.program)?;
            attach_tracepoint(prog, &p.program, p, &mut links)?;
        }
        if kinds.iter().any(|k| k.is_delete()) {
            // Completions before submissions: a request is never seen
            // completing without its submission once both are attached.
            let tracefs = match preflight::find_tracefs(None) {
                preflight::TracefsFound::Ready(p) => p,
                _ => preflight::TRACEFS.into(),
            };
            let uring = crate::probes::uring_probes(&tracefs);
            let mut not_traced = uring.as_ref().err().cloned();
            if uring.is_ok() {
                // What `uring_submit` reaches by tail call for renames: left
                // out with a warning if refused (unlinks go on).
                if let Err(e) = load_dir_walks(&mut ebpf, URING_RENAME_WALKS) {
                    let why = e.to_string();
                    let why = why.lines().next().unwrap_or_default();
                    warnings.push(format!(
                        "io_uring renames (IORING_OP_RENAMEAT) are not traced: {why}"
                    ));
                }
            }
            for p in uring.iter().flatten().rev() {
                let prog: &mut TracePoint = program(&mut ebpf, &p.program)?;
                let attached = prog
                    .load()
                    .map_err(|e| load_refused(&p.program, &e))
                    .and_then(|()| attach_tracepoint(prog, &p.program, p, &mut links));
                if let Err(e) = attached {
                    not_traced = Some(e.to_string());
                    break;
                }
            }
            if let Some(e) = not_traced {
                warnings.push(format!(
                    "io_uring deletions and renames (IORING_OP_UNLINKAT, IORING_OP_RENAMEAT) are not \
                     traced: {e}"
                ));
            }
        }
        if let Some(path) = verifier_log_file() {
            write_verified_counts(&ebpf, &path);
        }
        Ok(Tracer {
            links,
            ebpf,
            drops,
            kinds,
            probes: chosen,
            guard,
            warnings,
        })
    }

    /// Take the ring buffer (once).
    pub fn ring(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow::anyhow!("ring buffer already taken"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Tell the kernel that mount `mnt_id` was found busy (an unmount of it
    /// failed with EBUSY): while the EBUSY is recent, every deletion through
    /// it is captured, whoever deletes (`CAP_BUSY_MOUNT`). Its time is the
    /// kernel's own stamp of the latest EBUSY on the node (`LAST_BUSY`, on
    /// the clock of the kernel's capture decisions, which userspace cannot
    /// read): that EBUSY or a later one, so the window never starts early.
    pub fn arm_busy_mount(&mut self, mnt_id: u32) -> anyhow::Result<()> {
        let last: Array<_, u64> = Array::try_from(
            self.ebpf
                .map("LAST_BUSY")
                .ok_or_else(|| anyhow::anyhow!("no LAST_BUSY map"))?,
        )?;
        let ts_ns = last.get(&0, 0)?;
        let map = self
            .ebpf
            .map_mut("BUSY_MNTS")
            .ok_or_else(|| anyhow::anyhow!("no BUSY_MNTS map"))?;
        let mut busy: HashMap<_, u32, u64> = HashMap::try_from(map)?;
        busy.insert(mnt_id, ts_ns, 0)?;
        Ok(())
    }

    /// Current kernel-side drop counters.
    pub fn drops(&self) -> anyhow::Result<Drops> {
        let mut d = Drops::default();
        for kind in EventKind::ALL {
            for reason in DropReason::ALL {
                let idx = DropReason::index(kind as u32, reason);
                let per_cpu = self.drops.get(&idx, 0)?;
                d.0[kind as usize][reason as usize] = per_cpu.iter().sum();
            }
        }
        Ok(d)
    }
}

impl Drop for Tracer {
    /// Detach every probe, all at once, before the programs and maps go.
    fn drop(&mut self) {
        self.links.detach();
    }
}

/// Attached links (of any program type: each is dropped to detach it).
/// Dropping them detaches them all, each closed on a thread of its own so
/// that the kernel's grace periods overlap as much as it allows (see the
/// module doc); returns when all are closed.
#[derive(Default)]
pub(crate) struct Links(Vec<Box<dyn Send>>);

impl Links {
    /// Own `link` from now on: it is detached with the others.
    pub(crate) fn push(&mut self, link: impl Send + 'static) {
        self.0.push(Box::new(link));
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Close every link, concurrently; returns when all are detached.
    fn detach(&mut self) {
        let links = std::mem::take(&mut self.0);
        if links.len() <= 1 {
            return drop(links);
        }
        std::thread::scope(|scope| {
            for link in links {
                // On a spawn failure the closure, and with it the link, is
                // dropped right here: detached on this thread instead.
                let _ = std::thread::Builder::new()
                    .name("mntrace-detach".into())
                    .spawn_scoped(scope, move || drop(link));
            }
        });
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.detach();
    }
}

fn comm_key(comm: Option<&[u8]>) -> [u8; 16] {
    let mut k = [0u8; 16];
    if let Some(c) = comm {
        let n = c.len().min(15);
        k[..n].copy_from_slice(&c[..n]);
    }
    k
}
