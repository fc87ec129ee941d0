//! Multi-stage OCI layer unpacker: decode, plan, materialize.
//!
//! Not written yet (issue 3); this crate exists so the workspace shows the
//! architecture. It exports nothing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
