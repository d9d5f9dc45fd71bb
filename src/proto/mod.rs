//! The FTP control-connection protocol as pure functions over bytes: command parsing, replies, addresses.
//!
//! Nothing here does I/O or allocates beyond the caller's output buffer, and nothing panics on
//! any input: every function takes the raw bytes a client sent and returns `Option`/`Result`.

pub mod addr;
pub mod command;
pub mod proxy;
pub mod reply;
