//! Output the way podman prints it: Go tabwriter tables, go-units sizes and
//! durations, Go-style indented JSON.

use std::fmt::Write as _;
use std::time::Duration;

/// A table laid out like Go's `tabwriter.NewWriter(w, 12, 2, 2, ' ', 0)`,
/// which podman uses: every cell but the last is padded to the column's
/// widest cell plus 2, at least 12.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Adds a row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The laid-out text, one line per row.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let w = (widths[i] + 2).max(12);
                    let _ = write!(line, "{cell:<w$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// go-units' `HumanSizeWithPrecision(size, 3)` with podman's space before
/// the unit: `674 B`, `5.5 kB`, `121 MB`, `1.23 GB`.
pub fn size(bytes: u64) -> String {
    let (v, unit) = size_and_unit(bytes as f64);
    format!("{} {unit}", go_g(v, 3))
}

/// go-units' `HumanSize` (precision 4, no space), as `system df` prints it.
pub fn size_compact(bytes: u64) -> String {
    let (v, unit) = size_and_unit(bytes as f64);
    format!("{}{unit}", go_g(v, 4))
}

fn size_and_unit(mut v: f64) -> (f64, &'static str) {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    (v, UNITS[i])
}

/// Go's `%.{prec}g`.
fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if exp < -4 || exp >= prec as i32 {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{v:.decimals$}")).to_owned()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units' `HumanDuration`, as podman's CREATED column uses it (+ " ago").
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let s = secs as u64;
    let minutes = s / 60;
    let hours = (secs / 3600.0 + 0.5) as u64;
    if secs < 1.0 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (secs / 3600.0 / 24.0 / 365.0) as u64)
    }
}

/// "N units ago" for an RFC 3339 time, or an empty string if unparsable.
pub fn ago(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return String::new();
    };
    let elapsed = chrono::Utc::now().signed_duration_since(t);
    let d = elapsed.to_std().unwrap_or(Duration::ZERO);
    format!("{} ago", duration(d))
}

/// JSON indented with `indent` spaces per level (podman's inspect uses 5,
/// its `--format json` lists 4), without a trailing newline.
pub fn json_indent(value: &serde_json::Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(pad.as_bytes());
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(value, &mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        let cases = [
            (0, "0 B"),
            (674, "674 B"),
            (999, "999 B"),
            (5_500, "5.5 kB"),
            (121_234_567, "121 MB"),
            (1_234_567_890, "1.23 GB"),
            (999_900, "1e+03 kB"),
            (30_000_000, "30 MB"),
        ];
        for (n, want) in cases {
            assert_eq!(size(n), want, "{n}");
        }
        assert_eq!(size_compact(0), "0B");
        assert_eq!(size_compact(124_712_345), "124.7MB");
    }

    #[test]
    fn durations_like_go_units() {
        let cases = [
            (0.5, "Less than a second"),
            (1.0, "1 second"),
            (45.0, "45 seconds"),
            (90.0, "About a minute"),
            (600.0, "10 minutes"),
            (3600.0, "About an hour"),
            (5.0 * 3600.0, "5 hours"),
            (3.0 * 86400.0, "3 days"),
            (20.0 * 86400.0, "2 weeks"),
            (90.0 * 86400.0, "3 months"),
            (800.0 * 86400.0, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(Duration::from_secs_f64(secs)), want, "{secs}");
        }
    }

    #[test]
    fn table_matches_tabwriter() {
        let mut t = Table::default();
        t.row(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
        t.row([
            "localhost/tmp/lt2",
            "latest",
            "a4b8856ca040",
            "1 second ago",
            "674 B",
        ]);
        // Captured from podman 4.3 `podman images`.
        assert_eq!(
            t.render(),
            "REPOSITORY         TAG         IMAGE ID      CREATED       SIZE\n\
             localhost/tmp/lt2  latest      a4b8856ca040  1 second ago  674 B\n"
        );
    }

    #[test]
    fn json_indents() {
        let v = serde_json::json!([{"Id": "x", "Names": ["a"]}]);
        assert_eq!(
            json_indent(&v, 5),
            "[\n     {\n          \"Id\": \"x\",\n          \"Names\": [\n               \"a\"\n          ]\n     }\n]"
        );
    }
}
