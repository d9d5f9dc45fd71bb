//! Unit tests of the engine over a temporary tree: every request type, status codes, the
//! disk seam and the log events. Hostile input, jail escapes and permissions: `tests_hostile`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use super::attrs::Attrs;
use super::engine::{DirectDisk, Disk, Engine, Event, NeedDisk, Options, Step};
use super::proto::*;
use super::testkit::{Client, attrs_bytes, fixture, packet, s, split, u32b, u64b};
use crate::auth::access::{Access, Auth};
use crate::auth::perms::Perms;
use crate::auth::rules::Deny;
use crate::fs::jail::Jail;
use crate::fs::listing::{self, ListFormat, ListOptions};
use crate::fs::time;

const RW: u32 = FXF_WRITE | FXF_CREAT | FXF_TRUNC;

#[test]
fn init_answers_version_3_with_the_extensions() {
    let c = Client::new(Perms::ALL);
    let root = Jail::open(&c.t.at(b"root"), false).expect("jail");
    let mut eng = Engine::new(Access::anonymous(), &root, Options::default()).expect("engine");
    eng.feed(&packet(FXP_INIT, None, &u32b(6)));
    assert_eq!(eng.process(&Auth::default(), &mut DirectDisk), Step::Idle);
    let out = eng.output().to_vec();
    let v = &split(&out)[0];
    let mut r = Reader::new(&v.body);
    assert_eq!(r.u32(), Ok(3));
    let mut names = Vec::new();
    while !r.rest().is_empty() {
        names.push((r.string().expect("name").to_vec(), r.string().expect("data").to_vec()));
    }
    let want: Vec<_> = EXTENSIONS.iter().map(|(n, d)| (n.as_bytes().to_vec(), d.as_bytes().to_vec())).collect();
    assert_eq!(names, want);
    assert!(!names.iter().any(|(n, _)| n.starts_with(b"hardlink")));
}

#[test]
fn requests_before_init_or_a_second_init_end_the_session() {
    let t = fixture();
    let root = Jail::open(&t.at(b"root"), false).expect("jail");
    let mut eng = Engine::new(Access::anonymous(), &root, Options::default()).expect("engine");
    eng.feed(&packet(FXP_STAT, Some(1), &s(b"/")));
    assert_eq!(eng.process(&Auth::default(), &mut DirectDisk), Step::Closed);
    assert_eq!(eng.closed(), Some("request before INIT"));
    assert!(eng.output().is_empty());
    assert_eq!(eng.input_room(), 0);
    let mut c = Client::new(Perms::ALL);
    c.feed(&packet(FXP_INIT, None, &u32b(3)));
    assert!(c.run().is_empty());
    assert_eq!(c.eng.closed(), Some("second INIT"));
}

#[test]
fn open_read_short_reads_and_eof() {
    let mut c = Client::new(Perms::READONLY);
    let h = c.open_ok(b"/pub/file.txt", FXF_READ);
    assert_eq!(h.len(), 8);
    assert_eq!(c.read(&h, 0, 5).data(), b"hello");
    assert_eq!(c.read(&h, 6, 1000).data(), b"world", "short read at the end");
    assert_eq!(c.read(&h, 11, 10).status(), (FX_EOF, "End of file".into()));
    assert_eq!(c.read(&h, u64::MAX, 10).code(), FX_EOF);
    let st = c.req(FXP_FSTAT, &s(&h)).attrs();
    assert_eq!(st.size, Some(11));
    assert_eq!(c.write(&h, 0, b"x").code(), FX_FAILURE, "a read handle does not write");
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.close(&h).status(), (FX_FAILURE, "Invalid handle".into()), "closed handles are gone");
    assert_eq!(c.read(&h, 0, 1).code(), FX_FAILURE);
    assert_eq!(c.open(b"/nope", FXF_READ, &Attrs::default()).code(), FX_NO_SUCH_FILE);
    assert_eq!(c.open(b"/pub", FXF_READ, &Attrs::default()).status(), (FX_FAILURE, "Not a plain file".into()));
    // Relative paths start at the root.
    let h = c.open_ok(b"pub/../pub/./file.txt", FXF_READ);
    assert_eq!(c.read(&h, 0, 5).data(), b"hello");
}

#[test]
fn reads_are_capped_at_the_announced_maximum() {
    let t = fixture();
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    t.file(b"root/big", &big);
    let mut c = Client::on(t, Perms::READONLY, false, Options::default(), Auth::default());
    let h = c.open_ok(b"/big", FXF_READ);
    let d = c.read(&h, 1000, u32::MAX).data();
    assert_eq!(d.len(), crate::limits::SFTP_MAX_READ as usize);
    assert_eq!(d, &big[1000..1000 + d.len()]);
    let lim = c.ext(b"limits@openssh.com", b"").u64s();
    assert_eq!(lim, [256 << 10, (256 << 10) - 1024, (256 << 10) - 1024, 256]);
}

#[test]
fn offsets_past_4_gib_on_a_sparse_file() {
    let t = fixture();
    let f = std::fs::File::create(t.at(b"root/sparse")).expect("create");
    f.set_len(5 << 30).expect("sparse");
    std::os::unix::fs::FileExt::write_all_at(&f, b"past4g", (4 << 30) + 7).expect("write");
    let mut c = Client::on(t, Perms::ALL, false, Options::default(), Auth::default());
    let h = c.open_ok(b"/sparse", FXF_READ);
    assert_eq!(c.read(&h, (4 << 30) + 7, 6).data(), b"past4g");
    assert_eq!(c.read(&h, (5 << 30) - 2, 100).data(), [0, 0]);
    assert_eq!(c.req(FXP_STAT, &s(b"/sparse")).attrs().size, Some(5 << 30));
    // REPUT past 4 GiB: an in-place write at a 64-bit offset.
    let w = c.open_ok(b"/sparse", FXF_WRITE);
    assert_eq!(c.write(&w, (5 << 30) + 1, b"tail").code(), FX_OK);
    assert_eq!(c.close(&w).code(), FX_OK);
    assert_eq!(c.read(&h, (5 << 30) + 1, 10).data(), b"tail");
}

#[test]
fn upload_with_mode_then_fsetstat_and_close() {
    let mut c = Client::new(Perms::ALL);
    let a = Attrs { perms: Some(0o600), ..Attrs::default() };
    let h = c.open(b"/pub/new.bin", RW, &a).handle();
    assert_eq!(c.write(&h, 0, b"0123").code(), FX_OK);
    assert_eq!(c.write(&h, 8, b"89").code(), FX_OK, "writes at offsets leave holes");
    assert_eq!(c.write(&h, 4, b"4567").code(), FX_OK);
    let times = Attrs { times: Some((1_000_000_000, 1_000_000_000)), ..Attrs::default() };
    assert_eq!(c.req(FXP_FSETSTAT, &[s(&h), attrs_bytes(&times)].concat()).code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/new.bin"), b"0123456789");
    let m = std::fs::metadata(c.t.at(b"root/pub/new.bin")).expect("meta");
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(m.mtime(), 1_000_000_000);
    // TRUNC replaces.
    let h = c.open_ok(b"/pub/new.bin", RW);
    assert_eq!(c.write(&h, 0, b"ab").code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/new.bin"), b"ab");
    let want = crate::fs::VPath::root().join(b"/pub/new.bin").expect("vp");
    let ev = c.eng.take_event();
    assert!(
        matches!(&ev, Some(Event::Transfer { path, upload: true, bytes: 10, complete: true, .. }) if *path == want),
        "{ev:?}"
    );
}

#[test]
fn open_flag_combinations() {
    let mut c = Client::new(Perms::ALL);
    // No CREAT: the file must exist.
    assert_eq!(c.open(b"/pub/missing", FXF_WRITE, &Attrs::default()).code(), FX_NO_SUCH_FILE);
    // EXCL: it must not.
    let r = c.open(b"/pub/file.txt", FXF_WRITE | FXF_CREAT | FXF_EXCL, &Attrs::default());
    assert_eq!(r.status(), (FX_FAILURE, "File exists".into()));
    let h = c.open_ok(b"/pub/excl", FXF_WRITE | FXF_CREAT | FXF_EXCL);
    assert_eq!(c.close(&h).code(), FX_OK);
    // APPEND: every write lands at the end, whatever the offset (OpenSSH's reput).
    let h = c.open_ok(b"/pub/file.txt", FXF_WRITE | FXF_CREAT | FXF_APPEND);
    assert_eq!(c.write(&h, 0, b"!").code(), FX_OK);
    assert_eq!(c.write(&h, 3, b"?").code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hello world!?");
    // WRITE without TRUNC: in place.
    let h = c.open_ok(b"/pub/file.txt", FXF_WRITE);
    assert_eq!(c.write(&h, 0, b"J").code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"Jello world!?");
    // READ|WRITE: one handle does both.
    let h = c.open_ok(b"/pub/rw", FXF_READ | FXF_WRITE | FXF_CREAT);
    assert_eq!(c.write(&h, 0, b"both").code(), FX_OK);
    assert_eq!(c.read(&h, 1, 10).data(), b"oth");
    assert_eq!(c.close(&h).code(), FX_OK);
    // Creation flags without WRITE only read.
    assert_eq!(c.open(b"/pub/ghost", FXF_READ | FXF_CREAT, &Attrs::default()).code(), FX_NO_SUCH_FILE);
    assert!(!c.t.at(b"root/pub/ghost").exists());
    // A directory or a symlink is never written through.
    assert_eq!(c.open(b"/pub/dir", RW, &Attrs::default()).code(), FX_FAILURE);
    assert_eq!(c.open(b"/pub/alias", RW, &Attrs::default()).code(), FX_FAILURE);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"Jello world!?");
}

#[test]
fn one_uploader_per_file() {
    let mut c = Client::new(Perms::ALL);
    let h = c.open_ok(b"/pub/up", RW);
    let r = c.open(b"/pub/up", RW, &Attrs::default());
    assert_eq!(r.status(), (FX_FAILURE, "File busy: another upload to this name is in progress".into()));
    let r = c.setstat(b"/pub/up", &Attrs { size: Some(0), ..Attrs::default() });
    assert_eq!(r.code(), FX_FAILURE, "truncation waits for the upload too");
    assert_eq!(c.close(&h).code(), FX_OK);
    let h = c.open_ok(b"/pub/up", RW);
    assert_eq!(c.close(&h).code(), FX_OK);
}

#[test]
fn atomic_uploads_publish_on_close_only() {
    let opts = Options { atomic_uploads: true, ..Options::default() };
    let deny = Deny::new(&[crate::fs::write::TEMP_PATTERN.to_string()]).expect("deny");
    let auth = Auth { deny: Arc::new(deny), ..Auth::default() };
    let mut c = Client::with(Perms::ALL, false, opts, auth);
    let h = c.open_ok(b"/pub/file.txt", RW);
    assert_eq!(c.write(&h, 0, b"new").code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hello world", "readers still see the old file");
    assert_eq!(c.disk(b"root/pub/.file.txt.part"), b"new");
    assert_eq!(c.path_req(FXP_STAT, b"/pub/.file.txt.part").code(), FX_NO_SUCH_FILE);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"new");
    assert!(!c.t.at(b"root/pub/.file.txt.part").exists());
    // APPEND (reput) starts from the published bytes.
    let h = c.open_ok(b"/pub/file.txt", FXF_WRITE | FXF_CREAT | FXF_APPEND);
    assert_eq!(c.req(FXP_FSTAT, &s(&h)).attrs().size, Some(3));
    assert_eq!(c.write(&h, 3, b"+more").code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"new+more");
    // A session cut before CLOSE publishes nothing; the temporary stays.
    let h = c.open_ok(b"/pub/cut", RW);
    assert_eq!(c.write(&h, 0, b"partial").code(), FX_OK);
    c.eng.shutdown();
    assert!(!c.t.at(b"root/pub/cut").exists());
    assert_eq!(c.disk(b"root/pub/.cut.part"), b"partial");
    let events: Vec<_> = std::iter::from_fn(|| c.eng.take_event()).collect();
    assert!(events.iter().any(|e| matches!(e, Event::Transfer { complete: false, bytes: 7, upload: true, .. })));
}

/// Found by the `sftp_engine` fuzz target: under atomic uploads a write-open without TRUNC
/// copies the published file on the event loop; a client that made a huge sparse file (a
/// WRITE far past the end) could stall a reactor for minutes. Over the inline bound the
/// open is refused and nothing is copied.
#[test]
fn atomic_reopen_never_copies_a_huge_file_on_the_loop() {
    let opts = Options { atomic_uploads: true, ..Options::default() };
    let mut c = Client::with(Perms::ALL, false, opts, Auth::default());
    let h = c.open_ok(b"/pub/sparse", FXF_WRITE | FXF_CREAT | FXF_TRUNC);
    assert_eq!(c.write(&h, 24 << 30, b"x").code(), FX_OK);
    assert_eq!(c.close(&h).code(), FX_OK);
    let started = std::time::Instant::now();
    let r = c.open(b"/pub/sparse", FXF_WRITE, &Attrs::default());
    assert_eq!(r.code(), FX_FAILURE, "refused, not copied");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    let temp = c.t.at(b"root/pub/.sparse.part");
    assert!(std::fs::metadata(&temp).map_or(0, |m| m.len()) == 0, "the temporary holds no copy");
    // A small file is still reopened from its published bytes.
    let h = c.open_ok(b"/pub/file.txt", FXF_WRITE);
    assert_eq!(c.req(FXP_FSTAT, &s(&h)).attrs().size, Some(11));
    assert_eq!(c.close(&h).code(), FX_OK);
}

#[test]
fn stat_lstat_fstat_attributes() {
    let mut c = Client::new(Perms::READONLY);
    let m = std::fs::metadata(c.t.at(b"root/pub/file.txt")).expect("meta");
    let a = c.path_req(FXP_STAT, b"/pub/file.txt").attrs();
    let mt = u32::try_from(m.mtime()).expect("mtime");
    assert_eq!(a, Attrs { size: Some(11), uid_gid: None, perms: Some(m.mode()), times: Some((mt, mt)) });
    assert_eq!(c.path_req(FXP_STAT, b"/pub/alias").attrs().size, Some(11), "STAT follows");
    let l = c.path_req(FXP_LSTAT, b"/pub/alias").attrs();
    assert_eq!(l.perms.map(|p| p & libc::S_IFMT), Some(libc::S_IFLNK), "LSTAT does not");
    assert_eq!(l.size, Some(8));
    assert_eq!(c.path_req(FXP_LSTAT, b"/abs").attrs().size, Some(0), "a link out of the jail hides its length");
    assert_eq!(c.path_req(FXP_STAT, b"/pub").attrs().perms.map(|p| p & libc::S_IFMT), Some(libc::S_IFDIR));
    assert_eq!(c.path_req(FXP_STAT, b"/").attrs().perms.map(|p| p & libc::S_IFMT), Some(libc::S_IFDIR));
    assert_eq!(c.path_req(FXP_STAT, b"/nope").status(), (FX_NO_SUCH_FILE, "No such file or directory".into()));
    assert_eq!(c.path_req(FXP_STAT, b"/pub/file.txt/x").code(), FX_NO_SUCH_FILE);
    let d = c.path_req(FXP_OPENDIR, b"/pub").handle();
    assert_eq!(c.req(FXP_FSTAT, &s(&d)).attrs().perms.map(|p| p & libc::S_IFMT), Some(libc::S_IFDIR));
}

#[test]
fn setstat_changes_mode_times_size_never_owner() {
    let mut c = Client::new(Perms::ALL);
    let r = c.setstat(
        b"/pub/file.txt",
        &Attrs { perms: Some(0o100640), times: Some((5, 1_234_567_890)), ..Attrs::default() },
    );
    assert_eq!(r.code(), FX_OK);
    let m = std::fs::metadata(c.t.at(b"root/pub/file.txt")).expect("meta");
    assert_eq!((m.mode() & 0o7777, m.mtime(), m.atime()), (0o640, 1_234_567_890, 5));
    assert_eq!(c.setstat(b"/pub/file.txt", &Attrs { size: Some(4), ..Attrs::default() }).code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/file.txt"), b"hell");
    let r = c.setstat(b"/pub/file.txt", &Attrs { uid_gid: Some((0, 0)), ..Attrs::default() });
    assert_eq!(r.status(), (FX_PERMISSION_DENIED, "Changing the owner is not allowed".into()));
    assert_eq!(c.setstat(b"/pub/dir", &Attrs { perms: Some(0o700), ..Attrs::default() }).code(), FX_OK);
    let m = std::fs::metadata(c.t.at(b"root/pub/dir")).expect("meta");
    assert_eq!(m.mode() & 0o777, 0o700);
    assert_eq!(c.setstat(b"/pub/nope", &Attrs { perms: Some(0o700), ..Attrs::default() }).code(), FX_NO_SUCH_FILE);
    // Setuid bits never stick.
    assert_eq!(c.setstat(b"/pub/file.txt", &Attrs { perms: Some(0o4755), ..Attrs::default() }).code(), FX_OK);
    let m = std::fs::metadata(c.t.at(b"root/pub/file.txt")).expect("meta");
    assert_eq!(m.mode() & 0o7777, 0o755);
    // FSETSTAT size needs a write handle.
    let h = c.open_ok(b"/pub/file.txt", FXF_READ);
    let r = c.req(FXP_FSETSTAT, &[s(&h), attrs_bytes(&Attrs { size: Some(1), ..Attrs::default() })].concat());
    assert_eq!(r.code(), FX_FAILURE);
}

#[test]
fn readdir_long_names_match_list_and_batches_are_bounded() {
    let t = fixture();
    for i in 0..250 {
        t.file(format!("root/pub/dir/f{i:03}").as_bytes(), b"x");
    }
    let mut c = Client::on(t, Perms::READONLY, false, Options::default(), Auth::default());
    let all = c.readdir_all(b"/pub/dir");
    assert_eq!(all.len(), 252);
    assert_eq!(all[0].0, b".");
    assert_eq!(all[1].0, b"..");
    let entries = c.readdir_all(b"/pub");
    let names: Vec<_> = entries.iter().map(|e| e.0.clone()).collect();
    for n in [&b"."[..], b"..", b"file.txt", b"dir", b"alias", b"skip.iso"] {
        assert!(names.contains(&n.to_vec()), "{}", String::from_utf8_lossy(n));
    }
    let (_, long, a) = entries.iter().find(|e| e.0 == b"file.txt").expect("file");
    assert_eq!(a.size, Some(11));
    let st = c.eng_jail_stat(b"/pub/file.txt");
    let mut line = Vec::new();
    let opts = ListOptions::new(ListFormat::List, time::now_secs());
    listing::push_single(&mut line, ListFormat::List, b"file.txt", &st, None, &opts);
    assert_eq!(long, &line[..line.len() - 2], "the long name is LIST's line");
    let (_, long, _) = entries.iter().find(|e| e.0 == b"alias").expect("alias");
    assert!(long.ends_with(b" alias -> file.txt"), "{}", String::from_utf8_lossy(long));
    // The root lists dot files (the client hides them) but links out show no target.
    let root = c.readdir_all(b"/");
    let (_, long, a) = root.iter().find(|e| e.0 == b"abs").expect("abs");
    assert!(long.ends_with(b" abs") && a.size == Some(0), "{}", String::from_utf8_lossy(long));
    assert!(root.iter().any(|e| e.0 == b".hidden"));
    assert_eq!(c.path_req(FXP_OPENDIR, b"/pub/file.txt").code(), FX_NO_SUCH_FILE);
    let h = c.open_ok(b"/pub/file.txt", FXF_READ);
    assert_eq!(c.req(FXP_READDIR, &s(&h)).code(), FX_FAILURE, "a file handle does not list");
}

#[test]
fn readdir_hides_dot_files_and_denied_names_by_policy() {
    let t = fixture();
    let root = Jail::open(&t.at(b"root"), true).expect("jail");
    let access = Access { user: "alice".into(), anonymous: false, base: Perms::ALL, jail: Some(root) };
    let other = Jail::open(&t.at(b"outside"), false).expect("unused root");
    let auth = Auth { deny: Arc::new(Deny::new(&["*.iso".to_string()]).expect("deny")), ..Auth::default() };
    let eng = Engine::new(access, &other, Options::default()).expect("engine");
    let mut c = Client::assemble(eng, auth, t);
    c.feed(&packet(FXP_INIT, None, &u32b(3)));
    c.run();
    let root = c.readdir_all(b"/");
    assert!(!root.iter().any(|e| e.0 == b".hidden"), "deny_dotfiles hides them");
    assert!(root.iter().any(|e| e.0 == b"." || e.0 == b".."));
    let pubd = c.readdir_all(b"/pub");
    assert!(!pubd.iter().any(|e| e.0 == b"skip.iso"), "--deny hides them");
    assert_eq!(c.path_req(FXP_STAT, b"/pub/skip.iso").code(), FX_NO_SUCH_FILE);
    assert_eq!(c.open(b"/pub/skip.iso", FXF_READ, &Attrs::default()).code(), FX_NO_SUCH_FILE);
    assert_eq!(c.open(b"/pub/new.iso", RW, &Attrs::default()).code(), FX_NO_SUCH_FILE);
    assert_eq!(c.path_req(FXP_STAT, b"/.hidden").code(), FX_NO_SUCH_FILE);
    assert_eq!(c.path_req(FXP_REALPATH, b"/pub/x.iso/..").names()[0].0, b"/pub", "lexical first");
    assert_eq!(c.path_req(FXP_REALPATH, b"/pub/x.iso").code(), FX_NO_SUCH_FILE);
}

impl Client {
    fn eng_jail_stat(&self, p: &[u8]) -> crate::fs::jail::Stat {
        let jail = Jail::open(&self.t.at(b"root"), false).expect("jail");
        jail.lstat(&crate::fs::VPath::root().join(p).expect("vp")).expect("stat")
    }
}

#[test]
fn remove_mkdir_rmdir_rename() {
    let mut c = Client::new(Perms::ALL);
    let a = Attrs { perms: Some(0o750), ..Attrs::default() };
    assert_eq!(c.req(FXP_MKDIR, &[s(b"/pub/new"), attrs_bytes(&a)].concat()).code(), FX_OK);
    assert_eq!(std::fs::metadata(c.t.at(b"root/pub/new")).expect("dir").mode() & 0o777, 0o750 & !0o022 & 0o777);
    assert_eq!(
        c.req(FXP_MKDIR, &[s(b"/pub/new"), attrs_bytes(&a)].concat()).status(),
        (FX_FAILURE, "File exists".into())
    );
    assert_eq!(c.path_req(FXP_REMOVE, b"/pub/new").code(), FX_FAILURE, "REMOVE is for files");
    assert_eq!(c.path_req(FXP_RMDIR, b"/pub").status(), (FX_FAILURE, "Directory not empty".into()));
    assert_eq!(c.path_req(FXP_RMDIR, b"/pub/new").code(), FX_OK);
    assert_eq!(c.path_req(FXP_RMDIR, b"/pub/new").code(), FX_NO_SUCH_FILE);
    // RENAME (v3) never replaces; posix-rename does.
    c.t.file(b"root/pub/b", b"b");
    assert_eq!(c.two(FXP_RENAME, b"/pub/file.txt", b"/pub/b").status(), (FX_FAILURE, "File exists".into()));
    assert_eq!(c.disk(b"root/pub/b"), b"b");
    assert_eq!(c.two(FXP_RENAME, b"/pub/file.txt", b"/pub/c").code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/c"), b"hello world");
    assert_eq!(c.two(FXP_RENAME, b"/pub/gone", b"/pub/d").code(), FX_NO_SUCH_FILE);
    let r = c.ext(b"posix-rename@openssh.com", &[s(b"/pub/c"), s(b"/pub/b")].concat());
    assert_eq!(r.code(), FX_OK);
    assert_eq!(c.disk(b"root/pub/b"), b"hello world");
    assert_eq!(c.path_req(FXP_REMOVE, b"/pub/b").code(), FX_OK);
    assert!(!c.t.at(b"root/pub/b").exists());
    assert_eq!(c.path_req(FXP_REMOVE, b"/pub/alias").code(), FX_OK, "a link itself is removed");
    assert!(c.t.at(b"root/pub/c").symlink_metadata().is_err());
    let ev: Vec<_> = std::iter::from_fn(|| c.eng.take_event()).collect();
    assert!(ev.iter().any(|e| matches!(e, Event::Change { op: "MKDIR", error: None, .. })));
    assert!(ev.iter().any(|e| matches!(e, Event::Change { op: "RENAME", error: Some(_), .. })));
}

#[test]
fn realpath_is_lexical_and_rooted() {
    let mut c = Client::new(Perms::READONLY);
    for (arg, want) in [
        (&b"."[..], &b"/"[..]),
        (b"", b"/"),
        (b"..", b"/"),
        (b"/../../..", b"/"),
        (b"pub/./dir/..", b"/pub"),
        (b"/esc/etc", b"/esc/etc"),
        (b"no/such", b"/no/such"),
    ] {
        let n = c.path_req(FXP_REALPATH, arg).names();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].0, want, "{}", String::from_utf8_lossy(arg));
    }
    assert_eq!(c.path_req(FXP_REALPATH, b"a\0b").code(), FX_FAILURE);
}

#[test]
fn readlink_shows_only_targets_inside() {
    let mut c = Client::new(Perms::READONLY);
    assert_eq!(c.path_req(FXP_READLINK, b"/pub/alias").names()[0].0, b"file.txt");
    for out in [&b"/abs"[..], b"/esc", b"/out"] {
        assert_eq!(c.path_req(FXP_READLINK, out).code(), FX_NO_SUCH_FILE);
    }
    assert_eq!(c.path_req(FXP_READLINK, b"/pub/file.txt").status(), (FX_FAILURE, "Not a symbolic link".into()));
}

#[test]
fn symlink_hardlink_unknown_are_refused() {
    let mut c = Client::new(Perms::ALL);
    let r = c.two(FXP_SYMLINK, b"/pub/l", b"file.txt");
    assert_eq!(r.status(), (FX_PERMISSION_DENIED, "Creating symbolic links is not allowed".into()));
    assert!(c.t.at(b"root/pub/l").symlink_metadata().is_err());
    let r = c.ext(b"hardlink@openssh.com", &[s(b"/pub/file.txt"), s(b"/pub/h")].concat());
    assert_eq!(r.code(), FX_OP_UNSUPPORTED);
    assert!(!c.t.at(b"root/pub/h").exists());
    assert_eq!(c.ext(b"copy-data", b"").code(), FX_OP_UNSUPPORTED);
    assert_eq!(c.req(77, b"").status(), (FX_OP_UNSUPPORTED, "Unknown request".into()));
}

#[test]
fn statvfs_fstatvfs_fsync() {
    let mut c = Client::new(Perms::ALL);
    let v = c.ext(b"statvfs@openssh.com", &s(b"/pub")).u64s();
    assert_eq!(v.len(), 11);
    assert!(v[0] > 0 && v[2] > 0 && v[10] > 0, "{v:?}");
    let h = c.open_ok(b"/pub/sync", RW);
    assert_eq!(c.ext(b"fstatvfs@openssh.com", &s(&h)).u64s().len(), 11);
    assert_eq!(c.ext(b"fsync@openssh.com", &s(&h)).code(), FX_OK);
    assert_eq!(c.ext(b"fsync@openssh.com", &s(b"bogus")).code(), FX_FAILURE);
    assert_eq!(c.ext(b"statvfs@openssh.com", &s(b"/nope")).code(), FX_NO_SUCH_FILE);
    assert_eq!(c.ext(b"statvfs@openssh.com", b"\0\0").code(), FX_BAD_MESSAGE);
}

#[test]
fn disk_errors_map_to_failure_with_their_text() {
    use super::engine::Fail;
    for (errno, text) in [
        (libc::ENOSPC, "No space left on device"),
        (libc::EDQUOT, "Storage quota or file size limit exceeded"),
        (libc::EFBIG, "Storage quota or file size limit exceeded"),
        (libc::EIO, "Local file system error"),
    ] {
        let f = Fail::from(std::io::Error::from_raw_os_error(errno));
        assert_eq!((f.0, f.1.as_str()), (FX_FAILURE, text));
    }
    let f = Fail::from(std::io::Error::from_raw_os_error(libc::EACCES));
    assert_eq!(f.0, FX_PERMISSION_DENIED);
    let f = Fail::from(std::io::Error::from_raw_os_error(libc::EMFILE));
    assert_eq!((f.0, f.1.as_str()), (FX_FAILURE, "Server out of file descriptors; try again later"));
}

/// A disk whose cache is cold until told otherwise.
struct Cold {
    warm: bool,
    asked: u32,
}

impl Disk for Cold {
    fn read_at(&mut self, f: &std::fs::File, buf: &mut [u8], off: u64) -> Option<std::io::Result<usize>> {
        self.asked += 1;
        if self.warm { DirectDisk.read_at(f, buf, off) } else { None }
    }

    fn sync(&mut self, f: &std::fs::File) -> Option<std::io::Result<()>> {
        if self.warm { DirectDisk.sync(f) } else { None }
    }
}

#[test]
fn a_cold_read_waits_at_the_head_of_the_queue() {
    let mut c = Client::new(Perms::ALL);
    let h = c.open_ok(b"/pub/file.txt", FXF_READ);
    c.feed(&packet(FXP_READ, Some(50), &[s(&h), u64b(6), u32b(5)].concat()));
    c.feed(&packet(FXP_STAT, Some(51), &s(b"/pub")));
    let mut cold = Cold { warm: false, asked: 0 };
    let step = c.eng.process(&c.auth, &mut cold);
    let Step::NeedDisk(NeedDisk::Read { handle, offset: 6, len: 5 }) = step else { panic!("{step:?}") };
    assert!(c.eng.output().is_empty(), "nothing answered out of order");
    assert_eq!(c.eng.file(handle).expect("file").metadata().expect("meta").len(), 11);
    assert_eq!(c.eng.process(&c.auth, &mut cold), step, "still waiting");
    cold.warm = true;
    assert_eq!(c.eng.process(&c.auth, &mut cold), Step::Idle);
    assert_eq!(cold.asked, 3);
    let r = split(c.eng.output());
    assert_eq!((r[0].id, r[0].data()), (50, b"world".to_vec()));
    assert_eq!((r[1].id, r[1].kind), (51, FXP_ATTRS));
}

/// A disk whose reads stop short, as `preadv2(RWF_NOWAIT)` does where the page cache ends:
/// `chunk` bytes per call, then (with `cold_after`) nothing until warm.
struct Partial {
    chunk: usize,
    cold_after: Option<u32>,
    calls: u32,
    warm: bool,
}

impl Disk for Partial {
    fn read_at(&mut self, f: &std::fs::File, buf: &mut [u8], off: u64) -> Option<std::io::Result<usize>> {
        self.calls += 1;
        if self.warm {
            return DirectDisk.read_at(f, buf, off);
        }
        if self.cold_after.is_some_and(|n| self.calls > n) {
            return None;
        }
        let n = buf.len().min(self.chunk);
        DirectDisk.read_at(f, &mut buf[..n], off)
    }

    fn sync(&mut self, f: &std::fs::File) -> Option<std::io::Result<()>> {
        DirectDisk.sync(f)
    }
}

#[test]
fn a_short_disk_read_never_makes_a_short_data_before_the_end() {
    let mut c = Client::new(Perms::ALL);
    let h = c.open_ok(b"/pub/file.txt", FXF_READ);
    // Reads of 3 bytes at a time: the reply holds all that was asked, or up to the end.
    let mut disk = Partial { chunk: 3, cold_after: None, calls: 0, warm: false };
    for (id, off, len, want) in [(60, 0, 11, &b"hello world"[..]), (61, 2, 5, b"llo w"), (62, 6, 100, b"world")] {
        c.feed(&packet(FXP_READ, Some(id), &[s(&h), u64b(off), u32b(len)].concat()));
        assert_eq!(c.eng.process(&c.auth, &mut disk), Step::Idle);
        let r = split(c.eng.output());
        c.eng.consume_output(c.eng.output().len());
        assert_eq!((r[0].id, r[0].data()), (id, want.to_vec()));
    }
    // Part of the range cached, the rest not: nothing is answered until the disk was read.
    let mut disk = Partial { chunk: 4, cold_after: Some(1), calls: 0, warm: false };
    c.feed(&packet(FXP_READ, Some(63), &[s(&h), u64b(0), u32b(11)].concat()));
    let step = c.eng.process(&c.auth, &mut disk);
    assert!(matches!(step, Step::NeedDisk(NeedDisk::Read { offset: 0, len: 11, .. })), "{step:?}");
    assert!(c.eng.output().is_empty(), "a partial reply was sent: {:?}", c.eng.output());
    disk.warm = true;
    assert_eq!(c.eng.process(&c.auth, &mut disk), Step::Idle);
    let r = split(c.eng.output());
    assert_eq!((r[0].id, r[0].data()), (63, b"hello world".to_vec()));
}

#[test]
fn fsync_uploads_waits_for_the_disk_before_close() {
    let opts = Options { fsync_uploads: true, ..Options::default() };
    let mut c = Client::with(Perms::ALL, false, opts, Auth::default());
    let h = c.open_ok(b"/pub/s", RW);
    assert_eq!(c.write(&h, 0, b"x").code(), FX_OK);
    c.feed(&packet(FXP_CLOSE, Some(9), &s(&h)));
    let mut cold = Cold { warm: false, asked: 0 };
    let step = c.eng.process(&c.auth, &mut cold);
    assert!(matches!(step, Step::NeedDisk(NeedDisk::Sync { .. })), "{step:?}");
    assert_eq!(c.eng.open_handles(), 1);
    cold.warm = true;
    assert_eq!(c.eng.process(&c.auth, &mut cold), Step::Idle);
    assert_eq!(split(c.eng.output())[0].code(), FX_OK);
    assert_eq!(c.eng.open_handles(), 0);
}
