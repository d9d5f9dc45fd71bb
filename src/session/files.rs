//! Commands that name a path: CWD, SIZE, MDTM, RETR, LIST/NLST/MLSD, MLST and
//! STAT <path>. Every path is a virtual path resolved through the jail.

use crate::fs::glob;
use crate::fs::jail::{FileKind, FsError, Stat};
use crate::fs::listing::{self, ListFormat, ListOptions, Lister};
use crate::fs::time;
use crate::fs::vpath::{PathError, VPath};
use crate::io::net;
use crate::limits;
use crate::proto::addr::TransferType;
use crate::proto::reply;

use super::data::{BeginError, DataState};
use super::transfer::{Job, Listing, Retr};
use super::{Cx, Session};

/// A failure already turned into its reply.
struct Refused(u16, String);

impl From<PathError> for Refused {
    fn from(e: PathError) -> Refused {
        Refused(reply::BAD_ARGUMENTS, format!("Bad path: {e}."))
    }
}

impl From<FsError> for Refused {
    fn from(e: FsError) -> Refused {
        Refused(reply::FILE_UNAVAILABLE, format!("{e}."))
    }
}

fn verb_name(f: ListFormat) -> &'static str {
    match f {
        ListFormat::List => "LIST",
        ListFormat::Nlst => "NLST",
        ListFormat::Mlsd => "MLSD",
    }
}

impl Session {
    fn resolve(&self, arg: &[u8]) -> Result<VPath, Refused> {
        Ok(self.cwd.join(arg)?)
    }

    fn refuse(&mut self, r: Refused) {
        self.reply(r.0, &r.1);
    }

    fn time_parts(&self, cx: &Cx<'_>, secs: i64) -> time::Parts {
        if cx.cfg.local_time { time::local_parts(secs) } else { time::utc_parts(secs) }
    }

    pub(super) fn cmd_cwd(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.resolve(arg).and_then(|p| match cx.jail.stat(&p)? {
            Stat { kind: FileKind::Dir, .. } => Ok(p),
            _ => Err(Refused(reply::FILE_UNAVAILABLE, "Not a directory.".into())),
        });
        match r {
            Ok(p) => {
                self.cwd = p;
                self.reply(reply::FILE_ACTION_OK, "Directory successfully changed.");
            }
            Err(r) => self.refuse(r),
        }
    }

    fn stat_file(&self, arg: &[u8], cx: &Cx<'_>) -> Result<Stat, Refused> {
        let p = self.resolve(arg)?;
        let st = cx.jail.stat(&p)?;
        if st.kind != FileKind::File {
            return Err(Refused(reply::FILE_UNAVAILABLE, "Not a plain file.".into()));
        }
        Ok(st)
    }

    /// SIZE answers from metadata, in ASCII mode too; it never reads the file.
    pub(super) fn cmd_size(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        match self.stat_file(arg, cx) {
            Ok(st) => self.reply(reply::FILE_STATUS, &st.size.to_string()),
            Err(r) => self.refuse(r),
        }
    }

    pub(super) fn cmd_mdtm(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        // "MDTM YYYYMMDDHHMMSS path" is the old way to set a time: a write.
        if arg.len() > 15 && arg[..14].iter().all(u8::is_ascii_digit) && arg[14] == b' ' && self.stat_file(arg, cx).is_err() {
            return self.reply(reply::FILE_UNAVAILABLE, "Permission denied: this server is read-only for anonymous users.");
        }
        match self.resolve(arg).and_then(|p| Ok(cx.jail.stat(&p)?)) {
            Ok(st) => {
                let mut text = Vec::with_capacity(16);
                time::push_mdtm(&mut text, &self.time_parts(cx, st.mtime));
                self.reply_bytes(reply::FILE_STATUS, &text);
            }
            Err(r) => self.refuse(r),
        }
    }

    fn need_data_channel(&mut self) -> bool {
        if matches!(self.data.state, DataState::Idle) {
            self.reply(reply::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first.");
            return false;
        }
        true
    }

    /// Attaches a job to the data channel; 150 now if already connected.
    fn start_job(&mut self, job: Job, cx: &mut Cx<'_>) {
        let local_ip = net::canonical_ip(self.local.ip());
        match self.data.begin(job, cx.slot, cx.registry, local_ip, cx.now) {
            Ok(()) => {
                if matches!(self.data.state, DataState::Running { .. }) {
                    self.reply_opening();
                }
            }
            Err((job, BeginError::NoDataChannel)) => {
                drop(job);
                self.reply(reply::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first.");
            }
            Err((job, BeginError::Connect(e))) => {
                self.log_transfer(&job, &format!("connect failed: {e}"));
                self.data.reset(cx.registry);
                self.reply(reply::CANT_OPEN_DATA, "Failed to establish data connection.");
            }
        }
    }

    pub(super) fn cmd_retr(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let rest = std::mem::take(&mut self.rest);
        let p = match self.resolve(arg) {
            Ok(p) => p,
            Err(r) => return self.refuse(r),
        };
        let (file, st) = match cx.jail.open_file(&p) {
            Ok(f) => f,
            Err(e) => return self.refuse(e.into()),
        };
        if !self.need_data_channel() {
            return;
        }
        if rest > st.size {
            return self.reply(reply::BAD_REST_OFFSET, "Restart offset is beyond the end of the file.");
        }
        let ascii = self.ttype == TransferType::Ascii;
        self.start_job(Job::Retr(Retr::new(file, p, rest, st.size, ascii)), cx);
    }

    fn list_options(&self, format: ListFormat, cx: &Cx<'_>) -> ListOptions {
        let mut o = ListOptions::new(format, time::now_secs());
        o.local_time = cx.cfg.local_time;
        if cx.cfg.deny_dotfiles {
            o.hide = listing::hide_dotfiles;
        }
        o
    }

    pub(super) fn cmd_list(&mut self, format: ListFormat, arg: &[u8], cx: &mut Cx<'_>) {
        let (flags, path) = if format == ListFormat::Mlsd { (Default::default(), arg) } else { listing::parse_list_args(arg) };
        let mut opts = self.list_options(format, cx);
        opts.flags = flags;
        match self.prepare_listing(path, opts, cx) {
            Ok(job) => {
                if self.need_data_channel() {
                    self.start_job(job, cx);
                }
            }
            Err(r) => self.refuse(r),
        }
    }

    fn prepare_listing(&self, path: &[u8], mut opts: ListOptions, cx: &Cx<'_>) -> Result<Job, Refused> {
        let target = self.resolve(path)?;
        let name = target.file_name();
        let dir = if !path.is_empty() && glob::is_pattern(name) {
            if name.len() > glob::MAX_PATTERN {
                return Err(Refused(reply::BAD_ARGUMENTS, "Pattern too long.".into()));
            }
            opts.pattern = Some(name.to_vec());
            target.parent()
        } else {
            let st = cx.jail.stat(&target)?;
            if st.kind != FileKind::Dir {
                if opts.format == ListFormat::Mlsd {
                    return Err(Refused(reply::BAD_ARGUMENTS, "MLSD needs a directory; use MLST for a file.".into()));
                }
                let mut buf = Vec::with_capacity(256);
                let shown = if opts.format == ListFormat::Nlst { path } else { name };
                listing::push_single(&mut buf, opts.format, shown, &st, None, &opts);
                return Ok(Job::List(Listing::ready(verb_name(opts.format), buf, target)));
            }
            target
        };
        let verb = verb_name(opts.format);
        let fd = cx.jail.open_dir(&dir)?;
        let mut lister = Lister::new(fd, opts).map_err(|e| Refused::from(FsError::from(e)))?;
        if let Ok(j) = cx.jail.try_clone() {
            lister = lister.with_jail(j, dir.clone());
        }
        Ok(Job::List(Listing::streaming(verb, lister, dir)))
    }

    pub(super) fn cmd_mlst(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.resolve(arg).and_then(|p| {
            let st = cx.jail.stat(&p)?;
            Ok((p, st))
        });
        match r {
            Ok((p, st)) => {
                let opts = self.list_options(ListFormat::Mlsd, cx);
                let mut line = Vec::with_capacity(256);
                listing::push_mlsx_facts(&mut line, &st, None, opts.file_perm, opts.dir_perm, opts.local_time);
                line.extend_from_slice(&listing::sanitize_name(p.as_bytes()));
                let mut first = b"Listing ".to_vec();
                first.extend_from_slice(p.as_bytes());
                reply::push_multi(self.out(), reply::FILE_ACTION_OK, &first, &[&line], b"End.");
            }
            Err(r) => self.refuse(r),
        }
    }

    /// STAT <path>: the listing over the control connection, capped.
    pub(super) fn cmd_stat_path(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let (flags, path) = listing::parse_list_args(arg);
        let mut opts = self.list_options(ListFormat::List, cx);
        opts.flags = flags;
        let job = match self.prepare_listing(path, opts, cx) {
            Ok(j) => j,
            Err(r) => return self.refuse(r),
        };
        let Job::List(mut l) = job else { return };
        let mut body = std::mem::take(&mut l.buf);
        let mut truncated = false;
        if let Some(lister) = l.lister.as_mut() {
            let mut done = false;
            while !done {
                match lister.fill(&mut body, limits::LIST_CHUNK) {
                    Ok(d) => done = d,
                    Err(_) => break,
                }
                if memchr::memchr_iter(b'\n', &body).count() >= limits::STAT_MAX_ENTRIES {
                    truncated = !done;
                    break;
                }
            }
        }
        let mut first = b"Status of ".to_vec();
        reply::push_quoted_path(&mut first, path);
        first.push(b':');
        let out = self.out();
        let mut m = reply::Multi::begin(out, reply::FILE_STATUS, &first);
        for line in body.split(|&b| b == b'\n').take(limits::STAT_MAX_ENTRIES) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                m.line(line);
            }
        }
        if truncated {
            m.line(b"... (listing truncated; use LIST for the whole directory)");
        }
        m.end(b"End of status.");
    }
}
