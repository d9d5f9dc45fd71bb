#!/usr/bin/env bash
# rate.sh — does a rate-limited download hold its rate (within 5%) and cost
# no more server CPU per byte than an unlimited one?
#
# Starts target/release/mirrorftpd on 127.0.0.1 once per case (unlimited,
# --max-rate, --max-rate-total, both), drives it with
# `mirrorftpd bench retr --discard` (CONNS sessions for SECS seconds each),
# reads the server's CPU time (utime+stime from /proc/PID/stat) before and
# after, and prints a markdown table: achieved rate / target, the slowest and
# fastest session, server CPU seconds per GiB and its ratio to the unlimited
# run of the same round. The table also goes to perf/results/DATE-rate.md.
#
# Usage: perf/rate.sh            (env: CONNS=8 SECS=10 ROUNDS=3 PER=50 TOTAL=200,
#                                 rates in MiB/s)
# Loopback only; every run is bounded by SECS; the servers it starts are
# stopped by PID on exit.

set -euo pipefail
SCRIPT_NAME=rate.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${CONNS:-8}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
PER=${PER:-50}          # --max-rate per session, MiB/s
TOTAL=${TOTAL:-200}     # --max-rate-total, MiB/s
FILE_MIB=1024
BIN=$REPO_DIR/target/release/mirrorftpd
DIR=$WORK_DIR/rate
OUT=$PERF_DIR/results/$(date -u +%F)-rate.md
HZ=$(getconf CLK_TCK)

trap cleanup_pids EXIT

log "building target/release/mirrorftpd"
(cd "$REPO_DIR" && cargo build --release --quiet)

mkdir -p "$DIR/root" "$DIR/runs"
if [[ $(stat -c %s "$DIR/root/big.bin" 2>/dev/null || echo 0) -ne $((FILE_MIB << 20)) ]]; then
    log "writing a $FILE_MIB MiB file"
    dd if=/dev/zero of="$DIR/root/big.bin" bs=1M count="$FILE_MIB" status=none
fi

# cpu_ticks PID: utime + stime of PID in clock ticks.
cpu_ticks() {
    # Fields 14 and 15; the command name (field 2) has no spaces here.
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# case NAME TARGET_MIB FLAGS...: one measured run; appends a JSON line to
# $DIR/runs/results.jsonl.
measure() {
    local name=$1 target=$2
    shift 2
    local port="" pid c0 c1 json i slog=$DIR/runs/$name.server.log
    # Port 0: the server picks a free port and prints it (no race with
    # other programs for a port chosen here).
    : > "$slog"
    "$BIN" --root "$DIR/root" --listen "127.0.0.1:0" --workers 2 --quiet \
        --max-clients 1000 --max-per-ip 1000 "$@" 2> "$slog" &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < WAIT_PORT_SECS * 10; i++)); do
        port=$(sed -n 's/^mirrorftpd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$slog" | head -n1 || true)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $port ]] || { show_logs "$slog"; die "server for $name did not start"; }
    warm "$DIR/root/big.bin"
    c0=$(cpu_ticks "$pid")
    json=$DIR/runs/$name.json
    "$BIN" bench retr --server "127.0.0.1:$port" --conns "$CONNS" --duration "$SECS" --discard \
        --path /big.bin --threads 2 --timeout 120 --json "$json" > "$DIR/runs/$name.txt"
    c1=$(cpu_ticks "$pid")
    stop_tree "$pid"
    python3 - "$json" "$name" "$target" "$c0" "$c1" "$HZ" "$*" >> "$DIR/runs/results.jsonl" <<'EOF'
import json, sys
path, name, target, c0, c1, hz, flags = sys.argv[1:]
j = json.load(open(path))
cpu = (int(c1) - int(c0)) / int(hz)
gib = j["bytes"] / 2**30
s = j.get("session_mib_per_s", {})
print(json.dumps({"case": name, "flags": flags, "target": float(target), "mib_per_s": j["mib_per_s"],
                  "min": s.get("min"), "max": s.get("max"), "sessions": s.get("count"),
                  "cpu_s": cpu, "gib": gib, "cpu_per_gib": cpu / gib if gib else None,
                  "client_cpu_s": j["client_cpu_percent"] / 100 * j["duration_secs"],
                  "errors": j["errors"]}))
EOF
    log "$name: $(tail -n1 "$DIR/runs/results.jsonl")"
}

rm -f "$DIR/runs/"*
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
    measure "r$r-unlimited" 0
    measure "r$r-max-rate" $((CONNS * PER)) --max-rate "${PER}M"
    measure "r$r-max-rate-total" "$TOTAL" --max-rate-total "${TOTAL}M"
    # Both limits: the per-session one binds (CONNS * PER/4 < TOTAL * 2)...
    measure "r$r-both-session-binds" $((CONNS * (PER / 4))) --max-rate "$((PER / 4))M" --max-rate-total "$((TOTAL * 2))M"
    # ...and the total binds.
    measure "r$r-both-total-binds" "$TOTAL" --max-rate "${PER}M" --max-rate-total "${TOTAL}M"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

table=$(python3 - "$DIR/runs/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    rnd, case = r["case"].split("-", 1)
    by.setdefault(case, []).append((rnd, r))
free = {rnd: r for rnd, r in by["unlimited"]}
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
print("| case | server flags | target MiB/s | achieved MiB/s | achieved / target | session min–max MiB/s"
      " | server CPU s/GiB | CPU/GiB ÷ unlimited | server+client CPU s/GiB (÷ unlimited) | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
def both(r):
    return (r["cpu_s"] + r["client_cpu_s"]) / r["gib"] if r["gib"] else None
for case, rs in by.items():
    r0 = rs[0][1]
    ach = med([r["mib_per_s"] for _, r in rs])
    tgt = r0["target"]
    ratio = f"{ach / tgt:.3f}" if tgt else "—"
    lo = med([r["min"] for _, r in rs]); hi = med([r["max"] for _, r in rs])
    cpg = med([r["cpu_per_gib"] for _, r in rs])
    rel = med([r["cpu_per_gib"] / free[rnd]["cpu_per_gib"] for rnd, r in rs
               if r["cpu_per_gib"] and free[rnd]["cpu_per_gib"]])
    errs = sum(sum(r["errors"].values()) for _, r in rs)
    tot = med([both(r) for _, r in rs])
    trel = med([both(r) / both(free[rnd]) for rnd, r in rs if both(r) and both(free[rnd])])
    print(f"| {case} | `{r0['flags'] or '(none)'}` | {tgt:,.0f} | {ach:,.1f} | {ratio} | {lo:,.1f}–{hi:,.1f}"
          f" | {cpg:.3f} | {rel:.2f} | {tot:.3f} ({trel:.2f}) | {errs} |")
EOF
)

{
    echo "# Rate limits: held rate and CPU per byte — $(date -u '+%F %T') UTC"
    echo
    echo "- machine: $(nproc) CPUs ($(cpu_model)), $(ram_gib) RAM, kernel $(uname -r), qdisc on lo: $(tc qdisc show dev lo 2>/dev/null | awk '{print $2}' | head -n1), congestion control $(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null); server and load generator share the CPUs; load average at start $load0, at end $load1"
    echo "- command: \`CONNS=$CONNS SECS=$SECS ROUNDS=$ROUNDS PER=$PER TOTAL=$TOTAL perf/rate.sh\` (commit $(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null || repo_commit))"
    echo "- each run: \`mirrorftpd --workers 2 --quiet FLAGS\` serving a $FILE_MIB MiB file (re-read into the page cache right before), \`mirrorftpd bench retr --conns $CONNS --duration $SECS --discard --threads 2\`; server CPU = utime+stime from /proc/PID/stat around the bench"
    echo "- medians over $ROUNDS round(s), cases interleaved; CPU ratio taken against the unlimited run of the same round"
    echo
    echo "$table"
} | tee "$OUT"
log "wrote $OUT"
