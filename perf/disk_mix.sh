#!/usr/bin/env bash
# disk_mix.sh — issue 11's disk mix: 32 sessions fetching cached 4 KiB files
# while 16 sessions stream their own big files from disk (page cache of the
# big files dropped with POSIX_FADV_DONTNEED before the run). Reports the
# share of the 4 KiB rate kept against the 4 KiB load alone, its p50/p99,
# and the big files' MiB/s, for each server variant given.
#
# Usage: perf/disk_mix.sh            (env: SECS=20 BIG_MIB=1024 NBIG=16 ROUNDS=2
#                                     VARIANTS="none:--disk-check none|helpers:")
# Each variant is NAME:FLAGS (FLAGS added to the server's command line; a
# first word bin=PATH runs that server binary instead, to compare builds),
# variants separated by '|', run in turn ROUNDS times (the table shows each
# run). The server runs with --workers 2 and --pasv-ports 40000-49999 as
# root (--allow-root: cachestat is allowed; a variant with "--run-as nobody"
# gets the preadv2 RWF_NOWAIT probe instead).
# Loopback only; every run lasts SECS; the big files (NBIG x BIG_MIB MiB, in
# perf/work/diskmix) are removed at the end unless KEEP=1.
# CACHED=1: the cached mix instead: the big files are read into the page
# cache (not dropped) right before each mix. MIRRORFTPD_BIN: the server and
# bench binary (default: target/release/mirrorftpd, built first).
# SMALL_THREADS / BIG_THREADS: bench reactor threads of each load (default 1,
# as mirror.sh's big load; mirror.sh gives the 4 KiB load nproc).

set -euo pipefail
SCRIPT_NAME=disk_mix.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${SECS:-20}
ROUNDS=${ROUNDS:-2}
BIG_MIB=${BIG_MIB:-1024}
NBIG=${NBIG:-16}
VARIANTS=${VARIANTS:-"none:--disk-check none|helpers:"}
CACHED=${CACHED:-0}
SMALL_THREADS=${SMALL_THREADS:-1}
BIG_THREADS=${BIG_THREADS:-1}
BIN=${MIRRORFTPD_BIN:-$REPO_DIR/target/release/mirrorftpd}
DIR=$WORK_DIR/diskmix
RUNS=$DIR/runs

cleanup() {
    cleanup_pids
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$DIR/root/big"
}
trap cleanup EXIT

if [[ -z ${MIRRORFTPD_BIN:-} ]]; then
    log "building target/release/mirrorftpd"
    (cd "$REPO_DIR" && cargo build --release --quiet)
fi

mkdir -p "$DIR/root/small" "$DIR/root/big" "$RUNS"
for i in $(seq 0 31); do
    [[ -s $DIR/root/small/f$i ]] || head -c 4096 /dev/urandom > "$DIR/root/small/f$i"
    echo "/small/f$i"
done > "$DIR/small.list"
for i in $(seq 0 $((NBIG - 1))); do
    echo "/big/$i.bin"
    if [[ $(stat -c %s "$DIR/root/big/$i.bin" 2>/dev/null || echo 0) -ne $((BIG_MIB << 20)) ]]; then
        # Real blocks (not fallocate: unwritten extents read as zeros without I/O).
        dd if=/dev/zero of="$DIR/root/big/$i.bin" bs=4M count=$((BIG_MIB / 4)) oflag=direct status=none
    fi
done > "$DIR/big.list"

drop_big() {
    python3 - "$DIR"/root/big/*.bin <<'EOF'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
EOF
}

# start FLAGS...: starts the server, sets $PORT and $SPID.
start() {
    local slog=$RUNS/server.log i root=--allow-root
    : > "$slog"
    [[ " $* " == *" --run-as "* ]] && root=""
    "$SBIN" --root "$DIR/root" --listen 127.0.0.1:0 --workers 2 $root --quiet \
        --pasv-ports 40000-49999 --max-per-ip 200 "$@" 2> "$slog" &
    SPID=$!
    PIDS+=("$SPID")
    PORT=""
    for ((i = 0; i < WAIT_PORT_SECS * 10; i++)); do
        PORT=$(sed -n 's/^mirrorftpd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$slog" | head -n1 || true)
        [[ -n $PORT ]] && break
        sleep 0.1
    done
    [[ -n $PORT ]] || { show_logs "$slog"; die "server did not start"; }
}

small() {
    "$BIN" bench retr --server "127.0.0.1:$PORT" --conns 32 --paths-file "$DIR/small.list" --discard \
        --threads "$SMALL_THREADS" \
        --duration "$SECS" --json "$1" > "${1%.json}.txt"
}
big() {
    "$BIN" bench retr --server "127.0.0.1:$PORT" --conns "$NBIG" --paths-file "$DIR/big.list" --discard \
        --threads "$BIG_THREADS" \
        --duration "$SECS" --timeout 120 --json "$1" > "${1%.json}.txt"
}

IFS='|' read -r -a variants <<< "$VARIANTS"
names=()
for round in $(seq 1 "$ROUNDS"); do
for v in "${variants[@]}"; do
    name=${v%%:*}-$round
    names+=("$name")
    read -r -a flags <<< "${v#*:}"
    SBIN=$BIN
    if [[ ${flags[0]:-} == bin=* ]]; then
        SBIN=${flags[0]#bin=}
        flags=("${flags[@]:1}")
    fi
    log "$name: 4 KiB alone"
    start "${flags[@]}"
    small "$RUNS/$name-alone.json"
    if [[ $CACHED == 1 ]]; then
        log "$name: 4 KiB with $NBIG big files, cached"
        cat "$DIR"/root/big/*.bin > /dev/null
    else
        log "$name: 4 KiB with $NBIG big files from disk"
        drop_big
    fi
    big "$RUNS/$name-big.json" &
    bpid=$!
    small "$RUNS/$name-mix.json"
    wait "$bpid"
    stop_tree "$SPID"
done
done

python3 - "$RUNS" "${names[@]}" <<'EOF'
import json, sys
runs, variants = sys.argv[1], sys.argv[2:]
def load(n):
    return json.load(open(f"{runs}/{n}.json"))
print("| variant | 4 KiB alone /s | alone p99 ms | 4 KiB in mix /s | kept | p50 ms | p99 ms | big MiB/s |")
print("|---|---|---|---|---|---|---|---|")
for v in variants:
    name = v.split(":", 1)[0]
    a, m, b = load(f"{name}-alone"), load(f"{name}-mix"), load(f"{name}-big")
    lat = m["latency"]["retr"]["total_ms"]
    alone99 = a["latency"]["retr"]["total_ms"]["p99"]
    print(f"| {name} | {a['ops_per_s']:.0f} | {alone99:.2f} | {m['ops_per_s']:.0f} | {m['ops_per_s']/a['ops_per_s']:.2f} "
          f"| {lat['p50']:.2f} | {lat['p99']:.2f} | {b['mib_per_s']:.0f} |")
EOF
