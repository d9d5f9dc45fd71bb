#!/bin/bash
# obs_overhead.sh — the cost of logs and metrics: the same bench runs against
# a baseline binary (BASE, e.g. main before observability), this binary with
# its default logging (stderr, text) and this binary with everything on
# (--xferlog, --log-file, --log-format json, --metrics-listen). Interleaved,
# ROUNDS rounds of 4 s retr (32 sessions, 64 files of 4 KiB, --discard) and
# 4 s login (32 sessions). Each run gets its own loopback address
# (127.0.SET*10+ROUND.N) so the TIME_WAIT sockets of one run do not starve the
# next of ephemeral ports. Prints one line per run.
#
#   BASE=/path/to/old/mirrorftpd NEW=target/release/mirrorftpd perf/obs_overhead.sh
#   SET=1 ORDER="newall new base" ...   (second pass, other addresses and order)
set -u
BASE=${BASE:?BASE=/path/to/baseline/mirrorftpd}
NEW=${NEW:-target/release/mirrorftpd}
ROUNDS=${ROUNDS:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tree"
for i in $(seq -w 0 63); do head -c 4096 /dev/urandom > "$work/tree/f$i.bin"; done
PATHS=$(for i in $(seq -w 0 63); do echo --path /f$i.bin; done)
for round in $(seq 1 "$ROUNDS"); do
  c=0
  for cfg in ${ORDER:-base new newall}; do
    c=$((c+1)); ip=127.0.$((round+10*${SET:-0})).$c
    rm -f "$work/s.log" "$work/x.log"
    case $cfg in
      base) "$BASE" --root "$work/tree" --listen $ip:2611 --workers 2 2>>"$work/srv-$cfg.err" & ;;
      new) "$NEW" --root "$work/tree" --listen $ip:2611 --workers 2 2>>"$work/srv-$cfg.err" & ;;
      newall) "$NEW" --root "$work/tree" --listen $ip:2611 --workers 2 --xferlog "$work/x.log" \
          --log-file "$work/s.log" --log-format json --metrics-listen $ip:2612 2>>"$work/srv-$cfg.err" & ;;
    esac
    pid=$!; sleep 0.4
    # shellcheck disable=SC2086
    r=$("$NEW" bench retr --server $ip:2611 --conns 32 --duration 4 $PATHS --discard 2>&1 | awk '/^ops/{gsub(/[()\/s]/,"",$3); print $3}')
    l=$("$NEW" bench login --server $ip:2611 --conns 32 --duration 4 2>&1 | awk '/^ops/{gsub(/[()\/s]/,"",$3); print $3}')
    m=""
    [ "$cfg" = newall ] && m="$(curl -s http://$ip:2612/metrics | grep -E '^mirrorftpd_log_lines_dropped_total') xferlog=$(wc -l < "$work/x.log") log=$(wc -l < "$work/s.log")"
    kill $pid; wait 2>/dev/null
    echo "$round $cfg retr4k/s=$r logins/s=$l $m"
  done
done
