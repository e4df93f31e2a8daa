//! Prometheus and OpenMetrics exposition through the public API.

use watchpost::export::{self, Format};
use watchpost::health::{HealthCheck, Status};

use crate::util::engine;

/// The sample lines (not comments) of an exposition.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
}

#[test]
fn every_kind_in_both_formats() {
    let (engine, _clock) = engine();
    let reg = engine.registry();
    reg.describe("messages_total", "Chat messages accepted.").unwrap();
    engine.counter_with("messages_total", &[("room", "general")]).unwrap().add(5);
    engine.counter_with("messages_total", &[("room", "dev")]).unwrap().add(2);
    engine.gauge("active_users").unwrap().set(12.0);
    let h = engine.histogram_with("latency_seconds", &[], &[0.01, 0.1]).unwrap();
    for v in [0.005, 0.05, 0.5] {
        h.observe(v);
    }
    let s = engine.summary("size_bytes").unwrap();
    s.observe(10.0);
    engine.record("order_value", &[("shop", "eu")], 42.5).unwrap();
    engine.flush().unwrap();

    let prom = engine.prometheus_text();
    let lines = samples(&prom);
    assert!(lines.contains(&"messages_total{room=\"dev\"} 2"), "{prom}");
    assert!(lines.contains(&"messages_total{room=\"general\"} 5"));
    assert!(lines.contains(&"active_users 12.0"));
    assert!(lines.contains(&"latency_seconds_bucket{le=\"0.01\"} 1"));
    assert!(lines.contains(&"latency_seconds_bucket{le=\"0.1\"} 2"));
    assert!(lines.contains(&"latency_seconds_bucket{le=\"+Inf\"} 3"));
    assert!(lines.contains(&"latency_seconds_count 3"));
    assert!(lines.contains(&"size_bytes_count 1"));
    assert!(lines.contains(&"size_bytes_sum 10.0"));
    // a recorded series shows its latest value
    assert!(lines.contains(&"order_value{shop=\"eu\"} 42.5"), "{prom}");
    assert!(prom.contains("# HELP messages_total Chat messages accepted.\n"));
    assert!(prom.contains("# TYPE latency_seconds histogram\n"));
    assert!(prom.contains("# TYPE size_bytes summary\n"));
    assert!(prom.contains("# TYPE watchpost_samples_ingested_total counter\n"));
    // derived series stay in history
    assert!(!prom.contains("messages_total:rate"));
    assert!(engine.series().iter().any(|s| s.key.name() == "messages_total:rate"));
    // families sorted by name, series by labels
    let types: Vec<&str> = prom.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut sorted = types.clone();
    sorted.sort_unstable();
    assert_eq!(types, sorted);

    let om = engine.openmetrics_text();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE messages counter\n"));
    assert!(om.contains("# HELP messages Chat messages accepted.\n"));
    // the same samples in both formats
    assert_eq!(samples(&om), lines);
}

#[test]
fn format_follows_accept() {
    let (engine, _clock) = engine();
    engine.counter("jobs_total").unwrap().inc();
    let mut out = String::new();
    let format = Format::from_accept(Some("application/openmetrics-text; version=1.0.0"));
    export::encode(engine.registry(), format, &mut out);
    assert_eq!(out, engine.openmetrics_text());
    assert_eq!(
        export::prometheus_text(engine.registry()),
        engine.prometheus_text(),
        "the Monitor shortcut and the plain function agree"
    );
}

#[test]
fn health_checks_are_metrics() {
    let (engine, _clock) = engine();
    engine.register_health_check(HealthCheck::new("database", || Ok(()))).unwrap();
    engine
        .register_health_check(HealthCheck::new("peer", || Err("refused".into())).critical(false))
        .unwrap();
    let report = engine.health();
    assert_eq!(report.status, Status::Degraded);
    assert_eq!(report.checked_at.timestamp_millis(), crate::util::T0);
    let text = engine.prometheus_text();
    assert!(text.contains("health_check_up{component=\"database\"} 1.0\n"), "{text}");
    assert!(text.contains("health_check_up{component=\"peer\"} 0.0\n"));
    assert!(text.contains("# TYPE health_check_latency_seconds gauge\n"));
    assert!(text.contains("health_check_latency_seconds{component=\"peer\"} "));
    // and in history, so rules can watch them
    engine.flush().unwrap();
    assert_eq!(engine.latest_with("health_check_up", &[("component", "peer")]).unwrap().value, 0.0);
}

#[test]
fn hostile_label_values_stay_one_line() {
    let (engine, _clock) = engine();
    engine.gauge_with("probe", &[("v", "<script>alert(1)</script>\"\n\\")]).unwrap().set(1.0);
    let text = engine.prometheus_text();
    assert!(text.contains("probe{v=\"<script>alert(1)</script>\\\"\\n\\\\\"} 1.0\n"), "{text}");
}
