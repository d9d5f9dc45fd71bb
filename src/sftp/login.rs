//! An SFTP session's SSH events: logins (passwords checked on the helper
//! pool, public keys against `--authorized-keys`, anonymous only with
//! `--sftp-anonymous`), failed-login delays and bans shared with FTP, the
//! subsystem that starts the engine; and the session's log lines.

use std::time::Instant;

use super::engine::Event as EngineEvent;
use super::session::{Cx, SftpSession, State};
use super::ssh::{SshError, SshEvent};
use crate::auth::access::Access;
use crate::log::{self, Event, Level};
use crate::obs::metrics;
use crate::obs::xferlog;
use crate::pool::{LoginJob, account_access};
use crate::services::Shared;

/// The user name of anonymous SFTP logins (any password).
const ANONYMOUS: &str = "anonymous";

impl SftpSession {
    /// Answers one SSH event.
    pub(super) fn on_event(&mut self, ev: SshEvent, cx: &mut Cx<'_>) -> Result<(), SshError> {
        match ev {
            SshEvent::PasswordAuth { user, password } => {
                self.user = user.clone();
                if user == ANONYMOUS && cx.shared.config.sftp_anonymous {
                    self.access = Some(Access::anonymous());
                    return self.ssh.resume_auth(true);
                }
                let job = LoginJob {
                    slot: cx.slot,
                    user,
                    password: password.as_bytes().to_vec(),
                    done: cx.verdicts.clone(),
                    waker: cx.waker.clone(),
                };
                match cx.shared.pool.submit(job) {
                    Ok(()) => self.state = State::Verifying,
                    Err(mut job) => {
                        // The helpers are swamped: refused, not counted as a failure.
                        job.password.iter_mut().for_each(|b| *b = 0);
                        log::warn(format_args!("session {}: login queue full; login refused", self.id));
                        self.ssh.resume_auth(false)?;
                    }
                }
            }
            SshEvent::PubkeyAuth { user, key, signed } => {
                self.user = user.clone();
                let known = cx.keys.allows(&user, &key);
                if !signed || !known {
                    // A query (or an unknown key): no failure is counted, as
                    // clients offer several keys in turn.
                    return self.ssh.resume_auth(known);
                }
                let cfg = &cx.shared.config;
                let access = account_access(&cx.shared.auth(), &user, cfg.deny_dotfiles);
                let ok = access.is_some();
                self.access = access;
                if ok {
                    if let Some(fp) = super::authkeys::fingerprint(&key) {
                        log::info(format_args!("session {}: {user} proved key {fp}", self.id));
                    }
                }
                self.ssh.resume_auth(ok)?;
            }
            SshEvent::Authenticated { user } => {
                self.state = State::Open;
                self.user = user;
                self.log_login();
            }
            SshEvent::SubsystemSftp => {
                if let Err(why) = self.start_engine(cx) {
                    self.finish(&why);
                }
            }
            SshEvent::ChannelEof | SshEvent::ChannelClosed => self.channel_eof(),
            SshEvent::Closed => self.finish("client closed the connection"),
            SshEvent::SessionOpened | SshEvent::ChannelData => {}
        }
        Ok(())
    }

    /// A helper thread decided a password login.
    pub fn login_verdict(&mut self, access: Option<Access>, shared: &Shared, now: Instant) {
        if self.state != State::Verifying {
            return;
        }
        match access {
            Some(a) => {
                self.access = Some(a);
                self.state = State::Auth;
                if let Err(e) = self.ssh.resume_auth(true) {
                    self.finish(&e.to_string());
                }
            }
            None => {
                self.login_failures += 1;
                self.log_login_failed();
                let (until, close) = shared.after_failed_login(self.peer.ip(), self.login_failures, now);
                self.state = State::Failed { until, close };
            }
        }
    }

    fn ev(&self, level: Level, event: &'static str) -> Event<'_> {
        Event::of_session(level, event, self.id, self.peer, &self.user)
    }

    pub(super) fn log_connect(&self) {
        let ev = self.ev(Level::Info, "connect");
        log::event(&ev, format_args!("session {} sftp connect from {} (worker {})", self.id, self.peer, self.worker));
    }

    fn log_login(&self) {
        metrics::add(&self.metrics.logins_ok[metrics::SFTP], 1);
        let ev = self.ev(Level::Info, "login");
        log::event(
            &ev,
            format_args!("session {} sftp login {} from {} (worker {})", self.id, self.user, self.peer, self.worker),
        );
    }

    fn log_login_failed(&self) {
        metrics::add(&self.metrics.logins_failed[metrics::SFTP], 1);
        let mut ev = self.ev(Level::Info, "login_failed");
        ev.count = Some(u64::from(self.login_failures));
        log::event(
            &ev,
            format_args!(
                "session {} sftp failed login as {:?} from {} ({} in this session)",
                self.id, self.user, self.peer, self.login_failures
            ),
        );
    }

    /// A transfer ended or the tree changed.
    pub(super) fn log_engine_event(&mut self, e: EngineEvent, _now: Instant) {
        match e {
            EngineEvent::Transfer { path, upload, bytes, complete, took } => {
                let secs = took.as_secs_f64();
                self.transfers += 1;
                self.bytes += bytes;
                let result = if complete { "ok" } else { "incomplete" };
                let mut ev = self.ev(Level::Info, "transfer");
                ev.cmd = Some(if upload { "WRITE" } else { "READ" });
                ev.path = Some(path.as_bytes());
                ev.bytes = Some(bytes);
                ev.secs = Some(secs);
                ev.reason = Some(result);
                log::event(
                    &ev,
                    format_args!(
                        "session {} {} sftp {} {} bytes={bytes} result={result} secs={secs:.3}",
                        self.id,
                        self.user,
                        if upload { "put" } else { "get" },
                        String::from_utf8_lossy(path.as_bytes()).escape_debug(),
                    ),
                );
                let outcome = if complete { metrics::OK } else { metrics::ABORTED };
                let dir = if upload { metrics::UPLOAD } else { metrics::DOWNLOAD };
                self.metrics.transfer(metrics::SFTP, dir, outcome, bytes);
                if log::xferlog_enabled() {
                    let anonymous = self.engine_anonymous();
                    let rec = xferlog::Record {
                        secs,
                        host: self.peer.ip(),
                        bytes,
                        path: path.as_bytes(),
                        ascii: false,
                        upload,
                        anonymous,
                        user: &self.user,
                        complete,
                        service: "sftp",
                    };
                    log::xferlog(&rec);
                }
            }
            EngineEvent::Change { op, path, error } => {
                let mut ev = self.ev(Level::Info, "change");
                ev.cmd = Some(op);
                ev.path = Some(path.as_bytes());
                ev.reason = error.as_deref();
                log::event(
                    &ev,
                    format_args!(
                        "session {} {} sftp {op} {} {}",
                        self.id,
                        self.user,
                        String::from_utf8_lossy(path.as_bytes()).escape_debug(),
                        error.as_deref().unwrap_or("ok")
                    ),
                );
            }
        }
    }

    pub(super) fn log_end(&self, reason: &str) {
        let secs = self.connected_at.elapsed().as_secs_f64();
        log::Event::session_end(self.id, self.peer, &self.user, self.transfers, self.bytes, secs, reason);
    }
}
