//! Images made here rather than pulled: `commit` (a container's upper
//! directory, or with `squash` its whole merged root, as one new layer on
//! its image), `import` (a root file system tarball as a one-layer image)
//! and `export` (a container's merged root as a tar).
//!
//! Each new image is stored as a pull stores one, in this order: the layer
//! blob ([`LayerWriter`]: compressed, hashed, fsynced and renamed into
//! `blobs/` as it is written), the config, the manifest, each pinned as
//! soon as it is in so a concurrent collection keeps it, and the ref last.
//! A crash before the ref leaves blobs that nothing names (the next
//! collection removes them) and a temp file that the next sweep removes,
//! never a ref to a missing blob.

pub mod change;
mod pause;
mod tree;

use std::io::{self, Read, Write};
use std::path::PathBuf;

use cairn_store::compress::{Compression, LayerBlob, LayerWriter};
use cairn_store::media::{types, Descriptor, Manifest, Platform};
use cairn_store::{Digest, Image, Pin, Reference, Store, StoreDir};
use serde_json::{json, Map, Value};

use crate::container::Container;
use crate::error::{Error, Result};

pub use pause::Paused;
pub use tree::{is_whiteout, unmap_id, write_tar, Mode, TreeOptions, TreeStats, ENGINE_PATHS};

/// The manifest and config media types of a new image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest and config.
    #[default]
    Oci,
    /// Docker schema 2 (`--format docker`).
    Docker,
}

/// What a new image is and how it is recorded.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Its name; `None` leaves it untagged (`<none>`), as podman does.
    pub name: Option<Reference>,
    /// `author` in the config.
    pub author: Option<String>,
    /// The history entry's `comment` (`--message`).
    pub comment: Option<String>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// `--change` lines, applied in order.
    pub changes: Vec<String>,
    /// Manifest and config media types.
    pub format: Format,
    /// How the layer is compressed.
    pub compression: Compression,
    /// `--timestamp` or `SOURCE_DATE_EPOCH`: the config's `created` and
    /// the latest mtime in the layer. `None`: now, and mtimes as they are.
    pub timestamp: Option<i64>,
    /// A build step's image: recorded untagged with
    /// [`INTERMEDIATE`], which `images` lists only with `--all` (podman's
    /// intermediate images).
    pub intermediate: bool,
    /// The manifest's annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// No history in the config (`build --omit-history`).
    pub omit_history: bool,
}

/// The annotation of an intermediate build image's entry in `index.json`.
pub const INTERMEDIATE: &str = "io.cairn.build.intermediate";

impl Default for NewImage {
    /// Untagged, uncompressed (as podman keeps them), OCI, no changes, created now.
    fn default() -> Self {
        NewImage {
            name: None,
            author: None,
            comment: None,
            created_by: String::new(),
            changes: Vec::new(),
            format: Format::Oci,
            compression: Compression::None,
            timestamp: None,
            intermediate: false,
            annotations: Default::default(),
            omit_history: false,
        }
    }
}

/// What `commit` reads of the container beyond [`NewImage`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// One layer of the whole merged root, on no parent.
    pub squash: bool,
    /// The container's volume destinations become the image's `Volumes`.
    pub include_volumes: bool,
    /// The new image's config as the caller made it (a build step: its
    /// `config`, `history` so far and `rootfs` of the parent), instead of
    /// the parent's with what the container runs; the new layer's diff id
    /// and history entry are appended to it.
    pub config: Option<Value>,
}

/// A new image.
#[derive(Debug, Clone)]
pub struct Made {
    /// Its id (the config's digest).
    pub id: Digest,
    /// Its manifest's digest.
    pub manifest: Digest,
    /// The new layer (none for [`with_config`]).
    pub layer: Option<LayerBlob>,
}

/// The lower directories of `c`'s root and its upper directory, top first.
fn layers(c: &Container) -> Vec<PathBuf> {
    let mut l = vec![c.dir.join("upper")];
    l.extend(c.config.image.lower_dirs());
    l
}

/// The paths commit and export leave out: the engine's own files and the
/// container's mount destinations (volumes, binds, tmpfs), as podman does.
fn skipped(c: &Container) -> Vec<String> {
    let mut skip: Vec<String> = ENGINE_PATHS.iter().map(|s| (*s).to_owned()).collect();
    skip.extend(c.config.mounts.iter().map(|m| m.destination.clone()));
    skip
}

fn tree_options(c: &Container, clamp: Option<i64>) -> TreeOptions {
    TreeOptions {
        skip: skipped(c),
        idmap: c.config.idmap.clone(),
        clamp_mtime: clamp,
    }
}

/// Names `e` for the container when its directory is gone (removed
/// meanwhile), else says what failed writing `what`.
fn tree_error(c: &Container, store: &Store, what: &str, e: io::Error) -> Error {
    if !c.dir.join("upper").is_dir() {
        return Error::NoSuchContainer(c.config.name.clone());
    }
    if is_disk_full(&e) {
        return Error::Refused(format!(
            "{what} of container {}: no space left on device in {}: free some space (`cairn system prune`) and commit again",
            c.config.name,
            store.root().display()
        ));
    }
    Error::Refused(format!("{what} of container {}: {e}", c.config.name))
}

/// Whether `e` (or what it wraps, as the compressing threads pass it on)
/// is a full disk or quota.
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSPC | nix::libc::EDQUOT)
    ) || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.to_string().contains("os error 28")
}

fn store_error(what: &str, e: cairn_store::Error) -> Error {
    let text = e.to_string();
    if text.contains("No space left") || text.contains("os error 28") {
        return Error::Refused(format!(
            "{what}: no space left on device: free some space (`cairn system prune`) and try again"
        ));
    }
    Error::Refused(format!("{what}: {text}"))
}

/// `export`: the container's merged root as a tar, to `out`.
pub fn export<W: Write>(c: &Container, out: W) -> Result<TreeStats> {
    let _lock = c.lock()?;
    let (_, stats) =
        write_tar(&layers(c), Mode::Merged, &tree_options(c, None), out).map_err(|e| {
            if !c.dir.join("upper").is_dir() {
                Error::NoSuchContainer(c.config.name.clone())
            } else {
                Error::Refused(format!("export of container {}: {e}", c.config.name))
            }
        })?;
    Ok(stats)
}

/// `commit`: a new image of `c`'s changes (or its whole root with
/// `squash`) on its image. The container is locked meanwhile (no start,
/// stop or rm changes it under us); a running one goes on running.
pub fn commit(store: &Store, c: &Container, img: &NewImage, o: CommitOptions) -> Result<Made> {
    let _lock = c.lock()?;
    // New blobs of a commit or import killed before it finished.
    let _ = store.sweep_partials(false);
    let pin = store.pin().map_err(|e| store_error("pin the image", e))?;
    let parent = parent_image(store, c, &pin)?;
    let mut writer = LayerWriter::new(store, img.compression, None)
        .map_err(|e| store_error("start the new layer", e))?;
    let mode = if o.squash { Mode::Merged } else { Mode::Diff };
    write_tar(
        &layers(c),
        mode,
        &tree_options(c, img.timestamp),
        &mut writer,
    )
    .map_err(|e| tree_error(c, store, "write the layer", e))?;
    let layer = writer
        .finish()
        .map_err(|e| store_error(&format!("store the layer of {}", c.config.name), e))?;
    let given = o.config.is_some();
    let mut config = match o.config {
        Some(c) => c,
        None => parent.as_ref().map_or_else(
            || json!({"architecture": Platform::default().architecture, "os": "linux"}),
            |p| p.config_raw.clone(),
        ),
    };
    let host = cairn_store::media::host_platform();
    if config
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        config["architecture"] = json!(host.architecture);
        config["os"] = json!(host.os);
    }
    let runtime = runtime_object(&mut config)?;
    if !given {
        from_container(runtime, c, o.include_volumes);
    }
    let parent_layers = match (&parent, o.squash) {
        (Some(p), false) => p.manifest.layers.clone(),
        _ => Vec::new(),
    };
    if o.squash {
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        config["history"] = json!([]);
    }
    finish(store, &pin, config, parent_layers, Some(layer), img)
}

/// A new image of `parent`'s layers (none: a first layer) and `config`,
/// with one more layer that `write` writes (an uncompressed tar); the
/// layer's diff id and history entry are appended to `config`.
pub fn with_layer(
    store: &Store,
    parent: Option<&Image>,
    config: Value,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    img: &NewImage,
) -> Result<Made> {
    let _ = store.sweep_partials(false);
    let pin = store.pin().map_err(|e| store_error("pin the image", e))?;
    if let Some(p) = parent {
        pin.add(p.blobs())
            .map_err(|e| store_error("pin the image", e))?;
    }
    let mut writer = LayerWriter::new(store, img.compression, None)
        .map_err(|e| store_error("start the new layer", e))?;
    write(&mut writer).map_err(|e| {
        if is_disk_full(&e) {
            Error::Refused(format!(
                "no space left on device in {}: free some space (`cairn system prune`) and try again",
                store.root().display()
            ))
        } else {
            Error::Refused(format!("write the new layer: {e}"))
        }
    })?;
    let layer = writer
        .finish()
        .map_err(|e| store_error("store the new layer", e))?;
    let layers = parent
        .map(|p| p.manifest.layers.clone())
        .unwrap_or_default();
    finish(store, &pin, config, layers, Some(layer), img)
}

/// A new image of `parent`'s layers and `config` (which the caller made
/// from the parent's: a build step that changes only metadata). Its
/// history entry is appended as an empty layer's.
pub fn with_config(store: &Store, parent: &Image, config: Value, img: &NewImage) -> Result<Made> {
    let pin = store.pin().map_err(|e| store_error("pin the image", e))?;
    pin.add(parent.blobs())
        .map_err(|e| store_error("pin the image", e))?;
    if let Some(missing) = parent.blobs().into_iter().find(|d| !store.has_blob(d)) {
        return Err(Error::Refused(format!(
            "blob {missing} of image {} is no longer in the store: pull or build it again",
            parent.manifest_descriptor.digest
        )));
    }
    finish(
        store,
        &pin,
        config,
        parent.manifest.layers.clone(),
        None,
        img,
    )
}

/// The container's image, pinned; `None` for a container of no image.
fn parent_image(store: &Store, c: &Container, pin: &Pin) -> Result<Option<Image>> {
    let Some(manifest) = &c.config.image.manifest else {
        return Ok(None);
    };
    pin.add([manifest])
        .map_err(|e| store_error("pin the image", e))?;
    let image = store
        .image_by_manifest(manifest)
        .map_err(|e| store_error("read the image", e))?
        .ok_or_else(|| {
            Error::Refused(format!(
                "the image of container {} ({}) is no longer in the store: pull it again, then commit",
                c.config.name, c.config.image.name
            ))
        })?;
    pin.add(image.blobs())
        .map_err(|e| store_error("pin the image", e))?;
    Ok(Some(image))
}

/// The config's `config` object, made if absent.
fn runtime_object(config: &mut Value) -> Result<&mut Map<String, Value>> {
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("the image config is not a JSON object".into()))?;
    let rc = obj.entry("config").or_insert_with(|| json!({}));
    if !rc.is_object() {
        *rc = json!({});
    }
    Ok(rc.as_object_mut().expect("an object"))
}

/// What podman carries from the container into the committed config:
/// command, entrypoint, environment, working directory, user, labels,
/// exposed ports (and the volumes with `include_volumes`).
fn from_container(rc: &mut Map<String, Value>, c: &Container, include_volumes: bool) {
    let p = &c.config.process;
    if !p.cmd.is_empty() {
        rc.insert("Cmd".into(), json!(p.cmd));
    }
    if !p.entrypoint.is_empty() {
        rc.insert("Entrypoint".into(), json!(p.entrypoint));
    }
    if !p.env.is_empty() {
        rc.insert("Env".into(), json!(p.env));
    }
    if !p.workdir.is_empty() {
        rc.insert("WorkingDir".into(), json!(p.workdir));
    }
    if !p.user.is_empty() {
        rc.insert("User".into(), json!(p.user));
    }
    if !c.config.labels.is_empty() {
        let labels = rc.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        let map = labels.as_object_mut().expect("an object");
        for (k, v) in &c.config.labels {
            map.insert(k.clone(), json!(v));
        }
    }
    if !c.config.exposed_ports.is_empty() {
        let ports = rc.entry("ExposedPorts").or_insert_with(|| json!({}));
        if !ports.is_object() {
            *ports = json!({});
        }
        let map = ports.as_object_mut().expect("an object");
        for k in c.config.exposed_ports.keys() {
            map.insert(k.clone(), json!({}));
        }
    }
    if include_volumes {
        let vols = rc.entry("Volumes").or_insert_with(|| json!({}));
        if !vols.is_object() {
            *vols = json!({});
        }
        let map = vols.as_object_mut().expect("an object");
        for m in &c.config.mounts {
            if m.kind == crate::container::config::MountKind::Volume {
                map.insert(m.destination.clone(), json!({}));
            }
        }
    }
}

/// `import`: a root file system tarball (`tar`, uncompressed) as a
/// one-layer image for `platform`.
pub fn import(store: &Store, tar: impl Read, img: &NewImage, platform: &Platform) -> Result<Made> {
    let _ = store.sweep_partials(false);
    let pin = store.pin().map_err(|e| store_error("pin the image", e))?;
    let mut writer = LayerWriter::new(store, img.compression, None)
        .map_err(|e| store_error("start the new layer", e))?;
    let mut tar = tar;
    io::copy(&mut tar, &mut writer).map_err(|e| {
        if is_disk_full(&e) {
            Error::Refused(format!(
                "import: no space left on device in {}: free some space (`cairn system prune`) and import again",
                store.root().display()
            ))
        } else {
            Error::Refused(format!("import: read the tarball: {e}"))
        }
    })?;
    let layer = writer
        .finish()
        .map_err(|e| store_error("store the imported layer", e))?;
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    config["config"] = json!({});
    let mut img = img.clone();
    if img.created_by.is_empty() {
        // podman's words: the tarball by its digest.
        img.created_by = format!("/bin/sh -c #(nop) ADD file:{} in / ", layer.diff_id.hex());
    }
    if img.comment.is_none() {
        img.comment = Some("imported from tarball".into());
    }
    finish(store, &pin, config, Vec::new(), Some(layer), &img)
}

/// The config (`config` with `--change`s, the new diff id and history
/// entry), the manifest and the ref, after the layer is stored.
fn finish(
    store: &Store,
    pin: &Pin,
    mut config: Value,
    parent_layers: Vec<Descriptor>,
    layer: Option<LayerBlob>,
    img: &NewImage,
) -> Result<Made> {
    if let Some(layer) = &layer {
        pin.add([&layer.digest])
            .map_err(|e| store_error("pin the new layer", e))?;
        if !store.has_blob(&layer.digest) {
            // A collection ran between the rename and the pin.
            return Err(Error::Refused(format!(
                "the new layer {} was removed by a concurrent prune: commit again",
                layer.digest
            )));
        }
    }
    let rc = runtime_object(&mut config)?;
    for ch in &img.changes {
        change::apply(rc, ch).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let created = match img.timestamp {
        Some(t) => chrono::DateTime::from_timestamp(t, 0)
            .ok_or_else(|| Error::Invalid(format!("timestamp {t} is out of range")))?
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => crate::container::now_rfc3339(),
    };
    config["created"] = json!(created);
    match &img.author {
        Some(a) => config["author"] = json!(a),
        None => {
            if let Some(o) = config.as_object_mut() {
                o.remove("author");
            }
        }
    }
    let rootfs = config
        .as_object_mut()
        .expect("an object")
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    rootfs["type"] = json!("layers");
    if rootfs.get("diff_ids").and_then(Value::as_array).is_none() {
        rootfs["diff_ids"] = json!([]);
    }
    if let Some(layer) = &layer {
        rootfs["diff_ids"]
            .as_array_mut()
            .expect("made an array")
            .push(json!(layer.diff_id.to_string()));
    }
    let mut entry = json!({"created": created, "created_by": img.created_by});
    if layer.is_none() {
        entry["empty_layer"] = json!(true);
    }
    if let Some(a) = &img.author {
        entry["author"] = json!(a);
    }
    if let Some(m) = &img.comment {
        entry["comment"] = json!(m);
    }
    if img.omit_history {
        if let Some(o) = config.as_object_mut() {
            o.remove("history");
        }
    } else {
        match config.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(entry),
            None => config["history"] = json!([entry]),
        }
    }
    let (config_type, manifest_type) = match img.format {
        Format::Oci => (types::OCI_CONFIG, types::OCI_MANIFEST),
        Format::Docker => (types::DOCKER_CONFIG, types::DOCKER_MANIFEST),
    };
    let mut layers = parent_layers;
    if let Some(layer) = &layer {
        layers.push(Descriptor::new(
            layer.media_type(),
            layer.digest.clone(),
            layer.size,
        ));
    }
    if img.format == Format::Docker {
        for l in &mut layers {
            l.media_type = docker_layer_type(&l.media_type).ok_or_else(|| {
                Error::Invalid(format!(
                    "layer {} is {}, which the docker format cannot describe: use --format oci",
                    l.digest, l.media_type
                ))
            })?;
        }
    }
    let config_bytes = serde_json::to_vec(&config).expect("JSON serializes");
    let (config_digest, _) = store
        .put_blob_bytes(&config_bytes, None)
        .map_err(|e| store_error("store the image config", e))?;
    pin.add([&config_digest])
        .map_err(|e| store_error("pin the image config", e))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_type.to_owned()),
        config: Descriptor::new(
            config_type,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        layers,
        annotations: img.annotations.clone().into_iter().collect(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("JSON serializes");
    let (manifest_digest, _) = store
        .put_blob_bytes(&manifest_bytes, None)
        .map_err(|e| store_error("store the image manifest", e))?;
    pin.add([&manifest_digest])
        .map_err(|e| store_error("pin the image manifest", e))?;
    let desc = Descriptor::new(
        manifest_type,
        manifest_digest.clone(),
        manifest_bytes.len() as u64,
    );
    record(store, img.name.as_ref(), desc, img.intermediate)?;
    Ok(Made {
        id: config_digest,
        manifest: manifest_digest,
        layer,
    })
}

/// The docker media type of a layer of `media_type`.
fn docker_layer_type(media_type: &str) -> Option<String> {
    Some(
        match media_type {
            types::OCI_LAYER_GZIP | types::DOCKER_LAYER_GZIP => types::DOCKER_LAYER_GZIP,
            types::OCI_LAYER | types::DOCKER_LAYER => types::DOCKER_LAYER,
            types::DOCKER_FOREIGN_LAYER => types::DOCKER_FOREIGN_LAYER,
            _ => return None,
        }
        .to_owned(),
    )
}

/// Names the new manifest `name`, or records it untagged.
fn record(
    store: &Store,
    name: Option<&Reference>,
    mut desc: Descriptor,
    intermediate: bool,
) -> Result<()> {
    if let Some(name) = name {
        return store
            .set_ref(name, &desc, None)
            .map_err(|e| store_error(&format!("name the image {name}"), e));
    }
    // The blobs' renames durable before an entry names them (set_ref does
    // the same).
    let blobs = store.dir(StoreDir::Blobs).join("sha256");
    std::fs::File::open(&blobs)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::Refused(format!("fsync {}: {e}", blobs.display())))?;
    if intermediate {
        desc.annotations
            .insert(INTERMEDIATE.to_owned(), "true".to_owned());
    }
    store
        .update_index(|index| {
            if index.manifests.iter().any(|d| d.digest == desc.digest) {
                return Ok(false);
            }
            index.manifests.push(desc.clone());
            Ok(true)
        })
        .map_err(|e| store_error("record the image", e))?;
    Ok(())
}
