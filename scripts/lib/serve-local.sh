# Sourced by scripts/check-openapi and scripts/schemathesis: builds the debug binary and starts
# it with both roles on free loopback ports (APP_ENV=test) against a fresh database, dropped on
# exit. Sets AUTH_URL, CONNECTORS_URL, SERVER_LOG and SERVER_PID; needs $work (a scratch dir)
# and a python3 to find free ports.

serve_local_cleanup() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  psql "${_pg_server%/*}/postgres" -qc "DROP DATABASE IF EXISTS $_pg_db WITH (FORCE)" >/dev/null 2>&1 || true
}

serve_local() {
  local python="${1:-python3}"
  cargo build -q
  _pg_server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  _pg_db="switchboard_check_$$"
  psql "${_pg_server%/*}/postgres" -qc "CREATE DATABASE $_pg_db" >/dev/null
  local auth_port connectors_port
  read -r auth_port connectors_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
  AUTH_URL="http://127.0.0.1:$auth_port"
  CONNECTORS_URL="http://127.0.0.1:$connectors_port"
  SERVER_LOG="$work/server.log"
  (
    export APP_ENV=test
    export DATABASE_URL="${_pg_server%/*}/$_pg_db"
    export AUTH_LISTEN="127.0.0.1:$auth_port" CONNECTORS_LISTEN="127.0.0.1:$connectors_port"
    export BETTER_AUTH_URL="$AUTH_URL" AUTH_JWKS_URL="$AUTH_URL/api/auth/jwks"
    # Agent runs are accepted (not 503 AGENTS_NOT_CONFIGURED); their model calls go to the
    # discard port on loopback and fail there, which is all a fuzz run needs.
    export ANTHROPIC_API_KEY="sk-ant-local-stand-in"
    export SWITCHBOARD__CONNECTORS__ANTHROPIC__BASE_URL="http://127.0.0.1:9"
    target/debug/switchboard migrate >/dev/null
    exec target/debug/switchboard serve --role all
  ) >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local url
  for url in "$AUTH_URL" "$CONNECTORS_URL"; do
    for _ in $(seq 1 300); do
      curl -fsS "$url/healthz" >/dev/null 2>&1 && break
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$SERVER_LOG" >&2
        return 1
      fi
      sleep 0.1
    done
    curl -fsS "$url/healthz" >/dev/null
  done
}
