//! Start-up and `--check-config` refuse a control address that something
//! already listens on, whatever it is (another mirrorftpd, any program, with
//! or without SO_REUSEPORT), while the server's own workers share the port.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Ftp, Ran, Server, run, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_mirrorftpd");
/// A refused start-up is over within this; a server still running after it
/// was not refused.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
const IN_USE: &str = "address already in use";

/// `mirrorftpd --root ROOT --listen ADDR --workers 2 --allow-root EXTRA...`.
fn server_cmd(root: &Path, addr: SocketAddr, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(root).args(["--listen", &addr.to_string(), "--workers", "2", "--allow-root"]).args(extra);
    cmd
}

/// Runs a server (or `--check-config`) that must be refused: it exits 1 and
/// says the address is in use. A server that starts instead runs until the
/// timeout and `run` fails the test with its "listening on" line.
fn assert_refused(root: &Path, addr: SocketAddr, extra: &[&str], what: &str) {
    let ran: Ran = run(&mut server_cmd(root, addr, extra), REFUSAL_TIMEOUT);
    assert_eq!(ran.status.code(), Some(1), "{what}: exit status\nstdout:\n{}\nstderr:\n{}", ran.stdout, ran.stderr);
    let err = ran.stderr.to_lowercase();
    assert!(
        err.contains(IN_USE) && err.contains(&addr.to_string()),
        "{what}: the reason names the address: {}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("listening on"), "{what}: {}", ran.stderr);
}

/// A listener of another program on 127.0.0.1, kernel-chosen port.
fn foreign_listener(reuseport: bool) -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s.set_reuse_port(reuseport).expect("SO_REUSEPORT");
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    s.listen(16).expect("listen");
    s.into()
}

#[test]
fn a_second_server_on_a_served_port_is_refused_and_the_workers_share_the_first() {
    let root = temp_dir("listen-second");
    let first = Server::start(&root, &["--workers", "2"]);
    assert_refused(&root, first.addr, &[], "a second mirrorftpd");
    assert_refused(&root, first.addr, &["--check-config"], "--check-config");
    // The first server's two workers share its kernel-chosen port: new
    // connections reach both (30 connections all on one worker: 2^-29).
    for _ in 0..30 {
        let mut ftp = Ftp::connect(first.addr);
        assert_eq!(ftp.cmd("QUIT").0, 221);
    }
    for w in ["(worker 0)", "(worker 1)"] {
        assert!(first.wait_log(w, Duration::from_secs(5)), "a connection served by {w}:\n{}", first.log());
    }
}

#[test]
fn a_listener_of_another_program_stops_start_up_and_check_config() {
    let root = temp_dir("listen-foreign");
    for reuseport in [true, false] {
        let other = foreign_listener(reuseport);
        let addr = other.local_addr().expect("addr");
        let what = if reuseport { "a listener with SO_REUSEPORT" } else { "a listener without SO_REUSEPORT" };
        assert_refused(&root, addr, &[], what);
        assert_refused(&root, addr, &["--check-config"], &format!("--check-config against {what}"));
        drop(other);
        // Once the other program is gone, the same address is fine.
        let ran = run(&mut server_cmd(&root, addr, &["--check-config"]), REFUSAL_TIMEOUT);
        assert!(ran.status.success(), "{what} closed: --check-config passes:\n{}\n{}", ran.stdout, ran.stderr);
    }
}

/// Two servers started at the same moment on one free port: exactly one
/// serves. (The first listener takes SO_REUSEPORT only once it listens, so
/// the loser's bind or listen fails.)
#[test]
fn of_two_servers_started_at_once_exactly_one_serves() {
    let root = temp_dir("listen-race");
    let logs = temp_dir("listen-race-logs");
    let addr = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let spawn = |n: usize| -> Child {
        let err = File::create(logs.join(format!("{n}.err"))).expect("log file");
        server_cmd(&root, addr, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn mirrorftpd")
    };
    let mut children = [spawn(0), spawn(1)];
    let stderr = |n: usize| fs::read_to_string(logs.join(format!("{n}.err"))).unwrap_or_default();
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    let mut exited = [None, None];
    while Instant::now() < deadline && exited.iter().any(Option::is_none) {
        for (i, c) in children.iter_mut().enumerate() {
            if exited[i].is_none() {
                exited[i] = c.try_wait().expect("try_wait");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let report = format!("exits {exited:?}\nserver 0:\n{}\nserver 1:\n{}", stderr(0), stderr(1));
    let refused: Vec<usize> = (0..2).filter(|&i| exited[i].is_some()).collect();
    assert_eq!(refused.len(), 1, "exactly one of the two is refused: {report}");
    let (lost, won) = (refused[0], 1 - refused[0]);
    assert_eq!(exited[lost].and_then(|s| s.code()), Some(1), "{report}");
    assert!(stderr(lost).to_lowercase().contains(IN_USE), "{report}");
    assert!(stderr(won).contains(&format!("listening on {addr}")), "{report}");
}
