#!/usr/bin/env bash
# Password sign-in throughput and memory of the release binary on the embedded SQLite default.
#
# Builds the release binary, installs wrk if missing, starts the server on a fresh data dir,
# creates a user, prepares fresh anonymous sessions (each with its CSRF token, since every
# successful sign-in replaces its session), then has wrk post real sign-ins for DURATION seconds.
# Prints sign-ins/s (total and per core) with p50/p99 latency, and idle and loaded RSS.
#
# Usage: bench/login.sh            (DURATION=20 CONNECTIONS=8 PORT=18080 to change)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-20}"
CONNECTIONS="${CONNECTIONS:-8}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18080}"
CORES="$(nproc)"

source bench/common.sh

"$BIN" migrate 2>/dev/null
EMAIL="bench@example.com"
PASSWORD="correct-horse-battery-staple"
echo "$PASSWORD" | "$BIN" user create --email "$EMAIL" --password-stdin >/dev/null

start_server
sleep 2
IDLE_RSS="$(rss_mb)"

# One fresh anonymous session (cookie + CSRF token) per sign-in wrk will post.
SESSIONS=$(( DURATION * 150 + 500 ))
python3 - "$BASE" "$SESSIONS" > "$WORK/sessions.txt" <<'PY'
import http.client, re, sys, urllib.parse
base, count = sys.argv[1], int(sys.argv[2])
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
for _ in range(count):
    conn.request("GET", "/login")
    response = conn.getresponse()
    body = response.read().decode()
    # A visitor's form is bound to its CSRF cookie (older binaries: the session cookie).
    cookie = re.search(r"(portcullis_(?:csrf|session)=[^;]+)", response.getheader("set-cookie") or "").group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    print(cookie, token)
PY

cat > "$WORK/login.lua" <<LUA
local sessions = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  for line in io.lines("$WORK/sessions.txt") do
    local cookie, token = line:match("(%S+) (%S+)")
    table.insert(sessions, { cookie = cookie, token = token })
  end
  next_index = id + 1
  exhausted = 0
end
function request()
  local s = sessions[next_index]
  next_index = next_index + $THREADS
  if s == nil then
    exhausted = exhausted + 1
    return wrk.format("GET", "/health")
  end
  local body = "csrf_token=" .. s.token .. "&email=$EMAIL&password=$PASSWORD&next=%2Faccount"
  return wrk.format("POST", "/login", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = s.cookie,
    ["Origin"] = "$BASE",
  }, body)
end
LUA

echo "bench: $CORES cores, $THREADS wrk threads, $CONNECTIONS connections, ${DURATION}s of password sign-ins"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/login.lua" "$BASE" | tee "$WORK/wrk.txt"
LOADED_RSS="$(rss_mb)"

rate="$(awk '/^Requests\/sec/ { print $2 }' "$WORK/wrk.txt")"
p50="$(awk '$1 == "50%" { print $2 }' "$WORK/wrk.txt")"
p99="$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")"
bad="$(awk '/Non-2xx or 3xx/ { print $5 }' "$WORK/wrk.txt")"
per_core="$(awk -v r="$rate" -v c="$CORES" 'BEGIN { printf "%.1f", r / c }')"
echo
echo "== results =="
echo "password sign-ins/s: $rate ($per_core per core on $CORES cores; target >= 60 per core)"
echo "latency p50: $p50   p99: $p99"
echo "failed sign-ins: ${bad:-0}"
echo "idle RSS: ${IDLE_RSS} MB (target <= 30 MB)   RSS after load: ${LOADED_RSS} MB"
