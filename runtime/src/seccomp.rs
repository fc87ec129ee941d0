//! The container's confinement at the end of `cairn-pivot` and in the child
//! of `cairn-enter`: a new session keyring, then the seccomp filter `cairn
//! create` compiled (classic BPF as libseccomp's `seccomp_export_bpf` writes
//! it, `--seccomp FILE`), installed around `process::become_process`.
//!
//! Order. `seccomp(SECCOMP_SET_MODE_FILTER)` needs `no_new_privs` or
//! `CAP_SYS_ADMIN` in the process's user namespace (seccomp(2)). Without
//! `no_new_privs` the filter is installed before the credentials change,
//! while the helper still holds every capability, as runc and crun do; the
//! rest of the set-up (prctl, setgroups, setresuid, capset, close_range) and
//! the exec then run under it, which podman's profile allows. With
//! `no_new_privs` it is installed after, as the very last step before the
//! exec. Setting `no_new_privs` only to install a filter would break setuid
//! programs in the container, which podman does not do.
//!
//! The session keyring: a process inherits its caller's session keyring, and
//! through it possesses the caller's keys and user keyring; podman's profile
//! allows `keyctl`, so crun gives each container a new session keyring
//! instead. So does `confine`, for `run` and `exec` alike.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::process::{self, Creds};

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

/// A compiled filter and the `seccomp(2)` flags to install it with.
#[derive(Clone)]
pub(crate) struct Filter {
    prog: Vec<libc::sock_filter>,
    flags: u32,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Filter({} instructions, flags {:#x})",
            self.prog.len(),
            self.flags
        )
    }
}

/// `SECCOMP_FILTER_FLAG_*` names (containers-common's `flags`) to bits.
pub fn flag_bits(names: &[String]) -> Result<u32> {
    let mut bits = 0;
    for n in names {
        bits |= match n.as_str() {
            // Single-threaded helpers: TSYNC would change nothing.
            "SECCOMP_FILTER_FLAG_TSYNC" => 0,
            "SECCOMP_FILTER_FLAG_LOG" => 1 << 1,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 1 << 2,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 1 << 5,
            _ => {
                return Err(Error::Usage(format!(
                "--seccomp-flag {n:?}: unknown; use SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW or _WAIT_KILLABLE_RECV"
            )))
            }
        };
    }
    Ok(bits)
}

impl Filter {
    /// Parse a program: 8-byte `struct sock_filter` entries in native byte
    /// order, 1 to 4096 of them.
    pub(crate) fn parse(bytes: &[u8], flags: u32) -> std::result::Result<Filter, String> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > MAX_INSNS {
            return Err(format!(
                "{} bytes is not a BPF program (a multiple of 8 bytes, 1 to {MAX_INSNS} instructions)",
                bytes.len()
            ));
        }
        let prog = bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter { prog, flags })
    }

    /// Read `path` (before the root changes: it is a host path).
    pub(crate) fn read(path: &Path, flag_names: &[String]) -> Result<Filter> {
        let flags = flag_bits(flag_names)?;
        let too_big = |len: u64| len > (MAX_INSNS * 8) as u64;
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::sys("read the seccomp filter", path, e)
                .hint("recreate the container: cairn create writes seccomp.bpf in its directory")
        })?;
        if !meta.is_file() || too_big(meta.size()) {
            return Err(Error::Usage(format!(
                "--seccomp {}: not a BPF program file of at most {} bytes",
                path.display(),
                MAX_INSNS * 8
            )));
        }
        let bytes =
            std::fs::read(path).map_err(|e| Error::sys("read the seccomp filter", path, e))?;
        Filter::parse(&bytes, flags)
            .map_err(|why| Error::Usage(format!("--seccomp {}: {why}", path.display())))
    }

    /// Install it on this process. Flags the kernel does not know
    /// (`EINVAL`) are dropped and the call retried, as crun does.
    pub(crate) fn install(&self) -> Result<()> {
        let mut r = crate::sys::seccomp_set_mode_filter(&self.prog, self.flags);
        if self.flags != 0
            && r.as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
        {
            r = crate::sys::seccomp_set_mode_filter(&self.prog, 0);
        }
        r.map_err(|e| {
            Error::sys("install the seccomp filter (seccomp SECCOMP_SET_MODE_FILTER) on", "this process", e)
                .hint("needs CAP_SYS_ADMIN or no_new_privs, and a kernel with CONFIG_SECCOMP_FILTER; run the container with --security-opt seccomp=unconfined to go without")
        })
    }
}

/// A new session keyring; a kernel without keyrings (`ENOSYS`) needs none.
pub(crate) fn new_session_keyring() -> Result<()> {
    match crate::sys::join_new_session_keyring() {
        Err(e) if e.raw_os_error() != Some(libc::ENOSYS) => Err(Error::sys(
            "join a new session keyring (keyctl KEYCTL_JOIN_SESSION_KEYRING) in",
            "this process",
            e,
        )
        .hint("the user's key quota may be used up: see /proc/key-users")),
        _ => Ok(()),
    }
}

/// A new session keyring, then [`process::become_process`] with `filter`
/// installed before it (no `no_new_privs`) or after it (see the module doc).
pub(crate) fn confine(creds: &Creds, filter: Option<&Filter>) -> Result<()> {
    new_session_keyring()?;
    match filter {
        None => process::become_process(creds),
        Some(f) if creds.no_new_privs => {
            process::become_process(creds)?;
            f.install()
        }
        Some(f) => {
            f.install()?;
            process::become_process(creds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_and_flags() {
        // BPF_RET|BPF_K, SECCOMP_RET_ALLOW
        let allow = [0x06u8, 0, 0, 0, 0, 0, 0xff, 0x7f];
        let f = Filter::parse(&allow, 4).unwrap();
        assert_eq!(f.prog.len(), 1);
        assert_eq!(f.prog[0].code, 6);
        assert_eq!(f.prog[0].k, 0x7fff_0000);
        assert!(Filter::parse(&[], 0).is_err());
        assert!(Filter::parse(&allow[..7], 0).is_err());
        assert!(Filter::parse(&vec![0; 8 * 4097], 0).is_err());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            flag_bits(&names(&[
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_LOG"
            ]))
            .unwrap(),
            6
        );
        assert!(flag_bits(&names(&["SECCOMP_FILTER_FLAG_NOPE"])).is_err());
    }
}
