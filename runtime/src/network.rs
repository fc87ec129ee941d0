//! A container's network as the monitor sets it up and tears it down
//! ([`NetworkSpec`]): netavark for bridge networks, pasta or slirp4netns for
//! rootless ones, each on a network namespace bind-mounted on a file so that
//! the tools can name it and a later command can tear it down after a crash.
//!
//! [`teardown`] is idempotent and safe to call from any later command: it
//! signals only a process that is still the tool the spec names, and
//! unmounts only an nsfs mount.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Context as _, Error, Result};
use crate::spec::NetworkSpec;

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
                let mut cmd = Command::new(binary);
                if *rootless {
                    cmd.args(["--rootless", "true"]);
                }
                cmd.arg("--config")
                    .arg(config_dir)
                    .arg("--aardvark-binary")
                    .arg(aardvark)
                    .arg("teardown")
                    .arg(netns_file);
                keep(run_tool(cmd, &options.to_string(), "netavark teardown").map(|_| ()));
            }
        }
        NetworkSpec::Pasta { pid_file, .. } => keep(end_tool(pid_file, &["pasta", "passt"])),
        NetworkSpec::Slirp4netns { pid_file, .. } => keep(end_tool(pid_file, &["slirp4netns"])),
    }
    keep(release_netns_file(spec.netns_file()));
    first.map_or(Ok(()), Err)
}

/// Run a tool with `stdin` as its standard input; its stdout on success,
/// else an error with (the end of) what it printed on stderr.
pub(crate) fn run_tool(mut cmd: Command, stdin: &str, what: &str) -> Result<String> {
    use std::io::Write as _;
    let program = cmd.get_program().to_owned();
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
    let err = &out.stderr[out.stderr.len().saturating_sub(STDERR_MAX)..];
    let msg = String::from_utf8_lossy(err)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Failed to send") && !l.contains("syslog"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Usage(format!(
        "{what} failed ({}): {}",
        out.status,
        if msg.is_empty() { "no message" } else { &msg }
    )))
}

/// End the process whose pid `pid_file` holds, if it is still one of
/// `names` (its executable's file name starts with one of them): SIGTERM,
/// then SIGKILL after a second. The pid file is removed.
fn end_tool(pid_file: &Path, names: &[&str]) -> Result<()> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::sys("read", pid_file, e)),
    };
    if let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 1) {
        if is_tool(pid, names) {
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(1);
            while is_tool(pid.as_raw(), names) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if is_tool(pid.as_raw(), names) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
    match std::fs::remove_file(pid_file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::sys("remove", pid_file, e)),
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
    let want = path.to_string_lossy();
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
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::sys("remove", path, e)),
        _ => Ok(()),
    }
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
        let mut ok = Command::new("cat");
        ok.arg("-");
        assert_eq!(run_tool(ok, "{\"a\":1}", "cat").unwrap(), "{\"a\":1}");
    }
}
