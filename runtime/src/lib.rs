//! cairn's runtime helpers: small, single-threaded, setuid-free programs
//! that realise a container's environment and compose by exec chaining,
//! like `unshare`, `chroot` and `setpriv`, plus the monitor that starts and
//! watches a container (conmon's role):
//!
//! ```text
//! unshare -m -p -u -i -f  cairn-mount [opts] -- cairn-pivot [opts] -- CMD...
//! cairn-enter --all --target PID [opts] -- CMD...
//! cairn-monitor --spec FILE --sync-fd N   (clones, then execs the chain above)
//! ```
//!
//! - `cairn-mount` (module `mount`): a [`protocol::MountSpec`] (flags or JSON) becomes
//!   an ordered plan of mount operations, carried out through the
//!   `Syscall` seam (module `syscall`): the real implementation (`linux`), with every target
//!   resolved inside the root by `openat2(RESOLVE_IN_ROOT)`, or
//!   a recording one in tests.
//! - `cairn-pivot` (`pivot`): `pivot_root`, old root detached, hostname,
//!   user from the container's own files (`user`), capabilities
//!   ([`caps`]), a terminal from the container's devpts, then
//!   the exec (`process`) with exit codes 125/126/127, or with `--init` a
//!   minimal pid 1 (`init`) that forks the command.
//! - `cairn-enter` (`enter`): `setns` through a pidfd, fork for the pid
//!   namespace, the command in its own session on pipes or a pty of the
//!   container's devpts, copied to the caller's stdio with signal
//!   forwarding (`console`).
//! - `cairn-monitor` (`monitor`): `clone` into new namespaces, the
//!   error-pipe and sync-fd handshake, a [`k8s_log`] of the output, reaping,
//!   the exit record.
//!
//! What a launcher shares with the helpers (the specs, the mount option
//! vocabulary, the error, sync and exit lines) is defined once, in
//! [`protocol`].
//!
//! The public surface is what the launcher and the tests need: the protocol
//! ([`protocol`]), the event log ([`events`]), capability names and sets ([`caps`]), seccomp flag
//! names ([`seccomp::flag_bits`]), sealed copies of the helpers
//! ([`sealed::copy_of`]), the k8s-file log format ([`k8s_log`]), mountinfo
//! parsing ([`mountinfo`]), [`inherit_fd`], [`restore_sigpipe`], and the
//! four binaries' mains. Everything else is private to the crate.
//!
//! Every `unsafe` block is in one private module (`sys`); the rest of the
//! crate denies `unsafe_code`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

// Public: what the launcher (`cairn`) and the tests need.
pub mod caps;
pub mod cgroup;
pub mod events;
pub mod k8s_log;
pub mod mountinfo;
pub mod network;
pub mod protocol;
pub mod sealed;
pub mod seccomp;

// Private: the helpers themselves.
mod cli;
mod console;
mod enter;
mod error;
mod fdio;
mod init;
mod linux;
mod monitor;
mod mount;
mod path;
mod pivot;
mod process;
mod spec;
mod sys;
mod syscall;
mod user;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};

pub use error::{Error, Result, SpecError, EXIT_FAILURE, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};

/// Gives SIGPIPE back its default action (Rust's runtime ignores it), so a
/// command line tool writing into a closed pipe (`cairn images | head -1`)
/// ends quietly, as C and Go tools do, instead of failing on `EPIPE`.
pub fn restore_sigpipe() {
    let _ = sys::default_disposition(&[nix::sys::signal::Signal::SIGPIPE]);
}

/// Let `cmd`'s program inherit `fd` under the same number (for
/// `cairn-monitor --sync-fd`), without ever clearing its close-on-exec
/// flag in this process, so programs other threads start meanwhile do not
/// get it too. Returns the number to pass on the command line.
pub fn inherit_fd(cmd: &mut std::process::Command, fd: &OwnedFd) -> i32 {
    sys::inherit_fd(cmd, fd.as_raw_fd());
    fd.as_raw_fd()
}

/// Print a helper's failure: with an error descriptor as one
/// `{"code":C,"message":"..."}` line there only (whoever reads it reports
/// it: printing it on stderr too showed it twice, once from the helper on
/// the container's stderr and once as the engine's `Error:`), else (or if
/// that write fails) on stderr; the exit status.
pub(crate) fn report_to(prog: &str, e: &Error, error_fd: Option<i32>) -> i32 {
    let message = format!("{prog}: {e}");
    let line = protocol::ErrorLine {
        code: e.exit_code(),
        message,
    };
    let sent = error_fd.is_some_and(|fd| sys::write_raw(fd, &line.to_line()).is_ok());
    if !sent {
        say(&line.message);
    }
    e.exit_code()
}

/// Print `line` on stderr in one `write(2)` (`eprintln!` makes one per
/// piece), so a log reading the other end of a pipe gets it whole.
pub(crate) fn say(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The proof a helper that forks needs (see [`sys::SingleThreaded`]),
/// taken before it does anything else; fails in a threaded program, which
/// must run the helper binary instead of calling its main.
fn single_threaded() -> Result<sys::SingleThreaded> {
    sys::SingleThreaded::check().map_err(|e| Error::sys("refusing to fork in", "this process", e))
}

fn report(prog: &str, e: &Error) -> i32 {
    report_to(prog, e, None)
}

fn print(text: &str) -> i32 {
    // A closed stdout (`--help | head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

/// `cairn-mount`'s main: the exit status (when it does not exec).
pub fn mount_main(argv: Vec<OsString>) -> i32 {
    let early_fd = cli::error_fd_in(&argv);
    // No process of the container exists while cairn-mount runs (it is the
    // first, and execs the next helper before any command), so it needs no
    // sealed copy of itself; the program it starts does: it is executed
    // from one (sealed::exec_copy_of).
    if let Err(e) = sealed::hide() {
        return report_to("cairn-mount", &e, early_fd);
    }
    let (spec, command) = match cli::mount_args(argv) {
        Ok(cli::Action::Print(t)) => return print(t),
        Ok(cli::Action::Run(x)) => x,
        Err(e) => return report_to("cairn-mount", &e, early_fd),
    };
    // The descriptor stays open, without close-on-exec, for the next program.
    let error_fd = spec.error_fd;
    let run = || -> Result<Error> {
        let args = process::cstrings(&command)?;
        let ops = mount::plan(&spec)?;
        linux::ensure_own_mount_namespace("cairn-mount")?;
        mount::write_sysctls(&spec.sysctl)?;
        mount::apply(&ops, &mut linux::Linux::new())?;
        Ok(sealed::exec_copy_of(
            &args,
            &process::Env::current().to_cstrings(),
        ))
    };
    match run() {
        Ok(e) | Err(e) => report_to("cairn-mount", &e, error_fd),
    }
}

/// `cairn-pivot`'s main: the exit status (when it does not exec). It forks
/// under `--init`: in a process with more than one thread it refuses to
/// run (exit 125).
pub fn pivot_main(argv: Vec<OsString>) -> i32 {
    let early_fd = cli::error_fd_in(&argv);
    let single = match single_threaded() {
        Ok(single) => single,
        Err(e) => return report_to("cairn-pivot", &e, early_fd),
    };
    if let Err(e) = sealed::ensure("cairn-pivot") {
        return report_to("cairn-pivot", &e, early_fd);
    }
    // The --init re-executed under podman's name (init::reexec).
    if std::env::args_os()
        .next()
        .is_some_and(|a| a == init::INIT_ARGV0)
    {
        return init::resume();
    }
    match cli::pivot_args(argv) {
        Ok(cli::Action::Print(t)) => print(t),
        Ok(cli::Action::Run(spec)) => {
            // Ours from now on, and close-on-exec: the command's exec closes
            // it, which tells the monitor the command runs.
            let mut error_fd = match spec.error_fd.map(sys::adopt_fd).transpose() {
                Ok(fd) => fd,
                Err(e) => {
                    let e = Error::Usage(format!(
                        "--error-fd {}: not an open descriptor ({e})",
                        spec.error_fd.unwrap_or(-1)
                    ));
                    return report("cairn-pivot", &e);
                }
            };
            match pivot::run(&spec, &mut error_fd, &single) {
                // --init: the command's status.
                Ok(code) => code,
                Err(e) => report_to("cairn-pivot", &e, error_fd.as_ref().map(|f| f.as_raw_fd())),
            }
        }
        Err(e) => report_to("cairn-pivot", &e, early_fd),
    }
}

/// `cairn-monitor`'s main: the container's exit status, or 125. It forks:
/// in a process with more than one thread it refuses to run.
pub fn monitor_main(argv: Vec<OsString>) -> i32 {
    let single = match single_threaded() {
        Ok(single) => single,
        Err(e) => return report("cairn-monitor", &e),
    };
    let args = match cli::monitor_args(argv) {
        Ok(cli::Action::Print(t)) => return print(t),
        Ok(cli::Action::Run(x)) => x,
        Err(e) => return report("cairn-monitor", &e),
    };
    let adopt = |flag: &str, fd: Option<i32>| {
        fd.map(sys::adopt_fd).transpose().map_err(|e| {
            Error::Usage(format!(
                "--{flag} {}: not an open descriptor ({e}): the launcher must let the monitor inherit it",
                fd.unwrap_or(-1)
            ))
        })
    };
    let sync = match adopt("sync-fd", args.sync_fd) {
        Ok(fd) => fd,
        Err(e) => return report("cairn-monitor", &e),
    };
    // Held (open) until we exit: the launcher's flock lives on with it.
    let _lock = match adopt("lock-fd", args.lock_fd).and_then(|fd| {
        fd.map(|fd| {
            record_pid(fd).map_err(|e| Error::Usage(format!("--lock-fd: write our pid: {e}")))
        })
        .transpose()
    }) {
        Ok(f) => f,
        Err(e) => {
            monitor::fail_before_start(sync, &e);
            return report("cairn-monitor", &e);
        }
    };
    match spec::load::<spec::MonitorSpec>(&args.spec).and_then(|s| s.validate().map(|()| s)) {
        Ok(spec) => monitor::run(&spec, sync, &single),
        Err(e) => {
            monitor::fail_before_start(sync, &e);
            report("cairn-monitor", &e)
        }
    }
}

/// Replaces the content of the launcher's lock file with our pid.
fn record_pid(fd: OwnedFd) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd);
    f.set_len(0)?;
    f.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
    Ok(f)
}

/// `cairn-enter`'s main: the command's exit status, or ours. It forks: in
/// a process with more than one thread it refuses to run (exit 125).
pub fn enter_main(argv: Vec<OsString>) -> i32 {
    let single = match single_threaded() {
        Ok(single) => single,
        Err(e) => return report("cairn-enter", &e),
    };
    if let Err(e) = sealed::ensure("cairn-enter") {
        return report("cairn-enter", &e);
    }
    match cli::enter_args(argv) {
        Ok(cli::Action::Print(t)) => print(t),
        Ok(cli::Action::Run(spec)) => match enter::run(&spec, &single) {
            Ok(code) => code,
            Err(e) => report("cairn-enter", &e),
        },
        Err(e) => report("cairn-enter", &e),
    }
}
