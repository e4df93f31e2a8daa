use std::time::Duration;

use serde_json::Value;

use crate::util::{T0, builder};

/// Builds the same engine state every time: a manual clock, chat metrics, a business metric.
fn scripted_dashboard() -> String {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .dashboard_recent_metrics(["active_users", "messages_total:rate", "orders_value"])
        .dashboard_recent_points(3)
        .alert_rule(
            watchpost::alert::AlertRule::builder("many_users", "active_users")
                .above(11.5)
                .recover_below(11.0)
                .pending_for(Duration::from_secs(1))
                .label("team", "chat")
                .title("Many users")
                .message("{{value}} users online (threshold {{threshold}})")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let users = engine.gauge("active_users").unwrap();
    let general = engine.counter_with("messages_total", &[("room", "general")]).unwrap();
    let dev = engine.counter_with("messages_total", &[("room", "dev")]).unwrap();
    let latency = engine.histogram("message_latency_seconds").unwrap();
    engine.flush().unwrap();
    for step in 0..5u32 {
        clock.advance(Duration::from_secs(1));
        users.set(f64::from(10 + step));
        general.add(u64::from(step) * 3);
        dev.add(1);
        for i in 0..10u32 {
            latency.observe(f64::from(i + step) * 0.01);
        }
        engine.record("orders_value", &[("shop", "eu")], f64::from(step) * 2.5).unwrap();
        engine.flush().unwrap();
    }
    let json = engine.dashboard_json().unwrap();
    // the JSON is the typed snapshot as serde_json pretty-prints it, byte for byte
    assert_eq!(json, serde_json::to_string_pretty(&engine.dashboard()).unwrap());
    json
}

#[test]
fn dashboard_matches_the_golden_file() {
    let got = scripted_dashboard();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/dashboard_v1.json");
    if std::env::var_os("WATCHPOST_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(path).expect("golden file; regenerate with WATCHPOST_BLESS=1");
    let got_v: Value = serde_json::from_str(&got).unwrap();
    let want_v: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(
        got_v, want_v,
        "dashboard changed; if intended, rerun with WATCHPOST_BLESS=1\n{got}"
    );
    // deterministic: the same script gives byte-identical output
    assert_eq!(scripted_dashboard(), got);
}

#[test]
fn dashboard_has_the_documented_shape() {
    let json: Value = serde_json::from_str(&scripted_dashboard()).unwrap();
    assert_eq!(json["schema_version"], 2);
    assert_eq!(json["generated_at"], "2026-01-01T00:00:05Z");
    assert_eq!(json["uptime_seconds"], 5.0);
    for key in ["cpu_usage", "memory_usage", "disk_usage", "timestamp"] {
        assert!(json["system_status"].get(key).is_some(), "system_status.{key}");
    }
    assert_eq!(json["system_status"]["cpu_usage"], Value::Null); // no system source here
    let users = json["recent_metrics"]["active_users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    assert_eq!(users[2]["value"], 14.0);
    assert_eq!(users[2]["timestamp"], "2026-01-01T00:00:05Z");
    let rate = &json["recent_metrics"]["messages_total:rate{room=\"general\"}"];
    assert_eq!(rate.as_array().unwrap().last().unwrap()["value"], 12.0);
    let stats = json["statistics"].as_array().unwrap();
    let users = stats.iter().find(|s| s["series"] == "active_users").unwrap();
    for (k, v) in [("count", 6.0), ("min", 0.0), ("max", 14.0), ("median", 11.5), ("p95", 14.0)] {
        assert_eq!(users[k].as_f64().unwrap(), v, "{k}");
    }
    assert_eq!(users["kind"], "gauge");
    let orders = stats.iter().find(|s| s["name"] == "orders_value").unwrap();
    assert_eq!(orders["labels"]["shop"], "eu");
    assert_eq!(orders["mean"], 5.0);
    assert_eq!(json["anomalies"], Value::Array(vec![]));
    // 10, 11, 12 (pending for 1 s), 13 (firing), 14
    let active = json["active_alerts"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], "many_users/active_users");
    assert_eq!(active[0]["state"], "firing");
    assert_eq!(active[0]["current_value"], 14.0);
    assert_eq!(active[0]["message"], "14 users online (threshold 11.5)");
    assert_eq!(active[0]["labels"]["team"], "chat");
    let events: Vec<(&str, &str)> = json["recent_alert_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["state"].as_str().unwrap(), e["timestamp"].as_str().unwrap()))
        .collect();
    assert_eq!(events, [("pending", "2026-01-01T00:00:03Z"), ("firing", "2026-01-01T00:00:04Z")]);
    assert_eq!(json["recent_alert_events"][1]["event"], "state_changed");
    assert_eq!(json["recent_alert_events"][1]["notified"], "firing");
    assert!(json["performance_summary"].is_object());
    let engine = &json["engine"];
    for key in [
        "series_count",
        "samples_ingested",
        "samples_dropped",
        "nonfinite_dropped",
        "series_rejected",
        "queue_depth",
        "last_collection_duration_ms",
    ] {
        assert!(engine[key].is_number(), "engine.{key}");
    }
    assert_eq!(engine["samples_dropped"], 0);
}

#[test]
fn statistics_cover_only_the_configured_window() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine =
        builder(&clock).dashboard_statistics_window(Duration::from_secs(10)).build().unwrap();
    for i in 0..30 {
        engine.record("x", &[], f64::from(i)).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    let d = engine.dashboard();
    let x = d.statistics.iter().find(|s| s.name == "x").unwrap();
    // now = T0 + 30 s: samples at 20..=29 s are inside the 10 s window
    assert_eq!(x.stats.count, 10);
    assert_eq!(x.stats.min, 20.0);
    assert_eq!(x.stats.max, 29.0);
}

#[test]
fn performance_summary_reflects_recorded_host_series() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    // ten minutes: CPU busy, memory climbing 1 % a minute, disk steady
    for s in 0..600u32 {
        engine.record("system_cpu_usage", &[], 90.0 + f64::from(s % 3)).unwrap();
        engine.record("system_memory_usage", &[], 40.0 + f64::from(s) / 60.0).unwrap();
        engine.record("system_disk_usage", &[], 50.0).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    let json: Value = serde_json::to_value(engine.dashboard()).unwrap();
    let perf = &json["performance_summary"];
    // memory at 50 % rising 60 %/h reaches 100 % in 50 minutes: critical
    assert_eq!(perf["summary"]["status"], "critical", "{perf:#}");
    let issues: Vec<&str> = perf["summary"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert!(issues.iter().any(|m| m.starts_with("High CPU usage")), "{issues:?}");
    assert!(issues.iter().any(|m| m.contains("memory leak")), "{issues:?}");
    assert!(issues.iter().any(|m| m.starts_with("Memory predicted to run out")), "{issues:?}");
    assert!(!issues.iter().any(|m| m.starts_with("Disk")), "{issues:?}");
    // the statistics window is 5 minutes: CPU stats cover 300 samples
    assert_eq!(perf["cpu_analysis"]["statistics"]["count"], 300);
    let mem = &perf["memory_analysis"]["trend"];
    assert_eq!(mem["direction"], "increasing");
    let per_hour = mem["slope_per_hour"].as_f64().unwrap();
    assert!((per_hour - 60.0).abs() < 1e-6, "{per_hour}");
    // the same summary is available directly
    assert_eq!(serde_json::to_value(engine.performance_summary()).unwrap(), *perf);
}

#[test]
fn the_documented_example_matches_the_golden_file() {
    // docs/dashboard.md shows a shortened golden snapshot: every value it shows must be real
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.md")).unwrap();
    let start = doc.find("```json\n").unwrap() + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let example: Value = serde_json::from_str(&doc[start..end]).unwrap();
    let golden: Value = serde_json::from_str(&scripted_dashboard()).unwrap();
    assert_subset(&example, &golden, "$");
}

/// Whether every key of `part` is in `whole` with the same value; arrays in
/// `part` hold a subset of the entries of `whole`.
fn is_subset(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => {
            p.iter().all(|(k, v)| w.get(k).is_some_and(|wv| is_subset(v, wv)))
        }
        (Value::Array(p), Value::Array(w)) => {
            p.iter().all(|item| w.iter().any(|x| is_subset(item, x)))
        }
        _ => part == whole,
    }
}

#[track_caller]
fn assert_subset(part: &Value, whole: &Value, path: &str) {
    if let (Value::Object(p), Value::Object(w)) = (part, whole) {
        for (k, v) in p {
            let wv = w.get(k).unwrap_or_else(|| panic!("{path}.{k} missing"));
            assert!(is_subset(v, wv), "{path}.{k}: {v} is not in {wv}");
        }
    } else {
        assert!(is_subset(part, whole), "{path}: {part} is not in {whole}");
    }
}

#[test]
fn statistics_of_unordered_windows_agree_with_statrs() {
    use statrs::statistics::{Data, Distribution, Max, Min, OrderStatistics};
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .dashboard_statistics_window(Duration::from_mins(5))
        .without_anomaly_detection()
        .build()
        .unwrap();
    // three series: shuffled values with ties, a running total (in order), one sample
    let mut recorded: Vec<(&str, Vec<f64>)> = vec![("noisy", vec![]), ("total", vec![])];
    for i in 0..400u32 {
        let noisy = f64::from((i * 7_919) % 257) * 0.5 - 20.0;
        let total = f64::from(i * i);
        engine.record("noisy", &[], noisy).unwrap();
        engine.record("total", &[], total).unwrap();
        if i >= 100 {
            // the window of 300 s ending at T0 + 400 s holds samples 100..=399
            recorded[0].1.push(noisy);
            recorded[1].1.push(total);
        }
        clock.advance(Duration::from_secs(1));
    }
    engine.record("single", &[], 3.5).unwrap();
    recorded.push(("single", vec![3.5]));
    engine.flush().unwrap();
    let d = engine.dashboard();
    for (name, values) in recorded {
        let got = d.statistics.iter().find(|s| s.name == name).unwrap().stats;
        let mut data = Data::new(values.clone());
        assert_eq!(got.count, values.len(), "{name}");
        assert_eq!((got.min, got.max), (data.min(), data.max()), "{name}");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(got.mean, data.mean().unwrap()), "{name} mean {}", got.mean);
        assert!(close(got.median, data.median()), "{name} median {}", got.median);
        for (g, tau) in [(got.p90, 0.90), (got.p95, 0.95), (got.p99, 0.99)] {
            assert!(close(g, data.quantile(tau)), "{name} p{tau} {g} vs {}", data.quantile(tau));
        }
        let sd = if values.len() > 1 { data.std_dev().unwrap() } else { 0.0 };
        assert!(close(got.stddev, sd), "{name} stddev {} vs {sd}", got.stddev);
    }
}

#[test]
fn statistics_follow_series_registered_between_snapshots() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    engine.record("b_metric", &[("room", "x\"y")], 1.0).unwrap();
    engine.flush().unwrap();
    let names = |d: &watchpost::dashboard::Dashboard| {
        d.statistics.iter().map(|s| s.series.clone()).collect::<Vec<_>>()
    };
    let first = names(&engine.dashboard());
    assert!(first.contains(&"b_metric{room=\"x\\\"y\"}".to_owned()), "{first:?}");
    engine.record("a_metric", &[], 2.0).unwrap();
    engine.flush().unwrap();
    let second = names(&engine.dashboard());
    // the new series, in its sorted place
    let a = second.iter().position(|s| s == "a_metric").expect("registered since");
    let b = second.iter().position(|s| s.starts_with("b_metric")).unwrap();
    assert!(a < b, "{second:?}");
    assert_eq!(second.len(), first.len() + 1);
    // and a removed one leaves
    assert!(engine.remove_series("b_metric", &[("room", "x\"y")]).unwrap());
    let third = names(&engine.dashboard());
    assert!(!third.iter().any(|s| s.starts_with("b_metric")), "{third:?}");
    assert_eq!(third.len(), first.len());
}

/// A pseudo-random sequence (64-bit LCG, top bits), so values come in no order.
struct Lcg(u64);

impl Lcg {
    /// The next value in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let (v, scale) = ((self.0 >> 11) as f64, (1u64 << 53) as f64);
        v / scale
    }
}

/// Quantile `tau` of `sorted` by the R-8 rule the dashboard documents (statrs'
/// `OrderStatistics::quantile`), written out from its definition.
fn r8_quantile(sorted: &[f64], tau: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = sorted.len() as f64;
    let h = (n + 1.0 / 3.0) * tau + 1.0 / 3.0;
    let hf = h.floor();
    if hf < 1.0 {
        sorted[0]
    } else if hf >= n {
        sorted[sorted.len() - 1]
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let k = hf as usize;
        sorted[k - 1] + (h - hf) * (sorted[k] - sorted[k - 1])
    }
}

/// `s` is the summary of `values`: order statistics exactly as a sorted copy
/// gives them by the documented rules, mean, deviation and quantiles as statrs.
#[track_caller]
fn assert_summary(series: &str, values: &[f64], s: &watchpost::stats::Summary) {
    use statrs::statistics::{Data, Distribution, OrderStatistics};
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median =
        if n % 2 == 1 { sorted[n / 2] } else { f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]) };
    assert_eq!(s.count, n, "{series}");
    assert_eq!((s.min, s.max), (sorted[0], sorted[n - 1]), "{series}");
    assert_eq!((s.median, s.p50), (median, median), "{series}");
    for (g, tau) in [(s.p90, 0.90), (s.p95, 0.95), (s.p99, 0.99)] {
        assert_eq!(g, r8_quantile(&sorted, tau), "{series} p{tau}");
    }
    // and statrs agrees, to rounding
    let mut data = Data::new(values.to_vec());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(s.mean, data.mean().unwrap()), "{series} mean {}", s.mean);
    let sd = if n > 1 { data.std_dev().unwrap() } else { 0.0 };
    assert!(close(s.stddev, sd), "{series} stddev {} vs {sd}", s.stddev);
    for (g, tau) in [(s.median, 0.5), (s.p90, 0.90), (s.p95, 0.95), (s.p99, 0.99)] {
        assert!(close(g, data.quantile(tau)), "{series} p{tau} {g} vs {}", data.quantile(tau));
    }
}

#[test]
fn every_series_statistic_and_recent_point_matches_an_independent_computation() {
    let window = Duration::from_mins(5);
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .dashboard_statistics_window(window)
        .dashboard_recent_metrics(["room_load", "orders_value"])
        .dashboard_recent_points(40)
        .build()
        .unwrap();
    let rooms: Vec<watchpost::Gauge> = ["a", "b", "c"]
        .iter()
        .map(|r| engine.gauge_with("room_load", &[("room", r)]).unwrap())
        .collect();
    let messages = engine.counter_with("messages_total", &[("room", "a")]).unwrap();
    let latency = engine.histogram("latency_seconds").unwrap();
    let mut rng = Lcg(0x5eed);
    let mut set_a = Vec::new();
    for t in 0..420u32 {
        clock.advance(Duration::from_secs(1));
        for (i, g) in rooms.iter().enumerate() {
            // room a stays within a band, with a spike now and then; b and c wander wide
            #[allow(clippy::cast_precision_loss)]
            let v = if i == 0 {
                if t % 97 == 96 { 500.0 } else { 50.0 + 10.0 * rng.next() }
            } else {
                (rng.next() - 0.5) * 1e4 * (i as f64)
            };
            g.set(v);
            if i == 0 {
                set_a.push((T0 + i64::from(t + 1) * 1_000, v));
            }
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        messages.add((rng.next() * 40.0) as u64);
        for _ in 0..5 {
            latency.observe(rng.next() * 0.3);
        }
        engine.record("orders_value", &[("shop", "eu")], (rng.next() * 200.0).round()).unwrap();
        if t % 4 != 0 {
            // 226 samples in the window: an even count, the median between two
            engine.record("refunds", &[], rng.next() * 50.0).unwrap();
        }
        engine.flush().unwrap();
    }
    let d = engine.dashboard();

    // the gauge's history is what was set (the oracle for the values below)
    let now = T0 + 420_000;
    let since = now - 300_000;
    let history_a: Vec<(i64, f64)> = engine
        .history_with("room_load", &[("room", "a")], window)
        .iter()
        .map(|s| (s.timestamp_ms, s.value))
        .collect();
    let want_a: Vec<(i64, f64)> =
        set_a.iter().copied().filter(|(t, _)| (since..=now).contains(t)).collect();
    assert_eq!(history_a, want_a);

    // every series with samples in the window has one entry, in order, with its statistics
    let mut listed = 0;
    for info in engine.series() {
        let labels: Vec<(&str, &str)> = info.key.labels().iter().collect();
        let values: Vec<f64> =
            engine.history_with(info.key.name(), &labels, window).iter().map(|s| s.value).collect();
        let series = info.key.to_string();
        let got = d.statistics.iter().find(|s| s.series == series);
        if values.is_empty() {
            assert!(got.is_none(), "{series} has no samples in the window");
            continue;
        }
        listed += 1;
        let got = got.unwrap_or_else(|| panic!("{series} missing from statistics"));
        assert_eq!(
            (got.name.as_str(), &got.labels, got.kind),
            (info.key.name(), info.key.labels(), info.kind)
        );
        assert_summary(&series, &values, &got.stats);
    }
    assert_eq!(d.statistics.len(), listed);
    let names: Vec<&str> = d.statistics.iter().map(|s| s.name.as_str()).collect();
    let refunds = d.statistics.iter().find(|s| s.name == "refunds").unwrap();
    assert_eq!(refunds.stats.count, 226);
    for name in ["room_load", "messages_total", "latency_seconds", "orders_value"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // derived series (the counter's rate, the histogram's quantiles) are there too
    assert!(names.len() > 6, "{names:?}");

    // recent points: the newest 40 samples of each listed series, annotations included
    assert_eq!(d.recent_metrics.len(), 4, "{:?}", d.recent_metrics.keys());
    let mut banded = 0;
    for (series, points) in &d.recent_metrics {
        let info = engine.series().into_iter().find(|i| i.key.to_string() == *series).unwrap();
        let labels: Vec<(&str, &str)> = info.key.labels().iter().collect();
        let all = engine.history_with(info.key.name(), &labels, Duration::from_hours(24));
        let want: Vec<_> = all[all.len() - 40..]
            .iter()
            .map(|s| {
                (
                    s.timestamp(),
                    s.value,
                    s.anomaly_score,
                    s.expected_band.map(|b| b.0),
                    s.expected_band.map(|b| b.1),
                )
            })
            .collect();
        let got: Vec<_> =
            points.iter().map(|p| (p.timestamp, p.value, p.score, p.lower, p.upper)).collect();
        assert_eq!(got, want, "{series}");
        banded += points.iter().filter(|p| p.lower.is_some() && p.score.is_some()).count();
    }
    assert!(banded > 40, "detectors' bands show in recent points ({banded})");
    // the JSON is the same snapshot, byte for byte as serde_json pretty-prints the typed one
    assert_eq!(engine.dashboard_json().unwrap(), serde_json::to_string_pretty(&d).unwrap());
}
