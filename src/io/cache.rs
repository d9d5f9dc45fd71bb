//! The page cache, asked without blocking: `cachestat(2)` (is this range of a
//! file in memory?), `preadv2(RWF_NOWAIT)` (read it only if it is), and the
//! calls a disk helper or a test uses to fill or empty it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;

/// cachestat(2)'s number: new system calls share one number on every
/// architecture since 5.x, and libc does not name this one on x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of <linux/mman.h>.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of <linux/mman.h>.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// What the kernel said about a range.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Every page of the range is in the page cache.
    Cached,
    /// At least one page must come from the disk.
    Missing,
    /// The kernel or the file system cannot tell (ENOSYS, EOPNOTSUPP...):
    /// the caller falls back to assuming the range is cached.
    Unknown,
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
    })
}

/// Pages the byte range `[off, off + len)` touches (`len` > 0).
fn pages_spanned(off: u64, len: u64) -> u64 {
    let p = page_size();
    (off + len - 1) / p - off / p + 1
}

/// Whether `[off, off + len)` of `file` is in the page cache, from
/// `cachestat(2)` (Linux 6.5+). The caller keeps the range inside the file.
/// `Unknown` also when the kernel refuses (EPERM: since 6.10 the caller must
/// own the file or be allowed to write it, which a mirror's files rarely
/// allow the server's user): `probe` is the way then.
pub fn cachestat(file: BorrowedFd<'_>, off: u64, len: u64) -> Residency {
    if len == 0 {
        return Residency::Cached;
    }
    let Ok(fd) = libc::c_uint::try_from(file.as_raw_fd()) else {
        return Residency::Unknown;
    };
    let range = CachestatRange { off, len };
    let mut st = Cachestat::default();
    // SAFETY: `fd` is a valid open descriptor (borrowed for the call);
    // `range` and `st` are live repr(C) structs of the kernel's layout, read
    // and written only during the call; flags must be 0.
    let rc = unsafe {
        libc::syscall(SYS_CACHESTAT, fd, &range as *const CachestatRange, &mut st as *mut Cachestat, 0 as libc::c_uint)
    };
    if rc != 0 {
        return Residency::Unknown;
    }
    if st.nr_cache >= pages_spanned(off, len) { Residency::Cached } else { Residency::Missing }
}

/// Bytes of the scratch buffer `probe` reads into (each iovec of a probe
/// points at it, so it stays in the CPU cache whatever the range's length).
const PROBE_SCRATCH: usize = 16 << 10;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; PROBE_SCRATCH].into_boxed_slice());
}

/// Whether `[off, off + len)` is in the page cache, by reading it with
/// preadv2(RWF_NOWAIT) into one small scratch buffer, many times over (one
/// iovec per 16 KiB, up to IOV_MAX): the read stops short at the first page
/// that is not cached. Costs a copy into the CPU cache, about what cachestat
/// costs a lot less; works for any file the process can read.
pub fn probe(file: BorrowedFd<'_>, off: u64, len: u64) -> Residency {
    let Ok(off) = libc::off_t::try_from(off) else {
        return Residency::Unknown;
    };
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        let base = scratch.as_mut_ptr().cast::<libc::c_void>();
        let mut iov = [libc::iovec { iov_base: base, iov_len: 0 }; 1024];
        let pieces = usize::try_from(len.div_ceil(PROBE_SCRATCH as u64)).unwrap_or(usize::MAX).min(iov.len());
        let mut left = len;
        for v in iov.iter_mut().take(pieces) {
            v.iov_len = left.min(PROBE_SCRATCH as u64) as usize;
            left -= v.iov_len as u64;
        }
        let want = len - left;
        loop {
            // SAFETY: the fd is valid for the call; every iovec points at the
            // live, writable scratch buffer of PROBE_SCRATCH bytes (iov_len
            // never exceeds it), which nothing else touches meanwhile (it is
            // this thread's and mutably borrowed); `pieces` <= iov.len().
            let n =
                unsafe { libc::preadv2(file.as_raw_fd(), iov.as_ptr(), pieces as libc::c_int, off, libc::RWF_NOWAIT) };
            if n >= 0 {
                return if n as u64 >= want { Residency::Cached } else { Residency::Missing };
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Residency::Missing,
                _ => return Residency::Unknown,
            }
        }
    })
}

/// Reads at `off` only what the page cache holds: `Ok(n)` with `n` possibly
/// short (0 at the end of the file); `WouldBlock` when the first byte needs
/// the disk; `Unsupported` when the file system cannot do RWF_NOWAIT (use a
/// plain read). EINTR is retried.
pub fn pread_nowait(file: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let Ok(off) = libc::off_t::try_from(off) else {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    };
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    loop {
        // SAFETY: the fd is valid for the call; `iov` describes `buf`, a live
        // writable slice of exactly iov_len bytes; one iovec.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => return Err(io::ErrorKind::Unsupported.into()),
            _ => return Err(e),
        }
    }
}

/// A plain positioned read (the disk helpers' way of waiting until a range
/// is in the page cache). EINTR is retried.
pub fn pread(file: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let Ok(off) = libc::off_t::try_from(off) else {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    };
    loop {
        // SAFETY: the fd is valid for the call; `buf` is a live writable slice
        // of buf.len() bytes.
        let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Drops the clean cached pages of the whole file (POSIX_FADV_DONTNEED):
/// for tests and benchmarks that need a cold file without root. Dirty pages
/// stay; sync the file first.
pub fn evict(file: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the fd is valid for the call; offset 0, length 0 = whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    fn file(len: usize) -> (std::fs::File, std::path::PathBuf) {
        let p = std::env::temp_dir().join(format!("mirrorftpd-cache-{}-{len}", std::process::id()));
        let mut f = std::fs::File::create(&p).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
        f.sync_all().expect("sync");
        (std::fs::File::open(&p).expect("open"), p)
    }

    #[test]
    fn pages_spanned_counts_partial_pages() {
        let p = page_size();
        assert_eq!(pages_spanned(0, 1), 1);
        assert_eq!(pages_spanned(0, p), 1);
        assert_eq!(pages_spanned(p - 1, 2), 2);
        assert_eq!(pages_spanned(1, 3 * p), 4);
    }

    #[test]
    fn evicted_file_is_missing_then_cached_after_a_read() {
        let (f, p) = file(1 << 20);
        evict(f.as_fd()).expect("fadvise");
        assert_eq!(cachestat(f.as_fd(), 0, 1 << 20), Residency::Missing);
        assert_eq!(probe(f.as_fd(), 0, 1 << 20), Residency::Missing);
        let mut buf = vec![0u8; 1 << 20];
        assert!(matches!(pread_nowait(f.as_fd(), &mut buf, 0), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        assert_eq!(pread(f.as_fd(), &mut buf, 0).expect("pread"), 1 << 20);
        assert_eq!(cachestat(f.as_fd(), 0, 1 << 20), Residency::Cached);
        assert_eq!(cachestat(f.as_fd(), 4096, 100), Residency::Cached);
        assert_eq!(probe(f.as_fd(), 0, 1 << 20), Residency::Cached);
        assert_eq!(probe(f.as_fd(), 4096, 100), Residency::Cached);
        assert_eq!(pread_nowait(f.as_fd(), &mut buf, 0).expect("nowait"), 1 << 20);
        assert!(buf.iter().all(|b| *b == 7));
        let _ = std::fs::remove_file(p);
    }
}
