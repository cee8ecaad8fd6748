//! Integration tests: agent.
#[allow(unused_imports)]
use crate::harness::*;
