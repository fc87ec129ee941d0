//! Pull leaves images ready to run, as podman's does: each layer is decoded
//! while it downloads (its changeset kept only once the blob is verified),
//! largest first, then the image root is built from those changesets (handed
//! over in memory; they are cached on disk as well).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_store::media::{Descriptor, Manifest};
use cairn_store::progress::{BlobKind, PullProgress, Pulled};
use cairn_store::{BlobStream, Digest, Reference, Store};
use cairn_unpacker::{ImageRoot, Unpacker};

/// Progress that also decodes each layer while it downloads.
pub struct DecodeAsDownloaded {
    inner: Arc<dyn PullProgress>,
    unpacker: Arc<Unpacker>,
    queue: Arc<Mutex<Queue>>,
    /// Layers handed to a decoder while downloading.
    streamed: Mutex<HashSet<Digest>>,
}

/// Layers no decoder has taken yet, and the decoder threads running.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    decoders: usize,
}

/// A layer to decode: its size, and its download if it is still arriving.
type Waiting = (u64, Digest, Option<BlobStream>);

impl DecodeAsDownloaded {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PullProgress>, unpacker: Arc<Unpacker>) -> DecodeAsDownloaded {
        DecodeAsDownloaded {
            inner,
            unpacker,
            queue: Arc::default(),
            streamed: Mutex::default(),
        }
    }

    /// Queues a layer for the decoder threads, starting one if fewer than
    /// twice the cores run: a decoder following a download often waits for
    /// its bytes, and the spare threads use the CPU meanwhile (each holds
    /// a few MiB of buffers). Each takes the largest layer waiting: small
    /// layers download first, and decoding them first would leave the
    /// largest, the longest decode, for last on one core while the others
    /// idle. Errors are reported when the image root asks for the layer (a
    /// failed stream is decoded again from the stored blob then).
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
            .spawn(move || loop {
                let largest = {
                    let mut q = queue.lock().expect("not poisoned");
                    match (0..q.waiting.len()).max_by_key(|&i| q.waiting[i].0) {
                        Some(i) => q.waiting.swap_remove(i),
                        None => {
                            q.decoders -= 1;
                            return;
                        }
                    }
                };
                let (_, digest, stream) = largest;
                let _ = unpacker.decode_ahead(
                    &digest,
                    stream.map(|s| Box::new(s) as Box<dyn std::io::Read>),
                );
            });
        // No thread: the image root decodes the layer when it needs it.
        if started.is_ok() {
            q.decoders += 1;
        }
    }
}

impl PullProgress for DecodeAsDownloaded {
    fn trying(&self, r: &Reference) {
        self.inner.trying(r)
    }
    fn manifest(&self, m: &Manifest) {
        self.inner.manifest(m);
        // The layers already stored (a sibling's lower ones) are planned
        // while the others download.
        self.unpacker
            .prepare(m.layers.iter().map(|l| l.digest.clone()).collect());
    }
    fn blob_skipped(&self, d: &Descriptor, k: BlobKind) {
        self.inner.blob_skipped(d, k)
    }
    fn blob_started(&self, d: &Descriptor, k: BlobKind, from: u64) {
        self.inner.blob_started(d, k, from)
    }
    fn blob_progress(&self, d: &Digest, n: u64) {
        self.inner.blob_progress(d, n)
    }
    fn wants_stream(&self, _d: &Descriptor, k: BlobKind) -> bool {
        k == BlobKind::Layer
    }
    fn blob_stream(&self, d: &Descriptor, k: BlobKind, stream: BlobStream) {
        if k == BlobKind::Layer {
            self.streamed
                .lock()
                .expect("not poisoned")
                .insert(d.digest.clone());
            self.queue((d.size, d.digest.clone(), Some(stream)));
        }
    }
    fn blob_done(&self, d: &Descriptor, k: BlobKind) {
        self.inner.blob_done(d, k);
        // A layer streamed to a decoder is decoded already, or being decoded.
        if k == BlobKind::Layer
            && !self
                .streamed
                .lock()
                .expect("not poisoned")
                .contains(&d.digest)
        {
            self.queue((d.size, d.digest.clone(), None));
        }
    }
    fn writing_manifest(&self) {
        self.inner.writing_manifest()
    }
    fn retrying(&self, what: &str, attempt: u32, delay: Duration) {
        self.inner.retrying(what, attempt, delay)
    }
    fn warning(&self, m: &str) {
        self.inner.warning(m)
    }
}

/// Builds (or finds) the image root of what was just pulled.
pub fn finish(store: &Store, unpacker: &Unpacker, pulled: &Pulled) -> anyhow::Result<ImageRoot> {
    let image = store
        .image_by_manifest(&pulled.manifest_digest)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: pulled, but its manifest {} vanished from the store (a concurrent rmi?)",
                pulled.reference,
                pulled.manifest_digest
            )
        })?;
    let root = unpacker
        .image_root(&image)
        .map_err(|e| e.context(pulled.reference.to_string()))?;
    for d in &root.info.skipped_devices {
        eprintln!("WARN: device node {d} not created (no CAP_MKNOD); containers get the host's devices bound instead");
    }
    Ok(root)
}
