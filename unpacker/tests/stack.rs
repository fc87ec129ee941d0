//! Image roots as stacks of layer directories: what each layer's directory
//! holds (its changes, whiteouts for what it removed), that the stack
//! mounted by overlayfs is the image's tree, how `ImageRoot::find` looks
//! through it, that images sharing lower layers share their directories,
//! and the flattened root of a stack too long for one mount.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;
use std::process::Command;

use cairn_store::{Image, Store};
use cairn_unpacker::{CheckOptions, Mode, Unpacker, UnpackerOptions};
use common::*;

fn lower_layer() -> Vec<u8> {
    Tar::new()
        .dir("etc")
        .file("etc/a", b"a1")
        .file("etc/b", b"b1")
        .dir("d")
        .file("d/x", b"x")
        .dir("d/sub")
        .file("d/sub/y", b"y")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/l", b"l1")
        .symlink("lib", "usr/lib")
        .finish()
}

fn top_layer(marker: &[u8]) -> Vec<u8> {
    Tar::new()
        .whiteout("etc/.wh.b")
        .file("etc/a", b"a2")
        .whiteout("d/.wh..wh..opq")
        .file("d/z", b"z")
        .file("lib/m", b"m")
        .file("top", marker)
        .finish()
}

fn image(store: &Store, name: &str, layers: &[&[u8]]) -> Image {
    let m = add_layered_image(store, Some(name), layers);
    store.image_by_manifest(&m).unwrap().unwrap()
}

fn read(root: &cairn_unpacker::ImageRoot, p: &str) -> Option<String> {
    root.find(Path::new(p))
        .map(|f| String::from_utf8(fs::read(f).unwrap()).unwrap())
}

#[test]
fn each_layer_directory_holds_its_changes_and_the_stack_is_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let (lower, top) = (lower_layer(), top_layer(b"one"));
    let img = image(&store, "localhost/a:1", &[&lower, &top]);
    let root = u.image_root(&img).unwrap();
    assert_eq!(root.lowers.len(), 2);
    let names = u.chain_names(&img);
    assert_eq!(root.lowers[0], u.chains_dir().join(&names[1]).join("diff"));
    assert_eq!(root.lowers[1], u.chains_dir().join(&names[0]).join("diff"));

    // The top directory: what the layer wrote (through the symlinked
    // parent, resolved), parents with their metadata, whiteouts for what
    // it removed, opaque d's lower names included.
    assert_eq!(
        listing(&root.lowers[0]),
        tokens("d/ d/sub!c0:0 d/x!c0:0 d/z=z etc/ etc/a=a2 etc/b!c0:0 top=one usr/ usr/lib/ usr/lib/m=m")
    );
    let wh = fs::symlink_metadata(root.lowers[0].join("etc/b")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);

    // Looked up as a container sees it.
    assert_eq!(read(&root, "etc/a").as_deref(), Some("a2"));
    assert_eq!(read(&root, "etc/b"), None);
    assert_eq!(read(&root, "d/x"), None);
    assert_eq!(read(&root, "d/sub/y"), None);
    assert_eq!(read(&root, "d/z").as_deref(), Some("z"));
    assert_eq!(read(&root, "usr/lib/l").as_deref(), Some("l1"));
    // Symlinks followed inside the image only.
    assert_eq!(read(&root, "lib/m").as_deref(), Some("m"));
    assert_eq!(read(&root, "/lib/../lib/l").as_deref(), Some("l1"));
    assert_eq!(read(&root, "nothing"), None);

    // Mounted by overlayfs, the stack is the tree `unpack` writes.
    let want = dir.path().join("want");
    u.unpack_image(&img, &want, Mode::Copy).unwrap();
    if is_root() {
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let lowers: Vec<String> = root
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={}", lowers.join(":")))
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success());
        let got = listing(&mnt);
        let modes: Vec<(String, u32)> = ["etc", "etc/a", "d", "usr/lib/m"]
            .iter()
            .map(|p| (p.to_string(), mode_of(&mnt.join(p))))
            .collect();
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
        assert_eq!(got, listing(&want));
        let want_modes: Vec<(String, u32)> = ["etc", "etc/a", "d", "usr/lib/m"]
            .iter()
            .map(|p| (p.to_string(), mode_of(&want.join(p))))
            .collect();
        assert_eq!(modes, want_modes);
    }
}

#[test]
fn images_sharing_lower_layers_share_their_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let lower = lower_layer();
    let (t1, t2) = (top_layer(b"one"), top_layer(b"two"));
    let a = u
        .image_root(&image(&store, "localhost/a:1", &[&lower, &t1]))
        .unwrap();
    let before = names(&u.chains_dir());
    let b = u
        .image_root(&image(&store, "localhost/b:1", &[&lower, &t2]))
        .unwrap();
    assert_eq!(
        a.lowers[1], b.lowers[1],
        "one directory for the shared layer"
    );
    assert_ne!(a.lowers[0], b.lowers[0]);
    assert_eq!(names(&u.chains_dir()).len(), before.len() + 1);
    assert_eq!(read(&b, "top").as_deref(), Some("two"));
    assert_eq!(read(&a, "top").as_deref(), Some("one"));
    // The same layer over a different one is another directory: what it
    // holds depends on what is below.
    let c = u
        .image_root(&image(&store, "localhost/c:1", &[&t1]))
        .unwrap();
    assert_eq!(c.lowers.len(), 1);
    assert!(!a.lowers.contains(&c.lowers[0]));
    assert_eq!(read(&c, "etc/b"), None);
    assert_eq!(read(&c, "lib/m").as_deref(), Some("m"));
}

#[test]
fn a_stack_too_long_for_one_mount_is_one_flattened_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let opts = UnpackerOptions {
        max_stack_bytes: 0,
        ..UnpackerOptions::default()
    };
    let u = Unpacker::new(&store, opts).unwrap();
    let img = image(
        &store,
        "localhost/a:1",
        &[&lower_layer(), &top_layer(b"one")],
    );
    let root = u.image_root(&img).unwrap();
    assert_eq!(root.lowers, vec![u.image_dir(img.digest()).join("rootfs")]);
    assert!(root.info.chains.is_empty());
    assert!(names(&u.chains_dir()).is_empty());
    let want = dir.path().join("want");
    u.unpack_image(&img, &want, Mode::Copy).unwrap();
    assert_eq!(listing(&root.lowers[0]), listing(&want));
    // Found again as it is.
    let again = u.image_root(&img).unwrap();
    assert!(!again.built);
    assert_eq!(again.lowers, root.lowers);
}

#[test]
fn a_missing_layer_directory_is_built_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let img = image(
        &store,
        "localhost/a:1",
        &[&lower_layer(), &top_layer(b"one")],
    );
    let root = u.image_root(&img).unwrap();
    fs::remove_dir_all(root.lowers[1].parent().unwrap()).unwrap();
    let again = u.image_root(&img).unwrap();
    assert!(again.built);
    assert_eq!(read(&again, "usr/lib/l").as_deref(), Some("l1"));
    assert_eq!(names(&store.root().join("images")).len(), 1);
}

/// A layer decoded ahead for the root (as `pull` does while downloading)
/// reaches the root builder in memory: its changeset file, planted here
/// with another layer's, is not read back.
#[test]
fn a_layer_decoded_ahead_reaches_the_root_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let img = image(
        &store,
        "localhost/a:1",
        &[&lower_layer(), &top_layer(b"one")],
    );
    let blobs: Vec<_> = img.manifest.layers.iter().map(|l| &l.digest).collect();
    for b in &blobs {
        u.decode_ahead(b, None).unwrap();
    }
    let cs = |b: &cairn_store::Digest| store.root().join("layers").join(format!("{}.cs", b.hex()));
    assert!(
        cs(blobs[0]).is_file() && cs(blobs[1]).is_file(),
        "cached as well"
    );
    fs::copy(cs(blobs[0]), cs(blobs[1])).unwrap();
    let root = u.image_root(&img).unwrap();
    assert_eq!(read(&root, "top").as_deref(), Some("one"));
    assert_eq!(read(&root, "etc/a").as_deref(), Some("a2"));
    assert_eq!(read(&root, "etc/b"), None);
    // Taken once: the next root reads the cache (here the planted one, which
    // records the other layer's diff id and is refused).
    fs::remove_dir_all(root.lowers[0].parent().unwrap()).unwrap();
    let err = u.image_root(&img).unwrap_err().to_string();
    assert!(err.contains("the image config says"), "{err}");
}

/// `prepare` plans the cached lower layers ahead; the image root starts
/// from that plan, whatever is built already and whatever is not.
#[test]
fn a_root_built_from_a_plan_made_ahead_is_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = std::sync::Arc::new(Unpacker::new(&store, UnpackerOptions::default()).unwrap());
    let lower = lower_layer();
    let (t1, t2, t3) = (top_layer(b"one"), top_layer(b"two"), top_layer(b"three"));
    let a = image(&store, "localhost/a:1", &[&lower, &t1]);
    u.image_root(&a).unwrap();
    let blobs =
        |i: &Image| -> Vec<_> { i.manifest.layers.iter().map(|l| l.digest.clone()).collect() };

    // A sibling: its lower layer planned ahead, its top one new.
    let b = image(&store, "localhost/b:1", &[&lower, &t2]);
    u.prepare(blobs(&b));
    let rb = u.image_root(&b).unwrap();
    assert_eq!(read(&rb, "top").as_deref(), Some("two"));
    assert_eq!(read(&rb, "etc/b"), None);
    assert_eq!(read(&rb, "d/x"), None);
    assert_eq!(
        listing(&rb.lowers[0]),
        tokens("d/ d/sub!c0:0 d/x!c0:0 d/z=z etc/ etc/a=a2 etc/b!c0:0 top=two usr/ usr/lib/ usr/lib/m=m")
    );

    // Every layer cached, the lower layer's directory gone: it is built
    // again from its own plan, not from the one made ahead.
    let c = image(&store, "localhost/c:1", &[&lower, &t3]);
    u.layer(&c.manifest.layers[1].digest).unwrap();
    fs::remove_dir_all(u.chains_dir().join(&u.chain_names(&c)[0])).unwrap();
    u.prepare(blobs(&c));
    let rc = u.image_root(&c).unwrap();
    assert_eq!(read(&rc, "top").as_deref(), Some("three"));
    assert_eq!(
        listing(&rc.lowers[1]),
        tokens("d/ d/sub/ d/sub/y=y d/x=x etc/ etc/a=a1 etc/b=b1 lib->usr/lib usr/ usr/lib/ usr/lib/l=l1")
    );

    // Planned ahead for another image: ignored.
    let d = image(&store, "localhost/d:1", &[&t1, &lower]);
    u.prepare(blobs(&a));
    let rd = u.image_root(&d).unwrap();
    assert_eq!(read(&rd, "etc/b").as_deref(), Some("b1"));
    assert_eq!(read(&rd, "top").as_deref(), Some("one"));
}

/// Each layer directory keeps the plan of its layer and those below, and
/// a sibling's new layer is planned over the saved plan below it, not over
/// the changesets (so `check` verifies saved plans); a torn one, or one
/// whose directories below are gone, is planned again from the changesets.
#[test]
fn a_sibling_is_planned_over_the_saved_plan_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = std::sync::Arc::new(Unpacker::new(&store, UnpackerOptions::default()).unwrap());
    let (lower, mid) = (
        lower_layer(),
        Tar::new().dir("m").file("m/f", b"f").finish(),
    );
    let top = |marker: &[u8]| Tar::new().whiteout("m/.wh.f").file("top", marker).finish();
    let blobs =
        |i: &Image| -> Vec<_> { i.manifest.layers.iter().map(|l| l.digest.clone()).collect() };
    let sibling = |name: &str, marker: &str| {
        let img = image(&store, name, &[&lower, &mid, &top(marker.as_bytes())]);
        u.prepare(blobs(&img));
        let root = u.image_root(&img).unwrap();
        assert_eq!(read(&root, "top").as_deref(), Some(marker));
        (img, listing(&root.lowers[0]))
    };
    let (a, _) = sibling("localhost/a:1", "a");
    let chains: Vec<_> = u
        .chain_names(&a)
        .iter()
        .map(|c| u.chains_dir().join(c))
        .collect();
    assert!(chains.iter().all(|c| c.join("plan").is_file()));
    let clean = |u: &Unpacker| {
        let opts = CheckOptions {
            full: true,
            ..CheckOptions::default()
        };
        u.check(&opts).unwrap().bad_roots
    };
    assert_eq!(clean(&u), vec![]);

    let (_, b) = sibling("localhost/b:1", "b");
    assert_eq!(b, tokens("m/ m/f!c0:0 top=b"));

    // The lowest layer's plan saved as the middle one's: trusted, so the
    // next sibling's whiteout of m/f (which only the middle layer has) is
    // planned away; `check` finds the saved plan wrong, and the sibling's
    // directory, and a repair rebuilds both.
    fs::copy(chains[0].join("plan"), chains[1].join("plan")).unwrap();
    let (_, c) = sibling("localhost/c:1", "c");
    assert!(!c.contains(&"m/f!c0:0".to_string()), "{c:?}");
    let bad = clean(&u);
    assert!(
        bad.iter().any(|(_, why)| why.contains("saved plan")),
        "{bad:?}"
    );
    let opts = CheckOptions {
        full: true,
        repair: true,
        ..CheckOptions::default()
    };
    assert!(!u.check(&opts).unwrap().rebuilt.is_empty());
    assert_eq!(clean(&u), vec![]);

    // Torn: planned from the changesets.
    let saved = fs::read(chains[1].join("plan")).unwrap();
    fs::write(chains[1].join("plan"), &saved[..saved.len() / 2]).unwrap();
    let (_, d) = sibling("localhost/d:1", "d");
    assert_eq!(d, tokens("m/ m/f!c0:0 top=d"));

    // Whole, but a directory below it is gone: planned from the changesets,
    // and the directory built again.
    fs::write(chains[1].join("plan"), &saved).unwrap();
    fs::remove_dir_all(&chains[0]).unwrap();
    let (e, listed) = sibling("localhost/e:1", "e");
    assert_eq!(listed, tokens("m/ m/f!c0:0 top=e"));
    let root = u.image_root(&e).unwrap();
    assert_eq!(read(&root, "usr/lib/l").as_deref(), Some("l1"));
    assert_eq!(read(&root, "m/f"), None);
    assert!(chains[0].join("plan").is_file());
    assert_eq!(clean(&u), vec![]);
}

/// Without a plan made ahead (`create` of a sibling pulled without its
/// root), the root builder still starts from the saved plan below the new
/// layers: shown, as above, by a planted plan being trusted.
#[test]
fn a_root_built_without_planning_ahead_starts_from_a_saved_plan() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let (lower, mid) = (
        lower_layer(),
        Tar::new().dir("m").file("m/f", b"f").finish(),
    );
    let top = |marker: &[u8]| Tar::new().whiteout("m/.wh.f").file("top", marker).finish();
    let a = image(&store, "localhost/a:1", &[&lower, &mid, &top(b"a")]);
    u.image_root(&a).unwrap();
    let b = image(&store, "localhost/b:1", &[&lower, &mid, &top(b"b")]);
    let rb = u.image_root(&b).unwrap();
    assert_eq!(listing(&rb.lowers[0]), tokens("m/ m/f!c0:0 top=b"));
    let chains: Vec<_> = u
        .chain_names(&a)
        .iter()
        .map(|c| u.chains_dir().join(c))
        .collect();
    fs::copy(chains[0].join("plan"), chains[1].join("plan")).unwrap();
    let c = image(&store, "localhost/c:1", &[&lower, &mid, &top(b"c")]);
    let rc = u.image_root(&c).unwrap();
    assert_eq!(listing(&rc.lowers[0]), tokens("top=c"));
    // Every layer decoded already: planned from the changesets.
    let d = image(&store, "localhost/d:1", &[&lower, &mid, &top(b"d")]);
    u.layers_of(&d).unwrap();
    let rd = u.image_root(&d).unwrap();
    assert_eq!(listing(&rd.lowers[0]), tokens("m/ m/f!c0:0 top=d"));
}

/// Mounts `lowers` (topmost first) read-only with overlayfs in a new user
/// and mount namespace (`unshare -Urm`, as a rootless container's root is
/// mounted: `userxattr`, so overlayfs reads `user.overlay.*`) or, with
/// `userxattr` false, in a new mount namespace as root (`trusted.overlay.*`);
/// returns what `sh -c script` printed there, run in the mount's directory.
fn in_overlay(lowers: &[std::path::PathBuf], userxattr: bool, script: &str) -> String {
    let mnt = tempfile::tempdir().unwrap();
    let lowers: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let opts = format!(
        "ro,{}lowerdir={}",
        if userxattr { "userxattr," } else { "" },
        lowers.join(":")
    );
    let ns = if userxattr { "-Urm" } else { "-m" };
    let out = Command::new("unshare")
        .args([ns, "sh", "-ec"])
        .arg(format!(
            "mount -t overlay overlay -o {opts} {m}; cd {m}; {script}",
            m = mnt.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "overlay mount ({opts}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A layer forging overlayfs' own xattrs (`user.overlay.opaque` on a
/// directory: a rootless `userxattr` mount would take it as opaque and hide
/// the lower layer's files; `trusted.overlay.*` for a root mount; a
/// `redirect` on a file) gets none of them onto disk: the layer directories
/// hold no overlay xattr, and mounted either way the lower file shows.
#[test]
fn forged_overlay_xattrs_in_a_layer_are_dropped() {
    if !is_root() {
        eprintln!("skipped: mounting overlayfs needs root here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let lower = Tar::new()
        .dir("d")
        .file("d/lower", b"from the lower layer")
        .finish();
    let forged: &[(&[u8], &[u8])] = &[
        (b"SCHILY.xattr.user.overlay.opaque", b"y"),
        (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
        (b"SCHILY.xattr.user.overlay.redirect", b"/d/lower"),
        (b"SCHILY.xattr.user.kept", b"k"),
    ];
    let top = Tar::new()
        .pax(forged)
        .dir("d")
        .pax(forged)
        .file("d/upper", b"from the top layer")
        .finish();
    let img = image(&store, "localhost/forged:1", &[&lower, &top]);
    let root = u.image_root(&img).unwrap();
    assert_eq!(root.lowers.len(), 2);
    // What a container sees: the lower file, whichever xattrs overlayfs reads.
    for userxattr in [true, false] {
        assert_eq!(
            in_overlay(&root.lowers, userxattr, "ls d; cat d/lower"),
            "lower\nupper\nfrom the lower layer",
            "userxattr: {userxattr}"
        );
    }
    for l in &root.lowers {
        for p in ["d", "d/lower", "d/upper"] {
            let p = l.join(p);
            if fs::symlink_metadata(&p).is_err() {
                continue;
            }
            let names: Vec<String> = xattrs(&p).into_iter().map(|(n, _)| n).collect();
            assert!(
                !names.iter().any(|n| n.contains(".overlay.")),
                "{}: {names:?}",
                p.display()
            );
        }
    }
    // A plain user.* xattr of the same entries is kept: the filter is exact.
    assert_eq!(
        xattr(&root.lowers[0].join("d"), "user.kept").as_deref(),
        Some(&b"k"[..])
    );
    // And `unpack` writes no overlay xattr either.
    let t = dir.path().join("t");
    u.unpack_image(&img, &t, Mode::Copy).unwrap();
    for p in ["d", "d/lower", "d/upper"] {
        let names: Vec<String> = xattrs(&t.join(p)).into_iter().map(|(n, _)| n).collect();
        assert!(
            !names.iter().any(|n| n.contains(".overlay.")),
            "{p}: {names:?}"
        );
    }
}

fn file_at(name: &str, mtime: u64) -> Hdr {
    let mut h = Hdr::new(name.as_bytes(), b'0');
    h.mtime = mtime;
    h
}

fn mtime_in(root: &cairn_unpacker::ImageRoot, p: &str) -> i64 {
    let f = root
        .find(Path::new(p))
        .unwrap_or_else(|| panic!("/{p} in the root"));
    fs::symlink_metadata(f).unwrap().mtime()
}

/// Files with one content and different mtimes, in one layer, across
/// layers and across images, each show their own layer's mtime in the
/// image roots (stacked and flattened) and in `unpack`'s hardlink mode,
/// whichever image was built first; a tar hardlink shares its target's.
/// (Keyed without the mtime, every name showed the first stored one's.)
#[test]
fn every_path_shows_its_layers_mtime_whatever_was_built_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    // Built first: the same contents, other mtimes.
    let other = Tar::new()
        .file_hdr(file_at("x", 1_500_000_000), b"same")
        .file_hdr(file_at("y", 1_500_000_001), b"same")
        .finish();
    let lower = Tar::new()
        .file_hdr(file_at("a", 1_000_000_001), b"same")
        .file_hdr(file_at("b", 1_000_000_002), b"same")
        .hardlink("a-link", "a")
        .finish();
    let top = Tar::new()
        .file_hdr(file_at("c", 1_000_000_003), b"same")
        .file_hdr(file_at("b", 1_000_000_004), b"same")
        .finish();
    let first = u
        .image_root(&image(&store, "localhost/other:1", &[&other]))
        .unwrap();
    let img = image(&store, "localhost/img:1", &[&lower, &top]);
    let want = [
        ("a", 1_000_000_001),
        ("a-link", 1_000_000_001),
        ("b", 1_000_000_004),
        ("c", 1_000_000_003),
    ];
    let root = u.image_root(&img).unwrap();
    assert_eq!(root.lowers.len(), 2);
    for (p, t) in want {
        assert_eq!(mtime_in(&root, p), t, "/{p} in the stacked root");
    }
    assert_eq!(mtime_in(&first, "x"), 1_500_000_000);
    assert_eq!(mtime_in(&first, "y"), 1_500_000_001);
    // The lower layer's own directory keeps its b (hidden above).
    assert_eq!(
        fs::metadata(root.lowers[1].join("b")).unwrap().mtime(),
        1_000_000_002
    );
    // A tar hardlink is one inode; same content with the same mtime is
    // still shared (one object).
    assert_eq!(
        fs::metadata(root.find(Path::new("a")).unwrap())
            .unwrap()
            .ino(),
        fs::metadata(root.find(Path::new("a-link")).unwrap())
            .unwrap()
            .ino()
    );
    let t = dir.path().join("t");
    u.unpack_image(&img, &t, Mode::Hardlink).unwrap();
    for (p, m) in want {
        assert_eq!(fs::metadata(t.join(p)).unwrap().mtime(), m, "/{p} unpacked");
    }
    // Flattened, the same.
    let flat = Unpacker::new(
        &store,
        UnpackerOptions {
            max_stack_bytes: 0,
            ..UnpackerOptions::default()
        },
    )
    .unwrap();
    let img2 = image(&store, "localhost/img2:1", &[&top, &lower]);
    let root2 = flat.image_root(&img2).unwrap();
    assert_eq!(root2.lowers.len(), 1);
    for (p, m) in [
        ("a", 1_000_000_001),
        ("b", 1_000_000_002),
        ("c", 1_000_000_003),
    ] {
        assert_eq!(mtime_in(&root2, p), m, "/{p} in the flattened root");
    }
    assert!(u.check(&CheckOptions::default()).unwrap().is_clean());
}

/// An image root written before objects were keyed with their mtime
/// (`info.json` without `format`) is not used: it is reported by `check`
/// and built again, in layer directories of the current key's names.
#[test]
fn a_root_of_an_older_format_is_built_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let img = image(
        &store,
        "localhost/a:1",
        &[&lower_layer(), &top_layer(b"one")],
    );
    let root = u.image_root(&img).unwrap();
    let info_path = u.image_dir(img.digest()).join("info.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&fs::read(&info_path).unwrap()).unwrap();
    assert_eq!(info["format"], 2);
    info.as_object_mut().unwrap().remove("format");
    fs::write(&info_path, serde_json::to_vec(&info).unwrap()).unwrap();
    let report = u.check(&CheckOptions::default()).unwrap();
    assert!(
        report
            .bad_roots
            .iter()
            .any(|(_, why)| why.contains("older cairn")),
        "{:?}",
        report.bad_roots
    );
    let again = u.image_root(&img).unwrap();
    assert!(again.built, "built again");
    assert_eq!(again.lowers, root.lowers);
    assert_eq!(read(&again, "top").as_deref(), Some("one"));
    assert!(u.check(&CheckOptions::default()).unwrap().is_clean());
    for name in u.chain_names(&img) {
        assert!(name.ends_with("-v3"), "{name}");
    }
}
