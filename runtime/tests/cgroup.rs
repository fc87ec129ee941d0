//! The cgroup manager against the kernel, as root: this host's v1
//! controllers (limits enforced, OOM kill seen, freezer, CPU quota,
//! removal) and a real cgroup2 hierarchy (placement, freezer, kill,
//! removal, CPU time). Every cgroup is made under a test-unique
//! `/cairn-test-<pid>-<n>` and removed by a guard, even on failure.

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cairn_runtime::cgroup::{Cgroup, CgroupSpec, Hierarchy, Resources, Version};
use support::root_or_skip;

static N: AtomicU32 = AtomicU32::new(0);

/// A test-unique parent and the container cgroup below it, both removed
/// on drop (the leaf first).
struct Guard {
    leaf: Cgroup,
    parent: Cgroup,
    bases: Vec<PathBuf>,
}

impl Guard {
    fn new(h: &Hierarchy, bases: Vec<PathBuf>) -> Guard {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let parent = format!("/cairn-test-{}-{n}", std::process::id());
        Guard {
            leaf: Cgroup::new(h, &format!("{parent}/ctr")).unwrap(),
            parent: Cgroup::new(h, &parent).unwrap(),
            bases,
        }
    }

    /// Nothing of it in any hierarchy.
    fn assert_gone(&self) {
        for b in &self.bases {
            let d = b.join(self.leaf.path().trim_start_matches('/'));
            assert!(!d.exists(), "{} left behind", d.display());
        }
        assert!(!self.leaf.exists());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.leaf.remove();
        let _ = self.parent.remove();
    }
}

/// This host's v1 hierarchy, or None (with a note) on a pure v2 host.
fn v1() -> Option<(Hierarchy, Vec<PathBuf>)> {
    let h = Hierarchy::detect().unwrap()?;
    if h.version() != Version::V1 {
        eprintln!("skipped: not a cgroup v1 host");
        return None;
    }
    let bases =
        cairn_runtime::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
            .into_iter()
            .filter(|m| m.fstype == "cgroup")
            .map(|m| PathBuf::from(m.mount_point))
            .collect();
    Some((h, bases))
}

/// `sh -c SCRIPT` that waits for a line on stdin before it goes on (so it
/// can be moved into a cgroup first).
fn held(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn go(c: &mut Child) {
    c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
}

fn spec(path: &str, r: Resources) -> CgroupSpec {
    CgroupSpec {
        path: path.into(),
        resources: r,
        devices: None,
    }
}

fn wait(c: &mut Child) -> std::process::ExitStatus {
    support::wait_timeout(c, support::TIMEOUT).expect("process ended")
}

/// pids.max 16: a shell forking 64 sleeps gets fork errors, at most 16
/// processes are in the cgroup; removal kills them and leaves nothing.
#[test]
fn v1_pids_limit_stops_forks() {
    if !root_or_skip() {
        return;
    }
    let Some((h, bases)) = v1() else { return };
    let g = Guard::new(&h, bases);
    let r = Resources {
        pids_limit: Some(16),
        ..Default::default()
    };
    g.leaf.create(&spec(g.leaf.path(), r)).unwrap();
    // The shell gives up at its first failed fork (sh exits on it), or
    // reaches the end if every fork worked.
    let mut c = held(
        "i=0; while [ $i -lt 64 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo all forked",
    );
    g.leaf.add_process(c.id() as i32).unwrap();
    assert_eq!(g.leaf.procs().unwrap(), [c.id() as i32]);
    go(&mut c);
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "", "every fork worked");
    let st = wait(&mut c);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!st.success() && err.contains("fork"), "{st:?} {err}");
    let procs = g.leaf.procs().unwrap();
    assert!((1..=16).contains(&procs.len()), "{} processes", procs.len());
    let stats = g.leaf.stats().unwrap();
    assert_eq!(stats.pids_limit, Some(16));
    assert!(stats.pids <= 16, "{stats:?}");
    g.leaf.remove().unwrap();
    g.assert_gone();
}

/// memory 32 MiB: `tail /dev/zero` (which keeps growing its line) is
/// killed by the OOM killer, and the cgroup says so.
#[test]
fn v1_memory_limit_oom_kills() {
    if !root_or_skip() {
        return;
    }
    let Some((h, bases)) = v1() else { return };
    let g = Guard::new(&h, bases);
    let r = Resources {
        memory: Some(32 << 20),
        ..Default::default()
    };
    g.leaf.create(&spec(g.leaf.path(), r)).unwrap();
    assert!(!g.leaf.oom_killed());
    let mut c = held("exec tail /dev/zero");
    g.leaf.add_process(c.id() as i32).unwrap();
    go(&mut c);
    let st = wait(&mut c);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert!(g.leaf.oom_killed());
    let s = g.leaf.stats().unwrap();
    assert_eq!((s.memory_limit, s.oom_kills), (Some(32 << 20), 1), "{s:?}");
    g.leaf.remove().unwrap();
    g.assert_gone();
}

fn counter_file() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("n");
    (t, f)
}

/// A counter loop: frozen, its counter stands still; thawed, it goes on.
fn freeze_and_thaw(cg: &Cgroup) {
    let (_t, f) = counter_file();
    let mut c = held(&format!("while :; do echo x >> {}; done", f.display()));
    cg.add_process(c.id() as i32).unwrap();
    go(&mut c);
    std::thread::sleep(Duration::from_millis(200));
    cg.set_frozen(true).unwrap();
    assert!(cg.frozen());
    let len = || std::fs::metadata(&f).map_or(0, |m| m.len());
    let a = len();
    assert!(a > 0, "the counter ran");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(len(), a, "frozen");
    cg.set_frozen(false).unwrap();
    assert!(!cg.frozen());
    std::thread::sleep(Duration::from_millis(300));
    assert!(len() > a, "thawed");
    // Frozen again, then removed: remove thaws and kills.
    cg.set_frozen(true).unwrap();
    cg.remove().unwrap();
    assert!(wait(&mut c).code().is_none(), "killed");
}

#[test]
fn v1_freezer() {
    if !root_or_skip() {
        return;
    }
    let Some((h, bases)) = v1() else { return };
    let g = Guard::new(&h, bases);
    g.leaf
        .create(&spec(g.leaf.path(), Resources::default()))
        .unwrap();
    freeze_and_thaw(&g.leaf);
    g.assert_gone();
}

/// A 50000/100000 quota holds a busy loop to about half a core.
#[test]
fn v1_cpu_quota() {
    if !root_or_skip() {
        return;
    }
    let Some((h, bases)) = v1() else { return };
    let g = Guard::new(&h, bases);
    let r = Resources {
        cpu_quota: Some(50000),
        cpu_period: Some(100000),
        ..Default::default()
    };
    g.leaf.create(&spec(g.leaf.path(), r)).unwrap();
    let mut c = held("while :; do :; done");
    g.leaf.add_process(c.id() as i32).unwrap();
    let t = Instant::now();
    go(&mut c);
    std::thread::sleep(Duration::from_secs(1));
    let s = g.leaf.stats().unwrap();
    let wall = t.elapsed().as_secs_f64();
    let used = s.cpu_ns as f64 / 1e9;
    assert!(
        (0.3 * wall..=0.7 * wall).contains(&used),
        "{used} s of CPU in {wall} s"
    );
    assert!(s.cpu_user_ns > 0, "{s:?}");
    g.leaf.kill().unwrap();
    assert!(wait(&mut c).code().is_none());
    g.leaf.remove().unwrap();
    g.assert_gone();
}

/// A cgroup2 hierarchy: this host's (hybrid: /sys/fs/cgroup/unified), or
/// one mounted on a temp dir for the test.
struct V2 {
    root: PathBuf,
    _mounted: Option<(tempfile::TempDir, Unmount)>,
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn v2() -> V2 {
    let found =
        cairn_runtime::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
            .into_iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| PathBuf::from(m.mount_point));
    if let Some(root) = found {
        return V2 {
            root,
            _mounted: None,
        };
    }
    let t = tempfile::tempdir().unwrap();
    nix::mount::mount(
        Some("cgroup2"),
        t.path(),
        Some("cgroup2"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let root = t.path().to_path_buf();
    V2 {
        _mounted: Some((t, Unmount(root.clone()))),
        root,
    }
}

#[test]
fn v2_place_freeze_kill_remove() {
    if !root_or_skip() {
        return;
    }
    let v = v2();
    let h = Hierarchy::v2_at(v.root.clone());
    let g = Guard::new(&h, vec![v.root.clone()]);
    g.leaf
        .create(&spec(g.leaf.path(), Resources::default()))
        .unwrap();
    assert!(v.root.join(g.leaf.path().trim_start_matches('/')).is_dir());
    assert!(
        g.leaf
            .create(&spec(g.leaf.path(), Resources::default()))
            .is_ok(),
        "idempotent"
    );

    // Placement and CPU time.
    let mut c = held("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100 & sleep 100");
    g.leaf.add_process(c.id() as i32).unwrap();
    assert_eq!(g.leaf.procs().unwrap(), [c.id() as i32]);
    go(&mut c);
    let t = Instant::now();
    while g.leaf.procs().unwrap().len() < 3 {
        assert!(t.elapsed() < support::TIMEOUT, "{:?}", g.leaf.procs());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = g.leaf.stats().unwrap();
    assert!(s.cpu_ns > 0, "{s:?}");
    assert_eq!(
        g.leaf.stats().unwrap().oom_kills,
        0,
        "no memory controller: nothing known"
    );
    let parent_children = h.children(g.parent.path());
    assert_eq!(parent_children, ["ctr"]);

    // kill: every process, and the cgroup is empty after.
    g.leaf.kill().unwrap();
    assert!(wait(&mut c).code().is_none());
    assert!(g.leaf.procs().unwrap().is_empty());

    // The freezer, then remove from frozen.
    freeze_and_thaw(&g.leaf);
    g.assert_gone();
    assert!(g.leaf.remove().is_ok(), "absent is removed");
}

/// A limit whose controller the v2 tree does not offer is an error that
/// names the flag, the controller and where it looked; nothing is created.
#[test]
fn v2_unavailable_controller() {
    if !root_or_skip() {
        return;
    }
    let v = v2();
    let h = Hierarchy::v2_at(v.root.clone());
    if h.controllers("/").iter().any(|c| c == "pids") {
        eprintln!("skipped: pids is available on this cgroup2");
        return;
    }
    let g = Guard::new(&h, vec![v.root.clone()]);
    let r = Resources {
        pids_limit: Some(8),
        ..Default::default()
    };
    let e = g
        .leaf
        .create(&spec(g.leaf.path(), r))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "--pids-limit needs the pids controller, which is not available in {}",
            v.root.join("cgroup.controllers").display()
        )),
        "{e}"
    );
    assert!(!g.parent.exists());
}
