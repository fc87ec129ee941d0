//! Deeply nested paths. Planning, materializing and dropping the tree
//! recurse once per level, so a hostile layer naming `d/d/d/…` 100000 deep
//! used to overflow the stack and abort the whole process. Image roots are
//! capped at 512 levels: up to that the file is there, past it (however the
//! path is reached) the unpack fails with a clear error and nothing outside
//! the target changes. Runs on a thread with the 8 MiB stack a program's
//! main thread gets, as the CLI's unpack does.

mod common;

use cairn_unpacker::{DecodeOptions, Mode, ObjectStore, PlanError, Stats};
use common::*;

const MAX: usize = 512;

/// `d/d/…/f`: a file `depth` levels down (`depth - 1` directories).
fn deep_path(depth: usize) -> String {
    format!("{}f", "d/".repeat(depth - 1))
}

/// Reads `d/d/.../f` one directory fd at a time (the path may be longer
/// than PATH_MAX).
fn read_deep(root: &std::path::Path, depth: usize) -> Vec<u8> {
    use rustix::fs::{Mode as M, OFlags};
    use std::io::Read;
    let mut dir = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, M::empty()).unwrap();
    for _ in 0..depth - 1 {
        dir = rustix::fs::openat(&dir, "d", OFlags::DIRECTORY | OFlags::NOFOLLOW, M::empty())
            .unwrap();
    }
    let f = rustix::fs::openat(&dir, "f", OFlags::RDONLY | OFlags::NOFOLLOW, M::empty()).unwrap();
    let mut out = Vec::new();
    std::fs::File::from(f).read_to_end(&mut out).unwrap();
    out
}

/// Unpacks `layers` in a jail on an 8 MiB stack; checks nothing outside the
/// target changed and a failure left the target empty.
fn unpack_deep(
    layers: Vec<Vec<u8>>,
    check: impl FnOnce(&Jail, &Result<Stats, Failure>) + Send + 'static,
) {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            for mode in [Mode::Hardlink, Mode::Copy] {
                let jail = Jail::new();
                let objects = ObjectStore::open(&jail.store(), ownership()).unwrap();
                let before = jail.snapshot();
                let r = unpack(
                    &layers,
                    &[],
                    &objects,
                    &DecodeOptions::default(),
                    &jail.target(),
                    mode,
                );
                assert_eq!(before, jail.snapshot(), "outside the target changed");
                if r.is_err() {
                    // The planner refuses before anything is created.
                    assert!(empty_or_missing(&jail.target()), "{mode:?}");
                }
                if mode == Mode::Copy {
                    check(&jail, &r);
                    return;
                }
            }
        })
        .unwrap()
        .join()
        .expect("the unpack thread did not crash");
}

fn too_deep(r: &Result<Stats, Failure>) {
    match r {
        Err(Failure::Plan(e @ PlanError::TooDeep { max: MAX, .. })) => {
            let msg = e.to_string();
            assert!(msg.contains("deeper than 512"), "{msg}");
            assert!(msg.len() < 200, "a short message: {msg}");
        }
        other => panic!("want a too-deep plan error, got {other:?}"),
    }
}

#[test]
fn a_path_at_the_depth_limit_is_unpacked() {
    let layer = Tar::new()
        .pax(&[(b"path", deep_path(MAX).as_bytes())])
        .file("harmless", b"deep")
        .finish();
    unpack_deep(vec![layer], |jail, r| {
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(read_deep(&jail.target(), MAX), b"deep");
    });
}

#[test]
fn a_path_one_level_deeper_is_refused() {
    let layer = Tar::new()
        .pax(&[(b"path", deep_path(MAX + 1).as_bytes())])
        .file("harmless", b"deep")
        .finish();
    unpack_deep(vec![layer], |_, r| too_deep(r));
}

#[test]
fn a_hundred_thousand_levels_are_refused_without_crashing() {
    let layer = Tar::new()
        .pax(&[(b"path", deep_path(100_000).as_bytes())])
        .dir("harmless")
        .finish();
    unpack_deep(vec![layer], |_, r| too_deep(r));
}

#[test]
fn depth_reached_through_a_symlink_is_refused() {
    // A short entry name whose parent is a symlink to a path at the limit.
    let target = format!("/{}", deep_path(MAX));
    let layers = vec![
        Tar::new()
            .pax(&[(b"linkpath", target.as_bytes())])
            .symlink("a", "harmless")
            .finish(),
        Tar::new().file("a/x", b"x").finish(),
    ];
    unpack_deep(layers, |_, r| too_deep(r));
}
