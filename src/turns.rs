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
}
