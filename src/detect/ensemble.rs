//! The default detector: cheap members, consensus, likelihood, refractory period.

use super::breakout::RangeBreakout;
use super::likelihood::{AnomalyLikelihood, LikelihoodConfig};
use super::{
    DEFAULT_THRESHOLD, Detector, EwmaBand, EwmaConfig, RobustZ, RobustZConfig, SeasonalConfig,
    SeasonalProfile, check_f64, check_usize, clean_input, unit,
};
use crate::Result;

/// How fast the typical sampling step follows the stream (per point).
const STEP_RATE: f64 = 0.05;

/// Weight of the second strongest member in the consensus.
const SECOND_WEIGHT: f64 = 0.5;
/// The consensus is divided by this, so that one member alone needs a
/// likelihood score of `1.2 × threshold` and two members agreeing need less.
const CONSENSUS_SCALE: f64 = 1.2;

/// Settings of [`Ensemble`]: its members' settings plus how they are combined.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{EnsembleConfig, RobustZConfig};
///
/// let cfg = EnsembleConfig::default()
///     .with_refractory(50)?
///     .with_robust(RobustZConfig::default().with_window(64)?);
/// assert!(EnsembleConfig::default().with_refractory(10_000_000).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleConfig {
    robust: RobustZConfig,
    ewma: EwmaConfig,
    seasonal: SeasonalConfig,
    weekly: Option<SeasonalConfig>,
    likelihood: LikelihoodConfig,
    breakout_margin: f64,
    breakout_window: usize,
    breakout_warmup: usize,
    refractory: usize,
    threshold: f64,
    relative_floor: f64,
    breakthrough: bool,
}

impl Default for EnsembleConfig {
    /// Default members (the seasonal ones: a daily profile in 48 half-hour
    /// buckets and a weekly one in 168 hourly buckets) and likelihood; a range
    /// breakout beyond 10 % of the
    /// range of the last 4 096 points (after 150 points) flags at once; a
    /// refractory period of 150 points after a score reaches
    /// [`DEFAULT_THRESHOLD`].
    fn default() -> Self {
        EnsembleConfig {
            robust: RobustZConfig::default(),
            ewma: EwmaConfig::default(),
            seasonal: SeasonalConfig::default(),
            weekly: Some(weekly_default()),
            likelihood: LikelihoodConfig::default(),
            breakout_margin: 0.1,
            breakout_window: 4096,
            breakout_warmup: 150,
            refractory: 150,
            threshold: DEFAULT_THRESHOLD,
            relative_floor: 0.01,
            breakthrough: true,
        }
    }
}

impl EnsembleConfig {
    /// Sets how many points after a detection score 0 (0..=1 000 000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `refractory` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EnsembleConfig::default().with_refractory(0).is_ok());
    /// ```
    pub fn with_refractory(mut self, points: usize) -> Result<Self> {
        self.refractory = check_usize("refractory", points, 0, 1_000_000)?;
        Ok(self)
    }

    /// Sets the score that starts a refractory period (0.01..=1); use the
    /// threshold the scores will be compared with.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `threshold` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EnsembleConfig::default().with_threshold(2.0).is_err());
    /// ```
    pub fn with_threshold(mut self, threshold: f64) -> Result<Self> {
        self.threshold = check_f64("threshold", threshold, 0.01, 1.0)?;
        Ok(self)
    }

    /// Whether a new extreme (a range breakout) is flagged even during a
    /// refractory period. Default on.
    ///
    /// # Examples
    ///
    /// ```
    /// let cfg = watchpost::detect::EnsembleConfig::default().with_breakthrough(false);
    /// ```
    #[must_use]
    pub fn with_breakthrough(mut self, on: bool) -> Self {
        self.breakthrough = on;
        self
    }

    /// Sets the relative floor (0..=1): a value closer to the rolling median
    /// than this fraction of the median's magnitude is never anomalous (nor
    /// one closer than the smallest step the series has shown).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `relative_floor` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EnsembleConfig::default().with_relative_floor(0.01).is_ok());
    /// ```
    pub fn with_relative_floor(mut self, fraction: f64) -> Result<Self> {
        self.relative_floor = check_f64("relative_floor", fraction, 0.0, 1.0)?;
        Ok(self)
    }

    /// Sets how far beyond the recent range, as a fraction of its width, a
    /// value must fall to be flagged at once (0.001..=1000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `breakout_margin` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EnsembleConfig::default().with_breakout_margin(0.25).is_ok());
    /// ```
    pub fn with_breakout_margin(mut self, margin: f64) -> Result<Self> {
        self.breakout_margin = check_f64("breakout_margin", margin, 0.001, 1000.0)?;
        Ok(self)
    }

    /// Sets how many recent points define the range for breakouts
    /// (64..=262 144, rounded up to a multiple of 64).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `breakout_window` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EnsembleConfig::default().with_breakout_window(10).is_err());
    /// ```
    pub fn with_breakout_window(mut self, points: usize) -> Result<Self> {
        self.breakout_window = check_usize("breakout_window", points, 64, 1 << 18)?;
        Ok(self)
    }

    /// Uses these settings for the robust z-score member.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, RobustZConfig};
    /// let cfg = EnsembleConfig::default().with_robust(RobustZConfig::default());
    /// ```
    #[must_use]
    pub fn with_robust(mut self, cfg: RobustZConfig) -> Self {
        self.robust = cfg;
        self
    }

    /// Uses these settings for the EWMA member.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, EwmaConfig};
    /// let cfg = EnsembleConfig::default().with_ewma(EwmaConfig::default().with_span(32.0)?);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn with_ewma(mut self, cfg: EwmaConfig) -> Self {
        self.ewma = cfg;
        self
    }

    /// Uses these settings for the seasonal member.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, SeasonalConfig};
    /// let weekly = SeasonalConfig::default().with_period_ms(7 * 86_400_000)?.with_buckets(168)?;
    /// let cfg = EnsembleConfig::default().with_seasonal(weekly);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn with_seasonal(mut self, cfg: SeasonalConfig) -> Self {
        self.seasonal = cfg;
        self
    }

    /// Uses these settings for the second seasonal member (by default a
    /// weekly profile in 168 hourly buckets).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, SeasonalConfig};
    /// let monthly = SeasonalConfig::default().with_period_ms(30 * 86_400_000)?.with_buckets(30)?;
    /// let cfg = EnsembleConfig::default().with_weekly(monthly);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn with_weekly(mut self, cfg: SeasonalConfig) -> Self {
        self.weekly = Some(cfg);
        self
    }

    /// Drops the second seasonal member (saves about 2.8 KB per series).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{Detector, Ensemble, EnsembleConfig};
    /// let small = Ensemble::new(EnsembleConfig::default().without_weekly());
    /// let full = Ensemble::new(EnsembleConfig::default());
    /// assert!(small.memory_bytes() < full.memory_bytes());
    /// ```
    #[must_use]
    pub fn without_weekly(mut self) -> Self {
        self.weekly = None;
        self
    }

    /// Uses these settings for the likelihood normalisation of each member.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, LikelihoodConfig};
    /// let l = LikelihoodConfig::default().with_long_window(8_640)?;
    /// let cfg = EnsembleConfig::default().with_likelihood(l);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn with_likelihood(mut self, cfg: LikelihoodConfig) -> Self {
        self.likelihood = cfg;
        self
    }
}

/// The default detector: four cheap members, each normalised to an anomaly
/// likelihood, combined by consensus, plus an immediate range-breakout check
/// and a refractory period.
///
/// Per point:
///
/// 1. [`RobustZ`], [`EwmaBand`] and two [`SeasonalProfile`]s (daily and
///    weekly) score the value against what they have learnt so far (each maps
///    its distance `z` to `z² / (z² + sigmas²)`, 0.5 at its `sigmas`).
/// 2. Each member's score goes through its own [`AnomalyLikelihood`], so a
///    member that is always noisy on this series carries little weight and a
///    quiet one that suddenly deviates carries a lot.
/// 3. Consensus: `(strongest + second strongest / 2) / 1.2`. One member alone
///    needs strong evidence; two that agree need less.
/// 4. A value beyond the minimum or maximum of the last 4 096 points by more
///    than 10 % of that range scores 1 at once (a new extreme).
/// 5. After a score reaches the threshold, the next `refractory` points score
///    0, so one incident reads as one detection.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{DEFAULT_THRESHOLD, Detector, Ensemble};
///
/// let mut d = Ensemble::new(Default::default());
/// let mut hits = 0;
/// for i in 0..3_000_i64 {
///     let v = if (2_000..2_010).contains(&i) { 80.0 } else { 20.0 + (i % 10) as f64 };
///     if d.update(i * 300_000, v) >= DEFAULT_THRESHOLD {
///         hits += 1;
///     }
/// }
/// assert_eq!(hits, 1);
/// assert!(d.memory_bytes() < 9 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Ensemble {
    cfg: Settings,
    robust: RobustZ,
    ewma: EwmaBand,
    seasonal: SeasonalProfile,
    weekly: Option<SeasonalProfile>,
    likelihood: [AnomalyLikelihood; 4],
    breakout: RangeBreakout,
    quiet_for: usize,
    last_score: f64,
    /// The previous value, and the smallest non-zero step between two values.
    previous: f64,
    resolution: f64,
    /// Time of the previous point, and the log of the typical (geometric
    /// mean) step between points with distinct timestamps.
    previous_ms: Option<i64>,
    log_step: f64,
    /// `exp(log_step)`, and the last distinct step with its logarithm.
    step: f64,
    last_dt: (f64, f64),
    /// `last_dt.0 / step`, kept while neither changes.
    ratio: f64,
    /// Whether the last point broke out of the recent range.
    broke_out: bool,
}

/// The ensemble's own settings (its members keep theirs).
#[derive(Debug, Clone, Copy)]
struct Settings {
    threshold: f64,
    relative_floor: f64,
    breakout_margin: f64,
    refractory: usize,
    breakthrough: bool,
}

impl Ensemble {
    /// Builds the ensemble.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::Ensemble::new(Default::default());
    /// ```
    pub fn new(cfg: EnsembleConfig) -> Self {
        Ensemble {
            robust: RobustZ::new(cfg.robust),
            ewma: EwmaBand::new(cfg.ewma),
            seasonal: SeasonalProfile::new(cfg.seasonal),
            weekly: cfg.weekly.map(SeasonalProfile::new),
            likelihood: std::array::from_fn(|_| AnomalyLikelihood::new(cfg.likelihood.clone())),
            breakout: RangeBreakout::new(cfg.breakout_window.div_ceil(64), cfg.breakout_warmup),
            quiet_for: 0,
            last_score: 0.0,
            previous: f64::NAN,
            resolution: f64::INFINITY,
            previous_ms: None,
            log_step: f64::NAN,
            step: f64::NAN,
            last_dt: (f64::NAN, f64::NAN),
            ratio: f64::NAN,
            broke_out: false,
            cfg: Settings {
                threshold: cfg.threshold,
                relative_floor: cfg.relative_floor,
                breakout_margin: cfg.breakout_margin,
                refractory: cfg.refractory,
                breakthrough: cfg.breakthrough,
            },
        }
    }

    /// The score of the last point before the refractory period applied
    /// (what the point would have scored had there been no recent detection).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{Detector, Ensemble};
    /// let mut d = Ensemble::new(Default::default());
    /// d.update(0, 1.0);
    /// assert_eq!(d.unsuppressed_score(), 0.0);
    /// ```
    pub fn unsuppressed_score(&self) -> f64 {
        self.last_score
    }

    /// Whether a refractory period is running (scores are held at 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::Ensemble::new(Default::default());
    /// assert!(!d.in_refractory_period());
    /// ```
    pub fn in_refractory_period(&self) -> bool {
        self.quiet_for > 0
    }

    /// The smallest deviation that can count: the series' resolution (its
    /// smallest step so far) or the relative floor of its level.
    fn floor(&self) -> f64 {
        let center = self.robust.center();
        let relative =
            if center.is_finite() { self.cfg.relative_floor * center.abs() } else { 0.0 };
        let resolution = if self.resolution.is_finite() { self.resolution } else { 0.0 };
        relative.max(resolution)
    }

    /// How many typical sampling steps separate `t` from the previous point
    /// (at least 1), learning the typical step from the stream itself.
    ///
    /// On a regular stream the step repeats, so its logarithm and the
    /// typical step are reused rather than recomputed.
    fn steps_since(&mut self, t: i64) -> f64 {
        let Some(last) = self.previous_ms.replace(t) else { return 1.0 };
        #[allow(clippy::cast_precision_loss)] // a step in ms
        let dt = t.saturating_sub(last) as f64;
        if dt <= 0.0 {
            return 1.0; // a duplicate or out-of-order timestamp
        }
        if self.log_step.is_nan() {
            self.log_step = dt.ln();
            self.step = dt;
            self.last_dt = (dt, self.log_step);
            self.ratio = 1.0;
            return 1.0;
        }
        if dt.to_bits() != self.last_dt.0.to_bits() {
            self.last_dt = (dt, dt.ln());
            self.ratio = dt / self.step;
        }
        let ratio = self.ratio;
        let next = self.log_step + STEP_RATE * (self.last_dt.1 - self.log_step);
        if next.to_bits() != self.log_step.to_bits() {
            self.log_step = next;
            self.step = next.exp();
            self.ratio = dt / self.step;
        }
        ratio.max(1.0)
    }

    fn combined(&mut self, t: i64, x: f64) -> f64 {
        let floor = self.floor();
        // After a gap the point-count members' expectations are stale: a
        // deviation is judged as if spread over the missed steps (a random
        // walk's spread grows with the square root of the time).
        let steps = self.steps_since(t);
        // `steps` is at least 1: exactly one step needs no square root
        let shrink = if steps <= 1.0 { 1.0 } else { steps.sqrt().recip() };
        let (center, mean) = (self.robust.center(), self.ewma.expectation());
        // a deviation below the floor is no deviation
        let gate = |score: f64, expected: f64| {
            if !score.is_nan() && (x - expected).abs() < floor { 0.0 } else { score }
        };
        let day = self.seasonal.bucket(t);
        let week = self.weekly.as_ref().map_or(0, |w| w.bucket(t));
        let seasonal = self.seasonal.member_score_in(day, t, x);
        let members = [
            gate(self.robust.member_score(center + (x - center) * shrink), center),
            gate(self.ewma.member_score(mean + (x - mean) * shrink), mean),
            gate(seasonal.0, seasonal.1),
            self.weekly.as_ref().map_or(f64::NAN, |w| {
                let (score, expected) = w.member_score_in(week, t, x);
                gate(score, expected)
            }),
        ];
        let breakout = self.breakout.excess(x, floor) >= self.cfg.breakout_margin;
        // to break through a refractory period, the robust member must also
        // see the value outside its band (consensus)
        let strong = members[0] >= 0.3 || members[0].is_nan();
        let step = (x - self.previous).abs();
        if step > 0.0 && step < self.resolution {
            self.resolution = step;
        }
        self.previous = x;
        self.robust.learn(x);
        self.ewma.learn_after(x, steps);
        self.seasonal.learn_in(day, t, x);
        if let Some(w) = &mut self.weekly {
            w.learn_in(week, t, x);
        }
        self.breakout.learn(x);
        let (mut first, mut second) = (0.0_f64, 0.0_f64);
        for (raw, likelihood) in members.into_iter().zip(&mut self.likelihood) {
            // a member's likelihood starts learning once the member is warm
            if raw.is_nan() {
                continue;
            }
            let s = likelihood.update(raw);
            if s > first {
                second = first;
                first = s;
            } else if s > second {
                second = s;
            }
        }
        self.broke_out = breakout && strong;
        if breakout {
            return 1.0;
        }
        unit((first + SECOND_WEIGHT * second) / CONSENSUS_SCALE)
    }
}

impl Detector for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }

    fn update(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        let Some(x) = clean_input(value) else { return 0.0 };
        let score = self.combined(timestamp_ms, x);
        self.last_score = score;
        if self.quiet_for > 0 {
            self.quiet_for -= 1;
            // a new extreme breaks through (ARTime's masking lets a stronger
            // anomaly through); anything else is the same incident
            if !(self.cfg.breakthrough && self.broke_out) {
                return 0.0;
            }
        }
        if score >= self.cfg.threshold {
            self.quiet_for = self.cfg.refractory;
        }
        score
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        self.robust.expected_band()
    }

    fn reset(&mut self) {
        self.robust.reset();
        self.ewma.reset();
        self.seasonal.reset();
        if let Some(w) = &mut self.weekly {
            w.reset();
        }
        for l in &mut self.likelihood {
            l.reset();
        }
        self.breakout.reset();
        self.quiet_for = 0;
        self.last_score = 0.0;
        self.previous = f64::NAN;
        self.resolution = f64::INFINITY;
        self.previous_ms = None;
        self.log_step = f64::NAN;
        self.step = f64::NAN;
        self.last_dt = (f64::NAN, f64::NAN);
        self.ratio = f64::NAN;
        self.broke_out = false;
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + heap_bytes(&self.robust)
            + heap_bytes(&self.seasonal)
            + self.weekly.as_ref().map_or(0, heap_bytes)
            + self
                .likelihood
                .iter()
                .map(|l| l.memory_bytes() - std::mem::size_of::<AnomalyLikelihood>())
                .sum::<usize>()
            + self.breakout.heap_bytes()
    }
}

/// A weekly profile in 168 hourly buckets.
fn weekly_default() -> SeasonalConfig {
    SeasonalConfig::default()
        .with_period_ms(7 * 86_400_000)
        .and_then(|c| c.with_buckets(168))
        .expect("valid weekly settings")
}

/// Heap bytes of a member (its reported memory minus its inline size).
fn heap_bytes<D: Detector>(d: &D) -> usize {
    d.memory_bytes() - std::mem::size_of::<D>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::*;

    fn det() -> Ensemble {
        Ensemble::new(EnsembleConfig::default())
    }

    #[test]
    fn flags_a_spike_once() {
        let scores = run(&mut det(), &noisy_with_spike(3_000, 2_000, 30.0));
        assert!(scores[2_000] >= DEFAULT_THRESHOLD, "{}", scores[2_000]);
        assert!(max_excluding(&scores, 2_000..2_001, 0) < DEFAULT_THRESHOLD);
    }

    #[test]
    fn constant_series_never_fires() {
        assert!(run(&mut det(), &vec![1.0; 5_000]).iter().all(|&s| s < 0.1));
    }

    #[test]
    fn a_level_change_does_not_score_high_forever() {
        let scores = run(&mut det(), &step(6_000, 2_000, 15.0));
        assert!(scores[2_000..2_010].iter().any(|&s| s >= DEFAULT_THRESHOLD));
        assert!(scores[3_000..].iter().all(|&s| s < DEFAULT_THRESHOLD));
    }

    #[test]
    fn daily_pattern_without_anomaly_stays_quiet() {
        let scores = run(&mut det(), &daily(288 * 14));
        assert!(max_excluding(&scores, 0..0, 0) < DEFAULT_THRESHOLD);
    }

    #[test]
    fn slow_drift_stays_quiet() {
        let scores = run(&mut det(), &drift(5_000, 0.002));
        assert!(max_excluding(&scores, 0..0, 0) < DEFAULT_THRESHOLD);
    }

    #[test]
    fn non_finite_and_huge_values() {
        check_robust_to_bad_input(&mut det());
    }

    #[test]
    fn reset_is_a_fresh_detector() {
        // irregular steps, a gap, a long short window (kept on the heap),
        // one or two seasonal members
        let long_short = LikelihoodConfig::default().with_short_window(40).expect("valid");
        let configs = [
            EnsembleConfig::default(),
            EnsembleConfig::default().without_weekly().with_likelihood(long_short),
        ];
        let values = noisy_with_spike(4_000, 3_000, 40.0);
        let t = |i: usize| {
            let i = i64::try_from(i).expect("small");
            i * 60_000 + (i % 7) * 1_000 + if i > 2_000 { 86_400_000 } else { 0 }
        };
        for cfg in configs {
            let mut used = Ensemble::new(cfg.clone());
            for (i, &v) in values.iter().enumerate() {
                used.update(t(i), v);
            }
            used.reset();
            let mut fresh = Ensemble::new(cfg);
            for (i, &v) in values.iter().enumerate() {
                let (a, b) = (used.update(t(i), v), fresh.update(t(i), v));
                assert_eq!(a.to_bits(), b.to_bits(), "point {i}");
            }
            assert_eq!(used.memory_bytes(), fresh.memory_bytes());
        }
    }
}
