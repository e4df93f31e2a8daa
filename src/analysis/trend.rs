//! Least-squares and Theil–Sen trends, classified by significance and size.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{Point, clean, finite_or, seconds_between};
use crate::{Error, Result};

/// Seconds in an hour, for the per-hour slopes.
const HOUR: f64 = 3600.0;

/// Which way a series is heading, as judged by [`trend`].
///
/// Serialized in lower case (`"increasing"`, `"decreasing"`, `"stable"`).
///
/// # Examples
///
/// ```
/// use watchpost::analysis::Direction;
/// assert_eq!(serde_json::to_string(&Direction::Stable)?, "\"stable\"");
/// assert_eq!(Direction::default(), Direction::Stable);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A significant rise, large relative to the series' level.
    Increasing,
    /// A significant fall, large relative to the series' level.
    Decreasing,
    /// Anything else, including windows too short or too flat to judge.
    #[default]
    Stable,
}

/// Knobs for [`trend`]; the defaults suit percentages and most gauges.
///
/// A window is classified [`Direction::Increasing`] or
/// [`Direction::Decreasing`] only when both hold:
/// 1. the least-squares slope is significant: its two-sided p-value
///    (Student's t, n − 2 degrees of freedom) is below `alpha`;
/// 2. the change over the window, measured robustly as the Theil–Sen slope
///    times the window's span, exceeds
///    `max(min_relative_change × median(|value|), min_absolute_change)`,
///    and has the same sign as the least-squares slope.
///
/// Theil–Sen is the median of the slopes between pairs of points. Up to
/// `theil_sen_exact_limit` points all n(n − 1)/2 pairs are used; above that,
/// `theil_sen_sample_pairs` pairs are drawn by a fixed-seed generator, so the
/// cost is bounded and the same input always gives the same answer.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::TrendConfig;
/// let strict = TrendConfig { alpha: 0.01, ..TrendConfig::default() };
/// strict.validate()?;
/// assert!(TrendConfig { alpha: 1.5, ..strict }.validate().is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrendConfig {
    /// Significance level for the slope's p-value. Default 0.05.
    pub alpha: f64,
    /// Smallest change over the window, relative to the median absolute
    /// level, that counts as a trend. Default 0.10 (10 %).
    pub min_relative_change: f64,
    /// Smallest change over the window, in the series' unit, that counts as
    /// a trend; keeps near-zero series from flipping on rounding noise.
    /// Default 1e-9.
    pub min_absolute_change: f64,
    /// Windows with at most this many points get the exact Theil–Sen slope
    /// over all pairs. Default 256 (32 640 pairs).
    pub theil_sen_exact_limit: usize,
    /// Number of pairs sampled for larger windows. Default 32 768.
    pub theil_sen_sample_pairs: usize,
}

impl Default for TrendConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            min_relative_change: 0.10,
            min_absolute_change: 1e-9,
            theil_sen_exact_limit: 256,
            theil_sen_sample_pairs: 32_768,
        }
    }
}

impl TrendConfig {
    /// Checks every field.
    ///
    /// Analysis functions never fail: given an invalid configuration they use
    /// the default for each invalid field. Call this where a configuration is
    /// built, to report the mistake instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first field that is out of range:
    /// `alpha` outside (0, 1), a negative or non-finite change threshold, or
    /// `theil_sen_sample_pairs` of 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::TrendConfig;
    /// let bad = TrendConfig { min_relative_change: -1.0, ..TrendConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("min_relative_change"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, value: String| {
            Err(Error::InvalidConfig { field, reason: format!("out of range: {value}") })
        };
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return invalid("alpha", format!("{} (must be in (0, 1))", self.alpha));
        }
        if !(self.min_relative_change >= 0.0 && self.min_relative_change.is_finite()) {
            return invalid("min_relative_change", format!("{}", self.min_relative_change));
        }
        if !(self.min_absolute_change >= 0.0 && self.min_absolute_change.is_finite()) {
            return invalid("min_absolute_change", format!("{}", self.min_absolute_change));
        }
        if self.theil_sen_sample_pairs == 0 {
            return invalid("theil_sen_sample_pairs", "0".to_owned());
        }
        Ok(())
    }

    /// This configuration with every invalid field replaced by its default.
    pub(super) fn sanitized(&self) -> Self {
        let d = Self::default();
        let ok_nonneg = |v: f64| v >= 0.0 && v.is_finite();
        Self {
            alpha: if self.alpha > 0.0 && self.alpha < 1.0 { self.alpha } else { d.alpha },
            min_relative_change: if ok_nonneg(self.min_relative_change) {
                self.min_relative_change
            } else {
                d.min_relative_change
            },
            min_absolute_change: if ok_nonneg(self.min_absolute_change) {
                self.min_absolute_change
            } else {
                d.min_absolute_change
            },
            theil_sen_exact_limit: self.theil_sen_exact_limit,
            theil_sen_sample_pairs: self.theil_sen_sample_pairs.max(1),
        }
    }
}

/// The fitted trend of a window, as computed by [`trend`].
///
/// Every float is finite. Slopes are in the series' unit per second or per
/// hour. The line is `value(ts) = intercept + slope_per_second × (ts − start_ts_ms) / 1000`.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, TrendConfig, trend};
/// let pts: Vec<Point> = (0..10).map(|i| Point::new(i * 1000, 5.0 + 2.0 * i as f64)).collect();
/// let t = trend(&pts, &TrendConfig::default());
/// assert!((t.slope_per_second - 2.0).abs() < 1e-12);
/// assert!((t.intercept - 5.0).abs() < 1e-12);
/// assert!((t.value_at(20_000) - 45.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Number of finite points used.
    pub points: usize,
    /// Timestamp of the first point (the line's origin); 0 for an empty window.
    pub start_ts_ms: i64,
    /// Timestamp of the last point; 0 for an empty window.
    pub end_ts_ms: i64,
    /// Least-squares slope per second.
    pub slope_per_second: f64,
    /// Least-squares slope per hour.
    pub slope_per_hour: f64,
    /// Standard error of the least-squares slope per second; `None` with
    /// fewer than three points or a single distinct timestamp.
    pub slope_std_error: Option<f64>,
    /// Value of the least-squares line at `start_ts_ms`.
    pub intercept: f64,
    /// Coefficient of determination in [0, 1]; 0 when the values are constant.
    pub r_squared: f64,
    /// Two-sided p-value of the least-squares slope (t-test, n − 2 degrees of
    /// freedom); 1 when it cannot be computed.
    pub p_value: f64,
    /// Theil–Sen (median pairwise) slope per second.
    pub theil_sen_slope_per_second: f64,
    /// Theil–Sen slope per hour.
    pub theil_sen_slope_per_hour: f64,
    /// The classification (see [`TrendConfig`]).
    pub direction: Direction,
}

impl Trend {
    /// The flat, [`Direction::Stable`] trend of a degenerate window.
    fn flat(points: usize, start_ts_ms: i64, end_ts_ms: i64, level: f64) -> Self {
        Self {
            points,
            start_ts_ms,
            end_ts_ms,
            slope_per_second: 0.0,
            slope_per_hour: 0.0,
            slope_std_error: None,
            intercept: level,
            r_squared: 0.0,
            p_value: 1.0,
            theil_sen_slope_per_second: 0.0,
            theil_sen_slope_per_hour: 0.0,
            direction: Direction::Stable,
        }
    }

    /// Value of the least-squares line at `ts_ms` (finite, saturating).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{Point, TrendConfig, trend};
    /// let t = trend(&[Point::new(0, 1.0), Point::new(1000, 2.0), Point::new(2000, 3.0)],
    ///               &TrendConfig::default());
    /// assert!((t.value_at(3000) - 4.0).abs() < 1e-12);
    /// ```
    pub fn value_at(&self, ts_ms: i64) -> f64 {
        let dt = seconds_between(self.start_ts_ms, ts_ms);
        finite_or(self.intercept + self.slope_per_second * dt, self.intercept)
    }

    /// Seconds between the first and the last point.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{Point, TrendConfig, trend};
    /// let t = trend(&[Point::new(1000, 1.0), Point::new(61_000, 1.0)], &TrendConfig::default());
    /// assert_eq!(t.span_seconds(), 60.0);
    /// ```
    pub fn span_seconds(&self) -> f64 {
        seconds_between(self.start_ts_ms, self.end_ts_ms)
    }

    /// Confidence interval `(low, high)` for the least-squares slope per
    /// second, at `confidence` (for example 0.95), from the slope's standard
    /// error and the Student's t quantile with n − 2 degrees of freedom.
    ///
    /// `None` when the standard error is undefined (fewer than three points)
    /// or `confidence` is not in (0, 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{Point, TrendConfig, trend};
    /// let pts: Vec<Point> = (0..20)
    ///     .map(|i| Point::new(i * 1000, i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 }))
    ///     .collect();
    /// let (lo, hi) = trend(&pts, &TrendConfig::default()).slope_interval(0.95).unwrap();
    /// assert!(lo < 1.0 && 1.0 < hi);
    /// ```
    pub fn slope_interval(&self, confidence: f64) -> Option<(f64, f64)> {
        if !(confidence > 0.0 && confidence < 1.0) {
            return None;
        }
        let se = self.slope_std_error?;
        let q = t_quantile(self.points.checked_sub(2)?, 0.5 + confidence / 2.0)?;
        let half = finite_or(q * se, f64::MAX);
        Some((
            finite_or(self.slope_per_second - half, f64::MIN),
            finite_or(self.slope_per_second + half, f64::MAX),
        ))
    }
}

/// Quantile `p` of Student's t with `dof` degrees of freedom (`None` for 0 dof).
#[allow(clippy::cast_precision_loss)] // degrees of freedom are far below 2^53
fn t_quantile(dof: usize, p: f64) -> Option<f64> {
    if dof == 0 {
        return None;
    }
    let dist = StudentsT::new(0.0, 1.0, dof as f64).ok()?;
    let q = dist.inverse_cdf(p.clamp(0.0, 1.0));
    q.is_finite().then_some(q)
}

/// Two-sided p-value of a t statistic with `dof` degrees of freedom.
#[allow(clippy::cast_precision_loss)] // degrees of freedom are far below 2^53
fn two_sided_p(t: f64, dof: usize) -> f64 {
    if dof == 0 || t.is_nan() {
        return 1.0;
    }
    if t.is_infinite() {
        return 0.0;
    }
    match StudentsT::new(0.0, 1.0, dof as f64) {
        Ok(dist) => {
            let p = 2.0 * dist.sf(t.abs());
            if p.is_finite() { p.clamp(0.0, 1.0) } else { 1.0 }
        }
        Err(_) => 1.0,
    }
}

/// Median of `v` (which it reorders); `None` when empty.
fn median_in_place(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (left, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        Some(m)
    } else {
        let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(lower / 2.0 + m / 2.0)
    }
}

/// `SplitMix64`: a tiny, fixed-seed generator for the Theil–Sen pair sample.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift.
    #[allow(clippy::cast_possible_truncation)] // the product's high half is < n, which fits usize
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// Theil–Sen slope over `(t seconds, y)` pairs sorted by `t`; `None` when no
/// pair has distinct times.
#[allow(clippy::many_single_char_names)] // t, y, n, a, b: the usual notation
fn theil_sen_sorted(t: &[f64], y: &[f64], config: &TrendConfig) -> Option<f64> {
    let n = t.len();
    let slope = |i: usize, j: usize| {
        let dt = t[j] - t[i];
        (dt != 0.0).then(|| (y[j] - y[i]) / dt)
    };
    let mut slopes: Vec<f64>;
    if n <= config.theil_sen_exact_limit {
        slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                slopes.extend(slope(i, j));
            }
        }
    } else {
        let want = config.theil_sen_sample_pairs;
        slopes = Vec::with_capacity(want);
        let mut rng = SplitMix64(0x5EED_0F7E_E15E_1700);
        // Give up after a bounded number of draws (only reached when most
        // timestamps coincide).
        for _ in 0..want.saturating_mul(4) {
            if slopes.len() == want {
                break;
            }
            let (a, b) = (rng.below(n), rng.below(n));
            if a != b {
                slopes.extend(slope(a.min(b), a.max(b)));
            }
        }
    }
    slopes.retain(|s| s.is_finite());
    median_in_place(&mut slopes)
}

/// The Theil–Sen slope per second of `points`: the median of the slopes
/// between pairs of points with distinct timestamps, exact up to
/// `config.theil_sen_exact_limit` points and over a fixed-seed sample of
/// `config.theil_sen_sample_pairs` pairs above it.
///
/// It ignores up to about 29 % of arbitrarily bad points. `None` when fewer
/// than two distinct timestamps carry finite values.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, TrendConfig, theil_sen_slope};
/// let mut pts: Vec<Point> = (0..50).map(|i| Point::new(i * 1000, 3.0 * i as f64)).collect();
/// pts[10].value = 1e9; // an outlier barely moves it
/// let s = theil_sen_slope(&pts, &TrendConfig::default()).unwrap();
/// assert!((s - 3.0).abs() < 1e-9);
/// ```
pub fn theil_sen_slope(points: &[Point], config: &TrendConfig) -> Option<f64> {
    let pts = clean(points);
    let t0 = pts.first()?.ts_ms;
    let scale = pts.iter().fold(0.0f64, |m, p| m.max(p.value.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let t: Vec<f64> = pts.iter().map(|p| seconds_between(t0, p.ts_ms)).collect();
    let y: Vec<f64> = pts.iter().map(|p| p.value / scale).collect();
    theil_sen_sorted(&t, &y, &config.sanitized()).map(|s| finite_or(s * scale, 0.0))
}

/// Fits and classifies the trend of `points` (see [`TrendConfig`] for the rule).
///
/// Least squares gives the slope, intercept, R², the slope's standard error
/// and p-value; Theil–Sen gives the robust slope used to size the change, so a
/// single spike cannot flip the classification. Values are scaled internally,
/// so huge magnitudes neither overflow nor lose the answer.
///
/// Degenerate windows (fewer than two points, one distinct timestamp, or
/// constant values) give a [`Direction::Stable`] trend with zero slopes,
/// `r_squared` 0 and `p_value` 1. Two points give the line through them, but
/// no standard error, `p_value` 1 and so [`Direction::Stable`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Direction, Point, TrendConfig, trend};
/// let cfg = TrendConfig::default();
/// let falling: Vec<Point> = (0..30).map(|i| Point::new(i * 1000, 100.0 - i as f64)).collect();
/// assert_eq!(trend(&falling, &cfg).direction, Direction::Decreasing);
/// assert_eq!(trend(&[], &cfg).direction, Direction::Stable);
/// assert_eq!(trend(&[Point::new(0, 1.0), Point::new(0, 9.0)], &cfg).p_value, 1.0);
/// ```
pub fn trend(points: &[Point], config: &TrendConfig) -> Trend {
    fit(&clean(points), &config.sanitized(), true)
}

/// Least-squares fit of cleaned points; Theil–Sen and the classification only
/// when `with_robust` (otherwise they are 0 and `Stable`).
#[allow(clippy::many_single_char_names)] // n, t, y, a, b: the usual notation
pub(super) fn fit(pts: &[Point], config: &TrendConfig, with_robust: bool) -> Trend {
    let n = pts.len();
    let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
        return Trend::flat(0, 0, 0, 0.0);
    };
    let (start, end) = (first.ts_ms, last.ts_ms);
    let mean = {
        // running mean: cannot overflow
        let mut m = 0.0;
        for (k, p) in (1u32..).zip(pts) {
            m += (p.value - m) / f64::from(k);
        }
        finite_or(m, 0.0)
    };
    #[allow(clippy::float_cmp)] // exactly constant, nothing less
    let constant = pts.iter().all(|p| p.value == first.value);
    if n < 2 || start == end || constant {
        let level = if constant { first.value } else { mean };
        return Trend::flat(n, start, end, level);
    }

    // Work on values divided by their largest magnitude, so nothing overflows.
    let scale = pts.iter().fold(0.0f64, |m, p| m.max(p.value.abs()));
    let t: Vec<f64> = pts.iter().map(|p| seconds_between(start, p.ts_ms)).collect();
    let y: Vec<f64> = pts.iter().map(|p| p.value / scale).collect();
    #[allow(clippy::cast_precision_loss)] // window lengths are far below 2^53
    let nf = n as f64;
    let t_mean = t.iter().sum::<f64>() / nf;
    let y_mean = y.iter().sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (&ti, &yi) in t.iter().zip(&y) {
        let (dt, dy) = (ti - t_mean, yi - y_mean);
        sxx += dt * dt;
        sxy += dt * dy;
        syy += dy * dy;
    }
    let b = sxy / sxx;
    let a = y_mean - b * t_mean;
    let ss_res: f64 = t.iter().zip(&y).map(|(&ti, &yi)| (yi - (a + b * ti)).powi(2)).sum();
    let r_squared = if syy > 0.0 { (1.0 - ss_res / syy).clamp(0.0, 1.0) } else { 0.0 };
    // two points fix a line but say nothing about its uncertainty
    let se = (n > 2).then(|| (ss_res / (nf - 2.0) / sxx).sqrt());
    let p_value = match se {
        Some(se) if se > 0.0 => two_sided_p(b / se, n - 2),
        Some(_) if b != 0.0 => 0.0, // a perfect, sloped fit
        _ => 1.0,
    };
    let robust = if with_robust { theil_sen_sorted(&t, &y, config).unwrap_or(0.0) } else { 0.0 };

    let slope = finite_or(b * scale, 0.0);
    let robust_slope = finite_or(robust * scale, 0.0);
    let direction = if with_robust {
        classify(pts, config, slope, robust_slope, p_value, t[n - 1])
    } else {
        Direction::Stable
    };
    Trend {
        points: n,
        start_ts_ms: start,
        end_ts_ms: end,
        slope_per_second: slope,
        slope_per_hour: finite_or(slope * HOUR, 0.0),
        slope_std_error: se.map(|se| finite_or(se * scale, f64::MAX)),
        intercept: finite_or(a * scale, mean),
        r_squared: if r_squared.is_finite() { r_squared } else { 0.0 },
        p_value,
        theil_sen_slope_per_second: robust_slope,
        theil_sen_slope_per_hour: finite_or(robust_slope * HOUR, 0.0),
        direction,
    }
}

/// Applies the significance-and-size rule of [`TrendConfig`].
fn classify(
    pts: &[Point],
    config: &TrendConfig,
    slope: f64,
    robust_slope: f64,
    p_value: f64,
    span_seconds: f64,
) -> Direction {
    if p_value >= config.alpha || slope.signum() != robust_slope.signum() || robust_slope == 0.0 {
        return Direction::Stable;
    }
    let mut levels: Vec<f64> = pts.iter().map(|p| p.value.abs()).collect();
    let level = median_in_place(&mut levels).unwrap_or(0.0);
    let threshold = (config.min_relative_change * level).max(config.min_absolute_change);
    let change = (robust_slope * span_seconds).abs();
    if change <= threshold {
        Direction::Stable
    } else if robust_slope > 0.0 {
        Direction::Increasing
    } else {
        Direction::Decreasing
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(n: i64, step_ms: i64, a: f64, b: f64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let t = (i * step_ms) as f64 / 1000.0;
                Point::new(i * step_ms, a * t + b)
            })
            .collect()
    }

    /// Deterministic pseudo-noise in [-1, 1].
    fn noise(i: i64) -> f64 {
        #[allow(clippy::cast_sign_loss)]
        let mut r = SplitMix64(i as u64);
        #[allow(clippy::cast_precision_loss)]
        let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
        2.0 * u - 1.0
    }

    /// The rule this module replaces: compare the second half's mean with the first half's.
    fn half_means_rule(pts: &[Point]) -> Direction {
        let half = pts.len() / 2;
        #[allow(clippy::cast_precision_loss)]
        let mean = |s: &[Point]| s.iter().map(|p| p.value).sum::<f64>() / s.len() as f64;
        let (first, second) = (mean(&pts[..half]), mean(&pts[half..]));
        if second > first * 1.1 {
            Direction::Increasing
        } else if second < first * 0.9 {
            Direction::Decreasing
        } else {
            Direction::Stable
        }
    }

    #[test]
    fn exact_line() {
        let pts = line(100, 60_000, 0.5 / 3600.0, 20.0); // +0.5 per hour
        let t = trend(&pts, &TrendConfig::default());
        assert!((t.slope_per_hour - 0.5).abs() < 1e-9);
        assert!((t.theil_sen_slope_per_hour - 0.5).abs() < 1e-9);
        assert!((t.intercept - 20.0).abs() < 1e-9);
        assert!((t.r_squared - 1.0).abs() < 1e-9);
        assert!(t.p_value < 1e-12);
        // 99 minutes at 0.5/h is a change of 0.825, under 10 % of a ~20 level
        assert_eq!(t.direction, Direction::Stable);
        let steep = trend(&line(100, 60_000, 5.0 / 3600.0, 20.0), &TrendConfig::default());
        assert_eq!(steep.direction, Direction::Increasing);
    }

    #[test]
    fn p_value_matches_statrs() {
        let pts: Vec<Point> = (0..40)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let x = i as f64;
                Point::new(i * 1000, 0.05 * x + 3.0 * noise(i))
            })
            .collect();
        let t = trend(&pts, &TrendConfig::default());
        // recompute by hand
        let xs: Vec<f64> = (0..40).map(f64::from).collect();
        let ys: Vec<f64> = pts.iter().map(|p| p.value).collect();
        let (xm, ym) = (xs.iter().sum::<f64>() / 40.0, ys.iter().sum::<f64>() / 40.0);
        let sxx: f64 = xs.iter().map(|x| (x - xm).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - xm) * (y - ym)).sum();
        let b = sxy / sxx;
        let a = ym - b * xm;
        let rss: f64 = xs.iter().zip(&ys).map(|(x, y)| (y - a - b * x).powi(2)).sum();
        let se = (rss / 38.0 / sxx).sqrt();
        let dist = StudentsT::new(0.0, 1.0, 38.0).unwrap();
        let p = 2.0 * (1.0 - dist.cdf((b / se).abs()));
        assert!((t.slope_per_second - b).abs() < 1e-12);
        assert!((t.slope_std_error.unwrap() - se).abs() < 1e-12);
        assert!((t.p_value - p).abs() < 1e-9, "{} vs {p}", t.p_value);
    }

    #[test]
    fn single_spike_does_not_flip_direction() {
        // CPU hovering around 50 % with noise, one 100 % spike late in the window
        let mut pts: Vec<Point> =
            (0..60).map(|i| Point::new(i * 10_000, 50.0 + noise(i))).collect();
        pts[45].value = 400.0; // a glitch reading
        assert_eq!(half_means_rule(&pts), Direction::Increasing, "the old rule flips");
        let t = trend(&pts, &TrendConfig::default());
        assert_eq!(t.direction, Direction::Stable);
        assert!(t.theil_sen_slope_per_second.abs() < 0.01);
    }

    #[test]
    fn degenerate_windows_are_stable() {
        let cfg = TrendConfig::default();
        for pts in [
            vec![],
            vec![Point::new(5, 1.0)],
            vec![Point::new(7, 1.0), Point::new(7, 2.0), Point::new(7, 3.0)],
            vec![Point::new(0, 0.1), Point::new(1000, 0.1), Point::new(2000, 0.1)],
            vec![Point::new(0, f64::NAN), Point::new(1, f64::INFINITY)],
        ] {
            let t = trend(&pts, &cfg);
            assert_eq!(t.direction, Direction::Stable, "{pts:?}");
            assert_eq!((t.slope_per_second, t.p_value, t.r_squared), (0.0, 1.0, 0.0));
        }
        let c = trend(&[Point::new(0, 0.1), Point::new(1000, 0.1), Point::new(2000, 0.1)], &cfg);
        assert_eq!(c.intercept, 0.1);
        let two = trend(&[Point::new(0, 1.0), Point::new(1000, 5.0)], &cfg);
        assert_eq!((two.slope_per_second, two.p_value), (4.0, 1.0));
        assert!((two.intercept - 1.0).abs() < 1e-12);
        assert_eq!((two.slope_std_error, two.direction), (None, Direction::Stable));
    }

    #[test]
    fn near_zero_series_needs_the_absolute_floor() {
        let cfg = TrendConfig { min_absolute_change: 1.0, ..TrendConfig::default() };
        let pts = line(50, 1000, 1e-6, 0.0);
        assert_eq!(trend(&pts, &cfg).direction, Direction::Stable);
        assert_eq!(trend(&pts, &TrendConfig::default()).direction, Direction::Increasing);
    }

    #[test]
    fn sampled_theil_sen_is_deterministic_and_close() {
        let pts: Vec<Point> = (0..2000)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let x = i as f64;
                Point::new(i * 1000, 2.0 * x + noise(i))
            })
            .collect();
        let cfg = TrendConfig::default();
        let a = theil_sen_slope(&pts, &cfg).unwrap();
        assert_eq!(Some(a), theil_sen_slope(&pts, &cfg));
        assert!((a - 2.0).abs() < 1e-3, "{a}");
    }

    #[test]
    fn invalid_config_falls_back() {
        let bad =
            TrendConfig { alpha: f64::NAN, theil_sen_sample_pairs: 0, ..TrendConfig::default() };
        assert!(bad.validate().is_err());
        let t = trend(&line(20, 1000, 1.0, 0.0), &bad);
        assert_eq!(t.direction, Direction::Increasing);
    }

    proptest! {
        #[test]
        fn slope_of_a_line_is_recovered(
            a in -1e3f64..1e3, b in -1e6f64..1e6, n in 3i64..300, step in 1i64..100_000,
        ) {
            let t = trend(&line(n, step, a, b), &TrendConfig::default());
            let tol = 1e-6 * (a.abs() + b.abs() / 1e3).max(1.0);
            prop_assert!((t.slope_per_second - a).abs() <= tol, "{} vs {a}", t.slope_per_second);
            prop_assert!((t.theil_sen_slope_per_second - a).abs() <= tol);
            prop_assert!((t.slope_per_hour - a * 3600.0).abs() <= tol * 3600.0);
        }

        #[test]
        fn theil_sen_survives_outliers(
            a in -10f64..10.0, b in -100f64..100.0, n in 20usize..200,
            frac in 0.0f64..0.29, seed in any::<u64>(), junk in -1e9f64..1e9,
        ) {
            let mut pts = line(i64::try_from(n).unwrap(), 1000, a, b);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let k = (frac * n as f64) as usize;
            let mut rng = SplitMix64(seed);
            for _ in 0..k {
                let i = rng.below(n);
                pts[i].value = junk;
            }
            let s = theil_sen_slope(&pts, &TrendConfig::default()).unwrap();
            // with < 29 % outliers the median pairwise slope stays close to a
            prop_assert!((s - a).abs() <= 0.1 * a.abs().max(1.0), "{s} vs {a} ({k} outliers)");
        }

        #[test]
        fn no_nan_for_any_input(
            raw in prop::collection::vec((any::<i64>(), prop::num::f64::ANY), 0..60),
        ) {
            let pts: Vec<Point> = raw.into_iter().map(Point::from).collect();
            let t = trend(&pts, &TrendConfig::default());
            for v in [t.slope_per_second, t.slope_per_hour, t.intercept, t.r_squared, t.p_value,
                      t.theil_sen_slope_per_second, t.theil_sen_slope_per_hour] {
                prop_assert!(v.is_finite());
            }
            prop_assert!(t.slope_std_error.is_none_or(f64::is_finite));
            prop_assert!((0.0..=1.0).contains(&t.p_value) && (0.0..=1.0).contains(&t.r_squared));
            if let Some((lo, hi)) = t.slope_interval(0.95) {
                prop_assert!(lo.is_finite() && hi.is_finite() && lo <= hi);
            }
        }
    }
}
