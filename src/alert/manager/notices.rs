//! Building notifications: rendering, ids, and the resolve of a retired instance.

use super::{AlertEvent, AlertEventKind, AlertManager, alert_id};
use crate::alert::notify::{Notification, NotificationKind, Resolution, ResolveReason};
use crate::alert::rule::Condition;
use crate::alert::state::{AlertState, Instance};
use crate::alert::template::RenderContext;
use crate::clock::ms_to_datetime;
use crate::key::SeriesKey;

impl AlertManager {
    pub(super) fn render(&self, i: usize, inst: &Instance) -> (String, String) {
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

    pub(super) fn notification(
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
    pub(super) fn retire(&mut self, i: usize, inst: &Instance, reason: ResolveReason, now_ms: i64) {
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
}
