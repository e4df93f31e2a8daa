//! Cost of `HttpMetricsLayer` per request: the same axum router called
//! in-process through `tower::ServiceExt::oneshot` (no socket), with and
//! without the layer, in the same run. The difference is the middleware's
//! overhead per request (route lookup in its cache, the in-flight gauge, the
//! counter and two histograms, two clock readings).
//!
//! Run: `cargo bench --features http --bench http_middleware`

use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;
use watchpost::http::HttpMetricsLayer;

fn app() -> Router {
    Router::new()
        .route("/rooms/{id}", get(|| async { "room" }))
        .route("/health", get(|| async { "ok" }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let engine =
        watchpost::Engine::builder().without_system_source().build().expect("default engine");
    let plain = app();
    let measured = app().layer(HttpMetricsLayer::new(engine.monitor()));
    let mut g = c.benchmark_group("http_request");
    for (name, router) in [("without_layer", &plain), ("with_http_metrics_layer", &measured)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::get("/rooms/42").body(Body::empty()).expect("a request");
                let response = rt.block_on(router.clone().oneshot(request)).expect("infallible");
                black_box(response.status())
            });
        });
    }
    g.finish();
    let counted = engine
        .counter_with(
            "http_server_requests_total",
            &[("method", "GET"), ("route", "/rooms/{id}"), ("status_class", "2xx")],
        )
        .expect("the layer's counter")
        .get();
    assert!(counted > 0, "the layer counted the requests");
}

/// The overhead per request from many short alternating rounds, so that both
/// sides see the same load (the machine may be shared): the difference
/// between the fastest round of each side (the least disturbed), and the
/// median of the per-round differences.
fn paired(c: &mut Criterion) {
    const REQUESTS: u32 = 500;
    const ROUNDS: usize = 101;
    // `cargo bench -- --test` runs every bench once: skip the rounds there.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let _ = c;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let engine =
        watchpost::Engine::builder().without_system_source().build().expect("default engine");
    let plain = app();
    let measured = app().layer(HttpMetricsLayer::new(engine.monitor()));
    let time = |router: &Router| {
        let start = Instant::now();
        for _ in 0..REQUESTS {
            let request = Request::get("/rooms/42").body(Body::empty()).expect("a request");
            let response = rt.block_on(router.clone().oneshot(request)).expect("infallible");
            black_box(response.status());
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(REQUESTS)
    };
    let mut rounds: Vec<(f64, f64)> =
        (0..ROUNDS).map(|_| (time(&plain), time(&measured))).collect();
    let base = rounds.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    let with = rounds.iter().map(|r| r.1).fold(f64::MAX, f64::min);
    rounds.sort_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)));
    let (median_base, median_with) = rounds[ROUNDS / 2];
    println!(
        "paired rounds: HttpMetricsLayer adds {:.0} ns per request between the fastest rounds \
         ({base:.0} ns without, {with:.0} ns with), {:.0} ns median of {ROUNDS} rounds of \
         {REQUESTS} requests",
        with - base,
        median_with - median_base,
    );
}

criterion_group!(benches, bench, paired);
criterion_main!(benches);
