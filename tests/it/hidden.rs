//! What the tree keeps from clients: the targets of symlinks that leave the root (or cannot be
//! followed) never appear in LIST, NLST -l, STAT or MLSD.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::protocol::{crlf_lines, expect, login, parse_ls, put, transfer_raw};
use crate::util::{Server, temp_dir};

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
