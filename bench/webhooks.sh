#!/usr/bin/env bash
# Webhook intake and job-queue benchmarks against a release build (results: bench/RESULTS.md).
#
#   bench/webhooks.sh                     # intake drain1 drain2 draining
#   bench/webhooks.sh intake              # one or more of the scenarios below
#
#   intake    POST /webhooks/linear, wrk 2 threads x 32 connections, valid signature, a unique
#             Linear-Delivery per request, job workers off; then rows == 2xx is checked.
#   drain1    100,000 trivial jobs drained by one process (examples/jobs_drain)
#   drain2    the same with two processes on one database
#   draining  intake latency while the server's own workers drain 100,000 queued webhook_route
#             jobs over 100,000 pending deliveries (the tables emptied and seeded first; each
#             run absorbs the jobs waiting behind it and routes every pending delivery in chunks)
#
# Needs wrk (apt-get install wrk), python3, PostgreSQL on 127.0.0.1:5432. Own database
# (switchboard_bench_wh), dropped and recreated; own port (BENCH_PORT, default 5302).
# Builds nothing: SWITCHBOARD_BIN (default target/release/switchboard) and JOBS_DRAIN_BIN
# (default target/release/examples/jobs_drain; only drain1/drain2) are run as they are.
# intake also prints CPU per delivery of the server and of its PostgreSQL backends
# (/proc/<pid>/stat, measured while the server still runs), a load-independent cost measure.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(intake drain1 drain2 draining)
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
PORT="${BENCH_PORT:-5302}"
SECRET=bench-linear-webhook-secret
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
BIN="${SWITCHBOARD_BIN:-target/release/switchboard}"
DRAIN_BIN="${JOBS_DRAIN_BIN:-target/release/examples/jobs_drain}"
[ -x "$BIN" ] || { echo "$BIN is missing: cargo build --release --bin switchboard" >&2; exit 1; }
case " ${scenarios[*]} " in *" drain"[12]" "*)
  [ -x "$DRAIN_BIN" ] || { echo "$DRAIN_BIN is missing: cargo build --release --example jobs_drain" >&2; exit 1; } ;;
esac

server="postgres://postgres@127.0.0.1:5432"
db=switchboard_bench_wh
fresh_db "$BIN" "$server" "$db"
export APP_ENV=development RUST_LOG=warn
export CONNECTORS_LISTEN="127.0.0.1:$PORT" LINEAR_WEBHOOK_SECRET=$SECRET
# Tuned like bench/run.sh for one box running server, PostgreSQL and wrk on 2 cores.
export SWITCHBOARD__SERVER__WORKERS="${SWITCHBOARD__SERVER__WORKERS:-1}"
export SWITCHBOARD__DATABASE__POOL_MAX_SIZE="${SWITCHBOARD__DATABASE__POOL_MAX_SIZE:-6}"

pid=
start_server() { # jobs enabled?
  SWITCHBOARD__JOBS__ENABLED=$1 "$BIN" serve --role connectors >"$out/webhooks-server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; cat "$out/webhooks-server.log" >&2; exit 1
}
stop_server() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop_server EXIT
sql() { psql "$server/$db" -Atqc "$1"; }
cpu_ticks() { # clock ticks of CPU (user + system) used so far by the server and by the database's backends
  local pids
  pids=$(sql "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid()")
  python3 - "$pid" $pids <<'PY'
import sys
def ticks(p):
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0
print(ticks(sys.argv[1]), sum(ticks(p) for p in sys.argv[2:]))
PY
}

sign_body() { # a fresh webhookTimestamp (now + 20 s: valid for the next ~80 s), signed
  python3 - "$SECRET" "$out/wh-body.json" "$out/wh-sig.txt" <<'PY'
import hashlib, hmac, json, sys, time
secret, body_path, sig_path = sys.argv[1:]
body = json.load(open("/work/shared/baseline/bench/linear-issue.json")) if __import__("os").path.exists("/work/shared/baseline/bench/linear-issue.json") else {"type": "Issue", "action": "update", "data": {}}
body["organizationId"] = "bench-org"
body["webhookTimestamp"] = int(time.time() * 1000) + 20000
raw = json.dumps(body, separators=(",", ":")).encode()
open(body_path, "wb").write(raw)
open(sig_path, "w").write(hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest())
PY
}

run_wrk() { # name prefix
  sign_body
  BODY_FILE="$out/wh-body.json" SIG_FILE="$out/wh-sig.txt" PREFIX="$2" RESULT_FILE="$out/$1.json" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/webhooks.lua \
    "http://127.0.0.1:$PORT/webhooks/linear" >"$out/$1.txt"
  tail -1 "$out/$1.json"
}

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    intake)
      : >"$out/intake.json"
      before=$(sql "SELECT count(*) FROM webhook_events")
      start_server false
      read -r srv0 pg0 < <(cpu_ticks)
      run_wrk intake "intake-$(date +%s)"
      read -r srv1 pg1 < <(cpu_ticks)
      stop_server
      after=$(sql "SELECT count(*) FROM webhook_events")
      jobs=$(sql "SELECT count(*) FROM jobs WHERE kind = 'webhook_route'")
      python3 - "$out/intake.json" "$((after - before))" "$jobs" "$((srv1 - srv0))" "$((pg1 - pg0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rows, jobs = int(sys.argv[2]), int(sys.argv[3])
srv, pg, hz = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ok = r["requests"] - r["non2xx"]
print(f"intake: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
      f"2xx {ok}, non-2xx {r['non2xx']}, rows stored {rows}, route jobs queued {jobs} (one per batch), "
      f"lost {max(ok - rows, 0)} (rows - 2xx = {rows - ok}: requests in flight when wrk stopped)")
if rows:
    print(f"intake CPU per delivery: server {srv / hz / rows * 1e6:.0f} us, "
          f"PostgreSQL backends {pg / hz / rows * 1e6:.0f} us")
PY
      ;;
    drain1|drain2)
      sql "DELETE FROM jobs WHERE kind = 'bench_noop'" >/dev/null
      "$DRAIN_BIN" fill 100000
      if [ "$scenario" = drain1 ]; then
        "$DRAIN_BIN" drain "${DRAIN_CONCURRENCY:-32}" | tee "$out/drain1.txt"
      else
        "$DRAIN_BIN" drain "${DRAIN_CONCURRENCY:-32}" >"$out/drain2-a.txt" &
        a=$!
        "$DRAIN_BIN" drain "${DRAIN_CONCURRENCY:-32}" >"$out/drain2-b.txt"
        wait $a
        cat "$out/drain2-a.txt" "$out/drain2-b.txt"
      fi
      ;;
    draining)
      # The issue's scenario is intake latency while the queue drains 100,000 jobs. Seed
      # 100,000 pending deliveries, and give each of them a webhook_route job of its own (the
      # shape one job per delivery would leave), so 100,000 jobs are queued when the run starts.
      # Exactly that many, whatever earlier scenarios left: the tables start empty.
      sql "SET client_min_messages = warning; TRUNCATE webhook_events, jobs CASCADE" >/dev/null
      # Each seeded delivery carries the intake's own body (the baseline's 1.5 KB Linear issue).
      sign_body
      sql "INSERT INTO webhook_events (provider, delivery_id, event_type, action, payload, received_at)
           SELECT 'linear', 'seed-' || g, 'Issue', 'update',
                  jsonb_set(\$body\$$(cat "$out/wh-body.json")\$body\$::jsonb, '{organizationId}', to_jsonb('org-seed-' || (g % 32))), now()
           FROM generate_series(1, 100000) g" >/dev/null
      sql "INSERT INTO jobs (kind, payload, max_attempts, run_at, created_at, updated_at)
           SELECT 'webhook_route', '{}', 5, now(), now(), now() FROM generate_series(1, 100000)" >/dev/null
      queued=$(sql "SELECT count(*) FROM jobs WHERE kind = 'webhook_route' AND state = 'queued'")
      pending=$(sql "SELECT count(*) FROM webhook_events WHERE status = 'pending'")
      start_server true
      run_wrk draining "draining-$(date +%s)"
      left=$(sql "SELECT count(*) FROM jobs WHERE kind = 'webhook_route' AND state = 'queued'")
      left_pending=$(sql "SELECT count(*) FROM webhook_events WHERE status = 'pending'")
      stop_server
      echo "draining: at start $pending deliveries pending routing ($queued webhook_route jobs, one per intake batch); after the run $left_pending pending ($left jobs), the run's own deliveries included"
      ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
