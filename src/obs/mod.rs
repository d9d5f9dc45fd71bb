//! Observability: the transfer log (xferlog), the logger thread behind the
//! session log (`crate::log`), per-worker metrics and their HTTP endpoint.

pub mod http;
pub mod json;
pub mod metrics;
pub mod sink;
pub mod xferlog;
