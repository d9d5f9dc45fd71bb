//! Helper threads that read a directory for the listing cache, off the event loops: the
//! first listing of a cold directory (`getdents64` plus one `fstatat` per entry, maybe
//! waiting on the disk) runs here, never on a reactor. A bounded queue; when it is full the
//! session streams the listing itself, as without the cache.
//!
//! [`fill`] is the whole job as a plain function, so another pool (the disk helpers) can run
//! it instead of these threads.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fs::listing::Lister;
use crate::limits;
use crate::lists::cache::{DirStamp, Fill, FillResult, Keep, ListCache};

/// One body to fill.
pub struct FillJob {
    pub lister: Lister,
    /// The directory as the request saw it (before any entry was read).
    pub stamp: DirStamp,
    pub fill: Arc<Fill>,
}

/// What [`fill`] read.
pub enum Filled {
    /// The whole listing.
    Whole(Vec<u8>),
    /// More than `cap` bytes: what was read, and the lister to go on with.
    TooBig(Vec<u8>, Lister),
}

/// Reads the whole listing of `lister`, or stops once more than `cap` bytes are read.
pub fn fill(mut lister: Lister, cap: usize) -> io::Result<Filled> {
    let mut out = Vec::with_capacity(limits::LIST_CHUNK);
    // fill() stops at a line boundary at or past its soft maximum.
    if lister.fill(&mut out, cap.saturating_add(1))? { Ok(Filled::Whole(out)) } else { Ok(Filled::TooBig(out, lister)) }
}

/// The cache and its fill threads (`Shared::listings`).
pub struct Listings {
    pub cache: Arc<ListCache>,
    jobs: SyncSender<FillJob>,
}

impl Listings {
    /// A cache of `cap` bytes and its helper threads; `None` if no thread could start.
    pub fn start(cap: usize) -> Option<Listings> {
        let cache = Arc::new(ListCache::new(cap, limits::LIST_CACHE_MAX_AGE));
        let (jobs, rx) = mpsc::sync_channel::<FillJob>(limits::LIST_FILL_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..limits::LIST_FILL_THREADS {
            let (rx, cache) = (rx.clone(), cache.clone());
            match std::thread::Builder::new().name(format!("list-{i}")).spawn(move || {
                crate::io::sys::lower_thread_priority(limits::HELPER_NICE);
                serve(&rx, &cache)
            }) {
                Ok(_) => started += 1,
                Err(e) => crate::log::error(format_args!("listing helper {i}: {e}")),
            }
        }
        (started > 0).then_some(Listings { cache, jobs })
    }

    /// Queues a fill; gives the job back when the queue is full.
    pub fn submit(&self, job: FillJob) -> Result<(), Box<FillJob>> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => Box::new(j),
        })
    }
}

fn serve(rx: &Mutex<Receiver<FillJob>>, cache: &ListCache) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        run(job, cache);
    }
}

/// Unix time in nanoseconds.
fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// Fills one body, records it in the cache, wakes the waiting sessions.
pub fn run(job: FillJob, cache: &ListCache) {
    let FillJob { lister, stamp, fill: cell } = job;
    let start = now_nanos();
    match fill(lister, cache.max_body()) {
        Ok(Filled::Whole(out)) => {
            let body: Arc<[u8]> = Arc::from(out);
            let keep = if stamp.racy(start) { Keep::Nothing } else { Keep::Body(body.clone()) };
            cache.complete(stamp, &cell, keep);
            cell.finish(FillResult::Body(body), None);
        }
        Ok(Filled::TooBig(out, lister)) => {
            cache.complete(stamp, &cell, Keep::TooBig);
            cell.finish(FillResult::Stream, Some((out, lister)));
        }
        Err(e) => {
            cache.complete(stamp, &cell, Keep::Nothing);
            cell.finish(FillResult::Failed(e.to_string()), None);
        }
    }
}
