//! Logs and metrics (issue 6): the xferlog lines of downloads, uploads and an
//! aborted transfer; the JSON session log (valid JSON, the expected events,
//! never a password); reopening the log files after logrotate's rename
//! (SIGUSR1, SIGHUP); exact metric values after transfers and a failed login;
//! silent metrics clients that must not stop the FTP side.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{UP_PASS, UP_USER, login_up, up_fx, upload};
use crate::protocol::{SHORT, expect, pattern};
use crate::util::{Ftp, Server, require_tool, run_ok, temp_dir};

/// Waits until `path` holds a line for which `done` is true; returns the text.
#[track_caller]
fn wait_file(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SHORT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{}: no {what} after {SHORT:?}; it holds:\n{text}", path.display());
        thread::sleep(Duration::from_millis(20));
    }
}

/// The address printed by `mirrorftpd: metrics on http://ADDR/metrics`.
pub(crate) fn metrics_addr(server: &Server) -> SocketAddr {
    assert!(server.wait_log("metrics on http://", SHORT), "no metrics line:\n{}", server.log());
    let log = server.log();
    let rest = log.split_once("metrics on http://").map(|(_, r)| r).unwrap_or_default();
    let addr = rest.split_once("/metrics").map(|(a, _)| a).unwrap_or_default();
    addr.parse().unwrap_or_else(|e| panic!("metrics address {addr:?}: {e}"))
}

/// Sends `request` and returns (status, head, body) of the response.
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, SHORT).expect("connecting to the metrics port");
    s.set_read_timeout(Some(SHORT)).expect("set_read_timeout");
    s.write_all(request.as_bytes()).expect("sending the request");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("reading the response");
    let resp = String::from_utf8(resp).expect("a UTF-8 response");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {resp:?}"));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("status line: {head:?}"));
    (status, head.to_string(), body.to_string())
}

pub(crate) fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
    body
}

/// The value of the sample `series` (name with labels, exactly as written).
#[track_caller]
/// The metrics page once `mirrorftpd_sessions_open` is back to 0 (every
/// session's counters are in), waiting at most `within`.
pub(crate) fn scrape_when_closed(addr: SocketAddr, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = scrape(addr);
        if value(&body, "mirrorftpd_sessions_open") == 0 {
            return body;
        }
        assert!(Instant::now() < deadline, "sessions still open:\n{body}");
        thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn value(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// The whitespace-separated fields of an xferlog line after the 5 time
/// fields, checking that the time has the `%a %b %e %H:%M:%S %Y` form.
#[track_caller]
pub(crate) fn xfer_fields(line: &str) -> Vec<&str> {
    let t = &line[..24];
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = t.as_bytes();
    assert!(days.contains(&&t[0..3]) && months.contains(&&t[4..7]), "time {t:?}");
    assert!(b[3] == b' ' && b[7] == b' ' && b[10] == b' ' && b[19] == b' ', "time {t:?}");
    let day = t[8..10].trim_start();
    assert!(day.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)) && (day.len() == 2 || b[8] == b' '), "day {t:?}");
    assert!(t[11..19].split(':').all(|x| x.len() == 2 && x.parse::<u32>().is_ok()), "clock {t:?}");
    assert!(t[20..24].parse::<u32>().is_ok(), "year {t:?}");
    assert_eq!(line.as_bytes()[24], b' ', "{line:?}");
    line[25..].split(' ').collect()
}

#[test]
fn xferlog_has_one_line_per_download_upload_and_aborted_transfer() {
    if !require_tool("curl") {
        return;
    }
    let etc = temp_dir("obs-xfer-etc");
    let xlog = etc.join("xferlog");
    let xarg = xlog.to_string_lossy().into_owned();
    let small = pattern(3, 12_345);
    let f = up_fx("obs-xfer", &["--xferlog", &xarg], |root| {
        fs::create_dir(root.join("pub")).unwrap();
        fs::write(root.join("pub/a file.bin"), &small).unwrap();
        // Sparse: more than the socket buffers hold, so the RETR is still
        // running when ABOR comes.
        fs::File::create(root.join("pub/big.bin")).unwrap().set_len(256 << 20).unwrap();
    });
    let out = etc.join("got.bin");
    run_ok(Command::new("curl").args(["-sS", "-o"]).arg(&out).arg(f.server.url("pub/a file.bin")), SHORT);
    assert_eq!(fs::read(&out).unwrap(), small);
    let up = pattern(4, 5000);
    fs::write(&out, &up).unwrap();
    let url = format!("ftp://{UP_USER}:{UP_PASS}@{}/new.bin", f.server.addr);
    run_ok(Command::new("curl").args(["-sS", "-T"]).arg(&out).arg(url), SHORT);
    assert_eq!(fs::read(f.root.join("new.bin")).unwrap(), up);

    // A listing (not logged) and an aborted download.
    let mut ftp = Ftp::connect(f.server.addr);
    ftp.login_anon();
    ftp.list("LIST /pub");
    let mut data = ftp.pasv_connect();
    let (code, text) = ftp.cmd("RETR /pub/big.bin");
    assert_eq!(code, 150, "{text}");
    let mut got = vec![0u8; 64 << 10];
    data.read_exact(&mut got).expect("the first 64 KiB");
    let (code, text) = ftp.cmd("ABOR");
    assert_eq!(code, 426, "{text}");
    assert_eq!(ftp.reply().0, 226);
    drop(data);
    expect(&mut ftp, "QUIT", 221);

    let text = wait_file(&xlog, "3 lines", |t| t.lines().count() >= 3);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let d = xfer_fields(lines[0]);
    assert!(d[0].parse::<u64>().is_ok_and(|s| s >= 1), "transfer-time {:?}", d[0]);
    assert_eq!(
        d[1..],
        ["127.0.0.1", "12345", "/pub/a_file.bin", "b", "_", "o", "a", "anonymous", "ftp", "0", "*", "c"],
        "{}",
        lines[0]
    );
    let u = xfer_fields(lines[1]);
    assert_eq!(
        u[1..],
        ["127.0.0.1", "5000", "/new.bin", "b", "_", "i", "r", "up", "ftp", "0", "*", "c"],
        "{}",
        lines[1]
    );
    let a = xfer_fields(lines[2]);
    assert_eq!(a.len(), 13, "{}", lines[2]);
    let sent: u64 = a[2].parse().unwrap();
    assert!((64 << 10..256 << 20).contains(&sent), "aborted RETR logged {sent} bytes: {}", lines[2]);
    assert_eq!([a[1], a[3], a[4], a[6], a[7], a[8]], ["127.0.0.1", "/pub/big.bin", "b", "o", "a", "anonymous"]);
    assert_eq!(a[12], "i", "an aborted transfer is incomplete: {}", lines[2]);
    assert!(!text.contains("it@example.com"), "the anonymous password was logged:\n{text}");
}

/// Parses each line strictly (no NaN, no control characters in strings) and
/// prints event, cmd, code, user, path (as ASCII JSON), bytes, tab-separated.
const CHECK_JSON: &str = r#"
import json, sys
def bad(c):
    raise ValueError("not JSON: " + c)
for n, raw in enumerate(open(sys.argv[1], "rb").read().split(b"\n")[:-1]):
    o = json.loads(raw.decode("utf-8"), parse_constant=bad)
    assert isinstance(o, dict), n
    for k in ("ts", "level", "event", "msg"):
        assert k in o, (n, k)
    f = [o["event"], o.get("cmd", ""), str(o.get("code", "")), o.get("user", ""),
         json.dumps(o["path"]) if "path" in o else "", str(o.get("bytes", ""))]
    print("\t".join(f))
"#;

#[test]
fn json_session_log_is_valid_json_with_the_events_and_no_password() {
    if !require_tool("python3") {
        return;
    }
    let etc = temp_dir("obs-json-etc");
    let log = etc.join("session.log");
    let larg = log.to_string_lossy().into_owned();
    let odd = pattern(5, 777);
    let f = up_fx("obs-json", &["--log-file", &larg, "--log-format", "json"], |root| {
        use std::os::unix::ffi::OsStrExt;
        fs::write(root.join(std::ffi::OsStr::from_bytes(b"q\"b\\s\xff.txt")), &odd).unwrap();
    });
    let mut ftp = Ftp::connect(f.server.addr);
    expect(&mut ftp, &format!("USER {UP_USER}"), 331);
    expect(&mut ftp, "PASS WrongSecret-xyz", 530);
    expect(&mut ftp, &format!("USER {UP_USER}"), 331);
    expect(&mut ftp, &format!("PASS {UP_PASS}"), 230);
    expect(&mut ftp, "TYPE I", 200);
    let mut data = ftp.pasv_connect();
    // 0xFF is Telnet IAC on the control connection: doubled.
    ftp.send_raw(b"RETR /q\"b\\s\xff\xff.txt\r\n");
    let r = ftp.reply();
    assert_eq!(r.0, 150, "{r:?}");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, odd);
    assert_eq!(ftp.reply().0, 226);
    expect(&mut ftp, "DELE /nope", 550);
    let (code, _) = ftp.cmd("FOO bar");
    assert!(code >= 500, "FOO got {code}");
    expect(&mut ftp, "QUIT", 221);
    let mut anon = Ftp::connect(f.server.addr);
    expect(&mut anon, "USER anonymous", 331);
    expect(&mut anon, "PASS anon-secret@example.com", 230);
    expect(&mut anon, "QUIT", 221);

    let text = wait_file(&log, "two disconnects", |t| t.matches(r#""event":"disconnect""#).count() >= 2);
    for secret in ["WrongSecret-xyz", UP_PASS, "anon-secret"] {
        assert!(!text.contains(secret), "{secret:?} is in the log:\n{text}");
    }
    assert!(!f.server.log().contains("login"), "session lines went to stderr too:\n{}", f.server.log());
    let ran = run_ok(Command::new("python3").args(["-c", CHECK_JSON]).arg(&log), SHORT);
    let rows: Vec<Vec<&str>> = ran.stdout.lines().map(|l| l.split('\t').collect()).collect();
    let has =
        |want: &[&str]| rows.iter().any(|r| r.len() == 6 && r.iter().zip(want).all(|(a, b)| b.is_empty() || a == b));
    let count = |event: &str| rows.iter().filter(|r| r[0] == event).count();
    let show = &ran.stdout;
    assert_eq!(count("connect"), 2, "{show}");
    assert_eq!(count("disconnect"), 2, "{show}");
    assert!(has(&["login_failed", "", "", "up"]), "{show}");
    assert!(has(&["error_reply", "PASS", "530"]), "{show}");
    assert!(has(&["login", "", "", "up"]), "{show}");
    assert!(has(&["login", "", "", "anonymous"]), "{show}");
    assert!(has(&["transfer", "RETR", "", "up", r#""/q\"b\\s\ufffd.txt""#, "777"]), "{show}");
    assert!(has(&["error_reply", "DELE", "550", "up"]), "{show}");
    assert!(rows.iter().any(|r| r[0] == "error_reply" && r[1] == "FOO" && r[2].starts_with('5')), "{show}");
}

fn sessions_in(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split_once(" session ").and_then(|(_, r)| r.split_once(" connect from ")))
        .map(|(n, _)| n.parse().unwrap())
        .collect()
}

/// One anonymous download of /f.bin, then QUIT.
fn fetch(server: &Server) {
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("/f.bin").unwrap().len(), 100);
    expect(&mut ftp, "QUIT", 221);
}

#[test]
fn log_files_are_reopened_after_rename_on_sigusr1_and_sighup() {
    reopen_case("obs-reopen", &[]);
}

/// Under --chroot the log paths are outside the new root and the process is
/// no longer root: the reopen still creates the new files, in the
/// directories held open since start-up.
#[test]
fn log_files_are_reopened_after_chroot_and_privilege_drop() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "this test needs root (CI runs as root)");
        eprintln!("SKIPPED-LOUDLY: log reopen under --chroot needs root");
        return;
    }
    reopen_case("obs-reopen-chroot", &["--chroot", "--run-as", "nobody"]);
}

fn reopen_case(name: &str, extra: &[&str]) {
    let root = temp_dir(name);
    let etc = temp_dir(&format!("{name}-etc"));
    fs::write(root.join("f.bin"), pattern(6, 100)).unwrap();
    for p in [root.path(), etc.path()] {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(root.join("f.bin"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (log, xlog) = (etc.join("s.log"), etc.join("x.log"));
    let (larg, xarg) = (log.to_string_lossy().into_owned(), xlog.to_string_lossy().into_owned());
    let mut args = vec!["--log-file", &larg, "--xferlog", &xarg];
    args.extend_from_slice(extra);
    let server = Server::start(&root, &args);
    let pid = server.pid() as libc::pid_t;
    let rotate = |sig: libc::c_int, n: u32| {
        fs::rename(&log, etc.join(format!("s.log.{n}"))).unwrap();
        fs::rename(&xlog, etc.join(format!("x.log.{n}"))).unwrap();
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        wait_file(&log, "reopen line", |t| t.contains("log files reopened"));
    };
    fetch(&server);
    wait_file(&log, "session 1's end", |t| t.contains("session 1 end"));
    wait_file(&xlog, "a transfer line", |t| t.lines().count() == 1);
    rotate(libc::SIGUSR1, 1);
    fetch(&server);
    wait_file(&log, "session 2's end", |t| t.contains("session 2 end"));
    wait_file(&xlog, "a transfer line", |t| t.lines().count() == 1);
    rotate(libc::SIGHUP, 2);
    fetch(&server);
    let third = wait_file(&log, "session 3's end", |t| t.contains("session 3 end"));
    wait_file(&xlog, "a transfer line", |t| t.lines().count() == 1);

    let read = |name: &str| fs::read_to_string(etc.join(name)).unwrap();
    assert_eq!(sessions_in(&read("s.log.1")), [1]);
    assert_eq!(sessions_in(&read("s.log.2")), [2]);
    assert_eq!(sessions_in(&third), [3]);
    for n in ["x.log.1", "x.log.2", "x.log"] {
        let t = read(n);
        assert_eq!(t.lines().count(), 1, "{n}:\n{t}");
        assert!(t.contains(" 100 /f.bin b _ o a anonymous ftp 0 * c"), "{n}:\n{t}");
    }
}

#[test]
fn metrics_count_sessions_logins_transfers_and_errors_exactly() {
    let f = up_fx("obs-metrics", &["--metrics-listen", "127.0.0.1:0"], |root| {
        fs::write(root.join("f.bin"), pattern(7, 12_345)).unwrap();
    });
    let m = metrics_addr(&f.server);
    let body = scrape(m);
    assert_eq!(value(&body, "mirrorftpd_sessions_total{protocol=\"ftp\"}"), 0);
    assert_eq!(value(&body, "mirrorftpd_logins_total{protocol=\"ftp\",result=\"ok\"}"), 0);
    assert!(!body.contains("mirrorftpd_error_replies_total{"), "{body}");
    assert!(body.contains("# TYPE mirrorftpd_sessions_open gauge\n"), "{body}");
    assert!(body.contains("# TYPE mirrorftpd_loop_turn_seconds histogram\n"), "{body}");

    let mut ftp = Ftp::connect(f.server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("/f.bin").unwrap().len(), 12_345);
    expect(&mut ftp, "QUIT", 221);
    let mut bad = Ftp::connect(f.server.addr);
    expect(&mut bad, &format!("USER {UP_USER}"), 331);
    expect(&mut bad, "PASS not-the-password", 530);
    expect(&mut bad, "QUIT", 221);
    let mut up = login_up(&f.server);
    upload(&mut up, "STOR /u.bin", &pattern(8, 1000)).unwrap();
    expect(&mut up, "QUIT", 221);

    let body = scrape_when_closed(m, SHORT);
    for (series, want) in [
        ("mirrorftpd_sessions_total{protocol=\"ftp\"}", 3),
        ("mirrorftpd_logins_total{protocol=\"ftp\",result=\"ok\"}", 2),
        ("mirrorftpd_logins_total{protocol=\"ftp\",result=\"failed\"}", 1),
        ("mirrorftpd_transfer_bytes_total{protocol=\"ftp\",direction=\"download\"}", 12_345),
        ("mirrorftpd_transfer_bytes_total{protocol=\"ftp\",direction=\"upload\"}", 1000),
        ("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"download\",result=\"ok\"}", 1),
        ("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"upload\",result=\"ok\"}", 1),
        ("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"download\",result=\"aborted\"}", 0),
        ("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"upload\",result=\"failed\"}", 0),
        ("mirrorftpd_connections_refused_total{reason=\"max_per_ip\"}", 0),
        ("mirrorftpd_log_lines_dropped_total", 0),
    ] {
        assert_eq!(value(&body, series), want, "{series} in:\n{body}");
    }
    let errors: Vec<&str> = body.lines().filter(|l| l.starts_with("mirrorftpd_error_replies_total{")).collect();
    assert_eq!(errors, ["mirrorftpd_error_replies_total{code=\"530\"} 1"], "{body}");
    // Worker 0 served the scrapes; worker 1 may have had no connection.
    assert!(value(&body, "mirrorftpd_loop_turn_seconds_count{worker=\"0\"}") > 0, "{body}");
    for w in 0..2 {
        let count = value(&body, &format!("mirrorftpd_loop_turn_seconds_count{{worker=\"{w}\"}}"));
        assert_eq!(value(&body, &format!("mirrorftpd_loop_turn_seconds_bucket{{worker=\"{w}\",le=\"+Inf\"}}")), count);
    }
    assert_eq!(http(m, "GET /other HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(m, "POST /metrics HTTP/1.0\r\n\r\n").0, 405);
    assert_eq!(http(m, "garbage\r\n\r\n").0, 400);
}

#[test]
fn silent_metrics_clients_do_not_stop_ftp_or_scrapes() {
    let root = temp_dir("obs-silent");
    fs::write(root.join("f.bin"), pattern(6, 100)).unwrap();
    // One worker: the FTP sessions share the event loop with the metrics port.
    let server = Server::start(&root, &["--workers", "1", "--metrics-listen", "127.0.0.1:0"]);
    let m = metrics_addr(&server);
    let silent: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect_timeout(&m, SHORT).unwrap()).collect();
    let opened = Instant::now();
    // A client that sends half a request and stops.
    let mut half = TcpStream::connect_timeout(&m, SHORT).unwrap();
    half.write_all(b"GET /metr").unwrap();
    fetch(&server);
    let body = scrape(m);
    assert_eq!(value(&body, "mirrorftpd_sessions_total{protocol=\"ftp\"}"), 1);
    assert!(opened.elapsed() < Duration::from_secs(3), "FTP and a scrape took {:?}", opened.elapsed());
    // The oldest silent connections made room for the newer ones.
    let closed = |mut s: &TcpStream, wait: Duration| {
        s.set_read_timeout(Some(wait)).unwrap();
        match s.read(&mut [0u8; 16]) {
            Ok(0) => true,
            Ok(n) => panic!("{n} bytes sent to a client that asked nothing"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => true, // reset
        }
    };
    assert!(closed(&silent[0], SHORT), "the oldest silent connection is still open");
    assert!(!closed(&silent[11], Duration::from_millis(100)), "a recent silent connection was closed at once");
    // The rest are dropped at their deadline (5 s after they connected).
    assert!(closed(&silent[11], Duration::from_secs(8)), "a silent connection was never dropped");
    assert!(closed(&half, Duration::from_secs(1)), "a half request was never dropped");
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_secs(4), "dropped after {waited:?}, before the 5 s timeout");
    fetch(&server);
}

#[test]
fn refused_connections_are_counted_by_reason() {
    let root = temp_dir("obs-refused");
    let etc = temp_dir("obs-refused-etc");
    let bans = etc.join("bans");
    fs::write(&bans, "127.0.0.2\n").unwrap();
    let b = bans.display().to_string();
    let server = Server::start(
        &root,
        &["--metrics-listen", "127.0.0.1:0", "--ban-list", &b, "--max-per-ip", "1", "--workers", "1"],
    );
    let m = metrics_addr(&server);
    let refused = |what: &str| {
        let mut r = String::new();
        let mut s = crate::proxy::connect_from(what, server.addr);
        s.set_read_timeout(Some(SHORT)).unwrap();
        let _ = s.read_to_string(&mut r);
        assert!(r.starts_with("421 "), "{what}: {r:?}");
    };
    let _first = Ftp::connect(server.addr);
    refused("127.0.0.1"); // --max-per-ip 1
    refused("127.0.0.1");
    refused("127.0.0.2"); // --ban-list
    let body = scrape(m);
    assert_eq!(value(&body, "mirrorftpd_connections_refused_total{reason=\"max_per_ip\"}"), 2, "{body}");
    assert_eq!(value(&body, "mirrorftpd_connections_refused_total{reason=\"ban_list\"}"), 1, "{body}");
    assert_eq!(value(&body, "mirrorftpd_connections_refused_total{reason=\"max_clients\"}"), 0, "{body}");
}
