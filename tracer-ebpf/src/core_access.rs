//! Typed kernel pointers over the CO-RE accessors of `c/core.c`.
//!
//! Each wrapper holds a kernel address; accessors return `None` when the read
//! fails or yields NULL, so callers cannot forget a failed read.

#[allow(improper_ctypes)]
extern "C" {
    fn mt_cur_ppid() -> u32;
    fn mt_cur_mnt_ns() -> u32;
    fn mt_cur_fs_path(which: u32, mnt: *mut u64, dentry: *mut u64) -> i32;
    fn mt_cur_fd_file(fd: i32) -> u64;
    fn mt_file_path(file: u64, mnt: *mut u64, dentry: *mut u64) -> i32;
    fn mt_file_ino(file: u64) -> u64;
    fn mt_real_mount(vfsmount: u64) -> u64;
    fn mt_mount_parent(m: u64) -> u64;
    fn mt_mount_mountpoint(m: u64) -> u64;
    fn mt_mount_root(m: u64) -> u64;
    fn mt_mount_id(m: u64) -> u32;
    fn mt_mount_id_unique(m: u64) -> u64;
    fn mt_mount_ns(m: u64) -> u32;
    fn mt_mount_idmapped(m: u64) -> i32;
    fn mt_mount_userns_idmapped(m: u64) -> i32;
    fn mt_dentry_parent(d: u64) -> u64;
    fn mt_dentry_name(d: u64, len: *mut u32) -> u64;
    fn mt_dentry_identity(d: u64, hash_len: *mut u64) -> u64;
    fn mt_dentry_ino(d: u64) -> u64;
    fn mt_dentry_mode(d: u64) -> u32;
    fn mt_dentry_dev(d: u64) -> u32;
    fn mt_dentry_sb_root(d: u64) -> u64;
    fn mt_dentry_inode(d: u64, size: *mut u64, nlink: *mut u32, mode: *mut u32) -> u64;
    fn mt_path(path: u64, mnt: *mut u64, dentry: *mut u64) -> i32;
    fn mt_uring_unlink(req: u64, dfd: *mut i32, flags: *mut u32) -> u64;
    fn mt_uring_rename(
        req: u64,
        new_name: *mut u64,
        old_dfd: *mut i32,
        new_dfd: *mut i32,
        flags: *mut u32,
    ) -> u64;
}

#[inline(always)]
fn nonzero(v: u64) -> Option<u64> {
    if v == 0 {
        None
    } else {
        Some(v)
    }
}

/// The current task (its fields are read through a BTF-typed pointer, see
/// `c/core.c`).
#[derive(Clone, Copy)]
pub struct Task;
#[derive(Clone, Copy)]
pub struct File(pub u64);
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mount(pub u64);
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dentry(pub u64);

/// A (mount, dentry) pair: the kernel's `struct path`, with the mount already
/// converted from `struct vfsmount` to `struct mount`.
#[derive(Clone, Copy)]
pub struct KPath {
    pub mnt: Mount,
    pub dentry: Dentry,
}

/// Which `fs_struct` path of a task.
#[derive(Clone, Copy)]
pub enum FsPath {
    Cwd = 0,
    Root = 1,
}

fn kpath(vfsmnt: u64, dentry: u64) -> Option<KPath> {
    let m = nonzero(unsafe { mt_real_mount(vfsmnt) })?;
    Some(KPath {
        mnt: Mount(m),
        dentry: Dentry(nonzero(dentry)?),
    })
}

impl KPath {
    /// The `struct path` at kernel address `path` (a kernel function's
    /// argument).
    #[inline(always)]
    pub fn at(path: u64) -> Option<KPath> {
        let (mut m, mut d) = (0u64, 0u64);
        if unsafe { mt_path(path, &mut m, &mut d) } != 0 {
            return None;
        }
        kpath(m, d)
    }
}

/// What a dentry's inode is: number, size in bytes, link count and mode.
#[derive(Clone, Copy)]
pub struct InodeFacts {
    pub ino: u64,
    pub size: u64,
    pub nlink: u32,
    pub mode: u32,
}

impl Task {
    #[inline(always)]
    pub fn current() -> Task {
        Task
    }
    #[inline(always)]
    pub fn ppid(self) -> u32 {
        unsafe { mt_cur_ppid() }
    }
    #[inline(always)]
    pub fn mnt_ns(self) -> u32 {
        unsafe { mt_cur_mnt_ns() }
    }
    #[inline(always)]
    pub fn fs_path(self, which: FsPath) -> Option<KPath> {
        let (mut m, mut d) = (0u64, 0u64);
        if unsafe { mt_cur_fs_path(which as u32, &mut m, &mut d) } != 0 {
            return None;
        }
        kpath(m, d)
    }
    #[inline(always)]
    pub fn fd_file(self, fd: i32) -> Option<File> {
        nonzero(unsafe { mt_cur_fd_file(fd) }).map(File)
    }
}

impl File {
    #[inline(always)]
    pub fn path(self) -> Option<KPath> {
        let (mut m, mut d) = (0u64, 0u64);
        if unsafe { mt_file_path(self.0, &mut m, &mut d) } != 0 {
            return None;
        }
        kpath(m, d)
    }
    /// Inode number of the file (for nsfs files: the namespace inode).
    #[inline(always)]
    pub fn ino(self) -> u64 {
        unsafe { mt_file_ino(self.0) }
    }
}

impl Mount {
    #[inline(always)]
    pub fn parent(self) -> Option<Mount> {
        nonzero(unsafe { mt_mount_parent(self.0) }).map(Mount)
    }
    #[inline(always)]
    pub fn mountpoint(self) -> Option<Dentry> {
        nonzero(unsafe { mt_mount_mountpoint(self.0) }).map(Dentry)
    }
    #[inline(always)]
    pub fn root(self) -> Option<Dentry> {
        nonzero(unsafe { mt_mount_root(self.0) }).map(Dentry)
    }
    #[inline(always)]
    pub fn id(self) -> u32 {
        unsafe { mt_mount_id(self.0) }
    }
    #[inline(always)]
    pub fn id_unique(self) -> u64 {
        unsafe { mt_mount_id_unique(self.0) }
    }
    #[inline(always)]
    pub fn ns(self) -> u32 {
        unsafe { mt_mount_ns(self.0) }
    }
    /// `Some(true)` when id-mapped; `None` when the kernel cannot tell.
    #[inline(always)]
    pub fn idmapped(self) -> Option<bool> {
        match unsafe { mt_mount_idmapped(self.0) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
    /// Id-mapped, on kernels 5.12 to 6.2 (where [`Mount::idmapped`] cannot
    /// tell); false elsewhere.
    #[inline(always)]
    pub fn idmapped_by_userns(self) -> bool {
        unsafe { mt_mount_userns_idmapped(self.0) == 1 }
    }
}

/// An io_uring request (`struct io_kiocb *`).
#[derive(Clone, Copy)]
pub struct UringReq(pub u64);

impl UringReq {
    /// An `IORING_OP_UNLINKAT` request's name (a kernel address), dfd and
    /// flags.
    #[inline(always)]
    pub fn unlink(self) -> Option<(u64, i32, u32)> {
        let (mut dfd, mut flags) = (0i32, 0u32);
        let name = nonzero(unsafe { mt_uring_unlink(self.0, &mut dfd, &mut flags) })?;
        Some((name, dfd, flags))
    }
    /// An `IORING_OP_RENAMEAT` request's arguments.
    #[inline(always)]
    pub fn rename(self) -> Option<UringRename> {
        let mut r = UringRename::default();
        let old = unsafe {
            mt_uring_rename(
                self.0,
                &mut r.new,
                &mut r.old_dfd,
                &mut r.new_dfd,
                &mut r.flags,
            )
        };
        r.old = nonzero(old)?;
        Some(r)
    }
}

/// An `IORING_OP_RENAMEAT` request's arguments: its names (kernel
/// addresses), directory fds and `RENAME_*` flags.
#[derive(Default)]
pub struct UringRename {
    pub old: u64,
    pub new: u64,
    pub old_dfd: i32,
    pub new_dfd: i32,
    pub flags: u32,
}

impl Dentry {
    #[inline(always)]
    pub fn parent(self) -> Option<Dentry> {
        nonzero(unsafe { mt_dentry_parent(self.0) }).map(Dentry)
    }
    /// Name address and length.
    #[inline(always)]
    pub fn name(self) -> Option<(u64, u32)> {
        let mut len = 0u32;
        let p = nonzero(unsafe { mt_dentry_name(self.0, &mut len) })?;
        Some((p, len))
    }
    /// Parent address and the name's hash and length (one word): what a
    /// rename of this dentry changes.
    #[inline(always)]
    pub fn identity(self) -> Option<(u64, u64)> {
        let mut hash_len = 0u64;
        let p = nonzero(unsafe { mt_dentry_identity(self.0, &mut hash_len) })?;
        Some((p, hash_len))
    }
    #[inline(always)]
    pub fn ino(self) -> u64 {
        unsafe { mt_dentry_ino(self.0) }
    }
    /// `S_IFMT` bits of the inode mode; 0 when unknown.
    #[inline(always)]
    pub fn mode_fmt(self) -> u32 {
        unsafe { mt_dentry_mode(self.0) }
    }
    #[inline(always)]
    pub fn dev(self) -> u32 {
        unsafe { mt_dentry_dev(self.0) }
    }
    #[inline(always)]
    pub fn sb_root(self) -> Option<Dentry> {
        nonzero(unsafe { mt_dentry_sb_root(self.0) }).map(Dentry)
    }
    /// Its inode (a negative dentry has none).
    #[inline(always)]
    pub fn inode(self) -> Option<InodeFacts> {
        let (mut size, mut nlink, mut mode) = (0u64, 0u32, 0u32);
        let ino = nonzero(unsafe { mt_dentry_inode(self.0, &mut size, &mut nlink, &mut mode) })?;
        Some(InodeFacts {
            ino,
            size,
            nlink,
            mode,
        })
    }
}
