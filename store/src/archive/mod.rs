//! Images out of the store and back in without a registry: the writers of
//! the local transports (`oci:`, `oci-archive:`, `docker-archive:`,
//! `dir:`) that `save` and `push` use, and `load` of docker and OCI
//! archives.
//!
//! Crash rules: an archive or a `dir:` directory is written under a
//! temporary name beside its destination and renamed into place once
//! complete and fsynced, so a crash never leaves a partial one at its
//! name; `oci:` gets its blobs first and its `index.json` last (replaced
//! atomically). `load` stores verified blobs as a pull does and writes the
//! refs last.

mod load;
mod out;
mod save;

pub(crate) use load::{decompressed, drop_added, scan};
pub use load::{load_archive, LoadedImage};
pub use save::{
    write_archive_to_stdout, write_image, ArchiveFormat, ArchiveSink, Destination, SaveImage,
    StdoutSink, WriteOptions,
};
