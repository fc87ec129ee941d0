//! One cgroup in every hierarchy: created with its limits, processes
//! moved in, frozen, measured, killed and removed (podman's `cgroupfs`
//! manager, runc's `fs` and `fs2`).
//!
//! Every write is one `open(O_WRONLY|O_CLOEXEC|O_NOFOLLOW)` and one
//! `write(2)` of the whole value: cgroupfs takes a value per write.
//! Crashes: a cgroup created and left by a killed monitor stays until
//! something removes it (the engine sweeps with `Hierarchy::children`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::hierarchy::under;
use super::limits::{self, Write};
use super::stats::{self, Stats};
use super::{devices, CgroupSpec, Hierarchy, Resources, Version};
use crate::error::{Context as _, Error, Result};

/// How long freezing, thawing, killing and removing may take.
const BOUND: Duration = Duration::from_secs(5);

/// A cgroup: one path in every hierarchy of a [`Hierarchy`].
#[derive(Debug, Clone)]
pub struct Cgroup {
    h: Hierarchy,
    path: String,
}

/// Write `value` to the cgroup file `path` in one write. (`O_TRUNC`
/// means nothing to cgroupfs; it makes a fake tree's file show the last
/// value.)
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    let op = format!("write {value:?} to");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .ctx(&op, path)?;
    f.write_all(value.as_bytes()).ctx(&op, path)
}

fn read_file(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Checks a cgroup path: absolute, not `/`, no empty, `.` or `..`
/// component, no NUL, at most 4096 bytes.
pub(crate) fn validate_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Usage(format!("cgroup path {path:?}: {why}")));
    if path.len() > 4096 {
        return bad("longer than 4096 bytes");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    let Some(rel) = path.strip_prefix('/') else {
        return bad("not absolute");
    };
    if rel.is_empty() {
        return bad("the root cgroup is not a container's");
    }
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("has an empty, \".\" or \"..\" component");
    }
    Ok(())
}

fn sleep_a_little(round: u32) {
    std::thread::sleep(Duration::from_millis(u64::from(round.min(10)) + 1));
}

impl Cgroup {
    /// The cgroup at `path` (absolute, from each hierarchy's root).
    pub fn new(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        validate_path(path)?;
        Ok(Cgroup {
            h: h.clone(),
            path: path.to_owned(),
        })
    }

    /// Its path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether its directory exists in some hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.is_dir())
    }

    /// Its directory in each hierarchy.
    fn dirs(&self) -> Vec<PathBuf> {
        self.h
            .bases()
            .iter()
            .map(|b| under(b, &self.path))
            .collect()
    }

    /// Its directory on cgroup v2 (the one hierarchy); `None` on v1.
    pub(crate) fn v2_dir(&self) -> Option<PathBuf> {
        match self.h.version() {
            super::Version::V2 => self.dirs().into_iter().next(),
            super::Version::V1 => None,
        }
    }

    /// Its directory in the hierarchy of `controller`.
    fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        self.h.base_of(controller).map(|b| under(b, &self.path))
    }

    /// Creates it: `mkdir -p` in every hierarchy, the controllers enabled
    /// (v2), the limits and device rules written. A limit whose controller
    /// is missing is an error before anything is created. Idempotent; a
    /// cgroup this call created is removed again if a later step fails.
    pub fn create(&self, spec: &CgroupSpec) -> Result<()> {
        let r = &spec.resources;
        let needed = limits::controllers(r);
        let existed = self.exists();
        match self.h.version() {
            Version::V1 => {
                for c in &needed {
                    self.v1_controller(c, flag_of(r, c))?;
                }
                if spec.devices.is_some() {
                    self.v1_controller("devices", "--device")?;
                }
            }
            Version::V2 => self.v2_check_available(&needed, r)?,
        }
        let done = self.make_dirs(&needed).and_then(|()| {
            self.apply(r)?;
            self.apply_devices(spec)
        });
        if done.is_err() && !existed {
            let _ = self.rmdir_all();
        }
        done
    }

    /// Writes changed limits (podman update): only the `Some` fields,
    /// mapped as for [`Cgroup::create`].
    pub fn update(&self, r: &Resources) -> Result<()> {
        if !self.exists() {
            return Err(Error::Usage(format!(
                "cgroup {}: does not exist (is the container running?)",
                self.path
            )));
        }
        for c in limits::controllers(r) {
            match self.h.version() {
                Version::V1 => self.v1_controller(c, flag_of(r, c))?,
                Version::V2 => {
                    let dir = under(&self.h.bases()[0], &self.path);
                    let have = read_file(&dir.join("cgroup.controllers")).unwrap_or_default();
                    if !have.split_whitespace().any(|h| h == c) {
                        return Err(missing_v2(flag_of(r, c), c, &dir));
                    }
                }
            }
        }
        self.apply(r)
    }

    /// v1: the controller is mounted.
    fn v1_controller(&self, controller: &str, flag: &str) -> Result<()> {
        let c = limits::v1_name(controller);
        if self.h.base_of(c).is_some() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{flag} needs the {c} controller, which is not mounted (no cgroup v1 hierarchy with {c} in /proc/self/mountinfo): mount it, or drop {flag}"
        )))
    }

    /// v2: every needed controller is available where our first new level
    /// (or the leaf, if it exists) is created.
    fn v2_check_available(&self, needed: &[&'static str], r: &Resources) -> Result<()> {
        let root = &self.h.bases()[0];
        let (start, _) = self.v2_levels(root);
        let parent = start.parent().unwrap_or(root);
        let have = read_file(&parent.join("cgroup.controllers")).unwrap_or_default();
        for c in needed {
            if !have.split_whitespace().any(|h| h == *c) {
                return Err(missing_v2(flag_of(r, c), c, parent));
            }
        }
        Ok(())
    }

    /// v2: every level of the path from the root down, and the first one
    /// that does not exist (the leaf if all do).
    fn v2_levels(&self, root: &Path) -> (PathBuf, Vec<PathBuf>) {
        let mut levels = Vec::new();
        let mut d = root.to_path_buf();
        for c in self.path.trim_start_matches('/').split('/') {
            d = d.join(c);
            levels.push(d.clone());
        }
        let first = levels
            .iter()
            .find(|l| !l.exists())
            .or(levels.last())
            .cloned()
            .unwrap_or_else(|| root.to_path_buf());
        (first, levels)
    }

    /// `mkdir -p` in every hierarchy. v1 cpuset: every level gets its
    /// parent's `cpuset.cpus` and `cpuset.mems` while empty (a cpuset
    /// without them takes no process). v2: `needed` enabled in the
    /// `cgroup.subtree_control` of the parent of the first new level and of
    /// every level below it.
    fn make_dirs(&self, needed: &[&str]) -> Result<()> {
        let mkdir = |d: &Path| match std::fs::create_dir(d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(Error::sys("create the cgroup", d, e)
                    .hint("needs root, or a cgroup tree delegated to us"))
            }
            _ => Ok(()),
        };
        match self.h.version() {
            Version::V2 => {
                let root = self.h.bases()[0].clone();
                let (first, levels) = self.v2_levels(&root);
                let mut enabling = false;
                for l in &levels {
                    let parent = l.parent().unwrap_or(&root);
                    enabling |= *l == first;
                    if enabling && !needed.is_empty() {
                        enable(parent, needed)?;
                    }
                    mkdir(l)?;
                }
            }
            Version::V1 => {
                for m in self.h.mounts() {
                    let cpuset = m.controllers.iter().any(|c| c == "cpuset");
                    let mut d = m.dir.clone();
                    for c in self.path.trim_start_matches('/').split('/') {
                        let parent = d.clone();
                        d = d.join(c);
                        mkdir(&d)?;
                        if cpuset {
                            for f in ["cpuset.cpus", "cpuset.mems"] {
                                let mine = read_file(&d.join(f)).unwrap_or_default();
                                if mine.trim().is_empty() {
                                    let theirs = read_file(&parent.join(f)).unwrap_or_default();
                                    write_file(&d.join(f), theirs.trim())?;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Carry out the plan for `r`.
    fn apply(&self, r: &Resources) -> Result<()> {
        let version = self.h.version();
        let current = |file: &str| {
            let controller = file.split('.').next().unwrap_or("");
            read_file(&self.dir_of(controller)?.join(file))
        };
        for w in limits::plan(version, r, &current)? {
            self.write_one(&w)?;
        }
        Ok(())
    }

    fn write_one(&self, w: &Write) -> Result<()> {
        let controller = match self.h.version() {
            Version::V1 => limits::v1_name(w.controller),
            Version::V2 => w.controller,
        };
        let Some(dir) = self.dir_of(controller) else {
            return Err(Error::Usage(format!(
                "{} needs the {controller} controller, which is not mounted",
                w.flag
            )));
        };
        let Some((file, value)) = w.choices.iter().find(|(f, _)| dir.join(f).exists()) else {
            if w.optional {
                return Ok(());
            }
            let names: Vec<&str> = w.choices.iter().map(|(f, _)| *f).collect();
            let why = match names[0] {
                "memory.memsw.limit_in_bytes" => {
                    ": swap accounting is off (boot with swapaccount=1), drop --memory-swap"
                }
                "blkio.weight" | "io.bfq.weight" => {
                    ": the weight needs the BFQ I/O scheduler on the devices, drop --blkio-weight"
                }
                _ => "",
            };
            return Err(Error::Usage(format!(
                "{} needs {}, missing in {}{why}",
                w.flag,
                names.join(" or "),
                dir.display()
            )));
        };
        write_file(&dir.join(file), value)
    }

    fn apply_devices(&self, spec: &CgroupSpec) -> Result<()> {
        let Some(rules) = &spec.devices else {
            return Ok(());
        };
        match self.h.version() {
            Version::V1 => {
                let dir = self
                    .dir_of("devices")
                    .ok_or_else(|| Error::Usage("--device needs the devices controller".into()))?;
                for (file, value) in devices::v1_writes(rules) {
                    write_file(&dir.join(file), &value)?;
                }
                Ok(())
            }
            Version::V2 => {
                devices::attach_v2_devices(&under(&self.h.bases()[0], &self.path), rules)
            }
        }
    }

    /// Moves `pid` in, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            write_file(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in it (every hierarchy, sorted, once each), as host
    /// pids.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for d in self.dirs() {
            let f = d.join("cgroup.procs");
            match std::fs::read_to_string(&f) {
                Ok(t) => pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::sys("read", &f, e)),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// The processes in it and in every cgroup below it (kill, remove).
    fn procs_below(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for d in self.dirs() {
            for dir in tree(&d) {
                if let Some(t) = read_file(&dir.join("cgroup.procs")) {
                    pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The freezer's files: where to write, what to write, and how to read
    /// the state.
    fn freezer(&self) -> Result<PathBuf> {
        match self.h.version() {
            Version::V1 => self
                .dir_of("freezer")
                .map(|d| d.join("freezer.state"))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "pause {}: the freezer controller is not mounted",
                        self.path
                    ))
                }),
            Version::V2 => {
                let f = under(&self.h.bases()[0], &self.path).join("cgroup.freeze");
                if f.exists() {
                    Ok(f)
                } else {
                    Err(Error::Usage(format!(
                        "pause {}: {} is missing (the cgroup v2 freezer needs Linux 5.2)",
                        self.path,
                        f.display()
                    )))
                }
            }
        }
    }

    /// Freeze or thaw, waiting (at most 5 s) until the kernel reports it
    /// done (v1 `freezer.state` FROZEN or THAWED; v2 `frozen` in
    /// `cgroup.events`). A freeze that does not finish is undone.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let file = self.freezer()?;
        let (v1, v2) = if frozen {
            ("FROZEN", "1")
        } else {
            ("THAWED", "0")
        };
        let deadline = Instant::now() + BOUND;
        let mut round = 0;
        loop {
            // v1: a FREEZING cgroup is asked again (runc does: a task that
            // forked meanwhile may have missed the first request).
            let once = self.h.version() == Version::V2;
            if round == 0 || !once {
                write_file(&file, if once { v2 } else { v1 })?;
            }
            if self.frozen_state() == Some(frozen) {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    let _ = write_file(&file, if once { "0" } else { "THAWED" });
                }
                return Err(Error::Usage(format!(
                    "{} {} did not finish within {} s ({}): a process may be stuck in the kernel (state D)",
                    if frozen { "freezing" } else { "thawing" },
                    self.path,
                    BOUND.as_secs(),
                    file.display()
                )));
            }
            sleep_a_little(round);
            round += 1;
        }
    }

    /// Frozen (true), thawed (false), or freezing / unknown (None).
    fn frozen_state(&self) -> Option<bool> {
        match self.h.version() {
            Version::V1 => {
                let s = read_file(&self.dir_of("freezer")?.join("freezer.state"))?;
                match s.trim() {
                    "FROZEN" => Some(true),
                    "THAWED" => Some(false),
                    _ => None,
                }
            }
            Version::V2 => {
                let ev = read_file(&under(&self.h.bases()[0], &self.path).join("cgroup.events"))?;
                stats::keyed(&ev, "frozen").map(|f| f == 1)
            }
        }
    }

    /// Whether it is frozen.
    pub fn frozen(&self) -> bool {
        self.frozen_state() == Some(true)
    }

    /// Its usage; files it lacks count as zero (or unlimited).
    pub fn stats(&self) -> Result<Stats> {
        if !self.exists() {
            return Err(Error::Usage(format!(
                "cgroup {}: does not exist",
                self.path
            )));
        }
        let read = |controller: &str, file: &str| -> String {
            self.dir_of(controller)
                .and_then(|d| read_file(&d.join(file)))
                .unwrap_or_default()
        };
        let mut s = Stats::default();
        match self.h.version() {
            Version::V1 => {
                s.cpu_ns = stats::number(&read("cpuacct", "cpuacct.usage")).unwrap_or(0);
                let (user, sys) = (
                    stats::number(&read("cpuacct", "cpuacct.usage_user")),
                    stats::number(&read("cpuacct", "cpuacct.usage_sys")),
                );
                let ticks = read("cpuacct", "cpuacct.stat");
                s.cpu_user_ns = user
                    .or_else(|| stats::keyed(&ticks, "user").map(stats::ticks_ns))
                    .unwrap_or(0);
                s.cpu_system_ns = sys
                    .or_else(|| stats::keyed(&ticks, "system").map(stats::ticks_ns))
                    .unwrap_or(0);
                let usage = stats::number(&read("memory", "memory.usage_in_bytes")).unwrap_or(0);
                let inactive = stats::keyed(&read("memory", "memory.stat"), "total_inactive_file")
                    .unwrap_or(0);
                s.memory_usage = usage.saturating_sub(inactive);
                s.memory_limit = stats::limit(&read("memory", "memory.limit_in_bytes"));
                let mut blk = read("blkio", "blkio.throttle.io_service_bytes_recursive");
                if blk.is_empty() {
                    blk = read("blkio", "blkio.throttle.io_service_bytes");
                }
                (s.blk_read, s.blk_write) = stats::blkio_v1(&blk);
                s.oom_kills =
                    stats::keyed(&read("memory", "memory.oom_control"), "oom_kill").unwrap_or(0);
            }
            Version::V2 => {
                let cpu = read("cpu", "cpu.stat");
                let us = |k: &str| stats::keyed(&cpu, k).unwrap_or(0).saturating_mul(1000);
                (s.cpu_ns, s.cpu_user_ns, s.cpu_system_ns) =
                    (us("usage_usec"), us("user_usec"), us("system_usec"));
                let usage = stats::number(&read("memory", "memory.current")).unwrap_or(0);
                let inactive =
                    stats::keyed(&read("memory", "memory.stat"), "inactive_file").unwrap_or(0);
                s.memory_usage = usage.saturating_sub(inactive);
                s.memory_limit = stats::limit(&read("memory", "memory.max"));
                (s.blk_read, s.blk_write) = stats::io_stat(&read("io", "io.stat"));
                s.oom_kills =
                    stats::keyed(&read("memory", "memory.events"), "oom_kill").unwrap_or(0);
            }
        }
        s.pids = stats::number(&read("pids", "pids.current")).unwrap_or(0);
        s.pids_limit = stats::limit(&read("pids", "pids.max"));
        Ok(s)
    }

    /// Whether the OOM killer killed a process in it (v1
    /// `memory.oom_control`, v2 `memory.events`: `oom_kill N` with N > 0);
    /// false when unknown.
    pub fn oom_killed(&self) -> bool {
        let (file, controller) = match self.h.version() {
            Version::V1 => ("memory.oom_control", "memory"),
            Version::V2 => ("memory.events", "memory"),
        };
        self.dir_of(controller)
            .and_then(|d| read_file(&d.join(file)))
            .and_then(|t| stats::keyed(&t, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// SIGKILL every process in it and below it (v2 `cgroup.kill` where
    /// the kernel has it), again until none is left, for at most 5 s. A
    /// frozen v1 cgroup is thawed so the signals take effect.
    pub fn kill(&self) -> Result<()> {
        let cgroup_kill = match self.h.version() {
            Version::V2 => Some(under(&self.h.bases()[0], &self.path).join("cgroup.kill"))
                .filter(|f| f.exists()),
            Version::V1 => None,
        };
        let deadline = Instant::now() + BOUND;
        let mut round = 0;
        loop {
            let pids = self.procs_below();
            if pids.is_empty() {
                return Ok(());
            }
            match &cgroup_kill {
                Some(f) => write_file(f, "1")?,
                None => {
                    for p in &pids {
                        match kill(Pid::from_raw(*p), Signal::SIGKILL) {
                            Ok(()) | Err(Errno::ESRCH) => {}
                            Err(e) => {
                                return Err(Error::sys(format!("kill pid {p} of"), &self.path, e))
                            }
                        }
                    }
                }
            }
            if round == 0 && self.h.version() == Version::V1 && self.frozen_state() != Some(false) {
                if let Ok(f) = self.freezer() {
                    let _ = write_file(&f, "THAWED");
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Usage(format!(
                    "cgroup {}: processes {pids:?} still there {} s after SIGKILL",
                    self.path,
                    BOUND.as_secs()
                )));
            }
            sleep_a_little(round);
            round += 1;
        }
    }

    /// Thaws, kills, waits until empty (at most 5 s), then removes its
    /// directory (and any below it) in every hierarchy; its parents stay.
    /// A cgroup that does not exist is removed already.
    pub fn remove(&self) -> Result<()> {
        if !self.exists() {
            return Ok(());
        }
        if self.frozen_state() != Some(false) && self.freezer().is_ok() {
            let _ = self.set_frozen(false);
        }
        self.kill()?;
        self.rmdir_all()
    }

    /// rmdir of the leaf (after the cgroups below it) in every hierarchy,
    /// retried while busy (a process still exiting).
    fn rmdir_all(&self) -> Result<()> {
        let deadline = Instant::now() + BOUND;
        for d in self.dirs() {
            // Deepest first.
            let mut dirs = tree(&d);
            dirs.reverse();
            for dir in dirs {
                let mut round = 0;
                loop {
                    match std::fs::remove_dir(&dir) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e)
                            if e.raw_os_error() == Some(libc::EBUSY)
                                && Instant::now() < deadline =>
                        {
                            sleep_a_little(round);
                            round += 1;
                        }
                        Err(e) => {
                            return Err(Error::sys("remove the cgroup", &dir, e)
                                .hint("a process may still be in it"))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `dir` and every directory below it, parents before children.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
        out.push(d);
    }
    // Parents before children: sort by depth.
    out.sort_by_key(|p| p.components().count());
    out
}

/// v2: enable `needed` in `dir`'s `cgroup.subtree_control` (those not yet
/// enabled).
fn enable(dir: &Path, needed: &[&str]) -> Result<()> {
    let f = dir.join("cgroup.subtree_control");
    let on = read_file(&f).unwrap_or_default();
    let add: Vec<String> = needed
        .iter()
        .filter(|c| !on.split_whitespace().any(|o| o == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if add.is_empty() {
        return Ok(());
    }
    write_file(&f, &add.join(" ")).map_err(|e| match e.errno() {
        Some(libc::EBUSY) => e.hint("a cgroup with processes of its own cannot enable controllers for its children: choose a parent cgroup without processes"),
        Some(libc::ENOENT) => e.hint("a controller is not available there: its parent must enable it first"),
        _ => e,
    })
}

fn missing_v2(flag: &str, controller: &str, dir: &Path) -> Error {
    Error::Usage(format!(
        "{flag} needs the {controller} controller, which is not available in {}: enable it in the parent's cgroup.subtree_control (rootless: have systemd delegate it), or drop {flag}",
        dir.join("cgroup.controllers").display()
    ))
}

/// The flag that needs `controller` in `r` (for messages).
fn flag_of(r: &Resources, controller: &str) -> &'static str {
    match controller {
        "memory" if r.memory.is_some() => "--memory",
        "memory" if r.memory_swap.is_some() => "--memory-swap",
        "memory" => "--memory-reservation",
        "cpu" if r.cpu_quota.is_some() => "--cpu-quota",
        "cpu" if r.cpu_shares.is_some() => "--cpu-shares",
        "cpu" => "--cpu-period",
        "cpuset" if r.cpuset_cpus.is_some() => "--cpuset-cpus",
        "cpuset" => "--cpuset-mems",
        "pids" => "--pids-limit",
        _ => "--blkio-weight",
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
