//! --proxy-protocol: a control connection from a trusted load balancer
//! starts in `AwaitProxy`. Nothing is sent and nothing is counted until its
//! PROXY header is read; then the client's real address becomes the
//! session's peer (logs, --max-per-ip/--max-clients, bans, the PORT bounce
//! and passive theft checks), the session is admitted, and the greeting
//! goes out (over TLS on an implicit-TLS port: the header precedes the
//! handshake).
//!
//! The header is read with `peek` and then exactly its length is taken off
//! the socket, so whatever the client sent after it (a pipelined command, a
//! TLS ClientHello) stays in the kernel for the line buffer or for rustls:
//! no byte after the header is ever consumed here, none is lost.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;

use crate::cidr;
use crate::config::{Config, ProxyDataCheck};
use crate::io::net::canonical_ip;
use crate::proto::proxy::{self, Parse};

use super::{CtrlState, Cx, Outcome, Session};
use crate::services::Refusal;

/// Checks a new connection's source under --proxy-protocol: only the
/// --proxy-from blocks may connect. `Ok(0)`: accept it and wait for its
/// header (the session id comes with admission).
pub fn screen(cfg: &Config, ip: IpAddr) -> Result<u64, Refusal> {
    if cidr::any_contains(&cfg.proxy_from, ip) { Ok(0) } else { Err(Refusal::NotProxied) }
}

impl Session {
    /// A connection from a trusted load balancer, before its PROXY header:
    /// not admitted, nothing queued. `from` is the balancer's address.
    pub fn awaiting_proxy(
        generation: u16,
        ctrl: TcpStream,
        from: SocketAddr,
        local: SocketAddr,
        now: Instant,
        worker: usize,
    ) -> Session {
        let mut s = Session::bare(0, generation, ctrl, from, local, now, worker);
        s.state = CtrlState::AwaitProxy;
        s.admitted = false;
        s
    }

    /// Reads the PROXY header. `None`: it was read and the session was
    /// admitted (the greeting is queued; carry on as a normal session).
    pub(super) fn await_proxy(&mut self, cx: &mut Cx<'_>) -> Option<Outcome> {
        let mut buf = [0u8; proxy::MAX_HEADER];
        let mut interrupted = 0;
        let seen = loop {
            if !self.ctrl_readable {
                return Some(Outcome::Idle);
            }
            match self.ctrl.peek(&mut buf) {
                Ok(0) => return Some(self.refuse_proxy("closed before its PROXY header", cx.now)),
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.ctrl_readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted && interrupted < 8 => interrupted += 1,
                Err(e) => return Some(self.refuse_proxy(&format!("read error before the PROXY header: {e}"), cx.now)),
            }
        };
        match proxy::parse(&buf[..seen]) {
            Parse::NeedMore => {
                // The rest arrives as a new readable edge (or the deadline
                // drops the connection).
                self.ctrl_readable = false;
                Some(Outcome::Idle)
            }
            Parse::Invalid(why) => Some(self.refuse_proxy(&format!("bad PROXY header: {why}"), cx.now)),
            Parse::Done { consumed, source, .. } => {
                if let Err(e) = take_exactly(&mut self.ctrl, &mut buf[..consumed]) {
                    return Some(self.refuse_proxy(&format!("reading the PROXY header: {e}"), cx.now));
                }
                self.admit_proxied(source, cx)
            }
        }
    }

    /// The header is read: the real client (or, for a LOCAL health check or
    /// UNKNOWN, the balancer itself) becomes the peer and is admitted.
    fn admit_proxied(&mut self, source: Option<SocketAddr>, cx: &mut Cx<'_>) -> Option<Outcome> {
        let balancer = self.peer;
        let real = source.map_or(balancer, |s| SocketAddr::new(canonical_ip(s.ip()), s.port()));
        match cx.shared.admit(real.ip(), cx.now) {
            Ok(id) => {
                self.id = id;
                self.data.session = id;
                self.admitted = true;
                self.peer = real;
                self.proxy = Some(balancer);
                crate::obs::metrics::add(&self.metrics.sessions[crate::obs::metrics::FTP], 1);
                self.log_connect();
                self.greet(&cx.shared.greeting());
                self.state = CtrlState::NeedUser;
                None
            }
            Err(why) => {
                crate::obs::metrics::refused(self.metrics, why as usize);
                let why = why.text();
                // Sent as the plain refusal for unproxied clients is.
                let _ = self.ctrl.write(format!("421 {why}\r\n").as_bytes());
                crate::log::info(format_args!("refused {real} via {balancer}: {why}"));
                Some(Outcome::Close)
            }
        }
    }

    /// Drops a connection that did not deliver a valid header: logged, no
    /// reply (whatever we sent would reach the client as FTP).
    pub(super) fn refuse_proxy(&mut self, why: &str, now: Instant) -> Outcome {
        crate::log::warn(format_args!("dropped connection from {}: {why}", self.peer));
        self.state = CtrlState::Closing { since: now };
        Outcome::Close
    }

    /// The addresses a passive data connection may come from: the client's,
    /// and with --proxy-data-check relaxed also its load balancer's.
    pub(super) fn data_sources(&self, cfg: &Config) -> [IpAddr; 2] {
        let client = self.peer.ip();
        match self.proxy {
            Some(p) if cfg.proxy_data_check == ProxyDataCheck::Relaxed => [client, p.ip()],
            _ => [client, client],
        }
    }
}

/// Reads exactly `buf.len()` bytes that `peek` has already seen.
fn take_exactly(sock: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    let mut tries = 0;
    while got < buf.len() {
        tries += 1;
        if tries > 2 * proxy::MAX_HEADER {
            return Err(std::io::Error::other("the header did not come off the socket"));
        }
        match sock.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
