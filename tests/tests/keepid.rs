//! Rootless `--userns keep-id --user root:root` containers, the shape toolbox and
//! distrobox-as-podman create: the container's process runs as a subordinate id in a user
//! namespace nested in the one the creating `cairn` made, so a later `cairn` (a fresh, sibling
//! namespace) cannot signal it from inside its own namespace.

use std::time::{Duration, Instant};

use cairn_tests::clients::{Clients, IMAGE};
use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;

/// The debian image, as both stores name it in the podman comparisons.
const PAIR_IMAGE: &str = "localhost/keepid-test:latest";

/// A root cairn and a podman, both holding [`PAIR_IMAGE`].
fn pair() -> (Cairn, Podman) {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, PAIR_IMAGE)
        .expect("podman imports the image");
    let cairn = Cairn::new().expect("cairn environment");
    cairn.pull_fixture_as(refs::DEBIAN_MIN, PAIR_IMAGE);
    (cairn, podman)
}

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
    let (cairn, podman) = pair();
    let made: &[(&str, &[&str])] = &[
        ("plain", &[]),
        ("given", &["-e", "HOME=/given"]),
        ("mail", &["-u", "mail"]),
    ];
    for (name, flags) in made {
        let mut args = vec!["run", "-d", "--network", "host", "--name", name];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[PAIR_IMAGE, "sleep", "600"]);
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

/// `--dns none`: no /etc/resolv.conf of ours (the image's own stays; this image has none),
/// `HostConfig.Dns` empty, `ResolvConfPath` empty; beside other servers, `--dns-search` or
/// `--dns-option` it is refused with podman's words, before anything is created. Before the
/// fix cairn bound a resolv.conf reading `nameserver none`.
#[test]
fn dns_none_leaves_the_images_resolv_conf_as_podman_does() {
    let (cairn, podman) = pair();
    let script = "test -e /etc/resolv.conf && cat /etc/resolv.conf || echo absent; grep -c ' /etc/resolv.conf ' /proc/self/mountinfo; true";
    let args = [
        "run",
        "--rm",
        "--network",
        "host",
        "--dns",
        "none",
        PAIR_IMAGE,
        "sh",
        "-c",
        script,
    ];
    let (c, p) = (cairn.ok(args), podman.ok(args));
    assert_eq!(c, p);
    assert_eq!(c, "absent\n0\n");
    for flags in [
        &["--dns", "none", "--dns", "1.2.3.4"][..],
        &["--dns", "1.2.3.4", "--dns", "none"],
        &["--dns", "none", "--dns-search", "example.com"],
        &["--dns", "none", "--dns-option", "ndots:2"],
    ] {
        let mut args = vec!["create", "--network", "host"];
        args.extend_from_slice(flags);
        args.push(PAIR_IMAGE);
        let (c, p) = (cairn.run(&args), podman.run(&args));
        assert_eq!((c.code, &c.stderr), (p.code, &p.stderr), "{args:?}");
        assert_eq!(c.code, 125, "{args:?}");
    }
    assert_eq!(cairn.ok(["ps", "-aq"]), "", "nothing was created");
    let fmt = "{{.HostConfig.Dns}} [{{.ResolvConfPath}}]";
    let c_id = cairn.ok([
        "create",
        "--network",
        "host",
        "--dns",
        "none",
        PAIR_IMAGE,
        "sleep",
        "600",
    ]);
    let p_id = podman.ok([
        "create",
        "--network",
        "host",
        "--dns",
        "none",
        PAIR_IMAGE,
        "sleep",
        "600",
    ]);
    cairn.ok(["start", c_id.trim()]);
    podman.ok(["start", p_id.trim()]);
    let c = cairn.ok(["inspect", "--format", fmt, c_id.trim()]);
    assert_eq!(c, podman.ok(["inspect", "--format", fmt, p_id.trim()]));
    assert_eq!(c, "[] []\n");
    let _ = cairn.run(["rm", "-a", "-f", "-t", "0"]);
}

/// toolbox's init-container replaces /etc/hosts and /etc/resolv.conf with symlinks to the
/// host's; it creates its containers with `--dns none --no-hosts` so that they are the image's
/// files, not binds (this test sets `no_hosts` in containers.conf). Before the fix: `rm:
/// cannot remove '/etc/resolv.conf': Device or resource busy`.
#[test]
fn a_keep_id_container_with_dns_none_and_no_hosts_can_replace_its_etc_files() {
    let mut env = Clients::rootless().expect("rootless clients environment");
    let conf = env.home().join("no-hosts.conf");
    std::fs::write(&conf, "[containers]\nno_hosts = true\n").unwrap();
    env.own(&conf).unwrap();
    env.env("CONTAINERS_CONF", &conf.to_string_lossy());
    let script = "for f in hosts resolv.conf; do rm -f /etc/$f && ln -s /run/host/etc/$f /etc/$f && readlink /etc/$f || exit 1; done";
    let out = env.engine_ok([
        "run",
        "--rm",
        "--userns",
        "keep-id",
        "--user",
        "root:root",
        "--network",
        "host",
        "--dns",
        "none",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "/run/host/etc/hosts\n/run/host/etc/resolv.conf\n");
}

/// toolbox and distrobox bind the host's `/dev` into their `--privileged` containers; Go's
/// os/exec opens `/dev/null` for every command toolbox's init-container runs. A host-path bind
/// of a privileged container is nosuid/nodev only when asked (podman adds only its source's own
/// flags); an unprivileged container's binds stay nosuid,nodev. Before the fix: `cat:
/// /dev/null: Permission denied`, and toolbox's init-container failed on its first `mount`.
#[test]
fn a_privileged_keep_id_container_can_use_the_hosts_dev() {
    let env = Clients::rootless().expect("rootless clients environment");
    let script =
        "cat /dev/null && echo null-ok; grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6";
    let run = |flags: &[&str]| {
        let mut args = vec!["run", "--rm", "--userns", "keep-id", "--user", "root:root"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        env.engine_ok(args)
    };
    assert_eq!(
        run(&["--privileged", "-v", "/dev:/dev:rslave"]),
        "null-ok\nrw,relatime\n"
    );
    assert_eq!(
        run(&["--privileged", "-v", "/dev:/dev:rslave,nosuid,nodev"]),
        "rw,nosuid,nodev,relatime\n"
    );
    let r = env.run(
        Duration::from_secs(60),
        "cairn",
        ["run", "--rm", "-v", "/dev:/dev", IMAGE, "sh", "-c", script],
    );
    assert_eq!(r.stdout, "rw,nosuid,nodev,relatime\n", "{r:?}");
}
