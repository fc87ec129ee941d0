//! Rootless `--userns keep-id --user root:root` containers, the shape toolbox and
//! distrobox-as-podman create: the container's process runs as a subordinate id in a user
//! namespace nested in the one the creating `cairn` made, so a later `cairn` (a fresh, sibling
//! namespace) cannot signal it from inside its own namespace.

use std::time::{Duration, Instant};

use cairn_tests::clients::{Clients, IMAGE};

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
