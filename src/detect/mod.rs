//! Streaming, causal anomaly detection.
//!
//! A [`Detector`] turns one series, fed a point at a time, into an anomaly
//! score in `[0, 1]`. Detectors are causal (a score depends only on the points
//! fed so far), deterministic, keep bounded state per series, and never need a
//! series' global minimum or maximum. The engine keeps one detector per series
//! and calls a point anomalous when its score reaches [`DEFAULT_THRESHOLD`].
//!
//! The default detector ([`default_detector`], [`DetectorSpec::default`]) is
//! an [`Ensemble`] of four cheap members:
//!
//! - [`RobustZ`]: distance from a rolling median in rolling robust-spread units;
//! - [`EwmaBand`]: distance from an exponentially weighted mean in weighted
//!   standard deviations;
//! - two [`SeasonalProfile`]s: distance from a per-time-of-day profile and from
//!   a per-hour-of-week profile, learnt from the timestamps.
//!
//! Each member's score is turned into an anomaly likelihood
//! ([`AnomalyLikelihood`]: a Gaussian tail of a short moving average of the
//! member's scores against a long window's distribution), so that one
//! threshold suits every metric; the ensemble combines the likelihoods by
//! consensus, flags a value that breaks well out of the recent range at once,
//! and holds its output at 0 for a refractory period after a detection.
//! [`Novelty`] (how unfamiliar the recent shape of the series is, over a
//! quantised short window) is available on its own.
//!
//! See `docs/anomaly.md` in the repository for how the detectors score on the
//! Numenta Anomaly Benchmark and how to reproduce it (feature `nab`).
//!
//! # Examples
//!
//! ```
//! use watchpost::detect::{DEFAULT_THRESHOLD, default_detector};
//!
//! let mut detector = default_detector();
//! let mut flagged = Vec::new();
//! for i in 0..2_000_i64 {
//!     let value = if i == 1_500 { 500.0 } else { 10.0 + (i % 7) as f64 };
//!     let score = detector.update(i * 60_000, value);
//!     assert!((0.0..=1.0).contains(&score));
//!     if score >= DEFAULT_THRESHOLD {
//!         flagged.push(i);
//!     }
//! }
//! assert_eq!(flagged, [1_500]);
//! ```

mod breakout;
mod domain;
mod ensemble;
mod ewma;
mod likelihood;
#[cfg(feature = "nab")]
#[cfg_attr(docsrs, doc(cfg(feature = "nab")))]
pub mod nab;
mod novelty;
mod robust;
mod seasonal;
mod window;

use std::str::FromStr;

pub use self::{
    domain::Domain,
    ensemble::{Ensemble, EnsembleConfig},
    ewma::{EwmaBand, EwmaConfig},
    likelihood::{AnomalyLikelihood, LikelihoodConfig},
    novelty::{Novelty, NoveltyConfig},
    robust::{RobustZ, RobustZConfig},
    seasonal::{SeasonalConfig, SeasonalProfile},
};
use crate::{Error, Result};

/// The score at or above which a live engine calls a point anomalous.
///
/// Scores of the default detector are anomaly likelihoods on a log scale:
/// `0.5` means the recent behaviour of the series has a tail probability of
/// about `1e-5` under what the series has done in its long window.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{DEFAULT_THRESHOLD, default_detector};
///
/// let mut d = default_detector();
/// let anomalous = d.update(0, 1.0) >= DEFAULT_THRESHOLD;
/// assert!(!anomalous);
/// ```
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Largest magnitude a detector works with; larger inputs are clamped to it so
/// that squares and differences stay finite.
pub(crate) const MAX_MAGNITUDE: f64 = 1e150;

/// A streaming, causal anomaly detector for one series.
///
/// Implementations must be deterministic, keep bounded memory whatever the
/// length of the series, never look ahead, and treat non-finite input as
/// missing: such a point scores 0 and leaves the state unchanged.
///
/// The trait forwards through `Box<dyn Detector>`, so the engine can hold a
/// different detector per series.
///
/// # Examples
///
/// A custom detector that flags values above a fixed limit:
///
/// ```
/// use watchpost::detect::Detector;
///
/// struct Above(f64);
///
/// impl Detector for Above {
///     fn name(&self) -> &str {
///         "above"
///     }
///     fn update(&mut self, _timestamp_ms: i64, value: f64) -> f64 {
///         if value > self.0 { 1.0 } else { 0.0 }
///     }
///     fn expected_band(&self) -> Option<(f64, f64)> {
///         Some((f64::MIN, self.0))
///     }
///     fn reset(&mut self) {}
/// }
///
/// let mut d: Box<dyn Detector> = Box::new(Above(10.0));
/// assert_eq!(d.update(0, 11.0), 1.0);
/// assert_eq!(d.name(), "above");
/// ```
pub trait Detector: Send + 'static {
    /// A short, stable name for the detector (for dashboards and logs).
    fn name(&self) -> &str;

    /// Feeds one point and returns its anomaly score in `[0, 1]`.
    ///
    /// Points are expected in time order; a non-finite `value` scores 0 and is
    /// otherwise ignored.
    fn update(&mut self, timestamp_ms: i64, value: f64) -> f64;

    /// The band of values the detector currently expects for the next point
    /// (lower, upper), if it has learnt enough to say; a dashboard can draw it
    /// as the adaptive threshold.
    fn expected_band(&self) -> Option<(f64, f64)> {
        None
    }

    /// Forgets everything learnt, as if newly built.
    fn reset(&mut self);

    /// Bytes of memory the detector holds: its own size plus the capacity of
    /// its heap buffers. Bounded for every detector in this module.
    fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

impl<D: Detector + ?Sized> Detector for Box<D> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn update(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        (**self).update(timestamp_ms, value)
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        (**self).expected_band()
    }

    fn reset(&mut self) {
        (**self).reset();
    }

    fn memory_bytes(&self) -> usize {
        (**self).memory_bytes()
    }
}

/// Builds the default detector: an [`Ensemble`] with its default settings.
///
/// # Examples
///
/// ```
/// let mut d = watchpost::detect::default_detector();
/// assert_eq!(d.name(), "ensemble");
/// assert_eq!(d.update(0, 3.0), 0.0); // nothing learnt yet
/// ```
pub fn default_detector() -> Box<dyn Detector> {
    DetectorSpec::default().build()
}

/// Which detector to build for a series, with its (already validated)
/// settings. Cheap to clone, so the engine can keep one per metric and build
/// a fresh detector for every new series.
///
/// The [`FromStr`] impl accepts the names `ensemble` (also `default`),
/// `robust_z`, `ewma`, `seasonal` and `novelty`, each with default settings.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{DetectorSpec, RobustZConfig};
///
/// let spec = DetectorSpec::RobustZ(RobustZConfig::default().with_window(64)?);
/// let mut d = spec.build();
/// assert_eq!(d.name(), "robust_z");
///
/// let by_name: DetectorSpec = "seasonal".parse()?;
/// assert_eq!(by_name.build().name(), "seasonal");
/// assert!("nope".parse::<DetectorSpec>().is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // built once per metric, never per point
pub enum DetectorSpec {
    /// The default ensemble.
    Ensemble(EnsembleConfig),
    /// Rolling median and robust spread.
    RobustZ(RobustZConfig),
    /// Exponentially weighted mean and variance.
    Ewma(EwmaConfig),
    /// Time-of-day profile.
    Seasonal(SeasonalConfig),
    /// Pattern novelty over a quantised short window.
    Novelty(NoveltyConfig),
}

impl Default for DetectorSpec {
    fn default() -> Self {
        DetectorSpec::Ensemble(EnsembleConfig::default())
    }
}

impl DetectorSpec {
    /// The names [`FromStr`] accepts, canonical spelling.
    pub const NAMES: [&'static str; 5] = ["ensemble", "robust_z", "ewma", "seasonal", "novelty"];

    /// Builds a fresh detector from this spec.
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = watchpost::detect::DetectorSpec::default();
    /// let (a, b) = (spec.build(), spec.build()); // one per series
    /// assert_eq!(a.name(), b.name());
    /// ```
    pub fn build(&self) -> Box<dyn Detector> {
        match self {
            DetectorSpec::Ensemble(c) => Box::new(Ensemble::new(c.clone())),
            DetectorSpec::RobustZ(c) => Box::new(RobustZ::new(c.clone())),
            DetectorSpec::Ewma(c) => Box::new(EwmaBand::new(c.clone())),
            DetectorSpec::Seasonal(c) => Box::new(SeasonalProfile::new(c.clone())),
            DetectorSpec::Novelty(c) => Box::new(Novelty::new(c.clone())),
        }
    }

    /// The name of the detector this spec builds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::detect::DetectorSpec::default().name(), "ensemble");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            DetectorSpec::Ensemble(_) => "ensemble",
            DetectorSpec::RobustZ(_) => "robust_z",
            DetectorSpec::Ewma(_) => "ewma",
            DetectorSpec::Seasonal(_) => "seasonal",
            DetectorSpec::Novelty(_) => "novelty",
        }
    }
}

impl FromStr for DetectorSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ensemble" | "default" => DetectorSpec::Ensemble(EnsembleConfig::default()),
            "robust_z" => DetectorSpec::RobustZ(RobustZConfig::default()),
            "ewma" => DetectorSpec::Ewma(EwmaConfig::default()),
            "seasonal" => DetectorSpec::Seasonal(SeasonalConfig::default()),
            "novelty" => DetectorSpec::Novelty(NoveltyConfig::default()),
            other => {
                return Err(Error::InvalidConfig {
                    field: "detector",
                    reason: format!(
                        "unknown detector {other:?}; expected one of {}",
                        DetectorSpec::NAMES.join(", ")
                    ),
                });
            }
        })
    }
}

/// Accepts a finite input, clamping its magnitude to [`MAX_MAGNITUDE`].
pub(crate) fn clean_input(value: f64) -> Option<f64> {
    value.is_finite().then(|| value.clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE))
}

/// Clamps a score into `[0, 1]`, mapping NaN to 0.
pub(crate) fn unit(score: f64) -> f64 {
    if score.is_nan() { 0.0 } else { score.clamp(0.0, 1.0) }
}

/// Maps a distance in spread units to `[0, 1)`: `0.5` at `z == half`.
pub(crate) fn z_to_unit(z: f64, half: f64) -> f64 {
    if z.is_nan() {
        return 0.0;
    }
    if z.is_infinite() {
        return 1.0;
    }
    // z² / (z² + half²), with a single division (`z / half` is capped at 1e6)
    let z = z.min(half * 1e6);
    let z2 = z * z;
    unit(z2 / (z2 + half * half))
}

/// A spread that is never zero: `spread`, else a tiny fraction of `level`.
pub(crate) fn floor_spread(spread: f64, level: f64) -> f64 {
    let floor = (level.abs() * 1e-9).max(1e-300);
    if spread.is_finite() && spread > floor { spread } else { floor }
}

pub(crate) fn check_usize(
    field: &'static str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<usize> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::InvalidConfig {
            field,
            reason: format!("must be in {min}..={max}, got {value}"),
        })
    }
}

pub(crate) fn check_f64(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64> {
    if value.is_finite() && value >= min && value <= max {
        Ok(value)
    } else {
        Err(Error::InvalidConfig {
            field,
            reason: format!("must be in [{min}, {max}], got {value}"),
        })
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod irregular_tests;

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are expected
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn all_specs() -> Vec<DetectorSpec> {
        DetectorSpec::NAMES.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn names_round_trip() {
        for spec in all_specs() {
            assert_eq!(spec.build().name(), spec.name());
        }
        let err = "zscore".parse::<DetectorSpec>().unwrap_err().to_string();
        assert!(err.contains("\"zscore\""), "{err}");
    }

    #[test]
    fn reset_forgets_everything() {
        let values = testutil::noisy_with_spike(3_000, 2_500, 50.0);
        for spec in all_specs() {
            let mut d = spec.build();
            let first = testutil::run(&mut d, &values);
            d.reset();
            assert_eq!(testutil::run(&mut d, &values), first, "{}", spec.name());
        }
    }

    #[test]
    fn deterministic() {
        let values = testutil::daily(3_000);
        for spec in all_specs() {
            let a = testutil::run(&mut spec.build(), &values);
            let b = testutil::run(&mut spec.build(), &values);
            assert_eq!(a, b, "{}", spec.name());
        }
    }

    #[test]
    fn boxed_detector_forwards() {
        let mut inner = default_detector();
        let mut boxed: Box<Box<dyn Detector>> = Box::new(default_detector());
        for (i, v) in testutil::daily(1_000).into_iter().enumerate() {
            let t = i64::try_from(i).unwrap() * testutil::STEP_MS;
            assert_eq!(inner.update(t, v), boxed.update(t, v));
        }
        assert_eq!(inner.expected_band(), boxed.expected_band());
        assert_eq!(inner.memory_bytes(), boxed.memory_bytes());
        assert_eq!(boxed.name(), "ensemble");
    }

    #[test]
    fn bad_config_is_rejected_with_the_value() {
        let err = RobustZConfig::default().with_sigmas(f64::INFINITY).unwrap_err();
        let crate::Error::InvalidConfig { field, reason } = err else { panic!("wrong variant") };
        assert_eq!(field, "sigmas");
        assert!(reason.contains("inf"), "{reason}");
    }

    /// A deterministic stream of `n` values with a level, a scale, a daily
    /// pattern, noise and rare bursts.
    fn stream(seed: u64, n: usize, level: f64, scale: f64) -> impl Iterator<Item = (i64, f64)> {
        let mut s = seed | 1;
        (0..n).map(move |i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            #[allow(clippy::cast_precision_loss)]
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            let t = i64::try_from(i).unwrap() * 60_000;
            let daily = (window::as_f64(i % 1_440) / 1_440.0 * std::f64::consts::TAU).sin();
            let burst = if s.is_multiple_of(5_000) { 20.0 } else { 0.0 };
            (t, level + scale * (daily + u + burst))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn scores_stay_in_unit_interval(
            values in prop::collection::vec(prop::num::f64::ANY, 0..400),
            steps in prop::collection::vec(-1_000_000_i64..10_000_000, 1..8),
            which in 0..DetectorSpec::NAMES.len(),
        ) {
            let mut d = DetectorSpec::NAMES[which].parse::<DetectorSpec>().unwrap().build();
            let mut t = 0_i64;
            for (i, v) in values.iter().enumerate() {
                t = t.saturating_add(steps[i % steps.len()]);
                let s = d.update(t, *v);
                prop_assert!((0.0..=1.0).contains(&s), "{} gave {} for {}", d.name(), s, v);
                if !v.is_finite() {
                    prop_assert_eq!(s, 0.0);
                }
            }
            if let Some((lo, hi)) = d.expected_band() {
                prop_assert!(!lo.is_nan() && !hi.is_nan());
            }
        }

        #[test]
        fn finite_scores_after_bad_input(
            bad in prop::collection::vec(prop::num::f64::ANY, 1..50),
            level in -1e12_f64..1e12,
            scale in 1e-6_f64..1e6,
        ) {
            let mut d = default_detector();
            for (t, v) in stream(7, 2_000, level, scale) {
                d.update(t, v);
            }
            for v in &bad {
                d.update(2_000 * 60_000, *v);
            }
            for (t, v) in stream(9, 500, level, scale) {
                let s = d.update(t + 2_001 * 60_000, v);
                prop_assert!(s.is_finite() && (0.0..=1.0).contains(&s));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2))]

        #[test]
        fn memory_stays_bounded_over_a_million_points(
            seed in any::<u64>(),
            level in -1e6_f64..1e6,
            scale in 1e-3_f64..1e3,
        ) {
            for spec in all_specs() {
                let mut d = spec.build();
                let mut after_warmup = 0;
                for (i, (t, v)) in stream(seed, 1_000_000, level, scale).enumerate() {
                    d.update(t, v);
                    if i == 10_000 {
                        after_warmup = d.memory_bytes();
                    }
                }
                prop_assert_eq!(d.memory_bytes(), after_warmup, "{}", spec.name());
                prop_assert!(d.memory_bytes() < 32 * 1024, "{}: {}", spec.name(), d.memory_bytes());
            }
        }
    }
}
