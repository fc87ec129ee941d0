//! Every `unsafe` block of cairn lives here: the few system calls that neither
//! `nix` nor `std` wrap safely. Each wrapper is small, takes and returns owned
//! Rust values, and turns `-1` into an `io::Error` right away.
//!
//! - `fork`: unsafe in nix because of threads; sound here with the proof
//!   [`SingleThreaded`] that the process has no other thread.
//! - `pidfd_open(2)`, `close_range(2)`, `capset(2)`: raw syscalls.
//! - `prctl(2)` for the capability bounding and ambient sets.
//! - `sigwaitinfo(2)` (nix's `SigSet::wait` drops the `siginfo_t`) and
//!   resetting signal dispositions with `sigaction(2)`.
//! - `clone(2)` as a fork that creates namespaces, and the descriptor
//!   plumbing of the child before its exec (`dup2` onto fixed numbers).
//! - Adopting a descriptor number given on the command line.
//! - `SCM_RIGHTS` over a unix socket (nix's `socket` feature would add a
//!   dependency to the lock file for two calls).
//! - `ioctl(2)`: window size, controlling terminal, pty unlock, number and
//!   peer (`TIOCGPTPEER`), interface flags.
//! - `seccomp(2)` to install a filter and `keyctl(2)` for a new session
//!   keyring (neither is wrapped by nix).
//! - A TCP or UDP socket that holds a published port (std's sockets cannot
//!   be bound without `SO_REUSEADDR`, or listen with a backlog of our
//!   choice); resetting signal dispositions between fork and exec of a tool.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Proof that the process is single-threaded, which makes [`fork`] and
/// [`clone_fork`] sound: a forked child of a multi-threaded process may
/// find a lock (the allocator's, stdio's) held by a thread that does not
/// exist in it, and deadlock or worse in the next allocation.
///
/// Made once by each binary's main ([`SingleThreaded::check`]), before the
/// helper does anything else, and passed down to every fork. Only the
/// thread running that main exists then, and no code of this crate starts
/// a thread, so it stays the only one; the token is neither `Send` nor
/// `Sync`, so it cannot travel to a thread some other code might start.
/// A forked child is single-threaded too, so the token stays valid there.
#[derive(Debug)]
pub(crate) struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    /// Succeeds only in a single-threaded process (a helper binary), fails
    /// in a multi-threaded one (the `cairn` launcher linking this library).
    ///
    /// `unshare(CLONE_VM)` is the kernel's own answer, without `/proc`: a
    /// no-op for a process that is the only user of its address space,
    /// `EINVAL` for one with other threads (kernel/fork.c,
    /// `check_unshare_flags`). Should the call be refused outright (a
    /// seccomp profile that forbids `unshare`), the `Threads:` line of
    /// `/proc/self/status` decides.
    pub(crate) fn check() -> io::Result<SingleThreaded> {
        let threads = match nix::sched::unshare(CloneFlags::CLONE_VM) {
            Ok(()) => 1,
            Err(nix::errno::Errno::EINVAL) => 2,
            Err(_) => std::fs::read_to_string("/proc/self/status")?
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "no Threads: line in /proc/self/status",
                    )
                })?,
        };
        if threads == 1 {
            Ok(SingleThreaded(std::marker::PhantomData))
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the process has more than one thread: run the helper binary, which forks, instead of calling its main from a threaded program",
            ))
        }
    }
}

/// `fork(2)`, in a process that [`SingleThreaded`] proves single-threaded.
pub(crate) fn fork(_single: &SingleThreaded) -> io::Result<ForkResult> {
    // SAFETY: `SingleThreaded` proves that this process has no other thread
    // (see its doc), so the child cannot inherit a lock held by another
    // thread; the child only makes system calls and execs or exits.
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

/// `close_range(first, ~0, 0)`: close every descriptor from `first` on
/// (Linux 5.9), else each one listed in `/proc/self/fd`. For a forked child
/// that holds no `OwnedFd` of that range it will use again: callers drop
/// or forget theirs first.
pub(crate) fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes integers only; the caller guarantees that no
    // live OwnedFd of this process refers to a descriptor in the range (the
    // helpers' forked children exec or exit without using them), so nothing
    // is closed twice or used after close.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if check(ret).is_ok() {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&fd| fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: as above; the read_dir's own descriptor is closed already
        // (EBADF, ignored).
        unsafe {
            libc::close(fd);
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

/// A signal taken by [`sigwaitinfo`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caught {
    /// The signal number.
    pub(crate) signo: i32,
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
        return Ok(Caught { signo: ret });
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

/// `clone(flags | SIGCHLD)` with no new stack: a `fork(2)` whose child is
/// created in new namespaces in the same step (so with `CLONE_NEWPID` it is
/// pid 1 of its namespace, and nothing has to fork again). Like [`fork`],
/// only in a process that [`SingleThreaded`] proves single-threaded.
pub(crate) fn clone_fork(_single: &SingleThreaded, flags: CloneFlags) -> io::Result<ForkResult> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: without CLONE_VM and with a null stack pointer the child gets a
    // copy-on-write copy of our address space and continues on (its copy of)
    // the current stack, exactly like fork(2); the other pointer arguments
    // (parent/child tid, tls) are null and unused without the flags that
    // would read them. The process is single-threaded (`SingleThreaded`),
    // so no lock can be held by a thread that does not exist in the child.
    let ret =
        check(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })?;
    Ok(if ret == 0 {
        ForkResult::Child
    } else {
        ForkResult::Parent {
            child: Pid::from_raw(ret as i32),
        }
    })
}

/// `CLONE_INTO_CGROUP` (linux/sched.h): clone3 places the child in the
/// cgroup v2 directory `cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, linux/sched.h).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// [`clone_fork`] through clone3(2) with `CLONE_INTO_CGROUP`: the child is
/// born in the cgroup v2 directory `cgroup` (no migration afterwards,
/// which would wait for an RCU grace period). ENOSYS, E2BIG or EINVAL on
/// a kernel without it: the caller clones and moves the child instead.
pub(crate) fn clone_into_cgroup(
    _single: &SingleThreaded,
    flags: CloneFlags,
    cgroup: BorrowedFd<'_>,
) -> io::Result<ForkResult> {
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a live, fully initialised `struct clone_args` of
    // the size passed; without CLONE_VM and with a null stack the child
    // continues on a copy-on-write copy of our address space and stack,
    // exactly like fork(2) (as in `clone_fork`); the pointer fields are
    // null and unused without the flags that would read them; `cgroup` is
    // an open descriptor for the call's duration. The process is
    // single-threaded (`SingleThreaded`), so no lock can be held by a
    // thread that does not exist in the child.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })?;
    Ok(if ret == 0 {
        ForkResult::Child
    } else {
        ForkResult::Parent {
            child: Pid::from_raw(ret as i32),
        }
    })
}

/// In a child about to exec: make each `(source, target)` descriptor
/// `target` a copy of `source`, without close-on-exec. Sources are first
/// copied above every target, so a source whose number is another pair's
/// target is not clobbered before it is used.
///
/// Only for the child of [`clone_fork`] or [`fork`], between the fork and
/// the exec: it replaces whatever the targets were, even descriptors some
/// `OwnedFd` of the process believes it owns.
pub(crate) fn install_fds(pairs: &[(RawFd, RawFd)]) -> io::Result<()> {
    let floor = pairs.iter().map(|&(_, t)| t).max().unwrap_or(0) + 1;
    let mut high = Vec::with_capacity(pairs.len());
    for &(source, _) in pairs {
        // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor (which we
        // leak on purpose: it is close-on-exec and the process execs or
        // exits soon); a bad `source` gives EBADF.
        high.push(check(
            unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, floor) } as libc::c_long
        )? as RawFd);
    }
    for (&(_, target), &h) in pairs.iter().zip(&high) {
        // SAFETY: dup2 replaces `target`. The caller is the child between fork
        // and exec (see above); whatever `target` held is not used again by
        // this process, which execs or exits right after. dup2 clears
        // close-on-exec on `target`.
        check(unsafe { libc::dup2(h, target) } as libc::c_long)?;
    }
    Ok(())
}

/// Take ownership of descriptor `fd`, given by number on the command line
/// (`--sync-fd`, `--console-socket`, `--error-fd`), and mark it
/// close-on-exec. Fails with `EBADF` when it is not open, and refuses 0-2.
///
/// The caller must adopt each number once (each helper parses its options
/// once and adopts right away).
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD/F_SETFD only read and change the descriptor's flags; a
    // closed number gives EBADF.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)?;
    // SAFETY: as above.
    check(
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags as libc::c_int | libc::FD_CLOEXEC) }
            as libc::c_long,
    )?;
    // SAFETY: the descriptor is open (checked above) and was handed to us by
    // number: std owns only 0-2, and the helpers open no other descriptor
    // before parsing their options, so nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write all of `data` to descriptor number `fd`, which this process may
/// not own (cairn-mount's `--error-fd`, kept open for the next program).
pub(crate) fn write_raw(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: write(2) reads `data.len()` bytes from a live slice; a bad
        // descriptor gives EBADF, nothing else is touched.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        match check(n as libc::c_long) {
            Ok(n) => data = &data[n as usize..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Set `signals` to be ignored (an ignored signal stays ignored across
/// exec: the caller's child must reset them, see [`default_disposition`]).
pub(crate) fn ignore_signals(signals: &[Signal]) -> io::Result<()> {
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: SIG_IGN runs no handler code of ours.
        unsafe { nix::sys::signal::sigaction(s, &ign) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// A connected pair of unix stream sockets, both close-on-exec.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: the kernel writes two descriptors into the two-int array.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } as libc::c_long)?;
    // SAFETY: both are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one `SCM_RIGHTS` control message carrying one descriptor
/// (`CMSG_SPACE(sizeof(int))` is 24 on 64-bit Linux), suitably aligned.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Send `fd` over the unix socket `sock` (`SCM_RIGHTS`, with one byte of
/// payload so the receiver can tell it from end-of-file).
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; 64]);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `buf`, which is aligned and larger than
    // `space`, so CMSG_FIRSTHDR returns a pointer inside it (non-null since
    // msg_controllen >= sizeof(cmsghdr)); the writes stay within the first
    // CMSG_SPACE(sizeof(int)) bytes. sendmsg only reads `msg`, `iov`, `byte`
    // and `buf`, all alive for the call.
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    check(n as libc::c_long).map(drop)
}

/// Receive one descriptor sent by [`send_fd`] (close-on-exec); `None` at
/// end-of-file (the peer closed without sending).
pub(crate) fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    msg.msg_controllen = buf.0.len() as _;
    let n = loop {
        // SAFETY: the kernel writes at most `iov_len` bytes into `byte` and at
        // most `msg_controllen` bytes into `buf`, both alive for the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        match check(n as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let mut received = None;
    // SAFETY: after recvmsg, msg_control/msg_controllen describe the control
    // messages the kernel wrote into `buf`; CMSG_FIRSTHDR/CMSG_NXTHDR walk
    // them within those bounds, and an SCM_RIGHTS message carries ints.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    // The kernel installed each descriptor for us: own them
                    // all, keep the first, close any extra.
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if received.is_none() {
                        received = Some(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    received.map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a message without a descriptor on the console socket",
        )
    })
}

/// A terminal's window size (`struct winsize`).
pub(crate) type WinSize = libc::winsize;

/// A window size of `rows` by `cols` (no pixel sizes).
pub(crate) fn winsize(rows: u16, cols: u16) -> WinSize {
    WinSize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// `ioctl(TIOCGWINSZ)`: the window size of the terminal `fd`.
pub(crate) fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<WinSize> {
    // SAFETY: an all-zero winsize is valid; the kernel fills it in.
    let mut ws: WinSize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one struct winsize through the pointer, which
    // points at `ws`, alive for the call.
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws as *mut WinSize) }
            as libc::c_long,
    )?;
    Ok(ws)
}

/// `ioctl(TIOCSWINSZ)`: set the window size of the terminal `fd` (the
/// kernel sends SIGWINCH to its foreground process group).
pub(crate) fn set_winsize(fd: BorrowedFd<'_>, ws: &WinSize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer.
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const WinSize) }
            as libc::c_long,
    )
    .map(drop)
}

/// `ioctl(TIOCSCTTY, 0)`: make the terminal `fd` the controlling terminal
/// of this session (whose leader we must be, after `setsid`).
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument and touches no memory.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) } as libc::c_long)
        .map(drop)
}

/// `ioctl(TIOCSPTLCK, 0)`: unlock the slave of the pty master `fd`, so it
/// can be opened (what `unlockpt(3)` does).
pub(crate) fn unlock_pty(fd: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at
    // `unlock`, alive for the call.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const libc::c_int,
        )
    } as libc::c_long)
    .map(drop)
}

/// `ioctl(TIOCGPTN)`: the number N of the pty master `fd`'s slave
/// (`/dev/pts/N` of its devpts).
pub(crate) fn pty_number(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which
    // points at `n`, alive for the call.
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n as *mut libc::c_uint) }
            as libc::c_long,
    )?;
    Ok(n)
}

/// `ioctl(TIOCGPTPEER, flags)` (Linux 4.13): open the slave of the pty
/// master `fd` without any path lookup, so nothing mounted or linked in
/// the container's `/dev/pts` can stand in for it (the runc CVE-2016-9962
/// class of races on `ptsname`).
pub(crate) fn pty_peer(fd: BorrowedFd<'_>, flags: nix::fcntl::OFlag) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes the open flags as an integer argument and
    // returns a new descriptor or -1; it touches no memory of ours.
    let peer = check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTPEER, flags.bits()) } as libc::c_long,
    )?;
    // SAFETY: on success the kernel returned a fresh descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(peer as RawFd) })
}

/// Bring the network interface `lo` of the current network namespace up
/// (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`), as `ip link set lo
/// up` does.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes integers and returns a new descriptor or -1.
    let sock =
        check(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
                as libc::c_long,
        )?;
    // SAFETY: a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock as RawFd) };
    // SAFETY: an all-zero ifreq is valid (empty name, zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: both ioctls read and write one struct ifreq through the pointer,
    // which points at `req`, alive for the calls; reading the `ifru_flags`
    // member of the union is valid for any bit pattern (a c_short).
    unsafe {
        check(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut libc::ifreq,
        ) as libc::c_long)?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &mut req as *mut libc::ifreq,
        ) as libc::c_long)?;
    }
    Ok(())
}

/// Let the program `cmd` starts inherit `fd` under the same number: its
/// close-on-exec flag is cleared in the child only, between fork and exec,
/// so other programs started meanwhile by other threads never get it (as
/// they would if it were opened without close-on-exec).
pub(crate) fn inherit_fd(cmd: &mut std::process::Command, fd: RawFd) {
    use std::os::unix::process::CommandExt as _;
    let run = move || -> io::Result<()> {
        // SAFETY: fcntl is async-signal-safe and only changes the flags of a
        // descriptor; nothing here allocates or takes a lock.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two fcntl calls, no
    // allocation, no locks (io::Error::last_os_error builds an Os variant
    // without allocating).
    unsafe {
        cmd.pre_exec(run);
    }
}

/// `_exit(2)`: end the process now, without running exit handlers or
/// flushing stdio buffers that a forked child shares with its parent.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: install a classic BPF
/// filter on the calling thread (the helpers are single-threaded, so on the
/// process); it stays across `fork` and `execve` (seccomp(2)).
pub(crate) fn seccomp_set_mode_filter(prog: &[libc::sock_filter], flags: u32) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` initialised sock_filter entries that
    // live for the whole call; the kernel copies the program before it
    // returns and never writes through the pointer.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: give the calling process a
/// new anonymous session keyring, so keys of the caller's session (and the
/// user keyring linked from it) are no longer possessed (keyrings(7)).
pub(crate) fn join_new_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: with a NULL name keyctl reads no memory of ours; it takes
    // integers only and returns the new keyring's serial or -1.
    check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    })
    .map(drop)
}

/// A socket that holds the TCP or UDP port `addr` (close-on-exec), as
/// conmon holds the published ports for podman; `EADDRINUSE` means that
/// someone already holds it. TCP: `SO_REUSEADDR` (a connection of an
/// earlier container in TIME_WAIT on the port must not count as taken)
/// and listening with a backlog of 1, since only a listening socket keeps
/// another `SO_REUSEADDR` bind off the port (`inet_csk_bind_conflict`);
/// it is never accepted from, and the firewall's DNAT sends the port's
/// traffic to the container before it could reach it. UDP: a plain bind
/// (`SO_REUSEADDR` would let others share it).
pub(crate) fn bind_port(addr: std::net::SocketAddr, tcp: bool) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = if tcp {
        libc::SOCK_STREAM
    } else {
        libc::SOCK_DGRAM
    };
    // SAFETY: socket(2) takes integers and returns a new descriptor or -1.
    let fd = check(unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) } as libc::c_long)?;
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let on: libc::c_int = 1;
    if tcp {
        // SAFETY: SO_REUSEADDR reads one int through the pointer, which
        // points at `on`, alive for the call.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        } as libc::c_long)?;
    }
    match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: an all-zero sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            // SAFETY: bind reads `size_of::<sockaddr_in>()` bytes through the
            // pointer, which points at `sa`, alive for the call.
            check(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            } as libc::c_long)?;
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: IPV6_V6ONLY reads one int through the pointer, which
            // points at `on`, alive for the call. (Only the v6 port is held:
            // a v4 mapping is held by its own socket.)
            check(unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            } as libc::c_long)?;
            // SAFETY: an all-zero sockaddr_in6 is valid.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            sa.sin6_scope_id = a.scope_id();
            // SAFETY: bind reads `size_of::<sockaddr_in6>()` bytes through
            // the pointer, which points at `sa`, alive for the call.
            check(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            } as libc::c_long)?;
        }
    }
    if tcp {
        // SAFETY: listen takes integers only.
        check(unsafe { libc::listen(fd.as_raw_fd(), 1) } as libc::c_long)?;
    }
    Ok(fd)
}

/// Give the program `cmd` starts the default disposition of `signals`
/// (the monitor ignores terminal signals, and an ignored signal stays
/// ignored across exec: a network tool that ignores SIGTERM outlives its
/// teardown). std already empties the signal mask of the child.
pub(crate) fn default_signals_on_exec(cmd: &mut std::process::Command, signals: &'static [Signal]) {
    use std::os::unix::process::CommandExt as _;
    let run = move || -> io::Result<()> {
        for &s in signals {
            // SAFETY: signal(2) with SIG_DFL is async-signal-safe, installs
            // no handler code of ours and touches no memory of ours.
            if unsafe { libc::signal(s as libc::c_int, libc::SIG_DFL) } == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it calls signal(2) only, no
    // allocation, no locks.
    unsafe {
        cmd.pre_exec(run);
    }
}

// ---- bpf (cgroup v2 device programs) ----
//
// The few `bpf(2)` commands a cgroup v2 device controller needs: load a
// program, attach it to a cgroup, list and detach what is attached there.
// libc has no eBPF definitions (its `BPF_*` are classic BPF), so the
// constants below are the kernel's, from include/uapi/linux/bpf.h.

/// `BPF_PROG_LOAD`, `BPF_PROG_ATTACH`, `BPF_PROG_DETACH`,
/// `BPF_PROG_GET_FD_BY_ID`, `BPF_PROG_QUERY` (`enum bpf_cmd`, linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` (`enum bpf_prog_type`, linux/bpf.h).
pub(crate) const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (`enum bpf_attach_type`, linux/bpf.h).
pub(crate) const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI` (linux/bpf.h): other programs may be attached to
/// the same cgroup (and its descendants may have their own).
pub(crate) const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// `struct bpf_insn` (linux/bpf.h): one eBPF instruction, 8 bytes. The two
/// register numbers share a byte as C bitfields (`dst_reg:4, src_reg:4`),
/// whose order follows the byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct BpfInsn {
    /// Class, operation and source (`BPF_ALU | BPF_AND | BPF_K`).
    pub(crate) code: u8,
    regs: u8,
    /// Jump offset in instructions from the next one, or memory offset.
    pub(crate) off: i16,
    /// Immediate operand.
    pub(crate) imm: i32,
}

impl BpfInsn {
    /// An instruction on registers `dst` and `src` (0..=10).
    pub(crate) const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0xf);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0xf);
        BpfInsn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// The destination register.
    #[cfg(test)]
    pub(crate) const fn dst(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs & 0xf;
        #[cfg(target_endian = "big")]
        return self.regs >> 4;
    }

    /// The source register.
    #[cfg(test)]
    pub(crate) const fn src(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs >> 4;
        #[cfg(target_endian = "big")]
        return self.regs & 0xf;
    }
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to
/// `expected_attach_type` (which only socket program types need); the
/// kernel reads `size_of` bytes and takes the rest as zero. These attr
/// structs have no implicit padding, so `Default` zeroes every byte the
/// kernel reads.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` member of `union bpf_attr`,
/// up to `replace_bpf_fd`.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` member of `union bpf_attr`, up to `prog_cnt` (and
/// the padding after it, so the size is a multiple of 8 as in C).
#[repr(C)]
#[derive(Default)]
struct BpfProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The `BPF_*_GET_FD_BY_ID` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BpfGetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
/// `attr` must be the member of `union bpf_attr` that `cmd` reads, every
/// pointer in it valid for the kernel to read (or write, where `cmd`
/// writes through it) for the lengths given beside it.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for the pointers inside `attr`; `attr`
    // itself is valid for `size_of::<T>()` bytes of reads and writes.
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    })
}

/// Own the descriptor a `bpf(2)` command that makes one returned (the
/// kernel makes them close-on-exec).
///
/// # Safety
/// `ret` must be such a return value, not yet owned by anything.
unsafe fn bpf_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the caller vouches that `ret` is a new descriptor nothing
    // else owns.
    unsafe { OwnedFd::from_raw_fd(ret as RawFd) }
}

/// `BPF_PROG_LOAD`: load `insns` as a program of type `kind` (e.g.
/// [`BPF_PROG_TYPE_CGROUP_DEVICE`]) under `license`, named `cairn_devices`
/// (as `bpftool prog` shows it). When the kernel refuses it for another
/// reason than a missing privilege, the load is tried again with a log
/// buffer, and the verifier's log becomes part of the error.
pub(crate) fn bpf_prog_load(
    kind: u32,
    insns: &[BpfInsn],
    license: &std::ffi::CStr,
) -> io::Result<OwnedFd> {
    let insn_cnt =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"cairn_devices");
    let attr = || BpfProgLoadAttr {
        prog_type: kind,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..BpfProgLoadAttr::default()
    };
    // SAFETY: `insns` and `license` outlive the call and are only read;
    // `insn_cnt` is the length of `insns`; no log buffer is given.
    let first = match unsafe { bpf(BPF_PROG_LOAD, &mut attr()) } {
        // SAFETY: BPF_PROG_LOAD returns a new program descriptor.
        Ok(fd) => return Ok(unsafe { bpf_fd(fd) }),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Err(e),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 20];
    let mut with_log = BpfProgLoadAttr {
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..attr()
    };
    // SAFETY: as above, and `log_buf` points at `log_size` writable bytes
    // that outlive the call.
    match unsafe { bpf(BPF_PROG_LOAD, &mut with_log) } {
        // SAFETY: BPF_PROG_LOAD returns a new program descriptor.
        Ok(fd) => Ok(unsafe { bpf_fd(fd) }),
        Err(again) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim();
            if text.is_empty() {
                return Err(first);
            }
            let errno = again
                .raw_os_error()
                .map_or(first, io::Error::from_raw_os_error);
            Err(io::Error::new(
                errno.kind(),
                format!("{errno}; the verifier said: {text}"),
            ))
        }
    }
}

/// `BPF_PROG_ATTACH`: attach the program `prog` to `target` (a cgroup
/// directory) for `attach_type`, with `flags` (`BPF_F_ALLOW_MULTI`).
pub(crate) fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let mut attr = BpfProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        ..BpfProgAttachAttr::default()
    };
    // SAFETY: the attach member holds descriptors and integers only; the
    // descriptors are borrowed for the call, not closed.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// `BPF_PROG_DETACH` of the program `prog` from `target` for
/// `attach_type` (the program's own descriptor names which one, as a
/// cgroup attached with `BPF_F_ALLOW_MULTI` may hold several).
pub(crate) fn bpf_prog_detach2(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = BpfProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..BpfProgAttachAttr::default()
    };
    // SAFETY: descriptors and integers only, borrowed for the call.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// `BPF_PROG_QUERY`: the ids of the programs attached to `target` (a
/// cgroup directory) for `attach_type`, in the order they run.
pub(crate) fn bpf_prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    // A cgroup holds at most 64 programs per attach type
    // (BPF_CGROUP_MAX_PROGS); ENOSPC with the real count if that changes.
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = BpfProgQueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..BpfProgQueryAttr::default()
        };
        // SAFETY: `prog_ids` points at `prog_cnt` writable u32s that
        // outlive the call; the kernel writes at most that many.
        match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC) && attr.prog_cnt as usize > ids.len() =>
            {
                ids = vec![0; attr.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
}

/// `BPF_PROG_GET_FD_BY_ID`: a descriptor of the loaded program `id`.
pub(crate) fn bpf_prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = BpfGetFdByIdAttr {
        id,
        ..BpfGetFdByIdAttr::default()
    };
    // SAFETY: integers only.
    let fd = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returns a new program descriptor.
    Ok(unsafe { bpf_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threaded_process_gets_no_proof() {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || wait.recv());
        let e = SingleThreaded::check().expect_err("two threads run");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        drop(done);
        let _ = other.join();
    }
}
