//! A session: one control connection plus at most one data channel, under
//! one slab key. `drive` runs it until it would block: flush replies, move
//! data, then read and execute commands (never while a reply is pending).

pub mod conn;
pub mod control;
pub mod data;
pub mod events;
pub mod files;
pub mod held;
pub mod messages;
pub mod observe;
pub mod proxied;
pub mod sink;
pub mod transfer;
pub mod upload;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::mpsc::Sender;

use mio::net::TcpStream;
use mio::{Registry, Waker};

use crate::auth::access::Access;
use crate::pool::LoginVerdict;
use crate::services::Shared;

use crate::config::Config;
use crate::fs::jail::Jail;
use crate::fs::vpath::VPath;
use crate::io::linebuf::{Line, LineBuf};
use crate::io::tlsio::TlsIo;
use crate::io::{Status, classify};
use crate::limits;
use crate::proto::addr::TransferType;
use crate::proto::reply;
use crate::services::Slot;
use data::DataChan;

/// The control channel's login state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlState {
    /// --proxy-protocol: nothing is sent or executed until the load
    /// balancer's PROXY header is read (see `proxied.rs`).
    AwaitProxy,
    NeedUser,
    /// USER was accepted; PASS completes the login.
    NeedPass {
        user: String,
    },
    /// PASS is being checked on a helper thread; no command is read.
    Verifying {
        user: String,
    },
    /// A login failed: "530" (or 421 with `close`) is sent at `until`, a
    /// growing delay; no command is read meanwhile.
    Failed {
        until: Instant,
        close: bool,
    },
    LoggedIn {
        user: String,
    },
    /// A final reply is queued; the session ends once it is flushed.
    Closing {
        since: Instant,
    },
}

pub use crate::services::Outcome;

/// The worker-owned context a session runs in.
pub struct Cx<'a> {
    pub registry: &'a Registry,
    pub slot: Slot,
    pub cfg: &'a Config,
    pub shared: &'a Shared,
    /// The server root's jail (anonymous sessions).
    pub jail: &'a Jail,
    pub now: Instant,
    /// The worker's passive ports (slice and cursor).
    pub pasv: &'a mut crate::pasv_ports::PasvSlice,
    /// Scratch space for the command being executed.
    pub line: &'a mut Vec<u8>,
    pub worker: usize,
    pub waker: &'a Arc<Waker>,
    pub verdicts: &'a Sender<LoginVerdict>,
    /// Where helper threads send this session's slot when its work is done.
    pub wakeups: &'a Sender<Slot>,
}

/// How long a closing session may take to flush its last reply.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub struct Session {
    pub id: u64,
    pub generation: u16,
    pub worker: usize,
    pub ctrl: TcpStream,
    /// The client's address (IPv4-mapped addresses in their IPv4 form).
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub ctrl_readable: bool,
    pub ctrl_writable: bool,
    input: LineBuf,
    /// Commands read during a transfer that wait for its end (bounded).
    held: held::Held,
    out: Vec<u8>,
    out_pos: usize,
    pub state: CtrlState,
    pub cwd: VPath,
    pub ttype: TransferType,
    pub rest: u64,
    pub epsv_all: bool,
    pub data: DataChan,
    pub connected_at: Instant,
    /// Start of the time allowed to log in: the connection, or the REIN
    /// that ended a login.
    pub login_since: Instant,
    pub last_command: Instant,
    /// Time of the live timer-heap entry for this session, if any.
    pub armed: Option<Instant>,
    /// Already in the worker's run queue.
    pub queued: bool,
    pub errors: u32,
    pub bytes_sent: u64,
    pub transfers: u64,
    close_reason: String,
    user_name: String,
    /// Who is logged in and what they may do (anonymous until a login).
    pub access: Access,
    pub login_failures: u32,
    /// The source of a pending rename (RNFR), valid for the next command only.
    pub rename_from: Option<VPath>,
    /// TLS on the control connection (after AUTH TLS, or from the start on
    /// an implicit-TLS port).
    pub tls: Option<Box<rustls::ServerConnection>>,
    /// AUTH TLS accepted: switches on once "234" is flushed in plaintext.
    tls_next: Option<Box<rustls::ServerConnection>>,
    /// PBSZ was given (PROT needs it first).
    pub pbsz: bool,
    /// PROT P: data connections are encrypted.
    pub prot_private: bool,
    /// Where a CCC (clear command channel) stands.
    pub ccc: Ccc,
    /// Bytes left of the TLS record being read (record-exact reads after CCC).
    record_left: usize,
    /// Our close_notify is queued: the session is ending under TLS.
    close_notify_sent: bool,
    /// Directories whose `.message` was shown (fingerprints, bounded).
    pub seen_dirs: Vec<u64>,
    /// A CWD reply waiting for its `.message` to be read in by a disk
    /// helper; no command is read meanwhile.
    pub message_wait: Option<messages::MessageWait>,
    /// Counted by `Shared::admit` (released on close). False while a PROXY
    /// header is awaited, or when admission refused the real client.
    pub admitted: bool,
    /// The load balancer's address when the connection came through one
    /// (`peer` is then the client's real address from the PROXY header).
    pub proxy: Option<SocketAddr>,
    /// The worker's counters (set by the worker when it admits the session).
    pub metrics: &'static crate::obs::metrics::WorkerMetrics,
    /// The verb of the last command, for error-reply logs.
    last_verb: observe::Verb,
    /// The MLST/MLSD facts selected with OPTS MLST (all until then).
    pub facts: crate::fs::facts::Facts,
}

/// CCC: back to a plaintext control connection (RFC 4217 §6), with --allow-ccc.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ccc {
    Off,
    /// The 200 is queued; close_notify follows it.
    Reply,
    /// Our close_notify is out; the client's ends TLS.
    AwaitPeer,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        generation: u16,
        ctrl: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
        worker: usize,
        greeting: &[u8],
    ) -> Session {
        let mut s = Session::bare(id, generation, ctrl, peer, local, now, worker);
        s.log_connect();
        s.greet(greeting);
        s
    }

    /// Queues the 220 greeting (the default line or --banner-file's text).
    fn greet(&mut self, greeting: &[u8]) {
        self.out.extend_from_slice(greeting);
    }

    /// A session in `NeedUser` with nothing queued and nothing logged.
    fn bare(
        id: u64,
        generation: u16,
        ctrl: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
        worker: usize,
    ) -> Session {
        Session {
            id,
            generation,
            worker,
            ctrl,
            peer,
            local,
            ctrl_readable: true,
            ctrl_writable: true,
            input: LineBuf::new(limits::MAX_LINE),
            held: held::Held::default(),
            out: Vec::new(),
            out_pos: 0,
            state: CtrlState::NeedUser,
            cwd: VPath::root(),
            ttype: TransferType::Ascii,
            rest: 0,
            epsv_all: false,
            data: DataChan::new(now, id),
            connected_at: now,
            login_since: now,
            last_command: now,
            armed: None,
            queued: false,
            errors: 0,
            bytes_sent: 0,
            transfers: 0,
            close_reason: String::new(),
            user_name: String::new(),
            access: Access::anonymous(),
            login_failures: 0,
            rename_from: None,
            tls: None,
            tls_next: None,
            pbsz: false,
            prot_private: false,
            ccc: Ccc::Off,
            record_left: 0,
            close_notify_sent: false,
            seen_dirs: Vec::new(),
            message_wait: None,
            admitted: true,
            proxy: None,
            metrics: observe::detached(),
            last_verb: observe::Verb::default(),
            facts: crate::fs::facts::Facts::ALL,
        }
    }

    /// Implicit FTPS: TLS from the first byte; the greeting goes out once
    /// the handshake is done.
    pub fn start_implicit_tls(&mut self, tls: Box<rustls::ServerConnection>) {
        self.tls = Some(tls);
        self.pbsz = true;
        self.prot_private = true;
    }

    /// AUTH TLS accepted: TLS takes over once the queued "234" is flushed.
    pub fn begin_tls(&mut self, tls: Box<rustls::ServerConnection>) {
        self.tls_next = Some(tls);
    }

    /// Queues a one-line reply.
    pub fn reply(&mut self, code: u16, text: &str) {
        self.note_reply(code);
        reply::push(&mut self.out, code, text.as_bytes());
    }

    pub fn reply_bytes(&mut self, code: u16, text: &[u8]) {
        self.note_reply(code);
        reply::push(&mut self.out, code, text);
    }

    /// The reply buffer, for multi-line replies built in place.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Queues a final reply and ends the session once it is flushed.
    pub fn close_with(&mut self, code: u16, text: &str, now: Instant) {
        self.reply(code, text);
        self.close_reason = text.to_string();
        self.state = CtrlState::Closing { since: now };
    }

    fn out_pending(&self) -> bool {
        self.out_pos < self.out.len() || self.tls_next.is_some() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// The user name for logs: the last one accepted by USER, or "-".
    pub fn user(&self) -> &str {
        if self.user_name.is_empty() { "-" } else { &self.user_name }
    }

    /// The moment this session must be looked at again.
    pub fn deadline(&self, cfg: &Config) -> Instant {
        match &self.state {
            CtrlState::AwaitProxy => self.connected_at + limits::PROXY_HEADER_TIMEOUT,
            CtrlState::Closing { since } => *since + CLOSE_GRACE,
            CtrlState::NeedUser | CtrlState::NeedPass { .. } => {
                (self.login_since + cfg.login_timeout).min(self.last_command + cfg.idle_timeout)
            }
            CtrlState::Verifying { .. } => self.login_since + cfg.login_timeout,
            CtrlState::Failed { until, .. } => *until,
            CtrlState::LoggedIn { .. } => {
                if self.data.busy() {
                    // Never the idle timeout while a transfer runs.
                    self.data.deadline(cfg.data_timeout)
                } else {
                    self.last_command + cfg.idle_timeout
                }
            }
        }
    }

    /// The deadline passed: time out the transfer, or the session.
    pub fn on_timeout(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            CtrlState::AwaitProxy => {
                self.refuse_proxy("no PROXY header in time", cx.now);
            }
            CtrlState::Failed { close, .. } => {
                if close {
                    self.close_with(reply::SERVICE_UNAVAILABLE, "Too many failed logins.", cx.now);
                } else {
                    self.state = CtrlState::NeedUser;
                    self.reply(reply::NOT_LOGGED_IN, "Login incorrect.");
                }
            }
            CtrlState::Closing { .. } => {
                // The client does not read its last reply: drop it, and the
                // TLS records (close_notify) still queued behind it.
                self.out.clear();
                self.out_pos = 0;
                self.ctrl_writable = false;
                self.tls = None;
                self.tls_next = None;
            }
            // A rate limit's wait is over: not a timeout; the drive that
            // follows moves the next bytes.
            CtrlState::LoggedIn { .. } if self.data.busy() && self.data.throttle_due(cx.now) => {}
            CtrlState::LoggedIn { .. } if self.data.busy() => {
                let connected = matches!(self.data.state, data::DataState::Running { .. });
                if let Some(job) = self.data.reset(cx.registry) {
                    self.log_transfer(&job, "timeout");
                }
                if connected {
                    self.reply(reply::TRANSFER_ABORTED, "Data connection timed out; transfer aborted.");
                } else {
                    self.reply(reply::CANT_OPEN_DATA, "Failed to establish data connection.");
                }
            }
            CtrlState::NeedUser | CtrlState::NeedPass { .. } if cx.now >= self.login_since + cx.cfg.login_timeout => {
                self.close_with(reply::SERVICE_UNAVAILABLE, "Login timeout.", cx.now);
            }
            _ => {
                self.close_with(reply::SERVICE_UNAVAILABLE, "Timeout.", cx.now);
            }
        }
    }

    /// Runs the session until it would block, must close, or used its budget.
    pub fn drive(&mut self, cx: &mut Cx<'_>) -> Outcome {
        if matches!(self.state, CtrlState::AwaitProxy) {
            if let Some(waiting) = self.await_proxy(cx) {
                return waiting;
            }
        }
        let mut yielded = false;
        for _ in 0..limits::COMMANDS_PER_TURN {
            let mut progress = false;
            match self.drive_data(cx) {
                Some(true) => progress = true,
                Some(false) => {}
                None => yielded = true,
            }
            match self.flush() {
                Err(()) => return Outcome::Close,
                Ok(p) => progress |= p,
            }
            if let CtrlState::Closing { .. } = self.state {
                // Wait for the last reply to flush (or the grace deadline).
                return if self.out_pending() { Outcome::Idle } else { Outcome::Close };
            }
            if !self.out_pending() && cx.shared.draining() && !self.data.busy() {
                // SIGTERM: a session with no transfer running ends now; one
                // with a transfer ends after its final reply.
                self.close_with(reply::SERVICE_UNAVAILABLE, "Server shutting down.", cx.now);
                continue;
            }
            if !self.out_pending() {
                match self.next_command(cx) {
                    Err(()) => return Outcome::Close,
                    Ok(p) => progress |= p,
                }
            }
            if !progress {
                return if yielded { Outcome::Yield } else { Outcome::Idle };
            }
        }
        Outcome::Yield
    }

    /// Writes queued replies. `Err` when the client is gone.
    fn flush(&mut self) -> Result<bool, ()> {
        let mut progress = false;
        if let Some(tls) = self.tls.as_deref_mut() {
            // Under TLS: replies become records, records go to the socket.
            let mut io =
                TlsIo { sock: &mut self.ctrl, tls, session: self.id, resumed_from: &mut None, record_exact: None };
            loop {
                while self.ctrl_writable && (self.out_pos < self.out.len() || io.tls.wants_write()) {
                    let st = if self.out_pos < self.out.len() {
                        io.write_plain(&self.out[self.out_pos..])
                    } else {
                        match io.flush() {
                            Status::Done(0) => break,
                            s => s,
                        }
                    };
                    match st {
                        Status::Done(n) => {
                            if self.out_pos < self.out.len() {
                                self.out_pos += n;
                            }
                            progress = true;
                        }
                        Status::WouldBlock => self.ctrl_writable = false,
                        Status::Closed | Status::Error(_) => {
                            self.log_lost();
                            return Err(());
                        }
                    }
                }
                // CCC: once its 200 is handed to TLS, close TLS (close_notify)
                // and wait for the client's before reading plaintext.
                if self.ccc == Ccc::Reply && self.out_pos == self.out.len() {
                    io.tls.send_close_notify();
                    self.ccc = Ccc::AwaitPeer;
                    continue;
                }
                // Ending: after the last reply, close_notify, so the client
                // can tell the end from a truncation (RFC 8446 §6.1).
                if matches!(self.state, CtrlState::Closing { .. })
                    && !self.close_notify_sent
                    && self.ccc == Ccc::Off
                    && self.out_pos == self.out.len()
                {
                    io.tls.send_close_notify();
                    self.close_notify_sent = true;
                    continue;
                }
                break;
            }
        } else {
            while self.out_pos < self.out.len() && self.ctrl_writable {
                match classify(self.ctrl.write(&self.out[self.out_pos..])) {
                    Status::Done(n) => {
                        self.out_pos += n;
                        progress = true;
                    }
                    Status::WouldBlock => self.ctrl_writable = false,
                    Status::Closed | Status::Error(_) => {
                        self.log_lost();
                        return Err(());
                    }
                }
            }
            if self.out_pos == self.out.len() && self.tls_next.is_some() {
                // "234" is on the wire in plaintext; from here on nothing is
                // plaintext. Anything the client sent after AUTH before the
                // handshake is dropped unread (CVE-2011-0411).
                self.tls = self.tls_next.take();
                self.input.clear();
                self.held.clear();
                progress = true;
            }
        }
        if !self.out_pending() && self.out_pos > 0 {
            // Everything is sent: an idle session keeps no reply memory.
            self.out = Vec::new();
            self.out_pos = 0;
        }
        if self.out.len() > limits::MAX_REPLY_BUF {
            self.end_log("reply buffer overflow");
            return Err(());
        }
        Ok(progress)
    }

    /// The client is gone while replies were being written. A closing
    /// session is logged once, with its reason, by `close`.
    fn log_lost(&self) {
        if !matches!(self.state, CtrlState::Closing { .. }) {
            self.end_log("control connection lost");
        }
    }

    /// Frames and executes the next command, reading the socket if needed.
    /// `Ok(true)` when something happened.
    fn next_command(&mut self, cx: &mut Cx<'_>) -> Result<bool, ()> {
        if matches!(self.state, CtrlState::Verifying { .. } | CtrlState::Failed { .. }) || self.message_wait.is_some() {
            // A login is being decided, or a CWD reply waits for the disk:
            // commands wait in the socket.
            return Ok(false);
        }
        if !self.data.busy() {
            if let Some(line) = self.held.pop() {
                // Read during the transfer that just ended: its turn now.
                self.last_verb = observe::Verb::of_line(&line);
                self.execute(&line, cx);
                return Ok(true);
            }
        }
        // During a transfer too: ABOR must be heard behind waiting commands.
        for _ in 0..limits::READS_PER_TURN {
            match self.input.next_line() {
                Line::Ready(s, e) => {
                    cx.line.clear();
                    cx.line.extend_from_slice(self.input.line_mut(s, e));
                    self.input.release_if_empty();
                    self.last_command = cx.now;
                    self.run_line(cx);
                    return Ok(true);
                }
                Line::TooLong => {
                    self.protocol_error(reply::SYNTAX_ERROR, "Command line too long.", cx);
                    return Ok(true);
                }
                Line::Partial => {}
            }
            if !self.ctrl_readable {
                return Ok(false);
            }
            let got = match self.tls.as_deref_mut() {
                None => self.input.read_from(&mut self.ctrl),
                Some(tls) => {
                    let exact = (self.ccc == Ccc::AwaitPeer).then_some(&mut self.record_left);
                    let mut io = TlsIo {
                        sock: &mut self.ctrl,
                        tls,
                        session: self.id,
                        resumed_from: &mut None,
                        record_exact: exact,
                    };
                    let r = self.input.read_from(&mut io);
                    if io.tls.wants_write() && r.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock) {
                        // A handshake step or ticket to answer: report
                        // progress so the drive loop flushes it.
                        self.ctrl_readable = false;
                        return Ok(true);
                    }
                    r
                }
            };
            match got {
                Ok(0) if self.ccc == Ccc::AwaitPeer && self.tls.is_some() => {
                    // The client's close_notify: the control connection is
                    // plaintext from the next byte on.
                    self.tls = None;
                    self.ccc = Ccc::Off;
                    self.record_left = 0;
                    crate::log::info(format_args!("session {}: CCC: control connection now in the clear", self.id));
                }
                Ok(0) if self.tls.is_some() => {
                    // The client's close_notify (or a bare TCP close): answer
                    // with ours, flushed before the socket closes (`flush`
                    // sends it once the session is Closing).
                    self.close_reason = "client closed the control connection".to_string();
                    self.state = CtrlState::Closing { since: cx.now };
                    return Ok(true);
                }
                Ok(0) => {
                    self.end_log("client closed the control connection");
                    return Err(());
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.ctrl_readable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end_log(&format!("control read error: {e}"));
                    return Err(());
                }
            }
        }
        Ok(true)
    }

    /// Counts a protocol error; too many end the session.
    pub fn protocol_error(&mut self, code: u16, text: &str, cx: &mut Cx<'_>) {
        self.errors += 1;
        if self.errors >= limits::MAX_ERRORS {
            self.close_with(reply::SERVICE_UNAVAILABLE, "Too many errors, closing.", cx.now);
        } else {
            self.reply(code, text);
        }
    }

    /// Executes the command in `cx.line` (Telnet sequences still in it), or
    /// queues it when it must wait for the transfer in progress.
    fn run_line(&mut self, cx: &mut Cx<'_>) {
        let n = crate::proto::command::strip_telnet(cx.line);
        cx.line.truncate(n);
        let line = std::mem::take(cx.line);
        if !self.data.busy() || self.admit_during_transfer(&line, cx) {
            self.last_verb = observe::Verb::of_line(&line);
            self.execute(&line, cx);
        }
        *cx.line = line;
    }

    /// A helper thread decided a login.
    /// A disk helper finished job `seq` of this session: a CWD's `.message`
    /// (the reply goes out now) or a transfer's range. True when the session
    /// should be driven.
    pub fn disk_done(&mut self, seq: u64, outcome: crate::disk::Outcome, now: Instant) -> bool {
        if self.message_wait.as_ref().is_some_and(|w| w.ticket.seq == seq) {
            let Some(wait) = self.message_wait.take() else { return false };
            // Read in by the helper: from the page cache now. Should it have
            // been evicted again already, it is read here (8 KiB at most).
            let lines = match messages::read_message(&wait.file, true) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => messages::read_message(&wait.file, false),
                r => r,
            };
            self.reply_cwd(lines.ok().flatten());
            return true;
        }
        self.data.disk_done(seq, outcome, now)
    }

    pub fn login_verdict(&mut self, access: Option<Access>, shared: &Shared, now: Instant) {
        let CtrlState::Verifying { user } = &self.state else { return };
        let user = user.clone();
        match access {
            Some(a) => {
                self.log_login(&user);
                self.access = a;
                self.login_failures = 0;
                self.cwd = VPath::root();
                self.rest = 0;
                self.state = CtrlState::LoggedIn { user };
                self.reply(reply::LOGGED_IN, "Login successful.");
            }
            None => {
                self.login_failures += 1;
                self.log_login_failed(&user);
                let (until, close) = shared.after_failed_login(self.peer.ip(), self.login_failures, now);
                self.state = CtrlState::Failed { until, close };
            }
        }
    }

    /// Releases every socket of the session.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(job) = self.data.reset(registry) {
            self.log_transfer(&job, "session closed");
        }
        let _ = registry.deregister(&mut self.ctrl);
        if let CtrlState::Closing { .. } = self.state {
            self.end_log(&self.close_reason);
        }
    }
}
