#!/usr/bin/env python3
"""Checks the dashboard page's DOM as dumped by headless Chromium (scripts/interop.sh).

Usage: page_check.py MODE DOM.html [JSON...] with MODE basic, notoken, spike,
after, narrow, dark, long (the page opened with #window=3600), ack or silence
(opened with #selftest=ack or silence; prints the alert's id); exits non-zero
with the failed assertion."""
import json, re, sys
from html.parser import HTMLParser

class Dom(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.elements = []
        self.texts = []
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
    def handle_data(self, data):
        # the text a person reads (not the page's script or style)
        if not self.elements or self.elements[-1][0] not in ("script", "style"):
            self.texts.append(data)
    def by_id(self, ident):
        return next((a for _, a in self.elements if a.get("id") == ident), None)
    def charts(self):
        return {a["data-series"]: a for _, a in self.elements
                if "chart" in a.get("class", "").split() and "data-series" in a}

mode, path = sys.argv[1], sys.argv[2]
raw = open(path, encoding="utf-8").read()
dom = Dom(raw)
body = next(a for t, a in dom.elements if t == "body")
drawn = int(body.get("data-drawn", "0"))
assert drawn >= 1 or mode == "notoken", "the page never drew data"
charts = dom.charts()
def chart(key):
    assert key in charts, "no chart of %s among %s" % (key, sorted(charts))
    return charts[key]
def worst_firing(alerts):
    order = ["info", "warning", "error", "critical"]
    firing = [order.index(a["labels"].get("severity", "info")) for a in alerts if a["state"] == "firing"]
    return order[max(firing)] if firing else None

if mode == "basic":
    for name in ["active_users", "messages_total:rate", "message_latency_seconds:p99",
                 'room_occupancy{room="general"}', "System status", "Alert history", "Anomalies"]:
        assert name.replace('"', "&quot;") in raw or name in raw, "missing " + name
    assert len(charts) >= 3, "charts: %s" % sorted(charts)
    for key, c in charts.items():
        assert "data-anomaly-markers" in c, key
        assert c["data-source"] == "series", "%s not read from /api/series: %s" % (key, c)
        assert c["data-window"] == "300", c
        # read in 1 s buckets, or raw when the samples are that far apart anyway
        assert c["data-step"] in ("1", "") and int(c["data-points"]) <= 301, "too many points: %s" % c
        assert c["data-truncated"] == "0", c
    # the demo samples every 250 ms: 5 m raw would be 1 200 points (cut to 1 000)
    for key in ["system_cpu_usage", "message_latency_seconds:p99"]:
        assert chart(key)["data-step"] == "1", "%s not downsampled: %s" % (key, chart(key))
    cpu = chart("system_cpu_usage")
    assert cpu["data-unit"] == "%" and 0 <= float(cpu["data-y-min"]) and float(cpu["data-y-max"]) <= 100, cpu
    assert chart("message_latency_seconds:p99")["data-unit"] == "s"
    assert chart('messages_total:rate{room="general"}')["data-unit"] == "/s"
    assert not any(k.startswith("messages_total{") for k in charts), "a counter charted as its running total"
    own = dom.by_id("charts-self")
    assert int(own.get("data-count", "0")) >= 1, "no chart of watchpost's own metrics"
    assert all(k.startswith("watchpost_") for k in charts if k not in raw.split('id="charts-self"')[0]), \
        "an application chart in watchpost's section"
    assert dom.by_id("overall")["data-status"] not in ("", "unknown"), dom.by_id("overall")
    for ident in ["alert-history", "anomalies", "alerts", "window", "token-form", "slow-summary",
                  "slow-by-name", "slow-ops", "log-events"]:
        assert dom.by_id(ident) is not None, ident
    # the slow-operation and log panels are drawn even when empty
    for ident in ["slow-by-name", "slow-ops", "log-events"]:
        assert "data-count" in dom.by_id(ident), ident
    assert "Slow operations" in raw and "Warnings and errors" in raw
    # one number formatter: at most 4 significant digits, no noise, no 1.00e-4
    shown = " ".join(dom.texts)
    # (zeros right after the point are not significant: 0.05805 is fine)
    noisy = re.findall(r"\d\.0*[1-9]\d{4,}|\d\.\d+e[-+]?\d+", shown)
    assert not noisy, "numbers shown with noise or exponents: %s" % noisy[:5]
    print("page ok: drawn %d times, %d charts (%d own)" % (drawn, len(charts), int(own["data-count"])))
elif mode == "notoken":
    conn = dom.by_id("conn")
    assert conn["data-http-status"] == "401", conn
    # opened as #selftest=ack without a token: the hook must not run
    assert "data-selftest" not in body and "data-selftest-alert" not in body, body
    assert "hidden" not in dom.by_id("token-form"), "the token form is hidden after a 401"
    assert "hidden" not in dom.by_id("notice") and "401 Unauthorized" in raw, "no 401 notice"
    print("no token: 401 shown, token form open")
elif mode == "spike":
    alerts_before, alerts_after, dashboard = (json.load(open(p)) for p in sys.argv[3:6])
    markers = {k: int(c["data-anomaly-markers"]) for k, c in charts.items()}
    flagged = {a["series"] for a in dashboard["anomalies"]} & set(charts)
    assert flagged, "no charted series has an anomaly yet: %s" % [a["series"] for a in dashboard["anomalies"]]
    assert all(markers[k] >= 1 for k in flagged), "anomalies without markers: %s" % {k: markers[k] for k in flagged}
    badge = dom.by_id("overall")
    expected = {worst_firing(a["active"]) for a in (alerts_before, alerts_after)}
    if None in expected:
        assert badge["data-source"] == "summary" or expected != {None}, badge
    assert badge["data-status"] in expected or (None in expected and badge["data-source"] == "summary"), \
        "badge %s, worst firing %s" % (badge, expected)
    p90 = chart("message_latency_seconds:p90")
    if any(e["rule"] == "slow_messages" for e in dashboard["recent_alert_events"]):
        assert "0.02" in p90["data-thresholds"].split(), "no threshold line: %s" % p90
    items = [a for t, a in dom.elements if t == "li" and "data-alert-id" in a]
    assert len(items) == len(alerts_after["active"]) or len(items) == len(alerts_before["active"]), items
    if items:
        assert raw.count(">Acknowledge</button>") + raw.count(">Silence 1 h</button>") >= 1, "no ack/silence buttons"
    # the slow-operation log and the WARN events of the spike (demo built with
    # the tracing layer), as the page read them a moment after this dashboard
    slow = dashboard.get("slow_operations") or {}
    slow_names = {a.get("data-name") for t, a in dom.elements if t == "tr" and "data-name" in a}
    slow_items = [a for t, a in dom.elements if t == "li" and "data-name" in a]
    if slow.get("count", 0) > 0:
        assert int(dom.by_id("slow-ops")["data-count"]) >= 1, dom.by_id("slow-ops")
        assert {n["name"] for n in slow["by_name"]} <= slow_names, \
            "slow spans %s not all listed: %s" % ([n["name"] for n in slow["by_name"]], slow_names)
        assert len(slow_items) >= 1 and raw.count(" ms</span>") + raw.count(" s</span>") >= 1, slow_items[:3]
    levels = [a["data-level"] for t, a in dom.elements if t == "li" and "data-level" in a]
    if dashboard.get("recent_log_events"):
        assert len(levels) >= len(dashboard["recent_log_events"][-100:]), levels
        assert {e["level"] for e in dashboard["recent_log_events"]} <= set(levels), levels
    print("spike ok: markers %s, badge %s (%s), p90 thresholds %r, %d active alerts, "
          "%d slow operations (%s), %d log events" % (
        {k: markers[k] for k in flagged}, badge["data-status"], badge["data-source"],
        p90["data-thresholds"], len(items), len(slow_items), sorted(slow_names), len(levels)))
elif mode == "after":
    p90 = chart("message_latency_seconds:p90")
    span, lo, hi = float(p90["data-span-seconds"]), float(p90["data-y-min"]), float(p90["data-y-max"])
    assert span >= 20, "p90 chart spans %s s only" % span
    assert hi >= 0.02 and lo < 0.01, "p90 y-range %s..%s does not show before and during the spike" % (lo, hi)
    history = dom.by_id("alert-history")
    assert int(history["data-count"]) >= 1, history
    print("after the spike ok: p90 over %.0f s, y %.4f..%.4f s, %s alert events" % (span, lo, hi, history["data-count"]))
elif mode == "narrow":
    # headless Chromium lays --dump-dom out at least 485 px wide (its minimum
    # window); the screenshots are taken at the asked width
    assert int(body["data-client-width"]) <= 500, body
    assert int(body["data-scroll-width"]) <= int(body["data-client-width"]), "overflows: %s" % body
    print("narrow ok: content %s px in a %s px viewport" % (body["data-scroll-width"], body["data-client-width"]))
elif mode == "long":
    assert len(charts) >= 3, "charts: %s" % sorted(charts)
    for key, c in charts.items():
        assert c["data-source"] == "series" and c["data-window"] == "3600", "%s: %s" % (key, c)
        # ceil(3600 / 300) s buckets, as the server answered (step_seconds),
        # or raw when the samples are that far apart anyway
        assert c["data-step"] in ("12", ""), "%s: %s" % (key, c)
        assert int(c["data-points"]) <= 301 and c["data-truncated"] == "0", c
        assert c["data-step"] == "" or c["data-spread"] == "1" or c["data-points"] == "0", \
            "no min/max for %s: %s" % (key, c)
    for key in ["system_cpu_usage", "message_latency_seconds:p99", "message_latency_seconds:p90"]:
        assert chart(key)["data-step"] == "12", "the 1 h read of %s carried no step: %s" % (key, chart(key))
    print("1 h window ok: %d of %d charts read with step=12, at most %d points" %
          (sum(c["data-step"] == "12" for c in charts.values()), len(charts),
           max(int(c["data-points"]) for c in charts.values())))
elif mode in ("ack", "silence"):
    expected = {"ack": "ack:200", "silence": "silence:201"}[mode]
    assert body.get("data-selftest") == expected, "the %s button: %s (expected %s); status %r" % (
        mode, body.get("data-selftest"), expected, raw.split('id="action-status"')[1][:300])
    assert body.get("data-selftest-alert"), body
    print(body["data-selftest-alert"])
elif mode == "dark":
    assert body["data-scheme"] == "dark", body
    print("dark scheme ok")
else:
    sys.exit("unknown mode " + mode)
