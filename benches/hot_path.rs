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

fn record(c: &mut Criterion) {
    let engine = engine();
    let rec = engine.recorder("bench_orders", &[("shop", "eu")]).unwrap();
    let mut g = c.benchmark_group("record");
    g.bench_function("watchpost", |b| {
        b.iter(|| engine.record(black_box("bench_orders"), &[("shop", "eu")], black_box(4.5)));
    });
    g.bench_function("watchpost_recorder", |b| b.iter(|| rec.record(black_box(4.5))));
    g.finish();
    let stats = engine.stats();
    eprintln!(
        "record: {} samples ingested, {} dropped on a full queue",
        stats.samples_ingested, stats.samples_dropped
    );
}

criterion_group!(benches, counter_inc, counter_inc_contended, histogram_observe, record);
criterion_main!(benches);
