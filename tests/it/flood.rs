//! Exhaustion: the server out of file descriptors (EMFILE) and 10,000 connections opened at
//! once. Every client gets an answer (220 or 421, never silence), the sessions already open
//! keep working, the server does not spin, and its descriptors come back afterwards.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

use crate::protocol::{Ctl, KIB, expect, fx, login, pattern, put};
use crate::util::Ftp;

/// Open descriptors of process `pid`.
pub(crate) fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// User + system CPU time of process `pid` (all threads), from /proc/PID/stat.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Process `pid`'s RLIMIT_NOFILE (0: this process) as (soft, hard).
fn nofile(pid: u32) -> (u64, u64) {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a null new-limit pointer only reads the limit into the writable `old`.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit({pid}, NOFILE): {}", io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Sets process `pid`'s (0: this process) soft RLIMIT_NOFILE to `soft` (the hard limit stays).
fn set_nofile(pid: u32, soft: u64) {
    let new = libc::rlimit { rlim_cur: soft, rlim_max: nofile(pid).1 };
    // SAFETY: `new` is a valid rlimit; a null old-limit pointer is allowed.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit({pid}, NOFILE, {soft}): {}", io::Error::last_os_error());
}

/// Raises this test process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.
fn raise_own_nofile() -> u64 {
    let hard = nofile(0).1;
    set_nofile(0, hard);
    hard
}

/// Waits until `pid` holds exactly `want` descriptors; returns the last count seen.
fn settle_fds(pid: u32, want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = fd_count(pid);
        if n == want || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A new client's first reply, or the I/O error instead of one.
fn first_reply(addr: SocketAddr) -> (Ctl, io::Result<(u16, String)>) {
    let mut c = Ctl::raw(addr);
    c.stream.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let r = c.reply();
    (c, r)
}

#[test]
fn out_of_descriptors_new_clients_get_421_old_sessions_go_on_without_spinning() {
    let body = pattern(5, 256 * KIB);
    let f = fx("flood-emfile", &["--workers", "1"], |r| put(r, "small.bin", &body));
    let pid = f.server.pid();
    let addr = f.server.addr;
    // One full session first, so everything opened lazily is open, and one kept logged in.
    let mut old = login(&f.server);
    assert_eq!(old.retr_bytes("small.bin").expect("RETR before the limit"), body);
    thread::sleep(Duration::from_millis(200));
    let base = fd_count(pid);
    set_nofile(pid, base as u64 + 6);

    // Fill the table: a few sessions fit, then every new client must hear 421 and be closed.
    let mut kept = Vec::new();
    let mut refused = None;
    for _ in 0..40 {
        let (c, r) = first_reply(addr);
        match r {
            Ok((220, _)) => kept.push(c),
            Ok((421, text)) => {
                refused = Some((c, text));
                break;
            }
            other => panic!("after {} sessions at the descriptor limit: {other:?}, expected 220 or 421", kept.len()),
        }
    }
    let (mut c, text) = refused.unwrap_or_else(|| panic!("{} sessions and never a 421", kept.len()));
    assert!(kept.len() >= 3 && kept.len() <= 8, "{} sessions fit in 6 spare descriptors", kept.len());
    assert!(text.contains("file descriptors"), "421 text: {text:?}");
    assert!(c.reply().is_err(), "the connection is closed after the 421");

    // Under EMFILE a data command is a 4xx on the old session, never a hang or a crash.
    let epsv = old.cmd("EPSV");
    assert!((400..500).contains(&epsv.0), "EPSV with no descriptor left: {epsv:?}, expected 4xx");
    let port = old.cmd("PORT 127,0,0,1,4,1");
    assert_eq!(port.0, 200, "PORT only records the address: {port:?}");
    let retr = old.cmd("RETR small.bin");
    assert!((400..500).contains(&retr.0), "RETR (active) with no descriptor left: {retr:?}, expected 4xx");
    expect(&mut old, "PORT 127,0,0,1,4,1", 200);
    let list = old.cmd("LIST");
    assert!((400..500).contains(&list.0), "LIST (active) with no descriptor left: {list:?}, expected 4xx");
    eprintln!("EMFILE replies: EPSV {epsv:?}, RETR {retr:?}, LIST {list:?}");
    expect(&mut old, "NOOP", 200);

    // Sustained EMFILE: clients keep arriving for 2 s, each told 421; the server must not spin.
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut told = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let (_c, r) = first_reply(addr);
        assert!(matches!(&r, Ok((421, _))), "client {told} during sustained EMFILE: {r:?}");
        told += 1;
        thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_time(pid) - cpu0;
    let share = cpu.as_secs_f64() / t0.elapsed().as_secs_f64();
    eprintln!(
        "EMFILE: {told} clients told 421 in {:?}; server CPU {cpu:?} = {:.1}% of a core",
        t0.elapsed(),
        share * 100.0
    );
    assert!(share < 0.20, "the server used {:.0}% of a core while out of descriptors", share * 100.0);

    // Free a few descriptors: the old session downloads again, and new sessions are admitted.
    kept.truncate(kept.len() - 3);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(old.retr_bytes("small.bin").expect("RETR on the old session after descriptors freed"), body);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (mut c, r) = first_reply(addr);
        match r {
            Ok((220, _)) => {
                assert_eq!(c.cmd("NOOP").0, 200);
                break;
            }
            Ok((421, _)) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            other => panic!("no new session after descriptors were freed: {other:?}"),
        }
    }
    for c in &mut kept {
        assert_eq!(c.cmd("NOOP").0, 200, "a session opened before EMFILE still answers");
    }
}

/// One of the flood's connections.
struct Conn {
    stream: MioStream,
    got: Vec<u8>,
    code: Option<u16>,
}

#[test]
fn ten_thousand_connections_at_once_each_get_220_or_421() {
    const N: usize = 10_000;
    const MAX: usize = 5_000;
    let soft = raise_own_nofile();
    assert!(soft >= (N + 200) as u64, "this test needs RLIMIT_NOFILE >= {} (hard limit {soft})", N + 200);
    let max = MAX.to_string();
    // The server starts with a low soft limit (the usual 1024) and must raise it to the hard one.
    set_nofile(0, 1024);
    let f = fx("flood-10k", &["--max-clients", &max, "--max-per-ip", "20000", "--backlog", "4096", "--quiet"], |r| {
        put(r, "f.txt", b"still here\n")
    });
    raise_own_nofile();
    let pid = f.server.pid();
    assert_eq!(nofile(pid), (soft, soft), "the server raised its soft open-file limit to the hard one");
    thread::sleep(Duration::from_millis(200));
    let base = fd_count(pid);

    let t0 = Instant::now();
    let mut poll = Poll::new().expect("poll");
    let mut conns: HashMap<usize, Conn> = HashMap::with_capacity(N);
    for i in 0..N {
        let mut stream = MioStream::connect(f.server.addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        poll.registry().register(&mut stream, Token(i), Interest::READABLE).expect("register");
        conns.insert(i, Conn { stream, got: Vec::new(), code: None });
    }
    let mut events = Events::with_capacity(4096);
    let mut pending = N;
    let mut buf = [0u8; 512];
    let deadline = t0 + Duration::from_secs(12);
    while pending > 0 && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(200))).expect("poll");
        for ev in events.iter() {
            let c = conns.get_mut(&ev.token().0).expect("conn");
            if c.code.is_some() {
                continue;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => c.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if c.got.contains(&b'\n') {
                c.code = std::str::from_utf8(&c.got[..3]).ok().and_then(|s| s.parse().ok()).or(Some(0));
                pending -= 1;
            }
        }
    }
    let took = t0.elapsed();
    let mut by_code: HashMap<u16, usize> = HashMap::new();
    for c in conns.values() {
        *by_code.entry(c.code.unwrap_or(0)).or_default() += 1;
    }
    eprintln!("10k flood: replies {by_code:?} in {took:?}");
    assert_eq!(pending, 0, "{pending} connections got no reply within {took:?}: {by_code:?}");
    assert_eq!(by_code.get(&220).copied(), Some(MAX), "exactly --max-clients greetings: {by_code:?}");
    assert_eq!(by_code.get(&421).copied(), Some(N - MAX), "every other connection 421: {by_code:?}");

    // While 5,000 sessions are open a new one is refused; after they close, it is served.
    let (_c, r) = first_reply(f.server.addr);
    assert!(matches!(r, Ok((421, _))), "a new session at --max-clients: {r:?}");
    drop(conns);
    drop(poll);
    let left = settle_fds(pid, base, Duration::from_secs(8));
    assert_eq!(left, base, "the server's descriptors after the flood (before: {base})");
    let mut ftp = Ftp::connect(f.server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("f.txt").expect("RETR after the flood"), b"still here\n");
    expect(&mut ftp, "NOOP", 200);
}
