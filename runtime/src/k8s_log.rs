//! podman's `k8s-file` log format, as conmon writes it: one record per line
//! of output,
//!
//! ```text
//! 2026-11-28T14:08:20.123456789+00:00 stdout F hello
//! 2026-11-28T14:08:20.123500000+00:00 stderr P no newline yet
//! ```
//!
//! `F` marks a full line (its newline is not part of the content), `P` a
//! partial one: the tail of a read that did not end in a newline, which the
//! next record continues. As in conmon, a partial tail is written at once,
//! not held back, so the log never lags behind the output and a crash loses
//! nothing already read. Times are UTC with a `+00:00` offset and nine
//! fractional digits (conmon's layout, which podman's reader accepts).

use std::time::{SystemTime, UNIX_EPOCH};

/// Which output a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout (and a pty's only output).
    Stdout = 0,
    /// The container's stderr.
    Stderr = 1,
}

impl Stream {
    /// The name in a record.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// `(year, month 1-12, day 1-31)` of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`, proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 with nanoseconds, UTC: `2026-11-28T14:08:20.123456789+00:00`.
pub fn timestamp(secs: i64, nanos: u32) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// [`timestamp`] of now.
pub fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    timestamp(t.as_secs() as i64, t.subsec_nanos())
}

/// Append the records of one chunk of output to `out`: a full record for
/// each newline-terminated line, a partial one for a trailing remainder.
pub fn format(out: &mut Vec<u8>, time: &str, stream: Stream, chunk: &[u8]) {
    let mut push = |line: &[u8], tag: &str| {
        out.extend_from_slice(time.as_bytes());
        out.push(b' ');
        out.extend_from_slice(stream.name().as_bytes());
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    };
    let mut rest = chunk;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        push(&rest[..i], "F");
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        push(rest, "P");
    }
}

/// What of a stream's output to log now. A read that filled its buffer
/// usually stopped inside a line that the next read finishes: its tail is
/// held back and joined to the next read, so lines are not split at buffer
/// boundaries. A short read is logged whole (its tail as a partial record,
/// as conmon does: a prompt appears in the log at once), and so is a tail
/// that grew past `max`.
#[derive(Debug, Default)]
pub struct LineBuf {
    held: Vec<u8>,
}

impl LineBuf {
    /// The bytes to log for `data`; `full`: the read filled its buffer.
    pub fn take(&mut self, data: &[u8], full: bool, max: usize) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.held);
        all.extend_from_slice(data);
        if full {
            let cut = all.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if all.len() - cut <= max {
                self.held = all.split_off(cut);
            }
        }
        all
    }

    /// Whatever is held back (at the end of the stream).
    pub fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        // (days since the epoch, date): epoch, leap days, century rules,
        // before the epoch.
        for (days, want) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (10_957, (2000, 1, 1)),
            (11_016, (2000, 2, 29)),
            (11_017, (2000, 3, 1)),
            (19_782, (2024, 2, 29)),
            (-1, (1969, 12, 31)),
            (-25_508, (1900, 3, 1)),
            (47_541, (2100, 3, 1)),
            (2_932_896, (9999, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), want, "day {days}");
        }
        // Every day of 1999-2001 follows the previous one.
        let mut prev = civil_from_days(10_591);
        for d in 10_592..11_700 {
            let cur = civil_from_days(d);
            let next_day = (prev.0, prev.1, prev.2 + 1) == cur;
            let next_month = (prev.0, prev.1 + 1, 1) == cur;
            let next_year = (prev.0 + 1, 1, 1) == cur && prev.1 == 12 && prev.2 == 31;
            assert!(next_day || next_month || next_year, "{prev:?} -> {cur:?}");
            prev = cur;
        }
    }

    #[test]
    fn timestamps() {
        // date -u -d @1795875500 → Sat Nov 28 14:18:20 UTC 2026
        assert_eq!(
            timestamp(1_795_875_500, 123_456_789),
            "2026-11-28T14:18:20.123456789+00:00"
        );
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000000+00:00");
        assert_eq!(
            timestamp(951_782_399, 5),
            "2000-02-28T23:59:59.000000005+00:00"
        );
        assert_eq!(
            timestamp(-1, 999_999_999),
            "1969-12-31T23:59:59.999999999+00:00"
        );
        assert_eq!(now().len(), "2026-11-28T14:18:20.123456789+00:00".len());
    }

    fn records(stream: Stream, chunk: &[u8]) -> String {
        let mut out = Vec::new();
        format(&mut out, "T", stream, chunk);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn full_and_partial_lines() {
        assert_eq!(records(Stream::Stdout, b"out\n"), "T stdout F out\n");
        assert_eq!(
            records(Stream::Stderr, b"a\nb\n\nc"),
            "T stderr F a\nT stderr F b\nT stderr F \nT stderr P c\n"
        );
        assert_eq!(
            records(Stream::Stdout, b"no newline"),
            "T stdout P no newline\n"
        );
        assert_eq!(records(Stream::Stdout, b""), "");
        assert_eq!(records(Stream::Stdout, b"\n"), "T stdout F \n");
        // A pty's line ends keep their \r, as conmon's do; bytes pass as they are.
        let mut raw = Vec::new();
        format(&mut raw, "T", Stream::Stdout, b"x\r\n\xff");
        assert_eq!(raw, b"T stdout F x\r\nT stdout P \xff\n");
    }

    #[test]
    fn lines_are_not_split_at_buffer_boundaries() {
        let mut b = LineBuf::default();
        // A full buffer ending inside a line: the tail waits for the rest.
        assert_eq!(b.take(b"one\ntw", true, 100), b"one\n");
        assert_eq!(b.take(b"o\nthr", false, 100), b"two\nthr");
        // A full buffer with no newline at all is held too, up to `max`.
        assert_eq!(b.take(b"abc", true, 4), b"");
        assert_eq!(
            b.take(b"de", true, 4),
            b"abcde",
            "past max: logged as partial"
        );
        assert_eq!(b.take(b"x\ny", true, 4), b"x\n");
        assert_eq!(b.flush(), b"y");
        assert_eq!(b.flush(), b"");
        assert_eq!(b.take(b"", false, 4), b"");
    }
}
