//! FTPS on rustls: the server configuration (certificate chain, TLS 1.2/1.3,
//! ALPN `ftp` only, session IDs and TLS 1.3 tickets) and the binding that
//! lets a data connection prove it resumed *its own* control connection's
//! session, the defence against data-channel hijacking (vsftpd's
//! require_ssl_reuse).
//!
//! The binding: every ticket and cached session value is prefixed with the id
//! of the control session it was issued for. rustls encrypts tickets and
//! stores sessions from inside `process_new_packets`, which the worker calls
//! inside `with_session(id, ..)` on its own thread; a resumption records the
//! id found inside, and the data channel compares it with its session's id.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

pub use crate::io::tlsbind::provider;
use crate::io::tlsbind::{tag, untag};
use crate::limits;

/// Stateless tickets (TLS 1.2 and 1.3) carrying the issuing session's id.
/// Tickets are reusable, so every data connection of a long session can
/// resume (single-use tickets broke curl and Cyberduck elsewhere).
#[derive(Debug)]
struct BoundTickets(Arc<dyn ProducesTickets>);

impl ProducesTickets for BoundTickets {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(&tag(plain))
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        untag(self.0.decrypt(cipher)?)
    }
}

/// The TLS 1.2 session-ID cache, values tagged the same way.
#[derive(Debug)]
struct BoundCache(Arc<ServerSessionMemoryCache>);

impl StoresServerSessions for BoundCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.put(key, tag(&value))
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        untag(self.0.get(key)?)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        untag(self.0.take(key)?)
    }
    fn can_cache(&self) -> bool {
        self.0.can_cache()
    }
}

#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The three server configurations one certificate gives.
#[derive(Debug)]
pub struct Configs {
    /// Control connections: the tickets data connections will resume.
    pub control: Arc<ServerConfig>,
    /// Downloads and listings: new tickets keep a session's supply going.
    pub data: Arc<ServerConfig>,
    /// Uploads send no tickets: a client that only writes never reads them,
    /// and unread bytes make its close a reset that loses the upload's tail
    /// (curl #6149).
    pub upload: Arc<ServerConfig>,
}

/// Ticket keys and the session cache, made once per process so a
/// certificate reload does not orphan the sessions data connections resume.
struct Resumption {
    tickets: Arc<BoundTickets>,
    cache: Arc<BoundCache>,
}

static RESUMPTION: OnceLock<Result<Resumption, String>> = OnceLock::new();

fn resumption() -> Result<&'static Resumption, TlsError> {
    RESUMPTION
        .get_or_init(|| {
            let tickets = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("ticketer: {e}"))?;
            Ok(Resumption {
                tickets: Arc::new(BoundTickets(tickets)),
                cache: Arc::new(BoundCache(ServerSessionMemoryCache::new(limits::TLS_SESSION_CACHE))),
            })
        })
        .as_ref()
        .map_err(|e| TlsError(e.clone()))
}

/// Builds the server configurations from --tls-cert/--tls-key; `None` when
/// FTPS is not configured.
pub fn load(cert: Option<&Path>, key: Option<&Path>, tls13_only: bool) -> Result<Option<Arc<Configs>>, TlsError> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    build(cert, key, tls13_only).map(Some)
}

pub fn build(cert: &Path, key: &Path, tls13_only: bool) -> Result<Arc<Configs>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError(format!("--tls-cert {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("--tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("--tls-cert {}: no certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError(format!("--tls-key {}: {e}", key.display())))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        if tls13_only { &[&rustls::version::TLS13] } else { &[&rustls::version::TLS13, &rustls::version::TLS12] };
    let mut sc = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("certificate and key: {e}")))?;
    // ALPACA: a client that offers ALPN must offer "ftp"; without ALPN is fine.
    sc.alpn_protocols = vec![b"ftp".to_vec()];
    let r = resumption()?;
    sc.ticketer = r.tickets.clone();
    sc.session_storage = r.cache.clone();
    let mut control = sc.clone();
    control.send_tls13_tickets = limits::TLS13_TICKETS_CONTROL;
    let mut data = sc.clone();
    data.send_tls13_tickets = limits::TLS13_TICKETS_DATA;
    let mut upload = sc;
    upload.send_tls13_tickets = 0;
    Ok(Arc::new(Configs { control: Arc::new(control), data: Arc::new(data), upload: Arc::new(upload) }))
}

/// A new server-side connection, or why not.
pub fn accept(sc: &Arc<ServerConfig>) -> Result<Box<rustls::ServerConnection>, rustls::Error> {
    let mut c = rustls::ServerConnection::new(sc.clone())?;
    c.set_buffer_limit(Some(limits::TLS_PLAINTEXT_BUFFER));
    Ok(Box::new(c))
}
