//! Resource control, end to end through the real binaries with the Debian
//! test image (issue 23): every container in its own cgroup under
//! `/cairn`, the limits podman's flags ask for enforced by the kernel, the
//! device cgroup, `pause`/`unpause`, `stats`, `update`, OOM reporting, and
//! no cgroup left behind after crashes.
//!
//! As root on this host's cgroup v1 controllers, and on cgroup v2 where a
//! private mount namespace can mount the unified hierarchy on
//! `/sys/fs/cgroup` (only controllers not bound to v1 are available there:
//! placement, the freezer, the eBPF device program and CPU time work
//! without any). Rootless on v1, limits are ignored with podman's warning.
//! Every figure is read from the cgroup filesystem by the test itself, not
//! from cairn's report.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cairn_tests::attack::LoopDevice;
use cairn_tests::cgroups::{
    cgroups_of as any_cgroup_of, env, id_of, inspect, read, root_disk, rootless_env, v1_dir, v2,
    wait_until, IMAGE,
};
use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::util::is_root;
use cairn_tests::Cairn;

/// The container's PID 1 (host pid).
fn pid_of(c: &Cairn, name: &str) -> i32 {
    inspect(c, name, "{{.State.Pid}}").parse().unwrap()
}

/// A fork bomb under `--pids-limit 64` stops at 64 processes: the
/// cgroup's own counter never passes it, forks fail inside, and the host
/// (and cairn) keep answering; `rm -f` removes the container and its
/// cgroup in every hierarchy.
#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    let Some(c) = env() else { return };
    c.ok([
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "64",
        IMAGE,
        "bash",
        "-c",
        // A fork bomb (every call forks two more), then forks forever,
        // in the background: a bash whose fork fails may give up and
        // exit, so the container's own process is a `sleep` that never
        // forks, and the `sleep 1000`s the loop started hold the cgroup
        // at its limit whatever becomes of the bombs.
        "b() { b | b & }; (b; while :; do sleep 1000 & done) & exec sleep 100000",
    ]);
    let id = id_of(&c, "bomb");
    let pids = v1_dir("pids", &id);
    assert_eq!(read(&pids.join("pids.max")), "64");
    // The bomb reaches the limit and keeps hitting it.
    wait_until("the bomb hits its limit", Duration::from_secs(20), || {
        read(&pids.join("pids.events"))
            .trim_start_matches("max ")
            .parse::<u64>()
            .unwrap_or(0)
            > 0
    });
    let t = Instant::now();
    let peak = (0..20)
        .map(|_| {
            sleep(Duration::from_millis(50));
            read(&pids.join("pids.current")).parse::<u64>().unwrap()
        })
        .max()
        .unwrap();
    assert!(peak <= 64, "pids.current {peak} > 64");
    assert!(peak >= 32, "the bomb did not fork at all ({peak})");
    // The host answers: cairn lists and inspects while the bomb runs.
    assert!(c.ok(["ps", "--format", "{{.Names}}"]).contains("bomb"));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(inspect(&c, "bomb", "{{.HostConfig.PidsLimit}}"), "64");
    c.ok(["rm", "-f", "-t", "0", "bomb"]);
    assert!(
        any_cgroup_of(&id).is_empty(),
        "left: {:?}",
        any_cgroup_of(&id)
    );
}

/// The default limit is podman's 2048, shown by inspect and written to
/// the cgroup; `--pids-limit -1` means none.
#[test]
fn default_pids_limit_is_podmans() {
    let Some(c) = env() else { return };
    c.ok(["run", "-d", "--name", "dflt", IMAGE, "sleep", "1000"]);
    c.ok([
        "run",
        "-d",
        "--name",
        "nolimit",
        "--pids-limit",
        "-1",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let (d, n) = (id_of(&c, "dflt"), id_of(&c, "nolimit"));
    assert_eq!(inspect(&c, "dflt", "{{.HostConfig.PidsLimit}}"), "2048");
    assert_eq!(read(&v1_dir("pids", &d).join("pids.max")), "2048");
    assert_eq!(read(&v1_dir("pids", &n).join("pids.max")), "max");
    // PID 1 is in the container's cgroup in every hierarchy; the monitor is not.
    let pid = pid_of(&c, "dflt");
    let cg = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for ctl in ["pids", "memory", "devices", "freezer", "cpu", "cpuacct"] {
        let line = cg
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctl))
            })
            .unwrap_or_else(|| panic!("no {ctl} line in {cg}"));
        assert!(line.ends_with(&format!(":/cairn/libpod-{d}")), "{line}");
    }
    let monitor = inspect(&c, "dflt", "{{.State.ConmonPid}}");
    let mcg = read(Path::new(&format!("/proc/{monitor}/cgroup")));
    assert!(
        !mcg.contains("libpod-"),
        "the monitor is in the container's cgroup: {mcg}"
    );
    assert_eq!(
        inspect(&c, "dflt", "{{.State.CgroupPath}}"),
        format!("/cairn/libpod-{d}")
    );
}

/// A memory hog under `--memory 64m` is killed by the kernel's OOM
/// killer: exit 137 and `.State.OOMKilled` true, as podman reports it.
#[test]
fn memory_hog_is_oom_killed() {
    let Some(c) = env() else { return };
    let r = c.run([
        "run",
        "--name",
        "hog",
        "--memory",
        "64m",
        IMAGE,
        "sh",
        "-c",
        // tail keeps the one endless line of /dev/zero in memory.
        "tail /dev/zero",
    ]);
    assert_eq!(r.code, 137, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        inspect(&c, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    assert_eq!(
        inspect(
            &c,
            "hog",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"
        ),
        format!("{} {}", 64 << 20, 128 << 20)
    );
    // A plain kill -9 is not an OOM kill.
    c.ok([
        "run", "-d", "--name", "killed", "--memory", "64m", IMAGE, "sleep", "1000",
    ]);
    c.ok(["kill", "killed"]);
    assert_eq!(c.ok(["wait", "killed"]).trim(), "137");
    assert_eq!(inspect(&c, "killed", "{{.State.OOMKilled}}"), "false");
    let id = id_of(&c, "hog");
    assert!(
        any_cgroup_of(&id).is_empty(),
        "left: {:?}",
        any_cgroup_of(&id)
    );
}

/// `--cpus 0.5` over a busy loop: the cgroup's own CPU time grows by at
/// most half the wall time, the kernel throttling it; after `update --cpus
/// 2` it is never throttled.
#[test]
fn cpus_limit_half_a_core_and_update() {
    let Some(c) = env() else { return };
    c.ok([
        "run",
        "-d",
        "--name",
        "busy",
        "--cpus",
        "0.5",
        IMAGE,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let id = id_of(&c, "busy");
    let usage = v1_dir("cpuacct", &id).join("cpuacct.usage");
    assert_eq!(read(&v1_dir("cpu", &id).join("cpu.cfs_quota_us")), "50000");
    assert_eq!(inspect(&c, "busy", "{{.HostConfig.NanoCpus}}"), "500000000");
    let share = |secs: f64| {
        let (t0, u0) = (Instant::now(), read(&usage).parse::<u64>().unwrap());
        sleep(Duration::from_secs_f64(secs));
        let u1 = read(&usage).parse::<u64>().unwrap();
        (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64
    };
    let throttled = || -> u64 {
        read(&v1_dir("cpu", &id).join("cpu.stat"))
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .unwrap()
            .parse()
            .unwrap()
    };
    sleep(Duration::from_millis(300));
    // At most half a core whatever else runs (other tests may take some
    // of it: the lower bound is only a sanity check), and the kernel
    // throttled the loop to get there.
    let t0 = throttled();
    let half = share(2.0);
    assert!(
        (0.2..=0.6).contains(&half),
        "--cpus 0.5 used {half:.2} of a core"
    );
    assert!(throttled() > t0 + 5, "never throttled under --cpus 0.5");
    // Two CPUs for a one-thread loop: never throttled again.
    assert_eq!(c.ok(["update", "--cpus", "2", "busy"]).trim(), id);
    assert_eq!(read(&v1_dir("cpu", &id).join("cpu.cfs_quota_us")), "200000");
    sleep(Duration::from_millis(200));
    let t1 = throttled();
    let whole = share(1.0);
    assert_eq!(
        throttled(),
        t1,
        "throttled under --cpus 2 ({whole:.2} of a core)"
    );
    assert_eq!(
        inspect(&c, "busy", "{{.HostConfig.NanoCpus}}"),
        "2000000000"
    );
    // update of the memory limit, read back from the kernel.
    c.ok(["update", "--memory", "256m", "--pids-limit", "100", "busy"]);
    assert_eq!(
        read(&v1_dir("memory", &id).join("memory.limit_in_bytes")),
        (256u64 << 20).to_string()
    );
    assert_eq!(read(&v1_dir("pids", &id).join("pids.max")), "100");
    assert_eq!(
        inspect(
            &c,
            "busy",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}"
        ),
        format!("{} 100", 256u64 << 20)
    );
}

/// The attack: root in the container, with CAP_MKNOD added (not in
/// podman's default set), makes a node of the host's root disk, and of another loop device,
/// on a tmpfs mounted with `dev` (so `nodev` does not save the host: only
/// the device cgroup does), and reads them. The device given with
/// `--device` reads; nothing else opens.
#[test]
fn device_cgroup_allows_the_given_device_only() {
    let Some(c) = env() else { return };
    let given = LoopDevice::new("given").expect("loop device");
    let other = LoopDevice::new("other").expect("loop device");
    let (gmaj, gmin) = (given.major, given.minor);
    let (omaj, omin) = (other.major, other.minor);
    // What `head -c 4 | od -c` prints of each device's first bytes.
    let (given4, other4) = (&given.pattern[..4], &other.pattern[..4]);
    let (dmaj, dmin) = root_disk();
    let script = format!(
        "head -c 4 /dev/given | od -An -c | tr -d ' \\n'; echo; \
         mknod /t/disk b {dmaj} {dmin} && echo made-disk; \
         head -c 1 /t/disk >/dev/null 2>&1 && echo READ-HOST-DISK || echo disk-denied; \
         mknod /t/other b {omaj} {omin} && echo made-other; \
         head -c 1 /t/other >/dev/null 2>&1 && echo READ-OTHER-LOOP || echo other-denied; \
         mknod /t/given b {gmaj} {gmin}; head -c 1 /t/given >/dev/null 2>&1 && echo given-by-number; \
         mknod /t/mem c 1 1; head -c 1 /t/mem >/dev/null 2>&1 && echo READ-MEM || echo mem-denied"
    );
    let out = c.ok([
        "run",
        "--rm",
        "--cap-add",
        "MKNOD",
        "--tmpfs",
        "/t:dev,exec",
        "--device",
        &format!("{}:/dev/given", given.device.display()),
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            given4,
            "made-disk",
            "disk-denied",
            "made-other",
            "other-denied",
            "given-by-number",
            "mem-denied"
        ],
        "{out}"
    );
    // The defence is the cgroup: privileged (no device rules, as podman)
    // opens the other loop device through the same path.
    let out = c.ok([
        "run",
        "--rm",
        "--privileged",
        "--tmpfs",
        "/t:dev,exec",
        IMAGE,
        "sh",
        "-c",
        &format!("mknod /t/other b {omaj} {omin} && head -c 4 /t/other | od -An -c | tr -d ' \\n'"),
    ]);
    assert_eq!(
        out.trim(),
        other4,
        "the attack itself does not work here: {out}"
    );
    // --device-cgroup-rule adds access by number.
    let out = c.ok([
        "run",
        "--rm",
        "--cap-add",
        "MKNOD",
        "--tmpfs",
        "/t:dev,exec",
        "--device-cgroup-rule",
        &format!("b {omaj}:{omin} r"),
        IMAGE,
        "sh",
        "-c",
        &format!("mknod /t/other b {omaj} {omin} && head -c 4 /t/other | od -An -c | tr -d ' \\n'"),
    ]);
    assert_eq!(out.trim(), other4, "{out}");
}

/// `pause` freezes a counter, `unpause` resumes it; while paused, ps and
/// inspect say so, exec is refused, and `stop` still stops it.
#[test]
fn pause_freezes_and_unpause_resumes() {
    let Some(c) = env() else { return };
    c.ok([
        "run",
        "-d",
        "--name",
        "counter",
        IMAGE,
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done",
    ]);
    let id = id_of(&c, "counter");
    let n = c.root().join("containers").join(&id).join("upper/tmp/n");
    let value = || {
        fs::read_to_string(&n)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    wait_until("the counter counts", Duration::from_secs(10), || {
        value().is_some_and(|v| v > 3)
    });
    assert_eq!(c.ok(["pause", "counter"]).trim(), "counter");
    assert_eq!(
        read(&v1_dir("freezer", &id).join("freezer.state")),
        "FROZEN"
    );
    let frozen = value();
    sleep(Duration::from_millis(500));
    assert_eq!(value(), frozen, "the counter moved while paused");
    assert_eq!(
        inspect(
            &c,
            "counter",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
        ),
        "paused true true"
    );
    assert!(c.ok(["ps", "--format", "{{.Status}}"]).contains("Paused"));
    let r = c.fails(125, ["pause", "counter"]);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
    assert_ne!(c.run(["exec", "counter", "true"]).code, 0);
    c.ok(["unpause", "counter"]);
    wait_until("the counter resumes", Duration::from_secs(5), || {
        value() > frozen
    });
    assert_eq!(inspect(&c, "counter", "{{.State.Status}}"), "running");
    c.fails(125, ["unpause", "counter"]);
    // A paused container stops.
    c.ok(["pause", "counter"]);
    c.ok(["stop", "-t", "1", "counter"]);
    assert_eq!(inspect(&c, "counter", "{{.State.Status}}"), "exited");
    assert!(any_cgroup_of(&id).is_empty());
}

/// The processes `exec` starts are the container's: in its cgroup (so
/// limited and frozen with it) and listed by `top`.
#[test]
fn exec_joins_the_cgroup() {
    let Some(c) = env() else { return };
    c.ok([
        "run",
        "-d",
        "--name",
        "ex",
        "--pids-limit",
        "8",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let id = id_of(&c, "ex");
    let out = c.ok([
        "exec",
        "ex",
        "sh",
        "-c",
        "cat /proc/self/cgroup | grep pids",
    ]);
    assert!(
        out.trim().ends_with(&format!("/cairn/libpod-{id}")),
        "{out}"
    );
    // exec'd forks count against the limit: 8 in all, so the shell's
    // tenth background sleep cannot be forked.
    let r = c.run([
        "exec",
        "ex",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; echo started",
    ]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("fork"), "{}", r.stderr);
    let current: u64 = read(&v1_dir("pids", &id).join("pids.current"))
        .parse()
        .unwrap();
    assert!(current <= 8, "{current}");
    c.ok(["exec", "-d", "ex", "sleep", "777"]);
    wait_until("top lists the exec'd sleep", Duration::from_secs(5), || {
        c.ok(["top", "ex", "args"]).contains("sleep 777")
    });
}

/// `stats --no-stream` beside podman's for the same container (the same
/// image, command and limits, `--network none`): the same columns, memory
/// limit, PIDs and network figure.
#[test]
fn stats_match_podmans() {
    let Some(c) = env() else { return };
    let podman = Podman::new().expect("podman");
    podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("import the image into podman");
    let args = [
        "run",
        "-d",
        "--name",
        "st",
        "--network",
        "none",
        "--memory",
        "64m",
        IMAGE,
        "sleep",
        "1000",
    ];
    c.ok(args);
    podman.ok(args);
    let ours = c.ok(["stats", "--no-stream"]);
    let theirs = podman.ok(["stats", "--no-stream"]);
    let _ = podman.run(["rm", "-f", "-t", "0", "st"]);
    let split = |s: &str| -> Vec<Vec<String>> {
        s.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let (o, t) = (split(&ours), split(&theirs));
    assert_eq!(o[0], t[0], "headers\nours:\n{ours}\npodman's:\n{theirs}");
    assert_eq!(o.len(), 2, "{ours}");
    let col = |rows: &Vec<Vec<String>>, name: &str| {
        let i = rows[0].iter().position(|h| h == name).unwrap();
        rows[1][i].clone()
    };
    assert_eq!(col(&o, "NAME"), "st");
    let limit = |s: String| s.split(" / ").nth(1).unwrap().to_owned();
    assert_eq!(
        limit(col(&o, "MEM USAGE / LIMIT")),
        limit(col(&t, "MEM USAGE / LIMIT")),
        "{ours}\n{theirs}"
    );
    assert_eq!(col(&o, "PIDS"), col(&t, "PIDS"));
    assert_eq!(col(&o, "NET IO"), col(&t, "NET IO"));
    // The JSON form carries podman's fields and the kernel's figures.
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(["stats", "--no-stream", "--format", "json", "st"])).unwrap();
    let s = &json[0];
    assert_eq!(s["MemLimit"], 64u64 << 20);
    assert_eq!(s["PIDs"], 1);
    assert_eq!(s["Name"], "st");
    let id = id_of(&c, "st");
    assert_eq!(s["ContainerID"], id.as_str());
    let usage: u64 = read(&v1_dir("cpuacct", &id).join("cpuacct.usage"))
        .parse()
        .unwrap();
    assert!(s["CPUNano"].as_u64().unwrap() <= usage);
    let line = c.ok([
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDS}} {{.MemUsage}}",
        "st",
    ]);
    assert!(
        line.starts_with("st 1 ") && line.trim_end().ends_with("/ 67.11MB"),
        "{line}"
    );
    // A stopped container has no stats.
    c.ok(["stop", "-t", "0", "st"]);
    let r = c.fails(125, ["stats", "--no-stream", "st"]);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
}

/// Eight containers with limits created, started and removed at once,
/// then eight more whose monitors are killed with SIGKILL: no cgroup of
/// any of them is left after the next command, and `system check` finds
/// none (after it reports and repairs the ones a killed monitor left).
#[test]
fn concurrent_lifecycles_and_killed_monitors_leave_no_cgroup() {
    let Some(c) = env() else { return };
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let cmd = c.command([
                "run",
                "--rm",
                "--name",
                &format!("par{i}"),
                "--memory",
                "32m",
                "--cpus",
                "0.5",
                "--pids-limit",
                "50",
                IMAGE,
                "sh",
                "-c",
                "echo ok",
            ]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                cmd.output().unwrap()
            })
        })
        .collect();
    for t in threads {
        let out = t.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
    let mut ids = Vec::new();
    for i in 0..8 {
        c.ok([
            "run",
            "-d",
            "--name",
            &format!("k{i}"),
            "--memory",
            "32m",
            IMAGE,
            "sleep",
            "1000",
        ]);
        ids.push(id_of(&c, &format!("k{i}")));
    }
    for i in 0..8 {
        let name = format!("k{i}");
        let (monitor, pid) = (
            inspect(&c, &name, "{{.State.ConmonPid}}"),
            pid_of(&c, &name),
        );
        Command::new("kill")
            .args(["-9", &monitor])
            .status()
            .unwrap();
        // The container dies with its monitor gone only if killed too: as
        // after a crash of both.
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    for id in &ids {
        let id = id.clone();
        wait_until(
            "the killed containers exit",
            Duration::from_secs(10),
            || {
                fs::read_to_string(v1_dir("pids", &id).join("cgroup.procs"))
                    .is_ok_and(|s| s.trim().is_empty())
            },
        );
    }
    assert!(
        !any_cgroup_of(&ids[0]).is_empty(),
        "the monitor removed its cgroup after all"
    );
    let report = c.run(["system", "check"]);
    assert!(
        report
            .stdout
            .contains(&format!("stray cgroup /cairn/libpod-{}", ids[0])),
        "{}",
        report.stdout
    );
    // The next command sweeps them.
    c.ok(["create", "--name", "next", IMAGE, "true"]);
    for id in &ids {
        assert!(
            any_cgroup_of(id).is_empty(),
            "left: {:?}",
            any_cgroup_of(id)
        );
    }
    let report = c.run(["system", "check"]);
    assert!(!report.stdout.contains("stray cgroup"), "{}", report.stdout);
}

/// Flags podman refuses are refused the same way, with the flag named.
#[test]
fn bad_limits_are_one_line_errors() {
    let Some(c) = env() else { return };
    for (args, want) in [
        (vec!["--memory", "12q"], "--memory"),
        (vec!["--memory", "1m"], "minimum"),
        (vec!["--memory-swap", "1g"], "needs --memory"),
        (vec!["--cpus", "1", "--cpu-quota", "50000"], "--cpus cannot"),
        (vec!["--cpuset-cpus", "x"], "--cpuset-cpus"),
        (
            vec!["--device-cgroup-rule", "c 1:3 rwx"],
            "--device-cgroup-rule",
        ),
        (vec!["--cgroups", "sometimes"], "cgroups"),
        (vec!["--cpuset-cpus", "63"], "cpuset"),
    ] {
        let mut full = vec!["run", "--rm", "--name", "bad"];
        full.extend(&args);
        full.extend([IMAGE, "true"]);
        let r = c.fails(125, &full);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    // Nothing was left of the failed starts.
    let ids = c.ok(["ps", "-a", "-q", "--no-trunc"]);
    for id in ids.lines() {
        assert!(any_cgroup_of(id).is_empty());
    }
    // --cgroups disabled: no cgroup at all, and no limit either.
    c.ok([
        "run",
        "-d",
        "--name",
        "free",
        "--cgroups",
        "disabled",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let id = id_of(&c, "free");
    assert!(any_cgroup_of(&id).is_empty());
    let r = c.fails(125, ["pause", "free"]);
    assert!(r.stderr.contains("no cgroup"), "{}", r.stderr);
}

/// Rootless on cgroup v1 (this host): podman's warning, the container
/// runs without limits; `--cgroups enabled` with a limit is an error;
/// pause says why it cannot.
#[test]
fn rootless_on_v1_warns_and_runs() {
    if !is_root() {
        eprintln!("skipped: the rootless test user is set up by root");
        return;
    }
    let c = rootless_env();
    let r = c.run(["run", "--rm", "--memory", "64m", IMAGE, "echo", "ran"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "ran");
    assert!(
        r.stderr.contains(
            "Resource limits are not supported and ignored on cgroups V1 rootless systems"
        ),
        "{}",
        r.stderr
    );
    // No limit asked: no warning.
    let r = c.run(["run", "--rm", IMAGE, "echo", "ran"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = c.fails(
        125,
        [
            "run",
            "--rm",
            "--cgroups",
            "enabled",
            "--pids-limit",
            "10",
            IMAGE,
            "true",
        ],
    );
    assert!(r.stderr.contains("cannot be enforced"), "{}", r.stderr);
    c.ok(["run", "-d", "--name", "rl", IMAGE, "sleep", "1000"]);
    let r = c.fails(125, ["pause", "rl"]);
    assert!(r.stderr.contains("no cgroup"), "{}", r.stderr);
}

fn v2_ok(c: &Cairn, args: &[&str]) -> String {
    let r = v2(c, args);
    assert_eq!(r.code, 0, "cairn {args:?} on v2: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// On cgroup v2: the container is placed in `/cairn/libpod-ID` with a
/// private cgroup namespace (podman's v2 default), pause freezes it
/// through `cgroup.freeze`, stats read `cpu.stat`, the eBPF device
/// program stops the mknod attack, and an asked limit whose controller
/// is not available is an error naming it.
#[test]
fn cgroup_v2_placement_freezer_devices_stats() {
    let Some(c) = env() else { return };
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.controllers").exists() {
        eprintln!("skipped: no cgroup2 hierarchy on this host");
        return;
    }
    // The container's own v2 cgroup is the root of its cgroup namespace
    // (podman's default on v2), though it is /cairn/libpod-ID on the host.
    // (The v1 lines of this hybrid host are not the container's business.)
    let out = v2_ok(&c, &["run", "--rm", IMAGE, "cat", "/proc/self/cgroup"]);
    assert!(
        out.lines().any(|l| l == "0::/"),
        "cgroupns private on v2: {out}"
    );
    v2_ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "v2c",
            IMAGE,
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    let id = v2_ok(&c, &["inspect", "--format", "{{.Id}}", "v2c"])
        .trim()
        .to_owned();
    let dir = unified.join("cairn").join(format!("libpod-{id}"));
    let pid = v2_ok(&c, &["inspect", "--format", "{{.State.Pid}}", "v2c"])
        .trim()
        .to_owned();
    assert!(read(&dir.join("cgroup.procs")).lines().any(|p| p == pid));
    sleep(Duration::from_millis(300));
    v2_ok(&c, &["pause", "v2c"]);
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    let usage = |d: &Path| -> u64 {
        read(&d.join("cpu.stat"))
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let u0 = usage(&dir);
    sleep(Duration::from_millis(300));
    assert_eq!(usage(&dir), u0, "CPU time grew while frozen");
    v2_ok(&c, &["unpause", "v2c"]);
    let json: serde_json::Value = serde_json::from_str(&v2_ok(
        &c,
        &["stats", "--no-stream", "--format", "json", "v2c"],
    ))
    .unwrap();
    assert!(json[0]["CPUNano"].as_u64().unwrap() >= u0 * 1000);
    v2_ok(&c, &["rm", "-f", "-t", "0", "v2c"]);
    assert!(!dir.exists(), "{} left", dir.display());
    // The device attack on v2, stopped by the eBPF program.
    let (dmaj, dmin) = root_disk();
    let out = v2_ok(&c, &[
        "run", "--rm", "--cap-add", "MKNOD", "--tmpfs", "/t:dev,exec", IMAGE, "sh", "-c",
        &format!("mknod /t/disk b {dmaj} {dmin} && echo made; head -c 1 /t/disk >/dev/null 2>&1 && echo READ-HOST-DISK || echo denied; head -c 1 /dev/null; echo null-ok"),
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["made", "denied", "null-ok"],
        "{out}"
    );
    // Only controllers not bound to v1 exist here: an asked memory limit
    // cannot be set and says so; the default pids limit is dropped quietly.
    let has_memory = read(&unified.join("cgroup.controllers"))
        .split_whitespace()
        .any(|c| c == "memory");
    if !has_memory {
        let r = v2(&c, &["run", "--rm", "--memory", "64m", IMAGE, "true"]);
        assert_eq!(r.code, 125, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("memory controller"), "{}", r.stderr);
    }
}

/// A cgroup v2 subtree delegated to the rootless test user, as systemd
/// delegates `user@UID.service`: the directory and its `cgroup.procs`,
/// `cgroup.subtree_control` and `cgroup.threads` are the user's, with a
/// `session` child (the user's own processes) the same. Removed on drop.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(unified: &Path, uid: u32, gid: u32) -> Delegated {
        let dir = unified.join(format!("cairn-test-deleg-{}", std::process::id()));
        for d in [dir.clone(), dir.join("session")] {
            fs::create_dir(&d).unwrap();
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                std::os::unix::fs::chown(d.join(f), Some(uid), Some(gid)).unwrap();
            }
        }
        Delegated { dir }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Children first (the containers' cgroups, if any were left).
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            for p in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
            let _ = fs::remove_dir(d);
        }
    }
}

/// Rootless cairn on cgroup v2 where the user has a delegated subtree: its
/// command runs in a private mount namespace with the unified hierarchy on
/// `/sys/fs/cgroup`, moved into the delegated `session` cgroup, then as the
/// user.
fn v2_rootless(c: &Cairn, deleg: &Path, args: &[&str]) -> cairn_tests::cairn::Run {
    let inner = c.command(args);
    let rel = deleg.strip_prefix("/sys/fs/cgroup/unified").unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo $$ > /sys/fs/cgroup/{}/session/cgroup.procs && exec \"$0\" \"$@\"",
            rel.display()
        ))
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    cairn_tests::cairn::Run::from(cmd.output().unwrap())
}

/// Rootless on cgroup v2 with a delegated subtree: the container gets a
/// cgroup below the user's own, `pause` freezes it, a limit whose
/// controller is not delegated is dropped with a warning naming it, and
/// the cgroup is gone after `rm`.
#[test]
fn rootless_on_v2_with_a_delegated_subtree() {
    if !is_root() {
        eprintln!("skipped: the delegation is set up by root");
        return;
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.controllers").exists() {
        eprintln!("skipped: no cgroup2 hierarchy on this host");
        return;
    }
    let c = rootless_env();
    let user = c.user().unwrap();
    let deleg = Delegated::new(unified, user.uid, user.gid);
    let ok = |args: &[&str]| {
        let r = v2_rootless(&c, &deleg.dir, args);
        assert_eq!(
            r.code, 0,
            "rootless cairn {args:?} on v2: {}{}",
            r.stdout, r.stderr
        );
        r
    };
    ok(&["run", "-d", "--name", "rl2", IMAGE, "sleep", "1000"]);
    let id = ok(&["inspect", "--format", "{{.Id}}", "rl2"])
        .stdout
        .trim()
        .to_owned();
    let dir = deleg.dir.join("session").join(format!("libpod-{id}"));
    assert!(dir.is_dir(), "no cgroup {}", dir.display());
    let pid = ok(&["inspect", "--format", "{{.State.Pid}}", "rl2"])
        .stdout
        .trim()
        .to_owned();
    assert!(read(&dir.join("cgroup.procs")).lines().any(|p| p == pid));
    ok(&["pause", "rl2"]);
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    assert_eq!(
        ok(&["inspect", "--format", "{{.State.Status}}", "rl2"])
            .stdout
            .trim(),
        "paused"
    );
    ok(&["unpause", "rl2"]);
    assert!(read(&dir.join("cgroup.events")).contains("frozen 0"));
    ok(&["rm", "-f", "-t", "0", "rl2"]);
    assert!(!dir.exists(), "{} left", dir.display());
    // No memory controller is delegated here (it is bound to v1 on this
    // host): the limit is dropped, and said so.
    let has_memory = read(&deleg.dir.join("cgroup.controllers"))
        .split_whitespace()
        .any(|c| c == "memory");
    if !has_memory {
        let r = ok(&["run", "--rm", "--memory", "64m", IMAGE, "echo", "ran"]);
        assert_eq!(r.stdout.trim(), "ran");
        assert!(
            r.stderr.contains("memory controller is not delegated"),
            "{}",
            r.stderr
        );
    }
}
