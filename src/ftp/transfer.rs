//! Transfer jobs: what moves over an open data connection. RETR sends with
//! `sendfile` (read+write fallback, ASCII conversion in user space); LIST,
//! NLST and MLSD stream listing chunks produced by `fs::listing::Lister`.
//! RETR never reads a range the page cache does not hold: it asks its
//! `disk::Window` first and waits (`Pump::Disk`) while a helper reads it in.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use super::sink::Conn;

use std::sync::Arc;

use crate::disk::{DiskCx, Gate, Outcome, Ticket, Window, Work};
use crate::fs::listing::Lister;
use crate::fs::vpath::VPath;
use crate::fs::write::Upload;
use crate::io::{Status, classify_err, sys};
use crate::limits;
use crate::lists::cache::{Fill, FillResult};

/// Why a transfer stopped before its end.
#[derive(Debug)]
pub enum Failure {
    /// The client closed or reset the data connection (426).
    PeerClosed,
    /// The file ended before the size seen at open: truncated (451).
    Truncated,
    /// A local read error (451).
    Local(io::Error),
    /// A write error on the data socket other than a close (426).
    Network(io::Error),
    /// Writing the uploaded file failed (ENOSPC 452, EDQUOT/EFBIG 552, else 451).
    Write(io::Error),
    /// The data connection's TLS failed or broke the session-reuse policy (522).
    Tls(String),
}

/// Result of giving a job one turn.
#[derive(Debug)]
pub enum Pump {
    /// All bytes are in the socket.
    Finished,
    /// The socket is full: wait for writable.
    Blocked,
    /// The turn's budget is used up; the socket may still be writable.
    Yield,
    /// The next bytes are not in the page cache: a disk helper reads them in
    /// and its completion resumes the transfer (the socket may be writable).
    Disk,
    Failed(Failure),
}

/// A download in progress.
pub struct Retr {
    pub file: File,
    pub path: VPath,
    /// Next file offset to send.
    pub pos: u64,
    /// Offset the transfer started at (REST).
    pub start: u64,
    /// File size when opened; the transfer ends here even if the file grows.
    pub end: u64,
    pub ascii: bool,
    /// Bytes written to the socket (differs from file bytes in ASCII mode).
    pub sent: u64,
    copy: Option<CopyBuf>,
    /// What of the file ahead is known to be in the page cache.
    pub window: Window,
}

/// The single bounded buffer of the read+write path (fallback and ASCII).
struct CopyBuf {
    buf: Box<[u8]>,
    lo: usize,
    hi: usize,
    prev_cr: bool,
}

/// A listing streamed to the client.
pub struct Listing {
    /// The command that asked for it (LIST, NLST or MLSD), for logs.
    pub verb: &'static str,
    pub lister: Option<Lister>,
    pub buf: Vec<u8>,
    pub pos: usize,
    pub path: VPath,
    pub sent: u64,
    /// A whole listing shared with the listing cache, sent from `pos` (then `buf` is unused).
    body: Option<Arc<[u8]>>,
    /// A helper thread's fill to wait for, and whether this listing asked for it first
    /// (it then gets what was read if the listing turns out too large for the cache; the
    /// others stream from their own `lister`).
    fill: Option<(Arc<Fill>, bool)>,
}

/// An upload in progress: socket → one bounded buffer → positioned writes.
pub struct Stor {
    pub up: Upload,
    pub path: VPath,
    /// The command (STOR, APPE, STOU), for logs.
    pub verb: &'static str,
    /// Next file offset to write.
    pub pos: u64,
    pub start: u64,
    /// Bytes read from the socket.
    pub received: u64,
    pub ascii: bool,
    pub fsync: bool,
    buf: Box<[u8]>,
    /// ASCII mode: a CR at the end of the last read, not yet written.
    held_cr: bool,
    /// The client's EOF was read: only the end (fsync, publish) is left.
    eof: bool,
    /// --fsync-uploads: the fsync a disk helper is doing for us.
    syncing: Option<Ticket>,
    /// Its result, once back.
    synced: Option<io::Result<()>>,
    /// Atomic APPE/resume: the published file and how many of its bytes
    /// must be copied into the temporary before the client's bytes.
    seed: Option<(File, u64)>,
    /// The copy a disk helper is doing (the upload waits for it).
    seeding: Option<Ticket>,
    /// The copy failed.
    seed_failed: Option<io::Error>,
    /// The listing cache, told when the upload ends (see `upload.rs`).
    pub lists: Option<Arc<crate::lists::cache::ListCache>>,
}

/// One write of a copy path (a download's buffer, a listing): sends
/// `buf[*pos..]`, at most what is left of `budget`, and counts what went.
/// `Err` carries what the pump returns when it must stop here (budget used,
/// socket full, peer gone).
fn write_step(
    conn: &mut Conn,
    buf: &[u8],
    pos: &mut usize,
    sent: &mut u64,
    moved: &mut u64,
    budget: u64,
) -> Result<(), Pump> {
    let room = budget.saturating_sub(*moved);
    if room == 0 {
        return Err(Pump::Yield);
    }
    let end = buf.len().min(pos.saturating_add(usize::try_from(room).unwrap_or(usize::MAX)));
    match conn.write(&buf[*pos..end]) {
        Status::Done(n) => {
            *pos += n;
            *sent += n as u64;
            *moved += n as u64;
            Ok(())
        }
        Status::WouldBlock => Err(Pump::Blocked),
        Status::Closed => Err(Pump::Failed(Failure::PeerClosed)),
        Status::Error(e) => Err(Pump::Failed(Failure::Network(e))),
    }
}

pub enum Job {
    Retr(Retr),
    List(Listing),
    Stor(Stor),
}

impl Job {
    pub fn name(&self) -> &'static str {
        match self {
            Job::Retr(_) => "RETR",
            Job::List(l) => l.verb,
            Job::Stor(s) => s.verb,
        }
    }

    /// The most bytes the job still has to write to the socket, when known:
    /// a download's rest (twice that in ASCII, where every LF may gain a
    /// CR); `u64::MAX` for listings and uploads.
    pub fn left(&self) -> u64 {
        match self {
            Job::Retr(r) => {
                let rest = r.end.saturating_sub(r.pos);
                if r.ascii { rest.saturating_mul(2) } else { rest }
            }
            Job::List(_) | Job::Stor(_) => u64::MAX,
        }
    }

    /// True while the job waits for a disk helper's completion.
    pub fn disk_waiting(&self) -> bool {
        match self {
            Job::Retr(r) => r.window.waiting(),
            Job::Stor(s) => s.syncing.is_some() || s.seeding.is_some(),
            Job::List(_) => false,
        }
    }

    /// A disk helper finished job `seq`; true when it was this job's.
    pub fn disk_done(&mut self, seq: u64, outcome: Outcome) -> bool {
        match self {
            Job::Retr(r) => r.window.done(seq),
            Job::Stor(s) if s.syncing.as_ref().is_some_and(|t| t.seq == seq) => {
                s.syncing = None;
                s.synced = Some(match outcome {
                    Outcome::Failed(e) => Err(e),
                    _ => Ok(()),
                });
                true
            }
            Job::Stor(s) if s.seeding.as_ref().is_some_and(|t| t.seq == seq) => {
                s.seeding = None;
                if let Outcome::Failed(e) = outcome {
                    s.seed_failed = Some(e);
                }
                true
            }
            _ => false,
        }
    }

    pub fn sent(&self) -> u64 {
        match self {
            Job::Retr(r) => r.sent,
            Job::List(l) => l.sent,
            Job::Stor(s) => s.received,
        }
    }

    pub fn path(&self) -> &VPath {
        match self {
            Job::Retr(r) => &r.path,
            Job::List(l) => &l.path,
            Job::Stor(s) => &s.path,
        }
    }

    /// Moves bytes to `sock` until it would block, the job ends, or
    /// `budget` bytes (the turn's share, or what a rate limit allows) have
    /// moved; no single call moves more than what is left of it. `moved`
    /// accumulates bytes sent.
    pub fn pump(&mut self, conn: &mut Conn, moved: &mut u64, budget: u64, disk: &mut DiskCx<'_>) -> Pump {
        let p = match self {
            Job::Retr(r) => r.pump(conn, moved, budget, disk),
            Job::List(l) => l.pump(conn, moved, budget),
            Job::Stor(s) => s.pump(conn, moved, budget, disk),
        };
        match p {
            // All bytes handed over: a TLS stream still owes close_notify.
            Pump::Finished => match conn.finish() {
                Status::Done(_) | Status::Closed => Pump::Finished,
                Status::WouldBlock => Pump::Blocked,
                Status::Error(e) => Pump::Failed(Failure::Network(e)),
            },
            p => p,
        }
    }
}

/// Test hook: `MIRRORFTPD_TEST_SEND_DELAY_US_PER_MIB` makes each sendfile
/// cost that long per MiB sent (a slow machine: the clients always keep up,
/// so every big transfer uses its whole quantum), to show fair turns.
fn slow_send(n: usize) {
    static DELAY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let per_mib = *DELAY.get_or_init(|| {
        std::env::var("MIRRORFTPD_TEST_SEND_DELAY_US_PER_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
    });
    if per_mib > 0 {
        std::thread::sleep(std::time::Duration::from_micros((per_mib * n as u64) >> 20));
    }
}

impl Retr {
    pub fn new(file: File, path: VPath, start: u64, end: u64, ascii: bool) -> Retr {
        let copy = ascii.then(CopyBuf::new);
        Retr { file, path, pos: start, start, end, ascii, sent: 0, copy, window: Window::new() }
    }

    fn pump(&mut self, conn: &mut Conn, moved: &mut u64, budget: u64, disk: &mut DiskCx<'_>) -> Pump {
        if self.copy.is_none() && conn.zero_copy() {
            match self.pump_sendfile(&conn.stream, moved, budget, disk) {
                Err(()) => self.copy = Some(CopyBuf::new()),
                Ok(p) => return p,
            }
        }
        if self.copy.is_none() {
            self.copy = Some(CopyBuf::new());
        }
        self.pump_copy(conn, moved, budget, disk)
    }

    /// Zero-copy path. `Err(())` asks for the read+write fallback.
    fn pump_sendfile(
        &mut self,
        sock: &mio::net::TcpStream,
        moved: &mut u64,
        budget: u64,
        disk: &mut DiskCx<'_>,
    ) -> Result<Pump, ()> {
        loop {
            if self.pos >= self.end {
                return Ok(Pump::Finished);
            }
            if *moved >= budget {
                return Ok(Pump::Yield);
            }
            let cached = match self.window.gate(&self.file, self.pos, self.end, disk) {
                Gate::Go(n) => n,
                Gate::Wait => return Ok(Pump::Disk),
            };
            let want =
                (self.end - self.pos).min(limits::SENDFILE_CHUNK as u64).min(budget - *moved).min(cached) as usize;
            match sys::sendfile(sock.as_fd(), self.file.as_fd(), &mut self.pos, want) {
                Ok(0) => return Ok(Pump::Failed(Failure::Truncated)),
                Ok(n) => {
                    self.sent += n as u64;
                    *moved += n as u64;
                    slow_send(n);
                }
                Err(e) if sys::sendfile_unsupported(&e) && self.sent == 0 => return Err(()),
                Err(e) => {
                    return Ok(match classify_err(e) {
                        Status::WouldBlock => Pump::Blocked,
                        Status::Closed => Pump::Failed(Failure::PeerClosed),
                        Status::Error(e) if e.raw_os_error() == Some(libc::EIO) => Pump::Failed(Failure::Local(e)),
                        Status::Error(e) => Pump::Failed(Failure::Network(e)),
                        Status::Done(_) => Pump::Blocked,
                    });
                }
            }
        }
    }

    /// Bounded read+write path: one buffer, positioned reads, LF → CRLF in
    /// ASCII mode.
    fn pump_copy(&mut self, conn: &mut Conn, moved: &mut u64, budget: u64, disk: &mut DiskCx<'_>) -> Pump {
        let Some(c) = self.copy.as_mut() else {
            return Pump::Failed(Failure::Local(io::Error::other("no copy buffer")));
        };
        loop {
            if c.lo == c.hi {
                if self.pos >= self.end {
                    return Pump::Finished;
                }
                if *moved >= budget {
                    return Pump::Yield;
                }
                // Read at most half the buffer so ASCII expansion fits.
                let room = if self.ascii { c.buf.len() / 2 } else { c.buf.len() };
                let want = (self.end - self.pos).min(room as u64) as usize;
                let src_start = c.buf.len() - room;
                let buf = &mut c.buf[src_start..src_start + want];
                let n = match self.window.read(&self.file, buf, self.pos, self.end, disk) {
                    Ok(Gate::Wait) => return Pump::Disk,
                    Ok(Gate::Go(0)) => return Pump::Failed(Failure::Truncated),
                    Ok(Gate::Go(n)) => n as usize,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Pump::Failed(Failure::Local(e)),
                };
                self.pos += n as u64;
                if self.ascii {
                    // Expand in place from the upper half into the buffer start.
                    let mut w = 0;
                    for i in src_start..src_start + n {
                        let b = c.buf[i];
                        if b == b'\n' && !c.prev_cr {
                            c.buf[w] = b'\r';
                            w += 1;
                        }
                        c.buf[w] = b;
                        w += 1;
                        c.prev_cr = b == b'\r';
                    }
                    c.lo = 0;
                    c.hi = w;
                } else {
                    c.lo = src_start;
                    c.hi = src_start + n;
                }
            }
            if let Err(p) = write_step(conn, &c.buf[..c.hi], &mut c.lo, &mut self.sent, moved, budget) {
                return p;
            }
        }
    }
}

impl CopyBuf {
    fn new() -> CopyBuf {
        CopyBuf { buf: vec![0; limits::COPY_BUF].into_boxed_slice(), lo: 0, hi: 0, prev_cr: false }
    }
}

impl Listing {
    /// A listing produced entry by entry from an open directory.
    pub fn streaming(verb: &'static str, lister: Lister, path: VPath) -> Listing {
        Listing {
            verb,
            lister: Some(lister),
            buf: Vec::with_capacity(limits::LIST_CHUNK + 4096),
            pos: 0,
            path,
            sent: 0,
            body: None,
            fill: None,
        }
    }

    /// A listing already complete in memory (a single file's line).
    pub fn ready(verb: &'static str, buf: Vec<u8>, path: VPath) -> Listing {
        Listing { verb, lister: None, buf, pos: 0, path, sent: 0, body: None, fill: None }
    }

    /// A listing from the cache: the bytes are shared, never copied.
    pub fn cached(verb: &'static str, body: Arc<[u8]>, path: VPath) -> Listing {
        Listing { verb, lister: None, buf: Vec::new(), pos: 0, path, sent: 0, body: Some(body), fill: None }
    }

    /// A listing a helper thread is filling. `fallback` streams the directory if the
    /// listing is not filled there (`owner`: this listing asked for the fill).
    pub fn waiting(verb: &'static str, fill: Arc<Fill>, owner: bool, fallback: Option<Lister>, path: VPath) -> Listing {
        Listing {
            verb,
            lister: fallback,
            buf: Vec::new(),
            pos: 0,
            path,
            sent: 0,
            body: None,
            fill: Some((fill, owner)),
        }
    }

    /// Takes the fill's result once it is in; `Some` ends the turn.
    fn take_fill(&mut self) -> Option<Pump> {
        let (fill, owner) = self.fill.as_ref()?;
        let Some((result, partial)) = fill.result(*owner) else {
            return Some(Pump::Blocked); // the helper's completion drives us again
        };
        self.fill = None;
        match result {
            FillResult::Body(b) => {
                self.body = Some(b);
                self.lister = None;
            }
            FillResult::Stream => {
                if let Some((buf, lister)) = partial {
                    self.buf = buf;
                    self.lister = Some(lister);
                } else if self.lister.is_none() {
                    return Some(Pump::Failed(Failure::Local(io::Error::other("listing not filled"))));
                }
                if self.buf.capacity() < limits::LIST_CHUNK {
                    self.buf.reserve(limits::LIST_CHUNK + 4096 - self.buf.len());
                }
            }
            FillResult::Failed(e) => return Some(Pump::Failed(Failure::Local(io::Error::other(e)))),
        }
        None
    }

    /// Sends the cached body from `pos`.
    fn pump_body(&mut self, body: &[u8], conn: &mut Conn, moved: &mut u64, budget: u64) -> Pump {
        loop {
            if self.pos == body.len() {
                return Pump::Finished;
            }
            if let Err(p) = write_step(conn, body, &mut self.pos, &mut self.sent, moved, budget) {
                return p;
            }
        }
    }

    fn pump(&mut self, conn: &mut Conn, moved: &mut u64, budget: u64) -> Pump {
        if let Some(p) = self.take_fill() {
            return p;
        }
        if let Some(body) = self.body.clone() {
            return self.pump_body(&body, conn, moved, budget);
        }
        loop {
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
                let Some(lister) = self.lister.as_mut() else {
                    return Pump::Finished;
                };
                if *moved >= budget {
                    return Pump::Yield;
                }
                match lister.fill(&mut self.buf, limits::LIST_CHUNK) {
                    Ok(true) => self.lister = None,
                    Ok(false) => {}
                    Err(e) => return Pump::Failed(Failure::Local(e)),
                }
                if self.buf.is_empty() {
                    continue;
                }
            }
            if let Err(p) = write_step(conn, &self.buf, &mut self.pos, &mut self.sent, moved, budget) {
                return p;
            }
        }
    }
}

/// Seconds since `t`, for logs.
pub fn secs_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

impl Stor {
    pub fn new(up: Upload, path: VPath, verb: &'static str, start: u64, ascii: bool, fsync: bool) -> Stor {
        let buf = vec![0; limits::UPLOAD_BUF].into_boxed_slice();
        Stor {
            up,
            path,
            verb,
            pos: start,
            start,
            received: 0,
            ascii,
            fsync,
            buf,
            held_cr: false,
            eof: false,
            syncing: None,
            synced: None,
            seed: None,
            seeding: None,
            seed_failed: None,
            lists: None,
        }
    }

    fn write(&mut self, lo: usize, hi: usize) -> io::Result<()> {
        if lo >= hi {
            return Ok(());
        }
        self.up.file.write_all_at(&self.buf[lo..hi], self.pos)?;
        self.pos += (hi - lo) as u64;
        Ok(())
    }

    /// CRLF → LF in place over `buf[lo..hi]`; returns the end of the bytes
    /// to write (from `lo`). A CR at the very end is held back until the next
    /// read shows whether an LF follows.
    fn crlf_to_lf(&mut self, lo: usize, hi: usize) -> usize {
        let (mut w, mut r) = (lo, lo);
        while r < hi {
            let b = self.buf[r];
            if b == b'\r' {
                if r + 1 == hi {
                    self.held_cr = true;
                    break;
                }
                if self.buf[r + 1] == b'\n' {
                    r += 1;
                    continue;
                }
            }
            self.buf[w] = b;
            w += 1;
            r += 1;
        }
        w
    }

    /// Everything received: flush a held CR, sync if asked (on a disk
    /// helper: `Ok(false)` while it works), publish.
    fn finish(&mut self, disk: &mut DiskCx<'_>) -> Result<bool, io::Error> {
        self.eof = true;
        if self.held_cr {
            self.held_cr = false;
            self.buf[0] = b'\r';
            self.write(0, 1)?;
        }
        if self.fsync {
            match self.synced.take() {
                Some(r) => r?,
                None if self.syncing.is_some() => return Ok(false),
                None => match disk.link.map(|l| l.submit(disk.slot, disk.seq, &self.up.file, Work::Sync)) {
                    Some(Ok(t)) => {
                        self.syncing = Some(t);
                        return Ok(false);
                    }
                    _ => self.up.file.sync_all()?,
                },
            }
        }
        self.up.publish()?;
        Ok(true)
    }

    fn finished(&mut self, disk: &mut DiskCx<'_>) -> Pump {
        match self.finish(disk) {
            Ok(true) => Pump::Finished,
            Ok(false) => Pump::Disk,
            Err(e) => Pump::Failed(Failure::Write(e)),
        }
    }

    /// Copies the published file's first bytes into the temporary first
    /// (atomic APPE/resume; the start offset is the copy's length).
    pub fn seeded(mut self, src: File, len: u64) -> Stor {
        self.seed = Some((src, len));
        self
    }

    /// Starts the seed copy on a helper (in place when there is none or its
    /// queue is full). `Some` while the upload must wait for it, or failed.
    fn seed_first(&mut self, disk: &mut DiskCx<'_>) -> Option<Pump> {
        if let Some(e) = self.seed_failed.take() {
            return Some(Pump::Failed(Failure::Write(e)));
        }
        if self.seeding.is_some() {
            return Some(Pump::Disk);
        }
        let (src, len) = self.seed.take()?;
        let work = Work::Seed { src, len };
        let work = match disk.link {
            Some(l) => match l.submit(disk.slot, disk.seq, &self.up.file, work) {
                Ok(t) => {
                    self.seeding = Some(t);
                    return Some(Pump::Disk);
                }
                Err(w) => w,
            },
            None => work,
        };
        match work {
            Work::Seed { src, len } => {
                crate::disk::seed(&src, &self.up.file, len).err().map(|e| Pump::Failed(Failure::Write(e)))
            }
            _ => None,
        }
    }

    fn pump(&mut self, conn: &mut Conn, moved: &mut u64, budget: u64, disk: &mut DiskCx<'_>) -> Pump {
        if let Some(p) = self.seed_first(disk) {
            return p;
        }
        if self.eof {
            return self.finished(disk);
        }
        loop {
            if *moved >= budget {
                return Pump::Yield;
            }
            // ASCII mode keeps byte 0 free for a CR held from the last read.
            let off = usize::from(self.ascii);
            let room = usize::try_from(budget - *moved).unwrap_or(usize::MAX);
            let end = self.buf.len().min(off.saturating_add(room));
            let n = match conn.read(&mut self.buf[off..end]) {
                // EOF marks the end of the file in stream mode.
                Ok(0) => return self.finished(disk),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A reset is an abort, never a complete file.
                Err(e) => {
                    return match classify_err(e) {
                        Status::WouldBlock => Pump::Blocked,
                        Status::Error(e) => Pump::Failed(Failure::Network(e)),
                        _ => Pump::Failed(Failure::PeerClosed),
                    };
                }
            };
            self.received += n as u64;
            *moved += n as u64;
            let (lo, hi) = if self.ascii {
                let lo = if std::mem::take(&mut self.held_cr) {
                    self.buf[0] = b'\r';
                    0
                } else {
                    1
                };
                (lo, self.crlf_to_lf(lo, 1 + n))
            } else {
                (0, n)
            };
            if let Err(e) = self.write(lo, hi) {
                return Pump::Failed(Failure::Write(e));
            }
        }
    }
}
