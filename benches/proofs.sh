#!/bin/bash
# Inclusion proofs over HTTP, as BENCHMARKS.md reports them: wrk (the Debian
# package `wrk`) on the same machine as the log, one thread, 32 connections,
# GET /v1/proof/inclusion for random indexes over the whole tree
# (benches/proof.lua), run after run, with wrk's latency distribution.
#
#   benches/proofs.sh URL [seconds] [connections] [runs]
#
# Defaults: 15 s, 32 connections, 3 runs (the recorded figures are
# `wrk -t1 -c32 -d15s --latency`, three runs). The index bound is the log's
# size - 1, read from URL/checkpoint.unwitnessed; MAX_INDEX=<n> fixes it
# (MAX_INDEX=1270000 repeats the 1.27 M-entry runs request for request).
# The log must be running (e.g. the one benches/batched.sh DATA=<dir> filled:
# `modeltrail serve --data <dir>/data --listen 127.0.0.1:7479`).
set -euo pipefail
URL=${1:?usage: benches/proofs.sh URL [seconds] [connections] [runs]}
SECS=${2:-15}; CONN=${3:-32}; RUNS=${4:-3}
command -v wrk >/dev/null || { echo "benches/proofs.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
SIZE=$(curl -sf "$URL/checkpoint.unwitnessed" | sed -n 2p)
[ -n "$SIZE" ] && [ "$SIZE" -gt 0 ] || { echo "benches/proofs.sh: no checkpoint at $URL" >&2; exit 1; }
export MAX_INDEX=${MAX_INDEX:-$((SIZE - 1))}
for run in $(seq "$RUNS"); do
    echo "== run $run of $RUNS: tree size $SIZE, random index 0..$MAX_INDEX, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') load"
    wrk -t1 -c"$CONN" -d"${SECS}s" --latency -s "$(dirname "$0")/proof.lua" "$URL"
done
