//! Running the real `cairn` binary against a private store, with a private
//! auth file and registries.conf so the host's configuration never leaks in.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::Context as _;

/// The `cairn` binary the tests run: `$CAIRN_BIN`, else the one built next
/// to the test executable (`target/<profile>/cairn`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("cairn");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bins` (the test script does)",
        bin.display()
    );
    bin
}

/// One isolated cairn environment: a store root, an auth file, a
/// registries.conf, a HOME.
#[derive(Debug)]
pub struct Cairn {
    dir: tempfile::TempDir,
    root: PathBuf,
    extra_env: Vec<(String, String)>,
    removed_env: Vec<String>,
    user: Option<TestUser>,
    /// The directory of a store placed by [`Cairn::on_fast_store`].
    _store_dir: Option<tempfile::TempDir>,
}

/// The non-root user rootless runs use.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

impl TestUser {
    /// `$CAIRN_TEST_USER` (default `cairntest`), created by
    /// `tests/support/test-user.sh` with two subordinate ranges.
    pub fn get() -> anyhow::Result<TestUser> {
        let name = std::env::var("CAIRN_TEST_USER").unwrap_or_else(|_| "cairntest".into());
        let id = |flag: &str| -> anyhow::Result<u32> {
            let out =
                crate::util::run(Command::new("id").arg(flag).arg(&name)).with_context(|| {
                    format!("user {name} is missing: run tests/support/test-user.sh as root")
                })?;
            out.trim().parse().context("id output")
        };
        Ok(TestUser {
            uid: id("-u")?,
            gid: id("-g")?,
            name,
        })
    }
}

/// A finished cairn run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The run `out` records: its exit code (-1 when a signal ended it) and its output as text.
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Cairn {
    /// A fresh environment with an empty store under a temp dir.
    pub fn new() -> anyhow::Result<Cairn> {
        let dir = crate::util::temp_dir("env")?;
        let root = dir.path().join("store");
        fs::create_dir_all(dir.path().join("home"))?;
        fs::write(dir.path().join("registries.conf"), "")?;
        Ok(Cairn {
            dir,
            root,
            extra_env: Vec::new(),
            removed_env: Vec::new(),
            user: None,
            _store_dir: None,
        })
    }

    /// A fresh environment whose store is in a temp dir (named `prefix…`)
    /// under [`crate::util::fast_store_base`], removed on drop.
    pub fn on_fast_store(prefix: &str) -> anyhow::Result<Cairn> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(crate::util::fast_store_base())
            .context("create the store dir")?;
        let mut cairn = Cairn::new()?;
        cairn.set_root(&dir.path().join("store"));
        cairn._store_dir = Some(dir);
        Ok(cairn)
    }

    /// A fresh environment whose every run is the non-root test user's
    /// (via `setpriv`): its temp dir, store, HOME and XDG_RUNTIME_DIR are
    /// owned by that user, as a real user's would be.
    pub fn rootless() -> anyhow::Result<Cairn> {
        let user = TestUser::get()?;
        let mut c = Cairn::new()?;
        fs::create_dir_all(c.dir.path().join("run"))?;
        crate::util::run(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", user.uid, user.gid))
                .arg(c.dir.path()),
        )?;
        c.user = Some(user);
        Ok(c)
    }

    /// The user runs are made as (None: root).
    pub fn user(&self) -> Option<&TestUser> {
        self.user.as_ref()
    }

    /// The store root (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points the store somewhere else (e.g. a small tmpfs).
    pub fn set_root(&mut self, root: &Path) {
        self.root = root.to_owned();
    }

    /// The auth file cairn reads and login writes (`REGISTRY_AUTH_FILE`).
    pub fn auth_file(&self) -> PathBuf {
        self.dir.path().join("auth.json")
    }

    /// The registries.conf in effect (`CONTAINERS_REGISTRIES_CONF`).
    pub fn registries_conf(&self) -> PathBuf {
        self.dir.path().join("registries.conf")
    }

    /// Writes registries.conf.
    pub fn write_registries_conf(&self, text: &str) -> anyhow::Result<()> {
        fs::write(self.registries_conf(), text).context("write registries.conf")
    }

    /// A private scratch directory.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an extra environment variable for every run.
    pub fn env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Leaves an environment variable the harness normally sets unset.
    pub fn unset_env(&mut self, key: &str) {
        self.removed_env.push(key.to_owned());
    }

    /// The command, environment prepared, not started.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.as_store_user(binary());
        c.args(args).stdin(Stdio::null());
        c
    }

    /// `script -FLAGS LINE /dev/null`, run as the store's user with cairn's environment, so
    /// `LINE` and the `cairn` it starts have a real pty as their controlling terminal. `CAIRN`
    /// in `line` stands for the binary's path. Stdio is left to the caller.
    pub fn script(&self, flags: &str, line: &str) -> Command {
        let line = line.replace("CAIRN", &binary().to_string_lossy());
        let mut c = self.as_store_user("script");
        c.args([flags, &line, "/dev/null"]);
        c
    }

    /// `program` (a client of cairn's CLI, say) run as this environment's user with the
    /// environment cairn runs with, not started. Stdio is left to the caller.
    pub fn tool(&self, program: impl AsRef<OsStr>) -> Command {
        self.as_store_user(program)
    }

    /// `program` as this environment's user (through `setpriv` for a rootless one) with exactly
    /// the environment cairn runs with: nothing of the test process's environment but `PATH`.
    fn as_store_user(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = match &self.user {
            None => Command::new(program),
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(program);
                c
            }
        };
        c.env_clear();
        if let Some(u) = &self.user {
            c.env("USER", &u.name)
                .env("LOGNAME", &u.name)
                .env("XDG_RUNTIME_DIR", self.dir.path().join("run"));
        }
        c.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CAIRN_ROOT", &self.root)
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env("CONTAINERS_REGISTRIES_CONF", self.registries_conf());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        for k in &self.removed_env {
            c.env_remove(k);
        }
        c
    }

    /// Pulls the fixture image `fixture` (one of [`crate::fixtures::refs`]) from its OCI layout
    /// and leaves it named `name` alone: tagged `name`, every other name removed. Returns the
    /// image id.
    pub fn pull_fixture_as(&self, fixture: &str, name: &str) -> String {
        let id = self.ok(["pull", "-q", &crate::fixtures::oci_ref(fixture)]);
        let id = id.trim().to_owned();
        self.ok(["tag", &id, name]);
        let names = self.ok([
            "image",
            "inspect",
            "--format",
            "{{join .RepoTags \" \"}}",
            &id,
        ]);
        for other in names.split_whitespace().filter(|n| *n != name) {
            self.ok(["rmi", other]);
        }
        id
    }

    /// Runs cairn to completion.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.command(args).output().expect("cairn binary runs");
        Run::from(out)
    }

    /// Runs cairn and requires exit 0; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let r = self.run(&args);
        assert_eq!(
            r.code, 0,
            "cairn {:?} failed ({}):\nstdout: {}\nstderr: {}",
            args, r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs cairn and requires the exit code `code`; returns the run.
    pub fn fails<I, S>(&self, code: i32, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let r = self.run(&args);
        assert_eq!(
            r.code, code,
            "cairn {:?}: expected exit {code}, got {}:\nstdout: {}\nstderr: {}",
            args, r.code, r.stdout, r.stderr
        );
        r
    }

    /// Starts cairn without waiting (for kill tests).
    pub fn spawn<I, S>(&self, args: I) -> anyhow::Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn cairn")
    }

    /// Files under `blobs/sha256` of the store, sorted.
    pub fn blobs(&self) -> Vec<String> {
        crate::util::dir_names(&self.root.join("blobs/sha256"))
    }

    /// Files under `tmp/` of the store.
    pub fn temp_files(&self) -> Vec<String> {
        crate::util::dir_names(&self.root.join("tmp"))
    }

    /// Asserts `cairn system check` reports a clean store.
    pub fn assert_clean(&self) {
        let r = self.run(["system", "check"]);
        assert_eq!(r.code, 0, "system check: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("no problems found"), "{}", r.stdout);
    }

    /// Asserts `cairn system check` reports a clean store; `what` (the step
    /// just done, a seed, …) starts the failure message.
    pub fn assert_clean_after(&self, what: &str) {
        let r = self.run(["system", "check"]);
        assert!(
            r.code == 0 && r.stdout.contains("no problems found"),
            "{what}: system check:\n{}{}",
            r.stdout,
            r.stderr
        );
    }

    /// The parsed `index.json` of the store.
    pub fn index(&self) -> serde_json::Value {
        let bytes = fs::read(self.root.join("index.json")).expect("index.json exists");
        serde_json::from_slice(&bytes).expect("index.json is JSON")
    }

    /// The ref names in `index.json`.
    pub fn refs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index()["manifests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| {
                        d["annotations"]["org.opencontainers.image.ref.name"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// On drop, removes a test's containers (`rm -a -f -t 0`) and kills what a bug may have left
/// running: processes whose command line holds `marker` or the store root, i.e. only what this
/// test started.
#[derive(Debug)]
pub struct Cleanup<'a> {
    /// The test's cairn.
    pub cairn: &'a Cairn,
    /// A string only this test's container commands carry (a `sleep` argument, say).
    pub marker: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.cairn.run(["rm", "-a", "-f", "-t", "0"]);
        let root = self.cairn.root().display().to_string();
        for needle in [self.marker.as_str(), root.as_str()] {
            for (pid, _) in crate::util::processes_with(needle) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}
