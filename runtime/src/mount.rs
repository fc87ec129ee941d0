//! `cairn-mount`'s logic: a [`MountSpec`] becomes a list of [`Op`]s ([`plan`],
//! pure), which [`apply`] carries out through a [`Syscall`]. Decisions that
//! depend on the image (is `/run` empty, is a masked path a file or a
//! directory, which gid is `tty`) are taken in `apply` from the syscall
//! seam's queries, so the recording implementation covers them too.
//!
//! Order matters and is fixed: `/` rprivate first (nothing propagates back to
//! the host), the root, generated `/etc` files (staged on a tmpfs over
//! `/proc` before procfs goes there), `/proc`, `/dev`, `/sys`, `/tmp`, `/run`,
//! the caller's mounts, masked and read-only paths, and last the root made
//! read-only (mount points must be created while it is still writable).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::path::InRoot;
use crate::spec::{
    BindMount, DevMode, EtcFile, Mount, MountSpec, ProcMode, Propagation, Root, RunMode, SysMode,
    TmpfsMount, DEFAULT_MASKED, DEFAULT_READONLY,
};
use crate::syscall::{Kind, Source, Syscall};

/// Size and mode of `/dev` (podman's).
const DEV_DATA: &str = "mode=755,size=65536k";
/// Size and mode of `/dev/shm` (podman's and Docker's default shm size).
const SHM_DATA: &str = "mode=1777,size=65536k";
/// Host device nodes bound into a minimal `/dev`.
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Symlinks of a minimal `/dev`.
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Where a bind mount's source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// On the host.
    Host(PathBuf),
    /// Inside the root (read-only paths bound onto themselves, staged files).
    InRoot(InRoot),
}

/// What to do when mounting a new filesystem is not permitted (`EPERM`:
/// sysfs without a network namespace of our own, mqueue without an IPC one,
/// in a user namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// Fail.
    None,
    /// Recursively bind this host path instead, read-only when `readonly`.
    BindHost {
        /// The host path.
        path: PathBuf,
        /// Remount it read-only, recursively.
        readonly: bool,
        /// When the host has no such path, leave the mount point empty
        /// instead of failing.
        optional: bool,
    },
}

/// One step of a mount plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mount("", "/", MS_REC | MS_PRIVATE)`.
    PrivatizeHost,
    /// Mount the root filesystem on the host target.
    Root {
        /// Overlay or bind.
        source: RootSource,
        /// Host directory.
        target: PathBuf,
    },
    /// Open the root: later paths are inside it.
    EnterRoot(PathBuf),
    /// A new filesystem on a directory (created if missing).
    Fs {
        /// Filesystem type (`proc`, `tmpfs`, ...).
        fstype: &'static str,
        /// Mount point.
        target: InRoot,
        /// Mount flags.
        flags: MsFlags,
        /// Filesystem options.
        data: Option<String>,
        /// On `EPERM`.
        fallback: Fallback,
    },
    /// A bind mount (mount point created to match the source).
    Bind {
        /// Source.
        source: BindSource,
        /// Mount point.
        target: InRoot,
        /// `rbind`.
        recursive: bool,
        /// Flags made effective by a bind remount (`ro`, `nosuid`, ...).
        flags: MsFlags,
        /// Propagation of the new mount.
        propagation: Propagation,
    },
    /// A symlink.
    Symlink {
        /// The link.
        link: InRoot,
        /// What it points to.
        to: &'static str,
    },
    /// Write a file (generated `/etc` files, on the staging tmpfs).
    Write {
        /// The file.
        path: InRoot,
        /// Its content.
        content: String,
    },
    /// Detach a mount (the staging tmpfs).
    Unmount(InRoot),
    /// devpts on this path (`/dev/pts`), with the gid of the image's `tty` group.
    Devpts(InRoot),
    /// A tmpfs on `/run` if the image's is missing or empty.
    RunIfEmpty,
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a
    /// directory; skipped when missing.
    Mask(InRoot),
    /// Bind a path onto itself, read-only; skipped when missing.
    ReadOnly(InRoot),
    /// Remount the root (and every mount under it so far) `nodev`: device
    /// nodes of the image or made in the container by its root (it has
    /// `CAP_MKNOD`) open nothing. Not for privileged containers.
    RootNodev,
    /// Remount the root read-only.
    RootReadOnly,
}

/// How the root filesystem is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// overlayfs with this option string.
    Overlay(String),
    /// A recursive bind of this host directory.
    Bind(PathBuf),
}

impl Op {
    /// The container path this op mounts on, if it is a "default" mount the
    /// caller's own mounts can replace.
    fn replaceable_target(&self) -> Option<&InRoot> {
        match self {
            Op::Fs { target, .. } | Op::Bind { target, .. } | Op::Symlink { link: target, .. } => {
                Some(target)
            }
            _ => None,
        }
    }
}

fn overlay_data(
    lower: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    options: &[String],
) -> Result<String> {
    if lower.is_empty() {
        return Err(Error::Usage(
            "overlay root without lower directories: give at least one image root".into(),
        ));
    }
    let check = |role: &str, p: &Path| -> Result<String> {
        let s = p
            .to_str()
            .ok_or_else(|| Error::Usage(format!("overlay {role} {} is not UTF-8", p.display())))?;
        if !s.starts_with('/') {
            return Err(Error::Usage(format!(
                "overlay {role} {s:?} must be an absolute path"
            )));
        }
        if s.contains([',', ':', '\\', '\n']) {
            return Err(Error::Usage(format!(
                "overlay {role} {s:?} contains ',', ':' or '\\', which overlayfs options cannot carry: move or symlink it to a plain path"
            )));
        }
        Ok(s.to_owned())
    };
    let lowers = lower
        .iter()
        .map(|p| check("lower dir", p))
        .collect::<Result<Vec<_>>>()?;
    let mut data = format!("lowerdir={}", lowers.join(":"));
    match (upper, work) {
        (Some(u), Some(w)) => {
            data.push_str(&format!(",upperdir={},workdir={}", check("upper dir", u)?, check("work dir", w)?));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Usage(
                "overlay root: give both an upper and a work directory (on the same filesystem), or neither for a read-only root".into(),
            ))
        }
    }
    for o in options {
        if o.is_empty()
            || o.contains([',', '\n'])
            || o.starts_with("lowerdir")
            || o.starts_with("upperdir")
            || o.starts_with("workdir")
        {
            return Err(Error::Usage(format!(
                "overlay option {o:?} is not a single extra option (such as userxattr)"
            )));
        }
        data.push(',');
        data.push_str(o);
    }
    // The legacy mount(2) data is one page.
    if data.len() >= 4096 {
        return Err(Error::Usage(format!(
            "overlay options are {} bytes, more than the kernel's 4095: use fewer or shorter lower directory paths",
            data.len()
        )));
    }
    Ok(data)
}

fn p(path: &str) -> InRoot {
    InRoot::new(path).expect("static container path")
}

fn tmpfs_op(t: &TmpfsMount) -> Result<Op> {
    t.validate()?;
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_RDONLY, t.readonly);
    flags.set(MsFlags::MS_NOSUID, t.nosuid);
    flags.set(MsFlags::MS_NODEV, t.nodev);
    flags.set(MsFlags::MS_NOEXEC, t.noexec);
    let mut data = Vec::new();
    if let Some(m) = &t.mode {
        data.push(format!("mode={m}"));
    }
    if let Some(s) = &t.size {
        data.push(format!("size={s}"));
    }
    Ok(Op::Fs {
        fstype: "tmpfs",
        target: t.target.clone(),
        flags,
        data: (!data.is_empty()).then(|| data.join(",")),
        fallback: Fallback::None,
    })
}

fn bind_op(b: &BindMount) -> Result<Op> {
    if !b.source.is_absolute() {
        return Err(Error::Usage(format!(
            "bind source {} must be an absolute host path",
            b.source.display()
        )));
    }
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_RDONLY, b.readonly);
    flags.set(MsFlags::MS_NOSUID, b.nosuid);
    flags.set(MsFlags::MS_NODEV, b.nodev);
    flags.set(MsFlags::MS_NOEXEC, b.noexec);
    Ok(Op::Bind {
        source: BindSource::Host(b.source.clone()),
        target: b.target.clone(),
        recursive: b.recursive,
        flags,
        propagation: b.propagation,
    })
}

/// Turn a spec into the ordered list of operations (pure): the root, the
/// `/etc` files, the standard mounts, the caller's mounts (which replace
/// standard ones on the same path or below), masked and read-only paths,
/// and the root made read-only.
pub fn plan(spec: &MountSpec) -> Result<Vec<Op>> {
    let mut ops = root_ops(spec)?;
    // (op, whether the caller's mounts can replace it)
    let mut defaults = etc_ops(spec);
    defaults.extend(standard_ops(spec).into_iter().map(|op| (op, true)));
    let (user, user_targets) = user_ops(spec)?;
    let replaced = |op: &Op| {
        let target = match op {
            Op::Devpts(t) => t.clone(),
            Op::RunIfEmpty => p("/run"),
            op => match op.replaceable_target() {
                Some(t) => t.clone(),
                None => return false,
            },
        };
        user_targets.iter().any(|t| target.starts_with(t))
    };
    ops.extend(
        defaults
            .into_iter()
            .filter(|(op, replaceable)| !(*replaceable && replaced(op)))
            .map(|(op, _)| op),
    );
    ops.extend(user);
    if !spec.privileged {
        let masked = match &spec.masked_paths {
            Some(v) => v.clone(),
            None => DEFAULT_MASKED.iter().map(|s| p(s)).collect(),
        };
        let readonly = match &spec.readonly_paths {
            Some(v) => v.clone(),
            None => DEFAULT_READONLY.iter().map(|s| p(s)).collect(),
        };
        ops.extend(masked.into_iter().map(Op::Mask));
        ops.extend(readonly.into_iter().map(Op::ReadOnly));
    }
    if spec.readonly {
        ops.push(Op::RootReadOnly);
    }
    Ok(ops)
}

/// `/` rprivate, the root filesystem, entering it.
fn root_ops(spec: &MountSpec) -> Result<Vec<Op>> {
    let root = spec.root.as_ref().ok_or_else(|| {
        Error::Usage("no root filesystem: give --root DIR, --overlay LOWER[:LOWER...] or a spec with \"root\"".into())
    })?;
    let target = match (root, &spec.target) {
        (_, Some(t)) => t.clone(),
        (Root::Bind(dir), None) => dir.clone(),
        (Root::Overlay(_), None) => {
            return Err(Error::Usage(
                "an overlay root needs --target DIR (spec: \"target\"), the empty host directory it is assembled on".into(),
            ))
        }
    };
    if !target.is_absolute() {
        return Err(Error::Usage(format!(
            "target {} must be an absolute host path",
            target.display()
        )));
    }
    let source = match root {
        Root::Overlay(o) => RootSource::Overlay(overlay_data(
            &o.lower,
            o.upper.as_deref(),
            o.work.as_deref(),
            &o.options,
        )?),
        Root::Bind(dir) => {
            if !dir.is_absolute() {
                return Err(Error::Usage(format!(
                    "root {} must be an absolute host path",
                    dir.display()
                )));
            }
            RootSource::Bind(dir.clone())
        }
    };

    let mut ops = vec![
        Op::PrivatizeHost,
        Op::Root {
            source,
            target: target.clone(),
        },
        Op::EnterRoot(target),
    ];
    if !spec.privileged {
        ops.push(Op::RootNodev);
    }
    Ok(ops)
}

/// The `/etc` files, each with whether a caller's mount may replace it.
fn etc_ops(spec: &MountSpec) -> Vec<(Op, bool)> {
    let mut defaults = Vec::new();
    // Generated /etc files are staged on a tmpfs over /proc (which procfs
    // replaces right after), bound into place, and the staging mount is
    // detached: the binds keep the tmpfs alive, nothing else sees it, and no
    // host directory or image file is written. The staging steps are
    // internal: never replaced.
    let etc = spec.etc.files();
    let staging = p("/proc");
    let generated = etc.iter().any(|(_, f)| matches!(f, EtcFile::Content(_)));
    if generated {
        defaults.push((
            Op::Fs {
                fstype: "tmpfs",
                target: staging.clone(),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                data: Some("mode=755,size=1m".into()),
                fallback: Fallback::None,
            },
            false,
        ));
    }
    for (target, file) in &etc {
        let name = target.components().last().unwrap_or("file");
        match file {
            EtcFile::Content(text) => {
                let staged = staging.join(name);
                defaults.push((
                    Op::Write {
                        path: staged.clone(),
                        content: text.clone(),
                    },
                    false,
                ));
                defaults.push((bind_plain(BindSource::InRoot(staged), target.clone()), true));
            }
            EtcFile::Path(host) => defaults.push((
                bind_plain(BindSource::Host(host.clone()), target.clone()),
                true,
            )),
        }
    }
    if generated {
        defaults.push((Op::Unmount(staging), false));
    }

    defaults
}

/// `/proc`, `/dev`, `/sys`, `/tmp`, `/run` as the spec asks.
fn standard_ops(spec: &MountSpec) -> Vec<Op> {
    let mut ops = Vec::new();
    match spec.proc {
        ProcMode::Private => ops.push(Op::Fs {
            fstype: "proc",
            target: p("/proc"),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            data: None,
            fallback: Fallback::None,
        }),
        ProcMode::Host => ops.push(bind_rec(BindSource::Host("/proc".into()), p("/proc"))),
        ProcMode::None => {}
    }

    match spec.dev {
        DevMode::Minimal => {
            // nodev: the nodes below are binds of the host's (mounts of
            // their own, which keep their flags) and devpts; a node the
            // container's root makes here with mknod opens nothing. The
            // binds are read-only: a device node on a read-only mount still
            // opens for writing, but its inode (the host's own /dev/null)
            // cannot be chowned or chmodded from the container.
            ops.push(Op::Fs {
                fstype: "tmpfs",
                target: p("/dev"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
                data: Some(DEV_DATA.into()),
                fallback: Fallback::None,
            });
            for n in DEV_NODES {
                ops.push(bind_host_node(Path::new("/dev").join(n), p("/dev").join(n)));
            }
            for (name, to) in DEV_LINKS {
                ops.push(Op::Symlink {
                    link: p("/dev").join(name),
                    to,
                });
            }
            ops.push(Op::Devpts(p("/dev/pts")));
            ops.push(Op::Fs {
                fstype: "tmpfs",
                target: p("/dev/shm"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
                data: Some(SHM_DATA.into()),
                fallback: Fallback::None,
            });
            ops.push(Op::Fs {
                fstype: "mqueue",
                target: p("/dev/mqueue"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
                data: None,
                fallback: Fallback::BindHost {
                    path: "/dev/mqueue".into(),
                    readonly: false,
                    optional: true,
                },
            });
        }
        DevMode::Host => ops.push(bind_rec(BindSource::Host("/dev".into()), p("/dev"))),
        DevMode::None => {}
    }

    if spec.sys != SysMode::None {
        let readonly = spec.sys == SysMode::Ro;
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        flags.set(MsFlags::MS_RDONLY, readonly);
        ops.push(Op::Fs {
            fstype: "sysfs",
            target: p("/sys"),
            flags,
            data: None,
            fallback: Fallback::BindHost {
                path: "/sys".into(),
                readonly,
                optional: false,
            },
        });
    }

    if spec.tmp {
        ops.push(Op::Fs {
            fstype: "tmpfs",
            target: p("/tmp"),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=1777".into()),
            fallback: Fallback::None,
        });
    }
    match spec.run {
        RunMode::Auto => ops.push(Op::RunIfEmpty),
        RunMode::Tmpfs => ops.push(run_tmpfs()),
        RunMode::None => {}
    }
    ops
}

/// The caller's mounts and their targets.
fn user_ops(spec: &MountSpec) -> Result<(Vec<Op>, BTreeSet<InRoot>)> {
    // They replace the defaults on the same path or below it (a --tmpfs
    // /dev/shm:size=1g replaces the 64 MiB one, a bind on /dev the whole
    // minimal /dev).
    let mut user = Vec::new();
    let mut user_targets = BTreeSet::new();
    for m in &spec.mounts {
        if m.target().as_str() == "/" {
            return Err(Error::Usage(
                "a mount on / would replace the root: give the root with --root or --overlay instead".into(),
            ));
        }
        user_targets.insert(m.target().clone());
        user.push(match m {
            Mount::Bind(b) => bind_op(b)?,
            Mount::Tmpfs(t) => tmpfs_op(t)?,
            Mount::Devpts(d) => Op::Devpts(d.target.clone()),
        });
    }
    Ok((user, user_targets))
}

fn bind_plain(source: BindSource, target: InRoot) -> Op {
    Op::Bind {
        source,
        target,
        recursive: false,
        flags: MsFlags::empty(),
        propagation: Propagation::Rprivate,
    }
}

/// A bind of the host's device node `source`, read-only: the node opens
/// for reading and writing as before (a read-only mount does not stop
/// writes to a device), but chown, chmod, utimes and xattrs of its inode,
/// the host's, fail with EROFS. Without it the container's root (CAP_CHOWN
/// and CAP_FOWNER are in the default set) could `chmod 000 /dev/null` of
/// the host, or give a host device to every host user.
fn bind_host_node(source: PathBuf, target: InRoot) -> Op {
    Op::Bind {
        source: BindSource::Host(source),
        target,
        recursive: false,
        flags: MsFlags::MS_RDONLY,
        propagation: Propagation::Rprivate,
    }
}

fn bind_rec(source: BindSource, target: InRoot) -> Op {
    Op::Bind {
        source,
        target,
        recursive: true,
        flags: MsFlags::empty(),
        propagation: Propagation::Rprivate,
    }
}

fn run_tmpfs() -> Op {
    Op::Fs {
        fstype: "tmpfs",
        target: p("/run"),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        data: Some("mode=755".into()),
        fallback: Fallback::None,
    }
}

/// The gid of the `tty` group in an `/etc/group` text.
fn tty_gid(group: &str) -> Option<u32> {
    crate::user::parse_group(group)
        .into_iter()
        .find(|g| g.name == "tty")
        .map(|g| g.gid)
}

/// Write each `KEY=VALUE` kernel parameter under `/proc/sys` (`.` in the
/// key is `/`), before the root changes: the host's `/proc`, whose
/// namespaced parameters (net, ipc, uts) are those of the namespaces this
/// process is in. The caller chose which keys a container may set.
pub fn write_sysctls(sysctls: &std::collections::BTreeMap<String, String>) -> Result<()> {
    for (key, value) in sysctls {
        if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
            return Err(Error::Usage(format!(
                "sysctl {key:?}: not a parameter name"
            )));
        }
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value.as_bytes()).map_err(|e| {
            Error::sys(format!("set sysctl {key}={value}: write"), &path, e)
                .hint("the parameter must exist and belong to a namespace of the container's own")
        })?;
    }
    Ok(())
}

/// Carry out `ops` in order; the first failure stops everything (the caller
/// exits 125 and the half-built mount namespace dies with the process).
pub fn apply(ops: &[Op], sys: &mut dyn Syscall) -> Result<()> {
    for op in ops {
        apply_one(op, sys)?;
    }
    Ok(())
}

fn apply_one(op: &Op, sys: &mut dyn Syscall) -> Result<()> {
    match op {
        Op::PrivatizeHost => sys
            .mount_host(Source::None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
            .map_err(|e| e.hint("run cairn-mount in a new mount namespace (unshare -m, clone(CLONE_NEWNS)) as root or in a user namespace")),
        Op::Root { source: RootSource::Overlay(data), target } => sys
            .mount_host(Source::Fs("overlay"), target, Some("overlay"), MsFlags::empty(), Some(data))
            .map_err(|e| e.hint("check that the lower, upper and work directories exist, that upper and work are on one filesystem, and that the target exists (dmesg names the overlayfs complaint)")),
        Op::Root { source: RootSource::Bind(dir), target } => sys
            .mount_host(Source::Host(dir), target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
            .map_err(|e| e.hint("the root and the target must be existing directories")),
        Op::EnterRoot(dir) => sys.enter_root(dir),
        Op::Fs { fstype, target, flags, data, fallback } => {
            apply_fs(fstype, target, *flags, data.as_deref(), fallback, sys)
        }
        Op::Bind { source, target, recursive, flags, propagation } => {
            apply_bind(source, target, *recursive, *flags, propagation, sys)
        }
        Op::Symlink { link, to } => sys.symlink(to, link),
        Op::Write { path, content } => sys.write(path, content.as_bytes()),
        Op::Unmount(path) => sys.unmount(path),
        Op::Devpts(target) => apply_devpts(target, sys),
        Op::RunIfEmpty => {
            let run = p("/run");
            let empty = match sys.kind(&run)? {
                None => true,
                Some(Kind::Dir) => sys.is_empty_dir(&run)?,
                Some(Kind::File) => false,
            };
            if empty {
                apply_one(&run_tmpfs(), sys)?;
            }
            Ok(())
        }
        Op::Mask(path) => match sys.kind(path)? {
            None => Ok(()),
            Some(Kind::File) => apply_one(&bind_host_node("/dev/null".into(), path.clone()), sys),
            Some(Kind::Dir) => sys.mount(
                Source::Fs("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0k,nr_inodes=1,mode=555"),
            ),
        },
        Op::ReadOnly(path) => {
            if sys.kind(path)?.is_none() {
                return Ok(());
            }
            apply_one(
                &Op::Bind {
                    source: BindSource::InRoot(path.clone()),
                    target: path.clone(),
                    recursive: true,
                    flags: MsFlags::MS_RDONLY,
                    propagation: Propagation::Rprivate,
                },
                sys,
            )
        }
        Op::RootNodev => sys.remount_bind(&InRoot::root(), MsFlags::MS_NODEV, true),
        Op::RootReadOnly => sys.remount_bind(&InRoot::root(), MsFlags::MS_RDONLY, false),
    }
}

/// A new filesystem on `target` (created as a directory); where the
/// kernel refuses it (`EPERM`: sysfs or mqueue without the matching
/// namespace), the fallback bind of the host's, if the op has one.
fn apply_fs(
    fstype: &str,
    target: &InRoot,
    flags: MsFlags,
    data: Option<&str>,
    fallback: &Fallback,
    sys: &mut dyn Syscall,
) -> Result<()> {
    sys.create(target, Kind::Dir)?;
    match sys.mount(Source::Fs(fstype), target, Some(fstype), flags, data) {
        Err(e) if e.errno() == Some(libc::EPERM) && *fallback != Fallback::None => {
            let Fallback::BindHost {
                path,
                readonly,
                optional,
            } = fallback
            else {
                unreachable!()
            };
            if *optional && sys.host_kind(path).is_err() {
                return Ok(());
            }
            let mut flags = MsFlags::empty();
            flags.set(MsFlags::MS_RDONLY, *readonly);
            apply_one(
                &Op::Bind {
                    source: BindSource::Host(path.clone()),
                    target: target.clone(),
                    recursive: true,
                    flags,
                    propagation: Propagation::Rprivate,
                },
                sys,
            )
        }
        other => other,
    }
}

/// A bind mount: the target created like its source, then the flags made
/// effective by a remount and the propagation set.
fn apply_bind(
    source: &BindSource,
    target: &InRoot,
    recursive: bool,
    flags: MsFlags,
    propagation: &Propagation,
    sys: &mut dyn Syscall,
) -> Result<()> {
    let kind = match source {
        BindSource::Host(path) => sys.host_kind(path)?,
        BindSource::InRoot(path) => sys.kind(path)?.ok_or_else(|| Error::Refused {
            path: path.as_str().into(),
            reason: "the bind source does not exist inside the root".into(),
        })?,
    };
    sys.create(target, kind)?;
    let src = match source {
        BindSource::Host(path) => Source::Host(path),
        BindSource::InRoot(path) => Source::InRoot(path),
    };
    let mut bind = MsFlags::MS_BIND;
    bind.set(MsFlags::MS_REC, recursive);
    sys.mount(src, target, None, bind, None)?;
    // MS_BIND ignores MS_RDONLY and friends: a second mount with
    // MS_REMOUNT | MS_BIND makes them effective (mount(8), "bind mount
    // operation"); for an rbind, on every mount below too.
    if !flags.is_empty() {
        sys.remount_bind(target, flags, recursive)?;
    }
    // `/` was made rprivate first, so a new bind is already private;
    // only the other propagation types need a call.
    let prop = match propagation {
        Propagation::Rprivate | Propagation::Private => None,
        Propagation::Rslave => Some(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Propagation::Slave => Some(MsFlags::MS_SLAVE),
        Propagation::Rshared => Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
        Propagation::Shared => Some(MsFlags::MS_SHARED),
    };
    if let Some(prop) = prop {
        sys.mount(Source::None, target, None, prop, None)?;
    }
    Ok(())
}

/// The container's own devpts instance, its ptys owned by the image's
/// `tty` group when it has one that this user namespace maps.
fn apply_devpts(target: &InRoot, sys: &mut dyn Syscall) -> Result<()> {
    sys.create(target, Kind::Dir)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let base = "newinstance,ptmxmode=0666,mode=0620";
    let gid = sys.read(&p("/etc/group"))?.as_deref().and_then(tty_gid);
    match gid {
        Some(gid) => {
            let data = format!("{base},gid={gid}");
            match sys.mount(
                Source::Fs("devpts"),
                target,
                Some("devpts"),
                flags,
                Some(&data),
            ) {
                // The tty gid is not mapped in this user namespace:
                // ptys then belong to our own gid, as with podman.
                Err(e) if e.errno() == Some(libc::EINVAL) => sys.mount(
                    Source::Fs("devpts"),
                    target,
                    Some("devpts"),
                    flags,
                    Some(base),
                ),
                other => other,
            }
        }
        None => sys.mount(
            Source::Fs("devpts"),
            target,
            Some("devpts"),
            flags,
            Some(base),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_bind, parse_tmpfs, Etc, Overlay};
    use crate::syscall::Recorder;

    fn overlay_spec() -> MountSpec {
        MountSpec {
            root: Some(Root::Overlay(Overlay {
                lower: vec!["/img/l2".into(), "/img/l1".into()],
                upper: Some("/c/upper".into()),
                work: Some("/c/work".into()),
                options: vec![],
            })),
            target: Some("/c/rootfs".into()),
            ..MountSpec::default()
        }
    }

    /// A fake Debian-like root: /etc/group with tty, /proc entries that exist
    /// on most kernels (kcore, keys, sys ...), /run with contents.
    fn debian() -> Recorder {
        Recorder::new()
            .file("/etc/group", "root:x:0:\ntty:x:5:\nstaff:x:50:\n")
            .file("/proc/kcore", "")
            .file("/proc/keys", "")
            .file("/proc/timer_list", "")
            .dir("/proc/acpi")
            .dir("/proc/bus")
            .dir("/proc/fs")
            .dir("/proc/irq")
            .dir("/proc/sys")
            .file("/proc/sysrq-trigger", "")
            .dir("/sys/firmware")
            .dir("/run/lock")
    }

    fn run(spec: &MountSpec, mut rec: Recorder) -> Vec<String> {
        let ops = plan(spec).expect("plan");
        apply(&ops, &mut rec).expect("apply");
        rec.calls
    }

    /// `needle` lines appear in `calls` in this order (other lines may sit
    /// between them).
    fn assert_in_order(calls: &[String], needles: &[&str]) {
        let mut at = 0;
        for n in needles {
            match calls[at..].iter().position(|c| c == n) {
                Some(i) => at += i + 1,
                None => panic!(
                    "{n:?} missing (or out of order) after line {at} in:\n{}",
                    calls.join("\n")
                ),
            }
        }
    }

    #[test]
    fn default_overlay_layout() {
        let calls = run(&overlay_spec(), debian());
        assert_eq!(
            calls[0], "host-mount - / - rec,private -",
            "rprivate must come first"
        );
        assert_in_order(
            &calls,
            &[
                "host-mount overlay /c/rootfs overlay - lowerdir=/img/l2:/img/l1,upperdir=/c/upper,workdir=/c/work",
                "enter-root /c/rootfs",
                // device nodes of the image or the container's mknod open nothing
                "remount / nodev,remount,bind recursive",
                "mount proc /proc proc nosuid,nodev,noexec -",
                "mount tmpfs /dev tmpfs nosuid,nodev,strictatime mode=755,size=65536k",
                "create file /dev/null",
                "mount host:/dev/null /dev/null - bind -",
                "remount /dev/null ro,remount,bind",
                "mount host:/dev/tty /dev/tty - bind -",
                "remount /dev/tty ro,remount,bind",
                "symlink /dev/fd -> /proc/self/fd",
                "symlink /dev/stderr -> /proc/self/fd/2",
                "symlink /dev/ptmx -> pts/ptmx",
                "mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
                "mount tmpfs /dev/shm tmpfs nosuid,nodev,noexec mode=1777,size=65536k",
                "mount mqueue /dev/mqueue mqueue nosuid,nodev,noexec -",
                "mount sysfs /sys sysfs ro,nosuid,nodev,noexec -",
                // masks: file → /dev/null, dir → empty ro tmpfs, missing → nothing
                "mount tmpfs /proc/acpi tmpfs ro,nosuid,nodev,noexec size=0k,nr_inodes=1,mode=555",
                "mount host:/dev/null /proc/kcore - bind -",
                "remount /proc/kcore ro,remount,bind",
                "mount tmpfs /sys/firmware tmpfs ro,nosuid,nodev,noexec size=0k,nr_inodes=1,mode=555",
                // read-only paths: bound onto themselves, then really read-only
                "mount root:/proc/sys /proc/sys - bind,rec -",
                "remount /proc/sys ro,remount,bind recursive",
                "mount root:/proc/sysrq-trigger /proc/sysrq-trigger - bind,rec -",
                "remount /proc/sysrq-trigger ro,remount,bind recursive",
            ],
        );
        // /run has contents: kept. No /tmp unless asked. Missing masks skipped.
        assert!(
            !calls
                .iter()
                .any(|c| c.contains(" /run ") || c.contains(" /tmp ")),
            "{calls:#?}"
        );
        assert!(!calls.iter().any(|c| c.contains("latency_stats")
            || c.contains("sched_debug")
            || c.contains("/proc/scsi")));
        assert!(
            !calls.iter().any(|c| c.starts_with("remount / ro")),
            "root stays writable"
        );
    }

    #[test]
    #[allow(clippy::too_many_lines)] // a table of cases, one entry each
    fn table_of_spec_variants() {
        struct Case {
            name: &'static str,
            edit: fn(&mut MountSpec),
            fs: fn(Recorder) -> Recorder,
            present: &'static [&'static str],
            absent: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "privileged: no masks, no read-only paths",
                edit: |s| s.privileged = true,
                fs: |r| r,
                present: &["mount proc /proc proc nosuid,nodev,noexec -"],
                absent: &["mount host:/dev/null /proc/kcore - bind -", "remount /proc/sys ro,remount,bind recursive", "remount / nodev,remount,bind recursive"],
            },
            Case {
                name: "no tty group: devpts without gid",
                edit: |_| {},
                fs: |_| Recorder::new().file("/etc/group", "root:x:0:\n"),
                present: &["mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620"],
                absent: &[],
            },
            Case {
                name: "host proc and dev, no sys",
                edit: |s| {
                    s.proc = ProcMode::Host;
                    s.dev = DevMode::Host;
                    s.sys = SysMode::None;
                },
                fs: |r| r,
                present: &["mount host:/proc /proc - bind,rec -", "mount host:/dev /dev - bind,rec -"],
                absent: &["mount proc /proc proc nosuid,nodev,noexec -", "mount tmpfs /dev tmpfs nosuid,nodev,strictatime mode=755,size=65536k", "sysfs"],
            },
            Case {
                name: "empty /run gets a tmpfs, /tmp when asked",
                edit: |s| s.tmp = true,
                fs: |_| Recorder::new().file("/etc/group", ""),
                present: &["mount tmpfs /tmp tmpfs nosuid,nodev mode=1777", "mount tmpfs /run tmpfs nosuid,nodev mode=755"],
                absent: &[],
            },
            Case {
                name: "missing /run is created",
                edit: |_| {},
                fs: |mut r| {
                    r.tree.remove("/run");
                    r
                },
                present: &["create dir /run", "mount tmpfs /run tmpfs nosuid,nodev mode=755"],
                absent: &[],
            },
            Case {
                name: "read-only root is remounted last",
                edit: |s| s.readonly = true,
                fs: |r| r,
                present: &["remount / ro,remount,bind"],
                absent: &[],
            },
            Case {
                name: "ro bind with flags: bind then remount, recursive",
                edit: |s| s.mounts.push(Mount::Bind(parse_bind("/data:/srv/data:ro,nosuid,nodev,noexec,rslave").unwrap())),
                fs: |r| r.host_path("/data", Kind::Dir),
                present: &[
                    "create dir /srv/data",
                    "mount host:/data /srv/data - bind,rec -",
                    "remount /srv/data ro,nosuid,nodev,noexec,remount,bind recursive",
                    "mount - /srv/data - rec,slave -",
                ],
                absent: &[],
            },
            Case {
                name: "non-recursive rw file bind: no remount",
                edit: |s| s.mounts.push(Mount::Bind(parse_bind("/etc/motd:/etc/motd:norecursive").unwrap())),
                fs: |r| r.host_path("/etc/motd", Kind::File),
                present: &["create file /etc/motd", "mount host:/etc/motd /etc/motd - bind -"],
                absent: &["remount /etc/motd"],
            },
            Case {
                name: "user tmpfs on /dev/shm replaces the default",
                edit: |s| s.mounts.push(Mount::Tmpfs(parse_tmpfs("/dev/shm:size=1g").unwrap())),
                fs: |r| r,
                present: &["mount tmpfs /dev/shm tmpfs nosuid,nodev size=1g"],
                absent: &["mount tmpfs /dev/shm tmpfs nosuid,nodev,noexec mode=1777,size=65536k"],
            },
            Case {
                name: "user bind on /dev replaces the whole minimal /dev",
                edit: |s| s.mounts.push(Mount::Bind(parse_bind("/mydev:/dev").unwrap())),
                fs: |r| r.host_path("/mydev", Kind::Dir),
                present: &["mount host:/mydev /dev - bind,rec -"],
                absent: &["mount tmpfs /dev tmpfs nosuid,nodev,strictatime mode=755,size=65536k", "/dev/null - bind", "devpts", "symlink /dev/fd -> /proc/self/fd"],
            },
            Case {
                name: "generated and bound /etc files; staging detached before procfs",
                edit: |s| {
                    s.etc = Etc {
                        hostname: Some(EtcFile::Content("box\n".into())),
                        hosts: None,
                        resolv_conf: Some(EtcFile::Path("/host/resolv.conf".into())),
                    }
                },
                fs: |r| r.host_path("/host/resolv.conf", Kind::File),
                present: &[
                    "mount tmpfs /proc tmpfs nosuid,nodev,noexec mode=755,size=1m",
                    "write /proc/hostname \"box\\n\"",
                    "create file /etc/hostname",
                    "mount root:/proc/hostname /etc/hostname - bind -",
                    "create file /etc/resolv.conf",
                    "mount host:/host/resolv.conf /etc/resolv.conf - bind -",
                    "unmount /proc",
                    "mount proc /proc proc nosuid,nodev,noexec -",
                ],
                absent: &[],
            },
            Case {
                name: "custom mask list replaces the default",
                edit: |s| s.masked_paths = Some(vec![InRoot::new("/proc/keys").unwrap()]),
                fs: |r| r,
                present: &["mount host:/dev/null /proc/keys - bind -"],
                absent: &["mount host:/dev/null /proc/kcore - bind -"],
            },
        ];
        for case in cases {
            let mut spec = overlay_spec();
            (case.edit)(&mut spec);
            let calls = run(&spec, (case.fs)(debian()));
            if case.present.len() > 1 {
                assert_in_order(&calls, case.present);
            }
            for want in case.present {
                assert!(
                    calls.iter().any(|c| c == want),
                    "{}: {want:?} missing in\n{}",
                    case.name,
                    calls.join("\n")
                );
            }
            for bad in case.absent {
                assert!(
                    !calls.iter().any(|c| c.contains(bad)),
                    "{}: {bad:?} present in\n{}",
                    case.name,
                    calls.join("\n")
                );
            }
        }
    }

    #[test]
    fn fallbacks_when_new_filesystems_are_not_permitted() {
        let mut rec = debian();
        rec.fail_fs.insert("sysfs".into(), libc::EPERM);
        rec.fail_fs.insert("mqueue".into(), libc::EPERM);
        let calls = run(&overlay_spec(), rec);
        assert_in_order(
            &calls,
            &[
                "mount mqueue /dev/mqueue mqueue nosuid,nodev,noexec - => errno 1",
                "mount host:/dev/mqueue /dev/mqueue - bind,rec -",
                "mount sysfs /sys sysfs ro,nosuid,nodev,noexec - => errno 1",
                "mount host:/sys /sys - bind,rec -",
                "remount /sys ro,remount,bind recursive",
            ],
        );
        // Other errors are not papered over.
        let mut rec = debian();
        rec.fail_fs.insert("sysfs".into(), libc::ENODEV);
        let ops = plan(&overlay_spec()).unwrap();
        let err = apply(&ops, &mut rec).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV));

        // devpts: retried without gid= when the tty gid is not mapped.
        let mut rec = debian();
        rec.fail_fs.insert("devpts".into(), libc::EINVAL);
        let ops = plan(&overlay_spec()).unwrap();
        assert!(
            apply(&ops, &mut rec).is_err(),
            "the recorder fails both attempts"
        );
        assert_in_order(
            &rec.calls,
            &[
                "mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5 => errno 22",
                "mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620 => errno 22",
            ],
        );
    }

    #[test]
    fn bind_root_and_plan_errors() {
        let spec = MountSpec {
            root: Some(Root::Bind("/srv/root".into())),
            ..MountSpec::default()
        };
        let calls = run(&spec, debian());
        assert_eq!(calls[1], "host-mount host:/srv/root /srv/root - bind,rec -");
        assert_eq!(calls[2], "enter-root /srv/root");

        let ro = MountSpec {
            root: Some(Root::Overlay(Overlay {
                lower: vec!["/a".into(), "/b".into()],
                upper: None,
                work: None,
                options: vec!["userxattr".into()],
            })),
            target: Some("/t".into()),
            ..MountSpec::default()
        };
        assert!(run(&ro, debian())
            .contains(&"host-mount overlay /t overlay - lowerdir=/a:/b,userxattr".to_string()));

        let bad: Vec<(MountSpec, &str)> = vec![
            (MountSpec::default(), "no root"),
            (
                MountSpec {
                    target: None,
                    ..overlay_spec()
                },
                "--target",
            ),
            (
                MountSpec {
                    target: Some("rel".into()),
                    ..overlay_spec()
                },
                "absolute",
            ),
            (
                MountSpec {
                    root: Some(Root::Overlay(Overlay {
                        lower: vec!["/a:b".into()],
                        upper: None,
                        work: None,
                        options: vec![],
                    })),
                    ..overlay_spec()
                },
                "cannot carry",
            ),
            (
                MountSpec {
                    root: Some(Root::Overlay(Overlay {
                        lower: vec!["/a".into()],
                        upper: Some("/u".into()),
                        work: None,
                        options: vec![],
                    })),
                    ..overlay_spec()
                },
                "both an upper and a work",
            ),
            (
                MountSpec {
                    root: Some(Root::Overlay(Overlay {
                        lower: vec!["/a".into()],
                        upper: None,
                        work: None,
                        options: vec!["x,upperdir=/evil".into()],
                    })),
                    ..overlay_spec()
                },
                "single extra option",
            ),
            (
                MountSpec {
                    mounts: vec![Mount::Bind(parse_bind("/x:/").unwrap())],
                    ..overlay_spec()
                },
                "replace the root",
            ),
        ];
        for (spec, want) in bad {
            let err = plan(&spec).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} does not mention {want:?}");
        }
    }
}
