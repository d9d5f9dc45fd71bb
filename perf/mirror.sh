#!/usr/bin/env bash
# mirror.sh — the real mirror workload (issue 11): small index files fetched
# beside big images streamed from disk, default flags, huge listings;
# mirrorftpd against vsftpd, ProFTPD and Pure-FTPd in one run. See the
# "mirror.sh" section of perf/README.md for how to read it.
#
# Usage: perf/mirror.sh [--quick] [options]
#   --quick            smoke test: 3 s phases (the default phase's warm-up
#                      and measurement 3 s each); results named *-mirror-quick
#   --duration SECS    length of each timed phase (default 15)
#   --defaults-secs S  the default-flags phase: warm-up and measurement,
#                      S seconds each (default 20)
#   --servers LIST     comma-separated subset of mirrorftpd vsftpd proftpd
#                      pure-ftpd pyftpdlib (default: the first four)
#   --phases LIST      comma-separated subset of small disk mix_disk
#                      mix_cached list defaults (default: all; the ratios
#                      need small with the mixes)
#   --threads N        bench reactor threads of the 4 KiB and LIST loads
#                      (default: nproc; the big-file load uses 1)
#   --drop-caches      also `echo 1 > /proc/sys/vm/drop_caches` (as root)
#                      before each disk phase, not only evict the images
#   --cache-secs S     during the disk phases, evict the images' pages once
#                      they have been cached S seconds (perf/evictor.py;
#                      default 3; 0: only evict them before the phase)
#   --strace           after mirrorftpd's measured run of each phase, run the
#                      phase once more with `strace -c -f -w` attached to it
#                      (syscall counts and wall time in each: where the time
#                      goes); the summaries go into the results, the figures
#                      of that run do not
#   --name NAME        results are perf/results/<date>-NAME.* (default
#                      mirror, or mirror-quick with --quick)
#   --no-plots         skip the PNG plot
# Environment:
#   MIRRORFTPD_BIN     server binary (default <repo>/target/release/mirrorftpd,
#                      built with `cargo build --release` when missing)
#   BENCH_BIN          load generator, run as `BENCH_BIN bench ...`
#                      (default: MIRRORFTPD_BIN)
#   RESULTS_DIR        where the results go (default perf/results)
#
# Phases (each against every server in turn; one run each):
#   small       32 sessions RETR 256 cached 4 KiB files (transfers/s, p50/p99)
#   disk        16 sessions each streaming its own 1 GiB image, the images
#               evicted from the page cache first (MiB/s)
#   mix_disk    both at once, two bench processes (4 KiB rate kept = rate
#               here / rate alone, p50/p99, big-file MiB/s)
#   mix_cached  the same with the big files in the page cache (8 images,
#               two sessions each: this VM's cache does not keep all 16)
#   list        LIST of the 10,000-entry /small, 4 sessions (listings/s,
#               server CPU ms per listing)
#   defaults    small again, but each server with its default flags (for
#               mirrorftpd: --root and --listen only) in a fresh network
#               namespace with the kernel's default TCP settings: a warm-up,
#               then the measurement, so TIME_WAIT sockets pile up as on a
#               fresh install
#
# Needs root (network namespaces). First run: what compare.sh installs (the
# servers unpacked from .debs, the venv, the 1.6 GiB tree) plus 16 x 1 GiB
# images in perf/work/tree/images (a few minutes, 18 GiB of free disk).
# Writes perf/results/<date>-mirror[-quick].md, .jsonl and .png.
set -euo pipefail
SCRIPT_NAME=mirror
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$PERF_DIR/servers.sh"

readonly ALL_PHASES="small disk mix_disk mix_cached list defaults"
readonly MIRROR_SERVERS="mirrorftpd vsftpd proftpd pure-ftpd pyftpdlib"
readonly SMALL_CONNS=32 BIG_CONNS=16 LIST_CONNS=4
readonly SMALL_PATHS=256                 # distinct cached 4 KiB files, as compare.sh
readonly CACHED_IMAGES=8                 # images the cached mix reads (8 GiB)
readonly CACHED_MIN_PCT=95               # warm the cached mix's images to at least this
readonly WARM_PASSES=3
readonly BENCH_SLACK_SECS=60             # a bench run's bound beyond its duration
COMMAND_LINE="$0${*:+ $*}"
ORIG_ARGS=("$@")

QUICK=0 DURATION=15 DEFAULTS_SECS=20 THREADS=$(nproc) PLOTS=1 DROP_CACHES=0 STRACE=0 CACHE_SECS=3
SERVERS_ARG="" PHASES_ARG="" RESULTS_NAME="" INNER="" INNER_RUN_DIR=""
DURATION_SET=0 DEFAULTS_SET=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
posint() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer"; }

while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --duration) posint "$1" "${2:-}"; DURATION=$2; DURATION_SET=1; shift 2 ;;
        --defaults-secs) posint "$1" "${2:-}"; DEFAULTS_SECS=$2; DEFAULTS_SET=1; shift 2 ;;
        --servers) [[ -n ${2:-} ]] || die "$1 needs a list"; SERVERS_ARG=${2//,/ }; shift 2 ;;
        --phases) [[ -n ${2:-} ]] || die "$1 needs a list"; PHASES_ARG=${2//,/ }; shift 2 ;;
        --threads) posint "$1" "${2:-}"; THREADS=$2; shift 2 ;;
        --drop-caches) DROP_CACHES=1; shift ;;
        --strace) STRACE=1; shift ;;
        --cache-secs) [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$1 needs seconds"; CACHE_SECS=$2; shift 2 ;;
        --name) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || die "$1 needs a name (letters, digits, . _ -)"; RESULTS_NAME=$2; shift 2 ;;
        --no-plots) PLOTS=0; shift ;;
        # Internal: the default-flags phase of one server, run by this script
        # inside a fresh network namespace of its own (see run_defaults).
        --inner-defaults) INNER=${2:-}; INNER_RUN_DIR=${3:-}; shift 3 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if ((QUICK)); then
    ((DURATION_SET)) || DURATION=3
    ((DEFAULTS_SET)) || DEFAULTS_SECS=3
fi
if [[ -n $SERVERS_ARG ]]; then SERVERS=($SERVERS_ARG); else SERVERS=(mirrorftpd vsftpd proftpd pure-ftpd); fi
if [[ -n $PHASES_ARG ]]; then PHASES=($PHASES_ARG); else PHASES=($ALL_PHASES); fi
for s in "${SERVERS[@]}"; do [[ " $MIRROR_SERVERS " == *" $s "* ]] || die "unknown server: $s (one of: $MIRROR_SERVERS)"; done
for p in "${PHASES[@]}"; do [[ " $ALL_PHASES " == *" $p "* ]] || die "unknown phase: $p (one of: $ALL_PHASES)"; done
keep=()
for p in $ALL_PHASES; do [[ " ${PHASES[*]} " == *" $p "* ]] && keep+=("$p"); done
PHASES=("${keep[@]}")
BENCH_BIN=${BENCH_BIN:-$MIRRORFTPD_BIN}
COMMON_ARGS=(--epsv --timeout 60 --user "$ANON_USER" --pass "$ANON_PASS")

cleanup() { cleanup_pids; return 0; }
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --------------------------------------------------------------- the loads --
# bench_args ROLE PATHS_DIR SECS: the bench arguments of one load.
#   small  the 4 KiB load; big  the images from disk; bigc  the cached
#   images; list  the listing load
bench_args() {
    local role=$1 dir=$2 secs=$3
    case $role in
        small) echo retr --conns "$SMALL_CONNS" --duration "$secs" --paths-file "$dir/small.paths" --discard --threads "$THREADS" ;;
        big) echo retr --conns "$BIG_CONNS" --duration "$secs" --paths-file "$dir/images.paths" --discard --threads 1 ;;
        bigc) echo retr --conns "$BIG_CONNS" --duration "$secs" --paths-file "$dir/cached.paths" --discard --threads 1 ;;
        list) echo list --conns "$LIST_CONNS" --duration "$secs" --dir /small --list-cmd LIST --discard --threads "$THREADS" ;;
    esac
}
roles_of() {
    case $1 in
        small|defaults) echo small ;;
        disk) echo big ;;
        mix_disk) echo small big ;;
        mix_cached) echo small bigc ;;
        list) echo list ;;
    esac
}

SMALL_FILES=() IMAGES=() CACHED_FILES=()
for ((i = 0; i < SMALL_PATHS; i++)); do SMALL_FILES+=("$(printf '%s/small/f%05d.bin' "$TREE" "$i")"); done
for ((i = 0; i < IMAGE_COUNT; i++)); do IMAGES+=("$(printf '%s/%s/img%02d.bin' "$TREE" "$IMAGE_DIR" "$i")"); done
CACHED_FILES=("${IMAGES[@]:0:CACHED_IMAGES}")
DISK_DEV=$(disk_of "$TREE")

# write_paths DIR: the bench's --paths-file lists. Session i starts at line
# i and moves one line on per transfer, so with 16 lines each image session
# streams its own file; the cached list repeats 8 images twice.
write_paths() {
    local f
    for f in "${SMALL_FILES[@]}"; do echo "${f#"$TREE"}"; done > "$1/small.paths"
    image_paths > "$1/images.paths"
    for f in "${CACHED_FILES[@]}" "${CACHED_FILES[@]}"; do echo "${f#"$TREE"}"; done > "$1/cached.paths"
}

# warm_cached: read the cached mix's images until CACHED_MIN_PCT of them is
# in the page cache (bounded: this VM gives idle cache back to the host).
warm_cached() {
    local pass total=$((CACHED_IMAGES * GIB))
    for ((pass = 0; pass < WARM_PASSES; pass++)); do
        cat "${CACHED_FILES[@]}" > /dev/null
        (($(cached_bytes "${CACHED_FILES[@]}") * 100 >= total * CACHED_MIN_PCT)) && return 0
    done
    warn "only $(($(cached_bytes "${CACHED_FILES[@]}") * 100 / total))% of the cached mix's images stay in the page cache"
}

# prepare PHASE: the page cache as PHASE needs it.
prepare() {
    case $1 in
        small|defaults) cat "${SMALL_FILES[@]}" > /dev/null ;;
        disk|mix_disk)
            if ((DROP_CACHES)); then sync; echo 1 > /proc/sys/vm/drop_caches; fi
            evict "${IMAGES[@]}"
            [[ $1 == mix_disk ]] && cat "${SMALL_FILES[@]}" > /dev/null
            return 0 ;;
        mix_cached) warm_cached; cat "${SMALL_FILES[@]}" > /dev/null ;;
        list) ls -l "$TREE/small" > /dev/null ;;
    esac
}
# images_of PHASE: the images PHASE reads (their cache state is recorded).
images_of() {
    case $1 in
        disk|mix_disk) echo "${IMAGES[@]}" ;;
        mix_cached) echo "${CACHED_FILES[@]}" ;;
    esac
}

# measure SERVER PHASE PORT PID BASE [SECS]: prepare, run PHASE's loads at
# once against 127.0.0.1:PORT, and write BASE.meta (and BASE.ROLE.json, .out,
# .err per load) with the server's CPU time (the tree under PID), the wall
# time, the bytes read from the disk and the images' cache state.
measure() {
    local s=$1 phase=$2 port=$3 spid=$4 base=$5 secs=${6:-$DURATION}
    local role pid rc=0 r cpu0 cpu1 io0 io1 t0 t1 d0 d1 imgs c0=0 c1=0 epid=""
    local -a roles pids=()
    read -ra roles <<< "$(roles_of "$phase")"
    read -ra imgs <<< "$(images_of "$phase")"
    prepare "$phase"
    ((${#imgs[@]})) && c0=$(cached_bytes "${imgs[@]}")
    # The disk phases: a page cache that keeps the images CACHE_SECS only.
    if [[ $phase == disk || $phase == mix_disk ]] && [[ $CACHE_SECS != 0 ]]; then
        python3 "$PERF_DIR/evictor.py" --max-age "$CACHE_SECS" "${IMAGES[@]}" > "$base.evictor" 2>&1 &
        epid=$!
        PIDS+=("$epid")
    fi
    d0=$(disk_read_bytes "$DISK_DEV")
    read -r cpu0 io0 <<< "$(server_cpu_io "$spid")"
    t0=$(date +%s.%N)
    for role in "${roles[@]}"; do
        # shellcheck disable=SC2046  # bench_args is a word list by design
        timeout -k 5 $((secs + BENCH_SLACK_SECS)) "$BENCH_BIN" bench $(bench_args "$role" "$RUN_DIR" "$secs") \
            --server "127.0.0.1:$port" "${COMMON_ARGS[@]}" --json "$base.$role.json" \
            > "$base.$role.out" 2> "$base.$role.err" &
        pids+=($!)
        PIDS+=($!)
    done
    for pid in "${pids[@]}"; do
        r=0; wait "$pid" || r=$?
        ((r > rc)) && rc=$r
    done
    t1=$(date +%s.%N)
    if [[ -n $epid ]]; then kill -TERM "$epid" 2>/dev/null || true; wait "$epid" 2>/dev/null || true; fi
    read -r cpu1 io1 <<< "$(server_cpu_io "$spid" 2>/dev/null || echo "$cpu0 $io0")"
    d1=$(disk_read_bytes "$DISK_DEV")
    ((${#imgs[@]})) && c1=$(cached_bytes "${imgs[@]}")
    {
        echo "rc=$rc"
        echo "roles=${roles[*]}"
        echo "duration_secs=$secs"
        echo "wall_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
        echo "server_cpu_secs=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')"
        echo "server_read_bytes=$(awk -v a="$io0" -v b="$io1" 'BEGIN { printf "%.0f", b - a }')"
        [[ -n $DISK_DEV ]] && echo "disk_read_bytes=$((d1 - d0))"
        if ((${#imgs[@]})); then
            echo "images=${#imgs[@]}"
            echo "images_cached_before=$c0"
            echo "images_cached_after=$c1"
        fi
        [[ -n $epid ]] && echo "evictor=$(tail -n1 "$base.evictor")"
    } > "$base.meta"
    progress "$s" "$phase" "$base" "$rc"
}

# progress SERVER PHASE BASE RC: one line per phase; a failed load's stderr.
progress() {
    local s=$1 phase=$2 base=$3 rc=$4 role line=""
    for role in $(roles_of "$phase"); do
        line+="  $role: $(python3 - "$base.$role.json" <<'PY' 2>/dev/null || echo "no JSON"
import json, sys
j = json.load(open(sys.argv[1]))
lat = next(iter(j.get("latency", {}).values()), {}).get("total_ms", {})
errs = sum(j.get("errors", {}).values())
print(f"{j.get('ops_per_s', 0):,.0f} ops/s {j.get('mib_per_s', 0):,.0f} MiB/s"
      + (f" p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms" if lat else "")
      + (f" ERRORS {j['errors']}" if errs else ""))
PY
)"
    done
    printf '%s   %-10s %-10s%s\n' "$(date +%T)" "$phase" "$s" "$line" >&2
    if ((rc)); then
        warn "$s $phase: a load exited $rc; stderr:"
        for role in $(roles_of "$phase"); do tail -n 5 "$base.$role.err" >&2 || true; done
    fi
}

# traced SERVER PHASE PORT PID [SECS]: with --strace, PHASE once more for
# mirrorftpd with `strace -c -f -w` attached to every thread of the server
# (it slows the server: the figures of this run are not reported, only
# where its time went) into RUN_DIR/strace/SERVER.PHASE.txt.
traced() {
    local s=$1 phase=$2 port=$3 spid=$4 secs=${5:-$DURATION} dir=$RUN_DIR/strace tpid p
    ((STRACE)) && [[ $s == mirrorftpd ]] || return 0
    command -v strace > /dev/null || { warn "--strace: strace not found"; return 0; }
    mkdir -p "$dir"
    local -a args=()
    for p in $(descendants "$spid"); do args+=(-p "$p"); done
    strace -c -f -w -o "$dir/$s.$phase.txt" "${args[@]}" 2> "$dir/$s.$phase.err" &
    tpid=$!
    PIDS+=("$tpid")
    sleep 1                               # attached to every thread
    measure "$s" "$phase" "$port" "$spid" "$dir/$s.$phase" "$secs" 2> /dev/null
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    log "strace -c -f -w of mirrorftpd during $phase: $dir/$s.$phase.txt"
}

# ------------------------------------------- the default-flags phase inside --
# Run by run_defaults as `unshare --net -- mirror.sh ... --inner-defaults S
# RUN_DIR`: a network namespace that nothing else has used, so its sysctls
# are the kernel's defaults (ip_local_port_range 32768-60999, tcp_tw_reuse
# 2, tcp_max_tw_buckets as the host's) and no earlier run's TIME_WAIT sockets
# are in it. One server, started with its default flags, a warm-up of the 4
# KiB load, then the measured run.
if [[ -n $INNER ]]; then
    [[ -d $INNER_RUN_DIR ]] || die "--inner-defaults needs a run directory"
    ip link set lo up || die "cannot bring up lo in the new network namespace"
    RUN_DIR=$INNER_RUN_DIR/defaults       # the server's config and logs
    mkdir -p "$RUN_DIR"
    base=$INNER_RUN_DIR/runs/$INNER.defaults
    sysctl_summary > "$INNER_RUN_DIR/defaults.sysctl"
    SERVE_MODE=defaults
    start_server "$INNER"
    if [[ " ${LIVE[*]} " != *" $INNER "* ]]; then
        echo "rc=1" > "$base.meta"
        echo "skipped=${SKIPPED[$INNER]}" >> "$base.meta"
        exit 0
    fi
    cat "${SMALL_FILES[@]}" > /dev/null
    # shellcheck disable=SC2046
    timeout -k 5 $((DEFAULTS_SECS + BENCH_SLACK_SECS)) "$BENCH_BIN" bench \
        $(bench_args small "$INNER_RUN_DIR" "$DEFAULTS_SECS") --server "127.0.0.1:${PORT[$INNER]}" \
        "${COMMON_ARGS[@]}" --json "$base.warmup.json" > "$base.warmup.out" 2> "$base.warmup.err" || true
    tw0=$(ss -Htan state time-wait | wc -l)
    RUN_DIR=$INNER_RUN_DIR                # measure reads the paths files there
    measure "$INNER" defaults "${PORT[$INNER]}" "${SPID[$INNER]}" "$base" "$DEFAULTS_SECS"
    {
        echo "timewait_after_warmup=$tw0"
        echo "timewait_end=$(ss -Htan state time-wait | wc -l)"
        echo "warmup_secs=$DEFAULTS_SECS"
    } >> "$base.meta"
    kill -0 "${SPID[$INNER]}" 2>/dev/null || { show_logs "$RUN_DIR/defaults/$INNER".*; echo "died=1" >> "$base.meta"; }
    traced "$INNER" defaults "${PORT[$INNER]}" "${SPID[$INNER]}" "$DEFAULTS_SECS"
    exit 0
fi

# ------------------------------------------------------------------ setup --
for tool in curl gcc apt-get apt-cache dpkg-deb python3 ss ip timeout awk flock unshare fincore findmnt; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install it)"
done
((EUID == 0)) || die "run it as root: it measures in network namespaces of its own (unshare --net)"
if [[ -z ${MIRROR_IN_NETNS:-} ]]; then take_lock; fi

setup_venv || die "could not set up the Python venv in $VENV (needed for the report)"
RESULTS_DIR=${RESULTS_DIR:-$PERF_DIR/results}
mkdir -p "$RESULTS_DIR"
build_tree
build_images || die "could not write the images (see above)"
ensure_bench
install_reaper || die "could not compile perf/reaper.c"

# mirrorftpd's default --max-per-ip, from its --help: if the default-flags
# phase's sessions from one address exceed it, it is raised (and noted).
DEFAULT_MAX_PER_IP=$("$MIRRORFTPD_BIN" --help 2>/dev/null \
    | awk '/--max-per-ip/ { f = 1 } f && !done && /\[default: [0-9]+\]/ { sub(/.*\[default: /, ""); sub(/\].*/, ""); print; done = 1 }' || true)
MAX_PER_IP_NOTE="default --max-per-ip ${DEFAULT_MAX_PER_IP:-unknown} ≥ $SMALL_CONNS sessions: not raised"
if [[ $DEFAULT_MAX_PER_IP =~ ^[0-9]+$ ]] && ((SMALL_CONNS > DEFAULT_MAX_PER_IP)); then
    MIRRORFTPD_DEFAULTS_EXTRA="--max-per-ip $SMALL_CONNS"
    MAX_PER_IP_NOTE="--max-per-ip raised to $SMALL_CONNS: the default ($DEFAULT_MAX_PER_IP) refuses the bench's $SMALL_CONNS sessions from one address"
fi
export MIRRORFTPD_DEFAULTS_EXTRA

# Install everything while the package registries are reachable, then measure
# in a network namespace of its own with compare.sh's TCP settings (lib.sh,
# netns_tuned); the default-flags phase gets a fresh one per server.
if [[ -z ${MIRROR_IN_NETNS:-} ]]; then
    for s in "${SERVERS[@]}"; do "install_$s" || warn "$s could not be installed: it will be skipped"; done
    unshare --net true 2>/dev/null || die "cannot make a network namespace (unshare --net)"
    log "measuring in a new network namespace"
    MIRROR_IN_NETNS=1 exec unshare --net -- bash "$0" "${ORIG_ARGS[@]}"
fi
netns_tuned

rm -rf "$WORK_DIR"/mirror.??????
RUN_DIR=$(mktemp -d "$WORK_DIR/mirror.XXXXXX")
mkdir -p "$RUN_DIR/runs"
write_paths "$RUN_DIR"

START_TS=$(date +%s)
DATE=$(date +%F)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_WARNINGS=()

# run_defaults SERVER: the default-flags phase in a fresh namespace.
run_defaults() {
    local s=$1 base=$RUN_DIR/runs/$1.defaults pid rc=0
    MIRROR_IN_NETNS=1 timeout -k 5 $((2 * DEFAULTS_SECS + 2 * BENCH_SLACK_SECS)) \
        unshare --net -- bash "$0" "${ORIG_ARGS[@]}" --inner-defaults "$s" "$RUN_DIR" \
        > "$base.inner.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    if ((rc)) || [[ ! -f $base.meta ]] || grep -q '^skipped=' "$base.meta"; then
        show_logs "$base.inner.log"
        RUN_WARNINGS+=("$s defaults: failed (exit $rc; $(grep -m1 '^skipped=' "$base.meta" 2>/dev/null | cut -d= -f2-))")
        [[ -f $base.meta ]] || echo "rc=${rc:-1}" > "$base.meta"
    else
        cat "$base.inner.log" >&2
    fi
}

# ------------------------------------------------------------------ phases --
SERVE_MODE=plain
for s in "${SERVERS[@]}"; do
    for p in "${PHASES[@]}"; do [[ $p != defaults ]] && { start_server "$s"; break; }; done
done
n=0
for phase in "${PHASES[@]}"; do
    [[ $phase == defaults ]] && continue
    order=("${LIVE[@]}")
    # Reverse the order every other phase: no server always goes first.
    if ((n++ % 2)); then
        rev=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[i]}"); done; order=("${rev[@]}")
    fi
    log "phase $phase: ${order[*]}"
    for s in "${order[@]}"; do
        measure "$s" "$phase" "${PORT[$s]}" "${SPID[$s]}" "$RUN_DIR/runs/$s.$phase"
        if ! kill -0 "${SPID[$s]}" 2>/dev/null; then
            show_logs "$RUN_DIR/$s".*
            skip "$s" "died during the $phase phase (log printed above)"
            continue
        fi
        traced "$s" "$phase" "${PORT[$s]}" "${SPID[$s]}"
    done
done
for s in "${LIVE[@]}"; do stop_tree "${SPID[$s]}"; done
if [[ " ${PHASES[*]} " == *" defaults "* ]]; then
    log "phase defaults: ${SERVERS[*]}, each in a fresh network namespace (${DEFAULTS_SECS}s warm-up, ${DEFAULTS_SECS}s measured)"
    for s in "${SERVERS[@]}"; do
        [[ -z ${SKIPPED[$s]:-} ]] || continue
        run_defaults "$s"
    done
fi
ELAPSED=$(($(date +%s) - START_TS))

# ---------------------------------------------------------------- results --
STEM=$RESULTS_DIR/$DATE-mirror
if ((QUICK)); then STEM+=-quick; fi
if [[ -n $RESULTS_NAME ]]; then STEM=$RESULTS_DIR/$DATE-$RESULTS_NAME; fi
{
    echo "date=$(date -u '+%F %T UTC')"
    echo "command=$COMMAND_LINE"
    echo "cwd=$(pwd)"
    echo "quick=$QUICK"
    echo "duration=$DURATION"
    echo "defaults_secs=$DEFAULTS_SECS"
    echo "elapsed_secs=$ELAPSED"
    echo "load_start=$LOAD_START"
    echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nproc=$(nproc)"
    echo "cpu=$(cpu_model)"
    echo "ram=$(ram_gib)"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "disk=${DISK_DEV:-unknown} ($(findmnt -no FSTYPE -T "$TREE" 2>/dev/null || echo '?'))"
    echo "sysctl=$(sysctl_summary)"
    echo "sysctl_defaults=$(cat "$RUN_DIR/defaults.sysctl" 2>/dev/null || true)"
    echo "bench_bin=$BENCH_BIN"
    echo "bench_version=$("$BENCH_BIN" --version 2>/dev/null | head -n1) (commit $(repo_commit))"
    echo "bench_common=${COMMON_ARGS[*]}"
    echo "drop_caches=$DROP_CACHES"
    echo "strace=$STRACE"
    echo "cache_secs=$CACHE_SECS"
    echo "max_per_ip_note=$MAX_PER_IP_NOTE"
    for role in small big bigc list; do
        echo "cmd_$role=bench $(bench_args "$role" RUN_DIR "$DURATION")"
    done
    echo "small_paths=$SMALL_PATHS"
    echo "images=$IMAGE_COUNT"
    echo "cached_images=$CACHED_IMAGES"
    echo "phases=${PHASES[*]}"
    for s in "${SERVERS[@]}"; do
        echo "server=$s"
        echo "version_$s=${VERSION[$s]:-$("version_$s" 2>/dev/null || echo "$s")}"
        echo "note_$s=$(SERVE_MODE=plain "note_$s")"
        echo "note_defaults_$s=$(SERVE_MODE=defaults "note_$s")"
        echo "skipped_$s=${SKIPPED[$s]:-}"
    done
    for x in "${RUN_WARNINGS[@]}"; do echo "warning=$x"; done
} > "$RUN_DIR/meta.txt"

report_args=("$RUN_DIR" "$STEM")
((PLOTS)) || report_args+=(--no-plot)
"$PY" "$PERF_DIR/mirror_report.py" "${report_args[@]}" || die "mirror_report.py failed (raw runs in $RUN_DIR)"
echo >&2
cat "$STEM.md"
log "done in $((ELAPSED / 60))m$((ELAPSED % 60))s of measuring: $STEM.md"
