//! Commands that change the tree: STOR, APPE, STOU (REST+STOR resumes),
//! DELE, MKD, RMD, RNFR/RNTO, MFMT and SITE CHMOD. Each checks the session's
//! permission at its path first; a refusal leaves no trace on disk.

use std::os::fd::{AsFd, OwnedFd};

use crate::auth::perms::Perms;
use crate::fs::jail::FsError;
use crate::fs::time;
use crate::fs::vpath::VPath;
use crate::fs::write::{Create, Upload};
use crate::io::fsys;
use crate::limits;
use crate::lists::cache::ListCache;
use crate::proto::addr::TransferType;
use crate::proto::reply;

use super::files::{Need, Refused};
use super::transfer::{Job, Stor};
use super::{Cx, Session};

/// Which upload command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Put {
    Stor,
    Appe,
    Stou,
}

impl Put {
    fn verb(self) -> &'static str {
        match self {
            Put::Stor => "STOR",
            Put::Appe => "APPE",
            Put::Stou => "STOU",
        }
    }
}

/// The permission an upload needs: resuming (REST+STOR, APPE) is
/// appending; a fresh STOR/STOU writes.
fn need_for(put: Put, rest: u64) -> Need {
    match put {
        Put::Appe => Need::OneOf(Perms::APPEND.union(Perms::WRITE)),
        Put::Stor if rest > 0 => Need::OneOf(Perms::APPEND.union(Perms::WRITE)),
        Put::Stor | Put::Stou => Need::All(Perms::WRITE),
    }
}

fn beyond_end() -> Refused {
    Refused(reply::BAD_REST_OFFSET, "Restart offset is beyond the end of the file.".into())
}

/// Empties the (locked) temporary and returns the published file with the
/// number of its bytes to copy in (at most `limit`), or `None` (the
/// temporary untouched) when nothing is published under the name. The copy
/// itself runs when the transfer starts, on a disk helper (`Stor::seeded`).
fn seed_from_published(up: &Upload, limit: u64) -> Result<Option<(std::fs::File, u64)>, Refused> {
    let Some(published) = up.open_published().map_err(FsError::from)? else {
        return Ok(None);
    };
    let len = published.metadata().map_err(FsError::from)?.len().min(limit);
    up.file.set_len(0).map_err(FsError::from)?;
    Ok(Some((published, len)))
}

impl Session {
    pub(super) fn cmd_put(&mut self, put: Put, arg: &[u8], cx: &mut Cx<'_>) {
        let rest = std::mem::take(&mut self.rest);
        // Refusals come before anything touches the disk: permission, then
        // the data channel, then the file.
        let need = need_for(put, rest);
        let base = if put == Put::Stou && arg.is_empty() { b"stou".as_slice() } else { arg };
        if let Err(r) = self.path_for(base, need, cx) {
            return self.refuse(r);
        }
        if !self.need_data_channel() {
            return;
        }
        match self.open_put(put, base, rest, cx) {
            Ok((up, path, start, seed)) => {
                let ascii = self.ttype == TransferType::Ascii;
                // Created or truncated: listings of its directory change now, and again
                // when the upload ends (`Drop for Stor`).
                let lists = cx.shared.listings.as_ref().map(|l| l.cache.clone());
                if let Some(l) = &lists {
                    invalidate_dir(l, &up.dir);
                }
                let mut job = Stor::new(up, path, put.verb(), start, ascii, cx.cfg.fsync_uploads);
                if let Some(src) = seed {
                    job = job.seeded(src, start);
                }
                job.lists = lists;
                self.start_job(Job::Stor(job), cx);
            }
            Err(r) => self.refuse(r),
        }
    }

    /// Opens (never truncating before the lock is held), locks, and
    /// positions the upload. Returns the file, its path, the offset writing
    /// starts at, and the published file whose first `start` bytes must be
    /// copied in first (atomic APPE/resume).
    #[allow(clippy::type_complexity)]
    fn open_put(
        &self,
        put: Put,
        arg: &[u8],
        rest: u64,
        cx: &Cx<'_>,
    ) -> Result<(Upload, VPath, u64, Option<std::fs::File>), Refused> {
        let atomic = cx.cfg.atomic_uploads;
        let jail = self.jail(cx.jail);
        let mode = 0o666;
        let path = self.path_for(arg, need_for(put, rest), cx)?;
        let (up, path) = if put == Put::Stou {
            let mut found = None;
            for i in 0..limits::STOU_TRIES {
                let candidate = if i == 0 {
                    path.clone()
                } else {
                    let mut name = path.file_name().to_vec();
                    name.extend_from_slice(format!(".{i}").as_bytes());
                    path.parent().join(&name)?
                };
                if cx.shared.auth().deny.hides_name(candidate.file_name()) {
                    continue;
                }
                match jail.open_upload(&candidate, Create::Exclusive, mode, atomic) {
                    Ok(up) => {
                        found = Some((up, candidate));
                        break;
                    }
                    Err(FsError::Exists) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            found.ok_or_else(|| Refused(reply::FILE_UNAVAILABLE, "No unique name available.".into()))?
        } else {
            // Resuming a file that does not exist must not create it.
            let create = if put == Put::Stor && rest > 0 && !atomic { Create::Existing } else { Create::Open };
            match jail.open_upload(&path, create, mode, atomic) {
                Ok(up) => (up, path),
                Err(FsError::NotFound) if create == Create::Existing => return Err(beyond_end()),
                Err(e) => return Err(e.into()),
            }
        };
        // One upload per file at a time, across sessions and processes.
        match fsys::try_lock_exclusive(up.file.as_fd()) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refused(reply::FILE_BUSY, "File busy: another upload to this name is in progress.".into()));
            }
            Err(e) => return Err(FsError::from(e).into()),
        }
        let size = up.file.metadata().map_err(FsError::from)?.len();
        let mut seed = None;
        let start = match put {
            Put::Stou => 0,
            // Atomic APPE: the temporary starts as a copy of the published
            // file, so the rename publishes old + new bytes at once.
            Put::Appe if atomic => match seed_from_published(&up, u64::MAX)? {
                Some((src, n)) => {
                    seed = Some(src);
                    n
                }
                None => {
                    up.file.set_len(0).map_err(FsError::from)?;
                    0
                }
            },
            Put::Appe => size,
            // Atomic resume: an interrupted temporary long enough wins; else
            // the published file's first `rest` bytes seed it.
            Put::Stor if atomic && rest > 0 && rest > size => match seed_from_published(&up, rest)? {
                Some((src, n)) if n == rest => {
                    seed = Some(src);
                    rest
                }
                _ => return Err(beyond_end()),
            },
            Put::Stor if rest > size => return Err(beyond_end()),
            Put::Stor => rest,
        };
        if put != Put::Appe && start < size {
            // STOR replaces; REST+STOR rewrites from the offset on.
            up.file.set_len(start).map_err(FsError::from)?;
        }
        Ok((up, path, start, seed))
    }

    fn done_or_refuse(&mut self, r: Result<(), Refused>, ok_code: u16, ok_text: &str) {
        match r {
            Ok(()) => self.reply(ok_code, ok_text),
            Err(r) => self.refuse(r),
        }
    }

    /// The listing cache forgets the directory holding `p`: something in it changed (a
    /// file rewritten in place leaves the directory's own timestamps alone).
    fn listing_changed(&self, p: &VPath, cx: &Cx<'_>) {
        let Some(l) = &cx.shared.listings else { return };
        if let Ok(dir) = self.jail(cx.jail).resolve(&p.parent(), libc::O_PATH | libc::O_DIRECTORY, true) {
            invalidate_dir(&l.cache, &dir);
        }
    }

    pub(super) fn cmd_dele(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.path_for(arg, Need::All(Perms::DELETE), cx).and_then(|p| {
            self.jail(cx.jail).remove_file(&p)?;
            self.listing_changed(&p, cx);
            Ok(())
        });
        self.log_change("DELE", arg, &r);
        self.done_or_refuse(r, reply::FILE_ACTION_OK, "File deleted.");
    }

    pub(super) fn cmd_mkd(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.path_for(arg, Need::All(Perms::MKDIR), cx).and_then(|p| {
            self.jail(cx.jail).mkdir(&p, 0o777)?;
            self.listing_changed(&p, cx);
            Ok(p)
        });
        match r {
            Ok(p) => {
                self.log_change("MKD", arg, &Ok(()));
                let mut text = Vec::with_capacity(p.as_bytes().len() + 16);
                reply::push_quoted_path(&mut text, p.as_bytes());
                text.extend_from_slice(b" created.");
                self.reply_bytes(reply::PATH_CREATED, &text);
            }
            Err(r) => self.refuse(r),
        }
    }

    pub(super) fn cmd_rmd(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.path_for(arg, Need::All(Perms::RMDIR), cx).and_then(|p| {
            self.jail(cx.jail).remove_dir(&p)?;
            self.listing_changed(&p, cx);
            Ok(())
        });
        self.log_change("RMD", arg, &r);
        self.done_or_refuse(r, reply::FILE_ACTION_OK, "Directory removed.");
    }

    pub(super) fn cmd_rnfr(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.path_for(arg, Need::All(Perms::RENAME), cx).and_then(|p| {
            self.jail(cx.jail).lstat(&p)?;
            Ok(p)
        });
        match r {
            Ok(p) => {
                self.rename_from = Some(p);
                self.reply(reply::PENDING_MORE, "Ready for RNTO.");
            }
            Err(r) => self.refuse(r),
        }
    }

    pub(super) fn cmd_rnto(&mut self, arg: &[u8], from: Option<VPath>, cx: &mut Cx<'_>) {
        let Some(from) = from else {
            return self.reply(reply::BAD_SEQUENCE, "RNFR required first.");
        };
        let r = self.path_for(arg, Need::All(Perms::RENAME), cx).and_then(|to| {
            if cx.shared.auth().deny.hides_name(to.file_name()) {
                return Err(FsError::Denied.into());
            }
            self.jail(cx.jail).rename(&from, &to)?;
            self.listing_changed(&from, cx);
            self.listing_changed(&to, cx);
            Ok(())
        });
        self.log_change("RNTO", arg, &r);
        self.done_or_refuse(r, reply::FILE_ACTION_OK, "Rename successful.");
    }

    /// MFMT YYYYMMDDHHMMSS path (also reached by the two-argument MDTM).
    pub(super) fn cmd_mfmt(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let Some(sp) = arg.iter().position(|&b| b == b' ') else {
            return self.reply(reply::BAD_ARGUMENTS, "Usage: MFMT YYYYMMDDHHMMSS path");
        };
        let (stamp, path) = (&arg[..sp], &arg[sp + 1..]);
        let Some(secs) = time::parse_mdtm(stamp) else {
            return self.reply(reply::BAD_ARGUMENTS, "Bad time: YYYYMMDDHHMMSS (UTC) is expected.");
        };
        let r = self.path_for(path, Need::All(Perms::SETTIME), cx).and_then(|p| {
            self.jail(cx.jail).set_mtime(&p, secs)?;
            self.listing_changed(&p, cx);
            Ok(())
        });
        match r {
            Ok(()) => {
                let mut text = b"Modify=".to_vec();
                time::push_mdtm(&mut text, &time::utc_parts(secs));
                text.extend_from_slice(b"; ");
                text.extend_from_slice(path);
                self.reply_bytes(reply::FILE_STATUS, &text);
            }
            Err(r) => self.refuse(r),
        }
    }

    /// SITE CHMOD <octal> <path>: needs the write permission there.
    pub(super) fn cmd_chmod(&mut self, args: &[u8], cx: &mut Cx<'_>) {
        let Some(sp) = args.iter().position(|&b| b == b' ') else {
            return self.reply(reply::BAD_ARGUMENTS, "Usage: SITE CHMOD <octal mode> <path>");
        };
        let mode =
            std::str::from_utf8(&args[..sp]).ok().and_then(|m| u32::from_str_radix(m, 8).ok()).filter(|m| *m <= 0o777);
        let Some(mode) = mode else {
            return self.reply(reply::BAD_ARGUMENTS, "Bad mode: an octal number 0-777 is expected.");
        };
        let path = &args[sp + 1..];
        let r = self.path_for(path, Need::All(Perms::WRITE), cx).and_then(|p| {
            self.jail(cx.jail).chmod(&p, mode)?;
            self.listing_changed(&p, cx);
            Ok(())
        });
        self.done_or_refuse(r, reply::COMMAND_OK, "SITE CHMOD command ok.");
    }

    fn log_change(&self, what: &str, arg: &[u8], r: &Result<(), Refused>) {
        let result = match r {
            Ok(()) => "ok".to_string(),
            Err(Refused(code, text)) => format!("{code} {text}"),
        };
        crate::log::info(format_args!(
            "session {} {} {} {} result={}",
            self.id,
            self.user(),
            what,
            String::from_utf8_lossy(arg).escape_debug(),
            result
        ));
    }
}

/// The listing cache forgets the directory open on `dir`, and its parent, whose listing
/// shows the directory's date (`..` of a jail's root is outside it: forgetting it is harmless).
fn invalidate_dir(lists: &ListCache, dir: &OwnedFd) {
    let here = fsys::fstat(dir.as_fd());
    let parent = fsys::fstatat(dir.as_fd(), c"..", libc::AT_SYMLINK_NOFOLLOW);
    for st in [here, parent].iter().flatten() {
        let st = crate::fs::jail::Stat::from_libc(st);
        lists.invalidate(st.dev, st.ino);
    }
}

/// However an upload ends (226, an error, ABOR, a lost client), the file's size and date
/// changed: listings of its directory are dropped once the last byte is written.
impl Drop for Stor {
    fn drop(&mut self) {
        if let Some(l) = &self.lists {
            invalidate_dir(l, &self.up.dir);
        }
    }
}
