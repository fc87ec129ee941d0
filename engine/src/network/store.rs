//! Named networks, kept as podman keeps them (one JSON file each, the
//! format `network inspect` prints), and the addresses given out on them.
//!
//! ```text
//! <root>/networks/<name>.json   one network, written atomically at create
//! <root>/networks/lock          flock: every change of a network
//! HOST/ipam.json                {bridge: {ip: container directory}}, the IPAM record
//! HOST/subnets.json             {bridge: {subnet, network, store}}, bridges claimed
//! HOST/lock                     flock: every change of the two above
//! ```
//!
//! A bridge and its subnet are the host's, not one store's: two stores
//! (two `CAIRN_ROOT`s, a test suite's many) that put containers on
//! `cairn0` must not hand out the same address, and two stores that create
//! networks must not pick the same subnet under two bridge names. So as
//! real root, HOST is `/run/cairn/networks` (gone at reboot with every
//! bridge), and an address is owned by the container's directory, whose
//! absence (in whichever store) frees it. Rootless (where bridges are
//! refused anyway) HOST is the store's own `networks/`.
//!
//! The default network [`DEFAULT_NETWORK`] is not a file: it always exists.
//! netavark does no IPAM, so cairn picks each container's address here, at
//! start, under the lock, and frees it when the network is torn down or
//! the container removed. Entries of containers that no longer run (gone,
//! or ended by a crash that skipped the free) are reclaimed at the next
//! allocation on that network. Crash rules: every file is replaced by
//! rename, so a crash leaves the old record or the new one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cairn_fsutil::{Durability, LockGuard, LockMode};
use serde::{Deserialize, Serialize};

use super::mode::{check_name, DEFAULT_NETWORK};
use crate::error::{Context as _, Error, Result};

/// The default network's id: sha256 of `podman`, as podman's.
pub const DEFAULT_NETWORK_ID: &str =
    "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9";
/// The default network's bridge.
pub const DEFAULT_INTERFACE: &str = "cairn0";
/// The default network's subnet.
pub const DEFAULT_SUBNET: &str = "10.87.0.0/16";

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// `10.89.0.0/24`.
    pub subnet: String,
    /// The bridge's address, the containers' route out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// A network, as podman's `network inspect` prints it and netavark's
/// `network_info` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// Always `bridge`.
    pub driver: String,
    /// The bridge's name on the host (`cairn0`, `cairn1`, ...).
    pub network_interface: String,
    /// RFC 3339 with ns.
    pub created: String,
    /// Its subnets (one, IPv4).
    pub subnets: Vec<Subnet>,
    /// Always false (cairn's IPAM is IPv4 only).
    pub ipv6_enabled: bool,
    /// No route out (`--internal`).
    pub internal: bool,
    /// aardvark-dns answers the containers' names.
    pub dns_enabled: bool,
    /// `--label`s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `--opt`s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// `{"driver": "host-local"}`.
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
}

impl Network {
    /// The first subnet, parsed: (network address, prefix length).
    pub fn ipv4_subnet(&self) -> Option<(Ipv4Addr, u8)> {
        self.subnets.iter().find_map(|s| parse_cidr(&s.subnet))
    }

    /// The first subnet's gateway.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.subnets.iter().find_map(|s| s.gateway.parse().ok())
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    /// The name (a random one is not made: podman's is required here).
    pub name: String,
    /// `--driver` (only `bridge`).
    pub driver: Option<String>,
    /// `--subnet`; `None` = the first free /24 from 10.89.0.0.
    pub subnet: Option<String>,
    /// `--gateway`; `None` = the subnet's first address.
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--disable-dns`.
    pub disable_dns: bool,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// `--opt`s.
    pub options: BTreeMap<String, String>,
    /// `--interface-name`.
    pub interface: Option<String>,
}

/// `a.b.c.d/n`, its address masked.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((Ipv4Addr::from(u32::from(ip) & mask(len)), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn contains(net: (Ipv4Addr, u8), ip: Ipv4Addr) -> bool {
    u32::from(ip) & mask(net.1) == u32::from(net.0)
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    u32::from(a.0) & mask(len) == u32::from(b.0) & mask(len)
}

/// The IPAM record: network name → address → container id.
type Ipam = BTreeMap<String, BTreeMap<String, String>>;

/// The host-wide directory of bridge addresses and claims, as real root.
pub const HOST_DIR: &str = "/run/cairn/networks";

/// A bridge claimed by a store's network (`HOST/subnets.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    subnet: String,
    network: String,
    store: PathBuf,
}

/// The networks of one store.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
    /// Where the IPAM record and the bridge claims are kept.
    host: PathBuf,
    /// The store's containers directory (owners are paths under it).
    owners: PathBuf,
}

/// Real root in the initial user namespace (not the root of a rootless
/// user namespace).
fn host_root() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

impl Networks {
    /// The networks of the store at `root`; addresses and bridge claims
    /// host-wide in [`HOST_DIR`] as real root, else in the store.
    pub fn new(root: &Path) -> Networks {
        let host = host_root().then(|| PathBuf::from(HOST_DIR));
        Networks::with_host_dir(root, host)
    }

    /// [`new`](Networks::new) with the host directory given (`None`: the
    /// store's own `networks/`).
    pub fn with_host_dir(root: &Path, host: Option<PathBuf>) -> Networks {
        let dir = root.join("networks");
        Networks {
            host: host.unwrap_or_else(|| dir.clone()),
            dir,
            owners: crate::container::Containers::new(root).dir().to_path_buf(),
        }
    }

    /// Takes the host lock (the IPAM record and the claims).
    fn host_lock(&self) -> Result<Option<LockGuard>> {
        if self.host == self.dir {
            // The store's own lock, which the caller may already hold.
            return Ok(None);
        }
        std::fs::create_dir_all(&self.host)
            .with_context(|| format!("create {}", self.host.display()))?;
        Ok(Some(LockGuard::acquire(
            &self.host.join("lock"),
            LockMode::Exclusive,
        )?))
    }

    /// The owner recorded for container `id` of this store.
    fn owner(&self, id: &str) -> String {
        self.owners.join(id).to_string_lossy().into_owned()
    }

    /// The id of `owner` if it is a container of this store.
    fn ours<'a>(&self, owner: &'a str) -> Option<&'a str> {
        owner
            .strip_prefix(self.owners.to_str()?)
            .and_then(|r| r.strip_prefix('/'))
    }

    /// Whether `owner` still holds its address: `holds` judges this
    /// store's containers; another store's holds it while it exists and
    /// runs (or is locked: a start in progress).
    fn held(&self, owner: &str, holds: &dyn Fn(&str) -> bool) -> bool {
        match self.ours(owner) {
            Some(id) => holds(id),
            None => super::setup::dir_holds_address(Path::new(owner)),
        }
    }

    fn read_claims(&self) -> Result<BTreeMap<String, Claim>> {
        let path = self.host.join("subnets.json");
        match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    fn write_claims(&self, claims: &BTreeMap<String, Claim>) -> Result<()> {
        let text = serde_json::to_vec_pretty(claims).context("encode the bridge claims")?;
        cairn_fsutil::write_atomic(
            &self.host.join("subnets.json"),
            &text,
            0o644,
            Durability::Durable,
        )?;
        Ok(())
    }

    /// The claims of networks (of any store) that still exist.
    fn live_claims(&self) -> Result<BTreeMap<String, Claim>> {
        let mut claims = self.read_claims()?;
        claims.retain(|_, c| c.store.join(format!("{}.json", c.network)).exists());
        Ok(claims)
    }

    /// The directory (`<root>/networks`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the networks' lock (every change of a network or the IPAM
    /// record holds it).
    pub fn lock(&self) -> Result<LockGuard> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        Ok(LockGuard::acquire(
            &self.dir.join("lock"),
            LockMode::Exclusive,
        )?)
    }

    /// The default network, as podman's (on cairn's own bridge and subnet).
    pub fn default_network() -> Network {
        Network {
            name: DEFAULT_NETWORK.into(),
            id: DEFAULT_NETWORK_ID.into(),
            driver: "bridge".into(),
            network_interface: DEFAULT_INTERFACE.into(),
            created: crate::container::now_rfc3339(),
            subnets: vec![Subnet {
                subnet: DEFAULT_SUBNET.into(),
                gateway: "10.87.0.1".into(),
            }],
            ipv6_enabled: false,
            internal: false,
            dns_enabled: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            ipam_options: host_local(),
        }
    }

    /// Every network, the default first, then by name.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut out = vec![Networks::default_network()];
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        let mut named = Vec::new();
        for e in entries {
            let e = e.with_context(|| format!("read {}", self.dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem == "ipam" || stem.starts_with('.') {
                continue;
            }
            named.push(crate::container::read_json::<Network>(&e.path())?);
        }
        named.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(named);
        Ok(out)
    }

    /// The network named `spec`, or whose id starts with it (a unique
    /// prefix); podman's error otherwise.
    pub fn find(&self, spec: &str) -> Result<Network> {
        self.try_find(spec)?.ok_or_else(|| not_found(spec))
    }

    /// [`find`](Networks::find), `None` when there is no such network.
    pub fn try_find(&self, spec: &str) -> Result<Option<Network>> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.name == spec) {
            return Ok(Some(n.clone()));
        }
        let by_id: Vec<&Network> = all
            .iter()
            .filter(|n| !spec.is_empty() && n.id.starts_with(spec))
            .collect();
        match by_id.as_slice() {
            [one] => Ok(Some((*one).clone())),
            [] => Ok(None),
            _ => Err(Error::Refused(format!(
                "more than one result for network ID {spec}"
            ))),
        }
    }

    /// Creates a network (podman's `network create`).
    pub fn create(&self, req: &CreateNetwork) -> Result<Network> {
        check_name(&req.name)?;
        match req.driver.as_deref() {
            None | Some("bridge") => {}
            Some(d) => {
                return Err(Error::Refused(format!(
                    "unsupported driver {d}: invalid argument"
                )))
            }
        }
        let _lock = self.lock()?;
        let _host = self.host_lock()?;
        let claims = if self.host == self.dir {
            BTreeMap::new()
        } else {
            self.live_claims()?
        };
        let all = self.list()?;
        if all.iter().any(|n| n.name == req.name) {
            return Err(Error::Refused(format!(
                "network name {} already used: network already exists",
                req.name
            )));
        }
        let used: Vec<(Ipv4Addr, u8)> = all
            .iter()
            .filter_map(Network::ipv4_subnet)
            .chain(claims.values().filter_map(|c| parse_cidr(&c.subnet)))
            .collect();
        let host_routes = host_subnets();
        let subnet = match &req.subnet {
            Some(s) => {
                let net = parse_cidr(s).ok_or_else(|| {
                    Error::Refused(format!(
                        "invalid subnet {s}: give an IPv4 subnet a.b.c.d/n (cairn's networks are IPv4)"
                    ))
                })?;
                if net.1 > 30 {
                    return Err(Error::Refused(format!(
                        "subnet {s} is too small: give a /30 or larger"
                    )));
                }
                if used.iter().chain(&host_routes).any(|u| overlaps(*u, net)) {
                    return Err(Error::Refused(format!(
                        "subnet {s} is already used on the host or by another config"
                    )));
                }
                net
            }
            None => free_subnet(&used, &host_routes)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::Refused(format!("invalid gateway {g}")))?;
                if !contains(subnet, ip) {
                    return Err(Error::Refused(format!(
                        "gateway {g} not in subnet {}/{}",
                        subnet.0, subnet.1
                    )));
                }
                ip
            }
            None => Ipv4Addr::from(u32::from(subnet.0) + 1),
        };
        let interface = match &req.interface {
            Some(i) => i.clone(),
            None => (1..)
                .map(|n| format!("cairn{n}"))
                .find(|i| !all.iter().any(|n| &n.network_interface == i) && !claims.contains_key(i))
                .expect("an unused name"),
        };
        if let Some(c) = claims.get(&interface) {
            return Err(Error::Refused(format!(
                "bridge {interface} is already used by network {} of the store {}: give another --interface-name",
                c.network,
                c.store.parent().unwrap_or(&c.store).display()
            )));
        }
        let net = Network {
            name: req.name.clone(),
            id: crate::container::new_id(),
            driver: "bridge".into(),
            network_interface: interface,
            created: crate::container::now_rfc3339(),
            subnets: vec![Subnet {
                subnet: format!("{}/{}", subnet.0, subnet.1),
                gateway: gateway.to_string(),
            }],
            ipv6_enabled: false,
            internal: req.internal,
            dns_enabled: !req.disable_dns,
            labels: req.labels.clone(),
            options: req.options.clone(),
            ipam_options: host_local(),
        };
        let text = serde_json::to_vec_pretty(&net).context("encode the network")?;
        let path = self.dir.join(format!("{}.json", net.name));
        cairn_fsutil::write_atomic(&path, &text, 0o644, Durability::Durable)?;
        if self.host != self.dir {
            let mut claims = claims;
            claims.insert(
                net.network_interface.clone(),
                Claim {
                    subnet: net.subnets[0].subnet.clone(),
                    network: net.name.clone(),
                    store: self.dir.clone(),
                },
            );
            self.write_claims(&claims)?;
        }
        Ok(net)
    }

    /// Removes a network's record and its IPAM entries (the caller checked
    /// that no container uses it). The default network cannot be removed.
    pub fn remove(&self, name: &str) -> Result<()> {
        if name == DEFAULT_NETWORK {
            return Err(Error::Refused(format!(
                "default network {name} cannot be removed"
            )));
        }
        let _lock = self.lock()?;
        let path = self.dir.join(format!("{name}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(name)),
            Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
        }
        if self.host != self.dir {
            let _host = self.host_lock()?;
            let mut claims = self.read_claims()?;
            let before = claims.len();
            claims.retain(|_, c| !(c.store == self.dir && c.network == name));
            if claims.len() != before {
                self.write_claims(&claims)?;
            }
        }
        Ok(())
    }

    fn read_ipam(&self) -> Result<Ipam> {
        let path = self.host.join("ipam.json");
        match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ipam::new()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    fn write_ipam(&self, ipam: &Ipam) -> Result<()> {
        let text = serde_json::to_vec_pretty(ipam).context("encode the IPAM record")?;
        cairn_fsutil::write_atomic(
            &self.host.join("ipam.json"),
            &text,
            0o644,
            Durability::Durable,
        )?;
        Ok(())
    }

    /// The lock every IPAM change holds: the host's, or the store's.
    fn ipam_lock(&self) -> Result<LockGuard> {
        match self.host_lock()? {
            Some(l) => Ok(l),
            None => self.lock(),
        }
    }

    /// This store's addresses: bridge → address → container id.
    pub fn allocations(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let _lock = self.ipam_lock()?;
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (bridge, entries) in self.read_ipam()? {
            let mine: BTreeMap<String, String> = entries
                .iter()
                .filter_map(|(ip, owner)| Some((ip.clone(), self.ours(owner)?.to_owned())))
                .collect();
            if !mine.is_empty() {
                out.insert(bridge, mine);
            }
        }
        Ok(out)
    }

    /// An address on `net` for container `id`: `wanted` if given (refused
    /// when another container has it), else the lowest free one (not the
    /// network's, the gateway's or the broadcast address). Entries whose
    /// container `holds` says no longer holds them (another store's: whose
    /// directory is gone) are reclaimed first. Addresses are per bridge,
    /// across every store on the host. Returns the address and the prefix
    /// length.
    pub fn allocate(
        &self,
        net: &Network,
        id: &str,
        wanted: Option<Ipv4Addr>,
        holds: &dyn Fn(&str) -> bool,
    ) -> Result<(Ipv4Addr, u8)> {
        let subnet = net.ipv4_subnet().ok_or_else(|| {
            Error::Refused(format!(
                "network {}: no IPv4 subnet to allocate from",
                net.name
            ))
        })?;
        let gateway = net.gateway();
        let me = self.owner(id);
        let _lock = self.ipam_lock()?;
        let mut ipam = self.read_ipam()?;
        let entries = ipam.entry(net.network_interface.clone()).or_default();
        entries.retain(|_, owner| *owner == me || self.held(owner, holds));
        // A container's earlier address on this network goes back first.
        entries.retain(|_, owner| *owner != me);
        let ip = match wanted {
            Some(ip) => {
                if !contains(subnet, ip) {
                    return Err(Error::Refused(format!(
                        "requested static ip {ip} not in any subnet on network {}",
                        net.name
                    )));
                }
                if let Some(owner) = entries.get(&ip.to_string()) {
                    let owner = Path::new(owner)
                        .file_name()
                        .map_or_else(|| owner.clone(), |n| n.to_string_lossy().into_owned());
                    return Err(Error::Refused(format!(
                        "IPAM error: requested ip address {ip} is already allocated to container ID {owner}"
                    )));
                }
                ip
            }
            None => {
                let first = u32::from(subnet.0) + 1;
                let last = u32::from(subnet.0) | !mask(subnet.1);
                (first..last)
                    .map(Ipv4Addr::from)
                    .find(|ip| Some(*ip) != gateway && !entries.contains_key(&ip.to_string()))
                    .ok_or_else(|| {
                        Error::Refused(format!(
                            "IPAM error: failed to get ips for network {}: no free address left in {}",
                            net.name,
                            net.subnets[0].subnet
                        ))
                    })?
            }
        };
        entries.insert(ip.to_string(), me);
        self.write_ipam(&ipam)?;
        Ok((ip, subnet.1))
    }

    /// Frees every address of container `id`.
    pub fn free(&self, id: &str) -> Result<()> {
        let me = self.owner(id);
        let _lock = self.ipam_lock()?;
        let mut ipam = self.read_ipam()?;
        let mut changed = false;
        for entries in ipam.values_mut() {
            let before = entries.len();
            entries.retain(|_, owner| *owner != me);
            changed |= entries.len() != before;
        }
        ipam.retain(|_, e| !e.is_empty());
        if changed {
            self.write_ipam(&ipam)?;
        }
        Ok(())
    }

    /// Removes the entries whose container no longer holds them (`holds`
    /// judges this store's; another store's are gone with their
    /// directory); returns them (`bridge`, `ip`, `container id`).
    pub fn reclaim(&self, holds: &dyn Fn(&str) -> bool) -> Result<Vec<(String, String, String)>> {
        let _lock = self.ipam_lock()?;
        let mut ipam = self.read_ipam()?;
        let mut gone = Vec::new();
        for (net, entries) in ipam.iter_mut() {
            entries.retain(|ip, owner| {
                let keep = self.held(owner, holds);
                // Another store's stale entries go too, reported by that
                // store's own check.
                if let (false, Some(id)) = (keep, self.ours(owner)) {
                    gone.push((net.clone(), ip.clone(), id.to_owned()));
                }
                keep
            });
        }
        ipam.retain(|_, e| !e.is_empty());
        if !gone.is_empty() {
            self.write_ipam(&ipam)?;
        }
        Ok(gone)
    }
}

fn host_local() -> BTreeMap<String, String> {
    BTreeMap::from([("driver".to_owned(), "host-local".to_owned())])
}

/// podman's words for a network that is not there.
pub fn not_found(spec: &str) -> Error {
    Error::Refused(format!(
        "unable to find network with name or ID {spec}: network not found"
    ))
}

/// The first 10.89.N.0/24 (N from 0) that overlaps none of `used`
/// (other networks) and `host` (the host's routes and addresses).
fn free_subnet(used: &[(Ipv4Addr, u8)], host: &[(Ipv4Addr, u8)]) -> Result<(Ipv4Addr, u8)> {
    (0..=255u8)
        .map(|n| (Ipv4Addr::new(10, 89, n, 0), 24))
        .find(|s| !used.iter().chain(host).any(|u| overlaps(*u, *s)))
        .ok_or_else(|| {
            Error::Refused("could not find a free subnet in 10.89.0.0/16: give --subnet".to_owned())
        })
}

/// The host's routed subnets (`/proc/net/route`, the default route left
/// out) and its own addresses (`/proc/net/fib_trie`'s local /32s).
fn host_subnets() -> Vec<(Ipv4Addr, u8)> {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes_of(&route)
}

/// The non-default routes of a `/proc/net/route` text.
fn routes_of(route: &str) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(m)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // Little-endian hex, as the kernel prints them.
        let dest = Ipv4Addr::from(u32::from_be(dest));
        let m = u32::from_be(m);
        if m == 0 {
            continue;
        }
        out.push((dest, m.count_ones() as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> CreateNetwork {
        CreateNetwork {
            name: name.into(),
            ..CreateNetwork::default()
        }
    }

    #[test]
    fn create_list_find_remove() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::with_host_dir(dir.path(), None);
        assert_eq!(nets.list().unwrap().len(), 1);
        let a = nets.create(&req("alpha")).unwrap();
        let b = nets.create(&req("beta")).unwrap();
        assert_ne!(a.subnets[0].subnet, b.subnets[0].subnet);
        assert_eq!(a.network_interface, "cairn1");
        assert_eq!(b.network_interface, "cairn2");
        assert!(a.dns_enabled && !a.internal);
        assert!(a.subnets[0].subnet.starts_with("10.89."));
        let names: Vec<String> = nets.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["podman", "alpha", "beta"]);
        assert_eq!(nets.find(&a.id[..12]).unwrap().name, "alpha");
        let err = nets.create(&req("alpha")).unwrap_err().to_string();
        assert_eq!(
            err,
            "network name alpha already used: network already exists"
        );
        nets.remove("alpha").unwrap();
        assert_eq!(
            nets.find("alpha").unwrap_err().to_string(),
            "unable to find network with name or ID alpha: network not found"
        );
        assert!(nets.remove("podman").is_err());
        // The file is podman's shape.
        let text = std::fs::read_to_string(dir.path().join("networks/beta.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ipam_options"]["driver"], "host-local");
        assert!(v.get("labels").is_none());
    }

    #[test]
    fn subnets_and_gateways_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::with_host_dir(dir.path(), None);
        let mut r = req("w");
        r.subnet = Some("10.99.0.0/24".into());
        r.gateway = Some("10.98.0.1".into());
        assert_eq!(
            nets.create(&r).unwrap_err().to_string(),
            "gateway 10.98.0.1 not in subnet 10.99.0.0/24"
        );
        r.gateway = Some("10.99.0.254".into());
        let w = nets.create(&r).unwrap();
        assert_eq!(w.gateway(), Some(Ipv4Addr::new(10, 99, 0, 254)));
        let mut again = req("v");
        again.subnet = Some("10.99.0.128/25".into());
        assert!(nets.create(&again).is_err());
        let mut d = req("d");
        d.driver = Some("macvlan".into());
        assert!(nets.create(&d).is_err());
        assert!(nets.create(&req("b@d")).is_err());
    }

    #[test]
    fn free_subnets_skip_used_and_host_ones() {
        let used = [(Ipv4Addr::new(10, 89, 0, 0), 24)];
        let host = routes_of(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
             eth1\t00015A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n",
        );
        assert_eq!(host, [(Ipv4Addr::new(10, 90, 1, 0), 24)]);
        let host = [(Ipv4Addr::new(10, 89, 1, 0), 24)];
        assert_eq!(
            free_subnet(&used, &host).unwrap(),
            (Ipv4Addr::new(10, 89, 2, 0), 24)
        );
    }

    #[test]
    fn ipam_allocates_frees_and_reclaims() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::with_host_dir(dir.path(), None);
        let mut r = req("n");
        r.subnet = Some("10.99.0.0/29".into());
        let n = nets.create(&r).unwrap();
        let all = |_: &str| true;
        let (a, len) = nets.allocate(&n, "A", None, &all).unwrap();
        assert_eq!((a, len), (Ipv4Addr::new(10, 99, 0, 2), 29));
        let (b, _) = nets.allocate(&n, "B", None, &all).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 99, 0, 3));
        // Again for A: its old address is given back first.
        assert_eq!(nets.allocate(&n, "A", None, &all).unwrap().0, a);
        let taken = nets
            .allocate(&n, "C", Some(b), &all)
            .unwrap_err()
            .to_string();
        assert!(
            taken.contains("already allocated to container ID B"),
            "{taken}"
        );
        for id in ["C", "D", "E"] {
            nets.allocate(&n, id, None, &all).unwrap();
        }
        // .2 to .6 given (.1 is the gateway, .7 the broadcast): full.
        assert!(nets.allocate(&n, "G", None, &all).is_err());
        // B is gone: its address is reclaimed.
        let (g, _) = nets.allocate(&n, "G", None, &|id: &str| id != "B").unwrap();
        assert_eq!(g, b);
        nets.free("G").unwrap();
        let left = nets.allocations().unwrap();
        assert!(!left["cairn1"].values().any(|o| o == "G"));
        let gone = nets.reclaim(&|id: &str| id != "A").unwrap();
        assert_eq!(gone, [("cairn1".into(), a.to_string(), "A".into())]);
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let n = Networks::with_host_dir(&root, None)
            .create(&req("n"))
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let root = root.clone();
                let n = n.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            Networks::with_host_dir(&root, None)
                                .allocate(&n, &format!("{t}-{i}"), None, &|_: &str| true)
                                .unwrap()
                                .0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count);
        assert_eq!(
            Networks::with_host_dir(&root, None).allocations().unwrap()["cairn1"].len(),
            100
        );
    }

    #[test]
    fn two_stores_share_a_bridge_without_sharing_addresses_or_subnets() {
        let host = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let na = Networks::with_host_dir(a.path(), Some(host.path().to_owned()));
        let nb = Networks::with_host_dir(b.path(), Some(host.path().to_owned()));
        // Both stores' containers exist (their directories).
        for (root, id) in [(a.path(), "X"), (b.path(), "Y")] {
            let dir = crate::container::Containers::new(root).dir().join(id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.json"), "{}").unwrap();
        }
        // a's X is starting (its lock is held): it holds its address.
        let x_dir = crate::container::Containers::new(a.path()).dir().join("X");
        let x_lock = LockGuard::acquire(&x_dir.join("lock"), LockMode::Exclusive).unwrap();
        let def = Networks::default_network();
        let held = |_: &str| true;
        let (x, _) = na.allocate(&def, "X", None, &held).unwrap();
        // Store b judges its own containers only: a's X is held while it
        // is locked (or runs), whatever b's closure says.
        let (y, _) = nb.allocate(&def, "Y", None, &|_: &str| false).unwrap();
        assert_ne!(x, y);
        assert_eq!(na.allocations().unwrap()["cairn0"].len(), 1);
        // X's start ends without it running: its address is free for b.
        drop(x_lock);
        let (z, _) = nb.allocate(&def, "Z", None, &held).unwrap();
        assert_eq!(z, x);
        // Networks created in the two stores get different subnets and
        // bridges; a removed one's claim goes with it.
        let n1 = na.create(&req("n")).unwrap();
        let n2 = nb.create(&req("n")).unwrap();
        assert_ne!(n1.subnets[0].subnet, n2.subnets[0].subnet);
        assert_ne!(n1.network_interface, n2.network_interface);
        na.remove("n").unwrap();
        let n3 = nb.create(&req("m")).unwrap();
        assert_eq!(n3.network_interface, n1.network_interface);
    }
}
