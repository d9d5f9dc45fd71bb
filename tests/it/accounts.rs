//! Accounts and permissions: `--users` logins (Argon2id and SHA-512 crypt
//! hashes), the per-folder `--rules` matrix (users × folders × operations,
//! each reply code and its effect on disk), account homes as jails,
//! `--deny`, `--no-anonymous`, delayed failures, bans, and password checks
//! kept off the reactor. Also holds the account fixtures and upload helpers
//! that `uploads.rs` and `interop_upload.rs` share.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::{Ctl, MIB, expect, ls_names, pattern, put};
use crate::util::{Ftp, Server, TempDir, temp_dir};

// ---------------------------------------------------------------------------
// Shared fixtures (also used by uploads.rs and interop_upload.rs)
// ---------------------------------------------------------------------------

/// SHA-512 crypt of `bob-pw` (`openssl passwd -6 -salt bobsaltbob bob-pw`).
pub(crate) const BOB_HASH: &str =
    "$6$bobsaltbob$1voJs.BIewiOJKE5itBio2QXwgDRSh5UOWrKvzsfkXkdkf28Usy5o50oMobIqH3hGsFYvvR4iIGaopmQ4ycZo1";
/// SHA-512 crypt of `carol-pw` with 1000 rounds
/// (`openssl passwd -6 -salt 'rounds=1000$carolsalt' carol-pw`).
pub(crate) const CAROL_HASH: &str =
    "$6$rounds=1000$carolsalt$SHlmbph2NhWaZGfxnyzDjRo0CNApqd.3YlVMObsKgcUHXU2CfInbpJY2HDhsfK/tuUbg2K7pAtTKVRezK2ZPW0";
/// SHA-512 crypt of `up-pw` (`openssl passwd -6 -salt upsaltup up-pw`): the
/// uploader account of `up_fx`.
pub(crate) const UP_HASH: &str =
    "$6$upsaltup$FnkndyD7jG57IOabqhn3GZESo5VmUJd6Oz4czZda3bucGJrjQiAjjZ.xTCQyEfSZOpCO8.bFf6f2YEeAtVPyA1";
/// The uploader account: all permissions, home = the root.
pub(crate) const UP_USER: &str = "up";
pub(crate) const UP_PASS: &str = "up-pw";

/// The Argon2id hash `mirrorftpd passwd` prints for `password` (made once
/// per password and test run).
pub(crate) fn argon2id(password: &str) -> String {
    static CACHE: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = cache.get(password) {
        return h.clone();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mirrorftpd passwd");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("writing the password");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting for mirrorftpd passwd").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("mirrorftpd passwd did not finish within 20 s");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("mirrorftpd passwd output");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && hash.starts_with("$argon2id$"),
        "mirrorftpd passwd: {} {hash:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    cache.insert(password.to_string(), hash.clone());
    hash
}

/// A server with accounts. Fields drop in order: the server is killed
/// before its directories are removed.
pub(crate) struct AcctFx {
    pub server: Server,
    pub root: TempDir,
    /// Holds the users and rules files (outside the served root); kept
    /// only so that they live as long as the server.
    #[allow(dead_code)]
    pub etc: TempDir,
}

/// One line of the users file: name, hash, home relative to the root ("" is
/// the root itself; created if missing), permissions.
pub(crate) type UserLine<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Creates a root filled by `fill`, a users file with `users`, a rules file
/// when `rules` is given, and starts the server with `args` after them.
pub(crate) fn acct_fx(
    name: &str,
    users: &[UserLine<'_>],
    rules: Option<&str>,
    args: &[&str],
    fill: impl FnOnce(&Path),
) -> AcctFx {
    let root = temp_dir(name);
    let etc = temp_dir(&format!("{name}-etc"));
    fill(&root);
    let mut text = String::from("# name:hash:home:permissions\n");
    for &(user, hash, home, perms) in users {
        let home = root.join(home);
        fs::create_dir_all(&home).unwrap_or_else(|e| panic!("mkdir {}: {e}", home.display()));
        text.push_str(&format!("{user}:{hash}:{}:{perms}\n", home.display()));
    }
    let users_file = etc.join("users.txt");
    fs::write(&users_file, text).expect("writing the users file");
    let users_arg = users_file.to_string_lossy().into_owned();
    let mut all: Vec<&str> = vec!["--users", &users_arg];
    let rules_arg;
    if let Some(rules) = rules {
        let path = etc.join("rules.txt");
        fs::write(&path, rules).expect("writing the rules file");
        rules_arg = path.to_string_lossy().into_owned();
        all.extend(["--rules", &rules_arg]);
    }
    all.extend_from_slice(args);
    let server = Server::start(&root, &all);
    AcctFx { server, root, etc }
}

/// A server with the one uploader account `up` (all permissions, home = root).
pub(crate) fn up_fx(name: &str, args: &[&str], fill: impl FnOnce(&Path)) -> AcctFx {
    acct_fx(name, &[(UP_USER, UP_HASH, "", "all")], None, args, fill)
}

/// Logs in as `user` (331 then 230) and switches to TYPE I.
#[track_caller]
pub(crate) fn login_as(server: &Server, user: &str, password: &str) -> Ftp {
    let mut ftp = Ftp::connect(server.addr);
    expect(&mut ftp, &format!("USER {user}"), 331);
    expect(&mut ftp, &format!("PASS {password}"), 230);
    expect(&mut ftp, "TYPE I", 200);
    ftp
}

/// The uploader of `up_fx`, logged in.
#[track_caller]
pub(crate) fn login_up(server: &Server) -> Ftp {
    login_as(server, UP_USER, UP_PASS)
}

/// EPSV, a data connection with read and write timeouts, then `cmd`. The
/// stream and the reply to `cmd` (150 when the upload may go on).
pub(crate) fn start_upload(ftp: &mut Ftp, cmd: &str) -> (TcpStream, (u16, String)) {
    start_upload_at(ftp, None, cmd)
}

/// `start_upload` with `REST offset` (350) between EPSV and `cmd`, in the
/// order clients send them (ftplib, curl, FileZilla: EPSV, REST, STOR).
pub(crate) fn start_upload_at(ftp: &mut Ftp, rest: Option<u64>, cmd: &str) -> (TcpStream, (u16, String)) {
    let data = ftp.pasv_connect();
    data.set_write_timeout(Some(Duration::from_secs(10))).expect("set_write_timeout");
    data.set_nodelay(true).expect("nodelay");
    if let Some(off) = rest {
        expect(ftp, &format!("REST {off}"), 350);
    }
    let r = ftp.cmd(cmd);
    (data, r)
}

/// Uploads `bytes` with `cmd` (STOR, APPE, STOU ...) over EPSV and closes the
/// data connection. Ok: the text of the 150 reply, once 226 came. Err: the
/// reply that was not 150, or the final reply if it was not 226. A write
/// the server cuts short is not an error here: its reply says what happened.
pub(crate) fn upload(ftp: &mut Ftp, cmd: &str, bytes: &[u8]) -> Result<String, (u16, String)> {
    upload_at(ftp, None, cmd, bytes)
}

/// `upload` with `REST offset` sent right before `cmd`.
pub(crate) fn upload_at(ftp: &mut Ftp, rest: Option<u64>, cmd: &str, bytes: &[u8]) -> Result<String, (u16, String)> {
    let (mut data, start) = start_upload_at(ftp, rest, cmd);
    if start.0 != 150 {
        return Err(start);
    }
    let _ = data.write_all(bytes);
    drop(data);
    let done = ftp.reply();
    if done.0 != 226 {
        return Err(done);
    }
    Ok(start.1)
}

/// The reply code an `upload` ended with: 226 on success.
pub(crate) fn upload_code(ftp: &mut Ftp, cmd: &str, bytes: &[u8]) -> u16 {
    upload_code_at(ftp, None, cmd, bytes)
}

/// The reply code an `upload_at` ended with: 226 on success.
pub(crate) fn upload_code_at(ftp: &mut Ftp, rest: Option<u64>, cmd: &str, bytes: &[u8]) -> u16 {
    match upload_at(ftp, rest, cmd, bytes) {
        Ok(_) => 226,
        Err((code, _)) => code,
    }
}

/// Permission bits of `path` (no file type).
pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).permissions().mode() & 0o7777
}

/// Modification time of `path`, in seconds.
pub(crate) fn mtime_of(path: &Path) -> i64 {
    fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).mtime()
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes to the process's stderr directly (the harness captures `eprintln!`).
pub(crate) fn skipped_loudly(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED-LOUDLY: {what}");
}

// ---------------------------------------------------------------------------
// The permission matrix
// ---------------------------------------------------------------------------

pub(crate) const ALICE: &str = "alice-pw";

/// The rules under test (see src/auth/rules.rs for the precedence).
pub(crate) const RULES: &str = "\
# who       perms                   folder
*           readonly                /pub
*           none                    /private
*           list,read,write         /incoming
alice       all                     /incoming/alice
anonymous   list                    /incoming
anonymous   all                     /drop
bob         list,read,write,delete  /drop
carol       list,read,append        /logs
*           list,read,write,-settime /fixed
";

/// Who logs in for the matrix, in the column order of `EXPECTED`.
pub(crate) const SESSIONS: [&str; 4] = ["alice", "bob", "carol", "anonymous"];

/// What each session may do in each folder, worked out by hand from RULES
/// and the accounts (alice all, bob readonly, carol list,read,write,append,
/// anonymous readonly): the longest folder prefix wins, a user rule beats an
/// `anonymous` rule beats `*`, a rule replaces the account's own permissions,
/// and anonymous sessions never write.
pub(crate) const EXPECTED: [(&str, [&str; 4]); 10] = [
    ("/", ["all", "readonly", "list,read,write,append", "readonly"]),
    ("/pub", ["readonly", "readonly", "readonly", "readonly"]),
    ("/pub/sub", ["readonly", "readonly", "readonly", "readonly"]),
    // "/pub" covers "/pub/sub", never "/public".
    ("/public", ["all", "readonly", "list,read,write,append", "readonly"]),
    ("/private", ["none", "none", "none", "none"]),
    // The `*` rule replaces: bob gains write, alice and carol lose the rest.
    ("/incoming", ["list,read,write", "list,read,write", "list,read,write", "list"]),
    ("/incoming/alice", ["all", "list,read,write", "list,read,write", "list"]),
    // `anonymous all` is cut to what anonymous may do: list,read.
    ("/drop", ["all", "list,read,write,delete", "list,read,write,append", "readonly"]),
    ("/logs", ["all", "readonly", "list,read,append", "readonly"]),
    // `write` grants settime unless `-settime` takes it away.
    ("/fixed", ["list,read,write,-settime", "list,read,write,-settime", "list,read,write,-settime", "readonly"]),
];

/// Whether the permission list `perms` (as in the users file) holds `word`:
/// left to right, `write` grants `settime` too, `-word` takes a word away.
pub(crate) fn has(perms: &str, word: &str) -> bool {
    perms.split(',').fold(false, |on, w| match w {
        "all" => true,
        "readonly" => on || word == "list" || word == "read",
        "write" if word == "settime" => true,
        w if w.strip_prefix('-') == Some(word) => false,
        w => on || w == word,
    })
}

/// Local path of `name` in the virtual `folder`.
pub(crate) fn local(root: &Path, folder: &str, name: &str) -> PathBuf {
    root.join(folder.trim_start_matches('/')).join(name)
}

/// Virtual path of `name` in `folder`.
pub(crate) fn vpath(folder: &str, name: &str) -> String {
    if folder == "/" { format!("/{name}") } else { format!("{folder}/{name}") }
}

/// For every folder: `f.txt`, and per session a file or directory for each
/// operation that changes something, so no two checks touch the same name.
pub(crate) fn fill_matrix(root: &Path) {
    for (folder, _) in EXPECTED {
        fs::create_dir_all(local(root, folder, "")).expect("mkdir folder");
        put(root, &vpath(folder, "f.txt")[1..], format!("content of {folder}/f.txt").as_bytes());
        for who in SESSIONS {
            for op in ["app", "del", "ren", "mt", "ch"] {
                let p = local(root, folder, &format!("{op}-{who}.txt"));
                fs::write(&p, op).expect("write");
                set_mode(&p, 0o644);
            }
            fs::create_dir(local(root, folder, &format!("rmd-{who}"))).expect("mkdir rmd");
            let mt = local(root, folder, &format!("mt-{who}.txt"));
            crate::protocol::set_mtime(&mt, 1_000_000_000);
        }
    }
}

/// Runs every operation for session `who` (permissions `perms`) in `folder`
/// and records each mismatch with the command, the reply and the expectation.
fn check_folder(ftp: &mut Ftp, root: &Path, who: &str, folder: &str, perms: &str, bad: &mut Vec<String>) {
    let mut check = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("{who} in {folder} [{perms}]: {what}"));
        }
    };
    let code = |allowed: bool, yes: u16| if allowed { yes } else { 550 };
    let path = |name: &str| vpath(folder, name);
    let file = |name: &str| local(root, folder, name);

    // LIST
    let want = code(has(perms, "list"), 150);
    let mut data = ftp.pasv_connect();
    let r = ftp.cmd(&format!("LIST {folder}"));
    if r.0 == 150 {
        let mut bytes = Vec::new();
        let _ = data.read_to_end(&mut bytes);
        let done = ftp.reply();
        let names = ls_names(&bytes);
        check(done.0 == 226 && names.iter().any(|n| n == b"f.txt"), format!("LIST: {done:?}, names {names:?}"));
    }
    check(r.0 == want, format!("LIST {folder} -> {r:?}, expected {want}"));
    drop(data);

    // RETR
    let want = code(has(perms, "read"), 150);
    let mut data = ftp.pasv_connect();
    let r = ftp.cmd(&format!("RETR {}", path("f.txt")));
    if r.0 == 150 {
        let mut bytes = Vec::new();
        let _ = data.read_to_end(&mut bytes);
        let done = ftp.reply();
        let want_bytes = format!("content of {folder}/f.txt");
        check(done.0 == 226 && bytes == want_bytes.as_bytes(), format!("RETR data {:?} then {done:?}", bytes.len()));
    }
    check(r.0 == want, format!("RETR f.txt -> {r:?}, expected {want}"));
    drop(data);

    // STOR a new file
    let name = format!("new-{who}.txt");
    let allowed = has(perms, "write");
    let got = upload_code(ftp, &format!("STOR {}", path(&name)), b"stored");
    check(got == code(allowed, 226), format!("STOR {name} -> {got}, expected {}", code(allowed, 226)));
    let on_disk = fs::read(file(&name)).ok();
    check(on_disk == allowed.then(|| b"stored".to_vec()), format!("after STOR {name}: on disk {on_disk:?}"));

    // APPE to an existing file: append or write
    let name = format!("app-{who}.txt");
    let allowed = has(perms, "append") || has(perms, "write");
    let got = upload_code(ftp, &format!("APPE {}", path(&name)), b"+more");
    check(got == code(allowed, 226), format!("APPE {name} -> {got}, expected {}", code(allowed, 226)));
    let want_bytes: &[u8] = if allowed { b"app+more" } else { b"app" };
    let on_disk = fs::read(file(&name)).unwrap_or_default();
    check(on_disk == want_bytes, format!("after APPE {name}: on disk {:?}", String::from_utf8_lossy(&on_disk)));

    // DELE
    let name = format!("del-{who}.txt");
    let allowed = has(perms, "delete");
    let r = ftp.cmd(&format!("DELE {}", path(&name)));
    check(r.0 == code(allowed, 250), format!("DELE {name} -> {r:?}, expected {}", code(allowed, 250)));
    check(file(&name).exists() != allowed, format!("after DELE {name}: exists = {}", file(&name).exists()));

    // MKD
    let name = format!("mkd-{who}");
    let allowed = has(perms, "mkdir");
    let r = ftp.cmd(&format!("MKD {}", path(&name)));
    check(r.0 == code(allowed, 257), format!("MKD {name} -> {r:?}, expected {}", code(allowed, 257)));
    if allowed {
        let quoted = format!("\"{}\"", path(&name));
        check(r.1.starts_with(&quoted), format!("MKD reply {:?} does not start with {quoted}", r.1));
    }
    check(file(&name).is_dir() == allowed, format!("after MKD {name}: is_dir = {}", file(&name).is_dir()));

    // RMD of an empty directory
    let name = format!("rmd-{who}");
    let allowed = has(perms, "rmdir");
    let r = ftp.cmd(&format!("RMD {}", path(&name)));
    check(r.0 == code(allowed, 250), format!("RMD {name} -> {r:?}, expected {}", code(allowed, 250)));
    check(file(&name).exists() != allowed, format!("after RMD {name}: exists = {}", file(&name).exists()));

    // RNFR/RNTO
    let (from, to) = (format!("ren-{who}.txt"), format!("renamed-{who}.txt"));
    let allowed = has(perms, "rename");
    let r = ftp.cmd(&format!("RNFR {}", path(&from)));
    check(r.0 == code(allowed, 350), format!("RNFR {from} -> {r:?}, expected {}", code(allowed, 350)));
    let r = ftp.cmd(&format!("RNTO {}", path(&to)));
    // Without an accepted RNFR there is nothing to rename: 503.
    let want = if allowed { 250 } else { 503 };
    check(r.0 == want, format!("RNTO {to} -> {r:?}, expected {want}"));
    check(
        file(&from).exists() != allowed && file(&to).exists() == allowed,
        format!("after RNFR/RNTO: {from} exists = {}, {to} exists = {}", file(&from).exists(), file(&to).exists()),
    );

    // MFMT
    let name = format!("mt-{who}.txt");
    let allowed = has(perms, "settime");
    let r = ftp.cmd(&format!("MFMT 20200102030405 {}", path(&name)));
    check(r.0 == code(allowed, 213), format!("MFMT {name} -> {r:?}, expected {}", code(allowed, 213)));
    let want = if allowed { 1_577_934_245 } else { 1_000_000_000 };
    let got = mtime_of(&file(&name));
    check(got == want, format!("after MFMT {name}: mtime {got}, expected {want}"));

    // SITE CHMOD needs write
    let name = format!("ch-{who}.txt");
    let allowed = has(perms, "write");
    let r = ftp.cmd(&format!("SITE CHMOD 600 {}", path(&name)));
    check(r.0 == code(allowed, 200), format!("SITE CHMOD {name} -> {r:?}, expected {}", code(allowed, 200)));
    let want = if allowed { 0o600 } else { 0o644 };
    let got = mode_of(&file(&name));
    check(got == want, format!("after SITE CHMOD {name}: mode {got:o}, expected {want:o}"));
}

#[test]
fn permission_matrix_users_folders_operations() {
    let alice = argon2id(ALICE);
    let users = [
        ("alice", alice.as_str(), "", "all"),
        ("bob", BOB_HASH, "", "readonly"),
        ("carol", CAROL_HASH, "", "list,read,write,append"),
    ];
    let f = acct_fx("acct-matrix", &users, Some(RULES), &[], fill_matrix);
    let mut bad = Vec::new();
    for (col, who) in SESSIONS.iter().enumerate() {
        let mut ftp = match *who {
            "anonymous" => {
                let mut ftp = Ftp::connect(f.server.addr);
                ftp.login_anon();
                ftp
            }
            "alice" => login_as(&f.server, "alice", ALICE),
            "bob" => login_as(&f.server, "bob", "bob-pw"),
            _ => login_as(&f.server, "carol", "carol-pw"),
        };
        for (folder, perms) in EXPECTED {
            check_folder(&mut ftp, &f.root, who, folder, perms[col], &mut bad);
        }
        expect(&mut ftp, "NOOP", 200);
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn rename_needs_the_permission_at_both_ends() {
    let users = [("carol", CAROL_HASH, "", "all")];
    let f = acct_fx("acct-rename-ends", &users, Some(RULES), &[], |r| {
        put(r, "a.txt", b"a");
        put(r, "pub/b.txt", b"b");
        fs::create_dir(r.join("logs")).expect("mkdir");
    });
    let mut ftp = login_as(&f.server, "carol", "carol-pw");
    // Into a read-only folder: RNFR is fine at the source, RNTO is refused.
    expect(&mut ftp, "RNFR /a.txt", 350);
    expect(&mut ftp, "RNTO /pub/a.txt", 550);
    assert!(f.root.join("a.txt").exists() && !f.root.join("pub/a.txt").exists());
    // Out of a read-only folder: RNFR is refused.
    expect(&mut ftp, "RNFR /pub/b.txt", 550);
    expect(&mut ftp, "RNTO /b.txt", 503);
    assert!(f.root.join("pub/b.txt").exists() && !f.root.join("b.txt").exists());
    // Between two folders that both allow it.
    expect(&mut ftp, "RNFR /a.txt", 350);
    expect(&mut ftp, "RNTO /c.txt", 250);
    assert_eq!(fs::read(f.root.join("c.txt")).expect("c.txt"), b"a");
    // /logs gives carol append without write: REST+STOR resumes (appending)
    // and is allowed; a plain STOR (overwrite) is not.
    fs::write(f.root.join("logs/log.txt"), b"0123").expect("write");
    assert_eq!(upload_code_at(&mut ftp, Some(4), "STOR /logs/log.txt", b"4567"), 226, "REST 4 + STOR, append only");
    assert_eq!(upload_code(&mut ftp, "STOR /logs/log.txt", b"gone"), 550, "STOR over a file with append only");
    assert_eq!(fs::read(f.root.join("logs/log.txt")).expect("log.txt"), b"01234567");
}

#[test]
fn account_home_is_the_sessions_root() {
    let users = [("dave", BOB_HASH, "homes/dave", "all")];
    let f = acct_fx("acct-home", &users, None, &[], |r| {
        put(r, "secret.txt", b"not for dave");
        put(r, "homes/dave/mine.txt", b"dave's");
    });
    let mut ftp = login_as(&f.server, "dave", "bob-pw");
    assert_eq!(ftp.cmd("PWD"), (257, "\"/\" is the current directory.".to_string()));
    let names = ls_names(&ftp.list("LIST"));
    assert_eq!(names, vec![b"mine.txt".to_vec()], "dave sees his home as /");
    assert_eq!(ftp.retr_bytes("/mine.txt").expect("RETR mine.txt"), b"dave's");
    for p in ["/secret.txt", "../secret.txt", "/../../secret.txt"] {
        let r = ftp.retr_bytes(p);
        assert_eq!(r.as_ref().map_err(|e| e.0), Err(550), "RETR {p}: {r:?}");
    }
    assert_eq!(upload_code(&mut ftp, "STOR /new.txt", b"n"), 226);
    assert_eq!(fs::read(f.root.join("homes/dave/new.txt")).expect("new.txt in dave's home"), b"n");
    assert!(!f.root.join("new.txt").exists(), "the upload stays in the home");
}

// ---------------------------------------------------------------------------
// Logins: failures, bans, --no-anonymous, off-reactor verification
// ---------------------------------------------------------------------------

/// USER + PASS on a raw control connection; the reply to PASS and how long
/// it took.
fn timed_login(c: &mut Ctl, user: &str, password: &str) -> ((u16, String), Duration) {
    let r = c.cmd(&format!("USER {user}"));
    assert_eq!(r.0, 331, "USER {user}: {r:?}");
    let t = Instant::now();
    let r = c.cmd(&format!("PASS {password}"));
    (r, t.elapsed())
}

/// The connection was closed by the server (EOF or reset) within 5 s.
fn closed(c: &mut Ctl) -> bool {
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    match c.reply() {
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
        Ok(_) => false,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn failed_logins_are_delayed_and_unknown_users_look_the_same() {
    let alice = argon2id(ALICE);
    let f = acct_fx("acct-delay", &[("alice", &alice, "", "all")], None, &["--ban-after", "0"], |_| {});
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut c = Ctl::open(f.server.addr);
        let (r, t) = timed_login(&mut c, "alice", "wrong");
        assert_eq!(r, (530, "Login incorrect.".to_string()), "wrong password");
        known.push(t);
        let mut c = Ctl::open(f.server.addr);
        let (r2, t2) = timed_login(&mut c, "nosuchuser", "wrong");
        assert_eq!(r2, r, "an unknown user gets the same reply as a wrong password");
        unknown.push(t2);
    }
    for t in known.iter().chain(&unknown) {
        assert!(*t >= Duration::from_millis(400), "a failure answered after {t:?}: {known:?} {unknown:?}");
    }
    let (k, u) = (median(known.clone()), median(unknown.clone()));
    assert!(k < u * 3 && u < k * 3, "medians differ too much: wrong password {k:?}, unknown user {u:?}");
    // After the failures the right password still works.
    let mut c = Ctl::open(f.server.addr);
    assert_eq!(timed_login(&mut c, "alice", ALICE).0.0, 230);
}

#[test]
fn brute_force_closes_the_session_then_bans_the_address() {
    let f = acct_fx(
        "acct-ban",
        &[("bob", BOB_HASH, "", "readonly")],
        None,
        &["--ban-after", "5", "--ban-window", "60", "--ban-time", "30", "--max-login-attempts", "2"],
        |_| {},
    );
    // Failures 1 and 2: the first is 530 after the delay, the second closes with 421.
    let mut c = Ctl::open(f.server.addr);
    let (r, t) = timed_login(&mut c, "bob", "wrong1");
    assert_eq!(r.0, 530, "first failure: {r:?}");
    assert!(t >= Duration::from_millis(400), "530 after {t:?}, expected a delay of at least 0.4 s");
    let (r, _) = timed_login(&mut c, "bob", "wrong2");
    assert_eq!(r.0, 421, "second failure in a session with --max-login-attempts 2: {r:?}");
    assert!(closed(&mut c), "the session is closed after its 421");
    // Failures 3 and 4 from a new session (still admitted).
    let mut c = Ctl::open(f.server.addr);
    assert_eq!(timed_login(&mut c, "bob", "wrong3").0.0, 530);
    assert_eq!(timed_login(&mut c, "nobody", "wrong4").0.0, 421);
    // Failure 5 reaches --ban-after.
    let mut c = Ctl::open(f.server.addr);
    let (r, _) = timed_login(&mut c, "bob", "wrong5");
    assert!(r.0 == 421 || r.0 == 530, "fifth failure: {r:?}");
    drop(c);
    // Now 127.0.0.1 is refused at connect, even with the right password.
    let mut c = Ctl::raw(f.server.addr);
    let r = c.reply().expect("a reply at connect");
    assert_eq!(r.0, 421, "a banned address must get 421 at connect: {r:?}");
    assert!(closed(&mut c), "the refused connection is closed");
}

#[test]
fn no_anonymous_refuses_anonymous_and_ftp() {
    let f = acct_fx("acct-noanon", &[("bob", BOB_HASH, "", "readonly")], None, &["--no-anonymous"], |r| {
        put(r, "f.txt", b"x")
    });
    for user in ["anonymous", "ftp", "ANONYMOUS"] {
        let mut c = Ctl::open(f.server.addr);
        let (r, t) = timed_login(&mut c, user, "guest@example.com");
        assert_eq!(r.0, 530, "USER {user} + PASS under --no-anonymous: {r:?}");
        assert!(t >= Duration::from_millis(400), "USER {user}: 530 after {t:?}, expected the failure delay");
        assert_eq!(c.cmd("RETR f.txt").0, 530, "still not logged in");
    }
    let mut ftp = login_as(&f.server, "bob", "bob-pw");
    assert_eq!(ftp.retr_bytes("f.txt").expect("bob reads"), b"x");
}

/// With one worker and one auth thread, bursts of argon2id logins (each
/// ~30-60 ms of CPU) must not stall other sessions: NOOPs and a 1 MiB RETR
/// keep being answered promptly. The PASS commands of a round are sent at
/// once, so a server that hashed on its reactor would stall for the whole
/// burst (8 × ~50 ms, well over the bound).
#[test]
fn logins_are_verified_off_the_reactor() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 3;
    let alice = argon2id(ALICE);
    let f = acct_fx(
        "acct-offreactor",
        &[("alice", &alice, "", "readonly")],
        None,
        &["--workers", "1", "--auth-threads", "1"],
        |r| put(r, "one.bin", &pattern(5, MIB as usize)),
    );
    let want = pattern(5, MIB as usize);
    let mut probe = Ftp::connect(f.server.addr);
    probe.login_anon();
    let burst = Arc::new(Barrier::new(CLIENTS));
    let pending = Arc::new(AtomicUsize::new(CLIENTS * ROUNDS));
    let addr = f.server.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (burst, pending) = (burst.clone(), pending.clone());
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut c = Ctl::open(addr);
                    assert_eq!(c.cmd("USER alice").0, 331);
                    burst.wait();
                    let r = c.cmd(&format!("PASS {ALICE}"));
                    assert_eq!(r.0, 230, "alice: {r:?}");
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let (mut noops, mut retrs, mut worst) = (0, 0, Duration::ZERO);
    let mut rtts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        let t = Instant::now();
        expect(&mut probe, "NOOP", 200);
        let rtt = t.elapsed();
        // Only round trips that ended with logins still in flight count.
        if pending.load(Ordering::SeqCst) > 0 {
            worst = worst.max(rtt);
            rtts.push(rtt);
            noops += 1;
            if noops % 20 == 0 {
                let t = Instant::now();
                assert!(probe.retr_bytes("one.bin").expect("RETR one.bin") == want, "RETR content");
                assert!(t.elapsed() < Duration::from_secs(2), "RETR of 1 MiB took {:?}", t.elapsed());
                retrs += 1;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    for c in clients {
        c.join().expect("a login client panicked");
    }
    assert!(pending.load(Ordering::SeqCst) == 0, "logins still pending after 20 s");
    eprintln!("off-reactor probe: {noops} NOOPs, worst {worst:?}, {retrs} RETRs");
    assert!(noops >= 10 && retrs >= 1, "too few probes while logins ran: {noops} NOOPs, {retrs} RETRs");
    // A reactor that hashed would hold most NOOPs for a good part of a burst
    // (8 × ~50 ms); off the reactor nearly all come back at once. A loaded
    // machine may deschedule the worker now and then, so the bound is on
    // the 90th percentile, with a looser one on the worst.
    rtts.sort();
    let p90 = rtts[rtts.len() * 9 / 10];
    assert!(p90 < Duration::from_millis(100), "NOOPs took {p90:?} (p90) while logins were verified ({noops} NOOPs)");
    assert!(worst < Duration::from_secs(2), "a NOOP took {worst:?} while logins were verified ({noops} NOOPs)");
}

// ---------------------------------------------------------------------------
// --deny
// ---------------------------------------------------------------------------

#[test]
fn deny_patterns_are_invisible_and_unreachable() {
    // --serve-dotfiles: the `.~tmp~*` pattern alone must hide `.~tmp~debian.iso`.
    let args = ["--deny", "*.part", "--deny", ".~tmp~*", "--serve-dotfiles"];
    let f = acct_fx("acct-deny", &[(UP_USER, UP_HASH, "", "all")], None, &args, |r| {
        put(r, "ok.txt", b"ok");
        put(r, "debian.iso.part", b"partial");
        put(r, ".~tmp~debian.iso", b"rsync temp");
        put(r, "dir.part/inner.txt", b"inner");
    });
    let mut ftp = login_up(&f.server);
    let hidden = ["debian.iso.part", ".~tmp~debian.iso", "dir.part"];
    for cmd in ["LIST", "LIST -a", "NLST", "NLST -a", "MLSD"] {
        let text = String::from_utf8_lossy(&ftp.list(cmd)).into_owned();
        assert!(text.contains("ok.txt"), "{cmd}: {text:?}");
        for h in hidden {
            assert!(!text.contains(h), "{cmd} shows the denied name {h}: {text:?}");
        }
    }
    for p in ["debian.iso.part", ".~tmp~debian.iso", "dir.part/inner.txt"] {
        let r = ftp.retr_bytes(p);
        assert_eq!(r.as_ref().map_err(|e| e.0), Err(550), "RETR {p}: {r:?}");
        for cmd in ["SIZE", "MDTM", "DELE"] {
            assert_eq!(ftp.cmd(&format!("{cmd} {p}")).0, 550, "{cmd} {p}");
        }
    }
    assert_eq!(ftp.cmd("CWD dir.part").0, 550, "CWD into a denied directory");
    for p in ["new.part", ".~tmp~new", "dir.part/new.txt"] {
        assert_eq!(upload_code(&mut ftp, &format!("STOR {p}"), b"x"), 550, "STOR {p}");
        assert!(!f.root.join(p).exists(), "STOR {p} left a file");
    }
    assert_eq!(ftp.cmd("MKD made.part").0, 550);
    assert!(!f.root.join("made.part").exists());
    expect(&mut ftp, "RNFR ok.txt", 350);
    assert_eq!(ftp.cmd("RNTO ok.txt.part").0, 550, "RNTO to a denied name");
    assert!(f.root.join("ok.txt").exists() && !f.root.join("ok.txt.part").exists());
    // Nothing was deleted or changed.
    assert_eq!(fs::read(f.root.join("debian.iso.part")).expect("kept"), b"partial");
    assert_eq!(fs::read(f.root.join(".~tmp~debian.iso")).expect("kept"), b"rsync temp");
    assert_eq!(fs::read(f.root.join("dir.part/inner.txt")).expect("kept"), b"inner");
}
