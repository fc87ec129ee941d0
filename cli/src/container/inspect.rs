//! What `inspect` and `ps` show of a container, in podman 4's shapes and
//! field names, so Go templates written for podman work unchanged.

use serde_json::{json, Map, Value};

use super::{Container, Live, Status};
use crate::output;

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

/// The capability set PID 1 gets (names, sorted), as podman reports it.
pub fn effective_caps(c: &Container) -> Vec<String> {
    let cfg = &c.config;
    if cfg.privileged {
        return vec![];
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect();
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

fn signal_number(name: &str) -> i32 {
    super::runtime::parse_signal(name).map_or(15, |s| s as i32)
}

fn mounts_json(c: &Container) -> Vec<Value> {
    c.config
        .mounts
        .iter()
        .map(|m| {
            let kind = if m.kind == "volume" {
                "volume"
            } else {
                m.kind.as_str()
            };
            let mut opts = m.options.clone();
            if m.kind == "bind" && !opts.iter().any(|o| o == "rbind" || o == "bind") {
                opts.push(if m.norecursive { "bind" } else { "rbind" }.into());
            }
            let mut v = json!({
                "Type": kind,
                "Source": m.source,
                "Destination": m.destination,
                "Driver": if m.kind == "volume" { "local" } else { "" },
                "Mode": "",
                "Options": opts,
                "RW": !m.readonly,
                "Propagation": if m.kind == "bind" {
                    if m.propagation.is_empty() { "rprivate" } else { m.propagation.as_str() }
                } else { "" },
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

/// `inspect` of a container.
pub fn inspect_json(c: &Container, live: &Live) -> Value {
    let cfg = &c.config;
    let dir = &c.dir;
    let running = live.status == Status::Running || live.status == Status::Stopping;
    let (path, args) = match cfg.process.args.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (String::new(), vec![]),
    };
    let caps = effective_caps(c);
    let ns = &cfg.namespaces;
    let network_mode = match ns.network.as_str() {
        "host" => "host",
        "none" => "none",
        _ => "bridge",
    };
    let binds: Vec<String> = cfg
        .mounts
        .iter()
        .filter(|m| m.kind == "bind" || m.kind == "volume")
        .map(|m| {
            let mut opts = m.options.clone();
            if m.kind == "bind" && !opts.iter().any(|o| o == "rbind" || o == "bind") {
                opts.push("rbind".into());
            }
            let src = m.name.clone().unwrap_or_else(|| m.source.clone());
            format!("{src}:{}:{}", m.destination, opts.join(","))
        })
        .collect();
    let tmpfs: Map<String, Value> = cfg
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs")
        .map(|m| (m.destination.clone(), json!(m.options.join(","))))
        .collect();
    let ulimits: Vec<Value> = cfg
        .ulimits
        .iter()
        .map(|u| json!({"Name": format!("RLIMIT_{}", u.name.to_ascii_uppercase()), "Soft": u.soft, "Hard": u.hard}))
        .collect();
    json!({
        "Id": cfg.id,
        "Created": cfg.created,
        "Path": path,
        "Args": args,
        "State": {
            "OciVersion": "1.0.2-dev",
            "Status": live.status.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { c.state.pid } else { 0 },
            "ConmonPid": if running { c.state.monitor_pid } else { 0 },
            "ExitCode": live.exit_code,
            "Error": live.error.clone().unwrap_or_default(),
            "StartedAt": c.state.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            "FinishedAt": live.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            "Health": {"Status": "", "FailingStreak": 0, "Log": null},
            "CheckpointedAt": ZERO_TIME,
            "RestoredAt": ZERO_TIME,
        },
        "Image": cfg.image.id,
        "ImageDigest": format!("sha256:{}", cfg.image.manifest),
        "ImageName": cfg.image.name,
        "Rootfs": "",
        "Pod": "",
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
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
        "EffectiveCaps": caps,
        "BoundingCaps": caps,
        "ExecIDs": [],
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": cfg.image.root,
                "MergedDir": dir.join("rootfs"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
            },
        },
        "Mounts": mounts_json(c),
        "Dependencies": [],
        "NetworkSettings": {
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "", "Bridge": "", "SandboxID": "", "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": {}, "SandboxKey": "",
        },
        "Namespace": "",
        "IsInfra": false,
        "IsService": false,
        "Config": {
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
            "Labels": labels(c),
            "Annotations": cfg.annotations,
            "StopSignal": signal_number(&cfg.stop_signal),
            "CreateCommand": cfg.create_command,
            "Umask": "0022",
            "Timeout": 0,
            "StopTimeout": cfg.stop_timeout,
            "Passwd": true,
            "sdNotifyMode": "container",
        },
        "HostConfig": {
            "Binds": binds,
            "CgroupManager": "cgroupfs",
            "CgroupMode": if ns.cgroup == "host" { "host" } else { "private" },
            "ContainerIDFile": "",
            "LogConfig": {"Type": "k8s-file", "Config": null, "Path": dir.join("ctr.log"), "Tag": "", "Size": "0B"},
            "NetworkMode": network_mode,
            "PortBindings": {},
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
            "AutoRemove": cfg.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": null,
            "CapAdd": cfg.cap_add.iter().map(|c| cap_name(c)).collect::<Vec<_>>(),
            "CapDrop": cfg.cap_drop.iter().map(|c| cap_name(c)).collect::<Vec<_>>(),
            "Dns": cfg.dns,
            "DnsOptions": cfg.dns_option,
            "DnsSearch": cfg.dns_search,
            "ExtraHosts": cfg.add_hosts,
            "GroupAdd": cfg.group_add,
            "IpcMode": if ns.ipc == "host" { "host" } else { "shareable" },
            "Cgroup": "",
            "Cgroups": "default",
            "Links": null,
            "OomScoreAdj": 0,
            "PidMode": if ns.pid == "host" { "host" } else { "private" },
            "Privileged": cfg.privileged,
            "PublishAllPorts": false,
            "ReadonlyRootfs": cfg.read_only,
            "SecurityOpt": cfg.security_opt,
            "Tmpfs": tmpfs,
            "UTSMode": if ns.uts == "host" { "host" } else { "private" },
            "UsernsMode": cfg.userns,
            "ShmSize": cfg.shm_size.unwrap_or(65_536_000),
            "Runtime": "oci",
            "ConsoleSize": [0, 0],
            "Isolation": "",
            "PidsLimit": cfg.pids_limit.unwrap_or(0),
            "Ulimits": ulimits,
            "Init": cfg.init,
        },
    })
}

fn unix(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            let frac = t.format("%.9f").to_string();
            let frac = frac.trim_end_matches('0');
            let frac = if frac == "." { "" } else { frac };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        Err(_) => rfc3339.to_owned(),
    }
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
    }
}

/// `ps --format json`: podman's ListContainer.
pub fn ps_json(c: &Container, live: &Live) -> Value {
    let cfg = &c.config;
    let running = matches!(live.status, Status::Running | Status::Stopping);
    json!({
        "AutoRemove": cfg.auto_remove,
        "Command": cfg.process.args,
        "CreatedAt": output::ago(Some(&cfg.created)),
        "Exited": live.status == Status::Exited,
        "ExitedAt": unix(live.finished_at.as_deref()),
        "ExitCode": live.exit_code,
        "Id": cfg.id,
        "Image": cfg.image.name,
        "ImageID": cfg.image.id,
        "IsInfra": false,
        "Labels": labels(c),
        "Mounts": cfg.mounts.iter().map(|m| m.destination.clone()).collect::<Vec<_>>(),
        "Names": [cfg.name],
        "Namespaces": {},
        "Networks": [],
        "Pid": if running { c.state.pid } else { 0 },
        "Pod": "",
        "PodName": "",
        "Ports": null,
        "Size": null,
        "StartedAt": unix(c.state.started_at.as_deref()),
        "State": live.status.as_str(),
        "Status": "",
        "Created": unix(Some(&cfg.created)),
    })
}

/// `ps --format '{{…}}'`: the fields and methods podman's psReporter has.
pub fn ps_template(c: &Container, live: &Live, no_trunc: bool) -> Value {
    let cfg = &c.config;
    let mut v = ps_json(c, live);
    let command = cfg.process.args.join(" ");
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
    o.insert("ImageID".into(), json!(short(&cfg.image.id)));
    o.insert("Command".into(), json!(command));
    o.insert("CreatedAt".into(), json!(go_time(&cfg.created)));
    o.insert("CreatedHuman".into(), json!(created_human));
    o.insert("RunningFor".into(), json!(created_human));
    o.insert("Status".into(), json!(status_text(c, live)));
    o.insert("Names".into(), json!(cfg.name));
    o.insert(
        "Mounts".into(),
        json!(cfg
            .mounts
            .iter()
            .map(|m| m.destination.clone())
            .collect::<Vec<_>>()
            .join(",")),
    );
    o.insert("Labels".into(), json!(cfg.labels));
    o.insert("Ports".into(), json!(""));
    o.insert("Networks".into(), json!(""));
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
            config: super::super::Config::default(),
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
}
