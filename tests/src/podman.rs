//! An isolated podman (4.x with crun) for side-by-side comparisons with cairn: its own storage
//! root, run root, tmp dir, containers.conf, storage.conf and registries.conf, all under one temp
//! dir, so the host's podman state and configuration are never read or touched.
//!
//! This machine needs a containers.conf for podman to run at all (see DESIGN.md, "This
//! machine's quirks"): cgroupfs instead of systemd, file events, crun, and default ulimits
//! that do not try to raise the hard `nofile` limit root cannot raise here. crun 1.8 also
//! refuses a cgroup v1/v2 hybrid while a controller (hugetlb) is still on cgroup2, so
//! [`Podman::new`] mounts hugetlb as v1 when it is not mounted yet.
//!
//! Constructors fail with an explanation (podman missing, crun refusing the cgroup layout, …)
//! rather than letting a comparison test skip silently.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};

use crate::cairn::Run;

/// containers.conf for the isolated podman. `{dir}` is replaced by the temp dir.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{dir}/events.log"
runtime = "crun"
image_copy_tmp_dir = "{dir}/tmp"
volume_path = "{dir}/volumes"

[network]
network_config_dir = "{dir}/networks"
"#;

/// One isolated podman. Containers left behind are removed (`rm -af -t 0`) on drop, before the
/// temp dir goes.
#[derive(Debug)]
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// A podman with an empty store, checked to run containers here (`podman info` works and
    /// the cgroup layout suits crun).
    pub fn new() -> anyhow::Result<Podman> {
        let version = Command::new("podman")
            .arg("--version")
            .output()
            .context("podman is not installed (tests/support/install-deps.sh installs it)")?;
        if !version.status.success() {
            bail!(
                "podman --version failed: {}",
                String::from_utf8_lossy(&version.stderr)
            );
        }
        ensure_hugetlb_v1().map_err(|e| anyhow::anyhow!("{e}"))?;
        // The run root holds conmon's attach socket path, which must stay under 108 bytes
        // (sun_path) with the container id appended: a short /tmp path keeps it well below.
        let dir = tempfile::Builder::new()
            .prefix("cpm-")
            .tempdir_in("/tmp")
            .context("create podman temp dir")?;
        let d = dir.path();
        for sub in ["storage", "run", "tmp", "volumes", "networks"] {
            fs::create_dir_all(d.join(sub)).with_context(|| format!("create {sub}"))?;
        }
        fs::write(
            d.join("containers.conf"),
            CONTAINERS_CONF.replace("{dir}", &d.to_string_lossy()),
        )
        .context("write containers.conf")?;
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("storage").display(),
                d.join("run").display()
            ),
        )
        .context("write storage.conf")?;
        fs::write(d.join("registries.conf"), "").context("write registries.conf")?;
        let p = Podman { dir };
        assert!(
            p.runroot().as_os_str().len() < 50,
            "podman run root path too long: {}",
            p.runroot().display()
        );
        let info = p.run(["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        if info.code != 0 || info.stdout.trim() != "crun" {
            bail!(
                "podman cannot run here (podman info exit {}): {}{}",
                info.code,
                info.stdout,
                info.stderr
            );
        }
        Ok(p)
    }

    /// The temp dir everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--runroot`.
    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The command with the isolated configuration, not started.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.configured("podman");
        c.arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .args(args);
        c
    }

    /// Debian's `buildah` on this podman's storage and configuration (images
    /// it builds are this podman's), not started.
    pub fn buildah<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.configured("buildah");
        c.args(args);
        c
    }

    /// `program` (podman or buildah) with this podman's environment, root,
    /// run root and storage driver.
    fn configured(&self, program: &str) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", d)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("TMPDIR", d.join("tmp"))
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(self.runroot())
            .arg("--storage-driver")
            .arg("overlay")
            .stdin(Stdio::null());
        c
    }

    /// Runs podman to completion.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run::from(self.command(args).output().expect("podman runs"))
    }

    /// Runs podman and requires exit 0; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let r = self.run(&args);
        assert_eq!(
            r.code, 0,
            "podman {:?} failed ({}):\nstdout: {}\nstderr: {}",
            args, r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Imports `fixture` (a ref of the fixture OCI layout) and names it `name`, dropping the
    /// name podman derives from the layout path. Returns the image id.
    pub fn import_fixture(&self, fixture: &str, name: &str) -> anyhow::Result<String> {
        let src = crate::fixtures::oci_ref(fixture);
        let r = self.run(["pull", "-q", &src]);
        if r.code != 0 {
            bail!("podman pull {src} failed ({}): {}", r.code, r.stderr);
        }
        let id = r.stdout.trim().to_owned();
        let names = self.ok([
            "image",
            "inspect",
            "--format",
            "{{join .RepoTags \" \"}}",
            &id,
        ]);
        self.ok(["tag", &id, name]);
        for old in names.split_whitespace().filter(|n| *n != name) {
            self.ok(["untag", &id, old]);
        }
        Ok(id)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Stops (SIGKILL at once) and removes every container, so no conmon or container
        // process outlives the test and no overlay stays mounted under the temp dir.
        let _ = self.command(["rm", "-af", "-t", "0"]).output();
        // conmon starts `podman container cleanup` when a container exits, on its own time;
        // one still running would mount storage/overlay again after the pass below (a leaked
        // mount under /tmp/cpm-* was seen). Waited for, a few seconds at most.
        let dir = self.dir.path().display().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !crate::util::processes_with(&dir).is_empty() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // podman's overlay driver may keep a private bind mount of its
        // storage/overlay; unmounted here, or the temp dir cannot go.
        let prefix = format!("{dir}/");
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
    }
}

/// Mounts the hugetlb controller as cgroup v1 when this is a hybrid host (cgroup2 at
/// /sys/fs/cgroup/unified) and it is not mounted yet: crun 1.8 refuses hybrid hosts that leave
/// a controller on cgroup2. Once per process; a concurrent mount by another test binary is
/// tolerated (the check is repeated after a failed mount).
pub(crate) fn ensure_hugetlb_v1() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        if !Path::new("/sys/fs/cgroup/unified").exists() || hugetlb_v1_mounted()? {
            return Ok(());
        }
        let target = Path::new("/sys/fs/cgroup/hugetlb");
        fs::create_dir_all(target).map_err(|e| format!("create {}: {e}", target.display()))?;
        let out = Command::new("mount")
            .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
            .arg(target)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if out.status.success() || hugetlb_v1_mounted()? {
            Ok(())
        } else {
            Err(format!(
                "crun needs the hugetlb cgroup mounted as v1 on this hybrid host and \
                 `mount -t cgroup -o hugetlb cgroup {}` failed: {}",
                target.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    })
    .clone()
}

/// Whether a cgroup v1 hierarchy with the hugetlb controller is mounted.
fn hugetlb_v1_mounted() -> Result<bool, String> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    // Fields after " - ": fstype, source, super options.
    Ok(text.lines().any(|l| {
        l.split_once(" - ").is_some_and(|(_, rest)| {
            let mut f = rest.split_whitespace();
            f.next() == Some("cgroup")
                && f.nth(1)
                    .is_some_and(|opts| opts.split(',').any(|o| o == "hugetlb"))
        })
    }))
}
