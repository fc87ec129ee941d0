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
pub(super) struct ChainBuilder<'u> {
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
    pub(super) fn new(
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
    pub(super) fn add(&mut self, k: usize, layers: &[Changeset], name: &str) -> Result<(), Error> {
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
    pub(super) fn finish(mut self, chains: &[String]) -> (RootInfo, Vec<LockGuard>, Stats) {
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

/// Writes a chain's plan (into its temp directory, renamed with it).
fn save_plan(path: &Path, plan: &Plan) -> Result<(), Error> {
    let body = postcard::to_stdvec(plan).expect("plans serialize");
    let mut bytes = Vec::with_capacity(PLAN_MAGIC.len() + 32 + body.len());
    bytes.extend_from_slice(PLAN_MAGIC);
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    fs::write(path, bytes)
        .io_context("write", path)
        .map_err(Error::from)
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
