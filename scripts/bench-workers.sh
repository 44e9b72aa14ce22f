#!/usr/bin/env bash
# How run throughput scales with worker processes on PostgreSQL: for 1, 2 and 4
# `trellis worker` processes (override with WORKERS="1 2 4 8"), a fresh database, an
# API node with `--workers 0`, and `run_load throughput` (3-step `echo` runs, 64
# starts in flight). The worker processes share the machine's cores (`--threads`,
# at least one each), and a warm-up of 500 runs first has each of them compile
# `echo`. Prints steps/s and the transactions PostgreSQL committed per step, then where the CPU went: milliseconds of CPU per 1,000 steps in the API
# node, in all worker processes together, and in the rest (PostgreSQL and the load
# generator). Usage: scripts/bench-workers.sh [runs per measurement, default 3000].
# PostgreSQL: TRELLIS_BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); databases are created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3000}
admin_url=${TRELLIS_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
url="http://127.0.0.1:$port"
token=bench-token-0123456789abcdef
keyring='{"currentKeyVersion":1,"keys":{"1":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}}'
data=$(mktemp -d)
database="trellis_bench_workers_$$"
pg_url="${admin_url%/*}/$database"
pids=()

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null || true
}
trap 'stop_all; rm -rf "$data"' EXIT

# CPU time in clock ticks: of the processes given, or of the whole machine.
process_ticks() { local sum=0 pid; for pid; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done; echo "$sum"; }
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml -q
cargo build --release -p trellis -q --bin trellis --example run_load
trellis=target/release/trellis
load=target/release/examples/run_load

for workers in ${WORKERS:-1 2 4}; do
  psql -q "$admin_url" -c "CREATE DATABASE $database"
  SECRET_KEYS=$keyring TRELLIS_API_TOKEN=$token "$trellis" serve --listen "127.0.0.1:$port" \
    --data-dir "$data/api-$workers" --workers 0 --database-url "$pg_url" 2>>"$data/api.log" &
  pids+=($!)
  for _ in $(seq 1 400); do curl -sf --noproxy '*' "$url/healthz" >/dev/null && break; sleep 0.05; done
  curl -sf --noproxy '*' -H "authorization: Bearer $token" -X PUT \
    --data-binary @functions/target/wasm32-wasip2/release/echo.wasm "$url/v1/functions/echo" >/dev/null \
    || { echo "uploading echo failed; the API node logged:" >&2; cat "$data/api.log" >&2; exit 1; }
  threads=$(( $(nproc) / workers > 1 ? $(nproc) / workers : 1 ))
  for i in $(seq 1 "$workers"); do
    SECRET_KEYS=$keyring "$trellis" worker --database-url "$pg_url" --data-dir "$data/worker-$workers-$i" \
      --threads "$threads" 2>>"$data/worker.log" &
    pids+=($!)
  done
  # Echo compiled on the API node; the workers compile it on their first call.
  "$load" throughput "$url" "$token" 3 500 64 "$pg_url" >/dev/null
  echo -n "$workers worker process(es), $threads thread(s) each: "
  worker_pids=("${pids[@]:1}")
  before=($(process_ticks "${pids[0]}") $(process_ticks "${worker_pids[@]}") $(machine_ticks))
  "$load" throughput "$url" "$token" 3 "$runs" 64 "$pg_url"
  after=($(process_ticks "${pids[0]}") $(process_ticks "${worker_pids[@]}") $(machine_ticks))
  api=$((after[0] - before[0])) workers_cpu=$((after[1] - before[1])) machine=$((after[2] - before[2]))
  awk -v api="$api" -v workers="$workers_cpu" -v rest="$((machine - api - workers_cpu))" \
    -v steps="$((runs * 3))" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      per = 1000 * 1000 / hz / steps
      printf "  CPU ms per 1,000 steps: API node %.0f, workers %.0f, PostgreSQL and the rest %.0f\n",
        api * per, workers * per, rest * per }'
  stop_all
done
