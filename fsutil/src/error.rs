//! I/O errors that name the operation and the path.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O operation that failed on a path.
///
/// Displays as `OP PATH: OS ERROR` (`create /var/lib/x: Permission
/// denied (os error 13)`); callers add what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct PathError {
    /// What was being done ("write blob", "rename into place", ...).
    pub op: String,
    /// The path it was done to.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl PathError {
    /// An error of `op` on `path`.
    pub fn new(op: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> PathError {
        PathError {
            op: op.into(),
            path: path.into(),
            source,
        }
    }

    /// Whether the path was not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// Whether the filesystem (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::ENOSPC | libc::EDQUOT)
        )
    }
}

/// Attaches an operation and a path to I/O results.
pub trait IoContext<T> {
    /// The error, if any, as a [`PathError`] of `op` on `path`.
    fn io_context(self, op: &str, path: &Path) -> Result<T, PathError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, op: &str, path: &Path) -> Result<T, PathError> {
        self.map_err(|source| PathError::new(op, path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operation_path_and_cause() {
        let e = std::fs::read("/nonexistent/cairn-fsutil")
            .io_context("read config", Path::new("/nonexistent/cairn-fsutil"))
            .unwrap_err();
        assert!(e.is_not_found());
        assert!(!e.is_disk_full());
        let text = e.to_string();
        assert!(
            text.starts_with("read config /nonexistent/cairn-fsutil: "),
            "{text}"
        );
        assert!(text.contains("No such file"), "{text}");
    }

    #[test]
    fn disk_full_includes_quota() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = PathError::new("write", "/x", io::Error::from_raw_os_error(errno));
            assert!(e.is_disk_full());
        }
    }
}
