//! Worker ingest throughput and dashboard snapshot cost.
//!
//! Run: `cargo bench --bench ingest`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use watchpost::{Clock, Engine};

/// A clock the bench moves by hand, so every collection lands on its own millisecond.
#[derive(Clone, Default)]
struct StepClock(Arc<AtomicI64>);

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }
    fn now_ms(&self) -> i64 {
        1_767_225_600_000 + self.0.load(Ordering::Relaxed)
    }
}

impl StepClock {
    fn step(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

fn engine_with_gauges(n: usize, clock: &StepClock) -> (Engine, Vec<watchpost::Gauge>) {
    engine_with(n, clock, Engine::builder())
}

fn engine_with(
    n: usize,
    clock: &StepClock,
    builder: watchpost::EngineBuilder,
) -> (Engine, Vec<watchpost::Gauge>) {
    let engine = builder
        .without_system_source()
        .clock(clock.clone())
        .sample_interval(std::time::Duration::from_hours(24))
        .series_cap(n + 1)
        .build()
        .unwrap();
    let gauges = (0..n)
        .map(|i| engine.gauge_with("bench_gauge", &[("i", &i.to_string())]).unwrap())
        .collect();
    (engine, gauges)
}

/// One collection (sample every instrument into history, score it, evaluate
/// the rules) per iteration; `no_detection/1000` shows what the detectors cost.
fn collection(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_collection");
    for (label, n, detect) in
        [("100", 100usize, true), ("1000", 1_000, true), ("no_detection/1000", 1_000, false)]
    {
        let clock = StepClock::default();
        let builder =
            if detect { Engine::builder() } else { Engine::builder().without_anomaly_detection() };
        let (engine, gauges) = engine_with(n, &clock, builder);
        let series = engine.stats().series_count;
        g.throughput(Throughput::Elements(series));
        g.bench_with_input(BenchmarkId::from_parameter(label), &n, |b, _| {
            b.iter(|| {
                clock.step(1_000);
                for (i, gauge) in gauges.iter().enumerate() {
                    #[allow(clippy::cast_precision_loss)]
                    gauge.set(i as f64);
                }
                engine.flush().unwrap();
            });
        });
    }
    g.finish();
}

const BATCH: u64 = 10_000;

/// `record()` of a batch of samples, then `flush()` until they are in
/// history; `no_detection` shows what the detectors cost.
fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_records");
    g.throughput(Throughput::Elements(BATCH));
    for (label, detect) in [("10000_samples", true), ("no_detection/10000_samples", false)] {
        let clock = StepClock::default();
        let builder = Engine::builder()
            .without_system_source()
            .clock(clock.clone())
            .sample_interval(std::time::Duration::from_hours(24));
        let builder = if detect { builder } else { builder.without_anomaly_detection() };
        let engine = builder.build().unwrap();
        let recorders: Vec<_> = (0..100)
            .map(|i| engine.recorder("bench_rec", &[("i", &i.to_string())]).unwrap())
            .collect();
        g.bench_function(label, |b| {
            b.iter(|| {
                for k in 0..BATCH {
                    clock.step(1);
                    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                    recorders[(k % 100) as usize].record(k as f64);
                }
                engine.flush().unwrap();
            });
        });
        assert_eq!(engine.stats().samples_dropped, 0, "the queue must not overflow in this bench");
    }
    g.finish();
}

/// An engine with `n` gauges, each holding 300 samples (5 minutes at 1 s),
/// valued `value(t, i)` at second `t` for gauge `i`.
fn engine_with_history(n: usize, value: impl Fn(u32, usize) -> f64) -> Engine {
    let clock = StepClock::default();
    let (engine, gauges) = engine_with_gauges(n, &clock);
    for t in 0..300u32 {
        clock.step(1_000);
        for (i, gauge) in gauges.iter().enumerate() {
            gauge.set(value(t, i));
        }
        engine.flush().unwrap();
    }
    engine
}

/// A pseudo-random value in `[0, 1000)` for second `t` of gauge `i`
/// (splitmix64 of both): windows in no order, the sort's and selection's
/// ordinary case.
fn unordered(t: u32, i: usize) -> f64 {
    let mut z = ((u64::from(t) << 32) | i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    #[allow(clippy::cast_precision_loss)]
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit * 1_000.0
}

/// A dashboard snapshot with `n` series, each holding 300 samples (5 minutes
/// at 1 s): `typed` and `json` on values that rise with time (every window
/// already sorted), `typed_unordered` and `json_unordered` on pseudo-random
/// values.
fn snapshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("dashboard_snapshot");
    for n in [100usize, 1_000] {
        #[allow(clippy::cast_precision_loss)]
        let rising = |t: u32, i: usize| f64::from(t) + i as f64;
        // In-run baseline: copy every series' 300 values out and sum them, the
        // least any snapshot that reads the samples does (the machine is
        // shared: compare against this, not across runs).
        let windows: Vec<Vec<f64>> =
            (0..n).map(|i| (0..300u32).map(|t| rising(t, i)).collect()).collect();
        g.bench_with_input(BenchmarkId::new("baseline_copy_values", n), &n, |b, _| {
            b.iter(|| {
                let mut total = 0.0;
                for w in &windows {
                    let copy = black_box(w.clone());
                    total += copy.iter().sum::<f64>();
                }
                black_box(total)
            });
        });
        let engine = engine_with_history(n, rising);
        g.bench_with_input(BenchmarkId::new("typed", n), &n, |b, _| {
            b.iter(|| black_box(engine.dashboard()));
        });
        g.bench_with_input(BenchmarkId::new("json", n), &n, |b, _| {
            b.iter(|| black_box(engine.dashboard_json().unwrap()));
        });
        drop(engine);
        let engine = engine_with_history(n, unordered);
        g.bench_with_input(BenchmarkId::new("typed_unordered", n), &n, |b, _| {
            b.iter(|| black_box(engine.dashboard()));
        });
        g.bench_with_input(BenchmarkId::new("json_unordered", n), &n, |b, _| {
            b.iter(|| black_box(engine.dashboard_json().unwrap()));
        });
    }
    g.finish();
}

/// One collection with the built-in system source: what it costs per sample interval.
#[cfg(feature = "system")]
fn system_source(c: &mut Criterion) {
    let mut g = c.benchmark_group("system_source");
    let engine =
        Engine::builder().sample_interval(std::time::Duration::from_hours(24)).build().unwrap();
    g.bench_function("collect", |b| b.iter(|| engine.flush().unwrap()));
    g.finish();
}

#[cfg(not(feature = "system"))]
fn system_source(_: &mut Criterion) {}

criterion_group!(benches, collection, records, snapshot, system_source);
criterion_main!(benches);
