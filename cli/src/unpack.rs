//! Pull leaves images ready to run, as podman's does: the pull's progress
//! reports feed a [`PullDecoder`], which decodes each layer while it
//! downloads; then the image root is built from those changesets.

use std::sync::Arc;
use std::time::Duration;

use cairn_store::media::{Descriptor, Manifest};
use cairn_store::progress::{BlobKind, PullProgress, Pulled};
use cairn_store::{BlobStream, Digest, Reference, Store};
use cairn_unpacker::{ImageRoot, PullDecoder, Unpacker};

/// Progress that also decodes each layer while it downloads.
pub struct DecodeAsDownloaded {
    inner: Arc<dyn PullProgress>,
    decoder: PullDecoder,
}

impl DecodeAsDownloaded {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PullProgress>, unpacker: Arc<Unpacker>) -> DecodeAsDownloaded {
        DecodeAsDownloaded {
            inner,
            decoder: PullDecoder::new(unpacker),
        }
    }
}

impl PullProgress for DecodeAsDownloaded {
    fn trying(&self, r: &Reference) {
        self.inner.trying(r)
    }
    fn manifest(&self, m: &Manifest) {
        self.inner.manifest(m);
        self.decoder
            .manifest(m.layers.iter().map(|l| l.digest.clone()).collect());
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
            self.decoder.layer_downloading(&d.digest, d.size, stream);
        }
    }
    fn blob_done(&self, d: &Descriptor, k: BlobKind) {
        self.inner.blob_done(d, k);
        if k == BlobKind::Layer {
            self.decoder.layer_stored(&d.digest, d.size);
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
