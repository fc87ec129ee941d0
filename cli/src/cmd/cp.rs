//! `cairn cp`: files and directories between a container and the host.
//!
//! The container side is always handled by a child `cairn __cp` that has
//! chrooted into the container's root (`/proc/PID/root` of a running
//! container, or its overlay mounted in a private mount namespace when it is
//! stopped), so a symlink in the container resolves the way the container
//! sees it and can never lead to the host. The two sides talk tar over a pipe.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use clap::Args;

use crate::context::Context;
use crate::exit;
use cairn_engine::container::{Container, Containers, Status};

/// `__cp` arguments (internal).
#[derive(Debug, Args)]
pub struct CpChildArgs {
    /// out, in or in-chown.
    pub mode: String,
    /// Container id.
    pub id: String,
    /// Path in the container.
    pub path: String,
    /// Name of the copied top-level entry.
    pub name: String,
}

/// `cp` arguments.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// SRC: a host path or CONTAINER:PATH.
    pub source: String,
    /// DST: a host path or CONTAINER:PATH (`-` for a tar stream on stdout).
    pub destination: String,
    /// Archive mode: keep owners (the default for copies into a container).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub archive: bool,
    /// Not supported: replacing a directory by a file or the reverse.
    #[arg(long, hide = true)]
    pub overwrite: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    exit::with_code(exit::ENGINE, msg)
}

/// `CONTAINER:PATH` → (container, path); a host path → None. A path that
/// starts with `/` or `.` is always a host path, as in podman.
fn split(ctx: &Context, s: &str) -> anyhow::Result<Option<(Container, String)>> {
    if s.starts_with('/') || s.starts_with('.') {
        return Ok(None);
    }
    let Some((name, path)) = s.split_once(':') else {
        return Ok(None);
    };
    let c = Containers::new(ctx.root()).find(name)?;
    let path = if path.is_empty() {
        "/".into()
    } else {
        path.to_owned()
    };
    Ok(Some((c, path)))
}

/// `cairn cp`.
pub fn cp(ctx: &Context, a: CpArgs) -> anyhow::Result<u8> {
    if a.overwrite {
        return Err(usage(
            "cairn does not support --overwrite (cp never replaces a directory by a file or the reverse)",
        ));
    }
    let src = split(ctx, &a.source)?;
    let dst = split(ctx, &a.destination)?;
    if a.source == "-" {
        return match dst {
            Some((c, path)) => copy_in_stream(ctx, &c, &path, a.archive),
            None => Err(usage(
                "with - as the source (a tar stream on stdin), the destination must be CONTAINER:PATH",
            )),
        };
    }
    match (src, dst) {
        (Some(_), Some(_)) => Err(usage(
            "copying between containers is not supported: copy to the host first",
        )),
        (None, None) => Err(usage(
            "one of source and destination must be CONTAINER:PATH",
        )),
        (Some((c, path)), None) => copy_out(ctx, &c, &path, &a.destination),
        (None, Some((c, path))) => copy_in(ctx, &c, &a.source, &path, a.archive),
    }
}

fn child(
    ctx: &Context,
    c: &Container,
    mode: &str,
    path: &str,
    name: &str,
) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("find the cairn executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(ctx.root())
        .arg("__cp")
        .arg(mode)
        .arg(&c.config.id)
        .arg(path)
        .arg(name);
    Ok(cmd)
}

/// Container → host.
fn copy_out(ctx: &Context, c: &Container, path: &str, dst: &str) -> anyhow::Result<u8> {
    let contents = path.ends_with("/.");
    let base = Path::new(path.trim_end_matches("/.").trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    if dst == "-" {
        let status = child(ctx, c, "out", path, &base)?
            .stdout(Stdio::inherit())
            .status()
            .context("run the copy helper")?;
        return Ok(status.code().unwrap_or(125) as u8);
    }
    let dst = PathBuf::from(dst);
    let (dir, name) = if dst.is_dir() {
        (dst.clone(), if contents { ".".to_owned() } else { base })
    } else {
        let parent = dst
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        if !parent.is_dir() {
            return Err(usage(format!(
                "{}: no such directory on the host",
                parent.display()
            )));
        }
        let name = dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| usage(format!("{}: not a file name", dst.display())))?;
        (parent, name)
    };
    let mut proc = child(ctx, c, "out", path, &name)?
        .stdout(Stdio::piped())
        .spawn()
        .context("run the copy helper")?;
    let out = proc.stdout.take().expect("piped");
    let unpacked = unpack_keeping_dir_times(out, &dir);
    let status = proc.wait().context("wait for the copy helper")?;
    if !status.success() {
        return Ok(status.code().unwrap_or(125) as u8);
    }
    unpacked.with_context(|| format!("copy into {}", dir.display()))?;
    Ok(0)
}

/// Unpacks the helper's tar into `dir` (its checks keep every entry
/// inside), then gives the directories their mode and mtime from the
/// archive, deepest first: the files unpacked into a directory changed its
/// mtime, and a read-only one had to stay writable until they were in.
fn unpack_keeping_dir_times(tar: impl io::Read, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut ar = tar::Archive::new(tar);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_dir() {
            entry.unpack_in(dir)?;
            continue;
        }
        let rel = entry.path()?.into_owned();
        let mode = entry.header().mode().ok();
        let mtime = entry.header().mtime().ok();
        if entry.unpack_in(dir)? {
            let path = dir.join(&rel);
            // Writable by us until its contents are in.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
            dirs.push((path, mode, mtime));
        }
    }
    for (path, mode, mtime) in dirs.iter().rev() {
        // Never through a symlink: the tar comes from the container.
        let d = fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_DIRECTORY).bits())
            .open(path)?;
        if let Some(m) = mode {
            d.set_permissions(fs::Permissions::from_mode(m & 0o7777))?;
        }
        if let Some(t) = mtime {
            d.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(*t))?;
        }
    }
    Ok(())
}

/// `cp - CONTAINER:DIR`: the tar stream on stdin unpacked into DIR, which
/// must be a directory (podman's rule).
fn copy_in_stream(ctx: &Context, c: &Container, path: &str, archive: bool) -> anyhow::Result<u8> {
    let status = child(ctx, c, if archive { "in-chown" } else { "in" }, path, "-")?
        .stdin(Stdio::inherit())
        .status()
        .context("run the copy helper")?;
    Ok(status.code().unwrap_or(125) as u8)
}

/// Host → container.
fn copy_in(
    ctx: &Context,
    c: &Container,
    src: &str,
    path: &str,
    archive: bool,
) -> anyhow::Result<u8> {
    let contents = src.ends_with("/.");
    let src_path = PathBuf::from(src.trim_end_matches("/."));
    let meta = fs::symlink_metadata(&src_path)
        .map_err(|e| usage(format!("{}: {e}", src_path.display())))?;
    let base = src_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let name = if contents { "/.".to_owned() } else { base };
    let mut cmd = child(ctx, c, if archive { "in-chown" } else { "in" }, path, &name)?;
    let mut proc = cmd
        .stdin(Stdio::piped())
        .spawn()
        .context("run the copy helper")?;
    let stdin = proc.stdin.take().expect("piped");
    let mut b = tar::Builder::new(io::BufWriter::new(stdin));
    b.follow_symlinks(false);
    let built = if meta.is_dir() {
        b.append_dir_all(".", &src_path)
    } else {
        b.append_path_with_name(&src_path, ".")
    }
    .and_then(|()| b.into_inner().and_then(|mut w| w.flush()));
    let status = proc.wait().context("wait for the copy helper")?;
    if !status.success() {
        return Ok(status.code().unwrap_or(125) as u8);
    }
    built.with_context(|| format!("read {}", src_path.display()))?;
    Ok(0)
}

/// The hidden `cairn __cp MODE ID PATH NAME` child.
pub fn child_main(ctx: &Context, a: CpChildArgs) -> anyhow::Result<u8> {
    let c = Containers::new(ctx.root()).find(&a.id)?;
    let running = c.live().status == Status::Running;
    if !nix::unistd::geteuid().is_root() {
        if !running {
            // Mounting the stopped container's overlay needs a namespace.
            return Ok(cairn_engine::userns::reenter(ctx.root())?);
        }
        join_userns(c.state.pid)?;
    }
    let root = if running {
        PathBuf::from(format!("/proc/{}/root", c.state.pid))
    } else {
        mount_stopped(&c)?
    };
    // Resolve the user for chown before chroot hides nothing: we read the
    // container's own files after chroot.
    nix::unistd::chroot(&root).with_context(|| format!("chroot into {}", root.display()))?;
    std::env::set_current_dir("/").context("chdir / in the container")?;
    match a.mode.as_str() {
        "out" => child_out(&a.path, &a.name),
        "in" | "in-chown" => child_in(&c, &a.path, &a.name, a.mode == "in-chown"),
        m => Err(usage(format!("unknown copy mode {m}"))),
    }
}

/// Rootless: becomes root in the running container's user namespace (the
/// caller owns it), where its root may be entered.
fn join_userns(pid: i32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/ns/user");
    let ns = fs::File::open(&path).with_context(|| format!("open {path}"))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .with_context(|| format!("join the container's user namespace {path}"))?;
    cairn_engine::userns::become_root("the container's user namespace")?;
    Ok(())
}

/// A stopped container's root: its overlay, mounted in a mount namespace
/// of our own (gone when we exit).
pub(crate) fn mount_stopped(c: &Container) -> anyhow::Result<PathBuf> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("create a mount namespace to mount the container's root (cp of a stopped container needs root)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make / private")?;
    let target = c.dir.join("rootfs");
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        c.config.image.lowerdir_option(),
        c.dir.join("upper").display(),
        c.dir.join("work").display()
    );
    if cairn_engine::userns::rootless() {
        data.push_str(",userxattr");
    }
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .with_context(|| format!("mount the container's overlay on {}", target.display()))?;
    Ok(target)
}

fn child_out(path: &str, name: &str) -> anyhow::Result<u8> {
    let src = Path::new(path.trim_end_matches("/."));
    let meta =
        fs::symlink_metadata(src).map_err(|e| usage(format!("{path}: {e} (in the container)")))?;
    let mut b = tar::Builder::new(io::BufWriter::new(io::stdout().lock()));
    b.follow_symlinks(false);
    if meta.is_dir() {
        b.append_dir_all(name, src)
    } else {
        b.append_path_with_name(src, name)
    }
    .and_then(|()| b.into_inner().and_then(|mut w| w.flush()))
    .with_context(|| format!("read {path} in the container"))?;
    Ok(0)
}

fn child_in(c: &Container, path: &str, name: &str, chown: bool) -> anyhow::Result<u8> {
    let dst = Path::new(path);
    // `-`: a tar stream from the user, unpacked into the directory `path`.
    if name == "-" && !fs::metadata(dst).is_ok_and(|m| m.is_dir()) {
        return Err(usage(format!(
            "{path}: destination must be a directory when copying from stdin"
        )));
    }
    let contents = name == "/." || name == "-";
    let (dir, newname) = match fs::metadata(dst) {
        Ok(m) if m.is_dir() => (
            dst.to_owned(),
            if contents {
                None
            } else {
                Some(name.to_owned())
            },
        ),
        Ok(_) => (
            dst.parent().unwrap_or(Path::new("/")).to_owned(),
            Some(
                dst.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        ),
        Err(_) => {
            let parent = dst.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(usage(format!(
                    "{}: no such directory in the container",
                    parent.display()
                )));
            }
            (
                parent.to_owned(),
                Some(
                    dst.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            )
        }
    };
    let owner = if chown {
        Some(container_user(&c.config.process.user))
    } else {
        None
    };
    let mut ar = tar::Archive::new(io::stdin().lock());
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    for entry in ar.entries().context("read the tar stream")? {
        let mut entry = entry.context("read the tar stream")?;
        let rel = entry.path().context("entry path")?.into_owned();
        // Relative to the destination, whatever the stream says (`./x`,
        // `/x`); `..` never.
        if rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            continue;
        }
        let rel: PathBuf = rel
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let target = match &newname {
            Some(n) if rel.as_os_str().is_empty() => dir.join(n),
            Some(n) => dir.join(n).join(&rel),
            None => dir.join(&rel),
        };
        if target == dir {
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("create {} in the container", parent.display()))?;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("write {} in the container", target.display()))?;
        if entry.header().entry_type().is_dir() {
            dirs.push((target.clone(), entry.header().mtime().ok()));
        }
        if let Some((uid, gid)) = owner {
            lchown(&target, uid, gid)?;
        }
    }
    // Directory mtimes last, deepest first: their contents changed them.
    for (path, mtime) in dirs.iter().rev() {
        if let Some(t) = mtime {
            set_dir_mtime(path, *t)
                .with_context(|| format!("set the mtime of {} in the container", path.display()))?;
        }
    }
    Ok(0)
}

/// Gives `path` (in the chrooted container) to `uid`:`gid`, never through
/// a symlink.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown {} to {uid}:{gid} in the container", path.display()))
}

/// Sets a directory's mtime, never through a symlink.
pub(crate) fn set_dir_mtime(path: &Path, secs: u64) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_DIRECTORY).bits())
        .open(path)?
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// uid and gid of `user[:group]` from the (chrooted) container's files.
pub(crate) fn container_user(user: &str) -> (u32, u32) {
    let (u, g) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    let lookup = |file: &str, key: &str| -> Option<(u32, u32)> {
        // The container's file: bounded, never a device or FIFO.
        let root = fs::File::open("/").ok()?;
        let rel = file.trim_start_matches('/');
        let text =
            cairn_engine::container::files::read_in_root(&root, Path::new(rel), Path::new(file))
                .ok()??;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || (f[0] != key && f[2] != key) {
                return None;
            }
            let id: u32 = f[2].parse().ok()?;
            // passwd has the primary gid in field 4; group has members there.
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((id, gid))
        })
    };
    let (uid, mut gid) = if u.is_empty() {
        (0, 0)
    } else if let Ok(n) = u.parse::<u32>() {
        lookup("/etc/passwd", u).unwrap_or((n, n))
    } else {
        lookup("/etc/passwd", u).unwrap_or((0, 0))
    };
    if let Some(g) = g {
        gid = g
            .parse()
            .ok()
            .or_else(|| lookup("/etc/group", g).map(|(gid, _)| gid))
            .unwrap_or(gid);
    }
    (uid, gid)
}
