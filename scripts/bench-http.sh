#!/usr/bin/env bash
# HTTP benchmarks against a release build on loopback:
#   1. cold paths: upload -> first invoke, and restart -> first invoke (artifact cache);
#   2. load: POST /v1/functions/echo/invoke with wrk, 2 threads x 32 connections.
# Usage: scripts/bench-http.sh [duration, default 20s]. Set DATABASE_URL for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
duration=${1:-20s}
port=${PORT:-18080}
url="http://127.0.0.1:$port"
export TRELLIS_API_TOKEN=bench-token-0123456789abcdef
data=$(mktemp -d)
pid=

cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml -q
cargo build --release -p trellis -q
echo_wasm=functions/target/wasm32-wasip2/release/echo.wasm
# PostgreSQL needs a keyring (SQLite generates one in the data dir).
if [[ "${DATABASE_URL:-}" == postgres* && -z "${SECRET_KEYS:-}${SECRET_KEYS_FILE:-}" ]]; then
  export SECRET_KEYS="{\"currentKeyVersion\":1,\"keys\":{\"1\":\"$(target/release/trellis keys generate)\"}}"
fi

start() {
  target/release/trellis serve --listen "127.0.0.1:$port" --data-dir "$data" 2>>"$data/server.log" &
  pid=$!
  for _ in $(seq 1 200); do curl -sf "$url/healthz" >/dev/null && return; sleep 0.05; done
  echo "server did not start; see $data/server.log" >&2; exit 1
}
stop() { [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true; pid=; }
trap 'stop; rm -rf "$data"' EXIT

ms() { awk '{ printf "%.1f ms", $1 * 1000 }'; }
call() {
  curl -s -o /dev/null -w '%{time_total}' -H "authorization: Bearer $TRELLIS_API_TOKEN" "$@"
}

start
echo "== cold paths ($(nproc) cores, $(uname -m))"
echo "upload (validate + compile + store): $(call -X PUT --data-binary @"$echo_wasm" "$url/v1/functions/echo" | ms)"
echo "first invoke after upload:           $(call -X POST -d '{}' "$url/v1/functions/echo/invoke" | ms)"
stop
start
echo "first invoke after restart (cache):  $(call -X POST -d '{}' "$url/v1/functions/echo/invoke" | ms)"
grep -E '^trellis_(component_compilations|artifact_cache_hits)_total ' <(curl -s "$url/metrics")

echo "== load: wrk -t2 -c32 -d$duration, POST /v1/functions/echo/invoke"
wrk -t2 -c32 -d2s -s scripts/wrk-invoke.lua "$url/v1/functions/echo/invoke" >/dev/null  # warm-up
wrk -t2 -c32 -d"$duration" --latency -s scripts/wrk-invoke.lua "$url/v1/functions/echo/invoke"
