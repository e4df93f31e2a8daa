//! Benchmarks of the pure analysis functions over one history window.

use std::{collections::HashMap, hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use watchpost::analysis::{
    AnalysisConfig, Method, Point, SummaryConfig, TrendConfig, analyze_series, best_lag, correlate,
    counter_rates, performance_summary, theil_sen_slope, trend,
};

/// A seeded, noisy, slowly rising gauge: `n` points one second apart.
fn gauge(n: usize, seed: u64) -> Vec<Point> {
    let mut state = seed;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)] // bench data: small integers and 53-bit fractions
            let (x, u) = (i as f64, (state >> 11) as f64 / (1u64 << 53) as f64);
            let ts = i64::try_from(i).expect("small") * 1000;
            Point::new(ts, 40.0 + 0.01 * x + 4.0 * (u - 0.5))
        })
        .collect()
}

fn window(c: &mut Criterion) {
    let points = gauge(1000, 42);
    let now = points.last().map_or(0, |p| p.ts_ms);
    let cfg = AnalysisConfig {
        threshold: Some(100.0),
        horizon: Duration::from_hours(1),
        ..AnalysisConfig::default()
    };
    let mut g = c.benchmark_group("analysis_1000");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("analyze_series", |b| {
        b.iter(|| analyze_series(black_box(&points), black_box(now), &cfg));
    });
    g.bench_function("trend", |b| b.iter(|| trend(black_box(&points), &cfg.trend)));
    g.bench_function("counter_rates", |b| b.iter(|| counter_rates(black_box(&points))));
    let other = gauge(1000, 7);
    g.bench_function("pearson_aligned", |b| {
        b.iter(|| correlate(black_box(&points), black_box(&other), 500, Method::Pearson));
    });
    g.bench_function("spearman_aligned", |b| {
        b.iter(|| correlate(black_box(&points), black_box(&other), 500, Method::Spearman));
    });
    g.bench_function("best_lag_10", |b| {
        b.iter(|| best_lag(black_box(&points), black_box(&other), 10, 500, Method::Pearson));
    });
    g.finish();
}

fn theil_sen(c: &mut Criterion) {
    let mut g = c.benchmark_group("theil_sen");
    let cfg = TrendConfig::default();
    for n in [100, 256, 257, 1000, 10_000] {
        let points = gauge(n, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &points, |b, p| {
            b.iter(|| theil_sen_slope(black_box(p), &cfg));
        });
    }
    g.finish();
}

fn summary(c: &mut Criterion) {
    let cfg = SummaryConfig::default();
    let mut series: HashMap<String, Vec<Point>> = HashMap::new();
    for (i, name) in [
        "system_cpu_usage",
        "system_memory_usage",
        "system_disk_usage",
        "system_network_bytes_sent",
        "system_network_bytes_recv",
    ]
    .into_iter()
    .enumerate()
    {
        let mut pts = gauge(1000, i as u64);
        if name.contains("network") {
            let mut total = 0.0;
            for p in &mut pts {
                total += p.value;
                p.value = total;
            }
        }
        series.insert(name.to_owned(), pts);
    }
    c.bench_function("performance_summary_5x1000", |b| {
        b.iter(|| performance_summary(black_box(&series), 999_000, &cfg));
    });
}

criterion_group!(benches, window, theil_sen, summary);
criterion_main!(benches);
