//! The unpacker's errors: each names the layer or path and what is wrong.

use std::io;

use cairn_fsutil::PathError;
use rustix::io::Errno;

use crate::idmap::IdMapError;
use crate::plan::PlanError;

/// Everything unpacking can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed: what was being done, on which path.
    #[error("{}{}", .0, hint(&.0.source))]
    Io(#[from] PathError),
    /// Reading the layer stream failed (mapped to `Corrupt` or `TooLarge` by
    /// the decoder, which knows the layer).
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
    /// A regular file's content ended before its declared size.
    #[error("entry content ends after {got} of {expected} bytes")]
    Truncated {
        /// Declared size.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The layer cannot be read: bad compression, bad tar, bad checksum.
    #[error("layer {layer}: corrupt or truncated: {detail}")]
    Corrupt {
        /// The layer (digest or file).
        layer: String,
        /// What the decoder said.
        detail: String,
    },
    /// The uncompressed layer does not hash to the config's diff id.
    #[error("layer {layer}: uncompressed content hashes to {actual}, the image config says {expected}; the image is corrupt")]
    DiffIdMismatch {
        /// The layer.
        layer: String,
        /// From the config.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The layer expands beyond the configured limit (decompression bomb).
    #[error("layer {layer}: expands beyond {limit} bytes; refusing (raise the limit with --max-layer-size if this is real)")]
    TooLarge {
        /// The layer.
        layer: String,
        /// The limit.
        limit: u64,
    },
    /// An entry cairn cannot represent.
    #[error("layer {layer}: {path}: {detail}")]
    Unsupported {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// Why.
        detail: String,
    },
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An id cannot be mapped.
    #[error(transparent)]
    IdMap(#[from] IdMapError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_store::Error),
    /// With context: which layer or image.
    #[error("{context}: {source}")]
    Context {
        /// The layer or image.
        context: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

/// What to do about a failed filesystem operation, where the error says.
fn hint(e: &io::Error) -> &'static str {
    match Errno::from_io_error(e) {
        Some(Errno::NOSPC | Errno::DQUOT) => {
            "; free some space or point --root at a larger filesystem"
        }
        Some(Errno::PERM | Errno::ACCESS) => {
            "; this needs privileges (run as root, or rootless inside cairn's user namespace)"
        }
        _ => "",
    }
}

impl Error {
    /// Whether materializing found an object of a saved changeset missing.
    pub fn is_missing_object(&self) -> bool {
        match self {
            Error::Io(e) => e.op.starts_with(LINK_OBJECT) && e.is_not_found(),
            Error::Context { source, .. } => source.is_missing_object(),
            _ => false,
        }
    }

    /// Prefixes with a layer or image name.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// The start of the `op` of a failed object link.
pub(crate) const LINK_OBJECT: &str = "link object";
