//! Container networks as podman has them: the `--network` modes
//! ([`NetworkMode`]), published ports ([`ports`]), named bridge networks
//! and their address allocation ([`Networks`]), and what a start hands the
//! monitor ([`setup`]): netavark's options for bridge networks, pasta's or
//! slirp4netns's arguments otherwise, the namespace to join for `ns:` and
//! `container:`.

mod mode;
pub mod ports;
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
