//! Limits: --max-rate (downloads paced by the kernel, plain and TLS; uploads
//! throttled by a token bucket), --max-rate-total shared by concurrent
//! transfers, --ban-list with SIGHUP reload, bad values refused at startup,
//! and --max-clients / --max-per-ip exact under a burst of simultaneous
//! connects spread over two workers.
//!
//! Timing bounds are one-sided where flakiness could hide: a limited transfer
//! can never be faster than its rate allows (minus one initial burst), so the
//! lower bounds are hard; the upper bounds are loose.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{login_up, up_fx, upload};
use crate::protocol::{MIB, SHORT, fx, login, pattern, put};
use crate::util::{Ftp, require_tool, run, run_ok, temp_dir};

/// 4 MiB at 2 MiB/s is 2 s; allow the initial burst (the kernel lets about
/// 400 KB go before its pacing bites; a bucket starts with one slice) and
/// nothing more. Measured here: 1.8 s.
const SIZE: usize = 4 << 20;
const RATE: &str = "2M";
const MIN_LIMITED: Duration = Duration::from_millis(1600);
/// Far more than an unlimited loopback transfer of 4 MiB needs, far less
/// than a limited one.
const MAX_UNLIMITED: Duration = Duration::from_millis(800);

/// Downloads `path` and returns its bytes and how long the transfer took
/// (from the transfer command to the 226).
fn timed_retr(ftp: &mut Ftp, path: &str) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let got = ftp.retr_bytes(path).unwrap_or_else(|r| panic!("RETR {path}: {r:?}"));
    (got, t.elapsed())
}

#[test]
fn max_rate_paces_a_download_and_unlimited_is_fast() {
    let data = pattern(61, SIZE);
    let limited = fx("lim-retr", &["--max-rate", RATE], |r| put(r, "f.bin", &data));
    let free = fx("lim-retr-free", &[], |r| put(r, "f.bin", &data));

    let mut ftp = login(&free.server);
    let (got, fast) = timed_retr(&mut ftp, "/f.bin");
    assert!(got == data, "unlimited download corrupted");
    assert!(fast < MAX_UNLIMITED, "unlimited 4 MiB download took {fast:?}");

    let mut ftp = login(&limited.server);
    let (got, slow) = timed_retr(&mut ftp, "/f.bin");
    assert!(got == data, "limited download corrupted ({} bytes)", got.len());
    assert!(slow >= MIN_LIMITED, "--max-rate {RATE}: 4 MiB in {slow:?}, faster than the limit");
    assert!(slow < Duration::from_secs(6), "--max-rate {RATE}: 4 MiB took {slow:?}");
    // The session goes on normally after a paced transfer.
    assert_eq!(ftp.cmd("NOOP").0, 200);
}

#[test]
fn max_rate_paces_a_listing() {
    // LIST of 5000 long names (over 1 MiB) at 512 KiB/s: about 2 s.
    let limited = fx("lim-list", &["--max-rate", "512K"], |r| {
        fs::create_dir(r.join("d")).expect("mkdir d");
        let long = "n".repeat(200);
        for i in 0..5_000 {
            fs::write(r.join(format!("d/{i:05}-{long}")), b"").expect("create");
        }
    });
    let mut ftp = login(&limited.server);
    let t = Instant::now();
    let list = ftp.list("LIST /d");
    let took = t.elapsed();
    let len = list.len() as f64;
    assert!(len > MIB as f64, "listing only {len} bytes");
    // The kernel lets a few segments go before pacing bites (about 400 KB on
    // loopback, whatever the rate); allow 512 KiB of burst.
    let floor = Duration::from_secs_f64((len - 512.0 * 1024.0) / (512.0 * 1024.0));
    assert!(took >= floor, "LIST of {len} bytes at 512K took {took:?} (< {floor:?})");
}

#[test]
fn max_rate_paces_a_tls_download() {
    if !require_tool("curl") || !require_tool("openssl") {
        return;
    }
    let pki = temp_dir("lim-tls-pki");
    let (cert, key) = crate::ftps::make_cert(&pki, "lim");
    let data = pattern(62, SIZE);
    let (c, k) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let f = fx("lim-tls", &["--max-rate", RATE, "--tls-cert", &c, "--tls-key", &k], |r| put(r, "f.bin", &data));
    let out = f.root.join("got.bin");
    let t = Instant::now();
    run_ok(
        Command::new("curl")
            .args(["-sS", "--ssl-reqd", "-k", "--max-time", "20", "-o"])
            .arg(&out)
            .arg(f.server.url("f.bin")),
        Duration::from_secs(25),
    );
    let took = t.elapsed();
    assert!(fs::read(&out).expect("curl output") == data, "TLS download corrupted");
    assert!(took >= MIN_LIMITED, "--max-rate {RATE} over TLS: 4 MiB in {took:?}");
}

/// Uploads `data` as `name`; returns how long it took (150 to 226).
fn timed_upload(ftp: &mut Ftp, name: &str, data: &[u8]) -> Duration {
    let t = Instant::now();
    upload(ftp, &format!("STOR {name}"), data).unwrap_or_else(|r| panic!("STOR {name}: {r:?}"));
    t.elapsed()
}

#[test]
fn max_rate_throttles_an_upload_without_a_false_data_timeout() {
    let data = pattern(63, SIZE);
    // --data-timeout 1: the upload takes twice that, waiting on the bucket;
    // those waits must not count as a stalled data connection.
    let limited = up_fx("lim-stor", &["--max-rate", RATE, "--data-timeout", "1"], |_| {});
    let free = up_fx("lim-stor-free", &[], |_| {});

    let mut ftp = login_up(&free.server);
    let fast = timed_upload(&mut ftp, "u.bin", &data);
    assert!(fast < MAX_UNLIMITED, "unlimited 4 MiB upload took {fast:?}");

    let mut ftp = login_up(&limited.server);
    let slow = timed_upload(&mut ftp, "u.bin", &data);
    assert!(fs::read(limited.root.join("u.bin")).expect("u.bin") == data, "limited upload corrupted");
    assert!(slow >= MIN_LIMITED, "--max-rate {RATE}: 4 MiB upload in {slow:?}, faster than the limit");
    assert!(slow < Duration::from_secs(6), "--max-rate {RATE}: 4 MiB upload took {slow:?}");
    // A second upload gets no fresh burst: the session's bucket is kept.
    let again = timed_upload(&mut ftp, "v.bin", &data[..SIZE / 2]);
    assert!(again >= Duration::from_millis(800), "second upload of 2 MiB at {RATE} in {again:?}");
    assert_eq!(ftp.cmd("NOOP").0, 200);
}

/// `n` sessions download `path` at the same moment; each gives the bytes
/// received, the final reply code and the time from RETR to that reply.
fn concurrent_retr(addr: SocketAddr, n: usize, path: &'static str) -> Vec<(usize, u16, Duration)> {
    let start = Arc::new(Barrier::new(n));
    let ts: Vec<_> = (0..n)
        .map(|_| {
            let start = start.clone();
            thread::spawn(move || {
                let mut ftp = Ftp::connect(addr);
                ftp.login_anon();
                let mut data = ftp.pasv_connect();
                start.wait();
                let t = Instant::now();
                ftp.send(&format!("RETR {path}"));
                assert_eq!(ftp.reply().0, 150);
                let mut got = Vec::new();
                data.read_to_end(&mut got).expect("reading data");
                let done = ftp.reply().0;
                (got.len(), done, t.elapsed())
            })
        })
        .collect();
    ts.into_iter().map(|t| t.join().expect("download thread")).collect()
}

#[test]
fn max_rate_total_is_shared_by_concurrent_downloads() {
    // Two downloads of 4 MiB under a total of 4 MiB/s: 8 MiB take 2 s, and
    // each must get about half (neither may finish in the first 1.5 s, which
    // an unfair split or a per-session reading of the limit would allow).
    let data = pattern(64, SIZE);
    let f = fx("lim-total", &["--max-rate-total", "4M"], |r| put(r, "f.bin", &data));
    let t0 = Instant::now();
    let res = concurrent_retr(f.server.addr, 2, "/f.bin");
    let all = t0.elapsed();
    for (len, code, took) in &res {
        assert_eq!((*len, *code), (SIZE, 226), "{res:?}");
        assert!(*took >= Duration::from_millis(1500), "a download sharing 4M finished in {took:?}: {res:?}");
    }
    assert!(all < Duration::from_secs(6), "two shared downloads took {all:?}");
}

#[test]
fn waiting_for_the_total_bucket_is_not_a_data_timeout() {
    // 5 downloads of 48 KiB share 64 KiB/s in 16 KiB chunks: each waits
    // about 1.25 s for its next chunk, longer than --data-timeout 1. Those
    // waits are the server's own; every transfer must end with 226.
    let f = fx("lim-total-wait", &["--max-rate-total", "64K", "--data-timeout", "1"], |r| {
        put(r, "s.bin", &pattern(65, 48 << 10))
    });
    let t0 = Instant::now();
    let res = concurrent_retr(f.server.addr, 5, "/s.bin");
    let all = t0.elapsed();
    for (len, code, _) in &res {
        assert_eq!((*len, *code), (48 << 10, 226), "a throttled download failed: {res:?}");
    }
    // 240 KiB at 64 KiB/s, less one 16 KiB burst: 3.5 s.
    assert!(all >= Duration::from_secs(3), "5 × 48 KiB under 64K took only {all:?}");
}

/// Connects and returns the first reply code (0: closed without one).
fn first_code(addr: SocketAddr) -> (u16, TcpStream) {
    let mut s = TcpStream::connect_timeout(&addr, SHORT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let code = std::str::from_utf8(got.get(..3).unwrap_or(b"")).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, s)
}

fn sighup(pid: u32) {
    run_ok(Command::new("kill").args(["-HUP", &pid.to_string()]), SHORT);
}

/// Waits until a new connection gets `want` as its first reply.
fn until_code(addr: SocketAddr, want: u16, what: &str) {
    let deadline = Instant::now() + SHORT;
    loop {
        let (code, _) = first_code(addr);
        if code == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {code}, not {want}, after {SHORT:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ban_list_refuses_and_sighup_reloads_it() {
    let etc = temp_dir("lim-ban-etc");
    let list = etc.join("bans.txt");
    fs::write(&list, "# abusers\n192.0.2.0/24\n127.0.0.0/8  # everyone local\n").expect("ban list");
    let l = list.to_string_lossy().into_owned();
    let f = fx("lim-ban", &["--ban-list", &l], |_| {});
    let addr = f.server.addr;
    let (code, _) = first_code(addr);
    assert_eq!(code, 421, "a listed address must get 421");

    // Un-ban on reload.
    fs::write(&list, "192.0.2.0/24\n").expect("ban list");
    sighup(f.server.pid());
    until_code(addr, 220, "after removing 127.0.0.0/8 and SIGHUP");
    let mut ftp = login(&f.server);

    // A broken file keeps the list in force (still un-banned) and is logged.
    fs::write(&list, "127.0.0.1\nnot-an-address\n").expect("ban list");
    sighup(f.server.pid());
    assert!(f.server.wait_log("ban list not reloaded", SHORT), "no error logged:\n{}", f.server.log());
    assert!(
        f.server.wait_log(":2:", std::time::Duration::from_secs(5)),
        "the error must name the line:\n{}",
        f.server.log()
    );
    assert_eq!(first_code(addr).0, 220, "a bad file must not replace the list");

    // Ban again: new connections are refused, the open session goes on.
    fs::write(&list, "127.0.0.1\n").expect("ban list");
    sighup(f.server.pid());
    until_code(addr, 421, "after banning 127.0.0.1 and SIGHUP");
    assert_eq!(ftp.cmd("NOOP").0, 200);
}

#[test]
fn bad_limit_values_are_refused_at_startup() {
    let root = temp_dir("lim-bad");
    let etc = temp_dir("lim-bad-etc");
    let bad_list = etc.join("bans.txt");
    fs::write(&bad_list, "10.0.0.0/8\n10.0.0.0/40\n").expect("ban list");
    let missing = etc.join("nope.txt");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--max-rate".into(), "10X".into()], "K, M or G"),
        (vec!["--max-rate=-5".into()], "--max-rate"),
        (vec!["--max-rate".into(), "1.5M".into()], "1.5M"),
        (vec!["--max-rate-total".into(), "99999999999G".into()], "--max-rate-total"),
        (vec!["--ban-list".into(), bad_list.to_string_lossy().into_owned()], "bans.txt:2:"),
        (vec!["--ban-list".into(), missing.to_string_lossy().into_owned()], "nope.txt"),
    ];
    for (args, needle) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
        cmd.arg("--root").arg(root.path()).args(["--listen", "127.0.0.1:0"]).args(&args);
        let ran = run(&mut cmd, SHORT);
        assert!(!ran.status.success(), "{args:?} was accepted");
        assert!(ran.stderr.contains(needle), "{args:?}: error does not mention {needle:?}: {}", ran.stderr);
    }
}

/// Opens `n` connections at once from `n` threads and holds them; returns
/// how many got 220 and how many 421, and the held connections.
fn burst(addr: SocketAddr, n: usize) -> (usize, usize, Vec<TcpStream>) {
    let go = Arc::new(Barrier::new(n));
    let ts: Vec<_> = (0..n)
        .map(|_| {
            let go = go.clone();
            thread::spawn(move || {
                go.wait();
                first_code(addr)
            })
        })
        .collect();
    let (mut ok, mut refused, mut held) = (0, 0, Vec::new());
    for t in ts {
        let (code, s) = t.join().expect("connect thread");
        match code {
            220 => ok += 1,
            421 => refused += 1,
            other => panic!("unexpected first reply {other}"),
        }
        held.push(s);
    }
    (ok, refused, held)
}

/// `burst` until every slot of the last round is free again (sessions are
/// released when the server sees the close).
fn burst_after_close(addr: SocketAddr, n: usize, limit: usize, what: &str) {
    let deadline = Instant::now() + SHORT;
    loop {
        let (ok, refused, held) = burst(addr, n);
        assert!(ok <= limit, "{what}: {ok} admitted over a limit of {limit}");
        if ok == limit {
            assert_eq!(refused, n - limit);
            return;
        }
        drop(held);
        assert!(Instant::now() < deadline, "{what}: only {ok} of {limit} slots came back");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn max_clients_is_exact_under_200_simultaneous_connects() {
    let f = fx("lim-race-clients", &["--max-clients", "50", "--max-per-ip", "1000", "--workers", "2"], |_| {});
    let (ok, refused, held) = burst(f.server.addr, 200);
    assert_eq!((ok, refused), (50, 150), "--max-clients 50 with 200 simultaneous connects");
    // Any session left open must still work.
    drop(held);
    burst_after_close(f.server.addr, 80, 50, "--max-clients 50 after the first 50 closed");
}

#[test]
fn a_refusal_names_the_flag_to_raise_in_the_server_log_but_not_to_the_client() {
    // Issue 11: a benchmark's 64 sessions from one address against the
    // default --max-per-ip 50 failed with nothing saying which flag to change.
    let f = fx("lim-hint", &["--max-per-ip", "2"], |_| {});
    let held: Vec<_> = (0..2).map(|_| first_code(f.server.addr)).collect();
    assert!(held.iter().all(|(c, _)| *c == 220));
    let mut s = TcpStream::connect(f.server.addr).expect("connect");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the refusal");
    assert_eq!(reply, "421 Too many connections from your address.\r\n", "the client learns no limit");
    let line = "Too many connections from your address. (--max-per-ip 2 reached for this address; raise it";
    assert!(f.server.wait_log(line, SHORT), "the log names the flag:\n{}", f.server.log());
}

#[test]
fn max_per_ip_is_exact_under_100_simultaneous_connects() {
    let f = fx("lim-race-perip", &["--max-per-ip", "10", "--workers", "2"], |_| {});
    let (ok, refused, held) = burst(f.server.addr, 100);
    assert_eq!((ok, refused), (10, 90), "--max-per-ip 10 with 100 simultaneous connects");
    drop(held);
    burst_after_close(f.server.addr, 30, 10, "--max-per-ip 10 after the first 10 closed");
}
