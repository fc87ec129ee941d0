//! A container's cgroup, podman's `cgroupfs` manager: the limits its flags
//! ask for, where its cgroup goes, and what `pause`, `unpause`, `stats`
//! and `update` do with it. The cgroup itself is made and removed by
//! `cairn-monitor` (see `cairn_runtime::cgroup`): created with the limits
//! before the command runs, removed when the container ends.
//!
//! Where: `<parent>/libpod-<id>` in every hierarchy, the parent being
//! `--cgroup-parent` or [`DEFAULT_PARENT`]; with `--cgroups split`, below
//! cairn's own cgroup; none with `--cgroups disabled`. Rootless, a cgroup
//! is used only where the hierarchy is v2 and the parent is delegated to
//! the user (writable); otherwise the limits are dropped with podman's
//! warning, and an error if the user insisted (`--cgroups enabled`).

use std::path::Path;

pub use cairn_runtime::cgroup::{
    Cgroup, CgroupSpec, DeviceRule, Hierarchy, Resources, Stats, Version,
};
use nix::sys::stat::SFlag;

use crate::container::{Config, Container, Containers};
use crate::error::{Error, Result};

/// Where containers' cgroups go unless `--cgroup-parent` says otherwise
/// (podman's cgroupfs manager uses `/libpod_parent`; cairn's own name
/// keeps the two engines' containers apart on one host).
pub const DEFAULT_PARENT: &str = "/cairn";

/// podman's default process limit (containers.conf `pids_limit`).
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// The smallest memory limit the kernel's accounting makes sense with
/// (crun and runc refuse less).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The resource flags as given (strings where podman takes units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFlags {
    /// `--memory`.
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
}

/// A size in bytes as podman's `--memory` takes it: a number with an
/// optional binary unit `b`, `k`, `m`, `g`, `t`, `p` (any case, an
/// optional `i` and `b` after it: `64m`, `1.5GiB`, `512kb`); -1 where the
/// flag allows "unlimited".
pub fn parse_size(flag: &str, s: &str, allow_unlimited: bool) -> Result<i64> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid value {s:?} for --{flag}: {why} (a size such as 512m or 2g{})",
            if allow_unlimited { ", or -1" } else { "" }
        ))
    };
    let t = s.trim();
    if allow_unlimited && t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad("unknown unit")),
    };
    if num.is_empty() || num.matches('.').count() > 1 {
        return Err(bad("not a number"));
    }
    let value: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as i64)
}

/// The limits `f` asks for, checked as podman checks them: `--cpus` is a
/// quota over a 100 ms period and excludes `--cpu-quota`/`--cpu-period`,
/// `--memory-swap` needs `--memory` and is at least it (default: twice
/// it), `--memory-reservation` is at most `--memory`.
pub fn resources(f: &ResourceFlags, pids_limit: Option<i64>) -> Result<Resources> {
    let mut r = Resources::default();
    if let Some(m) = &f.memory {
        let m = parse_size("memory", m, false)?;
        if m < MIN_MEMORY {
            return Err(Error::Invalid(format!(
                "--memory {m} bytes is below the minimum of 6MB: give at least 6m"
            )));
        }
        r.memory = Some(m);
    }
    if let Some(s) = &f.memory_swap {
        let s = parse_size("memory-swap", s, true)?;
        let Some(m) = r.memory else {
            return Err(Error::Invalid(
                "--memory-swap needs --memory: the swap limit is memory plus swap".into(),
            ));
        };
        if s != -1 && s < m {
            return Err(Error::Invalid(format!(
                "--memory-swap ({s} bytes) must be at least --memory ({m} bytes): it counts memory plus swap"
            )));
        }
        r.memory_swap = Some(s);
    } else if let Some(m) = r.memory {
        r.memory_swap = Some(m.saturating_mul(2));
    }
    if let Some(v) = &f.memory_reservation {
        let v = parse_size("memory-reservation", v, false)?;
        if r.memory.is_some_and(|m| v > m) {
            return Err(Error::Invalid(
                "--memory-reservation must be at most --memory".into(),
            ));
        }
        r.memory_reservation = Some(v);
    }
    if let Some(c) = &f.cpus {
        if f.cpu_quota.is_some() || f.cpu_period.is_some() {
            return Err(Error::Invalid(
                "--cpus cannot be set with --cpu-quota or --cpu-period: give one or the other"
                    .into(),
            ));
        }
        let n: f64 = c
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid value {c:?} for --cpus: a number of CPUs such as 0.5 or 2"
                ))
            })?;
        if n > 0.0 {
            let quota = (n * 100_000.0).round() as i64;
            if quota < 1000 {
                return Err(Error::Invalid(format!(
                    "--cpus {c} is below the minimum of 0.01"
                )));
            }
            r.cpu_quota = Some(quota);
            r.cpu_period = Some(100_000);
        }
    }
    if let Some(q) = f.cpu_quota {
        if q != -1 && q < 1000 {
            return Err(Error::Invalid(format!(
                "--cpu-quota {q} is below the minimum of 1000 microseconds (or -1 for none)"
            )));
        }
        r.cpu_quota = Some(q);
    }
    if let Some(p) = f.cpu_period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(Error::Invalid(format!(
                "--cpu-period {p} is outside 1000..1000000 microseconds"
            )));
        }
        r.cpu_period = Some(p);
    }
    if let Some(s) = f.cpu_shares {
        if s != 0 {
            r.cpu_shares = Some(s.clamp(2, 262_144));
        }
    }
    for (flag, v, out) in [
        ("cpuset-cpus", &f.cpuset_cpus, &mut r.cpuset_cpus),
        ("cpuset-mems", &f.cpuset_mems, &mut r.cpuset_mems),
    ] {
        if let Some(v) = v {
            check_list(flag, v)?;
            *out = Some(v.clone());
        }
    }
    if let Some(w) = f.blkio_weight {
        if w != 0 && !(10..=1000).contains(&w) {
            return Err(Error::Invalid(format!(
                "--blkio-weight {w} is outside 10..1000"
            )));
        }
        r.blkio_weight = (w != 0).then_some(w);
    }
    r.pids_limit = pids_limit.map(|p| if p <= 0 { -1 } else { p });
    Ok(r)
}

/// A cpu or memory node list: `0`, `0-3`, `0,2-3`.
fn check_list(flag: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            let a = ends.next().and_then(|a| a.parse::<u32>().ok());
            match (a, ends.next()) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b.parse::<u32>().is_ok_and(|b| b >= a),
                _ => false,
            }
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid value {v:?} for --{flag}: a list such as 0-2,4"
        )))
    }
}

/// The devices every container may use (podman's defaults): creating any
/// node (opening it is what counts), `/dev/null`, `zero`, `full`,
/// `random`, `urandom`, `tty`, `ptmx`, the ptys of devpts and
/// `/dev/net/tun`. Not the host's console (5:1): a container's
/// `/dev/console` is its own pty.
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS`, checked.
pub fn parse_device_rule(s: &str) -> Result<DeviceRule> {
    let rule: DeviceRule = s.parse().map_err(|e| {
        Error::Invalid(format!(
            "invalid --device-cgroup-rule {s:?}: {e} (a rule such as 'c 1:3 rwm' or 'b 8:* r')"
        ))
    })?;
    Ok(DeviceRule {
        allow: true,
        ..rule
    })
}

/// The device rules of `c`: `None` for a privileged container (every
/// device), else the defaults, each `--device` with its permissions and
/// each `--device-cgroup-rule`.
pub fn device_rules(c: &Config) -> Result<Option<Vec<DeviceRule>>> {
    if c.privileged {
        return Ok(None);
    }
    let mut rules = DEFAULT_DEVICE_RULES
        .iter()
        .map(|r| parse_device_rule(r))
        .collect::<Result<Vec<_>>>()?;
    for d in &c.devices {
        rules.push(device_rule(&d.host, &d.permissions)?);
    }
    for r in &c.device_cgroup_rules {
        rules.push(parse_device_rule(r)?);
    }
    Ok(Some(rules))
}

/// The allow rule for host node `path` with `rwm` permissions (all three
/// when empty).
fn device_rule(path: &Path, permissions: &str) -> Result<DeviceRule> {
    let st = nix::sys::stat::stat(path).map_err(|e| {
        Error::Invalid(format!(
            "--device {}: {e}: give an existing device node",
            path.display()
        ))
    })?;
    let kind = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFCHR => 'c',
        SFlag::S_IFBLK => 'b',
        _ => {
            return Err(Error::Invalid(format!(
                "--device {} is not a device node",
                path.display()
            )))
        }
    };
    let access: String = if permissions.is_empty() {
        "rwm".into()
    } else {
        "rwm".chars().filter(|c| permissions.contains(*c)).collect()
    };
    Ok(DeviceRule {
        allow: true,
        kind,
        major: Some(nix::sys::stat::major(st.st_rdev) as u32),
        minor: Some(nix::sys::stat::minor(st.st_rdev) as u32),
        access,
    })
}

/// Whether the host runs cgroup v2 alone (podman's "unified" mode).
pub fn unified() -> bool {
    matches!(Hierarchy::detect(), Ok(Some(h)) if matches!(h.version(), Version::V2))
}

/// The limits of `c` as the runtime takes them (its pids limit included).
pub fn config_resources(c: &Config) -> Resources {
    Resources {
        pids_limit: c.pids_limit.map(|p| if p <= 0 { -1 } else { p }),
        ..c.resources.clone()
    }
}

/// Where `c`'s cgroup goes and what it holds, or `None` (no cgroup) with
/// the warning to print, if any.
pub fn plan(c: &Config, rootless: bool) -> Result<(Option<CgroupSpec>, Option<String>)> {
    let mode = c.cgroups.as_str();
    let resources = config_resources(c);
    // A limit the user asked for (the default pids limit is not one).
    let asked = Resources {
        pids_limit: None,
        ..resources.clone()
    }
    .any()
        || c.pids_limit_given;
    if mode == "disabled" {
        return Ok((None, None));
    }
    let insist = mode == "enabled" && c.cgroups_given;
    let hierarchy = Hierarchy::detect().map_err(|e| Error::Refused(e.to_string()))?;
    let Some(h) = hierarchy else {
        return no_cgroup(
            asked,
            insist,
            "no cgroup filesystem is mounted on /sys/fs/cgroup",
        );
    };
    if rootless && matches!(h.version(), Version::V1) {
        return no_cgroup(
            asked,
            insist,
            "Resource limits are not supported and ignored on cgroups V1 rootless systems",
        );
    }
    let parent = match (mode, &c.cgroup_parent) {
        (_, Some(p)) => p.clone(),
        ("split", None) => h.own_path().map_err(|e| Error::Refused(e.to_string()))?,
        (_, None) if rootless => h.own_path().map_err(|e| Error::Refused(e.to_string()))?,
        _ => DEFAULT_PARENT.to_owned(),
    };
    if rootless && !h.writable(&parent) {
        return no_cgroup(
            asked,
            insist,
            &format!(
                "the cgroup {parent} is not delegated to this user, so resource limits are ignored"
            ),
        );
    }
    let mut resources = resources;
    let mut warning = None;
    // The default process limit needs a pids controller; without one it is
    // dropped (a limit the user asked for is kept: its creation fails
    // naming the controller).
    if !c.pids_limit_given && !h.controllers(&parent).iter().any(|x| x == "pids") {
        resources.pids_limit = None;
    }
    if rootless {
        // Only the controllers delegated to us; the rest are dropped with
        // a warning, as podman does.
        let have = h.controllers(&parent);
        let dropped = drop_missing(&mut resources, &have);
        if !dropped.is_empty() && asked {
            warning = Some(format!(
                "the {} controller{} not delegated to this user: {} ignored",
                dropped.join(", "),
                if dropped.len() == 1 { " is" } else { "s are" },
                if dropped.len() == 1 {
                    "its limit is"
                } else {
                    "their limits are"
                }
            ));
        }
    }
    let path = format!("{}/libpod-{}", parent.trim_end_matches('/'), c.id);
    Ok((
        Some(CgroupSpec {
            path,
            resources,
            devices: if rootless { None } else { device_rules(c)? },
        }),
        warning,
    ))
}

/// No cgroup: a warning when limits were asked for, an error when the user
/// insisted on cgroups.
fn no_cgroup(asked: bool, insist: bool, why: &str) -> Result<(Option<CgroupSpec>, Option<String>)> {
    if insist && asked {
        return Err(Error::Refused(format!(
            "--cgroups enabled: {why}; the limits asked for cannot be enforced (drop them or --cgroups enabled)"
        )));
    }
    Ok((None, asked.then(|| why.to_owned())))
}

/// Clears the limits whose controller is not in `have`; the names of the
/// controllers missing.
fn drop_missing(r: &mut Resources, have: &[String]) -> Vec<&'static str> {
    let has = |c: &str| have.iter().any(|h| h == c);
    let mut dropped = Vec::new();
    if !has("memory")
        && (r.memory.is_some() || r.memory_swap.is_some() || r.memory_reservation.is_some())
    {
        (r.memory, r.memory_swap, r.memory_reservation) = (None, None, None);
        dropped.push("memory");
    }
    if !has("cpu") && (r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some()) {
        (r.cpu_shares, r.cpu_quota, r.cpu_period) = (None, None, None);
        dropped.push("cpu");
    }
    if !has("cpuset") && (r.cpuset_cpus.is_some() || r.cpuset_mems.is_some()) {
        (r.cpuset_cpus, r.cpuset_mems) = (None, None);
        dropped.push("cpuset");
    }
    if !has("pids") && r.pids_limit.is_some() {
        r.pids_limit = None;
        dropped.push("pids");
    }
    if !has("io") && r.blkio_weight.is_some() {
        r.blkio_weight = None;
        dropped.push("io");
    }
    dropped
}

/// The cgroup of a running `c`, if it has one.
pub fn of(c: &Container) -> Result<Option<Cgroup>> {
    let Some(path) = &c.state.cgroup else {
        return Ok(None);
    };
    let Some(h) = Hierarchy::detect().map_err(|e| Error::Refused(e.to_string()))? else {
        return Ok(None);
    };
    let cg = Cgroup::new(&h, path).map_err(|e| Error::Refused(e.to_string()))?;
    Ok(cg.exists().then_some(cg))
}

/// The running container's cgroup, or an error saying why `verb` needs one.
fn require(c: &Container, verb: &str) -> Result<Cgroup> {
    of(c)?.ok_or_else(|| {
        Error::Refused(format!(
            "{verb} {}: the container has no cgroup ({}): {verb} needs one",
            c.config.name,
            if c.state.cgroup.is_none() {
                "it runs rootless on cgroup v1, with --cgroups disabled, or was started before cairn managed cgroups"
            } else {
                "it was removed"
            }
        ))
    })
}

/// `pause`: freezes every process of the running `c` (its freezer).
pub fn pause(c: &mut Container) -> Result<()> {
    let cg = require(c, "pause")?;
    cg.set_frozen(true)
        .map_err(|e| Error::Refused(e.to_string()))?;
    c.state.paused = true;
    c.save_state()
}

/// `unpause`: thaws them.
pub fn unpause(c: &mut Container) -> Result<()> {
    let cg = require(c, "unpause")?;
    cg.set_frozen(false)
        .map_err(|e| Error::Refused(e.to_string()))?;
    c.state.paused = false;
    c.save_state()
}

/// The counters of the running `c`'s cgroup.
pub fn stats(c: &Container) -> Result<Stats> {
    require(c, "stats")?
        .stats()
        .map_err(|e| Error::Refused(e.to_string()))
}

/// `update`: records the new limits in `c`'s config (they apply at every
/// later start) and, while it runs, writes them to its cgroup.
pub fn update(c: &mut Container, r: &Resources, pids_limit: Option<i64>) -> Result<()> {
    let merged = merge(&c.config.resources, r);
    if let Some(p) = pids_limit {
        c.config.pids_limit = Some(p);
        c.config.pids_limit_given = true;
    }
    if let Some(cg) = of(c)? {
        let mut now = r.clone();
        now.pids_limit = pids_limit.map(|p| if p <= 0 { -1 } else { p });
        cg.update(&now).map_err(|e| Error::Refused(e.to_string()))?;
    }
    c.config.resources = merged;
    c.save_config()
}

/// `old` with every limit `new` sets replaced.
fn merge(old: &Resources, new: &Resources) -> Resources {
    macro_rules! pick {
        ($($f:ident),*) => { Resources { $( $f: new.$f.clone().or_else(|| old.$f.clone()), )* } };
    }
    pick!(
        memory,
        memory_swap,
        memory_reservation,
        cpu_shares,
        cpu_quota,
        cpu_period,
        cpuset_cpus,
        cpuset_mems,
        pids_limit,
        blkio_weight
    )
}

/// Cgroups of this store's containers that no longer run: left by a
/// monitor killed before it could remove them. Their paths. A cgroup of
/// an id this store does not know is left alone: other stores (another
/// `--root`, other users) put theirs under the same parent.
pub fn strays(containers: &Containers) -> Vec<String> {
    let Ok(Some(h)) = Hierarchy::detect() else {
        return Vec::new();
    };
    let list = containers.list().unwrap_or_default();
    let mut parents: Vec<String> = vec![DEFAULT_PARENT.to_owned()];
    for c in &list {
        if let Some(p) = &c.state.cgroup {
            if let Some((parent, _)) = p.rsplit_once('/') {
                let parent = if parent.is_empty() { "/" } else { parent };
                if !parents.iter().any(|x| x == parent) {
                    parents.push(parent.to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    for parent in parents {
        for name in h.children(&parent) {
            let Some(id) = name.strip_prefix("libpod-") else {
                continue;
            };
            let path = format!("{}/{name}", parent.trim_end_matches('/'));
            let Some(owner) = list.iter().find(|c| c.config.id.to_string() == id) else {
                continue;
            };
            // A container being started or changed holds its lock (its
            // state may not name the cgroup yet): never a stray then.
            let live = Some(owner).is_some_and(|c| {
                let busy = cairn_fsutil::LockGuard::try_acquire(
                    &c.dir.join("lock"),
                    cairn_fsutil::LockMode::Exclusive,
                )
                .map_or(true, |g| g.is_none());
                let mut c = c.clone();
                // Its own cgroup while it runs, even when a start killed
                // before it saved its state did not record the path.
                busy || (c.reload().is_ok() && (c.pid_alive() || c.monitor_alive()))
            });
            if !live {
                out.push(path);
            }
        }
    }
    out
}

/// Removes the cgroup at `path` in every hierarchy, killing what is left
/// in it.
pub fn remove_path(path: &str) -> Result<()> {
    let Some(h) = Hierarchy::detect().map_err(|e| Error::Refused(e.to_string()))? else {
        return Ok(());
    };
    Cgroup::new(&h, path)
        .and_then(|cg| cg.remove())
        .map_err(|e| Error::Refused(e.to_string()))
}

/// Removes the [`strays`] (killing what is left in them); the paths that
/// could not be removed, with why.
pub fn remove_strays(containers: &Containers) -> Vec<(String, String)> {
    strays(containers)
        .into_iter()
        .filter_map(|p| remove_path(&p).err().map(|e| (p, e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let table: &[(&str, bool, Option<i64>)] = &[
            ("64m", false, Some(64 << 20)),
            ("64M", false, Some(64 << 20)),
            ("64mb", false, Some(64 << 20)),
            ("64MiB", false, Some(64 << 20)),
            ("1.5g", false, Some(3 << 29)),
            ("512", false, Some(512)),
            ("512b", false, Some(512)),
            ("2k", false, Some(2048)),
            ("1t", false, Some(1 << 40)),
            ("-1", true, Some(-1)),
            ("-1", false, None),
            ("", false, None),
            ("m", false, None),
            ("12x", false, None),
            ("1.2.3m", false, None),
            ("99999999999p", false, None),
        ];
        for &(s, unl, want) in table {
            assert_eq!(parse_size("memory", s, unl).ok(), want, "{s:?}");
        }
        let e = parse_size("memory", "12x", false).unwrap_err().to_string();
        assert!(e.contains("--memory") && e.contains("\"12x\""), "{e}");
    }

    fn flags(f: impl FnOnce(&mut ResourceFlags)) -> ResourceFlags {
        let mut r = ResourceFlags::default();
        f(&mut r);
        r
    }

    #[test]
    fn resource_rules() {
        let r = resources(&flags(|f| f.memory = Some("64m".into())), None).unwrap();
        assert_eq!((r.memory, r.memory_swap), (Some(64 << 20), Some(128 << 20)));
        let r = resources(
            &flags(|f| {
                f.memory = Some("64m".into());
                f.memory_swap = Some("-1".into());
            }),
            Some(0),
        )
        .unwrap();
        assert_eq!((r.memory_swap, r.pids_limit), (Some(-1), Some(-1)));
        let r = resources(&flags(|f| f.cpus = Some("0.5".into())), Some(64)).unwrap();
        assert_eq!(
            (r.cpu_quota, r.cpu_period, r.pids_limit),
            (Some(50_000), Some(100_000), Some(64))
        );
        let r = resources(&flags(|f| f.cpus = Some("0".into())), None).unwrap();
        assert!(!r.any());
        let r = resources(&flags(|f| f.cpu_shares = Some(1)), None).unwrap();
        assert_eq!(r.cpu_shares, Some(2));
        for (bad, want) in [
            (flags(|f| f.memory = Some("1m".into())), "minimum"),
            (
                flags(|f| f.memory_swap = Some("1g".into())),
                "needs --memory",
            ),
            (
                flags(|f| {
                    f.memory = Some("64m".into());
                    f.memory_swap = Some("32m".into());
                }),
                "at least --memory",
            ),
            (
                flags(|f| {
                    f.memory = Some("64m".into());
                    f.memory_reservation = Some("128m".into());
                }),
                "at most --memory",
            ),
            (
                flags(|f| {
                    f.cpus = Some("1".into());
                    f.cpu_quota = Some(50_000);
                }),
                "--cpus cannot",
            ),
            (flags(|f| f.cpus = Some("x".into())), "--cpus"),
            (flags(|f| f.cpus = Some("0.001".into())), "minimum"),
            (flags(|f| f.cpu_period = Some(10)), "--cpu-period"),
            (flags(|f| f.cpu_quota = Some(5)), "--cpu-quota"),
            (
                flags(|f| f.cpuset_cpus = Some("1-0".into())),
                "--cpuset-cpus",
            ),
            (flags(|f| f.cpuset_mems = Some("a".into())), "--cpuset-mems"),
            (flags(|f| f.blkio_weight = Some(5)), "--blkio-weight"),
        ] {
            let e = resources(&bad, None).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        let r = resources(
            &flags(|f| {
                f.cpuset_cpus = Some("0-1,3".into());
                f.blkio_weight = Some(500);
            }),
            None,
        )
        .unwrap();
        assert_eq!(
            (r.cpuset_cpus.as_deref(), r.blkio_weight),
            (Some("0-1,3"), Some(500))
        );
    }

    #[test]
    fn device_rules_parse_and_refuse() {
        for r in DEFAULT_DEVICE_RULES {
            assert_eq!(parse_device_rule(r).unwrap().to_string(), *r);
        }
        for bad in ["", "x 1:3 rwm", "c 1:3 rwx", "c 1 rwm", "c a:3 r"] {
            assert!(parse_device_rule(bad).is_err(), "{bad:?}");
        }
        let null = device_rule(Path::new("/dev/null"), "r").unwrap();
        assert_eq!(null.to_string(), "c 1:3 r");
        assert!(device_rule(Path::new("/etc/passwd"), "").is_err());
    }

    #[test]
    fn missing_controllers_are_dropped() {
        let mut r = Resources {
            memory: Some(1 << 30),
            memory_swap: Some(2 << 30),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids_limit: Some(10),
            ..Resources::default()
        };
        let dropped = drop_missing(&mut r, &["cpu".into()]);
        assert_eq!(dropped, ["memory", "pids"]);
        assert_eq!(
            r,
            Resources {
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                ..Resources::default()
            }
        );
    }
}
