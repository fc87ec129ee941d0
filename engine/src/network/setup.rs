//! What a start hands the monitor for the container's network
//! ([`NetworkSpec`], or a namespace to join), and what the container's
//! `/etc/hosts` and `/etc/resolv.conf` say about it ([`NetFiles`]).
//!
//! The spec is recorded beside the container (`network.json`) before the
//! monitor starts, so that whatever ends the monitor (kill -9 included) a
//! later command can tear the network down with it ([`release`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cairn_runtime::protocol::NetworkSpec;
use serde_json::{json, Map, Value};

use super::store::{Network, Networks};
use super::{find_tool, NetworkMode, PortForward};
use crate::container::{Config, Container, Containers};
use crate::error::{Context as _, Error, Result};

/// The recorded spec of the container's last start.
pub const SPEC_FILE: &str = "network.json";
/// Where the namespace is bind-mounted.
pub const NETNS_FILE: &str = "netns";
/// netavark's status output.
pub const STATUS_FILE: &str = "network-status.json";
/// pasta's or slirp4netns's pid.
pub const TOOL_PID_FILE: &str = "network.pid";
/// slirp4netns's API socket.
pub const SLIRP_SOCKET: &str = "slirp4netns.sock";
/// netavark's `--config` directory as root.
pub const NETAVARK_CONFIG_DIR: &str = "/run/cairn/netavark";
/// The address pasta forwards DNS queries from (to the host's resolver),
/// podman's choice.
pub const PASTA_DNS: &str = "169.254.1.1";

/// What the container's files say about its network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFiles {
    /// Its own addresses (`/etc/hosts` names them with its name).
    pub ips: Vec<String>,
    /// What `host.containers.internal` names; `None` = the host's address.
    pub host_gateway: Option<String>,
    /// Nameservers replacing the host's; `None` = the host's (loopback
    /// ones left out).
    pub nameservers: Option<Vec<String>>,
    /// Search domains before the host's.
    pub search: Vec<String>,
}

/// A start's network: the monitor's spec, or the namespace to join, and
/// the files' facts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `MonitorSpec.network`.
    pub spec: Option<NetworkSpec>,
    /// `MonitorSpec.join_net`.
    pub join_net: Option<PathBuf>,
    /// For `/etc/hosts` and `/etc/resolv.conf`.
    pub files: NetFiles,
}

/// Where podman looks for netavark and aardvark-dns (after containers.conf's
/// `helper_binaries_dir`).
const HELPER_DIRS: &[&str] = &[
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
];

/// A podman helper binary (`netavark`, `aardvark-dns`).
pub fn find_helper(name: &str) -> Option<PathBuf> {
    HELPER_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The network of `c`'s next start, from its config: for bridge networks
/// an address allocated on each (under the networks' lock) and netavark's
/// options; pasta's or slirp4netns's arguments; the namespace of `ns:` or
/// `container:`. `root` is the store root.
pub fn plan(c: &Container, root: &Path, rootless: bool) -> Result<Plan> {
    if c.config.namespaces.network.publishes_ports() {
        ports_free(c, root)?;
    }
    plan_mode(c, root, rootless)
}

/// [`plan`] once the ports are known to be free.
fn plan_mode(c: &Container, root: &Path, rootless: bool) -> Result<Plan> {
    let cfg = &c.config;
    let dir = &c.dir;
    match &cfg.namespaces.network {
        NetworkMode::Host | NetworkMode::None | NetworkMode::Private => Ok(Plan::default()),
        NetworkMode::Ns(p) => Ok(Plan {
            join_net: Some(p.clone()),
            ..Plan::default()
        }),
        NetworkMode::Container(id) if rootless => Err(Error::Refused(format!(
            "container {}: --network container:{id} is not supported rootless yet: each rootless cairn command has a user namespace of its own, which has no rights over another container's network namespace (podman keeps one for all in its pause process); run both as root, or publish the other container's port and reach it through host.containers.internal",
            cfg.name
        ))),
        NetworkMode::Container(id) => Ok(Plan {
            join_net: Some(other_netns(root, id)?),
            ..Plan::default()
        }),
        NetworkMode::Pasta(opts) => {
            let binary = find_tool("pasta").ok_or_else(|| {
                Error::Refused(
                    "pasta is not installed (Debian: passt): use --network slirp4netns".into(),
                )
            })?;
            // uid 0 here is also the root of a rootless user namespace, where
            // pasta's `nobody` is not mapped: keep 0 in both cases.
            let args = pasta_args(&cfg.ports, opts, nix::unistd::geteuid().is_root())?;
            Ok(Plan {
                spec: Some(NetworkSpec::Pasta {
                    binary,
                    args,
                    netns_file: dir.join(NETNS_FILE),
                    pid_file: dir.join(TOOL_PID_FILE),
                }),
                join_net: None,
                files: NetFiles {
                    ips: Vec::new(),
                    host_gateway: host_default_gateway().map(|g| g.to_string()),
                    nameservers: Some(vec![PASTA_DNS.into()]),
                    search: Vec::new(),
                },
            })
        }
        NetworkMode::Slirp4netns(opts) => {
            let binary = find_tool("slirp4netns").ok_or_else(|| {
                Error::Refused("slirp4netns is not installed: use --network pasta".into())
            })?;
            let (args, host_loopback) = slirp_args(opts)?;
            Ok(Plan {
                spec: Some(NetworkSpec::Slirp4netns {
                    binary,
                    args,
                    netns_file: dir.join(NETNS_FILE),
                    pid_file: dir.join(TOOL_PID_FILE),
                    api_socket: dir.join(SLIRP_SOCKET),
                    ports: cfg.ports.clone(),
                }),
                join_net: None,
                files: NetFiles {
                    ips: vec!["10.0.2.100".into()],
                    host_gateway: host_loopback.then(|| "10.0.2.2".into()),
                    nameservers: Some(vec!["10.0.2.3".into()]),
                    search: Vec::new(),
                },
            })
        }
        NetworkMode::Bridge => bridge_plan(c, root, rootless),
    }
}

/// Every published host port is free: no other running container of
/// this store publishes it, and it can be bound now (netavark's DNAT
/// rules would not notice a port some host process listens on). podman's
/// words when one is taken.
fn ports_free(c: &Container, root: &Path) -> Result<()> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
    let taken = |p: &PortForward, port: u16| {
        let ip: IpAddr = p
            .host_ip
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let fam = if ip.is_ipv4() { "4" } else { "6" };
        let host = if p.host_ip.is_empty() {
            String::new()
        } else {
            p.host_ip.clone()
        };
        Error::Refused(format!(
            "cannot listen on the {} port: listen {}{fam} {host}:{port}: bind: address already in use",
            p.protocol.to_uppercase(),
            if p.protocol == "udp" { "udp" } else { "tcp" },
        ))
    };
    let others = Containers::new(root).list()?;
    for p in &c.config.ports {
        for port in p.host_port..p.host_port.saturating_add(p.range) {
            let clash = others.iter().any(|o| {
                o.config.id != c.config.id
                    && o.live().status.is_alive()
                    && o.config.ports.iter().any(|q| {
                        q.protocol == p.protocol
                            && (q.host_ip.is_empty()
                                || p.host_ip.is_empty()
                                || q.host_ip == p.host_ip)
                            && (q.host_port..q.host_port.saturating_add(q.range)).contains(&port)
                    })
            });
            let ip: IpAddr = p
                .host_ip
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let addr = SocketAddr::new(ip, port);
            let bound = match p.protocol.as_str() {
                "udp" => UdpSocket::bind(addr).is_ok(),
                _ => TcpListener::bind(addr).is_ok(),
            };
            if clash || !bound {
                return Err(taken(p, port));
            }
        }
    }
    Ok(())
}

fn bridge_plan(c: &Container, root: &Path, rootless: bool) -> Result<Plan> {
    let cfg = &c.config;
    if cfg.networks.is_empty() {
        // Disconnected from every network: lo only, as podman.
        return Ok(Plan::default());
    }
    if rootless {
        return Err(Error::Refused(format!(
            "container {}: bridge networks need root (rootless bridges, netavark --rootless in a rootless network namespace, are not supported by cairn): use --network pasta or slirp4netns",
            cfg.name
        )));
    }
    let binary = find_helper("netavark").ok_or_else(|| {
        Error::Refused(
            "netavark is not installed (Debian: netavark): bridge networks need it".into(),
        )
    })?;
    let aardvark =
        find_helper("aardvark-dns").unwrap_or_else(|| "/usr/lib/podman/aardvark-dns".into());
    // netavark makes its aardvark-dns directory there, not the parents.
    std::fs::create_dir_all(NETAVARK_CONFIG_DIR)
        .with_context(|| format!("create {NETAVARK_CONFIG_DIR}"))?;
    let store = Networks::new(root);
    let containers = Containers::new(root);
    let holds = |id: &str| holds_address(&containers, id);
    let mut nets = Vec::new();
    for (name, att) in &cfg.networks {
        let net = store.find(name)?;
        let wanted = att
            .static_ips
            .iter()
            .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
        let (ip, _len) = store.allocate(&net, cfg.id.as_str(), wanted, &holds)?;
        nets.push((net, att, ip));
    }
    let options = netavark_options(cfg, &nets);
    let dns: Vec<&Network> = nets
        .iter()
        .map(|(n, ..)| n)
        .filter(|n| n.dns_enabled)
        .collect();
    let files = NetFiles {
        ips: nets.iter().map(|(.., ip)| ip.to_string()).collect(),
        host_gateway: nets
            .iter()
            .find_map(|(n, ..)| n.gateway())
            .map(|g| g.to_string()),
        nameservers: (!dns.is_empty()).then(|| {
            dns.iter()
                .filter_map(|n| n.gateway())
                .map(|g| g.to_string())
                .collect()
        }),
        search: if dns.is_empty() {
            Vec::new()
        } else {
            vec!["dns.podman".into()]
        },
    };
    Ok(Plan {
        spec: Some(NetworkSpec::Netavark {
            binary,
            aardvark,
            config_dir: NETAVARK_CONFIG_DIR.into(),
            netns_file: c.dir.join(NETNS_FILE),
            options,
            status_file: c.dir.join(STATUS_FILE),
            rootless: false,
        }),
        join_net: None,
        files,
    })
}

/// netavark's network options for `cfg` on `nets` (network, the
/// container's options on it, its address).
pub fn netavark_options(cfg: &Config, nets: &[(Network, &super::Attachment, Ipv4Addr)]) -> Value {
    let mut networks = Map::new();
    let mut info = Map::new();
    for (i, (net, att, ip)) in nets.iter().enumerate() {
        // netavark names the container by `container_name` itself: the
        // name again here made aardvark-dns answer every lookup twice.
        let mut aliases: Vec<String> = att.aliases.clone();
        aliases.push(cfg.id.short().to_owned());
        let mut opts = json!({
            "interface_name": att.interface_name.clone().unwrap_or_else(|| format!("eth{i}")),
            "static_ips": [ip.to_string()],
            "aliases": aliases,
        });
        if let Some(mac) = &att.static_mac {
            opts["static_mac"] = json!(mac);
        }
        networks.insert(net.name.clone(), opts);
        info.insert(
            net.name.clone(),
            serde_json::to_value(net).unwrap_or(Value::Null),
        );
    }
    json!({
        "container_id": cfg.id.as_str(),
        "container_name": cfg.name,
        "networks": networks,
        "network_info": info,
        "port_mappings": cfg.ports,
    })
}

/// pasta's arguments: the namespace configured as the host's interface is
/// (`--config-net`), the published ports (`-t`/`-u`, none else), no
/// forwarding from the namespace to the host's ports (`-T none -U none`),
/// DNS queries to [`PASTA_DNS`] forwarded to the host's resolver; as uid
/// 0 (real root, or root of cairn's rootless user namespace), `--runas 0`
/// (pasta would drop to nobody and lose the namespace file).
/// The `pasta:OPTS` options come last.
pub fn pasta_args(ports: &[PortForward], opts: &[String], root: bool) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec!["--config-net".into(), "-q".into()];
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for p in ports {
        let spec = pasta_port(p);
        match p.protocol.as_str() {
            "tcp" => tcp.push(spec),
            "udp" => udp.push(spec),
            other => {
                return Err(Error::Refused(format!(
                    "pasta cannot publish {other} ports (tcp and udp only)"
                )))
            }
        }
    }
    for (flag, specs) in [("-t", tcp), ("-u", udp)] {
        if specs.is_empty() {
            args.extend([flag.into(), "none".into()]);
        }
        for s in specs {
            args.extend([flag.into(), s]);
        }
    }
    args.extend(["-T", "none", "-U", "none"].map(String::from));
    args.extend(["--dns-forward".into(), PASTA_DNS.into()]);
    if root {
        args.extend(["--runas".into(), "0".into()]);
    }
    args.extend(opts.iter().cloned());
    Ok(args)
}

/// One mapping as pasta's `[ADDR/]HOST[-END][:CTR[-END]]`.
fn pasta_port(p: &PortForward) -> String {
    let span = |first: u16| {
        if p.range > 1 {
            format!("{first}-{}", first + (p.range - 1))
        } else {
            first.to_string()
        }
    };
    let addr = if p.host_ip.is_empty() {
        String::new()
    } else {
        format!("{}/", p.host_ip)
    };
    format!("{addr}{}:{}", span(p.host_port), span(p.container_port))
}

/// slirp4netns's arguments from podman's `slirp4netns:` options
/// (`allow_host_loopback=`, `mtu=`, `cidr=`, `enable_ipv6=`,
/// `outbound_addr=`); and whether the host's loopback is reachable
/// (`10.0.2.2`).
pub fn slirp_args(opts: &[String]) -> Result<(Vec<String>, bool)> {
    let mut args: Vec<String> = vec!["--configure".into()];
    let mut mtu = "65520".to_owned();
    let mut host_loopback = false;
    for o in opts {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        let flag = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::Refused(format!(
                "slirp4netns option {o}: give true or false"
            ))),
        };
        match k {
            "allow_host_loopback" => host_loopback = flag(v)?,
            "enable_ipv6" => {
                if flag(v)? {
                    args.push("--enable-ipv6".into());
                }
            }
            "mtu" => mtu = v.to_owned(),
            "cidr" => args.push(format!("--cidr={v}")),
            "outbound_addr" => args.push(format!("--outbound-addr={v}")),
            "outbound_addr6" => args.push(format!("--outbound-addr6={v}")),
            "port_handler" => {}
            _ => {
                return Err(Error::Refused(format!(
                    "unknown slirp4netns option {o:?} (allow_host_loopback, cidr, enable_ipv6, mtu, outbound_addr, outbound_addr6)"
                )))
            }
        }
    }
    args.push(format!("--mtu={mtu}"));
    if !host_loopback {
        args.push("--disable-host-loopback".into());
    }
    Ok((args, host_loopback))
}

/// The network namespace of container `id` (`container:`): its bind-mounted
/// namespace file when it has one, else its PID 1's.
fn other_netns(root: &Path, id: &str) -> Result<PathBuf> {
    let other = Containers::new(root).find(id)?;
    if !other.live().status.is_alive() {
        return Err(Error::Refused(format!(
            "cannot join the network namespace of container {}: it is not running",
            other.config.name
        )));
    }
    let file = other.dir.join(NETNS_FILE);
    if file.exists() {
        return Ok(file);
    }
    Ok(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid)))
}

/// Whether container `id` still holds its addresses: it exists and runs,
/// or something (a start, a stop) holds its lock right now.
fn holds_address(containers: &Containers, id: &str) -> bool {
    dir_holds_address(&containers.dir().join(id))
}

/// Whether the container in `dir` (of any store) holds its addresses: it
/// exists and is running, stopping, or locked (a start in progress).
pub(crate) fn dir_holds_address(dir: &Path) -> bool {
    let dir = dir.to_path_buf();
    if !dir.join("config.json").exists() {
        return false;
    }
    match cairn_fsutil::LockGuard::try_acquire(&dir.join("lock"), cairn_fsutil::LockMode::Exclusive)
    {
        Ok(None) => return true,
        Ok(Some(_free)) => {}
        Err(_) => return true,
    }
    Container::load(&dir).is_ok_and(|c| c.live().status.is_alive())
}

/// The host's default IPv4 gateway (`/proc/net/route`), which pasta
/// copies into the namespace and maps to the host's loopback.
pub fn host_default_gateway() -> Option<Ipv4Addr> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    default_gateway_of(&route)
}

fn default_gateway_of(route: &str) -> Option<Ipv4Addr> {
    route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000")
            .then(|| u32::from_str_radix(f[2], 16).ok())
            .flatten()
            .map(|g| Ipv4Addr::from(u32::from_be(g)))
            .filter(|g| !g.is_unspecified())
    })
}

/// Records `spec` beside the container (before the monitor starts).
pub fn record(c: &Container, spec: Option<&NetworkSpec>) -> Result<()> {
    let path = c.dir.join(SPEC_FILE);
    match spec {
        Some(s) => crate::container::write_json(&path, s),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
        },
    }
}

/// The spec recorded by the container's last start, if any.
pub fn recorded(c: &Container) -> Option<NetworkSpec> {
    let bytes = std::fs::read(c.dir.join(SPEC_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Undoes the network of `c`'s last start (after a crash, or before a
/// new start or a removal): the runtime's idempotent teardown of the
/// recorded spec, then the container's addresses freed. Call only when
/// the container does not run. `root` is the store root.
pub fn release(c: &Container, root: &Path) -> Result<()> {
    let mut first = None;
    if let Some(spec) = recorded(c) {
        if let Err(e) = cairn_runtime::network::teardown(&spec) {
            first = Some(Error::Refused(format!(
                "container {}: network teardown: {e}",
                c.config.name
            )));
        }
    }
    // The last run's addresses are not the next one's.
    let _ = std::fs::remove_file(c.dir.join(STATUS_FILE));
    Networks::new(root).free(c.config.id.as_str())?;
    first.map_or(Ok(()), Err)
}

/// What a container that does not run still holds of its network: the
/// namespace file (still there, so possibly still mounted, or a rule set
/// netavark has not removed), a pasta/slirp4netns process.
fn leftovers_of(c: &Container) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = recorded(c) else {
        return out;
    };
    let ns = spec.netns_file();
    if ns.exists() {
        out.push(format!("network namespace file {} left", ns.display()));
    }
    if let NetworkSpec::Pasta { pid_file, .. } | NetworkSpec::Slirp4netns { pid_file, .. } = &spec {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            // pasta runs as `passt.avx2` where the CPU has AVX2.
            let comm = comm.trim();
            if comm.starts_with("pasta") || comm.starts_with("passt") || comm == "slirp4netns" {
                out.push(format!("{comm} process {pid} still runs"));
            }
        }
    }
    out
}

/// Whether `c` is idle: nobody holds its lock (a start or stop in
/// progress), its monitor and PID 1 are gone. The lock, when free, is
/// returned held.
fn idle(c: &Container) -> Option<cairn_fsutil::LockGuard> {
    let lock = cairn_fsutil::LockGuard::try_acquire(
        &c.dir.join("lock"),
        cairn_fsutil::LockMode::Exclusive,
    )
    .ok()
    .flatten()?;
    let mut c = c.clone();
    c.reload().ok()?;
    (!c.monitor_alive() && !c.live().status.is_alive()).then_some(lock)
}

/// The network leftovers in the store at `root`, described (`system
/// check`): those of containers that do not run, and IPAM entries of
/// containers that no longer exist.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let containers = Containers::new(root);
    let mut out = Vec::new();
    for c in containers.list()? {
        if idle(&c).is_some() {
            for l in leftovers_of(&c) {
                out.push(format!("{}: {l}", c.config.name));
            }
        }
    }
    for (net, entries) in Networks::new(root).allocations()? {
        for (ip, id) in entries {
            if !containers.dir().join(&id).join("config.json").exists() {
                out.push(format!(
                    "bridge {net}: address {ip} held by container {id}, which does not exist"
                ));
            }
        }
    }
    Ok(out)
}

/// Releases the networks of every idle container that still holds some
/// (after a kill -9 of its monitor, or of cairn in the middle of a start),
/// and the IPAM entries of containers that no longer exist: what
/// `system check --repair` does, and what a start does first. Returns what
/// was released, described.
pub fn sweep(root: &Path) -> Result<Vec<String>> {
    let containers = Containers::new(root);
    let mut out = Vec::new();
    for c in containers.list()? {
        let Some(_lock) = idle(&c) else {
            continue;
        };
        let left = leftovers_of(&c);
        if left.is_empty() {
            continue;
        }
        release(&c, root)?;
        out.extend(left.into_iter().map(|l| format!("{}: {l}", c.config.name)));
    }
    let gone = Networks::new(root)
        .reclaim(&|id: &str| containers.dir().join(id).join("config.json").exists())?;
    out.extend(gone.into_iter().map(|(net, ip, id)| {
        format!("bridge {net}: address {ip} held by container {id}, which does not exist")
    }));
    Ok(out)
}

/// netavark's status output of the container's current run (addresses,
/// MAC addresses, DNS servers per network), if recorded.
pub fn status(c: &Container) -> Option<Value> {
    let bytes = std::fs::read(c.dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::tests::pf;
    use crate::network::Attachment;

    #[test]
    fn pasta_arguments() {
        assert_eq!(
            pasta_args(&[], &[], false).unwrap(),
            [
                "--config-net",
                "-q",
                "-t",
                "none",
                "-u",
                "none",
                "-T",
                "none",
                "-U",
                "none",
                "--dns-forward",
                PASTA_DNS
            ]
        );
        let ports = [
            pf("", 80, 8080, 1, "tcp"),
            pf("127.0.0.1", 80, 8000, 6, "tcp"),
            pf("::1", 53, 5353, 1, "udp"),
        ];
        assert_eq!(
            pasta_args(&ports, &["--mtu".into(), "1500".into()], true).unwrap(),
            [
                "--config-net",
                "-q",
                "-t",
                "8080:80",
                "-t",
                "127.0.0.1/8000-8005:80-85",
                "-u",
                "::1/5353:53",
                "-T",
                "none",
                "-U",
                "none",
                "--dns-forward",
                PASTA_DNS,
                "--runas",
                "0",
                "--mtu",
                "1500"
            ]
        );
        assert!(pasta_args(&[pf("", 9, 9, 1, "sctp")], &[], false).is_err());
    }

    #[test]
    fn slirp4netns_arguments() {
        assert_eq!(
            slirp_args(&[]).unwrap(),
            (
                vec![
                    "--configure".into(),
                    "--mtu=65520".into(),
                    "--disable-host-loopback".into()
                ],
                false
            )
        );
        let (args, lo) =
            slirp_args(&["allow_host_loopback=true".into(), "mtu=1500".into()]).unwrap();
        assert_eq!(args, ["--configure", "--mtu=1500"]);
        assert!(lo);
        assert!(slirp_args(&["bogus=1".into()]).is_err());
    }

    #[test]
    fn netavark_options_as_netavark_takes_them() {
        let mut cfg = Config {
            id: crate::ContainerId::parse(&"ab".repeat(32)).unwrap(),
            name: "t1".into(),
            ..Config::default()
        };
        cfg.ports = vec![pf("", 80, 18090, 1, "tcp")];
        let mut net = Networks::default_network();
        net.created = "2026-01-01T00:00:00Z".into();
        let att = Attachment {
            aliases: vec!["web".into()],
            ..Attachment::default()
        };
        let v = netavark_options(&cfg, &[(net, &att, Ipv4Addr::new(10, 87, 0, 5))]);
        assert_eq!(
            v,
            json!({
                "container_id": "ab".repeat(32),
                "container_name": "t1",
                "networks": {"podman": {
                    "interface_name": "eth0",
                    "static_ips": ["10.87.0.5"],
                    "aliases": ["web", "abababababab"],
                }},
                "network_info": {"podman": {
                    "name": "podman",
                    "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
                    "driver": "bridge",
                    "network_interface": "cairn0",
                    "created": "2026-01-01T00:00:00Z",
                    "subnets": [{"subnet": "10.87.0.0/16", "gateway": "10.87.0.1"}],
                    "ipv6_enabled": false,
                    "internal": false,
                    "dns_enabled": false,
                    "ipam_options": {"driver": "host-local"},
                }},
                "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": 18090, "range": 1, "protocol": "tcp"}],
            })
        );
    }

    #[test]
    fn default_gateway_from_the_route_table() {
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_gateway_of(route), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway_of("Iface\n"), None);
    }

    /// A container written to `root` as create leaves it (never started),
    /// with `ports` published on `mode`.
    fn container_on_disk(
        root: &Path,
        name: &str,
        mode: NetworkMode,
        ports: Vec<PortForward>,
    ) -> Container {
        let id = crate::ContainerId::random();
        let dir = root.join("containers").join(id.as_str());
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config {
            id,
            name: name.into(),
            ports,
            ..Config::default()
        };
        config.namespaces.network = mode;
        crate::container::write_json(&dir.join("config.json"), &config).unwrap();
        Container::load(&dir).unwrap()
    }

    #[test]
    fn a_taken_host_port_refuses_the_start_with_podmans_line() {
        let root = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let c = container_on_disk(
            root.path(),
            "web",
            NetworkMode::Pasta(Vec::new()),
            vec![pf("127.0.0.1", 80, port, 1, "tcp")],
        );
        let err = plan(&c, root.path(), true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("cannot listen on the TCP port: listen tcp4 127.0.0.1:{port}: bind: address already in use")
        );
        drop(taken);
        // Free again: the same container plans (pasta's arguments name it).
        if find_tool("pasta").is_some() {
            let p = plan(&c, root.path(), true).unwrap();
            let Some(NetworkSpec::Pasta { args, .. }) = p.spec else {
                panic!("pasta spec")
            };
            assert!(args.contains(&format!("127.0.0.1/{port}:80")), "{args:?}");
        }
    }

    #[test]
    fn crash_leftovers_are_reported_then_released_with_the_addresses() {
        let root = tempfile::tempdir().unwrap();
        let c = container_on_disk(root.path(), "left", NetworkMode::Bridge, Vec::new());
        let gone = crate::ContainerId::random();
        // What a killed monitor leaves: the recorded spec, its namespace
        // file (here not a mount), a pid file naming a process that is not
        // pasta; and an address of a container that no longer exists.
        let spec = NetworkSpec::Pasta {
            binary: "/usr/bin/pasta".into(),
            args: Vec::new(),
            netns_file: c.dir.join(NETNS_FILE),
            pid_file: c.dir.join(TOOL_PID_FILE),
        };
        std::fs::write(c.dir.join(NETNS_FILE), "").unwrap();
        std::fs::write(c.dir.join(TOOL_PID_FILE), std::process::id().to_string()).unwrap();
        record(&c, Some(&spec)).unwrap();
        let nets = Networks::new(root.path());
        // A bridge of this test's own: as root the addresses are the
        // host's, shared with every container running meanwhile.
        let net = Network {
            network_interface: format!("cut{}", std::process::id()),
            ..Networks::default_network()
        };
        let all = |_: &str| true;
        let (mine, _) = nets
            .allocate(&net, c.config.id.as_str(), None, &all)
            .unwrap();
        let (theirs, _) = nets.allocate(&net, gone.as_str(), None, &all).unwrap();
        let found = check(root.path()).unwrap();
        assert_eq!(
            found,
            [
                format!(
                    "left: network namespace file {} left",
                    c.dir.join(NETNS_FILE).display()
                ),
                format!(
                    "bridge {}: address {theirs} held by container {gone}, which does not exist",
                    net.network_interface
                ),
            ]
        );
        let released = sweep(root.path()).unwrap();
        assert_eq!(released, found);
        assert!(!c.dir.join(NETNS_FILE).exists());
        // This test's process was not signalled (it is not pasta), and
        // both addresses are free again.
        assert!(nets.allocations().unwrap().values().all(|e| e.is_empty()));
        assert!(check(root.path()).unwrap().is_empty());
        let (again, _) = nets.allocate(&net, "other", None, &all).unwrap();
        assert_eq!(again, mine);
        nets.free("other").unwrap();
    }
}
