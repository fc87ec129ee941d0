//! The engine's error: what failed, with its cause, and for the failures
//! podman reports alone (no cause chain) a kind the CLI maps to an exit code.

use std::fmt::Display;

use cairn_fsutil::PathError;

/// A boxed cause of a [`Error::Context`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No container has this name, id or id prefix.
    #[error("no container with name or ID \"{0}\" found: no such container")]
    NoSuchContainer(String),
    /// The engine refused or failed, and the message says all there is to
    /// say (podman prints it alone and exits 125).
    #[error("{0}")]
    Refused(String),
    /// `cairn-monitor` ended before it said whether the container started.
    #[error("cairn-monitor for container {name} ended without reporting ({why}; exit {exit:?}): check {}", log.display())]
    MonitorSilent {
        /// The container's name.
        name: String,
        /// What reading its report gave.
        why: String,
        /// The monitor's exit code, if it exited.
        exit: Option<i32>,
        /// The container's log, where the monitor's own errors go too.
        log: std::path::PathBuf,
    },
    /// `rm` without force of a running container (podman exits 2).
    #[error("cannot remove container {0} as it is running - running or paused containers cannot be removed without force: container state improper")]
    RemoveRunning(String),
    /// The container's process could not be started: `code` is what the
    /// runtime reported (126 not executable, 127 not found, 125 otherwise).
    #[error("{message}")]
    Start {
        /// The runtime's code.
        code: i32,
        /// Why it did not start.
        message: String,
    },
    /// Invalid input: a profile, an option value, a file in the container.
    #[error("{0}")]
    Invalid(String),
    /// An I/O step, naming the operation and the path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// An I/O error that needs no more words (writing to our output,
    /// reading a file already named).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A step that failed (`what`) because of `source`.
    #[error("{what}")]
    Context {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Cause,
    },
}

/// How the CLI should report an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The engine's own failure, reported with its message alone.
    Engine,
    /// The container's command could not run; podman exits with this code
    /// (126, 127, or 125 for the runtime's own failures).
    Command(i32),
    /// A running container that must be stopped first (podman exits 2).
    Running,
    /// Any other failure: reported with its chain of causes.
    Other,
}

impl Error {
    /// How this error is reported.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_) | Error::Refused(_) | Error::MonitorSilent { .. } => {
                ErrorKind::Engine
            }
            Error::RemoveRunning(_) => ErrorKind::Running,
            Error::Start { code, .. } => ErrorKind::Command(*code),
            Error::Invalid(_) | Error::Path(_) | Error::Io(_) | Error::Context { .. } => {
                ErrorKind::Other
            }
        }
    }

    /// The message followed by each cause not already part of it, joined
    /// with `: `.
    pub fn with_causes(&self) -> String {
        let mut msg = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            cause = c.source();
        }
        msg
    }
}

/// The engine's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A spec the runtime would refuse (a path outside the container, an
/// option it does not know): the runtime's own words.
impl From<cairn_runtime::Error> for Error {
    fn from(e: cairn_runtime::Error) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// Adds what was being done to a failure.
pub(crate) trait Context<T> {
    /// `what` failed because of this error.
    fn context(self, what: impl Display) -> Result<T>;
    /// Like [`context`](Context::context), the text made only on failure.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what.to_string(),
            source: Box::new(e),
        })
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what().to_string(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(what().to_string()))
    }
}

/// Returns early with [`Error::Invalid`] and a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_cause_and_kind() {
        let e = std::fs::read("/nonexistent/cairn-engine")
            .context("read the profile")
            .unwrap_err();
        assert_eq!(e.to_string(), "read the profile");
        assert!(e.with_causes().starts_with("read the profile: "), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Other);
        assert_eq!(
            Error::NoSuchContainer("x".into()).to_string(),
            "no container with name or ID \"x\" found: no such container"
        );
        assert_eq!(
            Error::Start {
                code: 127,
                message: "m".into()
            }
            .kind(),
            ErrorKind::Command(127)
        );
    }
}
