//! One bench thread: its own `mio::Poll`, a slab of client sessions and a
//! timer heap with lazy deletion (start times, operation deadlines, rate
//! pauses). Runs until the duration ends or every session is done.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use rustls::ClientConfig;
use slab::Slab;

use super::client::{self, Client, Ctx, Outcome, Role};
use super::plan::{Plan, Stop};
use super::stats::Stats;
use super::tls;

/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;
/// How often a thread publishes its counters for the progress line.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// Size of the upload source pattern.
const PATTERN_LEN: usize = 256 << 10;

/// Counters one thread publishes for the progress line (written by that
/// thread only, read by the main thread).
#[derive(Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub connected: AtomicU64,
}

/// What the threads share: the plan, the --count tickets, the count of
/// sessions that logged in, and each thread's published counters.
pub struct Shared {
    pub plan: Plan,
    issued: AtomicU64,
    pub established: AtomicUsize,
    pub counters: Vec<Counters>,
}

impl Shared {
    pub fn new(plan: Plan) -> Shared {
        let counters = (0..plan.threads).map(|_| Counters::default()).collect();
        Shared { plan, issued: AtomicU64::new(0), established: AtomicUsize::new(0), counters }
    }

    pub fn counting(&self) -> bool {
        matches!(self.plan.stop, Stop::Count(_))
    }

    /// Takes one operation of --count; always true for a timed run.
    pub fn claim(&self) -> bool {
        match self.plan.stop {
            Stop::Count(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            Stop::After(_) => true,
        }
    }

    /// Whether any operation of --count is left.
    pub fn tickets_left(&self) -> bool {
        match self.plan.stop {
            Stop::Count(n) => self.issued.load(Ordering::Relaxed) < n,
            Stop::After(_) => true,
        }
    }
}

/// What a thread hands back.
pub struct Finished {
    pub stats: Stats,
    pub ended: Instant,
}

/// What the sessions of a thread borrow while they run.
struct Env {
    poll: Poll,
    stats: Stats,
    connected: usize,
    finished: usize,
    pattern: Vec<u8>,
    /// The thread's TLS client configuration (--tls, --tls-implicit).
    tls: Option<Arc<ClientConfig>>,
}

impl Env {
    fn ctx<'a>(&'a mut self, shared: &'a Shared, now: Instant, stopping: bool) -> Ctx<'a> {
        Ctx {
            registry: self.poll.registry(),
            plan: &shared.plan,
            shared,
            stats: &mut self.stats,
            now,
            stopping,
            pattern: &self.pattern,
            tls: self.tls.as_ref(),
            connected: &mut self.connected,
            finished: &mut self.finished,
        }
    }
}

pub struct Reactor {
    id: usize,
    clients: Slab<Client>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    run_queue: Vec<usize>,
    env: Env,
}

impl Reactor {
    /// A thread's share of the sessions: numbers `id, id+threads, ...`,
    /// each starting at its place in the ramp.
    pub fn new(id: usize, shared: &Shared, t0: Instant) -> io::Result<Reactor> {
        let plan = &shared.plan;
        let mut clients = Slab::new();
        let mut timers = BinaryHeap::new();
        for index in (id..plan.conns).step_by(plan.threads) {
            let at = t0 + plan.ramp.mul_f64(index as f64 / plan.conns as f64);
            let entry = clients.vacant_entry();
            let key = entry.key();
            let mut c = Client::new(key, index, at);
            c.armed = Some(at);
            entry.insert(c);
            timers.push(Reverse((at, key)));
        }
        let pattern = (0..PATTERN_LEN).map(|i| (i % 251) as u8).collect();
        let tls = match plan.tls {
            Some(_) => Some(tls::thread_config().map_err(|e| io::Error::other(format!("TLS client setup: {e}")))?),
            None => None,
        };
        let env = Env { poll: Poll::new()?, stats: Stats::default(), connected: 0, finished: 0, pattern, tls };
        Ok(Reactor { id, clients, timers, run_queue: Vec::new(), env })
    }

    pub fn run(mut self, shared: &Shared, t0: Instant) -> io::Result<Finished> {
        let plan = &shared.plan;
        let end = match plan.stop {
            Stop::After(d) => Some(t0 + d),
            Stop::Count(_) => None,
        };
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut to_drive: Vec<usize> = Vec::new();
        let mut published = t0;
        while self.env.finished < self.clients.len() {
            let timeout = self.poll_timeout(end);
            if let Err(e) = self.env.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            if let Some(e) = end.filter(|e| now >= *e) {
                self.stop_all(shared, now);
                self.publish(shared);
                return Ok(Finished { stats: self.env.stats, ended: e });
            }
            to_drive.clear();
            to_drive.append(&mut self.run_queue);
            for ev in events.iter() {
                let (key, generation, role) = client::decode(ev.token());
                let Some(c) = self.clients.get_mut(key) else { continue };
                if c.generation != generation {
                    continue; // an event for a socket of an earlier connection
                }
                let r = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let w = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                match role {
                    x if x == Role::Ctrl as usize => {
                        c.ctrl_readable |= r;
                        c.ctrl_writable |= w;
                    }
                    x if x == Role::Data as usize => {
                        c.data_readable |= r;
                        c.data_writable |= w;
                    }
                    _ => c.listener_ready = true,
                }
                to_drive.push(key);
            }
            self.fire_timers(shared, now, &mut to_drive);
            for &key in &to_drive {
                self.drive(shared, key);
            }
            if now.duration_since(published) >= PUBLISH_EVERY {
                self.publish(shared);
                published = now;
            }
        }
        self.publish(shared);
        Ok(Finished { stats: self.env.stats, ended: Instant::now() })
    }

    fn poll_timeout(&self, end: Option<Instant>) -> Option<Duration> {
        if !self.run_queue.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self.timers.peek().map(|Reverse((t, _))| *t);
        let next = match (next, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now = Instant::now();
        // Round up so a deadline is never missed by a poll that wakes early.
        next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn fire_timers(&mut self, shared: &Shared, now: Instant, to_drive: &mut Vec<usize>) {
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.clients.get_mut(key) else { continue };
            if c.armed != Some(t) {
                continue; // stale: a newer entry is armed
            }
            c.armed = None;
            // A fresh clock per session: a long batch must not age the
            // timestamps its sessions take (connect times, reply times).
            let mut cx = self.env.ctx(shared, Instant::now(), false);
            c.on_timer(&mut cx);
            to_drive.push(key);
            Self::arm(&mut self.timers, key, c);
        }
    }

    fn arm(timers: &mut BinaryHeap<Reverse<(Instant, usize)>>, key: usize, c: &mut Client) {
        if let Some(w) = c.wake() {
            if c.armed.is_none_or(|a| w < a) {
                c.armed = Some(w);
                timers.push(Reverse((w, key)));
            }
        }
    }

    fn drive(&mut self, shared: &Shared, key: usize) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let mut cx = self.env.ctx(shared, Instant::now(), false);
        c.queued = false;
        if c.drive(&mut cx) == Outcome::Yield && !c.queued {
            c.queued = true;
            self.run_queue.push(key);
        }
        Self::arm(&mut self.timers, key, c);
    }

    /// The duration is over: close every session.
    fn stop_all(&mut self, shared: &Shared, now: Instant) {
        for (_, c) in self.clients.iter_mut() {
            let mut cx = self.env.ctx(shared, now, true);
            c.stop(&mut cx);
        }
    }

    fn publish(&self, shared: &Shared) {
        let c = &shared.counters[self.id];
        c.bytes.store(self.env.stats.bytes, Ordering::Relaxed);
        c.ops.store(self.env.stats.ops, Ordering::Relaxed);
        c.errors.store(self.env.stats.error_count(), Ordering::Relaxed);
        c.connected.store(self.env.connected as u64, Ordering::Relaxed);
    }
}
