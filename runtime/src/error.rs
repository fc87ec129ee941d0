//! The helpers' error type and how each error maps to an exit code.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Exit status when a helper itself fails (bad flags, a mount or namespace
/// operation that did not work), as `podman run` and `docker run` use it.
pub const EXIT_FAILURE: i32 = 125;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a helper. Every variant names what failed
/// and on which path; most carry a hint that says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or spec values.
    #[error("{0}")]
    Usage(String),
    /// The JSON spec file could not be read or parsed.
    #[error("spec {}: {source}", path.display())]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What serde or the reader said.
        #[source]
        source: SpecError,
    },
    /// A system call on a path failed.
    #[error("{op} {}: {source}{}", path.display(), Hint(hint))]
    Sys {
        /// The operation ("mount tmpfs on", "pivot_root into", ...).
        op: String,
        /// The path it was applied to (a host path, or a path inside the
        /// container root when it starts with the root's name).
        path: PathBuf,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
        /// What to do about it, if we know.
        hint: &'static str,
    },
    /// A mount target would leave the container root, or is otherwise unsafe.
    #[error("refusing mount target {}: {reason}", path.display())]
    Refused {
        /// The target as given (inside the container).
        path: PathBuf,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A user or group could not be resolved in the container's files.
    #[error("{0}")]
    User(String),
    /// The command could not be executed.
    #[error("exec {program}: {reason}")]
    Exec {
        /// The command as given.
        program: String,
        /// Why (not found in PATH, permission denied, ...).
        reason: String,
        /// 126 or 127.
        code: i32,
    },
    /// The working directory is missing in the container (exit 126, as
    /// podman's `workdir "/x" does not exist on container`).
    #[error("workdir {path:?} does not exist in the container ({source}): create it in the image, or give another --workdir")]
    Workdir {
        /// The directory as given.
        path: String,
        /// chdir's error.
        source: io::Error,
    },
}

/// Why a spec file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is not a valid spec.
    #[error("{0} (see --help for the schema)")]
    Json(#[from] serde_json::Error),
}

struct Hint<'a>(&'a &'static str);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

impl Error {
    /// The exit status a helper should end with for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { code, .. } => *code,
            Error::Workdir { .. } => 126,
            _ => EXIT_FAILURE,
        }
    }

    /// A system call error on `path`, with no hint.
    pub(crate) fn sys(
        op: impl Into<String>,
        path: impl AsRef<Path>,
        source: impl Into<io::Error>,
    ) -> Self {
        Error::Sys {
            op: op.into(),
            path: path.as_ref().to_path_buf(),
            source: source.into(),
            hint: "",
        }
    }

    /// Attach a hint to a `Sys` error (other variants are returned unchanged).
    pub(crate) fn hint(mut self, text: &'static str) -> Self {
        if let Error::Sys { hint, .. } = &mut self {
            *hint = text;
        }
        self
    }

    /// The errno of a `Sys` error, if it is one.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `Result<T, nix::Errno>` → `Result<T, Error>` with the operation and path.
pub(crate) trait Context<T> {
    /// Name the operation and the path it failed on.
    fn ctx(self, op: &str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, op: &str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::sys(op, path, e))
    }
}
