//! Protocol conformance: every command the server offers (RFC 959, 2389,
//! 2428, 3659) answered with its exact reply code and data, driven over the
//! wire against the real binary. Also holds the small helpers that
//! `security.rs` and `faults.rs` share (a raw control client with access to
//! its socket, sparse files, transfer helpers), since `util.rs` is owned
//! elsewhere.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{Ftp, Server, TempDir, temp_dir};

pub(crate) const KIB: usize = 1 << 10;
pub(crate) const MIB: u64 = 1 << 20;
/// Bound for waits that should end almost at once.
pub(crate) const SHORT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Shared helpers (also used by security.rs and faults.rs)
// ---------------------------------------------------------------------------

/// A server over a fresh root. Fields drop in order: the server is killed
/// before its directory is removed.
pub(crate) struct Fx {
    pub server: Server,
    pub root: TempDir,
}

/// Creates a fresh root, lets `fill` populate it, starts the server on it.
pub(crate) fn fx(name: &str, args: &[&str], fill: impl FnOnce(&Path)) -> Fx {
    let root = temp_dir(name);
    fill(&root);
    let server = Server::start(&root, args);
    Fx { server, root }
}

/// A logged-in client (TYPE I).
pub(crate) fn login(server: &Server) -> Ftp {
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    ftp
}

/// Writes `bytes` to `root/rel`, creating parent directories.
pub(crate) fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A sparse file of `len` zero bytes (no disk blocks used).
pub(crate) fn sparse(path: &Path, len: u64) -> File {
    let f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(len).unwrap_or_else(|e| panic!("set_len {}: {e}", path.display()));
    f
}

/// Deterministic content: every 8-byte word is a function of its offset and
/// `seed`, so a byte from the wrong place or the wrong file shows.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut off = 0u64;
    while out.len() < len {
        let w = (off.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed).rotate_left(17);
        out.extend_from_slice(&w.to_le_bytes());
        off += 8;
    }
    out.truncate(len);
    out
}

/// Sends a command given as bytes (CRLF appended) and reads the reply.
pub(crate) fn raw_cmd(ftp: &mut Ftp, line: &[u8]) -> (u16, String) {
    let mut bytes = line.to_vec();
    bytes.extend_from_slice(b"\r\n");
    ftp.send_raw(&bytes);
    ftp.reply()
}

/// Sends `cmd`, asserts the reply code, returns the text.
#[track_caller]
pub(crate) fn expect(ftp: &mut Ftp, cmd: &str, code: u16) -> String {
    let r = ftp.cmd(cmd);
    assert_eq!(r.0, code, "sent {cmd:?}: got {r:?}, expected {code}");
    r.1
}

/// Starts a transfer over EPSV: connects, sends `cmd` (bytes), expects 150.
#[track_caller]
pub(crate) fn begin(ftp: &mut Ftp, cmd: &[u8]) -> TcpStream {
    let data = ftp.pasv_connect();
    let r = raw_cmd(ftp, cmd);
    assert_eq!(r.0, 150, "sent {:?}: got {r:?}, expected 150", String::from_utf8_lossy(cmd));
    data
}

/// A transfer command over EPSV with a byte argument; like `Ftp::retr_bytes`.
pub(crate) fn transfer_raw(ftp: &mut Ftp, cmd: &[u8]) -> Result<Vec<u8>, (u16, String)> {
    let mut data = ftp.pasv_connect();
    let start = raw_cmd(ftp, cmd);
    if start.0 != 150 && start.0 != 125 {
        return Err(start);
    }
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap_or_else(|e| panic!("{}: reading data: {e}", String::from_utf8_lossy(cmd)));
    let done = ftp.reply();
    if done.0 != 226 {
        return Err(done);
    }
    Ok(bytes)
}

/// Reads exactly `n` bytes (panics on EOF or timeout).
pub(crate) fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).unwrap_or_else(|e| panic!("reading {n} data bytes: {e}"));
    buf
}

/// Reads until EOF; returns the bytes and whether it ended in EOF (a reset
/// ends it too, returning false).
pub(crate) fn drain(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0; 256 * KIB];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (out, false),
        }
    }
}

/// Splits listing data into lines, asserting each ends with CRLF and that
/// no bare CR or LF appears anywhere else.
#[track_caller]
pub(crate) fn crlf_lines(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("listing ends without a line end: {:?}", String::from_utf8_lossy(rest)));
        let line = &rest[..nl];
        assert!(line.last() == Some(&b'\r'), "line without CRLF: {:?}", String::from_utf8_lossy(line));
        let line = &line[..line.len() - 1];
        assert!(!line.contains(&b'\r'), "bare CR inside a listing line: {:?}", String::from_utf8_lossy(line));
        out.push(line.to_vec());
        rest = &rest[nl + 1..];
    }
    out
}

/// One `ls -l` line: the eight fields before the name, and the name.
#[derive(Debug)]
pub(crate) struct LsLine {
    pub fields: Vec<String>,
    pub name: Vec<u8>,
}

#[track_caller]
pub(crate) fn parse_ls(line: &[u8]) -> LsLine {
    let mut fields = Vec::new();
    let mut i = 0;
    for _ in 0..8 {
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
        assert!(i > start, "short LIST line: {:?}", String::from_utf8_lossy(line));
        fields.push(String::from_utf8_lossy(&line[start..i]).into_owned());
    }
    assert!(i < line.len() && line[i] == b' ', "LIST line without a name: {:?}", String::from_utf8_lossy(line));
    let name = line[i + 1..].to_vec();
    let mode = fields[0].as_bytes();
    assert!(
        mode.len() == 10 && b"-dlcbps".contains(&mode[0]),
        "bad mode field in LIST line: {:?}",
        String::from_utf8_lossy(line)
    );
    LsLine { fields, name }
}

/// The names of a LIST output, in order.
pub(crate) fn ls_names(data: &[u8]) -> Vec<Vec<u8>> {
    crlf_lines(data).iter().map(|l| parse_ls(l).name).collect()
}

/// The port of a `229 ... (|||port|)` reply.
#[track_caller]
pub(crate) fn epsv_port(text: &str) -> u16 {
    text.split_once("(|||")
        .and_then(|(_, r)| r.split_once("|)"))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("EPSV reply without (|||port|): {text:?}"))
}

/// The address of a `227 ... (h1,h2,h3,h4,p1,p2)` reply.
#[track_caller]
pub(crate) fn pasv_addr(text: &str) -> SocketAddr {
    let inner = text
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("PASV reply without (h,h,h,h,p,p): {text:?}"));
    let n: Vec<u8> =
        inner.split(',').map(|s| s.trim().parse().unwrap_or_else(|_| panic!("bad PASV number in {text:?}"))).collect();
    assert_eq!(n.len(), 6, "PASV reply: {text:?}");
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    SocketAddr::new(ip.into(), u16::from(n[4]) << 8 | u16::from(n[5]))
}

/// Connects a data socket with the usual timeouts.
pub(crate) fn data_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, SHORT).unwrap_or_else(|e| panic!("connecting data to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

/// Accepts one connection within `within`, or panics.
pub(crate) fn accept_within(l: &TcpListener, within: Duration) -> TcpStream {
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + within;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no active data connection within {within:?}: {e}"),
        }
    }
}

/// Sends `bytes` as TCP urgent data (MSG_OOB), as BSD ftp and ftplib do.
pub(crate) fn send_urgent(stream: &TcpStream, bytes: &[u8]) {
    // SAFETY: the fd stays open for the life of `stream`; the pointer and
    // length describe the live slice `bytes`.
    let n = unsafe { libc::send(stream.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_OOB) };
    assert_eq!(n, bytes.len() as isize, "send(MSG_OOB): {}", io::Error::last_os_error());
}

/// A control client that exposes its socket (for urgent data, no-delay
/// trickling, and connections the server may refuse with 421).
pub(crate) struct Ctl {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Ctl {
    /// Connects without reading anything.
    pub(crate) fn raw(addr: SocketAddr) -> Ctl {
        let stream = TcpStream::connect_timeout(&addr, SHORT).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Ctl { stream, reader }
    }

    /// Connects and expects the 220 greeting.
    pub(crate) fn open(addr: SocketAddr) -> Ctl {
        let mut c = Ctl::raw(addr);
        let g = c.reply().expect("greeting");
        assert_eq!(g.0, 220, "greeting: {g:?}");
        c
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("sending {bytes:?}: {e}"));
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.reader).take(64 * 1024).read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.last() != Some(&b'\n') {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "unterminated reply line"));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// One reply, multi-line replies joined with '\n' (like `Ftp::reply`).
    pub(crate) fn reply(&mut self) -> io::Result<(u16, String)> {
        let first = self.line()?;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {first:?}")))?;
        let mut text = first.get(4..).unwrap_or("").to_string();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let l = self.line()?;
                text.push('\n');
                text.push_str(&l);
                if l.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, text))
    }

    #[track_caller]
    pub(crate) fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply().unwrap_or_else(|e| panic!("reply to {line:?}: {e}"))
    }

    pub(crate) fn login(&mut self) {
        assert_eq!(self.cmd("USER anonymous").0, 331);
        assert_eq!(self.cmd("PASS it@example.com").0, 230);
        assert_eq!(self.cmd("TYPE I").0, 200);
    }

    /// EPSV and a connection to the port it names.
    pub(crate) fn epsv_connect(&mut self) -> TcpStream {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "EPSV: {text:?}");
        let addr = SocketAddr::new(self.stream.peer_addr().expect("peer").ip(), epsv_port(&text));
        data_connect(addr)
    }
}

/// UTC calendar parts of a Unix time: (year, month 1-12, day, hour, min, sec).
pub(crate) fn utc(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, (rem / 3600) as u32, (rem / 60 % 60) as u32, (rem % 60) as u32)
}

pub(crate) fn set_mtime(path: &Path, secs: u64) {
    let f = File::options().write(true).open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("set_modified {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// Login and session basics
// ---------------------------------------------------------------------------

#[test]
fn user_pass_anonymous_and_ftp_log_in() {
    let f = fx("proto-login", &[], |_| {});
    for name in ["anonymous", "ftp", "ANONYMOUS"] {
        let mut ftp = Ftp::connect(f.server.addr);
        expect(&mut ftp, &format!("USER {name}"), 331);
        expect(&mut ftp, "PASS someone@example.com", 230);
        expect(&mut ftp, "NOOP", 200);
    }
}

#[test]
fn non_anonymous_user_gets_530() {
    let f = fx("proto-user530", &[], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    expect(&mut ftp, "USER bob", 530);
    // Still not logged in: PASS has no USER to complete.
    expect(&mut ftp, "PASS secret", 503);
    expect(&mut ftp, "PWD", 530);
}

#[test]
fn pass_before_user_is_bad_sequence_503() {
    let f = fx("proto-pass503", &[], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    expect(&mut ftp, "PASS x@y", 503);
    expect(&mut ftp, "USER anonymous", 331);
    expect(&mut ftp, "PASS x@y", 230);
}

#[test]
fn commands_before_login_get_530() {
    let f = fx("proto-prelogin", &[], |r| put(r, "f.txt", b"hello"));
    let mut ftp = Ftp::connect(f.server.addr);
    for cmd in [
        "PWD",
        "XPWD",
        "CWD /",
        "CDUP",
        "LIST",
        "NLST",
        "MLSD",
        "MLST f.txt",
        "RETR f.txt",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,4,1",
        "SIZE f.txt",
        "MDTM f.txt",
        "TYPE I",
        "REST 0",
        "STAT",
        "STOR x",
        "DELE f.txt",
    ] {
        expect(&mut ftp, cmd, 530);
    }
    // After USER but before PASS it is still 530.
    expect(&mut ftp, "USER anonymous", 331);
    expect(&mut ftp, "RETR f.txt", 530);
    expect(&mut ftp, "PASS a@b", 230);
    expect(&mut ftp, "PWD", 257);
}

#[test]
fn acct_is_502() {
    let f = fx("proto-acct", &[], |_| {});
    let mut ftp = login(&f.server);
    expect(&mut ftp, "ACCT billing", 502);
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn quit_answers_221_and_closes() {
    let f = fx("proto-quit", &[], |_| {});
    let mut ftp = login(&f.server);
    expect(&mut ftp, "QUIT", 221);
    let after = ftp.try_reply();
    assert!(
        matches!(&after, Err(e) if e.kind() == io::ErrorKind::UnexpectedEof),
        "after 221 the server must close the connection; got {after:?}"
    );
}

#[test]
fn syst_215_noop_200_allo_202_site_help_214() {
    let f = fx("proto-misc", &[], |_| {});
    let mut ftp = login(&f.server);
    let syst = expect(&mut ftp, "SYST", 215);
    assert!(syst.starts_with("UNIX Type: L8"), "SYST: {syst:?}");
    expect(&mut ftp, "NOOP", 200);
    expect(&mut ftp, "ALLO 1000", 202);
    let site = expect(&mut ftp, "SITE HELP", 214);
    assert!(site.contains("HELP"), "SITE HELP: {site:?}");
}

// ---------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------

#[test]
fn cwd_xcwd_cdup_xcup_pwd_xpwd() {
    let f = fx("proto-cwd", &[], |r| put(r, "a/b/f.txt", b"x"));
    let mut ftp = login(&f.server);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/\""));
    expect(&mut ftp, "CWD a", 250);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/a\""));
    expect(&mut ftp, "XCWD b", 250);
    assert!(expect(&mut ftp, "XPWD", 257).starts_with("\"/a/b\""));
    // CDUP's replies are "identical to the reply codes of CWD" (RFC 959 4.1.1).
    expect(&mut ftp, "CDUP", 250);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/a\""));
    expect(&mut ftp, "XCUP", 250);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/\""));
    expect(&mut ftp, "CWD /a/b", 250);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/a/b\""));
    expect(&mut ftp, "CWD /missing", 550);
    expect(&mut ftp, "CWD /a/b/f.txt", 550);
    // A failed CWD leaves the directory unchanged.
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/a/b\""));
}

#[test]
fn pwd_doubles_embedded_quotes() {
    let f = fx("proto-pwdquote", &[], |r| fs::create_dir(r.join("a\"b")).expect("mkdir"));
    let mut ftp = login(&f.server);
    expect(&mut ftp, "CWD a\"b", 250);
    let pwd = expect(&mut ftp, "PWD", 257);
    assert!(pwd.starts_with("\"/a\"\"b\" "), "PWD in a\"b: {pwd:?}, expected \"/a\"\"b\" ...");
    let xpwd = expect(&mut ftp, "XPWD", 257);
    assert!(xpwd.starts_with("\"/a\"\"b\" "), "XPWD: {xpwd:?}");
}

// ---------------------------------------------------------------------------
// TYPE, STRU, MODE
// ---------------------------------------------------------------------------

#[test]
fn type_stru_mode() {
    let f = fx("proto-type", &[], |_| {});
    let mut ftp = login(&f.server);
    for t in ["A", "I", "A N", "L 8", "a", "i"] {
        expect(&mut ftp, &format!("TYPE {t}"), 200);
    }
    expect(&mut ftp, "TYPE E", 504);
    expect(&mut ftp, "STRU F", 200);
    expect(&mut ftp, "STRU R", 504);
    expect(&mut ftp, "MODE S", 200);
    expect(&mut ftp, "MODE B", 504);
}

#[test]
fn type_a_retr_converts_lf_to_crlf() {
    let f = fx("proto-ascii", &[], |r| put(r, "t.txt", b"one\ntwo\r\nthree\n"));
    let mut ftp = login(&f.server);
    expect(&mut ftp, "TYPE A", 200);
    let got = ftp.retr_bytes("t.txt").expect("RETR in TYPE A");
    assert_eq!(got, b"one\r\ntwo\r\nthree\r\n", "ASCII RETR");
    expect(&mut ftp, "TYPE I", 200);
    assert_eq!(ftp.retr_bytes("t.txt").expect("RETR"), b"one\ntwo\r\nthree\n");
}

// ---------------------------------------------------------------------------
// Data connections: PASV, EPSV, PORT, EPRT
// ---------------------------------------------------------------------------

#[test]
fn pasv_227_and_retr() {
    let body = pattern(1, 100_000);
    let f = fx("proto-pasv", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);
    let text = expect(&mut ftp, "PASV", 227);
    let addr = pasv_addr(&text);
    assert_eq!(addr.ip(), f.server.addr.ip(), "PASV announces the control address: {text:?}");
    let mut data = data_connect(addr);
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, eof) = drain(&mut data);
    assert!(eof);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body);
}

#[test]
fn port_and_eprt_ipv4_active_transfers() {
    let body = pattern(2, 70_000);
    let f = fx("proto-port", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);

    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    expect(&mut ftp, &format!("PORT 127,0,0,1,{},{}", p >> 8, p & 255), 200);
    expect(&mut ftp, "RETR f.bin", 150);
    let mut data = accept_within(&l, SHORT);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "PORT transfer");

    expect(&mut ftp, &format!("EPRT |1|127.0.0.1|{p}|"), 200);
    expect(&mut ftp, "RETR f.bin", 150);
    let mut data = accept_within(&l, SHORT);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "EPRT transfer");
}

#[test]
fn ipv6_eprt_epsv_and_pasv_refused() {
    let body = pattern(3, 50_000);
    let f = fx("proto-v6", &["--listen", "[::1]:0"], |r| put(r, "f.bin", &body));
    assert!(f.server.addr.is_ipv6());
    let mut ftp = login(&f.server);

    let l = TcpListener::bind("[::1]:0").expect("bind [::1]");
    let p = l.local_addr().expect("addr").port();
    expect(&mut ftp, &format!("EPRT |2|::1|{p}|"), 200);
    expect(&mut ftp, "RETR f.bin", 150);
    let mut data = accept_within(&l, SHORT);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "EPRT |2| transfer");

    let pasv = ftp.cmd("PASV");
    assert!((500..600).contains(&pasv.0), "PASV on IPv6 must be refused with 5xx: {pasv:?}");
    assert_eq!(ftp.retr_bytes("f.bin").expect("EPSV on IPv6"), body);
}

#[test]
fn epsv_229_and_epsv_all_refuses_other_setups() {
    let f = fx("proto-epsvall", &[], |r| put(r, "f.txt", b"payload"));
    let mut ftp = login(&f.server);
    let text = expect(&mut ftp, "EPSV", 229);
    epsv_port(&text);
    expect(&mut ftp, "EPSV 1", 229);
    expect(&mut ftp, "EPSV ALL", 200);
    expect(&mut ftp, "PASV", 503);
    expect(&mut ftp, "PORT 127,0,0,1,200,1", 503);
    expect(&mut ftp, "EPRT |1|127.0.0.1|51201|", 503);
    assert_eq!(ftp.retr_bytes("f.txt").expect("EPSV after EPSV ALL"), b"payload");
}

#[test]
fn passive_connect_before_and_after_retr() {
    let body = pattern(4, 300_000);
    let f = fx("proto-order", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);

    // Connect first, RETR a while later.
    let mut data = ftp.pasv_connect();
    thread::sleep(Duration::from_millis(150));
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "connect-then-RETR");

    // RETR first, connect a while later.
    let port = epsv_port(&expect(&mut ftp, "EPSV", 229));
    ftp.send("RETR f.bin");
    thread::sleep(Duration::from_millis(150));
    let mut data = data_connect(SocketAddr::new(f.server.addr.ip(), port));
    assert_eq!(ftp.reply().0, 150);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "RETR-then-connect");
}

#[test]
fn new_pasv_closes_previous_listener() {
    // Passive ports below the kernel's ephemeral range: no connection of a
    // parallel test can take the closed port before we probe it.
    let f = fx("proto-pasvclose", &["--pasv-ports", "23100-23199"], |r| put(r, "f.txt", b"abc"));
    let mut ftp = login(&f.server);
    let old = pasv_addr(&expect(&mut ftp, "PASV", 227));
    let mut new = pasv_addr(&expect(&mut ftp, "PASV", 227));
    // The kernel may hand out the same port again; ask until it does not.
    for _ in 0..5 {
        if new.port() != old.port() {
            break;
        }
        new = pasv_addr(&expect(&mut ftp, "PASV", 227));
    }
    assert_ne!(old.port(), new.port());
    let r = TcpStream::connect_timeout(&old, SHORT);
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "the first PASV port {old} must be closed after a second PASV; connect gave {r:?}"
    );
    // Same with EPSV replacing PASV.
    let pasv = pasv_addr(&expect(&mut ftp, "PASV", 227));
    let mut data = data_connect_after_epsv(&mut ftp, pasv);
    expect(&mut ftp, "RETR f.txt", 150);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, b"abc");
}

/// Sends EPSV (which must close the PASV listener at `old`) and connects to
/// the new port.
fn data_connect_after_epsv(ftp: &mut Ftp, old: SocketAddr) -> TcpStream {
    let port = epsv_port(&expect(ftp, "EPSV", 229));
    if port != old.port() {
        let r = TcpStream::connect_timeout(&old, SHORT);
        assert!(
            matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "PASV port {old} must be closed by EPSV; connect gave {r:?}"
        );
    }
    data_connect(SocketAddr::new(old.ip(), port))
}

// ---------------------------------------------------------------------------
// RETR, REST, ABOR, STAT and NOOP during a transfer
// ---------------------------------------------------------------------------

#[test]
fn retr_missing_file_550_and_session_continues() {
    let f = fx("proto-retr550", &[], |r| put(r, "d/f.txt", b"x"));
    let mut ftp = login(&f.server);
    let r = ftp.retr_bytes("nope.txt");
    assert!(matches!(&r, Err((550, _))), "RETR of a missing file: {r:?}");
    let r = ftp.retr_bytes("d");
    assert!(matches!(&r, Err((550, _))), "RETR of a directory: {r:?}");
    assert_eq!(ftp.retr_bytes("d/f.txt").expect("RETR"), b"x");
}

const GIB: u64 = 1 << 30;

fn marker(off: u64) -> Vec<u8> {
    format!("<<mark@{off:020}>>").into_bytes()
}

#[test]
fn rest_beyond_2_and_4_gib_and_10_gb_on_a_sparse_file() {
    let offsets = [1u64 << 31, 1u64 << 32, 10_000_000_000];
    let len = 12 * GIB;
    let f = fx("proto-rest", &[], |r| {
        let file = sparse(&r.join("huge.bin"), len);
        for off in offsets {
            file.write_all_at(&marker(off), off).expect("write_at");
        }
    });
    let mut ftp = login(&f.server);
    assert_eq!(expect(&mut ftp, "SIZE huge.bin", 213), len.to_string());
    for (i, off) in offsets.into_iter().enumerate() {
        let mut data = ftp.pasv_connect();
        expect(&mut ftp, &format!("REST {off}"), 350);
        expect(&mut ftp, "RETR huge.bin", 150);
        let want = marker(off);
        let got = read_n(&mut data, want.len());
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "first bytes after REST {off}");
        if i % 2 == 0 {
            expect(&mut ftp, "ABOR", 426);
            assert_eq!(ftp.reply().0, 226, "ABOR's second reply");
        } else {
            drop(data);
            let r = ftp.reply();
            assert_eq!(r.0, 426, "closing the data connection mid-RETR: {r:?}");
        }
        expect(&mut ftp, "NOOP", 200);
    }
    // Past the end: RETR fails with 554, the session goes on.
    let _data = ftp.pasv_connect();
    expect(&mut ftp, &format!("REST {}", len + 1), 350);
    expect(&mut ftp, "RETR huge.bin", 554);
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn rest_resumes_a_small_file_exactly() {
    let body = pattern(5, 10_000);
    let f = fx("proto-rest-small", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);
    let mut data = ftp.pasv_connect();
    expect(&mut ftp, "REST 1234", 350);
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, &body[1234..]);
    // The offset was used up: the next RETR starts at 0.
    assert_eq!(ftp.retr_bytes("f.bin").expect("RETR"), body);
}

/// A root with a 64 MiB sparse file `big.bin`: too big to fit in socket
/// buffers, so a transfer of it is still running while the test does not read.
fn big_fx(name: &str, args: &[&str]) -> Fx {
    fx(name, args, |r| {
        sparse(&r.join("big.bin"), 64 * MIB);
        put(r, "small.txt", b"small file\n");
    })
}

/// ABOR (sent by `send_abor`) during a running RETR: 426 then 226, the data
/// connection is closed, the session goes on.
fn abor_during_transfer(name: &str, send_abor: impl FnOnce(&mut Ctl)) {
    let f = big_fx(name, &[]);
    let mut c = Ctl::open(f.server.addr);
    c.login();
    let mut data = c.epsv_connect();
    assert_eq!(c.cmd("RETR big.bin").0, 150);
    read_n(&mut data, 16 * KIB);
    send_abor(&mut c);
    let first = c.reply().expect("first reply to ABOR");
    assert_eq!(first.0, 426, "first reply to ABOR during a transfer: {first:?}");
    let second = c.reply().expect("second reply to ABOR");
    assert_eq!(second.0, 226, "second reply to ABOR: {second:?}");
    let (rest, eof) = drain(&mut data);
    assert!(eof, "the data connection must be closed after ABOR");
    assert!((rest.len() as u64) < 64 * MIB - 16 * KIB as u64, "ABOR did not stop the transfer");
    assert_eq!(c.cmd("NOOP").0, 200);
    assert_eq!(c.cmd("SIZE small.txt"), (213, "11".into()));
}

#[test]
fn abor_plain_during_transfer_426_then_226() {
    abor_during_transfer("proto-abor", |c| c.send(b"ABOR\r\n"));
}

#[test]
fn abor_with_telnet_ip_dm_prefix() {
    abor_during_transfer("proto-abor-iac", |c| c.send(b"\xff\xf4\xff\xf2ABOR\r\n"));
}

#[test]
fn abor_as_urgent_data_bsd_synch() {
    // BSD ftp: IAC IP IAC as urgent data, then DM and the command inline.
    abor_during_transfer("proto-abor-oob", |c| {
        send_urgent(&c.stream, b"\xff\xf4\xff");
        c.send(b"\xf2ABOR\r\n");
    });
}

#[test]
fn abor_as_urgent_data_ftplib_style() {
    // Python's ftplib.abort(): the whole line with MSG_OOB (the LF is the
    // urgent byte).
    abor_during_transfer("proto-abor-ftplib", |c| send_urgent(&c.stream, b"ABOR\r\n"));
}

#[test]
fn abor_without_transfer_is_225_or_226() {
    let f = fx("proto-abor-idle", &[], |_| {});
    let mut ftp = login(&f.server);
    let r = ftp.cmd("ABOR");
    assert!(r.0 == 225 || r.0 == 226, "ABOR with no transfer: {r:?}");
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn stat_and_noop_during_a_transfer() {
    let f = big_fx("proto-stat-xfer", &[]);
    let mut ftp = login(&f.server);
    let mut data = begin(&mut ftp, b"RETR big.bin");
    read_n(&mut data, 64 * KIB);
    expect(&mut ftp, "NOOP", 200);
    let stat = expect(&mut ftp, "STAT", 213);
    assert!(
        stat.contains(&(64 * MIB).to_string()),
        "STAT during RETR must show progress of the 67108864-byte transfer: {stat:?}"
    );
    let (got, eof) = drain(&mut data);
    assert!(eof);
    assert_eq!(got.len() as u64 + 64 * KIB as u64, 64 * MIB);
    assert_eq!(ftp.reply().0, 226);
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn stat_without_and_with_a_path() {
    let f = fx("proto-stat", &[], |r| {
        put(r, "d/one.txt", b"1");
        put(r, "d/two.txt", b"22");
    });
    let mut ftp = login(&f.server);
    let s = expect(&mut ftp, "STAT", 211);
    assert!(s.lines().count() >= 3, "STAT is a multi-line 211: {s:?}");
    let s = expect(&mut ftp, "STAT d", 213);
    let body: Vec<&str> = s.lines().skip(1).filter(|l| !l.starts_with("213")).collect();
    let mut names: Vec<Vec<u8>> = body.iter().map(|l| parse_ls(l.trim_start().as_bytes()).name).collect();
    names.sort();
    assert_eq!(names, [b"one.txt".to_vec(), b"two.txt".to_vec()], "STAT d lists both files: {s:?}");
    let s = expect(&mut ftp, "STAT d/two.txt", 213);
    assert!(s.contains(" 2 ") && s.contains("two.txt"), "STAT of a file: {s:?}");
    expect(&mut ftp, "STAT nothing-here", 550);
}

// ---------------------------------------------------------------------------
// HELP, FEAT, OPTS, write commands
// ---------------------------------------------------------------------------

#[test]
fn help_lists_offered_commands_only() {
    let f = fx("proto-help", &[], |_| {});
    let mut ftp = login(&f.server);
    let h = expect(&mut ftp, "HELP", 214);
    let words: Vec<&str> = h.lines().skip(1).flat_map(str::split_whitespace).collect();
    // Uploads work for accounts (issue 4), so they are offered; TLS is not yet.
    for w in ["RETR", "MLSD", "EPSV", "LIST", "NLST", "SIZE", "MDTM", "FEAT", "STOR", "DELE", "MKD", "APPE", "MFMT"] {
        assert!(words.contains(&w), "HELP must list {w}: {h:?}");
    }
    for w in ["AUTH", "PBSZ", "PROT", "CCC"] {
        assert!(!words.contains(&w), "HELP must not list {w}: {h:?}");
    }
    expect(&mut ftp, "HELP RETR", 214);
}

#[test]
fn feat_lists_the_extensions() {
    let f = fx("proto-feat", &[], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    let text = expect(&mut ftp, "FEAT", 211);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "FEAT is multi-line: {text:?}");
    let feats: Vec<&str> = lines[1..lines.len() - 1].to_vec();
    for l in &feats {
        assert!(l.starts_with(' '), "RFC 2389: feature lines start with a space: {l:?}");
    }
    let has = |name: &str| feats.iter().any(|l| l.trim() == name || l.trim().starts_with(&format!("{name} ")));
    for name in ["EPRT", "EPSV", "MDTM", "MLST", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"] {
        assert!(has(name), "FEAT must list {name}: {text:?}");
    }
    expect(&mut ftp, "OPTS UTF8 ON", 200);
}

#[test]
fn write_commands_are_550_for_anonymous() {
    let f = fx("proto-write", &[], |r| put(r, "f.txt", b"keep"));
    let mut ftp = login(&f.server);
    let _data = ftp.pasv_connect();
    for cmd in [
        "STOR new.txt",
        "APPE f.txt",
        "STOU",
        "STOU x.txt",
        "DELE f.txt",
        "MKD newdir",
        "XMKD newdir2",
        "RMD d",
        "XRMD d",
        "RNFR f.txt",
        "SITE CHMOD 777 f.txt",
    ] {
        let r = ftp.cmd(cmd);
        assert_eq!(r.0, 550, "sent {cmd:?}: got {r:?}; a read-only refusal is 550 (never 502)");
    }
    let mut names: Vec<_> = fs::read_dir(&f.root).expect("read_dir").map(|e| e.expect("entry").file_name()).collect();
    names.sort();
    assert_eq!(names, vec!["f.txt"], "nothing was written");
    assert_eq!(fs::read(f.root.join("f.txt")).expect("read"), b"keep");
    expect(&mut ftp, "NOOP", 200);
}

// ---------------------------------------------------------------------------
// SIZE, MDTM, MLST, MLSD
// ---------------------------------------------------------------------------

#[test]
fn size_213_from_metadata_also_in_type_a() {
    let f = fx("proto-size", &[], |r| {
        put(r, "lf.txt", b"a\nb\nc\n");
        fs::create_dir(r.join("d")).expect("mkdir");
    });
    let mut ftp = login(&f.server);
    assert_eq!(expect(&mut ftp, "SIZE lf.txt", 213), "6");
    expect(&mut ftp, "TYPE A", 200);
    assert_eq!(expect(&mut ftp, "SIZE lf.txt", 213), "6");
    expect(&mut ftp, "SIZE d", 550);
    expect(&mut ftp, "SIZE missing", 550);
}

/// 2021-03-04 05:06:07 UTC.
const KNOWN_MTIME: u64 = 1_614_834_367;

#[test]
fn mdtm_is_utc_yyyymmddhhmmss() {
    let f = fx("proto-mdtm", &[], |r| {
        put(r, "f.txt", b"x");
        set_mtime(&r.join("f.txt"), KNOWN_MTIME);
    });
    let mut ftp = login(&f.server);
    assert_eq!(ftp.cmd("MDTM f.txt"), (213, "20210304050607".to_string()));
    expect(&mut ftp, "MDTM missing", 550);
}

fn facts(line: &str) -> (Vec<(String, String)>, String) {
    let (facts, name) = line
        .split_once("; ")
        .map(|(f, n)| (f, n.to_string()))
        .unwrap_or_else(|| panic!("no '; ' between facts and name: {line:?}"));
    let facts = facts
        .split(';')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad fact {kv:?} in {line:?}"));
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    (facts, name)
}

fn fact<'a>(facts: &'a [(String, String)], key: &str) -> Option<&'a str> {
    facts.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn mlst_250_with_all_facts() {
    let f = fx("proto-mlst", &[], |r| {
        put(r, "dir/f.txt", b"hello");
        let p = r.join("dir/f.txt");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        set_mtime(&p, KNOWN_MTIME);
    });
    let mut ftp = login(&f.server);
    let text = expect(&mut ftp, "MLST dir/f.txt", 250);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "MLST: opening, one fact line, closing: {text:?}");
    assert!(lines[1].starts_with(' '), "RFC 3659: the fact line starts with a space: {text:?}");
    let (fs_, name) = facts(&lines[1][1..]);
    assert_eq!(name, "/dir/f.txt");
    assert_eq!(fact(&fs_, "type"), Some("file"), "{text:?}");
    assert_eq!(fact(&fs_, "size"), Some("5"), "{text:?}");
    assert_eq!(fact(&fs_, "modify"), Some("20210304050607"), "{text:?}");
    assert_eq!(fact(&fs_, "perm"), Some("r"), "{text:?}");
    assert!(fact(&fs_, "unique").is_some_and(|u| !u.is_empty()), "{text:?}");
    assert_eq!(fact(&fs_, "unix.mode"), Some("0644"), "{text:?}");
    assert!(lines[2].starts_with("250"), "{text:?}");

    let text = expect(&mut ftp, "MLST dir", 250);
    assert!(text.contains("type=dir;"), "MLST of a directory: {text:?}");
    let text = expect(&mut ftp, "MLST", 250);
    assert!(text.contains("type=dir;"), "MLST of the cwd: {text:?}");
    expect(&mut ftp, "MLST missing", 550);
}

#[test]
fn mlsd_facts_per_entry() {
    let f = fx("proto-mlsd", &[], |r| {
        put(r, "a.txt", b"aaa");
        put(r, "b.bin", &[0u8; 1000]);
        put(r, ".hidden", b"h");
        fs::create_dir(r.join("sub")).expect("mkdir");
        set_mtime(&r.join("a.txt"), KNOWN_MTIME);
    });
    let mut ftp = login(&f.server);
    let data = ftp.list("MLSD");
    let mut seen = Vec::new();
    let mut uniques = Vec::new();
    for line in crlf_lines(&data) {
        let line = String::from_utf8(line).expect("utf8");
        let (fs_, name) = facts(&line);
        let t = fact(&fs_, "type").unwrap_or_else(|| panic!("no type: {line:?}"));
        match name.as_str() {
            "a.txt" => {
                assert_eq!((t, fact(&fs_, "size")), ("file", Some("3")), "{line:?}");
                assert_eq!(fact(&fs_, "modify"), Some("20210304050607"), "{line:?}");
                assert_eq!(fact(&fs_, "perm"), Some("r"), "{line:?}");
            }
            "b.bin" => assert_eq!((t, fact(&fs_, "size")), ("file", Some("1000")), "{line:?}"),
            "sub" => {
                assert_eq!(t, "dir", "{line:?}");
                assert_eq!(fact(&fs_, "perm"), Some("el"), "{line:?}");
            }
            other => panic!("unexpected MLSD entry {other:?}: {line:?}"),
        }
        assert!(fact(&fs_, "modify").is_some_and(|m| m.len() == 14), "{line:?}");
        assert!(fact(&fs_, "unix.mode").is_some(), "{line:?}");
        uniques.push(fact(&fs_, "unique").expect("unique").to_string());
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["a.txt", "b.bin", "sub"]);
    uniques.sort();
    uniques.dedup();
    assert_eq!(uniques.len(), 3, "unique facts differ per entry");
    let r = transfer_raw(&mut ftp, b"MLSD a.txt");
    assert!(matches!(&r, Err((501, _))), "MLSD of a file: {r:?}");
}

// ---------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------

#[test]
fn list_and_nlst_basics() {
    let f = fx("proto-list", &[], |r| {
        put(r, "one.txt", b"1");
        put(r, "two.bin", &[7u8; 1234]);
        put(r, "sub/inner.txt", b"i");
    });
    let mut ftp = login(&f.server);
    let data = ftp.list("LIST");
    let lines: Vec<LsLine> = crlf_lines(&data).iter().map(|l| parse_ls(l)).collect();
    let mut names: Vec<&[u8]> = lines.iter().map(|l| l.name.as_slice()).collect();
    names.sort();
    assert_eq!(names, [&b"one.txt"[..], b"sub", b"two.bin"]);
    let two = lines.iter().find(|l| l.name == b"two.bin").expect("two.bin");
    assert_eq!(two.fields[4], "1234", "size column: {two:?}");
    assert!(two.fields[0].starts_with('-'));
    let sub = lines.iter().find(|l| l.name == b"sub").expect("sub");
    assert!(sub.fields[0].starts_with('d'), "{sub:?}");

    let mut nlst = crlf_lines(&ftp.list("NLST"));
    nlst.sort();
    assert_eq!(nlst, [b"one.txt".to_vec(), b"sub".to_vec(), b"two.bin".to_vec()]);
    assert_eq!(crlf_lines(&ftp.list("NLST sub")), [b"inner.txt".to_vec()]);
    assert_eq!(ls_names(&ftp.list("LIST sub")), [b"inner.txt".to_vec()]);
    // LIST of a single file.
    assert_eq!(ls_names(&ftp.list("LIST two.bin")), [b"two.bin".to_vec()]);
    let r = ftp.retr_bytes("sub/missing");
    assert!(matches!(&r, Err((550, _))), "{r:?}");
    let r = transfer_raw(&mut ftp, b"LIST missing-dir");
    assert!(matches!(&r, Err((550, _))), "LIST of a missing path: {r:?}");
}

#[test]
fn list_dash_a_shows_dot_files_plain_list_hides_them() {
    // Dot files are unreachable unless served; served, they are still hidden from a plain LIST.
    let f = fx("proto-lista", &["--serve-dotfiles"], |r| {
        put(r, "shown.txt", b"1");
        put(r, ".hidden", b"2");
    });
    let mut ftp = login(&f.server);
    assert_eq!(ls_names(&ftp.list("LIST")), [b"shown.txt".to_vec()]);
    for cmd in ["LIST -a", "LIST -la", "LIST -al", "LIST -A"] {
        let mut names = ls_names(&ftp.list(cmd));
        names.sort();
        assert_eq!(names, [b".hidden".to_vec(), b"shown.txt".to_vec()], "{cmd}");
    }
    assert_eq!(ls_names(&ftp.list("LIST -l")), [b"shown.txt".to_vec()]);
    // With --serve-dotfiles a dot file is hidden, not forbidden.
    assert_eq!(ftp.retr_bytes(".hidden").expect("RETR .hidden"), b"2");
}

#[test]
fn nlst_with_a_glob() {
    let f = fx("proto-nlstglob", &[], |r| {
        for n in ["a.txt", "b.txt", "c.bin", "txt", "d.txt.gz"] {
            put(r, n, b"x");
        }
        put(r, "sub/e.txt", b"x");
    });
    let mut ftp = login(&f.server);
    let mut names = crlf_lines(&ftp.list("NLST *.txt"));
    names.sort();
    assert_eq!(names, [b"a.txt".to_vec(), b"b.txt".to_vec()]);
    let names = crlf_lines(&ftp.list("NLST ?.bin"));
    assert_eq!(names, [b"c.bin".to_vec()]);
    let names = ls_names(&ftp.list("LIST *.gz"));
    assert_eq!(names, [b"d.txt.gz".to_vec()]);
}

#[test]
fn utf8_and_latin1_names_list_and_download() {
    let f = fx("proto-names", &[], |r| {
        put(r, "日本語.txt", b"nihongo");
        put(r, "Ω dir/ü.txt", b"umlaut");
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.bin");
        fs::write(r.join(latin1), b"latin-1 name").expect("write latin-1");
    });
    let mut ftp = login(&f.server);
    expect(&mut ftp, "OPTS UTF8 ON", 200);
    let mut names = crlf_lines(&ftp.list("NLST"));
    names.sort();
    let mut want = vec![b"caf\xe9.bin".to_vec(), "Ω dir".as_bytes().to_vec(), "日本語.txt".as_bytes().to_vec()];
    want.sort();
    assert_eq!(names, want, "NLST sends names as stored");
    let mut names = ls_names(&ftp.list("LIST"));
    names.sort();
    assert_eq!(names, want, "LIST sends names as stored");
    assert_eq!(ftp.retr_bytes("日本語.txt").expect("RETR utf-8"), b"nihongo");
    assert_eq!(ftp.retr_bytes("Ω dir/ü.txt").expect("RETR utf-8 in dir"), b"umlaut");
    assert_eq!(transfer_raw(&mut ftp, b"RETR caf\xe9.bin").expect("RETR latin-1"), b"latin-1 name");
    assert_eq!(raw_cmd(&mut ftp, b"SIZE caf\xe9.bin"), (213, "12".into()));
    expect(&mut ftp, "CWD Ω dir", 250);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/Ω dir\""));
}

#[test]
fn name_with_newline_never_breaks_a_list_line() {
    let f = fx("proto-lfname", &[], |r| {
        put(r, "plain.txt", b"p");
        put(r, "evil\nname.txt", b"e");
        put(r, "cr\rname.txt", b"c");
        put(r, "-rw-r--r-- 1 x", b"fake");
    });
    let mut ftp = login(&f.server);
    for cmd in ["LIST", "LIST -la", "NLST", "MLSD"] {
        let data = ftp.list(cmd);
        let lines = crlf_lines(&data);
        assert_eq!(lines.len(), 4, "{cmd}: one line per entry: {:?}", String::from_utf8_lossy(&data));
        for l in &lines {
            if cmd.starts_with("LIST") {
                parse_ls(l);
            }
            assert!(!l.contains(&b'\n') && !l.contains(&b'\r'));
        }
    }
}

#[test]
fn list_of_20000_entries_is_complete() {
    const N: usize = 20_000;
    let f = fx("proto-20k", &[], |r| {
        let d = r.join("many");
        fs::create_dir(&d).expect("mkdir");
        for i in 0..N {
            File::create(d.join(format!("entry-{i:05}"))).expect("create");
        }
    });
    let mut ftp = login(&f.server);
    for cmd in ["LIST many", "NLST many"] {
        let data = ftp.list(cmd);
        let mut names = if cmd.starts_with("LIST") { ls_names(&data) } else { crlf_lines(&data) };
        assert_eq!(names.len(), N, "{cmd}: number of lines");
        names.sort();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(String::from_utf8_lossy(n), format!("entry-{i:05}"), "{cmd}: every name exactly once");
        }
    }
}

#[test]
fn list_dates_old_and_recent() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let recent = now - 2 * 3600;
    let f = fx("proto-dates", &[], |r| {
        put(r, "old.txt", b"o");
        put(r, "recent.txt", b"r");
        // 2001-01-12 12:00:00 UTC
        set_mtime(&r.join("old.txt"), 979_300_800);
        set_mtime(&r.join("recent.txt"), recent);
    });
    let mut ftp = login(&f.server);
    let data = ftp.list("LIST");
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains(" Jan 12  2001 old.txt\r\n"), "old file shows the year: {text:?}");
    let (_, month, day, hour, min, _) = utc(recent as i64);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let line = crlf_lines(&data)
        .into_iter()
        .map(|l| parse_ls(&l))
        .find(|l| l.name == b"recent.txt")
        .expect("recent.txt listed");
    assert_eq!(
        (line.fields[5].as_str(), line.fields[6].parse::<u32>().ok(), line.fields[7].as_str()),
        (MONTHS[month as usize - 1], Some(day), format!("{hour:02}:{min:02}").as_str()),
        "recent file shows HH:MM in UTC: {text:?}"
    );
}

#[test]
fn symlink_listed_with_its_target() {
    let f = fx("proto-symlink", &[], |r| {
        put(r, "target.txt", b"t");
        symlink("target.txt", r.join("link")).expect("symlink");
    });
    let mut ftp = login(&f.server);
    let data = ftp.list("LIST");
    let line = crlf_lines(&data)
        .into_iter()
        .map(|l| parse_ls(&l))
        .find(|l| l.name.starts_with(b"link"))
        .unwrap_or_else(|| panic!("link not listed: {:?}", String::from_utf8_lossy(&data)));
    assert_eq!(String::from_utf8_lossy(&line.name), "link -> target.txt");
    assert!(line.fields[0].starts_with('l'), "{line:?}");
    assert_eq!(ftp.retr_bytes("link").expect("RETR through an inside symlink"), b"t");
}

// ---------------------------------------------------------------------------
// Errors and malformed input
// ---------------------------------------------------------------------------

#[test]
fn unknown_500_bad_syntax_501() {
    let f = fx("proto-errors", &[], |_| {});
    let mut ftp = login(&f.server);
    expect(&mut ftp, "XYZZY", 500);
    expect(&mut ftp, "FOO bar", 500);
    expect(&mut ftp, "PORT 1,2,3", 501);
    expect(&mut ftp, "PORT 127,0,0,1,300,1", 501);
    expect(&mut ftp, "EPRT |1|not-an-ip|5000|", 501);
    expect(&mut ftp, "REST -5", 501);
    expect(&mut ftp, "REST abc", 501);
    expect(&mut ftp, "RETR", 501);
    expect(&mut ftp, "PASV extra", 501);
    expect(&mut ftp, "TYPE Q", 501);
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn line_over_8_kib_gets_500_and_session_continues() {
    let f = fx("proto-longline", &[], |_| {});
    let mut ftp = login(&f.server);
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 9000));
    line.extend_from_slice(b"\r\n");
    ftp.send_raw(&line);
    let r = ftp.reply();
    assert_eq!(r.0, 500, "a 9005-byte line: {r:?}");
    expect(&mut ftp, "NOOP", 200);
    expect(&mut ftp, "PWD", 257);
}

#[test]
fn nul_and_invalid_utf8_get_clean_errors() {
    let f = fx("proto-nul", &[], |r| put(r, "f.txt", b"x"));
    let mut ftp = login(&f.server);
    assert_eq!(raw_cmd(&mut ftp, b"NO\0OP").0, 500, "NUL inside the verb");
    assert_eq!(raw_cmd(&mut ftp, b"\xc3\x28\xa0\xe9").0, 500, "invalid UTF-8 verb");
    assert_eq!(raw_cmd(&mut ftp, b"SIZE f.txt\0.hidden").0, 501, "NUL inside a path");
    assert_eq!(raw_cmd(&mut ftp, b"CWD \xc3\x28").0, 550, "invalid UTF-8 path that does not exist");
    assert_eq!(raw_cmd(&mut ftp, b"\0").0, 500, "a lone NUL");
    expect(&mut ftp, "NOOP", 200);
    assert_eq!(ftp.retr_bytes("f.txt").expect("RETR after errors"), b"x");
}

#[test]
fn pipelined_commands_each_answered_in_order() {
    let f = fx("proto-pipeline", &[], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    ftp.send_raw(b"USER anonymous\r\nPASS a@b\r\nNOOP\r\nPWD\r\nSYST\r\n");
    let codes: Vec<u16> = (0..5).map(|_| ftp.reply().0).collect();
    assert_eq!(codes, [331, 230, 200, 257, 215]);
}
