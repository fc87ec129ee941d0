//! Blobs whose digest is known only once their last byte is written: what
//! cairn makes itself (a committed layer, a recompressed one, an imported
//! tarball), as opposed to a download, whose descriptor names the digest
//! before the first byte.
//!
//! ```text
//! <root>/tmp/new-<pid>-<n>.partial   a new blob being written; flock'd by its writer
//! ```
//!
//! Crash rules are a pulled blob's: the data is hashed as it is written,
//! fsynced, made read-only and renamed into `blobs/` under the blob's lock
//! (so it never replaces a blob another writer just stored). A writer killed
//! before that leaves only its `new-*.partial`; nobody holds its flock any
//! more, and [`Store::sweep_partials`] removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_fsutil::{IoContext as _, LockGuard, LockMode};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::dirs::StoreDir;
use crate::error::Error;
use crate::layout::{Put, Store};

const WRITE_BUFFER: usize = 1 << 20;

/// After this many bytes the writer asks the kernel to start writing them
/// back, so the fsync at commit waits for the tail only.
const WRITEBACK_STEP: u64 = 8 << 20;

/// The prefix of a new blob's temp file in `tmp/`.
pub(crate) const NEW_PREFIX: &str = "new-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written whose digest is not known yet ([`Store::new_blob`]).
/// Dropped without [`NewBlob::commit`], its file is removed.
#[derive(Debug)]
pub struct NewBlob {
    store: Store,
    file: BufWriter<File>,
    tmp: PathBuf,
    /// The temp file's own flock: held while it is written, so a sweep
    /// removes only files whose writer is gone.
    lock: Option<LockGuard>,
    hasher: Hasher,
    written: u64,
    writeback_from: u64,
    done: bool,
}

impl Store {
    /// A writer for a new blob whose digest is computed from what is
    /// written; see [`NewBlob`].
    pub fn new_blob(&self) -> Result<NewBlob, Error> {
        let dir = self.dir(StoreDir::Tmp);
        fs::create_dir_all(&dir).io_context("create directory", &dir)?;
        let name = format!(
            "{NEW_PREFIX}{}-{}.partial",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join(name);
        // A file of the same name can only be a dead writer's whose pid was
        // reused: it is not locked, and is replaced.
        let lock = LockGuard::acquire(&tmp, LockMode::Exclusive)?;
        let file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .io_context("create", &tmp)?;
        Ok(NewBlob {
            store: self.clone(),
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            tmp,
            lock: Some(lock),
            hasher: Hasher::new(Algorithm::Sha256),
            written: 0,
            writeback_from: 0,
            done: false,
        })
    }
}

impl NewBlob {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The temp file (for error messages).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Starts writeback of what was written since the last call, without
    /// waiting (see the blob writer's twin).
    fn start_writeback(&mut self) -> io::Result<()> {
        self.file.flush()?;
        crate::layout::start_writeback(self.file.get_ref(), self.writeback_from, self.written);
        self.writeback_from = self.written;
        Ok(())
    }

    /// Fsyncs the blob and renames it into `blobs/` under its digest (or
    /// drops it when the store has that blob already). Returns the digest,
    /// the size and whether it was stored.
    pub fn commit(mut self) -> Result<(Digest, u64, Put), Error> {
        self.done = true;
        let result = self.finish();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn finish(&mut self) -> Result<(Digest, u64, Put), Error> {
        self.file.flush().io_context("write blob", &self.tmp)?;
        let digest = std::mem::replace(&mut self.hasher, Hasher::new(Algorithm::Sha256)).finish();
        let size = self.written;
        let lock = self.store.lock_blob(&digest)?;
        if lock.is_stored() {
            fs::remove_file(&self.tmp).io_context("remove", &self.tmp)?;
            return Ok((digest, size, Put::AlreadyPresent));
        }
        let file = self.file.get_ref();
        file.sync_all().io_context("fsync blob", &self.tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .io_context("chmod blob", &self.tmp)?;
        let dest = self.store.blob_path(&digest);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).io_context("create directory", dir)?;
        fs::rename(&self.tmp, &dest).io_context("rename blob into place", &dest)?;
        // As for downloads, the directory is fsynced once per ref.
        drop(self.lock.take());
        Ok((digest, size, Put::Stored))
    }
}

impl Write for NewBlob {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        if self.written - self.writeback_from >= WRITEBACK_STEP {
            self.start_writeback()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for NewBlob {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Whether `name` in `tmp/` is a new blob's temp file.
pub(crate) fn is_new_blob_name(name: &str) -> bool {
    name.starts_with(NEW_PREFIX) && name.ends_with(".partial")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_blob_lands_under_its_digest_verified_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let mut w = store.new_blob().unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (digest, size, put) = w.commit().unwrap();
        assert_eq!(digest, Digest::sha256_of(b"hello world"));
        assert_eq!(size, 11);
        assert_eq!(put, Put::Stored);
        assert_eq!(store.read_blob(&digest, 100).unwrap(), b"hello world");
        let mode = fs::metadata(store.blob_path(&digest))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        // The same content again is found, not written twice.
        let mut w = store.new_blob().unwrap();
        w.write_all(b"hello world").unwrap();
        assert_eq!(w.commit().unwrap().2, Put::AlreadyPresent);
        assert_eq!(fs::read_dir(store.dir(StoreDir::Tmp)).unwrap().count(), 0);
    }

    #[test]
    fn an_abandoned_new_blob_leaves_nothing_and_a_dead_writers_file_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let mut w = store.new_blob().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(store.dir(StoreDir::Tmp)).unwrap().count(), 0);
        assert!(store.blobs().unwrap().is_empty());

        // A live writer's file survives a sweep of everything; a file
        // whose writer died (nobody holds its flock) does not.
        let mut live = store.new_blob().unwrap();
        live.write_all(b"live").unwrap();
        let dead = store.dir(StoreDir::Tmp).join("new-1-99.partial");
        fs::write(&dead, b"dead writer's bytes").unwrap();
        store.sweep_partials(true).unwrap();
        assert!(!dead.exists());
        assert!(live.path().exists());
        let (digest, _, _) = live.commit().unwrap();
        assert_eq!(store.read_blob(&digest, 100).unwrap(), b"live");
    }
}
