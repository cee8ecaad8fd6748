//! The only home of `unsafe`: thin wrappers over what rustix and std leave to unsafe code.
//! Every block carries a `// SAFETY:` comment; every unsafe fn a `# Safety` section.

#[cfg(test)]
pub mod alloc_count;
pub mod clone;
pub mod env;
pub mod exec;
pub mod image;
pub mod mem;
pub mod peer;
pub mod pidfd;
pub mod raw;
pub mod signal;
