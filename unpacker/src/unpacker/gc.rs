//! Garbage collection of derived data: image roots of images no longer
//! stored, their layer directories, changesets of layer blobs no longer
//! live, and the objects no remaining changeset names.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use cairn_fsutil::IoContext as _;
use cairn_store::{LockGuard, LockMode, StoreDir};

use super::cache::{changeset_temp_stem, parse_changeset, read_changeset};
use super::dirs::{read_dir, remove_tree};
use super::root::RootInfo;
use super::Unpacker;
use crate::changeset::ObjectId;
use crate::error::Error;

/// `objects/gc-pending`: ids of objects a collection could not delete while
/// decoders ran, one hex id per line, for the next collection.
const PENDING_OBJECTS: &str = "gc-pending";

impl Unpacker {
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
        let live_blobs: HashSet<String> = self
            .store
            .live_blobs()?
            .iter()
            .map(|d| d.hex().to_owned())
            .collect();
        let mut freed = self.collect_roots(&live_blobs)?;
        freed += self.collect_chains()?;
        let dead = self.collect_changesets(&live_blobs)?;
        freed += dead.freed;
        let walk_all = walk_all || dead.unreadable;
        let mut candidates = dead.objects;
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
            record_pending(&pending, &candidates)?;
            tracing::debug!("objects not collected now: a decoder is running");
            return Ok(freed);
        };
        candidates.extend(take_pending(&pending)?);
        drop(gc);
        let live_objects = self.live_objects()?;
        if walk_all {
            freed += self.collect_unnamed_objects(&live_objects)?;
        } else {
            freed += self.collect_objects(candidates.difference(&live_objects))?;
        }
        Ok(freed)
    }

    /// Whether someone holds the lock `name` (in `locks/`).
    fn lock_held(&self, name: &str) -> Result<bool, Error> {
        let path = self.store.dir(StoreDir::Locks).join(name);
        Ok(LockGuard::try_acquire(&path, LockMode::Exclusive)?.is_none())
    }

    /// Deletes the image roots of images whose manifests are not live, and
    /// the temps of builders that died. Returns bytes freed.
    fn collect_roots(&self, live_blobs: &HashSet<String>) -> Result<u64, Error> {
        let mut freed = 0;
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
                if self.lock_held(lock)? {
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
                Err(err) => Err(err).io_context("remove image root", &doomed)?,
            }
        }
        Ok(freed)
    }

    /// Deletes the changesets of layer blobs that are not live, and the
    /// temps of decoders that died.
    fn collect_changesets(&self, live_blobs: &HashSet<String>) -> Result<DeadChangesets, Error> {
        let mut dead = DeadChangesets::default();
        for e in read_dir(&self.store.dir(StoreDir::Layers))? {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.get(..64).unwrap_or("");
            let temp = changeset_temp_stem(&name);
            if let Some(stem) = temp {
                // A decoder's, alive while it holds the layer lock.
                if self.lock_held(&format!("layer-{stem}"))? {
                    continue;
                }
            } else if live_blobs.contains(hex) && name.ends_with(".cs") {
                continue;
            } else if name.ends_with(".cs") {
                // Its objects become candidates; unreadable, every object is.
                match read_changeset(&e.path()) {
                    Some(c) => dead.objects.extend(c.changeset.objects().copied()),
                    None => dead.unreadable = true,
                }
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(e.path()) {
                Ok(()) => dead.freed += size,
                // A decoder's temp file, renamed into place since we listed
                // (the decoder lets go of its lock after).
                Err(err) if temp.is_some() && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => Err(err).io_context("remove changeset", &e.path())?,
            }
        }
        Ok(dead)
    }

    /// Every object a saved changeset names. A file in `layers/` that does
    /// not parse is removed: it would be decoded again anyway.
    fn live_objects(&self) -> Result<HashSet<ObjectId>, Error> {
        let mut live = HashSet::new();
        for e in read_dir(&self.store.dir(StoreDir::Layers))? {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".cs") {
                continue;
            }
            let bytes = match fs::read(e.path()) {
                Ok(b) => b,
                // Removed since the listing (by another collection).
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => Err(err).io_context("read changeset", &e.path())?,
            };
            match parse_changeset(&bytes) {
                Some(c) => live.extend(c.changeset.objects().copied()),
                None => {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(live)
    }

    /// Deletes the objects `doomed`, those already gone skipped. Returns
    /// bytes freed.
    fn collect_objects<'a>(
        &self,
        doomed: impl Iterator<Item = &'a ObjectId>,
    ) -> Result<u64, Error> {
        let mut freed = 0;
        for id in doomed {
            let path = self.objects.path(id);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => Err(err).io_context("stat object", &path)?,
            };
            // Bytes are freed only when no image root links the inode.
            if meta.nlink() == 1 {
                freed += meta.len();
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => Err(err).io_context("remove object", &path)?,
            }
        }
        Ok(freed)
    }

    /// Deletes every object not `live`, walking the whole object store, and
    /// the temp files of writers that died. Returns bytes freed.
    fn collect_unnamed_objects(&self, live: &HashSet<ObjectId>) -> Result<u64, Error> {
        let mut freed = 0;
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
                if parse_object_id(&format!("{sub_name}{name}"))
                    .is_some_and(|id| live.contains(&id))
                {
                    continue;
                }
                let meta = e.metadata().ok();
                // Bytes are freed only when no image root links the inode.
                if meta.as_ref().is_some_and(|m| m.nlink() == 1) {
                    freed += meta.map(|m| m.len()).unwrap_or(0);
                }
                fs::remove_file(e.path()).io_context("remove object", &e.path())?;
            }
        }
        Ok(freed)
    }

    /// The chains the image roots in `images/` stack, whatever their id map.
    fn chains_in_use(&self) -> Result<HashSet<String>, Error> {
        let mut used = HashSet::new();
        for e in read_dir(&self.store.dir(StoreDir::Images))? {
            let info_path = e.path().join("info.json");
            let info: RootInfo = match fs::read(&info_path) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(i) => i,
                    Err(_) => continue,
                },
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).io_context("read", &info_path).map_err(Error::from),
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
                Err(err) => {
                    return Err(err)
                        .io_context("remove layer directory", &gone)
                        .map_err(Error::from)
                }
            }
            if !name.contains(".tmp-") {
                guard.remove()?;
            }
        }
        Ok(freed)
    }
}

/// What deleting dead changesets found.
#[derive(Default)]
struct DeadChangesets {
    /// Bytes of the changesets deleted.
    freed: u64,
    /// The objects they named: deleted unless a live changeset names them.
    objects: HashSet<ObjectId>,
    /// One did not parse: its objects are unknown, so every object is
    /// checked.
    unreadable: bool,
}

/// Appends `candidates` to the pending list, for the next collection that
/// gets the objects lock.
fn record_pending(pending: &Path, candidates: &HashSet<ObjectId>) -> Result<(), Error> {
    if candidates.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for id in candidates {
        text.push_str(&id.hex());
        text.push('\n');
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pending)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .io_context("record objects to collect later", pending)?;
    Ok(())
}

/// The objects earlier collections left pending, taken: if this collection
/// fails, they are only left unnamed, for `system prune`'s walk.
fn take_pending(pending: &Path) -> Result<Vec<ObjectId>, Error> {
    match fs::read_to_string(pending) {
        Ok(text) => {
            let ids = text.lines().filter_map(parse_object_id).collect();
            fs::remove_file(pending).io_context("remove", pending)?;
            Ok(ids)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).io_context("read", pending)?,
    }
}

/// An object id from its 64 hex digits.
fn parse_object_id(hex: &str) -> Option<ObjectId> {
    hex::decode(hex)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(ObjectId)
}

/// Bytes of regular files under `path` that no object shares.
fn tree_size(path: &Path) -> u64 {
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
