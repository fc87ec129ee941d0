//! Control groups: one container's processes in their own cgroup with the
//! limits asked for, on cgroup v2 or v1 (podman's `cgroupfs` manager).
//!
//! The vocabulary shared by the launcher and the monitor is here: the
//! [`Resources`] a container asks for, its [`DeviceRule`]s and the
//! [`CgroupSpec`] the monitor realises.
//!
//! The manager: [`Hierarchy`] finds the cgroup filesystems (v2, or the v1
//! controller mounts), [`Cgroup`] is one container's cgroup in all of them:
//! created with its limits (podman's and runc's mapping of each flag onto
//! the kernel's files), processes moved in, frozen, measured ([`Stats`]),
//! killed and removed.
//!
//! ```text
//! v2:  /sys/fs/cgroup/cairn/libpod-ID/{cgroup.procs, memory.max, pids.max, ...}
//! v1:  /sys/fs/cgroup/memory/cairn/libpod-ID/memory.limit_in_bytes
//!      /sys/fs/cgroup/pids/cairn/libpod-ID/pids.max   (one tree per mount)
//! ```

use serde::{Deserialize, Serialize};

mod devices;
mod devices_bpf;
mod hierarchy;
mod limits;
mod manager;
mod stats;

pub use hierarchy::{Hierarchy, Version};
pub(crate) use manager::validate_path;
pub use manager::Cgroup;
pub use stats::Stats;

/// Resource limits, podman's flags in kernel units. `None` leaves the
/// kernel's default (or, for an update, the current value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `--memory`: bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap, bytes; -1 unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`: a soft limit, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// `--cpu-shares`: relative weight (v1 `cpu.shares`, 2..=262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota` / `--cpus`: microseconds per period; -1 unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`: microseconds (default 100000 with a quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    /// `--cpuset-cpus`: a cpu list, `0-1,3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: a memory node list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`: the most processes and threads; -1 unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`: 10..=1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
}

impl Resources {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != Resources::default()
    }
}

/// One device cgroup rule: `TYPE MAJOR:MINOR ACCESS` as in
/// `devices.allow` and `--device-cgroup-rule` (`c 1:3 rwm`, `b *:* m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `a` (all), `b` (block) or `c` (character).
    pub kind: char,
    /// `None` = any (`*`).
    pub major: Option<u32>,
    /// `None` = any (`*`).
    pub minor: Option<u32>,
    /// Some of `r`, `w`, `m`, in that order.
    pub access: String,
}

/// The cgroup the monitor puts the container's first process in, before
/// the command runs. Its processes (and those `exec` adds) are the
/// container's; the monitor stays outside, as conmon does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupSpec {
    /// The cgroup's path from each hierarchy's root, absolute
    /// (`/cairn/libpod-ID`); missing directories are created.
    pub path: String,
    /// Limits written before the first process joins.
    #[serde(default)]
    pub resources: Resources,
    /// Device access: `None` = no rules (every device, as `--privileged`);
    /// `Some` = everything denied but these allow rules.
    #[serde(default)]
    pub devices: Option<Vec<DeviceRule>>,
}
