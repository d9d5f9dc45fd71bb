#!/usr/bin/env bash
# retr_curl.sh — one 1 GiB RETR with curl over loopback, vsftpd vs mirrorftpd.
#
# Usage: perf/retr_curl.sh [-n RUNS] [--only-vsftpd] [--no-ceiling]
#   -n, --runs RUNS   measured runs per server (default 3); servers alternate
#                     within each round, the order reversed every other round
#   --only-vsftpd     skip mirrorftpd (validate the harness before it exists)
#   --no-ceiling      skip the "python sendfile→recv_into loop" reference
# Environment:
#   MIRRORFTPD_BIN    default <repo>/target/release/mirrorftpd
#                     (build it first: cargo build --release)
#   VSFTPD_FTP_USER   unset: vsftpd runs with run_as_launching_user=YES (one
#                     process per session, no chroot, no system changes).
#                     Set to an existing user whose home directory exists
#                     (e.g. systemd-network) to run vsftpd in its normal
#                     privilege-separated + chroot mode as that user.
#
# vsftpd is never installed as a service: the Debian .deb (and libwrap0, which
# its binary links) is fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into perf/work/vsftpd/ (gitignored), then run in the
# foreground with a temporary config. All traffic is on 127.0.0.1, on ports
# picked free at start; every process started here is stopped by PID on exit.
#
# Prints a Markdown table (server, median MiB/s, min–max, ratio to mirrorftpd)
# and appends it, with date, kernel, nproc, CPU model and the command, to
# perf/results/retr_curl-<date>.md.
set -euo pipefail

readonly SIZE=1073741824                 # 1 GiB
readonly CURL_BUF=102400                 # curl(1)'s receive buffer (recvfrom size)
readonly WAIT_SECS=10                    # bounded wait for a server's port
readonly CURL_MAX_SECS=300               # bound one transfer
readonly PASV_MIN=50000 PASV_MAX=50999

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$PERF_DIR")
WORK_DIR=$PERF_DIR/work
TREE=$WORK_DIR/tree
BIG=$TREE/big.bin
VS_ROOT=$WORK_DIR/vsftpd/root
VS_BIN=$VS_ROOT/usr/sbin/vsftpd
VS_LIB=$VS_ROOT/usr/lib/x86_64-linux-gnu
MIRRORFTPD_BIN=${MIRRORFTPD_BIN:-$REPO_DIR/target/release/mirrorftpd}
VSFTPD_FTP_USER=${VSFTPD_FTP_USER:-}
COMMAND_LINE="$0${*:+ $*}"

RUNS=3
ONLY_VSFTPD=0
CEILING=1

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "retr_curl: error: $*" >&2; exit 1; }

while (($#)); do
    case $1 in
        -n|--runs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer"; RUNS=$2; shift 2 ;;
        --only-vsftpd) ONLY_VSFTPD=1; shift ;;
        --no-ceiling) CEILING=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for tool in curl python3 apt-get dpkg-deb awk; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# ---------------------------------------------------------------- cleanup --
PIDS=()
TMP=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    [[ -n $TMP ]] && rm -rf "$TMP"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup --
mkdir -p "$TREE" "$PERF_DIR/results"
TMP=$(mktemp -d "$WORK_DIR/run.XXXXXX")

if [[ ! -f $BIG || $(stat -c %s "$BIG") -ne $SIZE ]]; then
    echo "creating $BIG (1 GiB from /dev/urandom)..." >&2
    head -c "$SIZE" /dev/urandom > "$BIG.tmp"
    mv "$BIG.tmp" "$BIG"
fi
echo "hello from retr_curl" > "$TREE/hello.txt"

if [[ ! -x $VS_BIN ]]; then
    echo "fetching vsftpd (apt-get download + dpkg-deb -x, no service)..." >&2
    mkdir -p "$WORK_DIR/vsftpd/debs"
    (cd "$WORK_DIR/vsftpd/debs" && apt-get download vsftpd libwrap0 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) \
        || die "apt-get download vsftpd libwrap0 failed"
    for deb in "$WORK_DIR"/vsftpd/debs/*.deb; do dpkg-deb -x "$deb" "$VS_ROOT"; done
fi
if LD_LIBRARY_PATH=$VS_LIB ldd "$VS_BIN" | grep -q 'not found'; then
    LD_LIBRARY_PATH=$VS_LIB ldd "$VS_BIN" | grep 'not found' >&2
    die "vsftpd is missing a shared library: apt-get download its package into $WORK_DIR/vsftpd/debs and re-run"
fi
VS_VERSION=$(cd "$WORK_DIR/vsftpd" && ls debs/vsftpd_*.deb 2>/dev/null | sed 's/.*vsftpd_\(.*\)_.*/\1/' || true)

if ((! ONLY_VSFTPD)); then
    [[ -x $MIRRORFTPD_BIN ]] \
        || die "mirrorftpd binary not found at $MIRRORFTPD_BIN (run 'cargo build --release' in $REPO_DIR, set MIRRORFTPD_BIN, or pass --only-vsftpd)"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port NAME PID PORT LOG: bounded wait until 127.0.0.1:PORT accepts.
wait_port() {
    local name=$1 pid=$2 port=$3 log=$4 i
    for ((i = 0; i < WAIT_SECS * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $name log ($log) ---" >&2; cat "$log" >&2 || true
            die "$name (pid $pid) exited before accepting on 127.0.0.1:$port"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "--- $name log ($log) ---" >&2; cat "$log" >&2 || true
    die "$name did not accept on 127.0.0.1:$port within ${WAIT_SECS}s"
}

# check_serves NAME PORT LOG...: fetch hello.txt and compare before measuring.
check_serves() {
    local name=$1 port=$2 got f; shift 2
    if ! got=$(curl -sS --max-time 10 "ftp://127.0.0.1:$port/hello.txt" 2>&1) \
        || [[ $got != "hello from retr_curl" ]]; then
        echo "curl said: $got" >&2
        for f in "$@"; do echo "--- $f ---" >&2; cat "$f" >&2 2>/dev/null || true; done
        die "$name does not serve hello.txt on 127.0.0.1:$port"
    fi
}

# ---------------------------------------------------------------- servers --
declare -A PORT=()
SERVERS=()

start_vsftpd() {
    local port conf=$TMP/vsftpd.conf empty=$TMP/vsftpd-empty
    port=$(free_port)
    mkdir -p "$empty"; chmod 755 "$empty"
    {
        echo "listen=YES"
        echo "listen_ipv6=NO"
        echo "listen_address=127.0.0.1"
        echo "listen_port=$port"
        echo "background=NO"
        echo "anonymous_enable=YES"
        echo "local_enable=NO"
        echo "anon_root=$TREE"
        echo "no_anon_password=YES"
        echo "write_enable=NO"
        echo "pasv_enable=YES"
        echo "pasv_min_port=$PASV_MIN"
        echo "pasv_max_port=$PASV_MAX"
        echo "secure_chroot_dir=$empty"
        echo "use_sendfile=YES"
        echo "dirmessage_enable=NO"
        echo "xferlog_enable=YES"
        echo "vsftpd_log_file=$TMP/vsftpd.log"
        if [[ -n $VSFTPD_FTP_USER ]]; then
            getent passwd "$VSFTPD_FTP_USER" >/dev/null || die "VSFTPD_FTP_USER=$VSFTPD_FTP_USER does not exist"
            echo "run_as_launching_user=NO"
            echo "ftp_username=$VSFTPD_FTP_USER"
            echo "nopriv_user=$VSFTPD_FTP_USER"
        else
            # vsftpd looks ftp_username up even in this mode; Debian has no
            # 'ftp' user unless the package's postinst ran, 'nobody' exists.
            echo "run_as_launching_user=YES"
            echo "ftp_username=nobody"
            echo "nopriv_user=nobody"
        fi
    } > "$conf"
    LD_LIBRARY_PATH=$VS_LIB "$VS_BIN" "$conf" > "$TMP/vsftpd.out" 2>&1 &
    PIDS+=($!)
    wait_port vsftpd "$!" "$port" "$TMP/vsftpd.out"
    check_serves vsftpd "$port" "$TMP/vsftpd.out" "$TMP/vsftpd.log" "$conf"
    PORT[vsftpd]=$port
    SERVERS+=(vsftpd)
}

start_mirrorftpd() {
    local port
    port=$(free_port)
    "$MIRRORFTPD_BIN" --root "$TREE" --listen "127.0.0.1:$port" --allow-root > "$TMP/mirrorftpd.log" 2>&1 &
    PIDS+=($!)
    wait_port mirrorftpd "$!" "$port" "$TMP/mirrorftpd.log"
    check_serves mirrorftpd "$port" "$TMP/mirrorftpd.log"
    PORT[mirrorftpd]=$port
    SERVERS+=(mirrorftpd)
}

readonly CEIL_NAME="python sendfile→recv_into loop"

# One transfer of $BIG: a forked child os.sendfile()s it over a loopback TCP
# socket, the parent recv_into()s a reusable buffer of curl's size and
# discards it. Prints "<bytes/s> <bytes>" like curl's -w below.
ceiling_once() {
    python3 - "$BIG" "$CURL_BUF" <<'PY'
import os, signal, socket, sys, time
path, bufsize = sys.argv[1], int(sys.argv[2])
size = os.stat(path).st_size
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
ls.settimeout(30)                  # the sender never waits unboundedly
addr = ls.getsockname()
pid = os.fork()
if pid == 0:
    try:
        conn, _ = ls.accept()
        conn.settimeout(None)
        fd = os.open(path, os.O_RDONLY)
        off = 0
        while off < size:
            n = os.sendfile(conn.fileno(), fd, off, size - off)
            if n == 0:
                break
            off += n
        conn.close()
    finally:
        os._exit(0)
ls.close()
try:
    buf = bytearray(bufsize)
    view = memoryview(buf)
    t0 = time.perf_counter()
    s = socket.create_connection(addr)
    got = 0
    while True:
        n = s.recv_into(view)
        if n == 0:
            break
        got += n
    dt = time.perf_counter() - t0
    s.close()
except BaseException:
    os.kill(pid, signal.SIGTERM)
    raise
finally:
    os.waitpid(pid, 0)
print(f"{got / dt:.0f} {got}")
PY
}

start_vsftpd
((ONLY_VSFTPD)) || start_mirrorftpd
((CEILING)) && SERVERS+=("$CEIL_NAME")

# ---------------------------------------------------------------- measure --
declare -A SAMPLES=()
echo "measuring: ${SERVERS[*]} — $RUNS run(s) each, 1 GiB RETR over 127.0.0.1" >&2
for ((round = 1; round <= RUNS; round++)); do
    order=("${SERVERS[@]}")
    if ((round % 2 == 0)); then
        order=(); for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[i]}"); done
    fi
    for srv in "${order[@]}"; do
        cat "$BIG" > /dev/null            # the VM drops idle page cache: re-warm
        if [[ $srv == "$CEIL_NAME" ]]; then
            out=$(ceiling_once) || die "$srv failed"
        else
            out=$(curl -s --max-time "$CURL_MAX_SECS" -o /dev/null \
                -w '%{speed_download} %{size_download}\n' \
                "ftp://127.0.0.1:${PORT[$srv]}/big.bin") || {
                rc=$?; tail -n 20 "$TMP/$srv".{out,log} >&2 2>/dev/null || true
                die "$srv: curl exited $rc (run $round)"
            }
        fi
        read -r speed size <<< "$out"
        if [[ $size != "$SIZE" ]]; then
            tail -n 20 "$TMP/$srv".{out,log} >&2 2>/dev/null || true
            die "$srv: run $round got $size bytes, expected $SIZE"
        fi
        mibs=$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')
        SAMPLES[$srv]+="$mibs "
        printf '  run %d  %-32s %8s MiB/s\n' "$round" "$srv" "$mibs" >&2
    done
done

# ------------------------------------------------------------------ table --
# stats "a b c" -> "median min max"
stats() {
    tr ' ' '\n' <<< "$1" | awk 'NF' | sort -g | awk '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}
ref=""
if ((! ONLY_VSFTPD)); then read -r ref _ _ <<< "$(stats "${SAMPLES[mirrorftpd]}")"; fi

table=$(
    echo "| server | median MiB/s | min–max MiB/s | ratio to mirrorftpd |"
    echo "|---|---:|---:|---:|"
    for srv in "${SERVERS[@]}"; do
        read -r med lo hi <<< "$(stats "${SAMPLES[$srv]}")"
        name=$srv
        [[ $srv == vsftpd ]] && name="vsftpd ${VS_VERSION}"
        if [[ -n $ref ]]; then
            ratio=$(awk -v a="$med" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
        else
            ratio="n/a"
        fi
        echo "| $name | $med | $lo–$hi | $ratio |"
    done
)
echo
echo "$table"

# ---------------------------------------------------------------- archive --
now=$(date '+%Y-%m-%d %H:%M:%S %z')
result=$PERF_DIR/results/retr_curl-$(date +%F).md
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
[[ -n $cpu ]] || cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
vs_mode="run_as_launching_user=YES"
[[ -n $VSFTPD_FTP_USER ]] && vs_mode="privsep+chroot as $VSFTPD_FTP_USER"
{
    echo
    echo "## retr_curl — $now"
    echo
    echo "- kernel: $(uname -r); nproc: $(nproc); CPU: ${cpu:-unknown}"
    echo "- command: \`$(
        [[ $ONLY_VSFTPD == 0 ]] && printf 'MIRRORFTPD_BIN=%q ' "$MIRRORFTPD_BIN"
        [[ -n $VSFTPD_FTP_USER ]] && printf 'VSFTPD_FTP_USER=%q ' "$VSFTPD_FTP_USER"
        )$COMMAND_LINE\` (cwd $(pwd))"
    echo "- one 1 GiB RETR per run (\`curl -s -o /dev/null -w '%{speed_download} %{size_download}'\`, $(curl --version | head -n1 | cut -d' ' -f1-2)), $RUNS run(s) per server, alternating; page cache re-read before each run"
    echo "- vsftpd ${VS_VERSION:-?} (Debian .deb unpacked, use_sendfile=YES, $vs_mode)"
    ((ONLY_VSFTPD)) || echo "- mirrorftpd: $MIRRORFTPD_BIN (built $(date -r "$MIRRORFTPD_BIN" '+%F %T'))"
    ((CEILING)) && echo "- ceiling: python os.sendfile → recv_into a reusable ${CURL_BUF}-byte buffer (curl's recv size), forked sender, same loopback"
    raw=""; for srv in "${SERVERS[@]}"; do raw+="${raw:+; }$srv: ${SAMPLES[$srv]% }"; done
    echo "- raw MiB/s, in run order: $raw"
    echo
    echo "$table"
} >> "$result"
echo
echo "appended to $result"
