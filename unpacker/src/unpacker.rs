//! The stages tied to a store.
//!
//! ```text
//! <root>/objects/<2 hex>/<62 hex>          file objects (content + the metadata of the
//!                                          inode, mtime included: key v3)
//! <root>/layers/<blob hex>[-<map>].cs      changeset of one layer blob (postcard),
//!                                          its diff id and content size inside
//! <root>/chains/<chain id hex>[-<map>]-v3/ diff/: one layer's changes over the layers
//!                                          below it (an overlayfs lower directory:
//!                                          hardlinks to objects, whiteouts as 0/0
//!                                          character devices), info.json, and
//!                                          plan: the plan of it and the layers below
//! <root>/images/<manifest hex>[-<map>]/    info.json: the image's chains, lowest
//!                                          first; rootfs/ instead when the stack is
//!                                          too long for one overlayfs mount
//! ```
//!
//! Every file names its format: changesets and plans start with a magic
//! line, image roots' `info.json` has a `format`, layer directories end in
//! the object key's version. One written by an older cairn (objects keyed
//! without the mtime) is never read as current: a changeset is decoded
//! again, a plan planned again, an image root and its layer directories
//! built again under new names (the old ones go with the next collection).
//!
//! A layer's diff is keyed by its OCI chain id (the diff ids of it and of
//! every layer below), as what it holds depends on the layers below: two
//! images sharing their lower layers share those directories, and a second
//! image that differs in its top layer builds only that one.
//!
//! `<map>` tags the id map when it is not the identity: objects carry mapped
//! owners, so every map has its own changesets and image roots. All three
//! are derived from verified blobs and written atomically (rename, or
//! `O_TMPFILE` + link) without fsync: a process crash leaves the old state or
//! the new one, and after a power loss `cairn system check` finds and
//! rebuilds what is damaged.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cairn_store::{Digest, Image, LockGuard, LockMode, Store, StoreDir};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::changeset::Changeset;
use crate::decode::{decode, DecodeOptions};
use crate::error::{Error, IoContext};
use crate::materialize::{materialize, Devices, MaterializeOptions, Mode, Stats};
use crate::objects::{ObjectStore, Ownership};
use crate::plan::Plan;

mod check;
pub use check::{CheckOptions, DerivedReport};

/// `layers/*.cs`: bump whenever what a changeset holds or means changes
/// (v2: object ids keyed with the mtime, no `user.overlay.*` xattrs); an
/// older one is decoded again from its blob when next needed.
const CHANGESET_MAGIC: &[u8] = b"cairn-changeset-v2\n";

/// `chains/<name>/plan`: the plan of that layer and every layer below it
/// (postcard, after its BLAKE3), so an image that adds layers over it (a
/// sibling) plans only its own. A chain id names the layers, not the
/// planner that read them: bump the version whenever what a plan holds or
/// means changes, and older plans are planned again.
const PLAN_MAGIC: &[u8] = b"cairn-plan-v2\n";

/// `format` of an image root's `info.json`: 2 since objects are keyed with
/// their mtime. A root of another format is built again when next used.
const ROOT_FORMAT: u32 = 2;

/// Ends every layer directory's name: the object key version its files
/// link to. Layer directories of an older key are never stacked again (a
/// root built again names new ones), so a collection removes them.
const CHAIN_SUFFIX: &str = "-v3";

/// `objects/gc-pending`: ids of objects a collection could not delete while
/// decoders ran, one hex id per line, for the next collection.
const PENDING_OBJECTS: &str = "gc-pending";

/// How the unpacker works on a store.
#[derive(Debug, Clone)]
pub struct UnpackerOptions {
    /// Id maps and limits for decoding.
    pub decode: DecodeOptions,
    /// Apply owners or not (unprivileged, outside a user namespace).
    pub ownership: Ownership,
    /// Bytes of lower directory paths one image root may stack (each with a
    /// separator); an image with more layers gets one flattened directory.
    pub max_stack_bytes: usize,
}

impl Default for UnpackerOptions {
    fn default() -> Self {
        UnpackerOptions {
            decode: DecodeOptions::default(),
            ownership: if rustix::process::geteuid().is_root() {
                Ownership::Apply
            } else {
                Ownership::Ignore
            },
            max_stack_bytes: STACK_BUDGET,
        }
    }
}

/// Lower directories, with their separators, that one overlayfs mount can
/// take beside its upper and work directories: its options are one page.
const STACK_BUDGET: usize = 4096 - 2 * 200 - 200;

/// A materialized image root.
#[derive(Debug, Clone)]
pub struct ImageRoot {
    /// Its read-only directories as overlayfs lower directories, topmost
    /// first: each layer's diff, or one flattened `rootfs` directory.
    pub lowers: Vec<PathBuf>,
    /// Its recorded facts.
    pub info: RootInfo,
    /// Whether it was built by this call (false: it existed).
    pub built: bool,
}

/// `info.json` of an image root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootInfo {
    /// The layout of the root and of what it links to ([`ROOT_FORMAT`];
    /// 0 in roots written before it was recorded).
    #[serde(default)]
    pub format: u32,
    /// Bytes of regular file content (each inode once).
    pub size: u64,
    /// Device nodes that could not be created.
    #[serde(default)]
    pub skipped_devices: Vec<String>,
    /// The layers' diff directories (`chains/` names), lowest first; empty
    /// when the root is one flattened `rootfs/` directory.
    #[serde(default)]
    pub chains: Vec<String>,
}

/// `chains/<name>/info.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ChainInfo {
    #[serde(default)]
    skipped_devices: Vec<String>,
}

impl ImageRoot {
    /// Where `rel`, a path inside the image, is in the stack, as the
    /// merged root would show it: in the topmost directory that has it,
    /// unless one above hides it (a whiteout, a non-directory on the way).
    /// Symlinks are followed inside the image, as in a chroot (absolute
    /// targets start at its root, `..` stops there), so the result is
    /// never outside the stack; `None` when it does not exist.
    pub fn find(&self, rel: &Path) -> Option<PathBuf> {
        use std::ffi::OsString;
        use std::os::unix::fs::FileTypeExt as _;
        use std::os::unix::fs::MetadataExt as _;
        fn push_all(out: &mut Vec<OsString>, p: &Path) {
            for c in p.components() {
                match c {
                    std::path::Component::Normal(n) => out.push(n.to_owned()),
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    _ => {}
                }
            }
        }
        let mut parts = Vec::new();
        push_all(&mut parts, rel);
        let mut hops = 0;
        'restart: loop {
            'layers: for lower in &self.lowers {
                let mut p = lower.clone();
                for i in 0..parts.len() {
                    p.push(&parts[i]);
                    let Ok(meta) = fs::symlink_metadata(&p) else {
                        // Not in this layer: maybe below.
                        continue 'layers;
                    };
                    let ft = meta.file_type();
                    if ft.is_char_device() && meta.rdev() == 0 {
                        return None;
                    }
                    if ft.is_symlink() {
                        hops += 1;
                        let target = fs::read_link(&p).ok().filter(|_| hops <= 40)?;
                        let mut next = if target.is_absolute() {
                            Vec::new()
                        } else {
                            parts[..i].to_vec()
                        };
                        push_all(&mut next, &target);
                        next.extend(parts[i + 1..].iter().cloned());
                        parts = next;
                        continue 'restart;
                    }
                    if i + 1 < parts.len() && !ft.is_dir() {
                        return None;
                    }
                }
                return Some(p);
            }
            return None;
        }
    }
}
/// The unpacker for one store and one id map.
#[derive(Debug)]
pub struct Unpacker {
    store: Store,
    objects: ObjectStore,
    opts: UnpackerOptions,
    tag: String,
    /// What [`Unpacker::prepare`] planned ahead.
    ahead: std::sync::Mutex<Ahead>,
    ahead_done: std::sync::Condvar,
    /// Layers [`Unpacker::decode_ahead`] decoded, kept in memory for the
    /// image root: reading back the changeset just written, and checking
    /// every object it names is there, would only cost time.
    decoded: std::sync::Mutex<HashMap<Digest, (Changeset, Digest)>>,
}

/// [`Unpacker::prepare`]'s state.
#[derive(Debug, Default)]
struct Ahead {
    /// A thread is planning.
    pending: bool,
    ready: Option<Prepared>,
}

/// The lower layers of an image planned ahead: their blobs, cached
/// changesets and diff ids (lowest first), the plan of them all, and a copy
/// of it for the diff of the next layer. The lowest `saved` layers come
/// from a chain's saved plan: their changesets were not read (empty here),
/// so their directories must be there.
#[derive(Debug)]
struct Prepared {
    blobs: Vec<Digest>,
    layers: Vec<(Changeset, Digest)>,
    saved: usize,
    plan: Plan,
    spare: Option<Plan>,
}

/// A cached changeset file.
#[derive(Serialize, Deserialize)]
struct CachedLayer {
    diff_id: String,
    changeset: Changeset,
}

/// [`CachedLayer`] as written: the same fields, borrowed (a changeset is
/// not copied to be saved).
#[derive(Serialize)]
struct CachedLayerRef<'a> {
    diff_id: &'a str,
    changeset: &'a Changeset,
}

impl Unpacker {
    /// An unpacker on `store`.
    pub fn new(store: &Store, opts: UnpackerOptions) -> Result<Unpacker, Error> {
        let objects = ObjectStore::open(store.root(), opts.ownership)?;
        for d in [StoreDir::Layers, StoreDir::Images, StoreDir::Chains] {
            let p = store.dir(d);
            fs::create_dir_all(&p).io_context("create directory", &p)?;
        }
        let tag = if opts.decode.uid_map.is_identity() && opts.decode.gid_map.is_identity() {
            String::new()
        } else {
            let h = Sha256::digest(format!("{}|{}", opts.decode.uid_map, opts.decode.gid_map));
            format!("-{}", &hex::encode(h)[..12])
        };
        Ok(Unpacker {
            store: store.clone(),
            objects,
            opts,
            tag,
            ahead: std::sync::Mutex::default(),
            ahead_done: std::sync::Condvar::new(),
            decoded: std::sync::Mutex::default(),
        })
    }

    /// The object store.
    pub fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    fn changeset_path(&self, blob: &Digest) -> PathBuf {
        self.store
            .dir(StoreDir::Layers)
            .join(format!("{}{}.cs", blob.hex(), self.tag))
    }

    /// `chains/`, where the layers' diff directories are.
    pub fn chains_dir(&self) -> PathBuf {
        self.store.dir(StoreDir::Chains)
    }

    /// The `chains/` names of an image's layers, lowest first: OCI chain
    /// ids (`sha256(chain below + " " + diff id)`), the id map's tag and
    /// the object key version.
    pub fn chain_names(&self, image: &Image) -> Vec<String> {
        self.chain_names_of(&image.config.rootfs.diff_ids)
    }

    fn chain_names_of(&self, diff_ids: &[Digest]) -> Vec<String> {
        let mut chain: Option<String> = None;
        let mut out = Vec::new();
        for d in diff_ids {
            let id = match &chain {
                None => d.to_string(),
                Some(below) => format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(format!("{below} {d}")))
                ),
            };
            out.push(format!(
                "{}{}{CHAIN_SUFFIX}",
                id.split_once(':').map_or(id.as_str(), |x| x.1),
                self.tag
            ));
            chain = Some(id);
        }
        out
    }

    /// Where an image's root goes.
    pub fn image_dir(&self, manifest: &Digest) -> PathBuf {
        self.store
            .dir(StoreDir::Images)
            .join(format!("{}{}", manifest.hex(), self.tag))
    }

    fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        self.lock_in(name, LockMode::Exclusive)
    }

    fn lock_in(&self, name: &str, mode: LockMode) -> Result<LockGuard, Error> {
        Ok(LockGuard::acquire(
            &self.store.dir(StoreDir::Locks).join(name),
            mode,
        )?)
    }

    /// The object store's lock: shared by whoever writes objects not yet
    /// named by a saved changeset (a decoder) or links them (an image root
    /// builder), exclusive to the collection deleting unnamed objects and
    /// to `check --repair`. Held across local work only, never a download.
    fn objects_lock(&self, mode: LockMode) -> Result<LockGuard, Error> {
        Ok(LockGuard::acquire(
            &self.store.dir(StoreDir::Locks).join("objects"),
            mode,
        )?)
    }

    fn layer_lock_name(&self, blob: &Digest) -> String {
        format!("layer-{}{}", blob.hex(), self.tag)
    }

    fn image_lock_name(&self, manifest: &Digest) -> String {
        format!("image-{}{}", manifest.hex(), self.tag)
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
        sweep_temps(
            &self.store.dir(StoreDir::Layers),
            &format!("{}{}.tmp-", blob.hex(), self.tag),
        );
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

    fn cached(&self, blob: &Digest, verify: bool) -> Result<Option<(Changeset, Digest)>, Error> {
        let path = self.changeset_path(blob);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).io_context("read changeset", &path),
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
    fn cached_diff_id(&self, blob: &Digest) -> Option<Digest> {
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

    fn save(&self, blob: &Digest, changeset: &Changeset, diff_id: &Digest) -> Result<(), Error> {
        let path = self.changeset_path(blob);
        let diff_id = diff_id.to_string();
        let cached = CachedLayerRef {
            diff_id: &diff_id,
            changeset,
        };
        let mut bytes = CHANGESET_MAGIC.to_vec();
        bytes.extend(postcard::to_stdvec(&cached).expect("changesets serialize"));
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = fs::File::create(&tmp)
            .io_context("create", &tmp)
            .and_then(|mut f| f.write_all(&bytes).io_context("write changeset", &tmp))
            .and_then(|()| {
                fs::rename(&tmp, &path).io_context("rename changeset into place", &path)
            });
        if written.is_err() {
            // A full disk, typically: leave no temp file behind.
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Plans, in a background thread, the layers of an image about to be
    /// pulled (`blobs`, lowest first) whose changesets are already cached,
    /// up to the first that is not (nothing when all are: a re-pull, whose
    /// root is most likely built): while the others download, so the
    /// image root then only applies and writes the new ones (a sibling
    /// image: its top layer). The next [`Unpacker::image_root`] of an image
    /// with these layers waits for it and starts from it; others ignore it.
    pub fn prepare(self: &std::sync::Arc<Self>, blobs: Vec<Digest>) {
        self.ahead.lock().expect("not poisoned").pending = true;
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn-plan".into())
            .spawn(move || {
                // Whatever happens here (a panic too), the waiter is let go.
                struct Done<'a>(&'a Unpacker, Option<Prepared>);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        let mut ahead = self.0.ahead.lock().unwrap_or_else(|e| e.into_inner());
                        ahead.pending = false;
                        ahead.ready = self.1.take();
                        self.0.ahead_done.notify_all();
                    }
                }
                let mut done = Done(&me, None);
                let started = std::time::Instant::now();
                done.1 = me.plan_cached(blobs, false);
                tracing::debug!(
                    "planned {} cached layers ahead ({} from a saved plan) in {:?}",
                    done.1.as_ref().map_or(0, |r| r.layers.len()),
                    done.1.as_ref().map_or(0, |r| r.saved),
                    started.elapsed()
                );
            });
        if spawned.is_err() {
            self.ahead.lock().expect("not poisoned").pending = false;
        }
    }

    /// With `saved_only`, nothing unless a saved plan is found (planning
    /// the cached layers from their changesets first would only hold back
    /// the decoding of the others, which the root builder overlaps).
    fn plan_cached(&self, blobs: Vec<Digest>, saved_only: bool) -> Option<Prepared> {
        // Those cached now: a layer decoded while this runs (the new top
        // one) is the one whose directory is built, from a copy of the
        // plan below it.
        let cached = blobs
            .iter()
            .take_while(|b| self.changeset_path(b).exists())
            .count();
        // All cached: a re-pull, whose root is most likely built already.
        if cached == blobs.len() {
            return None;
        }
        // The highest of their chains whose plan is saved is where planning
        // starts: a sibling of an image pulled before reads one file and
        // applies nothing.
        let diff_ids: Vec<Digest> = blobs[..cached]
            .iter()
            .map_while(|b| self.cached_diff_id(b))
            .collect();
        let names = self.chain_names_of(&diff_ids);
        let chains = self.chains_dir();
        let (mut plan, mut layers, saved) = (0..names.len())
            .rev()
            .find_map(|i| Some((i + 1, load_plan(&chains.join(&names[i]).join("plan"))?)))
            .map_or((Plan::new(), Vec::new(), 0), |(n, plan)| {
                let layers = diff_ids[..n]
                    .iter()
                    .map(|d| (Changeset::default(), d.clone()))
                    .collect();
                (plan, layers, n)
            });
        if saved_only && saved == 0 {
            return None;
        }
        for b in &blobs[saved..cached] {
            match self.cached(b, false) {
                Ok(Some(hit)) => {
                    plan.apply(&hit.0).ok()?;
                    layers.push(hit);
                }
                _ => break,
            }
        }
        if layers.is_empty() {
            return None;
        }
        let spare = (layers.len() < blobs.len()).then(|| plan.clone());
        Some(Prepared {
            blobs,
            layers,
            saved,
            plan,
            spare,
        })
    }

    /// What [`Unpacker::prepare`] planned for `image`, once it is done.
    fn take_prepared(&self, image: &Image) -> Option<Prepared> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        while ahead.pending {
            ahead = self
                .ahead_done
                .wait(ahead)
                .unwrap_or_else(|e| e.into_inner());
        }
        let p = ahead.ready.take()?;
        let blobs: Vec<&Digest> = image.manifest.layers.iter().map(|l| &l.digest).collect();
        (p.blobs.iter().collect::<Vec<_>>() == blobs).then_some(p)
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
    fn layers_from(
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
    fn layers_in_order(
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

    /// The image's read-only root (its layers' directories in `chains/`,
    /// or a flattened `images/<manifest>/rootfs`), built if it is not there
    /// yet. Everything is built in temp directories and renamed into place,
    /// so a half-built root or layer directory is never visible.
    pub fn image_root(&self, image: &Image) -> Result<ImageRoot, Error> {
        let dir = self.image_dir(image.digest());
        if let Some(root) = self.existing_root(&dir)? {
            return Ok(root);
        }
        // The manifest pinned: a collection keeps its blobs, changesets
        // and root (and leaves our temp root alone: we hold the image lock).
        let pin = self.store.pin()?;
        pin.add([image.digest()])?;
        let _lock = self.lock(&self.image_lock_name(image.digest()))?;
        if let Some(root) = self.existing_root(&dir)? {
            return Ok(root);
        }
        // Half-built roots of this image are a killed builder's (the lock we
        // hold excludes live ones) or a killed GC's: sweep them, so a crash
        // leaves nothing once the image is built again.
        sweep_temps(
            &self.store.dir(StoreDir::Images),
            &format!("{}{}.tmp-", image.digest().hex(), self.tag),
        );
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        // Not planned ahead (`create` of an image pulled without its root,
        // say): the lower layers of a sibling from their saved plan still.
        let prepared = self.take_prepared(image).or_else(|| {
            let blobs = image.manifest.layers.iter().map(|l| l.digest.clone());
            self.plan_cached(blobs.collect(), true)
        });
        // Saved changesets trusted first; a missing object (lost to a power
        // loss, say) sends us back to check them all and decode again.
        match self.build_root(image, &dir, &tmp, false, prepared) {
            Err(e) if e.is_missing_object() => {
                tracing::warn!("{e}: checking the image's changesets and decoding again");
                self.build_root(image, &dir, &tmp, true, None)
            }
            r => r,
        }
    }

    fn build_root(
        &self,
        image: &Image,
        dir: &Path,
        tmp: &Path,
        verify: bool,
        prepared: Option<Prepared>,
    ) -> Result<ImageRoot, Error> {
        let started = std::time::Instant::now();
        let chains = self.chain_names(image);
        let stacked = chains
            .iter()
            .map(|c| self.chains_dir().join(c).join("diff").as_os_str().len() + 1)
            .sum::<usize>()
            <= self.opts.max_stack_bytes;
        // Layers planned from a saved plan have no changesets here, so no
        // directory below the new layers can be built: they must all be
        // there, and stay (locked, so a collection leaves them), else
        // everything is planned again.
        // (Let go otherwise: building one of them takes its lock exclusive.)
        let mut saved_locks = Vec::new();
        let prepared = prepared.filter(|p| {
            let there = p.saved == 0
                || stacked
                    && chains.len() >= p.layers.len()
                    && chains[..p.layers.len()].iter().all(|c| {
                        let Ok(lock) = self.lock_in(&format!("chain-{c}"), LockMode::Shared) else {
                            return false;
                        };
                        saved_locks.push(lock);
                        self.chains_dir().join(c).exists()
                    });
            if !there {
                saved_locks.clear();
            }
            there
        });
        let (known, start, saved) = match prepared {
            Some(p) => {
                let n = p.layers.len();
                (p.layers, Some((n, p.plan, p.spare)), p.saved)
            }
            None => (Vec::new(), None, 0),
        };
        let ahead = start.as_ref().map_or(0, |s| s.0);
        // The objects we link must stay until the root holds them.
        let _objects = self.objects_lock(LockMode::Shared)?;
        let mut decoded = std::time::Duration::ZERO;
        // With the chains' locks held (shared) until the root is in place,
        // so a collection deletes none of them in between.
        let build = || -> Result<(RootInfo, Vec<LockGuard>, Stats), Error> {
            fs::create_dir_all(tmp).io_context("create", tmp)?;
            let (info, guards, stats) = if stacked {
                // Each layer's directory as soon as it and those below it
                // are decoded.
                let mut chain_builder = ChainBuilder::new(self, start, saved);
                self.layers_in_order(image, verify, known, |k, layers| {
                    chain_builder.add(k, layers, &chains[k])
                })?;
                decoded = started.elapsed();
                chain_builder.finish(&chains)
            } else {
                let layers = self.layers_from(image, verify, known)?;
                decoded = started.elapsed();
                let plan = Plan::from_layers(&layers)?;
                let rootfs = tmp.join("rootfs");
                fs::create_dir_all(&rootfs).io_context("create", &rootfs)?;
                let stats = materialize(
                    &plan,
                    &self.objects,
                    &rootfs,
                    MaterializeOptions {
                        mode: Mode::Hardlink,
                        ownership: self.opts.ownership,
                        devices: Devices::Skip,
                    },
                )?;
                let info = RootInfo {
                    format: ROOT_FORMAT,
                    size: plan.content_bytes(),
                    skipped_devices: stats.skipped_devices.clone(),
                    chains: Vec::new(),
                };
                (info, Vec::new(), stats)
            };
            let info_path = tmp.join("info.json");
            fs::write(
                &info_path,
                serde_json::to_vec(&info).expect("info serializes"),
            )
            .io_context("write", &info_path)?;
            // One whose chains went missing (a hand, a power loss) is
            // replaced; we hold the image lock.
            if dir.exists() {
                let stale = dir.with_extension(format!("tmp-{}-stale", std::process::id()));
                fs::rename(dir, &stale).io_context("remove damaged image root", dir)?;
                remove_tree(&stale).io_context("remove damaged image root", &stale)?;
            }
            fs::rename(tmp, dir).io_context("rename image root into place", dir)?;
            Ok((info, guards, stats))
        };
        match build() {
            Ok((info, guards, stats)) => {
                drop(guards);
                tracing::debug!(
                    "image {}: last layer ready after {decoded:?} ({ahead} planned ahead), root \
                     built after {:?} ({} layer directories, {} linked, {} copied, {} \
                     directories, {} whiteouts)",
                    image.digest(),
                    started.elapsed(),
                    info.chains.len(),
                    stats.linked,
                    stats.copied,
                    stats.dirs,
                    stats.whiteouts
                );
                Ok(ImageRoot {
                    lowers: self.lowers(dir, &info),
                    info,
                    built: true,
                })
            }
            Err(e) => {
                // Whatever failed (a full disk writing info.json, too), no
                // half-built root stays behind.
                let _ = remove_tree(tmp);
                Err(e)
            }
        }
    }

    /// An image root's lower directories, topmost first.
    fn lowers(&self, dir: &Path, info: &RootInfo) -> Vec<PathBuf> {
        if info.chains.is_empty() {
            return vec![dir.join("rootfs")];
        }
        let chains = self.chains_dir();
        info.chains
            .iter()
            .rev()
            .map(|c| chains.join(c).join("diff"))
            .collect()
    }

    /// Bytes of derived data: (objects, each stored once; changesets).
    pub fn usage(&self) -> Result<(u64, u64), Error> {
        let mut objects = 0;
        for sub in read_dir(self.objects.dir())? {
            if sub.file_name().len() != 2 {
                continue;
            }
            for e in read_dir(&sub.path())? {
                objects += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        let changesets = read_dir(&self.store.dir(StoreDir::Layers))?
            .iter()
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        Ok((objects, changesets))
    }

    /// An image's root, if it is built.
    pub fn root(&self, manifest: &Digest) -> Option<ImageRoot> {
        self.existing_root(&self.image_dir(manifest)).ok().flatten()
    }

    /// The recorded facts of an image's root, if it is built.
    pub fn root_info(&self, manifest: &Digest) -> Option<RootInfo> {
        self.existing_root(&self.image_dir(manifest))
            .ok()
            .flatten()
            .map(|r| r.info)
    }

    /// Deletes derived data nothing needs any more: image roots of images
    /// neither in the index nor pinned, changesets of layer blobs no longer
    /// live, objects no remaining changeset names, and leftovers of
    /// interrupted builds. With `wait`, blocks until a running collection is
    /// done; without, does nothing while one runs. First under the store's
    /// gc lock (roots and changesets), then under the objects lock, taken
    /// only if no decoder or root builder holds it (a decoder may be
    /// following a download, which nothing should wait for); if one does,
    /// the objects to delete are recorded (`objects/gc-pending`) and the
    /// next collection that gets the lock deletes those still unnamed.
    /// Returns bytes freed.
    ///
    /// Objects: those named by the changesets this collection removes are
    /// deleted unless a remaining changeset names them, so the work is in
    /// proportion to what goes plus the live images' changesets, not to the
    /// size of the object store. [`Unpacker::collect_all_garbage`] walks
    /// every object as well (for objects a killed decoder left unnamed).
    ///
    /// Every id map's derived data is considered, not only this unpacker's.
    pub fn collect_garbage(&self, wait: bool) -> Result<u64, Error> {
        self.collect(wait, false)
    }

    /// [`Unpacker::collect_garbage`], then every object no changeset names
    /// (`system prune`): time in proportion to the object store.
    pub fn collect_all_garbage(&self, wait: bool) -> Result<u64, Error> {
        self.collect(wait, true)
    }

    fn collect(&self, wait: bool, walk_all: bool) -> Result<u64, Error> {
        let gc = if wait {
            self.store.gc_lock(LockMode::Exclusive)?
        } else {
            match self.store.try_gc_lock(LockMode::Exclusive)? {
                Some(g) => g,
                None => return Ok(0),
            }
        };
        let mut freed = 0;
        let live_blobs: std::collections::HashSet<String> = self
            .store
            .live_blobs()?
            .iter()
            .map(|d| d.hex().to_owned())
            .collect();
        let held = |lock: &str| -> Result<bool, Error> {
            let path = self.store.dir(StoreDir::Locks).join(lock);
            Ok(LockGuard::try_acquire(&path, LockMode::Exclusive)?.is_none())
        };
        let images_dir = self.store.dir(StoreDir::Images);
        for e in read_dir(&images_dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.get(..64).unwrap_or("");
            // `<hex><tag>.tmp-<pid>`: a builder's, alive while it holds the
            // image lock, else dead.
            let building = name
                .split_once(".tmp-")
                .map(|(stem, _)| format!("image-{stem}"));
            if let Some(lock) = &building {
                if held(lock)? {
                    continue;
                }
            } else if live_blobs.contains(hex) {
                continue;
            }
            let size = tree_size(&e.path());
            // A root disappears by rename before it is deleted: deleting it
            // in place, a crash would leave `info.json` beside a
            // half-deleted `rootfs/`, which the next pull of the image would
            // take for a whole root.
            let doomed = if building.is_some() {
                e.path()
            } else {
                let to = images_dir.join(format!("{name}.tmp-gc-{}", std::process::id()));
                fs::rename(e.path(), &to).io_context("remove image root", &e.path())?;
                to
            };
            match remove_tree(&doomed) {
                Ok(()) => freed += size,
                // A builder that held its lock when we listed, and has
                // renamed its root into place since (it lets go after).
                Err(err) if building.is_some() && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).io_context("remove image root", &doomed),
            }
        }
        freed += self.collect_chains()?;
        let layers_dir = self.store.dir(StoreDir::Layers);
        let mut walk_all = walk_all;
        let mut candidates = std::collections::HashSet::new();
        for e in read_dir(&layers_dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.get(..64).unwrap_or("");
            // `<hex><tag>.tmp-<pid>`: a decoder's, alive while it holds the
            // layer lock.
            if let Some((stem, _)) = name.split_once(".tmp-") {
                if held(&format!("layer-{stem}"))? {
                    continue;
                }
            } else if live_blobs.contains(hex) && name.ends_with(".cs") {
                continue;
            } else if name.ends_with(".cs") {
                // Its objects become candidates; unreadable, every object is.
                match read_changeset(&e.path()) {
                    Some(c) => candidates.extend(c.changeset.objects().copied()),
                    None => walk_all = true,
                }
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(e.path()) {
                Ok(()) => freed += size,
                // A decoder's temp file, renamed into place since we listed
                // (the decoder lets go of its lock after).
                Err(err) if name.contains(".tmp-") && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).io_context("remove changeset", &e.path()),
            }
        }
        let pending = self.objects.dir().join(PENDING_OBJECTS);
        if candidates.is_empty() && !walk_all && !pending.exists() {
            return Ok(freed);
        }
        // Objects: decoders and builders hold this lock shared, so every
        // object on disk now is named by a saved changeset or by none. A
        // decoder may be following a download (a pull decodes while it
        // downloads), so this never waits for it: the candidates are left
        // for the next collection that gets the lock (appended while we hold
        // the gc lock, which the one taking them holds too).
        let Some(_objects) = LockGuard::try_acquire(
            &self.store.dir(StoreDir::Locks).join("objects"),
            LockMode::Exclusive,
        )?
        else {
            if !candidates.is_empty() {
                let mut text = String::new();
                for id in &candidates {
                    text.push_str(&id.hex());
                    text.push('\n');
                }
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&pending)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .io_context("record objects to collect later", &pending)?;
            }
            tracing::debug!("objects not collected now: a decoder is running");
            return Ok(freed);
        };
        match fs::read_to_string(&pending) {
            Ok(text) => {
                candidates.extend(text.lines().filter_map(|l| {
                    hex::decode(l)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .map(crate::changeset::ObjectId)
                }));
                // Taken: if this collection fails, they are only left unnamed,
                // for `system prune`'s walk.
                fs::remove_file(&pending).io_context("remove", &pending)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).io_context("read", &pending),
        }
        drop(gc);
        let mut live_objects = std::collections::HashSet::new();
        for e in read_dir(&layers_dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".cs") {
                continue;
            }
            let bytes = match fs::read(e.path()) {
                Ok(b) => b,
                // Removed since the listing (by another collection).
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).io_context("read changeset", &e.path()),
            };
            match parse_changeset(&bytes) {
                Some(c) => live_objects.extend(c.changeset.objects().copied()),
                None => {
                    // Not a changeset: it would be decoded again anyway.
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if !walk_all {
            for id in candidates.difference(&live_objects) {
                let path = self.objects.path(id);
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(err).io_context("stat object", &path),
                };
                // Bytes are freed only when no image root links the inode.
                if std::os::unix::fs::MetadataExt::nlink(&meta) == 1 {
                    freed += meta.len();
                }
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err).io_context("remove object", &path),
                }
            }
            return Ok(freed);
        }
        for sub in read_dir(self.objects.dir())? {
            let sub_name = sub.file_name().to_string_lossy().into_owned();
            if sub_name == PENDING_OBJECTS {
                continue;
            }
            if sub_name.len() != 2 {
                // tmp-* files of a writer that died (the lock excludes live ones).
                freed += sub.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(sub.path());
                continue;
            }
            for e in read_dir(&sub.path())? {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = hex::decode(format!("{sub_name}{name}"))
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(crate::changeset::ObjectId);
                if id.is_some_and(|id| live_objects.contains(&id)) {
                    continue;
                }
                let meta = e.metadata().ok();
                // Bytes are freed only when no image root links the inode.
                if meta
                    .as_ref()
                    .is_some_and(|m| std::os::unix::fs::MetadataExt::nlink(m) == 1)
                {
                    freed += meta.map(|m| m.len()).unwrap_or(0);
                }
                fs::remove_file(e.path()).io_context("remove object", &e.path())?;
            }
        }
        Ok(freed)
    }

    /// The chains the image roots in `images/` stack, whatever their id map.
    fn chains_in_use(&self) -> Result<std::collections::HashSet<String>, Error> {
        let mut used = std::collections::HashSet::new();
        for e in read_dir(&self.store.dir(StoreDir::Images))? {
            let info_path = e.path().join("info.json");
            let info: RootInfo = match fs::read(&info_path) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(i) => i,
                    Err(_) => continue,
                },
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).io_context("read", &info_path),
            };
            used.extend(info.chains);
        }
        Ok(used)
    }

    /// Deletes layer directories no image root stacks and leftovers of
    /// builds that died. A builder holds its chains' locks (shared) until
    /// its root's `info.json` is in place, so the candidates are locked
    /// first and the roots read again after. Returns bytes freed.
    fn collect_chains(&self) -> Result<u64, Error> {
        let dir = self.chains_dir();
        let locks = self.store.dir(StoreDir::Locks);
        let mut freed = 0;
        let used = self.chains_in_use()?;
        let mut doomed = Vec::new();
        for e in read_dir(&dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.split_once(".tmp-").map_or(name.as_str(), |x| x.0);
            if name == stem && used.contains(&name) {
                continue;
            }
            let lock = locks.join(format!("chain-{stem}"));
            let Some(guard) = LockGuard::try_acquire(&lock, LockMode::Exclusive)? else {
                continue;
            };
            doomed.push((name.clone(), e.path(), guard));
        }
        let used = self.chains_in_use()?;
        for (name, path, guard) in doomed {
            if used.contains(&name) {
                continue;
            }
            let size = tree_size(&path);
            // Renamed first, as image roots are: a crash mid-delete leaves a
            // temp, never a partial directory under the chain's name.
            let gone = if name.contains(".tmp-") {
                path
            } else {
                let to = dir.join(format!("{name}.tmp-gc-{}", std::process::id()));
                fs::rename(&path, &to).io_context("remove layer directory", &path)?;
                to
            };
            match remove_tree(&gone) {
                Ok(()) => freed += size,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).io_context("remove layer directory", &gone),
            }
            if !name.contains(".tmp-") {
                guard.remove()?;
            }
        }
        Ok(freed)
    }

    /// An image root's `info.json`, if it is there and parses.
    fn read_info(&self, dir: &Path) -> Result<Option<RootInfo>, Error> {
        let info_path = dir.join("info.json");
        match fs::read(&info_path) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).io_context("read", &info_path),
        }
    }

    fn existing_root(&self, dir: &Path) -> Result<Option<ImageRoot>, Error> {
        let Some(info) = self.read_info(dir)? else {
            return Ok(None);
        };
        // Built by an older cairn (files keyed without their mtime): built
        // again, over the old one.
        if info.format != ROOT_FORMAT {
            return Ok(None);
        }
        let lowers = self.lowers(dir, &info);
        // A layer directory gone (by hand, or a power loss): build the root
        // again.
        if !lowers.iter().all(|l| l.is_dir()) {
            return Ok(None);
        }
        Ok(Some(ImageRoot {
            lowers,
            info,
            built: false,
        }))
    }

    /// `cairn unpack IMAGE DIR`: the image's root written to `target` (which
    /// must not exist or be empty) in `mode`.
    pub fn unpack_image(&self, image: &Image, target: &Path, mode: Mode) -> Result<Stats, Error> {
        let layers = self.layers_of(image)?;
        let plan = Plan::from_layers(&layers)?;
        self.write_plan(&plan, target, mode)
    }

    /// `cairn unpack --layer FILE... DIR`: raw layer blobs applied in order.
    pub fn unpack_files(
        &self,
        files: &[PathBuf],
        target: &Path,
        mode: Mode,
    ) -> Result<Stats, Error> {
        let decoded: Vec<Result<Changeset, Error>> = files
            .par_iter()
            .map(|f| {
                let file = fs::File::open(f).io_context("open layer", f)?;
                decode_with_digest(
                    file,
                    &f.display().to_string(),
                    &self.objects,
                    &self.opts.decode,
                )
                .map(|(cs, _)| cs)
            })
            .collect();
        let layers: Vec<Changeset> = decoded.into_iter().collect::<Result<_, _>>()?;
        let plan = Plan::from_layers(&layers)?;
        self.write_plan(&plan, target, mode)
    }

    /// Writes `plan` into `target`, which must be missing or an empty
    /// directory. The tree is built in a hidden sibling,
    /// `.<name>.unpack-<pid>`, and renamed onto `target` when complete
    /// (`rename(2)` replaces an empty directory), so a crash leaves `target`
    /// as it was, and the next unpack into `target` sweeps the dead
    /// sibling and completes. A target that cannot be renamed onto (a mount
    /// point) is written in place, as before: there a crash leaves a partial
    /// tree that must be removed by hand.
    fn write_plan(&self, plan: &Plan, target: &Path, mode: Mode) -> Result<Stats, Error> {
        let exists = match fs::read_dir(target) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(Error::Io {
                        op: "unpack into".into(),
                        path: target.to_owned(),
                        source: io::Error::new(io::ErrorKind::AlreadyExists, "directory not empty"),
                    });
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).io_context("open", target),
        };
        let opts = MaterializeOptions {
            mode,
            ownership: self.opts.ownership,
            devices: Devices::Create,
        };
        let Some(tmp) = self.unpack_temp(target, exists)? else {
            return write_in_place(plan, &self.objects, target, opts);
        };
        let result = materialize(plan, &self.objects, &tmp, opts)
            .map_err(|e| under_target(e, &tmp, target))
            .and_then(|stats| {
                fs::rename(&tmp, target)
                    .io_context("rename the unpacked tree into place", target)?;
                Ok(stats)
            });
        if result.is_err() {
            let _ = remove_tree(&tmp);
        }
        result
    }

    /// An empty hidden sibling of `target` to build in, after sweeping the
    /// ones of unpacks into `target` that died; `None` when `target` (an
    /// existing empty directory) cannot be replaced by rename.
    fn unpack_temp(&self, target: &Path, exists: bool) -> Result<Option<PathBuf>, Error> {
        let Some(name) = target.file_name() else {
            return Ok(None);
        };
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).io_context("create", &parent)?;
        let prefix = format!(".{}.unpack-", name.to_string_lossy());
        if let Ok(rd) = fs::read_dir(&parent) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let dead = n
                    .strip_prefix(&prefix)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if dead {
                    let _ = remove_tree(&e.path());
                }
            }
        }
        let tmp = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = remove_tree(&tmp);
        fs::create_dir(&tmp).io_context("create", &tmp)?;
        if exists {
            // Can an empty directory replace `target`? Not if it is a mount
            // point (EBUSY) or on another filesystem (EXDEV).
            match fs::rename(&tmp, target) {
                Ok(()) => fs::create_dir(&tmp).io_context("create", &tmp)?,
                Err(e)
                    if [rustix::io::Errno::BUSY, rustix::io::Errno::XDEV]
                        .iter()
                        .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
                {
                    let _ = fs::remove_dir(&tmp);
                    return Ok(None);
                }
                Err(e) => {
                    let _ = fs::remove_dir(&tmp);
                    return Err(e).io_context("replace", target);
                }
            }
        }
        Ok(Some(tmp))
    }
}

/// Builds the missing layer directories of an image root, lowest first,
/// each from its layer's plan diffed with the plan below it, and holds
/// every chain's lock (shared) until dropped.
struct ChainBuilder<'u> {
    u: &'u Unpacker,
    /// The first `applied` layers (more than `k + 1` when planned ahead:
    /// then a lower chain that must be built after all is planned apart).
    applied: usize,
    plan: Plan,
    /// A copy of `plan` made ahead, for the next layer's diff.
    spare: Option<Plan>,
    /// The lowest layers, planned from a saved plan: no changesets.
    saved: usize,
    guards: Vec<LockGuard>,
    skipped: Vec<String>,
    stats: Stats,
}

impl<'u> ChainBuilder<'u> {
    fn new(
        u: &'u Unpacker,
        start: Option<(usize, Plan, Option<Plan>)>,
        saved: usize,
    ) -> ChainBuilder<'u> {
        let (applied, plan, spare) = start.unwrap_or((0, Plan::new(), None));
        ChainBuilder {
            u,
            applied,
            plan,
            spare,
            saved,
            guards: Vec::new(),
            skipped: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Layer `k` (the last of `layers`): its directory `name` is there
    /// when this returns, and locked.
    fn add(&mut self, k: usize, layers: &[Changeset], name: &str) -> Result<(), Error> {
        let chains_dir = self.u.chains_dir();
        let path = chains_dir.join(name);
        let mut below = None;
        if self.applied == k {
            // The copy made ahead is of the plan as it is now only here.
            // Kept only for a directory to build: while a copy is held,
            // applying the layer copies every directory it changes.
            let spare = self.spare.take();
            if !path.exists() {
                below = Some(spare.unwrap_or_else(|| self.plan.clone()));
            }
            self.plan.apply(&layers[k])?;
            self.applied += 1;
        }
        let lock = format!("chain-{name}");
        let guard = loop {
            let shared = self.u.lock_in(&lock, LockMode::Shared)?;
            if path.exists() {
                break shared;
            }
            drop(shared);
            let _building = self.u.lock(&lock)?;
            if path.exists() {
                continue;
            }
            // Temps of this chain are a killed builder's (or a killed
            // collection's): our lock excludes live ones.
            sweep_temps(&chains_dir, &format!("{name}.tmp-"));
            // This layer's plan (with those below) and its diff. Planning
            // it apart needs the changesets below, which a saved plan
            // replaced: the root builder saw every directory under the new
            // layers there and locked them, so only a hand removed this one.
            let removed = || Error::Corrupt {
                layer: name.to_owned(),
                detail: "its layer directory was removed while the image root was built; pull \
                         again"
                    .into(),
            };
            let (apart, diff) = if self.applied == k + 1 {
                let below = match below.take() {
                    Some(b) => b,
                    // Deleted since we looked (a collection): plan again.
                    None if self.saved == 0 => Plan::from_layers(&layers[..k])?,
                    None => return Err(removed()),
                };
                (None, self.plan.diff(&below))
            } else if self.saved > 0 {
                return Err(removed());
            } else {
                let plan = Plan::from_layers(&layers[..=k])?;
                let diff = plan.diff(&Plan::from_layers(&layers[..k])?);
                (Some(plan), diff)
            };
            let tmp = chains_dir.join(format!("{name}.tmp-{}", std::process::id()));
            let started = std::time::Instant::now();
            let built = (|| -> Result<Stats, Error> {
                let target = tmp.join("diff");
                fs::create_dir_all(&target).io_context("create", &target)?;
                let st = materialize(
                    &diff,
                    &self.u.objects,
                    &target,
                    MaterializeOptions {
                        mode: Mode::Hardlink,
                        ownership: self.u.opts.ownership,
                        devices: Devices::Skip,
                    },
                )?;
                let info = ChainInfo {
                    skipped_devices: st.skipped_devices.clone(),
                };
                let info_path = tmp.join("info.json");
                fs::write(&info_path, serde_json::to_vec(&info).expect("serializes"))
                    .io_context("write", &info_path)?;
                let materialized = started.elapsed();
                save_plan(&tmp.join("plan"), apart.as_ref().unwrap_or(&self.plan))?;
                fs::rename(&tmp, &path).io_context("rename layer directory into place", &path)?;
                tracing::debug!(
                    "layer directory {name} (layer {k}): {} linked, {} directories in {:?}, \
                     its plan saved after {:?}",
                    st.linked,
                    st.dirs,
                    materialized,
                    started.elapsed()
                );
                Ok(st)
            })();
            match built {
                Ok(st) => {
                    let s = &mut self.stats;
                    s.dirs += st.dirs;
                    s.linked += st.linked;
                    s.copied += st.copied;
                    s.symlinks += st.symlinks;
                    s.specials += st.specials;
                    s.whiteouts += st.whiteouts;
                }
                Err(e) => {
                    let _ = remove_tree(&tmp);
                    return Err(e);
                }
            }
        };
        let info_path = path.join("info.json");
        let info: ChainInfo = fs::read(&info_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        self.skipped.extend(info.skipped_devices);
        self.guards.push(guard);
        Ok(())
    }

    /// The root's info, the chains' locks and what was written.
    fn finish(mut self, chains: &[String]) -> (RootInfo, Vec<LockGuard>, Stats) {
        self.skipped.sort();
        self.skipped.dedup();
        let info = RootInfo {
            format: ROOT_FORMAT,
            size: self.plan.content_bytes(),
            skipped_devices: self.skipped,
            chains: chains.to_vec(),
        };
        (info, self.guards, self.stats)
    }
}

/// An error about a path in the hidden build directory `tmp`, told about
/// the same path under `target`: what the user asked for.
fn under_target(e: Error, tmp: &Path, target: &Path) -> Error {
    match e {
        Error::Io { op, path, source } => {
            let path = match path.strip_prefix(tmp) {
                Ok(rel) => target.join(rel),
                Err(_) => path,
            };
            Error::Io { op, path, source }
        }
        other => other,
    }
}

/// Materializes into `target` itself; on failure removes what was written.
fn write_in_place(
    plan: &Plan,
    objects: &ObjectStore,
    target: &Path,
    opts: MaterializeOptions,
) -> Result<Stats, Error> {
    fs::create_dir_all(target).io_context("create", target)?;
    let result = materialize(plan, objects, target, opts);
    if result.is_err() {
        // Leave no half-built tree behind.
        if let Ok(rd) = fs::read_dir(target) {
            for e in rd.flatten() {
                let _ = remove_tree(&e.path());
            }
        }
    }
    result
}

/// Writes a chain's plan (into its temp directory, renamed with it).
fn save_plan(path: &Path, plan: &Plan) -> Result<(), Error> {
    let body = postcard::to_stdvec(plan).expect("plans serialize");
    let mut bytes = Vec::with_capacity(PLAN_MAGIC.len() + 32 + body.len());
    bytes.extend_from_slice(PLAN_MAGIC);
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    fs::write(path, bytes).io_context("write", path)
}

/// A chain's saved plan, if it is whole (it is written without fsync: a
/// power loss may tear it) and of this version.
fn load_plan(path: &Path) -> Option<Plan> {
    parse_plan(&fs::read(path).ok()?)
}

fn parse_plan(bytes: &[u8]) -> Option<Plan> {
    let (sum, body) = bytes.strip_prefix(PLAN_MAGIC)?.split_at_checked(32)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// A changeset file, if it reads and parses.
fn read_changeset(path: &Path) -> Option<CachedLayer> {
    parse_changeset(&fs::read(path).ok()?)
}

/// A changeset file's bytes, if they parse.
fn parse_changeset(bytes: &[u8]) -> Option<CachedLayer> {
    postcard::from_bytes::<CachedLayer>(bytes.strip_prefix(CHANGESET_MAGIC)?).ok()
}

fn decode_with_digest(
    blob: impl io::Read,
    layer: &str,
    objects: &ObjectStore,
    opts: &DecodeOptions,
) -> Result<(Changeset, Digest), Error> {
    let d = decode(blob, layer, None, objects, opts)?;
    Ok((d.changeset, d.diff_id))
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, Error> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.collect::<io::Result<Vec<_>>>().io_context("list", dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).io_context("list", dir),
    }
}

/// Bytes of regular files under `path` that no object shares.
fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut todo = vec![path.to_owned()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() && meta.nlink() == 1 {
            // A private copy (objects are counted when they go).
            total += meta.len();
        }
    }
    total
}

/// Removes the entries of `dir` whose names start with `prefix`: temp files
/// and directories of writers that died. The caller holds the lock that
/// excludes live writers of those names. Best effort: what cannot be removed
/// now is left to the next sweep or `prune`.
fn sweep_temps(dir: &Path, prefix: &str) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Removes a tree that may hold read-only directories.
fn remove_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk_dirs(path) {
        let _ = fs::set_permissions(&entry, fs::Permissions::from_mode(0o700));
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => fs::remove_file(path),
        other => other,
    }
}

fn walk_dirs(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![path.to_owned()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        out.push(p.clone());
        if let Ok(rd) = fs::read_dir(&p) {
            todo.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}
