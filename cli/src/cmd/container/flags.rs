//! The `run`/`create`/`exec`/`start` flags beyond the basic ones: the ones
//! cairn refuses by name, and the parsers of the values it takes (detach
//! keys, `-a` streams, sysctls, `--tz`, `--device`, `--health-*`,
//! `--label-file`, `--restart`). Pure where they can be, unit-tested here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_engine::container::config::{Device, Healthcheck, Namespaces, TimeZone};

/// A flag's value counts as given.
pub trait Given {
    /// Whether the user set it (a boolean: to true).
    fn given(&self) -> bool;
}

impl Given for Vec<String> {
    fn given(&self) -> bool {
        !self.is_empty()
    }
}

impl Given for Option<bool> {
    fn given(&self) -> bool {
        *self == Some(true)
    }
}

/// The reason behind refusing a resource flag.
pub(super) const CGROUPS: &str =
    "cairn sets memory, CPU, cpuset, pids and block I/O weight limits, not this one";
/// The reason behind refusing a network flag.
const NETWORK: &str = "cairn's bridge networks are IPv4 only";
/// The reason behind refusing an id-mapping flag.
const IDMAP: &str = "custom id maps are not supported: use --userns keep-id, or run as root";

/// `run`/`create` flags cairn refuses by name (hidden from `--help`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RefusedCreate {
    /// Refused: --blkio-weight-device.
    #[arg(long = "blkio-weight-device", hide = true, value_name = "VALUE")]
    pub blkio_weight_device: Vec<String>,
    /// Refused: --cgroup-conf.
    #[arg(long = "cgroup-conf", hide = true, value_name = "VALUE")]
    pub cgroup_conf: Vec<String>,
    /// Refused: --cpu-rt-period.
    #[arg(long = "cpu-rt-period", hide = true, value_name = "VALUE")]
    pub cpu_rt_period: Vec<String>,
    /// Refused: --cpu-rt-runtime.
    #[arg(long = "cpu-rt-runtime", hide = true, value_name = "VALUE")]
    pub cpu_rt_runtime: Vec<String>,
    /// Refused: --device-read-bps.
    #[arg(long = "device-read-bps", hide = true, value_name = "VALUE")]
    pub device_read_bps: Vec<String>,
    /// Refused: --device-read-iops.
    #[arg(long = "device-read-iops", hide = true, value_name = "VALUE")]
    pub device_read_iops: Vec<String>,
    /// Refused: --device-write-bps.
    #[arg(long = "device-write-bps", hide = true, value_name = "VALUE")]
    pub device_write_bps: Vec<String>,
    /// Refused: --device-write-iops.
    #[arg(long = "device-write-iops", hide = true, value_name = "VALUE")]
    pub device_write_iops: Vec<String>,
    /// Refused: --memory-swappiness.
    #[arg(long = "memory-swappiness", hide = true, value_name = "VALUE")]
    pub memory_swappiness: Vec<String>,
    /// Refused: --oom-kill-disable.
    #[arg(long = "oom-kill-disable", hide = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub oom_kill_disable: Option<bool>,
    /// Refused: --oom-score-adj.
    #[arg(long = "oom-score-adj", hide = true, value_name = "VALUE")]
    pub oom_score_adj: Vec<String>,
    /// Refused: --gpus.
    #[arg(long = "gpus", hide = true, value_name = "VALUE")]
    pub gpus: Vec<String>,
    /// Refused: --ip6.
    #[arg(long = "ip6", hide = true, value_name = "VALUE")]
    pub ip6: Vec<String>,
    /// Refused: --uidmap.
    #[arg(long = "uidmap", hide = true, value_name = "VALUE")]
    pub uidmap: Vec<String>,
    /// Refused: --gidmap.
    #[arg(long = "gidmap", hide = true, value_name = "VALUE")]
    pub gidmap: Vec<String>,
    /// Refused: --subuidname.
    #[arg(long = "subuidname", hide = true, value_name = "VALUE")]
    pub subuidname: Vec<String>,
    /// Refused: --subgidname.
    #[arg(long = "subgidname", hide = true, value_name = "VALUE")]
    pub subgidname: Vec<String>,
    /// Refused: --pod.
    #[arg(long = "pod", hide = true, value_name = "VALUE")]
    pub pod: Vec<String>,
    /// Refused: --pod-id-file.
    #[arg(long = "pod-id-file", hide = true, value_name = "VALUE")]
    pub pod_id_file: Vec<String>,
    /// Refused: --init-ctr.
    #[arg(long = "init-ctr", hide = true, value_name = "VALUE")]
    pub init_ctr: Vec<String>,
    /// Refused: --requires.
    #[arg(long = "requires", hide = true, value_name = "VALUE")]
    pub requires: Vec<String>,
    /// Refused: --secret.
    #[arg(long = "secret", hide = true, value_name = "VALUE")]
    pub secret: Vec<String>,
    /// Refused: --rootfs.
    #[arg(long = "rootfs", hide = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootfs: Option<bool>,
    /// Refused: --volumes-from.
    #[arg(long = "volumes-from", hide = true, value_name = "VALUE")]
    pub volumes_from: Vec<String>,
    /// Refused: --chrootdirs.
    #[arg(long = "chrootdirs", hide = true, value_name = "VALUE")]
    pub chrootdirs: Vec<String>,
    /// Refused: --conmon-pidfile.
    #[arg(long = "conmon-pidfile", hide = true, value_name = "VALUE")]
    pub conmon_pidfile: Vec<String>,
    /// Refused: --init-path.
    #[arg(long = "init-path", hide = true, value_name = "VALUE")]
    pub init_path: Vec<String>,
    /// Refused: --hostuser.
    #[arg(long = "hostuser", hide = true, value_name = "VALUE")]
    pub hostuser: Vec<String>,
    /// Refused: --passwd-entry.
    #[arg(long = "passwd-entry", hide = true, value_name = "VALUE")]
    pub passwd_entry: Vec<String>,
    /// Refused: --personality.
    #[arg(long = "personality", hide = true, value_name = "VALUE")]
    pub personality: Vec<String>,
    /// Refused: --env-merge.
    #[arg(long = "env-merge", hide = true, value_name = "VALUE")]
    pub env_merge: Vec<String>,
    /// Refused: --timeout.
    #[arg(long = "timeout", hide = true, value_name = "VALUE")]
    pub timeout: Vec<String>,
}

impl RefusedCreate {
    /// The first refused flag given, with why: `(flag, reason)`.
    pub fn first_given(&self) -> Option<(&'static str, &'static str)> {
        let table: &[(bool, &'static str, &'static str)] = &[
            (
                self.blkio_weight_device.given(),
                "blkio-weight-device",
                CGROUPS,
            ),
            (self.cgroup_conf.given(), "cgroup-conf", CGROUPS),
            (self.cpu_rt_period.given(), "cpu-rt-period", CGROUPS),
            (self.cpu_rt_runtime.given(), "cpu-rt-runtime", CGROUPS),
            (self.device_read_bps.given(), "device-read-bps", CGROUPS),
            (self.device_read_iops.given(), "device-read-iops", CGROUPS),
            (self.device_write_bps.given(), "device-write-bps", CGROUPS),
            (self.device_write_iops.given(), "device-write-iops", CGROUPS),
            (self.memory_swappiness.given(), "memory-swappiness", CGROUPS),
            (self.oom_kill_disable.given(), "oom-kill-disable", CGROUPS),
            (
                self.oom_score_adj.given(),
                "oom-score-adj",
                "not implemented: the container's processes keep cairn's OOM score",
            ),
            (
                self.gpus.given(),
                "gpus",
                "GPU passthrough is not supported; --device binds a node",
            ),
            (self.ip6.given(), "ip6", NETWORK),
            (self.uidmap.given(), "uidmap", IDMAP),
            (self.gidmap.given(), "gidmap", IDMAP),
            (self.subuidname.given(), "subuidname", IDMAP),
            (self.subgidname.given(), "subgidname", IDMAP),
            (self.pod.given(), "pod", "cairn has no pods"),
            (self.pod_id_file.given(), "pod-id-file", "cairn has no pods"),
            (self.init_ctr.given(), "init-ctr", "cairn has no pods"),
            (
                self.requires.given(),
                "requires",
                "cairn has no container dependencies",
            ),
            (
                self.secret.given(),
                "secret",
                "secrets are not supported yet: bind a file with -v SRC:DST:ro",
            ),
            (self.rootfs.given(), "rootfs", "cairn runs images only"),
            (
                self.volumes_from.given(),
                "volumes-from",
                "not implemented: give the volumes with -v",
            ),
            (self.chrootdirs.given(), "chrootdirs", "not implemented"),
            (
                self.conmon_pidfile.given(),
                "conmon-pidfile",
                "cairn has no conmon: its monitor's pid is in inspect's .State.ConmonPid",
            ),
            (
                self.init_path.given(),
                "init-path",
                "cairn's --init is built in",
            ),
            (self.hostuser.given(), "hostuser", "not implemented"),
            (
                self.passwd_entry.given(),
                "passwd-entry",
                "not implemented: cairn adds no /etc/passwd entries",
            ),
            (self.personality.given(), "personality", "not implemented"),
            (
                self.env_merge.given(),
                "env-merge",
                "not implemented: give the whole value with -e",
            ),
            (
                self.timeout.given(),
                "timeout",
                "not implemented: stop the container with `cairn stop -t`",
            ),
        ];
        table
            .iter()
            .find(|(given, _, _)| *given)
            .map(|(_, f, w)| (*f, *w))
    }
}

/// `run`-only flags cairn refuses by name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RefusedRun {
    /// Refused: --rmi.
    #[arg(long = "rmi", hide = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rmi: Option<bool>,
}

impl RefusedRun {
    /// The first refused flag given, with why: `(flag, reason)`.
    pub fn first_given(&self) -> Option<(&'static str, &'static str)> {
        let table: &[(bool, &'static str, &'static str)] = &[(
            self.rmi.given(),
            "rmi",
            "not implemented: remove the image with `cairn rmi` after the run",
        )];
        table
            .iter()
            .find(|(given, _, _)| *given)
            .map(|(_, f, w)| (*f, *w))
    }
}

/// `Error: cairn does not support --X (WHY)`, exit 125.
pub fn refuse(flag: &str, why: &str) -> anyhow::Error {
    crate::exit::with_code(
        crate::exit::ENGINE,
        format!("cairn does not support --{flag} ({why})"),
    )
}

/// podman's default detach keys.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// podman's `--detach-keys` format: comma-separated keys, each one
/// character or `ctrl-X` (X one of `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`),
/// or `DEL`. `""` disables detaching (`Ok(vec![])`).
pub fn detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut codes = Vec::new();
    for key in keys.split(',') {
        let b = key.as_bytes();
        let code = match (b.len(), key.strip_prefix("ctrl-")) {
            (1, _) => b[0],
            (_, Some(c))
                if c.len() == 1
                    && (b'@'..=b'_').contains(&c.as_bytes()[0].to_ascii_uppercase()) =>
            {
                let ch = c.as_bytes()[0];
                // Lower-case letters only (podman's table), and @ [ \ ] ^ _.
                if ch.is_ascii_uppercase() {
                    return Err(format!("invalid detach keys: Unknown character: '{key}'"));
                }
                ch.to_ascii_uppercase() - b'@'
            }
            _ if key == "DEL" => 127,
            _ => return Err(format!("invalid detach keys: Unknown character: '{key}'")),
        };
        codes.push(code);
    }
    Ok(codes)
}

/// `--userns keep-id:OPTS`: `uid=N`, `gid=N` (comma-separated); `size=`
/// is refused (cairn maps every subordinate id).
pub fn keep_id_options(opts: &str) -> Result<(Option<u32>, Option<u32>), String> {
    let (mut uid, mut gid) = (None, None);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let num = |v: &str| v.parse::<u32>().map_err(|_| format!("{o:?}: not a number"));
        match o.split_once('=') {
            Some(("uid", v)) => uid = Some(num(v)?),
            Some(("gid", v)) => gid = Some(num(v)?),
            Some(("size", _)) => {
                return Err("size= is not supported: cairn maps every subordinate id".into())
            }
            _ => return Err(format!("unknown option {o:?}: use uid=N and gid=N")),
        }
    }
    Ok((uid, gid))
}

/// The streams `-a` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    /// STDIN.
    pub stdin: bool,
    /// STDOUT.
    pub stdout: bool,
    /// STDERR.
    pub stderr: bool,
}

/// `-a STDIN|STDOUT|STDERR` (any case, repeated or comma-separated);
/// `None` when no `-a` was given (every output stream).
pub fn attach_streams(given: &[String]) -> Result<Option<Streams>, String> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut s = Streams {
        stdin: false,
        stdout: false,
        stderr: false,
    };
    for v in given.iter().flat_map(|g| g.split(',')) {
        match v.to_ascii_lowercase().as_str() {
            "stdin" => s.stdin = true,
            "stdout" => s.stdout = true,
            "stderr" => s.stderr = true,
            _ => return Err(format!("invalid stream \"{v}\" for --attach - must be one of stdin, stdout, or stderr: invalid argument")),
        }
    }
    Ok(Some(s))
}

/// The IPC namespace's sysctls (podman's list), besides `fs.mqueue.*`.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `--sysctl KEY=VALUE`s, allowed as podman allows them: only parameters
/// of a namespace the container has of its own (IPC: `kernel.msg*`,
/// `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`; network: `net.*`; UTS:
/// `kernel.domainname`).
pub fn sysctls(given: &[String], ns: &Namespaces) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for g in given.iter().flat_map(|g| g.split(',')) {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| format!("--sysctl {g:?}: use KEY=VALUE"))?;
        let k = k.trim().replace('/', ".");
        if k.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(format!("--sysctl {g:?}: not a parameter name"));
        }
        let host = |mode: bool, what: &str| -> Result<(), String> {
            match mode {
                true => Err(format!(
                    "sysctl {k}={v} can't be set since {what} Namespace set to host: invalid argument"
                )),
                false => Ok(()),
            }
        };
        if IPC_SYSCTLS.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            host(ns.ipc.is_host(), "IPC")?;
        } else if k.starts_with("net.") {
            host(ns.network.is_host(), "Network")?;
        } else if k == "kernel.domainname" {
            host(ns.uts.is_host(), "UTS")?;
        } else if k == "kernel.hostname" {
            return Err("sysctl 'kernel.hostname' is not allowed (use --hostname)".into());
        } else {
            return Err(format!("sysctl '{k}' is not allowed"));
        }
        out.insert(k, v.to_owned());
    }
    Ok(out)
}

/// `--tz`: `local` (the host's `/etc/localtime`) or a zone under
/// `zoneinfo`; `None` for `""`.
pub fn time_zone(tz: &str, zoneinfo: &Path) -> Result<Option<TimeZone>, String> {
    if tz.is_empty() {
        return Ok(None);
    }
    let file = if tz == "local" {
        PathBuf::from("/etc/localtime")
    } else {
        if tz.starts_with('/') || tz.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(format!(
                "running container create option: finding timezone: unknown time zone {tz}"
            ));
        }
        zoneinfo.join(tz)
    };
    if let Err(e) = std::fs::metadata(&file) {
        return Err(format!(
            "running container create option: stat {}: {}",
            file.display(),
            go_error_text(&e)
        ));
    }
    Ok(Some(TimeZone {
        name: tz.to_owned(),
        file,
    }))
}

/// An I/O error as Go prints it (`no such file or directory`).
fn go_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `--umask`: octal, at most 0777.
pub fn umask(m: &str) -> Result<String, String> {
    match u32::from_str_radix(m, 8) {
        Ok(v) if v <= 0o777 && !m.is_empty() => Ok(m.to_owned()),
        _ => Err(format!(
            "running container create option: invalid umask string {m}: invalid argument"
        )),
    }
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]` (PERMISSIONS letters of `rwm`).
pub fn device(spec: &str) -> Result<Device, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, permissions) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if perms_ok(p) => (*h, *c, *p),
        _ => return Err(format!("invalid device specification: {spec}")),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(format!(
            "invalid device specification: {spec}: paths must be absolute"
        ));
    }
    use std::os::unix::fs::FileTypeExt as _;
    let meta = std::fs::metadata(host).map_err(|e| format!("stat {host}: {e}"))?;
    let t = meta.file_type();
    if !(t.is_char_device() || t.is_block_device()) {
        return Err(format!(
            "{host} is not a device node (cairn binds one node per --device)"
        ));
    }
    Ok(Device {
        host: host.into(),
        container: container.to_owned(),
        permissions: permissions.to_owned(),
    })
}

/// `--label-file` lines: `KEY=VALUE` (or `KEY`), blank lines and `#`
/// comments skipped.
pub fn label_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `--restart`: `""` and `no` (what cairn does), else refused; podman's
/// conflict with `--rm` first.
pub fn restart(policy: &str, rm: bool) -> anyhow::Result<String> {
    let name = policy.split(':').next().unwrap_or("");
    if !matches!(name, "" | "no" | "always" | "on-failure" | "unless-stopped") {
        return Err(crate::exit::with_code(
            crate::exit::ENGINE,
            format!("invalid restart policy {policy:?}: use no, on-failure[:N], always or unless-stopped"),
        ));
    }
    if rm && !matches!(name, "" | "no") {
        return Err(crate::exit::with_code(
            crate::exit::ENGINE,
            "the --rm option conflicts with --restart, when the restartPolicy is not \"\" and \"no\"",
        ));
    }
    if !matches!(name, "" | "no") {
        return Err(refuse(
            "restart",
            "cairn has no restart manager yet: only no; restart with `cairn start`",
        ));
    }
    Ok(name.to_owned())
}

/// A Go duration as podman's `--health-*` take it (`30s`, `1m30s`,
/// `500ms`, `0`): nanoseconds.
pub fn duration_ns(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    let bad = || format!("invalid duration {s:?}");
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Ok(total as u64)
}

/// The `--health-*` values as given.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags<'a> {
    /// `--health-cmd` (`none` disables).
    pub cmd: Option<&'a str>,
    /// `--health-interval` (`disable` allowed).
    pub interval: &'a str,
    /// `--health-timeout`.
    pub timeout: &'a str,
    /// `--health-start-period`.
    pub start_period: &'a str,
    /// `--health-retries`.
    pub retries: u64,
    /// `--no-healthcheck`.
    pub none: bool,
}

/// podman's healthcheck from the flags: a command string runs with
/// `CMD-SHELL` unless it is a JSON array; `none` / `--no-healthcheck` is
/// `["NONE"]`. `None` without a command.
pub fn healthcheck(h: &HealthFlags<'_>) -> Result<Option<Healthcheck>, String> {
    let test = match (h.none, h.cmd) {
        (true, _) | (_, Some("none")) => vec!["NONE".to_owned()],
        (false, None) => return Ok(None),
        (false, Some(c)) if c.trim_start().starts_with('[') => {
            let v: Vec<String> = serde_json::from_str(c)
                .map_err(|e| format!("--health-cmd {c:?}: not a JSON array of strings: {e}"))?;
            match v.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL" | "NONE") => v,
                _ => std::iter::once("CMD".to_owned()).chain(v).collect(),
            }
        }
        (false, Some(c)) => vec!["CMD-SHELL".to_owned(), c.to_owned()],
    };
    let interval = match h.interval {
        "disable" => 0,
        i => duration_ns(i).map_err(|e| format!("--health-interval: {e}"))?,
    };
    let timeout = duration_ns(h.timeout).map_err(|e| format!("--health-timeout: {e}"))?;
    if timeout < 1_000_000_000 {
        return Err("healthcheck-timeout must be at least 1 second".into());
    }
    Ok(Some(Healthcheck {
        test,
        interval,
        timeout,
        start_period: duration_ns(h.start_period)
            .map_err(|e| format!("--health-start-period: {e}"))?,
        retries: h.retries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_engine::network::NetworkMode;

    #[test]
    fn detach_keys_as_podman() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q"), Ok(vec![16, 17]));
        assert_eq!(detach_keys(""), Ok(vec![]));
        assert_eq!(
            detach_keys("a,ctrl-@,ctrl-_,DEL"),
            Ok(vec![b'a', 0, 31, 127])
        );
        assert_eq!(detach_keys("ctrl-["), Ok(vec![27]));
        for bad in ["foo", "ctrl-Q", "ctrl-", "a,,b", "ctrl-1"] {
            assert_eq!(
                detach_keys(bad),
                Err(format!(
                    "invalid detach keys: Unknown character: '{}'",
                    bad.split(',').find(|k| k.len() != 1).unwrap()
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn keep_id_option_values() {
        assert_eq!(keep_id_options(""), Ok((None, None)));
        assert_eq!(
            keep_id_options("uid=1000,gid=100"),
            Ok((Some(1000), Some(100)))
        );
        assert_eq!(keep_id_options("gid=5"), Ok((None, Some(5))));
        assert!(keep_id_options("size=10").is_err());
        assert!(keep_id_options("uid=x").is_err());
        assert!(keep_id_options("user=1").is_err());
    }

    #[test]
    fn attach_streams_parse() {
        assert_eq!(attach_streams(&[]), Ok(None));
        let s = attach_streams(&["STDOUT".into(), "stderr".into()])
            .unwrap()
            .unwrap();
        assert_eq!((s.stdin, s.stdout, s.stderr), (false, true, true));
        let s = attach_streams(&["stdin,STDOUT".into()]).unwrap().unwrap();
        assert_eq!((s.stdin, s.stdout, s.stderr), (true, true, false));
        assert!(attach_streams(&["tty".into()]).is_err());
    }

    #[test]
    fn sysctls_only_in_owned_namespaces() {
        let private = Namespaces {
            network: NetworkMode::Private,
            ..Namespaces::default()
        };
        let got = sysctls(
            &[
                "net.ipv4.ip_forward=1".into(),
                "kernel.shmmni=100,fs.mqueue.msg_max=20".into(),
            ],
            &private,
        )
        .unwrap();
        assert_eq!(got["net.ipv4.ip_forward"], "1");
        assert_eq!(got["kernel.shmmni"], "100");
        assert_eq!(got["fs.mqueue.msg_max"], "20");
        let host_net = Namespaces {
            network: NetworkMode::Host,
            ..Namespaces::default()
        };
        assert_eq!(
            sysctls(&["net.ipv4.ip_forward=1".into()], &host_net).unwrap_err(),
            "sysctl net.ipv4.ip_forward=1 can't be set since Network Namespace set to host: invalid argument"
        );
        for bad in [
            "vm.swappiness=1",
            "kernel.hostname=x",
            "noequals",
            "net..x=1",
            "net.../x=1",
        ] {
            assert!(sysctls(&[bad.into()], &private).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_and_umasks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("Europe")).unwrap();
        std::fs::write(d.path().join("Europe/Paris"), b"TZif").unwrap();
        let tz = time_zone("Europe/Paris", d.path()).unwrap().unwrap();
        assert_eq!(tz.file, d.path().join("Europe/Paris"));
        assert_eq!(time_zone("", d.path()), Ok(None));
        for bad in [
            "Nowhere/City",
            "../etc/passwd",
            "/etc/passwd",
            "Europe/../Europe/Paris",
        ] {
            assert!(time_zone(bad, d.path()).is_err(), "{bad}");
        }
        assert_eq!(umask("0077").as_deref(), Ok("0077"));
        assert!(umask("0800").is_err());
        assert!(umask("1777").is_err());
        assert!(umask("").is_err());
    }

    #[test]
    fn devices_labels_restart() {
        let d = device("/dev/null").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/null", "rwm")
        );
        let d = device("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/mynull", "r")
        );
        let d = device("/dev/zero:rw").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/zero", "rw")
        );
        assert!(device("/etc/passwd").is_err());
        assert!(device("/dev/null:rel").is_err());
        assert!(device("/dev/null:/a:/b:r").is_err());
        assert_eq!(
            label_file("# c\n\na=1\n b = x\nflag\n"),
            vec![
                ("a".into(), "1".into()),
                ("b ".into(), " x".into()),
                ("flag".into(), String::new())
            ]
        );
        assert_eq!(restart("no", true).unwrap(), "no");
        assert_eq!(restart("", false).unwrap(), "");
        let e = restart("always", true).unwrap_err().to_string();
        assert!(e.starts_with("the --rm option conflicts"), "{e}");
        let e = restart("on-failure:3", false).unwrap_err().to_string();
        assert!(e.starts_with("cairn does not support --restart ("), "{e}");
        assert!(restart("sometimes", false).is_err());
    }

    #[test]
    fn durations_and_healthchecks() {
        assert_eq!(duration_ns("30s"), Ok(30_000_000_000));
        assert_eq!(duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Ok(500_000_000));
        assert_eq!(duration_ns("0"), Ok(0));
        assert!(duration_ns("30").is_err());
        assert!(duration_ns("").is_err());
        let flags = HealthFlags {
            cmd: Some("curl -f localhost"),
            interval: "30s",
            timeout: "30s",
            start_period: "0s",
            retries: 3,
            none: false,
        };
        let h = healthcheck(&flags).unwrap().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!((h.interval, h.retries), (30_000_000_000, 3));
        let h = healthcheck(&HealthFlags {
            cmd: Some(r#"["/bin/check", "-q"]"#),
            ..flags.clone()
        })
        .unwrap()
        .unwrap();
        assert_eq!(h.test, ["CMD", "/bin/check", "-q"]);
        assert!(healthcheck(&HealthFlags {
            cmd: None,
            ..flags.clone()
        })
        .unwrap()
        .is_none());
        let h = healthcheck(&HealthFlags {
            none: true,
            ..flags.clone()
        })
        .unwrap()
        .unwrap();
        assert_eq!(h.test, ["NONE"]);
        assert!(healthcheck(&HealthFlags {
            timeout: "10ms",
            ..flags
        })
        .is_err());
    }
}
