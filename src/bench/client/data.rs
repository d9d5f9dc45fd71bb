//! The data side of a bench session: EPSV/PASV connects or the active-mode
//! listener, the transfer command, the TLS handshake after 150 (PROT P),
//! reads (into the session's copy buffer, dropped in the kernel with
//! MSG_TRUNC, or decrypted and dropped under TLS), generated uploads, and
//! the per-session rate limit.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpStream;

use super::{Client, Ctx, Phase, Role, token};
use crate::bench::plan::DataMode;
use crate::bench::reply;
use crate::bench::stats::{ErrorKind, OpKind};
use crate::bench::tls::{self, TlsIo};
use crate::io::{Status, classify, net, sys};

/// The copy buffer of a session reading without --discard.
const COPY_BUF: usize = 128 << 10;
/// Bytes one MSG_TRUNC recv may drop.
const DISCARD_CHUNK: usize = 8 << 20;
/// Data reads or writes per turn before the session yields to the others.
const DATA_CALLS_PER_TURN: usize = 32;
/// The same under TLS, where a call moves at most one record (16 KiB).
const TLS_DATA_CALLS_PER_TURN: usize = 256;
/// Data bytes per turn before the session yields: keeps one busy transfer
/// from delaying the replies of the others (and so their latencies).
const DATA_BYTES_PER_TURN: usize = 2 << 20;

/// A token bucket limiting one session's data rate.
pub(super) struct Bucket {
    rate: f64,
    cap: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        let rate = rate as f64;
        let cap = (rate / 10.0).clamp(rate.min(16384.0), 8.0 * 1048576.0);
        Bucket { rate, cap, tokens: cap, last: now }
    }

    fn available(&mut self, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.cap);
        self.last = now;
        self.tokens as usize
    }

    fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// How long until half the bucket is full again.
    fn wait(&self) -> Duration {
        Duration::from_secs_f64(((self.cap / 2.0 - self.tokens).max(1.0) / self.rate).max(0.001))
    }
}

impl Client {
    pub(super) fn close_data(&mut self, cx: &mut Ctx<'_>) {
        if let Some(mut d) = self.data.take() {
            let _ = cx.registry.deregister(&mut d);
        }
        self.data_tls = None;
        self.data_tls_up = false;
        self.data_close_sent = false;
        self.data_connecting = false;
        self.data_readable = false;
        self.data_writable = false;
    }

    /// Drops the active-mode listener (after a failed operation, so that a
    /// late connection for it can never be taken for the next one's).
    pub(super) fn close_listener(&mut self, cx: &mut Ctx<'_>) {
        if let Some(mut l) = self.listener.take() {
            let _ = cx.registry.deregister(&mut l);
        }
        self.listener_ready = false;
        self.port_line.clear();
    }

    /// Sends EPSV/PASV, or PORT/EPRT naming the session's listener (opened
    /// on the control connection's local address if needed).
    pub(super) fn start_passive(&mut self, cx: &mut Ctx<'_>) -> Result<(), ErrorKind> {
        if let Some(op) = self.op.as_mut() {
            op.started = cx.now;
        }
        match cx.plan.mode {
            DataMode::Epsv => {
                self.send("EPSV");
                self.phase = Phase::Passive;
            }
            DataMode::Pasv => {
                self.send("PASV");
                self.phase = Phase::Passive;
            }
            DataMode::Port => {
                if self.listener.is_none() {
                    let local = self.ctrl.as_ref().and_then(|s| s.local_addr().ok()).ok_or(ErrorKind::Io)?;
                    let mut l = net::passive_listener(local.ip(), [0]).map_err(|_| ErrorKind::DataConnect)?;
                    let port = l.local_addr().map_err(|_| ErrorKind::DataConnect)?.port();
                    cx.registry
                        .register(&mut l, token(self.key, self.generation, Role::Listener), Interest::READABLE)
                        .map_err(|_| ErrorKind::Io)?;
                    self.listener = Some(l);
                    self.listener_ready = false;
                    self.port_line = match local.ip() {
                        IpAddr::V4(ip) => reply::port_command(ip, port),
                        IpAddr::V6(ip) => format!("EPRT |2|{ip}|{port}|"),
                    };
                }
                let line = std::mem::take(&mut self.port_line);
                self.send(&line);
                self.port_line = line;
                self.phase = Phase::PortSent;
            }
        }
        Ok(())
    }

    pub(super) fn connect_data(&mut self, to: SocketAddr, cx: &mut Ctx<'_>) -> Result<(), ErrorKind> {
        let mut s = TcpStream::connect(to).map_err(|_| ErrorKind::DataConnect)?;
        cx.registry
            .register(&mut s, token(self.key, self.generation, Role::Data), Interest::READABLE | Interest::WRITABLE)
            .map_err(|_| ErrorKind::Io)?;
        self.data = Some(s);
        self.data_connecting = true;
        self.data_readable = false;
        self.data_writable = false;
        // The command goes out at once: the server accepts it before or
        // after the data connection is ready.
        self.send_transfer(cx);
        Ok(())
    }

    pub(super) fn send_transfer(&mut self, cx: &mut Ctx<'_>) {
        let Some(kind) = self.op.as_ref().map(|o| o.kind) else { return };
        let plan = cx.plan;
        let line = match kind {
            OpKind::Retr => {
                let p = &plan.paths[(self.index + self.seq as usize) % plan.paths.len()];
                format!("RETR {p}")
            }
            OpKind::Stor => {
                format!("STOR {}.{}-{}-{}", plan.paths[0], std::process::id(), self.index, self.seq)
            }
            OpKind::List | OpKind::Login => format!("{} {}", plan.list_verb(), plan.dir),
        };
        self.seq += 1;
        self.send(&line);
        if let Some(op) = self.op.as_mut() {
            op.cmd_at = Some(cx.now);
        }
        self.phase = Phase::Transfer;
    }

    /// Moves data for the operation in flight. `Ok(None)`: stopped on the
    /// budget with more to do.
    pub(super) fn pump_data(&mut self, cx: &mut Ctx<'_>) -> Result<Option<bool>, ErrorKind> {
        let mut progress = false;
        if self.listener_ready && self.data.is_none() && self.phase == Phase::Transfer {
            if let Some(l) = &self.listener {
                match l.accept() {
                    Ok((mut s, _)) => {
                        cx.registry
                            .register(
                                &mut s,
                                token(self.key, self.generation, Role::Data),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .map_err(|_| ErrorKind::Io)?;
                        self.data = Some(s);
                        self.data_connecting = false;
                        self.data_readable = true;
                        self.data_writable = true;
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.listener_ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(ErrorKind::DataConnect),
                }
            }
        }
        let Some(d) = &self.data else { return Ok(Some(progress)) };
        if self.data_connecting {
            if !(self.data_readable || self.data_writable) {
                return Ok(Some(progress));
            }
            match d.take_error() {
                Ok(None) => {}
                _ => return Err(ErrorKind::DataConnect),
            }
            match d.peer_addr() {
                Ok(_) => self.data_connecting = false,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    self.data_readable = false;
                    self.data_writable = false;
                    return Ok(Some(progress));
                }
                Err(_) => return Err(ErrorKind::DataConnect),
            }
        }
        if cx.plan.tls.is_some() && !self.data_tls_up {
            if !self.data_handshake(cx)? {
                return Ok(Some(progress));
            }
            progress = true;
        }
        let stor = self.op.as_ref().is_some_and(|o| o.kind == OpKind::Stor);
        let r = if stor { self.send_data(cx) } else { self.recv_data(cx) }?;
        Ok(r.map(|p| p || progress))
    }

    /// PROT P: the data connection's handshake, begun once the 150 reply is
    /// in and offering the control connection's session. `Ok(true)` when
    /// plaintext can flow.
    fn data_handshake(&mut self, cx: &mut Ctx<'_>) -> Result<bool, ErrorKind> {
        if self.data_tls.is_none() {
            if !self.op.as_ref().is_some_and(|o| o.prelim) {
                return Ok(false);
            }
            let cfg = self.tls_cfg.as_ref().ok_or(ErrorKind::Tls)?;
            self.data_tls = Some(tls::connect(cfg, cx.plan.server.ip())?);
        }
        let (Some(sock), Some(t)) = (self.data.as_mut(), self.data_tls.as_deref_mut()) else { return Ok(false) };
        let mut io = TlsIo { tls: t, sock, readable: &mut self.data_readable, writable: &mut self.data_writable };
        if !io.handshake()? {
            return Ok(false);
        }
        self.data_tls_up = true;
        cx.stats.tls.data += 1;
        if t.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            cx.stats.tls.data_resumed += 1;
        }
        Ok(true)
    }

    /// Bytes the rate limit allows now; 0 arms the resume timer.
    /// `n` data bytes moved (either way): the rate bucket, the run's stats
    /// and the operation's byte count.
    fn count_moved(&mut self, n: usize, cx: &mut Ctx<'_>) {
        if let Some(b) = self.bucket.as_mut() {
            b.take(n);
        }
        cx.stats.moved(self.index, n as u64);
        if let Some(op) = self.op.as_mut() {
            op.bytes += n as u64;
        }
    }

    pub(super) fn allowance(&mut self, want: usize, cx: &Ctx<'_>) -> usize {
        let Some(rate) = cx.plan.rate else { return want };
        if self.resume_at.is_some() {
            return 0;
        }
        let b = self.bucket.get_or_insert_with(|| Bucket::new(rate, cx.now));
        let n = b.available(cx.now).min(want);
        if n == 0 {
            self.resume_at = Some(cx.now + b.wait());
        }
        n
    }

    pub(super) fn recv_data(&mut self, cx: &mut Ctx<'_>) -> Result<Option<bool>, ErrorKind> {
        let mut progress = false;
        let mut budget = DATA_BYTES_PER_TURN;
        let calls = if self.data_tls.is_some() { TLS_DATA_CALLS_PER_TURN } else { DATA_CALLS_PER_TURN };
        if !cx.plan.discard && self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        for _ in 0..calls {
            // Under TLS rustls may hold decrypted bytes whatever the flag.
            if !self.data_readable && self.data_tls.is_none() {
                return Ok(Some(progress));
            }
            if budget == 0 {
                break;
            }
            let want = budget.min(if cx.plan.discard { DISCARD_CHUNK } else { COPY_BUF });
            let allowed = self.allowance(want, cx);
            if allowed == 0 {
                return Ok(Some(progress));
            }
            let Some(d) = self.data.as_mut() else { return Ok(Some(progress)) };
            let r = match self.data_tls.as_deref_mut() {
                Some(t) => {
                    let (readable, writable) = (&mut self.data_readable, &mut self.data_writable);
                    let mut io = TlsIo { tls: t, sock: d, readable, writable };
                    if cx.plan.discard {
                        io.discard(allowed)
                    } else {
                        io::Read::read(&mut io, &mut self.buf[..allowed])
                    }
                }
                None if cx.plan.discard => sys::recv_discard(d.as_fd(), allowed),
                None => io::Read::read(d, &mut self.buf[..allowed]),
            };
            match classify(r) {
                Status::Done(n) => {
                    progress = true;
                    budget = budget.saturating_sub(n);
                    self.count_moved(n, cx);
                    if let Some(op) = self.op.as_mut() {
                        op.first_byte.get_or_insert(cx.now);
                    }
                }
                Status::WouldBlock => {
                    self.data_readable = false;
                    if self.data_tls.is_some() {
                        return Ok(Some(progress));
                    }
                }
                Status::Closed => {
                    self.close_data(cx);
                    if let Some(op) = self.op.as_mut() {
                        op.data_done = true;
                        op.first_byte.get_or_insert(cx.now);
                    }
                    self.check_complete(cx);
                    return Ok(Some(true));
                }
                Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Status::Error(e) => return Err(tls::error_kind(&e)),
            }
        }
        Ok(None)
    }

    pub(super) fn send_data(&mut self, cx: &mut Ctx<'_>) -> Result<Option<bool>, ErrorKind> {
        let mut progress = false;
        let mut budget = DATA_BYTES_PER_TURN;
        let calls = if self.data_tls.is_some() { TLS_DATA_CALLS_PER_TURN } else { DATA_CALLS_PER_TURN };
        for _ in 0..calls {
            if budget == 0 {
                break;
            }
            let Some(op) = self.op.as_ref() else { return Ok(Some(progress)) };
            if !op.prelim {
                return Ok(Some(progress)); // wait for 150
            }
            let left = cx.plan.size - op.bytes;
            if let (Some(t), Some(d)) = (self.data_tls.as_deref_mut(), self.data.as_mut()) {
                // What the server sends here (tickets, alerts, its close) is
                // read: bytes left unread would turn our close into a reset.
                let (readable, writable) = (&mut self.data_readable, &mut self.data_writable);
                if (TlsIo { tls: t, sock: d, readable, writable }).drain()? {
                    self.upload_closed(cx);
                    return Ok(Some(true));
                }
            }
            if left == 0 {
                return Ok(Some(self.end_upload(cx)? || progress));
            }
            if !self.data_writable {
                return Ok(Some(progress));
            }
            let want = (left.min(cx.pattern.len() as u64) as usize).min(budget);
            let allowed = self.allowance(want, cx);
            if allowed == 0 {
                return Ok(Some(progress));
            }
            let Some(d) = self.data.as_mut() else { return Ok(Some(progress)) };
            let r = match self.data_tls.as_deref_mut() {
                Some(t) => {
                    let (readable, writable) = (&mut self.data_readable, &mut self.data_writable);
                    match (TlsIo { tls: t, sock: d, readable, writable }).write_plain(&cx.pattern[..allowed]) {
                        Ok(0) => Status::WouldBlock,
                        Ok(n) => Status::Done(n),
                        Err(ErrorKind::Eof) => Status::Closed,
                        Err(k) => return Err(k),
                    }
                }
                None => classify(d.write(&cx.pattern[..allowed])),
            };
            match r {
                Status::Done(n) => {
                    progress = true;
                    budget = budget.saturating_sub(n);
                    self.count_moved(n, cx);
                }
                Status::WouldBlock => self.data_writable = false,
                Status::Closed => {
                    // The server dropped the upload; its reply says why.
                    self.upload_closed(cx);
                    return Ok(Some(true));
                }
                Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Status::Error(_) => return Err(ErrorKind::Io),
            }
        }
        Ok(None)
    }

    /// The upload's connection is gone (the server closed it, or all bytes
    /// are out and it was ours to close).
    fn upload_closed(&mut self, cx: &mut Ctx<'_>) {
        self.close_data(cx);
        if let Some(op) = self.op.as_mut() {
            op.data_done = true;
        }
        self.check_complete(cx);
    }

    /// All bytes are handed over. Plain TCP: closing ends the upload. TLS:
    /// close_notify ends it; the connection then stays open, drained, until
    /// the server closes it or the final reply ends the operation.
    fn end_upload(&mut self, cx: &mut Ctx<'_>) -> Result<bool, ErrorKind> {
        let (Some(t), Some(d)) = (self.data_tls.as_deref_mut(), self.data.as_mut()) else {
            self.upload_closed(cx);
            return Ok(true);
        };
        let (readable, writable) = (&mut self.data_readable, &mut self.data_writable);
        if !(TlsIo { tls: t, sock: d, readable, writable }).close(&mut self.data_close_sent)? {
            return Ok(false); // records still queued: wait for writable
        }
        match self.op.as_mut() {
            Some(op) if !op.data_done => op.data_done = true,
            _ => return Ok(false),
        }
        self.check_complete(cx);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_rate_up_to_its_cap() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1_000_000, t0);
        assert_eq!(b.available(t0), 100_000, "starts full: a tenth of a second");
        b.take(100_000);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.wait(), Duration::from_millis(50), "half the bucket at 1 MB/s");
        let got = b.available(t0 + Duration::from_millis(30));
        assert!((29_000..=30_000).contains(&got), "{got}");
        assert_eq!(b.available(t0 + Duration::from_secs(5)), 100_000, "capped");
        let mut slow = Bucket::new(1000, t0);
        assert_eq!(slow.available(t0), 1000, "a slow rate still allows a useful read");
    }
}
