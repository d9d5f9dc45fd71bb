//! `mirrorftpd bench` against the real server: every workload, every data
//! connection mode, FTPS (explicit and implicit, with data connections that
//! must resume their control session), the failure reports (refused
//! uploads, missing files, a dead server, TLS that fails) read back from its
//! `--json` summary, its exit status (--max-error-rate) and progress lines.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{Ran, Server, TempDir, require_tool, run, run_ok, temp_dir};

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
    fill(&root);
    let server = Server::start(&root, args);
    Fx { server, root }
}

/// The tree every fixture serves.
fn fill(root: &Path) {
    let bytes: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("f.bin"), bytes).expect("write f.bin");
    fs::write(root.join("small.txt"), b"hello\n").expect("write small.txt");
    fs::create_dir(root.join("d")).expect("mkdir d");
    for n in ["a", "b", "c"] {
        fs::write(root.join("d").join(n), n).expect("write d/*");
    }
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
fn disconnect_prob_drops_sessions_abruptly_and_the_server_frees_everything() {
    let f = fx("bench-drops", &[]);
    let pid = f.server.pid();
    let fds = || fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    // One served session first: the workers run, so start-up (which prints
    // "listening" before it is done opening and closing files) is over.
    let mut first = crate::util::Ftp::connect(f.server.addr);
    assert_eq!(first.cmd("QUIT").0, 221);
    let _ = first.try_reply();
    // Then the count must hold still for 200 ms (the quitting session closes).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut before = fds();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = fds();
        if now == before || std::time::Instant::now() >= deadline {
            break;
        }
        before = now;
    }
    let r = bench(
        &f.server,
        &[
            "mix",
            "--mix",
            "retr=3,list=1",
            "--path",
            "/f.bin",
            "--count",
            "200",
            "--conns",
            "8",
            "--disconnect-prob",
            "0.3",
        ],
    );
    assert!(r.ok(), "{}", r.context());
    assert_eq!(r.errors(), "", "a drop is not an error: {}", r.context());
    let (ops, drops) = (r.num("ops") as u64, r.num("drops") as u64);
    // 200 operations, each dropped with probability 0.3 (mean 60, sd 6.5).
    assert_eq!(ops + drops, 200, "{}", r.context());
    assert!((30..=90).contains(&drops), "{drops} drops of 200 at p=0.3: {}", r.context());
    assert!(r.ran.stdout.contains(&format!("drops        {drops} (--disconnect-prob 0.3)")), "{}", r.ran.stdout);
    // The server let go of every session, data connection and file of the dropped ones.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fds() != before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if fds() != before {
        let list: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.flatten().map(|e| format!("{:?}", fs::read_link(e.path()))).collect())
            .unwrap_or_default();
        let net = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        panic!("server descriptors after the drops: {} != {before}: {list:?}\n{}\n{net}", fds(), f.server.log());
    }
    // Without the flag nothing is dropped.
    let r = bench(&f.server, &["retr", "--path", "/f.bin", "--count", "10", "--conns", "2"]);
    assert_clean(&r, Some(10));
    assert_eq!(r.num("drops"), 0.0);
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
fn errors_after_successes_fail_the_run_above_max_error_rate() {
    let f = fx("bench-error-rate", &[]);
    // One session alternates: f.bin (226), a missing file (550).
    let args = ["retr", "--path", "/f.bin", "--path", "/no/such", "--count", "10", "--conns", "1"];
    let r = bench(&f.server, &args);
    assert_eq!(r.ran.status.code(), Some(1), "half the operations failed: {}", r.context());
    assert_eq!((r.num("ops"), r.errors()), (5.0, "\"550\":5"), "{}", r.context());
    assert!(r.ran.stderr.contains("run failed: 5 of 10 operations failed (50.0%)"), "{}", r.context());
    let with = |rate: &str| bench(&f.server, &[&args[..], &["--max-error-rate", rate]].concat());
    let r = with("0.5");
    assert!(r.ok(), "50% failed, 50% allowed: {}", r.context());
    assert!(!r.ran.stderr.contains("run failed"), "{}", r.context());
    assert_eq!(with("0.4").ran.status.code(), Some(1));
    // A clean run exits 0 under the default (no error allowed).
    assert_clean(&bench(&f.server, &["retr", "--path", "/f.bin", "--count", "4", "--conns", "2"]), Some(4));
}

#[test]
fn a_server_that_stops_mid_run_fails_the_run() {
    let f = fx("bench-server-dies", &[]);
    let addr = f.server.addr.to_string();
    let args = ["login", "--duration", "4", "--conns", "2", "--timeout", "2"];
    let running = std::thread::spawn(move || bench_at(&addr, &args));
    std::thread::sleep(Duration::from_millis(1500));
    let Fx { server, root } = f;
    drop(server); // SIGKILL: every later connect is refused
    let r = running.join().expect("the bench thread");
    drop(root);
    assert!(r.num("ops") > 0.0, "logins succeeded first: {}", r.context());
    assert!(r.errors().contains("\"connect\":"), "{}", r.context());
    assert_eq!(r.ran.status.code(), Some(1), "{}", r.context());
    assert!(r.ran.stderr.contains("run failed: "), "{}", r.context());
}

#[test]
fn progress_lines_go_to_stderr_when_it_is_not_a_terminal() {
    let f = fx("bench-progress", &[]);
    let r = bench(&f.server, &["login", "--duration", "2.6", "--conns", "2"]);
    assert_clean(&r, None);
    let lines: Vec<&str> = r.ran.stderr.lines().filter(|l| l.starts_with("bench: ") && l.contains(" ops/s ")).collect();
    // One a second: two in 2.6 s (one more if a loaded machine stretches the run).
    let most = r.num("duration_secs").floor() as usize + 1;
    assert!((2..=most).contains(&lines.len()), "one progress line a second: {}", r.context());
    assert!(lines.iter().all(|l| l.ends_with(" errors") && !l.contains('\r')), "{lines:?}");
    let r = bench(&f.server, &["login", "--duration", "1.6", "--conns", "2", "--no-progress"]);
    assert_clean(&r, None);
    assert!(!r.ran.stderr.contains(" ops/s "), "--no-progress: {}", r.context());
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

// ---------------------------------------------------------------------------
// FTPS
// ---------------------------------------------------------------------------

/// The account of the FTPS fixture (home: its own temp dir, all permissions).
const TLS_USER: &str = "bob";
const TLS_PASS: &str = "secret";
/// Longest an `openssl` call may take.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// A server with FTPS on a certificate `openssl` makes now, every transfer
/// and login required to be encrypted, and data connections required to
/// resume their own control connection's TLS session. Fields drop in order:
/// the server before its directories.
struct TlsFx {
    server: Server,
    #[allow(dead_code)]
    root: TempDir,
    /// The account's home.
    home: TempDir,
    /// Certificate, key and users file.
    #[allow(dead_code)]
    etc: TempDir,
}

/// `None` (after a loud skip line) when `openssl` is not installed.
fn tls_fx(name: &str, extra: &[&str]) -> Option<TlsFx> {
    if !require_tool("openssl") {
        return None;
    }
    let etc = temp_dir(&format!("{name}-etc"));
    let (cert, key) = crate::ftps::make_cert(&etc, "bench");
    let hash = run_ok(Command::new("openssl").args(["passwd", "-6", "-salt", "saltsalt", TLS_PASS]), OPENSSL_TIMEOUT)
        .stdout
        .trim()
        .to_string();
    assert!(hash.starts_with("$6$saltsalt$"), "openssl passwd -6 printed {hash:?}");
    let home = temp_dir(&format!("{name}-home"));
    let users = etc.join("users.txt");
    fs::write(&users, format!("{TLS_USER}:{hash}:{}:all\n", home.display())).expect("write the users file");
    let root = temp_dir(name);
    fill(&root);
    let (cert, key, users) = (cert.to_string_lossy(), key.to_string_lossy(), users.to_string_lossy());
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key, "--users", &users];
    args.extend(["--tls-session-reuse", "required", "--tls-require", "all"]);
    args.extend_from_slice(extra);
    let server = Server::start(&root, &args);
    Some(TlsFx { server, root, home, etc })
}

/// The address of `mirrorftpd: implicit TLS on ADDR` in the server's log.
fn implicit_addr(server: &Server) -> String {
    const LINE: &str = "mirrorftpd: implicit TLS on ";
    assert!(server.wait_log(LINE, Duration::from_secs(10)), "no implicit TLS line: {}", server.log());
    let log = server.log();
    let at = log.find(LINE).expect("the line is there") + LINE.len();
    log[at..].lines().next().unwrap_or_default().trim().to_string()
}

/// Runs the bench against `addr` instead of the server's first address.
fn bench_at(addr: &str, args: &[&str]) -> Report {
    let dir = temp_dir("bench-json");
    let json_path = dir.join("out.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.arg("bench").args(args).args(["--server", addr]).arg("--json").arg(&json_path);
    let ran = run(&mut cmd, RUN_TIMEOUT);
    let json = read_json(&json_path);
    Report { ran, json }
}

/// Asserts the `tls_handshakes` of a run: control, data, data resumed.
fn assert_handshakes(r: &Report, control: u64, data: u64, resumed: u64) {
    assert!(r.json.contains("\"tls\":true,\"tls_mode\":"), "{}", r.context());
    let want = format!("\"tls_handshakes\":{{\"control\":{control},\"data\":{data},\"data_resumed\":{resumed}}}");
    assert!(r.json.contains(&want), "want {want}: {}", r.context());
}

/// Every data connection resumes its own control connection's session:
/// the server refuses any other (522), so a clean run with two sessions
/// proves it. The bench says so too (data_resumed).
#[test]
fn tls_retr_resumes_the_control_session_on_every_data_connection() {
    let Some(f) = tls_fx("bench-tls-retr", &[]) else { return };
    let r = bench(&f.server, &["retr", "--tls", "--path", "/f.bin", "--count", "10", "--conns", "2"]);
    assert_clean(&r, Some(10));
    assert_eq!(r.num("bytes") as usize, 10 * FILE_LEN, "{}", r.context());
    assert_handshakes(&r, 2, 10, 10);
    assert!(r.ran.stdout.contains("(epsv, tls)"), "{}", r.ran.stdout);
    assert!(r.ran.stdout.contains("2 control, 10 data handshakes (10 data resumed)"), "{}", r.ran.stdout);

    // Active mode, with the plaintext dropped after decryption.
    let r =
        bench(&f.server, &["retr", "--tls", "--path", "/f.bin", "--count", "4", "--conns", "2", "--port", "--discard"]);
    assert_clean(&r, Some(4));
    assert_eq!(r.num("bytes") as usize, 4 * FILE_LEN, "{}", r.context());
    assert_handshakes(&r, 2, 4, 4);
}

#[test]
fn tls_list_and_stor_with_an_account() {
    let Some(f) = tls_fx("bench-tls-stor", &[]) else { return };
    let r = bench(&f.server, &["list", "--tls", "--dir", "/d", "--count", "10", "--conns", "2"]);
    assert_clean(&r, Some(10));
    assert_handshakes(&r, 2, 10, 10);
    assert!(r.num("bytes") > 0.0, "{}", r.context());

    let size = FILE_LEN.to_string();
    let account = ["--user", TLS_USER, "--pass", TLS_PASS];
    let mut args = vec!["stor", "--tls", "--path", "/up.bin", "--size", &size, "--count", "6", "--conns", "2"];
    args.extend(account);
    let r = bench(&f.server, &args);
    assert_clean(&r, Some(6));
    assert_eq!(r.num("bytes") as usize, 6 * FILE_LEN, "{}", r.context());
    assert_handshakes(&r, 2, 6, 6);
    let sizes: Vec<u64> = fs::read_dir(&*f.home)
        .expect("read the home")
        .map(|e| e.expect("dir entry").metadata().expect("metadata").len())
        .collect();
    assert_eq!(sizes, vec![FILE_LEN as u64; 6], "every upload complete on the server");

    // Short uploads end with close_notify right after the handshake.
    let mut args = vec!["stor", "--tls", "--path", "/tiny", "--size", "100", "--count", "10", "--conns", "2"];
    args.extend(account);
    let r = bench(&f.server, &args);
    assert_clean(&r, Some(10));
    assert_eq!(r.num("bytes"), 1000.0, "{}", r.context());
}

#[test]
fn tls_implicit_and_tls_failures() {
    let Some(f) = tls_fx("bench-tls-implicit", &["--implicit-tls-listen", "127.0.0.1:0"]) else { return };
    let implicit = implicit_addr(&f.server);
    let r = bench_at(&implicit, &["retr", "--tls-implicit", "--path", "/f.bin", "--count", "4", "--conns", "2"]);
    assert_clean(&r, Some(4));
    assert_eq!(r.num("bytes") as usize, 4 * FILE_LEN, "{}", r.context());
    assert_handshakes(&r, 2, 4, 4);
    assert!(r.json.contains("\"tls_mode\":\"tls-implicit\""), "{}", r.context());

    // Implicit TLS against the explicit port: a plaintext greeting where a
    // ServerHello should be is a TLS failure.
    let r = bench(&f.server, &["login", "--tls-implicit", "--count", "3"]);
    assert!(!r.ok(), "{}", r.context());
    assert_eq!(r.errors(), "\"tls\":3", "{}", r.context());

    // Without --tls this server refuses the login (--tls-require all).
    let r = bench(&f.server, &["login", "--count", "2"]);
    assert!(!r.ok(), "{}", r.context());
    assert!(r.json.contains("\"tls\":false"), "{}", r.context());

    // --tls against a server without a certificate: AUTH TLS is refused.
    let plain = fx("bench-tls-none", &[]);
    let r = bench(&plain.server, &["login", "--tls", "--count", "2"]);
    assert!(!r.ok(), "{}", r.context());
    assert!(r.errors().starts_with("\"5"), "a 5xx reply to AUTH TLS: {}", r.context());
}
