//! Stage 3: write a [`Plan`] into an empty directory.
//!
//! Everything is created relative to directory fds opened with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, one component at a time, names
//! that are single non-`.`/`..` components by construction; symlinks are
//! created with their targets verbatim and never followed. Regular files are
//! hardlinks to objects ([`Mode::Hardlink`], for read-only image roots) or
//! copies ([`Mode::Copy`], for a root a user changes; hardlinks of the layer
//! stay hardlinks). Directories get their owner, mode, xattrs and mtime
//! after their contents, so a read-only or setgid directory is filled first.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use cairn_fsutil::{IoContext as _, PathError};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags, ResolveFlags, Timespec, Timestamps};

use crate::changeset::{DeviceKind, Meta};
use crate::error::Error;
use crate::objects::{apply_file_meta, ObjectStore, Ownership};
use crate::plan::{Node, NodeKind, Plan};

/// How regular files get into the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hardlinks to the objects: instant, shared, must never be written to
    /// (an overlay lower directory).
    Hardlink,
    /// Private copies (reflinked where the filesystem can).
    Copy,
}

/// Options for [`materialize`].
#[derive(Debug, Clone, Copy)]
pub struct MaterializeOptions {
    /// Hardlink or copy.
    pub mode: Mode,
    /// Apply owners (and `security.*` xattrs) or not.
    pub ownership: Ownership,
    /// Create the layers' device nodes, or skip them.
    pub devices: Devices,
}

/// What becomes of a layer's block and character devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Created where the kernel allows it (`cairn unpack` as root, as
    /// umoci does); skipped where it refuses (a user namespace).
    Create,
    /// Never created: image roots in the store. A device node of an image
    /// is attacker input (a major/minor of the host's disk, owned by root
    /// on the host's filesystem); skipped, and in a layer directory a
    /// whiteout takes its place, so the path is absent in the container
    /// instead of showing a lower layer's file of that name. The runtime
    /// binds the host's few standard devices instead.
    Skip,
}

/// What was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Directories.
    pub dirs: u64,
    /// Regular files linked to objects.
    pub linked: u64,
    /// Regular files copied.
    pub copied: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Device nodes and fifos created.
    pub specials: u64,
    /// Whiteouts created (layer diffs only).
    pub whiteouts: u64,
    /// Device nodes that could not be created (no CAP_MKNOD), by path.
    pub skipped_devices: Vec<String>,
}

/// Writes `plan` into `target`, an existing empty directory.
pub fn materialize(
    plan: &Plan,
    objects: &ObjectStore,
    target: &Path,
    opts: MaterializeOptions,
) -> Result<Stats, Error> {
    let root = rustix::fs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(io::Error::from)
    .io_context("open target directory", target)?;
    let m = Materializer {
        objects,
        opts,
        root_fd: root
            .as_fd()
            .try_clone_to_owned()
            .io_context("dup", target)?,
        target: target.to_owned(),
        first_path: Mutex::new(HashMap::new()),
        group_done: Condvar::new(),
        stats: Mutex::new(Stats::default()),
    };
    let NodeKind::Dir { meta, children } = &plan.root().kind else {
        unreachable!("the plan root is a directory");
    };
    m.fill(&root, &PathBuf::new(), children)?;
    m.dir_meta(&root, meta, Path::new("."))?;
    let mut stats = m.stats.into_inner().expect("not poisoned");
    // Filled in parallel: in path order, whatever the threads did.
    stats.skipped_devices.sort();
    Ok(stats)
}

/// A directory created and waiting to be filled.
struct Pending<'p> {
    name: &'p std::ffi::OsStr,
    path: PathBuf,
    meta: &'p Meta,
    children: &'p std::collections::BTreeMap<Vec<u8>, Node>,
}

/// The state of one hardlink group's first name.
enum Group {
    /// A thread is writing it; the other names wait, then link to it.
    Copying,
    /// Copied, at this path below the target.
    Done(PathBuf),
    /// The copy failed (the copying thread reports why).
    Failed,
}

struct Materializer<'a> {
    objects: &'a ObjectStore,
    opts: MaterializeOptions,
    root_fd: OwnedFd,
    target: PathBuf,
    /// Each inode group's first name once a thread claimed it: files' in
    /// copy mode, symlinks' (with hardlinks) in both modes.
    first_path: Mutex<HashMap<u64, Group>>,
    /// Signalled when a group's file is copied (or failed to be).
    group_done: Condvar,
    stats: Mutex<Stats>,
}

fn name_of(name: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name)
}

impl Materializer<'_> {
    fn err_path(&self, rel: &Path) -> PathBuf {
        self.target.join(rel)
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().expect("not poisoned"));
    }

    /// Overlayfs' whiteout at `name`: a 0/0 character device, which the
    /// kernel lets anyone create (5.8 and later).
    fn whiteout(&self, dir: &OwnedFd, name: &OsStr, path: &Path, op: &str) -> Result<(), Error> {
        rustix::fs::mknodat(dir, name, FileType::CharacterDevice, FsMode::empty(), 0)
            .map_err(io::Error::from)
            .io_context(op, &self.err_path(path))?;
        Ok(())
    }

    /// A symlink, with its metadata; one with hardlinks is linked to the
    /// first of its names written.
    fn symlink(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        target: &[u8],
        inode: u64,
    ) -> Result<(), Error> {
        // A symlink with hardlinks: its names are one inode.
        if inode != 0 && self.link_to_group(inode, dir, name, path)? {
            self.count(|s| s.symlinks += 1);
            return Ok(());
        }
        let made = rustix::fs::symlinkat(name_of(target), dir, name)
            .map_err(io::Error::from)
            .io_context("create symlink", &self.err_path(path))
            .map_err(Error::from)
            .and_then(|()| self.node_meta(dir, name, meta, path, FileType::Symlink));
        if inode != 0 {
            self.settle_group(inode, path, made.is_ok());
        }
        made?;
        self.count(|s| s.symlinks += 1);
        Ok(())
    }

    /// Creates `children` in `dir`, then fills its subdirectories in
    /// parallel. Nothing depends on the order: in hardlink mode every file
    /// is a link to its own object; in copy mode the first name of a
    /// hardlink group to be reached is copied and the others link to it.
    fn fill(
        &self,
        dir: &OwnedFd,
        rel: &Path,
        children: &std::collections::BTreeMap<Vec<u8>, Node>,
    ) -> Result<(), Error> {
        let mut subdirs = Vec::new();
        for (name, node) in children {
            let name_os = name_of(name);
            let path = rel.join(name_os);
            match &node.kind {
                NodeKind::Dir { meta, children } => {
                    rustix::fs::mkdirat(dir, name_os, FsMode::from_raw_mode(0o700))
                        .map_err(io::Error::from)
                        .io_context("create directory", &self.err_path(&path))?;
                    let pending = Pending {
                        name: name_os,
                        path,
                        meta,
                        children,
                    };
                    subdirs.push(pending);
                }
                NodeKind::File {
                    meta,
                    object,
                    inode,
                    ..
                } => {
                    self.file(dir, name_os, &path, meta, object, *inode)?;
                }
                NodeKind::Symlink {
                    meta,
                    target,
                    inode,
                } => {
                    self.symlink(dir, name_os, &path, meta, target, *inode)?;
                }
                NodeKind::Device {
                    meta,
                    kind,
                    major,
                    minor,
                } => {
                    let ft = match kind {
                        DeviceKind::Char => FileType::CharacterDevice,
                        DeviceKind::Block => FileType::BlockDevice,
                    };
                    let dev = rustix::fs::makedev(*major, *minor);
                    if self.opts.devices == Devices::Skip {
                        tracing::debug!(
                            "skipped device node /{} ({kind:?} {major}:{minor}): image roots hold none",
                            path.display()
                        );
                        // Hides a lower layer's entry of that name (in a
                        // flattened root there is none: harmless).
                        self.whiteout(dir, name_os, &path, "create whiteout for a skipped device")?;
                        self.count(|s| s.skipped_devices.push(format!("/{}", path.display())));
                        continue;
                    }
                    match rustix::fs::mknodat(dir, name_os, ft, FsMode::from_raw_mode(0o600), dev) {
                        Ok(()) => {
                            self.node_meta(dir, name_os, meta, &path, ft)?;
                            self.count(|s| s.specials += 1);
                        }
                        // No CAP_MKNOD where it counts (a normal user, or
                        // root of a user namespace: the kernel refuses
                        // device nodes to every namespace but the first):
                        // skipped, as the README says; the runtime binds
                        // host devices instead. Root of the host gets its
                        // errors, and mounts image roots `nodev`.
                        Err(rustix::io::Errno::PERM)
                            if self.opts.ownership == Ownership::Ignore
                                || !may_create_devices() =>
                        {
                            tracing::debug!(
                                "skipped device node /{} ({kind:?} {major}:{minor}): no CAP_MKNOD \
                                 in the initial user namespace",
                                path.display()
                            );
                            self.count(|s| s.skipped_devices.push(format!("/{}", path.display())));
                        }
                        Err(e) => {
                            return Err(io::Error::from(e))
                                .io_context("create device node", &self.err_path(&path))
                                .map_err(Error::from)
                        }
                    }
                }
                NodeKind::Whiteout => {
                    self.whiteout(dir, name_os, &path, "create whiteout")?;
                    self.count(|s| s.whiteouts += 1);
                }
                NodeKind::Fifo(meta) => {
                    rustix::fs::mknodat(
                        dir,
                        name_os,
                        FileType::Fifo,
                        FsMode::from_raw_mode(0o600),
                        0,
                    )
                    .map_err(io::Error::from)
                    .io_context("create fifo", &self.err_path(&path))?;
                    self.node_meta(dir, name_os, meta, &path, FileType::Fifo)?;
                    self.count(|s| s.specials += 1);
                }
            }
        }
        // Opened inside the task, so open descriptors stay a few per
        // thread and level, however wide the directory.
        subdirs.par_iter().try_for_each(|p| self.subdir(dir, p))
    }

    /// Opens a created directory (beneath `dir`, no symlinks), fills it,
    /// then gives it its metadata.
    fn subdir(&self, dir: &OwnedFd, p: &Pending<'_>) -> Result<(), Error> {
        let child = rustix::fs::openat2(
            dir,
            p.name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            FsMode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io::Error::from)
        .io_context("open directory", &self.err_path(&p.path))?;
        self.fill(&child, &p.path, p.children)?;
        self.dir_meta(&child, p.meta, &p.path)?;
        self.count(|s| s.dirs += 1);
        Ok(())
    }

    fn file(
        &self,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        path: &Path,
        meta: &Meta,
        object: &crate::changeset::ObjectId,
        inode: u64,
    ) -> Result<(), Error> {
        let rel_obj = ObjectStore::relative_path(object);
        if self.opts.mode == Mode::Hardlink {
            match rustix::fs::linkat(
                self.objects.fd(),
                rel_obj.as_str(),
                dir,
                name,
                AtFlags::empty(),
            ) {
                Ok(()) => {
                    self.count(|s| s.linked += 1);
                    return Ok(());
                }
                // An object linked 65000 times (ext4's limit; an empty file
                // in every image): this one gets a copy.
                Err(rustix::io::Errno::MLINK) => {}
                Err(e) => {
                    return Err(io::Error::from(e))
                        .io_context(
                            &format!("{} {} to", crate::error::LINK_OBJECT, object.hex()),
                            &self.err_path(path),
                        )
                        .map_err(Error::from)
                }
            }
        } else if self.link_to_group(inode, dir, name, path)? {
            self.count(|s| s.linked += 1);
            return Ok(());
        }
        let copied = self.copy_file(dir, name, path, meta, object);
        if self.opts.mode == Mode::Copy {
            self.settle_group(inode, path, copied.is_ok());
        }
        copied
    }

    /// A name of inode group `inode`: linked (`linkat` without
    /// `AT_SYMLINK_FOLLOW`: a symlink is linked itself) to the group's
    /// first name once that is written, returning true; false if this name
    /// is the first, to be written by the caller, who then calls
    /// [`Materializer::settle_group`] (the group's other names wait).
    fn link_to_group(
        &self,
        inode: u64,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        path: &Path,
    ) -> Result<bool, Error> {
        let mut groups = self.first_path.lock().expect("not poisoned");
        loop {
            match groups.get(&inode) {
                None => {
                    groups.insert(inode, Group::Copying);
                    return Ok(false);
                }
                Some(Group::Copying) => {
                    groups = self.group_done.wait(groups).expect("not poisoned");
                }
                Some(Group::Done(first)) => {
                    let first = first.clone();
                    drop(groups);
                    rustix::fs::linkat(&self.root_fd, first.as_path(), dir, name, AtFlags::empty())
                        .map_err(io::Error::from)
                        .io_context("hardlink", &self.err_path(path))?;
                    return Ok(true);
                }
                Some(Group::Failed) => {
                    return Err(Error::Io(PathError::new(
                        "hardlink (the first name of its group failed)",
                        self.err_path(path),
                        io::Error::other("writing the group's first name failed"),
                    )));
                }
            }
        }
    }

    /// The first name of group `inode`, at `path`, is written (or failed).
    fn settle_group(&self, inode: u64, path: &Path, ok: bool) {
        self.first_path.lock().expect("not poisoned").insert(
            inode,
            if ok {
                Group::Done(path.to_owned())
            } else {
                Group::Failed
            },
        );
        self.group_done.notify_all();
    }

    /// Writes a copy of `object` as `name` in `dir`.
    fn copy_file(
        &self,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        path: &Path,
        meta: &Meta,
        object: &crate::changeset::ObjectId,
    ) -> Result<(), Error> {
        let rel_obj = ObjectStore::relative_path(object);
        let src = File::from(
            rustix::fs::openat(
                self.objects.fd(),
                rel_obj.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                FsMode::empty(),
            )
            .map_err(io::Error::from)
            .io_context("open object", &self.objects.path(object))?,
        );
        let dst = File::from(
            rustix::fs::openat(
                dir,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FsMode::from_raw_mode(0o600),
            )
            .map_err(io::Error::from)
            .io_context("create file", &self.err_path(path))?,
        );
        copy_all(&src, &dst).io_context("copy file", &self.err_path(path))?;
        apply_file_meta(
            &dst,
            meta,
            self.opts.ownership == Ownership::Apply,
            self.opts.ownership == Ownership::Apply,
        )
        .io_context("set file metadata", &self.err_path(path))?;
        self.count(|s| s.copied += 1);
        Ok(())
    }

    /// Owner, mode (not for a symlink: Linux has none) and mtime of the
    /// node just created as `name` in `dir`, never through a symlink: the
    /// node is opened `O_PATH | O_NOFOLLOW` and checked to be of the type
    /// created, and every change goes through that descriptor. `unpack`
    /// may write into a directory others can write to (a target it cannot
    /// rename onto); by name, `chmod(2)` follows symlinks (`fchmodat`'s
    /// `AT_SYMLINK_NOFOLLOW` needs `fchmodat2`, Linux 6.6), so a name
    /// swapped for a symlink between `mknodat` and the chmod would move the
    /// mode onto any file the link names.
    fn node_meta(
        &self,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        meta: &Meta,
        path: &Path,
        created: FileType,
    ) -> Result<(), Error> {
        let p = self.err_path(path);
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            FsMode::empty(),
        )
        .map_err(io::Error::from)
        .io_context("open to set metadata", &p)?;
        let found = rustix::fs::fstat(&fd)
            .map_err(io::Error::from)
            .io_context("stat", &p)?;
        let found = FileType::from_raw_mode(found.st_mode);
        if found != created {
            return Err(Error::Io(PathError::new(
                format!("set metadata of the {created:?} created as"),
                p,
                io::Error::other(format!(
                    "it was replaced by a {found:?} while unpacking (someone else writes into \
                     the target directory); unpack into a directory only you can write"
                )),
            )));
        }
        if self.opts.ownership == Ownership::Apply {
            rustix::fs::chownat(
                &fd,
                "",
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io::Error::from)
            .io_context("chown", &p)?;
        }
        if created != FileType::Symlink {
            // The descriptor's own inode: `/proc/self/fd/N` is a magic link
            // to it, not a path to resolve again.
            let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            rustix::fs::chmod(by_fd.as_str(), FsMode::from_raw_mode(meta.mode & 0o7777))
                .map_err(io::Error::from)
                .io_context("chmod (through /proc/self/fd)", &p)?;
        }
        let t = Timespec {
            tv_sec: meta.mtime,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            &fd,
            "",
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
        .io_context("set mtime", &p)
        .map_err(Error::from)
    }

    fn dir_meta(&self, fd: &OwnedFd, meta: &Meta, path: &Path) -> Result<(), Error> {
        let p = self.err_path(path);
        if self.opts.ownership == Ownership::Apply {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            )
            .map_err(io::Error::from)
            .io_context("chown directory", &p)?;
        }
        rustix::fs::fchmod(fd, FsMode::from_raw_mode(meta.mode & 0o7777))
            .map_err(io::Error::from)
            .io_context("chmod directory", &p)?;
        for (name, value) in &meta.xattrs {
            if self.opts.ownership == Ownership::Ignore && !name.starts_with(b"user.") {
                continue;
            }
            rustix::fs::fsetxattr(fd, name.as_slice(), value, rustix::fs::XattrFlags::empty())
                .map_err(io::Error::from)
                .io_context(
                    &format!("set xattr {} on", String::from_utf8_lossy(name)),
                    &p,
                )?;
        }
        let t = Timespec {
            tv_sec: meta.mtime,
            tv_nsec: 0,
        };
        rustix::fs::futimens(
            fd,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
        )
        .map_err(io::Error::from)
        .io_context("set directory mtime", &p)
        .map_err(Error::from)
    }
}

/// Copies a whole file in the kernel (`copy_file_range`, which reflinks on
/// filesystems that can), falling back to read/write.
fn copy_all(src: &File, dst: &File) -> io::Result<()> {
    let len = src.metadata()?.len();
    let mut done = 0u64;
    while done < len {
        match rustix::fs::copy_file_range(src, None, dst, None, (len - done) as usize) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) => {
                let mut s = src;
                let mut d = dst;
                io::copy(&mut s, &mut d)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if done < len {
        let mut s = src;
        let mut d = dst;
        io::copy(&mut s, &mut d)?;
    }
    Ok(())
}

/// Whether this process can make device nodes: root of the initial user
/// namespace. Root of any other (a rootless unpack) is refused them by the
/// kernel whatever its capabilities; `/proc/self/uid_map` of the initial
/// namespace maps all 2^32 - 1 ids onto themselves.
fn may_create_devices() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields == ["0", "0", "4294967295"]
        }
        // No procfs: assume the host's root, whose errors are reported.
        Err(_) => true,
    }
}
