//! Exit codes as podman uses them: 125 for cairn's own failures, 126/127 for
//! a command that cannot run, otherwise the command's code; some verbs
//! (rmi) have their own small codes.

use cairn_engine::ErrorKind;

/// cairn itself failed.
pub const ENGINE: u8 = 125;

/// An error that carries the exit code it must produce.
#[derive(Debug)]
pub struct Exit {
    /// The process exit code.
    pub code: u8,
    /// The message for stderr (`Error: ` is prepended), if any.
    pub message: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// Fails with `code` and `message`.
pub fn with_code(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: Some(message.into()),
    }
    .into()
}

/// Prints the error as podman does (`Error: …` on stderr) and returns its
/// exit code.
pub fn report(err: &anyhow::Error) -> u8 {
    if let Some(exit) = err.downcast_ref::<Exit>() {
        if let Some(m) = &exit.message {
            eprintln!("Error: {m}");
        }
        return exit.code;
    }
    if let Some((code, message)) = engine_code(err) {
        eprintln!("Error: {message}");
        return code;
    }
    // Outer context first, then causes not already part of it.
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    if !msg.contains("free some space") && is_disk_full(err) {
        msg.push_str("; free some space (`cairn system prune -a` removes unused images) or point --root at a larger filesystem");
    }
    eprintln!("Error: {msg}");
    ENGINE
}

/// The exit code of an engine error that podman reports alone (its message,
/// no causes): 125 for the engine's own, the runtime's code for a command
/// that could not start. `None` for the others.
pub fn engine_code(err: &anyhow::Error) -> Option<(u8, String)> {
    // The first that is reported alone, however deep (as an `Exit` under
    // context was).
    err.chain()
        .filter_map(|c| c.downcast_ref::<cairn_engine::Error>())
        .find_map(|e| match e.kind() {
            ErrorKind::Engine => Some((ENGINE, e.to_string())),
            ErrorKind::Running => Some((2, e.to_string())),
            ErrorKind::Command(code) => Some((code.clamp(0, 255) as u8, e.to_string())),
            ErrorKind::Other => None,
        })
}

/// The code `report` would exit with for `err`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<Exit>() {
        Some(exit) => exit.code,
        None => engine_code(err).map_or(ENGINE, |(code, _)| code),
    }
}

/// Whether an I/O error in the chain is a full disk or quota.
fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .is_some_and(|code| code == nix::libc::ENOSPC || code == nix::libc::EDQUOT)
    })
}
