//! The real programs that drive podman's CLI (distrobox, toolbox, the Dev Containers CLI), run
//! against cairn as their users run them.
//!
//! A [`Clients`] environment is a [`Cairn`] (root's or the rootless test user's) plus a directory
//! put first on `PATH` that holds `podman`, `lilipod`, `docker` and `cairn`, each a symlink to
//! the cairn binary under test, so a client finds cairn under the name it looks for. The store
//! holds the fixture image `clients` as [`IMAGE`]: debian-min plus what the clients'
//! in-container set-up needs (distrobox-init's packages, capsh for `toolbox run`, a user `dev`),
//! built by `tests/support/build-images.sh`, so nothing is fetched from a network.
//!
//! The clients are installed by `tests/support/install-deps.sh`: Debian's `distrobox` and
//! `podman-toolbox`, and `@devcontainers/cli` from npm under [`DEVCONTAINER_PREFIX`].

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::cairn::{binary, Cairn, Run};

/// The name the fixture image `clients` has in a [`Clients`] store.
pub const IMAGE: &str = "localhost/clients:latest";

/// The npm prefix `tests/support/install-deps.sh` installs the Dev Containers CLI into.
pub const DEVCONTAINER_PREFIX: &str = "/opt/devcontainers";

/// The names a [`Clients`] environment gives cairn on `PATH`.
pub const ENGINE_NAMES: [&str; 4] = ["podman", "lilipod", "docker", "cairn"];

/// The Dev Containers CLI: `$CAIRN_DEVCONTAINER_CLI`, else the one under
/// [`DEVCONTAINER_PREFIX`]. Panics, naming the install step, when it is missing.
pub fn devcontainer_cli() -> PathBuf {
    let path = std::env::var_os("CAIRN_DEVCONTAINER_CLI").map_or_else(
        || Path::new(DEVCONTAINER_PREFIX).join("node_modules/.bin/devcontainer"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run tests/support/install-deps.sh as root (npm install @devcontainers/cli)",
        path.display()
    );
    path
}

/// Panics, naming the install step, unless `program` is on `PATH`.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run tests/support/install-deps.sh as root"
    );
}

/// The engine a [`Clients`] environment puts on `PATH` under every name of [`ENGINE_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The cairn binary under test.
    Cairn,
    /// The host's podman (`/usr/bin/podman`), rootless, with a containers.conf in the user's
    /// HOME that suits this host (see DESIGN.md): the reference to compare with.
    Podman,
}

/// The rootless podman's `~/.config/containers/containers.conf` (see `crate::podman`).
const PODMAN_CONF: &str = r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "crun"
"#;

/// One environment where clients run against cairn. On drop, every container of the store is
/// killed (by its pid, as root: a client's container may run as an id the user cannot signal)
/// and removed, and the private system bus, if any, is stopped.
#[derive(Debug)]
pub struct Clients {
    cairn: Cairn,
    engine: Engine,
    bin: PathBuf,
    bus: Option<Child>,
}

impl Clients {
    /// Root's environment, [`IMAGE`] in its store.
    pub fn root() -> anyhow::Result<Clients> {
        Clients::with(Cairn::new()?, Engine::Cairn)
    }

    /// The rootless test user's environment (`tests/support/test-user.sh`), [`IMAGE`] in its
    /// store.
    pub fn rootless() -> anyhow::Result<Clients> {
        Clients::with(Cairn::rootless()?, Engine::Cairn)
    }

    /// The rootless test user's environment with `engine` on `PATH`, [`IMAGE`] in its store (a
    /// fresh one in the temp HOME for podman).
    pub fn rootless_with(engine: Engine) -> anyhow::Result<Clients> {
        Clients::with(Cairn::rootless()?, engine)
    }

    fn with(mut cairn: Cairn, engine: Engine) -> anyhow::Result<Clients> {
        let bin = cairn.scratch().join("bin");
        fs::create_dir_all(&bin).context("create the engine dir")?;
        let target = match engine {
            Engine::Cairn => binary(),
            Engine::Podman => {
                crate::podman::ensure_hugetlb_v1().map_err(|e| anyhow::anyhow!("{e}"))?;
                let conf = cairn.scratch().join("home/.config/containers");
                fs::create_dir_all(&conf).context("create podman's config dir")?;
                fs::write(conf.join("containers.conf"), PODMAN_CONF)
                    .context("write containers.conf")?;
                // podman refuses an auth file that does not exist (cairn reads none then)
                cairn.unset_env("REGISTRY_AUTH_FILE");
                PathBuf::from("/usr/bin/podman")
            }
        };
        for name in ENGINE_NAMES {
            symlink(&target, bin.join(name)).with_context(|| format!("symlink {name}"))?;
        }
        fs::create_dir_all(cairn.scratch().join("run")).context("create the runtime dir")?;
        let path = std::env::var("PATH").unwrap_or_default();
        cairn.env("PATH", &format!("{}:{path}", bin.display()));
        cairn.env("SHELL", "/bin/bash");
        if cairn.user().is_none() {
            cairn.env("USER", "root");
            cairn.env("LOGNAME", "root");
        }
        let clients = Clients {
            cairn,
            engine,
            bin,
            bus: None,
        };
        clients.own(clients.cairn.scratch())?;
        let id = clients.engine_ok([
            "pull",
            "-q",
            &crate::fixtures::oci_ref(crate::fixtures::refs::CLIENTS),
        ]);
        let id = id.trim();
        clients.engine_ok(["tag", id, IMAGE]);
        let names = clients.engine_ok([
            "image",
            "inspect",
            "--format",
            "{{join .RepoTags \" \"}}",
            id,
        ]);
        for other in names.split_whitespace().filter(|n| *n != IMAGE) {
            clients.engine_ok(["rmi", other]);
        }
        Ok(clients)
    }

    /// Which engine the clients find.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs the engine (`cairn` on the clients' `PATH`: cairn or podman) and requires exit 0;
    /// returns stdout.
    pub fn engine_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let r = self.run(Duration::from_secs(120), "cairn", &args);
        assert_eq!(
            r.code, 0,
            "{:?} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.engine, r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    /// The cairn environment the clients use (`cairn()` runs go to the same store).
    pub fn cairn(&self) -> &Cairn {
        &self.cairn
    }

    /// Sets an environment variable for every later run (of clients and of cairn).
    pub fn env(&mut self, key: &str, value: &str) {
        self.cairn.env(key, value);
    }

    /// The directory first on the clients' `PATH`.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The user's HOME (a temp dir).
    pub fn home(&self) -> PathBuf {
        self.cairn.scratch().join("home")
    }

    /// Makes `path` (recursively) the environment's user's, as files a user makes are.
    pub fn own(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(u) = self.cairn.user() {
            crate::util::run(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{}:{}", u.uid, u.gid))
                    .arg(path),
            )?;
        }
        Ok(())
    }

    /// `program args…` as the environment's user, cairn first on `PATH`, from the user's HOME,
    /// stdin closed; not started.
    pub fn command<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cairn.tool(program);
        c.args(args).current_dir(self.home()).stdin(Stdio::null());
        c
    }

    /// Runs `program args…` to completion (at most `timeout`; then it is killed and the run's
    /// code is -1) and returns what the user saw.
    pub fn run<I, S>(&self, timeout: Duration, program: impl AsRef<OsStr>, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command(program, args);
        run_with_timeout(&mut c, timeout)
    }

    /// Starts a private D-Bus daemon and points `DBUS_SYSTEM_BUS_ADDRESS` of every later run at
    /// it. toolbox refuses to create a container without a system bus socket to bind into it;
    /// this host has no system bus (no systemd), a desktop always has one.
    pub fn start_system_bus(&mut self) -> anyhow::Result<()> {
        let socket = self.cairn.scratch().join("run/system_bus_socket");
        let child = self
            .cairn
            .tool("dbus-daemon")
            .arg("--session")
            .arg("--nofork")
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start dbus-daemon (Debian package dbus-daemon)")?;
        self.bus = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                bail!("dbus-daemon did not create {}", socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.cairn.env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            &format!("unix:path={}", socket.display()),
        );
        Ok(())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let t = Duration::from_secs(60);
        let ids = self.run(t, "cairn", ["ps", "-aq", "--no-trunc"]);
        for id in ids.stdout.split_whitespace() {
            let pid = self.run(t, "cairn", ["inspect", "--format", "{{.State.Pid}}", id]);
            let pid = pid.stdout.trim();
            if !pid.is_empty() && pid != "0" {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = self.run(t, "cairn", ["rm", "-a", "-f", "-t", "0"]);
        if self.engine == Engine::Podman {
            // rootless podman's pause process, one per XDG_RUNTIME_DIR
            let pause = self.cairn.scratch().join("run/libpod/tmp/pause.pid");
            if let Ok(pid) = fs::read_to_string(pause) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        drop(crate::cairn::Cleanup {
            cairn: &self.cairn,
            marker: self.cairn.scratch().display().to_string(),
        });
        if let Some(mut bus) = self.bus.take() {
            let _ = bus.kill();
            let _ = bus.wait();
        }
    }
}

/// Runs `cmd` with piped output; kills it after `timeout` (code -1 then). Output is what the
/// program wrote until it ended, plus what came within a second after: a client may leave a
/// descendant (a `cairn run` it attached to, say) holding the pipes open, and the run must not
/// wait for that.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", crate::util::command_line(cmd)));
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
        }
    };
    let grace = Instant::now() + Duration::from_secs(1);
    while Instant::now() < grace && !(stdout.0.is_finished() && stderr.0.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text =
        |c: &Collected| String::from_utf8_lossy(&c.1.lock().expect("output buffer")).into_owned();
    Run {
        code,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// A thread reading a pipe to its end, and what it has read so far.
type Collected = (
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
);

fn collect(pipe: Option<impl std::io::Read + Send + 'static>) -> Collected {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let handle = std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("output buffer")
                .extend_from_slice(&chunk[..n]);
        }
    });
    (handle, buf)
}
