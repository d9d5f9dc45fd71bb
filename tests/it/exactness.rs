//! Issue 10, "Exactness": OPTS MLST selects the MLST/MLSD facts (RFC 3659
//! §7.9), reply codes for unknown verbs, SITE subcommands, HELP arguments and
//! unsupported network protocols (RFC 959, RFC 2428), and CWD into a
//! directory the server itself may not search. The TLS points of the same
//! list (AUTH after a login, close_notify) live in `ftps.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::protocol::{expect, fx, login, put};
use crate::util::{Ftp, IO_TIMEOUT, Server, TempDir, temp_dir};

/// The facts this server offers, in FEAT order.
const ALL_FACTS: [&str; 6] = ["type", "size", "modify", "perm", "unique", "UNIX.mode"];

/// The MLST line of FEAT, trimmed: `MLST type*;size*;...`.
fn feat_mlst(ftp: &mut Ftp) -> String {
    let text = expect(ftp, "FEAT", 211);
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("MLST "))
        .unwrap_or_else(|| panic!("FEAT has no MLST line: {text:?}"))
        .to_string()
}

/// The FEAT line that marks exactly `selected` (case as offered) with `*`.
fn feat_line(selected: &[&str]) -> String {
    let facts: String = ALL_FACTS
        .iter()
        .map(|f| if selected.iter().any(|s| s.eq_ignore_ascii_case(f)) { format!("{f}*;") } else { format!("{f};") })
        .collect();
    format!("MLST {facts}")
}

/// MLSD of the root, as (facts, name) pairs sorted by name. A line is
/// `facts SP name` where facts is empty or ends with ';'.
fn mlsd(ftp: &mut Ftp) -> Vec<(String, String)> {
    let data = ftp.list("MLSD");
    let text = String::from_utf8(data).expect("MLSD is UTF-8 here");
    let mut out: Vec<(String, String)> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (facts, name) = l.split_once(' ').unwrap_or_else(|| panic!("MLSD line without a space: {l:?}"));
            (facts.to_string(), name.to_string())
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The fact names of one `fact=value;...;` string, in order.
fn names(facts: &str) -> Vec<String> {
    facts.split(';').filter(|f| !f.is_empty()).map(|f| f.split('=').next().unwrap_or("").to_string()).collect()
}

#[test]
fn opts_mlst_selects_the_facts_of_mlsd_mlst_and_feat() {
    let f = fx("exact-mlst", &[], |r| {
        put(r, "f.txt", b"hello");
        fs::create_dir(r.join("sub")).expect("mkdir sub");
    });
    let mut ftp = login(&f.server);
    assert_eq!(feat_mlst(&mut ftp), feat_line(&ALL_FACTS), "the default selects every fact");

    // Only type: MLSD and MLST show only type=, FEAT stars only type.
    assert_eq!(expect(&mut ftp, "OPTS MLST type;", 200), "MLST OPTS type;");
    let got = mlsd(&mut ftp);
    assert_eq!(
        got,
        [("type=file;".to_string(), "f.txt".to_string()), ("type=dir;".to_string(), "sub".to_string())],
        "MLSD after OPTS MLST type;"
    );
    let mlst = expect(&mut ftp, "MLST f.txt", 250);
    assert_eq!(mlst.lines().nth(1), Some(" type=file; /f.txt"), "MLST after OPTS MLST type;: {mlst:?}");
    assert_eq!(feat_mlst(&mut ftp), feat_line(&["type"]));

    // Unknown facts are ignored; names match in any case; the reply names
    // what is now selected, in the server's spelling.
    assert_eq!(expect(&mut ftp, "opts mlst fish;SIZE;unix.MODE;cakes;", 200), "MLST OPTS size;UNIX.mode;");
    let got = mlsd(&mut ftp);
    assert_eq!(names(&got[0].0), ["size", "UNIX.mode"], "f.txt: {got:?}");
    assert_eq!(names(&got[1].0), ["UNIX.mode"], "sub (a directory has no size): {got:?}");
    assert_eq!(feat_mlst(&mut ftp), feat_line(&["size", "UNIX.mode"]));

    // A space in the fact list is a syntax error that changes nothing.
    expect(&mut ftp, "OPTS MLST size type;", 501);
    assert_eq!(feat_mlst(&mut ftp), feat_line(&["size", "UNIX.mode"]));

    // No facts at all: names only, each after the one separating space.
    assert_eq!(expect(&mut ftp, "OPTS MLST", 200), "MLST OPTS");
    let got = mlsd(&mut ftp);
    assert_eq!(got, [(String::new(), "f.txt".to_string()), (String::new(), "sub".to_string())]);
    let mlst = expect(&mut ftp, "MLST sub", 250);
    assert_eq!(mlst.lines().nth(1), Some("  /sub"), "MLST with no facts: {mlst:?}");
    assert!(!feat_mlst(&mut ftp).contains('*'), "FEAT after OPTS MLST with no facts");
    assert_eq!(expect(&mut ftp, "OPTS MLST fish;cakes;", 200), "MLST OPTS");

    // The selection belongs to the session: another one still has them all.
    let mut other = login(&f.server);
    assert_eq!(feat_mlst(&mut other), feat_line(&ALL_FACTS));
    let got = mlsd(&mut other);
    assert_eq!(names(&got[0].0), ALL_FACTS, "another session's MLSD: {got:?}");
    // Everything again, in any order.
    let all = "OPTS MLST UNIX.mode;unique;perm;modify;size;type;";
    assert_eq!(expect(&mut ftp, all, 200), "MLST OPTS type;size;modify;perm;unique;UNIX.mode;");
    assert_eq!(feat_mlst(&mut ftp), feat_line(&ALL_FACTS));
    // OPTS of something that is not MLST is not taken for it.
    expect(&mut ftp, "OPTS MLSTX type;", 501);
}

#[test]
fn unknown_verbs_500_known_but_unimplemented_502() {
    let f = fx("exact-codes", &[], |_| {});
    let mut ftp = Ftp::connect(f.server.addr);
    // Before login too: an unknown verb is a syntax error, not a refusal.
    expect(&mut ftp, "XYZZY", 500);
    ftp.login_anon();
    expect(&mut ftp, "XYZZY", 500);
    expect(&mut ftp, "FOO bar", 500);
    expect(&mut ftp, "RETRIEVE f", 500);
    // Known commands this server does not implement.
    expect(&mut ftp, "SMNT /x", 502);
    expect(&mut ftp, "ACCT billing", 502);
    // SITE: a subcommand it does not know is unrecognised, not unimplemented.
    expect(&mut ftp, "SITE FROB x", 500);
    expect(&mut ftp, "SITE EXEC /bin/sh", 500);
    expect(&mut ftp, "SITE HELP", 214);
    // HELP: the argument is what is wrong (501); a known command is
    // described (214); a known one not implemented says so (502).
    expect(&mut ftp, "HELP XYZZY", 501);
    expect(&mut ftp, "HELP RETR", 214);
    expect(&mut ftp, "HELP SMNT", 502);
    expect(&mut ftp, "NOOP", 200);
}

#[test]
fn epsv_and_eprt_with_an_unsupported_protocol_get_522_with_the_supported_list() {
    let f = fx("exact-522", &[], |_| {});
    let mut ftp = login(&f.server);
    // RFC 2428 §3: "522 Network protocol not supported, use (prot1,prot2,...)";
    // an IPv4 control connection offers 1 only.
    let want = "Network protocol not supported, use (1)";
    for cmd in ["EPSV 2", "EPSV 3", "EPSV 47", "EPRT |3|1.2.3.4|5000|", "EPRT |2|::1|5000|", "EPRT |47|x|5000|"] {
        assert_eq!(expect(&mut ftp, cmd, 522), want, "{cmd}");
    }
    // Not a protocol number at all: a syntax error.
    for cmd in ["EPSV x", "EPSV 01", "EPSV 1x", "EPSV 99999999999999999999"] {
        expect(&mut ftp, cmd, 501);
    }
    expect(&mut ftp, "EPSV 1", 229);
}

#[test]
fn epsv_on_ipv6_offers_protocol_2() {
    let root = temp_dir("exact-522-v6");
    let server = Server::start(&root, &["--listen", "[::1]:0"]);
    let mut ftp = login(&server);
    let want = "Network protocol not supported, use (2)";
    for cmd in ["EPSV 1", "EPSV 3", "EPRT |1|127.0.0.1|5000|", "EPRT |3|x|5000|"] {
        assert_eq!(expect(&mut ftp, cmd, 522), want, "{cmd} over IPv6");
    }
    expect(&mut ftp, "EPSV 2", 229);
}

/// The uid of `nobody`, the user `--run-as nobody` runs as.
fn nobody_uid() -> u32 {
    let passwd = fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"nobody") && f.len() > 3)
        .map(|f| f[2].parse().expect("uid"))
        .expect("no user nobody in /etc/passwd")
}

/// A server that cannot search `root/locked` with its own credentials: as
/// root, the server runs as `nobody` and `locked` is root's, mode 0700;
/// otherwise `locked` is mode 000 (the owner cannot search it either).
/// `dropbox` is 0711: searchable, not readable by others.
struct LockedFx {
    server: Server,
    root: TempDir,
}

impl Drop for LockedFx {
    fn drop(&mut self) {
        // So that the directory can be removed when the tests do not run as root.
        let _ = fs::set_permissions(self.root.join("locked"), fs::Permissions::from_mode(0o755));
    }
}

fn locked_fx(name: &str) -> LockedFx {
    let root = temp_dir(name);
    put(&root, "open/f.txt", b"open");
    put(&root, "locked/secret.txt", b"secret");
    put(&root, "dropbox/known.txt", b"known");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mode = if as_root { 0o700 } else { 0o000 };
    fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(mode)).expect("chmod locked");
    fs::set_permissions(root.join("dropbox"), fs::Permissions::from_mode(0o711)).expect("chmod dropbox");
    if as_root {
        assert_ne!(nobody_uid(), 0, "nobody is not root");
    }
    let args: &[&str] = if as_root { &["--run-as", "nobody"] } else { &[] };
    let server = Server::start(&root, args);
    if as_root {
        assert!(server.wait_log("running as nobody", IO_TIMEOUT), "{}", server.log());
    }
    LockedFx { server, root }
}

#[test]
fn cwd_into_a_directory_the_server_cannot_search_is_550() {
    let f = locked_fx("exact-cwd");
    let mut ftp = login(&f.server);
    expect(&mut ftp, "CWD /open", 250);
    let r = ftp.cmd("CWD /locked");
    assert_eq!(r.0, 550, "CWD into a directory the server may not search: {r:?}");
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/open\""), "a refused CWD leaves the directory");
    expect(&mut ftp, "CWD ../locked", 550);
    expect(&mut ftp, "CDUP", 250);
    expect(&mut ftp, "XCWD locked", 550);
    assert!(expect(&mut ftp, "PWD", 257).starts_with("\"/\""));
    // What CWD refused, the server indeed cannot do.
    let list = ftp.cmd("LIST /locked");
    assert_eq!(list.0, 550, "LIST of the locked directory: {list:?}");
    // Search without read (0711): entering is allowed, as chdir(2) allows
    // it, and names known in advance are served.
    expect(&mut ftp, "CWD /dropbox", 250);
    assert_eq!(ftp.retr_bytes("known.txt").expect("RETR in a 0711 directory"), b"known");
}
