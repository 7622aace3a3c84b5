#!/usr/bin/env bash
# Scale-out benchmark (issue 17): through HAProxy, one process per role against two, in the same
# run, on one database: get-session, /api/me, /api/connections, webhook intake; then sign-in with
# database rate limits against memory ones (two auth processes). Results: bench/RESULTS.md.
#
#   bench/scale.sh target/release/switchboard
#
# Builds nothing (cargo build --release first). Starts and stops its own processes and HAProxy;
# needs haproxy, wrk, psql, python3 and PostgreSQL on 127.0.0.1:5432 (own database
# switchboard_bench_scale, dropped and recreated). DURATION (default 10s), CONNECTIONS (32).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin="$(realpath "${1:?usage: bench/scale.sh path/to/release/switchboard}")"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
for tool in haproxy wrk psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install $tool)" >&2; exit 1; }
done
out="$(mktemp -d /tmp/switchboard-scale-bench.XXXXXX)"
server="postgres://postgres@127.0.0.1:5432"
db=switchboard_bench_scale
SECRET=bench-linear-webhook-secret
pids=()
trap 'stop_pids; rm -rf "$out"' EXIT
fresh_db "$bin" "$server" "$db"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AUTH_FRONT=$(free_port); CONN_FRONT=$(free_port)

# Each process: one HTTP worker and 4 pooled connections (two processes per role then hold what
# bench/run.sh gives one process of both roles), no job workers (intake only).
start() { # n storage
  local n=$1 storage=$2 auth_servers="" conn_servers=""
  for i in $(seq 1 "$n"); do
    local ap cp
    ap=$(free_port); cp=$(free_port)
    APP_ENV=development RUST_LOG=warn AUTH_LISTEN="127.0.0.1:$ap" \
      SWITCHBOARD__SERVER__WORKERS=1 SWITCHBOARD__DATABASE__POOL_MAX_SIZE=4 \
      SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED=true SWITCHBOARD__AUTH__RATE_LIMIT__STORAGE="$storage" \
      SWITCHBOARD__AUTH__RATE_LIMIT__MAX=100000000 SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES=127.0.0.1 \
      SWITCHBOARD__JOBS__ENABLED=false \
      "$bin" serve --role auth >>"$out/auth-$i.log" 2>&1 &
    pids+=($!)
    APP_ENV=development RUST_LOG=warn CONNECTORS_LISTEN="127.0.0.1:$cp" \
      AUTH_JWKS_URL="http://127.0.0.1:$AUTH_FRONT/api/auth/jwks" LINEAR_WEBHOOK_SECRET=$SECRET \
      SWITCHBOARD__SERVER__WORKERS=1 SWITCHBOARD__DATABASE__POOL_MAX_SIZE=4 \
      SWITCHBOARD__JOBS__ENABLED=false \
      "$bin" serve --role connectors >>"$out/connectors-$i.log" 2>&1 &
    pids+=($!)
    auth_servers+="    server a$i 127.0.0.1:$ap"$'\n'
    conn_servers+="    server c$i 127.0.0.1:$cp"$'\n'
  done
  cat >"$out/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 3s
    option forwardfor
frontend auth
    bind 127.0.0.1:$AUTH_FRONT
    default_backend auth
frontend connectors
    bind 127.0.0.1:$CONN_FRONT
    default_backend connectors
backend auth
    balance roundrobin
    option httpchk GET /readyz
    default-server check inter 1s fall 2 rise 1
$auth_servers
backend connectors
    balance roundrobin
    option httpchk GET /readyz
    default-server check inter 1s fall 2 rise 1
$conn_servers
CFG
  haproxy -db -f "$out/haproxy.cfg" >>"$out/haproxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$AUTH_FRONT/readyz" >/dev/null &&
       curl -sf "http://127.0.0.1:$CONN_FRONT/readyz" >/dev/null; then
      sleep 1.5 # every server passes its first check (inter 1s, rise 1)
      return
    fi
    sleep 0.2
  done
  echo "processes did not become ready; logs in $out" >&2; trap - EXIT; exit 1
}

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $4} END {}' "$1" | head -1; }
run_wrk() { # name url [wrk args...]
  local name=$1 url=$2; shift 2
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$out/$name.txt"
  printf '%s' "$(rps "$out/$name.txt")"
}

origin=http://localhost:5001

sign_body() { # fresh webhookTimestamp (+20 s), signed
  python3 - "$SECRET" "$out/wh-body.json" "$out/wh-sig.txt" <<'PY'
import hashlib, hmac, json, sys, time
secret, body_path, sig_path = sys.argv[1:]
body = {"type": "Issue", "action": "update", "data": {"id": "bench"}, "organizationId": "bench-org",
        "webhookTimestamp": int(time.time() * 1000) + 20000}
raw = json.dumps(body, separators=(",", ":")).encode()
open(body_path, "wb").write(raw)
open(sig_path, "w").write(hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest())
PY
}

declare -A result
for n in 1 2; do
  start "$n" memory
  sign_in "http://127.0.0.1:$AUTH_FRONT" "$origin" "10.255.0.$n"
  bench_jwt "http://127.0.0.1:$AUTH_FRONT"
  result[get-session,$n]=$(run_wrk "get-session-$n" "http://127.0.0.1:$AUTH_FRONT/api/auth/get-session" -H "Cookie: $cookie")
  result[me,$n]=$(run_wrk "me-$n" "http://127.0.0.1:$CONN_FRONT/api/me" -H "Authorization: Bearer $jwt")
  result[connections,$n]=$(run_wrk "connections-$n" "http://127.0.0.1:$CONN_FRONT/api/connections" -H "Authorization: Bearer $jwt")
  sign_body
  result[webhooks,$n]=$(BODY_FILE="$out/wh-body.json" SIG_FILE="$out/wh-sig.txt" PREFIX="scale-$n-$(date +%s)" \
    run_wrk "webhooks-$n" "http://127.0.0.1:$CONN_FRONT/webhooks/linear" -s bench/webhooks.lua)
  stop_pids
done
# Sign-in on two auth processes: database rate limits against memory, each request from its own
# client address (so each is checked and none refused).
for storage in memory database; do
  start 2 "$storage"
  sign_in "http://127.0.0.1:$AUTH_FRONT" "$origin" 10.255.0.9
  result[sign-in,$storage]=$(run_wrk "sign-in-$storage" "http://127.0.0.1:$AUTH_FRONT/api/auth/sign-in/email" -s bench/scale-xff.lua)
  stop_pids
done

for f in "$out"/*.txt; do
  bad=$(awk '/Non-2xx|Socket errors/' "$f")
  [ -z "$bad" ] || echo "note: $(basename "$f" .txt): $bad"
done
echo
echo "Scale-out through HAProxy (load avg $(cut -d' ' -f1-3 /proc/loadavg), wrk -t2 -c$CONNECTIONS -d$DURATION)"
printf '%-22s %12s %12s %7s\n' scenario "1 per role" "2 per role" ratio
for s in get-session me connections webhooks; do
  a=${result[$s,1]}; b=${result[$s,2]}
  printf '%-22s %12s %12s %7s\n' "$s" "$a" "$b" "$(python3 -c "print(f'{$b/$a:.2f}x')")"
done
a=${result[sign-in,memory]}; b=${result[sign-in,database]}
printf '%-22s %12s %12s %7s\n' "sign-in (2 auth)" "mem $a" "db $b" "$(python3 -c "print(f'{$b/$a:.2f}x')")"
