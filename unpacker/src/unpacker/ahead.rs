//! Planning ahead: while an image's new layers download, the layers it
//! shares with images pulled before are planned in a background thread
//! (from a saved plan where one is), so the image root then applies only
//! the new ones.

use cairn_store::{Digest, Image};

use super::chain::load_plan;
use super::Unpacker;
use crate::changeset::Changeset;
use crate::plan::Plan;

/// [`Unpacker::prepare`]'s state.
#[derive(Debug, Default)]
pub(super) struct Ahead {
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
pub(super) struct Prepared {
    blobs: Vec<Digest>,
    pub(super) layers: Vec<(Changeset, Digest)>,
    pub(super) saved: usize,
    pub(super) plan: Plan,
    pub(super) spare: Option<Plan>,
}

impl Unpacker {
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
    pub(super) fn plan_cached(&self, blobs: Vec<Digest>, saved_only: bool) -> Option<Prepared> {
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
    pub(super) fn take_prepared(&self, image: &Image) -> Option<Prepared> {
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
}
