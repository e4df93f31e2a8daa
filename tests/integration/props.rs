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
