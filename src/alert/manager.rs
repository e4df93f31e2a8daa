//! The alert manager: rules, instances, muting, notifications and history.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::alert::defaults::default_rules;
use crate::alert::notify::{Notification, NotificationKind, Resolution, ResolveReason};
use crate::alert::rule::{AlertRule, Condition, Severity, Verdict, duration_ms, invalid};
use crate::alert::silence::{InhibitRule, Silence, SilenceId};
use crate::alert::state::{AlertState, Instance};
use crate::alert::template::RenderContext;
use crate::alert::view::SeriesView;
use crate::clock::ms_to_datetime;
use crate::error::Result;
use crate::history::Sample;
use crate::key::SeriesKey;

/// Default number of events kept in the history (Netdata keeps 1 000 in memory).
pub const DEFAULT_HISTORY_CAPACITY: usize = 1_000;

/// Most silences an [`AlertManager`] keeps (running, pending and recently
/// ended); see [`AlertManager::add_silence`].
///
/// # Examples
///
/// ```
/// assert_eq!(watchpost::alert::MAX_SILENCES, 500);
/// ```
pub const MAX_SILENCES: usize = 500;

/// Expired silences are listed for this long after they end, then forgotten.
pub const SILENCE_RETENTION: Duration = Duration::from_hours(24);

/// Default repeat interval of critical alerts (Alertmanager's default); other
/// severities do not repeat unless configured.
pub const DEFAULT_CRITICAL_REPEAT: Duration = Duration::from_hours(4);

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

/// Firing sources of one inhibit rule, by their `equal` label values.
type SourceIndex<'a> = HashMap<Vec<String>, Vec<(usize, &'a SeriesKey)>>;

pub(super) struct RuleSlot {
    pub(super) rule: AlertRule,
    pub(super) instances: BTreeMap<SeriesKey, Instance>,
}

/// A transition or flap change found while stepping instances.
struct Change {
    slot: usize,
    key: SeriesKey,
    kind: AlertEventKind,
}

/// Evaluates alert rules over a [`SeriesView`] and decides what to notify.
///
/// Pure: no threads, no I/O, no clock. The engine calls
/// [`evaluate`](Self::evaluate) after each ingest and on every tick and hands
/// the returned notifications to its dispatcher.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::{SeriesKey, alert::*};
///
/// let rule = AlertRule::builder("room_busy", "messages_per_second")
///     .above(100.0)
///     .recover_below(80.0)
///     .pending_for(Duration::from_secs(30))
///     .message("{{labels.room}} at {{value}} msg/s")
///     .build()?;
/// let mut mgr = AlertManager::new(vec![rule])?;
/// let key = SeriesKey::new("messages_per_second", &[("room", "general")])?;
/// let mut view = MemoryView::new();
///
/// view.push(key.clone(), 0, 150.0);
/// assert!(mgr.evaluate(0, &view).is_empty());          // pending
/// view.push(key.clone(), 30_000, 140.0);
/// let fired = mgr.evaluate(30_000, &view);
/// assert_eq!(fired[0].kind, NotificationKind::Firing);
/// assert_eq!(fired[0].message, "general at 140 msg/s");
/// view.push(key.clone(), 40_000, 90.0);                 // below 100, above 80: still firing
/// assert!(mgr.evaluate(40_000, &view).is_empty());
/// view.push(key.clone(), 50_000, 70.0);
/// let resolved = mgr.evaluate(50_000, &view);
/// assert_eq!(resolved[0].kind, NotificationKind::Resolved);
/// let r = resolved[0].resolution.unwrap();
/// assert_eq!((r.duration_ms, r.peak_value, r.last_value), (20_000, Some(140.0), Some(70.0)));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct AlertManager {
    pub(super) slots: Vec<RuleSlot>,
    pub(super) silences: Vec<Silence>,
    inhibit_rules: Vec<InhibitRule>,
    default_inhibition: bool,
    repeat_ms: [Option<i64>; 4],
    history: VecDeque<AlertEvent>,
    history_capacity: usize,
    outbox: Vec<Notification>,
    outbox_events: Vec<AlertEvent>,
    pub(super) next_notification_id: u64,
    pub(super) next_event_id: u64,
    pub(super) next_silence_id: u64,
    /// Series past the engine's staleness horizon: their condition does not
    /// hold (except for absence rules), and their resolves say `Stale`.
    stale: HashSet<SeriesKey>,
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertManager")
            .field("rules", &self.slots.len())
            .field("instances", &self.slots.iter().map(|s| s.instances.len()).sum::<usize>())
            .field("silences", &self.silences.len())
            .field("history", &self.history.len())
            .finish_non_exhaustive()
    }
}

impl Default for AlertManager {
    /// No rules.
    fn default() -> Self {
        AlertManager {
            slots: Vec::new(),
            silences: Vec::new(),
            inhibit_rules: Vec::new(),
            default_inhibition: true,
            repeat_ms: [None, None, None, Some(duration_ms(DEFAULT_CRITICAL_REPEAT))],
            history: VecDeque::new(),
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            outbox: Vec::new(),
            outbox_events: Vec::new(),
            next_notification_id: 1,
            next_event_id: 1,
            next_silence_id: 1,
            stale: HashSet::new(),
        }
    }
}

impl AlertManager {
    /// A manager with `rules`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if two rules share a name.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, AlertRule};
    /// let warn = AlertRule::builder("cpu", "system_cpu_usage").above(80.0).build()?;
    /// assert!(AlertManager::new(vec![warn.clone(), warn]).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn new(rules: Vec<AlertRule>) -> Result<Self> {
        let mut mgr = AlertManager::default();
        for rule in rules {
            mgr.add_rule(rule)?;
        }
        Ok(mgr)
    }

    /// A manager with [`default_rules`].
    ///
    /// # Panics
    ///
    /// Never: the default rules have distinct names.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::AlertManager::with_default_rules().rules().count(), 5);
    /// ```
    pub fn with_default_rules() -> Self {
        AlertManager::new(default_rules()).expect("default rule names are distinct")
    }

    /// Adds a rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) quoting the name if a rule with
    /// that name exists (use [`replace_rule`](Self::replace_rule) to swap it).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, AlertRule, Severity};
    /// let mut mgr = AlertManager::default();
    /// mgr.add_rule(AlertRule::builder("cpu_warn", "system_cpu_usage").above(80.0).build()?)?;
    /// mgr.add_rule(AlertRule::builder("cpu_crit", "system_cpu_usage").above(95.0)
    ///     .severity(Severity::Critical).build()?)?;
    /// assert_eq!(mgr.rules().count(), 2); // both rules on one metric are kept
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn add_rule(&mut self, rule: AlertRule) -> Result<()> {
        if self.slot_index(&rule.name).is_some() {
            return Err(invalid(
                "rule.name",
                format!("a rule named {:?} already exists", rule.name),
            ));
        }
        self.slots.push(RuleSlot { rule, instances: BTreeMap::new() });
        Ok(())
    }

    /// Adds `rule`, or replaces the rule with the same name and returns it.
    ///
    /// Instances whose series the new rule still selects keep their state (a
    /// firing alert does not re-fire). The others are dropped; a resolve is
    /// queued for each whose firing was announced, and returned by the next
    /// [`evaluate`](Self::evaluate).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, AlertRule};
    /// let mut mgr = AlertManager::with_default_rules();
    /// let stricter = AlertRule::builder("cpu_usage_warning", "system_cpu_usage").above(70.0).build()?;
    /// let old = mgr.replace_rule(stricter, 0).unwrap();
    /// assert_eq!(old.condition().to_string(), "avg over 60s > 80");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn replace_rule(&mut self, rule: AlertRule, now_ms: i64) -> Option<AlertRule> {
        let Some(i) = self.slot_index(&rule.name) else {
            self.slots.push(RuleSlot { rule, instances: BTreeMap::new() });
            return None;
        };
        let old = std::mem::replace(&mut self.slots[i].rule, rule);
        let keys: Vec<SeriesKey> = self.slots[i].instances.keys().cloned().collect();
        for key in keys {
            let slot = &mut self.slots[i];
            let keep = key.name() == slot.rule.metric
                && slot.rule.selects(|k| key.labels().get(k))
                && slot.instances.get(&key).is_some_and(|inst| !inst.synthetic);
            if keep {
                if let Some(inst) = slot.instances.get_mut(&key) {
                    inst.labels = crate::alert::state::alert_labels(&key, &slot.rule);
                }
            } else if let Some(inst) = slot.instances.remove(&key) {
                self.retire(i, &inst, ResolveReason::RuleRemoved, now_ms);
            }
        }
        Some(old)
    }

    /// Removes the rule named `name` and returns it. A resolve is queued for
    /// each of its alerts whose firing was announced, and returned by the next
    /// [`evaluate`](Self::evaluate).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mgr = watchpost::alert::AlertManager::with_default_rules();
    /// assert!(mgr.remove_rule("disk_usage_warning", 0).is_some());
    /// assert!(mgr.remove_rule("disk_usage_warning", 0).is_none());
    /// ```
    pub fn remove_rule(&mut self, name: &str, now_ms: i64) -> Option<AlertRule> {
        let i = self.slot_index(name)?;
        let instances = std::mem::take(&mut self.slots[i].instances);
        for inst in instances.values() {
            self.retire(i, inst, ResolveReason::RuleRemoved, now_ms);
        }
        Some(self.slots.remove(i).rule)
    }

    /// Forgets every alert instance of `series` (under every rule), as when
    /// the series is removed or goes stale. A resolve carrying `reason` is
    /// queued for each whose firing was announced and returned by the next
    /// [`evaluate`](Self::evaluate). Returns how many instances were dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::*};
    /// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// let key = SeriesKey::new("temp", &[("room", "lab")])?;
    /// let mut view = MemoryView::new();
    /// view.push(key.clone(), 0, 35.0);
    /// assert_eq!(mgr.evaluate(0, &view)[0].kind, NotificationKind::Firing);
    /// assert_eq!(mgr.resolve_series(&key, ResolveReason::SeriesRemoved, 1_000), 1);
    /// let n = mgr.evaluate(1_000, &MemoryView::new());
    /// assert_eq!(n[0].resolution.unwrap().reason, ResolveReason::SeriesRemoved);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn resolve_series(
        &mut self,
        series: &SeriesKey,
        reason: ResolveReason,
        now_ms: i64,
    ) -> usize {
        let mut dropped = 0;
        for i in 0..self.slots.len() {
            if let Some(inst) = self.slots[i].instances.remove(series) {
                self.retire(i, &inst, reason, now_ms);
                dropped += 1;
            }
        }
        dropped
    }

    /// Sets the series that are stale (silent past the engine's staleness
    /// horizon): for every rule but absence rules their condition no longer
    /// holds, so pending alerts reset and firing ones resolve (after their
    /// `keep_firing_for`) with [`ResolveReason::Stale`]. The engine also
    /// keeps them out of the view, so their idle alerts are forgotten.
    pub(crate) fn set_stale(&mut self, stale: HashSet<SeriesKey>) {
        self.stale = stale;
    }

    /// The rules, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// let mgr = watchpost::alert::AlertManager::with_default_rules();
    /// assert_eq!(mgr.rules().next().unwrap().name(), "cpu_usage_warning");
    /// ```
    pub fn rules(&self) -> impl Iterator<Item = &AlertRule> {
        self.slots.iter().map(|s| &s.rule)
    }

    /// The rule named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mgr = watchpost::alert::AlertManager::with_default_rules();
    /// assert!(mgr.rule("memory_usage_critical").is_some());
    /// ```
    pub fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.slot_index(name).map(|i| &self.slots[i].rule)
    }

    /// Turns default inhibition on or off: a firing alert mutes alerts of lower
    /// severity in the same [family](crate::alert::RuleBuilder::family) on the
    /// same series. Default: on.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mgr = watchpost::alert::AlertManager::with_default_rules();
    /// mgr.set_default_inhibition(false);
    /// ```
    pub fn set_default_inhibition(&mut self, on: bool) {
        self.default_inhibition = on;
    }

    /// Adds a custom inhibit rule. Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, InhibitRule, Matcher};
    /// let mut mgr = AlertManager::with_default_rules();
    /// mgr.add_inhibit_rule(InhibitRule::new(vec![Matcher::equal("alertname", "host_down")],
    ///                                       vec![Matcher::equal("severity", "warning")], ["host"]));
    /// assert_eq!(mgr.inhibit_rules().len(), 1);
    /// ```
    pub fn add_inhibit_rule(&mut self, rule: InhibitRule) {
        self.inhibit_rules.push(rule);
    }

    /// The custom inhibit rules.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::default().inhibit_rules().is_empty());
    /// ```
    pub fn inhibit_rules(&self) -> &[InhibitRule] {
        &self.inhibit_rules
    }

    /// Replaces the custom inhibit rules (a configuration reload).
    pub(crate) fn set_inhibit_rules(&mut self, rules: Vec<InhibitRule>) {
        self.inhibit_rules = rules;
    }

    /// Sets the repeat interval for rules of `severity` that do not set their
    /// own; `None` turns repeats off. Default: 4 h for critical, off otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a zero interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{AlertManager, Severity};
    /// let mut mgr = AlertManager::default();
    /// mgr.set_repeat_interval(Severity::Warning, Some(Duration::from_hours(12)))?;
    /// assert!(mgr.set_repeat_interval(Severity::Info, Some(Duration::ZERO)).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn set_repeat_interval(
        &mut self,
        severity: Severity,
        every: Option<Duration>,
    ) -> Result<()> {
        if every.is_some_and(|d| d.is_zero()) {
            return Err(invalid(
                "repeat_interval",
                format!("0s for {severity}; use None to turn it off"),
            ));
        }
        self.repeat_ms[severity.index()] = every.map(duration_ms);
        Ok(())
    }

    /// Caps the history at `capacity` events (oldest dropped first). Default:
    /// [`DEFAULT_HISTORY_CAPACITY`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mgr = watchpost::alert::AlertManager::default();
    /// mgr.set_history_capacity(100)?;
    /// assert!(mgr.set_history_capacity(0).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn set_history_capacity(&mut self, capacity: usize) -> Result<()> {
        if capacity == 0 {
            return Err(invalid("history_capacity", "0; it must be at least 1".to_owned()));
        }
        self.history_capacity = capacity;
        while self.history.len() > capacity {
            self.history.pop_front();
        }
        Ok(())
    }

    /// Adds a silence and returns its id.
    ///
    /// At most [`MAX_SILENCES`] are kept. When that many are stored, the one
    /// that ended first is forgotten if it ended by the new silence's start;
    /// otherwise the new silence is refused.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if its creator or
    /// comment is longer than [`Silence::MAX_CREATED_BY_LEN`] or
    /// [`Silence::MAX_COMMENT_LEN`] bytes, or if [`MAX_SILENCES`] silences
    /// have not ended yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, Matcher, Silence};
    /// let mut mgr = AlertManager::with_default_rules();
    /// let id = mgr.add_silence(Silence::new(vec![Matcher::equal("severity", "warning")], 0, 60_000)?)?;
    /// assert_eq!(mgr.silences()[0].id(), id);
    /// let long = Silence::new(vec![Matcher::equal("room", "a")], 0, 1)?.comment("x".repeat(5_000));
    /// assert!(mgr.add_silence(long).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn add_silence(&mut self, mut silence: Silence) -> Result<SilenceId> {
        silence.validate_text()?;
        if self.silences.len() >= MAX_SILENCES {
            let first_end = self.silences.iter().enumerate().min_by_key(|(_, s)| s.ends_at_ms);
            match first_end {
                Some((i, s)) if s.ends_at_ms <= silence.starts_at_ms => {
                    self.silences.remove(i);
                }
                _ => {
                    return Err(crate::Error::InvalidConfig {
                        field: "silence",
                        reason: format!(
                            "{} silences have not ended by {} ms; at most {MAX_SILENCES}, expire one first",
                            self.silences.len(),
                            silence.starts_at_ms
                        ),
                    });
                }
            }
        }
        let id = SilenceId(self.next_silence_id);
        self.next_silence_id += 1;
        silence.id = id;
        self.silences.push(silence);
        Ok(id)
    }

    /// All silences, active, future and recently expired (kept for
    /// [`SILENCE_RETENTION`] after they end).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertManager::default().silences().is_empty());
    /// ```
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Ends silence `id` at `now_ms` if it has not ended yet; returns whether it did.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertManager, Matcher, Silence};
    /// let mut mgr = AlertManager::default();
    /// let id = mgr.add_silence(Silence::new(vec![Matcher::equal("room", "a")], 0, 60_000)?)?;
    /// assert!(mgr.expire_silence(id, 10));
    /// assert!(mgr.silences()[0].is_expired(10));
    /// assert!(!mgr.expire_silence(id, 20));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn expire_silence(&mut self, id: SilenceId, now_ms: i64) -> bool {
        match self.silences.iter_mut().find(|s| s.id == id) {
            Some(s) if !s.is_expired(now_ms) => {
                s.starts_at_ms = s.starts_at_ms.min(now_ms);
                s.ends_at_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    /// Acknowledges the active alert `alert_id` (`rule/series`): its repeats
    /// and flapping notices are muted until it resolves (or, if pending,
    /// returns to inactive). The announcement of its firing and its resolve
    /// are never muted, so a pending alert acknowledged ahead still announces
    /// its `Firing` and its `Resolved`. Returns whether an unacknowledged
    /// active alert was found.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::*};
    /// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// let mut view = MemoryView::new();
    /// view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
    /// let id = mgr.evaluate(0, &view)[0].alert_id.clone();
    /// assert!(mgr.acknowledge(&id, 1));
    /// assert!(!mgr.acknowledge("nope/temp", 1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn acknowledge(&mut self, alert_id: &str, now_ms: i64) -> bool {
        let Some((rule, series)) = alert_id.split_once('/') else { return false };
        let Some(i) = self.slot_index(rule) else { return false };
        let Some(key) = self.slots[i].instances.keys().find(|k| k.to_string() == series).cloned()
        else {
            return false;
        };
        let Some(inst) = self.slots[i].instances.get_mut(&key) else { return false };
        if !inst.effective().is_active() || inst.acknowledged {
            return false;
        }
        inst.acknowledged = true;
        let event = self.event(i, &key, AlertEventKind::Acknowledged, now_ms, None);
        self.push_history(event);
        true
    }

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

    /// Evaluates every rule at `now_ms` over `view`, advances every alert
    /// instance, and returns the notifications to deliver, in cause order:
    /// resolves first (with the inhibition they end), then firings and the
    /// rest, each group in rule order.
    ///
    /// Call it when samples arrive and on a periodic tick, so `for`,
    /// `keep_firing_for` and no-data also progress when no sample comes.
    /// Evaluating twice at the same time with the same data changes nothing.
    /// Only evaluations that see a sample newer than the last one counted are
    /// steps for M-of-N and flap detection.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::*};
    /// let mut mgr = AlertManager::new(vec![
    ///     AlertRule::builder("cpu_warning", "cpu").above(80.0).build()?,
    ///     AlertRule::builder("cpu_critical", "cpu").above(95.0).severity(Severity::Critical).build()?,
    /// ])?;
    /// let mut view = MemoryView::new();
    /// let cpu = SeriesKey::new("cpu", &[])?;
    /// view.push(cpu.clone(), 0, 97.0);
    /// let n = mgr.evaluate(0, &view); // the warning is inhibited by the critical
    /// assert_eq!((n.len(), n[0].rule.as_str()), (1, "cpu_critical"));
    /// view.push(cpu.clone(), 1_000, 85.0);
    /// let n = mgr.evaluate(1_000, &view); // cause order: the resolve, then the firing it released
    /// let got: Vec<(&str, NotificationKind)> = n.iter().map(|n| (n.rule.as_str(), n.kind)).collect();
    /// assert_eq!(got, [("cpu_critical", NotificationKind::Resolved), ("cpu_warning", NotificationKind::Firing)]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn evaluate(&mut self, now_ms: i64, view: &dyn SeriesView) -> Vec<Notification> {
        let retention = duration_ms(SILENCE_RETENTION);
        self.silences.retain(|s| s.ends_at_ms > now_ms.saturating_sub(retention));

        let changes = self.step_all(now_ms, view);
        self.compute_mutes(now_ms);
        let mut out = std::mem::take(&mut self.outbox);
        for e in std::mem::take(&mut self.outbox_events) {
            self.push_history(e);
        }
        let mut notified: HashMap<(usize, SeriesKey), Vec<NotificationKind>> = HashMap::new();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let repeat = slot.rule.repeat_ms.or(self.repeat_ms[slot.rule.severity.index()]);
            let mut decided: Vec<(SeriesKey, Vec<NotificationKind>)> = Vec::new();
            for (key, inst) in &mut slot.instances {
                if inst.last_eval_ms == now_ms {
                    let kinds = decide(inst, repeat, now_ms);
                    if !kinds.is_empty() {
                        decided.push((key.clone(), kinds));
                    }
                }
            }
            for (key, kinds) in decided {
                for &kind in &kinds {
                    out.push(self.notification(i, &key, kind, now_ms));
                }
                notified.insert((i, key), kinds);
            }
        }
        self.record(changes, notified, now_ms);
        self.collect_garbage();
        cause_order(out)
    }

    fn slot_index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.rule.name == name)
    }

    /// Steps every instance of every rule; returns the transitions and flap changes.
    fn step_all(&mut self, now_ms: i64, view: &dyn SeriesView) -> Vec<Change> {
        // Fetch each metric's series once, and each series' samples once, over
        // the longest lookback any rule on that metric needs.
        let mut lookback: HashMap<&str, i64> = HashMap::new();
        for slot in &self.slots {
            let r = &slot.rule;
            let lb = r
                .condition
                .lookback_ms()
                .max(r.recovery.as_ref().map_or(0, Condition::lookback_ms));
            let e = lookback.entry(r.metric.as_str()).or_insert(0);
            *e = (*e).max(lb);
        }
        let mut keys_by_metric: HashMap<String, Vec<SeriesKey>> = HashMap::new();
        for metric in lookback.keys() {
            keys_by_metric.insert((*metric).to_owned(), view.series_named(metric));
        }
        let lookback: HashMap<String, i64> =
            lookback.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut samples: HashMap<SeriesKey, Vec<Sample>> = HashMap::new();
        let mut changes = Vec::new();

        for (i, slot) in self.slots.iter_mut().enumerate() {
            let rule = &slot.rule;
            let all_keys = &keys_by_metric[&rule.metric];
            let selected: Vec<&SeriesKey> =
                all_keys.iter().filter(|k| rule.selects(|l| k.labels().get(l))).collect();
            let selected_set: HashSet<&SeriesKey> = selected.iter().copied().collect();
            let mut todo: Vec<(SeriesKey, bool)> =
                selected.iter().map(|k| ((*k).clone(), false)).collect();
            for (k, inst) in &slot.instances {
                if !selected_set.contains(k) {
                    todo.push((k.clone(), inst.synthetic));
                }
            }
            let absent = matches!(rule.condition, Condition::Absent { .. });
            if absent
                && selected.is_empty()
                && let Some(key) = synthetic_key(rule)
                && !slot.instances.contains_key(&key)
            {
                todo.push((key, true));
            }
            let max_lb = lookback[&rule.metric];
            for (key, synthetic) in todo {
                if !samples.contains_key(&key) {
                    let mut s = view.samples(&key, now_ms.saturating_sub(max_lb));
                    let end = s.partition_point(|x| x.timestamp_ms <= now_ms);
                    s.truncate(end);
                    samples.insert(key.clone(), s);
                }
                let series = &samples[&key];
                let window = |c: &Condition| {
                    let since = now_ms.saturating_sub(c.lookback_ms());
                    &series[series.partition_point(|x| x.timestamp_ms < since)..]
                };
                let retired = (synthetic && !selected.is_empty())
                    || (!absent && !self.stale.is_empty() && self.stale.contains(&key));
                let scores = |c: &Condition| {
                    let since = now_ms.saturating_sub(c.lookback_ms());
                    let key = &key;
                    move || {
                        view.anomaly_scores(key, since).map(|mut v| {
                            v.retain(|&(t, _)| t <= now_ms);
                            v
                        })
                    }
                };
                let fire = if retired {
                    Verdict::Value { breach: false, value: None }
                } else {
                    let c = &rule.condition;
                    c.verdict(window(c), now_ms, scores(c))
                };
                let watched_since = slot.instances.get(&key).map_or(now_ms, |i| i.watched_since_ms);
                let fire = absence_since_watched(&rule.condition, fire, watched_since, now_ms);
                let recover = if let Some(c) = &rule.recovery {
                    Some(
                        reuse(c, &rule.condition, fire)
                            .unwrap_or_else(|| c.verdict(window(c), now_ms, scores(c))),
                    )
                } else {
                    let c = &rule.condition;
                    c.implied_recovery(window(c), now_ms)
                };
                let newest = series.last().map(|s| s.timestamp_ms);
                if !slot.instances.contains_key(&key) {
                    slot.instances
                        .insert(key.clone(), Instance::new(key.clone(), rule, now_ms, synthetic));
                }
                let inst = slot.instances.get_mut(&key).expect("inserted above");
                inst.present = selected_set.contains(&key) || (synthetic && selected.is_empty());
                let step = newest.is_some() && newest != inst.last_step_ts;
                if step {
                    inst.last_step_ts = newest;
                }
                if let Some((from, to)) = inst.step(rule, fire, recover, now_ms, step) {
                    changes.push(Change {
                        slot: i,
                        key: key.clone(),
                        kind: AlertEventKind::StateChanged { from, to },
                    });
                }
                match inst.flap_event {
                    Some(true) => changes.push(Change {
                        slot: i,
                        key: key.clone(),
                        kind: AlertEventKind::FlappingStarted,
                    }),
                    Some(false) => changes.push(Change {
                        slot: i,
                        key: key.clone(),
                        kind: AlertEventKind::FlappingStopped,
                    }),
                    None => {}
                }
            }
        }
        changes
    }

    /// Sets each instance's silence and inhibition for this evaluation.
    fn compute_mutes(&mut self, now_ms: i64) {
        // Default inhibition: the highest firing severity per (family, series),
        // and the rule at that severity.
        let mut top: HashMap<(&str, &SeriesKey), (Severity, &str)> = HashMap::new();
        // Custom inhibition: per rule, equal-label values of firing sources.
        let mut sources: Vec<SourceIndex<'_>> = vec![HashMap::new(); self.inhibit_rules.len()];
        for (i, slot) in self.slots.iter().enumerate() {
            for (key, inst) in &slot.instances {
                if !inst.state.is_firing() {
                    continue;
                }
                let r = &slot.rule;
                let e = top.entry((r.family.as_str(), key)).or_insert((r.severity, &r.name));
                if r.severity > e.0 {
                    *e = (r.severity, &r.name);
                }
                for (r, rule) in self.inhibit_rules.iter().enumerate() {
                    if rule.is_source(&inst.labels) {
                        sources[r].entry(rule.equal_key(&inst.labels)).or_default().push((i, key));
                    }
                }
            }
        }
        let mut mutes: Vec<(usize, SeriesKey, Option<u64>, Option<String>)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            for (key, inst) in &slot.instances {
                let silenced =
                    self.silences.iter().find(|s| s.mutes(now_ms, &inst.labels)).map(|s| s.id.0);
                let by_default = top
                    .get(&(slot.rule.family.as_str(), key))
                    .filter(|&&(s, _)| self.default_inhibition && s > slot.rule.severity)
                    .map(|&(_, name)| name);
                let by_rule = || {
                    self.inhibit_rules.iter().enumerate().find_map(|(r, rule)| {
                        if !rule.is_target(&inst.labels) {
                            return None;
                        }
                        let srcs = sources[r].get(&rule.equal_key(&inst.labels))?;
                        let &(si, _) = srcs.iter().find(|&&(si, sk)| si != i || sk != key)?;
                        Some(self.slots[si].rule.name.as_str())
                    })
                };
                let by = by_default.or_else(by_rule);
                if silenced != inst.silenced_by
                    || by != inst.inhibited_by.as_deref()
                    || inst.released_from.is_some()
                {
                    mutes.push((i, key.clone(), silenced, by.map(str::to_owned)));
                }
            }
        }
        for (i, key, silenced, inhibited) in mutes {
            let inst = self.slots[i].instances.get_mut(&key).expect("listed");
            inst.silenced_by = silenced;
            inst.released_from = match (&inhibited, inst.inhibited_by.take()) {
                (None, Some(was)) => Some(was),
                _ => None,
            };
            inst.inhibited = inhibited.is_some();
            inst.inhibited_by = inhibited;
        }
    }

    fn render(&self, i: usize, inst: &Instance) -> (String, String) {
        let rule = &self.slots[i].rule;
        let series = inst.key.to_string();
        let label = |name: &str| inst.labels.get(name).map(String::as_str);
        let cx = RenderContext {
            value: inst.value,
            threshold: rule.condition.threshold(),
            window_ms: rule.condition.lookback_ms(),
            rule: &rule.name,
            metric: inst.key.name(),
            series: &series,
            severity: rule.severity.as_str(),
            state: inst.state.as_str(),
            label: &label,
        };
        (rule.title.render(&cx), rule.message.render(&cx))
    }

    fn notification(
        &mut self,
        i: usize,
        key: &SeriesKey,
        kind: NotificationKind,
        now_ms: i64,
    ) -> Notification {
        let id = self.take_notification_id();
        self.build_notification(id, i, &self.slots[i].instances[key], kind, now_ms)
    }

    fn take_notification_id(&mut self) -> u64 {
        let id = self.next_notification_id;
        self.next_notification_id += 1;
        id
    }

    /// Queues a resolve for a dropped instance whose firing was announced.
    fn retire(&mut self, i: usize, inst: &Instance, reason: ResolveReason, now_ms: i64) {
        if !inst.notified_firing {
            return;
        }
        let mut inst = inst.clone();
        if inst.effective().is_firing() {
            inst.resolved_at_ms = Some(now_ms);
            inst.resolve_reason = reason;
        }
        inst.state = AlertState::Resolved;
        let id = self.take_notification_id();
        let mut n = self.build_notification(id, i, &inst, NotificationKind::Resolved, now_ms);
        if let Some(r) = n.resolution.as_mut() {
            r.reason = reason;
        }
        let (title, message) = self.render(i, &inst);
        let event = AlertEvent {
            id: self.take_event_id(),
            at_ms: now_ms,
            alert_id: n.alert_id.clone(),
            rule: n.rule.clone(),
            series: inst.key.clone(),
            severity: n.severity,
            kind: AlertEventKind::Notified(NotificationKind::Resolved),
            state: AlertState::Resolved,
            value: inst.value,
            threshold: n.threshold,
            title,
            message,
            labels: inst.labels.clone(),
            notified: Some(NotificationKind::Resolved),
        };
        self.outbox.push(n);
        self.outbox_events.push(event);
    }

    fn take_event_id(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }

    fn event(
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

    fn push_history(&mut self, e: AlertEvent) {
        self.history.push_back(e);
        while self.history.len() > self.history_capacity {
            self.history.pop_front();
        }
    }

    /// Records transitions and notifications in the history.
    fn record(
        &mut self,
        changes: Vec<Change>,
        mut notified: HashMap<(usize, SeriesKey), Vec<NotificationKind>>,
        now_ms: i64,
    ) {
        for c in changes {
            let wanted = match c.kind {
                AlertEventKind::StateChanged { to: AlertState::Firing, from }
                    if !from.is_firing() =>
                {
                    Some(NotificationKind::Firing)
                }
                AlertEventKind::StateChanged { to: AlertState::Resolved, .. } => {
                    Some(NotificationKind::Resolved)
                }
                AlertEventKind::FlappingStarted => Some(NotificationKind::FlappingStarted),
                AlertEventKind::FlappingStopped => Some(NotificationKind::FlappingStopped),
                _ => None,
            };
            let sent = wanted.filter(|w| {
                notified.get_mut(&(c.slot, c.key.clone())).is_some_and(|kinds| {
                    kinds.iter().position(|k| k == w).map(|p| kinds.remove(p)).is_some()
                })
            });
            let e = self.event(c.slot, &c.key, c.kind, now_ms, sent);
            self.push_history(e);
        }
        let mut rest: Vec<_> = notified.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for ((i, key), kinds) in rest {
            for kind in kinds {
                let e = self.event(i, &key, AlertEventKind::Notified(kind), now_ms, Some(kind));
                self.push_history(e);
            }
        }
    }

    /// Forgets idle instances of series the rule no longer selects.
    fn collect_garbage(&mut self) {
        for slot in &mut self.slots {
            slot.instances.retain(|_, inst| {
                let idle = matches!(inst.effective(), AlertState::Inactive | AlertState::Resolved)
                    && !inst.notified_firing
                    && !inst.notified_flapping;
                inst.present || !idle
            });
        }
    }

    fn build_notification(
        &self,
        id: u64,
        i: usize,
        inst: &Instance,
        kind: NotificationKind,
        now_ms: i64,
    ) -> Notification {
        let (title, message) = self.render(i, inst);
        let rule = &self.slots[i].rule;
        let resolution = (kind == NotificationKind::Resolved).then(|| {
            let resolved = inst.resolved_at_ms.unwrap_or(now_ms);
            Resolution {
                resolved_at: ms_to_datetime(resolved),
                duration_ms: resolved.saturating_sub(inst.firing_since_ms.unwrap_or(resolved)),
                peak_value: inst.peak,
                last_value: inst.value,
                reason: if inst.resolve_reason == ResolveReason::Recovered
                    && self.stale.contains(&inst.key)
                {
                    ResolveReason::Stale
                } else {
                    inst.resolve_reason
                },
            }
        });
        let announces = matches!(kind, NotificationKind::Firing | NotificationKind::Repeat);
        // Firing only because hysteresis holds it: the value no longer
        // crosses the threshold but has not reached the recovery level.
        let held_by_recovery = match (&rule.condition, &rule.recovery, inst.value) {
            (
                Condition::Threshold { op, value: limit, .. },
                Some(Condition::Threshold { value: recovery, .. }),
                Some(v),
            ) if announces && !op.compare(v, *limit) => Some(*recovery),
            _ => None,
        };
        Notification {
            id,
            kind,
            alert_id: alert_id(&rule.name, &inst.key),
            rule: rule.name.clone(),
            series: inst.key.clone(),
            severity: rule.severity,
            state: inst.state,
            labels: inst.labels.clone(),
            title,
            message,
            value: inst.value,
            threshold: rule.condition.threshold(),
            at: ms_to_datetime(now_ms),
            started_at: inst.firing_since_ms.map(ms_to_datetime),
            resolution,
            held_by_recovery,
            was_inhibited_by: inst
                .released_from
                .clone()
                .filter(|_| kind == NotificationKind::Firing),
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

/// Orders one evaluation's notifications by cause: every instance's notices
/// that include a resolve (and with it the end of the inhibition it caused)
/// come before the others, such as the firing that resolve un-inhibited.
/// An instance's own notices keep their order; otherwise rule order holds.
fn cause_order(out: Vec<Notification>) -> Vec<Notification> {
    let mut groups: Vec<Vec<Notification>> = Vec::new();
    for n in out {
        match groups.last_mut() {
            Some(g) if g[0].alert_id == n.alert_id => g.push(n),
            _ => groups.push(vec![n]),
        }
    }
    groups.sort_by_key(|g| !g.iter().any(|n| n.kind == NotificationKind::Resolved));
    groups.into_iter().flatten().collect()
}

/// Decides what to send for one instance after it was stepped.
fn decide(inst: &mut Instance, repeat: Option<i64>, now_ms: i64) -> Vec<NotificationKind> {
    let mut kinds = Vec::new();
    let muted = inst.muted();
    // An acknowledgement mutes repeats and flapping notices, never the
    // announcement of a firing (it may be given while pending) or its resolve.
    let firing_muted = inst.silenced_by.is_some() || inst.inhibited;
    match inst.flap_event {
        Some(true) if !muted => {
            inst.notified_flapping = true;
            kinds.push(NotificationKind::FlappingStarted);
        }
        Some(false) if inst.notified_flapping => {
            inst.notified_flapping = false;
            kinds.push(NotificationKind::FlappingStopped);
        }
        _ => {}
    }
    if inst.flapping {
        return kinds;
    }
    let effective = inst.effective();
    if inst.notified_firing && !effective.is_firing() {
        inst.notified_firing = false;
        kinds.push(NotificationKind::Resolved);
    } else if inst.state == AlertState::Firing && !inst.notified_firing && !firing_muted {
        inst.notified_firing = true;
        inst.last_notified_ms = Some(now_ms);
        kinds.push(NotificationKind::Firing);
    } else if inst.state == AlertState::Firing
        && inst.notified_firing
        && !muted
        && let Some(every) = repeat
        && now_ms.saturating_sub(inst.last_notified_ms.unwrap_or(now_ms)) >= every
    {
        inst.last_notified_ms = Some(now_ms);
        kinds.push(NotificationKind::Repeat);
    }
    kinds
}

/// The recovery verdict computed from the firing condition's aggregate, when
/// both read the same aggregate over the same window (the common hysteresis case).
fn reuse(recovery: &Condition, fire: &Condition, fire_verdict: Verdict) -> Option<Verdict> {
    match (recovery, fire, fire_verdict) {
        (
            Condition::Threshold { aggregate: a2, window: w2, op, value: limit },
            Condition::Threshold { aggregate: a1, window: w1, .. },
            Verdict::Value { value: Some(v), .. },
        ) if a1 == a2 && w1 == w2 => {
            Some(Verdict::Value { breach: op.compare(v, *limit), value: Some(v) })
        }
        (
            Condition::Threshold { aggregate: a2, window: w2, .. },
            Condition::Threshold { aggregate: a1, window: w1, .. },
            Verdict::NoData,
        ) if a1 == a2 && w1 == w2 => Some(Verdict::NoData),
        _ => None,
    }
}

/// An absence counts from when the rule started watching the series, so a
/// rule does not fire the moment it starts.
fn absence_since_watched(
    condition: &Condition,
    fire: Verdict,
    since_ms: i64,
    now_ms: i64,
) -> Verdict {
    match (condition, fire) {
        (Condition::Absent { .. }, Verdict::Value { breach: true, value }) => {
            let watched = now_ms.saturating_sub(since_ms) >= condition.lookback_ms();
            Verdict::Value { breach: watched, value }
        }
        _ => fire,
    }
}

fn alert_id(rule: &str, key: &SeriesKey) -> String {
    format!("{rule}/{key}")
}

/// The series an absence rule reports when nothing matches: the metric plus
/// the rule's `=` matchers with non-empty values.
fn synthetic_key(rule: &AlertRule) -> Option<SeriesKey> {
    let pairs: Vec<(&str, &str)> = rule
        .matchers
        .iter()
        .filter(|m| m.op() == crate::alert::MatchOp::Equal && !m.value().is_empty())
        .filter(|m| m.name() != "__name__")
        .map(|m| (m.name(), m.value()))
        .collect();
    SeriesKey::new(&rule.metric, &pairs).ok()
}
