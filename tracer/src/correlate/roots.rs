//! Snapshot and volume roots: which paths belong to container image layers,
//! container volumes or Kubernetes pod volumes, so that deleting or
//! unmounting there can be flagged as severe.
//!
//! [`Glob`] is a tiny matcher over path components (no dependencies): `**`
//! as a whole component matches zero or more components, `*` inside a
//! component matches any run of bytes within that component, everything else
//! is literal. [`Roots`] is an ordered list of such patterns with labels;
//! the first match classifies a path.

/// A glob over `/`-separated path components, matched against raw bytes.
///
/// Pattern and path are split on `/`, ignoring empty components (so leading,
/// trailing and duplicate slashes do not matter). A pattern component `**`
/// matches zero or more path components; any other pattern component
/// matches exactly one path component, `*` in it matching any (possibly
/// empty) run of bytes and every other byte matching itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    text: String,
    comps: Vec<Comp>,
    /// The components without `*`: each must be one of the path's, else
    /// nothing to match (a quick no for most paths).
    literals: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Comp {
    /// `**`: zero or more components.
    Deep,
    /// One component; `*` bytes are wildcards.
    One(Vec<u8>),
}

impl Glob {
    /// Compiles `pattern`; the empty string is rejected.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty glob pattern".to_string());
        }
        Ok(Glob::compile(pattern))
    }

    fn compile(pattern: &str) -> Glob {
        let comps = components(pattern.as_bytes())
            .map(|c| {
                if c == b"**" {
                    Comp::Deep
                } else {
                    Comp::One(c.to_vec())
                }
            })
            .collect::<Vec<_>>();
        let literals = comps
            .iter()
            .filter_map(|c| match c {
                Comp::One(b) if !b.contains(&b'*') => Some(b.clone()),
                _ => None,
            })
            .collect();
        Glob {
            text: pattern.to_string(),
            comps,
            literals,
        }
    }

    /// The pattern text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        let parts: Vec<&[u8]> = components(path).collect();
        self.matches_components(&parts)
    }

    /// [`Glob::matches`] for a path already split ([`components`]).
    fn matches_components(&self, parts: &[&[u8]]) -> bool {
        // A literal component matches only a path component equal to it.
        if !self
            .literals
            .iter()
            .all(|l| parts.iter().any(|p| p == &l.as_slice()))
        {
            return false;
        }
        self.matches_all(parts)
    }

    /// The match itself, component by component, without the literals'
    /// quick no.
    fn matches_all(&self, parts: &[&[u8]]) -> bool {
        wildcard(
            &self.comps,
            parts,
            |c| matches!(c, Comp::Deep),
            |c, part| match c {
                Comp::One(pat) => component_matches(pat, part),
                Comp::Deep => false,
            },
        )
    }
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

fn component_matches(pat: &[u8], part: &[u8]) -> bool {
    wildcard(pat, part, |&b| b == b'*', |&p, &b| p == b)
}

/// Wildcard matching where star elements of `pat` match any run (possibly
/// empty) of `items` and every other element matches exactly one item for
/// which `one` holds. Greedy with backtracking to the last star: linear
/// space, O(pattern × items) time at worst.
fn wildcard<P, T>(
    pat: &[P],
    items: &[T],
    is_star: impl Fn(&P) -> bool,
    one: impl Fn(&P, &T) -> bool,
) -> bool {
    let (mut p, mut i) = (0, 0);
    // After the last star seen: (pattern index past it, items it swallowed up to).
    let mut backtrack: Option<(usize, usize)> = None;
    while i < items.len() {
        match pat.get(p) {
            Some(x) if is_star(x) => {
                p += 1;
                backtrack = Some((p, i));
            }
            Some(x) if one(x, &items[i]) => {
                p += 1;
                i += 1;
            }
            _ => match backtrack {
                Some((bp, bi)) => {
                    p = bp;
                    i = bi + 1;
                    backtrack = Some((bp, bi + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(is_star)
}

/// Default roots: (pattern, label). Every pattern ends with `/**`, so it
/// matches the root itself and everything below it.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "**/io.containerd.snapshotter.v1.*/snapshots/*/**",
        "containerd snapshot",
    ),
    (
        "**/containers/storage/overlay/*/**",
        "containers/storage layer",
    ),
    ("**/containers/storage/volumes/*/**", "podman volume"),
    ("**/docker/overlay2/*/**", "docker overlay2 layer"),
    ("**/docker/volumes/*/**", "docker volume"),
    ("**/kubelet/pods/*/volumes/**", "kubelet pod volume"),
    (
        "**/kubelet/pods/*/volume-subpaths/**",
        "kubelet volume subpath",
    ),
    (
        "**/kubelet/plugins/kubernetes.io/csi/**/globalmount/**",
        "CSI global mount",
    ),
];

/// An ordered list of labelled root patterns.
#[derive(Clone, Debug)]
pub struct Roots {
    rules: Vec<(Glob, String)>,
}

impl Roots {
    /// The container-runtime and Kubernetes roots (see the module source
    /// for the list).
    pub fn defaults() -> Roots {
        Roots {
            rules: DEFAULTS
                .iter()
                .map(|&(pattern, label)| (Glob::compile(pattern), label.to_string()))
                .collect(),
        }
    }

    pub fn empty() -> Roots {
        Roots { rules: Vec::new() }
    }

    /// Appends a rule (checked after the existing ones). To match a root and
    /// everything below it, end the pattern with `/**`.
    pub fn add(&mut self, pattern: &str, label: &str) -> Result<(), String> {
        self.rules.push((Glob::new(pattern)?, label.to_string()));
        Ok(())
    }

    /// The label of the first rule matching `path`.
    pub fn classify(&self, path: &[u8]) -> Option<&str> {
        // Split once for every rule.
        let parts: Vec<&[u8]> = components(path).collect();
        self.rules
            .iter()
            .find(|(glob, _)| glob.matches_components(&parts))
            .map(|(_, label)| label.as_str())
    }

    /// (pattern text, label) of every rule, in order.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules
            .iter()
            .map(|(glob, label)| (glob.as_str(), label.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    /// The literal components' quick no never says no to a match.
    #[test]
    fn literal_prefilter_is_only_a_shortcut() {
        let patterns = [
            "**/docker/volumes/*/**",
            "/a/b",
            "a/*/c",
            "**",
            "x*y/**/z",
            "**/kubelet/plugins/kubernetes.io/csi/**/globalmount/**",
        ];
        let paths: [&[u8]; 9] = [
            b"/",
            b"/a/b",
            b"/a/x/c",
            b"/var/lib/docker/volumes/v/_data",
            b"/var/lib/docker/volume/v",
            b"/xQy/z",
            b"/xy/1/2/z",
            b"/var/lib/kubelet/plugins/kubernetes.io/csi/d/h/globalmount/f",
            b"/var/lib/kubelet/plugins/kubernetes.io/csi/globalmount",
        ];
        for p in patterns {
            let glob = g(p);
            for path in paths {
                let parts: Vec<&[u8]> = components(path).collect();
                let full = glob.matches_all(&parts);
                assert_eq!(glob.matches(path), full, "{p} {path:?}");
            }
        }
    }

    #[test]
    fn defaults_match_realistic_paths() {
        let r = Roots::defaults();
        let cases: &[(&[u8], &str)] = &[
            (
                b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs/bin/sh",
                "containerd snapshot",
            ),
            (
                b"/tmp/scratch-x/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs",
                "containerd snapshot",
            ),
            (
                b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1",
                "containerd snapshot",
            ),
            (
                b"/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.native/snapshots/3/fs/etc",
                "containerd snapshot",
            ),
            (
                b"/var/lib/containers/storage/overlay/0f1e2d/diff/usr/bin/env",
                "containers/storage layer",
            ),
            (
                b"/home/u/.local/share/containers/storage/overlay/abc/merged",
                "containers/storage layer",
            ),
            (
                b"/var/lib/containers/storage/volumes/data/_data/file",
                "podman volume",
            ),
            (
                b"/var/lib/docker/overlay2/3c5e7a/merged/etc/passwd",
                "docker overlay2 layer",
            ),
            (b"/var/lib/docker/overlay2/abc", "docker overlay2 layer"),
            (
                b"/var/lib/docker/volumes/pgdata/_data/base/1",
                "docker volume",
            ),
            (
                b"/var/lib/kubelet/pods/0b3f5c1e-8a2d-4c1b-9f00-1234567890ab/volumes/kubernetes.io~empty-dir/data/x",
                "kubelet pod volume",
            ),
            (
                b"/var/lib/kubelet/pods/0b3f5c1e/volumes",
                "kubelet pod volume",
            ),
            (
                b"/var/lib/kubelet/pods/0b3f5c1e/volume-subpaths/cfg/app/0",
                "kubelet volume subpath",
            ),
            (
                b"/var/lib/kubelet/plugins/kubernetes.io/csi/pv/pvc-1/globalmount/f",
                "CSI global mount",
            ),
            (
                b"/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/0123abcd/globalmount",
                "CSI global mount",
            ),
        ];
        for (path, label) in cases {
            assert_eq!(
                r.classify(path),
                Some(*label),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn defaults_reject_near_misses() {
        let r = Roots::defaults();
        let misses: &[&[u8]] = &[
            b"/var/lib/containerd/io.containerd.content.v1.content/blobs/x",
            b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db",
            b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots",
            b"/var/lib/containerd/io.containerd.snapshotter.v2.overlayfs/snapshots/1/fs",
            b"/home/docker/overlay2",
            b"/var/lib/docker/overlay2",
            b"/var/lib/docker/volumes",
            b"/var/lib/docker/image/overlay2/layerdb/sha256/x",
            b"/var/lib/containers/storage/overlay",
            b"/var/lib/containers/storage/overlay-images/abc/manifest",
            b"/var/lib/kubelet/pods/0b3f/etc-hosts",
            b"/var/lib/kubelet/pods/0b3f/containers/app/1",
            b"/var/lib/kubelet/pods",
            b"/var/lib/kubelet/plugins/kubernetes.io/csi/pv/pvc-1/vol_data.json",
            b"/var/lib/kubelet/plugins/kubernetes.io/csi/globalmountx/f",
            b"/",
            b"",
        ];
        for path in misses {
            assert_eq!(r.classify(path), None, "{}", String::from_utf8_lossy(path));
        }
    }

    #[test]
    fn star_within_components() {
        let glob = g("/a/io.containerd.snapshotter.v1.*/x");
        assert!(glob.matches(b"/a/io.containerd.snapshotter.v1.overlayfs/x"));
        assert!(glob.matches(b"/a/io.containerd.snapshotter.v1./x"));
        assert!(!glob.matches(b"/a/io.containerd.snapshotter.v1/x"));
        // `*` does not cross a '/'.
        assert!(!glob.matches(b"/a/io.containerd.snapshotter.v1.o/verlay/x"));
        let glob = g("/*a*b*c");
        assert!(glob.matches(b"/abc"));
        assert!(glob.matches(b"/xxaxxbxxcxxc"));
        assert!(glob.matches(b"/aabbcc"));
        assert!(!glob.matches(b"/acb"));
        assert!(!glob.matches(b"/abcx"));
        let glob = g("/*");
        assert!(glob.matches(b"/anything"));
        assert!(!glob.matches(b"/"));
        assert!(!glob.matches(b"/a/b"));
        // Everything but `*` is literal.
        assert!(g("/a?c").matches(b"/a?c"));
        assert!(!g("/a?c").matches(b"/abc"));
        assert!(g("/[ab]").matches(b"/[ab]"));
        assert!(!g("/[ab]").matches(b"/a"));
    }

    #[test]
    fn double_star_positions() {
        // At the start.
        let glob = g("**/x/y");
        assert!(glob.matches(b"/x/y"));
        assert!(glob.matches(b"/a/b/x/y"));
        assert!(!glob.matches(b"/a/b/x/y/z"));
        // In the middle.
        let glob = g("/a/**/z");
        assert!(glob.matches(b"/a/z"));
        assert!(glob.matches(b"/a/b/c/z"));
        assert!(!glob.matches(b"/a/b/c"));
        assert!(!glob.matches(b"/b/z"));
        // At the end.
        let glob = g("/a/**");
        assert!(glob.matches(b"/a"));
        assert!(glob.matches(b"/a/"));
        assert!(glob.matches(b"/a/b/c"));
        assert!(!glob.matches(b"/ab"));
        assert!(!glob.matches(b"/"));
        // Several, with backtracking.
        let glob = g("**/a/**/a/b/**");
        assert!(glob.matches(b"/a/a/b"));
        assert!(glob.matches(b"/x/a/a/a/y/a/b/c"));
        assert!(!glob.matches(b"/x/a/b"));
        // Alone, and "/" alone.
        assert!(g("**").matches(b"/"));
        assert!(g("**").matches(b"/a/b"));
        assert!(g("/").matches(b"/"));
        assert!(!g("/").matches(b"/a"));
        // `**` inside a component is just two stars.
        assert!(g("/a**b").matches(b"/ab"));
        assert!(!g("/a**b").matches(b"/a/b"));
    }

    #[test]
    fn slashes_are_normalized() {
        let glob = g("//a///b/");
        assert!(glob.matches(b"/a/b"));
        assert!(glob.matches(b"a/b"));
        assert!(glob.matches(b"//a//b//"));
        assert!(!glob.matches(b"/a/b/c"));
    }

    #[test]
    fn non_utf8_bytes() {
        assert!(g("/data/*/**").matches(b"/data/\xff\xfe/x"));
        assert!(g("/caf*").matches(b"/caf\xe9"));
        assert!(g("/caf\u{e9}").matches("/caf\u{e9}".as_bytes()));
        assert!(!g("/caf\u{e9}").matches(b"/caf\xe9"));
        let r = Roots::defaults();
        assert_eq!(
            r.classify(b"/var/lib/docker/volumes/\x80v/_data"),
            Some("docker volume")
        );
    }

    #[test]
    fn empty_pattern_rejected() {
        assert!(Glob::new("").is_err());
        assert!(Roots::empty().add("", "x").is_err());
        assert_eq!(g("/a/**").as_str(), "/a/**");
    }

    #[test]
    fn roots_api() {
        let mut r = Roots::empty();
        assert_eq!(r.classify(b"/srv/backups/x"), None);
        assert_eq!(r.patterns().count(), 0);
        r.add("/srv/backups/**", "backups").unwrap();
        r.add("/srv/**", "srv").unwrap();
        assert_eq!(r.classify(b"/srv/backups"), Some("backups"));
        assert_eq!(r.classify(b"/srv/backups/2024/db.tar"), Some("backups"));
        assert_eq!(r.classify(b"/srv/www"), Some("srv"));
        assert_eq!(r.classify(b"/var"), None);
        assert_eq!(
            r.patterns().collect::<Vec<_>>(),
            [("/srv/backups/**", "backups"), ("/srv/**", "srv")]
        );

        let d = Roots::defaults();
        let pats: Vec<_> = d.patterns().collect();
        assert_eq!(pats.len(), DEFAULTS.len());
        assert_eq!(
            pats[0],
            (
                "**/io.containerd.snapshotter.v1.*/snapshots/*/**",
                "containerd snapshot"
            )
        );
        assert!(pats.iter().all(|(p, _)| p.ends_with("/**")));
        // Defaults compile the same as through `new`.
        for (p, _) in pats {
            assert_eq!(Glob::new(p).unwrap(), Glob::compile(p));
        }
    }
}
