//! The last steps shared by `cairn-pivot` and `cairn-enter`: environment,
//! credentials, capabilities, `no_new_privs`, parent-death signal, leaked
//! descriptors, and the exec with shell-like exit codes.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use crate::error::{Context as _, Error, Result, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};
use crate::user::Identity;

/// `PATH` when the environment has none (Docker's and podman's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An ordered environment: later `set`s replace earlier values in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(Vec<(OsString, OsString)>);

impl Env {
    /// From `KEY=VALUE` byte strings (`/proc/PID/environ` entries, or
    /// `std::env::vars_os`); entries without `=` are dropped.
    pub fn from_entries<I: IntoIterator<Item = Vec<u8>>>(entries: I) -> Self {
        let mut env = Env::default();
        for e in entries {
            if let Some(i) = e.iter().position(|&b| b == b'=').filter(|&i| i > 0) {
                env.set(OsStr::from_bytes(&e[..i]), OsStr::from_bytes(&e[i + 1..]));
            }
        }
        env
    }

    /// The caller's environment.
    pub fn current() -> Self {
        let mut env = Env::default();
        for (k, v) in std::env::vars_os() {
            env.set(&k, &v);
        }
        env
    }

    /// Set `key` to `value`.
    pub fn set(&mut self, key: &OsStr, value: &OsStr) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.0.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&OsStr> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_os_str())
    }

    /// Apply `--env` entries: `KEY=VALUE` sets, a bare `KEY` copies the
    /// caller's value (Docker's `-e KEY`) or is ignored when the caller has none.
    pub fn apply(&mut self, entries: &[String]) -> Result<()> {
        for e in entries {
            let (k, v) = match e.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (e.as_str(), None),
            };
            if k.is_empty() || k.contains('\0') || v.is_some_and(|v| v.contains('\0')) {
                return Err(Error::Usage(format!(
                    "--env {e:?}: expected KEY=VALUE with a non-empty KEY and no NUL bytes"
                )));
            }
            match v {
                Some(v) => self.set(OsStr::new(k), OsStr::new(v)),
                None => {
                    if let Some(v) = std::env::var_os(k) {
                        self.set(OsStr::new(k), &v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fill in `PATH` and `HOME` when unset.
    pub fn defaults(&mut self, home: Option<&str>) {
        if self.get("PATH").is_none() {
            self.set(OsStr::new("PATH"), OsStr::new(DEFAULT_PATH));
        }
        if self.get("HOME").is_none() {
            self.set(OsStr::new("HOME"), OsStr::new(home.unwrap_or("/")));
        }
    }

    /// `KEY=VALUE` C strings for `execve`.
    pub fn to_cstrings(&self) -> Vec<CString> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let mut b = k.as_bytes().to_vec();
                b.push(b'=');
                b.extend_from_slice(v.as_bytes());
                CString::new(b).ok()
            })
            .collect()
    }
}

/// Everything about the process that is not its command line.
#[derive(Debug, Clone)]
pub struct Creds {
    /// User, groups.
    pub identity: Identity,
    /// Capabilities kept (bounding, permitted, effective); `None` = leave
    /// them all as they are (privileged).
    pub caps: Option<u64>,
    /// Set `no_new_privs`.
    pub no_new_privs: bool,
    /// Parent-death signal.
    pub pdeathsig: Option<Signal>,
    /// Descriptors 3 .. 3+N stay open.
    pub keep_fds: u32,
}

/// Parse a signal name (`KILL`, `SIGKILL`, `9`); `none` = no signal.
pub fn parse_signal(s: &str) -> Result<Option<Signal>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Ok(sig) = name.parse::<Signal>() {
        return Ok(Some(sig));
    }
    s.parse::<i32>()
        .ok()
        .and_then(|n| Signal::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            Error::Usage(format!(
                "unknown signal {s:?}: use a name such as KILL or TERM, a number, or none"
            ))
        })
}

/// The capability mask of `CapPrm` (or another field) in a status text.
pub(crate) fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Before a process the container can see is forked: the bounding set cut
/// to `keep`, and the effective and permitted sets to `keep` plus
/// CAP_SETUID, CAP_SETGID and CAP_SETPCAP ([`become_process`] still needs
/// them to switch user and drop the rest), none inheritable. What such a
/// process could then be made to do (ptrace), or gain by executing a file
/// with capabilities, stays within the command's own capabilities.
pub fn limit_capabilities(keep: u64) -> Result<()> {
    const SETGID: u64 = 1 << 6;
    const SETUID: u64 = 1 << 7;
    const SETPCAP: u64 = 1 << 8;
    drop_from_bounding_set(keep, "")?;
    let set = (keep | SETGID | SETUID | SETPCAP) & permitted();
    crate::sys::capset(set, set, 0).ctx("capset on", "this process")
}

/// Remove every capability not in `keep` from the bounding set; a failure
/// carries `hint` (empty for none).
fn drop_from_bounding_set(keep: u64, hint: &'static str) -> Result<()> {
    let last = crate::caps::last_cap();
    for cap in 0..=last.min(63) {
        if keep & (1 << cap) == 0 && crate::sys::capbset_has(cap) {
            crate::sys::capbset_drop(cap).map_err(|e| {
                Error::sys(
                    format!(
                        "drop capability {} from the bounding set of",
                        crate::caps::NAMES.get(cap as usize).unwrap_or(&"?")
                    ),
                    "this process",
                    e,
                )
                .hint(hint)
            })?;
        }
    }
    Ok(())
}

/// This process's permitted capabilities (`CapPrm`), every bit when
/// `/proc/self/status` cannot tell: a capset asking for more than that
/// fails with `EPERM`.
fn permitted() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field(&s, "CapPrm").and_then(|v| u64::from_str_radix(v, 16).ok()))
        .unwrap_or(u64::MAX)
}

/// Become the configured process: drop bounding capabilities, switch
/// groups, gid and uid (keeping capabilities across the uid change), set the
/// kept capabilities, `no_new_privs`, the parent-death signal (after the uid
/// change, which clears it) and mark leaked descriptors close-on-exec.
pub fn become_process(c: &Creds) -> Result<()> {
    let id = &c.identity;
    let ppid = nix::unistd::getppid();
    if let Some(keep) = c.caps {
        drop_from_bounding_set(
            keep,
            "needs CAP_SETPCAP: run as root or in a user namespace, or pass --privileged",
        )?;
    }
    crate::sys::ambient_clear().ctx("clear ambient capabilities of", "this process")?;
    nix::sys::prctl::set_keepcaps(true).ctx("set keepcaps on", "this process")?;

    let groups: Vec<Gid> = id.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    if let Err(e) = nix::unistd::setgroups(&groups) {
        // In a user namespace whose setgroups is "deny" only an unchanged
        // list is fine.
        // (The primary gid counts as a member either way.)
        let same = nix::unistd::getgroups().is_ok_and(|cur| {
            let norm = |v: &mut Vec<u32>| {
                v.retain(|&g| g != id.gid);
                v.sort_unstable();
                v.dedup();
            };
            let mut a: Vec<u32> = cur.iter().map(|g| g.as_raw()).collect();
            let mut b = id.groups.clone();
            norm(&mut a);
            norm(&mut b);
            a == b
        });
        if !same {
            return Err(Error::sys(format!("setgroups {:?} for", id.groups), "this process", e).hint(
                "the user namespace may deny setgroups (/proc/self/setgroups) or not map these gids: map them with newgidmap",
            ));
        }
    }
    let gid = Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| {
        Error::sys(format!("setresgid {}", id.gid), "this process", e)
            .hint("the gid must be mapped in the user namespace")
    })?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| {
        Error::sys(format!("setresuid {}", id.uid), "this process", e)
            .hint("the uid must be mapped in the user namespace")
    })?;
    nix::sys::prctl::set_keepcaps(false).ctx("clear keepcaps on", "this process")?;

    if let Some(keep) = c.caps {
        // Never ask for more than we have (capset would fail with EPERM);
        // no inheritable capabilities (CVE-2022-24769).
        let set = keep & permitted();
        crate::sys::capset(set, set, 0).ctx("capset on", "this process")?;
    }
    if c.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx("set no_new_privs on", "this process")?;
    }
    if let Some(sig) = c.pdeathsig {
        nix::sys::prctl::set_pdeathsig(sig)
            .ctx("set the parent-death signal of", "this process")?;
        // The parent may have died before the signal was armed.
        if nix::unistd::getppid() != ppid {
            return Err(Error::Usage(
                "the parent process exited during setup".into(),
            ));
        }
    }
    crate::sys::cloexec_from(3 + c.keep_fds).ctx("close leaked descriptors of", "this process")?;
    Ok(())
}

/// The most cairn reads of a file the container controls (`/etc/passwd`,
/// `/etc/group`, `/proc/PID/environ`): more is refused, never buffered.
pub const MAX_CONTAINER_FILE: u64 = 16 << 20;

/// Read at most [`MAX_CONTAINER_FILE`] bytes of `file` (`what` names it in
/// errors); a longer one is an error, read no further than one byte past
/// the cap.
pub(crate) fn read_capped(file: std::fs::File, what: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    file.take(MAX_CONTAINER_FILE + 1)
        .read_to_end(&mut buf)
        .ctx("read", what)?;
    if buf.len() as u64 > MAX_CONTAINER_FILE {
        return Err(Error::Usage(format!(
            "refusing to read {what} of the container: it is larger than {} MiB; make it smaller in the container",
            MAX_CONTAINER_FILE >> 20
        )));
    }
    Ok(buf)
}

/// A regular file of the container (as the current root sees it, symlinks
/// followed inside it), read with [`read_capped`]; `None` when missing. A
/// device, FIFO, socket or directory in its place counts as missing, and is
/// neither read nor waited on: `/etc/passwd` as a link to `/dev/zero` or a FIFO
/// must neither exhaust memory nor hang us.
pub(crate) fn read_container_file(path: &str) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::sys("open", path, e)),
    };
    let kind = file.metadata().ctx("stat", path)?.file_type();
    if !kind.is_file() {
        // As if missing (numeric ids still work, names do not resolve), so
        // `exec -u 0` can still repair such a container.
        crate::say(&format!(
            "warning: ignoring {path} of the container: not a regular file (a device, FIFO, socket or directory)"
        ));
        return Ok(None);
    }
    read_capped(file, path).map(Some)
}

/// Turn arguments into C strings.
pub fn cstrings(args: &[OsString]) -> Result<Vec<CString>> {
    args.iter()
        .map(|a| {
            CString::new(a.clone().into_vec())
                .map_err(|_| Error::Usage(format!("argument {a:?} contains a NUL byte")))
        })
        .collect()
}

/// `execve` the command, searching `PATH` from `env` when the name has no
/// `/`. Only returns on failure: 127 when nothing was found, 126 when
/// something was found but could not be executed.
pub fn exec(args: &[CString], env: &[CString]) -> Error {
    let Some(program) = args.first() else {
        return Error::Usage("no command given".into());
    };
    // Rust's runtime ignores SIGPIPE at start-up, and an ignored signal
    // survives execve: give the command the default back, as
    // std::process::Command does for its children.
    let _ = crate::sys::default_disposition(&[nix::sys::signal::Signal::SIGPIPE]);
    let name = program.to_string_lossy().into_owned();
    let fail = |reason: String, code: i32| Error::Exec {
        program: name.clone(),
        reason,
        code,
    };
    let classify = |e: Errno| match e {
        Errno::ENOENT | Errno::ENOTDIR => (
            EXIT_NOT_FOUND,
            "not found (or its #! interpreter is missing)",
        ),
        Errno::EACCES | Errno::EPERM => (
            EXIT_NOT_EXECUTABLE,
            "permission denied: not executable, or on a noexec mount",
        ),
        Errno::ENOEXEC => (
            EXIT_NOT_EXECUTABLE,
            "not an executable format (a script needs a #! line)",
        ),
        _ => (EXIT_NOT_EXECUTABLE, "cannot be executed"),
    };
    if program.as_bytes().contains(&b'/') {
        let e = nix::unistd::execve(program, args, env).unwrap_err();
        let (code, why) = classify(e);
        return fail(format!("{why} ({e})"), code);
    }
    let path = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(|p| p.to_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    let mut denied = None;
    for dir in path.split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(program.as_bytes());
        let Ok(full) = CString::new(full) else {
            continue;
        };
        match nix::unistd::execve(&full, args, env).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => denied = Some(full),
            e => {
                let (code, why) = classify(e);
                return fail(format!("{} {why} ({e})", full.to_string_lossy()), code);
            }
        }
    }
    match denied {
        Some(full) => fail(
            format!(
                "{} is not executable (permission denied)",
                full.to_string_lossy()
            ),
            EXIT_NOT_EXECUTABLE,
        ),
        None => fail(
            format!("not found in PATH={}", String::from_utf8_lossy(&path)),
            EXIT_NOT_FOUND,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_rules() {
        let mut env = Env::from_entries([
            b"A=1".to_vec(),
            b"PATH=/bin".to_vec(),
            b"junk".to_vec(),
            b"=x".to_vec(),
            b"B=x=y".to_vec(),
        ]);
        assert_eq!(env.get("B"), Some(OsStr::new("x=y")));
        env.apply(&["A=2".into(), "C=3".into(), "CAIRN_SURELY_UNSET_VAR".into()])
            .unwrap();
        env.defaults(Some("/home/app"));
        let got: Vec<String> = env
            .to_cstrings()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(got, ["A=2", "PATH=/bin", "B=x=y", "C=3", "HOME=/home/app"]);

        let mut empty = Env::default();
        empty.defaults(None);
        assert_eq!(empty.get("PATH"), Some(OsStr::new(DEFAULT_PATH)));
        assert_eq!(empty.get("HOME"), Some(OsStr::new("/")));
        assert!(Env::default().apply(&["=v".into()]).is_err());
        assert!(Env::default().apply(&["K=a\0b".into()]).is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("15").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("none").unwrap(), None);
        assert!(parse_signal("BOGUS").is_err());
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tsh\nCapPrm:\t000001ffffffffff\nNoNewPrivs:\t1\nGroups:\t1 2 \n";
        assert_eq!(status_field(s, "CapPrm"), Some("000001ffffffffff"));
        assert_eq!(status_field(s, "NoNewPrivs"), Some("1"));
        assert_eq!(status_field(s, "Groups"), Some("1 2"));
        assert_eq!(status_field(s, "CapEff"), None);
    }

    #[test]
    fn exec_exit_codes() {
        // execve only returns on failure, so these are safe in the test process.
        let env = vec![CString::new("PATH=/nonexistent-cairn:/etc").unwrap()];
        let e = exec(&[CString::new("cairn-no-such-command").unwrap()], &env);
        assert_eq!(e.exit_code(), 127, "{e}");
        assert!(
            e.to_string()
                .contains("not found in PATH=/nonexistent-cairn:/etc"),
            "{e}"
        );
        let e = exec(&[CString::new("passwd").unwrap()], &env);
        assert_eq!(e.exit_code(), 126, "/etc/passwd is not executable: {e}");
        let e = exec(&[CString::new("/etc/passwd").unwrap()], &env);
        assert_eq!(e.exit_code(), 126, "{e}");
        let e = exec(&[CString::new("/nonexistent-cairn/x").unwrap()], &env);
        assert_eq!(e.exit_code(), 127, "{e}");
        let e = exec(&[CString::new("/etc").unwrap()], &env);
        assert_eq!(e.exit_code(), 126, "{e}");
    }
}
