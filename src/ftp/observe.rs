//! What a session tells the logs and metrics: connect, login, error replies
//! (with the command verb, never its argument: PASS stays secret), transfers
//! (session log, xferlog, counters) and the disconnect.

use crate::log::{self, Event, Level};
use crate::obs::metrics::{self, WorkerMetrics};
use crate::obs::xferlog;

use super::Session;
use super::transfer::{self, Job};

/// The verb of the last command line (first word, letters only, at most 8),
/// kept without allocating.
#[derive(Clone, Copy, Default)]
pub struct Verb {
    buf: [u8; 8],
    len: u8,
}

impl Verb {
    pub fn of_line(line: &[u8]) -> Verb {
        let mut v = Verb::default();
        for &b in line.iter().take_while(|b| !b.is_ascii_whitespace()).take(8) {
            if !b.is_ascii_alphabetic() {
                break;
            }
            v.buf[v.len as usize] = b.to_ascii_uppercase();
            v.len += 1;
        }
        v
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

/// The counters of no worker: a session uses them until its worker attaches it.
pub fn detached() -> &'static WorkerMetrics {
    &metrics::DETACHED
}

impl Session {
    fn ev(&self, level: Level, event: &'static str) -> Event<'_> {
        Event::of_session(level, event, self.id, self.peer, &self.user_name)
    }

    pub(super) fn log_connect(&self) {
        let ev = self.ev(Level::Info, "connect");
        match self.proxy {
            // --proxy-protocol: `peer` is the client's real address.
            Some(balancer) => log::event(
                &ev,
                format_args!(
                    "session {} connect from {} via {balancer}{} (worker {})",
                    self.id,
                    self.peer,
                    if self.peer == balancer { ", the proxy's own connection" } else { "" },
                    self.worker
                ),
            ),
            None => {
                log::event(&ev, format_args!("session {} connect from {} (worker {})", self.id, self.peer, self.worker))
            }
        }
    }

    /// A login succeeded (anonymous, or a verdict from the helper threads).
    pub(super) fn log_login(&self, user: &str) {
        metrics::add(&self.metrics.logins_ok[metrics::FTP], 1);
        let mut ev = self.ev(Level::Info, "login");
        ev.user = Some(user);
        log::event(&ev, format_args!("session {} login {} from {} (worker {})", self.id, user, self.peer, self.worker));
    }

    pub(super) fn log_login_failed(&self, user: &str) {
        metrics::add(&self.metrics.logins_failed[metrics::FTP], 1);
        let mut ev = self.ev(Level::Info, "login_failed");
        ev.user = Some(user);
        ev.count = Some(u64::from(self.login_failures));
        log::event(
            &ev,
            format_args!(
                "session {} failed login as {:?} from {} ({} in this session)",
                self.id, user, self.peer, self.login_failures
            ),
        );
    }

    /// Every reply passes here; codes of 400 and more are counted and logged.
    #[inline]
    pub(super) fn note_reply(&self, code: u16) {
        if code >= 400 {
            self.error_reply(code);
        }
    }

    #[cold]
    fn error_reply(&self, code: u16) {
        self.metrics.error_reply(code);
        let mut ev = self.ev(Level::Info, "error_reply");
        let cmd = self.last_verb.as_str();
        ev.cmd = Some(cmd);
        ev.code = Some(code);
        let cmd = if cmd.is_empty() { "-" } else { cmd };
        log::event(&ev, format_args!("session {} {} reply {code} to {cmd}", self.id, self.user()));
    }

    /// A transfer ended: `result` is "ok", "aborted" (ABOR) or why it failed.
    pub fn log_transfer(&self, job: &Job, result: &str) {
        let secs = transfer::secs_since(self.data.started);
        let mut ev = self.ev(Level::Info, "transfer");
        ev.cmd = Some(job.name());
        ev.path = Some(job.path().as_bytes());
        ev.bytes = Some(job.sent());
        ev.secs = Some(secs);
        ev.reason = Some(result);
        log::event(
            &ev,
            format_args!(
                "session {} {} {} {} bytes={} secs={:.3} result={}",
                self.id,
                self.user(),
                job.name(),
                String::from_utf8_lossy(job.path().as_bytes()).escape_debug(),
                job.sent(),
                secs,
                result
            ),
        );
        let (upload, ascii) = match job {
            Job::Retr(r) => (false, r.ascii),
            Job::Stor(s) => (true, s.ascii),
            Job::List(_) => return,
        };
        let outcome = match result {
            "ok" => metrics::OK,
            "aborted" | "client closed" => metrics::ABORTED,
            _ => metrics::FAILED,
        };
        let dir = if upload { metrics::UPLOAD } else { metrics::DOWNLOAD };
        self.metrics.transfer(metrics::FTP, dir, outcome, job.sent());
        if log::xferlog_enabled() {
            let rec = xferlog::Record {
                secs,
                host: self.peer.ip(),
                bytes: job.sent(),
                path: job.path().as_bytes(),
                ascii,
                upload,
                anonymous: self.access.anonymous,
                user: &self.access.user,
                complete: outcome == metrics::OK,
                service: "ftp",
            };
            log::xferlog(&rec);
        }
    }

    pub(super) fn end_log(&self, reason: &str) {
        if !self.admitted {
            return; // never a session (see `proxied.rs`, which logs why)
        }
        let secs = self.connected_at.elapsed().as_secs_f64();
        log::Event::session_end(self.id, self.peer, &self.user_name, self.transfers, self.bytes_sent, secs, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::Verb;

    #[test]
    fn verb_is_the_first_word_only() {
        assert_eq!(Verb::of_line(b"PASS secret").as_str(), "PASS");
        assert_eq!(Verb::of_line(b"retr /a b").as_str(), "RETR");
        assert_eq!(Verb::of_line(b"pass").as_str(), "PASS");
        assert_eq!(Verb::of_line(b"VERYLONGVERB x").as_str(), "VERYLONG");
        assert_eq!(Verb::of_line(b"AB1CD").as_str(), "AB");
        assert_eq!(Verb::of_line(b"\xffPASS").as_str(), "");
        assert_eq!(Verb::of_line(b"").as_str(), "");
    }
}
