//! Soak: many container cycles (`run -d`, `exec`, `stop -t 0`, `rm`) and
//! many pull/prune cycles (`pull`, `rmi -a`, `system prune -a -f`), then:
//!
//! - no leaked mounts: the mount table has as many lines as before and none
//!   names the store;
//! - no leftover processes: none whose command line names the store (a
//!   `cairn-monitor`) or carries the test's marker (a container's command);
//! - no descriptor growth in the test process;
//! - no store growth: after the last prune the store holds as many files,
//!   and within a few KiB as many bytes, as after the first.
//!
//! The cycle counts default to the figures and can be changed:
//! `CAIRN_SOAK_CONTAINER_CYCLES` (1000), `CAIRN_SOAK_PULL_CYCLES` (100),
//! `CAIRN_SOAK_BIG_EVERY` (10: every tenth pull cycle pulls the real
//! 48 MB / 121 MB debian-min from a local registry; the others import a
//! small three-layer image, a new one each cycle, from an OCI layout).
//!
//! As root the test re-runs itself in a private mount namespace
//! (`unshare -m`), so that mounts other processes on the machine make do
//! not change the table it counts; otherwise it checks that no mount names
//! the store. Stores go on /dev/shm when it is a tmpfs (see crash.rs;
//! `CAIRN_TEST_STORE_DIR` overrides).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use cairn_tests::cairn::Cleanup;
use cairn_tests::fixtures::{self, refs};
use cairn_tests::util::{is_root, processes_with};
use cairn_tests::{Cairn, ImageSpec, OciLayout, Registry, RegistryOptions};

const IN_NAMESPACE: &str = "CAIRN_SOAK_IN_MOUNT_NAMESPACE";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Stores

/// A cairn environment whose store is under [`store_base`].
type Env = Cairn;

fn env() -> Env {
    Cairn::on_fast_store("cairn-soak-").expect("cairn environment")
}

// ---------------------------------------------------------------------------
// What leaks

/// Children of this process that are zombies (never reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str()) {
            out.push(pid);
        }
    }
    out
}

fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

fn mountinfo() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Files and directories under `root` (less `locks/`), the bytes of its
/// regular files, and the number of lock files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    entries: usize,
    bytes: u64,
    locks: usize,
    /// Bytes and files of `events/` (the event log, bounded by its own
    /// rotation: not counted in `entries` and `bytes`).
    events: (u64, usize),
}

fn usage(root: &Path) -> Usage {
    let mut u = Usage {
        entries: 0,
        bytes: 0,
        locks: fs::read_dir(root.join("locks"))
            .map(|r| r.count())
            .unwrap_or(0),
        events: fs::read_dir(root.join("events")).map_or((0, 0), |r| {
            r.flatten().fold((0, 0), |(b, n), e| {
                (b + e.metadata().map_or(0, |m| m.len()), n + 1)
            })
        }),
    };
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        for e in fs::read_dir(&p).unwrap().flatten() {
            if p == root && (e.file_name() == "locks" || e.file_name() == "events") {
                continue;
            }
            let m = e.path().symlink_metadata().unwrap();
            u.entries += 1;
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                u.bytes += m.len();
            }
        }
    }
    u
}

/// One sample of the process-level figures.
#[derive(Debug, Clone)]
struct Sample {
    at: usize,
    fds: usize,
    mounts: usize,
}

/// One small image a pull/prune cycle, in an OCI layout (kept while the
/// returned directory lives): 200 files shared by all, a middle layer
/// shared by all, and a top layer of its own (256 KiB). Returns their
/// skopeo references.
fn small_images(pull_cycles: usize) -> (tempfile::TempDir, Vec<String>) {
    let layouts = cairn_tests::util::temp_dir("soak-layout").unwrap();
    let layout = OciLayout::create(layouts.path()).unwrap();
    let base: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("usr/share/base/f{i}"),
                format!("base {i}").into_bytes(),
            )
        })
        .collect();
    let base: Vec<(&str, &[u8])> = base
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let mut small = Vec::new();
    for i in 0..pull_cycles {
        let top = format!("cycle {i}");
        let spec = ImageSpec::new()
            .layer(&base)
            .layer(&[("etc/middle", b"the same in every image")])
            .layer(&[
                ("etc/cycle", top.as_bytes()),
                ("srv/big", &vec![i as u8; 256 << 10]),
            ]);
        small.push(
            layout
                .add_image(&format!("small-{i}"), &spec)
                .unwrap()
                .skopeo_ref,
        );
    }
    (layouts, small)
}

/// After cycle `at`: no mount of either store, no process of a container
/// (`marker`) or of cairn on a store, no unreaped child; records the
/// descriptor and mount counts in `samples`.
fn check_leaks(at: usize, store_paths: &[String], marker: &str, samples: &mut Vec<Sample>) {
    let mounts = mountinfo();
    let ours: Vec<&String> = mounts
        .iter()
        .filter(|l| store_paths.iter().any(|s| l.contains(s.as_str())))
        .collect();
    assert!(
        ours.is_empty(),
        "after {at}: mounts of the stores: {ours:?}"
    );
    let procs: Vec<(u32, String)> = processes_with(marker)
        .into_iter()
        .chain(store_paths.iter().flat_map(|s| processes_with(s)))
        .collect();
    assert!(procs.is_empty(), "after {at}: processes left: {procs:?}");
    let z = zombie_children();
    assert!(z.is_empty(), "after {at}: unreaped children {z:?}");
    samples.push(Sample {
        at,
        fds: fd_count(),
        mounts: mounts.len(),
    });
}

/// No descriptor growth in the test process over `samples` (a descriptor
/// of the test's own runtime may close on the way); no mount growth, when
/// the mount table is counted (`mounts0`, the table before).
fn assert_no_descriptor_or_mount_growth(
    samples: &[Sample],
    fds0: usize,
    mounts0: Option<&[String]>,
) {
    let most = samples
        .iter()
        .map(|s| s.fds)
        .max()
        .unwrap_or(0)
        .max(fd_count());
    assert!(
        most <= fds0,
        "descriptors of the test process grew: {samples:?}"
    );
    if let Some(mounts0) = mounts0 {
        let mounts = mountinfo();
        assert_eq!(
            mounts.len(),
            mounts0.len(),
            "mount table: before {mounts0:#?}\nafter {mounts:#?}"
        );
    }
}

/// No store growth: the container store and the pull store (each as
/// `(baseline, after)`) hold as many entries and about as many bytes as at
/// their baselines, and the pull store's locks/ has not grown with the cycles.
fn assert_stores_did_not_grow(containers: (&Usage, &Usage), pulls: (&Usage, &Usage)) {
    let (container_base, after_containers) = containers;
    let (pull_base, after_pulls) = pulls;
    let close = |a: u64, b: u64| a.abs_diff(b) <= 8 << 10;
    assert!(
        after_containers.entries == container_base.entries
            && close(after_containers.bytes, container_base.bytes),
        "container store grew: {container_base:?} -> {after_containers:?}"
    );
    assert!(
        after_pulls.entries == pull_base.entries && close(after_pulls.bytes, pull_base.bytes),
        "pull store grew after prune: {pull_base:?} -> {after_pulls:?}"
    );
    // The event log grows with every cycle but rotates: at most the log,
    // its one predecessor (1 MiB each, plus a line) and the lock.
    for u in [after_containers, after_pulls] {
        assert!(
            u.events.0 <= (2 << 20) + (64 << 10) && u.events.1 <= 3,
            "events/ is not bounded by its rotation: {u:?}"
        );
    }
    // Lock files of pruned blobs and images go with them (a few fixed
    // ones, like locks/objects, may appear after the baseline).
    assert!(
        after_pulls.locks <= pull_base.locks + 4,
        "locks/ grew with the pull/prune cycles: {pull_base:?} -> {after_pulls:?}"
    );
}

/// Runs `cycle` on the names `c{from}` to `c{to - 1}`, two at a time: one
/// thread takes the even offsets from `from`, the other the odd ones.
fn two_at_a_time(from: usize, to: usize, cycle: &(impl Fn(&str) + Sync)) {
    std::thread::scope(|s| {
        for w in 0..2 {
            s.spawn(move || {
                for i in (from + w..to).step_by(2) {
                    cycle(&format!("c{i}"));
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------
// The test

#[test]
fn soak_container_and_pull_prune_cycles_leak_nothing() {
    if is_root() && std::env::var_os(IN_NAMESPACE).is_none() {
        // Re-run this test alone in a private mount namespace.
        let st = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "soak_container_and_pull_prune_cycles_leak_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(IN_NAMESPACE, "1")
            .stdin(Stdio::null())
            .status()
            .expect("unshare runs");
        assert!(st.success(), "the soak run in its mount namespace failed");
        return;
    }
    soak();
}

/// One container cycle in 50 (and the warm-up) on the default network
/// (netavark's setup and teardown cost some 400 ms: 1000 of them would take
/// the suite's time), the others `--network none`; the leak checks then
/// cover the network's files and mounts too.
fn cycle_network(name: &str) -> &'static str {
    match name.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()) {
        Some(i) if !i.is_multiple_of(50) => "none",
        _ => "bridge",
    }
}

fn soak() {
    let started = Instant::now();
    let container_cycles = count("CAIRN_SOAK_CONTAINER_CYCLES", 1000);
    let pull_cycles = count("CAIRN_SOAK_PULL_CYCLES", 100);
    let big_every = count("CAIRN_SOAK_BIG_EVERY", 10).max(1);
    let counted_mounts = std::env::var_os(IN_NAMESPACE).is_some();
    eprintln!(
        "soak: {container_cycles} container cycles, {pull_cycles} pull/prune cycles (debian-min every {big_every}); mount table counted: {counted_mounts}"
    );

    // Everything the test needs is set up before the first sample.
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let big = reg.push_fixture(refs::DEBIAN_MIN, "debian:1");
    let (_layouts, small) = small_images(pull_cycles);

    let c = env();
    let p = env();
    let marker = format!("{}", 3_000_000_000u64 + u64::from(std::process::id()));
    let _cleanup = Cleanup {
        cairn: &c,
        marker: marker.clone(),
    };
    let image = c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = image.trim().to_owned();
    // Warm up: the first cycle of each kind creates what stays (lock files,
    // object directories), then the baselines are taken.
    let container_cycle = |name: &str| {
        let net = format!("--network={}", cycle_network(name));
        c.ok(["run", "-d", &net, "--name", name, &image, "sleep", &marker]);
        assert_eq!(c.ok(["exec", name, "sh", "-c", "echo ok"]), "ok\n");
        c.ok(["stop", "-t", "0", name]);
        c.ok(["rm", name]);
    };
    container_cycle("warmup");
    let pull_cycle = |i: usize| {
        let r = if i.is_multiple_of(big_every) {
            big.as_str()
        } else {
            small[i].as_str()
        };
        p.ok(["pull", "-q", "--tls-verify=false", r]);
        p.ok(["rmi", "-a"]);
        p.ok(["system", "prune", "-a", "-f"]);
    };
    pull_cycle(0);
    let container_base = usage(c.root());
    let pull_base = usage(p.root());
    let fds0 = fd_count();
    let mounts0 = mountinfo();
    let mut samples = vec![Sample {
        at: 0,
        fds: fds0,
        mounts: mounts0.len(),
    }];
    let store_paths = [
        c.root().display().to_string(),
        p.root().display().to_string(),
    ];
    let leaks_after =
        |at: usize, samples: &mut Vec<Sample>| check_leaks(at, &store_paths, &marker, samples);

    // 1. Container cycles, two at a time (the machine has two cores).
    let t = Instant::now();
    let step = 100.min(container_cycles.max(1));
    let mut done = 0;
    while done < container_cycles {
        let batch = step.min(container_cycles - done);
        two_at_a_time(done, done + batch, &container_cycle);
        done += batch;
        leaks_after(done, &mut samples);
    }
    let container_time = t.elapsed();
    let after_containers = usage(c.root());
    eprintln!(
        "{container_cycles} container cycles in {:.1}s ({:.0} ms each, two at a time); store {container_base:?} -> {after_containers:?}",
        container_time.as_secs_f64(),
        container_time.as_secs_f64() * 1000.0 / container_cycles.max(1) as f64,
    );

    // 2. Pull/prune cycles.
    let t = Instant::now();
    let mut sizes = BTreeMap::new();
    for i in 1..pull_cycles.max(1) {
        pull_cycle(i);
        if i % 10 == 0 || i + 1 == pull_cycles {
            let u = usage(p.root());
            sizes.insert(i, u);
            leaks_after(container_cycles + i, &mut samples);
        }
    }
    let pull_time = t.elapsed();
    let after_pulls = usage(p.root());
    eprintln!(
        "{pull_cycles} pull/prune cycles in {:.1}s; store after each tenth: {:?}",
        pull_time.as_secs_f64(),
        sizes
            .iter()
            .map(|(i, u)| (i, u.entries, u.bytes, u.locks))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "samples (cycle, fds, mount lines): {:?}",
        samples
            .iter()
            .map(|s| (s.at, s.fds, s.mounts))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "soak done in {:.1}s: pull store {pull_base:?} -> {after_pulls:?}",
        started.elapsed().as_secs_f64()
    );

    assert_no_descriptor_or_mount_growth(
        &samples,
        fds0,
        counted_mounts.then_some(mounts0.as_slice()),
    );
    assert_stores_did_not_grow(
        (&container_base, &after_containers),
        (&pull_base, &after_pulls),
    );
    c.ok(["system", "check"]);
    p.ok(["system", "check"]);
}
