//! What the engine's state directory reads from and puts back into an
//! [`AlertManager`]: alert instances, silences, and a marker that changes
//! whenever something worth saving changed.

use std::collections::BTreeMap;

use crate::alert::state::{Instance, alert_labels};
use crate::alert::{AlertManager, AlertRule, MAX_SILENCES, Silence, SilenceId};
use crate::error::Result;
use crate::key::SeriesKey;

impl AlertManager {
    /// Each rule with its alert instances, in rule order.
    pub(crate) fn rules_with_instances(
        &self,
    ) -> impl Iterator<Item = (&AlertRule, &BTreeMap<SeriesKey, Instance>)> {
        self.slots.iter().map(|s| (&s.rule, &s.instances))
    }

    /// Puts back an instance of the rule named `rule` (its alert labels are
    /// recomputed from the rule). Returns false if there is no such rule.
    pub(crate) fn restore_instance(&mut self, rule: &str, mut inst: Instance) -> bool {
        let Some(slot) = self.slots.iter_mut().find(|s| s.rule.name == rule) else {
            return false;
        };
        inst.labels = alert_labels(&inst.key, &slot.rule);
        slot.instances.insert(inst.key.clone(), inst);
        true
    }

    /// Puts back a saved silence with its id, so an id handed out before a
    /// restart still names it. Returns false if a silence with that id
    /// exists or [`MAX_SILENCES`] are held.
    pub(crate) fn restore_silence(&mut self, silence: Silence) -> bool {
        if self.silences.len() >= MAX_SILENCES || self.silences.iter().any(|s| s.id == silence.id) {
            return false;
        }
        self.next_silence_id = self.next_silence_id.max(silence.id.0.saturating_add(1));
        self.silences.push(silence);
        true
    }

    /// Adds a silence of the configuration document, unless a silence with
    /// the same content (matchers, start, end, creator, comment) is held:
    /// a copy restored from the state directory and the file's copy are one
    /// silence, which keeps the id it had before the restart. Returns the
    /// silence's id.
    pub(crate) fn add_config_silence(&mut self, silence: Silence) -> Result<SilenceId> {
        let same = |s: &&Silence| {
            s.matchers == silence.matchers
                && s.starts_at_ms == silence.starts_at_ms
                && s.ends_at_ms == silence.ends_at_ms
                && s.created_by == silence.created_by
                && s.comment == silence.comment
        };
        match self.silences.iter().find(same) {
            Some(held) => Ok(held.id),
            None => self.add_silence(silence),
        }
    }

    /// Changes whenever a transition, notification, acknowledgement or
    /// silence (added, expired, dropped) changed what is worth saving.
    pub(crate) fn change_marker(&self) -> [u64; 4] {
        let silences = self.silences.iter().fold(self.silences.len() as u64, |acc, s| {
            acc.wrapping_mul(31).wrapping_add(s.id.0 ^ s.ends_at_ms.cast_unsigned())
        });
        [self.next_event_id, self.next_notification_id, self.next_silence_id, silences]
    }
}
