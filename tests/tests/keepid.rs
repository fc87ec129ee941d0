//! Rootless `--userns keep-id --user root:root` containers, the shape toolbox and
//! distrobox-as-podman create: the container's process runs as a subordinate id in a user
//! namespace nested in the one the creating `cairn` made, so a later `cairn` (a fresh, sibling
//! namespace) cannot signal it from inside its own namespace.

use std::time::{Duration, Instant};

use cairn_tests::clients::{Clients, IMAGE};
use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;

/// The debian image, as both stores name it in the podman comparison.
const HOME_IMAGE: &str = "localhost/home-test:latest";

/// `create --userns keep-id --user root:root …` as toolbox does, started.
fn keep_id_root(env: &Clients, name: &str) {
    env.engine_ok([
        "create",
        "--name",
        name,
        "--userns",
        "keep-id",
        "--user",
        "root:root",
        "--privileged",
        "--pid",
        "host",
        "--ipc",
        "host",
        "--network",
        "host",
        IMAGE,
        "sleep",
        "600",
    ]);
    env.engine_ok(["start", name]);
    assert_eq!(env.engine_ok(["exec", name, "id", "-u"]), "0\n");
}

fn state(env: &Clients, name: &str) -> String {
    env.engine_ok(["inspect", "--format", "{{.State.Status}}", name])
        .trim()
        .to_owned()
}

fn names(env: &Clients) -> Vec<String> {
    env.engine_ok(["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Before the fix: `Error: container kr (pid N) did not die after SIGKILL` after 10 seconds.
#[test]
fn rm_force_removes_a_running_keep_id_root_container() {
    let env = Clients::rootless().expect("rootless clients environment");
    keep_id_root(&env, "kr");
    let t = Instant::now();
    env.engine_ok(["rm", "-f", "-t", "0", "kr"]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert!(!names(&env).contains(&"kr".to_owned()));
    keep_id_root(&env, "kr2");
    assert_eq!(env.engine_ok(["rm", "-f", "kr2"]), "kr2\n");
    assert!(!names(&env).contains(&"kr2".to_owned()));
}

#[test]
fn stop_restart_and_kill_reach_a_keep_id_root_container() {
    let env = Clients::rootless().expect("rootless clients environment");
    keep_id_root(&env, "ks");
    env.engine_ok(["stop", "-t", "0", "ks"]);
    assert_eq!(state(&env, "ks"), "exited");
    env.engine_ok(["start", "ks"]);
    let pid = env.engine_ok(["inspect", "--format", "{{.State.Pid}}", "ks"]);
    env.engine_ok(["restart", "-t", "0", "ks"]);
    assert_eq!(state(&env, "ks"), "running");
    let again = env.engine_ok(["inspect", "--format", "{{.State.Pid}}", "ks"]);
    assert_ne!(pid, again, "restart ran a new process");
    env.engine_ok(["kill", "ks"]);
    env.engine_ok(["wait", "ks"]);
    assert_eq!(state(&env, "ks"), "exited");
    assert_eq!(
        env.engine_ok(["inspect", "--format", "{{.State.ExitCode}}", "ks"]),
        "137\n"
    );
    env.engine_ok(["rm", "ks"]);
}

/// `exec --user` sets that user's HOME from the container's /etc/passwd (empty when it has no
/// entry) unless the container was given a HOME, as podman 4.3 does; before the fix cairn kept
/// the container's `HOME=/root`. Compared side by side with podman.
#[test]
fn exec_user_sets_the_users_home_as_podman_does() {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, HOME_IMAGE)
        .expect("podman imports the image");
    let cairn = Cairn::new().expect("cairn environment");
    cairn.pull_fixture_as(refs::DEBIAN_MIN, HOME_IMAGE);
    let made: &[(&str, &[&str])] = &[
        ("plain", &[]),
        ("given", &["-e", "HOME=/given"]),
        ("mail", &["-u", "mail"]),
    ];
    for (name, flags) in made {
        let mut args = vec!["run", "-d", "--network", "host", "--name", name];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[HOME_IMAGE, "sleep", "600"]);
        cairn.ok(&args);
        podman.ok(&args);
    }
    let execs: &[&[&str]] = &[
        &[],
        &["-u", "daemon"],
        &["-u", "1"],
        &["-u", "nobody"],
        &["-u", "root"],
        &["-u", "1234"],
        &["-u", "1234:5"],
        &["-u", "daemon", "-e", "HOME=/exec"],
    ];
    let mut seen = Vec::new();
    for (name, _) in made {
        for flags in execs {
            let mut args = vec!["exec"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&[name, "sh", "-c", "env | grep ^HOME= || echo unset"]);
            let (c, p) = (cairn.ok(&args), podman.ok(&args));
            assert_eq!(c, p, "{args:?}");
            seen.push(c);
        }
    }
    let _ = cairn.run(["rm", "-a", "-f", "-t", "0"]);
    // What podman showed, so the comparison covers each case.
    for want in [
        "HOME=/root\n",
        "HOME=/usr/sbin\n",
        "HOME=/nonexistent\n",
        "HOME=\n",
        "HOME=/given\n",
        "HOME=/var/mail\n",
        "HOME=/exec\n",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want:?} in {seen:?}");
    }
}

/// toolbox and distrobox exec as the caller into a keep-id container running as root: the
/// caller's HOME is its passwd entry's, which keep-id adds.
#[test]
fn exec_as_the_caller_into_a_keep_id_root_container_gets_the_callers_home() {
    let env = Clients::rootless().expect("rootless clients environment");
    let user = env.cairn().user().expect("rootless").name.clone();
    keep_id_root(&env, "kh");
    let entry = env.engine_ok(["exec", "kh", "getent", "passwd", &user]);
    let home = entry
        .trim()
        .split(':')
        .nth(5)
        .expect("a home field")
        .to_owned();
    assert!(!home.is_empty() && home != "/root", "{entry}");
    assert_eq!(
        env.engine_ok(["exec", "kh", "sh", "-c", "echo $HOME"]),
        "/root\n"
    );
    assert_eq!(
        env.engine_ok(["exec", "-u", &user, "kh", "sh", "-c", "echo $HOME"]),
        format!("{home}\n")
    );
    env.engine_ok(["rm", "-f", "-t", "0", "kh"]);
}
