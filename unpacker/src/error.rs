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
    /// (A caller that lets its user raise the limit says how.)
    #[error("layer {layer}: expands beyond {limit} bytes; refusing")]
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
/// (A full disk is the caller's to explain: where its store is, what it can
/// remove.)
fn hint(e: &io::Error) -> &'static str {
    match Errno::from_io_error(e) {
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

    /// Whether a layer expands beyond the configured limit
    /// ([`Error::TooLarge`], with context or not).
    pub fn is_too_large(&self) -> bool {
        match self {
            Error::TooLarge { .. } => true,
            Error::Context { source, .. } => source.is_too_large(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: Errno) -> Error {
        Error::Io(PathError::new(
            "write",
            "/store/x",
            io::Error::from_raw_os_error(errno.raw_os_error()),
        ))
    }

    #[test]
    fn messages_name_no_command_line_flag() {
        let too_large = Error::TooLarge {
            layer: "sha256:ab".into(),
            limit: 10,
        }
        .context("docker.io/library/x:1");
        assert!(too_large.is_too_large());
        assert!(!io(Errno::NOSPC).is_too_large());
        assert_eq!(
            too_large.to_string(),
            "docker.io/library/x:1: layer sha256:ab: expands beyond 10 bytes; refusing"
        );
        for e in [io(Errno::NOSPC), io(Errno::DQUOT), io(Errno::ACCESS)] {
            assert!(!e.to_string().contains("--"), "{e}");
        }
    }

    #[test]
    fn io_errors_say_what_failed_and_where() {
        let full = io(Errno::NOSPC).to_string();
        assert!(full.starts_with("write /store/x: "), "{full}");
        assert!(full.contains("No space left"), "{full}");
        for errno in [Errno::PERM, Errno::ACCESS] {
            let text = io(errno).to_string();
            assert!(text.ends_with("; this needs privileges (run as root, or rootless inside cairn's user namespace)"), "{text}");
        }
        let missing = Error::Io(PathError::new(
            format!("{LINK_OBJECT} ab to"),
            "/root/etc/a",
            io::Error::from(io::ErrorKind::NotFound),
        ));
        assert!(missing.context("image").is_missing_object());
        assert!(!io(Errno::NOSPC).is_missing_object());
    }
}
