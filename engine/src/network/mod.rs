//! Container networks as podman has them: the `--network` modes
//! ([`NetworkMode`]), published ports ([`ports`]), named bridge networks
//! and their address allocation ([`Networks`]), and what a start hands the
//! monitor ([`setup`]): netavark's options for bridge networks, pasta's or
//! slirp4netns's arguments otherwise, the namespace to join for `ns:` and
//! `container:`.

mod mode;
pub mod ports;
pub mod setup;
mod store;

pub use mode::{check_name, parse_network_flags, Attachment, NetworkMode, DEFAULT_NETWORK};
pub use ports::PortForward;
pub use store::{
    not_found, parse_cidr, CreateNetwork, Network, Networks, Subnet, DEFAULT_INTERFACE,
    DEFAULT_NETWORK_ID, DEFAULT_SUBNET,
};

/// A network tool (`pasta`, `slirp4netns`) in `/usr/bin`, `/usr/local/bin`
/// or `/bin`, as podman finds them; `None` when missing.
pub fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The containers (any state) attached to the bridge network `name`.
pub fn users(containers: &crate::Containers, name: &str) -> crate::Result<Vec<crate::Container>> {
    Ok(containers
        .list()?
        .into_iter()
        .filter(|c| {
            c.config.namespaces.network == NetworkMode::Bridge
                && c.config.networks.contains_key(name)
        })
        .collect())
}

/// `network connect`: attaches the created or stopped container `spec`
/// to `network` (which must exist) with `att`. A running container is
/// refused: its namespace is set up once, at start.
pub fn connect(
    containers: &crate::Containers,
    networks: &Networks,
    spec: &str,
    network: &str,
    att: Attachment,
) -> crate::Result<()> {
    let net = networks.find(network)?;
    edit_networks(containers, spec, "connect", |c| {
        if c.networks.contains_key(&net.name) {
            return Err(crate::Error::Refused(format!(
                "container {} is already connected to network {}: network is already connected",
                c.id, net.name
            )));
        }
        c.networks.insert(net.name.clone(), att);
        Ok(())
    })
}

/// `network disconnect`: the reverse of [`connect`].
pub fn disconnect(
    containers: &crate::Containers,
    networks: &Networks,
    spec: &str,
    network: &str,
) -> crate::Result<()> {
    let net = networks.find(network)?;
    edit_networks(containers, spec, "disconnect", |c| {
        if c.networks.remove(&net.name).is_none() {
            return Err(crate::Error::Refused(format!(
                "container {} is not connected to network {}: network is not connected",
                c.id, net.name
            )));
        }
        Ok(())
    })
}

fn edit_networks(
    containers: &crate::Containers,
    spec: &str,
    verb: &str,
    edit: impl FnOnce(&mut crate::container::Config) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut c = containers.find(spec)?;
    let _lock = c.lock()?;
    c.reload()?;
    if c.config.namespaces.network != NetworkMode::Bridge {
        return Err(crate::Error::Refused(format!(
            "container {} uses the {} network mode: only containers on bridge networks can {verb} networks",
            c.config.name, c.config.namespaces.network
        )));
    }
    if c.live().status.is_alive() {
        return Err(crate::Error::Refused(format!(
            "container {} is running: cairn sets a container's networks up at start, so {verb} it while it is stopped (`cairn stop {}`)",
            c.config.name, c.config.name
        )));
    }
    edit(&mut c.config)?;
    c.save_config()
}
