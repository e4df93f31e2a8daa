//! The state machine of one alert instance (a rule × series), and flap detection.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::alert::notify::ResolveReason;
use crate::alert::rule::{AlertRule, NoDataPolicy, Verdict};
use crate::key::SeriesKey;

/// The state of one alert instance.
///
/// ```text
///                 condition holds                 `for` elapsed
///   Inactive ───────────────────────► Pending ─────────────────────► Firing ◄──┐
///      ▲  ▲                              │                          │  ▲      │ condition
///      │  └──── condition stops ─────────┘              recovers    │  │      │ back
///      │                                                            ▼  │      │
///      │                                                       Recovering ────┘
///      │                                        keep_firing_for elapsed │
///      │                                       (or at once if zero)     ▼
///      └───────────── stays Resolved until the condition holds ──── Resolved
///
///   any state ──no data (policy NoData)──► NoData ──data returns──► the paused state
/// ```
///
/// # Examples
///
/// ```
/// use watchpost::alert::AlertState;
/// assert!(AlertState::Recovering.is_firing());
/// assert!(!AlertState::Pending.is_firing());
/// assert_eq!(AlertState::NoData.as_str(), "no_data");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, but not yet for the rule's `for` duration.
    Pending,
    /// The alert is firing.
    Firing,
    /// The condition recovered, but the alert keeps firing for `keep_firing_for`.
    Recovering,
    /// The alert fired and has resolved; behaves as `Inactive`.
    Resolved,
    /// The window holds no data (policy [`NoDataPolicy::NoData`]); the instance is
    /// paused in the state it had and resumes from it when data returns.
    NoData,
}

impl AlertState {
    /// The snake-case name used on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::AlertState::Firing.as_str(), "firing");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Recovering => "recovering",
            AlertState::Resolved => "resolved",
            AlertState::NoData => "no_data",
        }
    }

    /// `Firing` or `Recovering`: the alert counts as firing.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertState::Firing.is_firing());
    /// ```
    pub fn is_firing(self) -> bool {
        matches!(self, AlertState::Firing | AlertState::Recovering)
    }

    /// `Pending`, `Firing` or `Recovering`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertState::Pending.is_active());
    /// assert!(!watchpost::alert::AlertState::Resolved.is_active());
    /// ```
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Pending | AlertState::Firing | AlertState::Recovering)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of verdicts kept for flap detection (20 changes between them).
pub(crate) const FLAP_HISTORY: u8 = 21;

/// Weighted percent state change over `len` verdicts in `bits` (bit 0 newest).
///
/// The 20 possible changes are weighted linearly from 1.2 (newest) down to
/// 0.8 (oldest); the weights average 1, so the sum divided by 20 is a percentage.
pub(crate) fn flap_percent(bits: u32, len: u8) -> f64 {
    let mut sum = 0.0;
    for i in 0..u32::from(len.saturating_sub(1)) {
        if ((bits >> i) ^ (bits >> (i + 1))) & 1 == 1 {
            sum += 1.2 - 0.4 * f64::from(i) / 19.0;
        }
    }
    sum / 20.0 * 100.0
}

/// One alert instance: everything the manager remembers about a rule × series.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools, reason = "independent flags")]
pub(crate) struct Instance {
    pub(crate) key: SeriesKey,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) state: AlertState,
    /// The state an instance in `NoData` resumes from.
    pub(crate) paused: AlertState,
    /// When the window last emptied (policy `NoData` or `KeepLast`), until
    /// data returns: timers do not count the time in between.
    pub(crate) paused_at_ms: Option<i64>,
    pub(crate) state_since_ms: i64,
    pub(crate) pending_since_ms: Option<i64>,
    pub(crate) firing_since_ms: Option<i64>,
    pub(crate) recovering_since_ms: Option<i64>,
    pub(crate) resolved_at_ms: Option<i64>,
    /// Why it last resolved.
    pub(crate) resolve_reason: ResolveReason,
    pub(crate) value: Option<f64>,
    pub(crate) peak: Option<f64>,
    pub(crate) last_eval_ms: i64,
    /// Timestamp of the newest sample counted as an evaluation step.
    pub(crate) last_step_ts: Option<i64>,
    /// M-of-N verdicts, bit 0 newest.
    pub(crate) hits: u64,
    /// Flap history verdicts, bit 0 newest.
    pub(crate) flap_bits: u32,
    pub(crate) flap_len: u8,
    pub(crate) flapping: bool,
    /// `Some(true)` if flapping started at the last evaluation, `Some(false)` if it stopped.
    pub(crate) flap_event: Option<bool>,
    pub(crate) notified_firing: bool,
    pub(crate) notified_flapping: bool,
    pub(crate) last_notified_ms: Option<i64>,
    pub(crate) acknowledged: bool,
    pub(crate) silenced_by: Option<u64>,
    pub(crate) inhibited: bool,
    /// The rule of the alert that inhibits it, while inhibited.
    pub(crate) inhibited_by: Option<String>,
    /// The rule whose inhibition ended at this evaluation.
    pub(crate) released_from: Option<String>,
    /// Created by an absence rule for a series that does not exist.
    pub(crate) synthetic: bool,
    /// Whether the rule selected this series at the last evaluation.
    pub(crate) present: bool,
    /// When the rule started watching this series: an absence counts from
    /// here at the earliest, so a rule does not fire the moment it starts.
    pub(crate) watched_since_ms: i64,
}

impl Instance {
    pub(crate) fn new(key: SeriesKey, rule: &AlertRule, now_ms: i64, synthetic: bool) -> Self {
        let labels = alert_labels(&key, rule);
        Instance {
            key,
            labels,
            state: AlertState::Inactive,
            paused: AlertState::Inactive,
            paused_at_ms: None,
            state_since_ms: now_ms,
            pending_since_ms: None,
            firing_since_ms: None,
            recovering_since_ms: None,
            resolved_at_ms: None,
            resolve_reason: ResolveReason::Recovered,
            value: None,
            peak: None,
            last_eval_ms: now_ms,
            last_step_ts: None,
            hits: 0,
            flap_bits: 0,
            flap_len: 0,
            flapping: false,
            flap_event: None,
            notified_firing: false,
            notified_flapping: false,
            last_notified_ms: None,
            acknowledged: false,
            silenced_by: None,
            inhibited: false,
            inhibited_by: None,
            released_from: None,
            synthetic,
            present: true,
            watched_since_ms: now_ms,
        }
    }

    /// The state that counts for notifications: the paused state while in `NoData`.
    pub(crate) fn effective(&self) -> AlertState {
        if self.state == AlertState::NoData { self.paused } else { self.state }
    }

    pub(crate) fn flap_percent(&self) -> f64 {
        flap_percent(self.flap_bits, self.flap_len)
    }

    pub(crate) fn muted(&self) -> bool {
        self.acknowledged || self.silenced_by.is_some() || self.inhibited
    }

    /// Runs one evaluation. `fire` is the firing condition's verdict, `recover`
    /// the recovery condition's (if the rule has one), `step` whether this
    /// evaluation saw data not seen before (it then counts for M-of-N and flap
    /// detection). Returns the transition, if any.
    pub(crate) fn step(
        &mut self,
        rule: &AlertRule,
        fire: Verdict,
        recover: Option<Verdict>,
        now_ms: i64,
        step: bool,
    ) -> Option<(AlertState, AlertState)> {
        self.last_eval_ms = now_ms;
        self.flap_event = None;
        let from = self.state;
        let (breach, value, from_data) = match fire {
            Verdict::Value { breach, value } => (breach, value, true),
            Verdict::NoData => match rule.no_data {
                NoDataPolicy::NoData => {
                    self.value = None;
                    if self.state == AlertState::NoData {
                        return None;
                    }
                    self.paused = self.state;
                    self.paused_at_ms = Some(now_ms);
                    return Some(self.enter(AlertState::NoData, from, now_ms));
                }
                NoDataPolicy::KeepLast => {
                    self.paused_at_ms.get_or_insert(now_ms);
                    return None;
                }
                NoDataPolicy::Ok => (false, None, false),
                NoDataPolicy::Alerting => (true, None, false),
            },
        };
        self.value = value;
        let base = self.effective();
        if let Some(paused_at) = self.paused_at_ms.take() {
            self.resume(base, paused_at, now_ms);
        }

        let active = match rule.m_of_n {
            Some((m, n)) if from_data => {
                if step {
                    self.hits = (self.hits << 1) | u64::from(breach);
                }
                let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
                (self.hits & mask).count_ones() >= m
            }
            _ => breach,
        };
        let recovery_holds = match recover {
            Some(Verdict::Value { breach, .. }) => breach,
            Some(Verdict::NoData) => !from_data && !breach,
            None => true,
        };
        let clear = recovery_holds && !active;

        let to = match base {
            AlertState::Inactive | AlertState::Resolved => {
                if active {
                    self.pending_since_ms = Some(now_ms);
                    if rule.pending_ms == 0 {
                        self.start_firing(now_ms)
                    } else {
                        AlertState::Pending
                    }
                } else {
                    base
                }
            }
            AlertState::Pending => {
                if !active {
                    self.pending_since_ms = None;
                    AlertState::Inactive
                } else if now_ms.saturating_sub(self.pending_since_ms.unwrap_or(now_ms))
                    >= rule.pending_ms
                {
                    self.start_firing(now_ms)
                } else {
                    AlertState::Pending
                }
            }
            AlertState::Firing => {
                if !clear {
                    AlertState::Firing
                } else if rule.keep_firing_ms > 0 {
                    self.recovering_since_ms = Some(now_ms);
                    AlertState::Recovering
                } else {
                    self.resolve(now_ms)
                }
            }
            AlertState::Recovering => {
                if !clear {
                    self.recovering_since_ms = None;
                    AlertState::Firing
                } else if now_ms.saturating_sub(self.recovering_since_ms.unwrap_or(now_ms))
                    >= rule.keep_firing_ms
                {
                    self.resolve(now_ms)
                } else {
                    AlertState::Recovering
                }
            }
            AlertState::NoData => unreachable!("the effective state is never NoData"),
        };
        if to.is_firing()
            && let Some(v) = value
        {
            let higher = rule.condition.op().is_none_or(super::rule::CompareOp::higher_is_worse);
            self.peak = Some(match self.peak {
                None => v,
                Some(p) if higher => p.max(v),
                Some(p) => p.min(v),
            });
        }
        if matches!(to, AlertState::Inactive | AlertState::Resolved) {
            self.acknowledged = false;
        }
        if step {
            // What a handler would see: firing or not, after `for` and
            // `keep_firing_for`. An alert that never fires never flaps.
            self.record_flap(rule, to.is_firing());
        }
        (to != from).then(|| self.enter(to, from, now_ms))
    }

    /// Data is back after a pause that began at `paused_at`. A `for` counts
    /// only time continuously satisfied by data, so a pending alert starts
    /// its `for` again; `keep_firing_for` resumes where it stopped.
    fn resume(&mut self, base: AlertState, paused_at: i64, now_ms: i64) {
        let paused_for = now_ms.saturating_sub(paused_at).max(0);
        match base {
            AlertState::Pending => self.pending_since_ms = Some(now_ms),
            AlertState::Recovering => {
                self.recovering_since_ms =
                    self.recovering_since_ms.map(|t| t.saturating_add(paused_for));
            }
            _ => {}
        }
    }

    fn enter(&mut self, to: AlertState, from: AlertState, now_ms: i64) -> (AlertState, AlertState) {
        self.state = to;
        self.state_since_ms = now_ms;
        (from, to)
    }

    fn start_firing(&mut self, now_ms: i64) -> AlertState {
        self.firing_since_ms = Some(now_ms);
        self.recovering_since_ms = None;
        self.resolved_at_ms = None;
        self.peak = None;
        AlertState::Firing
    }

    fn resolve(&mut self, now_ms: i64) -> AlertState {
        self.resolved_at_ms = Some(now_ms);
        self.resolve_reason = ResolveReason::Recovered;
        self.recovering_since_ms = None;
        self.pending_since_ms = None;
        AlertState::Resolved
    }

    fn record_flap(&mut self, rule: &AlertRule, problem: bool) {
        let Some(flap) = rule.flap else { return };
        let mask = (1u32 << FLAP_HISTORY) - 1;
        self.flap_bits = ((self.flap_bits << 1) | u32::from(problem)) & mask;
        self.flap_len = (self.flap_len + 1).min(FLAP_HISTORY);
        let pct = self.flap_percent();
        if !self.flapping && pct >= flap.high() {
            self.flapping = true;
            self.flap_event = Some(true);
        } else if self.flapping && pct < flap.low() {
            self.flapping = false;
            self.flap_event = Some(false);
        }
    }
}

/// The labels Prometheus would give the alert: the series labels (never
/// `__name__`: a comparison drops the metric name), then the rule labels
/// (overriding), then `alertname` and `severity`.
pub(crate) fn alert_labels(key: &SeriesKey, rule: &AlertRule) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> =
        key.labels().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    for (k, v) in &rule.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert("alertname".to_owned(), rule.name.clone());
    labels.insert("severity".to_owned(), rule.severity.as_str().to_owned());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flap_percent_weights() {
        assert!(flap_percent(0, 21).abs() < 1e-12);
        // Alternating over all 21 verdicts: every change counts, weights sum to 20.
        let alternating = 0b1_0101_0101_0101_0101_0101;
        assert!((flap_percent(alternating, 21) - 100.0).abs() < 1e-9);
        // One change, newest: weight 1.2 → 6 %; oldest: weight 0.8 → 4 %.
        assert!((flap_percent(0b1, 21) - 6.0).abs() < 1e-9);
        assert!((flap_percent(1 << 20, 21) - 4.0).abs() < 1e-9);
        // Bits beyond `len` are ignored.
        assert!(flap_percent(0b10, 1).abs() < 1e-12);
    }
}
