//! Settings at their limits, clocks that jump, a worker that survives a
//! panic, and observations recorded within one millisecond: nothing crashes
//! and nothing is lost without a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::Receiver;
use watchpost::alert::{AlertRule, ChannelNotifier, Notification, NotificationKind, Severity};
use watchpost::health::{HealthCheck, Status};
use watchpost::{
    Clock, Engine, EngineBuilder, MAX_HISTORY_CAPACITY, MAX_NOTIFICATION_QUEUE_CAPACITY,
    MAX_RECORD_QUEUE_CAPACITY, ManualClock,
};

use crate::util::{T0, builder};

fn inbox() -> (ChannelNotifier, Receiver<Notification>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ChannelNotifier::new(tx), rx)
}

/// The value of an unlabelled sample line of `name` in the Prometheus text.
fn exposed(engine: &Engine, name: &str) -> f64 {
    let text = engine.prometheus_text();
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not exposed"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

type Setting = fn(EngineBuilder, usize) -> EngineBuilder;

const CAPACITIES: [(&str, usize, Setting); 4] = [
    ("history_capacity", MAX_HISTORY_CAPACITY, |b, v| b.history_capacity(v)),
    ("record_queue_capacity", MAX_RECORD_QUEUE_CAPACITY, |b, v| b.record_queue_capacity(v)),
    ("notification_queue_capacity", MAX_NOTIFICATION_QUEUE_CAPACITY, |b, v| {
        b.notification_queue_capacity(v)
    }),
    ("notifier_queue_capacity", MAX_NOTIFICATION_QUEUE_CAPACITY, |b, v| {
        b.notifier_queue_capacity(v)
    }),
];

#[test]
fn every_capacity_is_rejected_above_its_maximum_naming_setting_and_value() {
    for (field, max, set) in CAPACITIES {
        for bad in [max + 1, 1_000_000_000, 1 << 40, usize::MAX] {
            let err = set(Engine::builder().without_system_source(), bad).build().unwrap_err();
            assert!(
                matches!(err, watchpost::Error::InvalidConfig { field: f, .. } if f == field),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("invalid {field}: must be at most {max}, got {bad}")
            );
        }
    }
}

#[test]
fn every_capacity_works_at_its_maximum() {
    for (field, max, set) in CAPACITIES {
        let clock = ManualClock::at_millis(T0);
        let (tx, rx) = inbox();
        let engine = set(builder(&clock), max)
            .notifier("inbox", tx)
            .alert_rule(AlertRule::builder("high", "load").above(1.0).build().unwrap())
            .build()
            .unwrap_or_else(|e| panic!("{field} = {max}: {e}"));
        engine.record("load", &[], 2.0).unwrap();
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        assert_eq!(engine.latest("load").unwrap().value, 2.0, "{field}");
        let got: Vec<NotificationKind> = rx.try_iter().map(|n| n.kind).collect();
        assert_eq!(got, [NotificationKind::Firing], "{field}");
        engine.shutdown().unwrap();
    }
}

#[test]
fn intervals_below_one_millisecond_are_rejected() {
    let err = Engine::builder()
        .without_system_source()
        .sample_interval(Duration::from_micros(999))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid sample_interval: must be at least 1 ms, got 999µs");
    let err = Engine::builder()
        .without_system_source()
        .alert_repeat_interval(Severity::Warning, Some(Duration::from_micros(10)))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid alert_repeat_interval: must be at least 1 ms, got 10µs for warning"
    );
}

#[test]
fn the_longest_durations_saturate_and_nothing_panics() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = builder(&clock)
        .sample_interval(Duration::MAX)
        .history_max_age(Duration::MAX)
        .summary_window(Duration::MAX)
        .dashboard_statistics_window(Duration::MAX)
        .alert_repeat_interval(Severity::Critical, Some(Duration::MAX))
        .alert_repeat_interval(Severity::Warning, Some(Duration::MAX))
        .notification_flush_timeout(Duration::MAX)
        .notifier_shutdown_grace(Duration::MAX)
        .notifier("inbox", tx)
        .alert_rule(
            AlertRule::builder("high", "load")
                .above(1.0)
                .severity(Severity::Critical)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    engine.register_health_check(HealthCheck::new("db", || Ok(())).timeout(Duration::MAX)).unwrap();
    let summary = engine.summary("size_bytes").unwrap();
    for i in 0..10 {
        engine.record("load", &[], 2.0).unwrap();
        summary.observe(f64::from(i));
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap(); // waits for the handler with the saturated timeout
    }
    assert!(engine.flush_notifications(Duration::MAX));
    let got: Vec<NotificationKind> = rx.try_iter().map(|n| n.kind).collect();
    assert_eq!(got, [NotificationKind::Firing]); // the saturated repeat interval never elapses
    assert_eq!(engine.health().status, Status::Healthy);
    assert_eq!(engine.history("load", Duration::MAX).len(), 10);
    assert!(engine.dashboard_json().is_ok());
    engine.shutdown().unwrap(); // the saturated grace: the handler is joined
}

/// A clock that panics while `armed`, as a broken user clock might.
#[derive(Clone)]
struct FaultyClock {
    inner: ManualClock,
    armed: Arc<AtomicBool>,
}

impl Clock for FaultyClock {
    fn now(&self) -> DateTime<Utc> {
        assert!(!self.armed.load(Ordering::SeqCst), "the clock is broken");
        self.inner.now()
    }
    fn now_ms(&self) -> i64 {
        assert!(!self.armed.load(Ordering::SeqCst), "the clock is broken");
        self.inner.now_ms()
    }
}

#[test]
fn a_panic_on_the_worker_is_caught_counted_and_reported() {
    let manual = ManualClock::at_millis(T0);
    let armed = Arc::new(AtomicBool::new(false));
    let clock = FaultyClock { inner: manual.clone(), armed: Arc::clone(&armed) };
    let engine = Engine::builder()
        .clock(clock)
        .without_system_source()
        .sample_interval(Duration::from_hours(24))
        .build()
        .unwrap();
    let users = engine.gauge("users").unwrap();
    users.set(1.0);
    assert_eq!(engine.health().worker_panics, 0);

    armed.store(true, Ordering::SeqCst);
    manual.advance(Duration::from_secs(1));
    // the tick's sampling and its alert evaluation both read the clock and panic
    engine.flush().unwrap();
    armed.store(false, Ordering::SeqCst);

    let report = engine.health();
    assert_eq!(report.worker_panics, 2);
    assert!(report.last_worker_panic.as_deref().unwrap().contains("the clock is broken"));
    assert_eq!(report.status, Status::Healthy);
    assert_eq!(engine.stats().worker_panics, 2);
    assert_eq!(exposed(&engine, "watchpost_worker_panics_total"), 2.0);

    // the worker kept running
    users.set(5.0);
    manual.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    assert_eq!(engine.latest("users").unwrap().value, 5.0);
    assert_eq!(engine.latest("users").unwrap().timestamp_ms, T0 + 2_000);
    assert_eq!(engine.health().worker_panics, 2);
    engine.shutdown().unwrap();
}

#[test]
fn a_clock_jump_skips_the_rates_of_its_interval_and_is_counted() {
    let start = -5_000_000_000_000_000_000;
    let clock = ManualClock::at_millis(start);
    let engine = builder(&clock).build().unwrap();
    let sent = engine.counter("sent_total").unwrap();
    let rate = || engine.latest("sent_total:rate").map(|s| (s.timestamp_ms, s.value));
    engine.flush().unwrap();
    sent.add(10);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    assert_eq!(rate(), Some((start + 1_000, 10.0)));

    // forwards by 1e19 ms: no interval is that long
    clock.set_millis(5_000_000_000_000_000_000);
    sent.add(10);
    engine.flush().unwrap();
    assert_eq!(rate(), Some((start + 1_000, 10.0)), "no rate for the jump");
    assert_eq!(exposed(&engine, "watchpost_clock_jumps_total"), 1.0);
    sent.add(4);
    clock.advance(Duration::from_secs(2));
    engine.flush().unwrap();
    assert_eq!(rate(), Some((5_000_000_000_000_000_000 + 2_000, 2.0)));

    // backwards: skipped, counted, and the rates resume at the next collection
    clock.set_millis(T0);
    sent.add(100);
    engine.flush().unwrap();
    assert_eq!(exposed(&engine, "watchpost_clock_jumps_total"), 2.0);
    sent.add(5);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let since_jump: Vec<(i64, f64)> = engine
        .history("sent_total:rate", Duration::from_secs(10))
        .iter()
        .map(|s| (s.timestamp_ms, s.value))
        .collect();
    assert_eq!(since_jump, [(T0 + 1_000, 5.0)]);
    assert_eq!(exposed(&engine, "watchpost_clock_jumps_total"), 2.0);
}

#[test]
fn observations_within_one_millisecond_are_coalesced_and_counted() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    for i in 0..10_000 {
        engine.record("orders", &[], f64::from(i)).unwrap();
    }
    engine.flush().unwrap();
    let kept = engine.history("orders", Duration::from_secs(1));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].value, 9_999.0); // the last observation of the millisecond
    assert_eq!(engine.stats().samples_coalesced, 9_999);
    assert_eq!(exposed(&engine, "watchpost_coalesced_samples_total"), 9_999.0);
    assert_eq!(engine.stats().samples_dropped, 0);

    // one observation a millisecond: nothing coalesces
    for i in 0..100 {
        clock.advance(Duration::from_millis(1));
        engine.record("orders", &[], f64::from(i)).unwrap();
    }
    engine.flush().unwrap();
    assert_eq!(engine.history("orders", Duration::from_secs(1)).len(), 101);
    assert_eq!(engine.stats().samples_coalesced, 9_999);
    // sampling an instrument twice at one instant is not an observation lost
    engine.gauge("g").unwrap().set(1.0);
    engine.flush().unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.stats().samples_coalesced, 9_999);
}

#[test]
fn a_counter_past_u64_max_wraps_and_its_rate_stays_exact() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let c = engine.counter("bytes_total").unwrap();
    c.add(u64::MAX - 4);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    c.add(10); // wraps: the total is now 5
    assert_eq!(c.get(), 5);
    clock.advance(Duration::from_secs(2));
    engine.flush().unwrap();
    assert_eq!(engine.latest("bytes_total:rate").unwrap().value, 5.0);
    assert_eq!(engine.latest("bytes_total").unwrap().value, 5.0);
}
