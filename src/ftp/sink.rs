//! The data connection as a sink (and source) of bytes: plain TCP, where
//! RETR uses sendfile, or TLS in user space. Transfer jobs only see this
//! interface, so a kernel-TLS sink (sendfile on a kTLS socket) can be added
//! here later without touching the protocol code.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::io::tlsio::TlsIo;
use crate::io::{Status, classify};

/// One data connection.
pub struct Conn {
    pub stream: TcpStream,
    pub tls: Option<Box<ServerConnection>>,
    /// The control session this connection works for (TLS resumption binding).
    pub session: u64,
    /// The control session whose TLS session the handshake resumed.
    pub resumed_from: Option<u64>,
    close_sent: bool,
    /// The TLS handshake finished and the reuse policy was applied.
    pub verified: bool,
}

/// The TLS configuration for a data connection carrying `job`.
pub fn config_for(configs: &crate::tls::Configs, job: &super::transfer::Job) -> Arc<ServerConfig> {
    match job {
        super::transfer::Job::Stor(_) => configs.upload.clone(),
        _ => configs.data.clone(),
    }
}

impl Conn {
    /// Wraps a connected data socket; with `secure`, TLS (PROT P).
    pub fn new(stream: TcpStream, secure: Option<&Arc<ServerConfig>>, session: u64) -> Result<Conn, rustls::Error> {
        let tls = secure.map(crate::tls::accept).transpose()?;
        let verified = tls.is_none();
        Ok(Conn { stream, tls, session, resumed_from: None, close_sent: false, verified })
    }

    /// Adds TLS to a connection accepted before its transfer command (the
    /// ClientHello waits in the socket until then).
    pub fn attach_tls(&mut self, sc: &Arc<ServerConfig>) -> Result<(), rustls::Error> {
        self.tls = Some(crate::tls::accept(sc)?);
        self.verified = false;
        Ok(())
    }

    /// True when bytes can go from the file to the socket in the kernel.
    pub fn zero_copy(&self) -> bool {
        self.tls.is_none()
    }

    fn io(&mut self) -> Option<TlsIo<'_>> {
        let Conn { stream, tls, session, resumed_from, .. } = self;
        tls.as_deref_mut().map(|tls| TlsIo { sock: stream, tls, session: *session, resumed_from, record_exact: None })
    }

    /// Drives the TLS handshake (plain connections are always done).
    pub fn handshake(&mut self) -> Status {
        match self.io() {
            None => Status::Done(0),
            Some(mut io) => io.handshake(),
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> Status {
        match self.io() {
            None => classify(self.stream.write(buf)),
            Some(mut io) => io.write_plain(buf),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.io() {
            None => self.stream.read(buf),
            Some(mut io) => io.read(buf),
        }
    }

    /// Ends the stream cleanly: TLS sends close_notify and flushes. `Done`
    /// when nothing is left to send.
    pub fn finish(&mut self) -> Status {
        let mut sent = self.close_sent;
        let st = match self.io() {
            None => Status::Done(0),
            Some(mut io) => io.close(&mut sent),
        };
        self.close_sent = sent;
        st
    }
}
