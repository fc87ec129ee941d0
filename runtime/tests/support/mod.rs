//! Test support: the real Debian image root (unpacked once with umoci and
//! cached), containers built from the real binaries under `unshare`, and
//! process handling with timeouts. Nothing here mounts anything in the test
//! process's own mount namespace: every mount happens in a child created by
//! `unshare --mount` (whose propagation is private), and dies with it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MOUNT: &str = env!("CARGO_BIN_EXE_cairn-mount");
pub const PIVOT: &str = env!("CARGO_BIN_EXE_cairn-pivot");
pub const ENTER: &str = env!("CARGO_BIN_EXE_cairn-enter");
pub const MONITOR: &str = env!("CARGO_BIN_EXE_cairn-monitor");

/// The `unshare` flags every container runs under: its own mount, pid, UTS
/// and IPC namespaces, forked so the command is pid 1, killed with unshare.
pub const CONTAINER_UNSHARE: [&str; 6] = [
    "--mount",
    "--pid",
    "--fork",
    "--uts",
    "--ipc",
    "--kill-child",
];

/// Timeout of every process a test waits for.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Root tests need root. `CAIRN_SKIP_ROOT_TESTS=1` skips them (with a note)
/// instead of failing, for unprivileged development runs.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CAIRN_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipped: needs root (CAIRN_SKIP_ROOT_TESTS is set)");
        return false;
    }
    panic!("the helpers' tests mount filesystems and need root; set CAIRN_SKIP_ROOT_TESTS=1 to skip them");
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CAIRN_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/cairn-tests".into())
}

fn layout() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_TEST_IMAGES") {
        return p.into();
    }
    let default = cache_dir().join("oci");
    if default.join("index.json").exists() {
        return default;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/build-images.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run build-images.sh");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    )
}

/// The Debian minbase root filesystem (`debian-min`), unpacked with umoci into
/// `<cache>/helpers-rootfs/<manifest>/rootfs` once (atomically: unpack into a
/// temp dir next to it, then rename; a lock serialises test processes). Tests
/// only ever use it as a read-only overlay lower layer.
pub fn image_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let layout = layout();
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(layout.join("index.json")).expect("read index.json"),
        )
        .expect("parse index.json");
        let digest = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "debian-min")
            .and_then(|m| m["digest"].as_str())
            .expect("ref debian-min in the test layout")
            .replace(':', "-");
        let base = cache_dir().join("helpers-rootfs");
        std::fs::create_dir_all(&base).expect("create helpers-rootfs cache");
        let lock = std::fs::File::create(base.join(".lock")).expect("lock file");
        let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock");
        let bundle = base.join(&digest);
        if !bundle.join("rootfs/etc/passwd").exists() {
            let tmp = base.join(format!(".tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let out = Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:debian-min", layout.display()))
                .arg(&tmp)
                .output()
                .expect("run umoci");
            assert!(
                out.status.success(),
                "umoci unpack failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(&bundle);
            std::fs::rename(&tmp, &bundle).expect("rename the unpacked bundle into place");
        }
        bundle.join("rootfs")
    })
}

/// A finished process.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts the run exited with `code` and its stderr says `says`.
    pub fn fails(&self, code: i32, says: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(says), "{}", self.stderr);
    }

    /// The lines between `== name ==` and the next marker (or the end).
    pub fn section(&self, name: &str) -> String {
        let marker = format!("== {name} ==");
        let mut out = String::new();
        let mut on = false;
        for line in self.stdout.lines() {
            if line.starts_with("== ") && line.ends_with(" ==") {
                on = line == marker;
                continue;
            }
            if on {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Run to completion with a timeout (killed, and the test failed, past it).
pub fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_timeout(&mut child, TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("timed out after {TIMEOUT:?}: {shown}");
    });
    Output {
        code: code_of(status),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A temp dir for one test (upper, work, rootfs, extra layers, host dirs).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cairn-helpers-")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// A container: overlay of [`image_root`] (plus extra layers above it), set
/// up by the real `cairn-mount` and `cairn-pivot` in fresh mount, pid, UTS
/// and IPC namespaces made by `unshare`.
pub struct Container {
    pub dir: tempfile::TempDir,
    layers: Vec<PathBuf>,
    pub mount_args: Vec<String>,
    pub pivot_args: Vec<String>,
    /// Shell run (by the host's sh, in the new namespaces) before cairn-mount.
    pub pre: String,
    /// Extra `unshare` flags.
    pub unshare: Vec<String>,
    /// Skip cairn-pivot: cairn-mount execs the command directly.
    pub no_pivot: bool,
}

impl Container {
    pub fn new() -> Self {
        let dir = tempdir();
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Container {
            dir,
            layers: Vec::new(),
            mount_args: Vec::new(),
            pivot_args: Vec::new(),
            pre: String::new(),
            unshare: Vec::new(),
            no_pivot: false,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path("rootfs")
    }

    /// A new (empty) layer above the image, topmost last-added; returns its
    /// directory to fill.
    pub fn layer(&mut self) -> PathBuf {
        let p = self.path(&format!("layer{}", self.layers.len()));
        std::fs::create_dir(&p).unwrap();
        self.layers.insert(0, p.clone());
        p
    }

    /// A layer with the image's /etc/passwd and /etc/group plus a user
    /// (`cairnuser`, 4321) and groups (`cairngrp` 4321, `cairnextra` 4400
    /// with cairnuser as member, `cairnother` 4500) that the host does not have.
    pub fn with_test_users(&mut self) -> &mut Self {
        let layer = self.layer();
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        let img = image_root();
        let mut passwd = std::fs::read_to_string(img.join("etc/passwd")).unwrap();
        passwd.push_str("cairnuser:x:4321:4321:Cairn Test:/home/cairnuser:/bin/sh\n");
        let mut group = std::fs::read_to_string(img.join("etc/group")).unwrap();
        group.push_str("cairngrp:x:4321:\ncairnextra:x:4400:cairnuser\ncairnother:x:4500:\n");
        std::fs::write(layer.join("etc/passwd"), passwd).unwrap();
        std::fs::write(layer.join("etc/group"), group).unwrap();
        std::fs::set_permissions(layer.join("etc"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        self
    }

    pub fn mount(&mut self, args: &[&str]) -> &mut Self {
        self.mount_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn pivot(&mut self, args: &[&str]) -> &mut Self {
        self.pivot_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// The cairn-mount → cairn-pivot → `cmd` chain, with `mount_extra`
    /// and `pivot_extra` options added (`--error-fd 3`, ...).
    pub fn chain(&self, cmd: &[&str], mount_extra: &[&str], pivot_extra: &[&str]) -> Vec<String> {
        let rootfs = self.rootfs().display().to_string();
        let mut lowers: Vec<String> = self
            .layers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        lowers.push(image_root().display().to_string());
        let mut c: Vec<String> = vec![MOUNT.into(), "--overlay".into(), lowers.join(":")];
        c.extend(["--upper".into(), self.path("upper").display().to_string()]);
        c.extend(["--work".into(), self.path("work").display().to_string()]);
        c.extend(["--target".into(), rootfs.clone()]);
        c.extend(self.mount_args.iter().cloned());
        c.extend(mount_extra.iter().map(|s| s.to_string()));
        c.push("--".into());
        if !self.no_pivot {
            c.extend([PIVOT.into(), "--root".into(), rootfs]);
            c.extend(self.pivot_args.iter().cloned());
            c.extend(pivot_extra.iter().map(|s| s.to_string()));
            c.push("--".into());
        }
        c.extend(cmd.iter().map(|s| s.to_string()));
        c
    }

    /// The full command line for `cmd` inside the container.
    pub fn command(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args(CONTAINER_UNSHARE);
        c.args(&self.unshare);
        c.arg("--");
        if !self.pre.is_empty() {
            c.args(["sh", "-ec", &format!("{}\nexec \"$@\"", self.pre), "sh"]);
        }
        c.args(self.chain(cmd, &[], &[]));
        c
    }

    /// Run a shell script inside the container.
    pub fn sh(&self, script: &str) -> Output {
        run(self.command(&["/bin/sh", "-c", script]))
    }

    /// Start a long-running container: `script` must print `ready` on stdout
    /// when it is set up; it should end by exec'ing a long sleep.
    pub fn spawn(&self, script: &str) -> Running {
        let mut child = self
            .command(&["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn container");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.trim() == "ready" => break,
                Some(Ok(l)) => seen.push(l),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "container exited before it was ready; output:\n{}",
                        seen.join("\n")
                    );
                }
            }
            assert!(start.elapsed() < TIMEOUT, "container not ready in time");
        }
        Running::of(child)
    }
}

/// Wait (a little) until `pid` has exec'd the `sleep` its script ends with:
/// until then its `/proc` entries (environ, cmdline) may be the shell's or,
/// in the middle of the exec, empty. `comm` changes early in the exec, the
/// argument and environment areas late (they are empty in between), so the
/// command line is what is waited for.
fn await_exec_sleep(pid: i32) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(cmdline) if !cmdline.starts_with(b"sleep\0") => {
                std::thread::sleep(Duration::from_millis(2))
            }
            _ => return,
        }
    }
}

/// The direct children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A running container (or any process made by `unshare --fork`): killed,
/// namespaces and mounts gone with it, on drop.
pub struct Running {
    pub unshare: Child,
    /// Host pid of the container's init (unshare's child).
    pub init: i32,
}

impl Running {
    /// The running `unshare --fork` `child`, once its child (the init) has
    /// exec'd the `sleep` its script ends with.
    fn of(child: Child) -> Running {
        let init = children_of(child.id() as i32)
            .into_iter()
            .next()
            .expect("unshare's child");
        await_exec_sleep(init);
        Running {
            unshare: child,
            init,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The init of a pid namespace ignores SIGTERM from outside without a
        // handler; unshare ignores it while waiting. SIGKILL both.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = wait_timeout(&mut self.unshare, TIMEOUT);
    }
}

/// Start `unshare FLAGS -- sh -c SCRIPT` (not a cairn container), waiting for
/// `ready`.
pub fn spawn_unshared(flags: &[&str], script: &str) -> Running {
    let mut child = Command::new("unshare")
        .args(flags)
        .args(["--fork", "--kill-child", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn unshare");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.next() {
        Some(Ok(l)) if l.trim() == "ready" => {}
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unshared process not ready: {other:?}");
        }
    }
    Running::of(child)
}

/// Mount points of a mountinfo text, in order.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    cairn_runtime::mountinfo::parse(mountinfo)
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}
