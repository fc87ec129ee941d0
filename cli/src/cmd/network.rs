//! `network create|ls|inspect|rm|prune|exists|connect|disconnect`.
//!
//! podman's networks are configured bridge networks (its default `podman`,
//! those `network create` adds); `--network host|none|pasta|...` are modes,
//! not networks, and `network ls` does not list them. cairn keeps them in
//! its store (`cairn_engine::network::Networks`) in podman's JSON, and
//! prints and refuses as podman does.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_engine::lifecycle::{self, IfRunning};
use cairn_engine::network::{self, Attachment, CreateNetwork, Network, Networks};
use cairn_engine::Containers;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::context::Context;
use crate::exit;
use crate::format::Format;
use crate::output::{self, Table};

/// `cairn network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks (host, none, pasta, ... are modes of --network, not
    /// networks, as in podman).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show details of networks as JSON.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove the networks no container uses.
    Prune(PruneArgs),
    /// Exit 0 if the network exists, 1 if not.
    Exists(ExistsArgs),
    /// Attach a stopped or created container to a network.
    Connect(ConnectArgs),
    /// Detach a stopped or created container from a network.
    Disconnect(DisconnectArgs),
}

/// `network create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver (only bridge).
    #[arg(short = 'd', long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// Subnet in CIDR form (IPv4); default: the first free 10.89.N.0/24.
    #[arg(long, value_name = "SUBNET")]
    pub subnet: Option<String>,
    /// The subnet's gateway; default: its first address.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// No route out of the network.
    #[arg(long)]
    pub internal: bool,
    /// No DNS (aardvark-dns) on the network.
    #[arg(long = "disable-dns")]
    pub disable_dns: bool,
    /// Labels (KEY=VALUE).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Driver options (KEY=VALUE), recorded.
    #[arg(short = 'o', long = "opt", value_name = "OPT")]
    pub opts: Vec<String>,
    /// The bridge's name on the host; default: cairnN.
    #[arg(long = "interface-name", value_name = "NAME")]
    pub interface_name: Option<String>,
    /// Refused: cairn's networks are IPv4.
    #[arg(long = "ipv6", hide = true)]
    pub ipv6: bool,
    /// Refused: addresses come from the whole subnet.
    #[arg(long = "ip-range", hide = true, value_name = "RANGE")]
    pub ip_range: Option<String>,
    /// Refused: cairn's IPAM is its own (host-local).
    #[arg(long = "ipam-driver", hide = true, value_name = "DRIVER")]
    pub ipam_driver: Option<String>,
    /// The network's name.
    pub name: Option<String>,
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

/// `network rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove the containers using the network too.
    #[arg(short, long)]
    pub force: bool,
    /// Seconds to wait before killing a running container (with -f).
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Networks to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `network prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask (cairn never asks).
    #[arg(short, long)]
    pub force: bool,
    /// Filter: label=, until=.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// `network exists` arguments.
#[derive(Debug, Args)]
pub struct ExistsArgs {
    /// The network.
    pub network: String,
}

/// `network connect` flags.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Another DNS name of the container on this network.
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// The container's IPv4 address on it.
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Option<String>,
    /// The container's MAC address on it.
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac: Option<String>,
    /// Refused: cairn's networks are IPv4.
    #[arg(long = "ip6", hide = true, value_name = "IP")]
    pub ip6: Option<String>,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// `network disconnect` arguments.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Accepted (a stopped container has nothing to force).
    #[arg(short, long)]
    pub force: bool,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// Runs a `network` verb.
pub fn run(ctx: &Context, cmd: NetworkCommand) -> anyhow::Result<u8> {
    match cmd {
        NetworkCommand::Create(a) => create(ctx, a),
        NetworkCommand::Ls(a) => ls(ctx, a),
        NetworkCommand::Inspect(a) => inspect(ctx, a),
        NetworkCommand::Rm(a) => rm(ctx, a),
        NetworkCommand::Prune(a) => prune(ctx, a),
        NetworkCommand::Exists(a) => exists(ctx, a),
        NetworkCommand::Connect(a) => connect(ctx, a),
        NetworkCommand::Disconnect(a) => disconnect(ctx, a),
    }
}

fn engine(msg: impl Into<String>) -> anyhow::Error {
    exit::with_code(exit::ENGINE, msg)
}

/// `Error: cairn does not support --X (WHY)`, exit 125 (as the container
/// verbs refuse a flag).
fn refuse(flag: &str, why: &str) -> anyhow::Error {
    engine(format!("cairn does not support --{flag} ({why})"))
}

fn store(ctx: &Context) -> Networks {
    Networks::new(ctx.root())
}

/// `KEY=VALUE` entries (a key alone has an empty value).
fn key_values(given: &[String]) -> BTreeMap<String, String> {
    given
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn create(ctx: &Context, a: CreateArgs) -> anyhow::Result<u8> {
    const IPV4: &str = "cairn's bridge networks are IPv4 only";
    if a.ipv6 {
        return Err(refuse("ipv6", IPV4));
    }
    if a.ip_range.is_some() {
        return Err(refuse(
            "ip-range",
            "addresses are given out from the whole subnet",
        ));
    }
    if a.ipam_driver.is_some() {
        return Err(refuse("ipam-driver", "cairn's IPAM is its own, host-local"));
    }
    let nets = store(ctx);
    let name = match a.name {
        Some(n) => n,
        None => {
            let all = nets.list()?;
            (1..)
                .map(|n| format!("cairn{n}"))
                .find(|n| !all.iter().any(|x| &x.name == n))
                .expect("an unused name")
        }
    };
    let net = nets.create(&CreateNetwork {
        name,
        driver: a.driver,
        subnet: a.subnet,
        gateway: a.gateway,
        internal: a.internal,
        disable_dns: a.disable_dns,
        labels: key_values(&a.labels),
        options: key_values(&a.opts),
        interface: a.interface_name,
    })?;
    println!("{}", net.name);
    Ok(0)
}

/// The filter keys podman's `network ls` takes.
const FILTER_KEYS: &[&str] = &["name", "id", "driver", "label", "until", "dangling"];

/// Checks `--filter` values as podman does: `(key, negated, value)`.
fn check_filters(filters: &[String]) -> anyhow::Result<Vec<(String, bool, String)>> {
    let mut out = Vec::new();
    for f in filters {
        let Some((key, value)) = f.split_once('=') else {
            return Err(engine(format!(
                "filter input must be in the form of filter=value: {f} is invalid"
            )));
        };
        let negated = key.ends_with('!');
        let key = key.trim_end_matches('!');
        if !FILTER_KEYS.contains(&key) {
            return Err(engine(format!("invalid filter {key:?}")));
        }
        out.push((key.to_owned(), negated, value.to_owned()));
    }
    Ok(out)
}

/// Whether `n` passes every filter (values of one key are or-ed, keys
/// and-ed, as podman does). `used`: some container is attached to it.
fn passes(n: &Network, used: bool, filters: &[(String, bool, String)]) -> anyhow::Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for (key, negated, value) in filters {
        let hit = match key.as_str() {
            "name" => n.name.contains(value.as_str()),
            "id" => n.id.starts_with(value.as_str()),
            "driver" => n.driver == *value,
            "label" => match value.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(value.as_str()),
            },
            "dangling" => match value.as_str() {
                "true" | "1" => !used,
                "false" | "0" => used,
                _ => return Err(engine(format!("invalid dangling filter value \"{value}\""))),
            },
            "until" => {
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
                let t = cairn_engine::time::parse_time(value, false, now)
                    .map_err(|e| engine(e.to_string()))?;
                chrono::DateTime::parse_from_rfc3339(&n.created)
                    .ok()
                    .and_then(|c| c.timestamp_nanos_opt())
                    .is_some_and(|c| c < t)
            }
            _ => true,
        };
        by_key.entry(key).or_default().push(hit != *negated);
    }
    Ok(by_key.values().all(|hits| hits.iter().any(|h| *h)))
}

/// A network for `ls --format` templates: podman's report fields.
fn report(n: &Network, no_trunc: bool) -> Value {
    json!({
        "Name": n.name,
        "ID": if no_trunc { &n.id[..] } else { &n.id[..12.min(n.id.len())] },
        "Driver": n.driver,
        "NetworkInterface": n.network_interface,
        "Created": n.created,
        "Subnets": n.subnets.iter().map(|s| json!({"Subnet": s.subnet, "Gateway": s.gateway})).collect::<Vec<_>>(),
        "IPv6Enabled": n.ipv6_enabled,
        "Internal": n.internal,
        "DNSEnabled": n.dns_enabled,
        "Labels": n.labels,
        "Options": n.options,
        "IPAMOptions": n.ipam_options,
    })
}

/// Every network with whether some container uses it.
fn with_use(ctx: &Context) -> anyhow::Result<Vec<(Network, bool)>> {
    let containers = Containers::new(ctx.root());
    let all = containers.list()?;
    Ok(store(ctx)
        .list()?
        .into_iter()
        .map(|n| {
            let used = all.iter().any(|c| {
                c.config.namespaces.network == network::NetworkMode::Bridge
                    && c.config.networks.contains_key(&n.name)
            });
            (n, used)
        })
        .collect())
}

/// `cairn network ls`.
fn ls(ctx: &Context, a: LsArgs) -> anyhow::Result<u8> {
    let filters = check_filters(&a.filters)?;
    let format = Format::parse(a.format.as_deref(), "")?;
    let mut shown = Vec::new();
    for (n, used) in with_use(ctx)? {
        if passes(&n, used, &filters)? {
            shown.push(n);
        }
    }
    if a.quiet {
        for n in &shown {
            println!("{}", n.name);
        }
        return Ok(0);
    }
    match format {
        Format::Json => {
            let v = serde_json::to_value(&shown)?;
            println!("{}", output::json_indent(&v, 2));
        }
        f @ Format::Template { .. } => {
            let items: Vec<Value> = shown.iter().map(|n| report(n, a.no_trunc)).collect();
            let sample = report(&Networks::default_network(), false);
            let headers = crate::format::headers(&sample, &[("ID", "NETWORK ID")]);
            print!("{}", f.render(&items, &headers, a.noheading)?);
        }
        Format::Default => {
            let mut t = Table::default();
            if !a.noheading {
                t.row(["NETWORK ID", "NAME", "DRIVER"]);
            }
            for n in &shown {
                let id = if a.no_trunc { &n.id[..] } else { &n.id[..12] };
                t.row([id, n.name.as_str(), n.driver.as_str()]);
            }
            print!("{}", t.render());
        }
    }
    Ok(0)
}

/// `cairn network inspect`: the networks found, then an error for each
/// one not found (podman's words).
fn inspect(ctx: &Context, a: InspectArgs) -> anyhow::Result<u8> {
    let format = Format::parse_inspect(a.format.as_deref())?;
    let nets = store(ctx);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &a.names {
        match nets.try_find(name)? {
            Some(n) => found.push(n),
            None => errors.push(format!(
                "network {name}: unable to find network with name or ID {name}: network not found"
            )),
        }
    }
    let docs = serde_json::to_value(&found)?;
    match &format {
        Format::Json | Format::Default => println!("{}", output::json_indent(&docs, 5)),
        f @ Format::Template { .. } => {
            // The template sees podman's Go fields (Name, ID, DNSEnabled, ...).
            let reports: Vec<Value> = found.iter().map(|n| report(n, true)).collect();
            print!("{}", f.render_all(&Value::Array(reports))?);
        }
    }
    let Some(last) = errors.pop() else {
        return Ok(0);
    };
    for e in errors {
        eprintln!("Error: {e}");
    }
    Err(engine(format!("inspecting object: {last}")))
}

/// `cairn network rm`.
fn rm(ctx: &Context, a: RmArgs) -> anyhow::Result<u8> {
    let nets = store(ctx);
    let containers = Containers::new(ctx.root());
    let mut errors: Vec<(u8, String)> = Vec::new();
    for spec in &a.names {
        let Some(n) = nets.try_find(spec)? else {
            if !a.force {
                errors.push((
                    1,
                    format!("unable to find network with name or ID {spec}: network not found"),
                ));
            }
            continue;
        };
        if n.name == network::DEFAULT_NETWORK {
            errors.push((125, format!("default network {} cannot be removed", n.name)));
            continue;
        }
        let users = network::users(&containers, &n.name)?;
        if !users.is_empty() {
            if !a.force {
                errors.push((
                    2,
                    format!(
                        "\"{}\" has associated containers with it. Use -f to forcibly delete containers and pods: network is being used",
                        n.name
                    ),
                ));
                continue;
            }
            for c in &users {
                lifecycle::remove(
                    &containers,
                    c,
                    IfRunning::Stop,
                    Duration::from_secs(a.time),
                    false,
                )?;
            }
        }
        nets.remove(&n.name)?;
        println!("{}", n.name);
    }
    exit::finish(errors)
}

/// `cairn network prune`: every network but the default that no
/// container uses, and that the filters accept.
fn prune(ctx: &Context, a: PruneArgs) -> anyhow::Result<u8> {
    let filters = check_filters(&a.filters)?;
    let nets = store(ctx);
    for (n, used) in with_use(ctx)? {
        if used || n.name == network::DEFAULT_NETWORK || !passes(&n, used, &filters)? {
            continue;
        }
        nets.remove(&n.name)?;
        println!("{}", n.name);
    }
    Ok(0)
}

/// `cairn network exists`: 0 when it does, 1 when not.
fn exists(ctx: &Context, a: ExistsArgs) -> anyhow::Result<u8> {
    Ok(if store(ctx).try_find(&a.network)?.is_some() {
        0
    } else {
        1
    })
}

fn connect(ctx: &Context, a: ConnectArgs) -> anyhow::Result<u8> {
    if a.ip6.is_some() {
        return Err(refuse("ip6", "cairn's bridge networks are IPv4 only"));
    }
    let mut att = Attachment {
        aliases: a.aliases,
        static_mac: a.mac,
        ..Attachment::default()
    };
    if let Some(ip) = a.ip {
        let ip: std::net::Ipv4Addr = ip
            .parse()
            .map_err(|_| engine(format!("--ip {ip}: not an IPv4 address")))?;
        att.static_ips.push(ip.to_string());
    }
    network::connect(
        &Containers::new(ctx.root()),
        &store(ctx),
        &a.container,
        &a.network,
        att,
    )?;
    Ok(0)
}

fn disconnect(ctx: &Context, a: DisconnectArgs) -> anyhow::Result<u8> {
    network::disconnect(
        &Containers::new(ctx.root()),
        &store(ctx),
        &a.container,
        &a.network,
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_as_podmans() {
        let f = |v: &[&str]| {
            check_filters(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert!(f(&["name=podman", "driver=bridge", "label!=a"]).is_ok());
        assert_eq!(
            f(&["nokey"]).unwrap_err(),
            "filter input must be in the form of filter=value: nokey is invalid"
        );
        assert_eq!(f(&["foo=bar"]).unwrap_err(), "invalid filter \"foo\"");
    }

    #[test]
    fn filters_select_as_podmans() {
        let mut n = Networks::default_network();
        n.labels.insert("a".into(), "1".into());
        let f = |v: &[&str], used: bool| {
            let fs = check_filters(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            passes(&n, used, &fs).unwrap()
        };
        assert!(f(&["name=pod"], false));
        assert!(!f(&["name=x"], false));
        assert!(f(&["name=x", "name=pod"], false));
        assert!(f(&["label=a", "label=a=1"], false));
        assert!(!f(&["label=a=2"], false));
        assert!(!f(&["label!=a"], false));
        assert!(f(&["dangling=true"], false));
        assert!(!f(&["dangling=true"], true));
        assert!(f(&["id=2f259bab"], true));
        assert!(f(&["driver=bridge"], true));
    }
}
