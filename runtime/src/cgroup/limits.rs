//! Which file gets which value for each limit: podman's (runc's) mapping of
//! [`Resources`] onto cgroup v1 and v2 files, as a pure plan that
//! `Cgroup::create` and `Cgroup::update` carry out in order.

use super::{Resources, Version};
use crate::error::{Error, Result};

/// One write of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    /// The podman flag asking for it (for messages).
    pub flag: &'static str,
    /// The controller whose directory has the file.
    pub controller: &'static str,
    /// The file and its value; the first file that exists is written
    /// (`blkio.weight`, else `blkio.bfq.weight`).
    pub choices: Vec<(&'static str, String)>,
    /// Skipped when no choice exists (a write runc also makes only where
    /// the kernel has the file).
    pub optional: bool,
}

impl Write {
    fn one(flag: &'static str, controller: &'static str, file: &'static str, v: String) -> Write {
        Write {
            flag,
            controller,
            choices: vec![(file, v)],
            optional: false,
        }
    }
}

/// v2's `cpu.weight` for v1 `cpu.shares` (runc's
/// `ConvertCPUSharesToCgroupV2Value`): 2..=262144 onto 1..=10000.
pub(crate) fn cpu_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// v2's `io.weight` for a v1 blkio weight (runc's
/// `ConvertBlkIOToIOWeightValue`): 10..=1000 onto 1..=10000.
pub(crate) fn io_weight(blkio: u16) -> u64 {
    let w = u64::from(blkio.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// The controllers `r` needs.
pub(crate) fn controllers(r: &Resources) -> Vec<&'static str> {
    let mut c = Vec::new();
    if r.memory.is_some() || r.memory_swap.is_some() || r.memory_reservation.is_some() {
        c.push("memory");
    }
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        c.push("cpu");
    }
    if r.cpuset_cpus.is_some() || r.cpuset_mems.is_some() {
        c.push("cpuset");
    }
    if r.pids_limit.is_some() {
        c.push("pids");
    }
    if r.blkio_weight.is_some() {
        c.push("io");
    }
    c
}

/// The v1 name of a controller `controllers` names by its v2 name.
pub(crate) fn v1_name(controller: &str) -> &str {
    if controller == "io" {
        "blkio"
    } else {
        controller
    }
}

/// The writes for `r`, in the order they must happen. `current` reads a
/// file of the cgroup by name (the memory limit decides the v1 memory and
/// swap order; v2 `cpu.max` keeps the half an update does not change).
pub(crate) fn plan(
    version: Version,
    r: &Resources,
    current: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Write>> {
    if let (Some(m), Some(s)) = (r.memory, r.memory_swap) {
        if m >= 0 && s >= 0 && s < m {
            return Err(Error::Usage(format!(
                "--memory-swap {s} is below --memory {m}: it is memory plus swap, at least --memory (or -1 for unlimited swap)"
            )));
        }
    }
    let mut w = Vec::new();
    match version {
        Version::V1 => plan_v1(r, current, &mut w),
        Version::V2 => plan_v2(r, current, &mut w)?,
    }
    if let Some(c) = &r.cpuset_cpus {
        w.push(Write::one(
            "--cpuset-cpus",
            "cpuset",
            "cpuset.cpus",
            c.clone(),
        ));
    }
    if let Some(m) = &r.cpuset_mems {
        w.push(Write::one(
            "--cpuset-mems",
            "cpuset",
            "cpuset.mems",
            m.clone(),
        ));
    }
    if let Some(p) = r.pids_limit {
        let v = if p <= 0 { "max".into() } else { p.to_string() };
        w.push(Write::one("--pids-limit", "pids", "pids.max", v));
    }
    if let Some(b) = r.blkio_weight {
        // The BFQ weight first where it exists: it is the one that takes
        // effect (io.weight needs blk-iocost enabled; v1 blkio.weight
        // needs CFQ, gone since Linux 5.0), as runc and crun do.
        let choices = match version {
            Version::V1 => vec![
                ("blkio.weight", b.to_string()),
                ("blkio.bfq.weight", b.to_string()),
            ],
            Version::V2 => vec![
                ("io.bfq.weight", b.to_string()),
                ("io.weight", format!("default {}", io_weight(b))),
            ],
        };
        w.push(Write {
            flag: "--blkio-weight",
            controller: "io",
            choices,
            optional: false,
        });
    }
    Ok(w)
}

fn plan_v1(r: &Resources, current: &dyn Fn(&str) -> Option<String>, w: &mut Vec<Write>) {
    let memory = r
        .memory
        .map(|m| Write::one("--memory", "memory", "memory.limit_in_bytes", m.to_string()));
    let swap = r.memory_swap.map(|s| {
        Write::one(
            "--memory-swap",
            "memory",
            "memory.memsw.limit_in_bytes",
            s.to_string(),
        )
    });
    // The kernel keeps memory.limit <= memsw.limit at every step: when
    // the new memory+swap is above the current memory limit (raising),
    // memsw goes first; when lowering, memory first (runc's
    // setMemoryAndSwap).
    let swap_first = match (r.memory, r.memory_swap) {
        (Some(_), Some(s)) => {
            let cur = current("memory.limit_in_bytes")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            s < 0 || cur < s as u64
        }
        _ => false,
    };
    match (memory, swap) {
        (Some(m), Some(s)) if swap_first => w.extend([s, m]),
        (m, s) => {
            let unlimited = r.memory == Some(-1) && r.memory_swap.is_none();
            w.extend(m);
            w.extend(s);
            // Unlimited memory means unlimited swap too, where swap is
            // accounted.
            if unlimited {
                let mut s = Write::one(
                    "--memory",
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "-1".into(),
                );
                s.optional = true;
                w.push(s);
            }
        }
    }
    if let Some(v) = r.memory_reservation {
        w.push(Write::one(
            "--memory-reservation",
            "memory",
            "memory.soft_limit_in_bytes",
            v.to_string(),
        ));
    }
    if let Some(s) = r.cpu_shares {
        w.push(Write::one(
            "--cpu-shares",
            "cpu",
            "cpu.shares",
            s.to_string(),
        ));
    }
    if let Some(p) = r.cpu_period {
        w.push(Write::one(
            "--cpu-period",
            "cpu",
            "cpu.cfs_period_us",
            p.to_string(),
        ));
    }
    if let Some(q) = r.cpu_quota {
        let q = if q < 0 { -1 } else { q };
        w.push(Write::one(
            "--cpu-quota",
            "cpu",
            "cpu.cfs_quota_us",
            q.to_string(),
        ));
    }
}

fn plan_v2(
    r: &Resources,
    current: &dyn Fn(&str) -> Option<String>,
    w: &mut Vec<Write>,
) -> Result<()> {
    let max_or = |v: i64| {
        if v < 0 {
            "max".to_owned()
        } else {
            v.to_string()
        }
    };
    if let Some(m) = r.memory {
        w.push(Write::one("--memory", "memory", "memory.max", max_or(m)));
    }
    // memory.swap.max is swap alone: memory+swap less memory (runc's
    // ConvertMemorySwapToCgroupV2Value).
    match (r.memory, r.memory_swap) {
        (_, Some(s)) if s < 0 => w.push(Write::one(
            "--memory-swap",
            "memory",
            "memory.swap.max",
            "max".into(),
        )),
        (Some(m), Some(s)) if m >= 0 => w.push(Write::one(
            "--memory-swap",
            "memory",
            "memory.swap.max",
            (s - m).to_string(),
        )),
        (_, Some(s)) => {
            return Err(Error::Usage(format!(
                "--memory-swap {s} needs a --memory limit on cgroup v2 (memory.swap.max is memory+swap less memory)"
            )))
        }
        (Some(-1), None) => {
            let mut s = Write::one("--memory", "memory", "memory.swap.max", "max".into());
            s.optional = true;
            w.push(s);
        }
        _ => {}
    }
    if let Some(v) = r.memory_reservation {
        w.push(Write::one(
            "--memory-reservation",
            "memory",
            "memory.low",
            max_or(v),
        ));
    }
    if let Some(s) = r.cpu_shares {
        w.push(Write::one(
            "--cpu-shares",
            "cpu",
            "cpu.weight",
            cpu_weight(s).to_string(),
        ));
    }
    if r.cpu_quota.is_some() || r.cpu_period.is_some() {
        // What an update leaves alone stays as it is.
        let cur = current("cpu.max").unwrap_or_default();
        let mut cur = cur.split_whitespace();
        let (cur_quota, cur_period) = (cur.next(), cur.next());
        let quota = match r.cpu_quota {
            Some(q) => max_or(q),
            None => cur_quota.unwrap_or("max").to_owned(),
        };
        let period = match r.cpu_period {
            Some(p) => p,
            None => cur_period.and_then(|p| p.parse().ok()).unwrap_or(100_000),
        };
        let flag = if r.cpu_quota.is_some() {
            "--cpu-quota"
        } else {
            "--cpu-period"
        };
        w.push(Write::one(
            flag,
            "cpu",
            "cpu.max",
            format!("{quota} {period}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(w: &[Write]) -> Vec<(&str, &str)> {
        w.iter()
            .map(|w| (w.choices[0].0, w.choices[0].1.as_str()))
            .collect()
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(0), 1);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(500), 4950);
        assert_eq!(io_weight(1000), 10_000);
    }

    /// v1 memory and swap: raising writes memsw first, lowering memory
    /// first; -1 (unlimited swap) goes first.
    #[test]
    fn v1_memory_and_swap_order() {
        let r = Resources {
            memory: Some(256 << 20),
            memory_swap: Some(512 << 20),
            ..Default::default()
        };
        let cur = |v: &'static str| move |f: &str| (f == "memory.limit_in_bytes").then(|| v.into());
        let raise = plan(Version::V1, &r, &cur("134217728\n")).unwrap();
        assert_eq!(
            files(&raise),
            [
                ("memory.memsw.limit_in_bytes", "536870912"),
                ("memory.limit_in_bytes", "268435456")
            ]
        );
        let lower = plan(Version::V1, &r, &cur("1073741824\n")).unwrap();
        assert_eq!(
            files(&lower),
            [
                ("memory.limit_in_bytes", "268435456"),
                ("memory.memsw.limit_in_bytes", "536870912")
            ]
        );
        // A new cgroup (unlimited): lowering.
        let fresh = plan(Version::V1, &r, &cur("9223372036854771712\n")).unwrap();
        assert_eq!(fresh[0].choices[0].0, "memory.limit_in_bytes");
        let r = Resources {
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            ..Default::default()
        };
        let unl = plan(Version::V1, &r, &cur("9223372036854771712")).unwrap();
        assert_eq!(
            files(&unl),
            [
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "268435456")
            ]
        );
        // Unlimited memory: unlimited swap too, where it is accounted.
        let r = Resources {
            memory: Some(-1),
            ..Default::default()
        };
        let w = plan(Version::V1, &r, &none).unwrap();
        assert_eq!(
            files(&w),
            [
                ("memory.limit_in_bytes", "-1"),
                ("memory.memsw.limit_in_bytes", "-1")
            ]
        );
        assert!(w[1].optional && !w[0].optional);
    }

    #[test]
    fn swap_below_memory_is_refused() {
        let r = Resources {
            memory: Some(512),
            memory_swap: Some(256),
            ..Default::default()
        };
        for v in [Version::V1, Version::V2] {
            let e = plan(v, &r, &none).unwrap_err().to_string();
            assert!(e.contains("--memory-swap 256 is below --memory 512"), "{e}");
        }
        let r = Resources {
            memory_swap: Some(256),
            ..Default::default()
        };
        let e = plan(Version::V2, &r, &none).unwrap_err().to_string();
        assert!(e.contains("needs a --memory limit"), "{e}");
    }

    /// v2 cpu.max: an update of one half keeps the other.
    #[test]
    fn v2_cpu_max_keeps_the_other_half() {
        let cur = |f: &str| (f == "cpu.max").then(|| "20000 50000\n".to_owned());
        let q = Resources {
            cpu_quota: Some(30000),
            ..Default::default()
        };
        assert_eq!(
            files(&plan(Version::V2, &q, &cur).unwrap()),
            [("cpu.max", "30000 50000")]
        );
        assert_eq!(
            files(&plan(Version::V2, &q, &none).unwrap()),
            [("cpu.max", "30000 100000")]
        );
        let p = Resources {
            cpu_period: Some(200000),
            ..Default::default()
        };
        assert_eq!(
            files(&plan(Version::V2, &p, &cur).unwrap()),
            [("cpu.max", "20000 200000")]
        );
        assert_eq!(
            files(&plan(Version::V2, &p, &none).unwrap()),
            [("cpu.max", "max 200000")]
        );
        let unl = Resources {
            cpu_quota: Some(-1),
            cpu_period: Some(100000),
            ..Default::default()
        };
        assert_eq!(
            files(&plan(Version::V2, &unl, &none).unwrap()),
            [("cpu.max", "max 100000")]
        );
    }

    #[test]
    fn controllers_needed() {
        let r = Resources {
            memory_reservation: Some(1),
            cpu_period: Some(1),
            pids_limit: Some(1),
            blkio_weight: Some(10),
            cpuset_mems: Some("0".into()),
            ..Default::default()
        };
        assert_eq!(controllers(&r), ["memory", "cpu", "cpuset", "pids", "io"]);
        assert!(controllers(&Resources::default()).is_empty());
    }
}
