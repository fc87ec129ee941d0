//! Unpacking a tar build context (`cairn build -` with an archive on
//! stdin) into a scratch directory, every entry placed relative to
//! descriptors of directories that were created or checked on the way, so
//! nothing lands outside the scratch directory.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::archive::decoder;
use super::ContextError;

/// Unpacks `r` (a plain or compressed tar) into the empty directory
/// `scratch`. Directory modes and mtimes are set last (a read-only
/// directory must still take its children).
pub(crate) fn unpack(r: impl Read, scratch: &Path) -> Result<(), ContextError> {
    let stream = |source: io::Error| ContextError::TarStream {
        scratch: scratch.to_path_buf(),
        source,
    };
    let root = rustix::fs::open(
        scratch,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| stream(e.into()))?;
    let mut ar = tar::Archive::new(decoder(r).map_err(stream)?);
    let mut dirs: Vec<(Vec<String>, u32, u64)> = Vec::new();
    for ent in ar.entries().map_err(stream)? {
        let mut ent = ent.map_err(stream)?;
        let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let refuse = |reason: &str| ContextError::TarEntry {
            entry: raw.clone(),
            reason: reason.to_string(),
        };
        let comps =
            components(&raw).ok_or_else(|| refuse("it climbs out of the context with \"..\""))?;
        let h = ent.header();
        let mode = h.mode().map_err(stream)? & 0o7777;
        let mtime = h.mtime().map_err(stream)?;
        let kind = h.entry_type();
        let Some((leaf, parents)) = comps.split_last() else {
            continue; // the root itself
        };
        let parent = walk(&root, parents, true).map_err(|e| refuse(&e))?;
        let io = |e: io::Error| refuse(&e.to_string());
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, leaf.as_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) if is_dir(&parent, leaf) => {}
                    Err(e) => return Err(io(e.into())),
                }
                dirs.push((comps.clone(), mode, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove(&parent, leaf).map_err(io)?;
                let fd = rustix::fs::openat(
                    &parent,
                    leaf.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io(e.into()))?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut ent, &mut f).map_err(stream)?;
                f.flush().map_err(io)?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| io(e.into()))?;
                rustix::fs::futimens(&f, &times(mtime)).map_err(|e| io(e.into()))?;
            }
            tar::EntryType::Symlink => {
                let target = ent
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                remove(&parent, leaf).map_err(io)?;
                // The target is stored as written: the context resolves
                // every symlink inside itself when it reads.
                rustix::fs::symlinkat(target.as_str(), &parent, leaf.as_str())
                    .map_err(|e| io(e.into()))?;
            }
            tar::EntryType::Link => {
                let raw_t = String::from_utf8_lossy(&ent.link_name_bytes().unwrap_or_default())
                    .into_owned();
                let t = components(&raw_t)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| refuse("its hard link target leaves the context"))?;
                let (tleaf, tparents) = t.split_last().unwrap_or((&t[0], &[]));
                let tparent = walk(&root, tparents, false).map_err(|e| refuse(&e))?;
                remove(&parent, leaf).map_err(io)?;
                rustix::fs::linkat(
                    &tparent,
                    tleaf.as_str(),
                    &parent,
                    leaf.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| io(e.into()))?;
            }
            tar::EntryType::Fifo => {
                remove(&parent, leaf).map_err(io)?;
                rustix::fs::mknodat(
                    &parent,
                    leaf.as_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(|e| io(e.into()))?;
            }
            // Devices need privileges and have no place in a context;
            // global headers and the like carry nothing to unpack.
            _ => {}
        }
    }
    // Deepest first, so setting a parent's mtime comes after its children.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    for (comps, mode, mtime) in dirs {
        let fd = walk(&root, &comps, false).map_err(|e| ContextError::TarEntry {
            entry: comps.join("/"),
            reason: e,
        })?;
        let set = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .and_then(|()| rustix::fs::futimens(&fd, &times(mtime)));
        set.map_err(|e| ContextError::TarEntry {
            entry: comps.join("/"),
            reason: io::Error::from(e).to_string(),
        })?;
    }
    Ok(())
}

/// The elements of an entry name: leading `/` and `.` dropped, `..`
/// folded; `None` when a `..` would climb above the root.
fn components(name: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c.to_string()),
        }
    }
    Some(out)
}

/// Opens the directory `comps` below `root`, each element a real
/// directory (creating missing ones when `create`); a symlink or a file
/// on the way is refused.
fn walk(root: &OwnedFd, comps: &[String], create: bool) -> Result<OwnedFd, String> {
    let mut cur = rustix::io::dup(root).map_err(|e| e.to_string())?;
    for c in comps {
        let open = |d: BorrowedFd<'_>| {
            rustix::fs::openat(
                d,
                c.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let next = match open(cur.as_fd()) {
            Err(Errno::NOENT) if create => {
                rustix::fs::mkdirat(&cur, c.as_str(), Mode::from_raw_mode(0o700))
                    .map_err(|e| format!("creating {c}: {e}"))?;
                open(cur.as_fd())
            }
            r => r,
        };
        cur = next.map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => {
                format!("its parent \"{c}\" is a symlink or a file, refused (it could lead outside the context)")
            }
            e => format!("opening {c}: {e}"),
        })?;
    }
    Ok(cur)
}

fn is_dir(parent: &OwnedFd, leaf: &str) -> bool {
    rustix::fs::statat(parent, leaf, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Removes a non-directory at `leaf` so a later entry replaces it.
fn remove(parent: &OwnedFd, leaf: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, leaf, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
