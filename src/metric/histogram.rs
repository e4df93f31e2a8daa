use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::atomic_add_f64;
use crate::error::{Error, Result};

/// Prometheus' default bucket upper bounds, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

struct HistogramCore {
    bounds: Box<[f64]>,
    /// Per-bucket (not cumulative) counts; the last one is the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
    nonfinite: AtomicU64,
}

/// Observations counted into fixed buckets, with their sum and count. Cloning shares the data.
///
/// A value `v` lands in the first bucket whose upper bound is `>= v`
/// (Prometheus' `le` semantics), or in the implicit `+Inf` bucket.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let latency = engine.histogram("message_latency_seconds")?;
/// latency.observe(0.003);
/// latency.observe(0.2);
/// latency.observe(f64::NAN); // dropped and counted
/// let snap = latency.snapshot();
/// assert_eq!(snap.count, 2);
/// assert!((snap.sum - 0.203).abs() < 1e-12);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a histogram does nothing unless you observe values"]
pub struct Histogram {
    core: Arc<HistogramCore>,
}

/// A point-in-time copy of a histogram.
///
/// # Examples
///
/// ```
/// let h = watchpost::Histogram::with_bounds(&[1.0, 2.0])?;
/// h.observe(1.5);
/// let s = h.snapshot();
/// assert_eq!(s.bounds, vec![1.0, 2.0]);
/// assert_eq!(s.counts, vec![0, 1, 0]);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets.
    pub bounds: Vec<f64>,
    /// Count per bucket (not cumulative), one more than `bounds`: the last is `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// Estimates quantile `q` (0..=1) from bucket `counts` by linear
    /// interpolation inside the bucket, as Prometheus' `histogram_quantile`
    /// does. `None` when there are no observations.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::Histogram::with_bounds(&[1.0, 2.0, 4.0])?;
    /// for v in [0.5, 1.5, 1.5, 3.0] { h.observe(v); }
    /// let median = h.snapshot().quantile(0.5).unwrap();
    /// assert!((1.0..=2.0).contains(&median));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_from_buckets(&self.bounds, &self.counts, q)
    }
}

/// Linear interpolation inside the bucket holding rank `q * total`.
pub(crate) fn quantile_from_buckets(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || !q.is_finite() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52 in practice
    let rank = q * total as f64;
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        let prev = cumulative;
        cumulative += c;
        #[allow(clippy::cast_precision_loss)]
        if c > 0 && cumulative as f64 >= rank {
            if i == bounds.len() {
                // +Inf bucket: the best we can say is the largest finite bound.
                return bounds.last().copied().or(Some(0.0));
            }
            let upper = bounds[i];
            let lower = if i == 0 { upper.min(0.0) } else { bounds[i - 1] };
            let within = ((rank - prev as f64) / c as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
    }
    bounds.last().copied()
}

impl Histogram {
    /// A detached histogram with [`DEFAULT_BUCKETS`].
    ///
    /// # Panics
    ///
    /// Never: the default buckets are valid.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::Histogram::detached();
    /// h.observe(0.1);
    /// assert_eq!(h.snapshot().count, 1);
    /// ```
    pub fn detached() -> Self {
        Self::with_bounds(&DEFAULT_BUCKETS).expect("default buckets are valid")
    }

    /// A detached histogram with custom bucket upper bounds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `bounds` is empty, holds a non-finite
    /// value, or is not strictly increasing; the message quotes the bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::Histogram::with_bounds(&[1.0, 5.0]).is_ok());
    /// assert!(watchpost::Histogram::with_bounds(&[5.0, 1.0]).is_err());
    /// assert!(watchpost::Histogram::with_bounds(&[]).is_err());
    /// ```
    pub fn with_bounds(bounds: &[f64]) -> Result<Self> {
        validate_bounds(bounds)?;
        Ok(Histogram {
            core: Arc::new(HistogramCore {
                bounds: bounds.into(),
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_bits: AtomicU64::new(0f64.to_bits()),
                nonfinite: AtomicU64::new(0),
            }),
        })
    }

    /// Records one observation. Non-finite values are dropped and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::Histogram::detached();
    /// h.observe(0.02);
    /// h.observe(f64::INFINITY);
    /// assert_eq!(h.snapshot().count, 1);
    /// assert_eq!(h.dropped(), 1);
    /// ```
    #[inline]
    pub fn observe(&self, v: f64) {
        if !v.is_finite() {
            self.core.nonfinite.fetch_add(1, Relaxed);
            return;
        }
        let core = &*self.core;
        let idx = core.bounds.partition_point(|b| *b < v);
        core.buckets[idx].fetch_add(1, Relaxed);
        atomic_add_f64(&core.sum_bits, v);
    }

    /// This histogram's bucket bounds as limits in whole nanoseconds, for
    /// [`observe_nanos`](Self::observe_nanos); `None` when a bound is
    /// negative or beyond 2^53 ns, where the plain path must be used.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the tracing layer's path
    pub(crate) fn nanos_buckets(&self) -> Option<NanosBuckets> {
        let limits: Box<[u64]> =
            self.core.bounds.iter().map(|&b| nanos_limit(b)).collect::<Option<_>>()?;
        // For each bit length of `ns`, how many limits lie below its smallest value.
        let first = std::array::from_fn(|bits| {
            let smallest = if bits == 0 { 0 } else { 1_u64 << (bits - 1) };
            limits.partition_point(|&limit| limit < smallest)
        });
        Some(NanosBuckets { limits, first, core: Arc::clone(&self.core) })
    }

    /// Observes a duration of `ns` nanoseconds as `ns / 1e9` seconds: the
    /// same bucket and sum as `observe(ns as f64 / 1e9)`, with the bucket
    /// found by integer compares that do not wait for the division.
    /// `buckets` must come from this histogram's
    /// [`nanos_buckets`](Self::nanos_buckets); any other falls back to
    /// [`observe`](Self::observe).
    #[inline]
    #[allow(clippy::cast_precision_loss)] // below 2^53 ns the conversion is exact
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the tracing layer's path
    pub(crate) fn observe_nanos(&self, ns: u64, buckets: &NanosBuckets) {
        let secs = ns as f64 / 1e9;
        if !Arc::ptr_eq(&self.core, &buckets.core) || ns > MAX_EXACT_NANOS {
            self.observe(secs);
            return;
        }
        let core = &*self.core;
        // bound < secs exactly when ns is above the bound's limit: start past
        // the limits below ns's bit length, then step over the few left
        let mut idx = buckets.first[(u64::BITS - ns.leading_zeros()) as usize];
        while buckets.limits.get(idx).is_some_and(|&limit| limit < ns) {
            idx += 1;
        }
        core.buckets[idx].fetch_add(1, Relaxed);
        atomic_add_f64(&core.sum_bits, secs);
    }

    /// A copy of the buckets, sum and count.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::Histogram::detached();
    /// h.observe(0.5);
    /// assert_eq!(h.snapshot().sum, 0.5);
    /// ```
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.core.buckets.iter().map(|b| b.load(Relaxed)).collect();
        HistogramSnapshot {
            bounds: self.core.bounds.to_vec(),
            count: counts.iter().sum(),
            counts,
            sum: f64::from_bits(self.core.sum_bits.load(Relaxed)),
        }
    }

    /// The bucket upper bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::Histogram::detached().bounds().len(), 11);
    /// ```
    pub fn bounds(&self) -> &[f64] {
        &self.core.bounds
    }

    /// How many non-finite observations were dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::Histogram::detached();
    /// h.observe(f64::NAN);
    /// assert_eq!(h.dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.core.nonfinite.load(Relaxed)
    }

    /// Current per-bucket counts into `out` (cleared first).
    pub(crate) fn counts_into(&self, out: &mut Vec<u64>) {
        out.clear();
        out.extend(self.core.buckets.iter().map(|b| b.load(Relaxed)));
    }

    #[cfg(test)]
    #[allow(dead_code)]
    pub(crate) fn same_as(&self, other: &Histogram) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

pub(crate) fn validate_bounds(bounds: &[f64]) -> Result<()> {
    if bounds.is_empty() {
        return Err(Error::InvalidConfig {
            field: "buckets",
            reason: "at least one bucket bound is needed, got []".into(),
        });
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidConfig {
            field: "buckets",
            reason: format!("bounds must be finite and strictly increasing, got {bounds:?}"),
        });
    }
    Ok(())
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram").field("count", &s.count).field("sum", &s.sum).finish()
    }
}

/// Nanosecond counts up to here convert to `f64` exactly.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the tracing layer's path
const MAX_EXACT_NANOS: u64 = 1 << 53;

/// A histogram's bounds as nanosecond limits ([`Histogram::nanos_buckets`]).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the tracing layer's path
pub(crate) struct NanosBuckets {
    /// Per bound, the largest `n` with `n as f64 / 1e9 <= bound`.
    limits: Box<[u64]>,
    /// Per bit length of a nanosecond count (0..=64), the number of limits
    /// below the smallest count of that length.
    first: [usize; 65],
    /// The histogram these limits belong to.
    core: Arc<HistogramCore>,
}

impl fmt::Debug for NanosBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NanosBuckets").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// The largest nanosecond count `n` whose `n as f64 / 1e9` is at most
/// `bound`, found from the float product and corrected by the division
/// itself, so the integer compare agrees with the float one bit for bit.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "bound is checked to be in 0..2^53 ns first"
)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))] // the tracing layer's path
fn nanos_limit(bound: f64) -> Option<u64> {
    let approx = bound * 1e9;
    if !(0.0..(MAX_EXACT_NANOS as f64)).contains(&approx) {
        return None;
    }
    let mut n = approx.floor() as u64;
    while n > 0 && n as f64 / 1e9 > bound {
        n -= 1;
    }
    while n < MAX_EXACT_NANOS && (n + 1) as f64 / 1e9 <= bound {
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn le_semantics() {
        let h = Histogram::with_bounds(&[1.0, 2.0]).unwrap();
        for v in [0.5, 1.0, 1.0001, 2.0, 2.5, -3.0] {
            h.observe(v);
        }
        assert_eq!(h.snapshot().counts, vec![3, 2, 1]);
    }

    #[test]
    fn quantile_interpolates() {
        // 100 observations spread evenly in (0, 1]: bucket (0,1] holds all
        let q = quantile_from_buckets(&[1.0, 2.0], &[100, 0, 0], 0.5).unwrap();
        assert!((q - 0.5).abs() < 1e-12);
        let q = quantile_from_buckets(&[1.0, 2.0], &[50, 50, 0], 0.75).unwrap();
        assert!((q - 1.5).abs() < 1e-12);
        // everything in +Inf: the largest finite bound
        assert_eq!(quantile_from_buckets(&[1.0, 2.0], &[0, 0, 5], 0.9), Some(2.0));
        assert_eq!(quantile_from_buckets(&[1.0], &[0, 0], 0.9), None);
    }

    proptest! {
        /// Observing nanoseconds fills the same buckets and sum as observing
        /// their conversion to seconds, at and around every bound.
        #[test]
        #[allow(clippy::cast_precision_loss)] // the conversion under test
        fn observe_nanos_agrees_with_observe(
            bounds in prop::collection::vec(1e-9f64..100.0, 1..20),
            picks in prop::collection::vec((0usize..20, -2i64..3), 1..60),
            others in prop::collection::vec(prop_oneof![0u64..200_000_000_000, any::<u64>()], 0..40),
        ) {
            let mut bounds = bounds;
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let (plain, fast) = (Histogram::with_bounds(&bounds).unwrap(), Histogram::with_bounds(&bounds).unwrap());
            let nb = fast.nanos_buckets().unwrap();
            let near = picks.iter().map(|&(i, d)| {
                let limit = nanos_limit(bounds[i % bounds.len()]).unwrap();
                limit.saturating_add_signed(d)
            });
            for ns in near.chain(others) {
                plain.observe(ns as f64 / 1e9);
                fast.observe_nanos(ns, &nb);
            }
            prop_assert_eq!(plain.snapshot(), fast.snapshot());
        }
    }

    #[test]
    fn nanos_buckets_of_another_histogram_or_odd_bounds_fall_back() {
        let (a, b) =
            (Histogram::with_bounds(&[0.001]).unwrap(), Histogram::with_bounds(&[0.5]).unwrap());
        a.observe_nanos(2_000_000, &b.nanos_buckets().unwrap());
        assert_eq!(a.snapshot().counts, vec![0, 1]); // 2 ms is above a's 1 ms
        assert!(Histogram::with_bounds(&[-1.0, 1.0]).unwrap().nanos_buckets().is_none());
        assert_eq!(nanos_limit(0.001), Some(1_000_000));
        assert_eq!(nanos_limit(0.0), Some(0));
    }

    proptest! {
        #[test]
        fn count_equals_finite_inputs(values in prop::collection::vec(prop::num::f64::ANY, 0..300)) {
            let h = Histogram::detached();
            for v in &values { h.observe(*v); }
            let finite = values.iter().filter(|v| v.is_finite()).count() as u64;
            prop_assert_eq!(h.snapshot().count, finite);
            prop_assert_eq!(h.dropped(), values.len() as u64 - finite);
        }
    }
}
