#!/usr/bin/env python3
"""evictor.py — a page cache that holds only the last few seconds of some files.

Usage: evictor.py [--max-age SECS] [--interval SECS] FILE...

For perf/mirror.sh's disk phases: a mirror's tree is many times its RAM, so
an image streamed a minute ago is no longer cached when the next client
asks for it. Here the tree (16 GiB) fits in RAM, and a session that finishes
its image moves on to one that another session has just read. So, every
--interval seconds (default 0.5), this looks at which 2 MiB chunks of each
FILE are in the page cache (cachestat(2), Linux 6.5+, about 8 ms for 16 GiB;
older kernels: mincore(2) on a mapping it never touches, 25 times slower) and
evicts (posix_fadvise DONTNEED) the chunks that have been cached for more
than --max-age seconds (default 3): data sent seconds ago, not the
read-ahead a reader is about to use (consumed within a fraction of a second
at tens of MiB/s per stream). Only FILEs' pages: nothing else on the
machine is touched. Runs until SIGTERM or SIGINT, then prints one JSON line:
{"scans": N, "evicted_bytes": B, "scan_secs": CPU seconds spent}.
"""
import ctypes
import json
import mmap
import os
import signal
import sys
import time

CHUNK = 2 << 20
PAGE = mmap.PAGESIZE
PAGES_PER_CHUNK = CHUNK // PAGE

SYS_CACHESTAT = 451                      # x86_64 and most others (not alpha)

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


class CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class Cachestat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


def cachestat(fd, off, length, rng=CachestatRange(), out=Cachestat()):
    """Pages of fd's [off, off+length) in the page cache; None without cachestat(2)."""
    rng.off, rng.len = off, length
    if libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(out), 0) != 0:
        return None
    return out.nr_cache


class Tracked:
    """One file: its mapping (never touched), and when each chunk was first seen cached."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.pages = (self.size + PAGE - 1) // PAGE
        self.chunks = (self.size + CHUNK - 1) // CHUNK
        self.seen = {}
        self.addr = None
        if cachestat(self.fd, 0, PAGE) is None:
            self.addr = libc.mmap(None, self.size, mmap.PROT_READ, mmap.MAP_SHARED, self.fd, 0)
            if self.addr in (None, MAP_FAILED):
                raise OSError(ctypes.get_errno(), f"mmap {path}")
            self.vec = ctypes.create_string_buffer(self.pages)

    def cached_pages(self):
        """Cached pages per chunk."""
        if self.addr is None:
            return [cachestat(self.fd, c * CHUNK, CHUNK) for c in range(self.chunks)]
        if libc.mincore(self.addr, self.size, self.vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        v = self.vec.raw
        return [PAGES_PER_CHUNK - v[c * PAGES_PER_CHUNK:(c + 1) * PAGES_PER_CHUNK].count(0)
                for c in range(self.chunks)]

    def scan(self, now, max_age):
        """Evicts chunks cached for longer than max_age; returns the bytes evicted."""
        evicted = 0
        for c, n in enumerate(self.cached_pages()):
            if not n:
                self.seen.pop(c, None)
                continue
            first = self.seen.setdefault(c, now)
            if now - first >= max_age:
                os.posix_fadvise(self.fd, c * CHUNK, CHUNK, os.POSIX_FADV_DONTNEED)
                evicted += n * PAGE
                del self.seen[c]
        return evicted


def main(argv):
    max_age, interval, files = 3.0, 0.5, []
    it = iter(argv)
    for a in it:
        if a == "--max-age":
            max_age = float(next(it))
        elif a == "--interval":
            interval = float(next(it))
        elif a.startswith("--"):
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
        else:
            files.append(a)
    if not files:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    tracked = [Tracked(f) for f in files]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    scans = evicted = 0
    cpu0 = time.process_time()
    while not stop:
        now = time.monotonic()
        for t in tracked:
            evicted += t.scan(now, max_age)
        scans += 1
        time.sleep(max(0.0, interval - (time.monotonic() - now)))
    print(json.dumps({"scans": scans, "evicted_bytes": evicted,
                      "scan_secs": round(time.process_time() - cpu0, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
