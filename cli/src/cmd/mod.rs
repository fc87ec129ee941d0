//! One module per group of verbs.

pub mod archive;
pub mod build;
pub mod commit;
pub mod container;
pub mod cp;
pub mod events;
pub mod image;
pub mod login;
pub mod network;
pub mod push;
pub mod system;
pub mod unpack;
pub mod volume;

use std::time::Duration;

/// A runtime for the commands that talk to registries.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Parses `2s`, `500ms`, `1m`, or plain seconds, as podman's durations.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}: use e.g. 500ms, 2s, 1m"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => anyhow::bail!("invalid duration {s:?}: use e.g. 500ms, 2s, 1m"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `--since`/`--until`/`until=`: the forms podman accepts (RFC 3339,
/// `2006-01-02[T15:04:05]`, Unix seconds, a duration before now), in
/// nanoseconds since the epoch; see `container::logs`.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    container::parse_time_since(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2024-01-01T00:00:02Z").unwrap(),
            1_704_067_202_000_000_000
        );
        assert_eq!(parse_time("1.5").unwrap(), 1_500_000_000);
        assert!(parse_time("yesterday").is_err());
    }
}

/// The registry flags `pull` and `push` share, as podman spells them.
#[derive(Debug, Clone, Copy)]
pub struct RegistryFlags<'a> {
    /// `--tls-verify`.
    pub tls_verify: Option<bool>,
    /// `--authfile`.
    pub authfile: Option<&'a std::path::Path>,
    /// `--cert-dir`.
    pub cert_dir: Option<&'a std::path::Path>,
    /// `--creds USER[:PASSWORD]`.
    pub creds: Option<&'a str>,
    /// `--retry`.
    pub retry: Option<u32>,
    /// `--retry-delay`.
    pub retry_delay: Option<&'a str>,
}

impl RegistryFlags<'_> {
    /// The registry options: the environment's, then these flags.
    pub fn options(&self) -> anyhow::Result<cairn_registry::RegistryOptions> {
        use anyhow::Context as _;
        let mut registry = cairn_registry::RegistryOptions::from_env()?;
        registry.tls_verify = self.tls_verify;
        registry.auth_files = cairn_registry::AuthFiles::discover(self.authfile);
        registry.cert_dir = self.cert_dir.map(std::path::Path::to_path_buf);
        if let Some(c) = self.creds {
            registry.credentials = Some(cairn_registry::Credentials::parse(c).map_err(|e| {
                crate::exit::with_code(crate::exit::ENGINE, format!("--creds: {e}"))
            })?);
        }
        if let Some(r) = self.retry {
            registry.retries = r;
        }
        if let Some(d) = self.retry_delay {
            registry.retry_delay = Some(parse_duration(d).context("--retry-delay")?);
        }
        Ok(registry)
    }
}
