//! holden's integration tests: the real binary on the real kernel. One module per SPEC section.

mod harness;

mod agent;
mod bounded;
mod cgroups;
mod check;
mod cli;
mod control;
mod core;
mod deploy;
mod hardening;
mod import;
mod instances;
mod logs;
mod process;
mod promise;
mod readiness;
mod soak;
mod trust;
mod unsupervised;
