//! cairn's runtime helpers: three small, single-threaded, setuid-free
//! programs that realise a container's environment and compose by exec
//! chaining, like `unshare`, `chroot` and `setpriv`:
//!
//! ```text
//! unshare -m -p -u -i -f  cairn-mount [opts] -- cairn-pivot [opts] -- CMD...
//! cairn-enter --all --target PID [opts] -- CMD...
//! ```
//!
//! - `cairn-mount` ([`mount`]): a [`spec::MountSpec`] (flags or JSON) becomes
//!   an ordered plan of [`mount::Op`]s, carried out through the
//!   [`syscall::Syscall`] seam: [`linux::Linux`] for real, with every target
//!   resolved inside the root by `openat2(RESOLVE_IN_ROOT)`, or
//!   [`syscall::Recorder`] in tests.
//! - `cairn-pivot` ([`pivot`]): `pivot_root`, old root detached, hostname,
//!   user from the container's own files ([`user`]), capabilities
//!   ([`caps`]), then [`process::exec`] with exit codes 125/126/127.
//! - `cairn-enter` ([`enter`]): `setns` through a pidfd, fork for the pid
//!   namespace, signal forwarding.
//!
//! Every `unsafe` block is in one private module (`sys`); the rest of the
//! crate denies `unsafe_code`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod caps;
pub mod cli;
pub mod enter;
pub mod error;
pub mod linux;
pub mod mount;
pub mod mountinfo;
pub mod path;
pub mod pivot;
pub mod process;
pub mod spec;
mod sys;
pub mod syscall;
pub mod user;

use std::ffi::OsString;
use std::io::Write as _;

pub use error::{Error, Result, EXIT_FAILURE, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};

/// Gives SIGPIPE back its default action (Rust's runtime ignores it), so a
/// command line tool writing into a closed pipe (`cairn images | head -1`)
/// ends quietly, as C and Go tools do, instead of failing on `EPIPE`.
pub fn restore_sigpipe() {
    let _ = sys::default_disposition(&[nix::sys::signal::Signal::SIGPIPE]);
}

fn report(prog: &str, e: &Error) -> i32 {
    eprintln!("{prog}: {e}");
    e.exit_code()
}

fn print(text: &str) -> i32 {
    // A closed stdout (`--help | head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

/// `cairn-mount`'s main: the exit status (when it does not exec).
pub fn mount_main(argv: Vec<OsString>) -> i32 {
    let (spec, command) = match cli::mount_args(argv) {
        Ok(cli::Action::Print(t)) => return print(t),
        Ok(cli::Action::Run(x)) => x,
        Err(e) => return report("cairn-mount", &e),
    };
    let run = || -> Result<Error> {
        let args = process::cstrings(&command)?;
        let ops = mount::plan(&spec)?;
        linux::ensure_own_mount_namespace("cairn-mount")?;
        mount::apply(&ops, &mut linux::Linux::new())?;
        Ok(process::exec(&args, &process::Env::current().to_cstrings()))
    };
    match run() {
        Ok(e) | Err(e) => report("cairn-mount", &e),
    }
}

/// `cairn-pivot`'s main: the exit status (when it does not exec).
pub fn pivot_main(argv: Vec<OsString>) -> i32 {
    match cli::pivot_args(argv) {
        Ok(cli::Action::Print(t)) => print(t),
        Ok(cli::Action::Run(spec)) => report("cairn-pivot", &pivot::run(&spec)),
        Err(e) => report("cairn-pivot", &e),
    }
}

/// `cairn-enter`'s main: the command's exit status, or ours.
pub fn enter_main(argv: Vec<OsString>) -> i32 {
    match cli::enter_args(argv) {
        Ok(cli::Action::Print(t)) => print(t),
        Ok(cli::Action::Run(spec)) => match enter::run(&spec) {
            Ok(code) => code,
            Err(e) => report("cairn-enter", &e),
        },
        Err(e) => report("cairn-enter", &e),
    }
}
