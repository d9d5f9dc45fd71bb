#!/usr/bin/env python3
"""plot.py — the PNG plots of one perf/compare.sh run.

Usage: plot.py STEM.jsonl STEM

Writes, from the same medians as the Markdown table (report.summarize):
  STEM-throughput.png  RETR MiB/s against concurrency (1, 8, 64) per server,
                       min–max as error bars
  STEM-rates.png       4 KiB RETR transfers/s and logins/s per server
  STEM-memory.png      KiB per idle session (PSS and RSS) per server
  STEM-upload-ftps.png 64 MiB STOR MiB/s per server, and each FTPS figure
                       beside the same server's plain figure
A plot whose workloads were not run is not written.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from report import FTPS_PAIRS, REF, SHORT, label, load_jsonl, server_order, summarize  # noqa: E402

CONCURRENCY = [(1, "retr_1g"), (8, "retr_64m_c8"), (64, "retr_64m_c64")]
# One colour per server in every plot; mirrorftpd stands out, the ceiling is black.
COLORS = {"mirrorftpd": "tab:red", "vsftpd": "tab:blue", "proftpd": "tab:orange", "pure-ftpd": "tab:green",
          "pyftpdlib": "tab:purple", "unftp": "tab:brown", REF: "black"}


def title_suffix(meta):
    return f"{meta.get('date', '')}, {meta.get('nproc')} CPUs, {meta.get('runs')} run(s)"


def ok(fig):
    return fig is not None and not fig.get("failed")


def throughput(meta, summary, servers, path):
    if not any(w in summary for _, w in CONCURRENCY):
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in servers:
        xs, ys, lo, hi = [], [], [], []
        for conns, w in CONCURRENCY:
            f = summary.get(w, {}).get(s)
            if ok(f):
                xs.append(conns)
                ys.append(f["median"])
                lo.append(f["median"] - f["min"])
                hi.append(f["max"] - f["median"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=4, label=label(meta, s),
                        color=COLORS.get(s), linestyle="--" if s == REF else "-",
                        linewidth=2.5 if s == "mirrorftpd" else 1.5)
    ax.set_xscale("log", base=2)
    ax.set_xticks([c for c, _ in CONCURRENCY], [str(c) for c, _ in CONCURRENCY])
    ax.set_xlabel("concurrent RETR sessions (1: a 1 GiB file; 8, 64: 64 MiB files)")
    ax.set_ylabel("MiB/s (median, min–max)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"RETR throughput over loopback — {title_suffix(meta)}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def bars(ax, servers, values, errs, title, ylabel):
    xs = range(len(servers))
    ax.bar(xs, values, yerr=errs, capsize=4, color=[COLORS.get(s, "tab:gray") for s in servers])
    ax.set_xticks(list(xs), servers, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    for x, v in zip(xs, values):
        if v:
            ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")


def rates(meta, summary, servers, path):
    panels = [(w, t) for w, t in (("retr_4k_c32", "4 KiB RETR, 32 sessions: transfers/s"),
                                  ("login_c32", "logins/s, 32 clients")) if w in summary]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (w, title) in zip(axes[0], panels):
        names = [s for s in servers if ok(summary[w].get(s))]
        figs = [summary[w][s] for s in names]
        bars(ax, names, [f["median"] for f in figs],
             [[f["median"] - f["min"] for f in figs], [f["max"] - f["median"] for f in figs]],
             title, "per second (median, min–max)")
    fig.suptitle(f"Operation rates — {title_suffix(meta)}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def memory(meta, summary, servers, path):
    idle = summary.get("idle")
    if not idle:
        return False
    names = [s for s in servers if ok(idle.get(s)) and idle[s].get("pss_per_session") is not None]
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = list(range(len(names)))
    ticks = [s if idle[s].get("held") else f"{s}*" for s in names]
    pss = [idle[s]["pss_per_session"] for s in names]
    rss = [idle[s]["rss_per_session"] for s in names]
    ax.bar([x - 0.2 for x in xs], pss, width=0.4, label="PSS (shared pages split)",
           color=[COLORS.get(s, "tab:gray") for s in names])
    ax.bar([x + 0.2 for x in xs], rss, width=0.4, label="RSS (shared pages counted per process)",
           color=[COLORS.get(s, "tab:gray") for s in names], alpha=0.35, hatch="//")
    for x, v in zip(xs, pss):
        ax.annotate(f"{v:,.0f}", (x - 0.2, v), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(xs, ticks, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("KiB per idle session (log scale)")
    ax.set_title(f"Server memory per idle logged-in session ({meta.get('idle_conns')} sessions) — "
                 f"{meta.get('date', '')}, {meta.get('nproc')} CPUs", fontsize=10)
    if ticks != names:
        ax.set_xlabel("* not every session was logged in: per session over those that were", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def upload_ftps(meta, summary, servers, path):
    stors = [(w, t) for w, t in (("stor_64m_c8", "64 MiB STOR, 8 sessions, disk"),
                                 ("stor_64m_c8_shm", "64 MiB STOR, 8 sessions, tmpfs")) if summary.get(w)]
    pairs = [(t, p) for t, p in FTPS_PAIRS.items() if t in summary]
    if not stors and not pairs:
        return False
    n = len(stors) + len(pairs)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.5), squeeze=False)
    axes = list(axes[0])
    for w, title in stors:
        names = [s for s in servers if ok(summary[w].get(s))]
        figs = [summary[w][s] for s in names]
        bars(axes.pop(0), names, [f["median"] for f in figs],
             [[f["median"] - f["min"] for f in figs], [f["max"] - f["median"] for f in figs]],
             title, "MiB/s (median, min–max)")
    for ax, (t, p) in zip(axes, pairs):
        names = [s for s in servers if ok(summary[t].get(s)) and ok(summary.get(p, {}).get(s))]
        xs = list(range(len(names)))
        for off, w, lab, alpha in ((-0.2, p, "plain FTP", 0.35), (0.2, t, "FTPS", 1.0)):
            vals = [summary[w][s]["median"] for s in names]
            errs = [[summary[w][s]["median"] - summary[w][s]["min"] for s in names],
                    [summary[w][s]["max"] - summary[w][s]["median"] for s in names]]
            ax.bar([x + off for x in xs], vals, width=0.4, yerr=errs, capsize=3, alpha=alpha, label=lab,
                   color=[COLORS.get(s, "tab:gray") for s in names], hatch="//" if alpha < 1 else None)
            for x, v in zip(xs, vals):
                ax.annotate(f"{v:,.0f}", (x + off, v), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(xs, names, rotation=20, ha="right", fontsize=8)
        ax.set_title(SHORT.get(t, t).replace(" MiB/s", "") + ": plain vs FTPS", fontsize=10)
        ax.set_ylabel("MiB/s (median, min–max)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Uploads and FTPS — {title_suffix(meta)}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    meta, records = load_jsonl(argv[0])
    stem = argv[1]
    summary = summarize(meta, records)
    servers = server_order(meta)
    for name, fn in (("throughput", throughput), ("rates", rates), ("memory", memory),
                     ("upload-ftps", upload_ftps)):
        path = f"{stem}-{name}.png"
        if fn(meta, summary, servers, path):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
