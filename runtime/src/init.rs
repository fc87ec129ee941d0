//! `cairn-pivot --init`: a minimal pid 1, podman's `--init` (catatonit)
//! without a binary in the image.
//!
//! The kernel drops signals sent to a pid namespace's init from outside
//! unless it installed a handler, and orphans in the namespace are
//! reparented to it: a shell or an application as pid 1 ignores
//! `cairn stop`'s SIGTERM and leaves zombies. So pivot forks once: the
//! child execs the command in its own process group (the terminal's
//! foreground group when there is a terminal); the parent blocks the
//! forwarded signals, takes them with `sigwaitinfo(2)` (a blocked signal is
//! queued even for pid 1), passes them to the command's group, reaps every
//! child that ends, and exits with the command's status (128 + N for
//! signal N: an init cannot die of a signal it re-raises at itself).

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::error::{Context as _, Result};
use crate::process;
use crate::sys::SingleThreaded;

/// PID 1's command line once the init runs, as podman's (`/run/podman-init
/// -- CMD...`): the init re-executes its own sealed copy under this name
/// after the fork, so the container sees neither the host path of
/// `cairn-pivot` nor its spec's path in `/proc/1/cmdline`.
pub const INIT_ARGV0: &str = "/run/podman-init";

/// Signals passed on to the command.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Fork; exec `args` in the child; wait as init in the parent. Returns the
/// command's status (or an error from before the fork). `error_fd` goes to
/// the child, which reports its exec failure there; the parent closes
/// (takes) its copy so that the command's exec alone ends the error pipe.
pub(crate) fn run(
    args: &[CString],
    env: &[CString],
    error_fd: &mut Option<OwnedFd>,
    pdeathsig: Option<Signal>,
    single: &SingleThreaded,
) -> Result<i32> {
    crate::sys::default_disposition(&[Signal::SIGCHLD]).ctx("reset SIGCHLD of", "the init")?;
    // Without a pid namespace of our own, orphans still come to us.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut set: SigSet = FORWARDED.iter().copied().collect();
    set.add(Signal::SIGCHLD);
    let old = set
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .ctx("block signals of", "the init")?;
    let init = nix::unistd::getpid();
    match crate::sys::fork(single).ctx("fork the command from", "the init")? {
        ForkResult::Child => {
            let raw = error_fd.as_ref().map(|f| f.as_raw_fd());
            let e = match child_setup(init, &old, pdeathsig) {
                Ok(()) => process::exec(args, env),
                Err(e) => e,
            };
            crate::sys::exit_now(crate::report_to("cairn-pivot", &e, raw))
        }
        ForkResult::Parent { child } => {
            drop(error_fd.take());
            // Also from this side, so the group exists whichever runs first
            // (EACCES once the child has exec'd: then it did it itself).
            let _ = nix::unistd::setpgid(child, child);
            // The forwarded signals and SIGCHLD stay blocked across the
            // exec, so none is lost meanwhile; if the exec fails, the same
            // loop runs here.
            reexec(args, env);
            Ok(wait_forwarding(child, &set))
        }
    }
}

/// Becomes `/run/podman-init -- ARGS...`: the same (sealed) program,
/// entering [`resume`]. Returns only if the exec fails.
fn reexec(args: &[CString], env: &[CString]) {
    let mut argv: Vec<CString> = [INIT_ARGV0, "--"]
        .iter()
        .filter_map(|a| CString::new(*a).ok())
        .collect();
    argv.extend(args.iter().cloned());
    let _ = nix::unistd::execve(c"/proc/self/exe", &argv, env);
}

/// The init after [`reexec`]: the one child it has (the command, found by
/// its parent pid) is waited for as before the exec; the status to exit
/// with.
pub(crate) fn resume() -> i32 {
    let mut set: SigSet = FORWARDED.iter().copied().collect();
    set.add(Signal::SIGCHLD);
    if let Err(e) = set.thread_block() {
        eprintln!("cairn-pivot (init): block signals: {e}");
        return crate::EXIT_FAILURE;
    }
    let me = nix::unistd::getpid().as_raw();
    match only_child(me) {
        Some(child) => wait_forwarding(Pid::from_raw(child), &set),
        None => {
            eprintln!("{INIT_ARGV0}: the command's process was not found");
            crate::EXIT_FAILURE
        }
    }
}

/// The process whose parent is `parent` (the lowest pid if several),
/// from `/proc/PID/stat` (zombies included).
fn only_child(parent: i32) -> Option<i32> {
    let mut found: Option<i32> = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        if parent_of(&stat) == Some(parent) && found.is_none_or(|f| pid < f) {
            found = Some(pid);
        }
    }
    found
}

/// The parent pid in a `/proc/PID/stat` line (`pid (comm) state ppid ...`;
/// comm may hold spaces and parentheses).
fn parent_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The command's side: its own process group, in the foreground of the
/// terminal if stdin is the session's terminal, the original signal mask,
/// the parent-death signal (fork cleared it).
fn child_setup(init: Pid, old_mask: &SigSet, pdeathsig: Option<Signal>) -> Result<()> {
    let me = nix::unistd::getpid();
    nix::unistd::setpgid(me, me).ctx("make a process group for", "the command")?;
    let stdin = std::io::stdin();
    if nix::unistd::isatty(&stdin).unwrap_or(false) {
        // A background group changing the foreground group gets SIGTTOU
        // unless it blocks it. ENOTTY: stdin is a terminal but not this
        // session's (the caller's own, without --console-socket): fine.
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let _ = ttou.thread_block();
        let _ = nix::unistd::tcsetpgrp(&stdin, me);
    }
    old_mask
        .thread_set_mask()
        .ctx("restore the signal mask of", "the command")?;
    if let Some(sig) = pdeathsig {
        nix::sys::prctl::set_pdeathsig(sig).ctx("set the parent-death signal of", "the command")?;
        if nix::unistd::getppid() != init {
            return Err(crate::Error::Usage("the init exited during setup".into()));
        }
    }
    Ok(())
}

/// Forward signals to the command's group and reap until the command ends;
/// its exit code (128 + N for signal N).
fn wait_forwarding(child: Pid, set: &SigSet) -> i32 {
    loop {
        let caught = match crate::sys::sigwaitinfo(set) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cairn-pivot (init): wait for signals: {e}");
                return crate::EXIT_FAILURE;
            }
        };
        if caught.signo == Signal::SIGCHLD as i32 {
            if let Some(code) = reap(child) {
                // Zombies that ended meanwhile; the rest die with the pid
                // namespace when we exit.
                let _ = reap(Pid::from_raw(-1));
                return code;
            }
        } else if let Ok(sig) = Signal::try_from(caught.signo) {
            // The group we made; the child itself if it left the group.
            if kill(Pid::from_raw(-child.as_raw()), sig) == Err(Errno::ESRCH) {
                let _ = kill(child, sig);
            }
        }
    }
}

/// Reap every ended child; the exit code of `child` if it is one of them.
fn reap(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return code,
            Ok(st) => {
                if st.pid() == Some(child) {
                    if let Some((c, _)) = crate::monitor::exit_code(st) {
                        code = Some(c);
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_from_stat() {
        assert_eq!(parent_of("2 (sh) S 1 2 2 0 -1"), Some(1));
        assert_eq!(parent_of("7 (a ) b) (c) Z 42 7 7"), Some(42));
        assert_eq!(parent_of("garbage"), None);
        let me = nix::unistd::getpid().as_raw();
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert_eq!(only_child(me), Some(child.id() as i32));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
