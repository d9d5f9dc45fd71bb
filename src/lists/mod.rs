//! Formatted directory listings kept in memory (`--listing-cache`): the
//! shared LRU cache and the helper threads that fill it off the event loops.
//! A service beside the disk pool: sessions wait on a fill by their slot.

pub mod cache;
pub mod fill;
