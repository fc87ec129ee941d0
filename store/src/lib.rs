//! cairn's content-addressed image store: an OCI image layout on disk that
//! skopeo and umoci read unchanged, filled by pulls from OCI registries or
//! imports from `oci:` directories and `oci-archive:` files.
//!
//! See [`layout`] for the on-disk tree, its locks and its crash rules.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod digest;
mod error;
pub mod images;
pub mod import;
pub mod layout;
mod lock;
pub mod media;
pub mod pin;
pub mod progress;
#[cfg(feature = "registry")]
pub mod pull;
mod reference;
#[cfg(feature = "registry")]
pub mod registry;

pub use digest::{Algorithm, Digest, DigestParseError, Hasher};
pub use error::{Error, RegistryError};
pub use images::{CheckReport, DiskUsage, Image, ImageError, Removal};
pub use layout::{BlobLock, BlobStream, BlobWriter, Put, Store, REF_NAME};
pub use lock::{LockGuard, Mode as LockMode};
pub use pin::Pin;
pub use reference::{Name, Reference, ReferenceError, DOCKER_HUB};
