//! User-space rate limiting of one session's data channel.
//!
//! FTP downloads under `--max-rate` are paced by the kernel
//! (SO_MAX_PACING_RATE on the data socket, set in `io::net::tune_data`) and
//! never pass through here; what the kernel cannot do is done here with token
//! buckets: FTP uploads under `--max-rate` (a bucket of the session's own),
//! every transfer under `--max-rate-total` (the server-wide
//! `rate::SharedBucket`), and SFTP channel bytes both ways (they share the
//! SSH connection with everything else, so they always ask as `upload`).
//!
//! A limited transfer holds a credit: bytes reserved from its bucket(s) and
//! not yet moved. With no credit left it reserves the next chunk; if the
//! bucket is in debt the reservation is due later, and the channel waits for
//! that moment on the worker's timer heap (`until`, folded into the session's
//! deadline) instead of moving bytes: an upload leaves the bytes in the
//! socket (the TCP window then stops the client), a download leaves the
//! socket unwritten. While it waits, the data timeout is not running (the
//! wait is ours, not the peer's).

use std::sync::Arc;
use std::time::Instant;

use crate::limits;
use crate::rate::{Bucket, SharedBucket, chunk_for};

/// What the channel may do this turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Budget {
    /// Move at most this many bytes.
    Bytes(u64),
    /// Move nothing before this moment.
    Wait(Instant),
}

/// A session's rate limits and the state of its running transfer.
#[derive(Debug)]
pub struct Throttle {
    /// --max-rate in bytes/s (0: unlimited). Downloads: kernel pacing;
    /// uploads: `upload`.
    session_rate: u64,
    /// The session's upload bucket, made at its first limited upload and
    /// kept across transfers (a new STOR does not get a fresh burst).
    upload: Option<Bucket>,
    /// --max-rate-total's bucket.
    total: Option<Arc<SharedBucket>>,
    /// The running transfer is counted among the total bucket's sharers.
    joined: bool,
    /// Bytes reserved and not yet moved.
    credit: u64,
    /// The credit was reserved from `upload` too.
    credit_upload: bool,
    /// No bytes move before this: the reservation is not due yet.
    pub until: Option<Instant>,
}

impl Throttle {
    pub fn new(session_rate: u64, total: Option<Arc<SharedBucket>>) -> Throttle {
        Throttle { session_rate, upload: None, total, joined: false, credit: 0, credit_upload: false, until: None }
    }

    /// SO_MAX_PACING_RATE for the session's data sockets (0: none): the
    /// session's own limit, and never above the total (no session can go
    /// faster than that anyway), so that a chunk granted by the total bucket
    /// leaves smoothly rather than as one burst.
    pub fn pacing_rate(&self) -> u64 {
        let total = self.total.as_ref().map_or(0, |t| t.rate());
        match (self.session_rate, total) {
            (0, t) => t,
            (s, 0) => s,
            (s, t) => s.min(t),
        }
    }

    fn limited(&self, upload: bool) -> bool {
        self.total.is_some() || (upload && self.session_rate > 0)
    }

    /// The bytes a transfer may move this turn (`upload`: it reads from the
    /// socket; `left`: the most it still has to move, `u64::MAX` when
    /// unknown), or when it may move again.
    pub fn budget(&mut self, upload: bool, left: u64, now: Instant) -> Budget {
        if !self.limited(upload) {
            return Budget::Bytes(limits::SEND_BUDGET_PER_TURN);
        }
        if let Some(t) = self.until {
            if now < t {
                return Budget::Wait(t);
            }
            self.until = None;
        }
        if self.credit == 0 {
            let due = self.reserve(upload, left, now);
            if due > now {
                self.until = Some(due);
                return Budget::Wait(due);
            }
        }
        Budget::Bytes(self.credit.min(limits::SEND_BUDGET_PER_TURN))
    }

    /// Reserves the next chunk from every bucket that applies, never more
    /// than the transfer has `left` (a small file must not hold a chunk
    /// sized for a big one, making the others wait for a refund); returns
    /// when it is due (the latest of them).
    fn reserve(&mut self, upload: bool, left: u64, now: Instant) -> Instant {
        let mut chunk = u64::MAX;
        if let Some(t) = &self.total {
            if !self.joined {
                t.join();
                self.joined = true;
            }
            chunk = t.chunk();
        }
        let per_session = upload && self.session_rate > 0;
        if per_session {
            chunk = chunk.min(chunk_for(self.session_rate, 1));
        }
        let chunk = chunk.min(left.max(1));
        let mut due = now;
        if let Some(t) = &self.total {
            due = due.max(t.reserve(chunk, now));
        }
        if per_session {
            let rate = self.session_rate;
            let b = self.upload.get_or_insert_with(|| Bucket::new(rate, chunk_for(rate, 1), now));
            due = due.max(b.reserve(chunk, now));
        }
        self.credit = chunk;
        self.credit_upload = per_session;
        due
    }

    /// `n` bytes moved.
    pub fn used(&mut self, n: u64) {
        self.credit = self.credit.saturating_sub(n);
    }

    /// The transfer ended: unused reservations go back to their buckets.
    pub fn end(&mut self) {
        if self.credit > 0 {
            let now = Instant::now();
            if let Some(t) = &self.total {
                t.refund(self.credit, now);
            }
            if self.credit_upload {
                if let Some(b) = &mut self.upload {
                    b.refund(self.credit, now);
                }
            }
        }
        if self.joined {
            if let Some(t) = &self.total {
                t.leave();
            }
            self.joined = false;
        }
        self.credit = 0;
        self.until = None;
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unlimited_downloads_and_paced_downloads_never_wait() {
        let now = Instant::now();
        let mut t = Throttle::new(0, None);
        assert_eq!(t.budget(false, u64::MAX, now), Budget::Bytes(limits::SEND_BUDGET_PER_TURN));
        assert_eq!(t.budget(true, u64::MAX, now), Budget::Bytes(limits::SEND_BUDGET_PER_TURN));
        // --max-rate alone: downloads are the kernel's business.
        let mut t = Throttle::new(1 << 20, None);
        assert_eq!(t.pacing_rate(), 1 << 20);
        let total = Some(Arc::new(SharedBucket::new(4 << 20, now)));
        assert_eq!(Throttle::new(0, total.clone()).pacing_rate(), 4 << 20, "paced at the total");
        assert_eq!(Throttle::new(8 << 20, total.clone()).pacing_rate(), 4 << 20);
        assert_eq!(Throttle::new(1 << 20, total).pacing_rate(), 1 << 20);
        assert_eq!(t.budget(false, u64::MAX, now), Budget::Bytes(limits::SEND_BUDGET_PER_TURN));
    }

    #[test]
    fn a_limited_upload_moves_its_chunk_then_waits_for_the_refill() {
        let now = Instant::now();
        let rate = 1 << 20;
        let chunk = chunk_for(rate, 1);
        let mut t = Throttle::new(rate, None);
        assert_eq!(t.budget(true, u64::MAX, now), Budget::Bytes(chunk), "the first chunk is the burst");
        t.used(chunk / 2);
        assert_eq!(t.budget(true, u64::MAX, now), Budget::Bytes(chunk - chunk / 2), "credit is kept until used");
        t.used(chunk);
        let Budget::Wait(due) = t.budget(true, u64::MAX, now) else {
            panic!("an empty bucket must make the upload wait")
        };
        let want = Duration::from_secs_f64(chunk as f64 / rate as f64);
        assert!((due - now).abs_diff(want) < Duration::from_millis(1), "{:?} vs {want:?}", due - now);
        assert_eq!(t.until, Some(due));
        assert_eq!(t.budget(true, u64::MAX, now + want / 2), Budget::Wait(due), "no bytes before the due time");
        assert_eq!(t.budget(true, u64::MAX, due), Budget::Bytes(chunk));
        assert_eq!(t.until, None);
    }

    #[test]
    fn the_total_bucket_is_shared_and_refunded() {
        let now = Instant::now();
        let total = Arc::new(SharedBucket::new(1 << 20, now));
        let mut a = Throttle::new(0, Some(total.clone()));
        let mut b = Throttle::new(0, Some(total.clone()));
        let Budget::Bytes(first) = a.budget(false, u64::MAX, now) else { panic!("a full bucket grants at once") };
        // b asks while a holds the whole burst: b waits.
        assert!(matches!(b.budget(false, u64::MAX, now), Budget::Wait(_)));
        // a ends without moving anything: its credit goes back, and the
        // sharer count drops back.
        a.end();
        b.end();
        let mut c = Throttle::new(0, Some(total.clone()));
        let Budget::Bytes(n) = c.budget(false, u64::MAX, now + Duration::from_secs(1)) else { panic!("refunded") };
        assert_eq!(n, first);
        drop(c);
        assert_eq!(total.chunk(), chunk_for(1 << 20, 1));
    }

    #[test]
    fn a_small_transfer_reserves_only_what_it_has_left() {
        let now = Instant::now();
        let rate = 1 << 30;
        let total = Arc::new(SharedBucket::new(rate, now));
        assert!(total.chunk() > 1 << 20, "one sharer's chunk is big");
        // 64 transfers of 4 KiB each start at once: each reserves 4 KiB, so
        // together they stay far inside the burst and none waits.
        let mut ts: Vec<_> = (0..64).map(|_| Throttle::new(0, Some(total.clone()))).collect();
        for t in &mut ts {
            assert_eq!(t.budget(false, 4096, now), Budget::Bytes(4096));
        }
        // Unknown size: a whole chunk, as before.
        let mut big = Throttle::new(0, Some(total.clone()));
        assert_eq!(big.budget(false, u64::MAX, now), Budget::Bytes(total.chunk().min(limits::SEND_BUDGET_PER_TURN)));
    }
}
