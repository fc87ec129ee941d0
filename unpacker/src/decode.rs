//! Stage 1: one layer blob → a [`Changeset`], regular file contents into the
//! object store. Compression is detected from magic bytes (gzip, possibly
//! multi-member; zstd, possibly multi-frame with skippable frames; or a
//! plain tar), the uncompressed stream is hashed to check the diff id and
//! capped against decompression bombs, and `tar` is used as a parser only:
//! nothing is written where the archive says, only objects by content.

use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::changeset::{Change, Changeset, DeviceKind, Entry, Meta, ObjectId};
use crate::error::Error;
use crate::idmap::IdMap;
use crate::objects::{ObjectStore, PutOutcome};
use crate::path::{whiteout, RootPath, Whiteout};

/// Options for decoding.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Uid mapping applied to every entry.
    pub uid_map: IdMap,
    /// Gid mapping applied to every entry.
    pub gid_map: IdMap,
    /// Largest uncompressed size accepted for one layer.
    pub max_layer_size: u64,
}

impl DecodeOptions {
    /// Default cap on a layer's uncompressed size: 64 GiB.
    pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            uid_map: IdMap::identity(),
            gid_map: IdMap::identity(),
            max_layer_size: Self::DEFAULT_MAX_LAYER_SIZE,
        }
    }
}

/// The compression a stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd frame (`28 b5 2f fd`) or skippable frame (`5? 2a 4d 18`).
    Zstd,
    /// Anything else: a plain tar.
    Plain,
}

/// Recognizes the compression from the first bytes.
pub fn detect(head: &[u8]) -> Detected {
    match head {
        [0x1f, 0x8b, ..] => Detected::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Detected::Zstd,
        [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Detected::Zstd,
        _ => Detected::Plain,
    }
}

/// Marker inside an `io::Error` for the size cap.
#[derive(Debug)]
struct LimitExceeded;

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("layer size limit exceeded")
    }
}

impl std::error::Error for LimitExceeded {}

/// Bytes a layer expands to so far: its uncompressed stream plus the holes
/// of its sparse files, which the stream does not hold but the objects do
/// (a few blocks of archive can declare a file of any size).
type Expanded = std::rc::Rc<std::cell::Cell<u64>>;

/// Hashes and counts the uncompressed stream, failing past the cap.
struct Tap<R> {
    inner: R,
    hasher: Sha256,
    expanded: Expanded,
    limit: u64,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.expanded.get() + n as u64;
        self.expanded.set(total);
        if total > self.limit {
            return Err(io::Error::other(LimitExceeded));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A decoded layer and the digest of its uncompressed stream.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The changes.
    pub changeset: Changeset,
    /// SHA-256 of the uncompressed tar: what the image config lists.
    pub diff_id: cairn_store::Digest,
}

/// Decodes one layer. `layer` names it in errors; `diff_id` (from the image
/// config), if given, must match the uncompressed stream.
pub fn decode(
    blob: impl Read,
    layer: &str,
    diff_id: Option<&cairn_store::Digest>,
    objects: &ObjectStore,
    opts: &DecodeOptions,
) -> Result<Decoded, Error> {
    // The one buffer between the source and the decompressor: the gzip and
    // zstd decoders read from it in place (their `bufread` forms), so the
    // compressed stream is copied once, not once per reader wrapping it.
    let mut buffered = BufReader::with_capacity(1 << 20, blob);
    let head = buffered
        .fill_buf()
        .map_err(|e| corrupt(layer, &e))?
        .to_vec();
    let stream: Box<dyn Read> = match detect(&head) {
        Detected::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Detected::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| corrupt(layer, &e))?,
        ),
        Detected::Plain => Box::new(buffered),
    };
    let expanded = Expanded::default();
    let tap = Tap {
        inner: stream,
        hasher: Sha256::new(),
        expanded: expanded.clone(),
        limit: opts.max_layer_size,
    };
    let mut archive = tar::Archive::new(tap);
    let mut cs = Changeset::default();
    let stored = std::sync::Mutex::new(Vec::new());
    let result = read_entries(
        &mut archive,
        layer,
        objects,
        opts,
        &mut cs,
        &stored,
        &expanded,
    );
    let mut tap = archive.into_inner();
    let result = result
        .and_then(|()| {
            // Whatever follows the end-of-archive blocks is part of the diff id.
            io::copy(&mut tap, &mut io::sink())
                .map(|_| ())
                .map_err(|e| map_io(layer, e, opts))
        })
        .and_then(|()| {
            let actual = cairn_store::Digest::from_parts(
                cairn_store::Algorithm::Sha256,
                &hex::encode(tap.hasher.finalize()),
            )
            .expect("a SHA-256 in hex is a digest");
            match diff_id {
                Some(want) if *want != actual => Err(Error::DiffIdMismatch {
                    layer: layer.to_owned(),
                    expected: want.to_string(),
                    actual: actual.to_string(),
                }),
                _ => Ok(actual),
            }
        });
    match result {
        Ok(diff_id) => Ok(Decoded {
            changeset: cs,
            diff_id,
        }),
        Err(e) => {
            // A failed layer leaves the store as it was: the objects it added
            // go again (one found present was someone else's and stays).
            for id in stored.into_inner().expect("not poisoned") {
                objects.remove(&id);
            }
            Err(e)
        }
    }
}

fn corrupt(layer: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Corrupt {
        layer: layer.to_owned(),
        detail: e.to_string(),
    }
}

fn map_io(layer: &str, e: io::Error, opts: &DecodeOptions) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<LimitExceeded>()) {
        return Error::TooLarge {
            layer: layer.to_owned(),
            limit: opts.max_layer_size,
        };
    }
    corrupt(layer, &e)
}

/// Small regular files are hashed and written by worker threads while the
/// decoding thread goes on decompressing; larger ones are streamed inline.
const PARALLEL_MAX: u64 = 256 << 10;
/// Queued small files per layer (bounds memory to 16 MiB per layer).
const QUEUE: usize = 64;

/// The largest buffer kept for reuse.
const SPARE_MAX: usize = 64 << 10;

struct Job {
    index: usize,
    shown: String,
    /// The file's content is `buf[..len]`; `buf` goes back to the spares.
    buf: Vec<u8>,
    len: usize,
    meta: Meta,
}

/// Buffers of finished jobs, for the next ones: reading a file into a
/// reused buffer costs no allocation and no zeroing (a fresh `Vec` is
/// zeroed before `Read` may write into it).
#[derive(Default)]
struct Spares(std::sync::Mutex<Vec<Vec<u8>>>);

impl Spares {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .expect("not poisoned")
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        // Only small buffers are kept: any job may take any spare, so each
        // grows to the largest file it held, and a queue full of
        // `PARALLEL_MAX` buffers would quadruple the queue's memory.
        if buf.len() > SPARE_MAX {
            return;
        }
        let mut spares = self.0.lock().expect("not poisoned");
        if spares.len() < QUEUE {
            spares.push(buf);
        }
    }
}

fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    layer: &str,
    objects: &ObjectStore,
    opts: &DecodeOptions,
    cs: &mut Changeset,
    stored: &std::sync::Mutex<Vec<ObjectId>>,
    expanded: &Expanded,
) -> Result<(), Error> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
    let job_rx = std::sync::Mutex::new(job_rx);
    let spares = Spares::default();
    std::thread::scope(|scope| {
        let (res_tx, res_rx) = std::sync::mpsc::channel::<(usize, Result<ObjectId, Error>)>();
        for _ in 0..workers {
            let (job_rx, res_tx, spares) = (&job_rx, res_tx.clone(), &spares);
            scope.spawn(move || loop {
                let job = job_rx.lock().expect("not poisoned").recv();
                let Ok(job) = job else { break };
                let r = objects
                    .put_bytes(&job.buf[..job.len], &job.meta)
                    .map(|(id, outcome)| {
                        if outcome == PutOutcome::Stored {
                            stored.lock().expect("not poisoned").push(id);
                        }
                        id
                    })
                    .map_err(|e| e.context(format!("layer {layer}, entry {}", job.shown)));
                spares.give(job.buf);
                if res_tx.send((job.index, r)).is_err() {
                    break;
                }
            });
        }
        drop(res_tx);
        let produced = Producer {
            layer,
            objects,
            opts,
            jobs: &job_tx,
            spares: &spares,
            stored,
            expanded,
            scratch: Vec::new(),
        }
        .run(archive, cs);
        drop(job_tx);
        let mut first_err = None;
        for (index, r) in res_rx {
            match r {
                Ok(id) => {
                    if let Entry::File { object, .. } = &mut cs.changes[index].entry {
                        *object = id;
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        produced.and(first_err.map_or(Ok(()), Err))
    })
}

/// One decoder's reading side: walks the tar entries into the changeset,
/// handing small files to the worker threads (`jobs`) and storing large
/// ones itself. (The decoder's state is split in two only for the scoped
/// worker threads.)
struct Producer<'a> {
    layer: &'a str,
    objects: &'a ObjectStore,
    opts: &'a DecodeOptions,
    jobs: &'a std::sync::mpsc::SyncSender<Job>,
    spares: &'a Spares,
    stored: &'a std::sync::Mutex<Vec<ObjectId>>,
    expanded: &'a Expanded,
    /// The buffer of files stored inline (see `ObjectStore::put_using`).
    scratch: Vec<u8>,
}

impl Producer<'_> {
    /// Every entry of `archive` into `cs`.
    fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        cs: &mut Changeset,
    ) -> Result<(), Error> {
        let entries = archive.entries().map_err(|e| self.io(e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io(e))?;
            self.entry(entry, cs)?;
        }
        Ok(())
    }

    /// A read error of the layer: a corrupt layer, or one that expands
    /// beyond the limit.
    fn io(&self, e: io::Error) -> Error {
        map_io(self.layer, e, self.opts)
    }

    /// An entry cairn cannot represent.
    fn unsupported(&self, shown: &str, detail: &str) -> Error {
        Error::Unsupported {
            layer: self.layer.to_owned(),
            path: shown.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// One tar entry into `cs`.
    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        cs: &mut Changeset,
    ) -> Result<(), Error> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            // PAX global headers carry defaults for tools; nothing to apply.
            return Ok(());
        }
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let path =
            RootPath::normalize(&raw_path).map_err(|e| self.unsupported(&shown, &e.to_string()))?;
        let pax = Pax::read(&mut entry).map_err(|e| self.io(e))?;
        // The entry's view applies GNU long links and PAX linkpath.
        let link = entry.link_name_bytes().map(|c| c.into_owned());
        if pax.sparse {
            return Err(self.unsupported(
                &shown,
                "PAX sparse file (GNU.sparse.*): not supported; rebuild the layer without --sparse",
            ));
        }
        // Whiteouts, whatever the entry type that carries them.
        if let Some(w) = path.file_name().and_then(whiteout) {
            let w = w.map_err(|_| {
                self.unsupported(&shown, "whiteout that names no file (.wh.. or similar)")
            })?;
            let parent = path.parent();
            cs.changes.push(match w {
                Whiteout::Opaque => Change {
                    path: parent,
                    entry: Entry::Opaque,
                },
                Whiteout::Remove(target) => Change {
                    path: parent.join(&target),
                    entry: Entry::Whiteout,
                },
            });
            return Ok(());
        }
        let meta = self.meta(entry.header(), pax, &shown)?;
        let entry_kind = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = self.file_size(&entry, &shown)?;
                cs.content_bytes += size;
                if size <= PARALLEL_MAX {
                    return self.queue_file(&mut entry, cs, path, shown, meta, size);
                }
                self.store_file(&mut entry, &shown, meta, size)?
            }
            _ => self.special(kind, entry.header(), meta, link, &shown)?,
        };
        cs.changes.push(Change {
            path,
            entry: entry_kind,
        });
        Ok(())
    }

    /// The entry's metadata, its owner mapped to the host.
    fn meta(&self, header: &tar::Header, pax: Pax, shown: &str) -> Result<Meta, Error> {
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode).map_err(|e| self.io(e))? as u32
            & 0o7777;
        let uid = numeric(header.uid(), &old.uid).map_err(|e| self.io(e))?;
        let gid = numeric(header.gid(), &old.gid).map_err(|e| self.io(e))?;
        let to_u32 = |v: u64, what: &str| {
            u32::try_from(v)
                .map_err(|_| self.unsupported(shown, &format!("{what} {v} does not fit 32 bits")))
        };
        let mtime = pax
            .mtime
            .unwrap_or_else(|| header.mtime().unwrap_or(0) as i64);
        Ok(Meta {
            mode,
            uid: self.opts.uid_map.to_host(to_u32(uid, "uid")?)?,
            gid: self.opts.gid_map.to_host(to_u32(gid, "gid")?)?,
            mtime,
            xattrs: pax.xattrs,
        })
    }

    /// A regular file's size. A GNU sparse file's holes count against the
    /// expansion limit like stream bytes.
    fn file_size<R: Read>(&self, entry: &tar::Entry<'_, R>, shown: &str) -> Result<u64, Error> {
        let header = entry.header();
        if header.entry_type() != EntryType::GNUSparse {
            return Ok(entry.size());
        }
        let real = header
            .as_gnu()
            .ok_or_else(|| self.unsupported(shown, "sparse entry without a GNU header"))?
            .real_size()
            .map_err(|e| self.io(e))?;
        let in_archive = header.entry_size().map_err(|e| self.io(e))?;
        let total = self
            .expanded
            .get()
            .saturating_add(real.saturating_sub(in_archive));
        self.expanded.set(total);
        if total > self.opts.max_layer_size {
            return Err(Error::TooLarge {
                layer: self.layer.to_owned(),
                limit: self.opts.max_layer_size,
            });
        }
        Ok(real)
    }

    /// A small file: read into a spare buffer and handed to a worker, which
    /// stores it and fills in its object id.
    fn queue_file<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        cs: &mut Changeset,
        path: RootPath,
        shown: String,
        meta: Meta,
        size: u64,
    ) -> Result<(), Error> {
        let len = size as usize;
        let mut buf = self.spares.take();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let got = crate::objects::fill(entry, &mut buf[..len]).map_err(|e| self.io(e))?;
        if got != len {
            return Err(corrupt(
                self.layer,
                &format!("{shown}: content ends after {got} of {size} bytes"),
            ));
        }
        let index = cs.changes.len();
        cs.changes.push(Change {
            path,
            entry: Entry::File {
                meta: meta.clone(),
                object: ObjectId([0; 32]),
                size,
            },
        });
        // The workers stopped only if one failed: its error is reported.
        let _ = self.jobs.send(Job {
            index,
            shown,
            buf,
            len,
            meta,
        });
        Ok(())
    }

    /// A large file, stored here as it streams from the layer.
    fn store_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
        meta: Meta,
        size: u64,
    ) -> Result<Entry, Error> {
        let (object, outcome) = self
            .objects
            .put_using(entry, size, &meta, &mut self.scratch)
            .map_err(|e| match e {
                Error::Read(e) => self.io(e),
                Error::Truncated { .. } => corrupt(self.layer, &format!("{shown}: {e}")),
                other => other.context(format!("layer {}, entry {shown}", self.layer)),
            })?;
        if outcome == PutOutcome::Stored {
            self.stored.lock().expect("not poisoned").push(object);
        }
        Ok(Entry::File { meta, object, size })
    }

    /// Any entry but a regular file or a whiteout.
    fn special(
        &self,
        kind: EntryType,
        header: &tar::Header,
        meta: Meta,
        link: Option<Vec<u8>>,
        shown: &str,
    ) -> Result<Entry, Error> {
        let link_target = || link.ok_or_else(|| self.unsupported(shown, "link without a target"));
        Ok(match kind {
            EntryType::Directory => Entry::Dir(meta),
            EntryType::Symlink => Entry::Symlink {
                meta,
                target: link_target()?,
            },
            EntryType::Link => Entry::Hardlink {
                target: RootPath::normalize(&link_target()?)
                    .map_err(|e| self.unsupported(shown, &e.to_string()))?,
            },
            EntryType::Char | EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                Entry::Device {
                    meta,
                    kind: if kind == EntryType::Char {
                        DeviceKind::Char
                    } else {
                        DeviceKind::Block
                    },
                    major,
                    minor,
                }
            }
            EntryType::Fifo => Entry::Fifo(meta),
            other => {
                return Err(self.unsupported(
                    shown,
                    &format!(
                        "tar entry type {:?} is not a file system object",
                        other.as_byte() as char
                    ),
                ))
            }
        })
    }
}

/// A numeric header field as GNU tar, Go's `archive/tar` (docker,
/// containerd, umoci) and Python's `tarfile` read it: all NUL bytes is 0,
/// where tar-rs refuses it.
fn numeric(parsed: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    if field.iter().all(|&b| b == 0) {
        return Ok(0);
    }
    parsed
}

/// The PAX records cairn reads itself.
#[derive(Default)]
struct Pax {
    mtime: Option<i64>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

impl Pax {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Pax> {
        let mut pax = Pax::default();
        let Some(exts) = entry.pax_extensions()? else {
            return Ok(pax);
        };
        for ext in exts {
            let ext = ext?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                let secs = v.split('.').next().unwrap_or("0");
                pax.mtime = secs.parse().ok();
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if keep_xattr(name) {
                    pax.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            } else if key.starts_with(b"GNU.sparse.") {
                pax.sparse = true;
            }
        }
        pax.xattrs.sort();
        pax.xattrs.dedup_by(|a, b| a.0 == b.0);
        Ok(pax)
    }
}

/// `user.*` and file capabilities; not `security.selinux` (the host's
/// policy labels files), not `trusted.*`, not ACLs, and not
/// `user.overlay.*`: overlayfs reads its own state from `trusted.overlay.*`
/// (root) or, mounted with `userxattr` (rootless), `user.overlay.*`, so a
/// layer that ships a forged `user.overlay.opaque=y` on a directory would
/// hide the lower layers' content under it, and `redirect`, `origin` or
/// `metacopy` would make the kernel look elsewhere. Layer content is
/// attacker input: overlayfs' names never come from it.
fn keep_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"security.capability"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Detected::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 1]), Detected::Zstd);
        assert_eq!(detect(&[0x50, 0x2a, 0x4d, 0x18]), Detected::Zstd);
        assert_eq!(detect(&[0x5f, 0x2a, 0x4d, 0x18]), Detected::Zstd);
        assert_eq!(detect(b"etc/passwd\0\0"), Detected::Plain);
        assert_eq!(detect(&[]), Detected::Plain);
    }

    #[test]
    fn xattr_filter() {
        assert!(keep_xattr(b"user.foo"));
        assert!(keep_xattr(b"security.capability"));
        assert!(!keep_xattr(b"security.selinux"));
        assert!(!keep_xattr(b"trusted.overlay.opaque"));
        assert!(!keep_xattr(b"trusted.overlay.redirect"));
        assert!(!keep_xattr(b"user.overlay.opaque"));
        assert!(!keep_xattr(b"user.overlay.redirect"));
        assert!(!keep_xattr(b"user.overlay."));
        assert!(keep_xattr(b"user.overlayfoo"));
        assert!(!keep_xattr(b"system.posix_acl_access"));
    }
}
