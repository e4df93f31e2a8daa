#!/usr/bin/env python3
"""Checks examples/grafana_dashboard.json: valid JSON, every panel with a
query, and every PromQL `expr` parsed by promtool (written as recording
rules into a temporary file for `promtool check rules`); and
examples/fleet_rules.yml with `promtool check rules` as it is."""
import json, os, subprocess, sys, tempfile

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
dash = json.load(open(os.path.join(root, "examples", "grafana_dashboard.json")))
exprs = []
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr":
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(dash)
panels = dash["panels"]
assert all(p.get("targets") for p in panels), "a panel without a query"
titles = " ".join(p["title"].lower() for p in panels)
for what in ("cpu", "memory", "disk", "message rate", "latency", "anomaly"):
    assert what in titles, f"no {what} panel"
assert exprs, "no expr"
with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
    f.write("groups:\n  - name: grafana\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write(f"      - record: grafana:panel_expr:{i}\n        expr: {json.dumps(e)}\n")
for path in (f.name, os.path.join(root, "examples", "fleet_rules.yml")):
    r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"promtool check rules {path}:\n{r.stdout}{r.stderr}")
os.unlink(f.name)
print(f"grafana dashboard ok: {len(panels)} panels, {len(exprs)} PromQL expressions parsed by promtool; fleet rules ok")
