//! Directory chores shared by the builders and the collector: listing,
//! sweeping dead writers' temps, removing trees.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cairn_fsutil::IoContext as _;

use crate::error::Error;

pub(super) fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, Error> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<io::Result<Vec<_>>>()
            .io_context("list", dir)
            .map_err(Error::from),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).io_context("list", dir).map_err(Error::from),
    }
}

/// Removes the entries of `dir` whose names start with `prefix`: temp files
/// and directories of writers that died. The caller holds the lock that
/// excludes live writers of those names. Best effort: what cannot be removed
/// now is left to the next sweep or `prune`.
pub(super) fn sweep_temps(dir: &Path, prefix: &str) {
    sweep_where(dir, |name| name.starts_with(prefix));
}

/// [`sweep_temps`] of the entries whose names satisfy `dead`.
pub(super) fn sweep_where(dir: &Path, dead: impl Fn(&str) -> bool) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if dead(&e.file_name().to_string_lossy()) {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Removes a tree that may hold read-only directories.
pub(super) fn remove_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk_dirs(path) {
        let _ = fs::set_permissions(&entry, fs::Permissions::from_mode(0o700));
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => fs::remove_file(path),
        other => other,
    }
}

fn walk_dirs(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![path.to_owned()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        out.push(p.clone());
        if let Ok(rd) = fs::read_dir(&p) {
            todo.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}
