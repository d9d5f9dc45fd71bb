//! Operator text shown to clients: the --banner-file greeting and the
//! per-directory `.message` files of the mirror convention, shown in the
//! reply to CWD (once per directory per session). Both are cut to
//! `MAX_MESSAGE_FILE` bytes and `MAX_MESSAGE_LINES` lines, and control
//! characters become '?', so a message synced from upstream cannot inject
//! reply lines or terminal escapes.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

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

/// The `.message` file of the directory `dir` (an open directory fd), if it
/// is a regular file; its lines, cleaned. Never blocks on a FIFO or device
/// and never follows a symlink.
pub fn dir_message(dir: impl AsFd) -> Option<Vec<Vec<u8>>> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let fd = crate::io::fsys::openat(dir.as_fd(), limits::DIR_MESSAGE_NAME, flags, 0).ok()?;
    let st = crate::io::fsys::fstat(fd.as_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd).take(limits::MAX_MESSAGE_FILE as u64).read_to_end(&mut buf).ok()?;
    let l = lines(&buf);
    (!l.is_empty()).then_some(l)
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
