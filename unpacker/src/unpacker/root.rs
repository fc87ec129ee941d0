//! Image roots, `images/<manifest hex>[-<map>]/`: an image's read-only
//! root as a stack of layer directories (or one flattened `rootfs/` when
//! the stack is too long for one overlayfs mount), built once per image
//! and id map, in a temp directory renamed into place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cairn_fsutil::IoContext as _;
use cairn_store::{Digest, Image, LockGuard, LockMode, StoreDir};
use serde::{Deserialize, Serialize};

use super::ahead::Prepared;
use super::chain::ChainBuilder;
use super::dirs::{remove_tree, sweep_temps};
use super::Unpacker;
use crate::error::Error;
use crate::materialize::{materialize, Devices, MaterializeOptions, Mode, Stats};
use crate::plan::Plan;

/// `format` of an image root's `info.json`: 2 since objects are keyed with
/// their mtime. A root of another format is built again when next used.
pub(super) const ROOT_FORMAT: u32 = 2;

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

impl Unpacker {
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
                // are decoded, written while the layers above decode.
                std::thread::scope(|scope| {
                    let mut chain_builder = ChainBuilder::new(self, scope, start, saved);
                    self.layers_in_order(image, verify, known, |k, layers| {
                        chain_builder.add(k, layers, &chains[k])
                    })?;
                    decoded = started.elapsed();
                    chain_builder.finish(&chains)
                })?
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

    /// An image root's `info.json`, if it is there and parses.
    pub(super) fn read_info(&self, dir: &Path) -> Result<Option<RootInfo>, Error> {
        let info_path = dir.join("info.json");
        match fs::read(&info_path) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).io_context("read", &info_path).map_err(Error::from),
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
}
