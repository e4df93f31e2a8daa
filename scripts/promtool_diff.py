#!/usr/bin/env python3
"""Differential test of watchpost's alerting against Prometheus' (promtool).

For a set of scenarios (hand-written ones and seeded random ones) this
script runs `examples/promtool_diff.rs`, which drives a watchpost Engine
through each scenario with a ManualClock and prints the firing alerts at
every evaluation minute. It then writes, per scenario, a Prometheus rule
file and a `promtool test rules` file whose `exp_alerts` are watchpost's
firing sets, runs promtool, and reads back every disagreement promtool
reports (it prints the expected and the actual alerts).

A disagreement fails the run unless one of the documented differences in
KNOWN explains it (each is a paragraph of docs/alerts.md, "Differences from
Prometheus", and a predicate over the scenario that says where it applies).

Usage: promtool_diff.py EXAMPLE_BINARY WORK_DIR   (stdlib only)
Environment: PROMTOOL_DIFF_SEED (default 1), PROMTOOL_DIFF_RANDOM (default 16).
"""

import json
import os
import random
import re
import subprocess
import sys

OPS = [">", ">=", "<", "<=", "==", "!="]
OVER_TIME = {
    "avg": "avg_over_time",
    "min": "min_over_time",
    "max": "max_over_time",
    "sum": "sum_over_time",
    "count": "count_over_time",
    "last": "last_over_time",
}

LOOKBACK_S = 300


def newest_before(values, minute):
    """The minute of the newest sample at or before `minute`, or None."""
    for m in range(min(minute, len(values) - 1), -1, -1):
        if values[m] is not None:
            return m
    return None


def is_stale(values, minute):
    newest = newest_before(values, minute)
    return newest is not None and newest * 60 < minute * 60 - LOOKBACK_S


def window_empty_while_fresh(sc, r, labels, minute):
    """At an evaluation up to `minute` the rule's window held no sample while
    the series was fresh and watchpost's alert was firing, and the alert has
    not been inactive in watchpost since: watchpost paused the firing alert
    (no data) where Prometheus ended it, and what follows (a resumed firing,
    keep_firing_for counted from later) comes from that. A *pending* alert
    across such a gap is not covered."""
    s = series_for(sc, labels)
    if not s or r["window_s"] >= LOOKBACK_S:
        return False
    w = r["window_s"] // 60
    tainted = False
    for m in range(minute + 1):
        newest = newest_before(s["values"], m)
        empty = newest is not None and m - w > newest and not is_stale(s["values"], m)
        if empty and watchpost_has(sc, "firing", r, labels, m):
            tainted = True
        elif not watchpost_has(sc, "active", r, labels, m):
            tainted = False
    return tainted


def pending_across_no_data(sc, r, labels, minute):
    """At an evaluation up to `minute` the rule's window held no sample while
    the series was fresh and watchpost's alert was pending (not firing)."""
    s = series_for(sc, labels)
    if not s or r["window_s"] >= LOOKBACK_S:
        return False
    w = r["window_s"] // 60
    for m in range(minute + 1):
        newest = newest_before(s["values"], m)
        empty = newest is not None and m - w > newest and not is_stale(s["values"], m)
        if (empty and watchpost_has(sc, "active", r, labels, m)
                and not watchpost_has(sc, "firing", r, labels, m)):
            return True
    return False


# Disagreements that are bugs being fixed: still failures, only named.
SUSPECTS = [
    ("a pending `for` timer keeps running while its window holds no data",
     pending_across_no_data),
]

# Why the two may differ, each a paragraph of docs/alerts.md ("Differences
# from Prometheus"): (name, predicate(scenario, rule, series labels, minute)).
KNOWN = [
    ("rate extrapolation", lambda sc, r, labels, minute: r["aggregate"] == "rate"),
    ("window empty, series fresh: no data", window_empty_while_fresh),
]


def series_label_names(sc):
    return {k for s in sc["series"] for k in s["labels"]}


def watchpost_has(sc, which, r, labels, minute):
    """Whether watchpost's `which` set ("firing" or "active") at `minute`
    holds the alert of rule `r` on the series with `labels`."""
    want = dict(labels, alertname=r["name"])
    return any(all(a.get(k) == v for k, v in want.items())
               for a in sc["watchpost"].get(minute, {}).get(which, []))


def series_for(sc, labels):
    for s in sc["series"]:
        if all(labels.get(k) == v for k, v in s["labels"].items()):
            return s
    return None


def explain(sc, alertname, at, exp, got, known=None):
    """The documented difference that explains a disagreement, or None."""
    known = KNOWN if known is None else known
    r = next(r for r in sc["rules"] if r["name"] == alertname)
    minute = int(at.rstrip("m"))
    reasons = []
    for labels_text in sorted(set(exp) ^ set(got)):  # the alerts the two disagree on
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        labels = {k: v for k, v in labels.items() if k in series_label_names(sc)}
        reason = next((name for name, applies in known if applies(sc, r, labels, minute)), None)
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(sorted(set(reasons))) or None


def rule(name, metric, op, value, aggregate="last", window_s=300, for_s=0, kff_s=0,
         matchers=(), severity="warning", labels=None, quantile=0.0):
    return {
        "name": name, "metric": metric, "matchers": list(matchers), "aggregate": aggregate,
        "quantile": quantile, "window_s": window_s, "op": op, "value": value, "for_s": for_s,
        "keep_firing_for_s": kff_s, "severity": severity, "labels": labels or {},
    }


def series(metric, values, **labels):
    return {"metric": metric, "labels": labels, "values": values}


def gap(n):
    return [None] * n


def scenarios(seed, n_random):
    out = []
    # every comparison operator exactly at the threshold and either side of it
    vals = [3, 4, 5, 5, 6, 5, 4, 5, 6, 6, 4, 5, 5, 3, 7, 5]
    out.append({
        "name": "ops_at_threshold", "minutes": len(vals),
        "series": [series("m", vals, i="a")],
        "rules": [rule("op_" + str(k), "m", op, 5) for k, op in enumerate(OPS)],
    })
    # `for` with resets: breaches of 1, 2, 3 and 5 minutes
    vals = [0, 9, 0, 9, 9, 0, 9, 9, 9, 0, 9, 9, 9, 9, 9, 0, 0, 9, 9, 9]
    out.append({
        "name": "for_resets", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("for1", "m", ">", 5, for_s=60), rule("for2", "m", ">", 5, for_s=120),
                  rule("for3", "m", ">", 5, for_s=180)],
    })
    # keep_firing_for, alone and with `for`, with a re-breach inside the extension
    vals = [0, 9, 9, 9, 0, 0, 0, 0, 0, 9, 0, 9, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 0]
    out.append({
        "name": "keep_firing_for", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("kff2", "m", ">", 5, kff_s=120), rule("for2_kff3", "m", ">", 5, for_s=120,
                                                              kff_s=180),
                  rule("kff1", "m", ">", 5, kff_s=60)],
    })
    # gaps inside the 5 minute lookback: the last value holds
    vals = [9, 9] + gap(3) + [9, 0] + gap(4) + [0, 9] + gap(5) + [9, 9, 0]
    out.append({
        "name": "gap_inside_lookback", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("gt", "m", ">", 5), rule("gt_for3", "m", ">", 5, for_s=180),
                  rule("lt_kff2", "m", "<", 5, kff_s=120)],
    })
    # gaps beyond it: the series goes stale, alerts end; `for` starts over on return
    vals = [9, 9, 9] + gap(7) + [9, 9, 9, 9] + gap(6) + [0, 9] + gap(8)
    out.append({
        "name": "gap_beyond_lookback", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("gt", "m", ">", 5), rule("gt_for2", "m", ">", 5, for_s=120),
                  rule("gt_kff2", "m", ">", 5, kff_s=120)],
    })
    # label matchers, several series, several rules per metric
    a = [1, 6, 9, 9, 6, 1, 9, 9, 9, 1]
    b = [9, 9, 1, 6, 9, 9, 1, 1, 9, 9]
    c = [6, 6, 6, 9, 9, 1, 1, 6, 6, 6]
    out.append({
        "name": "matchers_and_levels", "minutes": len(a),
        "series": [series("lat", a, svc="api", env="prod"),
                   series("lat", b, svc="web", env="prod"),
                   series("lat", c, svc="api", env="dev")],
        "rules": [
            rule("warn", "lat", ">", 5),
            rule("crit", "lat", ">", 8, severity="critical", labels={"team": "core"}),
            rule("prod_only", "lat", ">", 5, matchers=['env="prod"']),
            rule("not_api", "lat", ">", 5, matchers=['svc!="api"']),
            rule("re_prod", "lat", ">=", 9, matchers=['env=~"pr.*"', 'svc!~"w.b"']),
        ],
    })
    # aggregates over time vs the matching *_over_time functions
    rng = random.Random(seed * 7919)
    vals = [round(rng.uniform(0, 10) * 4) / 4 for _ in range(30)]  # quarters: exact sums
    out.append({
        "name": "over_time", "minutes": len(vals),
        "series": [series("cpu", vals, host="h1")],
        "rules": [
            rule("avg5", "cpu", ">", 5, aggregate="avg"),
            rule("max5", "cpu", ">=", 8, aggregate="max"),
            rule("min3", "cpu", "<", 3, aggregate="min", window_s=180),
            rule("sum5", "cpu", ">", 30, aggregate="sum"),
            rule("count5", "cpu", ">", 5, aggregate="count"),
            rule("q50_5", "cpu", ">", 5, aggregate="quantile", quantile=0.5),
            rule("last2", "cpu", ">", 5, aggregate="last", window_s=120, for_s=60),
        ],
    })
    # rate of a counter (a documented difference: no extrapolation)
    total, vals = 0, []
    for k in range(20):
        total += [1, 5, 30, 30, 2][k % 5] * 60
        vals.append(total)
    out.append({
        "name": "rate", "minutes": len(vals),
        "series": [series("req_total", vals)],
        "rules": [rule("rate_gt", "req_total", ">", 10, aggregate="rate")],
    })
    # a windowed aggregate whose window empties before the series goes stale
    vals = [9, 9, 9] + gap(3) + [9, 9, 0, 0] + gap(3) + [9, 9, 9]
    out.append({
        "name": "window_empties", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("max2m_gt", "m", ">", 5, aggregate="max", window_s=120),
                  rule("max2m_gt_for2", "m", ">", 5, aggregate="max", window_s=120, for_s=120)],
    })
    # a pending alert whose window empties (the series still fresh), then refills
    vals = [9] + gap(3) + [9] * 8 + [0, 0]
    out.append({
        "name": "pending_across_window_gap", "minutes": len(vals),
        "series": [series("m", vals)],
        "rules": [rule("min2m_gt_for5", "m", ">", 5, aggregate="min", window_s=120, for_s=300)],
    })
    # random series with random `for` and `keep_firing_for`
    rng = random.Random(seed)
    for k in range(n_random):
        minutes = 40
        srs = []
        for s in range(rng.choice([1, 2])):
            v, vals = rng.uniform(3, 7), []
            for _ in range(minutes):
                v = min(10.0, max(0.0, v + rng.uniform(-2, 2)))
                vals.append(round(v * 2) / 2)  # halves: sums and means are exact
            # gaps: short ones (inside the lookback) and sometimes a long one
            for _ in range(rng.randint(0, 3)):
                start = rng.randrange(minutes)
                for m in range(start, min(minutes, start + rng.randint(1, 4))):
                    vals[m] = None
            if rng.random() < 0.5:
                start = rng.randrange(minutes - 8)
                for m in range(start, start + rng.randint(6, 9)):
                    vals[m] = None
            srs.append(series("r", vals, s=str(s)))
        rules = []
        for j in range(rng.randint(1, 3)):
            rules.append(rule(
                "r%d" % j, "r", rng.choice(OPS[:4]), rng.choice([4, 5, 6]),
                aggregate=rng.choice(["last", "last", "avg", "max", "min"]),
                window_s=rng.choice([300, 300, 300, 120, 180]),
                for_s=60 * rng.choice([0, 0, 1, 2, 3, 5]),
                kff_s=60 * rng.choice([0, 0, 1, 2, 4]),
            ))
        out.append({"name": "random_%d" % k, "minutes": minutes, "series": srs, "rules": rules})
    return out


def series_text(s):
    labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s["labels"].items()))
    return "%s{%s}" % (s["metric"], labels) if labels else s["metric"]


def values_text(values):
    out = []
    for v in values:
        out.append("_" if v is None else repr(float(v)))
    return " ".join(out)


def expr(r):
    sel = r["metric"] + ("{%s}" % ",".join(r["matchers"]) if r["matchers"] else "")
    w = "[%ds]" % r["window_s"]
    agg = r["aggregate"]
    if agg == "last" and r["window_s"] == 300:
        inner = sel  # an instant selector: the newest sample of the 5 minute lookback
    elif agg == "rate":
        inner = "rate(%s%s)" % (sel, w)
    elif agg == "quantile":
        inner = "quantile_over_time(%s, %s%s)" % (r["quantile"], sel, w)
    else:
        inner = "%s(%s%s)" % (OVER_TIME[agg], sel, w)
    return "%s %s %s" % (inner, r["op"], r["value"])


def rule_file(sc):
    rules = []
    for r in sc["rules"]:
        pr = {"alert": r["name"], "expr": expr(r),
              "labels": dict(r["labels"], severity=r["severity"])}
        if r["for_s"]:
            pr["for"] = "%ds" % r["for_s"]
        if r["keep_firing_for_s"]:
            pr["keep_firing_for"] = "%ds" % r["keep_firing_for_s"]
        rules.append(pr)
    return {"groups": [{"name": sc["name"], "interval": "1m", "rules": rules}]}


def test_file(sc, firing_by_minute):
    tests = []
    for minute in range(sc["minutes"]):
        firing = firing_by_minute.get(minute, {}).get("firing", [])
        for r in sc["rules"]:
            exp = [{"exp_labels": {k: v for k, v in a.items() if k != "alertname"}}
                   for a in firing if a["alertname"] == r["name"]]
            tests.append({"eval_time": "%dm" % minute, "alertname": r["name"], "exp_alerts": exp})
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": series_text(s), "values": values_text(s["values"])}
                             for s in sc["series"]],
            "alert_rule_test": tests,
        }],
    }


FAILURE = re.compile(r"alertname: (\S+), time: (\S+),\s*\n\s*exp:(.*?)\n\s*got:(.*?)(?=\n\s*alertname: |\Z)",
                     re.S)


def labels_of(text):
    return sorted(set(re.findall(r"Labels:\{([^}]*)\}", text)))


def main():
    binary, work = sys.argv[1], sys.argv[2]
    seed = int(os.environ.get("PROMTOOL_DIFF_SEED", "1"))
    n_random = int(os.environ.get("PROMTOOL_DIFF_RANDOM", "16"))
    scs = scenarios(seed, n_random)
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "scenarios.json")
    with open(path, "w") as f:
        json.dump(scs, f)
    proc = subprocess.run([binary, path], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        sys.exit("promtool_diff example failed:\n" + proc.stderr)
    firing = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        firing.setdefault(row["scenario"], {})[row["minute"]] = row

    unexpected, documented, evals = [], [], 0
    for sc in scs:
        d = os.path.join(work, sc["name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "rules.yml"), "w") as f:
            json.dump(rule_file(sc), f, indent=1)
        with open(os.path.join(d, "test.yml"), "w") as f:
            json.dump(test_file(sc, firing.get(sc["name"], {})), f, indent=1)
        evals += sc["minutes"] * len(sc["rules"])
        sc["watchpost"] = firing.get(sc["name"], {})
        res = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=d,
                             capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            continue
        found = FAILURE.findall(res.stdout + res.stderr)
        if not found:
            sys.exit("promtool failed on %s without a readable disagreement:\n%s%s"
                     % (sc["name"], res.stdout, res.stderr))
        for alertname, at, exp, got in found:
            exp, got = labels_of(exp), labels_of(got)
            reason = explain(sc, alertname, at, exp, got)
            if not reason:
                reason = explain(sc, alertname, at, exp, got, SUSPECTS)
                unexpected.append((sc["name"], alertname, at, exp, got, reason))
            else:
                documented.append((sc["name"], alertname, at, exp, got, reason))

    for name, alertname, at, exp, got, reason in documented:
        print("documented  %s/%s at %s: watchpost %s, prometheus %s  (%s)"
              % (name, alertname, at, exp or "none", got or "none", reason))
    for name, alertname, at, exp, got, suspect in unexpected:
        print("DISAGREE    %s/%s at %s: watchpost %s, prometheus %s%s"
              % (name, alertname, at, exp or "none", got or "none",
                 "  (likely: %s)" % suspect if suspect else ""))
    print("%d scenarios (seed %d), %d rule evaluations compared; %d documented differences, "
          "%d disagreements" % (len(scs), seed, evals, len(documented), len(unexpected)))
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
