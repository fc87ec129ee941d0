//! `pull`: resolve a reference to one platform's image and fetch what the
//! store lacks, in parallel, verified, resumable; record the ref last.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_store::images::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use cairn_store::media::{
    host_platform, Descriptor, ImageConfig, Index, Manifest, ManifestError, ManifestKind, Platform,
};
pub use cairn_store::progress::{BlobKind, PullProgress, Pulled, Silent};
use cairn_store::{BlobWriter, Digest, LockMode, Name, Pin, Put, Reference, Store};

use crate::client::{RegistryClient, RegistryOptions};
use crate::error::{Error, RegistryError};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Registry access.
    pub registry: RegistryOptions,
    /// Platform to pick from an index (default: this host's).
    pub platform: Option<Platform>,
    /// Blobs downloaded at once.
    pub jobs: usize,
}

impl PullOptions {
    /// containers/image's default number of parallel blob copies.
    pub const DEFAULT_JOBS: usize = 6;
}

/// Pulls `name`: a fully qualified reference directly; a short name from
/// each search registry in turn until one has it.
pub async fn pull_name(
    store: &Store,
    name: &str,
    opts: &PullOptions,
    progress: Arc<dyn PullProgress>,
) -> Result<Pulled, Error> {
    let parsed = Name::parse(name)?;
    if !parsed.is_short() {
        return pull(store, &parsed.qualify("")?, opts, progress).await;
    }
    let search = &opts.registry.conf.search;
    if search.is_empty() {
        return Err(Error::Registry {
            reference: name.to_owned(),
            kind: RegistryError::Other(
                "short name and no unqualified-search-registries in registries.conf: use a fully qualified name such as docker.io/library/debian".into(),
            ),
        });
    }
    let mut tried = Vec::new();
    for registry in search {
        let reference = parsed.qualify(registry)?;
        match pull(store, &reference, opts, progress.clone()).await {
            Ok(p) => return Ok(p),
            Err(e @ Error::Registry { .. }) if search.len() > 1 => tried.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Err(Error::Registry {
        reference: name.to_owned(),
        kind: RegistryError::Other(format!(
            "not found in any search registry: {}",
            tried.join("; ")
        )),
    })
}

/// Pulls one fully qualified reference.
pub async fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: Arc<dyn PullProgress>,
) -> Result<Pulled, Error> {
    // No store-wide lock across the download: the blobs are pinned.
    let pin = tokio::task::block_in_place(|| store.pin())?;
    let new_blobs = Arc::new(Mutex::new(Vec::new()));
    let job = Pulling {
        store,
        reference,
        opts,
        progress,
        new_blobs: new_blobs.clone(),
        pin: &pin,
    };
    let result = pull_pinned(job)
        .await
        .map_err(|e| e.for_image(&reference.to_string()));
    drop(pin);
    if result.is_err() {
        let added = std::mem::take(&mut *new_blobs.lock().expect("not poisoned"));
        discard_unreferenced(store, &added);
    }
    result
}

/// One pull of one reference, its blobs pinned by `pin`: the steps from
/// the registry's manifest to the ref.
struct Pulling<'a> {
    store: &'a Store,
    reference: &'a Reference,
    opts: &'a PullOptions,
    progress: Arc<dyn PullProgress>,
    /// Blobs this pull stored, for the cleanup of a failed one.
    new_blobs: Arc<Mutex<Vec<Digest>>>,
    pin: &'a Pin,
}

/// The image a reference resolved to.
struct Resolved {
    /// The platform manifest's descriptor, as the ref will record it.
    desc: Descriptor,
    manifest: Manifest,
    /// The index the manifest was chosen from, if there was one.
    index_digest: Option<Digest>,
    /// Manifests fetched from the registry, to store beside the blobs.
    fetched: Vec<(Bytes, Digest)>,
}

/// Resolves the reference to a manifest, pins and fetches what the store
/// lacks, checks the config and writes the ref, in that order.
async fn pull_pinned(job: Pulling<'_>) -> Result<Pulled, Error> {
    job.progress.trying(job.reference);
    let client = Arc::new(job.connect().await?);
    let resolved = job.resolve(&client).await?;
    let manifest = &resolved.manifest;
    // The config is downloaded as a blob, capped at its declared size:
    // refuse a size the store would not read back before fetching a byte.
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(job.malformed(format!(
            "the config {} declares {} bytes, more than the {MAX_CONFIG_SIZE} cairn reads",
            manifest.config.digest, manifest.config.size
        )));
    }
    let mut wanted = vec![&manifest.config.digest];
    wanted.extend(manifest.layers.iter().map(|l| &l.digest));
    job.pin_now(&wanted)?;
    job.progress.manifest(manifest);
    let (blobs_fetched, bytes_fetched) = job.fetch(&client, &resolved).await?;
    let config = job.checked_config(manifest)?;
    job.progress.writing_manifest();
    job.record_ref(resolved, &config, blobs_fetched, bytes_fetched)
}

impl Pulling<'_> {
    /// Sets up the registry connection, retries reported as progress.
    async fn connect(&self) -> Result<RegistryClient, Error> {
        let p = self.progress.clone();
        RegistryClient::connect(
            self.reference,
            &self.opts.registry,
            Box::new(move |what, attempt, delay| p.retrying(what, attempt, delay)),
        )
        .await
    }

    /// Pins blobs before the store is asked whether it has them (see
    /// [`cairn_store::pin`]).
    fn pin_now(&self, digests: &[&Digest]) -> Result<(), Error> {
        tokio::task::block_in_place(|| self.pin.add(digests.iter().copied()))?;
        Ok(())
    }

    fn manifest_error(&self, source: ManifestError) -> Error {
        cairn_store::Error::Manifest {
            reference: self.reference.to_string(),
            source,
        }
        .into()
    }

    fn malformed(&self, why: String) -> Error {
        self.manifest_error(ManifestError::Malformed(why))
    }

    fn platform(&self) -> Platform {
        self.opts.platform.clone().unwrap_or_else(host_platform)
    }

    /// Fetches the reference's manifest; for an index, the entry for the
    /// wanted platform and its manifest (from the store if it has it).
    async fn resolve(&self, client: &RegistryClient) -> Result<Resolved, Error> {
        let (bytes, digest) = client.manifest(self.reference).await?;
        let kind = ManifestKind::parse(&bytes, None).map_err(|e| self.manifest_error(e))?;
        match kind {
            ManifestKind::Image(manifest) => {
                manifest
                    .check_runnable()
                    .map_err(|e| self.manifest_error(e))?;
                self.pin_now(&[&digest])?;
                let desc = Descriptor::new(
                    manifest.effective_media_type(),
                    digest.clone(),
                    bytes.len() as u64,
                );
                Ok(Resolved {
                    desc,
                    manifest,
                    index_digest: None,
                    fetched: vec![(bytes, digest)],
                })
            }
            ManifestKind::Index(index) => self.resolve_index(client, &index, bytes, digest).await,
        }
    }

    /// The platform's manifest of an index (`bytes`, `digest`).
    async fn resolve_index(
        &self,
        client: &RegistryClient,
        index: &Index,
        bytes: Bytes,
        digest: Digest,
    ) -> Result<Resolved, Error> {
        let entry = self.select(index)?;
        self.pin_now(&[&digest, &entry.digest])?;
        let mut fetched = vec![(bytes, digest.clone())];
        if entry.size > MAX_MANIFEST_SIZE {
            return Err(self.malformed(format!(
                "the index entry {} declares {} bytes, more than the {MAX_MANIFEST_SIZE} a manifest may have",
                entry.digest, entry.size
            )));
        }
        let mbytes = if self.store.has_blob(&entry.digest) {
            self.store.read_blob(&entry.digest, MAX_MANIFEST_SIZE)?
        } else {
            let (b, _) = client
                .manifest(&self.reference.with_digest(entry.digest.clone()))
                .await?;
            if b.len() as u64 != entry.size {
                return Err(cairn_store::Error::SizeMismatch {
                    what: format!("manifest of {}", self.reference),
                    digest: entry.digest.clone(),
                    expected: entry.size,
                    got: b.len() as u64,
                }
                .into());
            }
            fetched.push((b.clone(), entry.digest.clone()));
            b.to_vec()
        };
        let manifest =
            match ManifestKind::parse(&mbytes, None).map_err(|e| self.manifest_error(e))? {
                ManifestKind::Image(m) => m,
                ManifestKind::Index(_) => {
                    return Err(self.malformed("an index entry points at another index".into()))
                }
            };
        manifest
            .check_runnable()
            .map_err(|e| self.manifest_error(e))?;
        let mut desc = entry;
        if desc.media_type.is_empty() {
            desc.media_type = manifest.effective_media_type().to_owned();
        }
        desc.annotations.clear();
        Ok(Resolved {
            desc,
            manifest,
            index_digest: Some(digest),
            fetched,
        })
    }

    /// The index entry for the wanted platform.
    fn select(&self, index: &Index) -> Result<Descriptor, Error> {
        let want = self.platform();
        let entry = index
            .select(&want)
            .ok_or_else(|| cairn_store::Error::NoPlatform {
                reference: self.reference.to_string(),
                want: want.to_string(),
                offered: {
                    let p = index.platforms();
                    if p.is_empty() {
                        "nothing".into()
                    } else {
                        p.join(", ")
                    }
                },
            })?;
        Ok(entry.clone())
    }

    /// Stores the fetched manifests (an fsync each) while the blobs
    /// download: only the ref, written last, needs them. Returns the blobs
    /// and bytes downloaded.
    async fn fetch(
        &self,
        client: &Arc<RegistryClient>,
        resolved: &Resolved,
    ) -> Result<(usize, u64), Error> {
        let puts: Vec<_> = resolved
            .fetched
            .iter()
            .cloned()
            .map(|(bytes, digest)| {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    store
                        .put_blob_bytes(&bytes, Some(&digest))
                        .map(|(_, put)| (digest, put))
                })
            })
            .collect();
        let fetched = fetch_blobs(
            self.store,
            client,
            &resolved.manifest,
            self.opts.jobs,
            &self.progress,
            &self.new_blobs,
        )
        .await;
        // Every put awaited, whatever failed, so a failed pull's cleanup sees
        // what they stored.
        let mut put_error = None;
        for put in puts {
            match put.await {
                Ok(Ok((d, put))) => {
                    if put == Put::Stored {
                        self.new_blobs.lock().expect("not poisoned").push(d);
                    }
                }
                Ok(Err(e)) => {
                    put_error.get_or_insert(e);
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        let fetched = fetched?;
        match put_error {
            Some(e) => Err(e.into()),
            None => Ok(fetched),
        }
    }

    /// The stored config, checked against the manifest; a platform other
    /// than the wanted one is only warned about.
    fn checked_config(&self, manifest: &Manifest) -> Result<ImageConfig, Error> {
        let (config, _) = self.store.config(&manifest.config.digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(self.malformed(format!(
                "the config lists {} layer diff ids, the manifest {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let want = self.platform();
        if (!config.os.is_empty() && config.os != want.os)
            || (!config.architecture.is_empty() && config.architecture != want.architecture)
        {
            self.progress.warning(&format!(
                "image platform ({}/{}) does not match the expected platform ({want})",
                config.os, config.architecture
            ));
        }
        Ok(config)
    }

    /// Writes the ref (its platform from the config where the registry
    /// gave none), holding the image's use lock from before.
    fn record_ref(
        &self,
        resolved: Resolved,
        config: &ImageConfig,
        blobs_fetched: usize,
        bytes_fetched: u64,
    ) -> Result<Pulled, Error> {
        let Resolved {
            mut desc,
            manifest,
            index_digest,
            ..
        } = resolved;
        if desc.platform.is_none() && !config.os.is_empty() {
            desc.platform = Some(Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                os_version: None,
            });
        }
        let in_use = tokio::task::block_in_place(|| {
            self.store.lock_image_use(&desc.digest, LockMode::Shared)
        })?;
        self.store
            .set_ref(self.reference, &desc, index_digest.as_ref())?;
        Ok(Pulled {
            reference: self.reference.clone(),
            image_id: manifest.config.digest.clone(),
            manifest_digest: desc.digest,
            blobs_fetched,
            bytes_fetched,
            in_use: Arc::new(in_use),
        })
    }
}

/// Downloads the config and the layers the store lacks, `jobs` at a time.
/// The first failure cancels the rest (their partial files are removed).
async fn fetch_blobs(
    store: &Store,
    client: &Arc<RegistryClient>,
    manifest: &Manifest,
    jobs: usize,
    progress: &Arc<dyn PullProgress>,
    new_blobs: &Arc<Mutex<Vec<Digest>>>,
) -> Result<(usize, u64), Error> {
    let mut seen = BTreeSet::new();
    let mut todo = Vec::new();
    for (desc, kind) in std::iter::once((&manifest.config, BlobKind::Config))
        .chain(manifest.layers.iter().map(|l| (l, BlobKind::Layer)))
    {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        if store.has_blob(&desc.digest) {
            progress.blob_skipped(desc, kind);
        } else {
            todo.push((desc.clone(), kind));
        }
    }
    // The config first (small, and the image needs it), then the largest
    // layers: they take longest to fetch and to decode, and a decoder
    // following the downloads takes them in the order they start.
    todo.sort_by_key(|(d, k)| (*k != BlobKind::Config, std::cmp::Reverse(d.size)));
    // One task per blob, so downloads, hashing and fsyncs run on every
    // worker thread and one blob's fsync does not stall the others.
    let limit = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (desc, kind) in todo {
        let (store, client, progress, new_blobs, limit) = (
            store.clone(),
            client.clone(),
            progress.clone(),
            new_blobs.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            fetch_one(&store, &client, desc, kind, &progress, &new_blobs).await
        });
    }
    let (mut count, mut bytes) = (0, 0);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let result = match joined {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match result {
            Ok(Some(n)) => {
                count += 1;
                bytes += n;
            }
            Ok(None) => {}
            Err(e) => {
                // Stop the others and wait until they have: a commit in
                // progress finishes and is recorded before the caller cleans up.
                if failure.is_none() {
                    failure = Some(e);
                    tasks.abort_all();
                }
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((count, bytes)),
    }
}

/// One blob: lock it (another process may be fetching it: then wait and
/// use its result), resume a partial left by a killed pull, download,
/// verify, commit. Returns the bytes fetched, `None` if someone else stored it.
async fn fetch_one(
    store: &Store,
    client: &RegistryClient,
    desc: Descriptor,
    kind: BlobKind,
    progress: &Arc<dyn PullProgress>,
    new_blobs: &Arc<Mutex<Vec<Digest>>>,
) -> Result<Option<u64>, Error> {
    // Blocking calls run in place (block_in_place), not on another thread:
    // an aborted download task then never has a commit still running behind
    // its back, so the pull's cleanup knows every blob it stored.
    let lock = tokio::task::block_in_place(|| store.lock_blob(&desc.digest))?;
    if lock.is_stored() {
        progress.blob_skipped(&desc, kind);
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let mut writer = lock.writer(Some(desc.size), true)?;
    let resumed = writer.written();
    progress.blob_started(&desc, kind, resumed);
    offer_stream(progress, &desc, kind, &mut writer);
    let digest = desc.digest.clone();
    let report = |n: u64| progress.blob_progress(&digest, n);
    client.blob(&desc, &mut writer, &report).await?;
    let put = match tokio::task::block_in_place(|| writer.commit()) {
        Err(cairn_store::Error::DigestMismatch { .. }) if resumed > 0 => {
            // The kept partial was bad (say, a crash before its data reached
            // the disk): fetch the whole blob once more.
            let mut writer = lock.writer(Some(desc.size), false)?;
            progress.blob_started(&desc, kind, 0);
            offer_stream(progress, &desc, kind, &mut writer);
            client.blob(&desc, &mut writer, &report).await?;
            tokio::task::block_in_place(|| writer.commit())?
        }
        other => other?,
    };
    drop(lock);
    if put == Put::Stored {
        new_blobs
            .lock()
            .expect("not poisoned")
            .push(desc.digest.clone());
    }
    tracing::debug!(
        "{}: {} bytes fetched, verified and stored in {:?}",
        desc.digest,
        desc.size - resumed,
        started.elapsed()
    );
    progress.blob_done(&desc, kind);
    Ok(Some(desc.size - resumed))
}

/// Hands the download to whoever reads blobs as they arrive (the pull's
/// decoder). A stream that cannot be opened only costs that overlap.
fn offer_stream(
    progress: &Arc<dyn PullProgress>,
    desc: &Descriptor,
    kind: BlobKind,
    writer: &mut BlobWriter,
) {
    if progress.wants_stream(desc, kind) {
        match writer.stream() {
            Ok(stream) => progress.blob_stream(desc, kind, stream),
            Err(e) => tracing::debug!("{}: not read while downloading: {e}", desc.digest),
        }
    }
}

/// After a failed pull: delete the blobs it added that no ref uses, if no
/// other writer is running (else `prune` gets them later).
fn discard_unreferenced(store: &Store, added: &[Digest]) {
    if added.is_empty() {
        return;
    }
    let Ok(Some(_gc)) = store.try_gc_lock(LockMode::Exclusive) else {
        return;
    };
    let Ok(live) = store.live_blobs() else { return };
    for d in added {
        if !live.contains(d) {
            let _ = store.remove_blob(d);
        }
    }
}
