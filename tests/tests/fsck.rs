//! End-to-end: `cairn system check [--repair] [--full]` finds what is damaged
//! in the derived data (objects, image roots) and the containers, repairs it
//! from stored blobs without fetching anything, and never pulls an image
//! root out from under a running container.

use std::fs;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cairn_tests::fixtures::{self, refs};
use cairn_tests::Cairn;

fn with_image() -> (Cairn, String) {
    let c = Cairn::new().unwrap();
    c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = c.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    (c, image.lines().next().unwrap().to_owned())
}

/// An object of the image root that `path` (inside the image) links.
fn object_of(c: &Cairn, path: &str) -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let lowers = cairn_tests::roots::lowers(c.root(), "");
    let found = cairn_tests::roots::find(&lowers, path).expect("in the image root");
    let ino = fs::metadata(found).unwrap().ino();
    for sub in fs::read_dir(c.root().join("objects")).unwrap().flatten() {
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        for o in fs::read_dir(sub.path()).unwrap().flatten() {
            if o.metadata().unwrap().ino() == ino {
                return o.path();
            }
        }
    }
    panic!("no object for {path}");
}

fn flip_byte(path: &Path) {
    let mode = fs::metadata(path).unwrap().permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    f.write_all(b"\xff").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_corrupt_object_is_found_and_repaired_from_stored_blobs() {
    let (c, image) = with_image();
    c.assert_clean();
    let obj = object_of(&c, "etc/os-release");
    flip_byte(&obj);
    let r = c.run(["system", "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("corrupt object: objects/"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("damaged image root: images/"),
        "{}",
        r.stdout
    );
    // A running container keeps its (damaged) root: repair refuses to
    // replace it and keeps what proves the damage.
    c.ok(["run", "-d", "--name", "busy", &image, "sleep", "1000"]);
    let r = c.run(["system", "check", "--repair"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("in use by running containers"),
        "{}",
        r.stderr
    );
    assert_eq!(c.run(["system", "check"]).code, 1, "still reported");
    c.ok(["rm", "-f", "-t", "0", "busy"]);
    let out = c.ok(["system", "check", "--repair"]);
    assert!(out.contains("rebuilt 1 image roots"), "{out}");
    c.assert_clean();
    assert_eq!(c.run(["system", "check", "--full"]).code, 0);
    let os = c.ok(["run", "--rm", &image, "head", "-1", "/etc/os-release"]);
    assert_eq!(os, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
}

#[test]
fn a_changed_mode_in_an_image_root_is_found_by_a_full_check() {
    let (c, _image) = with_image();
    let obj = object_of(&c, "usr/bin/passwd");
    // The object itself changing mode is caught by every check.
    fs::set_permissions(&obj, fs::Permissions::from_mode(0o755)).unwrap();
    let r = c.run(["system", "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("mode 755, expected 4755"), "{}", r.stdout);
    c.ok(["system", "check", "--repair"]);
    c.assert_clean();
    let mode = fs::metadata(object_of(&c, "usr/bin/passwd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}

#[test]
fn container_leftovers_and_missing_image_roots_are_repaired() {
    let (c, image) = with_image();
    c.ok(["create", "--name", "keep", &image, "true"]);
    // An interrupted create and an interrupted rm.
    fs::create_dir_all(c.root().join("containers/.tmp-abc/upper")).unwrap();
    fs::create_dir_all(c.root().join("containers/.rm-def/work")).unwrap();
    // The image root vanished (e.g. removed by hand).
    let root = c.ok([
        "inspect",
        "--format",
        "{{.GraphDriver.Data.LowerDir}}",
        "keep",
    ]);
    let root = PathBuf::from(root.trim());
    fs::remove_dir_all(root.parent().unwrap()).unwrap();
    let r = c.run(["system", "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(".tmp-abc: left over"), "{}", r.stdout);
    assert!(r.stdout.contains("keep: image root"), "{}", r.stdout);
    c.ok(["system", "check", "--repair"]);
    c.assert_clean();
    assert!(!c.root().join("containers/.tmp-abc").exists());
    assert!(root.is_dir(), "image root rebuilt from the stored blobs");
    assert_eq!(c.run(["start", "-a", "keep"]).code, 0);
}
