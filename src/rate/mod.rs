//! Rate limits: the `--max-rate` value parser and the token buckets behind
//! user-space throttling (uploads per session; everything against
//! `--max-rate-total`).
//!
//! A bucket lends: `reserve(n)` always takes `n` tokens, letting the balance
//! go negative, and answers when the caller may move those bytes (now, or
//! once the debt is paid back by the refill). Callers that reserve one chunk
//! at a time are thus served in the order they asked, each for one chunk: N
//! sessions sharing a bucket get about 1/N of its rate each, and nobody polls
//! an empty bucket. Bytes reserved but never moved (the transfer ended) are
//! given back with `refund`.

pub mod throttle;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::limits;

/// Why [`parse_binary_size`] refused a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// Not digits with an optional K, M or G suffix.
    Malformed,
    /// Beyond u64.
    TooLarge,
}

/// Digits with an optional binary suffix K, M or G (either case): the
/// number times 1, 2^10, 2^20 or 2^30. Shared by the flags that take sizes
/// (`--max-rate`, `--listing-cache`).
pub fn parse_binary_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::Malformed);
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::TooLarge)?;
    n.checked_mul(mult).ok_or(SizeError::TooLarge)
}

/// Parses a rate in bytes per second: digits with an optional binary suffix
/// K, M or G (KiB, MiB, GiB per second; either case), e.g. `10M`. `0` means
/// unlimited.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let v = parse_binary_size(s).map_err(|e| match e {
        SizeError::Malformed => {
            format!("{s:?}: expected bytes per second, a number with an optional K, M or G suffix (e.g. 10M)")
        }
        SizeError::TooLarge => format!("{s:?}: too large"),
    })?;
    if v > limits::MAX_RATE {
        return Err(format!("{s:?}: at most {} GiB/s", limits::MAX_RATE >> 30));
    }
    Ok(v)
}

/// Bytes a limited transfer asks for at a time: the bucket's rate over
/// `limits::RATE_SLICE`, split among `sharers`, within
/// [`limits::RATE_CHUNK_MIN`, `limits::SENDFILE_CHUNK`].
pub fn chunk_for(rate: u64, sharers: usize) -> u64 {
    let slice = (rate as f64 * limits::RATE_SLICE.as_secs_f64()) as u64 / sharers.max(1) as u64;
    slice.clamp(limits::RATE_CHUNK_MIN, limits::SENDFILE_CHUNK as u64)
}

/// A lending token bucket (not shared: one session's upload limit, or the
/// inside of a `SharedBucket`).
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    /// May be negative: bytes lent ahead of the refill.
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket refilled at `rate` bytes/s holding at most `burst`.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Bucket {
        Bucket { rate: rate.max(1) as f64, burst: burst as f64, tokens: burst as f64, last: now }
    }

    fn refill(&mut self, now: Instant) {
        // Instants from other threads may be a little older than `last`.
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// Takes `n` tokens; returns when the bytes may be moved (`now` if the
    /// bucket held them, else when the refill has paid the debt back).
    pub fn reserve(&mut self, n: u64, now: Instant) -> Instant {
        self.refill(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            now
        } else {
            // Never less than a microsecond away: a due time is in the future.
            now + Duration::from_secs_f64(-self.tokens / self.rate).max(Duration::from_micros(1))
        }
    }

    /// Gives back `n` reserved tokens that were not used.
    pub fn refund(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + n as f64).min(self.burst);
    }

    pub fn rate(&self) -> u64 {
        self.rate as u64
    }
}

/// The `--max-rate-total` bucket shared by every session of every worker.
/// Touched once per chunk (not per byte), under a mutex held for a few
/// arithmetic operations.
#[derive(Debug)]
pub struct SharedBucket {
    rate: u64,
    bucket: Mutex<Bucket>,
    /// Transfers currently drawing from the bucket (sizes the chunks).
    active: AtomicUsize,
}

impl SharedBucket {
    pub fn new(rate: u64, now: Instant) -> SharedBucket {
        SharedBucket {
            rate,
            bucket: Mutex::new(Bucket::new(rate, chunk_for(rate, 1), now)),
            active: AtomicUsize::new(0),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// A transfer starts drawing from the bucket.
    pub fn join(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// A transfer stopped drawing from the bucket.
    pub fn leave(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// The chunk one transfer reserves at a time: smaller when many share.
    pub fn chunk(&self) -> u64 {
        chunk_for(self.rate, self.active.load(Ordering::Relaxed))
    }

    pub fn reserve(&self, n: u64, now: Instant) -> Instant {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).reserve(n, now)
    }

    pub fn refund(&self, n: u64, now: Instant) {
        if n > 0 {
            self.bucket.lock().unwrap_or_else(|p| p.into_inner()).refund(n, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_suffixes() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("64K"), Ok(64 << 10));
        assert_eq!(parse_rate("64k"), Ok(64 << 10));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("2G"), Ok(2 << 30));
        assert_eq!(parse_rate(" 3m "), Ok(3 << 20));
    }

    #[test]
    fn bad_rates_are_refused_with_a_reason() {
        for bad in ["", "M", "-1", "1.5M", "10X", "10MB", "ten", "+5", "1 M", "99999999999999999999", "20000000G"] {
            let e = parse_rate(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_full_bucket_grants_its_burst_then_lends_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 500, t0);
        assert_eq!(b.reserve(500, t0), t0, "the burst is available at once");
        // 250 more bytes: a debt of 250 at 1000 B/s is 250 ms.
        let at = b.reserve(250, t0);
        assert_eq!(at - t0, Duration::from_millis(250));
        // The next caller queues behind the first: 500 ms.
        let at = b.reserve(250, t0);
        assert_eq!(at - t0, Duration::from_millis(500));
        // Half a second later the debt is paid; a refund goes back in.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.reserve(0, t1), t1);
        b.refund(100, t1);
        assert_eq!(b.reserve(100, t1), t1);
        assert!(b.reserve(1, t1) > t1);
    }

    #[test]
    fn an_idle_bucket_holds_no_more_than_its_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 100, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.reserve(100, later), later);
        let at = b.reserve(1000, later);
        assert_eq!(at - later, Duration::from_secs(1), "an hour idle still allows only the burst");
        b.refund(u64::MAX >> 1, at);
        assert_eq!(b.reserve(100, at), at);
        assert!(b.reserve(1, at) > at, "a refund never overfills the bucket");
    }

    #[test]
    fn sharers_are_served_in_turn_at_the_total_rate() {
        // 4 sharers reserving one chunk each, repeatedly: every one moves the
        // same bytes and the total matches the rate.
        let t0 = Instant::now();
        let rate = 4 << 20;
        let shared = SharedBucket::new(rate, t0);
        for _ in 0..4 {
            shared.join();
        }
        let chunk = shared.chunk();
        let mut due = [t0; 4];
        let mut moved = [0u64; 4];
        let end = t0 + Duration::from_secs(10);
        loop {
            let (i, &at) = due.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            if at >= end {
                break;
            }
            moved[i] += chunk;
            due[i] = shared.reserve(chunk, at);
        }
        let total: u64 = moved.iter().sum();
        let want = rate as f64 * 10.0;
        assert!((total as f64 - want).abs() < want * 0.02, "moved {total}, want {want}");
        let (lo, hi) = (moved.iter().min().unwrap(), moved.iter().max().unwrap());
        // Only the initial burst (one slice of the rate) may go to one sharer.
        assert!(hi - lo <= chunk_for(rate, 1) + chunk, "unfair: {moved:?}");
    }

    #[test]
    fn chunks_shrink_with_sharers_within_bounds() {
        assert_eq!(chunk_for(1 << 40, 1), limits::SENDFILE_CHUNK as u64);
        assert_eq!(chunk_for(1000, 1), limits::RATE_CHUNK_MIN);
        let one = chunk_for(100 << 20, 1);
        let ten = chunk_for(100 << 20, 10);
        assert!(ten < one && ten >= limits::RATE_CHUNK_MIN, "{one} {ten}");
        assert_eq!(chunk_for(100 << 20, 0), one);
    }
}
