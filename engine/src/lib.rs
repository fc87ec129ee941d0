//! cairn's containers: what a container is on disk, and the operations on
//! it (create, start, stop, remove, rename, prune, wait, logs), with the
//! rootless re-entry into a user namespace they need, and the event log
//! they write to ([`events`]).
//!
//! The engine knows nothing of the command line: it takes typed values and
//! returns an [`Error`] whose [`ErrorKind`] the CLI maps to podman's exit
//! codes. It calls the runtime helpers (`cairn-monitor` and the others of
//! `cairn-runtime`) through their typed specs.
#![forbid(unsafe_code)]

pub mod commit;
pub mod container;
pub mod containers_conf;
mod error;
pub mod events;
pub mod lifecycle;
pub mod network;
pub mod time;
pub mod userns;
pub mod volume;

pub use container::{Container, ContainerId, Containers, Live, State, Status};
pub use error::{Cause, Error, ErrorKind, Result};

/// Capability names by number (capabilities(7)) and the runtime's default
/// set, re-exported so a launcher needs no other crate.
pub mod caps {
    pub use cairn_runtime::caps::{DEFAULT, NAMES};
}

/// Gives SIGPIPE back its default action (the runtime's, re-exported so a
/// launcher needs no other crate): call first in `main`.
pub use cairn_runtime::restore_sigpipe;
