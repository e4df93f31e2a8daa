use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use watchpost::{Error, MetricKind, Registry, Source};

use crate::util::{T0, assert_close, builder, engine};

#[test]
fn defaults_build_and_shut_down() {
    let engine = watchpost::Engine::builder().without_system_source().build().unwrap();
    engine.gauge("g").unwrap().set(1.0);
    engine.flush().unwrap();
    assert_eq!(engine.latest("g").unwrap().value, 1.0);
    engine.shutdown().unwrap();
}

#[test]
fn builder_rejects_zero_settings_naming_the_field() {
    let cases: Vec<(watchpost::EngineBuilder, &str)> = vec![
        (watchpost::Engine::builder().sample_interval(Duration::ZERO), "sample_interval"),
        (watchpost::Engine::builder().history_capacity(0), "history_capacity"),
        (watchpost::Engine::builder().history_max_age(Duration::ZERO), "history_max_age"),
        (watchpost::Engine::builder().series_cap(0), "series_cap"),
        (watchpost::Engine::builder().record_queue_capacity(0), "record_queue_capacity"),
        (watchpost::Engine::builder().summary_window(Duration::ZERO), "summary_window"),
        (
            watchpost::Engine::builder().dashboard_statistics_window(Duration::ZERO),
            "dashboard_statistics_window",
        ),
    ];
    for (b, field) in cases {
        match b.without_system_source().build() {
            Err(Error::InvalidConfig { field: f, reason }) => {
                assert_eq!(f, field);
                assert!(!reason.is_empty());
            }
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
    let err = watchpost::Engine::builder()
        .dashboard_recent_metrics(["fine", "not fine"])
        .without_system_source()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"not fine\""), "{err}");
}

#[test]
fn bad_names_and_labels_are_errors_that_quote_the_text() {
    let (engine, _) = engine();
    for bad in ["", "1abc", "has space", "dash-ed", "é"] {
        let err = engine.counter(bad).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert!(engine.record(bad, &[], 1.0).is_err());
    }
    let err = engine.gauge_with("ok", &[("__reserved", "x")]).unwrap_err();
    assert!(err.to_string().contains("\"__reserved\""), "{err}");
    let err = engine.gauge_with("ok", &[("room", "a"), ("room", "b")]).unwrap_err();
    assert!(matches!(err, Error::DuplicateLabel { .. }), "{err}");
    let err = engine.histogram_with("h", &[], &[2.0, 1.0]).unwrap_err();
    assert!(err.to_string().contains("[2.0, 1.0]"), "{err}");
}

#[test]
fn kinds_are_fixed_per_name() {
    let (engine, _) = engine();
    engine.counter("c_total").unwrap().inc();
    assert!(matches!(
        engine.gauge("c_total"),
        Err(Error::KindMismatch { registered: MetricKind::Counter, .. })
    ));
    assert!(matches!(engine.record("c_total", &[], 1.0), Err(Error::KindMismatch { .. })));
    let _h = engine.histogram_with("h", &[], &[1.0, 2.0]).unwrap();
    assert!(matches!(engine.histogram("h"), Err(Error::BucketMismatch { .. })));
}

#[test]
fn counters_sum_across_threads_and_get_a_rate_series() {
    let (engine, clock) = engine();
    let c = engine.counter_with("messages_total", &[("room", "general")]).unwrap();
    engine.flush().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let c = c.clone();
            s.spawn(move || (0..25_000).for_each(|_| c.inc()));
        }
    });
    clock.advance(Duration::from_secs(10));
    engine.flush().unwrap();
    let labels = [("room", "general")];
    assert_eq!(engine.latest_with("messages_total", &labels).unwrap().value, 100_000.0);
    let rate = engine.latest_with("messages_total:rate", &labels).unwrap();
    assert_close(rate.value, 10_000.0);
    assert_eq!(rate.timestamp_ms, T0 + 10_000);
}

#[test]
fn histograms_get_count_rate_and_quantile_series() {
    let (engine, clock) = engine();
    let h = engine.histogram("message_latency_seconds").unwrap();
    engine.flush().unwrap();
    for _ in 0..90 {
        h.observe(0.003); // bucket (0, 0.005]
    }
    for _ in 0..10 {
        h.observe(0.7); // bucket (0.5, 1]
    }
    clock.advance(Duration::from_secs(2));
    engine.flush().unwrap();
    assert_close(engine.latest("message_latency_seconds:count_rate").unwrap().value, 50.0);
    let p50 = engine.latest("message_latency_seconds:p50").unwrap().value;
    assert!(p50 > 0.0 && p50 <= 0.005, "{p50}");
    let p99 = engine.latest("message_latency_seconds:p99").unwrap().value;
    assert!(p99 > 0.5 && p99 <= 1.0, "{p99}");
    assert_eq!(engine.latest("message_latency_seconds").unwrap().value, 100.0);
    // an interval without observations has no quantile sample
    clock.advance(Duration::from_secs(2));
    engine.flush().unwrap();
    assert_eq!(engine.latest("message_latency_seconds:p50").unwrap().timestamp_ms, T0 + 2_000);
    assert_eq!(engine.latest("message_latency_seconds:count_rate").unwrap().value, 0.0);
}

#[test]
fn summary_quantiles_slide_with_the_window() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).summary_window(Duration::from_secs(40)).build().unwrap();
    let s = engine.summary("size_bytes").unwrap();
    engine.flush().unwrap();
    for v in 1..=1000 {
        s.observe(f64::from(v));
    }
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let p90 = engine.latest("size_bytes:p90").unwrap().value;
    assert!((p90 - 900.0).abs() <= 900.0 * 0.035, "{p90}");
    // four quarter-window rotations retire every slot holding the old values
    for _ in 0..4 {
        clock.advance(Duration::from_secs(10));
        engine.flush().unwrap();
    }
    s.observe(5.0);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let p90 = engine.latest("size_bytes:p90").unwrap().value;
    assert!((p90 - 5.0).abs() < 0.2, "{p90}");
    assert_eq!(s.count(), 1001);
}

#[test]
fn record_is_visible_after_flush_in_time_order() {
    let (engine, clock) = engine();
    for i in 0..10 {
        engine.record("orders", &[("shop", "eu")], f64::from(i)).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    let h = engine.history_with("orders", &[("shop", "eu")], Duration::from_hours(1));
    assert_eq!(h.len(), 10);
    assert!(h.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
    assert_eq!(h[3].value, 3.0);
    assert_eq!(h[3].timestamp_ms, T0 + 3_000);
    assert_eq!(engine.stats().samples_dropped, 0);
    // a recorded series is a gauge whose value follows the records
    assert_eq!(engine.gauge_with("orders", &[("shop", "eu")]).unwrap().get(), 9.0);
}

#[test]
fn history_window_is_relative_to_the_clock() {
    let (engine, clock) = engine();
    for i in 0..100 {
        engine.record("x", &[], f64::from(i)).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    // now = T0 + 100 s; the last 10 s hold the samples at T0+90 s ..= T0+99 s
    let w = engine.history("x", Duration::from_secs(10));
    let got: Vec<f64> = w.iter().map(|s| s.value).collect();
    assert_eq!(got, (90..100).map(f64::from).collect::<Vec<_>>());
    assert!(engine.history("x", Duration::ZERO).is_empty());
    assert!(engine.history("missing", Duration::from_hours(1)).is_empty());
}

#[test]
fn history_is_bounded_by_count_and_age() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).history_capacity(5).build().unwrap();
    let g = engine.gauge("g").unwrap();
    for i in 0..20 {
        g.set(f64::from(i));
        engine.flush().unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let h = engine.history("g", Duration::from_hours(1));
    assert_eq!(h.iter().map(|s| s.value).collect::<Vec<_>>(), [15.0, 16.0, 17.0, 18.0, 19.0]);

    let engine = builder(&clock).history_max_age(Duration::from_secs(3)).build().unwrap();
    let g = engine.gauge("g").unwrap();
    for i in 0..20 {
        g.set(f64::from(i));
        engine.flush().unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let h = engine.history("g", Duration::from_hours(1));
    assert_eq!(h.iter().map(|s| s.value).collect::<Vec<_>>(), [16.0, 17.0, 18.0, 19.0]);
}

#[test]
fn non_finite_values_are_counted_and_dropped() {
    let (engine, _) = engine();
    let g = engine.gauge("g").unwrap();
    let h = engine.histogram("h").unwrap();
    g.set(2.0);
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        g.set(v);
        h.observe(v);
        engine.record("r", &[], v).unwrap();
    }
    engine.flush().unwrap();
    assert_eq!(engine.latest("g").unwrap().value, 2.0);
    assert_eq!(engine.stats().nonfinite_dropped, 9);
    assert!(engine.latest("r").is_none());
    assert_eq!(engine.latest("watchpost_nonfinite_dropped_total").unwrap().value, 9.0);
}

#[test]
fn label_explosion_is_capped_and_counted() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).series_cap(10).build().unwrap();
    for user in 0..10 {
        engine.counter_with("logins_total", &[("user", &user.to_string())]).unwrap().inc();
    }
    for user in 10..15 {
        let err = engine.counter_with("logins_total", &[("user", &user.to_string())]).unwrap_err();
        assert!(matches!(err, Error::CardinalityExceeded { limit: 10, .. }), "{err}");
        assert!(engine.record("logins_total", &[("user", &user.to_string())], 1.0).is_err());
    }
    assert_eq!(engine.stats().series_rejected, 5);
    // existing series still work, other names are unaffected
    engine.counter_with("logins_total", &[("user", "3")]).unwrap().inc();
    engine.counter_with("other_total", &[("user", "99")]).unwrap().inc();
}

/// A source that, when armed, blocks the worker inside `collect` until released.
struct Gate {
    armed: Arc<AtomicBool>,
    entered: Sender<()>,
    release: Receiver<()>,
}

impl Source for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn register(&mut self, _: &Registry) -> watchpost::Result<()> {
        Ok(())
    }
    fn collect(&mut self, _: chrono::DateTime<chrono::Utc>) {
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.entered.send(());
            let _ = self.release.recv();
        }
    }
}

#[test]
fn a_full_record_queue_drops_and_counts_without_blocking() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let armed = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded(1);
    let engine = builder(&clock)
        .record_queue_capacity(2)
        .source(Gate { armed: Arc::clone(&armed), entered: entered_tx, release: release_rx })
        .build()
        .unwrap();
    engine.flush().unwrap(); // the worker has started and is idle
    armed.store(true, Ordering::SeqCst);
    let m = engine.monitor();
    let flusher = std::thread::spawn(move || m.flush());
    entered_rx.recv().unwrap(); // the worker is now stuck in the gate
    for i in 0..5 {
        engine.record("r", &[], f64::from(i)).unwrap(); // returns at once even though nobody drains
        clock.advance(Duration::from_millis(1));
    }
    assert_eq!(engine.stats().samples_dropped, 3);
    assert_eq!(engine.stats().queue_depth, 2);
    release_tx.send(()).unwrap();
    flusher.join().unwrap().unwrap();
    engine.flush().unwrap();
    let kept: Vec<f64> =
        engine.history("r", Duration::from_hours(1)).iter().map(|s| s.value).collect();
    assert_eq!(kept, [0.0, 1.0]);
    assert_eq!(engine.latest("watchpost_samples_dropped_total").unwrap().value, 3.0);
}

struct Panicky;

impl Source for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn register(&mut self, _: &Registry) -> watchpost::Result<()> {
        Ok(())
    }
    fn collect(&mut self, _: chrono::DateTime<chrono::Utc>) {
        panic!("source failure");
    }
}

#[test]
fn a_panicking_source_is_counted_and_the_engine_keeps_working() {
    let clock = watchpost::ManualClock::at_millis(T0);
    let engine = builder(&clock).source(Panicky).build().unwrap();
    engine.gauge("g").unwrap().set(1.0);
    engine.flush().unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.latest("g").unwrap().value, 1.0);
    // the first collection in build() and two flushes
    assert_eq!(engine.counter("watchpost_source_errors_total").unwrap().get(), 3);
}

#[test]
fn shutdown_ingests_everything_queued() {
    let (engine, clock) = engine();
    let monitor = engine.monitor();
    for i in 0..5_000 {
        engine.record("r", &[], f64::from(i)).unwrap();
        clock.advance(Duration::from_millis(1));
    }
    engine.shutdown().unwrap();
    assert_eq!(monitor.stats().samples_dropped, 0);
    let h = monitor.history("r", Duration::from_hours(1));
    assert_eq!(h.len(), 1_000); // default capacity: the newest 1 000 of 5 000
    assert_eq!(h.last().unwrap().value, 4_999.0);
    assert!(monitor.stats().samples_ingested >= 5_000);
    assert!(matches!(monitor.flush(), Err(Error::ShutDown)));
    monitor.record("r", &[], 1.0).unwrap();
    assert_eq!(monitor.stats().samples_dropped, 1);
}

#[test]
fn drop_stops_the_engine() {
    let (engine, _) = engine();
    let monitor = engine.monitor();
    monitor.record("r", &[], 1.0).unwrap();
    drop(engine);
    assert!(matches!(monitor.flush(), Err(Error::ShutDown)));
    assert_eq!(monitor.latest("r").unwrap().value, 1.0);
}

#[test]
fn series_lists_kinds_labels_and_derivations() {
    let (engine, _) = engine();
    let _c = engine.counter_with("messages_total", &[("room", "dev")]).unwrap();
    let _h = engine.histogram("lat").unwrap();
    engine.record("biz", &[], 1.0).unwrap();
    let s = engine.series();
    let find = |n: &str| s.iter().find(|i| i.key.name() == n).unwrap_or_else(|| panic!("{n}"));
    assert_eq!(find("messages_total").kind, MetricKind::Counter);
    assert_eq!(find("messages_total").key.labels().get("room"), Some("dev"));
    assert_eq!(find("messages_total:rate").derivation, Some(watchpost::Derivation::Rate));
    assert_eq!(find("lat").kind, MetricKind::Histogram);
    for q in ["lat:p50", "lat:p90", "lat:p99", "lat:count_rate"] {
        assert_eq!(find(q).derived_from.as_ref().unwrap().name(), "lat");
    }
    assert_eq!(find("biz").kind, MetricKind::Gauge);
    assert!(s.windows(2).all(|w| w[0].key <= w[1].key));
}

#[cfg(feature = "system")]
#[test]
fn system_source_reports_host_and_process_metrics() {
    let engine =
        watchpost::Engine::builder().sample_interval(Duration::from_hours(1)).build().unwrap();
    engine.flush().unwrap();
    for name in ["system_memory_usage", "system_disk_usage", "system_swap_usage"] {
        let v = engine.latest(name).unwrap_or_else(|| panic!("{name} missing")).value;
        assert!((0.0..=100.0).contains(&v), "{name} = {v}");
    }
    assert!(engine.latest("app_memory_usage").unwrap().value > 0.0);
    let names: Vec<String> = engine.series().into_iter().map(|s| s.key.name().to_owned()).collect();
    for name in [
        "system_cpu_usage",
        "system_network_bytes_sent",
        "system_network_bytes_recv",
        "system_network_bytes_recv:rate",
        "system_load_average_1m",
        "app_cpu_usage",
        "app_file_descriptors",
        "app_thread_count",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not registered");
    }
    #[cfg(target_os = "linux")]
    assert!(engine.latest("app_thread_count").unwrap().value >= 2.0); // this thread and the worker
}

#[test]
fn a_recorded_series_becomes_sampled_once_a_gauge_handle_asks_for_it() {
    let (engine, clock) = engine();
    engine.record("temp", &[], 20.0).unwrap();
    engine.flush().unwrap();
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    // fed only by record(): no sample at the second flush
    assert_eq!(engine.history("temp", Duration::from_hours(1)).len(), 1);
    let g = engine.gauge("temp").unwrap();
    assert_eq!(g.get(), 20.0); // the gauge shows the last recorded value
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let h = engine.history("temp", Duration::from_hours(1));
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].timestamp_ms, T0 + 2_000);
}

#[test]
fn flush_sees_every_record_made_before_it_on_any_thread() {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 5_000;
    let (engine, _clock) = engine();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let m = engine.monitor();
            s.spawn(move || {
                let shop = format!("s{t}");
                let rec = m.recorder("orders", &[("shop", &shop)]).unwrap();
                for i in 0..PER_THREAD {
                    // by name and through a handle, interleaved
                    if i % 2 == 0 {
                        m.record("orders", &[("shop", &shop)], f64::from(i)).unwrap();
                    } else {
                        rec.record(f64::from(i));
                    }
                }
                // while the other threads keep recording, this thread's flush
                // must see its own last record (a frozen clock: the newest wins)
                m.flush().unwrap();
                let last = m.latest_with("orders", &[("shop", &shop)]).unwrap();
                assert_eq!(last.value, f64::from(PER_THREAD - 1), "thread {t}");
            });
        }
    });
    engine.flush().unwrap();
    let stats = engine.stats();
    assert_eq!(stats.samples_dropped, 0);
    // (ingested also counts the instruments sampled at each flush)
    assert!(stats.samples_ingested >= u64::from(THREADS * PER_THREAD));
    // under the frozen clock every record after a series' first replaced one
    assert_eq!(stats.samples_coalesced, u64::from(THREADS * (PER_THREAD - 1)));
}

#[test]
fn record_stamps_with_the_system_clock_at_most_a_timer_tick_early() {
    use watchpost::{Clock, SystemClock};
    let engine = watchpost::Engine::builder().without_system_source().build().unwrap();
    let rec = engine.recorder("stamped", &[]).unwrap();
    let mut bounds = Vec::new();
    for i in 0..20 {
        let before = SystemClock.now_ms();
        rec.record(f64::from(i));
        let after = SystemClock.now_ms();
        bounds.push((before, after));
    }
    engine.flush().unwrap();
    let h = engine.history("stamped", Duration::from_hours(1));
    assert!(!h.is_empty());
    for s in &h {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (before, after) = bounds[s.value as usize];
        // never later than a precise reading taken after the call; earlier by
        // at most one kernel timer tick (10 ms at CONFIG_HZ=100), with slack
        // for a thread descheduled between the two readings
        assert!(s.timestamp_ms <= after, "{} stamped {} after {after}", s.value, s.timestamp_ms);
        assert!(
            s.timestamp_ms >= before - 50,
            "{} stamped {} before {before}",
            s.value,
            s.timestamp_ms
        );
    }
}
