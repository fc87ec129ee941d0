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

/// A download as a [`cairn_unpacker::PullDecoder`] gets it: says when it is
/// first read, counts the bytes read, and breaks off after `fail_after`.
struct Download {
    bytes: std::io::Cursor<Vec<u8>>,
    first_read: Option<std::sync::mpsc::Sender<()>>,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail_after: usize,
}

impl std::io::Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(tx) = self.first_read.take() {
            let _ = tx.send(());
        }
        let done = self.read.load(std::sync::atomic::Ordering::SeqCst);
        if done >= self.fail_after {
            return Err(std::io::Error::other("connection reset"));
        }
        let limit = buf.len().min(self.fail_after - done);
        let n = self.bytes.read(&mut buf[..limit])?;
        self.read.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }
}

#[test]
fn a_pull_decoder_hands_the_image_root_what_it_decoded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lower = Tar::new().dir("etc").file("etc/a", b"alpha\n").finish();
    let middle = Tar::new().file("etc/b", b"bravo\n").finish();
    let upper = Tar::new().file("etc/c", b"charlie\n").finish();
    let manifest = add_layered_image(&store, Some("localhost/t:1"), &[&lower, &middle, &upper]);
    let image = store.image_by_manifest(&manifest).unwrap().unwrap();
    let layers: Vec<(Digest, u64)> = image
        .manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    let unpacker = Arc::new(Unpacker::new(&store, UnpackerOptions::default()).unwrap());
    let decoder = cairn_unpacker::PullDecoder::new(unpacker.clone());
    decoder.manifest(layers.iter().map(|l| l.0.clone()).collect());
    // The lowest layer: its blob stored, no download handed over.
    decoder.layer_stored(&layers[0].0, layers[0].1);
    // The middle one downloads whole; the top one's download breaks off.
    let mut reads = Vec::new();
    for (i, (digest, size)) in layers.iter().enumerate().skip(1) {
        let blob = fs::read(store.blob_path(digest)).unwrap();
        let (tx, rx) = mpsc::channel();
        let read = Arc::new(AtomicUsize::new(0));
        let fail_after = if i == 1 { usize::MAX } else { blob.len() / 2 };
        decoder.layer_downloading(
            digest,
            *size,
            Download {
                bytes: std::io::Cursor::new(blob.clone()),
                first_read: Some(tx),
                read: read.clone(),
                fail_after,
            },
        );
        // Stored once downloaded: decoded from the download, not again.
        decoder.layer_stored(digest, *size);
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the download is read");
        reads.push((read, blob.len()));
    }
    // The root waits for the decoders (their layer locks), takes what they
    // kept, and decodes the layer whose download failed from its blob.
    let root = unpacker.image_root(&image).unwrap();
    assert!(root.built);
    for (name, content) in [
        ("etc/a", "alpha\n"),
        ("etc/b", "bravo\n"),
        ("etc/c", "charlie\n"),
    ] {
        let path = root.find(Path::new(name)).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), content, "{name}");
    }
    let (middle_read, middle_len) = &reads[0];
    assert_eq!(middle_read.load(Ordering::SeqCst), *middle_len);
    let (upper_read, upper_len) = &reads[1];
    assert_eq!(upper_read.load(Ordering::SeqCst), upper_len / 2);
    assert_eq!(changesets(dir.path()), 3);
}
