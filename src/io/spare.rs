//! A reserve file descriptor for the accept path. When the process runs out of descriptors
//! (EMFILE/ENFILE), `accept` fails and the waiting clients would sit in the backlog with no
//! reply. The worker then lets go of its reserve, accepts each waiting connection with the
//! freed slot, tells it `421` and closes it, and takes the reserve back (the classic trick of
//! libev's and nginx's users).

use std::fs::File;
use std::io;

/// One spare descriptor, and the `/dev/null` it is duplicated from: after
/// `--chroot` no path reaches `/dev/null`, so the spare is taken back with
/// `dup` (F_DUPFD_CLOEXEC), never by name.
pub struct SpareFd {
    template: Option<File>,
    spare: Option<File>,
}

impl SpareFd {
    /// Takes a spare descriptor (opened before any chroot); holds none when
    /// even that fails (a later `restore` retries).
    pub fn new() -> SpareFd {
        let template = File::open("/dev/null").ok();
        let spare = template.as_ref().and_then(|t| t.try_clone().ok());
        SpareFd { template, spare }
    }

    /// Closes the spare so the next `accept` can succeed; false when none was held.
    pub fn release(&mut self) -> bool {
        self.spare.take().is_some()
    }

    /// Takes the spare back (a no-op when it is held). May fail while the table is still full:
    /// it is retried at the next `release`/`restore`.
    pub fn restore(&mut self) {
        if self.spare.is_none() {
            self.spare = self.template.as_ref().and_then(|t| t.try_clone().ok());
        }
    }

    /// Whether the spare is held now.
    pub fn is_held(&self) -> bool {
        self.spare.is_some()
    }
}

impl Default for SpareFd {
    fn default() -> SpareFd {
        SpareFd::new()
    }
}

/// Whether `e` says the process or the system is out of file descriptors.
pub fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_and_restore() {
        let mut s = SpareFd::new();
        assert!(s.is_held());
        assert!(s.release());
        assert!(!s.is_held());
        assert!(!s.release(), "nothing left to release");
        s.restore();
        assert!(s.is_held());
    }

    #[test]
    fn classifies_fd_exhaustion() {
        assert!(out_of_fds(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_fds(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_fds(&io::Error::from_raw_os_error(libc::ENOBUFS)));
        assert!(!out_of_fds(&io::Error::other("x")));
    }
}
