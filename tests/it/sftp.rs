//! SFTP served by the real server (`--sftp-listen`) to OpenSSH's `sftp`,
//! `scp` and `ssh`: password and public-key logins over the same accounts as
//! FTP, the operations of `sftp -b`, resumes, the jail, anonymous access only
//! with `--sftp-anonymous`, rekeys, parallel sessions, and the limits FTP and
//! SFTP share (failed-login delays and bans, --max-per-ip, the login timeout).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ssh_key::sha2::{Digest, Sha256};

use crate::accounts::{UP_HASH, UP_PASS, UP_USER};
use crate::util::{Ran, Server, TempDir, require_tool, run, temp_dir};

/// A server with SFTP on, and where its files live.
pub(crate) struct Fx {
    pub server: Server,
    pub sftp: SocketAddr,
    /// Holds the root (`root/`), the users file, keys, and the client's files (`local/`).
    pub dir: TempDir,
}

impl Fx {
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.join("root")
    }

    pub fn local(&self) -> std::path::PathBuf {
        self.dir.join("local")
    }
}

/// Starts the server with SFTP on 127.0.0.1:0 and the uploader account
/// (`up`, all permissions, home = the root), plus `extra` flags.
pub(crate) fn start(name: &str, extra: &[&str]) -> Fx {
    let dir = temp_dir(name);
    fs::create_dir_all(dir.join("root")).unwrap();
    fs::create_dir_all(dir.join("local")).unwrap();
    fs::create_dir_all(dir.join("keys")).unwrap();
    let users = dir.join("users");
    fs::write(&users, format!("{UP_USER}:{UP_HASH}:{}:all\n", dir.join("root").display())).unwrap();
    let hk = dir.join("host_key");
    let mut args: Vec<String> = vec![
        "--users".into(),
        users.display().to_string(),
        "--sftp-listen".into(),
        "127.0.0.1:0".into(),
        "--sftp-host-key".into(),
        hk.display().to_string(),
        "--authorized-keys".into(),
        dir.join("keys").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&dir.join("root"), &argv);
    let sftp = sftp_addr(&server);
    Fx { server, sftp, dir }
}

/// The address the server printed as "SFTP on ADDR".
pub(crate) fn sftp_addr(server: &Server) -> SocketAddr {
    assert!(server.wait_log("mirrorftpd: SFTP on ", Duration::from_secs(10)), "no SFTP line:\n{}", server.log());
    let log = server.log();
    let at = log.find("mirrorftpd: SFTP on ").unwrap() + "mirrorftpd: SFTP on ".len();
    log[at..].lines().next().unwrap().trim().parse().expect("SFTP address")
}

pub(crate) fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| require_tool(t))
}

/// Client options every run shares: no config files, no known hosts.
pub(crate) fn ssh_opts(cmd: &mut Command) -> &mut Command {
    cmd.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10"])
}

/// Password logins through sshpass (`sftp -b` sets BatchMode, which would
/// forbid the password prompt).
pub(crate) fn password_opts(cmd: &mut Command) -> &mut Command {
    cmd.args(["-o", "BatchMode=no", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"])
}

/// Runs `sftp -b` with `batch` as `user`/`password`, in `cwd`.
pub(crate) fn sftp_batch(addr: SocketAddr, user: &str, password: &str, batch: &str, cwd: &Path, extra: &[&str]) -> Ran {
    let file = cwd.join(".batch");
    fs::write(&file, batch).unwrap();
    let mut cmd = Command::new("sshpass");
    cmd.current_dir(cwd).args(["-p", password, "sftp"]);
    ssh_opts(&mut cmd);
    password_opts(&mut cmd);
    cmd.args(extra).args(["-P", &addr.port().to_string(), "-b"]).arg(&file).arg(format!("{user}@{}", addr.ip()));
    let ran = run(&mut cmd, Duration::from_secs(60));
    let _ = fs::remove_file(file);
    ran
}

pub(crate) fn sha(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Pseudo-random bytes (not periodic at packet sizes).
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `sftp -b` with a password: listing, get, put, reget, reput, rename, rm,
/// mkdir, rmdir, chmod; exit status 0 after `bye`; checksums equal; the
/// transfers and the login are in the session log.
#[test]
fn sftp_batch_operations_with_password() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-ops", &[]);
    let (root, local) = (fx.root(), fx.local());
    fs::write(root.join("down.bin"), pattern(3 << 20, 7)).unwrap();
    fs::write(local.join("up.bin"), pattern((5 << 20) + 17, 9)).unwrap();
    // Partial copies for the resumes: the first MiB of each.
    fs::write(local.join("part.bin"), &pattern(3 << 20, 7)[..1 << 20]).unwrap();
    fs::write(root.join("reput.bin"), &pattern((5 << 20) + 17, 9)[..1 << 20]).unwrap();
    let batch = "ls -l\nget down.bin\nput up.bin\nreget down.bin part.bin\nreput up.bin reput.bin\n\
                 mkdir newdir\nrename up.bin newdir/moved.bin\nchmod 600 newdir/moved.bin\nls -l newdir\n\
                 rm reput.bin\nget newdir/moved.bin back.bin\nrm newdir/moved.bin\nrmdir newdir\nbye\n";
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, batch, &local, &[]);
    assert!(ran.status.success(), "sftp -b failed: {}\n{}\n{}", ran.status, ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("down.bin"), "ls -l: {}", ran.stdout);
    assert!(ran.stdout.contains("-rw-------"), "chmod 600 not shown by ls -l: {}", ran.stdout);
    assert_eq!(sha(&local.join("down.bin")), sha(&root.join("down.bin")));
    assert_eq!(sha(&local.join("part.bin")), sha(&root.join("down.bin")), "reget");
    assert_eq!(sha(&local.join("back.bin")), sha(&local.join("up.bin")), "put then get");
    assert!(!root.join("newdir").exists() && !root.join("reput.bin").exists() && !root.join("up.bin").exists());
    assert!(fx.server.wait_log("sftp login up", Duration::from_secs(5)), "{}", fx.server.log());
    assert!(
        fx.server.wait_log("sftp get /down.bin bytes=3145728 result=ok", Duration::from_secs(5)),
        "{}",
        fx.server.log()
    );
}

/// `reput` appends to a partial upload: the result equals the local file.
#[test]
fn sftp_reput_completes_a_partial_upload() {
    if !have_tools(&["sshpass", "sftp"]) {
        return;
    }
    let fx = start("sftp-reput", &[]);
    let (root, local) = (fx.root(), fx.local());
    let data = pattern((4 << 20) + 5, 3);
    fs::write(local.join("f.bin"), &data).unwrap();
    fs::write(root.join("f.bin"), &data[..(1 << 20) + 3]).unwrap();
    let ran = sftp_batch(fx.sftp, UP_USER, UP_PASS, "reput f.bin\nbye\n", &local, &[]);
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(sha(&root.join("f.bin")), sha(&local.join("f.bin")));
}

/// Just connecting and never speaking SSH: the login timeout closes it.
#[test]
fn sftp_silent_connection_times_out() {
    let fx = start("sftp-silent", &["--login-timeout", "1"]);
    let mut s = TcpStream::connect(fx.sftp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e} after {:?}", started.elapsed()),
        }
    }
    let took = started.elapsed();
    assert!(got.starts_with(b"SSH-2.0-"), "no SSH version line: {got:?}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");
    assert!(fx.server.wait_log("reason=login timeout", Duration::from_secs(5)), "{}", fx.server.log());
    let _ = s.write(b"x");
}
