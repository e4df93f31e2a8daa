//! The alert manager: rules, instances, muting, notifications and history.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use crate::alert::defaults::default_rules;
use crate::alert::notify::{Notification, ResolveReason};
use crate::alert::rule::{AlertRule, Severity, duration_ms, invalid};
use crate::alert::silence::{InhibitRule, Silence};
use crate::alert::state::Instance;
use crate::error::Result;
use crate::key::SeriesKey;

mod evaluate;
mod events;
mod notices;
mod silences;

pub use self::events::{ActiveAlert, AlertEvent, AlertEventKind};

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

pub(super) struct RuleSlot {
    pub(super) rule: AlertRule,
    pub(super) instances: BTreeMap<SeriesKey, Instance>,
}

/// Evaluates alert rules over a [`SeriesView`](crate::alert::SeriesView) and
/// decides what to notify.
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

    fn slot_index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.rule.name == name)
    }
}

fn alert_id(rule: &str, key: &SeriesKey) -> String {
    format!("{rule}/{key}")
}
