//! The registry client's errors: each names the image or the file, and
//! says what to do where there is something to do (the CLI adds the hints
//! that name its flags).

use std::path::PathBuf;

use cairn_fsutil::PathError;

/// Everything pulling and logging in can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (a blob that does not verify, a full disk, a
    /// manifest cairn cannot use, ...). Displayed as the store's error,
    /// which stays in the source chain for callers that look at its kind.
    #[error("{0}")]
    Store(#[from] cairn_store::Error),
    /// A registry request failed.
    #[error("{reference}: {kind}")]
    Registry {
        /// The image being pulled (or the registry logged in to).
        reference: String,
        /// What went wrong.
        kind: RegistryError,
    },
    /// Reading a configuration file (auth file, registries.conf, CA
    /// certificate) failed.
    #[error("{0}")]
    Io(#[from] PathError),
    /// A configuration file (auth, registries.conf, certs.d) is unusable.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An error while pulling an image, prefixed with the image.
    #[error("{context}: {source}")]
    Context {
        /// The image reference.
        context: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

impl From<cairn_store::ReferenceError> for Error {
    fn from(e: cairn_store::ReferenceError) -> Error {
        Error::Store(e.into())
    }
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
    /// Cannot connect, DNS failure, TLS failure. With `tls_hint`, the CLI
    /// adds how to reach a plain-HTTP or self-signed registry.
    #[error("cannot reach registry {registry}: {detail}")]
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

impl Error {
    /// The store's error, if that is what this is (under any image
    /// context).
    pub fn store_error(&self) -> Option<&cairn_store::Error> {
        match self {
            Error::Store(e) => Some(e),
            Error::Context { source, .. } => source.store_error(),
            _ => None,
        }
    }

    /// The failed request, if that is what this is (under any image
    /// context).
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            Error::Registry { kind, .. } => Some(kind),
            Error::Context { source, .. } => source.registry_error(),
            _ => None,
        }
    }

    /// The failed file operation (a configuration file, or the store's),
    /// if that is what this is.
    pub fn io_error(&self) -> Option<&PathError> {
        match self {
            Error::Io(e) => Some(e),
            Error::Store(e) => e.io_error(),
            Error::Context { source, .. } => source.io_error(),
            _ => None,
        }
    }

    /// Prefixes the error with the image it concerns, unless it names it
    /// already.
    pub fn for_image(self, image: &str) -> Error {
        match self {
            Error::Store(e) => Error::Store(e.for_image(image)),
            Error::Registry { .. } | Error::Context { .. } => self,
            _ if self.to_string().contains(image) => self,
            _ => Error::Context {
                context: image.to_owned(),
                source: Box::new(self),
            },
        }
    }
}
