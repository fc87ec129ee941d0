//! Work interrupted by a crash (SIGKILL) is never taken for finished work,
//! and its leftovers are swept by the next run of the same work:
//!
//! - an image root build that died leaves `images/<manifest>.tmp-*`, swept
//!   when the image's root is built again;
//! - a garbage collection killed while deleting an image root never leaves
//!   a half-deleted root beside its `info.json` (the next build would take
//!   it for a whole root): the root is renamed away before it is deleted;
//! - `unpack` into a directory, killed, leaves the directory as it was and a
//!   hidden temp sibling that the same unpack, run again, sweeps.
//!
//! - a full disk while a changeset or an image root's `info.json` is
//!   written leaves no temp file or half-built root.
//!
//! Found by the end-to-end crash and disk-full tests (tests/tests/crash.rs,
//! tests/tests/diskfull.rs).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_store::media::{types, Descriptor};
use cairn_store::{Image, Store};
use cairn_unpacker::{Mode, Unpacker, UnpackerOptions};
use common::*;

/// A store holding one single-layer image named `localhost/t:1`.
fn store_with_image(root: &Path, layer_tar: &[u8]) -> (Store, Image) {
    let store = Store::open(root).unwrap();
    let manifest = add_image(&store, Some("localhost/t:1"), layer_tar);
    let image = store.image_by_manifest(&manifest).unwrap().unwrap();
    (store, image)
}

/// A pid no process has (the highest one the kernel would hand out).
fn dead_pid() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (1..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap()
}

#[test]
fn a_root_build_that_died_is_swept_when_the_image_is_built_again() {
    let dir = tempfile::tempdir().unwrap();
    let tar = Tar::new().file("etc/a", b"alpha").finish();
    let (store, image) = store_with_image(&dir.path().join("store"), &tar);
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let hex = image.digest().hex().to_owned();
    let images = store.root().join("images");
    let chains = store.root().join("chains");
    let chain = u.chain_names(&image).remove(0);
    // What a builder killed mid-materialize leaves, and what a GC killed
    // after renaming a root or a layer directory away leaves.
    for (dir, stem, sub) in [(&images, &hex, "rootfs"), (&chains, &chain, "diff")] {
        for leftover in [
            format!("{stem}.tmp-{}", dead_pid()),
            format!("{stem}.tmp-gc-1"),
        ] {
            fs::create_dir_all(dir.join(&leftover).join(sub).join("etc")).unwrap();
            fs::write(dir.join(&leftover).join(sub).join("etc/a"), b"al").unwrap();
        }
    }
    let root = u.image_root(&image).unwrap();
    assert!(root.built);
    assert_eq!(
        fs::read(root.find(Path::new("etc/a")).unwrap()).unwrap(),
        b"alpha"
    );
    assert_eq!(names(&images), vec![hex]);
    assert_eq!(names(&chains), vec![chain]);
}

#[test]
fn an_unpack_that_died_is_completed_by_the_same_unpack_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.tar");
    fs::write(
        &layer,
        Tar::new()
            .file("etc/a", b"alpha")
            .file("etc/b", b"bravo")
            .finish(),
    )
    .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    // A killed unpack into `work/out` leaves a partial hidden sibling and no
    // `out`; one into the existing empty `work/empty` leaves it empty.
    let pid = dead_pid();
    for name in ["out", "empty"] {
        let partial = work.join(format!(".{name}.unpack-{pid}"));
        fs::create_dir_all(partial.join("etc")).unwrap();
        fs::write(partial.join("etc/a"), b"al").unwrap();
    }
    fs::create_dir(work.join("empty")).unwrap();
    // A live unpack's sibling (this process's pid is alive) is left alone.
    let live = work.join(format!(".other.unpack-{}", std::process::id()));
    fs::create_dir(&live).unwrap();
    for name in ["out", "empty"] {
        let target = work.join(name);
        u.unpack_files(std::slice::from_ref(&layer), &target, Mode::Copy)
            .unwrap();
        assert_eq!(listing(&target), tokens("etc/ etc/a=alpha etc/b=bravo"));
    }
    assert_eq!(
        names(&work),
        vec![
            ".other.unpack-".to_owned() + &std::process::id().to_string(),
            "empty".into(),
            "out".into()
        ]
    );

    // A target that cannot be renamed onto (a mount point) is written in
    // place; that needs root to mount.
    if is_root() {
        let mnt = work.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success());
        let r = u.unpack_files(std::slice::from_ref(&layer), &mnt, Mode::Copy);
        let in_place = listing(&mnt);
        let _ = Command::new("umount").arg(&mnt).status();
        r.unwrap();
        assert_eq!(in_place, tokens("etc/ etc/a=alpha etc/b=bravo"));
        assert!(!names(&work).iter().any(|n| n.starts_with(".mnt.")));
    }
}

/// Run by [`a_gc_killed_while_deleting_a_root_never_leaves_it_looking_whole`]
/// in a child process (it does nothing otherwise): collects the garbage of
/// the store at `$CAIRN_TEST_GC_STORE`.
#[test]
fn gc_child() {
    let Some(root) = std::env::var_os("CAIRN_TEST_GC_STORE") else {
        return;
    };
    let store = Store::open(PathBuf::from(root)).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    u.collect_garbage(true).unwrap();
}

#[test]
fn a_gc_killed_while_deleting_a_root_never_leaves_it_looking_whole() {
    const FILES: usize = 8_000;
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Tar::new().dir("d");
    for i in 0..FILES {
        tar = tar.file(format!("d/f{i}"), format!("{i}").as_bytes());
    }
    let tar = tar.finish();
    let (store, image) = store_with_image(&dir.path().join("store"), &tar);
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let chains = store.root().join("chains");
    let chain = u.chain_names(&image).remove(0);
    let mut killed_mid_delete = 0;
    for attempt in 0..3 {
        let root = u.image_root(&image).unwrap();
        assert_eq!(names(&root.find(Path::new("d")).unwrap()).len(), FILES);
        // The image loses its last ref (what rmi does before collecting).
        store
            .update_index(|index| {
                index.manifests.clear();
                Ok(true)
            })
            .unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "gc_child", "--nocapture", "--test-threads=1"])
            .env("CAIRN_TEST_GC_STORE", store.root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once it is deleting files of the layer directory
        // (wherever it is by then), or when it is done.
        let deadline = Instant::now() + Duration::from_secs(60);
        let deleting = || {
            let dirs: Vec<PathBuf> = names(&chains)
                .iter()
                .map(|n| chains.join(n).join("diff/d"))
                .collect();
            dirs.iter().any(|d| {
                fs::read_dir(d)
                    .map(|rd| rd.count() < FILES - 50 * (attempt + 1))
                    .unwrap_or(false)
            })
        };
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if deleting() {
                child.kill().unwrap();
                killed_mid_delete += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the GC child never started deleting"
            );
        }
        child.wait().unwrap();
        if chains.join(&chain).exists() {
            assert_eq!(
                names(&chains.join(&chain).join("diff/d")).len(),
                FILES,
                "attempt {attempt}: a half-deleted layer directory under its name"
            );
        }
        // Back in the index: the next build must give a whole root.
        store
            .set_ref(
                &"localhost/t:1".parse().unwrap(),
                &Descriptor::new(
                    types::OCI_MANIFEST,
                    image.digest().clone(),
                    store.blob_size(image.digest()).unwrap(),
                ),
                None,
            )
            .unwrap();
        let root = u.image_root(&image).unwrap();
        assert_eq!(
            names(&root.find(Path::new("d")).unwrap()).len(),
            FILES,
            "attempt {attempt}"
        );
        assert_eq!(
            names(&store.root().join("images")),
            vec![image.digest().hex().to_owned()],
            "attempt {attempt}: leftovers swept by the build"
        );
    }
    assert!(killed_mid_delete > 0, "no kill landed while the GC deleted");
}

/// A tmpfs of `size` at `dir` (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
        Tmpfs(dir.to_owned())
    }

    /// Writes zeros until the filesystem is full.
    fn fill(&self) {
        use std::io::Write as _;
        let mut f = fs::File::create(self.0.join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the unpacker under test may still hold a directory open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_no_changeset_temp_file_and_no_half_built_root() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("mnt"), "4m");
    let mut tar = Tar::new().dir("d");
    for i in 0..50 {
        tar = tar.file(format!("d/f{i}"), format!("{i}").as_bytes());
    }
    let (store, image) = store_with_image(&disk.0.join("store"), &tar.finish());
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    u.image_root(&image).unwrap();
    let images = store.root().join("images");
    let layers = store.root().join("layers");
    fs::remove_dir_all(images.join(image.digest().hex())).unwrap();
    for n in names(&layers) {
        fs::remove_file(layers.join(n)).unwrap();
    }
    disk.fill();
    // The objects are there: decoding again writes only the changeset, and
    // that fails; then building the root writes only info.json (links and
    // directories take no space on tmpfs), and that fails.
    let blob = &image.manifest.layers[0].digest;
    let err = u.layer(blob).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(names(&layers).is_empty(), "{:?}", names(&layers));
    fs::remove_file(disk.0.join("filler")).unwrap();
    u.layer(blob).unwrap();
    disk.fill();
    let err = u.image_root(&image).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(names(&images).is_empty(), "{:?}", names(&images));
    drop(disk);
}
