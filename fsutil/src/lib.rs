//! The file-system primitives every cairn crate shares, defined once:
//!
//! * [`write_atomic`]: replace a file so that a crash leaves the old
//!   content or the new, never a mix;
//! * [`LockGuard`]: advisory `flock(2)` locks that die with their process;
//! * [`PathError`] and [`IoContext`]: I/O errors that say what was being
//!   done and to which path.
#![forbid(unsafe_code)]

mod atomic;
mod error;
mod lock;

pub use atomic::{write_atomic, Durability};
pub use error::{IoContext, PathError};
pub use lock::{LockGuard, LockMode};
