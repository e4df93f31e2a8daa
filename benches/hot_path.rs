//! Hot-path cost of watchpost's handles beside baselines in the same run:
//! a raw `AtomicU64`, the `prometheus` crate and the `metrics` crate (with a
//! recorder on `metrics-util`'s atomic registry installed).
//!
//! Run: `cargo bench --bench hot_path`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// A `metrics` recorder backed by `metrics-util`'s lock-free registry, the
/// storage `metrics-exporter-prometheus` uses.
struct AtomicRecorder(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for AtomicRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        self.0.get_or_create_counter(key, |c| metrics::Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        self.0.get_or_create_gauge(key, |g| metrics::Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        self.0.get_or_create_histogram(key, |h| metrics::Histogram::from_arc(h.clone()))
    }
}

fn metrics_registry() -> Arc<Registry<Key, AtomicStorage>> {
    use std::sync::OnceLock;
    static REG: OnceLock<Arc<Registry<Key, AtomicStorage>>> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = Arc::new(Registry::atomic());
        metrics::set_global_recorder(AtomicRecorder(Arc::clone(&reg))).expect("first recorder");
        reg
    })
    .clone()
}

fn engine() -> watchpost::Engine {
    watchpost::Engine::builder().without_system_source().build().expect("engine")
}

fn counter_inc(c: &mut Criterion) {
    let engine = engine();
    let wp = engine.counter("bench_total").unwrap();
    let raw = AtomicU64::new(0);
    let prom = prometheus::IntCounter::new("bench_total", "bench").unwrap();
    let _ = metrics_registry();
    let met = metrics::counter!("bench_total");
    let mut g = c.benchmark_group("counter_inc");
    g.bench_function("watchpost", |b| b.iter(|| black_box(&wp).inc()));
    g.bench_function("raw_atomic", |b| b.iter(|| black_box(&raw).fetch_add(1, Ordering::Relaxed)));
    g.bench_function("prometheus", |b| b.iter(|| black_box(&prom).inc()));
    g.bench_function("metrics", |b| b.iter(|| black_box(&met).increment(1)));
    g.finish();
}

/// Two threads increment the same counter; the time is wall time per increment per thread.
fn contended<F: Fn() + Sync>(iters: u64, op: F) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    op();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // scope joins both threads before returning
        start
    })
    .elapsed()
}

fn counter_inc_contended(c: &mut Criterion) {
    let engine = engine();
    let wp = engine.counter("bench_contended_total").unwrap();
    let raw = AtomicU64::new(0);
    let prom = prometheus::IntCounter::new("bench_total", "bench").unwrap();
    let _ = metrics_registry();
    let met = metrics::counter!("bench_contended_total");
    let mut g = c.benchmark_group("counter_inc_contended");
    g.bench_function("watchpost", |b| b.iter_custom(|n| contended(n, || black_box(&wp).inc())));
    g.bench_function("raw_atomic", |b| {
        b.iter_custom(|n| {
            contended(n, || {
                black_box(&raw).fetch_add(1, Ordering::Relaxed);
            })
        });
    });
    g.bench_function("prometheus", |b| b.iter_custom(|n| contended(n, || black_box(&prom).inc())));
    g.bench_function("metrics", |b| {
        b.iter_custom(|n| contended(n, || black_box(&met).increment(1)));
    });
    g.finish();
}

fn histogram_observe(c: &mut Criterion) {
    let engine = engine();
    let wp = engine.histogram("bench_seconds").unwrap();
    let prom =
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("bench_seconds", "bench"))
            .unwrap();
    let reg = metrics_registry();
    let met = metrics::histogram!("bench_seconds");
    let values: Vec<f64> = (0..1024u32).map(|i| f64::from(i % 97) * 0.013).collect();
    let mut g = c.benchmark_group("histogram_observe");
    g.bench_function("watchpost", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            wp.observe(black_box(values[i]));
        });
    });
    g.bench_function("prometheus", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            prom.observe(black_box(values[i]));
        });
    });
    g.bench_function("metrics", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for k in 0..n {
                #[allow(clippy::cast_possible_truncation)]
                met.record(black_box(values[(k & 1023) as usize]));
            }
            let elapsed = start.elapsed();
            // the atomic bucket grows until an exporter drains it; drain outside the timing
            reg.visit_histograms(|_, h| h.clear());
            elapsed
        });
    });
    g.finish();
}

/// Records per timed stretch of the caller-side benches: a quarter of the
/// default queue, flushed (outside the timing) before the next stretch, so
/// no sample meets a full queue while the caller's cost is measured.
const STRETCH: u64 = watchpost::DEFAULT_RECORD_QUEUE_CAPACITY as u64 / 4;

/// Times `n` calls of `f` in stretches of [`STRETCH`], flushing between them untimed.
fn without_full_queue(engine: &watchpost::Engine, n: u64, mut f: impl FnMut()) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        let k = left.min(STRETCH);
        let start = Instant::now();
        for _ in 0..k {
            f();
        }
        elapsed += start.elapsed();
        left -= k;
        engine.flush().unwrap();
    }
    elapsed
}

/// The caller's cost of `record()`, by name and labels and through a
/// `Recorder`, with the queue never full; baselines: the `metrics` crate's
/// `gauge!` with a label (a registry lookup per call) and `prometheus`'
/// `GaugeVec::with_label_values`, each followed by a `set`.
fn record(c: &mut Criterion) {
    let engine = engine();
    let rec = engine.recorder("bench_orders", &[("shop", "eu")]).unwrap();
    let _ = metrics_registry();
    let prom = prometheus::GaugeVec::new(prometheus::Opts::new("bench_orders", "bench"), &["shop"])
        .unwrap();
    let mut g = c.benchmark_group("record");
    g.bench_function("watchpost", |b| {
        b.iter_custom(|n| {
            without_full_queue(&engine, n, || {
                engine
                    .record(black_box("bench_orders"), &[("shop", "eu")], black_box(4.5))
                    .unwrap();
            })
        });
    });
    g.bench_function("watchpost_recorder", |b| {
        b.iter_custom(|n| without_full_queue(&engine, n, || rec.record(black_box(4.5))));
    });
    g.bench_function("metrics_gauge_by_name", |b| {
        b.iter(|| metrics::gauge!(black_box("bench_orders"), "shop" => "eu").set(black_box(4.5)));
    });
    g.bench_function("prometheus_with_label_values", |b| {
        b.iter(|| prom.with_label_values(&[black_box("eu")]).set(black_box(4.5)));
    });
    g.finish();
    let stats = engine.stats();
    assert_eq!(stats.samples_dropped, 0, "the caller-side bench must not meet a full queue");
}

/// The sustained rate: `record()` through a `Recorder` as fast as one
/// thread can (one sample a millisecond of its clock), timed until
/// `flush()` has the samples in history, so the
/// figure is what the worker keeps up with (with the default detector, and
/// without detection as the baseline).
fn record_sustained(c: &mut Criterion) {
    /// A clock one millisecond later at every reading, so every sample is
    /// its series' newest (none coalesces) and is scored.
    #[derive(Default)]
    struct TickClock(AtomicU64);
    impl watchpost::Clock for TickClock {
        fn now(&self) -> chrono::DateTime<chrono::Utc> {
            chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
        }
        #[allow(clippy::cast_possible_wrap)]
        fn now_ms(&self) -> i64 {
            1_767_225_600_000 + self.0.fetch_add(1, Ordering::Relaxed) as i64
        }
    }
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("record_sustained");
    g.throughput(criterion::Throughput::Elements(N));
    for (label, detect) in [("default_detector", true), ("no_detection", false)] {
        let builder = watchpost::Engine::builder()
            .without_system_source()
            .clock(TickClock::default())
            .sample_interval(Duration::from_hours(24));
        let builder = if detect { builder } else { builder.without_anomaly_detection() };
        let engine = builder.build().expect("engine");
        let rec = engine.recorder("bench_orders", &[("shop", "eu")]).unwrap();
        g.bench_function(label, |b| {
            b.iter(|| {
                for i in 0..N {
                    #[allow(clippy::cast_precision_loss)]
                    rec.record(black_box(i as f64));
                }
                engine.flush().unwrap();
            });
        });
        assert_eq!(engine.stats().samples_dropped, 0, "{label}: the queue overflowed");
    }
    g.finish();
}

criterion_group!(
    benches,
    counter_inc,
    counter_inc_contended,
    histogram_observe,
    record,
    record_sustained
);
criterion_main!(benches);
