//! End-to-end tests of cairn-mount, cairn-pivot and cairn-enter: the real
//! binaries, chained under `unshare` on the real Debian image root (overlay),
//! asserting from inside the container. They need root (see
//! `support::root_or_skip`); each container lives in its own mount, pid, UTS
//! and IPC namespaces, so the test process's mount table is never touched,
//! and every process is killed and reaped by the time a test returns.

mod monitor;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cairn_runtime::mountinfo::{self, MountInfo};
use cairn_runtime::protocol::{DEFAULT_MASKED, DEFAULT_READONLY};
use support::*;

fn find<'a>(mounts: &'a [MountInfo], point: &str) -> &'a MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == point)
        .unwrap_or_else(|| {
            panic!(
                "no mount at {point}; mounts: {:?}",
                mounts.iter().map(|m| &m.mount_point).collect::<Vec<_>>()
            )
        })
}

fn assert_opts(m: &MountInfo, fstype: &str, opts: &[&str], super_opts: &[&str]) {
    assert_eq!(m.fstype, fstype, "{}: fstype", m.mount_point);
    for o in opts {
        assert!(
            m.has(o),
            "{}: option {o} missing in {:?}",
            m.mount_point,
            m.options
        );
    }
    for o in super_opts {
        assert!(
            m.has_super(o),
            "{}: super option {o} missing in {:?}",
            m.mount_point,
            m.super_options
        );
    }
}

/// The host's processes invisible, the expected mounts and nothing else,
/// with the expected flags, a minimal /dev, masked and read-only paths that
/// really are, hostname, and writes to the root landing in the upper dir.
#[test]
fn default_container_layout() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.pivot(&["--hostname", "box"]);
    let out = c.sh("echo '== mountinfo =='; cat /proc/self/mountinfo
         echo '== dev =='; ls -A /dev
         echo '== shm =='; stat -c %a /dev/shm
         echo '== ro =='; (echo x > /proc/sys/kernel/hostname) 2>&1; (touch /sys/cairn) 2>&1
         echo '== masked =='; wc -c < /proc/keys; ls -A /sys/firmware | wc -l
         echo '== pids =='; ls /proc | grep -E '^[0-9]+$'
         echo '== self =='; echo $$
         echo '== hostname =='; hostname
         echo '== signals =='; grep -E '^Sig(Ign|Blk):' /proc/self/status
         echo hello > /cairn-new-file");
    out.ok();
    assert_default_mounts(&mountinfo::parse(&out.section("mountinfo")));
    assert_minimal_dev_and_masked_paths(&out);
    assert_own_processes_hostname_and_signals(&out);
    assert_eq!(
        std::fs::read_to_string(c.path("upper/cairn-new-file")).unwrap(),
        "hello\n",
        "writes go to the upper dir"
    );
}

/// Exactly the standard mount points plus the masked and read-only paths
/// this kernel has, each with its flags, none shared.
fn assert_default_mounts(mounts: &[MountInfo]) {
    // Exactly these mount points: the standard ones plus the masked and
    // read-only paths this kernel has (the container's procfs and sysfs show
    // the same kernel's entries as the host's).
    let mut want: Vec<String> = [
        "/",
        "/proc",
        "/dev",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in DEFAULT_MASKED.iter().chain(DEFAULT_READONLY) {
        if Path::new(p).exists() {
            want.push(p.to_string());
        }
    }
    let got: Vec<String> = mounts.iter().map(|m| m.mount_point.clone()).collect();
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>(),
        "mount points"
    );
    assert_eq!(got.len(), want.len(), "no mount point twice: {got:?}");

    assert_opts(find(mounts, "/"), "overlay", &["rw"], &[]);
    assert_opts(
        find(mounts, "/proc"),
        "proc",
        &["rw", "nosuid", "nodev", "noexec"],
        &[],
    );
    assert_opts(
        find(mounts, "/dev"),
        "tmpfs",
        &["nosuid"],
        &["mode=755", "size=65536k"],
    );
    for n in ["null", "zero", "full", "random", "urandom", "tty"] {
        let m = find(mounts, &format!("/dev/{n}"));
        assert_eq!(
            (m.fstype.as_str(), m.root.as_str()),
            ("devtmpfs", format!("/{n}").as_str()),
            "/dev/{n} is the host's node"
        );
    }
    assert_opts(
        find(mounts, "/dev/pts"),
        "devpts",
        &["nosuid", "noexec"],
        &["gid=5", "mode=620", "ptmxmode=666"],
    );
    assert_opts(
        find(mounts, "/dev/shm"),
        "tmpfs",
        &["nosuid", "nodev", "noexec"],
        &["size=65536k"],
    );
    assert_opts(
        find(mounts, "/dev/mqueue"),
        "mqueue",
        &["nosuid", "nodev", "noexec"],
        &[],
    );
    assert_opts(
        find(mounts, "/sys"),
        "sysfs",
        &["ro", "nosuid", "nodev", "noexec"],
        &[],
    );
    assert_opts(find(mounts, "/sys/firmware"), "tmpfs", &["ro"], &[]);
    assert_opts(find(mounts, "/proc/sys"), "proc", &["ro"], &[]);
    assert_eq!(
        find(mounts, "/proc/keys").root,
        "/null",
        "/proc/keys masked by /dev/null"
    );
    for m in mounts {
        assert!(
            m.propagation.is_empty(),
            "{} is not private: {:?}",
            m.mount_point,
            m.propagation
        );
    }
}

/// `/dev` holds only the expected nodes; `/dev/shm` is 1777; `/proc/sys`
/// and `/sys` refuse writes; masked paths are empty.
fn assert_minimal_dev_and_masked_paths(out: &Output) {
    let dev = out.section("dev");
    assert_eq!(
        dev.lines().map(str::trim).collect::<Vec<_>>(),
        [
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"
        ],
        "/dev holds only the expected nodes"
    );
    assert_eq!(out.section("shm").trim(), "1777");
    let ro = out.section("ro");
    assert_eq!(
        ro.matches("Read-only file system").count(),
        2,
        "/proc/sys and /sys writes must fail with EROFS:\n{ro}"
    );
    assert_eq!(
        out.section("masked").split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "masked paths are empty"
    );
}

/// Only the container's processes are visible, the command is pid 1, the
/// hostname is set, and no signal is ignored or blocked that Rust's
/// start-up changed.
fn assert_own_processes_hostname_and_signals(out: &Output) {
    let pids: Vec<u32> = out
        .section("pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        pids.contains(&1) && pids.len() <= 4,
        "only the container's own processes: {pids:?}"
    );
    assert!(
        !pids.contains(&std::process::id()),
        "the test process is visible"
    );
    assert_eq!(
        out.section("self").trim(),
        "1",
        "the command is pid 1 of its pid namespace"
    );
    assert_eq!(out.section("hostname").trim(), "box");
    // Rust ignores SIGPIPE at start-up; that must not leak into the
    // container. (Other ignored signals are the caller's: glibc's
    // posix_spawn in this multi-threaded test ignores its internal 32 and 33.)
    let signals = out.section("signals");
    let ignored = u64::from_str_radix(
        signals
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    assert_eq!(
        ignored & (1 << 12),
        0,
        "SIGPIPE ignored in the container: {signals}"
    );
    assert!(signals.contains("SigBlk:\t0000000000000000"), "{signals}");
}

/// pivot_root leaves nothing of the old root: no host mount, no stray
/// directory, / is the container's; and the host's mount table is unchanged.
#[test]
fn pivot_leaves_no_trace_of_the_old_root() {
    if !root_or_skip() {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let c = Container::new();
    let out = c.sh("echo '== mountinfo =='; cat /proc/1/mountinfo
         echo '== ls =='; ls -A /
         echo '== root =='; readlink /proc/1/root; stat -c %i /");
    out.ok();
    let points = mount_points(&out.section("mountinfo"));
    let host_dir = c.dir.path().display().to_string();
    let image = image_root().display().to_string();
    for p in &points {
        assert!(
            p == "/"
                || ["/proc", "/dev", "/sys"]
                    .iter()
                    .any(|top| p == top || p.starts_with(&format!("{top}/"))),
            "mount point {p} is not part of the container (old root left behind?)"
        );
        assert!(
            !p.contains(&host_dir) && !p.contains(&image),
            "host path {p} visible"
        );
    }
    let listing: BTreeSet<String> = out.section("ls").lines().map(str::to_owned).collect();
    let image_listing: BTreeSet<String> = std::fs::read_dir(image_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listing, image_listing,
        "/ is the image root and nothing else (no put_old directory)"
    );
    assert_eq!(out.section("root").lines().next(), Some("/"));
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !after.contains(&host_dir),
        "the host mount table shows the container's mounts:\n{after}"
    );
    assert_eq!(
        before
            .lines()
            .filter(|l| l.contains("/tmp/cairn-helpers-"))
            .count(),
        after.lines().filter(|l| l.contains(&host_dir)).count()
    );
}

/// cairn-pivot on its own, on a directory that is not a mount point (it
/// binds it onto itself first), read-only: the image cache is not written.
#[test]
fn pivot_alone_into_a_plain_directory() {
    if !root_or_skip() {
        return;
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--uts",
        "--kill-child",
        PIVOT,
        "--root",
    ])
    .arg(image_root())
    .args([
        "--hostname",
        "plain",
        "--",
        "/bin/sh",
        "-c",
        "hostname; ls -A / | wc -l; test -e /proc/self || echo no-proc",
    ]);
    let out = run(cmd);
    out.ok();
    let entries = std::fs::read_dir(image_root()).unwrap().count();
    assert_eq!(out.stdout, format!("plain\n{entries}\nno-proc\n"));
}

/// uid, gid, supplementary groups from the container's own /etc/passwd and
/// /etc/group (a user the host does not have), capabilities (podman's 11,
/// privileged, add/drop), no_new_privs, workdir and environment.
#[test]
fn identity_groups_capabilities_environment() {
    if !root_or_skip() {
        return;
    }
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !host_passwd.contains("cairnuser"),
        "the host must not know the test user"
    );
    let all_caps = u64::from_str_radix(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    for case in identity_cases(all_caps) {
        check_identity(&case);
    }
}

/// One identity to run the command as, and what it must then show.
struct IdentityCase {
    args: &'static [&'static str],
    uid: &'static str,
    gid: &'static str,
    groups: &'static str,
    eff: u64,
    bnd: u64,
    nnp: &'static str,
    name: &'static str,
}

/// The identities `identity_groups_capabilities_environment` runs: root
/// with podman's capabilities, names and ids from the container's files,
/// privileged, and an explicit capability set with no_new_privs.
fn identity_cases(all_caps: u64) -> Vec<IdentityCase> {
    let default = 0x8004_05fb;
    vec![
        IdentityCase {
            args: &[],
            uid: "0 0 0 0",
            gid: "0 0 0 0",
            groups: "0",
            eff: default,
            bnd: default,
            nnp: "0",
            name: "root",
        },
        IdentityCase {
            args: &["--user", "cairnuser"],
            uid: "4321 4321 4321 4321",
            gid: "4321 4321 4321 4321",
            groups: "4321 4400",
            eff: 0,
            bnd: default,
            nnp: "0",
            name: "cairnuser",
        },
        IdentityCase {
            args: &[
                "--user",
                "cairnuser:cairnother",
                "--group-add",
                "4600",
                "--group-add",
                "cairngrp",
            ],
            uid: "4321 4321 4321 4321",
            gid: "4500 4500 4500 4500",
            groups: "4321 4400 4500 4600",
            eff: 0,
            bnd: default,
            nnp: "0",
            name: "cairnuser",
        },
        IdentityCase {
            args: &["--user", "777:778"],
            uid: "777 777 777 777",
            gid: "778 778 778 778",
            groups: "778",
            eff: 0,
            bnd: default,
            nnp: "0",
            name: "",
        },
        IdentityCase {
            args: &["--privileged"],
            uid: "0 0 0 0",
            gid: "0 0 0 0",
            groups: "0",
            eff: all_caps,
            bnd: all_caps,
            nnp: "0",
            name: "root",
        },
        IdentityCase {
            args: &[
                "--cap-drop",
                "ALL",
                "--cap-add",
                "NET_ADMIN",
                "--cap-add",
                "cap_kill",
                "--no-new-privs",
            ],
            uid: "0 0 0 0",
            gid: "0 0 0 0",
            groups: "0",
            eff: 1 << 12 | 1 << 5,
            bnd: 1 << 12 | 1 << 5,
            nnp: "1",
            name: "root",
        },
    ]
}

/// Runs the command as `case` says and checks ids, groups, capabilities,
/// no_new_privs, workdir and environment.
fn check_identity(case: &IdentityCase) {
    let script = "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
                  echo \"Pwd: $(pwd)\"; echo \"Home: $HOME\"; echo \"Path: $PATH\"; echo \"Foo: $FOO\"; echo \"Name: $(id -un)\"";
    let field = |out: &Output, name: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing in\n{}", out.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hex = |v: u64| format!("{v:016x}");
    let mut c = Container::new();
    c.with_test_users()
        .pivot(&["--workdir", "/usr/share", "-e", "FOO=bar"])
        .pivot(case.args);
    let out = c.sh(script);
    out.ok();
    let what = format!("{:?}", case.args);
    assert_eq!(field(&out, "Uid"), case.uid, "{what}");
    assert_eq!(field(&out, "Gid"), case.gid, "{what}");
    let mut groups: Vec<u32> = field(&out, "Groups")
        .split(' ')
        .filter_map(|g| g.parse().ok())
        .collect();
    groups.sort_unstable();
    assert_eq!(
        groups
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        case.groups,
        "{what}"
    );
    assert_eq!(field(&out, "CapEff"), hex(case.eff), "{what}");
    assert_eq!(field(&out, "CapBnd"), hex(case.bnd), "{what}");
    assert_eq!(field(&out, "CapInh"), hex(0), "{what}");
    assert_eq!(field(&out, "CapAmb"), hex(0), "{what}");
    assert_eq!(field(&out, "NoNewPrivs"), case.nnp, "{what}");
    assert_eq!(field(&out, "Pwd"), "/usr/share", "{what}");
    assert_eq!(field(&out, "Foo"), "bar", "{what}");
    assert_eq!(
        field(&out, "Path"),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "{what}"
    );
    if !case.name.is_empty() {
        assert_eq!(field(&out, "Name"), case.name, "{what}");
    }
    if case.name == "cairnuser" {
        assert_eq!(
            field(&out, "Home"),
            "/home/cairnuser",
            "HOME from the container's passwd"
        );
    }
}

/// Names the container does not have are errors that say where we looked.
#[test]
fn unknown_user_and_workdir_are_errors() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.pivot(&["--user", "cairnuser"]);
    c.sh("true").fails(
        125,
        "user \"cairnuser\" not found in the container's /etc/passwd",
    );
    let mut c = Container::new();
    c.pivot(&["--workdir", "/nonexistent"]);
    // podman's 126 for a missing working directory.
    c.sh("true").fails(
        126,
        "workdir \"/nonexistent\" does not exist in the container",
    );
}

/// `ro` binds are really read-only, submounts included; flags, rw binds,
/// file binds, non-recursive binds and tmpfs size/mode.
#[test]
fn bind_mounts_and_tmpfs() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    let (a, b, f) = (c.path("a"), c.path("b"), c.path("file"));
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::write(a.join("f"), "outer\n").unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(&f, "from the host\n").unwrap();
    // A submount under the ro source, made in the container's namespace only.
    c.pre = format!(
        "mount -t tmpfs cairn-sub {a}/sub && echo inner > {a}/sub/g",
        a = a.display()
    );
    let (a, b, f) = (
        a.display().to_string(),
        b.display().to_string(),
        f.display().to_string(),
    );
    c.mount(&[
        "--bind",
        &format!("{a}:/data:ro"),
        "--bind",
        &format!("{a}:/flat:norecursive"),
        "--bind",
        &format!("{b}:/rw"),
        "--bind",
        &format!("{b}:/flags:nosuid,nodev,noexec"),
        "--bind",
        &format!("{f}:/etc/cairn-file:ro"),
        "--tmpfs",
        "/scratch:size=1m,mode=700",
    ]);
    let out = c.sh(
        "echo '== ro =='; (echo x > /data/f) 2>&1; (echo x > /data/sub/g) 2>&1; (echo y > /etc/cairn-file) 2>&1; cat /data/f /data/sub/g /etc/cairn-file
         echo '== flat =='; ls -A /flat/sub | wc -l
         echo '== rw =='; echo hello > /rw/new && echo written
         echo '== scratch =='; stat -c %a /scratch
         echo '== mountinfo =='; cat /proc/self/mountinfo",
    );
    out.ok();
    let ro = out.section("ro");
    assert_eq!(ro.matches("Read-only file system").count(), 3, "{ro}");
    assert!(
        ro.contains("outer") && ro.contains("inner") && ro.contains("from the host"),
        "{ro}"
    );
    assert_eq!(
        out.section("flat").trim(),
        "0",
        "a non-recursive bind does not carry submounts"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&b).join("new")).unwrap(),
        "hello\n"
    );
    assert_eq!(out.section("scratch").trim(), "700");
    let mounts = mountinfo::parse(&out.section("mountinfo"));
    assert!(
        find(&mounts, "/data").has("ro") && find(&mounts, "/data/sub").has("ro"),
        "recursive read-only"
    );
    assert!(find(&mounts, "/rw").has("rw"));
    assert_opts(
        find(&mounts, "/flags"),
        find(&mounts, "/rw").fstype.as_str(),
        &["nosuid", "nodev", "noexec"],
        &[],
    );
    assert_opts(
        find(&mounts, "/scratch"),
        "tmpfs",
        &["nosuid", "nodev"],
        &["size=1024k", "mode=700"],
    );
    assert!(find(&mounts, "/etc/cairn-file").has("ro"));
}

/// --read-only: the root refuses writes, /tmp (--tmp), /dev/shm and /run
/// stay writable.
#[test]
fn read_only_root() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.mount(&["--read-only", "--tmp", "--run", "tmpfs"]);
    let out = c.sh(
        "(touch /cairn) 2>&1; touch /tmp/x && echo tmp-ok; touch /dev/shm/x && echo shm-ok; touch /run/x && echo run-ok
         grep ' / / ' /proc/self/mountinfo",
    );
    out.ok();
    assert!(
        out.stdout.contains("Read-only file system"),
        "{}",
        out.stdout
    );
    for ok in ["tmp-ok", "shm-ok", "run-ok"] {
        assert!(out.stdout.contains(ok), "{ok}: {}", out.stdout);
    }
    let root = mountinfo::parse(&out.stdout);
    assert!(root[0].has("ro"), "{:?}", root[0]);
    assert!(!c.path("upper/cairn").exists());
}

/// An image's symlink can never redirect a mount out of the root: targets
/// are resolved inside it, a dangling symlink is refused rather than created
/// through, `..` is refused, and the host directory stays untouched.
#[test]
fn symlink_escape_is_refused() {
    if !root_or_skip() {
        return;
    }
    let probe = Container::new();
    let host = probe.path("hostdir");
    std::fs::create_dir(&host).unwrap();
    let src = probe.path("src");
    std::fs::create_dir(&src).unwrap();
    let host_s = host.display().to_string();
    let relative_escape = format!("../../../../../../..{host_s}");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "absolute symlink, bind below it",
            vec!["--bind".into(), format!("{}:/escape/sub", src.display())],
        ),
        (
            "absolute symlink as the target",
            vec!["--tmpfs".into(), "/escape".into()],
        ),
        (
            "relative symlink climbing with ..",
            vec!["--tmpfs".into(), "/dotdot/sub".into()],
        ),
        (
            "etc file through the symlink",
            vec![
                "--etc-file".into(),
                format!("hosts={}/f", src.display()),
                "--bind".into(),
                format!("{}:/escape/x", src.display()),
            ],
        ),
    ];
    std::fs::write(src.join("f"), "x").unwrap();
    for (what, args) in cases {
        let mut c = Container::new();
        let layer = c.layer();
        std::os::unix::fs::symlink(&host, layer.join("escape")).unwrap();
        std::os::unix::fs::symlink(&relative_escape, layer.join("dotdot")).unwrap();
        c.mount(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let out = c.sh("echo mounted");
        assert_eq!(out.code, 125, "{what}: {out:?}");
        assert!(
            out.stderr.contains("refusing mount target"),
            "{what}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("symlink") && out.stderr.contains(&host_s),
            "{what}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            0,
            "{what}: something was created on the host"
        );
    }

    // `..` in a target is refused outright.
    let mut c = Container::new();
    c.mount(&["--tmpfs", "/../../tmp"]);
    let out = c.sh("true");
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("'..'"), "{}", out.stderr);

    // A symlink that stays inside the root is followed the way the container
    // sees it: /inroot -> /opt puts the mount on the container's /opt.
    let mut c = Container::new();
    let layer = c.layer();
    std::os::unix::fs::symlink("/opt", layer.join("inroot")).unwrap();
    c.mount(&["--tmpfs", "/inroot/cairn-x"]);
    let out = c.sh("grep -c ' /opt/cairn-x ' /proc/self/mountinfo");
    out.ok();
    assert_eq!(out.stdout.trim(), "1");
    assert!(!Path::new("/opt/cairn-x").exists(), "created on the host");
}

/// Generated /etc files (no host file, no trace of the staging tmpfs) and
/// bound ones; a JSON spec for cairn-mount and cairn-pivot.
#[test]
fn etc_files_and_json_specs() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    let resolv = c.path("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    c.mount(&[
        "--hostname",
        "gen-host",
        "--etc-file",
        &format!("resolv.conf={}", resolv.display()),
    ]);
    let out = c.sh("cat /etc/hostname /etc/hosts /etc/resolv.conf; echo '== mountinfo =='; cat /proc/self/mountinfo");
    out.ok();
    assert!(
        out.stdout.starts_with("gen-host\n127.0.0.1\tlocalhost\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("127.0.1.1\tgen-host\n")
            && out.stdout.contains("nameserver 192.0.2.53")
    );
    let mounts = mountinfo::parse(&out.section("mountinfo"));
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        find(&mounts, f);
    }
    assert_eq!(
        find(&mounts, "/proc").fstype,
        "proc",
        "the staging tmpfs is gone from /proc"
    );
    assert_eq!(
        mounts.iter().filter(|m| m.mount_point == "/proc").count(),
        1
    );
    assert!(
        !c.path("upper/etc/hostname").exists()
            || std::fs::metadata(c.path("upper/etc/hostname"))
                .unwrap()
                .len()
                == 0
    );

    // The same kind of container from JSON specs.
    let c = Container::new();
    let mount_spec = serde_json::json!({
        "root": {"overlay": {"lower": [image_root()], "upper": c.path("upper"), "work": c.path("work")}},
        "target": c.rootfs(),
        "tmp": true,
        "etc": {"hostname": {"content": "from-spec\n"}},
        "mounts": [{"type": "tmpfs", "target": "/scratch", "size": "2m", "mode": "1777"}]
    });
    let pivot_spec = serde_json::json!({
        "root": c.rootfs(),
        "hostname": "from-spec",
        "process": {"args": ["/bin/sh", "-c", "hostname; cat /etc/hostname; id -un; echo $A; grep -c ' /scratch ' /proc/self/mountinfo; grep -c ' /tmp ' /proc/self/mountinfo"],
                    "user": "nobody", "env": ["A=b"], "cap_drop": ["ALL"]}
    });
    std::fs::write(c.path("mount.json"), mount_spec.to_string()).unwrap();
    std::fs::write(c.path("pivot.json"), pivot_spec.to_string()).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--uts",
        "--ipc",
        "--kill-child",
        MOUNT,
        "--spec",
    ])
    .arg(c.path("mount.json"))
    .args(["--", PIVOT, "--spec"])
    .arg(c.path("pivot.json"));
    let out = run(cmd);
    out.ok();
    assert_eq!(out.stdout, "from-spec\nfrom-spec\nnobody\nb\n1\n1\n");

    // A bad spec names the file and the field.
    std::fs::write(
        c.path("bad.json"),
        r#"{"root": {"bind": "/x"}, "prc": "host"}"#,
    )
    .unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", MOUNT, "--spec"])
        .arg(c.path("bad.json"))
        .args(["--", "true"]);
    let out = run(cmd);
    assert_eq!(out.code, 125);
    assert!(
        out.stderr.contains("bad.json") && out.stderr.contains("prc"),
        "{}",
        out.stderr
    );
}

/// --dev host, --proc host and --privileged.
#[test]
fn host_dev_proc_and_privileged() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.mount(&["--dev", "host", "--proc", "host", "--privileged"])
        .pivot(&["--privileged"]);
    let me = std::process::id();
    let out = c.sh(&format!("test -d /proc/{me} && echo host-pids; ls /dev | wc -l; grep -c ' /proc/keys ' /proc/self/mountinfo || true"));
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "host-pids", "{}", out.stdout);
    let host_dev = std::fs::read_dir("/dev").unwrap().count();
    assert_eq!(
        lines[1].parse::<usize>().unwrap(),
        host_dev,
        "the host's /dev"
    );
    assert_eq!(lines[2], "0", "privileged: nothing masked");
}

/// Exit codes: the command's own, 127 not found, 126 not executable, 125 a
/// helper's failure, each with a message naming what failed.
#[test]
fn exit_codes() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    assert_eq!(run(c.command(&["/bin/sh", "-c", "exit 3"])).code, 3);
    run(c.command(&["cairn-no-such-command"])).fails(
        127,
        "cairn-pivot: exec cairn-no-such-command: not found in PATH=/usr/local/sbin",
    );
    run(c.command(&["/etc/passwd"])).fails(126, "exec /etc/passwd: permission denied");
    let out = run(c.command(&["/usr"]));
    assert_eq!(out.code, 126);

    // cairn-mount's own failures and its exec of the next program.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        MOUNT,
        "--root",
        "/nonexistent-cairn-root",
        "--",
        "true",
    ]);
    run(cmd).fails(125, "/nonexistent-cairn-root");
    let mut c = Container::new();
    c.no_pivot = true;
    run(c.command(&["/nonexistent-cairn-program"])).fails(
        127,
        "cairn-mount: exec /nonexistent-cairn-program: not found",
    );
    let mut c = Container::new();
    c.mount(&["--bind", "/nonexistent-cairn-src:/x"]);
    c.sh("true")
        .fails(125, "stat bind source /nonexistent-cairn-src");
}

/// A rootless-style run: a user namespace mapping only root, no network or
/// IPC namespace of its own. sysfs falls back to a recursive read-only bind,
/// mqueue to the host's (absent here: skipped), devpts to no gid=, and
/// setgroups (denied) is accepted when the list does not change.
#[test]
fn user_namespace_fallbacks() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.mount(&["--overlay-opt", "userxattr"]);
    let mut cmd = c.command(&["/bin/sh", "-c", "cat /proc/self/mountinfo; (touch /sys/fs/cgroup/x /sys/x) 2>&1; grep CapEff /proc/self/status"]);
    // Rebuild as: unshare --user --map-root-user --mount --pid --fork ...
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = args.iter().position(|a| a == "--").unwrap();
    cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
    ])
    .args(&args[at + 1..]);
    let out = run(cmd);
    out.ok();
    let mounts = mountinfo::parse(&out.stdout);
    let sys = find(&mounts, "/sys");
    assert!(sys.has("ro"));
    let below: Vec<&MountInfo> = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with("/sys/"))
        .collect();
    assert!(
        below.iter().all(|m| m.has("ro")),
        "every submount of the /sys rbind is read-only: {below:?}"
    );
    assert!(!find(&mounts, "/dev/pts").has_super("gid=5"));
    assert_eq!(
        out.stdout.matches("Read-only file system").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("CapEff:\t00000000800405fb"));
}

/// cairn-enter into a running container sees its mounts, pids, hostname,
/// environment and capabilities, returns the command's exit code and
/// switches user with the container's /etc/passwd.
#[test]
fn enter_a_running_container() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    c.with_test_users().mount(&["--tmp"]).pivot(&[
        "--hostname",
        "entered",
        "-e",
        "FOO=from-container",
        "--cap-drop",
        "KILL",
    ]);
    let running = c.spawn("cat /proc/self/mountinfo > /tmp/mountinfo; echo marker > /tmp/marker; echo ready; exec sleep 1000");
    let pid = running.init.to_string();
    let enter = |args: &[&str]| {
        let mut cmd = Command::new(ENTER);
        cmd.args(["--all", "--target", &pid]).args(args);
        run(cmd)
    };
    let out = enter(&[
        "--",
        "/bin/sh",
        "-c",
        "echo '== host =='; hostname; cat /tmp/marker
         echo '== mine =='; cat /proc/self/mountinfo
         echo '== theirs =='; cat /tmp/mountinfo
         echo '== pid =='; echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo
         echo '== env =='; echo $FOO; pwd
         echo '== caps =='; grep -E '^(CapEff|CapBnd|Uid)' /proc/self/status",
    ]);
    out.ok();
    assert_eq!(out.section("host"), "entered\nmarker\n");
    let mine = mountinfo::parse(&out.section("mine"));
    let theirs = mountinfo::parse(&out.section("theirs"));
    let ids = |m: &[MountInfo]| {
        m.iter()
            .map(|m| (m.id, m.mount_point.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&mine), ids(&theirs), "the same mount namespace");
    let pid_section = out.section("pid");
    let pid_lines: Vec<&str> = pid_section.lines().collect();
    let own: u32 = pid_lines[0].trim().parse().unwrap();
    assert!(
        own > 1 && own < 100,
        "a pid of the container's namespace: {own}"
    );
    assert_eq!(
        pid_lines[1].trim(),
        "sleep 1000",
        "pid 1 is the container's init"
    );
    assert_eq!(
        out.section("env"),
        "from-container\n/\n",
        "the target's environment and cwd"
    );
    let caps = out.section("caps");
    let want = format!("{:016x}", 0x8004_05fbu64 & !(1 << 5));
    assert!(
        caps.contains(&format!("CapEff:\t{want}")) && caps.contains(&format!("CapBnd:\t{want}")),
        "{caps}"
    );

    assert_eq!(enter(&["--", "/bin/sh", "-c", "exit 42"]).code, 42);
    assert_eq!(enter(&["cairn-no-such-command"]).code, 127);
    let out = enter(&[
        "--user",
        "cairnuser",
        "--workdir",
        "/tmp",
        "-e",
        "BAR=1",
        "--",
        "/bin/sh",
        "-c",
        "id; pwd; echo $FOO$BAR",
    ]);
    out.ok();
    assert_eq!(out.stdout, "uid=4321(cairnuser) gid=4321(cairngrp) groups=4321(cairngrp),4400(cairnextra)\n/tmp\nfrom-container1\n");
    // Only the UTS namespace: no fork, the host's mounts.
    let mut cmd = Command::new(ENTER);
    cmd.args([
        "--uts",
        "-t",
        &pid,
        "--preserve-env",
        "--",
        "/bin/sh",
        "-c",
        "hostname; test -e /tmp/marker || echo host-fs",
    ]);
    let out = run(cmd);
    out.ok();
    assert_eq!(out.stdout, "entered\nhost-fs\n");
    drop(running);
}

/// The parent forwards signals and exits with the command's status, 128+N
/// when a signal killed it; the command dies with a killed cairn-enter.
#[test]
fn enter_forwards_signals() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let running = c.spawn("echo ready; exec sleep 1000");
    let pid = running.init.to_string();
    let start = |script: &str| {
        // Signals ignored by whoever runs the tests (nohup ignores SIGHUP)
        // stay ignored through every exec: start from default dispositions.
        let mut child = Command::new("env")
            .arg("--default-signal")
            .arg(ENTER)
            .args(["--all", "--target", &pid, "--", "/bin/sh", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n");
        child
    };
    let signal = |child: &std::process::Child, sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    };
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt as _;

    // Trapped: the command's own exit code.
    let mut child = start("trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done");
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait_timeout(&mut child, TIMEOUT).unwrap().code(), Some(9));

    // Untrapped: killed by the forwarded signal, reported as 128+N.
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
    ] {
        let mut child = start("echo ready; exec sleep 1000");
        signal(&child, sig);
        let status = wait_timeout(&mut child, TIMEOUT).unwrap();
        assert_eq!(
            (status.code(), status.signal()),
            (Some(code), None),
            "{sig:?}"
        );
    }

    // SIGKILLed cairn-enter: the command gets its parent-death signal.
    let mut child = start("echo ready; exec sleep 999");
    let inner = {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            // cairn-enter's joiner's child.
            let grandchildren: Vec<i32> = children_of(child.id() as i32)
                .iter()
                .flat_map(|c| children_of(*c))
                .collect();
            if let Some(p) = grandchildren.first() {
                if std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .starts_with("sleep")
                {
                    break *p;
                }
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while Path::new(&format!("/proc/{inner}")).exists()
        && !std::fs::read_to_string(format!("/proc/{inner}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command outlived cairn-enter"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(running);
}

/// cairn-enter works on processes that are not cairn containers, like
/// nsenter, and agrees with it.
#[test]
fn enter_a_plain_unshared_process() {
    if !root_or_skip() {
        return;
    }
    let target = spawn_unshared(
        &[
            "--uts",
            "--mount",
            "--pid",
            "--ipc",
            "--net",
            "--mount-proc",
        ],
        "hostname plain-ns; echo ready; exec sleep 1000",
    );
    let pid = target.init.to_string();
    // The UTS, net (/proc/net follows the reader's namespace), mount and pid
    // namespaces of the target.
    let script = "hostname; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; test -d /proc/1 && tr '\\0' ' ' < /proc/1/cmdline";
    let mut cairn = Command::new(ENTER);
    cairn.args([
        "--all",
        "--target",
        &pid,
        "--preserve-env",
        "/bin/sh",
        "-c",
        script,
    ]);
    let mut nsenter = Command::new("nsenter");
    nsenter.args(["--all", "--target", &pid, "/bin/sh", "-c", script]);
    let (a, b) = (run(cairn), run(nsenter));
    a.ok();
    b.ok();
    assert_eq!(a.stdout, "plain-ns\nlo\nsleep 1000 ", "{a:?}");
    assert_eq!(a.stdout, b.stdout, "cairn-enter and nsenter disagree");
    drop(target);
}

/// The help texts document the flags, the JSON spec and the exit codes; bad
/// flags exit 125 pointing at --help. (No root needed.)
#[test]
fn help_and_usage_errors() {
    for (bin, must) in [
        (
            MOUNT,
            &[
                "--overlay",
                "--bind SRC:DST[:OPTS]",
                "JSON spec",
                "\"masked_paths\"",
                "Exit status",
            ][..],
        ),
        (
            PIVOT,
            &[
                "--root DIR",
                "--cap-add",
                "JSON spec",
                "\"process\"",
                "Exit status",
            ][..],
        ),
        (
            ENTER,
            &["--target PID", "--all", "JSON spec", "128+N", "Exit status"][..],
        ),
    ] {
        let out = run({
            let mut c = Command::new(bin);
            c.arg("--help");
            c
        });
        out.ok();
        for m in must {
            assert!(out.stdout.contains(m), "{bin} --help lacks {m:?}");
        }
        let out = run({
            let mut c = Command::new(bin);
            c.args(["--no-such-flag", "x"]);
            c
        });
        assert_eq!(out.code, 125);
        assert!(
            out.stderr.contains("unknown option --no-such-flag") && out.stderr.contains("--help"),
            "{}",
            out.stderr
        );
    }
}

/// Descriptors the caller leaked are closed at the exec, except those kept
/// with --keep-fds.
#[test]
fn leaked_descriptors_are_closed() {
    if !root_or_skip() {
        return;
    }
    let mut c = Container::new();
    // Leaked by the caller: 3, 4 and 9. `ls -l` shows where its descriptors
    // point (the host's files; the image has them too, so check by name).
    c.pre = "exec 3</etc/hostname 4</etc/passwd 9</etc/group".into();
    let out = run(c.command(&["/bin/ls", "-l", "/proc/self/fd"]));
    out.ok();
    for leaked in ["/etc/hostname", "/etc/passwd", "/etc/group"] {
        assert!(
            !out.stdout.contains(leaked),
            "{leaked} reached the command:\n{}",
            out.stdout
        );
    }
    c.pivot(&["--keep-fds", "2"]);
    let out = run(c.command(&["/bin/ls", "-l", "/proc/self/fd"]));
    out.ok();
    assert!(
        out.stdout.contains("3 -> /etc/hostname") && out.stdout.contains("4 -> /etc/passwd"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("/etc/group"), "{}", out.stdout);
}

/// Run in the mount namespace of pid 1, cairn-mount and cairn-pivot refuse
/// to touch anything. (Pid 1 here is a shell in a throwaway namespace, so a
/// regression cannot reach the host.)
#[test]
fn refuse_the_mount_namespace_of_pid_1() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    for helper in [
        format!("{MOUNT} --root {} -- true", c.rootfs().display()),
        format!("{PIVOT} --root {} -- true", c.rootfs().display()),
    ] {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            "{helper}; echo \"rc=$?\"; grep -c ' {} ' /proc/self/mountinfo",
            c.rootfs().display()
        ));
        let out = run(cmd);
        assert!(out.stdout.starts_with("rc=125\n0\n"), "{helper}: {out:?}");
        assert!(
            out.stderr.contains("same mount namespace as pid 1"),
            "{}",
            out.stderr
        );
    }
}

/// Entering a process in another user namespace joins that first (through
/// the pidfd), then the rest; setgroups denied there is fine when the list
/// does not change.
#[test]
fn enter_a_user_namespace() {
    if !root_or_skip() {
        return;
    }
    let target = spawn_unshared(
        &["--user", "--map-root-user", "--mount", "--uts", "--pid"],
        "hostname userns-box; echo ready; exec sleep 1000",
    );
    let theirs = std::fs::read_link(format!("/proc/{}/ns/user", target.init)).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(theirs, ours);
    let mut cmd = Command::new(ENTER);
    cmd.args([
        "--all",
        "--target",
        &target.init.to_string(),
        "--",
        "/bin/sh",
        "-c",
        "hostname; readlink /proc/self/ns/user; id -u",
    ]);
    let out = run(cmd);
    out.ok();
    assert_eq!(out.stdout, format!("userns-box\n{}\n0\n", theirs.display()));
}
