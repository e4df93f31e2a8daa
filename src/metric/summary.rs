use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::atomic_add_f64;

/// Sub-buckets per power of two: relative error of a reported quantile ≤ 1/32 (≈ 3 %).
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;
/// Smallest and largest tracked binary exponent: about 9.3e-10 to 1.1e12 in magnitude.
const MIN_EXP: i32 = -30;
const MAX_EXP: i32 = 40;
const HALF: usize = (MAX_EXP - MIN_EXP) as usize * SUBS;
/// Negative magnitudes, a zero bucket, positive magnitudes.
const BUCKETS: usize = 2 * HALF + 1;
/// The sliding window is split into this many age slots; the oldest is
/// cleared each time a quarter of the window passes.
pub(crate) const SLOTS: usize = 4;

struct SummaryCore {
    counts: Box<[AtomicU32]>,
    current: AtomicUsize,
    sum_bits: AtomicU64,
    count: AtomicU64,
    nonfinite: AtomicU64,
}

/// Quantiles over a sliding time window, as the summary reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SummaryQuantiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
}

/// Observations summarised as p50/p90/p99 over a sliding time window, plus
/// an all-time sum and count. Cloning shares the data.
///
/// Observations go into a log-linear sketch (16 sub-buckets per power of
/// two, so quantiles carry at most ≈ 3 % relative error, over magnitudes
/// 1e-9 to 1e12; values beyond are clamped to the end buckets). The window
/// (set with [`EngineBuilder::summary_window`](crate::EngineBuilder::summary_window),
/// default 60 s) is kept as four age slots: the engine's worker retires the
/// oldest slot every quarter window, so a quantile covers between ¾ of the
/// window and all of it.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let size = engine.summary("message_size_bytes")?;
/// for v in 1..=100 { size.observe(f64::from(v)); }
/// let p90 = size.quantile(0.9).unwrap();
/// assert!((p90 - 90.0).abs() <= 90.0 * 0.035, "{p90}");
/// assert_eq!(size.count(), 100);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a summary does nothing unless you observe values"]
pub struct Summary {
    core: Arc<SummaryCore>,
}

#[inline]
fn bucket_of(v: f64) -> usize {
    let mag = v.abs();
    let bits = mag.to_bits();
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exp < MIN_EXP {
        return HALF; // zero and tiny magnitudes
    }
    #[allow(clippy::cast_possible_truncation)]
    let (exp, sub) = if exp >= MAX_EXP {
        (MAX_EXP - 1, SUBS - 1)
    } else {
        (exp, ((bits >> (52 - SUB_BITS)) as usize) & (SUBS - 1))
    };
    #[allow(clippy::cast_sign_loss)]
    let k = (exp - MIN_EXP) as usize * SUBS + sub;
    if v.is_sign_negative() { HALF - 1 - k } else { HALF + 1 + k }
}

/// The representative (midpoint) value of a bucket.
fn value_of(bucket: usize) -> f64 {
    if bucket == HALF {
        return 0.0;
    }
    let (k, sign) =
        if bucket > HALF { (bucket - HALF - 1, 1.0) } else { (HALF - 1 - bucket, -1.0) };
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let exp = (k / SUBS) as i32 + MIN_EXP;
    #[allow(clippy::cast_precision_loss)]
    let frac = 1.0 + ((k % SUBS) as f64 + 0.5) / SUBS as f64;
    sign * 2f64.powi(exp) * frac
}

impl Summary {
    /// A detached summary (its window only slides when an engine owns it).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Summary::detached();
    /// s.observe(2.0);
    /// assert_eq!(s.count(), 1);
    /// ```
    pub fn detached() -> Self {
        Summary {
            core: Arc::new(SummaryCore {
                counts: (0..SLOTS * BUCKETS).map(|_| AtomicU32::new(0)).collect(),
                current: AtomicUsize::new(0),
                sum_bits: AtomicU64::new(0f64.to_bits()),
                count: AtomicU64::new(0),
                nonfinite: AtomicU64::new(0),
            }),
        }
    }

    /// Records one observation. Non-finite values are dropped and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Summary::detached();
    /// s.observe(f64::NAN);
    /// assert_eq!((s.count(), s.dropped()), (0, 1));
    /// ```
    #[inline]
    pub fn observe(&self, v: f64) {
        let core = &*self.core;
        if !v.is_finite() {
            core.nonfinite.fetch_add(1, Relaxed);
            return;
        }
        let slot = core.current.load(Relaxed) % SLOTS;
        core.counts[slot * BUCKETS + bucket_of(v)].fetch_add(1, Relaxed);
        core.count.fetch_add(1, Relaxed);
        atomic_add_f64(&core.sum_bits, v);
    }

    /// Quantile `q` (0..=1) over the current window; `None` if the window is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Summary::detached();
    /// assert_eq!(s.quantile(0.5), None);
    /// s.observe(10.0);
    /// assert!((s.quantile(0.5).unwrap() - 10.0).abs() < 0.35);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let merged = self.merged();
        quantile_of(&merged, q)
    }

    /// Number of observations ever recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Summary::detached();
    /// s.observe(1.0);
    /// assert_eq!(s.count(), 1);
    /// ```
    pub fn count(&self) -> u64 {
        self.core.count.load(Relaxed)
    }

    /// Sum of all observations ever recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Summary::detached();
    /// s.observe(1.5);
    /// s.observe(2.0);
    /// assert_eq!(s.sum(), 3.5);
    /// ```
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.core.sum_bits.load(Relaxed))
    }

    /// How many non-finite observations were dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::Summary::detached().dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.core.nonfinite.load(Relaxed)
    }

    fn merged(&self) -> Vec<u64> {
        let mut merged = vec![0u64; BUCKETS];
        for slot in 0..SLOTS {
            let base = slot * BUCKETS;
            for (m, c) in merged.iter_mut().zip(&self.core.counts[base..base + BUCKETS]) {
                *m += u64::from(c.load(Relaxed));
            }
        }
        merged
    }

    /// p50, p90 and p99 over the window, `None` if it is empty.
    pub(crate) fn quantiles(&self) -> Option<SummaryQuantiles> {
        let merged = self.merged();
        Some(SummaryQuantiles {
            p50: quantile_of(&merged, 0.5)?,
            p90: quantile_of(&merged, 0.9)?,
            p99: quantile_of(&merged, 0.99)?,
        })
    }

    /// Retires the oldest age slot: it is cleared and becomes the one written to.
    pub(crate) fn rotate(&self) {
        let core = &*self.core;
        let next = (core.current.load(Relaxed) + 1) % SLOTS;
        for c in &core.counts[next * BUCKETS..(next + 1) * BUCKETS] {
            c.store(0, Relaxed);
        }
        core.current.store(next, Relaxed);
    }

    pub(crate) fn same_as(&self, other: &Summary) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

fn quantile_of(merged: &[u64], q: f64) -> Option<f64> {
    let total: u64 = merged.iter().sum();
    if total == 0 || !q.is_finite() {
        return None;
    }
    // nearest rank: the smallest bucket whose cumulative count reaches ceil(q * total)
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut cumulative = 0;
    for (i, &c) in merged.iter().enumerate() {
        cumulative += c;
        if cumulative >= rank {
            return Some(value_of(i));
        }
    }
    None
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary").field("count", &self.count()).field("sum", &self.sum()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_slides() {
        let s = Summary::detached();
        for _ in 0..100 {
            s.observe(1.0);
        }
        for _ in 0..(SLOTS - 1) {
            s.rotate();
        }
        assert!((s.quantile(0.5).unwrap() - 1.0).abs() < 0.04);
        s.rotate(); // the slot holding the 1.0s is retired
        assert_eq!(s.quantile(0.5), None);
        s.observe(100.0);
        assert!((s.quantile(0.99).unwrap() - 100.0).abs() < 3.5);
        assert_eq!(s.count(), 101);
        assert!(s.same_as(&s.clone()));
    }

    #[test]
    fn negative_and_zero_values_order_correctly() {
        let s = Summary::detached();
        for v in [-5.0, 0.0, 5.0] {
            s.observe(v);
        }
        assert!(s.quantile(0.0).unwrap() < -4.8);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!(s.quantile(1.0).unwrap() > 4.8);
    }

    proptest! {
        #[test]
        fn relative_error_is_bounded(v in 1e-9f64..1e12) {
            let s = Summary::detached();
            s.observe(v);
            let got = s.quantile(0.5).unwrap();
            prop_assert!((got - v).abs() <= v / 30.0, "{} vs {}", got, v);
        }

        #[test]
        fn bucket_order_is_monotonic(a in -1e12f64..1e12, b in -1e12f64..1e12) {
            if a < b { prop_assert!(bucket_of(a) <= bucket_of(b)); }
        }
    }
}
