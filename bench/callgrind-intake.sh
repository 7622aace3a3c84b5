#!/usr/bin/env bash
# Instructions per webhook delivery in the server process (a repeatable measure on a shared
# machine): `serve --role connectors` under callgrind, N1 then N2 signed, unique deliveries
# sent one at a time; (Ir(N2) - Ir(N1)) / (N2 - N1). Needs valgrind, python3; release build.
#   bench/callgrind-intake.sh [N1=500] [N2=2500]
# CONCURRENCY=32 sends from that many connections at once (so the intake writers batch, as
# under load); SWITCHBOARD_BIN picks the binary (default target/release/switchboard); any
# SWITCHBOARD__* setting passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-500}; n2=${2:-2500}
out=bench/out; mkdir -p "$out"
PORT=5322; SECRET=bench-linear-webhook-secret
server="postgres://postgres@127.0.0.1:5432"; db=switchboard_bench_cg
export DATABASE_URL="$server/$db?sslmode=disable" APP_ENV=development RUST_LOG=warn
export CONNECTORS_LISTEN="127.0.0.1:$PORT" LINEAR_WEBHOOK_SECRET=$SECRET
BIN="${SWITCHBOARD_BIN:-target/release/switchboard}"; CONCURRENCY="${CONCURRENCY:-1}"
export SWITCHBOARD__SERVER__WORKERS=1 SWITCHBOARD__DATABASE__POOL_MAX_SIZE=2 SWITCHBOARD__JOBS__ENABLED=false
run() { # n -> total Ir of the server process
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  "$BIN" migrate >/dev/null
  rm -f "$out"/callgrind.out.*
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$BIN" serve --role connectors >"$out/callgrind-server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  python3 - "$1" "$PORT" "$SECRET" "$CONCURRENCY" <<'PY'
import hashlib, hmac, http.client, json, sys, threading, time
n, port, secret, conc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
body = json.load(open("/work/shared/baseline/bench/linear-issue.json"))
body["organizationId"] = "bench-org"
body["webhookTimestamp"] = int(time.time() * 1000) + 20000
raw = json.dumps(body, separators=(",", ":")).encode()
sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
def send(ids):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for i in ids:
        c.request("POST", "/webhooks/linear", raw, {"Content-Type": "application/json",
                  "Linear-Signature": sig, "Linear-Delivery": f"cg-{i}"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
threads = [threading.Thread(target=send, args=(range(k, n, conc),)) for k in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
PY
  kill -INT "$pid"; wait "$pid" || true
  callgrind_annotate "$out"/callgrind.out.* 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
a=$(run "$n1"); b=$(run "$n2")
echo "server instructions per delivery (concurrency $CONCURRENCY): $(( (b - a) / (n2 - n1) )) (Ir $a at $n1, $b at $n2)"
