//! What a protocol session needs from its loop, below both protocols and the
//! loop itself: its slot and token roles, and the state every worker shares.

pub mod shared;
pub mod slot;

pub use shared::{Refusal, Shared};
pub use slot::{Outcome, Role, Slot};
