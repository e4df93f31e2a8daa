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
    // history keeps the lower edge as an f32 and the width to 2^-8 of itself
    let (a_lower, a_upper) = (a[0].expected_lower.unwrap(), a[0].expected_upper.unwrap());
    assert!((a_lower - lower).abs() < 1e-6 * lower.abs().max(1.0), "{a_lower} {lower}");
    let width = a_upper - a_lower;
    assert!((width - (upper - lower)).abs() <= width * 2f64.powi(-8) + 1e-6, "{a_upper} {upper}");
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
    // an isolated anomalous point is no issue by default
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine =
        builder(&clock).dashboard_statistics_window(Duration::from_hours(1)).build().unwrap();
    steady_then(&engine, &clock, 500.0);
    assert_eq!(engine.dashboard().anomalies.iter().filter(|a| a.name == "queue_depth").count(), 1);
    let summary = engine.dashboard().performance_summary.summary;
    assert!(summary.issues.is_empty(), "{summary:?}");

    // asked to report every anomalous point, the summary lists it
    let clock = watchpost::ManualClock::at_millis(T0);
    let every_point = watchpost::analysis::SummaryConfig {
        anomaly_min_points: 1,
        ..watchpost::analysis::SummaryConfig::default()
    };
    let engine = builder(&clock)
        .dashboard_statistics_window(Duration::from_hours(1))
        .performance_checks(every_point)
        .build()
        .unwrap();
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

/// A deterministic pseudo-random number in `[0, 1)`.
fn noise(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    #[allow(clippy::cast_precision_loss)]
    let u = (*seed >> 11) as f64 / (1u64 << 53) as f64;
    u
}

/// A healthy machine sampled four times a second for ten minutes: CPU busy
/// around 5 % with jitter, disk usage creeping in its third decimal, the load
/// averages wandering slowly, memory flat with rare tiny steps. No series may
/// raise an anomaly issue, and every band stays inside the metric's domain.
#[test]
fn a_quiet_machine_raises_no_anomaly_issue() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let cpu = engine.gauge("system_cpu_usage").unwrap();
    let disk = engine.gauge("system_disk_usage").unwrap();
    let memory = engine.gauge("system_memory_usage").unwrap();
    let load = engine.gauge("system_load_average_15m").unwrap();
    let load1 = engine.gauge("system_load_average_1m").unwrap();
    let mut seed = 0x5eed_u64;
    for i in 0..2_400_u32 {
        let t = f64::from(i) / 4.0;
        cpu.set(5.0 + 4.0 * noise(&mut seed));
        // flat, then one step in the third decimal, twice
        disk.set(
            70.25 + if t >= 200.0 { 0.019 } else { 0.0 } + if t >= 400.0 { 0.004 } else { 0.0 },
        );
        memory.set(if i % 500 == 499 { 41.3 } else { 41.2 });
        // flat for minutes, then a slow move by a hundredth
        load.set(if t < 300.0 { 1.68 } else { 1.68 + 0.01 * ((t - 300.0) / 60.0).min(1.0) });
        load1.set((1.5 + 0.3 * (t / 20.0).sin() + 0.2 * noise(&mut seed)).max(0.0));
        engine.flush().unwrap();
        clock.advance(Duration::from_millis(250));
    }
    let d = engine.dashboard();
    let issues: Vec<_> = d
        .performance_summary
        .summary
        .issues
        .iter()
        .filter(|i| i.message.starts_with("Anomalous"))
        .collect();
    assert!(issues.is_empty(), "{issues:?}\nanomalies: {:?}", d.anomalies);
    // not merely thinned out by the summary: the detectors themselves stay quiet
    let flagged: Vec<(&str, f64)> =
        d.anomalies.iter().map(|a| (a.series.as_str(), a.value)).collect();
    assert!(flagged.is_empty(), "{flagged:?}");
    for name in ["system_cpu_usage", "system_disk_usage", "system_memory_usage"] {
        for s in engine.history(name, Duration::from_hours(1)) {
            if let Some((lo, hi)) = s.expected_band {
                assert!(lo >= 0.0 && hi <= 100.0, "{name}: band {lo}..{hi}");
            }
        }
    }
}

/// A declared domain cuts the band; the default comes from the name.
#[test]
fn bands_stay_inside_the_metric_domain() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .metric_domain("hit_ratio", watchpost::detect::Domain::new(0.0, 1.0).unwrap())
        .build()
        .unwrap();
    let ratio = engine.gauge("hit_ratio").unwrap();
    let cpu = engine.gauge("app_busy_percent").unwrap();
    let free = engine.gauge("free_slots").unwrap();
    for i in 0..400_u32 {
        // wide swings near the edges of the domains
        let high = i % 2 == 0;
        ratio.set(if high { 1.0 } else { 0.6 });
        cpu.set(if high { 99.0 } else { 1.0 });
        free.set(if high { 3.0 } else { -3.0 });
        engine.flush().unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let band = |name: &str| engine.latest(name).unwrap().expected_band.unwrap();
    let (lo, hi) = band("hit_ratio");
    assert!(lo >= 0.0 && hi <= 1.0 && hi > lo, "{lo}..{hi}");
    let (lo, hi) = band("app_busy_percent");
    assert!(lo >= 0.0 && hi <= 100.0 && hi > lo, "{lo}..{hi}");
    // no domain known: the band is the detector's own, below zero here
    let (lo, _) = band("free_slots");
    assert!(lo < -3.0, "{lo}");
}
