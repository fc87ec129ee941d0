//! Reading the container log (podman's k8s-file format, written by
//! cairn-monitor): `<RFC 3339 ns time> <stdout|stderr> <F|P> <text>` per
//! line, `P` marking a piece of a line that continues in the next record.

use std::io::Write;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
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
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
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
    fn malformed_lines_are_skipped() {
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-01-01T00:00:01Z stdin F x").is_none());
        assert_eq!(
            parse(b"2024-01-01T00:00:01Z stdout F a b").unwrap().text,
            b"a b"
        );
    }
}
