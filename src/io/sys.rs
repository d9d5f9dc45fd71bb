//! Thin libc wrappers: sendfile, signal handling, resource limits, thread priority.
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

/// Like `wait_signal`, but gives up after `timeout` (`Ok(None)`).
pub fn wait_signal_for(timeout: std::time::Duration) -> io::Result<Option<libc::c_int>> {
    let set = waited_set();
    let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: `set` and `ts` are valid; a null siginfo pointer is allowed.
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if rc >= 0 {
        return Ok(Some(rc));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// The soft limit on open files (for sizing and for messages).
pub fn nofile_limit() -> u64 {
    // SAFETY: an all-zero rlimit is a valid value to initialise.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 { 0 } else { r.rlim_cur }
}

/// Raises the soft limit on open files to the hard limit. Returns the new
/// (soft, hard) pair; the soft limit is left alone when already at the top.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero rlimit is a valid value to initialise.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
        // SAFETY: `raised` is a valid rlimit read by the call.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        r = raised;
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Receives and drops up to `len` bytes from the TCP socket `fd` without
/// copying them to user space (`recv` with MSG_TRUNC: on TCP, Linux discards
/// the data and returns how much it was). EINTR is retried; `Ok(0)` is EOF.
/// Only for TCP sockets: on other protocols the kernel would try to copy to
/// the null buffer and fail with EFAULT.
pub fn recv_discard(fd: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: `fd` is valid for the call (borrowed). The buffer pointer is
        // null: with MSG_TRUNC on a TCP socket the kernel never writes through
        // it, and on anything else it reports EFAULT rather than writing.
        let n = unsafe { libc::recv(fd.as_raw_fd(), std::ptr::null_mut(), len, libc::MSG_TRUNC) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// CPU time (user + system) the whole process has used so far.
pub fn process_cpu_time() -> io::Result<std::time::Duration> {
    // SAFETY: an all-zero rusage is a valid value to initialise.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(tv(u.ru_utime) + tv(u.ru_stime))
}

/// The terminal attributes of `fd` (`tcgetattr`); fails with ENOTTY on a non-terminal.
pub fn tc_getattr(fd: BorrowedFd<'_>) -> io::Result<libc::termios> {
    // SAFETY: an all-zero termios is a valid value to initialise; tcgetattr overwrites it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is valid for the call (borrowed) and `t` is a writable termios.
    let rc = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

/// Sets the terminal attributes of `fd` after the pending output is written, discarding
/// unread input (`tcsetattr` with TCSAFLUSH, as getpass does). EINTR is retried.
pub fn tc_setattr(fd: BorrowedFd<'_>, t: &libc::termios) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is valid for the call (borrowed) and `t` points to a valid termios.
        let rc = unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSAFLUSH, t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Ignores SIGXFSZ so that writing past RLIMIT_FSIZE fails with EFBIG
/// instead of killing the process.
pub fn ignore_sigxfsz() -> io::Result<()> {
    // SAFETY: installing SIG_IGN for a valid signal number has no other effect.
    let prev = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// IP_BIND_ADDRESS_NO_PORT: with bind(ip, 0) before connect(), defer the
/// port choice to connect() so it is unique per 4-tuple, not per port.
pub fn set_bind_address_no_port(sock: &socket2::Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `sock` is a live socket; the option value is a c_int of the
    // size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SO_MAX_PACING_RATE: the kernel sends at most `bytes_per_sec` on this
/// socket (TCP paces itself without the fq qdisc since Linux 4.13), so a
/// rate-limited download needs no timers in user space and stays on
/// sendfile. Rates above what the kernel can represent mean unlimited.
pub fn set_max_pacing_rate(sock: &impl AsRawFd, bytes_per_sec: u64) -> io::Result<()> {
    // The kernel takes an unsigned long (64-bit here); ~0 means unlimited.
    let rate: libc::c_ulong = libc::c_ulong::try_from(bytes_per_sec).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: `sock` is a live socket; the option value is a c_ulong of the
    // size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MAX_PACING_RATE,
            (&rate as *const libc::c_ulong).cast(),
            std::mem::size_of::<libc::c_ulong>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// asm-generic/socket.h (x86, arm, riscv…); the libc crate has no export
/// of it for every target.
const SO_MAX_PACING_RATE: libc::c_int = 47;

/// Lowers the calling thread's CPU priority by `steps` nice steps (capped
/// at 19 by the kernel). On Linux the nice value belongs to the thread, and
/// raising it needs no privilege. The helpers that copy file ranges and
/// fill listings call it (`limits::HELPER_NICE`), so that when the CPUs are
/// short the event loops, which serve the waiting clients, run first. A
/// failure only costs the priority, so it is not reported.
pub fn lower_thread_priority(steps: libc::c_int) {
    // SAFETY: nice() takes an increment and touches nothing else; it acts on
    // the calling thread (Linux keeps nice values per thread).
    let _ = unsafe { libc::nice(steps) };
}
