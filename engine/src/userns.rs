//! Rootless mode: commands that create files owned by other ids (unpacked
//! layers, container roots) run in a user namespace where the caller is
//! root and the caller's subordinate ids (`/etc/subuid`, `/etc/subgid`, every
//! range) are ids 1…N, as podman's rootless mode does. The maps are written
//! by the system's setuid `newuidmap`/`newgidmap` (package `uidmap`); cairn
//! installs nothing setuid.
//!
//! The parent `cairn` re-executes itself with the same arguments; the child
//! unshares user and mount namespaces first thing in `main` (still
//! single-threaded), says so on a pipe, and waits on another pipe while the
//! parent runs `newuidmap`/`newgidmap` on it; then it becomes root in the
//! namespace and runs the command. The parent exits with the child's status.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::process::{Command, Stdio};

use std::path::Path;

use crate::container::config::IdMaps;
use crate::error::{bail, Context as _, Error, Result};

/// Set in the child: "fd-to-parent,fd-from-parent".
const CHILD_ENV: &str = "_CAIRN_USERNS_CHILD";
/// Set in the child after the maps are written: `UID:GID:UIDS:GIDS`, the
/// caller's ids outside and how many ids the namespace maps.
pub(crate) const ROOTLESS_ENV: &str = "_CAIRN_ROOTLESS";

/// Inside the re-entered namespace: the caller's uid and gid outside, and
/// the sizes of the subordinate ranges the namespace maps after the caller
/// (our id 0), in order: our ids 1…c1 are the first range, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootless {
    /// The caller's uid outside.
    pub uid: u32,
    /// The caller's gid outside.
    pub gid: u32,
    /// Sizes of the subordinate uid ranges.
    pub uid_ranges: Vec<u32>,
    /// Sizes of the subordinate gid ranges.
    pub gid_ranges: Vec<u32>,
}

/// The namespace's facts when we run rootless inside it.
pub fn rootless_ids() -> Option<Rootless> {
    let v = std::env::var(ROOTLESS_ENV).ok()?;
    let mut f = v.split(':');
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    let sizes = |s: &str| -> Option<Vec<u32>> { s.split(',').map(|n| n.parse().ok()).collect() };
    Some(Rootless {
        uid,
        gid,
        uid_ranges: sizes(f.next()?)?,
        gid_ranges: sizes(f.next()?)?,
    })
}

/// The value of [`ROOTLESS_ENV`] for these ranges.
fn rootless_env(uid: u32, gid: u32, u: &[Range], g: &[Range]) -> String {
    let sizes = |r: &[Range]| {
        r.iter()
            .map(|r| r.count.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{uid}:{gid}:{}:{}", sizes(u), sizes(g))
}

/// podman's keep-id inside our namespace, as `container host size` triples
/// (host = our namespace's ids): the caller's id `own` is itself inside
/// (our 0), ids below it are our 1…own, ids above it are themselves. A
/// triple never spans two of our ranges (`sizes`, after our 0): the kernel
/// requires each to fall in one extent of the parent's map.
pub(crate) fn keep_id_triples(own: u32, sizes: &[u32]) -> Vec<[u32; 3]> {
    let subs: u64 = sizes.iter().map(|&n| u64::from(n)).sum();
    let subs = subs.min(u64::from(u32::MAX - 1)) as u32;
    let mut coarse = vec![[own, 0, 1]];
    let below = own.min(subs);
    if below > 0 {
        coarse.push([0, 1, below]);
    }
    if subs > own {
        coarse.push([own + 1, own + 1, subs - own]);
    }
    // Our extents: [0], then one per subordinate range.
    let mut bounds = vec![1u64];
    for &n in sizes {
        let last = *bounds.last().expect("non-empty");
        bounds.push(last + u64::from(n));
    }
    let mut out = Vec::new();
    for [inside, host, size] in coarse {
        let (mut inside, mut host, mut left) =
            (u64::from(inside), u64::from(host), u64::from(size));
        while left > 0 {
            let next_bound = bounds
                .iter()
                .copied()
                .find(|&b| b > host)
                .unwrap_or(u64::MAX);
            let take = left.min(next_bound - host);
            out.push([inside as u32, host as u32, take as u32]);
            inside += take;
            host += take;
            left -= take;
        }
    }
    out
}

/// keep-id's uid and gid maps for the caller described by `r`.
pub fn keep_id_maps(r: &Rootless) -> IdMaps {
    IdMaps {
        uid: keep_id_triples(r.uid, &r.uid_ranges),
        gid: keep_id_triples(r.gid, &r.gid_ranges),
    }
}

/// keep-id: the caller exists in the container's /etc/passwd and
/// /etc/group, written into the container's upper layer (not the image).
pub(crate) fn add_user(
    dir: &Path,
    image_root: &cairn_unpacker::ImageRoot,
    r: &Rootless,
) -> Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let host = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(r.uid))
        .ok()
        .flatten();
    let name = host
        .as_ref()
        .map_or_else(|| format!("user{}", r.uid), |u| u.name.clone());
    let home = host
        .as_ref()
        .map_or_else(|| "/".into(), |u| u.dir.to_string_lossy().into_owned());
    let shell = host
        .as_ref()
        .map(|u| u.shell.to_string_lossy().into_owned())
        .filter(|s| image_root.find(Path::new(s)).is_some())
        .unwrap_or_else(|| "/bin/sh".into());
    // The root of the merged tree shows the upper dir's owner: make it the
    // image root's (root inside), not the caller's.
    let top = &image_root.lowers[0];
    let root_meta = std::fs::metadata(top).with_context(|| format!("stat {}", top.display()))?;
    for d in ["upper", "work"] {
        let p = dir.join(d);
        nix::unistd::chown(
            &p,
            Some(nix::unistd::Uid::from_raw(root_meta.uid())),
            Some(nix::unistd::Gid::from_raw(root_meta.gid())),
        )
        .with_context(|| format!("chown {}", p.display()))?;
    }
    let upper = dir.join("upper");
    std::fs::set_permissions(
        &upper,
        std::fs::Permissions::from_mode(root_meta.mode() & 0o7777),
    )
    .with_context(|| format!("chmod {}", upper.display()))?;
    let Some(etc_meta) = image_root
        .find(Path::new("etc"))
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_dir())
    else {
        return Ok(());
    };
    let etc = dir.join("upper/etc");
    std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
    std::fs::set_permissions(
        &etc,
        std::fs::Permissions::from_mode(etc_meta.mode() & 0o7777),
    )
    .with_context(|| format!("chmod {}", etc.display()))?;
    let own = |p: &Path, m: &std::fs::Metadata| {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(m.uid())),
            Some(nix::unistd::Gid::from_raw(m.gid())),
        )
        .with_context(|| format!("chown {}", p.display()))
    };
    own(&etc, &etc_meta)?;
    for (file, line, id) in [
        (
            "passwd",
            format!("{name}:*:{}:{}:{name}:{home}:{shell}\n", r.uid, r.gid),
            r.uid,
        ),
        ("group", format!("{name}:x:{}:\n", r.gid), r.gid),
    ] {
        let Some(lower) = image_root.find(&Path::new("etc").join(file)) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&lower) else {
            continue;
        };
        let mut text = crate::container::files::read_resolved(&lower)?.unwrap_or_default();
        let present = text.lines().any(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f.len() > 2 && (f[0] == name || f[2].parse::<u32>().ok() == Some(id))
        });
        if present {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let path = etc.join(file);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("chmod {}", path.display()))?;
        own(&path, &meta)?;
    }
    Ok(())
}

/// One subordinate range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// First host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// Whether this process is cairn running rootless (outside or inside the
/// re-entered namespace).
pub fn rootless() -> bool {
    std::env::var_os(ROOTLESS_ENV).is_some() || !nix::unistd::geteuid().is_root()
}

/// The ranges of `user` (name) or `uid` in a subuid/subgid file's text.
pub(crate) fn ranges(text: &str, user: &str, uid: u32) -> Vec<Range> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            let start = f.next()?.trim().parse().ok()?;
            let count = f.next()?.trim().parse().ok()?;
            ((who == user || who.parse::<u32>().ok() == Some(uid)) && count > 0)
                .then_some(Range { start, count })
        })
        .collect()
}

/// newuidmap's arguments: the caller is 0, the ranges follow from 1.
pub(crate) fn map_args(own: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_owned(), own.to_string(), "1".to_owned()];
    let mut next: u64 = 1;
    for r in ranges {
        args.push(next.to_string());
        args.push(r.start.to_string());
        args.push(r.count.to_string());
        next += u64::from(r.count);
    }
    args
}

/// In the re-executed child: unshares and waits for the maps. Returns
/// whether we are that child.
pub fn child_setup() -> Result<bool> {
    let Some(v) = std::env::var_os(CHILD_ENV) else {
        return Ok(false);
    };
    let v = v.to_string_lossy().into_owned();
    let (fds, ids) = v
        .split_once('/')
        .ok_or_else(|| Error::Invalid(format!("bad {CHILD_ENV}={v}")))?;
    let ids = ids.to_owned();
    let (to_parent, from_parent) = fds
        .split_once(',')
        .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?)))
        .ok_or_else(|| Error::Invalid(format!("bad {CHILD_ENV}={v}")))?;
    let (mut to_parent, mut from_parent) = (fd_file(to_parent)?, fd_file(from_parent)?);
    std::env::remove_var(CHILD_ENV);
    let r = nix::sched::unshare(
        nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
    );
    let status = match &r {
        Ok(()) => b"u".as_slice(),
        Err(_) => b"e".as_slice(),
    };
    to_parent.write_all(status).context("tell the parent")?;
    r.context("unshare a user namespace (is kernel.unprivileged_userns_clone or user.max_user_namespaces 0?)")?;
    let mut ok = [0u8; 1];
    from_parent
        .read_exact(&mut ok)
        .context("wait for the id maps")?;
    if ok[0] != b'm' {
        bail!("the parent could not write the id maps");
    }
    become_root("the user namespace")?;
    let _ = nix::unistd::setgroups(&[]);
    // Mounts we make (cp of a stopped container) stay in here.
    let _ = nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    );
    std::env::set_var(ROOTLESS_ENV, ids);
    // The pipes stay open: the parent signals for us what we may not.
    let _ = KILL_PROXY.set(std::sync::Mutex::new((to_parent, from_parent)));
    Ok(true)
}

/// In the re-entered child: the pipes to the parent, which still has the
/// caller's own credentials (see [`kill`]).
static KILL_PROXY: std::sync::OnceLock<std::sync::Mutex<(fs::File, fs::File)>> =
    std::sync::OnceLock::new();

/// `kill(2)`, also where this namespace has no right to: a container with
/// its own user namespace (`--userns keep-id`) was made inside the
/// namespace of the `cairn` that started it, a sibling of ours, and its
/// processes run as subordinate ids, not as the caller. In the re-entered
/// child, a refused signal (EPERM) is sent by the parent, which runs as the
/// caller outside and so holds every capability in the namespaces the
/// caller owns. Returns the errno of whichever sent it last.
pub fn kill(pid: nix::unistd::Pid, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    match nix::sys::signal::kill(pid, sig) {
        Err(nix::errno::Errno::EPERM) => match KILL_PROXY.get() {
            Some(proxy) => {
                let mut pipes = proxy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (to_parent, from_parent) = &mut *pipes;
                let mut req = [0u8; 8];
                req[..4].copy_from_slice(&pid.as_raw().to_le_bytes());
                req[4..].copy_from_slice(&(sig as i32).to_le_bytes());
                let mut reply = [0u8; 4];
                if to_parent.write_all(&req).is_err() || from_parent.read_exact(&mut reply).is_err()
                {
                    return Err(nix::errno::Errno::EPERM);
                }
                match i32::from_le_bytes(reply) {
                    0 => Ok(()),
                    e => Err(nix::errno::Errno::from_raw(e)),
                }
            }
            None => Err(nix::errno::Errno::EPERM),
        },
        r => r,
    }
}

/// In the parent: sends the signals the child asks for (see [`kill`])
/// until the child closes its end.
fn serve_kills(mut from_child: fs::File, mut to_child: fs::File) {
    let mut req = [0u8; 8];
    while from_child.read_exact(&mut req).is_ok() {
        let pid = i32::from_le_bytes(req[..4].try_into().expect("4 bytes"));
        let sig = i32::from_le_bytes(req[4..].try_into().expect("4 bytes"));
        let errno = match nix::sys::signal::Signal::try_from(sig) {
            // One process only: never a group, never every process (-1).
            Ok(sig) if pid > 0 => {
                match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                }
            }
            _ => nix::errno::Errno::EINVAL as i32,
        };
        if to_child.write_all(&errno.to_le_bytes()).is_err() {
            return;
        }
    }
}

/// Becomes uid and gid 0 of the user namespace we are in (`what` names it
/// in errors).
pub fn become_root(what: &str) -> Result<()> {
    let g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(g, g, g).with_context(|| format!("become gid 0 in {what}"))?;
    let u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(u, u, u).with_context(|| format!("become uid 0 in {what}"))
}

fn fd_file(fd: i32) -> Result<fs::File> {
    // std offers no safe way to adopt an inherited descriptor number; go
    // through /proc/self/fd, which reopens the same pipe.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .with_context(|| format!("open inherited descriptor {fd}"))?;
    let _ = nix::unistd::close(fd);
    Ok(f)
}

/// In the parent: runs this same command in the namespace and returns its
/// exit code. `root` is passed down so the child uses the caller's store.
pub fn reenter(root: &std::path::Path) -> Result<u8> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = fs::read_to_string("/etc/subgid").unwrap_or_default();
    let uranges = ranges(&subuid, &user, uid.as_raw());
    let granges = ranges(&subgid, &user, uid.as_raw());
    if uranges.is_empty() || granges.is_empty() {
        return Err(Error::Refused(format!(
            "no subordinate ids for user {user} (uid {uid}) in /etc/subuid and /etc/subgid: add ranges, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (as root)"
        )));
    }
    let newuidmap = which("newuidmap")?;
    let newgidmap = which("newgidmap")?;
    let (from_child, to_parent) = nix::unistd::pipe().context("create a pipe")?;
    let (from_parent, to_child) = nix::unistd::pipe().context("create a pipe")?;
    cloexec(&from_child)?;
    cloexec(&to_child)?;
    let exe = std::env::current_exe().context("find the cairn executable")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("CAIRN_ROOT", root)
        .env(
            CHILD_ENV,
            format!(
                "{},{}/{}",
                to_parent.as_raw_fd(),
                from_parent.as_raw_fd(),
                rootless_env(uid.as_raw(), gid.as_raw(), &uranges, &granges)
            ),
        )
        .spawn()
        .context("re-run cairn in a user namespace")?;
    drop(to_parent);
    drop(from_parent);
    let mut from_child = fs::File::from(from_child);
    let mut to_child = fs::File::from(to_child);
    let mut b = [0u8; 1];
    let got = from_child.read(&mut b).unwrap_or(0);
    if got == 0 || b[0] != b'u' {
        let status = child
            .wait()
            .context("wait for cairn in the user namespace")?;
        return Ok(status.code().unwrap_or(125) as u8);
    }
    let pid = child.id().to_string();
    // Both at once: they write different files of the same process.
    let spawn = |prog: &std::path::Path, own: u32, ranges: &[Range]| {
        Command::new(prog)
            .arg(&pid)
            .args(map_args(own, ranges))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", prog.display()))
    };
    let finish = |prog: &std::path::Path, c: std::process::Child| -> Result<()> {
        let out = c
            .wait_with_output()
            .with_context(|| format!("wait for {}", prog.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}): {} — check /etc/subuid and /etc/subgid, and that {} is setuid root (package uidmap)",
                prog.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                prog.display()
            );
        }
        Ok(())
    };
    let uidmap = spawn(&newuidmap, uid.as_raw(), &uranges);
    let gidmap = spawn(&newgidmap, gid.as_raw(), &granges);
    let mapped = match (uidmap, gidmap) {
        (Ok(u), Ok(g)) => {
            let u = finish(&newuidmap, u);
            let g = finish(&newgidmap, g);
            u.and(g)
        }
        (Err(e), other) | (other @ Ok(_), Err(e)) => {
            if let Ok(mut c) = other {
                let _ = c.wait();
            }
            Err(e)
        }
    };
    let _ = to_child.write_all(if mapped.is_ok() { b"m" } else { b"x" });
    if mapped.is_ok() {
        // Not joined: it ends when the child closes its end, or with us.
        std::thread::spawn(move || serve_kills(from_child, to_child));
    } else {
        drop(to_child);
    }
    let status = wait_forwarding(&mut child)?;
    mapped.map_err(|e| Error::Refused(e.with_causes()))?;
    Ok(status.code().unwrap_or(125) as u8)
}

/// Waits for the child. Signals a terminal sends to its foreground group
/// (SIGINT, SIGQUIT) reach the child by themselves and are ignored here;
/// those sent to us alone are passed on.
fn wait_forwarding(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    use signal_hook::consts::*;
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2])
            .context("install signal handlers")?;
    let handle = signals.handle();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGINT || sig == SIGQUIT {
                continue;
            }
            if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(pid, s);
            }
        }
    });
    let status = child.wait().context("wait for cairn in the user namespace");
    handle.close();
    let _ = forwarder.join();
    status
}

fn cloexec(fd: &OwnedFd) -> Result<()> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("set close-on-exec")?;
    Ok(())
}

fn which(prog: &str) -> Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Refused(format!(
                "{prog} not found: rootless cairn needs it (Debian/Ubuntu: apt install uidmap)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_ranges_by_name_and_uid_all_of_them() {
        let text = "alice:100000:65536\nbob:200000:1000\n1001:300000:10\nalice:400000:5\n#x\n";
        assert_eq!(
            ranges(text, "alice", 1000),
            vec![
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 400000,
                    count: 5
                }
            ]
        );
        assert_eq!(
            ranges(text, "carol", 1001),
            vec![Range {
                start: 300000,
                count: 10
            }]
        );
        assert!(ranges(text, "dave", 1002).is_empty());
    }

    #[test]
    fn keep_id_puts_the_caller_at_its_own_id() {
        assert_eq!(
            keep_id_triples(1000, &[65536]),
            vec![[1000, 0, 1], [0, 1, 1000], [1001, 1001, 64536]]
        );
        // Fewer subordinate ids than the caller's uid: nothing above it.
        assert_eq!(
            keep_id_triples(100000, &[65536]),
            vec![[100000, 0, 1], [0, 1, 65536]]
        );
        assert_eq!(keep_id_triples(0, &[9]), vec![[0, 0, 1], [1, 1, 9]]);
        // Two ranges: a triple never crosses from one to the next (the
        // kernel wants each inside one extent of our own map).
        assert_eq!(
            keep_id_triples(1001, &[65536, 65536]),
            vec![
                [1001, 0, 1],
                [0, 1, 1001],
                [1002, 1002, 64535],
                [65537, 65537, 65536]
            ]
        );
        assert_eq!(
            keep_id_triples(70000, &[65536, 2000]),
            vec![[70000, 0, 1], [0, 1, 65536], [65536, 65537, 2000]]
        );
        let r = |start, count| Range { start, count };
        assert_eq!(
            rootless_env(1000, 100, &[r(5, 7), r(50, 3)], &[r(9, 4)]),
            "1000:100:7,3:4"
        );
    }

    #[test]
    fn maps_stack_ranges_after_the_caller() {
        let r = [
            Range {
                start: 100000,
                count: 65536,
            },
            Range {
                start: 400000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "400000", "5"]
        );
    }

    /// The parent sends one process a signal, never a group or every
    /// process (pid 0 or -1), and answers with kill's errno.
    #[test]
    fn the_kill_proxy_signals_one_process_and_answers_errno() {
        let (req_r, req_w) = nix::unistd::pipe().unwrap();
        let (rep_r, rep_w) = nix::unistd::pipe().unwrap();
        let server = std::thread::spawn(move || serve_kills(req_r.into(), rep_w.into()));
        let (mut req, mut rep) = (fs::File::from(req_w), fs::File::from(rep_r));
        let mut ask = |pid: i32, sig: i32| {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(&sig.to_le_bytes());
            req.write_all(&b).unwrap();
            let mut r = [0u8; 4];
            rep.read_exact(&mut r).unwrap();
            i32::from_le_bytes(r)
        };
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id() as i32;
        let einval = nix::errno::Errno::EINVAL as i32;
        assert_eq!(ask(0, libc_sigterm()), einval);
        assert_eq!(ask(-1, libc_sigterm()), einval);
        assert_eq!(ask(pid, 0x7fff), einval, "not a signal");
        assert_eq!(ask(pid, libc_sigterm()), 0);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc_sigterm())
        );
        assert_eq!(ask(pid, libc_sigterm()), nix::errno::Errno::ESRCH as i32);
        drop(req);
        server.join().unwrap();
    }

    fn libc_sigterm() -> i32 {
        nix::sys::signal::Signal::SIGTERM as i32
    }
}
