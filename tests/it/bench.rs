//! `mirrorftpd bench` against the real server: every workload, every data
//! connection mode, and the failure reports (refused uploads, missing files,
//! a dead server) read back from its `--json` summary.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{Ran, Server, TempDir, run, temp_dir};

/// Longest any one bench run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The download of the retr tests: odd-sized, larger than one socket buffer.
const FILE_LEN: usize = (1 << 20) + 4097;

/// A server over a root holding `f.bin` (FILE_LEN bytes), `small.txt` and a
/// directory `d` with a few names. The server drops before the root.
struct Fx {
    server: Server,
    root: TempDir,
}

fn fx(name: &str, args: &[&str]) -> Fx {
    let root = temp_dir(name);
    let bytes: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("f.bin"), bytes).expect("write f.bin");
    fs::write(root.join("small.txt"), b"hello\n").expect("write small.txt");
    fs::create_dir(root.join("d")).expect("mkdir d");
    for n in ["a", "b", "c"] {
        fs::write(root.join("d").join(n), n).expect("write d/*");
    }
    let server = Server::start(&root, args);
    Fx { server, root }
}

/// The bench's JSON summary, with just enough parsing for the tests.
struct Report {
    ran: Ran,
    json: String,
}

impl Report {
    fn num(&self, key: &str) -> f64 {
        let pat = format!("\"{key}\":");
        let at = self.json.find(&pat).unwrap_or_else(|| panic!("no {key} in {}", self.json)) + pat.len();
        let rest = &self.json[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].parse().unwrap_or_else(|e| panic!("{key}: {e} in {}", self.json))
    }

    /// The `errors` object's text, e.g. `"550":3,"timeout":1`.
    fn errors(&self) -> &str {
        let at = self.json.find("\"errors\":{").unwrap_or_else(|| panic!("no errors in {}", self.json)) + 10;
        let end = self.json[at..].find('}').expect("errors object closes");
        &self.json[at..at + end]
    }

    fn ok(&self) -> bool {
        self.ran.status.success()
    }

    fn context(&self) -> String {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}\njson: {}",
            self.ran.status, self.ran.stdout, self.ran.stderr, self.json
        )
    }
}

/// Runs `mirrorftpd bench ARGS --server ADDR --json FILE` and reads FILE.
fn bench(server: &Server, args: &[&str]) -> Report {
    let dir = temp_dir("bench-json");
    let json_path = dir.join("out.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.arg("bench").args(args).arg("--server").arg(server.addr.to_string()).arg("--json").arg(&json_path);
    let ran = run(&mut cmd, RUN_TIMEOUT);
    let json = read_json(&json_path);
    Report { ran, json }
}

fn read_json(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

fn assert_clean(r: &Report, ops: Option<u64>) {
    assert!(r.ok(), "{}", r.context());
    assert_eq!(r.errors(), "", "{}", r.context());
    match ops {
        Some(n) => assert_eq!(r.num("ops") as u64, n, "{}", r.context()),
        None => assert!(r.num("ops") > 0.0, "{}", r.context()),
    }
}

#[test]
fn retr_count_over_epsv_pasv_and_port_moves_every_byte() {
    let f = fx("bench-retr", &[]);
    for mode in ["--epsv", "--pasv", "--port"] {
        let r = bench(&f.server, &["retr", "--path", "/f.bin", "--count", "20", "--conns", "4", mode]);
        assert_clean(&r, Some(20));
        assert_eq!(r.num("bytes") as usize, 20 * FILE_LEN, "{mode}: {}", r.context());
        assert_eq!(r.num("sessions_established"), 4.0, "{mode}: {}", r.context());
        assert!(r.json.contains("\"retr\":{\"count\":20,\"ttfb_ms\":{\"p50\":"), "{mode}: {}", r.json);
        assert!(r.ran.stdout.contains("retr total"), "human summary on stdout: {}", r.ran.stdout);
    }
}

#[test]
fn retr_discard_counts_the_same_bytes() {
    let f = fx("bench-discard", &[]);
    let r =
        bench(&f.server, &["retr", "--path", "/f.bin", "--count", "20", "--conns", "4", "--discard", "--threads", "2"]);
    assert_clean(&r, Some(20));
    assert_eq!(r.num("bytes") as usize, 20 * FILE_LEN, "{}", r.context());
    assert_eq!(r.num("threads"), 2.0);
}

#[test]
fn retr_round_robins_over_several_paths() {
    let f = fx("bench-paths", &[]);
    let list = f.root.join("paths.txt");
    fs::write(&list, "/small.txt\n\n/d/a\n").expect("write paths file");
    let list = list.to_string_lossy().into_owned();
    let r = bench(&f.server, &["retr", "--path", "/f.bin", "--paths-file", &list, "--count", "6", "--conns", "1"]);
    assert_clean(&r, Some(6));
    // One session: f.bin, small.txt, d/a, twice each.
    assert_eq!(r.num("bytes") as usize, 2 * (FILE_LEN + 6 + 1), "{}", r.context());
}

#[test]
fn list_login_and_mix_run_without_errors() {
    let f = fx("bench-ops", &[]);
    for args in [
        &["list", "--dir", "/d"][..],
        &["list", "--list-cmd", "MLSD", "--dir", "/d", "--port"][..],
        &["list", "--list-cmd", "nlst"][..],
        &["login"][..],
        &["mix", "--mix", "retr=8,list=1,login=1", "--path", "/small.txt"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["--duration", "1", "--conns", "4"]);
        let r = bench(&f.server, &a);
        assert_clean(&r, None);
        assert!(r.num("ops_per_s") > 0.0, "{args:?}: {}", r.context());
    }
}

#[test]
fn idle_holds_every_session_and_says_so() {
    let f = fx("bench-idle", &[]);
    let r = bench(&f.server, &["idle", "--conns", "50", "--duration", "2"]);
    assert!(r.ok(), "{}", r.context());
    assert!(r.ran.stderr.contains("bench: holding 50 sessions"), "{}", r.context());
    assert_eq!(r.num("sessions_established"), 50.0, "{}", r.context());
    assert_eq!(r.errors(), "", "{}", r.context());
}

#[test]
fn stor_refused_by_the_anonymous_server_is_a_550_failure() {
    let f = fx("bench-stor", &[]);
    let r = bench(&f.server, &["stor", "--path", "/up.bin", "--size", "1000", "--count", "6", "--conns", "2"]);
    assert!(!r.ok(), "every upload failed, so the run fails: {}", r.context());
    assert!(r.errors().contains("\"550\":"), "{}", r.context());
    assert_eq!(r.num("ops"), 0.0, "{}", r.context());
    assert!(r.ran.stdout.contains("550: "), "{}", r.context());
}

#[test]
fn retr_of_a_missing_file_is_a_550_failure() {
    let f = fx("bench-missing", &[]);
    let r = bench(&f.server, &["retr", "--path", "/no/such/file", "--count", "5", "--conns", "2"]);
    assert!(!r.ok(), "{}", r.context());
    assert!(r.errors().contains("\"550\":5"), "{}", r.context());
}

#[test]
fn a_dead_server_is_counted_as_connect_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let server = format!("127.0.0.1:{port}");
    let dir = temp_dir("bench-dead");
    let json_path = dir.join("out.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.args(["bench", "login", "--count", "4", "--server", &server, "--json"]).arg(&json_path);
    let ran = run(&mut cmd, RUN_TIMEOUT);
    let json = read_json(&json_path);
    assert_eq!(ran.status.code(), Some(1), "{json}\n{}", ran.stderr);
    assert!(json.contains("\"errors\":{\"connect\":"), "{json}");
}

#[test]
fn json_to_stdout_and_bad_flags() {
    let f = fx("bench-flags", &[]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.args(["bench", "login", "--count", "3", "--json", "-", "--server"]).arg(f.server.addr.to_string());
    let ran = run(&mut cmd, RUN_TIMEOUT);
    assert!(ran.status.success(), "{}", ran.stderr);
    let line = ran.stdout.trim();
    assert!(line.starts_with("{\"workload\":\"login\"") && line.ends_with('}'), "stdout is only the JSON: {line}");
    assert!(ran.stderr.contains("login connect→230"), "the table goes to stderr: {}", ran.stderr);
    for bad in [&["retr"][..], &["mix"][..], &["list", "--pasv", "--port"][..], &["list", "--conns", "0"][..]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
        cmd.arg("bench").args(bad);
        let ran = run(&mut cmd, RUN_TIMEOUT);
        assert_eq!(ran.status.code(), Some(2), "{bad:?}: {}", ran.stderr);
    }
}

#[test]
fn ipv6_retr_with_epsv_and_eprt() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED-LOUDLY: no IPv6 loopback; bench IPv6 test did not run");
        return;
    }
    let f = fx("bench-v6", &["--listen", "[::1]:0"]);
    for mode in ["--epsv", "--port"] {
        let r = bench(&f.server, &["retr", "--path", "/f.bin", "--count", "4", "--conns", "2", mode]);
        assert_clean(&r, Some(4));
        assert_eq!(r.num("bytes") as usize, 4 * FILE_LEN, "{mode}: {}", r.context());
    }
}
