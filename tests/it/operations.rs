//! Running it unattended: SIGTERM drains (running transfers finish, idle
//! sessions get 421, no new connections), a second signal or
//! --drain-timeout ends the drain; SIGHUP reloads accounts, rules and the
//! banner without dropping sessions; --banner-file; `.message` on CWD;
//! --check-config.

use std::fs;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{BOB_HASH, UP_HASH, UP_PASS, UP_USER, login_as};
use crate::util::{Ftp, Server, run, temp_dir};

const BIG: usize = 48 << 20;

fn big_root(name: &str) -> crate::util::TempDir {
    let root = temp_dir(name);
    let data: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("big.bin"), &data).expect("writing big.bin");
    fs::write(root.join("small.txt"), b"hello\n").expect("writing small.txt");
    root
}

/// Starts `RETR big.bin` and returns the data socket after the 150.
fn start_big_retr(ftp: &mut Ftp) -> TcpStream {
    let data = ftp.pasv_connect();
    let (code, text) = ftp.cmd("RETR big.bin");
    assert_eq!(code, 150, "RETR: {text}");
    data
}

/// Waits until connecting to `addr` is refused (listeners closed).
fn wait_refused(addr: std::net::SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn sigterm_drains_running_transfers_then_exits_0() {
    let root = big_root("ops-drain");
    let mut server = Server::start(&root, &["--drain-timeout", "30"]);
    let mut busy = Ftp::connect(server.addr);
    busy.login_anon();
    let mut idle = Ftp::connect(server.addr);
    idle.login_anon();
    let mut data = start_big_retr(&mut busy);
    let mut got = vec![0u8; 1 << 20];
    data.read_exact(&mut got).expect("first MiB");

    server.signal(libc::SIGTERM);
    // The idle session is told at once and closed.
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "idle session during drain: {text}");
    assert!(idle.try_reply().is_err(), "the idle session must be closed after its 421");
    // Nobody new gets in.
    assert!(wait_refused(server.addr, Duration::from_secs(3)), "new connections must be refused while draining");
    // The running transfer finishes, completely and correctly.
    data.read_to_end(&mut got).expect("rest of the file");
    assert_eq!(got.len(), BIG, "the draining server cut the transfer short");
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "content differs");
    assert_eq!(busy.reply().0, 226, "the running transfer ends with 226");
    let (code, _) = busy.reply();
    assert_eq!(code, 421, "after its transfer the session ends with 421");
    let st = server.wait_exit(Duration::from_secs(5)).expect("the server exits once drained");
    assert!(st.success(), "drain exit status {st:?}");
    assert!(server.log().contains("drained"), "log: {}", server.log());
}

#[test]
fn second_signal_during_drain_exits_at_once() {
    let root = big_root("ops-drain-twice");
    let mut server = Server::start(&root, &["--drain-timeout", "60", "--sndbuf", "65536"]);
    let mut busy = Ftp::connect(server.addr);
    busy.login_anon();
    // A client that never reads: the transfer stalls, the drain waits.
    let _data = start_big_retr(&mut busy);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_millis(500)).is_none(), "a stalled transfer must hold the drain");
    let t = Instant::now();
    server.signal(libc::SIGINT);
    let st = server.wait_exit(Duration::from_secs(3)).expect("the second signal exits at once");
    assert!(st.success(), "status {st:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
}

#[test]
fn drain_timeout_ends_a_stalled_drain() {
    let root = big_root("ops-drain-timeout");
    let mut server = Server::start(&root, &["--drain-timeout", "1", "--sndbuf", "65536"]);
    let mut busy = Ftp::connect(server.addr);
    busy.login_anon();
    let _data = start_big_retr(&mut busy);
    let t = Instant::now();
    server.signal(libc::SIGTERM);
    let st = server.wait_exit(Duration::from_secs(5)).expect("exit after --drain-timeout");
    assert!(st.success(), "status {st:?}");
    assert!(t.elapsed() >= Duration::from_millis(900), "exited before the drain timeout: {:?}", t.elapsed());
    assert!(server.log().contains("drain timeout"), "log: {}", server.log());
}

#[test]
fn sighup_reloads_accounts_and_rules_without_dropping_sessions() {
    let f = crate::accounts::acct_fx("ops-reload", &[(UP_USER, UP_HASH, "", "all")], Some("# none yet\n"), &[], |r| {
        fs::create_dir_all(r.join("pub")).unwrap();
        fs::write(r.join("pub/a.txt"), b"aaa").unwrap();
    });
    let mut up = login_as(&f.server, UP_USER, UP_PASS);
    assert_eq!(up.retr_bytes("/pub/a.txt").unwrap(), b"aaa");
    let mut bob = Ftp::connect(f.server.addr);
    assert_eq!(bob.cmd("USER bob").0, 331);
    assert_eq!(bob.cmd("PASS bob-pw").0, 530, "bob is not an account yet");

    // Replace the accounts (bob instead of up) and forbid /pub for everyone.
    let home = f.root.path().display().to_string();
    fs::write(f.etc.join("users.txt"), format!("bob:{BOB_HASH}:{home}:readonly\n")).unwrap();
    fs::write(f.etc.join("rules.txt"), "*  none  /pub\n").unwrap();
    f.server.signal(libc::SIGHUP);
    assert!(
        f.server.wait_log("accounts and the permission rules reloaded", Duration::from_secs(5)),
        "{}",
        f.server.log()
    );

    let mut bob = login_as(&f.server, "bob", "bob-pw");
    assert_eq!(bob.cmd("NOOP").0, 200);
    let mut up2 = Ftp::connect(f.server.addr);
    assert_eq!(up2.cmd(&format!("USER {UP_USER}")).0, 331);
    assert_eq!(up2.cmd(&format!("PASS {UP_PASS}")).0, 530, "a removed account must not log in after reload");
    // The old session is still there, under the new rules.
    assert_eq!(up.cmd("NOOP").0, 200, "SIGHUP must not drop sessions");
    assert_eq!(up.retr_bytes("/pub/a.txt").unwrap_err().0, 550, "the reloaded rule must apply to running sessions");

    // A broken file keeps the previous configuration.
    fs::write(f.etc.join("users.txt"), "this is not an account line\n").unwrap();
    f.server.signal(libc::SIGHUP);
    assert!(f.server.wait_log("accounts/rules not reloaded", Duration::from_secs(5)), "{}", f.server.log());
    let mut bob2 = login_as(&f.server, "bob", "bob-pw");
    assert_eq!(bob2.cmd("NOOP").0, 200);
}

#[test]
fn banner_file_is_the_greeting_and_reloads() {
    let root = temp_dir("ops-banner");
    let etc = temp_dir("ops-banner-etc");
    let banner = etc.join("banner.txt");
    fs::write(&banner, "Welcome to the mirror.\n220 not a real reply\x1b[2J\nAbuse: abuse@example.org\n").unwrap();
    let b = banner.display().to_string();
    let server = Server::start(&root, &["--banner-file", &b]);
    let ftp = Ftp::connect(server.addr);
    let (code, text) = ftp.greeting.clone();
    assert_eq!(code, 220);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["Welcome to the mirror.", " 220 not a real reply?[2J", " Abuse: abuse@example.org", "220 mirrorftpd ready."]
    );
    fs::write(&banner, "Moved to new hardware.\n").unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let g = Ftp::connect(server.addr).greeting;
        if g.1.starts_with("Moved to new hardware.") {
            break;
        }
        assert!(Instant::now() < deadline, "banner not reloaded: {g:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dot_message_is_shown_once_on_cwd() {
    let root = temp_dir("ops-message");
    fs::create_dir_all(root.join("debian/pool")).unwrap();
    fs::write(root.join("debian/.message"), "Debian archive mirror.\nSync: every 6 hours.\n").unwrap();
    // A .message that is not a regular file is ignored, without blocking.
    let fifo = std::ffi::CString::new(root.join("debian/pool/.message").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let server = Server::start(&root, &[]);
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    let (code, text) = ftp.cmd("CWD /debian");
    assert_eq!(code, 250);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["Debian archive mirror.", " Sync: every 6 hours.", "250 Directory successfully changed."]
    );
    assert_eq!(ftp.cmd("CWD pool"), (250, "Directory successfully changed.".into()), "a FIFO .message is skipped");
    assert_eq!(ftp.cmd("CWD /debian"), (250, "Directory successfully changed.".into()), "shown once per session");

    let quiet = Server::start(&root, &["--no-dir-messages"]);
    let mut ftp = Ftp::connect(quiet.addr);
    ftp.login_anon();
    assert_eq!(ftp.cmd("CWD /debian"), (250, "Directory successfully changed.".into()));
}

fn check_config(args: &[&str]) -> crate::util::Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.arg("--check-config").args(args);
    run(&mut cmd, Duration::from_secs(20))
}

#[test]
fn check_config_validates_without_serving() {
    let root = temp_dir("ops-check");
    let etc = temp_dir("ops-check-etc");
    // A port taken by a listener fails the check (see listen.rs); once it
    // is free the check passes and keeps nothing: the port is free after it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let r = root.display().to_string();
    let busy = check_config(&["--root", &r, "--listen", &port]);
    assert!(!busy.status.success() && busy.stderr.contains("address already in use"), "{busy:?}");
    drop(taken);
    let ok = check_config(&["--root", &r, "--listen", &port]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(ok.stdout.contains("configuration OK"), "{ok:?}");
    std::net::TcpListener::bind(&port).expect("--check-config keeps no port");

    let users = etc.join("users.txt");
    fs::write(&users, "broken line\n").unwrap();
    let u = users.display().to_string();
    let bad = check_config(&["--root", &r, "--users", &u]);
    assert!(!bad.status.success(), "a broken users file must fail: {bad:?}");
    assert!(bad.stderr.contains("--users") && bad.stderr.contains(":1"), "names the file and line: {bad:?}");

    let missing = check_config(&["--root", "/nonexistent/mirror/root"]);
    assert!(!missing.status.success() && missing.stderr.contains("--root"), "{missing:?}");
    let banner = check_config(&["--root", &r, "--banner-file", "/nonexistent/banner"]);
    assert!(!banner.status.success() && banner.stderr.contains("--banner-file"), "{banner:?}");
    for share in ["0", "101"] {
        let s = check_config(&["--root", &r, "--bulk-share", share]);
        assert!(!s.status.success() && s.stderr.contains("--bulk-share must be 1-100"), "{share}: {s:?}");
    }
    let s = check_config(&["--root", &r, "--bulk-share", "100"]);
    assert!(s.status.success(), "{s:?}");
}
