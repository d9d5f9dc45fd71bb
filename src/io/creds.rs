//! Thin libc wrappers for process credentials and start-up plumbing: user and
//! group look-ups, setgroups/setgid/setuid (glibc applies them to every thread),
//! prctl, raw capget/capset, chroot, and the fds and variables systemd passes.
//! One libc call per `unsafe` block, each with its SAFETY note.

use std::ffi::{CStr, CString, c_char};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a -1 return into the thread's errno.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Largest buffer offered to getpwnam_r/getgrnam_r (they ask for more with ERANGE).
const MAX_NSS_BUF: usize = 1 << 20;

/// The uid and primary gid of the user called `name`; `Ok(None)` when there is none.
pub fn user_by_name(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = cstring(name.as_bytes())?;
    let mut buf: Vec<c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value to initialise; getpwnam_r fills it.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pw`, `buf` (of the length passed) and `out` are
        // writable and live for the call; the strings in `pw` point into `buf`, unused after.
        let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!out.is_null()).then_some((pw.pw_uid, pw.pw_gid)));
    }
}

/// The gid of the group called `name`; `Ok(None)` when there is none.
pub fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = cstring(name.as_bytes())?;
    let mut buf: Vec<c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero group is a valid value to initialise; getgrnam_r fills it.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_by_name`: every pointer is live and writable for the call.
        let rc = unsafe { libc::getgrnam_r(cname.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!out.is_null()).then_some(gr.gr_gid));
    }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// (real, effective, saved) user ids of the calling thread.
pub fn getresuid() -> io::Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are writable uid_t values.
    check(unsafe { libc::getresuid(&mut r, &mut e, &mut s) })?;
    Ok((r, e, s))
}

/// (real, effective, saved) group ids of the calling thread.
pub fn getresgid() -> io::Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are writable gid_t values.
    check(unsafe { libc::getresgid(&mut r, &mut e, &mut s) })?;
    Ok((r, e, s))
}

/// The supplementary groups of the calling thread.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: a zero size with a null pointer only asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![0; n as usize + 1];
    // SAFETY: `groups` is writable for the length passed.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(n as usize);
    Ok(groups)
}

/// setgroups(2) through glibc, which applies it to every thread of the process.
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is readable for the length passed.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
}

/// setgid(2) through glibc, which applies it to every thread of the process.
pub fn setgid(gid: u32) -> io::Result<()> {
    // SAFETY: setgid has no memory preconditions.
    check(unsafe { libc::setgid(gid) })
}

/// setuid(2) through glibc, which applies it to every thread of the process.
pub fn setuid(uid: u32) -> io::Result<()> {
    // SAFETY: setuid has no memory preconditions.
    check(unsafe { libc::setuid(uid) })
}

/// PR_SET_NO_NEW_PRIVS for the calling thread and the threads it creates later.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS reads only its integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

/// PR_GET_NO_NEW_PRIVS of the calling thread.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: prctl with PR_GET_NO_NEW_PRIVS reads only its integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    check(rc)?;
    Ok(rc == 1)
}

/// PR_SET_KEEPCAPS for the calling thread: keep the permitted capabilities
/// across the change from uid 0 to another uid.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with PR_SET_KEEPCAPS reads only its integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) })
}

/// PR_CAP_AMBIENT_CLEAR_ALL: no ambient capability passes to anything the
/// process starts (it starts nothing; defence in depth).
pub fn clear_ambient_caps() -> io::Result<()> {
    // SAFETY: prctl with PR_CAP_AMBIENT reads only its integer arguments.
    check(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) })
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit words.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A thread's capability sets, one bit per capability number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// capget(2) for the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and an array of two data structs, both writable and live.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// capset(2) for the calling thread (threads created later inherit the sets).
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let split = |v: u64| [v as u32, (v >> 32) as u32];
    let (e, p, i) = (split(sets.effective), split(sets.permitted), split(sets.inheritable));
    let data = [
        CapData { effective: e[0], permitted: p[0], inheritable: i[0] },
        CapData { effective: e[1], permitted: p[1], inheritable: i[1] },
    ];
    // SAFETY: version 3 takes a header and an array of two data structs, both live for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// chroot(2) into `dir`, then chdir("/") so no directory outside stays current.
pub fn chroot(dir: &Path) -> io::Result<()> {
    let c = cstring(dir.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated path.
    check(unsafe { libc::chroot(c.as_ptr()) })?;
    // SAFETY: the literal is a NUL-terminated path.
    check(unsafe { libc::chdir(c"/".as_ptr()) })
}

/// Loads the time zone now (glibc reads /etc/localtime once, on first use),
/// so local times still work once /etc is out of reach.
pub fn tzset() {
    unsafe extern "C" {
        fn tzset();
    }
    // SAFETY: tzset has no preconditions; it is called before the worker threads start.
    unsafe { tzset() };
}

/// CLOCK_MONOTONIC in microseconds (systemd's MONOTONIC_USEC).
pub fn monotonic_usec() -> u64 {
    // SAFETY: an all-zero timespec is a valid value to initialise.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a writable timespec and the clock id is valid.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Removes an environment variable. Call only while the process has one thread.
pub fn unset_env(name: &str) {
    // SAFETY: start-up code calls this before any other thread exists, so no
    // thread can read the environment concurrently.
    unsafe { std::env::remove_var(name) };
}

/// Takes ownership of an inherited fd (systemd socket activation): checks that
/// it is open, then sets O_NONBLOCK and FD_CLOEXEC on it.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; EBADF if it is not open.
    let fdflags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    check(fdflags)?;
    // SAFETY: `fd` is open (checked above) and nothing else in the process owns it:
    // it was inherited across exec and is named by LISTEN_FDS for us alone.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: setting FD_CLOEXEC on an open descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, fdflags | libc::FD_CLOEXEC) })?;
    // SAFETY: F_GETFL only reads the file status flags.
    let flflags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    check(flflags)?;
    // SAFETY: setting O_NONBLOCK on an open descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flflags | libc::O_NONBLOCK) })?;
    Ok(owned)
}

/// The name of the calling thread's user for messages ("uid N" when unknown).
pub fn describe_uid(uid: u32) -> String {
    let mut buf: Vec<c_char> = vec![0; 4096];
    // SAFETY: an all-zero passwd is a valid value to initialise; getpwuid_r fills it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `pw`, `buf` (of the length passed) and `out` are writable and live for the call.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, still live.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    name.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_users_are_looked_up() {
        assert_eq!(user_by_name("root").expect("getpwnam_r"), Some((0, 0)));
        assert_eq!(user_by_name("no-such-user-mirrorftpd").expect("getpwnam_r"), None);
        assert_eq!(group_by_name("root").expect("getgrnam_r"), Some(0));
        assert_eq!(group_by_name("no-such-group-mirrorftpd").expect("getgrnam_r"), None);
        assert_eq!(describe_uid(0), "root");
    }

    #[test]
    fn capget_reads_this_thread() {
        let c = capget().expect("capget");
        assert_eq!(c.effective & !c.permitted, 0, "effective is a subset of permitted");
    }
}
