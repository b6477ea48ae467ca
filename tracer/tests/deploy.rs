//! The deployment files under `deploy/` (no root, no kernel): the systemd
//! unit and the Kubernetes manifest are parsed and their security-relevant
//! settings checked against what the README documents (Privileges, Exit
//! codes) and what mntrace itself recommends (`preflight::RECOMMENDED`), so
//! that the three cannot drift apart.
//!
//! These are structural checks written here; the tools that know systemd's
//! and Kubernetes' own schemas run as a separate step of `cargo xtask test`
//! (`systemd-analyze verify` / `security`, and `kubernetes-validate --strict`
//! against the Kubernetes API's JSON schemas): see xtask/src/deploy.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// The README: the documented capability set and exit codes.

/// The section of the README under `heading` (a line starting with it), up
/// to the next heading of the same or a higher level.
fn readme_section(readme: &str, heading: &str) -> String {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(heading));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("README has no {heading:?} section"));
    let mut out = vec![first];
    for line in lines {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// The capabilities of the README's Privileges table: the first `CAP_*` of
/// each row (the alternatives in parentheses are not part of the set).
fn readme_capabilities() -> BTreeSet<String> {
    let section = readme_section(&read("README.md"), "### Privileges");
    let caps: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `CAP_"))
        .map(|rest| format!("CAP_{}", &rest[..rest.find('`').expect("closing backtick")]))
        .collect();
    assert_eq!(
        caps.len(),
        5,
        "the Privileges table changed shape: {caps:?}"
    );
    caps
}

#[test]
fn readme_and_preflight_agree_on_the_capability_set() {
    let recommended = set(mntrace::preflight::RECOMMENDED.split_whitespace());
    assert_eq!(readme_capabilities(), recommended);
    assert!(!recommended.contains("CAP_SYS_ADMIN"));
}

/// The README's exit-code table: code → meaning.
fn readme_exit_codes() -> BTreeMap<u8, String> {
    let section = readme_section(&read("README.md"), "### Exit codes");
    section
        .lines()
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| ")?.splitn(2, " | ");
            let code = cells.next()?.trim().parse().ok()?;
            Some((code, cells.next()?.to_owned()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The systemd unit.

/// A unit file as systemd reads it, for what these tests need: sections of
/// `Key=Value` lines (whitespace around `=` ignored), `#` and `;` comments,
/// `\` continuation lines, repeated keys kept in order.
struct Unit {
    sections: BTreeMap<String, Vec<(String, String)>>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut pending = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.to_owned());
                sections.entry(name.to_owned()).or_default();
                continue;
            }
            let section = current
                .as_ref()
                .unwrap_or_else(|| panic!("line {}: setting outside a section", n + 1));
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("line {}: not Key=Value: {line:?}", n + 1));
            sections
                .get_mut(section)
                .expect("section")
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
        assert!(pending.is_empty(), "file ends with a continuation line");
        Unit { sections }
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .get(section)
            .unwrap_or_else(|| panic!("no [{section}] section"))
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a single-valued setting (the last one wins, as in
    /// systemd); panics when it is not set.
    fn get(&self, section: &str, key: &str) -> &str {
        self.all(section, key)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("[{section}] {key}= is not set"))
    }

    /// A list setting: every assignment's words, an empty assignment
    /// resetting the list.
    fn list(&self, section: &str, key: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for value in self.all(section, key) {
            if value.is_empty() {
                out.clear();
            }
            out.extend(value.split_whitespace().map(str::to_owned));
        }
        out
    }

    fn is(&self, key: &str, want: &str) {
        assert_eq!(self.get("Service", key), want, "[Service] {key}=");
    }
}

fn unit() -> Unit {
    Unit::parse(&read("deploy/systemd/mntrace.service"))
}

#[test]
fn unit_parser_follows_systemd_syntax() {
    let u = Unit::parse(
        "# c\n[Unit]\nA = 1\n; c\n[Service]\nL=a b\nL=c\nX=one\\\n  two\nL=\nL=d\nB=1\nB=2\n",
    );
    assert_eq!(u.get("Unit", "A"), "1");
    assert_eq!(u.get("Service", "X"), "one two");
    assert_eq!(u.list("Service", "L"), set(["d"]));
    assert_eq!(u.get("Service", "B"), "2");
    assert!(u.all("Service", "Missing").is_empty());
}

#[test]
fn unit_runs_the_recorder_with_the_documented_command() {
    let u = unit();
    u.is(
        "ExecStart",
        "/usr/local/bin/mntrace record --dir /var/lib/mntrace --metrics 127.0.0.1:9477",
    );
    assert_eq!(u.all("Service", "ExecStart").len(), 1);
    u.is("Type", "exec");
    assert_eq!(u.get("Install", "WantedBy"), "multi-user.target");
}

#[test]
fn unit_grants_exactly_the_documented_capabilities() {
    let u = unit();
    let readme = readme_capabilities();
    // Not root: a dynamic user, given the set as ambient capabilities and
    // unable to get anything else.
    u.is("DynamicUser", "yes");
    assert!(u.all("Service", "User").is_empty(), "User= is not used");
    assert_eq!(u.list("Service", "CapabilityBoundingSet"), readme);
    assert_eq!(u.list("Service", "AmbientCapabilities"), readme);
    u.is("NoNewPrivileges", "yes");
}

#[test]
fn unit_is_hardened() {
    let u = unit();
    for (key, want) in [
        ("ProtectSystem", "strict"),
        ("StateDirectory", "mntrace"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallErrorNumber", "EPERM"),
        ("LimitMEMLOCK", "infinity"),
    ] {
        u.is(key, want);
    }
    assert_eq!(
        u.list("Service", "RestrictAddressFamilies"),
        set(["AF_INET", "AF_INET6", "AF_UNIX"])
    );
    // A deny list only, and never of the groups holding bpf (@privileged)
    // or perf_event_open (@debug), nor @mount/@resources (see the unit).
    let deny: Vec<&str> = u
        .all("Service", "SystemCallFilter")
        .iter()
        .map(|v| {
            v.strip_prefix('~')
                .expect("SystemCallFilter is a deny list (~...)")
        })
        .flat_map(str::split_whitespace)
        .collect();
    assert!(deny.contains(&"@reboot"), "{deny:?}");
    for needed in [
        "@privileged",
        "@debug",
        "@mount",
        "@resources",
        "bpf",
        "perf_event_open",
    ] {
        assert!(!deny.contains(&needed), "SystemCallFilter denies {needed}");
    }
    // Metrics on loopback only, and only loopback traffic allowed.
    assert!(u
        .get("Service", "ExecStart")
        .ends_with("--metrics 127.0.0.1:9477"));
    assert_eq!(u.get("Service", "IPAddressAllow"), "localhost");
    assert_eq!(u.get("Service", "IPAddressDeny"), "any");
    // tracefs mounted by systemd before mntrace starts.
    assert!(u.list("Unit", "After").contains("sys-kernel-tracing.mount"));
    assert!(u.list("Unit", "Wants").contains("sys-kernel-tracing.mount"));
}

#[test]
fn unit_never_hides_the_hosts_processes_or_proc() {
    let u = unit();
    let service = &u.sections["Service"];
    for key in [
        "PrivateMounts",
        "ProtectProc",
        "ProcSubset",
        "PrivatePIDs",
        "PrivateUsers",
        "PrivateNetwork",
        "NetworkNamespacePath",
        "RootDirectory",
        "RootImage",
        "TemporaryFileSystem",
        "InaccessiblePaths",
        "BindPaths",
        "BindReadOnlyPaths",
        "ReadWritePaths",
        "User",
    ] {
        assert!(
            service.iter().all(|(k, _)| k != key),
            "[Service] {key}= must not be set (see the comments in the unit)"
        );
    }
}

#[test]
fn unit_has_resource_limits() {
    let u = unit();
    let mib = |v: &str| -> u64 {
        let n: u64 = v.trim_end_matches('M').parse().expect("a size in M");
        assert!(v.ends_with('M'), "{v}: give sizes in M");
        n
    };
    let high = mib(u.get("Service", "MemoryHigh"));
    let max = mib(u.get("Service", "MemoryMax"));
    assert!(
        high < max && max >= 256,
        "MemoryHigh {high}M, MemoryMax {max}M"
    );
    u.is("CPUQuota", "100%");
}

#[test]
fn unit_restarts_only_what_a_restart_can_fix() {
    let u = unit();
    u.is("Restart", "on-failure");
    let prevented: BTreeSet<u8> = u
        .list("Service", "RestartPreventExitStatus")
        .iter()
        .map(|c| c.parse().expect("a numeric exit status"))
        .collect();
    assert_eq!(prevented, BTreeSet::from([2, 4, 5, 6, 7]));
    // They are the README's start-up refusals (and the bad command line);
    // 1, a runtime error, is restarted.
    let codes = readme_exit_codes();
    for (code, needle) in [
        (2, "bad command line"),
        (4, "not permitted"),
        (5, "BTF"),
        (6, "syscall tracepoints"),
        (7, "refused"),
        (1, "runtime error"),
    ] {
        let meaning = codes
            .get(&code)
            .unwrap_or_else(|| panic!("README's exit codes lack {code}"));
        assert!(meaning.contains(needle), "exit {code}: {meaning}");
    }
    assert!(!prevented.contains(&1));
    assert!(u.get("Unit", "StartLimitBurst").parse::<u32>().is_ok());
    assert!(!u.get("Unit", "StartLimitIntervalSec").is_empty());
}

// ---------------------------------------------------------------------------
// The Kubernetes manifest.

const NAMESPACE: &str = "mntrace";
const IMAGE_PLACEHOLDER: &str = "registry.invalid/mntrace:SET-ME";

fn manifest() -> Vec<Yaml> {
    let text = read("deploy/kubernetes/mntrace-daemonset.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("the manifest is valid YAML");
    // The leading comment block is an empty document, which kubectl skips.
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {y:?}"))
}

fn list_of<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what}: expected a list, found {y:?}"))
}

fn strings(y: &Yaml, what: &str) -> Vec<String> {
    list_of(y, what)
        .iter()
        .map(|s| str_of(s, what).to_owned())
        .collect()
}

fn by_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn daemonset() -> Yaml {
    by_kind(&manifest(), "DaemonSet").clone()
}

fn container(ds: &Yaml) -> &Yaml {
    let containers = list_of(&ds["spec"]["template"]["spec"]["containers"], "containers");
    assert_eq!(containers.len(), 1, "one container");
    assert!(
        ds["spec"]["template"]["spec"]["initContainers"].is_badvalue(),
        "no init containers"
    );
    &containers[0]
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn manifest_objects_and_namespace() {
    let docs = manifest();
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                str_of(&d["apiVersion"], "apiVersion"),
                str_of(&d["kind"], "kind"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("v1", "Namespace"),
            ("v1", "ResourceQuota"),
            ("v1", "ServiceAccount"),
            ("apps/v1", "DaemonSet")
        ]
    );
    for d in &docs {
        let name = str_of(&d["metadata"]["name"], "metadata.name");
        assert!(is_dns_label(name), "{name}");
        if d["kind"].as_str() == Some("Namespace") {
            assert_eq!(name, NAMESPACE);
            assert!(d["metadata"]["namespace"].is_badvalue());
            // The pods need the privileged Pod Security level.
            assert_eq!(
                d["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
                Some("privileged")
            );
        } else {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{name}"
            );
        }
    }
    let sa = by_kind(&docs, "ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"].as_bool(), Some(false));
}

#[test]
fn daemonset_selector_matches_its_pods_and_runs_everywhere() {
    let docs = manifest();
    let ds = by_kind(&docs, "DaemonSet");
    let spec = &ds["spec"];
    let selector = spec["selector"]["matchLabels"]
        .as_hash()
        .expect("selector.matchLabels");
    assert!(!selector.is_empty());
    assert!(spec["selector"]["matchExpressions"].is_badvalue());
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(&labels[str_of(k, "label")], v, "template label {k:?}");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"].as_str(),
        by_kind(&docs, "ServiceAccount")["metadata"]["name"].as_str()
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_ne!(pod["hostNetwork"].as_bool(), Some(true), "not hostNetwork");
    assert_eq!(pod["hostUsers"].as_bool(), Some(true));
    assert!(pod["hostIPC"].is_badvalue());
    // Every node: one toleration of every taint.
    let tolerations = list_of(&pod["tolerations"], "tolerations");
    assert!(tolerations
        .iter()
        .any(|t| t["operator"].as_str() == Some("Exists")
            && t["key"].is_badvalue()
            && t["effect"].is_badvalue()));
    // Node-critical priority, admitted by the namespace's quota.
    let priority = str_of(&pod["priorityClassName"], "priorityClassName");
    assert_eq!(priority, "system-node-critical");
    let quota = by_kind(&docs, "ResourceQuota");
    let scopes = list_of(
        &quota["spec"]["scopeSelector"]["matchExpressions"],
        "scopes",
    );
    assert!(scopes
        .iter()
        .any(|s| s["scopeName"].as_str() == Some("PriorityClass")
            && s["operator"].as_str() == Some("In")
            && strings(&s["values"], "values")
                .iter()
                .any(|v| v == priority)));
    // Rolling, one node at a time, never two pods on a node.
    let update = &spec["updateStrategy"];
    assert_eq!(update["type"].as_str(), Some("RollingUpdate"));
    assert_eq!(update["rollingUpdate"]["maxSurge"].as_i64(), Some(0));
    assert_eq!(update["rollingUpdate"]["maxUnavailable"].as_i64(), Some(1));
}

#[test]
fn daemonset_container_command_ports_and_image() {
    let ds = daemonset();
    let c = container(&ds);
    assert_eq!(str_of(&c["image"], "image"), IMAGE_PLACEHOLDER);
    let mut argv = strings(&c["command"], "command");
    argv.extend(strings(&c["args"], "args"));
    assert_eq!(
        argv,
        [
            "/usr/local/bin/mntrace",
            "record",
            "--dir",
            "/var/lib/mntrace",
            "--metrics",
            "0.0.0.0:9477"
        ]
    );
    // The metrics port: the one mntrace listens on, the container's named
    // port, the probe's and the scrape annotation's.
    let port: i64 = argv[5]
        .rsplit_once(':')
        .expect("ADDR:PORT")
        .1
        .parse()
        .expect("port");
    let ports = list_of(&c["ports"], "ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"].as_str(), Some("metrics"));
    assert_eq!(ports[0]["containerPort"].as_i64(), Some(port));
    assert_eq!(ports[0]["protocol"].as_str(), Some("TCP"));
    assert!(ports[0]["hostPort"].is_badvalue(), "no hostPort");
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("metrics")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/metrics")
    );
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
    // The README tells what to replace.
    assert!(read("README.md").contains(IMAGE_PLACEHOLDER));
}

#[test]
fn daemonset_grants_exactly_the_documented_capabilities() {
    let ds = daemonset();
    let sc = &container(&ds)["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"], "drop"), ["ALL"]);
    let added: BTreeSet<String> = strings(&sc["capabilities"]["add"], "add")
        .iter()
        .map(|c| {
            assert!(
                !c.starts_with("CAP_"),
                "{c}: Kubernetes names drop the CAP_ prefix"
            );
            format!("CAP_{c}")
        })
        .collect();
    assert_eq!(added, readme_capabilities());
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["runAsUser"].as_i64(), Some(0));
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(sc["appArmorProfile"]["type"].as_str(), Some("Unconfined"));
    assert_eq!(sc["seLinuxOptions"]["type"].as_str(), Some("spc_t"));
    // Nothing at pod level overrides the container's settings.
    assert!(ds["spec"]["template"]["spec"]["securityContext"].is_badvalue());
}

#[test]
fn daemonset_volumes_are_mounted_and_exactly_what_mntrace_reads() {
    let ds = daemonset();
    let c = container(&ds);
    let volumes: BTreeMap<String, &Yaml> =
        list_of(&ds["spec"]["template"]["spec"]["volumes"], "volumes")
            .iter()
            .map(|v| (str_of(&v["name"], "volume name").to_owned(), v))
            .collect();
    let mounts = list_of(&c["volumeMounts"], "volumeMounts");
    let mut used = BTreeSet::new();
    let mut seen = BTreeMap::new();
    for m in mounts {
        let name = str_of(&m["name"], "volumeMount name");
        let volume = volumes
            .get(name)
            .unwrap_or_else(|| panic!("volumeMount {name} has no volume"));
        used.insert(name.to_owned());
        let path = str_of(&m["mountPath"], "mountPath");
        let host = &volume["hostPath"];
        // Each host directory appears at the same path in the container.
        assert_eq!(host["path"].as_str(), Some(path), "volume {name}");
        let read_only = m["readOnly"].as_bool().unwrap_or(false);
        seen.insert(
            path.to_owned(),
            (read_only, str_of(&host["type"], "hostPath.type").to_owned()),
        );
    }
    assert_eq!(
        used,
        volumes.keys().cloned().collect(),
        "every volume is mounted"
    );
    let want: BTreeMap<String, (bool, String)> = [
        ("/sys/kernel/btf", true, "Directory"),
        ("/sys/kernel/tracing", true, "Directory"),
        ("/var/lib/mntrace", false, "DirectoryOrCreate"),
    ]
    .into_iter()
    .map(|(p, ro, t)| (p.to_owned(), (ro, t.to_owned())))
    .collect();
    assert_eq!(seen, want);
    // mntrace writes where --dir says.
    let args = strings(&c["args"], "args");
    let dir = &args[args.iter().position(|a| a == "--dir").expect("--dir") + 1];
    assert!(!seen[dir.as_str()].0, "--dir {dir} is mounted read-write");
    // The paths mntrace reads are the ones mounted (or /proc, which
    // hostPID gives).
    assert_eq!(mntrace::preflight::BTF_PATH, "/sys/kernel/btf/vmlinux");
    assert_eq!(mntrace::preflight::TRACEFS, "/sys/kernel/tracing");
}

#[test]
fn daemonset_has_resource_requests_and_limits() {
    let ds = daemonset();
    let r = &container(&ds)["resources"];
    let mi = |y: &Yaml| -> u64 {
        let s = str_of(y, "memory");
        s.strip_suffix("Mi")
            .expect("memory in Mi")
            .parse()
            .expect("a number")
    };
    let request = mi(&r["requests"]["memory"]);
    let limit = mi(&r["limits"]["memory"]);
    assert!(request <= limit && limit >= 256);
    assert!(!r["requests"]["cpu"].is_badvalue());
    assert!(!r["limits"]["cpu"].is_badvalue());
    // The same memory bound as the systemd unit's MemoryMax=.
    assert_eq!(
        format!("{limit}M"),
        unit().get("Service", "MemoryMax"),
        "the DaemonSet and the unit give mntrace the same memory"
    );
}

#[test]
fn readme_documents_both_deployments() {
    let section = readme_section(&read("README.md"), "## Deployment");
    for needle in [
        "deploy/systemd/mntrace.service",
        "deploy/kubernetes/mntrace-daemonset.yaml",
        "systemd-analyze",
        "kubernetes-validate",
    ] {
        assert!(
            section.contains(needle),
            "README's Deployment section lacks {needle}"
        );
    }
}
