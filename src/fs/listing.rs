//! Directory listings for LIST, NLST, MLSD and MLST, produced in bounded chunks.
//!
//! A [`Lister`] reads the directory with `getdents64` into one fixed 32 KiB buffer and turns
//! entries into lines only as fast as the data socket takes them ([`Lister::fill`]), so a
//! directory of a million entries costs the same memory as one of ten. Names are bytes; CR
//! and LF in a name become `?` so a name can never break a line.

use std::borrow::Cow;
use std::ffi::CStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::fs::facts::Facts;
use crate::fs::glob;
pub use crate::fs::glob::{ListFlags, hide_dotfiles, hide_nothing, parse_list_args};
use crate::fs::jail::{FileKind, Jail, Stat};
use crate::fs::time;
use crate::fs::vpath::VPath;
use crate::io::fsys::{self, DirStream};

/// Size of the `getdents64` buffer: the most directory entries held at once.
const DIRENT_BUF: usize = 32 * 1024;
/// Longest symlink target shown in a LIST line.
const MAX_LINK_SHOWN: usize = 4096;

/// Which listing command is being answered (MLST uses `Mlsd` with [`push_single`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ListFormat {
    List,
    Nlst,
    Mlsd,
}

/// Everything that shapes one listing.
#[derive(Clone, Debug)]
pub struct ListOptions {
    pub format: ListFormat,
    pub flags: ListFlags,
    /// Only names matching this glob are listed.
    pub pattern: Option<Vec<u8>>,
    /// The clock used for the LIST "recent" rule.
    pub now: i64,
    /// Local time instead of UTC in dates.
    pub local_time: bool,
    /// MLSD `perm` fact for files, e.g. `"r"`.
    pub file_perm: &'static str,
    /// MLSD `perm` fact for directories, e.g. `"el"`.
    pub dir_perm: &'static str,
    /// Extra names to leave out ([`hide_dotfiles`] under `deny_dotfiles`).
    pub hide: fn(&[u8]) -> bool,
    /// `--deny` patterns: matching names are invisible.
    pub deny: Option<std::sync::Arc<crate::auth::rules::Deny>>,
    /// The MLSD/MLST facts the session selected (`OPTS MLST`).
    pub facts: Facts,
}

impl ListOptions {
    /// Defaults for a read-only anonymous listing in UTC.
    pub fn new(format: ListFormat, now: i64) -> ListOptions {
        ListOptions {
            format,
            flags: ListFlags::default(),
            pattern: None,
            now,
            local_time: false,
            file_perm: "r",
            dir_perm: "el",
            hide: hide_nothing,
            deny: None,
            facts: Facts::ALL,
        }
    }
}

/// Streams one directory's listing in chunks.
pub struct Lister {
    dir: DirStream,
    opts: ListOptions,
    /// The jail and the directory's path, to resolve symlinks (see [`Lister::with_jail`]).
    jail: Option<(Jail, VPath)>,
}

impl Lister {
    /// Lists the directory open on `dir` (from [`Jail::open_dir`]).
    pub fn new(dir: OwnedFd, opts: ListOptions) -> io::Result<Lister> {
        Ok(Lister { dir: DirStream::new(dir, DIRENT_BUF), opts, jail: None })
    }

    /// Lets MLSD follow symlinks anywhere inside the jail (`dir` is the listed directory's
    /// path). Without it, MLSD follows a symlink only if its target stays beneath the listed
    /// directory; other symlinks are left out. Target facts never come from outside the root.
    /// LIST shows a symlink's target only with the jail, and only if it stays inside the root
    /// ([`Jail::link_target_in`]).
    pub fn with_jail(mut self, jail: Jail, dir: VPath) -> Lister {
        self.jail = Some((jail, dir));
        self
    }

    /// Appends whole lines to `out` until `out.len() >= soft_max` or the directory is
    /// exhausted; `Ok(true)` when done. At most one line goes past `soft_max`.
    pub fn fill(&mut self, out: &mut Vec<u8>, soft_max: usize) -> io::Result<bool> {
        let (dir, opts, jail) = (&mut self.dir, &self.opts, &self.jail);
        while out.len() < soft_max {
            let Some((fd, cname)) = dir.next_entry()? else {
                return Ok(true);
            };
            if wanted(opts, cname.to_bytes()) {
                push_entry(out, fd, cname, opts, jail.as_ref());
            }
        }
        Ok(false)
    }
}

fn wanted(opts: &ListOptions, name: &[u8]) -> bool {
    if name == b"." || name == b".." || name.is_empty() {
        return false;
    }
    if name[0] == b'.' && !(opts.flags.all && opts.format != ListFormat::Mlsd) {
        return false;
    }
    if (opts.hide)(name) || opts.deny.as_ref().is_some_and(|d| d.hides_name(name)) {
        return false;
    }
    opts.pattern.as_deref().is_none_or(|p| glob::matches(p, name))
}

/// One entry's line; entries that vanished or cannot be described are skipped.
fn push_entry(out: &mut Vec<u8>, dir: BorrowedFd<'_>, cname: &CStr, opts: &ListOptions, jail: Option<&(Jail, VPath)>) {
    let name = cname.to_bytes();
    if opts.format == ListFormat::Nlst && !opts.flags.long {
        push_nlst_line(out, name);
        return;
    }
    let Ok(st) = fsys::fstatat(dir, cname, libc::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    let mut st = Stat::from_libc(&st);
    if opts.format != ListFormat::Mlsd {
        let target = match st.kind {
            FileKind::Symlink => jail.and_then(|(jail, path)| jail.link_target_in(dir, path, cname)),
            _ => None,
        };
        if st.kind == FileKind::Symlink && target.is_none() {
            // A link's size is its target's length: not shown either.
            st.size = 0;
        }
        push_list_line(out, name, &st, target.as_deref(), opts.now, opts.local_time);
        return;
    }
    if st.kind == FileKind::Symlink {
        let followed = match jail {
            Some((jail, path)) => path.join(name).ok().and_then(|p| jail.stat(&p).ok()),
            None => beneath(dir, cname),
        };
        match followed {
            Some(t) => st = t,
            None => return,
        }
    }
    push_facts_line(out, name, &st, opts);
}

/// An MLSD line: facts, the name, CRLF.
fn push_facts_line(out: &mut Vec<u8>, name: &[u8], st: &Stat, opts: &ListOptions) {
    push_mlsx_facts(out, st, None, opts);
    out.extend_from_slice(&sanitize_name(name));
    out.extend_from_slice(b"\r\n");
}

/// Facts of a symlink's target if it resolves beneath `dir` (which is inside the root).
fn beneath(dir: BorrowedFd<'_>, cname: &CStr) -> Option<Stat> {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    let resolve = fsys::RESOLVE_BENEATH | fsys::RESOLVE_NO_MAGICLINKS;
    let fd = fsys::openat2(dir, cname, flags, 0, resolve).ok()?;
    fsys::fstat(fd.as_fd()).ok().map(|st| Stat::from_libc(&st))
}

/// CR and LF become `?`; everything else is kept as is.
pub fn sanitize_name(name: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\r', b'\n', name).is_none() {
        return Cow::Borrowed(name);
    }
    Cow::Owned(name.iter().map(|&b| if b == b'\r' || b == b'\n' { b'?' } else { b }).collect())
}

/// An NLST line: the bare name.
pub fn push_nlst_line(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(&sanitize_name(name));
    out.extend_from_slice(b"\r\n");
}

/// An `ls -l` line: `drwxr-xr-x    2 ftp      ftp              4096 Nov 23 14:05 name`.
pub fn push_list_line(
    out: &mut Vec<u8>,
    name: &[u8],
    st: &Stat,
    link_target: Option<&[u8]>,
    now: i64,
    local_time: bool,
) {
    push_mode(out, st.mode);
    out.push(b' ');
    time::push_right(out, st.nlink, 4);
    out.extend_from_slice(b" ftp      ftp      ");
    time::push_right(out, st.size, 12);
    out.push(b' ');
    time::push_ls_date(out, st.mtime, now, local_time);
    out.push(b' ');
    out.extend_from_slice(&sanitize_name(name));
    if let (FileKind::Symlink, Some(t)) = (st.kind, link_target) {
        out.extend_from_slice(b" -> ");
        out.extend_from_slice(&sanitize_name(&t[..t.len().min(MAX_LINK_SHOWN)]));
    }
    out.extend_from_slice(b"\r\n");
}

/// The ten-letter mode string, with setuid/setgid/sticky letters.
fn push_mode(out: &mut Vec<u8>, mode: u32) {
    out.push(match mode & libc::S_IFMT {
        libc::S_IFDIR => b'd',
        libc::S_IFLNK => b'l',
        libc::S_IFCHR => b'c',
        libc::S_IFBLK => b'b',
        libc::S_IFIFO => b'p',
        libc::S_IFSOCK => b's',
        _ => b'-',
    });
    for (shift, special, set) in [(6, libc::S_ISUID, b's'), (3, libc::S_ISGID, b's'), (0, libc::S_ISVTX, b't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { b'r' } else { b'-' });
        out.push(if bits & 2 != 0 { b'w' } else { b'-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => set.to_ascii_uppercase(),
            (true, false) => b'x',
            (false, false) => b'-',
        });
    }
}

/// The selected RFC 3659 facts (`opts.facts`), each ending in `;`, then the space before the
/// name, which stays when no fact is selected (§7.9); the caller appends the name and CRLF.
pub fn push_mlsx_facts(out: &mut Vec<u8>, st: &Stat, kind_override: Option<&str>, opts: &ListOptions) {
    let facts = opts.facts;
    if facts.contains(Facts::TYPE) {
        let kind = match (kind_override, st.kind) {
            (Some(k), _) => k,
            (None, FileKind::File) => "file",
            (None, FileKind::Dir) => "dir",
            (None, FileKind::Symlink) => "OS.unix=symlink",
            (None, FileKind::Other) => match st.mode & libc::S_IFMT {
                libc::S_IFIFO => "OS.unix=fifo",
                libc::S_IFSOCK => "OS.unix=socket",
                libc::S_IFCHR => "OS.unix=chr",
                libc::S_IFBLK => "OS.unix=blk",
                _ => "OS.unix=other",
            },
        };
        out.extend_from_slice(b"type=");
        out.extend_from_slice(kind.as_bytes());
        out.push(b';');
    }
    if facts.contains(Facts::SIZE) && st.kind == FileKind::File {
        out.extend_from_slice(b"size=");
        time::push_num(out, st.size, 0);
        out.push(b';');
    }
    if facts.contains(Facts::MODIFY) {
        out.extend_from_slice(b"modify=");
        let p = if opts.local_time { time::local_parts(st.mtime) } else { time::utc_parts(st.mtime) };
        time::push_mdtm(out, &p);
        out.push(b';');
    }
    let perm = match st.kind {
        FileKind::File => Some(opts.file_perm),
        FileKind::Dir => Some(opts.dir_perm),
        _ => None,
    };
    if let Some(perm) = perm.filter(|_| facts.contains(Facts::PERM)) {
        out.extend_from_slice(b"perm=");
        out.extend_from_slice(perm.as_bytes());
        out.push(b';');
    }
    // Writing into a Vec cannot fail.
    if facts.contains(Facts::UNIQUE) {
        let _ = write!(out, "unique={:x}-{:x};", st.dev, st.ino);
    }
    if facts.contains(Facts::UNIX_MODE) {
        let _ = write!(out, "UNIX.mode={:04o};", st.mode & 0o7777);
    }
    out.push(b' ');
}

/// One line for LIST/NLST/MLST of a single path (`name` as the client should see it).
/// For MLST the caller puts the leading space of the reply line before it.
pub fn push_single(
    out: &mut Vec<u8>,
    format: ListFormat,
    name: &[u8],
    st: &Stat,
    link_target: Option<&[u8]>,
    opts: &ListOptions,
) {
    match format {
        ListFormat::Nlst if !opts.flags.long => push_nlst_line(out, name),
        ListFormat::List | ListFormat::Nlst => {
            push_list_line(out, name, st, link_target, opts.now, opts.local_time);
        }
        ListFormat::Mlsd => push_facts_line(out, name, st, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testdir::TempDir;
    use std::collections::BTreeSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    const OLD: i64 = 978_397_200; // 2001-01-02 01:00:00 UTC

    fn set_meta(path: &Path, mode: u32, mtime: i64) {
        let perm = std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(path, perm).expect("chmod");
        let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(mtime).expect("positive"));
        let f = std::fs::File::open(path).expect("open for mtime");
        f.set_modified(t).expect("set_modified");
    }

    /// The listed directory is `d/`; `top.txt` beside it is reachable from it only via `..`.
    fn fixture(now: i64) -> TempDir {
        let t = TempDir::new("list");
        t.dir(b"d/sub");
        set_meta(&t.file(b"d/file.txt", b"hello"), 0o644, OLD);
        set_meta(&t.at(b"d/sub"), 0o755, OLD);
        t.file(b"d/.hidden", b"h");
        t.file(b"d/caf\xe9", b"e");
        t.file(b"d/new\nline", b"n");
        t.file(b"top.txt", b"top");
        t.symlink(b"file.txt", b"d/link");
        t.symlink(b"../top.txt", b"d/uplink");
        t.symlink(b"/etc/passwd", b"d/abs");
        t.symlink(b"nowhere", b"d/dangling");
        let big = std::fs::File::create(t.at(b"d/big.iso")).expect("create big");
        big.set_len(5 << 30).expect("sparse 5 GiB");
        set_meta(&t.at(b"d/big.iso"), 0o644, now - 7200);
        t
    }

    fn drain(mut lister: Lister, soft_max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !lister.fill(&mut out, soft_max).expect("fill") {}
        lines(&out)
    }

    /// Lists `d/` as the root of a jail (`uplink` leaves it).
    fn list(t: &TempDir, opts: ListOptions) -> Vec<Vec<u8>> {
        let jail = Jail::open(&t.at(b"d"), false).expect("jail");
        let fd = jail.open_dir(&VPath::root()).expect("open_dir");
        let lister = Lister::new(fd, opts).expect("lister");
        drain(lister.with_jail(jail, VPath::root()), 1 << 20)
    }

    /// Sorted lines without their CRLF (which every line must have).
    fn lines(out: &[u8]) -> Vec<Vec<u8>> {
        assert!(out.is_empty() || out.ends_with(b"\r\n"));
        let mut v: Vec<Vec<u8>> = out.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        assert_eq!(v.pop(), Some(Vec::new()));
        for l in &mut v {
            assert_eq!(l.pop(), Some(b'\r'));
        }
        v.sort();
        v
    }

    fn find<'a>(lines: &'a [Vec<u8>], suffix: &[u8]) -> &'a [u8] {
        let hit = lines.iter().find(|l| l.ends_with(suffix));
        hit.unwrap_or_else(|| panic!("no line ends {:?}", String::from_utf8_lossy(suffix)))
    }

    fn bytes(names: &[&[u8]]) -> Vec<Vec<u8>> {
        names.iter().map(|n| n.to_vec()).collect()
    }

    #[test]
    fn list_lines_are_exact() {
        let now = time::now_secs();
        let t = fixture(now);
        let l = list(&t, ListOptions::new(ListFormat::List, now));
        let want = b"-rw-r--r--    1 ftp      ftp                 5 Jan  2  2001 file.txt";
        assert_eq!(find(&l, b" file.txt"), want);
        let size = std::fs::metadata(t.at(b"d/sub")).expect("meta").len();
        let want = format!("drwxr-xr-x    2 ftp      ftp      {size:>12} Jan  2  2001 sub");
        assert_eq!(find(&l, b" sub"), want.as_bytes());
        let p = time::utc_parts(now - 7200);
        let mon = String::from_utf8_lossy(time::MONTHS[p.month as usize - 1]);
        let (day, hh, mm) = (p.day, p.hour, p.min);
        let want = format!("-rw-r--r--    1 ftp      ftp        5368709120 {mon} {day:>2} {hh:02}:{mm:02} big.iso");
        assert_eq!(find(&l, b" big.iso"), want.as_bytes());
        let link = find(&l, b" link -> file.txt");
        assert!(link.starts_with(b"lrwxrwxrwx    1 ftp      ftp      "));
        // Links that leave the root or dangle show neither their target nor its length.
        for name in [&b"abs"[..], b"dangling", b"uplink"] {
            let line = find(&l, &[b" ", name].concat());
            assert!(line.starts_with(b"lrwxrwxrwx    1 ftp      ftp                 0 "), "{line:?}");
        }
        find(&l, b" caf\xe9");
        find(&l, b" new?line");
        assert_eq!(l.len(), 9, "no dot files, no . or ..");
        let mut all = ListOptions::new(ListFormat::List, now);
        all.flags.all = true;
        let l = list(&t, all);
        assert!(find(&l, b" .hidden").starts_with(b"-rw-"));
        assert_eq!(l.len(), 10);
    }

    #[test]
    fn nlst_names_and_flags() {
        let now = time::now_secs();
        let t = fixture(now);
        let opts = |all: bool, pattern: Option<&[u8]>| {
            let mut o = ListOptions::new(ListFormat::Nlst, now);
            o.flags.all = all;
            o.pattern = pattern.map(<[u8]>::to_vec);
            o
        };
        let want = bytes(&[b"abs", b"big.iso", b"caf\xe9", b"dangling", b"file.txt", b"link"]);
        let mut want = [want, bytes(&[b"new?line", b"sub", b"uplink"])].concat();
        assert_eq!(list(&t, opts(false, None)), want);
        let mut hidden = opts(true, None);
        hidden.hide = hide_dotfiles;
        assert_eq!(list(&t, hidden), want);
        want.insert(0, b".hidden".to_vec());
        assert_eq!(list(&t, opts(true, None)), want);
        let got = list(&t, opts(true, Some(b"*i*")));
        let w = bytes(&[b"big.iso", b"dangling", b"file.txt", b"link", b"new?line", b"uplink"]);
        assert_eq!(got, w);
        assert_eq!(list(&t, opts(true, Some(b".h*"))), bytes(&[b".hidden"]));
        let mut long = opts(false, Some(b"file.txt"));
        long.flags.long = true;
        assert!(list(&t, long)[0].starts_with(b"-rw-r--r--    1 ftp "));
    }

    #[test]
    fn mlsd_facts_and_symlinks() {
        let now = time::now_secs();
        let t = fixture(now);
        let m = std::fs::metadata(t.at(b"d/file.txt")).expect("meta");
        let l = list(&t, ListOptions::new(ListFormat::Mlsd, now));
        let facts = format!(
            "type=file;size=5;modify=20010102010000;perm=r;unique={:x}-{:x};UNIX.mode=0644; ",
            m.dev(),
            m.ino()
        );
        assert_eq!(find(&l, b" file.txt"), format!("{facts}file.txt").as_bytes());
        // The symlink shows its target's facts under its own name.
        assert_eq!(find(&l, b" link"), format!("{facts}link").as_bytes());
        let sub = find(&l, b"; sub");
        assert!(sub.starts_with(b"type=dir;modify=20010102010000;perm=el;unique="));
        assert!(find(&l, b"; big.iso").starts_with(b"type=file;size=5368709120;"));
        // Outside the root, dangling, or (without the jail) above the listed dir: left out.
        for gone in [&b"; abs"[..], b"; dangling", b"; uplink", b"; .hidden"] {
            assert!(!l.iter().any(|x| x.ends_with(gone)));
        }
        assert_eq!(l.len(), 6);
        // With the jail, `../top.txt` resolves inside the root and is shown.
        let jail = Jail::open(t.path(), false).expect("jail");
        let dir = VPath::root().join(b"d").expect("vpath");
        let fd = jail.open_dir(&dir).expect("open_dir");
        let opts = ListOptions::new(ListFormat::Mlsd, now);
        let lister = Lister::new(fd, opts).expect("lister");
        let clone = jail.try_clone().expect("clone");
        let l = drain(lister.with_jail(clone, dir), 4096);
        assert!(find(&l, b"; uplink").starts_with(b"type=file;size=3;"));
        assert!(!l.iter().any(|x| x.ends_with(b"; abs")));
        assert_eq!(l.len(), 7);
    }

    #[test]
    fn single_entries_and_mode_letters() {
        let mode = libc::S_IFREG | 0o4755;
        let (dev, ino) = (0x803, 0xabc);
        let st = Stat { kind: FileKind::File, size: 42, mtime: OLD, mode, nlink: 1, uid: 0, gid: 0, dev, ino };
        let opts = ListOptions::new(ListFormat::List, OLD + 60);
        let one = |format, name: &[u8], st: &Stat| {
            let mut out = Vec::new();
            push_single(&mut out, format, name, st, None, &opts);
            out
        };
        let want = b"-rwsr-xr-x    1 ftp      ftp                42 Jan  2 01:00 a?b\r\n";
        assert_eq!(one(ListFormat::List, b"a\rb", &st), want);
        let want = "type=file;size=42;modify=20010102010000;perm=r;unique=803-abc;UNIX.mode=4755; /x/a\r\n";
        assert_eq!(one(ListFormat::Mlsd, b"/x/a", &st), want.as_bytes());
        assert_eq!(one(ListFormat::Nlst, b"a", &st), b"a\r\n");
        let dir = Stat { kind: FileKind::Dir, mode: libc::S_IFDIR | 0o1777, ..st.clone() };
        let mut out = Vec::new();
        let mlsd = ListOptions::new(ListFormat::Mlsd, OLD);
        push_mlsx_facts(&mut out, &dir, Some("cdir"), &mlsd);
        let want = "type=cdir;modify=20010102010000;perm=el;unique=803-abc;UNIX.mode=1777; ";
        assert_eq!(out, want.as_bytes());
        // OPTS MLST: only the selected facts, and the space before the name always.
        let only = |facts: Facts, st: &Stat| {
            let mut out = Vec::new();
            push_mlsx_facts(&mut out, st, None, &ListOptions { facts, ..mlsd.clone() });
            String::from_utf8(out).expect("ASCII")
        };
        assert_eq!(only(Facts::TYPE, &st), "type=file; ");
        assert_eq!(only(Facts::SIZE, &st), "size=42; ");
        assert_eq!(only(Facts::SIZE, &dir), " ", "a directory has no size fact");
        assert_eq!(only(Facts::NONE, &st), " ");
        assert_eq!(only(Facts::UNIQUE, &st), "unique=803-abc; ");
        assert_eq!(only(Facts::UNIX_MODE, &dir), "UNIX.mode=1777; ");
        assert_eq!(only(Facts::PERM, &dir), "perm=el; ");
        assert_eq!(only(Facts::MODIFY, &st), "modify=20010102010000; ");
        assert!(one(ListFormat::List, b"tmp", &dir).starts_with(b"drwxrwxrwt "));
        let fifo = Stat { kind: FileKind::Other, mode: libc::S_IFIFO | 0o2640, ..st };
        assert!(one(ListFormat::List, b"p", &fifo).starts_with(b"prw-r-S--- "));
        assert!(one(ListFormat::Mlsd, b"p", &fifo).starts_with(b"type=OS.unix=fifo;modify="));
        assert!(matches!(sanitize_name(b"plain"), Cow::Borrowed(_)));
        assert_eq!(&*sanitize_name(b"a\r\nb\n"), b"a??b?");
    }

    #[test]
    fn big_directory_is_streamed_in_bounded_chunks() {
        let t = TempDir::new("bigdir");
        let mut want = BTreeSet::new();
        for i in 0..20_000 {
            let name = format!("entry-{i:05}-padding-to-make-lines-longer.dat");
            std::fs::File::create(t.at(name.as_bytes())).expect("create");
            want.insert(name.into_bytes());
        }
        let (soft_max, longest_line) = (64 * 1024, 200);
        for format in [ListFormat::List, ListFormat::Nlst, ListFormat::Mlsd] {
            let jail = Jail::open(t.path(), false).expect("jail");
            let fd = jail.open_dir(&VPath::root()).expect("open_dir");
            let opts = ListOptions::new(format, time::now_secs());
            let mut lister = Lister::new(fd, opts).expect("lister");
            let (mut got, mut calls, mut done) = (BTreeSet::new(), 0, false);
            while !done {
                let mut out = Vec::new();
                done = lister.fill(&mut out, soft_max).expect("fill");
                calls += 1;
                assert!(out.len() < soft_max + longest_line, "{format:?} {}", out.len());
                for l in lines(&out) {
                    let name = l.rsplit(|&b| b == b' ').next().expect("name");
                    assert!(got.insert(name.to_vec()), "duplicate");
                }
            }
            assert!(calls > 2, "{format:?} {calls}");
            assert_eq!(got, want, "{format:?}");
            let mut out = Vec::new();
            assert!(lister.fill(&mut out, soft_max).expect("fill after done"));
            assert!(out.is_empty());
        }
    }
}
