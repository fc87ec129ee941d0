//! The monitor and cairn-enter with a cgroup: the container's first
//! process is in it before the command runs, its limits hold, an OOM kill
//! is recorded, the cgroup namespace is rooted at it, `exec`'d processes
//! join it, and nothing is left in any hierarchy when the container ends.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cairn_runtime::cgroup::{Cgroup, Hierarchy, Version};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use super::{exit_file, lines, log_of, records, spec_for, Monitor};
use crate::support::*;

static N: AtomicU32 = AtomicU32::new(0);

/// A test-unique parent (`/cairn-test-<pid>-m<n>`), removed on drop with
/// whatever is below it.
struct Parent {
    path: String,
    cgroups: Vec<Cgroup>,
}

impl Parent {
    fn new(hierarchies: &[Hierarchy]) -> Parent {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = format!("/cairn-test-{}-m{n}", std::process::id());
        let cgroups = hierarchies
            .iter()
            .flat_map(|h| {
                [
                    Cgroup::new(h, &format!("{path}/ctr")).unwrap(),
                    Cgroup::new(h, &path).unwrap(),
                ]
            })
            .collect();
        Parent { path, cgroups }
    }

    fn leaf(&self) -> String {
        format!("{}/ctr", self.path)
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for c in &self.cgroups {
            let _ = c.remove();
        }
    }
}

/// This host's hierarchy, if it is v1 (the v1 tests' premise).
fn host_v1() -> Option<Hierarchy> {
    let h = Hierarchy::detect().unwrap().expect("a cgroup filesystem");
    if h.version() == Version::V1 {
        Some(h)
    } else {
        eprintln!("skipped: not a cgroup v1 host");
        None
    }
}

/// Every v1 mount point of this host.
fn v1_bases() -> Vec<PathBuf> {
    cairn_runtime::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .filter(|m| m.fstype == "cgroup")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

fn gone_everywhere(bases: &[PathBuf], path: &str) {
    for b in bases {
        let d = b.join(path.trim_start_matches('/'));
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// pids_limit 32: pid 1 is in the cgroup (every hierarchy) with the
/// limit; a process `exec` started (no pid namespace, so it would outlive
/// the container) joins it and is killed when the container ends; the
/// cgroup is gone after, the exit record says no OOM kill.
#[test]
fn monitor_places_the_container_and_removes_its_cgroup() {
    if !root_or_skip() {
        return;
    }
    let Some(h) = host_v1() else { return };
    let parent = Parent::new(std::slice::from_ref(&h));
    let leaf = parent.leaf();
    let c = Container::new();
    let spec = spec_for(
        &c,
        &["sleep", "100"],
        &[],
        json!({
            "namespaces": ["mnt", "uts", "ipc"],
            "cgroup": {"path": leaf, "resources": {"pids_limit": 32}},
        }),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let pid = m.pid();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in own.lines().filter(|l| !l.starts_with("0::")) {
        assert!(l.ends_with(&format!(":{leaf}")), "{l} in\n{own}");
    }
    let cg = Cgroup::new(&h, &leaf).unwrap();
    assert_eq!(cg.procs().unwrap(), [pid]);
    assert_eq!(cg.stats().unwrap().pids_limit, Some(32));
    let monitor = m.child.id() as i32;
    assert!(
        !cg.procs().unwrap().contains(&monitor),
        "the monitor stays outside"
    );

    // exec: the command is in the container's cgroup; its background
    // process stays there after it.
    let enter_spec = c.path("enter.json");
    std::fs::write(
        &enter_spec,
        json!({"target": pid, "cgroup": leaf}).to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(ENTER);
    cmd.arg("--spec").arg(&enter_spec).args([
        "--all",
        "--",
        "/bin/sh",
        "-c",
        "grep pids /proc/self/cgroup; sleep 300 >/dev/null 2>&1 & echo $!",
    ]);
    let out = run(cmd);
    out.ok();
    let mut said = out.stdout.lines();
    assert_eq!(
        said.next().unwrap().split(':').nth(2),
        Some(leaf.as_str()),
        "{}",
        out.stdout
    );
    let straggler: i32 = said.next().unwrap().parse().unwrap();
    assert!(cg.procs().unwrap().contains(&straggler), "{:?}", cg.procs());
    // A container without a cgroup: the path does not exist, ignored.
    std::fs::write(
        &enter_spec,
        json!({"target": pid, "cgroup": "/cairn-test-no-such-cgroup"}).to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(ENTER);
    cmd.arg("--spec")
        .arg(&enter_spec)
        .args(["--all", "--", "true"]);
    run(cmd).ok();

    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(m.wait(), 137);
    let exit = exit_file(&c);
    assert_eq!(exit["oom_killed"], false, "{exit}");
    gone_everywhere(&v1_bases(), &leaf);
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{straggler}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{straggler} outlived the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// memory 32 MiB and a hog: exit 137, `oom_killed` in the exit record.
#[test]
fn monitor_records_an_oom_kill() {
    if !root_or_skip() {
        return;
    }
    let Some(h) = host_v1() else { return };
    let parent = Parent::new(&[h]);
    let leaf = parent.leaf();
    let c = Container::new();
    let spec = spec_for(
        &c,
        &["tail", "/dev/zero"],
        &[],
        json!({"cgroup": {"path": leaf, "resources": {"memory": 32 << 20, "pids_limit": 32}}}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 137);
    let exit = exit_file(&c);
    assert_eq!(
        (exit["exit_code"].as_i64(), exit["oom_killed"].as_bool()),
        (Some(137), Some(true)),
        "{exit}"
    );
    gone_everywhere(&v1_bases(), &leaf);
}

/// With a cgroup namespace, the container's cgroup is its root.
#[test]
fn monitor_cgroup_namespace_is_rooted_at_the_container() {
    if !root_or_skip() {
        return;
    }
    let Some(h) = host_v1() else { return };
    let parent = Parent::new(&[h]);
    let leaf = parent.leaf();
    let c = Container::new();
    let spec = spec_for(
        &c,
        &["cat", "/proc/self/cgroup"],
        &[],
        json!({
            "namespaces": ["mnt", "pid", "uts", "ipc", "cgroup"],
            "cgroup": {"path": leaf},
        }),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let text: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(text.iter().any(|l| l.contains(":pids:")), "{text:?}");
    for l in &text {
        assert!(l.ends_with(":/"), "{l} in {text:?}");
    }
    gone_everywhere(&v1_bases(), &leaf);
}

/// This host's cgroup2 mount (hybrid: /sys/fs/cgroup/unified), if any.
fn host_cgroup2() -> Option<PathBuf> {
    cairn_runtime::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.mount_point))
}

/// A monitor that sees pure cgroup v2: started in a private mount
/// namespace with cgroup2 mounted on /sys/fs/cgroup.
fn start_on_v2(spec: &std::path::Path) -> Monitor {
    let launcher = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$0\" \"$@\"",
        MONITOR,
    ];
    Monitor::start_via(&launcher, spec, Stdio::null(), Stdio::null(), Stdio::null())
}

/// Pure v2: the container is placed, its cgroup namespace reads `0::/`,
/// the cgroup is removed; a limit whose controller v2 lacks fails the
/// start (125) naming the flag and the cgroup.
#[test]
fn monitor_on_cgroup_v2() {
    if !root_or_skip() {
        return;
    }
    let Some(root) = host_cgroup2() else {
        eprintln!("skipped: no cgroup2 mounted");
        return;
    };
    let h = Hierarchy::v2_at(root.clone());
    let parent = Parent::new(std::slice::from_ref(&h));
    let leaf = parent.leaf();
    let c = Container::new();
    let spec = spec_for(
        &c,
        &["/bin/sh", "-c", "cat /proc/self/cgroup; sleep 0.3"],
        &[],
        json!({
            "namespaces": ["mnt", "pid", "uts", "ipc", "cgroup"],
            "cgroup": {"path": leaf},
        }),
    );
    let mut m = start_on_v2(&spec);
    let pid = m.pid();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.lines().any(|l| l == format!("0::{leaf}")), "{own}");
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let text: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    // (A hybrid kernel lists its v1 hierarchies too, each at the
    // namespace's root as well.)
    assert!(text.iter().any(|l| l == "0::/"), "{text:?}");
    assert!(text.iter().all(|l| l.ends_with(":/")), "{text:?}");
    gone_everywhere(std::slice::from_ref(&root), &leaf);

    if h.controllers("/").iter().any(|c| c == "pids") {
        return;
    }
    // Nothing is created when a limit cannot be had.
    Cgroup::new(&h, &parent.path).unwrap().remove().unwrap();
    let spec = spec_for(
        &c,
        &["true"],
        &[],
        json!({"cgroup": {"path": leaf, "resources": {"pids_limit": 32}}}),
    );
    let mut m = start_on_v2(&spec);
    let s = m.sync();
    assert_eq!(
        (s["pid"].as_i64(), s["code"].as_i64()),
        (Some(0), Some(125)),
        "{s}"
    );
    let msg = s["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("create the container's cgroup {leaf}"))
            && msg.contains("--pids-limit needs the pids controller"),
        "{msg}"
    );
    assert_eq!(m.wait(), 125);
    gone_everywhere(&[root], &parent.path);
}
