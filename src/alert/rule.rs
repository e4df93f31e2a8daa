//! Alert rules: what to watch, when to fire, when to recover, and how to say it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use crate::alert::builder::RuleBuilder;
pub(crate) use crate::alert::condition::{CompareOp, Condition, Verdict};
use crate::alert::matcher::Matcher;
use crate::alert::template::Template;
use crate::error::{Error, Result};

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
#[derive(Debug, Clone, PartialEq)]
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
        RuleBuilder::new(name.into(), metric.into())
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

pub(crate) fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

/// Milliseconds in `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_dedup_last_wins() {
        let r =
            AlertRule::builder("r", "m").above(1.0).label("b", "1").label("a", "2").label("b", "3");
        let r = r.build().unwrap();
        assert_eq!(r.labels(), [("a".into(), "2".into()), ("b".into(), "3".into())]);
    }
}
