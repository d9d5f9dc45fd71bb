//! One SFTP session in a worker's slab: a TCP connection carrying SSH
//! (`SshConn`, sans-I/O) whose one channel carries the SFTP engine. `drive`
//! runs it until it would block: socket → SSH → events (logins, see
//! `login.rs`) → channel → engine → channel → SSH → socket, in bounded loops.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Registry, Waker};

use super::engine::{Engine, Step};
use super::keys::SftpKeys;
use super::nowait::DiskWait;
use super::ssh::{SshConn, SshError, SshSettings};
use crate::auth::access::Access;
use crate::config::Config;
use crate::disk::DiskLink;
use crate::fs::jail::Jail;
use crate::io::net::{ProxyRead, canonical_ip};
use crate::limits;
use crate::pool::LoginVerdict;
use crate::rate::throttle::{Budget, Throttle};
use crate::services::{Outcome, Shared, Slot};

/// The worker-owned context an SFTP session runs in.
pub struct Cx<'a> {
    pub slot: Slot,
    pub shared: &'a Shared,
    /// The server root's jail (anonymous sessions).
    pub jail: &'a Jail,
    pub now: Instant,
    pub waker: &'a Arc<Waker>,
    pub verdicts: &'a Sender<LoginVerdict>,
    /// The worker's way to the disk helpers (None: `--disk-check none`).
    pub disk: Option<&'a Arc<DiskLink>>,
    pub keys: &'a SftpKeys,
    /// The worker's scratch buffer (socket reads, channel reads).
    pub buf: &'a mut Vec<u8>,
}

/// Where the login stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Key exchange and authentication requests.
    Auth,
    /// A password is being checked on a helper thread.
    Verifying,
    /// A login failed: the refusal goes out at `until` (a growing delay),
    /// or the connection closes then (`close`).
    Failed { until: Instant, close: bool },
    /// Logged in.
    Open,
}

pub struct SftpSession {
    pub id: u64,
    pub generation: u16,
    pub worker: usize,
    pub sock: TcpStream,
    /// The client's address (IPv4-mapped addresses in their IPv4 form;
    /// with `--proxy-protocol`, the one its header gave).
    pub peer: SocketAddr,
    /// Counted in the admission limits (false while a PROXY header is awaited).
    pub admitted: bool,
    /// `--proxy-protocol`: the header has not been read yet (nothing is sent).
    awaiting_proxy: bool,
    /// The load balancer the connection came through.
    proxy: Option<SocketAddr>,
    pub readable: bool,
    pub writable: bool,
    /// Time of the live timer-heap entry for this session, if any.
    pub armed: Option<Instant>,
    /// Already in the worker's run queue.
    pub queued: bool,
    pub metrics: &'static crate::obs::metrics::WorkerMetrics,
    pub(super) ssh: SshConn,
    /// Bytes read from the socket that SSH did not take yet (bounded by one read).
    inbuf: Vec<u8>,
    sock_eof: bool,
    pub(super) state: State,
    /// Who logged in, until the subsystem starts the engine with it.
    pub(super) access: Option<Access>,
    engine: Option<Box<Engine>>,
    /// The name of the last login attempt (for logs).
    pub(super) user: String,
    pub(super) login_failures: u32,
    pub(super) connected_at: Instant,
    last_active: Instant,
    chan_eof: bool,
    finished: bool,
    disk: DiskWait,
    pub(super) transfers: u64,
    pub(super) bytes: u64,
    /// Set when the session must end (with why, for the log).
    pub(super) end: Option<String>,
    /// `--max-rate` / `--max-rate-total` (None: unlimited): every byte of
    /// the SFTP channel, both ways, is paced in user space (SSH encrypts it,
    /// so the kernel's pacing of FTP downloads cannot apply).
    pub throttle: Option<Throttle>,
}

impl SftpSession {
    /// A new connection: SSH's version line and key exchange offer are queued.
    pub fn new(
        id: u64,
        generation: u16,
        sock: TcpStream,
        peer: SocketAddr,
        now: Instant,
        worker: usize,
        keys: &SftpKeys,
    ) -> Result<SftpSession, SshError> {
        let s = SftpSession::bare(id, generation, sock, peer, now, worker, keys)?;
        s.log_connect();
        Ok(s)
    }

    /// A connection from a trusted load balancer (`from`), before its PROXY
    /// header: not admitted, nothing sent, nothing logged yet.
    pub fn awaiting_proxy(
        generation: u16,
        sock: TcpStream,
        from: SocketAddr,
        now: Instant,
        worker: usize,
        keys: &SftpKeys,
    ) -> Result<SftpSession, SshError> {
        let mut s = SftpSession::bare(0, generation, sock, from, now, worker, keys)?;
        s.admitted = false;
        s.awaiting_proxy = true;
        Ok(s)
    }

    fn bare(
        id: u64,
        generation: u16,
        sock: TcpStream,
        peer: SocketAddr,
        now: Instant,
        worker: usize,
        keys: &SftpKeys,
    ) -> Result<SftpSession, SshError> {
        let ssh = SshConn::new(keys.host.clone(), SshSettings::default())?;
        Ok(SftpSession {
            id,
            generation,
            worker,
            sock,
            peer,
            admitted: true,
            awaiting_proxy: false,
            proxy: None,
            readable: true,
            writable: true,
            armed: None,
            queued: false,
            metrics: &crate::obs::metrics::DETACHED,
            ssh,
            inbuf: Vec::new(),
            sock_eof: false,
            state: State::Auth,
            access: None,
            engine: None,
            user: String::new(),
            login_failures: 0,
            connected_at: now,
            last_active: now,
            chan_eof: false,
            finished: false,
            disk: DiskWait::default(),
            transfers: 0,
            bytes: 0,
            end: None,
            throttle: None,
        })
    }

    /// The moment this session must be looked at again.
    pub fn deadline(&self, cfg: &Config) -> Instant {
        let due = match self.state {
            _ if self.awaiting_proxy => self.connected_at + limits::PROXY_HEADER_TIMEOUT,
            State::Auth | State::Verifying => self.connected_at + cfg.login_timeout,
            State::Failed { until, .. } => until,
            State::Open => self.last_active + cfg.idle_timeout,
        };
        // A rate-limited channel waiting for its bucket runs again then.
        self.throttle.as_ref().and_then(|t| t.until).map_or(due, |t| t.min(due))
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            _ if self.awaiting_proxy && cx.now >= self.connected_at + limits::PROXY_HEADER_TIMEOUT => {
                self.finish("no PROXY header in time")
            }
            _ if self.awaiting_proxy => {}
            State::Failed { close: true, .. } => self.finish("too many failed logins"),
            State::Failed { close: false, .. } => {
                self.state = State::Auth;
                if let Err(e) = self.ssh.resume_auth(false) {
                    self.finish(&e.to_string());
                }
            }
            State::Auth | State::Verifying if cx.now >= self.connected_at + cx.shared.config.login_timeout => {
                self.finish("login timeout")
            }
            State::Open if cx.now >= self.last_active + cx.shared.config.idle_timeout => self.finish("idle timeout"),
            _ => {}
        }
    }

    /// Marks the session to end with `why` (the next drive closes it).
    pub(super) fn finish(&mut self, why: &str) {
        if self.end.is_none() {
            self.end = Some(why.to_string());
        }
    }

    /// A disk helper finished job `seq`: true when the session should run.
    pub fn disk_done(&mut self, seq: u64, outcome: crate::disk::Outcome) -> bool {
        self.disk.done(seq, outcome)
    }

    /// Runs the session until it would block, must close, or used its budget.
    pub fn drive(&mut self, cx: &mut Cx<'_>) -> Outcome {
        for _ in 0..limits::SFTP_STEPS_PER_TURN {
            if cx.shared.draining() && self.end.is_none() && self.idle() {
                self.finish("server shutting down");
            }
            if self.end.is_some() {
                return Outcome::Close;
            }
            if self.awaiting_proxy {
                if let Some(outcome) = self.await_proxy(cx) {
                    return outcome;
                }
            }
            match self.step(cx) {
                Ok(true) => {}
                Ok(false) if self.sock_eof => {
                    self.finish("client closed the connection");
                    return Outcome::Close;
                }
                Ok(false) => return Outcome::Idle,
                Err(e) => {
                    self.finish(&e);
                    return Outcome::Close;
                }
            }
        }
        if self.end.is_some() { Outcome::Close } else { Outcome::Yield }
    }

    /// Nothing under way that a drain should wait for.
    fn idle(&self) -> bool {
        self.state != State::Open
            || (!self.disk.waiting()
                && self.engine.as_ref().is_none_or(|e| e.open_handles() == 0 && e.output().is_empty()))
    }

    /// One pass over the pipeline; `Ok(true)` when anything moved.
    fn step(&mut self, cx: &mut Cx<'_>) -> Result<bool, String> {
        let mut progress = self.read_in(cx).map_err(|e| e.to_string())?;
        while let Some(ev) = self.ssh.poll().map_err(|e| e.to_string())? {
            progress = true;
            self.on_event(ev, cx).map_err(|e| e.to_string())?;
            if self.end.is_some() {
                return Ok(true);
            }
        }
        progress |= self.run_engine(cx).map_err(|e| e.to_string())?;
        progress |= self.write_out()?;
        Ok(progress)
    }

    /// Socket → SSH: what waits from the last read first, then one read.
    fn read_in(&mut self, cx: &mut Cx<'_>) -> Result<bool, SshError> {
        let mut progress = false;
        if !self.inbuf.is_empty() && self.ssh.wants_input() {
            let n = self.ssh.feed(&self.inbuf)?;
            self.inbuf.drain(..n);
            if self.inbuf.is_empty() {
                self.inbuf = Vec::new();
            }
            progress |= n > 0;
        }
        if !self.inbuf.is_empty() || !self.readable || self.sock_eof || !self.ssh.wants_input() {
            // Not reading now (the pipeline is full), yet the socket had news: a peer that
            // reset the connection ends the session now, not at the idle timeout.
            if self.readable && !self.sock_eof {
                if let Some(e) = self.sock.take_error().unwrap_or(None) {
                    self.finish(&format!("connection lost: {e}"));
                    return Ok(true);
                }
            }
            return Ok(progress);
        }
        cx.buf.resize(limits::SFTP_READ_BUF, 0);
        match self.sock.read(cx.buf) {
            Ok(0) => {
                self.sock_eof = true;
                self.readable = false;
                self.ssh.close_input()?;
                Ok(true)
            }
            Ok(n) => {
                self.last_active = cx.now;
                let used = self.ssh.feed(&cx.buf[..n])?;
                self.inbuf.extend_from_slice(&cx.buf[used..n]);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Ok(progress)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => {
                self.finish(&format!("read error: {e}"));
                Ok(true)
            }
        }
    }

    /// SSH → socket.
    fn write_out(&mut self) -> Result<bool, String> {
        let mut progress = false;
        while self.writable {
            let out = self.ssh.output();
            if out.is_empty() {
                break;
            }
            match self.sock.write(out) {
                Ok(n) => {
                    self.ssh.consume_output(n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("connection lost: {e}")),
            }
        }
        if progress && self.state == State::Open {
            self.last_active = Instant::now();
        }
        Ok(progress)
    }

    /// The subsystem started: the engine, with the logged-in user's access.
    pub(super) fn start_engine(&mut self, cx: &Cx<'_>) -> Result<(), String> {
        if self.engine.is_some() {
            return Ok(());
        }
        let access = self.access.take().ok_or("sftp subsystem before a login")?;
        let cfg = &cx.shared.config;
        let opts = super::engine::Options {
            atomic_uploads: cfg.atomic_uploads,
            fsync_uploads: cfg.fsync_uploads,
            local_time: cfg.local_time,
        };
        let engine = Engine::new(access, cx.jail, opts).map_err(|e| format!("sftp: cannot open the jail: {e}"))?;
        self.engine = Some(Box::new(engine));
        Ok(())
    }

    /// The logged-in user is anonymous (for the xferlog).
    pub(super) fn engine_anonymous(&self) -> bool {
        self.engine.as_ref().is_some_and(|e| e.access().anonymous)
    }

    /// Logs what the engine reports (transfers, changes to the tree).
    fn log_engine_events(&mut self, now: Instant) {
        while let Some(ev) = self.engine.as_deref_mut().and_then(Engine::take_event) {
            self.log_engine_event(ev, now);
        }
    }

    pub(super) fn channel_eof(&mut self) {
        self.chan_eof = true;
    }

    /// Channel ↔ engine: requests in (bounded by the engine's input room,
    /// which closes the SSH window), requests run, responses out (bounded by
    /// `writable()`), then the channel's end once the client sent EOF.
    fn run_engine(&mut self, cx: &mut Cx<'_>) -> Result<bool, SshError> {
        let Some(engine) = self.engine.as_deref_mut() else { return Ok(false) };
        let mut progress = false;
        loop {
            // Under a rate limit an empty bucket stops the reads: the data
            // stays in SSH, whose window then stops the client.
            let room = allowed(&mut self.throttle, engine.input_room().min(limits::SFTP_READ_BUF), cx.now);
            if room == 0 {
                break;
            }
            cx.buf.resize(room, 0);
            let n = self.ssh.read_channel(&mut cx.buf[..room])?;
            if n == 0 {
                break;
            }
            used(&mut self.throttle, n);
            engine.feed(&cx.buf[..n]);
            progress = true;
        }
        if !self.disk.waiting() {
            let auth = cx.shared.auth();
            let mut disk = self.disk.disk(cx.disk.is_some());
            match engine.process(&auth, &mut disk) {
                Step::Idle | Step::OutputFull => {}
                Step::Yield => progress = true,
                Step::NeedDisk(need) => {
                    let handle = match need {
                        super::engine::NeedDisk::Read { handle, .. } | super::engine::NeedDisk::Sync { handle } => {
                            handle
                        }
                    };
                    self.disk.submit(need, engine.file(handle), cx.disk, cx.slot);
                    // Without a helper job the request runs in place next pass.
                    progress |= !self.disk.waiting();
                }
                Step::Closed => self.chan_eof = true,
            }
        }
        loop {
            let out = engine.output();
            // Under a rate limit the responses wait for the bucket (on the
            // worker's timer heap, see `deadline`).
            let len = allowed(&mut self.throttle, out.len(), cx.now);
            if len == 0 {
                break;
            }
            let n = self.ssh.write_channel(&out[..len])?;
            if n == 0 {
                break;
            }
            used(&mut self.throttle, n);
            engine.consume_output(n);
            progress = true;
        }
        if let Some(t) = &mut self.throttle {
            if t.until.is_none() && engine.open_handles() == 0 && engine.output().is_empty() {
                // Between transfers: unused credit goes back to the buckets
                // and the session stops counting among the total's sharers.
                // Not while it waits for the bucket: channel data may be
                // left unread, and only that wait's timer will run it again.
                t.end();
            }
        }
        self.log_engine_events(cx.now);
        let Some(engine) = self.engine.as_deref_mut() else { return Ok(progress) };
        if self.chan_eof && !self.finished && engine.output().is_empty() && !self.disk.waiting() {
            engine.shutdown();
            let status = u32::from(engine.closed().is_some_and(|c| c != "session ended"));
            self.log_engine_events(cx.now);
            self.ssh.finish_channel(status)?;
            self.finished = true;
            progress = true;
        } else if let Some(e) = self.engine.as_deref_mut() {
            e.trim();
        }
        Ok(progress)
    }

    /// Releases the socket and the engine's handles (logging unfinished transfers).
    pub fn close(&mut self, registry: &Registry) {
        if let Some(engine) = self.engine.as_deref_mut() {
            engine.shutdown();
            self.log_engine_events(Instant::now());
        }
        self.engine = None;
        let _ = registry.deregister(&mut self.sock);
        let why = self.end.take().unwrap_or_else(|| "closed".into());
        if self.admitted {
            self.log_end(&why);
        } else if self.awaiting_proxy {
            crate::log::warn(format_args!("dropped sftp connection from {}: {why}", self.peer));
        }
    }

    /// `--proxy-protocol`: reads the header before anything else (the SSH
    /// version line is sent only after it). `None`: read, the real client
    /// admitted; carry on as a normal session.
    fn await_proxy(&mut self, cx: &mut Cx<'_>) -> Option<Outcome> {
        if !self.readable {
            return Some(Outcome::Idle);
        }
        let source = match crate::io::net::read_proxy_header(&self.sock) {
            // The rest arrives as a new readable edge (or the login timeout
            // drops the connection).
            ProxyRead::Wait => {
                self.readable = false;
                return Some(Outcome::Idle);
            }
            ProxyRead::Failed(why) => {
                self.finish(&why);
                return Some(Outcome::Close);
            }
            ProxyRead::Done(source) => source,
        };
        let balancer = self.peer;
        let real = source.map_or(balancer, |s| SocketAddr::new(canonical_ip(s.ip()), s.port()));
        match cx.shared.admit(real.ip(), cx.now) {
            Ok(id) => {
                self.id = id;
                self.admitted = true;
                self.awaiting_proxy = false;
                self.peer = real;
                self.proxy = Some(balancer);
                crate::obs::metrics::add(&self.metrics.sessions[crate::obs::metrics::SFTP], 1);
                self.log_connect();
                None
            }
            Err(why) => {
                crate::obs::metrics::refused(self.metrics, why as usize);
                let text = why.text();
                let mut ev = crate::log::Event::new(crate::log::Level::Info, "refused");
                (ev.peer, ev.port, ev.reason) = (Some(real.ip()), Some(real.port()), Some(text));
                crate::log::event(&ev, format_args!("refused sftp {real} via {balancer}: {text}"));
                // Closed at once, as an unproxied refusal is; logged here only.
                self.awaiting_proxy = false;
                self.finish(text);
                Some(Outcome::Close)
            }
        }
    }

    /// The load balancer this session came through (`--proxy-protocol`).
    pub fn proxy(&self) -> Option<SocketAddr> {
        self.proxy
    }
}

/// At most `want` bytes, as far as the rate limit allows now (0: wait).
fn allowed(throttle: &mut Option<Throttle>, want: usize, now: Instant) -> usize {
    match throttle {
        _ if want == 0 => 0,
        None => want,
        // SFTP bytes are always paced here (the `upload` bucket of FTP).
        Some(t) => match t.budget(true, u64::MAX, now) {
            Budget::Bytes(n) => want.min(usize::try_from(n).unwrap_or(usize::MAX)),
            Budget::Wait(_) => 0,
        },
    }
}

/// `n` bytes moved under the rate limit.
fn used(throttle: &mut Option<Throttle>, n: usize) {
    if let Some(t) = throttle {
        t.used(n as u64);
    }
}
