#!/usr/bin/env bash
# Runs `npm test` against a fresh Trellis server: starts `trellis serve` on a free
# loopback port with an empty data dir (SQLite) and a random token, waits for
# /healthz, runs the tests with TRELLIS_URL, TRELLIS_API_TOKEN and
# TRELLIS_FUNCTIONS_DIR set, then stops the server it started.
#
#   scripts/test-with-server.sh [path/to/trellis]
#
# The binary defaults to $TRELLIS_BIN, else target/debug/trellis of this repository;
# the example functions to $TRELLIS_FUNCTIONS_DIR, else
# functions/target/wasm32-wasip2/release. Neither is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(cd ../.. && pwd)
bin=${1:-${TRELLIS_BIN:-$repo/target/debug/trellis}}
functions=${TRELLIS_FUNCTIONS_DIR:-$repo/functions/target/wasm32-wasip2/release}

[ -x "$bin" ] || { echo "FATAL: no trellis binary at $bin (cargo build -p trellis, or pass its path)" >&2; exit 1; }
for name in echo digest; do
  [ -f "$functions/$name.wasm" ] || {
    echo "FATAL: $functions/$name.wasm is missing (cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml)" >&2
    exit 1
  }
done

data=$(mktemp -d)
port=$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
token=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
url="http://127.0.0.1:$port"

TRELLIS_API_TOKEN=$token "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

# Up to 30 s for migrations and the first compile.
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "FATAL: trellis serve exited; its log:" >&2
    cat "$data/server.log" >&2
    exit 1
  fi
  if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url/healthz"; then
    break
  fi
  sleep 0.2
done
node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url/healthz" \
  || { echo "FATAL: $url/healthz did not answer within 30 s; server log:" >&2; cat "$data/server.log" >&2; exit 1; }

echo "trellis serve at $url (data dir $data)"
status=0
TRELLIS_URL=$url TRELLIS_API_TOKEN=$token TRELLIS_FUNCTIONS_DIR=$functions npm test || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 50 lines) ---" >&2
  tail -n 50 "$data/server.log" >&2
fi
exit "$status"
