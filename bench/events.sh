#!/usr/bin/env bash
# Events on the release binary (SQLite, the embedded default).
#
# 1. Deliveries per second from the outbox to a local webhook receiver: EVENTS events are
#    queued at once (written straight into the outbox while the server is stopped), the server
#    starts, and the time until the last is delivered is measured. Twice: every event its own
#    subject (delivered in parallel), and all of one subject (delivered one after another, in
#    order). The receiver's own ceiling (wrk straight at it) is printed beside them.
# 2. What writing the event costs a sign-up: API sign-ups per second with events on and off
#    (PORTCULLIS_EVENTS_ENABLED), alternating ROUNDS times, next to the argon2id ceiling measured
#    in the same run (sign-ins of an unknown address: one hash each, nothing written).
#
# Usage: bench/events.sh   (EVENTS=20000 SERIAL_EVENTS=2000 ROUNDS=2 DURATION=10 PORT=18097)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-18097}"
EVENTS="${EVENTS:-20000}"
SERIAL_EVENTS="${SERIAL_EVENTS:-2000}"
ROUNDS="${ROUNDS:-2}"
RECEIVER_PORT="${RECEIVER_PORT:-18098}"
source bench/common.sh

if ! command -v sqlite3 >/dev/null; then
  echo "bench: installing sqlite3"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq sqlite3 >/dev/null
  else sudo apt-get install -y -qq sqlite3 >/dev/null; fi
fi

export PORTCULLIS_WEBHOOK_ALLOW_PRIVATE=true
export PORTCULLIS_SIGNUP_MAX_PER_IP=1000000000
export PORTCULLIS_LOGIN_MAX_FAILURES_PER_IP=1000000000
export PORTCULLIS_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000000
DB="$PORTCULLIS_DATA_DIR/portcullis.db"
sql() { sqlite3 -cmd ".timeout 10000" "$DB" "$@"; }

# A webhook receiver that answers 204 to every POST, with keep-alive (asyncio, one process).
cat > "$WORK/receiver.py" <<'PY'
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
python3 "$WORK/receiver.py" "$RECEIVER_PORT" &
RECEIVER_PID=$!
trap 'kill $RECEIVER_PID 2>/dev/null || true; cleanup' EXIT
sleep 0.5

"$BIN" migrate 2>/dev/null
ENDPOINT="$("$BIN" webhook add --url "http://localhost:$RECEIVER_PORT/hook" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"

echo "bench: $(nproc) cores; receiver ceiling (wrk POST straight at it):"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"specversion":"1.0","id":"x","type":"io.portcullis.user.created","data":{}}'
wrk.headers["Content-Type"] = "application/cloudevents+json"
LUA
SAVED_BASE="$BASE"
BASE="http://127.0.0.1:$RECEIVER_PORT"
run receiver-ceiling "$WORK/post.lua" /hook 5
BASE="$SAVED_BASE"

# queue COUNT SUBJECTS: COUNT events for SUBJECTS subjects, with a delivery each, in one go.
queue() {
  local count="$1" subjects="$2"
  sql "delete from deliveries; delete from events;
    with recursive n(i) as (select 1 union all select i + 1 from n where i < $count)
    insert into events (id, type, subject, time, document)
      select printf('bench-%d', i), 'user.created', printf('subject-%d', i % $subjects),
             unixepoch(),
             printf('{\"specversion\":\"1.0\",\"id\":\"bench-%d\",\"source\":\"$BASE\",\"type\":\"io.portcullis.user.created\",\"subject\":\"subject-%d\",\"data\":{\"user_id\":\"subject-%d\",\"email\":\"u%d@bench.example\"}}', i, i % $subjects, i % $subjects, i)
      from n;
    insert into deliveries (event_seq, target, subject, next_attempt_at, created_at)
      select seq, '$ENDPOINT', subject, time, time from events;"
}

# deliver NAME COUNT SUBJECTS: starts the server on a full queue and times it to empty.
deliver() {
  local name="$1" count="$2" subjects="$3"
  queue "$count" "$subjects"
  local start end done
  start="$(date +%s.%N)"
  start_server
  while :; do
    done="$(sql "select count(*) from deliveries where state = 'delivered'")"
    [ "$done" -ge "$count" ] && break
    sleep 0.05
  done
  end="$(date +%s.%N)"
  stop_server
  python3 -c "
s = $end - $start
print(f'{\"$name\":<30} {$count / s:10.0f} events/s   ({$count} events, {\"$subjects\"} subjects, {s:.2f} s including start-up)')"
}

deliver deliveries-parallel "$EVENTS" "$EVENTS"
deliver deliveries-one-subject "$SERIAL_EVENTS" 1
sql "delete from deliveries; delete from events;"

# signup_script RUN: sign-ups of fresh addresses (RUN keeps them apart from other runs').
signup_script() {
  cat > "$WORK/signup-$1.lua" <<LUA
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    string.format('{"email":"$1-%d-%d@bench.example","password":"correct-horse-battery-staple"}', tid, n))
end
LUA
  echo "$WORK/signup-$1.lua"
}
cat > "$WORK/unknown.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email": "nobody@bench.example", "password": "correct-horse-battery-staple"}'
wrk.headers["Content-Type"] = "application/json"
LUA

echo "bench: sign-ups, ${DURATION}s per run, 8 connections, events on and off alternating"
for round in $(seq 1 "$ROUNDS"); do
  for events in true false; do
    PORTCULLIS_EVENTS_ENABLED="$events" start_server
    CONNECTIONS=8 run "signup-events-$events-$round" "$(signup_script "r$round-$events")" /api/v1/signup
    stop_server
  done
done
start_server
# Every answer is a 401 (counted as errors by wrk): one dummy hash each, nothing written.
CONNECTIONS=8 run hash-ceiling-unknown-login "$WORK/unknown.lua" /api/v1/login
stop_server
echo "user.created events written: $(sql "select count(*) from events where type = 'user.created'"); accounts: $(sql "select count(*) from users")"
echo "deliveries to the receiver: $(sql "select state, count(*) from deliveries group by state" | tr '\n' ' ')"
