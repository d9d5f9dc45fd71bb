//! The SSH layer of an SFTP session: sunset's server `Runner` driven
//! sans-I/O (bytes in, bytes out, a small event enum), with one session
//! channel carrying the `sftp` subsystem.
//!
//! The loop that owns the socket does, on each readiness or wake-up:
//! 1. `feed()` the bytes read (it returns how many it took: keep the rest and
//!    feed them again after step 3; it takes nothing while channel data
//!    waits to be read, while an authentication decision is pending, or
//!    during a key exchange until output is written);
//! 2. `poll()` until `None`, answering `PasswordAuth`/`PubkeyAuth` with
//!    `resume_auth()` (now, or later from a helper thread's verdict);
//! 3. `read_channel()` while it returns bytes, `write_channel()` up to
//!    `writable()`;
//! 4. write `output()` to the socket and `consume_output()` what was written,
//!    then `poll()` again: draining output lets sunset go on.
//!
//! Read interest: `wants_input()`. Write interest: `!output().is_empty()`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use sunset::event::DeferredAuth;
use sunset::sshwire::ssh_push_vec;
use sunset::{ChanData, ChanFail, ChanHandle, Event, Runner, ServEvent, Server};
use zeroize::Zeroizing;

use super::hostkey::HostKey;
use crate::limits::{SSH_CHANNEL_MAX_PACKET, SSH_CHANNEL_WINDOW};

/// sunset `progress()` calls in one `pump()` before the session is declared
/// runaway (each call handles at most one packet or one state change).
const MAX_PROGRESS_STEPS: usize = 1024;

/// What one SSH connection offers.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// Receive window advertised for the channel.
    pub window: u32,
    /// Largest channel data packet accepted.
    pub max_packet: u32,
    /// Offer password logins.
    pub password: bool,
    /// Offer public key logins.
    pub pubkey: bool,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings { window: SSH_CHANNEL_WINDOW, max_packet: SSH_CHANNEL_MAX_PACKET, password: true, pubkey: true }
    }
}

/// What happened on the connection.
pub enum SshEvent {
    /// A password login attempt. Answer with `resume_auth()`; nothing else
    /// is processed until then.
    PasswordAuth { user: String, password: Zeroizing<String> },
    /// A public key offered (`signed == false`: a query, allowing it asks the
    /// client to sign) or proven (`signed == true`: the signature was
    /// verified; allowing it logs the user in). `key` is the SSH wire blob,
    /// as in `authkeys::AuthorizedKeys::contains`. Answer with `resume_auth()`.
    PubkeyAuth { user: String, key: Vec<u8>, signed: bool },
    /// The user is logged in.
    Authenticated { user: String },
    /// The session channel is open (only one per connection is accepted).
    SessionOpened,
    /// The client started the `sftp` subsystem on the channel.
    SubsystemSftp,
    /// Channel data is waiting: `read_channel()`.
    ChannelData,
    /// The client will send no more channel data (e.g. `sftp`'s `bye`).
    ChannelEof,
    /// Both sides closed the channel.
    ChannelClosed,
    /// The connection is over (input closed and fully handled).
    Closed,
}

impl fmt::Debug for SshEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PasswordAuth { user, .. } => write!(f, "PasswordAuth({user})"),
            Self::PubkeyAuth { user, signed, .. } => write!(f, "PubkeyAuth({user}, signed={signed})"),
            Self::Authenticated { user } => write!(f, "Authenticated({user})"),
            Self::SessionOpened => f.write_str("SessionOpened"),
            Self::SubsystemSftp => f.write_str("SubsystemSftp"),
            Self::ChannelData => f.write_str("ChannelData"),
            Self::ChannelEof => f.write_str("ChannelEof"),
            Self::ChannelClosed => f.write_str("ChannelClosed"),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

/// A failure of the connection; the session should be closed.
#[derive(Debug)]
pub enum SshError {
    /// sunset refused the input or our use of it.
    Ssh(sunset::Error),
    /// `resume_auth()` without a pending decision.
    NoPendingAuth,
    /// sunset kept progressing without end (a bug, or a hostile peer).
    Runaway,
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ssh(e) => write!(f, "ssh: {e}"),
            Self::NoPendingAuth => f.write_str("ssh: no authentication decision is pending"),
            Self::Runaway => f.write_str("ssh: runaway progress loop"),
        }
    }
}

impl std::error::Error for SshError {}

impl From<sunset::Error> for SshError {
    fn from(e: sunset::Error) -> Self {
        SshError::Ssh(e)
    }
}

/// Where `finish_channel()` stands: each step waits for room in sunset's
/// output queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    No,
    ExitStatus(u32),
    Eof,
    Close,
    Sent,
}

/// One SSH server connection.
pub struct SshConn {
    runner: Runner<'static, Server>,
    host_key: Arc<HostKey>,
    settings: SshSettings,
    events: VecDeque<SshEvent>,
    pending_auth: Option<DeferredAuth>,
    /// The name given in the authentication requests.
    user: Option<String>,
    authenticated: bool,
    chan: Option<ChanHandle>,
    sftp: bool,
    data_announced: bool,
    eof_announced: bool,
    finish: Finish,
    defunct: bool,
}

impl SshConn {
    /// A new connection: the version line and key exchange offer are queued
    /// in `output()` at once.
    pub fn new(host_key: Arc<HostKey>, settings: SshSettings) -> Result<SshConn, SshError> {
        let mut runner = Runner::new_server_owned();
        runner.set_channel_window(settings.window, settings.max_packet)?;
        let mut conn = SshConn {
            runner,
            host_key,
            settings,
            events: VecDeque::new(),
            pending_auth: None,
            user: None,
            authenticated: false,
            chan: None,
            sftp: false,
            data_announced: false,
            eof_announced: false,
            finish: Finish::No,
            defunct: false,
        };
        conn.pump()?;
        Ok(conn)
    }

    /// Takes bytes received from the peer; returns how many were used.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, SshError> {
        let mut used = 0;
        for _ in 0..MAX_PROGRESS_STEPS {
            let n = if used < input.len() && self.wants_input() { self.runner.input(&input[used..])? } else { 0 };
            used += n;
            self.pump()?;
            if n == 0 {
                return Ok(used);
            }
        }
        Err(SshError::Runaway)
    }

    /// Whether `feed()` would take bytes now (read interest).
    pub fn wants_input(&self) -> bool {
        !self.defunct && self.pending_auth.is_none() && self.runner.is_input_ready()
    }

    /// The peer closed its side of the TCP connection.
    pub fn close_input(&mut self) -> Result<(), SshError> {
        self.runner.close_input();
        self.pump()
    }

    /// The next event, after letting sunset progress.
    pub fn poll(&mut self) -> Result<Option<SshEvent>, SshError> {
        if self.events.is_empty() {
            self.pump()?;
        }
        Ok(self.events.pop_front())
    }

    /// Bytes to send to the peer.
    pub fn output(&mut self) -> &[u8] {
        self.runner.output_buf()
    }

    /// `n` bytes of `output()` were sent. Call `poll()` afterwards.
    pub fn consume_output(&mut self, n: usize) {
        self.runner.consume_output(n)
    }

    /// Gives the decision on the pending `PasswordAuth`/`PubkeyAuth` event.
    pub fn resume_auth(&mut self, allow: bool) -> Result<(), SshError> {
        let token = self.pending_auth.take().ok_or(SshError::NoPendingAuth)?;
        self.runner.resume_auth(token, allow)?;
        self.pump()
    }

    /// Whether a `PasswordAuth`/`PubkeyAuth` event awaits `resume_auth()`.
    pub fn auth_pending(&self) -> bool {
        self.pending_auth.is_some()
    }

    /// The logged-in user.
    pub fn user(&self) -> Option<&str> {
        if self.authenticated { self.user.as_deref() } else { None }
    }

    /// Copies waiting channel data into `buf`; 0 when none waits. Reading a
    /// whole packet lets `feed()` take the next one, and returns window to
    /// the client as the reads add up.
    pub fn read_channel(&mut self, buf: &mut [u8]) -> Result<usize, SshError> {
        let Some(ch) = &self.chan else { return Ok(0) };
        let n = match self.runner.read_channel(ch, ChanData::Normal, buf) {
            Ok(n) => n,
            Err(sunset::Error::ChannelEOF) => 0,
            Err(e) => return Err(e.into()),
        };
        if self.runner.read_channel_ready().is_none() {
            self.data_announced = false;
        }
        Ok(n)
    }

    /// Channel bytes that may be written now: the least of the client's
    /// window, its maximum packet and room in sunset's output buffer. 0 also
    /// during a key exchange, after `finish_channel()`, or without a channel.
    pub fn writable(&self) -> usize {
        match &self.chan {
            Some(ch) => match self.runner.write_channel_ready(ch, ChanData::Normal) {
                Ok(Some(n)) if self.finish == Finish::No => n,
                _ => 0,
            },
            None => 0,
        }
    }

    /// Sends channel data; returns how much was taken (possibly 0: wait for
    /// output to drain or the client's window to open, see `writable()`).
    pub fn write_channel(&mut self, data: &[u8]) -> Result<usize, SshError> {
        let mut done = 0;
        while done < data.len() && self.writable() > 0 {
            let Some(ch) = &self.chan else { break };
            match self.runner.write_channel(ch, ChanData::Normal, &data[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(sunset::Error::ChannelEOF) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// Ends the channel: `exit-status`, EOF, then CLOSE (queued when
    /// sunset's output is full, sent as it drains). The client answers with
    /// CLOSE: `ChannelClosed`. Data written before this is sent first.
    pub fn finish_channel(&mut self, exit_status: u32) -> Result<(), SshError> {
        if self.finish == Finish::No && self.chan.is_some() {
            self.finish = Finish::ExitStatus(exit_status);
        }
        self.advance_finish()
    }

    /// Runs sunset until it has nothing more to do without new input, output
    /// room or a decision, turning its events into ours.
    fn pump(&mut self) -> Result<(), SshError> {
        for _ in 0..MAX_PROGRESS_STEPS {
            let idle = match self.runner.progress()? {
                Event::None => true,
                Event::Progressed | Event::Cli(_) => false,
                Event::Serv(ev) => {
                    match ev {
                        ServEvent::Hostkeys(h) => h.hostkeys(&[self.host_key.sign_key()])?,
                        ServEvent::FirstAuth(mut a) => {
                            // "none": refused, with the methods we offer.
                            a.set_auth_methods(self.settings.password, self.settings.pubkey)?;
                            self.user = a.username().ok().map(str::to_owned);
                            a.reject()?;
                        }
                        ServEvent::PasswordAuth(a) => {
                            let user = a.username().ok().map(str::to_owned);
                            let password = a.password().ok().map(|p| Zeroizing::new(p.to_owned()));
                            match (user, password) {
                                (Some(user), Some(password)) if self.settings.password => {
                                    self.pending_auth = Some(a.defer()?);
                                    self.user = Some(user.clone());
                                    self.events.push_back(SshEvent::PasswordAuth { user, password });
                                }
                                _ => a.reject()?,
                            }
                        }
                        ServEvent::PubkeyAuth(a) => {
                            let user = a.username().ok().map(str::to_owned);
                            let mut key = Vec::new();
                            let encoded = a.pubkey().and_then(|k| ssh_push_vec(&mut key, &k));
                            match user {
                                Some(user) if self.settings.pubkey && encoded.is_ok() => {
                                    let token = a.defer()?;
                                    let signed = !token.is_pubkey_query();
                                    self.pending_auth = Some(token);
                                    self.user = Some(user.clone());
                                    self.events.push_back(SshEvent::PubkeyAuth { user, key, signed });
                                }
                                _ => a.reject()?,
                            }
                        }
                        ServEvent::Authenticated => {
                            self.authenticated = true;
                            let user = self.user.clone().unwrap_or_default();
                            self.events.push_back(SshEvent::Authenticated { user });
                        }
                        ServEvent::OpenSession(o) => {
                            if self.chan.is_none() {
                                self.chan = Some(o.accept()?);
                                self.events.push_back(SshEvent::SessionOpened);
                            } else {
                                o.reject(ChanFail::SSH_OPEN_RESOURCE_SHORTAGE)?;
                            }
                        }
                        ServEvent::SessionSubsystem(r) => {
                            let ours = self.chan.as_ref().is_some_and(|c| c.num() == r.channel());
                            if ours && !self.sftp && r.command().is_ok_and(|c| c == "sftp") {
                                r.succeed()?;
                                self.sftp = true;
                                self.events.push_back(SshEvent::SubsystemSftp);
                            } else {
                                r.fail()?;
                            }
                        }
                        ServEvent::SessionShell(r) => r.fail()?,
                        ServEvent::SessionExec(r) => r.fail()?,
                        ServEvent::SessionPty(r) => r.fail()?,
                        ServEvent::SessionEnv(r) => r.fail()?,
                        ServEvent::Defunct => {
                            if !self.defunct {
                                self.defunct = true;
                                self.events.push_back(SshEvent::Closed);
                            }
                            return Ok(());
                        }
                        ServEvent::PollAgain => {}
                    }
                    false
                }
            };
            if idle {
                self.advance_finish()?;
                self.channel_state();
                return Ok(());
            }
        }
        Err(SshError::Runaway)
    }

    /// Announces channel data, EOF and close once each.
    fn channel_state(&mut self) {
        let Some(ch) = &self.chan else { return };
        let waiting = self.runner.read_channel_ready();
        if waiting.is_some() && !self.data_announced {
            self.data_announced = true;
            self.events.push_back(SshEvent::ChannelData);
        }
        if waiting.is_none() && !self.eof_announced && self.runner.is_channel_eof(ch) {
            self.eof_announced = true;
            self.events.push_back(SshEvent::ChannelEof);
        }
        if self.runner.is_channel_closed(ch) {
            if let Some(ch) = self.chan.take() {
                // Nothing more can be sent on it; sunset forgets it.
                self.finish = Finish::Sent;
                let _ = self.runner.channel_done(ch);
                self.events.push_back(SshEvent::ChannelClosed);
            }
        }
    }

    fn advance_finish(&mut self) -> Result<(), SshError> {
        let Some(ch) = &self.chan else { return Ok(()) };
        loop {
            let (step, next) = match self.finish {
                Finish::ExitStatus(status) => (self.runner.channel_exit_status(ch, status), Finish::Eof),
                Finish::Eof => (self.runner.channel_eof(ch), Finish::Close),
                Finish::Close => (self.runner.channel_close(ch), Finish::Sent),
                Finish::No | Finish::Sent => return Ok(()),
            };
            match step {
                Ok(()) => self.finish = next,
                Err(sunset::Error::BusySend { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The adapter against sunset's own client, in memory: deferred
    //! password decisions hold the input, and the channel ends with the
    //! exit status.
    use super::*;
    use sunset::{CliEvent, CliSessionExit};

    struct Cli {
        runner: Runner<'static, sunset::Client>,
        passwords: Vec<&'static str>,
        authed: bool,
        chan: Option<ChanHandle>,
        exit: Option<u32>,
        received: Vec<u8>,
    }

    impl Cli {
        /// Handles the client's events and reads its channel data; returns
        /// whether anything happened.
        fn progress(&mut self) -> bool {
            let mut any = false;
            loop {
                let idle = match self.runner.progress().expect("client progress") {
                    Event::None => true,
                    Event::Cli(ev) => {
                        match ev {
                            CliEvent::Hostkey(h) => h.accept().unwrap(),
                            CliEvent::Username(r) => r.username("alice").unwrap(),
                            CliEvent::Password(r) => r.password(self.passwords.remove(0)).unwrap(),
                            CliEvent::Pubkey(r) => r.skip().unwrap(),
                            CliEvent::Authenticated => self.authed = true,
                            CliEvent::SessionOpened(mut o) => o.subsystem("sftp").unwrap(),
                            CliEvent::SessionExit(CliSessionExit::Status(s)) => self.exit = Some(s),
                            _ => {}
                        }
                        false
                    }
                    _ => false,
                };
                let mut read = false;
                if let Some(ch) = &self.chan {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = self.runner.read_channel(ch, ChanData::Normal, &mut buf) {
                        self.received.extend_from_slice(&buf[..n]);
                        read = true;
                    }
                }
                if idle && !read {
                    return any;
                }
                any = true;
            }
        }
    }

    /// Moves bytes both ways and runs both sides until neither moves;
    /// returns the server's events.
    fn shuttle(c: &mut Cli, s: &mut SshConn) -> Vec<SshEvent> {
        let mut events = Vec::new();
        for _ in 0..1000 {
            let mut moved = c.progress();
            let out = c.runner.output_buf().to_vec();
            let n = s.feed(&out).unwrap();
            c.runner.consume_output(n);
            moved |= n > 0;
            while let Some(ev) = s.poll().unwrap() {
                events.push(ev);
                moved = true;
            }
            let out = s.output().to_vec();
            let n = if out.is_empty() { 0 } else { c.runner.input(&out).unwrap() };
            s.consume_output(n);
            moved |= n > 0;
            if !moved {
                return events;
            }
        }
        panic!("no quiescence");
    }

    fn server() -> SshConn {
        let d = std::env::temp_dir().join(format!("mirrorftpd-ssh-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let key = HostKey::load_or_create(&d.join("key")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        SshConn::new(Arc::new(key), SshSettings::default()).unwrap()
    }

    #[test]
    fn deferred_password_holds_input_then_channel_ends_with_exit_status() {
        let mut s = server();
        let mut c = Cli {
            runner: Runner::new_client_owned(),
            passwords: vec!["wrong", "right"],
            authed: false,
            chan: None,
            exit: None,
            received: Vec::new(),
        };
        let ev = shuttle(&mut c, &mut s);
        assert!(
            matches!(&ev[..], [SshEvent::PasswordAuth { user, password }]
            if user == "alice" && password.as_str() == "wrong"),
            "{ev:?}"
        );
        assert!(s.auth_pending() && !s.wants_input());
        // Nothing is read while the decision is pending, and nothing happens.
        assert_eq!(s.feed(b"more").unwrap(), 0);
        assert!(shuttle(&mut c, &mut s).is_empty());
        assert!(!c.authed);

        s.resume_auth(false).unwrap();
        let ev = shuttle(&mut c, &mut s);
        assert!(matches!(&ev[..], [SshEvent::PasswordAuth { password, .. }] if password.as_str() == "right"));
        assert!(!c.authed && s.user().is_none());
        s.resume_auth(true).unwrap();
        let ev = shuttle(&mut c, &mut s);
        assert!(matches!(&ev[..], [SshEvent::Authenticated { user }] if user == "alice"), "{ev:?}");
        assert!(c.authed);
        assert_eq!(s.user(), Some("alice"));
        assert!(matches!(s.resume_auth(true), Err(SshError::NoPendingAuth)));

        c.chan = Some(c.runner.open_client_session().unwrap());
        let ev = shuttle(&mut c, &mut s);
        assert!(matches!(&ev[..], [SshEvent::SessionOpened, SshEvent::SubsystemSftp]), "{ev:?}");
        let ch = c.chan.take().unwrap();
        assert_eq!(c.runner.write_channel(&ch, ChanData::Normal, b"hello").unwrap(), 5);
        c.chan = Some(ch);
        let ev = shuttle(&mut c, &mut s);
        assert!(matches!(&ev[..], [SshEvent::ChannelData]), "{ev:?}");
        let mut buf = [0u8; 16];
        assert_eq!(s.read_channel(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(s.read_channel(&mut buf).unwrap(), 0);
        assert!(s.writable() > 0);
        assert_eq!(s.write_channel(b"world").unwrap(), 5);

        // The client's EOF is not echoed: the server may still write.
        c.runner.channel_eof(c.chan.as_ref().unwrap()).unwrap();
        let ev = shuttle(&mut c, &mut s);
        assert!(matches!(&ev[..], [SshEvent::ChannelEof]), "{ev:?}");
        assert_eq!(c.received, b"world");
        assert!(!c.runner.is_channel_eof(c.chan.as_ref().unwrap()));
        assert_eq!(s.write_channel(b"!").unwrap(), 1);

        s.finish_channel(3).unwrap();
        assert_eq!(s.writable(), 0);
        assert_eq!(s.write_channel(b"late").unwrap(), 0);
        let ev = shuttle(&mut c, &mut s);
        assert_eq!(c.received, b"world!");
        assert_eq!(c.exit, Some(3));
        let ch = c.chan.as_ref().unwrap();
        assert!(c.runner.is_channel_eof(ch));
        assert!(c.runner.is_channel_closed(ch), "the server sent CLOSE, the client answered");
        assert!(matches!(&ev[..], [SshEvent::ChannelClosed]), "{ev:?}");
    }
}
