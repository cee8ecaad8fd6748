//! System calls that leave libc's `errno` alone, for a child that runs in holden's memory.
//!
//! A `CLONE_VM` child without `CLONE_VFORK` (`sys::clone::spawn_detached`) shares holden's
//! memory, its thread-local storage included, while holden runs on: libc's `errno` is one
//! word that both would write. So everything the child calls between the clone and the exec
//! is either rustix (its linux_raw backend makes the syscall itself and returns the error) or
//! one of these. On x86_64 they are the `syscall` instruction; elsewhere libc's `syscall()`
//! (which sets errno), and there the detached spawn is not used (`DETACHED_SUPPORTED`).

use std::ffi::{c_char, c_int};

use rustix::io::Errno;

/// The detached spawn is used only where these calls are errno-free.
pub const DETACHED_SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// syscall(nr, a, b, c, d): the result, or the errno the kernel returned.
///
/// # Safety
/// The arguments are what syscall `nr` expects: pointers valid for what it reads or writes.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> Result<usize, Errno> {
    let ret: isize;
    // SAFETY: the `syscall` instruction with the number in rax and the arguments in rdi, rsi,
    // rdx and r10, as the x86_64 Linux ABI wants; it clobbers rcx and r11 and nothing of ours
    // on the stack. What the kernel does with the arguments is each caller's own SAFETY.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// # Safety
/// As for the x86_64 version.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn syscall4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> Result<usize, Errno> {
    // SAFETY: as above; libc's `syscall` sets errno on failure, read back at once.
    let ret = unsafe { libc::syscall(nr, a, b, c, d) };
    if ret < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL),
        ))
    } else {
        Ok(ret as usize)
    }
}

/// The kernel's `struct sigaction` (not glibc's): handler, flags, restorer, a 64-bit mask.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Every signal with a handler back to its default action (a handler of holden's must not run
/// in a child that shares its memory), SIGPIPE to its default (Rust ignores it in holden), then
/// the signal mask emptied, as std's Command does. Signals 32 and 33 (glibc's own) included.
pub fn reset_signals() {
    const SET_SIZE: usize = 8;
    for sig in 1..=64usize {
        if sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
            continue;
        }
        let mut old = KernelSigaction::default();
        // SAFETY: rt_sigaction reads no new action (null) and writes the old one into `old`,
        // ours and of the kernel's layout and size.
        let got = unsafe {
            syscall4(
                libc::SYS_rt_sigaction,
                sig,
                0,
                std::ptr::from_mut(&mut old) as usize,
                SET_SIZE,
            )
        };
        if got.is_err() {
            continue;
        }
        let handled = old.handler != libc::SIG_DFL && old.handler != libc::SIG_IGN;
        if handled || (sig == libc::SIGPIPE as usize && old.handler == libc::SIG_IGN) {
            let dfl = KernelSigaction::default();
            // SAFETY: rt_sigaction reads `dfl` (SIG_DFL, no flags: no handler, no restorer
            // needed) and writes nothing back (null).
            let _ = unsafe {
                syscall4(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::from_ref(&dfl) as usize,
                    0,
                    SET_SIZE,
                )
            };
        }
    }
    let none: u64 = 0;
    // SAFETY: rt_sigprocmask(SIG_SETMASK) reads the empty set `none`, writes no old set.
    let _ = unsafe {
        syscall4(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as usize,
            std::ptr::from_ref(&none) as usize,
            0,
            SET_SIZE,
        )
    };
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd from `first` up is closed at the next
/// exec (Linux 5.11). rustix 1 has no wrapper for it.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes three integers and touches no memory of ours; marking fds
    // close-on-exec changes nothing until an exec.
    unsafe {
        syscall4(
            libc::SYS_close_range,
            first as usize,
            libc::c_uint::MAX as usize,
            libc::CLOSE_RANGE_CLOEXEC as usize,
            0,
        )
    }
    .map(drop)
}

/// execve(path, argv, envp); returns its errno (it returns only on failure).
///
/// # Safety
/// `path` and every element of `argv` and `envp` point to NUL-terminated strings alive for the
/// call, and both arrays end with a null pointer.
pub unsafe fn execve(path: *const c_char, argv: &[*const c_char], envp: &[*const c_char]) -> c_int {
    // SAFETY: the caller's promise above is what execve reads.
    let r = unsafe {
        syscall4(
            libc::SYS_execve,
            path as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
            0,
        )
    };
    match r {
        Err(e) => e.raw_os_error(),
        Ok(_) => libc::EINVAL,
    }
}
