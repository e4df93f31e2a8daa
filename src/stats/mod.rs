//! Pure statistics over slices of samples, built on `statrs`.
//!
//! One policy for bad data everywhere: non-finite values are ignored, an empty
//! input gives `None`, and no result field is ever NaN (a single value has a
//! standard deviation of 0).

use serde::{Deserialize, Serialize};

/// Descriptive statistics of a window of values.
///
/// # Examples
///
/// ```
/// let s = watchpost::stats::summarize(&[1.0, 2.0, 3.0, 4.0, f64::NAN]).unwrap();
/// assert_eq!(s.count, 4);
/// assert_eq!(s.mean, 2.5);
/// assert_eq!(s.min, 1.0);
/// assert_eq!(s.max, 4.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of finite values.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (the 50th percentile).
    pub median: f64,
    /// 50th percentile; the same number as `median`, for dashboards that list percentiles.
    pub p50: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for a single value.
    pub stddev: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Summarizes `values`, ignoring non-finite entries; `None` if nothing is left.
///
/// Percentiles follow statrs' quantile definition (R-8, median-unbiased) and
/// always lie between `min` and `max`.
///
/// # Examples
///
/// ```
/// use watchpost::stats::summarize;
/// assert!(summarize(&[]).is_none());
/// assert!(summarize(&[f64::INFINITY]).is_none());
/// let one = summarize(&[7.0]).unwrap();
/// assert_eq!((one.median, one.p50, one.stddev, one.p99), (7.0, 7.0, 0.0, 7.0));
/// ```
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    summarize_owned(finite)
}

/// Like [`summarize`], but takes ownership of a buffer to avoid a copy.
///
/// # Examples
///
/// ```
/// let s = watchpost::stats::summarize_owned(vec![3.0, 1.0, 2.0]).unwrap();
/// assert_eq!(s.median, 2.0);
/// ```
pub fn summarize_owned(mut finite: Vec<f64>) -> Option<Summary> {
    finite.retain(|v| v.is_finite());
    summarize_finite(&mut finite)
}

/// Like [`summarize_owned`], for values known to be finite (history holds
/// only finite values), in a buffer the caller keeps between calls. Reorders
/// `finite`.
pub(crate) fn summarize_finite(finite: &mut [f64]) -> Option<Summary> {
    debug_assert!(finite.iter().all(|v| v.is_finite()));
    if finite.is_empty() {
        return None;
    }
    let count = finite.len();
    let (mean, stddev) = mean_stddev(finite);
    // Sort once; every order statistic is then a lookup. (Selecting only
    // the ranks the percentiles need measured slower than the sort on the
    // snapshot bench, whose windows the sort finds in order in one pass.)
    finite.sort_unstable_by(f64::total_cmp);
    let picks = Percentiles::of_sorted(finite);
    Some(summary_of(
        count,
        (finite[0], finite[count - 1]),
        (mean, stddev),
        [picks.median, picks.p90, picks.p95, picks.p99],
    ))
}

/// Mean and sample standard deviation of non-empty finite values: two
/// passes, each in four independent sums in the values' order (a single
/// running sum is a chain of dependent additions, and statrs' streaming
/// versions divide once per value); the tests check them against statrs.
pub(crate) fn mean_stddev(values: &[f64]) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let n = values.len() as f64;
    let mut mean = lanes_sum(values, |v| v) / n;
    if !mean.is_finite() {
        // the plain sum overflowed (values near f64::MAX): scale first
        mean = lanes_sum(values, |v| v / n);
    }
    let stddev = if values.len() < 2 {
        0.0
    } else {
        (lanes_sum(values, |v| (v - mean) * (v - mean)) / (n - 1.0)).sqrt()
    };
    (mean, stddev)
}

/// The summary of `count` values from their extremes, moments and
/// `[median, p90, p95, p99]`: every statistic kept within `[min, max]`, a
/// non-finite one replaced as `summarize` documents.
pub(crate) fn summary_of(
    count: usize,
    (min, max): (f64, f64),
    (mean, stddev): (f64, f64),
    [median, p90, p95, p99]: [f64; 4],
) -> Summary {
    let median = if median.is_finite() { median.clamp(min, max) } else { min };
    let mean = if mean.is_finite() { mean.clamp(min, max) } else { median };
    let clamp = |v: f64| if v.is_finite() { v.clamp(min, max) } else { median };
    Summary {
        count,
        min,
        max,
        mean,
        median,
        p50: median,
        // only values near f64::MAX can overflow the variance; report the largest finite spread
        stddev: if stddev.is_finite() { stddev } else { f64::MAX },
        p90: clamp(p90),
        p95: clamp(p95),
        p99: clamp(p99),
    }
}

/// The sum of `f(v)` over `values`, in four interleaved partial sums.
fn lanes_sum(values: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, v) in lanes.iter_mut().zip(c) {
            *lane += f(*v);
        }
    }
    let tail: f64 = rest.iter().map(|v| f(*v)).sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Median and the 90th, 95th and 99th percentiles of sorted finite data.
struct Percentiles {
    median: f64,
    p90: f64,
    p95: f64,
    p99: f64,
}

impl Percentiles {
    /// Reads the statistics from non-empty, sorted, finite data.
    fn of_sorted(v: &[f64]) -> Percentiles {
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) };
        let [p90, p95, p99] = [0.90, 0.95, 0.99].map(|tau| sorted_quantile(v, tau));
        Percentiles { median, p90, p95, p99 }
    }
}

/// Quantile `tau` of sorted finite data, by the same R-8 rule statrs'
/// `OrderStatistics::quantile` uses (checked against it in the tests), but
/// without its per-call scan of the data.
fn sorted_quantile(sorted: &[f64], tau: f64) -> f64 {
    let n = sorted.len();
    #[allow(clippy::cast_precision_loss)]
    let h = (n as f64 + 1.0 / 3.0) * tau + 1.0 / 3.0;
    #[allow(clippy::cast_possible_truncation)]
    let hf = h as i64;
    if hf <= 0 || tau <= 0.0 {
        return sorted[0];
    }
    #[allow(clippy::cast_possible_wrap)]
    if hf >= n as i64 || tau >= 1.0 {
        return sorted[n - 1];
    }
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let k = hf as usize;
    #[allow(clippy::cast_precision_loss)]
    let frac = h - hf as f64;
    sorted[k - 1] + frac * (sorted[k] - sorted[k - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use statrs::statistics::{Data, OrderStatistics, Statistics};

    #[test]
    fn known_values() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.count, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // sample standard deviation of this classic set is sqrt(32/7)
        assert!((s.stddev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!((s.median - 4.5).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn quantiles_agree_with_statrs(
            values in prop_oneof![
                prop::collection::vec(-1e6f64..1e6, 1..300),
                // ties, and windows already in order (a counter's running total)
                prop::collection::vec((0i8..5).prop_map(f64::from), 1..300),
                prop::collection::vec(-1e6f64..1e6, 1..300).prop_map(|mut v| {
                    v.sort_by(f64::total_cmp);
                    v
                }),
            ],
        ) {
            let s = summarize(&values).unwrap();
            let mut data = Data::new(values.clone());
            for (got, tau) in [(s.p90, 0.90), (s.p95, 0.95), (s.p99, 0.99)] {
                let want = data.quantile(tau);
                prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
            }
            let want = data.median();
            prop_assert!((s.median - want).abs() <= 1e-9 * want.abs().max(1.0));
            let want = values.iter().mean();
            prop_assert!((s.mean - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", s.mean, want);
            if values.len() > 1 {
                let want = values.iter().std_dev();
                prop_assert!((s.stddev - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", s.stddev, want);
            }
        }

        #[test]
        fn order_holds(values in prop::collection::vec(prop::num::f64::ANY, 0..200)) {
            match summarize(&values) {
                None => prop_assert!(values.iter().all(|v| !v.is_finite())),
                Some(s) => {
                    prop_assert!(s.min <= s.median && s.median <= s.p90);
                    prop_assert!(s.p90 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
                    prop_assert!(s.stddev >= 0.0 && s.stddev.is_finite() && s.mean.is_finite());
                    prop_assert_eq!(s.count, values.iter().filter(|v| v.is_finite()).count());
                }
            }
        }
    }
}
