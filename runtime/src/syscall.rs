//! The seam between the mount plan and the kernel: [`Syscall`], implemented
//! for real by [`crate::linux::Linux`] and by [`Recorder`], which records
//! every call against a small fake file tree so the plan's logic is tested
//! without root (see `mount.rs`' tests).
//!
//! Paths inside the container are [`InRoot`] values: the real implementation
//! resolves them against a descriptor of the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and mounts onto
//! `/proc/self/fd/N`, so no target can lead out of the root.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
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

/// A [`Syscall`] that changes nothing: it records each call as one line and
/// answers queries from a fake tree of container paths (and host paths for
/// bind sources). Lines look like
/// `mount tmpfs /dev/shm tmpfs nosuid,nodev,noexec mode=1777,size=65536k`.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The calls made, one line each.
    pub calls: Vec<String>,
    /// Fake tree inside the root: path → kind and, for files, content.
    pub tree: BTreeMap<String, (Kind, String)>,
    /// Fake host paths for bind sources.
    pub host: BTreeMap<PathBuf, Kind>,
    /// Make `mount` of this filesystem type fail with this errno (to test
    /// fallbacks).
    pub fail_fs: BTreeMap<String, i32>,
    entered: bool,
}

impl Recorder {
    /// A recorder whose root has `/`, `/etc`, `/proc`, `/dev`, `/sys`,
    /// `/tmp` and `/run` directories, and whose host has the usual `/dev`
    /// nodes and `/proc`, `/sys`, `/dev`, `/dev/mqueue` directories.
    pub fn new() -> Self {
        let mut r = Recorder::default();
        for d in ["/", "/etc", "/proc", "/dev", "/sys", "/tmp", "/run"] {
            r.tree.insert(d.into(), (Kind::Dir, String::new()));
        }
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            r.host.insert(PathBuf::from("/dev").join(n), Kind::File);
        }
        for d in ["/proc", "/sys", "/dev", "/dev/mqueue"] {
            r.host.insert(d.into(), Kind::Dir);
        }
        r
    }

    /// Add a file (with content) to the fake root, parents included.
    pub fn file(mut self, path: &str, content: &str) -> Self {
        self.add_parents(path);
        self.tree.insert(path.into(), (Kind::File, content.into()));
        self
    }

    /// Add a directory to the fake root, parents included.
    pub fn dir(mut self, path: &str) -> Self {
        self.add_parents(path);
        self.tree.insert(path.into(), (Kind::Dir, String::new()));
        self
    }

    /// Add a host path (bind source).
    pub fn host_path(mut self, path: &str, kind: Kind) -> Self {
        self.host.insert(path.into(), kind);
        self
    }

    fn add_parents(&mut self, path: &str) {
        let mut p = String::new();
        for c in path
            .split('/')
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, v)| v)
        {
            p.push('/');
            p.push_str(c);
            self.tree
                .entry(p.clone())
                .or_insert((Kind::Dir, String::new()));
        }
    }

    fn need_root(&self) -> Result<()> {
        if self.entered {
            Ok(())
        } else {
            Err(Error::Usage(
                "recorder: container path used before enter_root".into(),
            ))
        }
    }

    fn enoent(path: impl AsRef<Path>) -> Error {
        Error::sys(
            "stat",
            path,
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    }
}

impl Syscall for Recorder {
    fn mount_host(
        &mut self,
        source: Source<'_>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.calls.push(format!(
            "host-mount {source} {} {} {} {}",
            target.display(),
            fstype.unwrap_or("-"),
            flag_names(flags),
            data.unwrap_or("-")
        ));
        Ok(())
    }

    fn enter_root(&mut self, root: &Path) -> Result<()> {
        self.entered = true;
        self.calls.push(format!("enter-root {}", root.display()));
        Ok(())
    }

    fn host_kind(&mut self, path: &Path) -> Result<Kind> {
        self.host
            .get(path)
            .copied()
            .ok_or_else(|| Self::enoent(path))
    }

    fn kind(&mut self, path: &InRoot) -> Result<Option<Kind>> {
        self.need_root()?;
        Ok(self.tree.get(path.as_str()).map(|(k, _)| *k))
    }

    fn read(&mut self, path: &InRoot) -> Result<Option<String>> {
        self.need_root()?;
        Ok(self.tree.get(path.as_str()).map(|(_, c)| c.clone()))
    }

    fn is_empty_dir(&mut self, path: &InRoot) -> Result<bool> {
        self.need_root()?;
        let prefix = format!("{}/", path.as_str().trim_end_matches('/'));
        Ok(!self.tree.keys().any(|k| k.starts_with(&prefix)))
    }

    fn create(&mut self, path: &InRoot, kind: Kind) -> Result<()> {
        self.need_root()?;
        if self.tree.contains_key(path.as_str()) {
            return Ok(());
        }
        self.add_parents(path.as_str());
        self.tree
            .insert(path.as_str().into(), (kind, String::new()));
        let k = if kind == Kind::Dir { "dir" } else { "file" };
        self.calls.push(format!("create {k} {path}"));
        Ok(())
    }

    fn mount(
        &mut self,
        source: Source<'_>,
        target: &InRoot,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.need_root()?;
        let mut line = String::new();
        let _ = write!(
            line,
            "mount {source} {target} {} {} {}",
            fstype.unwrap_or("-"),
            flag_names(flags),
            data.unwrap_or("-")
        );
        if let Some(errno) = fstype.and_then(|t| self.fail_fs.get(t)) {
            self.calls.push(format!("{line} => errno {errno}"));
            return Err(Error::sys(
                "mount",
                target.as_str(),
                std::io::Error::from_raw_os_error(*errno),
            ));
        }
        self.calls.push(line);
        Ok(())
    }

    fn remount_bind(&mut self, target: &InRoot, flags: MsFlags, recursive: bool) -> Result<()> {
        self.need_root()?;
        let rec = if recursive { " recursive" } else { "" };
        self.calls.push(format!(
            "remount {target} {}{rec}",
            flag_names(flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND)
        ));
        Ok(())
    }

    fn symlink(&mut self, to: &str, link: &InRoot) -> Result<()> {
        self.need_root()?;
        self.calls.push(format!("symlink {link} -> {to}"));
        Ok(())
    }

    fn write(&mut self, path: &InRoot, content: &[u8]) -> Result<()> {
        self.need_root()?;
        let text = String::from_utf8_lossy(content).into_owned();
        self.calls.push(format!("write {path} {text:?}"));
        self.tree.insert(path.as_str().into(), (Kind::File, text));
        Ok(())
    }

    fn unmount(&mut self, path: &InRoot) -> Result<()> {
        self.need_root()?;
        self.calls.push(format!("unmount {path}"));
        Ok(())
    }
}
