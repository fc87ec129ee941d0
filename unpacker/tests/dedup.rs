//! File-level dedup: identical files (same content, mode, owner, xattrs, mtime)
//! share one inode across layers and image roots in hardlink mode, so an
//! image sharing all but its top layer with another costs only that layer;
//! copy mode gives private files and keeps only the hardlinks the layers
//! themselves made; a failed unpack leaves the target empty.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn_unpacker::{
    DecodeOptions, Error, Mode, NodeKind, ObjectStore, Plan, RootPath, Unpacker, UnpackerOptions,
};
use common::*;

fn nlink(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().nlink()
}

/// The object a planned regular file is linked from.
fn object_of(layers: &[Vec<u8>], objects: &ObjectStore, path: &str) -> PathBuf {
    let sets: Vec<_> = layers
        .iter()
        .map(|l| {
            cairn_unpacker::decode(&l[..], "l", None, objects, &DecodeOptions::default())
                .unwrap()
                .changeset
        })
        .collect();
    let plan = Plan::from_layers(&sets).unwrap();
    match &plan
        .get(&RootPath::normalize(path.as_bytes()).unwrap())
        .unwrap()
        .kind
    {
        NodeKind::File { object, .. } => objects.path(object),
        other => panic!("{path} is {other:?}"),
    }
}

fn with_owner(name: &str, uid: u64, mtime: u64) -> Hdr {
    let mut h = Hdr::new(name.as_bytes(), b'0');
    h.uid = uid;
    h.gid = uid;
    h.mtime = mtime;
    h
}

fn layers() -> Vec<Vec<u8>> {
    vec![
        Tar::new()
            .dir("a")
            .file("a/same", b"identical content")
            .file("a/unique", b"only here")
            .finish(),
        Tar::new()
            .dir("b")
            .file("b/same", b"identical content")
            .file_mode("b/other-mode", b"identical content", 0o600)
            .file_hdr(
                with_owner("b/other-owner", 1000, 1_600_000_000),
                b"identical content",
            )
            .pax(&[(b"SCHILY.xattr.user.tag", b"v")])
            .file("b/other-xattr", b"identical content")
            .finish(),
    ]
}

#[test]
fn identical_files_share_one_inode_across_layers_and_roots_in_hardlink_mode() {
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let (t1, t2) = (dir.path().join("root1"), dir.path().join("root2"));
    for t in [&t1, &t2] {
        fs::create_dir(t).unwrap();
        unpack(
            &layers(),
            &[],
            &objects,
            &DecodeOptions::default(),
            t,
            Mode::Hardlink,
        )
        .unwrap();
    }
    let same = ino_of(&t1.join("a/same"));
    assert_eq!(ino_of(&t1.join("b/same")), same, "across layers");
    assert_eq!(ino_of(&t2.join("a/same")), same, "across image roots");
    assert_eq!(
        ino_of(&object_of(&layers(), &objects, "a/same")),
        same,
        "the object itself"
    );
    // Object + 2 paths in each of 2 roots.
    assert_eq!(nlink(&t1.join("a/same")), 5);
    for differs in ["b/other-mode", "b/other-xattr"] {
        assert_ne!(ino_of(&t1.join(differs)), same, "{differs}");
    }
    assert_ne!(ino_of(&t1.join("b/other-owner")), same, "other owner");
    if is_root() {
        assert_eq!(fs::metadata(t1.join("b/other-owner")).unwrap().uid(), 1000);
    }
    assert_eq!(mode_of(&t1.join("b/other-mode")), 0o600);
    assert_eq!(mode_of(&t1.join("b/same")), 0o644);
    assert_eq!(
        xattr(&t1.join("b/other-xattr"), "user.tag").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(xattr(&t1.join("b/same"), "user.tag"), None);
    // Objects: identical content + metadata stored once.
    assert_eq!(object_count(&objects), 5, "one object per distinct file");
}

#[test]
fn copy_mode_keeps_only_the_layers_own_hardlinks() {
    let layers = vec![
        Tar::new()
            .file("a", b"same")
            .hardlink("b", "a")
            .file("c", b"same")
            .dir("sub")
            .hardlink("sub/e", "a")
            .finish(),
        Tar::new().hardlink("d", "b").file("f", b"same").finish(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let copy = dir.path().join("copy");
    fs::create_dir(&copy).unwrap();
    let stats = unpack(
        &layers,
        &[],
        &objects,
        &DecodeOptions::default(),
        &copy,
        Mode::Copy,
    )
    .unwrap();
    let group = ino_of(&copy.join("a"));
    for p in ["b", "d", "sub/e"] {
        assert_eq!(
            ino_of(&copy.join(p)),
            group,
            "{p} is a hardlink of a in the layers"
        );
    }
    for p in ["c", "f"] {
        assert_ne!(
            ino_of(&copy.join(p)),
            group,
            "{p} is a separate file in the layers"
        );
        assert_eq!(nlink(&copy.join(p)), 1, "{p}");
    }
    assert_ne!(ino_of(&copy.join("c")), ino_of(&copy.join("f")));
    assert_eq!(nlink(&copy.join("a")), 4);
    let object = object_of(&layers, &objects, "a");
    assert_ne!(ino_of(&object), group, "copies are not the object");
    assert_eq!(stats.copied, 3, "{stats:?}");
    assert_eq!(stats.linked, 3, "{stats:?}");
    for p in ["a", "b", "c", "d", "f", "sub/e"] {
        assert_eq!(fs::read(copy.join(p)).unwrap(), b"same", "{p}");
    }

    // Hardlink mode may share more: all six are the object.
    let hl = dir.path().join("hardlink");
    fs::create_dir(&hl).unwrap();
    unpack(
        &layers,
        &[],
        &objects,
        &DecodeOptions::default(),
        &hl,
        Mode::Hardlink,
    )
    .unwrap();
    for p in ["a", "b", "c", "d", "f", "sub/e"] {
        assert_eq!(ino_of(&hl.join(p)), ino_of(&object), "{p}");
    }
}

#[test]
fn copy_mode_files_keep_their_own_mtimes() {
    let layers = vec![
        Tar::new()
            .file_hdr(with_owner("a", 0, 1_000_000_001), b"same")
            .finish(),
        Tar::new()
            .file_hdr(with_owner("b", 0, 1_000_000_002), b"same")
            .finish(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let t = dir.path().join("t");
    fs::create_dir(&t).unwrap();
    unpack(
        &layers,
        &[],
        &objects,
        &DecodeOptions::default(),
        &t,
        Mode::Copy,
    )
    .unwrap();
    let mt = |p: &str| fs::metadata(t.join(p)).unwrap().mtime();
    assert_eq!((mt("a"), mt("b")), (1_000_000_001, 1_000_000_002));
}

/// Files in the object store.
fn object_count(objects: &ObjectStore) -> usize {
    fs::read_dir(objects.dir())
        .unwrap()
        .map(|e| fs::read_dir(e.unwrap().path()).unwrap().count())
        .sum()
}

/// Inode of every regular file under `root`, by relative path.
fn file_inodes(root: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, m.ino());
            }
        }
    }
    out
}

#[test]
fn a_sibling_image_costs_only_its_top_layer() {
    let mut base = Tar::new().dir("usr").dir("usr/lib");
    for i in 0..200 {
        base = base.file(format!("usr/lib/f{i}"), format!("library {i}").as_bytes());
    }
    let base = base.finish();
    let middle = Tar::new()
        .file("etc/config", b"config")
        .whiteout("usr/lib/.wh.f0")
        .finish();
    let top_a = Tar::new().file("app/a", b"only in a").finish();
    let top_b = Tar::new()
        .file("app/b", b"only in b")
        .file("app/copy", b"library 7")
        .file("app/b2", b"also only in b")
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let (ra, rb) = (dir.path().join("a"), dir.path().join("b"));
    let opts = DecodeOptions::default();
    fs::create_dir(&ra).unwrap();
    let image_a = [base.clone(), middle.clone(), top_a];
    unpack(&image_a, &[], &objects, &opts, &ra, Mode::Hardlink).unwrap();
    let after_a = object_count(&objects);
    // 200 library files (f0 whited out, its object stays), config, a.
    assert_eq!(after_a, 202);

    fs::create_dir(&rb).unwrap();
    let image_b = [base, middle, top_b];
    unpack(&image_b, &[], &objects, &opts, &rb, Mode::Hardlink).unwrap();
    assert_eq!(
        object_count(&objects) - after_a,
        2,
        "only b and b2 are new: app/copy has the content of usr/lib/f7"
    );

    let (ia, ib) = (file_inodes(&ra), file_inodes(&rb));
    assert_eq!(ia.len(), 201);
    assert_eq!(ib.len(), 203);
    for (path, ino) in &ib {
        if let Some(a) = ia.get(path) {
            assert_eq!(a, ino, "{path} is one inode in both roots");
        }
    }
    assert_eq!(ib["app/copy"], ia["usr/lib/f7"]);
    let distinct: std::collections::HashSet<u64> =
        ia.values().chain(ib.values()).copied().collect();
    assert_eq!(distinct.len(), ia.len() + 2, "the sibling adds two inodes");
}

fn write_layers(dir: &Path, layers: &[Vec<u8>]) -> Vec<PathBuf> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = dir.join(format!("layer{i}"));
            fs::write(&p, l).unwrap();
            p
        })
        .collect()
}

fn unpacker(root: &Path, max: u64) -> Unpacker {
    let store = cairn_store::Store::open(root).unwrap();
    let mut opts = UnpackerOptions::default();
    opts.decode.max_layer_size = max;
    Unpacker::new(&store, opts).unwrap()
}

#[test]
fn a_failed_unpack_leaves_the_target_empty() {
    let dir = tempfile::tempdir().unwrap();
    let good = gzip(
        &Tar::new()
            .dir("etc")
            .file("etc/a", b"alpha")
            .file("etc/b", b"bravo")
            .finish(),
    );
    let bomb = gzip(&Tar::new().file("zeros", &vec![0u8; 32 << 20]).finish());
    let files = write_layers(dir.path(), &[good.clone(), bomb]);
    let u = unpacker(&dir.path().join("store"), 1 << 20);

    // An empty target stays empty; a missing one is not left behind with
    // anything in it.
    for target in [dir.path().join("empty"), dir.path().join("missing")] {
        if target.ends_with("empty") {
            fs::create_dir(&target).unwrap();
        }
        for mode in [Mode::Hardlink, Mode::Copy] {
            let err = u.unpack_files(&files, &target, mode).unwrap_err();
            assert!(
                matches!(root_cause(&err), Error::TooLarge { .. }),
                "bomb in layer 2: {err}"
            );
            assert!(err.to_string().contains("layer1"), "names the layer: {err}");
            assert!(empty_or_missing(&target), "{}", target.display());
        }
    }

    // Failing while materializing (an invalid file capability on the last
    // directory written), after everything else was created.
    let bad_dir_attr = if is_root() {
        (
            &b"SCHILY.xattr.security.capability"[..],
            b"garbage".to_vec(),
        )
    } else {
        // Larger than an ext4 xattr block.
        (&b"SCHILY.xattr.user.big"[..], vec![b'x'; 16 << 10])
    };
    let late_failure = Tar::new()
        .dir("many")
        .file("many/1", b"1")
        .file("many/2", b"2")
        .pax(&[(bad_dir_attr.0, &bad_dir_attr.1)])
        .dir("zzz")
        .finish();
    let files = write_layers(dir.path(), &[good, late_failure]);
    let u = unpacker(&dir.path().join("store"), 1 << 30);
    let target = dir.path().join("late");
    fs::create_dir(&target).unwrap();
    for mode in [Mode::Hardlink, Mode::Copy] {
        let err = u.unpack_files(&files, &target, mode).unwrap_err();
        assert!(
            matches!(root_cause(&err), Error::Io(_)),
            "materialize fails: {err}"
        );
        assert!(empty_or_missing(&target), "{:?}", listing(&target));
    }
}

#[test]
fn unpacking_into_a_non_empty_directory_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_layers(dir.path(), &[Tar::new().file("etc/a", b"new").finish()]);
    let u = unpacker(&dir.path().join("store"), 1 << 30);
    let target = dir.path().join("busy");
    fs::create_dir_all(target.join("etc")).unwrap();
    fs::write(target.join("etc/a"), b"mine").unwrap();
    fs::write(target.join("keep"), b"mine").unwrap();
    let err = u.unpack_files(&files, &target, Mode::Copy).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(listing(&target), tokens("etc/ etc/a=mine keep=mine"));
}

#[test]
fn unpack_files_applies_layers_in_order_and_shares_objects_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_layers(
        dir.path(),
        &[
            gzip(
                &Tar::new()
                    .file("etc/a", b"1")
                    .file("etc/b", b"shared")
                    .finish(),
            ),
            zstd(
                &Tar::new()
                    .file("etc/a", b"2")
                    .whiteout("etc/.wh.c")
                    .finish(),
            ),
            Tar::new().file("etc/c", b"3").finish(),
        ],
    );
    let u = unpacker(&dir.path().join("store"), 1 << 30);
    let (t1, t2) = (dir.path().join("t1"), dir.path().join("t2"));
    u.unpack_files(&files, &t1, Mode::Hardlink).unwrap();
    u.unpack_files(&files, &t2, Mode::Hardlink).unwrap();
    assert_eq!(listing(&t1), tokens("etc/ etc/a=2 etc/b=shared etc/c=3"));
    assert_eq!(ino_of(&t1.join("etc/b")), ino_of(&t2.join("etc/b")));
    let t3 = dir.path().join("t3");
    u.unpack_files(&files, &t3, Mode::Copy).unwrap();
    assert_eq!(listing(&t3), listing(&t1));
    assert_ne!(ino_of(&t3.join("etc/b")), ino_of(&t1.join("etc/b")));
}

/// ext4 allows 65000 links to an inode; an empty file is in every image, so
/// its object reaches that. Files past the limit get private copies.
#[test]
fn an_object_past_the_filesystem_link_limit_falls_back_to_copies() {
    const N: usize = 66_000;
    let mut t = Tar::new().dir("e");
    for i in 0..N {
        t = t.file(format!("e/{i:05}"), b"");
    }
    let layer = t.finish();
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let target = dir.path().join("t");
    fs::create_dir(&target).unwrap();
    let stats = unpack(
        &[layer],
        &[],
        &objects,
        &DecodeOptions::default(),
        &target,
        Mode::Hardlink,
    )
    .unwrap();
    eprintln!("{stats:?}");
    assert_eq!(stats.linked + stats.copied, N as u64, "{stats:?}");
    let first = target.join("e/00000");
    let last = target.join(format!("e/{:05}", N - 1));
    assert_eq!(fs::read(&last).unwrap(), b"");
    assert_eq!(mode_of(&last), 0o644);
    assert_eq!(fs::metadata(&last).unwrap().mtime(), 1_600_000_000);
    if nlink(&first) >= 65_000 {
        assert!(stats.copied > 0, "the link limit was reached: {stats:?}");
        assert_ne!(ino_of(&first), ino_of(&last));
    }
}

/// Buffers are reused from file to file as a layer is decoded (in-memory
/// jobs, and the inline path of larger files): every object still holds
/// exactly its own file, whatever the sizes before it.
#[test]
fn each_file_gets_its_own_bytes_whatever_came_before() {
    let sizes = [70_000usize, 3, 0, 65_537, 300_000, 5, 5 << 20, 2, 65_536, 1];
    let content =
        |i: usize, n: usize| -> Vec<u8> { (0..n).map(|j| (i * 31 + j % 251) as u8).collect() };
    let mut tar = Tar::new();
    for (i, &n) in sizes.iter().enumerate() {
        tar = tar.file(format!("f{i}"), &content(i, n));
    }
    let layer = gzip(&tar.finish());
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), cairn_unpacker::Ownership::Apply).unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        let object = object_of(std::slice::from_ref(&layer), &objects, &format!("f{i}"));
        assert_eq!(
            fs::read(&object).unwrap(),
            content(i, n),
            "f{i} ({n} bytes)"
        );
    }
}
