//! The history of alert events and the views of active alerts.

use std::collections::BTreeMap;

use super::{AlertManager, alert_id};
use crate::alert::notify::NotificationKind;
use crate::alert::rule::Severity;
use crate::alert::silence::SilenceId;
use crate::alert::state::{AlertState, Instance};
use crate::key::SeriesKey;

/// What happened to an alert instance, as recorded in the history.
///
/// # Examples
///
/// ```
/// use watchpost::alert::{AlertEventKind, AlertState};
/// let k = AlertEventKind::StateChanged { from: AlertState::Pending, to: AlertState::Firing };
/// assert!(matches!(k, AlertEventKind::StateChanged { to: AlertState::Firing, .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertEventKind {
    /// The instance changed state.
    StateChanged {
        /// The state before.
        from: AlertState,
        /// The state after.
        to: AlertState,
    },
    /// The instance started flapping.
    FlappingStarted,
    /// The instance stopped flapping.
    FlappingStopped,
    /// The instance was acknowledged.
    Acknowledged,
    /// A notification was sent that no transition of this evaluation explains:
    /// a repeat, a firing announced when its silence ended, a resolve deferred
    /// by flapping, or a resolve caused by removing the rule.
    Notified(NotificationKind),
}

/// One entry of the alert history.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*};
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("temp", &[])?, 1_000, 35.0);
/// mgr.evaluate(1_000, &view);
/// let e = &mgr.history_since(0)[0];
/// assert_eq!(e.kind, AlertEventKind::StateChanged { from: AlertState::Inactive, to: AlertState::Firing });
/// assert_eq!(e.notified, Some(NotificationKind::Firing));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Increasing sequence number.
    pub id: u64,
    /// When it happened (the evaluation time), ms since the epoch.
    pub at_ms: i64,
    /// `rule/series`.
    pub alert_id: String,
    /// The rule's name.
    pub rule: String,
    /// The series.
    pub series: SeriesKey,
    /// The rule's severity.
    pub severity: Severity,
    /// What happened.
    pub kind: AlertEventKind,
    /// The instance's state after the event.
    pub state: AlertState,
    /// The condition's value at the time.
    pub value: Option<f64>,
    /// The firing threshold.
    pub threshold: Option<f64>,
    /// The rendered title.
    pub title: String,
    /// The rendered message.
    pub message: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The notification sent for this event, if any.
    pub notified: Option<NotificationKind>,
}

/// A snapshot of one alert instance.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*};
/// let mut mgr = AlertManager::with_default_rules();
/// let mut view = MemoryView::new();
/// let cpu = SeriesKey::new("system_cpu_usage", &[])?;
/// view.push(cpu.clone(), 0, 97.0);
/// mgr.evaluate(0, &view); // both pending: the defaults wait 2 minutes
/// view.push(cpu, 120_000, 97.0);
/// mgr.evaluate(120_000, &view);
/// let active = mgr.active_alerts();
/// assert_eq!(active.len(), 2);
/// let warning = active.iter().find(|a| a.severity == Severity::Warning).unwrap();
/// assert!(warning.inhibited); // the critical alert mutes it
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::struct_excessive_bools, reason = "independent flags, shown as such")]
pub struct ActiveAlert {
    /// `rule/series`.
    pub alert_id: String,
    /// The rule's name.
    pub rule: String,
    /// The series.
    pub series: SeriesKey,
    /// The rule's severity.
    pub severity: Severity,
    /// The current state.
    pub state: AlertState,
    /// While `state` is [`NoData`](AlertState::NoData): the state it paused
    /// in and resumes from when data returns (`Firing` means the alert still
    /// counts as firing). `None` in every other state.
    pub paused_from: Option<AlertState>,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The rendered title.
    pub title: String,
    /// The rendered message.
    pub message: String,
    /// The condition's latest value.
    pub value: Option<f64>,
    /// The firing threshold.
    pub threshold: Option<f64>,
    /// The worst value since it started firing.
    pub peak_value: Option<f64>,
    /// When the current state began.
    pub state_since_ms: i64,
    /// When the condition started holding (pending start).
    pub pending_since_ms: Option<i64>,
    /// When it started firing.
    pub firing_since_ms: Option<i64>,
    /// When it last resolved.
    pub resolved_at_ms: Option<i64>,
    /// The last evaluation time.
    pub last_evaluated_ms: i64,
    /// Acknowledged (muted until it resolves).
    pub acknowledged: bool,
    /// The silence muting it, if any.
    pub silenced_by: Option<SilenceId>,
    /// Muted by inhibition.
    pub inhibited: bool,
    /// Currently flapping.
    pub flapping: bool,
    /// Its weighted percent state change (0–100).
    pub flap_percent: f64,
    /// Whether its firing has been announced (so a resolve will follow).
    pub firing_notified: bool,
}

impl AlertManager {
    /// Alerts that are pending, firing or recovering (also while paused in `NoData`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::with_default_rules().active_alerts().is_empty());
    /// ```
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        self.snapshot(|inst| inst.effective().is_active())
    }

    /// How many alerts are firing (also while paused in `NoData`), without
    /// building snapshots.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::AlertManager::with_default_rules().firing_count(), 0);
    /// ```
    pub fn firing_count(&self) -> usize {
        self.slots
            .iter()
            .flat_map(|s| s.instances.values())
            .filter(|inst| inst.effective().is_firing())
            .count()
    }

    /// Every alert instance the manager tracks, in any state.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::with_default_rules().instances().is_empty());
    /// ```
    pub fn instances(&self) -> Vec<ActiveAlert> {
        self.snapshot(|_| true)
    }

    /// History events at or after `since_ms`, oldest first (the seed's
    /// `get_alert_history(hours)` is `history_since(now_ms - hours * 3_600_000)`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::default().history_since(0).is_empty());
    /// ```
    pub fn history_since(&self, since_ms: i64) -> Vec<AlertEvent> {
        let start = self.history.partition_point(|e| e.at_ms < since_ms);
        self.history.range(start..).cloned().collect()
    }

    /// The newest `n` history events, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::default().recent_events(10).is_empty());
    /// ```
    pub fn recent_events(&self, n: usize) -> Vec<AlertEvent> {
        let start = self.history.len().saturating_sub(n);
        self.history.range(start..).cloned().collect()
    }

    /// The newest `n` history events that `keep` accepts, oldest first.
    pub(crate) fn recent_events_where(
        &self,
        n: usize,
        keep: impl Fn(&AlertEvent) -> bool,
    ) -> Vec<AlertEvent> {
        let mut out: Vec<AlertEvent> =
            self.history.iter().rev().filter(|e| keep(e)).take(n).cloned().collect();
        out.reverse();
        out
    }

    pub(super) fn take_event_id(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }

    pub(super) fn event(
        &mut self,
        i: usize,
        key: &SeriesKey,
        kind: AlertEventKind,
        now_ms: i64,
        notified: Option<NotificationKind>,
    ) -> AlertEvent {
        let id = self.take_event_id();
        let inst = &self.slots[i].instances[key];
        let (title, message) = self.render(i, inst);
        let rule = &self.slots[i].rule;
        AlertEvent {
            id,
            at_ms: now_ms,
            alert_id: alert_id(&rule.name, key),
            rule: rule.name.clone(),
            series: key.clone(),
            severity: rule.severity,
            kind,
            state: inst.state,
            value: inst.value,
            threshold: rule.condition.threshold(),
            title,
            message,
            labels: inst.labels.clone(),
            notified,
        }
    }

    pub(super) fn push_history(&mut self, e: AlertEvent) {
        self.history.push_back(e);
        while self.history.len() > self.history_capacity {
            self.history.pop_front();
        }
    }

    fn snapshot(&self, keep: impl Fn(&Instance) -> bool) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            for (key, inst) in &slot.instances {
                if !keep(inst) {
                    continue;
                }
                let (title, message) = self.render(i, inst);
                out.push(ActiveAlert {
                    alert_id: alert_id(&slot.rule.name, key),
                    rule: slot.rule.name.clone(),
                    series: key.clone(),
                    severity: slot.rule.severity,
                    state: inst.state,
                    paused_from: (inst.state == AlertState::NoData).then_some(inst.paused),
                    labels: inst.labels.clone(),
                    title,
                    message,
                    value: inst.value,
                    threshold: slot.rule.condition.threshold(),
                    peak_value: inst.peak,
                    state_since_ms: inst.state_since_ms,
                    pending_since_ms: inst.pending_since_ms,
                    firing_since_ms: inst.firing_since_ms,
                    resolved_at_ms: inst.resolved_at_ms,
                    last_evaluated_ms: inst.last_eval_ms,
                    acknowledged: inst.acknowledged,
                    silenced_by: inst.silenced_by.map(SilenceId),
                    inhibited: inst.inhibited,
                    flapping: inst.flapping,
                    flap_percent: inst.flap_percent(),
                    firing_notified: inst.notified_firing,
                });
            }
        }
        out
    }
}
