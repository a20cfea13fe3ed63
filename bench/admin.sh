#!/usr/bin/env bash
# Admin pages with a large installation: seeds 100,000 users and 200,000 audit events into a
# fresh SQLite database (the embedded default), signs in as an admin and times the user list,
# a search, a deep keyset page, a user page and the audit log. Target: under 50 ms a page.
#
# Usage: bench/admin.sh      (USERS=100000 EVENTS=200000 SECONDS_EACH=5 PORT=18091 to change)
set -euo pipefail
cd "$(dirname "$0")/.."

USERS="${USERS:-100000}"
EVENTS="${EVENTS:-200000}"
SECONDS_EACH="${SECONDS_EACH:-5}"
PORT="${PORT:-18091}"

# The admin has no second factor here (the panel requires one by default).
export PORTCULLIS_ADMIN_REQUIRE_SECOND_FACTOR=false
source bench/common.sh

"$BIN" migrate 2>/dev/null
echo "correct-horse-battery-staple" | "$BIN" user create --email admin@example.com --admin --password-stdin >/dev/null

echo "bench: seeding $USERS users and $EVENTS audit events"
python3 - "$WORK/data/portcullis.db" "$USERS" "$EVENTS" <<'PY'
import random, sqlite3, sys, time, uuid
db, users, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db)
now = int(time.time())
first = ["ada", "bo", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo", "kit", "lu", "max", "ned", "olu", "pia"]
last = ["quill", "reed", "stone", "tarn", "umber", "vale", "wren", "york", "zane", "moss"]
ids = []
rows = []
for i in range(users):
    uid = str(uuid.uuid4()); ids.append(uid)
    name = f"{random.choice(first).title()} {random.choice(last).title()}"
    email = f"user-{i:06d}@example.com"
    rows.append((uid, email, email, name, now - i, now - i, i % 3 == 0))
con.executemany("insert into users (id, email, email_lower, display_name, created_at, updated_at, email_verified) values (?, ?, ?, ?, ?, ?, ?)", rows)
kinds = ["sign_in", "sign_in_failed", "password_changed", "consent_granted", "totp_enabled"]
con.executemany("insert into audit_events (happened_at, event, actor_id, subject_id, detail, ip, user_agent) values (?, ?, ?, ?, ?, ?, ?)",
    ((now - events + n, random.choice(kinds), u, u, "pwd", "203.0.113.7", "Mozilla/5.0") for n, u in ((n, random.choice(ids)) for n in range(events))))
hour = now - now % 3600
con.executemany("insert into activity (hour, kind, label, count) values (?, ?, ?, ?)",
    ((hour - h * 3600, kind, label, random.randint(1, 500)) for h in range(30 * 24)
     for kind, label in [("event", "sign_in"), ("event", "sign_in_failed"), ("second_factor", "totp"),
                         ("token", "authorization_code"), ("token", "refresh_token"), ("throttled", "login_ip")]))
con.commit()
print(ids[users // 2])
PY
TARGET_USER="$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select id from users where email = 'user-050000@example.com'\").fetchone()[0])" "$WORK/data/portcullis.db")"

start_server

COOKIE="$(python3 - "$BASE" <<'PY'
import http.client, re, sys, urllib.parse
base = sys.argv[1]; u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
conn.request("GET", "/login"); r = conn.getresponse(); page = r.read().decode()
# The visitor's form is bound to its CSRF cookie (older binaries: the session cookie).
cookie = re.search(r"(portcullis_(?:csrf|session)=[^;]+)", r.getheader("set-cookie")).group(1)
token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"csrf_token": token, "email": "admin@example.com", "password": "correct-horse-battery-staple"})
conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded", "Origin": base, "Cookie": cookie})
r = conn.getresponse(); r.read()
m = re.search(r"portcullis_session=([^;]+)", r.getheader("set-cookie") or "")
print("portcullis_session=" + m.group(1))
PY
)"

cat > "$WORK/cookie.lua" <<LUA
wrk.headers["Cookie"] = "$COOKIE"
LUA
page() { # name, path
  local name="$1" path="$2"
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$BASE$path")"
  if [ "$status" != 200 ]; then echo "bench: $path answered $status"; exit 1; fi
  wrk -t1 -c1 -d"${SECONDS_EACH}s" --latency -s "$WORK/cookie.lua" "$BASE$path" > "$WORK/$name.txt"
  local avg p99 rate
  avg="$(awk '$1 == "Latency" { print $2; exit }' "$WORK/$name.txt")"
  p99="$(awk '$1 == "99%" { print $2 }' "$WORK/$name.txt")"
  rate="$(awk '/^Requests\/sec/ { print $2 }' "$WORK/$name.txt")"
  printf '%-30s avg %-9s p99 %-9s (%s pages/s, one at a time)\n' "$name" "$avg" "$p99" "$rate"
}

echo "bench: $(nproc) cores, SQLite, $USERS users, $EVENTS audit events"
page "overview (charts, totals)" "/admin"
page "user list, first page" "/admin/users"
page "user list, page 1,000" "/admin/users?after=user-050000%40example.com"
page "search by email prefix" "/admin/users?q=user-0999"
page "search by name prefix" "/admin/users?q=ada%20q"
page "user page" "/admin/users/$TARGET_USER"
page "audit log, newest" "/admin/audit"
page "audit log, one user" "/admin/audit?user=$TARGET_USER"
page "audit log, one event type" "/admin/audit?event=password_changed"
