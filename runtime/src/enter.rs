//! `cairn-enter`: run a command in the namespaces of a running process.
//!
//! The target is pinned with a pidfd and `/proc/PID` opened once, before
//! anything changes. Namespaces identical to ours are skipped (joining our
//! own user namespace is an error, the others are no-ops). With a pidfd,
//! one `setns(pidfd, flags)` joins them all atomically, user namespace first
//! (Linux 5.8); otherwise each `/proc/PID/ns/*` is opened up front and joined
//! in order, user first and mount last. After the mount namespace the root
//! and working directory become the target's. Joining a pid (or time)
//! namespace only applies to children, and the command must not get our
//! stdio, so it is always forked, in a session of its own on pipes or a pty
//! of the container's devpts ([`console`]); the parent copies between those
//! and its stdio, forwards signals and exits with the child's status.

use std::ffi::CString;
use std::os::fd::{AsFd as _, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::unistd::ForkResult;

use crate::console;
use crate::error::{Context as _, Error, Result};
use crate::pivot::{chdir_workdir, resolve_process};
use crate::process::{self, status_field, Env};
use crate::spec::{EnterSpec, Namespace};
use crate::sys::SingleThreaded;

/// Signals the parent takes (from a signalfd): SIGWINCH resizes the pty,
/// the others are passed on to the command.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGWINCH,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn clone_flag(ns: Namespace) -> CloneFlags {
    match ns {
        Namespace::User => CloneFlags::CLONE_NEWUSER,
        Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        Namespace::Net => CloneFlags::CLONE_NEWNET,
        Namespace::Pid => CloneFlags::CLONE_NEWPID,
        // CLONE_NEWTIME (0x80) is not in nix's CloneFlags.
        Namespace::Time => CloneFlags::from_bits_retain(0x80),
        Namespace::Mnt => CloneFlags::CLONE_NEWNS,
    }
}

struct Target {
    pid: i32,
    proc_dir: OwnedFd,
}

impl Target {
    fn open(&self, name: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        openat(
            &self.proc_dir,
            name,
            flags | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// A file of the target's `/proc` directory, bounded: the target
    /// controls the size of its `environ`.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = format!("/proc/{}/{name}", self.pid);
        let fd = self.open(name, OFlag::O_RDONLY).ctx("open", &path)?;
        process::read_capped(std::fs::File::from(fd), &path)
    }
}

/// The entries of a `/proc/PID/environ`.
fn env_from_environ(bytes: &[u8]) -> Env {
    Env::from_entries(bytes.split(|&b| b == 0).map(<[u8]>::to_vec))
}

/// Whether `e` is a system call refused with EACCES.
fn permission_denied(e: &Error) -> bool {
    matches!(e, Error::Sys { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Which of `wanted` differ from ours (`explicit`: a missing one is an error).
fn namespaces_to_join(t: &Target, wanted: &[Namespace], explicit: bool) -> Result<Vec<Namespace>> {
    let mut join = Vec::new();
    for ns in Namespace::ALL.into_iter().filter(|n| wanted.contains(n)) {
        let name = format!("ns/{}", ns.proc_name());
        let theirs = match nix::sys::stat::fstatat(
            &t.proc_dir,
            name.as_str(),
            nix::fcntl::AtFlags::empty(),
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) if !explicit => continue,
            Err(e) => {
                let hint = match e {
                        Errno::ENOENT => "this kernel lacks that namespace type",
                        Errno::EACCES | Errno::EPERM => {
                            "not allowed to inspect the target: run as root (with CAP_SYS_PTRACE) or as its owner"
                        }
                        _ => "",
                    };
                return Err(Error::sys("stat", format!("/proc/{}/{name}", t.pid), e).hint(hint));
            }
        };
        let ours = nix::sys::stat::stat(format!("/proc/self/{name}").as_str())
            .ctx("stat", format!("/proc/self/{name}"))?;
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino) {
            join.push(ns);
        }
    }
    Ok(join)
}

fn join(t: &Target, pidfd: Option<&OwnedFd>, namespaces: &[Namespace]) -> Result<()> {
    if namespaces.is_empty() {
        return Ok(());
    }
    let all = namespaces
        .iter()
        .fold(CloneFlags::empty(), |f, n| f | clone_flag(*n));
    if let Some(pidfd) = pidfd {
        match nix::sched::setns(pidfd, all) {
            Ok(()) => return Ok(()),
            // Before Linux 5.8 setns does not take a pidfd.
            Err(Errno::EINVAL) | Err(Errno::EBADF) => {}
            Err(e) => {
                return Err(Error::sys("setns (pidfd) into the namespaces of", format!("/proc/{}", t.pid), e)
                    .hint("needs CAP_SYS_ADMIN over the target's namespaces: run as root or as the owner of its user namespace"))
            }
        }
    }
    // Open every namespace first: after the mount namespace changes, /proc
    // may no longer be the same.
    let mut fds = Vec::new();
    for ns in namespaces {
        let name = format!("ns/{}", ns.proc_name());
        fds.push((
            *ns,
            t.open(&name, OFlag::O_RDONLY)
                .ctx("open", format!("/proc/{}/{name}", t.pid))?,
        ));
    }
    for (ns, fd) in &fds {
        nix::sched::setns(fd, clone_flag(*ns))
            .ctx(&format!("setns into the {} namespace of", ns.proc_name()), format!("/proc/{}", t.pid))
            .map_err(|e| e.hint("needs CAP_SYS_ADMIN over the target's namespaces: run as root or as the owner of its user namespace"))?;
    }
    Ok(())
}

/// The signal masks around the forks: the set blocked and taken with
/// `sigwaitinfo(2)` (or a signalfd), and the mask before it was blocked,
/// which the command gets back.
struct Masks {
    forwarded: SigSet,
    before: SigSet,
}

/// Everything `cairn-enter` does. Returns the exit status to end with (the
/// command's, when it was forked), or an error (exit 125).
pub(crate) fn run(spec: &EnterSpec, single: &SingleThreaded) -> Result<i32> {
    let pid = match spec.target {
        Some(p) if p > 0 => p,
        Some(p) => return Err(Error::Usage(format!("--target {p}: not a process id"))),
        None => return Err(Error::Usage("no target: give --target PID".into())),
    };
    let p = &spec.process;
    if p.args.is_empty() {
        return Err(Error::Usage(
            "no command: give it after the options (-- CMD ARGS...)".into(),
        ));
    }
    let args = process::cstrings(&p.args.iter().map(Into::into).collect::<Vec<_>>())?;
    // A host path: read before joining the mount namespace.
    let filter = p
        .seccomp
        .as_deref()
        .map(|f| crate::seccomp::Filter::read(f, &p.seccomp_flags))
        .transpose()?;
    // An inherited ignored SIGCHLD would let the kernel reap our child
    // before we read its status.
    crate::sys::default_disposition(&[Signal::SIGCHLD]).ctx("reset SIGCHLD of", "this process")?;

    // This process keeps the caller's stdio and never joins anything: it
    // forks a joiner with nothing of the caller's (its own session, the
    // host's /dev/null or pipes on 0-2, every other descriptor closed),
    // which joins the container and forks the command. So no process the
    // container can see, even one it may ptrace (--cap-add SYS_PTRACE),
    // ever holds a descriptor or the controlling terminal of the caller.
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/dev/null")?;
    let plan = console::Plan {
        tty: spec.tty,
        stdin: spec.stdin,
    };
    let (caller, joiner) = console::split(plan, null)?;
    let mut forwarded: SigSet = FORWARDED.iter().copied().collect();
    forwarded.add(Signal::SIGCHLD);
    let before = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .ctx("block signals of", "this process")?;
    let masks = Masks { forwarded, before };
    let us = nix::unistd::getpid();
    match crate::sys::fork(single).ctx("fork the process that joins", format!("/proc/{pid}"))? {
        ForkResult::Child => {
            // Ends with us (and the command with it: its parent-death
            // signal), as the command did when it was our child.
            let tied = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .ctx("set the parent-death signal of", "cairn-enter's joiner")
                .and_then(|()| {
                    if nix::unistd::getppid() == us {
                        Ok(())
                    } else {
                        Err(Error::Usage("cairn-enter exited during setup".into()))
                    }
                });
            let code = match tied
                .and_then(|()| joiner.take_over(p.keep_fds))
                .and_then(|sock| {
                    join_and_start(spec, pid, &args, filter.as_ref(), sock, &masks, single)
                }) {
                Ok(code) => code,
                // On the joiner's stderr: a pipe the caller's side copies.
                Err(e) => crate::report("cairn-enter", &e),
            };
            crate::sys::exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop(joiner);
            let io = caller.receive()?;
            let code = console::attach(io, child, &masks.forwarded)?;
            if let Some(e) = &spec.exit_event {
                e.record("cairn-enter", "exec_died", code);
            }
            Ok(code)
        }
    }
}

/// The joiner: joins the target's namespaces, prepares the command (its
/// pty, handed to the caller's side over `sock`), gives up what the
/// command must not have, forks it into the pid namespace and passes on
/// signals until it ends; its exit status.
fn join_and_start(
    spec: &EnterSpec,
    pid: i32,
    args: &[CString],
    filter: Option<&crate::seccomp::Filter>,
    sock: Option<OwnedFd>,
    masks: &Masks,
    single: &SingleThreaded,
) -> Result<i32> {
    let p = &spec.process;
    if let Some(path) = &spec.cgroup {
        join_cgroup(path)?;
    }
    // Pin the target before looking at it.
    let pidfd = crate::sys::pidfd_open(pid).ok();
    let proc_dir = nix::fcntl::open(
        format!("/proc/{pid}").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::sys("open", format!("/proc/{pid}"), e)
            .hint("no such process: is the container running?")
    })?;
    let t = Target { pid, proc_dir };
    let explicit = !spec.namespaces.is_empty();
    let wanted = if explicit {
        spec.namespaces.clone()
    } else {
        Namespace::ALL.to_vec()
    };
    let namespaces = namespaces_to_join(&t, &wanted, explicit)?;
    let mnt = namespaces.contains(&Namespace::Mnt);
    // Only the target's working directory: the root is the mount
    // namespace's own (setns puts us there), never the target's current
    // one, which its process may have moved with chroot (CAP_SYS_CHROOT is
    // a default capability) into a tree of its choosing, where every path
    // we open would be its to pick.
    let cwd = if mnt {
        Some(
            t.open("cwd", OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx("open", format!("/proc/{pid}/cwd"))?,
        )
    } else {
        None
    };
    // The environment is read before joining: afterwards the target's
    // environ may be unreadable to the joined user namespace's root. Before
    // joining it is unreadable when the target runs as an id of a user
    // namespace the caller only owns (a rootless keep-id container whose
    // process is its root, i.e. a subordinate id): then it is read after
    // joining, where the caller holds CAP_SYS_PTRACE over it.
    let environ_hint = "cannot read the target's environment: pass --preserve-env to use yours";
    let early_env = if p.preserve_env {
        Some(Env::current())
    } else {
        match t.read("environ") {
            Ok(bytes) => Some(env_from_environ(&bytes)),
            Err(e) if permission_denied(&e) && namespaces.contains(&Namespace::User) => None,
            Err(e) => return Err(e.hint(environ_hint)),
        }
    };

    join(&t, pidfd.as_ref(), &namespaces)?;

    let base_env = match early_env {
        Some(env) => env,
        None => env_from_environ(&t.read("environ").map_err(|e| e.hint(environ_hint))?),
    };

    if let Some(cwd) = &cwd {
        // setns(CLONE_NEWNS) made the namespace's root (the container's,
        // after cairn-pivot's pivot_root) our root and cwd.
        if p.workdir.is_none() {
            nix::unistd::fchdir(cwd).ctx(
                "chdir to the working directory of",
                format!("/proc/{pid}/cwd"),
            )?;
        }
    }
    if let Some(w) = &p.workdir {
        chdir_workdir(w)?;
    }

    // Read after joining the user namespace: the ids are then shown as the
    // target sees them.
    let status = String::from_utf8_lossy(&t.read("status")?).into_owned();
    let field = |name: &str| status_field(&status, name).unwrap_or("");
    let effective = |name: &str| {
        field(name)
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .to_owned()
    };
    let default_user = format!("{}:{}", effective("Uid"), effective("Gid"));
    // The target's supplementary groups come with its identity, not with
    // an explicit --user.
    let groups: Vec<u32> = match p.user {
        Some(_) => Vec::new(),
        None => field("Groups")
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    };
    let bounding = u64::from_str_radix(field("CapBnd"), 16).unwrap_or(0);
    let (mut creds, env) = resolve_process(p, &default_user, &groups, base_env, bounding)?;
    creds.no_new_privs |= field("NoNewPrivs") == "1";
    let env = env.to_cstrings();
    // Nothing of the host may reach the container: the target's /proc
    // directory, its pidfd and its cwd (each a way out through
    // /proc/N/fd/F/..) are closed before the fork, and the child closes
    // whatever else it inherited (the process is non-dumpable meanwhile:
    // sealed::ensure).
    drop(t);
    drop(pidfd);
    drop(cwd);

    // The command's terminal comes from the devpts of the root we now have
    // (the container's); its master goes to the caller's side, which gives
    // it the caller's window size before the command starts.
    let pty = if spec.tty {
        let pty = console::Pty::open()?;
        pty.give_to(creds.identity.uid, crate::pivot::tty_group()?)?;
        if let Some(sock) = &sock {
            crate::sys::send_fd(sock.as_fd(), pty.master.as_fd())
                .ctx("hand the pty to", "cairn-enter's caller side")?;
            let mut ack = [0u8; 1];
            let _ = nix::unistd::read(sock, &mut ack);
        }
        Some(pty)
    } else {
        None
    };
    let command_io = console::CommandIo::new(pty.as_ref())?;
    drop(pty);
    drop(sock);

    // What a process of the container could take over before the command
    // confines itself (it is visible, and ptrace-able with CAP_SYS_PTRACE):
    // a new session keyring; the seccomp filter now, unless it must wait
    // for no_new_privs; capabilities cut to the command's, plus what
    // becoming its user takes.
    crate::seccomp::new_session_keyring()?;
    let late_filter = match filter {
        Some(f) if !creds.no_new_privs => {
            f.install()?;
            None
        }
        other => other,
    };
    if let Some(keep) = creds.caps {
        process::limit_capabilities(keep)?;
    }

    match crate::sys::fork(single).ctx("fork into the pid namespace of", format!("/proc/{pid}"))? {
        ForkResult::Child => {
            command_main(&masks.before, &command_io, &creds, late_filter, args, &env)
        }
        ForkResult::Parent { child } => {
            drop(command_io);
            wait_forwarding(child, &masks.forwarded)
        }
    }
}

/// Moves this process (the joiner, whose child is the command) into the
/// container's cgroup in every hierarchy, before it joins anything (in
/// the container's user namespace the host's cgroup files are no longer
/// ours to write). The caller's side stays outside: freezing or removing
/// the container must not take the caller's terminal with it. A cgroup
/// that does not exist is a container without one.
fn join_cgroup(path: &str) -> Result<()> {
    let Some(h) = crate::cgroup::Hierarchy::detect()? else {
        return Ok(());
    };
    let cg = crate::cgroup::Cgroup::new(&h, path)?;
    if !cg.exists() {
        return Ok(());
    }
    cg.add_process(std::process::id() as i32)
}

/// Wait for `child`, passing on every forwarded signal; its exit code, or
/// 128 + N when signal N killed it.
fn wait_forwarding(child: nix::unistd::Pid, set: &SigSet) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        let caught = crate::sys::sigwaitinfo(set).ctx("wait for signals in", "cairn-enter")?;
        if caught.signo != Signal::SIGCHLD as i32 {
            let _ = nix::sys::signal::kill(child, Signal::try_from(caught.signo).ok());
            continue;
        }
        loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("wait for", format!("pid {child}"), e)),
            }
        }
    }
}

/// The forked command: its own session and stdio, no other descriptor,
/// the signal mask it had, the configured identity, then the exec. Never
/// returns.
fn command_main(
    mask: &SigSet,
    io: &console::CommandIo,
    creds: &process::Creds,
    filter: Option<&crate::seccomp::Filter>,
    args: &[CString],
    env: &[CString],
) -> ! {
    // In the container's pid namespace from here on: the command's own
    // stdio on 0-2 first, then every other descriptor closed (but the
    // --keep-fds ones).
    let setup = || -> Result<()> {
        io.install()?;
        crate::sys::close_from(3 + creds.keep_fds)
            .ctx("close the inherited descriptors of", "the command")?;
        mask.thread_set_mask()
            .ctx("restore the signal mask of", "the command")?;
        process::become_process(creds)?;
        // With no_new_privs the filter comes last (the joiner installed
        // it otherwise).
        match filter {
            Some(f) => f.install(),
            None => Ok(()),
        }
    };
    let e = match setup() {
        Ok(()) => process::exec(args, env),
        Err(e) => e,
    };
    // On the command's stderr: the pipe or pty the parent copies.
    crate::say(&format!("cairn-enter: {e}"));
    crate::sys::exit_now(e.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_cover_every_namespace_once() {
        let all = Namespace::ALL.iter().fold(0u64, |acc, n| {
            let bits = clone_flag(*n).bits() as u64;
            assert_eq!(acc & bits, 0, "{n:?} overlaps");
            acc | bits
        });
        assert_eq!(all.count_ones(), 8);
        assert_eq!(Namespace::ALL[0], Namespace::User, "user first");
        assert_eq!(Namespace::ALL[7], Namespace::Mnt, "mount last");
    }
}
