//! Integration tests: control.
#[allow(unused_imports)]
use crate::harness::*;
