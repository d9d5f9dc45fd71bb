//! Fuzz target: the SFTP engine fed arbitrary bytes after INIT, as a logged-in user with every
//! permission over a small temporary tree (with links out of it). Whatever arrives, the engine
//! never panics, its output stays bounded and framed, every answer fits the packet limit, and
//! nothing outside the root changes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use mirrorftpd::auth::access::{Access, Auth};
use mirrorftpd::auth::perms::Perms;
use mirrorftpd::fs::jail::Jail;
use mirrorftpd::limits;
use mirrorftpd::sftp::engine::{DirectDisk, Engine, Options, Step};

/// The tree, made once per process and rebuilt every so often (uploads pile up).
fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| std::env::temp_dir().join(format!("mirrorftpd-fuzz-sftp-{}", std::process::id())))
}

fn build(base: &PathBuf) {
    let _ = std::fs::remove_dir_all(base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("pub/dir")).expect("tree");
    std::fs::create_dir_all(base.join("outside")).expect("outside");
    std::fs::write(base.join("outside/secret"), b"outside").expect("secret");
    std::fs::write(root.join("pub/file.txt"), b"hello world").expect("file");
    let _ = std::os::unix::fs::symlink("../outside", root.join("out"));
    let _ = std::os::unix::fs::symlink("/etc", root.join("abs"));
    let _ = std::os::unix::fs::symlink("file.txt", root.join("pub/alias"));
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let base = base();
    if RUNS.fetch_add(1, Ordering::Relaxed) % 2000 == 0 {
        build(base);
    }
    let Some((&flags, data)) = data.split_first() else { return };
    let root = Jail::open(&base.join("root"), flags & 1 != 0).expect("jail");
    let access = Access { user: "fuzz".into(), anonymous: flags & 2 != 0, base: Perms::ALL, jail: None };
    let opts = Options { atomic_uploads: flags & 4 != 0, fsync_uploads: false, local_time: false };
    let mut eng = Engine::new(access, &root, opts).expect("engine");
    let auth = Auth::default();
    eng.feed(&[0, 0, 0, 5, 1, 0, 0, 0, 3]);
    // Feed in chunks whose sizes come from the flags byte, draining as a channel would.
    let chunk = 1 + usize::from(flags >> 3) * 97;
    let mut rest = data;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let took = eng.feed(&rest[..rest.len().min(chunk)]);
        rest = &rest[took..];
        let step = eng.process(&auth, &mut DirectDisk);
        assert!(eng.output().len() <= limits::SFTP_OUTPUT_HIGH + limits::SFTP_MAX_PACKET + 4);
        out.extend_from_slice(eng.output());
        let n = eng.output().len();
        eng.consume_output(n);
        if step == Step::Closed || (rest.is_empty() && step == Step::Idle) {
            break;
        }
    }
    // Every answer is one framed packet within the limit.
    let mut o = &out[..];
    while !o.is_empty() {
        assert!(o.len() >= 4);
        let len = u32::from_be_bytes([o[0], o[1], o[2], o[3]]) as usize;
        assert!(len >= 1 && len <= limits::SFTP_MAX_PACKET && 4 + len <= o.len(), "bad answer frame {len}");
        o = &o[4 + len..];
    }
    eng.shutdown();
    assert_eq!(std::fs::read(base.join("outside/secret")).expect("secret"), b"outside");
    let outside: Vec<_> = std::fs::read_dir(base.join("outside")).expect("outside").collect();
    assert_eq!(outside.len(), 1, "nothing created outside the root");
});
