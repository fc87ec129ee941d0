//! cairn's registry client: pulls images from OCI registries (the
//! distribution API) into a [`cairn_store::Store`], with podman's
//! credentials (auth files, credential helpers), `registries.conf`
//! (search registries, insecure and blocked ones) and TLS trust
//! (`certs.d`).
//!
//! [`pull::pull_name`] resolves a name to one platform's image and fetches
//! what the store lacks, in parallel, verified and resumable, writing the
//! ref last; [`push::push`] sends a stored image to a registry, blobs
//! first (skipped, mounted or uploaded in resumable chunks), the manifest
//! last; [`verify_login`] checks credentials as `podman login` does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod conf;
mod error;
mod login;
pub mod pull;
pub mod push;
pub mod tls;

pub use auth::{AuthFiles, Credentials};
pub use client::RegistryOptions;
pub use conf::{RegistriesConf, RegistryEntry};
pub use error::{Error, RegistryError};
pub use login::verify_login;
