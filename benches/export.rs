//! Rendering the Prometheus text exposition of 1 000 and 10 000 series,
//! beside `prometheus-client`'s text encoder on the same series (counters
//! with one label) in the same run.
//!
//! Run: `cargo bench --bench export`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use watchpost::Engine;
use watchpost::export::{self, Format};

type Labels = Vec<(String, String)>;

fn watchpost_engine(n: usize) -> Engine {
    let engine = Engine::builder()
        .without_system_source()
        .sample_interval(std::time::Duration::from_hours(24))
        .series_cap(n + 1)
        .build()
        .expect("valid config");
    engine.registry().describe("messages_total", "Chat messages accepted.").expect("valid name");
    for i in 0..n {
        let room = format!("room{i}");
        engine.counter_with("messages_total", &[("room", &room)]).expect("registers").add(i as u64);
    }
    engine
}

fn client_registry(n: usize) -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::default();
    let family = Family::<Labels, Counter>::default();
    registry.register("messages", "Chat messages accepted.", family.clone());
    for i in 0..n {
        family.get_or_create(&vec![("room".to_owned(), format!("room{i}"))]).inc_by(i as u64);
    }
    registry
}

fn exposition(c: &mut Criterion) {
    let mut g = c.benchmark_group("exposition");
    for n in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        let engine = watchpost_engine(n);
        let registry = client_registry(n);
        // same series, same values
        let ours = export::openmetrics_text(engine.registry());
        let mut theirs = String::new();
        encode(&mut theirs, &registry).expect("encodes");
        assert_eq!(ours.lines().filter(|l| l.starts_with("messages_total{")).count(), n);
        assert_eq!(theirs.lines().filter(|l| l.starts_with("messages_total{")).count(), n);

        let mut buf = String::new();
        g.bench_with_input(BenchmarkId::new("watchpost_prometheus_0.0.4", n), &n, |b, _| {
            b.iter(|| {
                buf.clear();
                export::encode(engine.registry(), Format::Prometheus, &mut buf);
                black_box(buf.len())
            });
        });
        g.bench_with_input(BenchmarkId::new("watchpost_openmetrics", n), &n, |b, _| {
            b.iter(|| {
                buf.clear();
                export::encode(engine.registry(), Format::OpenMetrics, &mut buf);
                black_box(buf.len())
            });
        });
        g.bench_with_input(BenchmarkId::new("watchpost_fresh_string", n), &n, |b, _| {
            b.iter(|| black_box(engine.prometheus_text().len()));
        });
        // the floor: only reading the counters, through their handles
        let handles: Vec<watchpost::Counter> = (0..n)
            .map(|i| {
                let room = format!("room{i}");
                engine.counter_with("messages_total", &[("room", &room)]).expect("registered")
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("watchpost_read_counters_only", n), &n, |b, _| {
            b.iter(|| black_box(handles.iter().map(watchpost::Counter::get).sum::<u64>()));
        });
        g.bench_with_input(BenchmarkId::new("prometheus_client", n), &n, |b, _| {
            b.iter(|| {
                buf.clear();
                encode(&mut buf, &registry).expect("encodes");
                black_box(buf.len())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, exposition);
criterion_main!(benches);
