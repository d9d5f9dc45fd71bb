//! Commands read while a transfer owns the data channel. The control
//! connection is read all along (RFC 959 §4.1.3), so ABOR and STAT are heard
//! however many commands came before them; the others wait for the end of
//! the transfer in a bounded queue and then run in the order they came.

use std::collections::VecDeque;

use crate::limits;
use crate::proto::command::{self, Verb};
use crate::proto::reply;

use super::{Cx, Session, observe};

/// What a command read during a transfer does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum During {
    /// Runs at once, ahead of any waiting command: ABOR, STAT.
    Now,
    /// Runs at once when nothing waits, else waits its turn (its reply must
    /// not overtake theirs): NOOP.
    InTurn,
    /// Waits, with a slot kept free for it: QUIT and REIN, which RFC 959
    /// lets the transfer in progress complete before they act.
    Reserved,
    /// Waits for the end of the transfer.
    Wait,
}

/// How `line` (Telnet sequences removed) is handled during a transfer.
pub fn during_transfer(line: &[u8]) -> During {
    match command::parse(line).map(|c| c.verb) {
        Ok(Verb::Abor | Verb::Stat) => During::Now,
        Ok(Verb::Noop) => During::InTurn,
        Ok(Verb::Quit | Verb::Rein) => During::Reserved,
        _ => During::Wait,
    }
}

/// Slots beyond MAX_HELD_COMMANDS that only QUIT and REIN may take.
const RESERVED_SLOTS: usize = 2;

/// The waiting lines, oldest first (Telnet sequences already removed).
/// Invariant: `bytes` is the sum of their lengths; at most
/// MAX_HELD_COMMANDS ordinary lines and MAX_HELD_BYTES bytes of them, plus
/// RESERVED_SLOTS lines of QUIT or REIN (a few bytes each: they take no
/// argument).
#[derive(Default)]
pub struct Held {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Queues a copy of `line` if the bounds allow it.
    pub fn push(&mut self, line: &[u8], reserved: bool) -> bool {
        let fits = if reserved {
            self.lines.len() < limits::MAX_HELD_COMMANDS + RESERVED_SLOTS
        } else {
            self.lines.len() < limits::MAX_HELD_COMMANDS && self.bytes + line.len() <= limits::MAX_HELD_BYTES
        };
        if fits {
            self.bytes += line.len();
            self.lines.push_back(line.to_vec());
        }
        fits
    }

    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let line = self.lines.pop_front()?;
        self.bytes -= line.len();
        if self.lines.is_empty() {
            // An idle session keeps no queue memory.
            self.lines = VecDeque::new();
        }
        Some(line)
    }

    /// Drops every waiting line (TLS begins: what came in plaintext after
    /// AUTH is never executed).
    pub fn clear(&mut self) {
        self.lines = VecDeque::new();
        self.bytes = 0;
    }
}

impl Session {
    /// A line read while a transfer runs: true when it runs now; otherwise
    /// it waits for the end of the transfer, or is refused when too many
    /// wait already.
    pub(super) fn admit_during_transfer(&mut self, line: &[u8], cx: &mut Cx<'_>) -> bool {
        let how = during_transfer(line);
        match how {
            During::Now => return true,
            During::InTurn if self.held.is_empty() => return true,
            _ => {}
        }
        if !self.held.push(line, how == During::Reserved) {
            self.last_verb = observe::Verb::of_line(line);
            self.protocol_error(
                reply::BAD_SEQUENCE,
                "Too many commands waiting for the transfer to end; command dropped.",
                cx,
            );
            return false;
        }
        if how == During::Reserved && command::parse(line).is_ok_and(|c| c.verb == Verb::Rein) {
            // Heard now, done once the transfer ends (its 220 follows then).
            self.reply(reply::SERVICE_READY_IN, "REIN: the login ends once the transfer in progress completes.");
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abor_and_stat_run_at_once_noop_in_turn_quit_rein_reserved() {
        assert_eq!(during_transfer(b"ABOR"), During::Now);
        assert_eq!(during_transfer(b"abor"), During::Now);
        assert_eq!(during_transfer(b"STAT"), During::Now);
        assert_eq!(during_transfer(b"STAT big.bin"), During::Now);
        assert_eq!(during_transfer(b"NOOP"), During::InTurn);
        assert_eq!(during_transfer(b"QUIT"), During::Reserved);
        assert_eq!(during_transfer(b"REIN"), During::Reserved);
        assert_eq!(during_transfer(b"REIN x"), During::Wait);
        assert_eq!(during_transfer(b"RETR x"), During::Wait);
        assert_eq!(during_transfer(b"PASV"), During::Wait);
        assert_eq!(during_transfer(b"\xff\xfe"), During::Wait);
        assert_eq!(during_transfer(b""), During::Wait);
    }

    #[test]
    fn queue_is_bounded_in_lines_and_bytes_with_slots_for_quit_and_rein() {
        let mut h = Held::default();
        for i in 0..limits::MAX_HELD_COMMANDS {
            assert!(h.push(format!("SIZE {i}").as_bytes(), false), "line {i}");
        }
        assert!(!h.push(b"SIZE x", false), "an ordinary line beyond the count bound");
        assert!(h.push(b"REIN", true));
        assert!(h.push(b"QUIT", true));
        assert!(!h.push(b"QUIT", true), "beyond the reserved slots");
        assert_eq!(h.len(), limits::MAX_HELD_COMMANDS + RESERVED_SLOTS);
        assert_eq!(h.pop().as_deref(), Some(b"SIZE 0".as_slice()), "oldest first");
        h.clear();
        assert!(h.is_empty() && h.pop().is_none());

        let big = vec![b'x'; limits::MAX_HELD_BYTES / 2];
        assert!(h.push(&big, false) && h.push(&big, false));
        assert!(!h.push(b"NOOP", false), "an ordinary line beyond the byte bound");
        assert!(h.push(b"QUIT", true));
        assert!(h.pop().is_some() && h.push(b"SIZE y", false), "room again once one ran");
    }
}
