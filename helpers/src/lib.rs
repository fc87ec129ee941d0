//! Runtime helper binaries (`cairn-mount`, `cairn-pivot`, `cairn-enter`).
//!
//! Not written yet (issue 4); this crate exists so the workspace shows the
//! architecture. It exports nothing.
#![deny(missing_docs)]
