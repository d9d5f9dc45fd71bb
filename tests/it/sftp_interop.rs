//! SFTP against more real clients (fixtures in `sftp.rs`): rclone's sftp
//! backend (`copy` both ways and `check --download`, by password and by key)
//! and Python's paramiko (SETSTAT and FSETSTAT: chmod, utime, truncate;
//! statvfs@openssh.com; posix-rename@openssh.com against plain RENAME).
//! Also the shared paramiko runner of `sftp_perms.rs` and `sftp_hostile.rs`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::accounts::{UP_PASS, UP_USER};
use crate::sftp::{Fx, have_tools, pattern, sha, start};
use crate::util::{Ran, make_tree, run, tree_digest};

/// Where .ci/run tells the tests which Python has paramiko.
const PYTHON_ENV: &str = "MIRRORFTPD_TEST_PYTHON";

/// A Python that imports paramiko: `$MIRRORFTPD_TEST_PYTHON` (set by .ci/run,
/// which installs paramiko into a venv), else `python3` if it has paramiko.
/// None (said loudly) when there is none; a panic when `CI` is set.
pub(crate) fn paramiko() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let named = std::env::var_os(PYTHON_ENV).map(PathBuf::from);
        let python = named.clone().unwrap_or_else(|| PathBuf::from("python3"));
        let ok = Command::new(&python)
            .args(["-c", "import paramiko"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        match (ok, named) {
            (true, _) => Ok(python),
            (false, Some(p)) => panic!("{PYTHON_ENV}={} cannot import paramiko", p.display()),
            (false, None) => Err("python3 with paramiko".to_string()),
        }
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(what) => {
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                panic!("{what} is not installed; it is required in CI (.ci/run installs it, {PYTHON_ENV})");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED-LOUDLY: {what} not installed; this interop test did not run");
            None
        }
    }
}

/// What every script starts with: `login(port, user, password)` returns a
/// logged-in paramiko Transport; `sftp(t)` an SFTPClient over it.
pub(crate) const PRELUDE: &str = r#"
import os, socket, struct, sys, time
import paramiko

def login(port, user, password, sock=None):
    t = paramiko.Transport(sock or ('127.0.0.1', port))
    t.banner_timeout = 10
    t.auth_timeout = 10
    t.connect(username=user, password=password)
    return t

def sftp(t):
    return paramiko.SFTPClient.from_transport(t)
"#;

/// Runs `script` (after `PRELUDE`) with `python`, its file in `dir`, with
/// `args` as sys.argv[1:]; killed after `timeout`.
pub(crate) fn python(python: &Path, dir: &Path, script: &str, args: &[String], timeout: Duration) -> Ran {
    let file = dir.join(format!("t{}.py", std::process::id()));
    fs::write(&file, format!("{PRELUDE}\n{script}")).unwrap();
    let ran = run(Command::new(python).arg(&file).args(args), timeout);
    let _ = fs::remove_file(file);
    ran
}

/// The `KEY=value` lines a script printed.
pub(crate) fn values(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

// ---------------------------------------------------------------------------
// rclone
// ---------------------------------------------------------------------------

/// Runs rclone with the remote `mf:` pointing at the server: password
/// (obscured, as rclone wants it) or `key`. No exec channel: hashes and
/// the shell are off, so `check` needs `--download`.
fn rclone(fx: &Fx, key: Option<&Path>, args: &[&str]) -> Ran {
    let mut cmd = Command::new("rclone");
    cmd.env("RCLONE_CONFIG", fx.dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_MF_TYPE", "sftp")
        .env("RCLONE_CONFIG_MF_HOST", fx.sftp.ip().to_string())
        .env("RCLONE_CONFIG_MF_PORT", fx.sftp.port().to_string())
        .env("RCLONE_CONFIG_MF_USER", UP_USER)
        .env("RCLONE_CONFIG_MF_SHELL_TYPE", "none")
        .env("RCLONE_CONFIG_MF_DISABLE_HASHCHECK", "true")
        .env("RCLONE_CONFIG_MF_MD5SUM_COMMAND", "none")
        .env("RCLONE_CONFIG_MF_SHA1SUM_COMMAND", "none");
    match key {
        Some(k) => cmd.env("RCLONE_CONFIG_MF_KEY_FILE", k),
        None => {
            let ran = run(Command::new("rclone").args(["obscure", UP_PASS]), Duration::from_secs(10));
            assert!(ran.status.success(), "rclone obscure: {}", ran.stderr);
            cmd.env("RCLONE_CONFIG_MF_PASS", ran.stdout.trim())
        }
    };
    run(
        cmd.args(["--retries", "1", "--low-level-retries", "1", "--contimeout", "10s"]).args(args),
        Duration::from_secs(120),
    )
}

/// A tree without the 100 MiB file and without the dot file (which the
/// server hides, so it would never compare equal), plus an 8 MiB file.
fn small_tree(dir: &Path) {
    make_tree(dir);
    fs::remove_file(dir.join(crate::util::BIG_FILE)).unwrap();
    fs::remove_file(dir.join(".hidden")).unwrap();
    fs::write(dir.join("eight.bin"), pattern(8 << 20, 31)).unwrap();
}

/// `rclone copy` down and up over a password login, equal trees; `rclone
/// check --download` passes, and fails once a served byte is changed;
/// modification times set by rclone (SETSTAT) are on disk.
#[test]
fn rclone_copy_both_ways_and_check() {
    if !have_tools(&["rclone"]) {
        return;
    }
    let fx = start("sftp-rclone", &[]);
    let (root, local) = (fx.root(), fx.local());
    small_tree(&root.join("down"));
    small_tree(&local.join("up"));
    let down = local.join("down");
    let ran = rclone(&fx, None, &["copy", "--create-empty-src-dirs", "mf:down", down.to_str().unwrap()]);
    assert!(ran.status.success(), "rclone copy down: {}\n{}", ran.stdout, ran.stderr);
    assert_eq!(tree_digest(&down), tree_digest(&root.join("down")), "copy down");
    assert!(down.join("empty").is_dir(), "the empty directory came down");

    let up = local.join("up");
    let ran = rclone(&fx, None, &["copy", up.to_str().unwrap(), "mf:up"]);
    assert!(ran.status.success(), "rclone copy up: {}\n{}", ran.stdout, ran.stderr);
    assert_eq!(tree_digest(&root.join("up")), tree_digest(&up), "copy up");
    for rel in ["eight.bin", "a/b/c/deep.bin", "empty.txt"] {
        let (l, r) = (fs::metadata(up.join(rel)).unwrap(), fs::metadata(root.join("up").join(rel)).unwrap());
        assert_eq!(r.mtime(), l.mtime(), "{rel}: rclone's modification time was not set");
    }

    for (a, b) in [(down.to_str().unwrap(), "mf:down"), (up.to_str().unwrap(), "mf:up")] {
        let ran = rclone(&fx, None, &["check", "--download", "--combined", "-", a, b]);
        assert!(ran.status.success(), "rclone check {a} {b}: {}\n{}", ran.stdout, ran.stderr);
        assert!(ran.stderr.contains("0 differences found"), "{}", ran.stderr);
    }
    // Same size, one byte changed on the server: check must see it.
    let victim = root.join("up/dir with space/mib-plus-3.bin");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[700_000] ^= 1;
    fs::write(&victim, bytes).unwrap();
    let ran = rclone(&fx, None, &["check", "--download", "--combined", "-", up.to_str().unwrap(), "mf:up"]);
    assert!(!ran.status.success(), "check missed a changed byte: {}", ran.stderr);
    assert!(ran.stderr.contains("1 differences found"), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.lines().any(|l| l == "* dir with space/mib-plus-3.bin"), "{}", ran.stdout);
    assert!(fx.server.wait_log("sftp login up", Duration::from_secs(5)), "{}", fx.server.log());
}

/// rclone with a key file (public-key login).
#[test]
fn rclone_with_a_key() {
    if !have_tools(&["rclone", "ssh-keygen"]) {
        return;
    }
    let fx = start("sftp-rclone-key", &[]);
    let id = fx.dir.join("id");
    let ran = run(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "t", "-f"]).arg(&id),
        Duration::from_secs(10),
    );
    assert!(ran.status.success(), "ssh-keygen: {}", ran.stderr);
    fs::copy(id.with_extension("pub"), fx.dir.join("keys").join(format!("{UP_USER}.keys"))).unwrap();
    fx.server.signal(libc::SIGHUP);
    assert!(fx.server.wait_log("SIGHUP: --authorized-keys", Duration::from_secs(5)), "{}", fx.server.log());
    fs::write(fx.root().join("k.bin"), pattern(3 << 20, 41)).unwrap();
    fs::write(fx.local().join("u.bin"), pattern((1 << 20) + 9, 42)).unwrap();
    let got = fx.local().join("got");
    let ran = rclone(&fx, Some(&id), &["copy", "mf:k.bin", got.to_str().unwrap()]);
    assert!(ran.status.success(), "rclone copy by key: {}\n{}", ran.stdout, ran.stderr);
    assert_eq!(sha(&got.join("k.bin")), sha(&fx.root().join("k.bin")));
    let ran = rclone(&fx, Some(&id), &["copyto", fx.local().join("u.bin").to_str().unwrap(), "mf:u.bin"]);
    assert!(ran.status.success(), "rclone copyto by key: {}\n{}", ran.stdout, ran.stderr);
    assert_eq!(sha(&fx.root().join("u.bin")), sha(&fx.local().join("u.bin")));
    // Another key is refused.
    let other = fx.dir.join("other");
    let ran = run(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "o", "-f"]).arg(&other),
        Duration::from_secs(10),
    );
    assert!(ran.status.success());
    let ran = rclone(&fx, Some(&other), &["lsf", "mf:"]);
    assert!(!ran.status.success(), "an unlisted key listed the root: {}", ran.stdout);
}

// ---------------------------------------------------------------------------
// paramiko
// ---------------------------------------------------------------------------

const SETSTAT_SCRIPT: &str = r#"
port, user, pw, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = sftp(login(port, user, pw))
# SETSTAT by path
s.truncate('f.bin', 1000)
print('size=%d' % s.stat('f.bin').st_size)
s.truncate('f.bin', 5000)
print('grown=%d' % s.stat('f.bin').st_size)
s.chmod('f.bin', 0o640)
print('mode=%o' % (s.stat('f.bin').st_mode & 0o777))
s.utime('f.bin', (1000000000, 1234567890))
st = s.stat('f.bin')
print('mtime=%d' % st.st_mtime)
# FSETSTAT on an open handle
with s.open('g.bin', 'r+') as f:
    f.truncate(10)
    f.chmod(0o600)
    f.utime((5, 6))
    print('fsize=%d' % f.stat().st_size)
# statvfs@openssh.com: the reply's fields against the root's own statvfs
t, msg = s._request(paramiko.sftp.CMD_EXTENDED, 'statvfs@openssh.com', '.')
print('statvfs_type=%d' % t)
f = [msg.get_int64() for _ in range(11)]
v = os.statvfs(root)
print('bsize=%d,%d' % (f[0], v.f_bsize))
print('blocks=%d,%d' % (f[2], v.f_blocks))
print('namemax=%d,%d' % (f[10], v.f_namemax))
print('free_close=%d' % (abs(f[4] - v.f_bavail) * v.f_frsize < (64 << 20)))
# plain RENAME does not replace; posix-rename does
try:
    s.rename('a.txt', 'b.txt')
    print('rename_over=ok')
except IOError as e:
    print('rename_over=refused')
s.posix_rename('a.txt', 'b.txt')
print('posix_rename=ok')
s.posix_rename('b.txt', 'c/moved.txt')
print('posix_rename_dir=ok')
print('done=1')
"#;

/// paramiko: chmod, utime and truncate by path (SETSTAT) and by handle
/// (FSETSTAT), statvfs@openssh.com equal to the root's statvfs, and
/// posix-rename replacing a file where RENAME refuses.
#[test]
fn paramiko_setstat_statvfs_posix_rename() {
    let Some(py) = paramiko() else { return };
    let fx = start("sftp-paramiko", &[]);
    let root = fx.root();
    fs::write(root.join("f.bin"), pattern(4096, 51)).unwrap();
    fs::set_permissions(root.join("f.bin"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(root.join("g.bin"), pattern(4096, 52)).unwrap();
    fs::write(root.join("a.txt"), b"aaa").unwrap();
    fs::write(root.join("b.txt"), b"bb").unwrap();
    fs::create_dir(root.join("c")).unwrap();
    let args = [fx.sftp.port().to_string(), UP_USER.into(), UP_PASS.into(), root.display().to_string()];
    let ran = python(&py, &fx.dir, SETSTAT_SCRIPT, &args, Duration::from_secs(60));
    assert!(ran.status.success(), "paramiko script failed:\n{}\n{}", ran.stdout, ran.stderr);
    let v = values(&ran.stdout);
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or_else(|| panic!("no {k} in {}", ran.stdout));
    assert_eq!(get("done"), "1");
    assert_eq!(get("mode"), "640");
    // The served atime is the mtime (`Stat` has none); the disk has both, below.
    assert_eq!(get("mtime"), "1234567890");
    assert_eq!(get("size"), "1000");
    assert_eq!(get("grown"), "5000");
    assert_eq!(get("fsize"), "10");
    assert_eq!(get("statvfs_type"), "201", "statvfs answered with EXTENDED_REPLY");
    for k in ["bsize", "blocks", "namemax"] {
        let (a, b) = get(k).split_once(',').unwrap();
        assert_eq!(a, b, "statvfs {k}: served vs local");
    }
    assert_eq!(get("free_close"), "1");
    assert_eq!(get("rename_over"), "refused", "SFTP v3 RENAME replaced an existing file");
    // On disk: each change really happened.
    let f = fs::metadata(root.join("f.bin")).unwrap();
    assert_eq!(f.permissions().mode() & 0o777, 0o640);
    assert_eq!((f.atime(), f.mtime(), f.len()), (1_000_000_000, 1_234_567_890, 5000));
    assert_eq!(&fs::read(root.join("f.bin")).unwrap()[..1000], &pattern(4096, 51)[..1000]);
    assert!(fs::read(root.join("f.bin")).unwrap()[1000..].iter().all(|&b| b == 0), "grown with zeros");
    let g = fs::metadata(root.join("g.bin")).unwrap();
    assert_eq!((g.len(), g.permissions().mode() & 0o777, g.atime(), g.mtime()), (10, 0o600, 5, 6));
    assert!(!root.join("a.txt").exists() && !root.join("b.txt").exists());
    assert_eq!(fs::read(root.join("c/moved.txt")).unwrap(), b"aaa", "posix-rename replaced b.txt with a.txt");
    assert!(fx.server.wait_log("POSIX-RENAME", Duration::from_secs(5)), "{}", fx.server.log());
}

/// Files partly in the page cache (every other 64 KiB + 1000 bytes cached):
/// a RWF_NOWAIT read stops where the cache does, and the reply must still be
/// whole (rclone takes a short DATA for the end of the file).
#[test]
fn rclone_reads_partly_cached_files_whole() {
    if !have_tools(&["rclone"]) {
        return;
    }
    let fx = start("sftp-rclone-partial", &[]);
    let mut want = Vec::new();
    for i in 0..4u64 {
        let name = format!("p{i}.bin");
        let path = fx.root().join(&name);
        fs::write(&path, pattern(6 << 20, 60 + i)).unwrap();
        crate::disk::make_cold(&path);
        let f = fs::File::open(&path).unwrap();
        // No readahead: only what is read here gets cached.
        // SAFETY: posix_fadvise on a descriptor this test owns.
        let rc = unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, libc::POSIX_FADV_RANDOM) };
        assert_eq!(rc, 0);
        let mut buf = vec![0u8; (64 << 10) + 1000];
        for at in (0..(6u64 << 20)).step_by(128 << 10) {
            std::os::unix::fs::FileExt::read_at(&f, &mut buf, at).unwrap();
        }
        want.push(name);
    }
    let got = fx.local().join("got");
    let ran = rclone(&fx, None, &["copy", "mf:", got.to_str().unwrap()]);
    assert!(ran.status.success(), "rclone copy: {}\n{}", ran.stdout, ran.stderr);
    for name in &want {
        assert_eq!(sha(&got.join(name)), sha(&fx.root().join(name)), "{name}");
        crate::disk::make_cold(&got.join(name));
    }
    let ran = rclone(&fx, None, &["check", "--download", "--combined", "-", got.to_str().unwrap(), "mf:"]);
    assert!(ran.status.success(), "rclone check: {}\n{}", ran.stdout, ran.stderr);
}
