//! Fair turns (issue 11): a small download keeps its latency while big
//! downloads keep one worker busy. `MIRRORFTPD_TEST_SEND_DELAY_US_PER_MIB`
//! makes the server's sendfile slow (as on a slow machine), so the clients
//! always keep up and every big transfer uses its whole quantum each turn:
//! the length of a turn no longer depends on how fast this machine is.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::{Ftp, Server, temp_dir};

const MIB: usize = 1 << 20;
const STREAMS: usize = 8;
/// 2 ms per MiB sent (500 MiB/s for the whole worker).
const DELAY_US_PER_MIB: &str = "2000";

/// Downloads /big.bin again and again, discarding it, until `stop`.
fn stream(server_addr: std::net::SocketAddr, stop: Arc<AtomicBool>, got: Arc<AtomicU64>) {
    let mut ftp = Ftp::connect(server_addr);
    ftp.login_anon();
    let mut buf = vec![0u8; 256 << 10];
    while !stop.load(Ordering::Relaxed) {
        let mut data = ftp.pasv_connect();
        assert_eq!(ftp.cmd("RETR /big.bin").0, 150);
        loop {
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => panic!("big download: {e}"),
            }
            if stop.load(Ordering::Relaxed) {
                // Leave mid-transfer: closing the connections ends it.
                return;
            }
        }
        assert_eq!(ftp.reply().0, 226);
    }
}

#[test]
fn a_small_download_is_prompt_while_big_ones_saturate_its_worker() {
    let root = temp_dir("turns");
    std::fs::write(root.join("big.bin"), vec![7u8; 64 * MIB]).expect("big file");
    std::fs::write(root.join("small.bin"), vec![1u8; 4096]).expect("small file");
    let server =
        Server::start_env(&root, &["--workers", "1"], &[("MIRRORFTPD_TEST_SEND_DELAY_US_PER_MIB", DELAY_US_PER_MIB)]);
    let mut small = Ftp::connect(server.addr);
    small.login_anon();
    assert_eq!(small.retr_bytes("/small.bin").expect("small RETR").len(), 4096); // cached now

    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (addr, stop, got) = (server.addr, stop.clone(), got.clone());
            std::thread::spawn(move || stream(addr, stop, got))
        })
        .collect();
    // Every stream is running (each has had a few quanta).
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.load(Ordering::Relaxed) < (STREAMS * 8 * MIB) as u64 {
        assert!(Instant::now() < deadline, "the big downloads did not start: {} bytes", got.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(20));
    }

    // EPSV, connect, RETR, 4 KiB, 226: a few turns of the worker each.
    let mut took: Vec<Duration> = (0..15)
        .map(|_| {
            let t0 = Instant::now();
            assert_eq!(small.retr_bytes("/small.bin").expect("small RETR under load").len(), 4096);
            t0.elapsed()
        })
        .collect();
    let moved = got.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for s in streams {
        s.join().expect("a big download failed");
    }
    took.sort();
    eprintln!("small RETR under load: {took:?}, {} MiB streamed", moved >> 20);
    let median = took[took.len() / 2];
    // With one turn giving each of the 8 streams 8 MiB (the old scheduler),
    // a turn lasts 8 × 16 ms here and the median was 370-480 ms; with fair
    // turns a step waits for one quantum (2 ms) at most.
    assert!(
        median < Duration::from_millis(60),
        "small RETR under load: median {median:?}, all {took:?} ({} MiB streamed meanwhile)",
        moved >> 20
    );
}
