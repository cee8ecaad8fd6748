//! The only home of `unsafe`: thin wrappers over the few syscalls that rustix and std do not
//! wrap. Every block carries a `// SAFETY:` comment; every unsafe fn a `# Safety` section.
