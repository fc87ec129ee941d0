//! Small helpers shared by the support servers and by the end-to-end tests: free ports, port
//! waits, temp dirs, running external tools with useful errors, digests.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

/// The only address the support servers ever bind to.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before this returns, so another process can take it before the caller
/// binds it; callers that spawn a server on it should retry with a new port when the server
/// reports "address already in use" ([`crate::registry::Registry::start`] does).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((LOCALHOST, 0)).context("bind 127.0.0.1:0 to pick a free port")?;
    Ok(listener
        .local_addr()
        .context("local_addr of probe socket")?
        .port())
}

/// Waits until something accepts TCP connections on `addr` ("127.0.0.1:PORT"), or fails after
/// `timeout`.
pub fn wait_for_port(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("parse address {addr:?}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&sock, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!("nothing listening on {addr} after {timeout:?}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Creates a fresh temporary directory (removed when the returned guard drops) whose name starts
/// with `cairn-<prefix>-`, so leftovers are easy to spot.
pub fn temp_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("cairn-{prefix}-"))
        .tempdir()
        .with_context(|| format!("create temp dir for {prefix}"))
}

/// Where stores that must be fast go: `$CAIRN_TEST_STORE_DIR`, else
/// `/dev/shm` when it is a tmpfs, else the temp dir. This VM's ext4 slows
/// file creation down 3-6x under other load (DESIGN.md), which alone takes
/// the crash, concurrency and soak suites past their time budget; a SIGKILL
/// leaves the same state on tmpfs as on ext4 (the page cache outlives the
/// process either way). Set `CAIRN_TEST_STORE_DIR=/var/tmp` to run on disk.
pub fn fast_store_base() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_TEST_STORE_DIR") {
        return std::path::PathBuf::from(d);
    }
    let shm = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "));
    if shm {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// Runs `cmd` to completion with stdin closed and returns its stdout as UTF-8 (lossy).
///
/// A non-zero exit is an error whose message holds the command line, the exit status and the
/// whole stderr, so a failing test shows the tool's own explanation.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let output = run_output(cmd)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}):\n{}{}",
            command_line(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `cmd` to completion with stdin closed and returns its raw output whatever the exit
/// status (for tests that expect a failure and inspect stderr).
pub fn run_output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawn `{}`", command_line(cmd)))
}

/// Runs `skopeo --insecure-policy ARGS...` (the policy flag keeps tests independent of the host's
/// /etc/containers/policy.json) and returns stdout, or an error carrying skopeo's stderr.
pub fn skopeo(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// Runs `skopeo --insecure-policy ARGS...` and returns its raw output whatever the exit status.
pub fn skopeo_output(args: &[&str]) -> anyhow::Result<Output> {
    run_output(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// `sha256:<hex>` of `bytes`, the OCI digest notation.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Installs rustls' `ring` crypto provider as the process default (idempotent).
///
/// reqwest is built with `rustls-no-provider` in this workspace and panics when it builds a
/// client without a process-wide provider.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Writes `contents` to `path`, naming the path in the error.
pub(crate) fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    f.write_all(contents.as_ref())
        .with_context(|| format!("write {}", path.display()))
}

/// Renders a command for error messages.
pub(crate) fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// What [`spawn_server`] starts: an argv, a log file that receives stdout and stderr, and
/// environment variables to remove from the inherited environment.
#[derive(Debug)]
pub(crate) struct ServerSpec {
    pub argv: Vec<OsString>,
    pub log: File,
    pub env_remove: Vec<OsString>,
}

/// Spawns a long-running server process that dies with the test process.
///
/// Drop impls kill and reap servers, but a test binary that is killed or aborts never runs them,
/// and a server kept in a `static` is never dropped. When util-linux `setpriv` is available the
/// child is started as `setpriv --pdeathsig KILL -- ARGV` (setpriv execs, so the pid is the
/// server's). The kernel sends the parent-death signal when the *thread* that forked the child
/// exits (prctl(2), PR_SET_PDEATHSIG), not the process, so every spawn goes through one
/// dedicated thread that lives as long as the process.
pub(crate) fn spawn_server(spec: ServerSpec) -> anyhow::Result<Child> {
    type Job = (ServerSpec, mpsc::Sender<anyhow::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("cairn-tests-spawner".into())
            .spawn(move || {
                let pdeathsig = setpriv_has_pdeathsig();
                for (spec, reply) in rx {
                    let _ = reply.send(spawn_now(spec, pdeathsig));
                }
            })
            .expect("spawn the process-spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((spec, reply_tx))
        .map_err(|_| anyhow::anyhow!("process-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("process-spawner thread is gone"))?
}

fn spawn_now(spec: ServerSpec, pdeathsig: bool) -> anyhow::Result<Child> {
    let Some((program, args)) = spec.argv.split_first() else {
        bail!("empty argv");
    };
    let mut cmd = if pdeathsig {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args);
    for key in &spec.env_remove {
        cmd.env_remove(key);
    }
    let stdout = spec.log.try_clone().context("dup server log file")?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(spec.log);
    cmd.spawn()
        .with_context(|| format!("spawn `{}`", command_line(&cmd)))
}

fn setpriv_has_pdeathsig() -> bool {
    Command::new("setpriv")
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--pdeathsig"))
        .unwrap_or(false)
}

/// A response read by [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code; 0 when the connection closed before a status line.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes received before the connection closed, unframed (no chunk decoding).
    pub body: Vec<u8>,
    /// The read error that ended the exchange, if it did not end with a clean EOF.
    pub read_error: Option<String>,
}

/// The status code (0 without a status line) and the headers (names
/// lowercased) of an HTTP response head (the bytes before the blank line).
pub fn parse_http_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Length` header, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }
}

/// Sends one plain-HTTP `GET path` to `host` (`127.0.0.1:PORT`) over a fresh connection with
/// `Connection: close` and reads until the server closes, without trusting the framing: the
/// result shows exactly what arrived, which is what a truncation or dropped-connection test
/// needs. Fails only if connecting or sending fails.
pub fn http_get(host: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
    use std::io::Read as _;
    let mut stream = TcpStream::connect(host).with_context(|| format!("connect to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("send GET {path} to {host}"))?;
    let mut raw = Vec::new();
    let mut read_error = None;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(HttpResponse {
            status: 0,
            headers: Vec::new(),
            body: raw,
            read_error,
        });
    };
    let (status, headers) = parse_http_head(&raw[..split]);
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
        read_error,
    })
}

/// Host processes (other than this one) whose command line contains `needle`, with that command
/// line (arguments joined by spaces).
pub fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// Whether this process runs with effective uid 0.
///
/// Read from the `Uid:` line of `/proc/self/status` (its second field is the effective uid), as
/// this crate makes no libc calls. False when the file cannot be read.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The entry names of `dir`, sorted; empty when `dir` is missing or unreadable (tests list
/// store subdirectories that a run may not have created yet).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A command finished under `/usr/bin/time -v`: see [`run_timed`].
#[derive(Debug)]
pub struct Timed {
    /// The command's exit status and captured stdout and stderr.
    pub output: Output,
    /// Peak resident set size of the command and its descendants in KiB (`time -v`'s
    /// "Maximum resident set size"); `None` when the report has no such line.
    pub max_rss_kib: Option<u64>,
    /// Wall time, measured around the whole run.
    pub elapsed: Duration,
    /// time's whole report (empty when it wrote none), for failure messages.
    pub report: String,
}

/// Runs `wrappers...` followed by `cmd` (program, arguments, environment and working
/// directory taken from `cmd`) under `/usr/bin/time -v`, stdin closed, and reads the peak RSS
/// from time's report.
///
/// `wrappers` is a command line that execs the rest (say `prlimit --as=N --` or `timeout -s KILL
/// 5`); empty runs `cmd` directly. The environment is exactly `cmd`'s: nothing of the test
/// process leaks in.
pub fn run_timed(cmd: &Command, wrappers: &[OsString]) -> anyhow::Result<Timed> {
    let dir = temp_dir("timed")?;
    let report = dir.path().join("time.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .args(wrappers)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        timed.current_dir(d);
    }
    let started = Instant::now();
    let output = timed
        .output()
        .context("run /usr/bin/time (Debian package: time)")?;
    let elapsed = started.elapsed();
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    let max_rss_kib = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok());
    Ok(Timed {
        output,
        max_rss_kib,
        elapsed,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_port_sees_listener_and_times_out_without() {
        let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        wait_for_port(&addr, Duration::from_secs(1)).unwrap();
        drop(listener);
        let port = free_port().unwrap();
        let started = Instant::now();
        let err = wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_millis(100));
        assert!(err.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn run_reports_stderr_of_failures() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("boom") && msg.contains("exit status: 3"),
            "{msg}"
        );
    }
}
