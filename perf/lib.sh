# lib.sh — shared pieces of the perf/ scripts: paths, process bookkeeping,
# port waits, fetching Debian packages without installing them, the test tree
# (and mirror.sh's images), the machine description, the run lock, the venv,
# server CPU time and the network namespace's settings. Source it; it defines functions and variables
# only and starts nothing.
#
# Conventions: every process a script starts goes into PIDS (stopped on exit,
# with the processes it forked, by PID only); every wait is bounded; all
# traffic is on 127.0.0.1 on ports picked free at start (never 21).

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$PERF_DIR")
WORK_DIR=$PERF_DIR/work                  # gitignored scratch
TREE=$WORK_DIR/tree
VENV=$WORK_DIR/venv
PY=$VENV/bin/python

readonly GIB=1073741824
readonly WAIT_PORT_SECS=10               # bounded wait for a server's port

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '%s WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '%s: error: %s\n' "${SCRIPT_NAME:-perf}" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes --
PIDS=()

# descendants PID: every live process below PID, deepest last.
descendants() {
    local -a queue=("$1") found=()
    local p kids
    while ((${#queue[@]})); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        kids=$(cat "/proc/$p/task/"*/children 2>/dev/null || true)
        for k in $kids; do found+=("$k"); queue+=("$k"); done
    done
    echo "${found[@]}"
}

# stop_tree PID: stop PID (a process this script started) and everything it
# forked: the parent first so it accepts nothing new, then the children.
stop_tree() {
    local pid=$1 kids k i
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(descendants "$pid")
    kill "$pid" 2>/dev/null || true
    for k in $kids; do kill "$k" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
    wait "$pid" 2>/dev/null || true
}

cleanup_pids() {
    local pid
    for pid in "${PIDS[@]}"; do stop_tree "$pid"; done
    PIDS=()
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port NAME PID PORT: bounded wait until 127.0.0.1:PORT accepts.
# Returns 1 (after saying why) if the process died or the port stayed shut.
wait_port() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < WAIT_PORT_SECS * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            warn "$name (pid $pid) exited before accepting on 127.0.0.1:$port"
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    warn "$name did not accept on 127.0.0.1:$port within ${WAIT_PORT_SECS}s"
    return 1
}

# show_logs FILE...: print the files (a failed server's logs) to stderr.
show_logs() {
    local f
    for f in "$@"; do
        [[ -e $f ]] || continue
        echo "----- $f -----" >&2
        tail -n 40 "$f" >&2 || true
    done
}

# ------------------------------------------------------------ Debian debs --
# installed PKG: is the Debian package installed on this machine?
installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# fetch_debs DIR PKG...: `apt-get download` PKG and every lib* package it
# needs (recursively) that is not installed here, into DIR/debs, and unpack
# them all into DIR/root with `dpkg-deb -x`. Nothing is installed, no
# maintainer script runs, no service starts. Skipped when DIR/.fetched
# names the same packages.
fetch_debs() {
    local dir=$1; shift
    local want="$*"
    [[ -f $dir/.fetched && $(cat "$dir/.fetched") == "$want" ]] && return 0
    mkdir -p "$dir/debs" "$dir/root"
    local -a queue=("$@") got=()
    local -A seen=()
    local p dep
    while ((${#queue[@]})); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        [[ -n ${seen[$p]:-} ]] && continue
        seen[$p]=1
        # The named packages always; their libraries only when missing here.
        if [[ " $want " != *" $p "* ]] && installed "$p"; then continue; fi
        got+=("$p")
        while read -r dep; do
            [[ $dep == lib* && -z ${seen[$dep]:-} ]] && queue+=("$dep")
        done < <(apt-cache depends "$p" 2>/dev/null \
                 | sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<> ]*\)$/\2/p')
    done
    log "apt-get download ${got[*]} (unpacked into $dir, not installed)"
    if ! (cd "$dir/debs" && apt-get download "${got[@]}") > "$dir/download.log" 2>&1; then
        show_logs "$dir/download.log"
        warn "apt-get download ${got[*]} failed (run 'apt-get update' first?)"
        return 1
    fi
    for p in "${got[@]}"; do
        ls "$dir/debs/${p}_"*.deb >/dev/null 2>&1 || { warn "apt-get download $p failed"; return 1; }
    done
    for p in "$dir"/debs/*.deb; do dpkg-deb -x "$p" "$dir/root"; done
    echo "$want" > "$dir/.fetched"
}

# deb_version DIR PKG: the version of the .deb fetched into DIR/debs.
deb_version() {
    local f
    f=$(ls "$1/debs/${2}_"*.deb 2>/dev/null | head -n1) || true
    [[ -n $f ]] && dpkg-deb -f "$f" Version
}

# missing_libs LIBDIR BIN: print the libraries BIN cannot find (none: empty).
missing_libs() {
    LD_LIBRARY_PATH=$1 ldd "$2" 2>&1 | grep 'not found' || true
}

# -------------------------------------------------------------- test tree --
# The tree every server serves, built once (a stamp file outside the tree
# says it is complete):
#   big.bin              1 GiB of random bytes
#   m64/f0.bin..f7.bin   8 distinct 64 MiB files (reused round-robin)
#   small/f00000.bin..   10,000 files of 4 KiB, in one directory
#   deep/d01/.../d20/    20 nested directories, a file at the bottom
#   ping.txt             what each server is checked with before measuring
readonly TREE_STAMP_VERSION=1
readonly SMALL_COUNT=10000 SMALL_SIZE=4096 M64_COUNT=8 DEEP_LEVELS=20
readonly PING_TEXT="mirrorftpd perf tree"

build_tree() {
    local stamp=$WORK_DIR/tree.stamp
    [[ -f $stamp && $(cat "$stamp") == "$TREE_STAMP_VERSION" ]] && return 0
    log "building the test tree in $TREE (about 1.6 GiB, once)"
    mkdir -p "$TREE"
    if [[ ! -f $TREE/big.bin || $(stat -c %s "$TREE/big.bin") -ne $GIB ]]; then
        head -c "$GIB" /dev/urandom > "$TREE/big.bin.tmp" && mv "$TREE/big.bin.tmp" "$TREE/big.bin"
    fi
    python3 - "$TREE" "$M64_COUNT" "$SMALL_COUNT" "$SMALL_SIZE" "$DEEP_LEVELS" <<'PY'
import os, sys
tree, m64, nsmall, small_size, levels = sys.argv[1], *map(int, sys.argv[2:])
def write(path, size):
    if os.path.isfile(path) and os.path.getsize(path) == size:
        return
    with open(path + ".tmp", "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 24)
            f.write(os.urandom(n))
            left -= n
    os.replace(path + ".tmp", path)
os.makedirs(f"{tree}/m64", exist_ok=True)
for i in range(m64):
    write(f"{tree}/m64/f{i}.bin", 64 << 20)
os.makedirs(f"{tree}/small", exist_ok=True)
for i in range(nsmall):
    write(f"{tree}/small/f{i:05d}.bin", small_size)
d = f"{tree}/deep"
for i in range(1, levels + 1):
    d += f"/d{i:02d}"
os.makedirs(d, exist_ok=True)
with open(f"{d}/bottom.txt", "w") as f:
    f.write("bottom\n")
PY
    echo "$PING_TEXT" > "$TREE/ping.txt"
    # Every server reads the tree as an unprivileged user (nobody, ftp).
    chmod -R a+rX "$TREE"
    echo "$TREE_STAMP_VERSION" > "$stamp"
}

# The mirror images (perf/mirror.sh): IMAGE_COUNT distinct 1 GiB files of
# random bytes, $TREE/images/img00.bin.., one per streaming session, 16 GiB
# in all: more than this 24 GiB VM's page cache holds beside everything
# else for long (and mirror.sh drops or evicts them before each disk phase).
# Built once (the stamp says they are complete); compare.sh never reads them.
readonly IMAGE_COUNT=16 IMAGE_DIR=images

build_images() {
    local stamp=$WORK_DIR/images.stamp dir=$TREE/$IMAGE_DIR i f need avail
    [[ -f $stamp && $(cat "$stamp") == "$IMAGE_COUNT" ]] && return 0
    need=$((IMAGE_COUNT + 2))            # GiB, with room to spare
    avail=$(df -P -BG "$TREE" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
    ((avail >= need)) || { warn "$TREE has ${avail} GiB free; the images need ${need} GiB"; return 1; }
    log "writing $IMAGE_COUNT x 1 GiB images into $dir (once; a few minutes)"
    mkdir -p "$dir"
    for ((i = 0; i < IMAGE_COUNT; i++)); do
        f=$(printf '%s/img%02d.bin' "$dir" "$i")
        [[ -f $f && $(stat -c %s "$f") -eq $GIB ]] && continue
        head -c "$GIB" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f" || return 1
    done
    chmod -R a+rX "$dir"
    sync
    echo "$IMAGE_COUNT" > "$stamp"
}
# image_paths: the images as the server shows them, one a line.
image_paths() {
    local i
    for ((i = 0; i < IMAGE_COUNT; i++)); do printf '/%s/img%02d.bin\n' "$IMAGE_DIR" "$i"; done
}

# warm FILE|DIR...: pull into the page cache (this VM drops idle cache
# within a minute, so call it right before each measured run).
warm() {
    local p
    for p in "$@"; do
        if [[ -d $p ]]; then
            find "$p" -type f -exec cat {} + > /dev/null
        else
            cat "$p" > /dev/null
        fi
    done
}

# evict FILE...: drop FILEs' pages from the page cache (posix_fadvise
# DONTNEED; their pages are clean and unmapped, so all of them go). Only these
# files: what other work on the machine has cached stays.
evict() {
    python3 -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)' "$@"
}

# cached_bytes FILE...: how many bytes of FILEs are in the page cache now.
cached_bytes() {
    fincore --bytes --noheadings --output RES "$@" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# disk_of PATH: the block device PATH is on, as named in /sys/class/block
# (empty when there is none, e.g. tmpfs or overlay).
disk_of() {
    local src dev
    src=$(findmnt -no SOURCE -T "$1" 2>/dev/null | head -n1) || return 0
    dev=$(basename "$(readlink -f "$src" 2>/dev/null || echo "$src")")
    [[ -r /sys/class/block/$dev/stat ]] && echo "$dev"
    return 0
}
# disk_read_bytes DEV: bytes read from DEV since boot (0 without DEV).
disk_read_bytes() {
    if [[ -n $1 ]]; then awk '{ printf "%.0f\n", $3 * 512 }' "/sys/class/block/$1/stat"; else echo 0; fi
}

# ---------------------------------------------------------------- machine --
cpu_model() {
    local cpu
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
    [[ -n $cpu ]] || cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    echo "${cpu:-unknown}"
}

ram_gib() {
    awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo
}

# repo_commit: the checked-out commit, read from .git without running git
# (in a worktree .git is a file naming the real git dir, whose commondir
# holds the refs).
repo_commit() {
    local git=$REPO_DIR/.git common head ref
    if [[ -f $git ]]; then
        git=$(sed -n 's/^gitdir: //p' "$git")
        [[ $git == /* ]] || git=$REPO_DIR/$git
    fi
    common=$git
    if [[ -f $git/commondir ]]; then
        common=$(cat "$git/commondir")
        [[ $common == /* ]] || common=$git/$common
    fi
    head=$(cat "$git/HEAD" 2>/dev/null) || { echo unknown; return; }
    if [[ $head == ref:* ]]; then
        ref=${head#ref: }
        if [[ -f $common/$ref ]]; then
            cut -c1-12 "$common/$ref"
        else
            awk -v r="$ref" '$2 == r { print substr($1, 1, 12) }' "$common/packed-refs" 2>/dev/null
        fi
    else
        echo "${head:0:12}"
    fi
}

# ------------------------------------------------------- shared run setup --
# take_lock: one perf run at a time (compare.sh, mirror.sh): two would
# measure each other. The descriptor (9) stays open for the script's life
# and is inherited by a re-executed run in a network namespace.
take_lock() {
    mkdir -p "$WORK_DIR"
    exec 9> "$WORK_DIR/perf.lock"
    flock -n 9 || die "another perf run (compare.sh or mirror.sh) is running (lock $WORK_DIR/perf.lock)"
}

# setup_venv: perf/work/venv with pyftpdlib and matplotlib (pip), once.
setup_venv() {
    if [[ ! -x $PY ]]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            log "apt-get install python3-venv"
            apt-get install -y -q python3-venv >&2 || return 1
        fi
        log "creating $VENV"
        python3 -m venv "$VENV" || return 1
    fi
    "$PY" -c 'import pyftpdlib, matplotlib' 2>/dev/null && return 0
    log "pip install pyftpdlib matplotlib (into $VENV)"
    "$PY" -m pip install -q pyftpdlib matplotlib >&2
}


# server_cpu PID: CPU seconds of the process tree under PID so far.
server_cpu() { "$PY" "$PERF_DIR/procstat.py" --no-mem "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["cpu_secs"])'; }
# server_cpu_io PID: "CPU-seconds read-bytes" of the process tree under PID
# so far (read-bytes: what it made the kernel read from storage).
server_cpu_io() { "$PY" "$PERF_DIR/procstat.py" --no-mem "$1" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["cpu_secs"], j.get("read_bytes", 0))'; }

# The TCP settings of the network namespace compare.sh (and mirror.sh, for
# all but its default-settings phase) measures in: every RETR leaves a
# TIME_WAIT socket on the server's passive port, and tcp_max_tw_buckets caps
# them for every server alike, so no server pays for the one before.
readonly TW_BUCKETS=4096                 # TIME_WAIT sockets kept in the namespace

# netns_tuned: in a new network namespace: loopback up, the sysctls above.
netns_tuned() {
    ip link set lo up || die "cannot bring up lo in the new network namespace"
    sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_max_tw_buckets="$TW_BUCKETS" \
        net.ipv4.tcp_tw_reuse=1 || warn "could not set the namespace's TCP sysctls"
}

# sysctl_summary: the TCP settings that matter here, on one line.
sysctl_summary() {
    local k
    for k in net.ipv4.ip_local_port_range net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_tw_reuse \
            net.core.somaxconn net.ipv4.tcp_syncookies; do
        printf '%s=%s ' "${k#net.*.}" "$(sysctl -n "$k" 2>/dev/null | tr '\t' ' ')"
    done
}
