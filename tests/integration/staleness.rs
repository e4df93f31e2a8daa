//! Series removal, the staleness horizon and explicit timestamps
//! (`record_at`): manual clock and `flush()` only.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use crossbeam_channel::Receiver;
use watchpost::alert::{
    AlertRule, ChannelNotifier, NoDataPolicy, Notification, NotificationKind, ResolveReason,
};
use watchpost::{Engine, Error, ManualClock};

use crate::util::{T0, builder};

const MIN: i64 = 60_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// An engine with one rule `hot`: the newest sample of `temp` over the last
/// hour above 5 (a long window, so only staleness or removal ends it).
fn engine_with_hot_rule(
    clock: &ManualClock,
    staleness: Option<Duration>,
) -> (Engine, Receiver<Notification>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut b = builder(clock)
        .without_default_alert_rules()
        .without_anomaly_detection()
        .notifier("inbox", ChannelNotifier::new(tx))
        .alert_rule(
            AlertRule::builder("hot", "temp")
                .threshold(
                    watchpost::alert::Aggregate::Last,
                    Duration::from_hours(1),
                    watchpost::alert::CompareOp::Gt,
                    5.0,
                )
                .without_flap_detection()
                .build()
                .unwrap(),
        )
        .alert_rule(
            AlertRule::builder("temp_missing", "temp")
                .label_eq("room", "lab")
                .absent_for(Duration::from_mins(2))
                .without_flap_detection()
                .build()
                .unwrap(),
        );
    if let Some(h) = staleness {
        b = b.staleness_horizon(h);
    }
    (b.build().unwrap(), rx)
}

fn resolves(rx: &Receiver<Notification>) -> Vec<(String, Option<ResolveReason>)> {
    rx.try_iter()
        .filter(|n| n.kind == NotificationKind::Resolved)
        .map(|n| (n.rule, n.resolution.map(|r| r.reason)))
        .collect()
}

fn firing_rules(engine: &Engine) -> Vec<String> {
    let mut v: Vec<String> = engine
        .active_alerts()
        .into_iter()
        .filter(|a| a.state.is_firing())
        .map(|a| a.rule)
        .collect();
    v.sort();
    v
}

#[test]
fn removing_a_series_resolves_its_alerts_with_the_reason_and_forgets_its_history() {
    let clock = ManualClock::at_millis(T0);
    let (engine, rx) = engine_with_hot_rule(&clock, None);
    engine.record("temp", &[("room", "lab")], 9.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot"]);
    let fired: Vec<NotificationKind> = rx.try_iter().map(|n| n.kind).collect();
    assert_eq!(fired, [NotificationKind::Firing]);

    assert!(engine.remove_series("temp", &[("room", "lab")]).unwrap());
    engine.flush().unwrap();
    assert_eq!(resolves(&rx), [("hot".to_owned(), Some(ResolveReason::SeriesRemoved))]);
    assert!(engine.latest_with("temp", &[("room", "lab")]).is_none());
    assert!(engine.series().iter().all(|s| s.key.name() != "temp"));
    assert!(!engine.prometheus_text().contains("temp{"));
    assert!(!engine.remove_series("temp", &[("room", "lab")]).unwrap());

    // the same name and labels again: a new, empty series, and a new alert
    clock.advance(Duration::from_secs(1));
    engine.record("temp", &[("room", "lab")], 7.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.history_with("temp", &[("room", "lab")], Duration::from_hours(1)).len(), 1);
    assert_eq!(firing_rules(&engine), ["hot"]);
}

#[test]
fn a_removed_series_frees_its_cap_and_its_handles_feed_nothing() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).series_cap(1).build().unwrap();
    let old = engine.counter_with("jobs_total", &[("queue", "a")]).unwrap();
    let recorder = engine.recorder("orders", &[]).unwrap();
    assert!(engine.counter_with("jobs_total", &[("queue", "b")]).is_err());
    assert!(engine.remove_series("jobs_total", &[("queue", "a")]).unwrap());
    // its derived rate series went with it
    assert!(engine.series().iter().all(|s| !s.key.name().starts_with("jobs_total")));
    let new = engine.counter_with("jobs_total", &[("queue", "b")]).unwrap();
    old.add(5);
    new.inc();
    assert!(engine.remove_series("orders", &[]).unwrap());
    recorder.record(3.0); // queued for a removed series: discarded
    engine.flush().unwrap();
    let text = engine.prometheus_text();
    assert!(text.contains("jobs_total{queue=\"b\"} 1\n"), "{text}");
    assert!(!text.contains("queue=\"a\""), "{text}");
    assert!(engine.latest("orders").is_none());
}

#[test]
fn removing_a_derived_series_is_refused_with_its_name() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let _logins = engine.counter("logins_total").unwrap();
    let err = engine.remove_series("logins_total:rate", &[]).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }));
    assert!(err.to_string().contains("logins_total:rate is derived from logins_total"), "{err}");
}

#[test]
fn a_silent_series_resolves_as_stale_after_the_horizon_and_starts_over_when_it_returns() {
    let clock = ManualClock::at_millis(T0);
    let (engine, rx) = engine_with_hot_rule(&clock, Some(Duration::from_mins(5)));
    engine.record("temp", &[("room", "lab")], 9.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot"]);
    let _ = rx.try_iter().count();

    clock.set_millis(T0 + 5 * MIN); // newest sample exactly 5 min old: still fresh
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot", "temp_missing"]);
    assert!(resolves(&rx).is_empty());

    clock.set_millis(T0 + 5 * MIN + 1);
    engine.flush().unwrap();
    // the threshold alert resolves as stale; the absence alert keeps firing
    assert_eq!(resolves(&rx), [("hot".to_owned(), Some(ResolveReason::Stale))]);
    assert_eq!(firing_rules(&engine), ["temp_missing"]);
    clock.set_millis(T0 + 30 * MIN);
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["temp_missing"]);
    assert!(resolves(&rx).is_empty());
    // history is kept: staleness only hides the series from the rules
    assert_eq!(engine.latest_with("temp", &[("room", "lab")]).unwrap().value, 9.0);

    // data returns: fresh again, a new alert
    engine.record("temp", &[("room", "lab")], 8.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot"]);
    let kinds: Vec<(String, NotificationKind)> = rx.try_iter().map(|n| (n.rule, n.kind)).collect();
    assert!(kinds.contains(&("hot".to_owned(), NotificationKind::Firing)), "{kinds:?}");
}

#[test]
fn without_a_horizon_a_silent_series_keeps_its_alert() {
    let clock = ManualClock::at_millis(T0);
    let (engine, rx) = engine_with_hot_rule(&clock, None);
    engine.record("temp", &[("room", "lab")], 9.0).unwrap();
    engine.flush().unwrap();
    clock.set_millis(T0 + 30 * MIN);
    engine.flush().unwrap();
    assert!(firing_rules(&engine).contains(&"hot".to_owned()));
    assert!(resolves(&rx).is_empty());
}

#[test]
fn a_stale_series_leaves_pending_alerts_without_notice() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .staleness_horizon(Duration::from_mins(5))
        .alert_rule(
            AlertRule::builder("hot", "temp")
                .above(5.0)
                .pending_for(Duration::from_mins(10))
                .no_data(NoDataPolicy::KeepLast)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.active_alerts().len(), 1);
    clock.set_millis(T0 + 6 * MIN);
    engine.flush().unwrap();
    assert!(engine.active_alerts().is_empty());
    // back: the pending timer starts over rather than firing at once
    clock.set_millis(T0 + 11 * MIN);
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    let a = engine.active_alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].pending_since_ms, Some(T0 + 11 * MIN));
}

#[test]
fn a_zero_staleness_horizon_is_rejected() {
    let err = watchpost::Engine::builder()
        .without_system_source()
        .staleness_horizon(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid staleness_horizon: must be at least 1 ms, got 0");
}

#[test]
fn record_at_backfills_and_drops_late_samples_without_reordering() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    for m in [1_i32, 2, 4] {
        engine
            .record_at("imported", &[], at(T0 - 10 * MIN + i64::from(m) * MIN), f64::from(m))
            .unwrap();
    }
    engine.flush().unwrap();
    // late: older than the newest (minute 4); and a replacement at minute 4
    engine.record_at("imported", &[], at(T0 - 10 * MIN + 3 * MIN), 3.0).unwrap();
    engine.record_at("imported", &[], at(T0 - 10 * MIN + 4 * MIN), 40.0).unwrap();
    engine.flush().unwrap();
    let got: Vec<(i64, f64)> = engine
        .history("imported", Duration::from_hours(1))
        .iter()
        .map(|s| ((s.timestamp_ms - T0) / MIN, s.value))
        .collect();
    assert_eq!(got, [(-9, 1.0), (-8, 2.0), (-6, 40.0)]);
    assert_eq!(engine.stats().samples_out_of_order, 1);
    assert!(engine.prometheus_text().contains("watchpost_samples_out_of_order_total 1\n"));
    // the gauge shows the newest value, not the late one
    let text = engine.prometheus_text();
    assert!(text.contains("imported 40.0\n"), "{text}");
}

#[test]
fn record_at_refuses_a_timestamp_far_ahead_of_the_clock_naming_the_sample() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let ahead = at(T0) + TimeDelta::minutes(10);
    engine.record_at("orders", &[("shop", "eu")], ahead, 1.0).unwrap(); // at the limit: kept
    let too_far = at(T0) + TimeDelta::minutes(10) + TimeDelta::milliseconds(1);
    let err = engine.record_at("orders", &[("shop", "eu")], too_far, 2.0).unwrap_err();
    assert!(matches!(err, Error::SampleRejected { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("sample of orders{shop=\"eu\"} at 2026-01-01T00:10:00.001+00:00"),
        "{msg}"
    );
    assert!(
        msg.contains(": 600.001 s ahead of the engine clock (2026-01-01T00:00:00+00:00)"),
        "{msg}"
    );
    assert!(msg.ends_with("at most 600 s ahead is accepted"), "{msg}");
    engine.flush().unwrap();
    assert_eq!(engine.latest_with("orders", &[("shop", "eu")]).unwrap().value, 1.0);
}

#[test]
fn record_at_samples_ahead_of_the_clock_reach_the_rules_when_the_clock_does() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(AlertRule::builder("hot", "temp").above(5.0).build().unwrap())
        .build()
        .unwrap();
    engine.record_at("temp", &[], at(T0 + MIN), 9.0).unwrap();
    engine.flush().unwrap();
    assert!(engine.active_alerts().is_empty());
    clock.set_millis(T0 + MIN);
    engine.flush().unwrap();
    assert!(engine.active_alerts()[0].state.is_firing());
}

#[test]
fn keep_firing_for_runs_on_after_a_series_goes_stale_as_in_prometheus() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .staleness_horizon(Duration::from_mins(5))
        .notifier("inbox", ChannelNotifier::new(tx))
        .alert_rule(
            AlertRule::builder("hot", "temp")
                .above(5.0)
                .keep_firing_for(Duration::from_mins(2))
                .without_flap_detection()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    // stale from 5 min + 1 ms: the alert keeps firing for 2 more minutes
    for (at, firing) in [(5 * MIN + 1, true), (7 * MIN, true), (7 * MIN + 1, false)] {
        clock.set_millis(T0 + at);
        engine.flush().unwrap();
        assert_eq!(firing_rules(&engine) == ["hot"], firing, "at {at} ms");
    }
    assert_eq!(resolves(&rx), [("hot".to_owned(), Some(ResolveReason::Stale))]);

    // data back inside keep_firing_for: the same alert goes on firing, no resolve
    clock.set_millis(T0 + 20 * MIN);
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    let _ = rx.try_iter().count();
    clock.set_millis(T0 + 26 * MIN);
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot"]);
    clock.set_millis(T0 + 27 * MIN);
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(firing_rules(&engine), ["hot"]);
    assert!(resolves(&rx).is_empty());
    let firing_since = engine.active_alerts()[0].firing_since_ms;
    assert_eq!(firing_since, Some(T0 + 20 * MIN));
}

#[test]
fn removing_a_rule_resolves_its_alerts_with_the_reason() {
    let clock = ManualClock::at_millis(T0);
    let (engine, rx) = engine_with_hot_rule(&clock, None);
    engine.record("temp", &[], 9.0).unwrap();
    engine.flush().unwrap();
    assert!(engine.remove_alert_rule("hot").is_some());
    engine.flush().unwrap();
    assert_eq!(resolves(&rx), [("hot".to_owned(), Some(ResolveReason::RuleRemoved))]);
}
