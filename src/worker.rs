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

use crate::auth::access::{Auth, AuthCell};
use crate::config::Config;
use crate::fs::jail::Jail;
use crate::io::net;
use crate::io::spare::{self, SpareFd};
use crate::limits;
use crate::obs::http::MetricsServer;
use crate::obs::metrics::{self, WorkerMetrics};
use crate::pool::{LoginVerdict, Pool};
use crate::session::{Cx, Outcome, Session};
use crate::turns::{self, Lane, RunQueue};

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
/// The token of the worker's waker (login verdicts and disk completions from
/// the helper threads).
const WAKER: Token = Token(usize::MAX);
const GEN_BITS: u32 = 14;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
const KEY_SHIFT: u32 = GEN_BITS + 2;
/// ROLE_SERVER keys from here on are worker 0's metrics listener (this key)
/// and its scrape connections (the keys after it).
const METRICS_KEY: usize = 1 << 24;

fn metrics_token(n: Option<usize>) -> Token {
    Token(((METRICS_KEY + n.map_or(0, |n| n + 1)) << KEY_SHIFT) | ROLE_SERVER)
}

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

/// Why a connection is refused (421) before it becomes a session.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    MaxClients,
    MaxPerIp,
    /// --ban-after: too many failed logins.
    Banned,
    /// --ban-list.
    BanList,
    /// --proxy-protocol: not from a --proxy-from address.
    NotProxied,
}

impl Refusal {
    /// The text of the 421 reply.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::MaxClients => "Too many users, try again later.",
            Refusal::MaxPerIp => "Too many connections from your address.",
            Refusal::Banned => "Too many failed logins from your address; try again later.",
            Refusal::BanList => "Your address is not allowed to connect.",
            Refusal::NotProxied => "Direct connections are refused; connect through the load balancer.",
        }
    }

    /// What the server's log line adds for the operator, never sent to the
    /// client (a hostile client learns no limit): the flag to change.
    pub fn hint(self, cfg: &Config) -> String {
        match self {
            Refusal::MaxClients => format!(" (--max-clients {} reached; raise it to admit more)", cfg.max_clients),
            Refusal::MaxPerIp => {
                format!(" (--max-per-ip {} reached for this address; raise it to admit more)", cfg.max_per_ip)
            }
            Refusal::Banned => format!(
                " (--ban-after {} failed logins within {} s; banned for --ban-time {} s)",
                cfg.ban_after,
                cfg.ban_window.as_secs(),
                cfg.ban_time.as_secs()
            ),
            Refusal::BanList => " (--ban-list)".to_string(),
            Refusal::NotProxied => " (not a --proxy-from address)".to_string(),
        }
    }
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
    /// Accounts and rules (swapped on SIGHUP).
    auth: Arc<AuthCell>,
    pub pool: Pool,
    /// The 220 greeting (--banner-file; swapped on SIGHUP).
    greeting: std::sync::RwLock<Arc<[u8]>>,
    /// SIGTERM: stop accepting, finish transfers, close the rest.
    draining: std::sync::atomic::AtomicBool,
    /// Every worker's waker, to tell them about a drain.
    wakers: Mutex<Vec<Arc<Waker>>>,
    /// FTPS configuration, swapped whole on SIGHUP (sessions keep theirs).
    tls: std::sync::RwLock<Option<Arc<crate::tls::Configs>>>,
    sessions: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    next_session: AtomicU64,
    /// The --pasv-address value now announced (see `pasv_address.rs`).
    pub(crate) pasv: crate::pasv_address::Announced,
    /// --max-rate-total's bucket, drawn from by every session.
    pub total_rate: Option<Arc<crate::rate::SharedBucket>>,
    /// --ban-list, swapped whole on SIGHUP; read at every accept.
    ban_list: std::sync::RwLock<Arc<Vec<crate::cidr::Cidr>>>,
    /// One set of counters per worker, written only by its worker.
    pub metrics: &'static [WorkerMetrics],
    /// --disk-threads: reads the page cache does not hold yet.
    pub disk: crate::disk::DiskPool,
}

impl Shared {
    pub fn new(
        config: Config,
        auth: Arc<AuthCell>,
        pool: Pool,
        tls: Option<Arc<crate::tls::Configs>>,
        greeting: Vec<u8>,
    ) -> Shared {
        let total_rate = (config.max_rate_total > 0)
            .then(|| Arc::new(crate::rate::SharedBucket::new(config.max_rate_total, Instant::now())));
        let ban_list = std::sync::RwLock::new(Arc::new(config.ban_cidrs.clone()));
        Shared {
            pasv: crate::pasv_address::Announced::new(config.pasv_address.as_ref()),
            auth,
            pool,
            greeting: std::sync::RwLock::new(greeting.into()),
            draining: std::sync::atomic::AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            tls: std::sync::RwLock::new(tls),
            sessions: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            total_rate,
            ban_list,
            // Lives as long as the process, like the workers that write it.
            metrics: Box::leak((0..config.workers).map(|_| WorkerMetrics::new()).collect()),
            disk: crate::disk::DiskPool::start(config.disk_threads, config.disk_check),
            config,
        }
    }

    /// The current accounts, rules and deny patterns.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.get()
    }

    /// Installs reloaded accounts and rules.
    pub fn set_auth(&self, auth: Auth) {
        self.auth.set(auth);
    }

    /// The greeting sent to every new session.
    pub fn greeting(&self) -> Arc<[u8]> {
        self.greeting.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_greeting(&self, g: Vec<u8>) {
        *self.greeting.write().unwrap_or_else(|p| p.into_inner()) = g.into();
    }

    /// True once SIGTERM asked the server to drain.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts the drain: every worker closes its listeners, ends idle
    /// sessions with 421, and lets running transfers finish.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for w in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = w.wake();
        }
    }

    /// SIGHUP: re-reads --ban-list. On an error the old list stays.
    pub fn reload_ban_list(&self) -> Result<String, String> {
        let Some(path) = &self.config.ban_list else {
            return Ok("no --ban-list".into());
        };
        let list = crate::config::read_ban_list(path).map_err(|e| e.to_string())?;
        let msg = format!("--ban-list {}: {} blocks", path.display(), list.len());
        *self.ban_list.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        Ok(msg)
    }

    fn ban_listed(&self, ip: IpAddr) -> bool {
        let list = self.ban_list.read().unwrap_or_else(|p| p.into_inner());
        crate::cidr::any_contains(&list, ip)
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
        if cfg.proxy_protocol && crate::cidr::any_contains(&cfg.proxy_from, ip) {
            // A session the balancer could not name a client for (v1
            // UNKNOWN): banning the balancer would shut out everyone.
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
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<u64, Refusal> {
        if self.banned(ip, now) {
            return Err(Refusal::Banned);
        }
        if self.ban_listed(ip) {
            return Err(Refusal::BanList);
        }
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.sessions.load(Ordering::Relaxed) >= self.config.max_clients {
            return Err(Refusal::MaxClients);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= self.config.max_per_ip {
            return Err(Refusal::MaxPerIp);
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
    /// Sessions to drive again without waiting for an event: bulk transfers
    /// and sessions that stopped on a budget, not on WouldBlock (each flagged
    /// `queued` while listed, so listed once). See `turns.rs`.
    run_queue: RunQueue<Slot>,
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
    metrics: &'static WorkerMetrics,
    /// --metrics-listen, on worker 0 only.
    metrics_http: Option<MetricsServer>,
}

impl Worker {
    /// Creates worker `id`, binding its own listener on each address. Worker
    /// 0 claims the addresses (it fails if anything already listens there,
    /// see `net::control_listener`); the others join its SO_REUSEPORT group,
    /// or that of the sockets systemd passed. Port 0 must be resolved by the
    /// caller (bind worker 0 first, then reuse its ports) so all workers
    /// share one port per address.
    pub fn bind(id: usize, shared: Arc<Shared>, addrs: &[(SocketAddr, bool)]) -> io::Result<Worker> {
        let claim = if id == 0 { net::Claim::First } else { net::Claim::Join };
        let mut listeners = Vec::with_capacity(addrs.len());
        for (addr, implicit) in addrs {
            let l =
                net::control_listener(*addr, shared.config.backlog, claim).map_err(|e| net::listen_error(*addr, e))?;
            listeners.push((l, *implicit));
        }
        Worker::from_listeners(id, shared, listeners)
    }

    /// Creates worker `id` around listening sockets it is given (socket
    /// activation), each with whether it is an implicit-TLS listener.
    pub fn from_listeners(id: usize, shared: Arc<Shared>, given: Vec<(TcpListener, bool)>) -> io::Result<Worker> {
        let cfg = &shared.config;
        let poll = Poll::new()?;
        let mut listeners = Vec::with_capacity(given.len());
        let mut implicit = Vec::with_capacity(given.len());
        for (i, (mut l, tls)) in given.into_iter().enumerate() {
            poll.registry().register(&mut l, Token((i << KEY_SHIFT) | ROLE_SERVER), Interest::READABLE)?;
            listeners.push(l);
            implicit.push(tls);
        }
        let jail = Jail::open(&cfg.root, cfg.deny_dotfiles)
            .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", cfg.root.display())))?;
        let pasv = cfg.pasv_ports.slice(id, cfg.workers);
        let n = listeners.len();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        shared.wakers.lock().unwrap_or_else(|p| p.into_inner()).push(waker.clone());
        let (verdict_tx, verdict_rx) = mpsc::channel();
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
            id,
            poll,
            listeners,
            implicit,
            sessions: Slab::with_capacity(64),
            timers: BinaryHeap::new(),
            run_queue: RunQueue::default(),
            accept_pending: vec![true; n],
            accept_paused_until: None,
            drained: false,
            spare: SpareFd::new(),
            next_gen: 0,
            jail,
            pasv,
            shared,
            line: Vec::with_capacity(limits::MAX_LINE),
        })
    }

    /// Duplicates of this worker's listening sockets (same open sockets), for
    /// workers that share them instead of binding their own.
    pub fn try_clone_listeners(&self) -> io::Result<Vec<(TcpListener, bool)>> {
        use std::os::fd::AsFd;
        let dup = |l: &TcpListener| -> io::Result<TcpListener> {
            Ok(TcpListener::from_std(std::net::TcpListener::from(l.as_fd().try_clone_to_owned()?)))
        };
        self.listeners.iter().zip(&self.implicit).map(|(l, t)| Ok((dup(l)?, *t))).collect()
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> io::Result<Vec<(SocketAddr, bool)>> {
        self.listeners.iter().zip(&self.implicit).map(|(l, t)| Ok((l.local_addr()?, *t))).collect()
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
            if !self.drained && self.shared.draining() {
                self.begin_drain(&mut to_drive);
            }
            self.fire_timers(now, &mut to_drive);
            self.accept_all(now, &mut to_drive);
            // Fair turns: the sessions with news first, then the bulk ones
            // for one slice.
            for &slot in &to_drive {
                let Some(s) = self.sessions.get_mut(slot.key) else { continue };
                if s.generation != slot.generation {
                    continue;
                }
                match turns::lane(s.queued, s.data.bulk()) {
                    Lane::Now => {
                        if self.drive(slot, now) {
                            self.run_queue.push(slot);
                        }
                    }
                    Lane::Queue => {
                        s.queued = true;
                        self.run_queue.push(slot);
                    }
                    Lane::Queued => {}
                }
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
        self.implicit.clear();
        self.accept_pending.clear();
        self.accept_paused_until = None;
        to_drive.extend(self.sessions.iter().map(|(key, s)| Slot { key, generation: s.generation }));
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
            let Some(s) = self.sessions.get_mut(d.slot.key) else { continue };
            if s.generation != d.slot.generation {
                continue;
            }
            if s.data.disk_done(d.seq, d.outcome, now) {
                to_drive.push(d.slot);
            }
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
        if let Some(p) = self.metrics_http.as_ref().and_then(|m| m.next_deadline()) {
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
        // --proxy-protocol: admission waits for the header's real address.
        let proxied = self.shared.config.proxy_protocol;
        let admitted = if !proxied {
            self.shared.admit(ip, now)
        } else if self.sessions.len() >= self.shared.config.max_clients {
            // Connections still owing their header are not sessions yet, but
            // they hold a slot: a worker never holds more than --max-clients.
            Err(Refusal::MaxClients)
        } else {
            crate::session::proxied::screen(&self.shared.config, ip)
        };
        let id = match admitted {
            Ok(id) => id,
            Err(why) => {
                metrics::refused(self.metrics, why);
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
        s.data.throttle = crate::session::throttle::Throttle::new(cfg.max_rate, self.shared.total_rate.clone());
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
            metrics::add(&self.metrics.sessions, 1);
        }
        entry.insert(s);
        Some(slot)
    }

    /// The bulk part of a turn: the run queue, for `limits::TURN_SLICE`
    /// (see `turns.rs`).
    fn run_bulk(&mut self, now: Instant) {
        let mut q = std::mem::take(&mut self.run_queue);
        let start = Instant::now();
        q.run(start, limits::TURN_SLICE, Instant::now, |slot| {
            let Some(s) = self.sessions.get(slot.key) else { return false };
            // A stale entry (the slot was freed and reused) is dropped.
            s.generation == slot.generation && s.queued && self.drive(slot, now)
        });
        self.run_queue = q;
    }

    /// Drives one session. True when it stopped on a budget with work left:
    /// it is flagged `queued` and the caller puts it in the run queue.
    fn drive(&mut self, slot: Slot, now: Instant) -> bool {
        let Some(s) = self.sessions.get_mut(slot.key) else { return false };
        if s.generation != slot.generation {
            return false;
        }
        let mut cx = session_cx!(self, slot, now);
        s.queued = false;
        let again = match s.drive(&mut cx) {
            Outcome::Close => {
                let mut s = self.sessions.remove(slot.key);
                s.close(self.poll.registry());
                if s.admitted {
                    self.shared.release(s.peer.ip());
                }
                return false;
            }
            Outcome::Yield => {
                s.queued = true;
                true
            }
            Outcome::Idle => false,
        };
        let dl = s.deadline(&self.shared.config);
        if s.armed.is_none_or(|a| dl < a) {
            s.armed = Some(dl);
            self.timers.push(Reverse((dl, slot.key, slot.generation)));
        }
        again
    }
}
