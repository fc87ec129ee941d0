//! Attacks on the cgroup feature (issue 23), as root in a container (also
//! with single capabilities a user might add), as a hostile image, and as
//! another store or the rootless test user:
//!
//! - reaching a cgroup filesystem from inside to move out of the limits;
//! - processes that hop to new pids as fast as they fork, with no pid
//!   namespace to end them (`--pid host`) and no process limit, racing the
//!   kill of `rm -f`, `stop` and `kill`;
//! - a paused (frozen) container and every verb that could hang on it;
//! - device nodes of the host made with `mknod` on a `dev` tmpfs (v1
//!   `devices` and the v2 eBPF program), a `--device` given read-only then
//!   written, and the host's own device inodes bound into the container
//!   (`/dev/null`, the `/proc` masks, `--device` nodes) chowned or
//!   chmodded from inside;
//! - memory hogs through tmpfs and `/dev/shm`, output floods at the
//!   monitor;
//! - another store's (or the rootless user's) `system check --repair`,
//!   `create` and `rm`, with a forged container record naming the victim's
//!   id, against a running container of this store.
//!
//! Each test fails if the host or the other container is touched. Root
//! only where cgroups are (this host's v1; rootless v1 has none), with the
//! rootless runs where the attack applies to them.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::attack::{self, LoopDevice};
use cairn_tests::cgroups::{
    cgroups_of, env, has_v2, id_of, inspect, read, root_disk, rootless_env, v1_dir, v2, wait_until,
    IMAGE,
};
use cairn_tests::Cairn;

/// Host pids whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .collect()
}

/// SIGKILL every process with `marker` (the test's own cleanup, so a
/// failed run leaves nothing behind), until none is left.
fn kill_all_with(marker: &str) {
    for _ in 0..200 {
        let pids = processes_with(marker);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
        }
        sleep(Duration::from_millis(10));
    }
}

/// Root in the container, with no capability or with one a user might
/// add (but not CAP_SYS_ADMIN, with which root may mount anything): no
/// cgroup filesystem is reachable (the container's `/sys/fs/cgroup` is
/// empty) and none can be mounted, so it cannot move itself out of its
/// cgroup; its processes stay in `/cairn/libpod-ID` with the limit set.
#[test]
fn no_cgroup_filesystem_is_reachable_or_mountable_from_inside() {
    let Some(c) = env() else { return };
    let script = "\
        ls -A /sys/fs/cgroup | wc -l; \
        mkdir -p /c; \
        mount -t cgroup -o pids none /c 2>/dev/null && echo MOUNTED-V1 || echo no-v1; \
        mount -t cgroup2 none /c 2>/dev/null && echo MOUNTED-V2 || echo no-v2; \
        for f in /c/cgroup.procs /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs; do \
          [ -e $f ] && (echo $$ > $f) 2>/dev/null && echo MOVED-VIA-$f; done; \
        grep ':pids:' /proc/self/cgroup";
    for cap in [
        "",
        "MKNOD",
        "NET_ADMIN",
        "SYS_RESOURCE",
        "DAC_READ_SEARCH",
        "SYS_PTRACE",
    ] {
        let mut args = vec!["run", "--rm", "--pids-limit", "50"];
        if !cap.is_empty() {
            args.extend(["--cap-add", cap]);
        }
        args.extend([IMAGE, "sh", "-c", script]);
        let out = c.ok(&args);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "--cap-add {cap:?}: {out}");
        assert_eq!(
            &lines[..3],
            ["0", "no-v1", "no-v2"],
            "--cap-add {cap:?}: {out}"
        );
        assert!(
            lines[3].contains(":pids:/cairn/libpod-"),
            "--cap-add {cap:?}: the process left its cgroup: {out}"
        );
    }
}

/// Perl processes that fork and let the parent exit, as fast as they can
/// (a new pid every few microseconds, so a kill by pid always misses the
/// newest), plus a forker whose children live 50 ms: `--pid host` (no pid
/// namespace whose end kills them) and `--pids-limit -1`. After `rm -f`,
/// `stop` and `kill` none of them is left on the host and no cgroup
/// directory is.
#[test]
fn pid_hoppers_without_a_pid_namespace_die_with_the_container() {
    let Some(c) = env() else { return };
    let marker = attack::unique_tag("cairn-hopper");
    let hopper = format!("perl -e 'while (1) {{ exit if fork }}' {marker}");
    let forker = format!(
        "perl -e 'while (1) {{ my $p = fork; if (defined $p && !$p) {{ select(undef, undef, undef, 0.05); exit }} }}' {marker}"
    );
    let script = format!("for i in $(seq 16); do {hopper} & done; {forker} & exec sleep 1000");
    struct Cleanup<'a>(&'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            kill_all_with(self.0);
        }
    }
    let _cleanup = Cleanup(&marker);
    for (i, end) in [
        &["rm", "-f", "-t", "0"][..],
        &["stop", "-t", "0"][..],
        &["kill"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("hop{i}");
        c.ok([
            "run",
            "-d",
            "--name",
            &name,
            "--pid",
            "host",
            "--pids-limit",
            "-1",
            "--cpus",
            "0.5",
            IMAGE,
            "sh",
            "-c",
            &script,
        ]);
        let id = id_of(&c, &name);
        wait_until("the hoppers run", Duration::from_secs(10), || {
            processes_with(&marker).len() >= 17
        });
        sleep(Duration::from_millis(300));
        let mut args = end.to_vec();
        args.push(&name);
        let t = Instant::now();
        let r = c.run(&args);
        assert_eq!(r.code, 0, "{end:?}: {}", r.stderr);
        // The monitor (kill, stop) or rm itself removes the cgroup.
        let deadline = Instant::now() + Duration::from_secs(15);
        while (!cgroups_of(&id).is_empty() || !processes_with(&marker).is_empty())
            && Instant::now() < deadline
        {
            sleep(Duration::from_millis(50));
        }
        let left = processes_with(&marker);
        assert!(
            left.is_empty(),
            "{end:?}: {} processes of the container survive it on the host (after {:?})",
            left.len(),
            t.elapsed()
        );
        assert!(
            cgroups_of(&id).is_empty(),
            "{end:?}: left {:?}",
            cgroups_of(&id)
        );
        let _ = c.run(["rm", "-f", "-t", "0", &name]);
    }
}

/// A paused container: `exec` is refused at once (it would join a frozen
/// cgroup and hang), `commit --pause` leaves it paused, `top` is refused
/// as podman refuses it, `stats` answers, `update` applies, and `kill` then `rm -f` end it
/// within seconds, cgroup and all.
#[test]
fn a_paused_container_hangs_no_verb() {
    let Some(c) = env() else { return };
    c.ok(["run", "-d", "--name", "frozen", IMAGE, "sleep", "1000"]);
    let id = id_of(&c, "frozen");
    c.ok(["pause", "frozen"]);
    let freezer = v1_dir("freezer", &id).join("freezer.state");
    assert_eq!(read(&freezer), "FROZEN");
    let t = Instant::now();
    let r = c.run(["exec", "frozen", "true"]);
    assert_ne!(r.code, 0, "exec into a paused container ran");
    assert!(r.stderr.contains("running"), "{}", r.stderr);
    c.ok(["commit", "--pause", "frozen", "localhost/frozen:1"]);
    assert_eq!(read(&freezer), "FROZEN", "commit --pause thawed it");
    assert_eq!(inspect(&c, "frozen", "{{.State.Status}}"), "paused");
    // As podman: top refuses a paused container (ps inside would hang).
    let r = c.fails(125, ["top", "frozen"]);
    assert!(r.stderr.contains("paused"), "{}", r.stderr);
    c.ok(["stats", "--no-stream", "frozen"]);
    c.ok(["update", "--pids-limit", "99", "frozen"]);
    assert_eq!(read(&v1_dir("pids", &id).join("pids.max")), "99");
    c.ok(["kill", "frozen"]);
    c.ok(["rm", "-f", "-t", "0", "frozen"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(cgroups_of(&id).is_empty(), "left {:?}", cgroups_of(&id));
}

/// The device nodes an attacker wants, made with `mknod` (CAP_MKNOD
/// added) on a tmpfs mounted `dev`, each opened for reading and for
/// writing (dd with count=0 opens and moves nothing: a tty never blocks):
/// all refused by the device cgroup, the host's console (5:1) included
/// (a container's `/dev/console` is its own pty).
fn device_script(other: &LoopDevice) -> String {
    let (dmaj, dmin) = root_disk();
    let nodes = [
        ("c", 1, 1),    // /dev/mem
        ("c", 1, 2),    // /dev/kmem
        ("c", 1, 4),    // /dev/port
        ("c", 1, 11),   // /dev/kmsg
        ("c", 4, 1),    // /dev/tty1
        ("c", 4, 64),   // /dev/ttyS0
        ("c", 10, 229), // /dev/fuse
        ("c", 10, 237), // /dev/loop-control
        ("c", 10, 232), // /dev/kvm
        ("c", 7, 0),    // /dev/vcs
        ("c", 13, 63),  // /dev/input/mice
        ("c", 5, 1),    // /dev/console
    ];
    let mut s = String::new();
    let mut all: Vec<(String, u64, u64)> = nodes
        .iter()
        .map(|(k, a, b)| ((*k).to_owned(), *a, *b))
        .collect();
    all.push(("b".into(), dmaj, dmin));
    all.push(("b".into(), u64::from(other.major), u64::from(other.minor)));
    for (k, a, b) in all {
        s.push_str(&format!(
            "mknod /t/n {k} {a} {b} || echo MKNOD-FAILED-{k}{a}:{b}; \
             dd if=/t/n of=/dev/null bs=1 count=0 2>/dev/null && echo OPENED-R-{k}{a}:{b}; \
             dd if=/dev/null of=/t/n bs=1 count=0 conv=notrunc 2>/dev/null && echo OPENED-W-{k}{a}:{b}; \
             rm -f /t/n; "
        ));
    }
    // The given device: read allowed, write refused.
    s.push_str(
        "dd if=/dev/given of=/dev/null bs=1 count=0 2>/dev/null && echo given-read; \
         dd if=/dev/null of=/dev/given bs=1 count=0 conv=notrunc 2>/dev/null && echo OPENED-W-given; \
         echo done",
    );
    s
}

/// The device attack on v1 (the `devices` controller) and on v2 (the eBPF
/// program): nothing but `given-read`; the loop devices' contents are
/// unchanged.
#[test]
fn host_device_nodes_stay_closed_on_v1_and_v2() {
    let Some(c) = env() else { return };
    let (given, other) = (
        LoopDevice::new("given").unwrap(),
        LoopDevice::new("other").unwrap(),
    );
    let script = device_script(&other);
    let device = format!("{}:/dev/given:r", given.device.display());
    let args = [
        "run",
        "--rm",
        "--cap-add",
        "MKNOD",
        "--cap-add",
        "SYS_RAWIO",
        "--tmpfs",
        "/t:dev,exec",
        "--device",
        &device,
        IMAGE,
        "sh",
        "-c",
        &script,
    ];
    let out = c.ok(args);
    assert_eq!(out.trim(), "given-read\ndone", "v1: {out}");
    if has_v2() {
        let r = v2(&c, &args);
        assert_eq!(r.code, 0, "v2: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stdout.trim(), "given-read\ndone", "v2: {}", r.stdout);
    } else {
        eprintln!("v2 part skipped: no cgroup2 hierarchy on this host");
    }
    assert!(given.unchanged() && other.unchanged());
}

/// Owner, group, mode and ctime of a host file.
fn inode_of(p: &Path) -> (u32, u32, u32, i64, i64) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid(), m.mode(), m.ctime(), m.ctime_nsec())
}

/// The container's `/dev/null`, `/dev/tty`, the `/proc` paths masked with
/// `/dev/null`, and `--device` nodes are the host's own inodes bound in:
/// the container's root (CAP_CHOWN and CAP_FOWNER are default
/// capabilities) must not chown or chmod them: `chmod 000 /proc/keys`
/// would take the host's `/dev/null` from every user, `chmod 666` of a
/// `--device` node gives the host's disk to every host user. Each change
/// is refused inside (read-only binds: EROFS) and the host's inodes keep
/// their owner, mode and ctime; the nodes still open for writing.
///
/// Was a hole: the binds were writable and the host's inodes changed.
#[test]
fn host_device_inodes_cannot_be_chowned_or_chmodded_from_inside() {
    let Some(c) = env() else { return };
    let dev = LoopDevice::new("chmod").unwrap();
    let before = inode_of(&dev.device);
    let null_before = inode_of(Path::new("/dev/null"));
    // Changes to the values the host has (no harm if they go through) and
    // to others on our own loop device.
    let script = "\
        for f in /dev/null /dev/tty /proc/keys /proc/timer_list /dev/given; do \
          chown 0:0 $f 2>/dev/null && echo CHOWNED-$f; \
          touch -c $f 2>/dev/null && echo TOUCHED-$f; \
        done; \
        chmod 666 /dev/null 2>/dev/null && echo CHMODDED-/dev/null; \
        chmod 666 /dev/given 2>/dev/null && echo CHMODDED-/dev/given; \
        chown 4321:4321 /dev/given 2>/dev/null && echo CHOWNED-given-4321; \
        echo x > /dev/null && echo null-writes; \
        dd if=/dev/null of=/dev/given bs=1 count=0 conv=notrunc 2>/dev/null && echo given-opens-rw";
    let device = format!("{}:/dev/given", dev.device.display());
    let out = c.ok([
        "run", "--rm", "--device", &device, IMAGE, "sh", "-c", script,
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["null-writes", "given-opens-rw"],
        "{out}"
    );
    assert_eq!(
        inode_of(&dev.device),
        before,
        "the host's loop node changed"
    );
    assert_eq!(
        inode_of(Path::new("/dev/null")),
        null_before,
        "the host's /dev/null changed"
    );
    // Rootless: the host's root-owned inodes are not the user's to change
    // (EPERM), read-only or not.
    let r = rootless_env();
    let out = r.ok([
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "for f in /dev/null /proc/keys; do chown 0:0 $f 2>/dev/null && echo CHOWNED-$f; \
         chmod 666 $f 2>/dev/null && echo CHMODDED-$f; done; echo x > /dev/null && echo null-writes",
    ]);
    assert_eq!(out.trim(), "null-writes", "rootless: {out}");
    assert_eq!(inode_of(Path::new("/dev/null")), null_before);
}

/// `--memory 64m` and 256 MiB written to a `--tmpfs` and to a 512 MiB
/// `/dev/shm`: tmpfs pages are charged to the writer's cgroup, so each
/// writer is OOM-killed at the limit and the cgroup's peak stays at it;
/// the container (its PID 1) and its monitor live on.
#[test]
fn memory_hogs_through_tmpfs_and_shm_stay_under_the_limit() {
    let Some(c) = env() else { return };
    c.ok([
        "run",
        "-d",
        "--name",
        "tmpfs-hog",
        "--memory",
        "64m",
        "--shm-size",
        "512m",
        "--tmpfs",
        "/t:size=512m",
        IMAGE,
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/big bs=1M count=256 2>/dev/null; echo tmpfs=$?; \
         rm -f /t/big; \
         dd if=/dev/zero of=/dev/shm/big bs=1M count=256 2>/dev/null; echo shm=$?; \
         echo finished; exec sleep 1000",
    ]);
    let id = id_of(&c, "tmpfs-hog");
    wait_until("both hogs ran", Duration::from_secs(30), || {
        c.ok(["logs", "tmpfs-hog"]).contains("finished")
    });
    let logs = c.ok(["logs", "tmpfs-hog"]);
    assert!(
        logs.contains("tmpfs=137") && logs.contains("shm=137"),
        "a hog was not stopped at the limit: {logs}"
    );
    let peak: u64 = read(&v1_dir("memory", &id).join("memory.max_usage_in_bytes"))
        .parse()
        .unwrap();
    assert!(peak <= 64 << 20, "peak {peak} over the limit");
    assert_eq!(inspect(&c, "tmpfs-hog", "{{.State.Status}}"), "running");
    let monitor = inspect(&c, "tmpfs-hog", "{{.State.ConmonPid}}");
    assert!(Path::new(&format!("/proc/{monitor}")).exists());
    c.ok(["rm", "-f", "-t", "0", "tmpfs-hog"]);
    assert!(cgroups_of(&id).is_empty(), "left {:?}", cgroups_of(&id));
}

/// The monitor's resident memory (kB).
fn rss_kb(pid: &str) -> u64 {
    read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Output as fast as the container can write it, detached (to the log)
/// and attached to a client that never reads: the monitor, outside the
/// container's cgroup, stays small.
#[test]
fn an_output_flood_does_not_grow_the_monitor() {
    let Some(c) = env() else { return };
    let flood = "yes 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'";
    c.ok([
        "run", "-d", "--name", "flood", "--cpus", "0.3", IMAGE, "sh", "-c", flood,
    ]);
    // A client whose stdout is a pipe nobody reads.
    let mut cmd = c.command([
        "run", "--name", "flood2", "--cpus", "0.3", IMAGE, "sh", "-c", flood,
    ]);
    let mut client = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("flood2 runs", Duration::from_secs(10), || {
        c.run(["inspect", "--format", "{{.State.Status}}", "flood2"])
            .stdout
            .trim()
            == "running"
    });
    let monitors = [
        inspect(&c, "flood", "{{.State.ConmonPid}}"),
        inspect(&c, "flood2", "{{.State.ConmonPid}}"),
    ];
    let first: Vec<u64> = monitors.iter().map(|m| rss_kb(m)).collect();
    sleep(Duration::from_secs(2));
    for (m, before) in monitors.iter().zip(first) {
        let now = rss_kb(m);
        assert!(
            now < 32 << 10 && now < before + (8 << 10),
            "monitor {m}: {before} kB, then {now} kB"
        );
    }
    c.ok(["rm", "-f", "-t", "0", "flood", "flood2"]);
    let _ = client.kill();
    let _ = client.wait();
}

/// Another store's commands that sweep stray cgroups (`system check
/// --repair`, `create`, `rm -a -f`) leave this store's running container
/// alone (a record under another id is none of theirs); so do the rootless
/// test user's, even with a container record
/// forged in their own store under the victim's id (which anyone reads
/// from `/sys/fs/cgroup/pids/cairn/`), which makes the victim's cgroup
/// look like a stray of theirs.
#[test]
fn other_stores_never_sweep_our_cgroups() {
    let Some(victim) = env() else { return };
    victim.ok([
        "run",
        "-d",
        "--name",
        "victim",
        "--pids-limit",
        "77",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let id = id_of(&victim, "victim");
    let pid = inspect(&victim, "victim", "{{.State.Pid}}");
    let alive = || {
        Path::new(&format!("/proc/{pid}")).exists()
            && read(&v1_dir("pids", &id).join("pids.max")) == "77"
            && read(&v1_dir("freezer", &id).join("freezer.state")) == "THAWED"
            && read(&v1_dir("pids", &id).join("cgroup.procs"))
                .lines()
                .any(|p| p == pid)
    };
    assert!(alive());
    // Another root store (root could forge records there too: no boundary).
    let other = env().unwrap();
    let report = other.run(["system", "check"]);
    assert!(alive(), "system check: {}", report.stdout);
    let _ = other.run(["system", "check", "--repair"]);
    assert!(alive(), "another store's system check --repair");
    other.ok(["run", "--rm", IMAGE, "true"]);
    let _ = other.run(["rm", "-a", "-f", "-t", "0"]);
    assert!(alive(), "another store's run and rm");
    // The rootless user.
    let rootless = rootless_env();
    forge_record(&rootless, &id);
    let _ = rootless.run(["system", "check", "--repair"]);
    let _ = rootless.run(["create", IMAGE, "true"]);
    let _ = rootless.run(["rm", "-a", "-f", "-t", "0"]);
    assert!(alive(), "the rootless user's sweep");
    assert_eq!(
        victim
            .ok(["inspect", "--format", "{{.State.Status}}", "victim"])
            .trim(),
        "running"
    );
}

/// A container record in `c`'s store under the id `victim` (a created
/// container's directory renamed and its config's id rewritten), owned
/// as the store's user owns its files.
fn forge_record(c: &Cairn, victim: &str) {
    c.ok(["create", "--name", "forged", IMAGE, "true"]);
    let mine = id_of(c, "forged");
    let dir = c.root().join("containers");
    let (from, to) = (dir.join(&mine), dir.join(victim));
    fs::rename(&from, &to).unwrap();
    let config = to.join("config.json");
    let text = fs::read_to_string(&config).unwrap().replace(&mine, victim);
    fs::write(&config, text).unwrap();
    if let Some(u) = c.user() {
        let status = Command::new("chown")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(&config)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
