//! The store's errors: each names the operation and the path or reference,
//! and says what to do where there is something to do.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, DigestParseError};
use crate::media::ManifestError;
use crate::reference::ReferenceError;

/// Everything the store and the puller can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}{}", path.display(), io_hint(source))]
    Io {
        /// What was being done ("write blob", "rename", …).
        op: String,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestParseError),
    /// No local image matches the name or id.
    #[error("{0}: image not known")]
    ImageNotKnown(String),
    /// A registry request failed.
    #[error("{reference}: {kind}")]
    Registry {
        /// The image being pulled.
        reference: String,
        /// What went wrong.
        kind: RegistryError,
    },
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
    #[error("{reference}: no image for platform {want} in the index (it offers: {offered}); choose one with --platform")]
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
    /// The store itself is damaged.
    #[error("store {}: {message}; run `cairn system check --repair`", root.display())]
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
    /// A configuration file (auth, registries.conf) is unusable.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Why a registry request failed, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The repository, tag or digest does not exist.
    #[error("manifest unknown: the registry has no such image or tag ({0})")]
    NotFound(String),
    /// 401/403.
    #[error("access denied by {registry} ({detail}); log in with `cairn login {registry}` or check the credentials in {auth_file}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The registry's words.
        detail: String,
        /// Where credentials are read from.
        auth_file: String,
    },
    /// Cannot connect, DNS failure, TLS failure.
    #[error("cannot reach registry {registry}: {detail}{}", if *tls_hint { "; for a plain-HTTP or self-signed registry pass --tls-verify=false or mark it insecure in registries.conf" } else { "" })]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The underlying error.
        detail: String,
        /// Whether TLS is a likely cause.
        tls_hint: bool,
    },
    /// Retries exhausted on 429/5xx/connection resets.
    #[error("registry {registry} kept failing after {attempts} attempts: {detail}")]
    GaveUp {
        /// The registry host.
        registry: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        detail: String,
    },
    /// A response longer than cairn reads of its kind: reading stopped at
    /// the first byte past the cap.
    #[error("the {what} is larger than {cap} bytes, the most cairn reads; stopped reading there and stored nothing: registry {registry} is broken or hostile, check the image reference or tell the registry's operator")]
    TooLarge {
        /// What was being read and from where ("manifest latest from
        /// HOST", "token response from URL").
        what: String,
        /// The registry host.
        registry: String,
        /// The cap in bytes.
        cap: u64,
    },
    /// Anything else the registry said.
    #[error("{0}")]
    Other(String),
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT => {
            "; free some space or point --root at a larger filesystem"
        }
        Some(code) if code == nix::libc::EACCES || code == nix::libc::EPERM => {
            "; check the permissions, or point --root at a directory you own"
        }
        Some(code) if code == nix::libc::EROFS => {
            "; the filesystem is read-only: point --root at a writable one"
        }
        _ => "",
    }
}

/// Attaches an operation and a path to I/O results.
pub(crate) trait IoContext<T> {
    fn io_context(self, op: &str, path: &Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, op: &str, path: &Path) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            op: op.to_owned(),
            path: path.to_owned(),
            source,
        })
    }
}

impl Error {
    /// Whether a file was not there (a blob removed, say).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            Error::Context { source, .. } => source.is_not_found(),
            _ => false,
        }
    }

    /// Whether the error is a full disk (or quota), for callers that clean up
    /// differently then.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(c) if c == nix::libc::ENOSPC || c == nix::libc::EDQUOT
            ),
            Error::Context { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    /// Prefixes the error with the image it concerns, unless it names it
    /// already.
    pub fn for_image(self, image: &str) -> Error {
        match &self {
            Error::Registry { .. }
            | Error::Manifest { .. }
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
