//! Helpers that run inside a container never run from the host's binary.
//!
//! `cairn-mount`, `cairn-pivot` (pid 1 under `--init`) and `cairn-enter`
//! (whose forked child is in the container's pid namespace until it execs)
//! are processes a container can see. Through `/proc/PID/exe` a process of
//! the container reaches the program file of what it sees, and a script
//! whose interpreter is `#!/proc/self/exe` makes the kernel run our binary
//! again inside the container. If that file were the host's binary, the
//! container could keep it open and write to it once the helper exited
//! (CVE-2019-5736, runc's fix: a sealed `memfd` copy).
//!
//! So each of these helpers starts with `ensure`: when `/proc/self/exe`
//! is not already one of our sealed copies, it copies itself into a
//! `memfd`, seals it against every write, growth and shrink, and
//! re-executes from it with the same arguments and environment. The copy
//! lives only as long as the process; nothing is left on disk.
//!
//! The process is also made non-dumpable right away (`hide`): its
//! `/proc/PID/{fd,mem,environ,...}` then belong to the host's root and are
//! out of reach of the container's root (ptrace access needs
//! `CAP_SYS_PTRACE` in the user namespace the binary was executed in, which
//! a container never has), for as long as this program runs; the
//! command's own `execve` makes the command dumpable again.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::error::{Context as _, Error, Result};

/// The seals a copy must carry: no write, no resize, no change of seals.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Set on the re-executed copy so that a copy that still does not look
/// sealed fails instead of copying itself again forever; removed at once.
const GUARD: &str = "_CAIRN_SEALED_REEXEC";

/// Whether `exe` is a memfd carrying every seal of [`seals`].
fn is_sealed(exe: &File) -> bool {
    match fcntl(exe, FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(seals()),
        // Not a memfd (or shmem file) at all.
        Err(_) => false,
    }
}

/// Make this process non-dumpable (see the module docs).
pub(crate) fn hide() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).ctx("make non-dumpable", "this process")
}

/// Copy `exe` into a new sealed memfd.
fn sealed_copy(name: &str, exe: &mut File) -> Result<OwnedFd> {
    let memfd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .ctx("memfd_create for a sealed copy of", "/proc/self/exe")
        .map_err(|e| e.hint("cairn's helpers need memfd_create (Linux 3.17) with sealing"))?;
    let mut copy = File::from(memfd);
    // std copies File to File with copy_file_range/sendfile: in the kernel.
    std::io::copy(exe, &mut copy).ctx("copy into a sealed memfd", "/proc/self/exe")?;
    fcntl(&copy, FcntlArg::F_ADD_SEALS(seals())).ctx("seal the memfd copy of", "/proc/self/exe")?;
    Ok(copy.into())
}

/// A sealed memfd copy of the program at `path` (close-on-exec) and the
/// path that executes it, `/proc/self/fd/N`: a launcher runs a helper from
/// it (`execve` opens the file before it closes close-on-exec descriptors),
/// so the helper starts sealed and `ensure` has nothing to re-execute
/// (one `execve` saved, about a millisecond). Keep the descriptor open
/// until the exec (or spawn); set `argv[0]` to `path` for `ps`.
pub fn copy_of(path: &std::path::Path) -> Result<(OwnedFd, String)> {
    let mut file = File::open(path).ctx("open", path)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("cairn-helper");
    let fd = sealed_copy(name, &mut file).map_err(|e| match e {
        Error::Sys {
            op, source, hint, ..
        } => Error::Sys {
            op,
            path: path.to_owned(),
            source,
            hint,
        },
        e => e,
    })?;
    let exec_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    Ok((fd, exec_path))
}

/// Exec the program at `path` (absolute) from a sealed copy: `cairn-mount`
/// starts `cairn-pivot`, which the container can see, this way. Returns
/// only on failure, with exit codes as [`crate::process::exec`].
pub(crate) fn exec_copy_of(args: &[CString], env: &[CString]) -> Error {
    let Some(program) = args.first() else {
        return Error::Usage("no command given".into());
    };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(program.as_bytes()));
    if !path.is_absolute() {
        return crate::process::exec(args, env);
    }
    let copy = match File::open(path) {
        Ok(mut f) => match sealed_copy(&program.to_string_lossy(), &mut f) {
            Ok(c) => c,
            Err(e) => return e,
        },
        // Not found, not readable...: the plain exec reports it as a
        // shell would (127, 126).
        Err(_) => return crate::process::exec(args, env),
    };
    let _ = crate::sys::default_disposition(&[nix::sys::signal::Signal::SIGPIPE]);
    let e = nix::unistd::fexecve(copy.as_fd(), args, env).unwrap_err();
    Error::Exec {
        program: program.to_string_lossy().into_owned(),
        reason: format!("cannot execute its sealed copy ({e})"),
        code: crate::EXIT_NOT_EXECUTABLE,
    }
}

/// Re-execute from a sealed copy unless already running from one; returns
/// when the running program is such a copy (after hiding the process).
/// `name` names the memfd (seen as `/memfd:NAME (deleted)` in
/// `/proc/PID/exe`).
pub(crate) fn ensure(name: &str) -> Result<()> {
    let mut exe = File::open("/proc/self/exe")
        .ctx("open", "/proc/self/exe")
        .map_err(|e| e.hint("/proc must be mounted"))?;
    let guarded = std::env::var_os(GUARD).is_some();
    if is_sealed(&exe) {
        if guarded {
            // Single-threaded: nothing reads the environment concurrently.
            std::env::remove_var(GUARD);
        }
        // The exec named us after the memfd ("memfd:cairn-piv"): `ps`, `top`
        // and /proc/PID/comm show the helper's own name again.
        if let Ok(comm) = CString::new(name) {
            let _ = nix::sys::prctl::set_name(&comm);
        }
        return hide();
    }
    if guarded {
        return Err(Error::Usage(format!(
            "{name}: re-executed from a sealed copy, yet /proc/self/exe is not sealed: refusing to run from a writable binary"
        )));
    }
    // Hidden during the copy too (exec resets it for the copy, which hides
    // itself again first thing).
    hide()?;
    let copy = sealed_copy(name, &mut exe)?;
    drop(exe);
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Usage(format!("{name}: an argument contains a NUL byte")))?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != GUARD)
        .filter_map(|(k, v)| {
            let mut b = k.into_vec();
            b.push(b'=');
            b.extend(v.into_vec());
            CString::new(b).ok()
        })
        .collect();
    env.push(CString::new(format!("{GUARD}=1")).expect("no NUL"));
    let e = nix::unistd::fexecve(copy.as_fd(), &args, &env).unwrap_err();
    let hint = match e {
        Errno::EACCES | Errno::EPERM => {
            "executing a memfd is refused here (vm.memfd_noexec = 2?): allow it for cairn's helpers"
        }
        _ => "",
    };
    Err(Error::sys("execute the sealed memfd copy of", "/proc/self/exe", e).hint(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_sealed_and_the_original_is_not() {
        let mut exe = File::open("/proc/self/exe").unwrap();
        assert!(!is_sealed(&exe), "the test binary is a plain file");
        let copy = File::from(sealed_copy("cairn-test", &mut exe).unwrap());
        assert!(is_sealed(&copy));
        let len = copy.metadata().unwrap().len();
        assert_eq!(len, exe.metadata().unwrap().len(), "a whole copy");
        // Every way of changing it is refused.
        use std::io::Write as _;
        assert!((&copy).write_all(b"x").is_err(), "write");
        assert!(copy.set_len(len - 1).is_err(), "shrink");
        assert!(copy.set_len(len + 1).is_err(), "grow");
        // Reopened for writing through /proc, as an attacker would.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&copy);
        let reopened = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"));
        match reopened {
            Err(_) => {}
            Ok(mut f) => assert!(f.write_all(b"x").is_err(), "write through /proc/self/fd"),
        }
    }
}
