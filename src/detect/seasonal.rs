//! A learnt time-of-day profile: per-bucket means and spreads.

use super::{Detector, check_f64, check_usize, clean_input, floor_spread, z_to_unit};
use crate::{Error, Result};

/// Settings of [`SeasonalProfile`]; every setter validates its argument.
///
/// # Examples
///
/// ```
/// use watchpost::detect::SeasonalConfig;
///
/// let hourly = SeasonalConfig::default().with_period_ms(3_600_000)?.with_buckets(60)?;
/// assert!(SeasonalConfig::default().with_period_ms(0).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalConfig {
    period_ms: i64,
    buckets: usize,
    alpha: f64,
    sigmas: f64,
    min_count: u32,
}

impl Default for SeasonalConfig {
    /// A one-day period in 48 buckets of 30 minutes, each period's visit moving
    /// a bucket's profile a fifth of the way to what it saw, score 0.5 at 4
    /// sigmas, 4 points per bucket before scoring.
    fn default() -> Self {
        SeasonalConfig { period_ms: 86_400_000, buckets: 48, alpha: 0.2, sigmas: 4.0, min_count: 4 }
    }
}

impl SeasonalConfig {
    /// Sets the period of the pattern in milliseconds (1 s ..= 365 days).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `period_ms` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let weekly = watchpost::detect::SeasonalConfig::default().with_period_ms(7 * 86_400_000)?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn with_period_ms(mut self, period_ms: i64) -> Result<Self> {
        const MAX: i64 = 365 * 86_400_000;
        if !(1_000..=MAX).contains(&period_ms) {
            return Err(Error::InvalidConfig {
                field: "period_ms",
                reason: format!("must be in 1000..={MAX}, got {period_ms}"),
            });
        }
        self.period_ms = period_ms;
        Ok(self)
    }

    /// Sets how many buckets the period is split into (2..=1440).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `buckets` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::SeasonalConfig::default().with_buckets(1).is_err());
    /// ```
    pub fn with_buckets(mut self, buckets: usize) -> Result<Self> {
        self.buckets = check_usize("buckets", buckets, 2, 1440)?;
        Ok(self)
    }

    /// Sets how far one period's visit moves a bucket's profile towards the
    /// values it saw (0.001..=1), whatever the sampling rate: with `n` points
    /// per visit each point moves it by `1 - (1 - alpha)^(1/n)`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `alpha` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::SeasonalConfig::default().with_alpha(0.05).is_ok());
    /// ```
    pub fn with_alpha(mut self, alpha: f64) -> Result<Self> {
        self.alpha = check_f64("alpha", alpha, 0.001, 1.0)?;
        Ok(self)
    }

    /// Sets the distance, in standard deviations, that scores 0.5 (0.1..=1000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `sigmas` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::SeasonalConfig::default().with_sigmas(3.0).is_ok());
    /// ```
    pub fn with_sigmas(mut self, sigmas: f64) -> Result<Self> {
        self.sigmas = check_f64("sigmas", sigmas, 0.1, 1000.0)?;
        Ok(self)
    }
}

/// One bucket of a profile, 16 bytes so a point touches one cache line: its
/// mean, its mean absolute deviation (`f32`: a spread needs no more) and how
/// many points it has learnt (saturating; only small counts matter).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    mean: f64,
    dev: f32,
    count: u16,
}

/// Learns the typical value and spread of each time-of-period bucket (by
/// default each half hour of the day) from the timestamps, and scores a point
/// by its distance from its bucket's profile. A bucket scores only after it
/// has seen a few points and a full period has passed.
///
/// O(1) time per point; memory: three values per bucket.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{Detector, SeasonalProfile};
///
/// let mut d = SeasonalProfile::new(Default::default());
/// let hour = 3_600_000_i64;
/// let busy = |t: i64| if (t / hour) % 24 >= 12 { 100.0 } else { 10.0 };
/// for h in 0..24 * 7 {
///     d.update(h * hour, busy(h * hour));
/// }
/// let t = 24 * 7 * hour; // midnight: quiet hours
/// assert!(d.update(t, 100.0) > 0.9);
/// ```
#[derive(Debug, Clone)]
pub struct SeasonalProfile {
    cfg: SeasonalConfig,
    buckets: Vec<Bucket>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    step_ms: f64,
    point_rate: f64,
    steps: u64,
    last_bucket: usize,
    /// The times `[from, to)` that fall in the bucket of the last point
    /// learnt, so that the next points of a regular stream find their bucket
    /// without a division.
    span: (i64, i64),
    global_dev: f64,
    ready: bool,
}

impl SeasonalProfile {
    /// Builds the detector.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::SeasonalProfile::new(Default::default());
    /// ```
    pub fn new(cfg: SeasonalConfig) -> Self {
        let n = cfg.buckets;
        SeasonalProfile {
            point_rate: cfg.alpha,
            buckets: vec![Bucket::default(); n],
            first_ms: None,
            last_ms: None,
            step_ms: f64::NAN,
            steps: 0,
            last_bucket: 0,
            span: (0, 0),
            global_dev: 0.0,
            ready: false,
            cfg,
        }
    }

    /// The bucket of `t`: the last point's when `t` falls in the same
    /// stretch of time, else [`Self::bucket_of`].
    pub(crate) fn bucket(&self, t: i64) -> usize {
        if self.span.0 <= t && t < self.span.1 { self.last_bucket } else { self.bucket_of(t) }
    }

    /// The bucket of `t`, computed. The phase is below a year in ms and the
    /// buckets at most 1 440, so the product stays far inside `i64`.
    fn bucket_of(&self, t: i64) -> usize {
        let phase = t.rem_euclid(self.cfg.period_ms);
        let buckets = i64::try_from(self.cfg.buckets).unwrap_or(1);
        let b = phase.saturating_mul(buckets) / self.cfg.period_ms;
        usize::try_from(b).unwrap_or(0).min(self.cfg.buckets - 1)
    }

    /// The times `[from, to)` around `t` that fall in bucket `b` (the bucket
    /// of `t`); empty where they would leave the range of `i64`.
    fn span_of(&self, b: usize, t: i64) -> (i64, i64) {
        let period = self.cfg.period_ms;
        let buckets = i64::try_from(self.cfg.buckets).unwrap_or(1);
        let b = i64::try_from(b).unwrap_or(0);
        // bucket b holds the phases p with b * period <= p * buckets < (b + 1) * period
        let first = |b: i64| (b * period + buckets - 1) / buckets;
        let start = t.checked_sub(t.rem_euclid(period));
        start
            .and_then(|s| Some((s.checked_add(first(b))?, s.checked_add(first(b + 1))?)))
            .unwrap_or_default()
    }

    fn spread(&self, b: usize) -> f64 {
        // mean absolute deviation to sigma, never far below the typical residual
        let s = (f64::from(self.buckets[b].dev) * 1.2533).max(0.5 * self.global_dev * 1.2533);
        floor_spread(s, self.buckets[b].mean)
    }

    /// Signed z of `x` at time `t`; NaN while the bucket is not ready.
    pub(crate) fn signed_z(&self, t: i64, x: f64) -> f64 {
        self.signed_z_in(self.bucket(t), t, x)
    }

    /// [`Self::signed_z`] with the bucket of `t` already known.
    fn signed_z_in(&self, b: usize, t: i64, x: f64) -> f64 {
        let warm = self.first_ms.is_some_and(|f| t.saturating_sub(f) >= self.cfg.period_ms);
        if !warm || u32::from(self.buckets[b].count) < self.cfg.min_count {
            return f64::NAN;
        }
        (x - self.buckets[b].mean) / self.spread(b)
    }

    /// The member score of `x` at `t` in `[0, 1)`, NaN while its bucket is
    /// not ready, with the bucket's mean; `b` is the bucket of `t` (see
    /// [`Self::bucket`]).
    pub(crate) fn member_score_in(&self, b: usize, t: i64, x: f64) -> (f64, f64) {
        let z = self.signed_z_in(b, t, x);
        let score = if z.is_nan() { f64::NAN } else { z_to_unit(z.abs(), self.cfg.sigmas) };
        (score, self.buckets[b].mean)
    }

    /// Follows the typical sampling step, and from it the learning rate per
    /// point that moves a bucket by `alpha` per visit.
    fn track_step(&mut self, t: i64) {
        if let Some(last) = self.last_ms.replace(t) {
            #[allow(clippy::cast_precision_loss)] // a step in ms, clamped to a period
            let dt = (t.saturating_sub(last)).clamp(0, self.cfg.period_ms) as f64;
            if dt > 0.0 {
                self.step_ms = if self.step_ms.is_nan() {
                    dt
                } else {
                    self.step_ms + 0.05 * (dt - self.step_ms)
                };
                self.steps = self.steps.wrapping_add(1);
                if self.steps < 64 || self.steps.is_multiple_of(64) {
                    #[allow(clippy::cast_precision_loss)] // a period in ms
                    let width = self.cfg.period_ms as f64 / super::window::as_f64(self.cfg.buckets);
                    let per_visit = (width / self.step_ms).max(1.0);
                    self.point_rate = 1.0 - (1.0 - self.cfg.alpha).powf(per_visit.recip());
                }
            }
        }
    }

    pub(crate) fn learn(&mut self, timestamp_ms: i64, value: f64) {
        self.learn_in(self.bucket(timestamp_ms), timestamp_ms, value);
    }

    /// [`Self::learn`] with the bucket of `timestamp_ms` already known.
    pub(crate) fn learn_in(&mut self, b: usize, timestamp_ms: i64, value: f64) {
        self.first_ms.get_or_insert(timestamp_ms);
        self.track_step(timestamp_ms);
        let bucket = &mut self.buckets[b];
        let rate = self.point_rate.max(1.0 / (f64::from(bucket.count) + 1.0));
        if bucket.count == 0 {
            bucket.mean = value;
        } else {
            let residual = value - bucket.mean;
            let dev = f64::from(bucket.dev);
            #[allow(clippy::cast_possible_truncation)] // clamped into f32's range
            {
                bucket.dev = (dev + rate * (residual.abs() - dev)).min(f64::from(f32::MAX)) as f32;
            }
            self.global_dev += 0.01 * (residual.abs() - self.global_dev);
            bucket.mean += rate * residual;
        }
        bucket.count = bucket.count.saturating_add(1);
        self.ready = u32::from(bucket.count) >= self.cfg.min_count;
        if !(self.span.0 <= timestamp_ms && timestamp_ms < self.span.1) {
            debug_assert_eq!(b, self.bucket_of(timestamp_ms));
            self.span = self.span_of(b, timestamp_ms);
        }
        self.last_bucket = b;
    }
}

impl Detector for SeasonalProfile {
    fn name(&self) -> &'static str {
        "seasonal"
    }

    fn update(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        let Some(x) = clean_input(value) else { return 0.0 };
        let score = z_to_unit(self.signed_z(timestamp_ms, x).abs(), self.cfg.sigmas);
        self.learn(timestamp_ms, x);
        score
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        let b = self.last_bucket;
        self.ready.then(|| {
            let k = self.cfg.sigmas * self.spread(b);
            (self.buckets[b].mean - k, self.buckets[b].mean + k)
        })
    }

    fn reset(&mut self) {
        *self = SeasonalProfile::new(self.cfg.clone());
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }
}

/// Fraction of buckets that are ready (for diagnostics and tests).
#[cfg(test)]
impl SeasonalProfile {
    fn coverage(&self) -> f64 {
        let ready =
            self.buckets.iter().filter(|b| u32::from(b.count) >= self.cfg.min_count).count();
        super::window::as_f64(ready) / super::window::as_f64(self.cfg.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::*;

    fn det() -> SeasonalProfile {
        SeasonalProfile::new(SeasonalConfig::default())
    }

    #[test]
    fn daily_pattern_is_learnt() {
        let mut d = det();
        let mut values = daily(288 * 10);
        // day 8: the afternoon peak goes missing
        for v in &mut values[288 * 8 + 40..288 * 8 + 100] {
            *v = 50.0;
        }
        let scores = run(&mut d, &values);
        assert!((d.coverage() - 1.0).abs() < 1e-9);
        assert!(max_excluding(&scores, 288 * 8..288 * 9, 288 * 3) < 0.6);
        assert!(scores[288 * 8 + 40..288 * 8 + 100].iter().copied().fold(0.0, f64::max) > 0.9);
    }

    #[test]
    fn flags_a_spike_against_its_hour() {
        let mut values = daily(288 * 6);
        values[288 * 5 + 100] += 15.0;
        let scores = run(&mut det(), &values);
        assert!(scores[288 * 5 + 100] > 0.9);
        assert!(max_excluding(&scores, 288 * 5 + 100..288 * 5 + 101, 288 * 2) < 0.6);
    }

    #[test]
    fn slow_drift_is_tracked() {
        let scores = run(&mut det(), &drift(288 * 8, 0.002));
        assert!(max_excluding(&scores, 0..0, 0) < 0.6);
    }

    #[test]
    fn learning_rate_follows_the_sampling_rate() {
        // one point a minute: 30 points per bucket visit
        let minute = 60_000_i64;
        let value = |m: i64| {
            let phase = super::super::window::as_f64(usize::try_from(m % 1_440).unwrap()) / 1_440.0;
            100.0 + 50.0 * (phase * std::f64::consts::TAU).sin()
        };
        let mut d = det();
        let mut worst = 0.0_f64;
        for m in 0..1_440 * 6 {
            let s = d.update(m * minute, value(m) + if m % 2 == 0 { 1.0 } else { -1.0 });
            if m > 1_440 * 2 {
                worst = worst.max(s);
            }
        }
        assert!(worst < 0.5, "{worst}");
        // the evening of day 7 stays at the morning level
        let evening = 1_440 * 6 + 1_080;
        let s = d.update(evening * minute, value(evening - 720));
        assert!(s > 0.9, "{s}");
    }

    #[test]
    fn nothing_is_scored_before_a_period() {
        let scores = run(&mut det(), &noisy_with_spike(280, 200, 100.0));
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn a_step_fades_out() {
        let scores = run(&mut det(), &step(288 * 8, 288 * 3, 20.0));
        assert!(scores[288 * 3] > 0.9);
        assert!(scores[288 * 6..].iter().all(|&s| s < 0.5));
    }

    #[test]
    fn non_finite_and_huge_values() {
        check_robust_to_bad_input(&mut det());
    }

    #[test]
    fn bucket_spans_at_the_edges_of_time() {
        let mut d = det();
        for t in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            d.learn(t, 1.0);
            assert_eq!(d.bucket(t), d.bucket_of(t), "{t}");
            assert!(d.span.0 <= d.span.1);
        }
    }

    proptest::proptest! {
        /// The remembered stretch of a bucket gives the same bucket as the
        /// division, whatever the steps (forward, backward, jumps) and the
        /// period and bucket count.
        #[test]
        fn remembered_bucket_is_the_computed_one(
            steps in proptest::collection::vec(-5_000_000i64..50_000_000, 1..200),
            start in -1_000_000_000_000i64..1_000_000_000_000,
            period_s in 1i64..1_000_000,
            buckets in 2usize..1_440,
        ) {
            let cfg = SeasonalConfig::default()
                .with_period_ms(period_s * 1_000 + 7)
                .and_then(|c| c.with_buckets(buckets))
                .expect("valid settings");
            let mut d = SeasonalProfile::new(cfg);
            let mut t = start;
            for dt in steps {
                t += dt;
                proptest::prop_assert_eq!(d.bucket(t), d.bucket_of(t));
                let b = d.bucket(t);
                d.learn_in(b, t, 1.0);
                // both ends of the remembered stretch agree with the division
                proptest::prop_assert_eq!(d.bucket_of(d.span.0), b);
                proptest::prop_assert_eq!(d.bucket_of(d.span.1 - 1), b);
                proptest::prop_assert_ne!(d.bucket_of(d.span.1), b);
                proptest::prop_assert_ne!(d.bucket_of(d.span.0 - 1), b);
            }
        }
    }
}
