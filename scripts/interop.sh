#!/usr/bin/env bash
# Interop tests of watchpost's exposition and HTTP endpoints against real
# components, all on 127.0.0.1:
#
#   1. `promtool check metrics` on a plain engine's /metrics and on the demo's;
#   2. a real Prometheus scrapes `chat_server --serve` every second, and its
#      HTTP API returns our series with nonzero values and the right types;
#   3. headless Chromium loads the dashboard page and the dumped DOM is
#      checked (scripts/page_check.py): charts read from /api/series with
#      units and domains, 401 shown without the token, anomaly markers, the
#      badge and threshold lines during the demo's latency spike, the slow
#      operations and WARN events of the spike (the demo is built with the
#      `tracing` layer) in their panels, the spike
#      in context after it, no overflow at 400 px, the dark scheme, and a
#      hostile label value shown as text; screenshots go to $TARGET/interop/;
#   4. headless Chromium loads the page embedded under /monitor in an axum
#      application (examples/embedded_axum.rs), at /monitor and /monitor/,
#      and the page draws data fetched under the prefix.
#
# Installs what it needs with apt-get (Debian packages prometheus, chromium,
# curl, python3). If they are missing and apt-get cannot reach the package
# mirror, it says so and exits 0; every other failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_TAG=interop
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/interop"
WORK="$(mktemp -d)"

cleanup() {
  stop_bg
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
install_or_skip "interop tests" "${missing[@]}"
say "$(promtool --version 2>&1 | head -1); $(chromium --version 2>/dev/null | head -1)"

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

# url_from_log FILE: the http://… URL a process printed to stderr.
url_from_log() {
  grep -oE 'http://127\.0\.0\.1:[0-9]+/' "$1" | head -1
}

# promtool_check FILE: `promtool check metrics`, allowing only the lint
# findings listed in scripts/promtool-allowed.txt (with the reason there).
promtool_check() {
  local file=$1 rc=0
  promtool check metrics <"$file" >"$WORK/promtool.out" 2>&1 || rc=$?
  case $rc in
    0) say "promtool: $(basename "$file") clean" ;;
    3)
      local unexpected
      unexpected=$(grep -vxF -f <(grep -v '^#' scripts/promtool-allowed.txt | grep .) "$WORK/promtool.out" || true)
      if [[ -n $unexpected ]]; then
        cat "$WORK/promtool.out" >&2
        fail "promtool lint problems in $(basename "$file"): $unexpected"
      fi
      say "promtool: $(basename "$file") ok (only allowed findings: $(tr '\n' ';' <"$WORK/promtool.out"))"
      ;;
    *)
      cat "$WORK/promtool.out" >&2
      fail "promtool check metrics rejected $(basename "$file") (exit $rc)"
      ;;
  esac
}

# chromium_run URL ARGS...: headless Chromium with a throwaway profile, bounded.
chromium_run() {
  local url=$1
  shift
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --user-data-dir="$(mktemp -d -p "$WORK")" "$@" "$url" 2>>"$WORK/chromium.log"
}

# page_at NAME WIDTH ARGS...: the page's DOM and a screenshot at WIDTHx900.
page_at() {
  local name=$1 width=$2
  shift 2
  chromium_run "${DEMO}#token=$TOKEN" --virtual-time-budget=5000 --window-size="$width,900" "$@" \
    --dump-dom >"$OUT/$name.html" || fail "chromium --dump-dom ($name)"
  chromium_run "${DEMO}#token=$TOKEN" --virtual-time-budget=5000 --window-size="$width,900" "$@" \
    --screenshot="$OUT/$name.png" >/dev/null || fail "chromium --screenshot ($name)"
  [[ -s "$OUT/$name.png" ]] || fail "no screenshot $name.png"
}
# api_get PATH: a JSON route of the demo, with its token.
api_get() { curl -fsS --max-time 5 -H "$AUTH" "${DEMO}api/$1"; }

# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------

say "building the examples"
cargo build -q --release --features http,tracing --example chat_server --example http_exporter \
  --example embedded_axum
BIN="$TARGET/release/examples"
mkdir -p "$OUT"

# --------------------------------------------------------------------------
# 1. promtool on a plain engine (system source on, every kind of instrument)
# --------------------------------------------------------------------------

say "plain engine: /metrics through promtool"
timeout 60 "$BIN/http_exporter" --print >"$OUT/plain.prom" 2>"$WORK/exporter-print.log" \
  || { cat "$WORK/exporter-print.log" >&2; fail "http_exporter --print"; }
grep -q '^watchpost_samples_ingested_total ' "$OUT/plain.prom" || fail "plain.prom lacks the engine's own metrics"
promtool_check "$OUT/plain.prom"

# --------------------------------------------------------------------------
# 2. The demo, scraped by promtool, Prometheus and Chromium
# --------------------------------------------------------------------------

say "starting chat_server --serve 127.0.0.1:0 --duration 60"
"$BIN/chat_server" --serve 127.0.0.1:0 --duration 60 --users 12 \
  >"$OUT/chat_server_dashboard.json" 2>"$WORK/chat.log" &
CHAT_PID=$!
PIDS+=("$CHAT_PID")
wait_for 30 "the demo's URL" url_from_log "$WORK/chat.log"
DEMO=$(url_from_log "$WORK/chat.log")
DEMO_HOSTPORT=${DEMO#http://}
DEMO_HOSTPORT=${DEMO_HOSTPORT%/}
# the bearer token the demo generated and printed once
TOKEN=$(grep -oE '#token=[0-9a-f]+' "$WORK/chat.log" | head -1 | cut -d= -f2)
[[ -n $TOKEN ]] || fail "the demo did not print its bearer token"
AUTH="Authorization: Bearer $TOKEN"
say "demo serving on $DEMO"
wait_for 15 "demo /health" curl -fsS --max-time 2 "${DEMO}health"

# closed by default: no token, no data and no silences; another Host, nothing at all
status() { curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
SILENCE='{"matchers": ["alertname=~\".*\""], "duration_seconds": 60}'
[[ $(status "${DEMO}metrics") == 401 ]] || fail "/metrics answered without the token"
[[ $(status -X POST -H 'Content-Type: application/json' -d "$SILENCE" "${DEMO}api/silences") == 401 ]] \
  || fail "a silence was accepted without the token"
[[ $(status -H "$AUTH" -H 'Host: evil.example' "${DEMO}metrics") == 421 ]] || fail "Host: evil.example was served"
HARMLESS='{"matchers": ["room=\"nowhere\""], "duration_seconds": 60}'
SILENCE_ID=$(curl -fsS --max-time 5 -H "$AUTH" -H 'Content-Type: application/json' -d "$HARMLESS" "${DEMO}api/silences" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || fail "creating a silence with the token"
[[ $(status -X DELETE -H "$AUTH" "${DEMO}api/silences/$SILENCE_ID") == 200 ]] || fail "expiring the silence"
say "access: 401 without the token, 421 for another Host, silence $SILENCE_ID created and expired with it"

curl -fsS --max-time 5 -H "$AUTH" "${DEMO}metrics" >"$OUT/chat_server.prom"
grep -q '^messages_total{room="general"} ' "$OUT/chat_server.prom" || fail "demo /metrics lacks messages_total"
# the demo's routes go through the HTTP middleware: the 401 above was counted by route template
grep -q '^http_server_requests_total{method="GET",route="/metrics",status_class="4xx"} ' "$OUT/chat_server.prom" \
  || fail "demo /metrics lacks http_server_requests_total for its own routes"
promtool_check "$OUT/chat_server.prom"
curl -fsS --max-time 5 -H "$AUTH" -H 'Accept: application/openmetrics-text; version=1.0.0' "${DEMO}metrics" >"$OUT/chat_server.om"
[[ $(tail -1 "$OUT/chat_server.om") == "# EOF" ]] || fail "OpenMetrics output does not end with # EOF"

PROM_PORT=$(free_port)
mkdir -p "$WORK/tsdb"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: chat
    authorization:
      credentials: "$TOKEN"
    static_configs:
      - targets: ["$DEMO_HOSTPORT"]
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "prometheus.yml"
say "starting prometheus on 127.0.0.1:$PROM_PORT"
start_bg "$WORK/prometheus.log" prometheus --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT"
PROM="http://127.0.0.1:$PROM_PORT"
wait_for 30 "prometheus to be ready" curl -fsS --max-time 2 "$PROM/-/ready"

say "chromium: the demo's page"
DOM="$OUT/chat_server_dom.html"
chromium_run "${DEMO}#token=$TOKEN" --virtual-time-budget=5000 --window-size=1280,900 --dump-dom >"$DOM" \
  || fail "chromium --dump-dom (see $WORK/chromium.log)"
python3 scripts/page_check.py basic "$DOM" || fail "the demo's page"
chromium_run "${DEMO}#selftest=ack" --virtual-time-budget=3000 --dump-dom >"$OUT/chat_server_notoken_dom.html" \
  || fail "chromium --dump-dom (no token)"
python3 scripts/page_check.py notoken "$OUT/chat_server_notoken_dom.html" || fail "the page without a token"
chromium_run "${DEMO}#token=$TOKEN&window=3600" --virtual-time-budget=5000 --window-size=1280,900 \
  --dump-dom >"$OUT/dashboard_1h.html" || fail "chromium --dump-dom (1 h window)"
python3 scripts/page_check.py long "$OUT/dashboard_1h.html" || fail "the 1 h window"
page_at dashboard_dark_400px 400 --force-dark-mode --blink-settings=preferredColorScheme=0
python3 scripts/page_check.py dark "$OUT/dashboard_dark_400px.html" || fail "the dark scheme"
python3 scripts/page_check.py narrow "$OUT/dashboard_dark_400px.html" || fail "the dark page at 400 px"

say "prometheus: waiting for scraped series"
check_prometheus() {
  python3 - "$PROM" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def get(path):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]
up = get("/api/v1/query?query=up")["result"]
assert up and all(s["value"][1] == "1" for s in up), "target not up: %s" % up
msgs = get("/api/v1/query?query=messages_total")["result"]
rooms = {s["metric"].get("room"): float(s["value"][1]) for s in msgs}
assert set(rooms) == {"general", "random", "dev"}, "rooms: %s" % rooms
assert sum(rooms.values()) > 0, "no messages counted yet: %s" % rooms
lat = get("/api/v1/query?query=message_latency_seconds_count")["result"]
assert lat and float(lat[0]["value"][1]) > 0, "latency count: %s" % lat
buckets = get("/api/v1/query?query=message_latency_seconds_bucket")["result"]
assert any(s["metric"].get("le") == "+Inf" for s in buckets), "no +Inf bucket"
users = get("/api/v1/query?query=active_users")["result"]
assert users, "no active_users"
p99 = get("/api/v1/query?query=histogram_quantile(0.99,rate(message_latency_seconds_bucket[5s]))")["result"]
meta = get("/api/v1/metadata")
def kind(*names):
    for n in names:
        if n in meta:
            return meta[n][0]["type"]
    return None
# an OpenMetrics scrape keys counters by family name (messages), 0.0.4 by sample name
assert kind("messages", "messages_total") == "counter", meta.get("messages")
assert kind("active_users") == "gauge", meta.get("active_users")
assert kind("message_latency_seconds") == "histogram", meta.get("message_latency_seconds")
assert kind("chat_message_length") == "gauge"
help_text = (meta.get("messages") or meta.get("messages_total"))[0]["help"]
assert help_text == "Chat messages the server accepted.", help_text
print("prometheus ok: messages_total %s, latency count %s, p99 series %d" %
      (rooms, lat[0]["value"][1], len(p99)), file=sys.stderr)
PY
}
wait_for 30 "prometheus to return our series" check_prometheus
check_prometheus || fail "prometheus API checks"
targets=$(curl -fsS --max-time 5 "$PROM/api/v1/targets")
python3 -c 'import json,sys; t=json.loads(sys.argv[1])["data"]["activeTargets"]; assert t[0]["health"]=="up" and not t[0]["lastError"], t' "$targets" \
  || fail "scrape target unhealthy: $targets"

# by now the charts have a few points
chromium_run "${DEMO}#token=$TOKEN" --virtual-time-budget=5000 --window-size=1280,900 \
  --screenshot="$OUT/dashboard.png" >/dev/null || fail "chromium --screenshot"
[[ -s "$OUT/dashboard.png" ]] || fail "no screenshot"
say "screenshot: $OUT/dashboard.png"

# --------------------------------------------------------------------------
# The page during and after the demo's latency spike
# --------------------------------------------------------------------------

spike_flagged() {
  api_get dashboard | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert any(a["series"].startswith("message_latency_seconds:") for a in d["anomalies"])
assert any(e["rule"] == "slow_messages" for e in d["recent_alert_events"])'
}
say "waiting for the latency spike"
wait_for 45 "the demo's latency spike" grep -q 'latency spike:' "$WORK/chat.log"
wait_for 10 "an anomaly and slow_messages during the spike" spike_flagged
api_get alerts >"$WORK/alerts-before.json"
api_get dashboard >"$WORK/dashboard-spike.json"
page_at dashboard_spike 1280
api_get alerts >"$WORK/alerts-after.json"
python3 scripts/page_check.py spike "$OUT/dashboard_spike.html" "$WORK/alerts-before.json" \
  "$WORK/alerts-after.json" "$WORK/dashboard-spike.json" || fail "the page during the spike"
# the page's own buttons, clicked by its test hook with the token from the
# fragment, and the result checked through the API
selftest() {
  chromium_run "${DEMO}#token=$TOKEN&selftest=$1" --virtual-time-budget=5000 --window-size=1280,900 \
    --dump-dom >"$OUT/dashboard_selftest_$1.html" || fail "chromium --dump-dom (selftest=$1)"
  python3 scripts/page_check.py "$1" "$OUT/dashboard_selftest_$1.html" || fail "the page's $1 button"
}
ACKED=$(selftest ack) || exit 1
api_get alerts | python3 -c '
import json, sys
alerts = json.load(sys.stdin)
mine = [a for a in alerts["active"] if a["id"] == sys.argv[1]]
# on a slow machine the spike may be over and the alert resolved by now: its
# acknowledgement is still in the recent events
acked = [e for e in alerts["recent"] if e["alert_id"] == sys.argv[1] and e["event"] == "acknowledged"]
assert (mine and mine[0]["acknowledged"] is True) or acked, \
    "alert %s not acknowledged: %s / %s" % (sys.argv[1], alerts["active"], alerts["recent"][-5:])' "$ACKED" \
  || fail "the page's Acknowledge did not reach the server"
SILENCED=$(selftest silence) || exit 1
SILENCE_ID=$(api_get silences | python3 -c '
import json, sys
made = [s for s in json.load(sys.stdin)["silences"] if s["created_by"] == "dashboard" and s["active"]]
assert len(made) == 1, "silences from the page: %s" % made
rule = sys.argv[1].split("/")[0]
assert "alertname=\"%s\"" % rule in made[0]["matchers"], "silence %s does not match %s" % (made[0], rule)
print(made[0]["id"])' "$SILENCED") || fail "the Silence 1 h button did not reach the server"
[[ $(status -X DELETE -H "$AUTH" "${DEMO}api/silences/$SILENCE_ID") == 200 ]] || fail "expiring the page's silence"
say "the page's buttons: $ACKED acknowledged, silence $SILENCE_ID for $SILENCED created (then expired)"
page_at dashboard_spike_400px 400
python3 scripts/page_check.py narrow "$OUT/dashboard_spike_400px.html" || fail "the page at 400 px"
wait_for 30 "the end of the latency spike" grep -q 'latency spike over' "$WORK/chat.log"
# a few samples after the spike, so the chart shows before, during and after
p90_back_down() {
  api_get 'series?name=message_latency_seconds:p90&window=5' | python3 -c '
import json, sys
assert json.load(sys.stdin)["samples"][-1]["value"] < 0.01'
}
wait_for 15 "p90 latency back under 10 ms" p90_back_down
page_at dashboard_after_spike 1280
python3 scripts/page_check.py after "$OUT/dashboard_after_spike.html" || fail "the page after the spike"
say "screenshots: $OUT/dashboard_{spike,spike_400px,after_spike}.png"

# --------------------------------------------------------------------------
# 3. A hostile label value renders as text
# --------------------------------------------------------------------------

say "chromium: a <script> label value on the page"
"$BIN/http_exporter" --hold 60 2>"$WORK/exporter.log" >/dev/null &
EXPORTER_PID=$!
PIDS+=("$EXPORTER_PID")
wait_for 30 "http_exporter's URL" url_from_log "$WORK/exporter.log"
PROBE_URL=$(url_from_log "$WORK/exporter.log")
# two samples of the probe series, so it has statistics and a chart
probe_in_dashboard() { curl -fsS --max-time 2 "${PROBE_URL}api/dashboard" | grep -qF 'alert(1)'; }
wait_for 15 "the probe series in the dashboard" probe_in_dashboard
PROBE_DOM="$OUT/probe_dom.html"
chromium_run "$PROBE_URL" --virtual-time-budget=5000 --dump-dom >"$PROBE_DOM" || fail "chromium --dump-dom (probe)"
python3 - "$PROBE_DOM" <<'PY' || fail "hostile label value"
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
assert re.search(r'<body data-drawn="[1-9]', dom), "the page never drew data"
escaped = "label_probe{value=&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;}"
escaped_plain = 'label_probe{value="&lt;script&gt;alert(1)&lt;/script&gt;"}'
assert escaped in dom or escaped_plain in dom, "the label value is not shown as text"
assert "<script>alert(1)" not in dom, "the label value was injected as markup"
# the page's own two: the vendored uPlot and the inline script
assert len(re.findall(r"<script\b", dom)) == 2, "an extra script element appeared"
print("probe ok: shown as text %d times, no injected element" %
      (dom.count(escaped) + dom.count(escaped_plain)), file=sys.stderr)
PY
chromium_run "$PROBE_URL" --virtual-time-budget=5000 --window-size=1280,900 \
  --screenshot="$OUT/probe.png" >/dev/null || fail "chromium --screenshot (probe)"

# --------------------------------------------------------------------------
# 4. The page embedded under a prefix in an axum application
# --------------------------------------------------------------------------

say "chromium: the page under /monitor in an axum application"
"$BIN/embedded_axum" --hold 60 2>"$WORK/embedded.log" >/dev/null &
EMBEDDED_PID=$!
PIDS+=("$EMBEDDED_PID")
wait_for 30 "embedded_axum's URL" url_from_log "$WORK/embedded.log"
EMBEDDED_URL="$(url_from_log "$WORK/embedded.log")monitor"
for page in "$EMBEDDED_URL" "$EMBEDDED_URL/"; do
  name=$([[ $page == */ ]] && echo embedded_slash_dom || echo embedded_dom)
  chromium_run "$page" --virtual-time-budget=5000 --dump-dom >"$OUT/$name.html" \
    || fail "chromium --dump-dom ($page)"
  python3 - "$OUT/$name.html" "$page" <<'PY' || fail "the page at $page"
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
assert re.search(r'<body data-drawn="[1-9]', dom), "the page never drew data at " + sys.argv[2]
assert 'data-http-status="200"' in dom, "the API answered no 200 at " + sys.argv[2]
PY
done
say "the embedded page drew data at $EMBEDDED_URL and $EMBEDDED_URL/"

# --------------------------------------------------------------------------
# The demo ends on its own and prints its final dashboard
# --------------------------------------------------------------------------

say "waiting for the demo to finish"
deadline=$((SECONDS + 60))
while kill -0 "$CHAT_PID" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the demo did not stop within its duration"
  sleep 0.5
done
wait "$CHAT_PID" || fail "chat_server exited with an error: $(tail -5 "$WORK/chat.log")"
grep -q '"schema_version": 2' "$OUT/chat_server_dashboard.json" || fail "the demo's final dashboard"
grep -q 'monitoring on http://127.0.0.1:' "$WORK/chat.log" || fail "the demo did not print its URL"
say "all interop checks passed in $((SECONDS - started)) s; artifacts in $OUT"
