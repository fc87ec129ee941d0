//! Named volumes, as podman's `local` driver keeps them: a directory per
//! volume under the store's `volumes/`, the data in its `_data`, and beside
//! it `volume.json` (name, driver, creation time, labels, options).
//!
//! ```text
//! volumes/<name>/volume.json   written once, atomically, at create
//! volumes/<name>/_data/        what containers mount
//! ```
//!
//! A volume is made by `volume create`, or by the first container that
//! names it (`-v NAME:/dst`, `--mount type=volume`) or asks for an
//! anonymous one: [`Volumes::ensure`]. A directory without `volume.json`
//! (made by cairn before it recorded volumes) is a volume all the same,
//! its creation time the directory's. Removal renames the directory aside
//! first, so a crash leaves either the volume or a `.rm-*` leftover that
//! the next removal of any volume deletes; a volume in use by a container
//! (in any state) is kept unless the caller removes those containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::config::MountKind;
use crate::container::{remove_tree, ContainerId, Containers};
use crate::error::{Context as _, Error, Result};

/// The metadata file beside `_data`.
const META: &str = "volume.json";

/// One volume's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// RFC 3339 with ns.
    pub created_at: String,
    /// `--label`s.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--opt`s.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The data directory (not recorded: it follows from the store).
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// A volume name is joined to a host path, so it must be a plain name:
/// podman's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::Refused(format!(
            "volume name {name:?} is invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )));
    }
    Ok(())
}

/// The volumes of one store.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    /// The volumes under `dir` (the store's `volumes/`).
    pub fn new(dir: impl Into<PathBuf>) -> Volumes {
        Volumes { dir: dir.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the volume `name` (a random 64-hex name for `None`).
    /// `Ok(None)` when it exists already.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Option<Volume>> {
        let name = match name {
            Some(n) => {
                validate_name(n)?;
                n.to_owned()
            }
            None => crate::container::new_id(),
        };
        let dir = self.path(&name);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("create volume {}", dir.display())),
        }
        let v = Volume {
            name,
            driver: "local".into(),
            created_at: crate::container::now_rfc3339(),
            labels,
            options,
            mountpoint: dir.join("_data"),
        };
        std::fs::create_dir_all(&v.mountpoint)
            .with_context(|| format!("create {}", v.mountpoint.display()))?;
        self.write_meta(&v)?;
        Ok(Some(v))
    }

    fn write_meta(&self, v: &Volume) -> Result<()> {
        let path = self.path(&v.name).join(META);
        let text = serde_json::to_vec_pretty(v).context("encode volume.json")?;
        cairn_fsutil::write_atomic(&path, &text, 0o644, cairn_fsutil::Durability::Durable)
            .with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// The volume a container names: made (and recorded) if missing.
    /// `data` is its `_data` directory as the container's config has it.
    pub fn ensure(&self, data: &Path) -> Result<()> {
        std::fs::create_dir_all(data)
            .with_context(|| format!("create volume directory {}", data.display()))?;
        let Some(dir) = data.parent() else {
            return Ok(());
        };
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        if dir.parent() != Some(self.dir.as_path()) || dir.join(META).exists() {
            return Ok(());
        }
        self.write_meta(&Volume {
            name: name.to_owned(),
            driver: "local".into(),
            created_at: crate::container::now_rfc3339(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            mountpoint: data.to_owned(),
        })
    }

    /// The volume `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<Volume>> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let dir = self.path(name);
        if !dir.join("_data").is_dir() {
            return Ok(None);
        }
        let meta = dir.join(META);
        let mut v = match std::fs::read(&meta) {
            Ok(bytes) => serde_json::from_slice::<Volume>(&bytes)
                .with_context(|| format!("read {}", meta.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mtime = std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                    .unwrap_or_default();
                Volume {
                    name: name.to_owned(),
                    driver: "local".into(),
                    created_at: mtime,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    mountpoint: PathBuf::new(),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", meta.display())),
        };
        v.name = name.to_owned();
        v.mountpoint = dir.join("_data");
        Ok(Some(v))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(v) = self.get(&n)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The containers (any state) that mount the volume `name`.
    pub fn users(&self, containers: &Containers, name: &str) -> Result<Vec<ContainerId>> {
        Ok(containers
            .list()?
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name))
            })
            .map(|c| c.config.id.clone())
            .collect())
    }

    /// Removes the volume `name` and its data: renamed aside, then
    /// deleted. `Ok(false)` when it does not exist. The caller checks
    /// [`users`](Self::users) first.
    pub fn remove(&self, name: &str) -> Result<bool> {
        if self.get(name)?.is_none() {
            return Ok(false);
        }
        let dir = self.path(name);
        let trash = self
            .dir
            .join(format!(".rm-{name}-{}", crate::container::new_id()));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("remove volume {}", dir.display())),
        }
        // Leftovers of removals a crash interrupted go too.
        for e in std::fs::read_dir(&self.dir)
            .with_context(|| format!("read {}", self.dir.display()))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".rm-") {
                remove_tree(&e.path()).with_context(|| format!("remove {}", e.path().display()))?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_get_remove() {
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::new(d.path().join("volumes"));
        assert!(vols.list().unwrap().is_empty());
        let labels = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let v = vols
            .create(Some("data"), labels.clone(), BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(v.mountpoint, d.path().join("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        assert!(vols
            .create(Some("data"), BTreeMap::new(), BTreeMap::new())
            .unwrap()
            .is_none());
        let anon = vols
            .create(None, BTreeMap::new(), BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        // A container's volume, made before volumes were recorded.
        std::fs::create_dir_all(d.path().join("volumes/old/_data")).unwrap();
        // and one a container makes now.
        vols.ensure(&d.path().join("volumes/fresh/_data")).unwrap();
        let names: Vec<String> = vols.list().unwrap().into_iter().map(|v| v.name).collect();
        let mut want = vec![
            anon.name.clone(),
            "data".into(),
            "fresh".into(),
            "old".into(),
        ];
        want.sort();
        assert_eq!(names, want);
        let got = vols.get("data").unwrap().unwrap();
        assert_eq!((got.labels, got.driver.as_str()), (labels, "local"));
        assert!(!vols.get("old").unwrap().unwrap().created_at.is_empty());
        assert!(vols.get("../etc").unwrap().is_none());
        assert!(vols
            .create(Some("../x"), BTreeMap::new(), BTreeMap::new())
            .is_err());
        // A leftover of an interrupted removal goes with the next one.
        std::fs::create_dir_all(d.path().join("volumes/.rm-x/_data")).unwrap();
        assert!(vols.remove("data").unwrap());
        assert!(!vols.remove("data").unwrap());
        assert!(!d.path().join("volumes/data").exists());
        assert!(!d.path().join("volumes/.rm-x").exists());
        assert_eq!(vols.list().unwrap().len(), 3);
    }
}
