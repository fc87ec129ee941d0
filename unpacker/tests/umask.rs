//! Modes are exact whatever the process umask. The umask is process-wide,
//! so this is its own test binary with a single test.

mod common;

use std::fs;

use cairn_unpacker::{DecodeOptions, Mode, ObjectStore};
use common::*;

fn layer() -> Vec<u8> {
    let mut sgid = Hdr::new(b"d/sgid", b'5');
    sgid.mode = 0o2775;
    Tar::new()
        .dir_mode("d", 0o777)
        .file_mode("d/rw-all", b"rw-all", 0o666)
        .file_mode("d/suid", b"suid", 0o4755)
        .file_mode("d/exec", b"exec", 0o777)
        .dir_mode("d/sticky", 0o1777)
        .entry(&sgid, &[])
        .fifo("d/fifo", 0o666)
        .dir("d/implicit-parent-child/x")
        .finish()
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    let want = [
        ("d", 0o777),
        ("d/rw-all", 0o666),
        ("d/suid", 0o4755),
        ("d/exec", 0o777),
        ("d/sticky", 0o1777),
        ("d/sgid", 0o2775),
        ("d/fifo", 0o666),
        ("d/implicit-parent-child", 0o755),
        ("d/implicit-parent-child/x", 0o755),
    ];
    let mut failures = Vec::new();
    for umask in [0o077, 0o777, 0o022] {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
        for mode in [Mode::Hardlink, Mode::Copy] {
            let dir = tempfile::tempdir().unwrap();
            let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
            let target = dir.path().join("t");
            fs::create_dir(&target).unwrap();
            unpack(
                &[layer()],
                &[],
                &objects,
                &DecodeOptions::default(),
                &target,
                mode,
            )
            .unwrap();
            for (p, m) in want {
                let got = mode_of(&target.join(p));
                if got != m {
                    failures.push(format!("umask {umask:o} {mode:?} {p}: {got:o}, want {m:o}"));
                }
            }
        }
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    assert!(failures.is_empty(), "{failures:#?}");
}
