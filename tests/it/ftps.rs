//! FTPS: explicit (AUTH TLS) and implicit TLS. Real clients (curl, lftp,
//! Python's ftplib) move files both ways under `--tls-require all`; the
//! data-hijack defence (`--tls-session-reuse`) refuses non-resuming data
//! connections and keeps resuming ones working for many transfers; the
//! protocol rules (FEAT, PBSZ/PROT/CCC, `--tls-require`, the TLS version
//! floor, ALPN "ftp" only); the STARTTLS command-injection regression
//! (CVE-2011-0411); no plaintext byte after "234"; certificate reload on
//! SIGHUP; an interrupted TLS upload keeping its bytes.
//!
//! The certificate is made at test time with the `openssl` CLI, into the
//! test's own directory. The protocol tests speak TLS themselves through a
//! rustls client that accepts any certificate and records every raw byte it
//! reads; the interop tests need curl, lftp and python3. A missing tool fails
//! the test when `CI` is set and is skipped loudly otherwise.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, StreamOwned};
use socket2::SockRef;

use crate::accounts::{AcctFx, acct_fx};
use crate::protocol::{MIB, SHORT, epsv_port, pattern, put};
use crate::util::{
    Ftp, Ran, Server, TempDir, file_digest, read_reply, require_tool, run, run_ok, temp_dir, tree_digest,
};

/// Deadline for one external client run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Read timeout of every socket the tests open.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The account of every fixture: home = the root, all permissions.
const USER: &str = "u";
const PASS: &str = "secret";
/// Size of the interop download and upload files: a few MiB, odd length.
const BIG: usize = 5 * MIB as usize + 7;

// ---------------------------------------------------------------------------
// Certificates, the account, fixtures
// ---------------------------------------------------------------------------

/// Makes a self-signed P-256 certificate for CN=localhost: `dir/NAME.cert.pem`
/// and `dir/NAME.key.pem`.
pub(crate) fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-days", "2", "-subj", "/CN=localhost"]),
        Duration::from_secs(30),
    );
    (cert, key)
}

/// The DER of the (first) certificate in a PEM file.
fn cert_der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap_or_else(|e| panic!("reading {}: {e}", pem.display())).to_vec()
}

/// SHA-512 crypt of `PASS` (`openssl passwd -6 -salt saltsalt secret`).
fn pass_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let ran =
            run_ok(Command::new("openssl").args(["passwd", "-6", "-salt", "saltsalt", PASS]), Duration::from_secs(30));
        let hash = ran.stdout.trim().to_string();
        assert!(hash.starts_with("$6$saltsalt$"), "openssl passwd -6 printed {hash:?}");
        hash
    })
    .clone()
}

/// A server with a certificate and the account `u`. Fields drop in order:
/// the server first, then its directories.
struct TlsFx {
    acct: AcctFx,
    cert: PathBuf,
    #[allow(dead_code)]
    pki: TempDir,
}

impl TlsFx {
    fn server(&self) -> &Server {
        &self.acct.server
    }

    fn root(&self) -> &Path {
        &self.acct.root
    }

    /// The implicit-TLS address, read from the server's stderr.
    fn implicit_addr(&self) -> SocketAddr {
        implicit_addr(self.server())
    }
}

/// A root filled by `fill`, a fresh certificate, the account `u` (home = the
/// root, all permissions), and the server started with `args` after
/// `--users`, `--tls-cert` and `--tls-key`.
fn tls_fx(name: &str, args: &[&str], fill: impl FnOnce(&Path)) -> TlsFx {
    let pki = temp_dir(&format!("{name}-pki"));
    let (cert, key) = make_cert(&pki, "server");
    let (c, k) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let mut all = vec!["--tls-cert", c.as_str(), "--tls-key", k.as_str()];
    all.extend_from_slice(args);
    let hash = pass_hash();
    let acct = acct_fx(name, &[(USER, hash.as_str(), "", "all")], None, &all, fill);
    TlsFx { acct, cert, pki }
}

/// The address of `mirrorftpd: implicit TLS on ADDR` in the server's log.
pub(crate) fn implicit_addr(server: &Server) -> SocketAddr {
    const LINE: &str = "mirrorftpd: implicit TLS on ";
    assert!(server.wait_log(LINE, SHORT), "no {LINE:?} line; log:\n{}", server.log());
    let log = server.log();
    let at = log.find(LINE).expect("line") + LINE.len();
    let addr = log[at..].lines().next().unwrap_or("").trim();
    addr.parse().unwrap_or_else(|e| panic!("implicit TLS address {addr:?}: {e}"))
}

/// True when every tool is installed (see `util::require_tool`).
fn tools(names: &[&str]) -> bool {
    names.iter().all(|n| require_tool(n))
}

// ---------------------------------------------------------------------------
// A rustls client that records the raw bytes it reads
// ---------------------------------------------------------------------------

/// The TLS versions a client offers.
#[derive(Clone, Copy, Debug)]
enum Versions {
    Both,
    Only12,
    Only13,
}

/// A client configuration with its own session cache (so one control
/// session never resumes another's tickets), offering `alpn`.
fn client_config(versions: Versions, alpn: &[&str]) -> Arc<ClientConfig> {
    let provider = mirrorftpd::tls::provider();
    let v: &[&'static rustls::SupportedProtocolVersion] = match versions {
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Versions::Only12 => &[&rustls::version::TLS12],
        Versions::Only13 => &[&rustls::version::TLS13],
    };
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(v)
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(mirrorftpd::bench::tls::AcceptAnyCert::new(&provider))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

pub(crate) fn default_config() -> Arc<ClientConfig> {
    client_config(Versions::Both, &[])
}

/// A TCP stream that keeps a copy of every byte it reads.
struct Tap {
    tcp: TcpStream,
    seen: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

type TlsStream = StreamOwned<ClientConnection, Tap>;

/// Runs a client handshake (server name "localhost") on `tcp`.
fn handshake(cfg: &Arc<ClientConfig>, tcp: TcpStream) -> io::Result<TlsStream> {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    let mut tap = Tap { tcp, seen: Vec::new() };
    let deadline = Instant::now() + IO_TIMEOUT;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake did not finish"));
        }
        conn.complete_io(&mut tap)?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut tap)?;
    }
    Ok(StreamOwned::new(conn, tap))
}

/// A TCP connection with read/write timeouts and no-delay.
fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A reply read from a plaintext socket one byte at a time, so nothing after
/// it (the TLS handshake) is consumed.
fn plain_reply(tcp: &mut TcpStream) -> io::Result<(u16, String)> {
    read_reply(&mut BufReader::with_capacity(1, tcp))
}

/// Connects, reads the 220, sends AUTH TLS, expects 234. The socket is left
/// right before the handshake.
fn auth_tls(addr: SocketAddr) -> TcpStream {
    let mut tcp = tcp_connect(addr);
    let g = plain_reply(&mut tcp).expect("greeting");
    assert_eq!(g.0, 220, "greeting: {g:?}");
    tcp.write_all(b"AUTH TLS\r\n").expect("sending AUTH TLS");
    let r = plain_reply(&mut tcp).expect("reply to AUTH TLS");
    assert_eq!(r.0, 234, "AUTH TLS: {r:?}");
    tcp
}

/// What a data transfer ended with when it did not succeed: the reply that
/// was not 150/226 (code 0: the data connection itself failed).
type Fail = (u16, String);

/// A control connection under TLS.
struct TlsCtl {
    ctl: BufReader<TlsStream>,
    cfg: Arc<ClientConfig>,
    /// The configuration (and so the session cache) data connections use:
    /// the control connection's unless a test swaps it.
    data_cfg: Arc<ClientConfig>,
    ip: IpAddr,
    /// PROT P in force: data connections run TLS.
    prot_p: bool,
    /// How each data handshake went (resumed or full), in order.
    data_kinds: Vec<Option<HandshakeKind>>,
}

impl TlsCtl {
    /// AUTH TLS on a fresh connection, then the handshake.
    fn explicit(addr: SocketAddr, cfg: Arc<ClientConfig>) -> TlsCtl {
        TlsCtl::try_explicit(addr, cfg).unwrap_or_else(|e| panic!("AUTH TLS handshake with {addr}: {e}"))
    }

    fn try_explicit(addr: SocketAddr, cfg: Arc<ClientConfig>) -> io::Result<TlsCtl> {
        let tcp = auth_tls(addr);
        TlsCtl::upgrade(tcp, cfg, false)
    }

    /// TLS from the first byte, then the 220.
    fn implicit(addr: SocketAddr, cfg: Arc<ClientConfig>) -> TlsCtl {
        let tcp = tcp_connect(addr);
        let mut c = TlsCtl::upgrade(tcp, cfg, true).unwrap_or_else(|e| panic!("implicit TLS with {addr}: {e}"));
        let g = c.reply().expect("greeting over implicit TLS");
        assert_eq!(g.0, 220, "greeting: {g:?}");
        c
    }

    fn upgrade(tcp: TcpStream, cfg: Arc<ClientConfig>, prot_p: bool) -> io::Result<TlsCtl> {
        let ip = tcp.peer_addr()?.ip();
        let s = handshake(&cfg, tcp)?;
        Ok(TlsCtl { ctl: BufReader::new(s), data_cfg: cfg.clone(), cfg, ip, prot_p, data_kinds: Vec::new() })
    }

    fn conn(&self) -> &ClientConnection {
        &self.ctl.get_ref().conn
    }

    /// Every raw byte read from the server since the handshake began.
    fn seen(&self) -> &[u8] {
        &self.ctl.get_ref().sock.seen
    }

    fn peer_cert(&self) -> Vec<u8> {
        self.conn().peer_certificates().and_then(|c| c.first()).expect("a server certificate").to_vec()
    }

    fn send(&mut self, line: &str) {
        let s = self.ctl.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
        s.flush().unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    fn reply(&mut self) -> io::Result<(u16, String)> {
        read_reply(&mut self.ctl)
    }

    #[track_caller]
    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply().unwrap_or_else(|e| panic!("reply to {line:?} over TLS: {e}"))
    }

    #[track_caller]
    fn expect(&mut self, line: &str, code: u16) -> String {
        let r = self.cmd(line);
        assert_eq!(r.0, code, "sent {line:?} over TLS: got {r:?}, expected {code}");
        r.1
    }

    /// USER/PASS (331, 230) and TYPE I.
    #[track_caller]
    fn login(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
        self.expect("TYPE I", 200);
    }

    /// PBSZ 0 and PROT P.
    #[track_caller]
    fn protect(&mut self) {
        self.expect("PBSZ 0", 200);
        self.expect("PROT P", 200);
        self.prot_p = true;
    }

    fn epsv(&mut self) -> TcpStream {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "EPSV: {text:?}");
        tcp_connect(SocketAddr::new(self.ip, epsv_port(&text)))
    }

    /// EPSV, connect, `REST rest` (350) if given, `cmd` (150 expected),
    /// then TLS on the data connection under PROT P. Err: the reply to `cmd`
    /// when it was not 150.
    fn open_data(&mut self, rest: Option<u64>, cmd: &str) -> Result<DataConn, Fail> {
        let tcp = self.epsv();
        if let Some(off) = rest {
            self.expect(&format!("REST {off}"), 350);
        }
        let start = self.cmd(cmd);
        if start.0 != 150 {
            return Err(start);
        }
        if !self.prot_p {
            return Ok(DataConn::Plain(tcp));
        }
        match handshake(&self.data_cfg, tcp) {
            Ok(s) => {
                self.data_kinds.push(s.conn.handshake_kind());
                Ok(DataConn::Tls(Box::new(s)))
            }
            Err(e) => Ok(DataConn::Broken(format!("data TLS handshake: {e}"))),
        }
    }

    /// The final reply of a transfer; the data side's failure, if any, is
    /// reported after a 226 (a transfer is good only when both are).
    fn finish(&mut self, data_err: Option<String>) -> Result<(), Fail> {
        let done = self.reply().map_err(|e| (0, format!("final reply: {e}; data: {data_err:?}")))?;
        if done.0 != 226 {
            return Err(done);
        }
        match data_err {
            Some(e) => Err((0, format!("226 but the data connection failed: {e}"))),
            None => Ok(()),
        }
    }

    fn retr(&mut self, path: &str) -> Result<Vec<u8>, Fail> {
        let mut data = self.open_data(None, &format!("RETR {path}"))?;
        let mut bytes = Vec::new();
        let err = data.read_all(&mut bytes).err();
        drop(data);
        self.finish(err)?;
        Ok(bytes)
    }

    fn stor(&mut self, path: &str, bytes: &[u8]) -> Result<(), Fail> {
        self.stor_at(None, path, bytes)
    }

    /// Uploads like a careful client: sends the bytes and close_notify,
    /// half-closes, and keeps reading the data connection (the server's
    /// tickets) until the final reply is in.
    fn stor_at(&mut self, rest: Option<u64>, path: &str, bytes: &[u8]) -> Result<(), Fail> {
        let mut data = self.open_data(rest, &format!("STOR {path}"))?;
        let err = data.send_and_shutdown(bytes).err();
        let done = self.finish(err);
        data.drain();
        done
    }
}

/// A data connection as the client sees it.
enum DataConn {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    /// The handshake failed; the reason.
    Broken(String),
}

impl DataConn {
    /// Reads to the end: TLS must end with close_notify (a bare TCP close
    /// could be a truncation).
    fn read_all(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            DataConn::Plain(t) => t.read_to_end(out).map(drop).map_err(|e| format!("reading data: {e}")),
            DataConn::Tls(s) => s.read_to_end(out).map(drop).map_err(|e| format!("reading TLS data: {e}")),
            DataConn::Broken(why) => Err(why.clone()),
        }
    }

    /// Sends `bytes`, then (TLS) close_notify, then a TCP half-close.
    fn send_and_shutdown(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            DataConn::Plain(t) => {
                t.write_all(bytes).map_err(|e| format!("writing data: {e}"))?;
                t.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
            }
            DataConn::Tls(s) => {
                s.write_all(bytes).map_err(|e| format!("writing TLS data: {e}"))?;
                s.conn.send_close_notify();
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock).map_err(|e| format!("sending close_notify: {e}"))?;
                }
                s.sock.tcp.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
            }
            DataConn::Broken(why) => Err(why.clone()),
        }
    }

    /// Reads whatever the server still sends, up to its close (bounded by
    /// the read timeout), so closing the socket never resets it.
    fn drain(&mut self) {
        let mut sink = Vec::new();
        let _ = match self {
            DataConn::Plain(t) => t.read_to_end(&mut sink),
            DataConn::Tls(s) => s.sock.tcp.read_to_end(&mut sink),
            DataConn::Broken(_) => Ok(0),
        };
    }
}

/// Splits raw bytes into TLS records; Err names the first byte that does not
/// start a well-formed record (type 20-23, version 3.x, length <= 2^14+2048).
/// A record cut off at the end (the read stopped) is accepted.
fn tls_records(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut types = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let head = &raw[at..raw.len().min(at + 5)];
        let ok_type = (20..=23).contains(&head[0]);
        let ok_version = head.len() < 3 || (head[1] == 3 && head[2] <= 4);
        if !ok_type || !ok_version {
            let show = String::from_utf8_lossy(&raw[at..raw.len().min(at + 40)]).into_owned();
            return Err(format!("byte {at} does not start a TLS record: {head:02x?} ({show:?})"));
        }
        if head.len() < 5 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        if len > (1 << 14) + 2048 {
            return Err(format!("record at byte {at} claims {len} bytes"));
        }
        types.push(head[0]);
        at += 5 + len;
    }
    Ok(types)
}

// ---------------------------------------------------------------------------
// External clients
// ---------------------------------------------------------------------------

fn curl_cmd() -> Command {
    let mut cmd = Command::new("curl");
    // -q (ignore ~/.curlrc) must come first.
    cmd.args(["-q", "-sS", "-k", "--max-time", "50", "--user", &format!("{USER}:{PASS}")]);
    cmd
}

/// curl downloads `big.bin` from `url_base` and uploads a fresh file to
/// `in/NAME`; both must match byte for byte.
fn curl_both_ways(f: &TlsFx, url_base: &str, extra: &[&str], name: &str) {
    let dst = temp_dir(&format!("{name}-dst"));
    let got = dst.join("big.bin");
    run_ok(curl_cmd().args(extra).arg("-o").arg(&got).arg(format!("{url_base}/big.bin")), TOOL_TIMEOUT);
    assert_eq!(file_digest(&got), file_digest(&f.root().join("big.bin")), "curl {extra:?} download of big.bin");
    let src = dst.join("up.bin");
    fs::write(&src, pattern(77, BIG + 1)).expect("upload source");
    run_ok(curl_cmd().args(extra).arg("-T").arg(&src).arg(format!("{url_base}/in/{name}.bin")), TOOL_TIMEOUT);
    let landed = f.root().join(format!("in/{name}.bin"));
    assert_eq!(file_digest(&landed), file_digest(&src), "curl {extra:?} -T upload to in/{name}.bin");
}

/// `lftp -c` with FTPS forced for control and data, logged in as `u`, then
/// `body`. Returns what lftp printed.
fn lftp(addr: SocketAddr, body: &str) -> Ran {
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; set net:reconnect-interval-base 1; \
         set ssl:verify-certificate no; set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ftp:ssl-allow yes; open -u {USER},{PASS} -p {} {}; {body}; quit",
        addr.port(),
        addr.ip()
    );
    run_ok(Command::new("lftp").env("LC_ALL", "C.UTF-8").arg("--norc").arg("-c").arg(&script), TOOL_TIMEOUT)
}

/// Python ftplib over TLS: `HOST PORT USER PASS KIND MAXVER MODE ARGS...`.
/// KIND: `plain` is `ftplib.FTP_TLS` as shipped (data connections never
/// resume the control session); `reuse` passes `session=self.sock.session`
/// to `wrap_socket`. MAXVER: `1.2` caps the context at TLS 1.2, `any` not.
/// MODE `both REMOTE LOCAL_WANT LOCAL_SRC REMOTE_DST`: retrbinary REMOTE and
/// compare it with LOCAL_WANT, storbinary LOCAL_SRC to REMOTE_DST.
/// MODE `loop N REMOTE LOCAL_WANT`: N retrbinary, one line each ("ok" or
/// what went wrong, with the control reply), then NOOP's reply.
const FTPLIB: &str = r#"
import ftplib, ssl, sys

host, port, user, pw, kind, maxver, mode = sys.argv[1:8]
args = sys.argv[8:]

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if maxver == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

class Reusing(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            print("data-resumed", conn.session_reused, flush=True)
        return conn, size

ftp = (Reusing if kind == "reuse" else ftplib.FTP_TLS)(context=ctx, timeout=15)
ftp.connect(host, int(port))
ftp.login(user, pw)
ftp.prot_p()
print("control", ftp.sock.version(), flush=True)

def retr(remote):
    buf = bytearray()
    ftp.retrbinary("RETR " + remote, buf.extend)
    return bytes(buf)

if mode == "both":
    remote, want, src, dst = args
    got = retr(remote)
    if got != open(want, "rb").read():
        sys.exit("retrbinary %s: %d bytes that differ from %s" % (remote, len(got), want))
    with open(src, "rb") as fh:
        print("stor", ftp.storbinary("STOR " + dst, fh), flush=True)
elif mode == "loop":
    n, remote, want = int(args[0]), args[1], open(args[2], "rb").read()
    for i in range(n):
        try:
            got = retr(remote)
            res = "ok" if got == want else "corrupt %d bytes" % len(got)
        except ftplib.Error as e:
            res = "reply %s" % e
        except (OSError, EOFError) as e:
            try:
                res = "broken (%r) then %s" % (e, ftp.getresp())
            except ftplib.Error as e2:
                res = "broken (%r) then %s" % (e, e2)
        print("transfer", i, res, flush=True)
    try:
        print("noop", ftp.sendcmd("NOOP"), flush=True)
    except ftplib.Error as e:
        print("noop", e, flush=True)
else:
    sys.exit("unknown mode " + mode)
ftp.quit()
"#;

fn ftplib(addr: SocketAddr, kind: &str, maxver: &str, mode: &str, args: &[&str]) -> Ran {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", FTPLIB, &addr.ip().to_string(), &addr.port().to_string(), USER, PASS, kind, maxver, mode]);
    cmd.args(args);
    run_ok(&mut cmd, TOOL_TIMEOUT)
}

/// `count` RETRs of `big.bin` in one ftplib session; asserts each one came
/// back whole and (for `reuse`) resumed the control session; returns stdout.
fn ftplib_loop_ok(f: &TlsFx, kind: &str, maxver: &str, count: usize) -> String {
    let want = f.root().join("big.bin");
    let n = count.to_string();
    let ran = ftplib(f.server().addr, kind, maxver, "loop", &[&n, "/big.bin", &want.to_string_lossy()]);
    let out = ran.stdout;
    let results: Vec<&str> = out.lines().filter(|l| l.starts_with("transfer ")).collect();
    assert_eq!(results.len(), count, "ftplib {kind} ran {} of {count} transfers:\n{out}", results.len());
    for (i, line) in results.iter().enumerate() {
        assert_eq!(*line, format!("transfer {i} ok"), "ftplib {kind} (max TLS {maxver}), transfer {i}:\n{out}");
    }
    assert!(out.contains("noop 200"), "NOOP after the transfers:\n{out}");
    if kind == "reuse" {
        let resumed: Vec<&str> = out.lines().filter(|l| l.starts_with("data-resumed")).collect();
        assert_eq!(resumed.len(), count, "{out}");
        assert!(resumed.iter().all(|l| *l == "data-resumed True"), "a data connection did not resume:\n{out}");
    }
    out
}

/// A root with `big.bin` (BIG bytes) and an empty upload folder `in/`.
fn fill_big(root: &Path) {
    put(root, "big.bin", &pattern(31, BIG));
    fs::create_dir(root.join("in")).expect("mkdir in");
}

// ---------------------------------------------------------------------------
// Interop: downloads and uploads with checksums
// ---------------------------------------------------------------------------

#[test]
fn curl_explicit_ftps_download_and_upload() {
    if !tools(&["openssl", "curl"]) {
        return;
    }
    let f = tls_fx("ftps-curl-explicit", &["--tls-require", "all"], fill_big);
    let base = format!("ftp://{}", f.server().addr);
    curl_both_ways(&f, &base, &["--ssl-reqd"], "curl-explicit");
}

#[test]
fn curl_implicit_ftps_download_and_upload() {
    if !tools(&["openssl", "curl"]) {
        return;
    }
    let f = tls_fx("ftps-curl-implicit", &["--tls-require", "all", "--implicit-tls-listen", "127.0.0.1:0"], fill_big);
    let base = format!("ftps://{}", f.implicit_addr());
    curl_both_ways(&f, &base, &[], "curl-implicit");
}

/// A small nested tree under `tree/`.
fn fill_small_tree(root: &Path) {
    fill_big(root);
    put(root, "tree/a.txt", &pattern(41, 100));
    put(root, "tree/empty.txt", b"");
    put(root, "tree/sub/b.bin", &pattern(42, 65_537));
    put(root, "tree/sub/deeper/c.bin", &pattern(43, MIB as usize + 3));
    put(root, "tree/sub/deeper/d.txt", &pattern(44, 4097));
}

#[test]
fn lftp_ftps_mirror_and_put() {
    if !tools(&["openssl", "lftp"]) {
        return;
    }
    let f = tls_fx("ftps-lftp", &["--tls-require", "all"], fill_small_tree);
    let dst = temp_dir("ftps-lftp-dst");
    let src = dst.join("put.bin");
    fs::write(&src, pattern(45, 2 * MIB as usize + 1)).expect("put source");
    let mirrored = dst.join("mirror");
    lftp(
        f.server().addr,
        &format!("mirror --no-perms /tree \"{}\"; put \"{}\" -o /in/put.bin", mirrored.display(), src.display()),
    );
    assert_eq!(tree_digest(&mirrored), tree_digest(&f.root().join("tree")), "lftp mirror over FTPS");
    assert_eq!(file_digest(&f.root().join("in/put.bin")), file_digest(&src), "lftp put over FTPS");
}

#[test]
fn ftplib_ftp_tls_prot_p_retrbinary_and_storbinary() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-ftplib", &["--tls-require", "all"], fill_big);
    let dst = temp_dir("ftps-ftplib-src");
    let src = dst.join("up.bin");
    fs::write(&src, pattern(46, BIG + 3)).expect("source");
    let want = f.root().join("big.bin");
    let ran = ftplib(
        f.server().addr,
        "plain",
        "any",
        "both",
        &["/big.bin", &want.to_string_lossy(), &src.to_string_lossy(), "/in/up.bin"],
    );
    assert!(ran.stdout.contains("stor 226"), "storbinary: {}", ran.stdout);
    assert_eq!(file_digest(&f.root().join("in/up.bin")), file_digest(&src), "storbinary over PROT P");
}

// ---------------------------------------------------------------------------
// --tls-session-reuse
// ---------------------------------------------------------------------------

#[test]
fn session_reuse_required_refuses_non_resuming_ftplib_with_522() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-refuse", &["--tls-session-reuse", "required"], fill_big);
    let want = f.root().join("big.bin");
    let ran = ftplib(f.server().addr, "plain", "any", "loop", &["1", "/big.bin", &want.to_string_lossy()]);
    let out = &ran.stdout;
    let line = out.lines().find(|l| l.starts_with("transfer 0 ")).unwrap_or_else(|| panic!("no result:\n{out}"));
    assert!(!line.ends_with(" ok"), "a data connection that did not resume was served under required:\n{out}");
    assert!(line.contains("522"), "the refusal is not a 522 reply on the control connection: {line:?}");
    assert!(out.contains("noop 200"), "the session did not go on after the refusal:\n{out}");
    assert!(
        f.server().wait_log("refused data connection", SHORT),
        "the server log does not say why; log:\n{}",
        f.server().log()
    );
}

#[test]
fn session_reuse_preferred_serves_non_resuming_ftplib_and_logs_it() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-preferred", &[], fill_big);
    ftplib_loop_ok(&f, "plain", "any", 1);
    assert!(
        f.server().wait_log("did not resume", SHORT),
        "the log does not mention the non-resumed data connection:\n{}",
        f.server().log()
    );
}

#[test]
fn session_reuse_required_serves_curl_lftp_and_resuming_ftplib() {
    if !tools(&["openssl", "curl", "lftp", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-ok", &["--tls-session-reuse", "required"], fill_big);
    let base = format!("ftp://{}", f.server().addr);
    curl_both_ways(&f, &base, &["--ssl-reqd"], "curl-reuse");
    let dst = temp_dir("ftps-reuse-lftp");
    let got = dst.join("got.bin");
    lftp(f.server().addr, &format!("get /big.bin -o \"{}\"; put \"{}\" -o /in/lftp.bin", got.display(), got.display()));
    assert_eq!(file_digest(&got), file_digest(&f.root().join("big.bin")), "lftp get under required");
    assert_eq!(file_digest(&f.root().join("in/lftp.bin")), file_digest(&got), "lftp put under required");
    ftplib_loop_ok(&f, "reuse", "any", 2);
    assert!(!f.server().log().contains("refused data connection"), "log:\n{}", f.server().log());
}

#[test]
fn session_reuse_required_twenty_transfers_in_one_session() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-20", &["--tls-session-reuse", "required"], |r| put(r, "big.bin", &pattern(5, 100_003)));
    let out = ftplib_loop_ok(&f, "reuse", "any", 20);
    assert!(out.contains("control TLSv1.3"), "expected TLS 1.3 by default:\n{out}");
}

#[test]
fn session_reuse_required_twenty_transfers_with_min_version_1_3() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let args = ["--tls-session-reuse", "required", "--tls-min-version", "1.3"];
    let f = tls_fx("ftps-reuse-20-13", &args, |r| put(r, "big.bin", &pattern(6, 100_003)));
    let out = ftplib_loop_ok(&f, "reuse", "any", 20);
    assert!(out.contains("control TLSv1.3"), "{out}");
}

#[test]
fn session_reuse_required_twenty_transfers_with_a_tls12_client() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f =
        tls_fx("ftps-reuse-20-12", &["--tls-session-reuse", "required"], |r| put(r, "big.bin", &pattern(7, 100_003)));
    let out = ftplib_loop_ok(&f, "reuse", "1.2", 20);
    assert!(out.contains("control TLSv1.2"), "the client was to be capped at TLS 1.2:\n{out}");
}

/// Issue 11: under PROT P the file is read in user space; a cold range is
/// read in by a disk helper first (preadv2 RWF_NOWAIT finds it missing).
#[test]
fn cold_file_over_prot_p_is_exact_and_read_in_by_a_disk_helper() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-cold", &["--metrics-listen", "127.0.0.1:0"], fill_big);
    let want = fs::read(f.root().join("big.bin")).expect("big.bin");
    crate::disk::make_cold(&f.root().join("big.bin"));
    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    c.protect();
    let got = c.retr("/big.bin").expect("RETR");
    assert!(got == want, "{} bytes differ", got.len());
    assert!(crate::disk::counter(f.server(), "mirrorftpd_disk_jobs_total") >= 1, "no disk helper job");
}

#[test]
fn session_reuse_required_rustls_client_resumes_every_data_connection() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-rustls", &["--tls-session-reuse", "required"], fill_big);
    let want = fs::read(f.root().join("big.bin")).expect("big.bin");
    for versions in [Versions::Only13, Versions::Only12] {
        let mut c = TlsCtl::explicit(f.server().addr, client_config(versions, &["ftp"]));
        c.login(USER, PASS);
        c.protect();
        for i in 0..5 {
            let got = c.retr("/big.bin").unwrap_or_else(|e| panic!("{versions:?} RETR #{i}: {e:?}"));
            assert!(got == want, "{versions:?} RETR #{i}: {} bytes differ", got.len());
        }
        let up = pattern(9, 300_001);
        c.stor("/in/rustls.bin", &up).unwrap_or_else(|e| panic!("{versions:?} STOR: {e:?}"));
        assert!(fs::read(f.root().join("in/rustls.bin")).expect("uploaded") == up, "{versions:?} STOR content");
        assert!(
            c.data_kinds.iter().all(|k| *k == Some(HandshakeKind::Resumed)),
            "{versions:?}: every data connection must resume: {:?}",
            c.data_kinds
        );
    }
}

#[test]
fn session_reuse_required_refuses_a_data_connection_resuming_another_session() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-reuse-other", &["--tls-session-reuse", "required"], |r| put(r, "f.txt", b"mine\n"));
    for versions in [Versions::Only13, Versions::Only12] {
        // A's client cache holds tickets issued to A's control session.
        let mut a = TlsCtl::explicit(f.server().addr, client_config(versions, &[]));
        a.login(USER, PASS);
        a.protect();
        assert_eq!(a.retr("/f.txt").expect("A's own resumed data connection"), b"mine\n");
        let mut b = TlsCtl::explicit(f.server().addr, client_config(versions, &[]));
        b.login(USER, PASS);
        b.protect();
        assert_eq!(b.retr("/f.txt").expect("B's own resumed data connection"), b"mine\n");
        // B's next data connection resumes A's session instead of its own.
        b.data_cfg = a.cfg.clone();
        let r = b.retr("/f.txt");
        assert_eq!(
            b.data_kinds.last(),
            Some(&Some(HandshakeKind::Resumed)),
            "{versions:?}: the data handshake with A's session did not resume at all (test set-up)"
        );
        assert_eq!(
            r.as_ref().map_err(|e| e.0),
            Err(522),
            "{versions:?}: a data connection resuming another control session's TLS session: {r:?}"
        );
        b.expect("NOOP", 200);
        b.data_cfg = b.cfg.clone();
        assert_eq!(b.retr("/f.txt").expect("B resuming its own session again"), b"mine\n");
    }
    assert!(
        f.server().wait_log("resumed another session's TLS session", SHORT),
        "the log does not say why:\n{}",
        f.server().log()
    );
}

// ---------------------------------------------------------------------------
// STARTTLS injection and plaintext after 234
// ---------------------------------------------------------------------------

#[test]
fn plaintext_pipelined_after_auth_tls_is_discarded_cve_2011_0411() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-inject", &[], |_| {});
    let mut tcp = tcp_connect(f.server().addr);
    assert_eq!(plain_reply(&mut tcp).expect("greeting").0, 220);
    // One write: the USER arrives in the same segment as AUTH TLS.
    tcp.write_all(b"AUTH TLS\r\nUSER anonymous\r\n").expect("sending");
    let r = plain_reply(&mut tcp).expect("reply to AUTH TLS");
    assert_eq!(r.0, 234, "AUTH TLS: {r:?}");
    let mut c = TlsCtl::upgrade(tcp, default_config(), false).expect("handshake after 234");
    let pass = c.cmd("PASS x");
    assert_ne!(pass.0, 230, "the plaintext USER sent with AUTH TLS was executed: PASS logged in ({pass:?})");
    assert_eq!(pass.0, 503, "PASS over TLS with no USER over TLS: {pass:?}");
    // The session is intact: a login over TLS works.
    c.expect("USER anonymous", 331);
    c.expect("PASS x", 230);
}

#[test]
fn plaintext_command_instead_of_client_hello_closes_the_connection() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-plain-after-234", &[], |_| {});
    let mut tcp = auth_tls(f.server().addr);
    tcp.set_read_timeout(Some(SHORT)).expect("timeout");
    tcp.write_all(b"USER anonymous\r\n").expect("sending a plaintext command");
    let mut got = Vec::new();
    let started = Instant::now();
    let end = loop {
        let mut buf = [0u8; 4096];
        match tcp.read(&mut buf) {
            Ok(0) => break "eof".to_string(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "reset".to_string(),
            Err(e) => break format!("error: {e}"),
        }
    };
    assert!(
        end == "eof" || end == "reset",
        "the connection stayed open ({end} after {:?}); received {got:02x?}",
        started.elapsed()
    );
    let types = tls_records(&got).unwrap_or_else(|e| panic!("plaintext after 234: {e}"));
    assert!(types.iter().all(|&t| t == 21), "only a TLS alert may precede the close, got record types {types:?}");
}

#[test]
fn nothing_is_written_in_plaintext_after_auth_tls() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-no-plain", &["--implicit-tls-listen", "127.0.0.1:0"], |r| put(r, "f.txt", b"hello\n"));
    let explicit = TlsCtl::explicit(f.server().addr, default_config());
    let implicit = TlsCtl::implicit(f.implicit_addr(), default_config());
    for (what, mut c) in [("explicit", explicit), ("implicit", implicit)] {
        c.cmd("FEAT");
        c.cmd("XYZZY");
        c.cmd("PASS before-user");
        c.login(USER, PASS);
        c.protect();
        assert_eq!(c.retr("/f.txt").expect("RETR"), b"hello\n");
        c.cmd("STAT");
        c.cmd("HELP");
        c.expect("AUTH TLS", 503);
        c.expect("QUIT", 221);
        // Up to the server's close.
        let mut rest = Vec::new();
        let _ = c.ctl.read_to_end(&mut rest);
        let raw = c.seen();
        assert_eq!(raw.first(), Some(&22), "{what}: the first byte after 234 is not a handshake record");
        let types = tls_records(raw).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(types.len() >= 3, "{what}: records {types:?}");
        assert!(types.contains(&23), "{what}: no application-data record");
    }
}

// ---------------------------------------------------------------------------
// ALPN (ALPACA), FEAT, PBSZ/PROT/CCC
// ---------------------------------------------------------------------------

#[test]
fn alpn_must_include_ftp_when_offered() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-alpn", &[], |_| {});
    let addr = f.server().addr;
    let refused = TlsCtl::try_explicit(addr, client_config(Versions::Both, &["http/1.1"]));
    assert!(refused.is_err(), "a client offering only ALPN http/1.1 completed the handshake");
    for offer in [&[][..], &["ftp"][..], &["http/1.1", "ftp"][..]] {
        let mut c = TlsCtl::try_explicit(addr, client_config(Versions::Both, offer))
            .unwrap_or_else(|e| panic!("ALPN {offer:?}: handshake failed: {e}"));
        let want: Option<&[u8]> = if offer.is_empty() { None } else { Some(b"ftp") };
        assert_eq!(c.conn().alpn_protocol(), want, "negotiated ALPN for offer {offer:?}");
        assert!(c.peer_cert() == cert_der(&f.cert), "the served certificate is not --tls-cert");
        c.expect("NOOP", 200);
    }
}

#[test]
fn feat_lists_tls_only_with_a_certificate() {
    if !tools(&["openssl"]) {
        return;
    }
    let lines = |text: &str| text.lines().skip(1).map(|l| l.trim().to_string()).collect::<Vec<_>>();
    let f = tls_fx("ftps-feat", &[], |_| {});
    let mut ftp = Ftp::connect(f.server().addr);
    let (code, text) = ftp.cmd("FEAT");
    assert_eq!(code, 211, "FEAT: {text:?}");
    let feats = lines(&text);
    for want in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feats.iter().any(|l| l == want), "FEAT with a certificate lacks {want:?}: {feats:?}");
    }

    let plain_root = temp_dir("ftps-feat-plain");
    let plain = Server::start(&plain_root, &[]);
    let mut ftp = Ftp::connect(plain.addr);
    let (code, text) = ftp.cmd("FEAT");
    assert_eq!(code, 211, "FEAT: {text:?}");
    let feats = lines(&text);
    for word in ["AUTH", "PBSZ", "PROT"] {
        assert!(!feats.iter().any(|l| l.starts_with(word)), "FEAT without a certificate lists {word}: {feats:?}");
    }
    let auth = ftp.cmd("AUTH TLS");
    assert_eq!(auth.0, 502, "AUTH TLS without a certificate: {auth:?}");
    ftp.login_anon();
}

#[test]
fn pbsz_prot_and_ccc_replies() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-prot", &[], |r| put(r, "f.txt", b"clear or private\n"));
    let mut ftp = Ftp::connect(f.server().addr);
    for cmd in ["PBSZ 0", "PROT P", "PROT C"] {
        let r = ftp.cmd(cmd);
        assert_eq!(r.0, 503, "{cmd} before AUTH TLS: {r:?}");
    }

    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 200);
    assert_eq!(c.retr("/f.txt").expect("RETR under PROT C"), b"clear or private\n");
    c.expect("PROT P", 200);
    c.prot_p = true;
    assert_eq!(c.retr("/f.txt").expect("RETR under PROT P"), b"clear or private\n");
    for level in ["S", "E"] {
        c.expect(&format!("PROT {level}"), 536);
    }
    let ccc = c.cmd("CCC");
    assert_eq!(ccc.0, 534, "CCC must be refused: {ccc:?}");
    // Still TLS, still PROT P.
    c.expect("NOOP", 200);
    assert_eq!(c.retr("/f.txt").expect("RETR after CCC"), b"clear or private\n");
}

#[test]
fn auth_tls_after_a_plain_login_ends_that_login() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-auth-relogin", &[], |r| put(r, "f.txt", b"after a new login\n"));
    let mut tcp = tcp_connect(f.server().addr);
    assert_eq!(plain_reply(&mut tcp).expect("greeting").0, 220);
    for (line, code) in [(format!("USER {USER}"), 331), (format!("PASS {PASS}"), 230), ("CWD /".to_string(), 250)] {
        tcp.write_all(format!("{line}\r\n").as_bytes()).expect("sending");
        let r = plain_reply(&mut tcp).expect("reply");
        assert_eq!(r.0, code, "plain {line}: {r:?}");
    }
    tcp.write_all(b"AUTH TLS\r\n").expect("sending AUTH TLS");
    let r = plain_reply(&mut tcp).expect("reply to AUTH TLS");
    assert_eq!(r.0, 234, "AUTH TLS after a plain login: {r:?}");
    let mut c = TlsCtl::upgrade(tcp, default_config(), false).expect("handshake");
    // RFC 2228: an accepted AUTH requires the user to log in again.
    for cmd in ["PWD", "RETR f.txt", "TYPE I"] {
        let r = c.cmd(cmd);
        assert_eq!(r.0, 530, "{cmd} over TLS before logging in again: {r:?}");
    }
    c.expect("PASS x", 503);
    c.login(USER, PASS);
    c.expect("PWD", 257);
    assert_eq!(c.retr("/f.txt").expect("RETR after the new login"), b"after a new login\n");
}

/// Sends close_notify on the control connection and reads to the end: Ok
/// when the server answered with its own close_notify, UnexpectedEof when it
/// only closed the TCP connection.
fn close_notify_then_read(c: &mut TlsCtl) -> io::Result<Vec<u8>> {
    let s = c.ctl.get_mut();
    s.conn.send_close_notify();
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    let mut rest = Vec::new();
    c.ctl.read_to_end(&mut rest).map(|_| rest)
}

#[test]
fn tls_control_connection_ends_with_close_notify_both_ways() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-close-notify", &["--implicit-tls-listen", "127.0.0.1:0"], |_| {});
    let explicit = || TlsCtl::explicit(f.server().addr, default_config());
    let implicit = || TlsCtl::implicit(f.implicit_addr(), default_config());
    for (what, open) in [("explicit", &explicit as &dyn Fn() -> TlsCtl), ("implicit", &implicit)] {
        // The client ends the session with close_notify.
        let mut c = open();
        c.login(USER, PASS);
        let end = close_notify_then_read(&mut c);
        assert!(end.is_ok(), "{what}: the server closed without answering close_notify: {end:?}");
        assert_eq!(end.ok().map(|b| b.len()), Some(0), "{what}: nothing but close_notify after ours");

        // Before a login too.
        let mut c = open();
        let end = close_notify_then_read(&mut c);
        assert!(end.is_ok(), "{what}: close_notify before login: {end:?}");

        // QUIT: 221, then the server's close_notify, then the TCP close.
        let mut c = open();
        c.login(USER, PASS);
        c.expect("QUIT", 221);
        let mut rest = Vec::new();
        let end = c.ctl.read_to_end(&mut rest);
        assert!(end.is_ok(), "{what}: after 221 the server closed without close_notify: {end:?}");
    }
}

// ---------------------------------------------------------------------------
// --tls-require, --tls-exempt-anonymous, --tls-min-version
// ---------------------------------------------------------------------------

/// Logs in over plain FTP; returns the USER reply (and PASS's when 331).
fn plain_login(addr: SocketAddr, user: &str, pass: &str) -> ((u16, String), Option<(u16, String)>, Ftp) {
    let mut ftp = Ftp::connect(addr);
    let u = ftp.cmd(&format!("USER {user}"));
    let p = (u.0 == 331).then(|| ftp.cmd(&format!("PASS {pass}")));
    (u, p, ftp)
}

#[test]
fn tls_require_login_refuses_plain_user() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-req-login", &["--tls-require", "login"], |r| put(r, "f.txt", b"x\n"));
    for user in [USER, "anonymous"] {
        let (u, p, _) = plain_login(f.server().addr, user, PASS);
        assert_eq!(u.0, 530, "plain USER {user} under --tls-require login: {u:?} then {p:?}");
    }
    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    // Data may stay clear under "login".
    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 200);
    assert_eq!(c.retr("/f.txt").expect("clear RETR under --tls-require login"), b"x\n");

    let f = tls_fx("ftps-req-login-anon", &["--tls-require", "login", "--tls-exempt-anonymous"], |_| {});
    let (u, p, _) = plain_login(f.server().addr, "anonymous", "a@b");
    assert_eq!((u.0, p.map(|p| p.0)), (331, Some(230)), "anonymous over plain FTP with --tls-exempt-anonymous");
    let (u, _, _) = plain_login(f.server().addr, USER, PASS);
    assert_eq!(u.0, 530, "USER {USER} over plain FTP with --tls-exempt-anonymous: {u:?}");
}

#[test]
fn tls_require_data_refuses_clear_transfers_with_521() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-req-data", &["--tls-require", "data"], |r| put(r, "f.txt", b"private\n"));
    // Plain login is fine under "data"; a clear transfer is not.
    let (u, p, mut ftp) = plain_login(f.server().addr, USER, PASS);
    assert_eq!((u.0, p.map(|p| p.0)), (331, Some(230)), "plain login under --tls-require data");
    let r = ftp.retr_bytes("/f.txt");
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(521), "plain RETR under --tls-require data: {r:?}");
    let r = ftp.retr_bytes("/f.txt");
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(521), "a second plain RETR: {r:?}");
    let n = ftp.cmd("NOOP");
    assert_eq!(n.0, 200, "the session goes on: {n:?}");

    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    // TLS control, no PROT P yet.
    let r = c.retr("/f.txt");
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(521), "RETR before PROT P: {r:?}");
    let r = c.stor("/up.bin", b"data");
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(521), "STOR before PROT P: {r:?}");
    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 534);
    c.protect();
    assert_eq!(c.retr("/f.txt").expect("RETR under PROT P"), b"private\n");
    c.stor("/up.bin", b"data").expect("STOR under PROT P");
    assert_eq!(fs::read(f.root().join("up.bin")).expect("up.bin"), b"data");
}

#[test]
fn tls_require_all_needs_tls_login_and_prot_p() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-req-all", &["--tls-require", "all"], |r| put(r, "f.txt", b"all\n"));
    let (u, p, _) = plain_login(f.server().addr, USER, PASS);
    assert_eq!(u.0, 530, "plain USER under --tls-require all: {u:?} then {p:?}");
    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    let r = c.retr("/f.txt");
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(521), "RETR before PROT P: {r:?}");
    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 534);
    c.protect();
    assert_eq!(c.retr("/f.txt").expect("RETR under PROT P"), b"all\n");
}

#[test]
fn tls_min_version_1_3_refuses_tls12_clients() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-min13", &["--tls-min-version", "1.3"], |r| put(r, "f.txt", b"13\n"));
    let r = TlsCtl::try_explicit(f.server().addr, client_config(Versions::Only12, &[]));
    assert!(r.is_err(), "a TLS 1.2-only client completed the handshake under --tls-min-version 1.3");
    let mut c = TlsCtl::explicit(f.server().addr, client_config(Versions::Only13, &[]));
    assert_eq!(c.conn().protocol_version(), Some(ProtocolVersion::TLSv1_3));
    c.login(USER, PASS);
    c.protect();
    assert_eq!(c.retr("/f.txt").expect("RETR over TLS 1.3"), b"13\n");

    // The default floor is 1.2: the same client is served.
    let f = tls_fx("ftps-min12", &[], |_| {});
    let mut c = TlsCtl::explicit(f.server().addr, client_config(Versions::Only12, &[]));
    assert_eq!(c.conn().protocol_version(), Some(ProtocolVersion::TLSv1_2));
    c.expect("NOOP", 200);
}

// ---------------------------------------------------------------------------
// SIGHUP certificate reload
// ---------------------------------------------------------------------------

/// Starts a server with a certificate, logs in a TLS session and transfers,
/// replaces the certificate on disk and sends SIGHUP; the old session must
/// answer and transfer, a new one must see the new certificate.
fn reload_keeps_sessions(name: &str, args: &[&str]) {
    let root = temp_dir(name);
    put(&root, "f.bin", &pattern(11, 200_001));
    let want = fs::read(root.join("f.bin")).expect("f.bin");
    let pki = temp_dir(&format!("{name}-pki"));
    let (cert, key) = make_cert(&pki, "server");
    let (c, k) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let mut all = vec!["--tls-cert", c.as_str(), "--tls-key", k.as_str()];
    all.extend_from_slice(args);
    let server = Server::start(&root, &all);
    let first = cert_der(&cert);

    let mut old = TlsCtl::explicit(server.addr, default_config());
    assert!(old.peer_cert() == first, "the server does not serve --tls-cert");
    old.login("anonymous", "a@b");
    old.protect();
    assert!(old.retr("/f.bin").expect("RETR before the reload") == want);

    let (new_cert, new_key) = make_cert(&pki, "next");
    fs::rename(&new_cert, &cert).expect("replacing the certificate");
    fs::rename(&new_key, &key).expect("replacing the key");
    let second = cert_der(&cert);
    assert!(first != second);
    run_ok(Command::new("kill").args(["-HUP", &server.pid().to_string()]), SHORT);
    assert!(server.wait_log("TLS certificate reloaded", SHORT), "no reload in the log:\n{}", server.log());

    old.expect("NOOP", 200);
    let again = old.retr("/f.bin");
    assert!(
        again.as_ref().is_ok_and(|b| *b == want),
        "RETR in the session opened before the reload: {:?}",
        again.map(|b| b.len())
    );
    old.expect("NOOP", 200);

    let mut fresh = TlsCtl::explicit(server.addr, default_config());
    assert!(fresh.peer_cert() == second, "a new connection still gets the old certificate after SIGHUP");
    fresh.login("anonymous", "a@b");
    fresh.protect();
    assert!(fresh.retr("/f.bin").expect("RETR in a new session") == want);
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_sessions() {
    if !tools(&["openssl"]) {
        return;
    }
    reload_keeps_sessions("ftps-sighup", &[]);
}

#[test]
fn sighup_reload_keeps_transfers_working_under_session_reuse_required() {
    if !tools(&["openssl"]) {
        return;
    }
    reload_keeps_sessions("ftps-sighup-required", &["--tls-session-reuse", "required"]);
}

// ---------------------------------------------------------------------------
// Interrupted upload under TLS
// ---------------------------------------------------------------------------

#[test]
fn tls_upload_killed_mid_transfer_keeps_the_received_bytes() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-up-kill", &[], |_| {});
    let src = pattern(13, 8 * MIB as usize);
    let path = f.root().join("big.bin");
    {
        let mut c = TlsCtl::explicit(f.server().addr, default_config());
        c.login(USER, PASS);
        c.protect();
        let mut data = match c.open_data(None, "STOR big.bin").expect("STOR") {
            DataConn::Tls(s) => s,
            DataConn::Plain(_) => unreachable!("PROT P"),
            DataConn::Broken(why) => panic!("{why}"),
        };
        data.write_all(&src[..3 * MIB as usize]).expect("sending 3 MiB over TLS");
        data.flush().expect("flush");
        let deadline = Instant::now() + SHORT;
        while fs::metadata(&path).map_or(0, |m| m.len()) < MIB {
            assert!(Instant::now() < deadline, "the upload never reached 1 MiB on disk");
            thread::sleep(Duration::from_millis(10));
        }
        // Abortive close of both connections: the server sees resets.
        SockRef::from(&data.sock.tcp).set_linger(Some(Duration::ZERO)).expect("linger");
        SockRef::from(&c.ctl.get_ref().sock.tcp).set_linger(Some(Duration::ZERO)).expect("linger");
    }
    assert!(f.server().wait_log("STOR /big.bin bytes=", SHORT), "the upload never ended:\n{}", f.server().log());
    let kept = fs::read(&path).expect("the partial file");
    assert!(kept.len() as u64 >= MIB, "only {} bytes kept", kept.len());
    assert!(kept[..] == src[..kept.len()], "the kept {} bytes are not a prefix of what was sent", kept.len());

    let mut c = TlsCtl::explicit(f.server().addr, default_config());
    c.login(USER, PASS);
    c.protect();
    let n = kept.len();
    assert_eq!(c.cmd("SIZE big.bin"), (213, n.to_string()));
    c.stor_at(Some(n as u64), "big.bin", &src[n..]).expect("REST + STOR of the rest over TLS");
    let got = fs::read(&path).expect("big.bin");
    assert!(got == src, "resumed file differs: {} bytes, expected {}", got.len(), src.len());
}

/// A client that sends an upload and closes the data socket at once, never
/// reading it (curl issue #6149, "FTPS upload data loss with TLS 1.3"),
/// loses the end of the upload if the server sent TLS 1.3 session tickets on
/// that connection: the unread tickets make the client's kernel answer the
/// close with a reset, which drops what it had not sent yet. A data
/// connection needs no tickets of its own (it resumes the control
/// session's), so the upload must arrive whole.
#[test]
fn tls13_upload_closed_without_reading_the_data_connection_arrives_whole() {
    if !tools(&["openssl"]) {
        return;
    }
    let f = tls_fx("ftps-up-noread", &[], |_| {});
    let src = pattern(17, 4 * MIB as usize + 5);
    let mut c = TlsCtl::explicit(f.server().addr, client_config(Versions::Only13, &[]));
    c.login(USER, PASS);
    c.protect();
    let mut data = c.open_data(None, "STOR whole.bin").expect("STOR");
    data.send_and_shutdown(&src).expect("sending the file and close_notify");
    let unread = match &data {
        DataConn::Tls(s) => {
            s.sock.tcp.set_nonblocking(true).expect("nonblocking");
            let mut buf = vec![0u8; 64 << 10];
            s.sock.tcp.peek(&mut buf).unwrap_or(0)
        }
        _ => unreachable!("PROT P"),
    };
    drop(data);
    let done = c.reply().expect("final reply to STOR");
    let kept = fs::metadata(f.root().join("whole.bin")).map_or(0, |m| m.len());
    assert_eq!(
        done.0,
        226,
        "STOR from a client that closed its data socket without reading it: {done:?}; {kept} of {} bytes \
         kept; the server had sent {unread} bytes the client never read on that data connection",
        src.len()
    );
    assert!(fs::read(f.root().join("whole.bin")).expect("whole.bin") == src, "the uploaded file differs");
}

// ---------------------------------------------------------------------------
// CCC with --allow-ccc
// ---------------------------------------------------------------------------

const FTPLIB_CCC: &str = r#"
import ftplib, ssl, sys, io
host, port, user, pw, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ftp = ftplib.FTP_TLS(context=ctx, timeout=20)
ftp.connect(host, port)
ftp.login(user, pw)
ftp.prot_p()
print("ccc", ftp.ccc()[:3])
print("noop", ftp.voidcmd("NOOP")[:3])
buf = io.BytesIO()
ftp.retrbinary("RETR big.bin", buf.write)
print("retr", buf.getvalue() == open(want, "rb").read())
print("quit", ftp.quit()[:3])
"#;

fn ftplib_ccc(f: &TlsFx) -> Ran {
    let addr = f.server().addr;
    let want = f.root().join("big.bin");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", FTPLIB_CCC, &addr.ip().to_string(), &addr.port().to_string(), USER, PASS]);
    cmd.arg(&want);
    run(&mut cmd, TOOL_TIMEOUT)
}

#[test]
fn ccc_with_allow_ccc_returns_the_control_connection_to_plaintext() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-ccc", &["--allow-ccc"], fill_big);
    let ran = ftplib_ccc(&f);
    let out = &ran.stdout;
    assert!(out.contains("ccc 200"), "CCC must be accepted with --allow-ccc:\n{out}\n{}", ran.stderr);
    assert!(
        f.server().wait_log("control connection now in the clear", Duration::from_secs(5)),
        "the server switched the control connection back to plaintext:\n{}",
        f.server().log()
    );
    assert!(out.contains("noop 200"), "plaintext commands are read after the client's close_notify:\n{out}");
    assert!(out.contains("retr True"), "data connections keep PROT P after CCC:\n{out}");
    assert!(out.contains("quit 221"), "{out}");
}

#[test]
fn ccc_is_refused_under_tls_require_login_even_with_allow_ccc() {
    if !tools(&["openssl", "python3"]) {
        return;
    }
    let f = tls_fx("ftps-ccc-req", &["--allow-ccc", "--tls-require", "login"], fill_big);
    let ran = ftplib_ccc(&f);
    assert!(
        ran.stdout.is_empty() || !ran.stdout.contains("ccc 200"),
        "CCC accepted under --tls-require login:\n{}",
        ran.stdout
    );
    assert!(ran.stderr.contains("534"), "CCC refused with 534:\n{}", ran.stderr);
}
