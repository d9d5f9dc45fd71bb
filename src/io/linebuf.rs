//! A bounded control-line buffer: reads from a socket, yields complete lines
//! found with memchr, and treats an overlong line as a protocol error.

use std::io::{self, Read};

/// One control connection's input.
///
/// The buffer is allocated on the first read and released by
/// `release_if_empty`, so an idle session holds no input memory.
///
/// Invariants: `buf` is empty or exactly `cap` bytes; `start <= end <= buf.len()`; bytes `start..end` are received
/// and not yet consumed; `scan` is where the search for '\n' resumes
/// (`start <= scan <= end`); when `discarding` is set, bytes are dropped up to
/// and including the next '\n' (the tail of an overlong line).
pub struct LineBuf {
    buf: Vec<u8>,
    cap: usize,
    start: usize,
    end: usize,
    scan: usize,
    discarding: bool,
}

/// One framing result.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line at `start..end` of the buffer (without CR/LF).
    Ready(usize, usize),
    /// A line exceeded the limit; its bytes are being dropped.
    TooLong,
    /// No complete line buffered.
    Partial,
}

impl LineBuf {
    pub fn new(capacity: usize) -> LineBuf {
        LineBuf { buf: Vec::new(), cap: capacity.max(2), start: 0, end: 0, scan: 0, discarding: false }
    }

    /// Reads once from `r` into the free space. `Ok(0)` means EOF.
    /// Only call when `next_line` returned `Partial` (the buffer has room).
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.buf.is_empty() {
            // Read into the stack first: an idle session woken by a spurious
            // or final event allocates nothing.
            let mut first = [0u8; 512];
            let want = first.len().min(self.cap);
            let n = r.read(&mut first[..want])?;
            if n > 0 {
                self.buf = vec![0; self.cap];
                self.buf[..n].copy_from_slice(&first[..n]);
                self.start = 0;
                self.scan = 0;
                self.end = n;
            }
            return Ok(n);
        }
        if self.start > 0 && self.end == self.buf.len() {
            self.compact();
        }
        if self.end == self.buf.len() {
            // Cannot happen: a full buffer without '\n' turns into TooLong.
            return Err(io::Error::other("line buffer full"));
        }
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.scan -= self.start;
        self.end -= self.start;
        self.start = 0;
    }

    /// Finds the next complete line. Returned ranges stay valid until the
    /// next call to `read_from`.
    pub fn next_line(&mut self) -> Line {
        loop {
            match memchr::memchr(b'\n', &self.buf[self.scan..self.end]) {
                Some(i) => {
                    let nl = self.scan + i;
                    let line_start = self.start;
                    self.start = nl + 1;
                    self.scan = self.start;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let mut line_end = nl;
                    if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                        line_end -= 1;
                    }
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                        self.scan = 0;
                        // The range was copied out of place? No: ranges are
                        // returned before any reuse; keep them valid by not
                        // touching the bytes, only the indexes.
                    }
                    return Line::Ready(line_start, line_end);
                }
                None => {
                    self.scan = self.end;
                    if self.discarding {
                        self.start = 0;
                        self.end = 0;
                        self.scan = 0;
                        return Line::Partial;
                    }
                    if self.end - self.start >= self.cap {
                        // A full buffer and no '\n': overlong line.
                        self.discarding = true;
                        self.start = 0;
                        self.end = 0;
                        self.scan = 0;
                        return Line::TooLong;
                    }
                    return Line::Partial;
                }
            }
        }
    }

    /// The bytes of a line returned by `next_line`, mutable so Telnet
    /// sequences can be stripped in place.
    pub fn line_mut(&mut self, start: usize, end: usize) -> &mut [u8] {
        &mut self.buf[start..end]
    }

    /// Frees the buffer when nothing is buffered (ranges returned by
    /// `next_line` are invalid afterwards).
    pub fn release_if_empty(&mut self) {
        if self.start == self.end && !self.discarding {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
            self.scan = 0;
        }
    }

    /// Bytes buffered and not yet framed.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Drops everything buffered (used when the input must not be trusted,
    /// e.g. plaintext sent before a TLS handshake).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scan = 0;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lb: &mut LineBuf, bytes: &[u8]) {
        let mut r = bytes;
        while !r.is_empty() {
            let n = lb.read_from(&mut r).unwrap();
            assert!(n > 0);
        }
    }

    fn take(lb: &mut LineBuf) -> Option<Vec<u8>> {
        match lb.next_line() {
            Line::Ready(s, e) => Some(lb.line_mut(s, e).to_vec()),
            _ => None,
        }
    }

    #[test]
    fn frames_crlf_and_lf_lines() {
        let mut lb = LineBuf::new(64);
        feed(&mut lb, b"USER a\r\nPASS b\nNO");
        assert_eq!(take(&mut lb).unwrap(), b"USER a");
        assert_eq!(take(&mut lb).unwrap(), b"PASS b");
        assert_eq!(lb.next_line(), Line::Partial);
        feed(&mut lb, b"OP\r\n");
        assert_eq!(take(&mut lb).unwrap(), b"NOOP");
        assert_eq!(lb.next_line(), Line::Partial);
    }

    #[test]
    fn overlong_line_is_an_error_and_the_next_line_survives() {
        let mut lb = LineBuf::new(16);
        feed(&mut lb, &[b'x'; 16]);
        assert_eq!(lb.next_line(), Line::TooLong);
        feed(&mut lb, b"xxxxxxxx\r\nNOOP\r\n");
        assert_eq!(take(&mut lb).unwrap(), b"NOOP");
    }

    #[test]
    fn compaction_keeps_partial_line() {
        let mut lb = LineBuf::new(16);
        feed(&mut lb, b"AAAAAAAAAA\nBBBB");
        assert_eq!(take(&mut lb).unwrap(), b"AAAAAAAAAA");
        feed(&mut lb, b"BBBBB\n");
        assert_eq!(take(&mut lb).unwrap(), b"BBBBBBBBB");
    }

    #[test]
    fn buffer_is_released_when_empty_and_reallocated_on_read() {
        let mut lb = LineBuf::new(16);
        feed(&mut lb, b"NOOP\r\n");
        assert_eq!(take(&mut lb).unwrap(), b"NOOP");
        lb.release_if_empty();
        assert_eq!(lb.buf.len(), 0);
        // A read that finds nothing allocates nothing.
        let mut empty: &[u8] = b"";
        assert_eq!(lb.read_from(&mut empty).unwrap(), 0);
        assert_eq!(lb.buf.len(), 0);
        feed(&mut lb, b"PWD\r\nSY");
        assert_eq!(take(&mut lb).unwrap(), b"PWD");
        lb.release_if_empty();
        assert_eq!(lb.buf.len(), 16, "a partial line keeps the buffer");
        feed(&mut lb, b"ST\r\n");
        assert_eq!(take(&mut lb).unwrap(), b"SYST");
    }

    #[test]
    fn an_unallocated_buffer_is_not_an_overlong_line() {
        let mut lb = LineBuf::new(16);
        assert_eq!(lb.next_line(), Line::Partial);
        feed(&mut lb, b"USER a\r\n");
        assert_eq!(take(&mut lb).unwrap(), b"USER a");
    }

    #[test]
    fn a_line_exactly_at_capacity_minus_newline_fits() {
        let mut lb = LineBuf::new(8);
        feed(&mut lb, b"1234567\n");
        assert_eq!(take(&mut lb).unwrap(), b"1234567");
    }
}
