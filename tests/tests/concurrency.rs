//! Concurrency: eight cairn processes at once on one store, pulling images
//! that share layers (`multi`, `multi-sibling` and `debian-min` share their
//! 48 MB base layer), creating, starting, exec-ing into, stopping and
//! removing containers of them, and pruning (`image prune -a`, `system
//! prune [-a]`, `rmi`) under their feet. Afterwards:
//!
//! - `cairn system check` is clean;
//! - every container that is left starts and runs `true` (none lost its
//!   image root to a prune);
//! - with the same images pulled into a store by one process at a time, the
//!   two stores hold the same blobs, changesets and objects by name, and no
//!   two object names share an inode: nothing was stored twice;
//! - every command ended within its time limit (a watchdog kills a command
//!   that hangs and fails the test, and bounds the whole run).
//!
//! A second test stalls one download and checks that the locks are per
//! blob, image and container: other pulls and the container verbs go on.
//!
//! Every failed command is recorded with its stderr. Failures that are the
//! right answer to a race (the image was pruned between a pull and a
//! create, the container was pruned between two verbs) are allowed;
//! anything else fails the test with the list.
//!
//! Three more tests aim at the races that once lost containers: `system
//! prune` while a container starts (its status is read under the
//! container's lock now), `image prune -a` while a container of the image
//! is created (the image's use lock), and both among the eight processes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::cairn::Cleanup;
use cairn_tests::fixtures::{self, refs};
use cairn_tests::rng::{seed_from_env, SeededRng};
use cairn_tests::util::{dir_names, processes_with};
use cairn_tests::{Action, Cairn, FaultProxy, Registry, RegistryOptions, Rule};

/// A command that runs longer than this is killed and counts as hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// The whole concurrent run must be over by then.
const RUN_LIMIT: Duration = Duration::from_secs(420);

// ---------------------------------------------------------------------------
// Stores (on tmpfs when there is one: see crash.rs)

/// A cairn environment whose store is under [`store_base`].
type Env = Cairn;

fn env() -> Env {
    Cairn::on_fast_store("cairn-concurrency-").expect("cairn environment")
}

// ---------------------------------------------------------------------------
// Seeded randomness (the seed is printed; CAIRN_CONCURRENCY_SEED replays the
// same choices, not the same interleaving)

fn seed() -> u64 {
    let s = seed_from_env("CAIRN_CONCURRENCY_SEED");
    eprintln!("seed {s} (replay the same choices with CAIRN_CONCURRENCY_SEED={s})");
    s
}

// ---------------------------------------------------------------------------
// Commands under a watchdog

/// One finished command.
#[derive(Debug, Clone)]
struct Op {
    worker: usize,
    args: Vec<String>,
    code: i32,
    stderr: String,
    took: Duration,
    hung: bool,
}

impl Op {
    fn ok(&self) -> bool {
        self.code == 0
    }

    fn line(&self) -> String {
        format!(
            "worker {} `cairn {}` exit {} after {:.1}s{}: {}",
            self.worker,
            self.args.join(" "),
            self.code,
            self.took.as_secs_f64(),
            if self.hung { " (HUNG, killed)" } else { "" },
            self.stderr.trim()
        )
    }
}

/// The commands running now (pid → start, command line) and every finished one.
#[derive(Default)]
struct Log {
    running: Mutex<HashMap<u32, (Instant, String)>>,
    hung: Mutex<BTreeSet<u32>>,
    done: Mutex<Vec<Op>>,
}

impl Log {
    /// Runs cairn `args` to completion (or until the watchdog kills it).
    fn run(&self, c: &Cairn, worker: usize, args: &[&str]) -> Op {
        let start = Instant::now();
        let child = c
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn");
        let pid = child.id();
        self.running
            .lock()
            .unwrap()
            .insert(pid, (start, args.join(" ")));
        let out = child.wait_with_output().expect("wait for cairn");
        self.running.lock().unwrap().remove(&pid);
        let op = Op {
            worker,
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: start.elapsed(),
            hung: self.hung.lock().unwrap().contains(&pid),
        };
        self.done.lock().unwrap().push(op.clone());
        op
    }

    /// Kills commands past [`COMMAND_LIMIT`]; returns how many it killed.
    fn watch(&self) -> usize {
        let mut killed = 0;
        for (pid, (start, cmd)) in self.running.lock().unwrap().iter() {
            if start.elapsed() > COMMAND_LIMIT && self.hung.lock().unwrap().insert(*pid) {
                eprintln!("watchdog: `cairn {cmd}` (pid {pid}) hangs; killing it");
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed += 1;
            }
        }
        killed
    }

    fn kill_all(&self) {
        for pid in self.running.lock().unwrap().keys() {
            self.hung.lock().unwrap().insert(*pid);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

// ---------------------------------------------------------------------------
// Checks

fn names(dir: &Path) -> BTreeSet<String> {
    dir_names(dir).into_iter().collect()
}

/// Object names (`xx/yyyy…`), and the object names that share an inode
/// with another object name.
fn objects(root: &Path) -> (BTreeSet<String>, Vec<String>) {
    use std::os::unix::fs::MetadataExt as _;
    let mut all = BTreeSet::new();
    let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for sub in names(&root.join("objects")) {
        for n in names(&root.join("objects").join(&sub)) {
            let name = format!("{sub}/{n}");
            let m = fs::symlink_metadata(root.join("objects").join(&name)).unwrap();
            by_inode
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(name.clone());
            all.insert(name);
        }
    }
    let shared = by_inode
        .into_values()
        .filter(|v| v.len() > 1)
        .flatten()
        .collect();
    (all, shared)
}

/// Blobs, changesets, image roots and objects of a store, by name.
fn contents(root: &Path) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut m = BTreeMap::new();
    m.insert("blobs", names(&root.join("blobs/sha256")));
    m.insert("layers", names(&root.join("layers")));
    m.insert("images", names(&root.join("images")));
    m.insert("chains", names(&root.join("chains")));
    m.insert("objects", objects(root).0);
    m
}

/// Failures that are the right answer to a race with another worker.
fn expected_race(op: &Op) -> bool {
    let verb = op.args[0].as_str();
    let e = op.stderr.as_str();
    let container_gone = e.contains("no such container");
    let image_gone = e.contains("image not known") || e.contains("no such image");
    match verb {
        // A system prune removed the stopped or created container.
        "start" | "exec" | "stop" | "rm" | "inspect" => container_gone,
        // A prune removed the image between the worker's pull and this.
        "create" | "run" => image_gone,
        // The image is in use by a container, or already removed.
        "rmi" => image_gone || e.contains("in use"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// The tests

struct Images {
    reg: Registry,
    refs: Vec<String>,
}

fn registry() -> Images {
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let mut out = Vec::new();
    for (fixture, dest) in [
        (refs::MULTI, "multi:1"),
        (refs::MULTI_SIBLING, "sibling:1"),
        (refs::DEBIAN_MIN, "debian:1"),
    ] {
        out.push(reg.push_fixture(fixture, dest));
    }
    Images { reg, refs: out }
}

/// Eight workers on one store: three pullers (all three images), three
/// container workers (`run -d`, or `pull` + `create` + `start`; `exec`,
/// `stop`, `rm`, every third container left stopped) on `multi` and
/// `debian-min`, two pruners (`image prune [-a]`, `rmi` of any of the
/// three). A stopped container of `multi` and one of `debian-min` exist
/// from the start, so the prunes never race a create for an image root
/// (that race is the known bug below): they remove `multi-sibling` (its
/// top layer and root; its other layers are shared) again and again under
/// the pulls and the containers of its siblings.
#[test]
fn eight_processes_pulling_running_and_pruning_images_at_once_corrupt_nothing() {
    concurrent_run(false);
}

/// Unprotected: no keeper containers, containers of all three images, and
/// `system prune [-a]` (which also removes stopped containers) among the
/// pruners.
#[test]
fn eight_processes_with_system_prune_and_no_keepers_orphan_no_container() {
    concurrent_run(true);
}

/// The race the test above hits, alone: `system prune -f` while a created
/// container starts. Either the container survives, running, or it is
/// removed and none of its processes run.
#[test]
fn system_prune_while_a_container_starts_never_orphans_its_process() {
    let c = env();
    let mut rng = SeededRng::new(seed());
    let mark = format!("{}", 3_000_000_000u64 + rng.below(999_999_999));
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    let image = c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = image.trim();
    for i in 0..10 {
        let name = format!("p{i}");
        c.ok(["create", "--name", &name, image, "sleep", &mark]);
        let spawn = |args: &[&str]| {
            c.command(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut start = spawn(&["start", &name]);
        sleep(Duration::from_millis(rng.below(30)));
        let mut prune = spawn(&["system", "prune", "-f"]);
        start.wait().unwrap();
        prune.wait().unwrap();
        let exists = c.run(["inspect", &name]).code == 0;
        let procs = processes_with(&mark);
        if exists {
            c.ok(["exec", &name, "true"]);
            c.ok(["rm", "-f", "-t", "0", &name]);
        } else {
            assert!(
                procs.is_empty(),
                "round {i}: {name} was removed while it started, its process runs on: {procs:?}"
            );
        }
        assert!(processes_with(&mark).is_empty(), "round {i}");
    }
}

/// `image prune -a` while a container of the image is created: either the
/// prune sees the container and keeps the image, or the image goes and the
/// create fails; never a container whose image root was removed.
#[test]
fn image_prune_while_a_container_is_created_never_removes_its_root() {
    let c = env();
    let mut rng = SeededRng::new(seed());
    let mark = format!("{}", 3_000_000_000u64 + rng.below(999_999_999));
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    let source = fixtures::oci_ref(refs::DEBIAN_MIN);
    let (mut kept, mut pruned) = (0, 0);
    for i in 0..10 {
        let image = c.ok(["pull", "-q", &source]);
        let image = image.trim().to_owned();
        let name = format!("k{i}");
        let spawn = |args: &[&str]| {
            c.command(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let create = spawn(&[
            "create",
            "--pull=never",
            "--name",
            &name,
            &image,
            "sleep",
            &mark,
        ]);
        sleep(Duration::from_millis(rng.below(40)));
        let prune = spawn(&["image", "prune", "-a", "-f"]);
        let created = create.wait_with_output().unwrap();
        assert!(prune.wait_with_output().unwrap().status.success());
        if created.status.success() {
            kept += 1;
            let r = c.run(["start", &name]);
            assert_eq!(
                r.code, 0,
                "round {i}: {name} was created but cannot start (its image root pruned?): {}",
                r.stderr
            );
            c.ok(["exec", &name, "true"]);
            c.ok(["rm", "-f", "-t", "0", &name]);
            c.ok(["rmi", &image]);
        } else {
            pruned += 1;
            let e = String::from_utf8_lossy(&created.stderr);
            assert!(e.contains("image not known"), "round {i}: {e}");
        }
        c.assert_clean_after(&format!("round {i}"));
    }
    eprintln!("create won {kept} times, prune {pruned} times");
}

/// What the eight workers of one concurrent run share.
struct Workload<'a> {
    c: &'a Cairn,
    log: &'a Log,
    images: &'a Images,
    /// The images containers are made of.
    container_images: &'a [&'a String],
    /// The `sleep` argument of every container command.
    mark: &'a str,
    chaos: bool,
}

impl Workload<'_> {
    fn pull(&self, w: usize, r: &str) -> Op {
        self.log
            .run(self.c, w, &["pull", "-q", "--tls-verify=false", r])
    }

    /// Worker `w` of eight: 0-2 pull, 3-5 make and remove containers, 6-7 prune.
    fn work(&self, w: usize, rng: &mut SeededRng) {
        match w {
            0..=2 => self.puller(w, rng),
            3..=5 => self.container_worker(w, rng),
            _ => self.pruner(w, rng),
        }
    }

    /// The three images in random order, again and again (a pruned image is
    /// fetched and unpacked again).
    fn puller(&self, w: usize, rng: &mut SeededRng) {
        for _ in 0..8 {
            let r = &self.images.refs[rng.below(3) as usize];
            self.pull(w, r);
        }
    }

    /// Containers run (or pulled, created and started), exec'd into and
    /// stopped; two in three removed, the rest left behind stopped.
    fn container_worker(&self, w: usize, rng: &mut SeededRng) {
        let (c, log, mark) = (self.c, self.log, self.mark);
        for round in 0..12 {
            let r = self.container_images[rng.below(self.container_images.len() as u64) as usize];
            let name = format!("w{w}-{round}");
            let created = if round % 2 == 0 {
                log.run(
                    c,
                    w,
                    &[
                        "run",
                        "-d",
                        "--tls-verify=false",
                        "--name",
                        &name,
                        r,
                        "sleep",
                        mark,
                    ],
                )
                .ok()
            } else {
                self.pull(w, r);
                log.run(
                    c,
                    w,
                    &[
                        "create",
                        "--tls-verify=false",
                        "--name",
                        &name,
                        r,
                        "sleep",
                        mark,
                    ],
                )
                .ok()
                    && log.run(c, w, &["start", &name]).ok()
            };
            if !created {
                continue;
            }
            log.run(c, w, &["exec", &name, "true"]);
            log.run(c, w, &["stop", "-t", "0", &name]);
            // Leave every third container behind, stopped.
            if rng.below(3) != 0 {
                log.run(c, w, &["rm", &name]);
            }
        }
    }

    /// `image prune`, `rmi` and (in the chaos run) `system prune` at random
    /// moments.
    fn pruner(&self, w: usize, rng: &mut SeededRng) {
        let (c, log, chaos) = (self.c, self.log, self.chaos);
        for _ in 0..10 {
            sleep(Duration::from_millis(rng.below(1500)));
            match rng.below(4) {
                0 | 1 if !chaos => log.run(c, w, &["image", "prune", "-a", "-f"]),
                0 => log.run(c, w, &["image", "prune", "-a", "-f"]),
                1 => log.run(c, w, &["system", "prune", "-f"]),
                2 if chaos => log.run(c, w, &["system", "prune", "-a", "-f"]),
                2 => log.run(c, w, &["image", "prune", "-f"]),
                _ => {
                    let r = &self.images.refs[rng.below(3) as usize];
                    log.run(c, w, &["rmi", r])
                }
            };
        }
    }
}

/// Runs one worker a seed, each on its own thread, under the watchdog:
/// an error when commands hung or the whole run passed [`RUN_LIMIT`].
fn run_workers(work: &Workload, seeds: &[u64], started: Instant) -> Result<(), String> {
    let log = work.log;
    std::thread::scope(|s| {
        let handles: Vec<_> = seeds
            .iter()
            .enumerate()
            .map(|(w, seed)| {
                let mut rng = SeededRng::new(*seed);
                s.spawn(move || work.work(w, &mut rng))
            })
            .collect();
        let mut hung = 0;
        loop {
            if handles.iter().all(|h| h.is_finished()) {
                break;
            }
            hung += log.watch();
            if started.elapsed() > RUN_LIMIT {
                log.kill_all();
                return Err(format!(
                    "the concurrent run passed {RUN_LIMIT:?}; still running: {:?}",
                    log.running
                        .lock()
                        .unwrap()
                        .values()
                        .map(|v| v.1.clone())
                        .collect::<Vec<_>>()
                ));
            }
            sleep(Duration::from_millis(100));
        }
        for h in handles {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        if hung > 0 {
            return Err(format!("{hung} commands hung"));
        }
        Ok(())
    })
}

/// Prints what the workers ran (per verb: runs, failures, longest) and the
/// failures that answer a race; returns the failures that do not.
fn summarize(ops: &[Op], concurrent: Duration) -> Vec<String> {
    let mut by_verb: BTreeMap<String, (usize, usize, Duration)> = BTreeMap::new();
    for op in ops {
        let verb = if op.args[0] == "image" || op.args[0] == "system" {
            format!("{} {}", op.args[0], op.args[1])
        } else {
            op.args[0].clone()
        };
        let e = by_verb.entry(verb).or_default();
        e.0 += 1;
        e.1 += usize::from(!op.ok());
        e.2 = e.2.max(op.took);
    }
    eprintln!(
        "{} commands by 8 workers in {:.1}s (verb: runs, failures, longest): {by_verb:?}",
        ops.len(),
        concurrent.as_secs_f64()
    );
    let unexpected: Vec<String> = ops
        .iter()
        .filter(|o| !o.ok() && (o.hung || !expected_race(o)))
        .map(Op::line)
        .collect();
    let races: Vec<String> = ops
        .iter()
        .filter(|o| !o.ok() && !o.hung && expected_race(o))
        .map(Op::line)
        .collect();
    eprintln!("{} failures that answer a race:", races.len());
    for r in &races {
        eprintln!("  {r}");
    }
    unexpected
}

/// No container lost its image root: each one the run left starts and runs.
/// Then all are removed, and none of their processes (carrying `mark`) remains.
fn assert_every_container_starts(c: &Cairn, mark: &str) {
    let left = c.ok(["ps", "-a", "--format", "{{.Names}}"]);
    let left: Vec<&str> = left.lines().collect();
    eprintln!("{} containers left: {left:?}", left.len());
    for name in &left {
        let r = c.run(["start", name]);
        assert_eq!(r.code, 0, "start {name} (left by the run): {}", r.stderr);
        c.ok(["exec", name, "true"]);
    }
    c.ok(["rm", "-a", "-f", "-t", "0"]);
    let procs = processes_with(mark);
    assert!(procs.is_empty(), "container processes left: {procs:?}");
}

/// Nothing stored twice: the same images pulled one at a time give the same
/// blobs, changesets, roots and objects, by name, and no two object names
/// share an inode.
fn assert_stored_once(c: &Cairn, images: &Images, started: Instant) {
    for r in &images.refs {
        c.ok(["pull", "-q", "--tls-verify=false", r]);
    }
    c.ok(["system", "prune", "-f"]);
    c.assert_clean_after("after pulling the three images again");
    let reference = env();
    for r in &images.refs {
        reference.ok(["pull", "-q", "--tls-verify=false", r]);
    }
    reference.ok(["system", "prune", "-f"]);
    let (got, want) = (contents(c.root()), contents(reference.root()));
    for (what, want_names) in &want {
        let got_names = &got[what];
        assert_eq!(
            got_names.len(),
            want_names.len(),
            "{what}: {} in the concurrent store, {} pulled one at a time; extra {:?}, missing {:?}",
            got_names.len(),
            want_names.len(),
            got_names.difference(want_names).take(5).collect::<Vec<_>>(),
            want_names.difference(got_names).take(5).collect::<Vec<_>>()
        );
        assert_eq!(got_names, want_names, "{what}");
    }
    let (objects, shared) = objects(c.root());
    assert!(
        shared.is_empty(),
        "object names sharing an inode: {shared:?}"
    );
    eprintln!(
        "stores equal: {} blobs, {} changesets, {} image roots, {} objects (one inode each); {:.1}s in all",
        got["blobs"].len(),
        got["layers"].len(),
        got["images"].len(),
        objects.len(),
        started.elapsed().as_secs_f64()
    );
}

fn concurrent_run(chaos: bool) {
    let started = Instant::now();
    let mut rng = SeededRng::new(seed());
    let images = registry();
    let c = env();
    let log = Log::default();
    let mark = format!("{}", 3_000_000_000u64 + rng.below(999_999_999));
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    // Each worker's own choices, drawn now so a seed replays them.
    let seeds: Vec<u64> = (0..8).map(|_| rng.next_u64()).collect();
    // The images containers are made of: in the protected run, multi and
    // debian-min, each kept in use by a stopped container from the start.
    let container_images: Vec<&String> = if chaos {
        images.refs.iter().collect()
    } else {
        vec![&images.refs[0], &images.refs[2]]
    };
    if !chaos {
        for (i, r) in container_images.iter().enumerate() {
            c.ok([
                "create",
                "--tls-verify=false",
                "--name",
                &format!("keeper{i}"),
                r,
                "sleep",
                &mark,
            ]);
        }
    }
    let work = Workload {
        c: &c,
        log: &log,
        images: &images,
        container_images: &container_images,
        mark: &mark,
        chaos,
    };
    let outcome = run_workers(&work, &seeds, started);
    let ops = log.done.lock().unwrap().clone();
    let unexpected = summarize(&ops, started.elapsed());
    if let Err(e) = outcome {
        panic!("{e}\nfailures: {unexpected:#?}");
    }
    assert!(
        unexpected.is_empty(),
        "unexpected failures: {unexpected:#?}"
    );

    // 1. No corruption.
    c.assert_clean_after("after the concurrent run");
    // 2. No container lost its image root.
    assert_every_container_starts(&c, &mark);
    // 3. Nothing stored twice.
    assert_stored_once(&c, &images, started);
}

/// One download stalls (the proxy holds the big layer for 10 s); meanwhile
/// pulls of images that do not need that blob, the container verbs on a
/// present image, `rmi`, and even `image prune` and `system prune -a` are
/// not held up: locks are per blob, image and container, and the stalled
/// pull's blobs are pinned, not guarded by a store-wide lock. The prunes
/// must leave the pinned blobs alone: the stalled pull then completes and
/// its image is whole.
#[test]
fn a_stalled_download_holds_up_only_what_needs_its_blob() {
    let images = registry();
    let zstd_ref = images.reg.push_fixture(refs::DEBIAN_MIN_ZSTD, "zstd:1");
    let proxy = FaultProxy::start(images.reg.host()).expect("proxy");
    let c = env();
    // A present image for the container verbs, and one to rmi.
    c.ok(["pull", "-q", "--tls-verify=false", &images.refs[2]]);
    let stalled = format!("{}/multi:1", proxy.host());
    let big_layer = {
        let m: serde_json::Value =
            serde_json::from_slice(&images.reg.manifest("multi:1").expect("manifest").bytes)
                .unwrap();
        m["layers"][1]["digest"].as_str().unwrap().to_owned()
    };
    // multi's second layer is not in debian-min: only multi's pull waits.
    proxy.add_rule(
        Rule::new(Action::Delay { ms: 10_000 })
            .method("GET")
            .path_contains(&big_layer)
            .times(1),
    );
    let t0 = Instant::now();
    let stalled_pull = c
        .command(["pull", "-q", "--tls-verify=false", &stalled])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while proxy.requests_matching("GET", &big_layer).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the stalled pull never asked for the layer"
        );
        sleep(Duration::from_millis(20));
    }
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let out = c.ok(args);
        (t.elapsed(), out)
    };
    let mut took = BTreeMap::new();
    took.insert(
        "pull of another image",
        timed(&["pull", "-q", "--tls-verify=false", &zstd_ref]).0,
    );
    took.insert(
        "run -d",
        timed(&["run", "-d", "--name", "bg", &images.refs[2], "sleep", "100"]).0,
    );
    took.insert("exec", timed(&["exec", "bg", "true"]).0);
    took.insert("stop", timed(&["stop", "-t", "0", "bg"]).0);
    took.insert("rm", timed(&["rm", "bg"]).0);
    took.insert("images", timed(&["images"]).0);
    took.insert("rmi", timed(&["rmi", &zstd_ref]).0);
    took.insert("image prune", timed(&["image", "prune", "-f"]).0);
    took.insert("system prune -a", timed(&["system", "prune", "-a", "-f"]).0);
    let in_the_stall = t0.elapsed();
    let pull_out = stalled_pull.wait_with_output().unwrap();
    let pull_done = t0.elapsed();
    eprintln!(
        "during a 10 s stalled download: {took:?}; all done {in_the_stall:?} after the stall began; \
         the stalled pull ended after {pull_done:?}"
    );
    assert!(
        pull_out.status.success(),
        "the stalled pull failed after the prunes: {}",
        String::from_utf8_lossy(&pull_out.stderr)
    );
    assert!(
        in_the_stall < Duration::from_secs(9),
        "the other commands waited for the stalled download: {took:?}"
    );
    // The prunes ran before the pull wrote its ref: its image must be
    // whole (the check below verifies every blob of every ref).
    let ids = c.ok(["images", "-q", "--no-trunc"]);
    assert_eq!(
        ids.lines().count(),
        1,
        "only the stalled pull's image: {ids}"
    );
    c.ok(["run", "--rm", &stalled, "true"]);
    c.assert_clean_after("after the stall");
}
