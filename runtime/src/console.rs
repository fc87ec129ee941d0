//! The entered command's own terminal or pipes, and `cairn-enter`'s copy
//! between them and the caller's stdio.
//!
//! A command entered into a container never gets a descriptor of the
//! caller's. A terminal handed in can be typed into with `TIOCSTI` (the
//! CVE-2016-7545 class: after `exec` returned, the caller's shell ran what
//! the container pushed into its input), and any descriptor reaches the
//! caller's files. So the command runs in a session of its own on either
//!
//! - a pty of the container's own devpts (`--tty`), made its controlling
//!   terminal: the master is opened by `cairn-enter` after joining the mount
//!   namespace, from `/dev/pts/ptmx` resolved one component at a time
//!   without following symlinks or crossing into another mount, and refused
//!   unless it is devpts's ptmx (char 5:2 on a devpts); the slave comes from
//!   `TIOCGPTPEER`, with no path lookup at all; or
//! - pipes: stdin a pipe (`--stdin`) or `/dev/null`, stdout and stderr pipes.
//!
//! `cairn-enter` itself never joins the container: it keeps the caller's
//! stdio and forks a joiner that has none of it ([`split`],
//! [`JoinerSide::take_over`]: a session of its own, the host's `/dev/null`
//! or pipes on 0-2), which joins, opens the pty and hands its master back
//! over a socket, and forks the command. `cairn-enter` copies between the
//! command's terminal or pipes and its own stdio in one `poll(2)` loop
//! that also takes signals from a signalfd: SIGCHLD ends it, SIGWINCH
//! gives the pty the caller's window size, the others are passed on to the
//! command (which, in its own session, no longer gets the caller's
//! terminal signals). While attached with `--tty`, the caller's terminal is
//! raw (with `--stdin`) or has output processing off (without), and is
//! restored on every way out but SIGKILL.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{fstat, makedev, Mode, SFlag};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context as _, Error, Result};
use crate::fdio::{read_some, set_nonblocking, write_all_fd, write_pending, Drained, Read};
use crate::monitor::terminal_size;

/// Bytes copied at a time.
const CHUNK: usize = 16 * 1024;

/// devpts's `ptmx` (`/dev/pts/ptmx`, major 5 minor 2).
const PTMX_MAJOR: u64 = 5;
const PTMX_MINOR: u64 = 2;
/// Majors of UNIX98 pty slaves: 136 + N / 256, minor N % 256.
const PTS_MAJOR: u64 = 136;

/// The end-of-file character of a terminal in its default settings (^D):
/// what the pty gets when the caller's input ends.
const VEOF: u8 = 4;

/// How the command is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// A pty of the container's devpts instead of pipes.
    pub tty: bool,
    /// Copy the caller's stdin to the command (else it reads `/dev/null`,
    /// or, with a tty, a terminal nobody types into).
    pub stdin: bool,
}

/// A new pty: master (non-blocking) and slave (blocking, as a command
/// expects), both close-on-exec.
pub(crate) struct Pty {
    pub(crate) master: OwnedFd,
    pub(crate) slave: OwnedFd,
    /// N of `/dev/pts/N`.
    pub(crate) number: u32,
}

/// `openat2(dir, name, RESOLVE_NO_SYMLINKS [| RESOLVE_NO_XDEV])` of one
/// path component; before Linux 5.6 (`ENOSYS`), `openat` with `O_NOFOLLOW`
/// (the caller checks what it got either way).
fn open_component(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlag,
    same_mount: bool,
) -> nix::Result<OwnedFd> {
    let mut resolve = ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH;
    if same_mount {
        resolve |= ResolveFlag::RESOLVE_NO_XDEV;
    }
    let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    match nix::fcntl::openat2(dir, name, OpenHow::new().flags(flags).resolve(resolve)) {
        Err(Errno::ENOSYS) => nix::fcntl::openat(dir, name, flags, Mode::empty()),
        other => other,
    }
}

impl Pty {
    /// A new pty of the devpts mounted on `/dev/pts` of the current root
    /// (after joining a container's mount namespace and root: the
    /// container's), which the container's own processes may have
    /// rearranged: no symlink is followed, `/dev/pts` must be a devpts, and
    /// `ptmx` the node of that same mount with devpts's device number.
    pub(crate) fn open() -> Result<Pty> {
        let refuse = |what: &str, path: &str| {
            Error::Usage(format!(
                "refusing {path} as the terminal multiplexer: {what}; the container's /dev/pts must be its own devpts (cairn-mount --dev minimal)"
            ))
        };
        let mut dir = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", "/")?;
        let mut path = String::new();
        for name in ["dev", "pts"] {
            path.push('/');
            path.push_str(name);
            dir = open_component(dir.as_fd(), name, OFlag::O_PATH | OFlag::O_DIRECTORY, false)
                .map_err(|e| match e {
                    Errno::ELOOP | Errno::ENOTDIR => refuse("a symlink or not a directory", &path),
                    e => Error::sys("open", &path, e),
                })?;
        }
        let fs = nix::sys::statfs::fstatfs(&dir).ctx("statfs", "/dev/pts")?;
        if fs.filesystem_type() != nix::sys::statfs::DEVPTS_SUPER_MAGIC {
            return Err(refuse("not a devpts file system", "/dev/pts"));
        }
        let ptmx = "/dev/pts/ptmx";
        let master = open_component(
            dir.as_fd(),
            "ptmx",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            true,
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::EXDEV => refuse("a symlink or another mount", ptmx),
            e => Error::sys("open", ptmx, e),
        })?;
        expect_char_device(&master, makedev(PTMX_MAJOR, PTMX_MINOR))
            .map_err(|what| refuse(&what, ptmx))?;
        crate::sys::unlock_pty(master.as_fd()).ctx("unlock the pty of", ptmx)?;
        let number = crate::sys::pty_number(master.as_fd()).ctx("get the pty number of", ptmx)?;
        let slave_flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let name = format!("/dev/pts/{number}");
        let slave = match crate::sys::pty_peer(master.as_fd(), slave_flags) {
            Ok(s) => s,
            // Before Linux 4.13: by name, checked like ptmx.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {
                let s = open_component(dir.as_fd(), &number.to_string(), slave_flags, true)
                    .ctx("open", &name)?;
                let dev = makedev(PTS_MAJOR + u64::from(number / 256), u64::from(number % 256));
                expect_char_device(&s, dev).map_err(|what| refuse(&what, &name))?;
                s
            }
            Err(e) => return Err(Error::sys("open the slave (TIOCGPTPEER) of", ptmx, e)),
        };
        Ok(Pty {
            master,
            slave,
            number,
        })
    }

    /// `/dev/pts/N`, as the command sees it.
    pub(crate) fn name(&self) -> String {
        format!("/dev/pts/{}", self.number)
    }

    /// Give the slave to `uid` and group `gid` (the image's `tty` group),
    /// as a login does; a user (or group) not mapped in the current user
    /// namespace leaves it as devpts made it.
    pub(crate) fn give_to(&self, uid: u32, gid: Option<u32>) -> Result<()> {
        match nix::unistd::fchown(
            &self.slave,
            Some(nix::unistd::Uid::from_raw(uid)),
            gid.map(nix::unistd::Gid::from_raw),
        ) {
            Ok(()) | Err(Errno::EINVAL) => Ok(()),
            Err(e) => Err(Error::sys("chown", self.name(), e)),
        }
    }
}

/// `Err(why)` unless `fd` is the character device `dev`.
fn expect_char_device(fd: &OwnedFd, dev: libc::dev_t) -> std::result::Result<(), String> {
    let st = fstat(fd).map_err(|e| format!("fstat: {e}"))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFCHR || st.st_rdev != dev {
        return Err(format!(
            "not the expected character device {}:{}",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        ));
    }
    Ok(())
}

/// The command's side: its descriptors 0, 1 and 2 (and with a tty, its
/// controlling terminal), held until the fork.
pub(crate) struct CommandIo {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    tty: bool,
}

impl CommandIo {
    /// In the forked child, before it gives up privileges: a new session
    /// (no controlling terminal, the caller's process group left), the pty
    /// as controlling terminal, and the descriptors on 0, 1 and 2.
    pub(crate) fn install(&self) -> Result<()> {
        nix::unistd::setsid().ctx("start a new session for", "the command")?;
        if self.tty {
            crate::sys::set_controlling_tty(self.stdin.as_fd())
                .ctx("make the controlling terminal of the command", "its pty")?;
        }
        crate::sys::install_fds(&[
            (self.stdin.as_raw_fd(), 0),
            (self.stdout.as_raw_fd(), 1),
            (self.stderr.as_raw_fd(), 2),
        ])
        .ctx("set up the stdin, stdout and stderr of", "the command")
    }
}

/// Our side: what is copied from and to the caller's stdio.
pub(crate) struct CallerIo {
    /// Output of the command: the pty master, or the stdout and stderr pipes.
    outputs: Vec<Output>,
    /// Where the caller's stdin goes (with `stdin`): the master, or the
    /// write end of the stdin pipe.
    input: Option<OwnedFd>,
    tty: bool,
}

struct Output {
    fd: OwnedFd,
    to_stderr: bool,
}

/// The joiner's side of a [`split`]: its own stdio (stdin the host's
/// `/dev/null` or a pipe, stdout and stderr pipes) and, with a tty, the
/// socket on which it hands the pty's master back.
pub(crate) struct JoinerSide {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    sock: Option<OwnedFd>,
}

/// The caller's side of a [`split`]: the other ends, kept by the process
/// that holds the caller's stdio and never joins anything.
pub(crate) struct CallerSide {
    plan: Plan,
    out: OwnedFd,
    err: OwnedFd,
    input: Option<OwnedFd>,
    sock: Option<OwnedFd>,
}

/// Everything `cairn-enter` creates before it forks the process that joins
/// the container (all of it before any path of the container can be
/// opened): `null`, the host's `/dev/null`; pipes; a socket for the pty.
pub(crate) fn split(plan: Plan, null: OwnedFd) -> Result<(CallerSide, JoinerSide)> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("create a pipe in", "cairn-enter");
    let (stdin, input) = if plan.stdin && !plan.tty {
        let (r, w) = pipe()?;
        set_nonblocking(&w).ctx("set O_NONBLOCK on", "the stdin pipe")?;
        (r, Some(w))
    } else {
        (null, None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    for fd in [&out_r, &err_r] {
        set_nonblocking(fd).ctx("set O_NONBLOCK on", "an output pipe")?;
    }
    let (ours, theirs) = if plan.tty {
        let (a, b) = crate::sys::socketpair().ctx("create a socket pair in", "cairn-enter")?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    Ok((
        CallerSide {
            plan,
            out: out_r,
            err: err_r,
            input,
            sock: ours,
        },
        JoinerSide {
            stdin,
            stdout: out_w,
            stderr: err_w,
            sock: theirs,
        },
    ))
}

impl JoinerSide {
    /// In the forked joiner, first thing: a session of its own (no
    /// controlling terminal), its stdio on 0-2, the socket (if any) on
    /// `3 + keep`, every other descriptor closed. Returns the socket.
    pub(crate) fn take_over(self, keep: u32) -> Result<Option<OwnedFd>> {
        nix::unistd::setsid().ctx("start a new session for", "cairn-enter")?;
        let sock_at = 3 + keep as i32;
        let mut pairs = vec![
            (self.stdin.as_raw_fd(), 0),
            (self.stdout.as_raw_fd(), 1),
            (self.stderr.as_raw_fd(), 2),
        ];
        if let Some(sock) = &self.sock {
            pairs.push((sock.as_raw_fd(), sock_at));
        }
        crate::sys::install_fds(&pairs).ctx("set up the descriptors of", "cairn-enter")?;
        let has_sock = self.sock.is_some();
        // Their old numbers are closed below or now hold the installed ones.
        std::mem::forget(self);
        let first_closed = if has_sock { sock_at + 1 } else { sock_at };
        crate::sys::close_from(first_closed as u32)
            .ctx("close the inherited descriptors of", "cairn-enter")?;
        if has_sock {
            crate::sys::adopt_fd(sock_at)
                .map(Some)
                .ctx("adopt the console socket of", "cairn-enter")
        } else {
            Ok(None)
        }
    }
}

impl CommandIo {
    /// The command's stdio: the joiner's own 0, 1 and 2 (see
    /// [`JoinerSide::take_over`]), or the pty's slave.
    pub(crate) fn new(pty: Option<&Pty>) -> Result<CommandIo> {
        let dup = |fd: BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .ctx("dup a descriptor of", "cairn-enter")
        };
        match pty {
            Some(p) => Ok(CommandIo {
                stdin: dup(p.slave.as_fd())?,
                stdout: dup(p.slave.as_fd())?,
                stderr: dup(p.slave.as_fd())?,
                tty: true,
            }),
            None => Ok(CommandIo {
                stdin: dup(std::io::stdin().as_fd())?,
                stdout: dup(std::io::stdout().as_fd())?,
                stderr: dup(std::io::stderr().as_fd())?,
                tty: false,
            }),
        }
    }
}

impl CallerSide {
    /// What [`attach`] copies: with a tty, the master the joiner sends
    /// (given the caller's window size before the joiner goes on; none if
    /// the joiner failed before it had one), then the joiner's own output
    /// pipes (its error messages), and the stdin pipe.
    pub(crate) fn receive(self) -> Result<CallerIo> {
        let mut outputs = Vec::new();
        let mut input = self.input;
        let mut tty = false;
        if let Some(sock) = &self.sock {
            if let Some(master) = crate::sys::recv_fd(sock.as_fd())
                .ctx("receive the pty from", "cairn-enter's joiner")?
            {
                set_nonblocking(&master).ctx("set O_NONBLOCK on", "the pty master")?;
                if let Some(size) = terminal_size() {
                    let _ = crate::sys::set_winsize(
                        master.as_fd(),
                        &crate::sys::winsize(size.rows, size.cols),
                    );
                }
                if self.plan.stdin {
                    input = Some(master.try_clone().ctx("dup", "the pty master")?);
                }
                outputs.push(Output {
                    fd: master,
                    to_stderr: false,
                });
                tty = true;
            }
            // The joiner goes on once the size is set (or we are gone).
            let _ = nix::unistd::write(sock, b"k");
        }
        outputs.push(Output {
            fd: self.out,
            to_stderr: false,
        });
        outputs.push(Output {
            fd: self.err,
            to_stderr: true,
        });
        Ok(CallerIo {
            outputs,
            input,
            tty,
        })
    }
}

/// Which of the caller's descriptors had its terminal settings changed.
#[derive(Clone, Copy)]
enum Which {
    Stdin,
    Stdout,
}

impl Which {
    fn is_tty(self) -> bool {
        match self {
            Which::Stdin => nix::unistd::isatty(std::io::stdin().as_fd()),
            Which::Stdout => nix::unistd::isatty(std::io::stdout().as_fd()),
        }
        .unwrap_or(false)
    }

    fn get(self) -> nix::Result<Termios> {
        match self {
            Which::Stdin => termios::tcgetattr(std::io::stdin().as_fd()),
            Which::Stdout => termios::tcgetattr(std::io::stdout().as_fd()),
        }
    }

    fn set(self, how: SetArg, t: &Termios) -> nix::Result<()> {
        match self {
            Which::Stdin => termios::tcsetattr(std::io::stdin().as_fd(), how, t),
            Which::Stdout => termios::tcsetattr(std::io::stdout().as_fd(), how, t),
        }
    }
}

/// The caller's terminal settings while changed; restored on drop (also
/// when an error or a panic unwinds through the copy loop).
struct TermGuard {
    saved: Option<(Which, Termios)>,
}

impl TermGuard {
    /// With a tty: raw mode on the caller's stdin when it is copied and is
    /// a terminal, else output processing off on its stdout (the pty
    /// already turned `\n` into `\r\n`; the caller's terminal must not do
    /// it again).
    fn set(caller: &CallerIo) -> TermGuard {
        let mut guard = TermGuard { saved: None };
        if !caller.tty {
            return guard;
        }
        let (which, change): (Which, fn(&mut Termios)) =
            if caller.input.is_some() && Which::Stdin.is_tty() {
                (Which::Stdin, termios::cfmakeraw)
            } else if Which::Stdout.is_tty() {
                (Which::Stdout, |t| {
                    t.output_flags.remove(termios::OutputFlags::OPOST)
                })
            } else {
                return guard;
            };
        if let Ok(saved) = which.get() {
            let mut t = saved.clone();
            change(&mut t);
            if which.set(SetArg::TCSANOW, &t).is_ok() {
                guard.saved = Some((which, saved));
            }
        }
        guard
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some((which, saved)) = self.saved.take() {
            // TCSADRAIN: what we wrote is shown with the raw settings first.
            let _ = which.set(SetArg::TCSADRAIN, &saved);
        }
    }
}

/// What a poll entry stands for.
#[derive(Clone, Copy)]
enum Src {
    Signals,
    Output(usize),
    Stdin,
    Input,
}

/// What one copy of an output did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    /// Some bytes (there may be more).
    Some,
    /// Nothing to read now.
    Nothing,
    /// The output ended, or the caller no longer takes it.
    End,
}

/// The copy loop's state.
struct Session {
    child: Pid,
    status: Option<i32>,
    signals: SignalFd,
    outputs: Vec<Output>,
    input: Option<OwnedFd>,
    /// Still reading the caller's stdin.
    stdin_open: bool,
    /// Read from the caller, not yet written to `input`.
    pending: Vec<u8>,
    tty: bool,
    buf: Vec<u8>,
}

/// `cairn-enter`'s parent after the fork: copy between `caller` and our
/// stdio, pass `forwarded` signals (blocked by the caller, with SIGCHLD) on
/// to `child`, until it ends; its exit code, or 128 + N when signal N
/// killed it.
pub(crate) fn attach(caller: CallerIo, child: Pid, forwarded: &SigSet) -> Result<i32> {
    let signals = SignalFd::with_flags(forwarded, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .ctx("create a signalfd in", "cairn-enter")?;
    let _term = TermGuard::set(&caller);
    let mut s = Session {
        child,
        status: None,
        signals,
        stdin_open: caller.input.is_some(),
        outputs: caller.outputs,
        input: caller.input,
        pending: Vec::new(),
        tty: caller.tty,
        buf: vec![0; CHUNK],
    };
    while s.status.is_none() {
        s.poll_once()?;
    }
    // What the command wrote before it ended (a pty master reads it all,
    // then EIO; a pipe or pty another process still holds, what is there).
    for i in (0..s.outputs.len()).rev() {
        while s.copy_output(i) == Copied::Some {}
    }
    Ok(s.status.unwrap_or(crate::EXIT_FAILURE))
}

impl Session {
    fn poll_once(&mut self) -> Result<()> {
        let stdin = std::io::stdin();
        let mut srcs = vec![Src::Signals];
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        for (i, o) in self.outputs.iter().enumerate() {
            srcs.push(Src::Output(i));
            fds.push(PollFd::new(o.fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(input) = &self.input {
            if self.pending.is_empty() {
                if self.stdin_open {
                    srcs.push(Src::Stdin);
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                }
            } else {
                srcs.push(Src::Input);
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLOUT));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll", "the command's terminal or pipes", e)),
        }
        let ready: Vec<Src> = srcs
            .into_iter()
            .zip(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            )
            .filter(|(_, r)| !r.is_empty())
            .map(|(s, _)| s)
            .collect();
        drop(fds);
        let mut ended = Vec::new();
        for src in ready {
            match src {
                Src::Signals => self.on_signals()?,
                Src::Output(i) => {
                    if self.copy_output(i) == Copied::End {
                        ended.push(i);
                    }
                }
                Src::Stdin => self.read_stdin(),
                Src::Input => self.flush_pending(),
            }
        }
        for i in ended.into_iter().rev() {
            self.outputs.remove(i);
        }
        Ok(())
    }

    fn on_signals(&mut self) -> Result<()> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap()?,
                Ok(Signal::SIGWINCH) => self.resize(),
                // In its own session the command no longer gets what the
                // caller's terminal sends our process group (^C without a
                // tty, a hangup): pass every forwarded signal on, whoever
                // sent it.
                Ok(sig) => {
                    let _ = nix::sys::signal::kill(self.child, sig);
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn reap(&mut self) -> Result<()> {
        loop {
            match waitpid(self.child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.status = Some(code);
                    return Ok(());
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.status = Some(128 + sig as i32);
                    return Ok(());
                }
                // Still running (or a stop/continue report): wait on.
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("wait for", format!("pid {}", self.child), e)),
            }
        }
    }

    /// Give the pty the caller's window size (the kernel sends SIGWINCH to
    /// its foreground process group).
    fn resize(&self) {
        if !self.tty {
            return;
        }
        if let (Some(o), Some(size)) = (self.outputs.first(), terminal_size()) {
            let _ =
                crate::sys::set_winsize(o.fd.as_fd(), &crate::sys::winsize(size.rows, size.cols));
        }
    }

    /// Copy one chunk of output `i` to the caller.
    fn copy_output(&mut self, i: usize) -> Copied {
        let Some(o) = self.outputs.get(i) else {
            return Copied::End;
        };
        let n = match read_some(o.fd.as_fd(), &mut self.buf) {
            Read::Data(n) => n,
            Read::Empty => return Copied::Nothing,
            Read::End => return Copied::End,
        };
        let written = if o.to_stderr {
            write_all_fd(std::io::stderr().as_fd(), &self.buf[..n])
        } else {
            write_all_fd(std::io::stdout().as_fd(), &self.buf[..n])
        };
        if written.is_err() {
            // The caller's end is closed: close ours too, so the command
            // gets EPIPE (a pipe) or a hangup (the pty, once the input
            // side's copy of the master is closed as well).
            if self.tty {
                self.input = None;
                self.pending.clear();
                self.stdin_open = false;
            }
            return Copied::End;
        }
        Copied::Some
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => {
                self.stdin_open = false;
                if self.tty {
                    // The end of the caller's input: an end-of-file
                    // character (read as end of file by a canonical reader
                    // at the start of a line), then no more.
                    self.pending.push(VEOF);
                }
            }
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            Err(_) => self.stdin_open = false,
        }
        self.flush_pending();
    }

    /// Write what is pending to the command's input; close a stdin pipe
    /// once the caller's input ended and all of it is written.
    fn flush_pending(&mut self) {
        let Some(input) = &self.input else {
            self.pending.clear();
            return;
        };
        match write_pending(input.as_fd(), &mut self.pending) {
            Drained::Blocked => {}
            // The command closed its stdin (EPIPE) or the pty is gone (EIO):
            // stop copying.
            Drained::Broken => {
                self.stdin_open = false;
                self.input = None;
            }
            Drained::All => {
                if !self.stdin_open && !self.tty {
                    self.input = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_are_devpts() {
        assert_eq!(makedev(PTMX_MAJOR, PTMX_MINOR), makedev(5, 2));
        // /dev/pts/300 is 137:44.
        let n = 300u32;
        let dev = makedev(PTS_MAJOR + u64::from(n / 256), u64::from(n % 256));
        assert_eq!(
            (nix::sys::stat::major(dev), nix::sys::stat::minor(dev)),
            (137, 44)
        );
    }
}
