#!/usr/bin/env bash
# Sign-ins beyond what the password workers can hash: what is refused, how fast, what still
# gets through, and whether other requests keep their speed.
#
# Builds the release binary (or takes BIN=…), starts it on SQLite, and measures, in ROUNDS
# alternating rounds (the machine's speed drifts; alternating keeps the comparison fair):
#   1. the ceiling: API password sign-ins with as many connections as cores × 4 (the pool is
#      just saturated, nothing waits long), sign-ins/s;
#   2. overload: wrk with FLOOD connections posting API sign-ins for DURATION seconds, each
#      connection paced so that together they offer TIMES × the ceiling (10 by default);
#      meanwhile probes, 20 requests a second each, time sign-ins (five of them: the p99 of
#      refused answers, and the wait of those let in), a JWKS fetch and an introspection;
# and at the end 3. the same probes with the server idle, for comparison.
# Prints the offered and accepted rates (accepted as a share of the ceiling of the same
# round), and p50/p99 of the refused sign-ins, the JWKS and introspection under overload and
# idle. Both rates of sign-ins come from the server's own count (portcullis_sign_ins_total)
# between two readings inside the steady part of a run, so neither wrk's start (2000
# connections opening) nor the sign-ins still queued when wrk stops count against it.
#
# Usage: bench/overload.sh        (ROUNDS=3 DURATION=12 FLOOD=2000 TIMES=10 PORT=18091 BIN=… to change)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-12}"
FLOOD="${FLOOD:-2000}"
TIMES="${TIMES:-10}"
PORT="${PORT:-18091}"
export PORTCULLIS_METRICS_LISTEN="127.0.0.1:$(( PORT + 1 ))"
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

signed_in() {  # the server's count of password sign-ins that succeeded
  curl -fs "http://$PORTCULLIS_METRICS_LISTEN/metrics" \
    | awk '/^portcullis_sign_ins_total/ && /method="password"/ && /result="success"/ { n += $2 } END { print n + 0 }'
}
# accepted_rate FROM TO: sign-ins per second the server completed between FROM and TO
# seconds after now (while a run goes on in the background).
accepted_rate() {
  sleep "$1"; local before; before="$(signed_in)"; local started; started="$(date +%s.%N)"
  sleep "$(( $2 - $1 ))"; local after; after="$(signed_in)"
  python3 -c "import time; print(($after - $before) / (time.time() - $started))"
}

CORES="$(nproc)"
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
for name, answers in results.items():
    print(json.dumps({"name": name, "answers": answers}))
PY
}

for round in $(seq 1 "$ROUNDS"); do
  # 1. The ceiling.
  wrk -t2 -c"$(( CORES * 4 ))" -d"${DURATION}s" -s "$WORK/login.lua" "$BASE/api/v1/login" > /dev/null &
  WRK=$!
  CEILING="$(accepted_rate 2 "$(( DURATION - 1 ))")"
  wait "$WRK"
  # 2. Overload, with the probes: each connection waits FLOOD / (TIMES × ceiling) seconds
  # between its requests on average. wrk's pacing reaches about four fifths of the rate it
  # aims at (a connection's own answer, up to the queue bound, comes on top of its pause), so
  # it aims a quarter higher; the offered rate printed is what wrk measured. Each pause is
  # drawn at random (uniform, up to twice the mean): with one fixed pause the 2,000
  # connections, refused together at the start, came back together in waves, and between
  # waves the workers ran dry (a third of the machine idle) while the queue bound refused the
  # wave itself, which people arriving independently do not do.
  PAUSE_MS="$(python3 -c "print(int(1000 * $FLOOD / (1.25 * $TIMES * $CEILING)))")"
  sed "s/^function done/function init(args) math.randomseed(tonumber(tostring({}):match('0x(%x+)'), 16)) end\nfunction delay() return math.random(0, 2 * $PAUSE_MS) end\nfunction done/" "$WORK/login.lua" > "$WORK/flood.lua"
  wrk -t2 -c"$FLOOD" -d"${DURATION}s" --timeout 10s -s "$WORK/flood.lua" "$BASE/api/v1/login" > "$WORK/flood-$round.txt" &
  WRK=$!
  accepted_rate 3 "$(( DURATION - 2 ))" > "$WORK/accepted-$round.txt" &
  ACCEPTED=$!
  sleep 2
  probe "$(( DURATION - 4 ))" "$WORK/under-load-$round.json"
  wait "$ACCEPTED" "$WRK"
  echo "$CEILING $(cat "$WORK/accepted-$round.txt")" >> "$WORK/rates.txt"
  sleep 2
done
# 3. Idle.
probe 5 "$WORK/idle.json"

python3 - "$WORK" "$ROUNDS" <<'PY'
import json, re, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")
shares = []
for n, line in enumerate(open(f"{work}/rates.txt"), 1):
    ceiling, accepted = map(float, line.split())
    flood = open(f"{work}/flood-{n}.txt").read()
    offered = float(re.search(r"Requests/sec:\s+([\d.]+)", flood).group(1))
    shares.append(accepted / ceiling)
    print(f"round {n}: ceiling (just saturated) {ceiling:.1f} sign-ins/s; offered {offered:.0f} requests/s "
          f"({offered / ceiling:.1f}× the ceiling); accepted {accepted:.1f}/s = {accepted / ceiling * 100:.0f} % of the ceiling")
print(f"accepted under overload, all rounds: {sum(shares) / len(shares) * 100:.0f} % of the ceiling "
      f"(rounds: {', '.join(f'{s * 100:.0f} %' for s in shares)})")
# The probes of every round together.
busy = {}
for n in range(1, rounds + 1):
    for r in map(json.loads, open(f"{work}/under-load-{n}.json")):
        busy.setdefault(r["name"], []).extend(r["answers"])
idle = {r["name"]: r["answers"] for r in map(json.loads, open(f"{work}/idle.json"))}
def times(answers, status):
    return [ms for s, ms in answers if s == status]
s = busy["sign-in"]
refused, ok = times(s, 503), times(s, 200)
print(f"refused sign-ins under overload: {len(refused)} of {len(s)} probes, p50 {pct(refused, 0.5):.1f} ms, p99 {pct(refused, 0.99):.1f} ms")
idle_ok = times(idle["sign-in"], 200)
print(f"signed-in probes under overload: {len(ok)}, p50 {pct(ok, 0.5):.0f} ms, p99 {pct(ok, 0.99):.0f} ms (idle: {pct(idle_ok, 0.5):.0f} / {pct(idle_ok, 0.99):.0f} ms)")
for name in ("jwks", "introspection"):
    if busy.get(name):
        b, i = times(busy[name], 200), times(idle[name], 200)
        print(f"{name}: p50/p99 {pct(b, 0.5):.1f}/{pct(b, 0.99):.1f} ms under overload ({len(b)} requests), "
              f"{pct(i, 0.5):.1f}/{pct(i, 0.99):.1f} ms idle")
PY
