#!/usr/bin/env bash
# Orchestration create and update over HTTP, each with 10 encrypted params, on a
# release build; wrk reports p50/p99. Creates use 8 connections; updates of one
# orchestration use 1 (concurrent replaces of the same id would conflict by design).
# Usage: scripts/bench-orchestrations.sh [duration, default 10s]. Set DATABASE_URL
# (and SECRET_KEYS) for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
duration=${1:-10s}
port=${PORT:-18082}
url="http://127.0.0.1:$port"
export TRELLIS_API_TOKEN=bench-token-0123456789abcdef
data=$(mktemp -d)

cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml -q
cargo build --release -p trellis -q
target/release/trellis serve --listen "127.0.0.1:$port" --data-dir "$data" 2>>"$data/server.log" &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 200); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.05; done
auth=(-H "authorization: Bearer $TRELLIS_API_TOKEN")
curl -sf "${auth[@]}" -X PUT --data-binary @functions/target/wasm32-wasip2/release/echo.wasm "$url/v1/functions/echo" >/dev/null

# The orchestration the update run replaces over and over.
id=$(curl -sf "${auth[@]}" -H 'content-type: application/json' "$url/v1/orchestrations" \
  -d '{"name":"to update","steps":[{"id":"d","type":"delay","delayMs":1}]}' | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')

echo "== create, 10 encrypted params: wrk -t2 -c8 -d$duration"
wrk -t2 -c8 -d"$duration" --latency -s scripts/wrk-orchestration.lua "$url/v1/orchestrations" | grep -E 'Latency|50%|99%|Requests/sec|Non-2xx'

echo "== update (full replace), 10 encrypted params: wrk -t1 -c1 -d$duration"
ORCHESTRATION_ID=$id wrk -t1 -c1 -d"$duration" --latency -s scripts/wrk-orchestration.lua "$url" | grep -E 'Latency|50%|99%|Requests/sec|Non-2xx'
