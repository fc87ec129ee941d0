//! The on-disk OCI image layout: blobs, `index.json`, temp files and locks.
//!
//! ```text
//! <root>/
//!   oci-layout                 {"imageLayoutVersion":"1.0.0"}
//!   index.json                 refs: one manifest descriptor per name
//!   blobs/sha256/<hex>         manifests, configs, layers; mode 0444, never rewritten
//!   tmp/<alg>-<hex>.partial    a blob being written (resumable), guarded by its blob lock
//!   tmp/new-<pid>-<n>.partial  a blob of unknown digest being written (see [`crate::newblob`])
//!   .index.json.<pid>-<n>.tmp  the next index.json (or oci-layout), guarded by the index
//!                              lock; one a killed writer left is removed by the next
//!   locks/blob-<alg>-<hex>     flock: one writer per blob across processes
//!   locks/index                flock: index.json read-modify-write
//!   locks/gc                   flock: exclusive to a collection while it decides and
//!                              deletes; shared for a moment to create or fill a pin
//!   locks/use-<hex>            flock: shared by a create using image <hex>, exclusive
//!                              to rmi/prune checking that no container uses it
//!   pins/<pid>-<n>             blobs a live writer needs (see [`crate::pin`])
//! ```
//!
//! Crash rules: a blob appears under `blobs/` only by `rename(2)` after its
//! digest and size were verified and its data fsynced, so a crash leaves at
//! most a `.partial` in `tmp/` (resumed or swept later); the directory is
//! fsynced before a ref naming the blob is written, so a power loss can take
//! back only blobs nothing references yet. `index.json` is
//! replaced by rename after an fsync, so a reader sees the old or the new
//! one. Refs are written last by a pull, so a ref never names a blob that is
//! not there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use cairn_fsutil::{Durability, IoContext as _, LockGuard, LockMode, PathError};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::dirs::StoreDir;
use crate::error::Error;
use crate::media::{types, Index};

/// The annotation that names a ref in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const LAYOUT_VERSION: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// How long an abandoned partial download is kept for a later resume.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const WRITE_BUFFER: usize = 1 << 20;

/// After this many bytes, a blob writer asks the kernel to start writing
/// them back, so the fsync at commit waits for the tail only.
const WRITEBACK_STEP: u64 = 8 << 20;

/// An open store root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What storing a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The blob was written.
    Stored,
    /// Another writer stored it first; this copy was discarded.
    AlreadyPresent,
}

impl Store {
    /// Opens the store at `root`, creating the layout if it is not there.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, Error> {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .io_context("resolve current directory for", &root)?
                .join(root)
        };
        if !root.exists() {
            fs::create_dir_all(&root).io_context("create store directory", &root)?;
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
                .io_context("chmod store directory", &root)?;
        }
        let store = Store { root };
        let sha256 = store.dir(StoreDir::Blobs).join(Algorithm::Sha256.as_str());
        for p in [sha256, store.dir(StoreDir::Tmp), store.dir(StoreDir::Locks)] {
            fs::create_dir_all(&p).io_context("create directory", &p)?;
        }
        let layout = store.root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| store.corrupt(format!("oci-layout is not JSON ({e})")))?;
                if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                    return Err(store.corrupt(format!(
                        "oci-layout declares {v}, cairn reads imageLayoutVersion 1.0.0"
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _g = store.lock_index()?;
                if !layout.exists() {
                    store.write_atomic(&layout, LAYOUT_VERSION.as_bytes())?;
                }
            }
            Err(e) => return Err(PathError::new("read", &layout, e).into()),
        }
        if !store.root.join("index.json").exists() {
            store.update_index(|_| Ok(true))?;
        }
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One of the root's subdirectories.
    pub fn dir(&self, dir: StoreDir) -> PathBuf {
        dir.under(&self.root)
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir(StoreDir::Blobs)
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// The stored blob's size, if it is stored.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Reads a small blob (manifest, config) whole, verifying its digest, and
    /// refusing anything over `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        let file = File::open(&path).io_context("open blob", &path)?;
        let mut data = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut data)
            .io_context("read blob", &path)?;
        if data.len() as u64 > limit {
            return Err(self.corrupt(format!(
                "blob {digest} is larger than {limit} bytes, too large for a manifest or config"
            )));
        }
        let actual = hash(digest.algorithm(), &data);
        if &actual != digest {
            return Err(self.corrupt(format!(
                "blob {digest} hashes to {actual} ({})",
                path.display()
            )));
        }
        Ok(data)
    }

    /// Opens a stored blob for streaming (not verified here).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, Error> {
        let path = self.blob_path(digest);
        Ok(File::open(&path).io_context("open blob", &path)?)
    }

    /// Takes the per-blob write lock, blocking while another process holds it.
    pub fn lock_blob(&self, digest: &Digest) -> Result<BlobLock, Error> {
        let path = self.lock_path(&format!(
            "blob-{}-{}",
            digest.algorithm().as_str(),
            digest.hex()
        ));
        let guard = LockGuard::acquire(&path, LockMode::Exclusive)?;
        Ok(BlobLock {
            store: self.clone(),
            digest: digest.clone(),
            _guard: guard,
        })
    }

    /// Stores `data` as a blob, verifying it against `expected` if given.
    pub fn put_blob_bytes(
        &self,
        data: &[u8],
        expected: Option<&Digest>,
    ) -> Result<(Digest, Put), Error> {
        let digest = match expected {
            Some(d) => d.clone(),
            None => Digest::sha256_of(data),
        };
        if self.has_blob(&digest) {
            // Still verify what the caller hands in: a mismatch is their bug
            // or a tampered source, and must not go unnoticed.
            let actual = hash(digest.algorithm(), data);
            if actual != digest {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected: digest,
                    actual,
                });
            }
            return Ok((digest, Put::AlreadyPresent));
        }
        let lock = self.lock_blob(&digest)?;
        let mut w = lock.writer(Some(data.len() as u64), false)?;
        w.write(data)?;
        let put = w.commit()?;
        Ok((digest, put))
    }

    /// The current `index.json` (a consistent snapshot: it is only ever
    /// replaced by rename).
    pub fn index(&self) -> Result<Index, Error> {
        let path = self.root.join("index.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty_index()),
            Err(e) => return Err(PathError::new("read", &path, e).into()),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| self.corrupt(format!("index.json is not a valid OCI index ({e})")))
    }

    /// Read-modify-write of `index.json` under the index lock. `f` returns
    /// whether it changed anything; the file is rewritten only then.
    pub fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Index) -> Result<T, Error>,
    ) -> Result<T, Error>
    where
        T: IndexChange,
    {
        let _g = self.lock_index()?;
        let mut index = self.index()?;
        let out = f(&mut index)?;
        if out.changed() {
            let bytes = serde_json::to_vec(&index).expect("an index always serializes");
            self.write_atomic(&self.root.join("index.json"), &bytes)?;
        }
        Ok(out)
    }

    /// Takes the garbage-collection lock: a collection holds it exclusive
    /// while it decides what is unreferenced and deletes it; writers take it
    /// shared only for a moment, to create or add to their [`crate::Pin`]
    /// (never across a download).
    pub fn gc_lock(&self, mode: LockMode) -> Result<LockGuard, Error> {
        Ok(LockGuard::acquire(&self.lock_path("gc"), mode)?)
    }

    /// Non-blocking [`Store::gc_lock`].
    pub fn try_gc_lock(&self, mode: LockMode) -> Result<Option<LockGuard>, Error> {
        Ok(LockGuard::try_acquire(&self.lock_path("gc"), mode)?)
    }

    /// Removes a blob (caller holds the gc lock exclusively and has checked
    /// that nothing references it). Returns the bytes freed.
    pub fn remove_blob(&self, digest: &Digest) -> Result<u64, Error> {
        let path = self.blob_path(digest);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(PathError::new("stat blob", &path, e).into()),
        };
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(PathError::new("remove blob", path, e).into()),
        }
    }

    /// Every stored blob digest (files under `blobs/<alg>/` whose names are
    /// valid digests; anything else is reported by `check`).
    pub fn blobs(&self) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.dir(StoreDir::Blobs).join(alg.as_str());
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(PathError::new("list", &dir, e).into()),
            };
            for entry in rd {
                let entry = entry.io_context("list", &dir)?;
                if let Some(name) = entry.file_name().to_str() {
                    if let Ok(d) = Digest::from_parts(alg, name) {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes abandoned partial downloads: those whose blob is now stored,
    /// and those older than a day (or all unlocked ones with `all`), and
    /// new blobs ([`Store::new_blob`]) whose writer is gone. Returns the
    /// bytes freed.
    pub fn sweep_partials(&self, all: bool) -> Result<u64, Error> {
        let dir = self.dir(StoreDir::Tmp);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(PathError::new("list", &dir, e).into()),
        };
        let mut freed = 0;
        for entry in rd {
            let entry = entry.io_context("list", &dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if crate::newblob::is_new_blob_name(name) {
                // A new blob cannot be resumed: once its writer is gone
                // (its flock is free) it is only garbage.
                let p = entry.path();
                if let Some(g) = LockGuard::try_acquire(&p, LockMode::Exclusive)? {
                    freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    g.remove()?;
                }
                continue;
            }
            let Some(digest) = partial_digest(name) else {
                continue;
            };
            let lock_path = self.lock_path(&format!(
                "blob-{}-{}",
                digest.algorithm().as_str(),
                digest.hex()
            ));
            // Someone is writing it right now: leave it.
            let Some(_g) = LockGuard::try_acquire(&lock_path, LockMode::Exclusive)? else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > PARTIAL_MAX_AGE);
            if all || old || self.has_blob(&digest) {
                let p = entry.path();
                match fs::remove_file(&p) {
                    Ok(()) => freed += meta.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(PathError::new("remove partial download", &p, e).into()),
                }
            }
        }
        Ok(freed)
    }

    /// A `Corrupt` error for this store.
    pub(crate) fn corrupt(&self, message: String) -> Error {
        Error::Corrupt {
            root: self.root.clone(),
            message,
        }
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.dir(StoreDir::Locks).join(name)
    }

    fn lock_index(&self) -> Result<LockGuard, Error> {
        Ok(LockGuard::acquire(
            &self.lock_path("index"),
            LockMode::Exclusive,
        )?)
    }

    /// Replaces `path` durably ([`cairn_fsutil::write_atomic`]). The caller
    /// holds the index lock, which guards every file written this way, so
    /// a temp file beside `path` is a killed writer's: it is removed first.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), Error> {
        remove_stale_temps(path)?;
        cairn_fsutil::write_atomic(path, data, 0o644, Durability::Durable)?;
        Ok(())
    }
}

/// Removes the temp files [`cairn_fsutil::write_atomic`] leaves beside
/// `path` when its process is killed (`.NAME.*.tmp`).
fn remove_stale_temps(path: &Path) -> Result<(), Error> {
    let dir = path.parent().expect("store files have a parent");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("store files have names");
    let prefix = format!(".{name}.");
    for entry in fs::read_dir(dir).io_context("list", dir)? {
        let entry = entry.io_context("list", dir)?;
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".tmp"));
        if stale {
            let p = entry.path();
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(PathError::new("remove stale temp file", p, e).into()),
            }
        }
    }
    Ok(())
}

/// Whether an `update_index` closure changed the index.
pub trait IndexChange {
    /// True if the index must be written back.
    fn changed(&self) -> bool;
}

impl IndexChange for bool {
    fn changed(&self) -> bool {
        *self
    }
}

impl<T> IndexChange for (bool, T) {
    fn changed(&self) -> bool {
        self.0
    }
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(types::OCI_INDEX.to_owned()),
        manifests: Vec::new(),
        annotations: Default::default(),
    }
}

fn hash(alg: Algorithm, data: &[u8]) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish()
}

impl Store {
    /// Makes the renames of committed blobs durable (before a ref names them).
    pub(crate) fn sync_blob_dirs(&self) -> Result<(), Error> {
        for alg in ["sha256", "sha512"] {
            let dir = self.dir(StoreDir::Blobs).join(alg);
            if dir.is_dir() {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context("fsync directory", dir)?;
    Ok(())
}

/// Queues bytes `from..to` of `file` (written, not yet on disk) for
/// writeback without waiting (`POSIX_FADV_DONTNEED` on a dirty range starts
/// `WB_SYNC_NONE` writeback). Advice only: a failure changes timing, never
/// the result.
pub(crate) fn start_writeback(file: &File, from: u64, to: u64) {
    let _ = nix::fcntl::posix_fadvise(
        file,
        from as i64,
        (to - from) as i64,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

fn partial_name(digest: &Digest) -> String {
    format!("{}-{}.partial", digest.algorithm().as_str(), digest.hex())
}

fn partial_digest(name: &str) -> Option<Digest> {
    let stem = name.strip_suffix(".partial")?;
    let (alg, hex) = stem.split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

/// The exclusive right to write one blob, across processes.
#[derive(Debug)]
pub struct BlobLock {
    store: Store,
    digest: Digest,
    _guard: LockGuard,
}

impl BlobLock {
    /// The blob this lock is for.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Whether the blob was stored meanwhile (check after locking).
    pub fn is_stored(&self) -> bool {
        self.store.has_blob(&self.digest)
    }

    /// A writer into `tmp/<alg>-<hex>.partial`. With `resume`, bytes already
    /// there from an interrupted download are kept (and re-hashed), so the
    /// caller continues from [`BlobWriter::written`]; otherwise they are
    /// discarded. `size` caps what is accepted.
    pub fn writer(&self, size: Option<u64>, resume: bool) -> Result<BlobWriter, Error> {
        let tmp = self
            .store
            .dir(StoreDir::Tmp)
            .join(partial_name(&self.digest));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&tmp)
            .io_context("create", &tmp)?;
        let mut hasher = Hasher::new(self.digest.algorithm());
        let mut written = 0u64;
        let existing = file.metadata().io_context("stat", &tmp)?.len();
        let keep = resume && existing > 0 && size.is_none_or(|s| existing <= s);
        if keep {
            let mut buf = vec![0u8; WRITE_BUFFER];
            loop {
                let n = file
                    .read(&mut buf)
                    .io_context("read partial download", &tmp)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                written += n as u64;
            }
        } else if existing > 0 {
            file.set_len(0).io_context("truncate", &tmp)?;
        }
        file.seek(SeekFrom::Start(written))
            .io_context("seek", &tmp)?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            tmp,
            store: self.store.clone(),
            hasher,
            written,
            digest: self.digest.clone(),
            size,
            done: false,
            keep_partial: false,
            writeback_from: written,
            tail: None,
        })
    }
}

/// What a blob writer tells the streams following it.
#[derive(Debug, Default)]
struct Tail {
    state: Mutex<TailState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct TailState {
    /// Bytes of the file that are written (not buffered) and may be read.
    readable: u64,
    /// Set once: the blob is verified and stored, or why it is not.
    end: Option<Result<(), String>>,
}

impl Tail {
    fn publish(&self, readable: u64) {
        self.state.lock().expect("not poisoned").readable = readable;
        self.changed.notify_all();
    }

    fn end(&self, end: Result<(), String>) {
        self.state
            .lock()
            .expect("not poisoned")
            .end
            .get_or_insert(end);
        self.changed.notify_all();
    }
}

/// A blob read while it is being downloaded ([`BlobWriter::stream`]): reads
/// what is written so far, then waits for more. It reaches its end only once
/// the blob is verified and stored; a blob that fails verification, or a
/// download that stops or restarts, fails the read with the reason. So what
/// a reader builds from it before the end is unverified, and must be thrown
/// away unless the end is reached.
#[derive(Debug)]
pub struct BlobStream {
    file: File,
    tail: Arc<Tail>,
    pos: u64,
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = {
            let mut s = self.tail.state.lock().expect("not poisoned");
            loop {
                if let Some(Err(why)) = &s.end {
                    return Err(io::Error::other(why.clone()));
                }
                if s.readable > self.pos {
                    break s.readable - self.pos;
                }
                if s.end.is_some() {
                    return Ok(0);
                }
                s = self.tail.changed.wait(s).expect("not poisoned");
            }
        };
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob's download file is shorter than what was written to it",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Streams one blob into the store: hashes as it writes, enforces the size
/// cap, and makes the blob visible only on a verified [`BlobWriter::commit`].
/// Dropped without commit, it deletes its partial file unless
/// [`BlobWriter::keep_partial`] was asked for (to resume later).
#[derive(Debug)]
pub struct BlobWriter {
    file: BufWriter<File>,
    tmp: PathBuf,
    store: Store,
    hasher: Hasher,
    written: u64,
    digest: Digest,
    size: Option<u64>,
    done: bool,
    keep_partial: bool,
    writeback_from: u64,
    /// Set once someone follows the download ([`BlobWriter::stream`]).
    tail: Option<Arc<Tail>>,
}

impl BlobWriter {
    /// A reader of this blob as it is written, from its first byte (a
    /// resumed partial's included); see [`BlobStream`].
    pub fn stream(&mut self) -> Result<BlobStream, Error> {
        let file = File::open(&self.tmp).io_context("open", &self.tmp)?;
        let on_disk = self.on_disk();
        let tail = self.tail.get_or_insert_with(Arc::default).clone();
        tail.publish(on_disk);
        Ok(BlobStream { file, tail, pos: 0 })
    }

    /// Bytes in the file itself, not in the write buffer.
    fn on_disk(&self) -> u64 {
        self.written - self.file.buffer().len() as u64
    }

    /// Tells the streams following this writer how far they may read.
    fn publish(&self) {
        if let Some(t) = &self.tail {
            let on_disk = self.on_disk();
            if t.state.lock().expect("not poisoned").readable != on_disk {
                t.publish(on_disk);
            }
        }
    }

    /// Bytes accepted so far (including resumed ones).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Keep the partial file if this writer is dropped uncommitted.
    pub fn keep_partial(&mut self, keep: bool) {
        self.keep_partial = keep;
    }

    /// Discards everything written so far (a server that ignored a Range
    /// request sends the whole blob again).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.file.flush().io_context("write blob", &self.tmp)?;
        let f = self.file.get_mut();
        f.set_len(0).io_context("truncate", &self.tmp)?;
        f.seek(SeekFrom::Start(0)).io_context("seek", &self.tmp)?;
        self.hasher = Hasher::new(self.digest.algorithm());
        self.written = 0;
        self.writeback_from = 0;
        if let Some(t) = self.tail.take() {
            t.end(Err(format!(
                "the download of {} restarted from its first byte",
                self.digest
            )));
        }
        Ok(())
    }

    /// Appends bytes; fails past the size cap.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let next = self.written + data.len() as u64;
        if let Some(size) = self.size {
            if next > size {
                return Err(Error::SizeMismatch {
                    what: "blob".into(),
                    digest: self.digest.clone(),
                    expected: size,
                    got: next,
                });
            }
        }
        self.file
            .write_all(data)
            .io_context("write blob", &self.tmp)?;
        self.hasher.update(data);
        self.written = next;
        if self.written - self.writeback_from >= WRITEBACK_STEP {
            self.start_writeback()?;
        }
        self.publish();
        Ok(())
    }

    /// Starts writing back what was written since the last call, without
    /// waiting: `POSIX_FADV_DONTNEED` on a dirty range queues it for
    /// writeback (`WB_SYNC_NONE`), so disk writes overlap the download
    /// instead of all waiting for the commit's fsync.
    fn start_writeback(&mut self) -> Result<(), Error> {
        self.file.flush().io_context("write blob", &self.tmp)?;
        start_writeback(self.file.get_ref(), self.writeback_from, self.written);
        self.writeback_from = self.written;
        Ok(())
    }

    /// Verifies size and digest, fsyncs, and renames the blob into place
    /// read-only.
    pub fn commit(mut self) -> Result<Put, Error> {
        self.done = true;
        let result = self.finish();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        if let Some(t) = &self.tail {
            t.end(match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            });
        }
        result
    }

    fn finish(&mut self) -> Result<Put, Error> {
        if let Some(size) = self.size {
            if self.written != size {
                return Err(Error::SizeMismatch {
                    what: "blob".into(),
                    digest: self.digest.clone(),
                    expected: size,
                    got: self.written,
                });
            }
        }
        let actual = std::mem::replace(&mut self.hasher, Hasher::new(Algorithm::Sha256)).finish();
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                what: "blob".into(),
                expected: self.digest.clone(),
                actual,
            });
        }
        self.file.flush().io_context("write blob", &self.tmp)?;
        self.publish();
        let file = self.file.get_ref();
        file.sync_all().io_context("fsync blob", &self.tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .io_context("chmod blob", &self.tmp)?;
        let dest = self.store.blob_path(&self.digest);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).io_context("create directory", dir)?;
        if dest.exists() {
            fs::remove_file(&self.tmp).io_context("remove", &self.tmp)?;
            return Ok(Put::AlreadyPresent);
        }
        fs::rename(&self.tmp, &dest).io_context("rename blob into place", &dest)?;
        // The directory is fsynced once per ref (`Store::set_ref`), not per
        // blob: a blob a power loss takes back was not referenced yet.
        Ok(Put::Stored)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done && !self.keep_partial {
            let _ = fs::remove_file(&self.tmp);
        }
        if let Some(t) = &self.tail {
            t.end(Err(format!(
                "the download of {} stopped before it completed",
                self.digest
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Descriptor;

    #[test]
    fn creates_a_layout_other_tools_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("r")).unwrap();
        let layout = fs::read_to_string(s.root().join("oci-layout")).unwrap();
        assert_eq!(layout, LAYOUT_VERSION);
        let idx: serde_json::Value =
            serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["schemaVersion"], 2);
        assert_eq!(idx["manifests"], serde_json::json!([]));
        assert!(s.root().join("blobs/sha256").is_dir());
        let mode = fs::metadata(s.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Reopening is harmless.
        Store::open(s.root()).unwrap();
    }

    #[test]
    fn refuses_a_foreign_layout_version() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"9"}"#,
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("imageLayoutVersion 1.0.0"), "{err}");
    }

    #[test]
    fn put_verifies_and_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (d, put) = s.put_blob_bytes(b"hello", None).unwrap();
        assert_eq!(put, Put::Stored);
        assert_eq!(d, Digest::sha256_of(b"hello"));
        let meta = fs::metadata(s.blob_path(&d)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert_eq!(s.read_blob(&d, 100).unwrap(), b"hello");
        assert_eq!(
            s.put_blob_bytes(b"hello", Some(&d)).unwrap().1,
            Put::AlreadyPresent
        );
        let wrong = Digest::sha256_of(b"other");
        let err = s.put_blob_bytes(b"hello", Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!s.has_blob(&wrong));
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn writer_enforces_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"0123456789");
        let lock = s.lock_blob(&d).unwrap();

        let mut w = lock.writer(Some(10), false).unwrap();
        w.write(b"0123456789").unwrap();
        let err = w.write(b"x").unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { got: 11, .. }), "{err}");
        drop(w);

        let mut w = lock.writer(Some(10), false).unwrap();
        w.write(b"01234").unwrap();
        let err = w.commit().unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert!(!s.has_blob(&d));

        let mut w = lock.writer(Some(10), false).unwrap();
        w.write(b"0123456780").unwrap();
        assert!(matches!(
            w.commit().unwrap_err(),
            Error::DigestMismatch { .. }
        ));
        assert!(!s.has_blob(&d));
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    /// Reads `stream` to its end in another thread.
    fn read_in_thread(mut stream: BlobStream) -> std::thread::JoinHandle<io::Result<Vec<u8>>> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            stream.read_to_end(&mut out).map(|_| out)
        })
    }

    #[test]
    fn a_stream_reads_the_download_as_it_arrives_and_ends_only_when_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // More than the write buffer, in pieces, with a resumed head.
        let data: Vec<u8> = (0..3 * WRITE_BUFFER as u32 + 17)
            .map(|i| (i * 7) as u8)
            .collect();
        let d = Digest::sha256_of(&data);
        let lock = s.lock_blob(&d).unwrap();
        let mut w = lock.writer(Some(data.len() as u64), true).unwrap();
        w.write(&data[..1000]).unwrap();
        w.keep_partial(true);
        drop(w);
        let mut w = lock.writer(Some(data.len() as u64), true).unwrap();
        let reader = read_in_thread(w.stream().unwrap());
        for piece in data[1000..].chunks(100_000) {
            w.write(piece).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        // Every byte written, not yet verified: the reader must still wait.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !reader.is_finished(),
            "the stream ended before the blob was stored"
        );
        assert_eq!(w.commit().unwrap(), Put::Stored);
        assert_eq!(reader.join().unwrap().unwrap(), data);
    }

    #[test]
    fn a_stream_fails_when_its_blob_does_not_verify_or_its_download_stops() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let data = b"0123456789".repeat(1000);
        let d = Digest::sha256_of(&data);
        let lock = s.lock_blob(&d).unwrap();

        // Wrong content: the digest check fails, so does the stream.
        let mut w = lock.writer(Some(data.len() as u64), false).unwrap();
        let reader = read_in_thread(w.stream().unwrap());
        w.write(&b"x".repeat(data.len())).unwrap();
        assert!(w.commit().is_err());
        let err = reader.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("digest"), "{err}");

        // Dropped mid-way (a failed or cancelled download).
        let mut w = lock.writer(Some(data.len() as u64), false).unwrap();
        let reader = read_in_thread(w.stream().unwrap());
        w.write(&data[..10]).unwrap();
        drop(w);
        let err = reader.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("stopped before it completed"), "{err}");

        // Restarted from the first byte: what was read may not be the blob.
        let mut w = lock.writer(Some(data.len() as u64), false).unwrap();
        let reader = read_in_thread(w.stream().unwrap());
        w.write(&data[..10]).unwrap();
        w.restart().unwrap();
        let err = reader.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("restarted"), "{err}");
        w.write(&data).unwrap();
        assert_eq!(w.commit().unwrap(), Put::Stored);
        assert_eq!(s.read_blob(&d, 1 << 20).unwrap(), data);
    }

    #[test]
    fn writer_resumes_a_kept_partial() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let data = b"resumable content".repeat(1000);
        let d = Digest::sha256_of(&data);
        let lock = s.lock_blob(&d).unwrap();
        let mut w = lock.writer(Some(data.len() as u64), true).unwrap();
        w.write(&data[..5000]).unwrap();
        w.keep_partial(true);
        drop(w);
        let mut w = lock.writer(Some(data.len() as u64), true).unwrap();
        assert_eq!(w.written(), 5000);
        w.write(&data[5000..]).unwrap();
        assert_eq!(w.commit().unwrap(), Put::Stored);
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), data);
        // Without resume the partial is discarded.
        let d2 = Digest::sha256_of(b"abc");
        let lock2 = s.lock_blob(&d2).unwrap();
        let mut w = lock2.writer(Some(3), true).unwrap();
        w.write(b"zz").unwrap();
        w.keep_partial(true);
        drop(w);
        let w = lock2.writer(Some(3), false).unwrap();
        assert_eq!(w.written(), 0);
    }

    #[test]
    fn sweep_removes_only_unlocked_stale_partials() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let stored = Digest::sha256_of(b"x");
        s.put_blob_bytes(b"x", None).unwrap();
        fs::write(s.root().join("tmp").join(partial_name(&stored)), b"x").unwrap();
        let busy = Digest::sha256_of(b"busy");
        let lock = s.lock_blob(&busy).unwrap();
        let mut w = lock.writer(None, true).unwrap();
        w.write(b"bu").unwrap();
        w.keep_partial(true);
        let fresh = Digest::sha256_of(b"fresh");
        fs::write(s.root().join("tmp").join(partial_name(&fresh)), b"fr").unwrap();
        s.sweep_partials(false).unwrap();
        let names: Vec<_> = fs::read_dir(s.root().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.contains(&partial_name(&stored)), "{names:?}");
        assert!(names.contains(&partial_name(&fresh)), "{names:?}");
        s.sweep_partials(true).unwrap();
        let names: Vec<_> = fs::read_dir(s.root().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![partial_name(&busy)]);
        drop(w);
    }

    #[test]
    fn index_updates_are_atomic_and_skipped_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let before = fs::metadata(s.root().join("index.json"))
            .unwrap()
            .modified()
            .unwrap();
        s.update_index(|_| Ok(false)).unwrap();
        let after = fs::metadata(s.root().join("index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        let mut desc = Descriptor::new(types::OCI_MANIFEST, Digest::sha256_of(b"m"), 1);
        desc.annotations
            .insert(REF_NAME.into(), "docker.io/library/x:1".into());
        s.update_index(|i| {
            i.manifests.push(desc.clone());
            Ok(true)
        })
        .unwrap();
        assert_eq!(s.index().unwrap().manifests, vec![desc]);
    }

    #[test]
    fn concurrent_index_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..10u8 {
                        let d = Descriptor::new(types::OCI_MANIFEST, Digest::sha256_of(&[t, i]), 1);
                        s.update_index(|idx| {
                            idx.manifests.push(d);
                            Ok(true)
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.index().unwrap().manifests.len(), 80);
    }
}
