#!/usr/bin/env bash
# Benchmark: GET /api/connections (JWT verification + one indexed query) on a release build.
# wrk, 2 threads, 32 connections. The JWT comes from examples/bench_token (a throwaway Ed25519
# key whose JWKS a local python http.server serves as AUTH_JWKS_URL): this branch predates the
# auth role's sign-up endpoints. Usage: bench/connections.sh [duration, default 30s]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30s}"
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="switchboard_bench_connections"
url="${server%/*}/$db"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "${server%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin switchboard --example bench_token
psql "${server%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "${server%/*}/postgres" -qc "CREATE DATABASE $db" >/dev/null
APP_ENV=development DATABASE_URL="$url" ./target/release/switchboard migrate >/dev/null

# One user with 5 connections (sealed values are opaque here: listing never opens them).
psql "$url" -q <<'SQL'
INSERT INTO "user" (id, name, email) VALUES ('bench-user', 'Bench', 'bench@example.com');
INSERT INTO "user" (id, name, email)
  SELECT 'other-' || g, 'Other', 'other' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO connections (id, owner_id, provider, external_account_id, external_org_id, display_name,
                         account, scopes, status, access_token, refresh_token, expires_at,
                         created_at, updated_at)
  SELECT 'conn_' || u.id || '_' || g, u.id, 'linear', 'viewer-' || g, 'org-' || g, 'Org ' || g || ' (org' || g || ')',
         '{"actor":"user"}', '{read,write}', 'active', 'v1:sealed-access', 'v1:sealed-refresh',
         now() + interval '1 day', now(), now()
  FROM (SELECT id FROM "user") u, generate_series(1, 5) g;
ANALYZE connections;
SQL

mkdir -p "$work/api/auth"
token="$(./target/release/examples/bench_token "$work/api/auth/jwks" bench-user)"
python3 -m http.server 5901 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
pids+=($!)

# Same tuning as bench/run.sh for a box that runs server, PostgreSQL and wrk on 2 cores: no TLS
# to the database on the same host, one HTTP worker, 6 pooled connections.
APP_ENV=development RUST_LOG=warn DATABASE_URL="$url?sslmode=disable" \
  AUTH_JWKS_URL="http://127.0.0.1:5901/api/auth/jwks" \
  SWITCHBOARD__SERVER__WORKERS="${SWITCHBOARD__SERVER__WORKERS:-1}" \
  SWITCHBOARD__DATABASE__POOL_MAX_SIZE="${SWITCHBOARD__DATABASE__POOL_MAX_SIZE:-6}" \
  SWITCHBOARD__CONNECTORS__REFRESH__SWEEP_ENABLED=false CONNECTORS_LISTEN=127.0.0.1:5902 \
  ./target/release/switchboard serve --role connectors &
pids+=($!)
for _ in $(seq 1 50); do
  curl -fs -o /dev/null http://127.0.0.1:5902/healthz && break
  sleep 0.2
done
check="$(curl -fs -H "Authorization: Bearer $token" http://127.0.0.1:5902/api/connections)"
count="$(printf '%s' "$check" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connections"]))')"
[ "$count" = 5 ] || { echo "expected 5 connections, got: $check" >&2; exit 1; }

# Warm up (JWKS fetched, pool filled), then measure.
wrk -t2 -c32 -d5s -H "Authorization: Bearer $token" http://127.0.0.1:5902/api/connections >/dev/null
echo "wrk -t2 -c32 -d$duration --latency -H 'Authorization: Bearer <jwt>' http://127.0.0.1:5902/api/connections"
wrk -t2 -c32 -d"$duration" --latency -H "Authorization: Bearer $token" http://127.0.0.1:5902/api/connections
