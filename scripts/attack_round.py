"""The attackers' round of issue 16, run again against a built binary.

    python3 scripts/attack_round.py target/release/vouchsafe [--json out.json]

Starts the binary on a fresh SQLite database in a temporary folder (as a
user runs it: `init`, then `serve`), tries each attack the way the round
did, from outside, and prints one line per attack: what was tried, what the
server did, and whether the hole stays closed. Exits 1 if any is open.

Needs Python's `requests` (a dependency of the Twilio SDK the tests
install). Nothing here is a test of the suite: the suite's tests, on both
databases, are what guard each fix; this script measures the figures of the
closing note against the release build.
"""

import concurrent.futures as futures
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import requests

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/vouchsafe")
RESULTS = []


def report(item, attack, outcome, closed):
    RESULTS.append({"item": item, "attack": attack, "outcome": outcome, "closed": bool(closed)})
    print(f"[{'closed' if closed else 'OPEN  '}] {item:>3}  {attack}\n              -> {outcome}", flush=True)


class Server:
    """`vouchsafe serve` on a fresh database in its own folder."""

    def __init__(self, env=None):
        self.dir = tempfile.mkdtemp(prefix="vouchsafe-attack-")
        self.db = os.path.join(self.dir, "vouchsafe.db")
        self.env = dict(os.environ, VOUCHSAFE_LOG_FORMAT="json", VOUCHSAFE_LOG="info", **(env or {}))
        self.env = {k: v for k, v in self.env.items() if not k.startswith("VOUCHSAFE_") or k in
                    ("VOUCHSAFE_LOG_FORMAT", "VOUCHSAFE_LOG", *(env or {}).keys())}
        out = self.cli("init", "--json")
        self.secret = json.loads(out)["secret"]
        self.tenant_id = json.loads(out)["tenant_id"]
        self.proc = subprocess.Popen([BIN, "--database-url", f"sqlite://{self.db}", "serve", "--listen",
                                      "127.0.0.1:0"], cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                try:
                    fields = json.loads(line).get("fields", {})
                except ValueError:
                    continue
                if fields.get("message") == "vouchsafe is ready":
                    self.base = "http://" + fields["listen"]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            raise SystemExit("serve never became ready:\n" + "".join(self.log))
        self.http = requests.Session()
        self.http.headers["authorization"] = f"Bearer {self.secret}"

    def cli(self, *args):
        return subprocess.run([BIN, "--database-url", f"sqlite://{self.db}", *args], cwd=self.dir, env=self.env,
                              check=True, capture_output=True, text=True).stdout

    def call(self, method, path, body=None, **kw):
        return self.http.request(method, self.base + path, json=body, timeout=30, **kw)

    def peak_rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return -1

    def rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
        return -1

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


class Listener:
    """A raw TCP listener on loopback: counts connections; answers with
    `reply` (bytes) or holds them open without answering."""

    def __init__(self, reply=None, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.open = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.reply = reply
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            with self.lock:
                self.connections += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            conn.settimeout(60)
            conn.recv(65536)
            if self.reply is not None:
                reply = self.reply() if callable(self.reply) else self.reply
                if isinstance(reply, bytes):
                    conn.sendall(reply)
                else:
                    for chunk in reply:
                        conn.sendall(chunk)
            else:
                while conn.recv(65536):
                    pass
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.open -= 1


def outbound_rule(s):
    sink = Listener(reply=b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"id\":\"leak\"}")
    forms = [f"http://127.0.0.1:{sink.port}\\@8.8.8.8/a", f"http://127.0.0.1:{sink.port}/",
             f"http://2130706433:{sink.port}/", f"http://0x7f.1:{sink.port}/", f"http://127.1:{sink.port}/",
             f"http://[::ffff:127.0.0.1]:{sink.port}/", f"http://[64:ff9b::7f00:1]:{sink.port}/",
             f"http://localhost.:{sink.port}/", f"http://user@8.8.8.8@127.0.0.1:{sink.port}/",
             f"http://%31%32%37.0.0.1:{sink.port}/", f"http://10.0.0.1:8080\\@1.1.1.1/"]
    accepted = 0
    for url in forms:
        r = s.call("POST", "/v1/webhook-endpoints", {"url": url})
        accepted += r.status_code < 300
        r = s.call("PUT", "/v1/providers/evil", {"type": "http", "channels": ["sms"], "priority": 1,
                                                  "settings": {"url": url, "body_template": "{\"t\":\"{to}\"}"}})
        accepted += r.status_code < 300
    time.sleep(0.5)
    report(1, f"{len(forms)} loopback/private URL forms as webhook and http-provider URLs",
           f"{accepted} accepted, {sink.connections} connections reached the loopback listener",
           accepted == 0 and sink.connections == 0)


def recovery_flood(s):
    s.call("PATCH", "/v1/settings", {"lockout": {"threshold": 1000, "duration_s": 900}})
    challenges = []
    for u in range(40):
        s.call("PUT", f"/v1/users/rc{u}", {})
        s.call("POST", f"/v1/users/rc{u}/authenticators", {"type": "recovery_codes"})
        c = s.call("POST", f"/v1/users/rc{u}/challenges", {"factor": "recovery_code"}).json()
        challenges.append(c["id"])
    before = s.rss_mib()
    health = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t = time.monotonic()
            requests.get(s.base + "/healthz", timeout=30)
            health.append(time.monotonic() - t)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    with futures.ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(lambda i: s.call("POST", f"/v1/challenges/{challenges[i % 40]}/verify",
                                                  {"code": "aaaa-bbbb-cccc"}).status_code, range(200)))
    stop.set()
    prober.join()
    peak = s.peak_rss_mib()
    evaluated = statuses.count(200)
    report(2, "200 concurrent wrong recovery-code answers over 40 challenges",
           f"RSS {before} MiB before, peak {peak} MiB; {evaluated} evaluated, {statuses.count(429)} refused 429; "
           f"slowest /healthz {max(health) * 1000:.0f} ms", peak < 150 and max(health) < 2)


def lockout_race(s):
    s.call("PATCH", "/v1/settings", {"lockout": {"threshold": 5, "duration_s": 900}})
    s.call("PUT", "/v1/users/racer", {})
    s.call("POST", "/v1/users/racer/authenticators", {"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"})
    ids = [s.call("POST", "/v1/users/racer/challenges", {"factor": "hotp"}).json()["id"] for _ in range(40)]
    with futures.ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(lambda i: s.call("POST", f"/v1/challenges/{ids[i % 40]}/verify",
                                                  {"code": "000000"}).status_code, range(200)))
    locked = [e for e in s.call("GET", "/v1/audit-events?limit=1000").json()["events"] if e["action"] == "user.locked"]
    report(3, "200 parallel wrong answers over 40 challenges, threshold 5",
           f"{statuses.count(200)} evaluated, {statuses.count(423)} answered 423, {len(locked)} user.locked event",
           statuses.count(200) <= 5 and len(locked) == 1)


def metrics_methods(s):
    for i in range(50):
        try:
            requests.request("Z" * 50_000 + str(i), s.base + "/healthz", timeout=10)
        except requests.RequestException:
            pass
    size = len(requests.get(s.base + "/metrics", timeout=10).content)
    report(6, "50 requests with 50 KB invented method names", f"/metrics is {size} bytes", size < 200_000)


def email_case(s):
    a = s.call("POST", "/v1/verifications", {"to": "bob@example.com", "channel": "email"})
    b = s.call("POST", "/v1/verifications", {"to": "BOB@Example.com", "channel": "email"})
    report(7, "bob@example.com then BOB@Example.com inside the cooldown",
           f"first {a.status_code}, second {b.status_code}", a.status_code == 201 and b.status_code == 429)


def delivery_without_code(s):
    r = s.call("POST", "/v1/deliveries", {"to": "+447400123456", "channel": "sms", "code": "123456",
                                          "message": "Hello there"})
    bad = s.call("POST", "/v1/deliveries", {"to": "+447400123456", "channel": "sms", "code": "12\u0007",
                                            "message": "{code}"})
    report(8, "delivery whose message lacks the code; a 3-character code with a control character",
           f"{r.status_code} {r.json().get('error', {}).get('code')}; {bad.status_code}",
           r.status_code == 422 and bad.status_code in (400, 422))


def files_mode(s):
    modes = {name: oct(os.stat(os.path.join(s.dir, name)).st_mode & 0o777)
             for name in os.listdir(s.dir) if name.startswith("vouchsafe.db")}
    report(11, "permissions of the SQLite files", str(modes), all(m == "0o600" for m in modes.values()))


def audit_rewrite(s):
    s.call("PATCH", "/v1/settings", {"branding": {"name": "Before"}})
    db = sqlite3.connect(s.db)
    db.execute("UPDATE audit_events SET actor = 'key_innocent' WHERE seq = 2")
    import hashlib

    def h(prev, seq, at, actor, action, target, outcome):
        m = hashlib.sha256()
        for f in (prev, str(seq), str(at), actor, action, target, outcome):
            b = f.encode()
            m.update(len(b).to_bytes(8, "big") + b)
        return m.hexdigest()

    prev = "0" * 64
    rows = db.execute("SELECT seq, at, actor, action, target, outcome FROM audit_events WHERE tenant_id = ? "
                      "ORDER BY seq", (s.tenant_id,)).fetchall()
    for seq, at, actor, action, target, outcome in rows:
        new = h(prev, seq, at, actor, action, target, outcome)
        db.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE tenant_id = ? AND seq = ?",
                   (prev, new, s.tenant_id, seq))
        prev = new
    db.execute("UPDATE audit_heads SET hash = ? WHERE tenant_id = ?", (prev, s.tenant_id))
    db.commit()
    db.close()
    api = s.call("GET", "/v1/audit-events/verify").json()
    cli = subprocess.run([BIN, "--database-url", f"sqlite://{s.db}", "audit", "verify", "--json"], cwd=s.dir,
                         env=s.env, capture_output=True, text=True)
    report(12, f"edit audit event 2 and re-chain all {len(rows)} events without the key",
           f"API verify {api}; CLI exit {cli.returncode}", api["valid"] is False and cli.returncode == 1)


def page_headers(s):
    s.call("PUT", "/v1/users/r1", {"email": "r1@example.com"})
    r = s.call("POST", "/v1/users/r1/challenges", {"redirect_url": "https://a;b.example.com/"})
    docs = requests.get(s.base + "/docs/", timeout=10)
    csp = docs.headers.get("content-security-policy", "")
    pk = requests.post(s.base + "/challenge/chl_00000000000000000000000000000000/passkey", json={}, timeout=10)
    ok = r.status_code in (400, 422) and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    ok = ok and pk.json().get("error", {}).get("code") == "not_found"
    report(13, "redirect_url host with ';'; /docs headers; passkey post error shape (Twilio signature: suite test)",
           f"redirect {r.status_code}; docs CSP has script-src 'self' and frame-ancestors 'none': "
           f"{'script-src' in csp}; passkey {pk.status_code} {pk.json()}", ok)


def idle_connections(s):
    socks = []
    for _ in range(2000):
        c = socket.create_connection(("127.0.0.1", int(s.base.rsplit(":", 1)[1])))
        c.send(b"GET /healthz HT")
        socks.append(c)
    t = time.monotonic()
    ok = requests.get(s.base + "/healthz", timeout=10).status_code == 200
    healthy_ms = (time.monotonic() - t) * 1000
    time.sleep(11)
    closed = 0
    for c in socks:
        c.settimeout(0.01)
        try:
            closed += c.recv(1) == b""
        except (BlockingIOError, socket.timeout):
            pass
        except OSError:
            closed += 1
        c.close()
    report(15, "2,000 connections holding half a request line",
           f"/healthz answered in {healthy_ms:.0f} ms meanwhile; {closed} of 2000 closed by the server after 11 s",
           ok and closed == 2000)


def big_provider_answer(s):
    def endless():
        yield b"HTTP/1.1 200 OK\r\ncontent-length: 2000000000\r\ncontent-type: application/json\r\n\r\n{\"id\":\""
        chunk = b"x" * 65536
        for _ in range(30_000):
            yield chunk

    sink = Listener(reply=endless)
    s.call("PUT", "/v1/providers/big", {"type": "http", "channels": ["sms"], "priority": 1,
                                        "settings": {"url": f"http://127.0.0.1:{sink.port}/send",
                                                     "body_template": "{\"to\":\"{to}\",\"m\":\"{message}\"}"}})
    before = s.rss_mib()
    r = s.call("POST", "/v1/deliveries", {"to": "+447400123499", "channel": "sms", "code": "123456"})
    report(16, "an http provider that answers 200 with a 2 GB body",
           f"delivery {r.status_code} {r.json().get('result')}; RSS {before} -> {s.rss_mib()} MiB "
           f"(peak {s.peak_rss_mib()} MiB)", s.peak_rss_mib() < 150)
    s.call("DELETE", "/v1/providers/big")


def webhook_stall(s):
    dead = Listener(reply=None)
    out = s.cli("tenants", "create", "flooder", "--json")
    key = json.loads(s.cli("keys", "create", "--tenant", "flooder", "--role", "admin", "--json"))["secret"]
    flooder = requests.Session()
    flooder.headers["authorization"] = f"Bearer {key}"
    ids = [flooder.post(s.base + "/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{dead.port}/h{i}"},
                        timeout=10).json()["id"] for i in range(4)]
    with futures.ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(lambda i: flooder.post(s.base + f"/v1/webhook-endpoints/{ids[i % 4]}/test",
                                                     timeout=10).status_code, range(160)))
    time.sleep(0.5)
    got = []
    receiver = Listener(reply=lambda: got.append(time.monotonic()) or b"HTTP/1.1 204 No Content\r\n\r\n")
    ep = s.call("POST", "/v1/webhook-endpoints", {"url": f"http://127.0.0.1:{receiver.port}/hook"}).json()
    sent = time.monotonic()
    s.call("POST", f"/v1/webhook-endpoints/{ep['id']}/test")
    deadline = sent + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    waited = (got[0] - sent) if got else None
    limited = flooder.post(s.base + f"/v1/webhook-endpoints/{ids[0]}/test", timeout=10).status_code
    for _ in range(25):
        limited = flooder.post(s.base + f"/v1/webhook-endpoints/{ids[0]}/test", timeout=10).status_code
    report(17, "160 test events to 4 endpoints that never answer, then another tenant's event",
           f"{codes.count(202)} queued; the other tenant's event arrived after "
           f"{waited * 1000 if waited is not None else float('nan'):.0f} ms while {dead.open} attempts hung "
           f"(peak {dead.peak} in flight); the 66th test event to one endpoint: {limited}",
           waited is not None and waited < 1 and dead.peak <= 64 and limited == 429)
    del out


def console_logout(s):
    c = requests.Session()
    page = c.get(s.base + "/console/helpdesk", timeout=10).text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    key = json.loads(s.cli("keys", "create", "--tenant", "default", "--role", "agent", "--json"))["secret"]
    c.post(s.base + "/console/login", data={"csrf": csrf, "key": key}, timeout=10, allow_redirects=False)
    cookies = dict(c.cookies)
    records = s.base + "/console/helpdesk/records/500x"
    inside = c.get(records, timeout=10, allow_redirects=False).status_code
    page = c.get(s.base + "/console/helpdesk", timeout=10).text
    csrf = page.split('name="csrf" value="')[1].split('"')[0] if 'name="csrf"' in page else csrf
    c.post(s.base + "/console/logout", data={"csrf": csrf}, timeout=10, allow_redirects=False)
    replay = requests.get(records, cookies=cookies, timeout=10, allow_redirects=False).status_code
    report(18, "reuse the console cookie after signing out", f"before {inside}, after logout {replay}",
           inside == 200 and replay != 200)


def import_replace(s):
    path = os.path.join(s.dir, "tokens.csv")
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    with open(path, "w") as f:
        f.write(f"imp,otpauth://totp/A:imp?secret={secret}\n")
    s.cli("authenticators", "import", path)
    results = []
    for contents in [f"imp,otpauth://totp/A:imp?secret={secret}\n",
                     f"dup,otpauth://totp/A:d?secret={secret}\ndup,otpauth://totp/A:d?secret={secret}\n",
                     f"big,otpauth://totp/A:{'x' * 10_000_000}?secret={secret}\n"]:
        with open(path, "w") as f:
            f.write(contents)
        results.append(subprocess.run([BIN, "--database-url", f"sqlite://{s.db}", "authenticators", "import", path],
                                      cwd=s.dir, env=s.env, capture_output=True, text=True).returncode)
    report(19, "import over an active token; a user twice; a 10 MB label", f"exit codes {results}",
           results == [1, 1, 1])


def request_id(s):
    requests.get(s.base + "/healthz", headers={"x-request-id": "x method=DELETE tenant_id=ten_FAKE"}, timeout=10)
    time.sleep(0.2)
    forged = any("ten_FAKE" in line for line in s.log)
    report(22, "x-request-id carrying log fields", f"forged id in the log: {forged}", not forged)


def phone_rewrite(s):
    r = s.call("POST", "/v1/verifications", {"to": "+7888030000000", "channel": "sms"})
    report(23, "+7888030000000 (libphonenumber drops digits)", f"{r.status_code} {r.json().get('error', {}).get('code')}",
           r.status_code == 400)


def qr_overflow(s):
    s.call("PUT", "/v1/users/qr", {})
    r = s.call("POST", "/v1/users/qr/authenticators", {"type": "totp", "issuer": "\U0001d49c" * 100})
    report(24, "100 four-byte characters as issuer", f"{r.status_code}", r.status_code == 400)


def main():
    s = Server()
    try:
        for attack in (outbound_rule, recovery_flood, lockout_race, metrics_methods, email_case, delivery_without_code,
                       files_mode, audit_rewrite, page_headers, console_logout, import_replace, request_id,
                       phone_rewrite, qr_overflow, idle_connections):
            try:
                attack(s)
            except Exception as e:  # one broken probe must not hide the others
                report("?", attack.__name__, f"probe failed: {e!r}", False)
    finally:
        s.stop()
    # Loopback targets need the development switch: a second server.
    p = Server(env={"VOUCHSAFE_ALLOW_PRIVATE_TARGETS": "true"})
    try:
        for attack in (big_provider_answer, webhook_stall):
            try:
                attack(p)
            except Exception as e:
                report("?", attack.__name__, f"probe failed: {e!r}", False)
    finally:
        p.stop()
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(RESULTS, f, indent=2)
    open_holes = [r for r in RESULTS if not r["closed"]]
    print(f"\n{len(RESULTS) - len(open_holes)} of {len(RESULTS)} attacks fail against {BIN}")
    sys.exit(1 if open_holes else 0)


if __name__ == "__main__":
    main()
