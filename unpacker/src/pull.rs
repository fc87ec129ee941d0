//! Decoding an image's layers while a pull downloads them, so the image is
//! ready to run when the pull ends, as podman's is: each layer is decoded
//! from its download as the bytes arrive (its changeset kept only once the
//! blob is verified), or from the stored blob when no download was handed
//! over, largest first; the image root is then built from those changesets
//! (handed over in memory; they are cached on disk as well).
//!
//! The registry client is not known here: whoever pulls tells a
//! [`PullDecoder`] what arrives.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use cairn_store::Digest;

use crate::Unpacker;

/// Decodes the layers of an image being pulled, in threads of its own, as
/// the pull reports them (see the module doc).
///
/// Errors are not reported here: the image root asks for every layer, and
/// one whose decoding failed (its download broke off, say) is decoded again
/// from the stored blob then, or fails there with the reason.
#[derive(Debug)]
pub struct PullDecoder {
    unpacker: Arc<Unpacker>,
    queue: Arc<Mutex<Queue>>,
    /// Layers handed to a decoder while downloading.
    streamed: Mutex<HashSet<Digest>>,
}

/// Layers no decoder has taken yet, and the decoder threads running.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Waiting>,
    decoders: usize,
}

/// A layer to decode: its size, and its download if it is still arriving.
struct Waiting {
    size: u64,
    digest: Digest,
    download: Option<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("size", &self.size)
            .field("digest", &self.digest)
            .field("download", &self.download.is_some())
            .finish()
    }
}

impl PullDecoder {
    /// Decodes for `unpacker`'s store and id map.
    pub fn new(unpacker: Arc<Unpacker>) -> PullDecoder {
        PullDecoder {
            unpacker,
            queue: Arc::default(),
            streamed: Mutex::default(),
        }
    }

    /// The image's layer blobs are known (its manifest), lowest first: the
    /// layers already stored (a sibling's lower ones) are planned while the
    /// others download ([`Unpacker::prepare`]).
    pub fn manifest(&self, layers: Vec<Digest>) {
        self.unpacker.prepare(layers);
    }

    /// Layer `digest` (`size` bytes) is downloading: it is decoded from
    /// `download` as it arrives. `download` must end only once the blob is
    /// verified and stored, and fail otherwise (a
    /// [`cairn_store::BlobStream`] does), so that a changeset is never kept
    /// for a blob that was refused.
    pub fn layer_downloading(
        &self,
        digest: &Digest,
        size: u64,
        download: impl Read + Send + 'static,
    ) {
        self.streamed
            .lock()
            .expect("not poisoned")
            .insert(digest.clone());
        self.queue(Waiting {
            size,
            digest: digest.clone(),
            download: Some(Box::new(download)),
        });
    }

    /// Layer `digest` (`size` bytes) is stored: decoded from the stored
    /// blob, unless its download was handed over (that one is decoded
    /// already, or being decoded).
    pub fn layer_stored(&self, digest: &Digest, size: u64) {
        if self.streamed.lock().expect("not poisoned").contains(digest) {
            return;
        }
        self.queue(Waiting {
            size,
            digest: digest.clone(),
            download: None,
        });
    }

    /// Queues a layer for the decoder threads, starting one if fewer than
    /// twice the cores run: a decoder following a download often waits for
    /// its bytes, and the spare threads use the CPU meanwhile (each holds
    /// a few MiB of buffers). Each takes the largest layer waiting: small
    /// layers download first, and decoding them first would leave the
    /// largest, the longest decode, for last on one core while the others
    /// idle.
    fn queue(&self, layer: Waiting) {
        let max = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut q = self.queue.lock().expect("not poisoned");
        q.waiting.push(layer);
        if q.decoders >= max {
            return;
        }
        let (unpacker, queue) = (self.unpacker.clone(), self.queue.clone());
        let started = std::thread::Builder::new()
            .name("cairn-decode".into())
            .spawn(move || decode_until_empty(&unpacker, &queue));
        // No thread: the image root decodes the layer when it needs it.
        if started.is_ok() {
            q.decoders += 1;
        }
    }
}

/// A decoder thread: the largest layer waiting, until none is.
fn decode_until_empty(unpacker: &Unpacker, queue: &Mutex<Queue>) {
    loop {
        let largest = {
            let mut q = queue.lock().expect("not poisoned");
            match (0..q.waiting.len()).max_by_key(|&i| q.waiting[i].size) {
                Some(i) => q.waiting.swap_remove(i),
                None => {
                    q.decoders -= 1;
                    return;
                }
            }
        };
        let download = largest.download.map(|d| d as Box<dyn Read>);
        let _ = unpacker.decode_ahead(&largest.digest, download);
    }
}
