#!/usr/bin/env bash
# Agent-run benchmark (issue 14) against a release build; results: bench/RESULTS.md.
#
#   bench/agents.sh target/release/switchboard
#
# Builds nothing. Starts, on 127.0.0.1 only: server-everything (tests/mcp; `npm ci` there if
# missing; confined by tests/mcp/listen-loopback.js), the Anthropic stand-in
# bench/anthropic-standin.js (answers at once: a tool call, then an answer), and
# `switchboard serve --role all` on its own database (switchboard_bench_agents). One user, with
# the per-user run limits raised and agent_run job concurrency at 1,400, so the limits measured
# are the server's, not the configured quotas. Then:
#   1. runs started per second: wrk -c$CONNECTIONS POST /api/agent-runs for $DURATION (every
#      run then executes: a model turn calling `echo` through MCP, a model answer), and how
#      long the queue takes to finish them;
#   2. the loop's own time per turn, p50/p99: first $ALONE runs one at a time (the loop's own
#      cost) calling echo (`readOnlyHint`: no WAL flush in the run's turns), then (2b) as many
#      calling toggle-simulated-logging (no such hint: the step asking for it is flushed before
#      it runs), then $RUNS runs calling echo, 8 at a time, each followed on its SSE
#      stream, read from the switchboard_agent_turn_overhead_seconds histogram on /metrics
#      (per turn: wall time minus the model stream and the tool calls; bucket upper bounds);
#      then (2c) $RUNS runs started at $RATE per second (default 40), 8 at most at once: runs
#      overlapping without the closed loop driving the 2 cores to saturation;
#   3. memory per active streaming run: $STREAMS runs whose model streams a delta a second for
#      minutes, each with an SSE client on GET /api/agent-runs/{id}/events; RSS from /proc once
#      all are streaming, plus the database transactions and the server's CPU per second in
#      that steady state.
# PHASES="1 2 3" (default) picks the phases. The workers' pool is SWITCHBOARD__JOBS__POOL_MAX_SIZE
# (default here 4: a turn's writes queue behind each other on the configured 2).
# PIN=1 confines the stand-ins (server-everything, the Anthropic stand-in) and agents-load.js to
# CPU 1 and switchboard to CPU 0 (taskset): in production the model and the tools run elsewhere,
# and on a 2-core machine the node processes otherwise preempt the system under test.
# PostgreSQL is left where it is. AWAKE=1 holds /dev/cpu_dma_latency at 0 for the run (see
# keep_cpus_awake in bench/lib.sh): on a VM without halt polling each wake-up of an idle vCPU
# costs ~0.4 ms, and a turn is a chain of wake-ups (runtime, blocking thread, PostgreSQL).
# Needs node, wrk, psql, PostgreSQL on 127.0.0.1:5432. Ports: BENCH_AUTH_PORT 5321, BENCH_PORT
# 5322, BENCH_ANTHROPIC_PORT 5323, BENCH_MCP_PORT 5324.
set -euo pipefail
bin="$(realpath "${1:?usage: bench/agents.sh path/to/release/switchboard}")"
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-8}"
RATE="${RATE:-40}"
RUNS="${RUNS:-300}"
ALONE="${ALONE:-100}"
STREAMS="${STREAMS:-1000}"
PHASES="${PHASES:-1 2 3}"
phase() { case " $PHASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
AUTH_PORT="${BENCH_AUTH_PORT:-5321}"
PORT="${BENCH_PORT:-5322}"
ANTHROPIC_PORT="${BENCH_ANTHROPIC_PORT:-5323}"
MCP_PORT="${BENCH_MCP_PORT:-5324}"
out=bench/out
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -f tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js ] ||
  (cd tests/mcp && npm ci --no-audit --no-fund >/dev/null)

server="postgres://postgres@127.0.0.1:5432"
db=switchboard_bench_agents
fresh_db "$bin" "$server" "$db"
export APP_ENV=development RUST_LOG=warn
export AUTH_LISTEN="127.0.0.1:$AUTH_PORT" CONNECTORS_LISTEN="127.0.0.1:$PORT"
export BETTER_AUTH_URL="http://127.0.0.1:$AUTH_PORT" AUTH_JWKS_URL="http://127.0.0.1:$AUTH_PORT/.well-known/jwks.json"
export SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED=false BETTER_AUTH_TRUSTED_ORIGINS="http://127.0.0.1:$AUTH_PORT"
export SWITCHBOARD__CONNECTORS__MCP__ALLOW_LOOPBACK=true
export ANTHROPIC_API_KEY=bench-key SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL="http://127.0.0.1:$ANTHROPIC_PORT"
export SWITCHBOARD__CONNECTORS__AGENTS__MAX_CONCURRENT_RUNS=100000
export SWITCHBOARD__CONNECTORS__AGENTS__MAX_RUNS_PER_HOUR=100000000
# 1,400, not 1,100: the workers claim only while a quarter of a kind's slots are free (jobs/worker.rs),
# so with 1,100 slots the 1,000 long runs stalled at 826 in flight (174 never claimed).
export SWITCHBOARD__JOBS__CONCURRENCY__AGENT_RUN="${SWITCHBOARD__JOBS__CONCURRENCY__AGENT_RUN:-1400}"
export SWITCHBOARD__SERVER__WORKERS="${SWITCHBOARD__SERVER__WORKERS:-1}"
export SWITCHBOARD__DATABASE__POOL_MAX_SIZE="${SWITCHBOARD__DATABASE__POOL_MAX_SIZE:-6}"
export SWITCHBOARD__JOBS__POOL_MAX_SIZE="${SWITCHBOARD__JOBS__POOL_MAX_SIZE:-4}"

pids=()
trap stop_pids EXIT
pin_cpus "server-everything, the Anthropic stand-in and agents-load.js"
if [ "${AWAKE:-0}" = 1 ]; then
  keep_cpus_awake
  echo "idle CPUs poll (/dev/cpu_dma_latency held at 0; bench/lib.sh keep_cpus_awake)"
else
  echo "idle CPUs halt (AWAKE=1 keeps them polling)"
fi
load() { echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg)"; }
active() { psql "$server/$db" -Atqc "SELECT count(*) FROM agent_runs WHERE status IN ('queued','running')"; }

(cd tests/mcp && exec "${pin_load[@]}" env -i PATH="$PATH" PORT="$MCP_PORT" node -r ./listen-loopback.js \
  node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp) >"$out/agents-everything.log" 2>&1 &
pids+=($!)
PORT="$ANTHROPIC_PORT" SLOW_SECONDS="${SLOW_SECONDS:-900}" "${pin_load[@]}" node bench/anthropic-standin.js >"$out/agents-standin.log" 2>&1 &
pids+=($!)
"${pin_sut[@]}" "$bin" serve --role all >"$out/agents-server.log" 2>&1 &
sb=$!
pids+=($sb)
wait_port "$MCP_PORT"
wait_port "$ANTHROPIC_PORT"
wait_port "$PORT"

sign_in "http://127.0.0.1:$AUTH_PORT" "http://127.0.0.1:$AUTH_PORT"
bench_jwt "http://127.0.0.1:$AUTH_PORT"
curl -sf -o /dev/null -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$MCP_PORT/mcp\",\"name\":\"Everything\"}" \
  "http://127.0.0.1:$PORT/api/mcp-servers"
export BASE="http://127.0.0.1:$PORT" TOKEN="$jwt"

echo "== warm-up: one run"
RUNS=1 CONCURRENCY=1 "${pin_load[@]}" node bench/agents-load.js
load

if phase 1; then
echo "== 1. runs started per second (wrk -t2 -c$CONNECTIONS -d$DURATION POST /api/agent-runs)"
cat >"$out/agents-create.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"prompt":"Echo hello, then say you are done."}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $jwt"
LUA
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$out/agents-create.lua" "$BASE/api/agent-runs" >"$out/agents-wrk.txt"
awk '/Requests\/sec/ {r=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2} /Non-2xx/ {n=$NF}
  END {printf "started: %s runs/s, POST p50 %s, p99 %s, non-2xx %s\n", r, p50, p99, (n == "" ? 0 : n)}' "$out/agents-wrk.txt"
load
t0=$(date +%s.%N)
left=$(active)
for _ in $(seq 1 600); do
  left=$(active); [ "$left" = 0 ] && break; sleep 0.5
done
t1=$(date +%s.%N)
total=$(psql "$server/$db" -Atqc "SELECT count(*) FROM agent_runs")
echo "queue drained in $(echo "$t1 - $t0" | bc) s after the load ($left still active); runs by status: $(psql "$server/$db" -Atqc "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM agent_runs GROUP BY 1) s") (of $total)"
load

fi

if phase 2; then
# WAL flushes (fsync calls) in the whole cluster: the runs' durable commits and the WAL writer's
# own flushes of lazy commits (at most one per wal_writer_delay, 200 ms by default).
syncs() { psql "$server/postgres" -Atqc "SELECT wal_sync FROM pg_stat_wal"; }
per_run() { echo "WAL flushes per run (the WAL writer's included): $(echo "scale=2; ($(syncs) - $1) / $ALONE" | bc)"; }
echo "== 2a. server time per turn, excluding model and tools ($ALONE runs, one at a time)"
s0=$(syncs)
RUNS="$ALONE" CONCURRENCY=1 "${pin_load[@]}" node bench/agents-load.js | tee "$out/agents-overhead-alone.json"
per_run "$s0"
load
echo "== 2b. the same, calling a tool that may change something (its step waits for the WAL flush)"
s0=$(syncs)
TOOL=toggle-simulated-logging RUNS="$ALONE" CONCURRENCY=1 "${pin_load[@]}" node bench/agents-load.js |
  tee "$out/agents-overhead-alone-flushed.json"
per_run "$s0"
load
echo "== 2. server time per turn, excluding model and tools ($RUNS runs, 8 at a time)"
x0=$(psql "$server/postgres" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
c0=$(awk '{print $14 + $15}' "/proc/$sb/stat")
RUNS="$RUNS" CONCURRENCY=8 "${pin_load[@]}" node bench/agents-load.js | tee "$out/agents-overhead.json"
sleep 1 # the statistics collector lags
x1=$(psql "$server/postgres" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
c1=$(awk '{print $14 + $15}' "/proc/$sb/stat")
echo "server CPU per run (user + system, load-independent unlike the overhead above): $(echo "scale=2; ($c1 - $c0) * 1000 / $(getconf CLK_TCK) / $RUNS" | bc) ms"
echo "database commits per run (2 turns, 1 tool call; every process's queries, SSE and metrics included): $(echo "scale=1; ($x1 - $x0) / $RUNS" | bc)"
load
echo "== 2c. the same, $RATE runs started per second (8 at most at once): concurrent, not saturated"
RATE="$RATE" RUNS="$RUNS" CONCURRENCY=8 "${pin_load[@]}" node bench/agents-load.js | tee "$out/agents-overhead-rate.json"
load

fi

phase 3 || exit 0
echo "== 3. $STREAMS concurrent streaming runs, each with an SSE client"
MODE=memory SB_PID="$sb" STANDIN="http://127.0.0.1:$ANTHROPIC_PORT" STREAMS="$STREAMS" HOLD_SECONDS=12 \
  "${pin_load[@]}" node bench/agents-load.js >"$out/agents-memory.json" &
driver=$!
pids+=($driver)
for _ in $(seq 1 400); do [ -s "$out/agents-memory.json" ] && break; sleep 0.5; done
cat "$out/agents-memory.json"
# Steady state: database transactions per second and the server's CPU, over 10 s.
x0=$(psql "$server/postgres" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
c0=$(awk '{print $14 + $15}' "/proc/$sb/stat")
sleep 10
x1=$(psql "$server/postgres" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
c1=$(awk '{print $14 + $15}' "/proc/$sb/stat")
echo "steady state: $(( (x1 - x0) / 10 )) database transactions/s, server CPU $(( (c1 - c0) * 100 / $(getconf CLK_TCK) / 10 )) % of one core"
load
wait "$driver" || true
echo "switchboard RSS at the end: $(awk '$1 == "VmRSS:" {printf "%.1f MB", $2 / 1024}' /proc/$sb/status)"
