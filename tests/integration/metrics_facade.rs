//! The `metrics` facade through watchpost's recorder: the real macros, a
//! local recorder per test (no fight over the global one), manual clock.

use std::time::Duration;

use watchpost::alert::AlertRule;
use watchpost::integrations::MetricsRecorder;
use watchpost::{Engine, ManualClock};

use crate::util::{assert_close, builder, engine};

fn with<T>(recorder: &MetricsRecorder, f: impl FnOnce() -> T) -> T {
    metrics::with_local_recorder(recorder, f)
}

fn tick(engine: &Engine, clock: &ManualClock) {
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
}

#[test]
fn counter_with_labels_reaches_history_rate_and_exposition() {
    let (engine, clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        metrics::counter!("requests_total", "route" => "/chat").increment(3);
        metrics::counter!("requests_total", "route" => "/login").increment(1);
    });
    tick(&engine, &clock);
    with(&recorder, || metrics::counter!("requests_total", "route" => "/chat").increment(2));
    tick(&engine, &clock);

    let chat = engine.history_with("requests_total", &[("route", "/chat")], Duration::from_mins(1));
    assert_eq!(chat.iter().map(|s| s.value).collect::<Vec<_>>(), [3.0, 5.0]);
    let rate = engine.latest_with("requests_total:rate", &[("route", "/chat")]).unwrap();
    assert_close(rate.value, 2.0);
    assert_eq!(engine.latest_with("requests_total", &[("route", "/login")]).unwrap().value, 1.0);

    let text = engine.prometheus_text();
    assert!(text.contains("# TYPE requests_total counter\n"), "{text}");
    assert!(text.contains("requests_total{route=\"/chat\"} 5\n"), "{text}");
    assert!(text.contains("requests_total{route=\"/login\"} 1\n"), "{text}");
    assert_eq!(recorder.rejected(), 0);
}

#[test]
fn counter_absolute_raises_and_never_lowers() {
    let (engine, _clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    let c = with(&recorder, || metrics::counter!("bytes_total"));
    c.absolute(100);
    c.increment(5);
    assert_eq!(engine.counter("bytes_total").unwrap().get(), 105);
    c.absolute(50); // below the total: a counter does not go back
    assert_eq!(engine.counter("bytes_total").unwrap().get(), 105);
    c.absolute(200);
    assert_eq!(engine.counter("bytes_total").unwrap().get(), 200);
}

#[test]
fn gauge_increment_decrement_set() {
    let (engine, clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        let g = metrics::gauge!("connections", "node" => "a");
        g.increment(5.0);
        g.decrement(2.0);
        metrics::gauge!("connections", "node" => "a").increment(1.0); // by name: the same series
    });
    tick(&engine, &clock);
    assert_eq!(engine.latest_with("connections", &[("node", "a")]).unwrap().value, 4.0);
    with(&recorder, || metrics::gauge!("connections", "node" => "a").set(-1.5));
    tick(&engine, &clock);
    assert_eq!(engine.latest_with("connections", &[("node", "a")]).unwrap().value, -1.5);
    assert!(engine.prometheus_text().contains("connections{node=\"a\"} -1.5\n"));
}

#[test]
fn histogram_uses_default_buckets() {
    let (engine, clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        for v in [0.003, 0.02, 0.02, 2.0] {
            metrics::histogram!("latency_seconds", "route" => "/chat").record(v);
        }
    });
    tick(&engine, &clock);
    let h = engine.registry().histogram("latency_seconds", &[("route", "/chat")], None).unwrap();
    assert_eq!(h.bounds(), watchpost::DEFAULT_BUCKETS);
    assert_eq!(h.snapshot().count, 4);
    // history holds the observation count
    assert_eq!(engine.latest_with("latency_seconds", &[("route", "/chat")]).unwrap().value, 4.0);
    let text = engine.prometheus_text();
    assert!(text.contains("# TYPE latency_seconds histogram\n"), "{text}");
    assert!(text.contains("latency_seconds_count{route=\"/chat\"} 4\n"), "{text}");
    assert!(text.contains("latency_seconds_bucket{route=\"/chat\",le=\"0.005\"} 1\n"), "{text}");
}

#[test]
fn histogram_keeps_buckets_or_summary_registered_beforehand() {
    let (engine, clock) = engine();
    let _ = engine
        .registry()
        .histogram("payload_bytes", &[("dir", "in")], Some(&[10.0, 100.0]))
        .unwrap();
    let _ = engine.registry().summary("think_seconds", &[]).unwrap();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        metrics::histogram!("payload_bytes", "dir" => "out").record(50.0);
        metrics::histogram!("think_seconds").record(1.5);
    });
    tick(&engine, &clock);
    assert_eq!(recorder.rejected(), 0, "{:?}", recorder.last_rejection());
    let out = engine.registry().histogram("payload_bytes", &[("dir", "out")], Some(&[10.0, 100.0]));
    assert_eq!(out.unwrap().snapshot().count, 1);
    assert_eq!(engine.registry().summary("think_seconds", &[]).unwrap().count(), 1);
    assert!(engine.prometheus_text().contains("# TYPE think_seconds summary\n"));
}

#[test]
fn describe_becomes_help_with_the_unit() {
    let (engine, _clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        metrics::describe_counter!("requests_total", "Requests served.");
        metrics::describe_histogram!(
            "latency_seconds",
            metrics::Unit::Seconds,
            "Time to answer a request."
        );
        metrics::describe_gauge!("connections", metrics::Unit::Count, "Open connections.");
        metrics::counter!("requests_total").increment(1);
        metrics::histogram!("latency_seconds").record(0.1);
        metrics::gauge!("connections").set(1.0);
    });
    let text = engine.prometheus_text();
    assert!(text.contains("# HELP requests_total Requests served.\n"), "{text}");
    assert!(
        text.contains("# HELP latency_seconds Time to answer a request. (unit: seconds)\n"),
        "{text}"
    );
    assert!(text.contains("# HELP connections Open connections. (unit: count)\n"), "{text}");
}

#[test]
fn bad_names_and_labels_are_counted_not_panicking() {
    let (engine, clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        metrics::counter!("http.requests").increment(1);
        metrics::gauge!("queue depth").set(3.0);
        metrics::histogram!("ok_seconds", "bad-label" => "x").record(1.0);
        metrics::describe_counter!("9lives", "starts with a digit");
    });
    assert_eq!(recorder.rejected(), 4);
    assert!(recorder.last_rejection().unwrap().contains("\"9lives\""));
    // a name registered as another kind is refused the same way
    with(&recorder, || {
        metrics::counter!("mixed").increment(1);
        metrics::gauge!("mixed").set(1.0);
    });
    assert_eq!(recorder.rejected(), 5);
    assert!(recorder.last_rejection().unwrap().contains("mixed"));

    tick(&engine, &clock);
    assert_eq!(engine.latest("watchpost_metrics_facade_rejected_total").unwrap().value, 5.0);
    let text = engine.prometheus_text();
    assert!(text.contains("watchpost_metrics_facade_rejected_total 5\n"), "{text}");
    assert!(!text.contains("queue depth"));
    assert!(engine.latest("ok_seconds").is_none());
}

#[test]
fn series_cap_refusals_are_counted() {
    let clock = ManualClock::at_millis(crate::util::T0);
    let engine = builder(&clock).series_cap(2).build().unwrap();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || {
        for user in ["a", "b", "c", "d"] {
            metrics::counter!("logins_total", "user" => user).increment(1);
        }
    });
    assert_eq!(recorder.rejected(), 2);
    assert_eq!(engine.registry().rejected_series(), 2);
}

#[test]
fn a_removed_series_is_registered_afresh() {
    let (engine, clock) = engine();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || metrics::counter!("jobs_total").increment(4));
    assert!(engine.remove_series("jobs_total", &[]).unwrap());
    with(&recorder, || metrics::counter!("jobs_total").increment(1));
    tick(&engine, &clock);
    assert_eq!(engine.latest("jobs_total").unwrap().value, 1.0);
}

#[test]
fn facade_counters_drive_alert_rules() {
    let (engine, clock) = engine();
    engine
        .add_alert_rule(
            AlertRule::builder("errors_rising", "errors_total:rate").above(5.0).build().unwrap(),
        )
        .unwrap();
    let recorder = MetricsRecorder::new(&engine);
    with(&recorder, || metrics::counter!("errors_total").increment(1));
    tick(&engine, &clock);
    assert!(engine.active_alerts().is_empty());
    with(&recorder, || metrics::counter!("errors_total").increment(20));
    tick(&engine, &clock);
    let active = engine.active_alerts();
    assert_eq!(active.len(), 1, "{active:?}");
    assert!(engine.dashboard_json().unwrap().contains("errors_total"));
}
