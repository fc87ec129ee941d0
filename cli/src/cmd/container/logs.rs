//! `logs`, and the time forms podman's `--since`/`--until` accept.

use std::io::Write as _;

use cairn_engine::container::{logs as engine_logs, Containers};

use super::args::LogsArgs;
use super::usage;
use crate::context::Context;

/// The date layouts podman accepts besides RFC 3339 (its
/// `util.ParseInputTime`): without a zone they are UTC, as podman 4.3 reads
/// them (whatever `TZ` says).
const NAIVE_FORMATS: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"];

/// A Go duration (`1h30m`, `10m`, `1.5s`, `300ms`) in nanoseconds.
fn go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * unit;
        rest = &rest[u..];
    }
    let ns = total as i64;
    Some(if neg { -ns } else { ns })
}

/// `--since`/`--until` (and prune's `until=`) as podman reads them, in
/// nanoseconds since the epoch: RFC 3339, `2006-01-02T15:04:05[.999]`,
/// `2006-01-02`, `2006-01-02Z07:00`, a Go duration (before now for since,
/// after now for until, as podman computes it), or Unix seconds
/// (`1700000000`, `1700000000.5`).
pub(crate) fn parse_time_at(s: &str, since: bool, now_ns: i64) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    for f in NAIVE_FORMATS {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    let (date, zone) = match s.find(['Z', '+']).or_else(|| s.get(10..).and(Some(10))) {
        Some(10) => (&s[..10], &s[10..]),
        _ => (s, ""),
    };
    if let Ok(d) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0)?;
        let offset = match zone {
            "" | "Z" => 0,
            z => {
                let t =
                    chrono::DateTime::parse_from_rfc3339(&format!("{date}T00:00:00{z}")).ok()?;
                i64::from(t.offset().local_minus_utc())
            }
        };
        return midnight
            .and_utc()
            .timestamp_nanos_opt()
            .map(|ns| ns - offset * 1_000_000_000);
    }
    if let Some(d) = go_duration(s) {
        return Some(if since { now_ns - d } else { now_ns + d });
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let secs: i64 = secs.parse().ok()?;
        let nanos: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return secs.checked_mul(1_000_000_000)?.checked_add(nanos);
    }
    None
}

/// [`parse_time_at`] now, with podman's error.
pub(crate) fn parse_time_flag(flag: &str, s: &str) -> anyhow::Result<i64> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    parse_time_at(s, flag != "--until", now).ok_or_else(|| {
        usage(format!(
            "parsing {flag} {s:?}: unable to interpret time value"
        ))
    })
}

/// A time given to `until=` filters: before now for durations.
pub fn parse_time_since(s: &str) -> anyhow::Result<i64> {
    parse_time_flag("--since", s)
}

/// `cairn logs`: several containers' lines are prefixed with the short id
/// (or, with `--names`, the name), as podman does.
pub fn logs(ctx: &Context, a: LogsArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let mut opts = engine_logs::Options {
        since: a
            .since
            .as_deref()
            .map(|s| parse_time_flag("--since", s))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| parse_time_flag("--until", s))
            .transpose()?,
        tail: a.tail.and_then(|t| usize::try_from(t).ok()),
        timestamps: a.timestamps,
        prefix: None,
    };
    let names = if a.latest {
        if !a.containers.is_empty() {
            return Err(usage("--latest and containers cannot be used together"));
        }
        let last = containers
            .list()?
            .pop()
            .ok_or_else(|| usage("no containers to show logs of: --latest found none"))?;
        vec![last.config.id.to_string()]
    } else if a.containers.is_empty() {
        return Err(usage("specify at least one container name or ID to log"));
    } else {
        a.containers.clone()
    };
    // Resolved first: a missing name fails before anything is printed.
    let found = names
        .iter()
        .map(|n| containers.find(n))
        .collect::<Result<Vec<_>, _>>()?;
    let multi = found.len() > 1;
    for c in &found {
        if multi {
            opts.prefix = Some(if a.names {
                c.config.name.clone()
            } else {
                c.config.id.short().to_owned()
            });
        }
        engine_logs::stream(
            c,
            &opts,
            a.follow,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )?;
    }
    let _ = std::io::stdout().flush();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    /// podman's forms (util.ParseInputTime), each to the instant it means.
    #[test]
    fn podmans_time_forms() {
        let t = |s: &str| parse_time_at(s, true, NOW);
        assert_eq!(t("2024-01-01T00:00:02Z"), Some(1_704_067_202_000_000_000));
        assert_eq!(
            t("2024-01-01T01:00:02+01:00"),
            Some(1_704_067_202_000_000_000)
        );
        assert_eq!(t("2024-01-01T00:00:02"), Some(1_704_067_202_000_000_000));
        assert_eq!(t("2024-01-01T00:00:02.5"), Some(1_704_067_202_500_000_000));
        assert_eq!(t("2024-01-01"), Some(1_704_067_200_000_000_000));
        assert_eq!(t("2024-01-01Z"), Some(1_704_067_200_000_000_000));
        assert_eq!(t("2024-01-01+01:00"), Some(1_704_063_600_000_000_000));
        assert_eq!(t("1704067202"), Some(1_704_067_202_000_000_000));
        assert_eq!(t("1704067202.25"), Some(1_704_067_202_250_000_000));
        assert_eq!(t("10m"), Some(NOW - 600_000_000_000));
        assert_eq!(t("1h30m"), Some(NOW - 5_400_000_000_000));
        assert_eq!(t("1.5s"), Some(NOW - 1_500_000_000));
        // --until: a duration counts forward, as podman computes it.
        assert_eq!(
            parse_time_at("10m", false, NOW),
            Some(NOW + 600_000_000_000)
        );
        for bad in ["bogus", "2024-01-01T09:00", "10x", "", "1.2.3", "m"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(
            format!("{:#}", parse_time_flag("--since", "bogus").unwrap_err()),
            "parsing --since \"bogus\": unable to interpret time value"
        );
    }
}
