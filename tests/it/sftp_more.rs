//! More of SFTP against OpenSSH (fixtures in `sftp.rs`): public keys,
//! anonymous access, the jail, scp, parallel sessions, rekeys, offsets past
//! 4 GiB, cold files through the disk helpers, and the limits shared with FTP.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::accounts::{UP_PASS, UP_USER};
use crate::sftp::{Fx, have_tools, password_opts, pattern, sftp_batch, sha, ssh_opts, start};
use crate::util::{Ftp, run};

/// A key pair made with ssh-keygen in the fixture's directory; the public
/// half is installed as `keys/up.keys` when `install`.
fn keypair(fx: &Fx, name: &str, install: bool) -> std::path::PathBuf {
    let id = fx.dir.join(name);
    let ran = run(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "t", "-f"]).arg(&id),
        Duration::from_secs(10),
    );
    assert!(ran.status.success(), "ssh-keygen: {}", ran.stderr);
    if install {
        fs::copy(id.with_extension("pub"), fx.dir.join("keys").join(format!("{UP_USER}.keys"))).unwrap();
    }
    id
}

fn key_batch(fx: &Fx, id: &std::path::Path, batch: &str) -> crate::util::Ran {
    let file = fx.local().join(".kbatch");
    fs::write(&file, batch).unwrap();
    let mut cmd = Command::new("sftp");
    cmd.current_dir(fx.local());
    ssh_opts(&mut cmd)
        .args(["-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no", "-i"])
        .arg(id)
        .args(["-P", &fx.sftp.port().to_string(), "-b"])
        .arg(&file)
        .arg(format!("{UP_USER}@{}", fx.sftp.ip()));
    run(&mut cmd, Duration::from_secs(30))
}

/// A key in `keys/up.keys` logs in; another key does not; a key added
/// later works after SIGHUP.
#[test]
fn sftp_public_key_login_and_sighup_reload() {
    if !have_tools(&["sftp", "ssh-keygen"]) {
        return;
    }
    let fx = start("sftp-pubkey", &[]);
    let good = keypair(&fx, "good", false);
    let later = keypair(&fx, "later", false);
    fs::write(fx.dir.join("keys/up.keys"), fs::read(good.with_extension("pub")).unwrap()).unwrap();
    // The keys were read at start (the file did not exist then): SIGHUP.
    fx.server.signal(libc::SIGHUP);
    assert!(fx.server.wait_log("SIGHUP: --authorized-keys", Duration::from_secs(5)), "{}", fx.server.log());
    fs::write(fx.root().join("f.txt"), b"by key").unwrap();
    let ran = key_batch(&fx, &good, "get f.txt\nbye\n");
    assert!(ran.status.success(), "key login failed: {}", ran.stderr);
    assert_eq!(fs::read(fx.local().join("f.txt")).unwrap(), b"by key");
    let ran = key_batch(&fx, &later, "bye\n");
    assert!(!ran.status.success(), "an unlisted key logged in");
    let mut both = fs::read(good.with_extension("pub")).unwrap();
    both.extend(fs::read(later.with_extension("pub")).unwrap());
    fs::write(fx.dir.join("keys/up.keys"), both).unwrap();
    fx.server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fx.server.log().matches("SIGHUP: --authorized-keys").count() < 2 {
        assert!(Instant::now() < deadline, "{}", fx.server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = key_batch(&fx, &later, "bye\n");
    assert!(ran.status.success(), "the key added before SIGHUP was refused: {}", ran.stderr);
}

/// Anonymous SFTP: refused without --sftp-anonymous; with it, read-only.
#[test]
fn sftp_anonymous_only_with_the_flag_and_read_only() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-anon-off", &[]);
    fs::write(fx.root().join("pub.txt"), b"public").unwrap();
    let ran = sftp_batch(fx.sftp, "anonymous", "me@example.org", "get pub.txt\nbye\n", &fx.local(), &[]);
    assert!(!ran.status.success(), "anonymous logged in without --sftp-anonymous");
    drop(fx);

    let fx = start("sftp-anon-on", &["--sftp-anonymous"]);
    fs::write(fx.root().join("pub.txt"), b"public").unwrap();
    fs::write(fx.local().join("mine.txt"), b"upload").unwrap();
    let batch = "get pub.txt\n-put mine.txt\n-mkdir d\n-rm pub.txt\n-rename pub.txt x.txt\nbye\n";
    let ran = sftp_batch(fx.sftp, "anonymous", "anything", batch, &fx.local(), &[]);
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(fs::read(fx.local().join("pub.txt")).unwrap(), b"public");
    assert!(ran.stderr.matches("Permission denied").count() >= 3, "writes not refused:\n{}", ran.stderr);
    assert!(!fx.root().join("mine.txt").exists() && !fx.root().join("d").exists());
    assert!(fx.root().join("pub.txt").exists() && !fx.root().join("x.txt").exists());
}

/// `..`, absolute paths and a symlink out of the root all stay inside.
#[test]
fn sftp_jail_holds() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-jail", &[]);
    let outside = fx.dir.join("outside.txt");
    fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&fx.dir, fx.root().join("out")).unwrap();
    let batch = "-get ../outside.txt p1\n-get ../../../../../../etc/hostname p2\n-get /etc/hostname p3\n\
                 -get out/outside.txt p4\n-put p0 ../escaped.txt\n-put p0 out/escaped2.txt\n-ls -l ..\nbye\n";
    fs::write(fx.local().join("p0"), b"x").unwrap();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, batch, &fx.local(), &[]);
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    for p in ["p1", "p2", "p3", "p4"] {
        assert!(!fx.local().join(p).exists(), "{p} was fetched from outside the root");
    }
    assert!(!fx.dir.join("escaped.txt").exists() && !fx.dir.join("escaped2.txt").exists());
    assert!(!ran.stdout.contains("host_key"), "ls .. shows the parent: {}", ran.stdout);
}

/// scp in SFTP mode, both directions, with equal checksums.
#[test]
fn scp_both_directions() {
    if !have_tools(&["sshpass", "scp"]) {
        return;
    }
    let fx = start("sftp-scp", &[]);
    fs::write(fx.root().join("down.bin"), pattern(2 << 20, 5)).unwrap();
    fs::write(fx.local().join("up.bin"), pattern((2 << 20) + 1, 6)).unwrap();
    let target = |p: &str| format!("{UP_USER}@{}:{p}", fx.sftp.ip());
    for (from, to) in [(target("down.bin"), "got.bin".to_string()), ("up.bin".to_string(), target("up.bin"))] {
        let mut cmd = Command::new("sshpass");
        cmd.current_dir(fx.local()).args(["-p", UP_PASS, "scp", "-s", "-q"]);
        ssh_opts(&mut cmd);
        password_opts(&mut cmd);
        let ran = run(cmd.args(["-P", &fx.sftp.port().to_string(), &from, &to]), Duration::from_secs(30));
        assert!(ran.status.success(), "scp {from} {to}: {}", ran.stderr);
    }
    assert_eq!(sha(&fx.local().join("got.bin")), sha(&fx.root().join("down.bin")));
    assert_eq!(sha(&fx.root().join("up.bin")), sha(&fx.local().join("up.bin")));
}

/// 8 sessions at once, each a get and a put of its own file.
#[test]
fn sftp_eight_parallel_sessions() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-parallel", &["--workers", "2"]);
    for i in 0..8u64 {
        fs::write(fx.root().join(format!("d{i}.bin")), pattern(4 << 20, 100 + i)).unwrap();
        let dir = fx.local().join(format!("c{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("u{i}.bin")), pattern(3 << 20, 200 + i)).unwrap();
    }
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (addr, dir) = (fx.sftp, fx.local().join(format!("c{i}")));
            std::thread::spawn(move || {
                sftp_batch(addr, UP_USER, UP_PASS, &format!("get d{i}.bin\nput u{i}.bin\nbye\n"), &dir, &[])
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let ran = h.join().unwrap();
        assert!(ran.status.success(), "session {i}: {}", ran.stderr);
        let dir = fx.local().join(format!("c{i}"));
        assert_eq!(sha(&dir.join(format!("d{i}.bin"))), sha(&fx.root().join(format!("d{i}.bin"))));
        assert_eq!(sha(&fx.root().join(format!("u{i}.bin"))), sha(&dir.join(format!("u{i}.bin"))));
    }
}

/// A transfer across several rekeys (RekeyLimit=16M), both directions.
#[test]
fn sftp_transfers_across_rekeys() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-rekey", &[]);
    fs::write(fx.root().join("big.bin"), pattern(48 << 20, 11)).unwrap();
    fs::write(fx.local().join("up.bin"), pattern(40 << 20, 12)).unwrap();
    let ran = sftp_batch(
        fx.sftp,
        UP_USER,
        UP_PASS,
        "get big.bin\nput up.bin\nbye\n",
        &fx.local(),
        &["-v", "-o", "RekeyLimit=16M"],
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    let kexes = ran.stderr.matches("SSH2_MSG_NEWKEYS received").count();
    assert!(kexes >= 4, "expected the first key exchange and 3+ rekeys, saw {kexes}");
    assert_eq!(sha(&fx.local().join("big.bin")), sha(&fx.root().join("big.bin")));
    assert_eq!(sha(&fx.root().join("up.bin")), sha(&fx.local().join("up.bin")));
}

/// A sparse file above 4 GiB: `reget` of a truncated local copy reads at
/// offsets past 2^32 and gets the bytes there.
#[test]
fn sftp_reget_past_four_gib() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-4g", &[]);
    let base: u64 = 1 << 32;
    let tail = pattern(1 << 20, 13);
    let f = fs::File::create(fx.root().join("sparse.bin")).unwrap();
    f.set_len(base + (2 << 20)).unwrap();
    f.write_all_at(&tail, base + (512 << 10)).unwrap();
    drop(f);
    let local = fs::File::create(fx.local().join("sparse.bin")).unwrap();
    local.set_len(base + (256 << 10)).unwrap();
    drop(local);
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "reget sparse.bin\nbye\n", &fx.local(), &[]);
    assert!(ran.status.success(), "{}", ran.stderr);
    let mut got = fs::File::open(fx.local().join("sparse.bin")).unwrap();
    assert_eq!(got.metadata().unwrap().len(), base + (2 << 20));
    got.seek(SeekFrom::Start(base + (256 << 10))).unwrap();
    let mut rest = Vec::new();
    got.read_to_end(&mut rest).unwrap();
    let mut want = vec![0u8; (2 << 20) - (256 << 10)];
    want[(256 << 10)..(256 << 10) + tail.len()].copy_from_slice(&tail);
    assert!(rest == want, "the bytes past 4 GiB differ");
}

/// A cold file is read in by a disk helper (slowed here), not on the reactor,
/// and arrives exact.
#[test]
fn sftp_cold_read_goes_through_the_disk_helpers() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-cold", &["--metrics-listen", "127.0.0.1:0", "--disk-threads", "1"]);
    fs::write(fx.root().join("cold.bin"), pattern(3 << 20, 21)).unwrap();
    crate::disk::make_cold(&fx.root().join("cold.bin"));
    let before = crate::disk::counter(&fx.server, "mirrorftpd_disk_jobs_total");
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "get cold.bin\nbye\n", &fx.local(), &[]);
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(sha(&fx.local().join("cold.bin")), sha(&fx.root().join("cold.bin")));
    let jobs = crate::disk::counter(&fx.server, "mirrorftpd_disk_jobs_total") - before;
    assert!(jobs >= 1, "no disk helper job for a cold file");
}

/// Wrong passwords over SSH: growing delays, then --ban-after bans the
/// address for FTP and SFTP alike.
#[test]
fn sftp_brute_force_is_delayed_then_banned_for_both_protocols() {
    if !have_tools(&["sshpass", "ssh"]) {
        return;
    }
    let fx = start("sftp-brute", &["--ban-after", "3", "--max-login-attempts", "10"]);
    // sshpass gives up at the second prompt: an askpass program answers
    // every prompt instead, so one connection makes three attempts.
    let askpass = fx.dir.join("askpass.sh");
    fs::write(&askpass, "#!/bin/sh\necho wrong\n").unwrap();
    fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let mut cmd = Command::new("ssh");
    cmd.env("SSH_ASKPASS", &askpass).env("SSH_ASKPASS_REQUIRE", "force").env("DISPLAY", ":0");
    ssh_opts(&mut cmd);
    password_opts(&mut cmd);
    let ran = run(
        cmd.args(["-o", "NumberOfPasswordPrompts=3", "-p", &fx.sftp.port().to_string(), "-s"])
            .arg(format!("{UP_USER}@{}", fx.sftp.ip()))
            .arg("sftp"),
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert!(!ran.status.success());
    // 0.5 s then 1 s of delay before the 2nd and 3rd attempts are answered.
    assert!(took >= Duration::from_millis(1500), "three failures took only {took:?}");
    assert!(fx.server.wait_log("banning 127.0.0.1", Duration::from_secs(5)), "{}", fx.server.log());
    let failures = fx.server.log().matches("sftp failed login as").count();
    assert_eq!(failures, 3, "one connection, three attempts:\n{}", fx.server.log());
    assert!(ftp_refused(fx.server.addr).starts_with("421 "), "a banned address got an FTP greeting");
    let mut s = TcpStream::connect(fx.sftp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "a banned address got an SSH banner");
}

/// --max-per-ip counts FTP and SFTP sessions together.
#[test]
fn max_per_ip_counts_ftp_and_sftp_together() {
    let fx = start("sftp-perip", &["--max-per-ip", "2"]);
    let mut ftp = Ftp::connect(fx.server.addr);
    let mut ssh = TcpStream::connect(fx.sftp).unwrap();
    ssh.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    ssh.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"SSH-2.0-");
    // Both are counted: a third of either kind is refused.
    let mut third = TcpStream::connect(fx.sftp).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(third.read(&mut buf).unwrap_or(0), 0, "a third session got an SSH banner");
    assert!(ftp_refused(fx.server.addr).starts_with("421 "), "a third session got an FTP greeting");
    // The SFTP session ends: its place is free again.
    drop(ssh);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TcpStream::connect(fx.sftp).unwrap();
        again.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if again.read(&mut buf).unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed SFTP session's place was not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    ftp.send_raw(b"QUIT\r\n");
    let _ = third.write(b"x");
}

/// Connects to FTP and returns the first line the server sends (a refusal).
fn ftp_refused(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// A logged-in SFTP session that does nothing: `ssh -s sftp` with its stdin
/// held open. Returns the client, to be killed by the caller.
fn idle_session(fx: &Fx) -> std::process::Child {
    let mut cmd = Command::new("sshpass");
    cmd.args(["-p", UP_PASS, "ssh"]);
    ssh_opts(&mut cmd);
    password_opts(&mut cmd);
    let child = cmd
        .args(["-p", &fx.sftp.port().to_string(), "-s"])
        .arg(format!("{UP_USER}@{}", fx.sftp.ip()))
        .arg("sftp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssh");
    assert!(fx.server.wait_log("sftp login up", Duration::from_secs(15)), "{}", fx.server.log());
    child
}

/// The idle timeout ends an SFTP session; SIGTERM ends an idle one at once
/// and the server exits.
#[test]
fn sftp_idle_timeout_and_drain() {
    if !have_tools(&["sshpass", "ssh"]) {
        return;
    }
    let fx = start("sftp-idle", &["--idle-timeout", "1"]);
    let mut client = idle_session(&fx);
    assert!(fx.server.wait_log("reason=idle timeout", Duration::from_secs(5)), "{}", fx.server.log());
    let _ = client.kill();
    let _ = client.wait();
    drop(fx);

    let mut fx = start("sftp-drain", &[]);
    let mut client = idle_session(&fx);
    let t0 = Instant::now();
    fx.server.signal(libc::SIGTERM);
    let status = fx.server.wait_exit(Duration::from_secs(10));
    let _ = client.kill();
    let _ = client.wait();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", fx.server.log());
    assert!(t0.elapsed() < Duration::from_secs(5), "the drain waited {:?} for an idle session", t0.elapsed());
    assert!(fx.server.log().contains("reason=server shutting down"), "{}", fx.server.log());
}
