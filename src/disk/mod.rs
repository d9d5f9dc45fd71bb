//! Disk helper threads: a range of a file that is not in the page cache is
//! read in here (`--disk-threads`, a bounded queue), never on a reactor, and
//! so are the fsync of an upload (`--fsync-uploads`) and the copy that seeds
//! an atomic APPE or resume (`--atomic-uploads`). The
//! completion goes back to the session's worker through a channel plus its
//! `mio::Waker`; the session waits in an explicit state meanwhile (see
//! `ftp::warm`). nginx's "aio threads", for sendfile.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::Waker;

use crate::io::cache;
use crate::limits;
use crate::obs::metrics::{self, WorkerMetrics};
use crate::services::Slot;

pub mod window;
pub use window::{DiskCx, Gate, Window};

/// How downloads learn whether a range is in the page cache (`--disk-check`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskCheck {
    /// cachestat(2) before sendfile, preadv2(RWF_NOWAIT) for the copy paths;
    /// misses go to the disk helpers. Without kernel support: as `none`.
    Cachestat,
    /// Never ask: every read and sendfile runs on the reactor (the path a
    /// kernel without cachestat and RWF_NOWAIT takes).
    None,
}

/// What a helper is asked to do with a file.
#[derive(Debug)]
pub enum Work {
    /// Bring `[off, off + len)` into the page cache.
    Warm { off: u64, len: u64 },
    /// fsync the file (an upload before its 226).
    Sync,
    /// Copy the first `len` bytes of `src` to the start of the file (which is
    /// empty): the published file under an atomic APPE or resume.
    Seed { src: File, len: u64 },
}

/// One job for the helpers.
struct DiskJob {
    slot: Slot,
    /// The session's job number (a completion for an older job is ignored).
    seq: u64,
    /// A duplicate of the transfer's descriptor.
    file: File,
    work: Work,
    /// Set when the transfer ends first (ABOR, disconnect, timeout).
    cancel: Arc<AtomicBool>,
    reply: Arc<Reply>,
}

/// A job in the helpers' hands, held by the transfer that asked for it:
/// dropping it (the transfer ended, or the completion came) cancels the job
/// if a helper has not done it yet.
pub struct Ticket {
    pub seq: u64,
    cancel: Arc<AtomicBool>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// What became of a job.
#[derive(Debug)]
pub enum Outcome {
    /// The range is in the page cache (or the file ended before it), the
    /// file is synced, or the copy is made.
    Done,
    /// The transfer was gone before the helper finished.
    Cancelled,
    /// The read (the transfer's own read then reports it) or the fsync failed.
    Failed(io::Error),
}

/// A job's completion, for the worker that submitted it.
pub struct DiskDone {
    pub slot: Slot,
    pub seq: u64,
    pub outcome: Outcome,
}

/// Where a worker's completions go.
struct Reply {
    tx: Sender<DiskDone>,
    waker: Arc<Waker>,
}

/// The shared pool: a bounded queue served by `--disk-threads` threads.
pub struct DiskPool {
    tx: Option<SyncSender<DiskJob>>,
    pub check: DiskCheck,
}

impl DiskPool {
    /// Starts `threads` helpers. A thread that cannot be started is logged;
    /// with none, every range is read on the reactor (as `--disk-check none`).
    pub fn start(threads: usize, check: DiskCheck) -> DiskPool {
        if threads == 0 || check == DiskCheck::None {
            return DiskPool { tx: None, check: DiskCheck::None };
        }
        let (tx, rx) = mpsc::sync_channel::<DiskJob>(limits::DISK_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        // Test hook: a slow disk, to show that the reactors do not wait for it.
        let delay = std::env::var("MIRRORFTPD_TEST_DISK_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            match std::thread::Builder::new().name(format!("disk-{i}")).spawn(move || {
                crate::io::sys::lower_thread_priority(limits::HELPER_NICE);
                serve(&rx, delay)
            }) {
                Ok(_) => started += 1,
                Err(e) => crate::log::error(format_args!("disk helper {i}: {e}")),
            }
        }
        if started == 0 {
            return DiskPool { tx: None, check: DiskCheck::None };
        }
        DiskPool { tx: Some(tx), check }
    }

    /// The handle one worker's sessions submit through.
    pub fn link(
        &self,
        waker: Arc<Waker>,
        metrics: &'static WorkerMetrics,
    ) -> (Option<Arc<DiskLink>>, Receiver<DiskDone>) {
        let (tx, rx) = mpsc::channel();
        let link =
            self.tx.clone().map(|jobs| Arc::new(DiskLink { jobs, reply: Arc::new(Reply { tx, waker }), metrics }));
        (link, rx)
    }
}

/// A worker's way into the pool (shared by its sessions).
pub struct DiskLink {
    jobs: SyncSender<DiskJob>,
    reply: Arc<Reply>,
    metrics: &'static WorkerMetrics,
}

impl DiskLink {
    /// Queues `work` on `file` for the session in `slot`, numbering it from
    /// `seq`. Gives the work back when the queue is full (the caller does it
    /// on the reactor instead: the queue never grows past `limits::DISK_QUEUE`).
    pub fn submit(&self, slot: Slot, seq: &mut u64, file: &File, work: Work) -> Result<Ticket, Work> {
        let Ok(file) = file.try_clone() else { return Err(work) };
        *seq += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let job = DiskJob { slot, seq: *seq, file, work, cancel: cancel.clone(), reply: self.reply.clone() };
        match self.jobs.try_send(job) {
            Ok(()) => {
                metrics::add(&self.metrics.disk_jobs, 1);
                Ok(Ticket { seq: *seq, cancel })
            }
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                metrics::add(&self.metrics.disk_queue_full, 1);
                Err(j.work)
            }
        }
    }
}

fn serve(rx: &Mutex<Receiver<DiskJob>>, delay: Option<Duration>) {
    let mut buf = vec![0u8; limits::DISK_PIECE as usize].into_boxed_slice();
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let outcome = if job.cancel.load(Ordering::Relaxed) {
            Outcome::Cancelled
        } else {
            match &job.work {
                Work::Warm { off, len } => warm(&mut buf, &job, *off, *len),
                Work::Sync => match job.file.sync_all() {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(e),
                },
                Work::Seed { src, len } => match seed(src, &job.file, *len) {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(e),
                },
            }
        };
        let DiskJob { slot, seq, reply, .. } = job;
        if reply.tx.send(DiskDone { slot, seq, outcome }).is_ok() {
            let _ = reply.waker.wake();
        }
    }
}

/// Copies the first `len` bytes of `src` into `dst` (from its start); an
/// error if `src` is shorter (it shrank since it was measured).
pub fn seed(src: &File, dst: &File, len: u64) -> io::Result<()> {
    let mut from = io::Read::take(src, len);
    let mut to = dst;
    let n = io::copy(&mut from, &mut to)?;
    if n < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the published file shrank during the copy"));
    }
    Ok(())
}

/// Brings the job's range into the page cache, a piece at a time so a
/// cancelled job stops early. A plain pread into one reused buffer: measured
/// cheaper than splicing to /dev/null (92 against 329 µs per cached 4 MiB,
/// benches/micro.rs `disk_cache`), and it surely waits for the disk.
fn warm(buf: &mut [u8], job: &DiskJob, off: u64, len: u64) -> Outcome {
    let end = off.saturating_add(len);
    let mut pos = off;
    while pos < end {
        if job.cancel.load(Ordering::Relaxed) {
            return Outcome::Cancelled;
        }
        let len = usize::try_from(end - pos).unwrap_or(usize::MAX).min(buf.len());
        match cache::pread(job.file.as_fd(), &mut buf[..len], pos) {
            Ok(0) => break, // the file ended
            Ok(n) => pos += n as u64,
            Err(e) => return Outcome::Failed(e),
        }
    }
    Outcome::Done
}
