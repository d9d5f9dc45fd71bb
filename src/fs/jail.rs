//! Kernel-enforced containment: every client path is resolved relative to the root's fd.
//!
//! The normal mode is `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: symlinks that stay
//! inside the root are followed, anything that would leave it (absolute targets, `..` above
//! the root, magic links) fails with `EXDEV`. Where `openat2` is missing (or the environment
//! sets `MIRRORFTPD_NO_OPENAT2=1`) an equivalent fd-relative walk does the same by hand: each
//! component is opened `O_PATH|O_NOFOLLOW` under the previous one, symlinks are read and
//! spliced into the remaining components, absolute targets and `..` above the root are refused.
//! The process's working directory is never involved.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::fs::vpath::{PathError, VPath};
use crate::io::fsys;

/// Symlinks followed in one resolution before giving up (the kernel's own limit).
const MAX_SYMLINKS: u32 = 40;
/// Times an `openat2` that failed with `EAGAIN` (a concurrent rename) is retried.
const OPENAT2_RETRIES: u32 = 8;
/// Longest symlink target read by the walk (`PATH_MAX`).
pub(super) const MAX_LINK: usize = 4096;
/// Environment variable that forces the fd-relative walk instead of `openat2`.
pub const NO_OPENAT2_ENV: &str = "MIRRORFTPD_NO_OPENAT2";

/// What a directory entry is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The facts of `struct stat` the server uses.
#[derive(Clone, Debug)]
pub struct Stat {
    pub kind: FileKind,
    pub size: u64,
    pub mtime: i64,
    /// Full `st_mode`: type bits and permission bits.
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    /// Converts the C struct (field widths differ between architectures, hence the casts).
    #[allow(clippy::unnecessary_cast)]
    pub fn from_libc(st: &libc::stat) -> Stat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        };
        Stat {
            kind,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime as i64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// Why a path could not be used; `Display` is a short text for a 550 reply.
#[derive(Debug)]
pub enum FsError {
    NotFound,
    Denied,
    NotADirectory,
    NotAFile,
    /// The path would leave the root. Shown to clients exactly like `NotFound`.
    Escape,
    BadName,
    /// The name is taken (MKD, STOU).
    Exists,
    /// RMD of a directory that still has entries.
    NotEmpty,
    /// A rename across file systems.
    CrossDevice,
    /// ENOSPC: the file system is full.
    NoSpace,
    /// EDQUOT/EFBIG: a quota or file-size limit.
    Quota,
    Io(io::Error),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsError::NotFound | FsError::Escape => "No such file or directory",
            FsError::Denied => "Permission denied",
            FsError::NotADirectory => "Not a directory",
            FsError::NotAFile => "Not a plain file",
            FsError::BadName => "File name not allowed",
            FsError::Exists => "File exists",
            FsError::NotEmpty => "Directory not empty",
            FsError::CrossDevice => "Cannot rename across file systems",
            FsError::NoSpace => "No space left on device",
            FsError::Quota => "Storage quota or file size limit exceeded",
            FsError::Io(_) => "Local file system error",
        })
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ENOENT) => FsError::NotFound,
            Some(libc::EACCES | libc::EPERM) => FsError::Denied,
            Some(libc::ENOTDIR) => FsError::NotADirectory,
            Some(libc::EXDEV | libc::ELOOP) => FsError::Escape,
            Some(libc::ENAMETOOLONG) => FsError::BadName,
            Some(libc::ENOSPC) => FsError::NoSpace,
            Some(libc::EDQUOT | libc::EFBIG) => FsError::Quota,
            Some(libc::EROFS) => FsError::Denied,
            _ => FsError::Io(e),
        }
    }
}

impl From<PathError> for FsError {
    fn from(_: PathError) -> FsError {
        FsError::BadName
    }
}

/// How paths are resolved under the root.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Resolve {
    Openat2,
    Walk,
}

/// The served tree: an `O_PATH` fd of the root plus the policy for names under it.
#[derive(Debug)]
pub struct Jail {
    root: OwnedFd,
    deny_dotfiles: bool,
    mode: Resolve,
}

/// Whether the value of `MIRRORFTPD_NO_OPENAT2` asks for the fallback walk.
fn walk_forced(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| v == "1")
}

fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

impl Jail {
    /// Opens `root` (`O_PATH|O_DIRECTORY`) and picks `openat2` or the walk, once.
    pub fn open(root: &Path, deny_dotfiles: bool) -> io::Result<Jail> {
        let force_walk = walk_forced(std::env::var_os(NO_OPENAT2_ENV).as_deref());
        Jail::open_mode(root, deny_dotfiles, force_walk)
    }

    pub(super) fn open_mode(root: &Path, deny_dotfiles: bool, force_walk: bool) -> io::Result<Jail> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(root)?;
        let root = OwnedFd::from(file);
        let mode = if force_walk {
            Resolve::Walk
        } else {
            match fsys::openat2(root.as_fd(), c".", libc::O_PATH | libc::O_CLOEXEC, 0, RESOLVE) {
                // ENOSYS: old kernel; EPERM: a seccomp filter that does not know the call.
                Err(e) if is_errno(&e, libc::ENOSYS) || is_errno(&e, libc::EPERM) => Resolve::Walk,
                Err(e) => return Err(e),
                Ok(_) => Resolve::Openat2,
            }
        };
        Ok(Jail { root, deny_dotfiles, mode })
    }

    /// A jail that always uses the fd-relative walk (tests of code built on the jail).
    #[cfg(test)]
    pub(crate) fn open_walk_for_tests(root: &Path) -> io::Result<Jail> {
        Jail::open_mode(root, false, true)
    }

    /// A second handle on the same root (the fd is duplicated).
    pub fn try_clone(&self) -> io::Result<Jail> {
        Ok(Jail { root: self.root.try_clone()?, deny_dotfiles: self.deny_dotfiles, mode: self.mode })
    }

    /// Whether resolution uses `openat2` (false: the fd-relative walk).
    pub fn uses_openat2(&self) -> bool {
        self.mode == Resolve::Openat2
    }

    /// The root directory's `O_PATH` fd.
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens a regular file for reading; FIFOs and devices are refused without blocking.
    pub fn open_file(&self, p: &VPath) -> Result<(std::fs::File, Stat), FsError> {
        let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK;
        let fd = match self.resolve(p, flags, true) {
            // ENXIO/ENODEV: a socket, or a device with no driver behind it.
            Err(FsError::Io(e)) if is_errno(&e, libc::ENXIO) || is_errno(&e, libc::ENODEV) => {
                return Err(FsError::NotAFile);
            }
            r => r?,
        };
        let st = Stat::from_libc(&fsys::fstat(fd.as_fd())?);
        if st.kind != FileKind::File {
            return Err(FsError::NotAFile);
        }
        let fl = fsys::get_status_flags(fd.as_fd())?;
        fsys::set_status_flags(fd.as_fd(), fl & !libc::O_NONBLOCK)?;
        Ok((std::fs::File::from(fd), st))
    }

    /// Opens a directory for reading its entries.
    pub fn open_dir(&self, p: &VPath) -> Result<OwnedFd, FsError> {
        self.resolve(p, libc::O_RDONLY | libc::O_DIRECTORY, true)
    }

    /// A directory the server may enter (CWD): `p` must be a directory that the server's own
    /// credentials can search. Looking up `.` under it needs search (x) permission on it,
    /// exactly as chdir(2) does; read permission (what a listing needs) does not matter.
    pub fn enter_dir(&self, p: &VPath) -> Result<Stat, FsError> {
        let dir = self.resolve(p, libc::O_PATH | libc::O_DIRECTORY, true)?;
        let here = fsys::openat(dir.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
        Ok(Stat::from_libc(&fsys::fstat(here.as_fd())?))
    }

    /// The facts of what `p` names, following symlinks (inside the root only).
    pub fn stat(&self, p: &VPath) -> Result<Stat, FsError> {
        let fd = self.resolve(p, libc::O_PATH, true)?;
        Ok(Stat::from_libc(&fsys::fstat(fd.as_fd())?))
    }

    /// Like [`Jail::stat`] but a symlink as the last component is described itself.
    pub fn lstat(&self, p: &VPath) -> Result<Stat, FsError> {
        let fd = self.resolve(p, libc::O_PATH, false)?;
        Ok(Stat::from_libc(&fsys::fstat(fd.as_fd())?))
    }

    /// Whether `p` resolves to a directory.
    pub fn is_dir(&self, p: &VPath) -> bool {
        self.stat(p).is_ok_and(|s| s.kind == FileKind::Dir)
    }

    /// Whether `name` is a dot file (hidden from listings; unreachable with `deny_dotfiles`).
    pub fn is_hidden_name(&self, name: &[u8]) -> bool {
        name.first() == Some(&b'.')
    }

    /// Whether dot files are unreachable.
    pub fn deny_dotfiles(&self) -> bool {
        self.deny_dotfiles
    }

    /// Opens `p` with `flags` (plus `O_CLOEXEC`), never leaving the root. `deny_dotfiles` is
    /// checked on the client's path; symlink targets are the operator's and are not checked.
    pub(crate) fn resolve(&self, p: &VPath, flags: i32, follow_last: bool) -> Result<OwnedFd, FsError> {
        if self.deny_dotfiles && p.components().any(|c| self.is_hidden_name(c)) {
            return Err(FsError::NotFound);
        }
        if self.mode == Resolve::Openat2 {
            match self.resolve_openat2(p, flags, follow_last) {
                Err(e) if is_errno(&e, libc::ENOSYS) => {}
                r => return r.map_err(FsError::from),
            }
        }
        self.walk(p, flags, follow_last)
    }

    /// Whether `dir/rel` (`rel` a relative path that may hold `..`, like a symlink's target)
    /// resolves inside the root. The kernel (or the walk) resolves `dir`'s own symlinks first,
    /// so `..` in `rel` is taken from where `dir` really is. No dot-file check: `rel` is the
    /// operator's, not a client's.
    pub(super) fn resolves_inside(&self, dir: &VPath, rel: &[u8]) -> bool {
        if rel.is_empty() || rel[0] == b'/' {
            return false;
        }
        if self.mode == Resolve::Openat2 {
            let mut path = dir.relative().to_vec();
            path.push(b'/');
            path.extend_from_slice(rel);
            let Ok(path) = CString::new(path) else { return false };
            match fsys::openat2(self.root.as_fd(), &path, libc::O_PATH | libc::O_CLOEXEC, 0, RESOLVE) {
                Err(e) if is_errno(&e, libc::ENOSYS) => {}
                r => return r.is_ok(),
            }
        }
        let todo = dir.components().chain(rel.split(|&b| b == b'/')).rev().map(<[u8]>::to_vec).collect();
        self.walk_parts(todo, libc::O_PATH, true).is_ok()
    }

    fn resolve_openat2(&self, p: &VPath, flags: i32, follow_last: bool) -> io::Result<OwnedFd> {
        let path = CString::new(p.relative()).map_err(|_| errno(libc::ENAMETOOLONG))?;
        let nofollow = if follow_last { 0 } else { libc::O_NOFOLLOW };
        let flags = flags | nofollow | libc::O_CLOEXEC;
        let mut tries = 0;
        loop {
            match fsys::openat2(self.root.as_fd(), &path, flags, 0, RESOLVE) {
                Err(e) if is_errno(&e, libc::EAGAIN) && tries < OPENAT2_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// The fallback: one component at a time, each opened `O_NOFOLLOW` under a directory fd
    /// we hold, so a concurrent rename can never take the walk outside the root.
    fn walk(&self, p: &VPath, flags: i32, follow_last: bool) -> Result<OwnedFd, FsError> {
        self.walk_parts(p.components().rev().map(<[u8]>::to_vec).collect(), flags, follow_last)
    }

    /// The walk over raw components (`todo`: next one last; `.` and `..` allowed).
    fn walk_parts(&self, mut todo: Vec<Vec<u8>>, flags: i32, follow_last: bool) -> Result<OwnedFd, FsError> {
        // Directories entered so far below the root; their fds pin the physical path.
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0u32;
        let mut target = vec![0u8; MAX_LINK];
        loop {
            let cur = stack.last().map_or(self.root.as_fd(), |d| d.as_fd());
            let Some(comp) = todo.pop() else {
                // Ended on a directory already entered (the root, or after `..`).
                return Ok(fsys::openat(cur, c".", flags | libc::O_CLOEXEC, 0)?);
            };
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.pop().is_none() {
                        return Err(FsError::Escape);
                    }
                    continue;
                }
                _ => {}
            }
            let name = CString::new(comp).map_err(|_| FsError::BadName)?;
            let last = todo.is_empty();
            let mut first_err = None;
            if last && flags & libc::O_PATH == 0 {
                match fsys::openat(cur, &name, flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0) {
                    Ok(fd) => return Ok(fd),
                    // Either a symlink (to follow below) or a real type mismatch.
                    Err(e) if is_errno(&e, libc::ELOOP) || is_errno(&e, libc::ENOTDIR) => {
                        first_err = Some(e);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let fd = fsys::openat(cur, &name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)?;
            let st = fsys::fstat(fd.as_fd())?;
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK && (!last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(FsError::Escape);
                }
                let n = fsys::readlinkat(fd.as_fd(), EMPTY, &mut target)?;
                let t = target.get(..n).ok_or(FsError::BadName)?;
                if n >= MAX_LINK {
                    return Err(FsError::BadName);
                }
                match t.first() {
                    None => return Err(FsError::NotFound),
                    Some(b'/') => return Err(FsError::Escape),
                    Some(_) => {}
                }
                todo.extend(t.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                continue;
            }
            if let Some(e) = first_err {
                return Err(e.into());
            }
            if last {
                return Ok(fd);
            }
            if kind != libc::S_IFDIR {
                return Err(FsError::NotADirectory);
            }
            stack.push(fd);
        }
    }
}

const RESOLVE: u64 = fsys::RESOLVE_BENEATH | fsys::RESOLVE_NO_MAGICLINKS;
const EMPTY: &CStr = c"";

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testdir::TempDir;
    use std::io::Read;

    /// A tree with a root to serve and an `outside` sibling that must stay unreachable.
    fn fixture() -> TempDir {
        let t = TempDir::new("jail");
        t.dir(b"root/pub/dir");
        t.dir(b"root/releases/1.0");
        t.dir(b"root/.secret");
        t.dir(b"outside");
        t.file(b"outside/secret", b"outside");
        t.file(b"root/pub/file.txt", b"hello");
        t.file(b"root/releases/1.0/README", b"1.0");
        t.file(b"root/caf\xe9.txt", b"latin1");
        t.file(b"root/two\nlines", b"newline");
        t.file(b"root/.dotfile", b"dot");
        t.file(b"root/.secret/key", b"key");
        t.symlink(b"releases/1.0", b"root/current");
        t.symlink(b"../releases", b"root/pub/up");
        t.symlink(b"../../", b"root/esc");
        t.symlink(b"/etc", b"root/abs");
        t.symlink(b"/etc/passwd", b"root/passwd");
        t.symlink(b"/proc/self/root", b"root/procroot");
        t.symlink(b"../../outside/secret", b"root/pub/sib");
        t.symlink(b"../outside", b"root/out");
        t.symlink(b"loop2", b"root/loop1");
        t.symlink(b"loop1", b"root/loop2");
        t.symlink(b"nothing-here", b"root/dangling");
        t.symlink(b"file.txt", b"root/pub/alias");
        std::os::unix::net::UnixListener::bind(t.at(b"root/sock")).expect("bind socket");
        let _ = std::process::Command::new("mkfifo").arg(t.at(b"root/fifo")).status();
        t
    }

    fn vp(s: &[u8]) -> VPath {
        VPath::root().join(s).expect("vpath")
    }

    /// Runs `check` against the fixture with openat2 and with the fallback walk.
    fn both(deny_dotfiles: bool, check: impl Fn(&Jail)) {
        let t = fixture();
        for walk in [false, true] {
            let jail = Jail::open_mode(&t.at(b"root"), deny_dotfiles, walk).expect("jail");
            assert_eq!(jail.uses_openat2(), !walk);
            check(&jail);
        }
    }

    fn read(jail: &Jail, p: &[u8]) -> Vec<u8> {
        let (mut f, st) = jail.open_file(&vp(p)).expect("open_file");
        let mut v = Vec::new();
        f.read_to_end(&mut v).expect("read");
        assert_eq!(st.size, v.len() as u64);
        v
    }

    fn err(r: Result<impl fmt::Debug, FsError>) -> String {
        format!("{:?}", r.expect_err("should fail"))
    }

    #[test]
    fn plain_files_and_dirs() {
        both(false, |j| {
            assert_eq!(read(j, b"/pub/file.txt"), b"hello");
            let st = j.stat(&vp(b"/pub")).expect("stat");
            assert_eq!(st.kind, FileKind::Dir);
            assert!(j.is_dir(&VPath::root()));
            assert!(j.is_dir(&vp(b"/pub/dir")));
            assert!(!j.is_dir(&vp(b"/pub/file.txt")));
            assert!(j.open_dir(&VPath::root()).is_ok());
            assert!(j.open_dir(&vp(b"/pub")).is_ok());
        });
    }

    #[test]
    fn inside_symlinks_are_followed() {
        both(false, |j| {
            assert_eq!(read(j, b"/current/README"), b"1.0");
            assert_eq!(read(j, b"/pub/alias"), b"hello");
            assert_eq!(read(j, b"/pub/up/1.0/README"), b"1.0");
            assert_eq!(j.stat(&vp(b"/current")).expect("stat").kind, FileKind::Dir);
            assert_eq!(j.lstat(&vp(b"/current")).expect("lstat").kind, FileKind::Symlink);
            assert_eq!(j.lstat(&vp(b"/current/README")).expect("lstat").kind, FileKind::File);
            assert!(j.open_dir(&vp(b"/current")).is_ok());
        });
    }

    #[test]
    fn escapes_are_refused() {
        both(false, |j| {
            for p in [
                &b"/esc"[..],
                b"/esc/etc/passwd",
                b"/abs",
                b"/abs/passwd",
                b"/passwd",
                b"/procroot",
                b"/procroot/etc/passwd",
                b"/pub/sib",
                b"/out/secret",
            ] {
                assert_eq!(err(j.stat(&vp(p))), "Escape", "{}", String::from_utf8_lossy(p));
                assert_eq!(err(j.open_file(&vp(p))), "Escape");
                assert!(!j.is_dir(&vp(p)));
            }
            assert_eq!(err(j.open_dir(&vp(b"/abs"))), "Escape");
            assert_eq!(err(j.stat(&vp(b"/loop1"))), "Escape");
            // The link itself is visible; only following it is refused.
            assert_eq!(j.lstat(&vp(b"/abs")).expect("lstat").kind, FileKind::Symlink);
            // `..` in the client's path is clamped lexically before the jail sees it.
            assert_eq!(err(j.stat(&vp(b"/../../outside/secret"))), "NotFound");
            assert_eq!(err(j.stat(&vp(b"/../../../etc/passwd"))), "NotFound");
            assert_eq!(FsError::Escape.to_string(), FsError::NotFound.to_string());
        });
    }

    #[test]
    fn odd_names_work() {
        both(false, |j| {
            assert_eq!(read(j, b"/caf\xe9.txt"), b"latin1");
            assert_eq!(read(j, b"/two\nlines"), b"newline");
        });
    }

    #[test]
    fn wrong_kinds_and_missing() {
        both(false, |j| {
            assert_eq!(err(j.open_file(&vp(b"/nope"))), "NotFound");
            assert_eq!(err(j.stat(&vp(b"/dangling"))), "NotFound");
            assert_eq!(err(j.open_file(&vp(b"/pub"))), "NotAFile");
            assert_eq!(err(j.open_file(&vp(b"/sock"))), "NotAFile");
            assert_eq!(err(j.open_dir(&vp(b"/pub/file.txt"))), "NotADirectory");
            assert_eq!(err(j.open_dir(&vp(b"/pub/alias"))), "NotADirectory");
            assert_eq!(err(j.stat(&vp(b"/pub/file.txt/x"))), "NotADirectory");
            assert_eq!(j.stat(&vp(b"/sock")).expect("stat").kind, FileKind::Other);
        });
    }

    #[test]
    fn enter_dir_needs_a_directory_inside_the_root() {
        both(false, |j| {
            assert_eq!(j.enter_dir(&VPath::root()).expect("enter /").kind, FileKind::Dir);
            assert_eq!(j.enter_dir(&vp(b"/pub/dir")).expect("enter").kind, FileKind::Dir);
            assert_eq!(j.enter_dir(&vp(b"/current")).expect("through an inside link").kind, FileKind::Dir);
            assert_eq!(err(j.enter_dir(&vp(b"/pub/file.txt"))), "NotADirectory");
            assert_eq!(err(j.enter_dir(&vp(b"/pub/alias"))), "NotADirectory");
            assert_eq!(err(j.enter_dir(&vp(b"/sock"))), "NotADirectory");
            assert_eq!(err(j.enter_dir(&vp(b"/nope"))), "NotFound");
            assert_eq!(err(j.enter_dir(&vp(b"/out"))), "Escape");
            assert_eq!(err(j.enter_dir(&vp(b"/abs"))), "Escape");
        });
    }

    #[test]
    fn fifo_never_blocks_and_files_come_back_blocking() {
        both(false, |j| {
            if j.lstat(&vp(b"/fifo")).is_ok() {
                assert_eq!(err(j.open_file(&vp(b"/fifo"))), "NotAFile");
            }
            let (f, _) = j.open_file(&vp(b"/pub/file.txt")).expect("open");
            let fl = fsys::get_status_flags(f.as_fd()).expect("getfl");
            assert_eq!(fl & libc::O_NONBLOCK, 0);
        });
    }

    #[test]
    fn dot_files_reachable_unless_denied() {
        both(false, |j| {
            assert!(!j.deny_dotfiles());
            assert_eq!(read(j, b"/.dotfile"), b"dot");
            assert_eq!(read(j, b"/.secret/key"), b"key");
        });
        both(true, |j| {
            assert!(j.deny_dotfiles());
            assert!(j.is_hidden_name(b".x"));
            assert!(!j.is_hidden_name(b"x."));
            assert_eq!(err(j.open_file(&vp(b"/.dotfile"))), "NotFound");
            assert_eq!(err(j.stat(&vp(b"/.secret"))), "NotFound");
            assert_eq!(err(j.open_file(&vp(b"/.secret/key"))), "NotFound");
            assert_eq!(read(j, b"/pub/file.txt"), b"hello");
        });
    }

    #[test]
    fn errno_mapping_and_env_switch() {
        let m = |n| format!("{:?}", FsError::from(errno(n)));
        assert_eq!(m(libc::ENOENT), "NotFound");
        assert_eq!(m(libc::EACCES), "Denied");
        assert_eq!(m(libc::EPERM), "Denied");
        assert_eq!(m(libc::ENOTDIR), "NotADirectory");
        assert_eq!(m(libc::EXDEV), "Escape");
        assert_eq!(m(libc::ELOOP), "Escape");
        assert_eq!(m(libc::ENAMETOOLONG), "BadName");
        assert!(m(libc::EIO).starts_with("Io("));
        assert_eq!(FsError::NotAFile.to_string(), "Not a plain file");
        assert!(walk_forced(Some(OsStr::new("1"))));
        assert!(!walk_forced(Some(OsStr::new("0"))));
        assert!(!walk_forced(None));
        assert!(Jail::open(Path::new("/nonexistent-mirrorftpd-root"), false).is_err());
    }

    #[test]
    fn clone_shares_the_root() {
        let t = fixture();
        let j = Jail::open(&t.at(b"root"), true).expect("jail");
        let c = j.try_clone().expect("clone");
        assert!(c.deny_dotfiles());
        assert_eq!(read(&c, b"/pub/file.txt"), b"hello");
    }
}
