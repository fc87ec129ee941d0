//! The file object store: `objects/<2 hex>/<62 hex>`, one inode per
//! (content, mode, owner, xattrs, mtime). Image roots hardlink into it, so
//! a file present in many layers, images or containers is stored once, and
//! every name of an object shows the metadata its layer gives it: all that
//! an inode carries is in its key. The mtime is part of it (object key v3)
//! because an inode has one: keyed without it, every path linked to an
//! object showed the mtime of the first layer that stored it (`make`,
//! rsync and Python's `.pyc` checks saw another tree than `umoci unpack`
//! writes). Same content with another mtime is another object.
//!
//! Writes are atomic: content goes into an unnamed `O_TMPFILE` inode (or a
//! `tmp-*` name where the filesystem lacks it), gets its metadata, and is
//! linked under its final name only then; a crash leaves nothing named.
//! Objects are never modified after that. They are derived data (the
//! verified blobs are the source), so they are not fsynced one by one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_fsutil::IoContext as _;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::changeset::{Meta, ObjectId};
use crate::error::Error;

/// Files up to this size are read into memory first, so an object that
/// exists already costs no write at all.
const SMALL: u64 = 4 << 20;
/// Larger files are hashed and written in chunks of this size.
const CHUNK: usize = 1 << 20;

/// Reads into `buf` until it is full or `r` ends; how many bytes it read.
pub(crate) fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The object directory of a store.
#[derive(Debug)]
pub struct ObjectStore {
    dir: PathBuf,
    fd: OwnedFd,
    owner: Ownership,
    /// `objects/<xx>` directories known to exist.
    subdirs: [AtomicBool; 256],
    /// The ids new files get anyway (no chown needed for those).
    creds: (u32, u32),
}

/// Whether metadata that needs privileges is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// chown to the (mapped) ids and set `security.*` xattrs; fail if refused.
    Apply,
    /// Keep the writer's ids (an unprivileged unpack outside a user
    /// namespace), skipping what needs privileges.
    Ignore,
}

/// What `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new object was stored.
    Stored,
    /// The object existed already.
    Present,
}

impl ObjectStore {
    /// Opens (creating) `<store root>/objects`.
    pub fn open(store_root: &Path, owner: Ownership) -> Result<ObjectStore, Error> {
        let dir = cairn_store::StoreDir::Objects.under(store_root);
        std::fs::create_dir_all(&dir).io_context("create object directory", &dir)?;
        let fd = rustix::fs::open(
            &dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .io_context("open object directory", &dir)?;
        Ok(ObjectStore {
            dir,
            fd,
            owner,
            subdirs: std::array::from_fn(|_| AtomicBool::new(false)),
            creds: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The object directory's fd (for `linkat` from it).
    pub fn fd(&self) -> impl AsFd + '_ {
        self.fd.as_fd()
    }

    /// Whether ownership is applied.
    pub fn ownership(&self) -> Ownership {
        self.owner
    }

    /// `ab/cdef…`, relative to [`ObjectStore::dir`].
    pub fn relative_path(id: &ObjectId) -> String {
        let h = id.hex();
        format!("{}/{}", &h[..2], &h[2..])
    }

    /// The absolute path of an object.
    pub fn path(&self, id: &ObjectId) -> PathBuf {
        self.dir.join(Self::relative_path(id))
    }

    /// Whether the object is stored.
    pub fn contains(&self, id: &ObjectId) -> bool {
        rustix::fs::statat(
            &self.fd,
            Self::relative_path(id).as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }

    /// Stores `size` bytes from `content` with `meta`; returns the id.
    /// Fails if `content` ends early or holds more.
    pub fn put(
        &self,
        content: &mut dyn Read,
        size: u64,
        meta: &Meta,
    ) -> Result<(ObjectId, PutOutcome), Error> {
        self.put_using(content, size, meta, &mut Vec::new())
    }

    /// [`put`](Self::put) with `scratch` as its buffer. A caller storing
    /// many files passes the same one each time: it is grown (and zeroed)
    /// once, instead of a buffer allocated and zeroed per file. Its
    /// contents on return are unspecified.
    pub fn put_using(
        &self,
        content: &mut dyn Read,
        size: u64,
        meta: &Meta,
        scratch: &mut Vec<u8>,
    ) -> Result<(ObjectId, PutOutcome), Error> {
        if size <= SMALL {
            let n = size as usize;
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            let got = fill(content, &mut scratch[..n]).map_err(Error::Read)?;
            let more = got == n && fill(content, &mut [0u8]).map_err(Error::Read)? > 0;
            if got < n || more {
                return Err(Error::Truncated {
                    expected: size,
                    got: got as u64 + u64::from(more),
                });
            }
            return self.put_bytes(&scratch[..n], meta);
        }
        let (file, tmp_name) = self.new_file(None)?;
        let mut f = File::from(file);
        let mut hasher = blake3::Hasher::new();
        if scratch.len() < CHUNK {
            scratch.resize(CHUNK, 0);
        }
        let buf = &mut scratch[..CHUNK];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match content.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.discard(tmp_name);
                    return Err(Error::Read(e));
                }
            };
            if n == 0 {
                self.discard(tmp_name);
                return Err(Error::Truncated {
                    expected: size,
                    got: size - left,
                });
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])
                .io_context("write object", &self.dir)?;
            left -= n as u64;
        }
        let digest: [u8; 32] = *hasher.finalize().as_bytes();
        let id = object_id(&digest, meta);
        if self.contains(&id) {
            self.discard(tmp_name);
            return Ok((id, PutOutcome::Present));
        }
        self.publish(f, tmp_name, id, meta)
    }

    /// Removes an object (best effort: a failed layer cleaning up).
    pub fn remove(&self, id: &ObjectId) {
        let _ = rustix::fs::unlinkat(&self.fd, Self::relative_path(id).as_str(), AtFlags::empty());
    }

    /// Stores in-memory content with `meta`.
    pub fn put_bytes(&self, content: &[u8], meta: &Meta) -> Result<(ObjectId, PutOutcome), Error> {
        let digest: [u8; 32] = *blake3::hash(content).as_bytes();
        let id = object_id(&digest, meta);
        if self.contains(&id) {
            return Ok((id, PutOutcome::Present));
        }
        let (file, tmp_name) = self.new_file(Some(id.0[0]))?;
        let mut f = File::from(file);
        f.write_all(content).io_context("write object", &self.dir)?;
        self.publish(f, tmp_name, id, meta)
    }

    /// An unnamed file in the object directory, or a named temp file where
    /// `O_TMPFILE` is not supported.
    /// An unnamed file (`O_TMPFILE`) in `objects/<sub>` (spreading creations
    /// over 256 directories keeps parallel writers off one directory lock),
    /// or a named temp file where the filesystem lacks `O_TMPFILE`.
    fn new_file(&self, sub: Option<u8>) -> Result<(OwnedFd, Option<String>), Error> {
        let dir = match sub {
            Some(b) => {
                self.ensure_subdir(b)?;
                format!("{b:02x}")
            }
            None => ".".to_owned(),
        };
        match rustix::fs::openat(
            &self.fd,
            dir.as_str(),
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => Ok((fd, None)),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => {
                let name = format!("{dir}/tmp-{}-{}", std::process::id(), unique());
                let fd = rustix::fs::openat(
                    &self.fd,
                    name.as_str(),
                    OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io::Error::from)
                .io_context("create object", &self.dir)?;
                Ok((fd, Some(name)))
            }
            Err(e) => Err(io::Error::from(e))
                .io_context("create object", &self.dir.join(dir))
                .map_err(Error::from),
        }
    }

    fn ensure_subdir(&self, b: u8) -> Result<(), Error> {
        let known = &self.subdirs[b as usize];
        if !known.load(Ordering::Relaxed) {
            let sub = format!("{b:02x}");
            match rustix::fs::mkdirat(&self.fd, sub.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => known.store(true, Ordering::Relaxed),
                Err(e) => {
                    return Err(io::Error::from(e))
                        .io_context("create object directory", &self.dir.join(sub))
                        .map_err(Error::from)
                }
            }
        }
        Ok(())
    }

    fn discard(&self, tmp_name: Option<String>) {
        if let Some(n) = tmp_name {
            let _ = rustix::fs::unlinkat(&self.fd, n.as_str(), AtFlags::empty());
        }
    }

    /// Applies metadata and links the file under its id.
    fn publish(
        &self,
        f: File,
        tmp_name: Option<String>,
        id: ObjectId,
        meta: &Meta,
    ) -> Result<(ObjectId, PutOutcome), Error> {
        let result = self.finish(&f, &tmp_name, &id, meta);
        if result.is_err() {
            self.discard(tmp_name);
        }
        result.map(|p| (id, p))
    }

    fn finish(
        &self,
        f: &File,
        tmp_name: &Option<String>,
        id: &ObjectId,
        meta: &Meta,
    ) -> Result<PutOutcome, Error> {
        // A new file has the writer's ids already: no chown for those.
        let chown = self.owner == Ownership::Apply && (meta.uid, meta.gid) != self.creds;
        apply_file_meta(f, meta, chown, self.owner == Ownership::Apply)
            .io_context("set object metadata", &self.dir)?;
        let rel = Self::relative_path(id);
        self.ensure_subdir(id.0[0])?;
        let linked = match tmp_name {
            None => self.link_unnamed(f, &rel),
            Some(name) => rustix::fs::renameat_with(
                &self.fd,
                name.as_str(),
                &self.fd,
                rel.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            ),
        };
        match linked {
            Ok(()) => Ok(PutOutcome::Stored),
            // Another writer stored the same object first: same content and
            // metadata by construction.
            Err(rustix::io::Errno::EXIST) => Ok(PutOutcome::Present),
            Err(e) => Err(io::Error::from(e))
                .io_context("link object", &self.dir.join(rel))
                .map_err(Error::from),
        }
    }
}

/// Whether `linkat(fd, "", AT_EMPTY_PATH)` was refused once: it needs
/// `CAP_DAC_READ_SEARCH` before Linux 6.10 (since then, opening the file
/// oneself is enough). The fallback, `/proc/self/fd/N`, costs a walk
/// through procfs per object.
static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);

impl ObjectStore {
    /// Names an `O_TMPFILE` inode `rel`.
    fn link_unnamed(&self, f: &File, rel: &str) -> rustix::io::Result<()> {
        if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
            match rustix::fs::linkat(f, "", &self.fd, rel, AtFlags::EMPTY_PATH) {
                Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT) => {
                    EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed)
                }
                other => return other,
            }
        }
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(f));
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            &self.fd,
            rel,
            AtFlags::SYMLINK_FOLLOW,
        )
    }
}

/// Sets owner (with `chown`), mode (after chown, which clears setuid),
/// xattrs (`security.*` only when `privileged`) and mtime on an open file.
pub(crate) fn apply_file_meta(
    f: &File,
    meta: &Meta,
    chown: bool,
    privileged: bool,
) -> io::Result<()> {
    if chown {
        rustix::fs::fchown(
            f,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
        )?;
    }
    rustix::fs::fchmod(f, Mode::from_raw_mode(meta.mode & 0o7777))?;
    for (name, value) in &meta.xattrs {
        if !privileged && !name.starts_with(b"user.") {
            continue;
        }
        rustix::fs::fsetxattr(f, name.as_slice(), value, rustix::fs::XattrFlags::empty())?;
    }
    let t = Timespec {
        tv_sec: meta.mtime,
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        f,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    Ok(())
}

/// The object id: BLAKE3 over a version tag, the content's BLAKE3 and the
/// metadata that all hardlinks of one inode share: mode, owner, mtime (v3;
/// v2 ids had no mtime), xattrs. Objects are cairn's own
/// (no OCI digest names them), so the hash is the fastest sound one:
/// BLAKE3 runs about 3x faster than SHA-256 here, and every byte of every
/// layer goes through it.
pub fn object_id(content: &[u8; 32], meta: &Meta) -> ObjectId {
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-object-v3\n");
    h.update(content);
    h.update(&(meta.mode & 0o7777).to_le_bytes());
    h.update(&meta.uid.to_le_bytes());
    h.update(&meta.gid.to_le_bytes());
    h.update(&meta.mtime.to_le_bytes());
    for (name, value) in &meta.xattrs {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(&(value.len() as u64).to_le_bytes());
        h.update(value);
    }
    ObjectId(*h.finalize().as_bytes())
}

fn unique() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: nix_uid(),
            gid: nix_gid(),
            mtime: 1_600_000_000,
            xattrs: vec![],
        }
    }

    fn nix_uid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn nix_gid() -> u32 {
        rustix::process::getegid().as_raw()
    }

    #[test]
    fn same_content_and_meta_is_one_inode() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path(), Ownership::Apply).unwrap();
        let (a, pa) = s.put(&mut &b"hello"[..], 5, &meta(0o644)).unwrap();
        let (b, pb) = s.put(&mut &b"hello"[..], 5, &meta(0o644)).unwrap();
        assert_eq!((a, pa, pb), (b, PutOutcome::Stored, PutOutcome::Present));
        let (c, _) = s.put(&mut &b"hello"[..], 5, &meta(0o755)).unwrap();
        assert_ne!(a, c, "mode is part of the identity");
        // So is the mtime: each name of an object shows it.
        let later = Meta {
            mtime: 1_700_000_000,
            ..meta(0o644)
        };
        let (d, pd) = s.put(&mut &b"hello"[..], 5, &later).unwrap();
        assert_ne!(a, d, "mtime is part of the identity");
        assert_eq!(pd, PutOutcome::Stored);
        assert_eq!(
            std::fs::metadata(s.path(&d)).unwrap().mtime(),
            1_700_000_000
        );
        let m = std::fs::metadata(s.path(&a)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644);
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(std::fs::read(s.path(&a)).unwrap(), b"hello");
        // Nothing else was left in the directory.
        let names: Vec<_> = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let subdirs: std::collections::BTreeSet<_> = [a, c, d]
            .iter()
            .map(|id| id.hex()[..2].to_owned())
            .collect();
        assert_eq!(names.len(), subdirs.len(), "{names:?}");
    }

    #[test]
    fn setuid_survives_and_short_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path(), Ownership::Apply).unwrap();
        let (id, _) = s.put(&mut &b"#!/bin/true"[..], 11, &meta(0o4755)).unwrap();
        assert_eq!(
            std::fs::metadata(s.path(&id)).unwrap().mode() & 0o7777,
            0o4755
        );
        let err = s.put(&mut &b"abc"[..], 10, &meta(0o644)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 10,
                    got: 3
                }
            ),
            "{err}"
        );
        let big = vec![7u8; (SMALL + 10) as usize];
        let err = s
            .put(&mut &big[..(SMALL + 5) as usize], SMALL + 10, &meta(0o644))
            .unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        let (big_id, _) = s
            .put(&mut &big[..], big.len() as u64, &meta(0o600))
            .unwrap();
        assert_eq!(
            std::fs::metadata(s.path(&big_id)).unwrap().len(),
            big.len() as u64
        );
    }

    /// `AT_EMPTY_PATH` where the kernel allows it, and the `/proc/self/fd`
    /// fallback (only taken on older kernels otherwise) name the same file.
    /// The switch is process-wide: other tests running meanwhile take the
    /// fallback for a while, which is as correct.
    #[test]
    fn an_unnamed_file_is_named_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path(), Ownership::Apply).unwrap();
        for (refused, name) in [(false, "empty-path"), (true, "proc")] {
            let (fd, tmp) = s.new_file(None).unwrap();
            assert!(tmp.is_none(), "O_TMPFILE is expected to work here");
            let mut f = File::from(fd);
            f.write_all(name.as_bytes()).unwrap();
            let was = EMPTY_PATH_REFUSED.swap(refused, Ordering::Relaxed);
            let linked = s.link_unnamed(&f, name);
            EMPTY_PATH_REFUSED.store(was, Ordering::Relaxed);
            linked.unwrap();
            assert_eq!(std::fs::read(s.dir().join(name)).unwrap(), name.as_bytes());
        }
    }

    /// A scratch buffer reused across puts never lends one file's bytes to
    /// the next: each object holds exactly its own content, and content
    /// shorter than announced is refused even where the buffer still holds
    /// an earlier, longer file.
    #[test]
    fn a_reused_buffer_stores_each_file_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path(), Ownership::Apply).unwrap();
        let mut scratch = Vec::new();
        let large = vec![b'L'; (SMALL + 3) as usize];
        for content in [
            &b"first file, the longer one"[..],
            b"short",
            &large,
            b"tiny",
        ] {
            let (id, _) = s
                .put_using(
                    &mut &content[..],
                    content.len() as u64,
                    &meta(0o644),
                    &mut scratch,
                )
                .unwrap();
            assert_eq!(std::fs::read(s.path(&id)).unwrap(), content);
        }
        // Shorter than announced, then longer: the count read is told.
        for (content, size, read) in [(&b"abc"[..], 12, 3), (b"abcdef", 4, 5)] {
            let err = s
                .put_using(&mut &content[..], size, &meta(0o644), &mut scratch)
                .unwrap_err();
            assert!(
                matches!(err, Error::Truncated { expected, got } if expected == size && got == read),
                "{err}"
            );
        }
    }
}
