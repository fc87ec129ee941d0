//! `cairn-monitor`: a small conmon. It creates the container's first process
//! in new namespaces with one `clone(2)` (so that process is pid 1 of a new
//! pid namespace and nothing forks again), learns from an error pipe whether
//! the exec chain (cairn-mount → cairn-pivot → command) got to the command,
//! reports the pid or the failure on a sync descriptor, then copies the
//! container's output into a k8s-file log (and to its own stdout/stderr when
//! attached), reaps, and records the exit status atomically.
//!
//! Descriptors of the child: 0 `/dev/null` or (with stdin) a pipe from the
//! monitor, 1 and 2 pipes to the monitor, [`ERROR_FD`] the error pipe, and with a tty
//! [`CONSOLE_FD`] a unix socket on which cairn-pivot sends the master of the
//! pty it made in the container's devpts. The error pipe is inherited along
//! the exec chain and closed by the final exec (close-on-exec), so
//! end-of-file without a `{"code":C,"message":M}` line means the command
//! runs.
//!
//! The container never gets a descriptor of the caller's: a terminal
//! handed in could be typed into with `TIOCSTI` (CVE-2016-7545 class), so
//! its stdin is the pty or a pipe, and the monitor copies its own stdin to
//! that.
//!
//! One thread, one `poll(2)` loop: output pipes (or the pty master), stdin
//! when it is copied to the pty or the stdin pipe, and a signalfd for
//! SIGCHLD and SIGWINCH.
//! Terminal signals and SIGPIPE are ignored so the monitor outlives its
//! launcher and its terminal.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use cairn_fsutil::{write_atomic, Durability};

use crate::cgroup::{Cgroup, Hierarchy};
use crate::error::{Context as _, Error, Result};
use crate::fdio::{read_some, set_nonblocking, write_all_fd, write_pending, Drained, Read};
use crate::k8s_log::{self, LineBuf, Stream};
use crate::process::{self, Env};
use crate::protocol::{
    ErrorLine, ExitRecord, MonitorSpec, Namespace, SyncLine, CONSOLE_FD, ERROR_FD,
};
use crate::sys::SingleThreaded;

/// Bytes read from an output at a time; a longer line is logged as
/// partial records.
const CHUNK: usize = 16 * 1024;

/// Signals the monitor ignores for itself (the child resets every
/// signal to its default). SIGTTIN and SIGTTOU matter only if `setsid`
/// failed (started as a process group leader): a background monitor
/// reading or configuring the terminal must not be stopped.
pub(crate) const IGNORED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
    Signal::SIGPIPE,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// A window size, sent as one JSON line on the console socket before the
/// pty exists: cairn-pivot gives it to the new pty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl ConsoleSize {
    /// The line as sent: JSON and a newline.
    pub fn to_line(self) -> Vec<u8> {
        let mut v = serde_json::to_vec(&self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The first size line in what arrived, if any.
    pub fn parse(bytes: &[u8]) -> Option<ConsoleSize> {
        let text = String::from_utf8_lossy(bytes);
        serde_json::from_str(text.lines().next()?).ok()
    }
}

/// The size of our terminal (stdin, else stdout), if we have one.
pub(crate) fn terminal_size() -> Option<ConsoleSize> {
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    [stdin.as_fd(), stdout.as_fd()]
        .iter()
        .find_map(|fd| crate::sys::get_winsize(*fd).ok())
        .map(|ws| ConsoleSize {
            rows: ws.ws_row,
            cols: ws.ws_col,
        })
}

/// `(exit_code, signal)` of a final wait status, podman's convention
/// (128 + N for signal N); `None` for a stop or continue report.
pub fn exit_code(status: WaitStatus) -> Option<(i32, Option<i32>)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// The clone flag of a namespace the monitor can create.
fn clone_flag(ns: Namespace) -> CloneFlags {
    match ns {
        Namespace::Mnt => CloneFlags::CLONE_NEWNS,
        Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        Namespace::Pid => CloneFlags::CLONE_NEWPID,
        Namespace::Net => CloneFlags::CLONE_NEWNET,
        Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        Namespace::User => CloneFlags::CLONE_NEWUSER,
        // Refused by MonitorSpec::validate.
        Namespace::Time => CloneFlags::empty(),
    }
}

/// Copies `input` to `out` less the escape sequence `keys`: `matched`
/// bytes of it ended the input so far (held back); a byte that breaks
/// the match releases them. True when the whole sequence was typed (the
/// rest of `input` is dropped: the session detaches).
fn escape(keys: &[u8], matched: &mut usize, input: &[u8], out: &mut Vec<u8>) -> bool {
    for &b in input {
        if b == keys[*matched] {
            *matched += 1;
            if *matched == keys.len() {
                *matched = 0;
                return true;
            }
        } else {
            out.extend_from_slice(&keys[..*matched]);
            *matched = usize::from(b == keys[0]);
            if *matched == 0 {
                out.push(b);
            }
        }
    }
    false
}

/// Write one sync line and close the descriptor.
fn send_sync(sync: &mut Option<OwnedFd>, line: &SyncLine) {
    if let Some(fd) = sync.take() {
        let _ = write_all_fd(fd.as_fd(), &line.to_line());
    }
}

/// Report a failure before any child exists: a sync line with pid 0.
pub(crate) fn fail_before_start(sync: Option<OwnedFd>, e: &Error) {
    let mut sync = sync;
    send_sync(
        &mut sync,
        &SyncLine {
            pid: 0,
            error: Some(format!("cairn-monitor: {e}")),
            code: Some(e.exit_code()),
        },
    );
}

/// Everything the child needs, prepared before the clone so that the child
/// only makes system calls.
struct ChildPlan {
    args: Vec<CString>,
    env: Vec<CString>,
    /// `(source, target)` descriptors for the child.
    fds: Vec<(RawFd, RawFd)>,
    /// The error pipe's write end before it is moved to [`ERROR_FD`].
    error_w: RawFd,
    loopback: bool,
    rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
    /// With a new user namespace or a network to set up: the read end of
    /// the pipe on which the monitor says "go on" (`m`: maps written,
    /// network up) or `x` and why not.
    gate: Option<OwnedFd>,
    /// The monitor's end of the gate, which the clone copied: closed first
    /// thing, so that a monitor that dies closes the gate.
    gate_w: Option<RawFd>,
    /// Become root of the new user namespace once the gate opens.
    userns: bool,
    /// Make the cgroup namespace once the gate opens (the monitor has
    /// moved us into the container's cgroup by then, so that it is the
    /// namespace's root).
    cgroupns: bool,
}

/// The child: descriptors, signals, loopback, limits, exec. Never returns.
fn child_main(plan: &ChildPlan) -> ! {
    let (fd, e) = match wait_gate(plan).and_then(|()| child_fds(plan)) {
        Err(e) => (plan.error_w, e),
        Ok(()) => (
            ERROR_FD,
            match child_setup(plan) {
                Ok(()) => process::exec(&plan.args, &plan.env),
                Err(e) => e,
            },
        ),
    };
    let line = ErrorLine {
        code: e.exit_code(),
        message: format!("cairn-monitor: {e}"),
    };
    // The monitor reports it to the launcher (see `report_to`): on stderr
    // only if that fails.
    if crate::sys::write_raw(fd, &line.to_line()).is_err() {
        crate::say(&line.message);
    }
    crate::sys::exit_now(e.exit_code())
}

/// Wait until the monitor wrote our id maps and set up our network (the
/// gate), then, in a new user namespace, become its root (caps survive the
/// exec of cairn-mount only for uid 0). A closed gate, or `x` and a
/// message on it, means the monitor could not: the command must not run.
fn wait_gate(plan: &ChildPlan) -> Result<()> {
    let Some(gate) = &plan.gate else {
        return Ok(());
    };
    if let Some(w) = plan.gate_w {
        let _ = nix::unistd::close(w);
    }
    // One read: the monitor writes its word in one write of at most
    // PIPE_BUF bytes (atomic).
    let mut said = [0u8; 4096];
    let n = loop {
        match nix::unistd::read(gate, &mut said) {
            Err(Errno::EINTR) => {}
            r => {
                break r.ctx(
                    "wait for the monitor's go-ahead in",
                    "the container process",
                )?
            }
        }
    };
    if n == 0 || said[0] != b'm' {
        let why = String::from_utf8_lossy(&said[1.min(n)..n]);
        return Err(Error::Usage(if why.is_empty() {
            "cairn-monitor could not prepare the container".into()
        } else {
            why.into_owned()
        }));
    }
    if plan.userns {
        let root = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root, root, root)
            .ctx("become gid 0 in", "the container's user namespace")?;
        let root = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root)
            .ctx("become uid 0 in", "the container's user namespace")?;
        nix::unistd::setgroups(&[]).ctx(
            "drop supplementary groups in",
            "the container's user namespace",
        )?;
    }
    if plan.cgroupns {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .ctx("create the cgroup namespace of", "the container process")?;
    }
    Ok(())
}

/// Writes a child's uid and gid maps (we hold CAP_SETUID and CAP_SETGID
/// over the outside ids, so setgroups stays allowed).
fn write_id_maps(child: Pid, spec: &MonitorSpec) -> Result<()> {
    for (file, map) in [("uid_map", &spec.uid_map), ("gid_map", &spec.gid_map)] {
        let text: String = map
            .iter()
            .map(|t| format!("{} {} {}\n", t[0], t[1], t[2]))
            .collect();
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, text.as_bytes())
            .ctx("write", &path)
            .map_err(|e| e.hint("every outside id of the map must be mapped in the monitor's own user namespace"))?;
    }
    Ok(())
}

fn child_fds(plan: &ChildPlan) -> Result<()> {
    // The monitor blocks SIGCHLD and SIGWINCH (for its signalfd) and ignores
    // terminal signals, and the launcher may have ignored others: a mask
    // and ignored dispositions survive execve. Every signal gets its
    // default back (handlers of ours do not exist, so none is lost).
    SigSet::empty()
        .thread_set_mask()
        .ctx("reset the signal mask of", "the container process")?;
    let all: Vec<Signal> = Signal::iterator()
        .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
        .collect();
    crate::sys::default_disposition(&all).ctx("reset signals of", "the container process")?;
    crate::sys::install_fds(&plan.fds).ctx("set up the descriptors of", "the container process")
}

fn child_setup(plan: &ChildPlan) -> Result<()> {
    let first_free = plan.fds.iter().map(|&(_, t)| t).max().unwrap_or(2) + 1;
    crate::sys::cloexec_from(first_free as u32)
        .ctx("close leaked descriptors of", "the container process")?;
    if plan.loopback {
        crate::sys::loopback_up()
            .ctx("bring up", "the loopback interface lo")
            .map_err(|e| e.hint("needs CAP_NET_ADMIN in the new network namespace"))?;
    }
    for &(res, soft, hard) in &plan.rlimits {
        nix::sys::resource::setrlimit(res, soft, hard)
            .map_err(|e| {
                Error::sys(
                    format!("setrlimit {res:?} {soft}:{hard} of"),
                    "the container process",
                    e,
                )
            })
            .map_err(|e| {
                e.hint("raising a hard limit needs CAP_SYS_RESOURCE: ask for at most the current hard limit")
            })?;
    }
    Ok(())
}

/// The k8s-file log (or none).
struct Log {
    file: Option<File>,
    path: String,
    buf: Vec<u8>,
}

impl Log {
    fn open(path: Option<&Path>) -> Result<Log> {
        let file = match path {
            None => None,
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(p)
                    .ctx("open the log", p)?,
            ),
        };
        Ok(Log {
            file,
            path: path.map(|p| p.display().to_string()).unwrap_or_default(),
            buf: Vec::new(),
        })
    }

    fn write(&mut self, stream: Stream, data: &[u8]) {
        let Some(file) = &mut self.file else {
            return;
        };
        self.buf.clear();
        k8s_log::format(&mut self.buf, &k8s_log::now(), stream, data);
        if let Err(e) = file.write_all(&self.buf) {
            // Keep the container running; say it once.
            eprintln!(
                "cairn-monitor: write the log {}: {e}; logging stops",
                self.path
            );
            self.file = None;
        }
    }
}

/// An output pipe of the child.
struct Pipe {
    fd: OwnedFd,
    stream: Stream,
}

/// What a poll entry stands for.
#[derive(Debug, Clone, Copy)]
enum Src {
    Signals,
    ErrorPipe,
    Console,
    Pipe(usize),
    Master,
    Stdin,
    StdinPipe,
    NetStderr,
}

struct Monitor<'a> {
    spec: &'a MonitorSpec,
    child: Pid,
    status: Option<WaitStatus>,
    sync: Option<OwnedFd>,
    signals: SignalFd,
    error_pipe: Option<OwnedFd>,
    error_buf: Vec<u8>,
    console: Option<OwnedFd>,
    pipes: Vec<Pipe>,
    master: Option<OwnedFd>,
    /// Reading the master (false after EIO: no slave is open).
    master_open: bool,
    /// Without a tty: the write end of the child's stdin pipe, while open.
    stdin_pipe: Option<OwnedFd>,
    /// Copying stdin to the master or the stdin pipe.
    stdin_open: bool,
    /// Read from stdin, not yet written to the master or the pipe.
    pending: Vec<u8>,
    /// Copy output to our stdout/stderr (false after a write error there).
    attach_out: bool,
    attach_err: bool,
    /// The terminal settings of our stdin (or stdout), while changed.
    saved_termios: Option<Termios>,
    /// `saved_termios` belongs to stdout (output post-processing off).
    termios_on_stdout: bool,
    /// The sync descriptor, kept after the pid line to report a detach.
    detach_fd: Option<OwnedFd>,
    /// How many bytes of the detach keys the input ended with so far.
    detach_matched: usize,
    log: Log,
    /// Tails of full reads per stream (stdout, stderr), see [`LineBuf`].
    held: [LineBuf; 2],
    buf: Vec<u8>,
    /// The command was executed (its `died` is an event).
    ran: bool,
    /// What the network setup holds until the teardown.
    net: Option<crate::network::Held>,
    /// slirp4netns's stderr, drained (and dropped) while it runs.
    net_stderr: Option<OwnedFd>,
    /// The container's cgroup, removed when the child has ended.
    cgroup: Option<Cgroup>,
}

/// Everything `cairn-monitor` does after parsing; returns the exit status
/// (the container's, or 125 when it could not be started).
pub(crate) fn run(spec: &MonitorSpec, sync: Option<OwnedFd>, single: &SingleThreaded) -> i32 {
    match start(spec, single) {
        Ok(mut m) => {
            m.sync = sync;
            m.run()
        }
        Err(e) => {
            // A launcher reading the sync descriptor reports it (once);
            // without one, stderr is the only place.
            if sync.is_none() {
                eprintln!("cairn-monitor: {e}");
            }
            fail_before_start(sync, &e);
            e.exit_code()
        }
    }
}

/// Sets the monitor up, clones the container's first process and returns
/// the monitor ready for its loop.
fn start<'a>(spec: &'a MonitorSpec, single: &SingleThreaded) -> Result<Monitor<'a>> {
    spec.validate()?;
    // Whatever the launcher leaked to us must not reach the network tools
    // we start (pasta lives on as a daemon): the container's own chain
    // closes leaks itself, the tools do not.
    crate::sys::cloexec_from(3).ctx(
        "mark inherited descriptors close-on-exec in",
        "cairn-monitor",
    )?;
    let signals = detach_and_watch_signals()?;
    let log = Log::open(spec.log.as_deref())?;
    let (args, env, rlimits) = exec_parts(spec)?;
    let Wiring {
        out: (out_r, out_w),
        err: (err_r, err_w),
        error: (error_r, error_w),
        console,
        stdin_src,
        stdin_pipe,
        gate,
    } = Wiring::new(spec)?;
    let mut fds = vec![
        (stdin_src.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
        (error_w.as_raw_fd(), ERROR_FD),
    ];
    if let Some((_, theirs)) = &console {
        fds.push((theirs.as_raw_fd(), CONSOLE_FD));
    }
    let (gate_r, gate_w) = match gate {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    let mut plan = ChildPlan {
        args,
        env,
        fds,
        error_w: error_w.as_raw_fd(),
        loopback: spec.loopback && spec.namespaces.contains(&Namespace::Net),
        rlimits,
        gate_w: gate_w.as_ref().map(AsRawFd::as_raw_fd),
        gate: gate_r,
        userns: spec.namespaces.contains(&Namespace::User),
        cgroupns: spec.cgroup.is_some() && spec.namespaces.contains(&Namespace::Cgroup),
    };
    // Last before the clone: nothing after it but the clone can fail and
    // leave it behind.
    let cgroup = spec.cgroup.as_ref().map(create_cgroup).transpose()?;
    let cloned = spec
        .join_net
        .as_deref()
        .map_or(Ok(()), join_net)
        .and_then(|()| clone_child(spec, &plan, cgroup.as_ref(), single));
    let (child, placed) = match cloned {
        Ok(cloned) => cloned,
        Err(e) => {
            remove_cgroup(cgroup.as_ref());
            return Err(e);
        }
    };
    drop((out_w, err_w, error_w, stdin_src, plan.gate.take()));
    let to_place = cgroup.as_ref().filter(|_| !placed);
    let mut net = gate_w.and_then(|gate| prepare_and_open_gate(child, spec, to_place, gate));
    let net_stderr = net.as_mut().and_then(|n| n.stderr.take());
    let console = console.map(|(ours, _theirs)| ours);
    for fd in [&out_r, &err_r, &error_r]
        .into_iter()
        .chain(&stdin_pipe)
        .chain(&console)
    {
        let _ = set_nonblocking(fd);
    }
    Ok(Monitor {
        spec,
        child,
        status: None,
        sync: None,
        signals,
        error_pipe: Some(error_r),
        error_buf: Vec::new(),
        console,
        pipes: vec![
            Pipe {
                fd: out_r,
                stream: Stream::Stdout,
            },
            Pipe {
                fd: err_r,
                stream: Stream::Stderr,
            },
        ],
        master: None,
        master_open: false,
        stdin_pipe,
        stdin_open: spec.stdin,
        pending: Vec::new(),
        attach_out: spec.attach,
        attach_err: spec.attach,
        saved_termios: None,
        termios_on_stdout: false,
        detach_fd: None,
        detach_matched: 0,
        log,
        held: Default::default(),
        buf: vec![0; CHUNK],
        ran: false,
        net,
        net_stderr,
        cgroup,
    })
}

/// Creates the container's cgroup with its limits (before the clone: the
/// child must never run without them).
fn create_cgroup(spec: &crate::cgroup::CgroupSpec) -> Result<Cgroup> {
    let fail = |why: String| {
        Error::Usage(format!(
            "create the container's cgroup {}: {why}",
            spec.path
        ))
    };
    let h = Hierarchy::detect()
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| {
            fail("no cgroup filesystem is mounted: mount cgroup2 on /sys/fs/cgroup, or run the container without a cgroup (--cgroups disabled)".into())
        })?;
    let cg = Cgroup::new(&h, &spec.path)?;
    cg.create(spec).map_err(|e| {
        fail(format!(
            "{e} (drop the limit, or run the container without a cgroup: --cgroups disabled)"
        ))
    })?;
    Ok(cg)
}

/// Removes the container's cgroup (killing what is left in it); a failure
/// is said on stderr.
fn remove_cgroup(cgroup: Option<&Cgroup>) {
    if let Some(cg) = cgroup {
        if let Err(e) = cg.remove() {
            eprintln!(
                "cairn-monitor: remove the container's cgroup {}: {e}",
                cg.path()
            );
        }
    }
}

/// `--network ns:PATH`, `container:NAME`: the monitor itself joins the
/// namespace before the clone, and the child (cloned without a new network
/// namespace) is born in it. Not the child after the clone: in a new user
/// namespace it has no capability over a namespace its parent's user
/// namespace owns (another rootless container's, the host's), so its
/// setns(2) would fail with EPERM. The monitor runs no network tool then.
fn join_net(path: &Path) -> Result<()> {
    let ns = File::open(path).ctx("open the network namespace", path)?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .ctx("join the network namespace", path)
        .map_err(|e| e.hint("needs CAP_SYS_ADMIN over the namespace's owning user namespace"))
}

/// Our own session and signal handling: terminal signals ignored, SIGCHLD
/// and SIGWINCH blocked and read from the returned signalfd, orphans of the
/// container ours to reap.
fn detach_and_watch_signals() -> Result<SignalFd> {
    // Our own session, no controlling terminal: the launcher's terminal
    // going away must not take us along. (EPERM: already a group leader;
    // the ignored signals below still protect us.)
    let _ = nix::unistd::setsid();
    crate::sys::ignore_signals(IGNORED).ctx("ignore terminal signals in", "cairn-monitor")?;
    // An ignored SIGCHLD inherited from the launcher would let the kernel
    // reap the child before we read its status.
    crate::sys::default_disposition(&[Signal::SIGCHLD, Signal::SIGWINCH])
        .ctx("reset SIGCHLD of", "cairn-monitor")?;
    // Orphans of the container (without a pid namespace) become ours to reap.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    mask.thread_block()
        .ctx("block SIGCHLD and SIGWINCH in", "cairn-monitor")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .ctx("create a signalfd in", "cairn-monitor")
}

/// A resource limit for the child: `(resource, soft, hard)`.
type Rlimit = (nix::sys::resource::Resource, u64, u64);

/// The child's command line, environment (the spec's, else ours) and
/// resource limits, checked before anything is created.
fn exec_parts(spec: &MonitorSpec) -> Result<(Vec<CString>, Vec<CString>, Vec<Rlimit>)> {
    let args = process::cstrings(&spec.args.iter().map(Into::into).collect::<Vec<_>>())?;
    let env = match &spec.env {
        Some(entries) => entries
            .iter()
            .map(|e| {
                CString::new(e.as_bytes())
                    .map_err(|_| Error::Usage(format!("env entry {e:?} contains a NUL byte")))
            })
            .collect::<Result<Vec<_>>>()?,
        None => Env::current().to_cstrings(),
    };
    let rlimits = spec
        .rlimits
        .iter()
        .map(|r| Ok((r.resource()?, r.soft.0, r.hard.0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((args, env, rlimits))
}

/// Every descriptor between the monitor and the child, as `(ours,
/// theirs)` or `(read, write)` pairs, all close-on-exec until the child
/// installs its own on fixed numbers.
struct Wiring {
    /// The child's stdout pipe.
    out: (OwnedFd, OwnedFd),
    /// The child's stderr pipe.
    err: (OwnedFd, OwnedFd),
    /// The error pipe of the exec chain.
    error: (OwnedFd, OwnedFd),
    /// With a tty: the console socket, ours and the child's end.
    console: Option<(OwnedFd, OwnedFd)>,
    /// The child's stdin: the read end of the stdin pipe, or `/dev/null`.
    stdin_src: OwnedFd,
    /// Our end of the stdin pipe, when the child gets one.
    stdin_pipe: Option<OwnedFd>,
    /// With a new user namespace or a network: the pipe on which we say
    /// "maps written, network up".
    gate: Option<(OwnedFd, OwnedFd)>,
}

impl Wiring {
    fn new(spec: &MonitorSpec) -> Result<Wiring> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("create a pipe in", "cairn-monitor");
        let out = pipe()?;
        let err = pipe()?;
        let error = pipe()?;
        let console = if spec.tty {
            let (ours, theirs) =
                crate::sys::socketpair().ctx("create the console socket in", "cairn-monitor")?;
            // Our terminal's size, queued for cairn-pivot before the child
            // even exists, so the pty has it before the command starts (a
            // later TIOCSWINSZ would race with a command that reads it once).
            if let Some(size) = terminal_size() {
                let _ = write_all_fd(ours.as_fd(), &size.to_line());
            }
            Some((ours, theirs))
        } else {
            None
        };
        // Without a tty, "stdin" gives the child a pipe we copy our stdin
        // to, never our stdin itself; otherwise /dev/null (a pty replaces it
        // later).
        let (stdin_src, stdin_pipe) = if spec.stdin && !spec.tty {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = nix::fcntl::open(
                "/dev/null",
                OFlag::O_RDWR | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ctx("open", "/dev/null")?;
            (null, None)
        };
        let gate = if spec.namespaces.contains(&Namespace::User)
            || spec.network.is_some()
            || spec.cgroup.is_some()
        {
            Some(pipe()?)
        } else {
            None
        };
        Ok(Wiring {
            out,
            err,
            error,
            console,
            stdin_src,
            stdin_pipe,
            gate,
        })
    }
}

/// `clone(2)` the container's first process into the spec's namespaces;
/// the child runs [`child_main`] and never returns here.
/// On cgroup v2 the child is born in `cgroup` (clone3 with
/// `CLONE_INTO_CGROUP`); the `bool` says so. Otherwise (v1, or a kernel
/// without it) the gate moves it there.
fn clone_child(
    spec: &MonitorSpec,
    plan: &ChildPlan,
    cgroup: Option<&Cgroup>,
    single: &SingleThreaded,
) -> Result<(Pid, bool)> {
    let mut flags = spec
        .namespaces
        .iter()
        .fold(CloneFlags::empty(), |f, ns| f | clone_flag(*ns));
    if plan.cgroupns {
        // The child makes it once it is in its cgroup (wait_gate).
        flags.remove(CloneFlags::CLONE_NEWCGROUP);
    }
    let v2_dir = cgroup.and_then(Cgroup::v2_dir).and_then(|d| {
        nix::fcntl::open(
            &d,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    });
    if let Some(dir) = &v2_dir {
        match crate::sys::clone_into_cgroup(single, flags, dir.as_fd()) {
            Ok(ForkResult::Child) => child_main(plan),
            Ok(ForkResult::Parent { child }) => return Ok((child, true)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
                ) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!(
                        "clone the first process of container {} into its cgroup {} in",
                        spec.id,
                        cgroup.map(Cgroup::path).unwrap_or_default()
                    ),
                    "cairn-monitor",
                    e,
                )
                .hint("needs write access to the cgroup's cgroup.procs and to its parent's"))
            }
        }
    }
    match crate::sys::clone_fork(single, flags) {
        Ok(ForkResult::Child) => child_main(plan),
        Ok(ForkResult::Parent { child }) => Ok((child, false)),
        Err(e) => Err(Error::sys(
            format!(
                "clone the first process of container {} (namespaces {:?}) in",
                spec.id,
                spec.namespaces
                    .iter()
                    .map(|n| n.proc_name())
                    .collect::<Vec<_>>()
            ),
            "cairn-monitor",
            e,
        )
        .hint("creating namespaces needs root (CAP_SYS_ADMIN) or a user namespace of our own")),
    }
}

/// Move the child into its cgroup, write its id maps and set up its
/// network, then tell it through `gate` whether that worked: `m`, or `x`
/// and the one line saying what failed, which the child reports on the
/// error pipe (so the launcher gets it on the sync line, code 125) before
/// it exits without running the command. A failed network setup is
/// already torn down; a cgroup the child could not be moved into is
/// removed.
fn prepare_and_open_gate(
    child: Pid,
    spec: &MonitorSpec,
    cgroup: Option<&Cgroup>,
    gate: OwnedFd,
) -> Option<crate::network::Held> {
    let mut held = None;
    let placed = match cgroup {
        Some(cg) => cg.add_process(child.as_raw()).map_err(|e| {
            remove_cgroup(Some(cg));
            Error::Usage(format!(
                "move the container process into its cgroup {}: {e}",
                cg.path()
            ))
        }),
        None => Ok(()),
    };
    let ready = placed
        .and_then(|()| {
            if spec.namespaces.contains(&Namespace::User) {
                write_id_maps(child, spec)
            } else {
                Ok(())
            }
        })
        .and_then(|()| {
            if let Some(net) = &spec.network {
                held =
                    Some(crate::network::setup(net, child).map_err(|e| {
                        Error::Usage(format!("set up the container's network: {e}"))
                    })?);
            }
            Ok(())
        });
    let word = match &ready {
        Ok(()) => b"m".to_vec(),
        Err(e) => {
            let mut w = b"x".to_vec();
            w.extend_from_slice(e.to_string().replace('\n', " ").as_bytes());
            w.truncate(4096);
            w
        }
    };
    let _ = write_all_fd(gate.as_fd(), &word);
    held
}

impl Monitor<'_> {
    fn run(&mut self) -> i32 {
        while self.status.is_none() {
            self.poll_once();
        }
        self.finish()
    }

    fn poll_once(&mut self) {
        let stdin = std::io::stdin();
        let mut srcs = vec![Src::Signals];
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        if let Some(e) = &self.error_pipe {
            srcs.push(Src::ErrorPipe);
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        if let Some(c) = &self.console {
            srcs.push(Src::Console);
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
        }
        for (i, p) in self.pipes.iter().enumerate() {
            srcs.push(Src::Pipe(i));
            fds.push(PollFd::new(p.fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(m) = self.master.as_ref().filter(|_| self.master_open) {
            let mut ev = PollFlags::POLLIN;
            if !self.pending.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            srcs.push(Src::Master);
            fds.push(PollFd::new(m.as_fd(), ev));
        }
        if let Some(p) = self
            .stdin_pipe
            .as_ref()
            .filter(|_| !self.pending.is_empty())
        {
            srcs.push(Src::StdinPipe);
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(e) = &self.net_stderr {
            srcs.push(Src::NetStderr);
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        let sink = self.master_open || self.stdin_pipe.is_some();
        if self.stdin_open && sink && self.pending.is_empty() {
            srcs.push(Src::Stdin);
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => return,
            Err(e) => {
                // Cannot happen with valid descriptors; never spin on it.
                eprintln!("cairn-monitor: poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                return;
            }
        }
        let ready: Vec<(Src, PollFlags)> = srcs
            .into_iter()
            .zip(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            )
            .filter(|(_, r)| !r.is_empty())
            .collect();
        drop(fds);
        let mut closed = Vec::new();
        for (src, revents) in ready {
            match src {
                Src::Signals => self.on_signals(),
                Src::ErrorPipe => self.read_error_pipe(),
                Src::Console => self.read_console(),
                Src::Pipe(i) => {
                    if !self.copy_pipe(i) {
                        closed.push(i);
                    }
                }
                Src::Master => {
                    if revents.contains(PollFlags::POLLOUT) {
                        self.flush_pending();
                    }
                    if revents
                        .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                    {
                        self.copy_master();
                    }
                }
                Src::Stdin => self.read_stdin(),
                Src::StdinPipe => self.flush_pending(),
                Src::NetStderr => self.drain_net_stderr(),
            }
        }
        for i in closed.into_iter().rev() {
            self.pipes.remove(i);
        }
    }

    fn on_signals(&mut self) {
        let mut chld = false;
        let mut winch = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => chld = true,
                Ok(Signal::SIGWINCH) => winch = true,
                _ => {}
            }
        }
        if winch {
            self.resize();
        }
        if chld {
            self.reap();
        }
    }

    /// Reap every child that ended; remember ours. Others are reaped and
    /// otherwise ignored: orphans of the container (we are a subreaper),
    /// pasta's daemon (reparented to us when its first process exits),
    /// slirp4netns, aardvark-dns (netavark's daemon, reparented to us):
    /// none of them ending is the container's exit.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(st) => {
                    if st.pid() == Some(self.child) && exit_code(st).is_some() {
                        self.status = Some(st);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Read (and drop) what slirp4netns says after it is ready: a full
    /// pipe would block it.
    fn drain_net_stderr(&mut self) {
        let Some(fd) = &self.net_stderr else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match read_some(fd.as_fd(), &mut buf) {
                Read::Data(_) => {}
                Read::Empty => return,
                Read::End => {
                    self.net_stderr = None;
                    return;
                }
            }
        }
    }

    /// The child ended: tear its network down (before the exit record, so
    /// that a published port is free once the launcher hears of the exit).
    /// Errors are said on our stderr; the exit code stays the container's.
    fn teardown_network(&mut self) {
        if let Some(net) = &self.spec.network {
            if let Err(e) = crate::network::teardown(net) {
                eprintln!("cairn-monitor: tear down the container's network: {e}");
            }
            self.net = None;
            self.net_stderr = None;
            // The tools ended (pasta reparented to us, slirp4netns our
            // child): reap them rather than leave zombies to whoever
            // inherits them.
            self.reap();
        }
    }

    fn read_error_pipe(&mut self) {
        let Some(fd) = &self.error_pipe else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match read_some(fd.as_fd(), &mut buf) {
                Read::Data(n) => {
                    // One line is all that matters; do not let a runaway
                    // writer grow it.
                    if self.error_buf.len() < 64 * 1024 {
                        self.error_buf.extend_from_slice(&buf[..n]);
                    }
                }
                Read::Empty => return,
                Read::End => {
                    self.error_pipe = None;
                    self.started();
                    return;
                }
            }
        }
    }

    /// The error pipe is closed: tell the launcher whether the command runs.
    fn started(&mut self) {
        let pid = self.child.as_raw();
        let line = match ErrorLine::parse(&self.error_buf) {
            Some(e) => SyncLine {
                pid,
                error: Some(e.message),
                code: Some(e.code),
            },
            None => {
                if let Some(p) = &self.spec.pid_file {
                    let pid = pid.to_string();
                    if let Err(e) = write_atomic(p, pid.as_bytes(), 0o644, Durability::Volatile) {
                        eprintln!(
                            "cairn-monitor: write the pid file {}: {}",
                            p.display(),
                            e.source
                        );
                    }
                }
                // Before the launcher hears of it, and before died.
                self.ran = true;
                if let Some(events) = &self.spec.events {
                    events.record("cairn-monitor", "start", 0);
                    if self.spec.attach || self.spec.stdin {
                        events.record("cairn-monitor", "attach", 0);
                    }
                }
                SyncLine {
                    pid,
                    error: None,
                    code: None,
                }
            }
        };
        if line.error.is_none() && self.detachable() {
            self.detach_fd = self.sync.as_ref().and_then(|f| f.try_clone().ok());
        }
        send_sync(&mut self.sync, &line);
    }

    /// Whether typing the detach keys detaches.
    fn detachable(&self) -> bool {
        self.spec.stdin && self.spec.attach && !self.spec.detach_keys.is_empty()
    }

    /// Input read from stdin, less the detach keys: a partial match is held
    /// back until the next byte shows whether it continues; a full one
    /// detaches (podman's and Docker's escape proxy).
    fn take_input(&mut self, input: &[u8]) {
        if !self.detachable() {
            self.pending.extend_from_slice(input);
            return;
        }
        let keys = self.spec.detach_keys.clone();
        if escape(&keys, &mut self.detach_matched, input, &mut self.pending) {
            self.detach();
        }
    }

    /// The detach keys were typed: stop copying stdin and output, give
    /// the terminal its settings back, tell whoever attached.
    fn detach(&mut self) {
        self.stdin_open = false;
        self.attach_out = false;
        self.attach_err = false;
        self.restore_terminal();
        if let Some(fd) = self.detach_fd.take() {
            let _ = write_all_fd(fd.as_fd(), b"{\"detached\":true}\n");
        }
    }

    /// Our terminal's settings as they were before we changed them.
    fn restore_terminal(&mut self) {
        if let Some(saved) = self.saved_termios.take() {
            let _ = if self.termios_on_stdout {
                termios::tcsetattr(std::io::stdout().as_fd(), SetArg::TCSANOW, &saved)
            } else {
                termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &saved)
            };
        }
    }

    fn read_console(&mut self) {
        let Some(sock) = &self.console else {
            return;
        };
        match crate::sys::recv_fd(sock.as_fd()) {
            Ok(Some(master)) => {
                self.console = None;
                self.got_master(master);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(None) => self.console = None,
            Err(e) => {
                eprintln!("cairn-monitor: receive the pty from the console socket: {e}");
                self.console = None;
            }
        }
    }

    fn got_master(&mut self, master: OwnedFd) {
        let _ = set_nonblocking(&master);
        self.master = Some(master);
        self.master_open = true;
        self.resize();
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        if self.spec.attach
            && self.spec.stdin
            && nix::unistd::isatty(stdin.as_fd()).unwrap_or(false)
        {
            if let Ok(saved) = termios::tcgetattr(stdin.as_fd()) {
                let mut raw = saved.clone();
                termios::cfmakeraw(&mut raw);
                if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_ok() {
                    self.saved_termios = Some(saved);
                }
            }
        } else if self.spec.attach && nix::unistd::isatty(stdout.as_fd()).unwrap_or(false) {
            // Output only (-t without -i): the pty already turned \n into
            // \r\n; our terminal must not do it again.
            if let Ok(saved) = termios::tcgetattr(stdout.as_fd()) {
                let mut t = saved.clone();
                t.output_flags.remove(termios::OutputFlags::OPOST);
                if termios::tcsetattr(stdout.as_fd(), SetArg::TCSANOW, &t).is_ok() {
                    self.saved_termios = Some(saved);
                    self.termios_on_stdout = true;
                }
            }
        }
    }

    /// Give the pty the window size of our terminal (stdin, else stdout).
    fn resize(&self) {
        if let (Some(master), Some(size)) = (&self.master, terminal_size()) {
            let _ =
                crate::sys::set_winsize(master.as_fd(), &crate::sys::winsize(size.rows, size.cols));
        }
    }

    /// Log (and copy) what one stream produced.
    fn output(&mut self, stream: Stream, n: usize) {
        let data = &self.buf[..n];
        let held = &mut self.held[stream as usize];
        let whole = held.take(data, n == self.buf.len(), CHUNK);
        if !whole.is_empty() {
            self.log.write(stream, &whole);
        }
        // A closed terminal or pipe (EPIPE, EIO) ends the copy, not the log.
        match stream {
            Stream::Stdout => {
                self.attach_out =
                    self.attach_out && write_all_fd(std::io::stdout().as_fd(), data).is_ok();
            }
            Stream::Stderr => {
                self.attach_err =
                    self.attach_err && write_all_fd(std::io::stderr().as_fd(), data).is_ok();
            }
        }
    }

    /// Copy what pipe `i` has; false at its end.
    fn copy_pipe(&mut self, i: usize) -> bool {
        loop {
            let fd = self.pipes[i].fd.as_fd();
            match read_some(fd, &mut self.buf) {
                Read::Data(n) => {
                    let stream = self.pipes[i].stream;
                    self.output(stream, n);
                    if n < self.buf.len() {
                        return true;
                    }
                }
                Read::Empty => return true,
                Read::End => {
                    self.flush_held(self.pipes[i].stream);
                    return false;
                }
            }
        }
    }

    /// Log what a stream held back, at its end.
    fn flush_held(&mut self, stream: Stream) {
        let rest = self.held[stream as usize].flush();
        if !rest.is_empty() {
            self.log.write(stream, &rest);
        }
    }

    fn copy_master(&mut self) {
        loop {
            let Some(m) = &self.master else {
                return;
            };
            match read_some(m.as_fd(), &mut self.buf) {
                Read::Data(n) => {
                    self.output(Stream::Stdout, n);
                    if n < self.buf.len() {
                        return;
                    }
                }
                Read::Empty => return,
                Read::End => {
                    // Every slave is closed; the child may still run.
                    self.flush_held(Stream::Stdout);
                    self.master_open = false;
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => {
                // End of our input: an end-of-file character for the
                // container's terminal (read as end of file by a canonical
                // reader at the start of a line), then no more; without
                // one, the pipe is closed once written out.
                self.stdin_open = false;
                if self.stdin_pipe.is_none() {
                    self.pending.push(4);
                }
            }
            Ok(n) => self.take_input(&buf[..n]),
            Err(_) => {}
        }
        self.flush_pending();
    }

    /// Write what stdin gave to the master or the stdin pipe; close the
    /// pipe when our stdin ended and everything is written (or the child
    /// closed its end: EPIPE).
    fn flush_pending(&mut self) {
        let Some(sink) = self.stdin_pipe.as_ref().or(self.master.as_ref()) else {
            return;
        };
        match write_pending(sink.as_fd(), &mut self.pending) {
            Drained::Blocked => return,
            Drained::Broken => self.stdin_open = false,
            Drained::All => {}
        }
        if !self.stdin_open {
            self.stdin_pipe = None;
        }
    }

    /// The child ended: take in what is left, record the exit, return its code.
    fn finish(&mut self) -> i32 {
        let status = self.status.expect("finish after the child ended");
        if self.console.is_some() {
            self.read_console();
        }
        if self.error_pipe.is_some() {
            self.read_error_pipe();
            if self.error_pipe.take().is_some() {
                // Someone else still holds the write end; the child is gone,
                // so whatever it wrote is all there is.
                self.started();
            }
        }
        for i in 0..self.pipes.len() {
            self.copy_pipe(i);
        }
        if self.master_open {
            self.copy_master();
        }
        // Sources still open (an orphan holds a pipe) end here for the log.
        self.flush_held(Stream::Stdout);
        self.flush_held(Stream::Stderr);
        self.restore_terminal();
        self.teardown_network();
        // The container's end: what the OOM killer did, then its cgroup
        // goes, with whatever still runs in it (processes `exec` started,
        // when there was no pid namespace to end them with the child).
        let oom_killed = self.cgroup.as_ref().is_some_and(Cgroup::oom_killed);
        remove_cgroup(self.cgroup.take().as_ref());
        self.reap();
        let (code, signal) = exit_code(status).unwrap_or((crate::EXIT_FAILURE, None));
        let finished_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let record = ExitRecord {
            exit_code: code,
            signal,
            finished_ns,
            oom_killed,
        };
        if let Err(e) = write_atomic(
            &self.spec.exit_file,
            &record.to_line(),
            0o644,
            Durability::Durable,
        ) {
            eprintln!(
                "cairn-monitor: record the exit status in {}: {}",
                self.spec.exit_file.display(),
                e.source
            );
        }
        if let (Some(events), true) = (&self.spec.events, self.ran) {
            events.record("cairn-monitor", "died", code);
        }
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_held_back_and_released() {
        let keys = [16u8, 17]; // ctrl-p, ctrl-q
        let run = |chunks: &[&[u8]]| {
            let (mut matched, mut out) = (0, Vec::new());
            let detached = chunks
                .iter()
                .any(|c| escape(&keys, &mut matched, c, &mut out));
            (out, detached, matched)
        };
        assert_eq!(run(&[b"ab"]), (b"ab".to_vec(), false, 0));
        // Split across reads: detaches, nothing of the keys passed on.
        assert_eq!(run(&[b"ls\x10", b"\x11rest"]), (b"ls".to_vec(), true, 0));
        // A partial match is held, then released by a byte that breaks it.
        assert_eq!(run(&[b"a\x10"]), (b"a".to_vec(), false, 1));
        assert_eq!(run(&[b"a\x10", b"b"]), (b"a\x10b".to_vec(), false, 0));
        // ctrl-p twice: the first is released, the second may start a match.
        assert_eq!(run(&[b"\x10\x10\x11"]), (b"\x10".to_vec(), true, 0));
    }

    #[test]
    fn exit_codes_follow_podman() {
        let pid = Pid::from_raw(42);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 0)), Some((0, None)));
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some((3, None)));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some((137, Some(9)))
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            Some((143, Some(15)))
        );
        assert_eq!(exit_code(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
        assert_eq!(exit_code(WaitStatus::Continued(pid)), None);
    }

    #[test]
    fn console_size_lines() {
        let size = ConsoleSize {
            rows: 30,
            cols: 100,
        };
        assert_eq!(size.to_line(), b"{\"rows\":30,\"cols\":100}\n");
        assert_eq!(ConsoleSize::parse(&size.to_line()), Some(size));
        assert_eq!(ConsoleSize::parse(b""), None);
        assert_eq!(ConsoleSize::parse(b"{\"rows\":-1}\n"), None);
    }
}
