# Steps the bench scripts share; `source bench/lib.sh` from the repository root (bash, set -e).
#
#   fresh_db BIN SERVER DB   drop DB on SERVER (postgres://…:5432) and migrate it afresh with BIN;
#                            exports DATABASE_URL
#   stop_pids                kill every process in the array `pids`, reap them, empty it
#   wait_port PORT           until something answers HTTP on 127.0.0.1:PORT (20 s, else exit 1)
#   sign_in AUTH ORIGIN [IP] sign the bench user up (if not yet) and in on the auth role at AUTH
#                            (http://127.0.0.1:port), from client address IP when given
#                            (X-Forwarded-For); sets `cookie`
#   bench_jwt AUTH           a JWT for the signed-in user (`cookie`) from AUTH; sets `jwt`
#   pin_cpus WHAT            with PIN=1, set the arrays pin_sut (taskset -c 0: switchboard)
#                            and pin_load (taskset -c 1: WHAT, the stand-ins and load
#                            generators); without, both empty. Says which.
#   keep_cpus_awake          hold /dev/cpu_dma_latency at 0 until stop_pids (needs root): idle
#                            CPUs poll instead of halting, as cyclictest does. On a VM without
#                            halt polling (guest_halt_poll_ns 0) every wake-up of an idle vCPU
#                            costs ~0.4 ms: a PostgreSQL round trip takes 0.45 ms idle, 0.09 ms
#                            with this held (pgbench, one client).

fresh_db() {
  local bin=$1 server=$2 db=$3
  export DATABASE_URL="$server/$db?sslmode=disable"
  PGOPTIONS='--client-min-messages=warning' psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  APP_ENV=development RUST_LOG=warn "$bin" migrate >/dev/null # creates the database
}

stop_pids() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

wait_port() {
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.2; done
  echo "nothing listens on $1" >&2
  exit 1
}

sign_in() {
  local auth=$1 origin=$2 xff=()
  [ -z "${3:-}" ] || xff=(-H "X-Forwarded-For: $3")
  curl -sf -o /dev/null -H "Origin: $origin" -H 'Content-Type: application/json' \
    -d '{"name":"Bench","email":"bench@example.com","password":"bench-password-123"}' \
    "$auth/api/auth/sign-up/email" || true # already signed up: the sign-in says if it works
  cookie=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' "${xff[@]}" \
    -d '{"email":"bench@example.com","password":"bench-password-123"}' \
    "$auth/api/auth/sign-in/email" | awk -F'[ ;]' 'tolower($1) == "set-cookie:" {print $2; exit}')
  [ -n "$cookie" ] || { echo "could not sign in the bench user" >&2; exit 1; }
}

bench_jwt() {
  jwt=$(curl -sf -H "Cookie: $cookie" "$1/api/auth/token" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  [ -n "$jwt" ] || { echo "no JWT" >&2; exit 1; }
}

keep_cpus_awake() {
  [ -w /dev/cpu_dma_latency ] || { echo "/dev/cpu_dma_latency is not writable (root?)" >&2; exit 1; }
  python3 -c 'import os, signal, struct
fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
os.write(fd, struct.pack("i", 0))
signal.pause()' &
  pids+=($!)
}

pin_cpus() {
  pin_load=() pin_sut=()
  if [ "${PIN:-0}" = 1 ]; then
    command -v taskset >/dev/null || { echo "taskset is missing (util-linux)" >&2; exit 1; }
    pin_load=(taskset -c 1) pin_sut=(taskset -c 0)
    echo "pinned: switchboard on CPU 0; $1 on CPU 1"
  else
    echo "not pinned (PIN=1 pins)"
  fi
}
