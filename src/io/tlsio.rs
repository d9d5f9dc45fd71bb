//! rustls over a non-blocking mio socket: reading plaintext (feeding records
//! in as the socket has them), flushing records out, and driving a
//! handshake, all without blocking. `session` binds resumption to the
//! control session (see `crate::tls`).

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::ServerConnection;

use super::tlsbind::with_session;
use super::{Status, classify_err};

/// A TLS connection on its socket, acting for one control session.
pub struct TlsIo<'a> {
    pub sock: &'a mut TcpStream,
    pub tls: &'a mut ServerConnection,
    pub session: u64,
    /// Set when a handshake resumed a session (the issuing session's id).
    pub resumed_from: &'a mut Option<u64>,
    /// After CCC: read one TLS record at a time (bytes left of the current
    /// one), so the client's plaintext after its close_notify stays in the
    /// socket instead of vanishing into rustls' buffer.
    pub record_exact: Option<&'a mut usize>,
}

/// Reads from the socket without crossing the end of a TLS record.
struct RecordReader<'a> {
    sock: &'a mut TcpStream,
    left: &'a mut usize,
}

impl Read for RecordReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.left == 0 {
            let mut hdr = [0u8; 5];
            let n = self.sock.peek(&mut hdr)?;
            if n == 0 {
                return Ok(0);
            }
            if n < hdr.len() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            *self.left = hdr.len() + usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
        }
        let want = buf.len().min(*self.left);
        let n = self.sock.read(&mut buf[..want])?;
        *self.left -= n;
        Ok(n)
    }
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsIo<'_> {
    /// Reads records from the socket once and processes them.
    /// `Ok(false)`: the peer closed the TCP stream.
    fn fill(&mut self) -> io::Result<bool> {
        let n = match self.record_exact.as_deref_mut() {
            Some(left) => self.tls.read_tls(&mut RecordReader { sock: self.sock, left })?,
            None => self.tls.read_tls(self.sock)?,
        };
        if n == 0 {
            return Ok(false);
        }
        let tls = &mut *self.tls;
        let (r, resumed) = with_session(self.session, || tls.process_new_packets());
        if resumed.is_some() {
            *self.resumed_from = resumed;
        }
        // An alert describing the failure is queued; try to send it.
        if let Err(e) = r {
            let _ = self.flush();
            return Err(tls_err(e));
        }
        Ok(true)
    }

    /// Writes queued records until the socket would block.
    pub fn flush(&mut self) -> Status {
        let mut total = 0;
        while self.tls.wants_write() {
            match self.tls.write_tls(self.sock) {
                Ok(0) => return Status::Closed,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return match classify_err(e) {
                        Status::WouldBlock if total > 0 => Status::Done(total),
                        s => s,
                    };
                }
            }
        }
        Status::Done(total)
    }

    /// Drives the handshake as far as the socket allows. `Done` when it is
    /// complete.
    pub fn handshake(&mut self) -> Status {
        loop {
            if !self.tls.is_handshaking() {
                return match self.flush() {
                    Status::Done(_) => Status::Done(0),
                    s => s,
                };
            }
            if self.tls.wants_write() {
                match self.flush() {
                    Status::Done(_) => continue,
                    s => return s,
                }
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Status::Closed,
                Err(e) => return classify_err(e),
            }
        }
    }

    /// Encrypts plaintext: flushes older records first, so at most one
    /// write's worth of records is ever buffered.
    pub fn write_plain(&mut self, buf: &[u8]) -> Status {
        match self.flush() {
            Status::Done(_) => {}
            s => return s,
        }
        if self.tls.wants_write() {
            return Status::WouldBlock;
        }
        let n = match self.tls.writer().write(buf) {
            Ok(n) => n,
            Err(e) => return Status::Error(e),
        };
        if n == 0 {
            return Status::WouldBlock;
        }
        // Records are out or queued; a WouldBlock here is picked up by the
        // next call's flush.
        if let Status::Closed | Status::Error(_) = self.flush() {
            return Status::Closed;
        }
        Status::Done(n)
    }

    /// Queues close_notify and flushes. `Done` when everything is out.
    pub fn close(&mut self, sent_close: &mut bool) -> Status {
        if !*sent_close {
            self.tls.send_close_notify();
            *sent_close = true;
        }
        match self.flush() {
            Status::Done(_) if !self.tls.wants_write() => Status::Done(0),
            Status::Done(_) => Status::WouldBlock,
            s => s,
        }
    }
}

impl Read for TlsIo<'_> {
    /// Plaintext, `Ok(0)` at close_notify or TCP EOF; `WouldBlock` when the
    /// socket has nothing more. Handshake records that need an answer are
    /// flushed on the way.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify: treated as the end (as
                // vsftpd does by default); the caller logs nothing special.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.tls.wants_write() {
                if let Status::Closed | Status::Error(_) = self.flush() {
                    return Ok(0);
                }
            }
            if !self.fill()? {
                return Ok(0);
            }
        }
    }
}
