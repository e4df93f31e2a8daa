//! One handler's mailbox: the notices waiting for it, in the order they were
//! decided, coalesced per alert instance so that what waits is bounded by
//! the number of alert instances, not by the number of events.
//!
//! Rules, per alert instance (`alert_id`), applied when a notice arrives:
//!
//! 1. A [`Repeat`](NotificationKind::Repeat) replaces a `Repeat` still
//!    waiting right before it: the latest wins.
//! 2. When more than [`INSTANCE_LIMIT`] notices wait, the oldest firing
//!    episode the handler has seen nothing of (a `Firing`, the `Repeat`s
//!    after it and its `Resolved`, all still waiting) is removed as a whole;
//!    failing that, the oldest waiting `FlappingStarted`/`FlappingStopped`
//!    pair; failing that, the oldest waiting `Repeat`.
//!
//! So a `Resolved` whose `Firing` was delivered is never removed, and the
//! handler always sees `Firing` and `Resolved` alternate, in the order they
//! were decided. Everything removed is counted as coalesced.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::alert::{Notification, NotificationKind};

/// Most notices one alert instance may have waiting for one handler: four
/// firing/resolve episodes.
pub(crate) const INSTANCE_LIMIT: usize = 8;

/// The notices waiting for one handler.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    next_seq: u64,
    /// Every waiting notice by arrival number: the delivery order.
    queue: BTreeMap<u64, Arc<Notification>>,
    /// The arrival numbers waiting per alert instance, oldest first; an
    /// instance with nothing waiting has no entry.
    by_instance: HashMap<String, VecDeque<u64>>,
}

impl Mailbox {
    /// How many notices wait.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Adds `n` behind everything waiting; returns how many waiting notices
    /// (possibly `n` itself) were coalesced away.
    pub(crate) fn push(&mut self, n: Arc<Notification>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let seqs = match self.by_instance.get_mut(n.alert_id.as_str()) {
            Some(seqs) => seqs,
            None => self.by_instance.entry(n.alert_id.clone()).or_default(),
        };
        let mut coalesced = 0;
        if n.kind == NotificationKind::Repeat
            && let Some(last) = seqs.back()
            && self.queue.get(last).is_some_and(|w| w.kind == NotificationKind::Repeat)
        {
            self.queue.remove(last);
            seqs.pop_back();
            coalesced += 1;
        }
        seqs.push_back(seq);
        self.queue.insert(seq, n);
        while seqs.len() > INSTANCE_LIMIT {
            let kinds: Vec<NotificationKind> =
                seqs.iter().filter_map(|s| self.queue.get(s).map(|w| w.kind)).collect();
            let mut victims = victims(&kinds);
            if victims.is_empty() {
                // Not reachable with the alternation the manager keeps; the
                // bound holds anyway.
                victims.push(0);
            }
            for &i in victims.iter().rev() {
                if let Some(s) = seqs.remove(i) {
                    self.queue.remove(&s);
                    coalesced += 1;
                }
            }
        }
        coalesced
    }

    /// Takes the oldest waiting notice.
    pub(crate) fn pop(&mut self) -> Option<Arc<Notification>> {
        let (seq, n) = self.queue.pop_first()?;
        if let Some(seqs) = self.by_instance.get_mut(n.alert_id.as_str()) {
            debug_assert_eq!(seqs.front(), Some(&seq));
            seqs.pop_front();
            if seqs.is_empty() {
                self.by_instance.remove(n.alert_id.as_str());
            }
        }
        Some(n)
    }

    /// Empties the mailbox; returns how many notices it held.
    pub(crate) fn clear(&mut self) -> u64 {
        let n = self.queue.len() as u64;
        self.queue = BTreeMap::new();
        self.by_instance = HashMap::new();
        n
    }
}

/// Positions (ascending) of the waiting notices of one instance to remove
/// when it has too many; see the module documentation.
fn victims(kinds: &[NotificationKind]) -> Vec<usize> {
    use NotificationKind::{FlappingStarted, FlappingStopped, Repeat, Resolved};
    let pair = |open: NotificationKind, close: NotificationKind| {
        let a = kinds.iter().position(|k| *k == open)?;
        let b = kinds[a..].iter().position(|k| *k == close)? + a;
        Some((a, b))
    };
    if let Some((f, r)) = pair(NotificationKind::Firing, Resolved) {
        return (f..=r)
            .filter(|&i| kinds[i] != FlappingStarted && kinds[i] != FlappingStopped)
            .collect();
    }
    if let Some((s, e)) = pair(FlappingStarted, FlappingStopped) {
        return vec![s, e];
    }
    kinds.iter().position(|k| *k == Repeat).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::alert::NotificationKind::{
        Firing, FlappingStarted, FlappingStopped, Repeat, Resolved,
    };
    use crate::alert::{AlertManager, AlertRule, MemoryView};
    use crate::key::SeriesKey;

    /// One notification of each kind for instance `id`, from a real manager.
    fn template() -> Notification {
        let mut mgr =
            AlertManager::new(vec![AlertRule::builder("r", "m").above(1.0).build().unwrap()])
                .unwrap();
        let mut view = MemoryView::new();
        view.push(SeriesKey::new("m", &[]).unwrap(), 1_000, 5.0);
        mgr.evaluate(1_000, &view).remove(0)
    }

    fn notice(id: &str, kind: NotificationKind, seq: u64) -> Arc<Notification> {
        let mut n = template();
        n.alert_id = id.to_owned();
        n.kind = kind;
        n.id = seq;
        Arc::new(n)
    }

    fn drain(m: &mut Mailbox) -> Vec<(String, NotificationKind, u64)> {
        std::iter::from_fn(|| m.pop()).map(|n| (n.alert_id.clone(), n.kind, n.id)).collect()
    }

    #[test]
    fn keeps_arrival_order_across_instances_when_nothing_coalesces() {
        let mut m = Mailbox::default();
        let sent = [("a", Firing), ("b", Firing), ("a", Resolved), ("c", Firing), ("b", Resolved)];
        for (i, (id, kind)) in sent.iter().enumerate() {
            assert_eq!(m.push(notice(id, *kind, i as u64)), 0);
        }
        assert_eq!(m.len(), 5);
        let got: Vec<u64> = drain(&mut m).into_iter().map(|(_, _, id)| id).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(m.len(), 0);
        assert!(m.by_instance.is_empty());
    }

    #[test]
    fn repeats_keep_only_the_latest() {
        let mut m = Mailbox::default();
        m.push(notice("a", Firing, 0));
        assert_eq!(m.push(notice("a", Repeat, 1)), 0);
        assert_eq!(m.push(notice("a", Repeat, 2)), 1);
        assert_eq!(m.push(notice("b", Repeat, 3)), 0); // another instance
        assert_eq!(m.push(notice("a", Repeat, 4)), 1);
        let got: Vec<u64> = drain(&mut m).into_iter().map(|(_, _, id)| id).collect();
        assert_eq!(got, [0, 3, 4]);
    }

    #[test]
    fn an_unseen_episode_goes_as_a_whole_and_a_seen_firings_resolve_stays() {
        let mut m = Mailbox::default();
        // R closes a firing the handler already saw; then five episodes wait
        let mut kinds = vec![Resolved];
        for _ in 0..5 {
            kinds.extend([Firing, Repeat, Resolved]);
        }
        let mut coalesced = 0;
        for (i, k) in kinds.iter().enumerate() {
            coalesced += m.push(notice("a", *k, i as u64));
        }
        let got = drain(&mut m);
        assert!(got.len() <= INSTANCE_LIMIT, "{got:?}");
        assert_eq!(got.len() as u64 + coalesced, kinds.len() as u64);
        assert_eq!(got[0].2, 0, "the resolve of the delivered firing is kept");
        // the latest episodes survive, whole and in order
        let tail: Vec<u64> = got[1..].iter().map(|g| g.2).collect();
        let n = tail.len() as u64;
        assert_eq!(tail, ((kinds.len() as u64 - n)..kinds.len() as u64).collect::<Vec<_>>());
        assert_eq!(got[1].1, Firing);
    }

    #[test]
    fn clear_counts_what_was_waiting() {
        let mut m = Mailbox::default();
        m.push(notice("a", Firing, 0));
        m.push(notice("b", Firing, 1));
        assert_eq!(m.clear(), 2);
        assert!(m.pop().is_none());
    }

    /// The kinds the manager may send for one instance: firing and resolve
    /// alternate, repeats only while firing, flapping start and stop alternate.
    fn manager_sequence() -> impl Strategy<Value = Vec<NotificationKind>> {
        prop::collection::vec(0u8..4, 0..120).prop_map(|steps| {
            let (mut firing, mut flapping, mut out) = (false, false, Vec::new());
            for s in steps {
                match s {
                    0 => {
                        out.push(if firing { Resolved } else { Firing });
                        firing = !firing;
                    }
                    1 if firing => out.push(Repeat),
                    2 => {
                        out.push(if flapping { FlappingStopped } else { FlappingStarted });
                        flapping = !flapping;
                    }
                    _ => {}
                }
            }
            out
        })
    }

    proptest! {
        /// Whatever the handler's pace, every instance stays within the limit,
        /// nothing vanishes uncounted, and what a handler sees alternates.
        #[test]
        fn bounded_counted_and_alternating(
            seqs in prop::collection::vec(manager_sequence(), 1..4),
            pops in prop::collection::vec(0usize..3, 0..200),
        ) {
            let mut m = Mailbox::default();
            let mut seen: HashMap<String, (bool, bool)> = HashMap::new();
            let (mut pushed, mut coalesced, mut popped) = (0u64, 0u64, 0u64);
            let mut check = |n: &Notification| -> std::result::Result<(), TestCaseError> {
                let (firing, flapping) = seen.entry(n.alert_id.clone()).or_default();
                match n.kind {
                    Firing => { prop_assert!(!*firing); *firing = true; }
                    Resolved => { prop_assert!(*firing); *firing = false; }
                    Repeat => prop_assert!(*firing),
                    FlappingStarted => { prop_assert!(!*flapping); *flapping = true; }
                    FlappingStopped => { prop_assert!(*flapping); *flapping = false; }
                }
                Ok(())
            };
            let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
            let mut pops = pops.into_iter().cycle();
            for i in 0..longest {
                for (inst, seq) in seqs.iter().enumerate() {
                    if let Some(k) = seq.get(i) {
                        coalesced += m.push(notice(&inst.to_string(), *k, pushed));
                        pushed += 1;
                    }
                }
                for v in m.by_instance.values() {
                    prop_assert!(v.len() <= INSTANCE_LIMIT);
                }
                for _ in 0..pops.next().unwrap_or(0) {
                    if let Some(n) = m.pop() {
                        popped += 1;
                        check(&n)?;
                    }
                }
            }
            while let Some(n) = m.pop() {
                popped += 1;
                check(&n)?;
            }
            prop_assert_eq!(popped + coalesced, pushed);
            // the last decided firing state of every instance is what the handler ends with
            for (inst, seq) in seqs.iter().enumerate() {
                let firing = seq.iter().filter(|k| matches!(k, Firing | Resolved)).count() % 2 == 1;
                let got = seen.get(&inst.to_string()).is_some_and(|s| s.0);
                prop_assert_eq!(got, firing);
            }
        }
    }
}
