//! Non-blocking descriptor I/O shared by the two copy loops: the
//! monitor's (container output to the log, our stdin to the container) and
//! cairn-enter's caller side (the command's output to our stdio, our stdin
//! to the command).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// `write` all of `data`, waiting when the descriptor is non-blocking and
/// full.
pub(crate) fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let _ = poll(
                    &mut [PollFd::new(fd, PollFlags::POLLOUT)],
                    PollTimeout::NONE,
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Set `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: &impl AsFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Result of one non-blocking read.
pub(crate) enum Read {
    /// This many bytes.
    Data(usize),
    /// Nothing now.
    Empty,
    /// End of file (or EIO from a pty master whose slaves are all closed).
    End,
}

/// Read what `fd` has now into `buf`, retrying on `EINTR`; any error but
/// `EAGAIN` counts as the end.
pub(crate) fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Read {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(0) => return Read::End,
            Ok(n) => return Read::Data(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Read::Empty,
            Err(_) => return Read::End,
        }
    }
}

/// What [`write_pending`] made of the bytes waiting for a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// All written.
    All,
    /// The descriptor is full; the rest waits for `POLLOUT`.
    Blocked,
    /// Writing failed (the reader closed its end: `EPIPE`; the pty is gone:
    /// `EIO`); the rest was dropped.
    Broken,
}

/// Write as much of `pending` to the non-blocking `fd` as it takes now,
/// removing what was written.
pub(crate) fn write_pending(fd: BorrowedFd<'_>, pending: &mut Vec<u8>) -> Drained {
    while !pending.is_empty() {
        match nix::unistd::write(fd, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Drained::Blocked,
            Err(_) => {
                pending.clear();
                return Drained::Broken;
            }
        }
    }
    Drained::All
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_bytes_drain_block_and_break() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        set_nonblocking(&w).unwrap();
        let mut pending = b"hello".to_vec();
        assert_eq!(write_pending(w.as_fd(), &mut pending), Drained::All);
        assert!(pending.is_empty());
        let mut buf = [0u8; 8];
        assert!(matches!(read_some(r.as_fd(), &mut buf), Read::Data(5)));

        // More than a pipe holds (64 KiB by default): the rest waits.
        let mut pending = vec![b'x'; 1 << 20];
        assert_eq!(write_pending(w.as_fd(), &mut pending), Drained::Blocked);
        assert!(!pending.is_empty() && pending.len() < 1 << 20);

        // The reader is gone: EPIPE (SIGPIPE is ignored in Rust programs).
        // Another test in this process may fork at any moment, and the child
        // holds a copy of `r` until it execs (O_CLOEXEC acts only at exec):
        // until then the pipe is still full, not broken. Wait that out.
        drop(r);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let drained = loop {
            match write_pending(w.as_fd(), &mut pending) {
                Drained::Blocked if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => break other,
            }
        };
        assert_eq!(drained, Drained::Broken);
        assert!(pending.is_empty());
    }
}
