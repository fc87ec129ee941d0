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
        let produced = produce(
            archive, layer, objects, opts, cs, &job_tx, &spares, stored, expanded,
        );
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

// One decoder's state, split in two only for the scoped worker threads.
#[allow(clippy::too_many_arguments)]
fn produce<R: Read>(
    archive: &mut tar::Archive<R>,
    layer: &str,
    objects: &ObjectStore,
    opts: &DecodeOptions,
    cs: &mut Changeset,
    jobs: &std::sync::mpsc::SyncSender<Job>,
    spares: &Spares,
    stored: &std::sync::Mutex<Vec<ObjectId>>,
    expanded: &Expanded,
) -> Result<(), Error> {
    // The buffer of files stored inline (see `ObjectStore::put_using`).
    let mut scratch = Vec::new();
    let entries = archive.entries().map_err(|e| map_io(layer, e, opts))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| map_io(layer, e, opts))?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            // PAX global headers carry defaults for tools; nothing to apply.
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let unsupported = |detail: &str| Error::Unsupported {
            layer: layer.to_owned(),
            path: shown.clone(),
            detail: detail.to_owned(),
        };
        let path = RootPath::normalize(&raw_path).map_err(|e| unsupported(&e.to_string()))?;
        let pax = Pax::read(&mut entry).map_err(|e| map_io(layer, e, opts))?;
        // The entry's view applies GNU long links and PAX linkpath.
        let link = entry.link_name_bytes().map(|c| c.into_owned());
        if pax.sparse {
            return Err(unsupported(
                "PAX sparse file (GNU.sparse.*): not supported; rebuild the layer without --sparse",
            ));
        }

        // Whiteouts, whatever the entry type that carries them.
        if let Some(name) = path.file_name() {
            if let Some(w) = whiteout(name) {
                let w =
                    w.map_err(|_| unsupported("whiteout that names no file (.wh.. or similar)"))?;
                let parent = path.parent();
                let change = match w {
                    Whiteout::Opaque => Change {
                        path: parent,
                        entry: Entry::Opaque,
                    },
                    Whiteout::Remove(target) => Change {
                        path: parent.join(&target),
                        entry: Entry::Whiteout,
                    },
                };
                cs.changes.push(change);
                continue;
            }
        }

        let header = entry.header();
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode)
            .map_err(|e| map_io(layer, e, opts))? as u32
            & 0o7777;
        let uid = numeric(header.uid(), &old.uid).map_err(|e| map_io(layer, e, opts))?;
        let gid = numeric(header.gid(), &old.gid).map_err(|e| map_io(layer, e, opts))?;
        let to_u32 = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| unsupported(&format!("{what} {v} does not fit 32 bits")))
        };
        let mtime = pax
            .mtime
            .unwrap_or_else(|| header.mtime().unwrap_or(0) as i64);
        let meta = Meta {
            mode,
            uid: opts.uid_map.to_host(to_u32(uid, "uid")?)?,
            gid: opts.gid_map.to_host(to_u32(gid, "gid")?)?,
            mtime,
            xattrs: pax.xattrs,
        };
        let link_target = || -> Result<Vec<u8>, Error> {
            link.clone()
                .ok_or_else(|| unsupported("link without a target"))
        };
        let entry_kind = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = if kind == EntryType::GNUSparse {
                    let real = header
                        .as_gnu()
                        .ok_or_else(|| unsupported("sparse entry without a GNU header"))?
                        .real_size()
                        .map_err(|e| map_io(layer, e, opts))?;
                    // The holes count against the cap like stream bytes.
                    let in_archive = header.entry_size().map_err(|e| map_io(layer, e, opts))?;
                    let total = expanded
                        .get()
                        .saturating_add(real.saturating_sub(in_archive));
                    expanded.set(total);
                    if total > opts.max_layer_size {
                        return Err(Error::TooLarge {
                            layer: layer.to_owned(),
                            limit: opts.max_layer_size,
                        });
                    }
                    real
                } else {
                    entry.size()
                };
                cs.content_bytes += size;
                if size <= PARALLEL_MAX {
                    let len = size as usize;
                    let mut buf = spares.take();
                    if buf.len() < len {
                        buf.resize(len, 0);
                    }
                    let got = crate::objects::fill(&mut entry, &mut buf[..len])
                        .map_err(|e| map_io(layer, e, opts))?;
                    if got != len {
                        return Err(corrupt(
                            layer,
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
                    let _ = jobs.send(Job {
                        index,
                        shown,
                        buf,
                        len,
                        meta,
                    });
                    continue;
                }
                let (object, outcome) = objects
                    .put_using(&mut entry, size, &meta, &mut scratch)
                    .map_err(|e| match e {
                        Error::Read(e) => map_io(layer, e, opts),
                        Error::Truncated { .. } => corrupt(layer, &format!("{shown}: {e}")),
                        other => other.context(format!("layer {layer}, entry {shown}")),
                    })?;
                if outcome == PutOutcome::Stored {
                    stored.lock().expect("not poisoned").push(object);
                }
                Entry::File { meta, object, size }
            }
            EntryType::Directory => Entry::Dir(meta),
            EntryType::Symlink => Entry::Symlink {
                meta,
                target: link_target()?,
            },
            EntryType::Link => Entry::Hardlink {
                target: RootPath::normalize(&link_target()?)
                    .map_err(|e| unsupported(&e.to_string()))?,
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
                return Err(unsupported(&format!(
                    "tar entry type {:?} is not a file system object",
                    other.as_byte() as char
                )))
            }
        };
        cs.changes.push(Change {
            path,
            entry: entry_kind,
        });
    }
    Ok(())
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
