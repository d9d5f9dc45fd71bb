# servers.sh — how perf/compare.sh and perf/mirror.sh install, configure and
# start each FTP server (start_server, at the end, does it all and checks the
# result). Source after lib.sh. For each NAME in ALL_SERVERS:
#   install_NAME            fetch/build what it needs (idempotent); non-zero
#                           return = cannot be had, the server is skipped
#   launch_NAME PORT DIR    write its config into DIR, start it in the
#                           background on 127.0.0.1:PORT serving $(serve_root)
#                           read-only to anonymous, under perf/reaper.c (so
#                           the tree below LAUNCHED_PID holds all of its
#                           processes, orphans too); stdout and stderr go to
#                           DIR/NAME.out
#   version_NAME            one line for the results header
#   note_NAME               how it was configured, for the results header
# Every server gets room for 20,000 sessions (the idle test holds 10,000),
# logs as little as it can (transfer logs off, like mirrorftpd --quiet), and
# uses sendfile where it has the choice. None is installed as a package or a
# service: the Debian ones are unpacked from their .deb into perf/work.
#
# SERVE_MODE (set by compare.sh before each launch) picks the configuration:
#   plain    the tree read-only to anonymous (every classic workload)
#   upload   $UPLOAD_ROOT instead of the tree, with $UPLOAD_ROOT/incoming
#            writable: anonymous uploads for the peers, the account
#            $UPLOAD_USER (a --users file) for mirrorftpd. Servers in
#            STOR_SERVERS only.
#   upload_shm  the same with UPLOAD_ROOT on tmpfs ($UPLOAD_SHM_ROOT):
#            uploads without the disk's write-back in the way.
#   tls      plain, plus explicit FTPS (AUTH TLS) with the self-signed
#            P-256 certificate in $TLS_DIR, TLS optional (plain clients are
#            still served, so the plain counterpart runs against the same
#            process). Servers in TLS_SERVERS only.
#   defaults plain, but mirrorftpd with nothing beyond what the README's
#            first command gives: --root and --listen (plus the words in
#            MIRRORFTPD_DEFAULTS_EXTRA, which mirror.sh sets only when its
#            sessions from one address exceed the default --max-per-ip);
#            default logging (to stderr, into DIR/mirrorftpd.out), and as
#            root it drops to nobody. The peers are as in plain (none of
#            them is given a passive port range in any mode).

readonly ALL_SERVERS="mirrorftpd vsftpd proftpd pure-ftpd pyftpdlib unftp ref"
readonly MAX_SESSIONS=20000
readonly ANON_USER=anonymous ANON_PASS=bench@example.org
readonly STOR_SERVERS="mirrorftpd vsftpd proftpd pure-ftpd pyftpdlib"
readonly TLS_SERVERS="mirrorftpd vsftpd proftpd"
readonly UPLOAD_USER=bench UPLOAD_PASS=secret     # mirrorftpd's upload account
SERVE_MODE=plain
UPLOAD_DISK_ROOT=$WORK_DIR/upload        # upload mode's root; incoming/ is written
UPLOAD_SHM_ROOT=/dev/shm/mirrorftpd-perf-upload   # upload_shm mode's (tmpfs)
UPLOAD_ROOT=$UPLOAD_DISK_ROOT            # compare.sh sets it per phase
MIRRORFTPD_DEFAULTS_EXTRA=""             # defaults mode: extra mirrorftpd flags (words)
TLS_DIR=$WORK_DIR/tls                    # cert.pem, key.pem (self-signed P-256)
PRO_CRYPTO_DIR=$WORK_DIR/proftpd-crypto  # proftpd-mod-crypto (mod_tls.so)

MIRRORFTPD_BIN=${MIRRORFTPD_BIN:-$REPO_DIR/target/release/mirrorftpd}
VS_DIR=$WORK_DIR/vsftpd                  # shared with retr_curl.sh
PRO_DIR=$WORK_DIR/proftpd
PURE_DIR=$WORK_DIR/pure-ftpd
UNFTP_DIR=$WORK_DIR/unftp
NSSW_DIR=$WORK_DIR/nss-wrapper
REF_BIN=$WORK_DIR/sendfile_ref
REAPER=$WORK_DIR/reaper
LAUNCHED_PID=""

# compile PROG: build perf/PROG.c into perf/work/PROG when it changed.
compile() {
    local bin=$WORK_DIR/$1 src=$PERF_DIR/$1.c
    [[ -x $bin && $bin -nt $src ]] && return 0
    gcc -O2 -Wall -o "$bin" "$src"
}
install_reaper() { compile reaper; }

# serve_root: the directory served in the current SERVE_MODE.
serve_root() { if [[ $SERVE_MODE == upload* ]]; then echo "$UPLOAD_ROOT"; else echo "$TREE"; fi; }

# prepare_upload_root: $UPLOAD_ROOT (root-owned, 755, with ping.txt) and an
# empty incoming/ owned by uid 65534 (nobody, and 'ftp' in the passwd files
# below), which is who every peer writes as. vsftpd refuses a chroot root
# the session user could write to, hence the extra level.
prepare_upload_root() {
    mkdir -p "$UPLOAD_ROOT/incoming"
    echo "$PING_TEXT" > "$UPLOAD_ROOT/ping.txt"
    chmod 755 "$UPLOAD_ROOT"; chmod 644 "$UPLOAD_ROOT/ping.txt"
    clean_uploads
    chown 65534:65534 "$UPLOAD_ROOT/incoming"; chmod 755 "$UPLOAD_ROOT/incoming"
}
# clean_uploads: delete what the last upload run wrote (64 MiB files, GBs).
clean_uploads() { find "$UPLOAD_ROOT/incoming" -mindepth 1 -delete 2>/dev/null || true; }

# make_tls_cert: a self-signed P-256 certificate for 127.0.0.1, made once.
make_tls_cert() {
    [[ -s $TLS_DIR/cert.pem && -s $TLS_DIR/key.pem ]] && return 0
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2> "$TLS_DIR/openssl.log" \
        || { show_logs "$TLS_DIR/openssl.log"; return 1; }
    chmod 600 "$TLS_DIR/key.pem"
}

# The Debian servers serve anonymous FTP from the home directory of the
# system user 'ftp', which this machine lacks (the packages' postinst would
# add it). Rather than add a user to the machine, libnss-wrapper (preloaded)
# gives just those processes a passwd/group file where 'ftp' is uid 65534
# with the tree as its home.
install_nss_wrapper() {
    fetch_debs "$NSSW_DIR" libnss-wrapper && [[ -f $NSSW_DIR/root/usr/lib/x86_64-linux-gnu/libnss_wrapper.so ]]
}
# with_ftp_user DIR CMD...: run CMD with an 'ftp' user whose home is
# $(serve_root) (the tree; the upload root in upload mode).
with_ftp_user() {
    local dir=$1; shift
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
        "ftp:x:65534:65534:ftp:$(serve_root):/usr/sbin/nologin" > "$dir/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$dir/group"
    LD_PRELOAD=$NSSW_DIR/root/usr/lib/x86_64-linux-gnu/libnss_wrapper.so \
        NSS_WRAPPER_PASSWD=$dir/passwd NSS_WRAPPER_GROUP=$dir/group "$@"
}

# ------------------------------------------------------------- mirrorftpd --
install_mirrorftpd() {
    if [[ ! -x $MIRRORFTPD_BIN ]]; then
        log "building mirrorftpd (cargo build --release)"
        (cd "$REPO_DIR" && cargo build --release) >&2 || return 1
    fi
    [[ -x $MIRRORFTPD_BIN ]]
}
launch_mirrorftpd() {
    local -a extra=()
    if [[ $SERVE_MODE == defaults ]]; then
        # shellcheck disable=SC2086  # a word list by design
        "$REAPER" "$MIRRORFTPD_BIN" --root "$TREE" --listen "127.0.0.1:$1" $MIRRORFTPD_DEFAULTS_EXTRA \
            > "$2/mirrorftpd.out" 2>&1 &
        LAUNCHED_PID=$!
        return 0
    fi
    case $SERVE_MODE in
        upload*)
            # An account with every permission, home = the upload root.
            printf '%s:%s:%s:all\n' "$UPLOAD_USER" \
                "$(openssl passwd -6 -salt saltsalt "$UPLOAD_PASS")" "$UPLOAD_ROOT" > "$2/mirrorftpd.users"
            extra=(--users "$2/mirrorftpd.users") ;;
        tls) extra=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem") ;;
    esac
    # --allow-root: as before the root policy (the upload root belongs to root).
    "$REAPER" "$MIRRORFTPD_BIN" --root "$(serve_root)" --listen "127.0.0.1:$1" --quiet --allow-root \
        --max-per-ip "$MAX_SESSIONS" --max-clients "$MAX_SESSIONS" "${extra[@]}" > "$2/mirrorftpd.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_mirrorftpd() {
    echo "$("$MIRRORFTPD_BIN" --version 2>/dev/null) (commit $(repo_commit), binary built $(date -r "$MIRRORFTPD_BIN" '+%F %T'))"
}
note_mirrorftpd() {
    case $SERVE_MODE in
        upload*) echo "plus \`--users FILE\` with \`$UPLOAD_USER:<openssl passwd -6 hash>:UPLOAD_ROOT:all\`; the bench logs in as $UPLOAD_USER (the peers: anonymous)" ;;
        tls) echo "plus \`--tls-cert cert.pem --tls-key key.pem\` (self-signed P-256; TLS optional, default \`--tls-session-reuse preferred\`)" ;;
        defaults) echo "default flags: \`--root TREE --listen 127.0.0.1:PORT${MIRRORFTPD_DEFAULTS_EXTRA:+ $MIRRORFTPD_DEFAULTS_EXTRA}\` (default logging to stderr, into a file; as root it drops to nobody)" ;;
        *) echo "\`--quiet --max-per-ip $MAX_SESSIONS --max-clients $MAX_SESSIONS\`, default workers (one per CPU)" ;;
    esac
}

# ensure_bench: the load generator ($BENCH_BIN bench) must work before
# anything is measured; the default one is built when missing.
ensure_bench() {
    if ! "$BENCH_BIN" bench --help >/dev/null 2>&1; then
        if [[ $BENCH_BIN == "$MIRRORFTPD_BIN" ]]; then
            log "'$BENCH_BIN bench' is not there: cargo build --release"
            (cd "$REPO_DIR" && cargo build --release) >&2 || die "cargo build --release failed"
        fi
        "$BENCH_BIN" bench --help >/dev/null 2>&1 \
            || die "'$BENCH_BIN bench --help' fails: this mirrorftpd has no load generator yet"
    fi
}

# ----------------------------------------------------------------- vsftpd --
# Privilege-separated, as vsftpd is deployed: a listener, then per session a
# root-owned monitor process plus an unprivileged one chrooted to the tree,
# running as 'ftp' (from with_ftp_user).
install_vsftpd() {
    install_nss_wrapper || return 1
    fetch_debs "$VS_DIR" vsftpd libwrap0 || return 1
    local miss
    miss=$(missing_libs "$VS_DIR/root/usr/lib/x86_64-linux-gnu" "$VS_DIR/root/usr/sbin/vsftpd")
    [[ -z $miss ]] || { warn "vsftpd misses: $miss"; return 1; }
}
launch_vsftpd() {
    local conf=$2/vsftpd.conf empty=$2/vsftpd-empty
    mkdir -p "$empty"; chmod 755 "$empty"
    cat > "$conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$1
background=NO
anonymous_enable=YES
local_enable=NO
anon_root=$(serve_root)
no_anon_password=YES
pasv_enable=YES
secure_chroot_dir=$empty
ftp_username=ftp
nopriv_user=nobody
use_sendfile=YES
dirmessage_enable=NO
xferlog_enable=NO
max_clients=$MAX_SESSIONS
max_per_ip=$MAX_SESSIONS
EOF
    case $SERVE_MODE in
        upload*) printf '%s\n' write_enable=YES anon_upload_enable=YES anon_umask=022 >> "$conf" ;;
        tls) printf '%s\n' write_enable=NO ssl_enable=YES "rsa_cert_file=$TLS_DIR/cert.pem" \
                "rsa_private_key_file=$TLS_DIR/key.pem" allow_anon_ssl=YES force_anon_logins_ssl=NO \
                force_anon_data_ssl=NO require_ssl_reuse=NO ssl_request_cert=NO ssl_ciphers=HIGH \
                ssl_tlsv1=YES ssl_sslv2=NO ssl_sslv3=NO >> "$conf" ;;
        *) echo write_enable=NO >> "$conf" ;;
    esac
    LD_LIBRARY_PATH=$VS_DIR/root/usr/lib/x86_64-linux-gnu with_ftp_user "$2" \
        "$REAPER" "$VS_DIR/root/usr/sbin/vsftpd" "$conf" > "$2/vsftpd.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_vsftpd() { echo "vsftpd $(deb_version "$VS_DIR" vsftpd) (Debian)"; }
note_vsftpd() {
    case $SERVE_MODE in
        upload*) echo "plus write_enable=YES anon_upload_enable=YES anon_umask=022, anon_root = the upload root (incoming/ owned by uid 65534)"; return ;;
        tls) echo "plus ssl_enable=YES (the P-256 cert as rsa_cert_file), allow_anon_ssl=YES, force_anon_logins_ssl=NO, force_anon_data_ssl=NO, require_ssl_reuse=NO, ssl_request_cert=NO, ssl_ciphers=HIGH"; return ;;
    esac
    echo "privilege-separated (2 processes per session; anonymous = user 'ftp' from libnss-wrapper, nopriv_user=nobody), use_sendfile=YES, xferlog off, max_clients=max_per_ip=$MAX_SESSIONS"
}

# ---------------------------------------------------------------- proftpd --
install_proftpd() {
    fetch_debs "$PRO_DIR" proftpd-core || return 1
    # mod_tls is not in proftpd-core: proftpd-mod-crypto, only for FTPS.
    if [[ $SERVE_MODE == tls ]]; then
        fetch_debs "$PRO_CRYPTO_DIR" proftpd-mod-crypto || return 1
        [[ -f $PRO_CRYPTO_DIR/root/usr/lib/proftpd/mod_tls.so ]] || return 1
    fi
    local miss
    miss=$(missing_libs "$PRO_DIR/root/usr/lib/x86_64-linux-gnu" "$PRO_DIR/root/usr/sbin/proftpd")
    [[ -z $miss ]] || { warn "proftpd misses: $miss"; return 1; }
}
launch_proftpd() {
    local conf=$2/proftpd.conf anon
    anon=$(serve_root)
    cat > "$conf" <<EOF
ServerType          standalone
ServerName          "perf"
DefaultAddress      127.0.0.1
SocketBindTight     on
UseIPv6             off
Port                $1
User                nobody
Group               nogroup
PidFile             $2/proftpd.pid
ScoreboardFile      $2/proftpd.scoreboard
SystemLog           $2/proftpd.log
TransferLog         NONE
WtmpLog             off
UseReverseDNS       off
UseFtpUsers         off
RequireValidShell   off
AuthOrder           mod_auth_unix.c
UseSendfile         on
# No MaxClients/MaxClientsPerHost/MaxConnectionsPerHost: unset, they are
# unlimited; set (even to 20000) every login scans the scoreboard, and at
# thousands of sessions logins slow to a crawl.
MaxInstances        $MAX_SESSIONS
TimeoutIdle         600
<IfModule mod_delay.c>
  DelayEngine       off
</IfModule>
<IfModule mod_ident.c>
  IdentLookups      off
</IfModule>
<Anonymous $anon>
  User              nobody
  Group             nogroup
  UserAlias         anonymous nobody
  AnonRequirePassword off
  <Limit WRITE SITE_CHMOD>
    DenyAll
  </Limit>
$(if [[ $SERVE_MODE == upload* ]]; then printf '%s\n' '  <Directory incoming>' '    Umask 022' \
    '    <Limit STOR>' '      AllowAll' '    </Limit>' '  </Directory>'; fi)
</Anonymous>
EOF
    if [[ $SERVE_MODE == tls ]]; then
        cat >> "$conf" <<EOF
ModulePath          $PRO_CRYPTO_DIR/root/usr/lib/proftpd
LoadModule          mod_tls.c
<IfModule mod_tls.c>
  TLSEngine         on
  TLSProtocol       TLSv1.2 TLSv1.3
  TLSECCertificateFile    $TLS_DIR/cert.pem
  TLSECCertificateKeyFile $TLS_DIR/key.pem
  TLSRequired       off
  TLSVerifyClient   off
  TLSOptions        NoSessionReuseRequired
  TLSRenegotiate    none
</IfModule>
EOF
    fi
    LD_LIBRARY_PATH=$PRO_DIR/root/usr/lib/x86_64-linux-gnu \
        "$REAPER" "$PRO_DIR/root/usr/sbin/proftpd" --nodaemon --quiet --config "$conf" > "$2/proftpd.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_proftpd() { echo "ProFTPD $(deb_version "$PRO_DIR" proftpd-core) (Debian proftpd-core)"; }
note_proftpd() {
    case $SERVE_MODE in
        upload*) echo "plus <Anonymous UPLOAD_ROOT> with <Directory incoming> <Limit STOR> AllowAll (WRITE denied elsewhere)"; return ;;
        tls) echo "plus mod_tls.so from Debian proftpd-mod-crypto (LoadModule): TLSEngine on, TLSProtocol TLSv1.2 TLSv1.3, TLSECCertificateFile (P-256), TLSRequired off, TLSOptions NoSessionReuseRequired"; return ;;
    esac
    echo "standalone, one process per session, <Anonymous> as nobody, UseSendfile on, DelayEngine off, TransferLog NONE, MaxInstances $MAX_SESSIONS (no MaxClients*/MaxConnectionsPerHost: each makes every login scan the scoreboard)"
}

# -------------------------------------------------------------- pure-ftpd --
install_pure-ftpd() {
    install_nss_wrapper || return 1
    fetch_debs "$PURE_DIR" pure-ftpd pure-ftpd-common || return 1
    local miss
    miss=$(missing_libs "$PURE_DIR/root/usr/lib/x86_64-linux-gnu" "$PURE_DIR/root/usr/sbin/pure-ftpd")
    [[ -z $miss ]] || { warn "pure-ftpd misses: $miss"; return 1; }
}
launch_pure-ftpd() {
    # -e anonymous only, -i no anonymous uploads, -H no reverse DNS, -4 IPv4,
    # -c/-C session limits, -L the LIST cap (default 10000 entries: the
    # 10,000-file directory plus . and .. would be cut short).
    # Upload mode drops -i: anonymous uploads into incoming/ (owned by 'ftp').
    local noup=-i
    [[ $SERVE_MODE == upload* ]] && noup=
    LD_LIBRARY_PATH=$PURE_DIR/root/usr/lib/x86_64-linux-gnu with_ftp_user "$2" \
        "$REAPER" "$PURE_DIR/root/usr/sbin/pure-ftpd" -S "127.0.0.1,$1" -4 -e ${noup:+"$noup"} -H \
        -c "$MAX_SESSIONS" -C "$MAX_SESSIONS" -L 100000:100 -I 10 > "$2/pure-ftpd.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_pure-ftpd() { echo "Pure-FTPd $(deb_version "$PURE_DIR" pure-ftpd) (Debian)"; }
note_pure-ftpd() {
    if [[ $SERVE_MODE == upload* ]]; then echo "the same without \`-i\` (anonymous uploads allowed), 'ftp' home = the upload root"; return; fi
    echo "\`-4 -e -i -H -c $MAX_SESSIONS -C $MAX_SESSIONS -L 100000:100\` (one process per session; anonymous = user 'ftp' from libnss-wrapper)"
}

# -------------------------------------------------------------- pyftpdlib --
install_pyftpdlib() {
    "$PY" -c 'import pyftpdlib' 2>/dev/null
}
launch_pyftpdlib() {
    local -a up=()
    [[ $SERVE_MODE == upload* ]] && up=(--upload)
    "$REAPER" "$PY" "$PERF_DIR/pyftpdlib_server.py" "${up[@]}" "$(serve_root)" "$1" "$MAX_SESSIONS" > "$2/pyftpdlib.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_pyftpdlib() { echo "pyftpdlib $("$PY" -c 'import pyftpdlib; print(pyftpdlib.__ver__)'), Python $("$PY" -c 'import platform; print(platform.python_version())')"; }
note_pyftpdlib() {
    if [[ $SERVE_MODE == upload* ]]; then echo "\`--upload\`: anonymous gets perms elradfmw (write) on the upload root"; return; fi
    echo "perf/pyftpdlib_server.py: FTPServer (one process, epoll), DummyAuthorizer anonymous, sendfile on, logging at WARNING, max_cons=max_cons_per_ip=$MAX_SESSIONS"
}

# ------------------------------------------------------------------ unFTP --
install_unftp() {
    [[ -x $UNFTP_DIR/bin/unftp ]] && return 0
    log "cargo install unftp --root $UNFTP_DIR (takes minutes)"
    cargo install unftp --locked --root "$UNFTP_DIR" >&2 || return 1
}
launch_unftp() {
    "$REAPER" "$UNFTP_DIR/bin/unftp" --root-dir="$TREE" --bind-address="127.0.0.1:$1" \
        --auth-type=anonymous --log-level=error > "$2/unftp.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_unftp() { echo "$("$UNFTP_DIR/bin/unftp" --version 2>/dev/null | sed -n 's/^unFTP /unFTP /p;s/^ - libunftp:\t*/libunftp /p' | paste -sd' ' -) (cargo install)"; }
note_unftp() { echo "\`--auth-type=anonymous --log-level=error\`, filesystem back-end (tokio; no session limit to raise), defaults otherwise"; }

# -------------------------------------------------------------------- ref --
# The reference ceiling: perf/sendfile_ref.c, compiled here.
install_ref() { compile sendfile_ref; }
launch_ref() {
    "$REAPER" "$REF_BIN" "$TREE" "$1" > "$2/ref.out" 2>&1 &
    LAUNCHED_PID=$!
}
version_ref() { echo "perf/sendfile_ref.c, gcc $(gcc -dumpfullversion) -O2"; }
note_ref() {
    echo "RETR only: fork per session, sendfile(2) of the whole file in 1 GiB chunks, no limits, no logging"
}

# ------------------------------------------------------ starting a server --
# start_server NAME: install, launch on a free port in $SERVE_MODE (config
# and logs in $RUN_DIR), check it serves ping.txt (over FTPS in tls mode; an
# upload in upload modes), and add it to LIVE with its PORT and SPID. A
# server that fails any of it is skipped (skip): it is named in SKIPPED and
# the caller goes on without it.
declare -A PORT=() SPID=() SKIPPED=() VERSION=() NOTE=()
LIVE=()

# skip NAME WHY: drop a server from the rest of the run, loudly.
skip() {
    local what=$2
    [[ $SERVE_MODE == plain ]] || what="$SERVE_MODE workloads: $what"
    SKIPPED[$1]+="${SKIPPED[$1]:+; }$what"
    warn "SKIPPING $1: $what"
    local -a keep=() s
    for s in "${LIVE[@]}"; do [[ $s == "$1" ]] || keep+=("$s"); done
    LIVE=("${keep[@]}")
    if [[ -n ${SPID[$1]:-} ]]; then stop_tree "${SPID[$1]}"; fi
    return 0
}

start_server() {
    local name=$1 port got
    if ! "install_$name"; then skip "$name" "could not be installed (see the log above)"; return 0; fi
    VERSION[$name]=$("version_$name" 2>/dev/null || echo "$name")
    NOTE[$name]=$("note_$name")
    port=$(free_port)
    "launch_$name" "$port" "$RUN_DIR"
    PIDS+=("$LAUNCHED_PID")
    SPID[$name]=$LAUNCHED_PID
    PORT[$name]=$port
    if ! wait_port "$name" "$LAUNCHED_PID" "$port"; then
        show_logs "$RUN_DIR/$name".*
        skip "$name" "did not start (log printed above)"; return 0
    fi
    if ! got=$(curl -sS --max-time 10 "ftp://127.0.0.1:$port/ping.txt" 2>&1) || [[ $got != "$PING_TEXT" ]]; then
        echo "curl said: $got" >&2
        show_logs "$RUN_DIR/$name".*
        skip "$name" "did not serve ping.txt to curl: $got"; return 0
    fi
    # The modes' own checks: an FTPS download, an upload.
    if [[ $SERVE_MODE == tls ]] && { ! got=$(curl -sS -k --ssl-reqd --max-time 10 "ftp://127.0.0.1:$port/ping.txt" 2>&1) \
            || [[ $got != "$PING_TEXT" ]]; }; then
        echo "curl said: $got" >&2
        show_logs "$RUN_DIR/$name".*
        skip "$name" "did not serve ping.txt over FTPS (curl --ssl-reqd): $got"; return 0
    fi
    if [[ $SERVE_MODE == upload* ]]; then
        local -a cred=()
        [[ $name == mirrorftpd ]] && cred=(-u "$UPLOAD_USER:$UPLOAD_PASS")
        if ! got=$(curl -sS "${cred[@]}" --max-time 10 -T "$UPLOAD_ROOT/ping.txt" "ftp://127.0.0.1:$port/incoming/check.txt" 2>&1) \
                || ! cmp -s "$UPLOAD_ROOT/ping.txt" "$UPLOAD_ROOT/incoming/check.txt"; then
            echo "curl said: $got" >&2
            show_logs "$RUN_DIR/$name".*
            clean_uploads
            skip "$name" "did not accept an upload to /incoming (curl -T): $got"; return 0
        fi
        clean_uploads
    fi
    LIVE+=("$name")
    log "$name serving on 127.0.0.1:$port (pid $LAUNCHED_PID): ${VERSION[$name]}"
}
