#!/usr/bin/env bash
# Round trip of watchpost's receivers through real components, all on 127.0.0.1:
#
#   1. a real Alertmanager (Debian prometheus-alertmanager) gets a firing
#      alert from watchpost (examples/alertmanager_push.rs) on its v2 API,
#      lists it as active and notifies a webhook sink started here through
#      its own webhook receiver;
#   2. Alertmanager is killed and started again: evaluation goes on at its
#      pace meanwhile, and the re-send brings the firing alert back;
#   3. the alert resolves in watchpost: Alertmanager drops it from the active
#      list and the sink gets the resolved notification;
#   4. an SMTP sink (python3-aiosmtpd) gets the firing and the resolved
#      mails, whose subject and body are parsed and checked.
#
# Installs what it needs with apt-get. If it is missing and apt-get cannot
# reach the package mirror, it says so and exits 0; every other failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_TAG=alertmanager-interop
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PY=/usr/bin/python3
missing=()
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
[[ -x $PY ]] && $PY -c 'import aiosmtpd' 2>/dev/null || missing+=(python3 python3-aiosmtpd)
install_or_skip "Alertmanager interop" "${missing[@]}"
say "$(prometheus-alertmanager --version 2>&1 | head -1)"

cargo build -q --features notify --example alertmanager_push
TARGET="${CARGO_TARGET_DIR:-target}"
DRIVER="$TARGET/debug/examples/alertmanager_push"
[[ -x $DRIVER ]] || fail "no driver at $DRIVER"

exec "$PY" - "$DRIVER" <<'PY'
import email, email.policy, json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from aiosmtpd.controller import Controller

driver_path = sys.argv[1]
t0 = time.monotonic()
work = tempfile.mkdtemp()
procs = []

def say(msg):
    print(f"[alertmanager-interop {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

def fail(msg):
    say("FAIL: " + msg)
    sys.exit(1)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_for(what, check, limit=20.0):
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            fail(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.1)

# The webhook sink: every POST body Alertmanager sends.
hooks = []
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        hooks.append(json.loads(body))
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
hook_port = free_port()
hook_server = ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
threading.Thread(target=hook_server.serve_forever, daemon=True).start()

# The SMTP sink: every message watchpost mails.
mails = []
class Sink:
    async def handle_DATA(self, server, smtp_state, envelope):
        mails.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"
smtp_port = free_port()
smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
smtp.start()

am_port = free_port()
am_url = f"http://127.0.0.1:{am_port}"
config = os.path.join(work, "alertmanager.yml")
with open(config, "w") as f:
    f.write(f"""
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:{hook_port}/hook
        send_resolved: true
""")

def start_alertmanager():
    p = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={config}",
         f"--storage.path={os.path.join(work, 'data')}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "alertmanager.log"), "a"))
    procs.append(p)
    def ready():
        try:
            return urllib.request.urlopen(am_url + "/-/ready", timeout=1).status == 200
        except OSError:
            return False
    wait_for("Alertmanager to be ready", ready)
    return p

def am_alerts():
    with urllib.request.urlopen(am_url + "/api/v2/alerts", timeout=2) as r:
        return [a for a in json.load(r) if a["labels"].get("alertname") == "hot"]

def am_active():
    try:
        return [a for a in am_alerts() if a["status"]["state"] == "active"]
    except OSError:
        return []

def hook_with(status):
    return [h for h in hooks if h["status"] == status
            and any(a["labels"].get("alertname") == "hot" for a in h["alerts"])]

try:
    am = start_alertmanager()
    say(f"Alertmanager on {am_url}, webhook sink on :{hook_port}, SMTP sink on :{smtp_port}")
    driver = subprocess.Popen([driver_path, "--alertmanager", am_url, "--smtp", f"127.0.0.1:{smtp_port}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(driver)
    def command(c):
        driver.stdin.write(c + "\n"); driver.stdin.flush()
        line = driver.stdout.readline().strip()
        if not line:
            fail(f"the driver ended on {c!r}")
        return line

    # 1. firing: active in Alertmanager, and through its webhook to the sink.
    assert command("fire") == "fired"
    active = wait_for("the alert active in /api/v2/alerts", am_active)[0]
    assert active["labels"]["room"] == "lab" and active["labels"]["severity"] == "critical", active
    assert active["annotations"]["summary"] == "lab is hot", active
    assert active["generatorURL"] == "http://127.0.0.1/watchpost", active
    # the fingerprint watchpost's webhook receiver computes (src/notify/payload.rs)
    assert active["fingerprint"] == "aebfddb2816582ab", active
    say(f"active in Alertmanager: {active['labels']}, startsAt {active['startsAt']}")
    firing = wait_for("the firing webhook", lambda: hook_with("firing"))[0]
    assert firing["alerts"][0]["annotations"]["summary"] == "lab is hot", firing
    say(f"the sink got Alertmanager's firing notification (groupKey {firing['groupKey']})")

    # 2. Alertmanager dies and comes back; evaluation never waits for it.
    am.send_signal(signal.SIGKILL); am.wait()
    say("Alertmanager killed")
    worst = 0
    for _ in range(10):
        ms = int(command("tick").split()[1])
        worst = max(worst, ms)
        time.sleep(0.2)
    if worst > 500:
        fail(f"an evaluation took {worst} ms while Alertmanager was down")
    say(f"10 evaluations while Alertmanager was down, the slowest {worst} ms")
    am = start_alertmanager()
    back = time.monotonic()
    wait_for("the firing alert back in Alertmanager after its restart", am_active)
    say(f"the firing alert is back in Alertmanager {time.monotonic() - back:.1f}s after its restart (re-send)")

    # 3. resolved: no longer active, and the sink gets the resolve.
    assert command("resolve") == "resolved"
    wait_for("the alert to leave Alertmanager's active list", lambda: not am_active())
    resolved = wait_for("the resolved webhook", lambda: hook_with("resolved"))[0]
    assert resolved["alerts"][0]["status"] == "resolved", resolved
    assert resolved["alerts"][0]["endsAt"] > resolved["alerts"][0]["startsAt"], resolved
    say(f"Alertmanager resolved it; the sink got the resolve (endsAt {resolved['alerts'][0]['endsAt']})")

    # 4. the mails.
    wait_for("the firing and resolved mails", lambda: len(mails) >= 2)
    subjects = [m["subject"] for m in mails]
    assert subjects[0] == "[FIRING:1] hot: lab is hot", subjects
    assert subjects[-1] == "[RESOLVED] hot: lab is hot", subjects
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert "[FIRING] lab is hot (critical)" in body and "temp is 35 (threshold 30)" in body, body
    assert 'room="lab"' in body, body
    assert mails[0]["to"] == "oncall@example.com" and mails[0]["from"] == "watchpost@example.com"
    say(f"mails: {subjects}")

    driver.stdin.write("quit\n"); driver.stdin.flush()
    stats = json.loads(driver.stdout.readline().split(" ", 1)[1])
    if driver.wait(timeout=30) != 0:
        fail("the driver failed")
    say(f"Alertmanager receiver stats: {stats}")
    assert stats["failed"] >= 1 and stats["retried"] >= 1, stats
    assert stats["last_error"] and "api/v2/alerts" in stats["last_error"], stats
    say(f"ok in {time.monotonic() - t0:.1f}s")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    smtp.stop()
    hook_server.shutdown()
    shutil.rmtree(work, ignore_errors=True)
PY
