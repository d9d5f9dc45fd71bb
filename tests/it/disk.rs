//! The disk (issue 11): a download whose next range is not in the page cache
//! waits for a disk helper (`--disk-threads`) instead of reading it on the
//! event loop. Files are made cold with POSIX_FADV_DONTNEED (no root needed),
//! and the test checks with cachestat that they really are.
//! `MIRRORFTPD_TEST_DISK_DELAY_MS` makes every helper job slow, to see what
//! the event loop does meanwhile.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use mirrorftpd::io::cache::{self, Residency};

use crate::util::{Ftp, IO_TIMEOUT, Server, temp_dir};

const MIB: usize = 1 << 20;

/// Deterministic bytes that differ from window to window.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `bytes` to `path`, synced so the pages are clean.
fn put(path: &Path, bytes: &[u8]) {
    let mut f = File::create(path).expect("create");
    f.write_all(bytes).expect("write");
    f.sync_all().expect("fsync");
}

/// Drops `path` from the page cache and checks that it is gone.
#[track_caller]
pub(crate) fn make_cold(path: &Path) {
    let f = File::open(path).expect("open");
    f.sync_all().expect("fsync: only clean pages can be dropped");
    cache::evict(f.as_fd()).expect("posix_fadvise(DONTNEED)");
    let len = f.metadata().expect("stat").len();
    assert_eq!(cache::cachestat(f.as_fd(), 0, len), Residency::Missing, "{} is still cached", path.display());
}

/// The address of the server's `/metrics` (started with `--metrics-listen 127.0.0.1:0`).
fn metrics_addr(server: &Server) -> SocketAddr {
    assert!(server.wait_log("metrics on http://", Duration::from_secs(5)), "{}", server.log());
    let log = server.log();
    let rest = log.split_once("metrics on http://").map(|(_, r)| r).unwrap_or_default();
    rest.split_once("/metrics").map(|(a, _)| a).unwrap_or_default().parse().expect("metrics address")
}

/// The value of one metrics series.
#[track_caller]
pub(crate) fn counter(server: &Server, series: &str) -> u64 {
    let mut s = TcpStream::connect_timeout(&metrics_addr(server), IO_TIMEOUT).expect("connect to metrics");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
        .parse()
        .expect("a number")
}

/// Waits until `series` reaches `want` (helpers finish on their own time).
#[track_caller]
fn wait_counter(server: &Server, series: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = counter(server, series);
        if v >= want {
            assert_eq!(v, want, "{series}");
            return;
        }
        assert!(Instant::now() < deadline, "{series} stays at {v}, want {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Disk helper jobs completed, whatever the result.
fn jobs_done(server: &Server) -> u64 {
    ["ok", "cancelled", "failed"]
        .iter()
        .map(|r| counter(server, &format!("mirrorftpd_disk_done_total{{result=\"{r}\"}}")))
        .sum()
}

/// Every job submitted came back: nothing is left pending in the helpers.
#[track_caller]
fn no_job_left(server: &Server) {
    let jobs = counter(server, "mirrorftpd_disk_jobs_total");
    assert_eq!(jobs, jobs_done(server), "disk jobs submitted vs completed");
}

fn retr(server: &Server, path: &str, ascii: bool) -> Vec<u8> {
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    if ascii {
        assert_eq!(ftp.cmd("TYPE A").0, 200);
    }
    ftp.retr_bytes(path).unwrap_or_else(|r| panic!("RETR {path}: {r:?}"))
}

#[test]
fn cold_downloads_are_exact_over_sendfile_and_ascii_and_wait_for_the_helpers() {
    let root = temp_dir("disk-cold");
    let big = pattern(10 * MIB + 123, 1);
    put(&root.join("big.bin"), &big);
    let text: Vec<u8> = b"line one\nline two\r\nno newline at the end".repeat(60_000);
    put(&root.join("text.txt"), &text);
    let server = Server::start(&root, &["--workers", "1", "--metrics-listen", "127.0.0.1:0"]);

    make_cold(&root.join("big.bin"));
    assert!(retr(&server, "/big.bin", false) == big, "sendfile download differs");
    let jobs = counter(&server, "mirrorftpd_disk_jobs_total");
    assert!(jobs >= 1, "a cold sendfile range went to a disk helper");

    make_cold(&root.join("text.txt"));
    let got = retr(&server, "/text.txt", true);
    let want = String::from_utf8(text.clone()).expect("utf-8").replace("\r\n", "\n").replace('\n', "\r\n");
    assert!(got == want.as_bytes(), "ASCII download differs");
    assert!(counter(&server, "mirrorftpd_disk_jobs_total") > jobs, "a cold ASCII read went to a disk helper");

    // REST into the middle of a cold file.
    make_cold(&root.join("big.bin"));
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    let mut data = ftp.pasv_connect();
    assert_eq!(ftp.cmd("REST 5000000").0, 350);
    assert_eq!(ftp.cmd("RETR /big.bin").0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("data");
    assert_eq!(ftp.reply().0, 226);
    assert!(got == big[5_000_000..], "download from REST differs");
    no_job_left(&server);
    assert_eq!(counter(&server, "mirrorftpd_disk_queue_full_total"), 0);
}

/// Started as root with --run-as nobody, the server may not use cachestat on
/// files it does not own (EPERM since Linux 6.10): the preadv2(RWF_NOWAIT)
/// probe finds the cold range instead.
#[test]
fn cold_downloads_use_the_nowait_probe_where_cachestat_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED-LOUDLY: needs root to start the server as nobody");
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        return;
    }
    let root = temp_dir("disk-probe");
    let big = pattern(9 * MIB, 2);
    put(&root.join("big.bin"), &big);
    let server = Server::start(&root, &["--run-as", "nobody", "--workers", "1", "--metrics-listen", "127.0.0.1:0"]);
    make_cold(&root.join("big.bin"));
    assert!(retr(&server, "/big.bin", false) == big, "download differs");
    assert!(counter(&server, "mirrorftpd_disk_jobs_total") >= 1, "the probe sent the cold range to a helper");
    no_job_left(&server);
}

/// `--disk-check none` is the path of a kernel without cachestat or
/// RWF_NOWAIT: everything is read on the event loop, still exact.
#[test]
fn disk_check_none_reads_in_place_and_stays_exact() {
    let root = temp_dir("disk-none");
    let big = pattern(6 * MIB + 7, 3);
    put(&root.join("big.bin"), &big);
    let server = Server::start(&root, &["--disk-check", "none", "--metrics-listen", "127.0.0.1:0"]);
    make_cold(&root.join("big.bin"));
    assert!(retr(&server, "/big.bin", false) == big);
    make_cold(&root.join("big.bin"));
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(ftp.cmd("TYPE A").0, 200);
    let mut want = Vec::with_capacity(big.len() * 2);
    let mut prev = 0u8;
    for &b in &big {
        if b == b'\n' && prev != b'\r' {
            want.push(b'\r');
        }
        want.push(b);
        prev = b;
    }
    assert!(ftp.retr_bytes("/big.bin").expect("ASCII RETR") == want, "ASCII download differs");
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), 0);
}

/// A slow disk (every helper job takes 1.5 s): while one download waits for
/// it, another session on the same (single) worker is served at once.
#[test]
fn a_download_waiting_for_the_disk_does_not_stop_the_event_loop() {
    let root = temp_dir("disk-slow");
    let big = pattern(3 * MIB, 4);
    put(&root.join("big.bin"), &big);
    put(&root.join("small.txt"), b"small and cached");
    let server = Server::start_env(
        &root,
        &["--workers", "1", "--disk-threads", "1", "--metrics-listen", "127.0.0.1:0"],
        &[("MIRRORFTPD_TEST_DISK_DELAY_MS", "1500")],
    );
    let _ = retr(&server, "/small.txt", false); // cached now
    make_cold(&root.join("big.bin"));

    let mut slow = Ftp::connect(server.addr);
    slow.login_anon();
    let mut data = slow.pasv_connect();
    let t0 = Instant::now();
    let r = slow.cmd("RETR /big.bin");
    assert_eq!(r.0, 150, "{r:?}");

    // The other session logs in, lists and downloads while the first waits.
    let mut other = Ftp::connect(server.addr);
    other.login_anon();
    assert_eq!(other.retr_bytes("/small.txt").expect("small RETR"), b"small and cached");
    let served = t0.elapsed();
    assert!(served < Duration::from_millis(1000), "the other session took {served:?}");

    let mut first = [0u8; 1];
    data.read_exact(&mut first).expect("first byte");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(1400), "the first byte came after {waited:?}, before the disk job");
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).expect("rest");
    assert_eq!(slow.reply().0, 226);
    assert!(first[..] == big[..1] && rest[..] == big[1..], "slow download differs");
    no_job_left(&server);
}

/// ABOR and a disconnect while a helper job is pending: the job is cancelled,
/// its completion touches nothing (the slot may be someone else's by then),
/// and the server goes on serving.
#[test]
fn abor_and_disconnect_cancel_a_pending_disk_read() {
    let root = temp_dir("disk-cancel");
    let big = pattern(2 * MIB, 5);
    put(&root.join("big.bin"), &big);
    put(&root.join("small.txt"), b"still here");
    let server = Server::start_env(
        &root,
        &["--workers", "1", "--disk-threads", "1", "--metrics-listen", "127.0.0.1:0"],
        &[("MIRRORFTPD_TEST_DISK_DELAY_MS", "700")],
    );
    let _ = retr(&server, "/small.txt", false);
    let cancelled = "mirrorftpd_disk_done_total{result=\"cancelled\"}";

    // ABOR while the first range is with the helper.
    make_cold(&root.join("big.bin"));
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    let data = ftp.pasv_connect();
    assert_eq!(ftp.cmd("RETR /big.bin").0, 150);
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), 1);
    let a = ftp.cmd("ABOR");
    assert!(a.0 == 426 || a.0 == 226, "ABOR: {a:?}");
    if a.0 == 426 {
        assert_eq!(ftp.reply().0, 226, "ABOR's second reply");
    }
    drop(data);
    wait_counter(&server, cancelled, 1);
    assert_eq!(counter(&server, "mirrorftpd_disk_done_total{result=\"ok\"}"), 0);
    // The file is still cold (the helper never read it), and comes whole.
    assert!(ftp.retr_bytes("/big.bin").expect("RETR after ABOR") == big);

    // Disconnect while pending; the next session takes the freed slot and
    // has its own job (number 1, like the gone session's) behind it in the
    // one helper. The gone session's completion must not start it.
    make_cold(&root.join("big.bin"));
    let mut gone = Ftp::connect(server.addr);
    gone.login_anon();
    let data = gone.pasv_connect();
    assert_eq!(gone.cmd("RETR /big.bin").0, 150);
    let jobs = counter(&server, "mirrorftpd_disk_jobs_total");
    let warm = counter(&server, "mirrorftpd_disk_done_total{result=\"ok\"}");
    drop((gone, data));
    std::thread::sleep(Duration::from_millis(100));
    let mut next = Ftp::connect(server.addr);
    next.login_anon();
    let mut d2 = next.pasv_connect();
    assert_eq!(next.cmd("RETR /big.bin").0, 150);
    let mut first = [0u8; 1];
    d2.read_exact(&mut first).expect("first byte");
    assert_eq!(counter(&server, cancelled), 2, "the gone session's job was cancelled");
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), jobs + 1);
    assert_eq!(
        counter(&server, "mirrorftpd_disk_done_total{result=\"ok\"}"),
        warm + 1,
        "the first byte waited for this session's own job"
    );
    let mut rest = Vec::new();
    d2.read_to_end(&mut rest).expect("rest");
    assert_eq!(next.reply().0, 226);
    assert!(first[..] == big[..1] && rest[..] == big[1..], "download differs");
    no_job_left(&server);
    assert_eq!(retr(&server, "/small.txt", false), b"still here");
}

/// A server with the uploading test account (accounts.rs) rooted at `root`,
/// one worker, one disk helper whose every job takes `delay_ms`, metrics on.
fn upload_server(root: &Path, extra: &[&str], delay_ms: &str) -> Server {
    use crate::accounts::{UP_HASH, UP_USER};
    let etc = temp_dir("disk-upload-etc");
    let users = etc.join("users.txt");
    std::fs::write(&users, format!("{UP_USER}:{UP_HASH}:{}:all\n", root.display())).expect("users file");
    let users = users.to_str().expect("utf-8").to_string();
    let mut args = vec!["--users", &users, "--workers", "1", "--disk-threads", "1", "--metrics-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start_env(root, &args, &[("MIRRORFTPD_TEST_DISK_DELAY_MS", delay_ms)])
}

/// `--fsync-uploads`: the fsync runs on a disk helper (slow here), the 226
/// waits for it, and other sessions are served meanwhile.
#[test]
fn fsync_of_an_upload_runs_on_a_disk_helper() {
    use crate::accounts::{login_up, start_upload};
    let root = temp_dir("disk-fsync");
    put(&root.join("small.txt"), b"cached");
    let server = upload_server(&root, &["--fsync-uploads", "--atomic-uploads"], "1200");
    let _ = retr(&server, "/small.txt", false);
    let mut up = login_up(&server);
    let (mut data, start) = start_upload(&mut up, "STOR u.bin");
    assert_eq!(start.0, 150, "{start:?}");
    let bytes = pattern(MIB + 3, 6);
    data.write_all(&bytes).expect("upload data");
    drop(data);
    let t0 = Instant::now();
    // Wait until the server has read the end of the upload (the job is queued).
    while counter(&server, "mirrorftpd_disk_jobs_total") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "no fsync job");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!root.join("u.bin").exists(), "published before its fsync");
    assert_eq!(retr(&server, "/small.txt", false), b"cached");
    assert!(t0.elapsed() < Duration::from_millis(900), "another session waited {:?}", t0.elapsed());
    assert_eq!(up.reply().0, 226);
    assert!(t0.elapsed() >= Duration::from_millis(1000), "226 before the fsync: {:?}", t0.elapsed());
    assert!(std::fs::read(root.join("u.bin")).expect("u.bin") == bytes);
    no_job_left(&server);
}

/// `--atomic-uploads`: the copy of the published file that starts an APPE
/// or a resumed STOR runs on a disk helper (slow here) before the client's
/// bytes are written; the result is old + new bytes, published at once.
#[test]
fn the_seed_copy_of_an_atomic_append_or_resume_runs_on_a_disk_helper() {
    use crate::accounts::{login_up, start_upload, start_upload_at};
    let root = temp_dir("disk-seed");
    let old = pattern(3 * MIB + 1, 7);
    put(&root.join("a.bin"), &old);
    put(&root.join("r.bin"), &old);
    let server = upload_server(&root, &["--atomic-uploads"], "800");
    let mut up = login_up(&server);
    let tail = pattern(100_000, 8);
    for (name, rest) in [("a.bin", None), ("r.bin", Some(MIB as u64))] {
        let jobs = counter(&server, "mirrorftpd_disk_jobs_total");
        let t0 = Instant::now();
        let (mut data, start) = match rest {
            None => start_upload(&mut up, &format!("APPE {name}")),
            Some(r) => start_upload_at(&mut up, Some(r), &format!("STOR {name}")),
        };
        assert_eq!(start.0, 150, "{name}: {start:?}");
        assert!(t0.elapsed() < Duration::from_millis(500), "{name}: 150 waited for the copy");
        data.write_all(&tail).expect("upload data");
        drop(data);
        assert_eq!(up.reply().0, 226, "{name}");
        assert!(t0.elapsed() >= Duration::from_millis(800), "{name}: done before the helper's copy");
        assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), jobs + 1, "{name}: one copy job");
        let keep = rest.map_or(old.len(), |r| r as usize);
        let want: Vec<u8> = old[..keep].iter().chain(&tail).copied().collect();
        assert!(std::fs::read(root.join(name)).expect("file") == want, "{name}: content");
    }
    no_job_left(&server);
}

/// Each thread of the server process by name (from /proc), with its nice value.
fn thread_nices(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task").flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) else { continue };
        // Fields after "(comm)": state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
        let nice: i64 = rest.split(' ').nth(16).and_then(|f| f.parse().ok()).expect("nice field");
        out.push((comm.trim().to_string(), nice));
    }
    out
}

/// The disk and listing helpers run `limits::HELPER_NICE` steps below the
/// event loops, so that on a machine short of CPU the loops (which answer the
/// waiting clients) come first and the helpers' copies wait.
#[test]
fn disk_and_listing_helpers_run_below_the_event_loops() {
    let root = temp_dir("disk-nice");
    let server = Server::start(&root, &["--disk-threads", "3", "--workers", "2"]);
    let mut threads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Threads lower their own priority as they start: wait until all have.
    while Instant::now() < deadline {
        threads = thread_nices(server.pid());
        let worker = threads.iter().find(|(n, _)| n.starts_with("worker-")).map(|t| t.1);
        let want = worker.map(|w| (w + i64::from(mirrorftpd::limits::HELPER_NICE)).min(19));
        let helpers: Vec<_> =
            threads.iter().filter(|(n, _)| n.starts_with("disk-") || n.starts_with("list-")).collect();
        if helpers.len() >= 4 && helpers.iter().all(|h| Some(h.1) == want) {
            assert!(
                threads.iter().filter(|(n, _)| n.starts_with("worker-")).all(|w| Some(w.1) == worker),
                "{threads:?}"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("disk-*/list-* threads not {} nice steps below worker-*: {threads:?}", mirrorftpd::limits::HELPER_NICE);
}

/// A `.message` not in the page cache is read in by a disk helper: the CWD
/// reply waits for it and carries the message, the session reads no command
/// meanwhile (the next one is answered after it), and the event loop serves
/// other sessions. Once cached, it is read on the loop with no helper job.
/// With `--disk-check none` it is read in place, as before.
#[test]
fn a_cold_dot_message_is_read_by_a_helper_while_the_loop_serves_others() {
    let root = temp_dir("disk-message");
    std::fs::create_dir_all(root.join("pub/sub")).expect("mkdir");
    put(&root.join("pub/.message"), b"Welcome to pub\nsecond line\n");
    put(&root.join("pub/sub/.message"), b"sub's message\n");
    let server = Server::start_env(
        &root,
        &["--workers", "1", "--disk-threads", "1", "--metrics-listen", "127.0.0.1:0"],
        &[("MIRRORFTPD_TEST_DISK_DELAY_MS", "1500")],
    );
    make_cold(&root.join("pub/.message"));
    let mut a = Ftp::connect(server.addr);
    a.login_anon();
    let mut b = Ftp::connect(server.addr);
    b.login_anon();
    let t0 = Instant::now();
    a.send("CWD /pub");
    a.send("PWD");
    assert_eq!(b.cmd("PWD").0, 257);
    let served = t0.elapsed();
    assert!(served < Duration::from_millis(1000), "the other session took {served:?}");
    let (code, text) = a.reply();
    let waited = t0.elapsed();
    assert_eq!(code, 250, "{text}");
    assert!(text.starts_with("Welcome to pub\n") && text.contains("second line"), "{text:?}");
    assert!(waited >= Duration::from_millis(1400), "CWD answered after {waited:?}, before the disk job");
    assert_eq!(a.reply(), (257, "\"/pub\" is the current directory.".into()), "PWD waited its turn");
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), 1);

    // Cached now: the next session sees it at once, with no helper job.
    let mut c = Ftp::connect(server.addr);
    c.login_anon();
    let t1 = Instant::now();
    let (code, text) = c.cmd("CWD /pub");
    assert_eq!(code, 250);
    assert!(text.starts_with("Welcome to pub\n"), "{text:?}");
    assert!(t1.elapsed() < Duration::from_millis(1000), "a cached .message took {:?}", t1.elapsed());
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), 1);

    // A session that leaves while its CWD waits: the job is cancelled and
    // the server goes on.
    make_cold(&root.join("pub/sub/.message"));
    let mut d = Ftp::connect(server.addr);
    d.login_anon();
    d.send("CWD /pub/sub");
    drop(d);
    assert_eq!(c.cmd("NOOP").0, 200);
    // The helper ends the job (cancelled, or done if it had begun).
    let deadline = Instant::now() + Duration::from_secs(5);
    while jobs_done(&server) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    no_job_left(&server);
    assert_eq!(counter(&server, "mirrorftpd_disk_jobs_total"), 2);
    assert_eq!(c.cmd("CWD /pub/sub").0, 250, "the server goes on");

    // --disk-check none: read in place, still shown.
    let plain = Server::start(&root, &["--disk-check", "none", "--metrics-listen", "127.0.0.1:0"]);
    make_cold(&root.join("pub/sub/.message"));
    let mut e = Ftp::connect(plain.addr);
    e.login_anon();
    let (code, text) = e.cmd("CWD /pub/sub");
    assert_eq!((code, text.as_str()), (250, "sub's message\n250 Directory successfully changed."));
    assert_eq!(counter(&plain, "mirrorftpd_disk_jobs_total"), 0);
}
