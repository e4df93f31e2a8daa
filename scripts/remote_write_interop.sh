#!/usr/bin/env bash
# watchpost's remote write against a real receiver, all on 127.0.0.1:
#
#   1. Debian's Prometheus (2.42) runs with --web.enable-remote-write-receiver;
#      the chat demo pushes to it (--remote-write) and writes its dashboard
#      JSON. Prometheus' HTTP API must then hold every series of the
#      dashboard's statistics with the labels watchpost gave it (plus
#      `instance` and `job`), the same number of samples, the same minimum,
#      maximum and mean, and every recent point at its timestamp with its
#      value (float round trip exact); the anomaly scores of those points
#      arrive as `<name>:anomaly_score`.
#   2. Outage: a second run with a small queue; Prometheus is stopped while
#      it runs and started again on the same storage. The demo's final
#      counters must add up (produced = sent + dropped, none failed, some
#      dropped), Prometheus must hold exactly `sent` samples, and samples
#      taken during the outage (queued, within the capacity) must be there.
#
# First, examples/grafana_dashboard.json and examples/fleet_rules.yml are
# checked with promtool (scripts/grafana_check.py).
#
# Installs Prometheus with apt-get if missing. If it is missing and apt-get
# cannot reach the package mirror, it says so and exits 0; every other
# failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_TAG=remote-write-interop
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v prometheus >/dev/null || install_or_skip "remote-write interop" prometheus
say "$(prometheus --version 2>&1 | head -1)"
# the fleet view: the Grafana dashboard's PromQL and the fleet rules parse
python3 scripts/grafana_check.py

cargo build -q --features remote-write --example chat_server
TARGET="${CARGO_TARGET_DIR:-target}"
DEMO="$TARGET/debug/examples/chat_server"
[[ -x $DEMO ]] || fail "no demo at $DEMO"

exec python3 - "$DEMO" <<'PY'
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.parse, urllib.request
from datetime import datetime

demo = sys.argv[1]
t0 = time.monotonic()
work = tempfile.mkdtemp()
procs = []

def say(msg):
    print(f"[remote-write-interop {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

def fail(msg):
    say("FAIL: " + msg)
    sys.exit(1)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_for(what, check, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            fail(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.2)

config = os.path.join(work, "prometheus.yml")
with open(config, "w") as f:
    f.write("global:\n  scrape_interval: 1m\n")

def start_prometheus(port, data):
    log = open(os.path.join(work, f"prometheus-{len(procs)}.log"), "w")
    p = subprocess.Popen(
        ["prometheus", "--web.enable-remote-write-receiver", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", f"--config.file={config}"],
        stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    def ready():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).status == 200
        except Exception:
            if p.poll() is not None:
                fail(f"prometheus exited: {open(log.name).read()[-2000:]}")
            return False
    wait_for("prometheus ready", ready)
    return p

def query(port, promql, at):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    try:
        body = json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        fail(f"query {promql}: {e.code} {e.read().decode()[:500]}")
    if body["status"] != "success":
        fail(f"query {promql}: {body}")
    return body["data"]["result"]

def selector(name, labels):
    parts = [f'__name__="{name}"'] + [f'{k}="{v}"' for k, v in sorted(labels.items())]
    return "{" + ",".join(p.replace("\\", "\\\\") for p in parts) + "}"

def run_demo(args, duration):
    err = open(os.path.join(work, f"demo-{time.monotonic():.0f}.err"), "w+")
    p = subprocess.Popen([demo, "--headless", "--duration", str(duration)] + args,
                         stdout=subprocess.DEVNULL, stderr=err)
    procs.append(p)
    return p, err

def totals(err):
    err.seek(0)
    for line in err.read().splitlines():
        if line.startswith("chat_server: remote write totals "):
            return json.loads(line.split("totals ", 1)[1])
    err.seek(0)
    fail("no remote write totals in the demo's stderr:\n" + err.read()[-3000:])

try:
    hostname = socket.gethostname()
    # ---- 1. what arrives equals what the demo's history holds -------------
    port = free_port()
    start_prometheus(port, os.path.join(work, "data1"))
    url = f"http://127.0.0.1:{port}/api/v1/write"
    dash_path = os.path.join(work, "dashboard.json")
    demo_p, err = run_demo(["--remote-write", url, "--json", dash_path], 12)
    if demo_p.wait(timeout=120) != 0:
        err.seek(0); fail("demo failed:\n" + err.read()[-3000:])
    d = json.load(open(dash_path))
    t = totals(err)
    say(f"run 1 totals: {t}")
    if not (t["failed"] == 0 and t["dropped"] == 0 and t["produced"] == t["sent"] and t["pending"] == 0):
        fail(f"run 1 lost samples: {t}")
    at = datetime.fromisoformat(d["generated_at"].replace("Z", "+00:00")).timestamp()
    stats = {s["series"]: s for s in d["statistics"]}
    if len(stats) < 20:
        fail(f"only {len(stats)} series in the dashboard")
    # every sample in the statistics window ends at generated_at: (at - window, at]
    compared = points = 0
    instances = set()
    for key, s in stats.items():
        res = query(port, selector(s["name"], s["labels"] | {"job": "chat_server"}) + "[10m]", at)
        if len(res) != 1:
            fail(f"{key}: {len(res)} series in Prometheus, want 1: {res}")
        metric = res[0]["metric"]
        instances.add(metric.get("instance"))
        want = dict(s["labels"]) | {"__name__": s["name"], "job": "chat_server", "instance": hostname}
        if metric != want:
            fail(f"{key}: labels {metric}, want {want}")
        values = [float(v) for _, v in res[0]["values"]]
        st = s  # the statistics are flattened into the entry
        if len(values) != st["count"]:
            fail(f"{key}: {len(values)} samples in Prometheus, {st['count']} in the dashboard")
        if min(values) != st["min"] or max(values) != st["max"]:
            fail(f"{key}: min/max {min(values)}/{max(values)} vs {st['min']}/{st['max']}")
        mean = sum(values) / len(values)
        if abs(mean - st["mean"]) > 1e-9 * max(1.0, abs(st["mean"])):
            fail(f"{key}: mean {mean} vs {st['mean']}")
        compared += 1
        points += len(values)
    say(f"{compared} series, {points} samples: labels, counts, min, max and mean equal")
    # the recent points, one by one: timestamp and value exact; scores as history
    # keeps them (in steps of 1/10 000, so within half a step of what was sent)
    scored = 0
    for key, pts in d["recent_metrics"].items():
        s = stats[key]
        sel = selector(s["name"], s["labels"] | {"job": "chat_server"})
        got = {int(round(float(ts) * 1000)): float(v) for ts, v in query(port, sel + "[10m]", at)[0]["values"]}
        ssel = selector(s["name"] + ":anomaly_score", s["labels"] | {"job": "chat_server"})
        res = query(port, ssel + "[10m]", at)
        scores = {int(round(float(ts) * 1000)): float(v) for ts, v in res[0]["values"]} if res else {}
        for p in pts:
            ms = round(datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
            if got.get(ms) != p["value"]:
                fail(f"{key} at {p['timestamp']}: Prometheus {got.get(ms)}, dashboard {p['value']}")
            if p.get("score") is not None:
                if abs(scores.get(ms, -1) - p["score"]) > 0.5e-4 + 1e-9:
                    fail(f"{key}:anomaly_score at {p['timestamp']}: {scores.get(ms)} vs {p['score']}")
                scored += 1
    if scored == 0:
        fail("no anomaly score compared")
    say(f"recent points of {len(d['recent_metrics'])} series equal, {scored} anomaly scores equal")
    for suffix in ("expected_lower", "expected_upper"):
        if not query(port, '{__name__=~".+:' + suffix + '",job="chat_server"}', at):
            fail(f"no :{suffix} series")

    # ---- 2. outage: stop the receiver, overflow the queue, restart --------
    port = free_port()
    data = os.path.join(work, "data2")
    prom = start_prometheus(port, data)
    url = f"http://127.0.0.1:{port}/api/v1/write"
    demo_p, err = run_demo(["--remote-write", url, "--remote-write-capacity", "1000"], 30)
    wait_for("first samples", lambda: query(port, 'count({job="chat_server"})', time.time()))
    time.sleep(3)
    prom.send_signal(signal.SIGTERM); prom.wait(timeout=30)
    down_at = time.time()
    say("prometheus stopped")
    time.sleep(12)
    up_at = time.time()
    start_prometheus(port, data)
    say("prometheus started again")
    if demo_p.wait(timeout=120) != 0:
        err.seek(0); fail("demo failed:\n" + err.read()[-3000:])
    t = totals(err)
    say(f"run 2 totals: {t}")
    if t["produced"] != t["sent"] + t["dropped"] + t["failed"] or t["pending"] != 0:
        fail(f"the totals do not add up: {t}")
    if t["failed"] != 0 or t["dropped"] == 0 or t["retried"] == 0:
        fail(f"want no failed, some dropped and some retried samples: {t}")
    stamps = [float(ts) for r in query(port, '{job="chat_server"}[30m]', time.time() + 1)
              for ts, _ in r["values"]]
    stored = len(stamps)
    if stored != t["sent"]:
        fail(f"Prometheus holds {stored} samples, the demo counted {t['sent']} sent")
    during = sum(1 for ts in stamps if down_at < ts < up_at)
    if during == 0:
        fail("no sample taken during the outage arrived")
    say(f"outage: {stored} samples stored = sent; {t['dropped']} dropped; {during} taken while down arrived")
    say("PASS")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(work, ignore_errors=True)
PY
