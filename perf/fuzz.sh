#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each (default 600) and prints, per
# target, the executions and crashes libFuzzer reported. Needs cargo-fuzz (`cargo install
# cargo-fuzz`) and the nightly toolchain, or the stable one with RUSTC_BOOTSTRAP=1 (used when
# no nightly is installed).
#
#   perf/fuzz.sh [SECONDS]              every target, one after the other
#   FUZZ_TARGETS="vpath" perf/fuzz.sh 60  only these targets
#
# Corpora grow in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash leaves its
# input in fuzz/artifacts/TARGET/ (reproduce: cargo +nightly fuzz run TARGET FILE).
# Logs: fuzz/logs/TARGET.log. Exit 1 when any target crashed.
set -uo pipefail

secs="${1:-600}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here/fuzz"

ALL_TARGETS=(command vpath linebuf)
# The PROXY header parser (src/proto/proxy.rs).
ALL_TARGETS+=(proxy_header)
# The SFTP packet parser and engine (src/sftp/).
ALL_TARGETS+=(sftp_packet sftp_engine)
read -r -a targets <<< "${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"

# cargo-fuzz needs nightly features (-Zsanitizer); without a nightly toolchain
# the stable one is used with RUSTC_BOOTSTRAP=1 (how the 2026-12-05 runs were made).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
nice -n 10 "${fuzz[@]}" build --fuzz-dir . || exit 2

mkdir -p logs
status=0
rows=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    if [ -d "seeds/$t" ] && [ -z "$(ls -A "corpus/$t")" ]; then
        cp "seeds/$t"/* "corpus/$t"/
    fi
    before=$(find "artifacts/$t" -type f | wc -l)
    log="logs/$t.log"
    start=$SECONDS
    nice -n 10 "${fuzz[@]}" run --fuzz-dir . "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # A crash stops libFuzzer before its final stats: take the last progress line's count.
    if [ -z "$execs" ]; then
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="?(exit $rc, see $log)"
        status=1
    elif [ "$crashes" -ne 0 ]; then
        status=1
    fi
    rows+=("$(printf '%-14s %8ss %14s %10s %8s %8s' "$t" "$took" "${execs:-?}" "$crashes" "${cov:-?}" "$corpus")")
    echo "fuzz: $t done: ${execs:-?} executions, $crashes crashes (log $log)" >&2
done

printf '%-14s %9s %14s %10s %8s %8s\n' target time executions crashes cov corpus
printf '%s\n' "${rows[@]}"
exit "$status"
