#!/usr/bin/env bash
# The cost of a checked request with database rate limits against memory ones (issue 17):
# examples/rate_limit_cost against its own migrated database. Results: bench/RESULTS.md.
#
#   bench/rate-limit-cost.sh [path/to/release/switchboard]   # default target/release/switchboard
#
# Builds nothing itself: build first with
#   cargo build --release --bin switchboard --example rate_limit_cost
# Needs PostgreSQL on 127.0.0.1:5432 (own database switchboard_bench_rl, dropped and recreated).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/switchboard}"
example="$(dirname "$bin")/examples/rate_limit_cost"
[ -x "$bin" ] && [ -x "$example" ] || {
  echo "missing $bin or $example: cargo build --release --bin switchboard --example rate_limit_cost" >&2
  exit 1
}
server="postgres://postgres@127.0.0.1:5432"
db=switchboard_bench_rl
export DATABASE_URL="$server/$db?sslmode=disable"
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "$server/postgres" -qc "CREATE DATABASE $db" >/dev/null
APP_ENV=development "$bin" migrate >/dev/null
echo "rate-limit check cost (load avg $(cut -d' ' -f1 /proc/loadavg)):"
"$example"
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
