//! The protocol between a launcher (cairn's container engine) and the
//! runtime's helpers, defined once for both sides:
//!
//! - the specs, JSON files given with `--spec FILE`: [`MountSpec`]
//!   (`cairn-mount`), [`PivotSpec`] (`cairn-pivot`), [`MonitorSpec`]
//!   (`cairn-monitor`) and [`EnterSpec`] (`cairn-enter`). The launcher builds
//!   them as typed values and serializes them; the helper reads them back
//!   refusing unknown fields, and validates what serde cannot check;
//! - the mount option vocabulary shared by the launcher's `-v`, `--mount` and
//!   `--tmpfs` and by `cairn-mount --bind` and `--tmpfs`: [`parse_bind_option`],
//!   [`parse_tmpfs_option`], and the flag forms [`parse_bind`] and
//!   [`parse_tmpfs`];
//! - the lines the helpers write back: an [`ErrorLine`] on an error
//!   descriptor when a helper fails, the [`SyncLine`] `cairn-monitor` writes
//!   once on its sync descriptor, and the [`ExitRecord`] it leaves in its
//!   exit file when the container's first process ends;
//! - the [`Event`] lines of the event log (module [`events`](crate::events)),
//!   which the monitor appends to as `died` ([`LogEvent`]);
//! - the descriptor numbers of the exec chain ([`ERROR_FD`], [`CONSOLE_FD`]).
//!
//! Every line is one JSON object followed by a newline.

use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

pub use crate::events::{Event, EventType, LogEvent};
pub use crate::path::InRoot;
pub use crate::spec::{
    parse_bind, parse_bind_option, parse_tmpfs, parse_tmpfs_option, BindMount, BindOption, DevMode,
    DevptsMount, EnterSpec, Etc, EtcFile, MonitorSpec, Mount, MountSpec, Namespace, NetworkSpec,
    OptionError, Overlay, PivotSpec, PortForward, ProcMode, ProcessSpec, Propagation, Rlimit,
    RlimitValue, Root, RunMode, SysMode, TmpfsMount, TmpfsOption, DEFAULT_MASKED, DEFAULT_READONLY,
};

/// The error pipe's descriptor in the monitor's child and along its exec
/// chain (give it to cairn-mount and cairn-pivot as `--error-fd 3`).
pub const ERROR_FD: RawFd = 3;

/// The console socket's descriptor in the monitor's child when its spec
/// asks for a tty (give it to cairn-pivot as `--console-socket 4`).
pub const CONSOLE_FD: RawFd = 4;

/// A helper's failure, written as one line on its error descriptor
/// (`--error-fd`; in the monitor's child, the error pipe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// 125 (the helper failed), 126 (not executable), 127 (not found).
    pub code: i32,
    /// What the helper printed on stderr.
    pub message: String,
}

impl ErrorLine {
    /// The line as written: JSON and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// Parse what arrived on the error pipe: `None` for nothing (the command
    /// runs); text that is not an error line still counts as a failure (125).
    pub fn parse(bytes: &[u8]) -> Option<ErrorLine> {
        let text = String::from_utf8_lossy(bytes);
        let line = text.lines().find(|l| !l.trim().is_empty())?;
        Some(serde_json::from_str(line).unwrap_or_else(|_| ErrorLine {
            code: crate::EXIT_FAILURE,
            message: line.trim().to_owned(),
        }))
    }
}

/// The one line `cairn-monitor` writes on its sync descriptor: the
/// container's pid once its command runs, or why it did not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncLine {
    /// Host pid of the container's first process (0 if none was created).
    pub pid: i32,
    /// Why the container did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 125, 126 or 127 when it did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

impl SyncLine {
    /// The line as written: JSON and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// Parse one line as read (surrounding white space ignored).
    pub fn parse(line: &str) -> serde_json::Result<SyncLine> {
        serde_json::from_str(line.trim())
    }
}

/// What `cairn-monitor` leaves in its spec's `exit_file` when the
/// container's first process has ended.
///
/// Its form: `{"exit_code":137,"signal":9,"finished_ns":1700000000123456789,
/// "oom_killed":true}`, with `"signal":null` after a normal exit. The first
/// monitors wrote it without `oom_killed` (read as false), and some
/// without `signal` (read as no signal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + N when signal N killed the process
    /// (podman's convention).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// When it was reaped, nanoseconds since the Unix epoch.
    pub finished_ns: u64,
    /// The OOM killer killed a process of the container's cgroup
    /// (podman's `.State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
}

impl ExitRecord {
    /// The record as written: JSON and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// Parse an exit file's content.
    pub fn parse(bytes: &[u8]) -> serde_json::Result<ExitRecord> {
        serde_json::from_slice(bytes)
    }
}

/// `value` as one JSON line. Serializing these plain structs cannot fail.
fn json_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines() {
        assert_eq!(ErrorLine::parse(b""), None);
        assert_eq!(ErrorLine::parse(b"\n"), None);
        let line = ErrorLine {
            code: 127,
            message: "cairn-pivot: exec nope: not found".into(),
        };
        let bytes = line.to_line();
        assert_eq!(
            bytes,
            b"{\"code\":127,\"message\":\"cairn-pivot: exec nope: not found\"}\n"
        );
        assert_eq!(ErrorLine::parse(&bytes), Some(line));
        assert_eq!(
            ErrorLine::parse(b"garbage\n"),
            Some(ErrorLine {
                code: 125,
                message: "garbage".into()
            })
        );
    }

    #[test]
    fn sync_lines() {
        let ok = SyncLine {
            pid: 7,
            error: None,
            code: None,
        };
        assert_eq!(ok.to_line(), b"{\"pid\":7}\n");
        let failed = SyncLine {
            pid: 7,
            error: Some("x".into()),
            code: Some(127),
        };
        assert_eq!(
            failed.to_line(),
            b"{\"pid\":7,\"error\":\"x\",\"code\":127}\n"
        );
        for line in [ok, failed] {
            let text = String::from_utf8(line.to_line()).unwrap();
            assert_eq!(SyncLine::parse(&text).unwrap(), line);
        }
        assert!(SyncLine::parse("{\"error\":\"no pid\"}").is_err());
        assert!(SyncLine::parse("").is_err());
    }

    #[test]
    fn exit_records() {
        let killed = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            finished_ns: 1,
            oom_killed: true,
        };
        assert_eq!(
            killed.to_line(),
            b"{\"exit_code\":137,\"signal\":9,\"finished_ns\":1,\"oom_killed\":true}\n"
        );
        let exited = ExitRecord {
            exit_code: 3,
            signal: None,
            finished_ns: 1,
            oom_killed: false,
        };
        assert_eq!(
            exited.to_line(),
            b"{\"exit_code\":3,\"signal\":null,\"finished_ns\":1,\"oom_killed\":false}\n"
        );
        for rec in [killed, exited] {
            assert_eq!(ExitRecord::parse(&rec.to_line()).unwrap(), rec);
        }
    }

    /// Exit files written by the monitors released before the protocol had
    /// one definition (the engine read them as `{exit_code, finished_ns}`
    /// with a signed time) are still read, with every field.
    #[test]
    fn exit_records_of_earlier_monitors() {
        let rec = ExitRecord::parse(
            b"{\"exit_code\":143,\"signal\":15,\"finished_ns\":1764930000123456789}\n",
        )
        .unwrap();
        assert_eq!(
            rec,
            ExitRecord {
                exit_code: 143,
                signal: Some(15),
                finished_ns: 1_764_930_000_123_456_789,
                oom_killed: false,
            }
        );
        let rec =
            ExitRecord::parse(b"{\"exit_code\":0,\"signal\":null,\"finished_ns\":0}\n").unwrap();
        assert_eq!((rec.exit_code, rec.signal, rec.finished_ns), (0, None, 0));
        let rec = ExitRecord::parse(b"{\"exit_code\":2,\"finished_ns\":5}").unwrap();
        assert_eq!((rec.exit_code, rec.signal, rec.finished_ns), (2, None, 5));
        for bad in [
            &b""[..],
            b"{\"signal\":9,\"finished_ns\":1}",
            b"{\"exit_code\":1}",
            b"{\"exit_code\":1,\"finished_ns\":-1}",
        ] {
            assert!(ExitRecord::parse(bad).is_err(), "{bad:?} read");
        }
    }
}
