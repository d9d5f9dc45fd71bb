//! Thin libc wrappers for the network side: sendfile and signal handling.
//! One libc call per `unsafe` block, each with its SAFETY note.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends up to `count` bytes of `file` starting at `*offset` to the socket
/// `out`, advancing `*offset` by what was sent. Offsets are 64-bit, so files
/// past 4 GiB work. EINTR is retried; EAGAIN comes back as `WouldBlock`.
pub fn sendfile(out: BorrowedFd<'_>, file: BorrowedFd<'_>, offset: &mut u64, count: usize) -> io::Result<usize> {
    let Ok(mut off) = i64::try_from(*offset) else {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    };
    loop {
        // SAFETY: both fds are valid for the duration of the call (borrowed),
        // and `off` is a live, writable off64_t the kernel updates.
        let n = unsafe { libc::sendfile64(out.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if n >= 0 {
            *offset = off as u64;
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// True when sendfile cannot be used on this file/socket pair and the caller
/// should fall back to read+write.
pub fn sendfile_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP))
}

/// Signals the main thread waits for; blocked in every thread so that only
/// `wait_signal` sees them.
const WAITED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

fn waited_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for s in WAITED {
        // SAFETY: `set` is a valid sigset_t and `s` a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Blocks the waited-for signals in the calling thread (threads spawned
/// afterwards inherit the mask). Call before starting workers.
pub fn block_signals() -> io::Result<()> {
    let set = waited_set();
    // SAFETY: `set` is valid; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for one of SIGTERM, SIGINT, SIGHUP, SIGUSR1 and returns it.
pub fn wait_signal() -> io::Result<libc::c_int> {
    let set = waited_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is valid and `sig` is a writable int.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// The soft limit on open files (for sizing and for messages).
pub fn nofile_limit() -> u64 {
    // SAFETY: an all-zero rlimit is a valid value to initialise.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 { 0 } else { r.rlim_cur }
}
