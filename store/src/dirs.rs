//! The subdirectories of a store root, named once for every crate that
//! keeps something there.

use std::path::{Path, PathBuf};

/// A subdirectory of the store root (`--root`): the OCI layout's own
/// (`blobs/`), the store's bookkeeping, and what the unpacker and the
/// container engine keep beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreDir {
    /// `blobs/<alg>/<hex>`: the OCI layout's content-addressed blobs.
    Blobs,
    /// `tmp/`: blobs being downloaded (`.partial` files).
    Tmp,
    /// `locks/`: flock files of the store, the unpacker and containers.
    Locks,
    /// `pins/`: the blobs live writers need (see [`crate::pin`]).
    Pins,
    /// `layers/`: the unpacker's changesets, one per layer blob.
    Layers,
    /// `objects/`: the unpacker's content-addressed file objects.
    Objects,
    /// `chains/`: materialized layer chains.
    Chains,
    /// `images/`: image roots.
    Images,
    /// `containers/`: each container's state and writable layer.
    Containers,
    /// `volumes/`: named volumes.
    Volumes,
    /// `cache/`: data derived once and kept between runs.
    Cache,
    /// `events/`: the event log (`cairn events`), written by every cairn
    /// process through `cairn_runtime::events`.
    Events,
}

impl StoreDir {
    /// The directory's name under the root.
    pub const fn name(self) -> &'static str {
        match self {
            StoreDir::Blobs => "blobs",
            StoreDir::Tmp => "tmp",
            StoreDir::Locks => "locks",
            StoreDir::Pins => "pins",
            StoreDir::Layers => "layers",
            StoreDir::Objects => "objects",
            StoreDir::Chains => "chains",
            StoreDir::Images => "images",
            StoreDir::Containers => "containers",
            StoreDir::Volumes => "volumes",
            StoreDir::Cache => "cache",
            StoreDir::Events => "events",
        }
    }

    /// The directory under the store root `root`.
    pub fn under(self, root: &Path) -> PathBuf {
        root.join(self.name())
    }
}

impl std::fmt::Display for StoreDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_plain() {
        let all = [
            StoreDir::Blobs,
            StoreDir::Tmp,
            StoreDir::Locks,
            StoreDir::Pins,
            StoreDir::Layers,
            StoreDir::Objects,
            StoreDir::Chains,
            StoreDir::Images,
            StoreDir::Containers,
            StoreDir::Volumes,
            StoreDir::Cache,
            StoreDir::Events,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), all.len());
        for d in all {
            assert!(!d.name().contains('/') && !d.name().starts_with('.'), "{d}");
            assert_eq!(d.under(Path::new("/r")), Path::new("/r").join(d.name()));
        }
    }
}
