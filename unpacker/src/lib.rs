//! cairn's layer unpacker, in stages a caller can use one by one:
//!
//! 1. [`decode`]: a layer blob (gzip, zstd or plain tar, detected from its
//!    bytes) becomes a [`Changeset`]; regular file contents go once into the
//!    [`ObjectStore`], keyed by content and the metadata an inode carries
//!    (mode, owner, mtime, xattrs), so every name shows its own layer's.
//! 2. [`Plan`]: changesets applied in order to an in-memory tree (whiteouts,
//!    opaque directories, replacements, hardlinks, symlinked parents), pure.
//! 3. [`materialize`]: the tree written to a directory relative to directory
//!    fds, never following a symlink, regular files hardlinked to objects (or
//!    copied), directory metadata last.
//!
//! [`Unpacker`] ties them to a store: changesets cached per layer, image
//! roots built once per image and id map. [`PullDecoder`] decodes an
//! image's layers while a pull downloads them, fed by whoever pulls (this
//! crate does not know the registry client).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod changeset;
pub mod decode;
mod error;
mod idmap;
pub mod materialize;
mod objects;
mod path;
mod plan;
mod pull;
mod unpacker;

pub use changeset::{Change, Changeset, DeviceKind, Entry, Meta, ObjectId};
pub use decode::{decode, DecodeOptions, Decoded};
pub use error::Error;
pub use idmap::{IdMap, IdMapError, IdRange};
pub use materialize::{materialize, Devices, MaterializeOptions, Mode, Stats};
pub use objects::{ObjectStore, Ownership, PutOutcome};
pub use path::{PathError, RootPath};
pub use plan::{Node, NodeKind, Plan, PlanError};
pub use pull::PullDecoder;
pub use unpacker::{CheckOptions, DerivedReport, ImageRoot, RootInfo, Unpacker, UnpackerOptions};
