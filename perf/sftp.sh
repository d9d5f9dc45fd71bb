#!/usr/bin/env bash
# sftp.sh — mirrorftpd's SFTP (--sftp-listen) against OpenSSH's sshd with
# internal-sftp, the benchmark of issue 12: single-session get and put of
# 1 GiB, 8 sessions x 64 MiB get, server CPU per GiB, and the memory of
# idle logged-in SFTP sessions. Writes results/<date>-sftp.md and .jsonl.
#
# Usage: perf/sftp.sh [--quick] [--runs N] [--idle N] [--size-mib M]
#                     [--cipher NAME] [--name NAME]
#   --quick        1 run, 256 MiB single-session files, 100 idle sessions
#   --runs N       runs of each transfer per server (default 3; median kept)
#   --idle N       idle sessions held (default 1000)
#   --size-mib M   size of the single-session get/put (default 1024)
#   --cipher NAME  chacha20-poly1305@openssh.com (default) or aes256-ctr
#                  (then with hmac-sha2-256): the only ciphers both offer
#   --name NAME    results/<date>-NAME.{md,jsonl} (default sftp)
#   --workloads L  some of get,put,get8,idle (default all)
# Environment: MIRRORFTPD_BIN, RESULTS_DIR, SSHD_BIN (default /usr/sbin/sshd).
#
# Run as root. Both servers listen on free 127.0.0.1 ports, under
# perf/reaper.c (sshd forks two processes per session: all are counted),
# and are stopped by PID on exit. sshd runs from a temporary config (its own
# Ed25519 host key, pubkey login as root through a temporary
# AuthorizedKeysFile, `Subsystem sftp internal-sftp`); openssh-server is
# installed with apt-get when missing (its service is not started here).
set -euo pipefail
SCRIPT_NAME=sftp.sh
ORIG_ARGS="$*"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$PERF_DIR/servers.sh"            # compile/REAPER, MIRRORFTPD_BIN

WORKLOADS=get,put,get8,idle RUNS=3 IDLE=1000 SIZE_MIB=1024 CIPHER=chacha20-poly1305@openssh.com NAME=sftp QUICK=0
C8_SESSIONS=8 C8_MIB=64
SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
IDLE_PARALLEL=8                          # idle sessions set up at a time
IDLE_SETUP_SECS=600                      # bounded wait for them all
SETTLE_SECS=5                            # bounded wait for a server's sessions to end
while (($#)); do
    case $1 in
        --quick) QUICK=1 RUNS=1 IDLE=100 SIZE_MIB=256 ;;
        --runs) RUNS=$2; shift ;;
        --idle) IDLE=$2; shift ;;
        --size-mib) SIZE_MIB=$2; shift ;;
        --cipher) CIPHER=$2; shift ;;
        --name) NAME=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $CIPHER in
    chacha20-poly1305@openssh.com) MACS=hmac-sha2-256 ;;
    aes256-ctr) MACS=hmac-sha2-256 ;;
    *) die "--cipher: chacha20-poly1305@openssh.com or aes256-ctr (what both servers offer)" ;;
esac
((EUID == 0)) || die "run as root (sshd needs it)"

# ------------------------------------------------------------------ setup --
take_lock
trap 'cleanup_pids; rm -rf "${SHM_UP:-}" "${RUN:-}"' EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ ! -x $SSHD_BIN ]]; then
    log "apt-get install openssh-server (its service is not started: sshd runs from a temp config)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >&2 || die "could not install openssh-server"
fi
for tool in sftp ssh-keygen openssl gcc python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install it)"
done
if [[ ! -x $MIRRORFTPD_BIN ]] || ! "$MIRRORFTPD_BIN" --help 2>/dev/null | grep -q -- '--sftp-listen'; then
    log "cargo build --release (no mirrorftpd with --sftp-listen at $MIRRORFTPD_BIN)"
    (cd "$REPO_DIR" && cargo build --release >&2) || die "cargo build --release failed"
fi
install_reaper || die "could not compile perf/reaper.c"
if ! "$PY" -c 'import paramiko' 2>/dev/null; then
    [[ -x $PY ]] || python3 -m venv "$VENV" || die "could not create $VENV"
    log "pip install paramiko (into $VENV, for the idle sessions)"
    "$PY" -m pip install -q paramiko >&2 || die "pip install paramiko failed"
fi
build_tree
RESULTS_DIR=${RESULTS_DIR:-$PERF_DIR/results}
mkdir -p "$RESULTS_DIR"

RUN=$(mktemp -d "$WORK_DIR/sftp.XXXXXX")
SHM_UP=$(mktemp -d /dev/shm/mirrorftpd-perf-sftp.XXXXXX)   # uploads land in RAM, not on the disk
chown 65534:65534 "$SHM_UP"; chmod 755 "$SHM_UP"
KEY=$RUN/client_key
ssh-keygen -q -t ed25519 -N '' -C sftpbench -f "$KEY"
ssh-keygen -q -t ed25519 -N '' -C sshd -f "$RUN/sshd_host_key"
cp "$KEY.pub" "$RUN/authorized_keys"
mkdir -p "$RUN/keys"
cp "$KEY.pub" "$RUN/keys/get.keys"; cp "$KEY.pub" "$RUN/keys/put.keys"
hash=$(openssl passwd -6 -salt saltsalt unused-password)
printf 'get:%s:%s:readonly\nput:%s:%s:all\n' "$hash" "$TREE" "$hash" "$SHM_UP" > "$RUN/users"
chmod -R a+rX "$RUN"; chmod 600 "$KEY" "$RUN/sshd_host_key"

SSH_OPTS=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR
          -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -c "$CIPHER" -o "MACs=$MACS")

# ----------------------------------------------------------------- servers --
declare -A SPID SPORT SUSER_GET SUSER_PUT SGET SGET8 SPUT SVERSION
SERVERS=(mirrorftpd sshd)

start_sshd() {
    local port; port=$(free_port)
    mkdir -p /run/sshd && chmod 755 /run/sshd        # its privilege-separation directory
    cat > "$RUN/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $RUN/sshd_host_key
PidFile none
PermitRootLogin prohibit-password
AuthorizedKeysFile $RUN/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 4000:30:4000
MaxSessions 10
LoginGraceTime 120
ClientAliveInterval 0
Ciphers chacha20-poly1305@openssh.com,aes256-ctr
MACs hmac-sha2-256
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
    "$SSHD_BIN" -t -f "$RUN/sshd_config" 2> "$RUN/sshd.out" || { show_logs "$RUN/sshd.out"; return 1; }
    "$REAPER" "$SSHD_BIN" -D -e -f "$RUN/sshd_config" >> "$RUN/sshd.out" 2>&1 &
    SPID[sshd]=$!; PIDS+=("$!"); SPORT[sshd]=$port
    SUSER_GET[sshd]=root SUSER_PUT[sshd]=root
    SGET[sshd]=$TREE/big.bin SPUT[sshd]=$SHM_UP/up.bin SGET8[sshd]=$TREE/m64
    SVERSION[sshd]=$("$SSHD_BIN" -V 2>&1 | head -n1 || true)
    [[ -n ${SVERSION[sshd]} ]] || SVERSION[sshd]=$(ssh -V 2>&1)
    wait_port sshd "$!" "$port"
}

start_mirrorftpd() {
    local port; port=$(free_port)
    "$REAPER" "$MIRRORFTPD_BIN" --root "$TREE" --listen "127.0.0.1:$(free_port)" \
        --sftp-listen "127.0.0.1:$port" --sftp-host-key "$RUN/mirrorftpd_host_key" \
        --users "$RUN/users" --authorized-keys "$RUN/keys" \
        --max-clients 20000 --max-per-ip 20000 --quiet > "$RUN/mirrorftpd.out" 2>&1 &
    SPID[mirrorftpd]=$!; PIDS+=("$!"); SPORT[mirrorftpd]=$port
    SUSER_GET[mirrorftpd]=get SUSER_PUT[mirrorftpd]=put
    SGET[mirrorftpd]=/big.bin SPUT[mirrorftpd]=/up.bin SGET8[mirrorftpd]=/m64
    SVERSION[mirrorftpd]="mirrorftpd $("$MIRRORFTPD_BIN" --version 2>&1 | head -n1) (commit $(repo_commit))"
    wait_port mirrorftpd "$!" "$port"
}

# procs S: processes in server S's tree (reaper excluded).
procs() { "$PY" "$PERF_DIR/procstat.py" --no-mem --skip-root "${SPID[$1]}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["procs"])'; }
# settle S N: bounded wait until S's tree is back to N processes (sshd's
# session processes have exited and been reaped, so their CPU is counted).
settle() {
    local i
    for ((i = 0; i < SETTLE_SECS * 10; i++)); do
        (($(procs "$1") <= $2)) && return 0
        sleep 0.1
    done
    warn "$1 still has $(procs "$1") processes (expected $2) ${SETTLE_SECS}s after the run"
}

# sftp_batch S USER BATCHFILE [TIMEFILE]: one OpenSSH sftp session running
# BATCHFILE; its CPU time (sftp and its ssh: user+sys seconds) into TIMEFILE.
sftp_batch() {
    /usr/bin/time -f '%U %S' -o "${4:-/dev/null}" \
        sftp -q -b "$3" -P "${SPORT[$1]}" "${SSH_OPTS[@]}" "$2@127.0.0.1" > /dev/null 2>> "$RUN/client.err"
}

JSONL=$RUN/results.jsonl
now() { date +%s.%N; }

# measure S WORKLOAD RUN: one timed transfer; appends a JSON line.
measure() {
    local s=$1 w=$2 r=$3 base procs0 cpu0 cpu1 t0 t1 bytes ok=1 i
    local -a pids=()
    base=$(procs "$s")
    case $w in
        get) warm "$GET_SRC"
             printf 'get %s /dev/null\n' "${SGET[$s]}" > "$RUN/batch"
             bytes=$((SIZE_MIB << 20)) ;;
        put) warm "$RUN/up.src"; rm -f "$SHM_UP/up.bin"
             printf 'put %s %s\n' "$RUN/up.src" "${SPUT[$s]}" > "$RUN/batch"
             bytes=$((SIZE_MIB << 20)) ;;
        get8) warm "$TREE/m64"
              for ((i = 0; i < C8_SESSIONS; i++)); do
                  printf 'get %s/f%d.bin /dev/null\n' "${SGET8[$s]}" $((i % M64_COUNT)) > "$RUN/batch$i"
              done
              bytes=$((C8_SESSIONS * C8_MIB << 20)) ;;
    esac
    rm -f "$RUN"/ctime.*
    cpu0=$(server_cpu "${SPID[$s]}")
    t0=$(now)
    case $w in
        get) sftp_batch "$s" "${SUSER_GET[$s]}" "$RUN/batch" "$RUN/ctime.0" || ok=0 ;;
        put) sftp_batch "$s" "${SUSER_PUT[$s]}" "$RUN/batch" "$RUN/ctime.0" || ok=0 ;;
        get8) for ((i = 0; i < C8_SESSIONS; i++)); do
                  sftp_batch "$s" "${SUSER_GET[$s]}" "$RUN/batch$i" "$RUN/ctime.$i" & pids+=("$!")
              done
              for i in "${pids[@]}"; do wait "$i" || ok=0; done ;;
    esac
    t1=$(now)
    settle "$s" "$base"
    cpu1=$(server_cpu "${SPID[$s]}")
    if [[ $w == put ]]; then
        [[ -f $SHM_UP/up.bin && $(stat -c %s "$SHM_UP/up.bin") -eq $bytes ]] || ok=0
        rm -f "$SHM_UP/up.bin"
    fi
    ((ok)) || { warn "$s $w run $r failed"; show_logs "$RUN/client.err" "$RUN/$s.out"; }
    python3 -c 'import json,sys
s,w,r,ok,b,t0,t1,c0,c1,*ct = sys.argv[1:]
secs = float(t1) - float(t0)
client = 0.0
for f in ct:
    try:
        client += sum(float(x) for x in open(f).read().split()[-2:])
    except (OSError, ValueError):
        pass
print(json.dumps({"server": s, "workload": w, "run": int(r), "ok": ok == "1", "bytes": int(b),
    "secs": round(secs, 3), "mib_s": round(int(b) / 1048576 / secs, 1),
    "cpu_secs": round(float(c1) - float(c0), 3), "client_cpu_secs": round(client, 3)}))' \
        "$s" "$w" "$r" "$ok" "$bytes" "$t0" "$t1" "$cpu0" "$cpu1" "$RUN"/ctime.* >> "$JSONL"
    log "$s $w run $r: $(tail -n1 "$JSONL")"
}

# memstat S: procstat.py's JSON for S's tree (reaper's own memory left out).
memstat() { "$PY" "$PERF_DIR/procstat.py" --skip-root "${SPID[$1]}"; }

# idle S: hold $IDLE logged-in sessions, sample memory three times (the
# middle one is kept), release them; appends a JSON line.
idle() {
    local s=$1 before line i samples=() cpid
    before=$(memstat "$s")
    "$PY" "$PERF_DIR/sftp_idle.py" 127.0.0.1 "${SPORT[$s]}" "${SUSER_GET[$s]}" "$KEY" "$IDLE" \
        --cipher "$CIPHER" --parallel "$IDLE_PARALLEL" < /dev/null > "$RUN/idle-$s.out" 2> "$RUN/idle-$s.err" &
    cpid=$!; PIDS+=("$cpid")
    for ((i = 0; i < IDLE_SETUP_SECS; i++)); do   # the client prints its line once all are set up
        [[ -s $RUN/idle-$s.out ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 1
    done
    line=$(head -n1 "$RUN/idle-$s.out" 2>/dev/null || true)
    [[ -n $line ]] || { show_logs "$RUN/idle-$s.err"; warn "$s: the idle client printed nothing"; line='{"held":0,"failed":0}'; }
    sleep 2
    for i in 1 2 3; do samples+=("$(memstat "$s")"); sleep 1; done
    kill -TERM "$cpid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    stop_tree "$cpid"
    settle "$s" "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["procs"])' "$before")"
    python3 - "$s" "$IDLE" "$line" "$before" "${samples[@]}" >> "$JSONL" <<'PY'
import json, sys
s, n, client, before, *samples = sys.argv[1:]
client, before = json.loads(client), json.loads(before)
samples = sorted((json.loads(x) for x in samples), key=lambda j: j["pss_kib"])
mid = samples[len(samples) // 2]
held = max(client.get("held", 0), 1)
print(json.dumps({"server": s, "workload": "idle", "sessions": int(n), "client": client,
    "before": before, "held": mid, "procs_per_session": round((mid["procs"] - before["procs"]) / held, 2),
    "rss_kib_per": round((mid["rss_kib"] - before["rss_kib"]) / held, 1),
    "pss_kib_per": round((mid["pss_kib"] - before["pss_kib"]) / held, 1)}))
PY
    log "$s idle: $(tail -n1 "$JSONL" | cut -c1-300)"
    [[ $(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("failed", 1))' "$line") == 0 ]] \
        || { warn "$s: some idle sessions failed"; tail -n 5 "$RUN/idle-$s.err" >&2 || true; }
}

# ------------------------------------------------------------------- run --
# The upload source: the first SIZE_MIB of big.bin (the whole of it at 1 GiB).
if ((SIZE_MIB == 1024)); then ln -s "$TREE/big.bin" "$RUN/up.src"; else head -c $((SIZE_MIB << 20)) "$TREE/big.bin" > "$RUN/up.src"; fi
GET_SRC=$TREE/big.bin
if ((SIZE_MIB != 1024)); then
    # get reads the same prefix: a file of that size in the tree
    GET_SRC=$TREE/sftp-get.bin
    head -c $((SIZE_MIB << 20)) "$TREE/big.bin" > "$GET_SRC"; chmod 644 "$GET_SRC"
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for s in "${SERVERS[@]}"; do
    "start_$s" || { show_logs "$RUN/$s.out"; die "$s did not start"; }
    ((SIZE_MIB == 1024)) || { [[ $s == sshd ]] && SGET[$s]=$TREE/sftp-get.bin || SGET[$s]=/sftp-get.bin; }
    # a first login checks the whole path (keys, cipher, subsystem) before measuring
    echo pwd > "$RUN/batch"
    sftp_batch "$s" "${SUSER_GET[$s]}" "$RUN/batch" || { show_logs "$RUN/client.err" "$RUN/$s.out"; die "sftp to $s failed"; }
done
log "servers: mirrorftpd pid ${SPID[mirrorftpd]} port ${SPORT[mirrorftpd]}, sshd pid ${SPID[sshd]} port ${SPORT[sshd]}; cipher $CIPHER"

# Runs of the two servers interleave, in reverse order every other round.
order=("${SERVERS[@]}")
for ((r = 1; r <= RUNS; r++)); do
    for w in get put get8; do
        [[ ,$WORKLOADS, == *,$w,* ]] || continue
        for s in "${order[@]}"; do measure "$s" "$w" "$r"; done
    done
    order=("${order[1]}" "${order[0]}")
done
if [[ ,$WORKLOADS, == *,idle,* ]]; then for s in "${SERVERS[@]}"; do idle "$s"; done; fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)
rm -f "$TREE/sftp-get.bin"

# ---------------------------------------------------------------- report --
stem=$RESULTS_DIR/$(date -u +%Y-%m-%d)-$NAME
{
    python3 -c 'import json,sys
k = "started cpu ram load0 load1 cipher macs runs size_mib c8 idle quick mirrorftpd sshd client cmd".split()
print(json.dumps({"meta": dict(zip(k, sys.argv[1:]))}))' "$started" "$(cpu_model) ($(nproc) CPUs)" "$(ram_gib)" \
        "$load0" "$load1" "$CIPHER" "$MACS" "$RUNS" "$SIZE_MIB" "${C8_SESSIONS}x${C8_MIB}" "$IDLE" "$QUICK" \
        "${SVERSION[mirrorftpd]}" "${SVERSION[sshd]}" "$(ssh -V 2>&1)" "perf/sftp.sh ${ORIG_ARGS:-}"
    cat "$JSONL"
} > "$stem.jsonl"
python3 "$PERF_DIR/sftp_report.py" "$stem.jsonl" > "$stem.md"
cat "$stem.md"
log "wrote $stem.md and $stem.jsonl"
