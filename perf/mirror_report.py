#!/usr/bin/env python3
"""mirror_report.py — the table and the plot of one perf/mirror.sh run.

Usage: mirror_report.py RUN_DIR STEM [--no-plot]    collect RUN_DIR/{meta.txt,
                                                     runs/}, write STEM.jsonl,
                                                     STEM.md and STEM.png
       mirror_report.py --jsonl FILE STEM [--no-plot]  rebuild from a .jsonl

STEM.jsonl: first line {"meta": {...}}, then one object per server and phase:
server, phase, rc, wall_secs, server_cpu_secs, disk_read_bytes, the images'
cache state (images_cached_before/after, bytes), TIME_WAIT counts (defaults
phase), and loads: the bench's JSON summary per load (small, big, bigc, list;
warmup for the defaults phase).
"""
import glob
import json
import os
import sys

MIB = 1048576.0
GIB = 1073741824
BASE = "mirrorftpd"
PHASE_TITLES = {
    "small": "4 KiB transfers alone",
    "disk": "big files from disk alone",
    "mix_disk": "both at once, big files from disk",
    "mix_cached": "both at once, everything cached",
    "list": "LIST of a 10,000-entry directory",
    "defaults": "4 KiB transfers, default flags, default TCP settings",
}
NAMES = {"mirrorftpd": "mirrorftpd", "vsftpd": "vsftpd", "proftpd": "ProFTPD", "pure-ftpd": "Pure-FTPd",
         "pyftpdlib": "pyftpdlib"}
# Targets of issue 11, as ratios.
KEPT_MIN, P99_MAX_MS, BIG_MIN, CACHED_KEPT_MIN, DEFAULTS_MIN, LIST_RATE_MIN, LIST_CPU_MAX = \
    0.9, 10.0, 1.0, 0.9, 1.2, 5.0, 0.2


# ------------------------------------------------------------------ input --
def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key == "server":
                out.setdefault("servers", []).append(value)
            elif key == "warning":
                out.setdefault("warnings", []).append(value)
            else:
                out[key] = value
    return out


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tail(path, lines=6):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


def number(v):
    try:
        return float(v) if "." in v else int(v)
    except (TypeError, ValueError):
        return v


def collect(run_dir):
    meta = read_kv(os.path.join(run_dir, "meta.txt"))
    records = []
    for meta_path in sorted(glob.glob(os.path.join(run_dir, "runs", "*.meta"))):
        base = meta_path[: -len(".meta")]
        server, phase = os.path.basename(base).rsplit(".", 1)
        kv = read_kv(meta_path)
        rec = {"server": server, "phase": phase}
        rec.update({k: number(v) for k, v in kv.items()})
        roles = (kv.get("roles") or "").split()
        rec["loads"] = {r: read_json(f"{base}.{r}.json") for r in roles}
        if phase == "defaults":
            rec["loads"]["warmup"] = read_json(f"{base}.warmup.json")
        errs = {r: tail(f"{base}.{r}.err") for r in roles if rec["loads"].get(r) is None}
        if errs:
            rec["stderr_tail"] = errs
        records.append(rec)
    for path in sorted(glob.glob(os.path.join(run_dir, "strace", "*.txt"))):
        server, phase = os.path.basename(path)[: -len(".txt")].rsplit(".", 1)
        records.append({"strace": {"server": server, "phase": phase, "text": strace_top(path)}})
    return meta, records


def strace_top(path, rows=12):
    """The header and the first rows of a `strace -c` summary, and its total."""
    try:
        with open(path, errors="replace") as f:
            lines = [x.rstrip() for x in f if x.strip()]
    except OSError:
        return ""
    start = next((i for i, x in enumerate(lines) if x.lstrip().startswith("% time")), None)
    if start is None:
        return "\n".join(lines[-rows:])
    body = lines[start + 2:]
    total = [x for x in body if x.endswith("total")]
    body = [x for x in body if not x.startswith("---") and not x.endswith("total")]
    return "\n".join(lines[start:start + 2] + body[:rows] + total)


def load_jsonl(path):
    meta, records = {}, []
    with open(path) as f:
        for line in f:
            obj = json.loads(line)
            if "meta" in obj:
                meta = obj["meta"]
            else:
                records.append(obj)
    return meta, records


# -------------------------------------------------------------- summarize --
def retr_latency(load):
    lat = ((load or {}).get("latency") or {})
    lat = lat.get("retr") or lat.get("list") or next(iter(lat.values()), {})
    return lat.get("total_ms") or {}


def summarize(records):
    """{phase: {server: figures}}; figures None where a load failed."""
    out = {}
    for r in records:
        if "strace" in r:
            continue
        loads = r.get("loads") or {}
        wall = r.get("wall_secs") or 0
        cpu = r.get("server_cpu_secs")
        f = {"cpu_pct": 100.0 * cpu / wall if wall and isinstance(cpu, (int, float)) else None,
             "cpu_secs": cpu if isinstance(cpu, (int, float)) else None, "rc": r.get("rc", 1)}
        ok = True
        for role, j in loads.items():
            if role == "warmup":
                continue
            if not j or (j.get("ops", 0) == 0 and j.get("bytes", 0) == 0):
                ok = False
                continue
            errs = sum((j.get("errors") or {}).values())
            f[f"{role}_errors"] = errs
            f[f"{role}_client_cpu"] = j.get("client_cpu_percent")
            if role in ("small", "list"):
                lat = retr_latency(j)
                f[f"{role}_ops"] = j.get("ops_per_s")
                f[f"{role}_p50"] = lat.get("p50")
                f[f"{role}_p99"] = lat.get("p99")
            if role in ("big", "bigc"):
                f["big_mib"] = j.get("mib_per_s")
                f["big_bytes"] = j.get("bytes")
                f["big_files_done"] = j.get("ops")
            if role == "list" and j.get("ops"):
                f["list_kib"] = j.get("bytes", 0) / j["ops"] / 1024
                if f["cpu_secs"] is not None:
                    f["list_cpu_ms"] = 1000.0 * f["cpu_secs"] / j["ops"]
            if role == "small" and j.get("ops") and f["cpu_secs"] is not None:
                f["small_cpu_us"] = 1e6 * f["cpu_secs"] / j["ops"]
        if "disk_read_bytes" in r and wall:
            f["disk_mib"] = r["disk_read_bytes"] / MIB / wall
        if isinstance(r.get("server_read_bytes"), (int, float)) and wall:
            f["server_read_mib"] = r["server_read_bytes"] / MIB / wall
            if f.get("big_bytes"):
                f["from_disk"] = r["server_read_bytes"] / f["big_bytes"]
        if r.get("images"):
            total = r["images"] * GIB
            f["cached_before"] = r.get("images_cached_before", 0) / total
            f["cached_after"] = r.get("images_cached_after", 0) / total
        ev = r.get("evictor")
        if isinstance(ev, str) and ev.startswith("{"):
            try:
                f["evicted_mib"] = json.loads(ev).get("evicted_bytes", 0) / MIB
            except ValueError:
                pass
        for k in ("timewait_after_warmup", "timewait_end"):
            if k in r:
                f[k] = r[k]
        warm = loads.get("warmup")
        if warm:
            f["warmup_ops"] = warm.get("ops_per_s")
        f["failed"] = not ok or r.get("rc", 1) != 0 and not loads
        if not ok:
            f["why"] = r.get("skipped") or "; ".join(f"{k}: {v.splitlines()[-1] if v else 'no output'}"
                                                   for k, v in (r.get("stderr_tail") or {}).items()) or "no result"
        out.setdefault(r["phase"], {})[r["server"]] = f
    # Ratios that need two phases: the 4 KiB rate kept under each mix.
    for mix in ("mix_disk", "mix_cached"):
        for s, f in out.get(mix, {}).items():
            alone = out.get("small", {}).get(s, {}).get("small_ops")
            if alone and f.get("small_ops") is not None:
                f["kept"] = f["small_ops"] / alone
    return out


def server_order(meta, summary):
    seen = list(meta.get("servers") or [])
    for ph in summary.values():
        for s in ph:
            if s not in seen:
                seen.append(s)
    return seen


# ------------------------------------------------------------- formatting --
def num(v, digits=None):
    if v is None:
        return ""
    if digits is None:
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}"


def ms(v):
    return "" if v is None else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def pct(v):
    return "" if v is None else f"{100 * v:.0f}%"


def cell(summary, phase, s, key, fmt=num):
    f = summary.get(phase, {}).get(s)
    if f is None:
        return ""
    if f.get("failed") and f.get(key) is None:
        return "failed"
    return fmt(f.get(key))


def target_rows(summary, servers):
    """(target, mirrorftpd's figure, the reference, ratio, goal, result, note)."""
    peers = [s for s in servers if s != BASE]
    rows = []

    def get(phase, s, key):
        f = summary.get(phase, {}).get(s) or {}
        return f.get(key)

    def verdict(value, goal, higher=True):
        if value is None:
            return "n/a", "not measured"
        good = value >= goal if higher else value <= goal
        if good:
            return "**PASS**", ""
        if higher:
            return "**MISS**", f"{goal / value:.1f}× short" if value > 0 else "nothing measured"
        return "**MISS**", f"{value / goal:.1f}× over"

    kept = get("mix_disk", BASE, "kept")
    res, note = verdict(kept, KEPT_MIN)
    rows.append(("disk mix: 4 KiB rate kept (mix ÷ alone)",
                 f"{num(get('mix_disk', BASE, 'small_ops'))} ÷ {num(get('small', BASE, 'small_ops'))} /s",
                 "", num(kept, 2), f"≥ {KEPT_MIN}", res, note))
    p99 = get("mix_disk", BASE, "small_p99")
    res, note = verdict(p99, P99_MAX_MS, higher=False)
    rows.append(("disk mix: 4 KiB p99", f"{ms(p99)} ms (p50 {ms(get('mix_disk', BASE, 'small_p50'))})",
                 "", "", f"≤ {P99_MAX_MS:g} ms", res, note))
    big = get("mix_disk", BASE, "big_mib")
    peer_big = [(get("mix_disk", s, "big_mib"), s) for s in peers if get("mix_disk", s, "big_mib") is not None]
    best = max(peer_big, default=None)
    ratio = big / best[0] if big is not None and best and best[0] else None
    res, note = verdict(ratio, BIG_MIN)
    rows.append(("disk mix: big-file MiB/s ≥ every peer's", f"{num(big)} MiB/s",
                 f"{NAMES.get(best[1], best[1])} {num(best[0])}" if best else "", num(ratio, 2),
                 f"≥ {BIG_MIN:g}× best peer", res, note))
    kept_c = get("mix_cached", BASE, "kept")
    res, note = verdict(kept_c, CACHED_KEPT_MIN)
    rows.append(("cached mix: 4 KiB rate kept",
                 f"{num(get('mix_cached', BASE, 'small_ops'))} ÷ {num(get('small', BASE, 'small_ops'))} /s "
                 f"(p99 {ms(get('mix_cached', BASE, 'small_p99'))} ms)",
                 "", num(kept_c, 2), f"≥ {CACHED_KEPT_MIN}", res, note))
    d = get("defaults", BASE, "small_ops")
    pure = get("defaults", "pure-ftpd", "small_ops")
    ratio = d / pure if d is not None and pure else None
    res, note = verdict(ratio, DEFAULTS_MIN)
    rows.append(("default flags: 4 KiB RETR/s ≥ 1.2× Pure-FTPd's", f"{num(d)} /s",
                 f"Pure-FTPd {num(pure)}" if pure else "", num(ratio, 2), f"≥ {DEFAULTS_MIN}×", res, note))
    lr = get("list", BASE, "list_ops")
    peer_lr = [(get("list", s, "list_ops"), s) for s in peers if get("list", s, "list_ops") is not None]
    best = max(peer_lr, default=None)
    ratio = lr / best[0] if lr is not None and best and best[0] else None
    res, note = verdict(ratio, LIST_RATE_MIN)
    rows.append(("LIST 10,000 entries: listings/s ≥ 5× the best peer's", f"{num(lr)} /s",
                 f"{NAMES.get(best[1], best[1])} {num(best[0])}" if best else "", num(ratio, 2),
                 f"≥ {LIST_RATE_MIN:g}×", res, note))
    lc = get("list", BASE, "list_cpu_ms")
    peer_lc = [(get("list", s, "list_cpu_ms"), s) for s in peers if get("list", s, "list_cpu_ms") is not None]
    best = min(peer_lc, default=None)
    ratio = lc / best[0] if lc is not None and best and best[0] else None
    res, note = verdict(ratio, LIST_CPU_MAX, higher=False)
    rows.append(("LIST: server CPU per listing ≤ 0.2× the best peer's", f"{ms(lc)} ms",
                 f"{NAMES.get(best[1], best[1])} {ms(best[0])} ms" if best else "", num(ratio, 2),
                 f"≤ {LIST_CPU_MAX:g}×", res, note))
    return rows


def markdown(meta, records, summary):
    servers = server_order(meta, summary)
    quick = meta.get("quick") == "1"
    o = []
    w = o.append
    title = "mirrorftpd on a mirror workload (perf/mirror.sh)"
    w(f"# {title} — {meta.get('date', '')}\n")
    if quick:
        w("> **SMOKE TEST** (`--quick`: 3 s phases on a shared machine). These figures only show that the "
          "script works; they are not a measurement.\n")
    dur, dsecs = meta.get("duration"), meta.get("defaults_secs")
    w(f"- machine: {meta.get('nproc')} CPUs ({meta.get('cpu')}), {meta.get('ram')} RAM, kernel {meta.get('kernel')}, "
      f"{meta.get('os')}; disk {meta.get('disk')}; everything on 127.0.0.1, servers and load generators sharing the CPUs")
    w(f"- command: `{meta.get('command')}` (cwd {meta.get('cwd')}); one run per server and phase, "
      f"{dur} s per phase (default-flags phase: {dsecs} s warm-up, then {dsecs} s measured); "
      f"{int(meta.get('elapsed_secs', 0)) // 60} min of measuring")
    w(f"- load generator: `{meta.get('bench_bin')} bench …` — {meta.get('bench_version')}; "
      f"common flags `{meta.get('bench_common')}`")
    for role, what in (("small", "4 KiB load"), ("big", "big files from disk"), ("bigc", "big files cached"),
                       ("list", "listing load")):
        if meta.get(f"cmd_{role}"):
            w(f"  - {what}: `{meta[f'cmd_{role}']}`")
    w(f"- network: a network namespace of its own with `{meta.get('sysctl', '').strip()}` (as perf/compare.sh); "
      f"the default-flags phase: a fresh namespace per server, kernel defaults "
      f"`{meta.get('sysctl_defaults', '').strip() or 'not run'}`")
    cs = meta.get("cache_secs", "0")
    during = (f", and during it every 2 MiB of them that has been cached {cs} s (perf/evictor.py)"
              if cs not in ("", "0") else "")
    w(f"- page cache: the images are evicted (posix_fadvise DONTNEED{' and drop_caches' if meta.get('drop_caches') == '1' else ''}) "
      f"before each disk phase{during}; the 4 KiB files are re-read right before every phase; the cached mix reads "
      f"{meta.get('cached_images')} of the {meta.get('images')} images, read into the cache right before")
    w(f"- load average at start {meta.get('load_start')}, at end {meta.get('load_end')} (other work on the machine competes for the same CPUs)")
    w("- servers:")
    for s in servers:
        w(f"  - **{NAMES.get(s, s)}**: {meta.get(f'version_{s}', '')} — {meta.get(f'note_{s}', '')}")
    if BASE in servers:
        w(f"  - default-flags phase, **mirrorftpd**: {meta.get(f'note_defaults_{BASE}', '')}; {meta.get('max_per_ip_note', '')}; "
          "the peers as above (none has a passive port range)")
    problems = [f"**{s}**: {meta[f'skipped_{s}']}" for s in servers if meta.get(f"skipped_{s}")]
    problems += [f"**{s} {p}**: {f.get('why')}" for p, ph in summary.items() for s, f in ph.items() if f.get("failed")]
    problems += meta.get("warnings") or []
    if problems:
        w("\n> **WARNING — not everything was measured:**")
        for p in problems:
            w(f"> - {p}")
    w("")

    w("## Targets (issue 11)\n")
    w("| target | mirrorftpd | best peer / reference | ratio | goal | result | by how much |")
    w("|---|---:|---:|---:|---|---|---|")
    for row in target_rows(summary, servers):
        w("| " + " | ".join(row) + " |")
    if any("strace" in r for r in records):
        w("\nWhere the time goes: see the `strace -c` summaries at the end.\n")
    else:
        w("\nWhere a target is missed, `perf/mirror.sh --strace` adds where mirrorftpd's time goes "
          "(`strace -c -f -w` of each phase, at the end); `perf top -p PID` is the other view.\n")

    w("## Summary\n")
    w("Server CPU in brackets (100% = one core; over the phase, both loads together in a mix).\n")
    w("| server | 4 KiB alone /s | big from disk MiB/s | disk mix: 4 KiB /s (kept) | disk mix: p50 / p99 ms | "
      "disk mix: big MiB/s | cached mix: 4 KiB /s (kept) | cached mix: p99 ms | cached mix: big MiB/s | "
      "default flags: 4 KiB /s | LIST 10k /s | LIST CPU ms/listing |")
    w("|---|" + "---:|" * 11)
    for s in servers:
        def g(phase):
            return summary.get(phase, {}).get(s) or {}

        def cpu(phase):
            c = g(phase).get("cpu_pct")
            return f" [{c:.0f}%]" if c is not None else ""

        def kept(phase):
            k = g(phase).get("kept")
            return f" ({k:.2f})" if k is not None else ""
        w(f"| {NAMES.get(s, s)} | {cell(summary, 'small', s, 'small_ops')}{cpu('small')} "
          f"| {cell(summary, 'disk', s, 'big_mib')}{cpu('disk')} "
          f"| {cell(summary, 'mix_disk', s, 'small_ops')}{kept('mix_disk')}{cpu('mix_disk')} "
          f"| {ms(g('mix_disk').get('small_p50'))} / {ms(g('mix_disk').get('small_p99'))} "
          f"| {cell(summary, 'mix_disk', s, 'big_mib')} "
          f"| {cell(summary, 'mix_cached', s, 'small_ops')}{kept('mix_cached')}{cpu('mix_cached')} "
          f"| {ms(g('mix_cached').get('small_p99'))} "
          f"| {cell(summary, 'mix_cached', s, 'big_mib')} "
          f"| {cell(summary, 'defaults', s, 'small_ops')}{cpu('defaults')} "
          f"| {cell(summary, 'list', s, 'list_ops')}{cpu('list')} "
          f"| {ms(g('list').get('list_cpu_ms'))} |")
    w("")

    for phase in ("small", "disk", "mix_disk", "mix_cached", "defaults", "list"):
        ph = summary.get(phase)
        if not ph:
            continue
        w(f"## {PHASE_TITLES[phase]}\n")
        if phase in ("small", "mix_disk", "mix_cached", "defaults"):
            cols = ["4 KiB /s", "p50 ms", "p99 ms"]
            if phase.startswith("mix"):
                cols += ["kept", "big MiB/s"]
            if phase in ("mix_disk",):
                cols += ["server's disk reads MiB/s", "its disk reads ÷ big-file bytes served",
                         "images cached at start → end"]
            if phase == "mix_cached":
                cols += ["images cached at start → end"]
            if phase == "defaults":
                cols += ["warm-up 4 KiB /s", "TIME_WAIT after warm-up → end"]
            cols += ["server CPU %", "server CPU µs per 4 KiB transfer", "client CPU %", "errors"]
        elif phase == "disk":
            cols = ["MiB/s", "server's disk reads MiB/s", "its disk reads ÷ served", "device reads MiB/s (everyone)",
                    "images cached at start → end", "evicted during it, MiB", "1 GiB files completed",
                    "server CPU %", "client CPU %", "errors"]
        else:
            cols = ["listings/s", "server CPU ms per listing", "KiB per listing", "p50 ms", "p99 ms",
                    "server CPU %", "client CPU %", "errors"]
        w("| server | " + " | ".join(cols) + " |")
        w("|---|" + "---:|" * len(cols))
        for s in servers:
            f = ph.get(s)
            if f is None:
                continue
            if f.get("failed"):
                w(f"| {NAMES.get(s, s)} | failed: {f.get('why', '')} |" + " |" * (len(cols) - 1))
                continue
            cached = (f"{pct(f.get('cached_before'))} → {pct(f.get('cached_after'))}"
                      if f.get("cached_before") is not None else "")
            errs = sum(v for k, v in f.items() if k.endswith("_errors") and v)
            ccpu = "+".join(num(f[k], 0) for k in sorted(f) if k.endswith("_client_cpu") and f[k] is not None)
            if phase == "disk":
                vals = [num(f.get("big_mib")), num(f.get("server_read_mib")), num(f.get("from_disk"), 2),
                        num(f.get("disk_mib")), cached,
                        num(f.get("evicted_mib"), 0), num(f.get("big_files_done"), 0), num(f.get("cpu_pct"), 0),
                        ccpu, str(errs)]
            elif phase == "list":
                vals = [num(f.get("list_ops")), ms(f.get("list_cpu_ms")), num(f.get("list_kib"), 0),
                        ms(f.get("list_p50")), ms(f.get("list_p99")), num(f.get("cpu_pct"), 0), ccpu, str(errs)]
            else:
                vals = [num(f.get("small_ops")), ms(f.get("small_p50")), ms(f.get("small_p99"))]
                if phase.startswith("mix"):
                    vals += [num(f.get("kept"), 2), num(f.get("big_mib"))]
                if phase == "mix_disk":
                    vals += [num(f.get("server_read_mib")), num(f.get("from_disk"), 2), cached]
                if phase == "mix_cached":
                    vals += [cached]
                if phase == "defaults":
                    vals += [num(f.get("warmup_ops")),
                             f"{num(f.get('timewait_after_warmup'), 0)} → {num(f.get('timewait_end'), 0)}"]
                vals += [num(f.get("cpu_pct"), 0), num(f.get("small_cpu_us"), 0), ccpu, str(errs)]
            w(f"| {NAMES.get(s, s)} | " + " | ".join(vals) + " |")
        w("")
    order = list(PHASE_TITLES)
    traces = sorted((r["strace"] for r in records if "strace" in r),
                    key=lambda t: order.index(t["phase"]) if t["phase"] in order else len(order))
    if traces:
        w("## Where mirrorftpd's time goes (`--strace`)\n")
        w("Each phase run once more for mirrorftpd with `strace -c -f -w` attached to all its threads (a separate "
          "run: strace slows the server, so these runs' figures are not in the tables above). Times are wall "
          "time spent inside each system call, summed over the threads: an event loop's `epoll_wait` is its idle "
          "time; a long `sendfile`, `getdents64` or `statx` is the loop waiting.\n")
        for t in traces:
            w(f"**{PHASE_TITLES.get(t['phase'], t['phase'])}**\n")
            w("```")
            w(t["text"])
            w("```\n")
    w("## How to read it\n")
    w("- **kept** = the 4 KiB transfers/s under the mix ÷ the same server's 4 KiB transfers/s alone (the `small` "
      "phase of the same run). p50/p99 are the bench's whole-operation times (EPSV … 226) of the 4 KiB RETRs.")
    w("- **server's disk reads** are what the server's processes made the kernel read from storage during the "
      "phase (/proc/PID/io read_bytes over its process tree, read-ahead included); **÷ served** near 1 means the big "
      "files really came from the disk, below 1 that part came from the page cache, above 1 that pages were read "
      "twice (evicted between read-ahead and sending). **Device reads** (/sys/class/block/DEV/stat) count every "
      "process on the machine.")
    w("- **images cached at start → end** (fincore): the disk phases should start near 0%, the cached mix near 100%. "
      "During the disk phases perf/evictor.py evicts every 2 MiB of the images that has been cached for "
      f"{cs} s (a page cache far smaller than the tree: what was sent seconds ago is gone, the read-ahead a "
      "reader is about to use is not)." if cs not in ("", "0") else
      "- **images cached at start → end** (fincore): the disk phases should start near 0%, the cached mix near 100%.")
    w("- **server CPU** is the CPU time of the server's whole process tree (perf/reaper.c, perf/procstat.py) over the "
      "phase's wall time; per-operation figures divide it by the operations the bench completed.")
    w("- **default flags**: each server in a network namespace nothing else has used, with the kernel's default TCP "
      "settings; the TIME_WAIT columns count sockets in that namespace (`ss state time-wait`).")
    w("- One run per figure on a shared 2-CPU VM: differences of ±15% are noise; look at the ratios far from 1.")
    return "\n".join(o) + "\n"


# ------------------------------------------------------------------- plot --
def plot(meta, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = server_order(meta, summary)
    names = [NAMES.get(s, s) for s in servers]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))

    def grouped(ax, series, title, ylabel, log=False, line=None):
        width = 0.8 / max(1, len(series))
        for i, (label, phase, key) in enumerate(series):
            vals = [((summary.get(phase, {}).get(s) or {}).get(key) or 0) for s in servers]
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(servers))]
            bars = ax.bar(xs, vals, width, label=label)
            for b, v in zip(bars, vals):
                if v:
                    ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.1f}", (b.get_x() + b.get_width() / 2, v),
                                ha="center", va="bottom", fontsize=6, xytext=(0, 1), textcoords="offset points")
        ax.set_xticks(range(len(servers)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
        drawn = [v for _, phase, key in series for v in
                 (((summary.get(phase, {}).get(s) or {}).get(key)) for s in servers) if v]
        if log or (drawn and max(drawn) / min(drawn) > 30):
            ax.set_yscale("log")
            ylabel += " (log)" if "log" not in ylabel else ""
        ax.set_ylabel(ylabel)
        if line:
            ax.axhline(line[0], color="black", linestyle="--", linewidth=1, label=line[1])
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)

    grouped(axes[0][0], [("alone", "small", "small_ops"), ("disk mix", "mix_disk", "small_ops"),
                         ("cached mix", "mix_cached", "small_ops"), ("default flags", "defaults", "small_ops")],
            "4 KiB RETR, 32 sessions", "transfers/s")
    grouped(axes[0][1], [("alone", "small", "small_p99"), ("disk mix", "mix_disk", "small_p99"),
                         ("cached mix", "mix_cached", "small_p99"), ("default flags", "defaults", "small_p99")],
            "4 KiB RETR p99 (whole operation)", "ms", log=True, line=(P99_MAX_MS, "target under the disk mix"))
    grouped(axes[1][0], [("from disk alone", "disk", "big_mib"), ("disk mix", "mix_disk", "big_mib"),
                         ("cached mix", "mix_cached", "big_mib")],
            "16 sessions streaming 1 GiB images", "MiB/s")
    grouped(axes[1][1], [("listings/s", "list", "list_ops"), ("server CPU ms per listing", "list", "list_cpu_ms")],
            "LIST of 10,000 entries, 4 sessions", "listings/s  |  ms")
    smoke = " — SMOKE TEST (--quick)" if meta.get("quick") == "1" else ""
    fig.suptitle(f"perf/mirror.sh — {meta.get('date', '')}, {meta.get('nproc')} CPUs{smoke}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    no_plot = "--no-plot" in argv
    args = [a for a in argv if a != "--no-plot"]
    if len(args) == 3 and args[0] == "--jsonl":
        meta, records = load_jsonl(args[1])
        stem = args[2]
    elif len(args) == 2:
        meta, records = collect(args[0])
        stem = args[1]
        with open(stem + ".jsonl", "w") as f:
            f.write(json.dumps({"meta": meta}) + "\n")
            for r in records:
                f.write(json.dumps(r) + "\n")
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    summary = summarize(records)
    with open(stem + ".md", "w") as f:
        f.write(markdown(meta, records, summary))
    if not no_plot:
        plot(meta, summary, stem + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
