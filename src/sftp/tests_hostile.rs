//! Hostile input: jail escapes through every path-taking request, the permission matrix,
//! malformed, truncated and oversized packets, floods without reading, the handle limit.

use super::attrs::Attrs;
use super::engine::{DirectDisk, Engine, Options, Step};
use super::proto::*;
use super::testkit::{Client, Resp, attrs_bytes, fixture, packet, s, split, u32b, u64b};
use crate::auth::access::{Access, Auth};
use crate::auth::perms::Perms;
use crate::auth::rules::Rules;
use crate::fs::jail::Jail;
use crate::limits;

const RW: u32 = FXF_WRITE | FXF_CREAT | FXF_TRUNC;

/// Every way out of the root a client may try: lexical `..`, absolute, links out.
const ESCAPES: [&[u8]; 8] = [
    b"../outside/secret",
    b"/../../outside/secret",
    b"/esc/outside/secret",
    b"/out/secret",
    b"out/secret",
    b"/abs/passwd",
    b"/esc/outside/new",
    b"/out/new",
];

fn outside_untouched(c: &Client) {
    let names: Vec<_> =
        std::fs::read_dir(c.t.at(b"outside")).expect("outside").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(names, ["secret"], "nothing created or removed outside");
    assert_eq!(c.disk(b"outside/secret"), b"outside");
    let m = std::fs::metadata(c.t.at(b"outside/secret")).expect("meta");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777, 0o644 & !umask_guess());
}

fn umask_guess() -> u32 {
    let t = crate::fs::testdir::TempDir::new("umask");
    let p = t.file(b"f", b"");
    0o666
        & !(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions()) & 0o777)
        & 0o777
}

fn refused(r: &Resp, what: &str) {
    let (code, _) = r.status();
    assert!(code == FX_NO_SUCH_FILE || code == FX_PERMISSION_DENIED || code == FX_FAILURE, "{what}: {r:?}");
    assert_ne!(code, FX_OK, "{what}");
}

#[test]
fn every_path_request_stays_in_the_jail() {
    let mut c = Client::new(Perms::ALL);
    let a = Attrs { perms: Some(0o777), ..Attrs::default() };
    for p in ESCAPES {
        let what = String::from_utf8_lossy(p).into_owned();
        refused(&c.open(p, FXF_READ, &Attrs::default()), &format!("OPEN read {what}"));
        refused(&c.open(p, RW, &Attrs::default()), &format!("OPEN write {what}"));
        refused(&c.open(p, FXF_WRITE | FXF_APPEND, &Attrs::default()), &format!("OPEN append {what}"));
        refused(&c.path_req(FXP_STAT, p), &format!("STAT {what}"));
        refused(&c.path_req(FXP_LSTAT, p), &format!("LSTAT {what}"));
        refused(&c.setstat(p, &a), &format!("SETSTAT {what}"));
        refused(&c.setstat(p, &Attrs { size: Some(0), ..Attrs::default() }), &format!("SETSTAT size {what}"));
        refused(&c.path_req(FXP_OPENDIR, p), &format!("OPENDIR {what}"));
        refused(&c.path_req(FXP_REMOVE, p), &format!("REMOVE {what}"));
        refused(&c.req(FXP_MKDIR, &[s(p), attrs_bytes(&a)].concat()), &format!("MKDIR {what}"));
        refused(&c.path_req(FXP_RMDIR, p), &format!("RMDIR {what}"));
        refused(&c.path_req(FXP_READLINK, p), &format!("READLINK {what}"));
        refused(&c.two(FXP_RENAME, p, b"/pub/stolen"), &format!("RENAME from {what}"));
        refused(&c.two(FXP_RENAME, b"/pub/file.txt", p), &format!("RENAME to {what}"));
        refused(&c.ext(b"posix-rename@openssh.com", &[s(b"/pub/file.txt"), s(p)].concat()), "posix-rename");
        refused(&c.ext(b"statvfs@openssh.com", &s(p)), &format!("statvfs {what}"));
        refused(&c.two(FXP_SYMLINK, p, b"/etc/passwd"), &format!("SYMLINK {what}"));
        // REALPATH answers inside the jail's namespace only.
        let n = c.path_req(FXP_REALPATH, p).names();
        assert!(n[0].0.starts_with(b"/") && !n[0].0.windows(2).any(|w| w == b".."), "{what}");
    }
    // The escape directories themselves: links out are not followed.
    for p in [&b"/out"[..], b"/esc", b"/abs"] {
        refused(&c.path_req(FXP_OPENDIR, p), "OPENDIR link out");
        refused(&c.path_req(FXP_STAT, p), "STAT link out");
        refused(&c.setstat(p, &Attrs { perms: Some(0o777), ..Attrs::default() }), "SETSTAT link out");
        refused(&c.open(p, RW, &Attrs::default()), "OPEN link out");
    }
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hello world");
    assert!(c.t.at(b"root/pub/stolen").symlink_metadata().is_err());
    outside_untouched(&c);
}

#[test]
fn walk_fallback_keeps_the_jail_too() {
    let t = fixture();
    let root = Jail::open(&t.at(b"root"), false).expect("jail");
    // The fd-relative walk (no openat2) must refuse the same escapes.
    let walk = crate::fs::jail::Jail::open_walk_for_tests(&t.at(b"root")).expect("walk");
    let _ = root;
    assert!(!walk.uses_openat2());
    let access = Access { user: "alice".into(), anonymous: false, base: Perms::ALL, jail: Some(walk) };
    let other = Jail::open(&t.at(b"outside"), false).expect("unused");
    let mut c = Client::from_engine(Engine::new(access, &other, Options::default()).expect("engine"), t);
    for p in ESCAPES {
        refused(&c.open(p, FXF_READ, &Attrs::default()), "walk OPEN");
        refused(&c.open(p, RW, &Attrs::default()), "walk OPEN write");
        refused(&c.path_req(FXP_STAT, p), "walk STAT");
        refused(&c.path_req(FXP_OPENDIR, p), "walk OPENDIR");
    }
    outside_untouched(&c);
}

/// What a session without write permissions gets for every changing request.
fn read_only_matrix(c: &mut Client) {
    assert_eq!(c.open(b"/pub/file.txt", FXF_READ, &Attrs::default()).kind, FXP_HANDLE, "reads work");
    assert!(c.readdir_all(b"/pub").len() > 2);
    let denied = |r: Resp, what: &str| assert_eq!(r.code(), FX_PERMISSION_DENIED, "{what}: {r:?}");
    denied(c.open(b"/pub/new", RW, &Attrs::default()), "OPEN create");
    denied(c.open(b"/pub/file.txt", RW, &Attrs::default()), "OPEN trunc");
    denied(c.open(b"/pub/file.txt", FXF_WRITE | FXF_APPEND, &Attrs::default()), "OPEN append");
    denied(c.open(b"/pub/file.txt", FXF_WRITE, &Attrs::default()), "OPEN in place");
    denied(c.path_req(FXP_REMOVE, b"/pub/file.txt"), "REMOVE");
    denied(c.two(FXP_RENAME, b"/pub/file.txt", b"/pub/x"), "RENAME");
    denied(c.ext(b"posix-rename@openssh.com", &[s(b"/pub/file.txt"), s(b"/pub/x")].concat()), "posix-rename");
    denied(c.req(FXP_MKDIR, &[s(b"/pub/d"), attrs_bytes(&Attrs::default())].concat()), "MKDIR");
    denied(c.path_req(FXP_RMDIR, b"/pub/dir"), "RMDIR");
    denied(c.setstat(b"/pub/file.txt", &Attrs { perms: Some(0o777), ..Attrs::default() }), "SETSTAT mode");
    denied(c.setstat(b"/pub/file.txt", &Attrs { size: Some(0), ..Attrs::default() }), "SETSTAT size");
    denied(c.setstat(b"/pub/file.txt", &Attrs { times: Some((1, 1)), ..Attrs::default() }), "SETSTAT times");
    let h = c.open(b"/pub/file.txt", FXF_READ, &Attrs::default()).handle();
    let a = Attrs { perms: Some(0o777), ..Attrs::default() };
    denied(c.req(FXP_FSETSTAT, &[s(&h), attrs_bytes(&a)].concat()), "FSETSTAT");
    denied(c.two(FXP_SYMLINK, b"/pub/l", b"file.txt"), "SYMLINK");
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hello world");
    assert!(c.t.at(b"root/pub/dir").is_dir() && !c.t.at(b"root/pub/new").exists() && !c.t.at(b"root/pub/d").exists());
}

#[test]
fn read_only_user_cannot_change_anything() {
    read_only_matrix(&mut Client::new(Perms::READONLY));
}

#[test]
fn anonymous_never_writes_whatever_the_rules_say() {
    let rules = Rules::parse("anonymous all /\n* all /pub\n").expect("rules");
    let auth = Auth { rules, ..Auth::default() };
    read_only_matrix(&mut Client::with(Perms::ALL, true, Options::default(), auth));
}

#[test]
fn rules_per_folder_apply() {
    let rules = Rules::parse("alice none /private\nalice list /pub/dir\n").expect("rules");
    let auth = Auth { rules, ..Auth::default() };
    let mut c = Client::with(Perms::ALL, false, Options::default(), auth);
    assert_eq!(c.path_req(FXP_OPENDIR, b"/private").code(), FX_PERMISSION_DENIED);
    assert_eq!(c.path_req(FXP_STAT, b"/private").code(), FX_PERMISSION_DENIED);
    assert_eq!(c.open(b"/private/x", RW, &Attrs::default()).code(), FX_PERMISSION_DENIED);
    assert_eq!(c.path_req(FXP_OPENDIR, b"/pub/dir").kind, FXP_HANDLE, "list is enough to list");
    assert_eq!(c.open(b"/pub/dir/x", RW, &Attrs::default()).code(), FX_PERMISSION_DENIED);
    assert_eq!(c.open(b"/pub/x", RW, &Attrs::default()).kind, FXP_HANDLE, "the account's own elsewhere");
}

#[test]
fn append_only_never_overwrites() {
    let mut c = Client::new(Perms::parse("list,read,append").expect("perms"));
    assert_eq!(c.open(b"/pub/file.txt", RW, &Attrs::default()).code(), FX_PERMISSION_DENIED, "TRUNC needs write");
    assert_eq!(c.open(b"/pub/new", RW, &Attrs::default()).code(), FX_PERMISSION_DENIED, "creating needs write");
    let h = c.open(b"/pub/file.txt", FXF_WRITE, &Attrs::default()).handle();
    assert_eq!(c.write(&h, 0, b"X").code(), FX_PERMISSION_DENIED, "below the size at OPEN");
    assert_eq!(c.write(&h, 11, b"!").code(), FX_OK);
    let cut = |n| attrs_bytes(&Attrs { size: Some(n), ..Attrs::default() });
    assert_eq!(c.req(FXP_FSETSTAT, &[s(&h), cut(3)].concat()).code(), FX_PERMISSION_DENIED);
    assert_eq!(c.req(FXP_FSETSTAT, &[s(&h), cut(11)].concat()).code(), FX_OK, "cut back its own bytes");
    assert_eq!(c.close(&h).code(), FX_OK);
    let h = c.open(b"/pub/file.txt", FXF_WRITE | FXF_APPEND, &Attrs::default()).handle();
    assert_eq!(c.write(&h, 0, b"+").code(), FX_OK, "APPEND writes at the end");
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hello world+");
}

#[test]
fn framing_parser_bounds() {
    assert_eq!(frame(b""), Frame::Incomplete);
    assert_eq!(frame(&[0, 0, 0]), Frame::Incomplete);
    assert_eq!(frame(&[0, 0, 0, 5, 1, 0]), Frame::Incomplete);
    assert_eq!(frame(&[0, 0, 0, 5, 1, 0, 0, 0, 3, 9]), Frame::Packet(5));
    assert_eq!(frame(&[0, 0, 0, 0]), Frame::Bad(0));
    assert_eq!(frame(&[0, 0, 0, 4]), Frame::Bad(4));
    assert_eq!(frame(&[0xff, 0xff, 0xff, 0xff]), Frame::Bad(u32::MAX));
    let max = u32::try_from(limits::SFTP_MAX_PACKET).expect("fits");
    assert_eq!(frame(&(max + 1).to_be_bytes()), Frame::Bad(max + 1));
    assert_eq!(frame(&max.to_be_bytes()), Frame::Incomplete);
    assert_eq!(Request::parse(&[FXP_INIT]), Err(Malformed { id: None }));
    assert_eq!(Request::parse(&[FXP_STAT, 0, 0]), Err(Malformed { id: None }));
    assert_eq!(Request::parse(&[FXP_STAT, 0, 0, 0, 7]), Err(Malformed { id: Some(7) }));
    assert_eq!(Request::parse(&[FXP_STAT, 0, 0, 0, 7, 0, 0, 0, 9, b'a']), Err(Malformed { id: Some(7) }));
    assert_eq!(
        Request::parse(&[FXP_STAT, 0, 0, 0, 7, 0, 0, 0, 1, b'a', 0xff]),
        Ok(Request::Stat { id: 7, path: b"a" })
    );
    assert_eq!(Request::parse(&[99, 0, 0, 0, 7]), Ok(Request::Unknown { id: 7, kind: 99 }));
    let w = [vec![FXP_WRITE], u32b(1), s(b"h"), u64b(1 << 40), s(b"data")].concat();
    assert_eq!(Request::parse(&w), Ok(Request::Write { id: 1, handle: b"h", offset: 1 << 40, data: b"data" }));
}

#[test]
fn truncated_fields_get_bad_message_and_the_session_goes_on() {
    let mut c = Client::new(Perms::ALL);
    for body in [&b""[..], &[0, 0, 0, 9, b'x'], &[0, 0, 0]] {
        let r = c.req(FXP_STAT, body);
        assert_eq!(r.status(), (FX_BAD_MESSAGE, "Bad message".into()));
    }
    let r = c.req(FXP_OPEN, &[s(b"/pub/x"), u32b(RW)].concat());
    assert_eq!(r.code(), FX_BAD_MESSAGE, "OPEN without attrs");
    let r = c.req(FXP_READ, &[s(b"h"), u64b(0)].concat());
    assert_eq!(r.code(), FX_BAD_MESSAGE);
    assert!(!c.t.at(b"root/pub/x").exists());
    assert_eq!(c.path_req(FXP_STAT, b"/pub").kind, FXP_ATTRS, "still serving");
    assert!(c.eng.closed().is_none());
}

#[test]
fn bad_framing_ends_the_session() {
    for bytes in [
        vec![0, 0, 0, 0],
        vec![0, 0, 0, 1, FXP_STAT],
        vec![0, 0, 0, 4, FXP_STAT, 0, 0, 0],
        u32b(u32::try_from(limits::SFTP_MAX_PACKET).expect("fits") + 1),
        u32b(u32::MAX),
    ] {
        let mut c = Client::new(Perms::ALL);
        c.feed(&bytes);
        assert!(c.run().is_empty());
        assert!(c.eng.closed().is_some(), "{bytes:?}");
        assert_eq!(c.eng.input_room(), 0);
        assert!(!c.eng.wants_input());
    }
    // A packet too short to carry an id, but framed: closes too (nothing to answer).
    let mut c = Client::new(Perms::ALL);
    c.feed(&[0, 0, 0, 5, FXP_STAT, 0, 0, 0, 1]);
    assert_eq!(c.run()[0].code(), FX_BAD_MESSAGE);
}

#[test]
fn a_client_that_never_reads_is_bounded() {
    let t = fixture();
    t.file(b"root/big", &vec![7u8; 1 << 20]);
    let mut c = Client::on(t, Perms::READONLY, false, Options::default(), Auth::default());
    let h = c.open_ok_pub(b"/big");
    let mut fed = 0usize;
    let mut disk = DirectDisk;
    // Requests keep coming; output is never drained.
    for id in 100..10_100 {
        let p = packet(FXP_READ, Some(id), &[s(&h), u64b(0), u32b(u32::MAX)].concat());
        let took = c.eng.feed(&p);
        fed += took;
        let step = c.eng.process(&c.auth, &mut disk);
        assert!(c.eng.output().len() < limits::SFTP_OUTPUT_HIGH + limits::SFTP_MAX_PACKET + 4);
        if took < p.len() {
            assert!(!c.eng.wants_input());
            assert_eq!(step, Step::OutputFull);
            break;
        }
    }
    assert!(fed < limits::SFTP_MAX_INPUT + limits::SFTP_MAX_PACKET, "{fed}");
    assert_eq!(c.eng.input_room(), 0, "queued requests capped");
    // Draining lets it go on, in order.
    let out = c.eng.output().to_vec();
    c.eng.consume_output(out.len());
    let r = split(&out);
    assert!(r.windows(2).all(|w| w[1].id == w[0].id + 1) && r[0].id == 100);
    assert_eq!(c.eng.process(&c.auth, &mut disk), Step::OutputFull);
    let next = split(c.eng.output());
    assert_eq!(next[0].id, r[r.len() - 1].id + 1, "the next answer follows the last one sent");
    assert_eq!(next[0].data().len(), limits::SFTP_MAX_READ as usize);
}

#[test]
fn a_flood_of_small_requests_is_capped_by_count() {
    let mut c = Client::new(Perms::READONLY);
    let one = packet(FXP_REALPATH, Some(1), &s(b"."));
    let mut taken = 0;
    for _ in 0..1000 {
        if c.eng.feed(&one) < one.len() {
            break;
        }
        taken += 1;
    }
    assert_eq!(taken, limits::SFTP_MAX_QUEUED);
    assert!(!c.eng.wants_input());
    assert_eq!(c.run().len(), limits::SFTP_MAX_QUEUED);
    assert!(c.eng.wants_input());
}

#[test]
fn handle_limit() {
    let mut c = Client::new(Perms::READONLY);
    let mut hs = Vec::new();
    for _ in 0..limits::SFTP_MAX_HANDLES {
        hs.push(c.open_ok_pub(b"/pub/file.txt"));
    }
    let r = c.open(b"/pub/file.txt", FXF_READ, &Attrs::default());
    assert_eq!(r.status(), (FX_FAILURE, "Too many open handles".into()));
    assert_eq!(c.path_req(FXP_OPENDIR, b"/pub").code(), FX_FAILURE);
    assert_eq!(c.close(&hs[7]).code(), FX_OK);
    let again = c.open_ok_pub(b"/pub/file.txt");
    assert_ne!(again, hs[7], "a reused slot gets a new handle string");
    assert_eq!(c.read(&hs[7], 0, 1).code(), FX_FAILURE, "the old string is dead");
    assert_eq!(c.read(&again, 0, 5).data(), b"hello");
    for bogus in [&b""[..], b"1234567", b"123456789", &[0xff; 8]] {
        assert_eq!(c.read(bogus, 0, 1).status(), (FX_FAILURE, "Invalid handle".into()));
    }
    assert_eq!(c.eng.open_handles(), limits::SFTP_MAX_HANDLES);
    c.eng.shutdown();
    assert_eq!(c.eng.open_handles(), 0);
}

impl Client {
    fn open_ok_pub(&mut self, p: &[u8]) -> Vec<u8> {
        self.open(p, FXF_READ, &Attrs::default()).handle()
    }

    fn from_engine(mut eng: Engine, t: crate::fs::testdir::TempDir) -> Client {
        eng.feed(&packet(FXP_INIT, None, &u32b(3)));
        assert_eq!(eng.process(&Auth::default(), &mut DirectDisk), Step::Idle);
        let n = eng.output().len();
        eng.consume_output(n);
        Client::assemble(eng, Auth::default(), t)
    }
}
