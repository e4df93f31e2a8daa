//! Synthetic series and checks shared by the detector unit tests.
#![allow(clippy::float_cmp)] // exact values are expected

use super::Detector;

/// Five minutes, the step of the synthetic series.
pub(crate) const STEP_MS: i64 = 300_000;

/// Deterministic noise in [-1, 1] (a linear congruential generator).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            2.0 * u - 1.0
        })
        .collect()
}

pub(crate) fn noisy_with_spike(n: usize, at: usize, size: f64) -> Vec<f64> {
    let mut v: Vec<f64> = noise(n, 7).into_iter().map(|e| 10.0 + e).collect();
    v[at] += size;
    v
}

pub(crate) fn step(n: usize, at: usize, delta: f64) -> Vec<f64> {
    noise(n, 11)
        .into_iter()
        .enumerate()
        .map(|(i, e)| 10.0 + e + if i >= at { delta } else { 0.0 })
        .collect()
}

/// A daily sine (288 points a day) with a little noise.
pub(crate) fn daily(n: usize) -> Vec<f64> {
    noise(n, 13)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let phase = super::window::as_f64(i % 288) / 288.0 * std::f64::consts::TAU;
            50.0 + 20.0 * phase.sin() + 0.5 * e
        })
        .collect()
}

pub(crate) fn drift(n: usize, per_point: f64) -> Vec<f64> {
    noise(n, 17)
        .into_iter()
        .enumerate()
        .map(|(i, e)| 10.0 + e + per_point * super::window::as_f64(i))
        .collect()
}

pub(crate) fn run(d: &mut dyn Detector, values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let t = i64::try_from(i).unwrap() * STEP_MS;
            let s = d.update(t, v);
            assert!((0.0..=1.0).contains(&s), "score {s} out of range at {i}");
            s
        })
        .collect()
}

/// Largest score outside `skip` and after the first `from` points.
pub(crate) fn max_excluding(scores: &[f64], skip: std::ops::Range<usize>, from: usize) -> f64 {
    scores
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= from && !skip.contains(i))
        .map(|(_, &s)| s)
        .fold(0.0, f64::max)
}

/// Feeds bad values between normal ones: no panic, scores in range, no NaN
/// state (normal values afterwards still score low).
pub(crate) fn check_robust_to_bad_input(d: &mut dyn Detector) {
    let base = noisy_with_spike(600, 0, 0.0);
    let mut t = 0;
    for (i, &v) in base.iter().enumerate() {
        t += STEP_MS;
        let s = d.update(t, v);
        assert!((0.0..=1.0).contains(&s));
        if i % 50 == 0 {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                assert_eq!(d.update(t, bad), 0.0);
            }
        }
    }
    for huge in [1e300, -1e300, f64::MAX, f64::MIN, 1e-300] {
        t += STEP_MS;
        let s = d.update(t, huge);
        assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{huge} gave {s}");
    }
    for &v in &base {
        t += STEP_MS;
        let s = d.update(t, v);
        assert!(s.is_finite() && (0.0..=1.0).contains(&s));
    }
    if let Some((lo, hi)) = d.expected_band() {
        assert!(!lo.is_nan() && !hi.is_nan());
    }
}
