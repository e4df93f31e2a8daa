//! Silences, acknowledgements and inhibition: what mutes an alert instance.

use std::collections::HashMap;

use super::{AlertEventKind, AlertManager, MAX_SILENCES};
use crate::alert::rule::Severity;
use crate::alert::silence::{Silence, SilenceId};
use crate::error::Result;
use crate::key::SeriesKey;

/// Firing sources of one inhibit rule, by their `equal` label values.
type SourceIndex<'a> = HashMap<Vec<String>, Vec<(usize, &'a SeriesKey)>>;

impl AlertManager {
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
    /// [`SILENCE_RETENTION`](crate::alert::SILENCE_RETENTION) after they end).
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

    /// Sets each instance's silence and inhibition for this evaluation.
    pub(super) fn compute_mutes(&mut self, now_ms: i64) {
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
}
