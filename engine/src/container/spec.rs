//! From a container's [`Config`] to the specs of the helpers that realise it:
//! `cairn-monitor` → clone(namespaces) → `cairn-mount` → `cairn-pivot` → PID 1.
//! Pure functions of the config and the container directory, so they are
//! tested without running anything.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::config::{Config, MountConfig};

/// Fixed descriptor numbers in the monitor's child (see `cairn-monitor --help`).
const ERROR_FD: &str = "3";
const CONSOLE_FD: &str = "4";

/// Where the helper binaries are: `$CAIRN_HELPER_DIR`, next to the running
/// `cairn`, `/usr/libexec/cairn`, `/usr/local/libexec/cairn`, then `$PATH`.
pub fn helper(name: &str) -> crate::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CAIRN_HELPER_DIR").filter(|d| !d.is_empty()) {
        dirs.push(d.into());
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
    {
        dirs.push(d);
    }
    dirs.push("/usr/libexec/cairn".into());
    dirs.push("/usr/local/libexec/cairn".into());
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            crate::Error::Invalid(format!(
                "helper program {name} not found next to cairn, in /usr/libexec/cairn or on $PATH: install cairn's helpers or set CAIRN_HELPER_DIR"
            ))
        })
}

/// Paths of the three helper programs.
#[derive(Debug, Clone)]
pub struct Helpers {
    /// cairn-mount.
    pub mount: PathBuf,
    /// cairn-pivot.
    pub pivot: PathBuf,
    /// cairn-monitor.
    pub monitor: PathBuf,
}

impl Helpers {
    /// Finds them.
    pub fn find() -> crate::Result<Helpers> {
        Ok(Helpers {
            mount: helper("cairn-mount")?,
            pivot: helper("cairn-pivot")?,
            monitor: helper("cairn-monitor")?,
        })
    }
}

/// How the monitor treats the terminal for this start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attach {
    /// Output copied to the caller's stdout/stderr too.
    pub output: bool,
    /// The caller's stdin goes to the container.
    pub stdin: bool,
}

/// cairn-mount's spec.
pub fn mount_spec(c: &Config, dir: &Path) -> Value {
    let ns = &c.namespaces;
    let mut mounts: Vec<Value> = c.mounts.iter().map(mount_json).collect();
    mounts.push(json!({
        "type": "bind", "source": dir.join("containerenv"), "target": "/run/.containerenv",
        "readonly": true, "recursive": false,
    }));
    if c.read_only && c.read_only_tmpfs {
        for t in ["/tmp", "/var/tmp"] {
            if !c.mounts.iter().any(|m| m.destination == t) {
                mounts.push(json!({"type": "tmpfs", "target": t, "mode": "1777",
                    "nosuid": true, "nodev": true}));
            }
        }
    }
    let mut etc = serde_json::Map::new();
    for (name, file) in [
        ("hostname", "hostname"),
        ("hosts", "hosts"),
        ("resolv.conf", "resolv.conf"),
    ] {
        if !c
            .mounts
            .iter()
            .any(|m| m.destination == format!("/etc/{name}"))
        {
            etc.insert(name.into(), json!({"path": dir.join(file)}));
        }
    }
    // In a user namespace overlayfs keeps its metadata in user.* xattrs.
    let overlay_options: Vec<&str> = if crate::userns::rootless() {
        vec!["userxattr"]
    } else {
        vec![]
    };
    let mut spec = json!({
        "root": {"overlay": {
            "lower": c.image.lower_dirs(),
            "upper": dir.join("upper"),
            "work": dir.join("work"),
            "options": overlay_options,
        }},
        "target": dir.join("rootfs"),
        "readonly": c.read_only,
        "proc": if ns.pid == "host" { "host" } else { "private" },
        "dev": if c.privileged { "host" } else { "minimal" },
        "sys": if c.privileged { "rw" } else { "ro" },
        "tmp": false,
        "run": if c.read_only && c.read_only_tmpfs { "tmpfs" } else { "auto" },
        "etc": etc,
        "mounts": mounts,
        "privileged": c.privileged,
    });
    if let Some((masked, readonly)) = super::security::path_lists(&c.mask, &c.unmask) {
        spec["masked_paths"] = json!(masked);
        spec["readonly_paths"] = json!(readonly);
    }
    spec
}

fn mount_json(m: &MountConfig) -> Value {
    match m.kind.as_str() {
        "tmpfs" => {
            let mut v = json!({
                "type": "tmpfs", "target": m.destination, "readonly": m.readonly,
                "nosuid": true, "nodev": true, "noexec": m.noexec,
            });
            if let Some(s) = &m.size {
                v["size"] = json!(s);
            }
            v["mode"] = json!(m.mode.clone().unwrap_or_else(|| "1777".into()));
            v
        }
        _ => json!({
            "type": "bind", "source": m.source, "target": m.destination,
            "readonly": m.readonly, "recursive": !m.norecursive,
            "propagation": if m.propagation.is_empty() { "rprivate" } else { m.propagation.as_str() },
            "nosuid": m.nosuid, "nodev": m.nodev, "noexec": m.noexec,
        }),
    }
}

/// cairn-pivot's spec.
pub fn pivot_spec(c: &Config, dir: &Path) -> Value {
    let mut spec = json!({
        "root": dir.join("rootfs"),
        "process": {
            "args": c.process.args,
            "user": if c.process.user.is_empty() { "0:0" } else { c.process.user.as_str() },
            "groups": c.group_add,
            "workdir": if c.process.workdir.is_empty() { "/" } else { c.process.workdir.as_str() },
            "env": c.process.env,
            "no_new_privs": c.no_new_privs,
            "privileged": c.privileged,
            "cap_add": c.cap_add,
            "cap_drop": c.cap_drop,
        },
    });
    if c.namespaces.uts != "host" {
        spec["hostname"] = json!(c.hostname);
    }
    if c.seccomp_filter {
        spec["process"]["seccomp"] = json!(dir.join(super::seccomp::BPF_FILE));
        spec["process"]["seccomp_flags"] = json!(c.seccomp_flags);
    }
    spec
}

/// The argv the monitor's child execs: cairn-mount → cairn-pivot → PID 1.
pub fn chain_args(h: &Helpers, c: &Config, dir: &Path) -> Vec<String> {
    let mut args = vec![
        h.mount.to_string_lossy().into_owned(),
        "--spec".into(),
        dir.join("mount.json").to_string_lossy().into_owned(),
        "--error-fd".into(),
        ERROR_FD.into(),
        "--".into(),
        h.pivot.to_string_lossy().into_owned(),
        "--spec".into(),
        dir.join("pivot.json").to_string_lossy().into_owned(),
        "--error-fd".into(),
        ERROR_FD.into(),
    ];
    if c.process.tty {
        args.extend(["--console-socket".into(), CONSOLE_FD.into()]);
    }
    if c.init {
        args.push("--init".into());
    }
    args
}

/// cairn-monitor's spec.
pub fn monitor_spec(h: &Helpers, c: &Config, dir: &Path, attach: Attach) -> Value {
    let ns = &c.namespaces;
    let mut namespaces = vec!["mnt"];
    if c.idmap.is_some() {
        namespaces.insert(0, "user");
    }
    for (mode, name) in [
        (&ns.uts, "uts"),
        (&ns.ipc, "ipc"),
        (&ns.pid, "pid"),
        (&ns.network, "net"),
        (&ns.cgroup, "cgroup"),
    ] {
        if mode != "host" {
            namespaces.push(name);
        }
    }
    let rlimits: Vec<Value> = c
        .ulimits
        .iter()
        .map(|u| json!({"type": u.name, "soft": u.soft, "hard": u.hard}))
        .collect();
    let mut spec = json!({
        "id": c.id,
        "args": chain_args(h, c, dir),
        // The helpers' own environment is the container's, never the
        // caller's: under --init, cairn-pivot stays as pid 1 with it, and
        // `exec` takes its defaults from pid 1's environ.
        "env": c.process.env,
        "namespaces": namespaces,
        "loopback": ns.network != "host",
        "rlimits": rlimits,
        "tty": c.process.tty,
        "stdin": attach.stdin,
        "attach": attach.output,
        "log": dir.join("ctr.log"),
        "exit_file": dir.join("exit.json"),
        "pid_file": dir.join("pid"),
    });
    if let Some(m) = &c.idmap {
        spec["uid_map"] = json!(m.uid);
        spec["gid_map"] = json!(m.gid);
    }
    spec
}

/// `/etc/hosts` for the container: the host's own lines for a host network,
/// localhost otherwise, then `--add-host` entries and the container's name.
pub fn hosts_file(c: &Config, host_hosts: &str) -> String {
    let mut out = String::new();
    if c.namespaces.network == "host" {
        out.push_str(host_hosts);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str(
            "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n",
        );
        out.push_str("::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n");
    }
    for h in &c.add_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    out.push_str(&format!("127.0.1.1\t{} {}\n", c.hostname, c.name));
    out
}

/// `/etc/resolv.conf`: the host's, with `--dns*` replacing its parts.
pub fn resolv_conf(c: &Config, host: &str) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let replaced = (key == "nameserver" && !c.dns.is_empty())
            || ((key == "search" || key == "domain") && !c.dns_search.is_empty())
            || (key == "options" && !c.dns_option.is_empty());
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !c.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", c.dns_search.join(" ")));
    }
    for ns in &c.dns {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !c.dns_option.is_empty() {
        out.push_str(&format!("options {}\n", c.dns_option.join(" ")));
    }
    out
}

/// `/run/.containerenv`, as podman writes it.
pub fn containerenv(c: &Config, rootless: bool) -> String {
    format!(
        "engine=\"cairn-{}\"\nname=\"{}\"\nid=\"{}\"\nimage=\"{}\"\nimageid=\"{}\"\nrootless={}\n",
        env!("CARGO_PKG_VERSION"),
        c.name,
        c.id,
        c.image.name,
        c.image.id,
        u8::from(rootless)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = Config {
            id: super::super::ContainerId::parse(&"a".repeat(64)).unwrap(),
            name: "box".into(),
            hostname: "aaaaaaaaaaaa".into(),
            ..Config::default()
        };
        c.image.lowers = vec!["/s/chains/b/diff".into(), "/s/chains/a/diff".into()];
        c.process.args = vec!["sh".into()];
        c
    }

    fn helpers() -> Helpers {
        Helpers {
            mount: "/h/cairn-mount".into(),
            pivot: "/h/cairn-pivot".into(),
            monitor: "/h/cairn-monitor".into(),
        }
    }

    #[test]
    fn default_namespaces_and_chain() {
        let c = config();
        let dir = Path::new("/s/containers/a");
        let m = monitor_spec(&helpers(), &c, dir, Attach::default());
        assert_eq!(m["namespaces"], json!(["mnt", "uts", "ipc", "pid"]));
        assert_eq!(m["loopback"], json!(false));
        let args: Vec<String> = serde_json::from_value(m["args"].clone()).unwrap();
        assert_eq!(args[0], "/h/cairn-mount");
        assert_eq!(args[5], "--");
        assert_eq!(args[6], "/h/cairn-pivot");
        assert!(!args.contains(&"--init".to_string()));
    }

    #[test]
    fn private_network_init_and_tty() {
        let mut c = config();
        c.namespaces.network = "none".into();
        c.namespaces.pid = "host".into();
        c.init = true;
        c.process.tty = true;
        let dir = Path::new("/s/containers/a");
        let m = monitor_spec(&helpers(), &c, dir, Attach::default());
        assert_eq!(m["namespaces"], json!(["mnt", "uts", "ipc", "net"]));
        assert_eq!(m["loopback"], json!(true));
        let args: Vec<String> = serde_json::from_value(m["args"].clone()).unwrap();
        assert!(args.ends_with(&["--console-socket".into(), "4".into(), "--init".into()]));
        assert_eq!(mount_spec(&c, dir)["proc"], json!("host"));
    }

    #[test]
    fn binds_and_etc_files() {
        let mut c = config();
        c.mounts.push(MountConfig {
            kind: "bind".into(),
            source: "/data".into(),
            destination: "/etc/hosts".into(),
            readonly: true,
            ..MountConfig::default()
        });
        let m = mount_spec(&c, Path::new("/d"));
        assert!(
            m["etc"].get("hosts").is_none(),
            "a user bind replaces the generated file"
        );
        assert_eq!(m["etc"]["hostname"]["path"], json!("/d/hostname"));
        assert_eq!(m["mounts"][0]["readonly"], json!(true));
        assert_eq!(m["mounts"][0]["propagation"], json!("rprivate"));
        assert_eq!(m["mounts"][1]["target"], json!("/run/.containerenv"));
    }

    #[test]
    fn resolv_and_hosts() {
        let mut c = config();
        c.dns = vec!["10.0.0.1".into()];
        let r = resolv_conf(&c, "nameserver 1.1.1.1\nsearch example\n");
        assert_eq!(r, "search example\nnameserver 10.0.0.1\n");
        c.add_hosts = vec!["db:10.0.0.2".into()];
        c.namespaces.network = "none".into();
        let h = hosts_file(&c, "ignored");
        assert!(h.contains("10.0.0.2\tdb\n"), "{h}");
        assert!(h.ends_with("127.0.1.1\taaaaaaaaaaaa box\n"), "{h}");
        assert!(!h.contains("ignored"));
    }
}
