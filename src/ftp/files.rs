//! Commands that name a path: CWD, SIZE, MDTM, RETR, LIST/NLST/MLSD, MLST and
//! STAT <path>. Every path is a virtual path resolved through the jail.

use std::os::fd::AsFd;

use crate::auth::perms::Perms;
use crate::disk::Work;
use crate::fs::glob;
use crate::fs::jail::{FileKind, FsError, Jail, Stat};
use crate::fs::listing::{self, ListFormat, ListOptions, Lister};
use crate::fs::time;
use crate::fs::vpath::{PathError, VPath};
use crate::io::{fsys, net};
use crate::limits;
use crate::lists::cache::{DirStamp, FillResult, Keep, Lookup, Variant, Wake};
use crate::lists::fill::{FillJob, Listings};
use crate::proto::addr::TransferType;
use crate::proto::reply;

use super::data::{BeginError, DataState};
use super::messages::{Message, MessageWait};
use super::transfer::{Job, Listing, Retr};
use super::{Cx, Session, messages};

/// A failure already turned into its reply.
pub(super) struct Refused(pub u16, pub String);

pub(super) use crate::auth::access::Need;
use crate::auth::access::Refusal;

impl From<PathError> for Refused {
    fn from(e: PathError) -> Refused {
        Refused(reply::BAD_ARGUMENTS, format!("Bad path: {e}."))
    }
}

impl From<FsError> for Refused {
    fn from(e: FsError) -> Refused {
        match &e {
            // Running out of descriptors passes: 451 (try again), not a permanent 550.
            FsError::Io(io) if crate::io::spare::out_of_fds(io) => {
                Refused(reply::LOCAL_ERROR, "Server out of file descriptors; try again later.".into())
            }
            _ => Refused(reply::FILE_UNAVAILABLE, format!("{e}.")),
        }
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
    /// The jail of the logged-in account, or the server root.
    pub(super) fn jail<'s>(&'s self, root: &'s Jail) -> &'s Jail {
        self.access.jail.as_ref().unwrap_or(root)
    }

    /// Joins `arg` to the cwd, makes --deny names unreachable, and checks
    /// the session's permissions at the result.
    pub(super) fn path_for(&self, arg: &[u8], need: Need, cx: &Cx<'_>) -> Result<VPath, Refused> {
        let p = self.cwd.join(arg)?;
        match self.access.check(&cx.shared.auth(), p.as_bytes(), need) {
            Ok(_) => Ok(p),
            Err(Refusal::Hidden) => Err(FsError::NotFound.into()),
            Err(Refusal::Denied) => Err(Refused(reply::FILE_UNAVAILABLE, "Permission denied.".into())),
        }
    }

    pub(super) fn refuse(&mut self, r: Refused) {
        self.reply(r.0, &r.1);
    }

    fn time_parts(&self, cx: &Cx<'_>, secs: i64) -> time::Parts {
        if cx.cfg.local_time { time::local_parts(secs) } else { time::utc_parts(secs) }
    }

    pub(super) fn cmd_cwd(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        // Entered with the server's own credentials: a directory it may not
        // search is 550 now, not a 250 followed by failing commands.
        let r = self.path_for(arg, Need::Any, cx).and_then(|p| match self.jail(cx.jail).enter_dir(&p) {
            Ok(_) => Ok(p),
            Err(FsError::NotADirectory) => Err(Refused(reply::FILE_UNAVAILABLE, "Not a directory.".into())),
            Err(e) => Err(e.into()),
        });
        match r {
            Ok(p) => {
                let message = if cx.cfg.dir_messages { self.dir_message_once(&p, cx) } else { Message::None };
                self.cwd = p;
                match message {
                    Message::None => self.reply_cwd(None),
                    Message::Lines(lines) => self.reply_cwd(Some(lines)),
                    // The reply waits for a disk helper (`Session::disk_done`).
                    Message::Pending(wait) => self.message_wait = Some(wait),
                }
            }
            Err(r) => self.refuse(r),
        }
    }

    /// The 250 of CWD, with the directory's `.message` lines if any.
    pub(super) fn reply_cwd(&mut self, message: Option<Vec<Vec<u8>>>) {
        match message {
            Some(lines) => {
                let mut m = reply::Multi::begin(self.out(), reply::FILE_ACTION_OK, &lines[0]);
                for l in &lines[1..] {
                    m.line(l);
                }
                m.end(b"Directory successfully changed.");
            }
            None => self.reply(reply::FILE_ACTION_OK, "Directory successfully changed."),
        }
    }

    /// The `.message` of directory `p`, the first time this session enters
    /// it (the mirror convention). Read from the page cache on the event
    /// loop; when it is not cached, a disk helper reads it in and the CWD
    /// reply waits (`Message::Pending`); without helpers (`--disk-check
    /// none`, or their queue full) it is read here.
    fn dir_message_once(&mut self, p: &VPath, cx: &Cx<'_>) -> Message {
        let key = messages::dir_key(p.as_bytes());
        if self.seen_dirs.contains(&key) {
            return Message::None;
        }
        if self.seen_dirs.len() >= limits::DIR_MESSAGES_REMEMBERED {
            self.seen_dirs.remove(0);
        }
        self.seen_dirs.push(key);
        let Some(file) = self.jail(cx.jail).open_dir(p).ok().and_then(messages::open_dir_message) else {
            return Message::None;
        };
        let read = match messages::read_message(&file, true) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let warm = Work::Warm { off: 0, len: limits::MAX_MESSAGE_FILE as u64 };
                match self.data.submit_disk(cx.slot, &file, warm) {
                    Some(ticket) => return Message::Pending(MessageWait { file, ticket }),
                    None => messages::read_message(&file, false),
                }
            }
            r => r,
        };
        match read {
            Ok(Some(lines)) => Message::Lines(lines),
            _ => Message::None,
        }
    }

    fn stat_file(&self, arg: &[u8], cx: &Cx<'_>) -> Result<Stat, Refused> {
        let p = self.path_for(arg, Need::OneOf(Perms::LIST.union(Perms::READ)), cx)?;
        let st = self.jail(cx.jail).stat(&p)?;
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
        // "MDTM YYYYMMDDHHMMSS path" is the old way to set a time (MFMT).
        if arg.len() > 15
            && arg[..14].iter().all(u8::is_ascii_digit)
            && arg[14] == b' '
            && self.stat_file(arg, cx).is_err()
        {
            return self.cmd_mfmt(arg, cx);
        }
        let r = self
            .path_for(arg, Need::OneOf(Perms::LIST.union(Perms::READ)), cx)
            .and_then(|p| Ok(self.jail(cx.jail).stat(&p)?));
        match r {
            Ok(st) => {
                let mut text = Vec::with_capacity(16);
                time::push_mdtm(&mut text, &self.time_parts(cx, st.mtime));
                self.reply_bytes(reply::FILE_STATUS, &text);
            }
            Err(r) => self.refuse(r),
        }
    }

    /// New data connections get TLS when PROT P is in force.
    pub(super) fn arm_data_tls(&mut self, cx: &Cx<'_>) {
        self.data.secure = if self.prot_private { cx.shared.tls() } else { None };
        self.data.reuse = cx.cfg.tls_session_reuse;
    }

    pub(super) fn need_data_channel(&mut self) -> bool {
        if matches!(self.data.state, DataState::Idle) {
            self.reply(reply::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first.");
            return false;
        }
        true
    }

    /// Attaches a job to the data channel; 150 now if already connected.
    pub(super) fn start_job(&mut self, job: Job, cx: &mut Cx<'_>) {
        if !self.prot_private && self.must_encrypt(crate::config::TlsRequire::Data, self.access.anonymous, cx) {
            self.data.reset(cx.registry);
            return self.reply(reply::PROT_REQUIRED, "Data connections must be encrypted: use PROT P.");
        }
        self.arm_data_tls(cx);
        let local_ip = net::canonical_ip(self.local.ip());
        // --active-from-port-20: RFC 959's L-1 (port 20 under a control port 21).
        let from_port = cx.cfg.active_from_port_20.then(|| self.local.port().saturating_sub(1));
        match self.data.begin(job, cx.slot, cx.registry, local_ip, from_port, cx.now) {
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
        let p = match self.path_for(arg, Need::All(Perms::READ), cx) {
            Ok(p) => p,
            Err(r) => return self.refuse(r),
        };
        let (file, st) = match self.jail(cx.jail).open_file(&p) {
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

    /// Listing options for a directory where the session has `have`.
    fn list_options(&self, format: ListFormat, have: Perms, cx: &Cx<'_>) -> ListOptions {
        let mut o = ListOptions::new(format, time::now_secs());
        o.local_time = cx.cfg.local_time;
        if cx.cfg.deny_dotfiles {
            o.hide = listing::hide_dotfiles;
        }
        if !cx.shared.auth().deny.is_empty() {
            o.deny = Some(cx.shared.auth().deny.clone());
        }
        o.file_perm = have.mlsx_file();
        o.dir_perm = have.mlsx_dir();
        o.facts = self.facts;
        o
    }

    pub(super) fn cmd_list(&mut self, format: ListFormat, arg: &[u8], cx: &mut Cx<'_>) {
        let (flags, path) =
            if format == ListFormat::Mlsd { (Default::default(), arg) } else { listing::parse_list_args(arg) };
        match self.prepare_listing(format, flags, path, true, cx) {
            Ok(job) => {
                if self.need_data_channel() {
                    self.start_job(job, cx);
                }
            }
            Err(r) => self.refuse(r),
        }
    }

    /// The listing job for LIST/NLST/MLSD `path` (`cached`: may come from, and go to, the
    /// listing cache; STAT <path> reads the directory itself).
    fn prepare_listing(
        &self,
        format: ListFormat,
        flags: listing::ListFlags,
        path: &[u8],
        cached: bool,
        cx: &Cx<'_>,
    ) -> Result<Job, Refused> {
        let joined = self.cwd.join(path)?;
        let name = joined.file_name();
        let pattern = (!path.is_empty() && glob::is_pattern(name)).then(|| name.to_vec());
        if pattern.as_ref().is_some_and(|p| p.len() > glob::MAX_PATTERN) {
            return Err(Refused(reply::BAD_ARGUMENTS, "Pattern too long.".into()));
        }
        let listed = if pattern.is_some() { joined.parent() } else { joined };
        // --deny and the LIST permission apply to what is listed.
        let target = self.path_for(listed.as_bytes(), Need::All(Perms::LIST), cx)?;
        let have = self.access.at(&cx.shared.auth(), target.as_bytes());
        let mut opts = self.list_options(format, have, cx);
        opts.flags = flags;
        opts.pattern = pattern;
        let jail = self.jail(cx.jail);
        let verb = verb_name(format);
        if opts.pattern.is_none() {
            // One stat of what is listed: a directory's also validates its cached listing.
            let raw = fsys::fstat(jail.resolve(&target, libc::O_PATH, true)?.as_fd()).map_err(FsError::from)?;
            let st = Stat::from_libc(&raw);
            if st.kind != FileKind::Dir {
                if format == ListFormat::Mlsd {
                    return Err(Refused(reply::BAD_ARGUMENTS, "MLSD needs a directory; use MLST for a file.".into()));
                }
                let mut buf = Vec::with_capacity(256);
                let shown = if format == ListFormat::Nlst { path } else { target.file_name() };
                listing::push_single(&mut buf, format, shown, &st, None, &opts);
                return Ok(Job::List(Listing::ready(verb, buf, target)));
            }
            if let Some(l) = cx.shared.listings.as_ref().filter(|_| cached) {
                return self.cached_listing(l, DirStamp::from_libc(&raw), opts, target, verb, cx);
            }
        }
        let lister = self.lister(&target, opts, cx)?;
        Ok(Job::List(Listing::streaming(verb, lister, target)))
    }

    /// A lister of the directory `target`, following symlinks inside the session's jail.
    fn lister(&self, target: &VPath, opts: ListOptions, cx: &Cx<'_>) -> Result<Lister, Refused> {
        let jail = self.jail(cx.jail);
        let fd = jail.open_dir(target)?;
        let mut lister = Lister::new(fd, opts).map_err(|e| Refused::from(FsError::from(e)))?;
        if let Ok(j) = jail.try_clone() {
            lister = lister.with_jail(j, target.clone());
        }
        Ok(lister)
    }

    /// The listing of the directory `target` (as `stamp` shows it) from the cache, or filled
    /// for it by a helper thread while the session waits.
    fn cached_listing(
        &self,
        l: &Listings,
        stamp: DirStamp,
        opts: ListOptions,
        target: VPath,
        verb: &'static str,
        cx: &Cx<'_>,
    ) -> Result<Job, Refused> {
        let jail = self.jail(cx.jail);
        let root = fsys::fstat(jail.root_fd()).map_err(FsError::from)?;
        let root = (root.st_dev as u64, root.st_ino as u64);
        let Some(variant) = Variant::of(&opts, root, target.as_bytes(), jail.deny_dotfiles()) else {
            let lister = self.lister(&target, opts, cx)?;
            return Ok(Job::List(Listing::streaming(verb, lister, target)));
        };
        let wake = || Wake { slot: cx.slot, tx: cx.wakeups.clone(), waker: cx.waker.clone() };
        match l.cache.lookup(stamp, &variant, cx.now) {
            Lookup::Hit(body) => Ok(Job::List(Listing::cached(verb, body, target))),
            Lookup::TooBig => {
                let lister = self.lister(&target, opts, cx)?;
                Ok(Job::List(Listing::streaming(verb, lister, target)))
            }
            Lookup::Wait(fill) => {
                // Streams the directory itself if the fill keeps no listing.
                let fallback = self.lister(&target, opts, cx)?;
                fill.attach(wake());
                Ok(Job::List(Listing::waiting(verb, fill, false, Some(fallback), target)))
            }
            Lookup::Miss(fill) => {
                let lister = match self.lister(&target, opts, cx) {
                    Ok(lister) => lister,
                    Err(r) => {
                        l.cache.complete(stamp, &fill, Keep::Nothing);
                        fill.finish(FillResult::Failed(r.1.clone()), None);
                        return Err(r);
                    }
                };
                fill.attach(wake());
                match l.submit(FillJob { lister, stamp, fill: fill.clone() }) {
                    Ok(()) => Ok(Job::List(Listing::waiting(verb, fill, true, None, target))),
                    Err(job) => {
                        // No helper free: stream it here; others waiting stream theirs.
                        l.cache.complete(stamp, &fill, Keep::Nothing);
                        fill.finish(FillResult::Stream, None);
                        Ok(Job::List(Listing::streaming(verb, job.lister, target)))
                    }
                }
            }
        }
    }

    pub(super) fn cmd_mlst(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let r = self.path_for(arg, Need::OneOf(Perms::LIST.union(Perms::READ)), cx).and_then(|p| {
            let st = self.jail(cx.jail).stat(&p)?;
            Ok((p, st))
        });
        match r {
            Ok((p, st)) => {
                let have = self.access.at(&cx.shared.auth(), p.as_bytes());
                let opts = self.list_options(ListFormat::Mlsd, have, cx);
                let mut line = Vec::with_capacity(256);
                listing::push_mlsx_facts(&mut line, &st, None, &opts);
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
        let job = match self.prepare_listing(ListFormat::List, flags, path, false, cx) {
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
