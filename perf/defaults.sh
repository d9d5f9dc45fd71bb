#!/usr/bin/env bash
# defaults.sh — a fresh install's flags against tuned ones: mirrorftpd with
# each set of flags in a network namespace of its own (the kernel's default
# TCP sysctls, nothing changed), first a pressure run that leaves the TIME_WAIT
# sockets a busy server has, then a measured run of the same load.
#
#   perf/defaults.sh                                  # 4 KiB RETR, 32 sessions: default vs --pasv-ports 40000-49999
#   perf/defaults.sh --secs 20 --conns 64 default= tuned='--max-per-ip 64'
#   perf/defaults.sh --size 4194304 --files 64 --conns 8 --pressure 0 default= tuned='--sndbuf 4194304'
#   perf/defaults.sh --name pasv-default              # also writes perf/results/DATE-NAME.md
#
# Each CONFIG is LABEL=FLAGS (FLAGS added to `--root DIR`, plus --allow-root
# when run as root: the tree belongs to root), or LABEL@BINARY=FLAGS to run
# another build (e.g. the previous commit's); without CONFIGs:
# default= range='--pasv-ports 40000-49999'. The load is
# `mirrorftpd bench retr --conns C --threads 2 --discard` over 256 files of
# 4 KiB (--files, --size), for --secs seconds (default 20, at most 30) per
# run, after a pressure run of --pressure seconds (default: --secs; 0: none). The
# server runs with its default --listen (0.0.0.0:2121, [::]:2121) inside the
# namespace. Server CPU is utime+stime of the server during the measured run.
# --rounds R (1-5) repeats every config R times, every other round in reverse
# order, and reports medians. Every process started is stopped by its PID.
set -euo pipefail
SCRIPT_NAME=defaults
. "$(dirname "$0")/lib.sh"

SECS=20 PRESSURE="" CONNS=32 SIZE=4096 FILES=256 NAME="" ROUNDS=1
CONFIGS=()
ORIG_ARGS=("$@")
while (($#)); do
    case $1 in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --pressure) PRESSURE=$2; shift 2 ;;
        --name) NAME=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --one) ONE=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
        *=*) CONFIGS+=("$1"); shift ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 && $SECS -le 30 ]] || die "--secs must be 1-30"
PRESSURE=${PRESSURE:-$SECS}
[[ $PRESSURE =~ ^[0-9]+$ && $PRESSURE -le 30 ]] || die "--pressure must be 0-30"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 5 ]] || die "--rounds must be 1-5"
[[ $FILES =~ ^[0-9]+$ && $FILES -ge 1 && $FILES -le 10000 ]] || die "--files must be 1-10000"
((SIZE * FILES <= 1073741824)) || die "--size x --files must stay under 1 GiB"
((${#CONFIGS[@]})) || CONFIGS=("default=" "range=--pasv-ports 40000-49999")

BIN=${MIRRORFTPD_BIN:-$REPO_DIR/target/release/mirrorftpd}
ROOT=$WORK_DIR/defaults/root
PORT=2121
ALLOW_ROOT=()
[[ $(id -u) == 0 ]] && ALLOW_ROOT=(--allow-root)

# One configuration, inside its own namespace: prints one result line.
run_one() {
    local label=${ONE%%=*} flags=${ONE#*=} bin=$BIN pid log tw0 tw1 cpu0 cpu1 hz
    if [[ $label == *@* ]]; then
        bin=${label#*@}
        label=${label%%@*}
    fi
    ip link set lo up || die "cannot bring up lo in the new network namespace"
    log="$WORK_DIR/defaults/$label.log"
    # shellcheck disable=SC2086 # FLAGS are words
    "$bin" --root "$ROOT" "${ALLOW_ROOT[@]}" $flags > "$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    trap cleanup_pids EXIT
    wait_port "mirrorftpd $label" "$pid" "$PORT" || { show_logs "$log"; exit 1; }
    local bench=("$BIN" bench retr --server "127.0.0.1:$PORT" --conns "$CONNS" --threads 2 --discard
        --paths-file "$WORK_DIR/defaults/paths.txt")
    if ((PRESSURE > 0)); then
        timeout $((PRESSURE + 30)) "${bench[@]}" --duration "$PRESSURE" --json "$WORK_DIR/defaults/$label.pressure.json" > /dev/null
    else
        echo '{"ops_per_s": 0, "errors": {}}' > "$WORK_DIR/defaults/$label.pressure.json"
    fi
    tw0=$(ss -Htan state time-wait | wc -l)
    hz=$(getconf CLK_TCK)
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    timeout $((SECS + 30)) "${bench[@]}" --duration "$SECS" --json "$WORK_DIR/defaults/$label.json" > "$WORK_DIR/defaults/$label.txt"
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    tw1=$(ss -Htan state time-wait | wc -l)
    kill -0 "$pid" 2>/dev/null || { show_logs "$log"; die "mirrorftpd $label died"; }
    python3 - "$label" "$flags" "$WORK_DIR/defaults/$label.pressure.json" "$WORK_DIR/defaults/$label.json" \
        "$tw0" "$tw1" "$(( cpu1 - cpu0 ))" "$hz" <<'PY'
import json, sys
label, flags, pj, mj, tw0, tw1, ticks, hz = sys.argv[1:]
p, m = json.load(open(pj)), json.load(open(mj))
secs = m["duration_secs"]
print(json.dumps({"label": label, "flags": flags, "pressure_ops_per_s": p["ops_per_s"],
    "ops_per_s": m["ops_per_s"], "errors": m["errors"], "pressure_errors": p["errors"],
    "sessions": m["sessions_established"], "p99_ms": m["latency"].get("retr", {}).get("total_ms", {}).get("p99"),
    "time_wait_before": int(tw0), "time_wait_after": int(tw1),
    "server_cpu_percent": round(100 * int(ticks) / int(hz) / secs, 1)}))
PY
}

if [[ -n ${ONE:-} ]]; then
    run_one
    exit 0
fi

unshare --net true 2>/dev/null || die "needs a network namespace (unshare --net, as root)"
[[ -x $BIN ]] || die "$BIN missing: cargo build --release"
rm -rf "$ROOT"
mkdir -p "$ROOT"
: > "$WORK_DIR/defaults/paths.txt"
for i in $(seq -w 0 $((FILES - 1))); do
    head -c "$SIZE" /dev/urandom > "$ROOT/f$i.bin"
    echo "/f$i.bin" >> "$WORK_DIR/defaults/paths.txt"
done
chmod -R a+rX "$ROOT"
warm "$ROOT"
SYSCTLS=$(unshare --net bash -c 'for k in ip_local_port_range ip_local_reserved_ports tcp_tw_reuse tcp_max_tw_buckets tcp_fin_timeout ip_autobind_reuse; do printf "%s=%s " $k "$(sysctl -n net.ipv4.$k | tr "\t" " ")"; done')
RESULTS=()
for ((round = 1; round <= ROUNDS; round++)); do
    ORDER=("${CONFIGS[@]}")
    if ((round % 2 == 0)); then   # every other round in reverse order
        ORDER=()
        for ((i = ${#CONFIGS[@]} - 1; i >= 0; i--)); do ORDER+=("${CONFIGS[i]}"); done
    fi
    for c in "${ORDER[@]}"; do
        log "round $round, config ${c%%=*}: '${c#*=}' (pressure ${PRESSURE}s, then measured ${SECS}s, fresh namespace)"
        RESULTS+=("$(unshare --net -- bash "$0" --secs "$SECS" --pressure "$PRESSURE" --conns "$CONNS" --size "$SIZE" \
            --files "$FILES" --one "$c")")
        echo "${RESULTS[-1]}" >&2
    done
done
TABLE=$(printf '%s\n' "${RESULTS[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
labels = list(dict.fromkeys(r["label"] for r in rows))
def med(xs): return statistics.median(xs)
def span(xs): return "" if len(xs) < 2 else " (%s–%s)" % (format(round(min(xs)), ","), format(round(max(xs)), ","))
first = None
print("| config | flags | RETR/s | ÷ %s | server CPU µs per RETR | ÷ %s | p99 ms | TIME_WAIT at start | errors |" % (labels[0], labels[0]))
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for lab in labels:
    rs = [r for r in rows if r["label"] == lab]
    ops = [r["ops_per_s"] for r in rs]
    us = [r["server_cpu_percent"] * 1e4 / max(r["ops_per_s"], 1e-9) for r in rs]
    if first is None: first = (med(ops) or 1, med(us) or 1)
    errs = {}
    for r in rs:
        for k, v in r["errors"].items(): errs[k] = errs.get(k, 0) + v
    errs = ", ".join("%s: %s" % kv for kv in errs.items()) or "none"
    print("| %s | `%s` | %s%s | %.2f | %.1f%s | %.2f | %s | %s | %s |" % (lab, rs[0]["flags"] or "(none)",
          format(round(med(ops)), ","), span(ops), med(ops) / first[0], med(us), span(us), med(us) / first[1],
          "%.1f" % med([r["p99_ms"] for r in rs]), format(round(med([r["time_wait_before"] for r in rs])), ","), errs))
print()
print("%d round(s); medians, min–max in brackets. Server CPU is utime+stime of the whole server process (all threads) over the measured run." % (len(rows) // len(labels)))
')
echo "$TABLE"
if [[ -n $NAME ]]; then
    OUT=$PERF_DIR/results/$(date -u +%F)-$NAME.md
    {
        echo "# $NAME"
        echo
        echo "- command: \`perf/defaults.sh ${ORIG_ARGS[*]}\`" | sed "s|$PERF_DIR/work/|perf/work/|g"
        echo "- commit $(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null || repo_commit), $(date -u '+%F %T') UTC; machine: $(nproc) CPUs ($(cpu_model)), $(ram_gib) RAM, kernel $(uname -r)"
        echo "- load: \`mirrorftpd bench retr --conns $CONNS --threads 2 --discard\`, $FILES files of $SIZE bytes, ${PRESSURE} s pressure run then ${SECS} s measured run, each config in a fresh network namespace"
        echo "- namespace sysctls (kernel defaults, unchanged): $SYSCTLS"
        echo
        echo "$TABLE"
    } > "$OUT"
    log "wrote $OUT"
fi
