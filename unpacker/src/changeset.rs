//! What stage 1 makes of a layer: an ordered list of changes, regular file
//! contents replaced by object ids. Stored per layer (by diff id) so a
//! layer is decoded once ever.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::path::RootPath;

/// Metadata an entry carries, ids already mapped to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// Permission bits, setuid/setgid/sticky included (`0o7777` mask).
    pub mode: u32,
    /// Owner (host id).
    pub uid: u32,
    /// Group (host id).
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes kept (`user.*`, `security.capability`), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A regular file's identity in the object store: BLAKE3 over the content's
/// BLAKE3 and the metadata an inode carries (mode, uid, gid, mtime,
/// xattrs); see `object_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    /// Lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "obj:{}", &self.hex()[..16])
    }
}

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// Character device.
    Char,
    /// Block device.
    Block,
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A directory (created, or its metadata replaced).
    Dir(Meta),
    /// A regular file whose content and metadata are an object.
    File {
        /// Its metadata (also the object's).
        meta: Meta,
        /// The object.
        object: ObjectId,
        /// Content length.
        size: u64,
    },
    /// A symbolic link; the target is kept verbatim, never followed.
    Symlink {
        /// Metadata (mode is not applied: Linux ignores symlink modes).
        meta: Meta,
        /// The link target as written in the layer.
        target: Vec<u8>,
    },
    /// A hardlink to a path earlier in this layer or in a lower one.
    Hardlink {
        /// The linked path.
        target: RootPath,
    },
    /// A device node.
    Device {
        /// Metadata.
        meta: Meta,
        /// Character or block.
        kind: DeviceKind,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo(Meta),
    /// `.wh.<name>`: the path is removed from lower layers.
    Whiteout,
    /// `.wh..wh..opq`: the directory's lower contents are hidden.
    Opaque,
}

/// One entry at its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Where.
    pub path: RootPath,
    /// What.
    pub entry: Entry,
}

/// A decoded layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Changeset {
    /// The changes, in layer order.
    pub changes: Vec<Change>,
    /// Bytes of regular file content in the layer.
    pub content_bytes: u64,
}

impl Changeset {
    /// Every object the changeset refers to.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectId> {
        self.changes.iter().filter_map(|c| match &c.entry {
            Entry::File { object, .. } => Some(object),
            _ => None,
        })
    }
}
