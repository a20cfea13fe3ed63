# Shared set-up for the benchmarks: wrk, the release binary, a throw-away data directory, the
# server's start and stop, and one wrk measurement with its summary line. Source it after
# setting PORT (and optionally DURATION, CONNECTIONS, THREADS).

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
# BIN=/path/to/portcullis measures another binary (the previous release, to compare).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$PWD/target/release/portcullis"
fi

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

export PORTCULLIS_DATA_DIR="$WORK/data"
export PORTCULLIS_LISTEN="127.0.0.1:$PORT"
export PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$PORT"
export RUST_LOG=warn
# PORTCULLIS_METRICS_LISTEN=off measures the server with metrics off.
export PORTCULLIS_METRICS_LISTEN="${PORTCULLIS_METRICS_LISTEN:-127.0.0.1:0}"
BASE="http://127.0.0.1:$PORT"

start_server() {
  "$BIN" serve 2>>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bench: server did not start"; cat "$WORK/server.log"; exit 1
}

rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

# run NAME SCRIPT PATH [SECONDS]: one wrk measurement; prints req/s, p50, p99 and errors.
# ONLY=word runs just the measurements whose name contains it.
run() {
  local name="$1" script="$2" path="$3" seconds="${4:-$DURATION}"
  if [ -n "${ONLY:-}" ] && [[ "$name" != *"$ONLY"* ]]; then return; fi
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --latency -s "$script" "$BASE$path" > "$WORK/$name.txt"
  local rate p50 p99 bad
  rate="$(awk '/^Requests\/sec/ { print $2 }' "$WORK/$name.txt")"
  p50="$(awk '$1 == "50%" { print $2 }' "$WORK/$name.txt")"
  p99="$(awk '$1 == "99%" { print $2 }' "$WORK/$name.txt")"
  bad="$(awk '/Non-2xx or 3xx/ { print $5 }' "$WORK/$name.txt")"
  printf '%-30s %10s req/s   p50 %-9s p99 %-9s errors %s\n' "$name" "$rate" "$p50" "$p99" "${bad:-0}"
}
