//! Conditions: how a window of samples becomes a verdict.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::rule::{duration_ms, invalid};
use crate::analysis::{CrossDirection, ForecastCondition, Point};
use crate::error::Result;
use crate::history::Sample;

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

impl std::str::FromStr for CompareOp {
    type Err = crate::Error;

    /// Parses the operator as written ([`as_str`](CompareOp::as_str)): `>`,
    /// `>=`, `<`, `<=`, `==` or `!=`, with nothing around it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the text
    /// for anything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::CompareOp;
    /// assert_eq!(">=".parse::<CompareOp>()?, CompareOp::Ge);
    /// for op in [CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le, CompareOp::Eq, CompareOp::Ne] {
    ///     assert_eq!(op.as_str().parse::<CompareOp>()?, op);
    /// }
    /// let err = "=>".parse::<CompareOp>().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"invalid operator: unknown comparison "=>"; expected >, >=, <, <=, == or !="#
    /// );
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            other => {
                return Err(crate::Error::InvalidConfig {
                    field: "operator",
                    reason: format!(
                        "unknown comparison {other:?}; expected >, >=, <, <=, == or !="
                    ),
                });
            }
        })
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

    pub(crate) fn validate(&self, field: &'static str) -> Result<()> {
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
                if duration.is_zero() {
                    return Err(invalid(
                        field,
                        format!("absent duration {duration:?} must be > 0"),
                    ));
                }
                if *duration > crate::MAX_DURATION {
                    return Err(invalid(
                        field,
                        format!(
                            "absent duration {duration:?} must be at most {:?}",
                            crate::MAX_DURATION
                        ),
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
}
