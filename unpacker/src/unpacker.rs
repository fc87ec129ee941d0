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

//!
//! The work is split by what it keeps on disk:
//!
//! * `cache`: one layer's changeset, decoded once (from the stored blob or
//!   its download) and kept in `layers/`;
//! * `ahead`: planning the cached lower layers of an image while the others
//!   download;
//! * `chain`: the layer directories in `chains/` and their saved plans;
//! * `root`: image roots in `images/`, stacked from layer directories or
//!   flattened;
//! * `unpack`: an image or layer files written to a directory of the
//!   caller's (`cairn unpack`);
//! * `gc`: deleting what no image needs any more;
//! * `check`: verifying (and repairing) all of it.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use cairn_fsutil::IoContext as _;
use cairn_store::{Digest, LockGuard, LockMode, Store, StoreDir};
use sha2::{Digest as _, Sha256};

use crate::changeset::Changeset;
use crate::decode::DecodeOptions;
use crate::error::Error;
use crate::objects::{ObjectStore, Ownership};

mod ahead;
mod cache;
mod chain;
mod check;
mod dirs;
mod gc;
mod root;
mod unpack;

pub use check::{CheckOptions, DerivedReport};
pub use root::{ImageRoot, RootInfo};

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

/// The unpacker for one store and one id map.
#[derive(Debug)]
pub struct Unpacker {
    store: Store,
    objects: ObjectStore,
    opts: UnpackerOptions,
    tag: String,
    /// What [`Unpacker::prepare`] planned ahead.
    ahead: std::sync::Mutex<ahead::Ahead>,
    ahead_done: std::sync::Condvar,
    /// Layers [`Unpacker::decode_ahead`] decoded, kept in memory for the
    /// image root: reading back the changeset just written, and checking
    /// every object it names is there, would only cost time.
    decoded: std::sync::Mutex<HashMap<Digest, (Changeset, Digest)>>,
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
}
