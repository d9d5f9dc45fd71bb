//! The SSH adapter (`sftp::ssh`) against the real OpenSSH client: a test-only
//! server loop (mio, one thread, like a worker) drives `SshConn` and answers
//! the channel with a tiny application: a minimal SFTP peer that only knows
//! INIT and REALPATH, a sink that counts and hashes what it receives, or a
//! source that sends a pattern. Password verdicts come from another thread
//! through a `mio::Waker`, as the helper pool's will.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use mirrorftpd::sftp::authkeys::{self, AuthorizedKeys};
use mirrorftpd::sftp::hostkey::HostKey;
use mirrorftpd::sftp::ssh::{SshConn, SshEvent, SshSettings};
use ssh_key::sha2::{Digest, Sha256};

use crate::util::{Ran, TempDir, require_tool, run, temp_dir};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret pw";
const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);
/// The whole exchange, client included, must end within this.
const DEADLINE: Duration = Duration::from_secs(60);
const BULK: u64 = 64 << 20;

/// What the test server does with the channel.
#[derive(Clone)]
enum App {
    /// SFTP INIT → VERSION 3, REALPATH → "/", anything else → OP_UNSUPPORTED.
    Sftp,
    /// Count and hash the input; on EOF reply "COUNT HASH\n".
    Sink,
    /// Send these bytes, then end.
    Source(Arc<Vec<u8>>),
}

/// What the server saw.
#[derive(Debug, Default)]
struct Report {
    authed: Option<String>,
    password_attempts: u32,
    pubkey_events: Vec<bool>,
    received: u64,
    sent: u64,
}

struct Options {
    app: App,
    settings: SshSettings,
    /// How long the "helper thread" takes for a password verdict.
    verdict_delay: Duration,
    keys: AuthorizedKeys,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bulk test data: not all zeroes, not periodic at packet sizes.
fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|pos| (pos.wrapping_mul(31) >> 3) as u8 ^ (pos >> 17) as u8).collect()
}

/// Starts the server for one connection; returns its address and the thread.
fn serve(host_key: Arc<HostKey>, opts: Options) -> (SocketAddr, thread::JoinHandle<Result<Report, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = thread::spawn(move || {
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + DEADLINE;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        session(TcpStream::from_std(stream), host_key, opts, deadline).map_err(|e| e.to_string())
    });
    (addr, h)
}

/// The loop a worker runs for one SSH session, in miniature.
fn session(
    mut sock: TcpStream,
    host_key: Arc<HostKey>,
    opts: Options,
    deadline: Instant,
) -> Result<Report, Box<dyn std::error::Error>> {
    let mut poll = Poll::new()?;
    poll.registry().register(&mut sock, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let (verdict_tx, verdict_rx) = mpsc::channel::<bool>();
    let mut events = Events::with_capacity(16);
    let mut conn = SshConn::new(host_key, opts.settings.clone())?;
    let mut report = Report::default();
    let (mut readable, mut writable) = (true, true);
    let mut inbuf: Vec<u8> = Vec::new();
    let mut chan_in = vec![0u8; 64 << 10];
    let mut app_out: Vec<u8> = Vec::new();
    let mut app_in: Vec<u8> = Vec::new();
    let mut hash = Sha256::new();
    let (mut eof, mut finished, mut closed) = (false, false, false);
    let mut sent = 0u64;
    loop {
        if Instant::now() > deadline {
            return Err(format!("server deadline passed: {report:?}").into());
        }
        let mut progress = false;
        if !inbuf.is_empty() && conn.wants_input() {
            let n = conn.feed(&inbuf)?;
            inbuf.drain(..n);
            progress |= n > 0;
        }
        while let Some(ev) = conn.poll()? {
            progress = true;
            match ev {
                SshEvent::PasswordAuth { user, password } => {
                    report.password_attempts += 1;
                    // The verdict comes later from another thread, as from the helper pool.
                    let ok = user == USER && password.as_str() == PASSWORD;
                    let (tx, waker, delay) = (verdict_tx.clone(), waker.clone(), opts.verdict_delay);
                    thread::spawn(move || {
                        thread::sleep(delay);
                        let _ = tx.send(ok);
                        let _ = waker.wake();
                    });
                }
                SshEvent::PubkeyAuth { user, key, signed } => {
                    report.pubkey_events.push(signed);
                    let ok = user == USER && opts.keys.contains(&key);
                    conn.resume_auth(ok)?;
                }
                SshEvent::Authenticated { user } => report.authed = Some(user),
                SshEvent::SubsystemSftp => {
                    if let App::Source(data) = &opts.app {
                        app_out = data.to_vec();
                    }
                }
                SshEvent::ChannelEof => eof = true,
                SshEvent::ChannelClosed => closed = true,
                SshEvent::Closed => return Ok(report),
                SshEvent::SessionOpened | SshEvent::ChannelData => {}
            }
        }
        if let Ok(allow) = verdict_rx.try_recv() {
            conn.resume_auth(allow)?;
            progress = true;
        }
        loop {
            let n = conn.read_channel(&mut chan_in)?;
            if n == 0 {
                break;
            }
            progress = true;
            report.received += n as u64;
            match opts.app {
                App::Sink => hash.update(&chan_in[..n]),
                App::Sftp => {
                    app_in.extend_from_slice(&chan_in[..n]);
                    sftp_answer(&mut app_in, &mut app_out);
                }
                App::Source(_) => {}
            }
        }
        if eof && matches!(opts.app, App::Sink) && !finished && app_out.is_empty() && sent == 0 {
            let digest = hex(&std::mem::take(&mut hash).finalize());
            app_out.extend(format!("{} {digest}\n", report.received).into_bytes());
        }
        while (sent as usize) < app_out.len() {
            let n = conn.write_channel(&app_out[sent as usize..])?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            progress = true;
        }
        let app_done = match &opts.app {
            App::Source(data) => sent == data.len() as u64 && eof,
            _ => eof && sent as usize == app_out.len(),
        };
        if app_done && !finished && !closed {
            report.sent = sent;
            conn.finish_channel(0)?;
            finished = true;
            progress = true;
        }
        while writable {
            let out = conn.output();
            if out.is_empty() {
                break;
            }
            match sock.write(out) {
                Ok(n) => {
                    conn.consume_output(n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}").into()),
            }
        }
        if readable && inbuf.len() < (256 << 10) {
            let mut buf = [0u8; 64 << 10];
            match sock.read(&mut buf) {
                Ok(0) => {
                    readable = false;
                    conn.close_input()?;
                    progress = true;
                }
                Ok(n) => {
                    inbuf.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}").into()),
            }
        }
        if !progress {
            poll.poll(&mut events, Some(Duration::from_millis(500)))?;
            for ev in events.iter() {
                if ev.token() == SOCKET {
                    readable |= ev.is_readable() || ev.is_read_closed();
                    writable |= ev.is_writable();
                }
            }
        }
    }
}

/// Answers whole SFTP packets in `input`: just enough for OpenSSH's `sftp`
/// to start and say `bye`.
fn sftp_answer(input: &mut Vec<u8>, out: &mut Vec<u8>) {
    fn packet(out: &mut Vec<u8>, body: &[u8]) {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    fn string(v: &mut Vec<u8>, s: &[u8]) {
        v.extend_from_slice(&(s.len() as u32).to_be_bytes());
        v.extend_from_slice(s);
    }
    while input.len() >= 5 {
        let len = u32::from_be_bytes([input[0], input[1], input[2], input[3]]) as usize;
        if input.len() < 4 + len {
            return;
        }
        let p: Vec<u8> = input.drain(..4 + len).skip(4).collect();
        let id = p.get(1..5).map(|b| [b[0], b[1], b[2], b[3]]).unwrap_or_default();
        let mut body = Vec::new();
        match p[0] {
            1 => body.extend_from_slice(&[2, 0, 0, 0, 3]), // INIT → VERSION 3
            16 => {
                // REALPATH → NAME: one entry "/", empty attrs
                body.push(104);
                body.extend_from_slice(&id);
                body.extend_from_slice(&1u32.to_be_bytes());
                string(&mut body, b"/");
                string(&mut body, b"/");
                body.extend_from_slice(&0u32.to_be_bytes());
            }
            _ => {
                body.push(101); // STATUS OP_UNSUPPORTED
                body.extend_from_slice(&id);
                body.extend_from_slice(&8u32.to_be_bytes());
                string(&mut body, b"unsupported");
                string(&mut body, b"");
            }
        }
        packet(out, &body);
    }
}

/// The client options every run shares: no config files, no known hosts.
fn ssh_args(cmd: &mut Command) -> &mut Command {
    cmd.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]).args([
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=0",
    ])
}

fn password_opts() -> [&'static str; 6] {
    ["-o", "BatchMode=no", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]
}

fn host_key(dir: &TempDir) -> Arc<HostKey> {
    Arc::new(HostKey::load_or_create(&dir.join("host_ed25519")).expect("host key"))
}

fn finish(h: thread::JoinHandle<Result<Report, String>>) -> Report {
    match h.join() {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("test server failed: {e}"),
        Err(_) => panic!("test server panicked"),
    }
}

fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| require_tool(t))
}

fn default_opts(app: App) -> Options {
    Options { app, settings: SshSettings::default(), verdict_delay: Duration::ZERO, keys: AuthorizedKeys::default() }
}

/// `sftp -b` with only `bye` exits 0 within seconds: the password verdict
/// arrives 300 ms late from another thread (deferred authentication), and
/// the server ends the channel with exit-status 0, EOF and CLOSE.
#[test]
fn openssh_sftp_bye_exits_zero_after_deferred_password() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let dir = temp_dir("ssh-bye");
    let key = host_key(&dir);
    let batch = dir.join("batch");
    fs::write(&batch, "bye\n").unwrap();
    let opts = Options { verdict_delay: Duration::from_millis(300), ..default_opts(App::Sftp) };
    let (addr, h) = serve(key.clone(), opts);
    let started = Instant::now();
    let ran = run(
        ssh_args(Command::new("sshpass").args(["-p", PASSWORD, "sftp", "-v"]))
            .args(password_opts())
            .args(["-P", &addr.port().to_string(), "-b"])
            .arg(&batch)
            .arg(format!("{USER}@{}", addr.ip())),
        Duration::from_secs(20),
    );
    let took = started.elapsed();
    let report = finish(h);
    assert!(ran.status.success(), "sftp failed: {}\n{}", ran.status, ran.stderr);
    assert!(took < Duration::from_secs(10), "sftp took {took:?}");
    assert!(took >= Duration::from_millis(300), "the deferred verdict was not waited for: {took:?}");
    assert_eq!(report.authed.as_deref(), Some(USER));
    assert_eq!(report.password_attempts, 1);
    assert!(
        ran.stderr.contains(&format!("Server host key: ssh-ed25519 {}", key.fingerprint())),
        "the client saw another host key than {}:\n{}",
        key.fingerprint(),
        ran.stderr
    );
    assert!(ran.stderr.contains("Exit status 0"), "no exit-status reached the client:\n{}", ran.stderr);
}

/// A wrong password is refused after its deferred verdict; the client gives up.
#[test]
fn openssh_wrong_password_is_refused() {
    if !have_tools(&["sshpass", "ssh"]) {
        return;
    }
    let dir = temp_dir("ssh-wrongpw");
    let opts = Options { verdict_delay: Duration::from_millis(20), ..default_opts(App::Sink) };
    let (addr, h) = serve(host_key(&dir), opts);
    let ran = run(
        ssh_args(Command::new("sshpass").args(["-p", "not it", "ssh"]))
            .args(password_opts())
            .args(["-o", "NumberOfPasswordPrompts=2", "-p", &addr.port().to_string(), "-s"])
            .arg(format!("{USER}@{}", addr.ip()))
            .arg("sftp"),
        Duration::from_secs(20),
    );
    let report = finish(h);
    assert!(!ran.status.success(), "logged in with a wrong password: {}", ran.stderr);
    assert_eq!(report.authed, None);
    assert!(report.password_attempts >= 1, "{report:?}");
}

/// Runs `ssh -s sftp` with stdin from `input` and stdout to `output`.
fn ssh_subsystem(addr: SocketAddr, extra: &[&str], input: &Path, output: &Path) -> (bool, String) {
    let mut cmd = Command::new("sshpass");
    ssh_args(cmd.args(["-p", PASSWORD, "ssh", "-vv"]))
        .args(password_opts())
        .args(extra)
        .args(["-p", &addr.port().to_string(), "-s"])
        .arg(format!("{USER}@{}", addr.ip()))
        .arg("sftp")
        .stdin(File::open(input).unwrap())
        .stdout(File::create(output).unwrap())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ssh");
    let mut err = child.stderr.take().expect("stderr");
    let errs = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ssh timed out: {}", errs.join().unwrap_or_default());
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status.success(), errs.join().unwrap_or_default())
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// 64 MiB up through the channel with a 2 MiB window and 32 KiB packets,
/// across client rekeys every 16 MiB; the bytes arrive intact, the window
/// is the one advertised.
#[test]
fn openssh_64mib_upload_with_rekeys() {
    if !have_tools(&["sshpass", "ssh"]) {
        return;
    }
    let dir = temp_dir("ssh-up");
    let input = dir.join("in.bin");
    let data = pattern(BULK);
    fs::write(&input, &data).unwrap();
    let want = format!("{BULK} {}\n", hex(&Sha256::digest(&data)));
    let (addr, h) = serve(host_key(&dir), default_opts(App::Sink));
    let started = Instant::now();
    let output = dir.join("out");
    let (ok, stderr) = ssh_subsystem(addr, &["-o", "RekeyLimit=16M"], &input, &output);
    let took = started.elapsed();
    let report = finish(h);
    let kexes = stderr.matches("SSH2_MSG_NEWKEYS received").count();
    eprintln!("ssh upload: {BULK} bytes in {took:?}: {:.0} MiB/s, {kexes} key exchanges", mib_per_s(BULK, took));
    assert!(ok, "ssh failed:\n{stderr}");
    assert_eq!(fs::read_to_string(&output).unwrap(), want);
    assert_eq!(report.received, BULK);
    let window = SshSettings::default();
    let confirm = format!("open confirm rwindow {} rmax {}", window.window, window.max_packet);
    assert!(stderr.contains(&confirm), "no '{confirm}' in:\n{stderr}");
    assert!(kexes >= 4, "expected the first key exchange and 3+ rekeys, saw {kexes}:\n{stderr}");
}

/// 64 MiB down through the channel across rekeys, intact.
#[test]
fn openssh_64mib_download_with_rekeys() {
    if !have_tools(&["sshpass", "ssh"]) {
        return;
    }
    let dir = temp_dir("ssh-down");
    let data = Arc::new(pattern(BULK));
    let (addr, h) = serve(host_key(&dir), default_opts(App::Source(data.clone())));
    let started = Instant::now();
    let output = dir.join("out.bin");
    let (ok, stderr) = ssh_subsystem(addr, &["-o", "RekeyLimit=16M"], Path::new("/dev/null"), &output);
    let took = started.elapsed();
    let report = finish(h);
    let kexes = stderr.matches("SSH2_MSG_NEWKEYS received").count();
    eprintln!("ssh download: {BULK} bytes in {took:?}: {:.0} MiB/s, {kexes} key exchanges", mib_per_s(BULK, took));
    assert!(ok, "ssh failed:\n{stderr}");
    assert_eq!(report.sent, BULK);
    let got = fs::read(&output).unwrap();
    assert_eq!(got.len() as u64, BULK);
    assert!(got == *data, "downloaded bytes differ");
    assert!(kexes >= 4, "expected the first key exchange and 3+ rekeys, saw {kexes}:\n{stderr}");
}

/// A public key login: the query and the signed request both reach the
/// application, which allows the key found in the user's authorized keys.
#[test]
fn openssh_pubkey_login() {
    if !have_tools(&["ssh", "ssh-keygen"]) {
        return;
    }
    let dir = temp_dir("ssh-pubkey");
    let id = dir.join("id_ed25519");
    let ran: Ran = run(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"]).arg(&id),
        Duration::from_secs(10),
    );
    assert!(ran.status.success(), "ssh-keygen: {}", ran.stderr);
    let (keys, skipped) = authkeys::parse(&fs::read_to_string(dir.join("id_ed25519.pub")).unwrap());
    assert!(skipped.is_empty() && keys.len() == 1, "{skipped:?}");
    let (addr, h) = serve(host_key(&dir), Options { keys, ..default_opts(App::Sink) });
    let mut cmd = Command::new("ssh");
    let ran = run(
        ssh_args(&mut cmd)
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no", "-i"])
            .arg(&id)
            .args(["-p", &addr.port().to_string(), "-s"])
            .arg(format!("{USER}@{}", addr.ip()))
            .arg("sftp"),
        Duration::from_secs(20),
    );
    let report = finish(h);
    assert!(ran.status.success(), "ssh failed: {}", ran.stderr);
    assert_eq!(ran.stdout, format!("0 {}\n", hex(&Sha256::digest(b""))));
    assert_eq!(report.authed.as_deref(), Some(USER));
    assert_eq!(report.pubkey_events, vec![false, true], "a query, then the signed request");
}

/// The host key file this server writes is one OpenSSH reads, with the same
/// fingerprint.
#[test]
fn host_key_file_is_openssh_format() {
    if !have_tools(&["ssh-keygen"]) {
        return;
    }
    let dir = temp_dir("ssh-hostkey");
    let path = dir.join("key");
    let key = HostKey::load_or_create(&path).unwrap();
    let ran = run(Command::new("ssh-keygen").args(["-l", "-f"]).arg(&path), Duration::from_secs(10));
    assert!(ran.status.success(), "ssh-keygen -l: {}", ran.stderr);
    assert!(ran.stdout.contains(key.fingerprint()), "{} not in {}", key.fingerprint(), ran.stdout);
    let ran = run(Command::new("ssh-keygen").args(["-y", "-f"]).arg(&path), Duration::from_secs(10));
    assert!(ran.status.success() && ran.stdout.starts_with("ssh-ed25519 "), "ssh-keygen -y: {}", ran.stderr);
}
