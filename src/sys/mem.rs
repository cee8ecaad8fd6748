//! Memory given back to the kernel: after start-up, the heap holds the freed trees of the parsed
//! config and the scratch of the first spawns, pages that stay resident unless returned
//! (issue 13: holden's RSS at 200 programs).

/// Returns the malloc heap's free pages to the kernel (glibc `malloc_trim(0)`: free chunks
/// are `MADV_DONTNEED`ed, the top is shrunk). Nothing where the C library has no such call.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own arenas under their lock;
    // holden is one thread and calls it outside any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
