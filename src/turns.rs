//! Fair turns: the order in which a worker drives its sessions, and how long
//! the sessions that always have more (bulk transfers) may run per turn.
//!
//! A turn has two parts. First every session with something new (an event, a
//! timer, a login verdict, a disk completion, a new connection) that is not
//! bulk runs, in the order its events came: a command, a reply, a small file.
//! Then the run queue: bulk sessions (a transfer past `limits::BULK_AFTER`
//! bytes, or a session that stopped on its budget) take turns in FIFO order,
//! each with one quantum (`limits::SEND_BUDGET_PER_TURN`), each at most once,
//! until `limits::TURN_SLICE` has passed; the rest wait, still queued, for the
//! next turn, which polls without sleeping. So a small operation waits at
//! most about one slice per step, whatever the number of big transfers.
//!
//! A slice per turn still gives bulk most of a busy worker (a 1 ms slice
//! after every short round of small operations), so while small operations
//! are active the bulk part also runs within a share of the worker's time
//! (`BulkShare`, `--bulk-share`): bulk earns credit while the worker does
//! anything else, and waits when it has spent it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the first part of a turn does with a session that has news.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Run it now.
    Now,
    /// Put it at the back of the run queue (bulk).
    Queue,
    /// Nothing: it waits in the run queue already, its readiness recorded.
    Queued,
}

/// Chooses the lane of a session with news: `queued` when it waits in the
/// run queue already, `bulk` when its transfer has moved a lot.
pub fn lane(queued: bool, bulk: bool) -> Lane {
    if queued {
        Lane::Queued
    } else if bulk {
        Lane::Queue
    } else {
        Lane::Now
    }
}

/// Sessions to drive again without waiting for an event, in the order they
/// get their turn. The worker keeps each session in it at most once.
pub struct RunQueue<K> {
    q: VecDeque<K>,
}

impl<K: Copy> Default for RunQueue<K> {
    fn default() -> Self {
        RunQueue { q: VecDeque::new() }
    }
}

impl<K: Copy> RunQueue<K> {
    pub fn push(&mut self, k: K) {
        self.q.push_back(k);
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// The second part of a turn: drives the queued sessions in order, each
    /// at most once, until `slice` has passed since `start` (by `clock`,
    /// read after each one). The first is always driven, so the queue moves
    /// however long the first part took. `drive` returns true when the
    /// session wants another turn: it goes to the back. Returns how many ran.
    pub fn run(
        &mut self,
        start: Instant,
        slice: Duration,
        mut clock: impl FnMut() -> Instant,
        mut drive: impl FnMut(K) -> bool,
    ) -> usize {
        let n = self.q.len();
        let mut ran = 0;
        while ran < n {
            let Some(k) = self.q.pop_front() else { break };
            ran += 1;
            if drive(k) {
                self.q.push_back(k);
            }
            if clock().saturating_duration_since(start) >= slice {
                break;
            }
        }
        ran
    }
}

/// How much of a worker's time the bulk part of its turns may take while
/// sessions with little to do are active: the rest goes to them (and, on a
/// busy machine, to whoever else needs the CPU). Bulk transfers earn credit
/// while the worker does anything else (runs small operations, or waits for
/// events): `share / (1 - share)` of that time. While a small operation came
/// within `ACTIVE`, the bulk part runs only on credit; otherwise (nothing but
/// bulk transfers) it runs a whole slice every turn, as if unlimited.
pub struct BulkShare {
    /// Credit earned per nanosecond of other work, in 1/1024ths.
    ratio_1024: u64,
    /// Credit in nanoseconds (negative: the last quantum overdrew it).
    credit: i64,
    /// End of the last bulk part (or of the last turn without one).
    mark: Instant,
    /// The last turn that ran a small operation.
    news: Option<Instant>,
}

/// A small operation this recent makes the bulk part run on credit.
pub const ACTIVE: Duration = Duration::from_millis(5);
/// Most credit kept (one slice's worth): a pause does not buy a long burst.
const CREDIT_CAP: i64 = 1_000_000;

impl BulkShare {
    /// `share_percent`: the bulk part's most of the worker's time while small
    /// operations are active; 100 means no limit but the slice.
    pub fn new(share_percent: u8, now: Instant) -> Self {
        let s = u64::from(share_percent.clamp(1, 100));
        let ratio_1024 = if s >= 100 { u64::MAX } else { s * 1024 / (100 - s) };
        BulkShare { ratio_1024, credit: CREDIT_CAP, mark: now, news: None }
    }

    fn active(&self, now: Instant) -> bool {
        self.ratio_1024 != u64::MAX && self.news.is_some_and(|t| now.saturating_duration_since(t) < ACTIVE)
    }

    /// A small operation ran in this turn (whether or not bulk transfers
    /// are waiting).
    pub fn small(&mut self, now: Instant) {
        self.news = Some(now);
    }

    /// The start of a turn's bulk part. Returns how long it may run (its
    /// first quantum runs whatever the slice: the credit may go below zero,
    /// to be earned back), or `None` when it must wait (credit below zero
    /// while small operations are active).
    pub fn begin(&mut self, now: Instant, slice: Duration) -> Option<Duration> {
        let other = now.saturating_duration_since(self.mark).as_nanos().min(u128::from(u32::MAX)) as u64;
        self.mark = now;
        if !self.active(now) {
            self.credit = CREDIT_CAP;
            return Some(slice);
        }
        let earned = (other.saturating_mul(self.ratio_1024) >> 10).min(CREDIT_CAP as u64) as i64;
        self.credit = (self.credit + earned).min(CREDIT_CAP);
        (self.credit >= 0).then(|| slice.min(Duration::from_nanos(self.credit as u64)))
    }

    /// The end of a bulk part that began at `start`.
    pub fn end(&mut self, start: Instant, now: Instant) {
        let used = now.saturating_duration_since(start).as_nanos().min(u128::from(u32::MAX)) as i64;
        if self.active(now) {
            self.credit -= used;
        }
        self.mark = now;
    }

    /// How long the worker may sleep in its poll while bulk transfers wait:
    /// zero when they may run now, else until the credit is earned back (or
    /// until small operations count as over).
    pub fn wait(&self, now: Instant) -> Duration {
        if !self.active(now) || self.credit >= 0 {
            return Duration::ZERO;
        }
        let need = ((-self.credit) as u64).saturating_mul(1024) / self.ratio_1024.max(1);
        let over = self.news.map_or(Duration::ZERO, |t| (t + ACTIVE).saturating_duration_since(now));
        Duration::from_nanos(need).min(over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn news_runs_now_unless_bulk_or_already_queued() {
        assert_eq!(lane(false, false), Lane::Now);
        assert_eq!(lane(false, true), Lane::Queue);
        assert_eq!(lane(true, false), Lane::Queued);
        assert_eq!(lane(true, true), Lane::Queued);
    }

    /// A fake clock: each drive costs `cost`.
    fn timed(q: &mut RunQueue<u32>, slice_ms: u64, cost_ms: u64, wants_more: bool) -> Vec<u32> {
        let t0 = Instant::now();
        let now = Cell::new(t0);
        let mut order = Vec::new();
        q.run(
            t0,
            Duration::from_millis(slice_ms),
            || now.get(),
            |k| {
                order.push(k);
                now.set(now.get() + Duration::from_millis(cost_ms));
                wants_more
            },
        );
        order
    }

    #[test]
    fn a_turn_stops_when_its_slice_is_used_and_the_rest_come_first_next_turn() {
        let mut q = RunQueue::default();
        (0..8).for_each(|k| q.push(k));
        // A 3 ms slice, each drive costs 1 ms.
        assert_eq!(timed(&mut q, 3, 1, true), vec![0, 1, 2]);
        // The ones not driven keep their place ahead of those that just ran.
        assert_eq!(timed(&mut q, 3, 1, true), vec![3, 4, 5]);
        assert_eq!(timed(&mut q, 3, 1, true), vec![6, 7, 0]);
        assert_eq!(q.len(), 8);
    }

    #[test]
    fn each_session_runs_at_most_once_per_turn() {
        let mut q = RunQueue::default();
        (0..3).for_each(|k| q.push(k));
        assert_eq!(timed(&mut q, 1000, 0, true), vec![0, 1, 2]);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn the_first_always_runs_and_finished_ones_leave() {
        let mut q = RunQueue::default();
        (0..3).for_each(|k| q.push(k));
        // A slice already used up (the first part of the turn was long).
        assert_eq!(timed(&mut q, 0, 5, false), vec![0]);
        assert_eq!(timed(&mut q, 1000, 0, false), vec![1, 2]);
        assert!(q.is_empty());
        assert_eq!(timed(&mut q, 1000, 0, false), Vec::<u32>::new());
    }

    /// Simulates `turns` turns: each runs `news` of small operations (if
    /// any), then a bulk part of `quantum`-long drives for as long as the
    /// share allows (at least one, as `RunQueue::run`), or a sleep of
    /// `wait()` when no small work came. Returns bulk time / all time.
    fn bulk_fraction(share: u8, turns: u32, news: Duration, quantum: Duration) -> f64 {
        let t0 = Instant::now();
        let mut t = t0;
        let mut b = BulkShare::new(share, t0);
        let mut bulk = Duration::ZERO;
        for _ in 0..turns {
            t += news;
            if !news.is_zero() {
                b.small(t);
            }
            match b.begin(t, Duration::from_millis(1)) {
                Some(slice) => {
                    let start = t;
                    loop {
                        t += quantum;
                        if t - start >= slice {
                            break;
                        }
                    }
                    bulk += t - start;
                    b.end(start, t);
                }
                None => t += b.wait(t).max(Duration::from_micros(1)),
            }
        }
        bulk.as_secs_f64() / (t - t0).as_secs_f64()
    }

    #[test]
    fn bulk_takes_its_share_while_small_operations_are_active() {
        for share in [10u8, 30, 50] {
            let f = bulk_fraction(share, 10_000, Duration::from_micros(200), Duration::from_micros(250));
            let want = f64::from(share) / 100.0;
            assert!((f - want).abs() < 0.03, "share {share}%: bulk took {:.3} of the time", f);
        }
        // 100: the old rule, a whole slice after every small part.
        let f = bulk_fraction(100, 1_000, Duration::from_micros(200), Duration::from_micros(250));
        assert!(f > 0.8, "no limit: bulk took {f:.3}");
    }

    #[test]
    fn without_small_operations_bulk_runs_a_whole_slice_every_turn() {
        let t0 = Instant::now();
        let mut b = BulkShare::new(10, t0);
        let mut t = t0;
        for _ in 0..100 {
            assert_eq!(b.begin(t, Duration::from_millis(1)), Some(Duration::from_millis(1)));
            let start = t;
            t += Duration::from_millis(1);
            b.end(start, t);
            assert_eq!(b.wait(t), Duration::ZERO);
        }
        assert!(bulk_fraction(10, 1_000, Duration::ZERO, Duration::from_micros(250)) > 0.99);
    }

    #[test]
    fn credit_used_up_makes_bulk_wait_until_earned_back_or_small_work_is_over() {
        let t0 = Instant::now();
        let mut b = BulkShare::new(20, t0);
        // Small work now; the stored credit (one slice) is spent, and more.
        b.small(t0);
        let slice = b.begin(t0, Duration::from_millis(1)).expect("credit to start with");
        assert_eq!(slice, Duration::from_millis(1));
        let t1 = t0 + Duration::from_millis(2);
        b.end(t0, t1);
        // 1 ms overdrawn at 20% (a quarter of other time earns it): 4 ms to
        // earn back, but small work counts as over ACTIVE after t0.
        let w = b.wait(t1);
        assert_eq!(w, ACTIVE - Duration::from_millis(2));
        assert_eq!(b.begin(t1, Duration::from_millis(1)), None, "no bulk on debt while small work is active");
        // Small work stays active: the debt is paid back by other time.
        let t2 = t1 + Duration::from_millis(1);
        b.small(t2);
        assert_eq!(b.begin(t2, Duration::from_millis(1)), None);
        let w = b.wait(t2);
        assert_eq!(w, Duration::from_millis(3), "debt 1 ms - 0.25 ms earned = 0.75 ms, x4");
        let t3 = t2 + w;
        b.small(t3);
        assert!(b.begin(t3, Duration::from_millis(1)).is_some(), "earned back");
        // Once small work is over, bulk runs whole slices again.
        let t4 = t3 + ACTIVE;
        b.end(t3, t3 + Duration::from_millis(3));
        assert_eq!(b.begin(t4, Duration::from_millis(1)), Some(Duration::from_millis(1)));
    }

    #[test]
    fn share_100_never_waits() {
        let t0 = Instant::now();
        let mut b = BulkShare::new(100, t0);
        for i in 0..10u32 {
            let t = t0 + Duration::from_millis(u64::from(i) * 3);
            b.small(t);
            assert_eq!(b.begin(t, Duration::from_millis(1)), Some(Duration::from_millis(1)));
            b.end(t, t + Duration::from_millis(3));
            assert_eq!(b.wait(t + Duration::from_millis(3)), Duration::ZERO);
        }
    }
}
