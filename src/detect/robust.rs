//! Robust z-score against a rolling median and interquartile spread.

use super::window::SortedWindow;
use super::{Detector, check_f64, check_usize, clean_input, floor_spread, z_to_unit};
use crate::Result;

/// Settings of [`RobustZ`]; every setter validates its argument.
///
/// # Examples
///
/// ```
/// use watchpost::detect::RobustZConfig;
///
/// let cfg = RobustZConfig::default().with_window(256)?.with_sigmas(5.0)?;
/// assert_eq!(cfg.window(), 256);
/// let err = RobustZConfig::default().with_window(2).unwrap_err();
/// assert!(err.to_string().contains("got 2"));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RobustZConfig {
    window: usize,
    sigmas: f64,
    warmup: usize,
}

impl Default for RobustZConfig {
    /// Window 128 points, score 0.5 at 4 robust sigmas, 16 points of warm-up.
    fn default() -> Self {
        RobustZConfig { window: 128, sigmas: 4.0, warmup: 16 }
    }
}

impl RobustZConfig {
    /// Sets how many recent points the median and spread cover (8..=8192).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `window` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::RobustZConfig::default().with_window(64).is_ok());
    /// ```
    pub fn with_window(mut self, window: usize) -> Result<Self> {
        self.window = check_usize("window", window, 8, 8192)?;
        Ok(self)
    }

    /// Sets the distance, in robust standard deviations, that scores 0.5
    /// (0.1..=1000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `sigmas` when out of range or not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::RobustZConfig::default().with_sigmas(f64::NAN).is_err());
    /// ```
    pub fn with_sigmas(mut self, sigmas: f64) -> Result<Self> {
        self.sigmas = check_f64("sigmas", sigmas, 0.1, 1000.0)?;
        Ok(self)
    }

    /// Sets how many points must be seen before scoring starts (2..=8192).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `warmup` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::RobustZConfig::default().with_warmup(0).is_err());
    /// ```
    pub fn with_warmup(mut self, warmup: usize) -> Result<Self> {
        self.warmup = check_usize("warmup", warmup, 2, 8192)?;
        Ok(self)
    }

    /// The window length in points.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::detect::RobustZConfig::default().window(), 128);
    /// ```
    pub fn window(&self) -> usize {
        self.window
    }
}

/// Scores a point by its distance from the rolling median of the last
/// `window` points, in robust standard deviations (interquartile range /
/// 1.349, falling back to wider quantile ranges when the quartiles coincide).
///
/// Cost: a binary search and a memory move over the window per point; memory:
/// two buffers of `window` values.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{Detector, RobustZ, RobustZConfig};
///
/// let mut d = RobustZ::new(RobustZConfig::default());
/// for i in 0..200 {
///     d.update(i, 10.0 + (i % 3) as f64);
/// }
/// assert!(d.update(200, 11.0) < 0.1);
/// assert!(d.update(201, 50.0) > 0.9);
/// let (lo, hi) = d.expected_band().unwrap();
/// assert!(lo < 11.0 && 11.0 < hi);
/// ```
#[derive(Debug, Clone)]
pub struct RobustZ {
    cfg: RobustZConfig,
    win: SortedWindow,
    center: f64,
    spread: f64,
}

impl RobustZ {
    /// Builds the detector.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::RobustZ::new(Default::default());
    /// ```
    pub fn new(cfg: RobustZConfig) -> Self {
        let win = SortedWindow::new(cfg.window);
        RobustZ { cfg, win, center: f64::NAN, spread: f64::NAN }
    }

    /// The robust z of `value` against the current window (NaN before warm-up).
    pub(crate) fn z(&self, value: f64) -> f64 {
        (value - self.center).abs() / self.spread
    }

    /// The member score of `value` in `[0, 1)`, NaN before warm-up.
    /// The rolling median (NaN before warm-up).
    pub(crate) fn center(&self) -> f64 {
        self.center
    }

    pub(crate) fn member_score(&self, value: f64) -> f64 {
        let z = self.z(value);
        if z.is_nan() { f64::NAN } else { z_to_unit(z, self.cfg.sigmas) }
    }

    /// Updates the state without scoring.
    pub(crate) fn learn(&mut self, value: f64) {
        self.win.push(value);
        if self.win.len() >= self.cfg.warmup
            && let Some([median, upper, lower]) = self.win.quartiles()
        {
            // the quartiles in integer steps; the wider fallbacks (when they
            // coincide) below
            let spread = (upper - lower) / 1.349;
            if spread > 0.0 {
                self.center = median;
                self.spread = floor_spread(spread, median);
                return;
            }
        }
        if self.win.len() >= self.cfg.warmup {
            let (center, spread) = robust_center_spread(&self.win);
            self.center = center;
            self.spread = spread;
        }
    }
}

/// Median and robust spread of a window.
pub(crate) fn robust_center_spread(win: &SortedWindow) -> (f64, f64) {
    let q = |p: f64| win.quantile(p).unwrap_or(0.0);
    let median = q(0.5);
    let mut spread = (q(0.75) - q(0.25)) / 1.349;
    if spread <= 0.0 {
        spread = (q(0.9) - q(0.1)) / 2.563;
    }
    if spread <= 0.0 {
        spread = (q(1.0) - q(0.0)) / 6.0;
    }
    (median, floor_spread(spread, median))
}

impl Detector for RobustZ {
    fn name(&self) -> &'static str {
        "robust_z"
    }

    fn update(&mut self, _timestamp_ms: i64, value: f64) -> f64 {
        let Some(x) = clean_input(value) else { return 0.0 };
        let score = z_to_unit(self.z(x), self.cfg.sigmas);
        self.learn(x);
        score
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        let k = self.cfg.sigmas * self.spread;
        (self.center.is_finite() && k.is_finite()).then_some((self.center - k, self.center + k))
    }

    fn reset(&mut self) {
        self.win.clear();
        self.center = f64::NAN;
        self.spread = f64::NAN;
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.win.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::*;

    fn det() -> RobustZ {
        RobustZ::new(RobustZConfig::default())
    }

    #[test]
    fn flags_a_spike() {
        let scores = run(&mut det(), &noisy_with_spike(1_000, 700, 30.0));
        assert!(scores[700] > 0.9, "{}", scores[700]);
        assert!(max_excluding(&scores, 690..720, 100) < 0.6);
    }

    #[test]
    fn a_step_fades_out() {
        let scores = run(&mut det(), &step(1_000, 500, 20.0));
        assert!(scores[500] > 0.9);
        assert!(scores[700..].iter().all(|&s| s < 0.5));
    }

    #[test]
    fn slow_drift_is_tracked() {
        let scores = run(&mut det(), &drift(3_000, 0.01));
        assert!(max_excluding(&scores, 0..0, 100) < 0.6);
    }

    #[test]
    fn daily_pattern_is_followed_by_the_rolling_median() {
        // 128 points of a 288-point cycle: the median lags, but stays within the band
        let scores = run(&mut det(), &daily(288 * 5));
        assert!(max_excluding(&scores, 0..0, 200) < 0.9);
    }

    #[test]
    fn constant_series_scores_zero() {
        let scores = run(&mut det(), &vec![4.2; 500]);
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn non_finite_and_huge_values() {
        check_robust_to_bad_input(&mut det());
    }

    proptest::proptest! {
        /// The full window's centre and spread, read at positions worked out
        /// once, are bit for bit those of the quantiles computed afresh.
        #[test]
        fn full_window_quartiles_match_fresh_quantiles(
            values in proptest::collection::vec(-50i32..50, 1..400),
            window in 8usize..40,
            scale in proptest::sample::select(vec![1e-3, 1.0, 7.3, 1e9]),
        ) {
            let cfg = RobustZConfig::default().with_window(window).expect("valid window");
            let mut d = RobustZ::new(cfg);
            for v in values {
                d.learn(f64::from(v) * scale);
                if d.win.len() >= d.cfg.warmup {
                    let (center, spread) = robust_center_spread(&d.win);
                    proptest::prop_assert_eq!(d.center.to_bits(), center.to_bits());
                    proptest::prop_assert_eq!(d.spread.to_bits(), spread.to_bits());
                } else {
                    proptest::prop_assert!(d.center.is_nan());
                }
            }
        }
    }
}
