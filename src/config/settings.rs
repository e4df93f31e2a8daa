//! Engine settings and detector choices as written in a file.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DetectorChoice;
use crate::alert::Severity;
use crate::error::{Error, Result};

/// A repeat interval: a duration (`"4h"`) or `"off"`.
///
/// # Examples
///
/// ```
/// use watchpost::config::RepeatSetting;
/// let r: RepeatSetting = "4h".parse()?;
/// assert_eq!(r.0, Some(std::time::Duration::from_hours(4)));
/// assert_eq!("off".parse::<RepeatSetting>()?.0, None);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatSetting(pub Option<Duration>);

impl FromStr for RepeatSetting {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "off" {
            return Ok(RepeatSetting(None));
        }
        humantime::parse_duration(s).map(|d| RepeatSetting(Some(d))).map_err(|e| {
            Error::InvalidConfig {
                field: "repeat_interval",
                reason: format!("{s:?} is neither \"off\" nor a duration: {e}"),
            }
        })
    }
}

impl fmt::Display for RepeatSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(d) => write!(f, "{}", humantime::format_duration(d)),
        }
    }
}

impl Serialize for RepeatSetting {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RepeatSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The `[engine]` table: one optional field per
/// [`EngineBuilder`](crate::EngineBuilder) setter of the same name; an
/// absent field keeps the builder's default (or what code set).
///
/// Checked by [`EngineBuilder::build`](crate::EngineBuilder::build) like a
/// setting made in code. Only `default_inhibition` and `repeat_interval`
/// take effect on a reload; a change to any other field is reported as
/// needing a restart.
///
/// # Examples
///
/// ```
/// let s: watchpost::config::EngineSettings = toml::from_str(r#"
///     sample_interval = "5s"
///     history_capacity = 720
///     repeat_interval = { critical = "1h", warning = "off" }
/// "#)?;
/// assert_eq!(s.history_capacity, Some(720));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EngineSettings {
    /// [`sample_interval`](crate::EngineBuilder::sample_interval).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub sample_interval: Option<Duration>,
    /// [`history_capacity`](crate::EngineBuilder::history_capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_capacity: Option<usize>,
    /// [`history_max_age`](crate::EngineBuilder::history_max_age).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub history_max_age: Option<Duration>,
    /// [`series_cap`](crate::EngineBuilder::series_cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_cap: Option<usize>,
    /// [`total_series_cap`](crate::EngineBuilder::total_series_cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_series_cap: Option<usize>,
    /// [`max_name_length`](crate::EngineBuilder::max_name_length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_name_length: Option<usize>,
    /// [`max_label_value_length`](crate::EngineBuilder::max_label_value_length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_label_value_length: Option<usize>,
    /// [`max_labels`](crate::EngineBuilder::max_labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_labels: Option<usize>,
    /// [`record_queue_capacity`](crate::EngineBuilder::record_queue_capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_queue_capacity: Option<usize>,
    /// [`staleness_horizon`](crate::EngineBuilder::staleness_horizon).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub staleness_horizon: Option<Duration>,
    /// `false`: [`without_default_alert_rules`](crate::EngineBuilder::without_default_alert_rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_alert_rules: Option<bool>,
    /// `false`: [`without_default_inhibition`](crate::EngineBuilder::without_default_inhibition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_inhibition: Option<bool>,
    /// [`anomaly_detector`](crate::EngineBuilder::anomaly_detector) for every
    /// metric without its own entry in `[detectors]`; `"none"` turns detection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_detector: Option<DetectorChoice>,
    /// [`anomaly_threshold`](crate::EngineBuilder::anomaly_threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_threshold: Option<f64>,
    /// [`alert_history_capacity`](crate::EngineBuilder::alert_history_capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_history_capacity: Option<usize>,
    /// [`notification_queue_capacity`](crate::EngineBuilder::notification_queue_capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_queue_capacity: Option<usize>,
    /// [`alert_repeat_interval`](crate::EngineBuilder::alert_repeat_interval) per severity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repeat_interval: BTreeMap<Severity, RepeatSetting>,
    /// [`summary_window`](crate::EngineBuilder::summary_window).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub summary_window: Option<Duration>,
    /// `false`: [`without_system_source`](crate::EngineBuilder::without_system_source);
    /// `true` needs feature `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_source: Option<bool>,
    /// [`dashboard_recent_points`](crate::EngineBuilder::dashboard_recent_points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_recent_points: Option<usize>,
    /// [`dashboard_statistics_window`](crate::EngineBuilder::dashboard_statistics_window).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub dashboard_statistics_window: Option<Duration>,
    /// [`dashboard_recent_alert_events`](crate::EngineBuilder::dashboard_recent_alert_events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_recent_alert_events: Option<usize>,
    /// [`notifier_queue_capacity`](crate::EngineBuilder::notifier_queue_capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifier_queue_capacity: Option<usize>,
    /// [`notification_flush_timeout`](crate::EngineBuilder::notification_flush_timeout).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub notification_flush_timeout: Option<Duration>,
    /// [`notifier_shutdown_grace`](crate::EngineBuilder::notifier_shutdown_grace).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub notifier_shutdown_grace: Option<Duration>,
    /// [`notifier_stuck_timeout`](crate::EngineBuilder::notifier_stuck_timeout).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub notifier_stuck_timeout: Option<Duration>,
    /// [`state_dir`](crate::EngineBuilder::state_dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<std::path::PathBuf>,
    /// [`state_write_delay`](crate::EngineBuilder::state_write_delay).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub state_write_delay: Option<Duration>,
    /// [`history_snapshot_interval`](crate::EngineBuilder::history_snapshot_interval).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub history_snapshot_interval: Option<Duration>,
    /// [`history_snapshots`](crate::EngineBuilder::history_snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_snapshots: Option<bool>,
    /// [`performance_checks`](crate::EngineBuilder::performance_checks): the
    /// series, checks and forecast settings of the dashboard's performance
    /// summary, as a table with the fields of
    /// [`SummaryConfig`](crate::analysis::SummaryConfig) (each optional;
    /// durations written like `"6h"`). A `checks` list replaces the default
    /// checks whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_checks: Option<crate::analysis::SummaryConfig>,
}

impl EngineSettings {
    /// Whether no field is set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::config::EngineSettings::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == EngineSettings::default()
    }

    /// The fields that differ between `self` and `other`, by name, except
    /// those a running engine applies (`default_inhibition`, `repeat_interval`).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::EngineSettings;
    /// let mut a = EngineSettings::default();
    /// a.history_capacity = Some(10);
    /// a.default_inhibition = Some(false);
    /// assert_eq!(a.needs_restart_from(&EngineSettings::default()), ["history_capacity"]);
    /// ```
    pub fn needs_restart_from(&self, other: &EngineSettings) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut cmp = |name: &'static str, differ: bool| {
            if differ {
                out.push(name);
            }
        };
        cmp("sample_interval", self.sample_interval != other.sample_interval);
        cmp("history_capacity", self.history_capacity != other.history_capacity);
        cmp("history_max_age", self.history_max_age != other.history_max_age);
        cmp("series_cap", self.series_cap != other.series_cap);
        cmp("total_series_cap", self.total_series_cap != other.total_series_cap);
        cmp("max_name_length", self.max_name_length != other.max_name_length);
        cmp("max_label_value_length", self.max_label_value_length != other.max_label_value_length);
        cmp("max_labels", self.max_labels != other.max_labels);
        cmp("record_queue_capacity", self.record_queue_capacity != other.record_queue_capacity);
        cmp("staleness_horizon", self.staleness_horizon != other.staleness_horizon);
        cmp("default_alert_rules", self.default_alert_rules != other.default_alert_rules);
        cmp("anomaly_detector", self.anomaly_detector != other.anomaly_detector);
        cmp("anomaly_threshold", self.anomaly_threshold != other.anomaly_threshold);
        cmp("alert_history_capacity", self.alert_history_capacity != other.alert_history_capacity);
        cmp(
            "notification_queue_capacity",
            self.notification_queue_capacity != other.notification_queue_capacity,
        );
        cmp("summary_window", self.summary_window != other.summary_window);
        cmp("system_source", self.system_source != other.system_source);
        cmp(
            "dashboard_recent_points",
            self.dashboard_recent_points != other.dashboard_recent_points,
        );
        cmp(
            "dashboard_statistics_window",
            self.dashboard_statistics_window != other.dashboard_statistics_window,
        );
        cmp(
            "dashboard_recent_alert_events",
            self.dashboard_recent_alert_events != other.dashboard_recent_alert_events,
        );
        cmp(
            "notifier_queue_capacity",
            self.notifier_queue_capacity != other.notifier_queue_capacity,
        );
        cmp(
            "notification_flush_timeout",
            self.notification_flush_timeout != other.notification_flush_timeout,
        );
        cmp(
            "notifier_shutdown_grace",
            self.notifier_shutdown_grace != other.notifier_shutdown_grace,
        );
        cmp("notifier_stuck_timeout", self.notifier_stuck_timeout != other.notifier_stuck_timeout);
        cmp("state_dir", self.state_dir != other.state_dir);
        cmp("state_write_delay", self.state_write_delay != other.state_write_delay);
        cmp(
            "history_snapshot_interval",
            self.history_snapshot_interval != other.history_snapshot_interval,
        );
        cmp("history_snapshots", self.history_snapshots != other.history_snapshots);
        cmp("performance_checks", self.performance_checks != other.performance_checks);
        out
    }
}
