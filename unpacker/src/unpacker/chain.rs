//! Layer directories, `chains/<chain id>[-<map>]-v3/`: one layer's changes
//! over the layers below it (an overlayfs lower directory), named by the
//! OCI chain id so images sharing their lower layers share them, with the
//! plan of the layer and those below saved beside it.

use std::fs;
use std::path::{Path, PathBuf};

use cairn_fsutil::IoContext as _;
use cairn_store::{Digest, Image, LockGuard, LockMode, StoreDir};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::dirs::{remove_tree, sweep_temps};
use super::root::{RootInfo, ROOT_FORMAT};
use super::Unpacker;
use crate::changeset::Changeset;
use crate::error::Error;
use crate::materialize::{materialize, Devices, MaterializeOptions, Mode, Stats};
use crate::plan::Plan;

/// `chains/<name>/plan`: the plan of that layer and every layer below it
/// (postcard, after its BLAKE3), so an image that adds layers over it (a
/// sibling) plans only its own. A chain id names the layers, not the
/// planner that read them: bump the version whenever what a plan holds or
/// means changes, and older plans are planned again.
pub(super) const PLAN_MAGIC: &[u8] = b"cairn-plan-v2\n";

/// Ends every layer directory's name: the object key version its files
/// link to. Layer directories of an older key are never stacked again (a
/// root built again names new ones), so a collection removes them.
const CHAIN_SUFFIX: &str = "-v3";

/// `chains/<name>/info.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ChainInfo {
    #[serde(default)]
    skipped_devices: Vec<String>,
}

impl Unpacker {
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

    pub(super) fn chain_names_of(&self, diff_ids: &[Digest]) -> Vec<String> {
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
}

/// Builds the missing layer directories of an image root, lowest first,
/// each from its layer's plan diffed with the plan below it, and holds
/// every chain's lock (shared) until dropped.
///
/// Planning is done in order, in the caller's thread; writing a layer's
/// directory (the diff materialized, its plan saved) runs in a thread of
/// `scope`, so it overlaps with the decoding of the layers above it and
/// with the other layers' directories. [`ChainBuilder::finish`] waits for
/// them all.
pub(super) struct ChainBuilder<'s, 'e> {
    u: &'e Unpacker,
    scope: &'s std::thread::Scope<'s, 'e>,
    /// The first `applied` layers (more than `k + 1` when planned ahead:
    /// then a lower chain that must be built after all is planned apart).
    applied: usize,
    plan: Plan,
    /// A copy of `plan` made ahead, for the next layer's diff.
    spare: Option<Plan>,
    /// The lowest layers, planned from a saved plan: no changesets.
    saved: usize,
    /// Every layer's directory, lowest first: there already, or being
    /// written.
    chains: Vec<Chain<'s>>,
}

/// A layer directory of [`ChainBuilder`]: its lock and what its writer
/// found (the devices it skipped, what it wrote when it wrote it).
type Built = (LockGuard, Vec<String>, Option<Stats>);

enum Chain<'s> {
    Done(Result<Built, Error>),
    Building(std::thread::ScopedJoinHandle<'s, Result<Built, Error>>),
}

impl Chain<'_> {
    /// Waits for its writer, if it has one still running.
    fn join(self) -> Result<Built, Error> {
        match self {
            Chain::Done(r) => r,
            Chain::Building(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        }
    }
}

impl<'s, 'e> ChainBuilder<'s, 'e> {
    pub(super) fn new(
        u: &'e Unpacker,
        scope: &'s std::thread::Scope<'s, 'e>,
        start: Option<(usize, Plan, Option<Plan>)>,
        saved: usize,
    ) -> ChainBuilder<'s, 'e> {
        let (applied, plan, spare) = start.unwrap_or((0, Plan::new(), None));
        ChainBuilder {
            u,
            scope,
            applied,
            plan,
            spare,
            saved,
            chains: Vec::new(),
        }
    }

    /// Layer `k` (the last of `layers`): its directory `name` is there,
    /// or being written, when this returns; there and locked after
    /// [`ChainBuilder::finish`].
    pub(super) fn add(&mut self, k: usize, layers: &[Changeset], name: &str) -> Result<(), Error> {
        let path = self.u.chains_dir().join(name);
        let present = path.exists();
        let mut below = None;
        if self.applied == k {
            // The copy made ahead is of the plan as it is now only here.
            // Kept only for a directory to build: while a copy is held,
            // applying the layer copies every directory it changes.
            let spare = self.spare.take();
            if !present {
                below = Some(spare.unwrap_or_else(|| self.plan.clone()));
            }
            self.plan.apply(&layers[k])?;
            self.applied += 1;
        }
        if present {
            let shared = self.u.lock_in(&chain_lock(name), LockMode::Shared)?;
            if path.exists() {
                let skipped = skipped_devices(&path);
                self.chains.push(Chain::Done(Ok((shared, skipped, None))));
                return Ok(());
            }
            // Removed since we looked (a collection): built below.
        }
        // This layer's plan (with those below) and its diff. Planning it
        // apart needs the changesets below, which a saved plan replaced:
        // the root builder saw every directory under the new layers there
        // and locked them, so only a hand removed this one.
        let removed = || Error::Corrupt {
            layer: name.to_owned(),
            detail: "its layer directory was removed while the image root was built; pull again"
                .into(),
        };
        let (plan, diff) = if self.applied == k + 1 {
            let below = match below.take() {
                Some(b) => b,
                None if self.saved == 0 => Plan::from_layers(&layers[..k])?,
                None => return Err(removed()),
            };
            (plan_bytes(&self.plan), self.plan.diff(&below))
        } else if self.saved > 0 {
            return Err(removed());
        } else {
            let plan = Plan::from_layers(&layers[..=k])?;
            let diff = plan.diff(&Plan::from_layers(&layers[..k])?);
            (plan_bytes(&plan), diff)
        };
        // At most as many writers as cores at once (an image root built
        // again from cached changesets plans every layer at once): the
        // oldest is waited for first.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        loop {
            let mut running =
                (0..self.chains.len()).filter(|&i| matches!(self.chains[i], Chain::Building(_)));
            let (Some(oldest), true) = (running.next(), running.count() + 1 >= cores) else {
                break;
            };
            let done = self.chains.remove(oldest).join();
            self.chains.insert(oldest, Chain::Done(done));
        }
        let (u, name) = (self.u, name.to_owned());
        let writer = std::thread::Builder::new()
            .name("cairn-chain".into())
            .spawn_scoped(self.scope, move || write_chain(u, k, &name, &diff, &plan))
            .io_context("start a thread to write layer directory", &path)?;
        self.chains.push(Chain::Building(writer));
        Ok(())
    }

    /// Waits for every layer directory: the root's info, the chains' locks
    /// and what was written.
    pub(super) fn finish(
        self,
        chains: &[String],
    ) -> Result<(RootInfo, Vec<LockGuard>, Stats), Error> {
        let mut guards = Vec::with_capacity(self.chains.len());
        let mut skipped = Vec::new();
        let mut stats = Stats::default();
        let mut failed = None;
        for c in self.chains {
            match c.join() {
                Ok((guard, s, st)) => {
                    guards.push(guard);
                    skipped.extend(s);
                    if let Some(st) = st {
                        stats.dirs += st.dirs;
                        stats.linked += st.linked;
                        stats.copied += st.copied;
                        stats.symlinks += st.symlinks;
                        stats.specials += st.specials;
                        stats.whiteouts += st.whiteouts;
                    }
                }
                // The first (lowest) failure is reported; every writer is
                // waited for first.
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        skipped.sort();
        skipped.dedup();
        let info = RootInfo {
            format: ROOT_FORMAT,
            size: self.plan.content_bytes(),
            skipped_devices: skipped,
            chains: chains.to_vec(),
        };
        Ok((info, guards, stats))
    }
}

fn chain_lock(name: &str) -> String {
    format!("chain-{name}")
}

/// The devices a layer directory's writer skipped (its `info.json`).
fn skipped_devices(path: &Path) -> Vec<String> {
    fs::read(path.join("info.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<ChainInfo>(&b).ok())
        .unwrap_or_default()
        .skipped_devices
}

/// Writes layer `k`'s directory `name` (its `diff` materialized, `plan`
/// saved beside it) in a temp directory renamed into place, unless another
/// writer did; returns it locked (shared). Written again if it is removed
/// (a collection) before it is locked.
fn write_chain(
    u: &Unpacker,
    k: usize,
    name: &str,
    diff: &Plan,
    plan: &[u8],
) -> Result<Built, Error> {
    let chains_dir = u.chains_dir();
    let path = chains_dir.join(name);
    let lock = chain_lock(name);
    let mut wrote = None;
    loop {
        let shared = u.lock_in(&lock, LockMode::Shared)?;
        if path.exists() {
            return Ok((shared, skipped_devices(&path), wrote));
        }
        drop(shared);
        let _building = u.lock(&lock)?;
        if path.exists() {
            continue;
        }
        // Temps of this chain are a killed builder's (or a killed
        // collection's): our lock excludes live ones.
        sweep_temps(&chains_dir, &format!("{name}.tmp-"));
        let tmp = chains_dir.join(format!("{name}.tmp-{}", std::process::id()));
        let started = std::time::Instant::now();
        let built = (|| -> Result<Stats, Error> {
            let target = tmp.join("diff");
            fs::create_dir_all(&target).io_context("create", &target)?;
            let st = materialize(
                diff,
                &u.objects,
                &target,
                MaterializeOptions {
                    mode: Mode::Hardlink,
                    ownership: u.opts.ownership,
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
            let plan_path = tmp.join("plan");
            fs::write(&plan_path, plan).io_context("write", &plan_path)?;
            fs::rename(&tmp, &path).io_context("rename layer directory into place", &path)?;
            tracing::debug!(
                "layer directory {name} (layer {k}): {} linked, {} directories in {:?}, its \
                 plan saved after {:?}",
                st.linked,
                st.dirs,
                materialized,
                started.elapsed()
            );
            Ok(st)
        })();
        match built {
            Ok(st) => wrote = Some(st),
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        }
    }
}

/// A chain's plan as saved: magic, the body's BLAKE3, the body (postcard).
fn plan_bytes(plan: &Plan) -> Vec<u8> {
    let body = postcard::to_stdvec(plan).expect("plans serialize");
    let mut bytes = Vec::with_capacity(PLAN_MAGIC.len() + 32 + body.len());
    bytes.extend_from_slice(PLAN_MAGIC);
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// A chain's saved plan, if it is whole (it is written without fsync: a
/// power loss may tear it) and of this version.
pub(super) fn load_plan(path: &Path) -> Option<Plan> {
    parse_plan(&fs::read(path).ok()?)
}

pub(super) fn parse_plan(bytes: &[u8]) -> Option<Plan> {
    let (sum, body) = bytes.strip_prefix(PLAN_MAGIC)?.split_at_checked(32)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    postcard::from_bytes(body).ok()
}
