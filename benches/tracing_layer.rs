//! Cost of one `tracing` span (create, enter, exit, close) through
//! watchpost's `TracingLayer`, beside the same span through a layer that does
//! nothing, on the same `tracing_subscriber` registry in the same run. The
//! budget (DESIGN.md): at most 2× the no-op layer. `watchpost_layer` is the
//! default settings (duration, errors, slow log with fields; busy time off);
//! `watchpost_layer_with_busy_time` adds the opt-in busy time. On a shared
//! machine the separate criterion figures can see different loads, so the
//! bench also prints the ratio from alternating rounds ("paired rounds").
//!
//! Run: `cargo bench --features tracing --bench tracing_layer`

use std::hint::black_box;
use std::time::Instant;

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
    // (empty when a filter left the layer's benches out)
    assert!(layer.stats().iter().all(|s| s.calls > 0), "the layer saw the spans");
}

/// The ratio to the no-op layer, measured in many short alternating rounds
/// so that both sides see the same load (the machine may be shared): the
/// ratio of the fastest round of each side (the least disturbed), and the
/// median of the per-round ratios.
fn paired_ratio(name: &str, noop: &Dispatch, layer: &Dispatch) {
    const SPANS: u32 = 2_000;
    const ROUNDS: usize = 201;
    let time = |dispatch: &Dispatch| {
        tracing::dispatcher::with_default(dispatch, || {
            let start = Instant::now();
            for _ in 0..SPANS {
                span();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(SPANS)
        })
    };
    let rounds: Vec<(f64, f64)> = (0..ROUNDS).map(|_| (time(noop), time(layer))).collect();
    let fastest = |side: fn(&(f64, f64)) -> f64| rounds.iter().map(side).fold(f64::MAX, f64::min);
    let (base, with) = (fastest(|r| r.0), fastest(|r| r.1));
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.1 / r.0).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "paired rounds: {name} / noop_layer = {:.2}x fastest rounds ({with:.0} ns / {base:.0} ns), \
         {:.2}x median of {ROUNDS} rounds of {SPANS} spans",
        with / base,
        ratios[ROUNDS / 2],
    );
}

fn paired(c: &mut Criterion) {
    // `cargo bench -- --test` runs every bench once: skip the rounds there.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let _ = c;
    let engine =
        watchpost::Engine::builder().without_system_source().build().expect("default engine");
    let noop = Dispatch::new(tracing_subscriber::registry().with(NoopLayer));
    let layer = Dispatch::new(tracing_subscriber::registry().with(TracingLayer::new(&engine)));
    paired_ratio("watchpost_layer", &noop, &layer);
    let busy = TracingLayer::builder(&engine).busy_time(true).build().expect("valid");
    let busy = Dispatch::new(tracing_subscriber::registry().with(busy));
    paired_ratio("watchpost_layer_with_busy_time", &noop, &busy);
}

criterion_group!(benches, bench, paired);
criterion_main!(benches);
