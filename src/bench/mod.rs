//! `mirrorftpd bench`: the load generator. The same design as the server:
//! per-thread mio reactors, client sessions as state machines in a slab,
//! deadlines in a heap, readiness drained in bounded loops. The main thread
//! only starts the reactors, draws the progress line and prints the summary.
//!
//! ```text
//! mirrorftpd bench retr --path /big.bin --conns 8 --duration 10 --discard
//! mirrorftpd bench login --conns 32 --json out.json
//! mirrorftpd bench idle --conns 5000 --duration 60   # "bench: holding 5000 sessions"
//! mirrorftpd bench retr --tls --path /big.bin --conns 8   # explicit FTPS, PROT P
//! ```
//!
//! Exit status: 1 when the share of failed operations is above
//! --max-error-rate (default 0: any error) or nothing succeeded and nothing
//! moved, 2 for bad flags or too low a file limit, else 0. A progress line
//! goes to stderr every second (redrawn on a terminal, one line a second
//! otherwise) unless --no-progress.

pub mod client;
pub mod plan;
pub mod reactor;
pub mod reply;
pub mod report;
pub mod stats;
pub mod tls;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use plan::BenchArgs;
use plan::Plan;
use reactor::{Reactor, Shared};
use report::Summary;
use stats::Stats;

use crate::io::sys;

/// How often the main thread looks at the reactors.
const TICK: Duration = Duration::from_millis(50);
/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Descriptors kept free beyond the sessions' own (stdio, epoll, files).
const SPARE_FDS: u64 = 64;

pub fn run(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let plan = match Plan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mirrorftpd bench: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let need = plan.conns as u64 * plan.fds_per_session() + SPARE_FDS;
    let (soft, hard) = sys::raise_nofile_limit()?;
    if soft < need {
        eprintln!(
            "mirrorftpd bench: --conns {} needs about {need} open files, but the limit is {soft} \
             (hard limit {hard}); raise the hard limit (ulimit -Hn, limits.conf) or use fewer --conns",
            plan.conns
        );
        return Ok(ExitCode::from(2));
    }

    let shared = Arc::new(Shared::new(plan));
    let cpu0 = sys::process_cpu_time()?;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(shared.plan.threads);
    for id in 0..shared.plan.threads {
        let sh = shared.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{id}"))
                .spawn(move || Reactor::new(id, &sh, t0)?.run(&sh, t0))?,
        );
    }

    watch(&shared, t0, &handles);

    let mut stats = Stats::default();
    let mut ended = t0;
    for h in handles {
        let done = h.join().map_err(|_| "bench: a reactor thread panicked")??;
        stats.merge(&done.stats);
        ended = ended.max(done.ended);
    }
    let cpu = sys::process_cpu_time()?.saturating_sub(cpu0);
    let plan = &shared.plan;
    let summary = Summary { plan, stats: &stats, elapsed: ended - t0, cpu };

    let json_to_stdout = plan.json.as_deref() == Some("-");
    if json_to_stdout {
        // Keep stdout machine-readable: the table goes to stderr.
        eprint!("{}", summary.text());
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
        if let Some(path) = &plan.json {
            std::fs::write(path, summary.json() + "\n").map_err(|e| format!("--json {path}: {e}"))?;
        }
    }
    std::io::stdout().flush()?;
    match stats.failure(plan.max_error_rate) {
        Some(why) => {
            eprintln!("mirrorftpd bench: run failed: {why}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Waits for the reactors to finish, printing a progress line on stderr
/// once a second (--no-progress: none): redrawn in place on a terminal, one
/// line each time otherwise, for logs and scripts.
fn watch<T>(shared: &Shared, t0: Instant, threads: &[std::thread::JoinHandle<T>]) {
    let tty = std::io::stderr().is_terminal();
    let show = shared.plan.progress;
    let mut last = (t0, 0u64, 0u64);
    let mut drawn = false;
    loop {
        std::thread::sleep(TICK);
        if threads.iter().all(|h| h.is_finished()) {
            break;
        }
        let now = Instant::now();
        if !show || now.duration_since(last.0) < PROGRESS_EVERY {
            continue;
        }
        let sum = |f: fn(&reactor::Counters) -> u64| shared.counters.iter().map(f).sum::<u64>();
        let bytes = sum(|c| c.bytes.load(Ordering::Relaxed));
        let ops = sum(|c| c.ops.load(Ordering::Relaxed));
        let errors = sum(|c| c.errors.load(Ordering::Relaxed));
        let connected = sum(|c| c.connected.load(Ordering::Relaxed));
        let dt = now.duration_since(last.0).as_secs_f64();
        let line = report::progress(
            now - t0,
            bytes.saturating_sub(last.1) as f64 / 1048576.0 / dt,
            ops.saturating_sub(last.2) as f64 / dt,
            connected,
            errors,
        );
        if tty {
            eprint!("\r{line}");
            drawn = true;
        } else {
            eprintln!("bench: {line}");
        }
        last = (now, bytes, ops);
    }
    if drawn {
        eprint!("\r\x1b[K");
    }
}
