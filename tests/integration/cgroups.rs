//! Integration tests: cgroups.
#[allow(unused_imports)]
use crate::harness::*;
