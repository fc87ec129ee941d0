//! End-to-end: the container lifecycle (create, run, start, stop, kill, rm,
//! exec, ps, inspect, logs, wait, rename, cp, rmi of an image in use) through
//! the real `cairn` binary and its helpers, with the real Debian test image,
//! real namespaces and a real pty. Every test has its own store and removes
//! its containers (also when it fails: [`FixtureStore`]'s drop).

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::fixtures::{refs, FixtureStore};
use cairn_tests::{Cairn, Registry, RegistryOptions};

/// The name the fixture image gets in every store (its only name).
const IMAGE: &str = "localhost/debian-min:latest";

/// A store with the fixture image named [`IMAGE`] alone; its containers
/// are removed on drop.
fn env() -> FixtureStore {
    let c = FixtureStore::linked(IMAGE);
    assert_eq!(
        c.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        format!("{IMAGE}\n")
    );
    c
}

fn containers_dir(c: &Cairn) -> Vec<String> {
    fs::read_dir(c.root().join("containers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn inspect(c: &Cairn, name: &str, template: &str) -> String {
    c.ok(["inspect", "--format", template, name])
        .trim_end()
        .to_owned()
}

fn status(c: &Cairn, name: &str) -> String {
    inspect(c, name, "{{.State.Status}}")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

/// `ps`'s state letter of a host pid (`None`: gone).
fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 3, after the parenthesized command name.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn du_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += m.blocks() * 512;
        if m.is_dir() {
            total += du_bytes(&e.path());
        }
    }
    total
}

#[test]
fn runs_an_image_pulled_from_a_registry_and_rm_leaves_nothing() {
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let image = reg.push_fixture(refs::DEBIAN_MIN, "debian:bookworm");
    let c = Cairn::new().unwrap();
    c.ok(["pull", "-q", "--tls-verify=false", &image]);

    let out = c.ok(["run", "--rm", &image, "cat", "/etc/debian_version"]);
    assert!(out.starts_with("12."), "{out:?}");
    let out = c.ok(["run", "--rm", &image, "echo", "hello", "world"]);
    assert_eq!(out, "hello world\n");

    // The command's own exit code; podman's 127/126 when it cannot run.
    c.fails(3, ["run", "--rm", &image, "sh", "-c", "exit 3"]);
    let r = c.fails(127, ["run", "--rm", &image, "no-such-command"]);
    assert!(r.stderr.contains("no-such-command"), "{}", r.stderr);
    let r = c.fails(126, ["run", "--rm", &image, "/etc/passwd"]);
    assert!(r.stderr.contains("/etc/passwd"), "{}", r.stderr);

    // --rm: nothing left behind, also after the failures.
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    assert_eq!(containers_dir(&c), Vec::<String>::new());
    // The image's name is what containers report.
    let id = c.ok(["create", "--name", "named", &image, "true"]);
    assert!(is_hex_id(id.trim(), 64), "{id:?}");
    assert_eq!(inspect(&c, "named", "{{.ImageName}}"), image);
    c.ok(["rm", "named"]);
    assert_eq!(containers_dir(&c), Vec::<String>::new());
}

#[test]
fn detached_container_shows_in_ps_and_inspect_and_takes_execs() {
    let c = env();
    let id = c.ok([
        "run",
        "-d",
        "--name",
        "bg",
        "-e",
        "CTR_VAR=from-run",
        IMAGE,
        "sleep",
        "100",
    ]);
    let id = id.trim();
    assert!(is_hex_id(id, 64), "run -d prints the full id: {id:?}");
    assert_eq!(c.ok(["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(c.ok(["ps", "-q", "--no-trunc"]).trim(), id);
    let ps = c.ok(["ps"]);
    let row = ps.lines().nth(1).expect("a row");
    assert!(
        row.starts_with(&id[..12]) && row.contains(IMAGE) && row.contains("sleep 100"),
        "{ps}"
    );
    assert!(row.contains("Up ") && row.ends_with("bg"), "{ps}");

    let st = inspect(
        &c,
        "bg",
        "{{.State.Status}} {{.State.Pid}} {{.State.Running}}",
    );
    let fields: Vec<&str> = st.split(' ').collect();
    assert_eq!((fields[0], fields[2]), ("running", "true"), "{st}");
    let pid: i32 = fields[1].parse().unwrap();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline, b"sleep\x00100\x00",
        "State.Pid is the container's command"
    );
    // A short id and the name both find it.
    assert_eq!(inspect(&c, &id[..12], "{{.Name}}"), "bg");

    // exec: output, exit code, user, workdir, env (the container's and -e).
    assert_eq!(c.ok(["exec", "bg", "echo", "hi"]), "hi\n");
    c.fails(5, ["exec", "bg", "sh", "-c", "echo out; exit 5"]);
    assert_eq!(
        c.ok(["exec", "-u", "nobody", "bg", "id"]).trim(),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    );
    assert_eq!(c.ok(["exec", "-w", "/tmp", "bg", "pwd"]), "/tmp\n");
    let env = c.ok(["exec", "-e", "EXEC_VAR=x", "bg", "env"]);
    for want in [
        "EXEC_VAR=x",
        "CTR_VAR=from-run",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing: {env}");
    }
    // Same process namespaces as PID 1: it sees the same PID 1.
    assert_eq!(
        c.ok(["exec", "bg", "cat", "/proc/1/cmdline"]),
        "sleep\x00100\x00"
    );
    c.fails(127, ["exec", "bg", "no-such-command"]);
    c.fails(126, ["exec", "bg", "/etc/passwd"]);
    // Stdin reaches exec -i.
    let out = c
        .command(["exec", "-i", "bg", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"piped in\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\n");

    c.ok(["rm", "-f", "bg"]);
    assert_eq!(containers_dir(&c), Vec::<String>::new());
    wait_until(
        Duration::from_secs(5),
        "the container process to end",
        || !matches!(proc_state(pid), Some(s) if s != 'Z'),
    );
}

#[test]
fn users_and_groups_come_from_the_containers_files() {
    let c = env();
    let id = |args: &[&str]| -> String {
        let mut v = vec!["run", "--rm"];
        v.extend_from_slice(args);
        v.extend([IMAGE, "id"]);
        c.ok(&v).trim().to_owned()
    };
    assert_eq!(id(&[]), "uid=0(root) gid=0(root) groups=0(root)");
    assert_eq!(
        id(&["--user", "nobody"]),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    );
    assert_eq!(
        id(&["--user", "daemon:mail"]),
        "uid=1(daemon) gid=8(mail) groups=8(mail)"
    );
    // Unknown numeric ids get podman's passwd and group entries (podman
    // 4.3 printed exactly this).
    assert_eq!(
        id(&["--user", "1234:4321"]),
        "uid=1234(1234) gid=4321(4321) groups=4321(4321)"
    );
    assert_eq!(
        id(&["--user", "nobody", "--group-add", "users"]),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup),100(users)"
    );
    // HOME follows the user's passwd entry.
    let home = c.ok([
        "run",
        "--rm",
        "-u",
        "nobody",
        IMAGE,
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(home, "/nonexistent\n");
    let r = c.fails(125, ["run", "--rm", "-u", "no-such-user", IMAGE, "id"]);
    assert!(r.stderr.contains("no-such-user"), "{}", r.stderr);
}

#[test]
fn environment_is_image_env_then_flags_and_workdir_applies() {
    let mut c = env();
    c.env("FROM_CALLER", "caller-value");
    let env_file = c.scratch().join("vars.env");
    fs::write(
        &env_file,
        "# a comment\nFILE_A=1\nFILE_B=two words\n\nFROM_CALLER\nDUP=file\n",
    )
    .unwrap();
    let out = c.ok([
        "run",
        "--rm",
        "-e",
        "FLAG=x=y",
        "--env-file",
        env_file.to_str().unwrap(),
        "-e",
        "DUP=flag",
        IMAGE,
        "env",
    ]);
    let mut lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("HOSTNAME="))
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        vec![
            "DUP=flag",
            "FILE_A=1",
            "FILE_B=two words",
            "FLAG=x=y",
            "FROM_CALLER=caller-value",
            "HOME=/root",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            // podman's default (containers.conf env), also without -t.
            "TERM=xterm",
            "container=podman",
        ],
        "{out}"
    );
    // -e overrides the image's own variable.
    let out = c.ok([
        "run",
        "--rm",
        "-e",
        "PATH=/bin",
        IMAGE,
        "sh",
        "-c",
        "echo $PATH",
    ]);
    assert_eq!(out, "/bin\n");

    assert_eq!(c.ok(["run", "--rm", IMAGE, "pwd"]), "/\n");
    assert_eq!(
        c.ok(["run", "--rm", "-w", "/usr/share", IMAGE, "pwd"]),
        "/usr/share\n"
    );
    assert_eq!(
        c.ok(["run", "--rm", "--workdir", "/tmp", IMAGE, "pwd"]),
        "/tmp\n"
    );
    // podman's 126 for a missing working directory.
    c.fails(126, ["run", "--rm", "-w", "/no/such/dir", IMAGE, "pwd"]);
    assert_eq!(containers_dir(&c), Vec::<String>::new());
}

#[test]
fn volumes_bind_host_dirs_ro_is_read_only_and_tmpfs_is_a_tmpfs() {
    let c = env();
    let host = c.scratch().join("vol");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("from-host"), "host data\n").unwrap();
    let v = |opts: &str| format!("{}:/data{opts}", host.display());

    let out = c.ok([
        "run",
        "--rm",
        "-v",
        &v(""),
        IMAGE,
        "sh",
        "-c",
        "cat /data/from-host && echo written > /data/from-ctr",
    ]);
    assert_eq!(out, "host data\n");
    assert_eq!(
        fs::read_to_string(host.join("from-ctr")).unwrap(),
        "written\n"
    );

    let r = c.run([
        "run",
        "--rm",
        "-v",
        &v(":ro"),
        IMAGE,
        "sh",
        "-c",
        "cat /data/from-host; echo x > /data/ro-write",
    ]);
    assert_eq!(r.stdout, "host data\n");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!host.join("ro-write").exists());
    // Options as real scripts write them: several, comma or colon separated.
    for opts in [":ro,z", ":z,ro", ":ro:Z", ":rprivate,ro,nosuid"] {
        let r = c.run(["run", "--rm", "-v", &v(opts), IMAGE, "touch", "/data/x"]);
        assert!(
            r.code != 0 && r.stderr.contains("Read-only file system"),
            "{opts}: {r:?}"
        );
    }
    let mounts = c.ok([
        "run",
        "--rm",
        "-v",
        &v(":ro"),
        IMAGE,
        "grep",
        " /data ",
        "/proc/mounts",
    ]);
    assert!(
        mounts
            .split_whitespace()
            .nth(3)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{mounts}"
    );

    let out = c.ok([
        "run",
        "--rm",
        "--tmpfs",
        "/scratch",
        IMAGE,
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; echo z > /scratch/z && cat /scratch/z",
    ]);
    assert_eq!(out, "tmpfs\nz\n");
    let out = c.ok([
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,destination=/t2",
        IMAGE,
        "stat",
        "-f",
        "-c",
        "%T",
        "/t2",
    ]);
    assert_eq!(out, "tmpfs\n");

    // A bind source that does not exist is an error, not a created dir.
    let missing = c.scratch().join("missing");
    let r = c.fails(
        125,
        [
            "run",
            "--rm",
            "-v",
            &format!("{}:/x", missing.display()),
            IMAGE,
            "true",
        ],
    );
    assert!(
        r.stderr.contains(&missing.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(!missing.exists());
    assert_eq!(containers_dir(&c), Vec::<String>::new());
}

#[test]
fn hostname_defaults_to_the_short_id_and_containerenv_describes_the_container() {
    let c = env();
    let out = c.ok([
        "run",
        "--name",
        "hn",
        IMAGE,
        "sh",
        "-c",
        "hostname; cat /etc/hostname",
    ]);
    let id = inspect(&c, "hn", "{{.Id}}");
    assert_eq!(out, format!("{0}\n{0}\n", &id[..12]));
    assert_eq!(inspect(&c, "hn", "{{.Config.Hostname}}"), &id[..12]);
    let out = c.ok([
        "run",
        "--rm",
        "--hostname",
        "box.example",
        IMAGE,
        "sh",
        "-c",
        "hostname; echo $HOSTNAME",
    ]);
    assert_eq!(out, "box.example\nbox.example\n");

    let image_id = c.ok(["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let text = c.ok(["run", "--name", "ce", IMAGE, "cat", "/run/.containerenv"]);
    let ce_id = inspect(&c, "ce", "{{.Id}}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("engine=\"cairn-"), "{text}");
    assert_eq!(
        lines[1..],
        [
            "name=\"ce\"".to_owned(),
            format!("id=\"{ce_id}\""),
            format!("image=\"{IMAGE}\""),
            format!("imageid=\"{}\"", image_id.trim()),
            "rootless=0".to_owned(),
        ],
        "{text}"
    );
}

#[test]
fn the_container_has_its_own_pid_namespace() {
    let c = env();
    let out = c.ok([
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
    ]);
    let (pid1, pids) = out.split_once('\n').unwrap();
    assert_eq!(pid1, "sh\0-c\0cat /proc/1/cmdline; echo; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '\0");
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1, "{pids:?}");
    // Only the shell and its pipeline: no host process, not even this test.
    assert!(pids.len() <= 6, "{pids:?}");
    assert!(!pids.contains(&std::process::id()) || std::process::id() < 10);
    let r = c.run([
        "run",
        "--rm",
        IMAGE,
        "kill",
        "-0",
        &std::process::id().to_string(),
    ]);
    assert_ne!(r.code, 0, "a host pid is not visible inside: {r:?}");
    // --pid host shares it.
    let out = c.ok(["run", "--rm", "--pid", "host", IMAGE, "cat", "/proc/1/comm"]);
    assert_ne!(out, "cat\n");
}

#[test]
fn stop_sends_the_stop_signal_then_sigkill_after_the_timeout() {
    let c = env();
    // sleep as PID 1 has no handler: the kernel drops SIGTERM for PID 1,
    // so stop waits for the timeout and SIGKILLs it.
    c.ok(["run", "-d", "--name", "plain", IMAGE, "sleep", "100"]);
    // With --init a tiny init is PID 1 and forwards SIGTERM: sleep dies of it.
    c.ok([
        "run", "-d", "--init", "--name", "init", IMAGE, "sleep", "100",
    ]);
    // A shell that handles TERM exits at once with its own code.
    c.ok([
        "run",
        "-d",
        "--name",
        "trap",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    // Let the shell install its trap.
    sleep(Duration::from_millis(300));
    assert_eq!(inspect(&c, "init", "{{.HostConfig.Init}}"), "true");

    let t = Instant::now();
    assert_eq!(c.ok(["stop", "-t", "1", "plain"]), "plain\n");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "stop -t 1 of a process ignoring SIGTERM took {took:?}"
    );
    assert_eq!(
        inspect(&c, "plain", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );

    let t = Instant::now();
    c.ok(["stop", "-t", "10", "init"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "stop with --init took {took:?}"
    );
    assert_eq!(
        inspect(&c, "init", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 143"
    );

    let t = Instant::now();
    c.ok(["stop", "-t", "10", "trap"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "stop of a trapping shell took {took:?}"
    );
    assert_eq!(
        inspect(&c, "trap", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );

    // Stopping a stopped container is fine; ps shows the exit codes.
    c.ok(["stop", "plain"]);
    let ps = c.ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    for (name, code) in [("plain", 137), ("init", 143), ("trap", 0)] {
        assert!(
            ps.lines()
                .any(|l| l.starts_with(&format!("{name} Exited ({code}) "))),
            "{ps}"
        );
    }
    assert_eq!(c.ok(["ps", "-q"]), "", "nothing running");
}

#[test]
fn logs_keep_streams_apart_and_history_across_restarts() {
    let c = env();
    let r = c.run([
        "run",
        "--name",
        "talk",
        IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 2",
    ]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "out1\nout2\nout3\n");
    assert_eq!(r.stderr, "err1\nerr2\nerr3\n");

    let r = c.run(["logs", "talk"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "out1\nout2\nout3\n", "err1\nerr2\nerr3\n")
    );
    let r = c.run(["logs", "--tail", "1", "talk"]);
    assert_eq!(format!("{}{}", r.stdout, r.stderr), "err3\n");
    let r = c.run(["logs", "--tail", "0", "talk"]);
    assert_eq!(format!("{}{}", r.stdout, r.stderr), "");
    let r = c.run(["logs", "-t", "talk"]);
    for line in r.stdout.lines() {
        let (ts, text) = line.split_once(' ').unwrap();
        assert!(text.starts_with("out"), "{line}");
        assert!(
            chrono_like(ts),
            "timestamp {ts:?} is not RFC 3339 with a zone"
        );
    }

    // A second run appends: both runs' lines are there, in order.
    c.ok(["start", "talk"]);
    assert_eq!(c.ok(["wait", "talk"]), "2\n");
    let r = c.run(["logs", "talk"]);
    assert_eq!(r.stdout, "out1\nout2\nout3\nout1\nout2\nout3\n");
    assert_eq!(r.stderr, "err1\nerr2\nerr3\nerr1\nerr2\nerr3\n");
    assert_eq!(inspect(&c, "talk", "{{.RestartCount}}"), "1");

    // A detached container's output is in its log too; -f ends when it does.
    c.ok([
        "run",
        "-d",
        "--name",
        "bg",
        IMAGE,
        "sh",
        "-c",
        "echo one; sleep 0.5; echo two",
    ]);
    assert_eq!(c.ok(["logs", "-f", "bg"]), "one\ntwo\n");
}

/// `2024-01-02T03:04:05.123456789Z` or with a numeric zone.
fn chrono_like(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (ts.ends_with('Z') || ts[19..].contains('+') || ts[19..].contains('-'))
}

#[test]
fn wait_kill_rename_restart_and_exists() {
    let c = env();
    c.ok([
        "run",
        "-d",
        "--name",
        "sig",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got USR1; exit 7' USR1; while :; do sleep 0.1; done",
    ]);
    sleep(Duration::from_millis(300));
    assert_eq!(c.ok(["kill", "-s", "USR1", "sig"]), "sig\n");
    assert_eq!(c.ok(["wait", "sig"]), "7\n");
    assert_eq!(c.ok(["logs", "sig"]), "got USR1\n");
    // wait on an exited container answers at once.
    assert_eq!(c.ok(["wait", "sig"]), "7\n");

    c.ok(["run", "-d", "--name", "victim", IMAGE, "sleep", "100"]);
    c.ok(["kill", "victim"]);
    assert_eq!(c.ok(["wait", "victim"]), "137\n");
    c.ok(["start", "victim"]);
    c.ok(["kill", "-s", "TERM", "victim"]);
    // PID 1 without a handler ignores TERM.
    sleep(Duration::from_millis(300));
    assert_eq!(status(&c, "victim"), "running");
    c.ok(["kill", "-s", "9", "victim"]);
    assert_eq!(c.ok(["wait", "victim"]), "137\n");

    // restart: a new PID 1.
    c.ok(["start", "victim"]);
    let pid = inspect(&c, "victim", "{{.State.Pid}}");
    c.ok(["restart", "-t", "0", "victim"]);
    assert_eq!(status(&c, "victim"), "running");
    assert_ne!(inspect(&c, "victim", "{{.State.Pid}}"), pid);
    assert_eq!(inspect(&c, "victim", "{{.RestartCount}}"), "3");

    c.ok(["rename", "victim", "renamed"]);
    let r = c.fails(125, ["inspect", "victim"]);
    assert!(r.stderr.contains("no such"), "{}", r.stderr);
    assert_eq!(
        inspect(&c, "renamed", "{{.Name}} {{.State.Status}}"),
        "renamed running"
    );
    assert!(c
        .ok(["ps", "--format", "{{.Names}}"])
        .lines()
        .any(|l| l == "renamed"));
    // The old name is free again, the new one taken.
    c.ok(["create", "--name", "victim", IMAGE, "true"]);
    c.fails(125, ["rename", "victim", "renamed"]);

    c.ok(["container", "exists", "renamed"]);
    c.fails(1, ["container", "exists", "nope"]);
    c.ok(["rm", "-f", "renamed"]);
    c.fails(1, ["container", "exists", "renamed"]);

    // container prune removes what is not running.
    c.ok(["run", "-d", "--name", "keep", IMAGE, "sleep", "100"]);
    c.ok(["container", "prune", "-f"]);
    assert_eq!(c.ok(["ps", "-a", "--format", "{{.Names}}"]), "keep\n");
}

#[test]
fn cp_copies_files_and_dirs_both_ways_and_never_escapes_the_container() {
    let c = env();
    let src = c.scratch().join("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("file"), "file data\n").unwrap();
    fs::write(src.join("dir/sub/deep"), "deep data\n").unwrap();
    let s = |p: &str| src.join(p).to_str().unwrap().to_owned();

    c.ok(["run", "-d", "--name", "box", IMAGE, "sleep", "100"]);
    // Into a running container: a file into a dir, a file to a new name, a dir.
    c.ok(["cp", &s("file"), "box:/tmp/"]);
    c.ok(["cp", &s("file"), "box:/root/renamed"]);
    c.ok(["cp", &s("dir"), "box:/opt/dir"]);
    let out = c.ok([
        "exec",
        "box",
        "sh",
        "-c",
        "cat /tmp/file /root/renamed /opt/dir/sub/deep; stat -c %U /tmp/file",
    ]);
    assert_eq!(out, "file data\nfile data\ndeep data\nroot\n");

    // Out of a running container.
    c.ok([
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir -p /srv/tree/a && echo made inside > /srv/tree/a/f && echo top > /srv/top",
    ]);
    let out = c.scratch().join("out");
    fs::create_dir(&out).unwrap();
    c.ok(["cp", "box:/srv/top", out.to_str().unwrap()]);
    c.ok(["cp", "box:/srv/tree", out.join("tree").to_str().unwrap()]);
    assert_eq!(fs::read_to_string(out.join("top")).unwrap(), "top\n");
    assert_eq!(
        fs::read_to_string(out.join("tree/a/f")).unwrap(),
        "made inside\n"
    );
    c.fails(125, ["cp", "box:/no/such/file", out.to_str().unwrap()]);

    // A symlink inside pointing at /etc resolves in the container, never on
    // the host.
    let marker = format!("cairn-cp-escape-{}", std::process::id());
    fs::write(src.join(&marker), "must stay inside\n").unwrap();
    c.ok(["exec", "box", "ln", "-s", "/etc", "/root/etc-link"]);
    c.ok(["cp", &s(&marker), "box:/root/etc-link/"]);
    c.ok([
        "exec",
        "box",
        "ln",
        "-s",
        format!("/etc/{marker}-2").as_str(),
        "/root/file-link",
    ]);
    c.ok(["cp", &s("file"), "box:/root/file-link"]);
    let host_etc = |name: &str| Path::new("/etc").join(name).exists();
    assert!(!host_etc(&marker), "cp wrote the host's /etc/{marker}");
    assert!(
        !host_etc(&format!("{marker}-2")),
        "cp wrote through a link to the host's /etc"
    );
    assert_eq!(
        c.ok(["exec", "box", "cat", &format!("/etc/{marker}")]),
        "must stay inside\n"
    );
    // Out: a symlink to /etc/shadow copies the link, not the host's file.
    c.ok([
        "exec",
        "box",
        "ln",
        "-s",
        "/etc/shadow",
        "/root/shadow-link",
    ]);
    c.ok(["cp", "box:/root/shadow-link", out.to_str().unwrap()]);
    let link = fs::symlink_metadata(out.join("shadow-link")).unwrap();
    assert!(link.file_type().is_symlink());

    // A stopped container: both directions still work.
    c.ok(["stop", "-t", "0", "box"]);
    c.ok(["cp", &s("file"), "box:/root/while-stopped"]);
    c.ok([
        "cp",
        "box:/root/renamed",
        out.join("from-stopped").to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("from-stopped")).unwrap(),
        "file data\n"
    );
    c.ok(["cp", &s("dir"), "box:/srv/dir2"]);
    c.ok(["start", "box"]);
    assert_eq!(
        c.ok([
            "exec",
            "box",
            "cat",
            "/root/while-stopped",
            "/srv/dir2/sub/deep"
        ]),
        "file data\ndeep data\n"
    );
    // A created, never started container too.
    c.ok(["create", "--name", "fresh", IMAGE, "true"]);
    c.ok([
        "cp",
        "fresh:/etc/debian_version",
        out.join("dv").to_str().unwrap(),
    ]);
    assert!(fs::read_to_string(out.join("dv"))
        .unwrap()
        .starts_with("12."));
    // Nothing stays mounted from the stopped-container copies (the running
    // container's network namespace file is its monitor's, not cp's).
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(c.root().to_str().unwrap()) && !l.contains(" - nsfs "))
        .collect();
    assert!(left.is_empty(), "a mount under the store is left: {left:?}");
}

#[test]
fn bad_input_gets_podmans_errors_and_exit_codes() {
    let c = env();
    c.ok(["run", "-d", "--name", "up", IMAGE, "sleep", "100"]);
    let pid = inspect(&c, "up", "{{.State.Pid}}");

    // rm of a running container without -f: exit 2, still there.
    let r = c.fails(2, ["rm", "up"]);
    assert!(r.stderr.contains("running"), "{}", r.stderr);
    assert_eq!(status(&c, "up"), "running");

    // Unknown containers: 125 and "no such container" for every verb.
    for verb in [
        vec!["inspect", "--type", "container", "ghost"],
        vec!["start", "ghost"],
        vec!["stop", "ghost"],
        vec!["kill", "ghost"],
        vec!["exec", "ghost", "true"],
        vec!["logs", "ghost"],
        vec!["wait", "ghost"],
        vec!["rename", "ghost", "spirit"],
        vec!["cp", "ghost:/etc/hostname", "/tmp/"],
    ] {
        let r = c.fails(125, &verb);
        assert!(
            r.stderr.contains("no such container"),
            "{verb:?}: {}",
            r.stderr
        );
    }
    // podman rm: 1 for a missing container.
    let r = c.fails(1, ["rm", "ghost"]);
    assert!(r.stderr.contains("no such container"), "{}", r.stderr);

    // Duplicate name.
    let r = c.fails(125, ["create", "--name", "up", IMAGE, "true"]);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    let r = c.fails(125, ["run", "--rm", "--name", "up", IMAGE, "true"]);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);

    // Starting a running container changes nothing.
    assert_eq!(c.ok(["start", "up"]), "up\n");
    assert_eq!(inspect(&c, "up", "{{.State.Pid}}"), pid);

    // exec into a stopped container.
    c.ok(["create", "--name", "idle", IMAGE, "sleep", "100"]);
    // podman's 255: the exec session never started.
    let r = c.fails(255, ["exec", "idle", "true"]);
    assert!(r.stderr.contains("running"), "{}", r.stderr);

    // Unknown image, unknown flag.
    c.fails(
        125,
        [
            "run",
            "--rm",
            "--pull",
            "never",
            "localhost/no-such-image",
            "true",
        ],
    );
    c.fails(125, ["run", "--no-such-flag", IMAGE, "true"]);

    // rm -f of the running one works; only `idle` is left.
    c.ok(["rm", "-f", "up"]);
    assert_eq!(c.ok(["ps", "-a", "--format", "{{.Names}}"]), "idle\n");
    assert_eq!(containers_dir(&c).len(), 1);
}

#[test]
fn killing_the_monitor_leaves_an_exited_container_that_rm_f_cleans_up() {
    let c = env();
    c.ok(["run", "-d", "--name", "orphan", IMAGE, "sleep", "100"]);
    let st = inspect(&c, "orphan", "{{.State.ConmonPid}} {{.State.Pid}}");
    let (monitor, pid) = st.split_once(' ').unwrap();
    let (monitor, pid): (i32, i32) = (monitor.parse().unwrap(), pid.parse().unwrap());
    assert!(monitor > 0 && pid > 0 && monitor != pid, "{st}");
    let r = Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    assert!(r.success());

    // Never hangs; becomes exited; the container process does not run on.
    wait_until(Duration::from_secs(5), "status exited", || {
        status(&c, "orphan") == "exited"
    });
    wait_until(
        Duration::from_secs(5),
        "the container process to end",
        || !matches!(proc_state(pid), Some(s) if s != 'Z'),
    );
    let ps = c.ok(["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.starts_with("orphan "), "{ps}");
    assert_eq!(c.ok(["ps", "-q"]), "");
    c.ok(["rm", "-f", "orphan"]);
    assert_eq!(containers_dir(&c), Vec::<String>::new());
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
}

#[test]
fn containers_of_one_image_share_its_root_and_rmi_respects_them() {
    let c = env();
    let mut lowers = Vec::new();
    for i in 0..5 {
        let id = c.ok(["create", "--name", &format!("c{i}"), IMAGE, "sleep", "100"]);
        let id = id.trim().to_owned();
        lowers.push(inspect(&c, &id, "{{.GraphDriver.Data.LowerDir}}"));
        // O(1) create: settings and empty overlay dirs, no copy of the
        // image's 120 MB.
        let dir = c.root().join("containers").join(&id);
        let size = du_bytes(&dir);
        assert!(
            size < 256 * 1024,
            "container dir {} is {size} bytes",
            dir.display()
        );
        assert_eq!(fs::read_dir(dir.join("upper")).unwrap().count(), 0);
    }
    assert!(lowers.iter().all(|l| l == &lowers[0]), "{lowers:?}");
    // The image root: the image's layer directories, topmost first.
    let stack: Vec<PathBuf> = lowers[0].split(':').map(PathBuf::from).collect();
    assert!(
        cairn_tests::roots::find(&stack, "etc/debian_version").is_some(),
        "{}",
        lowers[0]
    );
    for dir in &stack {
        assert_eq!(
            dir.parent().unwrap().parent().unwrap(),
            c.root().join("chains"),
            "layer directories of the store"
        );
    }
    assert_eq!(stack, cairn_tests::roots::lowers(c.root(), ""));

    // Writes stay in each container's own upper layer.
    c.ok(["start", "c0", "c1"]);
    c.ok(["exec", "c0", "sh", "-c", "echo mine > /etc/only-c0"]);
    c.fails(1, ["exec", "c1", "test", "-e", "/etc/only-c0"]);
    assert!(cairn_tests::roots::find(&stack, "etc/only-c0").is_none());

    // rmi of an image in use: exit 2, nothing removed.
    let r = c.fails(2, ["rmi", IMAGE]);
    assert!(r.stderr.contains("in use"), "{}", r.stderr);
    assert_eq!(c.ok(["ps", "-a", "-q"]).lines().count(), 5);
    // rmi -f removes the containers (running ones too), then the image.
    c.ok(["rmi", "-f", IMAGE]);
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    assert_eq!(containers_dir(&c), Vec::<String>::new());
    assert_eq!(c.ok(["images", "-q"]), "");
}

#[test]
fn run_d_rm_removes_the_container_when_it_exits() {
    let c = env();
    c.ok([
        "run", "-d", "--rm", "--name", "brief", IMAGE, "sleep", "0.3",
    ]);
    wait_until(Duration::from_secs(10), "the --rm container to go", || {
        c.ok(["ps", "-a", "-q"]).is_empty()
    });
    wait_until(Duration::from_secs(5), "its dir to go", || {
        containers_dir(&c).is_empty()
    });
    c.ok([
        "run", "--rm", "-d", "--name", "stopped", IMAGE, "sleep", "100",
    ]);
    c.ok(["stop", "-t", "0", "stopped"]);
    wait_until(
        Duration::from_secs(10),
        "the stopped --rm container to go",
        || c.ok(["ps", "-a", "-q"]).is_empty(),
    );
}

/// Runs `cairn ARGS` under `script`, so its stdio is a real pty; returns
/// the bytes the pty carried.
fn through_pty(c: &Cairn, args: &str) -> Vec<u8> {
    // A known window size, to see it inside.
    let line = format!("stty rows 31 cols 101; CAIRN {args}");
    let out = c
        .script("-qec", &line)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) runs");
    assert!(out.status.success(), "{line}: {out:?}");
    out.stdout
}

#[test]
fn run_t_gives_the_container_a_real_pty() {
    let c = env();
    let out = String::from_utf8(through_pty(&c, &format!("run --rm -t {IMAGE} tty"))).unwrap();
    assert_eq!(out.trim_end(), "/dev/pts/0", "{out:?}");
    let out = String::from_utf8(through_pty(
        &c,
        &format!("run --rm -t {IMAGE} sh -c 'test -t 0 && test -t 1 && echo both; echo $TERM'"),
    ))
    .unwrap();
    assert_eq!(out.replace('\r', ""), "both\nxterm\n");
    // Without -t the container gets no terminal even when cairn has one.
    let out = String::from_utf8(through_pty(
        &c,
        &format!("run --rm {IMAGE} sh -c 'tty; true'"),
    ))
    .unwrap();
    assert_eq!(out.replace('\r', ""), "not a tty\n");
    // The size of the caller's terminal is the container's.
    let out =
        String::from_utf8(through_pty(&c, &format!("run --rm -t {IMAGE} stty size"))).unwrap();
    assert_eq!(out.trim_end(), "31 101", "{out:?}");
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
}

/// A regression test: the caller's terminal added a \r to the pty's \r\n
/// (fixed in 07ad571).
#[test]
fn run_t_passes_the_pty_bytes_through_unchanged() {
    let c = env();
    let out = through_pty(&c, &format!("run --rm -t {IMAGE} tty"));
    assert_eq!(String::from_utf8_lossy(&out), "/dev/pts/0\r\n");
}

#[test]
fn exec_t_gives_a_real_pty() {
    let c = env();
    c.ok(["run", "-d", "--name", "bg", IMAGE, "sleep", "100"]);
    let out = through_pty(&c, "exec -t bg sh -c 'tty; true'");
    assert_eq!(String::from_utf8_lossy(&out).trim_end(), "/dev/pts/0");
}

#[test]
#[ignore = "BUG: --tmpfs hides the image's files at the target (podman copies them up: tmpcopyup)"]
fn tmpfs_starts_with_the_images_files() {
    let c = env();
    let out = c.ok([
        "run", "--rm", "--tmpfs", "/etc/apt", IMAGE, "ls", "/etc/apt",
    ]);
    assert!(out.lines().any(|l| l == "apt.conf.d"), "{out:?}");
}

/// Regression: the caller's environment never reaches a container. The
/// monitor's child used to inherit `cairn`'s whole environment, so under
/// `--init` pid 1 (cairn-pivot) carried it, and `exec`, which takes its
/// defaults from pid 1's environ, handed the caller's variables (secrets
/// included) to every exec'd command.
#[test]
fn the_callers_environment_never_reaches_the_container() {
    let mut c = env();
    c.env("CAIRN_TEST_HOST_SECRET", "host-secret-5f3a");
    for init in [false, true] {
        let name = format!("envleak-{init}");
        let mut args = vec!["run", "-d", "--name", &name, "-e", "MINE=1"];
        if init {
            args.push("--init");
        }
        args.extend([IMAGE, "sleep", "1000"]);
        c.ok(args);
        let out = c.ok(["exec", &name, "env"]);
        assert!(
            out.contains("MINE=1\n"),
            "init={init}: the container's env: {out}"
        );
        assert!(
            !out.contains("host-secret"),
            "init={init}: the caller's env in exec: {out}"
        );
        let run = c.ok(["run", "--rm", IMAGE, "env"]);
        assert!(
            !run.contains("host-secret"),
            "the caller's env in run: {run}"
        );
        c.ok(["rm", "-f", "-t", "0", &name]);
    }
}

/// Flags end at the first positional (podman's `interspersed=false`):
/// before it an unknown flag is an error naming it, never taken for the
/// image or the container; after it every word is the command's.
#[test]
fn unknown_flags_are_errors_and_words_after_the_image_are_the_commands() {
    let c = env();
    for verb in ["run", "create"] {
        let r = c.fails(125, [verb, "--no-such-flag=x", IMAGE, "true"]);
        assert_eq!(
            r.stderr,
            format!("Error: unknown flag: --no-such-flag\nSee 'cairn {verb} --help'\n")
        );
        assert!(!r.stderr.contains("image reference"), "{}", r.stderr);
    }
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    let out = c.ok([
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo \"$0\" \"$1\"",
        "--name",
        "-e",
    ]);
    assert_eq!(out, "--name -e\n");
    c.ok(["run", "-d", "--name", "flags", IMAGE, "sleep", "60"]);
    let r = c.fails(125, ["exec", "--no-such-flag", "flags", "true"]);
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.stderr);
    assert!(!r.stderr.contains("no container"), "{}", r.stderr);
    let out = c.ok(["exec", "flags", "sh", "-c", "echo \"$0\"", "-i"]);
    assert_eq!(out, "-i\n");
    c.ok(["rm", "-f", "-t", "0", "flags"]);
}

/// A word that is not a verb gets podman's two lines; one of podman's verbs
/// cairn lacks is refused by name with the reason; both 125, and neither
/// leaves anything in the store (no container, image or volume).
#[test]
fn unknown_and_unsupported_verbs_are_one_error_each() {
    let c = env();
    let r = c.fails(125, ["nosuch-verb", "x"]);
    assert_eq!(
        r.stderr,
        "Error: unrecognized command `cairn nosuch-verb`\nTry 'cairn --help' for more information\n"
    );
    let r = c.fails(125, ["container", "nosuch-verb"]);
    assert_eq!(
        r.stderr,
        "Error: unrecognized command `cairn container nosuch-verb`\nTry 'cairn container --help' for more information\n"
    );
    for (args, line) in [
        (
            &["pod", "create", "--name", "p"][..],
            "`pod` (cairn has no pods)",
        ),
        (
            &["image", "scp", IMAGE][..],
            "`image scp` (images cannot be copied to other hosts)",
        ),
        (
            &["image", "sign", "x"][..],
            "`image sign` (no image signing)",
        ),
    ] {
        let r = c.fails(125, args);
        assert_eq!(
            r.stderr,
            format!("Error: cairn does not support {line}\n"),
            "{args:?}"
        );
    }
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    assert_eq!(c.ok(["volume", "ls", "-q"]), "");
    assert_eq!(c.ok(["network", "ls", "-q"]), "podman\n");
}

/// `-p`/`-P` where the network mode cannot publish (host, none, private)
/// publish nothing: the run goes on with podman's warning for such modes,
/// never silently. On the default network they publish, without it.
#[test]
fn publish_flags_warn_as_podman_does_on_its_host_network() {
    let c = env();
    for flags in [
        &["--network", "host", "-p", "8080:80"][..],
        &["--network", "none", "-P"],
        &["--network", "host", "--publish", "127.0.0.1:1:2/udp"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend([IMAGE, "true"]);
        let r = c.run(&args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(
                "Port mappings have been discarded as one of the Host, Container, Pod, and None network modes are in use"
            ),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = c.run([
        "create",
        "--name",
        "pub",
        "-p",
        "127.0.0.1:18123:80",
        IMAGE,
        "true",
    ]);
    assert!(!r.stderr.contains("Port mappings"), "{}", r.stderr);
    assert_eq!(
        c.ok(["ps", "-a", "--format", "{{.Ports}}"]),
        "127.0.0.1:18123->80/tcp\n"
    );
    assert_eq!(
        c.ok([
            "inspect",
            "pub",
            "--format",
            "{{json .HostConfig.PortBindings}}"
        ]),
        "{\"80/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"18123\"}]}\n"
    );
    c.ok(["rm", "pub"]);
    let r = c.run(["run", "--rm", IMAGE, "true"]);
    assert!(!r.stderr.contains("Port mappings"), "{}", r.stderr);
}
