#!/bin/bash
# Start-up of a log, as BENCHMARKS.md reports it: spawn `modeltrail serve` →
# first 200 from /healthz (polled every 5 ms), after a SIGTERM or after a
# kill -9 in the middle of batched writes, and the server's RSS right after.
#
#   DATA=<dir> benches/restart.sh [term|kill] [rounds]
#
# <dir> holds a log made by `DATA=<dir> benches/batched.sh` (its data/ and
# serving.key). Uses target/release/modeltrail unless MODELTRAIL_BIN is set.
set -euo pipefail
MODE=${1:-kill}; ROUNDS=${2:-3}
BIN=${MODELTRAIL_BIN:-$(dirname "$0")/../target/release/modeltrail}
DIR=${DATA:?set DATA to a directory made by benches/batched.sh}
PORT=${PORT:-7479}
URL=http://127.0.0.1:$PORT
PID=; STARTUP_MS=
# Starts the server; sets PID and STARTUP_MS.
start() {
    local t0; t0=$(date +%s%N)
    "$BIN" serve --data "$DIR/data" --listen 127.0.0.1:$PORT >>"$DIR/serve.log" 2>&1 &
    PID=$!
    until curl -sf "$URL/healthz" >/dev/null; do
        kill -0 $PID 2>/dev/null || { echo "serve exited; see $DIR/serve.log"; exit 1; }
        sleep 0.005
    done
    STARTUP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null' EXIT
start
printf '%-5s %12s %12s %12s\n' round size startup_ms rss_kib
for round in $(seq "$ROUNDS"); do
    if [ "$MODE" = kill ]; then
        "$BIN" bench --url "$URL" --key "$DIR/serving.key" --batch 256 --writers 8 \
            --duration 20 --presign 400000 >/dev/null 2>&1 &
        LOAD=$!
        sleep 12
        kill -9 $PID
        wait $LOAD 2>/dev/null || true
    else
        kill -TERM $PID
    fi
    wait $PID 2>/dev/null || true
    start
    size=$(curl -s "$URL/checkpoint.unwitnessed" | sed -n 2p)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
    printf '%-5s %12s %12s %12s\n' "$round" "$size" "$STARTUP_MS" "$rss"
done
# What each start after a kill re-read from the tiles (the server's log).
[ "$MODE" = kill ] && sed 's/\x1b\[[0-9;]*m//g' "$DIR/serve.log" \
    | grep -o 'index caught up from the tiles.*' | tail -n "$ROUNDS" || true
