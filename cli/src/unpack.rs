//! Pull leaves images ready to run, as podman's does: each layer is decoded
//! as soon as its download is verified (overlapping the other downloads),
//! then the image root is built from the cached changesets.

use std::sync::Arc;
use std::time::Duration;

use cairn_store::media::Descriptor;
use cairn_store::pull::{BlobKind, PullProgress, Pulled};
use cairn_store::{Digest, Reference, Store};
use cairn_unpacker::{ImageRoot, Unpacker};

/// Progress that also starts decoding each layer once it is stored.
pub struct DecodeAsDownloaded {
    inner: Arc<dyn PullProgress>,
    unpacker: Arc<Unpacker>,
}

impl DecodeAsDownloaded {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PullProgress>, unpacker: Arc<Unpacker>) -> DecodeAsDownloaded {
        DecodeAsDownloaded { inner, unpacker }
    }
}

impl PullProgress for DecodeAsDownloaded {
    fn trying(&self, r: &Reference) {
        self.inner.trying(r)
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
    fn blob_done(&self, d: &Descriptor, k: BlobKind) {
        self.inner.blob_done(d, k);
        if k == BlobKind::Layer {
            let unpacker = self.unpacker.clone();
            let digest = d.digest.clone();
            // Errors are reported when the image root asks for the layer.
            rayon::spawn(move || {
                let _ = unpacker.layer(&digest);
            });
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
