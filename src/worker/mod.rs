//! One worker thread: its own `mio::Poll`, listening sockets (SO_REUSEPORT),
//! slab of sessions, passive port slice and timer heap. Dispatches readiness
//! by token, accepts, drives sessions, fires deadlines.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::mpsc::{self, Receiver, Sender};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

mod conn;

use crate::fs::jail::Jail;
use crate::ftp::{Cx, Outcome, Session};
use crate::io::net;
use crate::io::spare::{self, SpareFd};
use crate::limits;
use crate::obs::http::MetricsServer;
use crate::obs::metrics::{self, WorkerMetrics};
use crate::pool::LoginVerdict;
use crate::services::slot::{GEN_MASK, KEY_SHIFT, decode};
use crate::services::{Refusal, Role, Shared, Slot};
use crate::sftp::keys::SftpKeys;
use crate::turns::{self, BulkShare, Lane, RunQueue};
pub use conn::Listen;
use conn::{Conn, sftp_cx};

/// The context a session runs in, borrowed field by field from the worker
/// (so the slab of sessions stays borrowable beside it).
macro_rules! session_cx {
    ($w:ident, $slot:expr, $now:expr) => {
        Cx {
            registry: $w.poll.registry(),
            slot: $slot,
            cfg: &$w.shared.config,
            shared: &$w.shared,
            jail: &$w.jail,
            now: $now,
            pasv: &mut $w.pasv,
            line: &mut $w.line,
            worker: $w.id,
            waker: &$w.waker,
            verdicts: &$w.verdict_tx,
            wakeups: &$w.wake_tx,
        }
    };
}

/// Tokens with this role belong to the worker's control listeners.
const ROLE_SERVER: usize = 3;
/// The token of the worker's waker (login verdicts and disk completions from
/// the helper threads).
const WAKER: Token = Token(usize::MAX);
/// ROLE_SERVER keys from here on are worker 0's metrics listener (this key)
/// and its scrape connections (the keys after it).
const METRICS_KEY: usize = 1 << 24;

fn metrics_token(n: Option<usize>) -> Token {
    Token(((METRICS_KEY + n.map_or(0, |n| n + 1)) << KEY_SHIFT) | ROLE_SERVER)
}

pub struct Worker {
    id: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Per listener: what it serves (FTP, implicit FTPS, SFTP).
    kinds: Vec<Listen>,
    sessions: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize, u16)>>,
    /// Sessions to drive again without waiting for an event: bulk transfers
    /// and sessions that stopped on a budget, not on WouldBlock (each flagged
    /// `queued` while listed, so listed once). See `turns.rs`.
    run_queue: RunQueue<Slot>,
    bulk_share: BulkShare,
    accept_pending: Vec<bool>,
    accept_paused_until: Option<Instant>,
    /// The drain has begun here: listeners closed, sessions told.
    drained: bool,
    /// Given up at EMFILE/ENFILE so waiting clients can be told 421 (see io::spare).
    spare: SpareFd,
    next_gen: u16,
    jail: Jail,
    shared: Arc<Shared>,
    /// This worker's slice of the passive ports, and its cursor.
    pasv: crate::pasv_ports::PasvSlice,
    line: Vec<u8>,
    waker: Arc<Waker>,
    verdict_tx: Sender<LoginVerdict>,
    verdict_rx: Receiver<LoginVerdict>,
    /// This worker's way to the disk helpers (None: `--disk-check none`).
    disk_link: Option<Arc<crate::disk::DiskLink>>,
    disk_rx: Receiver<crate::disk::DiskDone>,
    /// Sessions a helper thread finished work for (listing fills): drive them.
    wake_tx: Sender<Slot>,
    wake_rx: Receiver<Slot>,
    metrics: &'static WorkerMetrics,
    /// --metrics-listen, on worker 0 only.
    metrics_http: Option<MetricsServer>,
    /// The SSH keys, when SFTP is served (see `set_sftp`).
    sftp: Option<Arc<SftpKeys>>,
    /// Scratch space for SFTP sessions' socket and channel reads.
    sftp_buf: Vec<u8>,
}

impl Worker {
    /// Creates worker `id`, binding its own listener on each address. Worker
    /// 0 claims the addresses (it fails if anything already listens there,
    /// see `net::control_listener`); the others join its SO_REUSEPORT group,
    /// or that of the sockets systemd passed. Port 0 must be resolved by the
    /// caller (bind worker 0 first, then reuse its ports) so all workers
    /// share one port per address.
    pub fn bind(id: usize, shared: Arc<Shared>, addrs: &[(SocketAddr, Listen)]) -> io::Result<Worker> {
        let claim = if id == 0 { net::Claim::First } else { net::Claim::Join };
        let mut listeners = Vec::with_capacity(addrs.len());
        for (addr, kind) in addrs {
            let l =
                net::control_listener(*addr, shared.config.backlog, claim).map_err(|e| net::listen_error(*addr, e))?;
            listeners.push((l, *kind));
        }
        Worker::from_listeners(id, shared, listeners)
    }

    /// Creates worker `id` around listening sockets it is given (socket
    /// activation), each with what it serves.
    pub fn from_listeners(id: usize, shared: Arc<Shared>, given: Vec<(TcpListener, Listen)>) -> io::Result<Worker> {
        let cfg = &shared.config;
        let poll = Poll::new()?;
        let mut listeners = Vec::with_capacity(given.len());
        let mut kinds = Vec::with_capacity(given.len());
        for (i, (mut l, kind)) in given.into_iter().enumerate() {
            poll.registry().register(&mut l, Token((i << KEY_SHIFT) | ROLE_SERVER), Interest::READABLE)?;
            listeners.push(l);
            kinds.push(kind);
        }
        let jail = Jail::open(&cfg.root, cfg.deny_dotfiles)
            .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", cfg.root.display())))?;
        let pasv = cfg.pasv_ports.slice(id, cfg.workers);
        let n = listeners.len();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        shared.wakers.lock().unwrap_or_else(|p| p.into_inner()).push(waker.clone());
        let (verdict_tx, verdict_rx) = mpsc::channel();
        let (wake_tx, wake_rx) = mpsc::channel();
        let metrics_http = match cfg.metrics_listen {
            Some(a) if id == 0 => Some(MetricsServer::bind(a, poll.registry(), metrics_token)?),
            _ => None,
        };
        let wm = shared.metrics.get(id).unwrap_or(&metrics::DETACHED);
        let (disk_link, disk_rx) = shared.disk.link(waker.clone(), wm);
        Ok(Worker {
            disk_link,
            disk_rx,
            metrics: wm,
            metrics_http,
            waker,
            verdict_tx,
            verdict_rx,
            wake_tx,
            wake_rx,
            id,
            poll,
            listeners,
            kinds,
            sessions: Slab::with_capacity(64),
            timers: BinaryHeap::new(),
            run_queue: RunQueue::default(),
            bulk_share: BulkShare::new(shared.config.bulk_share, Instant::now()),
            accept_pending: vec![true; n],
            accept_paused_until: None,
            drained: false,
            spare: SpareFd::new(),
            next_gen: 0,
            jail,
            pasv,
            shared,
            line: Vec::with_capacity(limits::MAX_LINE),
            sftp: None,
            sftp_buf: Vec::new(),
        })
    }

    /// Serves SFTP on the `Listen::Sftp` listeners with these keys.
    pub fn set_sftp(&mut self, keys: Arc<SftpKeys>) {
        self.sftp = Some(keys);
    }

    /// Duplicates of this worker's listening sockets (same open sockets), for
    /// workers that share them instead of binding their own.
    pub fn try_clone_listeners(&self) -> io::Result<Vec<(TcpListener, Listen)>> {
        use std::os::fd::AsFd;
        let dup = |l: &TcpListener| -> io::Result<TcpListener> {
            Ok(TcpListener::from_std(std::net::TcpListener::from(l.as_fd().try_clone_to_owned()?)))
        };
        self.listeners.iter().zip(&self.kinds).map(|(l, t)| Ok((dup(l)?, *t))).collect()
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> io::Result<Vec<(SocketAddr, Listen)>> {
        self.listeners.iter().zip(&self.kinds).map(|(l, t)| Ok((l.local_addr()?, *t))).collect()
    }

    /// The metrics endpoint's address (worker 0 with --metrics-listen).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_http.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// The event loop; returns only on a fatal poll error.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(limits::EVENTS_CAPACITY);
        let mut to_drive: Vec<Slot> = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            to_drive.clear();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.take_verdicts(now, &mut to_drive);
                    self.take_disk(now, &mut to_drive);
                    self.take_wakeups(&mut to_drive);
                    continue;
                }
                let (key, generation, role) = decode(ev.token());
                if role == ROLE_SERVER {
                    if key >= METRICS_KEY {
                        if let Some(m) = &mut self.metrics_http {
                            m.on_event((key > METRICS_KEY).then(|| key - METRICS_KEY - 1));
                        }
                        continue;
                    }
                    if let Some(p) = self.accept_pending.get_mut(key) {
                        *p = true;
                    }
                    continue;
                }
                let Some(c) = self.sessions.get_mut(key) else { continue };
                if c.generation() != generation {
                    continue; // stale: the slot was freed and reused
                }
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                match c {
                    Conn::Ftp(s) if role == Role::Ctrl as usize => {
                        s.ctrl_readable |= readable;
                        s.ctrl_writable |= writable;
                    }
                    Conn::Ftp(s) => s.data.ready = true,
                    Conn::Sftp(s) => {
                        s.readable |= readable;
                        s.writable |= writable;
                    }
                }
                to_drive.push(Slot { key, generation });
            }
            if !self.drained && self.shared.draining() {
                self.begin_drain(&mut to_drive);
            }
            self.fire_timers(now, &mut to_drive);
            self.accept_all(now, &mut to_drive);
            // Fair turns: the sessions with news first, then the bulk ones
            // for one slice.
            let mut small = false;
            for &slot in &to_drive {
                let Some(s) = self.sessions.get_mut(slot.key) else { continue };
                if s.generation() != slot.generation {
                    continue;
                }
                match turns::lane(*s.queued(), s.bulk()) {
                    Lane::Now => {
                        small = true;
                        if self.drive(slot, now) {
                            self.run_queue.push(slot);
                        }
                    }
                    Lane::Queue => {
                        *s.queued() = true;
                        self.run_queue.push(slot);
                    }
                    Lane::Queued => {}
                }
            }
            if small {
                self.bulk_share.small(now);
            }
            self.run_bulk(now);
            if let Some(m) = &mut self.metrics_http {
                let shared = &self.shared;
                m.turn(self.poll.registry(), now, &|| {
                    metrics::render(shared.metrics, shared.session_count(), crate::log::dropped())
                });
            }
            self.metrics.turn(now.elapsed());
        }
    }

    /// SIGTERM: close the listeners (the kernel refuses new connections from
    /// here on) and look at every session once; idle ones end with 421.
    fn begin_drain(&mut self, to_drive: &mut Vec<Slot>) {
        self.drained = true;
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        self.listeners.clear();
        self.kinds.clear();
        self.accept_pending.clear();
        self.accept_paused_until = None;
        to_drive.extend(self.sessions.iter().map(|(key, s)| Slot { key, generation: s.generation() }));
    }

    /// Hands login verdicts from the helper threads to their sessions.
    fn take_verdicts(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        while let Ok(v) = self.verdict_rx.try_recv() {
            let Some(c) = self.sessions.get_mut(v.slot.key) else { continue };
            if c.generation() != v.slot.generation {
                continue; // the session is gone; its slot was reused
            }
            match c {
                Conn::Ftp(s) => s.login_verdict(v.access, &self.shared, now),
                Conn::Sftp(s) => s.login_verdict(v.access, &self.shared, now),
            }
            to_drive.push(v.slot);
        }
    }

    /// Hands disk helper completions to their transfers. One for a session
    /// that is gone (its slot reused) or a transfer that ended is dropped.
    fn take_disk(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        use crate::disk::Outcome;
        while let Ok(d) = self.disk_rx.try_recv() {
            let i = match &d.outcome {
                Outcome::Done => 0,
                Outcome::Cancelled => 1,
                Outcome::Failed(_) => 2,
            };
            metrics::add(&self.metrics.disk_done[i], 1);
            let Some(c) = self.sessions.get_mut(d.slot.key) else { continue };
            if c.generation() != d.slot.generation {
                continue;
            }
            let run = match c {
                Conn::Ftp(s) => s.disk_done(d.seq, d.outcome, now),
                Conn::Sftp(s) => s.disk_done(d.seq, d.outcome),
            };
            if run {
                to_drive.push(d.slot);
            }
        }
    }

    /// Drives the sessions whose helper work is done (their data channel
    /// looks again at its job). A slot freed and reused meanwhile is skipped.
    fn take_wakeups(&mut self, to_drive: &mut Vec<Slot>) {
        while let Ok(slot) = self.wake_rx.try_recv() {
            if let Some(Conn::Ftp(s)) = self.sessions.get_mut(slot.key) {
                if s.generation == slot.generation {
                    s.data.ready = true;
                    to_drive.push(slot);
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        // Bulk transfers waiting in the run queue: poll without sleeping, or
        // (their share used up while small operations are active) sleep until
        // their credit is back.
        let bulk = (!self.run_queue.is_empty()).then(|| self.bulk_share.wait(now));
        if bulk == Some(Duration::ZERO) {
            return bulk;
        }
        let mut next = self.timers.peek().map(|Reverse((t, _, _))| *t);
        if let Some(p) = self.accept_paused_until {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        if let Some(p) = self.metrics_http.as_ref().and_then(|m| m.next_deadline()) {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        // Round up to the next millisecond so a deadline is never missed by
        // a poll that wakes a hair early.
        let next = next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1));
        match (next, bulk) {
            (Some(n), Some(b)) => Some(n.min(b)),
            (n, b) => n.or(b),
        }
    }

    fn fire_timers(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        while let Some(Reverse((t, key, generation))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.sessions.get_mut(key) else { continue };
            if c.generation() != generation || *c.armed() != Some(t) {
                continue; // stale entry: a newer one is armed
            }
            *c.armed() = None;
            let dl = c.deadline(&self.shared.config);
            if dl <= now {
                let slot = Slot { key, generation };
                match c {
                    Conn::Ftp(s) => s.on_timeout(&mut session_cx!(self, slot, now)),
                    Conn::Sftp(s) => {
                        if let Some(keys) = &self.sftp {
                            s.on_timeout(&mut sftp_cx!(self, keys, slot, now));
                        }
                    }
                }
                to_drive.push(slot);
            } else {
                *c.armed() = Some(dl);
                self.timers.push(Reverse((dl, key, generation)));
            }
        }
    }

    fn accept_all(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        if let Some(until) = self.accept_paused_until {
            if now < until {
                return;
            }
            self.accept_paused_until = None;
            self.accept_pending.iter_mut().for_each(|p| *p = true);
        }
        for i in 0..self.listeners.len() {
            if !self.accept_pending[i] {
                continue;
            }
            let mut budget = limits::ACCEPTS_PER_TURN;
            loop {
                if budget == 0 {
                    // More may be queued: come back next turn without an event.
                    self.accept_paused_until = Some(now);
                    break;
                }
                budget -= 1;
                match self.listeners[i].accept() {
                    Ok((stream, peer)) => {
                        let admitted = match self.kinds[i] {
                            Listen::Sftp => self.admit_sftp(stream, peer, now),
                            kind => self.admit(stream, peer, now, kind == Listen::Implicit),
                        };
                        if let Some(slot) = admitted {
                            to_drive.push(slot);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.accept_pending[i] = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED) | Some(libc::EPROTO)) => continue,
                    Err(e) => {
                        // EMFILE/ENFILE: the reserve descriptor lets the waiting
                        // clients hear 421 instead of hanging in the backlog.
                        let shed = if spare::out_of_fds(&e) && self.spare.release() {
                            let n = self.shed(i);
                            self.spare.restore();
                            Some(n)
                        } else {
                            self.spare.restore();
                            None
                        };
                        match shed {
                            // Nothing was waiting (accept reports EMFILE before it looks).
                            Some(0) => {}
                            Some(n) => crate::log::warn(format_args!(
                                "worker {}: accept: {e}; told {n} client(s) 421; pausing accepts",
                                self.id
                            )),
                            None => crate::log::warn(format_args!("worker {}: accept: {e}; pausing accepts", self.id)),
                        }
                        // EMFILE/ENFILE/ENOBUFS: stop accepting for a while
                        // rather than spin on a listener that stays readable.
                        self.accept_paused_until = Some(now + limits::ACCEPT_PAUSE);
                        return;
                    }
                }
            }
        }
    }

    /// With the spare descriptor released: accepts what waits on listener `i` (bounded), tells
    /// each `421` and closes it. Returns how many were refused.
    fn shed(&mut self, i: usize) -> usize {
        let mut n = 0;
        for _ in 0..limits::ACCEPTS_PER_TURN {
            match self.listeners[i].accept() {
                Ok((mut stream, peer)) => {
                    if self.kinds[i] != Listen::Sftp {
                        let _ = stream.write(limits::OUT_OF_FDS_REPLY.as_bytes());
                    }
                    crate::log::info(format_args!("refused {peer}: out of file descriptors"));
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending[i] = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED) | Some(libc::EPROTO)) => continue,
                Err(_) => break,
            }
        }
        n
    }

    fn admit(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: SocketAddr,
        now: Instant,
        implicit: bool,
    ) -> Option<Slot> {
        let ip = net::canonical_ip(peer.ip());
        // --proxy-protocol: admission waits for the header's real address.
        let proxied = self.shared.config.proxy_protocol;
        let admitted = if !proxied {
            self.shared.admit(ip, now)
        } else if self.sessions.len() >= self.shared.config.max_clients {
            // Connections still owing their header are not sessions yet, but
            // they hold a slot: a worker never holds more than --max-clients.
            Err(Refusal::MaxClients)
        } else {
            crate::ftp::proxied::screen(&self.shared.config, ip)
        };
        let id = match admitted {
            Ok(id) => id,
            Err(why) => {
                metrics::refused(self.metrics, why as usize);
                let hint = why.hint(&self.shared.config);
                let why = why.text();
                let _ = stream.write(format!("421 {why}\r\n").as_bytes());
                let mut ev = crate::log::Event::new(crate::log::Level::Info, "refused");
                (ev.peer, ev.port, ev.reason) = (Some(ip), Some(peer.port()), Some(why));
                crate::log::event(&ev, format_args!("refused {peer}: {why}{hint}"));
                return None;
            }
        };
        let release = |shared: &Shared| {
            if !proxied {
                shared.release(ip);
            }
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => {
                release(&self.shared);
                return None;
            }
        };
        let cfg = &self.shared.config;
        let _ = net::tune_control(&stream, cfg.nodelay);
        let entry = self.sessions.vacant_entry();
        let generation = self.next_gen;
        self.next_gen = (self.next_gen + 1) & GEN_MASK as u16;
        let slot = Slot { key: entry.key(), generation };
        if let Err(e) =
            self.poll.registry().register(&mut stream, slot.token(Role::Ctrl), Interest::READABLE | Interest::WRITABLE)
        {
            crate::log::warn(format_args!("register {peer}: {e}"));
            release(&self.shared);
            return None;
        }
        let peer = SocketAddr::new(ip, peer.port());
        let mut s = if proxied {
            Session::awaiting_proxy(generation, stream, peer, local, now, self.id)
        } else {
            Session::new(id, generation, stream, peer, local, now, self.id, &self.shared.greeting())
        };
        s.data.throttle = crate::rate::throttle::Throttle::new(cfg.max_rate, self.shared.total_rate.clone());
        s.data.disk = self.disk_link.clone();
        if implicit {
            match self.shared.tls().map(|c| crate::tls::accept(&c.control)) {
                Some(Ok(tls)) => s.start_implicit_tls(tls),
                _ => {
                    let _ = self.poll.registry().deregister(&mut s.ctrl);
                    release(&self.shared);
                    return None;
                }
            }
        }
        s.metrics = self.metrics;
        if !proxied {
            // A proxied connection becomes a session once its header is read.
            metrics::add(&self.metrics.sessions[metrics::FTP], 1);
        }
        entry.insert(Conn::Ftp(s));
        Some(slot)
    }

    /// The bulk part of a turn: the run queue, for `limits::TURN_SLICE`
    /// within the bulk share (see `turns.rs`).
    fn run_bulk(&mut self, now: Instant) {
        if self.run_queue.is_empty() {
            return;
        }
        let start = Instant::now();
        let Some(slice) = self.bulk_share.begin(start, limits::TURN_SLICE) else { return };
        let mut q = std::mem::take(&mut self.run_queue);
        q.run(start, slice, Instant::now, |slot| {
            let Some(c) = self.sessions.get_mut(slot.key) else { return false };
            // A stale entry (the slot was freed and reused) is dropped.
            c.generation() == slot.generation && *c.queued() && self.drive(slot, now)
        });
        self.run_queue = q;
        self.bulk_share.end(start, Instant::now());
    }

    /// Drives one session. True when it stopped on a budget with work left:
    /// it is flagged `queued` and the caller puts it in the run queue.
    fn drive(&mut self, slot: Slot, now: Instant) -> bool {
        let Some(c) = self.sessions.get_mut(slot.key) else { return false };
        if c.generation() != slot.generation {
            return false;
        }
        let outcome = match c {
            Conn::Ftp(s) => {
                s.queued = false;
                s.drive(&mut session_cx!(self, slot, now))
            }
            Conn::Sftp(s) => {
                s.queued = false;
                match &self.sftp {
                    Some(keys) => s.drive(&mut sftp_cx!(self, keys, slot, now)),
                    None => Outcome::Close,
                }
            }
        };
        let again = match outcome {
            Outcome::Close => {
                let c = self.sessions.remove(slot.key);
                c.close(self.poll.registry(), &self.shared);
                return false;
            }
            Outcome::Yield => {
                *c.queued() = true;
                true
            }
            Outcome::Idle => false,
        };
        let dl = c.deadline(&self.shared.config);
        if c.armed().is_none_or(|a| dl < a) {
            *c.armed() = Some(dl);
            self.timers.push(Reverse((dl, slot.key, slot.generation)));
        }
        again
    }
}
