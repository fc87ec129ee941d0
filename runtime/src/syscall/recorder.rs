//! [`Recorder`]: the [`Syscall`] of the mount plan's tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{flag_names, Kind, Source, Syscall};
use crate::error::{Error, Result};
use crate::path::InRoot;

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
