//! Accounts and permissions: password hashes, the `--users` file, per-folder `--rules`,
//! `--deny` patterns, and the `mirrorftpd passwd` subcommand.
//!
//! Everything here is pure or start-up work except [`hash::verify`], which is slow on purpose
//! and belongs on a helper thread.

pub mod access;
pub mod hash;
pub mod passwd;
pub mod perms;
pub mod rules;
pub mod users;
