//! `version`, `info` and `-v`: what cairn is, in podman's shape.
//!
//! Clients gate features on podman's version (toolbox reads
//! `version --format json` `.Client.Version` and compares it with 1.6.0,
//! 1.8.1, 2.0.0 …; the Dev Containers CLI looks for "podman" in `-v` and
//! reads `version --format {{.Server.Version}}`). So the version cairn
//! reports where podman's goes is [`PODMAN_COMPAT`], the podman release
//! whose command line cairn follows, and cairn's own version is beside it
//! in a field of its own (`.Client.CairnVersion`).

use serde_json::{json, Value};

use cairn_gotemplate::{GoField, GoStruct, Shape};

use crate::context::Context;
use crate::format::Format;
use crate::output::{self, Table};

/// The podman release whose CLI cairn follows; reported as the version
/// (`.Client.Version`, `-v`) for clients that gate features on it.
pub const PODMAN_COMPAT: &str = "4.3.1";

/// cairn's own version.
pub const CAIRN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `cairn -v` prints after "cairn ": podman's shape (`podman version
/// 4.3.1`: the third word is the version scripts cut out), "podman" in it
/// for clients that detect the flavour, cairn's version last.
pub const VERSION_LINE: &str = concat!(
    "version 4.3.1 (podman-compatible, cairn ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// `define.Version` of podman 4.3, plus cairn's own version.
static DEFINE_VERSION: GoStruct = GoStruct {
    name: "*define.Version",
    fields: &[
        GoField::new("APIVersion", "APIVersion", Shape::Any),
        GoField::new("Version", "Version", Shape::Any),
        GoField::new("GoVersion", "GoVersion", Shape::Any),
        GoField::new("GitCommit", "GitCommit", Shape::Any),
        GoField::new("BuiltTime", "BuiltTime", Shape::Any),
        GoField::new("Built", "Built", Shape::Any),
        GoField::new("OsArch", "OsArch", Shape::Any),
        GoField::new("Os", "Os", Shape::Any),
        GoField::new("CairnVersion", "CairnVersion", Shape::Any),
    ],
};

/// `entities.SystemVersionReport`: a client and, remotely, a server.
static VERSION_REPORT: GoStruct = GoStruct {
    name: "*entities.SystemVersionReport",
    fields: &[
        GoField::new("Client", "Client", Shape::Struct(&DEFINE_VERSION)),
        GoField::new("Server", "Server", Shape::Struct(&DEFINE_VERSION)),
    ],
};

macro_rules! go_struct {
    ($static:ident, $name:literal, [$(($go:literal, $json:literal $(, $shape:expr)?)),* $(,)?]) => {
        static $static: GoStruct = GoStruct {
            name: $name,
            fields: &[$(GoField::new($go, $json, go_struct!(@shape $($shape)?))),*],
        };
    };
    (@shape) => { Shape::Any };
    (@shape $s:expr) => { $s };
}

go_struct!(
    SECURITY,
    "define.SecurityInfo",
    [
        ("AppArmorEnabled", "apparmorEnabled"),
        ("DefaultCapabilities", "capabilities"),
        ("Rootless", "rootless"),
        ("SECCOMPEnabled", "seccompEnabled"),
        ("SECCOMPProfilePath", "seccompProfilePath"),
        ("SELinuxEnabled", "selinuxEnabled"),
    ]
);
go_struct!(
    CONMON,
    "*define.ConmonInfo",
    [
        ("Package", "package"),
        ("Path", "path"),
        ("Version", "version")
    ]
);
go_struct!(
    OCI_RUNTIME,
    "*define.OCIRuntimeInfo",
    [
        ("Name", "name"),
        ("Package", "package"),
        ("Path", "path"),
        ("Version", "version"),
    ]
);
go_struct!(
    CPU_USAGE,
    "*define.CPUUsage",
    [
        ("UserPercent", "userPercent"),
        ("SystemPercent", "systemPercent"),
        ("IdlePercent", "idlePercent"),
    ]
);
go_struct!(
    DISTRIBUTION,
    "define.DistributionInfo",
    [
        ("Distribution", "distribution"),
        ("Variant", "variant"),
        ("Version", "version"),
        ("Codename", "codename"),
    ]
);
go_struct!(
    ID_MAPPINGS,
    "define.IDMappings",
    [("GIDMap", "gidmap"), ("UIDMap", "uidmap")]
);
go_struct!(
    REMOTE_SOCKET,
    "*define.RemoteSocket",
    [("Path", "path"), ("Exists", "exists")]
);
go_struct!(
    SLIRP,
    "define.SlirpInfo",
    [
        ("Executable", "executable"),
        ("Package", "package"),
        ("Version", "version")
    ]
);
go_struct!(
    HOST,
    "*define.HostInfo",
    [
        ("Arch", "arch"),
        ("BuildahVersion", "buildahVersion"),
        ("CgroupManager", "cgroupManager"),
        ("CgroupsVersion", "cgroupVersion"),
        ("CgroupControllers", "cgroupControllers"),
        ("Conmon", "conmon", Shape::Struct(&CONMON)),
        ("CPUs", "cpus"),
        (
            "CPUUtilization",
            "cpuUtilization",
            Shape::Struct(&CPU_USAGE)
        ),
        ("Distribution", "distribution", Shape::Struct(&DISTRIBUTION)),
        ("EventLogger", "eventLogger"),
        ("Hostname", "hostname"),
        ("IDMappings", "idMappings", Shape::Struct(&ID_MAPPINGS)),
        ("Kernel", "kernel"),
        ("LogDriver", "logDriver"),
        ("MemFree", "memFree"),
        ("MemTotal", "memTotal"),
        ("NetworkBackend", "networkBackend"),
        ("OCIRuntime", "ociRuntime", Shape::Struct(&OCI_RUNTIME)),
        ("OS", "os"),
        (
            "RemoteSocket",
            "remoteSocket",
            Shape::Struct(&REMOTE_SOCKET)
        ),
        ("RuntimeInfo", "runtimeInfo"),
        ("ServiceIsRemote", "serviceIsRemote"),
        ("Security", "security", Shape::Struct(&SECURITY)),
        ("Slirp4NetNS", "slirp4netns", Shape::Struct(&SLIRP)),
        ("SwapFree", "swapFree"),
        ("SwapTotal", "swapTotal"),
        ("Uptime", "uptime"),
        ("Linkmode", "linkmode"),
    ]
);
go_struct!(
    CONTAINER_STORE,
    "define.ContainerStore",
    [
        ("Number", "number"),
        ("Paused", "paused"),
        ("Running", "running"),
        ("Stopped", "stopped"),
    ]
);
go_struct!(IMAGE_STORE, "define.ImageStore", [("Number", "number")]);
go_struct!(
    STORE,
    "*define.StoreInfo",
    [
        ("ConfigFile", "configFile"),
        (
            "ContainerStore",
            "containerStore",
            Shape::Struct(&CONTAINER_STORE)
        ),
        ("GraphDriverName", "graphDriverName"),
        ("GraphOptions", "graphOptions"),
        ("GraphRoot", "graphRoot"),
        ("GraphRootAllocated", "graphRootAllocated"),
        ("GraphRootUsed", "graphRootUsed"),
        ("GraphStatus", "graphStatus"),
        ("ImageCopyTmpDir", "imageCopyTmpDir"),
        ("ImageStore", "imageStore", Shape::Struct(&IMAGE_STORE)),
        ("RunRoot", "runRoot"),
        ("VolumePath", "volumePath"),
    ]
);
go_struct!(
    PLUGINS,
    "define.Plugins",
    [
        ("Volume", "volume"),
        ("Network", "network"),
        ("Log", "log"),
        ("Authorization", "authorization"),
    ]
);
go_struct!(
    INFO_VERSION,
    "define.Version",
    [
        ("APIVersion", "APIVersion"),
        ("Version", "Version"),
        ("GoVersion", "GoVersion"),
        ("GitCommit", "GitCommit"),
        ("BuiltTime", "BuiltTime"),
        ("Built", "Built"),
        ("OsArch", "OsArch"),
        ("Os", "Os"),
        ("CairnVersion", "CairnVersion"),
    ]
);
go_struct!(
    INFO,
    "*define.Info",
    [
        ("Host", "host", Shape::Struct(&HOST)),
        ("Store", "store", Shape::Struct(&STORE)),
        ("Registries", "registries"),
        ("Plugins", "plugins", Shape::Struct(&PLUGINS)),
        ("Version", "version", Shape::Struct(&INFO_VERSION)),
    ]
);

/// The template type of `info --format`.
pub fn info_shape() -> Shape {
    Shape::Struct(&INFO)
}

/// The template type of `version --format`.
pub fn version_shape() -> Shape {
    Shape::Struct(&VERSION_REPORT)
}

/// The `define.Version` document (podman's Client section).
pub fn version_doc() -> Value {
    let p = cairn_store::media::host_platform();
    let built: i64 = option_env!("CAIRN_BUILT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let built_time = chrono::DateTime::from_timestamp(built, 0)
        .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_default();
    json!({
        "APIVersion": PODMAN_COMPAT,
        "Version": PODMAN_COMPAT,
        "GoVersion": env!("CAIRN_RUSTC_VERSION"),
        "GitCommit": "",
        "BuiltTime": built_time,
        "Built": built,
        "OsArch": format!("{}/{}", p.os, p.architecture),
        "Os": p.os,
        "CairnVersion": CAIRN_VERSION,
    })
}

/// `version` flags.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Change the output format to JSON or a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `info` flags.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Change the output format to JSON or a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Accepted for podman compatibility (podman: show additional
    /// information); cairn always shows all it has.
    #[arg(short = 'D', long, hide = true)]
    pub debug: bool,
}

/// `cairn version`: podman's report (a Client, no Server: cairn has no
/// service) as text, JSON, or a Go template. As podman's, a template that
/// fails on the report is tried again on the Client with `.Server.` read
/// as `.` (so `{{.Server.Version}}` works, as clients expect).
pub fn version(a: VersionArgs) -> anyhow::Result<u8> {
    let client = version_doc();
    let report = json!({ "Client": client });
    match Format::parse(a.format.as_deref(), "version")? {
        Format::Default => {
            let s = |k: &str| client[k].as_str().unwrap_or_default().to_owned();
            let mut t = Table::default();
            t.row(["Client:", "cairn (podman-compatible)"]);
            t.row(["Version:".into(), s("Version")]);
            t.row(["API Version:".into(), s("APIVersion")]);
            t.row(["Cairn Version:".into(), s("CairnVersion")]);
            t.row(["Go Version:".into(), s("GoVersion")]);
            t.row(["Built:".into(), s("BuiltTime")]);
            t.row(["OS/Arch:".into(), s("OsArch")]);
            print!("{}", t.render());
        }
        Format::Json => println!("{report}"),
        f => {
            let text = match f.render_as(&report, version_shape()) {
                Ok(text) => text,
                Err(_) => {
                    let raw = a.format.as_deref().unwrap_or_default();
                    Format::parse(Some(&raw.replace(".Server.", ".")), "version")?
                        .render_as(&client, Shape::Struct(&DEFINE_VERSION))?
                }
            };
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(0)
}

/// `cairn info`: the host, the store and the version in podman's shape
/// (YAML by default, `--format json`, or a Go template over podman's
/// `define.Info` field names). Every value is read from the system; what
/// cairn has no counterpart for is left out (see [`info_doc`]).
pub fn info(ctx: &Context, a: InfoArgs) -> anyhow::Result<u8> {
    let v = info_doc(ctx)?;
    match Format::parse(a.format.as_deref(), "info")? {
        Format::Default => print!("{}", yaml(&v, 0)),
        Format::Json => println!("{}", output::json_indent(&v, 2)),
        f => {
            let text = f.render_as(&v, info_shape())?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(0)
}

/// podman's `define.Info` from the system. Left out, having no cairn
/// counterpart: `host.buildahVersion` (no buildah), `host.cgroupManager`
/// (cairn puts containers in no cgroup of their own), `host.networkBackend`
/// and `host.slirp4netns` (host, none and private networks only, no
/// backend), `host.remoteSocket` (no service), `store.configFile`,
/// `store.graphOptions`, `store.graphStatus` (no storage.conf, one driver)
/// and `plugins.volume|network|authorization`. A template naming one of
/// them resolves (the field exists in podman's type) to no value.
pub fn info_doc(ctx: &Context) -> anyhow::Result<Value> {
    use cairn_engine::container::{spec, Containers, Status};
    let p = cairn_store::media::host_platform();
    let store = ctx.store()?;
    let containers = Containers::new(ctx.root()).list()?;
    let count = |s: Status| containers.iter().filter(|c| c.live().status == s).count();
    let running = count(Status::Running) + count(Status::Stopping);
    let paused = count(Status::Paused);
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let helper = |name: &str| {
        spec::helper(name)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let rootless = !nix::unistd::geteuid().is_root();
    let (cgroup_version, controllers) = cgroups();
    let mem = meminfo();
    let root = ctx.root();
    let (allocated, used) = nix::sys::statvfs::statvfs(root)
        .map(|s| {
            let frag = s.fragment_size();
            let total = s.blocks() * frag;
            (total, total - s.blocks_free() * frag)
        })
        .unwrap_or((0, 0));
    let (uidmap, gidmap) = id_mappings(rootless);
    Ok(json!({
        "host": {
            "arch": p.architecture,
            "cgroupVersion": cgroup_version,
            "cgroupControllers": controllers,
            "conmon": {
                "package": "",
                "path": helper("cairn-monitor"),
                "version": format!("cairn-monitor version {CAIRN_VERSION}"),
            },
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "cpuUtilization": cpu_utilization(),
            "distribution": distribution(),
            "eventLogger": "file",
            "hostname": field(|u| u.nodename()),
            "idMappings": {"gidmap": gidmap, "uidmap": uidmap},
            "kernel": field(|u| u.release()),
            "logDriver": "k8s-file",
            "memFree": mem("MemFree:"),
            "memTotal": mem("MemTotal:"),
            "ociRuntime": {
                "name": "cairn",
                "package": "",
                "path": helper("cairn-mount"),
                "version": format!("cairn version {CAIRN_VERSION}"),
            },
            "os": p.os,
            "serviceIsRemote": false,
            "security": {
                "apparmorEnabled": false,
                "capabilities": cairn_engine::caps::DEFAULT.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>().join(","),
                "rootless": rootless,
                "seccompEnabled": cairn_engine::container::seccomp::kernel_supports(),
                "seccompProfilePath": cairn_engine::container::seccomp::default_profile_path(),
                "selinuxEnabled": false,
            },
            "swapFree": mem("SwapFree:"),
            "swapTotal": mem("SwapTotal:"),
            "uptime": uptime(),
            "linkmode": "dynamic",
        },
        "store": {
            "containerStore": {
                "number": containers.len(),
                "paused": paused,
                "running": running,
                "stopped": containers.len() - running - paused,
            },
            "graphDriverName": "overlay",
            "graphRoot": root,
            "graphRootAllocated": allocated,
            "graphRootUsed": used,
            "imageCopyTmpDir": root.join("tmp"),
            "imageStore": {"number": store.images()?.len()},
            "runRoot": root,
            "volumePath": root.join("volumes"),
        },
        "registries": registries(ctx),
        "plugins": {"log": ["k8s-file"]},
        "version": version_doc(),
    }))
}

/// `registries`: as podman's, the unqualified-search registries under
/// `search` (podman also lists per-registry settings; cairn has none).
fn registries(ctx: &Context) -> Value {
    match ctx.search_registries() {
        Ok(list) if !list.is_empty() => json!({"search": list}),
        _ => json!({}),
    }
}

/// The cgroup version ("v1" or "v2") and the controllers available: the
/// unified hierarchy's `cgroup.controllers`, or the enabled v1 subsystems
/// among those podman knows (it leaves out net_cls, perf_event, …).
fn cgroups() -> (&'static str, Vec<String>) {
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        return ("v2", text.split_whitespace().map(str::to_owned).collect());
    }
    let text = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let controllers = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            const KNOWN: [&str; 9] = [
                "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "hugetlb",
                "pids",
            ];
            (f.len() == 4 && f[3] == "1" && KNOWN.contains(&f[0])).then(|| f[0].to_owned())
        })
        .collect();
    ("v1", controllers)
}

/// A `/proc/meminfo` field in bytes.
fn meminfo() -> impl Fn(&str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    move |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// podman's `cpuUtilization`: shares of CPU time since boot, from the
/// first line of `/proc/stat`, rounded to two decimals.
fn cpu_utilization() -> Value {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let nums: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: f64 = nums.iter().sum();
    let at = |i: usize| nums.get(i).copied().unwrap_or(0.0);
    let pct = |v: f64| {
        if total > 0.0 {
            (v / total * 10000.0).round() / 100.0
        } else {
            0.0
        }
    };
    json!({
        "userPercent": pct(at(0) + at(1)),
        "systemPercent": pct(at(2) + at(5) + at(6)),
        "idlePercent": pct(at(3)),
    })
}

/// `/etc/os-release`'s ID, VERSION_ID and VERSION_CODENAME.
fn distribution() -> Value {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_owned())
    };
    let mut d = serde_json::Map::new();
    d.insert("distribution".into(), json!(get("ID").unwrap_or_default()));
    d.insert(
        "version".into(),
        json!(get("VERSION_ID").unwrap_or_default()),
    );
    if let Some(c) = get("VERSION_CODENAME").filter(|c| !c.is_empty()) {
        d.insert("codename".into(), json!(c));
    }
    Value::Object(d)
}

/// podman's uptime text: `6h 11m 41.00s (Approximately 0.25 days)`.
fn uptime() -> String {
    let secs: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let whole = secs.floor() as u64;
    format!(
        "{}h {}m {:.2}s (Approximately {:.2} days)",
        whole / 3600,
        whole % 3600 / 60,
        (whole % 60) as f64,
        secs / 86400.0
    )
}

/// The id mappings a rootless cairn uses (the caller's id as 0, then its
/// subordinate ranges), as podman lists them; `null` as root.
fn id_mappings(rootless: bool) -> (Value, Value) {
    if !rootless {
        return (Value::Null, Value::Null);
    }
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let map = |file: &str, own: u32| {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut out = vec![json!({"container_id": 0, "host_id": own, "size": 1})];
        let mut next = 1u64;
        for l in text.lines() {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || (f[0] != user && f[0] != own.to_string()) {
                continue;
            }
            let (Ok(start), Ok(size)) = (f[1].parse::<u64>(), f[2].parse::<u64>()) else {
                continue;
            };
            out.push(json!({"container_id": next, "host_id": start, "size": size}));
            next += size;
        }
        Value::Array(out)
    };
    (
        map("/etc/subuid", nix::unistd::getuid().as_raw()),
        map("/etc/subgid", nix::unistd::getgid().as_raw()),
    )
}

/// YAML as podman prints `info` (yaml.v2 of its JSON): keys sorted, lists
/// at the key's indentation, strings quoted where YAML would misread them,
/// multi-line strings as `|-` blocks.
pub fn yaml(v: &Value, depth: usize) -> String {
    let pad = "  ".repeat(depth);
    let mut out = String::new();
    let Value::Object(m) = v else {
        return out;
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let key = yaml_scalar(k);
        match &m[k] {
            Value::Object(o) if o.is_empty() => out.push_str(&format!("{pad}{key}: {{}}\n")),
            Value::Object(_) => {
                out.push_str(&format!("{pad}{key}:\n"));
                out.push_str(&yaml(&m[k], depth + 1));
            }
            Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}{key}: []\n")),
            Value::Array(a) => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in a {
                    match item {
                        Value::Object(_) => {
                            let body = yaml(item, depth + 1);
                            let body = body.replacen(&format!("{pad}  "), &format!("{pad}- "), 1);
                            out.push_str(&body);
                        }
                        other => out.push_str(&format!("{pad}- {}\n", yaml_value(other, &pad))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{key}: {}\n", yaml_value(other, &pad))),
        }
    }
    out
}

fn yaml_value(v: &Value, pad: &str) -> String {
    match v {
        Value::String(s) if s.contains('\n') => {
            let mut block = String::from("|-");
            for line in s.lines() {
                block.push_str(&format!("\n{pad}  {line}"));
            }
            block
        }
        Value::String(s) => yaml_scalar(s),
        other => other.to_string(),
    }
}

/// A string as yaml.v2 writes it: plain, `"…"` where it would read as
/// another type, `'…'` where it holds YAML syntax.
fn yaml_scalar(s: &str) -> String {
    let reads_as_other = s.is_empty()
        || s.parse::<f64>().is_ok()
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
        );
    if reads_as_other {
        return format!("{s:?}");
    }
    let special = s.contains(": ")
        || s.contains(" #")
        || s.starts_with(|c: char| "!&*-?{}[],#|>@`\"'%: ".contains(c))
        || s.ends_with(' ');
    if special {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_owned()
    }
}

/// Fails unless a version template is usable; for unit tests of shapes.
#[cfg(test)]
fn render(text: &str, data: &Value, shape: Shape) -> Result<String, String> {
    Format::parse(Some(text), "info")
        .and_then(|f| f.render_as(data, shape))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_has_podmans_shape() {
        let line = format!("cairn {VERSION_LINE}");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&words[..3], ["cairn", "version", PODMAN_COMPAT]);
        assert!(line.contains("podman"));
        assert!(line.ends_with(&format!("cairn {CAIRN_VERSION})")));
    }

    /// yaml.v2 (podman's) quotes what YAML 1.1 reads as another type,
    /// "y" and "n" (booleans) included.
    #[test]
    fn yaml_like_podmans() {
        let v = json!({"b": {"z": "12", "a": ["x", "y"], "e": {}, "n": null},
                       "a": "conmon version 2.1.6, commit: unknown", "m": "one\ntwo", "t": true});
        assert_eq!(
            yaml(&v, 0),
            "a: 'conmon version 2.1.6, commit: unknown'\nb:\n  a:\n  - x\n  - \"y\"\n  e: {}\n  \"n\": null\n  z: \"12\"\nm: |-\n  one\n  two\nt: true\n"
        );
    }

    #[test]
    fn go_names_on_json_keys() {
        let v = json!({"host": {"ociRuntime": {"name": "cairn"}, "cgroupVersion": "v2"},
                       "store": {"graphRoot": "/r"}});
        assert_eq!(
            render("{{.Host.OCIRuntime.Name}}", &v, info_shape()).unwrap(),
            "cairn"
        );
        assert_eq!(
            render("{{.Host.CgroupsVersion}}", &v, info_shape()).unwrap(),
            "v2"
        );
        assert_eq!(
            render("{{.Store.GraphRoot}}", &v, info_shape()).unwrap(),
            "/r"
        );
        assert!(render("{{.Host.Foo}}", &v, info_shape())
            .unwrap_err()
            .ends_with("can't evaluate field Foo in type *define.HostInfo"));
    }
}
