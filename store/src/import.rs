//! Imports without a registry, with skopeo's transport syntax:
//! `oci:<dir>[:<ref>]` (an OCI image layout directory) and
//! `oci-archive:<file>[:<ref>]` (a tar of one).
//!
//! Every blob is verified against its digest on the way in, exactly as a
//! registry pull is; the ref is recorded last.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_fsutil::{IoContext as _, LockMode};

use crate::digest::{Digest, Hasher};
use crate::error::Error;
use crate::images::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::layout::{Store, REF_NAME};
use crate::media::{host_platform, Descriptor, Index, ManifestKind, Platform};
use crate::pin::Pin;
use crate::progress::{BlobKind, PullProgress, Pulled};
use crate::reference::{Name, Reference};

/// Where an image comes from, parsed from a pull argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A registry reference (`docker://` optional).
    Registry(String),
    /// `oci:<dir>[:<ref>]`.
    OciDir {
        /// The layout directory.
        dir: PathBuf,
        /// The ref name inside it.
        reference: Option<String>,
    },
    /// `oci-archive:<file>[:<ref>]`.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The ref name inside it.
        reference: Option<String>,
    },
}

impl Source {
    /// Parses skopeo's transport syntax; anything without a known transport
    /// prefix is a registry reference.
    pub fn parse(s: &str) -> Source {
        let split = |rest: &str| match rest.split_once(':') {
            Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_owned())),
            Some((p, _)) => (PathBuf::from(p), None),
            None => (PathBuf::from(rest), None),
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split(rest);
            Source::OciDir { dir, reference }
        } else if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, reference) = split(rest);
            Source::OciArchive { file, reference }
        } else {
            Source::Registry(s.strip_prefix("docker://").unwrap_or(s).to_owned())
        }
    }
}

/// Imports an image from an OCI layout directory.
pub fn import_oci_dir(
    store: &Store,
    dir: &Path,
    reference: Option<&str>,
    platform: Option<&Platform>,
    progress: Arc<dyn PullProgress>,
) -> Result<Pulled, Error> {
    let source_name = format!("oci:{}", dir.display());
    let pin = store.pin()?;
    let index = read_layout_index(dir, &source_name)?;
    let src = LayoutBlobs {
        root: dir.to_owned(),
        name: source_name.clone(),
    };
    let name = path_name(dir)?;
    import_from(
        store,
        &src,
        &index,
        reference,
        Some(name),
        platform,
        &progress,
        &pin,
    )
}

/// Imports an image from an OCI layout tar (plain, gzip or zstd). The
/// archive is read once (see [`crate::archive`]'s scanner): each blob
/// streams into the store verified; blobs the chosen image does not need
/// are removed again.
pub fn import_oci_archive(
    store: &Store,
    file: &Path,
    reference: Option<&str>,
    platform: Option<&Platform>,
    progress: Arc<dyn PullProgress>,
) -> Result<Pulled, Error> {
    let source_name = format!("oci-archive:{}", file.display());
    let pin = store.pin()?;
    let mut added = Vec::new();
    let result = (|| {
        let f = File::open(file).io_context("open archive", file)?;
        let mut r = crate::archive::decompressed(f, &source_name)?;
        let scanned = crate::archive::scan(store, &pin, &mut r, &source_name, &mut added)?;
        let bytes = scanned
            .small
            .get("index.json")
            .ok_or_else(|| Error::Source {
                source_name: source_name.clone(),
                message: "no index.json: not an OCI archive".into(),
            })?;
        let index: Index = serde_json::from_slice(bytes).map_err(|e| Error::Source {
            source_name: source_name.clone(),
            message: format!("index.json is not an OCI index: {e}"),
        })?;
        let src = LayoutBlobs {
            root: store.root().to_owned(),
            name: source_name.clone(),
        };
        import_from(
            store, &src, &index, reference, None, platform, &progress, &pin,
        )
    })();
    let result = result.map_err(|e| e.for_image(&source_name));
    // Blobs of other images in the archive, or of a failed import, go again.
    crate::archive::drop_added(store, pin, &added);
    result
}

/// Reads blobs of an OCI layout directory, verifying them.
pub(crate) struct LayoutBlobs {
    pub(crate) root: PathBuf,
    pub(crate) name: String,
}

impl LayoutBlobs {
    fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn read_small(&self, d: &Descriptor, limit: u64) -> Result<Vec<u8>, Error> {
        if d.size > limit {
            return Err(self.bad(format!(
                "{} is {} bytes, more than {limit} allowed",
                d.digest, d.size
            )));
        }
        let p = self.path(&d.digest);
        let mut data = Vec::new();
        File::open(&p)
            .io_context("open blob", &p)?
            .take(limit + 1)
            .read_to_end(&mut data)
            .io_context("read blob", &p)?;
        let mut h = Hasher::new(d.digest.algorithm());
        h.update(&data);
        let actual = h.finish();
        if actual != d.digest {
            return Err(Error::DigestMismatch {
                what: format!("blob of {}", self.name),
                expected: d.digest.clone(),
                actual,
            });
        }
        if data.len() as u64 != d.size {
            return Err(Error::SizeMismatch {
                what: format!("blob of {}", self.name),
                digest: d.digest.clone(),
                expected: d.size,
                got: data.len() as u64,
            });
        }
        Ok(data)
    }

    fn bad(&self, message: String) -> Error {
        Error::Source {
            source_name: self.name.clone(),
            message,
        }
    }
}

fn read_layout_index(dir: &Path, name: &str) -> Result<Index, Error> {
    let bad = |m: String| Error::Source {
        source_name: name.to_owned(),
        message: m,
    };
    if !dir.join("oci-layout").is_file() {
        return Err(bad(
            "no oci-layout file: not an OCI image layout directory".into()
        ));
    }
    let p = dir.join("index.json");
    let bytes = std::fs::read(&p).io_context("read", &p)?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("index.json is not an OCI index: {e}")))
}

// Private, two callers; the arguments are the import's own parameters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn import_from(
    store: &Store,
    src: &LayoutBlobs,
    index: &Index,
    reference: Option<&str>,
    name: Option<Reference>,
    platform: Option<&Platform>,
    progress: &Arc<dyn PullProgress>,
    pin: &Pin,
) -> Result<Pulled, Error> {
    let entry = match reference {
        Some(r) => index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == r))
            .ok_or_else(|| {
                src.bad(format!(
                    "no image named {r:?} (it has: {})",
                    ref_names(index)
                ))
            })?,
        None => match index.manifests.as_slice() {
            [one] => one,
            [] => return Err(src.bad("the layout holds no image".into())),
            _ => {
                return Err(src.bad(format!(
                    "the layout holds {} images; name one as {}:<ref> (refs: {})",
                    index.manifests.len(),
                    src.name,
                    ref_names(index)
                )))
            }
        },
    };
    let name_hint = reference
        .map(str::to_owned)
        .or_else(|| entry.annotations.get(REF_NAME).cloned());
    let bytes = src.read_small(entry, MAX_MANIFEST_SIZE)?;
    let manifest_error = |source| Error::Manifest {
        reference: src.name.clone(),
        source,
    };
    let (desc, manifest_bytes, manifest, index_digest) =
        match ManifestKind::parse(&bytes, Some(&entry.media_type)).map_err(manifest_error)? {
            ManifestKind::Image(m) => (entry.clone(), bytes, m, None),
            ManifestKind::Index(i) => {
                let want = platform.cloned().unwrap_or_else(host_platform);
                let e = i.select(&want).ok_or_else(|| Error::NoPlatform {
                    reference: src.name.clone(),
                    want: want.to_string(),
                    offered: i.platforms().join(", "),
                })?;
                pin.add([&entry.digest])?;
                store.put_blob_bytes(&bytes, Some(&entry.digest))?;
                let b = src.read_small(e, MAX_MANIFEST_SIZE)?;
                let m =
                    match ManifestKind::parse(&b, Some(&e.media_type)).map_err(manifest_error)? {
                        ManifestKind::Image(m) => m,
                        ManifestKind::Index(_) => {
                            return Err(src.bad("an index entry points at another index".into()))
                        }
                    };
                (e.clone(), b, m, Some(entry.digest.clone()))
            }
        };
    manifest.check_runnable().map_err(manifest_error)?;
    let config = src.read_small(&manifest.config, MAX_CONFIG_SIZE)?;
    pin.add(
        [&desc.digest, &manifest.config.digest]
            .into_iter()
            .chain(manifest.layers.iter().map(|l| &l.digest)),
    )?;
    store.put_blob_bytes(&manifest_bytes, Some(&desc.digest))?;
    store.put_blob_bytes(&config, Some(&manifest.config.digest))?;
    let (mut count, mut bytes_copied) = (0, 0);
    for layer in &manifest.layers {
        if store.has_blob(&layer.digest) {
            progress.blob_skipped(layer, BlobKind::Layer);
            continue;
        }
        let lock = store.lock_blob(&layer.digest)?;
        if lock.is_stored() {
            progress.blob_skipped(layer, BlobKind::Layer);
            continue;
        }
        progress.blob_started(layer, BlobKind::Layer, 0);
        let p = src.path(&layer.digest);
        let mut f = File::open(&p).io_context("open blob", &p)?;
        let mut w = lock.writer(Some(layer.size), false)?;
        copy_into(&mut f, &mut w, &p)?;
        w.commit().map_err(|e| label(e, &src.name))?;
        progress.blob_done(layer, BlobKind::Layer);
        count += 1;
        bytes_copied += layer.size;
    }
    let name = match name {
        Some(n) => n,
        None => archive_name(&src.name, name_hint.as_deref())?,
    };
    progress.writing_manifest();
    let mut record = Descriptor::new(
        manifest.effective_media_type(),
        desc.digest.clone(),
        desc.size,
    );
    record.platform = desc.platform.clone();
    let in_use = store.lock_image_use(&desc.digest, LockMode::Shared)?;
    store.set_ref(&name, &record, index_digest.as_ref())?;
    Ok(Pulled {
        reference: name,
        image_id: manifest.config.digest.clone(),
        manifest_digest: desc.digest,
        blobs_fetched: count,
        bytes_fetched: bytes_copied,
        in_use: std::sync::Arc::new(in_use),
    })
}

fn copy_into(
    r: &mut dyn Read,
    w: &mut crate::layout::BlobWriter,
    path: &Path,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).io_context("read", path)?;
        if n == 0 {
            return Ok(());
        }
        w.write(&buf[..n])?;
    }
}

fn label(e: Error, source: &str) -> Error {
    match e {
        Error::DigestMismatch {
            expected, actual, ..
        } => Error::DigestMismatch {
            what: format!("blob of {source}"),
            expected,
            actual,
        },
        Error::SizeMismatch {
            digest,
            expected,
            got,
            ..
        } => Error::SizeMismatch {
            what: format!("blob of {source}"),
            digest,
            expected,
            got,
        },
        other => other,
    }
}

fn ref_names(index: &Index) -> String {
    let names: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    if names.is_empty() {
        "none named".into()
    } else {
        names.join(", ")
    }
}

/// podman's name for an image pulled from `oci:<dir>`: the directory's
/// absolute path under `localhost/`, tag `latest` (`oci:/tmp/lay:x` becomes
/// `localhost/tmp/lay:latest`), whatever ref was chosen inside it.
fn path_name(dir: &Path) -> Result<Reference, Error> {
    let abs = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir()
            .io_context("resolve current directory for", dir)?
            .join(dir)
    };
    let parts: Vec<String> = abs
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(sanitize(&n.to_string_lossy())),
            _ => None,
        })
        .filter(|p| !p.is_empty())
        .collect();
    let path = if parts.is_empty() {
        "image".to_owned()
    } else {
        parts.join("/")
    };
    Ok(Name::parse(&format!("{path}:latest"))?.qualify("localhost")?)
}

/// podman's name for an image from `oci-archive:`: a fully qualified ref
/// (given, or the entry's ref-name annotation) is kept, a short one goes
/// under `localhost/`.
fn archive_name(source: &str, hint: Option<&str>) -> Result<Reference, Error> {
    let Some(hint) = hint else {
        return Err(Error::Source {
            source_name: source.to_owned(),
            message: "the image has no ref name; name it: oci-archive:FILE:NAME".into(),
        });
    };
    Ok(Name::parse(hint)?.qualify("localhost")?)
}

fn sanitize(component: &str) -> String {
    let lower: String = component
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    lower
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(Source::parse("debian"), Source::Registry("debian".into()));
        assert_eq!(
            Source::parse("docker://quay.io/a/b:1"),
            Source::Registry("quay.io/a/b:1".into())
        );
        assert_eq!(
            Source::parse("oci:/tmp/l:docker.io/library/x:1"),
            Source::OciDir {
                dir: "/tmp/l".into(),
                reference: Some("docker.io/library/x:1".into())
            }
        );
        assert_eq!(
            Source::parse("oci-archive:img.tar"),
            Source::OciArchive {
                file: "img.tar".into(),
                reference: None
            }
        );
    }

    #[test]
    fn local_names() {
        assert_eq!(
            path_name(Path::new("/tmp/My Layout")).unwrap().to_string(),
            "localhost/tmp/my-layout:latest"
        );
        let a = |h: Option<&str>| archive_name("oci-archive:x", h).map(|r| r.to_string());
        assert_eq!(a(Some("t")).unwrap(), "localhost/t:latest");
        assert_eq!(a(Some("debian:12")).unwrap(), "localhost/debian:12");
        assert_eq!(
            a(Some("docker.io/library/foo:1")).unwrap(),
            "docker.io/library/foo:1"
        );
        assert!(a(Some("Bad Name!")).is_err());
        assert!(a(None).is_err());
    }
}
