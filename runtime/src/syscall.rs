//! The seam between the mount plan and the kernel: [`Syscall`], implemented
//! for real by [`crate::linux::Linux`] and, in tests, by `Recorder`, which
//! records every call against a small fake file tree so the plan's logic is
//! tested without root (see `mount.rs`' tests).
//!
//! Safe code only: a trait and its test double. The system calls that need
//! `unsafe` are wrapped in `sys`, the crate's one unsafe module.
//!
//! Paths inside the container are [`InRoot`] values: the real implementation
//! resolves them against a descriptor of the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and mounts onto
//! `/proc/self/fd/N`, so no target can lead out of the root.

use std::path::Path;

use nix::mount::MsFlags;

use crate::error::Result;
use crate::path::InRoot;

/// What a mount point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything else (regular file, device node, socket): bound onto a file.
    File,
}

/// The source of a mount.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// No source (remount, propagation change).
    None,
    /// A new filesystem; the name shows up as the source in mountinfo.
    Fs(&'a str),
    /// A host path (bind mounts).
    Host(&'a Path),
    /// A path inside the root (bind mounts of the container's own files).
    InRoot(&'a InRoot),
}

/// The system calls the mount plan needs. Paths of type [`InRoot`] are only
/// valid after [`Syscall::enter_root`].
pub trait Syscall {
    /// `mount(2)` on a host path (the root, and `/` for its propagation).
    fn mount_host(
        &mut self,
        source: Source<'_>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// Open the assembled root; from now on [`InRoot`] paths resolve in it.
    fn enter_root(&mut self, root: &Path) -> Result<()>;
    /// What a host path is (follows symlinks: the host is trusted).
    fn host_kind(&mut self, path: &Path) -> Result<Kind>;
    /// What is at `path` in the root, `None` when nothing is.
    fn kind(&mut self, path: &InRoot) -> Result<Option<Kind>>;
    /// A small text file in the root, `None` when missing.
    fn read(&mut self, path: &InRoot) -> Result<Option<String>>;
    /// Whether the directory `path` has no entries.
    fn is_empty_dir(&mut self, path: &InRoot) -> Result<bool>;
    /// Create a mount point (parents as directories) unless something is
    /// there; refuses to create anything through a symlink.
    fn create(&mut self, path: &InRoot, kind: Kind) -> Result<()>;
    /// `mount(2)` onto a path in the root.
    fn mount(
        &mut self,
        source: Source<'_>,
        target: &InRoot,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// Make a bind's flags effective: `MS_REMOUNT | MS_BIND | flags` plus the
    /// flags the kernel locks (nosuid, nodev, noexec, atime), on `target`
    /// and, when `recursive`, on every mount below it.
    fn remount_bind(&mut self, target: &InRoot, flags: MsFlags, recursive: bool) -> Result<()>;
    /// `symlink(2)`: `link` pointing to `to`.
    fn symlink(&mut self, to: &str, link: &InRoot) -> Result<()>;
    /// Write a file in the root (created, or truncated).
    fn write(&mut self, path: &InRoot, content: &[u8]) -> Result<()>;
    /// Detach the mount at `path` (`MNT_DETACH`).
    fn unmount(&mut self, path: &InRoot) -> Result<()>;
}

/// Mount flags as a stable, readable list (`nosuid,nodev,rec`); `-` if none.
pub fn flag_names(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_REC, "rec"),
        (MsFlags::MS_PRIVATE, "private"),
        (MsFlags::MS_SLAVE, "slave"),
        (MsFlags::MS_SHARED, "shared"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::None => f.write_str("-"),
            Source::Fs(name) => f.write_str(name),
            Source::Host(p) => write!(f, "host:{}", p.display()),
            Source::InRoot(p) => write!(f, "root:{p}"),
        }
    }
}

#[cfg(test)]
mod recorder;
#[cfg(test)]
pub(crate) use recorder::Recorder;
