//! SFTP version 3 over SSH: the SSH layer (`ssh`: sunset driven sans-I/O by
//! our reactor; `hostkey`, `authkeys`) and our own sans-I/O engine over the
//! shared jail, rules and limits (`proto` frames and parses packets, `attrs`
//! the file attributes, `engine` holds a session's state and API (feed,
//! process, drain; the disk seam), `files` and `tree` run the requests,
//! `handles` keeps the open files and directories); `session` drives both
//! for one connection in a worker (`login` its SSH events and logs, `nowait`
//! the non-blocking disk path, `keys` the host and authorized keys).

pub mod attrs;
pub mod authkeys;
pub mod engine;
mod files;
pub mod handles;
pub mod hostkey;
pub mod keys;
mod login;
pub mod nowait;
pub mod proto;
pub mod session;
pub mod ssh;
mod tree;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
