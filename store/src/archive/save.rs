//! Writers of the local transports: `oci:`, `oci-archive:`,
//! `docker-archive:` and `dir:`, streamed from the store's blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_fsutil::{IoContext as _, LockMode, PathError};
use serde_json::{json, Value};

use super::out::{AtomicFile, TarOut, TempFile};
use crate::digest::Digest;
use crate::dirs::StoreDir;
use crate::error::Error;
use crate::images::{Image, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::layout::{Store, REF_NAME};
use crate::media::{layer_compression, types, Compression, Descriptor, Index};
use crate::reference::Reference;

/// One image to write and the names to record for it.
#[derive(Debug, Clone)]
pub struct SaveImage {
    /// The image.
    pub image: Image,
    /// Names recorded in the destination (`RepoTags` of a docker archive;
    /// the first is an OCI layout's ref name when none is given).
    pub names: Vec<Reference>,
}

/// A local destination, in skopeo's transport syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `oci:DIR[:REF]`: added to the layout at DIR (created if missing).
    OciDir {
        /// The layout directory.
        dir: PathBuf,
        /// The ref name to record (default: the image's first name).
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The ref name to record.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]`: `docker save`'s format.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// Names recorded as `RepoTags` (default: the images' own).
        references: Vec<Reference>,
    },
    /// `dir:DIR`: manifest.json, version and blobs named by hex.
    DockerDir {
        /// The directory.
        dir: PathBuf,
    },
}

/// The archive formats `save` writes to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI layout in a tar.
    Oci,
    /// `docker save`'s format.
    Docker,
}

/// Options of [`write_image`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// For `dir:` and `oci:`: store uncompressed layers gzip-compressed
    /// (podman's `--compress`). Layers already compressed are kept as they
    /// are.
    pub compress: bool,
}

impl Destination {
    /// Parses `oci:`, `oci-archive:`, `docker-archive:` and `dir:`; `None`
    /// for anything else (a registry reference).
    pub fn parse(s: &str) -> Result<Option<Destination>, Error> {
        let split = |rest: &str| match rest.split_once(':') {
            Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_owned())),
            Some((p, _)) => (PathBuf::from(p), None),
            None => (PathBuf::from(rest), None),
        };
        let dest = if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split(rest);
            Destination::OciDir { dir, reference }
        } else if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, reference) = split(rest);
            Destination::OciArchive { file, reference }
        } else if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, reference) = split(rest);
            let references = match reference {
                Some(r) => vec![crate::reference::Name::parse(&r)?.qualify(crate::DOCKER_HUB)?],
                None => Vec::new(),
            };
            Destination::DockerArchive { file, references }
        } else if let Some(rest) = s.strip_prefix("dir:") {
            Destination::DockerDir {
                dir: PathBuf::from(rest),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(dest))
    }

    /// How the destination is written on the command line.
    pub fn describe(&self) -> String {
        match self {
            Destination::OciDir { dir, .. } => format!("oci:{}", dir.display()),
            Destination::OciArchive { file, .. } => format!("oci-archive:{}", file.display()),
            Destination::DockerArchive { file, .. } => {
                format!("docker-archive:{}", file.display())
            }
            Destination::DockerDir { dir } => format!("dir:{}", dir.display()),
        }
    }
}

/// Writes `images` to `dest`. Archives and `dir:` appear at their path
/// only when complete (written under a temporary name, fsynced, renamed);
/// `oci:` gets its blobs first and its `index.json` last, so a crash leaves
/// the layout as it was plus unreferenced blobs. Only a docker archive
/// holds several images; the others take exactly one.
pub fn write_image(
    store: &Store,
    images: &[SaveImage],
    dest: &Destination,
    opts: &WriteOptions,
) -> Result<(), Error> {
    let what = dest.describe();
    let one = || match images {
        [one] => Ok(one),
        _ => Err(Error::Source {
            source_name: what.clone(),
            message: format!(
                "holds one image, {} given; save several into a docker archive",
                images.len()
            ),
        }),
    };
    let pin = pin_images(store, images)?;
    match dest {
        Destination::OciArchive { file, reference } => write_archive_file(
            store,
            images,
            ArchiveFormat::Oci,
            reference.as_deref(),
            file,
        ),
        Destination::DockerArchive { file, references } => {
            // As podman (c/image): a docker archive is never rewritten.
            if std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() != 0) {
                return Err(Error::Source {
                    source_name: what,
                    message: "docker-archive doesn't support modifying existing images; \
                              remove the file or name another"
                        .into(),
                });
            }
            let mut images = images.to_vec();
            if !references.is_empty() {
                if let [one] = images.as_mut_slice() {
                    one.names.clone_from(references);
                }
            }
            write_archive_file(store, &images, ArchiveFormat::Docker, None, file)
        }
        Destination::OciDir { dir, reference } => {
            write_oci_dir(store, &pin, one()?, dir, reference.as_deref(), opts)
        }
        Destination::DockerDir { dir } => write_docker_dir(store, &pin, one()?, dir, opts),
    }
}

/// Writes an archive to `file`: a new or regular file atomically (temp,
/// fsync, rename); a device or pipe (`-o /dev/stdout`, a FIFO) is written
/// in place, never replaced.
fn write_archive_file(
    store: &Store,
    images: &[SaveImage],
    format: ArchiveFormat,
    reference: Option<&str>,
    file: &Path,
) -> Result<(), Error> {
    match std::fs::metadata(file) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .io_context("open", file)?;
            let mut sink = PlainSink(f, file.to_owned());
            write_archive_stream(store, images, format, reference, &mut sink)
        }
        _ => {
            let mut out = AtomicFile::create(file, 0o644)?;
            write_archive_stream(store, images, format, reference, &mut out)?;
            out.commit()
        }
    }
}

struct PlainSink(File, PathBuf);

impl ArchiveSink for PlainSink {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.0
    }
    fn name(&self) -> PathBuf {
        self.1.clone()
    }
}

/// A file, or anything else an archive can be streamed to.
pub trait ArchiveSink {
    /// The writer.
    fn writer(&mut self) -> &mut dyn Write;
    /// What it is, for errors.
    fn name(&self) -> PathBuf;
}

impl ArchiveSink for AtomicFile {
    fn writer(&mut self) -> &mut dyn Write {
        self.file()
    }
    fn name(&self) -> PathBuf {
        self.tmp_path().to_owned()
    }
}

/// Standard output as an [`ArchiveSink`].
#[derive(Debug)]
pub struct StdoutSink(pub std::io::Stdout);

impl ArchiveSink for StdoutSink {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.0
    }
    fn name(&self) -> PathBuf {
        PathBuf::from("standard output")
    }
}

/// Streams an archive of `images` to standard output (`save` without
/// `-o`).
pub fn write_archive_to_stdout(
    store: &Store,
    images: &[SaveImage],
    format: ArchiveFormat,
) -> Result<(), Error> {
    let _pin = pin_images(store, images)?;
    let mut sink = StdoutSink(std::io::stdout());
    write_archive_stream(store, images, format, None, &mut sink)
}

fn pin_images(store: &Store, images: &[SaveImage]) -> Result<crate::pin::Pin, Error> {
    super::out::sweep_stale(store);
    let pin = store.pin()?;
    pin.add(images.iter().flat_map(|i| i.image.blobs()))?;
    // Removed between the listing and the pin?
    for i in images {
        for b in i.image.blobs() {
            if !store.has_blob(b) {
                return Err(Error::Source {
                    source_name: image_label(i),
                    message: format!(
                        "blob {b} is not in the store (removed meanwhile?); pull the image again"
                    ),
                });
            }
        }
    }
    Ok(pin)
}

fn image_label(i: &SaveImage) -> String {
    i.names
        .first()
        .map_or_else(|| i.image.id().hex().to_owned(), ToString::to_string)
}

fn write_archive_stream(
    store: &Store,
    images: &[SaveImage],
    format: ArchiveFormat,
    reference: Option<&str>,
    sink: &mut dyn ArchiveSink,
) -> Result<(), Error> {
    let name = sink.name();
    match format {
        ArchiveFormat::Oci => {
            let [one] = images else {
                return Err(Error::Source {
                    source_name: "oci-archive".into(),
                    message: format!("holds one image, {} given", images.len()),
                });
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let tar = TarOut::new(sink.writer(), &name, now);
            write_oci_tar(store, one, reference, tar)
        }
        ArchiveFormat::Docker => {
            let tar = TarOut::new(sink.writer(), &name, 0);
            write_docker_tar(store, images, tar)
        }
    }
}

/// The image's manifest as an OCI manifest: stored bytes if it is one
/// (its digest kept), else converted from Docker schema 2.
fn oci_manifest(store: &Store, image: &Image) -> Result<(Vec<u8>, Descriptor), Error> {
    let desc = &image.manifest_descriptor;
    if image.manifest.effective_media_type() == types::OCI_MANIFEST {
        let bytes = store.read_blob(&desc.digest, MAX_MANIFEST_SIZE)?;
        let mut d = Descriptor::new(types::OCI_MANIFEST, desc.digest.clone(), desc.size);
        d.platform.clone_from(&desc.platform);
        return Ok((bytes, d));
    }
    let m = &image.manifest;
    let layer = |l: &Descriptor| -> Result<Value, Error> {
        let t = match layer_compression(&l.media_type) {
            Some(Compression::Gzip) => types::OCI_LAYER_GZIP,
            Some(Compression::Zstd) => types::OCI_LAYER_ZSTD,
            Some(Compression::None) => types::OCI_LAYER,
            None => return Err(unsupported_layer(image, l)),
        };
        Ok(json!({"mediaType": t, "digest": l.digest.to_string(), "size": l.size}))
    };
    let layers: Vec<Value> = m.layers.iter().map(layer).collect::<Result<_, _>>()?;
    let v = json!({
        "schemaVersion": 2,
        "mediaType": types::OCI_MANIFEST,
        "config": {"mediaType": types::OCI_CONFIG, "digest": m.config.digest.to_string(), "size": m.config.size},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&v).expect("a manifest serializes");
    let d = Descriptor::new(
        types::OCI_MANIFEST,
        Digest::sha256_of(&bytes),
        bytes.len() as u64,
    );
    Ok((bytes, d))
}

/// The image's manifest as Docker schema 2 (what `dir:` holds, as podman
/// writes it).
fn docker_manifest(store: &Store, image: &Image, layers: &[Descriptor]) -> Result<Vec<u8>, Error> {
    let m = &image.manifest;
    if image.manifest.effective_media_type() == types::DOCKER_MANIFEST
        && layers == m.layers.as_slice()
    {
        return store.read_blob(image.digest(), MAX_MANIFEST_SIZE);
    }
    let layer = |l: &Descriptor| -> Result<Value, Error> {
        let t = match layer_compression(&l.media_type) {
            Some(Compression::Gzip) => types::DOCKER_LAYER_GZIP,
            Some(Compression::None) => types::DOCKER_LAYER,
            _ => return Err(unsupported_layer(image, l)),
        };
        Ok(json!({"mediaType": t, "size": l.size, "digest": l.digest.to_string()}))
    };
    let layers: Vec<Value> = layers.iter().map(layer).collect::<Result<_, _>>()?;
    let v = json!({
        "schemaVersion": 2,
        "mediaType": types::DOCKER_MANIFEST,
        "config": {"mediaType": types::DOCKER_CONFIG, "size": m.config.size, "digest": m.config.digest.to_string()},
        "layers": layers,
    });
    Ok(serde_json::to_vec(&v).expect("a manifest serializes"))
}

fn unsupported_layer(image: &Image, l: &Descriptor) -> Error {
    Error::Source {
        source_name: image.id().to_string(),
        message: format!(
            "layer {} has media type {:?}, which this format cannot hold; save as oci-archive",
            l.digest, l.media_type
        ),
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

fn copy_blob<W: Write>(
    store: &Store,
    tar: &mut TarOut<W>,
    path: &str,
    digest: &Digest,
    mode: u32,
) -> Result<(), Error> {
    let p = store.blob_path(digest);
    let mut f = store.open_blob(digest)?;
    let size = f.metadata().io_context("stat", &p)?.len();
    tar.file(path, size, mode, &mut f, &p)
}

fn write_oci_tar<W: Write>(
    store: &Store,
    one: &SaveImage,
    reference: Option<&str>,
    mut tar: TarOut<W>,
) -> Result<(), Error> {
    let (manifest_bytes, mut desc) = oci_manifest(store, &one.image)?;
    tar.dir("blobs/")?;
    tar.dir(&format!("blobs/{}/", desc.digest.algorithm().as_str()))?;
    let m = &one.image.manifest;
    let mut seen = BTreeSet::new();
    for d in m.layers.iter().map(|l| &l.digest).chain([&m.config.digest]) {
        if seen.insert(d.clone()) {
            copy_blob(store, &mut tar, &blob_name(d), d, 0o644)?;
        }
    }
    if seen.insert(desc.digest.clone()) {
        tar.bytes(&blob_name(&desc.digest), &manifest_bytes, 0o644)?;
    }
    let ref_name = reference
        .map(str::to_owned)
        .or_else(|| one.names.first().map(ToString::to_string));
    if let Some(r) = ref_name {
        desc.annotations.insert(REF_NAME.to_owned(), r);
    }
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    tar.bytes(
        "index.json",
        &serde_json::to_vec(&index).expect("an index serializes"),
        0o644,
    )?;
    tar.bytes("oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#, 0o644)?;
    tar.finish()?;
    Ok(())
}

/// A layer ready to go into a docker archive: uncompressed, at `path`.
struct PlainLayer {
    path: PathBuf,
    size: u64,
    _temp: Option<TempFile>,
}

/// Decompresses each layer of `layers` into a temporary file of the
/// store's `tmp/` in a worker thread, one ahead of the consumer, which
/// gets them in order (stored uncompressed layers are used in place).
fn plain_layers<'s>(
    store: &'s Store,
    scope: &'s std::thread::Scope<'s, '_>,
    layers: Vec<Descriptor>,
) -> std::sync::mpsc::Receiver<Result<PlainLayer, Error>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    scope.spawn(move || {
        for l in layers {
            let r = plain_layer(store, &l);
            let failed = r.is_err();
            if tx.send(r).is_err() || failed {
                return;
            }
        }
    });
    rx
}

fn plain_layer(store: &Store, l: &Descriptor) -> Result<PlainLayer, Error> {
    static N: AtomicU64 = AtomicU64::new(0);
    let src = store.blob_path(&l.digest);
    let compression = layer_compression(&l.media_type).unwrap_or(Compression::Gzip);
    if compression == Compression::None {
        let size = std::fs::metadata(&src).io_context("stat", &src)?.len();
        return Ok(PlainLayer {
            path: src,
            size,
            _temp: None,
        });
    }
    let tmp = store.dir(StoreDir::Tmp).join(format!(
        "save-{}-{}.tar",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = TempFile { path: tmp.clone() };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .io_context("create", &tmp)?;
    let f = std::io::BufReader::with_capacity(1 << 20, store.open_blob(&l.digest)?);
    let mut dec: Box<dyn Read> = match compression {
        Compression::Zstd => {
            Box::new(zstd::Decoder::with_buffer(f).io_context("decompress", &src)?)
        }
        _ => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = dec.read(&mut buf).io_context("decompress layer", &src)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).io_context("write", &tmp)?;
        size += n as u64;
    }
    Ok(PlainLayer {
        path: tmp,
        size,
        _temp: Some(temp),
    })
}

/// The legacy (`docker save` v1.0) metadata c/image writes beside the
/// manifest: per layer a directory named by an id derived from the chain
/// id, holding `layer.tar` (a symlink), `VERSION` and `json`.
fn legacy_layer(
    config: &Value,
    chain_id: &Digest,
    parent: Option<&str>,
    top: bool,
) -> (String, Vec<u8>) {
    // A Go map marshals with sorted keys; values are the config's own.
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    if let Some(p) = parent {
        m.insert("parent", Value::String(p.to_owned()));
    }
    if top {
        for k in [
            "architecture",
            "config",
            "container",
            "container_config",
            "created",
            "docker_version",
            "os",
        ] {
            m.insert(k, config.get(k).cloned().unwrap_or(Value::Null));
        }
    }
    m.insert("layer_id", Value::String(chain_id.to_string()));
    let id = Digest::sha256_of(go_json(&m).as_bytes()).hex().to_owned();
    m.remove("layer_id");
    m.insert("id", Value::String(id.clone()));
    (id, go_json(&m).into_bytes())
}

/// JSON as Go's encoding/json writes it (HTML characters escaped).
fn go_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v)
        .expect("json values serialize")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn write_docker_tar<W: Write>(
    store: &Store,
    images: &[SaveImage],
    mut tar: TarOut<W>,
) -> Result<(), Error> {
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for one in images {
        let image = &one.image;
        let config_bytes = store.read_blob(image.id(), MAX_CONFIG_SIZE)?;
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::Source {
            source_name: image_label(one),
            message: format!("config {} is not JSON: {e}", image.id()),
        })?;
        let diff_ids = &image.config.rootfs.diff_ids;
        if diff_ids.len() != image.manifest.layers.len() {
            return Err(Error::Source {
                source_name: image_label(one),
                message: format!(
                    "config lists {} diff ids for {} layers",
                    diff_ids.len(),
                    image.manifest.layers.len()
                ),
            });
        }
        let mut layer_names = Vec::new();
        let todo: Vec<Descriptor> = image
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .filter(|(_, diff)| !written.contains(&format!("{}.tar", diff.hex())))
            .map(|(l, _)| l.clone())
            .collect();
        std::thread::scope(|scope| -> Result<(), Error> {
            let rx = plain_layers(store, scope, todo);
            for diff in diff_ids {
                let name = format!("{}.tar", diff.hex());
                layer_names.push(name.clone());
                if written.contains(&name) {
                    continue;
                }
                let layer = rx.recv().expect("one result per layer")?;
                let mut f = File::open(&layer.path).io_context("open", &layer.path)?;
                tar.file(&name, layer.size, 0o444, &mut f, &layer.path)?;
                written.insert(name);
            }
            Ok(())
        })?;
        let config_name = format!("{}.json", image.id().hex());
        if written.insert(config_name.clone()) {
            tar.bytes(&config_name, &config_bytes, 0o444)?;
        }
        let mut chain: Option<Digest> = None;
        let mut last: Option<String> = None;
        for (i, diff) in diff_ids.iter().enumerate() {
            let c = match &chain {
                None => diff.clone(),
                Some(c) => Digest::sha256_of(format!("{c} {diff}").as_bytes()),
            };
            let (id, json_bytes) =
                legacy_layer(&config, &c, last.as_deref(), i + 1 == diff_ids.len());
            if written.insert(format!("{id}/")) {
                tar.symlink(
                    &format!("{id}/layer.tar"),
                    &format!("../{}.tar", diff.hex()),
                )?;
                tar.bytes(&format!("{id}/VERSION"), b"1.0", 0o444)?;
                tar.bytes(&format!("{id}/json"), &json_bytes, 0o444)?;
            }
            chain = Some(c);
            last = Some(id);
        }
        let tags: Vec<String> = one
            .names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(ToString::to_string)
            .collect();
        if let Some(last) = &last {
            for n in one.names.iter() {
                if let Some(t) = n.tag() {
                    repositories
                        .entry(n.name())
                        .or_default()
                        .insert(t.to_owned(), last.clone());
                }
            }
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": tags,
            "Layers": layer_names,
        }));
    }
    tar.bytes("manifest.json", go_json(&manifest).as_bytes(), 0o444)?;
    tar.bytes("repositories", go_json(&repositories).as_bytes(), 0o444)?;
    tar.finish()?;
    Ok(())
}

/// Layers as `dir:`/`oci:` hold them: as stored, or with `compress`,
/// uncompressed ones gzip-compressed into the store first.
fn dir_layers(
    store: &Store,
    pin: &crate::pin::Pin,
    image: &Image,
    opts: &WriteOptions,
) -> Result<Vec<Descriptor>, Error> {
    let mut out = Vec::new();
    for l in &image.manifest.layers {
        if opts.compress && layer_compression(&l.media_type) == Some(Compression::None) {
            out.push(gzip_layer(store, pin, l)?);
        } else {
            out.push(l.clone());
        }
    }
    Ok(out)
}

/// Compresses an uncompressed layer blob with gzip into the store (in
/// parallel, see [`crate::compress`]); a blob no image references until the
/// destination's manifest does, pinned by the caller's pin meanwhile.
fn gzip_layer(store: &Store, pin: &crate::pin::Pin, l: &Descriptor) -> Result<Descriptor, Error> {
    let mut w = crate::compress::LayerWriter::new(store, Compression::Gzip, None)?;
    let src = store.blob_path(&l.digest);
    let mut f = store.open_blob(&l.digest)?;
    std::io::copy(&mut f, &mut w).io_context("compress", &src)?;
    let blob = w.finish()?;
    pin.add([&blob.digest])?;
    Ok(Descriptor::new(blob.media_type(), blob.digest, blob.size))
}

/// Copies a store blob to `path` atomically (skipped if a file of that
/// name and size is there: content-addressed, already written).
fn put_file_from_blob(store: &Store, digest: &Digest, path: &Path) -> Result<(), Error> {
    let size = store.blob_size(digest).unwrap_or(u64::MAX);
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == size) {
        return Ok(());
    }
    let mut out = AtomicFile::create(path, 0o644)?;
    let src = store.blob_path(digest);
    let mut f = store.open_blob(digest)?;
    std::io::copy(&mut f, out.file()).io_context("copy", &src)?;
    out.commit()
}

fn put_file_bytes(path: &Path, data: &[u8]) -> Result<(), Error> {
    let mut out = AtomicFile::create(path, 0o644)?;
    out.file().write_all(data).io_context("write", path)?;
    out.commit()
}

fn mkdirs(dir: &Path) -> Result<(), Error> {
    Ok(std::fs::create_dir_all(dir).io_context("create directory", dir)?)
}

fn write_oci_dir(
    store: &Store,
    pin: &crate::pin::Pin,
    one: &SaveImage,
    dir: &Path,
    reference: Option<&str>,
    opts: &WriteOptions,
) -> Result<(), Error> {
    let layers = dir_layers(store, pin, &one.image, opts)?;
    let (manifest_bytes, mut desc) = if layers == one.image.manifest.layers {
        oci_manifest(store, &one.image)?
    } else {
        let mut img = one.image.clone();
        img.manifest.layers = layers;
        img.manifest.media_type = Some(types::DOCKER_MANIFEST.into());
        oci_manifest(store, &img)?
    };
    let manifest: crate::media::Manifest =
        serde_json::from_slice(&manifest_bytes).expect("a manifest written here parses");
    if dir.exists()
        && !dir.join("oci-layout").is_file()
        && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
    {
        return Err(Error::Source {
            source_name: format!("oci:{}", dir.display()),
            message: "exists and is not an OCI layout; name an empty or new directory".into(),
        });
    }
    let blobs = dir.join("blobs").join(desc.digest.algorithm().as_str());
    mkdirs(&blobs)?;
    let _lock = cairn_fsutil::LockGuard::acquire(&dir.join(".cairn-lock"), LockMode::Exclusive)?;
    for d in manifest
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([&manifest.config.digest])
    {
        put_file_from_blob(store, d, &blobs.join(d.hex()))?;
    }
    put_file_bytes(&blobs.join(desc.digest.hex()), &manifest_bytes)?;
    let layout = dir.join("oci-layout");
    if !layout.is_file() {
        put_file_bytes(&layout, br#"{"imageLayoutVersion": "1.0.0"}"#)?;
    }
    let index_path = dir.join("index.json");
    let mut index: Index = match std::fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Source {
            source_name: format!("oci:{}", dir.display()),
            message: format!("index.json is not an OCI index ({e}); name another directory"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
            schema_version: 2,
            media_type: None,
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        },
        Err(e) => return Err(PathError::new("read", &index_path, e).into()),
    };
    let ref_name = reference
        .map(str::to_owned)
        .or_else(|| one.names.first().map(ToString::to_string));
    if let Some(r) = &ref_name {
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME) != Some(r));
        desc.annotations.insert(REF_NAME.to_owned(), r.clone());
    } else {
        index
            .manifests
            .retain(|d| d.digest != desc.digest || d.annotations.contains_key(REF_NAME));
    }
    index.manifests.push(desc);
    put_file_bytes(
        &index_path,
        &serde_json::to_vec(&index).expect("an index serializes"),
    )?;
    drop(_lock);
    let _ = std::fs::remove_file(dir.join(".cairn-lock"));
    Ok(())
}

fn write_docker_dir(
    store: &Store,
    pin: &crate::pin::Pin,
    one: &SaveImage,
    dir: &Path,
    opts: &WriteOptions,
) -> Result<(), Error> {
    let what = format!("dir:{}", dir.display());
    let is_dir_layout = dir.join("version").is_file();
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) && !is_dir_layout {
        return Err(Error::Source {
            source_name: what,
            message: "exists and is not empty; name an empty or new directory".into(),
        });
    }
    let layers = dir_layers(store, pin, &one.image, opts)?;
    let manifest = docker_manifest(store, &one.image, &layers)?;
    // Written beside DIR, renamed over it when complete.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let base = dir.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{base}.cairn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    mkdirs(&tmp)?;
    let guard = TempDir(tmp.clone());
    for d in layers
        .iter()
        .map(|l| &l.digest)
        .chain([&one.image.manifest.config.digest])
    {
        put_file_from_blob(store, d, &tmp.join(d.hex()))?;
    }
    put_file_bytes(&tmp.join("manifest.json"), &manifest)?;
    put_file_bytes(&tmp.join("version"), b"Directory Transport Version: 1.1\n")?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).io_context("replace", dir)?;
    }
    std::fs::rename(&tmp, dir).io_context("rename into place", dir)?;
    std::mem::forget(guard);
    Ok(())
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legacy layer id podman 4.3 wrote for the test image debian-min
    /// (one layer): `897892c4…/layer.tar` in its `podman save`.
    #[test]
    fn legacy_layer_ids_are_podmans() {
        let config: Value = serde_json::from_str(
            r#"{"created":"2025-05-20T00:00:00Z","architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:6047b4e53ccba837a3653a461b8558ecf6c29ca24b408d8b6e20dbd2fb28554d"]}}"#,
        )
        .unwrap();
        let diff: Digest =
            "sha256:6047b4e53ccba837a3653a461b8558ecf6c29ca24b408d8b6e20dbd2fb28554d"
                .parse()
                .unwrap();
        let (id, json) = legacy_layer(&config, &diff, None, true);
        assert_eq!(
            id,
            "897892c43ddb004064040f4dc050fdb3011743b1be0e717b806fa076fee1305c"
        );
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]},"container":null,"container_config":null,"created":"2025-05-20T00:00:00Z","docker_version":null,"id":"897892c43ddb004064040f4dc050fdb3011743b1be0e717b806fa076fee1305c","os":"linux"}"#
        );
        // A lower layer: only its parent and id.
        let (_, json) = legacy_layer(&config, &diff, Some("abc"), false);
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(v["parent"], "abc");
    }

    #[test]
    fn go_json_escapes_html() {
        assert_eq!(
            go_json(&json!({"a": "<&>"})),
            r#"{"a":"\u003c\u0026\u003e"}"#
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(
            Destination::parse("oci:/tmp/l:x:1").unwrap(),
            Some(Destination::OciDir {
                dir: "/tmp/l".into(),
                reference: Some("x:1".into())
            })
        );
        assert_eq!(
            Destination::parse("dir:/tmp/d").unwrap(),
            Some(Destination::DockerDir {
                dir: "/tmp/d".into()
            })
        );
        let Some(Destination::DockerArchive { file, references }) =
            Destination::parse("docker-archive:/tmp/a.tar:foo:1").unwrap()
        else {
            panic!("not a docker archive");
        };
        assert_eq!(file, PathBuf::from("/tmp/a.tar"));
        assert_eq!(references[0].to_string(), "docker.io/library/foo:1");
        assert_eq!(Destination::parse("quay.io/a/b:1").unwrap(), None);
        assert!(Destination::parse("docker-archive:/tmp/a.tar:Bad Name").is_err());
    }
}
