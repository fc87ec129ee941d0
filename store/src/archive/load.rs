//! `load`: a docker archive (`docker save`/`podman save` format, one or
//! several images) or an OCI archive, plain, gzip- or zstd-compressed,
//! read once as a stream (a file or standard input alike; nothing is
//! seeked, nothing buffered whole).
//!
//! Every regular file the archive names by digest is stored as a blob,
//! verified against its name on the way in; `manifest.json`,
//! `repositories` and `index.json` are read with a size bound. Links in
//! the archive are only ever resolved by name inside it: nothing is
//! created on disk from an entry's path, and an entry whose path or link
//! target leaves the archive is refused. The refs are written last: a
//! failure or a crash before leaves no name, and the blobs it added are
//! removed (or, after a crash, are unreferenced and collected).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use cairn_fsutil::LockMode;
use serde::Deserialize;
use serde_json::json;

use crate::digest::Digest;
use crate::error::Error;
use crate::images::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::import::{import_from, LayoutBlobs};
use crate::layout::{Put, Store, REF_NAME};
use crate::media::{types, Descriptor, ImageConfig, Index};
use crate::pin::Pin;
use crate::progress::{PullProgress, Silent};
use crate::reference::{Name, Reference};

/// An image `load` stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The names recorded (none: a dangling image).
    pub names: Vec<Reference>,
    /// The image id (config digest).
    pub id: Digest,
    /// The manifest digest.
    pub manifest_digest: Digest,
}

/// Links deeper than this are refused (loops, or a maze).
const MAX_LINK_HOPS: usize = 16;

/// What one pass over an archive found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// Regular files stored as blobs, by normalized path.
    pub(crate) files: BTreeMap<String, Digest>,
    /// Symlinks and hardlinks: path → normalized target path.
    pub(crate) links: BTreeMap<String, String>,
    /// `manifest.json`, `repositories`, `index.json`, `oci-layout`.
    pub(crate) small: BTreeMap<String, Vec<u8>>,
}

impl Scanned {
    /// The blob a path names, following links inside the archive.
    fn resolve(&self, path: &str, source: &str) -> Result<Digest, Error> {
        let mut p = normalize(&[], path).ok_or_else(|| {
            bad(
                source,
                format!("manifest.json names {path:?}, which leaves the archive"),
            )
        })?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(d) = self.files.get(&p) {
                return Ok(d.clone());
            }
            match self.links.get(&p) {
                Some(t) => p.clone_from(t),
                None => {
                    return Err(bad(
                        source,
                        format!("manifest.json names {path:?}, which is not in the archive"),
                    ))
                }
            }
        }
        Err(bad(
            source,
            format!("{path:?}: more than {MAX_LINK_HOPS} links deep (a loop?)"),
        ))
    }
}

pub(crate) fn bad(source: &str, message: String) -> Error {
    Error::Source {
        source_name: source.to_owned(),
        message,
    }
}

/// `path` (relative to the directory `base`) as a path inside the
/// archive, or `None` if it is absolute or climbs out.
fn normalize(base: &[&str], path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.to_vec();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// The archive's name for a blob, if its file name is one: `blobs/ALG/HEX`
/// (OCI, and docker 25+), `HEX.tar` or `HEX.json` (podman, docker).
fn blob_digest(parts: &[&str]) -> Option<Result<Digest, String>> {
    match parts {
        ["blobs", alg, hex] => Some(
            format!("{alg}:{hex}")
                .parse()
                .map_err(|_| format!("blob name blobs/{alg}/{hex} is not a digest")),
        ),
        [name] => {
            let hex = name
                .strip_suffix(".tar")
                .or_else(|| name.strip_suffix(".json"))?;
            (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
                format!("sha256:{hex}")
                    .parse()
                    .map_err(|_| unreachable_name(name))
            })
        }
        _ => None,
    }
}

fn unreachable_name(name: &str) -> String {
    format!("{name} is not a digest")
}

/// Wraps `input` in the decompressor its first bytes call for: gzip, zstd
/// or none.
pub(crate) fn decompressed<'a>(
    input: impl Read + 'a,
    source: &str,
) -> Result<Box<dyn Read + 'a>, Error> {
    let mut r = BufReader::with_capacity(1 << 20, input);
    let head = r
        .fill_buf()
        .map_err(|e| bad(source, format!("read: {e}")))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(r).map_err(|e| bad(source, format!("zstd: {e}")))?)
    } else {
        Box::new(r)
    })
}

/// Reads the whole archive once, storing every blob it names by digest
/// (verified) and keeping its small metadata files. The blobs it adds to
/// the store are pushed to `added` as they are stored (for the caller to
/// remove again if the load fails, here or later).
pub(crate) fn scan(
    store: &Store,
    pin: &Pin,
    input: &mut dyn Read,
    source: &str,
    added: &mut Vec<Digest>,
) -> Result<Scanned, Error> {
    let mut out = Scanned::default();
    let rerr = |e: std::io::Error| {
        bad(
            source,
            format!("read archive: {e} (truncated or not a tar?)"),
        )
    };
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(rerr)? {
        let mut entry = entry.map_err(rerr)?;
        let raw = entry.path_bytes();
        let raw = std::str::from_utf8(&raw)
            .map_err(|_| bad(source, "an entry's path is not UTF-8".into()))?
            .to_owned();
        if raw.starts_with('/') || raw.split('/').any(|c| c == "..") {
            return Err(bad(
                source,
                format!("entry {raw:?}: path leaves the archive"),
            ));
        }
        let path = normalize(&[], &raw).expect("checked above");
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| std::str::from_utf8(&t).ok().map(str::to_owned))
                    .ok_or_else(|| bad(source, format!("link {raw:?} has no UTF-8 target")))?;
                let base: &[&str] = if kind == tar::EntryType::Symlink {
                    &parts[..parts.len().saturating_sub(1)]
                } else {
                    &[]
                };
                let t = normalize(base, &target).ok_or_else(|| {
                    bad(
                        source,
                        format!("link {raw:?} points outside the archive ({target:?})"),
                    )
                })?;
                out.files.remove(&path);
                out.links.insert(path, t);
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(bad(
                    source,
                    format!("entry {raw:?} is a {other:?}, which has no place in an image archive"),
                ))
            }
        }
        out.links.remove(&path);
        let size = entry.header().size().map_err(rerr)?;
        if let ["manifest.json" | "repositories" | "index.json" | "oci-layout"] = parts.as_slice() {
            if size > MAX_MANIFEST_SIZE {
                return Err(bad(
                    source,
                    format!("{path} is {size} bytes, more than {MAX_MANIFEST_SIZE} allowed"),
                ));
            }
            let mut b = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut b).map_err(rerr)?;
            if b.len() as u64 != size {
                return Err(bad(source, format!("{path}: truncated archive")));
            }
            out.small.insert(path, b);
            continue;
        }
        let digest = match blob_digest(&parts) {
            Some(d) => d.map_err(|m| bad(source, m))?,
            None if parts.last() == Some(&"layer.tar") => {
                let (d, is_new) = store_unnamed(store, pin, &mut entry, size, source, &path)?;
                if is_new {
                    added.push(d.clone());
                }
                out.files.insert(path, d);
                continue;
            }
            None => continue,
        };
        pin.add([&digest])?;
        out.files.insert(path.clone(), digest.clone());
        if store.has_blob(&digest) {
            continue;
        }
        let lock = store.lock_blob(&digest)?;
        if lock.is_stored() {
            continue;
        }
        let mut w = lock.writer(Some(size), false)?;
        copy_entry(&mut entry, &mut w, source, &path)?;
        match w.commit() {
            Ok(Put::Stored) => added.push(digest),
            Ok(_) => {}
            Err(e) => return Err(bad(source, format!("{path}: {e}"))),
        }
    }
    Ok(out)
}

fn copy_entry(
    r: &mut dyn Read,
    w: &mut crate::layout::BlobWriter,
    source: &str,
    path: &str,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| bad(source, format!("{path}: read: {e} (truncated archive?)")))?;
        if n == 0 {
            return Ok(());
        }
        w.write(&buf[..n])?;
    }
}

/// A file the archive does not name by digest (`ID/layer.tar` of older
/// docker archives): written as a new blob, stored under the digest found.
fn store_unnamed(
    store: &Store,
    pin: &Pin,
    r: &mut dyn Read,
    size: u64,
    source: &str,
    path: &str,
) -> Result<(Digest, bool), Error> {
    use std::io::Write as _;
    let mut blob = store.new_blob()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| bad(source, format!("{path}: read: {e} (truncated archive?)")))?;
        if n == 0 {
            break;
        }
        blob.write_all(&buf[..n])
            .map_err(|e| bad(source, format!("{path}: store: {e}")))?;
        got += n as u64;
    }
    if got != size {
        return Err(bad(source, format!("{path}: truncated archive")));
    }
    let (digest, _, put) = blob.commit()?;
    // Pinned at once; a collection that ran in between (the blob was
    // unreferenced for that moment) is noticed, not ignored.
    pin.add([&digest])?;
    if !store.has_blob(&digest) {
        return Err(bad(
            source,
            format!("{path}: removed by a concurrent prune while loading; load again"),
        ));
    }
    Ok((digest, put == Put::Stored))
}

/// An entry of a docker archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Loads every image of a docker or OCI archive read from `input`
/// (`source` names it in messages).
pub fn load_archive(
    store: &Store,
    input: &mut dyn Read,
    source: &str,
) -> Result<Vec<LoadedImage>, Error> {
    super::out::sweep_stale(store);
    let pin = store.pin()?;
    let mut added = Vec::new();
    let result = (|| {
        let mut r = decompressed(input, source)?;
        let scanned = scan(store, &pin, &mut r, source, &mut added)?;
        if let Some(m) = scanned.small.get("manifest.json") {
            load_docker(store, &pin, &scanned, m, source)
        } else if let Some(i) = scanned.small.get("index.json") {
            load_oci(store, &pin, i, source)
        } else {
            Err(bad(
                source,
                "neither manifest.json nor index.json: not a docker or OCI archive".into(),
            ))
        }
    })();
    if result.is_err() {
        drop_added(store, pin, &added);
    }
    result
}

/// Removes the blobs a failed load added (those no image uses).
pub(crate) fn drop_added(store: &Store, pin: Pin, added: &[Digest]) {
    drop(pin);
    if let Ok(Some(_gc)) = store.try_gc_lock(LockMode::Exclusive) {
        if let Ok(live) = store.live_blobs() {
            for d in added {
                if !live.contains(d) {
                    let _ = store.remove_blob(d);
                }
            }
        }
    }
}

fn load_oci(
    store: &Store,
    pin: &Pin,
    index: &[u8],
    source: &str,
) -> Result<Vec<LoadedImage>, Error> {
    let index: Index = serde_json::from_slice(index)
        .map_err(|e| bad(source, format!("index.json is not an OCI index: {e}")))?;
    let src = LayoutBlobs {
        root: store.root().to_owned(),
        name: source.to_owned(),
    };
    let progress: Arc<dyn PullProgress> = Arc::new(Silent);
    let refs: Vec<Option<String>> = if index.manifests.len() == 1 {
        vec![None]
    } else {
        index
            .manifests
            .iter()
            .map(|d| d.annotations.get(REF_NAME).cloned())
            .collect()
    };
    let mut out = Vec::new();
    for r in refs {
        let p = import_from(
            store,
            &src,
            &index,
            r.as_deref(),
            None,
            None,
            &progress,
            pin,
        )?;
        out.push(LoadedImage {
            names: vec![p.reference],
            id: p.image_id,
            manifest_digest: p.manifest_digest,
        });
    }
    Ok(out)
}

fn load_docker(
    store: &Store,
    pin: &Pin,
    scanned: &Scanned,
    manifest: &[u8],
    source: &str,
) -> Result<Vec<LoadedImage>, Error> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest).map_err(|e| {
        bad(
            source,
            format!("manifest.json is not a docker archive manifest: {e}"),
        )
    })?;
    if entries.is_empty() {
        return Err(bad(source, "manifest.json lists no image".into()));
    }
    // Everything is checked before the first ref is written.
    let mut planned = Vec::new();
    for e in &entries {
        planned.push(plan_docker_image(store, scanned, e, source)?);
    }
    let mut out = Vec::new();
    for (names, manifest_bytes, config_digest) in planned {
        let digest = Digest::sha256_of(&manifest_bytes);
        pin.add([&digest])?;
        store.put_blob_bytes(&manifest_bytes, Some(&digest))?;
        let desc = Descriptor::new(
            types::DOCKER_MANIFEST,
            digest.clone(),
            manifest_bytes.len() as u64,
        );
        let _in_use = store.lock_image_use(&digest, LockMode::Shared)?;
        for n in &names {
            store.set_ref(n, &desc, None)?;
        }
        if names.is_empty() {
            store.update_index(|index| {
                if index.manifests.iter().any(|d| d.digest == digest) {
                    return Ok(false);
                }
                index.manifests.push(desc.clone());
                Ok(true)
            })?;
        }
        out.push(LoadedImage {
            names,
            id: config_digest,
            manifest_digest: digest,
        });
    }
    Ok(out)
}

/// One docker archive image, checked: its names, its schema 2 manifest
/// (built here, as podman does) and its id.
fn plan_docker_image(
    store: &Store,
    scanned: &Scanned,
    e: &DockerEntry,
    source: &str,
) -> Result<(Vec<Reference>, Vec<u8>, Digest), Error> {
    let config_digest = scanned.resolve(&e.config, source)?;
    let config_bytes = store.read_blob(&config_digest, MAX_CONFIG_SIZE)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|err| bad(source, format!("{}: not an image config: {err}", e.config)))?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != e.layers.len() {
        return Err(bad(
            source,
            format!(
                "manifest.json lists {} layers for {}, its config {} diff ids",
                e.layers.len(),
                e.config,
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (name, diff) in e.layers.iter().zip(diff_ids) {
        let d = scanned.resolve(name, source)?;
        let size = store
            .blob_size(&d)
            .ok_or_else(|| bad(source, format!("{name}: not stored")))?;
        let media_type = if &d == diff {
            types::DOCKER_LAYER
        } else {
            let mut head = [0u8; 4];
            let n = store
                .open_blob(&d)?
                .read(&mut head)
                .map_err(|err| bad(source, format!("{name}: {err}")))?;
            if head[..n].starts_with(&[0x1f, 0x8b]) {
                types::DOCKER_LAYER_GZIP
            } else {
                return Err(bad(
                    source,
                    format!("layer {name} hashes to {d}, not to its diff id {diff} in the config"),
                ));
            }
        };
        layers.push(json!({"mediaType": media_type, "size": size, "digest": d.to_string()}));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": types::DOCKER_MANIFEST,
        "config": {"mediaType": types::DOCKER_CONFIG, "size": config_bytes.len(), "digest": config_digest.to_string()},
        "layers": layers,
    });
    let mut names = Vec::new();
    for t in e.repo_tags.iter().flatten() {
        let n = Name::parse(t)
            .and_then(|n| n.qualify(crate::DOCKER_HUB))
            .map_err(|err| bad(source, format!("RepoTags {t:?}: {err}")))?;
        names.push(n);
    }
    Ok((
        names,
        serde_json::to_vec(&manifest).expect("a manifest serializes"),
        config_digest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(normalize(&[], "a/./b").as_deref(), Some("a/b"));
        assert_eq!(normalize(&["id"], "../x.tar").as_deref(), Some("x.tar"));
        assert_eq!(normalize(&["id"], "../../etc/passwd"), None);
        assert_eq!(normalize(&[], "/etc/passwd"), None);
        assert_eq!(normalize(&[], ".."), None);
    }

    #[test]
    fn blob_names() {
        let hex = "a".repeat(64);
        assert!(matches!(blob_digest(&[&format!("{hex}.tar")]), Some(Ok(_))));
        assert!(matches!(
            blob_digest(&[&format!("{hex}.json")]),
            Some(Ok(_))
        ));
        assert!(blob_digest(&["manifest.json"]).is_none());
        assert!(matches!(
            blob_digest(&["blobs", "sha256", "zz"]),
            Some(Err(_))
        ));
        assert!(blob_digest(&["x", "layer.tar"]).is_none());
    }
}
