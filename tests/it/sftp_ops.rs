//! SFTP under the same operations as FTP: `--check-config` leaves a missing
//! host key uncreated, the PROXY protocol on the SFTP port, `--max-rate` and
//! `--max-rate-total` on SFTP transfers, metrics labelled by protocol, and
//! the xferlog's transfer time.

use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{UP_PASS, UP_USER};
use crate::observability::{metrics_addr, scrape, value, xfer_fields};
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
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = scrape(m);
        if value(&body, "mirrorftpd_sessions_open") == 0 {
            break body;
        }
        assert!(Instant::now() < deadline, "sessions still open:\n{body}");
        thread::sleep(Duration::from_millis(20));
    };
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
