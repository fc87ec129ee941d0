//! `push`: send a stored image to a registry over the distribution API.
//!
//! Blobs first, the manifest last (PUT with its exact bytes and media
//! type), so a push that dies midway leaves no tag pointing at missing
//! blobs. Blobs the registry has (`HEAD`) are skipped; a blob the same
//! registry holds in another repository the image is known under is
//! mounted (`POST …/blobs/uploads/?mount=D&from=R`), falling back to an
//! upload when the registry answers 202. Uploads run a few at a time:
//! small blobs in one `PUT`, large ones in chunked `PATCH`es
//! (`Content-Range`) closed by `PUT ?digest=`. After a dropped connection
//! or a 5xx the upload asks the registry how much it holds (`GET` on the
//! upload URL, its `Range`) and goes on from there; a registry that forgot
//! the upload gets a new one.
//!
//! A registry that claims a blob it does not have (`HEAD` 200) is caught
//! by the manifest `PUT` (`MANIFEST_BLOB_UNKNOWN`): those blobs are then
//! uploaded without asking and the manifest sent once more.
//!
//! Nothing is written to the store except the blobs a conversion makes
//! (see [`prepare`]), each committed whole like a pulled one.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::Bytes;
use cairn_store::media::{layer_compression, types, Compression, Descriptor, Manifest};
pub use cairn_store::progress::{BlobKind, PullProgress as PushProgress};
use cairn_store::{Digest, Image, LockMode, Reference, Store};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::client::{error_codes, Failure, RegistryClient, RegistryOptions};
use crate::error::{Error, RegistryError};

/// The manifest format to push (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest and config media types.
    Oci,
    /// Docker schema 2 (`v2s2`): docker media types, gzip (or plain) layers.
    Docker,
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Registry access.
    pub registry: RegistryOptions,
    /// Blobs uploaded at once.
    pub jobs: usize,
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH`es of
    /// this size.
    pub chunk_size: u64,
    /// Convert the manifest to this format (`None`: as stored).
    pub format: Option<ManifestFormat>,
    /// Recompress layers not already in this compression
    /// (`--compression-format`).
    pub compression: Option<Compression>,
    /// Recompress layers already in [`PushOptions::compression`] too
    /// (`--force-compression`).
    pub force_compression: bool,
}

impl PushOptions {
    /// Blobs uploaded at once by default.
    pub const DEFAULT_JOBS: usize = 4;
    /// Default [`PushOptions::chunk_size`]: 16 MiB.
    pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where the manifest went.
    pub reference: Reference,
    /// The pushed manifest's digest (what `--digestfile` records).
    pub manifest_digest: Digest,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository of the registry.
    pub blobs_mounted: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// Blob bytes sent (re-sent bytes after a failure included).
    pub bytes_sent: u64,
}

/// The image as it will be pushed: manifest bytes and media type, and the
/// blobs it needs (all in the store).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The manifest, exactly as it will be sent.
    pub manifest: Bytes,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Config, then layers (no duplicates).
    pub blobs: Vec<(Descriptor, BlobKind)>,
    /// Keeps recompressed blobs (which no ref uses) from collection until
    /// the push is done.
    _pin: Arc<cairn_store::Pin>,
}

/// The layer media type for `compression` in `format`, if it has one.
fn layer_type(
    format: ManifestFormat,
    compression: Compression,
    nondist: bool,
) -> Option<&'static str> {
    use types::*;
    Some(match (format, compression, nondist) {
        (ManifestFormat::Oci, Compression::None, false) => OCI_LAYER,
        (ManifestFormat::Oci, Compression::Gzip, false) => OCI_LAYER_GZIP,
        (ManifestFormat::Oci, Compression::Zstd, false) => OCI_LAYER_ZSTD,
        (ManifestFormat::Oci, Compression::None, true) => OCI_LAYER_ND,
        (ManifestFormat::Oci, Compression::Gzip, true) => OCI_LAYER_ND_GZIP,
        (ManifestFormat::Oci, Compression::Zstd, true) => OCI_LAYER_ND_ZSTD,
        (ManifestFormat::Docker, Compression::None, false) => DOCKER_LAYER,
        (ManifestFormat::Docker, Compression::Gzip, false) => DOCKER_LAYER_GZIP,
        (ManifestFormat::Docker, Compression::Gzip, true) => DOCKER_FOREIGN_LAYER,
        (ManifestFormat::Docker, _, _) => return None,
    })
}

fn is_nondistributable(media_type: &str) -> bool {
    media_type.contains("nondistributable") || media_type == types::DOCKER_FOREIGN_LAYER
}

/// The format a manifest media type is in.
fn format_of(media_type: &str) -> ManifestFormat {
    if media_type == types::DOCKER_MANIFEST {
        ManifestFormat::Docker
    } else {
        ManifestFormat::Oci
    }
}

/// Works out what to push for `image`: the stored manifest unchanged when
/// no conversion is asked, else a manifest in `format` (same config and
/// layer blobs, media types mapped). Fails, naming the image, when a layer
/// cannot be expressed in the format (a zstd layer in `v2s2`).
pub fn prepare(store: &Store, image: &Image, opts: &PushOptions) -> Result<Prepared, Error> {
    let source_type = image.manifest.effective_media_type().to_owned();
    let source_format = format_of(&source_type);
    let format = opts.format.unwrap_or(source_format);
    let fail = |why: String| Error::Registry {
        reference: image_name(image),
        kind: RegistryError::Other(why),
    };
    if format == ManifestFormat::Docker && opts.compression == Some(Compression::Zstd) {
        return Err(fail(
            "docker schema 2 (--format v2s2) cannot carry zstd layers; use --format oci or --compression-format gzip".into(),
        ));
    }
    let mut m = image.manifest.clone();
    let mut changed = false;
    let pin = store.pin()?;
    for (i, layer) in m.layers.iter_mut().enumerate() {
        let Some(current) = layer_compression(&layer.media_type) else {
            continue;
        };
        let target = match opts.compression {
            Some(c) if c != current || opts.force_compression => Some(c),
            // Docker has no zstd layers: gzip them.
            None if format == ManifestFormat::Docker && current == Compression::Zstd => {
                Some(Compression::Gzip)
            }
            _ => None,
        };
        if let Some(target) = target {
            let diff_id = image.config.rootfs.diff_ids.get(i);
            let blob = recompress(store, &pin, layer, diff_id, current, target)?;
            layer.digest = blob.0;
            layer.size = blob.1;
            layer.media_type = layer_type(
                ManifestFormat::Oci,
                target,
                is_nondistributable(&layer.media_type),
            )
            .expect("OCI has every compression")
            .to_owned();
            changed = true;
        }
    }
    let (manifest, media_type) = if format == source_format && !changed {
        let bytes = store.read_blob(image.digest(), cairn_store::images::MAX_MANIFEST_SIZE)?;
        (Bytes::from(bytes), source_type)
    } else {
        let m = convert(&m, format).map_err(fail)?;
        let media_type = m.effective_media_type().to_owned();
        let bytes = serde_json::to_vec(&m)
            .map_err(|e| fail(format!("cannot write the converted manifest: {e}")))?;
        (Bytes::from(bytes), media_type)
    };
    let digest = Digest::sha256_of(&manifest);
    let parsed: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| fail(format!("the stored manifest does not parse: {e}")))?;
    let mut seen = BTreeSet::new();
    let blobs = std::iter::once((parsed.config.clone(), BlobKind::Config))
        .chain(parsed.layers.iter().map(|l| (l.clone(), BlobKind::Layer)))
        .filter(|(d, _)| seen.insert(d.digest.clone()))
        .collect();
    Ok(Prepared {
        manifest,
        media_type,
        digest,
        blobs,
        _pin: Arc::new(pin),
    })
}

/// Where recompressed layers are remembered, under the store's root: a
/// JSON map from `SOURCE-DIGEST>COMPRESSION` to the blob's digest and size.
/// Only a cache: an entry whose blob is gone (pruned) is made again, and
/// the compression is deterministic, so a lost entry costs time only.
const RECOMPRESSED: &str = "push-recompressed.json";

type RecompressCache = std::collections::BTreeMap<String, (Digest, u64)>;

/// The blob of `layer` (compressed with `from`) recompressed with `to`:
/// from the cache when the store still has it, else decompressed and
/// written through [`LayerWriter`] into the store (diff id unchanged:
/// checked against the source's).
fn recompress(
    store: &Store,
    pin: &cairn_store::Pin,
    layer: &Descriptor,
    diff_id: Option<&Digest>,
    from: Compression,
    to: Compression,
) -> Result<(Digest, u64), Error> {
    use cairn_store::compress::LayerWriter;
    let key = format!("{}>{}", layer.digest, compression_name(to));
    let cache_path = store.root().join(RECOMPRESSED);
    let mut cache: RecompressCache = std::fs::read(&cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some((d, size)) = cache.get(&key) {
        pin.add([d])?;
        if store.blob_size(d) == Some(*size) {
            return Ok((d.clone(), *size));
        }
    }
    let file = store.open_blob(&layer.digest)?;
    let read_error = |e: std::io::Error| {
        Error::Io(cairn_store::PathError::new(
            "decompress layer",
            store.blob_path(&layer.digest),
            e,
        ))
    };
    let mut input: Box<dyn std::io::Read> = match from {
        Compression::None => Box::new(std::io::BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(read_error)?),
    };
    let mut writer = LayerWriter::new(store, to, None)?;
    std::io::copy(&mut input, &mut writer).map_err(read_error)?;
    let blob = writer.finish()?;
    // Pinned at once: a collection running now must not take the blob no
    // ref uses before the push sends it.
    pin.add([&blob.digest])?;
    if !store.has_blob(&blob.digest) {
        return Err(Error::Registry {
            reference: layer.digest.to_string(),
            kind: RegistryError::Other(
                "the recompressed layer was removed by a concurrent prune; push again".into(),
            ),
        });
    }
    if let Some(want) = diff_id.filter(|d| **d != blob.diff_id) {
        return Err(cairn_store::Error::DigestMismatch {
            what: format!("uncompressed layer {}", layer.digest),
            expected: want.clone(),
            actual: blob.diff_id,
        }
        .into());
    }
    tracing::debug!(
        "{} recompressed as {:?}: {} ({} bytes, diff id {})",
        layer.digest,
        to,
        blob.digest,
        blob.size,
        blob.diff_id
    );
    cache.insert(key, (blob.digest.clone(), blob.size));
    if let Ok(bytes) = serde_json::to_vec(&cache) {
        // A cache: failing to write it only costs the next push time.
        let _ = cairn_fsutil::write_atomic(
            &cache_path,
            &bytes,
            0o644,
            cairn_fsutil::Durability::Volatile,
        );
    }
    Ok((blob.digest, blob.size))
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// `image`'s first name, else its id: what errors name it by.
fn image_name(image: &Image) -> String {
    image
        .names
        .first()
        .map_or_else(|| image.id().to_string(), ToString::to_string)
}

/// The manifest in `format`: media types mapped, blobs unchanged.
fn convert(m: &Manifest, format: ManifestFormat) -> Result<Manifest, String> {
    let mut out = m.clone();
    out.schema_version = 2;
    match format {
        ManifestFormat::Oci => {
            out.media_type = Some(types::OCI_MANIFEST.to_owned());
            out.config.media_type = types::OCI_CONFIG.to_owned();
        }
        ManifestFormat::Docker => {
            out.media_type = Some(types::DOCKER_MANIFEST.to_owned());
            out.config.media_type = types::DOCKER_CONFIG.to_owned();
            // Docker schema 2 has no annotations.
            out.annotations.clear();
        }
    }
    for layer in &mut out.layers {
        let compression = layer_compression(&layer.media_type).ok_or_else(|| {
            format!(
                "layer {} has media type {:?}, which cairn cannot convert",
                layer.digest, layer.media_type
            )
        })?;
        layer.media_type = layer_type(format, compression, is_nondistributable(&layer.media_type))
            .ok_or_else(|| format!(
                "layer {} is {compression:?}-compressed, which docker schema 2 (v2s2) cannot carry; push with --format oci, or recompress it with --compression-format gzip",
                layer.digest
            ))?
            .to_owned();
        if format == ManifestFormat::Docker {
            layer.annotations.clear();
        }
    }
    if format == ManifestFormat::Docker {
        out.config.annotations.clear();
    }
    Ok(out)
}

/// The repositories on `dest`'s registry (other than `dest`'s) that
/// `image` is known under: where its blobs can be mounted from.
pub fn mount_sources(image: &Image, dest: &Reference) -> Vec<String> {
    let mut out = Vec::new();
    for n in &image.names {
        if n.registry() == dest.registry()
            && n.repository() != dest.repository()
            && !out.iter().any(|r: &String| r == n.repository())
        {
            out.push(n.repository().to_owned());
        }
    }
    // A token request names each; a few are plenty.
    out.truncate(3);
    out
}

/// Pushes `prepared` (from [`prepare`] of `image`) to `dest`.
pub async fn push(
    store: &Store,
    image: &Image,
    prepared: &Prepared,
    dest: &Reference,
    opts: &PushOptions,
    progress: Arc<dyn PushProgress>,
) -> Result<Pushed, Error> {
    // The image stays whole while its blobs are read: `rmi` waits.
    let _in_use =
        tokio::task::block_in_place(|| store.lock_image_use(image.digest(), LockMode::Shared))?;
    if let Some(want) = dest.digest() {
        if want != &prepared.digest {
            return Err(Error::Registry {
                reference: dest.to_string(),
                kind: RegistryError::Other(format!(
                    "the manifest to push has digest {}, not the one in the destination; push to a tag instead",
                    prepared.digest
                )),
            });
        }
    }
    let sources = mount_sources(image, dest);
    let p = progress.clone();
    let client = RegistryClient::connect(
        dest,
        &opts.registry,
        Box::new(move |what, attempt, delay| p.retrying(what, attempt, delay)),
    )
    .await?
    .for_push(sources.clone());
    let job = Arc::new(Job {
        store: store.clone(),
        client,
        chunk_size: opts.chunk_size.max(1),
        sources,
        progress,
    });
    let mut outcomes = push_blobs(&job, &prepared.blobs, opts.jobs, true).await?;
    job.progress.writing_manifest();
    let rejected = job.put_manifest(prepared).await?.err();
    if let Some((codes, detail)) = rejected {
        let unknown = codes
            .iter()
            .any(|c| matches!(c.as_str(), "MANIFEST_BLOB_UNKNOWN" | "BLOB_UNKNOWN"));
        let claimed: Vec<_> = prepared
            .blobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Outcome::Present))
            .map(|(b, _)| b.clone())
            .collect();
        if !unknown || claimed.is_empty() {
            return Err(job.manifest_rejected(&detail));
        }
        // The registry claimed blobs it does not have: send them without
        // asking, then the manifest once more.
        job.progress.warning(&format!(
            "registry {} refused the manifest ({detail}) though it said it had {} of its blobs; uploading them",
            dest.registry(),
            claimed.len()
        ));
        let again = push_blobs(&job, &claimed, opts.jobs, false).await?;
        for ((b, o), _) in prepared.blobs.iter().zip(outcomes.iter_mut()).zip(0..) {
            if let Some(i) = claimed.iter().position(|c| c.0.digest == b.0.digest) {
                *o = again[i].clone();
            }
        }
        if let Err((_, detail)) = job.put_manifest(prepared).await? {
            return Err(job.manifest_rejected(&detail));
        }
    }
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    Ok(Pushed {
        reference: dest.clone(),
        manifest_digest: prepared.digest.clone(),
        blobs_uploaded: count(|o| matches!(o, Outcome::Uploaded(_))),
        blobs_mounted: count(|o| matches!(o, Outcome::Mounted)),
        blobs_skipped: count(|o| matches!(o, Outcome::Present)),
        bytes_sent: outcomes
            .iter()
            .map(|o| match o {
                Outcome::Uploaded(n) => *n,
                _ => 0,
            })
            .sum(),
    })
}

/// What happened to one blob.
#[derive(Debug, Clone)]
enum Outcome {
    /// The registry said it has it (`HEAD`).
    Present,
    /// Mounted from another repository.
    Mounted,
    /// Uploaded, with the bytes sent.
    Uploaded(u64),
}

/// One push's shared state.
struct Job {
    store: Store,
    client: RegistryClient,
    chunk_size: u64,
    sources: Vec<String>,
    progress: Arc<dyn PushProgress>,
}

/// Pushes `blobs`, `jobs` at a time, returning their outcomes in order;
/// the first failure stops the rest. With `trust_head`, blobs the
/// registry says it has are skipped.
async fn push_blobs(
    job: &Arc<Job>,
    blobs: &[(Descriptor, BlobKind)],
    jobs: usize,
    trust_head: bool,
) -> Result<Vec<Outcome>, Error> {
    let limit = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    // Layers before the config, as podman sends them; largest first.
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| {
        (
            blobs[i].1 == BlobKind::Config,
            std::cmp::Reverse(blobs[i].0.size),
        )
    });
    for i in order {
        let (desc, kind) = blobs[i].clone();
        let (job, limit) = (job.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            (i, job.push_blob(&desc, kind, trust_head).await)
        });
    }
    let mut outcomes = vec![None; blobs.len()];
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match result {
            Ok(o) => outcomes[i] = Some(o),
            Err(e) => {
                if failure.is_none() {
                    failure = Some(e);
                    tasks.abort_all();
                }
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every blob has an outcome"))
        .collect())
}

/// Where an upload stands.
enum Upload {
    /// Send from `offset` to `url`.
    At { url: String, offset: u64 },
    /// The blob was mounted.
    Mounted,
}

impl Job {
    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("ascii header value")
    }

    /// One blob: skip, mount or upload.
    async fn push_blob(
        &self,
        desc: &Descriptor,
        kind: BlobKind,
        trust_head: bool,
    ) -> Result<Outcome, Error> {
        if trust_head && self.registry_has(desc).await? {
            self.progress.blob_skipped(desc, kind);
            return Ok(Outcome::Present);
        }
        let url = match self.start_upload(desc, true).await? {
            Upload::Mounted => {
                self.progress.blob_skipped(desc, kind);
                return Ok(Outcome::Mounted);
            }
            Upload::At { url, .. } => url,
        };
        self.progress.blob_started(desc, kind, 0);
        let sent = self.upload(desc, url).await?;
        self.progress.blob_done(desc, kind);
        Ok(Outcome::Uploaded(sent))
    }

    /// `HEAD` on the blob: 200 is yes, 404 no.
    async fn registry_has(&self, desc: &Descriptor) -> Result<bool, Error> {
        let url = self.client.repo_url(&format!("blobs/{}", desc.digest));
        let what = format!("checking blob {}", desc.digest.short());
        self.client
            .with_retries(&what, || async {
                let resp = self
                    .client
                    .send(Method::HEAD, &url, HeaderMap::new(), None)
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(self.client.rejected(resp).await),
                }
            })
            .await
    }

    /// `POST …/blobs/uploads/`, with a mount from the first source when
    /// `mount` and there is one: mounted (201) or an upload URL (202).
    async fn start_upload(&self, desc: &Descriptor, mount: bool) -> Result<Upload, Error> {
        let mut url = self.client.repo_url("blobs/uploads/");
        let mounting = mount.then(|| self.sources.first()).flatten();
        if let Some(from) = mounting {
            url.push_str(&format!(
                "?mount={}&from={from}",
                query_digest(&desc.digest)
            ));
        }
        let what = format!("starting the upload of blob {}", desc.digest.short());
        self.client
            .with_retries(&what, || async {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_LENGTH, Self::header("0"));
                let resp = self
                    .client
                    .send(Method::POST, &url, headers, Some(&|| Bytes::new().into()))
                    .await?;
                match resp.status() {
                    StatusCode::CREATED if mounting.is_some() => Ok(Upload::Mounted),
                    StatusCode::ACCEPTED => match location(&resp) {
                        Some(l) => Ok(Upload::At {
                            url: self.client.absolute(&l),
                            offset: 0,
                        }),
                        None => Err(Failure::Fatal(
                            self.client.error(RegistryError::Other(
                                "the registry started an upload without saying where (no Location)"
                                    .into(),
                            )),
                        )),
                    },
                    _ => Err(self.client.rejected(resp).await),
                }
            })
            .await
    }

    /// Bytes `offset..offset + len` of the stored blob, to send.
    fn part(&self, desc: &Descriptor, offset: u64, len: u64) -> Result<Part, Error> {
        let file = tokio::task::block_in_place(|| self.store.open_blob(&desc.digest))?;
        let (progress, digest) = (self.progress.clone(), desc.digest.clone());
        Ok(Part {
            file: Arc::new(file),
            start: offset,
            end: offset + len,
            progress: Arc::new(move |n| progress.blob_progress(&digest, n)),
        })
    }

    /// Uploads the blob to the upload at `url`: one `PUT` when it fits a
    /// chunk, else `PATCH`es and a closing `PUT`. After a failure, resumes
    /// where the registry says it stands. Returns the bytes sent.
    async fn upload(&self, desc: &Descriptor, url: String) -> Result<u64, Error> {
        let (mut url, mut offset, mut sent, mut attempt) = (url, 0u64, 0u64, 0u32);
        let what = format!("uploading blob {}", desc.digest.short());
        loop {
            let step = if offset == 0 && desc.size <= self.chunk_size {
                self.put_whole(desc, &url).await.map(|()| None)
            } else if offset < desc.size {
                let len = self.chunk_size.min(desc.size - offset);
                let part = self.part(desc, offset, len)?;
                sent += len;
                self.patch(desc, &url, &part).await.map(Some)
            } else {
                self.close(desc, &url).await.map(|()| None)
            };
            if offset == 0 && desc.size <= self.chunk_size {
                sent += desc.size;
            }
            match step {
                Ok(None) => return Ok(sent),
                Ok(Some((next_url, next_offset))) => {
                    url = next_url;
                    offset = next_offset;
                    attempt = 0;
                    self.progress.blob_progress(&desc.digest, offset);
                }
                Err(failure) => {
                    self.client.backoff(&what, failure, attempt).await?;
                    attempt += 1;
                    match self.upload_status(&url).await? {
                        Some((u, o)) => (url, offset) = (u, o),
                        None => {
                            // The registry forgot the upload: a new one.
                            if let Upload::At { url: u, offset: o } =
                                self.start_upload(desc, false).await?
                            {
                                (url, offset) = (u, o);
                            }
                        }
                    }
                    self.progress.blob_progress(&desc.digest, offset);
                }
            }
        }
    }

    /// `PUT url?digest=D` with the whole blob.
    async fn put_whole(&self, desc: &Descriptor, url: &str) -> Result<(), Failure> {
        let part = self.part(desc, 0, desc.size).map_err(Failure::Fatal)?;
        self.put_digest(desc, url, Some(&part)).await
    }

    /// `PUT url?digest=D` with no body: closes a chunked upload.
    async fn close(&self, desc: &Descriptor, url: &str) -> Result<(), Failure> {
        self.put_digest(desc, url, None).await
    }

    async fn put_digest(
        &self,
        desc: &Descriptor,
        url: &str,
        part: Option<&Part>,
    ) -> Result<(), Failure> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}digest={}", query_digest(&desc.digest));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, Self::header("application/octet-stream"));
        let len = part.map_or(0, Part::len);
        headers.insert(CONTENT_LENGTH, Self::header(&len.to_string()));
        let body = || part.map_or_else(|| Bytes::new().into(), Part::body);
        let resp = self
            .client
            .send(Method::PUT, &url, headers, Some(&body))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.client.rejected(resp).await)
    }

    /// One `PATCH` of `part`: the next upload URL and offset.
    async fn patch(
        &self,
        desc: &Descriptor,
        url: &str,
        part: &Part,
    ) -> Result<(String, u64), Failure> {
        let (offset, end) = (part.start, part.end);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, Self::header("application/octet-stream"));
        headers.insert(CONTENT_LENGTH, Self::header(&part.len().to_string()));
        headers.insert(
            CONTENT_RANGE,
            Self::header(&format!("{offset}-{}", end - 1)),
        );
        let body = || part.body();
        let resp = self
            .client
            .send(Method::PATCH, url, headers, Some(&body))
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED => {}
            // The upload is not where we thought (416), or gone (404, or
            // distribution's BLOB_UPLOAD_INVALID after a body cut midway):
            // ask where it stands, or start a new one.
            StatusCode::NOT_FOUND | StatusCode::RANGE_NOT_SATISFIABLE | StatusCode::BAD_REQUEST => {
                let (_, detail) = error_codes(resp).await;
                return Err(Failure::retry(format!(
                    "the registry lost the upload: {detail}"
                )));
            }
            _ => return Err(self.client.rejected(resp).await),
        }
        let next = location(&resp).map_or_else(|| url.to_owned(), |l| self.client.absolute(&l));
        // The registry's Range says what it holds; trust it over our count
        // only when it is sane.
        let held = range_end(&resp).map_or(end, |e| e + 1);
        if held <= offset {
            // Accepted, yet nothing taken: a retry (bounded) rather than
            // sending the same chunk forever.
            return Err(Failure::retry(format!(
                "the registry took none of the {} bytes sent at offset {offset}",
                end - offset
            )));
        }
        if held != end {
            tracing::debug!(
                "{}: registry holds {held} bytes after a PATCH to {end}",
                desc.digest
            );
        }
        // More than was sent would be a lie the closing digest check
        // catches; go on from what was sent.
        Ok((next, held.min(end)))
    }

    /// `GET` on the upload URL: where the upload stands (its URL and the
    /// bytes the registry holds), or `None` if the registry no longer
    /// knows it.
    async fn upload_status(&self, url: &str) -> Result<Option<(String, u64)>, Error> {
        self.client
            .with_retries("asking where the upload stands", || async {
                let resp = self
                    .client
                    .send(Method::GET, url, HeaderMap::new(), None)
                    .await?;
                match resp.status() {
                    StatusCode::NO_CONTENT | StatusCode::OK => {
                        let next = location(&resp)
                            .map_or_else(|| url.to_owned(), |l| self.client.absolute(&l));
                        Ok(Some((next, range_end(&resp).map_or(0, |e| e + 1))))
                    }
                    s if s.is_client_error() => Ok(None),
                    _ => Err(self.client.rejected(resp).await),
                }
            })
            .await
    }

    /// `PUT` of the manifest at the destination's tag or digest. A 4xx
    /// (other than 401) comes back as the registry's error codes and words.
    async fn put_manifest(
        &self,
        prepared: &Prepared,
    ) -> Result<Result<(), (Vec<String>, String)>, Error> {
        let url = self.client.repo_url(&format!(
            "manifests/{}",
            self.client.reference().tag_or_digest()
        ));
        self.client
            .with_retries("writing the manifest", || async {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, Self::header(&prepared.media_type));
                let resp = self
                    .client
                    .send(
                        Method::PUT,
                        &url,
                        headers,
                        Some(&|| prepared.manifest.clone().into()),
                    )
                    .await?;
                let status = resp.status();
                if status.is_success() {
                    let said = resp
                        .headers()
                        .get("docker-content-digest")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if let Some(said) = said.filter(|s| *s != prepared.digest.to_string()) {
                        self.progress.warning(&format!(
                            "the registry reports manifest digest {said}, cairn sent {}",
                            prepared.digest
                        ));
                    }
                    return Ok(Ok(()));
                }
                if status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 408 | 429) {
                    return Ok(Err(error_codes(resp).await));
                }
                Err(self.client.rejected(resp).await)
            })
            .await
    }

    fn manifest_rejected(&self, detail: &str) -> Error {
        self.client.error(RegistryError::Other(format!(
            "registry {} rejected the manifest: {detail}",
            self.client.reference().registry()
        )))
    }
}

/// Bytes `start..end` of a stored blob, sent as a request body in pieces
/// read as the connection takes them (never held whole), reporting the
/// offset reached.
#[derive(Clone)]
struct Part {
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
}

impl Part {
    /// Bytes read from the file per body frame.
    const PIECE: u64 = 256 << 10;

    fn len(&self) -> u64 {
        self.end - self.start
    }

    /// A fresh body for the part (a request sent again reads it again).
    fn body(&self) -> reqwest::Body {
        reqwest::Body::wrap(PartBody {
            part: self.clone(),
            pos: self.start,
        })
    }
}

struct PartBody {
    part: Part,
    pos: u64,
}

impl http_body::Body for PartBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let (pos, end) = (self.pos, self.part.end);
        if pos >= end {
            return std::task::Poll::Ready(None);
        }
        // A read from a stored blob (usually in the page cache): short
        // enough to do here rather than on another thread.
        let mut buf = vec![0u8; Part::PIECE.min(end - pos) as usize];
        if let Err(e) = self.part.file.read_exact_at(&mut buf, pos) {
            return std::task::Poll::Ready(Some(Err(e)));
        }
        self.pos += buf.len() as u64;
        (self.part.progress)(self.pos);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.part.end
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.part.end - self.pos)
    }
}

/// A digest in a query string (`:` escaped as distribution's clients do).
fn query_digest(d: &Digest) -> String {
    d.to_string().replace(':', "%3A")
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The last byte an upload's `Range: 0-N` header says the registry holds
/// (`None` when it holds nothing or did not say).
fn range_end(resp: &reqwest::Response) -> Option<u64> {
    let r = resp.headers().get(reqwest::header::RANGE)?.to_str().ok()?;
    parse_range_end(r)
}

fn parse_range_end(r: &str) -> Option<u64> {
    let r = r.trim().trim_start_matches("bytes=");
    let (start, end) = r.split_once('-')?;
    let (start, end) = (
        start.trim().parse::<u64>().ok()?,
        end.trim().parse::<u64>().ok()?,
    );
    // distribution says `0-0` for an empty upload.
    (start == 0 && end > 0).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ranges() {
        assert_eq!(parse_range_end("0-0"), None);
        assert_eq!(parse_range_end("0-16777215"), Some(16_777_215));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("junk"), None);
        assert_eq!(parse_range_end("5-9"), None);
    }

    fn manifest(config: &str, layers: &[&str]) -> Manifest {
        let d = |n: u8| Digest::sha256_of(&[n]);
        Manifest {
            schema_version: 2,
            media_type: None,
            config: Descriptor::new(config, d(0), 10),
            layers: layers
                .iter()
                .zip(1u8..)
                .map(|(t, n)| Descriptor::new(t, d(n), 100))
                .collect(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn conversions_map_media_types() {
        let oci = manifest(
            types::OCI_CONFIG,
            &[types::OCI_LAYER_GZIP, types::OCI_LAYER],
        );
        let d = convert(&oci, ManifestFormat::Docker).unwrap();
        assert_eq!(d.effective_media_type(), types::DOCKER_MANIFEST);
        assert_eq!(d.config.media_type, types::DOCKER_CONFIG);
        assert_eq!(d.layers[0].media_type, types::DOCKER_LAYER_GZIP);
        assert_eq!(d.layers[1].media_type, types::DOCKER_LAYER);
        assert_eq!(d.layers[0].digest, oci.layers[0].digest);
        let back = convert(&d, ManifestFormat::Oci).unwrap();
        assert_eq!(back.config.media_type, types::OCI_CONFIG);
        assert_eq!(back.layers[0].media_type, types::OCI_LAYER_GZIP);
        let zstd = manifest(types::OCI_CONFIG, &[types::OCI_LAYER_ZSTD]);
        let e = convert(&zstd, ManifestFormat::Docker).unwrap_err();
        assert!(
            e.contains("v2s2") && e.contains("--compression-format gzip"),
            "{e}"
        );
    }
}
