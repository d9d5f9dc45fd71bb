//! What the tree keeps from clients: dot files are unreachable by default (`--serve-dotfiles`
//! serves them; `.message` is still shown on CWD), and the targets of symlinks that leave the
//! root (or cannot be followed) never appear in LIST, NLST -l, STAT or MLSD.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::accounts::{login_up, start_upload, up_fx, upload_code};
use crate::protocol::{crlf_lines, expect, fx, login, parse_ls, put, transfer_raw};
use crate::uploads::wait_size;
use crate::util::{Server, run, temp_dir};

// ---------------------------------------------------------------------------
// Symlink targets
// ---------------------------------------------------------------------------

/// Words that only the target of a link out of the root would put in a listing.
const OUTSIDE_WORDS: [&str; 5] = ["/etc", "etc/passwd", "secret", "outdir", "mirrorftpd-it-"];

/// `base/root` with links in and out of it: (name, target, whether a client may see the target).
fn link_tree(base: &Path) -> Vec<(&'static str, String, bool)> {
    let root = base.join("root");
    fs::write(base.join("secret.txt"), b"outside\n").expect("secret");
    fs::create_dir(base.join("outdir")).expect("outdir");
    put(&root, "inside.txt", b"inside\n");
    put(&root, "sub/inner/deep.txt", b"deep\n");
    let outdir = base.join("outdir").to_string_lossy().into_owned();
    let links = vec![
        ("good", "inside.txt".to_string(), true),
        ("gooddir", "sub".to_string(), true),
        ("inner", "sub/inner".to_string(), true),
        ("sub/back", "../inside.txt".to_string(), true),
        // Physically sub/inner/../../inside.txt: inside, though `/inner/..` would be the root.
        ("sub/inner/x", "../../inside.txt".to_string(), true),
        ("passwd", "/etc/passwd".to_string(), false),
        ("up", "../../..".to_string(), false),
        ("uprel", "../secret.txt".to_string(), false),
        ("absdir", outdir, false),
        ("viaout", "absdir/secret.txt".to_string(), false),
        ("sub/deeper", "../../etc".to_string(), false),
        ("missing", "nothere/../../../etc/passwd".to_string(), false),
        ("dangling", "nothere".to_string(), false),
    ];
    for (name, target, _) in &links {
        symlink(target, root.join(name)).unwrap_or_else(|e| panic!("symlink {name}: {e}"));
    }
    links
}

/// Checks one LIST/STAT body: every link line of `dir` shows its target only if visible.
#[track_caller]
fn check_link_lines(what: &str, body: &[u8], dir: &str, links: &[(&str, String, bool)]) {
    let text = String::from_utf8_lossy(body);
    for w in OUTSIDE_WORDS {
        assert!(!text.contains(w), "{what} reveals {w:?}: {text}");
    }
    let lines = crlf_lines(body);
    for (name, target, visible) in links {
        let Some(short) = name.strip_prefix(dir) else { continue };
        if short.contains('/') {
            continue;
        }
        let line = lines
            .iter()
            .map(|l| parse_ls(l.strip_prefix(b" ").unwrap_or(l)))
            .find(|l| l.name == short.as_bytes() || l.name.starts_with(format!("{short} -> ").as_bytes()))
            .unwrap_or_else(|| panic!("{what}: no line for {short}: {text}"));
        let shown = String::from_utf8_lossy(&line.name).into_owned();
        if *visible {
            assert_eq!(shown, format!("{short} -> {target}"), "{what}: {text}");
        } else {
            assert_eq!(shown, *short, "{what}: the target of {short} must not show: {text}");
            assert_eq!(line.fields[4], "0", "{what}: {short}'s size would give the target's length away: {text}");
        }
    }
}

fn check_links(server: &Server, links: &[(&str, String, bool)]) {
    let mut ftp = login(server);
    for (cmd, dir) in [("LIST -la", ""), ("NLST -l", ""), ("LIST sub", "sub/"), ("LIST gooddir", "sub/")] {
        check_link_lines(cmd, &ftp.list(cmd), dir, links);
    }
    check_link_lines("LIST inner", &ftp.list("LIST inner"), "sub/inner/", links);
    expect(&mut ftp, "CWD inner", 250);
    check_link_lines("LIST in /inner", &ftp.list("LIST"), "sub/inner/", links);
    assert_eq!(ftp.retr_bytes("x").expect("RETR /inner/x"), b"inside\n", "a shown target is one access follows");
    expect(&mut ftp, "CWD /", 250);
    let stat = expect(&mut ftp, "STAT -la .", 213);
    let body: Vec<u8> =
        stat.lines().skip(1).filter(|l| !l.starts_with("213")).flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
    check_link_lines("STAT -la .", &body, "", links);
    let mlsd = String::from_utf8_lossy(&ftp.list("MLSD")).into_owned();
    for w in OUTSIDE_WORDS.iter().chain(&["symlink", "passwd", "viaout", "dangling"]) {
        assert!(!mlsd.contains(w), "MLSD reveals {w:?}: {mlsd}");
    }
    for (name, _, visible) in links {
        for verb in ["STAT", "MLST", "SIZE"] {
            let r = ftp.cmd(&format!("{verb} {name}"));
            for w in OUTSIDE_WORDS {
                assert!(!r.1.contains(w), "{verb} {name} reveals {w:?}: {r:?}");
            }
            if !visible {
                assert_eq!(r.0, 550, "{verb} {name}: {r:?}");
            }
        }
        if !visible {
            let r = transfer_raw(&mut ftp, format!("LIST {name}").as_bytes());
            assert!(matches!(&r, Err((550, _))), "LIST {name}: {r:?}");
        }
    }
}

#[test]
fn listings_show_only_targets_of_links_that_stay_inside_openat2() {
    let base = temp_dir("hidden-links");
    let links = link_tree(&base);
    let server = Server::start(&base.join("root"), &[]);
    check_links(&server, &links);
}

#[test]
fn listings_show_only_targets_of_links_that_stay_inside_walk() {
    let base = temp_dir("hidden-links-walk");
    let links = link_tree(&base);
    let server = Server::start_env(&base.join("root"), &[], &[("MIRRORFTPD_NO_OPENAT2", "1")]);
    check_links(&server, &links);
}

// ---------------------------------------------------------------------------
// Dot files
// ---------------------------------------------------------------------------

fn dot_tree(r: &Path) {
    put(r, ".git/config", b"[core]\n");
    put(r, ".git/HEAD", b"ref: refs/heads/main\n");
    put(r, ".hidden", b"hidden");
    put(r, "pub/file.txt", b"visible");
    put(r, "pub/.file.txt.Ab12Cd", b"half-written rsync temp");
    put(r, "pub/.message", b"Welcome to pub.\n");
}

/// Dot paths and a nonexistent path of the same shape: the replies must be the same.
const DOT_PATHS: [(&str, &str); 6] = [
    (".git/config", "nogit/config"),
    (".git", "nogit"),
    (".hidden", "nohidden"),
    ("pub/.file.txt.Ab12Cd", "pub/nofile"),
    ("pub/.message", "pub/nomessage"),
    ("/pub/../.git/./HEAD", "/pub/../nogit/./HEAD"),
];

#[test]
fn dot_files_are_unreachable_by_default() {
    let f = fx("hidden-dots", &[], dot_tree);
    let mut ftp = login(&f.server);
    for (dot, none) in DOT_PATHS {
        for verb in ["SIZE", "MDTM", "MLST", "STAT", "CWD"] {
            let got = ftp.cmd(&format!("{verb} {dot}"));
            let want = ftp.cmd(&format!("{verb} {none}"));
            assert_eq!(got.0, 550, "{verb} {dot}: {got:?}");
            assert_eq!(got, want, "{verb} {dot} answers like a path that does not exist");
        }
        for verb in ["RETR", "LIST", "NLST", "MLSD"] {
            let got = transfer_raw(&mut ftp, format!("{verb} {dot}").as_bytes());
            let want = transfer_raw(&mut ftp, format!("{verb} {none}").as_bytes());
            assert!(matches!(&got, Err((550, _))), "{verb} {dot}: {got:?}");
            assert_eq!(got, want, "{verb} {dot} answers like a path that does not exist");
        }
    }
    let r = transfer_raw(&mut ftp, b"NLST .git/*");
    assert!(matches!(&r, Err((550, _))), "NLST .git/*: {r:?}");
    for cmd in ["LIST -la", "NLST -a", "MLSD", "LIST -a pub", "NLST -a pub", "MLSD pub", "NLST .*", "LIST -a pub/.*"] {
        let r = transfer_raw(&mut ftp, cmd.as_bytes());
        let text = format!("{r:?}");
        assert!(
            !text.contains("git") && !text.contains("hidden") && !text.contains(".file") && !text.contains(".message"),
            "{cmd}: {text}"
        );
    }
    let stat = expect(&mut ftp, "STAT -la pub", 213);
    assert!(stat.contains("file.txt") && !stat.contains(".file") && !stat.contains(".message"), "{stat}");
    // The server still reads .message itself.
    let (code, text) = ftp.cmd("CWD pub");
    assert_eq!((code, text.lines().next()), (250, Some("Welcome to pub.")), "{text:?}");
    assert_eq!(ftp.retr_bytes("file.txt").expect("RETR pub/file.txt"), b"visible");
}

#[test]
fn dot_files_cannot_be_written_by_default() {
    let f = up_fx("hidden-dots-write", &["--atomic-uploads"], dot_tree);
    let mut ftp = login_up(&f.server);
    for cmd in ["STOR .git/config", "STOR .newdot", "STOR .git/new", "APPE .git/config", "STOR pub/.file.txt.Ab12Cd"] {
        assert_eq!(upload_code(&mut ftp, cmd, b"overwritten"), 550, "{cmd}");
    }
    for cmd in [
        "MKD .newdir",
        "MKD .git/sub",
        "DELE .git/config",
        "DELE pub/.file.txt.Ab12Cd",
        "RMD .git",
        "RNFR .git/config",
        "SITE CHMOD 600 .git/config",
        "MFMT 20200101000000 .git/config",
    ] {
        let r = ftp.cmd(cmd);
        assert_eq!(r.0, 550, "{cmd}: {r:?}");
        assert!(r.1.contains("No such file"), "{cmd}: {r:?}");
    }
    expect(&mut ftp, "RNFR pub/file.txt", 350);
    expect(&mut ftp, "RNTO .stolen", 550);
    expect(&mut ftp, "RNFR pub/file.txt", 350);
    expect(&mut ftp, "RNTO .git/stolen", 550);
    assert_eq!(fs::read(f.root.join(".git/config")).expect("config"), b"[core]\n");
    assert_eq!(fs::read(f.root.join("pub/.file.txt.Ab12Cd")).expect("temp"), b"half-written rsync temp");
    assert_eq!(fs::read(f.root.join("pub/file.txt")).expect("file"), b"visible");
    for gone in [".newdot", ".newdir", ".git/new", ".git/sub", ".stolen", ".git/stolen"] {
        assert!(!f.root.join(gone).exists(), "{gone} was created");
    }
    // Atomic uploads still write their hidden temporary name, and publish it.
    assert_eq!(upload_code(&mut ftp, "STOR pub/new.bin", b"new"), 226);
    assert_eq!(fs::read(f.root.join("pub/new.bin")).expect("new.bin"), b"new");
}

#[test]
fn serve_dotfiles_serves_them_but_never_an_upload_in_progress() {
    let f = up_fx("hidden-dots-served", &["--serve-dotfiles", "--atomic-uploads"], dot_tree);
    let mut ftp = login(&f.server);
    assert_eq!(ftp.retr_bytes(".git/config").expect("RETR .git/config"), b"[core]\n");
    assert_eq!(ftp.retr_bytes("pub/.message").expect("RETR pub/.message"), b"Welcome to pub.\n");
    assert_eq!(ftp.cmd("SIZE .hidden"), (213, "6".to_string()));
    let mut names: Vec<Vec<u8>> = crlf_lines(&ftp.list("NLST -a")).into_iter().collect();
    names.sort();
    assert_eq!(names, [b".git".to_vec(), b".hidden".to_vec(), b"pub".to_vec()]);
    assert_eq!(crlf_lines(&ftp.list("NLST")), [b"pub".to_vec()], "hidden from plain listings still");
    let (code, text) = ftp.cmd("CWD .git");
    assert_eq!(code, 250, "{text}");

    // Another uploader's temporary name stays out of reach.
    let mut up = login_up(&f.server);
    let (mut data, r) = start_upload(&mut up, "STOR pub/big.bin");
    assert_eq!(r.0, 150, "{r:?}");
    std::io::Write::write_all(&mut data, b"partial").expect("write");
    wait_size(&f.root.join("pub/.big.bin.part"), 7);
    let r = ftp.retr_bytes("/pub/.big.bin.part");
    assert!(matches!(&r, Err((550, _))), "RETR of an upload's temporary: {r:?}");
    expect(&mut ftp, "SIZE /pub/.big.bin.part", 550);
    let listing = String::from_utf8_lossy(&ftp.list("LIST -a /pub")).into_owned();
    assert!(!listing.contains(".part"), "{listing}");
    let mut other = login_up(&f.server);
    assert_eq!(upload_code(&mut other, "STOR pub/.big.bin.part", b"clobber"), 550);
    drop(data);
    assert_eq!(up.reply().0, 226);
    assert_eq!(fs::read(f.root.join("pub/big.bin")).expect("big.bin"), b"partial");
}

#[test]
fn deny_dotfiles_is_still_accepted_and_conflicts_with_serving_them() {
    let f = fx("hidden-dots-deprecated", &["--deny-dotfiles"], dot_tree);
    let mut ftp = login(&f.server);
    let r = ftp.retr_bytes(".git/config");
    assert!(matches!(&r, Err((550, _))), "{r:?}");
    let root = temp_dir("hidden-dots-conflict");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.args(["--check-config", "--allow-root", "--serve-dotfiles", "--deny-dotfiles", "--root"]).arg(&*root);
    let ran = run(&mut cmd, Duration::from_secs(20));
    assert!(!ran.status.success(), "both flags: {}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("cannot be used with"), "{}", ran.stderr);
}
