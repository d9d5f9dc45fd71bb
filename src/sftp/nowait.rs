//! The engine's disk seam on a reactor: a READ of a range the page cache
//! does not hold is not read here (`preadv2(RWF_NOWAIT)` says EAGAIN) but
//! answered `None`, so the engine stops with `NeedDisk`; the session then has
//! a disk helper read the range in (`Work::Warm`, a window ahead) and runs the
//! request again when the helper is done. fsync always goes to a helper.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::engine::{Disk, NeedDisk};
use crate::disk::{DiskLink, Outcome, Ticket, Work};
use crate::io::cache;
use crate::limits;
use crate::services::Slot;

/// The disk state of one session: at most one helper job at a time.
#[derive(Default)]
pub struct DiskWait {
    seq: u64,
    /// The job the engine waits for (dropped: cancelled).
    ticket: Option<Ticket>,
    /// The next read is done in place (its range was just read in, or the
    /// helpers' queue was full).
    direct: bool,
    /// A helper's fsync result, for the next `sync` call.
    synced: Option<io::Result<()>>,
    /// The job in the helpers' hands is an fsync.
    syncing: bool,
}

impl DiskWait {
    /// True while a helper works for this session.
    pub fn waiting(&self) -> bool {
        self.ticket.is_some()
    }

    /// Hands what the engine needs to a helper; without helpers (or with a
    /// full queue) the work is done in place on the next call of `process`.
    pub fn submit(&mut self, need: NeedDisk, file: Option<&File>, link: Option<&Arc<DiskLink>>, slot: Slot) {
        let (Some(file), Some(link)) = (file, link) else {
            self.direct = true;
            return;
        };
        let work = match need {
            NeedDisk::Read { offset, len, .. } => {
                Work::Warm { off: offset, len: u64::from(len).max(limits::DISK_WINDOW) }
            }
            NeedDisk::Sync { .. } => Work::Sync,
        };
        self.syncing = matches!(work, Work::Sync);
        match link.submit(slot, &mut self.seq, file, work) {
            Ok(t) => self.ticket = Some(t),
            Err(Work::Sync) => self.synced = Some(file.sync_all()),
            Err(_) => self.direct = true,
        }
    }

    /// A helper finished job `seq`: true when the session should run again.
    pub fn done(&mut self, seq: u64, outcome: Outcome) -> bool {
        if self.ticket.as_ref().is_none_or(|t| t.seq != seq) {
            return false;
        }
        self.ticket = None;
        if self.syncing {
            self.synced = Some(match outcome {
                Outcome::Failed(e) => Err(e),
                _ => Ok(()),
            });
        } else {
            self.direct = true;
        }
        true
    }

    /// The `Disk` the engine uses for one `process` call.
    pub fn disk(&mut self, helpers: bool) -> NowaitDisk<'_> {
        NowaitDisk { wait: self, helpers }
    }
}

/// See the module docs.
pub struct NowaitDisk<'a> {
    wait: &'a mut DiskWait,
    /// Disk helpers exist (else everything is done in place).
    helpers: bool,
}

impl Disk for NowaitDisk<'_> {
    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
        if !self.helpers || std::mem::take(&mut self.wait.direct) {
            return Some(cache::pread(file.as_fd(), buf, offset));
        }
        match cache::pread_nowait(file.as_fd(), buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Some(cache::pread(file.as_fd(), buf, offset)),
            r => Some(r),
        }
    }

    fn sync(&mut self, file: &File) -> Option<io::Result<()>> {
        if !self.helpers || std::mem::take(&mut self.wait.direct) {
            return Some(file.sync_all());
        }
        self.wait.synced.take()
    }
}
