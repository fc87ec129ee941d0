//! `logs`, and the time forms podman's `--since`/`--until` accept.

use std::io::Write as _;

use cairn_engine::container::{logs as engine_logs, Containers};

use super::args::LogsArgs;
use super::usage;
use crate::context::Context;

/// `--since`/`--until` (and prune's `until=`) as podman reads them
/// ([`cairn_engine::time::parse_time`]), in nanoseconds since the epoch.
pub(crate) fn parse_time_at(s: &str, since: bool, now_ns: i64) -> Option<i64> {
    cairn_engine::time::parse_time(s, since, now_ns).ok()
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
