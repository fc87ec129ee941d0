//! The event log (podman's `events`, file-backed): what the engine records
//! when a container or image changes, and the reading side of `cairn
//! events` (the whole log, following it across rotations, filters, podman's
//! time forms).
//!
//! The record and its writer are the runtime's
//! ([`cairn_runtime::events`]), because `cairn-monitor` writes `start`,
//! `attach` and `died` (in the order they happen, however soon a container
//! ends) and `cairn-enter` writes `exec_died`, without linking the engine. Recording
//! never fails an action: a log that cannot be written is a warning.
//!
//! ```text
//! <root>/events/events.log     JSON lines, newest last
//! <root>/events/events.log.1   the previous log, once rotated (past 1 MiB)
//! <root>/events/events.lock    flock: writers append and rotate one at a time
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use cairn_fsutil::{LockGuard, LockMode};
pub use cairn_runtime::events::{
    append, append_limited, log_path, now_ns, rfc3339_nano, rotated_path, Event, EventType,
    LogEvent, LOG_LIMIT,
};

use crate::container::{Config, Container};
use crate::error::{Context as _, Error, Result};

/// The store root a container's directory (`<root>/containers/<id>`) is in.
pub fn root_of(c: &Container) -> Option<&Path> {
    c.dir.parent()?.parent()
}

/// An event about the container `config` describes: its id, name, image
/// as named at create, and its labels as attributes (podman's).
pub fn container_event(config: &Config, status: &str) -> Event {
    let mut e = Event::now(EventType::Container, status);
    e.id = config.id.to_string();
    e.name.clone_from(&config.name);
    e.image.clone_from(&config.image.name);
    e.attributes = Some(config.labels.clone());
    e
}

/// An image event: `id` (may be empty, as for podman's `pull`) and `name`.
pub fn image_event(status: &str, id: &str, name: &str) -> Event {
    let mut e = Event::now(EventType::Image, status);
    e.id = id.to_owned();
    e.name = name.to_owned();
    e
}

/// Appends `event` to the log of the store at `root`; a failure is only a
/// warning.
pub fn record(root: &Path, event: &Event) {
    let log = log_path(root);
    if let Err(e) = append(&log, event) {
        tracing::warn!("event {} not logged: {e}", event.status);
    }
}

/// Records the event `status` of container `c` in its store's log.
pub fn record_container(c: &Container, status: &str) {
    if let Some(root) = root_of(c) {
        record(root, &container_event(&c.config, status));
    }
}

/// What the monitor of `c` writes: `start` (and `attach`) once the
/// command runs, `died` with its exit code when it ends.
pub fn monitor_events(c: &Container) -> Option<LogEvent> {
    Some(LogEvent {
        log: log_path(root_of(c)?),
        event: container_event(&c.config, "start"),
    })
}

/// The event's time in nanoseconds since the epoch; `None` if unreadable.
pub fn time_ns(e: &Event) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .ok()?
        .timestamp_nanos_opt()
}

/// Every event in the log at `log` (the rotated part first), oldest first.
/// Lines that do not parse (a torn last line after a crash) are skipped.
pub fn read_all(log: &Path) -> Result<Vec<Event>> {
    let (mut out, mut rest) = Follower::with_history(log)?;
    out.extend(rest.poll());
    Ok(out)
}

/// Takes the writers' lock shared (so no rotation happens meanwhile), when
/// the log's directory exists. A reader that may not create or open the
/// lock file (a log it may only read) reads without it: at worst it misses
/// the lines of a rotation that happens at that very moment.
fn lock_shared(log: &Path) -> Option<LockGuard> {
    if !log.parent().is_some_and(Path::is_dir) {
        return None;
    }
    LockGuard::acquire(&cairn_runtime::events::lock_path(log), LockMode::Shared).ok()
}

/// The events of a whole file; none if it does not exist.
fn read_file(p: &Path) -> Result<Vec<Event>> {
    match std::fs::read(p) {
        Ok(t) => Ok(complete_lines(&t)
            .filter_map(|l| Event::parse(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
    }
}

/// The newline-terminated lines of `bytes`, as text.
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = &str> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| !l.trim().is_empty())
}

/// Reads the lines appended to a log from a point on, across rotations:
/// [`Follower::poll`] returns the events written since the last call.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    pending: Vec<u8>,
}

impl Follower {
    /// Follows `log` from its current end (what is there now is not
    /// returned; [`read_all`] gives it).
    pub fn from_end(log: &Path) -> Follower {
        let mut f = Follower {
            path: log.to_owned(),
            file: None,
            ino: 0,
            pending: Vec::new(),
        };
        f.open(true);
        f
    }

    /// The rotated log's events, and a follower of the current log from
    /// its start: together every event once, however the log is rotated
    /// meanwhile (both are taken under the writers' lock).
    pub fn with_history(log: &Path) -> Result<(Vec<Event>, Follower)> {
        let _lock = lock_shared(log);
        let past = read_file(&rotated_path(log))?;
        let mut f = Follower {
            path: log.to_owned(),
            file: None,
            ino: 0,
            pending: Vec::new(),
        };
        f.open(false);
        Ok((past, f))
    }

    fn open(&mut self, at_end: bool) {
        if let Ok(mut file) = File::open(&self.path) {
            let ino = file.metadata().map_or(0, |m| m.ino());
            if at_end && file.seek(SeekFrom::End(0)).is_err() {
                return;
            }
            self.file = Some(file);
            self.ino = ino;
            self.pending.clear();
        }
    }

    /// The events appended since the last call (or since creation).
    pub fn poll(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            if let Some(f) = &mut self.file {
                let _ = f.read_to_end(&mut self.pending);
                let end = self
                    .pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                out.extend(
                    complete_lines(&self.pending[..end]).filter_map(|l| Event::parse(l).ok()),
                );
                self.pending.drain(..end);
            }
            // Rotated (or created) since we opened it: the rest of the old
            // file was read above; go on with the new one from its start.
            let now = std::fs::metadata(&self.path).map_or(0, |m| m.ino());
            if now != 0 && (self.file.is_none() || now != self.ino) {
                self.open(false);
                continue;
            }
            return out;
        }
    }
}

/// `--filter` of `events`: the same key ORed, different keys ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

/// The filter keys podman's events know (`status` is `event`'s alias).
const FILTER_KEYS: &[&str] = &["container", "event", "image", "label", "type", "status"];

impl Filters {
    /// Parses `KEY=VALUE` filters.
    pub fn parse(given: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for g in given {
            let Some((k, v)) = g.split_once('=') else {
                return Err(Error::Invalid(format!(
                    "{g} is an invalid filter: filters are KEY=VALUE"
                )));
            };
            let key = k.to_ascii_lowercase();
            if !FILTER_KEYS.contains(&key.as_str()) {
                return Err(Error::Invalid(format!("{k} is an invalid filter")));
            }
            let key = if key == "status" { "event".into() } else { key };
            f.by_key.entry(key).or_default().push(v.to_owned());
        }
        Ok(f)
    }

    /// Whether `e` passes: for every key given, one of its values matches.
    pub fn matches(&self, e: &Event) -> bool {
        self.by_key
            .iter()
            .all(|(k, vs)| vs.iter().any(|v| one_matches(k, v, e)))
    }
}

/// podman's rules: `container=` a container's name or id prefix, `image=`
/// an image's name or id prefix, `label=K=V` an attribute, `event=`
/// and `type=` exactly.
fn one_matches(key: &str, v: &str, e: &Event) -> bool {
    let named = |kind| e.kind == kind && (e.name == v || (!v.is_empty() && e.id.starts_with(v)));
    match key {
        "container" => named(EventType::Container),
        "image" => named(EventType::Image),
        "event" => e.status == v,
        "type" => e.kind.as_str() == v,
        "label" => match v.split_once('=') {
            Some((k, val)) => e
                .attributes
                .as_ref()
                .is_some_and(|a| a.get(k).is_some_and(|x| x == val)),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, status: &str, id: &str, name: &str, labels: &[(&str, &str)]) -> Event {
        let mut e = Event::now(kind, status);
        e.id = id.into();
        e.name = name.into();
        if kind == EventType::Container {
            e.attributes = Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
        }
        e
    }

    fn filters(f: &[&str]) -> Filters {
        Filters::parse(&f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_or_the_same_key_and_the_others() {
        let start = ev(
            EventType::Container,
            "start",
            "abcdef",
            "web",
            &[("a", "b")],
        );
        let died = ev(EventType::Container, "died", "abcdef", "web", &[]);
        let other = ev(EventType::Container, "start", "123456", "db", &[]);
        let pull = ev(EventType::Image, "pull", "", "localhost/deb:1", &[]);
        let tag = ev(EventType::Image, "tag", "9f2e", "localhost/deb:1", &[]);
        let all = [&start, &died, &other, &pull, &tag];
        let pick = |f: &[&str]| -> Vec<usize> {
            let f = filters(f);
            all.iter()
                .enumerate()
                .filter(|(_, e)| f.matches(e))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(pick(&[]), [0, 1, 2, 3, 4]);
        assert_eq!(pick(&["event=start"]), [0, 2]);
        assert_eq!(pick(&["event=start", "event=died"]), [0, 1, 2]);
        assert_eq!(pick(&["event=start", "container=web"]), [0]);
        assert_eq!(pick(&["container=abc"]), [0, 1]);
        assert_eq!(pick(&["container=web", "container=db"]), [0, 1, 2]);
        // container= is about containers only, image= about images only.
        assert_eq!(pick(&["container=localhost/deb:1"]), Vec::<usize>::new());
        assert_eq!(pick(&["image=localhost/deb:1"]), [3, 4]);
        assert_eq!(pick(&["image=9f"]), [4]);
        assert_eq!(pick(&["type=image"]), [3, 4]);
        assert_eq!(pick(&["type=image", "type=container"]), [0, 1, 2, 3, 4]);
        assert_eq!(pick(&["status=died"]), [1]);
        assert_eq!(pick(&["label=a=b"]), [0]);
        assert_eq!(pick(&["label=a=c"]), Vec::<usize>::new());
        // podman: a label filter without a value matches nothing.
        assert_eq!(pick(&["label=a"]), Vec::<usize>::new());
        for bad in ["bogus=1", "event", "since=1"] {
            let e = Filters::parse(&[bad.to_owned()]).unwrap_err().to_string();
            assert!(e.contains("is an invalid filter"), "{bad}: {e}");
        }
    }

    /// The runtime names the log's directory itself (it does not link the
    /// store): the same as the store's list of its directories.
    #[test]
    fn the_log_is_in_the_stores_events_directory() {
        let root = Path::new("/r");
        assert_eq!(
            log_path(root),
            cairn_store::StoreDir::Events.under(root).join("events.log")
        );
    }

    #[test]
    fn following_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path());
        let mk = |i: usize| ev(EventType::Image, "tag", "", &format!("i:{i}"), &[]);
        append(&log, &mk(0)).unwrap();
        let mut f = Follower::from_end(&log);
        assert!(f.poll().is_empty(), "what was there before is not followed");
        let mut seen = Vec::new();
        for i in 1..200 {
            append_limited(&log, &mk(i), 1500).unwrap();
            if i % 7 == 0 {
                seen.extend(f.poll().into_iter().map(|e| e.name));
            }
        }
        seen.extend(f.poll().into_iter().map(|e| e.name));
        let want: Vec<String> = (1..200).map(|i| format!("i:{i}")).collect();
        assert_eq!(seen, want);
        assert!(rotated_path(&log).exists());
        // read_all: the newest, in order, ending with the last.
        let all = read_all(&log).unwrap();
        assert_eq!(all.last().unwrap().name, "i:199");
    }

    #[test]
    fn history_and_what_follows_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path());
        let mk = |i: usize| ev(EventType::Image, "tag", "", &format!("i:{i}"), &[]);
        for i in 0..30 {
            append_limited(&log, &mk(i), 1500).unwrap();
        }
        let (past, mut f) = Follower::with_history(&log).unwrap();
        let mut names: Vec<String> = past.into_iter().map(|e| e.name).collect();
        // One rotation at most between polls (at 1 MiB and a poll every
        // 50 ms, a log rotated twice in between is not to be expected).
        for i in 30..60 {
            append_limited(&log, &mk(i), 1500).unwrap();
            if i % 5 == 0 {
                names.extend(f.poll().into_iter().map(|e| e.name));
            }
        }
        names.extend(f.poll().into_iter().map(|e| e.name));
        let first: usize = names[0].trim_start_matches("i:").parse().unwrap();
        let want: Vec<String> = (first..60).map(|i| format!("i:{i}")).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn a_follower_of_a_log_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path());
        let mut f = Follower::from_end(&log);
        assert!(f.poll().is_empty());
        assert!(read_all(&log).unwrap().is_empty());
        append(&log, &ev(EventType::Image, "pull", "", "x", &[])).unwrap();
        let got = f.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "x");
        // A torn line is left until it is complete.
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let line = ev(EventType::Image, "tag", "", "y", &[]).to_line();
        std::io::Write::write_all(&mut file, &line[..10]).unwrap();
        assert!(f.poll().is_empty());
        assert!(read_all(&log).unwrap().len() == 1);
        std::io::Write::write_all(&mut file, &line[10..]).unwrap();
        assert_eq!(f.poll()[0].name, "y");
    }
}
