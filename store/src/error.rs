//! The store's errors: each names the operation and the path or reference,
//! and says what to do where there is something to do.

use std::path::PathBuf;

use cairn_fsutil::PathError;

use crate::digest::{Digest, DigestParseError};
use crate::media::ManifestError;
use crate::reference::ReferenceError;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed. (The CLI adds what to do about a
    /// full disk, a permission or a read-only filesystem: it knows where
    /// the store can be moved to.)
    #[error("{0}")]
    Io(#[from] PathError),
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestParseError),
    /// No local image matches the name or id.
    #[error("{0}: image not known")]
    ImageNotKnown(String),
    /// Content did not hash to its digest.
    #[error("{what} {expected}: digest mismatch (content hashes to {actual}); the source serves corrupt or tampered data, nothing was stored")]
    DigestMismatch {
        /// What the content was ("blob", "manifest", …) and from where.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Content was longer or shorter than its descriptor says.
    #[error("{what} {digest}: size mismatch: expected {expected} bytes, got {got}{}", if *got < *expected { " (truncated)" } else { "" })]
    SizeMismatch {
        /// What the content was and from where.
        what: String,
        /// Its digest.
        digest: Digest,
        /// The size the descriptor states.
        expected: u64,
        /// The size seen (for an overlong body: the first size past the limit).
        got: u64,
    },
    /// A manifest or index cairn cannot use.
    #[error("{reference}: {source}")]
    Manifest {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// An index with no entry for the wanted platform.
    /// (The CLI adds how to choose one.)
    #[error("{reference}: no image for platform {want} in the index (it offers: {offered})")]
    NoPlatform {
        /// The image.
        reference: String,
        /// The platform asked for.
        want: String,
        /// The platforms the index lists.
        offered: String,
    },
    /// A local transport (`oci:`, `oci-archive:`) source is unusable.
    #[error("{source_name}: {message}")]
    Source {
        /// The source as the user wrote it.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store itself is damaged. (The CLI adds how to repair it.)
    #[error("store {}: {message}", root.display())]
    Corrupt {
        /// The store root.
        root: PathBuf,
        /// What is damaged.
        message: String,
    },
    /// An error while working on an image, prefixed with the image.
    #[error("{context}: {source}")]
    Context {
        /// The image reference or source.
        context: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Whether a file was not there (a blob removed, say).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io(e) => e.is_not_found(),
            Error::Context { source, .. } => source.is_not_found(),
            _ => false,
        }
    }

    /// The failed file operation, if that is what this is (under any
    /// image context).
    pub fn io_error(&self) -> Option<&PathError> {
        match self {
            Error::Io(e) => Some(e),
            Error::Context { source, .. } => source.io_error(),
            _ => None,
        }
    }

    /// Whether the error is a full disk (or quota), for callers that clean up
    /// differently then.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io(e) => e.is_disk_full(),
            Error::Context { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    /// Prefixes the error with the image it concerns, unless it names it
    /// already.
    pub fn for_image(self, image: &str) -> Error {
        match &self {
            Error::Manifest { .. }
            | Error::NoPlatform { .. }
            | Error::Source { .. }
            | Error::Context { .. } => self,
            _ if self.to_string().contains(image) => self,
            _ => Error::Context {
                context: image.to_owned(),
                source: Box::new(self),
            },
        }
    }
}
