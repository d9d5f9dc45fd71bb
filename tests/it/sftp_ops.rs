//! SFTP under the same operations as FTP: `--check-config` leaves a missing
//! host key uncreated, the PROXY protocol on the SFTP port, `--max-rate` and
//! `--max-rate-total` on SFTP transfers, metrics labelled by protocol, and
//! the xferlog's transfer time.

use std::fs;
use std::process::Command;
use std::time::Duration;

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
