//! The sans-I/O SFTP v3 engine of one session: channel bytes in, response bytes out, file
//! operations in between through the session's jail, rules and `--deny` patterns.
//!
//! The integrator (the SSH session in the worker) drives it like this:
//! 1. `feed(bytes)` with channel data while [`Engine::wants_input`] (it takes at most
//!    [`Engine::input_room`] bytes and returns how many it took; the rest stays in the SSH
//!    channel, whose window then closes: that is the flow control).
//! 2. `process(auth, disk)` runs whole requests in order until one of [`Step`]: no complete
//!    request left, output above the high-water mark, a turn's budget used, a READ (or fsync)
//!    that needs the disk helpers, or a fatal protocol error.
//! 3. `output()` / `consume_output(n)` drain the responses into the channel.
//!
//! The disk seam: every read of file data goes through [`Disk::read_at`], every fsync
//! through [`Disk::sync`]. [`DirectDisk`] preads and syncs in place (blocking). A reactor's
//! `Disk` answers `None` for a range that is not in the page cache (`preadv2(RWF_NOWAIT)` →
//! EAGAIN, or `cachestat`); `process` then returns [`Step::NeedDisk`] and leaves that request at
//! the head of the queue, untouched. The integrator warms the range on a helper thread (the
//! file is [`Engine::file`] of the handle) and calls `process` again when the helper is done.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::handles::{HandleId, Handles};
use super::proto::{self, Extended, Frame, Request};
use crate::auth::access::{Access, Auth, Need, Refusal};
use crate::fs::jail::{FsError, Jail};
use crate::fs::vpath::VPath;
use crate::limits;

/// What the engine needs of the server's settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `--atomic-uploads`: writes go to `.NAME.part`, renamed over NAME on CLOSE.
    pub atomic_uploads: bool,
    /// `--fsync-uploads`: CLOSE of an upload syncs it first.
    pub fsync_uploads: bool,
    /// `--local-time`: READDIR's long names in local time.
    pub local_time: bool,
}

/// Reads and syncs of file data: the seam for the non-blocking disk path (module docs).
pub trait Disk {
    /// Reads at `offset` into `buf`: `None` when the range is not resident and the caller
    /// must not wait for it here.
    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>>;
    /// Syncs an upload (fsync@openssh.com, CLOSE under `--fsync-uploads`); `None`: do it on a
    /// helper first.
    fn sync(&mut self, file: &File) -> Option<io::Result<()>>;
}

/// A [`Disk`] that reads and syncs in place.
pub struct DirectDisk;

impl Disk for DirectDisk {
    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
        loop {
            match file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Some(r),
            }
        }
    }

    fn sync(&mut self, file: &File) -> Option<io::Result<()>> {
        Some(file.sync_all())
    }
}

/// Disk work the head request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedDisk {
    /// Bring `[offset, offset + len)` of the handle's file into the page cache.
    Read { handle: HandleId, offset: u64, len: u32 },
    /// fsync the handle's file.
    Sync { handle: HandleId },
}

/// Why `process` stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No complete request is waiting: feed more input.
    Idle,
    /// Output is above the high-water mark: drain it, then call again.
    OutputFull,
    /// The turn's request budget is used; work remains: call again (after other sessions).
    Yield,
    /// The head request waits for the disk (see the module docs).
    NeedDisk(NeedDisk),
    /// A fatal protocol error: send what output is left, then close the channel.
    Closed,
}

/// What happened, for the transfer log and the session log (drained by the integrator).
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A file handle was closed (or dropped with the session: `complete`
    /// false), `took` after it was opened.
    Transfer { path: VPath, upload: bool, bytes: u64, complete: bool, took: std::time::Duration },
    /// A change to the tree (REMOVE, MKDIR, RMDIR, RENAME, SETSTAT...): `error` None if it worked.
    Change { op: &'static str, path: VPath, error: Option<String> },
}

/// A request refused: the STATUS code and its message.
#[derive(Debug)]
pub(super) struct Fail(pub u32, pub String);

impl Fail {
    pub(super) fn new(code: u32, msg: &str) -> Fail {
        Fail(code, msg.to_string())
    }
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Fail {
        let code = match &e {
            FsError::NotFound | FsError::Escape | FsError::NotADirectory => proto::FX_NO_SUCH_FILE,
            FsError::Denied => proto::FX_PERMISSION_DENIED,
            FsError::Io(io) if crate::io::spare::out_of_fds(io) => {
                return Fail::new(proto::FX_FAILURE, "Server out of file descriptors; try again later");
            }
            _ => proto::FX_FAILURE,
        };
        Fail(code, e.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        FsError::from(e).into()
    }
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Fail {
        match r {
            Refusal::Hidden => FsError::NotFound.into(),
            Refusal::Denied => Fail::new(proto::FX_PERMISSION_DENIED, "Permission denied"),
        }
    }
}

/// A handled request: answered, or waiting for the disk.
pub(super) type Handled = Result<(), NeedDisk>;

/// What one call of `process` gets from its caller.
pub(super) struct Cx<'a> {
    pub auth: &'a Auth,
    pub disk: &'a mut dyn Disk,
}

/// The engine of one SFTP session.
pub struct Engine {
    pub(super) access: Access,
    pub(super) jail: Jail,
    pub(super) opts: Options,
    pub(super) handles: Handles,
    /// Responses not yet drained: `out[out_pos..]`.
    pub(super) out: Vec<u8>,
    out_pos: usize,
    /// Received bytes not yet handled: `input[in_pos..]`. Invariant: at most
    /// `limits::SFTP_MAX_INPUT` bytes.
    input: Vec<u8>,
    in_pos: usize,
    /// Whole packets counted in the input (requests outstanding), and where counting stopped.
    queued: usize,
    scanned: usize,
    inited: bool,
    closed: Option<String>,
    events: VecDeque<Event>,
    dropped_events: u64,
}

impl Engine {
    /// A session for `access` (its own jail, or `root` when it has none) with `opts`.
    pub fn new(access: Access, root: &Jail, opts: Options) -> io::Result<Engine> {
        let jail = match &access.jail {
            Some(j) => j.try_clone()?,
            None => root.try_clone()?,
        };
        Ok(Engine {
            access,
            jail,
            opts,
            handles: Handles::default(),
            out: Vec::new(),
            out_pos: 0,
            input: Vec::new(),
            in_pos: 0,
            queued: 0,
            scanned: 0,
            inited: false,
            closed: None,
            events: VecDeque::new(),
            dropped_events: 0,
        })
    }

    /// The logged-in identity.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Bytes [`Engine::feed`] would take now: none once closed or with
    /// [`limits::SFTP_MAX_QUEUED`] requests waiting, else up to the input bound.
    pub fn input_room(&self) -> usize {
        if self.closed.is_some() || self.queued >= limits::SFTP_MAX_QUEUED {
            return 0;
        }
        limits::SFTP_MAX_INPUT.saturating_sub(self.input.len() - self.in_pos)
    }

    /// Whether channel data should be read now: open, output under the high-water mark and
    /// room for input.
    pub fn wants_input(&self) -> bool {
        self.output().len() < limits::SFTP_OUTPUT_HIGH && self.input_room() > 0
    }

    /// Takes up to [`Engine::input_room`] bytes of channel data; returns how many.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.input_room());
        if n == 0 {
            return 0;
        }
        if self.in_pos > 0 && self.input.len() + n > limits::SFTP_MAX_INPUT {
            self.input.drain(..self.in_pos);
            self.scanned -= self.in_pos;
            self.in_pos = 0;
        }
        self.input.extend_from_slice(&data[..n]);
        while let Frame::Packet(len) = proto::frame(&self.input[self.scanned..]) {
            self.scanned += 4 + len;
            self.queued += 1;
        }
        n
    }

    /// Responses waiting to be sent.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Engine::output`] were sent.
    pub fn consume_output(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= limits::SFTP_OUTPUT_HIGH {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Frees the buffers while they are empty (an idle session costs almost nothing).
    pub fn trim(&mut self) {
        if self.output().is_empty() {
            self.out = Vec::new();
            self.out_pos = 0;
        }
        if self.in_pos == self.input.len() {
            self.input = Vec::new();
            self.in_pos = 0;
            self.scanned = 0;
        }
    }

    /// The next logged event.
    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events lost because nobody drained them (the queue is bounded).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    pub(super) fn event(&mut self, e: Event) {
        if self.events.len() >= limits::SFTP_MAX_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(e);
    }

    /// The file of an open file handle: for a helper to warm or sync ([`NeedDisk`]).
    pub fn file(&self, handle: HandleId) -> Option<&File> {
        self.handles.get(handle)?.file()
    }

    /// Open handles.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// The session ends (disconnect, timeout, drain): every handle is closed without
    /// publishing anything; an atomic upload's temporary stays for a later resume.
    pub fn shutdown(&mut self) {
        for h in self.handles.drain() {
            self.log_close(&h, false);
        }
        if self.closed.is_none() {
            self.closed = Some("session ended".into());
        }
    }

    pub(super) fn fatal(&mut self, why: String) {
        crate::log::info(format_args!("sftp {} protocol error: {why}", self.access.user));
        self.shutdown();
        self.closed = Some(why);
    }

    /// Runs whole requests in order (see [`Step`]).
    pub fn process(&mut self, auth: &Auth, disk: &mut dyn Disk) -> Step {
        let mut cx = Cx { auth, disk };
        for _ in 0..limits::SFTP_REQUESTS_PER_TURN {
            if self.closed.is_some() {
                return Step::Closed;
            }
            if self.output().len() >= limits::SFTP_OUTPUT_HIGH {
                return Step::OutputFull;
            }
            let len = match proto::frame(&self.input[self.in_pos..]) {
                Frame::Incomplete => return Step::Idle,
                Frame::Bad(len) => {
                    self.fatal(format!("packet length {len} refused"));
                    return Step::Closed;
                }
                Frame::Packet(len) => len,
            };
            // The handlers never touch the input: lend it out while they borrow the packet.
            let input = std::mem::take(&mut self.input);
            let packet = &input[self.in_pos + 4..self.in_pos + 4 + len];
            let r = self.handle_packet(packet, &mut cx);
            self.input = input;
            if let Err(need) = r {
                return Step::NeedDisk(need);
            }
            self.in_pos += 4 + len;
            self.queued = self.queued.saturating_sub(1);
            if self.in_pos == self.input.len() {
                self.input.clear();
                self.in_pos = 0;
                self.scanned = 0;
            }
        }
        if self.closed.is_some() { Step::Closed } else { Step::Yield }
    }

    fn handle_packet(&mut self, packet: &[u8], cx: &mut Cx<'_>) -> Handled {
        let req = match Request::parse(packet) {
            Ok(r) => r,
            Err(m) => {
                match m.id {
                    Some(id) if self.inited => {
                        proto::put_status(&mut self.out, id, proto::FX_BAD_MESSAGE, "Bad message")
                    }
                    _ => self.fatal("malformed packet".into()),
                }
                return Ok(());
            }
        };
        match (&req, self.inited) {
            (Request::Init { .. }, false) => {
                // Any client version >= 3 gets 3; older ones are not served.
                self.inited = true;
                proto::put_version(&mut self.out);
                return Ok(());
            }
            (Request::Init { .. }, true) => {
                self.fatal("second INIT".into());
                return Ok(());
            }
            (_, false) => {
                self.fatal("request before INIT".into());
                return Ok(());
            }
            _ => {}
        }
        let id = req.id();
        match self.dispatch(req, cx) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(need)) => Err(need),
            Err(Fail(code, msg)) => {
                proto::put_status(&mut self.out, id, code, &msg);
                Ok(())
            }
        }
    }

    fn dispatch(&mut self, req: Request<'_>, cx: &mut Cx<'_>) -> Result<Handled, Fail> {
        let done = |r: Result<(), Fail>| r.map(Ok);
        match req {
            Request::Init { .. } => Ok(Ok(())),
            Request::Open { id, path, pflags, attrs } => done(self.op_open(cx, id, path, pflags, &attrs)),
            Request::Close { id, handle } => self.op_close(cx, id, handle),
            Request::Read { id, handle, offset, len } => self.op_read(cx, id, handle, offset, len),
            Request::Write { id, handle, offset, data } => done(self.op_write(id, handle, offset, data)),
            Request::Stat { id, path } => done(self.op_stat(cx, id, path, true)),
            Request::Lstat { id, path } => done(self.op_stat(cx, id, path, false)),
            Request::Fstat { id, handle } => done(self.op_fstat(id, handle)),
            Request::Setstat { id, path, attrs } => done(self.op_setstat(cx, id, path, &attrs)),
            Request::Fsetstat { id, handle, attrs } => done(self.op_fsetstat(cx, id, handle, &attrs)),
            Request::Opendir { id, path } => done(self.op_opendir(cx, id, path)),
            Request::Readdir { id, handle } => done(self.op_readdir(cx, id, handle)),
            Request::Remove { id, path } => done(self.op_remove(cx, id, path)),
            Request::Mkdir { id, path, attrs } => done(self.op_mkdir(cx, id, path, &attrs)),
            Request::Rmdir { id, path } => done(self.op_rmdir(cx, id, path)),
            Request::Realpath { id, path } => done(self.op_realpath(cx, id, path)),
            Request::Rename { id, from, to } => done(self.op_rename(cx, id, from, to, false)),
            Request::Readlink { id, path } => done(self.op_readlink(cx, id, path)),
            Request::Symlink { .. } => {
                Err(Fail::new(proto::FX_PERMISSION_DENIED, "Creating symbolic links is not allowed"))
            }
            Request::Extended { id, name, data } => {
                let ext = Extended::parse(name, data).map_err(|_| Fail::new(proto::FX_BAD_MESSAGE, "Bad message"))?;
                match ext {
                    Extended::PosixRename { from, to } => done(self.op_rename(cx, id, from, to, true)),
                    Extended::Statvfs { path } => done(self.op_statvfs(cx, id, path)),
                    Extended::Fstatvfs { handle } => done(self.op_fstatvfs(id, handle)),
                    Extended::Fsync { handle } => self.op_fsync(cx, id, handle),
                    Extended::Limits => {
                        self.op_limits(id);
                        Ok(Ok(()))
                    }
                    Extended::Unsupported => Err(Fail::new(proto::FX_OP_UNSUPPORTED, "Unsupported extension")),
                }
            }
            Request::Unknown { .. } => Err(Fail::new(proto::FX_OP_UNSUPPORTED, "Unknown request")),
        }
    }

    /// `arg` as a virtual path (relative ones start at the session's root).
    pub(super) fn vpath(&self, arg: &[u8]) -> Result<VPath, Fail> {
        VPath::root().join(arg).map_err(|e| Fail(proto::FX_FAILURE, format!("Bad path: {e}")))
    }

    /// `arg` as a virtual path the session may use for `need` (`--deny` hides, rules decide).
    pub(super) fn path(&self, cx: &Cx<'_>, arg: &[u8], need: Need) -> Result<VPath, Fail> {
        let p = self.vpath(arg)?;
        self.access.check(cx.auth, p.as_bytes(), need)?;
        Ok(p)
    }

    /// A STATUS OK.
    pub(super) fn ok(&mut self, id: u32) {
        proto::put_status(&mut self.out, id, proto::FX_OK, "Success");
    }

    /// Looks up a handle string.
    pub(super) fn handle_id(&self, wire: &[u8]) -> Result<HandleId, Fail> {
        self.handles.find(wire).ok_or_else(|| Fail::new(proto::FX_FAILURE, "Invalid handle"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.shutdown();
        }
    }
}
