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

/// The end of a verb that went on past errors (`rm` of several names):
/// every error but the last printed, the last returned with its code; 0
/// when there was none.
pub fn finish(mut errors: Vec<(u8, String)>) -> anyhow::Result<u8> {
    let Some((code, last)) = errors.pop() else {
        return Ok(0);
    };
    for (code, msg) in errors {
        report(&with_code(code, msg));
    }
    Err(with_code(code, last))
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
    eprintln!("Error: {}", message(err));
    ENGINE
}

/// The error's line: outer context first, then causes not already part of
/// it, then what the user can do about it.
fn message(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    if let Some(hint) = hint(err) {
        if !msg.contains(hint) {
            msg.push_str(hint);
        }
    }
    if !msg.contains("free some space") && is_disk_full(err) {
        msg.push_str("; free some space (`cairn system prune -a` removes unused images) or point --root at a larger filesystem");
    }
    msg
}

/// What the user can do about a library error, in terms of cairn's flags
/// (the libraries do not know them): the first cause in the chain that
/// has a hint decides.
fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(cause_hint)
}

/// [`hint`] for an error that is not (yet) an `anyhow::Error`: printed
/// where a command reports several errors and goes on.
pub fn hint_for(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    std::iter::successors(Some(err), |e| e.source()).find_map(cause_hint)
}

fn cause_hint(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if let Some(e) = downcast::<cairn_registry::Error>(cause) {
        registry_hint(e)
    } else if let Some(e) = downcast::<cairn_store::Error>(cause) {
        store_hint(e)
    } else if let Some(cairn_store::ImageError::Store(e)) = downcast(cause) {
        store_hint(e)
    } else if let Some(cairn_unpacker::Error::Store(e)) = downcast(cause) {
        store_hint(e)
    } else {
        None
    }
}

/// `cause` as a `T`, also where it is a boxed one (a boxed source).
fn downcast<'a, T: std::error::Error + 'static>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    cause
        .downcast_ref::<T>()
        .or_else(|| cause.downcast_ref::<Box<T>>().map(|b| &**b))
}

fn registry_hint(e: &cairn_registry::Error) -> Option<&'static str> {
    use cairn_registry::RegistryError;
    if let Some(RegistryError::Unreachable { tls_hint: true, .. }) = e.registry_error() {
        return Some("; for a plain-HTTP or self-signed registry pass --tls-verify=false or mark it insecure in registries.conf");
    }
    if let Some(store) = e.store_error() {
        return store_hint(store);
    }
    e.io_error().and_then(io_hint)
}

fn store_hint(e: &cairn_store::Error) -> Option<&'static str> {
    match e {
        cairn_store::Error::NoPlatform { .. } => return Some("; choose one with --platform"),
        cairn_store::Error::Corrupt { .. } => return Some("; run `cairn system check --repair`"),
        _ => {}
    }
    e.io_error().and_then(io_hint)
}

/// For a file operation of the store or of a configuration file: where
/// `--root` can help.
fn io_hint(e: &cairn_store::PathError) -> Option<&'static str> {
    use nix::libc::{EACCES, EDQUOT, ENOSPC, EPERM, EROFS};
    match e.source.raw_os_error()? {
        ENOSPC | EDQUOT => Some("; free some space or point --root at a larger filesystem"),
        EACCES | EPERM => Some("; check the permissions, or point --root at a directory you own"),
        EROFS => Some("; the filesystem is read-only: point --root at a writable one"),
        _ => None,
    }
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
    use anyhow::Context as _;
    use cairn_registry::RegistryError;

    fn path_error(errno: i32) -> cairn_store::PathError {
        cairn_store::PathError::new(
            "write blob",
            "/r/tmp/x",
            std::io::Error::from_raw_os_error(errno),
        )
    }

    fn unreachable(tls_hint: bool) -> cairn_registry::Error {
        cairn_registry::Error::Registry {
            reference: "r.example/a:1".into(),
            kind: RegistryError::Unreachable {
                registry: "r.example".into(),
                detail: "invalid peer certificate".into(),
                tls_hint,
            },
        }
    }

    #[test]
    fn the_libraries_errors_read_as_before_with_the_flags_added_here() {
        let no_platform = cairn_store::Error::NoPlatform {
            reference: "r.example/a:1".into(),
            want: "linux/s390x".into(),
            offered: "linux/amd64".into(),
        };
        let in_context = cairn_store::Error::Context {
            context: "r.example/a:1".into(),
            source: Box::new(path_error(nix::libc::EACCES).into()),
        };
        let cases: Vec<(anyhow::Error, &str)> = vec![
            (
                unreachable(true).into(),
                "r.example/a:1: cannot reach registry r.example: invalid peer certificate; for a plain-HTTP or self-signed registry pass --tls-verify=false or mark it insecure in registries.conf",
            ),
            (
                unreachable(false).into(),
                "r.example/a:1: cannot reach registry r.example: invalid peer certificate",
            ),
            (
                cairn_registry::Error::from(no_platform).into(),
                "r.example/a:1: no image for platform linux/s390x in the index (it offers: linux/amd64); choose one with --platform",
            ),
            (
                anyhow::Error::from(in_context).context("pulling"),
                "pulling: r.example/a:1: write blob /r/tmp/x: Permission denied (os error 13); check the permissions, or point --root at a directory you own",
            ),
            (
                cairn_unpacker::Error::Store(path_error(nix::libc::EROFS).into()).into(),
                "write blob /r/tmp/x: Read-only file system (os error 30); the filesystem is read-only: point --root at a writable one",
            ),
            (
                cairn_store::Error::from(path_error(nix::libc::ENOSPC)).into(),
                "write blob /r/tmp/x: No space left on device (os error 28); free some space or point --root at a larger filesystem",
            ),
            (
                cairn_registry::Error::from(cairn_store::Error::Corrupt {
                    root: "/r".into(),
                    message: "index.json is not a valid OCI index (EOF)".into(),
                })
                .into(),
                "store /r: index.json is not a valid OCI index (EOF); run `cairn system check --repair`",
            ),
            // Not the store's: no --root advice.
            (
                anyhow::Error::from(path_error(nix::libc::EACCES)),
                "write blob /r/tmp/x: Permission denied (os error 13)",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(message(&err), want);
        }
    }

    #[test]
    fn errors_reported_one_by_one_get_the_same_hint() {
        let e = cairn_store::ImageError::Store(path_error(nix::libc::EPERM).into());
        assert_eq!(
            hint_for(&e),
            Some("; check the permissions, or point --root at a directory you own")
        );
        let r: Result<(), _> = Err(unreachable(true));
        let e = r.context("login").unwrap_err();
        assert!(hint(&e).is_some_and(|h| h.contains("--tls-verify=false")));
    }

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
