//! Operator text shown to clients: the --banner-file greeting and the
//! per-directory `.message` files of the mirror convention, shown in the
//! reply to CWD (once per directory per session). Both are cut to
//! `MAX_MESSAGE_FILE` bytes and `MAX_MESSAGE_LINES` lines, and control
//! characters become '?', so a message synced from upstream cannot inject
//! reply lines or terminal escapes.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::path::Path;

use crate::disk::Ticket;
use crate::io::cache;
use crate::limits;
use crate::proto::reply::{self, Multi};

/// The lines of a message text, cleaned and bounded.
pub fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    let text = &text[..text.len().min(limits::MAX_MESSAGE_FILE)];
    let mut out: Vec<Vec<u8>> = Vec::new();
    for raw in text.split(|&b| b == b'\n').take(limits::MAX_MESSAGE_LINES) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        out.push(raw.iter().map(|&b| if (b < 0x20 && b != b'\t') || b == 0x7f { b'?' } else { b }).collect());
    }
    // A file ending in a newline has no empty last line.
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// The 220 greeting: the default one-liner, or the banner's lines as a
/// multi-line 220.
pub fn greeting(banner: Option<&[Vec<u8>]>) -> Vec<u8> {
    let mut out = Vec::new();
    match banner {
        Some(lines) if !lines.is_empty() => {
            let mut m = Multi::begin(&mut out, reply::SERVICE_READY, &lines[0]);
            for l in &lines[1..] {
                m.line(l);
            }
            m.end(b"mirrorftpd ready.");
        }
        _ => reply::push(&mut out, reply::SERVICE_READY, b"mirrorftpd ready."),
    }
    out
}

/// Reads --banner-file into a ready greeting (at start and on SIGHUP).
pub fn load_banner(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(limits::MAX_MESSAGE_FILE as u64).read_to_end(&mut buf)?;
    Ok(greeting(Some(&lines(&buf))))
}

/// What CWD has to show of a directory's `.message`.
pub enum Message {
    None,
    Lines(Vec<Vec<u8>>),
    /// Not in the page cache: a disk helper reads it in, the reply waits.
    Pending(MessageWait),
}

/// A CWD reply waiting for a disk helper to read its `.message` in. While
/// a session holds one it reads no command; dropping it (the session ended)
/// cancels the helper's job.
pub struct MessageWait {
    pub file: File,
    pub ticket: Ticket,
}

/// The `.message` file of the directory `dir` (an open directory fd), if it
/// is a regular file. Never blocks on a FIFO or device and never follows a
/// symlink.
pub fn open_dir_message(dir: impl AsFd) -> Option<File> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let fd = crate::io::fsys::openat(dir.as_fd(), limits::DIR_MESSAGE_NAME, flags, 0).ok()?;
    let st = crate::io::fsys::fstat(fd.as_fd()).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| File::from(fd))
}

/// A message file's lines, cleaned (`None`: empty or unreadable). With
/// `nowait`, only from the page cache: `Err(WouldBlock)` when any of the
/// first `MAX_MESSAGE_FILE` bytes needs the disk (a file system without
/// RWF_NOWAIT is read plainly).
pub fn read_message(file: &File, nowait: bool) -> std::io::Result<Option<Vec<Vec<u8>>>> {
    let mut buf = vec![0u8; limits::MAX_MESSAGE_FILE];
    let mut len = 0;
    let mut nowait = nowait;
    while len < buf.len() {
        let r = if nowait {
            cache::pread_nowait(file.as_fd(), &mut buf[len..], len as u64)
        } else {
            cache::pread(file.as_fd(), &mut buf[len..], len as u64)
        };
        match r {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Unsupported => nowait = false,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(e),
            Err(_) => return Ok(None),
        }
    }
    let l = lines(&buf[..len]);
    Ok((!l.is_empty()).then_some(l))
}

/// A short fingerprint of a directory path, for "shown once" bookkeeping.
pub fn dir_key(path: &[u8]) -> u64 {
    // FNV-1a: collisions only mean a message is not shown twice.
    path.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_replies_or_escapes() {
        let l = lines(b"Welcome\r\n226 fake\x1b[31mred\x00\n\n");
        assert_eq!(l, vec![b"Welcome".to_vec(), b"226 fake?[31mred?".to_vec()]);
        let g = greeting(Some(&l));
        assert_eq!(g, b"220-Welcome\r\n 226 fake?[31mred?\r\n220 mirrorftpd ready.\r\n");
    }

    #[test]
    fn long_texts_are_cut() {
        let many = "x\n".repeat(1000);
        assert_eq!(lines(many.as_bytes()).len(), limits::MAX_MESSAGE_LINES);
        let wide = vec![b'y'; 100_000];
        assert_eq!(lines(&wide)[0].len(), limits::MAX_MESSAGE_FILE);
    }

    #[test]
    fn no_banner_is_the_one_line_greeting() {
        assert_eq!(greeting(None), b"220 mirrorftpd ready.\r\n");
        assert_eq!(greeting(Some(&[])), b"220 mirrorftpd ready.\r\n");
    }
}
