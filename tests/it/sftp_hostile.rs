//! Hostile input against the running server's SFTP listener (fixtures in
//! `sftp.rs`): malformed, truncated and oversized SFTP packets after a real
//! login (paramiko writing raw bytes into the subsystem channel), a flood of
//! requests from a client that never reads (the server's memory stays
//! bounded), garbage instead of an SSH version line, a version line then
//! silence, and a huge SSH packet length. Each is bounded and leaves other
//! sessions (FTP and SFTP) unharmed. The login brute force is in
//! `sftp_more.rs`, a connection that says nothing at all in `sftp.rs`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::{UP_PASS, UP_USER, login_as};
use crate::sftp::{Fx, pattern, start};
use crate::sftp_interop::{paramiko, python, values};

/// The server's resident set, in KiB.
fn rss_kib(fx: &Fx) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", fx.server.pid())).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

/// Raw SFTP over a logged-in paramiko channel: `open_raw()` gives a channel
/// with the subsystem started; `pkt`, `sstr` build packets; `read_packet`
/// returns (type, body) or None at EOF, 'timeout' if nothing came in time.
const RAW: &str = r#"
port = int(sys.argv[1]); user = sys.argv[2]; pw = sys.argv[3]

def pkt(t, body):
    return struct.pack('>I', len(body) + 1) + bytes([t]) + body

def sstr(b):
    return struct.pack('>I', len(b)) + b

def open_raw():
    t = login(port, user, pw)
    ch = t.open_session()
    ch.invoke_subsystem('sftp')
    ch.settimeout(10)
    return t, ch

def recvn(ch, n):
    buf = b''
    while len(buf) < n:
        try:
            d = ch.recv(n - len(buf))
        except socket.timeout:
            return 'timeout'
        if not d:
            return None
        buf += d
    return buf

def read_packet(ch):
    head = recvn(ch, 4)
    if not isinstance(head, bytes):
        return head
    body = recvn(ch, struct.unpack('>I', head)[0])
    if not isinstance(body, bytes):
        return body
    return body[0], body[1:]

def init(ch):
    ch.sendall(pkt(1, struct.pack('>I', 3)))
    r = read_packet(ch)
    assert r[0] == 2, r

def status(r):
    # 'status ID CODE' for a STATUS, 'type N' for another reply, or why none came.
    if not isinstance(r, tuple):
        return 'eof' if r is None else r
    if r[0] != 101:
        return 'type %d' % r[0]
    return 'status %d %d' % struct.unpack('>II', r[1][:8])
"#;

const MALFORMED: &str = r#"
def case(name, fn):
    t, ch = open_raw()
    try:
        print('%s=%s' % (name, fn(ch)))
    finally:
        t.close()

def short_field(ch):
    # OPEN id 7 whose path claims 1000 bytes and has 3: BAD_MESSAGE; the session goes on.
    init(ch)
    ch.sendall(pkt(3, struct.pack('>I', 7) + struct.pack('>I', 1000) + b'abc'))
    a = status(read_packet(ch))
    ch.sendall(pkt(16, struct.pack('>I', 8) + sstr(b'.')))
    return a + ', then ' + status(read_packet(ch))

def unknown_type(ch):
    init(ch)
    ch.sendall(pkt(0x77, struct.pack('>I', 9) + b'junk'))
    a = status(read_packet(ch))
    ch.sendall(pkt(16, struct.pack('>I', 10) + sstr(b'.')))
    return a + ', then ' + status(read_packet(ch))

def bad_extension(ch):
    # statvfs@openssh.com without its path string.
    init(ch)
    ch.sendall(pkt(200, struct.pack('>I', 11) + sstr(b'statvfs@openssh.com')))
    return status(read_packet(ch))

def length(n, extra=b''):
    def f(ch):
        init(ch)
        ch.sendall(struct.pack('>I', n) + extra)
        r = read_packet(ch)
        return status(r) + (' exit %d' % ch.recv_exit_status() if r is None else '')
    return f

def truncated_then_eof(ch):
    # A packet that says 100 bytes, 10 of them, then EOF: the channel ends.
    init(ch)
    ch.sendall(struct.pack('>I', 100) + b'\x10' + b'\0' * 9)
    ch.shutdown_write()
    return status(read_packet(ch))

def before_init(ch):
    ch.sendall(pkt(16, struct.pack('>I', 1) + sstr(b'.')))
    return status(read_packet(ch))

def second_init(ch):
    init(ch)
    ch.sendall(pkt(1, struct.pack('>I', 3)))
    return status(read_packet(ch))

case('short_field', short_field)
case('unknown_type', unknown_type)
case('bad_extension', bad_extension)
case('oversized', length(256 * 1024 + 1, b'\x05' + b'\0' * 60000))
case('zero', length(0))
case('four_gib', length(0xffffffff, b'\x05' * 1000))
case('truncated_then_eof', truncated_then_eof)
case('before_init', before_init)
case('second_init', second_init)
# Another session on the same server is unharmed.
t = login(port, user, pw)
print('after=' + ','.join(sorted(sftp(t).listdir('.'))))
"#;

/// Another FTP session and another SFTP session (OpenSSH's `sftp`, when
/// installed; paramiko otherwise) work: a RETR and a listing.
fn others_unharmed(fx: &Fx, what: &str) {
    let t = Instant::now();
    let mut ftp = login_as(&fx.server, UP_USER, UP_PASS);
    let got = ftp.retr_bytes("/other.bin").unwrap_or_else(|e| panic!("{what}: FTP RETR failed: {e:?}"));
    assert!(got == pattern(1 << 20, 77), "{what}: FTP RETR returned other bytes");
    let py = paramiko().expect("checked by the caller");
    let script = "t = login(int(sys.argv[1]), sys.argv[2], sys.argv[3])\n\
                  print('names=' + ','.join(sorted(sftp(t).listdir('.'))))\n";
    let args = [fx.sftp.port().to_string(), UP_USER.into(), UP_PASS.into()];
    let ran = python(&py, &fx.local(), script, &args, Duration::from_secs(30));
    assert!(ran.status.success(), "{what}: an SFTP session failed: {}", ran.stderr);
    assert!(values(&ran.stdout).get("names").is_some_and(|n| n.contains("other.bin")), "{what}: {}", ran.stdout);
    assert!(t.elapsed() < Duration::from_secs(15), "{what}: other sessions took {:?}", t.elapsed());
}

fn hostile_fx(name: &str, extra: &[&str]) -> Fx {
    let fx = start(name, extra);
    fs::write(fx.root().join("other.bin"), pattern(1 << 20, 77)).unwrap();
    fx
}

/// Malformed packets after a real login: a field running past its packet
/// and an unknown type get a STATUS and the session goes on; a bad length
/// (zero, over the 256 KiB limit, 4 GiB), a request before INIT, a second
/// INIT, and a truncated packet then EOF end the channel at once.
#[test]
fn sftp_malformed_and_oversized_packets() {
    let Some(py) = paramiko() else { return };
    let fx = hostile_fx("sftp-malformed", &[]);
    let args = [fx.sftp.port().to_string(), UP_USER.into(), UP_PASS.into()];
    let started = Instant::now();
    let ran = python(&py, &fx.local(), &format!("{RAW}\n{MALFORMED}"), &args, Duration::from_secs(90));
    assert!(ran.status.success(), "script failed:\n{}\n{}", ran.stdout, ran.stderr);
    let v = values(&ran.stdout);
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or_else(|| panic!("no {k}: {}", ran.stdout));
    // 5 = BAD_MESSAGE, 8 = OP_UNSUPPORTED, 104 = NAME.
    assert_eq!(get("short_field"), "status 7 5, then type 104");
    assert_eq!(get("unknown_type"), "status 9 8, then type 104");
    assert_eq!(get("bad_extension"), "status 11 5");
    for k in ["oversized", "zero", "four_gib"] {
        assert_eq!(get(k), "eof exit 1", "{k}: the channel must end with a failure status");
    }
    for k in ["truncated_then_eof", "before_init", "second_init"] {
        assert_eq!(get(k), "eof", "{k}");
    }
    assert!(get("after").contains("other.bin"), "{}", ran.stdout);
    // Nothing waited for a timeout (each closing case would take 10 s).
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let log = fx.server.log();
    for want in ["packet length 262145 refused", "packet length 0 refused", "packet length 4294967295 refused"] {
        assert!(log.contains(want), "no {want:?} in the log:\n{log}");
    }
    others_unharmed(&fx, "after malformed packets");
}

/// `n` sessions each pipeline READs of a 16 MiB file as fast as the SSH
/// window lets them, and never read a byte back (the socket is not read:
/// the transport's reader is stalled after login). Prints `stalled=N` once
/// all sessions are stuck, then waits to be killed.
const FLOOD: &str = r#"
import threading
n = int(sys.argv[4])

class Stalled:
    # A socket whose reader stops for good once `stop` is set.
    def __init__(self):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.stop = False
    def recv(self, k):
        while self.stop:
            time.sleep(1)
        return self.s.recv(k)
    def send(self, b):
        return self.s.send(b)
    def sendall(self, b):
        return self.s.sendall(b)
    def settimeout(self, t):
        self.s.settimeout(t)
    def close(self):
        self.s.close()

def flood(i, out):
    sock = Stalled()
    t = login(port, user, pw, sock)
    ch = t.open_session()
    ch.invoke_subsystem('sftp')
    ch.settimeout(10)
    init(ch)
    ch.sendall(pkt(3, struct.pack('>I', 1) + sstr(b'big.bin') + struct.pack('>II', 1, 0)))
    r = read_packet(ch)
    assert r[0] == 102, r
    handle = r[1][4:]
    sock.stop = True
    out[i] = 0
    req = 2
    # Blocks for good once the SSH window or the socket is full.
    while True:
        body = struct.pack('>I', req) + handle + struct.pack('>QI', (req % 64) * 256 * 1024, 255 * 1024)
        ch.sendall(pkt(5, body))
        out[i] += 1
        req += 1

out = {}
for i in range(n):
    threading.Thread(target=flood, args=(i, out), daemon=True).start()
# Stalled: every session sent something and no count moved for 3 s.
last, still = None, 0
for _ in range(600):
    time.sleep(0.1)
    now = dict(out)
    still = still + 1 if now == last and len(now) == n and all(now.values()) else 0
    last = now
    if still >= 30:
        break
print('stalled=%d' % (sum(last.values()) if still >= 30 else 0), flush=True)
time.sleep(120)
"#;

/// A flood of READ requests from 4 sessions that never read: the server's
/// resident memory stays bounded while they are stuck, and meanwhile an FTP
/// RETR and an SFTP listing on other connections work.
#[test]
fn sftp_flood_of_unread_replies_is_bounded() {
    let Some(py) = paramiko() else { return };
    let fx = hostile_fx("sftp-flood", &[]);
    fs::write(fx.root().join("big.bin"), pattern(16 << 20, 78)).unwrap();
    // Warm what the other sessions use, so the baseline holds their cost.
    others_unharmed(&fx, "before the flood");
    let before = rss_kib(&fx);
    let file = fx.local().join("flood.py");
    fs::write(&file, format!("{}\n{RAW}\n{FLOOD}", crate::sftp_interop::PRELUDE)).unwrap();
    let sessions = 4;
    let mut child = Command::new(&py)
        .arg(&file)
        .args([fx.sftp.port().to_string(), UP_USER.into(), UP_PASS.into(), sessions.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let stalled = values(&line).get("stalled").and_then(|n| n.parse::<u64>().ok()).filter(|&n| n > 0);
    if stalled.is_none() {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        let _ = child.wait();
        panic!("the flood did not stall: {line:?}\n{err}");
    }
    // Every request asks for 255 KiB: what was sent asks for far more than the bound.
    let asked = stalled.unwrap_or(0) * 255;
    let mut peak = 0;
    for _ in 0..10 {
        peak = peak.max(rss_kib(&fx));
        std::thread::sleep(Duration::from_millis(200));
    }
    others_unharmed(&fx, "during the flood");
    peak = peak.max(rss_kib(&fx));
    let _ = child.kill();
    let _ = child.wait();
    let grew = peak.saturating_sub(before);
    eprintln!("flood: {sessions} sessions sent {stalled:?} READs asking {asked} KiB; VmRSS {before} -> {peak} KiB");
    assert!(asked > 200 << 10, "the flood asked for only {asked} KiB");
    assert!(grew < 48 << 10, "the server grew by {grew} KiB for {sessions} stalled sessions");
    // The stuck sessions end as soon as their client goes away (the two
    // `others_unharmed` before made 4 sessions that ended).
    let deadline = Instant::now() + Duration::from_secs(5);
    while fx.server.log().matches(" end 127.0.0.1").count() < sessions + 4 {
        assert!(Instant::now() < deadline, "the flooding sessions did not end:\n{}", fx.server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads until EOF or error; how long it took and what came.
fn until_closed(s: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    s.set_read_timeout(Some(limit)).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("still open after {limit:?}; got {:?}", String::from_utf8_lossy(&got))
            }
            Err(_) => break,
        }
    }
    (t.elapsed(), got)
}

/// Garbage instead of a version line (an HTTP request, then 1 MiB without
/// a line end): the connection is closed long before the login timeout and
/// other sessions work meanwhile.
#[test]
fn sftp_garbage_instead_of_a_banner() {
    if paramiko().is_none() {
        return;
    }
    let fx = hostile_fx("sftp-garbage", &["--login-timeout", "30"]);
    let mut s = TcpStream::connect(fx.sftp).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = s.write_all(&pattern(1 << 20, 79));
    others_unharmed(&fx, "with a garbage connection open");
    // Closed with unread garbage: a reset may take our copy of the banner too.
    let (took, got) = until_closed(&mut s, Duration::from_secs(10));
    assert!(got.is_empty() || got.starts_with(b"SSH-2.0-"), "{got:?}");
    assert!(took < Duration::from_secs(10), "closed after {took:?}");
    assert!(fx.server.wait_log("user=- transfers=0", Duration::from_secs(5)), "{}", fx.server.log());
    assert!(!fx.server.log().contains("reason=login timeout"), "{}", fx.server.log());
    others_unharmed(&fx, "after a garbage connection");
}

/// A version line, then nothing (no key exchange): the login timeout ends it.
#[test]
fn sftp_banner_then_silence_times_out() {
    if paramiko().is_none() {
        return;
    }
    let fx = hostile_fx("sftp-banner-silent", &["--login-timeout", "2"]);
    let mut s = TcpStream::connect(fx.sftp).unwrap();
    s.write_all(b"SSH-2.0-hostile_1.0\r\n").unwrap();
    others_unharmed(&fx, "with a silent connection open");
    let (took, got) = until_closed(&mut s, Duration::from_secs(10));
    assert!(got.starts_with(b"SSH-2.0-"), "{got:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(fx.server.wait_log("reason=login timeout", Duration::from_secs(5)), "{}", fx.server.log());
}

/// A version line, then a binary packet whose length says 2 GiB (and one
/// that says 4 GiB): closed at once, without waiting for the bytes.
#[test]
fn sftp_huge_ssh_packet_length() {
    if paramiko().is_none() {
        return;
    }
    let fx = hostile_fx("sftp-huge-len", &["--login-timeout", "30"]);
    for len in [0x7fff_ffffu32, 0xffff_ffff] {
        let before = rss_kib(&fx);
        let mut s = TcpStream::connect(fx.sftp).unwrap();
        s.write_all(b"SSH-2.0-hostile_1.0\r\n").unwrap();
        let mut packet = len.to_be_bytes().to_vec();
        packet.extend_from_slice(&[4u8; 60]);
        let _ = s.write_all(&packet);
        let (took, _) = until_closed(&mut s, Duration::from_secs(10));
        assert!(took < Duration::from_secs(5), "length {len:#x}: closed after {took:?}");
        let grew = rss_kib(&fx).saturating_sub(before);
        assert!(grew < 16 << 10, "length {len:#x}: the server grew by {grew} KiB");
    }
    others_unharmed(&fx, "after huge packet lengths");
}
