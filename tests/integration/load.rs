//! Load: the worker keeps its rhythm under a full-speed producer, and the
//! series caps and name and label limits bound memory and are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use watchpost::alert::{AlertRule, ChannelNotifier, NotificationKind};
use watchpost::{Engine, Error, Registry, Source};

use crate::util::{T0, builder};

/// Counts the ticks: the worker runs every source once per tick.
struct TickCounter(Arc<AtomicU64>);

impl Source for TickCounter {
    fn name(&self) -> &'static str {
        "tick_counter"
    }
    fn register(&mut self, _registry: &Registry) -> watchpost::Result<()> {
        Ok(())
    }
    fn collect(&mut self, _now: DateTime<Utc>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (polling) until `done()` or `limit` has passed; returns whether it happened.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// One producer writes round-robin over 1 000 series as fast as it can. The
/// worker must still tick about once an interval, `flush()` must return, and
/// an alert on a sampled gauge must fire within about one interval of the
/// crossing. Before the drain was bounded, the worker drained "until the
/// queue is empty", which a full-speed producer never allows: no tick, no
/// evaluation, and `flush()` blocked for as long as the producer ran.
///
/// Real time is the subject here, so the bounds are wide enough for a loaded
/// two-core machine: the numbers that matter are tens of intervals apart
/// from the failure they guard against.
#[test]
fn a_full_speed_producer_does_not_starve_ticks_flush_or_alerts() {
    const INTERVAL: Duration = Duration::from_millis(200);
    let ticks = Arc::new(AtomicU64::new(0));
    let (tx, rx) = crossbeam_channel::unbounded();
    let engine = Engine::builder()
        .without_system_source()
        .sample_interval(INTERVAL)
        .source(TickCounter(Arc::clone(&ticks)))
        .without_default_alert_rules()
        .alert_rule(AlertRule::builder("overheat", "temperature").above(100.0).build().unwrap())
        .notifier("test", ChannelNotifier::new(tx))
        .build()
        .unwrap();
    let temperature = engine.gauge("temperature").unwrap();
    temperature.set(20.0);
    let values: Vec<String> = (0..1_000).map(|i| format!("s{i}")).collect();
    for v in &values {
        engine.record("load", &[("series", v)], 0.0).unwrap(); // registered up front
    }
    engine.flush().unwrap();

    let stop = AtomicBool::new(false);
    let produced = AtomicU64::new(0);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let monitor = engine.monitor();
        let (stop, produced, values) = (&stop, &produced, &values);
        s.spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let v = &values[i % values.len()];
                #[allow(clippy::cast_precision_loss)]
                monitor.record("load", &[("series", v)], i as f64).unwrap();
                i += 1;
            }
            produced.store(i as u64, Ordering::Relaxed);
        });
        // The producer has filled the queue once the worker counts drops.
        let overflowing = wait_for(Duration::from_secs(30), || engine.stats().samples_dropped > 0);

        // Ticks keep coming: 10 of them take 2 s at the nominal rate.
        let before = ticks.load(Ordering::Relaxed);
        let started = Instant::now();
        let ticked =
            wait_for(Duration::from_secs(30), || ticks.load(Ordering::Relaxed) >= before + 10);
        let ten_ticks = started.elapsed();

        // flush() is a bounded rendezvous, not "once the producer stops".
        let started = Instant::now();
        engine.flush().unwrap();
        let flush = started.elapsed();

        // The crossing of a sampled gauge fires within about one interval.
        temperature.set(150.0);
        let crossed = Instant::now();
        let firing = rx
            .recv_timeout(Duration::from_secs(30))
            .map(|n| (n.kind, crossed.elapsed()))
            .expect("the alert never fired under load");
        stop.store(true, Ordering::Relaxed);

        eprintln!(
            "under load: 10 ticks in {ten_ticks:?}, flush {flush:?}, alert after {:?}",
            firing.1
        );
        assert!(overflowing, "the producer never filled the queue");
        assert!(ticked, "fewer than 10 ticks in 30 s");
        assert!(ten_ticks < Duration::from_secs(8), "10 ticks took {ten_ticks:?}");
        assert!(flush < Duration::from_secs(5), "flush took {flush:?}");
        assert_eq!(firing.0, NotificationKind::Firing);
        assert!(firing.1 < INTERVAL * 5, "the alert fired {:?} after the crossing", firing.1);
    });
    // Nothing accepted is unaccounted for: overflow is counted.
    engine.flush().unwrap();
    let stats = engine.stats();
    assert!(stats.samples_dropped > 0);
    assert!(stats.samples_dropped < produced.load(Ordering::Relaxed));
}

/// Sets the flag when dropped, so a failed assertion stops the producer
/// instead of leaving the test waiting for it forever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// With a manual clock and no tick at all, flushes still return one after the
/// other while a producer keeps the queue full: each takes what was queued
/// when it started, not "until the queue is empty".
#[test]
fn flushes_return_while_a_producer_keeps_the_queue_full() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).record_queue_capacity(1 << 12).build().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let m = engine.monitor();
        let stop = &stop;
        s.spawn(move || {
            let r = m.recorder("noise", &[]).unwrap();
            while !stop.load(Ordering::Relaxed) {
                r.record(1.0);
            }
        });
        assert!(wait_for(Duration::from_secs(30), || engine.stats().samples_dropped > 0));
        let before = engine.stats().samples_ingested;
        for _ in 0..20 {
            clock.advance(Duration::from_millis(1));
            engine.flush().unwrap();
        }
        assert!(engine.stats().samples_ingested > before);
    });
}

#[test]
fn the_total_series_cap_is_reached_and_counted_everywhere() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).total_series_cap(500).build().unwrap();
    let own = engine.stats().series_count;
    let mut refused = 0u64;
    // 100 names x 100 values: far more than the cap, each name under its own cap
    for name in 0..100 {
        for value in 0..100 {
            let labels = [("user", value.to_string())];
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match engine.record(&format!("m{name}"), &pairs, 1.0) {
                Ok(()) => {}
                Err(Error::TotalSeriesExceeded { limit: 500, .. }) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    engine.flush().unwrap();
    let stats = engine.stats();
    assert_eq!(stats.series_count, 500);
    assert_eq!(refused, 100 * 100 - (500 - own));
    assert_eq!(stats.series_rejected_by_reason.total_series_cap, refused);
    assert_eq!(stats.series_rejected_by_reason.series_cap, 0);
    assert_eq!(stats.series_rejected, refused);
    let text = engine.prometheus_text();
    let line = format!(
        "watchpost_registrations_rejected_total{{reason=\"total_series_cap\"}} {refused}\n"
    );
    assert!(text.contains(&line), "{text}");
    let gauge = text
        .lines()
        .find_map(|l| l.strip_prefix("watchpost_series_rejected "))
        .and_then(|v| v.parse::<f64>().ok());
    #[allow(clippy::cast_precision_loss)]
    let expected = refused as f64;
    assert_eq!(gauge, Some(expected), "{text}");
    let json: serde_json::Value = serde_json::from_str(&engine.dashboard_json().unwrap()).unwrap();
    assert_eq!(json["engine"]["series_rejected_by_reason"]["total_series_cap"], refused);
    // existing series keep working
    engine.record("m0", &[("user", "0")], 2.0).unwrap();
}

#[test]
fn oversized_names_and_label_values_are_refused_and_counted() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let megabyte = "x".repeat(1 << 20);
    let err = engine.record("uploads", &[("body", &megabyte)], 1.0).unwrap_err();
    assert!(matches!(err, Error::LabelValueTooLong { len: 1_048_576, limit: 1_024, .. }), "{err}");
    assert!(err.to_string().len() < 200, "the error quotes the whole value");
    let long_name = format!("m{}", "_".repeat(300));
    let err = engine.counter(&long_name).unwrap_err();
    assert!(matches!(err, Error::NameTooLong { len: 301, limit: 256, .. }), "{err}");
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("l{i}"), "v".into())).collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(matches!(engine.gauge_with("wide", &pairs), Err(Error::TooManyLabels { .. })));
    engine.flush().unwrap();
    let r = engine.stats().series_rejected_by_reason;
    assert_eq!((r.label_value_too_long, r.name_too_long, r.too_many_labels), (1, 1, 1));
    let text = engine.prometheus_text();
    for reason in ["label_value_too_long", "name_too_long", "too_many_labels"] {
        let line = format!("watchpost_registrations_rejected_total{{reason=\"{reason}\"}} 1\n");
        assert!(text.contains(&line), "{reason}: {text}");
    }
    // at the limits is fine
    let at_limit = "v".repeat(1_024);
    engine.record("uploads", &[("body", &at_limit)], 1.0).unwrap();
}
