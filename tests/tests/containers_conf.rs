//! containers.conf's defaults, cairn beside podman (4.3, crun) reading the
//! very same file: the isolated podman's own `containers.conf`
//! ([`Podman::dir`]), given to cairn as `$CONTAINERS_CONF`. Each test edits
//! that file's `[containers]` table and compares what a container sees
//! (`/proc/self/status`, limits, `/dev/shm`, the time zone, the
//! environment, `/etc/hosts`, `/etc/passwd`) on both sides. podman runs
//! with `--network host` (cairn's default network is the host's), and so
//! does cairn where the test says so.
//!
//! The small behaviours of issue 19 that do not depend on the file are here
//! too, each beside podman: `--network host` keeps the host's name,
//! `host.containers.internal`, a numeric `--user`'s passwd entry, `--ipc
//! host`'s `/dev/shm`.

use std::fs;
use std::path::PathBuf;

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::{Cairn, Run};

/// The fixture image's name on both sides.
const IMAGE: &str = "localhost/debian-min:latest";

struct Pair {
    cairn: Cairn,
    podman: Podman,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.cairn.run(["rm", "-a", "-f", "-t", "0"]);
    }
}

impl Pair {
    /// Both with [`IMAGE`], cairn reading podman's containers.conf.
    fn new() -> Pair {
        let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
        podman
            .import_fixture(refs::DEBIAN_MIN, IMAGE)
            .expect("podman imports the image");
        let mut cairn = Cairn::new().expect("cairn environment");
        cairn.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
        let conf = podman.dir().join("containers.conf");
        cairn.env("CONTAINERS_CONF", &conf.to_string_lossy());
        Pair { cairn, podman }
    }

    /// The shared containers.conf.
    fn conf(&self) -> PathBuf {
        self.podman.dir().join("containers.conf")
    }

    /// Adds `lines` to the file's `[containers]` table (replacing what an
    /// earlier call added).
    fn set_containers_keys(&self, lines: &str) {
        const START: &str = "# test keys\n";
        const END: &str = "# end test keys\n";
        let mut text = fs::read_to_string(self.conf()).unwrap();
        if let (Some(a), Some(b)) = (text.find(START), text.find(END)) {
            text.replace_range(a..b + END.len(), "");
        }
        // A key set twice is not TOML (podman 4.3 takes it; cairn's
        // parser does not): the file's own line for a key given goes.
        let keys: Vec<&str> = lines
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        let text: String = text
            .lines()
            .filter(|l| {
                !l.split_once('=')
                    .is_some_and(|(k, _)| keys.contains(&k.trim()))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let text = text.replacen(
            "[containers]\n",
            &format!("[containers]\n{START}{lines}\n{END}"),
            1,
        );
        fs::write(self.conf(), text).unwrap();
    }

    /// `run --rm [flags] IMAGE sh -c script` on both (podman with
    /// `--network host` first); both must succeed.
    fn both(&self, flags: &[&str], script: &str) -> (String, String) {
        let mut c: Vec<&str> = vec!["run", "--rm"];
        c.extend(flags);
        c.extend([IMAGE, "sh", "-c", script]);
        let mut p: Vec<&str> = vec!["run", "--rm"];
        if !flags.contains(&"--network") {
            p.extend(["--network", "host"]);
        }
        p.extend(flags);
        p.extend([IMAGE, "sh", "-c", script]);
        let (cr, pr): (Run, Run) = (self.cairn.run(&c), self.podman.run(&p));
        assert!(
            cr.code == 0 && pr.code == 0,
            "{flags:?} {script}:\ncairn: {cr:?}\npodman: {pr:?}"
        );
        (cr.stdout, pr.stdout)
    }
}

/// With no capability in the file podman 4.3 grants its compiled 14
/// (AUDIT_WRITE, MKNOD and NET_RAW beyond the distribution file's 11); with
/// `default_capabilities` set, exactly those. cairn the same, and
/// `--cap-add`/`--cap-drop` apply over them alike.
#[test]
fn capabilities_match_podman_reading_the_same_file() {
    let p = Pair::new();
    let caps = "grep ^Cap /proc/self/status";
    let (c, pd) = p.both(&[], caps);
    assert_eq!(c, pd);
    assert!(c.contains("CapBnd:\t00000000a80425fb"), "{c}");
    p.set_containers_keys("default_capabilities = [\"CHOWN\", \"NET_RAW\", \"SYS_CHROOT\"]");
    let (c, pd) = p.both(&[], caps);
    assert_eq!(c, pd);
    assert!(c.contains("CapBnd:\t0000000000042001"), "{c}");
    let (c, pd) = p.both(&["--cap-add", "KILL", "--cap-drop", "net_raw"], caps);
    assert_eq!(c, pd);
    assert!(c.contains("CapEff:\t0000000000040021"), "{c}");
    // inspect reports the same set.
    let id = p.cairn.ok(["create", IMAGE, "true"]);
    let eff = p
        .cairn
        .ok(["inspect", "--format", "{{json .EffectiveCaps}}", id.trim()]);
    assert_eq!(
        eff.trim(),
        r#"["CAP_CHOWN","CAP_NET_RAW","CAP_SYS_CHROOT"]"#
    );
    // exec gets the container's set, not a built-in one.
    let id2 = p.cairn.ok(["run", "-d", IMAGE, "sleep", "30"]);
    let ex = p
        .cairn
        .ok(["exec", id2.trim(), "grep", "^CapBnd", "/proc/self/status"]);
    assert_eq!(ex, "CapBnd:\t0000000000042001\n");
}

/// ulimits, `/dev/shm`'s size, the time zone, `env` and a seccomp profile
/// from the file, as podman applies them.
#[test]
fn ulimits_shm_tz_env_and_seccomp_as_podman() {
    let p = Pair::new();
    // A profile that allows everything but mkdir/mkdirat (EPERM).
    let profile = p.podman.dir().join("no-mkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    p.set_containers_keys(&format!(
        r#"default_ulimits = ["nofile=1000:2000", "nproc=32768:32768"]
shm_size = "10m"
tz = "Asia/Tokyo"
env = ["FROM_CONF=yes", "PATH=/conf/path"]
seccomp_profile = "{}""#,
        profile.display()
    ));
    let script = "ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1 | awk '{print $2}'; \
                  date +%Z; echo \"$FROM_CONF $PATH\"; mkdir /x 2>&1 || echo mkdir refused";
    let (c, pd) = p.both(&[], script);
    assert_eq!(c, pd);
    // shm_size is decimal in containers.conf (podman's FromHumanSize):
    // 10m is 10,000,000 bytes, 9768 KiB once rounded to pages.
    assert_eq!(
        c,
        "1000\n2000\n9768\nJST\nyes /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         mkdir: cannot create directory '/x': Operation not permitted\nmkdir refused\n"
    );
    // The flags win over the file; one --ulimit replaces the file's whole
    // list (podman: without nproc here it would try to raise it, and fail).
    let (c, pd) = p.both(
        &[
            "--ulimit",
            "nofile=500:600",
            "--ulimit",
            "nproc=32768:32768",
            "-e",
            "FROM_CONF=flag",
        ],
        "ulimit -Sn; ulimit -Hn; echo $FROM_CONF",
    );
    assert_eq!(c, pd);
    assert_eq!(c, "500\n600\nflag\n");
}

/// A file cairn cannot read is an error naming it and the line, before
/// anything is created; a missing `$CONTAINERS_CONF` names the variable.
#[test]
fn a_malformed_file_is_an_error_naming_file_and_line() {
    let mut c = Cairn::new().unwrap();
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    let bad = c.scratch().join("bad.conf");
    fs::write(&bad, "[containers]\npids_limit = 1\nshm_size = \n").unwrap();
    c.env("CONTAINERS_CONF", &bad.to_string_lossy());
    let r = c.fails(125, ["run", "--rm", IMAGE, "true"]);
    assert!(
        r.stderr
            .starts_with(&format!("Error: {}:3: ", bad.display())),
        "{r:?}"
    );
    fs::write(&bad, "[containers]\ndefault_capabilities = [\"CAP_FLY\"]\n").unwrap();
    let r = c.fails(125, ["create", IMAGE, "true"]);
    assert!(
        r.stderr
            .contains("default_capabilities: unknown capability \"CAP_FLY\""),
        "{r:?}"
    );
    let missing = c.scratch().join("missing.conf");
    c.env("CONTAINERS_CONF", &missing.to_string_lossy());
    let r = c.fails(125, ["create", IMAGE, "true"]);
    assert!(r.stderr.contains("CONTAINERS_CONF file"), "{r:?}");
    c.unset_env("CONTAINERS_CONF");
    assert_eq!(c.ok(["ps", "-a", "-q"]), "", "nothing was created");
}

/// `no_hosts = true`: the image's own `/etc/hosts`, as with podman.
#[test]
fn no_hosts_leaves_the_images_file() {
    let p = Pair::new();
    p.set_containers_keys("no_hosts = true");
    // This image has none: the container has none either.
    let (c, pd) = p.both(&[], "test -e /etc/hosts && echo present || echo absent");
    assert_eq!(c, pd);
    assert_eq!(c, "absent\n");
}

/// `--network host`: the host's name and its `/etc/hosts` plus
/// `host.containers.internal`, exactly as podman writes them.
#[test]
fn network_host_hostname_and_hosts_as_podman() {
    let p = Pair::new();
    let (c, pd) = p.both(&["--network", "host"], "hostname; cat /etc/hosts");
    assert_eq!(c, pd);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(c.starts_with(&host), "{c}");
    assert!(c.contains("\thost.containers.internal\n"), "{c}");
    // Without --network the name stays the id's, as podman's bridge does.
    let id_host = p.cairn.ok(["run", "--rm", IMAGE, "hostname"]);
    assert_eq!(id_host.trim().len(), 12, "{id_host}");
}

/// `--network none --add-host`: podman's order (added hosts, the host's,
/// host.containers.internal, then `127.0.0.1 HOSTNAME NAME`).
#[test]
fn network_none_hosts_as_podman() {
    let p = Pair::new();
    let script = "sed \"s/$(hostname)/HOSTNAME/\" /etc/hosts";
    let c = p.cairn.ok([
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "hn1",
        "--add-host",
        "db:10.1.1.1",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let pd = p.podman.ok([
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "hn1",
        "--add-host",
        "db:10.1.1.1",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(c, pd);
    assert!(c.starts_with("10.1.1.1\tdb\n"), "{c}");
    assert!(
        c.ends_with("\thost.containers.internal\n127.0.0.1\tHOSTNAME hn1\n"),
        "{c}"
    );
}

/// A numeric `--user` the image does not know: podman's passwd and group
/// lines, and the same identity.
#[test]
fn numeric_user_gets_podmans_passwd_entry() {
    let p = Pair::new();
    for user in ["1000:1000", "1000:5", "4242:tty"] {
        let (c, pd) = p.both(
            &["-u", user],
            "tail -1 /etc/passwd; tail -1 /etc/group; id; echo $HOME",
        );
        assert_eq!(c, pd, "{user}");
    }
    let (c, pd) = p.both(&["-u", "1000"], "tail -1 /etc/passwd; tail -1 /etc/group");
    assert_eq!(c, pd);
    assert_eq!(
        c,
        "1000:*:1000:0:container user:/:/bin/sh\n1000:x:1000:1000\n"
    );
    // The image is not written: a new container without -u has no entry.
    let (c, _) = p.both(&[], "grep -c '^1000:' /etc/passwd || true");
    assert_eq!(c, "0\n");
}

/// `--ipc host`: the host's `/dev/shm` itself.
#[test]
fn ipc_host_shares_the_hosts_dev_shm() {
    let p = Pair::new();
    let name = format!("cairn-ipc-test-{}", std::process::id());
    let host_file = PathBuf::from("/dev/shm").join(&name);
    fs::write(&host_file, "from the host").unwrap();
    let script = format!("cat /dev/shm/{name}");
    let (c, pd) = p.both(&["--ipc", "host"], &script);
    fs::remove_file(&host_file).unwrap();
    assert_eq!(c, pd);
    assert_eq!(c, "from the host");
    // Without it, a private one.
    let r = p.cairn.run(["run", "--rm", IMAGE, "ls", "/dev/shm"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
}

/// `--init`: PID 1's command line is podman's `/run/podman-init -- CMD`,
/// not the host path of cairn's helper and its spec; the init still passes
/// `stop`'s SIGTERM on and the command's status back.
#[test]
fn init_shows_run_podman_init_as_podman() {
    let p = Pair::new();
    let (c, pd) = p.both(&["--init"], "tr '\\0' ' ' < /proc/1/cmdline");
    assert_eq!(c, pd);
    assert_eq!(
        c,
        "/run/podman-init -- sh -c tr '\\0' ' ' < /proc/1/cmdline "
    );
    let r = p
        .cairn
        .run(["run", "--rm", "--init", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7, "{r:?}");
    let id = p.cairn.ok(["run", "-d", "--init", IMAGE, "sleep", "100"]);
    let id = id.trim();
    let started = std::time::Instant::now();
    p.cairn.ok(["stop", "-t", "10", id]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let code = p
        .cairn
        .ok(["inspect", "--format", "{{.State.ExitCode}}", id]);
    assert_eq!(code.trim(), "143");
}
