//! Linear forecasts: value at a horizon, time to a threshold, and a forecast
//! alert condition with hysteresis.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Point, Trend, TrendConfig, add_seconds, clean, finite_or, trend::fit};
use crate::{Error, Result};

/// Which way a threshold is crossed.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::CrossDirection;
/// assert_eq!(serde_json::to_string(&CrossDirection::Rising)?, "\"rising\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossDirection {
    /// The value climbs to the threshold or above (disk filling up).
    Rising,
    /// The value drops to the threshold or below (free space running out).
    Falling,
}

impl CrossDirection {
    /// +1 for rising, −1 for falling.
    fn sign(self) -> f64 {
        match self {
            Self::Rising => 1.0,
            Self::Falling => -1.0,
        }
    }
}

/// When a trend is predicted to cross a threshold, with a confidence interval.
///
/// Times are seconds after `now`. The point estimate uses the least-squares
/// slope; the bounds use the ends of the slope's confidence interval. When
/// that interval reaches zero (or the wrong sign), the crossing might never
/// happen, so `latest_seconds` is `None`.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{CrossDirection, Point, TrendConfig, time_to_threshold, trend};
/// // 1 % per hour from 90 %, sampled each minute for two hours
/// let pts: Vec<Point> =
///     (0..120).map(|i| Point::new(i * 60_000, 90.0 + i as f64 / 60.0)).collect();
/// let now = 119 * 60_000;
/// let t = trend(&pts, &TrendConfig::default());
/// let c = time_to_threshold(&t, now, 100.0, CrossDirection::Rising, 0.95).unwrap();
/// assert!((c.eta_seconds - 3600.0 * (10.0 - 119.0 / 60.0)).abs() < 1e-6);
/// assert!(c.earliest_seconds <= c.eta_seconds && Some(c.eta_seconds) <= c.latest_seconds);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The threshold.
    pub threshold: f64,
    /// Which way it is crossed.
    pub direction: CrossDirection,
    /// Point estimate of the time to the crossing, in seconds (0 if already crossed).
    pub eta_seconds: f64,
    /// Timestamp of the point estimate, in milliseconds.
    pub at_ts_ms: i64,
    /// Earliest crossing within the confidence interval, in seconds.
    pub earliest_seconds: f64,
    /// Latest crossing within the confidence interval, in seconds; `None`
    /// when the interval admits a flat or reversed trend (unbounded).
    pub latest_seconds: Option<f64>,
    /// Confidence level of the interval, such as 0.95.
    pub confidence: f64,
}

/// The least-squares prediction of `points` at `now_ms + horizon`, like
/// Prometheus' `predict_linear(v[window], horizon_seconds)` evaluated at `now_ms`.
///
/// `None` with fewer than two finite points. A window whose points share one
/// timestamp predicts its mean.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{Point, predict_linear};
/// let pts = [Point::new(0, 10.0), Point::new(60_000, 11.0), Point::new(120_000, 12.0)];
/// let v = predict_linear(&pts, 120_000, Duration::from_mins(10)).unwrap();
/// assert!((v - 22.0).abs() < 1e-9);
/// assert_eq!(predict_linear(&pts[..1], 0, Duration::ZERO), None);
/// ```
pub fn predict_linear(points: &[Point], now_ms: i64, horizon: Duration) -> Option<f64> {
    let pts = clean(points);
    if pts.len() < 2 {
        return None;
    }
    let line = fit(&pts, &TrendConfig::default(), false);
    Some(line.value_at(add_seconds(now_ms, horizon.as_secs_f64())))
}

/// When `trend` reaches `threshold` going in `direction`, as seen at `now_ms`.
///
/// The current level is the trend line's value at `now_ms` (not the last
/// sample), as in `predict_linear`. If that level is already at or past the
/// threshold the crossing is now (all times 0). If the slope is zero or
/// points away from the threshold, `None`. The interval bounds the slope
/// only, with Student's t at n − 2 degrees of freedom and the slope's
/// standard error (see [`Trend::slope_interval`]); the uncertainty of the
/// level is not included. Without a standard error (two points), the bounds
/// are `0` and unbounded. `confidence` outside (0, 1) means 0.95.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{CrossDirection, Point, TrendConfig, time_to_threshold, trend};
/// let pts: Vec<Point> = (0..10).map(|i| Point::new(i * 1000, 50.0 - 2.0 * i as f64)).collect();
/// let t = trend(&pts, &TrendConfig::default());
/// let c = time_to_threshold(&t, 9_000, 10.0, CrossDirection::Falling, 0.95).unwrap();
/// assert!((c.eta_seconds - 11.0).abs() < 1e-9);
/// assert_eq!(c.at_ts_ms, 20_000);
/// assert!(time_to_threshold(&t, 9_000, 100.0, CrossDirection::Rising, 0.95).is_none());
/// ```
pub fn time_to_threshold(
    trend: &Trend,
    now_ms: i64,
    threshold: f64,
    direction: CrossDirection,
    confidence: f64,
) -> Option<Crossing> {
    if !threshold.is_finite() || trend.points == 0 {
        return None;
    }
    let confidence = if confidence > 0.0 && confidence < 1.0 { confidence } else { 0.95 };
    let sign = direction.sign();
    let gap = sign * (threshold - trend.value_at(now_ms));
    let crossing = |eta: f64, earliest: f64, latest: Option<f64>| Crossing {
        threshold,
        direction,
        eta_seconds: eta,
        at_ts_ms: add_seconds(now_ms, eta),
        earliest_seconds: earliest,
        latest_seconds: latest,
        confidence,
    };
    if gap <= 0.0 {
        return Some(crossing(0.0, 0.0, Some(0.0)));
    }
    let speed = sign * trend.slope_per_second;
    if speed <= 0.0 {
        return None;
    }
    let eta = finite_or(gap / speed, f64::MAX);
    let Some((lo, hi)) = trend.slope_interval(confidence) else {
        return Some(crossing(eta, 0.0, None));
    };
    let (slow, fast) = {
        let (a, b) = (sign * lo, sign * hi);
        (a.min(b), a.max(b))
    };
    let earliest = finite_or(gap / fast, f64::MAX).min(eta);
    let latest = (slow > 0.0).then(|| finite_or(gap / slow, f64::MAX).max(eta));
    Some(crossing(eta, earliest, latest))
}

/// How much evidence a forecast needs before it counts: a least-squares line
/// fitted to a few seconds of a steady series can "predict" anything (26 s of
/// memory at 3 % once read as "runs out in about 41 min").
///
/// A trend supports a forecast when its points span at least `min_span` and
/// the line explains at least `min_r_squared` of their variance; a predicted
/// crossing counts only when it lies at most `max_extrapolation` times that
/// span ahead (5 minutes of data foresee 2 hours at most).
/// [`performance_summary`](super::performance_summary) raises no trend or
/// exhaustion issue from a trend that falls short.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{ForecastSupport, Point, TrendConfig, trend};
/// let support = ForecastSupport::default();
/// assert_eq!(support.min_span, Duration::from_mins(3));
/// // a clean ramp, but only 30 s of it
/// let short: Vec<Point> = (0..30).map(|i| Point::new(i * 1000, 3.0 + i as f64 * 0.04)).collect();
/// assert!(!support.supports(&trend(&short, &TrendConfig::default())));
/// // the same kind of ramp over 20 minutes: a crossing 6 h ahead counts, 9 h does not
/// let long: Vec<Point> = (0..21).map(|i| Point::new(i * 60_000, 3.0 + i as f64)).collect();
/// let t = trend(&long, &TrendConfig::default());
/// assert!(support.supports(&t));
/// assert!(support.reaches(&t, 6.0 * 3600.0) && !support.reaches(&t, 9.0 * 3600.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastSupport {
    /// The shortest span of data (first to last point) a trend rests on.
    /// Default 3 minutes.
    #[serde(with = "humantime_serde")]
    pub min_span: Duration,
    /// The lowest coefficient of determination (R², in [0, 1]) of the fitted
    /// line. Default 0.5.
    pub min_r_squared: f64,
    /// How many times the data's span a crossing may lie ahead. Default 24.
    pub max_extrapolation: f64,
}

impl Default for ForecastSupport {
    fn default() -> Self {
        Self { min_span: Duration::from_mins(3), min_r_squared: 0.5, max_extrapolation: 24.0 }
    }
}

impl ForecastSupport {
    /// Whether `trend` rests on enough data, and fits it well enough, to
    /// forecast from. A NaN setting means its default.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{ForecastSupport, TrendConfig, trend};
    /// assert!(!ForecastSupport::default().supports(&trend(&[], &TrendConfig::default())));
    /// ```
    pub fn supports(&self, trend: &Trend) -> bool {
        let min_r_squared = if self.min_r_squared.is_nan() {
            Self::default().min_r_squared
        } else {
            self.min_r_squared
        };
        trend.points >= 3
            && span_ms(trend) >= duration_ms(self.min_span)
            && trend.r_squared >= min_r_squared
    }

    /// Whether a crossing `eta_seconds` ahead, predicted from `trend`, counts:
    /// the trend [`supports`](Self::supports) a forecast and the crossing is
    /// at most `max_extrapolation` times the data's span ahead.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{ForecastSupport, TrendConfig, trend};
    /// let flat = trend(&[], &TrendConfig::default());
    /// assert!(!ForecastSupport::default().reaches(&flat, 0.0));
    /// ```
    pub fn reaches(&self, trend: &Trend, eta_seconds: f64) -> bool {
        let ratio = if self.max_extrapolation.is_nan() {
            Self::default().max_extrapolation
        } else {
            self.max_extrapolation
        };
        #[allow(clippy::cast_precision_loss, reason = "a span in ms is far below 2^52")]
        let span_seconds = span_ms(trend) as f64 / 1000.0;
        self.supports(trend) && eta_seconds <= ratio * span_seconds
    }
}

fn span_ms(trend: &Trend) -> i64 {
    trend.end_ts_ms.saturating_sub(trend.start_ts_ms)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A forecast alert condition with hysteresis, like Netdata's disk-fill
/// alarms: it fires when the predicted crossing of `threshold` is at most
/// `warn_within` away, and once firing it clears only when the prediction
/// moves beyond `clear_beyond` or the trend stops heading for the threshold.
///
/// The prediction is [`time_to_threshold`]'s point estimate over the window
/// handed to [`evaluate`](Self::evaluate). A window with fewer than three
/// finite points cannot support a forecast, so it keeps the previous state
/// (absence of data is a separate alert condition).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{CrossDirection, ForecastCondition, Point};
///
/// let disk_full = ForecastCondition::new(
///     100.0, CrossDirection::Rising, Duration::from_hours(8), Duration::from_hours(48))?;
/// // 2 % per hour from 85 %: full in about 7.5 h
/// let pts: Vec<Point> =
///     (0..60).map(|i| Point::new(i * 60_000, 85.0 + 2.0 * i as f64 / 60.0)).collect();
/// let now = 59 * 60_000;
/// assert!(disk_full.evaluate(false, &pts, now));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastCondition {
    /// The level that must not be reached.
    pub threshold: f64,
    /// Which way the series heads for it.
    pub direction: CrossDirection,
    /// Fire when the predicted crossing is at most this far ahead.
    pub warn_within: Duration,
    /// Once firing, clear only when the predicted crossing is further ahead
    /// than this (or none is predicted). Not below `warn_within`.
    pub clear_beyond: Duration,
}

impl ForecastCondition {
    /// A validated condition.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `threshold` is not finite or
    /// `clear_beyond` is shorter than `warn_within`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{CrossDirection, ForecastCondition};
    /// let h = Duration::from_hours(1);
    /// assert!(ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h).is_ok());
    /// assert!(ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, h).is_err());
    /// ```
    pub fn new(
        threshold: f64,
        direction: CrossDirection,
        warn_within: Duration,
        clear_beyond: Duration,
    ) -> Result<Self> {
        if !threshold.is_finite() {
            return Err(Error::InvalidConfig {
                field: "threshold",
                reason: format!("must be finite, got {threshold}"),
            });
        }
        if clear_beyond < warn_within {
            return Err(Error::InvalidConfig {
                field: "clear_beyond",
                reason: format!("{clear_beyond:?} is shorter than warn_within {warn_within:?}"),
            });
        }
        Ok(Self { threshold, direction, warn_within, clear_beyond })
    }

    /// The predicted crossing over `points` as seen at `now_ms` (at 95 %
    /// confidence), or `None` when none is predicted or there are fewer than
    /// three finite points.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{CrossDirection, ForecastCondition, Point};
    /// let c = ForecastCondition::new(
    ///     0.0, CrossDirection::Falling, Duration::from_hours(1), Duration::from_hours(2))?;
    /// let pts = [Point::new(0, 30.0), Point::new(1000, 20.0), Point::new(2000, 10.0)];
    /// assert!((c.crossing(&pts, 2000).unwrap().eta_seconds - 1.0).abs() < 1e-9);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn crossing(&self, points: &[Point], now_ms: i64) -> Option<Crossing> {
        let pts = clean(points);
        if pts.len() < 3 {
            return None;
        }
        let line = fit(&pts, &TrendConfig::default(), false);
        time_to_threshold(&line, now_ms, self.threshold, self.direction, 0.95)
    }

    /// Whether the condition holds now, given whether it held at the
    /// previous evaluation.
    ///
    /// - Not firing: fires when the predicted crossing is within `warn_within`.
    /// - Firing: keeps firing while a crossing is predicted within
    ///   `clear_beyond`; clears when it moves further out or the trend no
    ///   longer heads for the threshold.
    /// - Fewer than three finite points: returns `was_firing`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{CrossDirection, ForecastCondition, Point};
    /// let c = ForecastCondition::new(
    ///     100.0, CrossDirection::Rising, Duration::from_hours(8), Duration::from_hours(48))?;
    /// // 1 % per hour from 70 %: full in ~30 h, between the two limits
    /// let pts: Vec<Point> =
    ///     (0..60).map(|i| Point::new(i * 60_000, 70.0 + i as f64 / 3600.0 * 60.0)).collect();
    /// let now = 59 * 60_000;
    /// assert!(!c.evaluate(false, &pts, now)); // too far away to fire
    /// assert!(c.evaluate(true, &pts, now)); // but not far enough to clear
    /// assert!(c.evaluate(true, &pts[..2], now)); // too little data: state kept
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn evaluate(&self, was_firing: bool, points: &[Point], now_ms: i64) -> bool {
        if points.iter().filter(|p| p.value.is_finite()).take(3).count() < 3 {
            return was_firing;
        }
        let limit =
            if was_firing { self.clear_beyond.max(self.warn_within) } else { self.warn_within };
        self.crossing(points, now_ms).is_some_and(|c| c.eta_seconds <= limit.as_secs_f64())
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;
    use crate::analysis::trend;
    use statrs::distribution::{ContinuousCDF, StudentsT};

    const HOUR_MS: i64 = 3_600_000;

    fn noisy_line(n: i64, step_ms: i64, per_hour: f64, start: f64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let h = (i * step_ms) as f64 / 3_600_000.0;
                let wiggle = if i % 2 == 0 { 0.3 } else { -0.3 };
                Point::new(i * step_ms, start + per_hour * h + wiggle)
            })
            .collect()
    }

    #[test]
    fn crossing_time_and_interval() {
        // disk at 40 %, +10 % per hour: full 6 h after the window starts, 5 h after now
        let pts = noisy_line(61, 60_000, 10.0, 40.0);
        let now = HOUR_MS;
        let t = trend(&pts, &TrendConfig::default());
        let c = time_to_threshold(&t, now, 100.0, CrossDirection::Rising, 0.95).unwrap();
        let expected = (100.0 - t.value_at(now)) / t.slope_per_second;
        assert!((c.eta_seconds - expected).abs() < 1e-6);
        assert!((c.eta_seconds / 3600.0 - 5.0).abs() < 0.05, "{}", c.eta_seconds / 3600.0);
        // bounds from the t quantile by hand
        let q = StudentsT::new(0.0, 1.0, 59.0).unwrap().inverse_cdf(0.975);
        let se = t.slope_std_error.unwrap();
        let gap = 100.0 - t.value_at(now);
        assert!((c.earliest_seconds - gap / (t.slope_per_second + q * se)).abs() < 1e-6);
        assert!((c.latest_seconds.unwrap() - gap / (t.slope_per_second - q * se)).abs() < 1e-6);
        assert!(c.earliest_seconds < c.eta_seconds && c.eta_seconds < c.latest_seconds.unwrap());
    }

    #[test]
    fn exact_line_has_a_tight_interval() {
        let pts: Vec<Point> = (0..10)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let v = 10.0 * i as f64;
                Point::new(i * 1000, v)
            })
            .collect();
        let t = trend(&pts, &TrendConfig::default());
        let c = time_to_threshold(&t, 9000, 200.0, CrossDirection::Rising, 0.99).unwrap();
        assert!((c.eta_seconds - 11.0).abs() < 1e-9);
        assert!((c.earliest_seconds - 11.0).abs() < 1e-6);
        assert!((c.latest_seconds.unwrap() - 11.0).abs() < 1e-6);
        assert_eq!(c.at_ts_ms, 20_000);
    }

    #[test]
    fn unbounded_when_the_slope_could_be_zero() {
        // a weak upward drift buried in noise
        let pts: Vec<Point> = (0..20)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let x = i as f64;
                Point::new(i * 1000, 50.0 + 0.01 * x + if i % 3 == 0 { 5.0 } else { -2.5 })
            })
            .collect();
        let t = trend(&pts, &TrendConfig::default());
        let (lo, _) = t.slope_interval(0.95).unwrap();
        assert!(lo < 0.0);
        let c = time_to_threshold(&t, 19_000, 100.0, CrossDirection::Rising, 0.95);
        assert!(c.is_none_or(|c| c.latest_seconds.is_none()));
    }

    #[test]
    fn already_crossed_and_wrong_way() {
        let pts = noisy_line(30, 60_000, 10.0, 99.0);
        let t = trend(&pts, &TrendConfig::default());
        let c = time_to_threshold(&t, 29 * 60_000, 100.0, CrossDirection::Rising, 0.95).unwrap();
        assert_eq!((c.eta_seconds, c.latest_seconds, c.at_ts_ms), (0.0, Some(0.0), 29 * 60_000));
        assert!(time_to_threshold(&t, 0, 0.0, CrossDirection::Falling, 0.95).is_none());
        assert!(time_to_threshold(&t, 0, f64::NAN, CrossDirection::Rising, 0.95).is_none());
    }

    #[test]
    fn hysteresis_fires_holds_and_clears() {
        let cond = ForecastCondition::new(
            100.0,
            CrossDirection::Rising,
            Duration::from_hours(8),
            Duration::from_hours(48),
        )
        .unwrap();
        let now = HOUR_MS;
        // full in ~5 h: fires
        let fast = noisy_line(61, 60_000, 10.0, 40.0);
        assert!(cond.evaluate(false, &fast, now));
        // full in ~20 h: does not fire from idle, keeps firing once fired
        let medium = noisy_line(61, 60_000, 3.0, 40.0);
        assert!(!cond.evaluate(false, &medium, now));
        assert!(cond.evaluate(true, &medium, now));
        // full in ~120 h: clears
        let slow = noisy_line(61, 60_000, 0.5, 40.0);
        assert!(!cond.evaluate(true, &slow, now));
        // trend reverses: clears
        let falling = noisy_line(61, 60_000, -3.0, 60.0);
        assert!(!cond.evaluate(true, &falling, now));
        // no data: state kept
        assert!(cond.evaluate(true, &[], now));
        assert!(!cond.evaluate(false, &[], now));
    }

    #[test]
    fn predict_linear_matches_the_line() {
        let pts = [Point::new(1000, 5.0), Point::new(2000, 7.0), Point::new(3000, 9.0)];
        assert_eq!(predict_linear(&pts, 3000, Duration::from_secs(2)), Some(13.0));
        let same_ts = [Point::new(5, 1.0), Point::new(5, 3.0)];
        assert_eq!(predict_linear(&same_ts, 5, Duration::from_hours(1)), Some(2.0));
    }
}
