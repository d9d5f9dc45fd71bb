//! Uploads and tree changes by an account with every permission: STOR,
//! APPE, STOU, REST+STOR, DELE, MKD, RMD, RNFR/RNTO, MFMT, SITE CHMOD,
//! ASCII uploads; an interrupted upload resumed; a full disk and a file-size
//! limit; two uploads to one name; `--atomic-uploads`, `--umask`,
//! `--fsync-uploads`. Each checks the exact replies and the bytes on disk.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::SockRef;

use crate::accounts::{
    UP_HASH, UP_PASS, UP_USER, login_up, mode_of, mtime_of, skipped_loudly, start_upload, up_fx, upload, upload_at,
    upload_code, upload_code_at,
};
use crate::protocol::{Ctl, KIB, MIB, epsv_port, expect, ls_names, pattern, put, utc};
use crate::util::{Ftp, temp_dir};

/// How long to wait for the server to notice something (a reset, a close).
const NOTICE: Duration = Duration::from_secs(5);

/// MDTM text of a Unix time.
fn mdtm(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Waits until nobody holds the upload lock (flock) of `path`: the server
/// has finished with the file.
pub(crate) fn wait_unlocked(path: &Path) {
    let deadline = Instant::now() + NOTICE;
    loop {
        let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: the fd is open for the life of `f`; flock has no other preconditions.
        let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if got {
            return;
        }
        assert!(Instant::now() < deadline, "{} still locked by an upload after {NOTICE:?}", path.display());
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` holds at least `len` bytes.
pub(crate) fn wait_size(path: &Path, len: u64) {
    let deadline = Instant::now() + NOTICE;
    while fs::metadata(path).map_or(0, |m| m.len()) < len {
        assert!(Instant::now() < deadline, "{} never reached {len} bytes", path.display());
        thread::sleep(Duration::from_millis(10));
    }
}

/// `bytes` is a non-empty prefix of `src`.
#[track_caller]
pub(crate) fn assert_prefix(bytes: &[u8], src: &[u8], what: &str) {
    assert!(!bytes.is_empty(), "{what}: nothing was kept");
    assert!(bytes.len() <= src.len(), "{what}: {} bytes, more than the {} sent", bytes.len(), src.len());
    assert!(src.starts_with(bytes), "{what}: the {} bytes kept are not a prefix of what was sent", bytes.len());
}

// ---------------------------------------------------------------------------
// Every upload command
// ---------------------------------------------------------------------------

#[test]
fn stor_creates_and_overwrites_and_size_mdtm_see_it() {
    let f = up_fx("up-stor", &[], |_| {});
    let mut ftp = login_up(&f.server);
    let big = pattern(1, 300 * KIB + 7);
    assert_eq!(upload(&mut ftp, "STOR a.bin", &big), Ok("Ok to send data.".to_string()));
    assert_eq!(fs::read(f.root.join("a.bin")).expect("a.bin"), big);
    assert_eq!(ftp.cmd("SIZE a.bin"), (213, big.len().to_string()));
    let mtime = mtime_of(&f.root.join("a.bin"));
    assert!((mtime - now_secs()).abs() < 120, "mtime {mtime} is not about now");
    assert_eq!(ftp.cmd("MDTM a.bin"), (213, mdtm(mtime)));
    // Overwrite with something shorter: the old tail must not survive.
    upload(&mut ftp, "STOR a.bin", b"short").expect("STOR over a.bin");
    assert_eq!(fs::read(f.root.join("a.bin")).expect("a.bin"), b"short");
    assert_eq!(ftp.cmd("SIZE /a.bin"), (213, "5".to_string()));
    // An empty upload makes an empty file.
    upload(&mut ftp, "STOR empty.bin", b"").expect("empty STOR");
    assert_eq!(fs::metadata(f.root.join("empty.bin")).expect("empty.bin").len(), 0);
    // Into a missing directory: 550, and nothing is created.
    assert_eq!(upload_code(&mut ftp, "STOR nodir/x.bin", b"x"), 550);
    assert!(!f.root.join("nodir").exists());
    // Onto a directory: 550, the directory stays.
    fs::create_dir(f.root.join("d")).expect("mkdir");
    assert_eq!(upload_code(&mut ftp, "STOR d", b"x"), 550);
    assert!(f.root.join("d").is_dir());
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn appe_appends_and_creates() {
    let f = up_fx("up-appe", &[], |r| put(r, "log.txt", b"one\n"));
    let mut ftp = login_up(&f.server);
    upload(&mut ftp, "APPE log.txt", b"two\n").expect("APPE to an existing file");
    assert_eq!(fs::read(f.root.join("log.txt")).expect("log"), b"one\ntwo\n");
    upload(&mut ftp, "APPE fresh.txt", b"first").expect("APPE creating a file");
    assert_eq!(fs::read(f.root.join("fresh.txt")).expect("fresh"), b"first");
    upload(&mut ftp, "APPE fresh.txt", b"+second").expect("APPE again");
    assert_eq!(fs::read(f.root.join("fresh.txt")).expect("fresh"), b"first+second");
    assert_eq!(ftp.cmd("SIZE fresh.txt"), (213, "12".to_string()));
}

#[test]
fn stou_picks_a_unique_name_each_time() {
    let f = up_fx("up-stou", &[], |r| put(r, "x.txt", b"original"));
    let mut ftp = login_up(&f.server);
    let name_of = |text: &str| -> String {
        text.strip_prefix("FILE: ")
            .unwrap_or_else(|| panic!("STOU 150 reply without 'FILE: name': {text:?}"))
            .to_string()
    };
    let first = name_of(&upload(&mut ftp, "STOU", b"first").expect("STOU"));
    let second = name_of(&upload(&mut ftp, "STOU", b"second").expect("second STOU"));
    assert_ne!(first, second, "two STOU got the same name");
    assert_eq!(fs::read(f.root.join(&first)).expect("first STOU file"), b"first");
    assert_eq!(fs::read(f.root.join(&second)).expect("second STOU file"), b"second");
    // With a name that exists: another name, the existing file untouched.
    let third = name_of(&upload(&mut ftp, "STOU x.txt", b"third").expect("STOU x.txt"));
    assert_ne!(third, "x.txt");
    assert_eq!(fs::read(f.root.join(&third)).expect("third STOU file"), b"third");
    assert_eq!(fs::read(f.root.join("x.txt")).expect("x.txt"), b"original");
}

#[test]
fn rest_stor_resumes_from_an_offset() {
    let f = up_fx("up-rest", &[], |r| put(r, "ten.txt", b"AAAAAAAAAA"));
    let mut ftp = login_up(&f.server);
    let src = pattern(2, MIB as usize + 13);
    let cut = 300_001;
    upload(&mut ftp, "STOR r.bin", &src[..cut]).expect("first part");
    upload_at(&mut ftp, Some(cut as u64), "STOR r.bin", &src[cut..]).expect("REST + STOR of the rest");
    let got = fs::read(f.root.join("r.bin")).expect("r.bin");
    assert!(got == src, "REST {cut} + STOR: {} bytes on disk, expected the {} of the source", got.len(), src.len());
    // A smaller offset rewrites from there and drops the old tail.
    upload_at(&mut ftp, Some(4), "STOR ten.txt", b"bb").expect("REST 4 + STOR");
    assert_eq!(fs::read(f.root.join("ten.txt")).expect("ten.txt"), b"AAAAbb");
    // Beyond the end: 554, the file unchanged.
    assert_eq!(upload_code_at(&mut ftp, Some(100), "STOR ten.txt", b"zz"), 554);
    assert_eq!(fs::read(f.root.join("ten.txt")).expect("ten.txt"), b"AAAAbb");
    // The marker stays until a transfer takes it: a command in between
    // does not turn the resume into a truncating STOR (issue 10).
    let mut data = ftp.pasv_connect();
    expect(&mut ftp, "REST 2", 350);
    expect(&mut ftp, "MKD between", 257);
    expect(&mut ftp, "STOR ten.txt", 150);
    data.write_all(b"new").expect("data");
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(fs::read(f.root.join("ten.txt")).expect("ten.txt"), b"AAnew");
    // A refused resume of a file that does not exist leaves nothing behind.
    assert_eq!(upload_code_at(&mut ftp, Some(10), "STOR missing.bin", b"zz"), 554);
    assert!(!f.root.join("missing.bin").exists(), "REST 10 + STOR of a missing file (554) created missing.bin");
}

#[test]
fn dele_removes_files_only() {
    let f = up_fx("up-dele", &[], |r| {
        put(r, "f.txt", b"f");
        put(r, "d/inner.txt", b"i");
    });
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("DELE f.txt"), (250, "File deleted.".to_string()));
    assert!(!f.root.join("f.txt").exists());
    expect(&mut ftp, "DELE f.txt", 550);
    expect(&mut ftp, "DELE d", 550);
    assert!(f.root.join("d/inner.txt").exists(), "DELE of a directory must not touch it");
    expect(&mut ftp, "DELE d/inner.txt", 250);
    assert!(!f.root.join("d/inner.txt").exists());
}

#[test]
fn mkd_and_xmkd_answer_257_with_the_quoted_path() {
    let f = up_fx("up-mkd", &[], |_| {});
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("MKD newdir"), (257, "\"/newdir\" created.".to_string()));
    assert!(f.root.join("newdir").is_dir());
    assert_eq!(ftp.cmd("XMKD /newdir/sub").0, 257);
    assert!(f.root.join("newdir/sub").is_dir());
    expect(&mut ftp, "CWD newdir", 250);
    let r = ftp.cmd("MKD rel");
    assert_eq!(r, (257, "\"/newdir/rel\" created.".to_string()), "relative to the cwd");
    // A quote in the name is doubled (RFC 959).
    assert_eq!(ftp.cmd("MKD q\"d"), (257, "\"/newdir/q\"\"d\" created.".to_string()));
    assert!(f.root.join("newdir/q\"d").is_dir());
    expect(&mut ftp, "MKD rel", 550);
    expect(&mut ftp, "MKD missing/deeper", 550);
    assert!(!f.root.join("newdir/missing").exists());
}

#[test]
fn rmd_and_xrmd_refuse_a_non_empty_directory() {
    let f = up_fx("up-rmd", &[], |r| {
        put(r, "full/file.txt", b"keep");
        fs::create_dir_all(r.join("empty1")).expect("mkdir");
        fs::create_dir_all(r.join("empty2")).expect("mkdir");
        put(r, "plain.txt", b"p");
    });
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("RMD empty1"), (250, "Directory removed.".to_string()));
    assert!(!f.root.join("empty1").exists());
    expect(&mut ftp, "XRMD /empty2", 250);
    assert!(!f.root.join("empty2").exists());
    let r = ftp.cmd("RMD full");
    assert_eq!(r.0, 550, "RMD of a non-empty directory: {r:?}");
    assert_eq!(fs::read(f.root.join("full/file.txt")).expect("kept"), b"keep");
    expect(&mut ftp, "XRMD full", 550);
    expect(&mut ftp, "RMD plain.txt", 550);
    assert!(f.root.join("plain.txt").exists());
    expect(&mut ftp, "RMD missing", 550);
}

#[test]
fn rnfr_rnto_sequence_and_errors() {
    let f = up_fx("up-rename", &[], |r| {
        put(r, "a.txt", b"a");
        put(r, "other.txt", b"other");
        put(r, "dir/in.txt", b"in");
        fs::create_dir(r.join("sub")).expect("mkdir");
    });
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("RNTO b.txt"), (503, "RNFR required first.".to_string()));
    expect(&mut ftp, "RNFR missing.txt", 550);
    expect(&mut ftp, "RNTO b.txt", 503);
    // Another command between RNFR and RNTO cancels the rename.
    expect(&mut ftp, "RNFR a.txt", 350);
    expect(&mut ftp, "NOOP", 200);
    expect(&mut ftp, "RNTO b.txt", 503);
    assert!(f.root.join("a.txt").exists() && !f.root.join("b.txt").exists());
    // A file into another directory.
    expect(&mut ftp, "RNFR a.txt", 350);
    assert_eq!(ftp.cmd("RNTO sub/b.txt"), (250, "Rename successful.".to_string()));
    assert_eq!(fs::read(f.root.join("sub/b.txt")).expect("moved"), b"a");
    assert!(!f.root.join("a.txt").exists());
    // A directory with its contents.
    expect(&mut ftp, "RNFR dir", 350);
    expect(&mut ftp, "RNTO renamed", 250);
    assert_eq!(fs::read(f.root.join("renamed/in.txt")).expect("moved dir"), b"in");
    // Over an existing file: replaced, as rename(2) does.
    expect(&mut ftp, "RNFR sub/b.txt", 350);
    expect(&mut ftp, "RNTO other.txt", 250);
    assert_eq!(fs::read(f.root.join("other.txt")).expect("replaced"), b"a");
    // Into a missing directory: 550, the source stays.
    expect(&mut ftp, "RNFR other.txt", 350);
    expect(&mut ftp, "RNTO nodir/x.txt", 550);
    assert!(f.root.join("other.txt").exists());
}

/// A tmpfs mounted on `dir` for the life of the value (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax, "2m") on `dir`; None if
    /// not root or mounting fails.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        fs::create_dir_all(dir).expect("mkdir mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.0).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            let _ = umount(true);
        }
    }
}

#[test]
fn rename_across_file_systems_is_a_clear_error() {
    let f = up_fx("up-xdev", &[], |r| put(r, "a.txt", b"a"));
    let Some(_mnt) = Tmpfs::mount(&f.root.join("mnt"), "1m") else {
        skipped_loudly("rename across file systems: not root or mount -t tmpfs failed; sub-case not run");
        return;
    };
    let mut ftp = login_up(&f.server);
    expect(&mut ftp, "RNFR a.txt", 350);
    let r = ftp.cmd("RNTO mnt/a.txt");
    assert_eq!(r.0, 550, "RNTO across file systems: {r:?}");
    assert!(r.1.contains("across file systems"), "the reply should say why: {r:?}");
    assert!(f.root.join("a.txt").exists() && !f.root.join("mnt/a.txt").exists());
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn mfmt_sets_the_mtime_and_mdtm_shows_it() {
    let f = up_fx("up-mfmt", &[], |r| {
        put(r, "m.txt", b"m");
        fs::create_dir(r.join("d")).expect("mkdir");
    });
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("MFMT 20200102030405 m.txt"), (213, "Modify=20200102030405; m.txt".to_string()));
    assert_eq!(mtime_of(&f.root.join("m.txt")), 1_577_934_245);
    assert_eq!(ftp.cmd("MDTM m.txt"), (213, "20200102030405".to_string()));
    // The old two-argument MDTM sets it too.
    assert_eq!(ftp.cmd("MDTM 20010203040506 m.txt").0, 213);
    assert_eq!(mtime_of(&f.root.join("m.txt")), 981_173_106);
    assert_eq!(ftp.cmd("MDTM m.txt"), (213, "20010203040506".to_string()));
    // A directory.
    expect(&mut ftp, "MFMT 19991231235959 d", 213);
    assert_eq!(mtime_of(&f.root.join("d")), 946_684_799);
    // Bad times and missing files.
    expect(&mut ftp, "MFMT 2020 m.txt", 501);
    expect(&mut ftp, "MFMT 20201301000000 m.txt", 501);
    expect(&mut ftp, "MFMT 20200102030405", 501);
    expect(&mut ftp, "MFMT 20200102030405 missing.txt", 550);
    assert_eq!(mtime_of(&f.root.join("m.txt")), 981_173_106, "refused MFMTs change nothing");
}

#[test]
fn site_chmod_changes_the_mode() {
    let f = up_fx("up-chmod", &[], |r| {
        put(r, "f.txt", b"f");
        fs::create_dir(r.join("d")).expect("mkdir");
    });
    crate::accounts::set_mode(&f.root.join("f.txt"), 0o644);
    let mut ftp = login_up(&f.server);
    assert_eq!(ftp.cmd("SITE CHMOD 600 f.txt"), (200, "SITE CHMOD command ok.".to_string()));
    assert_eq!(mode_of(&f.root.join("f.txt")), 0o600);
    expect(&mut ftp, "SITE CHMOD 0750 d", 200);
    assert_eq!(mode_of(&f.root.join("d")), 0o750);
    expect(&mut ftp, "site chmod 444 /f.txt", 200);
    assert_eq!(mode_of(&f.root.join("f.txt")), 0o444);
    for bad in ["SITE CHMOD 9 f.txt", "SITE CHMOD 4755 f.txt", "SITE CHMOD rwx f.txt", "SITE CHMOD 644"] {
        assert_eq!(ftp.cmd(bad).0, 501, "{bad}");
    }
    expect(&mut ftp, "SITE CHMOD 644 missing.txt", 550);
    assert_eq!(mode_of(&f.root.join("f.txt")), 0o444, "refused CHMODs change nothing");
}

#[test]
fn ascii_stor_converts_crlf_to_lf() {
    let f = up_fx("up-ascii", &[], |_| {});
    let mut ftp = login_up(&f.server);
    expect(&mut ftp, "TYPE A", 200);
    // Sent in pieces, one CRLF split across two reads; a lone CR is data.
    let pieces: [&[u8]; 3] = [b"line one\r\nline two\r", b"\nlone\rcr\r\n", b"last\r\n"];
    let (mut data, r) = start_upload(&mut ftp, "STOR t.txt");
    assert_eq!(r.0, 150, "STOR in TYPE A: {r:?}");
    for p in pieces {
        data.write_all(p).expect("data");
        data.flush().expect("flush");
        thread::sleep(Duration::from_millis(60));
    }
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(
        String::from_utf8_lossy(&fs::read(f.root.join("t.txt")).expect("t.txt")),
        "line one\nline two\nlone\rcr\nlast\n"
    );
    // A CR at the very end of the upload is kept.
    upload(&mut ftp, "STOR cr.txt", b"end\r").expect("STOR cr.txt");
    assert_eq!(fs::read(f.root.join("cr.txt")).expect("cr.txt"), b"end\r");
    // TYPE I stores bytes as they come.
    expect(&mut ftp, "TYPE I", 200);
    upload(&mut ftp, "STOR bin.txt", b"a\r\nb\r\n").expect("STOR bin.txt");
    assert_eq!(fs::read(f.root.join("bin.txt")).expect("bin.txt"), b"a\r\nb\r\n");
}

// ---------------------------------------------------------------------------
// Interrupted, failing and concurrent uploads
// ---------------------------------------------------------------------------

#[test]
fn interrupted_upload_keeps_its_bytes_and_resumes() {
    let f = up_fx("up-interrupt", &[], |_| {});
    let src = pattern(3, 8 * MIB as usize);
    let path = f.root.join("big.bin");
    {
        let mut c = Ctl::open(f.server.addr);
        assert_eq!(c.cmd(&format!("USER {UP_USER}")).0, 331);
        assert_eq!(c.cmd(&format!("PASS {UP_PASS}")).0, 230);
        assert_eq!(c.cmd("TYPE I").0, 200);
        let port = epsv_port(&c.cmd("EPSV").1);
        let mut data = crate::protocol::data_connect(SocketAddr::new(f.server.addr.ip(), port));
        data.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
        assert_eq!(c.cmd("STOR big.bin").0, 150);
        data.write_all(&src[..3 * MIB as usize]).expect("sending 3 MiB");
        wait_size(&path, MIB);
        // Abortive close of both connections: the server sees resets.
        SockRef::from(&data).set_linger(Some(Duration::ZERO)).expect("linger");
        SockRef::from(&c.stream).set_linger(Some(Duration::ZERO)).expect("linger");
    }
    wait_unlocked(&path);
    let kept = fs::read(&path).expect("partial file");
    assert_prefix(&kept, &src[..3 * MIB as usize], "after the interrupted STOR");
    let mut ftp = login_up(&f.server);
    let n = kept.len();
    assert_eq!(ftp.cmd("SIZE big.bin"), (213, n.to_string()));
    upload_at(&mut ftp, Some(n as u64), "STOR big.bin", &src[n..]).expect("REST + STOR of the rest");
    let got = fs::read(&path).expect("big.bin");
    assert!(got == src, "resumed file differs: {} bytes, expected {}", got.len(), src.len());
}

/// Uploads `src` with `cmd` from a writer thread; returns the final reply
/// (the server may stop reading early) and whether the writer finished.
fn upload_cut_short(ftp: &mut Ftp, cmd: &str, src: Vec<u8>) -> (u16, String) {
    let (mut data, r) = start_upload(ftp, cmd);
    assert_eq!(r.0, 150, "{cmd}: {r:?}");
    let writer = thread::spawn(move || {
        let _ = data.write_all(&src);
    });
    let done = ftp.reply();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !writer.is_finished() {
        assert!(Instant::now() < deadline, "the data writer is stuck after the {done:?} reply");
        thread::sleep(Duration::from_millis(10));
    }
    let _ = writer.join();
    done
}

#[test]
fn disk_full_is_452_keeps_the_bytes_and_the_session() {
    let f = up_fx("up-enospc", &[], |_| {});
    let Some(_mnt) = Tmpfs::mount(&f.root.join("full"), "2m") else {
        skipped_loudly("disk full: not root or mount -t tmpfs failed; see file_size_limit_is_552 instead");
        return;
    };
    let mut ftp = login_up(&f.server);
    let src = pattern(4, 4 * MIB as usize);
    let r = upload_cut_short(&mut ftp, "STOR full/big.bin", src.clone());
    assert_eq!(r.0, 452, "STOR of 4 MiB into 2 MiB: {r:?}");
    expect(&mut ftp, "NOOP", 200);
    let kept = fs::read(f.root.join("full/big.bin")).expect("partial file");
    assert_prefix(&kept, &src, "after ENOSPC");
    // The session still works: delete the partial file, upload something small.
    expect(&mut ftp, "DELE full/big.bin", 250);
    upload(&mut ftp, "STOR full/small.bin", b"fits").expect("STOR after ENOSPC");
    assert_eq!(fs::read(f.root.join("full/small.bin")).expect("small"), b"fits");
}

/// mirrorftpd started through `sh -c 'ulimit -f BLOCKS; exec ...'`.
struct Limited {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Limited {
    fn start(blocks: u32, args: &[&str]) -> Limited {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -f {blocks} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_mirrorftpd"))
            .args(["--listen", "127.0.0.1:0", "--workers", "1", "--allow-root"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning sh -c 'ulimit -f ...; exec mirrorftpd'");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("mirrorftpd: listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => Limited { addr: a.parse().expect("listen address"), child },
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mirrorftpd under ulimit -f did not start: {e:?}");
            }
        }
    }

    /// The server process's RLIMIT_FSIZE in bytes, from /proc.
    fn fsize_limit(&self) -> u64 {
        let limits = fs::read_to_string(format!("/proc/{}/limits", self.child.id())).expect("/proc/PID/limits");
        let line = limits.lines().find(|l| l.starts_with("Max file size")).expect("Max file size line");
        line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).expect("a numeric soft limit")
    }
}

#[test]
fn file_size_limit_is_552_and_the_server_lives_on() {
    let root = temp_dir("up-fsize");
    let etc = temp_dir("up-fsize-etc");
    let users = etc.join("users.txt");
    fs::write(&users, format!("{UP_USER}:{UP_HASH}:{}:all\n", root.display())).expect("users file");
    // 2048 blocks: 1 MiB where sh counts 512-byte blocks (dash), 2 MiB where it counts KiB (bash).
    let server = Limited::start(2048, &["--root", &root.to_string_lossy(), "--users", &users.to_string_lossy()]);
    let limit = server.fsize_limit();
    assert!(limit > 0 && limit < 4 * MIB, "RLIMIT_FSIZE of the server is {limit}");
    let src = pattern(6, 4 * MIB as usize);
    let mut ftp = Ftp::connect(server.addr);
    expect(&mut ftp, &format!("USER {UP_USER}"), 331);
    expect(&mut ftp, &format!("PASS {UP_PASS}"), 230);
    expect(&mut ftp, "TYPE I", 200);
    let r = upload_cut_short(&mut ftp, "STOR big.bin", src.clone());
    assert_eq!(r.0, 552, "STOR of 4 MiB over a {limit}-byte file size limit: {r:?}");
    expect(&mut ftp, "NOOP", 200);
    let kept = fs::read(root.join("big.bin")).expect("partial file");
    assert_prefix(&kept, &src, "after EFBIG");
    assert_eq!(kept.len() as u64, limit, "every byte up to the limit is kept");
    // The server is alive for others.
    let mut other = Ftp::connect(server.addr);
    expect(&mut other, &format!("USER {UP_USER}"), 331);
    expect(&mut other, &format!("PASS {UP_PASS}"), 230);
    expect(&mut other, "TYPE I", 200);
    assert_eq!(other.retr_bytes("big.bin").expect("RETR big.bin"), kept);
    drop(server);
}

#[test]
fn concurrent_stor_to_one_name_second_gets_450() {
    let f = up_fx("up-busy", &[], |_| {});
    let a_bytes = pattern(7, 2 * MIB as usize);
    let b_bytes = pattern(8, 2 * MIB as usize);
    let mut a = login_up(&f.server);
    let mut b = login_up(&f.server);
    let (mut a_data, r) = start_upload(&mut a, "STOR same.bin");
    assert_eq!(r.0, 150);
    a_data.write_all(&a_bytes[..MIB as usize]).expect("A's first half");
    wait_size(&f.root.join("same.bin"), 1);
    // B while A is mid-transfer.
    let (mut b_data, r) = start_upload(&mut b, "STOR same.bin");
    if r.0 == 150 {
        // Wrong, but finish B's upload so the content check shows the damage.
        let _ = b_data.write_all(&b_bytes);
        drop(b_data);
        let _ = b.reply();
    }
    assert_eq!(r.0, 450, "a second STOR to a name being uploaded: {r:?}");
    a_data.write_all(&a_bytes[MIB as usize..]).expect("A's second half");
    drop(a_data);
    assert_eq!(a.reply().0, 226);
    let got = fs::read(f.root.join("same.bin")).expect("same.bin");
    assert!(got == a_bytes, "same.bin is not exactly A's upload ({} bytes)", got.len());
    // Once A is done, B may upload.
    expect(&mut b, "NOOP", 200);
    upload(&mut b, "STOR same.bin", &b_bytes).expect("B after A");
    assert!(fs::read(f.root.join("same.bin")).expect("same.bin") == b_bytes);
}

#[test]
fn atomic_uploads_readers_never_see_a_partial_file() {
    let f = up_fx("up-atomic", &["--atomic-uploads"], |r| put(r, "old.bin", b"old content"));
    let new_old = pattern(9, 2 * MIB as usize);
    let new_new = pattern(10, 2 * MIB as usize);
    let mut writer = login_up(&f.server);
    let mut writer2 = login_up(&f.server);
    let mut reader = login_up(&f.server);
    let (mut d1, r) = start_upload(&mut writer, "STOR old.bin");
    assert_eq!(r.0, 150);
    let (mut d2, r) = start_upload(&mut writer2, "STOR new.bin");
    assert_eq!(r.0, 150);
    d1.write_all(&new_old[..MIB as usize]).expect("first half");
    d2.write_all(&new_new[..MIB as usize]).expect("first half");
    wait_size(&f.root.join(".old.bin.part"), 1);
    wait_size(&f.root.join(".new.bin.part"), 1);
    // Mid-upload: the old file, or 550 for a new one; never a partial one.
    assert_eq!(reader.retr_bytes("old.bin").expect("RETR old.bin during the upload"), b"old content");
    assert_eq!(fs::read(f.root.join("old.bin")).expect("old.bin"), b"old content");
    assert_eq!(reader.retr_bytes("new.bin").map_err(|e| e.0), Err(550), "RETR new.bin during its upload");
    assert_eq!(reader.cmd("SIZE old.bin"), (213, "11".to_string()));
    for cmd in ["LIST", "NLST", "MLSD"] {
        let text = String::from_utf8_lossy(&reader.list(cmd)).into_owned();
        assert!(!text.contains(".part"), "{cmd} during atomic uploads shows a temp file: {text:?}");
        assert!(text.contains("old.bin") && !text.contains("new.bin"), "{cmd}: {text:?}");
    }
    // A second upload to the same name is busy, with atomic uploads too.
    let mut third = login_up(&f.server);
    let (_d3, r) = start_upload(&mut third, "STOR old.bin");
    assert_eq!(r.0, 450, "second STOR of old.bin during an atomic upload: {r:?}");
    d1.write_all(&new_old[MIB as usize..]).expect("second half");
    d2.write_all(&new_new[MIB as usize..]).expect("second half");
    drop(d1);
    drop(d2);
    assert_eq!(writer.reply().0, 226);
    assert_eq!(writer2.reply().0, 226);
    assert!(reader.retr_bytes("old.bin").expect("RETR old.bin") == new_old, "old.bin after 226");
    assert!(reader.retr_bytes("new.bin").expect("RETR new.bin") == new_new, "new.bin after 226");
    let leftovers: Vec<_> = fs::read_dir(&f.root)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left after the uploads: {leftovers:?}");
    let mut names = ls_names(&reader.list("LIST"));
    names.sort();
    assert_eq!(names, vec![b"new.bin".to_vec(), b"old.bin".to_vec()]);
}

#[test]
fn atomic_uploads_appe_appends_to_the_existing_file() {
    let f = up_fx("up-atomic-appe", &["--atomic-uploads"], |r| put(r, "log.txt", b"one\n"));
    let mut ftp = login_up(&f.server);
    let r = upload(&mut ftp, "APPE log.txt", b"two\n");
    assert!(r.is_ok(), "APPE under --atomic-uploads: {r:?}");
    assert_eq!(
        String::from_utf8_lossy(&fs::read(f.root.join("log.txt")).expect("log.txt")),
        "one\ntwo\n",
        "APPE under --atomic-uploads must append to the existing file"
    );
}

#[test]
fn atomic_uploads_rest_stor_resumes_the_existing_file() {
    let f = up_fx("up-atomic-rest", &["--atomic-uploads"], |r| put(r, "r.bin", b"0123456789"));
    let mut ftp = login_up(&f.server);
    let r = upload_at(&mut ftp, Some(10), "STOR r.bin", b"abc");
    assert!(r.is_ok(), "REST 10 + STOR of a 10-byte file under --atomic-uploads: {r:?}");
    assert_eq!(
        String::from_utf8_lossy(&fs::read(f.root.join("r.bin")).expect("r.bin")),
        "0123456789abc",
        "REST + STOR under --atomic-uploads must resume the existing file"
    );
}

// ---------------------------------------------------------------------------
// --umask, --fsync-uploads
// ---------------------------------------------------------------------------

#[test]
fn umask_027_gives_0640_files_and_0750_dirs() {
    let f = up_fx("up-umask", &["--umask", "027"], |_| {});
    let mut ftp = login_up(&f.server);
    upload(&mut ftp, "STOR f.bin", b"f").expect("STOR");
    expect(&mut ftp, "MKD d", 257);
    upload(&mut ftp, "STOU", b"u").expect("STOU");
    upload(&mut ftp, "APPE a.bin", b"a").expect("APPE");
    assert_eq!(mode_of(&f.root.join("f.bin")), 0o640, "uploaded file");
    assert_eq!(mode_of(&f.root.join("d")), 0o750, "new directory");
    assert_eq!(mode_of(&f.root.join("stou")), 0o640, "STOU file");
    assert_eq!(mode_of(&f.root.join("a.bin")), 0o640, "APPE-created file");
}

#[test]
fn default_umask_gives_0644_files_and_0755_dirs() {
    let f = up_fx("up-umask-default", &[], |_| {});
    let mut ftp = login_up(&f.server);
    upload(&mut ftp, "STOR f.bin", b"f").expect("STOR");
    expect(&mut ftp, "MKD d", 257);
    assert_eq!(mode_of(&f.root.join("f.bin")), 0o644);
    assert_eq!(mode_of(&f.root.join("d")), 0o755);
}

#[test]
fn fsync_uploads_still_upload() {
    let src = pattern(12, MIB as usize + 1);
    for args in [&["--fsync-uploads"][..], &["--fsync-uploads", "--atomic-uploads"]] {
        let f = up_fx("up-fsync", args, |_| {});
        let mut ftp = login_up(&f.server);
        assert_eq!(upload(&mut ftp, "STOR s.bin", &src), Ok("Ok to send data.".to_string()), "{args:?}");
        assert!(fs::read(f.root.join("s.bin")).expect("s.bin") == src, "{args:?}");
        upload(&mut ftp, "STOU", b"unique").expect("STOU with --fsync-uploads");
        assert_eq!(fs::read(f.root.join("stou")).expect("stou"), b"unique", "{args:?}");
    }
}
