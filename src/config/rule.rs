//! The file form of alert rules, matchers, inhibit rules and silences.
//!
//! Every spec converts to its domain type through the same builder or
//! constructor code uses, so a file can describe exactly what code can
//! build: no more, and nothing that code would reject.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::{
    Aggregate, AlertRule, CompareOp, Condition, DEFAULT_MESSAGE, DEFAULT_TITLE, FlapDetection,
    InhibitRule, Matcher, NoDataPolicy, Severity, Silence,
};
use crate::analysis::{CrossDirection, ForecastCondition};
use crate::error::Result;

/// A condition as written in a file: a table with a `kind` and the fields
/// of that kind of [`Condition`], durations as text (`"5m"`, `"1h 30m"`).
///
/// | `kind` | fields |
/// |---|---|
/// | `threshold` | `aggregate` (`last`, `avg`, `min`, `max`, `sum`, `count`, `rate`, or `{ quantile = 0.99 }`), `window`, `op` (`gt`, `ge`, `lt`, `le`, `eq`, `ne`), `value` |
/// | `absent` | `duration` |
/// | `forecast` | `window`, `threshold`, `direction` (`rising`/`falling`), `warn_within`, `clear_beyond` |
/// | `anomaly_rate` | `window`, `min_score`, `above` |
/// | `outside_expected_band` | `window` |
///
/// # Examples
///
/// ```
/// use watchpost::config::ConditionSpec;
/// let c: ConditionSpec = toml::from_str(
///     r#"kind = "threshold"
///        aggregate = { quantile = 0.99 }
///        window = "5m"
///        op = "gt"
///        value = 0.25"#,
/// )?;
/// assert_eq!(c.to_condition()?.to_string(), "quantile(0.99) over 300s > 0.25");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ConditionSpec {
    /// [`Condition::Threshold`].
    Threshold {
        /// How the window is reduced.
        aggregate: Aggregate,
        /// How far back the window reaches.
        #[serde(with = "humantime_serde")]
        window: Duration,
        /// The comparison.
        op: CompareOp,
        /// The threshold.
        value: f64,
    },
    /// [`Condition::Absent`].
    Absent {
        /// How long the silence must last.
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// [`Condition::Forecast`].
    Forecast {
        /// How far back the fit reaches.
        #[serde(with = "humantime_serde")]
        window: Duration,
        /// The level the trend is predicted to reach.
        threshold: f64,
        /// Rising to or falling to the level.
        direction: CrossDirection,
        /// Fire when the crossing is predicted within this horizon.
        #[serde(with = "humantime_serde")]
        warn_within: Duration,
        /// Clear when no crossing is predicted within this horizon.
        #[serde(with = "humantime_serde")]
        clear_beyond: Duration,
    },
    /// [`Condition::AnomalyRate`].
    AnomalyRate {
        /// How far back the window reaches.
        #[serde(with = "humantime_serde")]
        window: Duration,
        /// The score at or above which a sample counts as anomalous.
        min_score: f64,
        /// The share of anomalous samples that must be exceeded.
        above: f64,
    },
    /// [`Condition::OutsideExpectedBand`].
    OutsideExpectedBand {
        /// How far back to look for the newest banded sample.
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
}

impl ConditionSpec {
    /// The condition this spec describes, checked as the builder checks it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a forecast whose horizons are out of
    /// order or whose threshold is not finite (other checks happen when the
    /// rule is built).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::config::ConditionSpec;
    /// let c = ConditionSpec::Absent { duration: Duration::from_secs(30) };
    /// assert_eq!(c.to_condition()?.to_string(), "absent for 30s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn to_condition(&self) -> Result<Condition> {
        Ok(match *self {
            ConditionSpec::Threshold { aggregate, window, op, value } => {
                Condition::Threshold { aggregate, window, op, value }
            }
            ConditionSpec::Absent { duration } => Condition::Absent { duration },
            ConditionSpec::Forecast { window, threshold, direction, warn_within, clear_beyond } => {
                Condition::Forecast {
                    window,
                    forecast: ForecastCondition::new(
                        threshold,
                        direction,
                        warn_within,
                        clear_beyond,
                    )?,
                }
            }
            ConditionSpec::AnomalyRate { window, min_score, above } => {
                Condition::AnomalyRate { window, min_score, above }
            }
            ConditionSpec::OutsideExpectedBand { window } => {
                Condition::OutsideExpectedBand { window }
            }
        })
    }

    /// The spec of a condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::{alert::Condition, config::ConditionSpec};
    /// let c = Condition::OutsideExpectedBand { window: Duration::from_mins(5) };
    /// assert_eq!(ConditionSpec::from_condition(&c).to_condition()?, c);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn from_condition(c: &Condition) -> Self {
        match *c {
            Condition::Threshold { aggregate, window, op, value } => {
                ConditionSpec::Threshold { aggregate, window, op, value }
            }
            Condition::Absent { duration } => ConditionSpec::Absent { duration },
            Condition::Forecast { window, forecast } => ConditionSpec::Forecast {
                window,
                threshold: forecast.threshold,
                direction: forecast.direction,
                warn_within: forecast.warn_within,
                clear_beyond: forecast.clear_beyond,
            },
            Condition::AnomalyRate { window, min_score, above } => {
                ConditionSpec::AnomalyRate { window, min_score, above }
            }
            Condition::OutsideExpectedBand { window } => {
                ConditionSpec::OutsideExpectedBand { window }
            }
        }
    }
}

/// `m_of_n = { m = 3, n = 5 }`: see [`RuleBuilder::m_of_n`](crate::alert::RuleBuilder::m_of_n).
///
/// # Examples
///
/// ```
/// let m: watchpost::config::MOfN = toml::from_str("m = 3\nn = 5")?;
/// assert_eq!((m.m, m.n), (3, 5));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MOfN {
    /// Evaluations in which the condition must hold.
    pub m: u32,
    /// Evaluations looked at.
    pub n: u32,
}

/// `flap_detection`: `true` (the default thresholds), `false` (off), or
/// `{ low = 5.0, high = 20.0 }`.
///
/// # Examples
///
/// ```
/// use watchpost::config::FlapSpec;
/// let f: FlapSpec = serde_json::from_str(r#"{"low": 25, "high": 50}"#)?;
/// assert_eq!(f, FlapSpec::Thresholds { low: 25.0, high: 50.0 });
/// assert_eq!(serde_json::from_str::<FlapSpec>("false")?, FlapSpec::Enabled(false));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlapSpec {
    /// On with the default thresholds, or off.
    Enabled(bool),
    /// On with these thresholds, in percent state change.
    Thresholds {
        /// Stop flapping below this.
        low: f64,
        /// Start flapping at or above this.
        high: f64,
    },
}

impl Default for FlapSpec {
    fn default() -> Self {
        FlapSpec::Enabled(true)
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_title() -> String {
    DEFAULT_TITLE.to_owned()
}

fn default_message() -> String {
    DEFAULT_MESSAGE.to_owned()
}

fn is_default_title(s: &str) -> bool {
    s == DEFAULT_TITLE
}

fn is_default_message(s: &str) -> bool {
    s == DEFAULT_MESSAGE
}

/// An alert rule as written in a file: one field per
/// [`RuleBuilder`](crate::alert::RuleBuilder) setter, with the same
/// defaults. Matchers are written as in `PromQL` or Alertmanager
/// (`'mount!~"/snap/.*"'`), durations as text (`"5m"`).
///
/// | field | builder | default |
/// |---|---|---|
/// | `name`, `metric` | [`AlertRule::builder`] | required |
/// | `matchers` | `matcher` | none |
/// | `condition` | `condition` | required ([`ConditionSpec`]) |
/// | `recovery` | `recover_when` | none |
/// | `for` | `pending_for` | `"0s"` |
/// | `keep_firing_for` | `keep_firing_for` | `"0s"` |
/// | `m_of_n` | `m_of_n` | off |
/// | `no_data` | `no_data` | `"no_data"` |
/// | `severity` | `severity` | `"warning"` |
/// | `family` | `family` | the metric |
/// | `labels` | `label` | none |
/// | `title`, `message` | `title`, `message` | [`DEFAULT_TITLE`], [`DEFAULT_MESSAGE`] |
/// | `repeat_every` | `repeat_every` | the manager's per-severity interval |
/// | `flap_detection` | `flap_detection` | `true` ([`FlapSpec`]) |
///
/// # Examples
///
/// ```
/// use watchpost::config::RuleSpec;
/// let spec: RuleSpec = toml::from_str(r#"
///     name = "disk_almost_full"
///     metric = "system_disk_usage"
///     matchers = ['mount!~"/snap/.*"']
///     condition = { kind = "threshold", aggregate = "last", window = "5m", op = "gt", value = 90.0 }
///     for = "10m"
///     severity = "critical"
///     labels = { team = "ops" }
/// "#)?;
/// let rule = spec.to_rule()?;
/// assert_eq!(rule.pending(), std::time::Duration::from_mins(10));
/// assert_eq!(watchpost::config::RuleSpec::from_rule(&rule), spec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSpec {
    /// The rule's unique name.
    pub name: String,
    /// The metric it selects series by.
    pub metric: String,
    /// Label matchers, each as `name="value"`, `name!="value"`, `name=~"re"` or `name!~"re"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    /// When the alert is active.
    pub condition: ConditionSpec,
    /// When a firing alert may resolve (hysteresis); none: when `condition` stops holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<ConditionSpec>,
    /// How long the condition must hold before the alert fires.
    #[serde(
        rename = "for",
        alias = "pending_for",
        default,
        with = "humantime_serde",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub pending_for: Duration,
    /// How long a firing alert stays firing after it recovers.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Duration::is_zero")]
    pub keep_firing_for: Duration,
    /// The condition counts when it held in `m` of the last `n` evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_of_n: Option<MOfN>,
    /// What to do when the window holds no data.
    #[serde(default, skip_serializing_if = "is_default")]
    pub no_data: NoDataPolicy,
    /// The severity.
    #[serde(default = "warning", skip_serializing_if = "is_warning")]
    pub severity: Severity,
    /// The family used by default inhibition; none: the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Labels added to the rule's alerts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The title template.
    #[serde(default = "default_title", skip_serializing_if = "is_default_title")]
    pub title: String,
    /// The message template.
    #[serde(default = "default_message", skip_serializing_if = "is_default_message")]
    pub message: String,
    /// Re-send while firing this often; none: the manager's interval for the severity.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub repeat_every: Option<Duration>,
    /// Flap detection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub flap_detection: FlapSpec,
}

fn warning() -> Severity {
    Severity::Warning
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_warning(s: &Severity) -> bool {
    *s == Severity::Warning
}

impl RuleSpec {
    /// A spec with the builder's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::{ConditionSpec, RuleSpec};
    /// let spec = RuleSpec::new("gone", "heartbeat",
    ///     ConditionSpec::Absent { duration: std::time::Duration::from_secs(30) });
    /// assert_eq!(spec.to_rule()?.name(), "gone");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        metric: impl Into<String>,
        condition: ConditionSpec,
    ) -> Self {
        RuleSpec {
            name: name.into(),
            metric: metric.into(),
            matchers: Vec::new(),
            condition,
            recovery: None,
            pending_for: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            m_of_n: None,
            no_data: NoDataPolicy::default(),
            severity: Severity::Warning,
            family: None,
            labels: BTreeMap::new(),
            title: default_title(),
            message: default_message(),
            repeat_every: None,
            flap_detection: FlapSpec::default(),
        }
    }

    /// Builds the rule through [`AlertRule::builder`], so every check of
    /// the builder applies.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the field and quoting the value, as
    /// [`RuleBuilder::build`](crate::alert::RuleBuilder::build) reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::{ConditionSpec, RuleSpec};
    /// let mut spec = RuleSpec::new("a", "m",
    ///     ConditionSpec::Absent { duration: std::time::Duration::from_secs(30) });
    /// spec.matchers.push("room=~\"gen(\"".into());
    /// assert!(spec.to_rule().unwrap_err().to_string().contains("gen("));
    /// ```
    pub fn to_rule(&self) -> Result<AlertRule> {
        let mut b = AlertRule::builder(self.name.clone(), self.metric.clone());
        for m in &self.matchers {
            b = b.matcher(m.parse::<Matcher>()?);
        }
        b = b.condition(self.condition.to_condition()?);
        if let Some(r) = &self.recovery {
            b = b.recover_when(r.to_condition()?);
        }
        b = b
            .pending_for(self.pending_for)
            .keep_firing_for(self.keep_firing_for)
            .no_data(self.no_data)
            .severity(self.severity)
            .title(self.title.clone())
            .message(self.message.clone());
        if let Some(MOfN { m, n }) = self.m_of_n {
            b = b.m_of_n(m, n);
        }
        if let Some(f) = &self.family {
            b = b.family(f.clone());
        }
        for (k, v) in &self.labels {
            b = b.label(k.clone(), v.clone());
        }
        if let Some(d) = self.repeat_every {
            b = b.repeat_every(d);
        }
        b = match self.flap_detection {
            FlapSpec::Enabled(true) => b.flap_detection(FlapDetection::default()),
            FlapSpec::Enabled(false) => b.without_flap_detection(),
            FlapSpec::Thresholds { low, high } => b.flap_detection(FlapDetection::new(low, high)?),
        };
        b.build()
    }

    /// The spec of a rule; [`to_rule`](Self::to_rule) gives back an equal rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{alert::AlertRule, config::RuleSpec};
    /// let rule = AlertRule::builder("cpu", "system_cpu_usage").above(90.0).recover_below(80.0).build()?;
    /// let spec = RuleSpec::from_rule(&rule);
    /// assert_eq!(RuleSpec::from_rule(&spec.to_rule()?), spec);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn from_rule(rule: &AlertRule) -> Self {
        let flap = match rule.flap {
            None => FlapSpec::Enabled(false),
            Some(f) if f == FlapDetection::default() => FlapSpec::Enabled(true),
            Some(f) => FlapSpec::Thresholds { low: f.low(), high: f.high() },
        };
        RuleSpec {
            name: rule.name.clone(),
            metric: rule.metric.clone(),
            matchers: rule.matchers.iter().map(ToString::to_string).collect(),
            condition: ConditionSpec::from_condition(&rule.condition),
            recovery: rule.recovery.as_ref().map(ConditionSpec::from_condition),
            pending_for: rule.pending(),
            keep_firing_for: rule.keep_firing_for(),
            m_of_n: rule.m_of_n.map(|(m, n)| MOfN { m, n }),
            no_data: rule.no_data,
            severity: rule.severity,
            family: (rule.family != rule.metric).then(|| rule.family.clone()),
            labels: rule.labels.iter().cloned().collect(),
            title: rule.title.source().to_owned(),
            message: rule.message.source().to_owned(),
            repeat_every: rule
                .repeat_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            flap_detection: flap,
        }
    }
}

impl Serialize for AlertRule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        RuleSpec::from_rule(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for AlertRule {
    /// Through [`RuleSpec`] and the builder: a document can only describe a
    /// rule that code could build.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        RuleSpec::deserialize(d)?.to_rule().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn parse_matchers(list: &[String]) -> Result<Vec<Matcher>> {
    list.iter().map(|m| m.parse()).collect()
}

/// An inhibit rule as written in a file (Alertmanager's `inhibit_rules`
/// entry): while an alert matching every `source` matcher fires, alerts
/// matching every `target` matcher with the same values of the `equal`
/// labels are muted.
///
/// # Examples
///
/// ```
/// let spec: watchpost::config::InhibitSpec = toml::from_str(r#"
///     source = ['alertname="host_down"']
///     target = ['severity="warning"']
///     equal = ["host"]
/// "#)?;
/// assert_eq!(spec.to_inhibit_rule()?.equal(), ["host"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitSpec {
    /// Matchers the muting alert satisfies.
    pub source: Vec<String>,
    /// Matchers the muted alert satisfies.
    pub target: Vec<String>,
    /// Labels whose values must be equal on both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

impl InhibitSpec {
    /// The inhibit rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) quoting a matcher that does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = watchpost::config::InhibitSpec {
    ///     source: vec!["severity=~\"(\"".into()], target: vec![], equal: vec![] };
    /// assert!(spec.to_inhibit_rule().is_err());
    /// ```
    pub fn to_inhibit_rule(&self) -> Result<InhibitRule> {
        Ok(InhibitRule::new(
            parse_matchers(&self.source)?,
            parse_matchers(&self.target)?,
            self.equal.iter().cloned(),
        ))
    }

    /// The spec of an inhibit rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{alert::{InhibitRule, Matcher}, config::InhibitSpec};
    /// let r = InhibitRule::new(vec![Matcher::equal("a", "b")], vec![], ["x"]);
    /// assert_eq!(InhibitSpec::from_inhibit_rule(&r).to_inhibit_rule()?, r);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn from_inhibit_rule(r: &InhibitRule) -> Self {
        InhibitSpec {
            source: r.source().iter().map(ToString::to_string).collect(),
            target: r.target().iter().map(ToString::to_string).collect(),
            equal: r.equal().to_vec(),
        }
    }
}

/// A silence as written in a file: matchers and a time range (RFC 3339).
///
/// # Examples
///
/// ```
/// let spec: watchpost::config::SilenceSpec = toml::from_str(r#"
///     matchers = ['alertname="disk_usage_warning"', 'mount="/backup"']
///     starts_at = "2026-01-01T00:00:00Z"
///     ends_at = "2026-01-02T00:00:00Z"
///     created_by = "ops"
///     comment = "backup disk is meant to be full"
/// "#)?;
/// assert_eq!(spec.to_silence()?.matchers().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Matchers an alert must satisfy to be muted.
    pub matchers: Vec<String>,
    /// When the silence starts.
    pub starts_at: chrono::DateTime<chrono::Utc>,
    /// When it ends (exclusive).
    pub ends_at: chrono::DateTime<chrono::Utc>,
    /// Who created it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

impl SilenceSpec {
    /// The silence, through [`Silence::new`] and its checks.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a bad matcher, no matcher, or a range
    /// that is empty or longer than [`Silence::MAX_DURATION_MS`].
    ///
    /// # Examples
    ///
    /// ```
    /// let spec: watchpost::config::SilenceSpec = toml::from_str(r#"
    ///     matchers = ['room="a"']
    ///     starts_at = "2026-01-02T00:00:00Z"
    ///     ends_at = "2026-01-01T00:00:00Z"
    /// "#)?;
    /// assert!(spec.to_silence().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_silence(&self) -> Result<Silence> {
        Ok(Silence::new(
            parse_matchers(&self.matchers)?,
            self.starts_at.timestamp_millis(),
            self.ends_at.timestamp_millis(),
        )?
        .created_by(self.created_by.clone())
        .comment(self.comment.clone()))
    }

    /// The spec of a silence.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{alert::{Matcher, Silence}, config::SilenceSpec};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 0, 60_000)?.comment("test");
    /// assert_eq!(SilenceSpec::from_silence(&s).to_silence()?, s);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn from_silence(s: &Silence) -> Self {
        let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        SilenceSpec {
            matchers: s.matchers().iter().map(ToString::to_string).collect(),
            starts_at: at(s.starts_at_ms()),
            ends_at: at(s.ends_at_ms()),
            created_by: s.creator().to_owned(),
            comment: s.why().to_owned(),
        }
    }
}
