//! SFTP under the same operations as FTP: `--check-config` leaves a missing
//! host key uncreated, the PROXY protocol on the SFTP port, `--max-rate` and
//! `--max-rate-total` on SFTP transfers, metrics labelled by protocol, and
//! the xferlog's transfer time.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{UP_PASS, UP_USER};
use crate::observability::{metrics_addr, scrape_when_closed, value, xfer_fields};
use crate::sftp::{have_tools, pattern, sftp_batch, sha, start};
use crate::util::{run, temp_dir};

/// `--check-config` must not create the host key: it says the key would be
/// created, and the file is still missing afterwards. An existing key is
/// loaded and its fingerprint printed.
#[test]
fn check_config_does_not_create_the_sftp_host_key() {
    let dir = temp_dir("sftp-ops-check");
    fs::create_dir_all(dir.join("root")).unwrap();
    let hk = dir.join("host_key");
    let check = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
        cmd.args(["--check-config", "--allow-root", "--listen", "127.0.0.1:0", "--sftp-listen", "127.0.0.1:0"])
            .arg("--sftp-host-key")
            .arg(&hk)
            .arg("--root")
            .arg(dir.join("root"));
        run(&mut cmd, Duration::from_secs(20))
    };
    let ran = check();
    assert!(ran.status.success(), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("would be created"), "{}", ran.stdout);
    assert!(!hk.exists(), "--check-config created the host key");
    assert!(!ran.stderr.contains("SSH host key"), "{}", ran.stderr);
    // A missing directory is an error: the start could not create the key.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.args(["--check-config", "--allow-root", "--listen", "127.0.0.1:0", "--sftp-listen", "127.0.0.1:0"])
        .arg("--sftp-host-key")
        .arg(dir.join("nowhere/host_key"))
        .arg("--root")
        .arg(dir.join("root"));
    let bad = run(&mut cmd, Duration::from_secs(20));
    assert!(!bad.status.success(), "{}{}", bad.stdout, bad.stderr);
    // An existing key: loaded, fingerprint shown, left as it was.
    let mut kg = Command::new("ssh-keygen");
    if crate::util::require_tool("ssh-keygen") {
        kg.args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&hk);
        assert!(run(&mut kg, Duration::from_secs(20)).status.success());
        let before = fs::read(&hk).unwrap();
        let ran = check();
        assert!(ran.status.success(), "{}{}", ran.stdout, ran.stderr);
        assert!(ran.stdout.contains("host key SHA256:"), "{}", ran.stdout);
        assert_eq!(fs::read(&hk).unwrap(), before);
    }
}

/// The metrics count SFTP sessions, logins and transfers under
/// `protocol="sftp"`, apart from FTP's.
#[test]
fn sftp_metrics_are_labelled_by_protocol() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-ops-metrics", &["--metrics-listen", "127.0.0.1:0"]);
    let m = metrics_addr(&fx.server);
    let (root, local) = (fx.root(), fx.local());
    fs::write(root.join("m.bin"), pattern(300_000, 5)).unwrap();
    fs::write(local.join("u.bin"), pattern(70_000, 6)).unwrap();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "get m.bin\nput u.bin\nbye\n", &local, &[]);
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    let body = scrape_when_closed(m, Duration::from_secs(10));
    for (series, want) in [
        ("mirrorftpd_sessions_total{protocol=\"sftp\"}", 1),
        ("mirrorftpd_sessions_total{protocol=\"ftp\"}", 0),
        ("mirrorftpd_logins_total{protocol=\"sftp\",result=\"ok\"}", 1),
        ("mirrorftpd_logins_total{protocol=\"ftp\",result=\"ok\"}", 0),
        ("mirrorftpd_transfer_bytes_total{protocol=\"sftp\",direction=\"download\"}", 300_000),
        ("mirrorftpd_transfer_bytes_total{protocol=\"sftp\",direction=\"upload\"}", 70_000),
        ("mirrorftpd_transfer_bytes_total{protocol=\"ftp\",direction=\"download\"}", 0),
        ("mirrorftpd_transfers_total{protocol=\"sftp\",direction=\"download\",result=\"ok\"}", 1),
        ("mirrorftpd_transfers_total{protocol=\"sftp\",direction=\"upload\",result=\"ok\"}", 1),
        ("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"download\",result=\"ok\"}", 0),
    ] {
        assert_eq!(value(&body, series), want, "{series} in:\n{body}");
    }
}

/// `--max-rate` paces an SFTP download: 4 MiB at 1 MiB/s takes about 4 s
/// (the bucket's first chunk goes at once), not the few milliseconds of an
/// unlimited loopback transfer. An upload is paced too.
#[test]
fn sftp_max_rate_paces_downloads_and_uploads() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-ops-rate", &["--max-rate", "1M"]);
    let (root, local) = (fx.root(), fx.local());
    fs::write(root.join("big.bin"), pattern(4 << 20, 11)).unwrap();
    let started = Instant::now();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "get big.bin\nbye\n", &local, &[]);
    let took = started.elapsed();
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(sha(&local.join("big.bin")), sha(&root.join("big.bin")));
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(10), "4 MiB at 1 MiB/s took {took:?}");
    fs::write(local.join("up.bin"), pattern(2 << 20, 12)).unwrap();
    let started = Instant::now();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "put up.bin\nbye\n", &local, &[]);
    let took = started.elapsed();
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(sha(&local.join("up.bin")), sha(&root.join("up.bin")));
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(8), "2 MiB up at 1 MiB/s took {took:?}");
}

/// `--max-rate-total` paces SFTP too, and the xferlog's transfer time is the
/// time the file was open (here about 3 s), not a constant; the session log's
/// transfer line carries it as well.
#[test]
fn sftp_max_rate_total_and_the_xferlog_transfer_time() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let dir = temp_dir("sftp-ops-xfer-etc");
    let xlog = dir.join("xferlog");
    let xarg = xlog.display().to_string();
    let fx = start("sftp-ops-xfer", &["--max-rate-total", "1M", "--xferlog", &xarg]);
    let (root, local) = (fx.root(), fx.local());
    fs::write(root.join("t.bin"), pattern(3 << 20, 13)).unwrap();
    let started = Instant::now();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "get t.bin\nbye\n", &local, &[]);
    let took = started.elapsed();
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(9), "3 MiB at 1 MiB/s total took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let t = fs::read_to_string(&xlog).unwrap_or_default();
        if t.contains("/t.bin") || Instant::now() > deadline {
            break t;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let line = text.lines().find(|l| l.contains("/t.bin")).unwrap_or_else(|| panic!("no xferlog line:\n{text}"));
    let f = xfer_fields(line);
    let secs: u64 = f[0].parse().unwrap();
    assert!((2..=9).contains(&secs), "transfer time {secs} in {line:?}");
    assert_eq!(f[2], "3145728", "{line:?}");
    assert_eq!(&f[6..13], ["o", "r", UP_USER, "sftp", "0", "*", "c"], "{line:?}");
    let log = fx.server.log();
    let secs: f64 = log
        .lines()
        .find(|l| l.contains("sftp get /t.bin"))
        .and_then(|l| l.split(" secs=").nth(1))
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no secs= in the transfer line:\n{log}"));
    assert!(secs >= 1.5, "{secs} in:\n{log}");
}

/// A `ProxyCommand` for ssh: connects to `port`, waits for the client's
/// first bytes and sends them in ONE write with the PROXY header `version`
/// (1 or 2) naming `src` (IPv4) as the client, then relays both ways. The
/// server must take exactly the header off the socket and leave the SSH
/// version line that follows it.
fn proxy_relay(dir: &std::path::Path, port: u16, version: u8, src: &str, src_port: u16) -> String {
    let script = format!(
        r#"
import os, socket, threading
s = socket.create_connection(("127.0.0.1", {port}))
src, sport = "{src}", {src_port}
if {version} == 1:
    header = ("PROXY TCP4 %s 127.0.0.1 %d {port}\r\n" % (src, sport)).encode()
else:
    addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + sport.to_bytes(2, "big") + ({port}).to_bytes(2, "big")
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(addrs).to_bytes(2, "big") + addrs
first = os.read(0, 65536)
s.sendall(header + first)
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(b)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
"#
    );
    let file = dir.join(format!("relay-v{version}.py"));
    fs::write(&file, script).unwrap();
    format!("ProxyCommand=python3 {}", file.display())
}

/// `--proxy-protocol` on the SFTP port: v1 and v2 headers from a
/// `--proxy-from` address give the session its real client address (session
/// log, admission), the SSH exchange that follows in the same segment works;
/// a connection without a header is dropped before the server sends a byte,
/// and one from outside `--proxy-from` is refused.
#[test]
fn sftp_behind_the_proxy_protocol() {
    if !have_tools(&["sshpass", "sftp", "python3"]) {
        return;
    }
    let fx = start("sftp-ops-proxy", &["--proxy-protocol", "--proxy-from", "127.0.0.1/32", "--max-per-ip", "4"]);
    let (root, local) = (fx.root(), fx.local());
    fs::write(root.join("p.bin"), pattern(200_000, 21)).unwrap();
    for (version, src, port) in [(1, "203.0.113.7", 5555), (2, "198.51.100.9", 4444)] {
        let relay = proxy_relay(&fx.dir, fx.sftp.port(), version, src, port);
        let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "get p.bin\nbye\n", &local, &["-o", &relay]);
        assert!(ran.status.success(), "v{version}: {}\n{}\n{}", ran.stdout, ran.stderr, fx.server.log());
        assert_eq!(sha(&local.join("p.bin")), sha(&root.join("p.bin")));
        fs::remove_file(local.join("p.bin")).unwrap();
        for line in [format!("sftp connect from {src}:{port}"), format!("sftp login up from {src}:{port}")] {
            assert!(fx.server.wait_log(&line, Duration::from_secs(5)), "v{version}: no {line:?}:\n{}", fx.server.log());
        }
    }
    // No header: dropped, and not one byte was sent (not even SSH's version line).
    let mut raw = TcpStream::connect(fx.sftp).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(got.is_empty(), "sent before a PROXY header: {got:?}");
    assert!(fx.server.wait_log("bad PROXY header", Duration::from_secs(5)), "{}", fx.server.log());

    // Only --proxy-from may connect.
    let other = start("sftp-ops-proxy-from", &["--proxy-protocol", "--proxy-from", "10.9.9.9/32"]);
    let mut raw = TcpStream::connect(other.sftp).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = raw.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 22\r\n");
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    assert!(other.server.wait_log("refused sftp 127.0.0.1", Duration::from_secs(5)), "{}", other.server.log());
}
