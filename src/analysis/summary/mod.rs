//! A health verdict over named series: configurable checks, issues and
//! recommendations, plus per-area sections for the dashboard.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    hash::BuildHasher,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    AnalysisConfig, CrossDirection, Direction, ForecastSupport, Point, SeriesAnalysis, Trend,
    analyze_series, clean, increase, rate::counter_rates, statistics, time_to_threshold,
    trend::fit,
};
mod anomaly;

use crate::format::{Unit, format_number};
use crate::stats::Summary;

/// Where the analysis gets series from: `name -> points`.
///
/// Implemented for maps from `String` to `Vec<Point>` and for closures
/// `Fn(&str) -> Option<Vec<Point>>`, so the engine can hand over its history
/// without this module knowing about it. The points are the window to
/// analyse; the caller chooses how far back it reaches.
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use watchpost::analysis::{Point, SeriesSource};
///
/// struct Fixed;
/// impl SeriesSource for Fixed {
///     fn points(&self, name: &str) -> Option<Cow<'_, [Point]>> {
///         (name == "x").then(|| Cow::Owned(vec![Point::new(0, 1.0)]))
///     }
/// }
/// assert!(Fixed.points("x").is_some());
/// let closure = |name: &str| (name == "y").then(Vec::new);
/// assert!(closure.points("x").is_none());
/// ```
pub trait SeriesSource {
    /// The points of series `name`, or `None` if there is no such series.
    fn points(&self, name: &str) -> Option<Cow<'_, [Point]>>;

    /// The series that had anomalous points in the window, for
    /// [`SummaryConfig::anomaly_severity`]. Default: none (a source without
    /// anomaly detection).
    fn anomalies(&self) -> Vec<AnomalyDigest> {
        Vec::new()
    }
}

/// The anomalous points of one series inside the analysed window.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::AnomalyDigest;
/// let d = AnomalyDigest { series: "queue_depth".into(), count: 2, latest_ms: 5_000,
///                         latest_value: 500.0, max_score: 0.97 };
/// assert_eq!(d.count, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDigest {
    /// The series, `name{labels}`.
    pub series: String,
    /// How many of its points scored at or above the anomaly threshold.
    pub count: usize,
    /// When the newest of them was sampled (ms since the Unix epoch).
    pub latest_ms: i64,
    /// Its value.
    pub latest_value: f64,
    /// The highest score among them.
    pub max_score: f64,
}

impl<S: BuildHasher> SeriesSource for HashMap<String, Vec<Point>, S> {
    fn points(&self, name: &str) -> Option<Cow<'_, [Point]>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_slice()))
    }
}

impl SeriesSource for BTreeMap<String, Vec<Point>> {
    fn points(&self, name: &str) -> Option<Cow<'_, [Point]>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_slice()))
    }
}

impl<F: Fn(&str) -> Option<Vec<Point>>> SeriesSource for F {
    fn points(&self, name: &str) -> Option<Cow<'_, [Point]>> {
        self(name).map(Cow::Owned)
    }
}

/// How serious an issue is.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::Severity;
/// assert!(Severity::Critical > Severity::Warning);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// The overall verdict of a [`PerformanceSummary`]: the most severe issue found.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::HealthStatus;
/// assert_eq!(serde_json::to_string(&HealthStatus::Healthy)?, "\"healthy\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No issue found.
    Healthy,
    /// At least one warning, no critical issue.
    Warning,
    /// At least one critical issue.
    Critical,
}

/// What a [`Check`] tests on its series.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::analysis::{CheckKind, Severity};
/// let hot = CheckKind::MeanAbove { threshold: 80.0, severity: Severity::Warning };
/// let full = CheckKind::Exhaustion {
///     threshold: 100.0,
///     critical_within: Duration::from_hours(6),
///     warning_within: Duration::from_hours(24),
/// };
/// assert_ne!(hot, full);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The window's mean is above `threshold`.
    MeanAbove {
        /// The limit.
        threshold: f64,
        /// Severity of the issue raised.
        severity: Severity,
    },
    /// The window's trend is classified as `direction` (see
    /// [`TrendConfig`](super::TrendConfig)) and rests on enough data
    /// ([`SummaryConfig::forecast_support`]).
    Trending {
        /// The direction that raises the issue.
        direction: Direction,
        /// Severity of the issue raised.
        severity: Severity,
    },
    /// The series is predicted to rise to `threshold`: a critical issue when
    /// the crossing is at most `critical_within` away, a warning when at most
    /// `warning_within`. Only a significant trend (p-value below the trend
    /// configuration's `alpha`) resting on enough data
    /// ([`SummaryConfig::forecast_support`]) predicts a crossing; a level
    /// already at the threshold is critical.
    Exhaustion {
        /// The capacity limit, such as 100 for a percentage.
        threshold: f64,
        /// Crossings at most this far ahead are critical.
        #[serde(with = "humantime_serde")]
        critical_within: Duration,
        /// Crossings at most this far ahead (and beyond `critical_within`) are warnings.
        #[serde(with = "humantime_serde")]
        warning_within: Duration,
    },
}

/// One configurable check of a [`SummaryConfig`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Check, CheckKind, Severity};
/// let check = Check {
///     series: "queue_depth".to_owned(),
///     kind: CheckKind::MeanAbove { threshold: 1000.0, severity: Severity::Critical },
///     issue: "Queue backing up".to_owned(),
///     recommendation: "Add consumers".to_owned(),
/// };
/// assert_eq!(check.series, "queue_depth");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The series it looks at.
    pub series: String,
    /// What it tests.
    pub kind: CheckKind,
    /// The issue's title; the measured numbers are appended.
    pub issue: String,
    /// What to do about it.
    pub recommendation: String,
}

/// One problem found by a [`Check`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Issue, Severity};
/// let i = Issue {
///     series: "system_cpu_usage".to_owned(),
///     severity: Severity::Warning,
///     message: "High CPU usage: average 91% over the window (limit 80%)".to_owned(),
/// };
/// assert!(i.message.starts_with("High CPU"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The series it concerns.
    pub series: String,
    /// How serious it is.
    pub severity: Severity,
    /// The check's title followed by the measured numbers.
    pub message: String,
}

/// Settings for [`performance_summary`]. The default reproduces the classic
/// host checks; see [`SummaryConfig::default_checks`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::SummaryConfig;
/// let cfg = SummaryConfig::default();
/// assert_eq!(cfg.cpu_series, "system_cpu_usage");
/// assert_eq!(cfg.checks.len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryConfig {
    /// CPU usage in percent (0–100). Default `system_cpu_usage`.
    pub cpu_series: String,
    /// Memory usage in percent (0–100). Default `system_memory_usage`.
    pub memory_series: String,
    /// Disk usage in percent (0–100). Default `system_disk_usage`.
    pub disk_series: String,
    /// Cumulative bytes sent. Default `system_network_bytes_sent`.
    pub network_sent_series: String,
    /// Cumulative bytes received. Default `system_network_bytes_recv`.
    pub network_recv_series: String,
    /// Trend, horizon and confidence for the sections and checks. Its
    /// `threshold` is ignored: see `capacity`.
    pub analysis: AnalysisConfig,
    /// The level whose crossing time the memory and disk sections predict.
    /// Default `Some(100.0)`. In a configuration file, `"off"` is `None`.
    #[serde(with = "off_or")]
    pub capacity: Option<f64>,
    /// The checks, evaluated in order. Default [`SummaryConfig::default_checks`].
    pub checks: Vec<Check>,
    /// The severity of the issue raised for each series with anomalous points
    /// in the window (see [`SeriesSource::anomalies`]); `None` raises none.
    /// Default `Some(Severity::Warning)`. In a configuration file, `"off"`
    /// is `None`.
    #[serde(with = "off_or")]
    pub anomaly_severity: Option<Severity>,
    /// How many anomalous points a series needs in the window before it is
    /// an issue: isolated points on a healthy machine are not. The series of
    /// one metric that qualify are grouped into one issue. Default 3.
    pub anomaly_min_points: usize,
    /// How much data the trend checks ([`CheckKind::Trending`] and
    /// [`CheckKind::Exhaustion`]) need before a trend or a predicted crossing
    /// becomes an issue (a level already at the threshold needs none).
    /// Default [`ForecastSupport::default`]: 3 minutes of data, an R² of at
    /// least 0.5, crossings at most 24 times that span ahead.
    pub forecast_support: ForecastSupport,
}

/// An optional setting written as its value or `"off"` (TOML has no null;
/// a JSON or YAML null reads as `"off"` too), so `None` survives a round trip
/// through a configuration file.
mod off_or {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OffOr<T> {
        Value(T),
        Text(String),
        Null(()),
    }

    #[allow(clippy::ref_option, reason = "the signature serde's `with` calls")]
    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => v.serialize(serializer),
            None => serializer.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        match OffOr::<T>::deserialize(deserializer)? {
            OffOr::Value(v) => Ok(Some(v)),
            OffOr::Null(()) => Ok(None),
            OffOr::Text(t) if t == "off" => Ok(None),
            OffOr::Text(t) => {
                Err(serde::de::Error::custom(format!("{t:?} is neither a value nor \"off\"")))
            }
        }
    }
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            cpu_series: "system_cpu_usage".to_owned(),
            memory_series: "system_memory_usage".to_owned(),
            disk_series: "system_disk_usage".to_owned(),
            network_sent_series: "system_network_bytes_sent".to_owned(),
            network_recv_series: "system_network_bytes_recv".to_owned(),
            analysis: AnalysisConfig::default(),
            capacity: Some(100.0),
            checks: Self::default_checks(),
            anomaly_severity: Some(Severity::Warning),
            anomaly_min_points: 3,
            forecast_support: ForecastSupport::default(),
        }
    }
}

impl SummaryConfig {
    /// The default checks:
    ///
    /// | series | check | issue |
    /// |---|---|---|
    /// | `system_cpu_usage` | mean > 80 → warning | High CPU usage |
    /// | `system_memory_usage` | mean > 85 → warning | High memory usage |
    /// | `system_memory_usage` | trend increasing → warning | possible memory leak |
    /// | `system_memory_usage` | reaches 100 within 1 h → critical, 6 h → warning | memory predicted to run out |
    /// | `system_disk_usage` | reaches 100 within 6 h → critical, 24 h → warning | disk predicted to fill up |
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::{CheckKind, SummaryConfig};
    /// let checks = SummaryConfig::default_checks();
    /// assert!(matches!(checks[0].kind, CheckKind::MeanAbove { threshold, .. } if threshold == 80.0));
    /// ```
    pub fn default_checks() -> Vec<Check> {
        let check = |series: &str, kind, issue: &str, recommendation: &str| Check {
            series: series.to_owned(),
            kind,
            issue: issue.to_owned(),
            recommendation: recommendation.to_owned(),
        };
        vec![
            check(
                "system_cpu_usage",
                CheckKind::MeanAbove { threshold: 80.0, severity: Severity::Warning },
                "High CPU usage",
                "Profile the busiest code paths, move blocking or batch work off the request \
                 threads, or add CPU capacity",
            ),
            check(
                "system_memory_usage",
                CheckKind::MeanAbove { threshold: 85.0, severity: Severity::Warning },
                "High memory usage",
                "Check caches, buffers and queues for unbounded growth, or add memory",
            ),
            check(
                "system_memory_usage",
                CheckKind::Trending {
                    direction: Direction::Increasing,
                    severity: Severity::Warning,
                },
                "Memory usage keeps increasing (possible memory leak)",
                "Compare heap profiles taken some time apart and look for collections that only \
                 grow",
            ),
            check(
                "system_memory_usage",
                CheckKind::Exhaustion {
                    threshold: 100.0,
                    critical_within: Duration::from_hours(1),
                    warning_within: Duration::from_hours(6),
                },
                "Memory predicted to run out",
                "Find what is growing before the process runs out of memory, or restart it in a \
                 quiet period",
            ),
            check(
                "system_disk_usage",
                CheckKind::Exhaustion {
                    threshold: 100.0,
                    critical_within: Duration::from_hours(6),
                    warning_within: Duration::from_hours(24),
                },
                "Disk predicted to fill up",
                "Free disk space (rotate logs, prune old data) or grow the volume",
            ),
        ]
    }
}

/// Network throughput from the cumulative byte counters.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, PerformanceSummary, SummaryConfig, performance_summary};
/// use std::collections::HashMap;
/// let mut series = HashMap::new();
/// series.insert("system_network_bytes_sent".to_owned(),
///               vec![Point::new(0, 0.0), Point::new(1000, 500.0), Point::new(2000, 1500.0)]);
/// let net = performance_summary(&series, 2000, &SummaryConfig::default()).network_analysis.unwrap();
/// assert_eq!(net.bytes_sent, 1500.0);
/// assert_eq!(net.sent_bytes_per_second.unwrap().max, 1000.0);
/// assert!(net.recv_bytes_per_second.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetworkAnalysis {
    /// Statistics of the per-second send rate; `None` without at least two samples.
    pub sent_bytes_per_second: Option<Summary>,
    /// Statistics of the per-second receive rate; `None` without at least two samples.
    pub recv_bytes_per_second: Option<Summary>,
    /// Bytes sent over the window (resets handled).
    pub bytes_sent: f64,
    /// Bytes received over the window (resets handled).
    pub bytes_recv: f64,
}

/// The verdict part of a [`PerformanceSummary`].
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{HealthStatus, SummaryConfig, performance_summary};
/// let empty = std::collections::HashMap::new();
/// let s = performance_summary(&empty, 0, &SummaryConfig::default()).summary;
/// assert_eq!(s.status, HealthStatus::Healthy);
/// assert!(s.issues.is_empty() && s.recommendations.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarySection {
    /// The most severe issue's level, or healthy.
    pub status: HealthStatus,
    /// Problems found, in check order.
    pub issues: Vec<Issue>,
    /// What to do, one entry per distinct recommendation of the failed checks.
    pub recommendations: Vec<String>,
}

/// A health report over the host series, as shown on the dashboard.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{PerformanceSummary, SummaryConfig, performance_summary};
/// let report = performance_summary(&std::collections::HashMap::new(), 0, &SummaryConfig::default());
/// let json = serde_json::to_string(&report)?;
/// assert_eq!(serde_json::from_str::<PerformanceSummary>(&json)?, report);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceSummary {
    /// The evaluation time, in milliseconds since the Unix epoch.
    pub generated_at_ms: i64,
    /// CPU usage analysis; `None` when the series is missing.
    pub cpu_analysis: Option<SeriesAnalysis>,
    /// Memory usage analysis, with the predicted crossing of the capacity.
    pub memory_analysis: Option<SeriesAnalysis>,
    /// Disk usage analysis, with the predicted crossing of the capacity.
    pub disk_analysis: Option<SeriesAnalysis>,
    /// Network throughput; `None` when both counters are missing.
    pub network_analysis: Option<NetworkAnalysis>,
    /// Status, issues and recommendations.
    pub summary: SummarySection,
}

/// The recommendation that comes with anomaly issues.
const ANOMALY_RECOMMENDATION: &str = "Look at what changed around the anomalous points (deploys, \
    traffic, dependencies); the dashboard's anomalies list their times, values and expected bands";

/// Formats a duration in seconds for an issue message.
fn human(seconds: f64) -> String {
    Unit::Seconds.format(seconds)
}

/// `v` in `unit` with an explicit sign, for slopes.
fn signed(unit: Unit, v: f64) -> String {
    let text = unit.format(v);
    if v >= 0.0 { format!("+{text}") } else { text }
}

/// A p-value as people quote it: `p < 0.001` for the tiny ones.
fn p_value(p: f64) -> String {
    if p < 0.001 { "p < 0.001".to_owned() } else { format!("p = {}", format_number(p)) }
}

/// Runs one check against a series' statistics and trend; returns the issue's
/// severity and message details when it fails.
fn run_check(
    kind: &CheckKind,
    stats: Option<&Summary>,
    trend: &Trend,
    now_ms: i64,
    config: &AnalysisConfig,
    support: &ForecastSupport,
    unit: Unit,
) -> Option<(Severity, String)> {
    match *kind {
        CheckKind::MeanAbove { threshold, severity } => {
            let mean = stats?.mean;
            (mean > threshold).then(|| {
                let (mean, limit) = (unit.format(mean), unit.format(threshold));
                (severity, format!("average {mean} over the window (limit {limit})"))
            })
        }
        CheckKind::Trending { direction, severity } => {
            (trend.direction == direction && support.supports(trend)).then(|| {
                let slope = signed(unit, trend.slope_per_hour);
                (severity, format!("{slope} per hour ({})", p_value(trend.p_value)))
            })
        }
        CheckKind::Exhaustion { threshold, critical_within, warning_within } => {
            let crossing = time_to_threshold(
                trend,
                now_ms,
                threshold,
                CrossDirection::Rising,
                config.confidence,
            )?;
            let already = crossing.eta_seconds == 0.0;
            if !already
                && (trend.p_value >= config.trend.sanitized().alpha
                    || !support.reaches(trend, crossing.eta_seconds))
            {
                return None;
            }
            let eta = crossing.eta_seconds;
            let severity = if eta <= critical_within.as_secs_f64() {
                Severity::Critical
            } else if eta <= warning_within.as_secs_f64() {
                Severity::Warning
            } else {
                return None;
            };
            let level = unit.format(threshold);
            let mut detail = if already {
                format!("at or above {level} now")
            } else {
                format!("reaches {level} in about {}", human(eta))
            };
            if !already {
                let latest = crossing.latest_seconds.map_or_else(|| "unbounded".to_owned(), human);
                let _ =
                    write!(detail, " (between {} and {latest})", human(crossing.earliest_seconds));
            }
            Some((severity, detail))
        }
    }
}

/// Analyses the host series from `source` as seen at `now_ms` and runs the
/// configured checks.
///
/// Each named series is analysed once with [`analyze_series`]; the memory and
/// disk sections also predict when they reach `config.capacity`. Network
/// sections use [`counter_rates`](super::counter_rates) and
/// [`increase`](super::increase). Checks on missing series are skipped. The
/// status is the most severe issue's, or [`HealthStatus::Healthy`].
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use watchpost::analysis::{HealthStatus, Point, SummaryConfig, performance_summary};
///
/// let mut series = HashMap::new();
/// let minutes = |f: fn(f64) -> f64| -> Vec<Point> {
///     (0..60).map(|i| Point::new(i * 60_000, f(f64::from(i as u8)))).collect()
/// };
/// series.insert("system_cpu_usage".to_owned(), minutes(|m| 90.0 + (m % 3.0)));
/// series.insert("system_memory_usage".to_owned(), minutes(|m| 55.0 + m / 2.0)); // +30 %/h
/// let report = performance_summary(&series, 59 * 60_000, &SummaryConfig::default());
/// let s = &report.summary;
/// assert_eq!(s.status, HealthStatus::Critical); // memory full in about half an hour
/// assert!(s.issues.iter().any(|i| i.message.starts_with("High CPU usage")));
/// assert!(s.issues.iter().any(|i| i.message.contains("possible memory leak")));
/// ```
pub fn performance_summary<S: SeriesSource + ?Sized>(
    source: &S,
    now_ms: i64,
    config: &SummaryConfig,
) -> PerformanceSummary {
    let base = AnalysisConfig { threshold: None, ..config.analysis };
    let with_capacity = AnalysisConfig { threshold: config.capacity, ..base };
    let analyse = |name: &str, cfg: &AnalysisConfig| {
        source.points(name).map(|pts| analyze_series(&pts, now_ms, cfg))
    };
    let cpu_analysis = analyse(&config.cpu_series, &base);
    let memory_analysis = analyse(&config.memory_series, &with_capacity);
    let disk_analysis = analyse(&config.disk_series, &with_capacity);
    let network_analysis = {
        let sent = source.points(&config.network_sent_series);
        let recv = source.points(&config.network_recv_series);
        (sent.is_some() || recv.is_some()).then(|| {
            let rate_stats =
                |p: Option<&Cow<'_, [Point]>>| p.and_then(|p| statistics(&counter_rates(p)));
            NetworkAnalysis {
                sent_bytes_per_second: rate_stats(sent.as_ref()),
                recv_bytes_per_second: rate_stats(recv.as_ref()),
                bytes_sent: sent.as_deref().map_or(0.0, increase),
                bytes_recv: recv.as_deref().map_or(0.0, increase),
            }
        })
    };

    // statistics and trend per checked series, computed once
    let trend_config = base.trend.sanitized();
    let mut cache: HashMap<&str, (Option<Summary>, Trend)> = HashMap::new();
    let mut issues = Vec::new();
    let mut recommendations: Vec<String> = Vec::new();
    for check in &config.checks {
        if !cache.contains_key(check.series.as_str()) {
            let Some(points) = source.points(&check.series) else { continue };
            let pts = clean(&points);
            let stats = statistics(&pts);
            cache.insert(&check.series, (stats, fit(&pts, &trend_config, true)));
        }
        let (stats, trend) = &cache[check.series.as_str()];
        if let Some((severity, detail)) = run_check(
            &check.kind,
            stats.as_ref(),
            trend,
            now_ms,
            &base,
            &config.forecast_support,
            Unit::of_metric(&check.series),
        ) {
            issues.push(Issue {
                series: check.series.clone(),
                severity,
                message: format!("{}: {detail}", check.issue),
            });
            if !recommendations.contains(&check.recommendation) {
                recommendations.push(check.recommendation.clone());
            }
        }
    }
    if let Some(severity) = config.anomaly_severity {
        let found = anomaly::issues(source.anomalies(), config.anomaly_min_points, severity);
        if !found.is_empty() {
            let advice = ANOMALY_RECOMMENDATION.to_owned();
            if !recommendations.contains(&advice) {
                recommendations.push(advice);
            }
        }
        issues.extend(found);
    }
    let status = match issues.iter().map(|i| i.severity).max() {
        None => HealthStatus::Healthy,
        Some(Severity::Warning) => HealthStatus::Warning,
        Some(Severity::Critical) => HealthStatus::Critical,
    };
    PerformanceSummary {
        generated_at_ms: now_ms,
        cpu_analysis,
        memory_analysis,
        disk_analysis,
        network_analysis,
        summary: SummarySection { status, issues, recommendations },
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;

    fn minutes(n: i64, f: impl Fn(f64) -> f64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let m = i as f64;
                Point::new(i * 60_000, f(m))
            })
            .collect()
    }

    fn report(series: &[(&str, Vec<Point>)], now_ms: i64) -> PerformanceSummary {
        let map: HashMap<String, Vec<Point>> =
            series.iter().map(|(n, p)| ((*n).to_owned(), p.clone())).collect();
        performance_summary(&map, now_ms, &SummaryConfig::default())
    }

    #[test]
    fn healthy_host() {
        let r = report(
            &[
                ("system_cpu_usage", minutes(60, |m| 30.0 + m % 5.0)),
                ("system_memory_usage", minutes(60, |m| 50.0 + (m % 2.0) * 0.5)),
                ("system_disk_usage", minutes(60, |_| 40.0)),
            ],
            59 * 60_000,
        );
        assert_eq!(r.summary.status, HealthStatus::Healthy, "{:?}", r.summary.issues);
        assert!(r.cpu_analysis.is_some() && r.network_analysis.is_none());
    }

    #[test]
    fn high_cpu_is_a_warning_with_a_recommendation() {
        let r = report(&[("system_cpu_usage", minutes(30, |m| 85.0 + m % 3.0))], 29 * 60_000);
        assert_eq!(r.summary.status, HealthStatus::Warning);
        assert_eq!(r.summary.issues.len(), 1);
        assert!(
            r.summary.issues[0]
                .message
                .starts_with("High CPU usage: average 86% over the window (limit 80%)")
        );
        assert_eq!(r.summary.recommendations.len(), 1);
    }

    #[test]
    fn memory_leak() {
        // +6 % per hour from 50 % over two hours: a leak, 6.35 h from full (no exhaustion issue)
        let r = report(&[("system_memory_usage", minutes(120, |m| 50.0 + m * 0.1))], 119 * 60_000);
        let msgs: Vec<&str> = r.summary.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].starts_with(
            "Memory usage keeps increasing (possible memory leak): +6% per hour (p < 0.001)"
        ));
        assert_eq!(r.summary.status, HealthStatus::Warning);
        let crossing = r.memory_analysis.unwrap().trend.forecast.crossing.unwrap();
        assert!((crossing.eta_seconds / 3600.0 - (100.0 - 61.9) / 6.0).abs() < 1e-6);
    }

    #[test]
    fn high_memory() {
        let r = report(&[("system_memory_usage", minutes(30, |m| 90.0 + m % 2.0))], 29 * 60_000);
        assert_eq!(r.summary.issues.len(), 1, "{:?}", r.summary.issues);
        assert!(r.summary.issues[0].message.starts_with("High memory usage: average 90.5%"));
    }

    #[test]
    fn disk_filling_is_critical_then_warning() {
        // +2 % per hour from 90 %: full in ~5 h → critical
        let fast = report(&[("system_disk_usage", minutes(60, |m| 88.0 + m / 30.0))], 60 * 60_000);
        assert_eq!(fast.summary.status, HealthStatus::Critical, "{:?}", fast.summary.issues);
        assert!(
            fast.summary.issues[0]
                .message
                .starts_with("Disk predicted to fill up: reaches 100% in about 5")
        );
        // +0.5 % per hour from 90 %: full in ~20 h → warning
        let slow = report(&[("system_disk_usage", minutes(60, |m| 89.5 + m / 120.0))], 60 * 60_000);
        assert_eq!(slow.summary.status, HealthStatus::Warning, "{:?}", slow.summary.issues);
        // already full
        let full = report(&[("system_disk_usage", minutes(10, |_| 100.0))], 9 * 60_000);
        assert_eq!(full.summary.status, HealthStatus::Critical);
        assert!(full.summary.issues[0].message.contains("at or above 100% now"));
    }

    #[test]
    fn closures_and_btree_maps_are_sources() {
        let cpu = minutes(10, |_| 95.0);
        let source = |name: &str| (name == "system_cpu_usage").then(|| cpu.clone());
        let r = performance_summary(&source, 9 * 60_000, &SummaryConfig::default());
        assert_eq!(r.summary.status, HealthStatus::Warning);
        let map: BTreeMap<String, Vec<Point>> = [("system_cpu_usage".to_owned(), cpu)].into();
        assert_eq!(performance_summary(&map, 0, &SummaryConfig::default()).summary, r.summary);
    }

    #[test]
    fn anomalies_are_issues_unless_turned_off() {
        struct WithAnomalies;
        impl SeriesSource for WithAnomalies {
            fn points(&self, _: &str) -> Option<Cow<'_, [Point]>> {
                None
            }
            fn anomalies(&self) -> Vec<AnomalyDigest> {
                vec![AnomalyDigest {
                    series: "queue_depth".to_owned(),
                    count: 3,
                    latest_ms: 1_767_225_600_000,
                    latest_value: 500.0,
                    max_score: 0.974,
                }]
            }
        }
        let r = performance_summary(&WithAnomalies, 0, &SummaryConfig::default()).summary;
        assert_eq!(r.status, HealthStatus::Warning);
        assert_eq!(r.issues.len(), 1);
        assert_eq!(r.issues[0].series, "queue_depth");
        assert_eq!(
            r.issues[0].message,
            "Anomalous behaviour: 3 unusual points in the window, the latest 500 at \
             2026-01-01 00:00:00 UTC (score up to 0.97)"
        );
        assert_eq!(r.recommendations, [ANOMALY_RECOMMENDATION]);
        let critical = SummaryConfig {
            anomaly_severity: Some(Severity::Critical),
            ..SummaryConfig::default()
        };
        let r = performance_summary(&WithAnomalies, 0, &critical).summary;
        assert_eq!(r.status, HealthStatus::Critical);
        let off = SummaryConfig { anomaly_severity: None, ..SummaryConfig::default() };
        let r = performance_summary(&WithAnomalies, 0, &off).summary;
        assert_eq!((r.status, r.issues.len()), (HealthStatus::Healthy, 0));
    }

    /// A steady machine in its first minutes: memory around 3 %, creeping up
    /// as the process warms up, sampled four times a second. Fitted blindly,
    /// 26 s of it predicts memory running out in about 41 minutes (critical).
    #[test]
    fn a_steady_machine_in_its_first_minutes_reports_no_exhaustion() {
        for seconds in [26_i64, 60, 150] {
            let points: Vec<Point> = (0..seconds * 4)
                .map(|i| {
                    #[allow(clippy::cast_precision_loss)]
                    let t = i as f64 / 4.0;
                    let wobble = if i % 2 == 0 { 0.002 } else { -0.002 };
                    Point::new(i * 250, 2.0 + 0.039_4 * t + wobble)
                })
                .collect();
            let now = (seconds * 4 - 1) * 250;
            let r = report(&[("system_memory_usage", points.clone())], now);
            assert_eq!(r.summary.status, HealthStatus::Healthy, "{seconds} s: {:?}", r.summary);
            // Without the minimum span the same data is a critical issue.
            let blind = SummaryConfig {
                forecast_support: ForecastSupport {
                    min_span: Duration::ZERO,
                    min_r_squared: 0.0,
                    max_extrapolation: f64::INFINITY,
                },
                ..SummaryConfig::default()
            };
            let map: HashMap<String, Vec<Point>> =
                [("system_memory_usage".to_owned(), points)].into();
            let s = performance_summary(&map, now, &blind).summary;
            assert_eq!(s.status, HealthStatus::Critical, "{seconds} s: {s:?}");
            assert!(s.issues.iter().any(|i| i.message.starts_with("Memory predicted to run out")));
        }
    }

    /// Noise around a flat level has no trend worth forecasting, however long.
    #[test]
    fn a_poor_fit_predicts_nothing() {
        let points = minutes(120, |m| 50.0 + if m % 2.0 == 0.0 { 20.0 } else { -20.0 } + m * 0.01);
        let support = ForecastSupport::default();
        let t = crate::analysis::trend(&points, &crate::analysis::TrendConfig::default());
        assert!(t.r_squared < 0.5, "{}", t.r_squared);
        assert!(!support.supports(&t));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(30.0), "30 s");
        assert_eq!(human(600.0), "10 min");
        assert_eq!(human(5.5 * 3600.0), "5.5 h");
        assert_eq!(signed(Unit::Percent, 6.000_000_000_1), "+6%");
        assert_eq!(signed(Unit::None, -0.25), "-0.25");
        assert_eq!(p_value(1e-12), "p < 0.001");
        assert_eq!(p_value(0.012_345), "p = 0.01235");
    }
}
