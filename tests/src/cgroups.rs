//! What the cgroup suites share (`tests/tests/cgroups.rs`,
//! `tests/tests/attacks_cgroups.rs`): a store holding the Debian test image
//! whose containers are thawed and removed on drop, the paths of a
//! container's cgroups on this host, and cairn run where the unified (v2)
//! hierarchy is on `/sys/fs/cgroup`.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cairn::{Cairn, Run};
use crate::fixtures::FixtureStore;
use crate::util::is_root;

/// The name the fixture image gets in every store of these suites.
pub const IMAGE: &str = "localhost/debian-min:latest";

/// A root store with [`IMAGE`] (its containers unpaused and removed on
/// drop), or `None` (said on stderr) when not root: cgroups are created
/// under /sys/fs/cgroup.
pub fn env() -> Option<FixtureStore> {
    if !is_root() {
        eprintln!("skipped: needs root (cgroups are created under /sys/fs/cgroup)");
        return None;
    }
    Some(FixtureStore::linked(IMAGE).unpausing())
}

/// A store of the rootless test user with [`IMAGE`].
pub fn rootless_env() -> FixtureStore {
    let cairn = Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)");
    FixtureStore::pulled(cairn, IMAGE).unpausing()
}

/// `inspect --format TEMPLATE NAME`, trailing newline cut.
pub fn inspect(c: &Cairn, name: &str, template: &str) -> String {
    c.ok(["inspect", "--format", template, name])
        .trim_end()
        .to_owned()
}

/// The container's full id.
pub fn id_of(c: &Cairn, name: &str) -> String {
    inspect(c, name, "{{.Id}}")
}

/// The v1 hierarchies this host mounts (each controller alone) and the
/// named systemd one.
pub const V1: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "systemd",
];

/// The unified (v2) hierarchy beside them.
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether this host has the unified hierarchy.
pub fn has_v2() -> bool {
    Path::new(UNIFIED).join("cgroup.controllers").exists()
}

/// The v1 directory of container `id`'s cgroup in `controller`.
pub fn v1_dir(controller: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("cairn")
        .join(format!("libpod-{id}"))
}

/// Every cgroup directory of container `id` still in any hierarchy.
pub fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let mut left: Vec<PathBuf> = V1
        .iter()
        .map(|c| v1_dir(c, id))
        .filter(|d| d.exists())
        .collect();
    let v2 = Path::new(UNIFIED)
        .join("cairn")
        .join(format!("libpod-{id}"));
    if v2.exists() {
        left.push(v2);
    }
    left
}

/// A cgroup file's content, trimmed; panics naming the file.
pub fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Polls `f` every 20 ms; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(20));
    }
}

/// The host's root disk, `(major, minor)` (glibc's `major(3)`/`minor(3)`).
pub fn root_disk() -> (u64, u64) {
    let dev = fs::metadata("/").expect("stat /").dev();
    (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    )
}

/// cairn in a private mount namespace whose `/sys/fs/cgroup` is the
/// unified (v2) hierarchy: what every cairn command of a v2 test runs as.
pub fn v2(c: &Cairn, args: &[&str]) -> Run {
    let mut cmd = c.tool("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(crate::cairn::binary())
        .args(args);
    Run::from(cmd.output().expect("unshare runs"))
}
