//! A container's network as the monitor sets it up and tears it down
//! ([`NetworkSpec`]): netavark for bridge networks, pasta or slirp4netns for
//! rootless ones, each on a network namespace bind-mounted on a file so that
//! the tools can name it and a later command can tear it down after a crash.
//!
//! The monitor's part ([`setup`]): bind-mount the child's namespace on the
//! file, check (and for netavark, hold) the published host ports so that a
//! taken port fails the start with one line naming it, then run the tool
//! and wait, bounded, until the network is ready. A failed setup is torn
//! down before the error is returned, so nothing is left running.
//!
//! [`teardown`] is idempotent and safe to call from any later command: it
//! signals only a process that is still the tool the spec names, and
//! unmounts only an nsfs mount.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use cairn_fsutil::{write_atomic, Durability};

use crate::error::{Context as _, Error, Result};
use crate::spec::{NetworkSpec, PortForward};

/// How long pasta or slirp4netns may take to get the network ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Program names pasta runs under.
const PASTA: &[&str] = &["pasta", "passt"];
/// Program names slirp4netns runs under.
const SLIRP: &[&str] = &["slirp4netns"];

/// Most bytes of a tool's stderr kept for an error message.
pub(crate) const STDERR_MAX: usize = 64 * 1024;

/// Undo what the monitor set up for `spec`: netavark's teardown (its
/// firewall rules, veth, and the bridge and aardvark-dns once unused), or
/// the pasta/slirp4netns process ended; then the namespace file unmounted
/// and removed. Parts already gone are skipped, so a second call, or one
/// after a crash at any point of the setup, is harmless. Every part is
/// tried; the first error is returned.
pub fn teardown(spec: &NetworkSpec) -> Result<()> {
    let mut first: Option<Error> = None;
    let mut keep = |r: Result<()>| {
        if let (Err(e), None) = (r, &first) {
            first = Some(e);
        }
    };
    match spec {
        NetworkSpec::Netavark {
            binary,
            aardvark,
            config_dir,
            netns_file,
            options,
            rootless,
            ..
        } => {
            if is_nsfs_mount(netns_file) {
                let cmd = netavark_command(
                    binary, *rootless, config_dir, aardvark, "teardown", netns_file,
                );
                keep(netavark_lock(config_dir).and_then(|_lock| {
                    run_tool(cmd, &options.to_string(), "netavark teardown").map(|_| ())
                }));
            }
        }
        NetworkSpec::Pasta { pid_file, .. } => keep(end_tool(pid_file, PASTA)),
        NetworkSpec::Slirp4netns {
            pid_file,
            api_socket,
            ..
        } => {
            keep(end_tool(pid_file, SLIRP));
            keep(remove_if_there(api_socket));
        }
    }
    keep(release_netns_file(spec.netns_file()));
    first.map_or(Ok(()), Err)
}

/// Run a tool with `stdin` as its standard input; its stdout on success,
/// else an error with (the end of) what it printed on stderr.
pub(crate) fn run_tool(mut cmd: Command, stdin: &str, what: &str) -> Result<String> {
    use std::io::Write as _;
    let program = cmd.get_program().to_owned();
    crate::sys::default_signals_on_exec(&mut cmd, crate::monitor::IGNORED);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(&format!("start {what}:"), &program)?;
    if let Some(mut input) = child.stdin.take() {
        // A tool that exits early closes its stdin: its stderr says why.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child
        .wait_with_output()
        .ctx(&format!("wait for {what}:"), &program)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // netavark reports its error as JSON on stdout ({"error": "..."}).
    let said = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from));
    let msg = match said {
        Some(e) if !e.trim().is_empty() => e.split_whitespace().collect::<Vec<_>>().join(" "),
        _ => tool_message(&out.stderr),
    };
    Err(Error::Usage(format!(
        "{what} failed ({}): {msg}",
        out.status
    )))
}

/// What a tool said on stderr, as one line: blank lines, syslog noise and
/// a usage text left out, at most the last 4 lines joined with "; ", at
/// most 600 bytes.
fn tool_message(stderr: &[u8]) -> String {
    let err = &stderr[stderr.len().saturating_sub(STDERR_MAX)..];
    let text = String::from_utf8_lossy(err);
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("Failed to send") && !l.contains("syslog"))
        .collect();
    let mut msg = said[said.len().saturating_sub(4)..].join("; ");
    if msg.len() > 600 {
        let mut end = 600;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push_str("...");
    }
    if msg.is_empty() {
        "no message".into()
    } else {
        msg
    }
}

/// `netavark [--rootless true] --config DIR --aardvark-binary A VERB NETNS`.
/// netavark's runs take turns: two at once race on the firewall chains
/// they share ("Chain already exists", "No chain/target/match by that
/// name"), as podman's runs would; podman serializes them on a lock file in
/// the config directory, and so does cairn, host-wide for every store.
fn netavark_lock(config_dir: &Path) -> Result<cairn_fsutil::LockGuard> {
    std::fs::create_dir_all(config_dir).ctx("create netavark's directory", config_dir)?;
    let path = config_dir.join("netavark.lock");
    cairn_fsutil::LockGuard::acquire(&path, cairn_fsutil::LockMode::Exclusive)
        .map_err(|e| Error::sys("lock", &path, e.source))
}

fn netavark_command(
    binary: &Path,
    rootless: bool,
    config_dir: &Path,
    aardvark: &Path,
    verb: &str,
    netns_file: &Path,
) -> Command {
    let mut cmd = Command::new(binary);
    if rootless {
        cmd.args(["--rootless", "true"]);
    }
    cmd.arg("--config")
        .arg(config_dir)
        .arg("--aardvark-binary")
        .arg(aardvark)
        .arg(verb)
        .arg(netns_file);
    cmd
}

/// End the process whose pid `pid_file` holds, if it is still one of
/// `names` (its executable's file name starts with one of them): SIGTERM,
/// then SIGKILL after a second; waited for (bounded) until it has exited,
/// so that its ports are free on return. The pid file is removed.
fn end_tool(pid_file: &Path, names: &[&str]) -> Result<()> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::sys("read", pid_file, e)),
    };
    if let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 1) {
        // The pidfd becomes readable when the process has exited, its
        // descriptors closed (/proc/PID/exe goes earlier, with its memory,
        // while its sockets may still be open).
        let pidfd = crate::sys::pidfd_open(pid).ok();
        if is_tool(pid, names) {
            let pid = Pid::from_raw(pid);
            for sig in [Signal::SIGTERM, Signal::SIGKILL] {
                let _ = kill(pid, sig);
                if pidfd
                    .as_ref()
                    .is_none_or(|fd| exited_within(fd, Duration::from_secs(1)))
                {
                    break;
                }
            }
        }
    }
    remove_if_there(pid_file)
}

/// Whether the process of `pidfd` exits within `limit`.
fn exited_within(pidfd: &OwnedFd, limit: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) if !left.is_zero() => {}
            Err(_) => return false,
        }
    }
}

/// Remove `path` unless it is already gone.
fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::sys("remove", path, e)),
        _ => Ok(()),
    }
}

/// Process `pid` exists, is not a zombie, and runs a program named like
/// one of `names`.
pub(crate) fn is_tool(pid: i32, names: &[&str]) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    names.iter().any(|n| name.starts_with(n))
}

/// `path` is a mount point of an nsfs (a bind-mounted namespace).
pub(crate) fn is_nsfs_mount(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // mountinfo names the mount point by its resolved path (/var/run is
    // /run): resolve the directory, not the file (that would be the
    // namespace).
    let resolved = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => dir.canonicalize().map(|d| d.join(name)).ok(),
        _ => None,
    };
    let want = resolved.as_deref().unwrap_or(path).to_string_lossy();
    crate::mountinfo::parse(&text)
        .iter()
        .any(|m| m.fstype == "nsfs" && m.mount_point == want)
}

/// Unmount (lazily: a tool may still hold it open) every mount on the
/// namespace file, then remove it.
fn release_netns_file(path: &Path) -> Result<()> {
    while is_nsfs_mount(path) {
        nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
            .ctx("unmount the network namespace file", path)?;
    }
    remove_if_there(path)
}

/// What the monitor holds while the container's network is up; dropped
/// after the teardown.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// netavark's published host ports, held (see `sys::bind_port`):
    /// netavark only writes firewall rules, and these keep other programs
    /// off the ports while the rules send them to the container.
    _reserved: Vec<OwnedFd>,
    /// The write end of slirp4netns's `--exit-fd` pipe: it closes when the
    /// monitor ends, however it ends, and slirp4netns then exits.
    _exit_pipe: Option<OwnedFd>,
    /// slirp4netns's stderr (non-blocking), for the monitor's loop to take
    /// and drain so that slirp4netns never blocks on it.
    pub(crate) stderr: Option<OwnedFd>,
}

/// Give the container whose first process is `child` the network `spec`
/// describes (see the module doc). On failure everything set up so far is
/// torn down and the error is one line naming what failed.
pub(crate) fn setup(spec: &NetworkSpec, child: Pid) -> Result<Held> {
    let held = attach_netns(spec, child).and_then(|()| match spec {
        NetworkSpec::Netavark {
            binary,
            aardvark,
            config_dir,
            netns_file,
            options,
            status_file,
            rootless,
        } => {
            let ports: Vec<PortForward> = match options.get("port_mappings") {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| Error::Usage(format!("netavark options: port_mappings: {e}")))?,
            };
            let reserved = reserve_ports(&ports)?;
            // netavark creates its aardvark-dns directory in it, not it.
            std::fs::create_dir_all(config_dir).ctx("create netavark's directory", config_dir)?;
            let cmd =
                netavark_command(binary, *rootless, config_dir, aardvark, "setup", netns_file);
            let status = {
                let _lock = netavark_lock(config_dir)?;
                run_tool(cmd, &options.to_string(), "netavark setup")?
            };
            write_atomic(status_file, status.as_bytes(), 0o644, Durability::Volatile)
                .map_err(|e| Error::sys("write the network status", status_file, e.source))?;
            Ok(Held {
                _reserved: reserved,
                ..Held::default()
            })
        }
        NetworkSpec::Pasta {
            binary,
            args,
            netns_file,
            pid_file,
        } => {
            // pasta starts even when it cannot bind a port: check first.
            drop(reserve_ports(&pasta_ports(args))?);
            start_pasta(binary, args, netns_file, pid_file).map(|()| Held::default())
        }
        NetworkSpec::Slirp4netns { .. } => start_slirp4netns(spec),
    });
    if held.is_err() {
        if let Err(e) = teardown(spec) {
            crate::say(&format!(
                "cairn-monitor: tear down the network after a failed setup: {e}"
            ));
        }
    }
    held
}

/// Create the namespace file (tearing down what a crash left on it first)
/// and bind-mount the child's network namespace on it.
fn attach_netns(spec: &NetworkSpec, child: Pid) -> Result<()> {
    let file = spec.netns_file();
    if file.symlink_metadata().is_ok() || is_nsfs_mount(file) {
        teardown(spec)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(file)
        .ctx("create the network namespace file", file)?;
    let ns = format!("/proc/{child}/ns/net");
    nix::mount::mount(
        Some(ns.as_str()),
        file,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(&format!("bind-mount {ns} on"), file)
}

/// Bind every host port of `ports` (TCP and UDP; SCTP and port 0 are left
/// to the tool), failing with one line that names the first one taken.
fn reserve_ports(ports: &[PortForward]) -> Result<Vec<OwnedFd>> {
    let mut held = Vec::new();
    for p in ports {
        let tcp = match p.protocol.as_str() {
            "tcp" => true,
            "udp" => false,
            _ => continue,
        };
        let ip: IpAddr = if p.host_ip.is_empty() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            p.host_ip.parse().map_err(|_| {
                Error::Usage(format!("published port: bad host address {:?}", p.host_ip))
            })?
        };
        for i in 0..p.range.max(1) {
            let (Some(port), Some(cport)) =
                (p.host_port.checked_add(i), p.container_port.checked_add(i))
            else {
                break;
            };
            if port == 0 {
                continue;
            }
            let addr = SocketAddr::new(ip, port);
            match crate::sys::bind_port(addr, tcp) {
                Ok(fd) => held.push(fd),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                    return Err(Error::Usage(format!(
                        "host port {addr}/{} is already in use: stop the program that \
                         holds it, or publish container port {cport} on another host port",
                        p.protocol
                    )))
                }
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "host port {addr}/{}: cannot bind it: {e}",
                        p.protocol
                    )))
                }
            }
        }
    }
    Ok(held)
}

/// The host ports pasta's `-t`/`-u` options publish: `[ADDR[%IF]/]PORTS`
/// where PORTS is `none`, `auto`, `all` (none named) or a comma list of
/// `[~]FIRST[-LAST][:TARGET[-LAST]]` (`~` excludes: none named). What
/// does not parse is left to pasta to refuse.
pub(crate) fn pasta_ports(args: &[String]) -> Vec<PortForward> {
    let mut out = Vec::new();
    let mut it = args.iter().map(String::as_str);
    while let Some(arg) = it.next() {
        let (protocol, spec) = match arg {
            "-t" | "--tcp-ports" => ("tcp", it.next()),
            "-u" | "--udp-ports" => ("udp", it.next()),
            _ => match (
                arg.strip_prefix("--tcp-ports="),
                arg.strip_prefix("--udp-ports="),
            ) {
                (Some(v), _) => ("tcp", Some(v)),
                (_, Some(v)) => ("udp", Some(v)),
                _ => match (arg.strip_prefix("-t"), arg.strip_prefix("-u")) {
                    (Some(v), _) if !v.is_empty() => ("tcp", Some(v)),
                    (_, Some(v)) if !v.is_empty() => ("udp", Some(v)),
                    _ => continue,
                },
            },
        };
        let Some(spec) = spec else { continue };
        let (addr, ports) = match spec.rsplit_once('/') {
            Some((a, p)) => (a.split('%').next().unwrap_or_default(), p),
            None => ("", spec),
        };
        for part in ports.split(',') {
            if part.starts_with('~') {
                continue;
            }
            let (host, target) = part.split_once(':').unwrap_or((part, part));
            let range = |r: &str| -> Option<(u16, u16)> {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some((a.parse().ok()?, b.parse().ok()?))
            };
            let (Some((first, last)), Some((to, _))) = (range(host), range(target)) else {
                continue;
            };
            if last < first {
                continue;
            }
            out.push(PortForward {
                host_ip: addr.to_string(),
                container_port: to,
                host_port: first,
                range: last - first + 1,
                protocol: protocol.into(),
            });
        }
    }
    out
}

/// Run pasta, which configures the namespace and forks to the background
/// when ready: its first process exits 0 then (waited for, bounded), and
/// the pid file it wrote names the pasta that stays.
fn start_pasta(binary: &Path, args: &[String], netns_file: &Path, pid_file: &Path) -> Result<()> {
    remove_if_there(pid_file)?;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .arg("--pid")
        .arg(pid_file)
        .arg("--netns")
        .arg(netns_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::default_signals_on_exec(&mut cmd, crate::monitor::IGNORED);
    let mut child = cmd.spawn().ctx("start pasta:", binary)?;
    let status = wait_bounded(&mut child, READY_TIMEOUT);
    // The background pasta has its stderr on /dev/null: what the pipe
    // holds is what the first process said.
    let said = child.stderr.take().map(drain).unwrap_or_default();
    match status {
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Usage(format!(
                "pasta did not get the network ready within {} s: {}",
                READY_TIMEOUT.as_secs(),
                tool_message(&said)
            )));
        }
        Some(st) if !st.success() => {
            return Err(Error::Usage(format!(
                "pasta failed ({st}): {}",
                tool_message(&said)
            )))
        }
        Some(_) => {}
    }
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    match pid {
        Some(pid) if is_tool(pid, PASTA) => Ok(()),
        _ => Err(Error::Usage(format!(
            "pasta ended right after it started (pid file {}): {}",
            pid_file.display(),
            tool_message(&said)
        ))),
    }
}

/// Run slirp4netns on the namespace file, record its pid, wait (bounded)
/// until it says it is ready, then publish the ports through its API
/// socket.
fn start_slirp4netns(spec: &NetworkSpec) -> Result<Held> {
    let NetworkSpec::Slirp4netns {
        binary,
        args,
        netns_file,
        pid_file,
        api_socket,
        ports,
    } = spec
    else {
        unreachable!("start_slirp4netns takes a slirp4netns spec");
    };
    drop(reserve_ports(ports)?);
    remove_if_there(api_socket)?;
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("create a pipe in", "cairn-monitor")
    };
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    // A unix socket path holds at most 107 bytes, a container directory's
    // often more: slirp4netns binds the socket's name relative to its
    // directory, and the monitor reaches it through a descriptor of that
    // directory (/proc/self/fd/N/NAME).
    let (sock_dir, sock_name) = split_socket(api_socket)?;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .current_dir(sock_dir)
        .arg("--netns-type=path")
        .arg("--api-socket")
        .arg(sock_name)
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
        .arg(netns_file)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::inherit_fd(&mut cmd, ready_w.as_raw_fd());
    crate::sys::inherit_fd(&mut cmd, exit_r.as_raw_fd());
    crate::sys::default_signals_on_exec(&mut cmd, crate::monitor::IGNORED);
    let mut child = cmd.spawn().ctx("start slirp4netns:", binary)?;
    drop((ready_w, exit_r));
    let stderr: Option<OwnedFd> = child.stderr.take().map(Into::into);
    write_atomic(
        pid_file,
        child.id().to_string().as_bytes(),
        0o644,
        Durability::Volatile,
    )
    .map_err(|e| Error::sys("write the pid file", pid_file, e.source))?;
    if let Err(why) = wait_ready(&ready_r) {
        let _ = child.kill();
        let _ = wait_bounded(&mut child, Duration::from_secs(1));
        let said = stderr.map(drain).unwrap_or_default();
        return Err(Error::Usage(format!(
            "slirp4netns {why}: {}",
            tool_message(&said)
        )));
    }
    let dir = std::fs::File::open(sock_dir).ctx("open the directory of", api_socket)?;
    let short = std::path::PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        sock_name.to_string_lossy()
    ));
    for p in ports {
        add_hostfwd(&short, p).map_err(|e| match e {
            Error::Sys {
                op, source, hint, ..
            } => Error::Sys {
                op,
                path: api_socket.to_path_buf(),
                source,
                hint,
            },
            e => e,
        })?;
    }
    drop(dir);
    if let Some(fd) = &stderr {
        let _ = crate::fdio::set_nonblocking(fd);
    }
    Ok(Held {
        _exit_pipe: Some(exit_w),
        stderr,
        ..Held::default()
    })
}

/// Wait (bounded) for slirp4netns's ready byte; the reason it did not come.
fn wait_ready(ready: &OwnedFd) -> std::result::Result<(), String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "did not get the network ready within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("ready pipe: {e}")),
        }
        let mut b = [0u8; 1];
        return match nix::unistd::read(ready, &mut b) {
            Ok(1) => Ok(()),
            Ok(_) => Err("ended before the network was ready".into()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => Err(format!("ready pipe: {e}")),
        };
    }
}

/// Publish one port range through slirp4netns's API socket
/// (`add_hostfwd`, one request per port).
/// The directory and file name of a socket path (absolute, as validated).
fn split_socket(path: &Path) -> Result<(&Path, &std::ffi::OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if name.len() < 100 => Ok((dir, name)),
        _ => Err(Error::Usage(format!(
            "slirp4netns API socket {}: a file name of under 100 bytes in a directory is needed",
            path.display()
        ))),
    }
}

fn add_hostfwd(api: &Path, p: &PortForward) -> Result<()> {
    let host_addr = if p.host_ip.is_empty() {
        "0.0.0.0"
    } else {
        &p.host_ip
    };
    for i in 0..p.range.max(1) {
        let (Some(host_port), Some(guest_port)) =
            (p.host_port.checked_add(i), p.container_port.checked_add(i))
        else {
            break;
        };
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": p.protocol,
                "host_addr": host_addr,
                "host_port": host_port,
                "guest_port": guest_port,
            }
        });
        let mut sock = std::os::unix::net::UnixStream::connect(api)
            .ctx("connect to the slirp4netns API socket", api)?;
        let _ = sock.set_read_timeout(Some(READY_TIMEOUT));
        let mut reply = String::new();
        sock.write_all(req.to_string().as_bytes())
            .and_then(|()| sock.shutdown(std::net::Shutdown::Write))
            .and_then(|()| sock.read_to_string(&mut reply).map(|_| ()))
            .ctx("talk to slirp4netns on its API socket", api)?;
        let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap_or_default();
        if let Some(err) = reply.get("error") {
            let desc = err
                .get("desc")
                .and_then(|d| d.as_str())
                .unwrap_or("no message");
            return Err(Error::Usage(format!(
                "slirp4netns could not publish host port {host_addr}:{host_port}/{}: {desc}",
                p.protocol
            )));
        }
    }
    Ok(())
}

/// Wait for `child` at most `limit`; its status, or `None` past it.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => return None,
        }
    }
}

/// What a pipe holds now, without waiting (at most [`STDERR_MAX`] bytes).
fn drain(fd: impl Into<OwnedFd>) -> Vec<u8> {
    let fd: OwnedFd = fd.into();
    let _ = crate::fdio::set_nonblocking(&fd);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < STDERR_MAX {
        match crate::fdio::read_some(fd.as_fd(), &mut buf) {
            crate::fdio::Read::Data(n) => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pasta(dir: &Path) -> NetworkSpec {
        NetworkSpec::Pasta {
            binary: PathBuf::from("/usr/bin/pasta"),
            args: vec![],
            netns_file: dir.join("netns"),
            pid_file: dir.join("pasta.pid"),
        }
    }

    #[test]
    fn teardown_spares_a_process_that_is_not_the_tool_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let spec = pasta(dir.path());
        // Nothing set up yet (a crash before the setup): nothing to do.
        teardown(&spec).unwrap();
        // The pid file names a process that is not pasta (the pid was
        // reused): it must live on; the stale files go.
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(dir.path().join("pasta.pid"), sleeper.id().to_string()).unwrap();
        std::fs::write(dir.path().join("netns"), b"").unwrap();
        teardown(&spec).unwrap();
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "a foreign process was signalled"
        );
        assert!(!dir.path().join("pasta.pid").exists());
        assert!(!dir.path().join("netns").exists());
        teardown(&spec).unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    fn fwd(ip: &str, host: u16, to: u16, range: u16, proto: &str) -> PortForward {
        PortForward {
            host_ip: ip.into(),
            container_port: to,
            host_port: host,
            range,
            protocol: proto.into(),
        }
    }

    #[test]
    fn pasta_port_options_name_their_host_ports() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pasta_ports(&args(&[
                "--config-net",
                "-t",
                "8080",
                "-u",
                "127.0.0.1/5353:53",
                "--tcp-ports=9000-9002:80-82,~9001",
                "-t8443:443",
                "-T",
                "none",
                "-u",
                "none",
                "-t",
                "auto",
                "-t",
                "::1%lo/7000",
            ])),
            [
                fwd("", 8080, 8080, 1, "tcp"),
                fwd("127.0.0.1", 5353, 53, 1, "udp"),
                fwd("", 9000, 80, 3, "tcp"),
                fwd("", 8443, 443, 1, "tcp"),
                fwd("::1", 7000, 7000, 1, "tcp"),
            ]
        );
        // Nothing to check: no ports, or what pasta itself will refuse.
        assert!(pasta_ports(&args(&["-t", "all", "-u", "x-y", "-t"])).is_empty());
    }

    #[test]
    fn a_held_port_is_reported_taken_and_released_on_drop() {
        // A port the kernel picks, held by someone else.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let e = reserve_ports(&[fwd("127.0.0.1", port, 80, 1, "tcp")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("host port 127.0.0.1:{port}/tcp is already in use"))
                && e.contains("container port 80"),
            "{e}"
        );
        drop(other);
        // Free now: held (another bind, even with SO_REUSEADDR, fails),
        // then released. (A sibling test's fork may hold a copy of `other`
        // until its child execs: wait that out.)
        // Every "it is free now" below waits that out the same way.
        fn eventually<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> T {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match f() {
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    r => break r.unwrap(),
                }
            }
        }
        let held = eventually(|| reserve_ports(&[fwd("127.0.0.1", port, 80, 1, "tcp")]));
        assert_eq!(held.len(), 1);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        drop(held);
        eventually(|| std::net::TcpListener::bind(("127.0.0.1", port)));
        // UDP: a second plain bind fails while it is held.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = udp.local_addr().unwrap().port();
        drop(udp);
        let held = eventually(|| reserve_ports(&[fwd("127.0.0.1", uport, 53, 1, "udp")]));
        assert!(std::net::UdpSocket::bind(("127.0.0.1", uport)).is_err());
        drop(held);
    }

    #[test]
    fn a_failing_tool_is_reported_with_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "cat >/dev/null; echo 'port 8080 is taken' >&2; exit 3",
        ]);
        let e = run_tool(cmd, "{}", "netavark setup")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("netavark setup failed") && e.contains("port 8080 is taken"),
            "{e}"
        );
        // netavark: the error as JSON on stdout.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            r#"cat >/dev/null; printf '%s\n' '{"error": "IO error: failed to create\n directory"}'; exit 1"#,
        ]);
        let e = run_tool(cmd, "{}", "netavark setup")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "netavark setup failed (exit status: 1): IO error: failed to create directory"
            ),
            "{e}"
        );
        // pasta: an error, then a usage text of 200 lines.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "cat >/dev/null; echo \"pasta: unrecognized option '--bogus'\" >&2; \
             echo 'Failed to send 51 bytes to syslog' >&2; \
             echo 'Usage: pasta [OPTION]...' >&2; seq 200 >&2; exit 1",
        ]);
        let e = run_tool(cmd, "", "pasta").unwrap_err().to_string();
        assert!(
            e.ends_with("pasta failed (exit status: 1): pasta: unrecognized option '--bogus'"),
            "{e}"
        );
        let mut ok = Command::new("cat");
        ok.arg("-");
        assert_eq!(run_tool(ok, "{\"a\":1}", "cat").unwrap(), "{\"a\":1}");
    }
}
