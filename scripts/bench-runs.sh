#!/usr/bin/env bash
# Orchestration runs, release build, with `host/examples/run_load.rs` as the client:
#   1. latency of a 3-step compute run (POST …/runs → completed), SQLite and PostgreSQL,
#      one in-process worker (`trellis serve`);
#   2. one run of 100 sequential compute steps, SQLite;
#   3. latency and throughput of 3-step runs on PostgreSQL with the API node serving
#      only and two `trellis worker` processes.
# Usage: scripts/bench-runs.sh [runs for latency, default 500] [runs for throughput,
# default 5000]. PostgreSQL: TRELLIS_BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); a database is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
latency_runs=${1:-500}
throughput_runs=${2:-5000}
admin_url=${TRELLIS_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
port=${PORT:-18083}
url="http://127.0.0.1:$port"
token=bench-token-0123456789abcdef
keyring='{"currentKeyVersion":1,"keys":{"1":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}}'
data=$(mktemp -d)
database="trellis_bench_$$"
pg_url="${admin_url%/*}/$database"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml -q
cargo build --release -p trellis -q --bin trellis --example run_load
trellis=target/release/trellis
load=target/release/examples/run_load

# serve <name> [args…]: starts `trellis serve` and waits until it answers.
serve() {
  local name=$1; shift
  SECRET_KEYS=$keyring TRELLIS_API_TOKEN=$token "$trellis" serve --listen "127.0.0.1:$port" \
    --data-dir "$data/$name" "$@" 2>>"$data/$name.log" &
  pids+=($!)
  for _ in $(seq 1 400); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.05; done
  curl -sf -H "authorization: Bearer $token" -X PUT \
    --data-binary @functions/target/wasm32-wasip2/release/echo.wasm "$url/v1/functions/echo" >/dev/null
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

echo "== SQLite, trellis serve --workers 1"
serve sqlite --workers 1
"$load" latency "$url" "$token" 3 "$latency_runs"
"$load" latency "$url" "$token" 100 50
stop_all

psql -q "$admin_url" -c "CREATE DATABASE $database"
echo "== PostgreSQL, trellis serve --workers 1"
serve postgres --workers 1 --database-url "$pg_url"
"$load" latency "$url" "$token" 3 "$latency_runs"
stop_all

echo "== PostgreSQL, trellis serve --workers 0 and two trellis worker processes"
serve api --workers 0 --database-url "$pg_url"
for i in 1 2; do
  SECRET_KEYS=$keyring "$trellis" worker --database-url "$pg_url" --data-dir "$data/worker-$i" \
    2>>"$data/worker-$i.log" &
  pids+=($!)
done
# Latency across processes: the workers learn of each run, and the API of its end,
# through LISTEN/NOTIFY.
"$load" latency "$url" "$token" 3 "$latency_runs"
"$load" throughput "$url" "$token" 3 "$throughput_runs" 64 "$pg_url"
