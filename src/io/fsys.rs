//! Thin libc wrappers for the file-system side: the only place in the `fs` code with `unsafe`.
//!
//! Every wrapper makes exactly one libc call inside one `unsafe` block, turns `-1` into an
//! [`io::Error`] and retries `EINTR`. File descriptors go in as [`BorrowedFd`] and come out as
//! [`OwnedFd`]; names go in as [`CStr`], so they are bytes, never UTF-8.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `RESOLVE_BENEATH` from `linux/openat2.h`: no component may leave the starting directory.
pub const RESOLVE_BENEATH: u64 = 0x08;
/// `RESOLVE_NO_MAGICLINKS` from `linux/openat2.h`: refuse `/proc/*/fd`-style magic links.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

/// Runs a libc call until it does not fail with `EINTR`; `-1` becomes `io::Error::last_os_error`.
macro_rules! syscall {
    ($call:expr) => {{
        loop {
            let r = $call;
            if r == -1 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            break Ok(r);
        }
    }};
}

/// `struct open_how` from `linux/openat2.h` (libc's own is `#[non_exhaustive]`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let raw = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    if raw < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `raw` is a descriptor the kernel just returned to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `openat2(2)`: opens `path` relative to `dir` with the given `RESOLVE_*` restrictions.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        // Flags are a bit set; reinterpreting the sign bit is what the kernel expects.
        flags: u64::from(flags as u32),
        mode: u64::from(mode),
        resolve,
    };
    let fd = syscall!(
        // SAFETY: `path` is NUL-terminated and `how` is a live `open_how` of the size we pass;
        // the kernel only reads both.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        }
    )?;
    owned(fd)
}

/// `openat(2)` relative to `dir`.
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let fd = syscall!(
        // SAFETY: `path` is NUL-terminated and outlives the call; `dir` is a live descriptor.
        unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags, mode as libc::c_uint) }
    )?;
    owned(libc::c_long::from(fd))
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    syscall!(
        // SAFETY: `st` points to writable memory of the size of `struct stat`.
        unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }
    )?;
    // SAFETY: fstat returned 0, so the kernel filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(2)`; pass `libc::AT_SYMLINK_NOFOLLOW` and/or `libc::AT_EMPTY_PATH` in `flags`.
pub fn fstatat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    syscall!(
        // SAFETY: `name` is NUL-terminated; `st` points to writable memory of the right size.
        unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) }
    )?;
    // SAFETY: fstatat returned 0, so the kernel filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// `readlinkat(2)`: the link's target into `buf`, returning its length (not NUL-terminated).
/// An empty `name` with an `O_PATH|O_NOFOLLOW` descriptor reads that very link.
/// A result equal to `buf.len()` means the target may have been truncated.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(
        // SAFETY: `name` is NUL-terminated; the kernel writes at most `buf.len()` bytes to `buf`.
        unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) }
    )?;
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `getdents64(2)`: fills `buf` with `linux_dirent64` records; 0 means end of directory.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len(),) }
    )?;
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `lseek(2)`; returns the new offset.
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: i32) -> io::Result<u64> {
    let r = syscall!(
        // SAFETY: plain integer arguments on a live descriptor.
        unsafe { libc::lseek(fd.as_raw_fd(), offset as libc::off_t, whence) }
    )?;
    u64::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `fcntl(F_GETFL)`: the file status flags.
pub fn get_status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    syscall!(
        // SAFETY: F_GETFL takes no pointer argument.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }
    )
}

/// `fcntl(F_SETFL)`: replaces the file status flags.
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    syscall!(
        // SAFETY: F_SETFL takes an integer argument.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }
    )
    .map(drop)
}

/// `localtime_r(3)`: broken-down local time of `secs` since the epoch.
pub fn localtime(secs: i64) -> io::Result<libc::tm> {
    let t: libc::time_t = secs as libc::time_t;
    let mut tm = MaybeUninit::<libc::tm>::uninit();
    // SAFETY: both pointers are valid for the call; localtime_r is re-entrant.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    }
    // SAFETY: localtime_r returned non-null, so it filled `tm`.
    Ok(unsafe { tm.assume_init() })
}

/// Reads a directory's entries with `getdents64` through one fixed buffer.
pub struct DirStream {
    fd: OwnedFd,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl DirStream {
    /// Reads the directory open on `fd`, `buf_size` bytes of records at a time.
    pub fn new(fd: OwnedFd, buf_size: usize) -> DirStream {
        let buf = vec![0; buf_size.max(1024)].into_boxed_slice();
        DirStream { fd, buf, pos: 0, end: 0, eof: false }
    }

    /// The directory fd, with the next entry's name (`.` and `..` included); `None` at the end.
    pub fn next_entry(&mut self) -> io::Result<Option<(BorrowedFd<'_>, &CStr)>> {
        if self.pos >= self.end {
            if self.eof {
                return Ok(None);
            }
            let n = getdents64(self.fd.as_fd(), &mut self.buf)?;
            self.pos = 0;
            self.end = n.min(self.buf.len());
            if self.end == 0 {
                self.eof = true;
                return Ok(None);
            }
        }
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let rec = &self.buf[self.pos..self.end];
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed dirent");
        let reclen = match rec.get(16..18) {
            Some(&[a, b]) => usize::from(u16::from_ne_bytes([a, b])),
            _ => return Err(bad()),
        };
        let name = rec.get(19..reclen).ok_or_else(bad)?;
        let name = CStr::from_bytes_until_nul(name).map_err(|_| bad())?;
        self.pos += reclen;
        Ok(Some((self.fd.as_fd(), name)))
    }
}

// ---- writes: uploads and file management ----

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` a live descriptor.
    syscall!(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// `unlinkat(2)`; `libc::AT_REMOVEDIR` in `flags` removes an empty directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` a live descriptor.
    syscall!(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// `renameat2(2)`; `flags` may hold `RENAME_NOREPLACE`.
pub fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: u32,
) -> io::Result<()> {
    syscall!(
        // SAFETY: both names are NUL-terminated and both descriptors live.
        unsafe { libc::renameat2(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr(), flags) }
    )?;
    Ok(())
}

/// Sets the modification time (and leaves the access time) of an open file.
pub fn set_mtime(fd: BorrowedFd<'_>, secs: i64) -> io::Result<()> {
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: 0 },
    ];
    // SAFETY: `times` is an array of two timespecs as futimens expects.
    syscall!(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

/// Sets the access and modification times of an open file (seconds).
pub fn set_times(fd: BorrowedFd<'_>, atime: i64, mtime: i64) -> io::Result<()> {
    let times = [
        libc::timespec { tv_sec: atime as libc::time_t, tv_nsec: 0 },
        libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 },
    ];
    // SAFETY: `times` is an array of two timespecs as futimens expects.
    syscall!(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

/// `fstatvfs(3)` of the file system holding `fd` (an `O_PATH` descriptor is enough).
pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` is valid for writes of one statvfs; `fd` is a live descriptor.
    syscall!(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatvfs succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fchmod(2)` on an open descriptor.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor.
    syscall!(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// `flock(2)` with `LOCK_EX | LOCK_NB`: `Ok(false)` when another open file
/// description (another upload, here or in another process) holds it.
pub fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `fd` is a live descriptor.
    match syscall!(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets the process umask, returning the previous one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_seek_on_a_real_file() {
        let path = std::env::temp_dir().join(format!("mirrorftpd-fsys-{}", std::process::id()));
        std::fs::write(&path, b"hello").expect("write");
        let f = std::fs::File::open(&path).expect("open");
        let st = fstat(f.as_fd()).expect("fstat");
        assert_eq!(st.st_size, 5);
        assert_eq!(lseek(f.as_fd(), 2, libc::SEEK_SET).expect("lseek"), 2);
        let fl = get_status_flags(f.as_fd()).expect("getfl");
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDONLY);
        std::fs::remove_file(&path).expect("rm");
    }

    #[test]
    fn errors_carry_errno() {
        let dir = std::fs::File::open(std::env::temp_dir()).expect("open tmp");
        let e = openat(dir.as_fd(), c"mirrorftpd-no-such-name", libc::O_RDONLY, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let e = fstatat(dir.as_fd(), c"mirrorftpd-no-such-name", 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn localtime_gives_a_plausible_year() {
        let tm = localtime(0).expect("localtime");
        assert!(tm.tm_year == 69 || tm.tm_year == 70);
    }

    #[test]
    fn dir_stream_reads_every_name_with_a_small_buffer() {
        let dir = std::env::temp_dir().join(format!("mirrorftpd-fsys-dir-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir");
        let mut want = vec![b".".to_vec(), b"..".to_vec()];
        for i in 0..300 {
            let name = format!("n{i:03}-\u{e9}");
            std::fs::write(dir.join(&name), b"").expect("create");
            want.push(name.into_bytes());
        }
        let fd = OwnedFd::from(std::fs::File::open(&dir).expect("open dir"));
        let mut ds = DirStream::new(fd, 1024);
        let mut got = Vec::new();
        while let Some((_, name)) = ds.next_entry().expect("next") {
            got.push(name.to_bytes().to_vec());
        }
        assert!(ds.next_entry().expect("after end").is_none());
        got.sort();
        want.sort();
        assert_eq!(got, want);
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
