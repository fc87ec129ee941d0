//! Table tests.
use super::*;
