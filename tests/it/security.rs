//! Security: the root is a jail (with the openat2 resolver and with the
//! fallback walk, for every command that reads or writes; dot files and
//! link targets are in hidden.rs), FTP bounce and passive port theft protection, glob and
//! line-length bombs, connection limits.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::protocol::{
    Ctl, SHORT, accept_within, crlf_lines, data_connect, drain, epsv_port, expect, fx, login, ls_names, put, raw_cmd,
    transfer_raw,
};
use crate::util::{Ftp, Server, TempDir, temp_dir};

// ---------------------------------------------------------------------------
// The jail
// ---------------------------------------------------------------------------

/// A root inside `base`, with a secret file next to it (outside the root)
/// and symlinks that point out of the root and within it.
struct JailTree {
    /// Holds the tree; removed on drop.
    _base: TempDir,
    root: PathBuf,
    /// Content of the outside file; must never appear in any reply or data.
    secret: Vec<u8>,
}

/// The links of the jail tree that lead out of the root, as (target, name in the root). With
/// `sandboxed`, the ones that would reach the system's own files (`/`, `/etc`) lead into
/// `base/outside` instead: for the tests that write, so that a jail bug cannot damage the
/// machine (a real /etc/passwd is never a write target).
fn out_links(base: &Path, sandboxed: bool) -> Vec<(PathBuf, &'static str)> {
    vec![
        (if sandboxed { PathBuf::from("../outside") } else { PathBuf::from("../../..") }, "up"),
        (PathBuf::from("../secret.txt"), "uprel"),
        (if sandboxed { base.join("outside/etc") } else { PathBuf::from("/etc") }, "etc"),
        (base.join("secret.txt"), "abs"),
        (base.join("outdir"), "outdir"),
        (PathBuf::from("../outdir"), "sub/out"),
    ]
}

fn jail_tree(name: &str) -> JailTree {
    jail_tree_with(name, false)
}

fn jail_tree_with(name: &str, sandboxed: bool) -> JailTree {
    let base = temp_dir(name);
    let root = base.join("root");
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let secret = format!("TOP-SECRET-{nanos}-OUTSIDE-THE-ROOT\n").into_bytes();
    fs::write(base.join("secret.txt"), &secret).expect("write secret");
    fs::create_dir(base.join("outdir")).expect("mkdir outdir");
    fs::write(base.join("outdir/secret.txt"), &secret).expect("write secret");

    put(&root, "inside.txt", b"inside\n");
    put(&root, "sub/deep.txt", b"deep\n");
    put(&root, "%2e%2e/lit.txt", b"literal percent name\n");
    let link =
        |target: &Path, name: &str| symlink(target, root.join(name)).unwrap_or_else(|e| panic!("symlink {name}: {e}"));
    // Out of the root.
    if sandboxed {
        fs::create_dir_all(base.join("outside/etc")).expect("mkdir outside/etc");
        fs::create_dir_all(base.join("outside/tmp")).expect("mkdir outside/tmp");
        fs::write(base.join("outside/etc/passwd"), b"root:x:0:0:sandboxed stand-in:/root:/bin/sh\n").expect("passwd");
        fs::write(base.join("outside/secret.txt"), &secret).expect("write secret");
    }
    for (target, name) in out_links(&base, sandboxed) {
        link(&target, name);
    }
    // Within the root.
    link(Path::new("inside.txt"), "good");
    link(Path::new("sub"), "gooddir");
    link(Path::new("../inside.txt"), "sub/back");
    JailTree { _base: base, root, secret }
}

/// Paths that name something outside the root (or nothing), each of which
/// must be refused by every command.
fn escape_paths() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "../secret.txt",
        "../../secret.txt",
        "/../secret.txt",
        "../../etc/passwd",
        "../../../../../../../../../../etc/passwd",
        "/etc/passwd",
        "/etc",
        "//etc",
        "//etc/passwd",
        "..\\..\\etc\\passwd",
        "..\\..\\etc",
        "..\\secret.txt",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "%2E%2E/%2E%2E/etc/passwd",
        "up",
        "up/etc/passwd",
        "up/etc",
        "uprel",
        "etc",
        "etc/passwd",
        "abs",
        "outdir",
        "outdir/secret.txt",
        "sub/out",
        "sub/out/secret.txt",
        "sub/../../secret.txt",
        "gooddir/../../secret.txt",
        "gooddir/out/secret.txt",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(b"inside.txt\0../secret.txt".to_vec());
    v.push(b"\0".to_vec());
    v.push(b"a/".repeat(2500));
    let mut long = b"../".repeat(1600);
    long.extend_from_slice(b"etc/passwd");
    v.push(long);
    v.push(vec![b'x'; 5000]);
    v
}

/// Whether `bytes` holds any outside content.
fn leaks(t: &JailTree, bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(&t.secret) || has(b"TOP-SECRET-") || has(b"root:x:0:0") || has(b"root:*:0:0")
}

/// Runs every command on every escape path against a server over `t`.
fn check_jail(addr: SocketAddr, t: &JailTree) {
    let mut ftp = Ftp::connect(addr);
    ftp.login_anon();
    let mut failures = Vec::new();
    for path in escape_paths() {
        let shown = String::from_utf8_lossy(&path[..path.len().min(60)]).into_owned();
        for verb in ["CWD", "SIZE", "MDTM", "MLST", "STAT"] {
            let mut line = format!("{verb} ").into_bytes();
            line.extend_from_slice(&path);
            let r = raw_cmd(&mut ftp, &line);
            if leaks(t, r.1.as_bytes()) {
                failures.push(format!("{verb} {shown}: LEAKED outside content: {r:?}"));
            } else if r.0 != 550 && r.0 != 501 {
                failures.push(format!("{verb} {shown}: got {r:?}, expected 550 or 501"));
            }
            if verb == "CWD" && r.0 == 250 {
                // Get back to the root for the next case.
                expect(&mut ftp, "CWD /", 250);
            }
        }
        for verb in ["RETR", "LIST", "NLST", "MLSD"] {
            let mut line = format!("{verb} ").into_bytes();
            line.extend_from_slice(&path);
            match transfer_raw(&mut ftp, &line) {
                Ok(data) if leaks(t, &data) => failures.push(format!(
                    "{verb} {shown}: LEAKED outside content: {:?}",
                    String::from_utf8_lossy(&data[..data.len().min(200)])
                )),
                Ok(data) => failures.push(format!(
                    "{verb} {shown}: succeeded with {} bytes {:?}, expected 550 or 501",
                    data.len(),
                    String::from_utf8_lossy(&data[..data.len().min(200)])
                )),
                Err(r) if leaks(t, r.1.as_bytes()) => failures.push(format!("{verb} {shown}: LEAKED in reply {r:?}")),
                Err(r) if r.0 != 550 && r.0 != 501 => {
                    failures.push(format!("{verb} {shown}: got {r:?}, expected 550 or 501"))
                }
                Err(_) => {}
            }
        }
        // Globs through an escaping directory.
        if !path.contains(&0) && path.len() < 200 {
            let mut line = b"NLST ".to_vec();
            line.extend_from_slice(&path);
            line.extend_from_slice(b"/*");
            match transfer_raw(&mut ftp, &line) {
                Ok(data) if !data.is_empty() => failures.push(format!(
                    "NLST {shown}/*: listed {:?}, expected 550 or 501",
                    String::from_utf8_lossy(&data[..data.len().min(200)])
                )),
                Ok(_) => failures.push(format!("NLST {shown}/*: succeeded (empty), expected 550 or 501")),
                Err(r) if r.0 != 550 && r.0 != 501 => {
                    failures.push(format!("NLST {shown}/*: got {r:?}, expected 550 or 501"))
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "jail failures:\n{}", failures.join("\n"));

    // `..` above the root is clamped to the root, never an escape.
    for up in ["..", "../..", "/..", "../../../.."] {
        expect(&mut ftp, &format!("CWD {up}"), 250);
        assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/\""), "CWD {up} stays at /");
        let mut names = ls_names(&ftp.list(&format!("LIST {up}")));
        names.sort();
        assert!(
            names.iter().any(|n| n == b"inside.txt") && !names.iter().any(|n| n == b"secret.txt" || n == b"root"),
            "LIST {up} lists the root itself: {:?}",
            names.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>()
        );
    }
    // The listing of the root shows links, never outside content.
    for cmd in ["LIST -la", "MLSD", "NLST"] {
        let data = ftp.list(cmd);
        assert!(!leaks(t, &data), "{cmd} of the root leaked: {:?}", String::from_utf8_lossy(&data));
    }
    // Symlinks that stay inside are followed.
    assert_eq!(ftp.retr_bytes("good").expect("RETR good"), b"inside\n");
    assert_eq!(ftp.retr_bytes("sub/back").expect("RETR sub/back"), b"inside\n");
    assert_eq!(ftp.retr_bytes("gooddir/deep.txt").expect("RETR gooddir/deep.txt"), b"deep\n");
    assert_eq!(ftp.cmd("SIZE good"), (213, "7".into()));
    expect(&mut ftp, "CWD gooddir", 250);
    assert_eq!(crlf_lines(&ftp.list("NLST")).iter().filter(|n| n.as_slice() == b"deep.txt").count(), 1);
    expect(&mut ftp, "CWD /", 250);
    // Percent signs are literal, never decoded.
    assert_eq!(ftp.retr_bytes("%2e%2e/lit.txt").expect("RETR %2e%2e/lit.txt"), b"literal percent name\n");
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn jail_refuses_every_escape_openat2() {
    let t = jail_tree("sec-jail");
    let server = Server::start(&t.root, &[]);
    check_jail(server.addr, &t);
}

#[test]
fn jail_refuses_every_escape_fallback_walk() {
    let t = jail_tree("sec-jail-walk");
    let server = Server::start_env(&t.root, &[], &[("MIRRORFTPD_NO_OPENAT2", "1")]);
    let environ = fs::read(format!("/proc/{}/environ", server.pid())).expect("read environ");
    assert!(
        environ.split(|&b| b == 0).any(|kv| kv == b"MIRRORFTPD_NO_OPENAT2=1"),
        "the server runs with the fallback resolver"
    );
    check_jail(server.addr, &t);
}

// ---------------------------------------------------------------------------
// FTP bounce (PORT/EPRT) and passive port theft
// ---------------------------------------------------------------------------

fn port_arg(ip: [u8; 4], port: u16) -> String {
    format!("{},{},{},{},{},{}", ip[0], ip[1], ip[2], ip[3], port >> 8, port & 255)
}

#[test]
fn port_and_eprt_to_foreign_address_or_low_port_refused() {
    let f = fx("sec-bounce", &[], |r| put(r, "f.txt", b"data"));
    let mut ftp = login(&f.server);
    let l = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let p = l.local_addr().expect("addr").port();
    for cmd in [
        format!("PORT {}", port_arg([127, 0, 0, 2], p)),
        format!("PORT {}", port_arg([10, 1, 2, 3], 5000)),
        format!("EPRT |1|127.0.0.2|{p}|"),
        format!("PORT {}", port_arg([127, 0, 0, 1], 21)),
        format!("PORT {}", port_arg([127, 0, 0, 1], 1023)),
        "EPRT |1|127.0.0.1|25|".to_string(),
    ] {
        expect(&mut ftp, &cmd, 504);
        // Nothing was set up: a transfer command has no data channel.
        expect(&mut ftp, "RETR f.txt", 425);
    }
    expect(&mut ftp, &format!("PORT {}", port_arg([127, 0, 0, 1], 1024)), 200);
    // No connection ever reached the foreign listener.
    l.set_nonblocking(true).expect("nonblocking");
    assert!(l.accept().is_err(), "the server connected to a refused PORT target");
}

#[test]
fn allow_foreign_port_permits_another_address() {
    let f = fx("sec-bounce-allowed", &["--allow-foreign-port"], |r| put(r, "f.txt", b"fxp data"));
    let mut ftp = login(&f.server);
    let l = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let p = l.local_addr().expect("addr").port();
    expect(&mut ftp, &format!("PORT {}", port_arg([127, 0, 0, 2], p)), 200);
    expect(&mut ftp, "RETR f.txt", 150);
    let mut data = accept_within(&l, SHORT);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, b"fxp data");
    expect(&mut ftp, &format!("EPRT |1|127.0.0.2|{p}|"), 200);
}

/// A TCP connection to `to` from source address 127.0.0.2.
fn connect_from_127_0_0_2(to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: SocketAddr = "127.0.0.2:0".parse().expect("addr");
    s.bind(&SockAddr::from(from)).expect("bind 127.0.0.2");
    s.connect_timeout(&SockAddr::from(to), SHORT).unwrap_or_else(|e| panic!("connect from 127.0.0.2 to {to}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s
}

/// What the thief got: must be nothing at all.
fn thief_gets_nothing(mut thief: TcpStream) {
    let mut buf = Vec::new();
    let _ = thief.read_to_end(&mut buf);
    assert!(buf.is_empty(), "a passive connection from another address got {} bytes", buf.len());
}

#[test]
fn passive_connection_from_another_address_is_refused() {
    let body = crate::protocol::pattern(9, 200_000);
    let f = fx("sec-pasv-theft", &[], |r| put(r, "f.bin", &body));
    let mut ftp = login(&f.server);
    let ip = f.server.addr.ip();

    // The thief connects first, then the client, then RETR.
    let port = epsv_port(&expect(&mut ftp, "EPSV", 229));
    let thief = connect_from_127_0_0_2(SocketAddr::new(ip, port));
    thread::sleep(Duration::from_millis(100));
    let mut data = data_connect(SocketAddr::new(ip, port));
    expect(&mut ftp, "RETR f.bin", 150);
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "the real client gets the file");
    thief_gets_nothing(thief);

    // RETR first; the thief connects before the client.
    let port = epsv_port(&expect(&mut ftp, "EPSV", 229));
    ftp.send("RETR f.bin");
    let thief = connect_from_127_0_0_2(SocketAddr::new(ip, port));
    thread::sleep(Duration::from_millis(100));
    let mut data = data_connect(SocketAddr::new(ip, port));
    let r = ftp.reply();
    assert_eq!(r.0, 150, "the transfer waits for the real client: {r:?}");
    let (got, _) = drain(&mut data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(got, body, "the real client gets the file");
    thief_gets_nothing(thief);
}

// ---------------------------------------------------------------------------
// Resource bombs and limits
// ---------------------------------------------------------------------------

#[test]
fn glob_bomb_returns_promptly() {
    let f = fx("sec-glob", &[], |r| {
        let d = r.join("bomb");
        fs::create_dir(&d).expect("mkdir");
        for i in 0..1000 {
            let name = format!("{}{i:04}{}", "a".repeat(120), "a".repeat(120));
            fs::write(d.join(name), b"").expect("create");
        }
        fs::write(d.join("aaaaaaaaaab"), b"").expect("create");
    });
    let mut ftp = login(&f.server);
    expect(&mut ftp, "CWD bomb", 250);
    let pat = "*a*a*a*a*a*a*a*a*a*a*b";
    for cmd in [format!("LIST {pat}"), format!("NLST {pat}")] {
        let t0 = Instant::now();
        let data = ftp.list(&cmd);
        let took = t0.elapsed();
        let names = if cmd.starts_with("LIST") { ls_names(&data) } else { crlf_lines(&data) };
        assert_eq!(names, [b"aaaaaaaaaab".to_vec()], "{cmd}");
        assert!(took < Duration::from_secs(2), "{cmd} took {took:?}");
    }
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn command_line_of_100_kib_gets_500_and_session_continues() {
    let f = fx("sec-longline", &[], |_| {});
    let mut ftp = login(&f.server);
    let mut line = b"RETR ".to_vec();
    line.extend(std::iter::repeat_n(b'A', 100 * 1024));
    line.extend_from_slice(b"\r\n");
    ftp.send_raw(&line);
    let r = ftp.reply();
    assert_eq!(r.0, 500, "a 100 KiB line: {r:?}");
    expect(&mut ftp, "NOOP", 200);
    // Twice more: the session is not closed by a few over-long lines.
    ftp.send_raw(&line);
    ftp.send_raw(&line);
    assert_eq!(ftp.reply().0, 500);
    assert_eq!(ftp.reply().0, 500);
    expect(&mut ftp, "PWD", 257);
}

/// Connects and expects the server to refuse with 421 and close.
fn refused_421(addr: SocketAddr, what: &str) {
    let mut c = Ctl::raw(addr);
    let r = c.reply().unwrap_or_else(|e| panic!("{what}: no reply: {e}"));
    assert_eq!(r.0, 421, "{what}: {r:?}");
    let after = c.reply();
    assert!(after.is_err(), "{what}: the server must close after 421, sent {after:?}");
}

/// Waits until a new connection is greeted with 220 (a slot was released).
fn admitted_within(addr: SocketAddr, within: Duration) -> Ctl {
    let deadline = Instant::now() + within;
    loop {
        let mut c = Ctl::raw(addr);
        match c.reply() {
            Ok((220, _)) => return c,
            Ok((421, _)) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            other => panic!("no slot freed within {within:?}: {other:?}"),
        }
    }
}

#[test]
fn max_per_ip_2_third_gets_421() {
    let f = fx("sec-perip", &["--max-per-ip", "2"], |_| {});
    let mut a = Ftp::connect(f.server.addr);
    let mut b = Ftp::connect(f.server.addr);
    refused_421(f.server.addr, "third connection with --max-per-ip 2");
    expect(&mut a, "NOOP", 200);
    expect(&mut b, "NOOP", 200);
    drop(a);
    let mut c = admitted_within(f.server.addr, SHORT);
    assert_eq!(c.cmd("NOOP").0, 200);
    refused_421(f.server.addr, "third connection again");
}

#[test]
fn max_clients_3_fourth_gets_421() {
    let f = fx("sec-maxclients", &["--max-clients", "3"], |_| {});
    let keep: Vec<Ftp> = (0..3).map(|_| Ftp::connect(f.server.addr)).collect();
    refused_421(f.server.addr, "fourth connection with --max-clients 3");
    drop(keep);
    let mut c = admitted_within(f.server.addr, SHORT);
    c.login();
}

// ---------------------------------------------------------------------------
// The jail under every command that writes (an account with all permissions)
// ---------------------------------------------------------------------------

/// Everything under `base` outside `root`: names, kinds, modes, times,
/// sizes, link targets and contents. Any write that escaped the root changes it.
fn outside_snapshot(base: &Path, root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for p in entries {
            if p == root {
                continue;
            }
            let m = fs::symlink_metadata(&p).expect("lstat");
            let extra = if m.file_type().is_symlink() {
                format!("-> {:?}", fs::read_link(&p).expect("readlink"))
            } else if m.is_file() {
                format!("{:?}", fs::read(&p).expect("read"))
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {} {} {}",
                p.display(),
                m.mode(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
                m.len(),
                extra
            ));
            if m.is_dir() {
                walk(&p, root, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(base, root, &mut out);
    out
}

/// The path a client argument names, lexically from `/` (`..` clamped at the root), or None
/// when it holds a NUL.
fn lexical(arg: &[u8]) -> Option<Vec<Vec<u8>>> {
    if arg.contains(&0) {
        return None;
    }
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for c in arg.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            name => stack.push(name.to_vec()),
        }
    }
    Some(stack)
}

/// Links in the jail tree that lead out of the root.
const OUT_LINKS: [&[&str]; 6] = [&["up"], &["uprel"], &["etc"], &["abs"], &["outdir"], &["sub", "out"]];

/// Whether `arg` reaches through an out-of-root link (`Some(true)`: the link is a directory on
/// the way; `Some(false)`: the path names the link itself, which DELE and a rename may act on
/// inside the root); None: it stays inside (or holds a NUL).
fn through_out_link(arg: &[u8]) -> Option<bool> {
    let comps = lexical(arg)?;
    let mut via = comps.clone();
    // `gooddir` is an inside link to `sub`.
    if via.first().is_some_and(|c| c == b"gooddir") {
        via[0] = b"sub".to_vec();
    }
    for link in OUT_LINKS {
        let n = link.len();
        if via.len() >= n && via[..n].iter().zip(link).all(|(a, b)| a == b.as_bytes()) {
            return Some(via.len() > n);
        }
    }
    None
}

/// Puts back the tree's files and links that a permitted command inside the root changed.
fn repair(t: &JailTree, base: &Path) {
    let _ = fs::create_dir_all(t.root.join("sub"));
    for (rel, body) in [("inside.txt", &b"inside\n"[..]), ("sub/deep.txt", b"deep\n"), ("victim.txt", b"victim\n")] {
        if fs::read(t.root.join(rel)).map_or(true, |b| b != body) {
            let _ = fs::remove_dir_all(t.root.join(rel));
            fs::write(t.root.join(rel), body).expect("repair file");
        }
    }
    for (target, name) in out_links(base, true) {
        let p = t.root.join(name);
        if fs::read_link(&p).ok().as_deref() != Some(&target) {
            let _ = fs::remove_dir_all(&p);
            let _ = fs::remove_file(&p);
            symlink(&target, &p).expect("repair link");
        }
    }
}

/// Runs every writing command on every escape path as an account with all permissions.
fn check_jail_writes(t: &JailTree, server: &Server, base: &Path) {
    use crate::accounts::{UP_PASS, UP_USER, login_as, upload_code};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Through `up` (sandboxed: base/outside) this is base/outside/tmp/...; never the real /tmp.
    let tmp_victim = format!("/tmp/mirrorftpd-escape-{nanos}");
    // At most two `..`: even if the server took them literally (no clamping at the root, no
    // kernel check) they would reach no higher than the temporary directory, never /etc.
    let mut paths: Vec<Vec<u8>> = escape_paths()
        .into_iter()
        .filter(|p| p.split(|&b| b == b'/' || b == b'\\').filter(|c| *c == b"..").count() <= 2)
        .collect();
    paths.push(b"outdir/new.txt".to_vec());
    paths.push(b"sub/out/new.txt".to_vec());
    paths.push(format!("up{tmp_victim}").into_bytes());
    paths.push(format!("../..{tmp_victim}").into_bytes());
    paths.push(b"up\\..\\..\\secret.txt".to_vec());
    paths.push([&b"sub/"[..], &[b'y'; 300]].concat());
    let before = outside_snapshot(base, &t.root);
    let mut ftp = login_as(server, UP_USER, UP_PASS);
    let mut failures = Vec::new();
    for path in &paths {
        let shown = String::from_utf8_lossy(&path[..path.len().min(60)]).into_owned();
        let out = through_out_link(path);
        let with = |verb: &str| [format!("{verb} ").as_bytes(), path].concat();
        let mut results: Vec<(String, (u16, String), bool)> = Vec::new();
        // Uploads.
        for verb in ["STOR", "APPE", "STOU"] {
            let line = with(verb);
            let code = if path.contains(&0) || path.len() > 1000 {
                raw_cmd(&mut ftp, &line).0
            } else {
                upload_code(&mut ftp, std::str::from_utf8(&line).unwrap_or("STOR \u{fffd}"), b"PWNED\n")
            };
            // STOU takes a name hint: when it names an existing link it picks a new name beside it.
            let must_refuse = if verb == "STOU" { out == Some(true) } else { out.is_some() };
            results.push((verb.into(), (code, String::new()), must_refuse));
        }
        for verb in ["DELE", "MKD", "RMD", "MFMT 20000101000000", "SITE CHMOD 777"] {
            let r = raw_cmd(&mut ftp, &with(verb));
            // DELE of an out-of-root link removes the link, inside the root.
            let must_refuse = match out {
                Some(through) => through || !verb.starts_with("DELE"),
                None => false,
            };
            results.push((verb.into(), r, must_refuse));
            repair(t, base);
        }
        // Rename out of the root, and into the root from outside.
        expect(&mut ftp, "RNFR victim.txt", 350);
        let r = raw_cmd(&mut ftp, &with("RNTO"));
        results.push(("RNFR victim.txt + RNTO".into(), r, out == Some(true)));
        repair(t, base);
        let r = raw_cmd(&mut ftp, &with("RNFR"));
        let refused = r.0 != 350;
        results.push(("RNFR".into(), r, out == Some(true)));
        if !refused {
            // Renaming an out-of-root link moves the link, inside the root; it must still lead nowhere.
            let r = ftp.cmd("RNTO stolen.txt");
            match transfer_raw(&mut ftp, b"RETR stolen.txt") {
                Ok(data) if leaks(t, &data) => {
                    failures.push(format!("RNFR {shown} + RNTO stolen.txt ({r:?}): RETR leaked outside content"))
                }
                _ => {}
            }
            let _ = fs::remove_file(t.root.join("stolen.txt"));
        }
        repair(t, base);
        for (verb, r, must_refuse) in results {
            if leaks(t, r.1.as_bytes()) {
                failures.push(format!("{verb} {shown}: LEAKED outside content: {r:?}"));
            }
            let refused = [450, 501, 550, 553].contains(&r.0);
            if must_refuse && !refused {
                failures.push(format!("{verb} {shown}: got {r:?}, expected 550, 553 or 501"));
            }
            if path.contains(&0) && r.0 != 501 && r.0 != 550 {
                failures.push(format!("{verb} {shown} (NUL): got {r:?}, expected 501"));
            }
            if r.0 >= 500 && !refused && r.0 != 504 {
                failures.push(format!("{verb} {shown}: unexpected {r:?}"));
            }
        }
        let now = outside_snapshot(base, &t.root);
        if now != before {
            let diff: Vec<_> = now.iter().filter(|l| !before.contains(l)).collect();
            panic!("after the writes on {shown}, outside the root changed: {diff:?}\n(earlier failures: {failures:?})");
        }
        assert!(!base.join(format!("outside{tmp_victim}")).exists(), "{shown}: created {tmp_victim} outside the root");
    }
    assert!(failures.is_empty(), "jail failures on writes:\n{}", failures.join("\n"));
    expect(&mut ftp, "NOOP", 200);
    // The account can still write inside.
    assert_eq!(upload_code(&mut ftp, "STOR fine.txt", b"fine\n"), 226);
    assert_eq!(fs::read(t.root.join("fine.txt")).expect("fine.txt"), b"fine\n");
}

fn jail_writes(name: &str, env: &[(&str, &str)]) {
    let t = jail_tree_with(name, true);
    let base = t.root.parent().expect("base").to_path_buf();
    put(&t.root, "victim.txt", b"victim\n");
    fs::write(base.join("users.txt"), format!("up:{}:{}:all\n", crate::accounts::UP_HASH, t.root.display()))
        .expect("users file");
    let users = base.join("users.txt").to_string_lossy().into_owned();
    let server = Server::start_env(&t.root, &["--users", &users], env);
    check_jail_writes(&t, &server, &base);
}

#[test]
fn jail_refuses_every_escape_on_writes_openat2() {
    jail_writes("sec-jail-w", &[]);
}

#[test]
fn jail_refuses_every_escape_on_writes_fallback_walk() {
    jail_writes("sec-jail-w-walk", &[("MIRRORFTPD_NO_OPENAT2", "1")]);
}
