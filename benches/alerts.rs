//! Alert evaluation cost per sample with 10, 100 and 1 000 rules.
//!
//! Ten metrics with ten series each (100 series). Each iteration records one
//! new sample per series (100 samples) and evaluates every rule once, as the
//! engine's worker does after an ingest. Rules are spread over the metrics
//! and mix aggregates, windows, hysteresis, `for` and M-of-N; thresholds are
//! spread so that some alerts fire, recover and flap.
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use watchpost::SeriesKey;
use watchpost::alert::{Aggregate, AlertManager, AlertRule, CompareOp, MemoryView, Severity};

const METRICS: usize = 10;
const SERIES_PER_METRIC: usize = 10;
const STEP_MS: i64 = 1_000;

/// xorshift64*: seeded, dependency-free noise.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        #[allow(clippy::cast_precision_loss, reason = "53 random bits")]
        let bits = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64;
        bits / 9_007_199_254_740_992.0 // 2^53
    }
}

fn rules(count: usize, rng: &mut Rng) -> Vec<AlertRule> {
    let aggregates = [Aggregate::Last, Aggregate::Avg, Aggregate::Max, Aggregate::Quantile(0.9)];
    (0..count)
        .map(|i| {
            let limit = 60.0 + 40.0 * rng.next_f64();
            let mut b = AlertRule::builder(format!("rule_{i}"), format!("metric_{}", i % METRICS))
                .threshold(
                    aggregates[i % aggregates.len()],
                    Duration::from_secs(30 + 30 * (i as u64 % 2)),
                    CompareOp::Gt,
                    limit,
                )
                .recover_below(limit - 5.0)
                .severity(if i % 5 == 0 { Severity::Critical } else { Severity::Warning });
            if i % 3 == 0 {
                b = b.pending_for(Duration::from_secs(10));
            }
            if i % 7 == 0 {
                b = b.m_of_n(3, 5);
            }
            b.build().expect("valid rule")
        })
        .collect()
}

fn keys() -> Vec<SeriesKey> {
    let mut out = Vec::new();
    for m in 0..METRICS {
        for s in 0..SERIES_PER_METRIC {
            let host = format!("h{s}");
            out.push(
                SeriesKey::new(&format!("metric_{m}"), &[("host", &host)]).expect("valid key"),
            );
        }
    }
    out
}

fn evaluate(c: &mut Criterion) {
    let mut g = c.benchmark_group("alerts");
    g.throughput(Throughput::Elements((METRICS * SERIES_PER_METRIC) as u64));
    for count in [10usize, 100, 1_000] {
        let mut rng = Rng(42);
        let mut mgr = AlertManager::new(rules(count, &mut rng)).expect("distinct names");
        let keys = keys();
        let mut view = MemoryView::new();
        let mut t = 0;
        let mut level = vec![70.0; keys.len()];
        let mut record = |view: &mut MemoryView, t: i64, rng: &mut Rng| {
            for (k, v) in keys.iter().zip(level.iter_mut()) {
                *v = (*v + (rng.next_f64() - 0.5) * 10.0).clamp(0.0, 100.0);
                view.push(k.clone(), t, *v);
            }
        };
        // Warm up: a minute of history, so every window is full.
        for _ in 0..60 {
            t += STEP_MS;
            record(&mut view, t, &mut rng);
            mgr.evaluate(t, &view);
        }
        g.bench_function(BenchmarkId::new("evaluate_per_100_samples", count), |b| {
            b.iter(|| {
                t += STEP_MS;
                record(&mut view, t, &mut rng);
                if t % (64 * STEP_MS) == 0 {
                    view.trim(t - 120 * STEP_MS);
                }
                black_box(mgr.evaluate(black_box(t), &view))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
