//! Small, deterministic OCI images written straight into an OCI image layout, so tests can
//! push them with `skopeo copy oci:DIR:TAG docker://...` without network or umoci.
//!
//! Same input, same digests: tar headers carry mtime 0 and uid/gid 0, gzip carries no name or
//! time, JSON is serialized in a fixed order.
//!
//! ```no_run
//! use cairn_tests::image::{ImageSpec, OciLayout};
//! # fn main() -> anyhow::Result<()> {
//! # let dir = std::path::Path::new("/tmp/x");
//! let layout = OciLayout::create(dir)?;
//! let img = layout.add_image("v1", &ImageSpec::new().layer(&[("etc/hello", b"hi\n")]))?;
//! // push img.skopeo_ref() ("oci:<dir>:v1") to a registry
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::util::{sha256_digest, write_file};

/// OCI media type of an image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI media type of an image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI media type of an image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI media type of a gzip-compressed layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A platform as written in an index and a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... if any.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<architecture>[/<variant>]`.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform of the machine running the tests, in GOARCH spelling.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            other => (other, None),
        };
        Platform::linux(arch, variant)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

/// What goes into one image: layers of regular files, a platform and a command.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    layers: Vec<Vec<(String, Vec<u8>)>>,
    platform: Platform,
    cmd: Vec<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec::new()
    }
}

impl ImageSpec {
    /// No layers, the host platform, `Cmd ["/bin/sh"]`.
    pub fn new() -> ImageSpec {
        ImageSpec {
            layers: Vec::new(),
            platform: Platform::host(),
            cmd: vec!["/bin/sh".to_owned()],
        }
    }

    /// Appends a layer holding these regular files (mode 0644; parent directories 0755 are
    /// added). Paths are relative to the image root.
    pub fn layer(mut self, files: &[(&str, &[u8])]) -> ImageSpec {
        self.layers.push(
            files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), c.to_vec()))
                .collect(),
        );
        self
    }

    /// Sets the platform.
    pub fn platform(mut self, platform: Platform) -> ImageSpec {
        self.platform = platform;
        self
    }

    /// Sets the config's `Cmd`.
    pub fn cmd(mut self, cmd: &[&str]) -> ImageSpec {
        self.cmd = cmd.iter().map(|s| (*s).to_owned()).collect();
        self
    }
}

/// Digests of an image written by [`OciLayout::add_image`].
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// `oci:<layout dir>:<tag>`, the skopeo source reference.
    pub skopeo_ref: String,
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// Digest of the config blob.
    pub config_digest: String,
    /// Digests of the compressed layer blobs, bottom first.
    pub layer_digests: Vec<String>,
    /// Digests of the uncompressed layers (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
    /// The platform recorded in the config.
    pub platform: Platform,
}

/// Digests of an index written by [`OciLayout::add_index`].
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// `oci:<layout dir>:<tag>`; push it with `--all` to keep every platform.
    pub skopeo_ref: String,
    /// Digest of the image index.
    pub index_digest: String,
    /// The images the index lists, in order.
    pub images: Vec<BuiltImage>,
}

/// An OCI image layout directory being filled with fixture images.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
}

impl OciLayout {
    /// Creates (or reuses) a layout at `dir`: `oci-layout`, `index.json`, `blobs/sha256/`.
    pub fn create(dir: &Path) -> anyhow::Result<OciLayout> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("create {}", blobs.display()))?;
        write_file(&dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = dir.join("index.json");
        if !index.exists() {
            write_file(
                &index,
                serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [] }))?,
            )?;
        }
        Ok(OciLayout {
            dir: dir.to_owned(),
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one image and tags it `tag` (replacing an earlier entry with that tag).
    pub fn add_image(&self, tag: &str, spec: &ImageSpec) -> anyhow::Result<BuiltImage> {
        let image = self.write_image(spec)?;
        let size = self.blob_size(&image.manifest_digest)?;
        self.tag(
            tag,
            json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": image.manifest_digest,
                "size": size,
                "platform": spec.platform.to_json(),
            }),
        )?;
        Ok(BuiltImage {
            skopeo_ref: self.skopeo_ref(tag),
            ..image
        })
    }

    /// Writes one image per spec and an image index listing them with their platforms, and
    /// tags the index `tag`.
    pub fn add_index(&self, tag: &str, specs: &[ImageSpec]) -> anyhow::Result<BuiltIndex> {
        let mut images = Vec::new();
        let mut manifests = Vec::new();
        for spec in specs {
            let image = self.write_image(spec)?;
            manifests.push(json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": image.manifest_digest,
                "size": self.blob_size(&image.manifest_digest)?,
                "platform": spec.platform.to_json(),
            }));
            images.push(image);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index)?;
        let index_digest = self.write_blob(&bytes)?;
        self.tag(
            tag,
            json!({ "mediaType": MEDIA_TYPE_INDEX, "digest": index_digest, "size": bytes.len() }),
        )?;
        Ok(BuiltIndex {
            skopeo_ref: self.skopeo_ref(tag),
            index_digest,
            images,
        })
    }

    fn skopeo_ref(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    fn write_image(&self, spec: &ImageSpec) -> anyhow::Result<BuiltImage> {
        let mut layer_descs = Vec::new();
        let mut layer_digests = Vec::new();
        let mut diff_ids = Vec::new();
        for files in &spec.layers {
            let tar = layer_tar(files)?;
            diff_ids.push(sha256_digest(&tar));
            let gz = gzip(&tar)?;
            let digest = self.write_blob(&gz)?;
            layer_descs.push(json!({
                "mediaType": MEDIA_TYPE_LAYER_GZIP,
                "digest": digest,
                "size": gz.len(),
            }));
            layer_digests.push(digest);
        }
        let mut config = spec.platform.to_json();
        config["config"] = json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": spec.cmd,
        });
        config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
        let config_bytes = serde_json::to_vec(&config)?;
        let config_digest = self.write_blob(&config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {
                "mediaType": MEDIA_TYPE_CONFIG,
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": layer_descs,
        });
        let manifest_digest = self.write_blob(&serde_json::to_vec(&manifest)?)?;
        Ok(BuiltImage {
            skopeo_ref: String::new(),
            manifest_digest,
            config_digest,
            layer_digests,
            diff_ids,
            platform: spec.platform.clone(),
        })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    fn write_blob(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        write_file(&self.blob_path(&digest), bytes)?;
        Ok(digest)
    }

    fn blob_size(&self, digest: &str) -> anyhow::Result<u64> {
        let path = self.blob_path(digest);
        Ok(std::fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .len())
    }

    /// Points `tag` at `descriptor` in index.json (the OCI `ref.name` annotation).
    fn tag(&self, tag: &str, mut descriptor: Value) -> anyhow::Result<()> {
        let path = self.dir.join("index.json");
        let mut index: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
        )
        .with_context(|| format!("parse {}", path.display()))?;
        descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        let manifests = index["manifests"]
            .as_array_mut()
            .with_context(|| format!("{}: no manifests array", path.display()))?;
        manifests.retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != tag);
        manifests.push(descriptor);
        write_file(&path, serde_json::to_vec(&index)?)
    }
}

/// A tar stream of `files` plus their parent directories, with fixed metadata.
fn layer_tar(files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut dirs = BTreeSet::new();
    for (path, _) in files {
        let mut parent = Path::new(path.trim_start_matches('/')).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_owned());
            parent = p.parent();
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for dir in &dirs {
        let mut header = fixed_header(tar::EntryType::Directory, 0o755, 0);
        builder
            // Trailing slash, as tar(1) writes directory names.
            .append_data(&mut header, format!("{}/", dir.display()), std::io::empty())
            .with_context(|| format!("tar directory {}", dir.display()))?;
    }
    for (path, contents) in files {
        let mut header = fixed_header(tar::EntryType::Regular, 0o644, contents.len() as u64);
        builder
            .append_data(&mut header, path.trim_start_matches('/'), &contents[..])
            .with_context(|| format!("tar file {path}"))?;
    }
    builder.into_inner().context("finish layer tar")
}

fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).context("gzip layer")?;
    enc.finish().context("gzip layer")
}

/// The manifest digest (`sha256:…`) that the OCI layout at `layout` tags `tag`: the digest of
/// the index.json entry whose `org.opencontainers.image.ref.name` annotation is `tag`. Panics
/// when the layout has no such entry.
pub fn tagged_digest(layout: &Path, tag: &str) -> String {
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).expect("the layout's index.json"),
    )
    .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .expect("a digest string")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_layouts_valid() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = ImageSpec::new().layer(&[("etc/hello", b"hi\n"), ("top", b"")]);
        let ia = OciLayout::create(a.path())
            .unwrap()
            .add_image("t", &spec)
            .unwrap();
        let ib = OciLayout::create(b.path())
            .unwrap()
            .add_image("t", &spec)
            .unwrap();
        assert_eq!(ia.manifest_digest, ib.manifest_digest);
        assert_eq!(ia.layer_digests.len(), 1);

        let tar = layer_tar(&[("etc/hello".into(), b"hi\n".to_vec())]).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().to_vec()).unwrap())
            .collect();
        assert_eq!(names, ["etc/", "etc/hello"]);

        // Re-tagging replaces the entry instead of adding a second one.
        let layout = OciLayout::create(a.path()).unwrap();
        layout.add_image("t", &ImageSpec::new()).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(a.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    }
}
