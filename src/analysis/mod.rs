//! Trends, forecasts, counter rates, correlation and performance summaries.
//!
//! Everything here is pure: functions and small value types over slices of
//! [`Point`]s, with the evaluation time (`now_ms`) passed in where it matters.
//! Nothing reads a clock, takes a lock or spawns a thread, so the engine, the
//! alert manager, tests and benches all call the same code.
//!
//! # Bad data
//!
//! One policy, shared with [`crate::stats`]:
//! - points whose value is not finite are ignored;
//! - points need not arrive sorted; functions that care about order sort a copy;
//! - no output field is ever NaN or infinite. Results that are undefined for
//!   the input (a correlation of a constant series, a crossing time for a flat
//!   trend) are `None`, and degenerate windows (fewer than three points, all
//!   timestamps equal, constant values) give a defined, [`Direction::Stable`]
//!   answer. This matters because JSON cannot carry NaN.
//!
//! # Parts
//!
//! | need | function or type |
//! |---|---|
//! | descriptive statistics of a window | [`statistics`], [`window`] |
//! | least-squares and Theil–Sen trend, classified | [`trend`], [`Trend`], [`TrendConfig`] |
//! | value at a horizon, time to a threshold | [`predict_linear`], [`time_to_threshold`], [`Crossing`] |
//! | forecast alert condition with hysteresis | [`ForecastCondition`] |
//! | counter rates with reset handling | [`counter_rates`], [`increase`], [`average_rate`] |
//! | correlation and lag | [`pearson`], [`spearman`], [`correlate`], [`correlation_matrix`], [`best_lag`] |
//! | one series, everything the dashboard shows | [`analyze_series`], [`SeriesAnalysis`] |
//! | health verdict over named series | [`performance_summary`], [`PerformanceSummary`] |
//!
//! # Examples
//!
//! ```
//! use watchpost::analysis::{Direction, Point, TrendConfig, trend};
//!
//! // disk usage growing by 5 % per hour, sampled every minute for 3 hours
//! let points: Vec<Point> = (0..180u32)
//!     .map(|i| Point::new(i64::from(i) * 60_000, 40.0 + f64::from(i) * 5.0 / 60.0))
//!     .collect();
//! let t = trend(&points, &TrendConfig::default());
//! assert_eq!(t.direction, Direction::Increasing);
//! assert!((t.slope_per_hour - 5.0).abs() < 1e-9);
//! ```

mod correlate;
mod forecast;
mod rate;
mod series;
mod summary;
mod trend;

use serde::{Deserialize, Serialize};

pub use self::{
    correlate::{
        CorrelationMatrix, Lag, Method, align, best_lag, correlate, correlation_matrix, pearson,
        spearman,
    },
    forecast::{
        CrossDirection, Crossing, ForecastCondition, ForecastSupport, predict_linear,
        time_to_threshold,
    },
    rate::{average_rate, counter_rates, increase},
    series::{
        AnalysisConfig, Forecast, SeriesAnalysis, TrendReport, analyze_series, statistics, window,
    },
    summary::{
        AnomalyDigest, Check, CheckKind, HealthStatus, Issue, NetworkAnalysis, PerformanceSummary,
        SeriesSource, Severity, SummaryConfig, SummarySection, performance_summary,
    },
    trend::{Direction, Trend, TrendConfig, theil_sen_slope, trend},
};

/// One sample of a series: a timestamp in milliseconds since the Unix epoch and a value.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::Point;
/// let p = Point::new(1_000, 2.5);
/// assert_eq!(p, Point::from((1_000, 2.5)));
/// assert_eq!((p.ts_ms, p.value), (1_000, 2.5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The sampled value.
    pub value: f64,
}

impl Point {
    /// A point at `ts_ms` with `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = watchpost::analysis::Point::new(5, 1.0);
    /// assert_eq!(p.ts_ms, 5);
    /// ```
    pub const fn new(ts_ms: i64, value: f64) -> Self {
        Self { ts_ms, value }
    }
}

impl From<(i64, f64)> for Point {
    fn from((ts_ms, value): (i64, f64)) -> Self {
        Self { ts_ms, value }
    }
}

/// The finite points of `points`, sorted by timestamp (stable, so equal
/// timestamps keep their order).
fn clean(points: &[Point]) -> Vec<Point> {
    let mut out: Vec<Point> = points.iter().copied().filter(|p| p.value.is_finite()).collect();
    if !out.is_sorted_by_key(|p| p.ts_ms) {
        out.sort_by_key(|p| p.ts_ms);
    }
    out
}

/// Seconds from `from_ms` to `to_ms`, exact for any pair of `i64` timestamps.
#[allow(clippy::cast_precision_loss)] // a span of ms as f64 is exact below 2^53 ms (285 000 years)
fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (i128::from(to_ms) - i128::from(from_ms)) as f64 / 1000.0
}

/// `x` if finite, else `fallback`; overflows saturate to the largest finite value.
fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() {
        x
    } else if x == f64::INFINITY {
        f64::MAX
    } else if x == f64::NEG_INFINITY {
        f64::MIN
    } else {
        fallback
    }
}

/// `ts_ms` plus `seconds`, saturating at the ends of the `i64` range.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // clamped into range first
fn add_seconds(ts_ms: i64, seconds: f64) -> i64 {
    let (lo, hi) = (i64::MIN as f64, i64::MAX as f64);
    let target = (ts_ms as f64 + seconds * 1000.0).round();
    if target.is_nan() { ts_ms } else { target.clamp(lo, hi) as i64 }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;

    #[test]
    fn clean_drops_non_finite_and_sorts() {
        let pts = [Point::new(3, 1.0), Point::new(1, f64::NAN), Point::new(2, 2.0)];
        assert_eq!(clean(&pts), vec![Point::new(2, 2.0), Point::new(3, 1.0)]);
    }

    #[test]
    fn helpers_saturate() {
        assert_eq!(seconds_between(i64::MIN, i64::MAX), 18_446_744_073_709_551.615);
        assert_eq!(finite_or(f64::INFINITY, 0.0), f64::MAX);
        assert_eq!(finite_or(f64::NAN, 1.0), 1.0);
        assert_eq!(add_seconds(i64::MAX, 1e300), i64::MAX);
        assert_eq!(add_seconds(1_000, 1.5), 2_500);
    }
}
