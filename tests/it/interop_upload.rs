//! Upload interop: real clients (curl, lftp, Python's ftplib) upload into
//! an account, and what lands on disk must match the source byte for byte.
//!
//! A missing client fails the test when `CI` is set and is skipped loudly
//! otherwise (`util::require_tool`); every run has a deadline (`util::run`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::accounts::{AcctFx, UP_HASH, UP_PASS, UP_USER, acct_fx, mtime_of, up_fx};
use crate::protocol::{MIB, pattern, put, set_mtime};
use crate::util::{BIG_FILE, TREE_FILES, file_digest, require_tool, run_ok, temp_dir, tree_digest};

/// Deadline for one client run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// `--user` value for curl.
fn curl_user() -> String {
    format!("{UP_USER}:{UP_PASS}")
}

/// A source file of `len` patterned bytes in a fresh directory.
fn source(dir: &Path, name: &str, seed: u64, len: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, pattern(seed, len)).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

#[test]
fn curl_upload_and_resume() {
    if !require_tool("curl") {
        return;
    }
    let f: AcctFx = up_fx("iu-curl", &[], |r| fs::create_dir(r.join("up")).expect("mkdir"));
    let src_dir = temp_dir("iu-curl-src");
    let src = source(&src_dir, "file.bin", 21, 3 * MIB as usize + 17);
    run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "50", "--user", &curl_user(), "-T"])
            .arg(&src)
            .arg(f.server.url("up/file.bin")),
        TOOL_TIMEOUT,
    );
    assert_eq!(file_digest(&f.root.join("up/file.bin")), file_digest(&src), "curl -T");
    // Resume: the server holds the first third; curl -C - asks SIZE and appends the rest.
    let bytes = fs::read(&src).expect("source");
    put(&f.root, "up/resume.bin", &bytes[..bytes.len() / 3]);
    let ran = run_ok(
        Command::new("curl")
            .args(["-sS", "-v", "--max-time", "50", "--user", &curl_user(), "-C", "-", "-T"])
            .arg(&src)
            .arg(f.server.url("up/resume.bin")),
        TOOL_TIMEOUT,
    );
    assert_eq!(file_digest(&f.root.join("up/resume.bin")), file_digest(&src), "curl -C - -T");
    assert!(ran.stderr.contains("APPE"), "curl resumed without APPE?\n{}", ran.stderr);
}

#[test]
fn curl_ftp_create_dirs() {
    if !require_tool("curl") {
        return;
    }
    let f = up_fx("iu-curl-dirs", &[], |_| {});
    let src_dir = temp_dir("iu-curl-dirs-src");
    let src = source(&src_dir, "deep.bin", 22, 100_000);
    run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "50", "--user", &curl_user(), "--ftp-create-dirs", "-T"])
            .arg(&src)
            .arg(f.server.url("new/a/b/deep.bin")),
        TOOL_TIMEOUT,
    );
    assert!(f.root.join("new/a/b").is_dir());
    assert_eq!(file_digest(&f.root.join("new/a/b/deep.bin")), file_digest(&src));
}

/// The files of `util::TREE_FILES` without the 100 MiB one, plus one of
/// 10 MiB, and an empty directory: a nested tree that uploads quickly.
fn write_tree(dir: &Path) {
    fs::create_dir_all(dir.join("empty")).expect("mkdir empty");
    let files = TREE_FILES.iter().filter(|(p, _)| *p != BIG_FILE).chain([&("ten-mib.bin", 10 * MIB + 3)]);
    for (i, &(rel, len)) in files.enumerate() {
        put(dir, rel, &pattern(100 + i as u64, len as usize));
    }
}

#[test]
fn lftp_mirror_reverse_uploads_a_tree() {
    if !require_tool("lftp") {
        return;
    }
    // The tree has a dot file (`.hidden`): uploading it takes --serve-dotfiles.
    let f = up_fx("iu-lftp", &["--serve-dotfiles"], |_| {});
    let src = temp_dir("iu-lftp-src");
    write_tree(&src);
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow no; set ftp:passive-mode on; \
         open -u {UP_USER},{UP_PASS} -p {} {}; mirror -R --verbose {} /dst; quit",
        f.server.addr.port(),
        f.server.addr.ip(),
        src.display()
    );
    run_ok(Command::new("lftp").args(["-c", &script]), TOOL_TIMEOUT);
    let want = tree_digest(&src);
    let got = tree_digest(&f.root.join("dst"));
    assert_eq!(got, want, "lftp mirror -R: uploaded tree differs");
    assert!(f.root.join("dst/empty").is_dir(), "the empty directory was created");
    assert!(want.values().any(|&(len, _)| len >= 10 * MIB), "the tree has a large file");
}

/// Issue 10: `lftp mirror -R` into an account with `write` (and mkdir), no
/// `settime` named, keeps every file's modification time (lftp sets it with
/// MFMT after each upload; without settime it silently lost them).
#[test]
fn lftp_mirror_reverse_keeps_modification_times() {
    if !require_tool("lftp") {
        return;
    }
    let f = acct_fx("iu-lftp-mtime", &[(UP_USER, UP_HASH, "", "list,read,write,mkdir")], None, &[], |_| {});
    let src = temp_dir("iu-lftp-mtime-src");
    let files = ["a.txt", "sub/b.bin", "sub/deeper/c.txt"];
    for (i, rel) in files.iter().enumerate() {
        put(&src, rel, &pattern(200 + i as u64, 1000 + i));
        // 2020-01-02 03:04:05 UTC plus a day per file.
        set_mtime(&src.join(rel), 1_577_934_245 + 86_400 * i as u64);
    }
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow no; set ftp:passive-mode on; \
         open -u {UP_USER},{UP_PASS} -p {} {}; mirror -R --verbose {} /dst; quit",
        f.server.addr.port(),
        f.server.addr.ip(),
        src.display()
    );
    run_ok(Command::new("lftp").args(["-c", &script]), TOOL_TIMEOUT);
    for rel in files {
        let (want, got) = (mtime_of(&src.join(rel)), mtime_of(&f.root.join("dst").join(rel)));
        assert_eq!(got, want, "lftp mirror -R: modification time of {rel}");
        assert_eq!(file_digest(&f.root.join("dst").join(rel)), file_digest(&src.join(rel)), "{rel}");
    }
}

#[test]
fn python_ftplib_storbinary_and_storlines() {
    if !require_tool("python3") {
        return;
    }
    let f = up_fx("iu-ftplib", &[], |_| {});
    let src_dir = temp_dir("iu-ftplib-src");
    let bin = source(&src_dir, "bin.bin", 23, 2 * MIB as usize + 5);
    let text: String = (0..2000).map(|i| format!("line {i}: some text\n")).collect();
    let txt = src_dir.join("text.txt");
    fs::write(&txt, &text).expect("text");
    let script = r#"
import ftplib, sys
host, port, user, pw, binp, txtp = sys.argv[1:]
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
f.login(user, pw)
with open(binp, "rb") as fh:
    print(f.storbinary("STOR bin.bin", fh))
with open(txtp, "rb") as fh:
    print(f.storlines("STOR text.txt", fh))
f.voidcmd("TYPE I")
print(f.size("bin.bin"))
f.quit()
"#;
    let ran = run_ok(
        Command::new("python3")
            .args(["-c", script, &f.server.addr.ip().to_string(), &f.server.addr.port().to_string(), UP_USER, UP_PASS])
            .arg(&bin)
            .arg(&txt),
        TOOL_TIMEOUT,
    );
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "ftplib output: {}", ran.stdout);
    assert!(lines[0].starts_with("226") && lines[1].starts_with("226"), "ftplib replies: {lines:?}");
    assert_eq!(lines[2], (2 * MIB + 5).to_string(), "SIZE after storbinary");
    assert_eq!(file_digest(&f.root.join("bin.bin")), file_digest(&bin), "storbinary");
    // storlines sends CRLF lines in TYPE A; the server stores LF.
    assert_eq!(fs::read_to_string(f.root.join("text.txt")).expect("text.txt"), text, "storlines");
}
