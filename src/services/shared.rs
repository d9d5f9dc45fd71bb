//! The facts all workers share (admission, bans, per-address counts,
//! accounts, TLS, greeting, drain flag, metrics, helper pools) and why a
//! connection is refused before it becomes a session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mio::Waker;

use crate::auth::access::{Auth, AuthCell};
use crate::config::Config;
use crate::limits;
use crate::obs::metrics::WorkerMetrics;
use crate::pool::Pool;
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
    pub(crate) wakers: Mutex<Vec<Arc<Waker>>>,
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
    /// --listing-cache: formatted listings and the threads that fill them (None: off).
    pub listings: Option<crate::lists::fill::Listings>,
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
            listings: usize::try_from(config.listing_cache)
                .ok()
                .filter(|&c| c > 0)
                .and_then(crate::lists::fill::Listings::start),
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

    /// After a session's `failures`-th failed login (either protocol): when
    /// its answer is due (a delay of LOGIN_DELAY_BASE doubling per failure,
    /// capped at LOGIN_DELAY_MAX) and whether the session must then close
    /// (--max-login-attempts reached, or the address is now banned).
    pub fn after_failed_login(&self, ip: IpAddr, failures: u32, now: Instant) -> (Instant, bool) {
        let banned = self.login_failed(ip, now);
        let shift = failures.saturating_sub(1).min(8);
        let delay = (limits::LOGIN_DELAY_BASE * (1u32 << shift)).min(limits::LOGIN_DELAY_MAX);
        (now + delay, banned || failures >= self.config.max_login_attempts)
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

    pub(crate) fn release(&self, ip: IpAddr) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_labels_follow_the_enum() {
        use Refusal::*;
        for (r, label) in [
            (MaxClients, "max_clients"),
            (MaxPerIp, "max_per_ip"),
            (Banned, "banned"),
            (BanList, "ban_list"),
            (NotProxied, "not_proxied"),
        ] {
            assert_eq!(crate::obs::metrics::REFUSE_REASONS[r as usize], label);
        }
    }
}
