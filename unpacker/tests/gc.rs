//! Garbage collection of derived data: what an image needs stays, what
//! only a removed image needed goes, and the work follows what is removed
//! (the changesets of removed layers), not the size of the object store;
//! `collect_all_garbage` also sweeps objects no changeset names (what a
//! killed decoder leaves). A pinned image keeps its root while it is not
//! in the index yet.

mod common;

use std::fs;
use std::path::Path;

use cairn_store::media::{types, Descriptor};
use cairn_store::{Digest, Image, Store};
use cairn_unpacker::{ImageRoot, Unpacker, UnpackerOptions};
use common::*;

/// A fresh store and its unpacker (the tempdir holds them).
fn setup() -> (tempfile::TempDir, Store, Unpacker) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let u = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    (dir, store, u)
}

fn image(store: &Store, d: &Digest) -> Image {
    store.image_by_manifest(d).unwrap().unwrap()
}

fn read(root: &ImageRoot, p: &str) -> String {
    fs::read_to_string(root.find(Path::new(p)).unwrap()).unwrap()
}

#[test]
fn a_removed_image_takes_only_its_own_objects() {
    let (_dir, store, u) = setup();
    let shared = b"the same in both images\n";
    let a = add_image(
        &store,
        Some("localhost/a:1"),
        &Tar::new()
            .file("shared", shared)
            .file("only-a", b"a alone\n")
            .finish(),
    );
    let b = add_image(
        &store,
        Some("localhost/b:1"),
        &Tar::new()
            .file("shared", shared)
            .file("only-b", b"b alone\n")
            .finish(),
    );
    let root_b = u.image_root(&image(&store, &b)).unwrap();
    let root_a = u.image_root(&image(&store, &a)).unwrap();
    assert_eq!(objects(&u).len(), 3, "shared, only-a, only-b");
    assert_eq!(names(&u.chains_dir()).len(), 2, "one layer directory each");

    // Nothing removed: nothing to do, and nothing goes.
    assert_eq!(u.collect_garbage(true).unwrap(), 0);
    assert_eq!(objects(&u).len(), 3);

    store
        .remove_images(&["localhost/a:1".to_owned()], &[], false)
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    store.collect_garbage(true).unwrap();
    let freed = u.collect_garbage(true).unwrap();
    assert!(freed > 0, "a's root and changeset and only-a freed");
    let left = objects(&u);
    assert_eq!(left.len(), 2, "only-a's object went: {left:?}");
    assert!(!u.image_dir(&a).exists());
    assert!(!root_a.lowers[0].exists(), "a's layer directory went");
    assert_eq!(names(&u.chains_dir()).len(), 1);
    assert_eq!(read(&root_b, "shared"), String::from_utf8_lossy(shared));
    assert_eq!(read(&root_b, "only-b"), "b alone\n");
    // b still builds from its changeset and objects (nothing decoded again).
    fs::remove_dir_all(u.image_dir(&b)).unwrap();
    let again = u.image_root(&image(&store, &b)).unwrap();
    assert_eq!(read(&again, "only-b"), "b alone\n");
}

#[test]
fn an_unnamed_object_goes_only_in_a_full_collection() {
    let (_dir, store, u) = setup();
    let a = add_image(
        &store,
        Some("localhost/a:1"),
        &Tar::new().file("f", b"kept\n").finish(),
    );
    u.image_root(&image(&store, &a)).unwrap();
    // What a decoder killed before saving its changeset leaves: an object
    // no changeset names.
    let orphan = u.objects().dir().join("ab").join("c".repeat(62));
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, b"orphan").unwrap();
    // Another image decoded, then removed: its changeset's object goes,
    // the orphan is no removed changeset's object.
    let b = add_image(
        &store,
        Some("localhost/b:1"),
        &Tar::new().file("g", b"gone\n").finish(),
    );
    u.layers_of(&image(&store, &b)).unwrap();
    store
        .remove_images(&["localhost/b:1".to_owned()], &[], false)
        .unwrap();
    store.collect_garbage(true).unwrap();
    u.collect_garbage(true).unwrap();
    assert!(
        orphan.exists(),
        "a proportional collection does not walk the objects"
    );
    assert_eq!(
        objects(&u).len(),
        2,
        "g's object went, f's and the orphan stay"
    );
    u.collect_all_garbage(true).unwrap();
    assert!(!orphan.exists());
    assert_eq!(objects(&u).len(), 1);
}

#[test]
fn a_pinned_image_keeps_its_blobs_changesets_and_root() {
    let (_dir, store, u) = setup();
    // Not in the index: what a pull has fetched but not named yet.
    let a = add_image(&store, None, &Tar::new().file("f", b"pinned\n").finish());
    let pin = store.pin().unwrap();
    pin.add([&a]).unwrap();
    let manifest = store.manifest(&a).unwrap();
    let (config, config_raw) = store.config(&manifest.config.digest).unwrap();
    let size = store.blob_size(&a).unwrap();
    let img = Image {
        manifest_descriptor: Descriptor::new(types::OCI_MANIFEST, a.clone(), size),
        manifest,
        config,
        config_raw,
        names: Vec::new(),
        index_digests: Vec::new(),
    };
    let root = u.image_root(&img).unwrap();
    store.collect_garbage(true).unwrap();
    u.collect_all_garbage(true).unwrap();
    assert_eq!(read(&root, "f"), "pinned\n");
    assert!(store.has_blob(&a));
    drop(pin);
    store.collect_garbage(true).unwrap();
    u.collect_all_garbage(true).unwrap();
    assert!(!store.has_blob(&a));
    assert!(!root.lowers[0].exists());
    assert!(names(&u.chains_dir()).is_empty());
    assert!(objects(&u).is_empty());
}

/// Saved changesets are trusted (no stat per object) when a root is built;
/// an object lost anyway (a power loss, a hand) makes the build check the
/// changesets and decode the layer again, not fail.
#[test]
fn a_lost_object_is_decoded_again_when_a_root_is_built() {
    let (_dir, store, u) = setup();
    let a = add_image(
        &store,
        Some("localhost/a:1"),
        &Tar::new()
            .file("f", b"first\n")
            .file("g", b"second\n")
            .finish(),
    );
    let first = u.image_root(&image(&store, &a)).unwrap();
    assert!(first.built);
    fs::remove_dir_all(u.image_dir(&a)).unwrap();
    fs::remove_dir_all(u.chains_dir()).unwrap();
    fs::create_dir(u.chains_dir()).unwrap();
    for o in objects(&u) {
        fs::remove_file(o).unwrap();
    }
    let again = u.image_root(&image(&store, &a)).unwrap();
    assert!(again.built);
    assert_eq!(read(&again, "f"), "first\n");
    assert_eq!(read(&again, "g"), "second\n");
    assert_eq!(objects(&u).len(), 2);
}

#[test]
fn a_collection_never_waits_for_a_decoder_and_the_next_one_deletes_what_it_left() {
    let (_dir, store, u) = setup();
    let a = add_image(
        &store,
        Some("localhost/a:1"),
        &Tar::new().file("only-a", b"a alone\n").finish(),
    );
    u.image_root(&image(&store, &a)).unwrap();
    assert_eq!(objects(&u).len(), 1);
    store
        .remove_images(&["localhost/a:1".to_owned()], &[], false)
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    store.collect_garbage(true).unwrap();

    // A decoder (one following a stalled download, say) holds the objects
    // lock: the collection removes the root and changeset, and returns
    // without waiting, the object recorded for later.
    let decoder = cairn_store::LockGuard::acquire(
        &store.root().join("locks/objects"),
        cairn_store::LockMode::Shared,
    )
    .unwrap();
    let t = std::time::Instant::now();
    u.collect_garbage(true).unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert!(!u.image_dir(&a).exists());
    assert_eq!(objects(&u).len(), 1, "the object waits for the lock");
    let pending = u.objects().dir().join("gc-pending");
    assert_eq!(fs::read_to_string(&pending).unwrap().lines().count(), 1);
    // A full collection cannot walk either.
    u.collect_all_garbage(true).unwrap();
    assert_eq!(objects(&u).len(), 1);

    // The decoder done, the next collection (with nothing of its own to
    // remove) deletes it, unless a changeset names it meanwhile.
    drop(decoder);
    u.collect_garbage(true).unwrap();
    assert!(objects(&u).is_empty());
    assert!(!pending.exists());
}
