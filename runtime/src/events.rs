//! The event log every cairn process writes to (podman's `events_logger =
//! "file"`): one [`Event`] per line, in podman's JSON shape, appended to
//! `<root>/events/events.log`.
//!
//! Defined here, not in the engine, because `cairn-monitor` writes the
//! `start` and `died` events (so they are in the order they happened,
//! however soon a container ends) and `cairn-enter` the `exec_died` one, and the helpers do
//! not link the engine; the engine re-exports it and adds the reading side.
//!
//! Writers ([`append`]) hold an exclusive `flock` on `events.lock` beside the
//! log while they check its size, rotate it and append one line with one
//! `write(2)` on an `O_APPEND` descriptor, so lines of concurrent writers
//! never interleave and no line is lost to a rotation. The log is bounded:
//! once a line would take it past the limit ([`LOG_LIMIT`]), it is renamed
//! to `events.log.1` (replacing the previous one) and a new log starts, so at
//! most about twice the limit is kept. A crash mid-append leaves at most one
//! incomplete last line, which readers skip.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_fsutil::{IoContext as _, LockGuard, LockMode, PathError};
use serde::{Deserialize, Serialize};

/// The log's size past which it is rotated: 1 MiB.
pub const LOG_LIMIT: u64 = 1 << 20;

/// What an event is about (podman's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A container's lifecycle.
    Container,
    /// An image pulled, tagged, removed.
    Image,
    /// The engine itself.
    System,
    /// A volume.
    Volume,
}

impl EventType {
    /// podman's word: `container`, `image`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
            EventType::System => "system",
            EventType::Volume => "volume",
        }
    }
}

/// One event, serialized exactly as podman's `events --format json` prints
/// it (and as podman's file logger stores it): the keys `ContainerExitCode`
/// (left out when 0), `ID`, `Image`, `Name` (left out when empty),
/// `Status`, `Time` (RFC 3339 with nanoseconds), `Type`, `Attributes`
/// (`null` for images, the labels for containers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The container's exit code (`died`, `exec_died`); 0 is not written.
    #[serde(rename = "ContainerExitCode", default, skip_serializing_if = "is_zero")]
    pub container_exit_code: i32,
    /// The container's or image's full id.
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// A container's image, as it was named at create.
    #[serde(rename = "Image", default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The container's name, or the image reference.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What happened: `create`, `start`, `died`, `pull`, `tag`, ...
    #[serde(rename = "Status")]
    pub status: String,
    /// When, RFC 3339 with nanoseconds in UTC (Go's `RFC3339Nano`).
    #[serde(rename = "Time")]
    pub time: String,
    /// What it is about.
    #[serde(rename = "Type")]
    pub kind: EventType,
    /// A container's labels (and, for exec events, the exec id).
    #[serde(rename = "Attributes", default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl Event {
    /// An event of `kind` with `status`, happening now, about nothing yet.
    pub fn now(kind: EventType, status: &str) -> Event {
        Event {
            container_exit_code: 0,
            id: String::new(),
            image: String::new(),
            name: String::new(),
            status: status.to_owned(),
            time: rfc3339_nano(now_ns()),
            kind,
            attributes: None,
        }
    }

    /// The same event, happening now with another status (a container's
    /// `start` from its `init`, `exec_died` from `exec`).
    pub fn again(&self, status: &str) -> Event {
        Event {
            status: status.to_owned(),
            time: rfc3339_nano(now_ns()),
            container_exit_code: 0,
            ..self.clone()
        }
    }

    /// The line as written: JSON and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses one line of the log.
    pub fn parse(line: &str) -> serde_json::Result<Event> {
        serde_json::from_str(line.trim())
    }
}

/// The events a helper writes about the process it runs (`cairn-monitor`:
/// `start`, `attach` and `died`; `cairn-enter`: `exec_died`): where, and
/// about what; the helper sets the status, time and exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEvent {
    /// The event log to append to.
    pub log: PathBuf,
    /// The container the event is about (its id, name, image, labels).
    pub event: Event,
}

impl LogEvent {
    /// Appends the event with `status` and `exit_code`, happening now; a
    /// failure is reported on stderr by `prog` and otherwise ignored (the
    /// event log is informational: it never fails what it records).
    pub fn record(&self, prog: &str, status: &str, exit_code: i32) {
        let mut e = self.event.again(status);
        e.container_exit_code = exit_code;
        if let Err(err) = append(&self.log, &e) {
            crate::say(&format!(
                "{prog}: warning: event {status} not logged: {err}"
            ));
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Go's `RFC3339Nano` in UTC: `2026-12-06T07:48:10.94020365Z`, trailing
/// zeros of the fraction dropped, no fraction at all on a whole second.
pub fn rfc3339_nano(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, mo, d) = crate::k8s_log::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = format!(".{frac:09}");
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// The log of the store at `root`: `<root>/events/events.log`.
pub fn log_path(root: &Path) -> PathBuf {
    root.join("events").join("events.log")
}

/// The rotated log beside `log` (`events.log.1`).
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(".1");
    log.with_file_name(name)
}

/// The lock file writers hold beside `log` (`events.lock`).
pub fn lock_path(log: &Path) -> PathBuf {
    log.with_file_name("events.lock")
}

/// Appends `event` to `log` (see the module doc), rotating past
/// [`LOG_LIMIT`].
pub fn append(log: &Path, event: &Event) -> Result<(), PathError> {
    append_limited(log, event, LOG_LIMIT)
}

/// [`append`] with another size limit (tests use small ones).
pub fn append_limited(log: &Path, event: &Event, limit: u64) -> Result<(), PathError> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).io_context("create the events directory", dir)?;
    }
    let _lock = LockGuard::acquire(&lock_path(log), LockMode::Exclusive)?;
    let line = event.to_line();
    let size = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).io_context("stat", log),
    };
    if size > 0 && size + line.len() as u64 > limit {
        let old = rotated_path(log);
        std::fs::rename(log, &old).io_context("rotate the event log to", &old)?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(log)
        .io_context("open", log)?;
    f.write_all(&line).io_context("append an event to", log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_prints_them() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_796_543_290_940_203_650),
            "2026-12-06T07:48:10.94020365Z"
        );
        assert_eq!(
            rfc3339_nano(1_796_543_290_000_000_001),
            "2026-12-06T07:48:10.000000001Z"
        );
        assert_eq!(
            rfc3339_nano(1_796_543_290_500_000_000),
            "2026-12-06T07:48:10.5Z"
        );
    }

    #[test]
    fn podman_keys_in_podman_order() {
        let mut e = Event::now(EventType::Container, "died");
        e.time = "2026-12-06T07:48:11.15895771Z".into();
        e.id = "66e7".into();
        e.image = "localhost/deb:1".into();
        e.name = "k1".into();
        e.container_exit_code = 137;
        e.attributes = Some(BTreeMap::from([("a".into(), "b".into())]));
        assert_eq!(
            String::from_utf8(e.to_line()).unwrap(),
            "{\"ContainerExitCode\":137,\"ID\":\"66e7\",\"Image\":\"localhost/deb:1\",\"Name\":\"k1\",\
             \"Status\":\"died\",\"Time\":\"2026-12-06T07:48:11.15895771Z\",\"Type\":\"container\",\
             \"Attributes\":{\"a\":\"b\"}}\n"
        );
        assert_eq!(
            Event::parse(&String::from_utf8(e.to_line()).unwrap()).unwrap(),
            e
        );
        // podman's own line for a pull.
        let pull = Event::parse(
            "{\"Name\":\"localhost/deb:1\",\"Status\":\"pull\",\"Time\":\"2026-12-06T07:47:47.392785101Z\",\"Type\":\"image\",\"Attributes\":null}",
        )
        .unwrap();
        assert_eq!(
            (pull.kind, pull.id.as_str(), &pull.attributes),
            (EventType::Image, "", &None)
        );
        let again = pull.again("remove");
        assert_eq!(again.status, "remove");
        assert_eq!(again.name, "localhost/deb:1");
    }

    #[test]
    fn rotation_keeps_every_line_in_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path());
        let mut e = Event::now(EventType::Image, "tag");
        for i in 0..100 {
            e.name = format!("img:{i}");
            append_limited(&log, &e, 2000).unwrap();
        }
        let cur = std::fs::read_to_string(&log).unwrap();
        let old = std::fs::read_to_string(rotated_path(&log)).unwrap();
        assert!(
            cur.len() <= 2000 && old.len() <= 2000,
            "{} {}",
            cur.len(),
            old.len()
        );
        let names: Vec<String> = old
            .lines()
            .chain(cur.lines())
            .map(|l| Event::parse(l).unwrap().name)
            .collect();
        // The newest lines, in order, none missing at the seam.
        let first: usize = names[0].trim_start_matches("img:").parse().unwrap();
        let want: Vec<String> = (first..100).map(|i| format!("img:{i}")).collect();
        assert_eq!(names, want);
        assert!(first > 0, "never rotated");
    }
}
