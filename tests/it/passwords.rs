//! Password checks and the users file: the memory an unauthenticated client
//! can make the server hold (Argon2 work areas), and hashes the server cannot
//! verify, refused at start, by --check-config and on SIGHUP.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::accounts::{BOB_HASH, acct_fx, argon2id, login_as};
use crate::protocol::Ctl;
use crate::util::{Server, run, temp_dir};

/// The server's resident set, in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(server: &Server) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("reading /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

/// `total` failed logins from `clients` parallel threads, one login per
/// session (each session's first failure costs only the shortest delay):
/// unknown user names, and a wrong password for `alice` every fourth time.
fn failed_logins(server: &Server, total: usize, clients: usize) {
    let left = Arc::new(AtomicUsize::new(total));
    let addr = server.addr;
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let left = left.clone();
            thread::spawn(move || {
                let mut i = 0;
                while left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    let user = if i % 4 == 3 { "alice".to_string() } else { format!("nobody-{t}-{i}") };
                    i += 1;
                    let mut c = Ctl::open(addr);
                    assert_eq!(c.cmd(&format!("USER {user}")).0, 331);
                    let r = c.cmd("PASS wrong-password");
                    assert_eq!(r.0, 530, "PASS for {user}: {r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a login client panicked");
    }
}

/// Issue 10: every password check allocated Argon2's 19 MiB work area and
/// the allocator kept it, so failed logins (unknown names too) grew the
/// server by hundreds of MiB. With one reused area per helper thread, 1,000
/// failed logins on 8 helper threads (default Argon2 cost, the real 19 MiB)
/// leave the RSS where the first few left it.
#[test]
fn failed_logins_leave_memory_bounded() {
    const THREADS: usize = 8;
    const CLIENTS: usize = 48;
    let alice = argon2id("alice-pw");
    assert!(alice.starts_with("$argon2id$v=19$m=19456,"), "default parameters: {alice}");
    let threads = THREADS.to_string();
    let args = ["--auth-threads", &threads, "--ban-after", "0", "--max-per-ip", "200"];
    let f = acct_fx("pw-memory", &[("alice", &alice, "", "readonly")], None, &args, |_| {});
    let start = rss_kib(&f.server);
    let t = Instant::now();
    // The first few: enough logins at once that every helper thread works.
    failed_logins(&f.server, 2 * CLIENTS, CLIENTS);
    let warm = rss_kib(&f.server);
    failed_logins(&f.server, 1000, CLIENTS);
    let end = rss_kib(&f.server);
    let took = t.elapsed();
    eprintln!(
        "RSS: {start} KiB at start, {warm} KiB after {} logins, {end} KiB after 1000 more ({took:?})",
        2 * CLIENTS
    );
    // A correct login still works after all that.
    login_as(&f.server, "alice", "alice-pw");
    let bound = (THREADS as u64 + 2) * 20 * 1024;
    assert!(warm - start.min(warm) < bound, "the first logins took {} KiB (bound {bound})", warm - start);
    assert!(end < warm + 6 * 1024, "RSS grew from {warm} KiB to {end} KiB over 1000 failed logins");
}

/// Hash fields no password can match, as operators write them by mistake.
const UNVERIFIABLE: [(&str, &str); 4] = [
    ("hunter2", "plain text or an unknown format"),
    ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "an MD5-crypt hash ($1$)"),
    ("$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "a bcrypt hash ($2b$)"),
    ("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Sm3M", "malformed Argon2 hash"),
];

/// A users file: `bob` (good) on line 2, then `carol` with `hash` on line 3.
fn users_with(dir: &std::path::Path, hash: &str) -> String {
    let home = dir.display();
    let path = dir.join("users.txt");
    fs::write(&path, format!("# accounts\nbob:{BOB_HASH}:{home}:readonly\ncarol:{hash}:{home}:all\n")).unwrap();
    path.display().to_string()
}

/// The message names the file, the line and every supported format.
fn names_line_and_formats(stderr: &str, users: &str, what: &str) -> bool {
    stderr.contains(&format!("{users}:3: {what}"))
        && stderr.contains("supported: an Argon2 PHC string ($argon2id$")
        && stderr.contains("a SHA-crypt hash ($6$ or $5$")
        && stderr.contains("'!' to disable")
}

/// Issue 10: a users file line whose hash no password can match (plaintext,
/// `$1$`, bcrypt, a malformed Argon2id string) stops start-up and fails
/// --check-config, with the line number and the supported formats.
#[test]
fn unverifiable_hash_is_refused_at_start_and_by_check_config() {
    let root = temp_dir("pw-formats");
    let r = root.display().to_string();
    for (hash, what) in UNVERIFIABLE {
        let etc = temp_dir("pw-formats-etc");
        let users = users_with(&etc, hash);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
        cmd.args(["--check-config", "--root", &r, "--listen", "127.0.0.1:0", "--users", &users]);
        let ran = run(&mut cmd, Duration::from_secs(20));
        assert!(!ran.status.success(), "--check-config accepted {hash:?}: {ran:?}");
        assert!(names_line_and_formats(&ran.stderr, &users, what), "{hash:?}: {}", ran.stderr);
        assert!(!ran.stderr.contains("hunter2"), "a plaintext password must not be echoed: {}", ran.stderr);
    }
    // Starting to serve fails the same way, before anything is bound.
    let etc = temp_dir("pw-formats-start");
    let users = users_with(&etc, UNVERIFIABLE[2].0);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorftpd"));
    cmd.args(["--root", &r, "--listen", "127.0.0.1:0", "--allow-root", "--users", &users]);
    let ran = run(&mut cmd, Duration::from_secs(20));
    assert!(!ran.status.success(), "the server started with a bcrypt hash: {ran:?}");
    assert!(names_line_and_formats(&ran.stderr, &users, UNVERIFIABLE[2].1), "{}", ran.stderr);
    assert!(!ran.stderr.contains("listening on"), "{}", ran.stderr);
}

/// Issue 10: SIGHUP with such a line keeps the old accounts (and says why).
#[test]
fn unverifiable_hash_on_sighup_keeps_the_old_accounts() {
    let f = acct_fx("pw-reload", &[("bob", BOB_HASH, "", "readonly")], None, &[], |_| {});
    login_as(&f.server, "bob", "bob-pw");
    let home = f.root.path().display();
    // The new file drops bob, adds dave, and has a bcrypt line.
    let users = f.etc.join("users.txt");
    let (hash, what) = UNVERIFIABLE[2];
    fs::write(&users, format!("dave:{BOB_HASH}:{home}:readonly\n\ncarol:{hash}:{home}:all\n")).unwrap();
    f.server.signal(libc::SIGHUP);
    assert!(f.server.wait_log("accounts/rules not reloaded", Duration::from_secs(5)), "{}", f.server.log());
    let log = f.server.log();
    assert!(log.contains(&format!("{}:3: {what} is not a supported password hash", users.display())), "{log}");
    assert!(log.contains("supported: an Argon2 PHC string"), "{log}");
    // The old file still holds: bob logs in, dave does not exist.
    login_as(&f.server, "bob", "bob-pw");
    let mut c = Ctl::open(f.server.addr);
    assert_eq!(c.cmd("USER dave").0, 331);
    assert_eq!(c.cmd("PASS bob-pw").0, 530, "the rejected file must not be applied");
}
