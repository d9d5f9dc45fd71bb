//! Requests about names: STAT, LSTAT, OPENDIR/READDIR (long names in LIST's `ls -l` form),
//! REMOVE, MKDIR, RMDIR, REALPATH, RENAME and posix-rename, READLINK, statvfs, fstatvfs and
//! limits@openssh.com.

use std::os::fd::AsFd;

use super::attrs::Attrs;
use super::engine::{Cx, Engine, Event, Fail};
use super::handles::{DirState, Kind};
use super::proto::{self, put_str, put_u32, put_u64};
use crate::auth::access::Need;
use crate::auth::perms::Perms;
use crate::auth::rules::Deny;
use crate::fs::jail::{FileKind, FsError, Jail, Stat};
use crate::fs::listing::{self, ListFormat, ListOptions};
use crate::fs::time;
use crate::fs::vpath::VPath;
use crate::io::fsys;
use crate::limits;

/// Looking at names needs `list` or `read` there (as SIZE, MDTM and MLST do).
const LOOK: Need = Need::OneOf(Perms::LIST.union(Perms::READ));

impl Engine {
    pub(super) fn op_stat(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8], follow: bool) -> Result<(), Fail> {
        let p = self.path(cx, arg, LOOK)?;
        let st = self.entry_stat(&p, follow)?;
        proto::put_attrs(&mut self.out, id, &Attrs::from_stat(&st));
        Ok(())
    }

    pub(super) fn op_readdir(&mut self, cx: &Cx<'_>, id: u32, wire: &[u8]) -> Result<(), Fail> {
        let hid = self.handle_id(wire)?;
        let local_time = self.opts.local_time;
        let (jail, out) = (&self.jail, &mut self.out);
        let Some(h) = self.handles.get_mut(hid) else { return Err(Fail::new(proto::FX_FAILURE, "Invalid handle")) };
        let Kind::Dir(dir) = &mut h.kind else { return Err(Fail::new(proto::FX_FAILURE, "Not a directory handle")) };
        let mut opts = ListOptions::new(ListFormat::List, time::now_secs());
        opts.local_time = local_time;
        let start = proto::begin(out, proto::FXP_NAME, Some(id));
        put_u32(out, 0);
        let count = fill_names(out, jail, dir, &h.path, &cx.auth.deny, &opts);
        match count {
            Ok(0) => {
                out.truncate(start);
                Err(Fail::new(proto::FX_EOF, "End of file"))
            }
            Ok(n) => {
                out[start + 9..start + 13].copy_from_slice(&n.to_be_bytes());
                proto::end(out, start);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e.into())
            }
        }
    }

    /// Runs a change, logs it, answers OK or the failure.
    fn change(&mut self, id: u32, op: &'static str, p: VPath, r: Result<(), FsError>) -> Result<(), Fail> {
        let r = r.map_err(Fail::from);
        let error = r.as_ref().err().map(|f| f.1.clone());
        self.event(Event::Change { op, path: p, error });
        r?;
        self.ok(id);
        Ok(())
    }

    pub(super) fn op_remove(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        let p = self.path(cx, arg, Need::All(Perms::DELETE))?;
        let r = self.jail.remove_file(&p);
        self.change(id, "REMOVE", p, r)
    }

    pub(super) fn op_mkdir(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8], attrs: &Attrs) -> Result<(), Fail> {
        let p = self.path(cx, arg, Need::All(Perms::MKDIR))?;
        let r = self.jail.mkdir(&p, attrs.perms.map_or(0o777, |m| m & 0o777));
        self.change(id, "MKDIR", p, r)
    }

    pub(super) fn op_rmdir(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        let p = self.path(cx, arg, Need::All(Perms::RMDIR))?;
        let r = self.jail.remove_dir(&p);
        self.change(id, "RMDIR", p, r)
    }

    /// The canonical virtual path: lexical (`..` stops at the root), never the real one.
    pub(super) fn op_realpath(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        let p = self.vpath(arg)?;
        if cx.auth.deny.hides_path(p.as_bytes()) {
            return Err(FsError::NotFound.into());
        }
        proto::put_one_name(&mut self.out, id, p.as_bytes());
        Ok(())
    }

    /// RENAME fails if the target exists (v3); posix-rename@openssh.com replaces it.
    pub(super) fn op_rename(
        &mut self,
        cx: &Cx<'_>,
        id: u32,
        from: &[u8],
        to: &[u8],
        replace: bool,
    ) -> Result<(), Fail> {
        let from = self.path(cx, from, Need::All(Perms::RENAME))?;
        let to = self.path(cx, to, Need::All(Perms::RENAME))?;
        self.jail.lstat(&from)?;
        let r = if replace { self.jail.rename(&from, &to) } else { self.jail.rename_noreplace(&from, &to) };
        let op = if replace { "POSIX-RENAME" } else { "RENAME" };
        self.change(id, op, to, r)
    }

    /// Only a target that stays inside the jail is shown; others look like no file.
    pub(super) fn op_readlink(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        let p = self.path(cx, arg, LOOK)?;
        if self.jail.lstat(&p)?.kind != FileKind::Symlink {
            return Err(Fail::new(proto::FX_FAILURE, "Not a symbolic link"));
        }
        let target = self.jail.link_target_visible(&p.parent(), p.file_name()).ok_or(FsError::NotFound)?;
        proto::put_one_name(&mut self.out, id, &target);
        Ok(())
    }

    pub(super) fn op_statvfs(&mut self, cx: &Cx<'_>, id: u32, arg: &[u8]) -> Result<(), Fail> {
        let p = self.path(cx, arg, LOOK)?;
        let fd = self.jail.resolve(&p, libc::O_PATH, true)?;
        let st = fsys::fstatvfs(fd.as_fd())?;
        put_statvfs(&mut self.out, id, &st);
        Ok(())
    }

    pub(super) fn op_fstatvfs(&mut self, id: u32, wire: &[u8]) -> Result<(), Fail> {
        let hid = self.handle_id(wire)?;
        let h = self.handles.get(hid).ok_or_else(|| Fail::new(proto::FX_FAILURE, "Invalid handle"))?;
        let st = match h.file() {
            Some(f) => fsys::fstatvfs(f.as_fd())?,
            None => fsys::fstatvfs(self.jail.resolve(&h.path, libc::O_PATH, true)?.as_fd())?,
        };
        put_statvfs(&mut self.out, id, &st);
        Ok(())
    }

    pub(super) fn op_limits(&mut self, id: u32) {
        let out = &mut self.out;
        let start = proto::begin(out, proto::FXP_EXTENDED_REPLY, Some(id));
        put_u64(out, limits::SFTP_MAX_PACKET as u64);
        put_u64(out, u64::from(limits::SFTP_MAX_READ));
        put_u64(out, u64::from(limits::SFTP_MAX_READ));
        put_u64(out, limits::SFTP_MAX_HANDLES as u64);
        proto::end(out, start);
    }
}

/// statvfs@openssh.com's reply: eleven u64s, flags as ST_RDONLY (1) and ST_NOSUID (2).
#[allow(clippy::unnecessary_cast)]
fn put_statvfs(out: &mut Vec<u8>, id: u32, st: &libc::statvfs) {
    let start = proto::begin(out, proto::FXP_EXTENDED_REPLY, Some(id));
    let mut flag = 0u64;
    if st.f_flag & libc::ST_RDONLY != 0 {
        flag |= 1;
    }
    if st.f_flag & libc::ST_NOSUID != 0 {
        flag |= 2;
    }
    for v in [
        st.f_bsize as u64,
        st.f_frsize as u64,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_files as u64,
        st.f_ffree as u64,
        st.f_favail as u64,
        st.f_fsid as u64,
        flag,
        st.f_namemax as u64,
    ] {
        put_u64(out, v);
    }
    proto::end(out, start);
}

/// One NAME entry: name, `ls -l` long name (LIST's line without its CRLF), attributes.
fn put_entry(out: &mut Vec<u8>, name: &[u8], st: &Stat, target: Option<&[u8]>, opts: &ListOptions) {
    put_str(out, name);
    let mut line = Vec::with_capacity(96 + name.len());
    listing::push_single(&mut line, ListFormat::List, name, st, target, opts);
    put_str(out, line.strip_suffix(b"\r\n").unwrap_or(&line));
    Attrs::from_stat(st).encode(out);
}

/// Appends the next entries of `dir` (after `.` and `..` the first time), up to
/// [`limits::SFTP_READDIR_ENTRIES`] or about [`limits::SFTP_READDIR_BYTES`]; returns how many.
/// Dot files are left out under `deny_dotfiles`, `--deny` names always; a symlink's target is
/// shown only if it stays inside the jail (else its size is 0, as in LIST).
fn fill_names(
    out: &mut Vec<u8>,
    jail: &Jail,
    dir: &mut DirState,
    path: &VPath,
    deny: &Deny,
    opts: &ListOptions,
) -> Result<u32, FsError> {
    let mut count = 0u32;
    let start = out.len();
    if !dir.dots_sent {
        dir.dots_sent = true;
        for (name, p) in [(&b"."[..], path.clone()), (b"..", path.parent())] {
            if let Ok(st) = jail.stat(&p) {
                put_entry(out, name, &st, None, opts);
                count += 1;
            }
        }
    }
    while count < limits::SFTP_READDIR_ENTRIES && out.len() - start < limits::SFTP_READDIR_BYTES {
        let next = match dir.stream.next_entry() {
            Ok(n) => n,
            Err(e) if count == 0 => return Err(e.into()),
            Err(_) => break,
        };
        let Some((fd, cname)) = next else { break };
        let name = cname.to_bytes();
        if name.is_empty() || name == b"." || name == b".." {
            continue;
        }
        if (jail.deny_dotfiles() && jail.is_hidden_name(name)) || deny.hides_name(name) {
            continue;
        }
        let Ok(st) = fsys::fstatat(fd, cname, libc::AT_SYMLINK_NOFOLLOW) else { continue };
        let mut st = Stat::from_libc(&st);
        let target = match st.kind {
            FileKind::Symlink => jail.link_target_in(fd, path, cname),
            _ => None,
        };
        if st.kind == FileKind::Symlink && target.is_none() {
            st.size = 0;
        }
        put_entry(out, name, &st, target.as_deref(), opts);
        count += 1;
    }
    Ok(count)
}
