//! Fuzz targets: every parser and builder of the public API, fed arbitrary
//! input by proptest. Each asserts that nothing panics and, where there is a
//! printed or serialized form, that it reads back to the same value.
//!
//! The default run is short (128 cases per target); set
//! `WATCHPOST_FUZZ_CASES=100000` for a long one. Failing seeds are kept in
//! `proptest-regressions/integration-fuzz.txt`.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use watchpost::alert::{
    Aggregate, AlertEventView, AlertManager, AlertRule, AlertView, CompareOp, FlapDetection,
    MAX_SILENCES, MatchOp, Matcher, MemoryView, NoDataPolicy, Notification, Severity, Silence,
    Template,
};
use watchpost::analysis::{CrossDirection, ForecastCondition};
use watchpost::dashboard::Dashboard;
use watchpost::health::HealthReport;
use watchpost::{Engine, Labels, ManualClock, SeriesKey, validate_metric_name};

use crate::util::{T0, engine};

/// Cases per target: `WATCHPOST_FUZZ_CASES`, or 128.
fn config() -> ProptestConfig {
    let cases =
        std::env::var("WATCHPOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/integration-fuzz.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Text that is either anything at all or made of the characters the
/// grammars care about, so both the error paths and the valid paths are hit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_:0-9 ]{0,12}(=|!=|=~|!~|!|~|==)?[\"\\\\a-z.*|()\\[\\]{}?+ \n\t:=!~-]{0,16}",
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}",
    ]
}

fn op() -> impl Strategy<Value = MatchOp> {
    prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::Regex),
        Just(MatchOp::NotRegex)
    ]
}

/// Any duration, from zero to `Duration::MAX`, biased to the usual range.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
        Just(Duration::ZERO),
        Just(Duration::MAX),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![prop::num::f64::ANY, -1e3..1e3f64]
}

/// Timestamps anywhere in the `i64` range, biased to near `T0`.
fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), (T0 - 1_000_000)..(T0 + 1_000_000), Just(i64::MIN), Just(i64::MAX)]
}

/// Serializes, reads back and serializes again: both texts must agree.
fn assert_json_round_trip<T: Serialize + DeserializeOwned>(value: &T) -> Result<(), TestCaseError> {
    let first = serde_json::to_string(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = serde_json::from_str(&first)
        .map_err(|e| TestCaseError::fail(format!("{first} does not read back: {e}")))?;
    let second = serde_json::to_string(&back).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(first, second);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matcher_parse(s in text()) {
        if let Ok(m) = s.parse::<Matcher>() {
            let printed = m.to_string();
            let back: Matcher = printed.parse().map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_string(), printed);
        }
    }

    #[test]
    fn matcher_new(name in text(), op in op(), value in text(), probe in text()) {
        if let Ok(m) = Matcher::new(&name, op, &value) {
            let back: Matcher = m.to_string().parse::<Matcher>().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.matches(Some(&probe)), m.matches(Some(&probe)));
            if op == MatchOp::Equal {
                prop_assert!(m.matches(Some(&value)));
            }
        }
    }

    #[test]
    fn silence_creation(
        matchers in prop::collection::vec(("[a-z]{1,4}", op(), 0usize..300), 0..12),
        starts in instant(),
        length in prop_oneof![any::<i64>(), 0i64..(400 * 86_400_000)],
        creator_len in 0usize..200,
        comment_len in 0usize..1_200,
    ) {
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|(name, op, len)| Matcher::new(name, *op, &"a".repeat(*len)).unwrap())
            .collect();
        let ends = starts.saturating_add(length);
        let mut mgr = AlertManager::default();
        match Silence::new(matchers.clone(), starts, ends) {
            Ok(s) => {
                prop_assert!(!matchers.is_empty() && matchers.len() <= Silence::MAX_MATCHERS);
                prop_assert!(matchers.iter().all(|m| m.name().len() + m.value().len() <= Silence::MAX_MATCHER_LEN));
                prop_assert!(ends > starts && ends - starts <= Silence::MAX_DURATION_MS);
                let s = s.created_by("c".repeat(creator_len)).comment("x".repeat(comment_len));
                let added = mgr.add_silence(s);
                let fits = creator_len <= Silence::MAX_CREATED_BY_LEN && comment_len <= Silence::MAX_COMMENT_LEN;
                prop_assert_eq!(added.is_ok(), fits);
                prop_assert_eq!(mgr.silences().len(), usize::from(fits));
            }
            Err(e) => {
                let fits = !matchers.is_empty()
                    && matchers.len() <= Silence::MAX_MATCHERS
                    && matchers.iter().all(|m| m.name().len() + m.value().len() <= Silence::MAX_MATCHER_LEN)
                    && ends > starts
                    && i128::from(ends) - i128::from(starts) <= i128::from(Silence::MAX_DURATION_MS);
                prop_assert!(!fits, "{e}");
                prop_assert!(e.to_string().len() < 300, "{e}");
            }
        }
    }

    #[test]
    fn silence_count_stays_capped(ends in prop::collection::vec(1i64..10_000, MAX_SILENCES..MAX_SILENCES + 50), start in 0i64..10_000) {
        let mut mgr = AlertManager::default();
        for end in &ends {
            let _ = mgr.add_silence(Silence::new(vec![Matcher::equal("a", "b")], 0, *end).unwrap());
        }
        prop_assert_eq!(mgr.silences().len(), MAX_SILENCES);
        let running = mgr.silences().iter().filter(|s| !s.is_expired(start)).count();
        let added = mgr.add_silence(Silence::new(vec![Matcher::equal("a", "b")], start, start + 1).unwrap());
        // refused only when every stored silence still runs
        prop_assert_eq!(added.is_ok(), running < MAX_SILENCES);
        prop_assert!(mgr.silences().len() <= MAX_SILENCES);
    }

    #[test]
    fn names_labels_and_series_keys(
        name in text(),
        pairs in prop::collection::vec((text(), text()), 0..4),
    ) {
        let grammar = regex::Regex::new("^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
        prop_assert_eq!(validate_metric_name(&name).is_ok(), grammar.is_match(&name));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Ok(labels) = Labels::new(&name, &pairs) {
            prop_assert_eq!(labels.len(), pairs.len());
            assert_json_round_trip(&labels)?;
        }
        match SeriesKey::new(&name, &pairs) {
            Ok(key) => {
                let json = serde_json::to_string(&key).unwrap();
                let back: SeriesKey = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &key);
                prop_assert!(key.to_string().starts_with(&name));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn series_key_deserialization_validates(
        name in text(),
        pairs in prop::collection::btree_map(text(), text(), 0..4),
    ) {
        let json = serde_json::json!({ "name": name, "labels": pairs }).to_string();
        let from_json = serde_json::from_str::<SeriesKey>(&json);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let built = SeriesKey::new(&name, &pairs);
        prop_assert_eq!(from_json.is_ok(), built.is_ok(), "{}", json);
        if let (Ok(a), Ok(b)) = (from_json, built) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn rule_builder(
        name in text(),
        metric in text(),
        kind in 0u8..6,
        aggregate in (0u8..8, float()),
        compare in 0u8..6,
        value in float(),
        window in duration(),
        timings in (duration(), duration(), duration()),
        m_of_n in (any::<u32>(), any::<u32>()),
        flap in (float(), float()),
        label in (text(), text()),
        matcher in (text(), text()),
        templates in (text(), text()),
        samples in prop::collection::vec((instant(), float()), 0..4),
        now in instant(),
    ) {
        let aggregate = match aggregate.0 {
            0 => Aggregate::Last,
            1 => Aggregate::Avg,
            2 => Aggregate::Min,
            3 => Aggregate::Max,
            4 => Aggregate::Sum,
            5 => Aggregate::Count,
            6 => Aggregate::Rate,
            _ => Aggregate::Quantile(aggregate.1),
        };
        let compare = [CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le, CompareOp::Eq, CompareOp::Ne][usize::from(compare)];
        let mut b = AlertRule::builder(name, metric.clone());
        b = match kind {
            0 => b.threshold(aggregate, window, compare, value),
            1 => b.above(value).recover_below(flap.0),
            2 => b.absent_for(window),
            3 => b.anomaly_rate_above(window, value),
            4 => b.outside_expected_band(window),
            _ => match ForecastCondition::new(value, CrossDirection::Rising, timings.0, timings.1) {
                Ok(f) => b.forecast(window, f),
                Err(_) => b.below(value),
            },
        };
        b = b
            .pending_for(timings.0)
            .keep_firing_for(timings.1)
            .repeat_every(timings.2)
            .m_of_n(m_of_n.0, m_of_n.1)
            .no_data(NoDataPolicy::Alerting)
            .severity(Severity::Critical)
            .label(label.0, label.1)
            .label_eq(&matcher.0, &matcher.1)
            .title(templates.0)
            .message(templates.1);
        if let Ok(f) = FlapDetection::new(flap.0, flap.1) {
            b = b.flap_detection(f);
        }
        if let Ok(rule) = b.build() {
            let mut mgr = AlertManager::default();
            mgr.add_rule(rule).unwrap();
            if let Ok(key) = SeriesKey::new(&metric, &[]) {
                let mut view = MemoryView::new();
                for (t, v) in samples {
                    view.push(key.clone(), t, v);
                }
                let _ = mgr.evaluate(now, &view);
                let _ = mgr.evaluate(now.saturating_add(60_000), &view);
            }
        }
    }

    #[test]
    fn template_rendering(
        source in prop_oneof![
            text(),
            prop::collection::vec(
                prop_oneof![
                    Just("{{value}}".to_owned()), Just("{{threshold}}".to_owned()),
                    Just("{{rule}}".to_owned()), Just("{{metric}}".to_owned()),
                    Just("{{series}}".to_owned()), Just("{{severity}}".to_owned()),
                    Just("{{state}}".to_owned()), Just("{{labels.room}}".to_owned()),
                    Just("{{".to_owned()), Just("}}".to_owned()), Just("{{ value }}".to_owned()),
                    text(),
                ],
                0..6,
            ).prop_map(|parts| parts.concat()),
        ],
        room in text(),
        value in float(),
    ) {
        let Ok(template) = Template::parse(&source) else { return Ok(()) };
        prop_assert_eq!(template.source(), source.as_str());
        let Ok(key) = SeriesKey::new("fuzz_metric", &[("room", &room)]) else { return Ok(()) };
        // a rule that always fires, so the templates are rendered; a template
        // that parses is accepted by the builder
        let rule = AlertRule::builder("fuzz", "fuzz_metric")
            .above(f64::MIN)
            .title(source.clone())
            .message(source.clone())
            .build()
            .map_err(|e| TestCaseError::fail(format!("{source:?} parses but the rule is refused: {e}")))?;
        let mut mgr = AlertManager::default();
        mgr.add_rule(rule).unwrap();
        let mut view = MemoryView::new();
        view.push(key, T0, if value.is_finite() { value.clamp(-1e300, 1e300) } else { 0.0 });
        let sent = mgr.evaluate(T0, &view);
        prop_assert_eq!(sent.len(), 1);
        if !source.contains("{{") {
            prop_assert_eq!(&sent[0].title, &source);
            prop_assert_eq!(&sent[0].message, &source);
        }
        if source.contains("{{labels.room}}") {
            prop_assert!(sent[0].message.contains(room.as_str()));
        }
        assert_json_round_trip(&sent[0])?;
    }

    #[test]
    fn engine_builder(
        capacities in prop::collection::vec(0usize..=1_000_000, 8),
        durations in prop::collection::vec(prop_oneof![Just(Duration::ZERO), (0u64..=366 * 86_400_000).prop_map(Duration::from_millis)], 6),
        threshold in float(),
    ) {
        let clock = ManualClock::at_millis(T0);
        let built = Engine::builder()
            .clock(clock.clone())
            .without_system_source()
            .sample_interval(durations[0])
            .history_capacity(capacities[0])
            .history_max_age(durations[1])
            .series_cap(capacities[1])
            .record_queue_capacity(capacities[2])
            .summary_window(durations[2])
            .dashboard_recent_points(capacities[3])
            .dashboard_statistics_window(durations[3])
            .anomaly_threshold(threshold)
            .alert_history_capacity(capacities[4])
            .dashboard_recent_alert_events(capacities[5])
            .notification_queue_capacity(capacities[6])
            .notifier_queue_capacity(capacities[7])
            .notification_flush_timeout(durations[4])
            .notifier_shutdown_grace(durations[5])
            .build();
        match built {
            Ok(engine) => {
                let _ = engine.record("fuzz", &[("k", "v")], 1.0);
                let _ = engine.flush();
                let _ = engine.dashboard_json();
                engine.shutdown().map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// Valid JSON for each wire type, taken from a real engine with a firing alert.
fn samples() -> &'static Vec<(&'static str, Value)> {
    static SAMPLES: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let (engine, clock) = engine();
        engine
            .add_alert_rule(AlertRule::builder("hot", "temp").above(80.0).build().unwrap())
            .unwrap();
        for (i, v) in [90.0, 95.0, 10.0, 99.0].into_iter().enumerate() {
            engine.record("temp", &[("room", "a\"b\n")], v).unwrap();
            engine.flush().unwrap();
            clock.advance(Duration::from_secs(15 * (i as u64 + 1)));
        }
        let mut mgr = AlertManager::default();
        mgr.add_rule(AlertRule::builder("hot", "temp").above(80.0).build().unwrap()).unwrap();
        let mut view = MemoryView::new();
        let key = SeriesKey::new("temp", &[("room", "x")]).unwrap();
        view.push(key.clone(), T0, 90.0);
        let fired = mgr.evaluate(T0, &view);
        let dashboard = engine.dashboard();
        assert!(!dashboard.active_alerts.is_empty() && !dashboard.recent_alert_events.is_empty());
        let out = vec![
            ("dashboard", serde_json::to_value(&dashboard).unwrap()),
            ("alert", serde_json::to_value(&dashboard.active_alerts[0]).unwrap()),
            ("event", serde_json::to_value(&dashboard.recent_alert_events[0]).unwrap()),
            ("notification", serde_json::to_value(&fired[0]).unwrap()),
            ("health", serde_json::to_value(engine.health()).unwrap()),
            ("series_key", serde_json::to_value(&key).unwrap()),
        ];
        engine.shutdown().unwrap();
        out
    })
}

/// Replacements for one leaf of a JSON document.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(serde_json::json!(1e300)),
        prop::num::f64::NORMAL.prop_map(Value::from),
        text().prop_map(Value::from),
        Just(serde_json::json!("9999-12-31T23:59:59Z")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ]
}

/// Replaces the `n`-th node (depth first, modulo the count) with `by`.
fn replace_nth(v: &mut Value, n: &mut usize, by: &Value) -> bool {
    if *n == 0 {
        *v = by.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().any(|item| replace_nth(item, n, by)),
        Value::Object(map) => map.values_mut().any(|item| replace_nth(item, n, by)),
        _ => false,
    }
}

fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(nodes).sum(),
        Value::Object(map) => map.values().map(nodes).sum(),
        _ => 0,
    }
}

/// Reads `text` as `T`; whatever is read must survive a round trip.
fn read<T: Serialize + DeserializeOwned>(text: &str) -> Result<(), TestCaseError> {
    if let Ok(v) = serde_json::from_str::<T>(text) {
        assert_json_round_trip(&v)?;
    }
    Ok(())
}

fn read_as(kind: &str, text: &str) -> Result<(), TestCaseError> {
    match kind {
        "dashboard" => read::<Dashboard>(text),
        "alert" => read::<AlertView>(text),
        "event" => read::<AlertEventView>(text),
        "notification" => read::<Notification>(text),
        "health" => read::<HealthReport>(text),
        _ => read::<SeriesKey>(text),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wire_types_from_mutated_json(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), leaf()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let all = samples();
        let (kind, valid) = &all[which.index(all.len())];
        // the unmodified sample reads back
        read_as(kind, &valid.to_string())?;
        let mut doc = valid.clone();
        for (at, by) in &edits {
            let mut n = at.index(nodes(&doc));
            replace_nth(&mut doc, &mut n, by);
        }
        let mut text = doc.to_string();
        if truncate {
            let mut end = cut.index(text.len() + 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        read_as(kind, &text)?;
    }

    #[test]
    fn wire_types_from_arbitrary_text(s in text(), kind in prop::sample::select(vec!["dashboard", "alert", "event", "notification", "health", "series_key"])) {
        read_as(kind, &s)?;
    }
}
