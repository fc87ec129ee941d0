//! What `inspect` and `ps` show of a container, in podman 4's shapes and
//! field names, so Go templates written for podman work unchanged.

use serde_json::{json, Map, Value};

use crate::output;
use cairn_engine::container::config::{Config, MountConfig, MountKind};
use cairn_engine::container::{security, Container, Live, Status};
use cairn_engine::network::NetworkMode;
use nix::sys::signal::Signal;

/// Podman's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Capabilities a non-privileged container keeps (podman's defaults).
const DEFAULT_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

fn cap_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Capability names by number (linux/capability.h), for the bounding set a
/// privileged container inherits.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the capabilities in a `CapBnd:`-style hex mask, sorted.
fn cap_names(mask: u64) -> Vec<String> {
    let mut v: Vec<String> = CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    v.sort();
    v
}

/// Our own bounding set: what a privileged container gets (cairn-pivot keeps
/// every capability it has; here root may lack some, e.g. CAP_SYS_RESOURCE).
fn own_bounding_caps() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or((1 << CAP_NAMES.len()) - 1);
    cap_names(mask)
}

/// The highest capability number the kernel knows.
fn last_cap() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_NAMES.len() - 1)
        .min(CAP_NAMES.len() - 1)
}

/// The cgroup a running container's PID 1 is in (the cgroup2 entry of
/// /proc/PID/cgroup, else the first), as podman's `.State.CgroupPath`.
fn cgroup_path(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let path = |l: &str| l.splitn(3, ':').nth(2).unwrap_or_default().to_owned();
    text.lines()
        .find(|l| l.starts_with("0::"))
        .or_else(|| text.lines().next())
        .map(path)
        .unwrap_or_default()
}

/// The capability bounding set of PID 1 (names, sorted), as podman reports
/// it.
pub fn effective_caps(c: &Container) -> Vec<String> {
    let cfg = &c.config;
    if cfg.privileged {
        return own_bounding_caps();
    }
    // containers.conf's, as recorded at create (podman's 11 before that).
    let mut caps: Vec<String> = match &cfg.default_capabilities {
        Some(d) => d.iter().map(|s| cap_name(s)).collect(),
        None => DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let drops: Vec<String> = cfg.cap_drop.iter().map(|s| cap_name(s)).collect();
    if drops.iter().any(|d| d == "CAP_ALL") {
        caps.clear();
    }
    caps.retain(|c| !drops.contains(c));
    for a in &cfg.cap_add {
        let a = cap_name(a);
        if a != "CAP_ALL" && !caps.contains(&a) {
            caps.push(a);
        }
    }
    caps.sort();
    caps
}

/// Whether PID 1 runs as uid 0 (`--user` empty, `root`, `0`, with any group).
fn runs_as_root(user: &str) -> bool {
    let uid = user.split_once(':').map_or(user, |(u, _)| u);
    matches!(uid, "" | "root" | "0")
}

/// The stop signal's number (SIGTERM's for a config without one).
fn signal_number(sig: Option<Signal>) -> i32 {
    sig.map_or(15, |s| s as i32)
}

/// A mount's options as podman's spec has them (its `ProcessOptions`): the
/// options given, then rw/ro, the propagation, nosuid and nodev for a tmpfs,
/// and rbind/bind for a bind, each unless given. podman also adds `tmpcopyup`
/// to a tmpfs; cairn does not copy the image's files up, so it does not
/// claim it. podman adds nosuid/nodev/noexec of a bind source's file system
/// too; those are not looked up here. Once the container has started,
/// podman's spec no longer has z/Z (the relabel happened, or SELinux is off
/// and they did nothing), so neither does this (`started`).
fn spec_options(m: &MountConfig, started: bool) -> Vec<String> {
    let tmpfs = m.kind == MountKind::Tmpfs;
    let mut opts: Vec<String> = Vec::new();
    if tmpfs {
        // `--mount type=tmpfs,tmpfs-size=…` keeps these out of `options`.
        for (key, value) in [("size", &m.size), ("mode", &m.mode)] {
            if let Some(v) = value {
                if !m.options.iter().any(|o| o.starts_with(&format!("{key}="))) {
                    opts.push(format!("{key}={v}"));
                }
            }
        }
    }
    opts.extend(
        m.options
            .iter()
            .filter(|o| !(started && matches!(o.as_str(), "z" | "Z")))
            .map(|o| match o.as_str() {
                "readonly" => "ro".to_owned(),
                _ => o.clone(),
            }),
    );
    let has = |opts: &[String], any: &[&str]| opts.iter().any(|o| any.contains(&o.as_str()));
    if !has(&opts, &["ro", "rw"]) {
        opts.push(if m.readonly { "ro" } else { "rw" }.into());
    }
    if !has(&opts, PROPAGATIONS) {
        opts.push(if m.propagation.is_empty() {
            "rprivate".into()
        } else {
            m.propagation.clone()
        });
    }
    if tmpfs {
        if !has(&opts, &["suid", "nosuid"]) {
            opts.push("nosuid".into());
        }
        if !has(&opts, &["dev", "nodev"]) {
            opts.push("nodev".into());
        }
    } else if !has(&opts, &["bind", "rbind"]) {
        opts.push(if m.norecursive { "bind" } else { "rbind" }.into());
    }
    opts
}

const PROPAGATIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// `.Mounts`: binds and volumes (podman leaves tmpfs mounts to
/// `.HostConfig.Tmpfs`), options split the way podman's
/// `parseMountOptionsForInspect` does: ro/rw into RW, the propagation into
/// Propagation, z/Z into Mode, the rest into Options.
fn mounts_json(c: &Container) -> Vec<Value> {
    let started = c.state.starts > 0;
    c.config
        .mounts
        .iter()
        .filter(|m| m.kind != MountKind::Tmpfs)
        .map(|m| {
            let mut rw = true;
            let mut propagation = "";
            let mut mode = "";
            let mut options = Vec::new();
            let spec = spec_options(m, started);
            for o in &spec {
                match o.as_str() {
                    "ro" => rw = false,
                    "rw" => {}
                    "z" | "Z" => mode = o,
                    p if PROPAGATIONS.contains(&p) => propagation = p,
                    _ => options.push(o.clone()),
                }
            }
            let mut v = json!({
                "Type": if m.kind == MountKind::Volume { "volume" } else { "bind" },
                "Source": m.source,
                "Destination": m.destination,
                "Driver": if m.kind == MountKind::Volume { "local" } else { "" },
                "Mode": mode,
                "Options": options,
                "RW": rw,
                "Propagation": propagation,
            });
            if let Some(name) = &m.name {
                v["Name"] = json!(name);
            }
            v
        })
        .collect()
}

fn labels(c: &Container) -> Value {
    if c.config.labels.is_empty() {
        Value::Null
    } else {
        json!(c.config.labels)
    }
}

/// `inspect` of a container: podman's shape, key for key in podman's order
/// (the JSON keeps insertion order).
pub fn inspect_json(c: &Container, live: &Live) -> Value {
    let cfg = &c.config;
    let dir = &c.dir;
    let running = live.status.is_alive();
    let (path, args) = path_and_args(cfg);
    let caps = effective_caps(c);
    json!({
        "Id": cfg.id,
        "Created": cfg.created,
        "Path": path,
        "Args": args,
        "State": state_json(c, live, running),
        "Image": cfg.image.id_hex(),
        "ImageDigest": format!("sha256:{}", cfg.image.manifest.as_ref().map_or("", cairn_store::Digest::hex)),
        "ImageName": cfg.image.name,
        "Rootfs": "",
        "Pod": "",
        // podman: empty when the image's own file stays (--dns none, --no-hosts).
        "ResolvConfPath": if cfg.no_resolv_conf { std::path::PathBuf::new() } else { dir.join("resolv.conf") },
        "HostnamePath": dir.join("hostname"),
        "HostsPath": if cfg.no_hosts { std::path::PathBuf::new() } else { dir.join("hosts") },
        "StaticDir": dir,
        "OCIConfigPath": dir.join("monitor.json"),
        "OCIRuntime": "cairn",
        "ConmonPidFile": dir.join("monitor.pid"),
        "PidFile": dir.join("pid"),
        "Name": cfg.name,
        "RestartCount": c.state.starts.saturating_sub(1),
        "Driver": "overlay",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        // A non-root PID 1 keeps no capabilities (the kernel clears them on
        // setuid): podman shows none.
        "EffectiveCaps": if runs_as_root(&cfg.process.user) { json!(caps) } else { Value::Null },
        "BoundingCaps": caps,
        "ExecIDs": [],
        "GraphDriver": graph_driver_json(c, running),
        "Mounts": mounts_json(c),
        "Dependencies": [],
        "NetworkSettings": network_settings_json(c, running),
        "Namespace": "",
        "IsInfra": false,
        "IsService": false,
        "Config": config_json(cfg),
        "HostConfig": host_config_json(c, &caps),
    })
}

/// podman's `Path` and `Args`: Args are the arguments after Path, or Path
/// itself when there are none.
fn path_and_args(cfg: &Config) -> (String, Vec<String>) {
    match cfg.process.args.split_first() {
        Some((p, [])) => (p.clone(), vec![p.clone()]),
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (String::new(), vec![]),
    }
}

/// `.State`: the status, PID 1 and monitor while running, the last exit.
fn state_json(c: &Container, live: &Live, running: bool) -> Value {
    json!({
        "OciVersion": "1.0.2-dev",
        "Status": live.status.as_str(),
        "Running": running,
        "Paused": live.status == Status::Paused,
        "Restarting": false,
        "OOMKilled": live.status == Status::Exited && c.oom_killed(),
        "Dead": false,
        "Pid": if running { c.state.pid } else { 0 },
        // podman's JSON omits ConmonPid, CgroupPath and HostConfig.Init
        // when zero, but its templates see them (struct fields): cairn's
        // templates run over this JSON, so they are always here.
        "ConmonPid": if running { c.state.monitor_pid } else { 0 },
        "CgroupPath": match (&c.state.cgroup, running) {
            (_, false) => String::new(),
            (Some(cg), true) => cg.clone(),
            (None, true) => cgroup_path(c.state.pid),
        },
        "ExitCode": live.exit_code,
        "Error": live.error.clone().unwrap_or_default(),
        "StartedAt": c.state.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
        "FinishedAt": live.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
        "Health": {"Status": "", "FailingStreak": 0, "Log": null},
        "CheckpointedAt": ZERO_TIME,
        "RestoredAt": ZERO_TIME,
    })
}

/// `.GraphDriver`: the overlay's directories.
fn graph_driver_json(c: &Container, running: bool) -> Value {
    let dir = &c.dir;
    let mut data = json!({
        "LowerDir": c.config.image.lowerdir_option(),
        "UpperDir": dir.join("upper"),
        "WorkDir": dir.join("work"),
    });
    // podman shows MergedDir while the root is mounted on the host. cairn's
    // overlay is mounted in the container's own mount namespace only; the
    // way into it from the host is its PID 1's root.
    if running && c.state.pid > 0 {
        data["MergedDir"] = json!(format!("/proc/{}/root", c.state.pid));
    }
    json!({"Name": "overlay", "Data": data})
}

/// `.NetworkSettings`: the published ports, and for bridge networks each
/// network with the container's address on it (from netavark's status
/// while it runs); the top-level address fields are those of the only
/// network, as podman fills them.
fn network_settings_json(c: &Container, running: bool) -> Value {
    let cfg = &c.config;
    let status = if running {
        cairn_engine::network::setup::status(c)
    } else {
        None
    };
    let mut networks = serde_json::Map::new();
    let mut first = None;
    for (name, att) in cfg
        .networks
        .iter()
        .filter(|_| cfg.namespaces.network == NetworkMode::Bridge)
    {
        let iface = status.as_ref().and_then(|s| {
            s.get(name)?
                .get("interfaces")?
                .as_object()?
                .values()
                .next()
                .cloned()
        });
        let mac = iface
            .as_ref()
            .and_then(|i| i["mac_address"].as_str())
            .unwrap_or("")
            .to_owned();
        let subnet = iface.as_ref().and_then(|i| i["subnets"].get(0).cloned());
        let ipnet = subnet
            .as_ref()
            .and_then(|s| s["ipnet"].as_str())
            .unwrap_or("");
        let (ip, len) = ipnet.split_once('/').unwrap_or(("", "0"));
        let gateway = subnet
            .as_ref()
            .and_then(|s| s["gateway"].as_str())
            .unwrap_or("")
            .to_owned();
        let mut aliases: Vec<String> = att.aliases.clone();
        aliases.push(cfg.id.short().to_owned());
        let entry = json!({
            "EndpointID": "", "Gateway": gateway, "IPAddress": ip,
            "IPPrefixLen": len.parse::<u32>().unwrap_or(0),
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": mac, "NetworkID": name, "DriverOpts": null, "IPAMConfig": null,
            "Links": null, "Aliases": aliases,
        });
        first.get_or_insert_with(|| entry.clone());
        networks.insert(name.clone(), entry);
    }
    let only = first.filter(|_| networks.len() == 1);
    let field = |k: &str| only.as_ref().map_or(json!(""), |o| o[k].clone());
    let mut v = json!({
        "EndpointID": "", "Gateway": field("Gateway"), "IPAddress": field("IPAddress"),
        "IPPrefixLen": only.as_ref().map_or(json!(0), |o| o["IPPrefixLen"].clone()),
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "MacAddress": field("MacAddress"), "Bridge": "", "SandboxID": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": port_bindings(&cfg.ports),
        // The namespace's file (bind-mounted for its network tools), as
        // podman's /run/netns/netns-*; else PID 1's.
        "SandboxKey": match c.dir.join(cairn_engine::network::setup::NETNS_FILE) {
            f if running && f.exists() => f.display().to_string(),
            _ if running && cfg.namespaces.network.creates_namespace() => {
                format!("/proc/{}/ns/net", c.state.pid)
            }
            _ => String::new(),
        },
    });
    if !networks.is_empty() {
        v["Networks"] = Value::Object(networks);
    }
    v
}

/// podman's port map: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
fn port_bindings(ports: &[cairn_engine::network::PortForward]) -> Value {
    let mut m = serde_json::Map::new();
    for (ctr, ip, host) in cairn_engine::network::ports::expanded(ports) {
        let list = m.entry(ctr).or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"HostIp": ip, "HostPort": host.to_string()}));
        }
    }
    Value::Object(m)
}

/// `.Config`: the process, its image and the stop settings.
fn config_json(cfg: &Config) -> Value {
    let mut config = json!({
        "Hostname": cfg.hostname,
        "Domainname": "",
        "User": cfg.process.user,
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": cfg.process.tty,
        "OpenStdin": cfg.process.interactive,
        "StdinOnce": false,
        "Env": cfg.process.env,
        "Cmd": if cfg.process.cmd.is_empty() { Value::Null } else { json!(cfg.process.cmd) },
        "Image": cfg.image.name,
        "Volumes": null,
        "WorkingDir": cfg.process.workdir,
        "Entrypoint": cfg.process.entrypoint.join(" "),
        "OnBuild": null,
        // A Go nil map prints as `map[]` and indexes to "" in podman's
        // templates; JSON null would print `<no value>` and make `index`
        // fail here, so no labels are an empty object.
        "Labels": cfg.labels,
        "Annotations": cfg.annotations,
        "StopSignal": signal_number(cfg.stop_signal),
        "CreateCommand": cfg.create_command,
        "Umask": cfg.umask.as_deref().unwrap_or("0022"),
        "Timeout": 0,
        "StopTimeout": cfg.stop_timeout,
        "Passwd": true,
        "sdNotifyMode": "container",
        "HealthcheckOnFailureAction": if cfg.health_on_failure.is_empty() { "none" } else { &cfg.health_on_failure },
    });
    let o = config.as_object_mut().expect("Config is an object");
    if let Some(h) = &cfg.healthcheck {
        // Go's omitempty: zero durations are left out.
        let mut hc = serde_json::Map::new();
        hc.insert("Test".into(), json!(h.test));
        for (k, v) in [
            ("StartPeriod", h.start_period),
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("Retries", h.retries),
        ] {
            if v != 0 {
                hc.insert(k.into(), json!(v));
            }
        }
        o.insert("Healthcheck".into(), Value::Object(hc));
    }
    if let Some(tz) = &cfg.timezone {
        o.insert("Timezone".into(), json!(tz.name));
    }
    config
}

/// `.HostConfig`: mounts, namespaces, capabilities, DNS and limits as
/// create recorded them, then the resource limits cairn does not set.
fn host_config_json(c: &Container, caps: &[String]) -> Value {
    let cfg = &c.config;
    let started = c.state.starts > 0;
    let ns = &cfg.namespaces;
    let (cap_add, cap_drop) = added_and_dropped_caps(cfg, caps);
    let mut host = json!({
        "Binds": binds(cfg, started),
        "CgroupManager": "cgroupfs",
        "CgroupMode": if ns.cgroup.is_host() { "host" } else { "private" },
        "ContainerIDFile": "",
        "LogConfig": {"Type": "k8s-file", "Config": null, "Path": c.dir.join("ctr.log"), "Tag": cfg.log_opts.get("tag").map_or("", String::as_str), "Size": "0B"},
        "NetworkMode": network_mode(&ns.network),
        "PortBindings": port_bindings(&cfg.ports),
        "RestartPolicy": {"Name": cfg.restart_policy, "MaximumRetryCount": 0},
        "AutoRemove": cfg.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": null,
        "CapAdd": cap_add,
        "CapDrop": cap_drop,
        "Dns": cfg.dns,
        "DnsOptions": cfg.dns_option,
        "DnsSearch": cfg.dns_search,
        "ExtraHosts": cfg.add_hosts,
        "GroupAdd": cfg.group_add,
        "IpcMode": if ns.ipc.is_host() { "host" } else { "shareable" },
        "Cgroup": "",
        "Cgroups": if cfg.cgroups == "disabled" { "disabled" } else { "default" },
        "Links": null,
        "OomScoreAdj": 0,
        "PidMode": if ns.pid.is_host() { "host" } else { "private" },
        "Privileged": cfg.privileged,
        "PublishAllPorts": false,
        "ReadonlyRootfs": cfg.read_only,
        "SecurityOpt": security::inspect_list(&cfg.security_opt, cfg.no_new_privs),
        "Tmpfs": tmpfs_options(cfg, started),
        "UTSMode": if ns.uts.is_host() { "host" } else { "private" },
        "UsernsMode": cfg.userns,
        "ShmSize": cfg.shm_size.unwrap_or(65_536_000),
        "Runtime": "oci",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "PidsLimit": cfg.pids_limit.unwrap_or(0),
        "Ulimits": ulimits_json(cfg),
        "Init": cfg.init,
    });
    let o = host.as_object_mut().expect("HostConfig is an object");
    add_unset_resource_limits(o);
    resource_limits(o, cfg);
    o.insert(
        "Devices".into(),
        json!(cfg
            .devices
            .iter()
            .map(|d| json!({"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": ""}))
            .collect::<Vec<_>>()),
    );
    if !cfg.sysctls.is_empty() {
        o.insert("Sysctls".into(), json!(cfg.sysctls));
    }
    host
}

/// `.HostConfig.CapAdd` and `CapDrop`. A privileged container gets every
/// capability we have, whatever --cap-add/--cap-drop say (as with podman),
/// and podman then reports the ones it lacks (not in `caps`) as dropped.
fn added_and_dropped_caps(cfg: &Config, caps: &[String]) -> (Vec<String>, Vec<String>) {
    if cfg.privileged {
        let all = cap_names((1u64 << (last_cap() + 1)) - 1);
        (
            vec![],
            all.into_iter().filter(|n| !caps.contains(n)).collect(),
        )
    } else {
        (
            cfg.cap_add.iter().map(|c| cap_name(c)).collect(),
            cfg.cap_drop.iter().map(|c| cap_name(c)).collect(),
        )
    }
}

/// podman's `NetworkMode`: `bridge` for bridge networks (and cairn's
/// private namespace with lo, as before), else the mode's own name.
fn network_mode(mode: &NetworkMode) -> String {
    match mode {
        NetworkMode::Private | NetworkMode::Bridge => "bridge".into(),
        NetworkMode::Pasta(_) => "pasta".into(),
        NetworkMode::Slirp4netns(_) => "slirp4netns".into(),
        other => other.as_string(),
    }
}

/// `.HostConfig.Binds`: each bind and volume as `source:destination:options`,
/// a volume by its name.
fn binds(cfg: &Config, started: bool) -> Vec<String> {
    cfg.mounts
        .iter()
        .filter(|m| m.kind != MountKind::Tmpfs)
        .map(|m| {
            let src = m
                .name
                .clone()
                .unwrap_or_else(|| m.source.display().to_string());
            format!(
                "{src}:{}:{}",
                m.destination,
                spec_options(m, started).join(",")
            )
        })
        .collect()
}

/// `.HostConfig.Tmpfs`: each tmpfs' destination to its options.
fn tmpfs_options(cfg: &Config, started: bool) -> Map<String, Value> {
    cfg.mounts
        .iter()
        .filter(|m| m.kind == MountKind::Tmpfs)
        .map(|m| {
            (
                m.destination.clone(),
                json!(spec_options(m, started).join(",")),
            )
        })
        .collect()
}

/// `.HostConfig.Ulimits`: `--ulimit`s by their `RLIMIT_` names.
fn ulimits_json(cfg: &Config) -> Vec<Value> {
    cfg.ulimits
        .iter()
        .map(|u| json!({"Name": format!("RLIMIT_{}", u.name.to_ascii_uppercase()), "Soft": u.soft, "Hard": u.hard}))
        .collect()
}

/// The limits the container was given, over the zeros of
/// [`add_unset_resource_limits`], as podman shows them.
fn resource_limits(o: &mut Map<String, Value>, cfg: &Config) {
    let r = &cfg.resources;
    let mut set = |k: &str, v: Value| {
        o.insert(k.to_owned(), v);
    };
    if let Some(m) = r.memory {
        set("Memory", json!(m));
    }
    if let Some(s) = r.memory_swap {
        set("MemorySwap", json!(s));
    }
    if let Some(m) = r.memory_reservation {
        set("MemoryReservation", json!(m));
    }
    if let Some(s) = r.cpu_shares {
        set("CpuShares", json!(s));
    }
    if let Some(q) = r.cpu_quota {
        set("CpuQuota", json!(q));
        if let (Some(p), true) = (r.cpu_period, q > 0) {
            // podman: --cpus shows as NanoCpus too.
            set("NanoCpus", json!(q as u64 * 1_000_000_000 / p.max(1)));
        }
    }
    if let Some(p) = r.cpu_period {
        set("CpuPeriod", json!(p));
    }
    if let Some(c) = &r.cpuset_cpus {
        set("CpusetCpus", json!(c));
    }
    if let Some(m) = &r.cpuset_mems {
        set("CpusetMems", json!(m));
    }
    if let Some(w) = r.blkio_weight {
        set("BlkioWeight", json!(w));
    }
    if let Some(p) = &cfg.cgroup_parent {
        set("CgroupParent", json!(p));
    }
}

/// Resource limits cairn does not set, with the zero values podman shows
/// for a container without limits, so templates reading them work.
fn add_unset_resource_limits(host: &mut Map<String, Value>) {
    for (key, zero) in [
        ("BlkioDeviceReadBps", Value::Null),
        ("BlkioDeviceReadIOps", Value::Null),
        ("BlkioDeviceWriteBps", Value::Null),
        ("BlkioDeviceWriteIOps", Value::Null),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", Value::Null),
        ("CgroupConf", Value::Null),
        ("CgroupParent", json!("")),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("CpuShares", json!(0)),
        ("CpusetCpus", json!("")),
        ("CpusetMems", json!("")),
        ("Devices", json!([])),
        ("DiskQuota", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("KernelMemory", json!(0)),
        ("Memory", json!(0)),
        ("MemoryReservation", json!(0)),
        ("MemorySwap", json!(0)),
        ("MemorySwappiness", json!(0)),
        ("NanoCpus", json!(0)),
        ("OomKillDisable", json!(false)),
    ] {
        host.insert(key.to_owned(), zero);
    }
}

/// Go's zero `time.Time` as Unix seconds: what podman's ps shows for a
/// time that never happened (StartedAt of a created container, ExitedAt of
/// a running one).
const ZERO_UNIX: i64 = -62_135_596_800;

fn unix(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(ZERO_UNIX, |t| t.timestamp())
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`
/// (the input as it is when it is not RFC 3339).
fn go_time(rfc3339: &str) -> String {
    parse_go_time(rfc3339).unwrap_or_else(|| rfc3339.to_owned())
}

/// Go's `time.Time.String()` of an RFC 3339 time, in UTC; None if unparsable.
pub fn parse_go_time(rfc3339: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()?
        .with_timezone(&chrono::Utc);
    let frac = t.format("%.9f").to_string();
    let frac = frac.trim_end_matches('0');
    let frac = if frac == "." { "" } else { frac };
    Some(format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S")))
}

/// podman's `ps` status column: `Up 5 seconds ago`, `Exited (0) 2 minutes ago`, `Created`.
pub fn status_text(c: &Container, live: &Live) -> String {
    match live.status {
        Status::Running | Status::Stopping => {
            format!("Up {}", output::ago(c.state.started_at.as_deref()))
        }
        Status::Exited => match &live.finished_at {
            Some(t) => format!("Exited ({}) {}", live.exit_code, output::ago(Some(t))),
            None => format!("Exited ({})", live.exit_code),
        },
        Status::Created => "Created".into(),
        Status::Paused => "Paused".into(),
    }
}

/// `ps --format json`: podman's ListContainer.
pub fn ps_json(c: &Container, live: &Live) -> Value {
    let cfg = &c.config;
    let running = live.status.is_alive();
    json!({
        "AutoRemove": cfg.auto_remove,
        // podman's ps shows the command without the entrypoint.
        "Command": cfg.process.cmd,
        "CreatedAt": output::ago(Some(&cfg.created)),
        "Exited": live.status == Status::Exited,
        "ExitedAt": unix(live.finished_at.as_deref()),
        "ExitCode": live.exit_code,
        "Id": cfg.id,
        "Image": cfg.image.name,
        "ImageID": cfg.image.id_hex(),
        "IsInfra": false,
        "Labels": labels(c),
        "Mounts": cfg.mounts.iter().map(|m| m.destination.clone()).collect::<Vec<_>>(),
        "Names": [cfg.name],
        "Namespaces": {},
        "Networks": network_names(cfg),
        "Pid": if running { c.state.pid } else { 0 },
        "Pod": "",
        "PodName": "",
        "Ports": if cfg.ports.is_empty() { Value::Null } else { json!(cfg.ports) },
        "Size": null,
        "StartedAt": unix(c.state.started_at.as_deref()),
        "State": live.status.as_str(),
        "Status": status_text(c, live),
        "Created": unix(Some(&cfg.created)),
    })
}

/// The bridge networks a container is on, by name (podman's ps `Networks`).
fn network_names(cfg: &Config) -> Vec<String> {
    if cfg.namespaces.network == NetworkMode::Bridge {
        cfg.networks.keys().cloned().collect()
    } else {
        Vec::new()
    }
}

/// `ps --format '{{…}}'`: the fields and methods podman's psReporter has.
pub fn ps_template(c: &Container, live: &Live, no_trunc: bool) -> Value {
    let cfg = &c.config;
    let mut v = ps_json(c, live);
    let command = cfg.process.cmd.join(" ");
    let command = if !no_trunc && command.chars().count() > 17 {
        format!("{}...", command.chars().take(17).collect::<String>())
    } else {
        command
    };
    let short = |s: &str| {
        if no_trunc {
            s.to_owned()
        } else {
            s.chars().take(12).collect()
        }
    };
    let created_human = output::ago(Some(&cfg.created));
    let o = v.as_object_mut().expect("ps_json is an object");
    o.insert("ID".into(), json!(short(&cfg.id)));
    o.insert("ImageID".into(), json!(short(cfg.image.id_hex())));
    o.insert("Command".into(), json!(command));
    o.insert("CreatedAt".into(), json!(go_time(&cfg.created)));
    o.insert("CreatedHuman".into(), json!(created_human));
    o.insert("RunningFor".into(), json!(created_human));
    // podman 4's psReporter: State() is the same text as Status() (the
    // raw state is only in JSON), Created a time.Time.
    let status = status_text(c, live);
    o.insert("State".into(), json!(status));
    o.insert("Status".into(), json!(status));
    o.insert("Created".into(), json!(go_time(&cfg.created)));
    o.insert("Names".into(), json!(cfg.name));
    o.insert("Labels".into(), json!(cfg.labels));
    o.insert(
        "Ports".into(),
        json!(cairn_engine::network::ports::ps_ports(&cfg.ports)),
    );
    o.insert("Networks".into(), json!(network_names(cfg).join(",")));
    o.insert("Size".into(), json!(""));
    o.insert("Restarts".into(), json!(c.state.starts.saturating_sub(1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(
            go_time("2024-01-02T15:04:05.120000000Z"),
            "2024-01-02 15:04:05.12 +0000 UTC"
        );
        assert_eq!(
            go_time("2024-01-02T15:04:05Z"),
            "2024-01-02 15:04:05 +0000 UTC"
        );
    }

    #[test]
    fn caps() {
        let mut c = Container {
            dir: "/x".into(),
            config: cairn_engine::container::Config::default(),
            state: Default::default(),
        };
        assert_eq!(effective_caps(&c).len(), 11);
        c.config.cap_drop = vec!["chown".into(), "CAP_KILL".into()];
        c.config.cap_add = vec!["net_admin".into()];
        let caps = effective_caps(&c);
        assert_eq!(caps.len(), 10);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        c.config.cap_drop = vec!["all".into()];
        assert_eq!(effective_caps(&c), vec!["CAP_NET_ADMIN".to_string()]);
    }

    #[test]
    fn cap_masks_name_capabilities_sorted() {
        assert_eq!(cap_names(0), Vec::<String>::new());
        // podman's 11 defaults, as /proc/PID/status shows them in a container.
        let defaults = cap_names(0x8004_05fb);
        assert_eq!(
            defaults,
            effective_caps(&Container {
                dir: "/x".into(),
                config: cairn_engine::container::Config::default(),
                state: Default::default(),
            })
        );
        assert_eq!(
            cap_names(1 << 40),
            vec!["CAP_CHECKPOINT_RESTORE".to_string()]
        );
    }

    #[test]
    fn root_users() {
        for u in ["", "root", "0", "0:0", "root:wheel"] {
            assert!(runs_as_root(u), "{u}");
        }
        for u in ["nobody", "1000", "1000:0", "rootless"] {
            assert!(!runs_as_root(u), "{u}");
        }
    }

    /// podman 4.3's spec options (seen with `podman inspect --format
    /// '{{.HostConfig.Binds}} {{json .HostConfig.Tmpfs}}'`), less the
    /// source file system's flags and tmpcopyup.
    #[test]
    fn spec_options_like_podman() {
        let bind = |opts: &[&str]| MountConfig {
            kind: MountKind::Bind,
            readonly: opts.contains(&"ro"),
            options: opts.iter().map(|s| (*s).to_owned()).collect(),
            ..MountConfig::default()
        };
        let cases: [(MountConfig, &str); 6] = [
            (bind(&["ro"]), "ro,rprivate,rbind"),
            (bind(&["nosuid", "rshared"]), "nosuid,rshared,rw,rbind"),
            (bind(&["z", "rw", "noexec"]), "z,rw,noexec,rprivate,rbind"),
            (
                // --mount type=bind,…,readonly keeps no option strings.
                MountConfig {
                    kind: MountKind::Bind,
                    readonly: true,
                    ..MountConfig::default()
                },
                "ro,rprivate,rbind",
            ),
            (
                MountConfig {
                    kind: MountKind::Tmpfs,
                    options: vec!["size=1m".into(), "mode=700".into()],
                    size: Some("1m".into()),
                    mode: Some("700".into()),
                    ..MountConfig::default()
                },
                "size=1m,mode=700,rw,rprivate,nosuid,nodev",
            ),
            (
                MountConfig {
                    kind: MountKind::Tmpfs,
                    size: Some("2m".into()),
                    ..MountConfig::default()
                },
                "size=2m,rw,rprivate,nosuid,nodev",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(spec_options(&m, false).join(","), want, "{m:?}");
        }
    }

    #[test]
    fn inspect_mounts_split_options_like_podman() {
        let mut c = Container {
            dir: "/x".into(),
            config: cairn_engine::container::Config::default(),
            state: Default::default(),
        };
        c.config.mounts = vec![
            MountConfig {
                kind: MountKind::Bind,
                source: "/src".into(),
                destination: "/d3".into(),
                options: vec!["z".into(), "rw".into(), "noexec".into()],
                ..MountConfig::default()
            },
            MountConfig {
                kind: MountKind::Tmpfs,
                destination: "/t".into(),
                ..MountConfig::default()
            },
        ];
        assert_eq!(
            mounts_json(&c),
            vec![json!({
                "Type": "bind", "Source": "/src", "Destination": "/d3", "Driver": "",
                "Mode": "z", "Options": ["noexec", "rbind"], "RW": true, "Propagation": "rprivate",
            })]
        );
    }
}
