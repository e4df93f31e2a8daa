//! The `metrics` macros with watchpost's recorder beside
//! `metrics-exporter-prometheus`'s recorder, in the same run: a handle kept
//! across calls, and a macro called by name (with a label) on every call.
//!
//! Run: `cargo bench --features metrics --bench metrics_facade`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::Recorder;
use metrics_exporter_prometheus::PrometheusBuilder;
use watchpost::integrations::MetricsRecorder;

/// A recorder and the name its figures go under.
type Named = (&'static str, Box<dyn Recorder>);

fn recorders() -> (watchpost::Engine, Vec<Named>) {
    let engine = watchpost::Engine::builder().without_system_source().build().expect("engine");
    let watchpost: Box<dyn Recorder> = Box::new(MetricsRecorder::new(&engine));
    let prometheus: Box<dyn Recorder> = Box::new(PrometheusBuilder::new().build_recorder());
    (engine, vec![("watchpost", watchpost), ("metrics_exporter_prometheus", prometheus)])
}

fn counter(c: &mut Criterion) {
    let (_engine, recorders) = recorders();
    let mut g = c.benchmark_group("facade_counter_cached");
    for (name, recorder) in &recorders {
        let handle = metrics::with_local_recorder(
            recorder.as_ref(),
            || metrics::counter!("requests_total", "route" => "/chat"),
        );
        g.bench_function(*name, |b| b.iter(|| black_box(&handle).increment(1)));
    }
    g.finish();
    let mut g = c.benchmark_group("facade_counter_by_name");
    for (name, recorder) in &recorders {
        metrics::with_local_recorder(recorder.as_ref(), || {
            g.bench_function(*name, |b| {
                b.iter(|| metrics::counter!("requests_total", "route" => "/chat").increment(1));
            });
        });
    }
    g.finish();
}

fn gauge_and_histogram(c: &mut Criterion) {
    let (_engine, recorders) = recorders();
    let mut g = c.benchmark_group("facade_gauge_by_name");
    for (name, recorder) in &recorders {
        metrics::with_local_recorder(recorder.as_ref(), || {
            g.bench_function(*name, |b| b.iter(|| metrics::gauge!("connections").set(3.0)));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("facade_histogram_cached");
    for (name, recorder) in &recorders {
        let handle = metrics::with_local_recorder(
            recorder.as_ref(),
            || metrics::histogram!("latency_seconds", "route" => "/chat"),
        );
        g.bench_function(*name, |b| b.iter(|| black_box(&handle).record(0.02)));
    }
    g.finish();
    let mut g = c.benchmark_group("facade_histogram_by_name");
    for (name, recorder) in &recorders {
        metrics::with_local_recorder(recorder.as_ref(), || {
            g.bench_function(*name, |b| {
                b.iter(|| metrics::histogram!("latency_seconds", "route" => "/chat").record(0.02));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, counter, gauge_and_histogram);
criterion_main!(benches);
