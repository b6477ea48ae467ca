//! Ring-buffer record bytes → [`Event`]. Pure: no I/O, no clock. Every length
//! is checked; a malformed record is an error, never a panic. Used the same
//! way for live records and, later, recordings.

use bytes::Bytes;
use thiserror::Error;
use tracer_common::{event::*, EventKind};

use crate::model::*;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("header says {header} bytes, record has {actual}")]
    Length { header: u32, actual: usize },
    #[error("{kind:?}: payload of {got} bytes, expected {want}")]
    Payload {
        kind: EventKind,
        got: u16,
        want: usize,
    },
    #[error("{kind:?}: {got} strings, expected {want}")]
    StrCount {
        kind: EventKind,
        got: u16,
        want: usize,
    },
    #[error("strings overrun the record")]
    StrOverrun,
    #[error("{0} trailing bytes after the strings")]
    Trailing(usize),
    #[error("invalid {0}")]
    BadField(&'static str),
}

/// Read a plain-data struct at `off` (bounds already checked by the caller).
fn read<T: Copy + Default>(b: &[u8], off: usize) -> T {
    let mut v = T::default();
    let n = core::mem::size_of::<T>();
    // Safety: T is one of the `#[repr(C)]` Pod types of tracer-common (all
    // bit patterns valid) and `off + n <= b.len()` is checked by callers.
    unsafe {
        core::ptr::copy_nonoverlapping(b[off..off + n].as_ptr(), &mut v as *mut T as *mut u8, n)
    };
    v
}

/// Decode one record.
pub fn decode(rec: Bytes) -> Result<Event, DecodeError> {
    decode_in(&rec, 0..rec.len())
}

/// Decode the record at `range` of `buf` (the strings are slices of `buf`:
/// no copy, and no reference taken on the record alone).
pub fn decode_in(buf: &Bytes, range: std::ops::Range<usize>) -> Result<Event, DecodeError> {
    let base = range.start;
    let rec = &buf[range];
    let slice = |r: std::ops::Range<usize>| buf.slice(base + r.start..base + r.end);
    let hlen = core::mem::size_of::<Header>();
    if rec.len() < hlen {
        return Err(DecodeError::Short(rec.len()));
    }
    let h: Header = read(rec, 0);
    let kind = EventKind::try_from(h.kind).map_err(DecodeError::UnknownKind)?;
    if h.len as usize != rec.len() {
        return Err(DecodeError::Length {
            header: h.len,
            actual: rec.len(),
        });
    }
    let want = payload_len(kind);
    // A recording made before fields were appended to the kind's payload
    // holds the shorter one: read with those fields zero (not seen).
    let got = h.payload_len as usize;
    let known = got == want || Some(got) == payload_len_before_kernel_probes(kind);
    if !known || hlen + got > rec.len() {
        return Err(DecodeError::Payload {
            kind,
            got: h.payload_len,
            want,
        });
    }
    let nwant = nstr(kind);
    if h.nstr as usize != nwant {
        return Err(DecodeError::StrCount {
            kind,
            got: h.nstr,
            want: nwant,
        });
    }
    let table = hlen + got;
    let strs_at = table + nwant * core::mem::size_of::<StrRef>();
    if strs_at > rec.len() {
        return Err(DecodeError::StrOverrun);
    }
    let str_ref = |i: usize| -> StrRef { read(rec, table + i * core::mem::size_of::<StrRef>()) };
    // Check the lengths first; the strings are then sliced as the event
    // is built (no array of them to fill and move).
    let mut end = strs_at;
    for i in 0..nwant {
        end += str_ref(i).len as usize;
        if end > rec.len() {
            return Err(DecodeError::StrOverrun);
        }
    }
    if end != rec.len() {
        return Err(DecodeError::Trailing(rec.len() - end));
    }
    let mut padded = [0u8; PAYLOAD_MAX];
    padded[..got].copy_from_slice(&rec[hlen..hlen + got]);
    let p = &padded[..want];
    let (mut i, mut off) = (0, strs_at);
    let mut next = move || {
        if i >= nwant {
            return Str::default(); // (each kind takes exactly nwant)
        }
        let r = str_ref(i);
        let start = off;
        i += 1;
        off += r.len as usize;
        Str {
            bytes: slice(start..off),
            flags: r.flags,
        }
    };
    let args = match kind {
        EventKind::Mount => {
            let a: MountArgs = read(p, 0);
            let (source, target, fstype, data) = (next(), next(), next(), next());
            Args::Mount {
                source,
                target,
                fstype,
                data,
                flags: a.flags,
                cwd: dir(&a.cwd, next()),
            }
        }
        EventKind::Umount => {
            let a: UmountArgs = read(p, 0);
            let target = next();
            Args::Umount {
                target,
                flags: a.flags,
                cwd: dir(&a.cwd, next()),
                target_mount: opt_dir(&a.target, Str::default()),
            }
        }
        EventKind::Unlink | EventKind::Unlinkat | EventKind::Rmdir | EventKind::UringUnlinkat => {
            let a: DeleteArgs = read(p, 0);
            let pathname = next();
            Args::Delete {
                dfd: a.dfd,
                pathname,
                flags: a.flags,
                dir: dir(&a.dir, next()),
                capture: a.capture,
                origin_mnt_id: a.origin_mnt_id,
                // The kernel reaches vfs_rmdir before the filesystem says
                // ENOTEMPTY: an inode only where the deletion succeeded.
                victim: if h.ret == 0 { victim(&a.victim) } else { None },
            }
        }
        EventKind::Rename
        | EventKind::Renameat
        | EventKind::Renameat2
        | EventKind::UringRenameat => {
            let a: RenameArgs = read(p, 0);
            let oldpath = next();
            let old_dir = dir(&a.old_dir, next());
            let newpath = next();
            Args::Rename {
                olddfd: a.olddfd,
                oldpath,
                newdfd: a.newdfd,
                newpath,
                flags: a.flags,
                old_dir,
                new_dir: dir(&a.new_dir, next()),
                capture: a.capture,
            }
        }
        EventKind::OpenTree => {
            let a: OpenTreeArgs = read(p, 0);
            let pathname = next();
            let d = dir(&a.dir, next());
            Args::OpenTree {
                dfd: a.dfd,
                pathname,
                flags: a.flags,
                dir: d,
                result: opt_dir(&a.result, next()),
            }
        }
        EventKind::MoveMount => {
            let a: MoveMountArgs = read(p, 0);
            let (from_path, to_path) = (next(), next());
            let from = dir(&a.from, next());
            Args::MoveMount {
                from_dfd: a.from_dfd,
                from_path,
                to_dfd: a.to_dfd,
                to_path,
                flags: a.flags,
                from,
                to: dir(&a.to, next()),
            }
        }
        EventKind::MountSetattr => {
            let a: MountSetattrArgs = read(p, 0);
            let pathname = next();
            Args::MountSetattr {
                dfd: a.dfd,
                pathname,
                at_flags: a.at_flags,
                size: a.size,
                attr: (a.attr_status == 0).then_some(MountAttr {
                    attr_set: a.attr_set,
                    attr_clr: a.attr_clr,
                    propagation: a.propagation,
                    userns_fd: a.userns_fd,
                    userns_ino: a.userns_ino,
                }),
                dir: dir(&a.dir, next()),
            }
        }
        EventKind::Fsopen => {
            let a: FsopenArgs = read(p, 0);
            Args::Fsopen {
                fs_name: next(),
                flags: a.flags,
            }
        }
        EventKind::Fsconfig => {
            let a: FsconfigArgs = read(p, 0);
            let (key, value) = (next(), next());
            Args::Fsconfig {
                fd: a.fd,
                cmd: a.cmd,
                key,
                value,
                aux: a.aux,
                aux_dir: opt_dir(&a.aux_dir, next()),
            }
        }
        EventKind::Fsmount => {
            let a: FsmountArgs = read(p, 0);
            Args::Fsmount {
                fs_fd: a.fs_fd,
                flags: a.flags,
                attr_flags: a.attr_flags,
                result: opt_dir(&a.result, next()),
            }
        }
        EventKind::Guard => {
            let a: GuardArgs = read(p, 0);
            Args::Guard(Guard {
                action: GuardAction::from_kernel(a.action)
                    .ok_or(DecodeError::BadField("guard action"))?,
                trigger: a.trigger,
                fd: (a.fd != GUARD_FD_UNKNOWN).then_some(a.fd),
                signal: a.signal,
                busy_ns: a.busy_ns,
                mount: dir(&a.mount, next()),
                origin_mnt_id: a.origin_mnt_id,
            })
        }
        EventKind::WalkTop => {
            let a: WalkTopArgs = read(p, 0);
            Args::WalkTop {
                dir: dir(&a.dir, next()),
                origin_mnt_id: a.origin_mnt_id,
            }
        }
    };
    let comm_len = h.comm.iter().position(|&c| c == 0).unwrap_or(h.comm.len());
    let comm_off = core::mem::offset_of!(Header, comm);
    Ok(Event {
        kind,
        ts_ns: h.ts_ns,
        duration_ns: h.duration_ns,
        ret: h.ret,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        mnt_ns: h.mnt_ns,
        cgroup_id: h.cgroup_id,
        comm: slice(comm_off..comm_off + comm_len),
        args,
    })
}

fn dir(d: &DirRef, path: Str) -> Dir {
    Dir {
        mnt_id: d.mnt_id,
        mnt_id_unique: d.mnt_id_unique,
        mnt_ns: d.mnt_ns,
        dev: d.dev,
        ino: d.ino,
        flags: d.flags,
        path,
        rel_off: d.rel_off,
    }
}

fn victim(v: &tracer_common::event::Victim) -> Option<crate::model::Victim> {
    (v.flags & VICTIM_SEEN != 0).then_some(crate::model::Victim {
        ino: v.ino,
        size: v.size,
        dev: v.dev,
        nlink: v.nlink,
        mode: v.mode,
        rmdir: v.flags & VICTIM_RMDIR != 0,
    })
}

/// A dir that may not have been resolved at all (flags 0: not attempted).
fn opt_dir(d: &DirRef, path: Str) -> Option<Dir> {
    (d.flags != 0).then(|| dir(d, path))
}

/// Build a record the way the kernel does (for tests and fuzzing).
pub fn encode<P: Copy>(hdr: Header, payload: &P, strs: &[Str]) -> Vec<u8> {
    let mut h = hdr;
    let plen = core::mem::size_of::<P>();
    let total = core::mem::size_of::<Header>()
        + plen
        + strs.len() * core::mem::size_of::<StrRef>()
        + strs.iter().map(|s| s.bytes.len()).sum::<usize>();
    h.len = total as u32;
    h.payload_len = plen as u16;
    h.nstr = strs.len() as u16;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(as_bytes(&h));
    out.extend_from_slice(as_bytes(payload));
    for s in strs {
        let r = StrRef {
            len: s.bytes.len() as u16,
            flags: s.flags,
        };
        out.extend_from_slice(as_bytes(&r));
    }
    for s in strs {
        out.extend_from_slice(&s.bytes);
    }
    out
}

fn as_bytes<T>(v: &T) -> &[u8] {
    // Safety: only used with the padding-free `#[repr(C)]` types of
    // tracer-common.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::uapi::{AT_REMOVEDIR, EBUSY};

    fn hdr(kind: EventKind) -> Header {
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"rm");
        Header {
            kind: kind as u32,
            ts_ns: 1_000,
            duration_ns: 5,
            ret: -i64::from(EBUSY),
            pid: 10,
            tid: 11,
            ppid: 1,
            mnt_ns: 4026531841,
            comm,
            ..Default::default()
        }
    }

    fn delete_args() -> DeleteArgs {
        DeleteArgs {
            dfd: 3,
            flags: AT_REMOVEDIR,
            capture: CAP_BUSY,
            origin_mnt_id: 0,
            dir: DirRef {
                mnt_id: 42,
                flags: DIR_RESOLVED | DIR_FROM_FD,
                rel_off: 4,
                ..Default::default()
            },
            victim: tracer_common::event::Victim {
                ino: 77,
                size: 0,
                dev: 254 << 20 | 1,
                nlink: 2,
                mode: 0o040755,
                flags: VICTIM_SEEN | VICTIM_RMDIR,
            },
        }
    }

    fn delete_record() -> Vec<u8> {
        delete_record_returning(-i64::from(EBUSY))
    }

    fn delete_record_returning(ret: i64) -> Vec<u8> {
        let mut h = hdr(EventKind::Unlinkat);
        h.ret = ret;
        encode(
            h,
            &delete_args(),
            &[Str::new(&b"f\xff\nx"[..]), Str::new(&b"/mnt/a b"[..])],
        )
    }

    #[test]
    fn decodes_the_removed_inode_of_a_deletion_that_succeeded() {
        let failed = decode(Bytes::from(delete_record())).expect("valid record");
        let Args::Delete { victim, .. } = failed.args else {
            panic!("wrong args {:?}", failed.args)
        };
        assert_eq!(victim, None, "a failed deletion removed nothing");
        let ev = decode(Bytes::from(delete_record_returning(0))).expect("valid record");
        let Args::Delete { victim, .. } = ev.args else {
            panic!("wrong args {:?}", ev.args)
        };
        let v = victim.expect("the victim was seen");
        assert_eq!((v.ino, v.size, v.nlink, v.mode), (77, 0, 2, 0o040755));
        assert_eq!((v.file_type(), v.rmdir, v.last_link()), ("dir", true, true));
    }

    #[test]
    fn reads_a_delete_recorded_before_the_victim_was_appended() {
        // The payload as recordings made before the kernel probe set hold
        // it: `DeleteArgs` without its last field.
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Before {
            dfd: i32,
            flags: u32,
            capture: u32,
            origin_mnt_id: u32,
            dir: DirRef,
        }
        let a = delete_args();
        let before = Before {
            dfd: a.dfd,
            flags: a.flags,
            capture: a.capture,
            origin_mnt_id: a.origin_mnt_id,
            dir: a.dir,
        };
        assert_eq!(
            Some(core::mem::size_of::<Before>()),
            payload_len_before_kernel_probes(EventKind::Unlinkat)
        );
        let rec = encode(
            hdr(EventKind::Unlinkat),
            &before,
            &[Str::new(&b"f"[..]), Str::new(&b"/mnt/a b"[..])],
        );
        let ev = decode(Bytes::from(rec)).expect("an older layout decodes");
        let Args::Delete {
            dfd, dir, victim, ..
        } = ev.args
        else {
            panic!("wrong args {:?}", ev.args)
        };
        assert_eq!((dfd, dir.mnt_id, victim), (3, 42, None));
        assert_eq!(&dir.path.bytes[..], b"/mnt/a b");
    }

    #[test]
    fn decodes_a_delete_exactly() {
        let ev = decode(Bytes::from(delete_record())).expect("valid record");
        assert_eq!(ev.kind, EventKind::Unlinkat);
        assert_eq!(ev.errno(), Some(EBUSY));
        assert_eq!(&ev.comm[..], b"rm");
        let Args::Delete {
            dfd,
            pathname,
            flags,
            dir,
            capture,
            ..
        } = ev.args
        else {
            panic!("wrong args {:?}", ev.args)
        };
        assert_eq!((dfd, flags, capture), (3, AT_REMOVEDIR, CAP_BUSY));
        assert_eq!(&pathname.bytes[..], b"f\xff\nx");
        assert_eq!(dir.mnt_id, 42);
        assert_eq!(&dir.path.bytes[..], b"/mnt/a b");
        assert_eq!(dir.rel_path().as_deref(), Some(&b"/a b"[..]));
    }

    fn guard_record(action: u32, fd: i32) -> Vec<u8> {
        let args = GuardArgs {
            action,
            trigger: GUARD_AT_LISTING,
            fd,
            signal: tracer_common::uapi::SIGSTOP,
            busy_ns: 900,
            mount: DirRef {
                mnt_id: 65,
                mnt_id_unique: 0x8000_0041,
                flags: DIR_RESOLVED | DIR_IDMAPPED,
                rel_off: 7,
                ..Default::default()
            },
            origin_mnt_id: 0,
            _pad: 0,
        };
        let mut h = hdr(EventKind::Guard);
        h.ret = 0;
        encode(h, &args, &[Str::new(&b"/mnt/\xffb"[..])])
    }

    #[test]
    fn decodes_a_guard_action_exactly_and_rejects_an_unknown_action() {
        let ev = decode(Bytes::from(guard_record(
            tracer_common::config::GUARD_STOP,
            9,
        )))
        .expect("valid record");
        assert_eq!(
            (ev.kind, ev.ret, ev.pid, ev.tid),
            (EventKind::Guard, 0, 10, 11)
        );
        let Args::Guard(g) = ev.args else {
            panic!("wrong args {:?}", ev.args)
        };
        assert_eq!(g.action, GuardAction::Stopped);
        assert_eq!(
            (g.trigger, g.fd, g.signal, g.busy_ns),
            (GUARD_AT_LISTING, Some(9), 19, 900)
        );
        assert_eq!((g.mount.mnt_id, g.mount.mnt_id_unique), (65, 0x8000_0041));
        assert_eq!(&g.mount.path.bytes[..], b"/mnt/\xffb");
        assert_eq!(g.mount.mountpoint().as_deref(), Some(&b"/mnt/\xffb"[..]));
        assert_eq!(g.mount.rel_path().as_deref(), Some(&b"/"[..]));
        assert_eq!(
            decode(Bytes::from(guard_record(0, 9))),
            Err(DecodeError::BadField("guard action"))
        );
        // A denial's hook sees the directory, not the fd: no fd, not -1.
        let denial = decode(Bytes::from(guard_record(
            tracer_common::config::GUARD_DENY,
            GUARD_FD_UNKNOWN,
        )))
        .expect("valid record");
        let Args::Guard(g) = denial.args else {
            panic!("wrong args {:?}", denial.args)
        };
        assert_eq!((g.action, g.fd), (GuardAction::Denied, None));
    }

    #[test]
    fn decodes_a_walk_top_exactly() {
        let args = WalkTopArgs {
            dir: DirRef {
                mnt_id: 44,
                mnt_id_unique: 0x8000_002c,
                flags: DIR_RESOLVED | DIR_FROM_FD,
                ino: 77,
                rel_off: 4,
                ..Default::default()
            },
            origin_mnt_id: 44,
            _pad: 0,
        };
        let mut h = hdr(EventKind::WalkTop);
        h.ret = 0;
        let rec = encode(h, &args, &[Str::new(&b"/var/pods/\xff\n"[..])]);
        let ev = decode(Bytes::from(rec)).expect("valid record");
        assert_eq!((ev.kind, ev.ret, ev.tid), (EventKind::WalkTop, 0, 11));
        let Args::WalkTop { dir, origin_mnt_id } = ev.args else {
            panic!("wrong args {:?}", ev.args)
        };
        assert_eq!(origin_mnt_id, 44);
        assert_eq!((dir.mnt_id, dir.ino, dir.from()), (44, 77, DirFrom::Fd));
        assert_eq!(&dir.path.bytes[..], b"/var/pods/\xff\n");
        assert_eq!(dir.rel_path().as_deref(), Some(&b"/pods/\xff\n"[..]));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let rec = delete_record();
        for cut in 0..rec.len() {
            assert!(
                decode(Bytes::copy_from_slice(&rec[..cut])).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn corrupt_fields_are_rejected() {
        let mut rec = delete_record();
        rec[0] = 99;
        assert_eq!(decode(Bytes::from(rec)), Err(DecodeError::UnknownKind(99)));
        let mut rec = delete_record();
        let table = core::mem::size_of::<Header>() + core::mem::size_of::<DeleteArgs>();
        rec[table] = 0xff; // first string claims 255+ bytes
        assert_eq!(decode(Bytes::from(rec)), Err(DecodeError::StrOverrun));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift bytes with a plausible header.
        let base = delete_record();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let mut rec = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % rec.len();
                rec[i] = (x >> 32) as u8;
            }
            let _ = decode(Bytes::from(rec));
        }
    }
}
