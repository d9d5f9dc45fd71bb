//! Directory listings for LIST, NLST, MLSD and MLST, produced in bounded chunks.
//!
//! A [`Lister`] reads the directory with `getdents64` into one fixed 32 KiB buffer and turns
//! entries into lines only as fast as the data socket takes them ([`Lister::fill`]), so a
//! directory of a million entries costs the same memory as one of ten. Names are bytes; CR
//! and LF in a name become `?` so a name can never break a line.

use std::borrow::Cow;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::fs::glob;
use crate::fs::jail::{FileKind, Jail, Stat};
use crate::fs::time::{self, Parts};
use crate::fs::vpath::VPath;
use crate::io::fsys;

/// Size of the `getdents64` buffer: the most directory entries held at once.
const DIRENT_BUF: usize = 32 * 1024;
/// Longest symlink target shown in a LIST line.
const MAX_LINK_SHOWN: usize = 4096;
/// A LIST date is `HH:MM` if the file is younger than this (about six months)...
const RECENT_SECS: i64 = 15_552_000;
/// ...and not further in the future than this.
const FUTURE_SLACK_SECS: i64 = 3600;
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Which listing command is being answered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ListFormat {
    List,
    Nlst,
    Mlsd,
}

/// The `ls`-style options a client put before the path.
#[derive(Clone, Debug, Default)]
pub struct ListFlags {
    /// `-a` or `-A`: show dot files (never `.` and `..`).
    pub all: bool,
    /// `-l`: long lines (makes `NLST -l` answer like LIST).
    pub long: bool,
}

/// Splits `LIST -la some path` into its flags and its path (possibly empty, spaces kept).
/// Every leading word that starts with `-` (other than a lone `-`) is an option word; unknown
/// letters are ignored (`-R` never recurses); `--` ends the options.
pub fn parse_list_args(arg: &[u8]) -> (ListFlags, &[u8]) {
    let mut flags = ListFlags::default();
    let mut rest = arg;
    loop {
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.len() < 2 || word[0] != b'-' {
            break;
        }
        let skip = rest[end..].iter().take_while(|&&b| b == b' ').count();
        rest = &rest[end + skip..];
        if word == b"--" {
            break;
        }
        for &c in &word[1..] {
            match c {
                b'a' | b'A' => flags.all = true,
                b'l' => flags.long = true,
                _ => {}
            }
        }
    }
    (flags, rest)
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
    /// Extra names to leave out (denied patterns; [`hide_dotfiles`] under `deny_dotfiles`).
    pub hide: fn(&[u8]) -> bool,
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
        }
    }
}

/// A `hide` that hides nothing.
pub fn hide_nothing(_: &[u8]) -> bool {
    false
}

/// A `hide` for `deny_dotfiles`: dot files are left out even with `-a`.
pub fn hide_dotfiles(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// `getdents64` over a directory fd, one fixed buffer.
struct DirStream {
    fd: OwnedFd,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl DirStream {
    /// The next entry's name as a range of `buf`, NUL terminator included.
    fn next(&mut self) -> io::Result<Option<std::ops::Range<usize>>> {
        if self.pos >= self.end {
            if self.eof {
                return Ok(None);
            }
            let n = fsys::getdents64(self.fd.as_fd(), &mut self.buf)?;
            self.pos = 0;
            self.end = n.min(self.buf.len());
            if self.end == 0 {
                self.eof = true;
                return Ok(None);
            }
        }
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let rec = &self.buf[self.pos..self.end];
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed dirent");
        let reclen = match rec.get(16..18) {
            Some(&[a, b]) => usize::from(u16::from_ne_bytes([a, b])),
            _ => return Err(bad()),
        };
        let name = rec.get(19..reclen).ok_or_else(bad)?;
        let nul = memchr::memchr(0, name).ok_or_else(bad)?;
        let start = self.pos + 19;
        self.pos += reclen;
        Ok(Some(start..start + nul + 1))
    }
}

/// Streams one directory's listing in chunks.
pub struct Lister {
    dir: DirStream,
    opts: ListOptions,
    /// The jail and the directory's path, to resolve symlinks for MLSD (see [`Lister::with_jail`]).
    jail: Option<(Jail, VPath)>,
    link: Vec<u8>,
}

impl Lister {
    /// Lists the directory open on `dir` (from [`Jail::open_dir`]).
    pub fn new(dir: OwnedFd, opts: ListOptions) -> io::Result<Lister> {
        Ok(Lister {
            dir: DirStream { fd: dir, buf: vec![0; DIRENT_BUF].into_boxed_slice(), pos: 0, end: 0, eof: false },
            opts,
            jail: None,
            link: vec![0; MAX_LINK_SHOWN],
        })
    }

    /// Lets MLSD follow symlinks anywhere inside the jail (`dir` is the listed directory's
    /// path). Without it, MLSD follows a symlink only if its target stays beneath the listed
    /// directory; other symlinks are left out. Target facts never come from outside the root.
    pub fn with_jail(mut self, jail: Jail, dir: VPath) -> Lister {
        self.jail = Some((jail, dir));
        self
    }

    /// Appends whole lines to `out` until `out.len() >= soft_max` or the directory is
    /// exhausted; `Ok(true)` when done. At most one line goes past `soft_max`.
    pub fn fill(&mut self, out: &mut Vec<u8>, soft_max: usize) -> io::Result<bool> {
        let Lister { dir, opts, jail, link } = self;
        while out.len() < soft_max {
            let Some(range) = dir.next()? else {
                return Ok(true);
            };
            let Ok(cname) = CStr::from_bytes_with_nul(&dir.buf[range]) else {
                continue;
            };
            if wanted(opts, cname.to_bytes()) {
                push_entry(out, dir.fd.as_fd(), cname, opts, jail.as_ref(), link);
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
    if (opts.hide)(name) {
        return false;
    }
    opts.pattern.as_deref().is_none_or(|p| glob::matches(p, name))
}

/// One entry's line; entries that vanished or cannot be described are skipped.
fn push_entry(
    out: &mut Vec<u8>,
    dir: BorrowedFd<'_>,
    cname: &CStr,
    opts: &ListOptions,
    jail: Option<&(Jail, VPath)>,
    link: &mut [u8],
) {
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
            FileKind::Symlink => fsys::readlinkat(dir, cname, link).ok().and_then(|n| link.get(..n)),
            _ => None,
        };
        push_list_line(out, name, &st, target, opts.now, opts.local_time);
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
    push_mlsx_facts(out, &st, None, opts.file_perm, opts.dir_perm, opts.local_time);
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
    push_right(out, st.nlink, 4);
    out.extend_from_slice(b" ftp      ftp      ");
    push_right(out, st.size, 12);
    out.push(b' ');
    let p = if local_time { time::local_parts(st.mtime) } else { time::utc_parts(st.mtime) };
    push_list_date(out, &p, st.mtime, now);
    out.push(b' ');
    out.extend_from_slice(&sanitize_name(name));
    if let (FileKind::Symlink, Some(t)) = (st.kind, link_target) {
        out.extend_from_slice(b" -> ");
        out.extend_from_slice(&sanitize_name(&t[..t.len().min(MAX_LINK_SHOWN)]));
    }
    out.extend_from_slice(b"\r\n");
}

/// `Mon DD HH:MM` for recent times, `Mon DD  YYYY` otherwise (day space-padded).
fn push_list_date(out: &mut Vec<u8>, p: &Parts, mtime: i64, now: i64) {
    let idx = usize::try_from(p.month.saturating_sub(1)).unwrap_or(0).min(11);
    out.extend_from_slice(MONTHS[idx]);
    out.push(b' ');
    push_right(out, u64::from(p.day), 2);
    out.push(b' ');
    let recent = mtime > now.saturating_sub(RECENT_SECS) && mtime <= now.saturating_add(FUTURE_SLACK_SECS);
    if recent {
        time::push_num(out, u64::from(p.hour), 2);
        out.push(b':');
        time::push_num(out, u64::from(p.min), 2);
    } else if p.year >= 0 {
        out.push(b' ');
        push_right(out, p.year.unsigned_abs(), 4);
    } else {
        out.extend_from_slice(b"    0");
    }
}

/// `v` right-aligned in `width` columns (wider numbers are printed whole).
fn push_right(out: &mut Vec<u8>, v: u64, width: usize) {
    let digits = v.checked_ilog10().map_or(1, |l| l as usize + 1);
    out.extend(std::iter::repeat_n(b' ', width.saturating_sub(digits)));
    time::push_num(out, v, 0);
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

fn push_hex(out: &mut Vec<u8>, v: u64) {
    let digits = if v == 0 { 1 } else { (64 - v.leading_zeros()).div_ceil(4) };
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// RFC 3659 facts, ending in `"; "`; the caller appends the name and CRLF.
pub fn push_mlsx_facts(
    out: &mut Vec<u8>,
    st: &Stat,
    kind_override: Option<&str>,
    file_perm: &str,
    dir_perm: &str,
    local_time: bool,
) {
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
    if st.kind == FileKind::File {
        out.extend_from_slice(b"size=");
        time::push_num(out, st.size, 0);
        out.push(b';');
    }
    out.extend_from_slice(b"modify=");
    let p = if local_time { time::local_parts(st.mtime) } else { time::utc_parts(st.mtime) };
    time::push_mdtm(out, &p);
    out.push(b';');
    let perm = match st.kind {
        FileKind::File => Some(file_perm),
        FileKind::Dir => Some(dir_perm),
        _ => None,
    };
    if let Some(perm) = perm {
        out.extend_from_slice(b"perm=");
        out.extend_from_slice(perm.as_bytes());
        out.push(b';');
    }
    out.extend_from_slice(b"unique=");
    push_hex(out, st.dev);
    out.push(b'-');
    push_hex(out, st.ino);
    out.extend_from_slice(b";UNIX.mode=");
    for shift in [9, 6, 3, 0] {
        out.push(b'0' + ((st.mode >> shift) & 7) as u8);
    }
    out.extend_from_slice(b"; ");
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
        ListFormat::Mlsd => {
            push_mlsx_facts(out, st, None, opts.file_perm, opts.dir_perm, opts.local_time);
            out.extend_from_slice(&sanitize_name(name));
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testdir::TempDir;
    use std::collections::BTreeSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::{Duration, UNIX_EPOCH};

    const OLD: i64 = 978_397_200; // 2001-01-02 01:00:00 UTC

    fn set_mtime(path: &std::path::Path, secs: i64) {
        let f = std::fs::File::open(path).expect("open for mtime");
        let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("positive"));
        f.set_modified(t).expect("set_modified");
    }

    fn set_mode(path: &std::path::Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// `root/` holds the listed directory `d/`; `root/top.txt` is reachable only via `..`.
    fn fixture(now: i64) -> TempDir {
        let t = TempDir::new("list");
        let d = t.dir(b"d");
        set_mode(&t.file(b"d/file.txt", b"hello"), 0o644);
        set_mtime(&t.at(b"d/file.txt"), OLD);
        t.dir(b"d/sub");
        set_mode(&t.at(b"d/sub"), 0o755);
        set_mtime(&t.at(b"d/sub"), OLD);
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
        drop(big);
        set_mode(&t.at(b"d/big.iso"), 0o644);
        set_mtime(&t.at(b"d/big.iso"), now - 7200);
        set_mtime(&d, OLD);
        t
    }

    fn list_all(t: &TempDir, opts: ListOptions) -> Vec<Vec<u8>> {
        let jail = Jail::open(&t.at(b"d"), false).expect("jail");
        let fd = jail.open_dir(&VPath::root()).expect("open_dir");
        let mut lister = Lister::new(fd, opts).expect("lister");
        let mut out = Vec::new();
        while !lister.fill(&mut out, 1 << 20).expect("fill") {}
        lines(&out)
    }

    fn lines(out: &[u8]) -> Vec<Vec<u8>> {
        assert!(out.is_empty() || out.ends_with(b"\r\n"));
        let mut v: Vec<Vec<u8>> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| l.to_vec()).collect();
        for l in &mut v {
            assert_eq!(l.pop(), Some(b'\r'));
        }
        v.sort();
        v
    }

    fn find<'a>(lines: &'a [Vec<u8>], suffix: &[u8]) -> &'a [u8] {
        lines.iter().find(|l| l.ends_with(suffix)).unwrap_or_else(|| panic!("no line ends {:?}", String::from_utf8_lossy(suffix)))
    }

    #[test]
    fn list_lines_are_exact() {
        let now = time::now_secs();
        let t = fixture(now);
        let l = list_all(&t, ListOptions::new(ListFormat::List, now));
        assert_eq!(find(&l, b" file.txt"), b"-rw-r--r--    1 ftp      ftp                 5 Jan  2  2001 file.txt");
        let sub_size = std::fs::metadata(t.at(b"d/sub")).expect("meta").len();
        let want = format!("drwxr-xr-x    2 ftp      ftp      {sub_size:>12} Jan  2  2001 sub");
        assert_eq!(find(&l, b" sub"), want.as_bytes());
        let p = time::utc_parts(now - 7200);
        let want = format!(
            "-rw-r--r--    1 ftp      ftp        5368709120 {} {:>2} {:02}:{:02} big.iso",
            String::from_utf8_lossy(MONTHS[p.month as usize - 1]), p.day, p.hour, p.min
        );
        assert_eq!(find(&l, b" big.iso"), want.as_bytes());
        assert!(find(&l, b" link -> file.txt").starts_with(b"lrwxrwxrwx    1 ftp      ftp      "));
        assert!(find(&l, b" abs -> /etc/passwd").starts_with(b"l"));
        assert!(find(&l, b" dangling -> nowhere").starts_with(b"l"));
        find(&l, b" caf\xe9");
        find(&l, b" new?line");
        assert_eq!(l.len(), 9, "no dot files, no . or ..");
        assert!(!l.iter().any(|x| x.ends_with(b".hidden")));
    }

    #[test]
    fn nlst_names_and_flags() {
        let now = time::now_secs();
        let t = fixture(now);
        let names = |opts| list_all(&t, opts);
        let mut want: Vec<Vec<u8>> = ["abs", "big.iso", "dangling", "file.txt", "link", "sub", "uplink"]
            .iter().map(|s| s.as_bytes().to_vec()).collect();
        want.push(b"caf\xe9".to_vec());
        want.push(b"new?line".to_vec());
        want.sort();
        assert_eq!(names(ListOptions::new(ListFormat::Nlst, now)), want);
        let mut all = ListOptions::new(ListFormat::Nlst, now);
        all.flags.all = true;
        let got = names(all.clone());
        assert_eq!(got.len(), want.len() + 1);
        assert!(got.contains(&b".hidden".to_vec()));
        all.hide = hide_dotfiles;
        assert_eq!(names(all), want);
        let mut pat = ListOptions::new(ListFormat::Nlst, now);
        pat.pattern = Some(b"*i*".to_vec());
        let got = names(pat);
        let w: Vec<Vec<u8>> = vec![b"big.iso".to_vec(), b"dangling".to_vec(), b"file.txt".to_vec(), b"link".to_vec(), b"new?line".to_vec(), b"uplink".to_vec()];
        assert_eq!(got, w);
        let mut long = ListOptions::new(ListFormat::Nlst, now);
        long.flags.long = true;
        assert!(names(long).iter().all(|l| l.contains(&b':') || l.windows(4).any(|w| w == b"2001")));
        let mut list_a = ListOptions::new(ListFormat::List, now);
        list_a.flags.all = true;
        assert!(find(&names(list_a), b" .hidden").starts_with(b"-"));
    }

    #[test]
    fn mlsd_facts_and_symlinks() {
        let now = time::now_secs();
        let t = fixture(now);
        let m = std::fs::metadata(t.at(b"d/file.txt")).expect("meta");
        let l = list_all(&t, ListOptions::new(ListFormat::Mlsd, now));
        let want = format!("type=file;size=5;modify=20010102010000;perm=r;unique={:x}-{:x};UNIX.mode=0644; file.txt", m.dev(), m.ino());
        assert_eq!(find(&l, b" file.txt"), want.as_bytes());
        // The symlink shows its target's facts under its own name.
        let want = format!("type=file;size=5;modify=20010102010000;perm=r;unique={:x}-{:x};UNIX.mode=0644; link", m.dev(), m.ino());
        assert_eq!(find(&l, b" link"), want.as_bytes());
        assert!(find(&l, b"; sub").starts_with(b"type=dir;modify=20010102010000;perm=el;unique="));
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
        let clone = jail.try_clone().expect("clone");
        let mut lister = Lister::new(fd, ListOptions::new(ListFormat::Mlsd, now)).expect("lister").with_jail(clone, dir);
        let mut out = Vec::new();
        while !lister.fill(&mut out, 4096).expect("fill") {}
        let l = lines(&out);
        assert!(find(&l, b"; uplink").starts_with(b"type=file;size=3;"));
        assert!(!l.iter().any(|x| x.ends_with(b"; abs")));
    }

    #[test]
    fn single_entries() {
        let st = Stat { kind: FileKind::File, size: 42, mtime: OLD, mode: libc::S_IFREG | 0o4755, nlink: 1, uid: 0, gid: 0, dev: 0x803, ino: 0xabc };
        let opts = ListOptions::new(ListFormat::List, OLD + 60);
        let mut out = Vec::new();
        push_single(&mut out, ListFormat::List, b"a\rb", &st, None, &opts);
        assert_eq!(out, b"-rwsr-xr-x    1 ftp      ftp                42 Jan  2 01:00 a?b\r\n");
        out.clear();
        push_single(&mut out, ListFormat::Mlsd, b"/x/a", &st, None, &opts);
        assert_eq!(out, b"type=file;size=42;modify=20010102010000;perm=r;unique=803-abc;UNIX.mode=4755; /x/a\r\n");
        out.clear();
        push_single(&mut out, ListFormat::Nlst, b"a", &st, None, &opts);
        assert_eq!(out, b"a\r\n");
        out.clear();
        let dir = Stat { kind: FileKind::Dir, mode: libc::S_IFDIR | 0o1777, ..st };
        push_mlsx_facts(&mut out, &dir, Some("cdir"), "r", "el", false);
        assert_eq!(out, b"type=cdir;modify=20010102010000;perm=el;unique=803-abc;UNIX.mode=1777; ");
        out.clear();
        push_list_line(&mut out, b"tmp", &dir, None, OLD, false);
        assert!(out.starts_with(b"drwxrwxrwt "));
        out.clear();
        let odd = Stat { mode: libc::S_IFIFO | 0o2640, ..st.clone() };
        push_list_line(&mut out, b"p", &odd, None, OLD, false);
        assert!(out.starts_with(b"prw-r-S--- "));
    }

    #[test]
    fn dates_recent_old_future() {
        let st = |mtime| Stat { kind: FileKind::File, size: 1, mtime, mode: libc::S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, dev: 1, ino: 1 };
        let date = |mtime: i64, now: i64| {
            let mut out = Vec::new();
            push_list_line(&mut out, b"f", &st(mtime), None, now, false);
            String::from_utf8(out[47..out.len() - 4].to_vec()).expect("ascii")
        };
        assert_eq!(date(OLD, OLD), "Jan  2 01:00");
        assert_eq!(date(OLD, OLD + RECENT_SECS - 1), "Jan  2 01:00");
        assert_eq!(date(OLD, OLD + RECENT_SECS), "Jan  2  2001");
        assert_eq!(date(OLD + 3600, OLD), "Jan  2 02:00");
        assert_eq!(date(OLD + 3601, OLD), "Jan  2  2001");
        assert_eq!(date(1_700_000_000, 1_700_000_000), "Nov 14 22:13");
        assert_eq!(date(-86_400 * 400, OLD), "Nov 26  1968");
        assert_eq!(date(i64::MAX, OLD).len(), 23); // far future: whole year, no panic
    }

    #[test]
    fn list_args() {
        let p = |a: &'static [u8]| {
            let (f, rest) = parse_list_args(a);
            (f.all, f.long, rest)
        };
        assert_eq!(p(b""), (false, false, &b""[..]));
        assert_eq!(p(b"-la"), (true, true, &b""[..]));
        assert_eq!(p(b"-al /pub"), (true, true, &b"/pub"[..]));
        assert_eq!(p(b"-A"), (true, false, &b""[..]));
        assert_eq!(p(b"-lA my dir"), (true, true, &b"my dir"[..]));
        assert_eq!(p(b"-F -R -t  x"), (false, false, &b"x"[..]));
        assert_eq!(p(b"-l -- -a"), (false, true, &b"-a"[..]));
        assert_eq!(p(b"-"), (false, false, &b"-"[..]));
        assert_eq!(p(b"pub -la"), (false, false, &b"pub -la"[..]));
        assert_eq!(p(b"-\xff\n"), (false, false, &b""[..]));
    }

    #[test]
    fn sanitize() {
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
        let longest_line = 200;
        for format in [ListFormat::List, ListFormat::Nlst, ListFormat::Mlsd] {
            let jail = Jail::open(t.path(), false).expect("jail");
            let fd = jail.open_dir(&VPath::root()).expect("open_dir");
            let mut lister = Lister::new(fd, ListOptions::new(format, time::now_secs())).expect("lister");
            let soft_max = 64 * 1024;
            let (mut got, mut calls) = (BTreeSet::new(), 0);
            loop {
                let mut out = Vec::new();
                let done = lister.fill(&mut out, soft_max).expect("fill");
                calls += 1;
                assert!(out.len() < soft_max + longest_line, "{format:?} chunk {}", out.len());
                for l in lines(&out) {
                    let name = l.rsplit(|&b| b == b' ').next().expect("name").to_vec();
                    assert!(got.insert(name), "duplicate");
                }
                if done {
                    break;
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
