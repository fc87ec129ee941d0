//! `-p/--publish` and `-P/--publish-all`: podman's
//! `[[IP:][HOSTPORT]:]CONTAINERPORT[/PROTOCOL]` grammar, with ranges
//! (`8000-8005:80-85`), IPv6 hosts in brackets (`[::1]:8080:80`) and
//! protocol lists (`53/tcp,udp`). A host port left out is picked now, free
//! at create time, as podman does.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

pub use cairn_runtime::protocol::PortForward;

use crate::error::{Error, Result};

/// One `-p` value, parsed; `host_port` 0 = to be picked.
fn parse_one(spec: &str) -> Result<Vec<PortForward>> {
    let bad = |why: &str| Error::Invalid(format!("invalid port format {spec:?}: {why}"));
    let (addr_ports, protos) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (spec, "tcp"),
    };
    let mut protocols = Vec::new();
    for p in protos.split(',') {
        match p {
            "tcp" | "udp" | "sctp" => {
                if !protocols.contains(&p) {
                    protocols.push(p)
                }
            }
            _ => return Err(bad(&format!("unknown protocol {p:?} (tcp, udp, sctp)"))),
        }
    }
    // [IPv6]:host:ctr, or split from the right on ':'.
    let (host_ip, rest) = if let Some(v6) = addr_ports.strip_prefix('[') {
        let (ip, rest) = v6.split_once(']').ok_or_else(|| bad("missing ]"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| bad("give [IPv6]:HOSTPORT:CONTAINERPORT"))?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad("bad IPv6 address"))?;
        (ip.to_string(), rest)
    } else {
        let parts: Vec<&str> = addr_ports.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), addr_ports),
            3 => {
                let ip = parts[0];
                let ip = if ip.is_empty() {
                    String::new()
                } else {
                    ip.parse::<IpAddr>()
                        .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?
                        .to_string()
                };
                (ip, &addr_ports[parts[0].len() + 1..])
            }
            _ => return Err(bad("too many colons (IPv6 addresses go in brackets)")),
        }
    };
    let (host, ctr) = match rest.split_once(':') {
        Some((h, c)) => (Some(h).filter(|h| !h.is_empty()), c),
        None => (None, rest),
    };
    let (ctr_first, ctr_len) = range(ctr).map_err(|w| bad(&w))?;
    let (host_first, host_len) = match host {
        Some(h) => range(h).map_err(|w| bad(&w))?,
        None => (0, ctr_len),
    };
    if host.is_some() && host_len != ctr_len {
        return Err(bad(&format!(
            "host and container port ranges differ in length ({host_len} and {ctr_len})"
        )));
    }
    let mut out = Vec::new();
    for protocol in protocols {
        if host_first == 0 && ctr_len > 1 {
            // Random host ports: one per container port (podman's too).
            for i in 0..ctr_len {
                out.push(PortForward {
                    host_ip: host_ip.clone(),
                    container_port: ctr_first + i,
                    host_port: 0,
                    range: 1,
                    protocol: protocol.to_owned(),
                });
            }
        } else {
            out.push(PortForward {
                host_ip: host_ip.clone(),
                container_port: ctr_first,
                host_port: host_first,
                range: ctr_len,
                protocol: protocol.to_owned(),
            });
        }
    }
    Ok(out)
}

/// `N` or `N-M`: (first, count).
fn range(s: &str) -> std::result::Result<(u16, u16), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{p:?} is not a port number (1-65535)")),
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("range {s:?} ends before it starts"));
            }
            Ok((a, b - a + 1))
        }
        None => Ok((port(s)?, 1)),
    }
}

/// Every `-p` value, parsed; host ports left out are picked (free now).
/// Two mappings of one host port and protocol on overlapping addresses
/// are refused, as podman refuses them.
pub fn parse_publish(specs: &[String]) -> Result<Vec<PortForward>> {
    let mut out = Vec::new();
    for s in specs {
        out.extend(parse_one(s)?);
    }
    assign_free_ports(&mut out)?;
    check_conflicts(&out)?;
    Ok(out)
}

/// `-P`: each exposed port (`80/tcp` keys of the image's `ExposedPorts` and
/// `--expose`) not already published, on a free host port.
pub fn publish_all(
    exposed: &BTreeMap<String, serde_json::Value>,
    published: &[PortForward],
) -> Result<Vec<PortForward>> {
    let mut out = Vec::new();
    for key in exposed.keys() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let (first, len) =
            range(port).map_err(|w| Error::Invalid(format!("exposed port {key:?}: {w}")))?;
        for p in first..=first.saturating_add(len - 1) {
            let taken = published.iter().any(|m| {
                m.protocol == proto && (m.container_port..m.container_port + m.range).contains(&p)
            });
            if !taken {
                out.push(PortForward {
                    host_ip: String::new(),
                    container_port: p,
                    host_port: 0,
                    range: 1,
                    protocol: proto.to_owned(),
                });
            }
        }
    }
    assign_free_ports(&mut out)?;
    Ok(out)
}

/// Picks a free host port for each mapping without one: the kernel's
/// choice for a socket bound to port 0 (tcp for sctp too).
fn assign_free_ports(ports: &mut [PortForward]) -> Result<()> {
    let mut picked: Vec<u16> = Vec::new();
    for m in ports.iter_mut().filter(|m| m.host_port == 0) {
        let ip: IpAddr = m
            .host_ip
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, 0);
        // Retry a few times so that two mappings never get the same port.
        let mut port = 0;
        for _ in 0..16 {
            let p = if m.protocol == "udp" {
                UdpSocket::bind(addr).and_then(|s| s.local_addr())
            } else {
                TcpListener::bind(addr).and_then(|s| s.local_addr())
            }
            .map_err(|e| Error::Invalid(format!("pick a free host port on {ip}: {e}")))?
            .port();
            if !picked.contains(&p) {
                port = p;
                break;
            }
        }
        if port == 0 {
            return Err(Error::Invalid("could not pick a free host port".into()));
        }
        picked.push(port);
        m.host_port = port;
    }
    Ok(())
}

/// Two mappings of the same host port and protocol on the same (or all)
/// addresses.
fn check_conflicts(ports: &[PortForward]) -> Result<()> {
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            let same_ip = a.host_ip.is_empty() || b.host_ip.is_empty() || a.host_ip == b.host_ip;
            let overlap =
                a.host_port < b.host_port + b.range && b.host_port < a.host_port + a.range;
            if a.protocol == b.protocol && same_ip && overlap {
                return Err(Error::Invalid(format!(
                    "conflicting port mappings for host port {} ({})",
                    b.host_port, b.protocol
                )));
            }
        }
    }
    Ok(())
}

/// podman's `ps` `.Ports`: `0.0.0.0:8080->80/tcp, ...`, ranges as
/// `0.0.0.0:8000-8005->80-85/tcp`.
pub fn ps_ports(ports: &[PortForward]) -> String {
    ports
        .iter()
        .map(|m| {
            let ip = if m.host_ip.is_empty() {
                "0.0.0.0".to_owned()
            } else if m.host_ip.contains(':') {
                format!("[{}]", m.host_ip)
            } else {
                m.host_ip.clone()
            };
            if m.range > 1 {
                format!(
                    "{ip}:{}-{}->{}-{}/{}",
                    m.host_port,
                    m.host_port + (m.range - 1),
                    m.container_port,
                    m.container_port + (m.range - 1),
                    m.protocol
                )
            } else {
                format!("{ip}:{}->{}/{}", m.host_port, m.container_port, m.protocol)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each mapping expanded to single ports: `(container "80/tcp", host ip,
/// host port)`, in order (podman's `.NetworkSettings.Ports`, `port`).
pub fn expanded(ports: &[PortForward]) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for m in ports {
        for i in 0..m.range {
            out.push((
                format!("{}/{}", m.container_port + i, m.protocol),
                m.host_ip.clone(),
                m.host_port + i,
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A port forward, for tables.
    pub(crate) fn pf(ip: &str, ctr: u16, host: u16, range: u16, proto: &str) -> PortForward {
        PortForward {
            host_ip: ip.into(),
            container_port: ctr,
            host_port: host,
            range,
            protocol: proto.into(),
        }
    }

    #[test]
    fn podman_accepted_forms() {
        for (spec, want) in [
            ("8080:80", vec![pf("", 80, 8080, 1, "tcp")]),
            ("8080:80/udp", vec![pf("", 80, 8080, 1, "udp")]),
            (
                "127.0.0.1:8080:80",
                vec![pf("127.0.0.1", 80, 8080, 1, "tcp")],
            ),
            ("[::1]:8080:80", vec![pf("::1", 80, 8080, 1, "tcp")]),
            ("8000-8005:80-85", vec![pf("", 80, 8000, 6, "tcp")]),
            (
                "53:53/tcp,udp",
                vec![pf("", 53, 53, 1, "tcp"), pf("", 53, 53, 1, "udp")],
            ),
            ("9000:90/sctp", vec![pf("", 90, 9000, 1, "sctp")]),
            (":8080:80", vec![pf("", 80, 8080, 1, "tcp")]),
        ] {
            assert_eq!(parse_one(spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn a_left_out_host_port_is_picked_free() {
        let got = parse_publish(&["80".into(), "127.0.0.1::81/udp".into()]).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|m| m.host_port > 0));
        assert_ne!(got[0].host_port, got[1].host_port);
        assert_eq!(
            (got[1].host_ip.as_str(), got[1].protocol.as_str()),
            ("127.0.0.1", "udp")
        );
        let range = parse_publish(&["90-92".into()]).unwrap();
        assert_eq!(range.len(), 3);
        assert_eq!(
            range.iter().map(|m| m.container_port).collect::<Vec<_>>(),
            [90, 91, 92]
        );
    }

    #[test]
    fn podman_refused_forms() {
        for bad in [
            "",
            "0",
            "70000",
            "80/icmp",
            "a:80",
            "1.2.3.4.5:80:80",
            "::1:80:80",
            "[::1]80:80",
            "8000-8005:80-84",
            "85-80",
            "1:2:3:4",
            "x:8080:80",
            "8080:",
        ] {
            assert!(parse_one(bad).is_err(), "{bad:?}");
        }
        assert!(parse_publish(&["8080:80".into(), "8080:81".into()]).is_err());
        assert!(parse_publish(&["8080:80".into(), "8080:81/udp".into()]).is_ok());
        assert!(parse_publish(&["127.0.0.1:8080:80".into(), "127.0.0.2:8080:81".into()]).is_ok());
    }

    #[test]
    fn publish_all_takes_the_exposed_ports_not_published() {
        let mut exposed = BTreeMap::new();
        exposed.insert("80/tcp".to_owned(), serde_json::json!({}));
        exposed.insert("53/udp".to_owned(), serde_json::json!({}));
        let got = publish_all(&exposed, &[pf("", 80, 8080, 1, "tcp")]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].container_port, got[0].protocol.as_str()),
            (53, "udp")
        );
        assert!(got[0].host_port > 0);
    }

    #[test]
    fn ps_shows_ports_as_podman() {
        assert_eq!(
            ps_ports(&[pf("", 80, 8080, 1, "tcp"), pf("::1", 80, 8000, 3, "udp")]),
            "0.0.0.0:8080->80/tcp, [::1]:8000-8002->80-82/udp"
        );
        assert_eq!(
            expanded(&[pf("127.0.0.1", 80, 8000, 2, "tcp")]),
            [
                ("80/tcp".into(), "127.0.0.1".into(), 8000),
                ("81/tcp".into(), "127.0.0.1".into(), 8001)
            ]
        );
    }
}
