//! Correlation between series aligned in time, a correlation matrix, and the
//! lag of best correlation.

use serde::{Deserialize, Serialize};

use super::{Point, SeriesSource, clean, finite_or, seconds_between};

/// Which correlation coefficient to compute.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::Method;
/// assert_eq!(Method::default(), Method::Pearson);
/// assert_eq!(serde_json::to_string(&Method::Spearman)?, "\"spearman\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Pearson's r: strength of a linear relation.
    #[default]
    Pearson,
    /// Spearman's ρ: Pearson's r of the ranks (ties get their average rank),
    /// so any monotonic relation scores ±1 and outliers weigh little.
    Spearman,
}

/// Pairs the points of `a` and `b` whose timestamps are within `tolerance_ms`
/// of each other.
///
/// Both series are cleaned (non-finite values dropped, sorted by time) and
/// walked together in time order; when the current points are close enough
/// they are paired and both consumed, otherwise the earlier one is skipped.
/// Each point is used at most once. Series sampled on the same schedule,
/// even with a small offset, pair up completely with a tolerance of half
/// their interval.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, align};
/// let a = [Point::new(0, 1.0), Point::new(1000, 2.0), Point::new(2000, 3.0)];
/// let b = [Point::new(40, 10.0), Point::new(2010, 30.0)];
/// let pairs = align(&a, &b, 100);
/// assert_eq!(pairs.len(), 2);
/// assert_eq!((pairs[1].0.value, pairs[1].1.value), (3.0, 30.0));
/// ```
#[allow(clippy::many_single_char_names)] // a, b, i, j, d: a merge walk
pub fn align(a: &[Point], b: &[Point], tolerance_ms: i64) -> Vec<(Point, Point)> {
    let (a, b) = (clean(a), clean(b));
    let tol = i128::from(tolerance_ms.max(0));
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let d = i128::from(b[j].ts_ms) - i128::from(a[i].ts_ms);
        if d.abs() <= tol {
            out.push((a[i], b[j]));
            i += 1;
            j += 1;
        } else if d < 0 {
            j += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Pearson's correlation of `x` and `y`, pairwise (extra items of the longer
/// slice are ignored, as are pairs with a non-finite value).
///
/// `None` with fewer than three pairs or when either side is constant; the
/// result is otherwise in [−1, 1].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::pearson;
/// let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.5]).unwrap();
/// assert!(r > 0.99);
/// assert_eq!(pearson(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), None);
/// ```
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    pearson_finite(&xs, &ys)
}

/// Pearson's r of equal-length, all-finite slices.
fn pearson_finite(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (x, y) = (&x[..n], &y[..n]);
    let scale = |v: &[f64]| {
        let m = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
        if m > 0.0 { m } else { 1.0 }
    };
    let (sx, sy) = (scale(x), scale(y));
    #[allow(clippy::cast_precision_loss)] // window lengths are far below 2^53
    let nf = n as f64;
    let mx = x.iter().map(|v| v / sx).sum::<f64>() / nf;
    let my = y.iter().map(|v| v / sy).sum::<f64>() / nf;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a / sx - mx, b / sy - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let r = sxy / (sxx.sqrt() * syy.sqrt());
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Ranks of `v` starting at 1, ties sharing their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && v[idx[end]].total_cmp(&v[idx[start]]).is_eq() {
            end += 1;
        }
        #[allow(clippy::cast_precision_loss)] // ranks are far below 2^53
        let rank = (start + end + 1) as f64 / 2.0;
        for &k in &idx[start..end] {
            out[k] = rank;
        }
        start = end;
    }
    out
}

/// Spearman's rank correlation of `x` and `y`, with the same pairing and
/// undefined cases as [`pearson`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::spearman;
/// // monotonic but far from linear
/// let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 8.0, 27.0, 64.0, 1e6]).unwrap();
/// assert!((r - 1.0).abs() < 1e-12);
/// ```
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    pearson_finite(&ranks(&xs), &ranks(&ys))
}

/// Coefficient of finite value slices by `method`.
fn coefficient(x: &[f64], y: &[f64], method: Method) -> Option<f64> {
    match method {
        Method::Pearson => pearson_finite(x, y),
        Method::Spearman => pearson_finite(&ranks(x), &ranks(y)),
    }
}

/// The correlation of two series aligned in time with [`align`]; `None` with
/// fewer than three aligned pairs or a constant side.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Method, Point, correlate};
/// let cpu: Vec<Point> = (0..10).map(|i| Point::new(i * 1000, (i % 4) as f64)).collect();
/// let load: Vec<Point> = (0..10).map(|i| Point::new(i * 1000 + 20, 2.0 * (i % 4) as f64)).collect();
/// let r = correlate(&cpu, &load, 500, Method::Pearson).unwrap();
/// assert!((r - 1.0).abs() < 1e-12);
/// ```
pub fn correlate(a: &[Point], b: &[Point], tolerance_ms: i64, method: Method) -> Option<f64> {
    let (x, y) = aligned_values(a, b, tolerance_ms);
    coefficient(&x, &y, method)
}

/// The two value columns of `align(a, b, tolerance_ms)`.
fn aligned_values(a: &[Point], b: &[Point], tolerance_ms: i64) -> (Vec<f64>, Vec<f64>) {
    align(a, b, tolerance_ms).into_iter().map(|(p, q)| (p.value, q.value)).unzip()
}

/// Pairwise correlations of a set of named series.
///
/// `values[i][j]` is the correlation of `names[i]` with `names[j]`; the matrix
/// is symmetric, and an entry is `None` where the correlation is undefined
/// (a missing or constant series, fewer than three aligned points).
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use watchpost::analysis::{Method, Point, correlation_matrix};
/// let mut series = HashMap::new();
/// series.insert("a".to_owned(), (0..5).map(|i| Point::new(i * 1000, i as f64)).collect());
/// series.insert("b".to_owned(), (0..5).map(|i| Point::new(i * 1000, -(i as f64))).collect());
/// let m = correlation_matrix(&series, &["a", "b", "missing"], 0, Method::Pearson);
/// assert!((m.values[0][1].unwrap() + 1.0).abs() < 1e-12);
/// assert_eq!(m.values[0][0], Some(1.0));
/// assert_eq!(m.values[2][0], None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationMatrix {
    /// The series, in the order asked for.
    pub names: Vec<String>,
    /// The coefficient used.
    pub method: Method,
    /// Row `i`, column `j`: correlation of `names[i]` with `names[j]`.
    pub values: Vec<Vec<Option<f64>>>,
}

/// The [`CorrelationMatrix`] of the series `names` from `source`, aligned
/// pairwise with [`align`] and `tolerance_ms`.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Method, Point, correlation_matrix};
/// let source = |name: &str| match name {
///     "up" => Some((0..6).map(|i| Point::new(i * 1000, i as f64)).collect()),
///     _ => None,
/// };
/// let m = correlation_matrix(&source, &["up"], 0, Method::Spearman);
/// assert_eq!(m.values, vec![vec![Some(1.0)]]);
/// ```
pub fn correlation_matrix<S: SeriesSource + ?Sized>(
    source: &S,
    names: &[&str],
    tolerance_ms: i64,
    method: Method,
) -> CorrelationMatrix {
    let series: Vec<Vec<Point>> =
        names.iter().map(|n| source.points(n).map(|p| clean(&p)).unwrap_or_default()).collect();
    let k = names.len();
    let mut values = vec![vec![None; k]; k];
    for i in 0..k {
        for j in i..k {
            let r = correlate(&series[i], &series[j], tolerance_ms, method);
            // a series with itself is exactly 1 wherever it is defined
            let r = if i == j { r.map(|_| 1.0) } else { r };
            values[i][j] = r;
            values[j][i] = r;
        }
    }
    CorrelationMatrix { names: names.iter().map(|&n| n.to_owned()).collect(), method, values }
}

/// The shift between two series at which they correlate best.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::Lag;
/// let lag = Lag { samples: 2, seconds: 20.0, correlation: 0.9 };
/// assert!(lag.samples > 0); // the second series follows the first
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    /// Shift in aligned samples; positive when the second series follows
    /// (lags behind) the first.
    pub samples: i64,
    /// The shift in seconds: `samples` times the median interval between
    /// aligned samples.
    pub seconds: f64,
    /// The correlation at that shift, in [−1, 1].
    pub correlation: f64,
}

/// The lag within ±`max_lag` aligned samples at which `a` and `b` correlate
/// most strongly (largest |r|; ties go to the smaller shift).
///
/// The series are first paired with [`align`]; at shift `k` the value of `a`
/// at aligned sample `i` is compared with `b` at aligned sample `i + k`. Each
/// shift needs at least three overlapping pairs. `None` when no shift gives a
/// defined correlation.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Method, Point, best_lag};
/// let wave = |i: i64| ((i * 7) % 11) as f64;
/// let requests: Vec<Point> = (0..50).map(|i| Point::new(i * 10_000, wave(i))).collect();
/// // latency follows requests three samples (30 s) later
/// let latency: Vec<Point> = (0..50).map(|i| Point::new(i * 10_000, wave(i - 3))).collect();
/// let lag = best_lag(&requests, &latency, 5, 1000, Method::Pearson).unwrap();
/// assert_eq!((lag.samples, lag.seconds), (3, 30.0));
/// assert!((lag.correlation - 1.0).abs() < 1e-12);
/// ```
#[allow(clippy::many_single_char_names)] // a, b, n, x, y, k: the usual notation
pub fn best_lag(
    a: &[Point],
    b: &[Point],
    max_lag: usize,
    tolerance_ms: i64,
    method: Method,
) -> Option<Lag> {
    let pairs = align(a, b, tolerance_ms);
    let n = pairs.len();
    let x: Vec<f64> = pairs.iter().map(|(p, _)| p.value).collect();
    let y: Vec<f64> = pairs.iter().map(|(_, q)| q.value).collect();
    let mut intervals: Vec<f64> =
        pairs.windows(2).map(|w| seconds_between(w[0].0.ts_ms, w[1].0.ts_ms)).collect();
    intervals.sort_by(f64::total_cmp);
    let step = intervals.get(intervals.len() / 2).copied().unwrap_or(0.0);

    let max_lag = max_lag.min(n.saturating_sub(3));
    let mut best: Option<(usize, bool, f64)> = None;
    for k in 0..=max_lag {
        for negative in [false, true] {
            if k == 0 && negative {
                continue;
            }
            let (xs, ys) = if negative { (&x[k..], &y[..n - k]) } else { (&x[..n - k], &y[k..]) };
            if let Some(r) = coefficient(xs, ys, method)
                && best.is_none_or(|(_, _, b)| r.abs() > b.abs())
            {
                best = Some((k, negative, r));
            }
        }
    }
    best.map(|(k, negative, correlation)| {
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        let samples = if negative { -k } else { k };
        #[allow(clippy::cast_precision_loss)] // shifts are far below 2^53
        let seconds = finite_or(samples as f64 * step, 0.0);
        Lag { samples, seconds, correlation }
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp, clippy::cast_precision_loss)] // exact expectations, small ints
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_coefficients() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        // r = 8 / 10 for these ranks-as-values
        assert!((pearson(&x, &y).unwrap() - 0.8).abs() < 1e-12);
        assert!((spearman(&x, &y).unwrap() - 0.8).abs() < 1e-12);
        // ties share ranks
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[f64::NAN; 5], &[1.0; 5]), None);
        assert_eq!(correlate(&[], &[], 0, Method::Pearson), None);
        assert_eq!(best_lag(&[], &[], 10, 0, Method::Pearson), None);
    }

    #[test]
    fn alignment_with_offsets_and_gaps() {
        let a: Vec<Point> = (0..10).map(|i| Point::new(i * 1000, 1.0)).collect();
        let mut b: Vec<Point> = (0..10).map(|i| Point::new(i * 1000 + 300, 1.0)).collect();
        b.remove(4);
        assert_eq!(align(&a, &b, 499).len(), 9);
        assert_eq!(align(&a, &b, 100).len(), 0);
        assert_eq!(align(&a, &b, -5).len(), 0);
    }

    #[test]
    fn negative_lag() {
        let wave = |i: i64| ((i * 5) % 13) as f64;
        let a: Vec<Point> = (0..60).map(|i| Point::new(i * 1000, wave(i))).collect();
        let b: Vec<Point> = (0..60).map(|i| Point::new(i * 1000, wave(i + 2))).collect();
        let lag = best_lag(&a, &b, 4, 0, Method::Spearman).unwrap();
        assert_eq!((lag.samples, lag.seconds), (-2, -2.0));
    }

    proptest! {
        #[test]
        fn a_series_correlates_with_itself(
            values in prop::collection::vec(-1e12f64..1e12, 3..100),
        ) {
            let pts: Vec<Point> =
                (0i64..).zip(&values).map(|(i, &v)| Point::new(i * 1000, v)).collect();
            for method in [Method::Pearson, Method::Spearman] {
                match correlate(&pts, &pts, 0, method) {
                    Some(r) => prop_assert!((r - 1.0).abs() < 1e-9, "{r}"),
                    None => prop_assert!(values.iter().all(|&v| v == values[0])),
                }
            }
        }

        #[test]
        fn no_nan_for_any_input(
            a in prop::collection::vec((0i64..100_000, prop::num::f64::ANY), 0..40),
            b in prop::collection::vec((0i64..100_000, prop::num::f64::ANY), 0..40),
            tol in -10i64..5000,
        ) {
            let a: Vec<Point> = a.into_iter().map(Point::from).collect();
            let b: Vec<Point> = b.into_iter().map(Point::from).collect();
            for method in [Method::Pearson, Method::Spearman] {
                if let Some(r) = correlate(&a, &b, tol, method) {
                    prop_assert!((-1.0..=1.0).contains(&r));
                }
                if let Some(l) = best_lag(&a, &b, 5, tol, method) {
                    prop_assert!((-1.0..=1.0).contains(&l.correlation) && l.seconds.is_finite());
                    prop_assert!(l.samples.abs() <= 5);
                }
            }
        }
    }
}
