//! Images as the user sees them: refs in `index.json` grouped by manifest,
//! lookup by name, short name, id or digest, tagging, removal, pruning,
//! disk usage and checking.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;

use cairn_fsutil::{IoContext as _, LockGuard, LockMode};

use crate::digest::Digest;
use crate::dirs::StoreDir;
use crate::error::Error;
use crate::layout::{Store, REF_NAME};
use crate::media::{types, Descriptor, ImageConfig, Index, Manifest, ManifestKind};
use crate::reference::{Name, Reference};

/// Annotation on a ref: the digest of the index it was resolved from.
pub const INDEX_DIGEST: &str = "io.cairn.image.index.digest";

/// Largest manifest or index accepted (what containers/image allows).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config accepted.
pub const MAX_CONFIG_SIZE: u64 = 32 << 20;

/// A local image: one manifest, its config, and every name pointing at it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor as stored in `index.json`.
    pub manifest_descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config exactly as stored (for `inspect`).
    pub config_raw: serde_json::Value,
    /// Names (tags or digests), sorted; empty for a dangling image.
    pub names: Vec<Reference>,
    /// Digests of indexes this image was resolved from.
    pub index_digests: Vec<Digest>,
}

impl Image {
    /// The image id: the config digest, as podman reports it.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// The manifest digest.
    pub fn digest(&self) -> &Digest {
        &self.manifest_descriptor.digest
    }

    /// Bytes the image's blobs take: manifest, config and compressed layers.
    pub fn size(&self) -> u64 {
        self.manifest_descriptor.size
            + self.manifest.config.size
            + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// Every blob the image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(self.digest())
            .chain(std::iter::once(&self.manifest.config.digest))
            .chain(self.manifest.layers.iter().map(|l| &l.digest))
    }

    /// `name@manifest-digest` for each repository the image is known under,
    /// like podman's RepoDigests.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for n in &self.names {
            out.insert(format!("{}@{}", n.name(), self.digest()));
            for i in &self.index_digests {
                out.insert(format!("{}@{i}", n.name()));
            }
        }
        out.into_iter().collect()
    }
}

/// What `remove_images` did for one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A name was removed; the image keeps other names.
    Untagged(Reference),
    /// The image is gone (all names), identified by id.
    Deleted {
        /// Names it had.
        untagged: Vec<Reference>,
        /// Its id.
        id: Digest,
    },
}

/// Why an image lookup or removal was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Nothing matches.
    #[error("{0}: image not known")]
    NotKnown(String),
    /// An id prefix that matches several images.
    #[error("{0}: ambiguous image id prefix, it matches {1} images; give more characters")]
    Ambiguous(String, usize),
    /// `rmi ID` of an image with several names, without `-f`.
    #[error("unable to delete image {id} by ID with more than one tag ({names}): please force removal with -f")]
    MultipleNames {
        /// The id given.
        id: String,
        /// Its names.
        names: String,
    },
    /// Store failure.
    #[error(transparent)]
    Store(#[from] Error),
}

/// Bytes and counts for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Images (manifests) in the store.
    pub images: usize,
    /// Bytes of the blobs referenced by images, each blob counted once.
    pub stored_bytes: u64,
    /// Bytes the images would take without sharing (sum over images).
    pub logical_bytes: u64,
    /// Bytes of blobs no image references, plus abandoned partial downloads.
    pub reclaimable_bytes: u64,
    /// Dangling images (no name).
    pub dangling: usize,
}

/// Findings of `system check`.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs verified.
    pub blobs_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Refs checked.
    pub refs_checked: usize,
    /// Blobs whose content does not hash to their name.
    pub corrupt_blobs: Vec<Digest>,
    /// Refs (or dangling manifests) whose content is missing or corrupt,
    /// with what is wrong.
    pub broken_refs: Vec<(String, String)>,
    /// Files in `blobs/` that are not named by a digest.
    pub stray_files: Vec<String>,
    /// Abandoned partial downloads in `tmp/`.
    pub partials: usize,
}

impl CheckReport {
    /// No problems.
    pub fn is_clean(&self) -> bool {
        self.corrupt_blobs.is_empty() && self.broken_refs.is_empty() && self.stray_files.is_empty()
    }
}

impl Store {
    /// Reads and parses a stored image manifest.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest, Error> {
        let bytes = self.read_blob(digest, MAX_MANIFEST_SIZE)?;
        match ManifestKind::parse(&bytes, None) {
            Ok(ManifestKind::Image(m)) => Ok(m),
            Ok(ManifestKind::Index(_)) => Err(self.corrupt(format!(
                "blob {digest} is an index where an image manifest was expected"
            ))),
            Err(e) => Err(self.corrupt(format!("manifest {digest}: {e}"))),
        }
    }

    /// Reads and parses a stored image config, keeping the raw JSON too.
    pub fn config(&self, digest: &Digest) -> Result<(ImageConfig, serde_json::Value), Error> {
        let bytes = self.read_blob(digest, MAX_CONFIG_SIZE)?;
        let raw: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.corrupt(format!("config {digest} is not JSON ({e})")))?;
        let config: ImageConfig = serde_json::from_value(raw.clone())
            .map_err(|e| self.corrupt(format!("config {digest}: {e}")))?;
        Ok((config, raw))
    }

    /// Every image manifest in `index.json` with its names, in index order.
    /// Entries that are not image manifests (indexes written by other tools)
    /// are skipped.
    pub fn images(&self) -> Result<Vec<Image>, Error> {
        let index = self.index()?;
        let mut order: Vec<Digest> = Vec::new();
        let mut by_digest: BTreeMap<Digest, (Descriptor, Vec<Reference>, Vec<Digest>)> =
            BTreeMap::new();
        for d in &index.manifests {
            if d.media_type == types::OCI_INDEX || d.media_type == types::DOCKER_LIST {
                continue;
            }
            let entry = by_digest.entry(d.digest.clone()).or_insert_with(|| {
                order.push(d.digest.clone());
                (d.clone(), Vec::new(), Vec::new())
            });
            if let Some(name) = d.annotations.get(REF_NAME) {
                if let Ok(r) = name.parse::<Reference>() {
                    if !entry.1.contains(&r) {
                        entry.1.push(r);
                    }
                }
            }
            if let Some(i) = d.annotations.get(INDEX_DIGEST).and_then(|s| s.parse().ok()) {
                if !entry.2.contains(&i) {
                    entry.2.push(i);
                }
            }
        }
        let mut out = Vec::with_capacity(order.len());
        for digest in order {
            let (desc, mut names, index_digests) = by_digest.remove(&digest).expect("inserted");
            let read = self.manifest(&digest).and_then(|m| {
                let (c, raw) = self.config(&m.config.digest)?;
                Ok((m, c, raw))
            });
            let (manifest, config, config_raw) = match read {
                Ok(x) => x,
                // Removed (ref, then blobs) by a concurrent rmi or prune
                // since index.json was read: not an image any more.
                Err(e) if e.is_not_found() && !self.index_names(&digest)? => continue,
                Err(e) => return Err(e),
            };
            names.sort_by_key(|r| r.to_string());
            out.push(Image {
                manifest_descriptor: desc,
                manifest,
                config,
                config_raw,
                names,
                index_digests,
            });
        }
        Ok(out)
    }

    /// Whether `index.json` (read now) has an entry for manifest `digest`.
    fn index_names(&self, digest: &Digest) -> Result<bool, Error> {
        Ok(self.index()?.manifests.iter().any(|d| &d.digest == digest))
    }

    /// The image whose manifest is `digest`, if it is in `index.json`.
    pub fn image_by_manifest(&self, digest: &Digest) -> Result<Option<Image>, Error> {
        Ok(self.images()?.into_iter().find(|i| i.digest() == digest))
    }

    /// Finds a local image the way podman does: a full or prefix image id
    /// (`sha256:` optional, at least 3 hex characters), a manifest digest,
    /// a fully qualified name, or a short name matched against `localhost/`,
    /// the search registries, then any repository ending in it.
    pub fn find_image(&self, spec: &str, search: &[String]) -> Result<Image, ImageError> {
        let images = self.images()?;
        find_in(images, spec, search)
    }

    /// Points `name` at the manifest `desc` (with an optional index digest).
    /// An image that loses its last name stays as a dangling image, as in
    /// podman, until pruned.
    pub fn set_ref(
        &self,
        name: &Reference,
        desc: &Descriptor,
        index_digest: Option<&Digest>,
    ) -> Result<(), Error> {
        let name_str = name.to_string();
        // The blobs this ref reaches were renamed into place without a
        // directory fsync each: one here, before the ref makes them count.
        self.sync_blob_dirs()?;
        self.update_index(|index| {
            let mut entry = desc.clone();
            entry.platform = desc.platform.clone();
            entry
                .annotations
                .insert(REF_NAME.to_owned(), name_str.clone());
            match index_digest {
                Some(i) => {
                    entry
                        .annotations
                        .insert(INDEX_DIGEST.to_owned(), i.to_string());
                }
                None => {
                    entry.annotations.remove(INDEX_DIGEST);
                }
            }
            if index.manifests.contains(&entry) {
                return Ok(false);
            }
            let old: Vec<Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.annotations.get(REF_NAME) == Some(&name_str))
                .cloned()
                .collect();
            index
                .manifests
                .retain(|d| d.annotations.get(REF_NAME) != Some(&name_str));
            // The new image is no longer dangling.
            index
                .manifests
                .retain(|d| d.digest != desc.digest || d.annotations.contains_key(REF_NAME));
            for o in old {
                if o.digest != desc.digest && !index.manifests.iter().any(|d| d.digest == o.digest)
                {
                    let mut dangling = o;
                    dangling.annotations.remove(REF_NAME);
                    index.manifests.push(dangling);
                }
            }
            index.manifests.push(entry);
            Ok(true)
        })?;
        Ok(())
    }

    /// `untag`: removes `name` from the image whose manifest is `digest`.
    /// An image that loses its last name stays as a dangling image, as in
    /// podman. Returns whether the image had that name (nothing changes if
    /// not). One index write: a crash leaves the old index or the new one.
    pub fn untag(&self, digest: &Digest, name: &Reference) -> Result<bool, Error> {
        let name = name.to_string();
        self.update_index(|index| {
            let named =
                |d: &Descriptor| d.digest == *digest && d.annotations.get(REF_NAME) == Some(&name);
            let Some(entry) = index.manifests.iter().find(|d| named(d)).cloned() else {
                return Ok(false);
            };
            index.manifests.retain(|d| !named(d));
            if !index.manifests.iter().any(|d| d.digest == *digest) {
                let mut dangling = entry;
                dangling.annotations.remove(REF_NAME);
                index.manifests.push(dangling);
            }
            Ok(true)
        })
    }

    /// `rmi`: removes names or whole images. By name: that name goes, and
    /// the image with it if it was the last. By id: the image and all its
    /// names (with several names only if `force`). Unreferenced blobs are
    /// then deleted if no other process is adding blobs (else left to
    /// `prune`). Returns what happened per argument.
    pub fn remove_images(
        &self,
        specs: &[String],
        search: &[String],
        force: bool,
    ) -> Result<Vec<Result<Removal, ImageError>>, Error> {
        let mut results = Vec::new();
        for spec in specs {
            let r = self.remove_one(spec, search, force);
            results.push(r);
        }
        self.collect_garbage(false)?;
        Ok(results)
    }

    /// Takes the lock that ties image `digest` to its users: a creator of a
    /// container holds it shared from the moment it has resolved the image
    /// until its container is on disk; a remover holds it exclusively while
    /// it checks that no container uses the image and removes it. So a
    /// container never ends up with an image removed under it.
    pub fn lock_image_use(&self, digest: &Digest, mode: LockMode) -> Result<LockGuard, Error> {
        Ok(LockGuard::acquire(
            &self
                .dir(StoreDir::Locks)
                .join(format!("use-{}", digest.hex())),
            mode,
        )?)
    }

    /// Removes every image (`rmi -a`) but those `keep` says are in use
    /// (asked under the image's use lock, see [`Store::lock_image_use`]).
    pub fn remove_all_images(&self, keep: impl Fn(&Image) -> bool) -> Result<Vec<Removal>, Error> {
        let images = self.images()?;
        let mut out = Vec::new();
        for image in images {
            let _use = self.lock_image_use(image.digest(), LockMode::Exclusive)?;
            if keep(&image) {
                continue;
            }
            let digest = image.digest().clone();
            self.update_index(|index| {
                let before = index.manifests.len();
                index.manifests.retain(|d| d.digest != digest);
                Ok(index.manifests.len() != before)
            })?;
            out.push(Removal::Deleted {
                untagged: image.names.clone(),
                id: image.id().clone(),
            });
        }
        self.collect_garbage(false)?;
        Ok(out)
    }

    fn remove_one(
        &self,
        spec: &str,
        search: &[String],
        force: bool,
    ) -> Result<Removal, ImageError> {
        let images = self.images()?;
        let image = find_in(images, spec, search)?;
        let by_name = matched_name(&image, spec, search);
        let digest = image.digest().clone();
        match by_name {
            Some(name) if image.names.len() > 1 => {
                let n = name.to_string();
                self.update_index(|index| {
                    index
                        .manifests
                        .retain(|d| d.annotations.get(REF_NAME) != Some(&n));
                    Ok(true)
                })?;
                Ok(Removal::Untagged(name))
            }
            _ => {
                if by_name.is_none() && image.names.len() > 1 && !force {
                    return Err(ImageError::MultipleNames {
                        id: spec.to_owned(),
                        names: image
                            .names
                            .iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                self.update_index(|index| {
                    let before = index.manifests.len();
                    index.manifests.retain(|d| d.digest != digest);
                    Ok(index.manifests.len() != before)
                })?;
                Ok(Removal::Deleted {
                    untagged: image.names.clone(),
                    id: image.id().clone(),
                })
            }
        }
    }

    /// `image prune`: removes dangling images (with `all`, every image), then
    /// unreferenced blobs and abandoned partial downloads, waiting for
    /// running pulls to finish. Images `keep` says are in use (asked under
    /// the image's use lock) stay. Returns
    /// the removed image ids and the bytes freed.
    pub fn prune_images(
        &self,
        all: bool,
        keep: impl Fn(&Image) -> bool,
    ) -> Result<(Vec<Digest>, u64), Error> {
        let images = self.images()?;
        let mut removed = Vec::new();
        // Without `all`, an untagged image another image was built on (a
        // build's step image) is not dangling while that image stays, as
        // in podman: children are looked at first.
        let mut order: Vec<usize> = (0..images.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(history_len(&images[i])));
        let mut gone = vec![false; images.len()];
        for i in order {
            let image = &images[i];
            if all || image.names.is_empty() {
                let has_child = !all
                    && images
                        .iter()
                        .enumerate()
                        .any(|(j, other)| j != i && !gone[j] && is_parent(image, other));
                if has_child {
                    continue;
                }
                let _use = self.lock_image_use(image.digest(), LockMode::Exclusive)?;
                if keep(image) {
                    continue;
                }
                gone[i] = true;
                let digest = image.digest().clone();
                let changed = self.update_index(|index| {
                    let before = index.manifests.len();
                    index.manifests.retain(|d| {
                        d.digest != digest || (!all && d.annotations.contains_key(REF_NAME))
                    });
                    Ok(index.manifests.len() != before)
                })?;
                if changed {
                    removed.push(image.id().clone());
                }
            }
        }
        let freed = self.collect_garbage(true)?;
        Ok((removed, freed))
    }

    /// Deletes blobs that no ref needs. With `wait`, blocks until running
    /// pulls are done; without, does nothing if one is running. Returns the
    /// bytes freed.
    pub fn collect_garbage(&self, wait: bool) -> Result<u64, Error> {
        let _gc = if wait {
            self.gc_lock(LockMode::Exclusive)?
        } else {
            match self.try_gc_lock(LockMode::Exclusive)? {
                Some(g) => g,
                None => return Ok(0),
            }
        };
        self.sweep_pins()?;
        let live = self.live_blobs()?;
        let mut freed = 0;
        for blob in self.blobs()? {
            if !live.contains(&blob) {
                freed += self.remove_blob(&blob)?;
            }
        }
        freed += self.sweep_partials(wait)?;
        self.sweep_locks(&live)?;
        Ok(freed)
    }

    /// Deletes the lock files of blobs and images that are gone
    /// (`<kind>-[<alg>-]<hex>[-<map>]` whose blob is not live), unless
    /// somebody holds them.
    fn sweep_locks(&self, live: &BTreeSet<Digest>) -> Result<(), Error> {
        let live: BTreeSet<&str> = live.iter().map(|d| d.hex()).collect();
        let dir = self.dir(StoreDir::Locks);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = ["blob-sha256-", "blob-sha512-", "use-", "layer-", "image-"]
                .iter()
                .find_map(|p| name.strip_prefix(p))
            else {
                continue;
            };
            let hex = rest.split('-').next().unwrap_or("");
            if live.contains(hex) || !(hex.len() == 64 || hex.len() == 128) {
                continue;
            }
            if let Some(g) = LockGuard::try_acquire(&e.path(), LockMode::Exclusive)? {
                g.remove()?;
            }
        }
        Ok(())
    }

    /// Blobs reachable from `index.json` or from the pins of live writers:
    /// manifests, their configs and layers, indexes and their children,
    /// recorded source indexes. Missing or unreadable blobs are skipped
    /// (that is `check`'s business), so a damaged store never makes GC
    /// delete more.
    pub fn live_blobs(&self) -> Result<BTreeSet<Digest>, Error> {
        let index = self.index()?;
        let mut live = BTreeSet::new();
        let mut todo: Vec<Digest> = self.pinned()?.into_iter().collect();
        for d in &index.manifests {
            todo.push(d.digest.clone());
            if let Some(i) = d.annotations.get(INDEX_DIGEST).and_then(|s| s.parse().ok()) {
                live.insert(i);
            }
        }
        while let Some(d) = todo.pop() {
            if !live.insert(d.clone()) {
                continue;
            }
            // Pinned layers are not manifests: not even read.
            if self.blob_size(&d).is_none_or(|n| n > MAX_MANIFEST_SIZE) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&d, MAX_MANIFEST_SIZE) else {
                continue;
            };
            match ManifestKind::parse(&bytes, None) {
                Ok(ManifestKind::Image(m)) => {
                    live.insert(m.config.digest.clone());
                    live.extend(m.layers.iter().map(|l| l.digest.clone()));
                }
                Ok(ManifestKind::Index(i)) => {
                    todo.extend(i.manifests.iter().map(|m| m.digest.clone()));
                }
                Err(_) => {}
            }
        }
        Ok(live)
    }

    /// `system df` figures.
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        let images = self.images()?;
        let live = self.live_blobs()?;
        let mut usage = DiskUsage {
            images: images.len(),
            dangling: images.iter().filter(|i| i.names.is_empty()).count(),
            ..DiskUsage::default()
        };
        for image in &images {
            usage.logical_bytes += image.size();
        }
        for blob in self.blobs()? {
            let size = self.blob_size(&blob).unwrap_or(0);
            if live.contains(&blob) {
                usage.stored_bytes += size;
            } else {
                usage.reclaimable_bytes += size;
            }
        }
        let tmp = self.dir(StoreDir::Tmp);
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".partial") {
                    usage.reclaimable_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        Ok(usage)
    }

    /// `system check`: hashes every blob and checks every ref's manifest,
    /// config and layers are present with the sizes their descriptors state.
    /// With `repair`, corrupt blobs and refs that cannot be satisfied are
    /// removed (nothing is fetched).
    pub fn check(&self, repair: bool) -> Result<CheckReport, Error> {
        // Shared while reading (no collection deletes under us; pulls go
        // on), exclusive only to remove what is corrupt.
        let gc = self.gc_lock(LockMode::Shared)?;
        let mut report = CheckReport::default();
        let mut buf = vec![0u8; 1 << 20];
        for alg in ["sha256", "sha512"] {
            let dir = self.dir(StoreDir::Blobs).join(alg);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd {
                let e = e.io_context("list", &dir)?;
                let name = e.file_name().to_string_lossy().into_owned();
                if format!("{alg}:{name}").parse::<Digest>().is_err() {
                    report.stray_files.push(format!("blobs/{alg}/{name}"));
                }
            }
        }
        for blob in self.blobs()? {
            let path = self.blob_path(&blob);
            let mut f = self.open_blob(&blob)?;
            let mut h = crate::digest::Hasher::new(blob.algorithm());
            loop {
                let n = f.read(&mut buf).io_context("read blob", &path)?;
                if n == 0 {
                    break;
                }
                report.bytes_checked += n as u64;
                h.update(&buf[..n]);
            }
            report.blobs_checked += 1;
            if h.finish() != blob {
                report.corrupt_blobs.push(blob);
            }
        }
        let corrupt: BTreeSet<&Digest> = report.corrupt_blobs.iter().collect();
        let index = self.index()?;
        let mut broken_digests = BTreeSet::new();
        for d in &index.manifests {
            report.refs_checked += 1;
            let label = d
                .annotations
                .get(REF_NAME)
                .cloned()
                .unwrap_or_else(|| format!("<none>@{}", d.digest));
            if let Err(why) = self.check_entry(d, &corrupt) {
                report.broken_refs.push((label, why));
                broken_digests.insert(d.digest.clone());
            }
        }
        report.partials = fs::read_dir(self.dir(StoreDir::Tmp))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                    .count()
            })
            .unwrap_or(0);
        if repair {
            drop(gc);
            let _gc = self.gc_lock(LockMode::Exclusive)?;
            for blob in &report.corrupt_blobs {
                self.remove_blob(blob)?;
            }
            for stray in &report.stray_files {
                let p = self.root().join(stray);
                let _ = fs::remove_file(&p);
            }
            if !broken_digests.is_empty() {
                self.update_index(|index: &mut Index| {
                    index
                        .manifests
                        .retain(|d| !broken_digests.contains(&d.digest));
                    Ok(true)
                })?;
            }
        }
        Ok(report)
    }

    fn check_entry(&self, d: &Descriptor, corrupt: &BTreeSet<&Digest>) -> Result<(), String> {
        let have = |digest: &Digest, size: u64, what: &str| -> Result<(), String> {
            if corrupt.contains(digest) {
                return Err(format!("{what} {digest} is corrupt"));
            }
            match self.blob_size(digest) {
                None => Err(format!("{what} {digest} is missing")),
                Some(s) if s != size => Err(format!(
                    "{what} {digest} has {s} bytes, its descriptor says {size}"
                )),
                Some(_) => Ok(()),
            }
        };
        have(&d.digest, d.size, "manifest")?;
        if let Some(name) = d.annotations.get(REF_NAME) {
            if Name::parse(name).is_err() {
                return Err(format!("ref name {name:?} is not a valid image reference"));
            }
        }
        let bytes = self
            .read_blob(&d.digest, MAX_MANIFEST_SIZE)
            .map_err(|e| e.to_string())?;
        match ManifestKind::parse(&bytes, None).map_err(|e| e.to_string())? {
            ManifestKind::Image(m) => {
                have(&m.config.digest, m.config.size, "config")?;
                for l in &m.layers {
                    have(&l.digest, l.size, "layer")?;
                }
            }
            ManifestKind::Index(i) => {
                for m in &i.manifests {
                    if self.has_blob(&m.digest) {
                        have(&m.digest, m.size, "manifest")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Lookup over a snapshot of the images.
/// The number of history entries of an image's config.
fn history_len(i: &Image) -> usize {
    i.config_raw
        .get("history")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len)
}

/// Whether `child` was built on `parent`: its layers start with the
/// parent's and its history is longer (podman's parent rule).
fn is_parent(parent: &Image, child: &Image) -> bool {
    let (p, c) = (&parent.manifest.layers, &child.manifest.layers);
    c.len() >= p.len()
        && c.iter().zip(p).all(|(a, b)| a.digest == b.digest)
        && history_len(child) > history_len(parent)
        && !p.is_empty()
}

fn find_in(images: Vec<Image>, spec: &str, search: &[String]) -> Result<Image, ImageError> {
    let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
    let is_hex = hex.len() >= 3
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if is_hex {
        let by_id: Vec<&Image> = images
            .iter()
            .filter(|i| {
                i.id().hex().starts_with(hex) || (hex.len() == 64 && i.digest().hex() == hex)
            })
            .collect();
        let distinct: BTreeSet<&Digest> = by_id.iter().map(|i| i.digest()).collect();
        match distinct.len() {
            1 => return Ok(by_id[0].clone()),
            0 => {}
            n => {
                // Several manifests with one config (say gzip and zstd copies):
                // podman treats them as one image id; prefer a tagged one.
                let ids: BTreeSet<&Digest> = by_id.iter().map(|i| i.id()).collect();
                if ids.len() == 1 {
                    let best = by_id
                        .iter()
                        .max_by_key(|i| i.names.len())
                        .expect("non-empty");
                    return Ok((*best).clone());
                }
                return Err(ImageError::Ambiguous(spec.to_owned(), n));
            }
        }
    }
    let name = match Name::parse(spec) {
        Ok(n) => n,
        Err(_) if is_hex => return Err(ImageError::NotKnown(spec.to_owned())),
        Err(e) => return Err(Error::Reference(e).into()),
    };
    for candidate in candidates(&name, search) {
        if let Some(i) = images.iter().find(|i| i.names.contains(&candidate)) {
            return Ok(i.clone());
        }
        if let Some(digest) = candidate.digest() {
            if let Some(i) = images.iter().find(|i| {
                i.digest() == digest && i.names.iter().any(|n| n.name() == candidate.name())
                    || i.index_digests.contains(digest)
                        && i.names.iter().any(|n| n.name() == candidate.name())
            }) {
                return Ok(i.clone());
            }
        }
    }
    if name.is_short() {
        // A short name also matches any repository ending in it, same tag.
        let Ok(probe) = name.qualify("localhost") else {
            return Err(ImageError::NotKnown(spec.to_owned()));
        };
        let suffix = format!("/{}", probe.repository());
        if let Some(i) = images.iter().find(|i| {
            i.names.iter().any(|n| {
                n.name().ends_with(&suffix)
                    && n.tag() == probe.tag()
                    && n.digest() == probe.digest()
            })
        }) {
            return Ok(i.clone());
        }
    }
    Err(ImageError::NotKnown(spec.to_owned()))
}

fn candidates(name: &Name, search: &[String]) -> Vec<Reference> {
    if !name.is_short() {
        return name.qualify("").into_iter().collect();
    }
    std::iter::once("localhost")
        .chain(search.iter().map(String::as_str))
        .filter_map(|reg| name.qualify(reg).ok())
        .collect()
}

/// The name of `image` that `spec` designates, if `spec` is a name.
fn matched_name(image: &Image, spec: &str, search: &[String]) -> Option<Reference> {
    let name = Name::parse(spec).ok()?;
    for c in candidates(&name, search) {
        if image.names.contains(&c) {
            return Some(c);
        }
    }
    if name.is_short() {
        let probe = name.qualify("localhost").ok()?;
        let suffix = format!("/{}", probe.repository());
        return image
            .names
            .iter()
            .find(|n| n.name().ends_with(&suffix) && n.tag() == probe.tag())
            .cloned();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(content: &[u8]) -> Descriptor {
        Descriptor {
            media_type: types::OCI_MANIFEST.to_owned(),
            digest: Digest::sha256_of(content),
            size: content.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// (digest, name) of every index entry, in order.
    fn entries(s: &Store) -> Vec<(Digest, Option<String>)> {
        s.index()
            .unwrap()
            .manifests
            .into_iter()
            .map(|d| (d.digest, d.annotations.get(REF_NAME).cloned()))
            .collect()
    }

    #[test]
    fn untag_removes_one_name_and_keeps_the_last_as_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (a, b) = (manifest(b"a"), manifest(b"b"));
        let name = |n: &str| -> Reference { n.parse().unwrap() };
        s.set_ref(&name("localhost/x:1"), &a, None).unwrap();
        s.set_ref(&name("localhost/y:1"), &a, None).unwrap();
        s.set_ref(&name("localhost/z:1"), &b, None).unwrap();

        // Not a name of that image: nothing changes.
        assert!(!s.untag(&a.digest, &name("localhost/z:1")).unwrap());
        assert_eq!(entries(&s).len(), 3);

        assert!(s.untag(&a.digest, &name("localhost/x:1")).unwrap());
        assert_eq!(
            entries(&s),
            vec![
                (a.digest.clone(), Some("localhost/y:1".to_owned())),
                (b.digest.clone(), Some("localhost/z:1".to_owned())),
            ]
        );
        // The last name: the image stays, without a name.
        assert!(s.untag(&a.digest, &name("localhost/y:1")).unwrap());
        assert_eq!(
            entries(&s),
            vec![
                (b.digest.clone(), Some("localhost/z:1".to_owned())),
                (a.digest.clone(), None),
            ]
        );
        assert!(!s.untag(&a.digest, &name("localhost/y:1")).unwrap());
    }
}
