#!/usr/bin/env python3
"""report.py — turn one perf/compare.sh run into the archived results.

Usage: report.py RUN_DIR STEM        collect RUN_DIR/{meta.txt,runs/}, write
                                     STEM.jsonl (raw runs) and STEM.md
       report.py --jsonl FILE STEM   rebuild STEM.md from an archived .jsonl

STEM.jsonl: first line {"meta": {...}}, then one object per run: server,
workload, run, rc, wall_secs, server_cpu_secs, bench (the bench's JSON
summary, or curl's figures in the same shape), and for the idle test the
server's memory before and while the sessions were held.

plot.py imports load_jsonl() and summarize() from here, so the plots and the
table always show the same numbers.
"""
import glob
import json
import os
import re
import statistics
import sys

# workload -> (JSON key of the headline figure, unit, title, higher is better)
WORKLOADS = {
    "retr_1g": ("mib_per_s", "MiB/s", "1 GiB RETR (twice in a row), one session, --discard"),
    "retr_1g_copy": ("mib_per_s", "MiB/s", "1 GiB RETR (twice in a row), one session, copied into user space"),
    "curl_1g": ("mib_per_s", "MiB/s", "1 GiB with curl -o /dev/null (second opinion)"),
    "retr_64m_c8": ("mib_per_s", "MiB/s", "64 MiB RETR, 8 sessions"),
    "retr_64m_c64": ("mib_per_s", "MiB/s", "64 MiB RETR, 64 sessions"),
    "retr_4k_c32": ("ops_per_s", "transfers/s", "4 KiB RETR, 32 sessions"),
    "login_c32": ("ops_per_s", "logins/s", "login (connect, USER, PASS, QUIT), 32 clients"),
    "list_10k": ("ops_per_s", "listings/s", "LIST of a 10,000-entry directory, one session"),
    "stor_64m_c8": ("mib_per_s", "MiB/s", "64 MiB STOR (upload), 8 sessions, to disk"),
    "stor_64m_c8_shm": ("mib_per_s", "MiB/s", "64 MiB STOR (upload), 8 sessions, to tmpfs"),
    "ftps_plain_retr_1g": ("mib_per_s", "MiB/s", "1 GiB RETR, one session, plain FTP against the FTPS-enabled server"),
    "ftps_retr_1g": ("mib_per_s", "MiB/s", "1 GiB RETR, one session, FTPS (AUTH TLS, PROT P)"),
    "ftps_plain_retr_64m_c8": ("mib_per_s", "MiB/s", "64 MiB RETR, 8 sessions, plain FTP against the FTPS-enabled server"),
    "ftps_retr_64m_c8": ("mib_per_s", "MiB/s", "64 MiB RETR, 8 sessions, FTPS (AUTH TLS, PROT P)"),
}
# FTPS workload -> its plain counterpart (same server process, run right next to it)
FTPS_PAIRS = {"ftps_retr_1g": "ftps_plain_retr_1g", "ftps_retr_64m_c8": "ftps_plain_retr_64m_c8"}
# Workloads whose table also shows operations per second (uploads/s).
WITH_OPS = {"stor_64m_c8": "uploads/s", "stor_64m_c8_shm": "uploads/s"}
SHORT = {
    "retr_1g": "1 GiB RETR MiB/s",
    "retr_1g_copy": "1 GiB copy MiB/s",
    "curl_1g": "1 GiB curl MiB/s",
    "retr_64m_c8": "8×64 MiB MiB/s",
    "retr_64m_c64": "64×64 MiB MiB/s",
    "retr_4k_c32": "4 KiB RETR/s",
    "login_c32": "logins/s",
    "list_10k": "LIST 10k /s",
    "idle": "idle PSS KiB/session",
    "stor_64m_c8": "8×64 MiB STOR MiB/s",
    "stor_64m_c8_shm": "8×64 MiB STOR tmpfs MiB/s",
    "ftps_retr_1g": "1 GiB FTPS MiB/s",
    "ftps_retr_64m_c8": "8×64 MiB FTPS MiB/s",
}
REF = "ref"
BASE = "mirrorftpd"


# ------------------------------------------------------------------ input --
def read_kv(path):
    """key=value lines; repeated keys become lists under key+'s'."""
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


def tail(path, lines=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


def collect(run_dir):
    meta = read_kv(os.path.join(run_dir, "meta.txt"))
    records = []
    for meta_path in sorted(glob.glob(os.path.join(run_dir, "runs", "*.meta"))):
        base = meta_path[: -len(".meta")]
        server, workload, run = os.path.basename(base).rsplit(".", 2)
        kv = read_kv(meta_path)
        rec = {"server": server, "workload": workload, "run": int(run),
               "rc": int(kv.get("rc", "1") or 1), "bench": read_json(base + ".json")}
        for key in ("wall_secs", "server_cpu_secs"):
            if kv.get(key):
                rec[key] = float(kv[key])
        if workload == "idle":
            rec["before"] = read_json(base + ".before")
            rec["samples"] = [s for s in (read_json(p) for p in sorted(glob.glob(base + ".sample*"))) if s]
            rec["held"] = kv.get("held") == "1"
            rec["holding_line"] = kv.get("holding_line", "")
            for key in ("sessions_before", "sessions_after", "establish_secs", "ramp_secs"):
                if kv.get(key, "").isdigit():
                    rec[key] = int(kv[key])
        if rec["rc"] != 0 or not rec["bench"]:
            rec["stderr_tail"] = tail(base + ".err")
        records.append(rec)
    return meta, records


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
def latency_of(bench, workload):
    lat = (bench or {}).get("latency") or {}
    if not lat:
        return None
    op = workload.replace("ftps_plain_", "").replace("ftps_", "").split("_")[0]
    return lat.get(op) or lat.get(op.upper()) or next(iter(lat.values()))


def run_ok(rec):
    b = rec.get("bench")
    # A slow download that never finished within the run still moved bytes.
    return rec["rc"] == 0 and b is not None and ((b.get("ops") or 0) > 0 or (b.get("bytes") or 0) > 0)


def med_min_max(values):
    return statistics.median(values), min(values), max(values)


def summarize_idle(rec):
    """Memory figures of one idle record (or None)."""
    samples, before = rec.get("samples") or [], rec.get("before") or {}
    if not samples:
        return None
    # The sample that saw the most sessions' worth of memory.
    s = sorted(samples, key=lambda x: x.get("pss_kib", 0))[len(samples) // 2]
    bench = rec.get("bench") or {}
    m = re.search(r"holding (\d+)", rec.get("holding_line") or "")
    # Not all held: what ss counted while sampling is what the memory held.
    sessions = int(m.group(1)) if m else rec.get("sessions_before") or bench.get("sessions_established") or 0
    out = {"sessions": sessions, "sessions_ss": rec.get("sessions_before"),
           "procs": s["procs"], "rss_kib": s["rss_kib"], "pss_kib": s["pss_kib"],
           "base_rss_kib": before.get("rss_kib"), "base_pss_kib": before.get("pss_kib"),
           "held": rec.get("held"), "rc": rec["rc"], "establish_secs": rec.get("establish_secs"),
           "ramp_secs": rec.get("ramp_secs"),
           "client_cpu_percent": bench.get("client_cpu_percent"),
           "errors": bench.get("errors") or {}}
    if sessions:
        out["rss_per_session"] = (s["rss_kib"] - (before.get("rss_kib") or 0)) / sessions
        out["pss_per_session"] = (s["pss_kib"] - (before.get("pss_kib") or 0)) / sessions
    return out


def summarize(meta, records):
    """{workload: {server: figures}}; see markdown() for what is shown."""
    out = {}
    for rec in records:
        out.setdefault(rec["workload"], {}).setdefault(rec["server"], []).append(rec)
    summary = {}
    for workload, by_server in out.items():
        summary[workload] = {}
        for server, recs in by_server.items():
            if workload == "idle":
                summary[workload][server] = summarize_idle(recs[0]) or {"failed": True,
                                                                          "stderr_tail": recs[0].get("stderr_tail", "")}
                continue
            key = WORKLOADS[workload][0]
            ok = [r for r in recs if run_ok(r)]
            errors = {}
            for r in recs:
                for code, n in ((r.get("bench") or {}).get("errors") or {}).items():
                    errors[code] = errors.get(code, 0) + n
            fig = {"runs": len(recs), "ok_runs": len(ok), "errors": errors}
            if not ok:
                fig["failed"] = True
                fig["stderr_tail"] = next((r.get("stderr_tail") for r in recs if r.get("stderr_tail")), "")
                summary[workload][server] = fig
                continue
            fig["median"], fig["min"], fig["max"] = med_min_max([r["bench"][key] for r in ok])
            fig["values"] = [r["bench"][key] for r in ok]
            hs = [r["bench"].get("tls_handshakes") for r in ok if r["bench"].get("tls_handshakes")]
            if hs:
                fig["tls_data"] = sum(h.get("data", 0) for h in hs)
                fig["tls_data_resumed"] = sum(h.get("data_resumed", 0) for h in hs)
            if workload in WITH_OPS:
                fig["ops_median"], fig["ops_min"], fig["ops_max"] = med_min_max(
                    [r["bench"].get("ops_per_s") or 0 for r in ok])
            cpus = [r["bench"]["client_cpu_percent"] for r in ok if r["bench"].get("client_cpu_percent") is not None]
            if cpus:
                fig["client_cpu"] = statistics.median(cpus)
            scpu = [100 * r["server_cpu_secs"] / r["wall_secs"] for r in ok
                    if r.get("wall_secs") and r.get("server_cpu_secs") is not None]
            if scpu:
                fig["server_cpu"] = statistics.median(scpu)
            lats = [latency_of(r["bench"], workload) for r in ok]
            lats = [lat for lat in lats if lat]
            if lats:
                for part in ("ttfb_ms", "total_ms"):
                    for q in ("p50", "p99"):
                        vals = [lat[part][q] for lat in lats if lat.get(part) and lat[part].get(q) is not None]
                        if vals:
                            fig[f"{part}_{q}"] = statistics.median(vals)
            threads = {r["bench"].get("threads") for r in ok if r["bench"].get("threads")}
            if threads:
                fig["threads"] = sorted(threads)
            summary[workload][server] = fig
        for server, fig in summary[workload].items():
            if workload == "idle" or fig.get("failed"):
                continue
            for other, name in ((BASE, "vs_base"), (REF, "vs_ref")):
                o = summary[workload].get(other)
                if o and not o.get("failed") and o["median"]:
                    fig[name] = fig["median"] / o["median"]
    for tls_w, plain_w in FTPS_PAIRS.items():
        for server, fig in summary.get(tls_w, {}).items():
            p = summary.get(plain_w, {}).get(server)
            if not fig.get("failed") and p and not p.get("failed") and p["median"]:
                fig["vs_plain"] = fig["median"] / p["median"]
    idle = summary.get("idle", {})
    base = idle.get(BASE) or {}
    for fig in idle.values():
        if fig.get("pss_per_session") and base.get("pss_per_session"):
            fig["vs_base"] = fig["pss_per_session"] / base["pss_per_session"]
    return summary


# --------------------------------------------------------------- markdown --
def num(x, unit=""):
    if x is None:
        return "–"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s + unit


def ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def errors_text(errors):
    if not errors:
        return "0"
    return ", ".join(f"{code}: {n}" for code, n in sorted(errors.items()))


def server_order(meta):
    return [s for s in meta.get("servers", []) if s != REF] + ([REF] if REF in meta.get("servers", []) else [])


def label(meta, server):
    return "reference ceiling (sendfile_ref)" if server == REF else server


def markdown(meta, summary):
    # Servers that took part in something (or were skipped), in run order.
    servers = [s for s in server_order(meta)
               if meta.get("skipped_" + s) or any(s in by_server for by_server in summary.values())]
    workloads = []
    for w in meta.get("workloads", "").split():
        if w in FTPS_PAIRS:
            workloads.append(FTPS_PAIRS[w])
        workloads.append(w)
    workloads = [w for w in workloads if w in summary]
    L = []
    quick = meta.get("quick") == "1"
    L.append(f"# mirrorftpd vs other FTP servers{' (quick)' if quick else ''} — {meta.get('date', '')}")
    L.append("")
    L.append(f"- machine: {meta.get('nproc')} CPUs ({meta.get('cpu')}), {meta.get('ram')} RAM, "
             f"kernel {meta.get('kernel')}, {meta.get('os')}; everything on 127.0.0.1, "
             f"server and load generator sharing the same CPUs")
    L.append(f"- command: `{meta.get('command')}` (cwd {meta.get('cwd')}); "
             f"{meta.get('runs')} run(s) per server and workload, timed runs {meta.get('duration')} s, "
             f"runs of different servers interleaved (order reversed every other round), "
             f"files re-read into the page cache before each run; {int(meta.get('elapsed_secs', 0)) // 60} min of measuring")
    L.append(f"- load generator: `{meta.get('bench_bin')} bench …` — {meta.get('bench_version')}; "
             f"common flags `{meta.get('bench_common')}`")
    L.append(f"- network: {meta.get('netns', '')}; ulimit -n {meta.get('ulimit_n')}; sysctl {meta.get('sysctl')}; "
             f"load average at start {meta.get('load_start')}, at end {meta.get('load_end')} "
             f"(other work on the machine competes for the same CPUs)")
    L.append("- servers:")
    for s in servers:
        L.append(f"  - **{label(meta, s)}**: {meta.get('version_' + s, '')} — {meta.get('note_' + s, '')}")
        for mode, what in (("upload", "for uploads"), ("upload_shm", "for uploads to tmpfs"), ("tls", "for FTPS")):
            if meta.get(f"note_{mode}_{s}"):
                L.append(f"    - {what}: {meta[f'note_{mode}_{s}']}")
    skipped = [(s, meta.get("skipped_" + s)) for s in servers if meta.get("skipped_" + s)]
    failed = [(w, s, fig) for w in workloads for s, fig in summary[w].items() if fig.get("failed")]
    short = [(s, fig) for s, fig in summary.get("idle", {}).items() if not fig.get("failed") and not fig.get("held")]
    if skipped or failed or short or meta.get("warnings"):
        L.append("")
        L.append("> **WARNING — not every server was measured on every workload:**")
        for why in meta.get("warnings", []):
            L.append(f"> - **{why}**")
        for s, why in skipped:
            L.append(f"> - **{s} SKIPPED**: {why}")
        for w, s, fig in failed:
            t = (fig.get("stderr_tail") or "").replace("\n", " ⏎ ")[:300]
            L.append(f"> - **{s} failed {w}**: {errors_text(fig.get('errors'))}{' — ' + t if t else ''}")
        for s, fig in short:
            L.append(f"> - **{s} idle**: not all {meta.get('idle_conns')} sessions were logged in after "
                     f"{fig.get('establish_secs', '?')} s (ramp {fig.get('ramp_secs', '?')} s); memory was sampled with "
                     f"{fig['sessions']} established (errors: {errors_text(fig.get('errors'))})")
    L.append("")

    # Summary matrix.
    L.append("## Summary")
    L.append("")
    L.append("Medians; in brackets the ratio to mirrorftpd (higher is better, except memory: lower is better). "
             "Details, min–max, ceilings and client CPU below.")
    L.append("")
    cols = [w for w in workloads if w in SHORT]
    L.append("| server | " + " | ".join(SHORT[w] for w in cols) + " |")
    L.append("|---|" + "---:|" * len(cols))
    for s in servers:
        cells = []
        for w in cols:
            fig = summary[w].get(s)
            if fig is None:
                cells.append("")
            elif fig.get("failed"):
                cells.append("**failed**")
            elif w == "idle":
                v = fig.get("pss_per_session")
                cells.append(f"{num(v)} ({ratio(fig.get('vs_base'))})" if v is not None else "–")
            else:
                cells.append(f"{num(fig['median'])} ({ratio(fig.get('vs_base'))})")
        if meta.get("skipped_" + s) and not any(cells):
            cells = ["SKIPPED"] + [""] * (len(cols) - 1)
        L.append(f"| {label(meta, s)} | " + " | ".join(cells) + " |")
    L.append("")

    # One table per workload.
    for w in workloads:
        if w == "idle":
            continue
        key, unit, title = WORKLOADS[w]
        L.append(f"## {title}")
        L.append("")
        L.append(f"`{meta.get('cmd_' + w, '')}`")
        L.append("")
        has_ref = REF in summary[w]
        ops = WITH_OPS.get(w)
        L.append(f"| server | median {unit} | min–max | × mirrorftpd |{' × ceiling |' if has_ref else ''}"
                 f"{f' median {ops} | min–max |' if ops else ''} "
                 f"ttfb p50 ms | total p50 / p99 ms | client CPU % | server CPU % | errors | runs ok |")
        L.append("|---|---:|---:|---:|" + ("---:|" if has_ref else "") + ("---:|---:|" if ops else "")
                 + "---:|---:|---:|---:|---|---:|")
        for s in servers:
            fig = summary[w].get(s)
            if fig is None:
                continue
            if fig.get("failed"):
                L.append(f"| {label(meta, s)} | **failed** | | |{' |' if has_ref else ''}{' | |' if ops else ''} | | | | "
                         f"| {errors_text(fig.get('errors'))} | 0/{fig['runs']} |")
                continue
            ceiling = f" {ratio(fig.get('vs_ref')) if s != REF else '1.00×'} |" if has_ref else ""
            if ops:
                ceiling += f" {num(fig.get('ops_median'))} | {num(fig.get('ops_min'))}–{num(fig.get('ops_max'))} |"
            L.append(f"| {label(meta, s)} | {num(fig['median'])} | {num(fig['min'])}–{num(fig['max'])} "
                     f"| {ratio(fig.get('vs_base'))} |{ceiling} {num(fig.get('ttfb_ms_p50'))} | {num(fig.get('total_ms_p50'))} / {num(fig.get('total_ms_p99'))} "
                     f"| {num(fig.get('client_cpu'))} | {num(fig.get('server_cpu'))} "
                     f"| {errors_text(fig.get('errors'))} | {fig['ok_runs']}/{fig['runs']} |")
        L.append("")

    pairs = [(t, p) for t, p in FTPS_PAIRS.items() if t in summary]
    if pairs:
        L.append("## FTPS against plain FTP")
        L.append("")
        L.append("Each server's FTPS median beside its own plain-FTP median, both measured against the same "
                 "FTPS-enabled server process, the plain run right next to each TLS run. "
                 "\"FTPS ÷ plain\" is what TLS costs that server; \"× mirrorftpd FTPS\" compares FTPS figures.")
        L.append("")
        L.append("| workload | server | plain MiB/s (min–max) | FTPS MiB/s (min–max) | FTPS ÷ plain | × mirrorftpd FTPS "
                 "| client CPU % plain / FTPS | server CPU % plain / FTPS | TLS data sessions resumed |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for t, p in pairs:
            for s in servers:
                ft, fp = summary[t].get(s), summary.get(p, {}).get(s)
                if ft is None and fp is None:
                    continue
                def cell(f):
                    if f is None:
                        return "–"
                    if f.get("failed"):
                        return "**failed**"
                    return f"{num(f['median'])} ({num(f['min'])}–{num(f['max'])})"
                def c(f, k):
                    return num(f.get(k)) if f and not f.get("failed") else "–"
                resumed = "–"
                if ft and ft.get("tls_data") is not None:
                    resumed = f"{ft['tls_data_resumed']}/{ft['tls_data']}"
                L.append(f"| {SHORT.get(t, t)} | {label(meta, s)} | {cell(fp)} | {cell(ft)} "
                         f"| {ratio((ft or {}).get('vs_plain'))} | {ratio((ft or {}).get('vs_base'))} "
                         f"| {c(fp, 'client_cpu')} / {c(ft, 'client_cpu')} | {c(fp, 'server_cpu')} / {c(ft, 'server_cpu')} "
                         f"| {resumed} |")
        L.append("")

    if "idle" in summary:
        L.append(f"## Memory with {meta.get('idle_conns')} idle logged-in sessions")
        L.append("")
        L.append(f"`{meta.get('cmd_idle', '')}`; the server's whole process tree sampled while the bench held the "
                 "sessions. RSS sums count pages shared between processes once per process; PSS splits them, so it "
                 "is the fair total for forking servers. Per session = (held − before the test) / sessions.")
        L.append("")
        L.append("| server | sessions (bench / ss) | ramp / all logged in after | processes | RSS MiB | PSS MiB "
                 "| RSS KiB/session | PSS KiB/session | × mirrorftpd (PSS/session) | before: RSS / PSS MiB | errors |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in servers:
            fig = summary["idle"].get(s)
            if fig is None:
                continue
            if fig.get("failed"):
                L.append(f"| {label(meta, s)} | **failed** | | | | | | | | | "
                         f"{(fig.get('stderr_tail') or '').splitlines()[-1:] and (fig.get('stderr_tail') or '').splitlines()[-1][:120]} |")
                continue
            held = "" if fig.get("held") else " (**not all held**)"
            est = f"{fig.get('ramp_secs', '–')} s / " + (
                f"{fig['establish_secs']} s" if fig.get("held") and fig.get("establish_secs") is not None else "–")
            L.append(f"| {label(meta, s)} | {fig['sessions']} / {fig.get('sessions_ss', '–')}{held} | {est} "
                     f"| {fig['procs']} "
                     f"| {num(fig['rss_kib'] / 1024)} | {num(fig['pss_kib'] / 1024)} "
                     f"| {num(fig.get('rss_per_session'))} | {num(fig.get('pss_per_session'))} "
                     f"| {ratio(fig.get('vs_base'))} "
                     f"| {num((fig.get('base_rss_kib') or 0) / 1024)} / {num((fig.get('base_pss_kib') or 0) / 1024)} "
                     f"| {errors_text(fig.get('errors')) if fig.get('errors') or not fig.get('held') else '0'} |")
        L.append("")

    L.append("## How to read this")
    L.append("")
    L.append("- Each figure is the median of the runs, min–max beside it. \"× mirrorftpd\" divides by mirrorftpd's "
             "median on the same workload (above 1: faster than mirrorftpd; for memory, above 1: more memory). "
             "\"× ceiling\" divides by the reference ceiling, `perf/sendfile_ref.c`: a fork-per-session loop that "
             "does nothing but sendfile(2) the cached file, measured with the same client, so it is about as fast "
             "as RETR can be on this machine.")
    L.append("- Client CPU % is the load generator's own CPU (100 = one core). With "
             f"{meta.get('nproc')} CPUs shared by client and server, a client near the machine's total means the "
             "client, not the server, was the limit. Server CPU % is the server's process tree over the same run.")
    L.append("- Errors are the bench's failed operations by reply code (or error kind); a run counts as ok when the "
             "bench exited 0 and completed operations.")
    L.append(f"- Raw per-run figures: `{os.path.basename(meta.get('stem', ''))}.jsonl` beside this file; "
             "perf/README.md explains each workload.")
    L.append("")
    return "\n".join(L)


def main(argv):
    if len(argv) == 3 and argv[0] == "--jsonl":
        meta, records = load_jsonl(argv[1])
        stem = argv[2]
    elif len(argv) == 2:
        meta, records = collect(argv[0])
        stem = argv[1]
        meta["stem"] = stem
        with open(stem + ".jsonl", "w") as f:
            f.write(json.dumps({"meta": meta}) + "\n")
            for rec in records:
                f.write(json.dumps(rec) + "\n")
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    meta["stem"] = stem
    with open(stem + ".md", "w") as f:
        f.write(markdown(meta, summarize(meta, records)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
