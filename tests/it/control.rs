//! The control state machine around transfers (issue 10): a restart marker
//! survives the commands that prepare a transfer and never turns into a full
//! download or a truncated upload; the control connection is heard during a
//! transfer (ABOR behind waiting commands, a bounded queue); REIN before,
//! between and during transfers.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{login_up, up_fx};
use crate::protocol::{
    Ctl, Fx, KIB, MIB, SHORT, accept_within, data_connect, drain, expect, fx, login, pasv_addr, pattern, put, read_n,
    sparse,
};
use crate::util::Ftp;

/// RETR of `path` on the data channel already set up; the bytes and the 226.
#[track_caller]
fn retr_on(ftp: &mut Ftp, mut data: std::net::TcpStream, path: &str) -> Vec<u8> {
    expect(ftp, &format!("RETR {path}"), 150);
    let (got, eof) = drain(&mut data);
    assert!(eof, "RETR {path}: the data connection must end in EOF");
    let done = ftp.reply();
    assert_eq!(done.0, 226, "RETR {path}: {done:?}");
    got
}

/// PASV and a connection to the address it names.
fn pasv(ftp: &mut Ftp) -> std::net::TcpStream {
    let text = expect(ftp, "PASV", 227);
    data_connect(pasv_addr(&text))
}

#[track_caller]
fn assert_tail(got: &[u8], body: &[u8], from: usize, what: &str) {
    assert!(
        got == &body[from..],
        "{what}: {} bytes received, expected the {} from offset {from}{}",
        got.len(),
        body.len() - from,
        if got.len() == body.len() { " (the whole file: the marker was lost)" } else { "" }
    );
}

// ---------------------------------------------------------------------------
// Restart markers
// ---------------------------------------------------------------------------

#[test]
fn rest_survives_pasv_epsv_port_eprt_type_mode_stru_noop_stat() {
    let body = pattern(10, 100_000);
    let f = fx("ctl-rest-prep", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);

    expect(&mut ftp, "REST 1234", 350);
    let data = ftp.pasv_connect();
    assert_tail(&retr_on(&mut ftp, data, "f.bin"), &body, 1234, "REST, EPSV, RETR");

    expect(&mut ftp, "REST 5000", 350);
    let data = pasv(&mut ftp);
    assert_tail(&retr_on(&mut ftp, data, "f.bin"), &body, 5000, "REST, PASV, RETR");

    expect(&mut ftp, "REST 7777", 350);
    for (cmd, code) in [("TYPE I", 200), ("MODE S", 200), ("STRU F", 200), ("NOOP", 200), ("STAT", 211)] {
        expect(&mut ftp, cmd, code);
    }
    let data = ftp.pasv_connect();
    assert_tail(&retr_on(&mut ftp, data, "f.bin"), &body, 7777, "REST, TYPE, MODE, STRU, NOOP, STAT, EPSV, RETR");

    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    expect(&mut ftp, "REST 9", 350);
    expect(&mut ftp, &format!("PORT 127,0,0,1,{},{}", p >> 8, p & 255), 200);
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, _) = drain(&mut accept_within(&l, SHORT));
    assert_eq!(ftp.reply().0, 226);
    assert_tail(&got, &body, 9, "REST, PORT, RETR");

    expect(&mut ftp, "REST 99999", 350);
    expect(&mut ftp, &format!("EPRT |1|127.0.0.1|{p}|"), 200);
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, _) = drain(&mut accept_within(&l, SHORT));
    assert_eq!(ftp.reply().0, 226);
    assert_tail(&got, &body, 99_999, "REST, EPRT, RETR");

    // RETR took the marker: the next one starts at 0.
    assert!(ftp.retr_bytes("f.bin").expect("RETR") == body, "a used marker must not apply twice");
}

#[test]
fn rest_stays_until_a_transfer_takes_it_whatever_comes_between() {
    // The chosen rule: only RETR/STOR/APPE/STOU take the marker (REST 0,
    // REIN, a login clear it); SIZE, CWD, a listing... leave it.
    let body = pattern(11, 50_000);
    let f = fx("ctl-rest-between", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);
    expect(&mut ftp, "REST 300", 350);
    expect(&mut ftp, "SIZE f.bin", 213);
    expect(&mut ftp, "CWD /", 250);
    expect(&mut ftp, "PWD", 257);
    assert!(!ftp.list("LIST").is_empty(), "LIST with a marker pending");
    let data = ftp.pasv_connect();
    assert_tail(&retr_on(&mut ftp, data, "f.bin"), &body, 300, "REST, SIZE, CWD, PWD, LIST, EPSV, RETR");
}

#[test]
fn rest_past_the_end_554_at_the_end_empty_226_rest_0_and_failures_clear() {
    let body = pattern(12, 1000);
    let f = fx("ctl-rest-end", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);

    // Past the end, with the data channel set up after REST: 554, never
    // the whole file.
    expect(&mut ftp, "REST 1001", 350);
    let _data = ftp.pasv_connect();
    let r = ftp.cmd("RETR f.bin");
    assert_eq!(r.0, 554, "REST past the end, EPSV, RETR: {r:?}");
    // The failed RETR cleared the marker.
    assert!(ftp.retr_bytes("f.bin").expect("RETR after a 554") == body);

    // Exactly at the end: an empty transfer.
    expect(&mut ftp, "REST 1000", 350);
    let data = ftp.pasv_connect();
    assert!(retr_on(&mut ftp, data, "f.bin").is_empty(), "REST at the end sends nothing");

    // REST 0 clears a marker.
    expect(&mut ftp, "REST 500", 350);
    expect(&mut ftp, "REST 0", 350);
    let data = ftp.pasv_connect();
    assert!(retr_on(&mut ftp, data, "f.bin") == body, "REST 0 must clear the marker");

    // A RETR that fails (no such file) clears it too.
    expect(&mut ftp, "REST 10", 350);
    let _data = ftp.pasv_connect();
    expect(&mut ftp, "RETR missing.bin", 550);
    assert!(ftp.retr_bytes("f.bin").expect("RETR after a 550") == body, "a failed RETR must clear the marker");
}

#[test]
fn rest_type_pasv_stor_resumes_without_truncating_and_appe_appends() {
    let src = pattern(13, 200_000);
    let cut = 123_457;
    let f = up_fx("ctl-rest-stor", &[], |r| put(r, "part.bin", &src[..cut]));
    let mut ftp = login_up(&f.server);
    expect(&mut ftp, &format!("REST {cut}"), 350);
    expect(&mut ftp, "TYPE I", 200);
    let mut data = pasv(&mut ftp);
    expect(&mut ftp, "STOR part.bin", 150);
    data.write_all(&src[cut..]).expect("data");
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    let got = fs::read(f.root.join("part.bin")).expect("part.bin");
    assert!(
        got == src,
        "REST {cut}, TYPE I, PASV, STOR: {} bytes on disk, expected {} (the first {cut} kept)",
        got.len(),
        src.len()
    );

    // APPE appends at the end whatever the marker, and takes it.
    expect(&mut ftp, "REST 3", 350);
    let mut data = ftp.pasv_connect();
    expect(&mut ftp, "APPE part.bin", 150);
    data.write_all(b"tail").expect("data");
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    let mut want = src.clone();
    want.extend_from_slice(b"tail");
    assert!(fs::read(f.root.join("part.bin")).expect("part.bin") == want, "REST 3 + APPE appends at the end");
    let mut data = ftp.pasv_connect();
    expect(&mut ftp, "STOR part.bin", 150);
    data.write_all(b"new").expect("data");
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(fs::read(f.root.join("part.bin")).expect("part.bin"), b"new", "APPE used the marker up");
}

// ---------------------------------------------------------------------------
// The control connection during a transfer
// ---------------------------------------------------------------------------

/// A root with a 64 MiB sparse `big.bin` (a RETR of it outlasts the socket
/// buffers while the client does not read) and an 11-byte `small.txt`.
fn big_fx(name: &str, args: &[&str]) -> Fx {
    fx(name, args, |r| {
        sparse(&r.join("big.bin"), 64 * MIB);
        put(r, "small.txt", b"small file\n");
    })
}

/// A logged-in control client with a RETR of big.bin running and stalled
/// (the data connection is not read); 16 KiB were read from it.
fn stalled_retr(f: &Fx) -> (Ctl, std::net::TcpStream) {
    let mut c = Ctl::open(f.server.addr);
    c.login();
    let mut data = c.epsv_connect();
    assert_eq!(c.cmd("RETR big.bin").0, 150);
    read_n(&mut data, 16 * KIB);
    (c, data)
}

#[track_caller]
fn reply_code(c: &mut Ctl, what: &str) -> (u16, String) {
    c.reply().unwrap_or_else(|e| panic!("no reply ({what}): {e}"))
}

#[test]
fn abor_is_heard_behind_waiting_commands_which_then_run_in_order() {
    let f = big_fx("ctl-abor-behind", &[]);
    let (mut c, mut data) = stalled_retr(&f);
    // SIZE must wait for the transfer; NOOP waits behind it (its reply must
    // not overtake SIZE's).
    c.send(b"SIZE small.txt\r\nNOOP\r\n");
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    c.send(b"ABOR\r\n");
    let r = reply_code(&mut c, "ABOR behind SIZE and NOOP");
    assert_eq!(r.0, 426, "first reply to ABOR: {r:?}");
    assert!(t.elapsed() < SHORT, "ABOR answered after {:?}", t.elapsed());
    assert_eq!(reply_code(&mut c, "ABOR").0, 226);
    assert_eq!(reply_code(&mut c, "the waiting SIZE"), (213, "11".into()));
    assert_eq!(reply_code(&mut c, "the waiting NOOP").0, 200);
    let (rest, eof) = drain(&mut data);
    assert!(eof && (rest.len() as u64) < 64 * MIB - 16 * KIB as u64, "ABOR must stop the transfer");
    assert_eq!(c.cmd("NOOP").0, 200);
}

#[test]
fn waiting_commands_are_bounded_stat_abor_and_rein_still_heard() {
    const HELD: usize = 16; // limits::MAX_HELD_COMMANDS
    let f = big_fx("ctl-held-bound", &[]);
    let (mut c, mut data) = stalled_retr(&f);
    let mut lines = Vec::new();
    for _ in 0..HELD + 3 {
        lines.extend_from_slice(b"SIZE small.txt\r\n");
    }
    c.send(&lines);
    // The three beyond the bound are refused at once; the transfer runs on.
    for i in 0..3 {
        let r = reply_code(&mut c, "a command beyond the queue's bound");
        assert_eq!(r.0, 503, "command {} of {}: {r:?}", HELD + 1 + i, HELD + 3);
    }
    let stat = c.cmd("STAT");
    assert!(stat.0 == 213 && stat.1.contains("big.bin"), "STAT with a full queue shows the transfer: {stat:?}");
    // REIN has a slot of its own: heard at once (120), done after the transfer.
    assert_eq!(c.cmd("REIN").0, 120);
    c.send(b"ABOR\r\n");
    assert_eq!(reply_code(&mut c, "ABOR with a full queue").0, 426);
    assert_eq!(reply_code(&mut c, "ABOR").0, 226);
    for i in 0..HELD {
        assert_eq!(reply_code(&mut c, "a waiting SIZE"), (213, "11".into()), "waiting command {i}");
    }
    assert_eq!(reply_code(&mut c, "the waiting REIN").0, 220);
    assert_eq!(c.cmd("PWD").0, 530, "REIN ended the login");
    let (_, eof) = drain(&mut data);
    assert!(eof);
}

// ---------------------------------------------------------------------------
// REIN
// ---------------------------------------------------------------------------

#[test]
fn rein_before_and_after_login_returns_to_the_greeting_state() {
    let f = fx("ctl-rein", &[], |r| put(r, "d/f.txt", b"hello"));
    let mut ftp = Ftp::connect(f.server.addr);
    // Before a login: 220, and a USER given is forgotten.
    expect(&mut ftp, "REIN", 220);
    expect(&mut ftp, "USER anonymous", 331);
    expect(&mut ftp, "REIN", 220);
    expect(&mut ftp, "PASS a@b", 503);

    ftp.login_anon();
    expect(&mut ftp, "CWD d", 250);
    expect(&mut ftp, "REST 3", 350);
    expect(&mut ftp, "REIN", 220);
    for cmd in ["PWD", "RETR f.txt", "EPSV", "CWD /"] {
        expect(&mut ftp, cmd, 530);
    }
    expect(&mut ftp, "USER anonymous", 331);
    expect(&mut ftp, "PASS a@b", 230);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/\""), "REIN resets the directory");
    let stat = expect(&mut ftp, "STAT", 211);
    assert!(stat.contains("TYPE: ASCII"), "REIN resets TYPE: {stat:?}");
    assert_eq!(ftp.retr_bytes("d/f.txt").expect("RETR after REIN"), b"hello", "REIN clears the marker");
}

#[test]
fn rein_during_a_transfer_is_answered_at_once_and_done_when_it_completes() {
    let f = big_fx("ctl-rein-xfer", &[]);
    let (mut c, mut data) = stalled_retr(&f);
    let r = c.cmd("REIN");
    assert_eq!(r.0, 120, "REIN during a transfer: {r:?}");
    // Commands after REIN wait behind it and run after it.
    c.send(b"USER anonymous\r\nPASS a@b\r\n");
    let (got, eof) = drain(&mut data);
    assert!(eof);
    assert_eq!(got.len() as u64 + 16 * KIB as u64, 64 * MIB, "the transfer in progress completes");
    assert_eq!(reply_code(&mut c, "end of the transfer").0, 226);
    assert_eq!(reply_code(&mut c, "REIN done").0, 220);
    assert_eq!(reply_code(&mut c, "USER after REIN").0, 331);
    assert_eq!(reply_code(&mut c, "PASS after REIN").0, 230);
    assert_eq!(c.cmd("SIZE small.txt"), (213, "11".into()));
}

#[test]
fn rein_after_a_login_opens_a_new_login_window_before_one_does_not() {
    let f = fx("ctl-rein-window", &["--login-timeout", "2", "--idle-timeout", "30"], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    ftp.login_anon();
    thread::sleep(Duration::from_millis(2500));
    expect(&mut ftp, "REIN", 220);
    thread::sleep(Duration::from_millis(500));
    expect(&mut ftp, "USER anonymous", 331);
    expect(&mut ftp, "PASS a@b", 230);

    // REIN before any login gives no extra time.
    let mut slow = Ftp::connect(f.server.addr);
    thread::sleep(Duration::from_millis(1200));
    expect(&mut slow, "REIN", 220);
    let t = Instant::now();
    let r = slow.reply();
    assert_eq!(r.0, 421, "the login timeout still counts from the connection: {r:?}");
    assert!(t.elapsed() < Duration::from_millis(1500), "421 came {:?} after REIN", t.elapsed());
}
