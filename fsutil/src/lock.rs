//! Advisory file locks (`flock(2)`), released when the guard is dropped or
//! the process dies, so a `kill -9` never leaves a lock behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::{IoContext, PathError};

/// A held advisory lock on a file.
#[derive(Debug)]
pub struct LockGuard {
    _flock: Flock<File>,
    path: PathBuf,
}

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once.
    Shared,
    /// One holder.
    Exclusive,
}

impl LockGuard {
    /// Blocks until the lock at `path` is held in `mode`, creating the file.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<LockGuard, PathError> {
        let arg = match mode {
            LockMode::Shared => FlockArg::LockShared,
            LockMode::Exclusive => FlockArg::LockExclusive,
        };
        Self::lock(path, arg)?.ok_or_else(|| unreachable_would_block(path))
    }

    /// Takes the lock if nobody holds a conflicting one; `None` otherwise.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<LockGuard>, PathError> {
        let arg = match mode {
            LockMode::Shared => FlockArg::LockSharedNonblock,
            LockMode::Exclusive => FlockArg::LockExclusiveNonblock,
        };
        Self::lock(path, arg)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(path: &Path, arg: FlockArg) -> Result<Option<LockGuard>, PathError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .io_context("open lock file", path)?;
        loop {
            match Flock::lock(file.try_clone().io_context("open lock file", path)?, arg) {
                Ok(flock) => {
                    // Removed (see `remove`) while we waited: we hold a lock
                    // nobody else can see. Take the one at the path now.
                    if !same_file(&flock, path)? {
                        return Self::lock(path, arg);
                    }
                    return Ok(Some(LockGuard {
                        _flock: flock,
                        path: path.to_owned(),
                    }));
                }
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, Errno::EINTR)) => continue,
                Err((_, e)) => {
                    return Err(std::io::Error::from(e)).io_context("lock", path);
                }
            }
        }
    }

    /// Deletes the lock file while holding the lock, so lock files of
    /// things that are gone do not pile up. Safe against waiters: whoever
    /// got the lock on the deleted file sees it is not the one at the path
    /// any more and locks that one instead.
    pub fn remove(self) -> Result<(), PathError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).io_context("remove lock file", &self.path),
        }
    }
}

/// Whether the open lock file is still the file at `path`.
fn same_file(f: &File, path: &Path) -> Result<bool, PathError> {
    use std::os::unix::fs::MetadataExt;
    let open = f.metadata().io_context("stat lock file", path)?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == open.dev() && m.ino() == open.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).io_context("stat lock file", path),
    }
}

fn unreachable_would_block(path: &Path) -> PathError {
    PathError {
        op: "lock (blocking lock reported EWOULDBLOCK)".into(),
        path: path.to_owned(),
        source: std::io::Error::from(Errno::EWOULDBLOCK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = LockGuard::acquire(&p, LockMode::Exclusive).unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts just like another process would.
        assert!(LockGuard::try_acquire(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        assert!(LockGuard::try_acquire(&p, LockMode::Shared)
            .unwrap()
            .is_none());
        drop(a);
        let s1 = LockGuard::try_acquire(&p, LockMode::Shared)
            .unwrap()
            .unwrap();
        let _s2 = LockGuard::try_acquire(&p, LockMode::Shared)
            .unwrap()
            .unwrap();
        assert!(LockGuard::try_acquire(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        assert_eq!(s1.path(), p);
    }

    #[test]
    fn a_waiter_on_a_removed_lock_file_takes_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = LockGuard::acquire(&p, LockMode::Exclusive).unwrap();
        let p2 = p.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let g = LockGuard::acquire(&p2, LockMode::Exclusive).unwrap();
            tx.send(()).unwrap();
            // Hold it until the main thread has checked exclusion.
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(g);
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        held.remove().unwrap();
        rx.recv().unwrap();
        // The waiter holds the lock at the path, so nobody else gets it.
        assert!(p.exists());
        assert!(LockGuard::try_acquire(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        waiter.join().unwrap();
        assert!(LockGuard::try_acquire(&p, LockMode::Exclusive)
            .unwrap()
            .is_some());
    }
}
