//! Image roots in a cairn store, seen as a container sees them: a stack of
//! layer directories (`chains/<name>/diff`, listed lowest first in
//! `images/<manifest>/info.json`), or one flattened `rootfs/`.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The lower directories, topmost first, of the image root in `store`
/// whose directory name starts with `manifest_hex` (any built one when
/// empty).
pub fn lowers(store: &Path, manifest_hex: &str) -> Vec<PathBuf> {
    let images = store.join("images");
    let dir = std::fs::read_dir(&images)
        .unwrap_or_else(|e| panic!("list {}: {e}", images.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(manifest_hex))
                && !p.to_string_lossy().contains(".tmp-")
                && p.join("info.json").exists()
        })
        .unwrap_or_else(|| panic!("no image root {manifest_hex} in {}", images.display()));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("info.json")).unwrap()).unwrap();
    let chains: Vec<String> = info["chains"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    if chains.is_empty() {
        return vec![dir.join("rootfs")];
    }
    chains
        .iter()
        .rev()
        .map(|c| store.join("chains").join(c).join("diff"))
        .collect()
}

/// Where `rel` is in the stack, as overlayfs finds it (no symlink is
/// followed): the topmost directory that has it, unless a whiteout or a
/// non-directory above hides it.
pub fn find(lowers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    'layers: for lower in lowers {
        let mut p = lower.clone();
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue 'layers;
            };
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            if i + 1 < parts.len() && !m.is_dir() {
                return None;
            }
        }
        return Some(p);
    }
    None
}

/// The stack mounted read-only (overlayfs; root only) at a temporary
/// directory, unmounted on drop; a stack of one is that directory.
#[derive(Debug)]
pub struct Merged {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Merged {
    /// Mounts `lowers` (topmost first).
    pub fn mount(lowers: &[PathBuf]) -> Merged {
        if lowers.len() == 1 {
            // Overlayfs wants two lower directories when it has no upper.
            return Merged {
                _dir: None,
                path: lowers[0].clone(),
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merged");
        std::fs::create_dir(&path).unwrap();
        let joined: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={}", joined.join(":")))
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay of {joined:?}");
        Merged {
            _dir: Some(dir),
            path,
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Merged {
    fn drop(&mut self) {
        if self._dir.is_none() {
            return;
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
