//! The listing cache (`--listing-cache`): cached listings are byte for byte what the
//! directory gives uncached; writes through the server show in the very next listing;
//! changes by other programs show at once when they touch the directory, and within
//! the documented bound (2 s) when a file is rewritten in place; users never see each
//! other's listings; `--listing-cache 0` turns it off.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{BOB_HASH, UP_HASH, UP_PASS, UP_USER, acct_fx, login_as, login_up, upload};
use crate::protocol::{expect, put};
use crate::util::{Ftp, Server, temp_dir};

/// LIST_CACHE_MAX_AGE in src/limits.rs (the README's bound).
const MAX_AGE: Duration = Duration::from_secs(2);

/// A directory is cached only once its ctime is older than 100 ms (src/limits.rs
/// LIST_CACHE_RACY): wait that out after building a fixture.
fn settle() {
    thread::sleep(Duration::from_millis(250));
}

fn anon(server: &Server) -> Ftp {
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    ftp
}

/// The line of `name` in a LIST or MLSD listing (ends with " name").
#[track_caller]
fn line_of(listing: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(listing);
    let suffix = format!(" {name}");
    match text.split("\r\n").find(|l| l.ends_with(&suffix) || l.contains(&format!(" {name} -> "))) {
        Some(l) => l.to_string(),
        None => panic!("no line for {name:?} in:\n{text}"),
    }
}

fn has(listing: &[u8], name: &str) -> bool {
    let text = String::from_utf8_lossy(listing);
    text.split("\r\n").any(|l| l == name || l.ends_with(&format!(" {name}")))
}

/// Rewrites `path` in place with `len` bytes: its directory does not change.
fn rewrite_in_place(path: &Path, len: usize) {
    let mut f = fs::OpenOptions::new().write(true).open(path).expect("open for rewrite");
    f.write_all(&vec![b'x'; len]).expect("rewrite");
}

fn fixture(root: &Path) {
    for i in 0..300 {
        put(root, &format!("pub/file-{i:03}.dat"), &vec![b'a'; i]);
    }
    put(root, "pub/.hidden", b"h");
    put(root, "pub/sub/inner.txt", b"i");
    put(root, "top.txt", b"top");
    std::os::unix::fs::symlink("file-001.dat", root.join("pub/link")).expect("symlink");
    std::os::unix::fs::symlink("../top.txt", root.join("pub/up")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", root.join("pub/abs")).expect("symlink");
}

const COMMANDS: [&str; 9] =
    ["LIST pub", "LIST -a pub", "LIST -l pub", "NLST pub", "NLST -a pub", "NLST -l pub", "MLSD pub", "LIST", "MLSD"];

#[test]
fn cached_listings_are_byte_identical_to_uncached() {
    let root = temp_dir("lc-identical");
    fixture(&root);
    settle();
    let cached = Server::start(&root, &["--serve-dotfiles"]);
    let uncached = Server::start(&root, &["--serve-dotfiles", "--listing-cache", "0"]);
    let (mut c, mut u) = (anon(&cached), anon(&uncached));
    for cmd in COMMANDS {
        let want = u.list(cmd);
        assert!(!want.is_empty(), "{cmd}");
        for round in 0..3 {
            assert_eq!(String::from_utf8_lossy(&c.list(cmd)), String::from_utf8_lossy(&want), "{cmd} #{round}");
        }
    }
    // The same from many sessions at once (they share one fill).
    let want = u.list("MLSD pub");
    let addr = cached.addr;
    let all: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let mut ftp = Ftp::connect(addr);
                ftp.login_anon();
                ftp.list("MLSD pub")
            })
        })
        .collect();
    for t in all {
        assert_eq!(t.join().expect("lister"), want);
    }
}

#[test]
fn listings_larger_than_a_cache_entry_are_streamed_whole() {
    let root = temp_dir("lc-big");
    for i in 0..3000 {
        put(&root, &format!("big/entry-{i:05}-with-a-longer-name.dat"), b"");
    }
    settle();
    // 64 KiB of cache: an entry is at most 8 KiB, the listing is ~200 KiB.
    let cached = Server::start(&root, &["--listing-cache", "64K"]);
    let uncached = Server::start(&root, &["--listing-cache", "0"]);
    let (mut c, mut u) = (anon(&cached), anon(&uncached));
    for cmd in ["LIST big", "NLST big", "MLSD big"] {
        let want = u.list(cmd);
        assert!(want.len() > 64 << 10, "{cmd}: {}", want.len());
        for round in 0..3 {
            assert!(c.list(cmd) == want, "{cmd} #{round}");
        }
    }
}

#[test]
fn writes_through_the_server_show_in_the_next_listing() {
    let f = acct_fx("lc-writes", &[(UP_USER, UP_HASH, "", "all")], None, &[], |root| {
        fixture(root);
        let old = std::time::UNIX_EPOCH + Duration::from_secs(978_404_645); // 2001-01-02 03:04:05
        fs::File::open(root.join("pub/sub")).and_then(|d| d.set_modified(old)).expect("date of pub/sub");
    });
    settle();
    let mut ftp = login_up(&f.server);
    let size_of = |listing: &[u8], name: &str| line_of(listing, name).split_whitespace().nth(4).map(str::to_string);
    // Cached (twice: filled, then served from memory).
    for _ in 0..2 {
        assert_eq!(size_of(&ftp.list("LIST pub"), "file-010.dat").as_deref(), Some("10"));
    }
    // APPE changes only the file's size: the directory itself is untouched.
    upload(&mut ftp, "APPE pub/file-010.dat", b"12345").expect("APPE");
    assert_eq!(size_of(&ftp.list("LIST pub"), "file-010.dat").as_deref(), Some("15"));
    assert_eq!(size_of(&ftp.list("LIST pub"), "file-010.dat").as_deref(), Some("15"));
    // Listed while an upload runs, then again once it ended: the final size.
    let mut other = login_up(&f.server);
    let (mut data, r) = crate::accounts::start_upload(&mut ftp, "APPE pub/file-012.dat");
    assert_eq!(r.0, 150, "{r:?}");
    data.write_all(b"1234").expect("upload bytes");
    crate::uploads::wait_size(&f.root.join("pub/file-012.dat"), 16);
    assert_eq!(size_of(&other.list("LIST pub"), "file-012.dat").as_deref(), Some("16"));
    data.write_all(b"5678").expect("upload bytes");
    drop(data);
    assert_eq!(ftp.reply().0, 226);
    assert_eq!(size_of(&other.list("LIST pub"), "file-012.dat").as_deref(), Some("20"));
    // REST+STOR (a resumed upload) rewrites in place.
    ftp.list("MLSD pub");
    crate::accounts::upload_at(&mut ftp, Some(10), "STOR pub/file-010.dat", b"abcdefghij").expect("resume");
    assert!(line_of(&ftp.list("MLSD pub"), "file-010.dat").contains(";size=20;"));
    // MFMT and SITE CHMOD change what the line shows, not the directory.
    ftp.list("LIST pub");
    expect(&mut ftp, "MFMT 20010102030405 pub/file-011.dat", 213);
    assert!(line_of(&ftp.list("LIST pub"), "file-011.dat").contains(" Jan  2  2001 "));
    expect(&mut ftp, "SITE CHMOD 600 pub/file-011.dat", 200);
    assert!(line_of(&ftp.list("LIST pub"), "file-011.dat").starts_with("-rw------- "));
    // A change inside pub/sub changes sub's date, shown in pub's listing.
    let sub_line = |ftp: &mut Ftp| line_of(&ftp.list("MLSD pub"), "sub");
    assert!(sub_line(&mut ftp).contains(";modify=20010102030405;"), "{}", sub_line(&mut ftp));
    upload(&mut ftp, "STOR pub/sub/deeper.bin", b"d").expect("STOR");
    assert!(!sub_line(&mut ftp).contains(";modify=20010102030405;"), "{}", sub_line(&mut ftp));
    // New, renamed and deleted entries.
    upload(&mut ftp, "STOR pub/new.bin", b"new").expect("STOR");
    assert!(has(&ftp.list("NLST pub"), "new.bin"));
    expect(&mut ftp, "RNFR pub/new.bin", 350);
    expect(&mut ftp, "RNTO pub/sub/moved.bin", 250);
    assert!(!has(&ftp.list("NLST pub"), "new.bin"));
    assert!(has(&ftp.list("NLST pub/sub"), "moved.bin"));
    expect(&mut ftp, "DELE pub/sub/moved.bin", 250);
    assert!(!has(&ftp.list("NLST pub/sub"), "moved.bin"));
    expect(&mut ftp, "MKD pub/made", 257);
    assert!(has(&ftp.list("NLST pub"), "made"));
    expect(&mut ftp, "RMD pub/made", 250);
    assert!(!has(&ftp.list("NLST pub"), "made"));
}

#[test]
fn changes_by_other_programs_show_at_once_or_within_the_bound() {
    let root = temp_dir("lc-outside");
    fixture(&root);
    settle();
    let server = Server::start(&root, &[]);
    let mut ftp = anon(&server);
    // Entries added, renamed (rsync's way) or removed change the directory: seen at once.
    ftp.list("NLST pub");
    put(&root, "pub/added.txt", b"a");
    assert!(has(&ftp.list("NLST pub"), "added.txt"));
    settle();
    ftp.list("NLST pub");
    put(&root, "pub/.added.txt.XYZ", b"b");
    fs::rename(root.join("pub/.added.txt.XYZ"), root.join("pub/rsynced.txt")).expect("rename");
    assert!(has(&ftp.list("NLST pub"), "rsynced.txt"));
    settle();
    ftp.list("NLST pub");
    fs::remove_file(root.join("pub/added.txt")).expect("rm");
    assert!(!has(&ftp.list("NLST pub"), "added.txt"));
    // A file rewritten in place leaves the directory alone: the cached line may be
    // served for up to MAX_AGE (this is the cache at work), never longer.
    settle();
    let filled = Instant::now();
    let before = line_of(&ftp.list("LIST pub"), "file-020.dat");
    assert!(before.contains(" 20 "), "{before}");
    rewrite_in_place(&root.join("pub/file-020.dat"), 4321);
    let soon = line_of(&ftp.list("LIST pub"), "file-020.dat");
    assert!(filled.elapsed() < MAX_AGE, "the machine is too slow for this check");
    assert_eq!(soon, before, "served from the cache within the bound");
    thread::sleep((filled + MAX_AGE + Duration::from_millis(100)).saturating_duration_since(Instant::now()));
    assert!(line_of(&ftp.list("LIST pub"), "file-020.dat").contains(" 4321 "), "stale after {MAX_AGE:?}");
}

#[test]
fn listing_cache_0_reads_the_directory_every_time() {
    let root = temp_dir("lc-off");
    fixture(&root);
    settle();
    let server = Server::start(&root, &["--listing-cache", "0"]);
    let mut ftp = anon(&server);
    assert!(line_of(&ftp.list("LIST pub"), "file-020.dat").contains(" 20 "));
    rewrite_in_place(&root.join("pub/file-020.dat"), 4321);
    assert!(line_of(&ftp.list("LIST pub"), "file-020.dat").contains(" 4321 "));
}

#[test]
fn users_never_see_each_others_cached_listings() {
    // alice's root is the server's; bob's is pub/. Both reach pub/x as "/x" (alice through
    // the symlink x -> pub/x), where up -> ../../top.txt stays inside alice's root only.
    let users = [("alice", UP_HASH, "", "all"), ("bob", BOB_HASH, "pub", "readonly")];
    let f = acct_fx("lc-users", &users, None, &[], |root| {
        fixture(root);
        put(root, "pub/x/file.txt", b"f");
        std::os::unix::fs::symlink("../../top.txt", root.join("pub/x/up")).expect("symlink");
        std::os::unix::fs::symlink("pub/x", root.join("x")).expect("symlink");
    });
    settle();
    let mut alice = login_as(&f.server, "alice", UP_PASS);
    let mut bob = login_as(&f.server, "bob", "bob-pw");
    let mut anon = anon(&f.server);
    for _ in 0..2 {
        let a = alice.list("LIST x");
        assert!(line_of(&a, "up").ends_with(" up -> ../../top.txt"), "{}", line_of(&a, "up"));
        let b = bob.list("LIST x");
        assert!(line_of(&b, "up").ends_with(" up"), "outside bob's root: {}", line_of(&b, "up"));
        let a = alice.list("MLSD x");
        assert!(line_of(&a, "up").starts_with("type=file;size=3;"), "{}", line_of(&a, "up"));
        assert!(line_of(&a, "file.txt").contains(";perm=radfw;"), "{}", line_of(&a, "file.txt"));
        let b = bob.list("MLSD x");
        assert!(!has(&b, "up"), "outside bob's root: left out");
        // The same root and path as alice, other permissions.
        let n = anon.list("MLSD x");
        assert!(line_of(&n, "file.txt").contains(";perm=r;"), "{}", line_of(&n, "file.txt"));
    }
}

#[test]
fn opts_mlst_selection_applies_to_cached_listings() {
    let root = temp_dir("lc-facts");
    fixture(&root);
    settle();
    let server = Server::start(&root, &[]);
    let mut ftp = anon(&server);
    for _ in 0..2 {
        assert!(line_of(&ftp.list("MLSD pub"), "file-001.dat").starts_with("type=file;size=1;modify="));
    }
    expect(&mut ftp, "OPTS MLST type;", 200);
    for _ in 0..2 {
        assert_eq!(line_of(&ftp.list("MLSD pub"), "file-001.dat"), "type=file; file-001.dat");
    }
    // Another session still gets every fact.
    let mut other = anon(&server);
    assert!(line_of(&other.list("MLSD pub"), "file-001.dat").starts_with("type=file;size=1;modify="));
}
