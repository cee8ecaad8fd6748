//! Integration tests: core.
#[allow(unused_imports)]
use crate::harness::*;
