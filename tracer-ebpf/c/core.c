// CO-RE field accessors for the mntrace eBPF programs.
//
// Rust cannot emit CO-RE relocations, so every read of a kernel structure
// goes through one of these functions. The structures below are *local*
// definitions holding only the fields we read; `preserve_access_index` makes
// clang record each field access as a relocation, and aya rewrites the
// offsets at load time from the running kernel's BTF. No offset from one
// kernel is baked in (on 6.18 `file.f_path` and `dentry.d_name` sit inside
// anonymous unions: the relocations find them by name).
//
// Conventions: kernel pointers cross the boundary as `__u64` addresses (the
// verifier sees scalars, not typed pointers); every accessor returns 0 (or a
// negative value for the `int` ones) when a read fails.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;

#define CORE __attribute__((preserve_access_index))

static long (*bpf_probe_read_kernel)(void *dst, __u32 size,
                                     const void *unsafe_ptr) = (void *)113;

// __builtin_preserve_field_info kinds (see libbpf's bpf_core_read.h).
#define FIELD_BYTE_OFFSET 0
#define FIELD_EXISTS 2

struct qstr {
	__u32 len;
	__u64 hash_len; // the name's hash and length in one word
	const unsigned char *name;
} CORE;

struct inode {
	unsigned long i_ino;
	__u16 i_mode;
	unsigned int i_nlink; // in an anonymous union with __i_nlink
	long long i_size;
} CORE;

struct super_block {
	__u32 s_dev;
	struct dentry *s_root;
} CORE;

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
} CORE;

struct uid_gid_map {
	__u32 nr_extents;
} CORE;

// 6.3+: id-mapped mounts carry a `struct mnt_idmap`; the no-op one
// (`nop_mnt_idmap`) has no extents.
struct mnt_idmap {
	struct uid_gid_map uid_map;
} CORE;

// 5.12 to 6.2: a mount's id-mapping is a user namespace (`mnt_userns`).
struct user_namespace {
	int level; // 0 for the initial user namespace only
} CORE;

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
	struct mnt_idmap *mnt_idmap; // 6.3+
	struct user_namespace *mnt_userns; // 5.12 to 6.2
} CORE;

struct ns_common {
	__u32 inum;
} CORE;

struct mnt_namespace {
	struct ns_common ns;
} CORE;

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	struct mnt_namespace *mnt_ns;
	int mnt_id;
	__u64 mnt_id_unique; // 6.8+
} CORE;

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} CORE;

struct file {
	struct path f_path;
	struct inode *f_inode;
} CORE;

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} CORE;

struct files_struct {
	struct fdtable *fdt;
} CORE;

struct fs_struct {
	struct path root;
	struct path pwd;
} CORE;

struct nsproxy {
	struct mnt_namespace *mnt_ns;
} CORE;

struct task_struct {
	struct task_struct *real_parent;
	int tgid;
	struct fs_struct *fs;
	struct files_struct *files;
	struct nsproxy *nsproxy;
} CORE;

#define READ(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), &(src))
#define PTR(type, addr) ((type *)(unsigned long)(addr))
#define ADDR(p) ((__u64)(unsigned long)(p))

// ---- the current task --------------------------------------------------
//
// The current task comes as a BTF-typed pointer (bpf_get_current_task_btf,
// which syscall tracepoint programs may call): its fields, and those of the
// structures its pointer fields lead to, are plain loads that the verifier
// checks against the kernel's BTF and the JIT guards against faults, instead
// of one bpf_probe_read_kernel call each (a helper call, an access check and
// a fault-tolerant copy: the largest part of a deletion's cost). What these
// return is always a scalar: a typed pointer cannot be handed to the other
// accessors, which are separate functions taking addresses.

static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;

__u32 mt_cur_ppid(void)
{
	struct task_struct *parent = bpf_get_current_task_btf()->real_parent;
	if (!parent)
		return 0;
	return (__u32)parent->tgid;
}

__u32 mt_cur_mnt_ns(void)
{
	struct nsproxy *nsp = bpf_get_current_task_btf()->nsproxy;
	if (!nsp)
		return 0;
	struct mnt_namespace *ns = nsp->mnt_ns;
	if (!ns)
		return 0;
	return ns->ns.inum;
}

// A `struct path` at p, read at once (its two pointers are scalars then).
// `v` is not zeroed first: the helper fills it, or zeroes it when the read
// fails (an initialiser costs a call to a memset subprogram).
static int read_path(struct path *p, __u64 *mnt, __u64 *dentry)
{
	struct path v;
	if (READ(v, *p) || !v.mnt || !v.dentry)
		return -1;
	*mnt = ADDR(v.mnt);
	*dentry = ADDR(v.dentry);
	return 0;
}

// A `struct path` given by address (a kernel function's argument).
int mt_path(__u64 path, __u64 *mnt, __u64 *dentry)
{
	return read_path(PTR(struct path, path), mnt, dentry);
}

// which: 0 = cwd (fs->pwd), 1 = root (fs->root). The pair is read by
// copy although `fs` is typed: plain loads would give the verifier typed
// pointers, which it tracks through every later use, and the states it
// can no longer merge more than doubled the instructions it went through
// for the delete and mount programs (measured: over 6.1's limit).
int mt_cur_fs_path(__u32 which, __u64 *mnt, __u64 *dentry)
{
	struct fs_struct *fs = bpf_get_current_task_btf()->fs;
	if (!fs)
		return -1;
	return which ? read_path(&fs->root, mnt, dentry)
		     : read_path(&fs->pwd, mnt, dentry);
}

// The `struct file` behind fd in the current task's table, or 0.
__u64 mt_cur_fd_file(__s32 fd)
{
	struct file *f = 0;
	if (fd < 0)
		return 0;
	struct files_struct *files = bpf_get_current_task_btf()->files;
	if (!files)
		return 0;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return 0;
	// A pointer to pointers: not typed for the verifier, read by copy.
	struct file **fds = fdt->fd;
	if (!fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return 0;
	return ADDR(f);
}

// ---- file ------------------------------------------------------------------

int mt_file_path(__u64 file, __u64 *mnt, __u64 *dentry)
{
	return read_path(&PTR(struct file, file)->f_path, mnt, dentry);
}

__u64 mt_file_ino(__u64 file)
{
	struct inode *i = 0;
	unsigned long ino = 0;
	if (READ(i, PTR(struct file, file)->f_inode) || !i)
		return 0;
	if (READ(ino, i->i_ino))
		return 0;
	return ino;
}

// ---- mount -----------------------------------------------------------------

// container_of(vfsmount, struct mount, mnt), with the member offset relocated.
__u64 mt_real_mount(__u64 vfsmount)
{
	struct mount *z = 0;
	__u64 off = __builtin_preserve_field_info(z->mnt, FIELD_BYTE_OFFSET);
	return vfsmount ? vfsmount - off : 0;
}

__u64 mt_mount_parent(__u64 mnt)
{
	struct mount *p = 0;
	if (READ(p, PTR(struct mount, mnt)->mnt_parent))
		return 0;
	return ADDR(p);
}

__u64 mt_mount_mountpoint(__u64 mnt)
{
	struct dentry *d = 0;
	if (READ(d, PTR(struct mount, mnt)->mnt_mountpoint))
		return 0;
	return ADDR(d);
}

__u64 mt_mount_root(__u64 mnt)
{
	struct dentry *d = 0;
	if (READ(d, PTR(struct mount, mnt)->mnt.mnt_root))
		return 0;
	return ADDR(d);
}

__u32 mt_mount_id(__u64 mnt)
{
	int id = 0;
	if (READ(id, PTR(struct mount, mnt)->mnt_id))
		return 0;
	return (__u32)id;
}

__u64 mt_mount_id_unique(__u64 mnt)
{
	struct mount *m = PTR(struct mount, mnt);
	__u64 id = 0;
	if (!__builtin_preserve_field_info(m->mnt_id_unique, FIELD_EXISTS))
		return 0;
	if (READ(id, m->mnt_id_unique))
		return 0;
	return id;
}

__u32 mt_mount_ns(__u64 mnt)
{
	struct mnt_namespace *ns = 0;
	__u32 inum = 0;
	if (READ(ns, PTR(struct mount, mnt)->mnt_ns) || !ns)
		return 0;
	if (READ(inum, ns->ns.inum))
		return 0;
	return inum;
}

// 1: id-mapped, 0: not, -1: unknown (kernel without mnt_idmap, or read error).
int mt_mount_idmapped(__u64 mnt)
{
	struct mount *m = PTR(struct mount, mnt);
	struct mnt_idmap *map = 0;
	__u32 n = 0;
	if (!__builtin_preserve_field_info(m->mnt.mnt_idmap, FIELD_EXISTS))
		return -1;
	if (READ(map, m->mnt.mnt_idmap))
		return -1;
	if (!map)
		return 0;
	if (READ(n, map->uid_map.nr_extents))
		return -1;
	return n ? 1 : 0;
}

// 5.12 to 6.2: 1 when the mount is id-mapped, i.e. its `mnt_userns` is not
// `&init_user_ns` (the kernel's `is_idmapped_mnt` there), which every other
// mount has; the initial user namespace is the one of level 0. 0 otherwise,
// and on kernels without `mnt_userns` (6.3+: `mt_mount_idmapped`). Kept
// apart from `mt_mount_idmapped`, and out of the deletion entry programs,
// whose verification 6.1 only just completes.
int mt_mount_userns_idmapped(__u64 mnt)
{
	struct mount *m = PTR(struct mount, mnt);
	struct user_namespace *userns = 0;
	int level = 0;
	if (!__builtin_preserve_field_info(m->mnt.mnt_userns, FIELD_EXISTS))
		return 0;
	if (READ(userns, m->mnt.mnt_userns) || !userns)
		return 0;
	if (READ(level, userns->level))
		return 0;
	return level > 0;
}

// ---- dentry ----------------------------------------------------------------

__u64 mt_dentry_parent(__u64 dentry)
{
	struct dentry *p = 0;
	if (READ(p, PTR(struct dentry, dentry)->d_parent))
		return 0;
	return ADDR(p);
}

// Name pointer, and its length through *len; 0 on failure.
__u64 mt_dentry_name(__u64 dentry, __u32 *len)
{
	struct dentry *d = PTR(struct dentry, dentry);
	const unsigned char *name = 0;
	__u32 l = 0;
	if (READ(name, d->d_name.name) || READ(l, d->d_name.len))
		return 0;
	*len = l;
	return ADDR(name);
}

// The dentry's parent, and its name's hash and length through *hash_len:
// what a rename of the dentry itself changes. 0 on failure.
__u64 mt_dentry_identity(__u64 dentry, __u64 *hash_len)
{
	struct dentry *d = PTR(struct dentry, dentry);
	struct dentry *p = 0;
	__u64 hl = 0;
	if (READ(p, d->d_parent) || READ(hl, d->d_name.hash_len))
		return 0;
	*hash_len = hl;
	return ADDR(p);
}

__u64 mt_dentry_ino(__u64 dentry)
{
	struct inode *i = 0;
	unsigned long ino = 0;
	if (READ(i, PTR(struct dentry, dentry)->d_inode) || !i)
		return 0;
	if (READ(ino, i->i_ino))
		return 0;
	return ino;
}

// S_IFMT bits of the dentry's inode mode, or 0.
__u32 mt_dentry_mode(__u64 dentry)
{
	struct inode *i = 0;
	__u16 mode = 0;
	if (READ(i, PTR(struct dentry, dentry)->d_inode) || !i)
		return 0;
	if (READ(mode, i->i_mode))
		return 0;
	return mode & 0170000;
}

__u32 mt_dentry_dev(__u64 dentry)
{
	struct super_block *sb = 0;
	__u32 dev = 0;
	if (READ(sb, PTR(struct dentry, dentry)->d_sb) || !sb)
		return 0;
	if (READ(dev, sb->s_dev))
		return 0;
	return dev;
}

// The inode of a dentry about to be removed: its number (returned, 0 on
// failure), size, link count and mode through the pointers.
__u64 mt_dentry_inode(__u64 dentry, __u64 *size, __u32 *nlink, __u32 *mode)
{
	struct inode *i = 0;
	unsigned long ino = 0;
	long long sz = 0;
	unsigned int nl = 0;
	__u16 m = 0;
	if (READ(i, PTR(struct dentry, dentry)->d_inode) || !i)
		return 0;
	if (READ(ino, i->i_ino) || READ(sz, i->i_size) || READ(nl, i->i_nlink) ||
	    READ(m, i->i_mode))
		return 0;
	*size = (__u64)sz;
	*nlink = nl;
	*mode = m;
	return ino;
}

// Root dentry of the dentry's superblock, or 0.
__u64 mt_dentry_sb_root(__u64 dentry)
{
	struct super_block *sb = 0;
	struct dentry *root = 0;
	if (READ(sb, PTR(struct dentry, dentry)->d_sb) || !sb)
		return 0;
	if (READ(root, sb->s_root))
		return 0;
	return ADDR(root);
}

// ---- io_uring ----------------------------------------------------------------
//
// An IORING_OP_UNLINKAT request: `struct io_kiocb` begins with a union of
// its file and its command data, where the op keeps its own struct
// (`io_kiocb_to_cmd`): for unlinkat, `struct io_unlink`, prepared (the name
// copied into kernel memory) before the `io_uring_submit_req` tracepoint.

struct filename {
	const char *name;
} CORE;

struct io_unlink {
	struct file *file;
	int dfd;
	int flags;
	struct filename *filename;
} CORE;

// The kernel address of the request's name, its dfd and flags through
// *dfd and *flags; 0 on failure.
__u64 mt_uring_unlink(__u64 req, __s32 *dfd, __u32 *flags)
{
	struct io_unlink *u = PTR(struct io_unlink, req);
	struct filename *f = 0;
	const char *name = 0;
	int d = 0, fl = 0;
	if (READ(d, u->dfd) || READ(fl, u->flags) || READ(f, u->filename) || !f)
		return 0;
	if (READ(name, f->name))
		return 0;
	*dfd = d;
	*flags = (__u32)fl;
	return ADDR(name);
}

// An IORING_OP_RENAMEAT request: `struct io_rename`, prepared (both names
// copied into kernel memory) before the `io_uring_submit_req` tracepoint.
struct io_rename {
	struct file *file;
	int old_dfd;
	int new_dfd;
	struct filename *oldpath;
	struct filename *newpath;
	int flags;
} CORE;

// The kernel address of the request's old name; its new name's address,
// both dfds and its flags through the pointers; 0 on failure.
__u64 mt_uring_rename(__u64 req, __u64 *new_name, __s32 *old_dfd, __s32 *new_dfd,
		      __u32 *flags)
{
	struct io_rename *r = PTR(struct io_rename, req);
	struct filename *of = 0, *nf = 0;
	const char *on = 0, *nn = 0;
	int od = 0, nd = 0, fl = 0;
	if (READ(od, r->old_dfd) || READ(nd, r->new_dfd) || READ(fl, r->flags) ||
	    READ(of, r->oldpath) || READ(nf, r->newpath) || !of || !nf)
		return 0;
	if (READ(on, of->name) || READ(nn, nf->name))
		return 0;
	*new_name = ADDR(nn);
	*old_dfd = od;
	*new_dfd = nd;
	*flags = (__u32)fl;
	return ADDR(on);
}
