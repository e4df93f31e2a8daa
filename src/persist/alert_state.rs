//! The alert state file: every alert instance (state, timers, peak, flap
//! history, acknowledgement, notification bookkeeping) and every silence,
//! encoded with postcard.

use serde::{Deserialize, Serialize};

use crate::alert::{
    AlertManager, AlertRule, AlertState, Instance, MatchOp, Matcher, ResolveReason, Silence,
    SilenceId,
};
use crate::key::SeriesKey;

/// The alert state file's magic.
pub(crate) const MAGIC: [u8; 8] = *b"WPALERTS";
/// The alert state file's format version; bumped on any change of the layout below.
pub(crate) const VERSION: u16 = 1;

/// A rule's identity: a CRC-32 of its canonical form, the JSON of its
/// [`RuleSpec`](crate::config::RuleSpec) (every part of the definition:
/// condition, `for`, `keep_firing_for`, recovery, M-of-N, matchers, no-data
/// policy, severity, family, labels, templates, repeat and flap settings;
/// fields in a fixed order, labels sorted), which rebuilds an equal rule.
/// State saved under a rule whose definition changed since is dropped, not
/// applied to a rule it was not computed for.
pub(crate) fn fingerprint(rule: &AlertRule) -> u32 {
    // A rule's spec is strings, numbers and booleans: it always encodes.
    crc32fast::hash(&serde_json::to_vec(rule).unwrap_or_default())
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AlertStateFile {
    pub(crate) saved_at_ms: i64,
    pub(crate) rules: Vec<RuleState>,
    pub(crate) silences: Vec<SilenceState>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RuleState {
    pub(crate) name: String,
    pub(crate) fingerprint: u32,
    pub(crate) instances: Vec<InstanceState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools, reason = "the instance's independent flags")]
pub(crate) struct InstanceState {
    metric: String,
    labels: Vec<(String, String)>,
    state: AlertState,
    paused: AlertState,
    paused_at_ms: Option<i64>,
    state_since_ms: i64,
    pending_since_ms: Option<i64>,
    firing_since_ms: Option<i64>,
    recovering_since_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    resolve_reason: ResolveReason,
    value: Option<f64>,
    peak: Option<f64>,
    last_eval_ms: i64,
    last_step_ts: Option<i64>,
    hits: u64,
    flap_bits: u32,
    flap_len: u8,
    flapping: bool,
    notified_firing: bool,
    notified_flapping: bool,
    last_notified_ms: Option<i64>,
    acknowledged: bool,
    silenced_by: Option<u64>,
    inhibited: bool,
    inhibited_by: Option<String>,
    synthetic: bool,
    watched_since_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SilenceState {
    id: u64,
    /// (label, operator as in `MatchOp::as_str`, value)
    matchers: Vec<(String, String, String)>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    created_by: String,
    comment: String,
}

impl InstanceState {
    fn from_instance(inst: &Instance) -> Self {
        InstanceState {
            metric: inst.key.name().to_owned(),
            labels: inst.key.labels().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            state: inst.state,
            paused: inst.paused,
            paused_at_ms: inst.paused_at_ms,
            state_since_ms: inst.state_since_ms,
            pending_since_ms: inst.pending_since_ms,
            firing_since_ms: inst.firing_since_ms,
            recovering_since_ms: inst.recovering_since_ms,
            resolved_at_ms: inst.resolved_at_ms,
            resolve_reason: inst.resolve_reason,
            value: inst.value,
            peak: inst.peak,
            last_eval_ms: inst.last_eval_ms,
            last_step_ts: inst.last_step_ts,
            hits: inst.hits,
            flap_bits: inst.flap_bits,
            flap_len: inst.flap_len,
            flapping: inst.flapping,
            notified_firing: inst.notified_firing,
            notified_flapping: inst.notified_flapping,
            last_notified_ms: inst.last_notified_ms,
            acknowledged: inst.acknowledged,
            silenced_by: inst.silenced_by,
            inhibited: inst.inhibited,
            inhibited_by: inst.inhibited_by.clone(),
            synthetic: inst.synthetic,
            watched_since_ms: inst.watched_since_ms,
        }
    }

    fn into_instance(self) -> Result<Instance, String> {
        let pairs: Vec<(&str, &str)> =
            self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let key = SeriesKey::new(&self.metric, &pairs).map_err(|e| e.to_string())?;
        Ok(Instance {
            key,
            labels: std::collections::BTreeMap::new(), // recomputed from the rule
            state: self.state,
            paused: self.paused,
            paused_at_ms: self.paused_at_ms,
            state_since_ms: self.state_since_ms,
            pending_since_ms: self.pending_since_ms,
            firing_since_ms: self.firing_since_ms,
            recovering_since_ms: self.recovering_since_ms,
            resolved_at_ms: self.resolved_at_ms,
            resolve_reason: self.resolve_reason,
            value: self.value,
            peak: self.peak,
            last_eval_ms: self.last_eval_ms,
            last_step_ts: self.last_step_ts,
            hits: self.hits,
            flap_bits: self.flap_bits,
            flap_len: self.flap_len,
            flapping: self.flapping,
            flap_event: None,
            notified_firing: self.notified_firing,
            notified_flapping: self.notified_flapping,
            last_notified_ms: self.last_notified_ms,
            acknowledged: self.acknowledged,
            silenced_by: self.silenced_by,
            inhibited: self.inhibited,
            inhibited_by: self.inhibited_by,
            released_from: None,
            synthetic: self.synthetic,
            present: true,
            watched_since_ms: self.watched_since_ms,
        })
    }
}

impl SilenceState {
    fn from_silence(s: &Silence) -> Self {
        SilenceState {
            id: s.id.0,
            matchers: s
                .matchers
                .iter()
                .map(|m| (m.name().to_owned(), m.op().as_str().to_owned(), m.value().to_owned()))
                .collect(),
            starts_at_ms: s.starts_at_ms,
            ends_at_ms: s.ends_at_ms,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
        }
    }

    fn into_silence(self) -> Result<Silence, String> {
        let mut matchers = Vec::with_capacity(self.matchers.len());
        for (name, op, value) in &self.matchers {
            let op = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex]
                .into_iter()
                .find(|o| o.as_str() == op)
                .ok_or_else(|| format!("unknown matcher operator {op:?}"))?;
            matchers.push(Matcher::new(name, op, value).map_err(|e| e.to_string())?);
        }
        let mut s = Silence::new(matchers, self.starts_at_ms, self.ends_at_ms)
            .map_err(|e| e.to_string())?
            .created_by(self.created_by)
            .comment(self.comment);
        s.id = SilenceId(self.id);
        Ok(s)
    }
}

/// The state of `mgr` at `now_ms`, encoded.
pub(crate) fn encode(mgr: &AlertManager, now_ms: i64) -> Vec<u8> {
    let file = AlertStateFile {
        saved_at_ms: now_ms,
        rules: mgr
            .rules_with_instances()
            .map(|(rule, instances)| RuleState {
                name: rule.name.clone(),
                fingerprint: fingerprint(rule),
                instances: instances.values().map(InstanceState::from_instance).collect(),
            })
            .collect(),
        silences: mgr.silences().iter().map(SilenceState::from_silence).collect(),
    };
    postcard::to_stdvec(&file).expect("plain data always encodes")
}

/// Why saved state was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// No rule with the saved name exists now.
    RuleRemoved,
    /// A rule with the saved name exists, with another definition.
    RuleChanged,
    /// The saved series or silence no longer validates.
    Invalid,
}

impl DropReason {
    pub(crate) const ALL: [DropReason; 3] =
        [DropReason::RuleRemoved, DropReason::RuleChanged, DropReason::Invalid];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::RuleRemoved => "rule_removed",
            DropReason::RuleChanged => "rule_changed",
            DropReason::Invalid => "invalid",
        }
    }
}

/// What [`restore`] did.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) instances: usize,
    pub(crate) silences: usize,
    /// (what was dropped, why)
    pub(crate) dropped: Vec<(String, DropReason)>,
}

/// Decodes `payload` and puts its instances and silences into `mgr`,
/// matching rules by name and fingerprint.
pub(crate) fn restore(mgr: &mut AlertManager, payload: &[u8]) -> Result<Restored, String> {
    let file: AlertStateFile =
        postcard::from_bytes(payload).map_err(|e| format!("cannot decode: {e}"))?;
    let mut out = Restored::default();
    for rule in file.rules {
        let current = mgr.rule(&rule.name).map(fingerprint);
        let reason = match current {
            None => Some(DropReason::RuleRemoved),
            Some(f) if f != rule.fingerprint => Some(DropReason::RuleChanged),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            for inst in &rule.instances {
                out.dropped.push((format!("{}/{}", rule.name, inst.metric), reason));
            }
            continue;
        }
        for inst in rule.instances {
            let what = format!("{}/{}", rule.name, inst.metric);
            if inst.into_instance().is_ok_and(|inst| mgr.restore_instance(&rule.name, inst)) {
                out.instances += 1;
            } else {
                out.dropped.push((what, DropReason::Invalid));
            }
        }
    }
    for s in file.silences {
        let id = s.id;
        if s.into_silence().is_ok_and(|s| mgr.restore_silence(s)) {
            out.silences += 1;
        } else {
            out.dropped.push((format!("silence {id}"), DropReason::Invalid));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{MemoryView, NoDataPolicy, NotificationKind};
    use std::time::Duration;

    fn rule(threshold: f64) -> AlertRule {
        AlertRule::builder("hot", "temp")
            .above(threshold)
            .pending_for(Duration::from_mins(1))
            .no_data(NoDataPolicy::KeepLast)
            .build()
            .unwrap()
    }

    #[test]
    fn a_restored_pending_alert_fires_after_the_rest_of_its_for() {
        let key = SeriesKey::new("temp", &[("room", "lab")]).unwrap();
        let mut view = MemoryView::new();
        let mut a = AlertManager::new(vec![rule(30.0)]).unwrap();
        view.push(key.clone(), 0, 35.0);
        assert!(a.evaluate(0, &view).is_empty());
        view.push(key.clone(), 30_000, 35.0);
        assert!(a.evaluate(30_000, &view).is_empty());
        let bytes = encode(&a, 30_000);

        let mut b = AlertManager::new(vec![rule(30.0)]).unwrap();
        let r = restore(&mut b, &bytes).unwrap();
        assert_eq!((r.instances, r.dropped.len()), (1, 0));
        view.push(key.clone(), 59_000, 35.0);
        assert!(b.evaluate(59_000, &view).is_empty());
        view.push(key.clone(), 60_000, 35.0);
        let n = b.evaluate(60_000, &view);
        assert_eq!(n[0].kind, NotificationKind::Firing);
        assert_eq!(n[0].started_at.unwrap().timestamp_millis(), 60_000);
    }

    #[test]
    fn state_of_a_changed_or_removed_rule_is_dropped_with_its_reason() {
        let key = SeriesKey::new("temp", &[]).unwrap();
        let mut view = MemoryView::new();
        let mut a = AlertManager::new(vec![rule(30.0)]).unwrap();
        view.push(key, 0, 35.0);
        a.evaluate(0, &view);
        let bytes = encode(&a, 0);

        let mut changed = AlertManager::new(vec![rule(31.0)]).unwrap();
        let r = restore(&mut changed, &bytes).unwrap();
        assert_eq!(r.dropped, vec![("hot/temp".to_owned(), DropReason::RuleChanged)]);
        assert!(changed.instances().is_empty());

        let mut removed = AlertManager::default();
        let r = restore(&mut removed, &bytes).unwrap();
        assert_eq!(r.dropped, vec![("hot/temp".to_owned(), DropReason::RuleRemoved)]);
    }

    #[test]
    fn silences_keep_their_ids_and_later_ids_do_not_collide() {
        let mut a = AlertManager::default();
        let s = Silence::new(vec![Matcher::regex("room", "lab|hall").unwrap()], 0, 60_000)
            .unwrap()
            .created_by("ops")
            .comment("maintenance");
        let id = a.add_silence(s.clone()).unwrap();
        let mut b = AlertManager::default();
        assert_eq!(restore(&mut b, &encode(&a, 0)).unwrap().silences, 1);
        assert_eq!(b.silences()[0], a.silences()[0]);
        assert_eq!(b.silences()[0].id(), id);
        assert_ne!(b.add_silence(s).unwrap(), id);
    }

    #[test]
    fn the_fingerprint_sees_every_part_of_a_rule_and_only_that() {
        let base = || {
            AlertRule::builder("hot", "temp")
                .label_eq("room", "lab")
                .above(30.0)
                .recover_below(25.0)
                .pending_for(Duration::from_mins(1))
                .label("team", "ops")
                .title("Hot {{labels.room}}")
        };
        let f = |b: crate::alert::RuleBuilder| fingerprint(&b.build().unwrap());
        assert_eq!(f(base()), f(base()), "the same definition, built twice");
        let variants = [
            ("title", f(base().title("Hot in {{labels.room}}"))),
            ("message", f(base().message("{{value}} degrees"))),
            ("label", f(base().label("team", "dev"))),
            ("extra label", f(base().label("tier", "1"))),
            ("for", f(base().pending_for(Duration::from_secs(61)))),
            ("keep_firing_for", f(base().keep_firing_for(Duration::from_secs(1)))),
            ("recovery", f(base().recover_below(24.0))),
            ("m_of_n", f(base().m_of_n(1, 2))),
            ("no_data", f(base().no_data(NoDataPolicy::KeepLast))),
            ("severity", f(base().severity(crate::alert::Severity::Critical))),
            ("matcher", f(base().label_eq("room", "hall"))),
            ("threshold", f(base().above(31.0))),
        ];
        for (what, v) in variants {
            assert_ne!(v, f(base()), "{what}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut m = AlertManager::default();
        assert!(restore(&mut m, &[0xff; 40]).is_err());
    }
}
