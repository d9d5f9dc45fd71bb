#!/usr/bin/env python3
"""procstat.py — memory and CPU time of one process tree, for perf/compare.sh.

Usage: procstat.py [--no-mem] [--skip-root] PID

Prints one JSON object on stdout:
  procs       processes in the tree (PID and every descendant: forking
              servers have one or two per session)
  rss_kib     sum of Rss over them (counts shared pages once per process)
  pss_kib     sum of Pss (shared pages split between the processes sharing
              them: the fair "what this tree costs" figure)
  cpu_secs    user+system CPU of the tree so far: live processes' own time
              plus the time of children they have already reaped
  read_bytes  bytes the tree made the kernel read from storage so far
              (/proc/PID/io read_bytes: page-cache misses and the read-ahead
              they start; reaped children's are counted by their parent);
              0 where the kernel has no I/O accounting
  elapsed     seconds the sampling took

Rss/Pss come from /proc/PID/smaps_rollup (--no-mem skips them: CPU only,
cheap enough to call around every run). --skip-root leaves PID itself out
of procs/rss/pss but not of cpu_secs (for perf/reaper.c, which only holds
the server's reaped CPU time). Processes that exit while being read are
skipped.
"""
import json
import os
import sys
import time


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def tree(root):
    seen, queue = [], [root]
    while queue:
        pid = queue.pop()
        seen.append(pid)
        queue.extend(children(pid))
    return seen


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the ")" of comm: state is field 3; utime..cstime 14..17.
        rest = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in rest[11:15])


def io_read_bytes(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rollup(pid):
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def main(argv):
    mem = "--no-mem" not in argv
    skip_root = "--skip-root" in argv
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or not args[0].isdigit():
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    t0 = time.monotonic()
    procs = rss = pss = ticks = read = 0
    root = int(args[0])
    for pid in tree(root):
        try:
            t = cpu_ticks(pid)
            ticks += t
            read += io_read_bytes(pid)
            if skip_root and pid == root:
                continue
            r, p = rollup(pid) if mem else (0, 0)
        except (OSError, IndexError, ValueError):
            continue
        procs += 1
        rss += r
        pss += p
    out = {"procs": procs, "cpu_secs": ticks / os.sysconf("SC_CLK_TCK"), "read_bytes": read,
           "elapsed": round(time.monotonic() - t0, 3)}
    if mem:
        out.update(rss_kib=rss, pss_kib=pss)
    print(json.dumps(out))
    return 0 if procs or ticks else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
