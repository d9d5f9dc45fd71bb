//! Shared harness for the integration tests: runs the real `mirrorftpd` on
//! port 0 over a fresh directory, a tiny blocking FTP client, a generated
//! test tree with a digest to compare two trees, and a runner for external
//! client tools that kills them at a deadline.
//!
//! `IT_EXTERNAL_SERVER` points the tests at a server that is already running
//! instead of starting `mirrorftpd`, to compare with other servers:
//!
//! ```text
//! python3 -m pyftpdlib -i 127.0.0.1 -p 2121 -d /tmp &
//! python3 -m pyftpdlib -i ::1 -p 2122 -d /tmp &
//! IT_EXTERNAL_SERVER='127.0.0.1:2121,[::1]:2122' IT_EXTERNAL_ROOT=/tmp cargo test --test it interop
//! ```
//!
//! The value is a comma-separated list of addresses; each test takes the first
//! one of the address family its `--listen` flags ask for (IPv4 by default).
//! `IT_EXTERNAL_ROOT` (default: `std::env::temp_dir()`) is the directory that
//! server serves to anonymous users; it must contain the test's temp dirs,
//! which then appear under `Server::prefix` instead of at `/`. Other flags
//! given to `Server::start` are ignored in that mode and `Server::log` is
//! empty.
#![allow(dead_code)] // each test module uses a different part of the harness

use std::collections::BTreeMap;
use std::env;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server may take to print all its "listening on" lines.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Read/write timeout of the test client's control and data connections.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The line prefix the server prints once per bound listen address.
const LISTENING: &str = "mirrorftpd: listening on ";
/// Longest reply line the test client accepts before calling it a bug.
const MAX_REPLY_LINE: u64 = 64 * 1024;

/// A fresh directory that is removed, with its contents, on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Creates a new, empty, uniquely named directory under `std::env::temp_dir()`.
pub fn temp_dir(name: &str) -> TempDir {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let path = env::temp_dir().join(format!("mirrorftpd-it-{name}-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    TempDir { path }
}

/// A running server: the real binary started on port 0, or an external one
/// named by `IT_EXTERNAL_SERVER` (see the module docs).
pub struct Server {
    child: Option<Child>,
    /// The first address the server listens on.
    pub addr: SocketAddr,
    /// Every address, in the order the server printed them.
    pub addrs: Vec<SocketAddr>,
    /// The directory served.
    pub root: PathBuf,
    /// Where `root` appears on the server: "" for mirrorftpd, "/dir" for an
    /// external server whose root is an ancestor of `root`.
    pub prefix: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `mirrorftpd --root ROOT --listen 127.0.0.1:0 --workers 2
    /// EXTRA...`; the default `--listen`/`--workers` are left out when
    /// `extra_args` has its own. Panics, with the stderr seen so far, if the
    /// server does not print all its "listening on" lines within 10 s.
    pub fn start(root: &Path, extra_args: &[&str]) -> Server {
        Server::start_env(root, extra_args, &[])
    }

    /// `start` with extra environment variables for the server process.
    pub fn start_env(root: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        if let Ok(external) = env::var("IT_EXTERNAL_SERVER") {
            return Server::external(&external, root, extra_args);
        }
        let has = |flag: &str| extra_args.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
        cmd.arg("--root").arg(root);
        if !has("--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !has("--workers") {
            cmd.args(["--workers", "2"]);
        }
        // Tests run as root; a root start drops to `nobody` unless told
        // otherwise, and the tests' trees belong to root.
        if !has("--run-as") && !has("--allow-root") {
            cmd.arg("--allow-root");
        }
        cmd.args(extra_args);
        cmd.envs(envs.iter().copied());
        let expected = listen_args(extra_args).len().max(1);
        Server::spawn(cmd, root, expected)
    }

    /// Runs `cmd` (a `mirrorftpd` serving `root`, perhaps behind a wrapper)
    /// and waits for `expected` "listening on" lines, as `start` does.
    pub fn spawn(mut cmd: Command, root: &Path, expected: usize) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));

        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        pump(child.stderr.take().expect("piped stderr"), log.clone(), Some(tx));
        pump(child.stdout.take().expect("piped stdout"), log.clone(), None);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut addrs = Vec::new();
        while addrs.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(addr) => addrs.push(addr),
                Err(why) => {
                    let _ = child.kill();
                    let status = child.wait();
                    // Let the pump threads take the last lines.
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{cmd:?}: saw {} of {expected} listening lines ({why:?}, exit {status:?}); \
                         stderr so far:\n{}",
                        addrs.len(),
                        lock(&log)
                    );
                }
            }
        }
        Server { child: Some(child), addr: addrs[0], addrs, root: root.to_path_buf(), prefix: String::new(), log }
    }

    fn external(list: &str, root: &Path, extra_args: &[&str]) -> Server {
        let offered: Vec<SocketAddr> = list
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|e| panic!("IT_EXTERNAL_SERVER {s:?}: {e}")))
            .collect();
        let mut wanted = listen_args(extra_args);
        if wanted.is_empty() {
            wanted.push("127.0.0.1:0".to_string());
        }
        let addrs: Vec<SocketAddr> = wanted
            .iter()
            .map(|w| {
                let v6 = w.starts_with('[');
                *offered.iter().find(|a| a.is_ipv6() == v6).unwrap_or_else(|| {
                    panic!("IT_EXTERNAL_SERVER={list:?} has no address of the family of --listen {w}")
                })
            })
            .collect();
        let served = env::var_os("IT_EXTERNAL_ROOT").map_or_else(env::temp_dir, PathBuf::from);
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (served, abs) = (canon(&served), canon(root));
        let rel = abs
            .strip_prefix(&served)
            .unwrap_or_else(|_| panic!("{} is not under IT_EXTERNAL_ROOT {}", abs.display(), served.display()));
        let prefix = rel.iter().map(|c| format!("/{}", c.to_string_lossy())).collect();
        Server {
            child: None,
            addr: addrs[0],
            addrs,
            root: root.to_path_buf(),
            prefix,
            log: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Everything the server wrote to stderr (and stdout) so far.
    /// The server process's id (for signals and /proc); panics for an
    /// external server, which this harness did not start.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("IT_EXTERNAL_SERVER: no process of ours").id()
    }

    /// Sends `sig` to the server process (ours only, by PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child this harness started.
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}): {}", self.pid(), io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the server to exit; its status, or None if
    /// it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("IT_EXTERNAL_SERVER: no process of ours");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// Waits up to `timeout` for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if lock(&self.log).contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first address of the given family; panics if there is none.
    pub fn addr_v(&self, v6: bool) -> SocketAddr {
        *self.addrs.iter().find(|a| a.is_ipv6() == v6).expect("no listen address of that family")
    }

    /// The path a client asks for to get `rel` (a '/'-separated path
    /// relative to the root, "" for the root itself).
    pub fn remote_path(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => format!("/{rel}"),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    /// `ftp://ADDR/PATH` for `rel` on the first address, percent-encoded.
    pub fn url(&self, rel: &str) -> String {
        self.url_at(self.addr, rel)
    }

    /// `ftp://ADDR/PATH` for `rel` on the given address, percent-encoded;
    /// a directory's URL ends with '/' (give `rel` with a trailing '/').
    pub fn url_at(&self, addr: SocketAddr, rel: &str) -> String {
        let mut path = self.remote_path(rel);
        if !path.ends_with('/') && (rel.is_empty() || rel.ends_with('/')) {
            path.push('/');
        }
        format!("ftp://{addr}{}", url_encode_path(&path))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        if thread::panicking() {
            eprintln!("---- server log ----\n{}---- end of server log ----", lock(&self.log));
        }
    }
}

/// The values of every `--listen` flag in `args`.
fn listen_args(args: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--listen" {
            out.extend(it.next().map(|v| v.to_string()));
        } else if let Some(v) = a.strip_prefix("--listen=") {
            out.push(v.to_string());
        }
    }
    out
}

fn lock(log: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies `stream` into `log` line by line on a thread; sends each
/// "listening on" address to `tx`, which is dropped at end of stream.
fn pump(stream: impl Read + Send + 'static, log: Arc<Mutex<String>>, tx: Option<mpsc::Sender<SocketAddr>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if let (Some(tx), Some(at)) = (&tx, text.find(LISTENING)) {
                if let Ok(addr) = text[at + LISTENING.len()..].trim().parse() {
                    let _ = tx.send(addr);
                }
            }
            let mut log = lock(&log);
            log.push_str(&text);
            if !text.ends_with('\n') {
                log.push('\n');
            }
        }
    });
}

/// Percent-encodes every byte of `path` except unreserved characters and '/'.
pub fn url_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A tiny blocking FTP control-connection client for protocol tests.
pub struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The server's address as seen on the control connection.
    pub peer: SocketAddr,
    /// The greeting read by `connect`.
    pub greeting: (u16, String),
}

impl Ftp {
    /// Connects and reads the greeting, which must be 220.
    pub fn connect(addr: SocketAddr) -> Ftp {
        let stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        Ftp::over(stream, addr)
    }

    /// Takes over a connected control stream (one that sent a PROXY header
    /// first, say) and reads the greeting, which must be 220.
    pub fn over(stream: TcpStream, addr: SocketAddr) -> Ftp {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set_read_timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set_write_timeout");
        let writer = stream.try_clone().expect("try_clone");
        let mut ftp = Ftp { reader: BufReader::new(stream), writer, peer: addr, greeting: (0, String::new()) };
        ftp.greeting = ftp.reply();
        assert_eq!(ftp.greeting.0, 220, "greeting: {:?}", ftp.greeting);
        ftp
    }

    /// Sends `line` followed by CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap_or_else(|e| panic!("sending {bytes:?}: {e}"));
    }

    /// Reads one full reply. The text is the first line without its "ddd "
    /// or "ddd-", then the following lines of a multi-line reply as they
    /// are, joined with '\n'. Panics on EOF, timeout or a malformed line.
    pub fn reply(&mut self) -> (u16, String) {
        self.try_reply().unwrap_or_else(|e| panic!("reading reply from {}: {e}", self.peer))
    }

    /// `reply`, returning I/O errors (EOF is `UnexpectedEof`).
    pub fn try_reply(&mut self) -> io::Result<(u16, String)> {
        read_reply(&mut self.reader)
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// USER anonymous, PASS, TYPE I; panics unless they succeed.
    pub fn login_anon(&mut self) {
        let user = self.cmd("USER anonymous");
        if user.0 == 331 {
            let pass = self.cmd("PASS it@example.com");
            assert_eq!(pass.0, 230, "PASS: {pass:?}");
        } else {
            assert_eq!(user.0, 230, "USER anonymous: {user:?}");
        }
        let ty = self.cmd("TYPE I");
        assert_eq!(ty.0, 200, "TYPE I: {ty:?}");
    }

    /// Sends EPSV and connects to the port it names on the control peer's IP.
    pub fn pasv_connect(&mut self) -> TcpStream {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "EPSV: {text:?}");
        let port = text
            .split_once("(|||")
            .and_then(|(_, rest)| rest.split_once("|)"))
            .and_then(|(port, _)| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("EPSV reply without (|||port|): {text:?}"));
        let addr = SocketAddr::new(self.peer.ip(), port);
        let data =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connecting data to {addr}: {e}"));
        data.set_read_timeout(Some(IO_TIMEOUT)).expect("set_read_timeout");
        data
    }

    /// RETR over EPSV; the error is the first reply that is not 1xx, or the
    /// closing reply if it is not 226/250.
    pub fn retr_bytes(&mut self, path: &str) -> Result<Vec<u8>, (u16, String)> {
        self.transfer(&format!("RETR {path}"))
    }

    /// Runs a listing command (LIST, NLST, MLSD with arguments) over EPSV
    /// and returns the data; panics unless it succeeds.
    pub fn list(&mut self, cmd: &str) -> Vec<u8> {
        self.transfer(cmd).unwrap_or_else(|r| panic!("{cmd}: {r:?}"))
    }

    fn transfer(&mut self, cmd: &str) -> Result<Vec<u8>, (u16, String)> {
        let mut data = self.pasv_connect();
        let start = self.cmd(cmd);
        if !(100..200).contains(&start.0) {
            return Err(start);
        }
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).unwrap_or_else(|e| panic!("{cmd}: reading data: {e}"));
        let done = self.reply();
        if done.0 != 226 && done.0 != 250 {
            return Err(done);
        }
        Ok(bytes)
    }
}

/// One reply from any buffered reader (plain TCP, TLS): the text is the
/// first line without its "ddd " or "ddd-", then the following lines of a
/// multi-line reply as they are, joined with '\n'. EOF is `UnexpectedEof`.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<(u16, String)> {
    let first = read_reply_line(r)?;
    let code = first
        .get(..3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad reply line {first:?}")))?;
    let mut text = first.get(4..).unwrap_or("").to_string();
    if first.as_bytes().get(3) == Some(&b'-') {
        let end = format!("{code} ");
        loop {
            let line = read_reply_line(r)?;
            text.push('\n');
            text.push_str(&line);
            if line.starts_with(&end) || line == end.trim_end() {
                break;
            }
        }
    }
    Ok((code, text))
}

fn read_reply_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    (&mut *r).take(MAX_REPLY_LINE).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() != Some(&b'\n') {
        let what = if line.len() as u64 >= MAX_REPLY_LINE { "over-long" } else { "unterminated" };
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{what} reply line")));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Whether `name` is on PATH. When it is not: panics if `CI` is set, else
/// prints a loud SKIPPED-LOUDLY line and returns false.
pub fn require_tool(name: &str) -> bool {
    let on_path = env::var_os("PATH").is_some_and(|paths| {
        env::split_paths(&paths)
            .any(|dir| fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    });
    if on_path {
        return true;
    }
    if env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{name} is not installed; it is required in CI (.ci/run installs it)");
    }
    // Straight to the process's stderr: the test harness captures eprintln!
    // and shows it only for failing tests.
    let _ = writeln!(io::stderr(), "SKIPPED-LOUDLY: {name} not installed; this interop test did not run");
    false
}

/// What a finished external command printed.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with stdin closed; kills it and panics if it is not done
/// within `timeout`, so a hung server fails the test instead of hanging CI.
pub fn run(cmd: &mut Command, timeout: Duration) -> Ran {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let collect = |mut stream: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("piped stdout")));
    let err = collect(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ran { status, stdout, stderr },
        None => panic!("{cmd:?} timed out after {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

/// `run`, and panics unless the command exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Ran {
    let ran = run(cmd, timeout);
    assert!(ran.status.success(), "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}", ran.status, ran.stdout, ran.stderr);
    ran
}

/// The large file of `make_tree`, relative to the root.
pub const BIG_FILE: &str = "big.bin";
/// Its length: 100 MiB.
pub const BIG_LEN: u64 = 100 << 20;
const MIB: u64 = 1 << 20;

/// Files of `make_tree`: path relative to the root, length.
pub const TREE_FILES: &[(&str, u64)] = &[
    ("empty.txt", 0),
    ("one.bin", 1),
    ("日本語.txt", 4095),
    ("page.bin", 4096),
    (BIG_FILE, BIG_LEN),
    (".hidden", 10),
    ("dir with space/sixty-four k plus one.bin", 65537),
    ("dir with space/mib-plus-3.bin", MIB + 3),
    ("ünïcødé/Ω file.txt", 4097),
    ("a/top.txt", 100),
    ("a/b/mid.txt", 1000),
    ("a/b/c/deep.bin", 12345),
    ("a/b/c/zero", 0),
];

/// Fills `root` with `TREE_FILES` (pseudo-random content, seeded by name)
/// and an empty directory `empty/`. `.hidden` is a dot file the server
/// hides; `tree_digest` skips it too.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("empty")).expect("mkdir empty");
    for &(rel, len) in TREE_FILES {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        let mut file = File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let mut rng = XorShift::new(fnv64(rel.as_bytes()));
        let mut chunk = vec![0u8; MIB as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(MIB) as usize;
            rng.fill(&mut chunk[..n]);
            file.write_all(&chunk[..n]).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            left -= n as u64;
        }
    }
}

/// xorshift64*: fast, seeded, good enough that corruption shows.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Relative path ('/'-separated) → (length, hash) for every regular file.
pub type Digest = BTreeMap<String, (u64, u64)>;

/// Walks `root` (following symlinks) and digests every file, skipping names
/// that start with '.'. Directories themselves are not entries.
pub fn tree_digest(root: &Path) -> Digest {
    let mut out = Digest::new();
    walk(root, "", &mut out);
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Digest) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        if meta.is_dir() {
            walk(&path, &child, out);
        } else if meta.is_file() {
            out.insert(child, file_digest(&path));
        }
    }
}

/// (length, hash) of one file: a word-at-a-time FNV-style hash, each
/// step a bijection so any single changed word changes the result.
pub fn file_digest(path: &Path) -> (u64, u64) {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; MIB as usize];
    let (mut hash, mut len) = (FNV_OFFSET, 0u64);
    loop {
        // Fill the buffer completely so the result does not depend on how
        // the reads were split; only the last chunk can be short.
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read {}: {e}", path.display()),
            }
        }
        let mut words = buf[..n].chunks_exact(8);
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            hash = (hash ^ w).wrapping_mul(FNV_PRIME).rotate_left(31);
        }
        for &b in words.remainder() {
            hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME).rotate_left(31);
        }
        len += n as u64;
        if n < buf.len() {
            return (len, hash ^ len);
        }
    }
}
