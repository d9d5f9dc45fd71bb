//! What one reactor thread measured: bytes, operations, errors by kind and
//! latency histograms per operation kind. Everything is fixed-size (the
//! error map has a handful of keys) and merges across threads by addition.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Values below this are recorded exactly; above it each power-of-two range
/// is split into this many linear sub-buckets (relative error ≤ 1/16).
const SUB_BUCKETS: u64 = 16;
const SUB_BITS: u32 = 4;
/// Largest recordable value: 2^36 µs ≈ 19 hours; larger values are clamped.
const MAX_BITS: u32 = 36;
const BUCKETS: usize = (SUB_BUCKETS + (MAX_BITS - SUB_BITS) as u64 * SUB_BUCKETS) as usize;

/// A log-linear (HDR-style) latency histogram in microseconds.
///
/// Invariants: `count` is the sum of `buckets`; `max` is the largest value
/// recorded (after clamping), 0 when empty.
#[derive(Clone)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: Box::new([0; BUCKETS]), count: 0, max: 0 }
    }
}

/// The bucket holding `v` µs.
fn index(v: u64) -> usize {
    if v < SUB_BUCKETS {
        return v as usize;
    }
    let k = 63 - v.leading_zeros(); // floor(log2 v), >= SUB_BITS
    let sub = (v >> (k - SUB_BITS)) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + u64::from(k - SUB_BITS) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB_BUCKETS {
        return i;
    }
    let k = (i - SUB_BUCKETS) / SUB_BUCKETS + u64::from(SUB_BITS);
    let sub = (i - SUB_BUCKETS) % SUB_BUCKETS;
    let width = 1u64 << (k - u64::from(SUB_BITS));
    (1u64 << k) + (sub + 1) * width - 1
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_us(&mut self, v: u64) {
        let v = v.min((1u64 << MAX_BITS) - 1);
        self.buckets[index(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1) in µs: the upper bound of the bucket
    /// holding the ceil(q·count)-th smallest value, never above the maximum.
    /// 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }
}

/// The operation kinds that are timed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Retr = 0,
    Stor = 1,
    List = 2,
    Login = 3,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [OpKind::Retr, OpKind::Stor, OpKind::List, OpKind::Login];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Retr => "retr",
            OpKind::Stor => "stor",
            OpKind::List => "list",
            OpKind::Login => "login",
        }
    }
}

/// Why an operation or a session failed; the key of the error table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The server answered with this (unexpected) reply code.
    Code(u16),
    /// The control connection could not be made.
    Connect,
    /// The data connection could not be made (or accepted).
    DataConnect,
    /// An operation took longer than --timeout.
    Timeout,
    /// The server closed the control connection unexpectedly.
    Eof,
    /// The data connection ended with fewer bytes than the 150 reply announced.
    Short,
    /// A reply that is not FTP (bad code, overlong line, unparsable address).
    BadReply,
    /// A TLS handshake or record failure (client side), or a peer that
    /// closed during the handshake.
    Tls,
    /// Any other socket error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Code(c) => write!(f, "{c}"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::DataConnect => f.write_str("data-connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Eof => f.write_str("eof"),
            ErrorKind::Short => f.write_str("short"),
            ErrorKind::BadReply => f.write_str("bad-reply"),
            ErrorKind::Tls => f.write_str("tls"),
            ErrorKind::Io => f.write_str("io"),
        }
    }
}

/// Time to first byte and total time of one operation kind.
#[derive(Clone, Default)]
pub struct OpLatency {
    pub ttfb: Histogram,
    pub total: Histogram,
}

/// Completed TLS handshakes (--tls, --tls-implicit).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TlsCounts {
    pub control: u64,
    pub data: u64,
    /// Data handshakes that resumed a session (rustls' `HandshakeKind::Resumed`).
    pub data_resumed: u64,
}

/// Everything one thread counted.
#[derive(Clone, Default)]
pub struct Stats {
    /// Data bytes moved (received for RETR/LIST, sent for STOR), including
    /// those of transfers that failed or were cut by the end of the run.
    pub bytes: u64,
    /// Operations that succeeded.
    pub ops: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub latency: [OpLatency; 4],
    /// Sessions that logged in at least once.
    pub established: u64,
    /// Abrupt disconnects made on purpose (--disconnect-prob).
    pub drops: u64,
    pub tls: TlsCounts,
    /// Data bytes by session number (0..conns), for per-session rates.
    pub session_bytes: Vec<u64>,
}

impl Stats {
    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn op(&mut self, kind: OpKind) -> &mut OpLatency {
        &mut self.latency[kind as usize]
    }

    /// `n` data bytes moved by session number `session`.
    pub fn moved(&mut self, session: usize, n: u64) {
        self.bytes += n;
        if session >= self.session_bytes.len() {
            self.session_bytes.resize(session + 1, 0);
        }
        self.session_bytes[session] += n;
    }

    /// Why the run failed, if it did: more than `max_error_rate` of the
    /// attempted operations (succeeded + failed; drops are neither) failed,
    /// or none succeeded and no byte moved (a slow rate-limited download
    /// that never finished but moved bytes is not a failure).
    pub fn failure(&self, max_error_rate: f64) -> Option<String> {
        let errors = self.error_count();
        let attempted = self.ops + errors;
        if errors > 0 && errors as f64 > max_error_rate * attempted as f64 {
            let pct = 100.0 * errors as f64 / attempted as f64;
            return Some(format!(
                "{errors} of {attempted} operations failed ({pct:.1}%), more than --max-error-rate {max_error_rate}"
            ));
        }
        if self.ops == 0 && self.bytes == 0 {
            return Some("no operation succeeded and no data moved".to_string());
        }
        None
    }

    pub fn merge(&mut self, other: &Stats) {
        if self.session_bytes.len() < other.session_bytes.len() {
            self.session_bytes.resize(other.session_bytes.len(), 0);
        }
        for (a, b) in self.session_bytes.iter_mut().zip(&other.session_bytes) {
            *a += b;
        }
        self.bytes += other.bytes;
        self.ops += other.ops;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_insert(0) += v;
        }
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            a.ttfb.merge(&b.ttfb);
            a.total.merge(&b.total);
        }
        self.established += other.established;
        self.drops += other.drops;
        self.tls.control += other.tls.control;
        self.tls.data += other.tls.data;
        self.tls.data_resumed += other.tls.data_resumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_fails_when_the_error_share_passes_the_threshold() {
        let run = |ops: u64, errors: u64, bytes: u64| {
            let mut s = Stats { ops, bytes, ..Stats::default() };
            for _ in 0..errors {
                s.error(ErrorKind::Code(550));
            }
            s
        };
        assert_eq!(run(10, 0, 0).failure(0.0), None);
        assert!(run(99, 1, 5).failure(0.0).is_some(), "any error fails by default");
        let msg = run(5, 95, 5).failure(0.0).unwrap();
        assert!(msg.starts_with("95 of 100 operations failed (95.0%)"), "{msg}");
        assert_eq!(run(90, 10, 0).failure(0.1), None, "exactly at the threshold passes");
        assert!(run(89, 11, 0).failure(0.1).is_some());
        assert_eq!(run(0, 5, 0).failure(1.0).as_deref(), Some("no operation succeeded and no data moved"));
        assert!(run(0, 0, 0).failure(0.0).is_some(), "nothing happened at all");
        assert_eq!(run(0, 0, 1).failure(0.0), None, "a rate-limited download still running moved bytes");
    }

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for v in 0..200_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            assert!(upper(i) >= v, "{v} above its bucket's bound {}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v, "{v} also fits bucket {}", i - 1);
            }
            last = i;
        }
        assert_eq!(index((1 << MAX_BITS) - 1), BUCKETS - 1);
        assert_eq!(upper(BUCKETS - 1), (1 << MAX_BITS) - 1);
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [17u64, 100, 999, 12_345, 1_000_000, 3_600_000_000] {
            let u = upper(index(v));
            assert!((u - v) as f64 <= v as f64 / 16.0, "{v} → {u}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 0..10 {
            h.record_us(v);
        }
        assert_eq!(h.quantile_us(0.5), 4);
        assert_eq!(h.quantile_us(0.9), 8);
        assert_eq!(h.quantile_us(1.0), 9);
        assert_eq!(h.max_us(), 9);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record_us(v);
        }
        for (q, want) in [(0.5, 5000.0), (0.9, 9000.0), (0.99, 9900.0)] {
            let got = h.quantile_us(q) as f64;
            assert!(got >= want && got <= want * (1.0 + 1.0 / 16.0), "p{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile_us(1.0), 10_000);
        assert_eq!(h.max_us(), 10_000);
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn a_single_outlier_is_the_max_not_the_p99() {
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record_us(1000);
        }
        h.record(Duration::from_secs(7200));
        assert!(h.quantile_us(0.99) <= 1000 + 1000 / 16);
        assert_eq!(h.max_us(), 7_200_000_000);
        assert_eq!(h.quantile_us(1.0), 7_200_000_000);
    }

    #[test]
    fn empty_is_zero_and_huge_values_clamp() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), 0);
        h.record(Duration::from_secs(1 << 40));
        assert_eq!(h.max_us(), (1 << MAX_BITS) - 1);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
        for v in 0..5000u64 {
            let x = v * v % 77_777;
            if v % 3 == 0 {
                a.record_us(x)
            } else {
                b.record_us(x)
            }
            all.record_us(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.quantile_us(q), all.quantile_us(q));
        }
    }

    #[test]
    fn stats_merge_adds_errors_by_kind() {
        let mut a = Stats::default();
        a.error(ErrorKind::Code(550));
        a.error(ErrorKind::Timeout);
        let mut b = Stats::default();
        b.error(ErrorKind::Code(550));
        b.bytes = 10;
        b.tls = TlsCounts { control: 1, data: 3, data_resumed: 2 };
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.tls, TlsCounts { control: 2, data: 6, data_resumed: 4 });
        assert_eq!(a.errors[&ErrorKind::Code(550)], 3);
        assert_eq!(a.error_count(), 4);
        assert_eq!(a.bytes, 20);
        assert_eq!(ErrorKind::Tls.to_string(), "tls");
        assert_eq!(ErrorKind::Code(426).to_string(), "426");
        assert_eq!(ErrorKind::DataConnect.to_string(), "data-connect");
    }
}
