//! One bench session: a control connection driven through login and a loop
//! of operations, plus at most one data connection (or active-mode
//! listener), all under one slab key.
//!
//! ```text
//! phase : Waiting → Connecting → Greeting → User → Pass → (operation loop)
//! --tls : … → Greeting → AuthTls → CtrlHandshake → User → Pass → Pbsz → Prot → …
//! --tls-implicit: Connecting → CtrlHandshake → Greeting → User → Pass → Pbsz → Prot → …
//!         retr/stor: Type → Passive|PortSent → Transfer → (next operation)
//!         list:             Passive|PortSent → Transfer → (next operation)
//!         login:     Quitting{reconnect} → (221, server closes) → Connecting …
//!         idle:      Holding (until the run ends)
//!         end:       Quitting → Done;   failure: Waiting (backoff) → Connecting
//! ```
//!
//! A reply error (550 to RETR) fails the operation and the session goes on;
//! anything that leaves the session in doubt (timeout, EOF, a bad reply, a
//! data connection that cannot be made) closes it and reconnects after a
//! short backoff.
//!
//! Under TLS every data connection waits for the 150 reply before its
//! handshake (the order FTP clients use), then resumes the control
//! connection's session (see `bench::tls`). A TLS failure on either
//! connection is counted as `tls` and restarts the session.

mod data;

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rustls::{ClientConfig, ClientConnection};

use super::plan::{DataMode, Plan, TlsMode, Workload};
use super::reactor::Shared;
use super::reply::{self, Next, Reply, ReplyReader};
use super::stats::{ErrorKind, OpKind, Stats};
use super::tls::{self, TlsIo};
use crate::io::{Status, classify};
use data::Bucket;

/// Longest reply line accepted.
const MAX_REPLY_LINE: usize = 8192;
/// Control reads per turn.
const CTRL_READS_PER_TURN: usize = 16;
/// Rounds of (data, flush, replies) per turn.
const ROUNDS_PER_TURN: usize = 32;
/// First reconnect delay after a failure; doubles per consecutive failure.
const BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF_SHIFT: u32 = 5;
/// How long to wait after 221 for the server to close the connection.
const QUIT_GRACE: Duration = Duration::from_secs(1);

/// Which socket of a session an event is for (the low 2 bits of a token).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Ctrl = 0,
    Data = 1,
    Listener = 2,
}

const GEN_BITS: u32 = 14;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
const KEY_SHIFT: u32 = GEN_BITS + 2;

pub fn token(key: usize, generation: u16, role: Role) -> Token {
    Token((key << KEY_SHIFT) | ((generation as usize & GEN_MASK) << 2) | role as usize)
}

/// (key, generation, role bits) of a token.
pub fn decode(t: Token) -> (usize, u16, usize) {
    (t.0 >> KEY_SHIFT, ((t.0 >> 2) & GEN_MASK) as u16, t.0 & 3)
}

/// What the reactor does with the session after a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Idle,
    /// Stopped on a budget with work left: drive again next turn.
    Yield,
}

/// The reactor-owned context a session runs in.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub plan: &'a Plan,
    pub shared: &'a Shared,
    pub stats: &'a mut Stats,
    pub now: Instant,
    /// The run is over: no new operation or connection starts.
    pub stopping: bool,
    /// Source bytes of uploads.
    pub pattern: &'a [u8],
    /// The thread's TLS configuration, when the run uses TLS.
    pub tls: Option<&'a Arc<ClientConfig>>,
    /// Sessions of this thread with an open control connection.
    pub connected: &'a mut usize,
    /// Sessions of this thread that reached `Done`.
    pub finished: &'a mut usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not connected; connect at `start_at`.
    Waiting,
    Connecting,
    Greeting,
    /// AUTH TLS sent.
    AuthTls,
    /// The control connection's TLS handshake.
    CtrlHandshake,
    User,
    Pass,
    /// PBSZ 0 sent (after login, under TLS).
    Pbsz,
    /// PROT P sent.
    Prot,
    Type,
    /// EPSV or PASV sent.
    Passive,
    /// PORT or EPRT sent.
    PortSent,
    /// RETR, STOR or LIST sent.
    Transfer,
    Holding,
    /// QUIT sent; `acked` once the reply is in and the client waits for
    /// the server to close first (so TIME_WAIT lands on the server's port,
    /// not on one of this host's ephemeral ports).
    Quitting {
        reconnect: bool,
        acked: bool,
    },
    Done,
}

/// The operation in flight.
struct Op {
    kind: OpKind,
    /// When EPSV/PASV/PORT was sent.
    started: Instant,
    cmd_at: Option<Instant>,
    first_byte: Option<Instant>,
    bytes: u64,
    /// The size the 150 reply announced.
    expect: Option<u64>,
    prelim: bool,
    replied: bool,
    data_done: bool,
    /// Drop the connections once data has moved (--disconnect-prob).
    drop_mid: bool,
}

pub struct Client {
    pub key: usize,
    /// Session number across all threads (0..conns).
    pub index: usize,
    pub generation: u16,
    phase: Phase,
    ctrl: Option<TcpStream>,
    /// TLS on the control connection (after 234, or from the start).
    ctrl_tls: Option<Box<ClientConnection>>,
    /// This control connection's TLS configuration: its own resumption
    /// store, shared with its data connections.
    tls_cfg: Option<Arc<ClientConfig>>,
    pub ctrl_readable: bool,
    pub ctrl_writable: bool,
    reader: ReplyReader,
    out: Vec<u8>,
    out_pos: usize,
    data: Option<TcpStream>,
    data_connecting: bool,
    /// TLS on the data connection (set up after the 150 reply).
    data_tls: Option<Box<ClientConnection>>,
    /// The data connection's handshake is done (counted, plaintext flows).
    data_tls_up: bool,
    /// close_notify queued on an upload's data connection.
    data_close_sent: bool,
    pub data_readable: bool,
    pub data_writable: bool,
    /// The active-mode listener, kept across successful operations of one
    /// connection (a bind per transfer is costly when ports are scarce).
    listener: Option<TcpListener>,
    pub listener_ready: bool,
    /// The PORT/EPRT command naming `listener`.
    port_line: String,
    /// The reusable copy buffer (allocated on the first copying read).
    buf: Vec<u8>,
    op: Option<Op>,
    /// A --count ticket is held by the operation in flight.
    ticket: bool,
    /// The login on the current connection is timed as an operation.
    login_op: bool,
    connected_at: Instant,
    deadline: Option<Instant>,
    start_at: Option<Instant>,
    resume_at: Option<Instant>,
    bucket: Option<Bucket>,
    /// Time of the live timer-heap entry, if any.
    pub armed: Option<Instant>,
    /// Already in the reactor's run queue.
    pub queued: bool,
    established: bool,
    fails: u32,
    seq: u64,
    rng: u64,
}

impl Client {
    pub fn new(key: usize, index: usize, start_at: Instant) -> Client {
        Client {
            key,
            index,
            generation: 0,
            phase: Phase::Waiting,
            ctrl: None,
            ctrl_tls: None,
            tls_cfg: None,
            ctrl_readable: false,
            ctrl_writable: false,
            reader: ReplyReader::new(MAX_REPLY_LINE),
            out: Vec::new(),
            out_pos: 0,
            data: None,
            data_connecting: false,
            data_tls: None,
            data_tls_up: false,
            data_close_sent: false,
            data_readable: false,
            data_writable: false,
            listener: None,
            listener_ready: false,
            port_line: String::new(),
            buf: Vec::new(),
            op: None,
            ticket: false,
            login_op: false,
            connected_at: start_at,
            deadline: None,
            start_at: Some(start_at),
            resume_at: None,
            bucket: None,
            armed: None,
            queued: false,
            established: false,
            fails: 0,
            seq: 0,
            rng: (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next moment a timer must look at this session.
    pub fn wake(&self) -> Option<Instant> {
        let start = if self.phase == Phase::Waiting { self.start_at } else { None };
        [start, self.deadline, self.resume_at].into_iter().flatten().min()
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.random() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    /// --disconnect-prob: closes every socket without QUIT (with RST half the time), then
    /// reconnects at once. The operation in flight counts as neither done nor failed.
    fn drop_connection(&mut self, cx: &mut Ctx<'_>) {
        cx.stats.drops += 1;
        self.ticket = false;
        if self.random() & 1 == 0 {
            for s in [self.ctrl.as_ref(), self.data.as_ref()].into_iter().flatten() {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
        }
        self.close_all(cx);
        self.op = None;
        self.login_op = false;
        self.deadline = None;
        if cx.stopping || !cx.shared.tickets_left() {
            return self.set_done(cx);
        }
        self.phase = Phase::Waiting;
        self.start_at = Some(cx.now);
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 16
    }

    /// A timer fired: time out the operation, start a connection, or resume
    /// a rate-limited transfer.
    pub fn on_timer(&mut self, cx: &mut Ctx<'_>) {
        if self.deadline.is_some_and(|d| d <= cx.now) {
            self.deadline = None;
            match self.phase {
                // 221 came but the server keeps the connection: close it.
                Phase::Quitting { reconnect, acked: true } => self.end_quit(reconnect, cx),
                _ => self.fail_session(ErrorKind::Timeout, cx),
            }
        }
        if self.phase == Phase::Waiting && self.start_at.is_some_and(|t| t <= cx.now) {
            self.start_at = None;
            self.connect(cx);
        }
        if self.resume_at.is_some_and(|t| t <= cx.now) {
            self.resume_at = None;
        }
    }

    /// The run is over: say QUIT where a session is between operations,
    /// then close everything.
    pub fn stop(&mut self, cx: &mut Ctx<'_>) {
        if self.phase == Phase::Done {
            return;
        }
        if let (Phase::Holding | Phase::Type, Some(ctrl)) = (self.phase, self.ctrl.as_mut()) {
            if self.out_pos == self.out.len() {
                match self.ctrl_tls.as_deref_mut() {
                    // Best effort: one write of the record, no waiting.
                    Some(t) => {
                        if t.writer().write_all(b"QUIT\r\n").is_ok() {
                            let _ = t.write_tls(ctrl);
                        }
                    }
                    None => {
                        let _ = ctrl.write(b"QUIT\r\n");
                    }
                }
            }
        }
        self.close_all(cx);
        self.set_done(cx);
    }

    /// Runs the session until it would block or used its budget.
    pub fn drive(&mut self, cx: &mut Ctx<'_>) -> Outcome {
        let mut yielded = false;
        for _ in 0..ROUNDS_PER_TURN {
            let mut progress = false;
            match self.phase {
                Phase::Waiting | Phase::Done => return Outcome::Idle,
                Phase::Connecting => match self.check_connected(cx) {
                    Ok(true) => progress = true,
                    Ok(false) => return Outcome::Idle,
                    Err(kind) => {
                        self.fail_session(kind, cx);
                        return Outcome::Idle;
                    }
                },
                Phase::CtrlHandshake => match self.ctrl_handshake(cx) {
                    Ok(true) => progress = true,
                    Ok(false) => return Outcome::Idle,
                    Err(kind) => {
                        self.fail_session(kind, cx);
                        return Outcome::Idle;
                    }
                },
                _ => {}
            }
            match self.pump_data(cx) {
                Ok(Some(p)) => progress |= p,
                Ok(None) => yielded = true,
                Err(kind) => {
                    self.fail_session(kind, cx);
                    return Outcome::Idle;
                }
            }
            if self.op.as_ref().is_some_and(|o| o.drop_mid && o.bytes > 0) {
                self.drop_connection(cx);
                return Outcome::Idle;
            }
            match self.flush() {
                Ok(p) => progress |= p,
                Err(kind) => {
                    self.fail_session(kind, cx);
                    return Outcome::Idle;
                }
            }
            match self.read_replies(cx) {
                Ok(p) => progress |= p,
                Err(kind) => {
                    self.fail_session(kind, cx);
                    return Outcome::Idle;
                }
            }
            if !progress {
                return if yielded { Outcome::Yield } else { Outcome::Idle };
            }
        }
        Outcome::Yield
    }

    // ---- connection lifecycle ------------------------------------------

    /// Opens the control connection (a new generation of the session).
    fn connect(&mut self, cx: &mut Ctx<'_>) {
        let login_op = self.login_op || matches!(cx.plan.workload, Workload::Login | Workload::Idle);
        if cx.stopping || (!self.ticket && !cx.shared.tickets_left()) {
            return self.set_done(cx);
        }
        if login_op && !self.ticket {
            if !cx.shared.claim() {
                return self.set_done(cx);
            }
            self.ticket = true;
        }
        self.login_op = login_op;
        self.generation = self.generation.wrapping_add(1) & GEN_MASK as u16;
        self.connected_at = cx.now;
        self.deadline = Some(cx.now + cx.plan.timeout);
        let mut s = match TcpStream::connect(cx.plan.server) {
            Ok(s) => s,
            Err(_) => return self.fail_session(ErrorKind::Connect, cx),
        };
        let _ = s.set_nodelay(true);
        if cx
            .registry
            .register(&mut s, token(self.key, self.generation, Role::Ctrl), Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return self.fail_session(ErrorKind::Io, cx);
        }
        self.ctrl = Some(s);
        self.ctrl_readable = false;
        self.ctrl_writable = false;
        self.tls_cfg = cx.tls.map(|t| tls::for_session(t));
        *cx.connected += 1;
        self.phase = Phase::Connecting;
    }

    /// Whether the non-blocking connect has completed (and, for implicit
    /// TLS, the handshake started).
    fn check_connected(&mut self, cx: &mut Ctx<'_>) -> Result<bool, ErrorKind> {
        if !(self.ctrl_readable || self.ctrl_writable) {
            return Ok(false);
        }
        let Some(s) = &self.ctrl else { return Err(ErrorKind::Connect) };
        match s.take_error() {
            Ok(None) => {}
            _ => return Err(ErrorKind::Connect),
        }
        match s.peer_addr() {
            Ok(_) => {
                self.phase = Phase::Greeting;
                if cx.plan.tls == Some(TlsMode::Implicit) {
                    self.start_ctrl_tls(cx)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.ctrl_readable = false;
                self.ctrl_writable = false;
                Ok(false)
            }
            Err(_) => Err(ErrorKind::Connect),
        }
    }

    /// Puts TLS on the control connection; the handshake runs next.
    fn start_ctrl_tls(&mut self, cx: &mut Ctx<'_>) -> Result<(), ErrorKind> {
        let cfg = self.tls_cfg.as_ref().ok_or(ErrorKind::Tls)?;
        self.ctrl_tls = Some(tls::connect(cfg, cx.plan.server.ip())?);
        self.phase = Phase::CtrlHandshake;
        Ok(())
    }

    /// Drives the control connection's handshake. `Ok(true)` once it is
    /// complete: explicit TLS logs in next, implicit TLS waits for 220.
    fn ctrl_handshake(&mut self, cx: &mut Ctx<'_>) -> Result<bool, ErrorKind> {
        let (Some(sock), Some(t)) = (self.ctrl.as_mut(), self.ctrl_tls.as_deref_mut()) else {
            return Err(ErrorKind::Tls);
        };
        let mut io = TlsIo { tls: t, sock, readable: &mut self.ctrl_readable, writable: &mut self.ctrl_writable };
        if !io.handshake()? {
            return Ok(false);
        }
        cx.stats.tls.control += 1;
        if cx.plan.tls == Some(TlsMode::Implicit) {
            self.phase = Phase::Greeting;
        } else {
            self.send(&format!("USER {}", cx.plan.user));
            self.phase = Phase::User;
        }
        Ok(true)
    }

    /// Closes every socket of the session.
    fn close_all(&mut self, cx: &mut Ctx<'_>) {
        self.close_data(cx);
        self.close_listener(cx);
        self.ctrl_tls = None;
        self.tls_cfg = None;
        if let Some(mut s) = self.ctrl.take() {
            let _ = cx.registry.deregister(&mut s);
            *cx.connected -= 1;
        }
        self.reader = ReplyReader::new(MAX_REPLY_LINE);
        self.out = Vec::new();
        self.out_pos = 0;
        self.resume_at = None;
    }

    fn set_done(&mut self, cx: &mut Ctx<'_>) {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            self.deadline = None;
            self.resume_at = None;
            *cx.finished += 1;
        }
    }

    /// Counts `kind`, closes the session, and reconnects after a backoff
    /// (or ends it when the run is over).
    fn fail_session(&mut self, kind: ErrorKind, cx: &mut Ctx<'_>) {
        cx.stats.error(kind);
        if !std::mem::take(&mut self.ticket) && cx.shared.counting() {
            // A failure outside an operation uses up an operation too, so a
            // --count run against a dead server ends.
            cx.shared.claim();
        }
        self.close_all(cx);
        self.op = None;
        self.login_op = false;
        self.deadline = None;
        self.fails += 1;
        if cx.stopping || !cx.shared.tickets_left() {
            return self.set_done(cx);
        }
        self.phase = Phase::Waiting;
        self.start_at = Some(cx.now + BACKOFF * (1 << (self.fails - 1).min(MAX_BACKOFF_SHIFT)));
    }

    // ---- control channel -----------------------------------------------

    fn send(&mut self, line: &str) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn flush(&mut self) -> Result<bool, ErrorKind> {
        let mut progress = false;
        let Some(s) = self.ctrl.as_mut() else { return Ok(false) };
        if let Some(t) = self.ctrl_tls.as_deref_mut() {
            // Commands are short: rustls takes them whole (up to its buffer
            // limit) and they go out as records.
            if self.out_pos < self.out.len() && !t.is_handshaking() {
                let n = t.writer().write(&self.out[self.out_pos..]).map_err(|_| ErrorKind::Tls)?;
                self.out_pos += n;
                progress |= n > 0;
            }
            let mut io =
                TlsIo { tls: t, sock: s, readable: &mut self.ctrl_readable, writable: &mut self.ctrl_writable };
            return Ok(io.flush()? > 0 || progress);
        }
        while self.out_pos < self.out.len() && self.ctrl_writable {
            match classify(s.write(&self.out[self.out_pos..])) {
                Status::Done(n) => {
                    self.out_pos += n;
                    progress = true;
                }
                Status::WouldBlock => self.ctrl_writable = false,
                Status::Closed => return Err(ErrorKind::Eof),
                Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Status::Error(_) => return Err(ErrorKind::Io),
            }
        }
        Ok(progress)
    }

    fn read_replies(&mut self, cx: &mut Ctx<'_>) -> Result<bool, ErrorKind> {
        let mut progress = false;
        for _ in 0..CTRL_READS_PER_TURN {
            if self.phase == Phase::CtrlHandshake {
                return Ok(progress); // `ctrl_handshake` reads until it is done
            }
            match self.reader.next_reply() {
                Next::Reply(r) => {
                    self.on_reply(r, cx)?;
                    if self.ctrl.is_none() {
                        return Ok(true); // the session ended or restarted
                    }
                    progress = true;
                    continue;
                }
                Next::Bad => return Err(ErrorKind::BadReply),
                Next::Partial => {}
            }
            // Under TLS rustls may hold decrypted replies whatever the flag.
            if !self.ctrl_readable && self.ctrl_tls.is_none() {
                return Ok(progress);
            }
            let Some(s) = self.ctrl.as_mut() else { return Ok(progress) };
            let got = match self.ctrl_tls.as_deref_mut() {
                Some(t) => {
                    let (readable, writable) = (&mut self.ctrl_readable, &mut self.ctrl_writable);
                    self.reader.read_from(&mut TlsIo { tls: t, sock: s, readable, writable })
                }
                None => self.reader.read_from(s),
            };
            match classify(got) {
                Status::Done(_) => progress = true,
                Status::WouldBlock => {
                    self.ctrl_readable = false;
                    return Ok(progress);
                }
                Status::Closed => {
                    if let Phase::Quitting { reconnect, .. } = self.phase {
                        self.end_quit(reconnect, cx);
                        return Ok(true);
                    }
                    return Err(ErrorKind::Eof);
                }
                Status::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Status::Error(e) => return Err(tls::error_kind(&e)),
            }
        }
        Ok(progress)
    }

    /// One complete reply in the current phase. `Err` fails the session;
    /// a refused operation is counted and the session goes on.
    fn on_reply(&mut self, r: Reply, cx: &mut Ctx<'_>) -> Result<(), ErrorKind> {
        let code = r.code;
        if code == 421 {
            return Err(ErrorKind::Code(421));
        }
        match self.phase {
            Phase::Greeting => match code {
                220 if cx.plan.tls == Some(TlsMode::Explicit) => {
                    self.send("AUTH TLS");
                    self.phase = Phase::AuthTls;
                }
                220 => {
                    self.send(&format!("USER {}", cx.plan.user));
                    self.phase = Phase::User;
                }
                120 => {}
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::AuthTls => match code {
                // Nothing may follow 234 in plaintext: the handshake is next.
                234 if self.reader.is_empty() => self.start_ctrl_tls(cx)?,
                234 => return Err(ErrorKind::BadReply),
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::User => match code {
                331 => {
                    self.send(&format!("PASS {}", cx.plan.pass));
                    self.phase = Phase::Pass;
                }
                230 => self.authenticated(cx),
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::Pass => match code {
                230 | 202 => self.authenticated(cx),
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::Pbsz => match code {
                200 => {
                    self.send("PROT P");
                    self.phase = Phase::Prot;
                }
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::Prot => match code {
                200 => self.logged_in(cx),
                _ => return Err(ErrorKind::Code(code)),
            },
            Phase::Type => match code {
                200 => self.start_passive(cx)?,
                _ => self.op_fail(ErrorKind::Code(code), cx),
            },
            Phase::Passive => match (code, cx.plan.mode) {
                (229, DataMode::Epsv) => {
                    let port = reply::parse_229(&r.text).ok_or(ErrorKind::BadReply)?;
                    self.connect_data(SocketAddr::new(cx.plan.server.ip(), port), cx)?;
                }
                (227, DataMode::Pasv) => {
                    let a = reply::parse_227(&r.text).ok_or(ErrorKind::BadReply)?;
                    let ip = if a.ip().is_unspecified() { cx.plan.server.ip() } else { IpAddr::V4(*a.ip()) };
                    self.connect_data(SocketAddr::new(ip, a.port()), cx)?;
                }
                _ => self.op_fail(ErrorKind::Code(code), cx),
            },
            Phase::PortSent => match code {
                200 => self.send_transfer(cx),
                _ => self.op_fail(ErrorKind::Code(code), cx),
            },
            Phase::Transfer => {
                let Some(op) = self.op.as_mut() else { return Err(ErrorKind::BadReply) };
                match code {
                    100..=199 => {
                        op.prelim = true;
                        match op.kind {
                            OpKind::Retr => op.expect = reply::parse_150_size(&r.text),
                            OpKind::Stor => op.first_byte = Some(cx.now),
                            _ => {}
                        }
                    }
                    200..=299 => {
                        op.replied = true;
                        self.check_complete(cx);
                    }
                    _ => self.op_fail(ErrorKind::Code(code), cx),
                }
            }
            Phase::Quitting { reconnect, .. } => {
                if code == 221 {
                    self.phase = Phase::Quitting { reconnect, acked: true };
                    self.deadline = Some(cx.now + QUIT_GRACE);
                } else {
                    cx.stats.error(ErrorKind::Code(code));
                    self.end_quit(reconnect, cx);
                }
            }
            Phase::Holding | Phase::Waiting | Phase::Connecting | Phase::CtrlHandshake | Phase::Done => {
                return Err(ErrorKind::Code(code));
            }
        }
        Ok(())
    }

    /// USER/PASS accepted: under TLS, PBSZ 0 and PROT P come next.
    fn authenticated(&mut self, cx: &mut Ctx<'_>) {
        if cx.plan.tls.is_some() {
            self.send("PBSZ 0");
            self.phase = Phase::Pbsz;
        } else {
            self.logged_in(cx);
        }
    }

    /// Ready for transfers.
    fn logged_in(&mut self, cx: &mut Ctx<'_>) {
        self.fails = 0;
        if !self.established {
            self.established = true;
            cx.stats.established += 1;
            let n = cx.shared.established.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n == cx.plan.conns && cx.plan.workload == Workload::Idle {
                eprintln!("bench: holding {n} sessions");
            }
        }
        if std::mem::take(&mut self.login_op) {
            self.ticket = false;
            cx.stats.ops += 1;
            cx.stats.op(OpKind::Login).total.record(cx.now - self.connected_at);
        }
        self.next_op(cx);
    }

    /// Chooses and starts the next operation, or ends the session.
    fn next_op(&mut self, cx: &mut Ctx<'_>) {
        self.deadline = None;
        self.op = None;
        if cx.stopping {
            return self.quit(false, cx);
        }
        if cx.plan.workload == Workload::Idle {
            self.phase = Phase::Holding;
            return;
        }
        if !cx.shared.claim() {
            return self.quit(false, cx);
        }
        self.ticket = true;
        let kind = if cx.plan.mix.len() == 1 { cx.plan.mix[0].0 } else { cx.plan.pick(self.random()) };
        let mut drop_mid = false;
        if self.chance(cx.plan.disconnect_prob) {
            if kind == OpKind::Login || self.random() & 1 == 0 {
                return self.drop_connection(cx);
            }
            drop_mid = true;
        }
        self.deadline = Some(cx.now + cx.plan.timeout);
        if kind == OpKind::Login {
            self.login_op = true;
            return self.quit(true, cx);
        }
        self.op = Some(Op {
            kind,
            started: cx.now,
            cmd_at: None,
            first_byte: None,
            bytes: 0,
            expect: None,
            prelim: false,
            replied: false,
            data_done: false,
            drop_mid,
        });
        if kind == OpKind::List {
            // A listing is text either way; only file transfers set TYPE I.
            if let Err(k) = self.start_passive(cx) {
                self.fail_session(k, cx);
            }
        } else {
            self.send("TYPE I");
            self.phase = Phase::Type;
        }
    }

    fn quit(&mut self, reconnect: bool, cx: &mut Ctx<'_>) {
        self.send("QUIT");
        self.phase = Phase::Quitting { reconnect, acked: false };
        if self.deadline.is_none() {
            self.deadline = Some(cx.now + cx.plan.timeout);
        }
    }

    fn end_quit(&mut self, reconnect: bool, cx: &mut Ctx<'_>) {
        self.close_all(cx);
        self.deadline = None;
        if reconnect {
            self.connect(cx);
        } else {
            self.set_done(cx);
        }
    }

    /// Ends the operation once both the final reply and the end of the data
    /// are in.
    fn check_complete(&mut self, cx: &mut Ctx<'_>) {
        let Some(op) = self.op.as_ref() else { return };
        if !(op.replied && op.data_done) {
            return;
        }
        let short = match op.kind {
            OpKind::Retr => op.expect.is_some_and(|e| e != op.bytes),
            OpKind::Stor => op.bytes != cx.plan.size,
            _ => false,
        };
        if short {
            return self.op_fail(ErrorKind::Short, cx);
        }
        let lat = cx.stats.op(op.kind);
        if let (Some(cmd), Some(first)) = (op.cmd_at, op.first_byte) {
            lat.ttfb.record(first.saturating_duration_since(cmd));
        }
        lat.total.record(cx.now.saturating_duration_since(op.started));
        cx.stats.ops += 1;
        self.ticket = false;
        self.close_data(cx);
        self.next_op(cx);
    }

    /// The operation failed but the session is usable: count it, move on.
    fn op_fail(&mut self, kind: ErrorKind, cx: &mut Ctx<'_>) {
        cx.stats.error(kind);
        self.ticket = false;
        self.close_data(cx);
        self.close_listener(cx);
        self.next_op(cx);
    }
}
