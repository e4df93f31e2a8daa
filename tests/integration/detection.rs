//! Anomaly detection inside the engine: scores in history, the dashboard's anomalies, overrides.

use std::time::Duration;

use watchpost::detect::{DetectorSpec, RobustZConfig};

use crate::util::{T0, builder};

/// 300 steady samples a second apart, then `last`.
fn steady_then(engine: &watchpost::Engine, clock: &watchpost::ManualClock, last: f64) {
    let g = engine.gauge("queue_depth").unwrap();
    let c = engine.counter("jobs_total").unwrap();
    for i in 0..300 {
        g.set(10.0 + f64::from(i % 3));
        c.add(5);
        engine.flush().unwrap();
        clock.advance(Duration::from_secs(1));
    }
    g.set(last);
    engine.flush().unwrap();
}

#[test]
fn a_spike_is_scored_in_history_and_listed_with_its_band() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine =
        builder(&clock).dashboard_statistics_window(Duration::from_hours(1)).build().unwrap();
    steady_then(&engine, &clock, 400.0);
    let h = engine.history("queue_depth", Duration::from_hours(1));
    let last = h.last().unwrap();
    assert_eq!(last.value, 400.0);
    assert!(last.anomaly_score.unwrap() >= watchpost::detect::DEFAULT_THRESHOLD, "{last:?}");
    // the steady part scored low
    let high = h[..h.len() - 1].iter().filter(|s| s.anomaly_score.unwrap_or(0.0) >= 0.5).count();
    assert_eq!(high, 0, "false alarms on a steady series");
    let (lower, upper) = last.expected_band.expect("a band after 300 points");
    assert!(lower <= 10.0 && (12.0..400.0).contains(&upper), "{lower} {upper}");
    let d = engine.dashboard();
    let a: Vec<_> = d.anomalies.iter().filter(|a| a.name == "queue_depth").collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].timestamp.timestamp_millis(), T0 + 300_000);
    // history keeps the band as f32
    assert!((a[0].expected_lower.unwrap() - lower).abs() < 1e-4 * lower.abs().max(1.0));
    assert!((a[0].expected_upper.unwrap() - upper).abs() < 1e-4 * upper.abs().max(1.0));
    // cumulative counter totals are not scored; their rates are
    assert!(engine.latest("jobs_total").unwrap().anomaly_score.is_none());
    assert!(engine.latest("jobs_total:rate").unwrap().anomaly_score.is_some());
}

#[test]
fn detection_can_be_turned_off_or_chosen_per_metric() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .without_anomaly_detection()
        .anomaly_detector_for("jobs_total", Some(DetectorSpec::RobustZ(RobustZConfig::default())))
        .build()
        .unwrap();
    steady_then(&engine, &clock, 400.0);
    assert!(engine.latest("queue_depth").unwrap().anomaly_score.is_none());
    assert!(engine.dashboard().anomalies.is_empty());
    assert!(engine.latest("jobs_total").unwrap().anomaly_score.is_some());

    let engine = builder(&clock).anomaly_detector_for("queue_depth", None).build().unwrap();
    steady_then(&engine, &clock, 400.0);
    assert!(engine.latest("queue_depth").unwrap().anomaly_score.is_none());
    assert!(engine.latest("jobs_total:rate").unwrap().anomaly_score.is_some());
}

#[test]
fn a_bad_threshold_or_override_name_is_rejected() {
    for bad in [0.0, -1.0, 1.5, f64::NAN] {
        let err = watchpost::Engine::builder()
            .without_system_source()
            .anomaly_threshold(bad)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("anomaly_threshold"), "{err}");
    }
    let err = watchpost::Engine::builder()
        .without_system_source()
        .anomaly_detector_for("bad name", None)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"bad name\""), "{err}");
}

#[test]
fn anomalies_raise_performance_summary_issues() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine =
        builder(&clock).dashboard_statistics_window(Duration::from_hours(1)).build().unwrap();
    steady_then(&engine, &clock, 500.0);
    let summary = engine.dashboard().performance_summary.summary;
    let issue = summary
        .issues
        .iter()
        .find(|i| i.series == "queue_depth")
        .unwrap_or_else(|| panic!("no anomaly issue in {summary:?}"));
    assert!(
        issue
            .message
            .starts_with("Anomalous behaviour: 1 unusual point in the window, the latest 500"),
        "{}",
        issue.message
    );
    assert_eq!(summary.status, watchpost::analysis::HealthStatus::Warning);
    assert_eq!(engine.performance_summary().summary, summary);

    // outside the statistics window the anomaly no longer counts
    clock.advance(Duration::from_hours(2));
    engine.flush().unwrap();
    let later = engine.performance_summary().summary;
    assert!(later.issues.iter().all(|i| i.series != "queue_depth"), "{later:?}");
}
