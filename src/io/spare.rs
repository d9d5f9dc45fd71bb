//! A reserve file descriptor for the accept path. When the process runs out of descriptors
//! (EMFILE/ENFILE), `accept` fails and the waiting clients would sit in the backlog with no
//! reply. The worker then lets go of its reserve, accepts each waiting connection with the
//! freed slot, tells it `421` and closes it, and takes the reserve back (the classic trick of
//! libev's and nginx's users).

use std::fs::File;
use std::io;

/// One spare descriptor (an `O_CLOEXEC` open of `/dev/null`: std opens with `O_CLOEXEC`).
pub struct SpareFd(Option<File>);

impl SpareFd {
    /// Takes a spare descriptor; holds none when even that fails (a later `restore` retries).
    pub fn new() -> SpareFd {
        SpareFd(File::open("/dev/null").ok())
    }

    /// Closes the spare so the next `accept` can succeed; false when none was held.
    pub fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes the spare back (a no-op when it is held). May fail while the table is still full:
    /// it is retried at the next `release`/`restore`.
    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }

    /// Whether the spare is held now.
    pub fn is_held(&self) -> bool {
        self.0.is_some()
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
