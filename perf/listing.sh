#!/usr/bin/env bash
# listing.sh — LIST of one 10,000-entry directory, again and again: listings/s
# and server CPU per listing, mirrorftpd (with and without --listing-cache)
# against vsftpd and Pure-FTPd. One command:
#
#   perf/listing.sh [DURATION_SECS] [CONNS]        (defaults: 10 1)
#
# Env: ENTRIES (10000), SERVERS ("mirrorftpd mirrorftpd-nocache vsftpd
# pure-ftpd"), LIST_CMD (LIST), MIRRORFTPD_BIN, PEER_WORK (a perf/work that
# already holds the unpacked peers, e.g. another checkout's; default: ours,
# installed on demand by perf/servers.sh), BEFORE_BIN (for the server name
# mirrorftpd-before), MIRRORFTPD_ARGS (more flags for every mirrorftpd, e.g.
# "--pasv-ports 40000-49999"). Server CPU is utime+stime of the
# server's whole process tree (perf/procstat.py: forking servers' sessions
# included), read before and after the run. Prints a Markdown table.
set -euo pipefail
SCRIPT_NAME=listing.sh
source "$(dirname "$0")/lib.sh"
source "$PERF_DIR/servers.sh"

DURATION=${1:-10}
CONNS=${2:-1}
ENTRIES=${ENTRIES:-10000}
LIST_CMD=${LIST_CMD:-LIST}
SERVERS=${SERVERS:-"mirrorftpd mirrorftpd-nocache vsftpd pure-ftpd"}
MIRRORFTPD_ARGS=${MIRRORFTPD_ARGS:-}
PEER_WORK=${PEER_WORK:-$WORK_DIR}
VS_DIR=$PEER_WORK/vsftpd
PURE_DIR=$PEER_WORK/pure-ftpd
NSSW_DIR=$PEER_WORK/nss-wrapper
[[ -x $PEER_WORK/reaper ]] && REAPER=$PEER_WORK/reaper
[[ -x $REAPER ]] || install_reaper

TREE=$WORK_DIR/listing-tree
mkdir -p "$WORK_DIR"
if [[ ! -f $TREE/stamp-$ENTRIES ]]; then
    log "building $TREE/small with $ENTRIES files"
    rm -rf "$TREE"; mkdir -p "$TREE/small"
    python3 - "$TREE/small" "$ENTRIES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = os.path.join(d, f"f{i:05d}.bin")
    with open(p, "wb") as f:
        f.truncate(4096 + (i * 7919) % 100000)
    t = 1700000000 + i * 3600   # two years of dates: both LIST date forms
    os.utime(p, (t, t))
EOF
    echo ping > "$TREE/ping.txt"
    chmod -R a+rX "$TREE"
    touch "$TREE/stamp-$ENTRIES"
fi

BENCH=${MIRRORFTPD_BIN:-$REPO_DIR/target/release/mirrorftpd}
RUN_DIR=$(mktemp -d "$WORK_DIR/listing.XXXXXX")
trap 'cleanup_pids' EXIT

cpu() { python3 "$PERF_DIR/procstat.py" --no-mem "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_secs"])'; }

launch() {   # NAME PORT
    case $1 in
        mirrorftpd)
            "$REAPER" "$BENCH" --root "$TREE" --listen "127.0.0.1:$2" --quiet --max-per-ip 1000 $MIRRORFTPD_ARGS \
                > "$RUN_DIR/$1.out" 2>&1 &
            LAUNCHED_PID=$! ;;
        mirrorftpd-nocache)
            "$REAPER" "$BENCH" --root "$TREE" --listen "127.0.0.1:$2" --quiet --max-per-ip 1000 $MIRRORFTPD_ARGS \
                --listing-cache 0 > "$RUN_DIR/$1.out" 2>&1 &
            LAUNCHED_PID=$! ;;
        mirrorftpd-before)   # BEFORE_BIN: a build of the commit to compare with
            "$REAPER" "$BEFORE_BIN" --root "$TREE" --listen "127.0.0.1:$2" --quiet --max-per-ip 1000 $MIRRORFTPD_ARGS \
                > "$RUN_DIR/$1.out" 2>&1 &
            LAUNCHED_PID=$! ;;
        *) "launch_$1" "$2" "$RUN_DIR" ;;
    esac
}

printf '| server | listings/s | server CPU ms/listing | MB/s |\n|---|---:|---:|---:|\n'
for s in $SERVERS; do
    if [[ $s != mirrorftpd* && $PEER_WORK == "$WORK_DIR" ]] && ! "install_$s"; then
        printf '| %s | (could not be installed) | | |\n' "$s"; continue
    fi
    port=$(free_port)
    launch "$s" "$port"
    PIDS+=("$LAUNCHED_PID")
    if ! wait_port "$s" "$LAUNCHED_PID" "$port"; then
        cat "$RUN_DIR/$s".* >&2 || true
        printf '| %s | (did not start) | | |\n' "$s"; continue
    fi
    # One listing first: the directory is in the dentry cache for everyone.
    "$BENCH" bench list --server "127.0.0.1:$port" --conns 1 --duration 1 --dir /small --list-cmd "$LIST_CMD" > /dev/null 2>&1 || true
    c0=$(cpu "$LAUNCHED_PID")
    out=$("$BENCH" bench list --server "127.0.0.1:$port" --conns "$CONNS" --duration "$DURATION" \
        --dir /small --list-cmd "$LIST_CMD" --json - 2>"$RUN_DIR/$s.bench.err" || true)
    c1=$(cpu "$LAUNCHED_PID")
    grep '^{' <<< "$out" | tail -1 > "$RUN_DIR/$s.json" || true
    python3 - "$s" "$c0" "$c1" "$RUN_DIR/$s.json" <<'EOF'
import json, sys
name, c0, c1, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"| {name} | (bench failed: {e}) | | |"); sys.exit()
ops = r["ops"]
secs = r["duration_secs"]
rate = ops / secs
mbs = r.get("bytes", 0) / secs / 1e6
cpu_ms = (c1 - c0) * 1000 / ops if ops else float("nan")
print(f"| {name} | {rate:,.0f} | {cpu_ms:.2f} | {mbs:,.0f} |")
EOF
    stop_tree "$LAUNCHED_PID"
done
