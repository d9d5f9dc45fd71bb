#!/usr/bin/env bash
# compare.sh — mirrorftpd side by side with vsftpd, ProFTPD, Pure-FTPd,
# pyftpdlib (and unFTP), all driven by the same `mirrorftpd bench` runs, plus
# a sendfile(2) reference ceiling. See perf/README.md for how to read it.
#
# Usage: perf/compare.sh [--quick] [options]
#   --quick            day-to-day mode, under 2 minutes once set up: 1 run,
#                      2 s runs, 1,000 idle sessions, no ProFTPD/Pure-FTPd,
#                      no second opinions (retr_1g_copy, curl_1g)
#   --runs N           measured runs per server and workload (default 3)
#   --duration SECS    length of each timed bench run (default 6)
#   --idle N           idle sessions for the memory test (default 10000)
#   --servers LIST     comma-separated subset of: mirrorftpd vsftpd proftpd
#                      pure-ftpd pyftpdlib unftp ref (default: all but unftp)
#   --threads N        bench reactor threads (default: nproc)
#   --with-unftp       add unFTP (first time: `cargo install unftp`, minutes)
#   --workloads LIST   comma-separated subset of the workloads and groups
#                      (see below); --only LIST is the same
#   --servers-for W=LIST  run workload W against only these servers (still
#                      among --servers); repeat for several workloads
#   --name NAME        results are perf/results/<date>-NAME.* (default
#                      compare, or compare-quick with --quick)
#   --no-plots         skip the PNG plots
#   --no-netns         measure in this network namespace, not a new one
# Environment:
#   MIRRORFTPD_BIN     server binary (default <repo>/target/release/mirrorftpd,
#                      built with `cargo build --release` when missing)
#   BENCH_BIN          load generator, run as `BENCH_BIN bench ...`
#                      (default: MIRRORFTPD_BIN)
#   RESULTS_DIR        where the results go (default perf/results)
#
# Workloads (the same bench command against every server):
#   retr_1g       1 GiB RETR twice in a row, one session, --discard
#   retr_1g_copy  the same, copying into user space (no --discard)
#   curl_1g       the same file with curl -o /dev/null (a second opinion)
#   retr_64m_c8   8 sessions RETR 8 distinct 64 MiB files round-robin
#   retr_64m_c64  64 sessions, same files
#   retr_4k_c32   32 sessions RETR 4 KiB files (transfers/s)
#   login_c32     32 clients connect, USER/PASS, QUIT (logins/s)
#   list_10k      LIST of a 10,000-entry directory, one session
#   idle          N logged-in idle sessions: server RSS and PSS
#   stor_64m_c8   8 sessions STOR 64 MiB each to /incoming/up.* (MiB/s and
#                 uploads/s), servers restarted with uploads allowed
#   stor_64m_c8_shm  the same, 64 uploads (4 GiB) in all, into a tmpfs
#                 directory: no disk write-back in the way
#   ftps_retr_1g  retr_1g with --tls (explicit FTPS: AUTH TLS, PROT P)
#   ftps_retr_64m_c8  retr_64m_c8 with --tls
#                 Each TLS run has its plain counterpart (ftps_plain_*) right
#                 next to it, against the same TLS-enabled server process
#                 (mirrorftpd, vsftpd, ProFTPD)
# Groups (for --workloads/--only): classic = the first nine, upload =
# stor_64m_c8 and stor_64m_c8_shm, ftps = the two ftps_* workloads.
# Default: all three groups.
# e.g. perf/compare.sh --only upload,ftps
#
# First run on a fresh Debian 12: installs python3-venv if missing, a venv
# under perf/work (pyftpdlib, matplotlib), the Debian servers unpacked from
# their .deb (never dpkg -i, no service starts), builds the 1.6 GiB test tree
# in perf/work/tree. Servers listen on free 127.0.0.1 ports and are stopped,
# with every process they forked, on exit. A server that fails its check or
# dies is skipped with a note in the results; the rest go on.
#
# Writes perf/results/<date>-compare[-quick].md (or <date>-NAME.md with
# --name), .jsonl (raw runs) and -throughput.png, -rates.png, -memory.png,
# -upload-ftps.png (those whose workloads ran).
set -euo pipefail
SCRIPT_NAME=compare
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$PERF_DIR/servers.sh"

readonly CLASSIC_WORKLOADS="retr_1g retr_1g_copy curl_1g retr_64m_c8 retr_64m_c64 retr_4k_c32 login_c32 list_10k idle"
readonly UPLOAD_WORKLOADS="stor_64m_c8 stor_64m_c8_shm"
readonly SHM_UPLOADS=64                  # uploads per stor_64m_c8_shm run (4 GiB in RAM)
readonly FTPS_WORKLOADS="ftps_retr_1g ftps_retr_64m_c8"
readonly ALL_WORKLOADS="$CLASSIC_WORKLOADS $UPLOAD_WORKLOADS $FTPS_WORKLOADS"
readonly UPLOAD_SIZE=67108864            # bytes per STOR
readonly SMALL_PATHS=256                 # distinct 4 KiB files cycled through
readonly BENCH_SLACK_SECS=120            # a bench run's bound beyond its duration
readonly CURL_MAX_SECS=300
readonly IDLE_SAMPLES=3                  # memory samples while sessions are held
readonly FD_MARGIN=1000                  # descriptors beyond the idle sessions
readonly IDLE_RAMP_FACTOR=2.5            # idle ramp: × the time the login rate needs
readonly IDLE_RAMP_MAX=300
COMMAND_LINE="$0${*:+ $*}"
ORIG_ARGS=("$@")

QUICK=0 RUNS=3 DURATION=6 IDLE_CONNS=10000 PLOTS=1 WITH_UNFTP=0 THREADS=$(nproc) USE_NETNS=1
SERVERS_ARG="" WORKLOADS_ARG="" RESULTS_NAME=""
declare -A SERVERS_FOR=()
RUNS_SET=0 DURATION_SET=0 IDLE_SET=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
posint() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer"; }

while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --runs) posint "$1" "${2:-}"; RUNS=$2; RUNS_SET=1; shift 2 ;;
        --duration) posint "$1" "${2:-}"; DURATION=$2; DURATION_SET=1; shift 2 ;;
        --idle) posint "$1" "${2:-}"; IDLE_CONNS=$2; IDLE_SET=1; shift 2 ;;
        --servers) [[ -n ${2:-} ]] || die "$1 needs a list"; SERVERS_ARG=${2//,/ }; shift 2 ;;
        --workloads|--only) [[ -n ${2:-} ]] || die "$1 needs a list"; WORKLOADS_ARG+=" ${2//,/ }"; shift 2 ;;
        --servers-for) [[ ${2:-} == ?*=?* ]] || die "$1 needs WORKLOAD=server,server"
            SERVERS_FOR[${2%%=*}]=" $(tr , ' ' <<< "${2#*=}") "; shift 2 ;;
        --threads) posint "$1" "${2:-}"; THREADS=$2; shift 2 ;;
        --with-unftp) WITH_UNFTP=1; shift ;;
        --no-plots) PLOTS=0; shift ;;
        --name) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || die "$1 needs a name (letters, digits, . _ -)"; RESULTS_NAME=$2; shift 2 ;;
        --no-netns) USE_NETNS=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if ((QUICK)); then
    ((RUNS_SET)) || RUNS=1
    ((DURATION_SET)) || DURATION=2
    ((IDLE_SET)) || IDLE_CONNS=1000
fi

if [[ -n $SERVERS_ARG ]]; then
    SERVERS=($SERVERS_ARG)
elif ((QUICK)); then
    SERVERS=(mirrorftpd vsftpd pyftpdlib ref)
else
    SERVERS=(mirrorftpd vsftpd proftpd pure-ftpd pyftpdlib ref)
fi
if ((WITH_UNFTP)) && [[ " ${SERVERS[*]} " != *" unftp "* ]]; then
    had_ref=0 keep=()
    for s in "${SERVERS[@]}"; do if [[ $s == ref ]]; then had_ref=1; else keep+=("$s"); fi; done
    SERVERS=("${keep[@]}" unftp)
    if ((had_ref)); then SERVERS+=(ref); fi
fi
if [[ -n $WORKLOADS_ARG ]]; then
    WORKLOADS=()
    for w in $WORKLOADS_ARG; do
        case $w in
            classic) WORKLOADS+=($CLASSIC_WORKLOADS) ;;
            upload) WORKLOADS+=($UPLOAD_WORKLOADS) ;;
            ftps) WORKLOADS+=($FTPS_WORKLOADS) ;;
            *) WORKLOADS+=("$w") ;;
        esac
    done
elif ((QUICK)); then
    WORKLOADS=(retr_1g retr_64m_c8 retr_64m_c64 retr_4k_c32 login_c32 list_10k idle)
else
    WORKLOADS=($ALL_WORKLOADS)
fi
for s in "${SERVERS[@]}"; do [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server: $s"; done
for w in "${WORKLOADS[@]}"; do [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload: $w"; done
for w in "${!SERVERS_FOR[@]}"; do
    [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "--servers-for: unknown workload: $w"
    for s in ${SERVERS_FOR[$w]}; do [[ " $ALL_SERVERS " == *" $s "* ]] || die "--servers-for: unknown server: $s"; done
done
# Keep the order of ALL_WORKLOADS (phases: classic, then upload, then ftps), once each.
keep=()
for w in $ALL_WORKLOADS; do [[ " ${WORKLOADS[*]} " == *" $w "* ]] && keep+=("$w"); done
WORKLOADS=("${keep[@]}")
[[ " ${SERVERS[*]} " == *" mirrorftpd "* ]] || warn "mirrorftpd is not among the servers: no ratios to it"
BENCH_BIN=${BENCH_BIN:-$MIRRORFTPD_BIN}

# mode_of W: the server configuration W needs (servers.sh: SERVE_MODE).
mode_of() {
    case $1 in
        stor_*_shm) echo upload_shm ;;
        stor_*) echo upload ;;
        ftps_*) echo tls ;;
        *) echo plain ;;
    esac
}
# eligible SERVER W: does W run against SERVER?
eligible() {
    local s=$1 w=$2
    if [[ -n ${SERVERS_FOR[$w]:-} && ${SERVERS_FOR[$w]} != *" $s "* ]]; then return 1; fi
    case $(mode_of "$w") in
        upload*) [[ " $STOR_SERVERS " == *" $s "* ]] ;;
        tls) [[ " $TLS_SERVERS " == *" $s "* ]] ;;
        *) [[ $s != ref ]] || [[ $w == retr_* || $w == curl_* ]] ;;
    esac
}

# ------------------------------------------------------------------ setup --
for tool in curl gcc apt-get apt-cache dpkg-deb python3 ss ip timeout awk flock unshare; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install it)"
done

# One run at a time (with mirror.sh too): two would measure each other.
# (The lock's descriptor is inherited by the re-executed run below.)
if [[ -z ${COMPARE_IN_NETNS:-} ]]; then take_lock; fi

cleanup() {
    cleanup_pids
    rm -rf "$UPLOAD_SHM_ROOT"             # tmpfs uploads hold RAM: never leave them
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers (one descriptor per session, or per process) and the bench (one
# per session) both need room for the idle sessions.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + FD_MARGIN)); then
    warn "ulimit -n is $(ulimit -n) (hard limit): idle test cut to $(($(ulimit -n) - FD_MARGIN)) sessions"
    IDLE_CONNS=$(($(ulimit -n) - FD_MARGIN))
fi

setup_venv || die "could not set up the Python venv in $VENV (needed for the reports)"
RESULTS_DIR=${RESULTS_DIR:-$PERF_DIR/results}
mkdir -p "$RESULTS_DIR"
build_tree

ensure_bench
install_reaper || die "could not compile perf/reaper.c"

# FTPS needs the bench's --tls, a certificate, and openssl for both.
RUN_WARNINGS=()
if [[ " ${WORKLOADS[*]} " == *" ftps_"* ]]; then
    why=""
    if ! "$BENCH_BIN" bench --help 2>/dev/null | grep -q -- '--tls'; then
        why="'$BENCH_BIN bench' has no --tls"
    elif ! command -v openssl >/dev/null || ! make_tls_cert; then
        why="could not make a TLS certificate with openssl"
    fi
    if [[ -n $why ]]; then
        warn "SKIPPING the FTPS workloads: $why"
        keep=(); for w in "${WORKLOADS[@]}"; do [[ $w == ftps_* ]] || keep+=("$w"); done
        WORKLOADS=("${keep[@]}")
        RUN_WARNINGS+=("FTPS workloads SKIPPED: $why")
        ((${#WORKLOADS[@]})) || die "nothing left to measure"
    fi
fi
if [[ " ${WORKLOADS[*]} " == *" stor_"* ]]; then
    command -v openssl >/dev/null || die "openssl not found (mirrorftpd's upload account is hashed with openssl passwd -6)"
fi

# -------------------------------------------------------------- namespace --
# Everything is installed now, while the package registries are reachable;
# the measuring runs in a network namespace of its own (loopback only, so
# nothing can leave the machine, and no other work's sockets are in it),
# where TIME_WAIT is bounded: each RETR leaves a TIME_WAIT socket on the
# server side, tens of thousands of them pile up within a minute, and the
# server measured next would pay for the one before (binding passive ports
# among them gets slow). tcp_max_tw_buckets caps them for every server alike.
if [[ -z ${COMPARE_IN_NETNS:-} ]]; then
    for mode in plain upload upload_shm tls; do
        for s in "${SERVERS[@]}"; do
            for w in "${WORKLOADS[@]}"; do
                [[ $(mode_of "$w") == "$mode" ]] && eligible "$s" "$w" || continue
                SERVE_MODE=$mode "install_$s" || warn "$s could not be installed ($mode): it will be skipped"
                break
            done
        done
    done
    if ((USE_NETNS)); then
        if unshare --net true 2>/dev/null; then
            log "measuring in a new network namespace"
            COMPARE_IN_NETNS=1 exec unshare --net -- bash "$0" "${ORIG_ARGS[@]}"
        fi
        warn "cannot make a network namespace (unshare --net): measuring in this one"
    fi
else
    netns_tuned
fi

# The last run's directory (configs, server logs, raw bench output) is kept
# for a look after the fact; older ones go.
rm -rf "$WORK_DIR"/compare.??????
RUN_DIR=$(mktemp -d "$WORK_DIR/compare.XXXXXX")
mkdir -p "$RUN_DIR/runs"

# ---------------------------------------------------------------- servers --
# (Started per phase below: classic, upload, FTPS configurations differ.)

# -------------------------------------------------------------- workloads --
M64_PATHS=() SMALL_PATH_LIST=()
for ((i = 0; i < M64_COUNT; i++)); do M64_PATHS+=(--path "/m64/f$i.bin"); done
for ((i = 0; i < SMALL_PATHS; i++)); do SMALL_PATH_LIST+=(--path "$(printf '/small/f%05d.bin' "$i")"); done

# retr_workload W: does W move file data (and so include the ceiling)?
retr_workload() { [[ $1 == retr_* || $1 == curl_* ]]; }

# workload_args W: the bench arguments of W after the workload name.
workload_args() {
    case $1 in
        retr_1g)      echo retr --conns 1 --count 2 --path /big.bin --discard ;;
        retr_1g_copy) echo retr --conns 1 --count 2 --path /big.bin ;;
        retr_64m_c8)  echo retr --conns 8 --duration "$DURATION" "${M64_PATHS[@]}" --discard ;;
        retr_64m_c64) echo retr --conns 64 --duration "$DURATION" "${M64_PATHS[@]}" --discard ;;
        retr_4k_c32)  echo retr --conns 32 --duration "$DURATION" "${SMALL_PATH_LIST[@]}" --discard ;;
        login_c32)    echo login --conns 32 --duration "$DURATION" ;;
        list_10k)     echo list --conns 1 --duration "$DURATION" --dir /small --list-cmd LIST ;;
        stor_64m_c8)  echo stor --conns 8 --size "$UPLOAD_SIZE" --duration "$DURATION" --path /incoming/up ;;
        stor_64m_c8_shm) echo stor --conns 8 --size "$UPLOAD_SIZE" --count "$SHM_UPLOADS" --path /incoming/up ;;
        ftps_plain_*) workload_args "${1#ftps_plain_}" ;;
        ftps_*)       echo "$(workload_args "${1#ftps_}")" --tls ;;
    esac
}
COMMON_ARGS=(--epsv --timeout 60)
# login_args SERVER W: who the bench logs in as (mirrorftpd's uploads: its
# account; everything else: anonymous).
login_args() {
    if [[ $1 == mirrorftpd && $(mode_of "$2") == upload* ]]; then
        echo --user "$UPLOAD_USER" --pass "$UPLOAD_PASS"
    else
        echo --user "$ANON_USER" --pass "$ANON_PASS"
    fi
}
# Workloads run with --threads THREADS (the bench uses at most one per session).

# warm_for W: re-read W's files right before measuring (the VM drops idle
# page cache within about a minute).
warm_for() {
    case $1 in
        retr_1g*|curl_1g|ftps_*retr_1g) warm "$TREE/big.bin" ;;
        retr_64m_*|ftps_*retr_64m_*) warm "$TREE/m64" ;;
        stor_*) clean_uploads; sync ;;
        retr_4k_*) warm "$TREE/small" ;;
        list_10k) ls -l "$TREE/small" > /dev/null ;;
    esac
}

# run_one SERVER WORKLOAD ROUND: one measured run into RUN_DIR/runs/S.W.R.*
run_one() {
    local s=$1 w=$2 r=$3 base rc=0 cpu0 cpu1 t0 t1 out speed size
    base=$RUN_DIR/runs/$s.$w.$r
    warm_for "$w"
    cpu0=$(server_cpu "${SPID[$s]}")
    t0=$(date +%s.%N)
    if [[ $w == curl_1g ]]; then
        out=$(curl -s --max-time "$CURL_MAX_SECS" -o /dev/null -w '%{speed_download} %{size_download}' \
            "ftp://127.0.0.1:${PORT[$s]}/big.bin" 2> "$base.err") || rc=$?
        read -r speed size <<< "${out:-0 0}"
        echo "{\"workload\": \"curl\", \"conns\": 1, \"bytes\": $size, \"mib_per_s\": $(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }'), \"ops\": $((rc == 0 && size == GIB)), \"errors\": {$( ((rc)) && echo "\"curl exit $rc\": 1")}}" > "$base.json"
        [[ $size == "$GIB" ]] || ((rc)) || rc=1
    else
        # shellcheck disable=SC2046  # workload_args is a word list by design
        timeout -k 5 $((DURATION + BENCH_SLACK_SECS)) "$BENCH_BIN" bench $(workload_args "$w") \
            --threads "$THREADS" --server "127.0.0.1:${PORT[$s]}" "${COMMON_ARGS[@]}" $(login_args "$s" "$w") --json "$base.json" \
            > "$base.out" 2> "$base.err" || rc=$?
    fi
    t1=$(date +%s.%N)
    cpu1=$(server_cpu "${SPID[$s]}" 2>/dev/null || echo "$cpu0")
    printf 'rc=%s\nwall_secs=%s\nserver_cpu_secs=%s\n' "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')" > "$base.meta"
    summarize_run "$s" "$w" "$r" "$rc" "$base"
    if [[ $w == stor_* ]]; then
        echo "upload_files=$(find "$UPLOAD_ROOT/incoming" -type f | wc -l)" >> "$base.meta"
        clean_uploads
    fi
    if ! kill -0 "${SPID[$s]}" 2>/dev/null; then
        show_logs "$RUN_DIR/$s".* "$base.err"
        skip "$s" "died during $w run $r (log printed above)"
    fi
}

# summarize_run: one progress line; a failed run is shown with its stderr.
summarize_run() {
    local s=$1 w=$2 r=$3 rc=$4 base=$5 line
    line=$("$PY" - "$base.json" <<'PY' 2>/dev/null || echo "no JSON"
import json, sys
j = json.load(open(sys.argv[1]))
errs = sum(j.get("errors", {}).values())
cpu = j.get("client_cpu_percent")
print(f"{j.get('mib_per_s', 0):9.1f} MiB/s {j.get('ops_per_s', 0) or 0:9.1f} ops/s"
      + (f"  client CPU {cpu:.0f}%" if cpu is not None else "")
      + (f"  ERRORS {errs}: {j['errors']}" if errs else ""))
PY
)
    printf '%s   %-22s %-10s run %d  %s\n' "$(date +%T)" "$w" "$s" "$r" "$line" >&2
    if ((rc)); then
        warn "$s $w run $r: exit $rc; stderr:"
        tail -n 15 "$base.err" >&2 || true
    fi
}

# session_count PORT: established control connections to 127.0.0.1:PORT.
session_count() {
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}

# settle SERVER: bounded wait until SERVER has no sessions left (a forking
# server reaps thousands of session processes after the idle test) and its
# process count stops falling.
settle() {
    local s=$1 i n last=-1
    for ((i = 0; i < 600; i++)); do
        (($(session_count "${PORT[$s]}") == 0)) && break
        sleep 0.1
    done
    for ((i = 0; i < 30; i++)); do
        n=$(descendants "${SPID[$s]}" | wc -w)
        ((n == last)) && break
        last=$n
        sleep 1
    done
}

# idle_ramp SERVER: seconds to spread the idle sessions' connects over.
# A server must accept them as fast as they come: vsftpd's listen backlog is
# a fixed 32, and a connection dropped from a full accept queue after a SYN
# cookie is "established" for the client, which then waits forever for the
# 220 greeting. So the ramp follows the server's own login rate (login_c32,
# when it ran; else 100/s), at IDLE_RAMP_FACTOR times the time it needs.
idle_ramp() {
    local rate
    rate=$("$PY" - "$RUN_DIR/runs" "$1" <<'PY' 2>/dev/null || true
import glob, json, statistics, sys
rates = []
for f in glob.glob(f"{sys.argv[1]}/{sys.argv[2]}.login_c32.*.json"):
    try:
        rates.append(json.load(open(f))["ops_per_s"])
    except (OSError, ValueError, KeyError):
        pass
print(int(statistics.median(rates)) if rates else "")
PY
)
    [[ $rate =~ ^[0-9]+$ && $rate -gt 0 ]] || rate=100
    awk -v n="$IDLE_CONNS" -v r="$rate" -v f="$IDLE_RAMP_FACTOR" -v m="$IDLE_RAMP_MAX" \
        'BEGIN { t = int(f * n / r + 0.999); if (t < 1) t = 1; if (t > m) t = m; print t }'
}

# run_idle SERVER: hold IDLE_CONNS logged-in sessions, sample the server's
# process tree while they are held. The bench's --duration counts from its
# start (ramp and logins included), so it gets the ramp plus a minute and
# more; once it says "holding" and the samples are taken it is stopped (no
# JSON then: the "holding N" line and ss are the session counts). If it
# never says so, what is there is sampled shortly before its end, and it
# runs to its end so that its JSON tells what failed.
run_idle() {
    local s=$1
    local base=$RUN_DIR/runs/$s.idle.1 bpid rc=0 i held=0 waited ramp wait_secs
    ramp=$(idle_ramp "$s")
    wait_secs=$((ramp + 60 + IDLE_CONNS / 200))
    settle "$s"
    "$PY" "$PERF_DIR/procstat.py" --skip-root "${SPID[$s]}" > "$base.before"
    timeout -k 5 $((wait_secs + 60)) "$BENCH_BIN" bench idle --conns "$IDLE_CONNS" \
        --duration "$wait_secs" --ramp "$ramp" --threads "$THREADS" \
        --server "127.0.0.1:${PORT[$s]}" "${COMMON_ARGS[@]}" $(login_args "$s" idle) \
        --json "$base.json" > "$base.out" 2> "$base.err" &
    bpid=$!
    PIDS+=("$bpid")
    log "$s idle: $IDLE_CONNS sessions, ramp ${ramp}s"
    local t0=$SECONDS
    while ((SECONDS - t0 < wait_secs - 10)); do
        if grep -q 'bench: holding' "$base.err" 2>/dev/null; then held=1; break; fi
        kill -0 "$bpid" 2>/dev/null || break
        sleep 0.2
    done
    waited=$((SECONDS - t0))
    ((held)) || warn "$s idle: no 'bench: holding' line after ${waited}s; sampling what is there ($(session_count "${PORT[$s]}") sessions)"
    sleep 1                               # let the last logins settle
    echo "sessions_before=$(session_count "${PORT[$s]}")" > "$base.meta"
    echo "establish_secs=$waited" >> "$base.meta"
    echo "ramp_secs=$ramp" >> "$base.meta"
    for ((i = 1; i <= IDLE_SAMPLES; i++)); do
        "$PY" "$PERF_DIR/procstat.py" --skip-root "${SPID[$s]}" > "$base.sample$i" || true
    done
    echo "sessions_after=$(session_count "${PORT[$s]}")" >> "$base.meta"
    if ((held)); then
        kill "$bpid" 2>/dev/null || true  # timeout(1) passes it to the bench
        wait "$bpid" 2>/dev/null || true
        rm -f "$base.json"                # none, or a partial one
    else
        wait "$bpid" || rc=$?
    fi
    echo "rc=$rc" >> "$base.meta"
    echo "held=$held" >> "$base.meta"
    echo "holding_line=$(grep -m1 'bench: holding' "$base.err" 2>/dev/null || true)" >> "$base.meta"
    summarize_run "$s" idle 1 "$rc" "$base"
    "$PY" - "$base" <<'PY' >&2 || true
import json, sys
b = sys.argv[1]
s = [json.load(open(f"{b}.sample{i}")) for i in (1, 2, 3)]
m = max(s, key=lambda x: x["procs"])
print(f"           idle: {m['procs']} processes, RSS {m['rss_kib']/1024:.0f} MiB, PSS {m['pss_kib']/1024:.0f} MiB")
PY
    # Let a forking server reap its sessions before anything else runs.
    settle "$s"
    if ! kill -0 "${SPID[$s]}" 2>/dev/null; then
        show_logs "$RUN_DIR/$s".* "$base.err"
        skip "$s" "died during the idle test (log printed above)"
    fi
}

START_TS=$(date +%s)
DATE=$(date +%F)                          # results are named by the day the run began
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# run_round W R: round R of W over the live servers it applies to. An FTPS
# workload runs its plain counterpart against the same server right before
# (odd rounds) or after (even rounds) each TLS run.
run_round() {
    local w=$1 r=$2 s i
    local -a order=() rev=()
    for s in "${LIVE[@]}"; do eligible "$s" "$w" && order+=("$s"); done
    # Alternate the order every other round: no server always goes first.
    if ((r % 2 == 0)); then
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[i]}"); done
        order=("${rev[@]}")
    fi
    for s in "${order[@]}"; do
        [[ " ${LIVE[*]} " == *" $s "* ]] || continue
        if [[ $w == ftps_* ]]; then
            local plain=ftps_plain_${w#ftps_}
            if ((r % 2)); then
                run_one "$s" "$plain" "$r"
                [[ " ${LIVE[*]} " == *" $s "* ]] && run_one "$s" "$w" "$r"
            else
                run_one "$s" "$w" "$r"
                [[ " ${LIVE[*]} " == *" $s "* ]] && run_one "$s" "$plain" "$r"
            fi
        else
            run_one "$s" "$w" "$r"
        fi
    done
}

# Phases: each configuration's servers are started, measured and stopped in
# turn (the classic read-only setup, then uploads allowed, then FTPS).
for SERVE_MODE in plain upload upload_shm tls; do
    phase=()
    for w in "${WORKLOADS[@]}"; do [[ $(mode_of "$w") == "$SERVE_MODE" ]] && phase+=("$w"); done
    ((${#phase[@]})) || continue
    case $SERVE_MODE in
        upload) UPLOAD_ROOT=$UPLOAD_DISK_ROOT; prepare_upload_root ;;
        upload_shm) UPLOAD_ROOT=$UPLOAD_SHM_ROOT; prepare_upload_root ;;
    esac
    LIVE=() SPID=() PORT=()
    for s in "${SERVERS[@]}"; do
        for w in "${phase[@]}"; do
            if eligible "$s" "$w"; then start_server "$s"; break; fi
        done
    done
    if ((${#LIVE[@]} == 0)); then
        warn "no server could be started for the $SERVE_MODE workloads (${phase[*]})"
        RUN_WARNINGS+=("no server could be started for ${phase[*]}")
        continue
    fi
    log "measuring [$SERVE_MODE] ${LIVE[*]}: ${phase[*]}; $RUNS run(s), ${DURATION}s each, idle $IDLE_CONNS"
    for w in "${phase[@]}"; do
        if [[ $w == idle ]]; then
            for s in "${LIVE[@]}"; do eligible "$s" idle && run_idle "$s"; done
            continue
        fi
        for ((r = 1; r <= RUNS; r++)); do run_round "$w" "$r"; done
    done
    for s in "${LIVE[@]}"; do stop_tree "${SPID[$s]}"; done
    case $SERVE_MODE in
        upload) clean_uploads ;;
        upload_shm) rm -rf "$UPLOAD_SHM_ROOT" ;;
    esac
done
ELAPSED=$(($(date +%s) - START_TS))

# ---------------------------------------------------------------- results --
STEM=$RESULTS_DIR/$DATE-compare
if ((QUICK)); then STEM+=-quick; fi
if [[ -n $RESULTS_NAME ]]; then STEM=$RESULTS_DIR/$DATE-$RESULTS_NAME; fi
{
    echo "date=$(date -u '+%F %T UTC')"
    echo "command=$(printf '%s' "$COMMAND_LINE")"
    echo "cwd=$(pwd)"
    echo "quick=$QUICK"
    echo "runs=$RUNS"
    echo "duration=$DURATION"
    echo "idle_conns=$IDLE_CONNS"
    echo "elapsed_secs=$ELAPSED"
    echo "load_start=$LOAD_START"
    echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nproc=$(nproc)"
    echo "cpu=$(cpu_model)"
    echo "ram=$(ram_gib)"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "ulimit_n=$(ulimit -n)"
    echo "netns=$([[ -n ${COMPARE_IN_NETNS:-} ]] && echo "a network namespace of its own" || echo "the host's network namespace")"
    echo "sysctl=$(sysctl_summary)"
    echo "bench_bin=$BENCH_BIN"
    echo "bench_version=$("$BENCH_BIN" --version 2>/dev/null | head -n1) (commit $(repo_commit))"
    echo "bench_common=${COMMON_ARGS[*]} --user $ANON_USER --pass $ANON_PASS --threads $THREADS"
    for w in "${WORKLOADS[@]}"; do
        case $w in
            idle) echo "cmd_$w=bench idle --conns $IDLE_CONNS --ramp R --duration R+60+ (R = $IDLE_RAMP_FACTOR × sessions / the server's login rate; stopped once holding and sampled)" ;;
            curl_1g) echo "cmd_$w=curl -s -o /dev/null ftp://127.0.0.1:PORT/big.bin" ;;
            retr_4k_c32) echo "cmd_$w=bench retr --conns 32 --duration $DURATION --path /small/f00000.bin … (${SMALL_PATHS} files) --discard" ;;
            retr_64m_*) echo "cmd_$w=bench $(workload_args "$w" | sed 's|--path /m64/f0.bin.*--path /m64/f7.bin|--path /m64/f0.bin … /m64/f7.bin|')" ;;
            ftps_*)
                echo "cmd_$w=bench $(workload_args "$w" | sed 's|--path /m64/f0.bin.*--path /m64/f7.bin|--path /m64/f0.bin … /m64/f7.bin|')"
                echo "cmd_ftps_plain_${w#ftps_}=bench $(workload_args "ftps_plain_${w#ftps_}" | sed 's|--path /m64/f0.bin.*--path /m64/f7.bin|--path /m64/f0.bin … /m64/f7.bin|')" ;;
            stor_*) echo "cmd_$w=bench $(workload_args "$w") (mirrorftpd: --user $UPLOAD_USER --pass $UPLOAD_PASS; the upload dir, $([[ $w == *_shm ]] && echo "on tmpfs" || echo "on $(findmnt -no FSTYPE -T "$UPLOAD_DISK_ROOT" 2>/dev/null || echo disk)"), emptied before and after each run)" ;;
            *) echo "cmd_$w=bench $(workload_args "$w")" ;;
        esac
    done
    for s in "${SERVERS[@]}"; do
        echo "server=$s"
        echo "version_$s=${VERSION[$s]:-}"
        echo "note_$s=$(SERVE_MODE=plain "note_$s")"
        for mode in upload upload_shm tls; do
            for w in "${WORKLOADS[@]}"; do
                if [[ $(mode_of "$w") == "$mode" ]] && eligible "$s" "$w"; then
                    echo "note_${mode}_$s=$(SERVE_MODE=$mode "note_$s")"; break
                fi
            done
        done
        echo "skipped_$s=${SKIPPED[$s]:-}"
    done
    for x in "${RUN_WARNINGS[@]}"; do echo "warning=$x"; done
    for w in "${!SERVERS_FOR[@]}"; do echo "servers_for_$w=${SERVERS_FOR[$w]}"; done
    echo "workloads=${WORKLOADS[*]}"
} > "$RUN_DIR/meta.txt"

"$PY" "$PERF_DIR/report.py" "$RUN_DIR" "$STEM" || die "report.py failed (raw runs in $RUN_DIR)"
if ((PLOTS)); then
    "$PY" "$PERF_DIR/plot.py" "$STEM.jsonl" "$STEM" || warn "plot.py failed"
fi
echo >&2
cat "$STEM.md"
log "done in $((ELAPSED / 60))m$((ELAPSED % 60))s of measuring: $STEM.md"
