//! One mount at a time from the kernel: `statmount(2)` (Linux 6.8+; mounts
//! of another namespace with its 64-bit id, 6.11+) instead of rereading a
//! whole `/proc/PID/mountinfo`. Its cost does not grow with the number of
//! mounts, and it identifies a mount by its 64-bit unique id, which the
//! kernel never reuses (the 32-bit ids of mountinfo are reused at once).
//!
//! Where the kernel has no `statmount` (or refuses a namespace), callers
//! fall back to reading mountinfo.

use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use tracer_common::uapi::{
    MOUNT_ATTR_IDMAP, MS_SHARED, MS_SLAVE, MS_UNBINDABLE, NS_GET_MNTNS_ID, SYS_LISTMOUNT,
    SYS_STATMOUNT,
};

use super::mount_table::MountInfo;

// linux/mount.h: what statmount is asked for.
const SB_BASIC: u64 = 0x1;
const MNT_BASIC: u64 = 0x2;
const MNT_ROOT: u64 = 0x8;
const MNT_POINT: u64 = 0x10;
const FS_TYPE: u64 = 0x20;
const MNT_OPTS: u64 = 0x80;
const SB_SOURCE: u64 = 0x200;
const ASKED: u64 = SB_BASIC | MNT_BASIC | MNT_ROOT | MNT_POINT | FS_TYPE | MNT_OPTS | SB_SOURCE;
/// `struct mnt_id_req` with `mnt_ns_id` (MNT_ID_REQ_SIZE_VER1).
const REQ_SIZE_VER1: u32 = 32;
/// `struct statmount` before its strings.
const FIXED: usize = 512;
/// Room for the strings: two paths of PATH_MAX, the source, the options.
const BUF: usize = FIXED + 4 * 4096;

// linux/mount.h MOUNT_ATTR_* (statmount's mnt_attr) and MS_* propagation.
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const ATTR_NOATIME: u64 = 0x10;
const ATTR_STRICTATIME: u64 = 0x20;
const ATTR_NODIRATIME: u64 = 0x80;

/// Asks the kernel about single mounts; keeps its buffer.
pub struct StatMount {
    buf: Vec<u64>,
    /// listmount's answers (kept: it is asked at every table refresh).
    list_buf: Vec<u64>,
    /// The kernel has no statmount (or refused it in a way that will not
    /// change): not asked again.
    unavailable: bool,
}

/// Set (to anything) to never ask statmount/listmount, as on kernels
/// before 6.8: the mount tables come from mountinfo alone. For testing that
/// path on a newer kernel.
pub const NO_STATMOUNT_ENV: &str = "MNTRACE_NO_STATMOUNT";

impl Default for StatMount {
    fn default() -> Self {
        StatMount {
            buf: vec![0; BUF / 8],
            list_buf: Vec::new(),
            unavailable: std::env::var_os(NO_STATMOUNT_ENV).is_some(),
        }
    }
}

impl StatMount {
    /// Whether statmount can still be tried.
    pub fn available(&self) -> bool {
        !self.unavailable
    }

    /// The mount with 64-bit id `unique` in the namespace with 64-bit id
    /// `ns_id`, as a mountinfo line would give it (the mountpoint as that
    /// namespace sees it).
    pub fn mount(&mut self, unique: u64, ns_id: u64) -> io::Result<MountInfo> {
        if self.unavailable {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        let mut req = [0u8; REQ_SIZE_VER1 as usize];
        req[0..4].copy_from_slice(&REQ_SIZE_VER1.to_ne_bytes());
        req[8..16].copy_from_slice(&unique.to_ne_bytes());
        req[16..24].copy_from_slice(&ASKED.to_ne_bytes());
        req[24..32].copy_from_slice(&ns_id.to_ne_bytes());
        let len = self.buf.len() * 8;
        // SAFETY: `req` is a valid mnt_id_req of its stated size; the
        // kernel writes at most `len` bytes into `buf`.
        let r = unsafe {
            libc::syscall(
                SYS_STATMOUNT,
                req.as_ptr(),
                self.buf.as_mut_ptr(),
                len,
                0u32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
                self.unavailable = true;
            }
            return Err(e);
        }
        // SAFETY: a u64 buffer viewed as bytes.
        let b = unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), len) };
        parse(b)
    }
}

impl StatMount {
    /// The 64-bit ids of every mount of the namespace with 64-bit id
    /// `ns_id`, in the kernel's order (by id: the order of mountinfo),
    /// as that namespace's root sees them (listmount, 6.8+; another
    /// namespace by id, 6.11+). Nothing is looked up by path.
    pub fn list(&mut self, ns_id: u64) -> io::Result<Vec<u64>> {
        if self.unavailable {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        let mut ids: Vec<u64> = Vec::new();
        // The kernel's answers land in a buffer kept from call to call.
        let mut batch = std::mem::take(&mut self.list_buf);
        batch.resize(LIST_BATCH, 0);
        let listed = self.list_into(ns_id, &mut ids, &mut batch);
        self.list_buf = batch;
        listed.map(|()| ids)
    }

    fn list_into(&mut self, ns_id: u64, ids: &mut Vec<u64>, batch: &mut [u64]) -> io::Result<()> {
        loop {
            // Where to go on from: after the last id received.
            let after = ids.last().copied().unwrap_or(0);
            let mut req = [0u8; REQ_SIZE_VER1 as usize];
            req[0..4].copy_from_slice(&REQ_SIZE_VER1.to_ne_bytes());
            req[8..16].copy_from_slice(&LSMT_ROOT.to_ne_bytes());
            req[16..24].copy_from_slice(&after.to_ne_bytes());
            req[24..32].copy_from_slice(&ns_id.to_ne_bytes());
            // SAFETY: `req` is a valid mnt_id_req of its stated size; the
            // kernel writes at most `batch.len()` ids into `batch`.
            let r = unsafe {
                libc::syscall(
                    SYS_LISTMOUNT,
                    req.as_ptr(),
                    batch.as_mut_ptr(),
                    batch.len(),
                    0u32,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = (r as usize).min(batch.len());
            ids.extend_from_slice(&batch[..n]);
            if n < batch.len() {
                return Ok(());
            }
            if ids.len() > LIST_MAX {
                return Err(bad("more mounts than a table holds"));
            }
        }
    }
}

/// listmount: every mount of the namespace, from its root.
const LSMT_ROOT: u64 = u64::MAX;
/// Ids asked for per listmount call.
const LIST_BATCH: usize = 1024;
/// Mounts of one namespace listed at most (beyond: mountinfo is read).
const LIST_MAX: usize = 1 << 20;

/// The 64-bit id of the mount namespace of process `pid` (Linux 6.11+).
pub fn ns_id_of_pid(pid: u32) -> io::Result<u64> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    let mut id = 0u64;
    // SAFETY: NS_GET_MNTNS_ID writes one u64.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_MNTNS_ID as _, &mut id) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// Whether statmount answers here for a namespace given by id: asks about
/// this process's root mount.
pub fn probe() -> io::Result<()> {
    let ns = ns_id_of_pid(std::process::id())?;
    StatMount::default()
        .mount(unique_mount_id(c"/")?, ns)
        .map(|_| ())
}

/// The 64-bit id of the mount `path` is on (statx, 6.8+).
fn unique_mount_id(path: &std::ffi::CStr) -> io::Result<u64> {
    mount_and_inode(path).map(|(m, _)| m)
}

/// The 64-bit id of the mount `path` is on and its inode number (statx,
/// 6.8+): which directory a root directory is (`/`, `/proc/PID/root`).
pub fn mount_and_inode(path: &std::ffi::CStr) -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero statx is valid; statx fills it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and buffer.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            STATX_MNT_ID_UNIQUE | libc::STATX_INO,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let need = STATX_MNT_ID_UNIQUE | libc::STATX_INO;
    if stx.stx_mask & need != need {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok((stx.stx_mnt_id, stx.stx_ino))
}

/// statx(2): the 64-bit mount id in `stx_mnt_id` (6.8+).
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("statmount: {what}"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `struct statmount` (its fixed part, then NUL-terminated strings at the
/// offsets it gives) → a mountinfo record.
fn parse(b: &[u8]) -> io::Result<MountInfo> {
    let size = u32_at(b, 0) as usize;
    if size < FIXED || size > b.len() {
        return Err(bad("short answer"));
    }
    let b = &b[..size];
    let mask = u64_at(b, 8);
    let need = SB_BASIC | MNT_BASIC | MNT_ROOT | MNT_POINT | FS_TYPE;
    if mask & need != need {
        return Err(bad("the kernel did not fill in the basic fields"));
    }
    let string = |field_at: usize, bit: u64| -> io::Result<Bytes> {
        if mask & bit == 0 {
            return Ok(Bytes::new());
        }
        let start = FIXED + u32_at(b, field_at) as usize;
        let s = b.get(start..).ok_or_else(|| bad("string out of range"))?;
        let end = s
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| bad("string without NUL"))?;
        Ok(Bytes::copy_from_slice(&s[..end]))
    };
    let (major, minor) = (u32_at(b, 16), u32_at(b, 20));
    let attr = u64_at(b, 64);
    let propagation = u64_at(b, 72);
    let (peer_group, master) = (u64_at(b, 80), u64_at(b, 88));
    let mut options = String::from(if attr & ATTR_RDONLY != 0 { "ro" } else { "rw" });
    for (bit, name) in [
        (ATTR_NOSUID, "nosuid"),
        (ATTR_NODEV, "nodev"),
        (ATTR_NOEXEC, "noexec"),
        (ATTR_NOATIME, "noatime"),
        (ATTR_NODIRATIME, "nodiratime"),
        (MOUNT_ATTR_IDMAP, "idmapped"),
    ] {
        if attr & bit != 0 {
            options.push(',');
            options.push_str(name);
        }
    }
    if attr & (ATTR_NOATIME | ATTR_STRICTATIME) == 0 {
        options.push_str(",relatime");
    }
    let mut tags = Vec::new();
    if propagation & MS_SHARED != 0 {
        tags.push(format!("shared:{peer_group}"));
    }
    if propagation & MS_SLAVE != 0 {
        tags.push(format!("master:{master}"));
    }
    if propagation & MS_UNBINDABLE != 0 {
        tags.push("unbindable".to_owned());
    }
    let text = |v: Bytes| String::from_utf8_lossy(&v).into_owned();
    Ok(MountInfo {
        mnt_id: u32_at(b, 56),
        parent_id: u32_at(b, 60),
        dev: (major << 20) | minor,
        root: string(104, MNT_ROOT)?,
        mountpoint: string(108, MNT_POINT)?,
        idmapped: attr & MOUNT_ATTR_IDMAP != 0,
        options,
        propagation: tags.join(" "),
        fstype: text(string(36, FS_TYPE)?),
        source: string(124, SB_SOURCE)?,
        super_options: text(string(4, MNT_OPTS)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::mount_table::parse_mountinfo;

    /// Every mount of this process's namespace, asked one by one, is its
    /// mountinfo line (the fields the correlator reads).
    #[test]
    fn a_mount_is_its_mountinfo_line() {
        let mut sm = StatMount::default();
        let ns = ns_id_of_pid(std::process::id()).expect("NS_GET_MNTNS_ID (6.11+)");
        let table = parse_mountinfo(&std::fs::read("/proc/self/mountinfo").unwrap()).unwrap();
        let root = unique_mount_id(c"/").expect("statx STATX_MNT_ID_UNIQUE (6.8+)");
        let m = sm.mount(root, ns).expect("statmount of /");
        let line = table
            .iter()
            .find(|l| l.mnt_id == m.mnt_id)
            .expect("in mountinfo");
        assert_eq!(
            (
                &m.root,
                &m.mountpoint,
                m.dev,
                m.parent_id,
                &m.fstype,
                &m.source
            ),
            (
                &line.root,
                &line.mountpoint,
                line.dev,
                line.parent_id,
                &line.fstype,
                &line.source
            )
        );
        assert_eq!(m.idmapped, line.idmapped);
        assert_eq!(m.options.split(',').next(), line.options.split(',').next());
        // Every mount of the namespace, listed: the mounts of mountinfo,
        // in its order.
        let ids = sm.list(ns).expect("listmount");
        let listed: Vec<u32> = ids
            .iter()
            .map(|&u| sm.mount(u, ns).unwrap().mnt_id)
            .collect();
        let read: Vec<u32> = table.iter().map(|l| l.mnt_id).collect();
        assert_eq!(listed, read);
        // An id no mount has.
        // (ENOENT, which the table's refresh reads as "unmounted since it
        // was listed").
        let gone = sm.mount(u64::MAX - 7, ns).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENOENT), "{gone}");
        assert!(sm.available());
        probe().expect("statmount answers here");
    }
}
