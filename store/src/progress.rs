//! Pull and import events, and what they produce: shared by registry pulls
//! and local imports.

use std::time::Duration;

use crate::digest::Digest;
use crate::media::Descriptor;
use crate::reference::Reference;

/// What a blob is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// The image config.
    Config,
    /// A layer.
    Layer,
}

/// Pull events, for progress bars or log lines. Every method has a no-op
/// default.
pub trait PullProgress: Send + Sync {
    /// About to contact the registry for `reference`.
    fn trying(&self, _reference: &Reference) {}
    /// The image manifest is resolved (and pinned); its blobs come next.
    fn manifest(&self, _manifest: &crate::media::Manifest) {}
    /// A blob is already in the store; nothing is fetched.
    fn blob_skipped(&self, _desc: &Descriptor, _kind: BlobKind) {}
    /// A blob download starts (at `resumed_from` bytes if a partial was kept).
    fn blob_started(&self, _desc: &Descriptor, _kind: BlobKind, _resumed_from: u64) {}
    /// Whether to hand this blob's download to [`PullProgress::blob_stream`]
    /// as it arrives. Default: no.
    fn wants_stream(&self, _desc: &Descriptor, _kind: BlobKind) -> bool {
        false
    }
    /// A download starts, readable while it arrives (see
    /// [`crate::BlobStream`]: it ends only once the blob is verified and
    /// stored). A download retried from its first byte starts a new stream.
    fn blob_stream(&self, _desc: &Descriptor, _kind: BlobKind, _stream: crate::BlobStream) {}
    /// `bytes` of the blob are now held.
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// A blob is verified and stored.
    fn blob_done(&self, _desc: &Descriptor, _kind: BlobKind) {}
    /// The ref is about to be written.
    fn writing_manifest(&self) {}
    /// A request failed and is retried after `delay`.
    fn retrying(&self, _what: &str, _attempt: u32, _delay: Duration) {}
    /// Something worth telling that is not an error.
    fn warning(&self, _message: &str) {}
}

/// Progress that prints nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;
impl PullProgress for Silent {}

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference recorded.
    pub reference: Reference,
    /// The image id (config digest).
    pub image_id: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// Blobs fetched (config and layers).
    pub blobs_fetched: usize,
    /// Bytes fetched.
    pub bytes_fetched: u64,
    /// The image's use lock, held shared from before its ref was written
    /// (see [`crate::Store::lock_image_use`]): until the last clone is
    /// dropped, rmi and prune wait, so the caller can still use the image.
    pub in_use: std::sync::Arc<crate::LockGuard>,
}
