//! Per-point cost of the detectors (group `detector_update`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use watchpost::detect::{Detector, DetectorSpec};

const POINTS: usize = 10_000;

/// A seeded, noisy daily pattern with occasional spikes, 5-minute steps.
fn series() -> Vec<(i64, f64)> {
    let mut s = 42_u64;
    (0..POINTS)
        .map(|i| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)] // benchmark data
            let (u, phase) = ((s >> 11) as f64 / (1u64 << 53) as f64, (i % 288) as f64 / 288.0);
            let spike = if i % 997 == 0 { 40.0 } else { 0.0 };
            let t = i64::try_from(i).expect("small") * 300_000;
            (t, 50.0 + 20.0 * (phase * std::f64::consts::TAU).sin() + 3.0 * u + spike)
        })
        .collect()
}

fn warmed(spec: &DetectorSpec, data: &[(i64, f64)]) -> Box<dyn Detector> {
    let mut d = spec.build();
    for &(t, v) in data {
        d.update(t, v);
    }
    d
}

fn bench(c: &mut Criterion) {
    let data = series();
    let mut g = c.benchmark_group("detector_update");
    g.throughput(Throughput::Elements(POINTS as u64));
    for name in DetectorSpec::NAMES {
        let spec: DetectorSpec = name.parse().expect("known name");
        let d = warmed(&spec, &data);
        eprintln!("{name}: {} bytes per series", d.memory_bytes());
        g.bench_function(format!("{name}_x{POINTS}"), |b| {
            b.iter_batched_ref(
                || warmed(&spec, &data[..2_000]),
                |d| {
                    for &(t, v) in &data {
                        black_box(d.update(t + 600_000_000, black_box(v)));
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
