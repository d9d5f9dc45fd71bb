//! File requests: OPEN (every pflags combination), READ, WRITE, CLOSE (an upload is
//! published here), FSTAT, SETSTAT, FSETSTAT and fsync@openssh.com.
//!
//! OPEN maps its flags to the FTP permissions: READ needs `read`; creating a file, TRUNC or
//! EXCL need `write`; writing into an existing file without TRUNC (a resume, APPEND) needs
//! `append` or `write`, and with `append` alone no byte below the size at OPEN may be written
//! or truncated away. Writers take the same exclusive lock as FTP uploads (one uploader per
//! file, across sessions and protocols). Under `--atomic-uploads` the bytes go to `.NAME.part`:
//! TRUNC starts it empty, anything else starts it as a copy of the published file; CLOSE
//! renames it over NAME. A session that ends without CLOSE publishes nothing.

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use super::attrs::Attrs;
use super::engine::{Cx, Engine, Event, Fail, Handled, NeedDisk};
use super::handles::{DirState, Handle, Kind, Writer};
use super::proto::{self, FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE};
use crate::auth::access::Need;
use crate::auth::perms::Perms;
use crate::fs::jail::{FileKind, FsError, Stat};
use crate::fs::write::Create;
use crate::io::fsys;
use crate::limits;

fn busy() -> Fail {
    Fail::new(proto::FX_FAILURE, "File busy: another upload to this name is in progress")
}

/// An atomic upload would have to copy too large a published file on the event loop.
fn too_large_to_reopen() -> Fail {
    Fail::new(
        proto::FX_FAILURE,
        "With atomic uploads a file over 16 MiB cannot be reopened for writing: upload it whole (open with TRUNC)",
    )
}

fn not_writable() -> Fail {
    Fail::new(proto::FX_FAILURE, "Handle not open for writing")
}

fn below_floor() -> Fail {
    Fail::new(proto::FX_PERMISSION_DENIED, "Permission denied: only appending is allowed here")
}

impl Engine {
    pub(super) fn handle_room(&self) -> Result<(), Fail> {
        if self.handles.len() >= limits::SFTP_MAX_HANDLES {
            return Err(Fail::new(proto::FX_FAILURE, "Too many open handles"));
        }
        Ok(())
    }

    /// Stores a new handle and answers with it.
    pub(super) fn reply_handle(&mut self, id: u32, h: Handle) -> Result<(), Fail> {
        match self.handles.insert(h) {
            Ok((_, wire)) => {
                proto::put_handle(&mut self.out, id, &wire);
                Ok(())
            }
            Err(_) => Err(Fail::new(proto::FX_FAILURE, "Too many open handles")),
        }
    }

    pub(super) fn op_open(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8], pflags: u32, attrs: &Attrs) -> Result<(), Fail> {
        self.handle_room()?;
        if pflags & FXF_WRITE == 0 {
            // Creation flags without WRITE are ignored: such a handle only reads.
            let p = self.path(cx, arg, Need::All(Perms::READ))?;
            let (file, _) = self.jail.open_file(&p)?;
            return self.reply_handle(id, Handle::new(Kind::Read(file), p));
        }
        let flag = |f: u32| pflags & f != 0;
        let (read, append, creat, trunc, excl) =
            (flag(FXF_READ), flag(FXF_APPEND), flag(FXF_CREAT), flag(FXF_TRUNC), flag(FXF_EXCL) && flag(FXF_CREAT));
        let p = self.vpath(arg)?;
        let exists = self.jail.lstat(&p).is_ok();
        let need = if trunc || excl || !exists {
            Need::All(Perms::WRITE)
        } else {
            Need::OneOf(Perms::APPEND.union(Perms::WRITE))
        };
        let have = self.access.check(cx.auth, p.as_bytes(), need)?;
        if read && !have.contains(Perms::READ) {
            return Err(Fail::new(proto::FX_PERMISSION_DENIED, "Permission denied"));
        }
        if !exists && !creat {
            return Err(FsError::NotFound.into());
        }
        let atomic = self.opts.atomic_uploads;
        let create = if excl {
            Create::Exclusive
        } else if creat {
            Create::Open
        } else {
            Create::Existing
        };
        let mode = attrs.perms.map_or(0o666, |m| m & 0o777);
        let up = self.jail.open_for_write(&p, create, mode, atomic, read)?;
        if !fsys::try_lock_exclusive(up.file.as_fd())? {
            return Err(busy());
        }
        let end = if trunc {
            up.file.set_len(0)?;
            0
        } else if atomic {
            let seeded = up.seed_from_published_upto(u64::MAX, limits::SFTP_INLINE_SEED_MAX);
            match seeded.map_err(|e| {
                if e.kind() == std::io::ErrorKind::FileTooLarge { too_large_to_reopen() } else { Fail::from(e) }
            })? {
                Some(n) => n,
                None => {
                    up.file.set_len(0)?;
                    0
                }
            }
        } else {
            up.file.metadata()?.len()
        };
        let floor = (!have.contains(Perms::WRITE)).then_some(end);
        let w = Writer { up, readable: read, append, end, floor };
        self.reply_handle(id, Handle::new(Kind::Write(Box::new(w)), p))
    }

    pub(super) fn op_read(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        wire: &[u8],
        offset: u64,
        len: u32,
    ) -> Result<Handled, Fail> {
        let hid = self.handle_id(wire)?;
        let Some(h) = self.handles.get_mut(hid) else { return Err(Fail::new(proto::FX_FAILURE, "Invalid handle")) };
        let file = match &h.kind {
            Kind::Read(f) => f,
            Kind::Write(w) if w.readable => &w.up.file,
            _ => return Err(Fail::new(proto::FX_FAILURE, "Handle not open for reading")),
        };
        if i64::try_from(offset).is_err() {
            return Err(Fail::new(proto::FX_EOF, "End of file"));
        }
        let len = len.min(limits::SFTP_MAX_READ);
        // The data goes straight into the output: header, length (patched), bytes.
        let start = proto::begin(&mut self.out, proto::FXP_DATA, Some(id));
        proto::put_u32(&mut self.out, 0);
        let at = self.out.len();
        self.out.resize(at + len as usize, 0);
        // Fill the reply: a short DATA before the end of the file (a RWF_NOWAIT read stops
        // where the page cache does) reads as the end of the file to some clients (rclone).
        let mut n = 0;
        while n < len as usize {
            match cx.disk.read_at(file, &mut self.out[at + n..], offset + n as u64) {
                None => {
                    self.out.truncate(start);
                    return Ok(Err(NeedDisk::Read { handle: hid, offset, len }));
                }
                Some(Ok(0)) => break,
                Some(Ok(k)) => n += k.min(len as usize - n),
                Some(Err(_)) if n > 0 => break,
                Some(Err(e)) => {
                    self.out.truncate(start);
                    return Err(e.into());
                }
            }
        }
        if n == 0 {
            self.out.truncate(start);
            return Err(Fail::new(proto::FX_EOF, "End of file"));
        }
        self.out.truncate(at + n);
        self.out[at - 4..at].copy_from_slice(&u32::try_from(n).unwrap_or(0).to_be_bytes());
        proto::end(&mut self.out, start);
        h.read += n as u64;
        Ok(Ok(()))
    }

    pub(super) fn op_write(&mut self, id: u32, wire: &[u8], offset: u64, data: &[u8]) -> Result<(), Fail> {
        let hid = self.handle_id(wire)?;
        let Some(h) = self.handles.get_mut(hid) else { return Err(not_writable()) };
        let Kind::Write(w) = &mut h.kind else { return Err(not_writable()) };
        let at = if w.append { w.end } else { offset };
        if w.floor.is_some_and(|f| at < f) {
            return Err(below_floor());
        }
        let stop = at
            .checked_add(data.len() as u64)
            .filter(|&s| i64::try_from(s).is_ok())
            .ok_or_else(|| Fail::new(proto::FX_FAILURE, "Offset out of range"))?;
        w.up.file.write_all_at(data, at)?;
        w.end = w.end.max(stop);
        h.written += data.len() as u64;
        self.ok(id);
        Ok(())
    }

    pub(super) fn op_close(&mut self, cx: &mut Cx<'_>, id: u32, wire: &[u8]) -> Result<Handled, Fail> {
        let hid = self.handle_id(wire)?;
        let sync = self.opts.fsync_uploads;
        let writer = match self.handles.get(hid) {
            Some(Handle { kind: Kind::Write(w), .. }) if sync => Some(&w.up.file),
            _ => None,
        };
        if let Some(file) = writer {
            match cx.disk.sync(file) {
                None => return Ok(Err(NeedDisk::Sync { handle: hid })),
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    if let Some(h) = self.handles.remove(hid) {
                        self.log_close(&h, false);
                    }
                    return Err(e.into());
                }
            }
        }
        let Some(h) = self.handles.remove(hid) else { return Err(Fail::new(proto::FX_FAILURE, "Invalid handle")) };
        let published = match &h.kind {
            Kind::Write(w) => w.up.publish(),
            _ => Ok(()),
        };
        self.log_close(&h, published.is_ok());
        published?;
        self.ok(id);
        Ok(Ok(()))
    }

    /// The transfer-log event of a closed (or abandoned) handle.
    pub(super) fn log_close(&mut self, h: &Handle, complete: bool) {
        let (upload, bytes) = match &h.kind {
            Kind::Read(_) => (false, h.read),
            Kind::Write(_) => (true, h.written),
            Kind::Dir(_) => return,
        };
        let took = h.opened.elapsed();
        self.event(Event::Transfer { path: h.path.clone(), upload, bytes, complete, took });
    }

    pub(super) fn op_fsync(&mut self, cx: &mut Cx<'_>, id: u32, wire: &[u8]) -> Result<Handled, Fail> {
        let hid = self.handle_id(wire)?;
        let file = self.handles.get(hid).and_then(Handle::file).ok_or_else(not_writable)?;
        match cx.disk.sync(file) {
            None => Ok(Err(NeedDisk::Sync { handle: hid })),
            Some(r) => {
                r?;
                self.ok(id);
                Ok(Ok(()))
            }
        }
    }

    pub(super) fn op_fstat(&mut self, id: u32, wire: &[u8]) -> Result<(), Fail> {
        let hid = self.handle_id(wire)?;
        let h = self.handles.get(hid).ok_or_else(|| Fail::new(proto::FX_FAILURE, "Invalid handle"))?;
        let st = match &h.kind {
            Kind::Dir(_) => self.jail.stat(&h.path)?,
            _ => Stat::from_libc(&fsys::fstat(h.file().ok_or_else(not_writable)?.as_fd())?),
        };
        proto::put_attrs(&mut self.out, id, &Attrs::from_stat(&st));
        Ok(())
    }

    /// The permissions a change of `attrs` needs (owners are never changed).
    fn setstat_need(attrs: &Attrs) -> Result<Perms, Fail> {
        if attrs.uid_gid.is_some() {
            return Err(Fail::new(proto::FX_PERMISSION_DENIED, "Changing the owner is not allowed"));
        }
        let mut need = Perms::NONE;
        if attrs.size.is_some() || attrs.perms.is_some() {
            need = need.union(Perms::WRITE);
        }
        if attrs.times.is_some() {
            need = need.union(Perms::SETTIME);
        }
        Ok(need)
    }

    pub(super) fn op_setstat(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8], attrs: &Attrs) -> Result<(), Fail> {
        let need = Engine::setstat_need(attrs)?;
        let p = self.path(cx, arg, Need::All(need))?;
        let r = self.apply_path_attrs(&p, attrs);
        let error = r.as_ref().err().map(|f| f.1.clone());
        self.event(Event::Change { op: "SETSTAT", path: p, error });
        r?;
        self.ok(id);
        Ok(())
    }

    fn apply_path_attrs(&self, p: &crate::fs::vpath::VPath, attrs: &Attrs) -> Result<(), Fail> {
        if let Some(size) = attrs.size {
            let up = self.jail.open_for_write(p, Create::Existing, 0o666, false, false)?;
            if !fsys::try_lock_exclusive(up.file.as_fd())? {
                return Err(busy());
            }
            up.file.set_len(size)?;
        }
        if let Some(mode) = attrs.perms {
            self.jail.chmod(p, mode)?;
        }
        if let Some((a, m)) = attrs.times {
            self.jail.set_times(p, i64::from(a), i64::from(m))?;
        }
        Ok(())
    }

    pub(super) fn op_fsetstat(&mut self, cx: &Cx<'_>, id: u32, wire: &[u8], attrs: &Attrs) -> Result<(), Fail> {
        let hid = self.handle_id(wire)?;
        let need = Engine::setstat_need(attrs)?;
        let h = self.handles.get(hid).ok_or_else(|| Fail::new(proto::FX_FAILURE, "Invalid handle"))?;
        // A writer with `append` alone may cut its own upload back, not below the floor.
        let floor = match &h.kind {
            Kind::Write(w) => w.floor,
            _ => None,
        };
        let need = match (attrs.size, floor) {
            (Some(s), Some(f)) if s >= f && attrs.perms.is_none() => need.minus(Perms::WRITE).union(Perms::APPEND),
            _ => need,
        };
        self.access.check(cx.auth, h.path.as_bytes(), Need::All(need))?;
        let file = match &h.kind {
            Kind::Dir(_) => return Err(Fail::new(proto::FX_FAILURE, "Not a file handle")),
            _ => h.file().ok_or_else(not_writable)?,
        };
        if let Some(size) = attrs.size {
            let Kind::Write(_) = &h.kind else { return Err(not_writable()) };
            file.set_len(size)?;
        }
        if let Some(mode) = attrs.perms {
            fsys::fchmod(file.as_fd(), mode & 0o777)?;
        }
        if let Some((a, m)) = attrs.times {
            fsys::set_times(file.as_fd(), i64::from(a), i64::from(m))?;
        }
        if let (Some(size), Some(Kind::Write(w))) = (attrs.size, self.handles.get_mut(hid).map(|h| &mut h.kind)) {
            w.end = size;
        }
        self.ok(id);
        Ok(())
    }

    pub(super) fn op_opendir(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        self.handle_room()?;
        let p = self.path(cx, arg, Need::All(Perms::LIST))?;
        let fd = self.jail.open_dir(&p)?;
        let stream = fsys::DirStream::new(fd, limits::SFTP_DIR_BUF);
        let dir = DirState { stream, dots_sent: false };
        self.reply_handle(id, Handle::new(Kind::Dir(Box::new(dir)), p))
    }

    /// Facts of `p` as a directory entry shows them: a symlink whose target a client may not
    /// see has size 0 (as in LIST), and its target's length stays hidden.
    pub(super) fn entry_stat(&self, p: &crate::fs::vpath::VPath, follow: bool) -> Result<Stat, FsError> {
        let mut st = if follow { self.jail.stat(p)? } else { self.jail.lstat(p)? };
        if st.kind == FileKind::Symlink && self.jail.link_target_visible(&p.parent(), p.file_name()).is_none() {
            st.size = 0;
        }
        Ok(st)
    }
}
