//! Faults: clients that vanish, stall, trickle or idle; an uploader killed
//! mid-STOR; files that shrink or are replaced while being sent; a tree
//! removed while it is listed. The server must answer with the right code
//! and keep serving everyone else.

use std::fs::{self, File};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::protocol::{Ctl, Fx, KIB, MIB, begin, drain, expect, fx, login, pattern, put, read_n, sparse};
use crate::util::Ftp;

/// A root with a 64 MiB sparse `big.bin` (more than socket buffers hold),
/// and a 1 MiB patterned `small.bin`.
fn faults_fx(name: &str, args: &[&str]) -> Fx {
    fx(name, args, |r| {
        sparse(&r.join("big.bin"), 64 * MIB);
        put(r, "small.bin", &pattern(11, MIB as usize));
    })
}

/// Another client can log in and download correctly right now.
fn others_are_served(addr: SocketAddr) {
    let mut ftp = Ftp::connect(addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("small.bin").expect("RETR small.bin by another client"), pattern(11, MIB as usize));
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn client_vanishing_mid_retr_leaves_server_serving() {
    let f = faults_fx("faults-vanish", &[]);
    for i in 0..6 {
        let mut ftp = login(&f.server);
        let mut data = begin(&mut ftp, b"RETR big.bin");
        read_n(&mut data, 8 * KIB);
        if i % 2 == 1 {
            // Abortive close: the server sees a reset, not a FIN.
            SockRef::from(&data).set_linger(Some(Duration::ZERO)).expect("linger");
        }
        drop(data);
        drop(ftp);
    }
    others_are_served(f.server.addr);
    // The full large file still comes through for a client that stays.
    let mut ftp = login(&f.server);
    let mut data = begin(&mut ftp, b"RETR big.bin");
    let (got, eof) = drain(&mut data);
    assert!(eof);
    assert_eq!(got.len() as u64, 64 * MIB);
    assert!(got.iter().all(|&b| b == 0));
    assert_eq!(ftp.reply().0, 226);
}

#[test]
fn file_truncated_during_retr_gives_451() {
    let f = faults_fx("faults-truncate", &[]);
    let path = f.root.join("big.bin");
    let mut ftp = login(&f.server);
    let mut data = begin(&mut ftp, b"RETR big.bin");
    read_n(&mut data, 16 * KIB);
    File::options().write(true).open(&path).expect("open").set_len(MIB).expect("truncate");
    let (got, _) = drain(&mut data);
    let r = ftp.reply();
    assert_eq!(r.0, 451, "RETR of a file truncated to 1 MiB after {} of 64 MiB were read: {r:?}", got.len() + 16 * KIB);
    assert!(((got.len() + 16 * KIB) as u64) < 64 * MIB);
    expect(&mut ftp, "NOOP", 200);
    assert_eq!(expect(&mut ftp, "SIZE big.bin", 213), MIB.to_string());
}

#[test]
fn file_replaced_by_rename_during_retr_sends_old_content() {
    const LEN: usize = 24 << 20;
    let old = pattern(21, LEN);
    let new = pattern(22, 3 * MIB as usize);
    let f = fx("faults-rename", &[], |r| put(r, "f.bin", &old));
    let mut ftp = login(&f.server);
    let mut data = begin(&mut ftp, b"RETR f.bin");
    let mut got = read_n(&mut data, 64 * KIB);
    let tmp = f.root.join(".f.bin.tmp");
    fs::write(&tmp, &new).expect("write new");
    fs::rename(&tmp, f.root.join("f.bin")).expect("rename over");
    let (rest, eof) = drain(&mut data);
    assert!(eof);
    got.extend_from_slice(&rest);
    assert_eq!(ftp.reply().0, 226, "RETR of a file replaced mid-transfer");
    assert_eq!(got.len(), LEN, "the old file's full length");
    assert!(got == old, "the bytes are the old file's");
    assert_eq!(ftp.retr_bytes("f.bin").expect("RETR new"), new, "the next RETR gets the new file");
}

#[test]
fn idle_timeout_421_and_close() {
    let f = faults_fx("faults-idle", &["--idle-timeout", "1"]);
    let mut ftp = login(&f.server);
    let t0 = Instant::now();
    let r = ftp.reply();
    let took = t0.elapsed();
    assert_eq!(r.0, 421, "idle session: {r:?}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "421 after {took:?} with --idle-timeout 1"
    );
    let after = ftp.try_reply();
    assert!(
        matches!(&after, Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)),
        "the connection must be closed after 421: {after:?}"
    );
    others_are_served(f.server.addr);
}

#[test]
fn idle_timeout_never_during_a_running_transfer() {
    let f = faults_fx("faults-idle-xfer", &["--idle-timeout", "1"]);
    let mut ftp = login(&f.server);
    let mut data = begin(&mut ftp, b"RETR big.bin");
    // A slow reader, no control traffic, for well over the idle timeout.
    let t0 = Instant::now();
    let mut total = 0usize;
    let mut buf = vec![0u8; 32 * KIB];
    while t0.elapsed() < Duration::from_millis(3200) {
        let n = data.read(&mut buf).expect("slow read");
        assert!(n > 0, "the transfer ended early (after {total} bytes, {:?})", t0.elapsed());
        total += n;
        thread::sleep(Duration::from_millis(50));
    }
    assert!((total as u64) < 64 * MIB, "the reader was not slow");
    let r = ftp.cmd("NOOP");
    assert_eq!(r.0, 200, "NOOP during a transfer running {:?} with --idle-timeout 1: {r:?}", t0.elapsed());
    let (rest, eof) = drain(&mut data);
    assert!(eof);
    assert_eq!((total + rest.len()) as u64, 64 * MIB, "the whole file arrived");
    assert_eq!(ftp.reply().0, 226);
    // After the transfer the idle timer runs again.
    let t1 = Instant::now();
    assert_eq!(ftp.reply().0, 421, "idle after the transfer");
    assert!(t1.elapsed() < Duration::from_secs(4));
}

#[test]
fn data_timeout_when_nobody_connects_to_the_passive_port_425() {
    let f = faults_fx("faults-425", &["--data-timeout", "1"]);
    let mut ftp = login(&f.server);
    // A passive port is open, but nobody will connect to it.
    crate::protocol::epsv_port(&expect(&mut ftp, "EPSV", 229));
    let t0 = Instant::now();
    ftp.send("RETR small.bin");
    let r = ftp.reply();
    let took = t0.elapsed();
    assert_eq!(r.0, 425, "RETR with nobody connecting and --data-timeout 1: {r:?}");
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "425 after {took:?}");
    expect(&mut ftp, "NOOP", 200);
    assert_eq!(ftp.retr_bytes("small.bin").expect("RETR after 425"), pattern(11, MIB as usize));
}

#[test]
fn client_that_never_reads_gets_426_and_others_are_unaffected() {
    let f = faults_fx("faults-stuck", &["--data-timeout", "2"]);
    let mut stuck = login(&f.server);
    let t0 = Instant::now();
    let data = begin(&mut stuck, b"RETR big.bin");
    // While the first client is stuck, another downloads at full speed.
    thread::sleep(Duration::from_millis(300));
    let t1 = Instant::now();
    others_are_served(f.server.addr);
    assert!(t1.elapsed() < Duration::from_secs(2), "the other client took {:?}", t1.elapsed());
    let r = stuck.reply();
    let took = t0.elapsed();
    assert_eq!(r.0, 426, "RETR whose data socket is never read, --data-timeout 2: {r:?}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(7), "426 after {took:?}");
    drop(data);
    expect(&mut stuck, "NOOP", 200);
}

#[test]
fn control_line_trickled_one_byte_at_a_time() {
    let f = faults_fx("faults-trickle", &[]);
    let mut c = Ctl::open(f.server.addr);
    let trickle = |c: &mut Ctl, line: &[u8]| {
        for b in line {
            c.send(std::slice::from_ref(b));
            thread::sleep(Duration::from_millis(5));
        }
        c.reply().expect("reply to a trickled line")
    };
    assert_eq!(trickle(&mut c, b"USER anonymous\r\n").0, 331);
    assert_eq!(trickle(&mut c, b"PASS a@b\r\n").0, 230);
    assert_eq!(trickle(&mut c, b"NOOP\r\n").0, 200);
    assert_eq!(trickle(&mut c, b"SIZE small.bin\r\n"), (213, MIB.to_string()));
    // CR and LF in separate segments, with a pause between them.
    c.send(b"NOOP\r");
    thread::sleep(Duration::from_millis(100));
    c.send(b"\n");
    assert_eq!(c.reply().expect("reply").0, 200);
}

#[test]
fn uploader_process_killed_mid_stor_keeps_a_prefix_releases_the_lock_and_resumes() {
    use crate::accounts::{UP_PASS, UP_USER, login_up, up_fx, upload_at};
    use crate::uploads::{assert_prefix, wait_size, wait_unlocked};
    use std::process::{Command, Stdio};
    if !crate::util::require_tool("curl") {
        return;
    }
    const LEN: usize = 16 << 20;
    let f = up_fx("faults-stor-kill", &[], |r| put(r, "small.bin", &pattern(11, MIB as usize)));
    let src_dir = crate::util::temp_dir("faults-stor-kill-src");
    let src = pattern(31, LEN);
    fs::write(src_dir.join("src.bin"), &src).expect("write the source");
    let path = f.root.join("up.bin");
    // A real client process, uploading slowly, killed with SIGKILL mid-transfer: the kernel
    // closes both its connections (a FIN each), so the server sees the data end early.
    let mut curl = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--limit-rate", "2M", "--user", &format!("{UP_USER}:{UP_PASS}"), "-T"])
        .arg(src_dir.join("src.bin"))
        .arg(f.server.url("up.bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn curl");
    wait_size(&path, MIB);
    // Others are served while the upload runs.
    others_are_served(f.server.addr);
    curl.kill().expect("SIGKILL curl");
    let status = curl.wait().expect("reap curl");
    assert!(!status.success(), "curl was killed, not finished: {status:?}");

    // The lock is released once the server has seen the end, and what it kept is exactly a
    // prefix of what was sent (no hole, no stale byte).
    wait_unlocked(&path);
    let kept = fs::read(&path).expect("the partial file");
    assert_prefix(&kept, &src, "after the uploader was killed");
    assert!(kept.len() < LEN, "the upload was cut short ({} of {LEN} bytes)", kept.len());
    others_are_served(f.server.addr);

    // A resume from the partial size completes it byte for byte.
    let mut ftp = login_up(&f.server);
    let n = kept.len();
    assert_eq!(ftp.cmd("SIZE up.bin"), (213, n.to_string()));
    upload_at(&mut ftp, Some(n as u64), "STOR up.bin", &src[n..]).expect("REST + STOR of the rest");
    let got = fs::read(&path).expect("up.bin");
    assert!(got == src, "resumed file differs: {} bytes, expected {LEN}", got.len());
    assert_eq!(ftp.cmd("SIZE up.bin"), (213, LEN.to_string()));
}

#[test]
fn directory_removed_while_listed_ends_in_226_or_451_and_the_server_lives_on() {
    const N: usize = 20_000;
    const LONG: &str = "-with-a-long-name-to-fill-the-listing.txt";
    let f = faults_fx("faults-rmrf-list", &[]);
    let big = f.root.join("big");
    // Hard links to one file: 20,000 entries for a fraction of the cost of 20,000 inodes.
    let one = big.join("one");
    for d in 0..4 {
        let sub = big.join(format!("d{d}"));
        fs::create_dir_all(&sub).expect("mkdir");
        if d == 0 {
            File::create(&one).expect("create");
        }
        for i in 0..N / 4 {
            fs::hard_link(&one, sub.join(format!("file-{i:05}{LONG}"))).expect("link");
        }
    }
    // Three listings of three directories of the tree, each stopped after its first 4 KiB
    // (the server is blocked on a full socket, mid-directory) ...
    let mut open = Vec::new();
    for cmd in ["LIST big/d0", "NLST big/d1", "MLSD big/d2"] {
        let mut ftp = login(&f.server);
        let mut data = begin(&mut ftp, cmd.as_bytes());
        data.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let got = read_n(&mut data, 4 * KIB);
        open.push((cmd, ftp, data, got));
    }
    // ... when the whole tree (20,000 entries) is removed under them.
    fs::remove_dir_all(&big).expect("rm -rf big");
    for (cmd, mut ftp, mut data, mut got) in open {
        let (rest, _) = drain(&mut data);
        got.extend_from_slice(&rest);
        let r = ftp.reply();
        assert!(r.0 == 226 || r.0 == 451, "{cmd} of a directory removed mid-listing: {r:?}, expected 226 or 451");
        // Whatever came is whole lines naming the directory's own entries.
        let text = String::from_utf8_lossy(&got);
        let complete = text.rsplit_once("\r\n").map_or("", |(head, _)| head);
        let lines: Vec<&str> = complete.split("\r\n").collect();
        assert!(lines.len() < N / 4 + 1, "{cmd}: {} lines", lines.len());
        for line in lines {
            assert!(line.contains(LONG), "{cmd}: stray line {line:?}");
        }
        expect(&mut ftp, "NOOP", 200);
        let r = crate::protocol::transfer_raw(&mut ftp, b"LIST big/d3");
        assert!(matches!(r, Err((550, _))), "LIST of a removed directory: {r:?}");
        expect(&mut ftp, "CWD big", 550);
        assert!(!ftp.list("NLST").is_empty());
    }
    others_are_served(f.server.addr);
}

/// Slowloris: a line trickled one byte a second that never ends. Only a
/// complete command counts as activity, so the trickler is cut by the login
/// timeout before login and by the idle timeout after it, while everyone
/// else is served as usual.
#[test]
fn slowloris_one_byte_a_second_is_cut_by_the_timeouts() {
    let f = faults_fx("faults-slowloris", &["--login-timeout", "2", "--idle-timeout", "3"]);
    let start = std::time::Instant::now();
    let mut before_login = Ctl::open(f.server.addr);
    let mut after_login = Ctl::open(f.server.addr);
    assert_eq!(after_login.cmd("USER anonymous").0, 331);
    assert_eq!(after_login.cmd("PASS a@b").0, 230);
    let mut cut = [None, None];
    let deadline = start + Duration::from_secs(8);
    while cut.iter().any(Option::is_none) && std::time::Instant::now() < deadline {
        for (i, c) in [&mut before_login, &mut after_login].into_iter().enumerate() {
            if cut[i].is_none() {
                // A write may fail once the server has closed: that is the cut.
                let _ = std::io::Write::write_all(&mut c.stream, b"A");
            }
        }
        others_are_served(f.server.addr);
        thread::sleep(Duration::from_secs(1));
        for (i, c) in [&mut before_login, &mut after_login].into_iter().enumerate() {
            if cut[i].is_none() {
                c.stream.set_read_timeout(Some(Duration::from_millis(10))).expect("timeout");
                match c.reply() {
                    Ok((421, _)) => cut[i] = Some(start.elapsed()),
                    Ok(other) => panic!("trickler {i} got {other:?}"),
                    Err(_) => {} // nothing yet
                }
            }
        }
    }
    let [login, idle] = cut;
    let login = login.expect("the trickler before login was never cut");
    let idle = idle.expect("the trickler after login was never cut");
    assert!(login >= Duration::from_secs(2) && login < Duration::from_secs(5), "login timeout cut at {login:?}");
    assert!(idle >= Duration::from_secs(3) && idle < Duration::from_secs(6), "idle timeout cut at {idle:?}");
}
