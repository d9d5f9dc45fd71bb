//! The `--metrics-listen` endpoint, served by worker 0's event loop: a tiny
//! non-blocking HTTP/1.x responder. Each connection reads a request head (at
//! most `METRICS_REQUEST_MAX` bytes), gets one answer (`GET /metrics`: 200 with
//! the exposition text; another path: 404; another method: 405; garbage: 400)
//! and is closed. A connection that has not finished within
//! `METRICS_CONN_TIMEOUT` is dropped, and at most `METRICS_MAX_CONNS` are open
//! (a new one closes the oldest): a client that never sends or never reads
//! costs a slot for a while, never the reactor.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::limits;

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    /// The response, once the request is read.
    out: Option<Vec<u8>>,
    pos: usize,
    deadline: Instant,
    /// Accept order (the oldest goes first when the table is full).
    seq: u64,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    BadRequest,
}

pub struct MetricsServer {
    listener: TcpListener,
    conns: Slab<Conn>,
    /// Makes the token of connection `n` (`None`: the listener).
    token: fn(Option<usize>) -> Token,
    accept_pending: bool,
    /// Connections with events this turn.
    ready: Vec<usize>,
    accepted: u64,
}

/// Finds the end of the request head; `None` while it is incomplete.
fn head_end(b: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(b, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses the request line of a complete head.
pub fn parse_request(head: &[u8]) -> Answer {
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    let line = head[..line_end].strip_suffix(b"\r").unwrap_or(&head[..line_end]);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") || method.is_empty() || !target.starts_with(b"/") {
        return Answer::BadRequest;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or(target);
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Answer::BadMethod,
    };
    if path == b"/metrics" { Answer::Metrics { head_only } } else { Answer::NotFound }
}

/// The full response bytes for an answer.
pub fn response(a: &Answer, body: impl FnOnce() -> String) -> Vec<u8> {
    let (status, ctype, body, head_only) = match a {
        Answer::Metrics { head_only } => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body(), *head_only),
        Answer::NotFound => ("404 Not Found", "text/plain", "Not found: try /metrics\n".to_string(), false),
        Answer::BadMethod => ("405 Method Not Allowed", "text/plain", "Only GET and HEAD\n".to_string(), false),
        Answer::BadRequest => ("400 Bad Request", "text/plain", "Bad request\n".to_string(), false),
    };
    let allow = if *a == Answer::BadMethod { "Allow: GET, HEAD\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr, registry: &Registry, token: fn(Option<usize>) -> Token) -> io::Result<MetricsServer> {
        let mut listener =
            TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("--metrics-listen {addr}: {e}")))?;
        registry.register(&mut listener, token(None), Interest::READABLE)?;
        Ok(MetricsServer { listener, conns: Slab::new(), token, accept_pending: true, ready: Vec::new(), accepted: 0 })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The earliest connection deadline (now, if accepting stopped on its budget).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.accept_pending {
            return Some(Instant::now());
        }
        self.conns.iter().map(|(_, c)| c.deadline).min()
    }

    /// Notes an event for the listener (`None`) or connection `n`; the work
    /// is done in `turn`.
    pub fn on_event(&mut self, n: Option<usize>) {
        match n {
            None => self.accept_pending = true,
            Some(n) => self.ready.push(n),
        }
    }

    /// One turn: accept, serve connections that had events, drop expired
    /// ones. `render` makes the exposition text (called only for GET /metrics).
    pub fn turn(&mut self, registry: &Registry, now: Instant, render: &dyn Fn() -> String) {
        if self.accept_pending {
            self.accept(registry, now);
        }
        let mut ready = std::mem::take(&mut self.ready);
        for &n in &ready {
            self.serve(n, registry, render);
        }
        ready.clear();
        self.ready = ready;
        let expired: Vec<usize> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(k, _)| k).collect();
        for n in expired {
            self.drop_conn(n, registry);
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        for _ in 0..limits::ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((mut sock, _)) => {
                    if self.conns.len() >= limits::METRICS_MAX_CONNS {
                        // Full: the oldest connection makes room, so clients
                        // that connect and stay silent cannot lock scrapers out.
                        if let Some(old) = self.conns.iter().min_by_key(|(_, c)| c.seq).map(|(k, _)| k) {
                            self.drop_conn(old, registry);
                        }
                    }
                    let entry = self.conns.vacant_entry();
                    let n = entry.key();
                    if registry
                        .register(&mut sock, (self.token)(Some(n)), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Conn {
                        sock,
                        buf: Vec::new(),
                        out: None,
                        pos: 0,
                        deadline: now + limits::METRICS_CONN_TIMEOUT,
                        seq: self.accepted,
                    });
                    self.accepted += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // EMFILE and the like: the next connection's event retries.
                    self.accept_pending = false;
                    return;
                }
            }
        }
    }

    /// Reads the request, then writes the answer; closes when done or broken.
    fn serve(&mut self, n: usize, registry: &Registry, render: &dyn Fn() -> String) {
        let Some(c) = self.conns.get_mut(n) else { return };
        if c.out.is_none() {
            let mut chunk = [0u8; 1024];
            loop {
                let room = limits::METRICS_REQUEST_MAX - c.buf.len();
                if room == 0 {
                    c.out = Some(response(&Answer::BadRequest, String::new));
                    break;
                }
                let take = room.min(chunk.len());
                match c.sock.read(&mut chunk[..take]) {
                    Ok(0) => return self.drop_conn(n, registry),
                    Ok(k) => {
                        c.buf.extend_from_slice(&chunk[..k]);
                        if let Some(end) = head_end(&c.buf) {
                            c.out = Some(response(&parse_request(&c.buf[..end]), render));
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.drop_conn(n, registry),
                }
            }
        }
        let Some(out) = &c.out else { return };
        while c.pos < out.len() {
            match c.sock.write(&out[c.pos..]) {
                Ok(0) => return self.drop_conn(n, registry),
                Ok(k) => c.pos += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(n, registry),
            }
        }
        let _ = c.sock.shutdown(std::net::Shutdown::Write);
        self.drop_conn(n, registry);
    }

    fn drop_conn(&mut self, n: usize, registry: &Registry) {
        if let Some(mut c) = self.conns.try_remove(n) {
            let _ = registry.deregister(&mut c.sock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Answer::Metrics { head_only: false });
        assert_eq!(parse_request(b"GET /metrics?x=1 HTTP/1.0\n\n"), Answer::Metrics { head_only: false });
        assert_eq!(parse_request(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Answer::Metrics { head_only: true });
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(parse_request(b"GET /metricsx HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"), Answer::BadMethod);
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Answer::BadRequest);
        assert_eq!(parse_request(b"GET /metrics HTTP/2\r\n\r\n"), Answer::BadRequest);
        assert_eq!(parse_request(b"\x16\x03\x01 junk"), Answer::BadRequest);
    }

    #[test]
    fn head_end_needs_a_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
    }

    #[test]
    fn responses() {
        let r = String::from_utf8(response(&Answer::Metrics { head_only: false }, || "a 1\n".into())).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n\
             Connection: close\r\n\r\na 1\n"
        );
        let h = String::from_utf8(response(&Answer::Metrics { head_only: true }, || "a 1\n".into())).unwrap();
        assert!(h.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"), "{h}");
        let m = String::from_utf8(response(&Answer::BadMethod, String::new)).unwrap();
        assert!(m.starts_with("HTTP/1.1 405 ") && m.contains("Allow: GET, HEAD\r\n"), "{m}");
    }
}
