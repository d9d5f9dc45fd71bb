//! What a client may see of a symlink: its target only when following it stays inside the
//! root, exactly as an access through it would (LIST, NLST -l and STAT lines; SFTP READLINK).
//! A link that leaves the root (absolute target, `..` above the root, a path through a link
//! that leaves), dangles or loops shows no target, so the layout outside the jail never shows.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd};

use super::jail::{Jail, MAX_LINK};
use super::vpath::VPath;
use crate::io::fsys;

impl Jail {
    /// The target of the symlink `name` in the directory `dir`, if a client may see it (see the
    /// module docs); `None` also when `name` is not a symlink or `dir` is not reachable.
    pub fn link_target_visible(&self, dir: &VPath, name: &[u8]) -> Option<Vec<u8>> {
        let fd = self.resolve(dir, libc::O_PATH | libc::O_DIRECTORY, true).ok()?;
        self.link_target_in(fd.as_fd(), dir, &CString::new(name).ok()?)
    }

    /// [`Jail::link_target_visible`] for the directory `dir` already open on `dir_fd` (a
    /// listing's). The text checked is the text shown: it is read once, from the link's inode.
    pub fn link_target_in(&self, dir_fd: BorrowedFd<'_>, dir: &VPath, name: &CStr) -> Option<Vec<u8>> {
        let link = fsys::openat(dir_fd, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0).ok()?;
        if fsys::fstat(link.as_fd()).ok()?.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return None;
        }
        let mut buf = [0u8; MAX_LINK];
        let n = fsys::readlinkat(link.as_fd(), c"", &mut buf).ok()?;
        let target = buf.get(..n).filter(|_| n < MAX_LINK)?;
        self.resolves_inside(dir, target).then(|| target.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testdir::TempDir;

    fn vp(s: &[u8]) -> VPath {
        VPath::root().join(s).expect("vpath")
    }

    #[test]
    fn only_targets_that_stay_inside_are_visible() {
        let t = TempDir::new("links");
        t.dir(b"root/sub/inner");
        t.dir(b"outside");
        t.file(b"root/f", b"f");
        t.file(b"outside/secret", b"s");
        let cases: [(&[u8], &[u8], bool); 12] = [
            (b"root/good", b"f", true),
            (b"root/dir", b"sub", true),
            (b"root/in", b"sub/inner", true),
            (b"root/sub/back", b"../f", true),
            // Physically sub/inner/../../f, which is inside (the lexical /in/../../f is not).
            (b"root/sub/inner/x", b"../../f", true),
            (b"root/abs", b"/etc/passwd", false),
            (b"root/up", b"../outside/secret", false),
            (b"root/out", b"../outside", false),
            (b"root/via", b"out/secret", false),
            (b"root/sub/deep", b"../../outside", false),
            (b"root/missing", b"nothere/../../outside/secret", false),
            (b"root/dangling", b"nothere", false),
        ];
        for (name, target, _) in cases {
            t.symlink(target, name);
        }
        for walk in [false, true] {
            let jail = Jail::open_mode(&t.at(b"root"), true, walk).expect("jail");
            for (name, target, visible) in cases {
                let p = vp(&name[4..]);
                let got = jail.link_target_visible(&p.parent(), p.file_name());
                let want = visible.then(|| target.to_vec());
                assert_eq!(got, want, "{} walk={walk}", String::from_utf8_lossy(name));
            }
            // Through a directory symlink, `..` is taken from where the link really is.
            assert_eq!(jail.link_target_visible(&vp(b"/in"), b"x"), Some(b"../../f".to_vec()));
            assert_eq!(jail.link_target_visible(&vp(b"/dir"), b"back"), Some(b"../f".to_vec()));
            // Not a link, not there, or a directory the client cannot reach.
            assert_eq!(jail.link_target_visible(&VPath::root(), b"f"), None);
            assert_eq!(jail.link_target_visible(&VPath::root(), b"nope"), None);
            assert_eq!(jail.link_target_visible(&vp(b"/out"), b"secret"), None);
        }
    }
}
