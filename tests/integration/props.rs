use std::time::Duration;

use proptest::prelude::*;

use crate::util::engine;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        // all regression seeds live in the top-level proptest-regressions/ directory
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/integration-props.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_snapshot_survives_a_json_round_trip(values in prop::collection::vec(prop::num::f64::ANY, 1..50)) {
        let (engine, clock) = engine();
        let g = engine.gauge("g").unwrap();
        for v in &values {
            g.set(*v);
            engine.record("r", &[("k", "v")], *v).unwrap();
            engine.flush().unwrap();
            clock.advance(Duration::from_millis(250));
        }
        let d = engine.dashboard();
        let json = serde_json::to_string(&d).unwrap();
        let back: watchpost::dashboard::Dashboard = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, d);
    }

    #[test]
    fn recorded_history_is_the_finite_inputs_in_order(values in prop::collection::vec(prop::num::f64::ANY, 0..200)) {
        let (engine, clock) = engine();
        for v in &values {
            engine.record("r", &[], *v).unwrap();
            clock.advance(Duration::from_millis(10));
        }
        engine.flush().unwrap();
        let got: Vec<f64> = engine.history("r", Duration::from_hours(1)).iter().map(|s| s.value).collect();
        let want: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(engine.stats().nonfinite_dropped, (values.len() - values.iter().filter(|v| v.is_finite()).count()) as u64);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Through the whole engine (record, flush, worker, dispatcher, handler):
    /// a handler never sees a resolve without a firing before it, firing and
    /// resolve alternate, and the last notice agrees with the alert's state.
    #[test]
    fn engine_notifications_alternate_and_match_the_state(
        steps in prop::collection::vec((0.0f64..100.0, 0u64..120, any::<bool>()), 1..60),
        pending_s in prop_oneof![Just(0u64), 1u64..60],
        keep_s in prop_oneof![Just(0u64), 1u64..60],
    ) {
        use watchpost::alert::{AlertRule, ChannelNotifier, NotificationKind};
        let clock = watchpost::ManualClock::at_millis(crate::util::T0);
        let (tx, rx) = crossbeam_channel::unbounded();
        let engine = crate::util::builder(&clock)
            .without_default_alert_rules()
            .alert_rule(
                AlertRule::builder("hot", "temp")
                    .threshold(
                        watchpost::alert::Aggregate::Last,
                        Duration::from_hours(24),
                        watchpost::alert::CompareOp::Gt,
                        80.0,
                    )
                    .recover_below(70.0)
                    .pending_for(Duration::from_secs(pending_s))
                    .keep_firing_for(Duration::from_secs(keep_s))
                    .without_flap_detection()
                    .build()
                    .unwrap(),
            )
            .notifier("inbox", ChannelNotifier::new(tx))
            .build()
            .unwrap();
        let mut firing = false;
        for (value, gap_s, sample) in steps {
            clock.advance(Duration::from_secs(gap_s));
            if sample {
                engine.record("temp", &[], value).unwrap();
            }
            engine.flush().unwrap();
            for n in rx.try_iter() {
                match n.kind {
                    NotificationKind::Firing => {
                        prop_assert!(!firing, "two firings in a row");
                        firing = true;
                    }
                    NotificationKind::Resolved => {
                        prop_assert!(firing, "a resolve without a firing");
                        firing = false;
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            let state = engine.active_alerts().first().map(|a| a.state);
            prop_assert_eq!(
                firing,
                state.is_some_and(watchpost::alert::AlertState::is_firing),
                "after the notices the alert is {:?}", state
            );
        }
        // whatever happened, a cool reading and enough time resolve what fired
        engine.record("temp", &[], 0.0).unwrap();
        engine.flush().unwrap(); // recovering from here, for keep_firing_for
        clock.advance(Duration::from_secs(keep_s + 1));
        engine.flush().unwrap();
        let last = rx.try_iter().last().map(|n| n.kind);
        if firing {
            prop_assert_eq!(last, Some(NotificationKind::Resolved));
        } else {
            prop_assert_eq!(last, None);
        }
        prop_assert!(engine.active_alerts().is_empty());
    }
}
