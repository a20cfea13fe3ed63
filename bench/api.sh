#!/usr/bin/env bash
# The first-party JSON API on the release binary (SQLite, the embedded default): `whoami`
# (JWT signature check plus the revocation/sign-in check) and API password sign-ins.
#
# whoami is measured twice: with one token repeated (each token's database check is reused
# for a second, so this is the cached path) and with 20,000 distinct tokens cycled (each is
# checked against the database on almost every use). Sign-ins are argon2id-bound.
#
# Usage: bench/api.sh   (DURATION=10 CONNECTIONS=32 LOGIN_CONNECTIONS=8 PORT=18095 ONLY=whoami)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-18095}"
LOGIN_CONNECTIONS="${LOGIN_CONNECTIONS:-8}"
TOKENS="${TOKENS:-20000}"
source bench/common.sh

"$BIN" migrate 2>/dev/null
EMAIL="bench@example.com"
PASSWORD="correct-horse-battery-staple"
echo "$PASSWORD" | "$BIN" user create --email "$EMAIL" --password-stdin >/dev/null
start_server
sleep 1
IDLE_RSS="$(rss_mb)"

# Access tokens: four API sign-ins, each refreshed in a chain (every refresh gives a new access
# token of the same sign-in), in four processes.
python3 - "$BASE" "$EMAIL" "$PASSWORD" "$TOKENS" > "$WORK/tokens.txt" <<'PY'
import http.client, json, sys, urllib.parse
from concurrent.futures import ProcessPoolExecutor
base, email, password, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
url = urllib.parse.urlparse(base)
def post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{path}: {response.status} {data[:200]}")
    return json.loads(data)
def chain(count):
    conn = http.client.HTTPConnection(url.hostname, url.port)
    tokens = post(conn, "/api/v1/login", {"email": email, "password": password})
    out = [tokens["access_token"]]
    for _ in range(count - 1):
        tokens = post(conn, "/api/v1/token/refresh", {"refresh_token": tokens["refresh_token"]})
        out.append(tokens["access_token"])
    return out
with ProcessPoolExecutor(4) as pool:
    for tokens in pool.map(chain, [total // 4] * 4):
        print("\n".join(tokens))
PY
echo "bench: $(wc -l < "$WORK/tokens.txt") access tokens ready"

ONE="$(head -n1 "$WORK/tokens.txt")"
cat > "$WORK/whoami_one.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $ONE"
LUA
cat > "$WORK/whoami_many.lua" <<LUA
local tokens = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  for line in io.lines("$WORK/tokens.txt") do table.insert(tokens, line) end
  i = id
end
function request()
  i = (i + $THREADS) % #tokens
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i + 1] })
end
LUA
cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email": "$EMAIL", "password": "$PASSWORD"}'
wrk.headers["Content-Type"] = "application/json"
LUA

echo "bench: $(nproc) cores, wrk $THREADS threads; ${DURATION}s per run"
run whoami-one-token "$WORK/whoami_one.lua" /api/v1/whoami
run whoami-20k-tokens "$WORK/whoami_many.lua" /api/v1/whoami
CONNECTIONS="$LOGIN_CONNECTIONS" run api-login "$WORK/login.lua" /api/v1/login
echo "idle RSS: ${IDLE_RSS} MB   RSS after load: $(rss_mb) MB"
