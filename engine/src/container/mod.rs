//! Containers on disk: what a container is (its [`Config`]), what happened
//! to it (its [`State`]), and the directory that holds them all.
//!
//! ```text
//! <root>/containers/<64 hex id>/
//!   config.json     the container's settings, written once by create (rename changes the name)
//!   state.json      start/stop bookkeeping: monitor and container pids with their start times
//!   exit.json       written by the monitor when the container's PID 1 ends
//!   ctr.log         podman k8s-file log, appended across restarts
//!   upper/ work/    overlayfs upper and work directories (the container's changes)
//!   rootfs/         mount point of the container's root, inside its own mount namespace
//!   hostname hosts resolv.conf containerenv   files bound into the container
//!   monitor.json mount.json pivot.json        the helper specs of the last start
//!   network.json    the network spec of the last start (what a later command tears
//!                   down if the monitor could not): see crate::network::setup
//!   netns network-status.json network.pid slirp4netns.sock   that network's files
//!   lock            flock: one state change at a time
//!   monitor.lock    flock held by the running cairn-monitor (start locks it and
//!                   hands it over), holding the monitor's pid: a start killed
//!                   before it recorded the monitor cannot lose it
//! <root>/locks/containers   flock: names are unique (create, rename, rm)
//! ```
//!
//! Crash rules: a container directory appears by `rename(2)` of a complete
//! `containers/.tmp-*` directory, so a crash during create leaves a temp
//! directory that the next create sweeps. `config.json` and `state.json` are
//! replaced by rename. Whether a container runs is never taken from
//! `state.json` alone: the recorded pid must be alive with the recorded start
//! time and boot id (pid reuse and reboots cannot fool it), and `exit.json`
//! wins over everything.

pub mod cgroups;
pub mod config;
pub mod create;
pub mod files;
pub mod logs;
pub mod runtime;
pub mod seccomp;
pub mod security;
pub mod spec;

/// The option vocabulary of `-v`, `--mount` and `--tmpfs`: the runtime's
/// one parser, which the helpers' `--bind` and `--tmpfs` use too.
pub mod mount_options {
    pub use cairn_runtime::protocol::{
        parse_bind_option, parse_tmpfs_option, BindOption, OptionError, TmpfsOption,
    };
}

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use cairn_fsutil::{Durability, LockGuard, LockMode};
use cairn_store::StoreDir;
use serde::{Deserialize, Serialize};

/// What the monitor writes in `exit.json` when the container's PID 1 ends
/// (the runtime's protocol type).
use cairn_runtime::protocol::ExitRecord;
pub use config::{Config, ContainerId};

use crate::error::{Context as _, Error, Result};

/// Where containers live.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
    locks: PathBuf,
}

/// One container: its directory, settings and recorded state.
#[derive(Debug, Clone)]
pub struct Container {
    /// `containers/<id>`.
    pub dir: PathBuf,
    /// Settings from create.
    pub config: Config,
    /// Bookkeeping from start/stop.
    pub state: State,
}

/// What start and stop record. The live status is [`Container::status`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Set by start; cleared never (a stopped container keeps its last run).
    #[serde(default)]
    pub started_at: Option<String>,
    /// Host pid of the container's PID 1 for the last start.
    #[serde(default)]
    pub pid: i32,
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22).
    #[serde(default)]
    pub pid_start: u64,
    /// The monitor's pid and start time.
    #[serde(default)]
    pub monitor_pid: i32,
    /// The monitor's start time.
    #[serde(default)]
    pub monitor_start: u64,
    /// `/proc/sys/kernel/random/boot_id` at start.
    #[serde(default)]
    pub boot_id: String,
    /// Set when a start failed (the command was not found, a mount failed).
    #[serde(default)]
    pub error: Option<String>,
    /// Exit code of a failed start.
    #[serde(default)]
    pub start_exit_code: Option<i32>,
    /// Time of a failed start.
    #[serde(default)]
    pub failed_at: Option<String>,
    /// Set while `stop` is waiting for the container to end.
    #[serde(default)]
    pub stopping: bool,
    /// How many times the container was started.
    #[serde(default)]
    pub starts: u32,
    /// The cgroup of the last start (its path in every hierarchy), if it
    /// got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Frozen by `pause`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// The status an exit record means.
fn exited(rec: &ExitRecord) -> Live {
    Live {
        status: Status::Exited,
        exit_code: rec.exit_code,
        // Past i64 (year 2262) the time is out of range anyway.
        finished_at: Some(rfc3339_ns(
            i64::try_from(rec.finished_ns).unwrap_or(i64::MAX),
        )),
        error: None,
    }
}

/// A container's live status, podman's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Never started.
    Created,
    /// PID 1 is alive.
    Running,
    /// `stop` is waiting for it.
    Stopping,
    /// It ran and ended (or its start failed).
    Exited,
    /// PID 1 is alive and frozen by `pause`.
    Paused,
}

impl Status {
    /// podman's lower-case name (`.State.Status`).
    /// PID 1 is alive: running, stopping or paused.
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Stopping | Status::Paused)
    }

    /// podman's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Exited => "exited",
            Status::Paused => "paused",
        }
    }
}

/// The status and exit details computed from state, exit record and /proc.
#[derive(Debug, Clone)]
pub struct Live {
    /// The status.
    pub status: Status,
    /// Exit code of the last run (0 while running or never run).
    pub exit_code: i32,
    /// RFC 3339 finish time of the last run.
    pub finished_at: Option<String>,
    /// Why the last run's end is unknown or the start failed.
    pub error: Option<String>,
}

impl Containers {
    /// The containers of the store at `root`.
    pub fn new(root: &Path) -> Containers {
        Containers {
            dir: StoreDir::Containers.under(root),
            locks: StoreDir::Locks.under(root),
        }
    }

    /// `containers/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every container, oldest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        for e in entries {
            let e = e.with_context(|| format!("read {}", self.dir.display()))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_id(name) {
                continue;
            }
            match Container::load(&e.path()) {
                Ok(c) => out.push(c),
                // Removed between readdir and load by a concurrent rm (or
                // a directory that never was a container: no config).
                Err(err) if !e.path().join("config.json").exists() => drop(err),
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.config.created.cmp(&b.config.created));
        Ok(out)
    }

    /// A container by full id, name, or unique id prefix, as podman resolves it.
    pub fn find(&self, spec: &str) -> Result<Container> {
        self.try_find(spec)?
            .ok_or_else(|| Error::NoSuchContainer(spec.to_owned()))
    }

    /// Like [`find`](Self::find) but `None` when nothing matches.
    pub fn try_find(&self, spec: &str) -> Result<Option<Container>> {
        if spec.is_empty() {
            return Ok(None);
        }
        if is_id(spec) {
            let dir = self.dir.join(spec);
            if dir.join("config.json").exists() {
                return Container::load(&dir).map(Some);
            }
        }
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.config.name == spec) {
            return Ok(Some(c.clone()));
        }
        if spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            let spec = spec.to_ascii_lowercase();
            let matches: Vec<&Container> = all
                .iter()
                .filter(|c| c.config.id.starts_with(&spec))
                .collect();
            match matches.len() {
                0 => {}
                1 => return Ok(Some(matches[0].clone())),
                n => return Err(Error::Refused(format!(
                    "more than one result for container \"{spec}\": {n} containers match; give more of the id"
                ))),
            }
        }
        Ok(None)
    }

    /// Takes the names lock (create, rename, rm).
    pub fn lock_names(&self) -> Result<LockGuard> {
        lock_file(&self.locks.join("containers"))
    }

    /// Creates the container directory for `config` atomically; the name must
    /// be free. `prepare` fills the temp directory (files bound in later).
    pub fn create(
        &self,
        config: &Config,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Container> {
        fs::create_dir_all(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        let _names = self.lock_names()?;
        if let Some(other) = self.list()?.iter().find(|c| c.config.name == config.name) {
            return Err(Error::Refused(format!(
                "creating container storage: the container name \"{}\" is already in use by {}. You have to remove that container to be able to reuse that name: that name is already in use",
                config.name, other.config.id
            )));
        }
        self.sweep_temp();
        // Cgroups that killed monitors left behind.
        for (path, why) in cgroups::remove_strays(self) {
            tracing::warn!("remove the stray cgroup {path}: {why}");
        }
        let tmp = self.dir.join(format!(".tmp-{}", config.id));
        let _ = fs::remove_dir_all(&tmp);
        let build = || -> Result<()> {
            fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            for d in ["upper", "work", "rootfs"] {
                fs::create_dir(tmp.join(d))
                    .with_context(|| format!("create {}", tmp.join(d).display()))?;
            }
            prepare(&tmp)?;
            write_json_durable(&tmp.join("config.json"), config)?;
            write_json(&tmp.join("state.json"), &State::default())?;
            Ok(())
        };
        if let Err(e) = build() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let dir = self.dir.join(&config.id);
        fs::rename(&tmp, &dir).with_context(|| format!("rename into {}", dir.display()))?;
        Container::load(&dir)
    }

    /// Removes temp directories of creates and removals that died (a live
    /// create holds the names lock; a live rm deletes its `.rm-` itself,
    /// and a second deleter does no harm).
    pub fn sweep_temp(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".rm-") {
                let _ = remove_tree(&e.path());
            }
        }
    }

    /// Image manifest digests that containers use.
    pub fn images_in_use(&self) -> Result<std::collections::BTreeSet<cairn_store::Digest>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|c| c.config.image.manifest)
            .collect())
    }
}

impl Container {
    /// Reads `dir`'s config and state.
    pub fn load(dir: &Path) -> Result<Container> {
        let config: Config = match read_json(&dir.join("config.json")) {
            Ok(c) => c,
            // Removed (renamed away) by a concurrent rm or prune.
            Err(_) if !dir.join("config.json").exists() => {
                let id = dir.file_name().unwrap_or_default().to_string_lossy();
                return Err(Error::NoSuchContainer(id.into_owned()));
            }
            Err(e) => return Err(e),
        };
        let state: State = match read_json(&dir.join("state.json")) {
            Ok(s) => s,
            Err(_) if !dir.join("state.json").exists() => State::default(),
            Err(e) => return Err(e),
        };
        let mut c = Container {
            dir: dir.to_owned(),
            config,
            state,
        };
        c.adopt_interrupted_start();
        Ok(c)
    }

    /// A `start` killed after spawning the monitor recorded the monitor but
    /// not the container: the monitor's pid file has it. In memory only;
    /// the next state change saves it.
    fn adopt_interrupted_start(&mut self) {
        if !self.monitor_alive() {
            // Killed before it saved the monitor's pid: the monitor holds
            // monitor.lock and wrote its pid there.
            let Some(pid) = self.monitor_holding_lock() else {
                return;
            };
            let Some(start) = proc_start_time(pid) else {
                return;
            };
            self.state.monitor_pid = pid;
            self.state.monitor_start = start;
            self.state.boot_id = boot_id();
            self.state.started_at = None;
            self.state.error = None;
            self.state.pid = 0;
        }
        if self.state.started_at.is_some() || self.state.error.is_some() {
            return;
        }
        let Some(pid) = fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        if let Some(start) = proc_start_time(pid) {
            self.state.pid = pid;
            self.state.pid_start = start;
            self.state.started_at = Some(now_rfc3339());
        }
    }

    /// The pid of the live monitor holding `monitor.lock`, if one does and
    /// has written its pid there.
    pub(crate) fn monitor_holding_lock(&self) -> Option<i32> {
        let f = File::open(self.dir.join("monitor.lock")).ok()?;
        // Shared: two readers never mistake each other for a monitor.
        match f.try_lock_shared() {
            Ok(()) => None,
            Err(fs::TryLockError::WouldBlock) => fs::read_to_string(self.dir.join("monitor.lock"))
                .ok()?
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 0 && proc_start_time(*p).is_some()),
            Err(fs::TryLockError::Error(_)) => None,
        }
    }

    /// Whether a start is under way (the monitor runs, the container's pid
    /// is not known yet).
    pub fn starting(&self) -> bool {
        self.state.started_at.is_none()
            && self.state.error.is_none()
            && self.monitor_alive()
            && self.exit_record().is_none()
    }

    /// Re-reads the state.
    pub fn reload(&mut self) -> Result<()> {
        *self = Container::load(&self.dir)?;
        Ok(())
    }

    /// Takes the container's lock (state changes).
    pub fn lock(&self) -> Result<LockGuard> {
        // Never creates the directory: a container removed meanwhile stays
        // removed (its lock cannot be had, so nothing is done to it).
        if !self.dir.is_dir() {
            return Err(Error::NoSuchContainer(self.config.name.clone()));
        }
        match lock_file(&self.dir.join("lock")) {
            // Removed (renamed away) while we waited for the lock: as the
            // reload after it would say.
            Err(Error::Path(e)) if e.is_not_found() && !self.dir.is_dir() => {
                Err(Error::NoSuchContainer(self.config.id.to_string()))
            }
            r => r,
        }
    }

    /// Replaces state.json.
    pub(crate) fn save_state(&self) -> Result<()> {
        write_json(&self.dir.join("state.json"), &self.state)
    }

    /// Replaces config.json.
    pub(crate) fn save_config(&self) -> Result<()> {
        write_json_durable(&self.dir.join("config.json"), &self.config)
    }

    /// The monitor's record of the last run's end, if it ended.
    pub(crate) fn exit_record(&self) -> Option<ExitRecord> {
        let bytes = fs::read(self.dir.join("exit.json")).ok()?;
        ExitRecord::parse(&bytes).ok()
    }

    /// Whether the last run's cgroup saw an OOM kill (its exit record says).
    pub fn oom_killed(&self) -> bool {
        self.exit_record().is_some_and(|r| r.oom_killed)
    }

    /// Whether the recorded PID 1 is alive (same start time, same boot).
    pub(crate) fn pid_alive(&self) -> bool {
        self.state.pid > 0
            && self.state.boot_id == boot_id()
            && proc_start_time(self.state.pid) == Some(self.state.pid_start)
    }

    /// Whether the recorded monitor is alive.
    pub(crate) fn monitor_alive(&self) -> bool {
        self.state.monitor_pid > 0
            && self.state.boot_id == boot_id()
            && proc_start_time(self.state.monitor_pid) == Some(self.state.monitor_start)
    }

    /// The live status, from state.json, exit.json and /proc.
    pub fn live(&self) -> Live {
        let s = &self.state;
        if s.started_at.is_none() && s.error.is_none() {
            return Live {
                status: Status::Created,
                exit_code: 0,
                finished_at: None,
                error: None,
            };
        }
        if let Some(err) = &s.error {
            // A start that failed (missing command or workdir, a runtime
            // error) leaves the container created, as podman does: it never
            // ran, so it has no exit code.
            return Live {
                status: Status::Created,
                exit_code: 0,
                finished_at: None,
                error: Some(err.clone()),
            };
        }
        if let Some(rec) = self.exit_record() {
            return exited(&rec);
        }
        if self.pid_alive() {
            return Live {
                status: if s.stopping {
                    Status::Stopping
                } else if s.paused {
                    Status::Paused
                } else {
                    Status::Running
                },
                exit_code: 0,
                finished_at: None,
                error: None,
            };
        }
        // PID 1 is gone and no exit record: the monitor may be finishing
        // it right now (it tears the network down before it records the
        // exit: netavark takes a few hundred milliseconds), or it died
        // (kill -9, reboot).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.monitor_alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
            if let Some(rec) = self.exit_record() {
                return exited(&rec);
            }
        }
        if let Some(rec) = self.exit_record() {
            return exited(&rec);
        }
        Live {
            status: Status::Exited,
            exit_code: -1,
            finished_at: None,
            error: Some("the container's monitor ended without recording an exit status (killed, or the host rebooted)".into()),
        }
    }
}

/// Whether `s` is a full container id.
pub fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new random container id, 64 lower-case hex digits.
pub fn new_id() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom is readable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This boot's id.
pub(crate) fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Start time of `pid` in clock ticks since boot, if it exists (and is not
/// a zombie: a zombie is dead for our purposes).
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    // Field 22 overall is index 19 after pid and comm.
    fields.get(19)?.parse().ok()
}

/// RFC 3339 with nanoseconds in UTC for ns since the epoch.
pub(crate) fn rfc3339_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default()
    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Now, RFC 3339 with nanoseconds (podman's timestamps).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn lock_file(path: &Path) -> Result<LockGuard> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    Ok(LockGuard::acquire(path, LockMode::Exclusive)?)
}

/// Reads a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// Writes a JSON file atomically (temp, rename): a crash leaves the old
/// file or the new one. Not fsynced: for files a start rewrites anyway.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_file(path, &to_json(path, value)?, Durability::Volatile)
}

/// `value` as the pretty JSON container files hold. Fails only for a path
/// that is not UTF-8 (JSON strings cannot hold it; it was mangled once).
fn to_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Refused(format!("write {}: {e}", path.display())))
}

/// Like [`write_json`], fsynced before the rename and the directory after
/// it: for what must survive a power cut (a container's config).
pub(crate) fn write_json_durable<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_file(path, &to_json(path, value)?, Durability::Durable)
}

/// Writes a file atomically (temp, rename), not fsynced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, Durability::Volatile)
}

/// Container files are world-readable: they are bound into the container
/// (hostname, hosts, resolv.conf) or read by the helpers.
fn write_file(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    Ok(cairn_fsutil::write_atomic(path, bytes, 0o644, durability)?)
}

/// Removes a tree, making read-only directories writable first (an overlay
/// work dir holds a mode-000 `work/` directory).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt as _;
            for e in walkdir::WalkDir::new(path).into_iter().flatten() {
                if e.file_type().is_dir() {
                    let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
                }
            }
            fs::remove_dir_all(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        assert_ne!(id, new_id());
        assert!(!is_id("abc"));
        assert!(!is_id(&id.to_uppercase()));
    }

    #[test]
    fn start_time_of_self_and_missing() {
        let me = std::process::id() as i32;
        let t = proc_start_time(me).expect("our own stat");
        assert_eq!(proc_start_time(me), Some(t));
        assert_eq!(proc_start_time(i32::MAX), None);
    }

    /// A container that ran under an earlier binary keeps its exit: the
    /// record its monitor left is read as the status it means.
    #[test]
    fn exit_records_left_by_earlier_monitors() {
        let dir = tempfile::tempdir().unwrap();
        let c = Container {
            dir: dir.path().to_owned(),
            config: Config::default(),
            state: State {
                started_at: Some("2023-11-14T22:13:00Z".into()),
                ..State::default()
            },
        };
        assert!(c.exit_record().is_none());
        fs::write(
            dir.path().join("exit.json"),
            "{\"exit_code\":137,\"signal\":9,\"finished_ns\":1700000000123456789}\n",
        )
        .unwrap();
        let rec = c.exit_record().expect("the record is read");
        assert_eq!((rec.exit_code, rec.signal), (137, Some(9)));
        let live = c.live();
        assert_eq!((live.status, live.exit_code), (Status::Exited, 137));
        assert_eq!(
            live.finished_at.as_deref(),
            Some("2023-11-14T22:13:20.123456789Z")
        );
        fs::write(
            dir.path().join("exit.json"),
            "{\"exit_code\":3,\"finished_ns\":0}",
        )
        .unwrap();
        let live = c.live();
        assert_eq!((live.status, live.exit_code), (Status::Exited, 3));
        assert_eq!(
            live.finished_at.as_deref(),
            Some("1970-01-01T00:00:00.000000000Z")
        );
    }

    #[test]
    fn ns_times() {
        assert_eq!(
            rfc3339_ns(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
