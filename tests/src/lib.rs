//! Support for cairn's end-to-end tests: real registries, fixture images, fault injection.
//!
//! Everything here is synchronous from a test's point of view (plain `#[test]` functions); the
//! helpers that need async I/O own their tokio runtime. Every server binds 127.0.0.1 only, on a
//! free port, and is stopped on drop (killed and reaped, no process left behind).
//!
//! - [`registry`]: a real CNCF distribution registry (`docker-registry serve`), plain or TLS,
//!   anonymous, htpasswd or token auth, plus skopeo push/pull helpers.
//! - [`faultproxy`]: an HTTP/1.1 reverse proxy injecting 429/5xx, truncation, corruption,
//!   delays, dropped connections and ignored ranges, with a request log.
//! - [`image`]: deterministic OCI layouts (single images and multi-platform indexes) to push.
//! - [`cairn`]: the real `cairn` binary in an isolated environment.
//! - [`clients`]: distrobox, toolbox and the Dev Containers CLI run against cairn.
//! - [`fixtures`]: the real Debian test images, built once and cached.
//! - [`net`]: server containers, port and UDP waits, host servers and network leftovers
//!   (helper processes, firewall rules, namespace files, held ports) for the network tests.
//! - [`roots`]: image roots in a store (layer stacks), found or mounted as a container sees them.
//! - [`attack`]: the attack suite's probe program, hostile images, host fingerprints.
//! - [`rng`]: a seeded random generator whose seed a failing run prints for replay.
//! - [`util`]: free ports, port waits, temp dirs, running tools with their stderr in errors,
//!   `is_root`, directory listings, runs under `/usr/bin/time -v`.
//!
//! External tools used: `docker-registry` (distribution 2.8; override with
//! `CAIRN_TEST_REGISTRY_BIN`), `skopeo`, `openssl` (TLS and token certificates) and, when
//! present, util-linux `setpriv` (so servers die with the test process).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attack;
pub mod cairn;
mod certs;
pub mod cgroups;
pub mod clients;
pub mod faultproxy;
pub mod fixtures;
pub mod image;
pub mod net;
pub mod podman;
pub mod registry;
pub mod rng;
pub mod roots;
mod token;
pub mod util;

pub use cairn::{Cairn, Run};
pub use faultproxy::{Action, FaultProxy, RequestRecord, Rule, RuleId};
pub use image::{BuiltImage, BuiltIndex, ImageSpec, OciLayout, Platform};
pub use registry::{Auth, RawManifest, Registry, RegistryOptions, TokenRequest};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    /// Tests may hand servers to other threads (or share them across a scoped pool).
    #[test]
    fn server_handles_are_send_and_sync() {
        assert_send_sync::<crate::Registry>();
        assert_send_sync::<crate::FaultProxy>();
    }
}
