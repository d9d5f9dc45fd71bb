//! Counters for `--metrics-listen`: one struct of relaxed atomics per worker,
//! written only by that worker's thread (so a count is a plain load and store,
//! no locked instruction and no contention), summed when scraped and rendered
//! in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a connection was refused before it became a session: the labels of
/// `crate::services::Refusal`, in its order (its tests check the two agree).
pub const REFUSE_REASONS: [&str; 5] = ["max_clients", "max_per_ip", "banned", "ban_list", "not_proxied"];
pub const DIRECTIONS: [&str; 2] = ["download", "upload"];
/// The `protocol` label of sessions, logins and transfers.
pub const PROTOCOLS: [&str; 2] = ["ftp", "sftp"];
pub const RESULTS: [&str; 3] = ["ok", "aborted", "failed"];
/// What became of a disk helper job (`crate::disk::Outcome`, in its order).
pub const DISK_RESULTS: [&str; 3] = ["ok", "cancelled", "failed"];
/// Upper bounds (seconds) of the event-loop turn histogram.
pub const TURN_BUCKETS: [f64; 12] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0];
const FIRST_CODE: u16 = 400;
const CODES: usize = 200;

pub const FTP: usize = 0;
pub const SFTP: usize = 1;
pub const DOWNLOAD: usize = 0;
pub const UPLOAD: usize = 1;
pub const OK: usize = 0;
pub const ABORTED: usize = 1;
pub const FAILED: usize = 2;

/// One worker's counters (those indexed first by protocol: `FTP`, `SFTP`).
pub struct WorkerMetrics {
    pub sessions: [AtomicU64; 2],
    pub refused: [AtomicU64; REFUSE_REASONS.len()],
    pub logins_ok: [AtomicU64; 2],
    pub logins_failed: [AtomicU64; 2],
    bytes: [[AtomicU64; 2]; 2],
    transfers: [[[AtomicU64; 3]; 2]; 2],
    error_replies: [AtomicU64; CODES],
    /// Non-cumulative bucket counts; the last one is +Inf.
    turn_buckets: [AtomicU64; TURN_BUCKETS.len() + 1],
    turn_sum_ns: AtomicU64,
    /// Ranges handed to the disk helpers, and those refused by a full queue.
    pub disk_jobs: AtomicU64,
    pub disk_queue_full: AtomicU64,
    /// Disk helper completions received, by `DISK_RESULTS`.
    pub disk_done: [AtomicU64; 3],
}

/// Adds `n` to a counter that only the calling worker writes: a relaxed load
/// and store (readers on other threads see a value that only grows).
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Counts a refused connection; `reason` indexes `REFUSE_REASONS`.
pub fn refused(w: &WorkerMetrics, reason: usize) {
    add(&w.refused[reason], 1);
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}

impl WorkerMetrics {
    pub const fn new() -> WorkerMetrics {
        WorkerMetrics {
            sessions: [const { AtomicU64::new(0) }; 2],
            refused: [const { AtomicU64::new(0) }; REFUSE_REASONS.len()],
            logins_ok: [const { AtomicU64::new(0) }; 2],
            logins_failed: [const { AtomicU64::new(0) }; 2],
            bytes: [const { [const { AtomicU64::new(0) }; 2] }; 2],
            transfers: [const { [const { [const { AtomicU64::new(0) }; 3] }; 2] }; 2],
            error_replies: [const { AtomicU64::new(0) }; CODES],
            turn_buckets: [const { AtomicU64::new(0) }; TURN_BUCKETS.len() + 1],
            turn_sum_ns: AtomicU64::new(0),
            disk_jobs: AtomicU64::new(0),
            disk_queue_full: AtomicU64::new(0),
            disk_done: [const { AtomicU64::new(0) }; 3],
        }
    }

    /// Counts a reply with code >= 400.
    #[inline]
    pub fn error_reply(&self, code: u16) {
        if let Some(c) = code.checked_sub(FIRST_CODE).and_then(|i| self.error_replies.get(i as usize)) {
            add(c, 1);
        }
    }

    /// Counts a finished transfer (`proto`: FTP/SFTP, `dir`: DOWNLOAD/UPLOAD,
    /// `result`: OK/ABORTED/FAILED).
    #[inline]
    pub fn transfer(&self, proto: usize, dir: usize, result: usize, bytes: u64) {
        add(&self.transfers[proto][dir][result], 1);
        add(&self.bytes[proto][dir], bytes);
    }

    /// Records how long one turn of the event loop took.
    #[inline]
    pub fn turn(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = TURN_BUCKETS.iter().position(|b| s <= *b).unwrap_or(TURN_BUCKETS.len());
        add(&self.turn_buckets[i], 1);
        add(&self.turn_sum_ns, d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }
}

/// A counter that no session is attached to yet (sessions start with it).
pub static DETACHED: WorkerMetrics = WorkerMetrics::new();

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn sum(ws: &[WorkerMetrics], f: impl Fn(&WorkerMetrics) -> &AtomicU64) -> u64 {
    ws.iter().map(|w| get(f(w))).sum()
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition text.
pub fn render(ws: &[WorkerMetrics], sessions_open: usize, log_dropped: u64) -> String {
    let mut o = String::with_capacity(4096);
    head(&mut o, "mirrorftpd_sessions_open", "gauge", "Control connections open now.");
    let _ = writeln!(o, "mirrorftpd_sessions_open {sessions_open}");
    head(&mut o, "mirrorftpd_sessions_total", "counter", "Connections admitted as sessions, by protocol.");
    for (p, pn) in PROTOCOLS.iter().enumerate() {
        let _ = writeln!(o, "mirrorftpd_sessions_total{{protocol=\"{pn}\"}} {}", sum(ws, |w| &w.sessions[p]));
    }
    head(
        &mut o,
        "mirrorftpd_connections_refused_total",
        "counter",
        "Connections refused with 421 before a session, by reason.",
    );
    for (i, r) in REFUSE_REASONS.iter().enumerate() {
        let _ = writeln!(o, "mirrorftpd_connections_refused_total{{reason=\"{r}\"}} {}", sum(ws, |w| &w.refused[i]));
    }
    head(&mut o, "mirrorftpd_logins_total", "counter", "Login attempts (PASS; SSH logins) by protocol and result.");
    for (p, pn) in PROTOCOLS.iter().enumerate() {
        let ok = sum(ws, |w| &w.logins_ok[p]);
        let failed = sum(ws, |w| &w.logins_failed[p]);
        let _ = writeln!(o, "mirrorftpd_logins_total{{protocol=\"{pn}\",result=\"ok\"}} {ok}");
        let _ = writeln!(o, "mirrorftpd_logins_total{{protocol=\"{pn}\",result=\"failed\"}} {failed}");
    }
    head(
        &mut o,
        "mirrorftpd_transfer_bytes_total",
        "counter",
        "File bytes moved (FTP: RETR; STOR, APPE, STOU; SFTP: reads and writes of a handle), by protocol \
         and direction, counted when each transfer ends.",
    );
    for (p, pn) in PROTOCOLS.iter().enumerate() {
        for (d, name) in DIRECTIONS.iter().enumerate() {
            let n = sum(ws, |w| &w.bytes[p][d]);
            let _ = writeln!(o, "mirrorftpd_transfer_bytes_total{{protocol=\"{pn}\",direction=\"{name}\"}} {n}");
        }
    }
    head(
        &mut o,
        "mirrorftpd_transfers_total",
        "counter",
        "File transfers ended, by protocol, direction and result (listings excluded).",
    );
    for (p, pn) in PROTOCOLS.iter().enumerate() {
        for (d, dn) in DIRECTIONS.iter().enumerate() {
            for (r, rn) in RESULTS.iter().enumerate() {
                let n = sum(ws, |w| &w.transfers[p][d][r]);
                let _ = writeln!(
                    o,
                    "mirrorftpd_transfers_total{{protocol=\"{pn}\",direction=\"{dn}\",result=\"{rn}\"}} {n}"
                );
            }
        }
    }
    head(&mut o, "mirrorftpd_error_replies_total", "counter", "Replies with a code of 400 or more, by code.");
    for i in 0..CODES {
        let n = sum(ws, |w| &w.error_replies[i]);
        if n > 0 {
            let _ = writeln!(o, "mirrorftpd_error_replies_total{{code=\"{}\"}} {n}", FIRST_CODE as usize + i);
        }
    }
    head(
        &mut o,
        "mirrorftpd_disk_jobs_total",
        "counter",
        "Ranges not in the page cache handed to the disk helpers (--disk-threads).",
    );
    let _ = writeln!(o, "mirrorftpd_disk_jobs_total {}", sum(ws, |w| &w.disk_jobs));
    head(
        &mut o,
        "mirrorftpd_disk_queue_full_total",
        "counter",
        "Ranges read on the event loop because the disk helpers' queue was full.",
    );
    let _ = writeln!(o, "mirrorftpd_disk_queue_full_total {}", sum(ws, |w| &w.disk_queue_full));
    head(&mut o, "mirrorftpd_disk_done_total", "counter", "Disk helper jobs completed, by result.");
    for (i, r) in DISK_RESULTS.iter().enumerate() {
        let _ = writeln!(o, "mirrorftpd_disk_done_total{{result=\"{r}\"}} {}", sum(ws, |w| &w.disk_done[i]));
    }
    head(
        &mut o,
        "mirrorftpd_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the logger thread's queue was full.",
    );
    let _ = writeln!(o, "mirrorftpd_log_lines_dropped_total {log_dropped}");
    head(
        &mut o,
        "mirrorftpd_loop_turn_seconds",
        "histogram",
        "Per worker: time from the event loop's wake-up (poll return) to the end of that turn's processing.",
    );
    for (id, w) in ws.iter().enumerate() {
        let mut cum = 0;
        for (i, b) in TURN_BUCKETS.iter().enumerate() {
            cum += get(&w.turn_buckets[i]);
            let _ = writeln!(o, "mirrorftpd_loop_turn_seconds_bucket{{worker=\"{id}\",le=\"{b}\"}} {cum}");
        }
        cum += get(&w.turn_buckets[TURN_BUCKETS.len()]);
        let _ = writeln!(o, "mirrorftpd_loop_turn_seconds_bucket{{worker=\"{id}\",le=\"+Inf\"}} {cum}");
        let secs = get(&w.turn_sum_ns) as f64 / 1e9;
        let _ = writeln!(o, "mirrorftpd_loop_turn_seconds_sum{{worker=\"{id}\"}} {secs:.9}");
        let _ = writeln!(o, "mirrorftpd_loop_turn_seconds_count{{worker=\"{id}\"}} {cum}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_workers_and_follows_the_text_format() {
        let ws = [WorkerMetrics::new(), WorkerMetrics::new()];
        add(&ws[0].sessions[FTP], 2);
        add(&ws[1].sessions[FTP], 3);
        add(&ws[1].sessions[SFTP], 1);
        add(&ws[0].logins_ok[SFTP], 1);
        ws[0].transfer(FTP, DOWNLOAD, OK, 100);
        ws[1].transfer(FTP, DOWNLOAD, OK, 50);
        ws[1].transfer(FTP, UPLOAD, ABORTED, 7);
        ws[1].transfer(SFTP, DOWNLOAD, OK, 11);
        ws[0].error_reply(530);
        ws[1].error_reply(530);
        ws[1].error_reply(550);
        ws[0].error_reply(226); // not an error: ignored
        ws[0].error_reply(700); // out of range: ignored
        refused(&ws[1], 1); // max_per_ip
        ws[0].turn(Duration::from_micros(30));
        ws[0].turn(Duration::from_millis(2));
        ws[0].turn(Duration::from_secs(3));
        let text = render(&ws, 4, 9);
        let has = |l: &str| text.lines().any(|x| x == l);
        assert!(has("mirrorftpd_sessions_open 4"), "{text}");
        assert!(has("mirrorftpd_sessions_total{protocol=\"ftp\"} 5"));
        assert!(has("mirrorftpd_sessions_total{protocol=\"sftp\"} 1"));
        assert!(has("mirrorftpd_logins_total{protocol=\"sftp\",result=\"ok\"} 1"));
        assert!(has("mirrorftpd_logins_total{protocol=\"ftp\",result=\"ok\"} 0"));
        assert!(has("mirrorftpd_transfer_bytes_total{protocol=\"ftp\",direction=\"download\"} 150"));
        assert!(has("mirrorftpd_transfer_bytes_total{protocol=\"ftp\",direction=\"upload\"} 7"));
        assert!(has("mirrorftpd_transfer_bytes_total{protocol=\"sftp\",direction=\"download\"} 11"));
        assert!(has("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"download\",result=\"ok\"} 2"));
        assert!(has("mirrorftpd_transfers_total{protocol=\"ftp\",direction=\"upload\",result=\"aborted\"} 1"));
        assert!(has("mirrorftpd_transfers_total{protocol=\"sftp\",direction=\"download\",result=\"ok\"} 1"));
        assert!(has("mirrorftpd_error_replies_total{code=\"530\"} 2"));
        assert!(has("mirrorftpd_error_replies_total{code=\"550\"} 1"));
        assert!(!text.contains("code=\"226\""));
        assert!(has("mirrorftpd_connections_refused_total{reason=\"max_per_ip\"} 1"));
        assert!(has("mirrorftpd_log_lines_dropped_total 9"));
        assert!(has("mirrorftpd_loop_turn_seconds_bucket{worker=\"0\",le=\"0.00005\"} 1"));
        assert!(has("mirrorftpd_loop_turn_seconds_bucket{worker=\"0\",le=\"0.0025\"} 2"));
        assert!(has("mirrorftpd_loop_turn_seconds_bucket{worker=\"0\",le=\"1\"} 2"));
        assert!(has("mirrorftpd_loop_turn_seconds_bucket{worker=\"0\",le=\"+Inf\"} 3"));
        assert!(has("mirrorftpd_loop_turn_seconds_count{worker=\"0\"} 3"));
        assert!(has("mirrorftpd_loop_turn_seconds_count{worker=\"1\"} 0"));
        // Every sample's metric has HELP and TYPE lines before it, and every
        // counter's name ends in _total.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            let ty =
                text.lines().find_map(|x| x.strip_prefix(&format!("# TYPE {base} "))).unwrap_or_else(|| panic!("{l}"));
            assert!(text.contains(&format!("# HELP {base} ")), "{l}");
            if ty == "counter" {
                assert!(name.ends_with("_total"), "{l}");
            }
            assert!(l.rsplit(' ').next().unwrap().parse::<f64>().is_ok(), "{l}");
        }
    }
}
