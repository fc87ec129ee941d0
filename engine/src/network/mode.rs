//! `--network`: how a container gets its network, as podman's flag names
//! it, and the per-network options of a named network.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default bridge network's name (root).
pub const DEFAULT_NETWORK: &str = "podman";

/// A container's network mode, recorded in `config.json` as podman's
/// `--network` value (`host`, `none`, `private`, `bridge`, `pasta`,
/// `pasta:OPTS`, `slirp4netns:OPTS`, `ns:PATH`, `container:ID`), so that
/// configs written before cairn had networks (`host`, `private`, `none`)
/// read unchanged. The networks of [`NetworkMode::Bridge`] are the
/// config's `networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network namespace, shared.
    #[default]
    Host,
    /// A namespace of its own with only `lo` (podman's `none`).
    None,
    /// A namespace of its own with only `lo` (cairn's older name).
    Private,
    /// Bridge networks through netavark: the config's `networks`.
    Bridge,
    /// pasta, with these extra options.
    Pasta(Vec<String>),
    /// slirp4netns, with these options (`allow_host_loopback=true`, ...).
    Slirp4netns(Vec<String>),
    /// Join the network namespace at this path.
    Ns(PathBuf),
    /// Join the network namespace of this container (its full id).
    Container(String),
}

impl NetworkMode {
    /// Shared with the host.
    pub fn is_host(&self) -> bool {
        *self == NetworkMode::Host
    }

    /// A namespace of the container's own is created (not host, not joined).
    pub fn creates_namespace(&self) -> bool {
        !matches!(
            self,
            NetworkMode::Host | NetworkMode::Ns(_) | NetworkMode::Container(_)
        )
    }

    /// Published ports can reach it (podman discards them for host, none
    /// and container:).
    pub fn publishes_ports(&self) -> bool {
        matches!(
            self,
            NetworkMode::Bridge | NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_)
        )
    }

    /// The mode as `config.json` records it and podman's
    /// `.HostConfig.NetworkMode` shows it.
    pub fn as_string(&self) -> String {
        let with = |name: &str, opts: &[String]| {
            if opts.is_empty() {
                name.to_owned()
            } else {
                format!("{name}:{}", opts.join(","))
            }
        };
        match self {
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Private => "private".into(),
            NetworkMode::Bridge => "bridge".into(),
            NetworkMode::Pasta(o) => with("pasta", o),
            NetworkMode::Slirp4netns(o) => with("slirp4netns", o),
            NetworkMode::Ns(p) => format!("ns:{}", p.display()),
            NetworkMode::Container(id) => format!("container:{id}"),
        }
    }

    /// Reads a recorded mode (see [`NetworkMode::as_string`]).
    pub fn from_recorded(s: &str) -> Option<NetworkMode> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        let opts = || {
            rest.map(|r| r.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        Some(match (kind, rest) {
            ("host", None) => NetworkMode::Host,
            ("none", None) => NetworkMode::None,
            ("private", None) => NetworkMode::Private,
            ("bridge", None) => NetworkMode::Bridge,
            ("pasta", _) => NetworkMode::Pasta(opts()),
            ("slirp4netns", _) => NetworkMode::Slirp4netns(opts()),
            ("ns", Some(p)) if !p.is_empty() => NetworkMode::Ns(p.into()),
            ("container", Some(c)) if !c.is_empty() => NetworkMode::Container(c.into()),
            _ => return None,
        })
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NetworkMode::from_recorded(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown network mode {s:?}")))
    }
}

/// A container's attachment to one bridge network: podman's
/// `NAME:ip=...,alias=...,mac=...,interface_name=...`, and
/// `--network-alias`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attachment {
    /// Addresses asked for (`ip=`, `ip6=`); empty = allocated at start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_ips: Vec<String>,
    /// Extra DNS names on this network (besides the container's name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `mac=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_mac: Option<String>,
    /// `interface_name=`; `None` = `eth0`, `eth1`, ... in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
}

/// What `--network` (each given value, in order) and `--network-alias`
/// ask for: the mode and, for bridge networks, the networks by name.
/// `None` in `values` means no `--network`: the caller's default applies.
pub fn parse_network_flags(
    values: &[String],
    aliases: &[String],
) -> Result<Option<(NetworkMode, BTreeMap<String, Attachment>)>> {
    let refuse = |msg: String| Err(Error::Invalid(msg));
    let Some((first, rest)) = values.split_first() else {
        if !aliases.is_empty() {
            // podman: aliases without a network apply to the default one.
            let mut nets = BTreeMap::new();
            nets.insert(
                DEFAULT_NETWORK.to_owned(),
                Attachment {
                    aliases: aliases.to_vec(),
                    ..Attachment::default()
                },
            );
            return Ok(Some((NetworkMode::Bridge, nets)));
        }
        return Ok(None);
    };
    let (kind, opts) = match first.split_once(':') {
        Some((k, o)) => (k, Some(o)),
        None => (first.as_str(), None),
    };
    let mode = match (kind, opts) {
        ("host", None) => Some(NetworkMode::Host),
        ("none", None) => Some(NetworkMode::None),
        ("private", None) => Some(NetworkMode::Private),
        ("" | "default", None) => None,
        ("pasta", o) => Some(NetworkMode::Pasta(split_opts(o))),
        ("slirp4netns", o) => Some(NetworkMode::Slirp4netns(split_opts(o))),
        ("ns" | "ns:", Some(p)) => {
            if !p.starts_with('/') {
                return refuse(format!(
                    "--network ns:{p}: give the absolute path of a network namespace"
                ));
            }
            Some(NetworkMode::Ns(p.into()))
        }
        ("container", Some(c)) if !c.is_empty() => Some(NetworkMode::Container(c.into())),
        ("host" | "none" | "private", Some(_)) => {
            return refuse(format!("--network {first}: {kind} takes no options"))
        }
        ("container" | "ns", _) => {
            return refuse(format!("--network {first}: give {kind}:VALUE"));
        }
        _ => None,
    };
    if let Some(mode) = mode {
        if !rest.is_empty() {
            return refuse(format!(
                "--network {first}: it cannot be combined with other networks"
            ));
        }
        if !aliases.is_empty() {
            return refuse("--network-alias applies to bridge networks only".to_owned());
        }
        return Ok(Some((mode, BTreeMap::new())));
    }
    let mut nets: BTreeMap<String, Attachment> = BTreeMap::new();
    for v in values {
        match v.split_once(':') {
            Some((name, o)) => {
                let name = if name == "bridge" {
                    DEFAULT_NETWORK
                } else {
                    name
                };
                check_name(name)?;
                let a = bridge_options(v, o)?;
                if nets.insert(name.to_owned(), a).is_some() {
                    return refuse(format!("--network {v}: network {name} given twice"));
                }
            }
            None => {
                for name in v.split(',') {
                    let name = match name {
                        "bridge" | "" | "default" => DEFAULT_NETWORK,
                        n => n,
                    };
                    if matches!(
                        name,
                        "host" | "none" | "private" | "pasta" | "slirp4netns" | "ns" | "container"
                    ) {
                        return refuse(format!(
                            "--network {v}: {name} cannot be combined with other networks"
                        ));
                    }
                    check_name(name)?;
                    nets.entry(name.to_owned()).or_default();
                }
            }
        }
    }
    for a in nets.values_mut() {
        a.aliases.extend(aliases.iter().cloned());
    }
    Ok(Some((NetworkMode::Bridge, nets)))
}

/// A network name: podman's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "network name {name} invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"
        )))
    }
}

fn split_opts(o: Option<&str>) -> Vec<String> {
    o.map(|o| {
        o.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// podman's per-network options: `ip=`, `ip6=`, `alias=`, `mac=`,
/// `interface_name=`, separated by `,`.
fn bridge_options(flag: &str, opts: &str) -> Result<Attachment> {
    let mut a = Attachment::default();
    for kv in opts.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if v.is_empty() {
            return Err(Error::Invalid(format!(
                "--network {flag}: option {kv:?} needs a value"
            )));
        }
        match k {
            "ip" | "ip6" => {
                let ip: std::net::IpAddr = v.parse().map_err(|_| {
                    Error::Invalid(format!("--network {flag}: {v:?} is not an IP address"))
                })?;
                a.static_ips.push(ip.to_string());
            }
            "alias" => a.aliases.push(v.to_owned()),
            "mac" => a.static_mac = Some(v.to_owned()),
            "interface_name" => a.interface_name = Some(v.to_owned()),
            _ => {
                return Err(Error::Invalid(format!(
                    "--network {flag}: unknown bridge network option {k:?} (ip, ip6, alias, mac, interface_name)"
                )))
            }
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        v: &[&str],
        aliases: &[&str],
    ) -> Result<Option<(NetworkMode, BTreeMap<String, Attachment>)>> {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        let a: Vec<String> = aliases.iter().map(|s| s.to_string()).collect();
        parse_network_flags(&v, &a)
    }

    #[test]
    fn modes_parse_and_record_as_podman_names_them() {
        for (given, recorded) in [
            ("host", "host"),
            ("none", "none"),
            ("private", "private"),
            ("pasta", "pasta"),
            ("pasta:-T,8080", "pasta:-T,8080"),
            (
                "slirp4netns:allow_host_loopback=true",
                "slirp4netns:allow_host_loopback=true",
            ),
            ("ns:/run/netns/x", "ns:/run/netns/x"),
            ("container:abc", "container:abc"),
        ] {
            let (mode, nets) = parse(&[given], &[]).unwrap().unwrap();
            assert!(nets.is_empty(), "{given}");
            assert_eq!(mode.as_string(), recorded);
            let json = serde_json::to_value(&mode).unwrap();
            assert_eq!(json, recorded);
            assert_eq!(serde_json::from_value::<NetworkMode>(json).unwrap(), mode);
        }
        assert_eq!(parse(&[], &[]).unwrap(), None);
    }

    #[test]
    fn named_networks_with_options_and_aliases() {
        let (mode, nets) = parse(&["a,b"], &["web"]).unwrap().unwrap();
        assert_eq!(mode, NetworkMode::Bridge);
        assert_eq!(nets.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(nets["a"].aliases, ["web"]);
        let (_, nets) = parse(&["bridge"], &[]).unwrap().unwrap();
        assert_eq!(nets.keys().collect::<Vec<_>>(), ["podman"]);
        let (_, nets) = parse(&["n1:ip=10.89.0.5,alias=db,alias=sql", "n2"], &[])
            .unwrap()
            .unwrap();
        assert_eq!(nets["n1"].static_ips, ["10.89.0.5"]);
        assert_eq!(nets["n1"].aliases, ["db", "sql"]);
        assert_eq!(nets["n2"], Attachment::default());
        let (_, nets) = parse(&[], &["x"]).unwrap().unwrap();
        assert_eq!(nets["podman"].aliases, ["x"]);
    }

    #[test]
    fn refused_forms() {
        for bad in [
            &["host", "a"][..],
            &["a", "host"],
            &["host:x"],
            &["ns:rel/path"],
            &["container:"],
            &["n1:ip=notanip"],
            &["n1:foo=bar"],
            &["n1:ip="],
            &["-bad"],
            &["a/b"],
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad:?}");
        }
        assert!(parse(&["host"], &["x"]).is_err());
    }

    #[test]
    fn old_recorded_modes_read() {
        for s in ["host", "private", "none"] {
            let m: NetworkMode = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(m.as_string(), s);
        }
        assert!(serde_json::from_value::<NetworkMode>(serde_json::json!("bogus")).is_err());
    }
}
