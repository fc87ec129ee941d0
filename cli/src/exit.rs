//! Exit codes as podman uses them: 125 for cairn's own failures, 126/127 for
//! a command that cannot run, otherwise the command's code; some verbs
//! (rmi) have their own small codes.

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
    // Outer context first, then causes not already part of it.
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
    eprintln!("Error: {msg}");
    ENGINE
}

/// What the user can do about a library error, in terms of cairn's flags
/// (the libraries do not know them): the first cause in the chain that
/// has a hint decides.
fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        if let Some(e) = downcast::<cairn_registry::Error>(cause) {
            registry_hint(e)
        } else if let Some(e) = downcast::<cairn_store::Error>(cause) {
            store_hint(e)
        } else if let Some(cairn_unpacker::Error::Store(e)) = downcast(cause) {
            store_hint(e)
        } else {
            None
        }
    })
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
    if let cairn_store::Error::NoPlatform { .. } = e {
        return Some("; choose one with --platform");
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

/// Whether an I/O error in the chain is a full disk or quota.
fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .is_some_and(|code| code == nix::libc::ENOSPC || code == nix::libc::EDQUOT)
    })
}
