//! The analysis module through its public API only.

use std::{collections::HashMap, time::Duration};

use proptest::prelude::*;
use watchpost::analysis::{
    AnalysisConfig, Check, CheckKind, CrossDirection, Direction, ForecastCondition, HealthStatus,
    Method, PerformanceSummary, Point, SeriesAnalysis, Severity, SummaryConfig, TrendConfig,
    analyze_series, average_rate, best_lag, correlation_matrix, counter_rates, increase,
    performance_summary, predict_linear, statistics, time_to_threshold, trend, window,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

#[track_caller]
fn assert_close(actual: f64, expected: f64, tol: f64) {
    assert!((actual - expected).abs() <= tol * expected.abs().max(1.0), "{actual} != {expected}");
}

/// `n` points one minute apart following `f(minutes)`.
fn minutes(n: u32, f: impl Fn(f64) -> f64) -> Vec<Point> {
    (0..n).map(|i| Point::new(i64::from(i) * MINUTE, f(f64::from(i)))).collect()
}

/// Deterministic noise in [-1, 1].
fn noise(i: f64) -> f64 {
    (i * 12.9898).sin() * 43_758.545_3 % 1.0
}

#[test]
fn disk_full_in_six_hours() {
    // 40 % now, +10 % per hour over the last hour: full in 6 h
    let pts = minutes(61, |m| 30.0 + m / 6.0 + 0.2 * noise(m));
    let now = HOUR;
    let t = trend(&pts, &TrendConfig::default());
    assert_eq!(t.direction, Direction::Increasing);
    assert_close(t.slope_per_hour, 10.0, 0.01);
    let c = time_to_threshold(&t, now, 100.0, CrossDirection::Rising, 0.95).unwrap();
    assert_close(c.eta_seconds / 3600.0, 6.0, 0.03); // the noise moves it by minutes
    assert!(c.earliest_seconds < c.eta_seconds);
    assert!(c.latest_seconds.is_some_and(|l| l > c.eta_seconds));
    let predicted = predict_linear(&pts, now, Duration::from_hours(6)).unwrap();
    assert_close(predicted, 100.0, 0.02);
}

#[test]
fn statistics_and_windows() {
    let pts = minutes(100, |m| m);
    let last_ten = window(&pts, 90 * MINUTE, 99 * MINUTE);
    let s = statistics(last_ten).unwrap();
    assert_eq!((s.count, s.min, s.max, s.p50), (10, 90.0, 99.0, 94.5));
    assert!(s.p90 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
    assert!(statistics(&[]).is_none());
}

#[test]
fn forecast_condition_hysteresis() {
    let cond = ForecastCondition::new(
        100.0,
        CrossDirection::Rising,
        Duration::from_hours(8),
        Duration::from_hours(48),
    )
    .unwrap();
    let now = HOUR;
    let rising = |per_hour: f64| minutes(61, move |m| 40.0 + per_hour * m / 60.0);
    let mut firing = false;
    let mut history = Vec::new();
    for per_hour in [1.0, 5.0, 20.0, 3.0, 1.0, -1.0] {
        firing = cond.evaluate(firing, &rising(per_hour), now);
        history.push(firing);
    }
    // 59 h, 11 h: quiet; 2 h: fires; 19 h: holds; 59 h: clears; falling: quiet
    assert_eq!(history, [false, false, true, true, false, false]);
}

#[test]
fn counters_with_resets() {
    let c = [
        Point::new(0, 1000.0),
        Point::new(10_000, 1500.0),
        Point::new(20_000, 100.0), // restarted
        Point::new(30_000, 400.0),
    ];
    let rates: Vec<f64> = counter_rates(&c).iter().map(|p| p.value).collect();
    assert_eq!(rates, [50.0, 10.0, 30.0]);
    assert_close(increase(&c), 900.0, 1e-12);
    assert_close(average_rate(&c).unwrap(), 30.0, 1e-12);
}

#[test]
fn correlation_and_lag() {
    let load: Vec<Point> = minutes(120, |m| 50.0 + 20.0 * (m / 7.0).sin());
    let latency: Vec<Point> = minutes(120, |m| 10.0 + 3.0 * ((m - 4.0) / 7.0).sin());
    let lag = best_lag(&load, &latency, 10, 1000, Method::Pearson).unwrap();
    assert_eq!(lag.samples, 4);
    assert_close(lag.seconds, 240.0, 1e-12);
    assert!(lag.correlation > 0.99);

    let mut series = HashMap::new();
    series.insert("load".to_owned(), load);
    series.insert("latency".to_owned(), latency);
    series.insert("flat".to_owned(), minutes(120, |_| 1.0));
    let m = correlation_matrix(&series, &["load", "latency", "flat"], 1000, Method::Spearman);
    assert_eq!(m.values[0][0], Some(1.0));
    assert_eq!(m.values[0][1], m.values[1][0]);
    assert!(m.values[0][1].unwrap() > 0.5);
    assert_eq!(m.values[2], [None, None, None]);
}

#[test]
fn summary_of_a_struggling_host() {
    let mut series = HashMap::new();
    series.insert("system_cpu_usage".to_owned(), minutes(60, |m| 88.0 + 4.0 * noise(m)));
    series.insert("system_memory_usage".to_owned(), minutes(60, |m| 50.0 + m / 4.0));
    series.insert("system_disk_usage".to_owned(), minutes(60, |m| 70.0 + m / 10.0));
    series.insert(
        "system_network_bytes_sent".to_owned(),
        minutes(60, |m| if m < 30.0 { 1e6 * m } else { 1e6 * (m - 30.0) }),
    );
    let report = performance_summary(&series, 59 * MINUTE, &SummaryConfig::default());
    let s = &report.summary;
    assert_eq!(s.status, HealthStatus::Critical, "{:?}", s.issues);
    let has = |text: &str| s.issues.iter().any(|i| i.message.contains(text));
    assert!(has("High CPU usage"));
    assert!(has("possible memory leak"));
    assert!(has("Memory predicted to run out")); // 65 % now, +15 %/h: ~2.3 h → warning
    assert!(has("Disk predicted to fill up")); // 75.9 % now, +6 %/h: ~4 h → critical
    assert!(s.issues.iter().any(|i| i.severity == Severity::Critical));
    assert_eq!(s.recommendations.len(), s.issues.len());
    let net = report.network_analysis.unwrap();
    assert_close(net.bytes_sent, 58e6, 1e-12);
    assert!(net.sent_bytes_per_second.unwrap().min >= 0.0);

    let json = serde_json::to_value(&report).unwrap();
    assert!(nulls_only_where_optional(&json));
    for key in ["cpu_analysis", "memory_analysis", "network_analysis", "summary"] {
        assert!(json[key].is_object(), "{key}");
    }
    assert_eq!(json["summary"]["status"], "critical");
    let back: PerformanceSummary = serde_json::from_value(json).unwrap();
    assert_eq!(back.summary, report.summary);
}

#[test]
fn custom_checks() {
    let cfg = SummaryConfig {
        checks: vec![Check {
            series: "queue_depth".to_owned(),
            kind: CheckKind::Trending {
                direction: Direction::Decreasing,
                severity: Severity::Warning,
            },
            issue: "Queue draining".to_owned(),
            recommendation: "Nothing to do".to_owned(),
        }],
        ..SummaryConfig::default()
    };
    let source = |name: &str| (name == "queue_depth").then(|| minutes(30, |m| 500.0 - 10.0 * m));
    let report = performance_summary(&source, 29 * MINUTE, &cfg);
    assert_eq!(report.summary.status, HealthStatus::Warning);
    assert!(report.summary.issues[0].message.starts_with("Queue draining: -600 per hour"));
    assert!(report.cpu_analysis.is_none());
}

#[test]
fn series_analysis_wire_shape() {
    let cfg = AnalysisConfig { threshold: Some(100.0), ..AnalysisConfig::default() };
    let a = analyze_series(&minutes(30, |m| 50.0 + m), 29 * MINUTE, &cfg);
    let v = serde_json::to_value(a).unwrap();
    for key in ["count", "min", "max", "mean", "median", "stddev", "p50", "p90", "p95", "p99"] {
        assert!(v["statistics"][key].is_number(), "{key}");
    }
    for key in [
        "slope_per_second",
        "slope_per_hour",
        "theil_sen_slope_per_hour",
        "intercept",
        "r_squared",
        "p_value",
    ] {
        assert!(v["trend"][key].is_number(), "{key}");
    }
    assert_eq!(v["trend"]["direction"], "increasing");
    assert!(v["trend"]["forecast"]["crossing"]["eta_seconds"].is_number());
    let back: SeriesAnalysis = serde_json::from_value(v).unwrap();
    assert_eq!(back, a);
}

/// Whether every null in `v` sits under a key documented as optional.
fn nulls_only_where_optional(v: &serde_json::Value) -> bool {
    const OPTIONAL: [&str; 11] = [
        "statistics",
        "slope_std_error",
        "predicted_value",
        "crossing",
        "latest_seconds",
        "cpu_analysis",
        "memory_analysis",
        "disk_analysis",
        "network_analysis",
        "sent_bytes_per_second",
        "recv_bytes_per_second",
    ];
    match v {
        serde_json::Value::Object(m) => m.iter().all(|(k, v)| {
            if v.is_null() { OPTIONAL.contains(&k.as_str()) } else { nulls_only_where_optional(v) }
        }),
        serde_json::Value::Array(a) => a.iter().all(nulls_only_where_optional),
        _ => true,
    }
}

proptest! {
    #[test]
    fn summary_never_carries_nan(
        cpu in prop::collection::vec((0i64..10_000_000, prop::num::f64::ANY), 0..40),
        mem in prop::collection::vec((0i64..10_000_000, -1e6f64..1e6), 0..40),
        now in any::<i64>(),
    ) {
        let mut series = HashMap::new();
        series.insert("system_cpu_usage".to_owned(), cpu.into_iter().map(Point::from).collect());
        let mem: Vec<Point> = mem.into_iter().map(Point::from).collect();
        series.insert("system_memory_usage".to_owned(), mem.clone());
        series.insert("system_disk_usage".to_owned(), mem.clone());
        series.insert("system_network_bytes_recv".to_owned(), mem);
        let report = performance_summary(&series, now, &SummaryConfig::default());
        // serde_json writes NaN and infinities as null
        let json = serde_json::to_value(&report).unwrap();
        prop_assert!(nulls_only_where_optional(&json), "{json}");
        prop_assert!(serde_json::from_value::<PerformanceSummary>(json).is_ok());
        for section in [report.cpu_analysis, report.memory_analysis, report.disk_analysis] {
            let Some(a) = section else { continue };
            let f = a.trend.forecast;
            let optional = [a.trend.trend.slope_std_error, f.predicted_value,
                            f.crossing.and_then(|c| c.latest_seconds)];
            prop_assert!(optional.iter().flatten().all(|v| v.is_finite()));
        }
    }
}
