//! Byte-level I/O: line framing, socket builders and the thin libc wrappers
//! (all of the crate's `unsafe` lives under this module).

pub mod cache;
pub mod creds;
pub mod fsys;
pub mod linebuf;
pub mod net;
pub mod spare;
pub mod sys;
pub mod tlsbind;
pub mod tlsio;

use std::io;

/// What one I/O attempt did, with errno classified once (sozu's idea).
#[derive(Debug)]
pub enum Status {
    /// This many bytes moved (never 0).
    Done(usize),
    /// The kernel has nothing more for now; wait for the next readiness event.
    WouldBlock,
    /// The peer closed (read returned 0, or EPIPE/ECONNRESET on write).
    Closed,
    /// Any other error.
    Error(io::Error),
}

/// Classifies the result of a read/write-like call.
pub fn classify(r: io::Result<usize>) -> Status {
    match r {
        Ok(0) => Status::Closed,
        Ok(n) => Status::Done(n),
        Err(e) => classify_err(e),
    }
}

pub fn classify_err(e: io::Error) -> Status {
    match e.kind() {
        io::ErrorKind::WouldBlock => Status::WouldBlock,
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Status::Closed,
        _ => Status::Error(e),
    }
}
