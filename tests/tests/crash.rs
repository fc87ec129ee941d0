//! Crash consistency: `cairn pull` (through a slow, faulty proxy and
//! straight from the registry), `unpack`, `create`, `start`, `rm`, `rmi`,
//! `image prune` and `system prune` are killed with SIGKILL at random
//! moments, then the same command runs again. Every time: the command
//! completes, `cairn system check` is clean, the temp files of the killed
//! run are gone (`tmp/`, `images/*.tmp-*`, `layers/*.tmp-*`,
//! `containers/.tmp-*`, `containers/.rm-*`), and what the image gives a
//! container is exactly what an uninterrupted pull gives (its os-release,
//! and a digest of every file under /usr, /etc and /var/lib), so no partial
//! blob, object, changeset or image root is ever used.
//!
//! The kill times come from a seeded generator: the seed is printed at the
//! start of each test (shown when it fails) and `CAIRN_CRASH_SEED=N`
//! replays the same delays. Kill times are fractions of the command's own
//! uninterrupted duration measured first on this machine (and lowered to
//! the duration seen when a kill comes after the command ended), so the
//! kills spread over the whole run however fast the build and the machine. A kill that comes
//! after the command ended does not count; each test goes on until its
//! quota of kills landed on a running process.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::cairn::Cleanup;
use cairn_tests::fixtures::{self, refs};
use cairn_tests::rng::{seed_from_env, SeededRng};
use cairn_tests::util::fast_store_base as store_base;
use cairn_tests::util::{dir_names, processes_with};
use cairn_tests::{Action, Cairn, FaultProxy, Registry, RegistryOptions, Rule, Run};
use sha2::{Digest as _, Sha256};

/// Kills that must land on a running process, per test: 8 + 8 pulls,
/// 6 unpacks, 6 creates, 6 starts at random points plus up to 6 the moment
/// the monitor exists, 6 + 3 rms (the 3 while it deletes), 8 rmis, 8
/// prunes: at least 61.
const PULL_KILLS: usize = 8;
const KILLS: usize = 6;
const GC_KILLS: usize = 8;

/// What a container of an image sees: os-release, then a digest of the
/// listing of /usr, /etc (less the files cairn binds in per container) and
/// /var/lib with every entry's type, size (not of directories: that depends
/// on the filesystem), mode, owner and link target,
/// then the content digests of a few large files. A root missing files, or
/// with files cut short, shows here; content cannot differ at the same size
/// without a blob or object failing `system check`.
const CONTENT_SCRIPT: &str = "cat /etc/os-release; cd / && \
    find usr etc var/lib -xdev ! -path etc/hostname ! -path etc/hosts ! -path etc/resolv.conf \
    \\( \\( -type d -printf '%p d %m %U:%G\\n' \\) -o -printf '%p %y %s %m %U:%G %l\\n' \\) \
    | LC_ALL=C sort | md5sum; \
    md5sum usr/bin/bash usr/lib/x86_64-linux-gnu/libc.so.6 usr/bin/perl etc/passwd";

// ---------------------------------------------------------------------------
// Seeded randomness

/// The generator of one test: `CAIRN_CRASH_SEED` (else the clock) mixed
/// with the test's name. Prints the seed to replay it.
fn rng_for_test(test: &str) -> (SeededRng, u64) {
    let base = seed_from_env("CAIRN_CRASH_SEED");
    eprintln!("{test}: seed {base} (replay the same kill delays with CAIRN_CRASH_SEED={base})");
    (SeededRng::for_test(base, test), base)
}

// ---------------------------------------------------------------------------
// Stores

/// A cairn environment whose store is under [`store_base`].
type Env = Cairn;

fn env() -> Env {
    Cairn::on_fast_store("cairn-crash-").expect("cairn environment")
}

// ---------------------------------------------------------------------------
// Killing

/// One SIGKILL sent (or not: the command may have ended first).
#[derive(Debug)]
struct Kill {
    /// The process was still running when killed.
    landed: bool,
    /// When, after the spawn.
    after: Duration,
}

/// Starts cairn `args` with its output discarded.
fn spawn_quiet(c: &Cairn, args: &[&str]) -> std::process::Child {
    c.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn")
}

/// Runs cairn `args` and SIGKILLs it `delay` after the spawn.
fn kill_after(c: &Cairn, args: &[&str], delay: Duration) -> Kill {
    let mut child = spawn_quiet(c, args);
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return Kill {
                landed: false,
                after: start.elapsed(),
            };
        }
        let elapsed = start.elapsed();
        if elapsed >= delay {
            break;
        }
        sleep((delay - elapsed).min(Duration::from_millis(2)));
    }
    let _ = child.kill();
    let _ = child.wait();
    Kill {
        landed: true,
        after: start.elapsed(),
    }
}

/// Runs `args` to completion and returns the run and its duration.
fn timed(c: &Cairn, args: &[&str]) -> (Run, Duration) {
    let t = Instant::now();
    let r = c.run(args);
    (r, t.elapsed())
}

fn ok_timed(c: &Cairn, args: &[&str]) -> Duration {
    let (r, d) = timed(c, args);
    assert_eq!(r.code, 0, "cairn {args:?}: {}\n{}", r.stdout, r.stderr);
    d
}

// ---------------------------------------------------------------------------
// What must hold after every kill and rerun

/// Temp files and directories of interrupted commands, relative to the root.
fn temp_leftovers(root: &Path) -> Vec<String> {
    let names = |dir: &str| dir_names(&root.join(dir));
    let mut out = Vec::new();
    out.extend(names("tmp").into_iter().map(|n| format!("tmp/{n}")));
    out.extend(
        names("images")
            .into_iter()
            .filter(|n| n.contains(".tmp-"))
            .map(|n| format!("images/{n}")),
    );
    out.extend(
        names("chains")
            .into_iter()
            .filter(|n| n.contains(".tmp-"))
            .map(|n| format!("chains/{n}")),
    );
    out.extend(
        names("layers")
            .into_iter()
            .filter(|n| !n.ends_with(".cs"))
            .map(|n| format!("layers/{n}")),
    );
    for sub in names("objects") {
        if sub.len() != 2 {
            out.push(format!("objects/{sub}"));
            continue;
        }
        out.extend(
            names(&format!("objects/{sub}"))
                .into_iter()
                .filter(|n| n.starts_with("tmp-"))
                .map(|n| format!("objects/{sub}/{n}")),
        );
    }
    out.extend(
        names("containers")
            .into_iter()
            .filter(|n| n.starts_with(".tmp-") || n.starts_with(".rm-"))
            .map(|n| format!("containers/{n}")),
    );
    out.sort();
    out
}

/// `system check` is clean and no temp file is left; `what` says which
/// kill this follows (seed, delay) for the failure message.
fn assert_consistent(c: &Cairn, what: &str) {
    c.assert_clean_after(&format!("{what}, after the rerun"));
    let left = temp_leftovers(c.root());
    assert!(
        left.is_empty(),
        "{what}: the rerun did not sweep the killed run's temp files: {left:?}"
    );
}

/// What a container of `image` sees (see [`CONTENT_SCRIPT`]).
fn content(c: &Cairn, image: &str) -> String {
    c.ok(["run", "--rm", image, "sh", "-c", CONTENT_SCRIPT])
}

/// What a container sees of each fixture image after a clean, uninterrupted
/// import: the reference every killed-and-rerun store is compared with.
fn expected(fixture: &str) -> &'static str {
    static EXPECTED: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();
    let map = EXPECTED.get_or_init(|| {
        let c = env();
        let mut m = BTreeMap::new();
        for f in [refs::MULTI, refs::MULTI_SIBLING] {
            let id = c.ok(["pull", "-q", &fixtures::oci_ref(f)]);
            let out = content(&c, id.trim());
            assert!(out.contains("Debian GNU/Linux 12"), "{out}");
            m.insert(f, out);
        }
        m
    });
    map.get(fixture).expect("a fixture with an expectation")
}

fn assert_content(c: &Cairn, image: &str, fixture: &str, what: &str) {
    let got = content(c, image);
    assert_eq!(
        got,
        expected(fixture),
        "{what}: a container of {image} does not see what a clean pull gives"
    );
}

/// A `sleep` argument no other test uses, so the container's processes can
/// be found on the host.
fn marker(rng: &mut SeededRng) -> String {
    format!("{}", 3_000_000_000u64 + rng.below(999_999_999))
}

// ---------------------------------------------------------------------------
// Fixtures

fn registry_with_multi_and_sibling() -> Registry {
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    for (fixture, dest) in [(refs::MULTI, "multi:1"), (refs::MULTI_SIBLING, "sibling:1")] {
        reg.push_fixture(fixture, dest);
    }
    reg
}

fn manifest_hex(c: &Cairn, image: &str) -> String {
    let digest = c.ok(["image", "inspect", "--format", "{{.Digest}}", image]);
    digest
        .trim()
        .strip_prefix("sha256:")
        .expect("sha256 digest")
        .to_owned()
}

/// The fixture whose content `reference` must show.
fn fixture_of(reference: &str) -> &'static str {
    if reference.contains("sibling") {
        refs::MULTI_SIBLING
    } else {
        refs::MULTI
    }
}

/// Accepts a rerun that exits 0, or one that finds the killed run's work
/// already done (podman's answer when the same command is repeated).
fn assert_rerun_completes(r: &Run, done_already: &[(i32, &str)], what: &str) {
    let ok = r.code == 0
        || done_already
            .iter()
            .any(|(code, text)| r.code == *code && r.stderr.contains(text));
    assert!(
        ok,
        "{what}: the rerun did not complete (exit {}):\n{}{}",
        r.code, r.stdout, r.stderr
    );
}

/// Landed kills per command, for the summary line each test prints.
#[derive(Default)]
struct Tally {
    landed: usize,
    missed: usize,
    delays: Vec<u128>,
}

impl Tally {
    fn add(&mut self, k: &Kill) {
        if k.landed {
            self.landed += 1;
            self.delays.push(k.after.as_millis());
        } else {
            self.missed += 1;
        }
    }

    fn report(&self, test: &str, started: Instant) {
        eprintln!(
            "{test}: {} kills landed (delays ms {:?}), {} came after the command ended; {:.1}s",
            self.landed,
            self.delays,
            self.missed,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Enough attempts that a quota is met even when many kills come too late.
fn attempts(quota: usize) -> usize {
    quota * 4
}

// ---------------------------------------------------------------------------
// pull

/// Through the fault proxy: every blob request is delayed, and in half the
/// runs the big layer's first download is cut short (the pull then waits to
/// retry, holding a partial file), so kills land mid-download and
/// mid-resume as well as while layers decode and the image root is built.
#[test]
fn pull_killed_mid_download_through_a_slow_proxy_resumes_and_completes() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("pull_through_proxy");
    let reg = registry_with_multi_and_sibling();
    let proxy = FaultProxy::start(reg.host()).expect("proxy starts");
    let big_layer = fixture_layers(refs::MULTI)[0].clone();
    let mut tally = Tally::default();
    let mut baseline = None;
    let mut i = 0;
    while tally.landed < PULL_KILLS {
        assert!(
            i < attempts(PULL_KILLS),
            "seed {seed}: too many missed kills"
        );
        let reference = format!(
            "{}/{}",
            proxy.host(),
            if i % 2 == 0 { "multi:1" } else { "sibling:1" }
        );
        let delay_ms = 20 + rng.below(100);
        let cut = rng.below(2) == 0;
        let arm = |proxy: &FaultProxy, cut_at: u64| {
            proxy.clear_rules();
            proxy.add_rule(
                Rule::new(Action::Delay { ms: delay_ms })
                    .method("GET")
                    .path_contains("/blobs/")
                    .times(1000),
            );
            if cut {
                proxy.add_rule(
                    Rule::new(Action::Truncate {
                        after_bytes: cut_at,
                    })
                    .method("GET")
                    .path_contains(&big_layer)
                    .times(1),
                );
            }
        };
        let cut_at = 1_000_000 + rng.below(40_000_000);
        let args = [
            "pull",
            "-q",
            "--tls-verify=false",
            "--retry-delay",
            "200ms",
            reference.as_str(),
        ];
        let base = *baseline.get_or_insert_with(|| {
            let c = env();
            arm(&proxy, cut_at);
            let d = ok_timed(&c, &args);
            eprintln!("uninterrupted pull through the proxy: {d:?}");
            d
        });
        let c = env();
        arm(&proxy, cut_at);
        let delay = rng.fraction_of(base, 0.02, 1.0);
        let k = kill_after(&c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            baseline = Some(k.after);
        }
        let what = format!(
            "seed {seed}, kill {i} of pull {reference} (blob delay {delay_ms} ms, cut at {}) after {:?} (landed: {})",
            if cut { cut_at.to_string() } else { "-".into() },
            k.after,
            k.landed
        );
        proxy.clear_rules();
        let r = c.run(args);
        assert_rerun_completes(&r, &[], &what);
        assert_consistent(&c, &what);
        assert_content(&c, &reference, fixture_of(&reference), &what);
        i += 1;
    }
    tally.report("pull through the proxy", started);
}

/// Straight from the registry (loopback speed): most of a pull's time is
/// decoding layers and building the image root, so that is where most of
/// these kills land.
#[test]
fn pull_killed_at_random_points_then_pulled_again_is_whole() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("pull_direct");
    let reg = registry_with_multi_and_sibling();
    let multi = format!("{}/multi:1", reg.host());
    let mut base = ok_timed(&env(), &["pull", "-q", "--tls-verify=false", &multi]);
    eprintln!("uninterrupted pull: {base:?}");
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < PULL_KILLS {
        assert!(
            i < attempts(PULL_KILLS),
            "seed {seed}: too many missed kills"
        );
        let reference = format!(
            "{}/{}",
            reg.host(),
            if i % 2 == 0 { "multi:1" } else { "sibling:1" }
        );
        let args = ["pull", "-q", "--tls-verify=false", reference.as_str()];
        let c = env();
        let delay = rng.fraction_of(base, 0.0, 1.0);
        let k = kill_after(&c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            base = k.after;
        }
        let what = format!(
            "seed {seed}, kill {i} of pull {reference} after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(args);
        assert_rerun_completes(&r, &[], &what);
        assert_consistent(&c, &what);
        assert_content(&c, &reference, fixture_of(&reference), &what);
        i += 1;
    }
    tally.report("pull from the registry", started);
}

// ---------------------------------------------------------------------------
// unpack

/// The layer blobs of a fixture image, in order (digests).
fn fixture_layers(fixture: &str) -> Vec<String> {
    fixtures::manifest_and_layers(fixture).1
}

/// A digest of a directory tree: every entry's path, type, mode, owner,
/// size, symlink target and content, in path order.
fn tree_digest(root: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let mut h = Sha256::new();
    let mut todo = vec![PathBuf::new()];
    let mut entries = Vec::new();
    while let Some(rel) = todo.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        entries.push(rel.clone());
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap().flatten() {
                todo.push(rel.join(e.file_name()));
            }
        }
    }
    entries.sort();
    for rel in entries {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        h.update(format!(
            "{}\0{:o}\0{}:{}\0{}\0",
            rel.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            if m.is_dir() { 0 } else { m.size() }
        ));
        if m.file_type().is_symlink() {
            h.update(fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes());
        } else if m.is_file() {
            h.update(fs::read(&p).unwrap());
        }
    }
    hex::encode(h.finalize())
}

/// `cairn unpack IMAGE DIR` (the image root copied out of a store that has
/// the image decoded) and `cairn unpack --layer BLOB... DIR` (raw layers
/// decoded into a fresh store's objects), killed at random: the rerun of
/// the same command into the same directory completes and gives the same
/// tree as an uninterrupted unpack.
#[test]
fn unpack_killed_at_random_points_then_unpacked_again_is_whole() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("unpack");
    let layout = fixtures::layout();
    let layer_files: Vec<String> = fixture_layers(refs::MULTI)
        .iter()
        .map(|d| {
            layout
                .join("blobs/sha256")
                .join(&d["sha256:".len()..])
                .display()
                .to_string()
        })
        .collect();
    let image_store = env();
    let id = image_store.ok(["pull", "-q", &fixtures::oci_ref(refs::MULTI)]);
    let id = id.trim().to_owned();
    let work = tempfile::Builder::new()
        .prefix("cairn-crash-unpack-")
        .tempdir_in(store_base())
        .unwrap();
    let mut reference = BTreeMap::new();
    let mut baselines = BTreeMap::new();
    for layers in [false, true] {
        let c = env();
        let store = if layers { &c } else { &image_store };
        let dir = work.path().join(format!("ref-{layers}"));
        let mut args: Vec<String> = vec!["unpack".into()];
        if layers {
            args.push("--layer".into());
            args.extend(layer_files.iter().cloned());
        } else {
            args.push(id.clone());
        }
        args.push(dir.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = ok_timed(store, &args);
        eprintln!("uninterrupted unpack (--layer: {layers}): {d:?}");
        baselines.insert(layers, d);
        reference.insert(layers, tree_digest(&dir));
    }
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < KILLS {
        assert!(i < attempts(KILLS), "seed {seed}: too many missed kills");
        let layers = i % 2 == 1;
        let fresh = env();
        let c = if layers { &fresh } else { &image_store };
        let dir = work.path().join(format!("out-{i}"));
        let mut args: Vec<String> = vec!["unpack".into()];
        if layers {
            args.push("--layer".into());
            args.extend(layer_files.iter().cloned());
        } else {
            args.push(id.clone());
        }
        args.push(dir.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let delay = rng.fraction_of(baselines[&layers], 0.0, 1.0);
        let k = kill_after(c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            baselines.insert(layers, k.after);
        }
        let what = format!(
            "seed {seed}, kill {i} of unpack (--layer: {layers}) after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(&args);
        // "not empty": the killed run had finished; the tree is checked next.
        assert_rerun_completes(&r, &[(125, "directory not empty")], &what);
        assert_eq!(
            tree_digest(&dir),
            reference[&layers],
            "{what}: the rerun's tree differs from an uninterrupted unpack"
        );
        let siblings: Vec<String> = fs::read_dir(work.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("ref-") && !n.starts_with("out-"))
            .collect();
        assert!(
            siblings.is_empty(),
            "{what}: left beside the target: {siblings:?}"
        );
        assert_consistent(c, &what);
        let _ = fs::remove_dir_all(&dir);
        i += 1;
    }
    assert_content(
        &image_store,
        &id,
        refs::MULTI,
        &format!("seed {seed}, after the unpack kills"),
    );
    tally.report("unpack", started);
}

// ---------------------------------------------------------------------------
// create, start, rm

/// A store with `multi` pulled from the fixture layout; returns the image id.
fn store_with_multi() -> (Env, String) {
    let c = env();
    let id = c.ok(["pull", "-q", &fixtures::oci_ref(refs::MULTI)]);
    let id = id.trim().to_owned();
    (c, id)
}

/// `create`, killed at random; in half the runs the image root is missing
/// first (as after a pull killed before it built it, or a repair that
/// removed it), so the kill may land while create builds it.
#[test]
fn create_killed_at_random_points_then_created_again_runs() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("create");
    let (c, id) = store_with_multi();
    let mark = marker(&mut rng);
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    let image_dir = c.root().join("images").join(manifest_hex(&c, &id));
    assert!(image_dir.join("info.json").is_file());
    let mut baselines = BTreeMap::new();
    for rebuild in [false, true] {
        if rebuild {
            // The layer directories too: create builds them all again.
            remove_tree(&image_dir);
            remove_tree(&c.root().join("chains"));
        }
        let d = ok_timed(
            &c,
            &["create", "--name", &format!("base-{rebuild}"), &id, "true"],
        );
        eprintln!("uninterrupted create (image root rebuilt: {rebuild}): {d:?}");
        baselines.insert(rebuild, d);
    }
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < KILLS {
        assert!(i < attempts(KILLS), "seed {seed}: too many missed kills");
        let rebuild = i % 2 == 1;
        if rebuild {
            remove_tree(&image_dir);
        }
        let name = format!("c{i}");
        let args = [
            "create",
            "--name",
            name.as_str(),
            id.as_str(),
            "sleep",
            mark.as_str(),
        ];
        let delay = rng.fraction_of(baselines[&rebuild], 0.0, 1.2);
        let k = kill_after(&c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            baselines.insert(rebuild, k.after);
        }
        let what = format!(
            "seed {seed}, kill {i} of create (image root rebuilt: {rebuild}) after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(args);
        assert_rerun_completes(&r, &[(125, "is already in use")], &what);
        assert_consistent(&c, &what);
        c.ok(["start", &name]);
        let got = c.ok(["exec", &name, "sh", "-c", CONTENT_SCRIPT]);
        assert_eq!(got, expected(refs::MULTI), "{what}: the container's root");
        c.ok(["rm", "-f", "-t", "0", &name]);
        assert!(
            processes_with(&mark).is_empty(),
            "{what}: {:?}",
            processes_with(&mark)
        );
        i += 1;
    }
    tally.report("create", started);
}

fn remove_tree(p: &Path) {
    let st = Command::new("rm").arg("-rf").arg(p).status().unwrap();
    assert!(st.success(), "rm -rf {}", p.display());
}

/// `start` of a created container, killed at random: starting it again
/// gives one running container, and removing it leaves no process.
#[test]
fn start_killed_at_random_points_then_started_again_leaves_one_container() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("start");
    let (c, id) = store_with_multi();
    let mark = marker(&mut rng);
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    c.ok(["create", "--name", "base", &id, "sleep", &mark]);
    let mut base = ok_timed(&c, &["start", "base"]);
    eprintln!("uninterrupted start: {base:?}");
    c.ok(["rm", "-f", "-t", "0", "base"]);
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < KILLS {
        assert!(i < attempts(KILLS), "seed {seed}: too many missed kills");
        let name = format!("s{i}");
        c.ok(["create", "--name", &name, &id, "sleep", &mark]);
        let delay = rng.fraction_of(base, 0.0, 1.2);
        let k = kill_after(&c, &["start", &name], delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            base = k.after;
        }
        let what = format!(
            "seed {seed}, kill {i} of start after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(["start", &name]);
        assert_rerun_completes(&r, &[], &what);
        assert_consistent(&c, &what);
        let status = c.ok(["inspect", "--format", "{{.State.Status}}", &name]);
        assert_eq!(status.trim(), "running", "{what}");
        c.ok(["exec", &name, "true"]);
        let procs = processes_with(&mark);
        assert_eq!(
            procs.len(),
            1,
            "{what}: one container process expected, found {procs:?}"
        );
        c.ok(["rm", "-f", "-t", "0", &name]);
        let procs = processes_with(&mark);
        assert!(
            procs.is_empty(),
            "{what}: left running after rm -f: {procs:?}"
        );
        i += 1;
    }
    tally.report("start", started);
}

/// `start` killed the moment its `cairn-monitor` exists (a child of the
/// start process), before start can record it: the window the random
/// kills above hit only now and then. Starting again must adopt that
/// monitor's container, not start a second one.
#[test]
fn start_killed_right_after_spawning_the_monitor_then_started_again_leaves_one_container() {
    let (c, id) = store_with_multi();
    let (mut rng, seed) = rng_for_test("start_spawn");
    let mark = marker(&mut rng);
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    let mut landed = 0;
    for i in 0..6 {
        let name = format!("m{i}");
        c.ok(["create", "--name", &name, &id, "sleep", &mark]);
        let mut child = spawn_quiet(&c, &["start", &name]);
        let pid = child.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let t = Instant::now();
        let spawned = loop {
            if fs::read_to_string(&children).is_ok_and(|s| !s.trim().is_empty()) {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "start never spawned a monitor"
            );
        };
        let _ = child.kill();
        let _ = child.wait();
        landed += usize::from(spawned);
        let what = format!("seed {seed}, start {i} killed as its monitor was spawned ({spawned})");
        let r = c.run(["start", &name]);
        assert_rerun_completes(&r, &[], &what);
        assert_consistent(&c, &what);
        c.ok(["exec", &name, "true"]);
        let procs = processes_with(&mark);
        assert_eq!(
            procs.len(),
            1,
            "{what}: one container process expected, found {procs:?}"
        );
        c.ok(["rm", "-f", "-t", "0", &name]);
        let procs = processes_with(&mark);
        assert!(
            procs.is_empty(),
            "{what}: left running after rm -f: {procs:?}"
        );
    }
    assert!(
        landed >= 3,
        "seed {seed}: only {landed} kills landed as the monitor was spawned"
    );
    eprintln!("start at monitor spawn: {landed} of 6 kills landed with the monitor alive");
}

/// Runs a detached container of `id` and writes to its upper layer (so an
/// `rm` has something to delete).
fn run_written(c: &Cairn, id: &str, name: &str, mark: &str) {
    c.ok(["run", "-d", "--name", name, id, "sleep", mark]);
    c.ok([
        "exec",
        name,
        "sh",
        "-c",
        "cp -a /usr/share /usr/share2 && rm -rf /usr/lib/x86_64-linux-gnu/perl-base",
    ]);
}

/// `rm -f` of a running container, killed at random: running it again
/// completes (or finds the container gone), stops what still runs, leaves
/// no container and sweeps the killed run's `containers/.rm-*`.
#[test]
fn rm_killed_at_random_points_then_removed_again_leaves_nothing() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("rm");
    let mark = marker(&mut rng);
    let (c, id) = store_with_multi();
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    run_written(&c, &id, "base", &mark);
    let mut base = ok_timed(&c, &["rm", "-f", "-t", "0", "base"]);
    eprintln!("uninterrupted rm -f: {base:?}");
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < KILLS {
        assert!(i < attempts(KILLS), "seed {seed}: too many missed kills");
        let name = format!("r{i}");
        run_written(&c, &id, &name, &mark);
        let args = ["rm", "-f", "-t", "0", name.as_str()];
        let delay = rng.fraction_of(base, 0.0, 1.1);
        let k = kill_after(&c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            base = k.after;
        }
        let what = format!(
            "seed {seed}, kill {i} of rm -f after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(args);
        assert_rerun_completes(&r, &[(1, "no such container")], &what);
        assert_consistent(&c, &what);
        assert_eq!(c.ok(["ps", "-a", "-q"]), "", "{what}");
        let procs = processes_with(&mark);
        assert!(procs.is_empty(), "{what}: left running: {procs:?}");
        i += 1;
    }
    assert_content(
        &c,
        &id,
        refs::MULTI,
        &format!("seed {seed}, after the rm kills"),
    );
    tally.report("rm", started);
}

/// `rm -f` killed while it deletes the renamed `containers/.rm-<id>` (the
/// random kills above land there only sometimes): the rerun of `rm` itself
/// sweeps it, so `system check` is clean right after.
#[test]
fn rm_killed_while_deleting_then_removed_again_sweeps_at_once() {
    let (mut rng, seed) = rng_for_test("rm_strict");
    let mark = marker(&mut rng);
    let (c, id) = store_with_multi();
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    // Kills that landed while rm deleted the renamed directory: rm is
    // killed the moment `containers/.rm-<id>` appears (polled), so the
    // kill lands there whatever the load.
    let mut in_window = 0;
    let mut i = 0;
    while in_window < 3 {
        assert!(i < 30, "seed {seed}: no kill landed while rm deleted");
        let name = format!("r{i}");
        run_written(&c, &id, &name, &mark);
        let cid = c.ok(["inspect", "--format", "{{.Id}}", &name]);
        let trash = c
            .root()
            .join("containers")
            .join(format!(".rm-{}", cid.trim()));
        let args = ["rm", "-f", "-t", "0", name.as_str()];
        let mut child = spawn_quiet(&c, &args);
        let t = Instant::now();
        let landed = loop {
            if trash.exists() {
                let _ = child.kill();
                break child.wait().expect("wait").code().is_none();
            }
            if child.try_wait().expect("try_wait").is_some() {
                break false;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "rm hangs");
        };
        let what = format!(
            "seed {seed}, kill {i} of rm -f as it renamed the container (landed: {landed})"
        );
        i += 1;
        if !landed || !trash.exists() {
            let _ = c.run(args);
            continue;
        }
        in_window += 1;
        let r = c.run(args);
        assert_rerun_completes(&r, &[(1, "no such container")], &what);
        assert_consistent(&c, &what);
        assert!(
            !trash.exists(),
            "{what}: the rerun left {}",
            trash.display()
        );
    }
    eprintln!("rm while deleting: {in_window} kills landed in {i} attempts");
}

// ---------------------------------------------------------------------------
// rmi and prunes

/// `rmi` of one of two images sharing three layers, killed at random: the
/// rerun completes, the other image is untouched, and pulling the removed
/// one again gives a whole image (never a half-deleted image root).
#[test]
fn rmi_killed_at_random_points_then_removed_again_and_repulled_is_whole() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("rmi");
    let reg = registry_with_multi_and_sibling();
    let multi = format!("{}/multi:1", reg.host());
    let sibling = format!("{}/sibling:1", reg.host());
    let c = env();
    for r in [&multi, &sibling] {
        c.ok(["pull", "-q", "--tls-verify=false", r]);
    }
    let mut base = ok_timed(&c, &["rmi", &multi]);
    eprintln!("uninterrupted rmi: {base:?}");
    c.ok(["pull", "-q", "--tls-verify=false", &multi]);
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < GC_KILLS {
        assert!(i < attempts(GC_KILLS), "seed {seed}: too many missed kills");
        let (target, other) = if i % 2 == 0 {
            (&multi, &sibling)
        } else {
            (&sibling, &multi)
        };
        let delay = rng.fraction_of(base, 0.0, 1.2);
        let k = kill_after(&c, &["rmi", target], delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            base = k.after;
        }
        let what = format!(
            "seed {seed}, kill {i} of rmi {target} after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(["rmi", target]);
        assert_rerun_completes(&r, &[(1, "image not known")], &what);
        assert_consistent(&c, &what);
        assert_content(&c, other, fixture_of(other), &what);
        c.ok(["pull", "-q", "--tls-verify=false", target]);
        assert_content(&c, target, fixture_of(target), &what);
        i += 1;
    }
    tally.report("rmi", started);
}

/// `image prune -a -f` and `system prune -a -f`, killed at random, with a
/// running container of one image (kept) and a stopped one of the other
/// (removed by system prune): the rerun completes, the running container
/// still sees its whole image, and pulling again gives whole images.
#[test]
fn prune_killed_at_random_points_then_pruned_again_and_repulled_is_whole() {
    let started = Instant::now();
    let (mut rng, seed) = rng_for_test("prune");
    let reg = registry_with_multi_and_sibling();
    let multi = format!("{}/multi:1", reg.host());
    let sibling = format!("{}/sibling:1", reg.host());
    let c = env();
    let mark = marker(&mut rng);
    let _cleanup = Cleanup {
        cairn: &c,
        marker: mark.clone(),
    };
    let pull_both = || {
        for r in [&multi, &sibling] {
            c.ok(["pull", "-q", "--tls-verify=false", r]);
        }
    };
    pull_both();
    c.ok(["run", "-d", "--name", "keeper", &multi, "sleep", &mark]);
    let mut baselines = BTreeMap::new();
    for cmd in ["image", "system"] {
        c.ok(["create", "--name", "stopped", &sibling, "true"]);
        let d = ok_timed(&c, &[cmd, "prune", "-a", "-f"]);
        eprintln!("uninterrupted {cmd} prune -a: {d:?}");
        baselines.insert(cmd, d);
        let _ = c.run(["rm", "-f", "stopped"]);
        pull_both();
    }
    let mut tally = Tally::default();
    let mut i = 0;
    while tally.landed < GC_KILLS {
        assert!(i < attempts(GC_KILLS), "seed {seed}: too many missed kills");
        let cmd = if i % 2 == 0 { "image" } else { "system" };
        if c.run(["inspect", "stopped"]).code != 0 {
            c.ok(["create", "--name", "stopped", &sibling, "true"]);
        }
        let args = [cmd, "prune", "-a", "-f"];
        let delay = rng.fraction_of(baselines[cmd], 0.0, 1.1);
        let k = kill_after(&c, &args, delay);
        tally.add(&k);
        if !k.landed {
            // It ran faster than measured: aim the next kills earlier.
            baselines.insert(cmd, k.after);
        }
        let what = format!(
            "seed {seed}, kill {i} of {cmd} prune -a after {:?} (landed: {})",
            k.after, k.landed
        );
        let r = c.run(args);
        assert_rerun_completes(&r, &[], &what);
        assert_consistent(&c, &what);
        let got = c.ok(["exec", "keeper", "sh", "-c", CONTENT_SCRIPT]);
        assert_eq!(
            got,
            expected(refs::MULTI),
            "{what}: the running container's root"
        );
        let _ = c.run(["rm", "-f", "stopped"]);
        pull_both();
        assert_content(&c, &sibling, refs::MULTI_SIBLING, &what);
        assert_content(&c, &multi, refs::MULTI, &what);
        i += 1;
    }
    tally.report("prune", started);
}
