//! The cache window of one download: how far ahead of the send position the
//! file is known to be in the page cache, and the one disk helper job (at
//! most) that is warming the next range. A reactor asks here before every
//! sendfile and every read; a range that is not cached is never touched on
//! the reactor (unless the helpers' queue is full).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::{DiskLink, Ticket, Work};
use crate::io::cache::{self, Residency};
use crate::limits;
use crate::services::Slot;

/// What a transfer needs from its loop to hand a range to the helpers.
pub struct DiskCx<'a> {
    /// None: no helpers (`--disk-check none`): everything is read in place.
    pub link: Option<&'a Arc<DiskLink>>,
    pub slot: Slot,
    /// The session's job counter (completions carry the number).
    pub seq: &'a mut u64,
}

/// The answer before a send or a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead with at most this many bytes (known cached, or not checkable).
    Go(u64),
    /// The range is being read in by a helper: wait for its completion.
    Wait,
}

/// The one job a transfer has with the helpers (dropped: cancelled).
struct Pending {
    ticket: Ticket,
    end: u64,
    /// The transfer stopped for it (false: warming ahead while sending).
    waiting: bool,
}

/// How residency is learnt: cachestat(2) where the kernel allows it; else
/// a preadv2(RWF_NOWAIT) probe for small ranges, and for large ones no probe
/// at all: they always go to a helper; else not at all (assume cached).
///
/// Why not probe large ranges: a NOWAIT read that misses starts the kernel's
/// synchronous readahead in the calling thread (up to read_ahead_kb, 8 MiB
/// here) before it returns EAGAIN, so the event loop would submit the disk
/// I/O of every stream itself; measured, 16 cold streams then cut the 4 KiB
/// rate beside them to a tenth of what the cachestat path keeps. A helper's
/// pread of a cached 4 MiB costs about 92 µs of its own CPU, and the range
/// ahead is warmed while the current one is sent, so a stream does not stop.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Method {
    Cachestat,
    Probe,
    Assume,
}

/// See the module docs.
pub struct Window {
    /// Bytes before this offset were found (or made) resident.
    cached_to: u64,
    pending: Option<Box<Pending>>,
    /// How this file's residency is learnt (downgraded on "cannot tell").
    method: Method,
    /// preadv2(RWF_NOWAIT) works on this file.
    nowait: bool,
}

impl Default for Window {
    fn default() -> Window {
        Window::new()
    }
}

impl Window {
    pub fn new() -> Window {
        Window { cached_to: 0, pending: None, method: Method::Cachestat, nowait: true }
    }

    /// True while the transfer is stopped until a helper's completion.
    pub fn waiting(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.waiting)
    }

    /// A helper finished job `seq`. True when it was this window's job.
    pub fn done(&mut self, seq: u64) -> bool {
        match &self.pending {
            Some(p) if p.ticket.seq == seq => {
                // Warm, or failed: the transfer's own read reports a failure.
                self.cached_to = self.cached_to.max(p.end);
                self.pending = None;
                true
            }
            _ => false,
        }
    }

    /// Before sending from `pos` (the file ends at `end`): how many bytes may
    /// go without touching the disk, or wait for a helper.
    pub fn gate(&mut self, file: &File, pos: u64, end: u64, cx: &mut DiskCx<'_>) -> Gate {
        if cx.link.is_none() || self.method == Method::Assume {
            return Gate::Go(u64::MAX);
        }
        if pos < self.cached_to {
            self.ahead(file, pos, end, cx);
            return Gate::Go(self.cached_to - pos);
        }
        if let Some(p) = &mut self.pending {
            // One job at a time: wait for it (it may cover `pos`), then look again.
            p.waiting = true;
            return Gate::Wait;
        }
        let len = (end - pos).min(limits::DISK_WINDOW);
        match self.residency(file, pos, len) {
            Residency::Cached => {
                self.cached_to = pos + len;
                self.ahead(file, pos, end, cx);
                Gate::Go(self.cached_to - pos)
            }
            Residency::Unknown => Gate::Go(u64::MAX),
            Residency::Missing => {
                if self.submit(file, pos, len, true, cx) {
                    Gate::Wait
                } else {
                    Gate::Go(len)
                }
            }
        }
    }

    /// Warms the next window while this one is sent, once less than half of
    /// the known-cached bytes are left: a streaming download never stops.
    fn ahead(&mut self, file: &File, pos: u64, end: u64, cx: &mut DiskCx<'_>) {
        let next = self.cached_to;
        if self.pending.is_some() || next >= end || next - pos > limits::DISK_WINDOW / 2 {
            return;
        }
        let len = (end - next).min(limits::DISK_WINDOW);
        match self.residency(file, next, len) {
            Residency::Cached => self.cached_to = next + len,
            Residency::Unknown => {}
            Residency::Missing => {
                self.submit(file, next, len, false, cx);
            }
        }
    }

    /// Asks the kernel with the best method left for this file.
    fn residency(&mut self, file: &File, off: u64, len: u64) -> Residency {
        if self.method == Method::Cachestat {
            match cache::cachestat(file.as_fd(), off, len) {
                Residency::Unknown => self.method = Method::Probe,
                r => return r,
            }
        }
        if self.method == Method::Probe {
            if len > limits::DISK_PROBE_MAX {
                return Residency::Missing;
            }
            match cache::probe(file.as_fd(), off, len) {
                Residency::Unknown => self.method = Method::Assume,
                r => return r,
            }
        }
        Residency::Unknown
    }

    /// Reads at `pos` into `buf` (the copy paths: TLS, ASCII, fallback)
    /// without waiting for the disk: `Ok(Go(n))` with `n` bytes read (0: the
    /// file ended), or `Ok(Wait)` while a helper reads the range in.
    pub fn read(&mut self, file: &File, buf: &mut [u8], pos: u64, end: u64, cx: &mut DiskCx<'_>) -> io::Result<Gate> {
        if cx.link.is_none() {
            return cache::pread(file.as_fd(), buf, pos).map(|n| Gate::Go(n as u64));
        }
        let room = match self.gate(file, pos, end, cx) {
            Gate::Wait => return Ok(Gate::Wait),
            Gate::Go(n) => usize::try_from(n).unwrap_or(usize::MAX).min(buf.len()),
        };
        let buf = &mut buf[..room];
        if self.nowait {
            match cache::pread_nowait(file.as_fd(), buf, pos) {
                Ok(n) => return Ok(Gate::Go(n as u64)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let len = (end - pos).min(limits::DISK_WINDOW);
                    if self.pending.is_some() {
                        if let Some(p) = &mut self.pending {
                            p.waiting = true;
                        }
                        return Ok(Gate::Wait);
                    }
                    self.cached_to = self.cached_to.min(pos);
                    if self.submit(file, pos, len, true, cx) {
                        return Ok(Gate::Wait);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Unsupported => self.nowait = false,
                Err(e) => return Err(e),
            }
        }
        cache::pread(file.as_fd(), buf, pos).map(|n| Gate::Go(n as u64))
    }

    /// Hands `[off, off + len)` to a helper. False when it could not be
    /// queued (the caller reads in place).
    fn submit(&mut self, file: &File, off: u64, len: u64, waiting: bool, cx: &mut DiskCx<'_>) -> bool {
        let Some(link) = cx.link else { return false };
        let Ok(ticket) = link.submit(cx.slot, cx.seq, file, Work::Warm { off, len }) else { return false };
        self.pending = Some(Box::new(Pending { ticket, end: off + len, waiting }));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn slot() -> Slot {
        Slot { key: 0, generation: 0 }
    }

    #[test]
    fn without_helpers_everything_goes() {
        let f = File::open("/proc/self/exe").expect("open");
        let mut seq = 0;
        let mut cx = DiskCx { link: None, slot: slot(), seq: &mut seq };
        let mut w = Window::new();
        assert_eq!(w.gate(&f, 0, 100, &mut cx), Gate::Go(u64::MAX));
        let mut buf = [0u8; 4];
        assert_eq!(w.read(&f, &mut buf, 0, 100, &mut cx).expect("read"), Gate::Go(4));
        assert_eq!(&buf, b"\x7fELF");
        assert!(!w.waiting());
    }

    fn ticket(seq: u64) -> (Ticket, Arc<AtomicBool>) {
        let cancel = Arc::new(AtomicBool::new(false));
        (Ticket { seq, cancel: cancel.clone() }, cancel)
    }

    #[test]
    fn a_completion_for_another_job_is_ignored() {
        let mut w = Window::new();
        let (ticket, cancel) = ticket(3);
        w.pending = Some(Box::new(Pending { ticket, end: 10, waiting: true }));
        assert!(w.waiting());
        assert!(!w.done(2));
        assert!(w.waiting());
        assert!(w.done(3));
        assert!(!w.waiting());
        assert_eq!(w.cached_to, 10);
        assert!(cancel.load(Ordering::Relaxed), "a finished job's flag is set: nothing left to do");
    }

    #[test]
    fn dropping_the_window_cancels_its_job() {
        let mut w = Window::new();
        let (ticket, cancel) = ticket(1);
        w.pending = Some(Box::new(Pending { ticket, end: 10, waiting: false }));
        drop(w);
        assert!(cancel.load(Ordering::Relaxed));
    }
}
