//! One worker thread: its own `mio::Poll`, listening sockets (SO_REUSEPORT),
//! slab of sessions, passive port slice and timer heap. Dispatches readiness
//! by token, accepts, drives sessions, fires deadlines.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::mpsc::{self, Receiver, Sender};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::auth::access::Auth;
use crate::config::Config;
use crate::fs::jail::Jail;
use crate::io::net;
use crate::io::spare::{self, SpareFd};
use crate::limits;
use crate::pool::{LoginVerdict, Pool};
use crate::session::{Cx, Outcome, Session};

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
            pasv_range: $w.pasv_range,
            pasv_cursor: &mut $w.pasv_cursor,
            line: &mut $w.line,
            worker: $w.id,
            waker: &$w.waker,
            verdicts: &$w.verdict_tx,
        }
    };
}

/// Which socket of a session an event is for (the low 2 bits of a token).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Ctrl = 0,
    Listener = 1,
    Data = 2,
}

/// Tokens with this role belong to the worker's control listeners.
const ROLE_SERVER: usize = 3;
/// The token of the worker's waker (login verdicts from the helper threads).
const WAKER: Token = Token(usize::MAX);
const GEN_BITS: u32 = 14;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
const KEY_SHIFT: u32 = GEN_BITS + 2;

/// A session's identity in the worker: slab key plus generation, so events
/// for a freed and reused slot are recognised as stale.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub key: usize,
    pub generation: u16,
}

impl Slot {
    pub fn token(self, role: Role) -> Token {
        Token((self.key << KEY_SHIFT) | ((self.generation as usize & GEN_MASK) << 2) | role as usize)
    }
}

fn decode(t: Token) -> (usize, u16, usize) {
    (t.0 >> KEY_SHIFT, ((t.0 >> 2) & GEN_MASK) as u16, t.0 & 3)
}

/// Failed logins from one address, for --ban-after.
struct Failures {
    count: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
}

/// Facts shared by all workers, touched only at accept, close and failed
/// logins (and counters as atomics); never on the per-event path.
pub struct Shared {
    pub config: Config,
    pub auth: Arc<Auth>,
    pub pool: Pool,
    /// FTPS configuration, swapped whole on SIGHUP (sessions keep theirs).
    tls: std::sync::RwLock<Option<Arc<crate::tls::Configs>>>,
    sessions: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    next_session: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, auth: Arc<Auth>, pool: Pool, tls: Option<Arc<crate::tls::Configs>>) -> Shared {
        Shared {
            config,
            auth,
            pool,
            tls: std::sync::RwLock::new(tls),
            sessions: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        }
    }

    /// The current FTPS configuration (None: FTPS is off).
    pub fn tls(&self) -> Option<Arc<crate::tls::Configs>> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a new FTPS configuration (certificate reload).
    pub fn set_tls(&self, sc: Arc<crate::tls::Configs>) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = Some(sc);
    }

    /// Records a failed login from `ip`; true when the address is now banned.
    pub fn login_failed(&self, ip: IpAddr, now: Instant) -> bool {
        let cfg = &self.config;
        if cfg.ban_after == 0 {
            return false;
        }
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > limits::MAX_TRACKED_IPS {
            map.retain(|_, f| f.banned_until.is_some_and(|u| u > now) || now < f.window_start + cfg.ban_window);
        }
        let f = map.entry(ip).or_insert(Failures { count: 0, window_start: now, banned_until: None });
        if now >= f.window_start + cfg.ban_window {
            f.count = 0;
            f.window_start = now;
        }
        f.count += 1;
        if f.count >= cfg.ban_after {
            f.banned_until = Some(now + cfg.ban_time);
            f.count = 0;
            f.window_start = now;
            crate::log::warn(format_args!(
                "banning {ip} for {} s after {} failed logins",
                cfg.ban_time.as_secs(),
                cfg.ban_after
            ));
            return true;
        }
        false
    }

    fn banned(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if now < until => true,
            Some(_) => {
                map.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a new session from `ip`, or says which limit refuses it.
    fn admit(&self, ip: IpAddr, now: Instant) -> Result<u64, &'static str> {
        if self.banned(ip, now) {
            return Err("Too many failed logins from your address; try again later.");
        }
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.sessions.load(Ordering::Relaxed) >= self.config.max_clients {
            return Err("Too many users, try again later.");
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= self.config.max_per_ip {
            return Err("Too many connections from your address.");
        }
        *n += 1;
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    fn release(&self, ip: IpAddr) {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }
}

pub struct Worker {
    id: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Per listener: implicit TLS (TLS from the first byte).
    implicit: Vec<bool>,
    sessions: Slab<Session>,
    timers: BinaryHeap<Reverse<(Instant, usize, u16)>>,
    /// Sessions to drive again without waiting for an event: they stopped on
    /// a budget, not on WouldBlock (each flagged `queued` while listed).
    run_queue: Vec<Slot>,
    accept_pending: Vec<bool>,
    accept_paused_until: Option<Instant>,
    /// Given up at EMFILE/ENFILE so waiting clients can be told 421 (see io::spare).
    spare: SpareFd,
    next_gen: u16,
    jail: Jail,
    shared: Arc<Shared>,
    pasv_range: Option<(u16, u16)>,
    pasv_cursor: u16,
    line: Vec<u8>,
    waker: Arc<Waker>,
    verdict_tx: Sender<LoginVerdict>,
    verdict_rx: Receiver<LoginVerdict>,
}

impl Worker {
    /// Creates worker `id`, binding its own listener on each address. Port 0
    /// must be resolved by the caller (bind worker 0 first, then reuse its
    /// ports) so all workers share one port per address.
    pub fn bind(id: usize, shared: Arc<Shared>, addrs: &[(SocketAddr, bool)]) -> io::Result<Worker> {
        let cfg = &shared.config;
        let poll = Poll::new()?;
        let mut listeners = Vec::with_capacity(addrs.len());
        for (i, (addr, _)) in addrs.iter().enumerate() {
            let mut l = net::control_listener(*addr, cfg.backlog)
                .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
            poll.registry().register(&mut l, Token((i << KEY_SHIFT) | ROLE_SERVER), Interest::READABLE)?;
            listeners.push(l);
        }
        let implicit = addrs.iter().map(|(_, t)| *t).collect();
        let jail = Jail::open(&cfg.root, cfg.deny_dotfiles)
            .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", cfg.root.display())))?;
        let pasv_range = cfg.pasv_ports.map(|r| {
            let s = r.slice(id, cfg.workers);
            (s.low, s.high)
        });
        let n = listeners.len();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (verdict_tx, verdict_rx) = mpsc::channel();
        Ok(Worker {
            waker,
            verdict_tx,
            verdict_rx,
            id,
            poll,
            listeners,
            implicit,
            sessions: Slab::with_capacity(64),
            timers: BinaryHeap::new(),
            run_queue: Vec::new(),
            accept_pending: vec![true; n],
            accept_paused_until: None,
            spare: SpareFd::new(),
            next_gen: 0,
            jail,
            pasv_cursor: pasv_range.map_or(0, |r| r.0),
            pasv_range,
            shared,
            line: Vec::with_capacity(limits::MAX_LINE),
        })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> io::Result<Vec<(SocketAddr, bool)>> {
        self.listeners.iter().zip(&self.implicit).map(|(l, t)| Ok((l.local_addr()?, *t))).collect()
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
            to_drive.append(&mut self.run_queue);
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.take_verdicts(now, &mut to_drive);
                    continue;
                }
                let (key, generation, role) = decode(ev.token());
                if role == ROLE_SERVER {
                    if let Some(p) = self.accept_pending.get_mut(key) {
                        *p = true;
                    }
                    continue;
                }
                let Some(s) = self.sessions.get_mut(key) else { continue };
                if s.generation != generation {
                    continue; // stale: the slot was freed and reused
                }
                if role == Role::Ctrl as usize {
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        s.ctrl_readable = true;
                    }
                    if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                        s.ctrl_writable = true;
                    }
                } else {
                    s.data.ready = true;
                }
                to_drive.push(Slot { key, generation });
            }
            self.fire_timers(now, &mut to_drive);
            self.accept_all(now, &mut to_drive);
            for i in 0..to_drive.len() {
                self.drive(to_drive[i], now);
            }
        }
    }

    /// Hands login verdicts from the helper threads to their sessions.
    fn take_verdicts(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        while let Ok(v) = self.verdict_rx.try_recv() {
            let Some(s) = self.sessions.get_mut(v.slot.key) else { continue };
            if s.generation != v.slot.generation {
                continue; // the session is gone; its slot was reused
            }
            s.login_verdict(v.access, &self.shared, now);
            to_drive.push(v.slot);
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.run_queue.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut next = self.timers.peek().map(|Reverse((t, _, _))| *t);
        if let Some(p) = self.accept_paused_until {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        // Round up to the next millisecond so a deadline is never missed by
        // a poll that wakes a hair early.
        next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn fire_timers(&mut self, now: Instant, to_drive: &mut Vec<Slot>) {
        while let Some(Reverse((t, key, generation))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.sessions.get_mut(key) else { continue };
            if s.generation != generation || s.armed != Some(t) {
                continue; // stale entry: a newer one is armed
            }
            s.armed = None;
            let dl = s.deadline(&self.shared.config);
            if dl <= now {
                let slot = Slot { key, generation };
                let mut cx = session_cx!(self, slot, now);
                s.on_timeout(&mut cx);
                to_drive.push(slot);
            } else {
                s.armed = Some(dl);
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
                        if let Some(slot) = self.admit(stream, peer, now, self.implicit[i]) {
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
                    let _ = stream.write(limits::OUT_OF_FDS_REPLY.as_bytes());
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
        let id = match self.shared.admit(ip, now) {
            Ok(id) => id,
            Err(why) => {
                let _ = stream.write(format!("421 {why}\r\n").as_bytes());
                crate::log::info(format_args!("refused {peer}: {why}"));
                return None;
            }
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => {
                self.shared.release(ip);
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
            self.shared.release(ip);
            return None;
        }
        let mut s = Session::new(id, generation, stream, SocketAddr::new(ip, peer.port()), local, now, self.id);
        if implicit {
            match self.shared.tls().map(|c| crate::tls::accept(&c.control)) {
                Some(Ok(tls)) => s.start_implicit_tls(tls),
                _ => {
                    let _ = self.poll.registry().deregister(&mut s.ctrl);
                    self.shared.release(ip);
                    return None;
                }
            }
        }
        entry.insert(s);
        Some(slot)
    }

    fn drive(&mut self, slot: Slot, now: Instant) {
        let Some(s) = self.sessions.get_mut(slot.key) else { return };
        if s.generation != slot.generation {
            return;
        }
        let mut cx = session_cx!(self, slot, now);
        s.queued = false;
        match s.drive(&mut cx) {
            Outcome::Close => {
                let mut s = self.sessions.remove(slot.key);
                s.close(self.poll.registry());
                self.shared.release(s.peer.ip());
                return;
            }
            Outcome::Yield => {
                if !s.queued {
                    s.queued = true;
                    self.run_queue.push(slot);
                }
            }
            Outcome::Idle => {}
        }
        let dl = s.deadline(&self.shared.config);
        if s.armed.is_none_or(|a| dl < a) {
            s.armed = Some(dl);
            self.timers.push(Reverse((dl, slot.key, slot.generation)));
        }
    }
}
