//! OCI and Docker schema 2 manifests, indexes, configs and their media types.
//!
//! The types are lenient where real registries differ (missing `mediaType`,
//! extra fields) and strict where safety depends on it (digests, sizes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media type strings.
pub mod types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, uncompressed tar.
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, zstd.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer, uncompressed (deprecated, still seen).
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// OCI non-distributable layer, gzip.
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI non-distributable layer, zstd.
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, gzip.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker layer, uncompressed (rare, but valid).
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker foreign (Windows) layer, gzip.
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Docker schema 1 manifest (refused).
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker schema 1 signed manifest (refused).
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// Every manifest type cairn can pull, in the Accept header's order of
    /// preference.
    pub const ACCEPTED_MANIFESTS: &[&str] =
        &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
}

/// The compression of a layer as its media type declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression a layer media type declares, or `None` if cairn cannot
/// run layers of that type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    use types::*;
    match media_type {
        OCI_LAYER | OCI_LAYER_ND | DOCKER_LAYER => Some(Compression::None),
        OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER => {
            Some(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// Where a descriptor says a blob is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Exact size in bytes.
    pub size: u64,
    /// Alternative download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arbitrary annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform, for index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor without platform, urls or annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, `arm`, …).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows).
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, if it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// Layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, if it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest document turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived, never stored in bulk
pub enum ManifestKind {
    /// A single-platform image.
    Image(Manifest),
    /// A list of platform images.
    Index(Index),
}

/// Why manifest bytes are not something cairn can pull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Docker schema 1.
    #[error("docker schema 1 manifests are not supported (deprecated since 2017); push the image again with a current tool, e.g. `skopeo copy --format v2s2`")]
    Schema1,
    /// A manifest of a media type that is not an image or index.
    #[error("unsupported manifest media type {0:?}: cairn pulls OCI and Docker schema 2 images and indexes")]
    MediaType(String),
    /// A layer cairn cannot apply.
    #[error("unsupported layer media type {0:?}: cairn runs container images (tar, gzip or zstd layers) only")]
    LayerMediaType(String),
    /// Not JSON, or JSON of another shape.
    #[error("malformed manifest: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl ManifestKind {
    /// Parses manifest bytes, deciding image or index from the declared media
    /// type (`content_type` from the registry, else the document's
    /// `mediaType`, else its shape).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ManifestKind, ManifestError> {
        use types::*;
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let declared = content_type
            .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
            .or(probe.media_type.clone());
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let is_index = match declared.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => return Err(ManifestError::Schema1),
            Some(other) => return Err(ManifestError::MediaType(other.to_owned())),
            None if probe.manifests.is_some() => true,
            None if probe.config.is_some() => false,
            None => return Err(ManifestError::MediaType("(none)".to_owned())),
        };
        let malformed = |e: serde_json::Error| ManifestError::Malformed(e.to_string());
        if is_index {
            let index: Index = serde_json::from_slice(bytes).map_err(malformed)?;
            if index.schema_version != 2 {
                return Err(ManifestError::Malformed(format!(
                    "schemaVersion {} (expected 2)",
                    index.schema_version
                )));
            }
            Ok(ManifestKind::Index(index))
        } else {
            let manifest: Manifest = serde_json::from_slice(bytes).map_err(malformed)?;
            if manifest.schema_version != 2 {
                return Err(ManifestError::Malformed(format!(
                    "schemaVersion {} (expected 2)",
                    manifest.schema_version
                )));
            }
            Ok(ManifestKind::Image(manifest))
        }
    }
}

impl Manifest {
    /// The media type to record for this manifest: declared, or by its config.
    pub fn effective_media_type(&self) -> &str {
        match &self.media_type {
            Some(m) => m,
            None if self.config.media_type == types::DOCKER_CONFIG => types::DOCKER_MANIFEST,
            None => types::OCI_MANIFEST,
        }
    }

    /// Checks that this is a runnable container image: a known config type and
    /// only tar layers.
    pub fn check_runnable(&self) -> Result<(), ManifestError> {
        let cfg = self.config.media_type.as_str();
        if cfg != types::OCI_CONFIG && cfg != types::DOCKER_CONFIG {
            return Err(ManifestError::MediaType(format!(
                "{} (config media type {cfg:?}: an artifact, not a container image)",
                self.effective_media_type()
            )));
        }
        for layer in &self.layers {
            if layer_compression(&layer.media_type).is_none() {
                return Err(ManifestError::LayerMediaType(layer.media_type.clone()));
            }
        }
        Ok(())
    }
}

/// The platform this machine runs, in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    };
    let variant = match architecture {
        "arm" => Some("v7".to_owned()),
        _ => None,
    };
    Platform {
        architecture: architecture.to_owned(),
        os: std::env::consts::OS.to_owned(),
        variant,
        os_version: None,
    }
}

impl Platform {
    /// Parses `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64"
            ));
        }
        let arch = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: arch.to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            os_version: None,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Whether an index entry is an attestation or other non-image artifact
/// (buildkit's provenance entries carry `unknown/unknown`).
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

/// Normalized variant for comparison: arm64's `v8` is its default.
fn variant_of<'a>(arch: &str, v: Option<&'a str>) -> Option<&'a str> {
    match (arch, v) {
        ("arm64", Some("v8")) => None,
        (_, v) => v.filter(|v| !v.is_empty()),
    }
}

impl Index {
    /// The entry that runs on `want`: same os and architecture; for a wanted
    /// variant the same variant or, for arm, an older one it can run (v7 runs
    /// v6 and v5); without a wanted variant, the entry without one first.
    /// Attestation entries are never chosen.
    pub fn select(&self, want: &Platform) -> Option<&Descriptor> {
        let want_variant = variant_of(&want.architecture, want.variant.as_deref());
        let mut best: Option<(u32, &Descriptor)> = None;
        for d in &self.manifests {
            if is_attestation(d) {
                continue;
            }
            let Some(p) = &d.platform else { continue };
            if p.os != want.os || p.architecture != want.architecture {
                continue;
            }
            let have = variant_of(&p.architecture, p.variant.as_deref());
            let score = match (want_variant, have) {
                (w, h) if w == h => 100,
                (None, Some(_)) => 50,
                (Some(w), Some(h)) if want.architecture == "arm" => {
                    match (arm_level(w), arm_level(h)) {
                        (Some(w), Some(h)) if h < w => 50 + h,
                        _ => continue,
                    }
                }
                (Some(_), None) => 40,
                _ => continue,
            };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, d));
            }
        }
        best.map(|(_, d)| d)
    }

    /// The platforms offered, for an error message.
    pub fn platforms(&self) -> Vec<String> {
        self.manifests
            .iter()
            .filter(|d| !is_attestation(d))
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect()
    }
}

fn arm_level(v: &str) -> Option<u32> {
    v.strip_prefix('v')?.parse().ok()
}

/// The parts of an image config cairn reads; the raw JSON is kept for
/// `inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The runtime defaults.
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    /// Layer diff ids.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default)]
    pub history: Vec<serde_json::Value>,
}

/// An image config's `config` object (what a container starts with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `user[:group]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `port/proto` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `KEY=value` strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default command argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volume mount points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// An image config's `rootfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        let mut d = Descriptor::new(types::OCI_MANIFEST, Digest::sha256_of(&[n]), 1);
        d.platform = Some(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            os_version: None,
        });
        d
    }

    fn index(entries: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(types::OCI_INDEX.into()),
            manifests: entries,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn platform_selection_table() {
        let mut attest = entry("unknown", "unknown", None, 9);
        attest.annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
        let idx = index(vec![
            attest,
            entry("linux", "amd64", None, 1),
            entry("linux", "arm64", Some("v8"), 2),
            entry("linux", "arm", Some("v6"), 3),
            entry("linux", "arm", Some("v7"), 4),
            entry("windows", "amd64", None, 5),
            entry("linux", "386", None, 6),
        ]);
        let cases: &[(&str, Option<u8>)] = &[
            ("linux/amd64", Some(1)),
            ("linux/arm64", Some(2)),
            ("linux/arm64/v8", Some(2)),
            ("linux/arm/v7", Some(4)),
            ("linux/arm/v6", Some(3)),
            ("linux/arm/v8", Some(4)),
            ("linux/arm/v5", None),
            ("windows/amd64", Some(5)),
            ("linux/s390x", None),
            ("linux/386", Some(6)),
        ];
        for (want, expect) in cases {
            let p = Platform::parse(want).unwrap();
            let got = idx.select(&p).map(|d| d.digest.clone());
            assert_eq!(got, expect.map(|n| Digest::sha256_of(&[n])), "{want}");
        }
        let only_v6 = index(vec![entry("linux", "arm", Some("v6"), 3)]);
        assert!(only_v6
            .select(&Platform::parse("linux/arm").unwrap())
            .is_some());
        let attest_only = index(vec![{
            let mut a = entry("unknown", "unknown", None, 9);
            a.platform = None;
            a
        }]);
        assert!(attest_only.select(&host_platform()).is_none());
    }

    #[test]
    fn platform_parse() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classifies_manifests() {
        let d = Digest::sha256_of(b"x");
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[{{"mediaType":"{}","digest":"{d}","size":1}}]}}"#,
            types::DOCKER_CONFIG,
            types::DOCKER_LAYER_GZIP
        );
        let m = ManifestKind::parse(image.as_bytes(), Some(types::DOCKER_MANIFEST)).unwrap();
        let ManifestKind::Image(m) = m else { panic!() };
        assert_eq!(m.effective_media_type(), types::DOCKER_MANIFEST);
        m.check_runnable().unwrap();
        // Without any declared type the shape decides.
        assert!(matches!(
            ManifestKind::parse(image.as_bytes(), None).unwrap(),
            ManifestKind::Image(_)
        ));
        let list = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            ManifestKind::parse(list.as_bytes(), None).unwrap(),
            ManifestKind::Index(_)
        ));
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            ManifestKind::parse(s1.as_bytes(), None).unwrap_err(),
            ManifestError::Schema1
        );
        assert_eq!(
            ManifestKind::parse(s1.as_bytes(), Some(types::DOCKER_SCHEMA1_SIGNED)).unwrap_err(),
            ManifestError::Schema1
        );
        let helm = ManifestKind::parse(
            image.as_bytes(),
            Some("application/vnd.cncf.helm.chart.v1+json"),
        )
        .unwrap_err();
        assert!(matches!(helm, ManifestError::MediaType(_)));
        assert!(matches!(
            ManifestKind::parse(b"not json", None).unwrap_err(),
            ManifestError::Malformed(_)
        ));
        let artifact = image.replace(types::DOCKER_LAYER_GZIP, "application/vnd.in-toto+json");
        let ManifestKind::Image(a) = ManifestKind::parse(artifact.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert!(matches!(
            a.check_runnable().unwrap_err(),
            ManifestError::LayerMediaType(_)
        ));
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(
            layer_compression(types::OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            layer_compression(types::DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(types::OCI_LAYER), Some(Compression::None));
        assert_eq!(layer_compression("application/octet-stream"), None);
    }
}
