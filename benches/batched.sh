#!/bin/bash
# Batched appends on one log, run after run, as BENCHMARKS.md reports them:
# entries/s, server CPU per entry (utime+stime from /proc), the sequencer's
# stages per entry (the modeltrail_batch_*_seconds sums of /metrics) and the
# server's peak RSS.
#
#   benches/batched.sh [runs] [seconds per run] [extra `modeltrail bench` flags...]
#
# A fresh log in a scratch directory under ${TMPDIR:-/tmp}, removed at the
# end; with DATA=<dir>, the log in <dir> instead (created on first use and
# kept, so later calls carry on growing it: the 10^7 runs of BENCHMARKS.md).
# Uses target/release/modeltrail (cargo build --release) unless
# MODELTRAIL_BIN is set; Linux only (/proc).
set -euo pipefail
RUNS=${1:-4}; SECONDS_PER_RUN=${2:-10}; shift $(( $# < 2 ? $# : 2 ))
BIN=${MODELTRAIL_BIN:-$(dirname "$0")/../target/release/modeltrail}
if [ -n "${DATA:-}" ]; then DIR=$DATA; KEEP=1; mkdir -p "$DIR"; else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/modeltrail-batched.XXXXXX"); KEEP=0; fi
PORT=${PORT:-7479}
URL=http://127.0.0.1:$PORT
[ -f "$DIR/data/config.toml" ] || "$BIN" init --data "$DIR/data" >/dev/null 2>&1
"$BIN" serve --data "$DIR/data" --listen 127.0.0.1:$PORT 2>>"$DIR/serve.log" &
PID=$!
cleanup() { kill $PID 2>/dev/null; wait $PID 2>/dev/null; [ $KEEP = 1 ] || rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
[ -f "$DIR/serving.key" ] || "$BIN" bench --url "$URL" --admin-key "$DIR/data/keys/admin.key" \
    --save-key "$DIR/serving.key" --entries 10 --writers 1 >/dev/null 2>&1
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; }
sum() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
printf '%-4s %10s %12s %8s %9s %9s %9s %14s %10s\n' run size entries/s cpu_us judge_us store_us index_us median/p99 rss_max
for run in $(seq "$RUNS"); do
    c0=$(cpu); j0=$(sum modeltrail_batch_judge_seconds_sum)
    s0=$(sum modeltrail_batch_store_seconds_sum); i0=$(sum modeltrail_batch_index_seconds_sum)
    out=$("$BIN" bench --url "$URL" --key "$DIR/serving.key" --batch 256 --writers 8 \
        --duration "$SECONDS_PER_RUN" --presign 400000 --server-pid $PID "$@" 2>&1)
    c1=$(cpu); j1=$(sum modeltrail_batch_judge_seconds_sum)
    s1=$(sum modeltrail_batch_store_seconds_sum); i1=$(sum modeltrail_batch_index_seconds_sum)
    n=$(grep -oP 'writes: \K[0-9]+' <<<"$out")
    rate=$(grep -oP '= \K[0-9]+(?= entries/s)' <<<"$out")
    lat=$(grep -oP 'median \K[0-9.]+ ms, p99 [0-9.]+' <<<"$out" | sed 's/ ms, p99 /\//')
    rss=$(grep -oP 'server RSS: max \K[0-9.]+ MiB' <<<"$out" || echo -)
    size=$(curl -s "$URL/checkpoint.unwitnessed" | sed -n 2p)
    tick=$(getconf CLK_TCK)
    awk -v run="$run" -v size="$size" -v rate="$rate" -v n="$n" -v tick="$tick" \
        -v cpu=$((c1 - c0)) -v j="$j1" -v j0="$j0" -v s="$s1" -v s0="$s0" -v i="$i1" -v i0="$i0" \
        -v lat="$lat" -v rss="$rss" \
        'BEGIN { printf "%-4s %10s %12s %8.0f %9.1f %9.1f %9.1f %14s %10s\n", run, size, rate,
                 cpu / tick * 1e6 / n, (j - j0) * 1e6 / n, (s - s0) * 1e6 / n, (i - i0) * 1e6 / n,
                 lat " ms", rss }'
done
