//! One evaluation: stepping every instance, deciding what to notify and
//! recording what changed.

use std::collections::{HashMap, HashSet};

use super::{AlertEventKind, AlertManager, SILENCE_RETENTION};
use crate::alert::notify::{Notification, NotificationKind};
use crate::alert::rule::{AlertRule, Condition, Verdict, duration_ms};
use crate::alert::state::{AlertState, Instance};
use crate::alert::view::SeriesView;
use crate::history::Sample;
use crate::key::SeriesKey;

/// A transition or flap change found while stepping instances.
struct Change {
    slot: usize,
    key: SeriesKey,
    kind: AlertEventKind,
}

impl AlertManager {
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
