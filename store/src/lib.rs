//! cairn's content-addressed image store: an OCI image layout on disk that
//! skopeo and umoci read unchanged, filled by imports from `oci:`
//! directories and `oci-archive:` files here and by pulls from OCI
//! registries (the `cairn-registry` crate).
//!
//! See [`layout`] for the on-disk tree, its locks and its crash rules.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod archive;
pub mod compress;
mod digest;
mod dirs;
mod error;
pub mod images;
pub mod import;
pub mod layout;
pub mod media;
mod newblob;
pub mod pin;
pub mod progress;
mod reference;

pub use cairn_fsutil::{LockGuard, LockMode, PathError};
pub use digest::{Algorithm, Digest, DigestParseError, Hasher};
pub use dirs::StoreDir;
pub use error::Error;
pub use images::{CheckReport, DiskUsage, Image, ImageError, Removal};
pub use layout::{BlobLock, BlobStream, BlobWriter, Put, Store, REF_NAME};
pub use newblob::NewBlob;
pub use pin::Pin;
pub use reference::{Name, Reference, ReferenceError, DOCKER_HUB};
