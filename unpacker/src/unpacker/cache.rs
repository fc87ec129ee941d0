//! The changeset cache, `layers/<blob hex>[-<map>].cs`: each layer blob is
//! decoded once (from the stored blob, or from its download as it arrives)
//! whatever the number of processes asking, its changeset saved with its
//! diff id, and an image's layers handed over in order as they are ready.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cairn_fsutil::{write_atomic, Durability, IoContext as _};
use cairn_store::{Digest, Image, LockMode, StoreDir};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dirs::sweep_where;
use super::Unpacker;
use crate::changeset::Changeset;
use crate::decode::{decode, DecodeOptions};
use crate::error::Error;
use crate::objects::ObjectStore;

/// `layers/*.cs`: bump whenever what a changeset holds or means changes
/// (v2: object ids keyed with the mtime, no `user.overlay.*` xattrs); an
/// older one is decoded again from its blob when next needed.
pub(super) const CHANGESET_MAGIC: &[u8] = b"cairn-changeset-v2\n";

/// A cached changeset file.
#[derive(Serialize, Deserialize)]
pub(super) struct CachedLayer {
    diff_id: String,
    pub(super) changeset: Changeset,
}

/// [`CachedLayer`] as written: the same fields, borrowed (a changeset is
/// not copied to be saved).
#[derive(Serialize)]
struct CachedLayerRef<'a> {
    diff_id: &'a str,
    changeset: &'a Changeset,
}

impl Unpacker {
    pub(super) fn changeset_path(&self, blob: &Digest) -> PathBuf {
        self.store
            .dir(StoreDir::Layers)
            .join(format!("{}{}.cs", blob.hex(), self.tag))
    }

    /// The changeset of a stored layer blob: from the cache if its objects
    /// are all there, else decoded (once, whatever the number of processes
    /// asking). Returns it with the layer's diff id.
    pub fn layer(&self, blob: &Digest) -> Result<(Changeset, Digest), Error> {
        self.layer_with(blob, true)
    }

    /// [`Unpacker::layer`]; without `verify`, a saved changeset is trusted
    /// to have all its objects (the store keeps that true: objects go only
    /// after their changesets), sparing a stat per file.
    fn layer_with(&self, blob: &Digest, verify: bool) -> Result<(Changeset, Digest), Error> {
        self.layer_from(blob, verify, None, false)
            .map(|d| d.expect("returned unless kept"))
    }

    /// [`Unpacker::layer`] of a blob still downloading, decoded from
    /// `stream` as it arrives (a [`cairn_store::BlobStream`]): the changeset
    /// is kept only if the stream reaches its end, i.e. the blob was
    /// verified and stored; otherwise the objects it added go again and the
    /// layer is decoded from the stored blob when it is asked for.
    pub fn layer_streaming(
        &self,
        blob: &Digest,
        stream: impl io::Read,
    ) -> Result<(Changeset, Digest), Error> {
        self.layer_from(blob, true, Some(Box::new(stream)), false)
            .map(|d| d.expect("returned unless kept"))
    }

    /// Decodes a layer (from `stream` if given, as in
    /// [`Unpacker::layer_streaming`], else from the stored blob) for an
    /// image root this unpacker builds next: its changeset is cached as
    /// [`Unpacker::layer`]'s, and also kept in memory until a root (or
    /// [`Unpacker::layer`]) takes it, or the unpacker goes. A layer cached
    /// already is left as it is.
    pub fn decode_ahead(
        &self,
        blob: &Digest,
        stream: Option<Box<dyn io::Read + '_>>,
    ) -> Result<(), Error> {
        self.layer_from(blob, true, stream, true).map(|_| ())
    }

    /// A layer [`Unpacker::decode_ahead`] kept, taken.
    fn take_decoded(&self, blob: &Digest) -> Option<(Changeset, Digest)> {
        self.decoded.lock().expect("not poisoned").remove(blob)
    }

    /// Returns the layer, or keeps it for [`Unpacker::take_decoded`] (then
    /// `None`) if `keep` and it was decoded here.
    fn layer_from(
        &self,
        blob: &Digest,
        verify: bool,
        stream: Option<Box<dyn io::Read + '_>>,
        keep: bool,
    ) -> Result<Option<(Changeset, Digest)>, Error> {
        if keep && self.changeset_path(blob).exists() {
            return Ok(None);
        }
        if let Some(hit) = (!keep).then(|| self.take_decoded(blob)).flatten() {
            return Ok(Some(hit));
        }
        if let Some(hit) = self.cached(blob, verify)? {
            return Ok(Some(hit));
        }
        // The blob pinned: a collection keeps it and its changeset.
        let pin = self.store.pin()?;
        pin.add([blob])?;
        let _lock = self.lock(&self.layer_lock_name(blob))?;
        if keep && self.changeset_path(blob).exists() {
            return Ok(None);
        }
        // Kept while we waited for the lock (by a decoder of this process).
        if let Some(hit) = (!keep).then(|| self.take_decoded(blob)).flatten() {
            return Ok(Some(hit));
        }
        if let Some(hit) = self.cached(blob, true)? {
            return Ok(Some(hit));
        }
        // Objects written before the changeset names them must not look
        // unreferenced to a concurrent collection.
        let _objects = self.objects_lock(LockMode::Shared)?;
        // A changeset temp file of this layer is a killed decoder's: the
        // lock we hold excludes live ones.
        let stem = format!("{}{}", blob.hex(), self.tag);
        sweep_where(&self.store.dir(StoreDir::Layers), |name| {
            changeset_temp_stem(name) == Some(stem.as_str())
        });
        let started = std::time::Instant::now();
        let name = blob.to_string();
        let streaming = stream.is_some();
        let source: Box<dyn io::Read> = match stream {
            Some(s) => s,
            None => Box::new(self.store.open_blob(blob)?),
        };
        let (changeset, diff_id) =
            decode_with_digest(source, &name, &self.objects, &self.opts.decode)?;
        self.save(blob, &changeset, &diff_id)?;
        tracing::debug!(
            "layer {blob}: decoded{}, {} entries, in {:?}",
            if streaming { " while downloading" } else { "" },
            changeset.changes.len(),
            started.elapsed()
        );
        if keep {
            // Before the lock goes: a root builder waiting for it finds
            // the layer here.
            self.decoded
                .lock()
                .expect("not poisoned")
                .insert(blob.clone(), (changeset, diff_id));
            return Ok(None);
        }
        Ok(Some((changeset, diff_id)))
    }

    pub(super) fn cached(
        &self,
        blob: &Digest,
        verify: bool,
    ) -> Result<Option<(Changeset, Digest)>, Error> {
        let path = self.changeset_path(blob);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .io_context("read changeset", &path)
                    .map_err(Error::from)
            }
        };
        let Some(body) = bytes.strip_prefix(CHANGESET_MAGIC) else {
            return Ok(None);
        };
        let Ok(cached) = postcard::from_bytes::<CachedLayer>(body) else {
            return Ok(None);
        };
        let Ok(diff_id) = cached.diff_id.parse() else {
            return Ok(None);
        };
        // Objects lost since (a power loss, a hand): decode again.
        if verify && !cached.changeset.objects().all(|o| self.objects.contains(o)) {
            return Ok(None);
        }
        Ok(Some((cached.changeset, diff_id)))
    }

    /// The diff id a cached changeset records, read from the head of its
    /// file only.
    pub(super) fn cached_diff_id(&self, blob: &Digest) -> Option<Digest> {
        use io::Read as _;
        let mut head = Vec::with_capacity(256);
        fs::File::open(self.changeset_path(blob))
            .ok()?
            .take(256)
            .read_to_end(&mut head)
            .ok()?;
        let body = head.strip_prefix(CHANGESET_MAGIC)?;
        let (id, _) = postcard::take_from_bytes::<&str>(body).ok()?;
        id.parse().ok()
    }

    /// Saves a layer's changeset and diff id, replacing the file at once (a
    /// failed write, on a full disk say, leaves no temp file behind).
    fn save(&self, blob: &Digest, changeset: &Changeset, diff_id: &Digest) -> Result<(), Error> {
        let path = self.changeset_path(blob);
        let diff_id = diff_id.to_string();
        let cached = CachedLayerRef {
            diff_id: &diff_id,
            changeset,
        };
        let mut bytes = CHANGESET_MAGIC.to_vec();
        bytes.extend(postcard::to_stdvec(&cached).expect("changesets serialize"));
        // Without fsync: a changeset torn by a power loss does not parse,
        // and its layer is decoded again from the blob.
        write_atomic(&path, &bytes, 0o666, Durability::Volatile)?;
        Ok(())
    }
    /// Decodes every layer of `image` that is not decoded yet, in parallel,
    /// and checks each against the config's diff ids.
    pub fn layers_of(&self, image: &Image) -> Result<Vec<Changeset>, Error> {
        self.layers_with(image, true)
    }

    fn layers_with(&self, image: &Image, verify: bool) -> Result<Vec<Changeset>, Error> {
        self.layers_from(image, verify, Vec::new())
    }

    /// [`Unpacker::layers_with`], the lowest layers' changesets given.
    pub(super) fn layers_from(
        &self,
        image: &Image,
        verify: bool,
        known: Vec<(Changeset, Digest)>,
    ) -> Result<Vec<Changeset>, Error> {
        self.layers_in_order(image, verify, known, |_, _| Ok(()))
    }

    /// The image's changesets, decoded in parallel (those not `known`),
    /// each checked against the config's diff id and handed to `each` with
    /// those below it as soon as it and every layer below it are ready, so
    /// the caller works on the lower layers while the upper ones decode.
    pub(super) fn layers_in_order(
        &self,
        image: &Image,
        verify: bool,
        known: Vec<(Changeset, Digest)>,
        mut each: impl FnMut(usize, &[Changeset]) -> Result<(), Error>,
    ) -> Result<Vec<Changeset>, Error> {
        let blobs: Vec<&Digest> = image.manifest.layers.iter().map(|l| &l.digest).collect();
        let have = known.len().min(blobs.len());
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..blobs.len())
            .map(|_| std::sync::mpsc::sync_channel::<Result<(Changeset, Digest), Error>>(1))
            .unzip();
        for (k, tx) in known.into_iter().zip(&senders) {
            let _ = tx.send(Ok(k));
        }
        let want = &image.config.rootfs.diff_ids;
        std::thread::scope(|scope| {
            let todo: Vec<_> = blobs[have..].iter().zip(&senders[have..]).collect();
            scope.spawn(|| {
                todo.into_par_iter().for_each(|(b, tx)| {
                    let _ = tx.send(self.layer_with(b, verify));
                });
            });
            let mut out = Vec::with_capacity(blobs.len());
            for (i, rx) in receivers.iter().enumerate() {
                let (cs, diff_id) = rx.recv().map_err(|_| Error::Corrupt {
                    layer: blobs[i].to_string(),
                    detail: "its decoder stopped without a result".into(),
                })??;
                match want.get(i) {
                    Some(w) if *w == diff_id => {}
                    Some(w) => {
                        return Err(Error::DiffIdMismatch {
                            layer: blobs[i].to_string(),
                            expected: w.to_string(),
                            actual: diff_id.to_string(),
                        })
                    }
                    None => {
                        return Err(Error::Corrupt {
                            layer: blobs[i].to_string(),
                            detail:
                                "the image config lists fewer diff ids than the manifest has layers"
                                    .into(),
                        })
                    }
                }
                out.push(cs);
                each(i, &out)?;
            }
            Ok(out)
        })
    }
}

/// The `<blob hex><tag>` of a changeset's temp file in `layers/` (a
/// decoder's while it holds that layer's lock, else a dead one's):
/// `.<hex><tag>.cs.<pid>-<n>.tmp` as [`write_atomic`] names it, or
/// `<hex><tag>.tmp-<pid>` as cairn named it before.
pub(super) fn changeset_temp_stem(name: &str) -> Option<&str> {
    match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        Some(temp) => temp.split_once(".cs.").map(|(stem, _)| stem),
        None => name.split_once(".tmp-").map(|(stem, _)| stem),
    }
}

/// A changeset file, if it reads and parses.
pub(super) fn read_changeset(path: &Path) -> Option<CachedLayer> {
    parse_changeset(&fs::read(path).ok()?)
}

/// A changeset file's bytes, if they parse.
pub(super) fn parse_changeset(bytes: &[u8]) -> Option<CachedLayer> {
    postcard::from_bytes::<CachedLayer>(bytes.strip_prefix(CHANGESET_MAGIC)?).ok()
}

pub(super) fn decode_with_digest(
    blob: impl io::Read,
    layer: &str,
    objects: &ObjectStore,
    opts: &DecodeOptions,
) -> Result<(Changeset, Digest), Error> {
    let d = decode(blob, layer, None, objects, opts)?;
    Ok((d.changeset, d.diff_id))
}

#[cfg(test)]
mod tests {
    use super::changeset_temp_stem;

    #[test]
    fn changeset_temps_name_their_layer() {
        let hex = "ab".repeat(32);
        for (name, stem) in [
            // write_atomic's temp, with and without an id map's tag.
            (format!(".{hex}.cs.1234-0.tmp"), Some(hex.clone())),
            (
                format!(".{hex}-0123456789ab.cs.7-12.tmp"),
                Some(format!("{hex}-0123456789ab")),
            ),
            // An older cairn's.
            (format!("{hex}.tmp-1234"), Some(hex.clone())),
            // Changesets themselves, and what is not a changeset's temp.
            (format!("{hex}.cs"), None),
            (format!("{hex}-0123456789ab.cs"), None),
            (format!(".{hex}.cs"), None),
            (".x.tmp".to_owned(), None),
        ] {
            assert_eq!(changeset_temp_stem(&name), stem.as_deref(), "{name}");
        }
    }
}
