//! FTPS for the bench client: the client configuration (a verifier that
//! accepts any certificate, ALPN `ftp`, an in-memory resumption store per
//! control connection) and rustls driven over a non-blocking mio socket
//! whose readiness the session keeps (cleared here when the socket blocks).
//!
//! Resumption: a session's data connections must resume *its* control
//! connection's TLS session (servers with vsftpd's require_ssl_reuse, or
//! `mirrorftpd --tls-session-reuse required`, refuse anything else). rustls
//! keys its store by server name and hands out the newest ticket, so one
//! store shared by the sessions of a thread would give a data connection
//! another session's ticket. Each control connection therefore gets its own
//! copy of the thread's configuration with a fresh store (`for_session`):
//! the store holds only the tickets its control connection (and its data
//! connections) received, and every data connection uses the same server
//! name as the control connection, so rustls offers one of them.

use std::io::{self, BufRead, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::stats::ErrorKind;
use crate::io::{Status, classify_err};

/// Server names remembered by one control connection's resumption store
/// (control and data connections use the same one).
const RESUMPTION_NAMES: usize = 1;
/// Socket reads without a byte of plaintext (or the end of the handshake)
/// before the connection counts as a runaway and fails.
const FILLS_PER_CALL: usize = 256;

/// Accepts every certificate chain (the bench targets the caller's own
/// servers), but checks the handshake signatures with the provider's
/// algorithms, so the handshake is a real one and costs what it costs.
#[derive(Debug)]
pub struct AcceptAnyCert {
    algs: WebPkiSupportedAlgorithms,
}

impl AcceptAnyCert {
    /// A verifier for `provider`'s signature algorithms (also used by the
    /// FTPS tests, whose certificates are self-signed).
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Arc<AcceptAnyCert> {
        Arc::new(AcceptAnyCert { algs: provider.signature_verification_algorithms })
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The configuration of one bench thread (ring, TLS 1.2 and 1.3, ALPN
/// `ftp`). Connections use `for_session` copies of it.
pub fn thread_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = crate::io::tlsbind::provider();
    let verifier = Arc::new(AcceptAnyCert { algs: provider.signature_verification_algorithms });
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // ALPACA: servers that check ALPN expect "ftp".
    c.alpn_protocols = vec![b"ftp".to_vec()];
    Ok(Arc::new(c))
}

/// The configuration of one control connection and its data connections:
/// the thread's, with a resumption store of its own (see the module docs).
pub fn for_session(thread: &ClientConfig) -> Arc<ClientConfig> {
    let mut c = thread.clone();
    c.resumption = Resumption::in_memory_sessions(RESUMPTION_NAMES);
    Arc::new(c)
}

/// The name every connection of a run presents: the server's address (an IP
/// name sends no SNI; certificates are not checked anyway).
pub fn server_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::from(ip)
}

/// A new client connection, its ClientHello queued.
pub fn connect(cfg: &Arc<ClientConfig>, ip: IpAddr) -> Result<Box<ClientConnection>, ErrorKind> {
    ClientConnection::new(cfg.clone(), server_name(ip)).map(Box::new).map_err(|_| ErrorKind::Tls)
}

/// The session error for an I/O error from `TlsIo`'s `Read`: TLS protocol
/// failures come back as `InvalidData` (a TCP socket never returns it).
pub fn error_kind(e: &io::Error) -> ErrorKind {
    if e.kind() == io::ErrorKind::InvalidData { ErrorKind::Tls } else { ErrorKind::Io }
}

/// What one socket read did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// Records came in and were processed.
    Read,
    /// Nothing to read now (the readiness flag is clear).
    Blocked,
    /// The peer closed the TCP stream.
    Eof,
}

/// A client TLS connection on its socket, with the socket's readiness as
/// the session tracks it: an attempt is made only while a flag is set, and
/// a flag is cleared when the socket would block.
pub struct TlsIo<'a> {
    pub tls: &'a mut ClientConnection,
    pub sock: &'a mut TcpStream,
    pub readable: &'a mut bool,
    pub writable: &'a mut bool,
}

impl TlsIo<'_> {
    /// Writes queued records while the socket takes them; the bytes written.
    /// Bounded by rustls' buffer limit (64 KiB of records by default).
    pub fn flush(&mut self) -> Result<usize, ErrorKind> {
        let mut total = 0;
        while self.tls.wants_write() && *self.writable {
            match self.tls.write_tls(self.sock) {
                Ok(0) => return Err(ErrorKind::Eof),
                Ok(n) => total += n,
                Err(e) => match classify_err(e) {
                    Status::WouldBlock => *self.writable = false,
                    Status::Closed => return Err(ErrorKind::Eof),
                    Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    _ => return Err(ErrorKind::Io),
                },
            }
        }
        Ok(total)
    }

    /// Reads records from the socket once and processes them.
    pub fn fill(&mut self) -> Result<Fill, ErrorKind> {
        if !*self.readable {
            return Ok(Fill::Blocked);
        }
        loop {
            match self.tls.read_tls(self.sock) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(_) => break,
                Err(e) => match classify_err(e) {
                    Status::WouldBlock => {
                        *self.readable = false;
                        return Ok(Fill::Blocked);
                    }
                    Status::Closed => return Ok(Fill::Eof),
                    Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // "message buffer full": a record larger than TLS allows.
                    Status::Error(e) if e.kind() == io::ErrorKind::InvalidData => return Err(ErrorKind::Tls),
                    _ => return Err(ErrorKind::Io),
                },
            }
        }
        if self.tls.process_new_packets().is_err() {
            // An alert describing the failure is queued: try to send it.
            let _ = self.flush();
            return Err(ErrorKind::Tls);
        }
        Ok(Fill::Read)
    }

    /// Drives the handshake as far as the socket allows. `Ok(true)` once it
    /// is complete and its last flight is out; a peer that closes before
    /// that is a TLS failure.
    pub fn handshake(&mut self) -> Result<bool, ErrorKind> {
        for _ in 0..FILLS_PER_CALL {
            // Our flight first: the server waits for it.
            self.flush()?;
            if !self.tls.is_handshaking() {
                return Ok(!self.tls.wants_write());
            }
            match self.fill()? {
                Fill::Read => {}
                Fill::Blocked => return Ok(false),
                Fill::Eof => return Err(ErrorKind::Tls),
            }
        }
        Err(ErrorKind::Tls)
    }

    /// Plaintext the connection already holds: with `None` it is dropped
    /// without a copy; the byte count either way. `Ok(None)`: none held.
    /// `Ok(Some(0))`: the peer ended the stream (close_notify, or TCP EOF
    /// after the handshake: taken as the end, as the server does).
    fn take_plain(&mut self, dst: Option<&mut [u8]>, max: usize) -> io::Result<Option<usize>> {
        let mut r = self.tls.reader();
        let got = match dst {
            Some(buf) => r.read(buf),
            None => r.fill_buf().map(|b| b.len().min(max)).inspect(|&n| r.consume(n)),
        };
        match got {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// `read` for `dst` (or a drop of up to `max` bytes): plaintext, `Ok(0)`
    /// at the end of the stream, `WouldBlock` once the socket has nothing
    /// more, `InvalidData` for a TLS failure.
    fn plain(&mut self, mut dst: Option<&mut [u8]>, max: usize) -> io::Result<usize> {
        for _ in 0..FILLS_PER_CALL {
            if let Some(n) = self.take_plain(dst.as_deref_mut(), max)? {
                return Ok(n);
            }
            // Anything the peer needs answered (a key update, an alert).
            if self.flush() == Err(ErrorKind::Eof) {
                return Ok(0);
            }
            match self.fill() {
                Ok(Fill::Read | Fill::Eof) => {}
                Ok(Fill::Blocked) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(ErrorKind::Tls) => return Err(io::ErrorKind::InvalidData.into()),
                Err(_) => return Err(io::Error::other("data connection socket error")),
            }
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, "no plaintext after many TLS reads"))
    }

    /// Decrypts up to `max` bytes and drops them without copying (--discard).
    pub fn discard(&mut self, max: usize) -> io::Result<usize> {
        self.plain(None, max.max(1))
    }

    /// Encrypts plaintext: flushes older records first, so at most one
    /// write's worth of records is ever buffered.
    pub fn write_plain(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.flush()?;
        if self.tls.wants_write() {
            return Ok(0);
        }
        let n = self.tls.writer().write(buf).map_err(|_| ErrorKind::Tls)?;
        self.flush()?;
        Ok(n)
    }

    /// Processes whatever the peer sent on a connection this side only
    /// writes to (tickets, alerts, its close), dropping any plaintext.
    /// `Ok(true)`: the peer closed.
    pub fn drain(&mut self) -> Result<bool, ErrorKind> {
        for _ in 0..FILLS_PER_CALL {
            match self.discard(usize::MAX) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(error_kind(&e)),
            }
        }
        Err(ErrorKind::Tls)
    }

    /// Queues close_notify (once) and flushes. `Ok(true)` when all is out.
    pub fn close(&mut self, sent: &mut bool) -> Result<bool, ErrorKind> {
        if !*sent {
            self.tls.send_close_notify();
            *sent = true;
        }
        self.flush()?;
        Ok(!self.tls.wants_write())
    }
}

impl Read for TlsIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len();
        self.plain(Some(buf), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_certificate_is_accepted() {
        let provider = rustls::crypto::ring::default_provider();
        let v = AcceptAnyCert { algs: provider.signature_verification_algorithms };
        let junk = CertificateDer::from(vec![1u8, 2, 3]);
        let name = server_name("127.0.0.1".parse().unwrap());
        assert!(v.verify_server_cert(&junk, &[], &name, &[], UnixTime::now()).is_ok());
        assert!(v.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
    }

    #[test]
    fn session_configs_copy_the_thread_one() {
        // (That each has its own store is what the FTPS integration tests
        // prove: the server refuses a data connection resuming another's.)
        let t = thread_config().unwrap();
        assert_eq!(t.alpn_protocols, vec![b"ftp".to_vec()]);
        let a = for_session(&t);
        assert!(!Arc::ptr_eq(&a, &t));
        assert_eq!(a.alpn_protocols, t.alpn_protocols);
        assert!(connect(&a, "::1".parse().unwrap()).is_ok_and(|c| c.is_handshaking() && c.wants_write()));
    }

    #[test]
    fn invalid_data_is_a_tls_failure() {
        assert_eq!(error_kind(&io::ErrorKind::InvalidData.into()), ErrorKind::Tls);
        assert_eq!(error_kind(&io::ErrorKind::ConnectionRefused.into()), ErrorKind::Io);
    }
}
