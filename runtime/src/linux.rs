//! The real [`Syscall`]: mounts through `mount(2)`, every container path
//! resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` against a
//! descriptor of the root (Linux 5.6) and then used as `/proc/self/fd/N`, so
//! an image's symlink (`/tmp -> /host/etc`) or a `..` can never move a mount
//! onto the host: a symlink is followed as the container would see it, inside
//! the root, and a dangling one is refused rather than created through.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::sys::statvfs::{fstatvfs, statvfs, FsFlags};
use nix::unistd::symlinkat;

use crate::error::{Context as _, Error, Result};
use crate::path::InRoot;
use crate::syscall::{Kind, Source, Syscall};

/// The kernel. Holds a descriptor of the root once it is entered.
#[derive(Debug, Default)]
pub struct Linux {
    root: Option<(OwnedFd, PathBuf)>,
}

fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn kind_of(mode: u32) -> Kind {
    if SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    }
}

/// The flags the kernel locks on a mount in a user namespace (and that a
/// bind remount would otherwise clear): keep them as they are.
fn locked_flags(st: FsFlags) -> MsFlags {
    let mut f = MsFlags::empty();
    f.set(MsFlags::MS_NOSUID, st.contains(FsFlags::ST_NOSUID));
    f.set(MsFlags::MS_NODEV, st.contains(FsFlags::ST_NODEV));
    f.set(MsFlags::MS_NOEXEC, st.contains(FsFlags::ST_NOEXEC));
    f.set(MsFlags::MS_NODIRATIME, st.contains(FsFlags::ST_NODIRATIME));
    if st.contains(FsFlags::ST_NOATIME) {
        f |= MsFlags::MS_NOATIME;
    } else if st.contains(FsFlags::ST_RELATIME) {
        f |= MsFlags::MS_RELATIME;
    } else {
        f |= MsFlags::MS_STRICTATIME;
    }
    f
}

impl Linux {
    /// A fresh instance; container paths work after `enter_root`.
    pub fn new() -> Self {
        Linux::default()
    }

    fn root(&self) -> Result<(&OwnedFd, &Path)> {
        self.root
            .as_ref()
            .map(|(fd, p)| (fd, p.as_path()))
            .ok_or_else(|| {
                Error::Usage("internal: container path used before the root was entered".into())
            })
    }

    /// The host-side name of a container path, for messages.
    fn shown(&self, path: &InRoot) -> PathBuf {
        match &self.root {
            Some((_, root)) => root.join(path.relative()),
            None => path.as_str().into(),
        }
    }

    fn open_in_root(&self, path: &InRoot, flags: OFlag) -> nix::Result<OwnedFd> {
        let (root, _) = self.root().map_err(|_| Errno::EBADF)?;
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(root, path.relative(), how)
    }

    /// `O_PATH` descriptor of `path`, resolved inside the root.
    fn resolve(&self, path: &InRoot) -> Result<OwnedFd> {
        self.open_in_root(path, OFlag::O_PATH).map_err(|e| {
            let hint = match e {
                Errno::ENOENT => "it does not exist inside the container root",
                Errno::ENOSYS => "openat2 needs Linux 5.6 or later",
                Errno::ELOOP | Errno::EXDEV => {
                    "it leads through a /proc magic link, which cairn refuses to follow"
                }
                _ => "",
            };
            Error::sys("resolve", self.shown(path), e).hint(hint)
        })
    }

    /// Resolve the parent of `path` and return it with the last component.
    fn parent<'p>(&self, path: &'p InRoot) -> Result<(OwnedFd, &'p str)> {
        let name = path.components().last().ok_or_else(|| Error::Refused {
            path: "/".into(),
            reason: "the root itself cannot be created".into(),
        })?;
        let parent = InRoot::new(&path.as_str()[..path.as_str().len() - name.len()])?;
        Ok((self.resolve(&parent)?, name))
    }

    fn refuse_symlink(
        &self,
        dir: &OwnedFd,
        name: &str,
        path: &InRoot,
        shown_prefix: &InRoot,
    ) -> Error {
        let to = nix::fcntl::readlinkat(dir, name)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        Error::Refused {
            path: path.as_str().into(),
            reason: format!(
                "{shown_prefix} is a symlink to {to:?}, which does not exist inside the container root; cairn does not create mount points through symlinks: create the directory in the image, or mount somewhere else"
            ),
        }
    }

    /// Remount every mount below the mount `top` (`/proc/self/fd/N`) with
    /// `flags`, walking mountinfo: the kernel-printed mount points are
    /// canonical paths in this namespace.
    fn remount_below(&self, top: &str, flags: MsFlags) -> Result<()> {
        let real = std::fs::read_link(top).ctx("readlink", top)?;
        let mut prefix = real.as_os_str().as_bytes().to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        let infos = crate::mountinfo::read_self().ctx("read", "/proc/self/mountinfo")?;
        for m in infos
            .iter()
            .filter(|m| m.mount_point.as_bytes().starts_with(&prefix))
        {
            let st = statvfs(m.mount_point.as_str()).ctx("statvfs", &m.mount_point)?;
            self.remount_one(&m.mount_point, flags, locked_flags(st.flags()))?;
        }
        Ok(())
    }

    fn remount_one(&self, target: &str, flags: MsFlags, locked: MsFlags) -> Result<()> {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | locked,
            None::<&str>,
        )
        .ctx("remount (bind) with flags", target)
    }
}

fn src_string(src: &Source<'_>, keep: &mut Vec<OwnedFd>, sys: &Linux) -> Result<Option<String>> {
    Ok(match src {
        Source::None => None,
        Source::Fs(name) => Some((*name).to_owned()),
        Source::Host(p) => Some(
            p.to_str()
                .ok_or_else(|| Error::Usage(format!("path {} is not UTF-8", p.display())))?
                .to_owned(),
        ),
        Source::InRoot(p) => {
            let fd = sys.resolve(p)?;
            let s = fd_path(&fd);
            keep.push(fd);
            Some(s)
        }
    })
}

/// How a failed `mount(2)` names what it tried: a new filesystem, a bind,
/// or a propagation change.
fn mount_op(source: &Source<'_>, fstype: Option<&str>, flags: MsFlags) -> String {
    match fstype {
        Some(t) => format!("mount {t} on"),
        None if flags.contains(MsFlags::MS_BIND) => format!("bind-mount {source} on"),
        None => format!("set propagation {} of", crate::syscall::flag_names(flags)),
    }
}

impl Syscall for Linux {
    fn mount_host(
        &mut self,
        source: Source<'_>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        let mut keep = Vec::new();
        let src = src_string(&source, &mut keep, self)?;
        mount(src.as_deref(), target, fstype, flags, data)
            .ctx(&mount_op(&source, fstype, flags), target)
    }

    fn enter_root(&mut self, root: &Path) -> Result<()> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open root", root)?;
        self.root = Some((fd, root.to_path_buf()));
        Ok(())
    }

    fn host_kind(&mut self, path: &Path) -> Result<Kind> {
        let st = nix::sys::stat::stat(path).map_err(|e| {
            Error::sys("stat bind source", path, e).hint("create it on the host, or fix the path")
        })?;
        Ok(kind_of(st.st_mode))
    }

    fn kind(&mut self, path: &InRoot) -> Result<Option<Kind>> {
        match self.open_in_root(path, OFlag::O_PATH) {
            Ok(fd) => Ok(Some(kind_of(
                fstat(&fd).ctx("stat", self.shown(path))?.st_mode,
            ))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys("resolve", self.shown(path), e)),
        }
    }

    fn read(&mut self, path: &InRoot) -> Result<Option<String>> {
        let fd = match self.open_in_root(path, OFlag::O_RDONLY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::sys("open", self.shown(path), e)),
        };
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_string(&mut text)
            .ctx("read", self.shown(path))?;
        Ok(Some(text))
    }

    fn is_empty_dir(&mut self, path: &InRoot) -> Result<bool> {
        let fd = self.resolve(path)?;
        let mut it = std::fs::read_dir(fd_path(&fd)).ctx("list", self.shown(path))?;
        Ok(it.next().is_none())
    }

    fn create(&mut self, path: &InRoot, kind: Kind) -> Result<()> {
        if self.open_in_root(path, OFlag::O_PATH).is_ok() {
            return Ok(());
        }
        let (root, _) = self.root()?;
        let mut dir = nix::unistd::dup(root).ctx("dup", self.shown(path))?;
        let mut at = InRoot::root();
        let comps: Vec<&str> = path.components().collect();
        for (i, name) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let next = at.join(name);
            match self.open_in_root(&next, OFlag::O_PATH) {
                Ok(fd) => {
                    if !last
                        && kind_of(fstat(&fd).ctx("stat", self.shown(&next))?.st_mode) != Kind::Dir
                    {
                        return Err(Error::Refused {
                            path: path.as_str().into(),
                            reason: format!("{next} is not a directory in the container root"),
                        });
                    }
                    dir = fd;
                }
                Err(Errno::ENOENT) => {
                    // Nothing resolvable here: either nothing at all, or a
                    // symlink whose target is missing. Only the first is
                    // created; through the second a mkdir could land
                    // anywhere the link says.
                    match fstatat(&dir, *name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st)
                            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
                                == SFlag::S_IFLNK =>
                        {
                            return Err(self.refuse_symlink(&dir, name, path, &next));
                        }
                        Ok(_) => {}
                        Err(Errno::ENOENT) => {
                            let made = if last && kind == Kind::File {
                                openat(
                                    &dir,
                                    *name,
                                    OFlag::O_CREAT
                                        | OFlag::O_EXCL
                                        | OFlag::O_WRONLY
                                        | OFlag::O_NOFOLLOW
                                        | OFlag::O_CLOEXEC,
                                    Mode::from_bits_truncate(0o644),
                                )
                                .map(drop)
                            } else {
                                mkdirat(&dir, *name, Mode::from_bits_truncate(0o755))
                            };
                            match made {
                                Ok(()) | Err(Errno::EEXIST) => {}
                                Err(e) => {
                                    return Err(Error::sys("create mount point", self.shown(&next), e).hint(
                                        "the container root must be writable while mounts are set up (an overlay upper dir, or a writable bind)",
                                    ))
                                }
                            }
                        }
                        Err(e) => return Err(Error::sys("stat", self.shown(&next), e)),
                    }
                    dir = self.resolve(&next)?;
                }
                Err(e) => return Err(Error::sys("resolve", self.shown(&next), e)),
            }
            at = next;
        }
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
        let mut keep = Vec::new();
        let src = src_string(&source, &mut keep, self)?;
        let dst = self.resolve(target)?;
        mount(src.as_deref(), fd_path(&dst).as_str(), fstype, flags, data).map_err(|e| {
            let op = mount_op(&source, fstype, flags);
            let hint = match e {
                Errno::EPERM => "not permitted: run as root, or in a user namespace that owns this mount namespace (and, for sysfs/mqueue/proc, the matching net/ipc/pid namespace)",
                Errno::ENODEV => "this kernel lacks the filesystem type",
                Errno::ENOTDIR => "the source is a directory but the target is not, or the reverse: fix the target in the image or choose another one",
                _ => "",
            };
            Error::sys(op, self.shown(target), e).hint(hint)
        })
    }

    fn remount_bind(&mut self, target: &InRoot, flags: MsFlags, recursive: bool) -> Result<()> {
        let fd = self.resolve(target)?;
        let locked = locked_flags(fstatvfs(&fd).ctx("statvfs", self.shown(target))?.flags());
        let top = fd_path(&fd);
        self.remount_one(&top, flags, locked)
            .map_err(|e| e.hint("the mount may carry flags this user namespace cannot change"))?;
        if recursive {
            // Every mount below the target too (an rbind copies submounts,
            // and MS_REMOUNT applies to one mount only): one mount_setattr
            // (Linux 5.12), or one remount per submount found in mountinfo.
            let mut attrs = 0;
            for (flag, attr) in [
                (MsFlags::MS_RDONLY, crate::sys::MOUNT_ATTR_RDONLY),
                (MsFlags::MS_NOSUID, crate::sys::MOUNT_ATTR_NOSUID),
                (MsFlags::MS_NODEV, crate::sys::MOUNT_ATTR_NODEV),
                (MsFlags::MS_NOEXEC, crate::sys::MOUNT_ATTR_NOEXEC),
            ] {
                if flags.contains(flag) {
                    attrs |= attr;
                }
            }
            match crate::sys::mount_setattr_recursive(&fd, attrs) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.remount_below(&top, flags)?
                }
                Err(e) => {
                    return Err(Error::sys(
                        "set flags (recursively) on",
                        self.shown(target),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    fn symlink(&mut self, to: &str, link: &InRoot) -> Result<()> {
        let (dir, name) = self.parent(link)?;
        match symlinkat(to, dir.as_fd(), name) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) if nix::fcntl::readlinkat(&dir, name).is_ok_and(|t| t == to) => {
                Ok(())
            }
            Err(e) => Err(Error::sys(
                format!("symlink {to:?} at"),
                self.shown(link),
                e,
            )),
        }
    }

    fn write(&mut self, path: &InRoot, content: &[u8]) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        let fd = openat(
            &dir,
            name,
            OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .ctx("create", self.shown(path))?;
        std::fs::File::from(fd)
            .write_all(content)
            .ctx("write", self.shown(path))
    }

    fn unmount(&mut self, path: &InRoot) -> Result<()> {
        let fd = self.resolve(path)?;
        umount2(fd_path(&fd).as_str(), MntFlags::MNT_DETACH).ctx("unmount", self.shown(path))
    }
}

/// Refuse to work in the mount namespace of pid 1 (the host's, when this is
/// not pid 1 itself): a mistaken `cairn-mount` or `cairn-pivot` without
/// `unshare -m` would otherwise rearrange the host's mounts, and a
/// `pivot_root` there would move every host process's root. When pid 1's
/// namespace cannot be inspected (another user's, rootless) nothing is
/// refused.
pub fn ensure_own_mount_namespace(prog: &str) -> Result<()> {
    if nix::unistd::getpid().as_raw() == 1 {
        return Ok(());
    }
    let id = |p: &str| nix::sys::stat::stat(p).ok().map(|s| (s.st_dev, s.st_ino));
    match (id("/proc/self/ns/mnt"), id("/proc/1/ns/mnt")) {
        (Some(ours), Some(init)) if ours == init => Err(Error::Usage(format!(
            "{prog} is in the same mount namespace as pid 1 (the host's?); refusing to change its mounts: run it in a new mount namespace (unshare -m, clone(CLONE_NEWNS))"
        ))),
        _ => Ok(()),
    }
}
