//! Pins: how a writer keeps the blobs it works on alive without holding a
//! store-wide lock across a download.
//!
//! ```text
//! <root>/pins/<pid>-<n>    digests a live writer needs, one per line; the
//!                          writer holds flock on it for its whole life
//! ```
//!
//! A pull pins the manifest it fetched, then its config and layers, before
//! it looks at which of them are stored, and drops the pin once its ref is
//! in `index.json`. Garbage collection counts the digests of every pin
//! whose file is locked (its writer lives) as referenced; pins whose lock
//! is free belong to dead writers and are deleted.
//!
//! The only store-wide lock left is the gc lock, taken shared for the few
//! microseconds of creating a pin or adding to it, and exclusively by a
//! collection while it decides and deletes: so either a pin's digests are
//! on file before a collection starts, or the writer looks at the store
//! after the collection is done (and fetches again what it deleted).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_fsutil::{IoContext as _, LockMode, PathError};

use crate::digest::Digest;
use crate::dirs::StoreDir;
use crate::error::Error;
use crate::layout::Store;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A live pin; the file goes when it is dropped (or its process dies,
/// which frees the lock, and the next collection deletes the file).
#[derive(Debug)]
pub struct Pin {
    store: Store,
    path: PathBuf,
    file: Mutex<File>,
}

impl Store {
    fn pins_dir(&self) -> PathBuf {
        self.dir(StoreDir::Pins)
    }

    /// A new pin, empty.
    pub fn pin(&self) -> Result<Pin, Error> {
        let dir = self.pins_dir();
        // Created and locked under the gc lock: a collection never sees a
        // pin file that is not locked yet (and would take it for a dead one).
        let _gc = self.gc_lock(LockMode::Shared)?;
        let path = dir.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let open = || OpenOptions::new().create(true).append(true).open(&path);
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).io_context("create directory", &dir)?;
                open()
            }
            r => r,
        }
        .io_context("create pin", &path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                // Only a pin of a dead process with our pid and number
                // could be there, and nobody would hold its lock.
                return Err(PathError::new(
                    "lock new pin (held by another process)",
                    path,
                    io::Error::from(io::ErrorKind::WouldBlock),
                )
                .into());
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(PathError::new("lock pin", &path, e).into())
            }
        }
        // A dead process with our pid and number left it: not ours.
        file.set_len(0).io_context("truncate pin", &path)?;
        Ok(Pin {
            store: self.clone(),
            path,
            file: Mutex::new(file),
        })
    }

    /// Digests named by the pins of live writers (not expanded: a pinned
    /// manifest's layers are pinned by naming the manifest only if the
    /// caller expands it, as [`Store::live_blobs`] does).
    pub fn pinned(&self) -> Result<BTreeSet<Digest>, Error> {
        let mut out = BTreeSet::new();
        for (path, live) in self.pin_files()? {
            if !live {
                continue;
            }
            // A pin removed since the listing is simply gone.
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            out.extend(text.lines().filter_map(|l| l.parse::<Digest>().ok()));
        }
        Ok(out)
    }

    /// Deletes the pins of dead writers. The caller holds the gc lock
    /// exclusively (so no pin is between creation and its lock).
    pub(crate) fn sweep_pins(&self) -> Result<(), Error> {
        for (path, live) in self.pin_files()? {
            if !live {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(PathError::new("remove dead pin", &path, e).into()),
                }
            }
        }
        Ok(())
    }

    /// Every pin file, with whether a live process holds it.
    fn pin_files(&self) -> Result<Vec<(PathBuf, bool)>, Error> {
        let dir = self.pins_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PathError::new("list", &dir, e).into()),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.io_context("list", &dir)?;
            let path = e.path();
            out.push((path.clone(), held(&path)?));
        }
        Ok(out)
    }
}

/// Whether a process holds the pin at `path` (shared probe, so two
/// collectors never take each other for a writer).
fn held(path: &Path) -> Result<bool, Error> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(PathError::new("open pin", path, e).into()),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(PathError::new("probe pin", path, e).into()),
    }
}

impl Pin {
    /// Adds `digests`. When this returns, no collection deletes them (one
    /// that was running has finished: look at the store only now).
    pub fn add<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Result<(), Error> {
        let mut text = String::new();
        for d in digests {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let _gc = self.store.gc_lock(LockMode::Shared)?;
        let mut f = self.file.lock().expect("not poisoned");
        f.write_all(text.as_bytes())
            .io_context("write pin", &self.path)?;
        Ok(())
    }

    /// The pin file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", hex::encode([n; 32])).parse().unwrap()
    }

    #[test]
    fn live_pins_count_dead_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let a = store.pin().unwrap();
        let b = store.pin().unwrap();
        a.add([&digest(1), &digest(2)]).unwrap();
        b.add([&digest(3)]).unwrap();
        assert_eq!(
            store.pinned().unwrap(),
            [digest(1), digest(2), digest(3)].into_iter().collect()
        );
        drop(b);
        assert_eq!(
            store.pinned().unwrap(),
            [digest(1), digest(2)].into_iter().collect()
        );
        // A dead writer's pin: the file stays, its lock is gone.
        let dead = store.pins_dir().join("999999999-0");
        fs::write(&dead, format!("{}\n", digest(4))).unwrap();
        assert!(!store.pinned().unwrap().contains(&digest(4)));
        store.sweep_pins().unwrap();
        assert!(!dead.exists());
        assert!(a.path().exists(), "a live pin survives the sweep");
        let p = a.path().to_owned();
        drop(a);
        assert!(!p.exists());
    }
}
