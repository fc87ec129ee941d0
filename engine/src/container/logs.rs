//! Reading the container log (podman's k8s-file format, written by
//! cairn-monitor): `<RFC 3339 ns time> <stdout|stderr> <F|P> <text>` per
//! line, `P` marking a piece of a line that continues in the next record.

use std::io::{Read as _, Seek as _, Write};
use std::time::Duration;

use super::{Container, Status};
use crate::error::{Context as _, Result};

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// The time as written.
    pub time: &'a str,
    /// Nanoseconds since the epoch.
    pub ns: i64,
    /// stdout (true) or stderr.
    pub stdout: bool,
    /// Ends a line (`F`).
    pub full: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Parses one line (without its newline); `None` for a malformed one.
pub(crate) fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or(b"");
    let ns = chrono::DateTime::parse_from_rfc3339(time)
        .ok()?
        .timestamp_nanos_opt()?;
    Some(Record {
        time,
        ns,
        stdout: match stream {
            b"stdout" => true,
            b"stderr" => false,
            _ => return None,
        },
        full: match tag {
            b"F" => true,
            b"P" => false,
            _ => return None,
        },
        text,
    })
}

/// What `logs` selects and how it prints.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only records at or after this time (ns).
    pub since: Option<i64>,
    /// Only records before this time (ns).
    pub until: Option<i64>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Prefix each line with this word and a space, before the time
    /// (podman's short id or name when it prints several containers).
    pub prefix: Option<String>,
}

/// Prints the records of `data` selected by `opts` to `out`/`err`.
/// Returns how many bytes of `data` were consumed (complete lines).
pub fn print(
    data: &[u8],
    opts: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<usize> {
    let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let records: Vec<Record<'_>> = data[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse)
        .filter(|r| opts.since.is_none_or(|s| r.ns >= s))
        .filter(|r| opts.until.is_none_or(|u| r.ns < u))
        .collect();
    let start = match opts.tail {
        Some(n) => {
            // Count whole lines from the end.
            let mut lines = 0;
            let mut i = records.len();
            while i > 0 {
                if records[i - 1].full {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                i -= 1;
            }
            i
        }
        None => 0,
    };
    let mut line_start = true;
    for r in &records[start..] {
        let w: &mut dyn Write = if r.stdout { out } else { err };
        if let Some(p) = opts.prefix.as_deref().filter(|_| line_start) {
            w.write_all(p.as_bytes())?;
            w.write_all(b" ")?;
        }
        if opts.timestamps && line_start {
            w.write_all(rfc3339_nano(r.ns).as_bytes())?;
            w.write_all(b" ")?;
        }
        w.write_all(r.text)?;
        if r.full {
            w.write_all(b"\n")?;
        }
        line_start = r.full;
    }
    out.flush()?;
    err.flush()?;
    Ok(end)
}

/// Prints `c`'s log as [`print`] selects it; with `follow`, then what
/// the container writes until it has ended and its log is drained (a log
/// not there yet is waited for). Without `follow`, a container that never
/// started prints nothing.
pub fn stream(
    c: &Container,
    opts: &Options,
    follow: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let path = c.dir.join("ctr.log");
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !follow {
                return Ok(());
            }
            // Not started yet: wait for the log to appear.
            loop {
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(f) = std::fs::File::open(&path) {
                    break f;
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .with_context(|| format!("read {}", path.display()))?;
    let used = print(&buf, opts, out, err)?;
    if !follow {
        return Ok(());
    }
    let mut pending = buf.split_off(used);
    let follow_opts = Options {
        tail: None,
        ..opts.clone()
    };
    let mut pos = f.stream_position()?;
    loop {
        let live = Container::load(&c.dir).map(|c| c.live().status);
        let done = !matches!(
            live,
            Ok(Status::Running | Status::Stopping | Status::Paused | Status::Created)
        );
        let mut more = Vec::new();
        f.seek(std::io::SeekFrom::Start(pos))?;
        f.read_to_end(&mut more)?;
        pos += more.len() as u64;
        pending.extend_from_slice(&more);
        let used = print(&pending, &follow_opts, out, err)?;
        pending.drain(..used);
        if done && more.is_empty() {
            return Ok(());
        }
        if more.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC, as `podman logs -t` prints: `Z`, and
/// the fraction without trailing zeros.
fn rfc3339_nano(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default();
    let frac = t.format("%.9f").to_string();
    let frac = frac.trim_end_matches('0');
    let frac = if frac == "." { "" } else { frac };
    format!("{}{frac}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2024-01-01T00:00:01.000000000+00:00 stdout F one\n\
2024-01-01T00:00:02.000000000+00:00 stderr F oops\n\
2024-01-01T00:00:03.000000000+00:00 stdout P par\n\
2024-01-01T00:00:03.500000000+00:00 stdout F tial\n\
2024-01-01T00:00:04.000000000+00:00 stdout F \n\
2024-01-01T00:00:05.0";

    fn run(opts: &Options) -> (String, String, usize) {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let n = print(LOG, opts, &mut o, &mut e).unwrap();
        (
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
            n,
        )
    }

    #[test]
    fn streams_partials_and_incomplete_tail() {
        let (o, e, n) = run(&Options::default());
        assert_eq!(o, "one\npartial\n\n");
        assert_eq!(e, "oops\n");
        assert_eq!(&LOG[n..], b"2024-01-01T00:00:05.0");
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let (o, e, _) = run(&Options {
            tail: Some(2),
            ..Options::default()
        });
        assert_eq!((o.as_str(), e.as_str()), ("partial\n\n", ""));
        let (o, _, _) = run(&Options {
            tail: Some(0),
            ..Options::default()
        });
        assert_eq!(o, "");
    }

    #[test]
    fn since_until_and_timestamps() {
        let since = 1_704_067_202_000_000_000; // 2024-01-01T00:00:02Z
        let until = 1_704_067_204_000_000_000;
        let (o, e, _) = run(&Options {
            since: Some(since),
            until: Some(until),
            timestamps: true,
            ..Options::default()
        });
        assert_eq!(o, "2024-01-01T00:00:03Z partial\n");
        assert_eq!(e, "2024-01-01T00:00:02Z oops\n");
    }

    #[test]
    fn stream_reads_a_containers_log() {
        let root = tempfile::tempdir().unwrap();
        let containers = super::super::Containers::new(root.path());
        let config = super::super::Config {
            id: super::super::ContainerId::random(),
            name: "logger".into(),
            ..Default::default()
        };
        let c = containers.create(&config, |_| Ok(())).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        // Never started: no log, nothing printed.
        stream(&c, &Options::default(), false, &mut o, &mut e).unwrap();
        assert!(o.is_empty() && e.is_empty());
        std::fs::write(c.dir.join("ctr.log"), LOG).unwrap();
        let opts = Options {
            tail: Some(1),
            ..Options::default()
        };
        stream(&c, &opts, false, &mut o, &mut e).unwrap();
        assert_eq!(
            (o.as_slice(), e.as_slice()),
            (b"\n".as_slice(), b"".as_slice())
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-01-01T00:00:01Z stdin F x").is_none());
        assert_eq!(
            parse(b"2024-01-01T00:00:01Z stdout F a b").unwrap().text,
            b"a b"
        );
    }
}
