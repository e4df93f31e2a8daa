//! Exponentially weighted mean and variance with a control band.

use super::{Detector, check_f64, check_usize, clean_input, floor_spread, z_to_unit};
use crate::Result;

/// Settings of [`EwmaBand`]; every setter validates its argument.
///
/// # Examples
///
/// ```
/// use watchpost::detect::EwmaConfig;
///
/// let cfg = EwmaConfig::default().with_span(100.0)?;
/// assert!(EwmaConfig::default().with_span(0.5).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaConfig {
    span: f64,
    sigmas: f64,
    warmup: usize,
}

impl Default for EwmaConfig {
    /// Span 64 points, score 0.5 at 4 sigmas, 32 points of warm-up.
    fn default() -> Self {
        EwmaConfig { span: 64.0, sigmas: 4.0, warmup: 32 }
    }
}

impl EwmaConfig {
    /// Sets the span `N` of the weights (`alpha = 2 / (N + 1)`), 1..=1e6 points.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `span` when out of range or not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EwmaConfig::default().with_span(20.0).is_ok());
    /// ```
    pub fn with_span(mut self, span: f64) -> Result<Self> {
        self.span = check_f64("span", span, 1.0, 1e6)?;
        Ok(self)
    }

    /// Sets the distance, in standard deviations, that scores 0.5 (0.1..=1000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `sigmas` when out of range or not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EwmaConfig::default().with_sigmas(-1.0).is_err());
    /// ```
    pub fn with_sigmas(mut self, sigmas: f64) -> Result<Self> {
        self.sigmas = check_f64("sigmas", sigmas, 0.1, 1000.0)?;
        Ok(self)
    }

    /// Sets how many points must be seen before scoring starts (1..=1e6).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `warmup` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::EwmaConfig::default().with_warmup(10).is_ok());
    /// ```
    pub fn with_warmup(mut self, warmup: usize) -> Result<Self> {
        self.warmup = check_usize("warmup", warmup, 1, 1_000_000)?;
        Ok(self)
    }
}

/// Scores a point by its distance from an exponentially weighted moving
/// average, in exponentially weighted standard deviations. O(1) time and
/// memory.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{Detector, EwmaBand};
///
/// let mut d = EwmaBand::new(Default::default());
/// for i in 0..300 {
///     d.update(i, 100.0 + (i % 5) as f64);
/// }
/// assert!(d.update(300, 102.0) < 0.2);
/// assert!(d.update(301, 160.0) > 0.9);
/// ```
#[derive(Debug, Clone)]
pub struct EwmaBand {
    cfg: EwmaConfig,
    alpha: f64,
    mean: f64,
    var: f64,
    seen: usize,
}

impl EwmaBand {
    /// Builds the detector.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::EwmaBand::new(Default::default());
    /// ```
    pub fn new(cfg: EwmaConfig) -> Self {
        let alpha = 2.0 / (cfg.span + 1.0);
        EwmaBand { cfg, alpha, mean: 0.0, var: 0.0, seen: 0 }
    }

    fn sd(&self) -> f64 {
        floor_spread(self.var.sqrt(), self.mean)
    }

    /// Signed z of `x` against the current state; NaN before warm-up.
    pub(crate) fn signed_z(&self, x: f64) -> f64 {
        if self.seen < self.cfg.warmup { f64::NAN } else { (x - self.mean) / self.sd() }
    }

    /// The member score of `x` in `[0, 1)`, NaN before warm-up.
    /// The weighted mean the next value is compared with.
    pub(crate) fn expectation(&self) -> f64 {
        self.mean
    }

    pub(crate) fn member_score(&self, x: f64) -> f64 {
        let z = self.signed_z(x);
        if z.is_nan() { f64::NAN } else { z_to_unit(z.abs(), self.cfg.sigmas) }
    }

    /// Learns `x` after `steps` typical sampling steps (1 for a regular
    /// point): the mean moves as far as it would have in that many steps.
    pub(crate) fn learn_after(&mut self, x: f64, steps: f64) {
        // a step within rounding of the typical one is one step (no `powf`)
        if self.seen == 0 || steps <= 1.0 + 1e-9 {
            self.learn(x);
            return;
        }
        let a = 1.0 - (1.0 - self.alpha).powf(steps.min(1e6));
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d);
        self.seen = self.seen.saturating_add(1);
    }

    pub(crate) fn learn(&mut self, x: f64) {
        if self.seen == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += self.alpha * d;
            self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d);
        }
        self.seen = self.seen.saturating_add(1);
    }
}

impl Detector for EwmaBand {
    fn name(&self) -> &'static str {
        "ewma"
    }

    fn update(&mut self, _timestamp_ms: i64, value: f64) -> f64 {
        let Some(x) = clean_input(value) else { return 0.0 };
        let score = z_to_unit(self.signed_z(x).abs(), self.cfg.sigmas);
        self.learn(x);
        score
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        (self.seen >= self.cfg.warmup).then(|| {
            let k = self.cfg.sigmas * self.sd();
            (self.mean - k, self.mean + k)
        })
    }

    fn reset(&mut self) {
        *self = EwmaBand::new(self.cfg.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::*;

    fn det() -> EwmaBand {
        EwmaBand::new(EwmaConfig::default())
    }

    #[test]
    fn flags_a_spike() {
        let scores = run(&mut det(), &noisy_with_spike(1_000, 700, 30.0));
        assert!(scores[700] > 0.9);
        assert!(max_excluding(&scores, 700..760, 100) < 0.6);
    }

    #[test]
    fn a_step_fades_out() {
        let scores = run(&mut det(), &step(1_000, 500, 20.0));
        assert!(scores[500] > 0.9);
        assert!(scores[800..].iter().all(|&s| s < 0.5));
    }

    #[test]
    fn slow_drift_is_not_anomalous() {
        let scores = run(&mut det(), &drift(2_000, 0.01));
        assert!(max_excluding(&scores, 0..0, 100) < 0.6);
    }

    #[test]
    fn daily_pattern_is_followed() {
        let scores = run(&mut det(), &daily(288 * 5));
        assert!(max_excluding(&scores, 0..0, 100) < 0.6);
    }

    #[test]
    fn constant_series_scores_zero() {
        assert!(run(&mut det(), &vec![-3.0; 500]).iter().all(|&s| s == 0.0));
    }

    #[test]
    fn non_finite_and_huge_values() {
        check_robust_to_bad_input(&mut det());
    }
}
