//! Table tests over fake cgroupfs trees (temp directories with the
//! kernel's files): which file gets which value, for v1 and v2; what a
//! missing controller says; stats read from real-format files. And, as
//! root, the v2 controller enabling on this host's cgroup2.

use std::path::Path;

use super::*;
use crate::cgroup::DeviceRule;

const V1: &[(&str, &[&str])] = &[
    (
        "cpu,cpuacct",
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpuacct.usage",
            "cpuacct.usage_user",
            "cpuacct.usage_sys",
            "cpuacct.stat",
        ],
    ),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.stat",
            "memory.oom_control",
        ],
    ),
    ("pids", &["pids.max", "pids.current"]),
    (
        "blkio",
        &[
            "blkio.bfq.weight",
            "blkio.throttle.io_service_bytes_recursive",
        ],
    ),
    ("devices", &["devices.allow", "devices.deny"]),
    ("freezer", &["freezer.state"]),
];

const V2_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.controllers",
    "cgroup.subtree_control",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "memory.current",
    "memory.stat",
    "memory.events",
    "cpu.weight",
    "cpu.max",
    "cpu.stat",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "pids.current",
    "io.weight",
    "io.stat",
];

const LEAF: &str = "/cairn/ctr";

fn touch(dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

/// A v1 tree with the leaf present; `without` controllers left out.
fn v1_tree(without: &[&str]) -> (tempfile::TempDir, Hierarchy) {
    let t = tempfile::tempdir().unwrap();
    let mut mounts = Vec::new();
    for (name, files) in V1 {
        if without.contains(name) {
            continue;
        }
        let base = t.path().join(name);
        touch(&under(&base, LEAF), files);
        touch(&base.join("cairn"), files);
        mounts.push((name.split(',').map(str::to_owned).collect(), base.clone()));
    }
    if !without.contains(&"cpuset") {
        std::fs::write(t.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
    }
    (t, Hierarchy::v1_at(mounts))
}

/// A v2 tree with the leaf present; its parent offers `controllers`.
fn v2_tree(controllers: &str, extra: &[&str]) -> (tempfile::TempDir, Hierarchy) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    for d in [root.clone(), root.join("cairn"), under(&root, LEAF)] {
        touch(&d, V2_FILES);
        touch(&d, extra);
        std::fs::write(d.join("cgroup.controllers"), controllers).unwrap();
    }
    (t, Hierarchy::v2_at(root))
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn spec(r: Resources) -> CgroupSpec {
    CgroupSpec {
        path: LEAF.into(),
        resources: r,
        devices: None,
    }
}

/// The files written and their content.
type Files = &'static [(&'static str, &'static str)];

/// Each field of Resources: the files v1 and v2 write, and the values.
fn cases() -> Vec<(Resources, Files, Files)> {
    let mut c = memory_cases();
    c.extend(other_cases());
    c
}

fn memory_cases() -> Vec<(Resources, Files, Files)> {
    let r = Resources::default;
    vec![
        (
            Resources {
                memory: Some(32 << 20),
                ..r()
            },
            &[("memory/cairn/ctr/memory.limit_in_bytes", "33554432")],
            &[("memory.max", "33554432")],
        ),
        (
            Resources {
                memory: Some(-1),
                ..r()
            },
            &[
                ("memory/cairn/ctr/memory.limit_in_bytes", "-1"),
                ("memory/cairn/ctr/memory.memsw.limit_in_bytes", "-1"),
            ],
            &[("memory.max", "max"), ("memory.swap.max", "max")],
        ),
        (
            Resources {
                memory: Some(32 << 20),
                memory_swap: Some(64 << 20),
                ..r()
            },
            &[
                ("memory/cairn/ctr/memory.limit_in_bytes", "33554432"),
                ("memory/cairn/ctr/memory.memsw.limit_in_bytes", "67108864"),
            ],
            &[("memory.max", "33554432"), ("memory.swap.max", "33554432")],
        ),
        (
            Resources {
                memory: Some(32 << 20),
                memory_swap: Some(-1),
                ..r()
            },
            &[("memory/cairn/ctr/memory.memsw.limit_in_bytes", "-1")],
            &[("memory.swap.max", "max")],
        ),
        (
            Resources {
                memory_reservation: Some(16 << 20),
                ..r()
            },
            &[("memory/cairn/ctr/memory.soft_limit_in_bytes", "16777216")],
            &[("memory.low", "16777216")],
        ),
    ]
}

fn other_cases() -> Vec<(Resources, Files, Files)> {
    let r = Resources::default;
    vec![
        (
            Resources {
                cpu_shares: Some(1024),
                ..r()
            },
            &[("cpu,cpuacct/cairn/ctr/cpu.shares", "1024")],
            &[("cpu.weight", "39")],
        ),
        (
            Resources {
                cpu_quota: Some(50000),
                cpu_period: Some(100000),
                ..r()
            },
            &[
                ("cpu,cpuacct/cairn/ctr/cpu.cfs_period_us", "100000"),
                ("cpu,cpuacct/cairn/ctr/cpu.cfs_quota_us", "50000"),
            ],
            &[("cpu.max", "50000 100000")],
        ),
        (
            Resources {
                cpu_quota: Some(25000),
                ..r()
            },
            &[("cpu,cpuacct/cairn/ctr/cpu.cfs_quota_us", "25000")],
            &[("cpu.max", "25000 100000")],
        ),
        (
            Resources {
                cpu_quota: Some(-1),
                ..r()
            },
            &[("cpu,cpuacct/cairn/ctr/cpu.cfs_quota_us", "-1")],
            &[("cpu.max", "max 100000")],
        ),
        (
            Resources {
                cpu_period: Some(50000),
                ..r()
            },
            &[("cpu,cpuacct/cairn/ctr/cpu.cfs_period_us", "50000")],
            &[("cpu.max", "max 50000")],
        ),
        (
            Resources {
                cpuset_cpus: Some("1".into()),
                cpuset_mems: Some("0".into()),
                ..r()
            },
            &[
                ("cpuset/cairn/ctr/cpuset.cpus", "1"),
                ("cpuset/cairn/ctr/cpuset.mems", "0"),
            ],
            &[("cpuset.cpus", "1"), ("cpuset.mems", "0")],
        ),
        (
            Resources {
                pids_limit: Some(16),
                ..r()
            },
            &[("pids/cairn/ctr/pids.max", "16")],
            &[("pids.max", "16")],
        ),
        (
            Resources {
                pids_limit: Some(-1),
                ..r()
            },
            &[("pids/cairn/ctr/pids.max", "max")],
            &[("pids.max", "max")],
        ),
        (
            Resources {
                pids_limit: Some(0),
                ..r()
            },
            &[("pids/cairn/ctr/pids.max", "max")],
            &[("pids.max", "max")],
        ),
        (
            Resources {
                blkio_weight: Some(500),
                ..r()
            },
            &[("blkio/cairn/ctr/blkio.bfq.weight", "500")],
            &[("io.weight", "default 4950")],
        ),
    ]
}

#[test]
fn v1_each_limit_to_its_file() {
    for (r, v1, _) in cases() {
        let (t, h) = v1_tree(&[]);
        let cg = Cgroup::new(&h, LEAF).unwrap();
        cg.create(&spec(r.clone()))
            .unwrap_or_else(|e| panic!("{r:?}: {e}"));
        for (file, want) in v1 {
            assert_eq!(read(t.path(), file), *want, "{r:?}: {file}");
        }
        // update writes the same.
        let (t, h) = v1_tree(&[]);
        Cgroup::new(&h, LEAF).unwrap().update(&r).unwrap();
        for (file, want) in v1 {
            assert_eq!(read(t.path(), file), *want, "update {r:?}: {file}");
        }
    }
}

#[test]
fn v2_each_limit_to_its_file() {
    for (r, _, v2) in cases() {
        let (t, h) = v2_tree("cpuset cpu io memory pids", &[]);
        let cg = Cgroup::new(&h, LEAF).unwrap();
        cg.create(&spec(r.clone()))
            .unwrap_or_else(|e| panic!("{r:?}: {e}"));
        let leaf = under(t.path(), LEAF);
        for (file, want) in v2 {
            assert_eq!(read(&leaf, file), *want, "{r:?}: {file}");
        }
        // The parent enables what the limits need; the root is not ours.
        let want: Vec<String> = limits::controllers(&r)
            .iter()
            .map(|c| format!("+{c}"))
            .collect();
        assert_eq!(
            read(t.path(), "cairn/cgroup.subtree_control"),
            want.join(" "),
            "{r:?}"
        );
        assert_eq!(read(t.path(), "cgroup.subtree_control"), "", "{r:?}");
        let (t, h) = v2_tree("cpuset cpu io memory pids", &[]);
        Cgroup::new(&h, LEAF).unwrap().update(&r).unwrap();
        let leaf = under(t.path(), LEAF);
        for (file, want) in v2 {
            assert_eq!(read(&leaf, file), *want, "update {r:?}: {file}");
        }
    }
}

/// With BFQ, its weight is the one written (v1 and v2).
#[test]
fn blkio_weight_prefers_bfq() {
    let (t, h) = v2_tree("io", &["io.bfq.weight"]);
    let r = Resources {
        blkio_weight: Some(300),
        ..Default::default()
    };
    Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(r.clone()))
        .unwrap();
    assert_eq!(read(&under(t.path(), LEAF), "io.bfq.weight"), "300");
    assert_eq!(read(&under(t.path(), LEAF), "io.weight"), "");
    let (t, h) = v1_tree(&[]);
    touch(&t.path().join("blkio/cairn/ctr"), &["blkio.weight"]);
    Cgroup::new(&h, LEAF).unwrap().create(&spec(r)).unwrap();
    assert_eq!(read(t.path(), "blkio/cairn/ctr/blkio.weight"), "300");
}

/// A limit whose controller is missing names the flag and the controller;
/// nothing is written, a cgroup that did not exist is not left behind.
#[test]
fn missing_controllers_are_errors() {
    let memory = Resources {
        memory: Some(1 << 20),
        ..Default::default()
    };
    let (t, h) = v1_tree(&["memory"]);
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(memory.clone()))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--memory needs the memory controller, which is not mounted"),
        "{e}"
    );
    let e = Cgroup::new(&h, LEAF).unwrap().update(&memory).unwrap_err();
    assert!(
        e.to_string()
            .contains("--memory needs the memory controller"),
        "{e}"
    );
    drop(t);

    let (t, h) = v2_tree("cpu pids", &[]);
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(memory.clone()))
        .unwrap_err()
        .to_string();
    let where_ = t.path().join("cairn/cgroup.controllers");
    assert!(
        e.starts_with(&format!(
            "--memory needs the memory controller, which is not available in {}",
            where_.display()
        )),
        "{e}"
    );
    let pids = Resources {
        pids_limit: Some(5),
        blkio_weight: Some(100),
        ..Default::default()
    };
    let e = Cgroup::new(&h, "/cairn/new")
        .unwrap()
        .create(&spec(pids))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--blkio-weight needs the io controller"),
        "{e}"
    );
    assert!(!t.path().join("cairn/new").exists(), "nothing created");
    assert_eq!(read(t.path(), "cairn/cgroup.subtree_control"), "");

    // The controller is there but not its file: swap accounting off.
    let (t, h) = v1_tree(&[]);
    std::fs::remove_file(
        t.path()
            .join("memory/cairn/ctr/memory.memsw.limit_in_bytes"),
    )
    .unwrap();
    let swap = Resources {
        memory: Some(1 << 20),
        memory_swap: Some(2 << 20),
        ..Default::default()
    };
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(swap))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--memory-swap needs memory.memsw.limit_in_bytes, missing in ")
            && e.contains("swapaccount=1"),
        "{e}"
    );
    // v1 without blkio.weight nor blkio.bfq.weight (this host: no BFQ).
    let (t, h) = v1_tree(&[]);
    std::fs::remove_file(t.path().join("blkio/cairn/ctr/blkio.bfq.weight")).unwrap();
    let b = Resources {
        blkio_weight: Some(100),
        ..Default::default()
    };
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(b))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--blkio-weight needs blkio.weight or blkio.bfq.weight"),
        "{e}"
    );
}

/// v1 device rules: deny all, then the allow rules; v2's eBPF program
/// cannot attach to a plain directory and says where it tried.
#[test]
fn device_rules() {
    let (t, h) = v1_tree(&[]);
    let mut s = spec(Resources::default());
    s.devices = Some(vec![
        "c 1:3 rwm".parse::<DeviceRule>().unwrap(),
        "c 1:5 rw".parse().unwrap(),
    ]);
    Cgroup::new(&h, LEAF).unwrap().create(&s).unwrap();
    assert_eq!(read(t.path(), "devices/cairn/ctr/devices.deny"), "a");
    assert_eq!(
        read(t.path(), "devices/cairn/ctr/devices.allow"),
        "c 1:5 rw"
    );
    let (_t, h) = v1_tree(&["devices"]);
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--device needs the devices controller"), "{e}");
    let (_t, h) = v2_tree("", &[]);
    let e = Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cgroup v2") && e.contains("cairn/ctr"), "{e}");
}

/// v1 cpuset: a new level gets its parent's cpus and mems.
#[test]
fn v1_cpuset_inherits() {
    let (t, h) = v1_tree(&[]);
    Cgroup::new(&h, LEAF)
        .unwrap()
        .create(&spec(Resources::default()))
        .unwrap();
    assert_eq!(read(t.path(), "cpuset/cairn/cpuset.cpus"), "0-1");
    assert_eq!(read(t.path(), "cpuset/cairn/ctr/cpuset.mems"), "0");
}

#[test]
fn paths_are_checked() {
    let h = Hierarchy::v2_at("/nonexistent".into());
    for bad in ["", "/", "rel", "/a//b", "/a/./b", "/a/../b", "/a/", "/a\0b"] {
        let e = Cgroup::new(&h, bad).unwrap_err().to_string();
        assert!(e.starts_with("cgroup path "), "{bad:?}: {e}");
    }
    assert!(Cgroup::new(&h, &format!("/{}", "a".repeat(4096))).is_err());
    assert_eq!(Cgroup::new(&h, "/a/b.c/d").unwrap().path(), "/a/b.c/d");
}

/// Stats from real-format files.
#[test]
fn stats_from_files() {
    let (t, h) = v1_tree(&[]);
    let w = |rel: &str, text: &str| std::fs::write(t.path().join(rel), text).unwrap();
    w("cpu,cpuacct/cairn/ctr/cpuacct.usage", "1500000000\n");
    w("cpu,cpuacct/cairn/ctr/cpuacct.usage_user", "1000000000\n");
    w("cpu,cpuacct/cairn/ctr/cpuacct.usage_sys", "500000000\n");
    w("memory/cairn/ctr/memory.usage_in_bytes", "10485760\n");
    w(
        "memory/cairn/ctr/memory.stat",
        "cache 0\nrss 0\ntotal_inactive_file 1048576\n",
    );
    w("memory/cairn/ctr/memory.limit_in_bytes", "33554432\n");
    w(
        "memory/cairn/ctr/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    w("pids/cairn/ctr/pids.current", "3\n");
    w("pids/cairn/ctr/pids.max", "max\n");
    w(
        "blkio/cairn/ctr/blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n",
    );
    let cg = Cgroup::new(&h, LEAF).unwrap();
    assert_eq!(
        cg.stats().unwrap(),
        Stats {
            cpu_ns: 1_500_000_000,
            cpu_user_ns: 1_000_000_000,
            cpu_system_ns: 500_000_000,
            memory_usage: 9 << 20,
            memory_limit: Some(32 << 20),
            pids: 3,
            pids_limit: None,
            blk_read: 4096,
            blk_write: 512,
            oom_kills: 1,
        }
    );
    assert!(cg.oom_killed());

    let (t, h) = v2_tree("cpu memory pids io", &[]);
    let leaf = under(t.path(), LEAF);
    let w = |rel: &str, text: &str| std::fs::write(leaf.join(rel), text).unwrap();
    w(
        "cpu.stat",
        "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 0\n",
    );
    w("memory.current", "8192000\n");
    w(
        "memory.stat",
        "anon 4096\nfile 8192\nactive_file 0\ninactive_file 192000\n",
    );
    w("memory.max", "max\n");
    w("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    w("pids.current", "1\n");
    w("pids.max", "32\n");
    w(
        "io.stat",
        "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    let cg = Cgroup::new(&h, LEAF).unwrap();
    assert_eq!(
        cg.stats().unwrap(),
        Stats {
            cpu_ns: 2_000_000,
            cpu_user_ns: 1_500_000,
            cpu_system_ns: 500_000,
            memory_usage: 8_000_000,
            memory_limit: None,
            pids: 1,
            pids_limit: Some(32),
            blk_read: 100,
            blk_write: 200,
            oom_kills: 0,
        }
    );
    assert!(!cg.oom_killed());
    assert!(Cgroup::new(&h, "/nope").unwrap().stats().is_err());
}

/// Real cgroup2 (this host's, or a pure v2 one): a controller is enabled
/// from the parent of the first new level down to the leaf's parent; the
/// existing levels above are left alone.
#[test]
fn v2_enables_controllers_down_the_new_levels() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(root) = crate::mountinfo::read_self()
        .unwrap()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| std::path::PathBuf::from(m.mount_point))
    else {
        eprintln!("skipped: no cgroup2 mounted");
        return;
    };
    let avail = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap();
    let Some(c) = avail.split_whitespace().next().map(str::to_owned) else {
        eprintln!("skipped: no controller available in {}", root.display());
        return;
    };
    let h = Hierarchy::v2_at(root.clone());
    let top = format!("/cairn-unit-{}", std::process::id());
    struct Guard(Cgroup);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.remove();
        }
    }
    // The root enables it for our top level (and is put back as it was).
    struct Restore(std::path::PathBuf, Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(c) = &self.1 {
                let _ = write_file(&self.0.join("cgroup.subtree_control"), &format!("-{c}"));
            }
        }
    }
    let root_on = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
    let _restore = Restore(
        root.clone(),
        (!root_on.split_whitespace().any(|x| x == c)).then(|| c.clone()),
    );
    enable(&root, &[c.as_str()]).unwrap();
    let _g = Guard(Cgroup::new(&h, &top).unwrap());
    let _mid = Guard(Cgroup::new(&h, &format!("{top}/a")).unwrap());
    std::fs::create_dir(under(&root, &top)).unwrap();
    let leaf = Cgroup::new(&h, &format!("{top}/a/b")).unwrap();
    let _l = Guard(leaf.clone());
    leaf.make_dirs(&[c.as_str()]).unwrap();
    let on =
        |p: &str| std::fs::read_to_string(under(&root, p).join("cgroup.subtree_control")).unwrap();
    assert!(
        on(&top).split_whitespace().any(|x| x == c),
        "{top}: {}",
        on(&top)
    );
    assert!(on(&format!("{top}/a")).split_whitespace().any(|x| x == c));
    assert_eq!(
        on(&format!("{top}/a/b")).trim(),
        "",
        "the leaf enables nothing"
    );
    let ctl =
        std::fs::read_to_string(under(&root, leaf.path()).join("cgroup.controllers")).unwrap();
    assert!(ctl.split_whitespace().any(|x| x == c), "{ctl}");
    leaf.remove().unwrap();
    assert!(!leaf.exists());
    assert!(under(&root, &format!("{top}/a")).exists(), "parents stay");
}
