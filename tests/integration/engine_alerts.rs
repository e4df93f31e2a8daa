//! The alert manager inside the engine: evaluation on ingest and on ticks,
//! delivery to handlers, the Monitor API, shutdown. Manual clock and
//! `flush()` only.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use watchpost::alert::{
    AlertRule, AlertState, ChannelNotifier, FnNotifier, JsonLinesNotifier, Matcher, Notification,
    NotificationKind, Severity, TryFnNotifier,
};
use watchpost::{Clock, Error, ManualClock};

use crate::util::{T0, builder};

fn inbox() -> (ChannelNotifier, Receiver<Notification>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ChannelNotifier::new(tx), rx)
}

/// Everything received so far, as (rule, kind).
fn drain(rx: &Receiver<Notification>) -> Vec<(String, NotificationKind)> {
    rx.try_iter().map(|n| (n.rule, n.kind)).collect()
}

fn kinds(v: &[(String, NotificationKind)]) -> Vec<(&str, NotificationKind)> {
    v.iter().map(|(r, k)| (r.as_str(), *k)).collect()
}

/// A `Write` whose bytes the test can read while the engine owns a clone.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn two_rules_on_one_metric_both_fire_and_resolve_with_details() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = crate::util::eager(builder(&clock)).notifier("inbox", tx).build().unwrap();
    let cpu = engine.gauge("system_cpu_usage").unwrap();

    cpu.set(85.0);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("cpu_usage_warning", NotificationKind::Firing)]);

    cpu.set(97.0);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    // the critical fires; the warning keeps firing, muted by inhibition
    assert_eq!(kinds(&drain(&rx)), [("cpu_usage_critical", NotificationKind::Firing)]);
    assert_eq!(engine.active_alerts().len(), 2);

    cpu.set(50.0);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let resolved: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    for n in &resolved {
        assert_eq!(n.kind, NotificationKind::Resolved);
    }
    let warn = resolved.iter().find(|n| n.rule == "cpu_usage_warning").unwrap();
    let r = warn.resolution.unwrap();
    assert_eq!(r.duration_ms, 2_000); // fired at T0+1s, resolved at T0+3s
    assert_eq!((r.peak_value, r.last_value), (Some(97.0), Some(50.0)));
    assert_eq!(warn.started_at.unwrap().timestamp_millis(), T0 + 1_000);
    assert!(engine.active_alerts().is_empty());
}

#[test]
fn ticks_advance_alerts_when_no_sample_arrives() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("heartbeat_missing", "chat_heartbeat")
                .absent_for(Duration::from_secs(30))
                .severity(Severity::Error)
                .build()
                .unwrap(),
        )
        .alert_rule(
            AlertRule::builder("backlog", "queue_depth")
                .above(100.0)
                .pending_for(Duration::from_secs(10))
                .keep_firing_for(Duration::from_secs(20))
                .build()
                .unwrap(),
        )
        .notifier("inbox", tx)
        .build()
        .unwrap();
    // recorded series are not resampled on ticks: only `record()` adds samples
    engine.record("chat_heartbeat", &[], 1.0).unwrap();
    engine.record("queue_depth", &[], 150.0).unwrap();
    engine.flush().unwrap();
    let got = drain(&rx);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(engine.active_alerts()[0].state, AlertState::Pending);

    clock.advance(Duration::from_secs(11));
    engine.flush().unwrap(); // no new sample: the tick alone moves pending to firing
    assert_eq!(kinds(&drain(&rx)), [("backlog", NotificationKind::Firing)]);

    engine.record("queue_depth", &[], 10.0).unwrap();
    engine.flush().unwrap();
    clock.advance(Duration::from_secs(15));
    engine.flush().unwrap();
    assert!(drain(&rx).is_empty(), "keep_firing_for holds it for 20 s");
    clock.advance(Duration::from_secs(6));
    engine.flush().unwrap(); // 21 s without the condition and no new sample
    // cause order: resolves first
    assert_eq!(
        kinds(&drain(&rx)),
        [("backlog", NotificationKind::Resolved), ("heartbeat_missing", NotificationKind::Firing)]
    );
    engine.record("chat_heartbeat", &[], 1.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("heartbeat_missing", NotificationKind::Resolved)]);
}

#[test]
fn rules_added_replaced_and_removed_while_running() {
    let (engine, clock) = crate::util::engine();
    let (tx, rx) = inbox();
    engine.add_notifier("inbox", tx).unwrap();
    let users = engine.gauge("active_users").unwrap();
    users.set(120.0);
    engine
        .add_alert_rule(AlertRule::builder("crowded", "active_users").above(100.0).build().unwrap())
        .unwrap();
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("crowded", NotificationKind::Firing)]);
    let dup = AlertRule::builder("crowded", "active_users").above(1.0).build().unwrap();
    let err = engine.add_alert_rule(dup).unwrap_err();
    assert!(err.to_string().contains("\"crowded\""), "{err}");

    // a stricter rule of the same name keeps the firing alert without re-firing
    let stricter = AlertRule::builder("crowded", "active_users").above(110.0).build().unwrap();
    assert!(engine.replace_alert_rule(stricter).is_some());
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    assert!(drain(&rx).is_empty());
    assert!(engine.active_alerts()[0].state.is_firing());

    // removing it makes the worker evaluate at once: the resolve comes
    // without a tick or flush
    assert!(engine.remove_alert_rule("crowded").is_some());
    let n = rx.recv_timeout(Duration::from_secs(30)).expect("resolve without a flush");
    assert_eq!((n.rule.as_str(), n.kind), ("crowded", NotificationKind::Resolved));
    engine.flush().unwrap();
    assert!(drain(&rx).is_empty());
    assert!(engine.alert_rules().iter().all(|r| r.name() != "crowded"));
}

#[test]
fn builder_rules_replace_defaults_by_name_and_reject_duplicates() {
    let clock = ManualClock::at_millis(T0);
    let stricter = AlertRule::builder("cpu_usage_warning", "system_cpu_usage").above(50.0).build();
    let engine = builder(&clock).alert_rule(stricter.unwrap()).build().unwrap();
    let rules = engine.alert_rules();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0].condition().to_string(), "last over 300s > 50");
    engine.gauge("system_cpu_usage").unwrap().set(60.0);
    engine.flush().unwrap();
    assert_eq!(engine.active_alerts()[0].rule, "cpu_usage_warning");

    let r = || AlertRule::builder("x", "y").above(1.0).build().unwrap();
    let err = builder(&clock).alert_rules([r(), r()]).build().unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { field: "alert_rule", .. }), "{err}");
    assert!(err.to_string().contains("\"x\""), "{err}");
    for (b, field) in [
        (builder(&clock).notification_queue_capacity(0), "notification_queue_capacity"),
        (builder(&clock).notifier_queue_capacity(0), "notifier_queue_capacity"),
        (builder(&clock).alert_history_capacity(0), "alert_history_capacity"),
    ] {
        let err = b.build().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { field: f, .. } if f == field), "{err}");
        assert!(err.to_string().contains("got 0"), "{err}");
    }
    let none = builder(&clock).without_default_alert_rules().build().unwrap();
    none.gauge("system_cpu_usage").unwrap().set(99.0);
    none.flush().unwrap();
    assert!(none.active_alerts().is_empty());
}

#[test]
fn panicking_and_blocking_handlers_stop_neither_evaluation_nor_others() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = crossbeam_channel::unbounded::<()>();
    let blocked_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&blocked_calls);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("hot", "temp").above(30.0).without_flap_detection().build().unwrap(),
        )
        .notification_flush_timeout(Duration::from_millis(200))
        .notifier("panics", FnNotifier(|_: &Notification| panic!("handler bug")))
        .notifier("fails", TryFnNotifier(|_: &Notification| Err("smtp down".into())))
        .notifier(
            "blocks",
            FnNotifier(move |_: &Notification| {
                calls.fetch_add(1, Ordering::SeqCst);
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
            }),
        )
        .notifier("inbox", tx)
        .build()
        .unwrap();
    // declared after the engine, so dropped before it even when an assertion fails
    let release = release_tx;
    let temp = engine.gauge("temp").unwrap();
    // 4 firings and 4 resolves while "blocks" is stuck in its first call
    for i in 0..8 {
        temp.set(if i % 2 == 0 { 40.0 } else { 20.0 });
        clock.advance(Duration::from_mins(10));
        engine.flush().unwrap_or_else(|e| panic!("flush {i}: {e}"));
        if i == 0 {
            // "blocks" is now inside its first call, so its queue holds exactly what follows
            entered_rx.recv().unwrap();
        }
    }
    let got = drain(&rx);
    assert_eq!(got.len(), 8, "the other handler got everything: {got:?}");
    let stats = engine.notification_stats();
    let by = |name: &str| stats.handlers.iter().find(|h| h.name == name).unwrap().clone();
    assert_eq!(stats.submitted, 8);
    assert_eq!((by("panics").failed, by("panics").panicked), (8, 8));
    assert_eq!((by("fails").failed, by("fails").panicked), (8, 0));
    assert_eq!(by("inbox").delivered, 8);
    let blocks = by("blocks");
    // one call in progress; the other 7 wait for it (it is slow, not stuck:
    // its call has not lasted the 30 s stuck timeout), nothing is lost
    assert_eq!(blocked_calls.load(Ordering::SeqCst), 1);
    assert_eq!((blocks.delivered, blocks.dropped, blocks.coalesced), (0, 0, 0), "{blocks:?}");
    let monitor = engine.monitor();
    drop(release); // unblock it: it gets all 8, in order, on shutdown
    engine.shutdown().unwrap();
    let blocks = monitor.notification_stats().handlers[2].clone();
    assert_eq!((blocks.name.as_str(), blocks.delivered, blocks.dropped), ("blocks", 8, 0));
}

#[test]
fn shutdown_evaluates_what_is_queued_and_delivers_everything() {
    let clock = ManualClock::at_millis(T0);
    let log = SharedBuf::default();
    let slow_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&slow_seen);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build().unwrap())
        .alert_rule(AlertRule::builder("cold", "temp").below(0.0).build().unwrap())
        .notifier("audit", JsonLinesNotifier::new(log.clone()))
        .notifier(
            "slow",
            FnNotifier(move |_: &Notification| {
                std::thread::sleep(Duration::from_millis(20)); // a slow webhook
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .build()
        .unwrap();
    let monitor = engine.monitor();
    // recorded but never flushed: the worker's final drain must ingest and evaluate it
    monitor.record("temp", &[("room", "a")], 35.0).unwrap();
    monitor.record("temp", &[("room", "b")], -5.0).unwrap();
    engine.shutdown().unwrap();
    let lines = log.lines();
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| (l["rule"].as_str().unwrap().to_owned(), l["kind"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("cold".to_owned(), "firing".to_owned()), ("hot".to_owned(), "firing".to_owned())]
    );
    assert_eq!(slow_seen.load(Ordering::SeqCst), 2);
    assert_eq!(monitor.notification_stats().handlers.iter().map(|h| h.delivered).sum::<u64>(), 4);
    assert!(monitor.add_notifier("late", FnNotifier(|_: &Notification| {})).is_err());
}

#[test]
fn silences_mute_until_expired_then_the_firing_is_announced() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = crate::util::eager(builder(&clock)).notifier("inbox", tx).build().unwrap();
    let disk = engine.gauge_with("system_disk_usage", &[("mount", "/data")]).unwrap();
    let id = engine
        .silence_for(vec![Matcher::equal("mount", "/data")], Duration::from_hours(1))
        .unwrap();
    assert_eq!(engine.silences().len(), 1);
    disk.set(95.0);
    engine.flush().unwrap();
    assert!(drain(&rx).is_empty());
    let active = engine.active_alerts();
    assert_eq!(active[0].silenced_by, Some(id));
    assert!(active[0].state.is_firing());

    clock.advance(Duration::from_mins(5));
    assert!(engine.expire_silence(id));
    assert!(!engine.expire_silence(id));
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("disk_usage_warning", NotificationKind::Firing)]);
    assert!(engine.silences()[0].is_expired(clock.now_ms()));

    let err = engine.silence_for(vec![], Duration::from_hours(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    let err = engine.silence_for(vec![Matcher::equal("a", "b")], Duration::ZERO).unwrap_err();
    assert!(err.to_string().contains("0s"), "{err}");
}

#[test]
fn acknowledged_alerts_stay_quiet_but_still_resolve() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("hot", "temp")
                .above(30.0)
                .repeat_every(Duration::from_mins(1))
                .build()
                .unwrap(),
        )
        .notifier("inbox", tx)
        .build()
        .unwrap();
    let temp = engine.gauge("temp").unwrap();
    temp.set(40.0);
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("hot", NotificationKind::Firing)]);
    clock.advance(Duration::from_secs(61));
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("hot", NotificationKind::Repeat)]);

    assert!(engine.acknowledge_alert("hot/temp"));
    assert!(!engine.acknowledge_alert("hot/temp"), "already acknowledged");
    assert!(!engine.acknowledge_alert("nope/temp"));
    clock.advance(Duration::from_secs(61));
    engine.flush().unwrap();
    assert!(drain(&rx).is_empty(), "no repeat once acknowledged");
    temp.set(10.0);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("hot", NotificationKind::Resolved)]);
}

#[test]
fn alert_history_is_filtered_by_time() {
    let (engine, clock) = crate::util::engine();
    let mem = engine.gauge("system_memory_usage").unwrap();
    mem.set(90.0);
    engine.flush().unwrap();
    clock.advance(Duration::from_hours(3));
    mem.set(50.0);
    engine.flush().unwrap();
    let all = engine.alert_history(Duration::from_hours(24));
    let states: Vec<AlertState> = all.iter().map(|e| e.state).collect();
    assert_eq!(states, [AlertState::Firing, AlertState::Resolved]);
    let recent = engine.alert_history(Duration::from_hours(1));
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].at_ms, T0 + 3 * 3_600_000);
}

#[test]
fn handlers_added_while_running_get_later_notifications_only() {
    let (engine, _clock) = crate::util::engine();
    let cpu = engine.gauge("system_cpu_usage").unwrap();
    cpu.set(85.0);
    engine.flush().unwrap();
    let (tx, rx) = inbox();
    engine.add_notifier("late", tx).unwrap();
    cpu.set(97.0);
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("cpu_usage_critical", NotificationKind::Firing)]);
    let firing = engine
        .monitor()
        .prometheus_text()
        .lines()
        .find(|l| l.starts_with("watchpost_alerts_firing "))
        .map(str::to_owned);
    let value: f64 = firing.unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, 2.0);
}

/// An engine with `rule` alone and an inbox, after 300 steady `queue_depth`
/// samples one second apart (10, 11, 12, ...: scored, never anomalous).
fn steady_queue(
    rule: watchpost::alert::RuleBuilder,
) -> (watchpost::Engine, ManualClock, Receiver<Notification>) {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(rule.build().unwrap())
        .notifier("inbox", tx)
        .build()
        .unwrap();
    for i in 0..300 {
        engine.record("queue_depth", &[], 10.0 + f64::from(i % 3)).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    (engine, clock, rx)
}

#[test]
fn anomaly_rate_rules_read_the_engines_detector_scores() {
    let (engine, clock, rx) = steady_queue(
        AlertRule::builder("queue_unusual", "queue_depth")
            .anomaly_rate_above(Duration::from_secs(30), 0.0),
    );
    assert!(drain(&rx).is_empty());
    let a = engine.active_alerts();
    assert!(a.is_empty(), "{a:?}");
    // a jump far outside anything seen
    engine.record("queue_depth", &[], 500.0).unwrap();
    engine.flush().unwrap();
    let fired: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].kind, NotificationKind::Firing);
    // one anomalous sample among the 31 of the window
    let share = fired[0].value.unwrap();
    assert!((share - 1.0 / 31.0).abs() < 1e-9, "{share}");
    // it leaves the window 30 s later
    for _ in 0..31 {
        clock.advance(Duration::from_secs(1));
        engine.record("queue_depth", &[], 11.0).unwrap();
        engine.flush().unwrap();
    }
    assert_eq!(kinds(&drain(&rx)), [("queue_unusual", NotificationKind::Resolved)]);
}

#[test]
fn expected_band_rules_are_adaptive_thresholds() {
    // 10, 11, 12, ... learnt as normal; no fixed threshold anywhere
    let (engine, clock, rx) = steady_queue(
        AlertRule::builder("queue_unusual", "queue_depth")
            .outside_expected_band(Duration::from_secs(30)),
    );
    assert!(drain(&rx).is_empty());
    let band = engine.latest("queue_depth").unwrap().expected_band.unwrap();
    assert!(band.0 < 10.0 && band.1 > 12.0, "{band:?}");
    engine.record("queue_depth", &[], 500.0).unwrap();
    engine.flush().unwrap();
    let fired: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].kind, fired[0].value), (NotificationKind::Firing, Some(500.0)));
    clock.advance(Duration::from_secs(1));
    engine.record("queue_depth", &[], 11.0).unwrap();
    engine.flush().unwrap();
    assert_eq!(kinds(&drain(&rx)), [("queue_unusual", NotificationKind::Resolved)]);
}

#[test]
fn forecast_rules_warn_before_the_disk_fills() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = inbox();
    let h = Duration::from_hours(1);
    let full = watchpost::analysis::ForecastCondition::new(
        100.0,
        watchpost::analysis::CrossDirection::Rising,
        8 * h,
        48 * h,
    )
    .unwrap();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("disk_fills_soon", "disk_used_percent")
                .forecast(2 * h, full)
                .message("{{labels.mount}} full in {{value}} h")
                .build()
                .unwrap(),
        )
        .notifier("inbox", tx)
        .build()
        .unwrap();
    // 4 %/h from 40.1 %: full after 14.975 h; the crossing is 8 h away at 6.975 h,
    // so the warning comes with the sample at 7 h (7.975 h left)
    let mut fired_at = None;
    for step in 0..=(10 * 12) {
        let v = 40.1 + 4.0 * f64::from(step) / 12.0;
        engine.record("disk_used_percent", &[("mount", "/data")], v).unwrap();
        engine.flush().unwrap();
        if let Some(n) = rx.try_iter().next() {
            fired_at = Some((step, n));
            break;
        }
        clock.advance(Duration::from_mins(5));
    }
    let (step, n) = fired_at.expect("a warning before the disk fills");
    assert_eq!(step, 7 * 12, "fires once the crossing is 8 h away");
    assert_eq!(n.kind, NotificationKind::Firing);
    assert!((n.value.unwrap() - 7.975).abs() < 1e-6, "{n:?}");
    assert_eq!(n.threshold, Some(8.0));
    assert_eq!(n.message, "/data full in 7.975 h"); // templates keep 4 significant digits
}

#[test]
fn a_hung_handler_cannot_hang_shutdown() {
    let clock = ManualClock::at_millis(T0);
    let (entered_tx, entered_rx) = crossbeam_channel::unbounded::<()>();
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (tx, rx) = inbox();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("hot", "temp").above(30.0).without_flap_detection().build().unwrap(),
        )
        .notification_flush_timeout(Duration::from_millis(50))
        .notifier_shutdown_grace(Duration::from_millis(300))
        .notifier(
            "hangs",
            FnNotifier(move |_: &Notification| {
                let _ = entered_tx.send(());
                let _ = release_rx.recv(); // until the test ends
            }),
        )
        .notifier("inbox", tx)
        .build()
        .unwrap();
    let monitor = engine.monitor();
    let temp = engine.gauge("temp").unwrap();
    for (i, v) in [40.0, 20.0, 40.0].into_iter().enumerate() {
        temp.set(v);
        clock.advance(Duration::from_mins(10));
        engine.flush().unwrap();
        if i == 0 {
            entered_rx.recv().unwrap();
        }
    }
    // "hangs" holds the first notification; two more wait in its queue
    let started = std::time::Instant::now();
    engine.shutdown().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "shutdown waited {:?}", started.elapsed());
    assert_eq!(rx.try_iter().count(), 3, "the other handler got everything");
    let stats = monitor.notification_stats();
    let hangs = stats.handlers.iter().find(|h| h.name == "hangs").unwrap();
    assert_eq!((hangs.delivered, hangs.dropped), (0, 2), "{hangs:?}");
    drop(release_tx);
}

#[test]
fn a_thousand_alerts_at_once_reach_a_healthy_handler_beside_broken_ones() {
    const STUCK: Duration = Duration::from_secs(1);
    let clock = ManualClock::at_millis(T0);
    let (healthy_tx, healthy_rx) = crossbeam_channel::unbounded::<Notification>();
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(
            AlertRule::builder("hot", "temp").above(30.0).without_flap_detection().build().unwrap(),
        )
        .notification_flush_timeout(Duration::from_millis(50))
        .notifier_stuck_timeout(STUCK)
        .notifier(
            "healthy",
            FnNotifier(move |n: &Notification| healthy_tx.send(n.clone()).unwrap()),
        )
        .notifier(
            "panics",
            FnNotifier(|n: &Notification| assert!(!n.alert_id.contains("\"0\""), "handler bug")),
        )
        .notifier(
            "stuck",
            FnNotifier(move |_: &Notification| {
                if entered_tx.try_send(()).is_ok() {
                    let _ = release_rx.recv(); // stuck in its first call
                }
            }),
        )
        .build()
        .unwrap();
    let release = release_tx; // dropped before the engine even when an assertion fails
    let gauges: Vec<_> = (0..1_000)
        .map(|i| engine.registry().gauge("temp", &[("room", &i.to_string())]).unwrap())
        .collect();
    // 1 000 series cross the threshold in one evaluation, then recover, 3 times
    for round in 0..6 {
        for g in &gauges {
            g.set(if round % 2 == 0 { 40.0 } else { 20.0 });
        }
        clock.advance(Duration::from_mins(1));
        engine.flush().unwrap();
        if round == 0 {
            entered_rx.recv().unwrap();
            // its call lasts STUCK (wall time; sleeping guarantees the bound)
            std::thread::sleep(STUCK);
        }
    }
    // every notice reaches the healthy handler (waited for one by one: a
    // flush does not wait again for a handler that missed its deadline)
    let got: Vec<Notification> =
        (0..6_000).map(|_| healthy_rx.recv_timeout(Duration::from_mins(1)).unwrap()).collect();
    let mut open = std::collections::HashMap::new();
    for n in &got {
        let firing = open.entry(n.alert_id.clone()).or_insert(false);
        assert_eq!(
            *firing,
            n.kind == NotificationKind::Resolved,
            "{} broke the alternation",
            n.alert_id
        );
        *firing = !*firing;
    }
    assert_eq!(open.len(), 1_000);
    // the stuck one holds the first; the rest of the first round waited, and
    // was dropped with everything after once a minute had passed in its call
    // (flush hands everything out before it waits, so this is settled)
    let stats = engine.notification_stats();
    let stuck = stats.handlers.iter().find(|h| h.name == "stuck").unwrap();
    assert_eq!((stuck.delivered, stuck.dropped), (0, 5_999), "{stuck:?}");
    // per-handler losses are in /metrics and the dashboard
    let text = watchpost::export::prometheus_text(engine.registry());
    assert!(
        text.contains("watchpost_notifications_dropped_total{handler=\"stuck\"} 5999"),
        "{text}"
    );
    assert!(
        text.contains("watchpost_notifications_dropped_total{handler=\"healthy\"} 0"),
        "{text}"
    );
    let d = engine.dashboard();
    let in_dashboard = d.notifications.handlers.iter().find(|h| h.name == "stuck").unwrap();
    assert_eq!(in_dashboard.dropped, 5_999);
    let monitor = engine.monitor();
    drop(release);
    engine.shutdown().unwrap();
    let stats = monitor.notification_stats();
    let by = |name: &str| stats.handlers.iter().find(|h| h.name == name).unwrap().clone();
    assert_eq!(
        (by("healthy").delivered, by("healthy").dropped, by("healthy").coalesced),
        (6_000, 0, 0)
    );
    // the panicking one panics on one series (6 notices) and is counted;
    // with slow backtraces it may itself count as stuck for a while
    let panics = by("panics");
    assert!(panics.panicked >= 1 && panics.panicked == panics.failed, "{panics:?}");
    assert_eq!(panics.delivered + panics.failed + panics.dropped, 6_000, "{panics:?}");
    assert_eq!((by("stuck").delivered, by("stuck").dropped), (1, 5_999));
    let text = watchpost::export::prometheus_text(monitor.registry());
    assert!(
        text.contains("watchpost_notifications_delivered_total{handler=\"healthy\"} 6000"),
        "{text}"
    );
}

#[test]
fn flush_returns_once_a_handler_has_handled_what_the_evaluation_decided() {
    // A handler slow in every call (it waits for the test), and a flush on
    // another thread: when that flush returns, the handler's `notify` for the
    // firing has returned, whenever the test lets it.
    let clock = ManualClock::at_millis(T0);
    let (entered_tx, entered_rx) = crossbeam_channel::unbounded::<NotificationKind>();
    let (token_tx, token_rx) = crossbeam_channel::unbounded::<()>();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&handled);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build().unwrap())
        .notification_flush_timeout(Duration::from_mins(10))
        .notifier(
            "slow",
            FnNotifier(move |n: &Notification| {
                let _ = entered_tx.send(n.kind);
                let _ = token_rx.recv();
                record.lock().push(n.kind);
            }),
        )
        .build()
        .unwrap();
    engine.record("temp", &[], 35.0).unwrap();
    clock.advance(Duration::from_secs(1));
    let flush = std::thread::spawn({
        let monitor = engine.monitor();
        let handled = Arc::clone(&handled);
        move || {
            monitor.flush().unwrap();
            handled.lock().clone()
        }
    });
    assert_eq!(entered_rx.recv().unwrap(), NotificationKind::Firing);
    assert!(handled.lock().is_empty()); // in its call
    token_tx.send(()).unwrap();
    assert_eq!(flush.join().unwrap(), [NotificationKind::Firing]);
    // the same for the resolve, through the engine's own flush
    engine.record("temp", &[], 20.0).unwrap();
    clock.advance(Duration::from_secs(1));
    token_tx.send(()).unwrap(); // let the resolve's call return when it comes
    engine.flush().unwrap();
    assert_eq!(*handled.lock(), [NotificationKind::Firing, NotificationKind::Resolved]);
    engine.shutdown().unwrap();
}
