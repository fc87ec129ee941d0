//! `cairn-pivot`: switch to the new root and become the container's process.
//!
//! `pivot_root(".", ".")` stacks the old root on top of the new one at `/`;
//! a lazy unmount of `.` then drops it, with no directory to create or remove
//! in the (possibly read-only) new root (the trick runc and LXC use;
//! pivot_root(2), "NOTES").

use std::ffi::CString;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::Signal;

use crate::error::{Context as _, Error, Result};
use crate::process::{self, Creds, Env};
use crate::spec::{PivotSpec, ProcessSpec};
use crate::sys::SingleThreaded;
use crate::user;

/// Whether `path` (canonical) is a mount point in this mount namespace.
fn is_mount_point(path: &Path) -> Result<bool> {
    let infos = crate::mountinfo::read_self().ctx("read", "/proc/self/mountinfo")?;
    Ok(infos.iter().any(|m| Path::new(&m.mount_point) == path))
}

/// Pivot into `root`, then drop the old root entirely.
pub fn pivot(root: &Path) -> Result<()> {
    let root: PathBuf = std::fs::canonicalize(root).map_err(|e| {
        Error::sys("resolve new root", root, e)
            .hint("give the directory cairn-mount assembled (its --target)")
    })?;
    // Unmounting the old root must not propagate to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx("make / rprivate in", "this mount namespace")
    .map_err(|e| {
        e.hint(
            "run cairn-pivot in a new mount namespace (unshare -m), as root or in a user namespace",
        )
    })?;
    // pivot_root needs a mount point.
    if !is_mount_point(&root)? {
        mount(
            Some(&root),
            &root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind the new root onto itself", &root)?;
    }
    nix::unistd::chdir(&root).ctx("chdir into the new root", &root)?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root into", &root).map_err(|e| {
        e.hint("the new root must be a directory in this mount namespace, not the current root, and not under a shared mount")
    })?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach the old root from", &root)?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    Ok(())
}

/// Read a file of the (new) root, `None` when missing; bounded and never
/// through a device or FIFO ([`process::read_container_file`]).
fn read_opt(path: &str) -> Result<Option<String>> {
    Ok(process::read_container_file(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Resolve the process part of a spec against the current root's files:
/// identity (`default_user` when the spec names none, plus `more_groups`),
/// kept capabilities (`base_caps` adjusted, unless privileged), environment.
pub(crate) fn resolve_process(
    p: &ProcessSpec,
    default_user: &str,
    more_groups: &[u32],
    base_env: Env,
    base_caps: u64,
) -> Result<(Creds, Env)> {
    let user = p.user.as_deref().unwrap_or(default_user);
    let mut identity = user::resolve(
        user,
        &p.groups,
        read_opt("/etc/passwd")?.as_deref(),
        read_opt("/etc/group")?.as_deref(),
    )?;
    for g in more_groups {
        if !identity.groups.contains(g) {
            identity.groups.push(*g);
        }
    }
    let caps = if p.privileged {
        None
    } else {
        Some(crate::caps::adjust(base_caps, &p.cap_add, &p.cap_drop)?)
    };
    let pdeathsig = match &p.pdeathsig {
        Some(s) => process::parse_signal(s)?,
        None => Some(nix::sys::signal::Signal::SIGKILL),
    };
    let mut env = base_env;
    if p.user_home {
        env.set(
            std::ffi::OsStr::new("HOME"),
            std::ffi::OsStr::new(identity.home.as_deref().unwrap_or("")),
        );
    }
    env.apply(&p.env)?;
    env.defaults(identity.home.as_deref());
    Ok((
        Creds {
            identity,
            caps,
            no_new_privs: p.no_new_privs,
            pdeathsig,
            keep_fds: p.keep_fds,
        },
        env,
    ))
}

/// Change to the working directory inside the container.
pub(crate) fn chdir_workdir(workdir: &str) -> Result<()> {
    nix::unistd::chdir(workdir).map_err(|e| Error::Workdir {
        path: workdir.to_owned(),
        source: e.into(),
    })
}

/// Everything `cairn-pivot` does. Without `--init` it returns only on
/// failure (the exec replaces it); with `--init`, the status to exit with
/// once the command ended. `error_fd` is the (adopted, close-on-exec)
/// `--error-fd`, left open for the caller's report: under `--init` the
/// forked command reports its own exec failure on it, and the init closes
/// (takes) its copy.
pub(crate) fn run(
    spec: &PivotSpec,
    error_fd: &mut Option<OwnedFd>,
    single: &SingleThreaded,
) -> Result<i32> {
    // Ours right away, close-on-exec: nothing of it may reach the command.
    let console = spec
        .console_socket
        .map(|fd| {
            crate::sys::adopt_fd(fd).map_err(|e| {
                Error::Usage(format!(
                    "--console-socket {fd}: not an open descriptor ({e})"
                ))
            })
        })
        .transpose()?;
    let (args, env, pdeathsig) = prepare(spec, console)?;
    if spec.init {
        crate::init::run(&args, &env, error_fd, pdeathsig, single)
    } else {
        Err(process::exec(&args, &env))
    }
}

fn prepare(
    spec: &PivotSpec,
    console: Option<OwnedFd>,
) -> Result<(Vec<CString>, Vec<CString>, Option<Signal>)> {
    let root = spec
        .root
        .as_deref()
        .ok_or_else(|| Error::Usage("no new root: give --root DIR".into()))?;
    let p = &spec.process;
    if p.args.is_empty() {
        return Err(Error::Usage(
            "no command: give it after the options (-- CMD ARGS...)".into(),
        ));
    }
    let args = process::cstrings(&p.args.iter().map(Into::into).collect::<Vec<_>>())?;
    crate::linux::ensure_own_mount_namespace("cairn-pivot")?;
    // A host path: read before the root changes.
    let filter = p
        .seccomp
        .as_deref()
        .map(|f| crate::seccomp::Filter::read(f, &p.seccomp_flags))
        .transpose()?;
    pivot(root)?;
    if let Some(h) = &spec.hostname {
        nix::unistd::sethostname(h)
            .ctx("sethostname", h)
            .map_err(|e| {
                e.hint("needs a UTS namespace of our own (unshare --uts) and CAP_SYS_ADMIN in it")
            })?;
    }
    let base = if p.preserve_env {
        Env::current()
    } else {
        Env::default()
    };
    let (creds, env) = resolve_process(
        p,
        "0:0",
        &[],
        base,
        crate::caps::mask(&crate::caps::DEFAULT),
    )?;
    if let Some(sock) = console {
        // Before the user switch: the slave is chowned to the user.
        attach_console(sock, creds.identity.uid)?;
    }
    chdir_workdir(p.workdir.as_deref().unwrap_or("/"))?;
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
    }
    // The init (with --init) and the command run under the filter.
    crate::seccomp::confine(&creds, filter.as_ref())?;
    Ok((args, env.to_cstrings(), creds.pdeathsig))
}

/// The gid of the `tty` group in the current root's `/etc/group`, if any:
/// the group a terminal's slave is given, as devpts's `gid=` option does.
pub(crate) fn tty_group() -> Result<Option<u32>> {
    Ok(read_opt("/etc/group")?.and_then(|g| {
        crate::user::parse_group(&g)
            .into_iter()
            .find(|g| g.name == "tty")
            .map(|g| g.gid)
    }))
}

/// Give this process a terminal from the container's own devpts
/// ([`crate::console::Pty::open`], after `pivot_root` the container's),
/// chown the slave to `uid` and the image's `tty` group (mode 0620, as
/// devpts made it), give it the window size the watcher may have queued on
/// `sock` (one `{"rows":R,"cols":C}` line), send the master over `sock`
/// (`SCM_RIGHTS`) to whoever watches the container, then start a session
/// whose controlling terminal is the slave, and make the slave stdin,
/// stdout and stderr.
fn attach_console(sock: OwnedFd, uid: u32) -> Result<()> {
    let pty = crate::console::Pty::open()?;
    let name = pty.name();
    pty.give_to(uid, tty_group()?)?;
    // The size of the watcher's terminal, if it queued one before we ran.
    let _ = nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut buf = [0u8; 256];
    if let Ok(n) = nix::unistd::read(&sock, &mut buf) {
        if let Some(size) = crate::monitor::ConsoleSize::parse(&buf[..n]) {
            let ws = crate::sys::winsize(size.rows, size.cols);
            crate::sys::set_winsize(pty.master.as_fd(), &ws)
                .ctx("set the window size of", &name)?;
        }
    }
    crate::sys::send_fd(sock.as_fd(), pty.master.as_fd())
        .ctx("send the pty master over", "the console socket")
        .map_err(|e| e.hint("the console socket must be a connected unix socket"))?;
    let slave = pty.slave;
    drop(pty.master);
    drop(sock);
    nix::unistd::setsid().ctx("start a new session in", "cairn-pivot").map_err(|e| {
        e.hint("cairn-pivot must not be a process group leader to take a terminal: start it from a forked child")
    })?;
    crate::sys::set_controlling_tty(slave.as_fd()).ctx("make the controlling terminal", &name)?;
    nix::unistd::dup2_stdin(&slave).ctx("dup the terminal onto stdin", &name)?;
    nix::unistd::dup2_stdout(&slave).ctx("dup the terminal onto stdout", &name)?;
    nix::unistd::dup2_stderr(&slave).ctx("dup the terminal onto stderr", &name)?;
    Ok(())
}
