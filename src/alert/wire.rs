//! Serde wire types for dashboards and JSON APIs: active alerts and recent events.
//!
//! They keep the seed's field names (`id`, `title`, `message`, `metric_name`,
//! `current_value`, `threshold`, `labels`, `timestamp`) and add state and
//! timestamps. Each fact is given once (dashboard schema 2): the severity is
//! `labels.severity`, whether an alert is over is its `state`. Every float is
//! finite or `null`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::manager::{ActiveAlert, AlertEvent, AlertEventKind};
use crate::alert::notify::NotificationKind;
use crate::alert::state::AlertState;
use crate::clock::ms_to_datetime;

/// One alert instance as the dashboard shows it.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*};
/// let mut mgr = AlertManager::with_default_rules();
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("system_disk_usage", &[("mount", "/")])?, 0, 93.0);
/// mgr.evaluate(0, &view);
/// let wire: Vec<AlertView> = mgr.active_alerts().iter().map(AlertView::from).collect();
/// assert_eq!(wire[0].metric_name, "system_disk_usage");
/// assert_eq!(wire[0].current_value, Some(93.0));
/// assert_eq!(wire[0].labels["severity"], "warning"); // the severity is a label
/// assert_eq!(wire[0].state, AlertState::Pending); // `resolved` would repeat it
/// let json = serde_json::to_string(&wire)?;
/// assert_eq!(serde_json::from_str::<Vec<AlertView>>(&json)?, wire);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools, reason = "independent flags, shown as such")]
pub struct AlertView {
    /// `rule/series`.
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The current state (`resolved` and `inactive` mean it is over).
    pub state: AlertState,
    /// While `state` is `no_data`: the state it paused in (`firing` means it
    /// still counts as firing); `null` otherwise.
    #[serde(default)]
    pub paused_from: Option<AlertState>,
    /// The rendered title.
    pub title: String,
    /// The rendered message.
    pub message: String,
    /// The metric name.
    pub metric_name: String,
    /// The series, `name{labels}`.
    pub series: String,
    /// The condition's latest value.
    pub current_value: Option<f64>,
    /// The firing threshold.
    pub threshold: Option<f64>,
    /// The worst value since it started firing.
    pub peak_value: Option<f64>,
    /// The alert's labels, `alertname` and `severity` (`info`, `warning`,
    /// `error` or `critical`) included.
    pub labels: BTreeMap<String, String>,
    /// When the current state began.
    pub timestamp: DateTime<Utc>,
    /// When the condition started holding.
    pub pending_since: Option<DateTime<Utc>>,
    /// When it started firing.
    pub firing_since: Option<DateTime<Utc>>,
    /// When it last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The last evaluation.
    pub last_evaluated: DateTime<Utc>,
    /// Acknowledged.
    pub acknowledged: bool,
    /// Muted by a silence.
    pub silenced: bool,
    /// Muted by inhibition.
    pub inhibited: bool,
    /// Flapping.
    pub flapping: bool,
}

impl From<&ActiveAlert> for AlertView {
    fn from(a: &ActiveAlert) -> Self {
        AlertView {
            id: a.alert_id.clone(),
            rule: a.rule.clone(),
            state: a.state,
            paused_from: a.paused_from,
            title: a.title.clone(),
            message: a.message.clone(),
            metric_name: a.series.name().to_owned(),
            series: a.series.to_string(),
            current_value: finite(a.value),
            threshold: finite(a.threshold),
            peak_value: finite(a.peak_value),
            labels: a.labels.clone(),
            timestamp: ms_to_datetime(a.state_since_ms),
            pending_since: a.pending_since_ms.map(ms_to_datetime),
            firing_since: a.firing_since_ms.map(ms_to_datetime),
            resolved_at: a.resolved_at_ms.map(ms_to_datetime),
            last_evaluated: ms_to_datetime(a.last_evaluated_ms),
            acknowledged: a.acknowledged,
            silenced: a.silenced_by.is_some(),
            inhibited: a.inhibited,
            flapping: a.flapping,
        }
    }
}

/// One history event as the dashboard shows it.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*};
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("memory_high", "system_memory_usage")
///     .above(85.0).build()?])?;
/// let mut view = MemoryView::new();
/// let key = SeriesKey::new("system_memory_usage", &[])?;
/// view.push(key.clone(), 0, 90.0);
/// mgr.evaluate(0, &view);
/// view.push(key, 1_000, 50.0);
/// mgr.evaluate(1_000, &view);
/// let events: Vec<AlertEventView> = mgr.recent_events(10).iter().map(AlertEventView::from).collect();
/// assert_eq!(events.len(), 2);
/// assert_eq!((events[0].event, events[0].state), (EventKind::StateChanged, AlertState::Firing));
/// assert_eq!((events[1].from_state, events[1].state), (Some(AlertState::Firing), AlertState::Resolved));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEventView {
    /// Increasing event number.
    pub id: u64,
    /// `rule/series`.
    pub alert_id: String,
    /// The rule's name.
    pub rule: String,
    /// What happened.
    pub event: EventKind,
    /// The state before, for state changes; `null` otherwise.
    pub from_state: Option<AlertState>,
    /// The state after the event (the new state, for a state change).
    pub state: AlertState,
    /// The rendered title.
    pub title: String,
    /// The rendered message.
    pub message: String,
    /// The metric name.
    pub metric_name: String,
    /// The series, `name{labels}`.
    pub series: String,
    /// The condition's value at the time.
    pub current_value: Option<f64>,
    /// The firing threshold.
    pub threshold: Option<f64>,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The notification sent for it, if any (for a `notified` event, the one
    /// it records).
    pub notified: Option<NotificationKind>,
}

/// What an [`AlertEventView`] records.
///
/// # Examples
///
/// ```
/// use watchpost::alert::EventKind;
/// assert_eq!(serde_json::to_string(&EventKind::StateChanged)?, r#""state_changed""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The alert moved from `from_state` to `state`.
    StateChanged,
    /// Flap detection started muting it.
    FlappingStarted,
    /// Flap detection stopped muting it.
    FlappingStopped,
    /// It was acknowledged.
    Acknowledged,
    /// A notification no state change explains (a repeat, say): its kind is `notified`.
    Notified,
}

impl From<&AlertEvent> for AlertEventView {
    fn from(e: &AlertEvent) -> Self {
        let (event, from_state) = match e.kind {
            AlertEventKind::StateChanged { from, .. } => (EventKind::StateChanged, Some(from)),
            AlertEventKind::FlappingStarted => (EventKind::FlappingStarted, None),
            AlertEventKind::FlappingStopped => (EventKind::FlappingStopped, None),
            AlertEventKind::Acknowledged => (EventKind::Acknowledged, None),
            AlertEventKind::Notified(_) => (EventKind::Notified, None),
        };
        AlertEventView {
            id: e.id,
            alert_id: e.alert_id.clone(),
            rule: e.rule.clone(),
            event,
            from_state,
            state: e.state,
            title: e.title.clone(),
            message: e.message.clone(),
            metric_name: e.series.name().to_owned(),
            series: e.series.to_string(),
            current_value: finite(e.value),
            threshold: finite(e.threshold),
            labels: e.labels.clone(),
            timestamp: ms_to_datetime(e.at_ms),
            notified: e.notified,
        }
    }
}

/// Whether the dashboard and `/api/alerts` leave `e` out of their recent
/// events: a state change between states in which nothing is alerting
/// (`inactive`, `no_data`, or from `resolved` to either), such as a rule's
/// series going quiet and coming back. The full history
/// (`Monitor::alert_history`) keeps them.
pub(crate) fn is_quiet(e: &AlertEvent) -> bool {
    use AlertState::{Inactive, NoData, Resolved};
    matches!(
        e.kind,
        AlertEventKind::StateChanged { from: Inactive | NoData | Resolved, to: Inactive | NoData }
    )
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
