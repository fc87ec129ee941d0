//! A full disk: `pull`, `unpack` and `create` on a small tmpfs (mounted here,
//! so root only; the tests say "skipped" otherwise) fail with exit 125 and
//! one error line that says the disk is full and names the path or the
//! reference, and leave no partial state: no ref, no `.partial`, no
//! half-built image root or changeset, no container directory, nothing
//! beside an unpack target; `system check` is clean. With space again, the
//! same command completes and gives a whole image (nothing partial from the
//! failed run is used).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::fixtures::{self, refs};
use cairn_tests::util::{dir_names as names, is_root};
use cairn_tests::{Cairn, ImageSpec, OciLayout, Registry, RegistryOptions, Run};

/// A tmpfs of `size` mounted for the test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = cairn_tests::util::temp_dir("diskfull").unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount a {size} tmpfs");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount to {size}");
    }

    /// Writes a file of zeros until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let p = self.path().join("filler");
        let mut f = fs::File::create(&p).unwrap();
        let block = vec![0u8; 64 << 10];
        loop {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        // Whatever part of a block still fits.
        for _ in 0..16 {
            let _ = f.write_all(&[0u8; 4096]);
        }
        let _ = f.write_all(&[0u8; 1]);
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let st = Command::new("umount").arg(self.dir.path()).status();
        if !st.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

macro_rules! root_only {
    () => {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
    };
}

/// The run failed with exit 125 and exactly one error line that says the
/// disk is full and names one of `names`; returns the line.
fn assert_disk_full(r: &Run, names: &[&str], what: &str) -> String {
    assert_eq!(
        r.code, 125,
        "{what}: exit {}:\n{}{}",
        r.code, r.stdout, r.stderr
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error"))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line: {}", r.stderr);
    let line = errors[0];
    assert!(
        line.contains("No space left on device") || line.contains("disk is full"),
        "{what}: says the disk is full: {line}"
    );
    assert!(
        names.iter().any(|n| line.contains(n)),
        "{what}: names one of {names:?}: {line}"
    );
    assert!(
        line.contains("free some space"),
        "{what}: says what to do: {line}"
    );
    line.to_owned()
}

/// Temp files, half-built image roots and changesets, container dirs.
fn partial_state(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = names(&root.join("tmp"))
        .into_iter()
        .map(|n| format!("tmp/{n}"))
        .collect();
    out.extend(
        names(&root.join("images"))
            .into_iter()
            .map(|n| format!("images/{n}")),
    );
    out.extend(
        names(&root.join("chains"))
            .into_iter()
            .map(|n| format!("chains/{n}")),
    );
    out.extend(
        names(&root.join("layers"))
            .into_iter()
            .filter(|n| !n.ends_with(".cs"))
            .map(|n| format!("layers/{n}")),
    );
    out.extend(
        names(&root.join("objects"))
            .into_iter()
            .filter(|n| n.len() != 2)
            .map(|n| format!("objects/{n}")),
    );
    out.extend(
        names(&root.join("containers"))
            .into_iter()
            .map(|n| format!("containers/{n}")),
    );
    out
}

fn registry_with(fixture: &str, dest: &str) -> (Registry, String) {
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let r = reg.push_fixture(fixture, dest);
    (reg, r)
}

/// What a container of the image sees (os-release and a digest of /usr).
fn content(c: &Cairn, image: &str) -> String {
    c.ok([
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        // Directory sizes depend on the filesystem: left out.
        "cat /etc/os-release; cd / && find usr -xdev \\( -type d -printf '%p d %m\\n' \\) -o -printf '%p %y %s %m\\n' | LC_ALL=C sort | md5sum; md5sum usr/bin/bash",
    ])
}

/// debian-min is 48 MB of blob and 121 MB of files: on 40 MiB its download
/// does not fit, on 100 MiB its layer does not unpack. Both fail in one
/// line, keep no ref and no partial file; with room, the same pull gives
/// the same image as a pull that never failed.
#[test]
fn pull_on_a_full_disk_fails_in_one_line_and_leaves_nothing_partial() {
    root_only!();
    let (_reg, reference) = registry_with(refs::DEBIAN_MIN, "debian:1");
    let reference_store = Cairn::new().unwrap();
    reference_store.ok(["pull", "-q", "--tls-verify=false", &reference]);
    let want = content(&reference_store, &reference);
    for (size, stage) in [("40m", "download"), ("100m", "unpack")] {
        let disk = SmallDisk::mount(size);
        let mut c = Cairn::new().unwrap();
        c.set_root(&disk.path().join("store"));
        let what = format!("pull on {size} (the {stage} does not fit)");
        let r = c.run(["pull", "-q", "--tls-verify=false", &reference]);
        let line = assert_disk_full(&r, &[&disk.path().display().to_string(), &reference], &what);
        eprintln!("{what}: {line}");
        assert!(
            c.refs().is_empty(),
            "{what}: a ref was kept: {:?}",
            c.refs()
        );
        let left = partial_state(c.root());
        assert!(left.is_empty(), "{what}: partial state left: {left:?}");
        c.assert_clean_after(&what);
        // Room again: the same pull completes and the image is whole.
        disk.resize("400m");
        c.ok(["pull", "-q", "--tls-verify=false", &reference]);
        c.assert_clean_after(&format!("{what}, then pulled with room"));
        assert_eq!(
            content(&c, &reference),
            want,
            "{what}, then pulled with room"
        );
        c.ok(["rmi", "-a"]);
    }
}

/// `cairn unpack --layer` decoding into a store on a full disk, and
/// `cairn unpack IMAGE DIR` copying onto a full disk: one line, no target
/// left, nothing beside it, a clean store; with room, the same unpack
/// completes.
#[test]
fn unpack_on_a_full_disk_fails_in_one_line_and_leaves_nothing_partial() {
    root_only!();
    let layout = fixtures::layout();
    let layer = {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let desc = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == refs::DEBIAN_MIN)
            .unwrap()
            .clone();
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(
                layout
                    .join("blobs/sha256")
                    .join(&desc["digest"].as_str().unwrap()["sha256:".len()..]),
            )
            .unwrap(),
        )
        .unwrap();
        layout
            .join("blobs/sha256")
            .join(&manifest["layers"][0]["digest"].as_str().unwrap()["sha256:".len()..])
    };

    // 1. The store (objects) on the small disk.
    let disk = SmallDisk::mount("64m");
    let mut c = Cairn::new().unwrap();
    c.set_root(&disk.path().join("store"));
    let target = disk.path().join("out");
    let args = [
        "unpack".to_owned(),
        "--layer".to_owned(),
        layer.display().to_string(),
        target.display().to_string(),
    ];
    let what = "unpack --layer into a store on 64 MiB";
    let r = c.run(&args);
    let line = assert_disk_full(&r, &[&disk.path().display().to_string()], what);
    eprintln!("{what}: {line}");
    assert_eq!(
        names(disk.path()),
        vec!["store"],
        "{what}: beside the target"
    );
    let left = partial_state(c.root());
    assert!(left.is_empty(), "{what}: {left:?}");
    c.assert_clean_after(what);
    disk.resize("400m");
    c.ok(&args);
    assert!(target.join("usr/bin/bash").is_file());
    drop(disk);

    // 2. The store elsewhere, the target on the small disk.
    let c = Cairn::new().unwrap();
    let id = c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let id = id.trim();
    let disk = SmallDisk::mount("64m");
    let target = disk.path().join("out");
    let what = "unpack IMAGE onto 64 MiB";
    let r = c.run(["unpack", id, &target.display().to_string()]);
    // The path named is under the target asked for, not the hidden
    // directory the tree is built in.
    let line = assert_disk_full(&r, &[&target.display().to_string()], what);
    assert!(!line.contains(".unpack-"), "{what}: {line}");
    eprintln!("{what}: {line}");
    assert!(
        names(disk.path()).is_empty(),
        "{what}: left {:?}",
        names(disk.path())
    );
    c.assert_clean_after(what);
    disk.resize("400m");
    c.ok(["unpack", id, &target.display().to_string()]);
    assert!(target.join("usr/bin/bash").is_file());
}

/// `create` on a full disk, with the image root built and without (the
/// root is then built by create): one line, no container directory, no
/// half image root, a clean store; with room, the same create completes.
#[test]
fn create_on_a_full_disk_fails_in_one_line_and_leaves_nothing_partial() {
    root_only!();
    let work = cairn_tests::util::temp_dir("diskfull-image").unwrap();
    let layout = OciLayout::create(&work.path().join("layout")).unwrap();
    let big = vec![7u8; 2 << 20];
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("srv/data/f{i}"), format!("file {i}").into_bytes()))
        .collect();
    let mut layer: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    layer.push(("srv/big", &big));
    let image = layout
        .add_image("small", &ImageSpec::new().layer(&layer))
        .unwrap();
    let disk = SmallDisk::mount("16m");
    let mut c = Cairn::new().unwrap();
    c.set_root(&disk.path().join("store"));
    let id = c.ok(["pull", "-q", &image.skopeo_ref]);
    let id = id.trim().to_owned();
    let manifest_hex = &image.manifest_digest["sha256:".len()..];
    for rebuild in [false, true] {
        let what = format!("create on a full 16 MiB disk (image root built by create: {rebuild})");
        if rebuild {
            fs::remove_dir_all(c.root().join("images").join(manifest_hex)).unwrap();
            fs::remove_dir_all(c.root().join("chains")).unwrap();
            // The changeset too: create must decode the layer again.
            for n in names(&c.root().join("layers")) {
                fs::remove_file(c.root().join("layers").join(n)).unwrap();
            }
        }
        let filler = disk.fill();
        let r = c.run(["create", "--name", "full", &id, "true"]);
        let line = assert_disk_full(&r, &[&disk.path().display().to_string(), &id[..12]], &what);
        eprintln!("{what}: {line}");
        let left: Vec<String> = partial_state(c.root())
            .into_iter()
            .filter(|p| !(p.starts_with("images/") || p.starts_with("chains/")) || rebuild)
            .collect();
        assert!(left.is_empty(), "{what}: partial state left: {left:?}");
        assert_eq!(c.ok(["ps", "-a", "-q"]), "", "{what}");
        c.assert_clean_after(&what);
        fs::remove_file(filler).unwrap();
        c.ok(["create", "--name", "full", &id, "true"]);
        c.assert_clean_after(&format!("{what}, then created with room"));
        let lowers = cairn_tests::roots::lowers(c.root(), manifest_hex);
        let find = |p: &str| cairn_tests::roots::find(&lowers, p).unwrap();
        assert_eq!(fs::read(find("srv/big")).unwrap(), big, "{what}");
        assert_eq!(names(&find("srv/data")).len(), 40, "{what}");
        c.ok(["rm", "full"]);
    }
}
