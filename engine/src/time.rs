//! The times podman's `--since`/`--until` and `until=` filters accept
//! (its `util.ParseInputTime`), read once for every verb that takes them
//! (`events`, `logs`, the prunes' and `volume ls`'s filters).

use crate::error::{Error, Result};

/// The date layouts besides RFC 3339; without a zone they are UTC, as
/// podman 4.3 reads them (whatever `TZ` says).
const NAIVE_FORMATS: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"];

/// A time as podman reads it, in nanoseconds since the epoch, in podman's
/// order: RFC 3339, `2006-01-02T15:04:05[.999]`, `2006-01-02` and
/// `2006-01-02Z07:00`, Unix seconds (`1700000000`, `1700000000.5`), then a
/// Go duration (`10m`, `1h30m`, `1.5s`) before now (`since`) or after now
/// (until), as podman computes it.
pub fn parse_time(s: &str, since: bool, now_ns: i64) -> Result<i64> {
    let t = s.trim();
    date(t)
        .or_else(|| unix_seconds(t))
        .or_else(|| go_duration_ns(t).map(|d| if since { now_ns - d } else { now_ns + d }))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unable to interpret time value {s:?}: use RFC 3339 (2006-01-02T15:04:05Z), a date (2006-01-02), Unix seconds, or a duration (10m, 1h30m)"
            ))
        })
}

/// The date forms.
fn date(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    for f in NAIVE_FORMATS {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    let (day, zone) = match s.find(['Z', '+']).or_else(|| s.get(10..).and(Some(10))) {
        Some(10) => (&s[..10], &s[10..]),
        _ => (s, ""),
    };
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let offset = match zone {
        "" | "Z" => 0,
        z => {
            let t = chrono::DateTime::parse_from_rfc3339(&format!("{day}T00:00:00{z}")).ok()?;
            i64::from(t.offset().local_minus_utc())
        }
    };
    d.and_hms_opt(0, 0, 0)?
        .and_utc()
        .timestamp_nanos_opt()
        .map(|ns| ns - offset * 1_000_000_000)
}

/// Unix seconds with up to nine fraction digits, exactly.
fn unix_seconds(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    secs.parse::<i64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers with
/// units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; in nanoseconds.
pub fn go_duration_ns(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    let ns = total as i64;
    Some(if neg { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_time_forms() {
        let now = 1_800_000_000_000_000_000;
        let t = |s: &str| parse_time(s, true, now).unwrap();
        assert_eq!(t("2024-01-01T00:00:02Z"), 1_704_067_202_000_000_000);
        assert_eq!(t("2024-01-01T02:00:02+02:00"), 1_704_067_202_000_000_000);
        assert_eq!(t("2024-01-01T00:00:02.5Z"), 1_704_067_202_500_000_000);
        assert_eq!(t("2024-01-01T00:00:02"), 1_704_067_202_000_000_000);
        assert_eq!(t("2024-01-01T00:00:02.25"), 1_704_067_202_250_000_000);
        assert_eq!(t("2024-01-01"), 1_704_067_200_000_000_000);
        assert_eq!(t("1704067202"), 1_704_067_202_000_000_000);
        assert_eq!(t("1704067202.5"), 1_704_067_202_500_000_000);
        assert_eq!(t("10m"), now - 600_000_000_000);
        assert_eq!(t("1h30m"), now - 5_400_000_000_000);
        assert_eq!(t("1.5h"), now - 5_400_000_000_000);
        assert_eq!(t("300ms"), now - 300_000_000);
        assert_eq!(t("0"), 0);
        // until: a duration is after now.
        assert_eq!(parse_time("10s", false, now).unwrap(), now + 10_000_000_000);
        for bad in ["", "yesterday", "10x", "1h-", "2024-13-01", "m"] {
            assert!(parse_time(bad, true, now).is_err(), "{bad:?} read");
        }
    }
}
