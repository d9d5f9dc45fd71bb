//! Behind a load balancer: --proxy-protocol with headers sent by hand (v1
//! and v2, whole or byte by byte, before plaintext and implicit TLS), the
//! real client address in logs, admission and the PORT/PASV checks,
//! --proxy-data-check, refusals, --pasv-address names; and the whole thing
//! behind a real HAProxy (`proxy_haproxy.rs`).

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use socket2::{Domain, Socket, Type};

use crate::util::{Ftp, IO_TIMEOUT, Server, run, temp_dir};

/// Server flags: behind a proxy on 127.0.0.1, then `extra`.
fn behind<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--proxy-protocol", "--proxy-from", "127.0.0.1/32"];
    v.extend_from_slice(extra);
    v
}

/// A TCP connection from `src` (an address on the loopback) to `dst`.
pub fn connect_from(src: &str, dst: SocketAddr) -> TcpStream {
    try_connect_from(src, dst).unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"))
}

/// `connect_from`, returning the error.
pub fn try_connect_from(src: &str, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let src: IpAddr = src.parse().expect("source address");
    let sock = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
    sock.bind(&SocketAddr::new(src, 0).into())?;
    sock.connect_timeout(&dst.into(), IO_TIMEOUT)?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A version 2 PROXY header: PROXY (or LOCAL) over TCP/IPv4.
pub fn v2_header(src: SocketAddr, dst: SocketAddr, local: bool) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else { panic!("IPv4 only") };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

/// A session through a pretend proxy on 127.0.0.1 for the client `real`
/// (v1 header).
fn via_v1(server: &Server, real: &str) -> Ftp {
    let mut s = connect_from("127.0.0.1", server.addr);
    let real: SocketAddr = real.parse().expect("real address");
    let line = format!("PROXY TCP4 {} {} {} {}\r\n", real.ip(), server.addr.ip(), real.port(), server.addr.port());
    s.write_all(line.as_bytes()).expect("sending the header");
    Ftp::over(s, server.addr)
}

/// Reads until EOF; the bytes the server sent before closing. Panics if the
/// connection stays open past `within`.
pub fn bytes_until_close(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(within)).expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server kept the connection open ({e}); got {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// PASV: the announced address.
pub fn pasv(ftp: &mut Ftp) -> SocketAddr {
    let (code, text) = ftp.cmd("PASV");
    assert_eq!(code, 227, "PASV: {text}");
    let inner = text.split('(').nth(1).and_then(|r| r.split(')').next()).expect("PASV tuple");
    let n: Vec<u8> = inner.split(',').map(|x| x.trim().parse().expect("number")).collect();
    assert_eq!(n.len(), 6, "{text}");
    SocketAddr::from(([n[0], n[1], n[2], n[3]], u16::from(n[4]) * 256 + u16::from(n[5])))
}

/// RETR over PASV with the data connection made from `src`.
pub fn retr_pasv_from(ftp: &mut Ftp, src: &str, path: &str) -> Vec<u8> {
    let at = pasv(ftp);
    let mut data = connect_from(src, at);
    let (code, text) = ftp.cmd(&format!("RETR {path}"));
    assert_eq!(code, 150, "RETR {path}: {text}");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).expect("reading data");
    let (code, text) = ftp.reply();
    assert_eq!(code, 226, "RETR {path} end: {text}");
    bytes
}

fn content() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn v1_header_makes_the_real_client_the_peer_for_logs_and_port_checks() {
    let dir = temp_dir("proxy-v1");
    std::fs::write(dir.join("f.bin"), content()).unwrap();
    let server = Server::start(dir.path(), &behind(&[]));
    let mut ftp = via_v1(&server, "127.0.0.2:40001");
    ftp.login_anon();
    assert!(server.wait_log("connect from 127.0.0.2:40001 via 127.0.0.1:", IO_TIMEOUT), "log: {}", server.log());
    assert!(server.wait_log("login anonymous from 127.0.0.2:40001", IO_TIMEOUT), "log: {}", server.log());
    // Bounce protection compares with the real client, not the proxy.
    assert_eq!(ftp.cmd("PORT 127,0,0,2,19,137").0, 200, "PORT to the real client");
    assert_eq!(ftp.cmd("EPRT |1|127.0.0.2|5001|").0, 200, "EPRT to the real client");
    assert_eq!(ftp.cmd("PORT 127,0,0,1,19,137").0, 504, "PORT to the proxy's address is foreign");
    assert_eq!(ftp.cmd("EPRT |1|127.0.0.1|5001|").0, 504, "EPRT to the proxy's address is foreign");
    // Passive: the data connection must come from the real client.
    assert_eq!(retr_pasv_from(&mut ftp, "127.0.0.2", "f.bin"), content());
    let (code, text) = ftp.cmd("STAT");
    assert_eq!(code, 211, "{text}");
    assert!(text.contains("from 127.0.0.2:40001"), "STAT names the real client: {text}");
}

#[test]
fn strict_data_check_refuses_the_proxy_address_and_relaxed_accepts_it() {
    let dir = temp_dir("proxy-datacheck");
    std::fs::write(dir.join("f.bin"), content()).unwrap();
    let strict = Server::start(dir.path(), &behind(&[]));
    let mut ftp = via_v1(&strict, "127.0.0.2:40002");
    ftp.login_anon();
    let at = pasv(&mut ftp);
    let mut thief = connect_from("127.0.0.1", at);
    assert_eq!(bytes_until_close(&mut thief, IO_TIMEOUT), b"", "the proxy's address gets nothing");
    assert!(strict.wait_log("refused data connection from 127.0.0.1:", IO_TIMEOUT), "log: {}", strict.log());
    // The port still waits for the real client.
    let mut data = connect_from("127.0.0.2", at);
    assert_eq!(ftp.cmd("RETR f.bin").0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, content());
    assert_eq!(ftp.reply().0, 226);

    let relaxed = Server::start(dir.path(), &behind(&["--proxy-data-check", "relaxed"]));
    let mut ftp = via_v1(&relaxed, "127.0.0.2:40003");
    ftp.login_anon();
    assert_eq!(retr_pasv_from(&mut ftp, "127.0.0.1", "f.bin"), content(), "relaxed: from the proxy");
    assert_eq!(retr_pasv_from(&mut ftp, "127.0.0.2", "f.bin"), content(), "relaxed: from the client");
    let mut stranger = {
        let at = pasv(&mut ftp);
        connect_from("127.0.0.3", at)
    };
    assert_eq!(bytes_until_close(&mut stranger, IO_TIMEOUT), b"", "relaxed still refuses a third address");
}

#[test]
fn a_header_split_into_single_bytes_and_a_pipelined_command_both_arrive() {
    let dir = temp_dir("proxy-bytes");
    let server = Server::start(dir.path(), &behind(&[]));
    let mut s = connect_from("127.0.0.1", server.addr);
    let header = v2_header("127.0.0.2:40004".parse().unwrap(), server.addr, false);
    let (last, head) = header.split_last().unwrap();
    for b in head {
        s.write_all(&[*b]).unwrap();
        thread::sleep(Duration::from_millis(15));
    }
    // The last header byte and a command in one segment: the command must
    // not be swallowed with the header.
    let mut tail = vec![*last];
    tail.extend_from_slice(b"NOOP\r\n");
    s.write_all(&tail).unwrap();
    let mut ftp = Ftp::over(s, server.addr);
    assert_eq!(ftp.reply().0, 200, "the NOOP sent with the header's last byte");
    assert!(server.wait_log("connect from 127.0.0.2:40004 via", IO_TIMEOUT), "log: {}", server.log());
}

#[test]
fn implicit_tls_reads_the_header_before_the_handshake() {
    let pki = temp_dir("proxy-tls-pki");
    let (cert, key) = crate::ftps::make_cert(&pki, "server");
    let dir = temp_dir("proxy-tls");
    let (c, k) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let args = behind(&["--tls-cert", &c, "--tls-key", &k, "--implicit-tls-listen", "127.0.0.1:0"]);
    let server = Server::start(dir.path(), &args);
    let at = crate::ftps::implicit_addr(&server);
    let tcp = connect_from("127.0.0.1", at);
    // The header and the ClientHello in one write, as a proxy forwarding a
    // fast client would send them.
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(crate::ftps::default_config(), name).unwrap();
    let mut first = v2_header("127.0.0.2:40005".parse().unwrap(), at, false);
    conn.write_tls(&mut first).unwrap();
    let mut tcp = tcp;
    tcp.write_all(&first).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    while conn.is_handshaking() {
        assert!(Instant::now() < deadline, "handshake did not finish");
        conn.complete_io(&mut tcp).expect("TLS handshake after the PROXY header");
    }
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let greeting = crate::util::read_reply(&mut tls).expect("greeting over TLS");
    assert_eq!(greeting.0, 220, "{greeting:?}");
    tls.get_mut().write_all(b"USER anonymous\r\n").unwrap();
    assert_eq!(crate::util::read_reply(&mut tls).unwrap().0, 331);
    assert!(server.wait_log("connect from 127.0.0.2:40005 via 127.0.0.1:", IO_TIMEOUT), "log: {}", server.log());
}

#[test]
fn untrusted_sources_get_421_and_trusted_ones_must_send_a_valid_header() {
    let dir = temp_dir("proxy-refuse");
    let server = Server::start(dir.path(), &["--proxy-protocol", "--proxy-from", "127.0.0.1/32"]);
    // Not a trusted proxy: 421, closed.
    let mut s = connect_from("127.0.0.3", server.addr);
    let got = bytes_until_close(&mut s, IO_TIMEOUT);
    assert!(got.starts_with(b"421 "), "{:?}", String::from_utf8_lossy(&got));
    // Not even a trusted source may skip the header or send a bad one: no
    // greeting, closed.
    let bad: [&[u8]; 6] = [
        b"USER anonymous\r\n",
        b"PROXY TCP4 127.0.0.2 127.0.0.1 1 21\n",
        b"PROXY TCP4 127.0.0.02 127.0.0.1 1 21\r\n",
        b"PROXY TCP4 127.0.0.2 127.0.0.1 1 21 \r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        b"\x16\x03\x01\x00\x10",
    ];
    for h in bad {
        let mut s = connect_from("127.0.0.1", server.addr);
        s.write_all(h).unwrap();
        let got = bytes_until_close(&mut s, IO_TIMEOUT);
        assert_eq!(got, b"", "{:?} got a reply", String::from_utf8_lossy(h));
    }
    assert!(server.wait_log("bad PROXY header", IO_TIMEOUT), "log: {}", server.log());
    // Silence: dropped at the header deadline, a few seconds in.
    let start = Instant::now();
    let mut s = connect_from("127.0.0.1", server.addr);
    assert_eq!(bytes_until_close(&mut s, Duration::from_secs(9)), b"");
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(3), "dropped after {took:?}: too early for a slow proxy");
    assert!(server.wait_log("no PROXY header in time", IO_TIMEOUT), "log: {}", server.log());
    // None of this used up an admission slot.
    let mut ftp = via_v1(&server, "127.0.0.2:40006");
    assert_eq!(ftp.cmd("NOOP").0, 200);
}

#[test]
fn per_ip_limits_count_real_clients_and_local_checks_count_the_proxy() {
    let dir = temp_dir("proxy-perip");
    let server = Server::start(dir.path(), &behind(&["--max-per-ip", "1", "--workers", "1"]));
    let mut a = via_v1(&server, "127.0.0.2:40010");
    let mut b = via_v1(&server, "127.0.0.3:40011");
    assert_eq!(b.cmd("NOOP").0, 200, "another client through the same proxy is admitted");
    // A second session of 127.0.0.2: refused after its header.
    let mut s = connect_from("127.0.0.1", server.addr);
    s.write_all(b"PROXY TCP4 127.0.0.2 127.0.0.1 40012 21\r\n").unwrap();
    let got = bytes_until_close(&mut s, IO_TIMEOUT);
    assert!(got.starts_with(b"421 Too many connections from your address"), "{:?}", String::from_utf8_lossy(&got));
    // A LOCAL header (the proxy's health check) is the proxy itself.
    let mut s = connect_from("127.0.0.1", server.addr);
    s.write_all(&v2_header("127.0.0.9:1".parse().unwrap(), server.addr, true)).unwrap();
    let mut local = Ftp::over(s, server.addr);
    assert!(
        server.wait_log("via 127.0.0.1:", IO_TIMEOUT) && server.wait_log("the proxy's own connection", IO_TIMEOUT),
        "log: {}",
        server.log()
    );
    assert!(
        server.wait_log("connect from 127.0.0.1:", std::time::Duration::from_secs(5)),
        "LOCAL: the proxy is the peer; log: {}",
        server.log()
    );
    let mut s = connect_from("127.0.0.1", server.addr);
    s.write_all(&v2_header("127.0.0.9:1".parse().unwrap(), server.addr, true)).unwrap();
    assert!(bytes_until_close(&mut s, IO_TIMEOUT).starts_with(b"421 "), "one LOCAL session per proxy IP here");
    assert_eq!(local.cmd("QUIT").0, 221);
    // Closing releases the real client's slot exactly.
    assert_eq!(a.cmd("QUIT").0, 221);
    drop(a);
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut s = connect_from("127.0.0.1", server.addr);
        s.write_all(b"PROXY TCP4 127.0.0.2 127.0.0.1 40013 21\r\n").unwrap();
        let mut line = [0u8; 3];
        s.read_exact(&mut line).unwrap();
        if &line == b"220" {
            break;
        }
        assert!(Instant::now() < deadline, "127.0.0.2's slot was not released");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.cmd("NOOP").0, 200);
}

#[test]
fn failed_logins_ban_the_real_client_not_the_proxy() {
    let args = behind(&["--ban-after", "1", "--ban-time", "60", "--max-login-attempts", "1"]);
    let f = crate::accounts::acct_fx(
        "proxy-ban",
        &[("bob", crate::accounts::BOB_HASH, "", "readonly")],
        None,
        &args,
        |_| {},
    );
    let mut ftp = via_v1(&f.server, "127.0.0.2:40020");
    assert_eq!(ftp.cmd("USER bob").0, 331);
    assert_eq!(ftp.cmd("PASS wrong").0, 421, "the failure that bans");
    assert!(f.server.wait_log("banning 127.0.0.2 for 60 s", IO_TIMEOUT), "log: {}", f.server.log());
    // The banned client is refused after its header; others through the
    // same proxy are not.
    let mut s = connect_from("127.0.0.1", f.server.addr);
    s.write_all(b"PROXY TCP4 127.0.0.2 127.0.0.1 40021 21\r\n").unwrap();
    let got = bytes_until_close(&mut s, IO_TIMEOUT);
    assert!(got.starts_with(b"421 Too many failed logins"), "{:?}", String::from_utf8_lossy(&got));
    let mut other = via_v1(&f.server, "127.0.0.3:40022");
    assert_eq!(other.cmd("USER bob").0, 331);
    assert_eq!(other.cmd("PASS bob-pw").0, 230);
    // A header that names no client (v1 UNKNOWN) leaves the balancer as the
    // peer: its failed login must not ban the balancer, which would shut
    // out every client behind it.
    let mut s = connect_from("127.0.0.1", f.server.addr);
    s.write_all(b"PROXY UNKNOWN\r\n").unwrap();
    let mut anon = crate::util::Ftp::over(s, f.server.addr);
    assert_eq!(anon.greeting.0, 220);
    assert_eq!(anon.cmd("USER bob").0, 331);
    assert_eq!(anon.cmd("PASS wrong").0, 421, "--max-login-attempts 1 closes the session");
    let mut after = via_v1(&f.server, "127.0.0.4:40023");
    assert_eq!(after.cmd("USER bob").0, 331);
    assert_eq!(after.cmd("PASS bob-pw").0, 230, "the balancer was banned: {}", f.server.log());
    assert!(!f.server.log().contains("banning 127.0.0.1"), "{}", f.server.log());
}

#[test]
fn proxy_flags_are_validated() {
    let dir = temp_dir("proxy-flags");
    let bin = env!("CARGO_BIN_EXE_mirrorftpd");
    let root = dir.to_string_lossy().into_owned();
    let cases: [(&[&str], &str); 5] = [
        (&["--proxy-protocol"], "--proxy-protocol needs --proxy-from"),
        (&["--proxy-from", "10.0.0.0/8"], "need --proxy-protocol"),
        (&["--proxy-protocol", "--proxy-from", "10.0.0.0/33"], "prefix length"),
        (&["--pasv-address", "not a name!"], "neither an IPv4 address nor a DNS name"),
        (&["--pasv-address", "2001:db8::1"], "IPv4"),
    ];
    for (args, want) in cases {
        let ran = run(Command::new(bin).args(["--root", &root, "--listen", "127.0.0.1:0"]).args(args), IO_TIMEOUT);
        assert!(!ran.status.success(), "{args:?} was accepted");
        assert!(ran.stderr.contains(want), "{args:?}: {}", ran.stderr);
    }
}

#[test]
fn pasv_address_may_be_a_name_resolved_at_start_and_on_sighup() {
    let dir = temp_dir("proxy-pasvname");
    let server = Server::start(dir.path(), &["--pasv-address", "localhost"]);
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(pasv(&mut ftp).ip(), IpAddr::from([127, 0, 0, 1]));
    // kill(1) by PID: the process this test started.
    let ran = run(Command::new("kill").args(["-HUP", &server.pid().to_string()]), IO_TIMEOUT);
    assert!(ran.status.success(), "kill -HUP: {}", ran.stderr);
    assert!(server.wait_log("--pasv-address localhost: still 127.0.0.1", IO_TIMEOUT), "log: {}", server.log());
    assert_eq!(pasv(&mut ftp).ip(), IpAddr::from([127, 0, 0, 1]));
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Connections from the balancer that have not sent their header yet are
/// not sessions, but they may not pile up beyond --max-clients either.
#[test]
fn connections_awaiting_a_header_are_bounded_by_max_clients() {
    let dir = temp_dir("proxy-pending");
    let server = Server::start(dir.path(), &behind(&["--max-clients", "3", "--workers", "1"]));
    let pending: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", server.addr)).collect();
    // The three are accepted (no reply yet: they owe a header); the fourth is refused.
    let mut fourth = connect_from("127.0.0.1", server.addr);
    let got = bytes_until_close(&mut fourth, IO_TIMEOUT);
    assert!(got.starts_with(b"421 Too many users"), "{:?}", String::from_utf8_lossy(&got));
    drop(pending);
    // Once they are gone a proxied client gets in again.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let mut s = connect_from("127.0.0.1", server.addr);
        s.write_all(b"PROXY TCP4 127.0.0.2 127.0.0.1 40030 21\r\n").unwrap();
        let mut first = [0u8; 4];
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        if std::io::Read::read_exact(&mut s, &mut first).is_ok() && &first == b"220 " {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no session after the pending connections closed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
