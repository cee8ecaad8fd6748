//! Starting a child process that shares holden's memory until it execs, the way glibc's
//! posix_spawn does: `CLONE_VM | CLONE_VFORK` on a stack of its own. No page table is copied
//! (a `fork` of a holden with thousands of programs copies megabytes of them, once per spawn),
//! and this thread is suspended only until the child execs or exits.
//!
//! Where possible the child is made with `clone3` (Linux 5.3): it gives the pidfd with the pid
//! (`CLONE_PIDFD`, no race with a reuse of the pid), and with `CLONE_INTO_CGROUP` (5.7) the
//! child starts inside a cgroup2 directory, with no `cgroup.procs` write and no migration. rustix
//! has no clone3 and libc's `syscall()` cannot be used for it: a child on a new stack returns from
//! the syscall instruction with nothing to return to. The few instructions around the syscall are
//! written out here (x86_64; elsewhere only the fallback is used). When clone3 is refused (ENOSYS
//! on old kernels, EPERM from a container runtime's seccomp filter), glibc's `clone` does the same
//! without the cgroup, and `pidfd_open` gives the pidfd; that is logged once at debug.
//!
//! The child runs the caller's function on the new stack and must only make raw syscalls on data
//! prepared before the clone (it shares the parent's memory: no allocation, no lock). Every signal
//! is blocked in the parent around the clone, so no handler of holden's runs in the child; the
//! child's function resets what it needs and unblocks them itself (`sys::raw::reset_signals`).
//!
//! `spawn_detached` makes the same child without `CLONE_VFORK`, for a child that has to write a
//! v1 cgroup.procs (a wait of an RCU grace period, tens of milliseconds, that holden must not
//! spend suspended): this thread goes on while the child migrates and execs in its memory. The
//! child's stack and what it reads are then owned by a `Detached` until the child is done, and
//! the child must leave libc's errno alone (it shares this thread's TLS): rustix and
//! `sys::raw` only.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// The child's stack: its frames are small (raw syscalls), but debug builds spend more.
const STACK_SIZE: usize = 256 * 1024;
const PAGE: usize = 4096;

/// A child that has exec'd or exited (`CLONE_VFORK`).
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// It was created in the cgroup given (CLONE_INTO_CGROUP).
    pub placed: bool,
}

/// What the child runs: `run(placed)`, its result the exit code if it returns.
struct Entry<'a> {
    run: &'a mut dyn FnMut(bool) -> c_int,
    placed: bool,
}

impl Entry<'_> {
    fn as_arg(&mut self) -> *mut c_void {
        std::ptr::from_mut(self).cast::<c_void>()
    }
}

extern "C" fn child_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Entry` that `vfork` keeps alive (it is suspended until this child
    // execs or exits), and nothing else touches it meanwhile.
    let entry = unsafe { &mut *arg.cast::<Entry<'_>>() };
    (entry.run)(entry.placed)
}

/// clone3 is refused here (ENOSYS or EPERM): found once, not asked again.
static CLONE3_REFUSED: AtomicBool = AtomicBool::new(false);
static LOG_FALLBACK: Once = Once::new();

thread_local! {
    /// Tests take the fallback path with this set, as on a host that refuses clone3.
    static FORCE_FALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Make this thread's spawns take the fallback (glibc `clone`, then `pidfd_open`), as if
/// clone3 were refused. For tests.
#[cfg(test)]
pub fn force_fallback(on: bool) {
    FORCE_FALLBACK.with(|f| f.set(on));
}

/// Run `run` in a new child process sharing this one's memory (`CLONE_VM | CLONE_VFORK`),
/// created in the cgroup2 directory `cgroup` when given and the kernel allows it; returns once
/// the child has exec'd or exited. `run(placed)` gets whether the child is in that cgroup
/// already; it must not return unless the exec failed (its result is then the exit code).
pub fn vfork(cgroup: Option<BorrowedFd<'_>>, run: &mut dyn FnMut(bool) -> c_int) -> Result<Child, Errno> {
    let stack = Stack::new()?;
    let mut entry = Entry { run, placed: false };
    let _mask = BlockAll::new();
    if !clone3_refused() {
        if let Some(dir) = cgroup {
            entry.placed = true;
            match clone3(&stack, Some(dir), Wait::Exec, child_entry, entry.as_arg()) {
                Ok(child) => return Ok(child),
                Err(e @ (Errno::AGAIN | Errno::NOMEM)) => return Err(e),
                // Refused for the cgroup (gone, a v2 "domain invalid" ...): the child joins it by
                // writing cgroup.procs, and reports what the kernel says then.
                Err(_) => entry.placed = false,
            }
        }
        match clone3(&stack, None, Wait::Exec, child_entry, entry.as_arg()) {
            Ok(child) => return Ok(child),
            Err(e @ (Errno::NOSYS | Errno::PERM)) => refused(e),
            Err(e) => return Err(e),
        }
    }
    entry.placed = false;
    clone_fallback(&stack, Wait::Exec, child_entry, entry.as_arg())
}

/// clone3 is refused on this host (found once), or a test said so for this thread.
pub fn clone3_refused() -> bool {
    CLONE3_REFUSED.load(Ordering::Relaxed) || FORCE_FALLBACK.with(Cell::get)
}

fn refused(e: Errno) {
    CLONE3_REFUSED.store(true, Ordering::Relaxed);
    LOG_FALLBACK.call_once(|| {
        log::debug!("clone3 refused ({e}): spawning with clone, children join cgroups by cgroup.procs");
    });
}

/// What a detached child runs: the job, which returns only when its exec failed (its result
/// is then the exit code).
pub type Job = Box<dyn FnMut() -> c_int>;

extern "C" fn job_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Job` boxed in a `Detached`, which keeps it, unmoved and untouched
    // by the parent, until this child has exec'd or exited.
    let job = unsafe { &mut *arg.cast::<Job>() };
    job()
}

/// A child that runs in this process's memory while this process goes on (`CLONE_VM` without
/// `CLONE_VFORK`): its stack and its job, kept until it has exec'd or exited. That is known
/// from `done`, a pipe's read end whose only write end is the child's (close-on-exec): its
/// POLLHUP comes at the exec (after the child left this memory) or at the exit.
///
/// Dropped earlier, they are kept aside and freed by a later `spawn_detached` once the child
/// is done: the child never finds its memory gone.
pub struct Detached {
    parts: Option<Parts>,
}

struct Parts {
    /// The boxed `Job` the child runs; it owns what the child reads.
    job: Box<Job>,
    stack: Stack,
    done: OwnedFd,
}

impl Parts {
    fn done(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut fds = [PollFd::new(&self.done, PollFlags::empty())];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        matches!(poll(&mut fds, Some(&zero)), Ok(1))
            && fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        if !self.done() {
            // The child may still run on this stack and read the job: never free them then
            // (only a thread's exit with a child pending gets here; `Detached` keeps them
            // aside otherwise).
            let job = std::mem::replace(&mut self.job, Box::new(Box::new(|| 0)));
            std::mem::forget(job);
            std::mem::forget(std::mem::replace(&mut self.stack, Stack::empty()));
        }
    }
}

thread_local! {
    /// Dropped `Detached` parts whose child had not exec'd or exited yet.
    static KEPT: std::cell::RefCell<Vec<Parts>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Detached {
    /// The child has exec'd or exited: nothing of ours is in use by it any more.
    pub fn done(&self) -> bool {
        self.parts.as_ref().is_none_or(Parts::done)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take()
            && !parts.done()
        {
            KEPT.with(|k| k.borrow_mut().push(parts));
        }
    }
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached").field("done", &self.done()).finish()
    }
}

/// Run `job` in a new child process that shares this one's memory (`CLONE_VM`), and return at
/// once: this thread is not suspended while the child works (joins cgroups) and execs. `done`
/// is the read end of a pipe whose write end the child gets close-on-exec and the caller
/// closes right after this call (see `Detached`). The child is never created in a cgroup
/// (`placed` is false): it writes every cgroup.procs itself.
///
/// The job must make only errno-free calls (rustix, `sys::raw`): the child shares this
/// thread's libc errno. Only where `raw::DETACHED_SUPPORTED`.
pub fn spawn_detached(job: Job, done: OwnedFd) -> Result<(Child, Detached), Errno> {
    KEPT.with(|k| k.borrow_mut().retain(|p| !p.done()));
    let stack = Stack::new()?;
    let mut job = Box::new(job);
    let arg = std::ptr::from_mut::<Job>(&mut *job).cast::<c_void>();
    let child = {
        let _mask = BlockAll::new();
        let mut made = Err(Errno::NOSYS);
        if !clone3_refused() {
            made = clone3(&stack, None, Wait::No, job_entry, arg);
            if let Err(e @ (Errno::NOSYS | Errno::PERM)) = made {
                refused(e);
            }
        }
        match made {
            Err(Errno::NOSYS | Errno::PERM) => clone_fallback(&stack, Wait::No, job_entry, arg),
            other => other,
        }
    };
    // Not made: no child uses them, they go now.
    let child = child?;
    Ok((
        child,
        Detached {
            parts: Some(Parts { job, stack, done }),
        },
    ))
}

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const _: () = assert!(std::mem::size_of::<CloneArgs>() == 88);

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What the child runs on its new stack: `entry(arg)`, its result the exit code.
type EntryFn = extern "C" fn(*mut c_void) -> c_int;

/// `CLONE_VFORK`: the parent waits until the child has exec'd or exited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Exec,
    No,
}

impl Wait {
    fn flags(self) -> c_int {
        match self {
            Wait::Exec => libc::CLONE_VM | libc::CLONE_VFORK,
            Wait::No => libc::CLONE_VM,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn clone3(
    stack: &Stack,
    cgroup: Option<BorrowedFd<'_>>,
    wait: Wait,
    entry: EntryFn,
    arg: *mut c_void,
) -> Result<Child, Errno> {
    let mut pidfd: c_int = -1;
    let mut args = CloneArgs {
        flags: (wait.flags() | libc::CLONE_PIDFD) as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.size as u64,
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    let ret: isize;
    // SAFETY: clone3 reads `args` (alive, of the size given). The child starts on the top of
    // `stack` (mapped, 16-byte aligned, unused by anyone else) with the parent's registers but
    // rax = 0: it clears the frame pointer, calls `entry(arg)` with the stack aligned as the
    // ABI wants, and exits with its result; it never comes back into this function. With
    // `Wait::Exec` the parent is suspended (CLONE_VFORK) until the child has exec'd or exited;
    // with `Wait::No` the caller keeps `stack` and what `arg` points to until then
    // (`Detached`): either way they outlive the child's use. In the parent the syscall
    // clobbers rcx and r11 only, and the asm touches no stack of ours.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") std::ptr::addr_of_mut!(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    let pid = Pid::from_raw(ret as i32).ok_or(Errno::INVAL)?;
    // SAFETY: with CLONE_PIDFD the kernel stored a new fd, ours alone, in `pidfd`.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // As pidfd_open(PIDFD_NONBLOCK) would: waitid on it never blocks.
    rustix::fs::fcntl_setfl(&pidfd, rustix::fs::OFlags::NONBLOCK)?;
    Ok(Child {
        pid,
        pidfd,
        placed: cgroup.is_some(),
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn clone3(_: &Stack, _: Option<BorrowedFd<'_>>, _: Wait, _: EntryFn, _: *mut c_void) -> Result<Child, Errno> {
    Err(Errno::NOSYS)
}

/// glibc's clone, which has the trampoline for a child on its own stack, then pidfd_open.
fn clone_fallback(stack: &Stack, wait: Wait, entry: EntryFn, arg: *mut c_void) -> Result<Child, Errno> {
    // SAFETY: as for clone3 above: the child runs `entry(arg)` on the top of `stack` and exits
    // with its result (glibc's clone does the exit); the parent is suspended until the child
    // has exec'd or exited (`Wait::Exec`), or the caller keeps what it reads until then
    // (`Wait::No`), so it outlives its use.
    let pid = unsafe {
        libc::clone(
            entry,
            stack.base.add(stack.size).cast::<c_void>(),
            wait.flags() | libc::SIGCHLD,
            arg,
        )
    };
    if pid < 0 {
        return Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN),
        ));
    }
    let pid = Pid::from_raw(pid).ok_or(Errno::INVAL)?;
    // Not reaped before the caller's loop reaps it: the pid is still this child's (at worst a
    // zombie).
    match pidfd_open(pid, PidfdFlags::NONBLOCK) {
        Ok(pidfd) => Ok(Child {
            pid,
            pidfd,
            placed: false,
        }),
        Err(e) => {
            // Unwatched it would run unsupervised: end and reap it now.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            Err(e)
        }
    }
}

/// An anonymous mapping for the child's stack, with a guard page below it.
struct Stack {
    /// The lowest usable byte (above the guard page).
    base: *mut u8,
    size: usize,
}

impl Stack {
    fn new() -> Result<Stack, Errno> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(Errno::NOMEM);
        }
        // SAFETY: the first page of the mapping made above; an overflow of the child's stack
        // then faults instead of writing below it.
        unsafe {
            libc::mprotect(map, PAGE, libc::PROT_NONE);
        }
        Ok(Stack {
            // SAFETY: PAGE is within the mapping of STACK_SIZE + PAGE bytes.
            base: unsafe { map.cast::<u8>().add(PAGE) },
            size: STACK_SIZE,
        })
    }
}

impl Stack {
    /// No mapping: what a forgotten stack is replaced with.
    fn empty() -> Stack {
        Stack {
            base: std::ptr::null_mut(),
            size: 0,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.base.is_null() {
            return;
        }
        // SAFETY: the mapping made in `new`, no longer used: the child has exec'd or exited.
        unsafe {
            libc::munmap(self.base.sub(PAGE).cast::<c_void>(), STACK_SIZE + PAGE);
        }
    }
}

/// Every signal blocked in this thread while alive; the old mask back on drop.
struct BlockAll(libc::sigset_t);

impl BlockAll {
    fn new() -> BlockAll {
        // SAFETY: sigfillset and pthread_sigmask only write the sets passed, which are ours.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            BlockAll(old)
        }
    }
}

impl Drop for BlockAll {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`; reads only that set.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}
