//! Cost of one `tracing` span (create, enter, exit, close) through
//! watchpost's `TracingLayer`, beside the same span through a layer that does
//! nothing, on the same `tracing_subscriber` registry in the same run. The
//! budget (DESIGN.md): at most 2× the no-op layer. `watchpost_layer` is the
//! default settings (duration, errors, slow log with fields; busy time off);
//! `watchpost_layer_with_busy_time` adds the opt-in busy time.
//!
//! Run: `cargo bench --features tracing --bench tracing_layer`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Dispatch;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use watchpost::integrations::TracingLayer;

/// A layer with every hook left at its no-op default.
struct NoopLayer;

impl<S: tracing::Subscriber> Layer<S> for NoopLayer {}

fn span() {
    let span = tracing::info_span!("handle_message", room = 7_u64);
    span.in_scope(|| black_box(1));
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing_span");
    let noop = Dispatch::new(tracing_subscriber::registry().with(NoopLayer));
    tracing::dispatcher::with_default(&noop, || {
        group.bench_function("noop_layer", |b| b.iter(span));
    });
    let engine =
        watchpost::Engine::builder().without_system_source().build().expect("default engine");
    let layer = TracingLayer::new(&engine);
    let watchpost = Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    tracing::dispatcher::with_default(&watchpost, || {
        group.bench_function("watchpost_layer", |b| b.iter(span));
    });
    let lean = TracingLayer::builder(&engine).capture_fields(false).build().expect("valid");
    let lean = Dispatch::new(tracing_subscriber::registry().with(lean));
    tracing::dispatcher::with_default(&lean, || {
        group.bench_function("watchpost_layer_without_fields", |b| b.iter(span));
    });
    let busy = TracingLayer::builder(&engine).busy_time(true).build().expect("valid");
    let busy = Dispatch::new(tracing_subscriber::registry().with(busy));
    tracing::dispatcher::with_default(&busy, || {
        group.bench_function("watchpost_layer_with_busy_time", |b| b.iter(span));
    });
    group.finish();
    assert!(layer.stats()[0].calls > 0, "the layer saw the spans");
}

criterion_group!(benches, bench);
criterion_main!(benches);
