//! The process environment, which std leaves to unsafe code in edition 2024.

/// Remove `key` from holden's environment, so that no program inherits it. Only while holden
/// has a single thread (the start of `holden run`): with more, it leaves the variable alone and
/// says so.
pub fn remove_var_single_threaded(key: &str) -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .map_err(|e| format!("cannot count holden's threads: {e}"))?;
    if threads != 1 {
        return Err(format!("holden runs {threads} threads already"));
    }
    // SAFETY: this process has one thread, this one: nothing else can read or write the
    // environment while it changes (only this thread could start another).
    unsafe { std::env::remove_var(key) };
    Ok(())
}
