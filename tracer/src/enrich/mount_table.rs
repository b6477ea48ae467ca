//! Mount tables of every mount namespace, parsed from `/proc/PID/mountinfo`.
//!
//! [`parse_mountinfo`] turns the kernel's text into [`MountInfo`] records
//! (paths stay bytes: the kernel octal-escapes only space, tab, newline and
//! backslash, everything else — including non-UTF-8 — is passed through raw).
//! [`MountTable`] keeps one table per mount-namespace inode and answers the
//! questions the correlator asks: which mount has this id, which mount sits
//! on this mountpoint, and where a path inside a (bind, idmapped) mount
//! really lives in a given namespace ([`MountTable::backing_path`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::path::{join, strip_component_prefix};
use thiserror::Error;

/// One line of `/proc/PID/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountInfo {
    pub mnt_id: u32,
    pub parent_id: u32,
    /// Kernel encoding `(major << 20) | minor`, from the `maj:min` field.
    pub dev: u32,
    /// Root of the mount within its filesystem (the bind source), unescaped.
    pub root: Bytes,
    /// Mountpoint as seen in the namespace the table was read from, unescaped.
    pub mountpoint: Bytes,
    /// Per-mount options (field 6).
    pub options: String,
    /// Optional fields joined by `' '` (e.g. `"shared:1 master:2"`), `""` if none.
    pub propagation: String,
    pub fstype: String,
    /// Mount source, unescaped.
    pub source: Bytes,
    pub super_options: String,
    /// The per-mount options contain `idmapped`.
    pub idmapped: bool,
}

/// A malformed mountinfo line; `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MountinfoError {
    #[error("mountinfo line {line}: missing field `{field}`")]
    MissingField { line: usize, field: &'static str },
    #[error("mountinfo line {line}: invalid `{field}`: {value:?}")]
    InvalidField {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("mountinfo line {line}: no `-` separator after the optional fields")]
    MissingSeparator { line: usize },
    #[error("mountinfo line {line}: unexpected data after the super options")]
    TrailingData { line: usize },
}

impl MountinfoError {
    /// The 1-based line number the error was found on.
    pub fn line(&self) -> usize {
        match self {
            MountinfoError::MissingField { line, .. }
            | MountinfoError::InvalidField { line, .. }
            | MountinfoError::MissingSeparator { line }
            | MountinfoError::TrailingData { line } => *line,
        }
    }
}

/// Parses the text of `/proc/PID/mountinfo`, keeping the input (mount) order.
/// Empty lines are skipped.
pub fn parse_mountinfo(text: &[u8]) -> Result<Vec<MountInfo>, MountinfoError> {
    let mut mounts = Vec::new();
    for (idx, raw) in text.split(|&b| b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        mounts.push(parse_line(raw, idx + 1)?);
    }
    Ok(mounts)
}

fn parse_line(raw: &[u8], line: usize) -> Result<MountInfo, MountinfoError> {
    // Fields are separated by exactly one space; the kernel escapes spaces
    // inside fields, and an empty source shows up as an empty field.
    let mut fields = raw.split(|&b| b == b' ');
    let mnt_id = parse_u32(take(&mut fields, line, "mount ID")?, line, "mount ID")?;
    let parent_id = parse_u32(take(&mut fields, line, "parent ID")?, line, "parent ID")?;
    let dev = parse_dev(take(&mut fields, line, "major:minor")?, line)?;
    let root = unescape(take(&mut fields, line, "root")?);
    let mountpoint = unescape(take(&mut fields, line, "mount point")?);
    let options = lossy(take(&mut fields, line, "mount options")?);
    let mut optional = Vec::new();
    loop {
        let field = fields
            .next()
            .ok_or(MountinfoError::MissingSeparator { line })?;
        if field == b"-" {
            break;
        }
        if !field.is_empty() {
            optional.push(lossy(field));
        }
    }
    let fstype = lossy(take(&mut fields, line, "filesystem type")?);
    let source = unescape(take(&mut fields, line, "mount source")?);
    let super_options = lossy(take(&mut fields, line, "super options")?);
    if fields.next().is_some() {
        return Err(MountinfoError::TrailingData { line });
    }
    let idmapped = options.split(',').any(|o| o == "idmapped");
    Ok(MountInfo {
        mnt_id,
        parent_id,
        dev,
        root,
        mountpoint,
        options,
        propagation: optional.join(" "),
        fstype,
        source,
        super_options,
        idmapped,
    })
}

fn take<'a>(
    fields: &mut impl Iterator<Item = &'a [u8]>,
    line: usize,
    field: &'static str,
) -> Result<&'a [u8], MountinfoError> {
    fields
        .next()
        .ok_or(MountinfoError::MissingField { line, field })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_u32(b: &[u8], line: usize, field: &'static str) -> Result<u32, MountinfoError> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MountinfoError::InvalidField {
            line,
            field,
            value: lossy(b),
        })
}

fn parse_dev(b: &[u8], line: usize) -> Result<u32, MountinfoError> {
    const FIELD: &str = "major:minor";
    let bad = || MountinfoError::InvalidField {
        line,
        field: FIELD,
        value: lossy(b),
    };
    let colon = b.iter().position(|&c| c == b':').ok_or_else(bad)?;
    let major = parse_u32(&b[..colon], line, FIELD)?;
    let minor = parse_u32(&b[colon + 1..], line, FIELD)?;
    if major >= 1 << 12 || minor >= 1 << 20 {
        return Err(bad());
    }
    Ok((major << 20) | minor)
}

/// Undoes the kernel's `\ooo` (three octal digits) escapes; anything else,
/// including a lone backslash, is kept as is.
fn unescape(b: &[u8]) -> Bytes {
    if !b.contains(&b'\\') {
        return Bytes::copy_from_slice(b);
    }
    let mut out = BytesMut::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let [d0 @ b'0'..=b'3', d1 @ b'0'..=b'7', d2 @ b'0'..=b'7', ..] = b[i + 1..] {
                out.put_u8(((d0 - b'0') << 6) | ((d1 - b'0') << 3) | (d2 - b'0'));
                i += 4;
                continue;
            }
        }
        out.put_u8(b[i]);
        i += 1;
    }
    out.freeze()
}

#[derive(Clone, Debug, Default)]
struct NsMounts {
    /// Shared with the enrichment of events (cloned per deletion).
    mounts: Vec<Arc<MountInfo>>,
    by_id: HashMap<u32, usize>,
    /// Mounts were made or removed since the table was read: an entry is
    /// only trusted when its 64-bit id is known to match.
    changed: bool,
    /// 64-bit ids of the entries asked about one by one (statmount).
    unique: HashMap<u32, u64>,
    /// Read from mountinfo (else only mounts asked about one by one).
    read: bool,
    /// The entries of the last [`MountTable::refresh`] by 64-bit id: a
    /// refresh asks the kernel only about mounts it does not have.
    by_unique: HashMap<u64, Arc<MountInfo>>,
}

impl NsMounts {
    /// A namespace's table as just read (mounts in mountinfo order), with
    /// the 64-bit ids known of its entries.
    fn read(
        mounts: Vec<Arc<MountInfo>>,
        unique: HashMap<u32, u64>,
        by_unique: HashMap<u64, Arc<MountInfo>>,
    ) -> NsMounts {
        let by_id = mounts
            .iter()
            .enumerate()
            .map(|(i, m)| (m.mnt_id, i))
            .collect();
        NsMounts {
            mounts,
            by_id,
            changed: false,
            unique,
            read: true,
            by_unique,
        }
    }
}

/// Mount tables keyed by mount-namespace inode.
#[derive(Clone, Debug, Default)]
pub struct MountTable {
    namespaces: BTreeMap<u32, NsMounts>,
}

impl MountTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the table of namespace `ns` (mounts in mountinfo order).
    pub fn insert_ns(&mut self, ns: u32, mounts: Vec<MountInfo>) {
        let mounts = mounts.into_iter().map(Arc::new).collect();
        self.namespaces
            .insert(ns, NsMounts::read(mounts, HashMap::new(), HashMap::new()));
    }

    /// Replaces the table of namespace `ns` with its mounts `ids` (64-bit,
    /// in the kernel's order, which is mountinfo's): those of the last
    /// refresh are kept as they were, `stat` is asked about the others
    /// (`None`: that mount is gone since it was listed, and left out). The
    /// result is the table mountinfo would give, read at the cost of the
    /// mounts made since. On an error the table is left as it was (and
    /// the next refresh asks about every mount).
    pub fn refresh(
        &mut self,
        ns: u32,
        ids: &[u64],
        mut stat: impl FnMut(u64) -> io::Result<Option<MountInfo>>,
    ) -> io::Result<()> {
        let known = self
            .namespaces
            .get_mut(&ns)
            .map(|t| std::mem::take(&mut t.by_unique))
            .unwrap_or_default();
        let mut mounts = Vec::with_capacity(ids.len());
        let mut by_unique = HashMap::with_capacity(ids.len());
        let mut unique = HashMap::with_capacity(ids.len());
        for &u in ids {
            let m = match known.get(&u) {
                Some(m) => m.clone(),
                None => match stat(u)? {
                    Some(m) => Arc::new(m),
                    None => continue,
                },
            };
            unique.insert(m.mnt_id, u);
            by_unique.insert(u, m.clone());
            mounts.push(m);
        }
        self.namespaces
            .insert(ns, NsMounts::read(mounts, unique, by_unique));
        Ok(())
    }

    /// Mounts of namespace `ns` may have moved (their mountpoints changed)
    /// or changed their options: the next [`MountTable::refresh`] asks
    /// about every mount again.
    pub fn forget_refreshed(&mut self, ns: u32) {
        if let Some(t) = self.namespaces.get_mut(&ns) {
            t.by_unique.clear();
        }
    }

    /// [`MountTable::forget_refreshed`] for every namespace.
    pub fn forget_all_refreshed(&mut self) {
        for t in self.namespaces.values_mut() {
            t.by_unique.clear();
        }
    }

    /// Mounts of namespace `ns` were made or removed (its table is not
    /// reread for that: see [`MountTable::exact`]).
    pub fn changed(&mut self, ns: u32) {
        if let Some(t) = self.namespaces.get_mut(&ns) {
            t.changed = true;
        }
    }

    /// Whether the table of `ns` is as read (no mount made or removed
    /// since).
    pub fn is_current(&self, ns: u32) -> bool {
        self.namespaces.get(&ns).is_some_and(|t| !t.changed)
    }

    /// Mount `mnt_id` of namespace `ns` when the table is sure it is the
    /// mount with 64-bit id `unique`: the table is current, or that entry
    /// was asked about by that id.
    pub fn exact(&self, ns: u32, mnt_id: u32, unique: u64) -> Option<&Arc<MountInfo>> {
        let t = self.namespaces.get(&ns)?;
        let m = t.by_id.get(&mnt_id).and_then(|&i| t.mounts.get(i))?;
        (!t.changed || (unique != 0 && t.unique.get(&mnt_id) == Some(&unique))).then_some(m)
    }

    /// The 64-bit id of entry `mnt_id` of `ns`, when it was asked about by
    /// it.
    pub fn unique_of(&self, ns: u32, mnt_id: u32) -> Option<u64> {
        self.namespaces.get(&ns)?.unique.get(&mnt_id).copied()
    }

    /// Put one mount, asked about by its 64-bit id, into the table of
    /// `ns` (replacing the entry with its 32-bit id, which the kernel
    /// reuses).
    pub fn upsert(&mut self, ns: u32, m: MountInfo, unique: u64) -> Arc<MountInfo> {
        let t = self.namespaces.entry(ns).or_insert_with(|| NsMounts {
            changed: true,
            ..Default::default()
        });
        let m = Arc::new(m);
        match t.by_id.get(&m.mnt_id) {
            Some(&i) => t.mounts[i] = m.clone(),
            None => {
                t.by_id.insert(m.mnt_id, t.mounts.len());
                t.mounts.push(m.clone());
            }
        }
        t.unique.insert(m.mnt_id, unique);
        m
    }

    /// Forgets namespace `ns`; returns whether it was known.
    pub fn remove_ns(&mut self, ns: u32) -> bool {
        self.namespaces.remove(&ns).is_some()
    }

    /// Reads the mount table of process `pid` (`/proc/PID/mountinfo`) into
    /// the table of its mount namespace and returns that namespace's inode.
    /// Parse errors map to [`io::ErrorKind::InvalidData`]. If the process
    /// switches namespaces while being read, the read is retried.
    pub fn load_pid(&mut self, pid: u32) -> io::Result<u32> {
        let ns_path = format!("/proc/{pid}/ns/mnt");
        let info_path = format!("/proc/{pid}/mountinfo");
        let mut ns = ns_inode(&ns_path)?;
        for _ in 0..3 {
            let text = std::fs::read(&info_path)?;
            let after = ns_inode(&ns_path)?;
            if after != ns {
                ns = after;
                continue;
            }
            let mounts = parse_mountinfo(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.insert_ns(ns, mounts);
            return Ok(ns);
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("process {pid} kept changing mount namespace while being read"),
        ))
    }

    /// Whether the table of `ns` was read (from mountinfo).
    pub fn has_ns(&self, ns: u32) -> bool {
        self.namespaces.get(&ns).is_some_and(|t| t.read)
    }

    /// The mounts of namespace `ns` in mountinfo order (empty if unknown).
    pub fn mounts(&self, ns: u32) -> &[Arc<MountInfo>] {
        self.namespaces
            .get(&ns)
            .map_or(&[][..], |t| t.mounts.as_slice())
    }

    pub fn get(&self, ns: u32, mnt_id: u32) -> Option<&Arc<MountInfo>> {
        let t = self.namespaces.get(&ns)?;
        t.by_id.get(&mnt_id).and_then(|&i| t.mounts.get(i))
    }

    /// Looks `mnt_id` up in every namespace (mount ids are unique
    /// system-wide); namespaces are searched in inode order.
    pub fn find(&self, mnt_id: u32) -> Option<(u32, &Arc<MountInfo>)> {
        self.namespaces.iter().find_map(|(&ns, t)| {
            t.by_id
                .get(&mnt_id)
                .and_then(|&i| t.mounts.get(i))
                .map(|m| (ns, m))
        })
    }

    /// The topmost mount whose mountpoint is exactly `path`: when several
    /// are stacked there, the last one in mountinfo order.
    pub fn at_mountpoint(&self, ns: u32, path: &[u8]) -> Option<&Arc<MountInfo>> {
        self.namespaces
            .get(&ns)?
            .mounts
            .iter()
            .rev()
            .find(|m| m.mountpoint.as_ref() == path)
    }

    /// Mountpoints strictly below `path` in namespace `ns`.
    pub fn submounts(&self, ns: u32, path: &[u8]) -> Vec<Bytes> {
        self.mounts(ns)
            .iter()
            .filter(|m| {
                m.mountpoint.as_ref() != path
                    && strip_component_prefix(&m.mountpoint, path).is_some()
            })
            .map(|m| m.mountpoint.clone())
            .collect()
    }

    /// The mount a path (absolute, in namespace `ns`) is on: the topmost
    /// mount whose mountpoint is the longest component-prefix of `path`.
    pub fn mount_of_path(&self, ns: u32, path: &[u8]) -> Option<&MountInfo> {
        let mut best: Option<&MountInfo> = None;
        for m in self.mounts(ns) {
            if strip_component_prefix(path, &m.mountpoint).is_some()
                && best.is_none_or(|b| m.mountpoint.len() >= b.mountpoint.len())
            {
                best = Some(m);
            }
        }
        best
    }

    /// Where `rel` (absolute within mount `m`, `/` being the mount's root)
    /// really lives, as a path in namespace `ns`.
    ///
    /// Candidates are the mounts of `ns` on the same device as `m` whose
    /// root is a component-wise prefix of `m.root`. A mount whose root is a
    /// strict prefix shows `m`'s root as an ordinary directory: the longest
    /// such root wins (ties: first in mountinfo order). A mount with the
    /// same root as `m` is another view of the same directory (another
    /// pod's clone of the same layer, a second bind), never where its files
    /// live: it is used only when nothing shows the directory itself (`m`
    /// or a plain view, first in mountinfo order; another id-mapped clone
    /// last). The result is the candidate's mountpoint, plus what
    /// remains of `m.root` after the candidate's root, plus `rel`.
    ///
    /// So an id-mapped clone or a bind of `/var/lib/x` resolves through the
    /// mount that shows `/var/lib/x` as a directory, whatever other clones
    /// of it exist, while a mount that is the only view of its filesystem
    /// resolves through itself.
    pub fn backing_path(&self, ns: u32, m: &MountInfo, rel: &[u8]) -> Option<Bytes> {
        let table = self.namespaces.get(&ns)?;
        // Lower rank is better; then a longer candidate root (shorter rest);
        // then mountinfo order.
        let mut best: Option<((u8, usize), &MountInfo, &[u8])> = None;
        for c in &table.mounts {
            if c.dev != m.dev {
                continue;
            }
            let Some(rest) = strip_component_prefix(&m.root, &c.root) else {
                continue;
            };
            let rank = if !rest.is_empty() && rest != b"/" {
                0
            } else if c.mnt_id == m.mnt_id || !c.idmapped {
                1
            } else {
                2
            };
            let key = (rank, rest.len());
            if best.is_none_or(|(k, _, _)| key < k) {
                best = Some((key, c, rest));
            }
        }
        let (_, chosen, rest) = best?;
        Some(join(&join(&chosen.mountpoint, rest), rel))
    }
}

pub(crate) fn ns_inode(path: &str) -> io::Result<u32> {
    let ino = std::fs::metadata(path)?.ino();
    u32::try_from(ino).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: namespace inode {ino} does not fit in 32 bits"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
36 27 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
44 27 0:40 / /tmp/x rw,relatime shared:5 master:2 - tmpfs tmpfs rw,size=1024k
66 44 254:0 /var/lib/containerd/snapshots/7/fs /tmp/x/0 rw,relatime,idmapped - ext4 /dev/vda rw
70 27 0:41 / /mnt/my\\040dir rw - tmpfs my\\134src rw
71 27 0:42 / /mnt/caf\xe9 rw - tmpfs  rw
72 70 0:41 /sub /mnt/t2 rw - tmpfs tmp rw
";

    fn sample_table() -> MountTable {
        let mut t = MountTable::new();
        t.insert_ns(4026531841, parse_mountinfo(SAMPLE).unwrap());
        t
    }

    #[test]
    fn parses_fields() {
        let m = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(m.len(), 8);
        assert_eq!(
            m[2],
            MountInfo {
                mnt_id: 36,
                parent_id: 27,
                dev: (98 << 20),
                root: Bytes::from_static(b"/mnt1"),
                mountpoint: Bytes::from_static(b"/mnt2"),
                options: "rw,noatime".into(),
                propagation: "master:1".into(),
                fstype: "ext3".into(),
                source: Bytes::from_static(b"/dev/root"),
                super_options: "rw,errors=continue".into(),
                idmapped: false,
            }
        );
        assert_eq!(m[0].propagation, "");
        assert_eq!(m[3].propagation, "shared:5 master:2");
        assert_eq!(m[3].dev, 40);
        assert_eq!(m[1].dev, (254 << 20));
        assert!(m[4].idmapped);
        assert!(!m[1].idmapped);
        // Input order is kept.
        let ids: Vec<u32> = m.iter().map(|m| m.mnt_id).collect();
        assert_eq!(ids, [22, 27, 36, 44, 66, 70, 71, 72]);
    }

    #[test]
    fn unescapes_and_keeps_raw_bytes() {
        let m = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(m[5].mountpoint.as_ref(), b"/mnt/my dir");
        assert_eq!(m[5].source.as_ref(), b"my\\src");
        // Non-UTF-8 is left raw by the kernel and by us.
        assert_eq!(m[6].mountpoint.as_ref(), b"/mnt/caf\xe9");
        // Empty source (two spaces).
        assert_eq!(m[6].source.as_ref(), b"");
        assert_eq!(m[6].super_options, "rw");
    }

    #[test]
    fn unescape_cases() {
        assert_eq!(
            unescape(b"a\\040b\\011c\\012d\\134e").as_ref(),
            b"a b\tc\nd\\e"
        );
        assert_eq!(unescape(b"\\377\\000").as_ref(), b"\xff\x00");
        // Not an escape: kept literally.
        assert_eq!(unescape(b"x\\4").as_ref(), b"x\\4");
        assert_eq!(unescape(b"x\\800").as_ref(), b"x\\800");
        assert_eq!(unescape(b"x\\400").as_ref(), b"x\\400");
        assert_eq!(unescape(b"\\").as_ref(), b"\\");
    }

    #[test]
    fn parse_errors_carry_line_numbers() {
        let e = parse_mountinfo(b"22 27 0:21 / /proc rw - proc proc rw\nx 1 0:1 / / rw - a b c\n")
            .unwrap_err();
        assert!(matches!(
            e,
            MountinfoError::InvalidField {
                line: 2,
                field: "mount ID",
                ..
            }
        ));
        assert_eq!(e.line(), 2);
        let e = parse_mountinfo(b"1 1 0:1 / / rw shared:1 ext4 /dev/x rw").unwrap_err();
        assert_eq!(e, MountinfoError::MissingSeparator { line: 1 });
        let e = parse_mountinfo(b"1 1 0:1 / /").unwrap_err();
        assert_eq!(
            e,
            MountinfoError::MissingField {
                line: 1,
                field: "mount options"
            }
        );
        let e = parse_mountinfo(b"1 1 0:1 / / rw - ext4 /dev/x").unwrap_err();
        assert_eq!(
            e,
            MountinfoError::MissingField {
                line: 1,
                field: "super options"
            }
        );
        let e = parse_mountinfo(b"1 1 01 / / rw - ext4 /dev/x rw").unwrap_err();
        assert_eq!(e.line(), 1);
        let e = parse_mountinfo(b"1 1 4096:0 / / rw - ext4 /dev/x rw").unwrap_err();
        assert!(matches!(e, MountinfoError::InvalidField { .. }));
        let e = parse_mountinfo(b"1 1 0:1 / / rw - ext4 /dev/x rw extra").unwrap_err();
        assert_eq!(e, MountinfoError::TrailingData { line: 1 });
        assert!(e.to_string().contains("line 1"));
        assert_eq!(parse_mountinfo(b"").unwrap(), vec![]);
    }

    /// A refresh asks only about the mounts it does not have, keeps the
    /// kernel's order, drops what is gone, and after an error or a
    /// `forget_refreshed` asks about everything again.
    #[test]
    fn refresh_asks_only_about_new_mounts() {
        const NS: u32 = 4026531841;
        let lines = parse_mountinfo(SAMPLE).unwrap();
        // 64-bit id of each sample line: 1000 + its 32-bit id.
        // 1099: an error; 1098: gone since it was listed.
        let of = |u: u64| -> io::Result<Option<MountInfo>> {
            if u == 1098 {
                return Ok(None);
            }
            lines
                .iter()
                .find(|m| u64::from(m.mnt_id) + 1000 == u)
                .cloned()
                .map(Some)
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        };
        let ids = |v: &[u32]| v.iter().map(|&i| u64::from(i) + 1000).collect::<Vec<_>>();
        let mut t = MountTable::new();
        let mut asked = Vec::new();
        let ask = |u: u64, asked: &mut Vec<u64>| {
            asked.push(u);
            of(u)
        };
        t.refresh(NS, &ids(&[22, 27, 44, 70]), |u| ask(u, &mut asked))
            .unwrap();
        assert_eq!(asked, ids(&[22, 27, 44, 70]));
        let entries = |t: &MountTable| t.mounts(NS).iter().map(|m| m.mnt_id).collect::<Vec<_>>();
        assert_eq!(entries(&t), [22, 27, 44, 70]);
        assert!(t.has_ns(NS) && t.is_current(NS));
        assert_eq!(t.unique_of(NS, 44), Some(1044));
        let before = t.get(NS, 27).unwrap().clone();

        t.changed(NS);
        asked.clear();
        t.refresh(NS, &ids(&[22, 27, 70, 71, 98, 72]), |u| ask(u, &mut asked))
            .unwrap();
        assert_eq!(asked, ids(&[71, 98, 72]), "only the new mounts");
        assert_eq!(entries(&t), [22, 27, 70, 71, 72]);
        assert!(t.is_current(NS));
        assert!(t.get(NS, 44).is_none(), "gone");
        assert!(
            Arc::ptr_eq(t.get(NS, 27).unwrap(), &before),
            "kept as it was"
        );
        assert_eq!(t.at_mountpoint(NS, b"/mnt/t2").map(|m| m.mnt_id), Some(72));

        // An error: the table stays; the next refresh asks about all.
        asked.clear();
        let failed = t.refresh(NS, &ids(&[22, 27, 99]), |u| ask(u, &mut asked));
        assert!(failed.is_err());
        assert_eq!(entries(&t), [22, 27, 70, 71, 72]);
        asked.clear();
        t.refresh(NS, &ids(&[22, 27]), |u| ask(u, &mut asked))
            .unwrap();
        assert_eq!(asked, ids(&[22, 27]));

        // Mounts moved: everything is asked about again.
        t.forget_refreshed(NS);
        asked.clear();
        t.refresh(NS, &ids(&[22, 27]), |u| ask(u, &mut asked))
            .unwrap();
        assert_eq!(asked, ids(&[22, 27]));
        t.forget_all_refreshed();
        asked.clear();
        t.refresh(NS, &ids(&[27]), |u| ask(u, &mut asked)).unwrap();
        assert_eq!(asked, ids(&[27]));
    }

    #[test]
    fn after_mount_churn_an_entry_is_trusted_only_by_its_64_bit_id() {
        let mut t = MountTable::new();
        let ns = 4026531841;
        t.insert_ns(ns, parse_mountinfo(SAMPLE).unwrap());
        let id = t.mounts(ns)[0].mnt_id;
        // As read: trusted whatever the 64-bit id.
        assert!(t.is_current(ns) && t.exact(ns, id, 77).is_some());
        t.changed(ns);
        assert!(!t.is_current(ns) && t.exact(ns, id, 77).is_none());
        // Asked about by its 64-bit id: that id only.
        let mut m = (*t.mounts(ns)[0]).clone();
        m.root = Bytes::from_static(b"/asked");
        let asked = t.upsert(ns, m, 77);
        assert_eq!(t.exact(ns, id, 77), Some(&asked));
        assert!(t.exact(ns, id, 78).is_none());
        assert_eq!(t.unique_of(ns, id), Some(77));
        assert_eq!(t.mounts(ns).iter().filter(|m| m.mnt_id == id).count(), 1);
        // A mount the table never had, in a namespace never read.
        let mut n = (*asked).clone();
        n.mnt_id = 9999;
        t.upsert(7, n, 5);
        assert_eq!(t.exact(7, 9999, 5).map(|m| m.mnt_id), Some(9999));
        assert!(!t.has_ns(7), "not read from mountinfo: still to be read");
        // Read again: current, and the 64-bit ids forgotten.
        t.insert_ns(ns, parse_mountinfo(SAMPLE).unwrap());
        assert!(t.is_current(ns) && t.unique_of(ns, id).is_none());
    }

    #[test]
    fn get_find_and_has_ns() {
        let mut t = sample_table();
        assert!(t.has_ns(4026531841));
        assert!(!t.has_ns(1));
        assert_eq!(t.get(4026531841, 36).unwrap().mountpoint.as_ref(), b"/mnt2");
        assert!(t.get(4026531841, 999).is_none());
        assert!(t.get(1, 36).is_none());
        t.insert_ns(
            4026532000,
            parse_mountinfo(b"500 499 0:90 / / rw - overlay overlay rw\n").unwrap(),
        );
        let (ns, m) = t.find(500).unwrap();
        assert_eq!((ns, m.fstype.as_str()), (4026532000, "overlay"));
        let (ns, m) = t.find(66).unwrap();
        assert_eq!((ns, m.mnt_id), (4026531841, 66));
        assert!(t.find(12345).is_none());
        assert_eq!(t.mounts(4026532000).len(), 1);
        assert!(t.mounts(7).is_empty());
        // Replacing a namespace's table drops its old mounts.
        t.insert_ns(4026532000, vec![]);
        assert!(t.find(500).is_none());
        assert!(t.has_ns(4026532000));
        assert!(t.remove_ns(4026532000));
        assert!(!t.has_ns(4026532000));
        assert!(!t.remove_ns(4026532000));
    }

    #[test]
    fn at_mountpoint_picks_topmost() {
        let text = b"\
27 1 254:0 / / rw - ext4 /dev/vda rw
80 27 0:50 / /mnt/s rw - tmpfs first rw
81 80 0:51 / /mnt/s rw - tmpfs second rw
82 27 0:52 / /mnt/other rw - tmpfs other rw
";
        let mut t = MountTable::new();
        t.insert_ns(9, parse_mountinfo(text).unwrap());
        assert_eq!(t.at_mountpoint(9, b"/mnt/s").unwrap().mnt_id, 81);
        assert_eq!(t.at_mountpoint(9, b"/").unwrap().mnt_id, 27);
        assert!(t.at_mountpoint(9, b"/mnt/s/").is_none());
        assert!(t.at_mountpoint(9, b"/mnt").is_none());
        assert!(t.at_mountpoint(10, b"/").is_none());
        let t = sample_table();
        assert_eq!(
            t.at_mountpoint(4026531841, b"/mnt/my dir").unwrap().mnt_id,
            70
        );
        assert_eq!(
            t.at_mountpoint(4026531841, b"/mnt/caf\xe9").unwrap().mnt_id,
            71
        );
    }

    #[test]
    fn backing_path_idmapped_snapshot() {
        let t = sample_table();
        let ns = 4026531841;
        let m66 = t.get(ns, 66).unwrap().clone();
        assert_eq!(
            t.backing_path(ns, &m66, b"/bin/sh").unwrap().as_ref(),
            b"/var/lib/containerd/snapshots/7/fs/bin/sh"
        );
        assert_eq!(
            t.backing_path(ns, &m66, b"/").unwrap().as_ref(),
            b"/var/lib/containerd/snapshots/7/fs"
        );
        assert!(t.backing_path(12, &m66, b"/").is_none());
    }

    #[test]
    fn backing_path_sole_mount_resolves_through_itself() {
        let text = b"\
27 1 254:0 / / rw - ext4 /dev/vda rw
90 27 0:60 / /mnt/t rw - tmpfs tmpfs rw
";
        let mut t = MountTable::new();
        t.insert_ns(3, parse_mountinfo(text).unwrap());
        let m = t.get(3, 90).unwrap().clone();
        assert_eq!(t.backing_path(3, &m, b"/a").unwrap().as_ref(), b"/mnt/t/a");
        assert_eq!(t.backing_path(3, &m, b"/").unwrap().as_ref(), b"/mnt/t");
        let root = t.get(3, 27).unwrap().clone();
        assert_eq!(t.backing_path(3, &root, b"/etc").unwrap().as_ref(), b"/etc");
        assert_eq!(t.backing_path(3, &root, b"/").unwrap().as_ref(), b"/");
    }

    #[test]
    fn backing_path_candidate_rules() {
        let text = b"\
27 1 254:0 / / rw - ext4 /dev/vda rw
30 27 254:0 / /mnt/whole rw - ext4 /dev/vda rw
31 27 254:0 /srv /srv2 rw - ext4 /dev/vda rw
32 27 254:0 /srv/data /data rw - ext4 /dev/vda rw
33 27 254:0 /srvx /srvx rw - ext4 /dev/vda rw
34 27 254:0 /srv/data /data2 rw - ext4 /dev/vda rw
40 27 8:1 / /boot rw - ext4 /dev/sda1 rw
";
        let mut t = MountTable::new();
        t.insert_ns(5, parse_mountinfo(text).unwrap());
        // m = 34 (root /srv/data): 32 has the same root (another view of
        // the same directory); 31 shows /srv/data as a directory.
        let m34 = t.get(5, 34).unwrap().clone();
        assert_eq!(
            t.backing_path(5, &m34, b"/f").unwrap().as_ref(),
            b"/srv2/data/f"
        );
        let m32 = t.get(5, 32).unwrap().clone();
        assert_eq!(
            t.backing_path(5, &m32, b"/f").unwrap().as_ref(),
            b"/srv2/data/f"
        );
        // m = 31 (root /srv): "/srvx" is not a component prefix; the longest
        // other root is "/" (27, first of 27 and 30).
        let m31 = t.get(5, 31).unwrap().clone();
        assert_eq!(t.backing_path(5, &m31, b"/f").unwrap().as_ref(), b"/srv/f");
        // m = 27: ties with 30 on "/", 27 is first.
        let m27 = t.get(5, 27).unwrap().clone();
        assert_eq!(
            t.backing_path(5, &m27, b"/etc/x").unwrap().as_ref(),
            b"/etc/x"
        );
        // m = 30: ties with 27 on "/", 27 is first.
        let m30 = t.get(5, 30).unwrap().clone();
        assert_eq!(t.backing_path(5, &m30, b"/etc").unwrap().as_ref(), b"/etc");
        // A mount from another namespace (unknown id): longest root among
        // the mounts of ns 5 on its device.
        let foreign = MountInfo {
            mnt_id: 1000,
            root: Bytes::from_static(b"/srv/data/sub"),
            ..(*m32).clone()
        };
        assert_eq!(
            t.backing_path(5, &foreign, b"/f").unwrap().as_ref(),
            b"/data/sub/f"
        );
        // No mount of that device in the namespace.
        let other_dev = MountInfo {
            dev: 7,
            mnt_id: 1001,
            ..(*m32).clone()
        };
        assert!(t.backing_path(5, &other_dev, b"/f").is_none());
        // Different device: /boot resolves through itself.
        let m40 = t.get(5, 40).unwrap().clone();
        assert_eq!(
            t.backing_path(5, &m40, b"/vmlinuz").unwrap().as_ref(),
            b"/boot/vmlinuz"
        );
    }

    #[test]
    fn backing_path_ignores_other_clones_of_the_same_layer() {
        // Four pods, each with an id-mapped clone of layer 7; the clone of
        // pod 3 is listed first. Every clone lives in the layer directory.
        let text = b"\
27 1 254:0 / / rw - ext4 /dev/vda rw
93 27 254:0 /s/snapshots/7/fs /t/ovl-idmapped3/0 rw,idmapped - ext4 /dev/vda rw
90 27 254:0 /s/snapshots/7/fs /t/ovl-idmapped0/0 rw,idmapped - ext4 /dev/vda rw
91 27 254:0 /s/snapshots/7/fs /t/ovl-idmapped1/0 rw,idmapped - ext4 /dev/vda rw
92 27 254:0 /s/snapshots/7/fs /t/ovl-idmapped2/0 rw,idmapped - ext4 /dev/vda rw
";
        let mut t = MountTable::new();
        t.insert_ns(6, parse_mountinfo(text).unwrap());
        for id in 90..=93 {
            let m = t.get(6, id).unwrap().clone();
            assert_eq!(
                t.backing_path(6, &m, b"/bin/sh").unwrap().as_ref(),
                b"/s/snapshots/7/fs/bin/sh",
                "clone {id}"
            );
        }
        // Without the host's view, a clone resolves through itself, never
        // through another pod's clone.
        t.insert_ns(6, parse_mountinfo(&text[37..]).unwrap());
        let m = t.get(6, 91).unwrap().clone();
        assert_eq!(
            t.backing_path(6, &m, b"/f").unwrap().as_ref(),
            b"/t/ovl-idmapped1/0/f"
        );
    }

    #[test]
    fn submounts_are_strictly_below() {
        let t = sample_table();
        let ns = 4026531841;
        assert_eq!(
            t.submounts(ns, b"/tmp/x"),
            vec![Bytes::from_static(b"/tmp/x/0")]
        );
        assert!(t.submounts(ns, b"/tmp/x/0").is_empty());
        assert_eq!(t.submounts(ns, b"/").len(), 7);
    }

    #[test]
    fn load_own_pid() {
        let mut t = MountTable::new();
        let ns = t.load_pid(std::process::id()).unwrap();
        assert!(t.has_ns(ns));
        let expected = std::fs::metadata("/proc/self/ns/mnt").unwrap().ino();
        assert_eq!(u64::from(ns), expected);
        let root = t.at_mountpoint(ns, b"/").unwrap();
        assert_eq!(t.find(root.mnt_id).unwrap().0, ns);
        assert!(t.load_pid(u32::MAX).is_err());
    }
}
