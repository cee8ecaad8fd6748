//! Integration tests: logs.
#[allow(unused_imports)]
use crate::harness::*;
