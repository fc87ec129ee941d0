//! End-to-end: the flags of `run`, `create`, `exec` and `start` beyond the
//! basic ones, through the real binaries with the real Debian test image:
//! what the container sees (umask, time zone, sysctls, /dev/shm, devices,
//! devpts, /etc/hosts), the streams `-a` attaches, `--sig-proxy` with a real
//! signal, `--replace`, `--label-file` and `--health-*` in inspect, the
//! flags real clients pass (Dev Containers CLI, distrobox, toolbox), refused
//! flags (one line, 125, nothing created), and podman 4.3 beside cairn where
//! the outcome is podman's.

use std::fs;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::fixtures::{refs, FixtureStore};
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;

/// The name the fixture image gets in every store.
const IMAGE: &str = "localhost/debian-min:latest";

/// A store with the fixture image; its containers are removed on drop.
fn env() -> FixtureStore {
    FixtureStore::linked(IMAGE)
}

fn inspect(c: &Cairn, name: &str, template: &str) -> String {
    c.ok(["inspect", "--format", template, name])
        .trim_end()
        .to_owned()
}

/// What the container's first process sees with `--umask`, `--tz`,
/// `--sysctl`, `--shm-size`, `--device`, `--no-hosts`/`--dns none`.
#[test]
fn what_the_container_sees() {
    let c = env();
    let out = c.ok([
        "run",
        "--rm",
        "--umask",
        "0027",
        "--tz",
        "Asia/Tokyo",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmni=1234",
        "--shm-size",
        "5m",
        "--device",
        "/dev/zero:/dev/myzero:r",
        IMAGE,
        "sh",
        "-c",
        "grep Umask /proc/self/status; date +%Z; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; \
         df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2; head -c 3 /dev/myzero | od -An -tx1",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["Umask:\t0027", "JST", "1", "1234", "5120", "00 00 00"],
        "{out}"
    );
    // The host's value is untouched (the sysctl was the namespace's own).
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );
    // --ipc host: the host's /dev/shm (a file made there shows on the host).
    let marker = format!("/dev/shm/cairn-runflags-{}", std::process::id());
    c.ok([
        "run",
        "--rm",
        "--ipc",
        "host",
        IMAGE,
        "sh",
        "-c",
        &format!("echo hi > {marker}"),
    ]);
    assert_eq!(fs::read_to_string(&marker).unwrap(), "hi\n");
    fs::remove_file(&marker).unwrap();
    // --no-hosts and --dns none: the image's files (it has neither).
    let r = c.run([
        "run",
        "--rm",
        "--no-hosts",
        "--dns",
        "none",
        IMAGE,
        "ls",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot access '/etc/hosts'"), "{r:?}");
    assert!(
        r.stderr.contains("cannot access '/etc/resolv.conf'"),
        "{r:?}"
    );
    // Without them, both are generated.
    c.ok(["run", "--rm", IMAGE, "ls", "/etc/hosts", "/etc/resolv.conf"]);
    // A sysctl of a namespace the container shares with the host, or of
    // none, is refused before anything exists.
    let r = c.fails(
        125,
        [
            "run",
            "--rm",
            "--network",
            "host",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            IMAGE,
            "true",
        ],
    );
    assert_eq!(
        r.stderr.trim(),
        "Error: sysctl net.ipv4.ip_forward=1 can't be set since Network Namespace set to host: invalid argument"
    );
    let r = c.fails(125, ["run", "--sysctl", "vm.swappiness=1", IMAGE, "true"]);
    assert_eq!(
        r.stderr.trim(),
        "Error: sysctl 'vm.swappiness' is not allowed"
    );
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
}

/// `-a` selects the streams relayed; the others go nowhere (the log still
/// has them); stdin only with `-i` and `-a STDIN`.
#[test]
fn attach_selects_streams() {
    let c = env();
    let script = "echo to-out; echo to-err >&2";
    let r = c.run([
        "run", "--name", "a1", "-a", "STDERR", IMAGE, "sh", "-c", script,
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "", "to-err\n")
    );
    let r = c.run(["run", "--rm", "-a", "stdout", IMAGE, "sh", "-c", script]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "to-out\n", "")
    );
    let r = c.run([
        "run", "--rm", "-a", "STDOUT", "-a", "STDERR", IMAGE, "sh", "-c", script,
    ]);
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("to-out\n", "to-err\n")
    );
    // The log has both.
    let logs = c.run(["logs", "a1"]);
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("to-out\n", "to-err\n")
    );
    // stdin: relayed with -i -a STDIN, not with -i -a STDOUT alone.
    for (attach, want) in [
        (&["-a", "stdin", "-a", "stdout"][..], "piped\n"),
        (&["-a", "stdout"][..], ""),
    ] {
        let mut args = vec!["run", "--rm", "-i"];
        args.extend_from_slice(attach);
        args.extend([IMAGE, "cat"]);
        let mut child = c
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"piped\n").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{attach:?}");
    }
    let r = c.fails(125, ["run", "-a", "tty", IMAGE, "true"]);
    assert_eq!(
        r.stderr.trim(),
        "Error: invalid stream \"tty\" for --attach - must be one of stdin, stdout, or stderr: invalid argument"
    );
}

/// `--sig-proxy` (default true): a SIGTERM to an attached `cairn run`
/// reaches the container, which exits 143; with `--sig-proxy=false` it
/// ends cairn and the container runs on (as the Dev Containers CLI needs).
#[test]
fn sig_proxy_with_a_real_signal() {
    let c = env();
    for (proxy, name) in [("true", "sp-on"), ("false", "sp-off")] {
        let mut child = c
            .spawn([
                "run",
                &format!("--sig-proxy={proxy}"),
                "--name",
                name,
                IMAGE,
                "sh",
                "-c",
                "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.1; done",
            ])
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 6];
        stdout.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"ready\n");
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = child.wait().unwrap();
        if proxy == "true" {
            let mut rest = String::new();
            stdout.read_to_string(&mut rest).unwrap();
            assert_eq!(status.code(), Some(143), "{rest}");
            assert_eq!(rest, "got-term\n");
            assert_eq!(
                inspect(&c, name, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 143"
            );
        } else {
            // cairn died of the signal; the container did not see it
            // (its monitor still holds the other end of our pipe).
            assert_eq!(status.code(), None);
            assert_eq!(inspect(&c, name, "{{.State.Status}}"), "running");
        }
    }
}

/// `--replace`, `--label-file`, `--health-*`, `--restart no`, `--log-opt
/// tag=`, `--umask`, `--tz` and `--device` as inspect shows them.
#[test]
fn replace_label_file_and_inspect() {
    let c = env();
    let labels = c.scratch().join("labels");
    fs::write(&labels, "# a comment\n\nteam=infra\nk=from-file\n").unwrap();
    let first = c.ok(["create", "--name", "rep", IMAGE, "true"]);
    let r = c.fails(125, ["create", "--name", "rep", IMAGE, "true"]);
    assert!(r.stderr.contains("already in use"), "{r:?}");
    let second = c.ok([
        "create",
        "--replace",
        "--name",
        "rep",
        "--label-file",
        labels.to_str().unwrap(),
        "-l",
        "k=flag",
        "--health-cmd",
        "test -e /",
        "--health-interval",
        "1m",
        "--restart",
        "no",
        "--log-opt",
        "tag=mytag",
        "--umask",
        "0077",
        "--tz",
        "Europe/Paris",
        "--device",
        "/dev/null:/dev/mynull:r",
        IMAGE,
        "true",
    ]);
    assert_ne!(first, second);
    assert_eq!(
        c.ok(["ps", "-a", "--format", "{{.Names}} {{.ID}}"]),
        format!("rep {}\n", &second[..12])
    );
    assert_eq!(
        inspect(
            &c,
            "rep",
            "{{.Config.Labels}}|{{json .Config.Healthcheck}}|{{.HostConfig.RestartPolicy.Name}}|{{.HostConfig.LogConfig.Tag}}|{{.Config.Umask}}|{{.Config.Timezone}}|{{json .HostConfig.Devices}}"
        ),
        r#"map[k:flag team:infra]|{"Test":["CMD-SHELL","test -e /"],"Interval":60000000000,"Timeout":30000000000,"Retries":3}|no|mytag|0077|Europe/Paris|[{"PathOnHost":"/dev/null","PathInContainer":"/dev/mynull","CgroupPermissions":""}]"#
    );
    let r = c.fails(125, ["run", "--rm", "--restart", "always", IMAGE, "true"]);
    assert_eq!(
        r.stderr.trim(),
        "Error: the --rm option conflicts with --restart, when the restartPolicy is not \"\" and \"no\""
    );
}

/// Refused flags: one line naming the flag, 125, nothing created or pulled
/// (an empty store stays empty).
#[test]
fn refused_flags_create_nothing() {
    let c = Cairn::new().expect("cairn environment");
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--memory-swappiness", "10"], "Error: cairn does not support --memory-swappiness (cairn sets memory, CPU, cpuset, pids and block I/O weight limits, not this one)"),
        (&["create", "--device-read-bps=/dev/sda:1mb"], "Error: cairn does not support --device-read-bps (cairn sets memory, CPU, cpuset, pids and block I/O weight limits, not this one)"),
        (&["run", "--oom-kill-disable"], "Error: cairn does not support --oom-kill-disable (cairn sets memory, CPU, cpuset, pids and block I/O weight limits, not this one)"),
        (&["run", "--memory", "12q"], "Error: invalid value \"12q\" for --memory: unknown unit (a size such as 512m or 2g)"),
        (&["create", "--cpus=2", "--cpu-quota", "5000"], "Error: --cpus cannot be set with --cpu-quota or --cpu-period: give one or the other"),
        (&["run", "--device-cgroup-rule", "c 1:3 rwx"], "Error: invalid --device-cgroup-rule \"c 1:3 rwx\": device cgroup rule \"c 1:3 rwx\": the access must be some of r, w and m, each once (expected TYPE MAJOR:MINOR ACCESS, as \"c 1:3 rwm\" or \"b *:* m\", or \"a\") (a rule such as 'c 1:3 rwm' or 'b 8:* r')"),
        (&["run", "--secret", "s"], "Error: cairn does not support --secret (secrets are not supported yet: bind a file with -v SRC:DST:ro)"),
        (&["run", "--gpus", "all"], "Error: cairn does not support --gpus (GPU passthrough is not supported; --device binds a node)"),
        (&["run", "--restart", "always"], "Error: cairn does not support --restart (cairn has no restart manager yet: only no; restart with `cairn start`)"),
        (&["run", "--preserve-fds", "1"], "Error: cairn does not support --preserve-fds (for run and create: cairn's start chain uses descriptors 3 and 4; exec takes it)"),
        (&["run", "--rmi"], "Error: cairn does not support --rmi (not implemented: remove the image with `cairn rmi` after the run)"),
        (&["create", "--uidmap", "0:1:1"], "Error: cairn does not support --uidmap (custom id maps are not supported: use --userns keep-id, or run as root)"),
        (&["create", "--pod", "p"], "Error: cairn does not support --pod (cairn has no pods)"),
        (&["run", "--log-opt", "max-size=1m"], "Error: cairn does not support --log-opt max-size=1m (only tag= is taken: cairn's k8s-file log has no size or path options yet)"),
        (&["run", "--detach-keys", "ctrl-Q"], "Error: invalid detach keys: Unknown character: 'ctrl-Q'"),
        (&["run", "--umask", "0888"], "Error: running container create option: invalid umask string 0888: invalid argument"),
        (&["run", "--tz", "Nowhere/City"], "Error: running container create option: stat /usr/share/zoneinfo/Nowhere/City: no such file or directory"),
    ];
    for (args, want) in cases {
        let mut argv = args.to_vec();
        argv.extend([IMAGE, "true"]);
        let r = c.fails(125, &argv);
        assert_eq!(r.stderr.trim(), *want, "{argv:?}");
        assert_eq!(r.stdout, "", "{argv:?}");
    }
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    assert_eq!(c.ok(["images", "-q"]), "");
    // Documented no-ops parse and do nothing (here: fail later, on the
    // image this store does not have, which proves they were accepted).
    let r = c.run([
        "create",
        "--runtime=crun",
        "--cgroups=disabled",
        "--disable-content-trust",
        "-P",
        "--pull",
        "never",
        IMAGE,
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("image not known"), "{r:?}");
}

/// The flags the Dev Containers CLI passes work: its `run` (killed once
/// started, the container stays), then its `exec`.
#[test]
fn devcontainer_flags() {
    let c = env();
    let ws = c.scratch().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("f"), "hello\n").unwrap();
    let mut child = c
        .spawn([
            "run",
            "--sig-proxy=false",
            "-a",
            "STDOUT",
            "-a",
            "STDERR",
            "--mount",
            &format!("type=bind,source={},target=/workspaces/ws", ws.display()),
            "-l",
            "devcontainer.local_folder=/w",
            "-e",
            "FOO=bar",
            "--name",
            "dev",
            "--entrypoint",
            "/bin/sh",
            IMAGE,
            "-c",
            "echo Container started; trap 'exit 0' 15; while sleep 1 & wait $!; do :; done",
        ])
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = [0u8; 18];
    stdout.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"Container started\n");
    // The CLI kills its `run` once started; the container stays.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(inspect(&c, "dev", "{{.State.Status}}"), "running");
    let out = c.ok([
        "exec",
        "-i",
        "-u",
        "root",
        "-e",
        "X=1",
        "-w",
        "/workspaces/ws",
        "dev",
        "sh",
        "-c",
        "echo $FOO $X; pwd; cat f",
    ]);
    assert_eq!(out, "bar 1\n/workspaces/ws\nhello\n");
}

/// distrobox's `create` and `exec` (as root: no keep-id), toolbox's
/// `create`, exec's `--preserve-fds` and `--latest`.
#[test]
fn distrobox_and_toolbox_flags() {
    let c = env();
    c.ok([
        "create",
        "--runtime=crun",
        "--hostname",
        "dbx.host",
        "--name",
        "dbx",
        "--privileged",
        "--security-opt",
        "label=disable",
        "--user",
        "root:root",
        "--ipc",
        "host",
        "--network",
        "host",
        "--pid",
        "host",
        "--ulimit",
        "host",
        "--annotation",
        "run.oci.keep_original_groups=1",
        "--volume",
        "/dev:/dev:rslave",
        "--mount",
        "type=devpts,destination=/dev/pts",
        "--label",
        "manager=distrobox",
        "--env",
        "SHELL=/bin/bash",
        "--systemd=always",
        "--pids-limit",
        "-1",
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "sleep 1000",
    ]);
    c.ok(["start", "dbx"]);
    let out = c.ok([
        "exec", "--interactive", "--detach-keys=", "--user=root", "-w", "/tmp", "-e", "A=1",
        "dbx", "sh", "-c",
        "echo $A $SHELL; pwd; hostname; grep ' /dev/pts ' /proc/self/mountinfo | tail -1 | grep -o 'devpts devpts.*'",
    ]);
    // The last /dev/pts is a devpts instance of its own (ptmxmode=666, not
    // the host's ptmxmode=000 under the bound /dev).
    assert_eq!(
        out,
        "1 /bin/bash\n/tmp\ndbx.host\ndevpts devpts rw,gid=5,mode=620,ptmxmode=666\n"
    );
    // toolbox (as root: no keep-id).
    c.ok([
        "create",
        "--dns",
        "none",
        "--env",
        "TOOLBOX=1",
        "--hostname",
        "toolbox",
        "--ipc",
        "host",
        "--label",
        "com.github.containers.toolbox=true",
        "--name",
        "tb",
        "--network",
        "host",
        "--no-hosts",
        "--pid",
        "host",
        "--privileged",
        "--security-opt",
        "label=disable",
        "--ulimit",
        "host",
        "--user",
        "root:root",
        IMAGE,
        "sleep",
        "1000",
    ]);
    c.ok(["start", "tb"]);
    assert_eq!(
        c.ok(["exec", "tb", "sh", "-c", "echo $TOOLBOX; hostname"]),
        "1\ntoolbox\n"
    );
    // exec --preserve-fds: descriptor 3 reaches the command.
    let out = with_fd3(
        c.command(["exec", "--preserve-fds", "1", "tb", "sh", "-c", "cat <&3"]),
        "through fd 3\n",
    );
    assert_eq!(out, "through fd 3\n");
    // --latest: the container created last (tb).
    assert_eq!(c.ok(["exec", "-l", "hostname"]), "toolbox\n");
}

/// Runs `cmd` with a file holding `text` open as descriptor 3 (through
/// `sh -c 'exec 3<FILE; exec CMD'`, with `cmd`'s environment); its stdout.
fn with_fd3(cmd: Command, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("cairn-fd3-{}", std::process::id()));
    fs::write(&path, text).unwrap();
    let mut sh = Command::new("sh");
    sh.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh.arg("-c")
        .arg("f=$1; shift; exec 3<\"$f\"; exec \"$@\"")
        .arg("sh")
        .arg(&path)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    let out = sh.output().unwrap();
    fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// podman 4.3 beside cairn, on the same image: exit codes, states and
/// messages of the behaviours issue 19 lists, and what the container sees
/// with `--umask`, `--tz` and `-a`.
#[test]
fn beside_podman() {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("podman imports the image");
    let c = env();
    let p = |args: &[&str]| {
        let mut a = args.to_vec();
        if matches!(a[0], "run" | "create") {
            a.splice(1..1, ["--network", "host"]);
        }
        podman.run(&a)
    };
    // A missing working directory: 126 on both, nothing left running.
    let (cr, pr) = (
        c.run(["run", "-w", "/nonexistent", IMAGE, "true"]),
        p(&["run", "-w", "/nonexistent", IMAGE, "true"]),
    );
    assert_eq!((cr.code, pr.code), (126, 126), "{cr:?} {pr:?}");
    // `run -d` whose command is missing: 127, and the container is Created.
    let (cr, pr) = (
        c.run(["run", "-d", "--name", "nocmd", IMAGE, "/no/such"]),
        p(&["run", "-d", "--name", "nocmd", IMAGE, "/no/such"]),
    );
    assert_eq!((cr.code, pr.code), (127, 127), "{cr:?} {pr:?}");
    let status = "{{.Names}} {{.Status}}";
    assert_eq!(
        c.ok(["ps", "-a", "--filter", "name=nocmd", "--format", status]),
        podman.ok(["ps", "-a", "--filter", "name=nocmd", "--format", status])
    );
    assert_eq!(
        inspect(&c, "nocmd", "{{.State.Status}} {{.State.ExitCode}}"),
        "created 0"
    );
    // exec into a stopped container: 255 and podman's words.
    let run = ["run", "-d", "--name", "st", IMAGE, "sleep", "100"];
    c.ok(run);
    assert_eq!(p(&run).code, 0);
    c.ok(["stop", "-t", "0", "st"]);
    podman.ok(["stop", "-t", "0", "st"]);
    let (cr, pr) = (
        c.run(["exec", "st", "true"]),
        podman.run(["exec", "st", "true"]),
    );
    assert_eq!((cr.code, cr.stderr.as_str()), (pr.code, pr.stderr.as_str()));
    assert_eq!(cr.code, 255);
    // --restart with --rm: the same refusal.
    let args = ["run", "--rm", "--restart", "always", IMAGE, "true"];
    let (cr, pr) = (c.run(args), p(&args));
    assert_eq!((cr.code, cr.stderr.as_str()), (pr.code, pr.stderr.as_str()));
    // Bad values: the same messages (podman fails later, with 125 too).
    for args in [
        &["run", "--rm", "--umask", "0888", IMAGE, "true"][..],
        &["run", "--rm", "--tz", "Nowhere/City", IMAGE, "true"],
        &["run", "--rm", "-a", "tty", IMAGE, "true"],
        &["run", "--rm", "--sysctl", "vm.swappiness=1", IMAGE, "true"],
    ] {
        let (cr, pr) = (c.run(args), p(args));
        assert_eq!(
            (cr.code, cr.stderr.as_str()),
            (pr.code, pr.stderr.as_str()),
            "{args:?}"
        );
    }
    // What the container sees.
    let script = "grep Umask /proc/self/status; date +%Z; echo to-out; echo to-err >&2";
    for args in [
        &[
            "run",
            "--rm",
            "--umask",
            "0077",
            "--tz",
            "Asia/Tokyo",
            IMAGE,
            "sh",
            "-c",
            script,
        ][..],
        &["run", "--rm", "-a", "stderr", IMAGE, "sh", "-c", script],
        &["run", "--rm", "-a", "stdout", IMAGE, "sh", "-c", script],
    ] {
        let (cr, pr) = (c.run(args), p(args));
        assert_eq!(
            (cr.code, cr.stdout.as_str(), cr.stderr.as_str()),
            (pr.code, pr.stdout.as_str(), pr.stderr.as_str()),
            "{args:?}"
        );
    }
}

/// `run -it` under a real pty (script(1)): ctrl-p,ctrl-q (podman's
/// default) detaches, cairn exits 0 and the container runs on; with
/// `--detach-keys=""` the same keys reach the container's shell.
#[test]
fn detach_keys_detach_an_attached_session() {
    use std::io::Write as _;
    let c = env();
    for (keys, name) in [
        (None, "dk-default"),
        (Some("ctrl-x"), "dk-x"),
        (Some(""), "dk-off"),
    ] {
        let flag = keys
            .map(|k| format!("--detach-keys={k}"))
            .unwrap_or_default();
        let mut child = c
            .script(
                "-qec",
                &format!("CAIRN run -it {flag} --name {name} {IMAGE} sh"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while c
            .run(["inspect", "--format", "{{.State.Status}}", name])
            .stdout
            .trim()
            != "running"
        {
            assert!(Instant::now() < deadline, "{name} never ran");
            sleep(Duration::from_millis(100));
        }
        sleep(Duration::from_millis(500));
        let seq: &[u8] = match keys {
            Some("ctrl-x") => b"\x18",
            _ => b"\x10\x11",
        };
        stdin.write_all(seq).unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ended = None;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                ended = Some(st);
                break;
            }
            sleep(Duration::from_millis(50));
        }
        if keys == Some("") {
            // Not a detach: the session goes on until the shell exits.
            assert!(ended.is_none(), "{name}: the keys detached");
            // ctrl-u drops what the keys left on the line.
            stdin.write_all(b"\x15exit 3\r").unwrap();
            drop(stdin);
            let st = child.wait().unwrap();
            assert_eq!(st.code(), Some(3), "{name}");
            assert_eq!(
                inspect(&c, name, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 3"
            );
        } else {
            let st = match ended {
                Some(st) => st,
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name}: no detach");
                }
            };
            // Already reaped by try_wait; wait gives the same status.
            assert_eq!(child.wait().unwrap(), st);
            assert_eq!(st.code(), Some(0), "{name}");
            assert_eq!(inspect(&c, name, "{{.State.Status}}"), "running", "{name}");
            assert_eq!(c.ok(["exec", name, "echo", "alive"]), "alive\n");
        }
    }
}

/// Rootless `--userns keep-id:uid=,gid=`: the caller is those ids inside,
/// and a file it makes in a bind is the caller's on the host.
#[test]
fn keep_id_with_uid_and_gid_rootless() {
    use std::os::unix::fs::MetadataExt as _;
    let c = Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)");
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    let user = c.user().expect("a test user").clone();
    let dir = c.scratch().join("shared");
    fs::create_dir_all(&dir).unwrap();
    let st = Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let out = c.ok([
        "run",
        "--rm",
        "--userns",
        "keep-id:uid=1234,gid=1235",
        "-v",
        &format!("{}:/shared", dir.display()),
        IMAGE,
        "sh",
        "-c",
        "id -u; id -g; grep ':1234:1235:' /etc/passwd | cut -d: -f3,4; touch /shared/made",
    ]);
    assert_eq!(out, "1234\n1235\n1234:1235\n");
    let meta = fs::metadata(dir.join("made")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
    let r = c.fails(
        125,
        ["run", "--rm", "--userns", "keep-id:size=10", IMAGE, "true"],
    );
    assert_eq!(
        r.stderr.trim(),
        "Error: --userns keep-id:size=10: size= is not supported: cairn maps every subordinate id"
    );
}
