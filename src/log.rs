//! The session log: connects, logins, command errors, transfers, disconnects.
//! Text lines on stderr by default; `--log-file` sends them to a file and
//! `--log-format json` writes one JSON object per line instead. The transfer
//! log (`--xferlog`) goes through the same logger thread (`obs::sink`), so an
//! event loop never waits on log I/O. Passwords are never passed here.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use crate::obs::json::Obj;
use crate::obs::sink::{self, Msg, Note, Sink};

static QUIET: AtomicBool = AtomicBool::new(false);
static FORMAT: AtomicU8 = AtomicU8::new(0);
static SINK: OnceLock<Sink> = OnceLock::new();

/// --log-format
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// Starts the logger thread with the configured files (opened here, with
/// O_APPEND) and format; `local_time`: xferlog times in local time. Before this, lines go straight to stderr.
pub fn init(
    session_file: Option<&std::path::Path>,
    xferlog: Option<&std::path::Path>,
    format: LogFormat,
    local_time: bool,
) -> std::io::Result<()> {
    FORMAT.store(format as u8, Ordering::Relaxed);
    LOCAL_TIME.store(local_time, Ordering::Relaxed);
    XFERLOG.store(xferlog.is_some(), Ordering::Relaxed);
    let sink = Sink::start(session_file, xferlog, note, crate::limits::LOG_QUEUE)?;
    let _ = SINK.set(sink);
    Ok(())
}

/// Reopens the log files by name (after logrotate moved them): SIGHUP and SIGUSR1.
pub fn reopen() {
    if let Some(s) = SINK.get() {
        s.reopen();
    }
}

/// Waits (up to 2 s) until every line queued so far is written: call before exiting.
pub fn flush() {
    if let Some(s) = SINK.get() {
        s.flush(Duration::from_secs(2));
    }
}

/// Log lines dropped so far because the logger's queue was full.
pub fn dropped() -> u64 {
    sink::DROPPED.load(Ordering::Relaxed)
}

/// Writes one transfer-log line (does nothing if --xferlog is off). The
/// time is local with --local-time, else UTC.
pub fn xferlog(rec: &crate::obs::xferlog::Record<'_>) {
    if let (true, Some(s)) = (xferlog_enabled(), SINK.get()) {
        let now = crate::fs::time::now_secs();
        let parts = if LOCAL_TIME.load(Ordering::Relaxed) {
            crate::fs::time::local_parts(now)
        } else {
            crate::fs::time::utc_parts(now)
        };
        s.send(Msg::Xfer(crate::obs::xferlog::format(rec, &parts)));
    }
}

/// Whether --xferlog is on (so callers skip formatting when it is not).
pub fn xferlog_enabled() -> bool {
    XFERLOG.load(Ordering::Relaxed)
}

static XFERLOG: AtomicBool = AtomicBool::new(false);
static LOCAL_TIME: AtomicBool = AtomicBool::new(false);

/// The structured fields of one session-log event. Text lines show the
/// message; JSON lines show the fields and the message as `msg`.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    pub level: Level,
    /// connect, login, login_failed, error_reply, transfer, disconnect,
    /// refused, log_dropped, log_reopened, message.
    pub event: &'static str,
    pub session: Option<u64>,
    pub peer: Option<IpAddr>,
    pub port: Option<u16>,
    pub user: Option<&'a str>,
    pub cmd: Option<&'a str>,
    pub code: Option<u16>,
    pub path: Option<&'a [u8]>,
    pub bytes: Option<u64>,
    pub secs: Option<f64>,
    pub reason: Option<&'a str>,
    pub count: Option<u64>,
}

impl<'a> Event<'a> {
    pub fn new(level: Level, event: &'static str) -> Event<'a> {
        Event {
            level,
            event,
            session: None,
            peer: None,
            port: None,
            user: None,
            cmd: None,
            code: None,
            path: None,
            bytes: None,
            secs: None,
            reason: None,
            count: None,
        }
    }

    /// An event of session `id` from `peer`, naming `user` unless it is empty
    /// (the shape every FTP and SFTP session line starts from).
    pub fn of_session(
        level: Level,
        event: &'static str,
        id: u64,
        peer: std::net::SocketAddr,
        user: &'a str,
    ) -> Event<'a> {
        let mut e = Event::new(level, event);
        e.session = Some(id);
        e.peer = Some(peer.ip());
        e.port = Some(peer.port());
        if !user.is_empty() {
            e.user = Some(user);
        }
        e
    }

    /// Logs the end of a session (FTP or SFTP): its totals and why it ended.
    #[allow(clippy::too_many_arguments)]
    pub fn session_end(
        id: u64,
        peer: std::net::SocketAddr,
        user: &str,
        transfers: u64,
        bytes: u64,
        secs: f64,
        reason: &str,
    ) {
        let mut ev = Event::of_session(Level::Info, "disconnect", id, peer, user);
        ev.bytes = Some(bytes);
        ev.secs = Some(secs);
        ev.reason = Some(reason);
        let shown = if user.is_empty() { "-" } else { user };
        event(
            &ev,
            format_args!(
                "session {id} end {peer} user={shown} transfers={transfers} bytes={bytes} secs={secs:.1} reason={reason}"
            ),
        );
    }

    /// The JSON line of this event; `ts` is RFC 3339 UTC.
    pub fn to_json(&self, ts: &str, msg: &str) -> String {
        let mut o = Obj::new();
        o.str("ts", ts).str("level", self.level.name()).str("event", self.event);
        if let Some(v) = self.session {
            o.u64("session", v);
        }
        if let Some(v) = self.peer {
            o.str("peer", &v.to_string());
        }
        if let Some(v) = self.port {
            o.u64("port", u64::from(v));
        }
        if let Some(v) = self.user {
            o.str("user", v);
        }
        if let Some(v) = self.cmd {
            o.str("cmd", v);
        }
        if let Some(v) = self.code {
            o.u64("code", u64::from(v));
        }
        if let Some(v) = self.path {
            o.bytes("path", v);
        }
        if let Some(v) = self.bytes {
            o.u64("bytes", v);
        }
        if let Some(v) = self.secs {
            o.f64("secs", v);
        }
        if let Some(v) = self.reason {
            o.str("reason", v);
        }
        if let Some(v) = self.count {
            o.u64("count", v);
        }
        o.str("msg", msg);
        o.finish()
    }
}

/// `2026-11-24T01:02:03.456Z`.
fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let p = crate::fs::time::utc_parts(now.as_secs() as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year,
        p.month,
        p.day,
        p.hour,
        p.min,
        p.sec,
        now.subsec_millis()
    )
}

fn text_line(level: Level, args: fmt::Arguments<'_>) -> String {
    let p = crate::fs::time::utc_parts(crate::fs::time::now_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z {} {args}",
        p.year,
        p.month,
        p.day,
        p.hour,
        p.min,
        p.sec,
        level.name()
    )
}

/// The logger thread's own lines.
fn note(n: Note) -> String {
    match n {
        Note::Dropped(n) => {
            let mut ev = Event::new(Level::Warn, "log_dropped");
            ev.count = Some(n);
            render(&ev, format_args!("{n} log lines dropped: the logger could not keep up"))
        }
        Note::Reopened => render(&Event::new(Level::Info, "log_reopened"), format_args!("log files reopened")),
    }
}

fn render(ev: &Event<'_>, text: fmt::Arguments<'_>) -> String {
    if FORMAT.load(Ordering::Relaxed) == LogFormat::Json as u8 {
        ev.to_json(&timestamp(), &text.to_string())
    } else {
        text_line(ev.level, text)
    }
}

/// Logs an event; `text` is the human-readable message.
pub fn event(ev: &Event<'_>, text: fmt::Arguments<'_>) {
    if ev.level == Level::Info && QUIET.load(Ordering::Relaxed) {
        return;
    }
    let line = render(ev, text);
    match SINK.get() {
        Some(s) => {
            s.send(Msg::Session(line));
        }
        None => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
}

/// Session and transfer events (suppressed by --quiet).
pub fn info(args: fmt::Arguments<'_>) {
    event(&Event::new(Level::Info, "message"), args);
}

pub fn warn(args: fmt::Arguments<'_>) {
    event(&Event::new(Level::Warn, "message"), args);
}

pub fn error(args: fmt::Arguments<'_>) {
    event(&Event::new(Level::Error, "message"), args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_event_has_fields_in_order_and_escapes() {
        let mut ev = Event::new(Level::Info, "transfer");
        ev.session = Some(3);
        ev.peer = Some("127.0.0.1".parse().unwrap());
        ev.user = Some("bo\"b");
        ev.cmd = Some("RETR");
        ev.path = Some(b"/a\nb\xff");
        ev.bytes = Some(10);
        ev.secs = Some(0.25);
        ev.reason = Some("ok");
        let line = ev.to_json("2026-11-24T01:02:03.000Z", "x\\y");
        assert_eq!(
            line,
            r#"{"ts":"2026-11-24T01:02:03.000Z","level":"info","event":"transfer","session":3,"peer":"127.0.0.1","user":"bo\"b","cmd":"RETR","path":"/a\nb�","bytes":10,"secs":0.250,"reason":"ok","msg":"x\\y"}"#
        );
    }

    #[test]
    fn timestamp_is_rfc3339_utc_with_millis() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.as_bytes()[19] == b'.', "{t}");
    }
}
