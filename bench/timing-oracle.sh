#!/usr/bin/env bash
# Timing oracle check (issue 10, finding 5): does an endpoint answer measurably slower for an
# address that has an account than for one that has none? Release build, `serve --role auth` on
# its own ports and scratch database, curl from the same machine. For each endpoint: PAIRS
# interleaved pairs (known, unknown; the order flips every pair), after a warm-up. Prints the
# medians, their difference, and in how many pairs the known address was the slower one.
#
#   bench/timing-oracle.sh                     # reset send-verification sign-up, 100 pairs each
#   PAIRS=60 bench/timing-oracle.sh reset      # one or more of: reset send-verification sign-up
#
# send-verification-email is measured with its anonymous padding off
# (`anonymous_min_response_ms = 0`), so the path itself is what is compared. sign-up runs with
# `require_email_verification` (the case where a taken address must not be told apart).
set -euo pipefail
cd "$(dirname "$0")/.."
endpoints=("$@")
[ ${#endpoints[@]} -eq 0 ] && endpoints=(reset send-verification sign-up)
PAIRS="${PAIRS:-100}"
WARMUP="${WARMUP:-20}"
PORT="${PORT:-5951}"
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
cargo build --release --quiet --bin switchboard

server="postgres://postgres@127.0.0.1:5432"
db=switchboard_timing
work="$(mktemp -d)"
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null

export DATABASE_URL="$server/$db?sslmode=disable"
export APP_ENV=development RUST_LOG=warn
export AUTH_LISTEN="127.0.0.1:$PORT"
export SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED=false
export SWITCHBOARD__AUTH__EMAIL_VERIFICATION__ANONYMOUS_MIN_RESPONSE_MS=0
export SWITCHBOARD__AUTH__EMAIL_AND_PASSWORD__REQUIRE_EMAIL_VERIFICATION=true
target/release/switchboard serve --role auth >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

base="http://127.0.0.1:$PORT/api/auth"
origin=http://localhost:5001 # the development BETTER_AUTH_URL's origin: trusted
password=timing-password-123
post() { # path json -> seconds
  curl -s -o /dev/null -w '%{time_total}\n' -H "Origin: $origin" -H 'Content-Type: application/json' \
    -d "$2" "$base$1"
}
# The known user: signed up, unverified (so send-verification-email would mail it).
post /sign-up/email "{\"name\":\"Known\",\"email\":\"known@example.com\",\"password\":\"$password\"}" >/dev/null

request() { # endpoint known|unknown n -> seconds
  local email
  if [ "$2" = known ]; then email=known@example.com; else email="nobody-$3-$RANDOM@example.com"; fi
  case "$1" in
    reset) post /request-password-reset "{\"email\":\"$email\",\"redirectTo\":\"/reset\"}" ;;
    send-verification) post /send-verification-email "{\"email\":\"$email\"}" ;;
    sign-up) post /sign-up/email "{\"name\":\"T\",\"email\":\"$email\",\"password\":\"$password\"}" ;;
    *) echo "unknown endpoint $1" >&2; exit 2 ;;
  esac
}

for endpoint in "${endpoints[@]}"; do
  for i in $(seq 1 "$WARMUP"); do
    request "$endpoint" known "w$i" >/dev/null
    request "$endpoint" unknown "w$i" >/dev/null
  done
  out="$work/$endpoint.tsv"
  : >"$out"
  for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 0 ]; then
      k=$(request "$endpoint" known "$i"); u=$(request "$endpoint" unknown "$i")
    else
      u=$(request "$endpoint" unknown "$i"); k=$(request "$endpoint" known "$i")
    fi
    printf '%s\t%s\n' "$k" "$u" >>"$out"
  done
  python3 - "$endpoint" "$out" <<'PY'
import statistics, sys
name, path = sys.argv[1], sys.argv[2]
pairs = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
known = [k * 1000 for k, _ in pairs]
unknown = [u * 1000 for _, u in pairs]
mk, mu = statistics.median(known), statistics.median(unknown)
slower = sum(1 for k, u in pairs if k > u)
diff = (mk - mu) / mu * 100
# The median of the per-pair differences: robust against the machine's load drifting.
paired = statistics.median((k - u) * 1000 for k, u in pairs) / mu * 100
verdict = "OK" if abs(diff) <= 5 else "DIFFERS"
print(f"{name:18} pairs {len(pairs):4}  known median {mk:7.3f} ms  unknown median {mu:7.3f} ms  "
      f"diff {diff:+5.1f} %  paired diff {paired:+5.1f} %  known slower in {slower}/{len(pairs)}  "
      f"{verdict}")
PY
done
