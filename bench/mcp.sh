#!/usr/bin/env bash
# MCP tool-call benchmark (issue 13) against a release build (results: bench/RESULTS.md).
#
#   bench/mcp.sh [BINARY]   # 16 concurrent callers of `echo` on server-everything
#
# BINARY defaults to target/release/switchboard; the script builds nothing (build it first:
# `cargo build --release --bin switchboard`).
# Starts server-everything (tests/mcp, `npm ci` there first; confined to 127.0.0.1 by
# tests/mcp/listen-loopback.js) in streamableHttp mode, `switchboard serve --role all` on its
# own database (switchboard_bench_mcp) and ports (BENCH_AUTH_PORT 5311, BENCH_PORT 5312), signs
# a user in, takes a JWT, adds the MCP server and then loads
# POST /api/mcp-servers/{id}/tools/echo/call with
#   1. wrk -t2 -c16 (throughput and latency of the whole path: the headline figures), and
#   2. bench/mcp-load.js, 16 callers, per call: total (client clock) minus the upstream time
#      from `Server-Timing: upstream;dur=` = switchboard's own part.
# WIRE=1 also captures the mcp-load.js phase on loopback (dumpcap) and reports the own part
# measured at switchboard's socket: request-to-response on kernel timestamps minus upstream.
# Needs wrk, node, PostgreSQL on 127.0.0.1:5432 (and tshark for WIRE=1).
#
# PIN=1 confines server-everything and the load generators (wrk, mcp-load.js) to CPU 1 and
# switchboard to CPU 0 (taskset), so on a 2-core machine the node processes cannot preempt the
# system under test; PostgreSQL is left where it is (the call path does not wait on it). The
# own part is reported two ways: the client's total minus upstream (includes the client's and
# the kernel's queueing: an upper bound), and Server-Timing own;dur= (the handler's time minus
# upstream, on switchboard's clock).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"
AUTH_PORT="${BENCH_AUTH_PORT:-5311}"
PORT="${BENCH_PORT:-5312}"
MCP_PORT="${BENCH_MCP_PORT:-5313}"
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -f tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js ] ||
  (cd tests/mcp && npm ci --no-audit --no-fund >/dev/null)
bin="${1:-target/release/switchboard}"
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release --bin switchboard" >&2; exit 1; }

server="postgres://postgres@127.0.0.1:5432"
db=switchboard_bench_mcp
fresh_db "$bin" "$server" "$db"
export APP_ENV=development RUST_LOG=warn
export AUTH_LISTEN="127.0.0.1:$AUTH_PORT" CONNECTORS_LISTEN="127.0.0.1:$PORT"
export BETTER_AUTH_URL="http://127.0.0.1:$AUTH_PORT" AUTH_JWKS_URL="http://127.0.0.1:$AUTH_PORT/.well-known/jwks.json"
export SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED=false BETTER_AUTH_TRUSTED_ORIGINS="http://127.0.0.1:$AUTH_PORT"
export SWITCHBOARD__CONNECTORS__MCP__ALLOW_LOOPBACK=true SWITCHBOARD__SERVER__DRAIN_DELAY_SECS=0
export SWITCHBOARD__SERVER__WORKERS="${SWITCHBOARD__SERVER__WORKERS:-1}"
export SWITCHBOARD__DATABASE__POOL_MAX_SIZE="${SWITCHBOARD__DATABASE__POOL_MAX_SIZE:-6}"

pids=()
pin_cpus "server-everything, wrk and mcp-load.js"
trap stop_pids EXIT

(cd tests/mcp && exec "${pin_load[@]}" env -i PATH="$PATH" PORT="$MCP_PORT" node -r ./listen-loopback.js \
  node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp) >"$out/mcp-everything.log" 2>&1 &
pids+=($!)
"${pin_sut[@]}" "$bin" serve --role all >"$out/mcp-server.log" 2>&1 &
pids+=($!)
sb=$!
wait_port "$MCP_PORT"
wait_port "$PORT"

sign_in "http://127.0.0.1:$AUTH_PORT" "http://127.0.0.1:$AUTH_PORT"
bench_jwt "http://127.0.0.1:$AUTH_PORT"
id=$(curl -sf -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$MCP_PORT/mcp\",\"name\":\"Everything\"}" \
  "http://127.0.0.1:$PORT/api/mcp-servers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
call_url="http://127.0.0.1:$PORT/api/mcp-servers/$id/tools/echo/call"
echo "one call: $(curl -sf -D "$out/mcp-headers.txt" -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
  -d '{"arguments":{"message":"hello"}}' "$call_url")"
grep -i '^server-timing' "$out/mcp-headers.txt" || true

cat >"$out/mcp-call.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"arguments":{"message":"hello from the bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $jwt"
LUA
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"${pin_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$out/mcp-call.lua" "$call_url" >"$out/mcp-wrk.txt"
awk '/Requests\/sec/ {r=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2} /Non-2xx/ {n=$NF}
  END {printf "wrk -c'"$CONNECTIONS"': %s req/s, p50 %s, p99 %s, non-2xx %s\n", r, p50, p99, (n == "" ? 0 : n)}' "$out/mcp-wrk.txt"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
cap=
if [ "${WIRE:-0}" = 1 ]; then
  command -v dumpcap >/dev/null || { echo "WIRE=1 needs dumpcap and tshark: apt-get install tshark" >&2; exit 1; }
  rm -f "$out/mcp-wire.pcap"
  dumpcap -q -i lo -f "tcp port $PORT" -w "$out/mcp-wire.pcap" 2>"$out/mcp-dumpcap.log" &
  cap=$!
  sleep 1
fi
URL="$call_url" TOKEN="$jwt" CONCURRENCY="$CONNECTIONS" RUN_SECONDS="${RUN_SECONDS:-10}" "${pin_load[@]}" node bench/mcp-load.js | tee "$out/mcp-own.json"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$cap" ]; then
  sleep 0.5; kill -INT "$cap"; wait "$cap" 2>/dev/null || true
  # On the wire at switchboard's socket (kernel timestamps, no client scheduling): the time
  # from each request to its response (tshark's http.time), minus the upstream time the
  # response reports in Server-Timing: switchboard's own part, JWT check and HTTP included.
  tshark -r "$out/mcp-wire.pcap" -Y 'http.response && tcp.srcport == '"$PORT" -T fields \
    -e http.time -e http.response.line -E occurrence=a -E separator='|' >"$out/mcp-wire.txt" 2>/dev/null
  python3 - "$out/mcp-wire.txt" <<'PY'
import re, sys
own, wire = [], []
for line in open(sys.argv[1]):
    t, _, headers = line.partition("|")
    m = re.search(r"upstream;dur=([0-9.]+)", headers)
    if not t or not m:
        continue
    w = float(t) * 1000
    wire.append(w)
    own.append(w - float(m.group(1)))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]
if own:
    print(f"own part on the wire (request to response at switchboard's socket, minus upstream), {len(own)} calls: "
          f"p50 {pct(own, .5):.3f} ms, p90 {pct(own, .9):.3f} ms, p99 {pct(own, .99):.3f} ms; "
          f"request to response p50 {pct(wire, .5):.3f} ms, p99 {pct(wire, .99):.3f} ms")
else:
    print("own part on the wire: no responses decoded")
PY
fi
python3 - "$out/mcp-own.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"own part (total - Server-Timing upstream), {r['calls']} calls, {r['rps']}/s: "
      f"p50 {r['own_p50_ms']} ms, p99 {r['own_p99_ms']} ms; "
      f"total p50 {r['total_p50_ms']} ms, p99 {r['total_p99_ms']} ms; "
      f"upstream p50 {r['upstream_p50_ms']} ms, p99 {r['upstream_p99_ms']} ms; non-2xx {r['non2xx']}")
print(f"own part on switchboard's clock (Server-Timing own;dur=): "
      f"p50 {r['server_own_p50_ms']} ms, p99 {r['server_own_p99_ms']} ms")
PY
echo "switchboard RSS: $(awk '$1 == "VmRSS:" {printf "%.1f MB", $2 / 1024}' /proc/$sb/status)"
# Stop switchboard (SIGTERM) so its batch writer flushes, then count the recorded calls.
kill "$sb"; wait "$sb" 2>/dev/null || true
echo "calls recorded: $(psql "$server/$db" -Atqc 'SELECT count(*) FROM mcp_tool_calls')"

