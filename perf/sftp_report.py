#!/usr/bin/env python3
"""sftp_report.py — perf/sftp.sh's Markdown table, from its .jsonl.

Usage: sftp_report.py RESULTS.jsonl > RESULTS.md

The first line is {"meta": {...}}; then one object per transfer run
(server, workload get|put|get8, run, ok, bytes, secs, mib_s, cpu_secs) and
one per server for the idle sessions (workload idle). Throughput is the
median over the runs, with min-max; server CPU per GiB is the sum of the
server tree's CPU over the runs divided by the GiB they moved.
"""
import json
import statistics
import sys

OURS, PEER = "mirrorftpd", "sshd"
NAMES = {"get": "get, 1 session", "put": "put, 1 session", "get8": "get, 8 sessions"}


def fmt(x, nd=0):
    return f"{x:,.{nd}f}"


def verdict(ok, ratio, goal, lower_is_better=False):
    if ok:
        return "PASS"
    if lower_is_better:
        return f"MISS ({ratio / goal:.1f}x over)"
    return f"MISS ({goal / ratio:.2f}x short)" if ratio > 0 else "MISS"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    meta = rows[0].get("meta", {}) if rows else {}
    runs = [r for r in rows if r.get("workload") in NAMES]
    idle = {r["server"]: r for r in rows if r.get("workload") == "idle"}
    failed = [r for r in runs if not r["ok"]]

    def rates(server, w):
        return [r["mib_s"] for r in runs if r["server"] == server and r["workload"] == w and r["ok"]]

    def cpu_per_gib(server, ws):
        sel = [r for r in runs if r["server"] == server and r["workload"] in ws and r["ok"]]
        gib = sum(r["bytes"] for r in sel) / 2**30
        return sum(r["cpu_secs"] for r in sel) / gib if gib else float("nan")

    out = []
    p = out.append
    p(f"# SFTP: mirrorftpd vs OpenSSH sshd (internal-sftp) — {meta.get('started', '?')}")
    p("")
    p(f"Command: `{meta.get('cmd', 'perf/sftp.sh')}`. Machine: {meta.get('cpu', '?')}, {meta.get('ram', '?')}; "
      f"load average {meta.get('load0', '?')} at start, {meta.get('load1', '?')} at end (a shared VM: "
      "read ratios far from the target, not ±15%).")
    p("")
    p(f"- {meta.get('mirrorftpd', '?')}; {meta.get('sshd', '?')} with `Subsystem sftp internal-sftp`. "
      f"Client: {meta.get('client', '?')} (`sftp -b`, its defaults: 32 KiB requests, 64 outstanding).")
    p(f"- Cipher for both: `{meta.get('cipher', '?')}`" +
      (f" with `{meta.get('macs')}`" if meta.get("cipher") == "aes256-ctr" else "") +
      " (forced by the client, `-c`; each server offers both: chacha20-poly1305 and aes256-ctr with hmac-sha2-256); key exchange as negotiated.")
    p(f"- Single session: {meta.get('size_mib', '?')} MiB, `get FILE /dev/null` and `put` of the same cached file "
      f"into a tmpfs directory; {meta.get('c8', '?')} MiB: 8 `sftp` processes at once, each getting its own "
      f"cached 64 MiB file. Wall time of the `sftp` process(es), login included; "
      f"{meta.get('runs', '?')} run(s) each, interleaved, median (min–max).")
    p("- Server CPU: utime+stime of the server's whole process tree under perf/reaper.c (sshd forks two "
      "processes per session; all are counted, also after they exit) over each run. Client CPU: the "
      "`sftp` process(es) and their `ssh` (`/usr/bin/time`), on the same CPUs.")
    p(f"- Idle: {meta.get('idle', '?')} sessions (paramiko, public-key login, SFTP INIT and one REALPATH, then "
      "idle), memory of the server's tree (procstat.py: Rss and Pss summed over its processes) held − before, "
      "per session; the middle of three samples.")
    p("")
    if failed:
        p(f"**WARNING: {len(failed)} run(s) failed** and are left out: " +
          ", ".join(f"{r['server']} {r['workload']} run {r['run']}" for r in failed))
        p("")

    p("## Targets (issue 12)")
    p("")
    p("| target | mirrorftpd | sshd | ratio | goal | result |")
    p("|---|---:|---:|---:|---:|---|")
    for w in ("get", "put", "get8"):
        a, b = rates(OURS, w), rates(PEER, w)
        if not a and not b:
            continue                     # not run (--workloads)
        if not a or not b:
            p(f"| {NAMES[w]} MiB/s | {fmt(statistics.median(a)) if a else '—'} | "
              f"{fmt(statistics.median(b)) if b else '—'} | | ≥ 1.0 | no data |")
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        ratio = ma / mb
        p(f"| {NAMES[w]}: MiB/s | {fmt(ma)} | {fmt(mb)} | {ratio:.2f}× | ≥ 1.0 | {verdict(ratio >= 1.0, ratio, 1.0)} |")
    for label, ws in (("server CPU s per GiB, all transfers", ("get", "put", "get8")),):
        a, b = cpu_per_gib(OURS, ws), cpu_per_gib(PEER, ws)
        ratio = a / b if b else float("nan")
        p(f"| {label} | {a:.2f} | {b:.2f} | {ratio:.2f}× | ≤ 1.0 | {verdict(ratio <= 1.0, ratio, 1.0, True)} |")
    if OURS in idle and PEER in idle:
        a, b = idle[OURS]["pss_kib_per"], idle[PEER]["pss_kib_per"]
        ratio = a / b if b else float("nan")
        p(f"| idle session memory, KiB PSS each | {fmt(a, 1)} | {fmt(b, 1)} | {ratio:.3f}× (1/{b / a:.0f}) | ≤ 0.05 (1/20) | "
          f"{verdict(ratio <= 0.05, ratio, 0.05, True)} |" if a > 0 else
          f"| idle session memory, KiB PSS each | {fmt(a, 1)} | {fmt(b, 1)} | — | ≤ 0.05 | PASS (≤ 0) |")
    p("")

    p("## Transfers")
    p("")
    p("| workload | server | MiB/s median (min–max) | server CPU s per GiB | server CPU % of one core | "
      "client CPU s per GiB | runs |")
    p("|---|---|---:|---:|---:|---:|---:|")
    for w in ("get", "put", "get8"):
        for s in (OURS, PEER):
            sel = [r for r in runs if r["server"] == s and r["workload"] == w and r["ok"]]
            if not sel:
                continue
            m = [r["mib_s"] for r in sel]
            secs = sum(r["secs"] for r in sel)
            cpu = sum(r["cpu_secs"] for r in sel)
            gib = sum(r["bytes"] for r in sel) / 2**30
            client = sum(r.get("client_cpu_secs", 0) for r in sel) / gib
            p(f"| {NAMES[w]} | {s} | {fmt(statistics.median(m))} ({fmt(min(m))}–{fmt(max(m))}) | "
              f"{cpu_per_gib(s, (w,)):.2f} | {100 * cpu / secs:.0f}% | {client:.2f} | {len(sel)} |")
    p("")

    if idle:
        p("## Idle sessions")
        p("")
        p("| server | sessions held (failed) | processes per session | KiB RSS per session | KiB PSS per session | "
          "tree RSS / PSS before → held, MiB | setup s |")
        p("|---|---:|---:|---:|---:|---|---:|")
        for s in (OURS, PEER):
            r = idle.get(s)
            if not r:
                continue
            c, b, h = r["client"], r["before"], r["held"]
            p(f"| {s} | {c.get('held', 0)} ({c.get('failed', 0)}) | {r['procs_per_session']} | "
              f"{fmt(r['rss_kib_per'], 1)} | {fmt(r['pss_kib_per'], 1)} | "
              f"{b['rss_kib'] / 1024:.1f} / {b['pss_kib'] / 1024:.1f} → {h['rss_kib'] / 1024:.1f} / "
              f"{h['pss_kib'] / 1024:.1f} | {c.get('secs', '?')} |")
        cip = {r["client"].get("cipher") for r in idle.values()}
        p("")
        p(f"Idle sessions' cipher (paramiko has no chacha20-poly1305): {', '.join(sorted(map(str, cip)))}.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
