//! Formatted listings kept in memory (`--listing-cache SIZE`): one body per directory and
//! per everything that changes its bytes, shared by all workers, least recently used out.
//!
//! A body is served only while it cannot be told from a fresh listing:
//! - the directory is the same inode with the same ctime and mtime (nanoseconds) as when it
//!   was filled: entries added, removed or renamed change them;
//! - a write through this server (upload, delete, rename, mkdir, rmdir, MFMT, SITE CHMOD)
//!   drops every body of the directory it changed at once ([`ListCache::invalidate`]);
//! - a body is never older than [`limits::LIST_CACHE_MAX_AGE`]: the bound for a file
//!   rewritten in place by another program (its directory does not change), and for the
//!   LIST "recent" date rule, which depends on the clock;
//! - a directory changed within [`limits::LIST_CACHE_RACY`] of the fill's start is not
//!   cached: a change in the same timestamp tick as the fill could go unseen ("racy git").
//!
//! A missing or stale body is filled by a helper thread (`lists::fill`); sessions that ask
//! for the same body meanwhile wait on the same [`Fill`], so a popular directory is read once.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::Waker;

use crate::auth::rules::Deny;
use crate::fs::facts::Facts;
use crate::fs::listing::{ListFormat, ListOptions, Lister};
use crate::limits;
use crate::services::slot::Slot;

/// Bytes an entry is charged beyond its body (key, bookkeeping).
const ITEM_OVERHEAD: usize = 256;

/// A directory's identity and the timestamps that change with its entries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    /// (seconds, nanoseconds)
    pub ctime: (i64, i64),
    pub mtime: (i64, i64),
}

impl DirStamp {
    #[allow(clippy::unnecessary_cast)]
    pub fn from_libc(st: &libc::stat) -> DirStamp {
        DirStamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }

    fn dir(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The directory changed so recently (ctime, which no program can set back) that a change
    /// during a fill started at `fill_start` (Unix nanoseconds) might carry the same stamp.
    pub fn racy(&self, fill_start: i128) -> bool {
        let ctime = i128::from(self.ctime.0) * 1_000_000_000 + i128::from(self.ctime.1);
        ctime + limits::LIST_CACHE_RACY.as_nanos() as i128 >= fill_start
    }
}

/// Everything besides the directory that shapes a listing's bytes. Listings with a glob
/// pattern are never cached.
#[derive(Clone, Debug)]
pub struct Variant {
    /// The jail root's (dev, ino) and the directory's path in it: symlink targets are shown
    /// (LIST) or followed (MLSD) only inside the root.
    pub root: (u64, u64),
    pub path: Vec<u8>,
    pub deny_dotfiles: bool,
    pub format: ListFormat,
    pub all: bool,
    pub long: bool,
    pub local_time: bool,
    /// MLSD only (else NONE / ""): the OPTS MLST selection and the perm facts.
    pub facts: Facts,
    pub file_perm: &'static str,
    pub dir_perm: &'static str,
    /// The `hide` function's address.
    pub hide: usize,
    /// The --deny patterns in force (compared by identity: a reload makes a new one).
    pub deny: Option<Arc<Deny>>,
}

impl PartialEq for Variant {
    fn eq(&self, o: &Variant) -> bool {
        let deny = match (&self.deny, &o.deny) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        deny && self.root == o.root
            && self.path == o.path
            && self.deny_dotfiles == o.deny_dotfiles
            && self.format == o.format
            && self.all == o.all
            && self.long == o.long
            && self.local_time == o.local_time
            && self.facts == o.facts
            && self.file_perm == o.file_perm
            && self.dir_perm == o.dir_perm
            && self.hide == o.hide
    }
}

impl Variant {
    /// The variant of a listing with `opts` (None: not cacheable, a pattern).
    pub fn of(opts: &ListOptions, root: (u64, u64), path: &[u8], deny_dotfiles: bool) -> Option<Variant> {
        if opts.pattern.is_some() {
            return None;
        }
        let mlsd = opts.format == ListFormat::Mlsd;
        Some(Variant {
            root,
            path: path.to_vec(),
            deny_dotfiles,
            format: opts.format,
            all: opts.flags.all,
            long: opts.flags.long,
            local_time: opts.local_time,
            facts: if mlsd { opts.facts } else { Facts::NONE },
            file_perm: if mlsd { opts.file_perm } else { "" },
            dir_perm: if mlsd { opts.dir_perm } else { "" },
            hide: opts.hide as usize,
            deny: opts.deny.clone(),
        })
    }
}

/// How a session waiting on a fill is woken: its slot goes to its worker's channel, then
/// the worker's waker.
pub struct Wake {
    pub slot: Slot,
    pub tx: Sender<Slot>,
    pub waker: Arc<Waker>,
}

/// What a fill produced.
#[derive(Clone, Debug)]
pub enum FillResult {
    /// The whole listing.
    Body(Arc<[u8]>),
    /// Not filled here (larger than an entry may be, or no helper free): each waiting
    /// session streams the directory itself; the one that asked first gets what was read.
    Stream,
    /// Reading the directory failed.
    Failed(String),
}

/// What a fill read of a listing too large to keep, and the lister to go on with.
pub type Partial = (Vec<u8>, Lister);

/// One fill in progress, and the sessions waiting for it.
#[derive(Default)]
pub struct Fill {
    state: Mutex<FillState>,
}

#[derive(Default)]
struct FillState {
    result: Option<FillResult>,
    waiters: Vec<Wake>,
    /// For [`FillResult::Stream`]: the lines read so far and the lister to go on with.
    partial: Option<Partial>,
}

impl Fill {
    fn lock(&self) -> MutexGuard<'_, FillState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes `w` when the result is in (at once if it already is).
    pub fn attach(&self, w: Wake) {
        let mut s = self.lock();
        if s.result.is_some() {
            drop(s);
            wake(&w);
        } else {
            s.waiters.push(w);
        }
    }

    /// The result, once in; `partial` is taken by the session that asked first (`owner`).
    pub fn result(&self, owner: bool) -> Option<(FillResult, Option<Partial>)> {
        let mut s = self.lock();
        let r = s.result.clone()?;
        let partial = if owner { s.partial.take() } else { None };
        Some((r, partial))
    }

    /// Publishes the result and wakes every waiting session.
    pub fn finish(&self, result: FillResult, partial: Option<Partial>) {
        let waiters = {
            let mut s = self.lock();
            s.result = Some(result);
            s.partial = partial;
            std::mem::take(&mut s.waiters)
        };
        for w in &waiters {
            wake(w);
        }
    }
}

fn wake(w: &Wake) {
    if w.tx.send(w.slot).is_ok() {
        let _ = w.waker.wake();
    }
}

/// The answer of [`ListCache::lookup`].
pub enum Lookup {
    /// A fresh body: send it.
    Hit(Arc<[u8]>),
    /// Another session's fill of this body is running: wait for it.
    Wait(Arc<Fill>),
    /// Nothing usable: the caller must have it filled (and report to [`ListCache::complete`]).
    Miss(Arc<Fill>),
    /// Known to be too large for the cache: stream it.
    TooBig,
}

/// What a finished fill leaves in the cache.
pub enum Keep {
    Body(Arc<[u8]>),
    /// The listing is larger than an entry may be: stream it until the directory changes.
    TooBig,
    /// Nothing (failed, racy, or no helper was free).
    Nothing,
}

enum State {
    Ready { body: Arc<[u8]>, at: Instant },
    Filling(Arc<Fill>),
    TooBig { at: Instant },
}

struct Item {
    variant: Variant,
    stamp: DirStamp,
    tick: u64,
    state: State,
}

impl Item {
    fn charge(&self) -> usize {
        let body = match &self.state {
            State::Ready { body, .. } => body.len(),
            _ => 0,
        };
        ITEM_OVERHEAD + self.variant.path.len() + body
    }
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<(u64, u64), Vec<Item>>,
    /// tick → directory of the item with that tick (least recently used first).
    lru: BTreeMap<u64, (u64, u64)>,
    used: usize,
    tick: u64,
}

/// The cache, shared by every worker (a lock held for a lookup or an insert only).
pub struct ListCache {
    cap: usize,
    max_age: Duration,
    inner: Mutex<Inner>,
}

impl ListCache {
    pub fn new(cap: usize, max_age: Duration) -> ListCache {
        ListCache { cap, max_age, inner: Mutex::new(Inner::default()) }
    }

    /// The largest body kept: an eighth of the cache (a larger listing is streamed).
    pub fn max_body(&self) -> usize {
        self.cap / 8
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes charged now (bodies plus overhead), for tests and metrics.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// Finds the body of `variant` for the directory as `stamp` shows it now.
    pub fn lookup(&self, stamp: DirStamp, variant: &Variant, now: Instant) -> Lookup {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let bucket = inner.dirs.entry(stamp.dir()).or_default();
        let Some(item) = bucket.iter_mut().find(|i| i.variant == *variant) else {
            let fill = Arc::new(Fill::default());
            let item = Item { variant: variant.clone(), stamp, tick, state: State::Filling(fill.clone()) };
            inner.used += item.charge();
            bucket.push(item);
            inner.lru.insert(tick, stamp.dir());
            self.evict(inner);
            return Lookup::Miss(fill);
        };
        inner.lru.remove(&item.tick);
        item.tick = tick;
        inner.lru.insert(tick, stamp.dir());
        let same = item.stamp == stamp;
        match &item.state {
            State::Ready { body, at } if same && now.saturating_duration_since(*at) < self.max_age => {
                return Lookup::Hit(body.clone());
            }
            State::Filling(f) if same => return Lookup::Wait(f.clone()),
            State::TooBig { at } if same && now.saturating_duration_since(*at) < limits::LIST_CACHE_TOO_BIG_AGE => {
                return Lookup::TooBig;
            }
            _ => {}
        }
        let fill = Arc::new(Fill::default());
        inner.used -= item.charge();
        item.stamp = stamp;
        item.state = State::Filling(fill.clone());
        inner.used += item.charge();
        Lookup::Miss(fill)
    }

    /// Records what the fill `fill` of `stamp`'s directory kept, unless the entry was
    /// invalidated or evicted meanwhile.
    pub fn complete(&self, stamp: DirStamp, fill: &Arc<Fill>, keep: Keep) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(bucket) = inner.dirs.get_mut(&stamp.dir()) else { return };
        let Some(pos) = bucket.iter().position(|i| matches!(&i.state, State::Filling(f) if Arc::ptr_eq(f, fill)))
        else {
            return;
        };
        let item = &mut bucket[pos];
        let now = Instant::now();
        let state = match keep {
            Keep::Body(body) if body.len() <= self.max_body() => Some(State::Ready { body, at: now }),
            Keep::TooBig => Some(State::TooBig { at: now }),
            _ => None,
        };
        inner.used -= item.charge();
        match state {
            Some(s) => {
                item.state = s;
                inner.used += item.charge();
            }
            None => {
                let gone = bucket.swap_remove(pos);
                inner.lru.remove(&gone.tick);
                if bucket.is_empty() {
                    inner.dirs.remove(&stamp.dir());
                }
            }
        }
        self.evict(inner);
    }

    /// Drops every body of the directory (dev, ino): something in it was written.
    pub fn invalidate(&self, dev: u64, ino: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(bucket) = inner.dirs.remove(&(dev, ino)) {
            for item in bucket {
                inner.used -= item.charge();
                inner.lru.remove(&item.tick);
            }
        }
    }

    /// Least recently used entries out until the charge fits.
    fn evict(&self, inner: &mut Inner) {
        while inner.used > self.cap {
            let Some((tick, dir)) = inner.lru.pop_first() else { break };
            let Some(bucket) = inner.dirs.get_mut(&dir) else { continue };
            if let Some(pos) = bucket.iter().position(|i| i.tick == tick) {
                let gone = bucket.swap_remove(pos);
                inner.used -= gone.charge();
            }
            if bucket.is_empty() {
                inner.dirs.remove(&dir);
            }
        }
    }
}

/// Parses `--listing-cache`: bytes with an optional K, M or G suffix (binary); 0 disables.
pub fn parse_size(s: &str) -> Result<u64, String> {
    use crate::rate::{SizeError, parse_binary_size};
    match parse_binary_size(s) {
        Err(SizeError::Malformed) => {
            Err(format!("{s:?}: expected a size in bytes with an optional K, M or G suffix (e.g. 64M)"))
        }
        Ok(v) if v <= limits::LIST_CACHE_MAX => Ok(v),
        Ok(_) | Err(SizeError::TooLarge) => Err(format!("{s:?}: at most 64G")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::listing::ListOptions;

    fn stamp(ino: u64, ctime: i64) -> DirStamp {
        DirStamp { dev: 1, ino, ctime: (ctime, 0), mtime: (ctime, 0) }
    }

    fn variant(format: ListFormat) -> Variant {
        Variant::of(&ListOptions::new(format, 0), (1, 2), b"/d", true).expect("no pattern")
    }

    fn body(n: usize) -> Arc<[u8]> {
        vec![b'x'; n].into()
    }

    /// Fills (ino, format) with `n` bytes; returns the body.
    fn fill(c: &ListCache, ino: u64, format: ListFormat, n: usize) -> Arc<[u8]> {
        let s = stamp(ino, 100);
        let Lookup::Miss(f) = c.lookup(s, &variant(format), Instant::now()) else { panic!("expected a miss") };
        let b = body(n);
        c.complete(s, &f, Keep::Body(b.clone()));
        f.finish(FillResult::Body(b.clone()), None);
        b
    }

    fn hit(c: &ListCache, ino: u64, format: ListFormat) -> Option<Arc<[u8]>> {
        match c.lookup(stamp(ino, 100), &variant(format), Instant::now()) {
            Lookup::Hit(b) => Some(b),
            Lookup::Miss(f) => {
                c.complete(stamp(ino, 100), &f, Keep::Nothing);
                None
            }
            _ => None,
        }
    }

    #[test]
    fn least_recently_used_bodies_go_first_and_memory_stays_bounded() {
        let entry = 10_000;
        let c = ListCache::new(8 * (entry + 1000), Duration::from_secs(60));
        for ino in 0..8 {
            fill(&c, ino, ListFormat::List, entry);
        }
        assert!(c.used() <= 8 * (entry + 1000));
        for ino in 0..8 {
            assert!(hit(&c, ino, ListFormat::List).is_some(), "{ino}");
        }
        // Touch 0 again, then add more: 1, 2, ... go, 0 stays.
        assert!(hit(&c, 0, ListFormat::List).is_some());
        for ino in 8..12 {
            fill(&c, ino, ListFormat::List, entry);
            assert!(c.used() <= 8 * (entry + 1000), "{}", c.used());
        }
        assert!(hit(&c, 0, ListFormat::List).is_some());
        assert!(hit(&c, 1, ListFormat::List).is_none());
        assert!(hit(&c, 11, ListFormat::List).is_some());
        // A body larger than an eighth of the cache is not kept.
        fill(&c, 20, ListFormat::List, c.max_body() + 1);
        assert!(hit(&c, 20, ListFormat::List).is_none());
    }

    #[test]
    fn stamps_age_and_invalidation_refill() {
        let c = ListCache::new(1 << 20, Duration::from_millis(200));
        let b = fill(&c, 7, ListFormat::Mlsd, 100);
        fill(&c, 7, ListFormat::Nlst, 50);
        assert!(hit(&c, 7, ListFormat::Mlsd).is_some_and(|h| Arc::ptr_eq(&h, &b)));
        // Another ctime: the directory changed.
        assert!(matches!(c.lookup(stamp(7, 101), &variant(ListFormat::Mlsd), Instant::now()), Lookup::Miss(_)));
        // Invalidation drops every format of the directory, and a fill that was running
        // when it happened keeps nothing.
        let s = stamp(7, 100);
        let Lookup::Miss(running) = c.lookup(s, &variant(ListFormat::List), Instant::now()) else { panic!() };
        c.invalidate(1, 7);
        assert_eq!(c.used(), 0);
        c.complete(s, &running, Keep::Body(body(10)));
        assert!(hit(&c, 7, ListFormat::List).is_none());
        assert!(hit(&c, 7, ListFormat::Nlst).is_none());
        // Too old: refilled.
        fill(&c, 8, ListFormat::List, 10);
        let later = Instant::now() + Duration::from_millis(250);
        assert!(matches!(c.lookup(stamp(8, 100), &variant(ListFormat::List), later), Lookup::Miss(_)));
    }

    #[test]
    fn one_fill_serves_every_waiting_session_and_variants_differ() {
        let c = ListCache::new(1 << 20, Duration::from_secs(60));
        let s = stamp(3, 100);
        let v = variant(ListFormat::Mlsd);
        let Lookup::Miss(first) = c.lookup(s, &v, Instant::now()) else { panic!() };
        let Lookup::Wait(second) = c.lookup(s, &v, Instant::now()) else { panic!("coalesced") };
        assert!(Arc::ptr_eq(&first, &second));
        assert!(second.result(false).is_none());
        first.finish(FillResult::Stream, None);
        assert!(matches!(second.result(false), Some((FillResult::Stream, None))));
        c.complete(s, &first, Keep::TooBig);
        assert!(matches!(c.lookup(s, &v, Instant::now()), Lookup::TooBig));
        // Anything that changes the bytes is another entry.
        let mut o = ListOptions::new(ListFormat::Mlsd, 0);
        o.facts = Facts::TYPE;
        let other = |o: &ListOptions| Variant::of(o, (1, 2), b"/d", true).expect("variant");
        assert!(other(&o) != v);
        let mut o = ListOptions::new(ListFormat::Mlsd, 0);
        o.file_perm = "rw";
        assert!(other(&o) != v);
        assert!(Variant::of(&ListOptions::new(ListFormat::Mlsd, 0), (1, 3), b"/d", true) != Some(v.clone()));
        assert!(Variant::of(&ListOptions::new(ListFormat::Mlsd, 0), (1, 2), b"/e", true) != Some(v.clone()));
        let mut o = ListOptions::new(ListFormat::Mlsd, 0);
        o.deny = Some(Arc::new(Deny::default()));
        assert!(other(&o) != v);
        o.pattern = Some(b"*.iso".to_vec());
        assert!(Variant::of(&o, (1, 2), b"/d", true).is_none(), "patterns are not cached");
    }

    #[test]
    fn a_directory_changed_just_before_the_fill_is_racy() {
        let st = DirStamp { dev: 1, ino: 1, ctime: (1000, 0), mtime: (1000, 0) };
        assert!(st.racy(1000 * 1_000_000_000 + 50_000_000));
        assert!(!st.racy(1001 * 1_000_000_000));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("12Q").is_err() && parse_size("").is_err() && parse_size("65G").is_err());
    }
}
