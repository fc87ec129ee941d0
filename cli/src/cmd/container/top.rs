//! `top`: the container's processes only, as it sees them, with podman's
//! (psgo's) format descriptors, read from the host's /proc: the processes
//! in the container's pid namespace, their pids and parents as numbered
//! there (`NSpid`), user and group names from the container's own
//! /etc/passwd and /etc/group. Arguments that are not descriptors go to
//! ps(1) run inside the container, as podman does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;

use cairn_engine::container::runtime::{self, ExecOptions};
use cairn_engine::container::{files, Container, Containers};

use super::args::TopArgs;
use super::{running_pid, usage};
use crate::context::Context;
use crate::exit;

/// psgo's default: `ps -ef`'s columns.
const DEFAULT: &[&str] = &[
    "user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args",
];

/// psgo's descriptors (podman 4.3): normal name, AIX code, header.
const DESCRIPTORS: &[(&str, &str, &str)] = &[
    ("pcpu", "%C", "%CPU"),
    ("group", "%G", "GROUP"),
    ("groups", "", "GROUPS"),
    ("ppid", "%P", "PPID"),
    ("user", "%U", "USER"),
    ("args", "%a", "COMMAND"),
    ("comm", "%c", "COMMAND"),
    ("rgroup", "%g", "RGROUP"),
    ("nice", "%n", "NI"),
    ("pid", "%p", "PID"),
    ("pgid", "%r", "PGID"),
    ("etime", "%t", "ELAPSED"),
    ("ruser", "%u", "RUSER"),
    ("time", "%x", "TIME"),
    ("tty", "%y", "TTY"),
    ("vsz", "%z", "VSZ"),
    ("capamb", "", "AMBIENT CAPS"),
    ("capinh", "", "INHERITED CAPS"),
    ("capprm", "", "PERMITTED CAPS"),
    ("capeff", "", "EFFECTIVE CAPS"),
    ("capbnd", "", "BOUNDING CAPS"),
    ("seccomp", "", "SECCOMP"),
    ("label", "", "LABEL"),
    ("hpid", "", "HPID"),
    ("huser", "", "HUSER"),
    ("hgroup", "", "HGROUP"),
    ("hgroups", "", "HGROUPS"),
    ("rss", "", "RSS"),
    ("state", "", "STATE"),
    ("stime", "", "STIME"),
];

/// Capability names by bit (capability(7)), as psgo prints them.
const CAPS: &[&str] = &cairn_engine::caps::NAMES;

/// The descriptors `args` name (each argument split at commas), or `None`
/// when one is not a descriptor: then the arguments are ps(1)'s.
fn descriptors(
    args: &[String],
) -> Option<Vec<&'static (&'static str, &'static str, &'static str)>> {
    let words: Vec<&str> = if args.is_empty() {
        DEFAULT.to_vec()
    } else {
        args.iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .collect()
    };
    words
        .iter()
        .map(|w| {
            DESCRIPTORS
                .iter()
                .find(|(n, code, _)| *w == *n || (!code.is_empty() && *w == *code))
        })
        .collect()
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `337.392424ms`, `4m58.37s`, `1h0m0s`.
pub(crate) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, digits: u32| -> String {
        let unit = 10u64.pow(digits);
        let (whole, rest) = (v / unit, v % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let f = format!("{rest:0w$}", w = digits as usize);
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 6));
    }
    let secs = u / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = frac(u % 60_000_000_000, 9);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// One process as /proc shows it from the host.
#[derive(Debug, Default)]
struct Proc {
    host_pid: i32,
    /// `NSpid`: the host's first, the container's last.
    ns_pids: Vec<i32>,
    status: BTreeMap<String, String>,
    comm: String,
    /// `/proc/PID/stat` fields after `(comm)`: state is [0].
    stat: Vec<String>,
    cmdline: Vec<u8>,
}

impl Proc {
    fn read(pid: i32) -> Option<Proc> {
        let dir = format!("/proc/{pid}");
        let status: BTreeMap<String, String> = std::fs::read_to_string(format!("{dir}/status"))
            .ok()?
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        Some(Proc {
            host_pid: pid,
            ns_pids: status
                .get("NSpid")
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            comm: stat[open + 1..close].to_owned(),
            stat: stat[close + 1..]
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            cmdline: std::fs::read(format!("{dir}/cmdline")).unwrap_or_default(),
            status,
        })
    }

    /// stat(5) field N (1-based, as the man page numbers them; N ≥ 3).
    fn stat_field(&self, n: usize) -> &str {
        self.stat.get(n - 3).map_or("", String::as_str)
    }

    fn stat_u64(&self, n: usize) -> u64 {
        self.stat_field(n).parse().unwrap_or(0)
    }

    /// The pid as the container numbers it.
    fn pid(&self) -> i32 {
        self.ns_pids.last().copied().unwrap_or(self.host_pid)
    }

    /// `Uid:`/`Gid:` field i (0 real, 1 effective).
    fn id(&self, key: &str, i: usize) -> u32 {
        self.status
            .get(key)
            .and_then(|v| v.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// What the descriptors need besides one process.
struct Env {
    /// Host pid → container pid, for the container's processes.
    in_ns: BTreeMap<i32, i32>,
    /// The container's /etc/passwd and /etc/group: id → name.
    users: BTreeMap<u32, String>,
    groups: BTreeMap<u32, String>,
    /// The host's.
    host_users: BTreeMap<u32, String>,
    host_groups: BTreeMap<u32, String>,
    /// The container's user namespace maps: (inside, outside, count).
    uid_map: Vec<(u32, u32, u32)>,
    gid_map: Vec<(u32, u32, u32)>,
    ticks: u64,
    boot_ns: i64,
    now_ns: i64,
}

/// `passwd` or `group` text: id → name (the first entry of an id wins).
fn id_names(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((id, name.to_owned()))
        })
        .rev()
        .collect()
}

/// The container's `rel` (its `/etc/passwd` or `/etc/group`), read as
/// every file a container controls is ([`files::read_in_container`]:
/// symlinks resolved inside its root, regular files only, capped); what
/// cannot be read leaves ids unnamed, with a warning.
fn container_names(pid: i32, rel: &str) -> BTreeMap<u32, String> {
    match files::read_in_container(pid, rel) {
        Ok(text) => id_names(&text.unwrap_or_default()),
        Err(e) => {
            tracing::warn!("top: ids are shown as numbers: {e}");
            BTreeMap::new()
        }
    }
}

/// The host's own `path`.
fn host_names(path: &str) -> BTreeMap<u32, String> {
    id_names(&std::fs::read_to_string(path).unwrap_or_default())
}

fn id_map(path: &str) -> Vec<(u32, u32, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

/// A host id as the container's user namespace sees it (the overflow id
/// 65534 when unmapped).
fn inside(map: &[(u32, u32, u32)], host: u32) -> u32 {
    map.iter()
        .find(|(_, out, n)| host >= *out && host - out < *n)
        .map_or(65534, |(inn, out, _)| inn + (host - out))
}

fn name_of(names: &BTreeMap<u32, String>, id: u32) -> String {
    names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

fn caps(hex: &str) -> String {
    let Ok(mask) = u64::from_str_radix(hex, 16) else {
        return String::new();
    };
    let full = (1u64 << CAPS.len()) - 1;
    if mask & full == full {
        return "full".into();
    }
    let mut names: Vec<&str> = (0..CAPS.len())
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| CAPS[b])
        .collect();
    if names.is_empty() {
        return "none".into();
    }
    names.sort_unstable();
    names.join(",")
}

fn tty(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 0 => "tty".into(),
        5 if minor == 1 => "console".into(),
        _ => "?".into(),
    }
}

impl Env {
    fn start_ns(&self, p: &Proc) -> i64 {
        let ticks = p.stat_u64(22);
        self.boot_ns + (ticks as i64) * 1_000_000_000 / self.ticks.max(1) as i64
    }

    fn cpu_secs(&self, p: &Proc) -> u64 {
        (p.stat_u64(14) + p.stat_u64(15)) / self.ticks.max(1)
    }

    fn field(&self, p: &Proc, d: &str) -> String {
        let uid = |i| inside(&self.uid_map, p.id("Uid", i));
        let gid = |i| inside(&self.gid_map, p.id("Gid", i));
        match d {
            "pid" => p.pid().to_string(),
            "ppid" => {
                let host_ppid: i32 = p.stat_field(4).parse().unwrap_or(0);
                self.in_ns.get(&host_ppid).copied().unwrap_or(0).to_string()
            }
            "pgid" => {
                let host: i32 = p.stat_field(5).parse().unwrap_or(0);
                self.in_ns.get(&host).copied().unwrap_or(0).to_string()
            }
            "user" => name_of(&self.users, uid(1)),
            "ruser" => name_of(&self.users, uid(0)),
            "group" => name_of(&self.groups, gid(1)),
            "rgroup" => name_of(&self.groups, gid(0)),
            "groups" | "hgroups" => p
                .status
                .get("Groups")
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse::<u32>().ok())
                        .map(|g| {
                            if d == "groups" {
                                name_of(&self.groups, inside(&self.gid_map, g))
                            } else {
                                name_of(&self.host_groups, g)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            "args" => {
                if p.cmdline.is_empty() {
                    format!("[{}]", p.comm)
                } else {
                    // psgo splits at NULs, the last one included, and joins
                    // with spaces: a trailing space, as podman prints it.
                    String::from_utf8_lossy(&p.cmdline).replace('\0', " ")
                }
            }
            "comm" => p.comm.clone(),
            "nice" => p.stat_field(19).to_owned(),
            "etime" => go_duration(self.now_ns - self.start_ns(p)),
            "time" => go_duration(self.cpu_secs(p) as i64 * 1_000_000_000),
            "pcpu" => {
                let elapsed = (self.now_ns - self.start_ns(p)) as f64 / 1e9;
                let pcpu = if elapsed > 0.0 {
                    100.0 * self.cpu_secs(p) as f64 / elapsed
                } else {
                    0.0
                };
                format!("{pcpu:.3}")
            }
            "tty" => tty(p.stat_u64(7)),
            "vsz" => (p.stat_u64(23) / 1024).to_string(),
            "rss" => p
                .status
                .get("VmRSS")
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("0")
                .to_owned(),
            "state" => p
                .status
                .get("State")
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
                .to_owned(),
            "stime" => {
                let secs = self.start_ns(p) / 1_000_000_000;
                chrono::DateTime::from_timestamp(secs, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
                    .unwrap_or_default()
            }
            "capamb" => caps(p.status.get("CapAmb").map_or("", String::as_str)),
            "capinh" => caps(p.status.get("CapInh").map_or("", String::as_str)),
            "capprm" => caps(p.status.get("CapPrm").map_or("", String::as_str)),
            "capeff" => caps(p.status.get("CapEff").map_or("", String::as_str)),
            "capbnd" => caps(p.status.get("CapBnd").map_or("", String::as_str)),
            "seccomp" => match p.status.get("Seccomp").map(String::as_str) {
                Some("0") => "disabled",
                Some("1") => "strict",
                Some("2") => "filter",
                _ => "?",
            }
            .into(),
            // No SELinux label without SELinux (psgo: "?").
            "label" => std::fs::read_to_string(format!("/proc/{}/attr/current", p.host_pid))
                .ok()
                .map(|l| l.trim_end_matches(['\0', '\n']).to_owned())
                .filter(|l| !l.is_empty() && std::path::Path::new("/sys/fs/selinux").exists())
                .unwrap_or_else(|| "?".into()),
            "hpid" => p.host_pid.to_string(),
            "huser" => name_of(&self.host_users, p.id("Uid", 1)),
            "hgroup" => name_of(&self.host_groups, p.id("Gid", 1)),
            _ => String::new(),
        }
    }
}

/// Go's tabwriter as podman sets it up (minwidth 12, padding 2): every
/// column but the last padded to its widest cell plus two.
fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count() + 2);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}", w = widths[i].max(12));
            }
        }
        out.push('\n');
    }
    out
}

/// The container's processes (host pids, ascending container pid): those
/// of its cgroup when it has one (exec'd commands and, with `--pid host`,
/// every process it started), else those of PID 1's pid namespace.
fn processes(pid: i32, cgroup: Option<&[i32]>) -> anyhow::Result<Vec<Proc>> {
    if let Some(pids) = cgroup {
        let mut procs: Vec<Proc> = pids.iter().filter_map(|&p| Proc::read(p)).collect();
        procs.sort_by_key(Proc::pid);
        return Ok(procs);
    }
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .map_err(|e| usage(format!("read the pid namespace of {pid}: {e}")))?;
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc")
        .map_err(|e| usage(format!("read /proc: {e}")))?
        .flatten()
    {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{p}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        // Gone meanwhile: skipped, as psgo does.
        procs.extend(Proc::read(p));
    }
    procs.sort_by_key(Proc::pid);
    Ok(procs)
}

fn boot_ns() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0)
        * 1_000_000_000
}

/// The psgo table for `c` (PID 1 is `pid`).
fn table(pid: i32, cgroup: Option<&[i32]>, want: &[&(&str, &str, &str)]) -> anyhow::Result<String> {
    let procs = processes(pid, cgroup)?;
    let env = Env {
        in_ns: procs.iter().map(|p| (p.host_pid, p.pid())).collect(),
        users: container_names(pid, "/etc/passwd"),
        groups: container_names(pid, "/etc/group"),
        host_users: host_names("/etc/passwd"),
        host_groups: host_names("/etc/group"),
        uid_map: id_map(&format!("/proc/{pid}/uid_map")),
        gid_map: id_map(&format!("/proc/{pid}/gid_map")),
        ticks: nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(100),
        boot_ns: boot_ns(),
        now_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
    };
    let mut rows = vec![want.iter().map(|d| d.2.to_owned()).collect::<Vec<_>>()];
    for p in &procs {
        rows.push(want.iter().map(|d| env.field(p, d.0)).collect());
    }
    Ok(tabwrite(&rows))
}

/// ps(1) inside the container, for arguments that are not descriptors.
fn ps_in_container(c: &Container, pid: i32, args: &[String]) -> anyhow::Result<u8> {
    let (mut cmd, _sealed) = runtime::exec_command(
        c,
        pid,
        &ExecOptions {
            user: Some("0:0"),
            workdir: Some("/"),
            env: &[],
            privileged: false,
        },
    )?;
    let words: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    cmd.arg("--").arg("ps").args(&words);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| {
            usage(format!(
                "executing ps(1) in the container: start cairn-enter: {e}"
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().lines().last().unwrap_or("").trim();
        return Err(exit::with_code(
            exit::ENGINE,
            format!(
                "executing ps(1) in the container: {}",
                if why.is_empty() {
                    format!("ps exited with status {}", out.status.code().unwrap_or(-1))
                } else {
                    why.to_owned()
                }
            ),
        ));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(0)
}

/// `cairn top`.
pub fn top(ctx: &Context, a: TopArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let (c, rest) = if a.latest {
        let last = containers
            .list()?
            .pop()
            .ok_or_else(|| usage("no containers to act on: --latest found none"))?;
        (last, a.args.as_slice())
    } else {
        let Some((name, rest)) = a.args.split_first() else {
            return Err(usage(
                "you must provide the name or id of a running container",
            ));
        };
        let c = containers.try_find(name)?.ok_or_else(|| {
            usage(format!(
                "unable to look up requested container: {}",
                super::no_such(name)
            ))
        })?;
        (c, rest)
    };
    let pid = running_pid(&c).map_err(|_| {
        usage(format!(
            "top can only be used on running containers: container state improper (container {} is {})",
            c.config.name,
            c.live().status.as_str()
        ))
    })?;
    match descriptors(rest) {
        Some(want) => {
            let in_cgroup = cairn_engine::container::cgroups::of(&c)
                .ok()
                .flatten()
                .and_then(|cg| cg.procs().ok())
                .filter(|p| !p.is_empty());
            print!("{}", table(pid, in_cgroup.as_deref(), &want)?);
            Ok(0)
        }
        None => ps_in_container(&c, pid, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(337_392_424), "337.392424ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(298_373_692_784), "4m58.373692784s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(5_000_000_000), "5s");
    }

    #[test]
    fn descriptor_words() {
        let names = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            descriptors(&a).map(|d| d.iter().map(|d| d.2).collect::<Vec<_>>())
        };
        assert_eq!(
            names(&[]).unwrap(),
            ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
        );
        assert_eq!(names(&["pid,comm"]).unwrap(), ["PID", "COMMAND"]);
        assert_eq!(names(&["%p", "hpid"]).unwrap(), ["PID", "HPID"]);
        // Not descriptors: ps(1)'s options, run in the container.
        assert_eq!(names(&["-eo", "pid,comm"]), None);
        assert_eq!(names(&["pid comm"]), None);
    }

    #[test]
    fn podmans_columns() {
        let rows = vec![
            vec!["USER".into(), "ELAPSED".into(), "COMMAND".into()],
            vec!["root".into(), "337.392424ms".into(), "sleep 1000 ".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "USER        ELAPSED       COMMAND\nroot        337.392424ms  sleep 1000 \n"
        );
        assert_eq!(caps("0"), "none");
        assert_eq!(caps("000001ffffffffff"), "full");
        assert_eq!(caps("00000000a80425fb").split(',').count(), 14);
        assert_eq!(tty(0), "?");
        assert_eq!(tty((136 << 8) | 3), "pts/3");
        assert_eq!(inside(&[(0, 100000, 65536)], 100000), 0);
        assert_eq!(inside(&[(0, 100000, 65536)], 5), 65534);
    }
}
