//! From a container's [`Config`] to the specs of the helpers that realise it:
//! `cairn-monitor` → clone(namespaces) → `cairn-mount` → `cairn-pivot` → PID 1.
//! The specs are the runtime's own types ([`cairn_runtime::protocol`]), built
//! by pure functions of the config and the container directory, so they are
//! tested without running anything.

use std::path::{Path, PathBuf};

use cairn_runtime::protocol::{
    self, BindMount, DevMode, DevptsMount, Etc, EtcFile, InRoot, MonitorSpec, Mount, MountSpec,
    Namespace, Overlay, PivotSpec, ProcMode, ProcessSpec, Propagation, Rlimit, RlimitValue, Root,
    RunMode, SysMode, TmpfsMount,
};

use super::config::{Config, MountConfig, MountKind};
use crate::error::{bail, Error, Result};
use crate::network::setup::NetFiles;

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
pub(crate) struct Helpers {
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
#[derive(Debug, Clone, Default)]
pub struct Attach {
    /// Output copied to the caller's stdout/stderr too.
    pub output: bool,
    /// The caller's stdin goes to the container.
    pub stdin: bool,
    /// With `output`: the container's stdout goes nowhere (`-a` without
    /// STDOUT); it is still logged.
    pub no_stdout: bool,
    /// With `output`: the container's stderr goes nowhere (`-a` without
    /// STDERR); it is still logged.
    pub no_stderr: bool,
    /// With `stdin`: the key sequence that detaches (podman's
    /// `--detach-keys`, parsed); empty: none.
    pub detach_keys: Vec<u8>,
}

/// cairn-mount's spec. Fails on what the runtime would refuse: a container
/// path that is not absolute or climbs with `..`, an unknown propagation.
pub(crate) fn mount_spec(c: &Config, dir: &Path) -> Result<MountSpec> {
    let ns = &c.namespaces;
    let mut mounts = c
        .mounts
        .iter()
        .map(|m| mount(m, c.privileged))
        .collect::<Result<Vec<_>>>()?;
    mounts.extend(flag_mounts(c, dir)?);
    let mut containerenv =
        BindMount::new(dir.join("containerenv"), InRoot::new("/run/.containerenv")?);
    containerenv.readonly = true;
    containerenv.recursive = false;
    mounts.push(Mount::Bind(containerenv));
    if c.read_only && c.read_only_tmpfs {
        for t in ["/tmp", "/var/tmp"] {
            if !c.mounts.iter().any(|m| m.destination == t) {
                let mut tmp = TmpfsMount::new(InRoot::new(t)?);
                tmp.mode = Some("1777".into());
                mounts.push(Mount::Tmpfs(tmp));
            }
        }
    }
    // A user's bind on one of the files replaces the generated one.
    let etc_file = |name: &str| {
        let target = format!("/etc/{name}");
        (!c.mounts.iter().any(|m| m.destination == target)).then(|| EtcFile::Path(dir.join(name)))
    };
    let etc = Etc {
        hostname: etc_file("hostname"),
        hosts: etc_file("hosts").filter(|_| !c.no_hosts),
        resolv_conf: etc_file("resolv.conf").filter(|_| !c.no_resolv_conf),
    };
    // In a user namespace overlayfs keeps its metadata in user.* xattrs.
    let overlay_options = if crate::userns::rootless() {
        vec!["userxattr".to_owned()]
    } else {
        vec![]
    };
    let (masked_paths, readonly_paths) = match super::security::path_lists(&c.mask, &c.unmask) {
        Some((masked, readonly)) => (Some(in_root(&masked)?), Some(in_root(&readonly)?)),
        None => (None, None),
    };
    Ok(MountSpec {
        root: Some(Root::Overlay(Overlay {
            lower: c.image.lower_dirs(),
            upper: Some(dir.join("upper")),
            work: Some(dir.join("work")),
            options: overlay_options,
        })),
        target: Some(dir.join("rootfs")),
        readonly: c.read_only,
        proc: if ns.pid.is_host() {
            ProcMode::Host
        } else {
            ProcMode::Private
        },
        dev: if c.privileged {
            DevMode::Host
        } else {
            DevMode::Minimal
        },
        sys: if c.privileged {
            SysMode::Rw
        } else {
            SysMode::Ro
        },
        tmp: false,
        run: if c.read_only && c.read_only_tmpfs {
            RunMode::Tmpfs
        } else {
            RunMode::Auto
        },
        etc,
        mounts,
        privileged: c.privileged,
        masked_paths,
        readonly_paths,
        error_fd: None,
        sysctl: c.sysctls.clone(),
    })
}

/// The mounts other flags than `-v`/`--mount`/`--tmpfs` ask for:
/// `/dev/shm` (`--shm-size`, or the host's with `--ipc host`), `--device`
/// nodes, `--mount type=devpts` and `--tz`'s (or containers.conf's `tz`) `/etc/localtime`. A user's
/// mount on the same path wins.
fn flag_mounts(c: &Config, dir: &Path) -> Result<Vec<Mount>> {
    let given = |d: &str| c.mounts.iter().any(|m| m.destination == d);
    let mut mounts = Vec::new();
    if !given("/dev/shm") {
        if c.namespaces.ipc.is_host() {
            // podman: the host's /dev/shm with the host's IPC namespace.
            let mut b = BindMount::new("/dev/shm".into(), InRoot::new("/dev/shm")?);
            b.nosuid = true;
            b.nodev = true;
            b.noexec = true;
            mounts.push(Mount::Bind(b));
        } else if let Some(size) = c.shm_size {
            let mut shm = TmpfsMount::new(InRoot::new("/dev/shm")?);
            shm.size = Some(size.to_string());
            shm.mode = Some("1777".into());
            shm.noexec = true;
            mounts.push(Mount::Tmpfs(shm));
        }
    }
    for d in &c.devices {
        let mut b = BindMount::new(d.host.clone(), InRoot::new(&d.container)?);
        b.recursive = false;
        b.nosuid = true;
        // The host's own node: read-only, so the container's root cannot
        // chown or chmod it (it still opens for writing, as the device
        // cgroup allows).
        b.readonly = true;
        mounts.push(Mount::Bind(b));
    }
    for d in &c.devpts {
        mounts.push(Mount::Devpts(DevptsMount {
            target: InRoot::new(d)?,
        }));
    }
    if c.timezone.is_some() && !given("/etc/localtime") {
        let mut b = BindMount::new(dir.join("localtime"), InRoot::new("/etc/localtime")?);
        b.readonly = true;
        b.recursive = false;
        mounts.push(Mount::Bind(b));
    }
    Ok(mounts)
}

fn in_root(paths: &[String]) -> Result<Vec<InRoot>> {
    Ok(paths
        .iter()
        .map(|p| InRoot::new(p))
        .collect::<Result<_, _>>()?)
}

/// One `-v`, `--mount` or `--tmpfs` mount as cairn-mount takes it. A bind
/// of a host path in a `privileged` container is nosuid and nodev only when
/// its options ask (as podman's, which adds only its source's own flags):
/// such a container may make and open any device (its root is not nodev
/// either), and toolbox and distrobox bind the host's `/dev` into theirs.
fn mount(m: &MountConfig, privileged: bool) -> Result<Mount> {
    let target = InRoot::new(&m.destination)?;
    if m.kind == MountKind::Tmpfs {
        // nosuid and nodev unless the options asked for suid or dev (podman's
        // rule). Configs written while `--tmpfs` ignored both left the flags
        // false, so the options decide when they name neither.
        let asked = |o: &str| m.options.iter().any(|given| given == o);
        return Ok(Mount::Tmpfs(TmpfsMount {
            size: m.size.clone(),
            mode: Some(m.mode.clone().unwrap_or_else(|| "1777".into())),
            readonly: m.readonly,
            nosuid: m.nosuid || !asked("suid"),
            nodev: m.nodev || !asked("dev"),
            noexec: m.noexec,
            target,
        }));
    }
    let propagation = if m.propagation.is_empty() {
        Propagation::default()
    } else {
        m.propagation.parse().map_err(|_| {
            Error::Invalid(format!(
                "mount {}: propagation {:?} is not one of rprivate, private, rslave, slave, rshared, shared",
                m.destination,
                m.propagation
            ))
        })?
    };
    let asked = |o: &str| m.options.iter().any(|given| given == o);
    let host_bind = privileged && m.kind == MountKind::Bind;
    Ok(Mount::Bind(BindMount {
        source: m.source.clone(),
        target,
        readonly: m.readonly,
        recursive: !m.norecursive,
        propagation,
        nosuid: if host_bind { asked("nosuid") } else { m.nosuid },
        nodev: if host_bind { asked("nodev") } else { m.nodev },
        noexec: m.noexec,
    }))
}

/// cairn-pivot's spec.
pub(crate) fn pivot_spec(c: &Config, dir: &Path) -> PivotSpec {
    let or = |value: &str, default: &str| {
        Some(if value.is_empty() { default } else { value }.to_owned())
    };
    let (cap_add, cap_drop) =
        super::security::process_caps(c.default_capabilities.as_deref(), &c.cap_add, &c.cap_drop);
    PivotSpec {
        root: Some(dir.join("rootfs")),
        hostname: (!c.namespaces.uts.is_host()).then(|| c.hostname.clone()),
        process: ProcessSpec {
            args: c.process.args.clone(),
            user: or(&c.process.user, "0:0"),
            groups: c.group_add.clone(),
            workdir: or(&c.process.workdir, "/"),
            env: c.process.env.clone(),
            no_new_privs: c.no_new_privs,
            privileged: c.privileged,
            cap_add,
            cap_drop,
            seccomp: c.seccomp_filter.then(|| dir.join(super::seccomp::BPF_FILE)),
            seccomp_flags: if c.seccomp_filter {
                c.seccomp_flags.clone()
            } else {
                Vec::new()
            },
            umask: c
                .umask
                .as_deref()
                .and_then(|m| u32::from_str_radix(m, 8).ok()),
            ..ProcessSpec::default()
        },
        ..PivotSpec::default()
    }
}

/// The argv the monitor's child execs: cairn-mount → cairn-pivot → PID 1.
pub(crate) fn chain_args(h: &Helpers, c: &Config, dir: &Path) -> Vec<String> {
    let error_fd = protocol::ERROR_FD.to_string();
    let mut args = vec![
        h.mount.to_string_lossy().into_owned(),
        "--spec".into(),
        dir.join("mount.json").to_string_lossy().into_owned(),
        "--error-fd".into(),
        error_fd.clone(),
        "--".into(),
        h.pivot.to_string_lossy().into_owned(),
        "--spec".into(),
        dir.join("pivot.json").to_string_lossy().into_owned(),
        "--error-fd".into(),
        error_fd,
    ];
    if c.process.tty {
        args.extend(["--console-socket".into(), protocol::CONSOLE_FD.to_string()]);
    }
    if c.init {
        args.push("--init".into());
    }
    args
}

/// cairn-monitor's spec. Fails on a limit below -1.
pub(crate) fn monitor_spec(
    h: &Helpers,
    c: &Config,
    dir: &Path,
    attach: Attach,
) -> Result<MonitorSpec> {
    let ns = &c.namespaces;
    let mut namespaces = vec![Namespace::Mnt];
    if c.idmap.is_some() {
        namespaces.insert(0, Namespace::User);
    }
    for (mode, name) in [
        (ns.uts, Namespace::Uts),
        (ns.ipc, Namespace::Ipc),
        (ns.pid, Namespace::Pid),
    ] {
        if !mode.is_host() {
            namespaces.push(name);
        }
    }
    if ns.network.creates_namespace() {
        namespaces.push(Namespace::Net);
    }
    if !ns.cgroup.is_host() {
        namespaces.push(Namespace::Cgroup);
    }
    let rlimits = c
        .ulimits
        .iter()
        .map(|u| {
            Ok(Rlimit {
                kind: u.name.clone(),
                soft: limit(&u.name, u.soft)?,
                hard: limit(&u.name, u.hard)?,
            })
        })
        .collect::<Result<_>>()?;
    let (uid_map, gid_map) = c
        .idmap
        .as_ref()
        .map(|m| (m.uid.clone(), m.gid.clone()))
        .unwrap_or_default();
    Ok(MonitorSpec {
        id: c.id.to_string(),
        args: chain_args(h, c, dir),
        // The helpers' own environment is the container's, never the
        // caller's: under --init, cairn-pivot stays as pid 1 with it, and
        // `exec` takes its defaults from pid 1's environ.
        env: Some(c.process.env.clone()),
        namespaces,
        loopback: ns.network.creates_namespace(),
        rlimits,
        tty: c.process.tty,
        stdin: attach.stdin,
        attach: attach.output,
        log: Some(dir.join("ctr.log")),
        exit_file: dir.join("exit.json"),
        pid_file: Some(dir.join("pid")),
        uid_map,
        gid_map,
        // Set by start, which knows the store root.
        events: None,
        detach_keys: if attach.stdin && attach.output {
            attach.detach_keys
        } else {
            Vec::new()
        },
        // Set by start, which allocates the network (engine::network).
        network: None,
        join_net: None,
        // Set by start, which decides where (engine::container::cgroups).
        cgroup: None,
    })
}

/// A `--ulimit` value (-1 for none) as a resource limit.
fn limit(name: &str, value: i64) -> Result<RlimitValue> {
    match u64::try_from(value) {
        Ok(v) => Ok(RlimitValue(v)),
        Err(_) if value == -1 => Ok(RlimitValue::UNLIMITED),
        Err(_) => bail!(
            "rlimit {name}: a limit is a non-negative number, or -1 or \"unlimited\" for none"
        ),
    }
}

/// `/etc/hosts` for the container, as podman 4.3 writes it: the
/// `--add-host` entries, the host's own entries (one `IP<TAB>NAMES` line
/// each, comments dropped; localhost added when the host has none),
/// `host.containers.internal` naming the host's address (`host_ip`), then,
/// without a host network, `127.0.0.1<TAB>HOSTNAME NAME`.
pub(crate) fn hosts_file(
    c: &Config,
    host_hosts: &str,
    host_ip: Option<std::net::Ipv4Addr>,
    net: &NetFiles,
) -> String {
    let mut out = String::new();
    for h in &c.add_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for line in host_hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        let these: Vec<&str> = fields.collect();
        if these.is_empty() {
            continue;
        }
        out.push_str(&format!("{ip}\t{}\n", these.join(" ")));
        names.extend(these);
    }
    if !names.contains(&"localhost") {
        out.push_str(
            "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n",
        );
        out.push_str("::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n");
    }
    let host = net
        .host_gateway
        .clone()
        .or_else(|| host_ip.map(|ip| ip.to_string()));
    if let Some(ip) = host.filter(|_| !names.contains(&"host.containers.internal")) {
        out.push_str(&format!("{ip}\thost.containers.internal\n"));
    }
    if !c.namespaces.network.is_host() {
        // podman: the container's own addresses name it; without one
        // (pasta, lo only), loopback does.
        if net.ips.is_empty() {
            out.push_str(&format!("127.0.0.1\t{} {}\n", c.hostname, c.name));
        }
        for ip in &net.ips {
            out.push_str(&format!("{ip}\t{} {}\n", c.hostname, c.name));
        }
    }
    out
}

/// `/etc/resolv.conf`: the host's, with `--dns*` replacing its parts. A
/// container with a network namespace of its own gets the network's
/// nameservers (aardvark-dns, pasta's forwarder, slirp4netns's) and search
/// domains, or else the host's without the loopback ones (unreachable
/// from there; podman's fallback when none is left: Google's).
pub(crate) fn resolv_conf(c: &Config, host: &str, net: &NetFiles) -> String {
    if !c.namespaces.network.creates_namespace() {
        return resolv_conf_from(c, host);
    }
    let mut servers = Vec::new();
    let mut search: Vec<String> = net.search.clone();
    let mut rest = String::new();
    for line in host.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => servers.extend(fields.next().map(str::to_owned)),
            Some("search" | "domain") => search.extend(fields.map(str::to_owned)),
            _ => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    let servers = match &net.nameservers {
        Some(own) => own.clone(),
        None => {
            let reachable: Vec<String> = servers
                .into_iter()
                .filter(|s| {
                    s.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| !ip.is_loopback())
                })
                .collect();
            if reachable.is_empty() {
                vec!["8.8.8.8".into(), "8.8.4.4".into()]
            } else {
                reachable
            }
        }
    };
    let mut text = String::new();
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    text.push_str(&rest);
    resolv_conf_from(c, &text)
}

/// [`resolv_conf`] on the given text: `--dns*` replace its parts.
fn resolv_conf_from(c: &Config, host: &str) -> String {
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
pub(crate) fn containerenv(c: &Config, rootless: bool) -> String {
    format!(
        "engine=\"cairn-{}\"\nname=\"{}\"\nid=\"{}\"\nimage=\"{}\"\nimageid=\"{}\"\nrootless={}\n",
        env!("CARGO_PKG_VERSION"),
        c.name,
        c.id,
        c.image.name,
        c.image.id_hex(),
        u8::from(rootless)
    )
}

#[cfg(test)]
mod tests {
    use super::super::config::{NamespaceMode, Ulimit};
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
        let m = monitor_spec(&helpers(), &c, dir, Attach::default()).unwrap();
        assert_eq!(
            m.namespaces,
            [
                Namespace::Mnt,
                Namespace::Uts,
                Namespace::Ipc,
                Namespace::Pid
            ]
        );
        assert!(!m.loopback);
        assert_eq!(m.args[0], "/h/cairn-mount");
        assert_eq!(m.args[3..5], ["--error-fd", "3"]);
        assert_eq!(m.args[5], "--");
        assert_eq!(m.args[6], "/h/cairn-pivot");
        assert!(!m.args.contains(&"--init".to_string()));
    }

    #[test]
    fn private_network_init_and_tty() {
        let mut c = config();
        c.namespaces.network = crate::network::NetworkMode::None;
        c.namespaces.pid = NamespaceMode::Host;
        c.init = true;
        c.process.tty = true;
        let dir = Path::new("/s/containers/a");
        let m = monitor_spec(&helpers(), &c, dir, Attach::default()).unwrap();
        assert_eq!(
            m.namespaces,
            [
                Namespace::Mnt,
                Namespace::Uts,
                Namespace::Ipc,
                Namespace::Net
            ]
        );
        assert!(m.loopback);
        assert!(m
            .args
            .ends_with(&["--console-socket".into(), "4".into(), "--init".into()]));
        assert_eq!(mount_spec(&c, dir).unwrap().proc, ProcMode::Host);
    }

    #[test]
    fn binds_and_etc_files() {
        let mut c = config();
        c.mounts.push(MountConfig {
            kind: MountKind::Bind,
            source: "/data".into(),
            destination: "/etc/hosts".into(),
            readonly: true,
            ..MountConfig::default()
        });
        let m = mount_spec(&c, Path::new("/d")).unwrap();
        assert_eq!(m.etc.hosts, None, "a user bind replaces the generated file");
        assert_eq!(m.etc.hostname, Some(EtcFile::Path("/d/hostname".into())));
        let Mount::Bind(b) = &m.mounts[0] else {
            panic!("{:?}", m.mounts[0])
        };
        assert!(b.readonly && b.recursive);
        assert_eq!(b.propagation, Propagation::Rprivate);
        let Mount::Bind(env) = &m.mounts[1] else {
            panic!("{:?}", m.mounts[1])
        };
        assert_eq!(env.target.as_str(), "/run/.containerenv");
        assert!(env.readonly && !env.recursive);
    }

    /// A tmpfs is nosuid and nodev unless its options ask for suid or dev
    /// (podman's rule), including one of a config written while `--tmpfs`
    /// left both flags false.
    #[test]
    fn tmpfs_flags() {
        let tmpfs = |nosuid: bool, options: &[&str]| MountConfig {
            kind: MountKind::Tmpfs,
            destination: "/t".into(),
            nosuid,
            nodev: nosuid,
            options: options.iter().map(|o| o.to_string()).collect(),
            ..MountConfig::default()
        };
        for (m, suid) in [
            (tmpfs(false, &[]), false),
            (tmpfs(false, &["size=1m"]), false),
            (tmpfs(false, &["suid", "dev"]), true),
            (tmpfs(true, &["suid", "nosuid", "dev", "nodev"]), false),
        ] {
            let Mount::Tmpfs(t) = mount(&m, false).unwrap() else {
                panic!("{m:?} is not a tmpfs")
            };
            assert_eq!((t.nosuid, t.nodev), (!suid, !suid), "{:?}", m.options);
            assert_eq!(t.mode.as_deref(), Some("1777"));
        }
    }

    /// What the CLI builds is what the runtime reads: each spec survives
    /// its JSON (which the helpers parse refusing unknown fields), and the
    /// monitor's passes its validation.
    #[test]
    fn specs_read_back_by_the_runtime() {
        let mut c = config();
        c.read_only = true;
        c.read_only_tmpfs = true;
        c.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: -1,
        }];
        c.mask = vec!["/proc/secret".into()];
        let dir = Path::new("/s/containers/a");
        let mount = mount_spec(&c, dir).unwrap();
        let text = serde_json::to_string(&mount).unwrap();
        assert_eq!(serde_json::from_str::<MountSpec>(&text).unwrap(), mount);
        assert_eq!(mount.run, RunMode::Tmpfs);
        let masked = mount.masked_paths.as_deref().unwrap();
        assert!(masked.iter().any(|p| p.as_str() == "/proc/secret"));
        let pivot = pivot_spec(&c, dir);
        let text = serde_json::to_string(&pivot).unwrap();
        assert_eq!(serde_json::from_str::<PivotSpec>(&text).unwrap(), pivot);
        assert_eq!(pivot.process.user.as_deref(), Some("0:0"));
        let monitor = monitor_spec(&helpers(), &c, dir, Attach::default()).unwrap();
        let text = serde_json::to_string(&monitor).unwrap();
        assert!(text.contains(r#""soft":1024,"hard":-1"#), "{text}");
        let read: MonitorSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(read, monitor);
        read.validate().unwrap();
    }

    /// What the runtime would refuse fails here, before anything starts.
    #[test]
    fn refused_specs() {
        let mut c = config();
        c.mounts.push(MountConfig {
            kind: MountKind::Bind,
            source: "/data".into(),
            destination: "/a/../etc".into(),
            ..MountConfig::default()
        });
        assert!(mount_spec(&c, Path::new("/d")).is_err());
        c.mounts[0].destination = "/data".into();
        c.mounts[0].propagation = "unbindable".into();
        let e = mount_spec(&c, Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains("\"unbindable\""), "{e}");
        let mut c = config();
        c.ulimits = vec![Ulimit {
            name: "nproc".into(),
            soft: -2,
            hard: 1,
        }];
        assert!(monitor_spec(&helpers(), &c, Path::new("/d"), Attach::default()).is_err());
    }

    #[test]
    fn resolv_and_hosts() {
        let mut c = config();
        c.dns = vec!["10.0.0.1".into()];
        let r = resolv_conf(
            &c,
            "nameserver 1.1.1.1\nsearch example\n",
            &NetFiles::default(),
        );
        assert_eq!(r, "search example\nnameserver 10.0.0.1\n");
        c.add_hosts = vec!["db:10.0.0.2".into()];
        c.namespaces.network = crate::network::NetworkMode::None;
        // What podman 4.3 wrote here for `--network none --name nm1
        // --add-host db:10.1.1.1`, with this host's /etc/hosts.
        let host = "127.0.0.1 localhost\n# comment\n\n127.0.0.1 runsc\n127.0.0.1 vm\n";
        let ip = Some([192, 0, 2, 2].into());
        assert_eq!(
            hosts_file(&c, host, ip, &NetFiles::default()),
            "10.0.0.2\tdb\n127.0.0.1\tlocalhost\n127.0.0.1\trunsc\n127.0.0.1\tvm\n\
             192.0.2.2\thost.containers.internal\n127.0.0.1\taaaaaaaaaaaa box\n"
        );
        c.namespaces.network = crate::network::NetworkMode::Host;
        c.add_hosts.clear();
        assert_eq!(
            hosts_file(&c, host, ip, &NetFiles::default()),
            "127.0.0.1\tlocalhost\n127.0.0.1\trunsc\n127.0.0.1\tvm\n192.0.2.2\thost.containers.internal\n"
        );
        let h = hosts_file(&c, "", None, &NetFiles::default());
        assert!(
            h.starts_with("127.0.0.1\tlocalhost localhost.localdomain"),
            "{h}"
        );
        assert!(!h.contains("host.containers.internal"), "{h}");
    }

    #[test]
    fn hosts_and_resolv_conf_on_a_network_of_its_own() {
        use crate::network::NetworkMode;
        let mut c = config();
        c.namespaces.network = NetworkMode::Bridge;
        let bridge = NetFiles {
            ips: vec!["10.89.0.2".into()],
            host_gateway: Some("10.89.0.1".into()),
            nameservers: Some(vec!["10.89.0.1".into()]),
            search: vec!["dns.podman".into()],
        };
        let host = "127.0.0.1 localhost\n";
        assert_eq!(
            hosts_file(&c, host, Some([192, 0, 2, 2].into()), &bridge),
            "127.0.0.1\tlocalhost\n10.89.0.1\thost.containers.internal\n10.89.0.2\taaaaaaaaaaaa box\n"
        );
        let host_resolv = "nameserver 127.0.0.53\nsearch corp\noptions edns0\n";
        assert_eq!(
            resolv_conf(&c, host_resolv, &bridge),
            "search dns.podman corp\nnameserver 10.89.0.1\noptions edns0\n"
        );
        // No DNS of the network's own: the host's, loopback ones left out
        // (podman's fallback when none is left).
        assert_eq!(
            resolv_conf(&c, host_resolv, &NetFiles::default()),
            "search corp\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(
                &c,
                "nameserver 127.0.0.1\nnameserver 192.0.2.53\n",
                &NetFiles::default()
            ),
            "nameserver 192.0.2.53\n"
        );
        c.dns = vec!["1.1.1.1".into()];
        c.dns_search = vec!["x.example".into()];
        assert_eq!(
            resolv_conf(&c, host_resolv, &bridge),
            "options edns0\nsearch x.example\nnameserver 1.1.1.1\n"
        );
        // pasta: the host's gateway is the host; loopback names the container.
        c.namespaces.network = NetworkMode::Pasta(Vec::new());
        let pasta = NetFiles {
            host_gateway: Some("192.0.2.1".into()),
            nameservers: Some(vec!["169.254.1.1".into()]),
            ..NetFiles::default()
        };
        assert_eq!(
            hosts_file(&c, host, None, &pasta),
            "127.0.0.1\tlocalhost\n192.0.2.1\thost.containers.internal\n127.0.0.1\taaaaaaaaaaaa box\n"
        );
    }
}
