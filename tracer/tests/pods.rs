//! Several pods at once, as on a busy node: containerd 2.0.0-rc.0 with user
//! namespaces prepares four pods sharing ONE lower layer (an id-mapped
//! clone of it per pod), two clones are held busy by a separate process
//! started by a shell that execs, then every pod's cleanup runs in parallel
//! goroutines (plain umount2, then Go's real os.RemoveAll).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use mntrace::correlate::{Incident, Severity};
use mntrace::enrich::holders::Hold;

const PODS: usize = 4;
/// Files of the shared layer; enough that both busy pods' walks delete some.
const LIB_FILES: usize = 3000;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let n = Node { dir: scratch() };
        let l = n.layer();
        make_tree(&l, &["bin/sh", "etc/passwd"]);
        std::fs::create_dir_all(l.join("lib")).expect("mkdir lib");
        for i in 0..LIB_FILES {
            std::fs::write(l.join(format!("lib/f{i}")), b"x").expect("write");
        }
        for k in 0..PODS {
            std::fs::create_dir_all(n.pod(k).join("0")).expect("mkdir pod");
        }
        n
    }
    fn layer(&self) -> PathBuf {
        self.dir
            .path()
            .join("io.containerd.snapshotter.v1.overlayfs/snapshots/7/fs")
    }
    fn tmpmounts(&self) -> PathBuf {
        self.dir.path().join("tmpmounts")
    }
    fn pod(&self, k: usize) -> PathBuf {
        self.tmpmounts().join(format!("ovl-idmapped{k}"))
    }
    /// Every entry of the layer (files and directories, not the top).
    fn entries(&self) -> BTreeSet<PathBuf> {
        let l = self.layer();
        let mut v: BTreeSet<PathBuf> = ["bin", "bin/sh", "etc", "etc/passwd", "lib"]
            .iter()
            .map(|e| l.join(e))
            .collect();
        v.extend((0..LIB_FILES).map(|i| l.join(format!("lib/f{i}"))));
        v
    }
    fn left_on_disk(&self) -> usize {
        self.entries().iter().filter(|p| p.exists()).count()
    }
}

#[test]
fn parallel_pods_sharing_a_layer_give_one_exact_critical_incident_per_busy_pod() {
    require_root();
    let node = Node::new();
    let tools = scratch();
    let pods = go_build(tools.path(), "pods", include_str!("go/pods.go"));
    let mut live = Live::start(Default::default());
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&pods)
        .arg(node.layer())
        .arg(node.tmpmounts())
        .arg(PODS.to_string())
        .args(["bin/sh", "etc/passwd"]) // pods 0 and 1 are held
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the pods program");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).expect("read") > 0, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert!(v.get("error").is_none(), "{v}");
        if v["done"] == true {
            break;
        }
        lines.push(v);
    }
    // The holders are still alive: correlate now (holder scans included).
    let incidents: Vec<Incident> = live
        .finish()
        .into_iter()
        .filter(|i| i.mount.mountpoint.starts_with(b(node.dir.path())))
        .collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release the holders");
    assert!(child.wait().expect("wait").success());

    let holder = |pod: usize| {
        lines
            .iter()
            .find(|l| l["holder"].is_u64() && l["pod"] == pod)
            .map(|l| l["holder"].as_u64().expect("pid") as u32)
            .expect("holder line")
    };
    for k in 0..PODS {
        let r = lines
            .iter()
            .find(|l| l["pod"] == k && l.get("umount_errno").is_some())
            .expect("pod result");
        let want = if k < 2 { 16 } else { 0 };
        assert_eq!(r["umount_errno"], want, "pod {k}: {r}");
    }
    assert_eq!(node.left_on_disk(), 0, "the race really emptied the layer");

    assert_eq!(incidents.len(), 2, "one per busy pod: {incidents:#?}");
    let mut deleted = BTreeSet::new();
    for (k, held) in [(0, "bin/sh"), (1, "etc/passwd")] {
        let clone = node.pod(k).join("0");
        let inc = incidents
            .iter()
            .find(|i| i.mount.mountpoint.as_ref() == b(&clone))
            .unwrap_or_else(|| panic!("no incident for pod {k}: {incidents:#?}"));
        assert_eq!(inc.severity, Severity::Critical, "pod {k}");
        assert_eq!(inc.root_label.as_deref(), Some("containerd snapshot"));
        assert_eq!(
            inc.mount.backing_root.as_deref(),
            Some(b(&node.layer())),
            "pod {k}: the layer's own directory, not another pod's clone"
        );
        assert_eq!(inc.mount.root.as_deref(), Some(b(&node.layer())));
        assert!(inc.mount.idmapped && inc.mount.subtree);
        assert_eq!(&inc.unmount().expect("busy").target[..], b(&clone));
        let scan = inc.holders.as_ref().expect("holders scanned");
        assert!(scan.complete, "{scan:#?}");
        let h = scan
            .holders
            .iter()
            .find(|h| h.pid == holder(k))
            .unwrap_or_else(|| panic!("pod {k}: holder {} not in {scan:#?}", holder(k)));
        assert_eq!(&h.comm[..], b"sleep", "the shell exec'd sleep");
        assert!(
            h.holds.iter().any(|x| matches!(x,
                Hold::Fd { fd: 3, path } if path.starts_with(b(&clone.join(held))))),
            "{h:#?}"
        );
        assert_eq!(inc.count as usize, inc.deletions.len());
        for d in &inc.deletions {
            let backing = to_path_buf(d.backing_path.as_deref().expect("backing path"));
            assert!(backing.starts_with(node.layer()), "{d:?}");
            assert!(d.path.starts_with(b(&clone)), "{d:?}");
            assert!(deleted.insert(backing), "deleted twice: {d:?}");
        }
    }
    assert_eq!(
        deleted,
        node.entries(),
        "every entry lost from the layer is in exactly one incident"
    );
    assert_eq!(live.traced.drops().total(), 0);
}
