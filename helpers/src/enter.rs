//! `cairn-enter`: run a command in the namespaces of a running process.
//!
//! The target is pinned with a pidfd and `/proc/PID` opened once, before
//! anything changes. Namespaces identical to ours are skipped (joining our
//! own user namespace is an error, the others are no-ops). With a pidfd,
//! one `setns(pidfd, flags)` joins them all atomically, user namespace first
//! (Linux 5.8); otherwise each `/proc/PID/ns/*` is opened up front and joined
//! in order, user first and mount last. After the mount namespace the root
//! and working directory become the target's. Joining a pid (or time)
//! namespace only applies to children, so the command is forked; the parent
//! forwards signals and exits with the child's status.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::error::{Context as _, Error, Result};
use crate::pivot::{chdir_workdir, resolve_process};
use crate::process::{self, status_field, Env};
use crate::spec::{EnterSpec, Namespace};

/// Signals the parent passes on to the command.
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

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let path = format!("/proc/{}/{name}", self.pid);
        let fd = self.open(name, OFlag::O_RDONLY).ctx("open", &path)?;
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut buf)
            .ctx("read", &path)?;
        Ok(buf)
    }
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

/// Everything `cairn-enter` does. Returns the exit status to end with (the
/// command's, when it was forked), or an error (exit 125).
pub fn run(spec: &EnterSpec) -> Result<i32> {
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
    let dirs = if mnt {
        let open = |name: &str| {
            t.open(name, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx("open", format!("/proc/{pid}/{name}"))
        };
        Some((open("root")?, open("cwd")?))
    } else {
        None
    };
    // The environment is read before joining: afterwards the target's
    // environ may be unreadable to the joined user namespace's root.
    let base_env = if p.preserve_env {
        Env::current()
    } else {
        Env::from_entries(
            t.read("environ")
                .map_err(|e| {
                    e.hint("cannot read the target's environment: pass --preserve-env to use yours")
                })?
                .split(|&b| b == 0)
                .map(<[u8]>::to_vec),
        )
    };

    join(&t, pidfd.as_ref(), &namespaces)?;

    if let Some((root, cwd)) = &dirs {
        nix::unistd::fchdir(root).ctx("chdir to the root of", format!("/proc/{pid}/root"))?;
        nix::unistd::chroot(".").ctx("chroot into", format!("/proc/{pid}/root"))?;
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

    let fork = namespaces
        .iter()
        .any(|n| matches!(n, Namespace::Pid | Namespace::Time));
    if !fork {
        // Without a fork the parent is our caller, not cairn-enter: tie the
        // command to it only when asked.
        if p.pdeathsig.is_none() {
            creds.pdeathsig = None;
        }
        crate::seccomp::confine(&creds, filter.as_ref())?;
        return Err(process::exec(&args, &env));
    }

    let mut set: SigSet = FORWARDED.iter().copied().collect();
    set.add(Signal::SIGCHLD);
    let old = set
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .ctx("block signals of", "this process")?;
    match crate::sys::fork().ctx("fork into the pid namespace of", format!("/proc/{pid}"))? {
        ForkResult::Child => {
            let e = match old
                .thread_set_mask()
                .ctx("restore the signal mask of", "the command")
            {
                Ok(()) => match crate::seccomp::confine(&creds, filter.as_ref()) {
                    Ok(()) => process::exec(&args, &env),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            crate::say(&format!("cairn-enter: {e}"));
            std::process::exit(e.exit_code());
        }
        ForkResult::Parent { child } => wait_forwarding(child, &set),
    }
}

/// Wait for `child`, passing on the forwarded signals; its exit code, or
/// 128 + N when a signal killed it (like a shell).
fn wait_forwarding(child: Pid, set: &SigSet) -> Result<i32> {
    loop {
        let caught = crate::sys::sigwaitinfo(set).ctx("wait for signals in", "this process")?;
        if caught.signo == Signal::SIGCHLD as i32 {
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    // Still running (or a stop/continue report): wait on.
                    Ok(_) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(Error::sys("wait for", format!("pid {child}"), e)),
                }
            }
        } else if !caught.from_kernel {
            // A terminal's SIGINT, SIGQUIT, SIGHUP or SIGWINCH went to the
            // whole foreground process group, the command included: passing
            // it on would deliver it twice. kill(2)s are passed on.
            let _ = nix::sys::signal::kill(child, Signal::try_from(caught.signo).ok());
        }
    }
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
