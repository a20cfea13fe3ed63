#!/usr/bin/env bash
# Throughput of the protocol endpoints on the release binary (SQLite, the embedded default):
# client_credentials (RS256 and ES256), the refresh grant, introspection, userinfo and JWKS.
# wrk runs on the same machine. Prints requests/s and p99 for each.
#
# Usage: bench/oauth.sh  (DURATION=10 REFRESH_SECONDS=4 CONNECTIONS=32 PORT=18090 to change;
#                        ONLY=refresh, ONLY=introspection… to run one measurement)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-18090}"
source bench/common.sh

"$BIN" migrate 2>/dev/null
MACHINE="$("$BIN" client create --name bench-machine --grant-types client_credentials --scopes reports)"
M_ID="$(echo "$MACHINE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')"
M_SECRET="$(echo "$MACHINE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"
APP="$("$BIN" client create --name bench-app --redirect-uri http://127.0.0.1:9/cb --skip-consent)"
A_ID="$(echo "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')"
A_SECRET="$(echo "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"
echo "correct-horse-battery-staple" | "$BIN" user create --email bench@example.com --password-stdin >/dev/null
M_BASIC="$(printf '%s:%s' "$M_ID" "$M_SECRET" | base64 -w0)"
A_BASIC="$(printf '%s:%s' "$A_ID" "$A_SECRET" | base64 -w0)"

post_script() { # file, body, basic
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = "$2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $3"
LUA
}

# The physical limit of RS256 grants on this machine, measured in this run: RSA-2048
# signatures a second on one core (OpenSSL; our aws-lc signs at a similar rate) × cores.
if command -v openssl >/dev/null; then
  SIGNS="$(openssl speed -seconds 2 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { print $6 }')"
  [ -n "$SIGNS" ] && echo "bench: RSA-2048 ceiling $(python3 -c "print(round($SIGNS * $(nproc)))") signatures/s ($SIGNS on one core × $(nproc))"
fi

start_server
# Refresh tokens (one per request wrk will make) and an access token for userinfo, made by
# running the code flow as a browser would: sign in, then authorize and exchange, in four
# processes. The refresh run is shorter so that the tokens last: enough for 8,000 refreshes a
# second (running out shows as errors).
REFRESH_SECONDS="${REFRESH_SECONDS:-4}"
REFRESH_COUNT=$(( REFRESH_SECONDS * 8000 ))
if [ -n "${ONLY:-}" ] && [[ "refresh grant" != *"$ONLY"* ]]; then REFRESH_COUNT=8; fi
python3 - "$BASE" "$A_ID" "$A_BASIC" "$REFRESH_COUNT" "$WORK" <<'PY'
import base64, hashlib, http.client, json, multiprocessing, re, secrets, sys, urllib.parse
base, client_id, basic, count, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

def prepare(n):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    cookies = {}
    def req(method, path, body=None, headers=None):
        h = dict(headers or {})
        if cookies: h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse(); data = r.read().decode()
        for k, v in re.findall(r"(portcullis_\w+)=([^;,]+)", r.getheader("set-cookie") or ""):
            cookies[k] = v
        return r, data
    _, page = req("GET", "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "email": "bench@example.com", "password": "correct-horse-battery-staple"})
    req("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded", "Origin": base})
    refresh, access = [], None
    for i in range(n):
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": "openid email offline_access", "code_challenge": challenge, "code_challenge_method": "S256", "state": "x"})
        r, _ = req("GET", "/oauth/authorize?" + q)
        code = urllib.parse.parse_qs(urllib.parse.urlparse(r.getheader("location")).query)["code"][0]
        body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": verifier})
        r, data = req("POST", "/oauth/token", body, {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + basic})
        tokens = json.loads(data)
        refresh.append(tokens["refresh_token"]); access = tokens["access_token"]
    return refresh, access

workers = 4
with multiprocessing.Pool(workers) as pool:
    results = pool.map(prepare, [count // workers] * workers)
refresh = [t for r, _ in results for t in r]
open(work + "/refresh.txt", "w").write("\n".join(refresh) + "\n")
open(work + "/access.txt", "w").write(results[0][1])
PY
ACCESS="$(cat "$WORK/access.txt")"

post_script "$WORK/cc.lua" "grant_type=client_credentials&scope=reports" "$M_BASIC"
post_script "$WORK/introspect.lua" "token=$ACCESS" "$A_BASIC"
cat > "$WORK/userinfo.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $ACCESS"
LUA
cat > "$WORK/refresh.lua" <<LUA
local tokens = {}
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  for line in io.lines("$WORK/refresh.txt") do table.insert(tokens, line) end
  next_index = id + 1
end
function request()
  local t = tokens[next_index]
  next_index = next_index + $THREADS
  if t == nil then t = "exhausted" end
  return wrk.format("POST", "/oauth/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic $A_BASIC",
  }, "grant_type=refresh_token&refresh_token=" .. t)
end
LUA
: > "$WORK/get.lua"

echo "bench: $(nproc) cores, wrk $THREADS threads / $CONNECTIONS connections, ${DURATION}s each, SQLite"
# The server's own CPU per grant beside one signature's: how near the signing the rest of a
# grant comes, whatever share of the cores wrk takes.
server_cpu_ms() { awk -v tick="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / tick }' "/proc/$SERVER_PID/stat"; }
CPU_BEFORE="$(server_cpu_ms)"
run "client_credentials RS256" "$WORK/cc.lua" /oauth/token
CPU_AFTER="$(server_cpu_ms)"
if [ -z "${ONLY:-}" ] || [[ "client_credentials RS256" == *"$ONLY"* ]]; then
  python3 - "$WORK/client_credentials RS256.txt" "$CPU_BEFORE" "$CPU_AFTER" "${SIGNS:-0}" "$(nproc)" <<'PY'
import re, sys
out, before, after, signs, cores = open(sys.argv[1]).read(), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
per_grant = (after - before) / requests
line = f"client_credentials RS256: {per_grant:.3f} ms of server CPU per grant"
if signs:
    sign_ms = 1000 / signs
    line += (f"; one RSA-2048 signature (OpenSSL) {sign_ms:.3f} ms = {sign_ms / per_grant:.2f} of it; "
             f"{rate / (signs * cores):.2f} of the signing ceiling (wrk shares the cores)")
print(line)
PY
fi
run "refresh grant" "$WORK/refresh.lua" /oauth/token "$REFRESH_SECONDS"
run "introspection" "$WORK/introspect.lua" /oauth/introspect
run "userinfo" "$WORK/userinfo.lua" /oauth/userinfo
run "jwks" "$WORK/get.lua" /oauth/jwks

stop_server
export PORTCULLIS_SIGNING_ALG=ES256
start_server
run "client_credentials ES256" "$WORK/cc.lua" /oauth/token
echo "RSS after load: $(rss_mb) MB"
