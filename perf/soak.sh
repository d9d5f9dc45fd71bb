#!/usr/bin/env bash
# soak.sh [MINUTES] — a long mixed load with abrupt disconnects against a release mirrorftpd
# on 127.0.0.1, watching the server's descriptors and memory. Fails (exit 1) unless, once the
# load is over and a settle time has passed, the server holds exactly as many descriptors as
# before the load, and its RSS is back within the tolerance below.
#
#   perf/soak.sh 3          # 3 minutes (default 30)
#
# Load: `mirrorftpd bench mix` with SOAK_CONNS sessions (default 1000) doing
# retr=10,list=3,login=2,stor=1 (retr of 64 KiB-4 MiB files, LIST of a 300-entry directory,
# 64 KiB uploads by an account), each operation ending with an abrupt disconnect (FIN or RST,
# before the operation or mid-transfer) with probability SOAK_DISCONNECT (default 0.05),
# after which the session reconnects.
#
# Memory: RSS is judged against a warm-up figure, not the idle start: a first 20 s burst of
# the same load grows the session slab, the allocator's arenas and the thread caches to their
# working size; after it settles its RSS is the reference. Pass: RSS after the soak <=
# reference + SOAK_RSS_TOL_PCT % (default 20) + SOAK_RSS_TOL_MIB MiB (default 16). Descriptors
# are judged exactly against the idle start.
#
# Samples every 10 s: descriptors (/proc/PID/fd), VmRSS (/proc/PID/status), the server's CPU
# share. Report: perf/results/DATE-soak-MINUTES.md. Uploaded files are removed as they age
# (an upload still running keeps its file) so a long run does not fill the disk.
set -euo pipefail
SCRIPT_NAME=soak
. "$(dirname "$0")/lib.sh"

MINUTES=${1:-30}
[[ $MINUTES =~ ^[0-9]+$ && $MINUTES -ge 1 ]] || die "MINUTES must be a whole number >= 1"

# A network namespace of its own: a long soak leaves tens of thousands of
# loopback ports in TIME_WAIT, which must not starve anything else on the
# machine (tests, other servers). SOAK_NO_NETNS=1 measures in this one.
if [[ -z ${SOAK_IN_NETNS:-} && -z ${SOAK_NO_NETNS:-} ]]; then
    if unshare --net true 2>/dev/null; then
        log "soaking in a new network namespace"
        SOAK_IN_NETNS=1 exec unshare --net -- bash "$0" "$@"
    fi
    warn "cannot make a network namespace (unshare --net): soaking in this one"
elif [[ -n ${SOAK_IN_NETNS:-} ]]; then
    ip link set lo up || die "cannot bring up lo in the new network namespace"
fi
CONNS=${SOAK_CONNS:-1000}
DISCONNECT=${SOAK_DISCONNECT:-0.05}
SETTLE=${SOAK_SETTLE:-20}
WARMUP=${SOAK_WARMUP:-20}
RSS_TOL_PCT=${SOAK_RSS_TOL_PCT:-20}
RSS_TOL_MIB=${SOAK_RSS_TOL_MIB:-16}
MIX=retr=10,list=3,login=2,stor=1
SAMPLE_EVERY=10

BIN=$REPO_DIR/target/release/mirrorftpd
SOAK=$WORK_DIR/soak
ROOT=$SOAK/root
DATE=$(date -u +%F)
REPORT=$PERF_DIR/results/$DATE-soak-$MINUTES.md
trap cleanup_pids EXIT

log "building the release binary"
(cd "$REPO_DIR" && nice -n 5 cargo build --release --quiet)

# ------------------------------------------------------------------ the tree --
rm -rf "$SOAK"
mkdir -p "$ROOT/pub/list" "$ROOT/up"
for i in $(seq 1 12); do head -c $((64 << 10)) /dev/urandom >"$ROOT/pub/small-$i.bin"; done
for i in 1 2; do head -c $((4 << 20)) /dev/urandom >"$ROOT/pub/medium-$i.bin"; done
for i in $(seq 1 300); do : >"$ROOT/pub/list/entry-$i.txt"; done
head -c $((64 << 10)) /dev/urandom >"$ROOT/up/u"
# The uploader: SHA-512 crypt with the fewest rounds (the soak measures the server, not hashing).
printf 'soak:%s:%s:all\n' "$(openssl passwd -6 -salt 'rounds=1000$soaksalt' soak-pw)" "$ROOT" >"$SOAK/users.txt"
{
    echo /up/u # first: the upload base name (it exists too, so RETR of it works)
    for i in $(seq 1 12); do echo "/pub/small-$i.bin"; done
    echo /pub/medium-1.bin
    echo /pub/medium-2.bin
} >"$SOAK/paths.txt"

# ---------------------------------------------------------------- the server --
PORT=$(free_port)
# A passive range outside the kernel's ephemeral one (32768-60999 by default): at ~500 data
# connections a second the server's own TIME_WAITs (it closes a RETR's data connection first)
# exhaust the ephemeral range within a minute, and EPSV's bind(0) fails with EADDRINUSE (425).
# A range is bound port by port with SO_REUSEADDR, over TIME_WAIT: what a busy mirror sets.
PASV_PORTS=${SOAK_PASV_PORTS:-10000-29999}
# --allow-root when root: the tree belongs to the user running the soak, and
# the uploads must be able to write it (started as root mirrorftpd would
# otherwise drop to nobody and every STOR would be a 550).
ALLOW_ROOT=()
[[ $(id -u) -eq 0 ]] && ALLOW_ROOT=(--allow-root)
"$BIN" --root "$ROOT" --listen "127.0.0.1:$PORT" --workers 2 --users "$SOAK/users.txt" --pasv-ports "$PASV_PORTS" \
    --max-clients $((CONNS * 2)) --max-per-ip $((CONNS * 4)) --quiet "${ALLOW_ROOT[@]}" 2>"$SOAK/server.log" &
SERVER=$!
PIDS+=("$SERVER")
wait_port mirrorftpd "$SERVER" "$PORT" || die "the server did not start: $(tail -5 "$SOAK/server.log")"
sleep 1

fds() { find "/proc/$SERVER/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status"; }
cpu_ticks() { awk '{s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13]}' "/proc/$SERVER/stat"; }
HZ=$(getconf CLK_TCK)
alive() { kill -0 "$SERVER" 2>/dev/null || die "the server (pid $SERVER) died; log: $(tail -5 "$SOAK/server.log")"; }

# settle_fds TARGET: waits up to SETTLE s for the descriptor count to reach TARGET; prints it.
settle_fds() {
    local want=$1 n i
    for ((i = 0; i < SETTLE * 10; i++)); do
        n=$(fds)
        [[ $n -eq $want ]] && break
        sleep 0.1
    done
    sleep 1
    fds
}

# Removes finished uploads (not modified since the previous call; a running upload keeps its file).
MARK=$SOAK/clean.mark
touch "$MARK"
clean_uploads() {
    find "$ROOT/up" -type f ! -name u ! -newer "$MARK" -delete 2>/dev/null || true
    touch "$MARK"
}

bench() { # SECONDS JSON
    nice -n 5 "$BIN" bench mix --server "127.0.0.1:$PORT" --conns "$CONNS" --threads 2 --duration "$1" \
        --user soak --pass soak-pw --mix "$MIX" --paths-file "$SOAK/paths.txt" --size $((64 << 10)) \
        --discard --ramp 2 --timeout 20 --disconnect-prob "$DISCONNECT" --json "$2" \
        --max-error-rate "$(awk -v p="${SOAK_MAX_ERROR_PPM:-100}" 'BEGIN { print p / 1e6 }')"
}

FD0=$(fds)
RSS0=$(rss_kib)
log "idle server: $FD0 descriptors, RSS $RSS0 KiB"

# ------------------------------------------------------------------ warm-up --
log "warm-up: ${WARMUP}s of the same load"
bench "$WARMUP" "$SOAK/warmup.json" >"$SOAK/warmup.txt" 2>&1 || warn "warm-up bench exit $?"
alive
FD_W=$(settle_fds "$FD0")
RSS_W=$(rss_kib)
clean_uploads
log "after warm-up and ${SETTLE}s settle: $FD_W descriptors, RSS $RSS_W KiB (the reference)"

# --------------------------------------------------------------------- soak --
log "soak: $MINUTES min, $CONNS sessions, --disconnect-prob $DISCONNECT"
bench $((MINUTES * 60)) "$SOAK/soak.json" >"$SOAK/soak.txt" 2>&1 &
BENCH=$!
PIDS+=("$BENCH")
SAMPLES=$SOAK/samples.tsv
printf 'secs\tfds\trss_kib\tcpu_pct\n' >"$SAMPLES"
t0=$(date +%s)
prev_ticks=$(cpu_ticks)
prev_t=$t0
max_fds=0
max_rss=0
while kill -0 "$BENCH" 2>/dev/null; do
    sleep "$SAMPLE_EVERY"
    alive
    now=$(date +%s)
    n=$(fds)
    r=$(rss_kib)
    ticks=$(cpu_ticks)
    cpu=$(awk -v d=$((ticks - prev_ticks)) -v t=$((now - prev_t)) -v hz="$HZ" 'BEGIN {printf "%.0f", (t > 0) ? (100 * d / hz / t) : 0}')
    prev_ticks=$ticks
    prev_t=$now
    ((n > max_fds)) && max_fds=$n
    ((r > max_rss)) && max_rss=$r
    printf '%s\t%s\t%s\t%s\n' $((now - t0)) "$n" "$r" "$cpu" >>"$SAMPLES"
    log "t=$((now - t0))s fds=$n rss=${r}KiB cpu=${cpu}%"
    clean_uploads
done
wait "$BENCH" && BENCH_RC=0 || BENCH_RC=$?
alive

# ------------------------------------------------------------------- settle --
FD1=$(settle_fds "$FD0")
RSS1=$(rss_kib)
clean_uploads
# Still serving after all that?
if curl -sS --max-time 10 -o /dev/null "ftp://127.0.0.1:$PORT/pub/small-1.bin"; then SERVES=yes; else SERVES=no; fi
log "after the soak and ${SETTLE}s settle: $FD1 descriptors (idle start $FD0), RSS $RSS1 KiB (reference $RSS_W KiB); serves: $SERVES"

RSS_LIMIT=$((RSS_W + RSS_W * RSS_TOL_PCT / 100 + RSS_TOL_MIB * 1024))
verdict=PASS
why=()
if [[ $FD1 -ne $FD0 ]]; then verdict=FAIL; why+=("descriptors $FD1 != $FD0 before the load"); fi
if [[ $RSS1 -gt $RSS_LIMIT ]]; then verdict=FAIL; why+=("RSS $RSS1 KiB > limit $RSS_LIMIT KiB"); fi
if [[ $SERVES != yes ]]; then verdict=FAIL; why+=("a RETR after the soak failed"); fi
OPS=$(grep -o '"ops":[0-9]*' "$SOAK/soak.json" 2>/dev/null | head -1 | cut -d: -f2)
DROPS=$(grep -o '"drops":[0-9]*' "$SOAK/soak.json" 2>/dev/null | head -1 | cut -d: -f2)
if [[ ${OPS:-0} -eq 0 ]]; then verdict=FAIL; why+=("the load did no operation (see $SOAK/soak.txt)"); fi
if [[ ${DROPS:-0} -eq 0 && $DISCONNECT != 0 ]]; then verdict=FAIL; why+=("no session was dropped"); fi
# Failed operations (a drop is not one): at most 1 in 10,000 (SOAK_MAX_ERROR_PPM), for the
# rare data connection that loses a race with an abrupt disconnect under this load.
ERRORS=$(python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1])).get("errors", {}).values()))' "$SOAK/soak.json" 2>/dev/null || echo -1)
MAX_ERROR_PPM=${SOAK_MAX_ERROR_PPM:-100}
if [[ $ERRORS -lt 0 ]]; then verdict=FAIL; why+=("no error count in $SOAK/soak.json")
elif ((ERRORS * 1000000 > ${OPS:-0} * MAX_ERROR_PPM)); then verdict=FAIL; why+=("$ERRORS failed operations of ${OPS:-0}"); fi

# ------------------------------------------------------------------- report --
summary() { sed -n '/^workload/,$p' "$1"; }
mkdir -p "$(dirname "$REPORT")"
{
    echo "# Soak: $MINUTES min, $CONNS sessions, random disconnects ($DATE)"
    echo
    echo "Machine: $(cpu_model), $(ram_gib) RAM, $(nproc) cores; commit $(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null || repo_commit)."
    echo "Command: \`perf/soak.sh $MINUTES\` (SOAK_CONNS=$CONNS SOAK_DISCONNECT=$DISCONNECT SOAK_SETTLE=$SETTLE SOAK_WARMUP=$WARMUP)."
    echo
    echo "Server: \`mirrorftpd --workers 2 --users … --pasv-ports $PASV_PORTS --max-clients $((CONNS * 2)) --max-per-ip $((CONNS * 4)) --quiet ${ALLOW_ROOT[*]}\` (release)."
    echo "Load: \`mirrorftpd bench mix --conns $CONNS --threads 2 --mix $MIX --size 65536 --discard --disconnect-prob $DISCONNECT\`;"
    echo "every operation ends, with probability $DISCONNECT, in an abrupt disconnect (FIN or RST; before the operation or mid-transfer), then a reconnect."
    echo
    echo "## Verdict: $verdict"
    echo
    [[ ${#why[@]} -gt 0 ]] && printf -- '- %s\n' "${why[@]}" && echo
    echo "| | descriptors | RSS (KiB) |"
    echo "|---|---:|---:|"
    echo "| idle, before any load | $FD0 | $RSS0 |"
    echo "| after ${WARMUP} s warm-up + settle (RSS reference) | $FD_W | $RSS_W |"
    echo "| peak during the soak (10 s samples) | $max_fds | $max_rss |"
    echo "| after the soak + ${SETTLE} s settle | **$FD1** | **$RSS1** |"
    echo
    echo "Pass rules: descriptors after = before ($FD0), exactly; RSS after <= reference + ${RSS_TOL_PCT}% + ${RSS_TOL_MIB} MiB = $RSS_LIMIT KiB; failed operations <= ${MAX_ERROR_PPM} per million ($ERRORS of ${OPS:-0})."
    echo "A RETR by curl after the soak: $SERVES. Bench exit status: $BENCH_RC; ${OPS:-0} operations, ${DROPS:-0} abrupt disconnects."
    echo
    echo "## Bench summary (soak)"
    echo
    echo '```'
    summary "$SOAK/soak.txt"
    echo '```'
    echo
    echo "## Samples"
    echo
    echo "| t (s) | fds | RSS (KiB) | server CPU % |"
    echo "|---:|---:|---:|---:|"
    tail -n +2 "$SAMPLES" | awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}'
} >"$REPORT"
log "report: $REPORT"
log "verdict: $verdict ${why[*]:-}"
[[ $verdict == PASS ]]
