//! A session's identity in its worker (slab key and generation) and the
//! mio token that packs it with the socket's role: what a protocol session
//! needs to name itself to its loop and to the helper threads.

use mio::Token;

/// Which socket of a session an event is for (the low 2 bits of a token).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Ctrl = 0,
    Listener = 1,
    Data = 2,
}

const GEN_BITS: u32 = 14;
pub(crate) const GEN_MASK: usize = (1 << GEN_BITS) - 1;
pub(crate) const KEY_SHIFT: u32 = GEN_BITS + 2;

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

pub(crate) fn decode(t: Token) -> (usize, u16, usize) {
    (t.0 >> KEY_SHIFT, ((t.0 >> 2) & GEN_MASK) as u16, t.0 & 3)
}

/// What the worker should do with the session after a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for readiness or a deadline.
    Idle,
    /// Stopped on a budget with work left: drive again next turn.
    Yield,
    /// Remove and close.
    Close,
}
