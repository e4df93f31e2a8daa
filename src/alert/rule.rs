//! Alert rules: what to watch, when to fire, when to recover, and how to say it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::matcher::Matcher;
use crate::alert::template::Template;
use crate::analysis::{CrossDirection, ForecastCondition, Point};
use crate::error::{Error, Result};
use crate::history::Sample;
use crate::key::validate_metric_name;

/// How urgent an alert is. Ordered: `Info < Warning < Error < Critical`.
///
/// # Examples
///
/// ```
/// use watchpost::alert::Severity;
/// assert!(Severity::Critical > Severity::Warning);
/// assert_eq!(Severity::Error.as_str(), "error");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nobody needs to act.
    Info,
    /// Someone should look soon.
    Warning,
    /// Something is broken for some users.
    Error,
    /// Act now.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Severity::ALL.len(), 4);
    /// ```
    pub const ALL: [Severity; 4] =
        [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];

    /// The lowercase name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Severity::Critical.as_str(), "critical");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison between an aggregate and a threshold.
///
/// # Examples
///
/// ```
/// use watchpost::alert::CompareOp;
/// assert!(CompareOp::Gt.compare(81.0, 80.0));
/// assert!(!CompareOp::Gt.compare(80.0, 80.0));
/// assert_eq!(CompareOp::Le.to_string(), "<=");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==` (exact; best for counts and flags)
    Eq,
    /// `!=`
    Ne,
}

impl CompareOp {
    /// Whether `value op threshold` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::CompareOp::Ne.compare(1.0, 2.0));
    /// ```
    #[allow(clippy::float_cmp, reason = "exact comparison is what == and != promise")]
    pub fn compare(self, value: f64, threshold: f64) -> bool {
        match self {
            CompareOp::Gt => value > threshold,
            CompareOp::Ge => value >= threshold,
            CompareOp::Lt => value < threshold,
            CompareOp::Le => value <= threshold,
            CompareOp::Eq => value == threshold,
            CompareOp::Ne => value != threshold,
        }
    }

    /// The operator as written: `>`, `>=`, `<`, `<=`, `==` or `!=`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::CompareOp::Ge.as_str(), ">=");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    /// Whether a larger value is "worse" for this operator (used for the peak value).
    pub(crate) fn higher_is_worse(self) -> bool {
        !matches!(self, CompareOp::Lt | CompareOp::Le)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the samples of a window are reduced to one value.
///
/// # Examples
///
/// ```
/// use watchpost::{Sample, alert::Aggregate};
/// let window = [Sample::new(0, 1.0), Sample::new(1_000, 3.0)];
/// assert_eq!(Aggregate::Avg.apply(&window), Some(2.0));
/// assert_eq!(Aggregate::Rate.apply(&window), Some(2.0)); // per second
/// assert_eq!(Aggregate::Count.apply(&[]), Some(0.0));
/// assert_eq!(Aggregate::Max.apply(&[]), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The newest sample in the window.
    Last,
    /// The arithmetic mean.
    Avg,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The sum of the values.
    Sum,
    /// The number of samples (0 for an empty window, so it never reports no data).
    Count,
    /// Per-second increase of a counter between the first and newest sample,
    /// treating any decrease as a counter reset (as Prometheus' `rate`, without
    /// extrapolation). Needs two samples.
    Rate,
    /// The `q`-quantile (0 ≤ q ≤ 1), linearly interpolated between closest ranks.
    Quantile(f64),
}

impl Aggregate {
    /// Reduces `samples` (oldest first); `None` when the window holds no data
    /// (or, for `Rate`, fewer than two samples) or the result is not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Sample, alert::Aggregate};
    /// let w: Vec<Sample> = (0..5).map(|i| Sample::new(i * 1_000, i as f64)).collect();
    /// assert_eq!(Aggregate::Quantile(0.5).apply(&w), Some(2.0));
    /// assert_eq!(Aggregate::Last.apply(&w), Some(4.0));
    /// ```
    pub fn apply(self, samples: &[Sample]) -> Option<f64> {
        let values = || samples.iter().map(|s| s.value);
        let v = match self {
            Aggregate::Count => {
                #[allow(
                    clippy::cast_precision_loss,
                    reason = "window lengths are far below 2^52"
                )]
                return Some(samples.len() as f64);
            }
            _ if samples.is_empty() => return None,
            Aggregate::Last => samples[samples.len() - 1].value,
            Aggregate::Sum => values().sum(),
            Aggregate::Avg => {
                #[allow(clippy::cast_precision_loss, reason = "window lengths are far below 2^52")]
                let n = samples.len() as f64;
                values().sum::<f64>() / n
            }
            Aggregate::Min => values().fold(f64::INFINITY, f64::min),
            Aggregate::Max => values().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Rate => {
                let (first, last) = (samples.first()?, samples.last()?);
                if samples.len() < 2 || last.timestamp_ms <= first.timestamp_ms {
                    return None;
                }
                let mut increase = 0.0;
                for w in samples.windows(2) {
                    let d = w[1].value - w[0].value;
                    increase += if d >= 0.0 { d } else { w[1].value };
                }
                #[allow(clippy::cast_precision_loss, reason = "millisecond spans fit in f64")]
                let secs = last.timestamp_ms.saturating_sub(first.timestamp_ms) as f64 / 1_000.0;
                increase / secs
            }
            Aggregate::Quantile(q) => {
                let mut v: Vec<f64> = values().collect();
                #[allow(clippy::cast_precision_loss, reason = "window lengths are far below 2^52")]
                let rank = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "rank is in [0, len - 1]"
                )]
                let lo = rank.floor() as usize;
                #[allow(clippy::cast_precision_loss, reason = "lo is far below 2^52")]
                let frac = rank - lo as f64;
                // Selection instead of a full sort: O(n) on average.
                let (_, &mut at_lo, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
                let at_hi = above.iter().copied().fold(f64::INFINITY, f64::min);
                if frac == 0.0 || above.is_empty() { at_lo } else { at_lo + (at_hi - at_lo) * frac }
            }
        };
        v.is_finite().then_some(v)
    }

    /// Short name: `last`, `avg`, `min`, `max`, `sum`, `count`, `rate` or `quantile`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Aggregate::Quantile(0.9).name(), "quantile");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
            Aggregate::Rate => "rate",
            Aggregate::Quantile(_) => "quantile",
        }
    }
}

/// When a rule's alert is active (or, as a recovery condition, when it may resolve).
///
/// | condition | holds when | `{{value}}` | `{{threshold}}` |
/// |---|---|---|---|
/// | [`Threshold`](Condition::Threshold) | the window's aggregate compares true | the aggregate | the limit |
/// | [`Absent`](Condition::Absent) | no sample for the duration | none | the duration in seconds |
/// | [`Forecast`](Condition::Forecast) | the trend reaches a level within a horizon | hours until the predicted crossing | `warn_within` in hours |
/// | [`AnomalyRate`](Condition::AnomalyRate) | the share of anomalous samples exceeds a level | the share, 0–1 | the level |
/// | [`OutsideExpectedBand`](Condition::OutsideExpectedBand) | the newest sample lies outside the band its detector expected | the sample | none |
///
/// # Extension point
///
/// The enum is `#[non_exhaustive]` so that conditions can join it without
/// breaking users. A new condition only has to say how it turns a window into
/// a verdict (breach or not, plus an optional value); pending, recovery,
/// flapping, silences and notifications are shared by every condition.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::alert::{Aggregate, CompareOp, Condition};
/// let c = Condition::Threshold {
///     aggregate: Aggregate::Avg,
///     window: Duration::from_mins(5),
///     op: CompareOp::Gt,
///     value: 80.0,
/// };
/// assert_eq!(c.to_string(), "avg over 300s > 80");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// `aggregate(samples in the last window) op value`.
    Threshold {
        /// How the window is reduced.
        aggregate: Aggregate,
        /// How far back the window reaches from `now`.
        window: Duration,
        /// The comparison.
        op: CompareOp,
        /// The threshold.
        value: f64,
    },
    /// No sample for at least `duration` (or never a sample at all).
    Absent {
        /// How long the silence must last.
        duration: Duration,
    },
    /// A least-squares line fitted over the window's samples is predicted to
    /// reach `forecast.threshold` within `forecast.warn_within` (like
    /// Netdata's disk-fill alarms, or Prometheus' `predict_linear`). Unless
    /// the rule sets its own recovery, a firing alert clears only when no
    /// crossing is predicted within `forecast.clear_beyond` (hysteresis in
    /// time: warn under 8 h, clear above 48 h). Fewer than three samples in
    /// the window is no data.
    Forecast {
        /// How far back the fit reaches from `now`.
        window: Duration,
        /// The level, direction and horizons.
        forecast: ForecastCondition,
    },
    /// Of the window's samples that carry an anomaly score, the share scoring
    /// at least `min_score` is above `above` (the engine scores every gauge and
    /// derived series; see [`crate::detect`]). A window without scored
    /// samples is no data. With `above = 0.0` a single anomalous sample
    /// fires: the adaptive threshold, learnt per series.
    AnomalyRate {
        /// How far back the window reaches from `now`.
        window: Duration,
        /// The score at or above which a sample counts as anomalous, in (0, 1].
        min_score: f64,
        /// The share of anomalous samples that must be exceeded, in [0, 1).
        above: f64,
    },
    /// The newest sample of the window that carries an expected band (the
    /// band its series' anomaly detector predicted before seeing it) lies
    /// outside that band: the seed's adaptive threshold, learnt per series.
    /// A window without such a sample is no data.
    OutsideExpectedBand {
        /// How far back to look for the newest banded sample.
        window: Duration,
    },
}

impl Condition {
    /// How far back the condition reads, in milliseconds.
    pub(crate) fn lookback_ms(&self) -> i64 {
        match self {
            Condition::Threshold { window, .. }
            | Condition::Forecast { window, .. }
            | Condition::AnomalyRate { window, .. }
            | Condition::OutsideExpectedBand { window } => duration_ms(*window),
            Condition::Absent { duration } => duration_ms(*duration),
        }
    }

    /// The threshold reported in notifications (see the table on [`Condition`]).
    #[allow(clippy::unnecessary_wraps, reason = "optional on the wire; a condition may have none")]
    pub(crate) fn threshold(&self) -> Option<f64> {
        match self {
            Condition::Threshold { value, .. } => Some(*value),
            Condition::Absent { duration } => Some(duration.as_secs_f64()),
            Condition::Forecast { forecast, .. } => {
                Some(forecast.warn_within.as_secs_f64() / 3600.0)
            }
            Condition::AnomalyRate { above, .. } => Some(*above),
            Condition::OutsideExpectedBand { .. } => None,
        }
    }

    /// The comparison the reported value makes against the threshold, which
    /// says which values are worse (for the peak).
    pub(crate) fn op(&self) -> Option<CompareOp> {
        match self {
            Condition::Threshold { op, .. } => Some(*op),
            Condition::Absent { .. } | Condition::OutsideExpectedBand { .. } => None,
            // fewer hours left is worse
            Condition::Forecast { .. } => Some(CompareOp::Le),
            Condition::AnomalyRate { .. } => Some(CompareOp::Gt),
        }
    }

    /// Evaluates over `window`: the samples with `now - lookback <= t <= now`,
    /// oldest first. `scores` supplies `(timestamp, score)` pairs for an
    /// anomaly-rate condition when the samples carry none.
    pub(crate) fn verdict(
        &self,
        window: &[Sample],
        now_ms: i64,
        scores: impl FnOnce() -> Option<Vec<(i64, f64)>>,
    ) -> Verdict {
        match self {
            Condition::Threshold { aggregate, op, value, .. } => match aggregate.apply(window) {
                Some(v) => Verdict::Value { breach: op.compare(v, *value), value: Some(v) },
                None => Verdict::NoData,
            },
            Condition::Absent { .. } => Verdict::Value { breach: window.is_empty(), value: None },
            Condition::Forecast { forecast, .. } => {
                forecast_verdict(forecast, window, now_ms, forecast.warn_within)
            }
            Condition::AnomalyRate { min_score, above, .. } => {
                let mut from_samples = window.iter().filter_map(|s| s.anomaly_score).peekable();
                let (n, hits) = if from_samples.peek().is_some() {
                    count_anomalous(from_samples, *min_score)
                } else {
                    let fallback = scores().unwrap_or_default();
                    count_anomalous(fallback.into_iter().map(|(_, s)| s), *min_score)
                };
                if n == 0 {
                    return Verdict::NoData;
                }
                #[allow(clippy::cast_precision_loss, reason = "window lengths are far below 2^52")]
                let share = hits as f64 / n as f64;
                Verdict::Value { breach: share > *above, value: Some(share) }
            }
            Condition::OutsideExpectedBand { .. } => {
                match window.iter().rev().find_map(|s| s.expected_band.map(|b| (s.value, b))) {
                    Some((v, (lower, upper))) => {
                        Verdict::Value { breach: v < lower || v > upper, value: Some(v) }
                    }
                    None => Verdict::NoData,
                }
            }
        }
    }

    /// The recovery verdict of a rule that sets no recovery condition of its
    /// own, where the condition implies one: a forecast clears only when no
    /// crossing is predicted within `clear_beyond`.
    pub(crate) fn implied_recovery(&self, window: &[Sample], now_ms: i64) -> Option<Verdict> {
        match self {
            Condition::Forecast { forecast, .. } => {
                Some(match forecast_verdict(forecast, window, now_ms, forecast.clear_beyond) {
                    Verdict::Value { breach, value } => Verdict::Value { breach: !breach, value },
                    Verdict::NoData => Verdict::NoData,
                })
            }
            _ => None,
        }
    }

    fn validate(&self, field: &'static str) -> Result<()> {
        let check_window = |window: &Duration| {
            if window.is_zero() || duration_ms(*window) == i64::MAX {
                return Err(invalid(field, format!("window {window:?} must be > 0 and finite")));
            }
            Ok(())
        };
        match self {
            Condition::Threshold { aggregate, window, value, .. } => {
                if !value.is_finite() {
                    return Err(invalid(field, format!("threshold {value} is not finite")));
                }
                check_window(window)?;
                if let Aggregate::Quantile(q) = aggregate
                    && !(0.0..=1.0).contains(q)
                {
                    return Err(invalid(field, format!("quantile {q} is not in [0, 1]")));
                }
                Ok(())
            }
            Condition::Absent { duration } => {
                if duration.is_zero() || duration_ms(*duration) == i64::MAX {
                    return Err(invalid(
                        field,
                        format!("absent duration {duration:?} must be > 0"),
                    ));
                }
                Ok(())
            }
            Condition::Forecast { window, forecast } => {
                check_window(window)?;
                if !forecast.threshold.is_finite() {
                    return Err(invalid(
                        field,
                        format!("forecast threshold {} is not finite", forecast.threshold),
                    ));
                }
                if forecast.warn_within.is_zero() {
                    return Err(invalid(field, "forecast warn_within 0ns must be > 0".to_owned()));
                }
                if forecast.clear_beyond < forecast.warn_within {
                    return Err(invalid(
                        field,
                        format!(
                            "forecast clear_beyond {:?} is shorter than warn_within {:?}",
                            forecast.clear_beyond, forecast.warn_within
                        ),
                    ));
                }
                Ok(())
            }
            Condition::AnomalyRate { window, min_score, above } => {
                check_window(window)?;
                if !(*min_score > 0.0 && *min_score <= 1.0) {
                    return Err(invalid(
                        field,
                        format!("anomaly min_score {min_score} is not in (0, 1]"),
                    ));
                }
                if !(*above >= 0.0 && *above < 1.0) {
                    return Err(invalid(
                        field,
                        format!("anomaly rate level {above} is not in [0, 1)"),
                    ));
                }
                Ok(())
            }
            Condition::OutsideExpectedBand { window } => check_window(window),
        }
    }
}

/// Whether the crossing predicted over `window` falls within `limit`; the
/// value is the hours until it (none when no crossing is predicted).
fn forecast_verdict(
    forecast: &ForecastCondition,
    window: &[Sample],
    now_ms: i64,
    limit: Duration,
) -> Verdict {
    let points: Vec<Point> = window
        .iter()
        .filter(|s| s.value.is_finite())
        .map(|s| Point::new(s.timestamp_ms, s.value))
        .collect();
    if points.len() < 3 {
        return Verdict::NoData;
    }
    match forecast.crossing(&points, now_ms) {
        Some(c) => Verdict::Value {
            breach: c.eta_seconds <= limit.as_secs_f64(),
            value: Some(c.eta_seconds / 3600.0),
        },
        None => Verdict::Value { breach: false, value: None },
    }
}

/// `(scored samples, samples scoring at least min_score)`.
fn count_anomalous(scores: impl Iterator<Item = f64>, min_score: f64) -> (usize, usize) {
    scores.fold((0, 0), |(n, hits), s| (n + 1, hits + usize::from(s >= min_score)))
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Threshold { aggregate, window, op, value } => {
                if let Aggregate::Quantile(q) = aggregate {
                    write!(f, "quantile({q})")?;
                } else {
                    f.write_str(aggregate.name())?;
                }
                write!(f, " over {}s {op} {value}", window.as_secs_f64())
            }
            Condition::Absent { duration } => write!(f, "absent for {}s", duration.as_secs_f64()),
            Condition::Forecast { window, forecast } => {
                let dir = match forecast.direction {
                    CrossDirection::Rising => "rising to",
                    CrossDirection::Falling => "falling to",
                };
                write!(
                    f,
                    "forecast over {}s: {dir} {} within {}s (clears beyond {}s)",
                    window.as_secs_f64(),
                    forecast.threshold,
                    forecast.warn_within.as_secs_f64(),
                    forecast.clear_beyond.as_secs_f64()
                )
            }
            Condition::AnomalyRate { window, min_score, above } => write!(
                f,
                "anomaly rate (score >= {min_score}) over {}s > {above}",
                window.as_secs_f64()
            ),
            Condition::OutsideExpectedBand { window } => {
                write!(f, "newest sample over {}s outside its expected band", window.as_secs_f64())
            }
        }
    }
}

/// The outcome of evaluating a condition once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// The window held no usable data.
    NoData,
    /// The condition holds (`breach`) or not, with the aggregate when there is one.
    Value { breach: bool, value: Option<f64> },
}

/// What an alert does when its window holds no data.
///
/// # Examples
///
/// ```
/// use watchpost::alert::NoDataPolicy;
/// assert_eq!(NoDataPolicy::default(), NoDataPolicy::NoData);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoDataPolicy {
    /// Enter the `NoData` state and pause there: missing data is not recovery,
    /// so a firing alert is not resolved, and when data returns the instance
    /// resumes from the state it paused in. The default.
    #[default]
    NoData,
    /// Keep the current state, as if nothing happened; timers do not advance.
    KeepLast,
    /// Treat the evaluation as healthy (the alert may resolve).
    Ok,
    /// Treat the evaluation as a breach (the alert may fire).
    Alerting,
}

/// Flap detection thresholds, in percent state change (Nagios style).
///
/// Over the last 21 evaluations that saw new data, each of the 20 changes
/// between consecutive verdicts is weighted from 0.8 (oldest) to 1.2
/// (newest); the weighted sum divided by 20 is the percent state change. An
/// instance starts flapping when it reaches `high` and stops when it falls
/// below `low`.
///
/// # Examples
///
/// ```
/// use watchpost::alert::FlapDetection;
/// let f = FlapDetection::new(5.0, 20.0)?;
/// assert_eq!(f, FlapDetection::default());
/// assert!(FlapDetection::new(30.0, 20.0).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlapDetection {
    low: f64,
    high: f64,
}

impl FlapDetection {
    /// Stop below `low` percent, start at or above `high` percent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `0 <= low < high <= 100`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::FlapDetection::new(25.0, 50.0).is_ok());
    /// ```
    pub fn new(low: f64, high: f64) -> Result<Self> {
        if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low >= high {
            return Err(invalid(
                "flap_detection",
                format!("thresholds low {low} and high {high} need 0 <= low < high <= 100"),
            ));
        }
        Ok(FlapDetection { low, high })
    }

    /// The stop threshold in percent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::FlapDetection::default().low(), 5.0);
    /// ```
    pub fn low(&self) -> f64 {
        self.low
    }

    /// The start threshold in percent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::FlapDetection::default().high(), 20.0);
    /// ```
    pub fn high(&self) -> f64 {
        self.high
    }
}

impl Default for FlapDetection {
    /// 5 % / 20 %, the thresholds Nagios ships in its sample configuration.
    fn default() -> Self {
        FlapDetection { low: 5.0, high: 20.0 }
    }
}

/// Default window of [`RuleBuilder::above`] and friends: the newest sample of the
/// last 5 minutes (Prometheus' staleness period).
pub const DEFAULT_WINDOW: Duration = Duration::from_mins(5);

/// Default title template.
pub const DEFAULT_TITLE: &str = "{{rule}} on {{series}}";

/// Default message template.
pub const DEFAULT_MESSAGE: &str = "{{metric}} is {{value}} (threshold {{threshold}})";

/// One alert rule. It yields one alert instance per series it selects.
///
/// Build one with [`AlertRule::builder`]. Rules are identified by name inside an
/// [`AlertManager`](crate::alert::AlertManager); any number of rules may watch
/// the same metric or series.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::alert::{AlertRule, Severity};
/// let rule = AlertRule::builder("cpu_critical", "system_cpu_usage")
///     .above(95.0)
///     .recover_below(90.0)
///     .pending_for(Duration::from_mins(1))
///     .severity(Severity::Critical)
///     .build()?;
/// assert_eq!(rule.name(), "cpu_critical");
/// assert_eq!(rule.severity(), Severity::Critical);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub(crate) name: String,
    pub(crate) metric: String,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) condition: Condition,
    pub(crate) recovery: Option<Condition>,
    pub(crate) pending_ms: i64,
    pub(crate) keep_firing_ms: i64,
    pub(crate) m_of_n: Option<(u32, u32)>,
    pub(crate) no_data: NoDataPolicy,
    pub(crate) severity: Severity,
    pub(crate) family: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) title: Template,
    pub(crate) message: Template,
    pub(crate) repeat_ms: Option<i64>,
    pub(crate) flap: Option<FlapDetection>,
}

impl AlertRule {
    /// Starts a rule named `name` on metric `metric`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rule = watchpost::alert::AlertRule::builder("slow", "latency_p99").above(0.5).build()?;
    /// assert_eq!(rule.metric(), "latency_p99");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>, metric: impl Into<String>) -> RuleBuilder {
        RuleBuilder {
            name: name.into(),
            metric: metric.into(),
            matchers: Vec::new(),
            condition: None,
            recovery: None,
            pending: Duration::ZERO,
            keep_firing: Duration::ZERO,
            m_of_n: None,
            no_data: NoDataPolicy::NoData,
            severity: Severity::Warning,
            family: None,
            labels: Vec::new(),
            title: DEFAULT_TITLE.to_owned(),
            message: DEFAULT_MESSAGE.to_owned(),
            repeat: None,
            flap: Some(FlapDetection::default()),
            bad_matcher_name: None,
        }
    }

    /// The rule's unique name (the `alertname` label).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.name(), "a");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metric name it selects series by.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.metric(), "m");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The label matchers a series must satisfy.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").label_eq("room", "x").above(1.0).build()?;
    /// assert_eq!(r.matchers().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// The firing condition.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.condition().to_string(), "last over 300s > 1");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// The recovery condition, if the rule has one (otherwise it recovers when
    /// the firing condition stops holding).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(80.0).recover_below(70.0).build()?;
    /// assert_eq!(r.recovery().unwrap().to_string(), "last over 300s < 70");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recovery(&self) -> Option<&Condition> {
        self.recovery.as_ref()
    }

    /// The severity.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Severity};
    /// let r = AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.severity(), Severity::Warning);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The family used by default inhibition (defaults to the metric name).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.family(), "m");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The extra labels the rule adds to its alerts.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).label("team", "chat").build()?;
    /// assert_eq!(r.labels(), [("team".to_owned(), "chat".to_owned())]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The pending duration (`for`).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert!(r.pending().is_zero());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn pending(&self) -> Duration {
        ms_duration(self.pending_ms)
    }

    /// The `keep_firing_for` duration.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert!(r.keep_firing_for().is_zero());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn keep_firing_for(&self) -> Duration {
        ms_duration(self.keep_firing_ms)
    }

    /// The no-data policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, NoDataPolicy};
    /// let r = AlertRule::builder("a", "m").above(1.0).build()?;
    /// assert_eq!(r.no_data(), NoDataPolicy::NoData);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn no_data(&self) -> NoDataPolicy {
        self.no_data
    }

    /// Whether a series with metric `name` and labels looked up by `get` is selected.
    pub(crate) fn selects<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        crate::alert::matcher::all_match(&self.matchers, get)
    }
}

/// Builds an [`AlertRule`]; every setter documents its default.
///
/// A condition is required: [`condition`](Self::condition),
/// [`threshold`](Self::threshold), [`above`](Self::above),
/// [`below`](Self::below) or [`absent_for`](Self::absent_for).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::alert::{Aggregate, AlertRule, CompareOp, NoDataPolicy, Severity};
/// let rule = AlertRule::builder("p99_latency_high", "request_latency_seconds")
///     .label_eq("route", "/send")
///     .threshold(Aggregate::Quantile(0.99), Duration::from_mins(5), CompareOp::Gt, 0.25)
///     .recover_below(0.2)
///     .m_of_n(3, 5)
///     .keep_firing_for(Duration::from_mins(2))
///     .no_data(NoDataPolicy::KeepLast)
///     .severity(Severity::Error)
///     .label("team", "chat")
///     .title("Slow {{labels.route}}")
///     .message("p99 is {{value}} s (limit {{threshold}} s)")
///     .repeat_every(Duration::from_hours(1))
///     .build()?;
/// assert_eq!(rule.keep_firing_for(), Duration::from_mins(2));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RuleBuilder {
    name: String,
    metric: String,
    matchers: Vec<Matcher>,
    condition: Option<Condition>,
    recovery: Option<RecoverySpec>,
    pending: Duration,
    keep_firing: Duration,
    m_of_n: Option<(u32, u32)>,
    no_data: NoDataPolicy,
    severity: Severity,
    family: Option<String>,
    labels: Vec<(String, String)>,
    title: String,
    message: String,
    repeat: Option<Duration>,
    flap: Option<FlapDetection>,
    bad_matcher_name: Option<String>,
}

#[derive(Debug, Clone)]
enum RecoverySpec {
    Full(Condition),
    Threshold(CompareOp, f64),
}

impl RuleBuilder {
    /// Adds a label matcher; a series must satisfy all of them. Default: none
    /// (every series of the metric).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Matcher};
    /// let r = AlertRule::builder("a", "disk").matcher(Matcher::not_regex("mount", "/snap/.*")?).above(90.0).build()?;
    /// assert_eq!(r.matchers()[0].to_string(), r#"mount!~"/snap/.*""#);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn matcher(mut self, m: Matcher) -> Self {
        self.matchers.push(m);
        self
    }

    /// Shorthand for `matcher(Matcher::equal(name, value))`; a bad label name is
    /// reported by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").label_eq("room", "x").above(1.0).build()?;
    /// assert_eq!(r.matchers()[0].value(), "x");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn label_eq(mut self, name: &str, value: &str) -> Self {
        match Matcher::new(name, crate::alert::MatchOp::Equal, value) {
            Ok(m) => self.matchers.push(m),
            Err(_) => self.bad_matcher_name = Some(name.to_owned()),
        }
        self
    }

    /// Sets the firing condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{AlertRule, Condition};
    /// let r = AlertRule::builder("gone", "heartbeat")
    ///     .condition(Condition::Absent { duration: Duration::from_mins(2) })
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "absent for 120s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn condition(mut self, c: Condition) -> Self {
        self.condition = Some(c);
        self
    }

    /// Fires when `aggregate` over the last `window` compares true with `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{Aggregate, AlertRule, CompareOp};
    /// let r = AlertRule::builder("errors", "errors_total")
    ///     .threshold(Aggregate::Rate, Duration::from_mins(1), CompareOp::Ge, 5.0)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "rate over 60s >= 5");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn threshold(
        self,
        aggregate: Aggregate,
        window: Duration,
        op: CompareOp,
        value: f64,
    ) -> Self {
        self.condition(Condition::Threshold { aggregate, window, op, value })
    }

    /// Fires when the newest sample of the last 5 minutes is `> value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(80.0).build()?;
    /// assert_eq!(r.condition().to_string(), "last over 300s > 80");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn above(self, value: f64) -> Self {
        self.threshold(Aggregate::Last, DEFAULT_WINDOW, CompareOp::Gt, value)
    }

    /// Fires when the newest sample of the last 5 minutes is `< value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "free_bytes").below(1e9).build()?;
    /// assert_eq!(r.condition().to_string(), "last over 300s < 1000000000");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn below(self, value: f64) -> Self {
        self.threshold(Aggregate::Last, DEFAULT_WINDOW, CompareOp::Lt, value)
    }

    /// Fires when the series has had no sample for `duration`.
    ///
    /// When no series matches at all, the rule still yields one alert whose
    /// labels are the rule's `=` matchers, like Prometheus' `absent()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").absent_for(Duration::from_secs(30)).build()?;
    /// assert_eq!(r.condition().to_string(), "absent for 30s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn absent_for(self, duration: Duration) -> Self {
        self.condition(Condition::Absent { duration })
    }

    /// Fires when the trend fitted over the last `window` is predicted to
    /// reach `forecast.threshold` within `forecast.warn_within`; clears when
    /// no crossing is predicted within `forecast.clear_beyond` (see
    /// [`Condition::Forecast`]). `{{value}}` is the hours left.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{CrossDirection, ForecastCondition};
    /// let h = Duration::from_hours(1);
    /// let disk_full = ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h)?;
    /// let r = watchpost::alert::AlertRule::builder("disk_fills_soon", "system_disk_usage")
    ///     .forecast(6 * h, disk_full)
    ///     .message("{{labels.mount}} full in {{value}} h")
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(),
    ///            "forecast over 21600s: rising to 100 within 28800s (clears beyond 172800s)");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn forecast(self, window: Duration, forecast: ForecastCondition) -> Self {
        self.condition(Condition::Forecast { window, forecast })
    }

    /// Fires when more than `level` (a share in [0, 1)) of the samples of
    /// the last `window` are anomalous, that is score at least
    /// [`DEFAULT_THRESHOLD`](crate::detect::DEFAULT_THRESHOLD) (0.5, the
    /// engine's default); see [`Condition::AnomalyRate`] for another score.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("latency_unusual", "message_latency_seconds:p90")
    ///     .anomaly_rate_above(Duration::from_mins(5), 0.2)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "anomaly rate (score >= 0.5) over 300s > 0.2");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn anomaly_rate_above(self, window: Duration, level: f64) -> Self {
        self.condition(Condition::AnomalyRate {
            window,
            min_score: crate::detect::DEFAULT_THRESHOLD,
            above: level,
        })
    }

    /// Fires while the series' newest sample (within `window`) lies outside
    /// the band its anomaly detector expected: an adaptive threshold, learnt
    /// per series (see [`Condition::OutsideExpectedBand`]). Pair it with
    /// [`pending_for`](Self::pending_for) or [`m_of_n`](Self::m_of_n) to
    /// ignore single excursions.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("users_unusual", "active_users")
    ///     .outside_expected_band(Duration::from_mins(5))
    ///     .m_of_n(3, 5)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "newest sample over 300s outside its expected band");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn outside_expected_band(self, window: Duration) -> Self {
        self.condition(Condition::OutsideExpectedBand { window })
    }

    /// A separate recovery condition (hysteresis). Default: none, so the alert
    /// recovers as soon as the firing condition stops holding.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{Aggregate, AlertRule, CompareOp, Condition};
    /// let r = AlertRule::builder("a", "m")
    ///     .above(80.0)
    ///     .recover_when(Condition::Threshold {
    ///         aggregate: Aggregate::Max,
    ///         window: Duration::from_mins(2),
    ///         op: CompareOp::Lt,
    ///         value: 70.0,
    ///     })
    ///     .build()?;
    /// assert!(r.recovery().is_some());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_when(mut self, c: Condition) -> Self {
        self.recovery = Some(RecoverySpec::Full(c));
        self
    }

    /// Recovers only once the firing condition's aggregate, over the same window, is `< value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(80.0).recover_below(70.0).build()?;
    /// assert_eq!(r.recovery().unwrap().to_string(), "last over 300s < 70");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_below(mut self, value: f64) -> Self {
        self.recovery = Some(RecoverySpec::Threshold(CompareOp::Lt, value));
        self
    }

    /// Recovers only once the firing condition's aggregate, over the same window, is `> value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").below(10.0).recover_above(20.0).build()?;
    /// assert_eq!(r.recovery().unwrap().to_string(), "last over 300s > 20");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_above(mut self, value: f64) -> Self {
        self.recovery = Some(RecoverySpec::Threshold(CompareOp::Gt, value));
        self
    }

    /// How long the condition must hold before the alert fires (Prometheus'
    /// `for`); the alert is `Pending` meanwhile. Default: zero (fire at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).pending_for(Duration::from_mins(5)).build()?;
    /// assert_eq!(r.pending(), Duration::from_mins(5));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn pending_for(mut self, d: Duration) -> Self {
        self.pending = d;
        self
    }

    /// How long a firing alert stays firing (`Recovering`) after it recovers;
    /// if the condition comes back meanwhile it simply keeps firing. Default: zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).keep_firing_for(Duration::from_mins(1)).build()?;
    /// assert_eq!(r.keep_firing_for(), Duration::from_mins(1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn keep_firing_for(mut self, d: Duration) -> Self {
        self.keep_firing = d;
        self
    }

    /// The condition counts as active when it held in at least `m` of the last
    /// `n` evaluations that saw new data (1 ≤ m ≤ n ≤ 64). Default: off (every
    /// evaluation decides alone).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).m_of_n(3, 5).build();
    /// assert!(r.is_ok());
    /// assert!(watchpost::alert::AlertRule::builder("a", "m").above(1.0).m_of_n(6, 5).build().is_err());
    /// ```
    pub fn m_of_n(mut self, m: u32, n: u32) -> Self {
        self.m_of_n = Some((m, n));
        self
    }

    /// What to do when the window holds no data. Default: [`NoDataPolicy::NoData`].
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, NoDataPolicy};
    /// let r = AlertRule::builder("a", "m").above(1.0).no_data(NoDataPolicy::Ok).build()?;
    /// assert_eq!(r.no_data(), NoDataPolicy::Ok);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn no_data(mut self, policy: NoDataPolicy) -> Self {
        self.no_data = policy;
        self
    }

    /// The severity. Default: [`Severity::Warning`].
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Severity};
    /// let r = AlertRule::builder("a", "m").above(1.0).severity(Severity::Info).build()?;
    /// assert_eq!(r.severity(), Severity::Info);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// The family for default inhibition: a firing alert mutes alerts of lower
    /// severity in the same family on the same series. Default: the metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).family("saturation").build()?;
    /// assert_eq!(r.family(), "saturation");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    /// Adds a label to the rule's alerts (it overrides a series label of the
    /// same name). Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).label("team", "ops").build()?;
    /// assert_eq!(r.labels().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// The title template (see [`Template`]). Default: [`DEFAULT_TITLE`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertRule::builder("a", "m").above(1.0).title("{{bad}}").build().is_err());
    /// ```
    pub fn title(mut self, template: impl Into<String>) -> Self {
        self.title = template.into();
        self
    }

    /// The message template (see [`Template`]). Default: [`DEFAULT_MESSAGE`].
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).message("{{value}} > {{threshold}}").build();
    /// assert!(r.is_ok());
    /// ```
    pub fn message(mut self, template: impl Into<String>) -> Self {
        self.message = template.into();
        self
    }

    /// Re-send a `Repeat` notification this often while the alert keeps firing
    /// (unless muted). Default: the manager's interval for the rule's severity
    /// (see [`AlertManager::set_repeat_interval`](crate::alert::AlertManager::set_repeat_interval)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).repeat_every(Duration::from_hours(4)).build();
    /// assert!(r.is_ok());
    /// ```
    pub fn repeat_every(mut self, d: Duration) -> Self {
        self.repeat = Some(d);
        self
    }

    /// Flap detection thresholds. Default: [`FlapDetection::default`] (on, 5 % / 20 %).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, FlapDetection};
    /// let r = AlertRule::builder("a", "m").above(1.0).flap_detection(FlapDetection::new(25.0, 50.0)?).build();
    /// assert!(r.is_ok());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn flap_detection(mut self, f: FlapDetection) -> Self {
        self.flap = Some(f);
        self
    }

    /// Turns flap detection off for this rule.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).without_flap_detection().build();
    /// assert!(r.is_ok());
    /// ```
    pub fn without_flap_detection(mut self) -> Self {
        self.flap = None;
        self
    }

    /// Validates and builds the rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (quoting the bad value) when the name is empty,
    /// a label or matcher name is invalid, no condition was set, a threshold is
    /// not finite, a window or duration is zero or too large, a quantile is
    /// outside [0, 1], `m_of_n` is not `1 ≤ m ≤ n ≤ 64` or is used with an
    /// absence condition, a recovery threshold is given for an absence
    /// condition, or a template has an unknown placeholder;
    /// [`Error::InvalidMetricName`] for a bad metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::alert::AlertRule::builder("a", "m").build().unwrap_err();
    /// assert!(err.to_string().contains("condition"));
    /// ```
    pub fn build(self) -> Result<AlertRule> {
        if self.name.trim().is_empty() {
            return Err(invalid("rule.name", format!("{:?} must not be empty", self.name)));
        }
        validate_metric_name(&self.metric)?;
        if let Some(bad) = &self.bad_matcher_name {
            return Err(invalid(
                "matcher",
                format!("label name {bad:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        let condition = self.condition.ok_or_else(|| {
            invalid("rule.condition", format!("rule {:?} has no condition", self.name))
        })?;
        condition.validate("rule.condition")?;
        let recovery = match self.recovery {
            None => None,
            Some(RecoverySpec::Full(c)) => Some(c),
            Some(RecoverySpec::Threshold(op, value)) => match &condition {
                Condition::Threshold { aggregate, window, .. } => {
                    Some(Condition::Threshold { aggregate: *aggregate, window: *window, op, value })
                }
                other => {
                    return Err(invalid(
                        "rule.recovery",
                        format!(
                            "rule {:?}: a recovery threshold needs a threshold condition, not {other}",
                            self.name
                        ),
                    ));
                }
            },
        };
        if let Some(r) = &recovery {
            r.validate("rule.recovery")?;
        }
        if let Some((m, n)) = self.m_of_n {
            if !(1 <= m && m <= n && n <= 64) {
                return Err(invalid("rule.m_of_n", format!("{m} of {n} needs 1 <= m <= n <= 64")));
            }
            if matches!(condition, Condition::Absent { .. }) {
                return Err(invalid(
                    "rule.m_of_n",
                    format!("rule {:?}: m_of_n does not apply to an absence condition", self.name),
                ));
            }
        }
        let mut labels = Vec::with_capacity(self.labels.len());
        for (k, v) in self.labels {
            if !crate::key::is_valid_label_name(&k) || k == "alertname" || k == "severity" {
                return Err(invalid(
                    "rule.labels",
                    format!("label name {k:?} is invalid or reserved (alertname, severity)"),
                ));
            }
            labels.retain(|(old, _): &(String, String)| *old != k);
            labels.push((k, v));
        }
        labels.sort();
        let pending_ms = checked_ms("rule.pending_for", self.pending)?;
        let keep_firing_ms = checked_ms("rule.keep_firing_for", self.keep_firing)?;
        let repeat_ms = match self.repeat {
            Some(d) if d.is_zero() => {
                return Err(invalid(
                    "rule.repeat_every",
                    "0s; omit it to use the default".to_owned(),
                ));
            }
            Some(d) => Some(checked_ms("rule.repeat_every", d)?),
            None => None,
        };
        Ok(AlertRule {
            family: self.family.unwrap_or_else(|| self.metric.clone()),
            name: self.name,
            metric: self.metric,
            matchers: self.matchers,
            condition,
            recovery,
            pending_ms,
            keep_firing_ms,
            m_of_n: self.m_of_n,
            no_data: self.no_data,
            severity: self.severity,
            labels,
            title: Template::parse(&self.title)?,
            message: Template::parse(&self.message)?,
            repeat_ms,
            flap: self.flap,
        })
    }
}

/// The default rules: CPU > 80 % warning and > 95 % critical, memory > 85 %
/// warning and > 95 % critical, disk > 90 % warning, on `system_cpu_usage`,
/// `system_memory_usage` and `system_disk_usage` (percent).
///
/// Each fires on the newest sample and recovers 5 points lower (hysteresis);
/// the critical rules inhibit the warnings on the same series.
///
/// # Panics
///
/// Never: the rules are constants known to be valid.
///
/// # Examples
///
/// ```
/// let rules = watchpost::alert::default_rules();
/// let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
/// assert_eq!(names, ["cpu_usage_warning", "cpu_usage_critical", "memory_usage_warning",
///                    "memory_usage_critical", "disk_usage_warning"]);
/// ```
pub fn default_rules() -> Vec<AlertRule> {
    let spec: [(&str, &str, &str, f64, Severity); 5] = [
        ("cpu_usage_warning", "system_cpu_usage", "CPU", 80.0, Severity::Warning),
        ("cpu_usage_critical", "system_cpu_usage", "CPU", 95.0, Severity::Critical),
        ("memory_usage_warning", "system_memory_usage", "Memory", 85.0, Severity::Warning),
        ("memory_usage_critical", "system_memory_usage", "Memory", 95.0, Severity::Critical),
        ("disk_usage_warning", "system_disk_usage", "Disk", 90.0, Severity::Warning),
    ];
    spec.iter()
        .map(|&(name, metric, what, limit, severity)| {
            let level = if severity == Severity::Critical { "Critical" } else { "High" };
            AlertRule::builder(name, metric)
                .above(limit)
                .recover_below(limit - 5.0)
                .severity(severity)
                .title(format!("{level} {} usage", what.to_lowercase()))
                .message(format!("{what} usage is {{{{value}}}}% (threshold {{{{threshold}}}}%)"))
                .build()
                .expect("default rules are valid")
        })
        .collect()
}

pub(crate) fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

/// Milliseconds in `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn checked_ms(field: &'static str, d: Duration) -> Result<i64> {
    let ms = duration_ms(d);
    // Keep a wide margin so `now + ms` never overflows for any realistic `now`.
    if ms > i64::MAX / 4 {
        return Err(invalid(field, format!("{d:?} is too long")));
    }
    Ok(ms)
}

fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample::new(t, v)
    }

    #[test]
    fn aggregates() {
        let w = [s(0, 4.0), s(1_000, 1.0), s(2_000, 3.0), s(3_000, 2.0)];
        assert_eq!(Aggregate::Last.apply(&w), Some(2.0));
        assert_eq!(Aggregate::Avg.apply(&w), Some(2.5));
        assert_eq!(Aggregate::Min.apply(&w), Some(1.0));
        assert_eq!(Aggregate::Max.apply(&w), Some(4.0));
        assert_eq!(Aggregate::Sum.apply(&w), Some(10.0));
        assert_eq!(Aggregate::Count.apply(&w), Some(4.0));
        assert_eq!(Aggregate::Quantile(0.0).apply(&w), Some(1.0));
        assert_eq!(Aggregate::Quantile(1.0).apply(&w), Some(4.0));
        assert_eq!(Aggregate::Quantile(0.5).apply(&w), Some(2.5));
        // Counter 10, 20, reset to 5, 15 over 3 s: increase 10 + 5 + 10 = 25.
        let c = [s(0, 10.0), s(1_000, 20.0), s(2_000, 5.0), s(3_000, 15.0)];
        let rate = Aggregate::Rate.apply(&c).unwrap();
        assert!((rate - 25.0 / 3.0).abs() < 1e-12);
        assert_eq!(Aggregate::Rate.apply(&c[..1]), None);
        for a in [Aggregate::Last, Aggregate::Avg, Aggregate::Rate, Aggregate::Quantile(0.5)] {
            assert_eq!(a.apply(&[]), None, "{a:?}");
        }
        assert_eq!(Aggregate::Sum.apply(&[s(0, f64::MAX), s(1, f64::MAX)]), None);
    }

    proptest::proptest! {
        #[test]
        fn quantile_matches_sorted_reference(
            values in proptest::collection::vec(-1e6f64..1e6, 1..50),
            q in 0.0f64..=1.0,
        ) {
            let window: Vec<Sample> = values.iter().enumerate().map(|(i, v)| s(i64::try_from(i).unwrap(), *v)).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            #[allow(clippy::cast_precision_loss, reason = "tiny test vectors")]
            let rank = q * (sorted.len() - 1) as f64;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "rank in range")]
            let (lo, hi) = (rank.floor() as usize, (rank.ceil() as usize).min(sorted.len() - 1));
            #[allow(clippy::cast_precision_loss, reason = "tiny test vectors")]
            let want = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64);
            let got = Aggregate::Quantile(q).apply(&window).unwrap();
            proptest::prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} != {}", got, want);
            proptest::prop_assert!(got >= sorted[0] && got <= sorted[sorted.len() - 1]);
        }
    }

    #[test]
    fn compare_ops() {
        let table = [
            (CompareOp::Gt, [false, false, true]),
            (CompareOp::Ge, [false, true, true]),
            (CompareOp::Lt, [true, false, false]),
            (CompareOp::Le, [true, true, false]),
            (CompareOp::Eq, [false, true, false]),
            (CompareOp::Ne, [true, false, true]),
        ];
        for (op, expect) in table {
            let got = [op.compare(1.0, 2.0), op.compare(2.0, 2.0), op.compare(3.0, 2.0)];
            assert_eq!(got, expect, "{op}");
        }
    }

    #[test]
    fn build_validates_and_quotes() {
        let b = || AlertRule::builder("r", "m");
        let cases: Vec<(RuleBuilder, &str)> = vec![
            (AlertRule::builder(" ", "m").above(1.0), "\" \""),
            (b().above(f64::NAN), "NaN"),
            (b().threshold(Aggregate::Avg, Duration::ZERO, CompareOp::Gt, 1.0), "window"),
            (b().threshold(Aggregate::Quantile(1.5), DEFAULT_WINDOW, CompareOp::Gt, 1.0), "1.5"),
            (b().above(1.0).m_of_n(0, 3), "0 of 3"),
            (b().above(1.0).m_of_n(2, 65), "2 of 65"),
            (b().absent_for(Duration::from_secs(1)).m_of_n(1, 2), "absence"),
            (b().absent_for(Duration::from_secs(1)).recover_below(2.0), "recovery"),
            (b().absent_for(Duration::ZERO), "absent duration"),
            (b().above(1.0).label("__x", "y"), "\"__x\""),
            (b().above(1.0).label("alertname", "y"), "\"alertname\""),
            (b().above(1.0).label_eq("9x", "y"), "\"9x\""),
            (b().above(1.0).message("{{nope}}"), "\"nope\""),
            (b().above(1.0).repeat_every(Duration::ZERO), "0s"),
            (b().above(1.0).pending_for(Duration::MAX), "too long"),
        ];
        for (builder, needle) in cases {
            let err = builder.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        assert!(AlertRule::builder("r", "bad name").above(1.0).build().is_err());
    }

    #[test]
    fn recovery_shorthand_reuses_window() {
        let r = AlertRule::builder("r", "m")
            .threshold(Aggregate::Avg, Duration::from_mins(1), CompareOp::Gt, 80.0)
            .recover_below(70.0)
            .build()
            .unwrap();
        assert_eq!(
            r.recovery(),
            Some(&Condition::Threshold {
                aggregate: Aggregate::Avg,
                window: Duration::from_mins(1),
                op: CompareOp::Lt,
                value: 70.0
            })
        );
    }

    #[test]
    fn labels_dedup_last_wins() {
        let r =
            AlertRule::builder("r", "m").above(1.0).label("b", "1").label("a", "2").label("b", "3");
        let r = r.build().unwrap();
        assert_eq!(r.labels(), [("a".into(), "2".into()), ("b".into(), "3".into())]);
    }

    #[test]
    fn defaults_are_distinct_and_keep_both_cpu_levels() {
        let rules = default_rules();
        let cpu: Vec<_> = rules.iter().filter(|r| r.metric() == "system_cpu_usage").collect();
        assert_eq!(cpu.len(), 2);
        assert_eq!(cpu[0].condition().threshold(), Some(80.0));
        assert_eq!(cpu[1].condition().threshold(), Some(95.0));
        assert_eq!(cpu[1].severity(), Severity::Critical);
        assert!(cpu.iter().all(|r| r.family() == "system_cpu_usage"));
    }
}
