#!/usr/bin/env bash
# Server CPU per sign-in, beside the CPU of one password hash measured in the same run.
#
# Builds the release binary (or takes BIN=…), starts it on a fresh SQLite data directory, and
# drives ROUNDS whole relying-app sign-ins one after another, as a browser does them:
#   GET /oauth/authorize → GET /login → POST /login → (One moment page) GET /oauth/authorize
#   → code → POST /oauth/token (authorization_code + PKCE, RS256 access and ID token)
# with a client that skips consent. The server's CPU is read from the kernel, not timed on
# the wall clock, so the figures hold on a busy machine: per step, the sum over the server's
# threads of /proc/<pid>/task/*/schedstat (nanoseconds on a CPU); in all, /proc/<pid>/stat
# (utime + stime, which also keeps threads that ended). Also per step: the CPU of every thread
# but the hash workers (argon2-*), which is what a sign-in costs beyond its hash, read directly
# and so not blurred by the hash's own spread. The password hash is measured the same
# way, as the CPU of a failed sign-in of an unknown address (a dummy hash), and subtracted.
# Then the same for the JSON API's sign-in and a refresh.
#
# Usage: bench/signin-cpu.sh          (ROUNDS=200 PORT=18090 BIN=… to change)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-200}"
PORT="${PORT:-18090}"
source bench/common.sh

# Sign-in limits off for the measurement: every failed sign-in must reach its hash.
export PORTCULLIS_LOGIN_MAX_FAILURES_PER_IP=100000000
export PORTCULLIS_LOGIN_MAX_FAILURES_PER_ACCOUNT=100000000
export PORTCULLIS_SIGNUP_MAX_PER_IP=100000000

"$BIN" migrate 2>/dev/null
EMAIL="bench@example.com"
PASSWORD="correct-horse-battery-staple"
echo "$PASSWORD" | "$BIN" user create --email "$EMAIL" --password-stdin >/dev/null
CLIENT_JSON="$("$BIN" client create --name Bench --redirect-uri "http://127.0.0.1:9/callback" --skip-consent 2>/dev/null)"

start_server
sleep 1

python3 - "$BASE" "$SERVER_PID" "$ROUNDS" "$EMAIL" "$PASSWORD" "$CLIENT_JSON" <<'PY'
import base64, hashlib, html, http.client, json, os, re, secrets, sys, urllib.parse

base, pid, rounds, email, password, client_json = sys.argv[1:7]
pid, rounds = int(pid), int(rounds)
client = json.loads(client_json.strip().splitlines()[-1])
client_id, client_secret = client["client_id"], client["client_secret"]
redirect_uri = "http://127.0.0.1:9/callback"
url = urllib.parse.urlparse(base)
tick = os.sysconf("SC_CLK_TCK")

def thread_ns():
    """CPU nanoseconds of the server's threads: all of them, and all but the hash workers."""
    total = outside = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                hashing = f.read().startswith("argon2-")
        except OSError:
            continue
        total += ns
        outside += 0 if hashing else ns
    return total, outside

def process_ms():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / tick

class Browser:
    """One person's browser: a connection and its cookies."""
    def __init__(self):
        self.conn = http.client.HTTPConnection(url.hostname, url.port)
        self.cookies = {}

    def send(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(body)
        headers["Origin"] = base
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response, data.decode(errors="replace")

steps = {}
def measured(step, call):
    before = thread_ns()
    result = call()
    after = thread_ns()
    steps.setdefault(step, []).append((after[0] - before[0], after[1] - before[1]))
    return result

def path_of(location):
    parsed = urllib.parse.urlparse(location)
    return parsed.path + ("?" + parsed.query if parsed.query else "")

def app_sign_in():
    browser = Browser()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid email", "state": secrets.token_hex(8), "nonce": secrets.token_hex(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    response, _ = measured("authorize", lambda: browser.send("GET", "/oauth/authorize?" + query))
    assert response.status == 303, response.status
    login = path_of(response.getheader("Location"))
    response, page = measured("login page", lambda: browser.send("GET", login))
    assert response.status == 200, response.status
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    next_url = html.unescape(re.search(r'name="next" value="([^"]*)"', page).group(1))
    form = {"csrf_token": token, "email": email, "password": password, "next": next_url}
    response, _ = measured("password post", lambda: browser.send("POST", "/login", form))
    refresh = response.getheader("Refresh") or ""
    target = response.getheader("Location") or refresh.split("url=", 1)[-1]
    assert response.status in (200, 303) and target, (response.status, refresh)
    response, _ = measured("code", lambda: browser.send("GET", path_of(target)))
    assert response.status == 303, response.status
    code = urllib.parse.parse_qs(urllib.parse.urlparse(response.getheader("Location")).query)["code"][0]
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    response, answer = measured("token", lambda: browser.send("POST", "/oauth/token", body, {"Authorization": "Basic " + basic}))
    assert response.status == 200 and "id_token" in answer, (response.status, answer)

def failed_sign_in():
    browser = Browser()
    response, page = browser.send("GET", "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "email": f"nobody-{secrets.token_hex(6)}@example.com", "password": password}
    response, _ = measured("hash", lambda: browser.send("POST", "/login", form))
    assert response.status == 401, response.status

def api_sign_in():
    browser = Browser()
    body = json.dumps({"email": email, "password": password})
    response, answer = measured("api sign-in", lambda: browser.send("POST", "/api/v1/login", body, {"Content-Type": "application/json"}))
    assert response.status == 200, (response.status, answer)
    refresh_token = json.loads(answer)["refresh_token"]
    body = json.dumps({"refresh_token": refresh_token})
    response, answer = measured("api refresh", lambda: browser.send("POST", "/api/v1/token/refresh", body, {"Content-Type": "application/json"}))
    assert response.status == 200, (response.status, answer)

for _ in range(5):  # warm up: caches, prepared statements, the argon2 workers' memory
    app_sign_in(); failed_sign_in(); api_sign_in()
steps.clear()

def ms(values, outside=False):
    return sum(v[1] if outside else v[0] for v in values) / len(values) / 1e6

# Alternate the kinds, so that a busy spell on the machine weighs on each alike.
whole = []
for _ in range(rounds):
    before = process_ms()
    app_sign_in()
    whole.append(process_ms() - before)
    failed_sign_in()
    api_sign_in()

hash_ms = ms(steps["hash"])
sign_in_steps = ["authorize", "login page", "password post", "code", "token"]
per_sign_in = sum(ms(steps[s]) for s in sign_in_steps)
outside = sum(ms(steps[s], True) for s in sign_in_steps)
print(f"{rounds} app sign-ins, server CPU per sign-in (schedstat; all threads, and outside the hash workers):")
for step in sign_in_steps:
    print(f"  {step:<14} {ms(steps[step]):7.2f} ms   {ms(steps[step], True):6.2f} ms")
print(f"  {'whole':<14} {per_sign_in:7.2f} ms   {outside:6.2f} ms   (/proc/stat: {sum(whole) / len(whole):.2f} ms, 10 ms ticks)")
print(f"one password hash (a failed sign-in of an unknown address): {hash_ms:.2f} ms")
print(f"beyond the hash: {per_sign_in - hash_ms:.2f} ms per app sign-in (whole minus a failed sign-in); "
      f"{outside:.2f} ms outside the hash workers ({outside / hash_ms:.2f}× a hash)")
api = ms(steps["api sign-in"])
print(f"JSON API sign-in: {api:.2f} ms ({api - hash_ms:.2f} ms beyond the hash; {ms(steps['api sign-in'], True):.2f} ms outside the hash workers); "
      f"refresh: {ms(steps['api refresh']):.2f} ms")
PY
