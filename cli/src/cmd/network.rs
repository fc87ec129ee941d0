//! `network ls|inspect|exists`.
//!
//! podman's networks are configured networks (its default `podman` bridge,
//! those `network create` adds); `--network host|none|private` are modes,
//! not networks, and podman's `network ls` does not list them. cairn has
//! those modes (host is its default) and no configured network yet (no
//! bridge), so `network ls` lists none, `network exists` answers 1 and
//! `network inspect` reports every name as not found, in podman's words.
//! Flags are checked as podman checks them, so a script learns the truth
//! rather than a usage error.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::exit;
use crate::format::Format;
use crate::output::{self, Table};

/// `cairn network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks (cairn has none: host, none and private are modes of
    /// --network, not networks, as in podman).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show details of networks as JSON.
    Inspect(InspectArgs),
    /// Exit 0 if the network exists, 1 if not.
    Exists(ExistsArgs),
}

/// `network ls` flags.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Filter: name=, id=, driver=, label=, until=, dangling=.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Output format: table, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate network ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Omit the table header.
    #[arg(long)]
    pub noheading: bool,
    /// Print only network names.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `network inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Networks to inspect.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Go template applied to each result, or json.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `network exists` arguments.
#[derive(Debug, Args)]
pub struct ExistsArgs {
    /// The network.
    pub network: String,
}

/// The filter keys podman's `network ls` takes.
const FILTER_KEYS: &[&str] = &["name", "id", "driver", "label", "until", "dangling"];

/// Checks `--filter` values as podman does.
fn check_filters(filters: &[String]) -> anyhow::Result<()> {
    for f in filters {
        let Some((key, _)) = f.split_once('=') else {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("filter input must be in the form of filter=value: {f} is invalid"),
            ));
        };
        if !FILTER_KEYS.contains(&key.trim_end_matches('!')) {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("invalid filter {key:?}"),
            ));
        }
    }
    Ok(())
}

/// The fields a `network ls --format` template sees (podman's network
/// report), here for the header row.
fn fields() -> Value {
    json!({
        "Name": "", "ID": "", "Driver": "", "NetworkInterface": "", "Created": "",
        "Subnets": [], "IPv6Enabled": false, "Internal": false, "DNSEnabled": false,
        "Labels": {}, "Options": {}, "IPAMOptions": {},
    })
}

/// `cairn network ls`.
pub fn ls(a: LsArgs) -> anyhow::Result<u8> {
    check_filters(&a.filters)?;
    let networks: Vec<Value> = Vec::new();
    if a.quiet {
        return Ok(0);
    }
    match Format::parse(a.format.as_deref(), "")? {
        Format::Json => println!("{}", output::json_indent(&Value::Array(networks), 4)),
        f @ Format::Template { .. } => {
            let headers = crate::format::headers(&fields(), &[("ID", "NETWORK ID")]);
            print!("{}", f.render(&networks, &headers, a.noheading)?);
        }
        Format::Default => {
            if !a.noheading {
                let mut t = Table::default();
                t.row(["NETWORK ID", "NAME", "DRIVER"]);
                print!("{}", t.render());
            }
        }
    }
    Ok(0)
}

/// `cairn network inspect`: every name is not found (podman prints the
/// empty list, then the error).
pub fn inspect(a: InspectArgs) -> anyhow::Result<u8> {
    // A bad template is a usage error even with nothing to apply it to; a
    // good one has nothing to print.
    if let Format::Json | Format::Default = Format::parse_inspect(a.format.as_deref())? {
        println!("[]");
    }
    let mut errors: Vec<String> = a
        .names
        .iter()
        .map(|n| {
            format!("network {n}: unable to find network with name or ID {n}: network not found")
        })
        .collect();
    let last = errors.pop().expect("names are required");
    for e in errors {
        eprintln!("Error: {e}");
    }
    Err(exit::with_code(
        exit::ENGINE,
        format!("inspecting object: {last}"),
    ))
}

/// `cairn network exists`: 1, cairn has no networks.
pub fn exists(_a: ExistsArgs) -> anyhow::Result<u8> {
    Ok(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_are_checked_as_podmans() {
        let f = |v: &[&str]| {
            super::check_filters(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert!(f(&["name=podman", "driver=bridge", "label!=a"]).is_ok());
        assert_eq!(
            f(&["nokey"]).unwrap_err(),
            "filter input must be in the form of filter=value: nokey is invalid"
        );
        assert_eq!(f(&["foo=bar"]).unwrap_err(), "invalid filter \"foo\"");
    }
}
