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
            ErrorKind::Engine => Some((ENGINE, with_hint(e))),
            ErrorKind::Running => Some((2, e.to_string())),
            ErrorKind::Command(code) => Some((code.clamp(0, 255) as u8, e.to_string())),
            ErrorKind::Other => None,
        })
}

/// An engine error's message, with the flags that help where there are.
fn with_hint(e: &cairn_engine::Error) -> String {
    match e {
        cairn_engine::Error::MonitorSilent {
            name,
            why,
            exit,
            log,
        } => format!(
            "cairn-monitor for container {name} ended without reporting ({why}; exit {exit:?}): run with --log-level debug and check {}",
            log.display()
        ),
        _ => e.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_podman_codes_and_hints() {
        let code = |e: cairn_engine::Error| engine_code(&anyhow::Error::new(e));
        assert_eq!(
            code(cairn_engine::Error::NoSuchContainer("x".into())),
            Some((
                ENGINE,
                "no container with name or ID \"x\" found: no such container".into()
            ))
        );
        assert_eq!(
            code(cairn_engine::Error::RemoveRunning("abc".into())).map(|c| c.0),
            Some(2)
        );
        assert_eq!(
            code(cairn_engine::Error::Start {
                code: 127,
                message: "not found".into()
            }),
            Some((127, "not found".into()))
        );
        assert_eq!(code(cairn_engine::Error::Invalid("bad".into())), None);
        let (c, msg) = code(cairn_engine::Error::MonitorSilent {
            name: "web".into(),
            why: "no report".into(),
            exit: Some(1),
            log: "/c/ctr.log".into(),
        })
        .unwrap();
        assert_eq!(c, ENGINE);
        assert_eq!(
            msg,
            "cairn-monitor for container web ended without reporting (no report; exit Some(1)): run with --log-level debug and check /c/ctr.log"
        );
        // Under context, still reported alone.
        let wrapped = anyhow::Error::new(cairn_engine::Error::Refused("r".into())).context("outer");
        assert_eq!(code_of(&wrapped), ENGINE);
        assert_eq!(engine_code(&wrapped).unwrap().1, "r");
    }
}
