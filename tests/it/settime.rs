//! Setting a file's modification time (MFMT, MDTM with a time) is part of
//! `write`, as rclone and `lftp mirror -R` expect after every upload;
//! `-settime` in the users or rules file forbids it.

use std::fs;

use crate::accounts::{BOB_HASH, acct_fx, login_as, mtime_of, upload};
use crate::protocol::expect;

/// 2020-01-02 03:04:05 UTC.
const T2020: i64 = 1_577_934_245;
/// 2021-01-01 00:00:00 UTC.
const T2021: i64 = 1_609_459_200;

/// Issue 10: a user given `write` (and nothing about settime) can set the
/// time of a file it uploaded, with MFMT and with the two-argument MDTM; a
/// user or folder with `-settime` gets 550 and the time stays.
#[test]
fn write_includes_settime_unless_taken_away() {
    let users = [("wanda", BOB_HASH, "w", "list,read,write"), ("nora", BOB_HASH, "n", "list,read,write,-settime")];
    let rules = "wanda  list,read,write,-settime  /fixed\n";
    let f = acct_fx("settime", &users, Some(rules), &[], |r| fs::create_dir_all(r.join("w/fixed")).unwrap());

    let mut wanda = login_as(&f.server, "wanda", "bob-pw");
    upload(&mut wanda, "STOR a.txt", b"uploaded").expect("STOR a.txt");
    let text = expect(&mut wanda, "MFMT 20200102030405 a.txt", 213);
    assert_eq!(text, "Modify=20200102030405; a.txt");
    assert_eq!(mtime_of(&f.root.join("w/a.txt")), T2020, "MFMT by a user with write");
    expect(&mut wanda, "MDTM 20210101000000 a.txt", 213);
    assert_eq!(mtime_of(&f.root.join("w/a.txt")), T2021, "MDTM with a time by a user with write");
    // A rule with -settime takes it away in its folder, and nothing else.
    upload(&mut wanda, "STOR fixed/b.txt", b"uploaded").expect("STOR fixed/b.txt");
    let before = mtime_of(&f.root.join("w/fixed/b.txt"));
    assert_eq!(wanda.cmd("MFMT 20200102030405 fixed/b.txt").0, 550, "-settime in the rule");
    assert_eq!(wanda.cmd("MDTM 20200102030405 fixed/b.txt").0, 550, "-settime in the rule");
    assert_eq!(mtime_of(&f.root.join("w/fixed/b.txt")), before);

    let mut nora = login_as(&f.server, "nora", "bob-pw");
    upload(&mut nora, "STOR c.txt", b"uploaded").expect("STOR c.txt with write,-settime");
    let before = mtime_of(&f.root.join("n/c.txt"));
    assert_eq!(nora.cmd("MFMT 20200102030405 c.txt").0, 550, "-settime in the account");
    assert_eq!(nora.cmd("MDTM 20200102030405 c.txt").0, 550, "-settime in the account");
    assert_eq!(mtime_of(&f.root.join("n/c.txt")), before);
}
