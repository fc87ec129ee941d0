//! Starting, signalling, stopping and waiting for containers.
//!
//! `start` writes the helper specs, spawns `cairn-monitor` (its own session,
//! so it outlives us) with a pipe on which the monitor reports the
//! container's pid or why it did not start, and records the pid with its
//! start time. Attached, we then wait for the monitor, which exits with the
//! container's status, forwarding signals to the container as podman's
//! sig-proxy does.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_runtime::protocol::{MonitorSpec, MountSpec, PivotSpec, SyncLine};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::spec::{self, Attach, Helpers};
use super::{now_rfc3339, proc_start_time, write_atomic, write_json, Container};
use crate::error::{bail, Context as _, Error, Result};
use crate::events;
use crate::network;

/// A started container.
#[derive(Debug)]
pub struct Started {
    /// The monitor, when attached (we wait for it).
    pub monitor: Option<std::process::Child>,
    /// When attached: the monitor's reports after the pid line (a detach).
    pub reports: Option<BufReader<fs::File>>,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The container exited with this code.
    Exited(i32),
    /// The detach keys were typed: the container runs on.
    Detached,
}

/// Starts `c`. The caller holds no lock; this takes the container's.
pub fn start(c: &mut Container, attach: Attach) -> Result<Started> {
    let _lock = c.lock()?;
    c.reload()?;
    // The monitor lock: free unless a monitor runs (possibly one of a start
    // killed before it could record it, which `reload` adopts once the
    // monitor has written its pid).
    let monitor_lock = lock_monitor(c, true)?;
    if monitor_lock.is_none() {
        c.reload()?;
    }
    // A start killed mid-way may have left a monitor that is still coming up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.starting() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        c.reload()?;
    }
    if c.live().status.is_alive() {
        if c.state.started_at.is_some() && c.state.pid > 0 {
            // Adopted from a start killed before it saved its state: the
            // cgroup is the one its monitor was given.
            if c.state.cgroup.is_none() {
                c.state.cgroup = super::read_json::<cairn_runtime::protocol::MonitorSpec>(
                    &c.dir.join("monitor.json"),
                )
                .ok()
                .and_then(|m| m.cgroup.map(|g| g.path));
            }
            c.save_state()?;
        }
        return Ok(Started {
            monitor: None,
            reports: None,
        });
    }
    let monitor_lock = match monitor_lock {
        Some(l) => l,
        // Its container has ended; the monitor is finishing (draining the
        // output, writing the exit record).
        None => lock_monitor(c, false)?.expect("waits until the lock is taken"),
    };
    c.reload()?;
    let helpers = Helpers::find()?;
    let net = start_network(c)?;
    prepare_files(c, &net.files)?;
    let _ = fs::remove_file(c.dir.join("exit.json"));
    // The monitor writes the new one; a stale one must not be adopted.
    let _ = fs::remove_file(c.dir.join("pid"));
    if let Err(e) = write_specs(c, &helpers, &attach, &net) {
        release_network(c);
        return Err(e);
    }
    // podman's init: the container is set up, its command not yet started
    // (the monitor logs start, attach and died).
    events::record_container(c, "init");
    // A leftover mount point from a crash is only a directory: the container's
    // mounts live in its own mount namespace and die with it.
    // Close-on-exec in this process; only the monitor inherits the write end
    // (other threads may start programs meanwhile).
    let (sync_r, sync_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("create the monitor's sync pipe")?;
    let mut cmd = monitor_command(c, &helpers, &attach, &sync_w, &monitor_lock);
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", helpers.monitor.display()))?;
    drop(sync_w);
    // Closed, not unlocked: the monitor's copy keeps the lock.
    drop(monitor_lock);
    let monitor_pid = child.id() as i32;
    // Recorded before anything else: if we are killed now, the next command
    // finds the monitor (and, through its pid file, the container).
    let boot = super::boot_id();
    let monitor_start = proc_start_time(monitor_pid).unwrap_or(0);
    c.state.monitor_pid = monitor_pid;
    c.state.monitor_start = monitor_start;
    c.state.boot_id = boot.clone();
    c.state.started_at = None;
    c.state.error = None;
    c.state.pid = 0;
    c.save_state()?;
    let sync = read_sync(sync_r);
    let (sync, reports) = match sync {
        Ok(s) => s,
        Err(e) => {
            let mut child = child;
            let status = child.wait().ok();
            let err = Error::MonitorSilent {
                name: c.config.name.clone(),
                why: e.to_string(),
                exit: status.and_then(|s| s.code()),
                log: c.dir.join("ctr.log"),
            };
            release_network(c);
            record_failure(c, &err.to_string(), 125)?;
            return Err(err);
        }
    };
    c.state.monitor_pid = monitor_pid;
    c.state.monitor_start = monitor_start;
    c.state.boot_id = boot;
    if let Some(err) = sync.error {
        let code = sync.code.unwrap_or(125);
        // The monitor exits with the same code once the child is reaped.
        let mut child = child;
        let _ = child.wait();
        release_network(c);
        record_failure(c, &err, code)?;
        return Err(Error::Start { code, message: err });
    }
    c.state.pid = sync.pid;
    c.state.pid_start = proc_start_time(sync.pid).unwrap_or(0);
    c.state.started_at = Some(now_rfc3339());
    c.state.error = None;
    c.state.start_exit_code = None;
    c.state.failed_at = None;
    c.state.stopping = false;
    c.state.starts += 1;
    c.save_state()?;
    if let Some(p) = &c.config.pidfile {
        write_atomic(p, format!("{}", sync.pid).as_bytes())?;
    }
    let attached = attach.output || attach.stdin;
    Ok(Started {
        monitor: if attached {
            Some(child)
        } else {
            // Detached: the monitor lives on in its own session; not reaping
            // it here is fine, we exit and init adopts it.
            drop(child);
            None
        },
        reports: attached.then_some(reports),
    })
}

/// `cairn-monitor`'s command line: its spec, the sync pipe's write end and
/// the monitor lock inherited, the standard streams as `attach` asks.
fn monitor_command(
    c: &Container,
    helpers: &Helpers,
    attach: &Attach,
    sync_w: &OwnedFd,
    monitor_lock: &OwnedFd,
) -> Command {
    let mut cmd = Command::new(&helpers.monitor);
    let sync_fd = cairn_runtime::inherit_fd(&mut cmd, sync_w);
    let lock_fd = cairn_runtime::inherit_fd(&mut cmd, monitor_lock);
    let stream = |on: bool| if on { Stdio::inherit() } else { Stdio::null() };
    cmd.arg("--spec")
        .arg(c.dir.join("monitor.json"))
        .arg("--sync-fd")
        .arg(sync_fd.to_string())
        .arg("--lock-fd")
        .arg(lock_fd.to_string())
        .stdin(stream(attach.stdin))
        .stdout(stream(attach.output && !attach.no_stdout))
        .stderr(stream(attach.output && !attach.no_stderr));
    cmd
}

/// The network of the start about to happen: what a crashed earlier run
/// left is torn down first, then addresses are allocated and the spec
/// recorded (`network.json`) before the monitor exists, so a later
/// command can always undo it. A refusal (a missing tool, a rootless
/// bridge, an address taken) fails the start as the runtime's would.
fn start_network(c: &mut Container) -> Result<network::setup::Plan> {
    let Some(root) = events::root_of(c).map(Path::to_owned) else {
        return Ok(network::setup::Plan::default());
    };
    // What crashed runs left, this container's and others' (their
    // addresses, ports and namespaces).
    if let Err(e) = network::setup::release(c, &root) {
        tracing::warn!("{}", e.with_causes());
    }
    if let Err(e) = network::setup::sweep(&root) {
        tracing::warn!("{}", e.with_causes());
    }
    let plan = match network::setup::plan(c, &root, crate::userns::rootless())
        .and_then(|p| network::setup::record(c, p.spec.as_ref()).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => {
            let _ = network::Networks::new(&root).free(c.config.id.as_str());
            let msg = e.with_causes();
            record_failure(c, &msg, 125)?;
            return Err(Error::Refused(msg));
        }
    };
    Ok(plan)
}

/// Undoes the network of a start that failed (the monitor tears down what
/// it set up itself; this covers a monitor that died first).
fn release_network(c: &Container) {
    if let Some(root) = events::root_of(c) {
        if let Err(e) = network::setup::release(c, root) {
            tracing::warn!("{}", e.with_causes());
        }
    }
}

/// Writes the three helpers' specs for starting `c`. What the runtime
/// would refuse fails the start as its refusal did: recorded, status 125.
fn write_specs(
    c: &mut Container,
    helpers: &Helpers,
    attach: &Attach,
    net: &network::setup::Plan,
) -> Result<()> {
    let specs = || -> Result<(MountSpec, PivotSpec, MonitorSpec)> {
        Ok((
            spec::mount_spec(&c.config, &c.dir)?,
            spec::pivot_spec(&c.config, &c.dir),
            spec::monitor_spec(helpers, &c.config, &c.dir, attach.clone())?,
        ))
    };
    let (mount, pivot, mut monitor) = match specs() {
        Ok(specs) => specs,
        Err(e) => {
            let msg = e.with_causes();
            record_failure(c, &msg, 125)?;
            return Err(Error::Refused(msg));
        }
    };
    write_json(&c.dir.join("mount.json"), &mount)?;
    write_json(&c.dir.join("pivot.json"), &pivot)?;
    monitor.events = events::monitor_events(c);
    monitor.network = net.spec.clone();
    monitor.join_net = net.join_net.clone();
    let (cgroup, warning) = match super::cgroups::plan(&c.config, crate::userns::rootless()) {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            record_failure(c, &msg, 125)?;
            return Err(Error::Refused(msg));
        }
    };
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    c.state.cgroup = cgroup.as_ref().map(|g| g.path.clone());
    c.state.paused = false;
    monitor.cgroup = cgroup;
    write_json(&c.dir.join("monitor.json"), &monitor)
}

/// What `exec` (and `enter`) run in a container besides the command.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions<'a> {
    /// The user (`NAME|UID[:GROUP|GID]`); the container's when `None`.
    pub user: Option<&'a str>,
    /// The working directory; the container's when `None`.
    pub workdir: Option<&'a str>,
    /// `NAME=VALUE` entries over the container's environment.
    pub env: &'a [String],
    /// All capabilities, no seccomp filter's capability limits.
    pub privileged: bool,
}

/// The `cairn-enter` command line that runs a command in the running
/// container `c` (its PID 1 is `pid`), without the command and its terminal
/// flags, which the caller appends after `--tty`/`--stdin` and `--`.
///
/// `cairn-enter` is started from a sealed copy (the returned descriptor,
/// which must stay open until the exec): its forked child is seen by the
/// container before it execs (see `cairn_runtime::sealed`).
pub fn exec_command(c: &Container, pid: i32, o: &ExecOptions<'_>) -> Result<(Command, OwnedFd)> {
    let path = spec::helper("cairn-enter")?;
    let (sealed, exec_path) =
        cairn_runtime::sealed::copy_of(&path).map_err(|e| Error::Refused(e.to_string()))?;
    let mut cmd = Command::new(exec_path);
    cmd.arg0(&path);
    cmd.arg("--target").arg(pid.to_string()).arg("--all");
    let user = o.user.unwrap_or(&c.config.process.user);
    if !user.is_empty() {
        cmd.arg("--user").arg(user);
    }
    if let Some(w) = o.workdir {
        cmd.arg("--workdir").arg(w);
    } else if !c.config.process.workdir.is_empty() {
        cmd.arg("--workdir").arg(&c.config.process.workdir);
    }
    // podman: HOME follows an explicit --user unless the container was
    // given one (an --env of the exec still wins).
    if o.user.is_some() && c.config.process.home_default {
        cmd.arg("--user-home");
    }
    for e in o.env {
        cmd.arg("--env").arg(e);
    }
    if o.privileged || c.config.privileged {
        cmd.arg("--privileged");
    }
    // The exec'd command counts against the container's limits and is
    // frozen with it, as podman's exec does.
    if let Some(cg) = &c.state.cgroup {
        cmd.arg("--join-cgroup").arg(cg);
    }
    if let Some(root) = events::root_of(c) {
        let exit_event = events::LogEvent {
            log: events::log_path(root),
            event: events::container_event(&c.config, "exec"),
        };
        if let Ok(json) = serde_json::to_string(&exit_event) {
            cmd.arg("--exit-event").arg(json);
        }
    }
    for cap in &c.config.cap_add {
        cmd.arg("--cap-add").arg(cap);
    }
    // The container's own filter, as crun exec applies it.
    if c.config.seccomp_filter {
        cmd.arg("--seccomp")
            .arg(c.dir.join(super::seccomp::BPF_FILE));
        for f in &c.config.seccomp_flags {
            cmd.arg("--seccomp-flag").arg(f);
        }
    }
    Ok((cmd, sealed))
}

/// Takes `monitor.lock` exclusively, emptied for the next monitor's pid.
/// A live monitor holds it: with `adopt`, `None` as soon as its pid is
/// there (so the caller adopts it); without, waits for it to exit. Either
/// way for 5 s at most.
fn lock_monitor(c: &Container, adopt: bool) -> Result<Option<OwnedFd>> {
    let path = c.dir.join("monitor.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f.try_lock() {
            Ok(()) => {
                f.set_len(0)
                    .with_context(|| format!("truncate {}", path.display()))?;
                return Ok(Some(OwnedFd::from(f)));
            }
            // Held by a monitor, or for an instant by a reader (shared).
            Err(fs::TryLockError::WouldBlock) => {
                let monitor = c.monitor_holding_lock();
                if adopt && monitor.is_some() {
                    return Ok(None);
                }
                if Instant::now() > deadline {
                    let msg = format!(
                        "container {}: cairn-monitor {} still holds {} after 5 s: try again, or stop it with `cairn rm -f {}`",
                        c.config.name,
                        monitor.map_or_else(|| "(pid not known)".to_owned(), |p| p.to_string()),
                        path.display(),
                        c.config.name
                    );
                    return Err(Error::Refused(msg));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("lock {}", path.display()))
            }
        }
    }
}

/// The monitor's first report, and the pipe for its next ones.
fn read_sync(fd: OwnedFd) -> Result<(SyncLine, BufReader<fs::File>)> {
    let mut line = String::new();
    let mut reader = BufReader::new(fs::File::from(fd));
    reader
        .read_line(&mut line)
        .context("read the monitor's report")?;
    if line.trim().is_empty() {
        bail!("no report");
    }
    let sync = SyncLine::parse(&line).with_context(|| format!("bad report {line:?}"))?;
    Ok((sync, reader))
}

fn record_failure(c: &mut Container, msg: &str, code: i32) -> Result<()> {
    c.state.error = Some(msg.to_owned());
    c.state.start_exit_code = Some(code);
    c.state.failed_at = Some(now_rfc3339());
    c.state.started_at = None;
    c.save_state()
}

/// Writes the files bound into the container: hostname, hosts, resolv.conf,
/// .containerenv (again on each start: the host's may have changed).
pub(crate) fn prepare_files(c: &Container, net: &network::setup::NetFiles) -> Result<()> {
    let cfg = &c.config;
    write_atomic(
        &c.dir.join("hostname"),
        format!("{}\n", cfg.hostname).as_bytes(),
    )?;
    let host_hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    write_atomic(
        &c.dir.join("hosts"),
        spec::hosts_file(cfg, &host_hosts, super::files::host_ip(), net).as_bytes(),
    )?;
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_atomic(
        &c.dir.join("resolv.conf"),
        spec::resolv_conf(cfg, &host_resolv, net).as_bytes(),
    )?;
    let rootless = crate::userns::rootless();
    write_atomic(
        &c.dir.join("containerenv"),
        spec::containerenv(cfg, rootless).as_bytes(),
    )?;
    if let Some(tz) = &cfg.timezone {
        // A copy, as podman makes: the host's zone file may change or go.
        let zone = fs::read(&tz.file)
            .with_context(|| format!("read the time zone file {}", tz.file.display()))?;
        write_atomic(&c.dir.join("localtime"), &zone)?;
    }
    Ok(())
}

/// The signals an attached `run`/`start -a` takes over, registered before
/// the container starts: one sent as soon as the container runs (before
/// [`wait_attached`]) is queued and forwarded, never lost or fatal to us.
#[derive(Debug)]
pub struct SignalProxy(signal_hook::iterator::Signals);

/// Takes over SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 with
/// `sig_proxy` (podman's sig-proxy; without it they act on us as usual,
/// and the container, in the monitor's session, runs on), and SIGWINCH.
pub fn signal_proxy(sig_proxy: bool) -> Result<SignalProxy> {
    use signal_hook::consts::*;
    let proxied: &[i32] = if sig_proxy {
        &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
    } else {
        &[SIGWINCH]
    };
    let signals =
        signal_hook::iterator::Signals::new(proxied).context("install signal handlers")?;
    Ok(SignalProxy(signals))
}

/// Waits for an attached monitor, forwarding the signals `proxy` took over
/// to the container and SIGWINCH to the monitor (which resizes the pty).
/// Returns the container's exit code, or [`Attached::Detached`] when the
/// monitor reported the detach keys on `reports`.
pub fn wait_attached(
    c: &Container,
    mut monitor: std::process::Child,
    reports: Option<BufReader<fs::File>>,
    proxy: SignalProxy,
) -> Result<Attached> {
    let mut signals = proxy.0;
    let handle = signals.handle();
    let pid = c.state.pid;
    let pid_start = c.state.pid_start;
    let monitor_pid = monitor.id() as i32;
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            let Ok(s) = Signal::try_from(sig) else {
                continue;
            };
            if s == Signal::SIGWINCH {
                let _ = kill(Pid::from_raw(monitor_pid), s);
            } else if proc_start_time(pid) == Some(pid_start) {
                if let Err(e) = crate::userns::kill(Pid::from_raw(pid), s) {
                    if e != Errno::ESRCH {
                        tracing::warn!("forward {s} to the container (pid {pid}): {e}");
                    }
                }
            }
        }
    });
    // The monitor's exit and its detach report race: whichever comes first.
    let (tx, rx) = std::sync::mpsc::channel::<Option<std::io::Result<std::process::ExitStatus>>>();
    if let Some(mut reports) = reports {
        let tx = tx.clone();
        // Not joined: it ends when the monitor closes the pipe.
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(reports.read_line(&mut line), Ok(n) if n > 0) {
                if line.contains("\"detached\":true") {
                    let _ = tx.send(None);
                    return;
                }
                line.clear();
            }
        });
    }
    // Not joined after a detach: the monitor runs on.
    std::thread::spawn(move || {
        let _ = tx.send(Some(monitor.wait()));
    });
    let status = match rx.recv() {
        Ok(Some(status)) => status.context("wait for cairn-monitor"),
        Err(_) => bail!("cairn-monitor's waiter ended without a status"),
        Ok(None) => {
            handle.close();
            let _ = forwarder.join();
            return Ok(Attached::Detached);
        }
    };
    handle.close();
    let _ = forwarder.join();
    let status = status?;
    if let Some(rec) = c.exit_record() {
        return Ok(Attached::Exited(rec.exit_code));
    }
    Ok(Attached::Exited(status.code().unwrap_or(125)))
}

/// Sends `sig` to the container's PID 1 if it runs.
pub fn signal(c: &Container, sig: Signal) -> Result<()> {
    if !c.pid_alive() || c.exit_record().is_some() {
        return Err(Error::Refused(format!(
            "can only kill running containers. {} is in state {}: container state improper",
            c.config.id,
            c.live().status.as_str()
        )));
    }
    crate::userns::kill(Pid::from_raw(c.state.pid), sig).with_context(|| {
        format!(
            "send {sig} to container {} (pid {})",
            c.config.name, c.state.pid
        )
    })?;
    events::record_container(c, "kill");
    Ok(())
}

/// Stops `c`: its stop signal, then SIGKILL after `timeout`. A container
/// that is not running is left alone.
pub fn stop(c: &mut Container, timeout: Duration) -> Result<()> {
    let _lock = c.lock()?;
    c.reload()?;
    if !c.live().status.is_alive() {
        return Ok(());
    }
    c.state.stopping = true;
    c.save_state()?;
    let sig = c.config.stop_signal.unwrap_or(Signal::SIGTERM);
    let pid = Pid::from_raw(c.state.pid);
    if let Err(e) = send_stop_signal(c, pid, sig) {
        c.state.stopping = false;
        c.save_state()?;
        return Err(e);
    }
    // A paused container gets the signal when it is thawed.
    if c.state.paused {
        if let Some(cg) = super::cgroups::of(c)? {
            cg.set_frozen(false)
                .map_err(|e| Error::Refused(format!("stop {}: {e}", c.config.name)))?;
        }
        c.state.paused = false;
        c.save_state()?;
    }
    if !wait_dead(c, timeout) {
        tracing::info!(
            "container {} did not stop within {:?} after {sig}: sending SIGKILL",
            c.config.name,
            timeout
        );
        if c.pid_alive() {
            if let Err(e) = send_stop_signal(c, pid, Signal::SIGKILL) {
                c.state.stopping = false;
                c.save_state()?;
                return Err(e);
            }
        }
        if !wait_dead(c, Duration::from_secs(10)) {
            c.state.stopping = false;
            c.save_state()?;
            return Err(Error::Refused(format!(
                "container {} (pid {}) did not die after SIGKILL: it may be stuck in the kernel (D state)",
                c.config.name, c.state.pid
            )));
        }
    }
    // The monitor records the exit right after PID 1 ends.
    let deadline = Instant::now() + Duration::from_secs(2);
    while c.exit_record().is_none() && c.monitor_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    c.state.stopping = false;
    c.save_state()?;
    if !c.monitor_alive() {
        // A monitor killed before PID 1 could not tear the network down.
        release_network(c);
    }
    events::record_container(c, "stop");
    Ok(())
}

/// Sends `sig` to the container's PID 1 for [`stop`]: a process that has
/// already ended (ESRCH) is what stop wants; any other failure is an error
/// naming the container.
fn send_stop_signal(c: &Container, pid: Pid, sig: Signal) -> Result<()> {
    match crate::userns::kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::Context {
            what: format!(
                "stop container {}: send {sig} to its process (pid {pid})",
                c.config.name
            ),
            source: Box::new(e),
        }),
    }
}

fn wait_dead(c: &Container, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(500);
    loop {
        if !c.pid_alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Waits until `c` is not running; returns its exit code.
pub fn wait_exit(c: &Container) -> i32 {
    let mut nap = Duration::from_millis(1);
    loop {
        let live = c.live();
        if !live.status.is_alive() {
            return live.exit_code;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// `SIGTERM`, `TERM`, `term`, `15` → the signal.
pub fn parse_signal(s: &str) -> Option<Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("term"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("KILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGRTMIN"), None);
        assert_eq!(parse_signal("nope"), None);
    }
}
