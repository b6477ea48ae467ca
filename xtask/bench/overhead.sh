#!/usr/bin/env bash
# overhead.sh — what mntrace costs a deletion- and mount-heavy node, measured
# beside the tools a user would pick instead (bpftrace, auditd, fatrace), in
# one run with alternating reps. `cargo xtask bench overhead` runs it (builds
# mntrace, installs the anchor tools, writes target/bench/overhead.md).
#
# Ported from shared/bench/anchors.sh (the project's anchor measurements):
# the same workloads, C helper, liveness/drain markers and private mount
# namespace, and the anchors run exactly as there. What changed: mntrace in
# several configurations in the same run; the scratch tmpfs under the cargo
# target dir instead of /tmp; each tracer's CPU time and peak RSS; mntrace's
# own event and loss counts; a capacity figure for `--deletes all`.
#
# Workloads (on a tmpfs at $SCRATCH, mounted only inside a private mount
# namespace: the script re-executes itself under `unshare -m --propagation
# private`, so every mount it makes disappears with it, even on a crash):
#   W1 unlink storm : create W1_DIRS x W1_FILES empty files (untimed, before the
#                     tracer starts), then time `rm -rf` of the tree
#                     (coreutils rm: unlinkat(dirfd, name, 0|AT_REMOVEDIR)).
#   W2 mount churn  : W2_ITERS x { mount(src, dst, MS_BIND); umount2(dst, 0) },
#                     issued by a compiled C helper (no fork per iteration),
#                     timed inside the helper with CLOCK_MONOTONIC.
#   W3 busy umount  : W3_ITERS x { mount tmpfs; create 10 files; hold one open;
#                     umount2 -> EBUSY; unlink(2) the 10 files through the
#                     mount; close; umount2 -> 0 }, C helper, timed inside.
#   W4 syscalls     : (only with W4_ITERS > 0) W4_ITERS x getppid(2), C helper,
#                     timed inside: a syscall-heavy workload mntrace does not
#                     trace, which only hooks on every syscall (raw_tp/tp_btf
#                     sys_enter/sys_exit) tax.
# Configurations: baseline (no tracer) and each tracer in $TRACERS: the
# mntrace configurations (MNTRACE_ARGS below) and the anchors. Every rep runs
# "baseline, tracer" pairs for all tracers (tracer order rotated per rep), so
# the baseline alternates with each tracer (A B A C A D ...).
# Per run: the tracer is started after the W1 tree exists, confirmed live with a
# marker event, then W1, W2, W3 run back to back; after each workload the script
# waits until the tracer has written the marker event issued after it (drain),
# so a lagging tracer cannot spill its backlog into the next timed workload.
# The empty programs (mntrace-empty*) write nothing: they are live once they
# say they are attached, and their markers are issued but not waited for.
# Events are counted per workload by the workload's PID. The tracer's CPU time
# (utime + stime of its process, /proc/PID/stat) is taken from when it is live
# to after the last drain, its peak RSS (VmHWM) just before it is stopped.
# Capacity: CAP_WORKERS parallel `rm -rf` of separate CAP_DIRS x CAP_FILES trees
# under `mntrace-all` (and the same untraced); deletions generated, delivered,
# lost, and the rate.
#
# Usage: MNTRACE=/path/to/mntrace overhead.sh   (root; markdown report on stdout)
# Knobs (env): REPS=5 W1_DIRS=200 W1_FILES=1000 W2_ITERS=5000 W3_ITERS=1000
#   CAP_WORKERS="1 2 4" CAP_DIRS=100 CAP_FILES=1000 (per worker)
#   MNTRACE_CONFIGS="mntrace-empty mntrace-filtered mntrace-default mntrace-all mntrace-record"
#                   (also available: mntrace-empty-raw mntrace-empty-btf, and
#                   mntrace-guard: the default with --guard stop --guard-crossings)
#   W4_ITERS=0      >0: also W4, that many getppid() calls (see Workloads)
#   ANCHORS="bpftrace auditd fatrace"  (subset; "" = mntrace only)
#   SKIPPED="..."  anchors left out by the caller, and why (shown in the report)
#   PRIME_AUDIT=1   enable+disable kernel audit once before measuring, so every
#                   configuration (baseline included) runs with the same
#                   audit_ever_enabled=1 kernel state (only with auditd)
#   WORK=<repo>/target/bench/overhead  (on disk: helper binary, tracer logs,
#                   recordings; the scratch tmpfs is mounted on WORK/scratch)
#   KEEP_LOGS=0     keep raw tracer outputs under $WORK
#   WARMUP=1 SETTLE_S=1 PAUSE_S=0.5 MARKER_MS=300  (the smoke run shortens them)
# Requires: bash 5, gcc, unshare, and the anchors' tools (bpftrace,
#   auditd/auditctl/ausyscall, fatrace).
set -uo pipefail

REPS=${REPS:-5}
W1_DIRS=${W1_DIRS:-200}
W1_FILES=${W1_FILES:-1000}
W2_ITERS=${W2_ITERS:-5000}
W3_ITERS=${W3_ITERS:-1000}
CAP_WORKERS=${CAP_WORKERS-"1 2 4"}
CAP_DIRS=${CAP_DIRS:-100}
CAP_FILES=${CAP_FILES:-1000}
MNTRACE=${MNTRACE:-}
W4_ITERS=${W4_ITERS:-0}
MNTRACE_CONFIGS=${MNTRACE_CONFIGS-"mntrace-empty mntrace-filtered mntrace-default mntrace-all mntrace-record"}
ANCHORS=${ANCHORS-"bpftrace auditd fatrace"}
SKIPPED=${SKIPPED:-}
PRIME_AUDIT=${PRIME_AUDIT:-1}
WORK=${WORK:-$(cd "$(dirname "$0")/../.." && pwd)/target/bench/overhead}
KEEP_LOGS=${KEEP_LOGS:-0}
WARMUP=${WARMUP:-1}
SETTLE_S=${SETTLE_S:-1}
PAUSE_S=${PAUSE_S:-0.5}
MARKER_MS=${MARKER_MS:-300}
SCRATCH=$WORK/scratch
AUDIT_SYSCALLS="mount umount2 unlink unlinkat rmdir rename renameat renameat2 open_tree move_mount fsmount fsopen fsconfig mount_setattr"

# The mntrace configurations: {OUT} is the output file, {REC} a recording
# directory on disk. `record` shows only incidents unless given --events, and
# the drain markers are found in its output: with --events it writes what
# `trace` writes, and records on top of that. The `mntrace-empty*` ones are
# the floor: empty programs (return 0, touch nothing) on the hooks named
# (`mntrace floor`, hidden): on the syscall tracepoints `trace` attaches by
# default, or on raw_tp / tp_btf sys_enter + sys_exit, which run for every
# syscall. They write nothing: live once they say "N programs attached" on
# stderr, and no drain or event count.
declare -A MNTRACE_ARGS=(
    [mntrace-empty]="floor --hooks tracepoints"
    [mntrace-empty-raw]="floor --hooks raw-tp"
    [mntrace-empty-btf]="floor --hooks tp-btf"
    [mntrace-filtered]="trace --comm ab_marker -o {OUT}"
    [mntrace-default]="trace -o {OUT}"
    [mntrace-guard]="trace --guard stop --guard-crossings -o {OUT}"
    [mntrace-all]="trace --deletes all --json -o {OUT}"
    [mntrace-record]="record --events --dir {REC} -o {OUT}"
)

log() { printf '[overhead %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------- namespace ---
if [[ "${OVERHEAD_IN_NS:-}" != 1 ]]; then
    [[ $EUID -eq 0 ]] || die "must run as root"
    [[ $WORK == /* && $WORK != *[[:space:]]* ]] || die "WORK must be an absolute path without spaces: $WORK"
    mkdir -p "$SCRATCH" || die "mkdir $SCRATCH"
    mountpoint -q "$SCRATCH" && die "$SCRATCH is a mount point in this namespace (left by someone else?)"
    OVERHEAD_IN_NS=1 unshare -m --propagation private -- bash "$0" "$@"
    rc=$?
    rmdir "$SCRATCH" 2>/dev/null || log "warning: could not rmdir $SCRATCH"
    exit $rc
fi

# ------------------------------------------------------------ preconditions ---
read -r -a MC <<<"$MNTRACE_CONFIGS"
for t in "${MC[@]}"; do [[ -n ${MNTRACE_ARGS[$t]:-} ]] || die "unknown mntrace configuration: $t"; done
if ((${#MC[@]} > 0)) || [[ -n $CAP_WORKERS ]]; then
    [[ -x $MNTRACE ]] || die "MNTRACE must name the mntrace binary (got '$MNTRACE')"
fi
need="gcc awk sed grep sync getconf"
[[ " $ANCHORS " == *" bpftrace "* ]] && need+=" bpftrace"
[[ " $ANCHORS " == *" auditd "* ]] && need+=" auditd auditctl ausyscall"
[[ " $ANCHORS " == *" fatrace "* ]] && need+=" fatrace"
for c in $need; do command -v "$c" >/dev/null || die "missing command: $c"; done
[[ -d /sys/kernel/tracing/events ]] || die "tracefs is not mounted at /sys/kernel/tracing (cargo xtask setup mounts it)"
if [[ " $ANCHORS " == *" auditd "* ]]; then
    st=$(auditctl -s) || die "auditctl -s failed"
    why=""
    [[ $(awk '/^pid/{print $2}' <<<"$st") == 0 ]] || why="an audit daemon is already registered"
    [[ $(auditctl -l) == "No rules" ]] || why="audit rules are already loaded"
    if [[ -n $why ]]; then
        log "skipping auditd: $why (not touching it)"
        SKIPPED+="${SKIPPED:+; }auditd: $why on this machine (not touched)"
        ANCHORS=$(sed 's/\bauditd\b//' <<<"$ANCHORS")
    fi
fi
read -r -a TL <<<"$MNTRACE_CONFIGS $ANCHORS"
TRACERS="${TL[*]}"
# The mntrace configurations that capture only the deletions that can be part
# of the race (no --deletes all): W1's plain rm -rf is not theirs to capture.
# EMPTY: those of empty programs (`mntrace floor`), which emit nothing.
RACE_ONLY="" EMPTY=""
for t in "${MC[@]}"; do
    if [[ ${MNTRACE_ARGS[$t]} == "floor "* ]]; then EMPTY+=" $t"; continue; fi
    [[ ${MNTRACE_ARGS[$t]} == *"--deletes all"* || ${MNTRACE_ARGS[$t]} == *"--comm "* ]] || RACE_ONLY+=" $t"
done
is_empty() { [[ " $EMPTY " == *" $1 "* ]]; }
WORKLOADS="W1 W2 W3"
((W4_ITERS > 0)) && WORKLOADS+=" W4"

mkdir -p "$WORK" || die "mkdir $WORK"
rm -rf "$WORK"/run-* "$WORK"/cap-* || die "cannot clear stale $WORK/run-*"
RAW="$WORK/raw.tsv"
SAMPLES="$WORK/samples.txt"
CAPACITY="$WORK/capacity.tsv"
OTHERS="$WORK/others.tsv"
: >"$RAW"; : >"$SAMPLES"; : >"$CAPACITY"; : >"$OTHERS"
declare -A TRACER_PID=()
AUDIT_ENABLED_BY_US=0
AUDIT_WAS_ENABLED=$(auditctl -s 2>/dev/null | awk '/^enabled/{print $2}')
CLK_TCK=$(getconf CLK_TCK)

cleanup() {
    local p
    for p in "${!TRACER_PID[@]}"; do
        if [[ $p == auditd ]]; then kill -TERM "${TRACER_PID[$p]}" 2>/dev/null; else kill -INT "${TRACER_PID[$p]}" 2>/dev/null; fi
        sleep 2
        kill -0 "${TRACER_PID[$p]}" 2>/dev/null && kill -KILL "${TRACER_PID[$p]}" 2>/dev/null
    done
    if command -v auditctl >/dev/null && [[ " $ANCHORS " == *" auditd "* || $AUDIT_ENABLED_BY_US == 1 ]]; then
        auditctl -D >/dev/null 2>&1
        [[ "${AUDIT_WAS_ENABLED:-0}" == 0 ]] && auditctl -e 0 >/dev/null 2>&1
    fi
    # Only this namespace has the mount; undone here anyway, in case a
    # process of ours outlives the script.
    cd /
    if mountpoint -q "$SCRATCH"; then
        umount -R "$SCRATCH" 2>/dev/null || umount -l "$SCRATCH"
    fi
    [[ $KEEP_LOGS == 1 ]] || rm -rf "$WORK"/run-* "$WORK"/cap-* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helper ------
HELPER="$WORK/ab_helper"
cat >"$WORK/ab_helper.c" <<'EOF'
/* ab_helper: workload driver for anchors.sh.
 *   mkfiles DIR NDIRS NFILES   create DIR/dNNN/fNNNN (empty files)
 *   churn   DIR N              N x { mount(DIR/src, DIR/dst, MS_BIND); umount2(DIR/dst, 0) }
 *   busy    DIR N              N x { mount tmpfs on DIR/mp; create 10 files; hold f0 open;
 *                                    umount2 -> expect EBUSY; unlink(2) the 10 files;
 *                                    close; umount2 -> 0 }
 *   syscalls DIR N             N x getppid(2) (DIR unused): a syscall no tracer here traces
 *   marker  PATH MS            comm ab_marker: create PATH (kept), unlink(PATH".gone") and
 *                              umount2(PATH".gone", 0) (both ENOENT, still traced syscalls:
 *                              a tracer that records only some deletions still sees the
 *                              umount2), stay alive MS ms
 * Timed modes print "elapsed_s=<s> ops=<traced syscalls issued> errors=<n> retries=<n> [ebusy=<n>]".
 * A teardown umount2 that fails with EBUSY (a transient reference, e.g. another
 * task resolving /proc/PID/fd/N at that moment) is retried after 1 ms, at most
 * 1000 times; retries are counted and included in ops. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static long retries;
static int umount_retry(const char *t, long *ops) {
    for (int r = 0;; r++) {
        (*ops)++;
        if (umount2(t, 0) == 0) return 0;
        if (errno != EBUSY || r >= 1000) return -1;
        retries++;
        usleep(1000);
    }
}
static void mkdir_p(const char *p) {
    if (mkdir(p, 0755) < 0 && errno != EEXIST) { perror(p); exit(2); }
}
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: see source\n"); return 2; }
    const char *mode = argv[1], *dir = argv[2];
    char a[2048], b[2048], f[2200];
    long errors = 0, ops = 0;
    if (strlen(dir) > 1900) return 2;

    if (!strcmp(mode, "mkfiles") && argc == 5) {
        prctl(PR_SET_NAME, "ab_mkfiles");
        int nd = atoi(argv[3]), nf = atoi(argv[4]);
        mkdir_p(dir);
        for (int d = 0; d < nd; d++) {
            snprintf(a, sizeof a, "%s/d%03d", dir, d);
            mkdir_p(a);
            int dfd = open(a, O_DIRECTORY | O_RDONLY);
            if (dfd < 0) { perror(a); return 2; }
            for (int i = 0; i < nf; i++) {
                snprintf(b, sizeof b, "f%04d", i);
                int fd = openat(dfd, b, O_CREAT | O_WRONLY | O_EXCL, 0644);
                if (fd < 0) { perror(b); return 2; }
                close(fd);
            }
            close(dfd);
        }
        return 0;
    }
    if (!strcmp(mode, "marker") && argc == 4) {
        prctl(PR_SET_NAME, "ab_marker");
        int fd = open(dir, O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        snprintf(f, sizeof f, "%s.gone", dir);
        unlink(f);
        umount2(f, 0);
        usleep(atoi(argv[3]) * 1000);
        return 0;
    }
    if (!strcmp(mode, "churn") && argc == 4) {
        prctl(PR_SET_NAME, "ab_churn");
        long n = atol(argv[3]);
        snprintf(a, sizeof a, "%s/src", dir); mkdir_p(a);
        snprintf(b, sizeof b, "%s/dst", dir); mkdir_p(b);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            ops++; if (mount(a, b, NULL, MS_BIND, NULL) < 0) { errors++; continue; }
            if (umount_retry(b, &ops) < 0) { perror("umount2"); errors++; }
        }
        double t1 = now();
        printf("elapsed_s=%.6f ops=%ld errors=%ld retries=%ld\n", t1 - t0, ops, errors, retries);
        return errors ? 1 : 0;
    }
    if (!strcmp(mode, "syscalls") && argc == 4) {
        prctl(PR_SET_NAME, "ab_syscalls");
        long n = atol(argv[3]);
        double t0 = now();
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        double t1 = now();
        printf("elapsed_s=%.6f ops=0 errors=0 retries=0 calls=%ld\n", t1 - t0, n);
        return 0;
    }
    if (!strcmp(mode, "busy") && argc == 4) {
        prctl(PR_SET_NAME, "ab_busy");
        long n = atol(argv[3]), ebusy = 0;
        snprintf(a, sizeof a, "%s/mp", dir); mkdir_p(a);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            ops++;
            if (mount("ab_tmpfs", a, "tmpfs", 0, "size=1m") < 0) { perror("mount"); errors++; continue; }
            for (int k = 0; k < 10; k++) {
                snprintf(f, sizeof f, "%s/f%d", a, k);
                int fd = open(f, O_CREAT | O_WRONLY | O_EXCL, 0644);
                if (fd < 0) errors++; else close(fd);
            }
            snprintf(f, sizeof f, "%s/f0", a);
            int hold = open(f, O_RDONLY);
            if (hold < 0) errors++;
            ops++;
            if (umount2(a, 0) == 0) errors++;            /* must fail ... */
            else if (errno == EBUSY) ebusy++;            /* ... with EBUSY */
            else errors++;
            for (int k = 0; k < 10; k++) {
                snprintf(f, sizeof f, "%s/f%d", a, k);
                ops++; if (unlink(f) < 0) errors++;
            }
            if (hold >= 0) close(hold);
            if (umount_retry(a, &ops) < 0) { perror("umount2"); errors++; }
        }
        double t1 = now();
        printf("elapsed_s=%.6f ops=%ld errors=%ld retries=%ld ebusy=%ld\n", t1 - t0, ops, errors, retries, ebusy);
        return errors ? 1 : 0;
    }
    fprintf(stderr, "bad mode/args\n");
    return 2;
}
EOF
gcc -O2 -Wall -o "$HELPER" "$WORK/ab_helper.c" || die "cannot compile helper"

# ------------------------------------------------------------ bpftrace prog ---
BT_PROG="$WORK/anchors.bt"
cat >"$BT_PROG" <<'EOF'
/* syscall tracepoints; enter stores args per tid, exit prints one line per
 * syscall: nsecs comm pid tid syscall args... ret=N */
tracepoint:syscalls:sys_enter_mount { @s1[tid] = str(args->dev_name); @s2[tid] = str(args->dir_name); @s3[tid] = str(args->type); @i1[tid] = args->flags; }
tracepoint:syscalls:sys_exit_mount { printf("%llu %s %d %d mount src=%s dst=%s type=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @s1[tid], @s2[tid], @s3[tid], @i1[tid], args->ret); delete(@s1[tid]); delete(@s2[tid]); delete(@s3[tid]); delete(@i1[tid]); }
tracepoint:syscalls:sys_enter_umount { @s1[tid] = str(args->name); @i1[tid] = args->flags; }
tracepoint:syscalls:sys_exit_umount { printf("%llu %s %d %d umount2 target=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @s1[tid], @i1[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); }
tracepoint:syscalls:sys_enter_unlink { @s1[tid] = str(args->pathname); }
tracepoint:syscalls:sys_exit_unlink { printf("%llu %s %d %d unlink path=%s ret=%d\n", nsecs, comm, pid, tid, @s1[tid], args->ret); delete(@s1[tid]); }
tracepoint:syscalls:sys_enter_unlinkat { @i1[tid] = args->dfd; @s1[tid] = str(args->pathname); @i2[tid] = args->flag; }
tracepoint:syscalls:sys_exit_unlinkat { printf("%llu %s %d %d unlinkat dfd=%d path=%s flag=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); delete(@i2[tid]); }
tracepoint:syscalls:sys_enter_rmdir { @s1[tid] = str(args->pathname); }
tracepoint:syscalls:sys_exit_rmdir { printf("%llu %s %d %d rmdir path=%s ret=%d\n", nsecs, comm, pid, tid, @s1[tid], args->ret); delete(@s1[tid]); }
tracepoint:syscalls:sys_enter_rename { @s1[tid] = str(args->oldname); @s2[tid] = str(args->newname); }
tracepoint:syscalls:sys_exit_rename { printf("%llu %s %d %d rename old=%s new=%s ret=%d\n", nsecs, comm, pid, tid, @s1[tid], @s2[tid], args->ret); delete(@s1[tid]); delete(@s2[tid]); }
tracepoint:syscalls:sys_enter_renameat { @i1[tid] = args->olddfd; @s1[tid] = str(args->oldname); @i2[tid] = args->newdfd; @s2[tid] = str(args->newname); }
tracepoint:syscalls:sys_exit_renameat { printf("%llu %s %d %d renameat olddfd=%d old=%s newdfd=%d new=%s ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], @s2[tid], args->ret); delete(@s1[tid]); delete(@s2[tid]); delete(@i1[tid]); delete(@i2[tid]); }
tracepoint:syscalls:sys_enter_renameat2 { @i1[tid] = args->olddfd; @s1[tid] = str(args->oldname); @i2[tid] = args->newdfd; @s2[tid] = str(args->newname); @i3[tid] = args->flags; }
tracepoint:syscalls:sys_exit_renameat2 { printf("%llu %s %d %d renameat2 olddfd=%d old=%s newdfd=%d new=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], @s2[tid], @i3[tid], args->ret); delete(@s1[tid]); delete(@s2[tid]); delete(@i1[tid]); delete(@i2[tid]); delete(@i3[tid]); }
tracepoint:syscalls:sys_enter_open_tree { @i1[tid] = args->dfd; @s1[tid] = str(args->filename); @i2[tid] = args->flags; }
tracepoint:syscalls:sys_exit_open_tree { printf("%llu %s %d %d open_tree dfd=%d path=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); delete(@i2[tid]); }
tracepoint:syscalls:sys_enter_move_mount { @i1[tid] = args->from_dfd; @s1[tid] = str(args->from_pathname); @i2[tid] = args->to_dfd; @s2[tid] = str(args->to_pathname); @i3[tid] = args->flags; }
tracepoint:syscalls:sys_exit_move_mount { printf("%llu %s %d %d move_mount from_dfd=%d from=%s to_dfd=%d to=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], @s2[tid], @i3[tid], args->ret); delete(@s1[tid]); delete(@s2[tid]); delete(@i1[tid]); delete(@i2[tid]); delete(@i3[tid]); }
tracepoint:syscalls:sys_enter_fsopen { @s1[tid] = str(args->_fs_name); @i1[tid] = args->flags; }
tracepoint:syscalls:sys_exit_fsopen { printf("%llu %s %d %d fsopen fs=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @s1[tid], @i1[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); }
tracepoint:syscalls:sys_enter_fsconfig { @i1[tid] = args->fd; @i2[tid] = args->cmd; @s1[tid] = str(args->_key); @i3[tid] = args->aux; }
tracepoint:syscalls:sys_exit_fsconfig { printf("%llu %s %d %d fsconfig fd=%d cmd=%d key=%s aux=%d ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @i2[tid], @s1[tid], @i3[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); delete(@i2[tid]); delete(@i3[tid]); }
tracepoint:syscalls:sys_enter_fsmount { @i1[tid] = args->fs_fd; @i2[tid] = args->flags; @i3[tid] = args->attr_flags; }
tracepoint:syscalls:sys_exit_fsmount { printf("%llu %s %d %d fsmount fs_fd=%d flags=0x%lx attr=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @i2[tid], @i3[tid], args->ret); delete(@i1[tid]); delete(@i2[tid]); delete(@i3[tid]); }
tracepoint:syscalls:sys_enter_mount_setattr { @i1[tid] = args->dfd; @s1[tid] = str(args->path); @i2[tid] = args->flags; }
tracepoint:syscalls:sys_exit_mount_setattr { printf("%llu %s %d %d mount_setattr dfd=%d path=%s flags=0x%lx ret=%d\n", nsecs, comm, pid, tid, @i1[tid], @s1[tid], @i2[tid], args->ret); delete(@s1[tid]); delete(@i1[tid]); delete(@i2[tid]); }
EOF

# --------------------------------------------------------- audit syscalls -----
AUDIT_OK="" AUDIT_DROPPED=""
if [[ " $TRACERS " == *" auditd "* ]]; then
    for s in $AUDIT_SYSCALLS; do
        if ausyscall x86_64 "$s" >/dev/null 2>&1; then AUDIT_OK+="${AUDIT_OK:+,}$s"; else AUDIT_DROPPED+="$s "; fi
    done
fi

# ---------------------------------------------------------- scratch tmpfs -----
# Source name is an existing absolute path on purpose: fatrace 0.17 only marks
# mounts whose source is an existing absolute path (it skips "tmpfs"), so this
# is what makes W1 visible to fatrace at all.
mount -t tmpfs -o size=4g,nr_inodes=2000000,mode=0755 "$SCRATCH" "$SCRATCH" || die "mount scratch tmpfs"

PRIMED=no
if [[ " $ANCHORS " == *" auditd "* && $PRIME_AUDIT == 1 && "${AUDIT_WAS_ENABLED:-0}" == 0 ]]; then
    auditctl -e 1 >/dev/null && AUDIT_ENABLED_BY_US=1
    auditctl -e 0 >/dev/null
    PRIMED=yes
fi

# ------------------------------------------------------------ tracer hooks ----
# Each tracer kind K: start_K RUNDIR CONFIG (sets TRACER_PID[K] and OUTFILE),
# pat_K PID (true once OUTFILE holds an event of PID; used for ready/drain),
# stop_K RUNDIR, and a case in count_events. To add a tracer, add these.
OUTFILE=""
start_baseline() { OUTFILE=""; }
stop_baseline() { :; }
pat_baseline() { :; }

start_bpftrace() {
    OUTFILE="$1/bpftrace.out"
    bpftrace "$BT_PROG" >"$OUTFILE" 2>"$1/bpftrace.err" &
    TRACER_PID[bpftrace]=$!
}
stop_bpftrace() {
    kill -INT "${TRACER_PID[bpftrace]}" 2>/dev/null; wait_pid_exit "${TRACER_PID[bpftrace]}"; unset 'TRACER_PID[bpftrace]'
}
pat_bpftrace() { [[ -f $OUTFILE ]] && tail -c 4194304 "$OUTFILE" | awk -v p="$1" '$3==p {f=1} END{exit !f}'; }

start_fatrace() {
    OUTFILE="$1/fatrace.out"
    fatrace -o "$OUTFILE" 2>"$1/fatrace.err" &
    TRACER_PID[fatrace]=$!
}
stop_fatrace() {
    kill -INT "${TRACER_PID[fatrace]}" 2>/dev/null; wait_pid_exit "${TRACER_PID[fatrace]}"; unset 'TRACER_PID[fatrace]'
}
pat_fatrace() { [[ -f $OUTFILE ]] && tail -c 4194304 "$OUTFILE" | grep -c "($1): " >/dev/null; }

start_auditd() {
    local d="$1"
    OUTFILE="$d/audit.log"
    sed -e "s|^log_file *=.*|log_file = $OUTFILE|" \
        -e "s|^max_log_file_action *=.*|max_log_file_action = IGNORE|" \
        -e "s|^log_group *=.*|log_group = root|" /etc/audit/auditd.conf >"$d/auditd.conf"
    chmod 0640 "$d/auditd.conf"
    auditd -n -s enable -c "$d" >"$d/auditd.stderr" 2>&1 &
    TRACER_PID[auditd]=$!
    AUDIT_ENABLED_BY_US=1
    local i
    for i in $(seq 100); do
        [[ $(auditctl -s 2>/dev/null | awk '/^pid/{print $2}') == "${TRACER_PID[auditd]}" ]] && break
        sleep 0.1
    done
    [[ $i -lt 100 ]] || die "auditd did not register (see $d/auditd.stderr)"
    # Debian's default rules file preamble (-D, -b 8192, backlog_wait_time 60000, -f 1) + the rule
    auditctl -D >/dev/null
    auditctl -b 8192 >/dev/null
    auditctl --backlog_wait_time 60000 >/dev/null
    auditctl -f 1 >/dev/null
    auditctl -a always,exit -F arch=b64 -S "$AUDIT_OK" -k mnt >/dev/null || die "auditctl -a failed"
    auditctl -l >"$d/rules.txt"
    auditctl -s >"$d/status.before"
}
stop_auditd() {
    local d="$1"
    auditctl -s >"$d/status.after"
    auditctl -D >/dev/null
    kill -TERM "${TRACER_PID[auditd]}" 2>/dev/null; wait_pid_exit "${TRACER_PID[auditd]}"; unset 'TRACER_PID[auditd]'
    auditctl -e 0 >/dev/null
}
pat_auditd() { [[ -f $OUTFILE ]] && tail -c 4194304 "$OUTFILE" | grep -c "^type=SYSCALL.* pid=$1 .*key=\"mnt\"" >/dev/null; }

# mntrace, in the configuration named by the run (MNTRACE_ARGS). Its own
# counts come from its summary at the end of {OUT} (text: "mntrace: N
# events ...", "mntrace: LOST N events ..." or "no events lost"; JSON: the
# "stats" object) and the loss lines on its stderr ("...; total N").
MNTRACE_JSON=0 MNTRACE_EMPTY=0
start_mntrace() {
    local d=$1 t=$2 args
    OUTFILE="$d/mntrace.out"
    args=${MNTRACE_ARGS[$t]//\{OUT\}/$OUTFILE}
    args=${args//\{REC\}/$d/rec}
    MNTRACE_JSON=0; [[ " $args " == *" --json "* ]] && MNTRACE_JSON=1
    MNTRACE_EMPTY=0; is_empty "$t" && MNTRACE_EMPTY=1 && OUTFILE="$d/mntrace.err"
    # shellcheck disable=SC2086 # split on purpose: WORK has no spaces (checked)
    "$MNTRACE" $args >"$d/mntrace.stdout" 2>"$d/mntrace.err" &
    TRACER_PID[mntrace]=$!
    # Live once it says so (its probes are attached); the marker confirms it.
    local i
    for i in $(seq 600); do
        grep -qE '^mntrace: (tracing|recording) |^mntrace floor: [0-9]+ programs attached' "$d/mntrace.err" && return
        kill -0 "${TRACER_PID[mntrace]}" 2>/dev/null || return
        sleep 0.1
    done
}
stop_mntrace() {
    kill -INT "${TRACER_PID[mntrace]}" 2>/dev/null; wait_pid_exit "${TRACER_PID[mntrace]}"; unset 'TRACER_PID[mntrace]'
}
# Lines of mntrace's output that are syscall events of PID: "comm[PID/TID]
# ..." in text, an object with "type":"event" and "pid":PID in JSON (keys
# sorted). Not the records that are no syscall: a walk's top (`rm -rf` of a
# tmpfs's mountpoint ends with the mountpoint's rmdir through the parent's
# mount, a crossing for the kernel) and the guard's actions.
mntrace_events_of() {  # FILE|- PID
    if ((MNTRACE_JSON)); then
        grep -F '"type":"event"' "$1" | grep -F "\"pid\":$2," |
            grep -cvE '"syscall":"(walk_top|guard)"'
    else
        grep -F "[$2/" "$1" | grep -cvE "\[$2/[0-9]+\] (WALK TOP|GUARD) "
    fi
}
# The empty programs write nothing: live once they said they are attached
# (OUTFILE is then their stderr).
pat_mntrace() {
    if ((MNTRACE_EMPTY)); then grep -qE '^mntrace floor: [0-9]+ programs attached' "$OUTFILE"; return; fi
    [[ -f $OUTFILE ]] && (($(tail -c 4194304 "$OUTFILE" | mntrace_events_of - "$1") > 0))
}
# mntrace_counts RUNDIR: "own_events=N lost=M" from its summary and loss lines,
# or "summary=missing"; "programs=N" for the empty programs (no summary).
mntrace_counts() {
    local f="$1/mntrace.out" err="$1/mntrace.err" ev lost
    if ((MNTRACE_EMPTY)); then
        echo "programs=$(sed -n 's/^mntrace floor: \([0-9]*\) programs attached.*/\1/p' "$err" | tail -1)"
        return
    fi
    if ((MNTRACE_JSON)); then
        local st
        st=$(grep -F '"type":"stats"' "$f" | tail -1)
        [[ -n $st ]] || { echo "summary=missing"; return; }
        ev=$(sed -n 's/.*"events":{\([^}]*\)}.*/\1/p' <<<"$st" | tr ',' '\n' | awk -F: '{n += $2} END {print n + 0}')
        lost=$(sed -n 's/.*"lost_total":\([0-9]*\).*/\1/p' <<<"$st")
    else
        ev=$(sed -n 's/^mntrace: \([0-9]*\) events\{0,1\}\b.*/\1/p' "$f" | tail -1)
        [[ -n $ev ]] || { echo "summary=missing"; return; }
        lost=$(sed -n 's/^mntrace: LOST \([0-9]*\) events\{0,1\} in the kernel.*/\1/p' "$f" | tail -1)
    fi
    # The loss lines on stderr carry the running total.
    local seen
    seen=$(sed -n 's/^mntrace: LOST .*; total \([0-9]*\)$/\1/p' "$err" | tail -1)
    ((${seen:-0} > ${lost:-0})) && lost=$seen
    echo "own_events=$ev lost=${lost:-0}"
}

# proc_cpu_ticks PID: utime + stime of the process (all its threads), in ticks.
proc_cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo NA; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12]))   # fields 14 and 15 of stat(5), counted from 3 here
}
# proc_hwm_kib PID: peak resident set size (VmHWM, KiB).
proc_hwm_kib() { awk '/^VmHWM:/ {print $2; f = 1} END {if (!f) print "NA"}' "/proc/$1/status" 2>/dev/null || echo NA; }

# other_links PID...: the bpf links held by processes other than PID...,
# as "N comm,comm" (N = 0: none). Another tracer attached during a run (a
# test, someone's mntrace) hooks the same syscalls, baseline runs included:
# then the baseline is not a baseline, and the figures of that run mean
# little, the floor's least of all. Only looked at, never touched.
other_links() {
    local excl=" $* " f p n=0 who=""
    for f in $(grep -l '^link_type:' /proc/[0-9]*/fdinfo/* 2>/dev/null); do
        p=${f#/proc/}; p=${p%%/*}
        [[ $excl == *" $p "* ]] && continue
        n=$((n + 1)); who+=" $(cat "/proc/$p/comm" 2>/dev/null)[$p]"
    done
    echo "$n $(tr ' ' '\n' <<<"$who" | grep . | sort -u | paste -sd, -)"
}

wait_pid_exit() {  # PID: wait up to 60 s for our own child, then SIGKILL it
    local p=$1 i
    for i in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && { log "pid $p did not exit, SIGKILL"; kill -KILL "$p"; }
    wait "$p" 2>/dev/null
}

# marker T NAME [TIMEOUT_S [RETRY_S]]: run the marker helper (comm ab_marker,
# one unlink(2) + one file create), then, for tracers, wait until the tracer
# has written an event of that marker PID. With RETRY_S, a fresh marker is
# issued every RETRY_S seconds (tracer still attaching). Echoes the seconds
# waited (from the marker's exit), -1 on timeout, -2 if the tracer died.
marker() {
    local t=$1 name=$2 to=${3:-180} retry=${4:-0} k p t0 ti i=0 n=0
    k=$(tkind "$t")
    "$HELPER" marker "$SCRATCH/.mk-$name-$n" "$MARKER_MS" & p=$!; wait "$p"
    t0=$EPOCHREALTIME; ti=$SECONDS
    if [[ $k == baseline ]]; then echo 0; return; fi
    while ((SECONDS - ti < to)); do
        if "pat_$k" "$p"; then
            awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f\n", b-a}'
            return
        fi
        kill -0 "${TRACER_PID[$k]}" 2>/dev/null || { echo -2; return; }
        sleep 0.1
        i=$((i + 1))
        if ((retry > 0 && i % (retry * 10) == 0)); then
            n=$((n + 1)); "$HELPER" marker "$SCRATCH/.mk-$name-$n" "$MARKER_MS" & p=$!; wait "$p"
        fi
    done
    echo -1
}

tkind() { [[ $1 == mntrace-* ]] && echo mntrace || echo "$1"; }

# count_events KIND FILE PID -> number of this tracer's records for PID
count_events() {
    local k=$1 f=$2 p=$3
    [[ -f $f ]] || { echo 0; return; }
    case $k in
        bpftrace) awk -v p="$p" '$3==p && / ret=-?[0-9]+$/ {n++} END{print n+0}' "$f" ;;
        auditd) grep -F " pid=$p " "$f" | grep '^type=SYSCALL' | grep -c 'key="mnt"' ;;
        fatrace) grep -E "^[^ ]*\\($p\\): [^ ]*D" "$f" | wc -l ;;
        mntrace) mntrace_events_of "$f" "$p" ;;
    esac
}

RUN_SEQ=0
# run_config T REP: one full run (W1, W2, W3) under tracer T ("baseline" = none)
run_config() {
    local t=$1 rep=$2 k d s rc p1 p2 p3 p4="" t0 t1 w1 w2 w3 w4="" e2 e3 r2 r3 m lost="" drains="" alive=1 tp="" cpu0=NA cpu1=NA hwm=NA
    local drain=$t   # whose output the drain markers are waited for in
    k=$(tkind "$t")
    # Empty programs write nothing: their markers are issued all the same
    # (the same syscalls in every run), not waited for.
    is_empty "$t" && drain=baseline
    RUN_SEQ=$((RUN_SEQ + 1))
    d="$WORK/run-$RUN_SEQ-$t"; s="$SCRATCH/run-$RUN_SEQ"
    rm -rf "$d"; mkdir -p "$d" "$s/w2" "$s/w3"
    sync
    "$HELPER" mkfiles "$s/w1" "$W1_DIRS" "$W1_FILES" || die "mkfiles failed"
    sync
    "start_$k" "$d" "$t"
    m=$(marker "$t" "start-$RUN_SEQ" 60 1); [[ $m == -* ]] && die "$t did not come up (marker $m); see $d"
    sleep "$SETTLE_S"
    if [[ $k != baseline ]]; then tp=${TRACER_PID[$k]}; cpu0=$(proc_cpu_ticks "$tp"); fi
    local others0 others1
    others0=$(other_links $tp)

    # W1: rm -rf of the tree (timed around fork+exec+wait of rm)
    t0=$EPOCHREALTIME
    rm -rf "$s/w1" &
    p1=$!
    wait "$p1"; rc=$?
    t1=$EPOCHREALTIME
    [[ $rc == 0 ]] || die "rm -rf failed rc=$rc"
    w1=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
    m=$(marker "$drain" "w1-$RUN_SEQ"); drains+="$m/"
    sleep "$PAUSE_S"

    # W2: bind mount churn
    "$HELPER" churn "$s/w2" "$W2_ITERS" >"$d/w2.txt" &
    p2=$!; wait "$p2" || die "churn failed: $(cat "$d/w2.txt")"
    w2=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' "$d/w2.txt")
    e2=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' "$d/w2.txt"); r2=$(sed -n 's/.* retries=\([0-9]*\).*/\1/p' "$d/w2.txt")
    m=$(marker "$drain" "w2-$RUN_SEQ"); drains+="$m/"
    sleep "$PAUSE_S"

    # W3: busy umount + delete through the mount
    "$HELPER" busy "$s/w3" "$W3_ITERS" >"$d/w3.txt" &
    p3=$!; wait "$p3" || die "busy failed: $(cat "$d/w3.txt")"
    w3=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' "$d/w3.txt")
    e3=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' "$d/w3.txt"); r3=$(sed -n 's/.* retries=\([0-9]*\).*/\1/p' "$d/w3.txt")
    m=$(marker "$drain" "w3-$RUN_SEQ"); drains+="$m"
    sleep "$PAUSE_S"

    # W4: getppid() loop (untraced by mntrace; only every-syscall hooks see it)
    if ((W4_ITERS > 0)); then
        "$HELPER" syscalls "$s" "$W4_ITERS" >"$d/w4.txt" &
        p4=$!; wait "$p4" || die "syscalls failed: $(cat "$d/w4.txt")"
        w4=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' "$d/w4.txt")
        sleep "$PAUSE_S"
    fi

    if [[ $k != baseline ]]; then
        kill -0 "$tp" 2>/dev/null || alive=0
        cpu1=$(proc_cpu_ticks "$tp"); hwm=$(proc_hwm_kib "$tp")
    fi
    others1=$(other_links $tp)
    printf '%s\t%s\t%s\t%s\n' "$RUN_SEQ" "$t" "$others0" "$others1" >>"$OTHERS"
    [[ ${others0%% *} == 0 && ${others1%% *} == 0 ]] || log "run $RUN_SEQ $t: other processes hold bpf links: $others0 (start) / $others1 (end)"
    "stop_$k" "$d"

    local c1=NA c2=NA c3=NA c4=NA extra=""
    if [[ $k != baseline ]] && ! is_empty "$t"; then
        c1=$(count_events "$k" "$OUTFILE" "$p1")
        c2=$(count_events "$k" "$OUTFILE" "$p2")
        c3=$(count_events "$k" "$OUTFILE" "$p3")
        [[ -n $p4 ]] && c4=$(count_events "$k" "$OUTFILE" "$p4")
    fi
    if [[ $k != baseline ]]; then
        case $k in
            bpftrace) lost=$(cat "$OUTFILE" "$d/bpftrace.err" | awk '/Lost [0-9]+ events/{for(i=1;i<=NF;i++) if($i=="Lost") n+=$(i+1)} END{print n+0}')
                      extra="lost=$lost" ;;
            auditd) local lb la wb wa
                    lb=$(awk '/^lost/{print $2}' "$d/status.before"); la=$(awk '/^lost/{print $2}' "$d/status.after")
                    wb=$(awk '/^backlog_wait_time_actual/{print $2}' "$d/status.before"); wa=$(awk '/^backlog_wait_time_actual/{print $2}' "$d/status.after")
                    extra="lost_before=$lb lost_after=$la lost=$((la - lb)) backlog_wait_jiffies=$((wa - wb))"
                    [[ -n $KHZ ]] && extra+=" backlog_wait_s=$(awk -v j=$((wa - wb)) -v hz="$KHZ" 'BEGIN{printf "%.2f", j/hz}')" ;;
            fatrace) extra="stderr_lines=$(wc -l <"$d/fatrace.err")" ;;
            mntrace) extra=$(mntrace_counts "$d") ;;
        esac
        [[ $alive == 0 ]] && extra+=" TRACER_DIED"
        [[ $cpu0 != NA && $cpu1 != NA ]] && extra+=" cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        [[ $hwm != NA ]] && extra+=" hwm_kib=$hwm"
        is_empty "$t" || extra+=" out_bytes=$(stat -c %s "$OUTFILE" 2>/dev/null || echo 0) drain_s=$drains"
        if [[ $rep == 1 ]] && ! is_empty "$t"; then
            {
                echo "### $t (run $RUN_SEQ)"
                case $k in
                    bpftrace) for p in $p1 $p2 $p3; do awk -v p="$p" '$3==p' "$OUTFILE" | head -2; done ;;
                    auditd) for p in $p1 $p3; do grep -m1 -F " pid=$p " "$OUTFILE" | sed 's/\x1d/ | /'; done
                            grep -m1 -A6 -F " pid=$p3 " "$OUTFILE" | grep -m4 -E '^type=(PATH|CWD|PROCTITLE)' | sed 's/\x1d/ | /' ;;
                    fatrace) grep -m3 -F "($p1): " "$OUTFILE"; grep -m2 -E "^[^ ]*\\($p1\\): [^ ]*D" "$OUTFILE" ;;
                    mntrace) for p in $p1 $p2 $p3; do grep -m2 -F -e "[$p/" -e "\"pid\":$p," "$OUTFILE"; done ;;
                esac
            } >>"$SAMPLES" 2>/dev/null
        fi
    fi
    printf '%s\t%s\t%s\tW1\t%s\t%s\t%s\n' "$RUN_SEQ" "$t" "$rep" "$w1" "$c1" "$EXP1" >>"$RAW"
    printf '%s\t%s\t%s\tW2\t%s\t%s\t%s\n' "$RUN_SEQ" "$t" "$rep" "$w2" "$c2" "$e2" >>"$RAW"
    printf '%s\t%s\t%s\tW3\t%s\t%s\t%s\n' "$RUN_SEQ" "$t" "$rep" "$w3" "$c3" "$e3" >>"$RAW"
    [[ -n $p4 ]] && printf '%s\t%s\t%s\tW4\t%s\t%s\t%s\n' "$RUN_SEQ" "$t" "$rep" "$w4" "$c4" 0 >>"$RAW"
    ((r2 + r3 > 0)) && extra+="${extra:+ }umount_ebusy_retries=$r2/$r3"
    [[ -n $extra ]] && printf '%s\t%s\t%s\tinfo\t%s\n' "$RUN_SEQ" "$t" "$rep" "$extra" >>"$RAW"
    log "run $RUN_SEQ rep $rep $t: W1=${w1}s W2=${w2}s W3=${w3}s${p4:+ W4=${w4}s} events=$c1/$c2/$c3 expected=$EXP1/$e2/$e3 $extra"
    [[ $KEEP_LOGS == 1 ]] || rm -rf "$d"
    rm -rf "$s"
}

# parallel_rm WORKERS DIR: create WORKERS trees of CAP_DIRS x CAP_FILES under
# DIR, then `rm -rf` them in parallel; sets RM_PIDS and RM_SECONDS. With a
# third argument, starts mntrace-all on it (a run dir) once the trees exist.
parallel_rm() {
    local w=$1 s=$2 i p m t0
    RM_PIDS=()
    for ((i = 1; i <= w; i++)); do "$HELPER" mkfiles "$s/t$i" "$CAP_DIRS" "$CAP_FILES" || die "mkfiles failed"; done
    sync
    if [[ -n ${3:-} ]]; then
        start_mntrace "$3" mntrace-all
        m=$(marker mntrace-all "cap-start-$w" 60 1); [[ $m == -* ]] && die "mntrace-all did not come up (marker $m); see $3"
    fi
    sleep "$SETTLE_S"
    [[ -n ${3:-} ]] && CAP_CPU0=$(proc_cpu_ticks "${TRACER_PID[mntrace]}")
    t0=$EPOCHREALTIME
    for ((i = 1; i <= w; i++)); do rm -rf "$s/t$i" & RM_PIDS+=($!); done
    for p in "${RM_PIDS[@]}"; do wait "$p" || die "rm -rf failed"; done
    RM_SECONDS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.4f", b-a}')
}

# capacity WORKERS: WORKERS parallel `rm -rf` of separate CAP_DIRS x CAP_FILES
# trees, untraced, then under mntrace-all; one row of $CAPACITY: workers,
# generated, delivered, lost, seconds, mntrace CPU seconds, untraced seconds.
capacity() {
    local w=$1 d="$WORK/cap-$1" s="$SCRATCH/cap-$1" m cpu1 delivered=0 counts lost p untraced
    mkdir -p "$d" "$s"
    parallel_rm "$w" "$s"
    untraced=$RM_SECONDS
    parallel_rm "$w" "$s" "$d"
    m=$(marker mntrace-all "cap-end-$w")
    [[ $m == -* ]] && log "capacity $w: the drain marker was not seen ($m)"
    cpu1=$(proc_cpu_ticks "${TRACER_PID[mntrace]}")
    stop_mntrace
    for p in "${RM_PIDS[@]}"; do delivered=$((delivered + $(mntrace_events_of "$d/mntrace.out" "$p"))); done
    counts=$(mntrace_counts "$d")
    lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$counts")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" $((w * (CAP_DIRS * CAP_FILES + CAP_DIRS + 1))) "$delivered" "${lost:-NA}" \
        "$RM_SECONDS" "$(awk -v a="$CAP_CPU0" -v b="$cpu1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')" "$untraced" >>"$CAPACITY"
    log "capacity $w workers: $(tail -1 "$CAPACITY" | tr '\t' ' ') ($counts)"
    [[ $KEEP_LOGS == 1 ]] || rm -rf "$d"
    rm -rf "$s"
}

# ------------------------------------------------------------------- main -----
KHZ=$(zcat /proc/config.gz 2>/dev/null | sed -n 's/^CONFIG_HZ=//p')
[[ -z $KHZ && -r /boot/config-$(uname -r) ]] && KHZ=$(sed -n 's/^CONFIG_HZ=//p' "/boot/config-$(uname -r)")
EXP1=$((W1_DIRS * W1_FILES + W1_DIRS + 1))   # unlinkat: files + dirs + top dir
EXP2=$((2 * W2_ITERS))                       # mount + umount2
EXP3=$((13 * W3_ITERS))                      # mount + umount2(EBUSY) + 10 unlink + umount2
START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T_START=$SECONDS
if [[ $WARMUP == 1 ]]; then
    log "warm-up baseline run (discarded)"
    run_config baseline 0
fi
for ((r = 1; r <= REPS; r++)); do
    n=${#TL[@]}
    if ((n == 0)); then run_config baseline "$r"; continue; fi
    for ((j = 0; j < n; j++)); do
        t=${TL[$(((j + r - 1) % n))]}
        run_config baseline "$r"
        run_config "$t" "$r"
    done
done
for w in $CAP_WORKERS; do capacity "$w"; done
ELAPSED=$((SECONDS - T_START))

# ----------------------------------------------------------------- report -----
AWK_MED='
function med(arr, n,   i, j, t, tmp) {
    for (i = 1; i <= n; i++) tmp[i] = arr[i]
    for (i = 2; i <= n; i++) { t = tmp[i]; for (j = i - 1; j >= 1 && tmp[j] > t; j--) tmp[j+1] = tmp[j]; tmp[j+1] = t }
    return (n % 2) ? tmp[(n+1)/2] : (tmp[n/2] + tmp[n/2+1]) / 2
}'

awk_summary() {
    # raw: seq cfg rep wl value count expected; a tracer run's baseline is run seq-1
    awk -F'\t' -v order="baseline $TRACERS" -v race_only="$RACE_ONLY " -v empty="$EMPTY " -v workloads="$WORKLOADS" "$AWK_MED"'
    $3 == 0 || $4 == "info" { next }
    {
        key = $2 SUBSEP $4; x = $5 + 0; n[key]++; v[key, n[key]] = x
        if (!(key in mn) || x < mn[key]) mn[key] = x
        if (!(key in mx) || x > mx[key]) mx[key] = x
        val[$1, $4] = x; cfg[$1] = $2
        if ($2 != "baseline") { c6 = $6 + 0; e7 = $7 + 0; miss[key] += e7 - c6
            if (!(key in cmin) || c6 < cmin[key]) cmin[key] = c6; if (!(key in cmax) || c6 > cmax[key]) cmax[key] = c6
            if (!(key in emin) || e7 < emin[key]) emin[key] = e7; if (!(key in emax) || e7 > emax[key]) emax[key] = e7
            if (cfg[$1-1] == "baseline") { pn[key]++; pr[key, pn[key]] = x / val[$1-1, $4] } }
    }
    END {
        nw = split(workloads, W, " ")
        nc = split(order, C, " ")
        print "| workload | config | n | median s | min s | max s | ratio of medians vs baseline | paired ratio (median of T_i/B_i) | events delivered (min..max per run) / expected |"
        print "|---|---|---|---|---|---|---|---|---|"
        for (wi = 1; wi <= nw; wi++) {
            w = W[wi]; bk = "baseline" SUBSEP w
            for (i = 1; i <= n[bk]; i++) bb[i] = v[bk, i]
            bm = med(bb, n[bk])
            for (ci = 1; ci <= nc; ci++) {
                c = C[ci]; k = c SUBSEP w
                if (!(k in n)) continue
                for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
                m = med(a, n[k])
                if (c == "baseline") { ratio = "1.00"; pmed = "—"; ev = "—" }
                else {
                    ratio = sprintf("%.2f", m / bm)
                    for (i = 1; i <= pn[k]; i++) pp[i] = pr[k, i]
                    pmed = pn[k] ? sprintf("%.2f", med(pp, pn[k])) : "—"
                    ev = (cmin[k] == cmax[k] ? cmin[k] : cmin[k] ".." cmax[k])
                    xe = (emin[k] == emax[k] ? emin[k] : emin[k] ".." emax[k])
                    if (index(empty, " " c " ")) ev = "— (e)"
                    else if (w == "W4") ev = ev " / 0 (f)"
                    else if (c == "fatrace") ev = (w == "W1") ? ev " D-lines / " xe " deletions (a)" : ev " / n/a (b)"
                    else if (c == "mntrace-filtered") ev = ev " / " xe " (c)"
                    else if (w == "W1" && index(race_only, " " c " ")) ev = ev " / " xe " (d)"
                    else ev = ev " / " xe (miss[k] ? sprintf(" (%d missing in total)", miss[k]) : "")
                }
                printf "| %s | %s | %d | %.3f | %.3f | %.3f | %s | %s | %s |\n", w, c, n[k], m, mn[k], mx[k], ratio, pmed, ev
            }
        }
    }' "$RAW"
}

awk_info() {
    awk -F'\t' -v order="$TRACERS" "$AWK_MED"'
    $4 != "info" || $3 == 0 { next }
    {
        c = $2; runs[c]++
        if ($5 ~ /TRACER_DIED/) died[c]++
        if ($5 ~ /summary=missing/) nosum[c]++
        if (match($5, /umount_ebusy_retries=[0-9]+\/[0-9]+/)) { split(substr($5, RSTART + 21, RLENGTH - 21), rr, "/"); rt[c] += rr[1] + rr[2]; rtot += rr[1] + rr[2] }
        nf = split($5, kv, " ")
        for (i = 1; i <= nf; i++) {
            split(kv[i], q, "=")
            if (q[1] == "lost") { lost[c] += q[2]; haslost[c] = 1 }
            if (q[1] == "own_events") { ne[c]++; own[c, ne[c]] = q[2] }
            if (q[1] == "cpu_s") { ncpu[c]++; cpu[c, ncpu[c]] = q[2] }
            if (q[1] == "hwm_kib") { nh[c]++; hwm[c, nh[c]] = q[2] / 1024 }
            if (q[1] == "backlog_wait_s") { nb[c]++; bw[c, nb[c]] = q[2] }
            if (q[1] == "out_bytes") { no[c]++; ob[c, no[c]] = q[2] / 1048576 }
            if (q[1] == "drain_s") { nd = split(q[2], dd, "/"); for (j = 1; j <= nd; j++) { if (dd[j] < 0) bad[c]++; else if (!(c in dmax) || dd[j] + 0 > dmax[c]) dmax[c] = dd[j] + 0 } }
        }
    }
    function medof(src, cnt, c, fmt,   j, tmp) {
        if (!cnt) return "—"
        for (j = 1; j <= cnt; j++) tmp[j] = src[c, j]
        return sprintf(fmt, med(tmp, cnt))
    }
    END {
        print "| config | runs | tracer died | events lost (sum) | own event count per run, median | tracer CPU per run, median s | peak RSS, median MiB | audit backlog wait per run, median s | max drain lag after a workload, s | output per run, median MiB |"
        print "|---|---|---|---|---|---|---|---|---|---|"
        n = split(order, C, " ")
        for (i = 1; i <= n; i++) {
            c = C[i]; if (!(c in runs)) continue
            printf "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", c, runs[c], died[c] + 0,
                (c in haslost) ? lost[c] (nosum[c] ? " (no summary in " nosum[c] " runs)" : "") : "n/a (not reported)",
                medof(own, ne[c], c, "%d"), medof(cpu, ncpu[c], c, "%.2f"), medof(hwm, nh[c], c, "%.0f"), medof(bw, nb[c], c, "%.2f"),
                (bad[c] ? "timeout in " bad[c] " drains; " : "") ((c in dmax) ? sprintf("%.2f", dmax[c]) : "—"), medof(ob, no[c], c, "%.1f")
        }
        printf "\nTeardown umount2 calls retried after a transient EBUSY (W2/W3 helper, 1 ms back-off; retries are extra traced syscalls and are included in expected): %d in total", rtot
        sep = " ("; for (c in rt) { printf "%s%s: %d", sep, c, rt[c]; sep = ", " } ; if (sep == ", ") printf ")"; print "."
    }' "$RAW"
}

awk_capacity() {
    awk -F'\t' '
    BEGIN {
        print "| `rm -rf` workers | deletions generated | delivered (lines) | lost (mntrace total) | delivered + lost = generated | wall s | deletions/s | delivered/s | untraced: wall s, deletions/s | mntrace CPU s |"
        print "|---|---|---|---|---|---|---|---|---|---|"
    }
    {
        ok = ($4 != "NA" && $3 + $4 == $2) ? "yes" : sprintf("**no** (%+d)", $3 + $4 - $2)
        if (ok != "yes") bad = bad (bad ? ", " : "") $1 " workers"
        printf "| %d | %d | %d | %s | %s | %.3f | %.0f | %.0f | %.3f, %.0f | %s |\n", $1, $2, $3, $4, ok, $5, $2 / $5, $3 / $5, $7, $2 / $7, $6
    }
    END {
        if (NR == 0) print "\n(not run)"
        else if (bad) print "\n**delivered + lost != generated** for " bad ": some deletions are neither delivered nor counted as lost (or the loss total includes other processes'\'' deletions: mntrace counts losses machine-wide)."
        else print "\ndelivered + lost = generated in every row: every deletion was either written out or counted as lost."
    }' "$CAPACITY"
}

{
    echo "# mntrace overhead against the anchors — deletion / mount workloads"
    echo
    echo "- date: $START (run took ${ELAPSED}s)"
    echo "- machine: nproc=$(nproc), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), mem $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel: $(uname -r) ($(uname -v))"
    echo "- tools: $("$MNTRACE" --version 2>/dev/null) ($MNTRACE); $(bpftrace --version 2>/dev/null); auditd $(dpkg-query -W -f='${Version}' auditd 2>/dev/null); fatrace $(dpkg-query -W -f='${Version}' fatrace 2>/dev/null); $(rm --version | head -1)"
    echo "- sizes: W1 ${W1_DIRS}x${W1_FILES} files; W2 ${W2_ITERS} bind+umount iterations; W3 ${W3_ITERS} busy-umount iterations;$( ((W4_ITERS > 0)) && echo " W4 ${W4_ITERS} getppid calls;") reps=$REPS$([[ $WARMUP == 1 ]] && echo " (+1 discarded warm-up baseline)"); capacity: ${CAP_WORKERS:-none} workers x ${CAP_DIRS}x${CAP_FILES} files"
    echo "- order per rep: baseline,T for each tracer T in [$TRACERS], tracer order rotated per rep"
    for t in "${MC[@]}"; do echo "- $t: \`mntrace ${MNTRACE_ARGS[$t]}\`"; done
    echo "- anchors skipped: ${SKIPPED:-none}"
    echo "- other processes' bpf links (another tracer hooking the same syscalls, baseline runs included) at a run's start or end: $(awk -F'\t' '
        { split($3, a, " "); split($4, b, " "); if (a[1] + 0 > 0 || b[1] + 0 > 0) { n++; seqs = seqs (seqs ? "," : "") $1; who[a[2]]; who[b[2]] } }
        END { if (!n) { print "none"; exit } ; w = ""; for (x in who) if (x != "") w = w (w ? "," : "") x
              printf "in %d of %d runs (run seq %s; held by %s): their figures are not clean\n", n, NR, seqs, w }' "$OTHERS")"
    echo "- audit primed (audit_ever_enabled forced to 1 before measuring): $PRIMED; audit enabled at start: ${AUDIT_WAS_ENABLED:-?}"
    [[ " $ANCHORS " == *" auditd "* ]] && echo "- auditctl rule: -a always,exit -F arch=b64 -S $AUDIT_OK -k mnt (dropped, unknown to ausyscall: ${AUDIT_DROPPED:-none}); -b 8192 --backlog_wait_time 60000 -f 1; auditd -n -s enable with Debian auditd.conf except log_file on disk, max_log_file_action=IGNORE"
    echo
    echo "## Results"
    echo
    awk_summary
    echo
    echo "Expected events: W1 = ${W1_DIRS}*${W1_FILES} files + ${W1_DIRS} dirs + 1 top dir unlinkat = $EXP1;"
    echo "W2 = 2*${W2_ITERS} (mount+umount2) = $EXP2; W3 = 13*${W3_ITERS} (mount, umount2=EBUSY, 10x unlink, umount2) = $EXP3;"
    echo "W2/W3 expected per run = syscalls the helper actually issued (the numbers above plus any teardown retries)."
    echo "Counted per workload PID: bpftrace = exit lines; auditd = type=SYSCALL records with key=\"mnt\"; fatrace = lines with a D (delete) flag;"
    echo "mntrace = event lines of the PID in its output (\`comm[PID/TID]\` in text, \`\"type\":\"event\"\` objects with \`\"pid\":PID\` in JSON)."
    echo "Ratio = tracer median / median of all baseline runs; paired ratio = median over reps of tracer run / the baseline run just before it."
    echo
    echo "(a) fatrace 0.17 uses FAN_REPORT_FID: a delete event identifies the parent directory, not the file, and identical"
    echo "    queued events are merged by the kernel, so D-lines are not comparable 1:1 with deletions."
    echo "(b) fatrace sees no mount/umount syscalls, and only marks filesystems present at its start whose mount source is an"
    echo "    existing absolute path (the scratch tmpfs is mounted with source=$SCRATCH for that reason); the per-iteration"
    echo "    tmpfs of W3 is a new superblock, so its deletions are invisible too."
    echo "(c) by design: \`--comm ab_marker\` filters every workload event out in the kernel at syscall entry; this is the"
    echo "    cost of mntrace's own programs attached with nothing to capture (each still runs its entry filter and its exit"
    echo "    lookup); mntrace-empty is the same hooks with empty programs."
    echo "(d) by design: \`--deletes race\` (the default) drops, at syscall entry, deletions that cannot be part of the race;"
    echo "    a plain \`rm -rf\` with no EBUSY unmount anywhere is not captured."
    echo "(e) the floor (\`mntrace floor\`, mntrace-empty*): empty programs that return 0 and emit nothing, so there are no events"
    echo "    to count and no drain to wait for; a run is live once mntrace says \"N programs attached\" on stderr. mntrace-empty:"
    echo "    one on each syscall tracepoint \`trace\` attaches by default (entry and exit); mntrace-empty-raw / -btf: raw_tp /"
    echo "    tp_btf on sys_enter and sys_exit, which run for every syscall of the machine."
    ((W4_ITERS > 0)) && echo "(f) W4 = ${W4_ITERS} getppid(2) calls in a loop (C helper, timed inside): no tracer here traces getppid."
    echo
    echo "### Loss, back-pressure and the tracer's own cost"
    echo
    awk_info
    echo
    echo "auditd: lost = delta of 'auditctl -s' lost over the run; backlog wait = delta of backlog_wait_time_actual (jiffies, HZ=${KHZ:-?}),"
    echo "i.e. time workload tasks were blocked because the 8192-record backlog was full. bpftrace: sum of 'Lost N events'."
    echo "mntrace: lost and own event count from its end-of-run summary (\`mntrace: N events ...\`, \`LOST N events\`; the JSON"
    echo "\`stats\` object with --json) and the loss lines on its stderr; its count covers the whole machine (markers, other processes)."
    echo "Tracer CPU = utime + stime of the tracer's process (all threads, /proc/PID/stat) from when it was live to after the last"
    echo "drain; work done in the kernel on behalf of the workload (eBPF programs, audit records) is charged to the workload, not"
    echo "here. Peak RSS = VmHWM just before the tracer was stopped."
    echo "Drain lag = time from a workload's end until the tracer had written the marker event issued right after it."
    echo
    echo "## Capacity of \`--deletes all\`"
    echo
    echo "\`mntrace ${MNTRACE_ARGS[mntrace-all]}\` while N \`rm -rf\` run in parallel, each of its own ${CAP_DIRS}x${CAP_FILES}-file tree"
    echo "(${CAP_DIRS}*${CAP_FILES} + ${CAP_DIRS} + 1 deletions per tree); one run per N, right after the same untraced;"
    echo "wall = from the first start to the last exit."
    echo
    awk_capacity
    echo
    echo "## Per-run data"
    echo
    echo '```'
    printf 'seq\tconfig\trep\tworkload\tseconds|info\tevents\texpected\n'
    cat "$RAW"
    echo '```'
    echo
    echo "## Sample records (rep 1)"
    echo
    echo '```'
    cut -c1-400 "$SAMPLES"
    echo '```'
}
