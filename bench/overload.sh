#!/usr/bin/env bash
# Sign-ins beyond what the password workers can hash: what is refused, how fast, what still
# gets through, and whether other requests keep their speed.
#
# Builds the release binary (or takes BIN=…), starts it on SQLite, and measures three things
# in one run:
#   1. the ceiling: API password sign-ins with as many connections as cores × 4 (the pool is
#      just saturated, nothing waits long), sign-ins/s;
#   2. overload: wrk with FLOOD connections posting API sign-ins for DURATION seconds, each
#      connection paced so that together they offer TIMES × the ceiling (10 by default);
#      meanwhile probes, 20 requests a second each, time sign-ins (five of them: the p99 of
#      refused answers, and the wait of those let in), a JWKS fetch and an introspection;
#   3. the same probes with the server idle, for comparison.
# Prints the offered and accepted rates (accepted as a share of the ceiling), and p50/p99 of
# the refused sign-ins, the JWKS and introspection under overload and idle.
#
# Usage: bench/overload.sh        (DURATION=15 FLOOD=2000 TIMES=10 PORT=18091 BIN=… to change)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15}"
FLOOD="${FLOOD:-2000}"
TIMES="${TIMES:-10}"
PORT="${PORT:-18091}"
source bench/common.sh
# Room for the flood's connections, in wrk and in the server.
ulimit -n 65536 2>/dev/null || true

export PORTCULLIS_LOGIN_MAX_FAILURES_PER_IP=100000000
export PORTCULLIS_LOGIN_MAX_FAILURES_PER_ACCOUNT=100000000
"$BIN" migrate 2>/dev/null
EMAIL="bench@example.com"
PASSWORD="correct-horse-battery-staple"
echo "$PASSWORD" | "$BIN" user create --email "$EMAIL" --password-stdin >/dev/null
CLIENT_JSON="$("$BIN" client create --name Bench --grant-types client_credentials --scopes read 2>/dev/null || true)"
start_server
sleep 1

cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "$EMAIL", "password": "$PASSWORD"}'
local counts = {}
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
end
LUA

# 1. The ceiling.
CORES="$(nproc)"
wrk -t2 -c"$(( CORES * 4 ))" -d"${DURATION}s" -s "$WORK/login.lua" "$BASE/api/v1/login" > "$WORK/ceiling.txt"
CEILING="$(awk '/^Requests\/sec/ { print $2 }' "$WORK/ceiling.txt")"

probe() {  # probe SECONDS OUT: time sign-ins, JWKS and introspection, 20/s each
  python3 - "$BASE" "$1" "$EMAIL" "$PASSWORD" "$CLIENT_JSON" > "$2" <<'PY'
import http.client, json, sys, threading, time, urllib.parse, base64
base, seconds, email, password, client_json = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
url = urllib.parse.urlparse(base)
def timed(name, method, path, body=None, headers=None, out=None):
    conn = http.client.HTTPConnection(url.hostname, url.port)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        out.append((response.status, (time.monotonic() - started) * 1000))
        time.sleep(max(0, 0.05 - (time.monotonic() - started)))
results = {"sign-in": [], "jwks": [], "introspection": []}
# Five sign-in probes: one that is let in waits up to the queue bound, the others go on.
threads = [
    threading.Thread(target=timed, args=("sign-in", "POST", "/api/v1/login", json.dumps({"email": email, "password": password}), {"Content-Type": "application/json"}, results["sign-in"]))
    for _ in range(5)
] + [threading.Thread(target=timed, args=("jwks", "GET", "/oauth/jwks", None, None, results["jwks"]))]
token = None
try:
    client = json.loads(client_json.strip().splitlines()[-1])
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.request("POST", "/oauth/token", body="grant_type=client_credentials", headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(conn.getresponse().read())["access_token"]
    threads.append(threading.Thread(target=timed, args=("introspection", "POST", "/oauth/introspect", "token=" + token, {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"}, results["introspection"])))
except Exception:
    pass
for t in threads: t.start()
for t in threads: t.join()
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")
for name, answers in results.items():
    refused = [ms for status, ms in answers if status == 503]
    ok = [ms for status, ms in answers if status == 200]
    print(json.dumps({"name": name, "n": len(answers), "refused": len(refused),
        "refused_p50": pct(refused, 0.5), "refused_p99": pct(refused, 0.99),
        "ok_p50": pct(ok, 0.5), "ok_p99": pct(ok, 0.99)}))
PY
}

# 2. Overload, with the probes: each connection waits FLOOD / (TIMES × ceiling) seconds
# between its requests.
PAUSE_MS="$(python3 -c "print(int(1000 * $FLOOD / ($TIMES * $CEILING)))")"
sed "s/^function done/function delay() return $PAUSE_MS end\nfunction done/" "$WORK/login.lua" > "$WORK/flood.lua"
wrk -t2 -c"$FLOOD" -d"${DURATION}s" --timeout 10s -s "$WORK/flood.lua" "$BASE/api/v1/login" > "$WORK/flood.txt" &
WRK=$!
sleep 2
probe "$(( DURATION - 4 ))" "$WORK/under-load.json"
wait "$WRK"
# 3. Idle.
sleep 2
probe 5 "$WORK/idle.json"

python3 - "$WORK" "$CEILING" "$DURATION" <<'PY'
import json, re, sys
work, ceiling, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
flood = open(f"{work}/flood.txt").read()
offered = float(re.search(r"Requests/sec:\s+([\d.]+)", flood).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", flood)
total = int(re.search(r"(\d+) requests in", flood).group(1))
refused = int(non2xx.group(1)) if non2xx else 0
accepted = (total - refused) / duration
print(f"ceiling (just saturated): {ceiling:.1f} sign-ins/s")
print(f"offered under overload: {offered:.0f} requests/s ({offered / ceiling:.0f}× the ceiling); "
      f"accepted {accepted:.1f}/s = {accepted / ceiling * 100:.0f} % of the ceiling; refused {refused}")
def load(name):
    return {r["name"]: r for r in map(json.loads, open(f"{work}/{name}.json"))}
busy, idle = load("under-load"), load("idle")
s = busy["sign-in"]
print(f"refused sign-ins under overload: {s['refused']} of {s['n']} probes, p50 {s['refused_p50']:.1f} ms, p99 {s['refused_p99']:.1f} ms")
print(f"signed-in probes under overload: {s['n'] - s['refused']}, p50 {s['ok_p50']:.0f} ms, p99 {s['ok_p99']:.0f} ms (idle: {idle['sign-in']['ok_p50']:.0f} / {idle['sign-in']['ok_p99']:.0f} ms)")
for name in ("jwks", "introspection"):
    if name in busy and busy[name]["n"]:
        print(f"{name}: p50/p99 {busy[name]['ok_p50']:.1f}/{busy[name]['ok_p99']:.1f} ms under overload, "
              f"{idle[name]['ok_p50']:.1f}/{idle[name]['ok_p99']:.1f} ms idle")
PY
