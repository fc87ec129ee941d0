//! End-to-end: `cairn events`, podman's file-backed event log, through the
//! real binaries: the events real actions write (create, init, start,
//! attach, exec, exec_died, died with its exit code, stop, kill, remove;
//! image pull, tag, untag, remove), read back whole (`--stream=false`) with
//! filters and time bounds, followed by a streaming `events` as the Dev
//! Containers CLI runs it, written by containers started in parallel, and
//! rotated past its size limit; then the same actions with podman beside,
//! comparing the JSON keys and the default line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_tests::fixtures::{refs, FixtureStore};
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;
use serde_json::Value;

/// The fixture image's name in every store (its only name).
const IMAGE: &str = "localhost/debian-min:latest";

/// A store with the fixture image (an empty event log); its containers
/// are removed on drop.
fn env() -> FixtureStore {
    FixtureStore::linked(IMAGE)
}

/// Every event of the log, as podman's JSON (`--stream=false --format json`),
/// each line parsed (a line that does not parse fails the test).
fn all_events(c: &Cairn, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", "--stream=false", "--format", "json"];
    args.extend_from_slice(extra);
    c.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn field<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or("")
}

/// The statuses of the events about container `name`, in log order.
fn statuses(events: &[Value], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| field(e, "Type") == "container" && field(e, "Name") == name)
        .map(|e| field(e, "Status").to_owned())
        .collect()
}

fn the_event<'a>(events: &'a [Value], name: &str, status: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "Name") == name && field(e, "Status") == status)
        .collect();
    assert_eq!(found.len(), 1, "{name} {status} in {events:#?}");
    found[0]
}

/// Waits until `name` has exited.
fn wait_exited(c: &Cairn, name: &str) {
    c.ok(["wait", name]);
}

#[test]
fn a_lifecycle_is_logged_with_podmans_fields_and_read_back_filtered() {
    let c = env();
    let id1 = c
        .ok([
            "create", "--name", "c1", "-l", "foo=bar", IMAGE, "sh", "-c", "exit 3",
        ])
        .trim()
        .to_owned();
    c.ok(["start", "c1"]);
    wait_exited(&c, "c1");
    let id2 = c
        .ok(["run", "-d", "--name", "c2", IMAGE, "sleep", "100"])
        .trim()
        .to_owned();
    assert_eq!(c.run(["exec", "c2", "sh", "-c", "exit 4"]).code, 4);
    c.ok(["kill", "--signal", "USR1", "c2"]);
    c.ok(["stop", "-t", "1", "c2"]);
    c.ok(["rm", "c1", "c2"]);
    assert_eq!(
        c.run(["run", "--rm", "--name", "c3", IMAGE, "sh", "-c", "exit 7"])
            .code,
        7
    );

    let ev = all_events(&c, &[]);
    assert_eq!(
        statuses(&ev, "c1"),
        ["create", "init", "start", "died", "remove"]
    );
    let died1 = the_event(&ev, "c1", "died");
    assert_eq!(died1["ContainerExitCode"], 3);
    assert_eq!(field(died1, "ID"), id1);
    assert_eq!(field(died1, "Image"), IMAGE);
    assert_eq!(died1["Attributes"], serde_json::json!({"foo": "bar"}));
    // The monitor writes died as the container ends, stop when it is seen
    // gone: either comes first.
    let mut c2: Vec<String> = statuses(&ev, "c2");
    let died_at = c2.iter().position(|s| s == "died").expect("c2 died");
    c2.remove(died_at);
    assert_eq!(
        c2,
        [
            "create",
            "init",
            "start",
            "exec",
            "exec_died",
            "kill",
            "stop",
            "remove"
        ]
    );
    // sleep as PID 1 ignores SIGTERM: stop -t 1 killed it.
    assert_eq!(the_event(&ev, "c2", "died")["ContainerExitCode"], 137);
    assert_eq!(the_event(&ev, "c2", "exec_died")["ContainerExitCode"], 4);
    assert!(the_event(&ev, "c2", "exec")
        .get("ContainerExitCode")
        .is_none());
    assert_eq!(field(the_event(&ev, "c2", "start"), "ID"), id2);
    assert_eq!(
        statuses(&ev, "c3"),
        ["create", "init", "start", "attach", "died", "remove"]
    );
    assert_eq!(the_event(&ev, "c3", "died")["ContainerExitCode"], 7);
    for e in &ev {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["Status", "Time", "Type", "Attributes"] {
            assert!(keys.contains(k), "{k} missing in {e}");
        }
    }
    reading_back(&c, &ev, &id1, &id2);
}

/// `events --stream=false` over the log `a_lifecycle_…` wrote: filters,
/// time bounds, the default line, templates, bad input.
fn reading_back(c: &Cairn, ev: &[Value], id1: &str, id2: &str) {
    // Filters: the same key ORed, different keys ANDed.
    let died_c1 = all_events(c, &["--filter", "event=died", "--filter", "container=c1"]);
    assert_eq!(died_c1.len(), 1);
    assert_eq!(died_c1[0]["ContainerExitCode"], 3);
    let starts = all_events(c, &["--filter", "event=start", "--filter", "event=died"]);
    assert_eq!(starts.len(), 6, "{starts:#?}");
    let by_id = all_events(c, &["--filter", &format!("container={}", &id2[..12])]);
    assert_eq!(by_id.len(), 9);
    assert_eq!(all_events(c, &["--filter", "label=foo=bar"]).len(), 5);
    assert!(all_events(c, &["--filter", "type=image"]).is_empty());

    // --since / --until: RFC 3339 and Unix seconds.
    let t_create2 = field(the_event(ev, "c2", "create"), "Time").to_owned();
    let since = all_events(c, &["--since", &t_create2]);
    assert!(statuses(&since, "c1") == ["remove"], "{since:#?}");
    assert_eq!(statuses(&since, "c2").len(), 9);
    let until = all_events(c, &["--until", &t_create2]);
    assert_eq!(statuses(&until, "c1"), ["create", "init", "start", "died"]);
    assert_eq!(statuses(&until, "c2"), ["create"]);
    assert!(all_events(c, &["--until", "1000000000.5"]).is_empty());
    assert_eq!(all_events(c, &["--since", "1h"]).len(), ev.len());
    assert!(all_events(c, &["--since", "2099-01-01"]).is_empty());

    // podman's default line, full ids unless --no-trunc=false.
    let text = c.ok(["events", "--stream=false", "--filter", "container=c1"]);
    let first = text.lines().next().unwrap();
    assert!(
        first.ends_with(&format!(
            " +0000 UTC container create {id1} (image={IMAGE}, name=c1, foo=bar)"
        )),
        "{first}"
    );
    let short = c.ok([
        "events",
        "--stream=false",
        "--no-trunc=false",
        "--filter",
        "container=c1",
    ]);
    assert!(short
        .lines()
        .next()
        .unwrap()
        .contains(&format!("container create {} (image=", &id1[..12])));
    // A template over podman's fields; `system events` is the same verb.
    assert_eq!(
        c.ok([
            "system",
            "events",
            "--stream=false",
            "--filter",
            "event=died",
            "--format",
            "{{.Name}} {{.Status}} {{.ContainerExitCode}} {{.Type}}",
        ]),
        "c1 died 3 container\nc2 died 137 container\nc3 died 7 container\n"
    );

    // Bad input: one line naming it, 125.
    let r = c.fails(125, ["events", "--stream=false", "--filter", "bogus=1"]);
    assert_eq!(r.stderr, "Error: bogus is an invalid filter\n");
    let r = c.fails(125, ["events", "--stream=false", "--since", "yesterday"]);
    assert!(
        r.stderr
            .starts_with("Error: unable to interpret time value \"yesterday\""),
        "{}",
        r.stderr
    );
}

#[test]
fn image_pull_tag_and_rmi_are_logged() {
    let c = env();
    let id = c
        .ok(["images", "-q", "--no-trunc"])
        .trim()
        .trim_start_matches("sha256:")
        .to_owned();
    c.ok(["tag", IMAGE, "localhost/other:1"]);
    c.ok(["rmi", "localhost/other:1"]);
    c.ok([
        "pull",
        "-q",
        &cairn_tests::fixtures::oci_ref(refs::DEBIAN_MIN),
    ]);
    let ev = all_events(&c, &["--filter", "type=image"]);
    let shape: Vec<(String, String, String)> = ev
        .iter()
        .map(|e| {
            (
                field(e, "Status").to_owned(),
                field(e, "ID").to_owned(),
                field(e, "Name").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("tag".into(), id.clone(), "localhost/other:1".into()),
            ("untag".into(), id.clone(), "localhost/other:1".into()),
            (
                "pull".into(),
                String::new(),
                cairn_tests::fixtures::oci_ref(refs::DEBIAN_MIN)
            ),
        ]
    );
    for e in &ev {
        assert_eq!(e["Attributes"], Value::Null, "{e}");
    }
    // prune: podman's remove, the id alone.
    assert_eq!(c.ok(["image", "prune", "-a", "-f"]).trim(), id);
    let removed = all_events(&c, &["--filter", "event=remove"]);
    assert_eq!(removed.len(), 1);
    assert_eq!(field(&removed[0], "ID"), id);
    assert!(removed[0].get("Name").is_none(), "{}", removed[0]);
    let text = c.ok(["events", "--stream=false", "--filter", "event=tag"]);
    assert!(
        text.trim_end()
            .ends_with(&format!(" +0000 UTC image tag {id} localhost/other:1")),
        "{text}"
    );
}

/// Reads a child's stdout lines into a channel.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The Dev Containers CLI's own command: it runs this in the background and
/// waits for the start line of the container it runs.
#[test]
fn a_following_events_sees_the_start_of_a_run_d_at_once() {
    let c = env();
    // Events from before are not streamed (podman's, without --since).
    c.ok(["create", "--name", "before", IMAGE, "true"]);
    c.ok(["start", "before"]);
    let mut follower = c
        .command([
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "event=start",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    // Let it reach the end of the log before the run.
    std::thread::sleep(Duration::from_millis(500));
    let id = c
        .ok(["run", "-d", "--name", "dev", IMAGE, "sleep", "100"])
        .trim()
        .to_owned();
    let started = Instant::now();
    let line = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("a start line within 5 s");
    let e: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(field(&e, "ID"), id);
    assert_eq!(field(&e, "Status"), "start");
    assert_eq!(field(&e, "Name"), "dev");
    eprintln!(
        "start line seen {:?} after run -d returned",
        started.elapsed()
    );
    // Still following: it ends only when killed.
    assert!(follower.try_wait().unwrap().is_none());
    c.ok(["rm", "-f", "-t", "0", "dev"]);
    assert!(
        lines.recv_timeout(Duration::from_millis(500)).is_err(),
        "only start events pass the filter"
    );
    follower.kill().unwrap();
    follower.wait().unwrap();

    // With --since, the past first, then what follows; --until ends it.
    let mut bounded = c
        .command([
            "events",
            "--since",
            "1h",
            "--until",
            "8s",
            "--filter",
            "event=create",
            "--format",
            "{{.Name}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut bounded);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(5)).unwrap(),
        "before"
    );
    assert_eq!(lines.recv_timeout(Duration::from_secs(5)).unwrap(), "dev");
    c.ok(["create", "--name", "after", IMAGE, "true"]);
    assert_eq!(lines.recv_timeout(Duration::from_secs(5)).unwrap(), "after");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = bounded.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "events --until 8s still runs");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn containers_started_in_parallel_lose_no_event() {
    const N: usize = 6;
    let c = env();
    let mut follower = c
        .command(["events", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    std::thread::sleep(Duration::from_millis(300));
    std::thread::scope(|s| {
        for i in 0..N {
            let c = &c;
            s.spawn(move || {
                let name = format!("p{i}");
                let cmd = format!("sleep 3; exit {i}");
                c.ok(["run", "-d", "--name", &name, IMAGE, "sh", "-c", &cmd]);
                c.ok(["exec", &name, "true"]);
            });
        }
    });
    for i in 0..N {
        wait_exited(&c, &format!("p{i}"));
    }
    let ev = all_events(&c, &[]);
    for i in 0..N {
        let name = format!("p{i}");
        let mut st = statuses(&ev, &name);
        st.sort();
        assert_eq!(
            st,
            ["create", "died", "exec", "exec_died", "init", "start"],
            "{name}"
        );
        // Left out when 0, as podman does.
        let code = &the_event(&ev, &name, "died")["ContainerExitCode"];
        assert_eq!(code.as_u64().unwrap_or(0), i as u64, "{name}: {code}");
    }
    // The follower saw the same lines, in the same order.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut followed = Vec::new();
    while followed.len() < ev.len() && Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(100)) {
            followed.push(serde_json::from_str::<Value>(&l).unwrap());
        }
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert_eq!(followed, ev);
    // The log itself: every line whole.
    let log = fs::read_to_string(c.root().join("events/events.log")).unwrap();
    assert_eq!(log.lines().count(), ev.len());
}

#[test]
fn the_log_rotates_past_its_limit_and_readers_follow() {
    let c = env();
    let log = c.root().join("events/events.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    // A log near its 1 MiB limit, of podman-shaped lines.
    let mut old = String::new();
    let mut n = 0;
    while old.len() < (1 << 20) - 200 {
        old.push_str(&format!(
            "{{\"Name\":\"localhost/old:{n}\",\"Status\":\"tag\",\"Time\":\"2026-01-01T00:00:00.{n:09}Z\",\"Type\":\"image\",\"Attributes\":null}}\n"
        ));
        n += 1;
    }
    fs::write(&log, &old).unwrap();
    let mut follower = c
        .command(["events", "--format", "{{.Status}} {{.Name}}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    std::thread::sleep(Duration::from_millis(300));
    c.ok(["create", "--name", "r1", IMAGE, "true"]);
    c.ok(["tag", IMAGE, "localhost/new:1"]);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(5)).unwrap(),
        "create r1"
    );
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(5)).unwrap(),
        "tag localhost/new:1"
    );
    follower.kill().unwrap();
    follower.wait().unwrap();
    // The old log moved aside whole; the new one has only the new events.
    assert_eq!(
        fs::read_to_string(log.with_file_name("events.log.1")).unwrap(),
        old
    );
    let new = fs::read_to_string(&log).unwrap();
    assert_eq!(new.lines().count(), 2, "{new}");
    // Reading gives both, oldest first.
    let ev = all_events(&c, &[]);
    assert_eq!(ev.len(), n + 2);
    assert_eq!(field(&ev[0], "Name"), "localhost/old:0");
    assert_eq!(field(&ev[n], "Name"), "r1");
}

/// The keys of podman's JSON per (type, status), and its default line with
/// times and ids blanked.
fn shapes(events: &[Value]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut m = BTreeMap::new();
    for e in events {
        let key = (field(e, "Type").to_owned(), field(e, "Status").to_owned());
        let keys = e.as_object().unwrap().keys().cloned().collect();
        m.insert(key, keys);
    }
    m
}

#[test]
fn the_same_actions_log_the_same_keys_as_podman() {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("podman imports the image");
    let c = env();
    let script: &[&[&str]] = &[
        &["tag", IMAGE, "localhost/other:1"],
        &[
            "create", "--name", "k1", "-l", "a=b", IMAGE, "sh", "-c", "exit 3",
        ],
        &["start", "k1"],
        &["wait", "k1"],
        &["run", "-d", "--name", "k2", IMAGE, "sleep", "100"],
        &["exec", "k2", "sh", "-c", "exit 4"],
        &["kill", "k2"],
        &["wait", "k2"],
        &["rm", "k1", "k2"],
        &["run", "--rm", "--name", "k3", IMAGE, "true"],
        &["rmi", "localhost/other:1"],
        &["rmi", IMAGE],
    ];
    for args in script {
        let mut pargs = args.to_vec();
        if matches!(args[0], "create" | "run") {
            pargs.splice(1..1, ["--network", "host"]);
        }
        let (cr, pr) = (c.run(*args), podman.run(&pargs));
        assert_eq!(cr.code, pr.code, "{args:?}: cairn {cr:?} podman {pr:?}");
    }
    let ours = all_events(&c, &[]);
    let theirs: Vec<Value> = podman
        .ok(["events", "--stream=false", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (ours_s, theirs_s) = (shapes(&ours), shapes(&theirs));
    // Every event both write has the same keys; podman's `cleanup` and its
    // `pull` on each create (of an image already there) are its own. (podman
    // 4.3 also logs `remove` for an rmi that only untags; cairn logs it when
    // the image goes, as the last rmi here does on both sides.)
    let mut compared = 0;
    for (k, keys) in &theirs_s {
        if k.1 == "cleanup" || k.1 == "pull" || k.0 == "system" {
            continue;
        }
        let mine = ours_s
            .get(k)
            .unwrap_or_else(|| panic!("cairn logs no {k:?} event: {ours_s:#?}"));
        assert_eq!(mine, keys, "{k:?}");
        compared += 1;
    }
    assert!(compared >= 10, "{compared} kinds compared");
    // The same container sequence for k1 and k3 (podman's cleanup aside).
    for name in ["k1", "k3"] {
        let mut p = statuses(&theirs, name);
        p.retain(|s| s != "cleanup");
        assert_eq!(statuses(&ours, name), p, "{name}");
    }
    for (name, status) in [("k1", "died"), ("k2", "died"), ("k2", "exec_died")] {
        // cairn logs each once; podman 4.3 sometimes logs an exec_died
        // twice (seen in CI: its exec cleanup and the session's end), so
        // its first one is compared.
        let first = theirs
            .iter()
            .find(|e| field(e, "Name") == name && field(e, "Status") == status)
            .unwrap_or_else(|| panic!("podman logs no {name} {status}"));
        assert_eq!(
            the_event(&ours, name, status)["ContainerExitCode"],
            first["ContainerExitCode"],
            "{name} {status}"
        );
    }
    // The default line, times and ids aside.
    let blank = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("name=k1"))
            .map(|l| {
                let rest = l.split_once(" +0000 UTC ").map_or(l, |x| x.1);
                rest.split(' ')
                    .map(|w| if w.len() == 64 { "<id>" } else { w })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|l| !l.starts_with("container cleanup"))
            .collect()
    };
    let filter = ["events", "--stream=false", "--filter", "container=k1"];
    assert_eq!(blank(&c.ok(filter)), blank(&podman.ok(filter)));
}

/// Rootless: the processes that write (the CLI in its user namespace, the
/// monitor, cairn-enter outside it, the CLI for stop and kill) all reach
/// the user's log, and the log and its directory are the user's.
#[test]
fn a_rootless_store_logs_every_process_s_events() {
    use std::os::unix::fs::MetadataExt as _;
    let c = Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)");
    c.ok([
        "pull",
        "-q",
        &cairn_tests::fixtures::oci_ref(refs::DEBIAN_MIN),
    ]);
    let image = c.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let image = image.lines().next().expect("one image").to_owned();
    c.ok(["run", "-d", "--name", "u1", &image, "sleep", "100"]);
    assert_eq!(c.run(["exec", "u1", "sh", "-c", "exit 5"]).code, 5);
    c.ok(["kill", "u1"]);
    c.ok(["wait", "u1"]);
    c.ok(["rm", "u1"]);
    let ev = all_events(&c, &[]);
    // kill is logged as the signal is sent, died as the monitor sees the
    // end: usually in that order, but not necessarily.
    let mut u1 = statuses(&ev, "u1");
    u1.retain(|s| s != "died");
    assert_eq!(
        u1,
        [
            "create",
            "init",
            "start",
            "exec",
            "exec_died",
            "kill",
            "remove"
        ]
    );
    assert_eq!(the_event(&ev, "u1", "exec_died")["ContainerExitCode"], 5);
    assert_eq!(the_event(&ev, "u1", "died")["ContainerExitCode"], 137);
    assert_eq!(field(&ev[0], "Status"), "pull");
    let uid = c.user().expect("rootless").uid;
    for p in ["events", "events/events.log", "events/events.lock"] {
        let m = fs::metadata(c.root().join(p)).unwrap();
        assert_eq!(m.uid(), uid, "{p} owned by the user");
    }
}

/// A log that cannot be written never fails what it would record: the
/// actions succeed with their own exit codes, with a warning at most.
#[test]
fn an_unwritable_log_fails_no_action() {
    let c = env();
    let events = c.root().join("events");
    fs::remove_dir_all(&events).ok();
    // A file where the directory should be: every append fails.
    fs::write(&events, "not a directory").unwrap();
    c.ok(["create", "--name", "w1", IMAGE, "sleep", "100"]);
    c.ok(["start", "w1"]);
    assert_eq!(c.run(["exec", "w1", "sh", "-c", "exit 6"]).code, 6);
    c.ok(["tag", IMAGE, "localhost/w:1"]);
    c.ok(["rm", "-f", "-t", "0", "w1"]);
    let r = c.run(["run", "--rm", IMAGE, "sh", "-c", "exit 9"]);
    assert_eq!(r.code, 9, "{r:?}");
    assert!(r.stderr.contains("not logged"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&events).unwrap(), "not a directory");
}
