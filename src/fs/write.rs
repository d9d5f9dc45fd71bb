//! Changes to the tree under the jail: files opened for upload, directories
//! made and removed, deletes, renames, mtimes, modes. The parent directory is
//! resolved with the same kernel-enforced containment as reads, and the last
//! component is a plain name opened with `O_NOFOLLOW`, so a symlink can never
//! redirect a write outside the root.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use super::jail::{FileKind, FsError, Jail, Stat};
use super::vpath::VPath;
use crate::io::fsys;

/// How an upload treats an existing file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Create {
    /// Create it, or open it as is (the caller truncates once it holds the lock).
    Open,
    /// Fail if it exists (STOU).
    Exclusive,
    /// Fail if it does not exist (REST+STOR must not create a file).
    Existing,
}

/// A file opened for writing, with the directory that holds it.
pub struct Upload {
    pub file: File,
    pub stat: Stat,
    pub dir: OwnedFd,
    /// The name the client asked for.
    pub name: CString,
    /// With atomic uploads: the hidden name written to, renamed to `name` on success.
    pub temp: Option<CString>,
}

/// A `--deny` pattern that matches every [`temp_name`]: with `--atomic-uploads` it keeps
/// uploads in progress out of reach under `--serve-dotfiles` too.
pub const TEMP_PATTERN: &str = ".*.part";

/// The hidden name an atomic upload of `name` is written under (rsync-like:
/// a dot file, so it is unreachable unless --serve-dotfiles).
pub fn temp_name(name: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(name.len() + 16);
    t.push(b'.');
    t.extend_from_slice(name);
    t.extend_from_slice(b".part");
    t
}

impl Jail {
    /// The directory holding `p` (resolved inside the root) and `p`'s last
    /// component as a C string.
    pub fn parent_of(&self, p: &VPath) -> Result<(OwnedFd, CString), FsError> {
        let name = p.file_name();
        if p.is_root() || name.is_empty() {
            return Err(FsError::Denied);
        }
        if self.deny_dotfiles() && self.is_hidden_name(name) {
            return Err(FsError::NotFound);
        }
        let name = CString::new(name).map_err(|_| FsError::BadName)?;
        let dir = self.resolve(&p.parent(), libc::O_PATH | libc::O_DIRECTORY, true)?;
        Ok((dir, name))
    }

    /// Opens `p` for an upload (never through a symlink; never truncating:
    /// the caller truncates once it holds the upload lock). With `atomic`, the
    /// bytes go to the hidden temporary name instead.
    pub fn open_upload(&self, p: &VPath, create: Create, mode: u32, atomic: bool) -> Result<Upload, FsError> {
        self.open_for_write(p, create, mode, atomic, false)
    }

    /// [`Jail::open_upload`], also readable with `read` (SFTP's READ|WRITE handles).
    pub fn open_for_write(
        &self,
        p: &VPath,
        create: Create,
        mode: u32,
        atomic: bool,
        read: bool,
    ) -> Result<Upload, FsError> {
        let (dir, name) = self.parent_of(p)?;
        let temp =
            if atomic { Some(CString::new(temp_name(name.as_bytes())).map_err(|_| FsError::BadName)?) } else { None };
        if atomic && create == Create::Exclusive && fsys::fstatat(dir.as_fd(), &name, libc::AT_SYMLINK_NOFOLLOW).is_ok()
        {
            return Err(FsError::Exists);
        }
        let access = if read { libc::O_RDWR } else { libc::O_WRONLY };
        let mut flags = access | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        if create != Create::Existing || atomic {
            flags |= libc::O_CREAT;
        }
        if create == Create::Exclusive && !atomic {
            flags |= libc::O_EXCL;
        }
        let target = temp.as_deref().unwrap_or(&name);
        let fd = match fsys::openat(dir.as_fd(), target, flags, mode) {
            Ok(fd) => fd,
            // ELOOP: the name is a symlink; EEXIST: STOU collision.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FsError::NotAFile),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(FsError::Exists),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Err(FsError::NotAFile),
            Err(e) => return Err(e.into()),
        };
        let stat = Stat::from_libc(&fsys::fstat(fd.as_fd())?);
        if stat.kind != FileKind::File {
            return Err(FsError::NotAFile);
        }
        let fl = fsys::get_status_flags(fd.as_fd())?;
        fsys::set_status_flags(fd.as_fd(), fl & !libc::O_NONBLOCK)?;
        Ok(Upload { file: File::from(fd), stat, dir, name, temp })
    }

    pub fn mkdir(&self, p: &VPath, mode: u32) -> Result<(), FsError> {
        let (dir, name) = self.parent_of(p)?;
        fsys::mkdirat(dir.as_fd(), &name, mode)
            .map_err(|e| if e.raw_os_error() == Some(libc::EEXIST) { FsError::Exists } else { e.into() })
    }

    /// Deletes a file (or a symlink itself); never a directory.
    pub fn remove_file(&self, p: &VPath) -> Result<(), FsError> {
        let (dir, name) = self.parent_of(p)?;
        let st = fsys::fstatat(dir.as_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(FsError::NotAFile);
        }
        Ok(fsys::unlinkat(dir.as_fd(), &name, 0)?)
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, p: &VPath) -> Result<(), FsError> {
        let (dir, name) = self.parent_of(p)?;
        fsys::unlinkat(dir.as_fd(), &name, libc::AT_REMOVEDIR).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => FsError::NotEmpty,
            _ => e.into(),
        })
    }

    /// Renames inside the root (replacing an existing file, as rename(2)
    /// does). Across file systems: `FsError::CrossDevice`.
    pub fn rename(&self, from: &VPath, to: &VPath) -> Result<(), FsError> {
        let (fdir, fname) = self.parent_of(from)?;
        let (tdir, tname) = self.parent_of(to)?;
        fsys::renameat2(fdir.as_fd(), &fname, tdir.as_fd(), &tname, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::EXDEV) => FsError::CrossDevice,
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => FsError::NotEmpty,
            Some(libc::EINVAL) => FsError::Denied,
            _ => e.into(),
        })
    }

    /// Renames inside the root, failing with `FsError::Exists` if `to` exists (SFTP v3's
    /// RENAME). Where the file system lacks `RENAME_NOREPLACE`, a check before the rename.
    pub fn rename_noreplace(&self, from: &VPath, to: &VPath) -> Result<(), FsError> {
        let (fdir, fname) = self.parent_of(from)?;
        let (tdir, tname) = self.parent_of(to)?;
        let r = fsys::renameat2(fdir.as_fd(), &fname, tdir.as_fd(), &tname, libc::RENAME_NOREPLACE);
        match r.as_ref().map_err(std::io::Error::raw_os_error) {
            Err(Some(libc::EEXIST)) => Err(FsError::Exists),
            Err(Some(libc::EINVAL)) if fsys::fstatat(tdir.as_fd(), &tname, libc::AT_SYMLINK_NOFOLLOW).is_ok() => {
                Err(FsError::Exists)
            }
            Err(Some(libc::EINVAL)) => self.rename(from, to),
            Err(Some(libc::EXDEV)) => Err(FsError::CrossDevice),
            Err(Some(libc::ENOTEMPTY)) => Err(FsError::NotEmpty),
            _ => Ok(r?),
        }
    }

    /// Opens `p` itself (file or directory, following symlinks inside the
    /// root) to change its metadata.
    fn open_meta(&self, p: &VPath) -> Result<OwnedFd, FsError> {
        let fd = self.resolve(p, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, true)?;
        let st = Stat::from_libc(&fsys::fstat(fd.as_fd())?);
        if !matches!(st.kind, FileKind::File | FileKind::Dir) {
            return Err(FsError::NotAFile);
        }
        Ok(fd)
    }

    pub fn set_mtime(&self, p: &VPath, secs: i64) -> Result<(), FsError> {
        let fd = self.open_meta(p)?;
        Ok(fsys::set_mtime(fd.as_fd(), secs)?)
    }

    /// Sets the access and modification times (seconds).
    pub fn set_times(&self, p: &VPath, atime: i64, mtime: i64) -> Result<(), FsError> {
        let fd = self.open_meta(p)?;
        Ok(fsys::set_times(fd.as_fd(), atime, mtime)?)
    }

    /// Sets permission bits (no setuid/setgid/sticky: those stay off).
    pub fn chmod(&self, p: &VPath, mode: u32) -> Result<(), FsError> {
        let fd = self.open_meta(p)?;
        Ok(fsys::fchmod(fd.as_fd(), mode & 0o777)?)
    }
}

impl Upload {
    /// The file under its real name, for reading (`None` if there is none).
    pub fn open_published(&self) -> std::io::Result<Option<File>> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        match fsys::openat(self.dir.as_fd(), &self.name, flags, 0) {
            Ok(fd) => {
                let st = Stat::from_libc(&fsys::fstat(fd.as_fd())?);
                Ok((st.kind == FileKind::File).then(|| File::from(fd)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the (locked) file's content with the first `limit` bytes of the published
    /// file and returns how many were copied; `None` (the file untouched) when nothing is
    /// published under the name. Atomic appends and resumes start from this copy.
    pub fn seed_from_published(&self, limit: u64) -> std::io::Result<Option<u64>> {
        self.seed_from_published_upto(limit, u64::MAX)
    }

    /// As [`Upload::seed_from_published`], but a published file longer than `max` (its size,
    /// holes included) is not copied: `FileTooLarge`, the file untouched.
    pub fn seed_from_published_upto(&self, limit: u64, max: u64) -> std::io::Result<Option<u64>> {
        let Some(published) = self.open_published()? else {
            return Ok(None);
        };
        if published.metadata()?.len().min(limit) > max {
            return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
        }
        self.file.set_len(0)?;
        let mut src = std::io::Read::take(published, limit);
        let mut dst = &self.file;
        Ok(Some(std::io::copy(&mut src, &mut dst)?))
    }

    /// Makes an atomic upload visible under its real name.
    pub fn publish(&self) -> std::io::Result<()> {
        match &self.temp {
            Some(t) => fsys::renameat2(self.dir.as_fd(), t, self.dir.as_fd(), &self.name, 0),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_pattern_matches_every_temp_name() {
        let deny = crate::auth::rules::Deny::new(&[TEMP_PATTERN.to_string()]).expect("valid");
        for name in [&b"a"[..], b"debian.iso", b".dot", b"x.part", b"caf\xe9"] {
            assert!(deny.hides_name(&temp_name(name)), "{}", String::from_utf8_lossy(name));
        }
        assert!(!deny.hides_name(b"debian.iso.part") && !deny.hides_name(b"a"));
    }
}
