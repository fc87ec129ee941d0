//! fsck of the derived data: changesets parse, every object a changeset
//! names hashes (content + metadata) to its name and still has that
//! metadata on disk, and image roots match their plan (every entry, or a
//! spot sample). Repair removes what is corrupt and rebuilds image roots
//! from the stored blobs; it never fetches anything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use cairn_fsutil::IoContext as _;
use cairn_store::{Image, LockMode, StoreDir};

use super::cache::{CachedLayer, CHANGESET_MAGIC};
use super::chain::{parse_plan, PLAN_MAGIC};
use super::dirs::{read_dir, remove_tree};
use super::root::ROOT_FORMAT;
use super::Unpacker;
use crate::changeset::{Changeset, Meta, ObjectId};
use crate::error::Error;
use crate::objects::{object_id, Ownership};
use crate::plan::{NodeKind, Plan};

/// How thoroughly, and whether to repair.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Remove what is corrupt, rebuild image roots from stored blobs.
    pub repair: bool,
    /// Compare every entry of every image root (default: a sample of about
    /// 256 per root, objects always all).
    pub full: bool,
    /// Lower directories (`…/rootfs` or `…/chains/<name>/diff`) a repair
    /// must not replace: running containers have them mounted.
    pub busy: Vec<std::path::PathBuf>,
}

/// What the check found.
#[derive(Debug, Default, Clone)]
pub struct DerivedReport {
    /// Changesets parsed.
    pub changesets_checked: usize,
    /// Changesets that do not parse (`layers/` file names).
    pub bad_changesets: Vec<String>,
    /// Objects verified.
    pub objects_checked: usize,
    /// Their bytes.
    pub object_bytes: u64,
    /// Objects whose content or metadata no longer match their id, with why.
    pub corrupt_objects: Vec<(String, String)>,
    /// Image roots compared with their plan.
    pub roots_checked: usize,
    /// Entries compared.
    pub entries_checked: usize,
    /// Image roots that differ from their plan: (directory name, first difference).
    pub bad_roots: Vec<(String, String)>,
    /// Image roots rebuilt by a repair (directory names).
    pub rebuilt: Vec<String>,
    /// Damaged image roots a repair left alone because running containers
    /// use them (directory names).
    pub busy: Vec<String>,
}

impl DerivedReport {
    /// Nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.bad_changesets.is_empty()
            && self.corrupt_objects.is_empty()
            && self.bad_roots.is_empty()
    }
}

impl Unpacker {
    /// Checks (and with `repair`, fixes) changesets, objects and the image
    /// roots of this unpacker's id map. Holds the objects lock shared while
    /// it reads changesets and objects (so a collection deletes none under
    /// it) and exclusively while it removes what is corrupt.
    pub fn check(&self, opts: &CheckOptions) -> Result<DerivedReport, Error> {
        let objects_lock = self.objects_lock(LockMode::Shared)?;
        let mut report = DerivedReport::default();
        let named = self.check_changesets(&mut report)?;
        let corrupt = self.check_objects(&named.expected, &mut report);
        // Decoding a layer again (below) takes the objects lock itself.
        drop(objects_lock);
        let images = self.store.images()?;
        let mut to_rebuild = Vec::new();
        let mut chains_seen = HashSet::new();
        for image in &images {
            if let Some((dir, damaged)) =
                self.check_root(image, opts, &corrupt, &mut chains_seen, &mut report)
            {
                to_rebuild.push(Rebuild {
                    dir,
                    image,
                    damaged,
                });
            }
        }
        if !opts.repair {
            return Ok(report);
        }
        to_rebuild.retain(|r| {
            let busy = r.damaged.iter().any(|d| opts.busy.contains(d));
            if busy {
                report.busy.push(dir_name(&r.dir));
            }
            !busy
        });
        if !report.busy.is_empty() {
            // The corrupt objects are how a later check finds the busy
            // roots damaged: keep everything until those containers stop.
            return Ok(report);
        }
        self.remove_damaged(&corrupt, &named.users, &report.bad_changesets, &to_rebuild)?;
        for r in to_rebuild {
            self.image_root(r.image)?;
            report.rebuilt.push(dir_name(&r.dir));
        }
        Ok(report)
    }

    /// Parses every changeset; returns the metadata each object they name
    /// must have, and which changesets name it.
    fn check_changesets(&self, report: &mut DerivedReport) -> Result<NamedObjects, Error> {
        let mut named = NamedObjects::default();
        let layers = self.store.dir(StoreDir::Layers);
        for e in read_dir(&layers)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".cs") {
                continue;
            }
            report.changesets_checked += 1;
            let bytes = fs::read(e.path()).io_context("read changeset", &e.path())?;
            // One of an older version is not damage: it is decoded again
            // when next needed, and names objects of an older key.
            if !bytes.starts_with(CHANGESET_MAGIC) && bytes.starts_with(b"cairn-changeset-v") {
                report.changesets_checked -= 1;
                continue;
            }
            let parsed = bytes
                .strip_prefix(CHANGESET_MAGIC)
                .and_then(|b| postcard::from_bytes::<CachedLayer>(b).ok());
            let Some(cached) = parsed else {
                report.bad_changesets.push(name);
                continue;
            };
            for c in &cached.changeset.changes {
                if let crate::changeset::Entry::File { meta, object, .. } = &c.entry {
                    named
                        .expected
                        .entry(*object)
                        .or_insert_with(|| meta.clone());
                    named.users.entry(*object).or_default().insert(name.clone());
                }
            }
        }
        Ok(named)
    }

    /// Hashes every object in `expected` and compares its metadata;
    /// returns the corrupt ones. Missing objects are not corruption: their
    /// changesets are decoded again when next needed.
    fn check_objects(
        &self,
        expected: &HashMap<ObjectId, Meta>,
        report: &mut DerivedReport,
    ) -> BTreeSet<ObjectId> {
        let mut corrupt = BTreeSet::new();
        let mut buf = vec![0u8; 1 << 20];
        for (id, meta) in expected {
            let path = self.objects.path(id);
            match verify_object(&path, id, meta, self.objects.ownership(), &mut buf) {
                Ok(n) => {
                    report.objects_checked += 1;
                    report.object_bytes += n;
                }
                Err(Problem::Missing) => {}
                Err(Problem::Bad(why)) => {
                    report.corrupt_objects.push((id.hex(), why));
                    corrupt.insert(*id);
                }
            }
        }
        corrupt
    }

    /// Checks `image`'s root, if it is built: returns its directory and the
    /// damaged directories to replace when it must be built again.
    fn check_root(
        &self,
        image: &Image,
        opts: &CheckOptions,
        corrupt: &BTreeSet<ObjectId>,
        chains_seen: &mut HashSet<String>,
        report: &mut DerivedReport,
    ) -> Option<(PathBuf, Vec<PathBuf>)> {
        let dir = self.image_dir(image.digest());
        let name = dir_name(&dir);
        if !dir.join("info.json").exists() {
            return None;
        }
        report.roots_checked += 1;
        let format = self.read_info(&dir).ok().flatten().map(|i| i.format);
        if format.is_some_and(|f| f != ROOT_FORMAT) {
            report.bad_roots.push((
                name,
                "built by an older cairn: its files show the mtime of the first layer that \
                 stored their content; it is built again when next used (or by a repair)"
                    .into(),
            ));
            let damaged = self.root_dirs(image);
            return Some((dir, damaged));
        }
        let layers = match self.layers_of(image) {
            Ok(l) => l,
            Err(e) => {
                report
                    .bad_roots
                    .push((name, format!("its layers cannot be read: {e}")));
                return Some((dir, Vec::new()));
            }
        };
        let uses_corrupt = layers
            .iter()
            .flat_map(|l| l.objects())
            .find(|o| corrupt.contains(o));
        if let Some(o) = uses_corrupt {
            report
                .bad_roots
                .push((name, format!("links corrupt object {}", o.hex())));
            let damaged = self.root_dirs(image);
            return Some((dir, damaged));
        }
        let info = self.read_info(&dir).ok().flatten().unwrap_or_default();
        if info.chains.is_empty() {
            let plan = match Plan::from_layers(&layers) {
                Ok(p) => p,
                Err(e) => {
                    report.bad_roots.push((name, format!("no plan: {e}")));
                    return None;
                }
            };
            let rootfs = dir.join("rootfs");
            let (checked, diff) = self.compare_root(&plan, &rootfs, opts.full);
            report.entries_checked += checked;
            let why = diff?;
            report.bad_roots.push((name, why));
            return Some((dir, vec![rootfs]));
        }
        let damaged = self.check_chains(&layers, &info.chains, opts.full, chains_seen, report);
        let (chain, why) = damaged.first()?;
        report
            .bad_roots
            .push((name, format!("layer directory chains/{chain}: {why}")));
        let dirs = damaged
            .iter()
            .map(|(c, _)| self.chains_dir().join(c).join("diff"))
            .collect();
        Some((dir, dirs))
    }

    /// Compares each layer directory of a stacked root with its layer's
    /// diff, once however many images stack it. Returns the damaged ones,
    /// with why.
    fn check_chains(
        &self,
        layers: &[Changeset],
        chains: &[String],
        full: bool,
        chains_seen: &mut HashSet<String>,
        report: &mut DerivedReport,
    ) -> Vec<(String, String)> {
        let mut plan = Plan::new();
        let mut damaged = Vec::new();
        for (cs, chain) in layers.iter().zip(chains) {
            let below = (!chains_seen.contains(chain)).then(|| plan.clone());
            if let Err(e) = plan.apply(cs) {
                damaged.push((chain.clone(), format!("no plan: {e}")));
                break;
            }
            let Some(below) = below else { continue };
            chains_seen.insert(chain.clone());
            let diff_dir = self.chains_dir().join(chain).join("diff");
            let (checked, diff) = self.compare_root(&plan.diff(&below), &diff_dir, full);
            report.entries_checked += checked;
            if let Some(why) = diff {
                damaged.push((chain.clone(), why));
            } else if !self.saved_plan_is(chain, &plan) {
                // What a sibling's layer would be planned over.
                damaged.push((
                    chain.clone(),
                    "its saved plan is torn or is not its layers' plan".into(),
                ));
            }
        }
        damaged
    }

    /// Removes corrupt objects with the changesets that name them, the
    /// changesets that do not parse, and the damaged roots about to be
    /// built again with their damaged layer directories, under the objects
    /// lock.
    fn remove_damaged(
        &self,
        corrupt: &BTreeSet<ObjectId>,
        users: &BTreeMap<ObjectId, BTreeSet<String>>,
        bad_changesets: &[String],
        to_rebuild: &[Rebuild<'_>],
    ) -> Result<(), Error> {
        let layers = self.store.dir(StoreDir::Layers);
        let _objects_lock = self.objects_lock(LockMode::Exclusive)?;
        for id in corrupt {
            let _ = fs::remove_file(self.objects.path(id));
            for cs in users.get(id).into_iter().flatten() {
                let _ = fs::remove_file(layers.join(cs));
            }
        }
        for name in bad_changesets {
            let _ = fs::remove_file(layers.join(name));
        }
        for r in to_rebuild {
            // A layer directory `…/chains/<name>/diff` goes with its chain.
            for d in &r.damaged {
                let gone = if d.ends_with("diff") {
                    d.parent().unwrap_or(d)
                } else {
                    d
                };
                match remove_tree(gone) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(e).io_context("remove damaged layer directory", gone)?;
                    }
                    _ => {}
                }
            }
            remove_tree(&r.dir).io_context("remove image root", &r.dir)?;
        }
        Ok(())
    }

    /// Whether chain `name`'s saved plan is `plan`, or it has none (one
    /// of an older version counts as none: it is not read).
    fn saved_plan_is(&self, name: &str, plan: &Plan) -> bool {
        let path = self.chains_dir().join(name).join("plan");
        match fs::read(path) {
            Err(e) => e.kind() == io::ErrorKind::NotFound,
            Ok(b) if !b.starts_with(PLAN_MAGIC) && b.starts_with(b"cairn-plan-") => true,
            Ok(b) => parse_plan(&b).as_ref() == Some(plan),
        }
    }

    /// The directories of `image`'s root: every layer directory, or its
    /// `rootfs`.
    fn root_dirs(&self, image: &cairn_store::Image) -> Vec<std::path::PathBuf> {
        let dir = self.image_dir(image.digest());
        match self.read_info(&dir).ok().flatten() {
            Some(info) if !info.chains.is_empty() => info
                .chains
                .iter()
                .map(|c| self.chains_dir().join(c).join("diff"))
                .collect(),
            _ => vec![dir.join("rootfs")],
        }
    }

    /// Compares `rootfs` with `plan`: every entry with `full`, else an even
    /// sample of about 256. Returns entries compared and the first difference.
    fn compare_root(&self, plan: &Plan, rootfs: &Path, full: bool) -> (usize, Option<String>) {
        let mut total = 0usize;
        plan.walk(|_, _| total += 1);
        let stride = if full { 1 } else { (total / 256).max(1) };
        let mut i = 0usize;
        let mut checked = 0usize;
        let mut diff = None;
        let owners = self.objects.ownership() == Ownership::Apply;
        plan.walk(|path, node| {
            i += 1;
            if diff.is_some() || !(i - 1).is_multiple_of(stride) || path.is_root() {
                return;
            }
            checked += 1;
            let rel = std::path::PathBuf::from(std::ffi::OsString::from_vec(path.to_bytes()));
            let p = rootfs.join(&rel);
            let shown = rel.display().to_string();
            let meta = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                // A device node skipped (rootless, before whiteouts stood in).
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && matches!(node.kind, NodeKind::Device { .. }) =>
                {
                    return
                }
                Err(e) => {
                    diff = Some(format!("/{shown}: {e}"));
                    return;
                }
            };
            let ft = meta.file_type();
            if let NodeKind::Device { .. } = node.kind {
                // Image roots never hold a layer's device nodes: a whiteout
                // stands in its place (or, rootless, nothing).
                if !(ft.is_char_device() && meta.rdev() == 0) {
                    diff = Some(format!(
                        "/{shown}: a device node of the image in its root (image roots hold none)"
                    ));
                }
                return;
            }
            let (want_meta, ok_type) = match &node.kind {
                NodeKind::Dir { meta: m, .. } => (Some(m), ft.is_dir()),
                NodeKind::File {
                    meta: m,
                    object,
                    size,
                    ..
                } => {
                    let same_inode = fs::metadata(self.objects.path(object))
                        .map(|o| o.ino() == meta.ino() && o.dev() == meta.dev())
                        .unwrap_or(false);
                    if ft.is_file() && (meta.len() != *size || !same_inode) {
                        diff = Some(format!(
                            "/{shown}: not the object {} of {size} bytes",
                            object.hex()
                        ));
                        return;
                    }
                    (Some(m), ft.is_file())
                }
                NodeKind::Symlink { target, .. } => {
                    let ok = fs::read_link(&p)
                        .map(|t| t.as_os_str().as_encoded_bytes() == target.as_slice())
                        .unwrap_or(false);
                    (None, ft.is_symlink() && ok)
                }
                NodeKind::Device { .. } => unreachable!("handled above"),
                NodeKind::Fifo(m) => (Some(m), ft.is_fifo()),
                NodeKind::Whiteout => (None, ft.is_char_device() && meta.rdev() == 0),
            };
            if !ok_type {
                diff = Some(format!("/{shown}: wrong type or link target"));
                return;
            }
            if let Some(m) = want_meta {
                if meta.mode() & 0o7777 != m.mode & 0o7777 {
                    diff = Some(format!(
                        "/{shown}: mode {:o}, the plan says {:o}",
                        meta.mode() & 0o7777,
                        m.mode & 0o7777
                    ));
                } else if owners && (meta.uid() != m.uid || meta.gid() != m.gid) {
                    diff = Some(format!(
                        "/{shown}: owner {}:{}, the plan says {}:{}",
                        meta.uid(),
                        meta.gid(),
                        m.uid,
                        m.gid
                    ));
                }
            }
        });
        (checked, diff)
    }
}

/// What the changesets say of the objects they name.
#[derive(Default)]
struct NamedObjects {
    /// The metadata each object must have.
    expected: HashMap<ObjectId, Meta>,
    /// The changesets (`layers/` file names) naming each object.
    users: BTreeMap<ObjectId, BTreeSet<String>>,
}

/// An image root a repair builds again.
struct Rebuild<'i> {
    /// The root's directory.
    dir: PathBuf,
    image: &'i Image,
    /// Its damaged directories (its `rootfs`, or layer directories'
    /// `diff`), replaced with it.
    damaged: Vec<PathBuf>,
}

/// The last component of `dir`, as reports name roots.
fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Why an object failed its check.
enum Problem {
    Missing,
    Bad(String),
}

/// Hashes an object and compares id and on-disk metadata; returns its size.
fn verify_object(
    path: &Path,
    id: &ObjectId,
    meta: &Meta,
    ownership: Ownership,
    buf: &mut [u8],
) -> Result<u64, Problem> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Problem::Missing),
        Err(e) => return Err(Problem::Bad(format!("cannot open: {e}"))),
    };
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) => return Err(Problem::Bad(format!("cannot read: {e}"))),
        }
    }
    if object_id(h.finalize().as_bytes(), meta) != *id {
        return Err(Problem::Bad("content does not match its id".into()));
    }
    let st = f
        .metadata()
        .map_err(|e| Problem::Bad(format!("cannot stat: {e}")))?;
    if st.mode() & 0o7777 != meta.mode & 0o7777 {
        return Err(Problem::Bad(format!(
            "mode {:o}, expected {:o}",
            st.mode() & 0o7777,
            meta.mode & 0o7777
        )));
    }
    if ownership == Ownership::Apply && (st.uid() != meta.uid || st.gid() != meta.gid) {
        return Err(Problem::Bad(format!(
            "owner {}:{}, expected {}:{}",
            st.uid(),
            st.gid(),
            meta.uid,
            meta.gid
        )));
    }
    Ok(n)
}
