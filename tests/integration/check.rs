//! Integration tests: check.
#[allow(unused_imports)]
use crate::harness::*;
