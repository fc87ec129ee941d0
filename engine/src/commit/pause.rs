//! `commit --pause`: the container's cgroup is frozen for the commit and
//! thawed after (unless `pause` had frozen it already). A container
//! without a cgroup (rootless on cgroup v1, `--cgroups disabled`) has its
//! processes stopped with SIGSTOP and continued with SIGCONT after, as
//! `kill -STOP` would. The processes are
//! the container's PID 1 and its descendants (found through the `PPid` of
//! every process in /proc, which anyone may read); orphans in the
//! container's PID namespace are reparented to its PID 1, so that covers
//! them, but not a process `exec` started (a child of its helper outside).
//! A process made between the listing and the signal runs on: the walk is
//! repeated until it finds none new.

use std::collections::{BTreeMap, BTreeSet};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::container::{Container, Status};
use crate::error::{Error, Result};

/// The container's processes, stopped until this is dropped.
#[derive(Debug)]
pub struct Paused {
    pids: Vec<i32>,
    /// The cgroup frozen here, thawed on drop.
    frozen: Option<cairn_runtime::cgroup::Cgroup>,
}

/// Every process's parent, from /proc/PID/stat (field 4).
fn parents() -> BTreeMap<i32, i32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parens: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and its descendants.
fn descendants(root: i32) -> BTreeSet<i32> {
    let parents = parents();
    let mut set = BTreeSet::from([root]);
    loop {
        let before = set.len();
        for (&pid, ppid) in &parents {
            if set.contains(ppid) {
                set.insert(pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

impl Paused {
    /// Stops `c`'s processes (a container that is not running has none).
    pub fn pause(c: &Container) -> Result<Paused> {
        let mut p = Paused {
            pids: Vec::new(),
            frozen: None,
        };
        if c.live().status != Status::Running || c.state.pid <= 0 {
            return Ok(p);
        }
        if let Some(cg) = crate::container::cgroups::of(c)? {
            cg.set_frozen(true).map_err(|e| {
                Error::Refused(format!(
                    "commit --pause: freeze container {}: {e}: commit without --pause",
                    c.config.name
                ))
            })?;
            p.frozen = Some(cg);
            return Ok(p);
        }
        let mut stopped = BTreeSet::new();
        loop {
            let now = descendants(c.state.pid);
            let new: Vec<i32> = now.difference(&stopped).copied().collect();
            if new.is_empty() {
                return Ok(p);
            }
            for pid in new {
                match crate::userns::kill(Pid::from_raw(pid), Signal::SIGSTOP) {
                    Ok(()) => p.pids.push(pid),
                    Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => {
                        return Err(Error::Refused(format!(
                            "commit --pause: stop process {pid} of container {}: {e}: commit without --pause",
                            c.config.name
                        )))
                    }
                }
                stopped.insert(pid);
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(cg) = &self.frozen {
            if let Err(e) = cg.set_frozen(false) {
                tracing::warn!("commit --pause: {e}");
            }
        }
        for &pid in &self.pids {
            let _ = crate::userns::kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
    }
}
