//! What a cgroup used: CPU time, memory, processes, block I/O, OOM kills,
//! read from the v1 or v2 files (formats from the kernel's
//! `Documentation/admin-guide/cgroup-v1/` and `cgroup-v2.rst`).

use serde::{Deserialize, Serialize};

/// A cgroup's usage, in podman's terms (`podman stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU time used, nanoseconds (v1 `cpuacct.usage`, v2 `usage_usec`).
    pub cpu_ns: u64,
    /// Of which in user mode.
    pub cpu_user_ns: u64,
    /// Of which in the kernel.
    pub cpu_system_ns: u64,
    /// Memory used less the inactive page cache, bytes (podman's and
    /// docker's "usage": v1 `memory.usage_in_bytes` less
    /// `total_inactive_file`, v2 `memory.current` less `inactive_file`).
    pub memory_usage: u64,
    /// The memory limit; `None` = unlimited.
    pub memory_limit: Option<u64>,
    /// Processes and threads now (`pids.current`).
    pub pids: u64,
    /// `pids.max`; `None` = unlimited.
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices (v1 throttle `Read` totals, v2
    /// `rbytes`).
    pub blk_read: u64,
    /// Bytes written (v1 `Write`, v2 `wbytes`).
    pub blk_write: u64,
    /// Processes the OOM killer killed in it (`oom_kill`).
    pub oom_kills: u64,
}

/// The value of `key` in a flat keyed file (`key value` lines:
/// `memory.stat`, `cpu.stat`, `memory.events`, `memory.oom_control`,
/// `cpuacct.stat`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

/// A single number (`memory.current`, `cpuacct.usage`, `pids.current`).
pub(crate) fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A limit: `max` (v2) or a v1 value at or above 2^62 (the kernel shows
/// "unlimited" as the largest page multiple below 2^63) is `None`.
pub(crate) fn limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&v| v < 1 << 62)
}

/// Read and write byte totals of a v1 `blkio.throttle.io_service_bytes`
/// (`8:0 Read 4096` lines, a `Total N` line at the end).
pub(crate) fn blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_dev, op, n] = f[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => r = r.saturating_add(n),
                "Write" => w = w.saturating_add(n),
                _ => {}
            }
        }
    }
    (r, w)
}

/// Read and write byte totals of a v2 `io.stat` (`8:0 rbytes=N wbytes=N
/// rios=N ...` lines).
pub(crate) fn io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for l in text.lines() {
        for kv in l.split_whitespace().skip(1) {
            match kv.split_once('=') {
                Some(("rbytes", n)) => r = r.saturating_add(n.parse().unwrap_or(0)),
                Some(("wbytes", n)) => w = w.saturating_add(n.parse().unwrap_or(0)),
                _ => {}
            }
        }
    }
    (r, w)
}

/// Clock ticks (`USER_HZ`, 100 on every Linux architecture that matters)
/// of v1 `cpuacct.stat`, in nanoseconds.
pub(crate) fn ticks_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_formats() {
        // memory.stat (cgroup-v1/memory.rst, 5.2).
        let stat = "cache 4096\nrss 1048576\ninactive_file 4096\n\
                    hierarchical_memory_limit 33554432\ntotal_cache 8192\n\
                    total_rss 2097152\ntotal_inactive_file 8192\ntotal_active_file 0\n";
        assert_eq!(keyed(stat, "total_inactive_file"), Some(8192));
        assert_eq!(keyed(stat, "inactive_file"), Some(4096));
        assert_eq!(keyed(stat, "nope"), None);
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(2));
        // cpuacct.stat is in USER_HZ ticks.
        let cpu = "user 150\nsystem 25\n";
        assert_eq!(keyed(cpu, "user").map(ticks_ns), Some(1_500_000_000));
        let blk = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n\
                   8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 1\n\
                   8:16 Total 101\nTotal 12389\n";
        assert_eq!(blkio_v1(blk), (4196, 8193));
        assert_eq!(blkio_v1("Total 0\n"), (0, 0));
        assert_eq!(limit("9223372036854771712\n"), None);
        assert_eq!(limit("33554432\n"), Some(33_554_432));
        assert_eq!(number("123456789\n"), Some(123_456_789));
    }

    #[test]
    fn v2_formats() {
        // cpu.stat (cgroup-v2.rst, "CPU Interface Files").
        let cpu = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n\
                   nr_periods 10\nnr_throttled 5\nthrottled_usec 2000\n";
        assert_eq!(keyed(cpu, "usage_usec"), Some(1_500_000));
        assert_eq!(keyed(cpu, "system_usec"), Some(500_000));
        let io = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
                  8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";
        assert_eq!(
            io_stat(io),
            (1_459_200 + 90_430_464, 314_773_504 + 299_008_000)
        );
        assert_eq!(io_stat(""), (0, 0));
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("16\n"), Some(16));
    }
}
