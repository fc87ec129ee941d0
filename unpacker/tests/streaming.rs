//! A layer decoded while it downloads (`Unpacker::layer_streaming` over a
//! `cairn_store::BlobStream`): its changeset is kept only if the blob is
//! verified and stored; otherwise nothing it wrote stays, and the layer is
//! decoded from the stored blob when asked for.

mod common;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use cairn_store::{Digest, Put, Store};
use cairn_unpacker::{Unpacker, UnpackerOptions};
use common::*;

fn changesets(root: &Path) -> usize {
    fs::read_dir(root.join("layers")).map_or(0, |d| d.count())
}

/// A gzip layer and its uncompressed tar.
fn layer() -> (Vec<u8>, Vec<u8>) {
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let tar = Tar::new()
        .dir("etc")
        .file("etc/a", b"alpha\n")
        .file("big", &big)
        .finish();
    (gzip(&tar), tar)
}

#[test]
fn a_layer_decoded_while_downloading_is_kept_once_its_blob_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let unpacker = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let (blob, tar) = layer();
    let digest = Digest::sha256_of(&blob);
    let lock = store.lock_blob(&digest).unwrap();
    let mut w = lock.writer(Some(blob.len() as u64), false).unwrap();
    let stream = w.stream().unwrap();
    thread::scope(|s| {
        let decoder = s.spawn(|| unpacker.layer_streaming(&digest, stream));
        for piece in blob.chunks(4096) {
            w.write(piece).unwrap();
        }
        thread::sleep(Duration::from_millis(20));
        assert!(
            !decoder.is_finished(),
            "decoded before the blob was verified"
        );
        assert_eq!(w.commit().unwrap(), Put::Stored);
        let (cs, diff_id) = decoder.join().unwrap().unwrap();
        assert_eq!(cs.changes.len(), 3);
        assert_eq!(diff_id, Digest::sha256_of(&tar));
    });
    assert_eq!(changesets(dir.path()), 1);
    assert_eq!(objects(&unpacker).len(), 2);
    // Asked again: the saved changeset, the same objects.
    let (cs, _) = unpacker.layer(&digest).unwrap();
    assert_eq!(cs.changes.len(), 3);
    assert_eq!(objects(&unpacker).len(), 2);
}

#[test]
fn a_layer_whose_download_fails_verification_keeps_nothing_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let unpacker = Unpacker::new(&store, UnpackerOptions::default()).unwrap();
    let (blob, _) = layer();
    // The registry claims a digest the bytes do not have: every byte
    // decodes, but the blob is refused.
    let claimed = Digest::sha256_of(b"some other blob");
    let lock = store.lock_blob(&claimed).unwrap();
    let mut w = lock.writer(Some(blob.len() as u64), false).unwrap();
    let stream = w.stream().unwrap();
    thread::scope(|s| {
        let decoder = s.spawn(|| unpacker.layer_streaming(&claimed, stream));
        w.write(&blob).unwrap();
        assert!(w.commit().is_err());
        let err = decoder.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("digest"), "{err}");
    });
    assert_eq!(changesets(dir.path()), 0, "no changeset for a refused blob");
    assert!(objects(&unpacker).is_empty(), "its objects go again");

    // A download that stops half-way.
    let lock = store.lock_blob(&Digest::sha256_of(&blob)).unwrap();
    let mut w = lock.writer(Some(blob.len() as u64), false).unwrap();
    let stream = w.stream().unwrap();
    thread::scope(|s| {
        let decoder = s.spawn(|| unpacker.layer_streaming(&Digest::sha256_of(&blob), stream));
        w.write(&blob[..blob.len() / 2]).unwrap();
        drop(w);
        assert!(decoder.join().unwrap().is_err());
    });
    assert_eq!(changesets(dir.path()), 0);
    assert!(objects(&unpacker).is_empty());
}
