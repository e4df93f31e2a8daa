//! Everything the dashboard shows about one series: statistics, trend and forecast.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    CrossDirection, Crossing, Point, Trend, TrendConfig, add_seconds, clean, time_to_threshold,
    trend::fit,
};
use crate::stats::{Summary, summarize_owned};

/// Descriptive statistics of the values in `points` (count, min, max, mean,
/// median, standard deviation, p50/p90/p95/p99), ignoring non-finite values.
///
/// `None` for a window without finite values; a single value has a standard
/// deviation of 0 and every percentile equal to it.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, statistics};
/// let s = statistics(&[Point::new(0, 1.0), Point::new(1, 3.0)]).unwrap();
/// assert_eq!((s.count, s.mean, s.p50), (2, 2.0, 2.0));
/// assert!(statistics(&[]).is_none());
/// ```
pub fn statistics(points: &[Point]) -> Option<Summary> {
    summarize_owned(points.iter().map(|p| p.value).collect())
}

/// The points of a time-sorted slice with `from_ms <= ts_ms <= to_ms`, by
/// binary search (no copy). On unsorted input the result is unspecified.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, window};
/// let pts: Vec<Point> = (0..10).map(|i| Point::new(i * 1000, i as f64)).collect();
/// assert_eq!(window(&pts, 2000, 4000).len(), 3);
/// assert!(window(&pts, 50_000, 60_000).is_empty());
/// ```
pub fn window(points: &[Point], from_ms: i64, to_ms: i64) -> &[Point] {
    let start = points.partition_point(|p| p.ts_ms < from_ms);
    let end = points.partition_point(|p| p.ts_ms <= to_ms).max(start);
    &points[start..end]
}

/// Settings for [`analyze_series`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{AnalysisConfig, CrossDirection};
/// let disk = AnalysisConfig {
///     horizon: Duration::from_hours(24),
///     threshold: Some(100.0),
///     ..AnalysisConfig::default()
/// };
/// assert_eq!(disk.direction, CrossDirection::Rising);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisConfig {
    /// How trends are classified. Default [`TrendConfig::default`].
    pub trend: TrendConfig,
    /// How far ahead to predict the value. Default one hour.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// A level whose crossing time to predict, such as 100 for a percentage.
    /// Default `None`.
    pub threshold: Option<f64>,
    /// Which way `threshold` is crossed. Default [`CrossDirection::Rising`].
    pub direction: CrossDirection,
    /// Confidence level of the crossing-time interval. Default 0.95.
    pub confidence: f64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            trend: TrendConfig::default(),
            horizon: Duration::from_hours(1),
            threshold: None,
            direction: CrossDirection::Rising,
            confidence: 0.95,
        }
    }
}

/// A series' forecast, as shown on the dashboard.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{AnalysisConfig, Point, analyze_series};
/// let pts = [Point::new(0, 1.0), Point::new(60_000, 2.0), Point::new(120_000, 3.0)];
/// let f = analyze_series(&pts, 120_000, &AnalysisConfig::default()).trend.forecast;
/// assert_eq!(f.horizon_seconds, 3600.0);
/// assert!((f.predicted_value.unwrap() - 63.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// How far ahead of `now` the prediction is, in seconds.
    pub horizon_seconds: f64,
    /// Timestamp of the prediction (`now` plus the horizon), in milliseconds.
    pub at_ts_ms: i64,
    /// The least-squares line's value at `at_ts_ms`; `None` with fewer than
    /// two points.
    pub predicted_value: Option<f64>,
    /// When the configured threshold is reached; `None` without a threshold
    /// or when no crossing is predicted.
    pub crossing: Option<Crossing>,
}

/// A trend together with its forecast; serialized as the [`Trend`] fields
/// plus `forecast`.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{AnalysisConfig, Point, analyze_series};
/// let pts: Vec<Point> = (0..5).map(|i| Point::new(i * 1000, 2.0 * i as f64)).collect();
/// let a = analyze_series(&pts, 4000, &AnalysisConfig::default());
/// let json = serde_json::to_value(&a.trend)?;
/// assert_eq!(json["slope_per_second"], 2.0);
/// assert_eq!(json["direction"], "increasing");
/// assert!(json["forecast"]["predicted_value"].is_number());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendReport {
    /// The fitted trend.
    #[serde(flatten)]
    pub trend: Trend,
    /// Predictions from it.
    pub forecast: Forecast,
}

/// Statistics, trend and forecast of one series' window.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{AnalysisConfig, SeriesAnalysis, analyze_series};
/// let empty = analyze_series(&[], 0, &AnalysisConfig::default());
/// assert!(empty.statistics.is_none());
/// let json = serde_json::to_string(&empty)?;
/// assert_eq!(serde_json::from_str::<SeriesAnalysis>(&json)?, empty);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesAnalysis {
    /// Descriptive statistics; `None` for an empty window.
    pub statistics: Option<Summary>,
    /// Trend and forecast.
    pub trend: TrendReport,
}

/// Analyses one window of a series as seen at `now_ms`: [`statistics`], the
/// [`trend`](super::trend()) (least squares, Theil–Sen, classification) and a
/// [`Forecast`] at `config.horizon`, with the crossing time of
/// `config.threshold` when one is set.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{AnalysisConfig, Direction, Point, analyze_series};
/// // memory at 60 %, +5 % per hour, one sample a minute for two hours
/// let pts: Vec<Point> =
///     (0..120).map(|i| Point::new(i * 60_000, 60.0 + 5.0 * i as f64 / 60.0)).collect();
/// let cfg = AnalysisConfig { threshold: Some(100.0), ..AnalysisConfig::default() };
/// let a = analyze_series(&pts, 120 * 60_000, &cfg);
/// assert_eq!(a.trend.trend.direction, Direction::Increasing);
/// let crossing = a.trend.forecast.crossing.unwrap();
/// assert!((crossing.eta_seconds - 6.0 * 3600.0).abs() < 1e-6); // 70 % now, 30 % to go
/// ```
pub fn analyze_series(points: &[Point], now_ms: i64, config: &AnalysisConfig) -> SeriesAnalysis {
    let pts = clean(points);
    let statistics = summarize_owned(pts.iter().map(|p| p.value).collect());
    let trend_config = config.trend.sanitized();
    let trend = fit(&pts, &trend_config, true);
    let horizon_seconds = config.horizon.as_secs_f64();
    let at_ts_ms = add_seconds(now_ms, horizon_seconds);
    let forecast = Forecast {
        horizon_seconds,
        at_ts_ms,
        predicted_value: (pts.len() >= 2).then(|| trend.value_at(at_ts_ms)),
        crossing: config.threshold.and_then(|threshold| {
            time_to_threshold(&trend, now_ms, threshold, config.direction, config.confidence)
        }),
    };
    SeriesAnalysis { statistics, trend: TrendReport { trend, forecast } }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys whose value may legitimately be null (documented `Option`s).
    const NULLABLE: [&str; 5] =
        ["statistics", "slope_std_error", "predicted_value", "crossing", "latest_seconds"];

    /// `serde_json` writes NaN and infinities as null: no other key may be null.
    fn nulls_ok(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.iter().all(
                    |(k, v)| {
                        if v.is_null() { NULLABLE.contains(&k.as_str()) } else { nulls_ok(v) }
                    },
                )
            }
            serde_json::Value::Array(a) => a.iter().all(nulls_ok),
            _ => true,
        }
    }

    fn all_finite(a: &SeriesAnalysis) -> bool {
        let f = a.trend.forecast;
        let options = [
            a.trend.trend.slope_std_error,
            f.predicted_value,
            f.crossing.and_then(|c| c.latest_seconds),
        ];
        let json = serde_json::to_value(a).unwrap();
        nulls_ok(&json)
            && options.iter().flatten().all(|v| v.is_finite())
            && serde_json::from_value::<SeriesAnalysis>(json).is_ok()
    }

    #[test]
    fn forecast_fields() {
        let pts: Vec<Point> =
            (0..10u8).map(|i| Point::new(i64::from(i) * 1000, 10.0 + f64::from(i))).collect();
        let cfg = AnalysisConfig {
            horizon: Duration::from_secs(10),
            threshold: Some(30.0),
            ..AnalysisConfig::default()
        };
        let a = analyze_series(&pts, 9000, &cfg);
        assert_eq!(a.trend.forecast.at_ts_ms, 19_000);
        assert!((a.trend.forecast.predicted_value.unwrap() - 29.0).abs() < 1e-9);
        assert!((a.trend.forecast.crossing.unwrap().eta_seconds - 11.0).abs() < 1e-9);
        assert!(all_finite(&a));
    }

    #[test]
    fn single_point() {
        let a = analyze_series(&[Point::new(5, 42.0)], 5, &AnalysisConfig::default());
        let s = a.statistics.unwrap();
        assert_eq!((s.count, s.stddev, s.p99), (1, 0.0, 42.0));
        assert_eq!(a.trend.forecast.predicted_value, None);
        assert!(all_finite(&a));
    }

    proptest! {
        #[test]
        fn no_nan_for_any_input(
            raw in prop::collection::vec((any::<i64>(), prop::num::f64::ANY), 0..50),
            now in any::<i64>(),
            threshold in prop::num::f64::ANY,
        ) {
            let pts: Vec<Point> = raw.into_iter().map(Point::from).collect();
            let cfg = AnalysisConfig { threshold: Some(threshold), ..AnalysisConfig::default() };
            let a = analyze_series(&pts, now, &cfg);
            prop_assert!(all_finite(&a), "{a:?}");
        }
    }
}
