//! The `tracing` layer through real spans and events, timed by a `ManualClock`.

use std::time::Duration;

use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;
use watchpost::alert::AlertState;
use watchpost::integrations::{LogLevel, TracingLayer, TracingLayerBuilder};
use watchpost::{Engine, Error, ManualClock};

use crate::util::{T0, builder};

fn setup() -> (Engine, ManualClock) {
    let clock = ManualClock::at_millis(T0);
    (builder(&clock).build().expect("valid config"), clock)
}

/// Runs `f` with `layer` installed on this thread.
fn traced(layer: &TracingLayer, f: impl FnOnce()) {
    let subscriber = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(subscriber, f);
}

fn build(b: TracingLayerBuilder) -> TracingLayer {
    b.build().expect("valid layer settings")
}

#[test]
fn span_duration_and_busy_time_come_from_the_engine_clock() {
    let (engine, clock) = setup();
    let layer = build(TracingLayer::builder(&engine).busy_time(true));
    traced(&layer, || {
        let span = tracing::info_span!(target: "chat", "handle_message");
        clock.advance(Duration::from_millis(100)); // created, not entered
        span.in_scope(|| clock.advance(Duration::from_millis(300)));
        clock.advance(Duration::from_millis(50));
        span.in_scope(|| clock.advance(Duration::from_millis(20)));
        drop(span);
    });
    let stats = layer.stats();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(
        (s.name.as_str(), s.target.as_str(), s.calls, s.errors),
        ("handle_message", "chat", 1, 0)
    );
    assert_eq!(s.mean, Duration::from_millis(470));
    assert_eq!(s.max, Duration::from_millis(470));
    assert!(s.p50 <= s.max && s.p99 <= s.max);
    engine.flush().unwrap();
    let text = engine.prometheus_text();
    let labels = r#"{span="handle_message",target="chat"}"#;
    assert!(text.contains(&format!("span_duration_seconds_count{labels} 1")), "{text}");
    assert!(text.contains(&format!("span_duration_seconds_sum{labels} 0.47")), "{text}");
    assert!(text.contains(&format!("span_busy_seconds_sum{labels} 0.32")), "{text}");
}

#[test]
fn quantiles_mean_and_max_over_many_spans() {
    let (engine, clock) = setup();
    let layer = TracingLayer::new(&engine);
    traced(&layer, || {
        for ms in 1..=100 {
            tracing::info_span!("query").in_scope(|| clock.advance(Duration::from_millis(ms)));
        }
    });
    let s = &layer.stats()[0];
    assert_eq!(s.calls, 100);
    assert_eq!(s.mean, Duration::from_micros(50_500));
    assert_eq!(s.max, Duration::from_millis(100));
    assert!((Duration::from_millis(25)..=Duration::from_millis(50)).contains(&s.p50), "{s:?}");
    assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&s.p90), "{s:?}");
    assert!(s.p90 <= s.p99 && s.p99 <= s.max, "{s:?}");
}

#[test]
fn errors_are_error_fields_and_error_events_inside_the_span() {
    let (engine, _clock) = setup();
    let layer = TracingLayer::new(&engine);
    traced(&layer, || {
        tracing::info_span!("op", error = true).in_scope(|| {});
        tracing::info_span!("op", error = false).in_scope(|| {});
        tracing::info_span!("op").in_scope(|| tracing::error!("boom"));
        tracing::info_span!("op").in_scope(|| tracing::warn!("only a warning"));
        let recorded = tracing::info_span!("op", error = tracing::field::Empty);
        recorded.record("error", "timeout");
        drop(recorded);
        tracing::info_span!("op").in_scope(|| {});
    });
    let s = &layer.stats()[0];
    assert_eq!((s.calls, s.errors), (6, 3));
}

#[test]
fn slow_operations_keep_fields_start_parents_and_per_name_thresholds() {
    let (engine, clock) = setup();
    let layer = build(
        TracingLayer::builder(&engine)
            .slow_threshold(Duration::from_millis(500))
            .slow_threshold_for("db_query", Duration::from_millis(10))
            .busy_time(true),
    );
    let slow = layer.slow_operations();
    traced(&layer, || {
        tracing::info_span!("request", path = "/send").in_scope(|| {
            clock.advance(Duration::from_millis(5));
            tracing::info_span!("db_query", table = "messages", rows = 3_u64)
                .in_scope(|| clock.advance(Duration::from_millis(40)));
            tracing::info_span!("db_query", table = "rooms")
                .in_scope(|| clock.advance(Duration::from_millis(9))); // under its 10 ms
            tracing::info_span!("render").in_scope(|| clock.advance(Duration::from_millis(200)));
        });
    });
    let ops = slow.list();
    // The request took 254 ms: under the default 500 ms; render too.
    assert_eq!(ops.len(), 1, "{ops:?}");
    let op = &ops[0];
    assert_eq!(op.name, "db_query");
    assert_eq!(op.duration, Duration::from_millis(40));
    assert_eq!(op.busy, Some(Duration::from_millis(40)));
    assert_eq!(op.started.timestamp_millis(), T0 + 5);
    assert_eq!(op.parents, ["request"]);
    assert_eq!(
        op.fields,
        [("table".to_string(), "messages".to_string()), ("rows".to_string(), "3".to_string())]
    );
    assert!(!op.error);
}

#[test]
fn slow_log_is_bounded_has_statistics_and_clears() {
    let (engine, clock) = setup();
    let layer = build(
        TracingLayer::builder(&engine).slow_threshold(Duration::from_millis(100)).slow_capacity(3),
    );
    let slow = layer.slow_operations();
    traced(&layer, || {
        for (name, ms) in [("a", 150), ("b", 400), ("a", 200), ("b", 100), ("a", 50)] {
            tracing::info_span!("x", n = name)
                .in_scope(|| clock.advance(Duration::from_millis(ms)));
            let span =
                if name == "a" { tracing::info_span!("a") } else { tracing::info_span!("b") };
            span.in_scope(|| clock.advance(Duration::from_millis(ms)));
        }
    });
    // Slow: x150 a150 x400 b400 x200 a200 x100 b100 (50 ms is under 100 ms).
    let stats = slow.stats();
    assert_eq!((stats.count, stats.recorded, stats.evicted), (3, 8, 5));
    let names: Vec<_> = slow.list().into_iter().map(|o| (o.name, o.duration.as_millis())).collect();
    assert_eq!(names, [("a".to_string(), 200), ("x".to_string(), 100), ("b".to_string(), 100)]);
    assert_eq!(stats.max, Duration::from_millis(200));
    assert_eq!(stats.mean, Duration::from_millis(400) / 3);
    let by_name: Vec<_> = stats.by_name.iter().map(|n| (n.name.as_str(), n.count, n.max)).collect();
    assert_eq!(
        by_name,
        [
            ("a", 1, Duration::from_millis(200)),
            ("b", 1, Duration::from_millis(100)),
            ("x", 1, Duration::from_millis(100))
        ]
    );
    slow.clear();
    assert!(slow.is_empty());
    assert_eq!(slow.stats(), watchpost::integrations::SlowStats::default());
}

#[test]
fn events_are_counted_by_level_and_target() {
    let (engine, _clock) = setup();
    let layer = TracingLayer::new(&engine);
    traced(&layer, || {
        for _ in 0..3 {
            tracing::warn!(target: "chat::ws", "slow client");
        }
        tracing::error!(target: "chat::ws", "dropped");
        tracing::info!(target: "chat::db", "connected");
        tracing::event!(target: "chat::db", Level::INFO, "again");
    });
    engine.flush().unwrap();
    let count = |level: &str, target: &str| {
        engine
            .latest_with("log_events_total", &[("level", level), ("target", target)])
            .map(|s| s.value)
    };
    assert_eq!(count("warn", "chat::ws"), Some(3.0));
    assert_eq!(count("error", "chat::ws"), Some(1.0));
    assert_eq!(count("info", "chat::db"), Some(2.0));
    assert_eq!(count("error", "chat::db"), None);
}

#[test]
fn recent_events_keep_errors_and_warnings_with_fields_bounded() {
    let (engine, clock) = setup();
    let layer = build(TracingLayer::builder(&engine).recent_events(2));
    traced(&layer, || {
        tracing::warn!(target: "chat", user = 7, "first");
        tracing::info!("not kept");
        tracing::info_span!("send").in_scope(|| {
            clock.advance(Duration::from_secs(1));
            tracing::error!(target: "chat", room = "lobby", "send failed");
        });
        tracing::warn!(target: "chat", "third");
    });
    let events = layer.recent_events();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(
        (e.level, e.target.as_str(), e.message.as_str()),
        (LogLevel::Error, "chat", "send failed")
    );
    assert_eq!(e.fields, [("room".to_string(), "lobby".to_string())]);
    assert_eq!(e.span.as_deref(), Some("send"));
    assert_eq!(e.at.timestamp_millis(), T0 + 1000);
    assert_eq!((events[1].message.as_str(), events[1].span.as_deref()), ("third", None));
}

#[test]
fn error_rate_rule_fires_above_the_rate_and_not_below() {
    let (engine, clock) = setup();
    engine.add_alert_rule(TracingLayer::error_rate_rule(30.0).unwrap()).unwrap();
    let layer = TracingLayer::new(&engine);
    let errors = |n: usize| {
        traced(&layer, || {
            for _ in 0..n {
                tracing::error!(target: "chat", "failed");
            }
        });
        engine.flush().unwrap();
    };
    errors(1);
    clock.advance(Duration::from_secs(30));
    errors(10); // 10 in 30 s = 20 per minute: under 30
    assert!(engine.active_alerts().is_empty(), "{:?}", engine.active_alerts());
    clock.advance(Duration::from_secs(30));
    errors(40); // 50 in the last 60 s
    let active = engine.active_alerts();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].rule, "error_log_rate");
    assert_eq!(active[0].state, AlertState::Firing);
    assert_eq!(active[0].labels.get("target").map(String::as_str), Some("chat"));
}

#[test]
fn bad_settings_are_errors_naming_the_setting() {
    let (engine, _clock) = setup();
    let err = TracingLayer::builder(&engine).slow_capacity(0).build().unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { field: "slow_capacity", .. }), "{err}");
    assert!(err.to_string().contains("got 0"), "{err}");
    let err = TracingLayer::builder(&engine).recent_events(1 << 20).build().unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { field: "recent_events", .. }), "{err}");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let err = TracingLayer::error_rate_rule(bad).unwrap_err();
        assert!(err.to_string().contains("per_minute"), "{err}");
    }
}

#[test]
fn slow_span_fields_keep_their_types_formatting_and_errors_survive_without_capture() {
    let (engine, clock) = setup();
    let layer = build(TracingLayer::builder(&engine).slow_threshold(Duration::ZERO));
    traced(&layer, || {
        let span = tracing::info_span!(
            "typed",
            n = -3_i64,
            ratio = 0.5_f64,
            ok = true,
            who = %"ann",
            dbg = ?"q",
            error = false
        );
        clock.advance(Duration::from_millis(2));
        drop(span);
    });
    let op = &layer.slow_operations().list()[0];
    let fields: Vec<(&str, &str)> =
        op.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("n", "-3"),
            ("ratio", "0.5"),
            ("ok", "true"),
            ("who", "ann"),
            ("dbg", "\"q\""),
            ("error", "false")
        ]
    );
    assert_eq!(op.started.timestamp_millis(), crate::util::T0);
    assert!(!op.error);

    let lean =
        build(TracingLayer::builder(&engine).capture_fields(false).slow_threshold(Duration::ZERO));
    traced(&lean, || drop(tracing::info_span!("lean", error = 1_u64, room = "lobby")));
    // Layers of one engine share its log: the lean layer's span comes last.
    let ops = lean.slow_operations().list();
    let op = ops.last().unwrap();
    assert_eq!(op.name, "lean");
    assert!(op.error && op.fields.is_empty(), "{op:?}");
    assert_eq!(op.busy, None, "busy time is off by default");
}

#[test]
fn busy_time_is_opt_in_and_without_it_no_busy_series_exists() {
    let (engine, clock) = setup();
    let layer = TracingLayer::new(&engine);
    traced(&layer, || {
        tracing::info_span!(target: "chat", "quiet")
            .in_scope(|| clock.advance(Duration::from_millis(30)));
    });
    engine.flush().unwrap();
    let text = engine.prometheus_text();
    assert!(
        text.contains(r#"span_duration_seconds_sum{span="quiet",target="chat"} 0.03"#),
        "{text}"
    );
    assert!(!text.contains("span_busy_seconds"), "{text}");
    assert_eq!(layer.stats()[0].mean, Duration::from_millis(30));
}

#[test]
fn the_default_error_rate_rule_is_added_once_and_can_be_left_out() {
    let (engine, _clock) = setup();
    let rules =
        |e: &Engine| e.alert_rules().iter().filter(|r| r.name() == "error_log_rate").count();
    let _off = build(TracingLayer::builder(&engine).without_error_rate_rule());
    assert_eq!(rules(&engine), 0);
    let _first = TracingLayer::new(&engine);
    let _second = build(TracingLayer::builder(&engine).error_rate_rule(1.0));
    assert_eq!(rules(&engine), 1, "a second layer does not add it again");
    let err = TracingLayer::builder(&engine).error_rate_rule(-1.0).build().unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { field: "per_minute", .. }), "{err}");
}

#[test]
fn the_default_error_rate_rule_fires_at_more_than_ten_errors_a_minute() {
    let (engine, clock) = setup();
    let layer = TracingLayer::new(&engine);
    let errors = |n: usize| {
        traced(&layer, || (0..n).for_each(|_| tracing::error!(target: "chat", "failed")));
        engine.flush().unwrap();
    };
    errors(1);
    clock.advance(Duration::from_mins(1));
    errors(10); // 10 in the last minute: not above 10
    assert!(engine.active_alerts().is_empty(), "{:?}", engine.active_alerts());
    clock.advance(Duration::from_secs(1));
    errors(2); // 12 in the last minute
    let active = engine.active_alerts();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].rule, "error_log_rate");
}

#[test]
fn slow_operations_and_log_events_reach_the_monitor_and_the_dashboard() {
    let (engine, clock) = setup();
    let layer = build(
        TracingLayer::builder(&engine)
            .slow_threshold(Duration::from_millis(100))
            .slow_capacity(2)
            .recent_events(3),
    );
    traced(&layer, || {
        for ms in [150, 50, 300, 250] {
            tracing::info_span!(target: "chat", "send", room = "lobby")
                .in_scope(|| clock.advance(Duration::from_millis(ms)));
        }
        tracing::info_span!("outer").in_scope(|| {
            tracing::warn!(target: "chat", user = 7_u64, "slow client");
        });
        tracing::error!(target: "chat", "dropped");
        tracing::info!("not kept");
    });
    // The monitor holds the same log as the layer.
    let slow = engine.slow_operations();
    assert_eq!(slow.capacity(), 2);
    let kept: Vec<u128> = slow.list().iter().map(|o| o.duration.as_millis()).collect();
    assert_eq!(kept, [300, 250]);
    let events = engine.recent_log_events();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].level, events[0].span.as_deref()), (LogLevel::Warn, Some("outer")));

    engine.flush().unwrap();
    let d = engine.dashboard();
    let section = &d.slow_operations;
    assert_eq!((section.count, section.recorded, section.evicted, section.capacity), (2, 3, 1, 2));
    assert_eq!((section.mean_seconds, section.max_seconds), (0.275, 0.3));
    assert_eq!(section.by_name.len(), 1);
    assert_eq!((section.by_name[0].name.as_str(), section.by_name[0].count), ("send", 2));
    assert_eq!(section.entries.len(), 2);
    let e = &section.entries[1];
    assert_eq!((e.name.as_str(), e.target.as_str(), e.duration_seconds), ("send", "chat", 0.25));
    assert_eq!(e.fields.get("room").map(String::as_str), Some("lobby"));
    assert_eq!(e.busy_seconds, None);
    assert_eq!(e.started.timestamp_millis(), T0 + 500);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["slow_operations"]["entries"][0]["duration_seconds"], 0.3);
    let logged = &json["recent_log_events"];
    assert_eq!(logged.as_array().map(Vec::len), Some(2), "{logged}");
    assert_eq!(logged[0]["level"], "warn");
    assert_eq!(logged[0]["fields"]["user"], "7");
    assert_eq!(
        (logged[1]["level"].as_str(), logged[1]["message"].as_str()),
        (Some("error"), Some("dropped"))
    );

    assert_eq!(engine.clear_slow_operations(), 2);
    assert_eq!(engine.dashboard().slow_operations.count, 0);
    assert!(layer.slow_operations().is_empty(), "one log, cleared through the monitor");
}
