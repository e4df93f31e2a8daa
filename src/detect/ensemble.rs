//! The default detector: cheap members, consensus, likelihood, refractory period.

use super::breakout::RangeBreakout;
use super::likelihood::{AnomalyLikelihood, LikelihoodConfig};
use super::{
    DEFAULT_THRESHOLD, Detector, EwmaBand, EwmaConfig, Novelty, NoveltyConfig, RobustZ,
    RobustZConfig, SeasonalConfig, SeasonalProfile, check_f64, check_usize, clean_input, unit,
    z_to_unit,
};
use crate::Result;

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
    novelty: NoveltyConfig,
    likelihood: LikelihoodConfig,
    refractory: usize,
    refractory_damping: f64,
    threshold: f64,
    tune: Tune,
}

/// Internal knobs of the combination step.
#[derive(Debug, Clone, PartialEq)]
struct Tune {
    member_sigmas: f64,
    w_robust: f64,
    w_ewma: f64,
    w_seasonal: f64,
    w_novelty: f64,
    combine: f64,
    breakout_margin: f64,
    breakout_blocks: f64,
}

impl Default for Tune {
    fn default() -> Self {
        Tune {
            member_sigmas: 4.0,
            w_robust: 1.0,
            w_ewma: 1.0,
            w_seasonal: 1.0,
            w_novelty: 1.0,
            combine: 0.0,
            breakout_margin: 0.1,
            breakout_blocks: 64.0,
        }
    }
}

impl Default for EnsembleConfig {
    /// Default members, default likelihood, a refractory period of 150 points
    /// at [`DEFAULT_THRESHOLD`].
    fn default() -> Self {
        EnsembleConfig {
            robust: RobustZConfig::default(),
            ewma: EwmaConfig::default(),
            seasonal: SeasonalConfig::default(),
            novelty: NoveltyConfig::default(),
            likelihood: LikelihoodConfig::default(),
            refractory: 150,
            refractory_damping: 0.0,
            threshold: DEFAULT_THRESHOLD,
            tune: Tune::default(),
        }
    }
}

impl EnsembleConfig {
    /// Sets how many points after a detection are damped (0..=1 000 000).
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

    /// Sets the score that starts a refractory period (0.01..=1).
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

    /// Uses these settings for the novelty member.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{EnsembleConfig, NoveltyConfig};
    /// let cfg = EnsembleConfig::default().with_novelty(NoveltyConfig::default().with_levels(8)?);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn with_novelty(mut self, cfg: NoveltyConfig) -> Self {
        self.novelty = cfg;
        self
    }

    /// Uses these settings for the likelihood normalisation.
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

    /// Sets an internal tuning knob by name (development aid).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] for an unknown name or a bad value.
    #[doc(hidden)]
    pub fn set_param(mut self, name: &str, value: f64) -> Result<Self> {
        let t = &mut self.tune;
        match name {
            "member_sigmas" => t.member_sigmas = value,
            "w_robust" => t.w_robust = value,
            "w_ewma" => t.w_ewma = value,
            "w_seasonal" => t.w_seasonal = value,
            "w_novelty" => t.w_novelty = value,
            "combine" => t.combine = value,
            "breakout_margin" => t.breakout_margin = value,
            "breakout_blocks" => t.breakout_blocks = value,
            "refractory_damping" => self.refractory_damping = value,
            "refractory" => self = self.with_refractory(to_usize(value))?,
            "threshold" => self = self.with_threshold(value)?,
            "robust_window" => self.robust = self.robust.with_window(to_usize(value))?,
            "ewma_span" => self.ewma = self.ewma.with_span(value)?,
            "seasonal_buckets" => self.seasonal = self.seasonal.with_buckets(to_usize(value))?,
            "seasonal_alpha" => self.seasonal = self.seasonal.with_alpha(value)?,
            "novelty_levels" => self.novelty = self.novelty.with_levels(to_usize(value))?,
            "novelty_order" => self.novelty = self.novelty.with_order(to_usize(value))?,
            "novelty_decay" => self.novelty = self.novelty.with_range_decay(value)?,
            "short_window" => {
                self.likelihood = self.likelihood.with_short_window(to_usize(value))?;
            }
            "long_window" => self.likelihood = self.likelihood.with_long_window(to_usize(value))?,
            "learning" => self.likelihood = self.likelihood.with_learning(to_usize(value))?,
            "min_std" => self.likelihood = self.likelihood.with_min_std(value)?,
            _ => {
                return Err(crate::Error::InvalidConfig {
                    field: "param",
                    reason: format!("unknown parameter {name:?}"),
                });
            }
        }
        Ok(self)
    }
}

/// Heap bytes of a member (its reported memory minus its inline size).
fn heap_bytes<D: Detector>(d: &D) -> usize {
    d.memory_bytes() - std::mem::size_of::<D>()
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // development aid only
fn to_usize(v: f64) -> usize {
    v.max(0.0) as usize
}

/// The default detector: four cheap members combined by consensus,
/// normalised to an anomaly likelihood, with a refractory period.
///
/// Per point, each member scores the value against what it has learnt so
/// far; the member scores are averaged into a raw score, the raw score is
/// normalised by an [`AnomalyLikelihood`], and after a score reaches the
/// threshold the following `refractory` points are damped, so one incident
/// reads as one detection.
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
/// assert!(d.memory_bytes() < 16 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Ensemble {
    cfg: EnsembleConfig,
    robust: RobustZ,
    ewma: EwmaBand,
    seasonal: SeasonalProfile,
    novelty: Novelty,
    likelihood: [AnomalyLikelihood; 4],
    breakout: RangeBreakout,
    quiet_for: usize,
    last_raw: f64,
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
            robust: RobustZ::new(cfg.robust.clone()),
            ewma: EwmaBand::new(cfg.ewma.clone()),
            seasonal: SeasonalProfile::new(cfg.seasonal.clone()),
            novelty: Novelty::new(cfg.novelty.clone()),
            likelihood: std::array::from_fn(|_| AnomalyLikelihood::new(cfg.likelihood.clone())),
            breakout: RangeBreakout::new(to_usize(cfg.tune.breakout_blocks), 150),
            quiet_for: 0,
            last_raw: 0.0,
            cfg,
        }
    }

    /// The combined score of the last point before the refractory period
    /// was applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::{Detector, Ensemble};
    /// let mut d = Ensemble::new(Default::default());
    /// d.update(0, 1.0);
    /// assert_eq!(d.last_raw_score(), 0.0);
    /// ```
    pub fn last_raw_score(&self) -> f64 {
        self.last_raw
    }

    fn combined(&mut self, t: i64, x: f64) -> f64 {
        let tune = &self.cfg.tune;
        let half = tune.member_sigmas;
        let unit_of = |z: f64| if z.is_nan() { f64::NAN } else { z_to_unit(z.abs(), half) };
        let raw = [
            unit_of(self.robust.signed_z(x)),
            unit_of(self.ewma.signed_z(x)),
            unit_of(self.seasonal.signed_z(t, x)),
            self.novelty.step(x),
        ];
        let excess = self.breakout.excess(x);
        self.breakout.learn(x);
        self.robust.learn(x);
        self.ewma.learn(x);
        self.seasonal.learn(t, x);
        let weights = [tune.w_robust, tune.w_ewma, tune.w_seasonal, tune.w_novelty];
        let mut scores = [0.0; 4];
        for i in 0..4 {
            // a member's likelihood starts learning once the member is warm
            if !raw[i].is_nan() {
                scores[i] = weights[i] * self.likelihood[i].update(raw[i]);
            }
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mode = tune.combine.max(0.0) as u32;
        let spatial = if excess >= tune.breakout_margin { 1.0 } else { 0.0 };
        let combined = match mode {
            1 => scores.iter().sum::<f64>() / weights.iter().sum::<f64>().max(1e-9),
            2 => {
                scores.sort_by(|a, b| b.total_cmp(a));
                scores[1]
            }
            _ => scores.iter().copied().fold(0.0, f64::max),
        };
        combined.max(spatial)
    }
}

impl Detector for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }

    fn update(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        let Some(x) = clean_input(value) else { return 0.0 };
        let score = unit(self.combined(timestamp_ms, x));
        self.last_raw = score;
        if self.quiet_for > 0 {
            self.quiet_for -= 1;
            return unit(score * self.cfg.refractory_damping);
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
        *self = Ensemble::new(self.cfg.clone());
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + heap_bytes(&self.robust)
            + heap_bytes(&self.seasonal)
            + heap_bytes(&self.novelty)
            + self.breakout.heap_bytes()
            + self
                .likelihood
                .iter()
                .map(|l| l.memory_bytes() - std::mem::size_of::<AnomalyLikelihood>())
                .sum::<usize>()
    }
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
}
