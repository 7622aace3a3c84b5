#!/usr/bin/env bash
# Loads a release build of `switchboard serve --role all` with wrk from the same machine and
# prints requests/s, latency percentiles and the server's RSS. Results go to bench/out/.
#
#   bench/run.sh                 # every scenario
#   bench/run.sh get-session     # one or more of: idle get-session get-session-db token jwks me sign-in mixed
#
# Needs: wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432. Uses its own database
# (switchboard_bench), dropped and recreated each run. Rate limits are off for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(idle get-session get-session-db token jwks me sign-in mixed)
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
out=bench/out
mkdir -p "$out"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet

server="postgres://postgres@127.0.0.1:5432"
fresh_db target/release/switchboard "$server" switchboard_bench
# Tuned for this box, which runs the server, PostgreSQL and wrk on the same 2 cores: TLS to a
# database on the same host buys nothing (libpq would negotiate it with Debian's default
# snakeoil certificate), one HTTP worker per listener and 6 pooled connections leave the other
# core to PostgreSQL and the load generator. Override any of them from the environment.
export DATABASE_URL="${BENCH_DATABASE_URL:-$DATABASE_URL}"
export APP_ENV=development RUST_LOG=warn
export SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED=false
export SWITCHBOARD__SERVER__WORKERS="${SWITCHBOARD__SERVER__WORKERS:-1}"
export SWITCHBOARD__DATABASE__POOL_MAX_SIZE="${SWITCHBOARD__DATABASE__POOL_MAX_SIZE:-6}"
target/release/switchboard serve --role all >"$out/server.log" 2>&1 &
pid=$!
pids=("$pid")
trap stop_pids EXIT
wait_port 5001
wait_port 5002

rss() { awk -v k="$1" '$1 == k":" { printf "%.1f MB", $2 / 1024 }' "/proc/$pid/status"; }
summary() { # name file
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$2")
  p50=$(awk '$1 == "50%" {print $2}' "$2")
  p99=$(awk '$1 == "99%" {print $2}' "$2")
  printf '%-28s %10s req/s   p50 %-9s p99 %-9s\n' "$1" "$rps" "$p50" "$p99"
}

sign_in http://127.0.0.1:5001 http://localhost:5001

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    idle)
      sleep 2
      echo "idle RSS (serve --role all, after start-up and one sign-in): $(rss VmRSS)" | tee "$out/idle.txt"
      ;;
    get-session)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" \
        http://127.0.0.1:5001/api/auth/get-session >"$out/get-session.txt"
      summary "GET /api/auth/get-session" "$out/get-session.txt"
      ;;
    get-session-db)
      # Better Auth's disableCookieCache: every request reads PostgreSQL, none the memory.
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" \
        "http://127.0.0.1:5001/api/auth/get-session?disableCookieCache=true" >"$out/get-session-db.txt"
      summary "GET get-session (database)" "$out/get-session-db.txt"
      ;;
    token)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" \
        http://127.0.0.1:5001/api/auth/token >"$out/token.txt"
      summary "GET /api/auth/token" "$out/token.txt"
      ;;
    jwks)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
        http://127.0.0.1:5001/.well-known/jwks.json >"$out/jwks.txt"
      summary "GET /.well-known/jwks.json" "$out/jwks.txt"
      ;;
    me)
      bench_jwt http://127.0.0.1:5001
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $jwt" \
        http://127.0.0.1:5002/api/me >"$out/me.txt"
      summary "GET /api/me (connectors)" "$out/me.txt"
      ;;
    sign-in)
      # One connection first: the time of one sign-in is (about) the time of one hash.
      wrk -t1 -c1 -d"$DURATION" --latency -s bench/sign-in.lua \
        http://127.0.0.1:5001/api/auth/sign-in/email >"$out/sign-in-c1.txt"
      summary "POST sign-in/email (c=1)" "$out/sign-in-c1.txt"
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/sign-in.lua \
        http://127.0.0.1:5001/api/auth/sign-in/email >"$out/sign-in.txt"
      summary "POST sign-in/email (c=$CONNECTIONS)" "$out/sign-in.txt"
      ;;
    mixed)
      # get-session while sign-ins saturate the hash pool.
      wrk -t1 -c16 -d"$DURATION" -s bench/sign-in.lua \
        http://127.0.0.1:5001/api/auth/sign-in/email >"$out/mixed-sign-in.txt" &
      load=$!
      sleep 1
      # A light probe (2 connections) and a heavy one (8), one after the other, then the light
      # one reading the database every time.
      wrk -t1 -c2 -d4s --latency -H "Cookie: $cookie" \
        http://127.0.0.1:5001/api/auth/get-session >"$out/mixed-get-session-c2.txt"
      wrk -t1 -c8 -d4s --latency -H "Cookie: $cookie" \
        http://127.0.0.1:5001/api/auth/get-session >"$out/mixed-get-session.txt"
      wrk -t1 -c2 -d4s --latency -H "Cookie: $cookie" \
        "http://127.0.0.1:5001/api/auth/get-session?disableCookieCache=true" >"$out/mixed-get-session-db.txt"
      wait $load
      summary "get-session (c=2) under sign-ins" "$out/mixed-get-session-c2.txt"
      summary "get-session (c=8) under sign-ins" "$out/mixed-get-session.txt"
      summary "  the same, database (c=2)" "$out/mixed-get-session-db.txt"
      summary "  (the sign-in load)" "$out/mixed-sign-in.txt"
      ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
echo "peak RSS: $(rss VmHWM)" | tee "$out/peak.txt"
