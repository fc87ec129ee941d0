//! Every `unsafe` block of cairn lives here: the few system calls that neither
//! `nix` nor `std` wrap safely. Each wrapper is small, takes and returns owned
//! Rust values, and turns `-1` into an `io::Error` right away.
//!
//! - `fork`: unsafe in nix because of threads; the helpers are single-threaded.
//! - `pidfd_open(2)`, `close_range(2)`, `capset(2)`: raw syscalls.
//! - `prctl(2)` for the capability bounding and ambient sets.
//! - `sigwaitinfo(2)` (nix's `SigSet::wait` drops the `siginfo_t`) and
//!   resetting signal dispositions with `sigaction(2)`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::ForkResult;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `fork(2)`.
///
/// Only sound in a single-threaded process; every helper binary is.
pub(crate) fn fork() -> io::Result<ForkResult> {
    // SAFETY: the helper binaries never start a thread (no tokio, no rayon, no
    // std::thread), so the child cannot inherit a lock held by another thread;
    // the child only makes system calls and execs or exits.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// `pidfd_open(2)`: a file descriptor that refers to `pid` and cannot be
/// recycled under us (Linux 5.3).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1; it
    // touches no memory of ours.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: on success the kernel returned a fresh descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every descriptor from
/// `first` on close-on-exec, so nothing the caller leaked reaches the
/// command, while the helper can still use its own until the exec
/// (Linux 5.11). Falls back to walking `/proc/self/fd`.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes integers only; with CLOSE_RANGE_CLOEXEC it
    // closes nothing, so no OwnedFd of ours is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if check(ret).is_ok() {
        return Ok(());
    }
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if fd >= first as i32 {
            // SAFETY: F_GETFD/F_SETFD only change the descriptor's flags; an fd
            // that was already closed (the read_dir's own) returns EBADF, which
            // is ignored.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    }
    Ok(())
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capset(2)` on the calling thread with 64-bit masks.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        CapData {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: version 3 takes a header and an array of two CapData, both
    // #[repr(C)] and alive for the call; the kernel only reads them.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })?;
    Ok(())
}

/// `prctl(PR_CAPBSET_DROP, cap)`: remove `cap` from the bounding set.
pub(crate) fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }
            as libc::c_long,
    )?;
    Ok(())
}

/// `prctl(PR_CAPBSET_READ, cap)`: whether `cap` is in the bounding set
/// (`Ok(false)` also for caps this kernel does not know).
pub(crate) fn capbset_has(cap: u32) -> bool {
    // SAFETY: integer arguments only.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) == 1 }
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)` (Linux 4.3); EINVAL on
/// older kernels, which have no ambient set, is success.
pub(crate) fn ambient_clear() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    match check(ret as libc::c_long) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.map(drop),
    }
}

/// A signal taken by [`sigwaitinfo`] and whether the kernel sent it (a
/// terminal's SIGINT or SIGWINCH) rather than a process (`kill(2)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caught {
    /// The signal number.
    pub(crate) signo: i32,
    /// `si_code > 0`: generated by the kernel (tty, timer), not `kill(2)`.
    pub(crate) from_kernel: bool,
}

/// `sigwaitinfo(2)`: wait for one of the (blocked) signals in `set`.
pub(crate) fn sigwaitinfo(set: &SigSet) -> io::Result<Caught> {
    loop {
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `set` is a valid sigset_t for the call and `info` is a
        // zeroed, properly aligned siginfo_t the kernel fills in.
        let ret = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: sigwaitinfo succeeded, so the kernel initialised `info`
        // (and it was zeroed before anyway).
        let info = unsafe { info.assume_init() };
        return Ok(Caught {
            signo: ret,
            from_kernel: info.si_code > 0,
        });
    }
}

/// Reset `signals` to their default disposition (an ignored SIGCHLD inherited
/// from the caller would make the kernel reap our child before we can read its
/// status).
pub(crate) fn default_disposition(signals: &[Signal]) -> io::Result<()> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: installing SIG_DFL runs no handler code of ours, so there is
        // no async-signal-safety concern.
        unsafe { nix::sys::signal::sigaction(s, &dfl) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_RDONLY`, `_NOSUID`, `_NODEV`, `_NOEXEC`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set})`: set
/// flags on the mount `fd` refers to and every mount below it, in one call
/// (Linux 5.12; `ENOSYS` before).
pub(crate) fn mount_setattr_recursive(
    fd: &impl std::os::fd::AsRawFd,
    attr_set: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a
    // #[repr(C)] struct alive for the call whose size is passed along; the
    // kernel only reads it. `fd` is borrowed, not closed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}
