//! Grouping: which alerts share a message, and when each message is due.
//! Pure: time is an argument, nothing here blocks or spawns.

use std::collections::{BTreeMap, HashMap};

use crate::alert::{Notification, NotificationKind};
use crate::clock::ms_to_datetime;
use crate::notify::AlertGroup;
use crate::notify::route::{RouteTree, label_text};

/// Routes notifications through a [`RouteTree`] into groups and says which
/// group messages are due when. Pure: the caller passes the time in, so
/// every decision is reproducible; the [`Router`](crate::notify::Router)
/// drives one with its clock.
///
/// Timing of one group (one route × one value of its `group_by` labels):
///
/// - the first message leaves `group_wait` after the group's first alert
///   arrived, listing every alert that joined meanwhile;
/// - after a message, a change (an alert joins, fires again or resolves)
///   leaves `group_interval` after that message (at once when it is zero);
/// - a group that still fires and has not changed is sent again
///   `repeat_interval` after its last message;
/// - a resolved alert is listed once, in the next message of its group, and
///   then leaves the group; a group left without alerts disappears.
///
/// An alert that resolves before its group announced it firing is dropped
/// silently (no receiver heard of it), as Alertmanager does. If an alert
/// fires again while its resolve still waits to be sent, the new firing
/// waits for the message after that one, so each receiver sees every alert's
/// firings and resolves in order. The manager's own `Repeat` notices only
/// refresh the alert's latest values: re-sending is the group's
/// `repeat_interval`. Flapping notices are not routed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::{SeriesKey, alert::*, notify::{Grouper, Route, RouteTree}};
/// let tree = RouteTree::new(
///     Route::builder().receiver("ops").group_by(["alertname"]).group_wait(Duration::from_secs(30)),
///     ["ops"],
/// )?;
/// let mut grouper = Grouper::new(tree);
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("temp", &[("room", "a")])?, 0, 35.0);
/// view.push(SeriesKey::new("temp", &[("room", "b")])?, 0, 36.0);
/// for n in mgr.evaluate(0, &view) {
///     grouper.on_notification(&n, 0);
/// }
/// assert_eq!(grouper.next_due(), Some(30_000));
/// assert!(grouper.due(29_999).is_empty());
/// let sent = grouper.due(30_000);
/// assert_eq!(sent.len(), 1);                 // one message ...
/// assert_eq!(sent[0].alerts.len(), 2);       // ... with both rooms
/// assert_eq!(sent[0].group_labels["alertname"], "hot");
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Grouper {
    tree: RouteTree,
    groups: HashMap<(usize, String), Group>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Group {
    route: usize,
    labels: BTreeMap<String, String>,
    label_text: String,
    entries: Vec<Entry>,
    created_ms: i64,
    last_sent_ms: Option<i64>,
    due_ms: i64,
    /// Creation order, so messages due at the same time leave in a stable order.
    seq: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    /// What the next message lists for this alert.
    shown: Notification,
    /// `shown` differs from what the receiver last heard.
    changed: bool,
    /// The receiver heard of this firing episode.
    told_firing: bool,
    /// A new firing that waits until the pending resolve has been sent.
    next: Option<Notification>,
}

fn is_firing(kind: NotificationKind) -> bool {
    matches!(kind, NotificationKind::Firing | NotificationKind::Repeat)
}

impl Grouper {
    /// A grouper with no groups.
    ///
    /// # Examples
    ///
    /// See [`Grouper`].
    pub fn new(tree: RouteTree) -> Self {
        Grouper { tree, groups: HashMap::new(), next_seq: 0 }
    }

    /// The route tree.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Grouper, Route, RouteTree};
    /// let g = Grouper::new(RouteTree::new(Route::builder().receiver("ops"), ["ops"])?);
    /// assert_eq!(g.tree().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn tree(&self) -> &RouteTree {
        &self.tree
    }

    /// Routes one notification received at `now_ms` into its groups.
    ///
    /// # Examples
    ///
    /// See [`Grouper`].
    pub fn on_notification(&mut self, n: &Notification, now_ms: i64) {
        let firing = is_firing(n.kind);
        if !firing && n.kind != NotificationKind::Resolved {
            return;
        }
        for route in self.tree.routes_for(&n.labels) {
            let node = self.tree.node(route);
            let labels = node.group_by.group_labels(&n.labels);
            let key = (route, label_text(&labels));
            let group = match self.groups.get_mut(&key) {
                Some(g) => g,
                None if firing => {
                    self.next_seq += 1;
                    let label_text = key.1.clone();
                    self.groups.entry(key.clone()).or_insert(Group {
                        route,
                        labels,
                        label_text,
                        entries: Vec::new(),
                        created_ms: now_ms,
                        last_sent_ms: None,
                        due_ms: now_ms,
                        seq: self.next_seq,
                    })
                }
                None => continue,
            };
            group.apply(n);
            if group.entries.is_empty() {
                self.groups.remove(&key);
            } else {
                let node = self.tree.node(route);
                group.reschedule(
                    node.group_wait_ms,
                    node.group_interval_ms,
                    node.repeat_interval_ms,
                );
            }
        }
    }

    /// Takes the messages due at `now_ms` (in the order they fell due) and
    /// moves their groups on: resolved alerts leave, the next message is
    /// scheduled.
    ///
    /// # Examples
    ///
    /// See [`Grouper`].
    pub fn due(&mut self, now_ms: i64) -> Vec<AlertGroup> {
        self.take(now_ms, |g| g.due_ms <= now_ms)
    }

    /// Takes a message for every group with news its receiver has not heard
    /// (new, changed or resolved alerts), whatever its timers say: what a
    /// shutdown sends so that nothing accepted is left behind.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use watchpost::{SeriesKey, alert::*, notify::{Grouper, Route, RouteTree}};
    /// # let tree = RouteTree::new(Route::builder().receiver("ops").group_wait(Duration::from_secs(30)), ["ops"])?;
    /// let mut grouper = Grouper::new(tree);
    /// # let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// # let mut view = MemoryView::new();
    /// # view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
    /// grouper.on_notification(&mgr.evaluate(0, &view)[0], 0);
    /// assert!(grouper.due(1_000).is_empty());
    /// assert_eq!(grouper.drain(1_000).len(), 1);
    /// assert!(grouper.drain(1_000).is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn drain(&mut self, now_ms: i64) -> Vec<AlertGroup> {
        self.take(now_ms, |g| g.entries.iter().any(|e| e.changed))
    }

    fn take(&mut self, now_ms: i64, pick: impl Fn(&Group) -> bool) -> Vec<AlertGroup> {
        let mut keys: Vec<(i64, u64, (usize, String))> = self
            .groups
            .iter()
            .filter(|(_, g)| pick(g))
            .map(|(k, g)| (g.due_ms, g.seq, k.clone()))
            .collect();
        keys.sort_unstable();
        let mut out = Vec::with_capacity(keys.len());
        for (_, _, key) in keys {
            let Some(group) = self.groups.get_mut(&key) else { continue };
            let node = self.tree.node(group.route);
            out.push(AlertGroup {
                receiver: node.receiver.clone(),
                group_key: format!("{}:{}", node.path, group.label_text),
                group_labels: group.labels.clone(),
                alerts: group.entries.iter().map(|e| e.shown.clone()).collect(),
                at: ms_to_datetime(now_ms),
            });
            group.sent(now_ms);
            if group.entries.is_empty() {
                self.groups.remove(&key);
            } else {
                group.reschedule(
                    node.group_wait_ms,
                    node.group_interval_ms,
                    node.repeat_interval_ms,
                );
            }
        }
        out
    }

    /// When the next message falls due, if any group exists.
    ///
    /// # Examples
    ///
    /// See [`Grouper`].
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.due_ms).min()
    }

    /// The number of groups alive (with at least one alert).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Grouper, Route, RouteTree};
    /// let g = Grouper::new(RouteTree::new(Route::builder().receiver("ops"), ["ops"])?);
    /// assert_eq!(g.group_count(), 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

impl Group {
    fn apply(&mut self, n: &Notification) {
        let pos = self.entries.iter().position(|e| e.shown.alert_id == n.alert_id);
        match (pos, is_firing(n.kind)) {
            (None, true) => self.entries.push(Entry {
                shown: n.clone(),
                changed: true,
                told_firing: false,
                next: None,
            }),
            (None, false) => {}
            (Some(i), true) => {
                let e = &mut self.entries[i];
                if e.shown.kind == NotificationKind::Resolved {
                    // The resolve has not been sent yet: the new firing waits for it.
                    e.next = Some(n.clone());
                } else {
                    e.shown = n.clone();
                }
            }
            (Some(i), false) => {
                let e = &mut self.entries[i];
                if e.shown.kind == NotificationKind::Resolved {
                    // Resolving the firing that waited: the receiver never heard of it.
                    e.next = None;
                } else if e.told_firing {
                    e.shown = n.clone();
                    e.changed = true;
                } else {
                    self.entries.remove(i);
                }
            }
        }
    }

    fn sent(&mut self, now_ms: i64) {
        self.last_sent_ms = Some(now_ms);
        self.entries.retain_mut(|e| {
            if e.shown.kind != NotificationKind::Resolved {
                e.told_firing = true;
                e.changed = false;
                return true;
            }
            match e.next.take() {
                Some(next) => {
                    e.shown = next;
                    e.changed = true;
                    e.told_firing = false;
                    true
                }
                None => false,
            }
        });
    }

    fn reschedule(&mut self, wait: i64, interval: i64, repeat: i64) {
        self.due_ms = match self.last_sent_ms {
            None => self.created_ms.saturating_add(wait),
            Some(t) if self.entries.iter().any(|e| e.changed) => t.saturating_add(interval),
            Some(t) => t.saturating_add(repeat),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::alert::{AlertState, Matcher, Severity};
    use crate::key::SeriesKey;
    use crate::notify::Route;

    /// A notification for alert `i` (label `team` = db for even `i`) in
    /// firing episode `episode`.
    fn notice(i: usize, kind: NotificationKind, episode: i64, at: i64) -> Notification {
        let team = if i.is_multiple_of(2) { "db" } else { "web" };
        let room = format!("r{i}");
        let series = SeriesKey::new("temp", &[("room", room.as_str()), ("team", team)]).unwrap();
        let labels = BTreeMap::from([
            ("alertname".to_owned(), format!("rule{}", i % 3)),
            ("room".to_owned(), room.clone()),
            ("team".to_owned(), team.to_owned()),
            ("severity".to_owned(), "warning".to_owned()),
        ]);
        Notification {
            id: 0,
            kind,
            alert_id: format!("hot/{series}"),
            rule: "hot".into(),
            series,
            severity: Severity::Warning,
            state: if kind == NotificationKind::Resolved {
                AlertState::Resolved
            } else {
                AlertState::Firing
            },
            labels,
            title: String::new(),
            message: String::new(),
            value: None,
            threshold: None,
            at: ms_to_datetime(at),
            started_at: Some(ms_to_datetime(episode)),
            resolution: None,
            held_by_recovery: None,
            was_inhibited_by: None,
        }
    }

    fn tree(group_by: &[&str], wait: u64, interval: u64) -> RouteTree {
        RouteTree::new(
            Route::builder()
                .receiver("ops")
                .group_by(group_by)
                .group_wait(Duration::from_millis(wait))
                .group_interval(Duration::from_millis(interval))
                .repeat_interval(Duration::from_mins(1))
                .child(
                    Route::matching([Matcher::equal("team", "db")]).receiver("db").continue_(true),
                )
                .child(Route::matching([Matcher::regex("room", ".+").unwrap()]).receiver("all")),
            ["ops", "db", "all"],
        )
        .unwrap()
    }

    fn ids(g: &AlertGroup) -> Vec<(String, NotificationKind)> {
        g.alerts.iter().map(|n| (n.labels["room"].clone(), n.kind)).collect()
    }

    #[test]
    fn group_wait_collects_siblings_then_interval_batches_then_repeat() {
        let mut g = Grouper::new(tree(&["alertname"], 10_000, 5_000));
        g.on_notification(&notice(1, NotificationKind::Firing, 1, 0), 0);
        g.on_notification(&notice(4, NotificationKind::Firing, 1, 2_000), 2_000); // rule1, too
        assert_eq!(g.next_due(), Some(10_000));
        assert!(g.due(9_999).is_empty());
        let sent = g.due(10_000);
        // 4 is even: db and all (continue); 1 is odd: all only. Both are rule1.
        let all: Vec<_> = sent.iter().filter(|s| s.receiver == "all").collect();
        assert_eq!(all.len(), 1);
        assert_eq!(ids(all[0]).len(), 2);
        assert_eq!(all[0].group_key, r#"{}/{room=~".+"}:{alertname="rule1"}"#);
        // The db group began with alert 4, at 2 s: it waits until 12 s.
        assert_eq!(sent.len(), 1);
        assert_eq!(g.next_due(), Some(12_000));
        assert_eq!(g.due(12_000)[0].receiver, "db");
        assert_eq!(g.next_due(), Some(70_000)); // nothing changed: repeat interval

        // Two changes within one group_interval leave in one message.
        g.on_notification(&notice(1, NotificationKind::Resolved, 1, 11_000), 11_000);
        g.on_notification(&notice(7, NotificationKind::Firing, 2, 12_000), 12_000); // rule1
        assert_eq!(g.next_due(), Some(15_000));
        let sent = g.due(15_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            ids(&sent[0]),
            [
                ("r1".into(), NotificationKind::Resolved),
                ("r4".into(), NotificationKind::Firing),
                ("r7".into(), NotificationKind::Firing)
            ]
        );
        // The resolved alert left; the repeat lists the two still firing.
        let sent = g.due(75_000);
        let all: Vec<_> = sent.iter().filter(|s| s.receiver == "all").collect();
        assert_eq!(
            ids(all[0]),
            [("r4".into(), NotificationKind::Firing), ("r7".into(), NotificationKind::Firing)]
        );
    }

    #[test]
    fn zero_timings_send_every_transition_at_once_and_resolved_only_groups_disappear() {
        let mut g = Grouper::new(tree(&[], 0, 0));
        g.on_notification(&notice(1, NotificationKind::Firing, 1, 5), 5);
        assert_eq!(g.due(5).len(), 1);
        g.on_notification(&notice(1, NotificationKind::Resolved, 1, 6), 6);
        let sent = g.due(6);
        assert_eq!(sent.len(), 1);
        assert_eq!(ids(&sent[0]), [("r1".into(), NotificationKind::Resolved)]);
        assert_eq!(g.group_count(), 0);
        assert_eq!(g.next_due(), None);
    }

    #[test]
    fn resolve_before_the_first_message_is_not_sent() {
        let mut g = Grouper::new(tree(&[], 1_000, 0));
        g.on_notification(&notice(1, NotificationKind::Firing, 1, 0), 0);
        g.on_notification(&notice(1, NotificationKind::Resolved, 1, 10), 10);
        assert_eq!(g.group_count(), 0);
        assert!(g.due(5_000).is_empty());
    }

    #[test]
    fn refiring_while_the_resolve_waits_comes_after_it() {
        let mut g = Grouper::new(tree(&[], 0, 1_000));
        g.on_notification(&notice(1, NotificationKind::Firing, 1, 0), 0);
        assert_eq!(g.due(0).len(), 1);
        g.on_notification(&notice(1, NotificationKind::Resolved, 1, 10), 10);
        g.on_notification(&notice(1, NotificationKind::Firing, 2, 20), 20);
        let first = g.due(1_000);
        assert_eq!(ids(&first[0]), [("r1".into(), NotificationKind::Resolved)]);
        assert_eq!(g.next_due(), Some(2_000));
        let second = g.due(2_000);
        assert_eq!(ids(&second[0]), [("r1".into(), NotificationKind::Firing)]);
        assert_eq!(second[0].alerts[0].started_at, Some(ms_to_datetime(2)));
    }

    #[test]
    fn group_by_all_makes_one_group_per_alert_and_drain_sends_what_waits() {
        let mut g = Grouper::new(tree(&["..."], 60_000, 0));
        g.on_notification(&notice(1, NotificationKind::Firing, 1, 0), 0);
        g.on_notification(&notice(3, NotificationKind::Firing, 1, 0), 0);
        assert_eq!(g.group_count(), 2);
        let sent = g.drain(1);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|s| s.alerts.len() == 1 && s.group_labels.contains_key("room")));
        assert!(g.drain(2).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Toggle(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0usize..5).prop_map(Op::Toggle), (0u64..20_000).prop_map(Op::Advance)]
    }

    proptest! {
        /// Each receiver sees each alert's episodes in order (a firing, then
        /// its resolve, then the next firing), and eventually hears the
        /// alert's final state if it heard of the alert at all.
        #[test]
        fn receivers_see_each_alert_in_order_and_end_in_its_final_state(
            ops in prop::collection::vec(op(), 1..80),
            wait in prop_oneof![Just(0u64), Just(5_000)],
            interval in prop_oneof![Just(0u64), Just(7_000)],
            by in prop_oneof![Just(vec![]), Just(vec!["alertname"]), Just(vec!["..."])],
        ) {
            let mut g = Grouper::new(tree(&by, wait, interval));
            let mut now = 0i64;
            let mut episode = [0i64; 5];
            let mut firing = [false; 5];
            let mut seen: Vec<AlertGroup> = Vec::new();
            for op in ops {
                match op {
                    Op::Toggle(i) => {
                        let kind = if firing[i] { NotificationKind::Resolved } else {
                            episode[i] += 1;
                            NotificationKind::Firing
                        };
                        firing[i] = !firing[i];
                        // Episodes are unique per alert: 100 * alert + episode.
                        g.on_notification(&notice(i, kind, 100 * i64::try_from(i).unwrap() + episode[i], now), now);
                    }
                    Op::Advance(ms) => now += i64::try_from(ms).unwrap(),
                }
                seen.extend(g.due(now));
            }
            // Run the timers out: every change leaves within group_wait + group_interval.
            let end = now + 20_000;
            while let Some(t) = g.next_due().filter(|t| *t <= end) {
                seen.extend(g.due(t));
            }
            for receiver in ["ops", "db", "all"] {
                for (i, &still_firing) in firing.iter().enumerate() {
                    let room = format!("r{i}");
                    let states: Vec<(NotificationKind, Option<chrono::DateTime<chrono::Utc>>)> = seen
                        .iter()
                        .filter(|s| s.receiver == receiver)
                        .flat_map(|s| s.alerts.iter())
                        .filter(|n| n.labels["room"] == room)
                        .map(|n| (n.kind, n.started_at))
                        .collect();
                    let mut last: Option<&(NotificationKind, Option<chrono::DateTime<chrono::Utc>>)> = None;
                    for s in &states {
                        match (last, s.0) {
                            (None, k) => prop_assert_eq!(k, NotificationKind::Firing),
                            (Some(p), NotificationKind::Resolved) => {
                                prop_assert_eq!(p.0, NotificationKind::Firing, "resolve without firing");
                                prop_assert_eq!(p.1, s.1, "resolve of another episode");
                            }
                            (Some(p), _) if p.0 != NotificationKind::Resolved => {
                                prop_assert_eq!(p.1, s.1, "firing episode skipped its resolve");
                            }
                            _ => {}
                        }
                        last = Some(s);
                    }
                    if let Some(last) = last {
                        prop_assert_eq!(last.0 == NotificationKind::Resolved, !still_firing, "{} {}: {:?}", receiver, i, states);
                    }
                    // A still-firing alert was announced to every receiver its route reaches.
                    let reaches = match receiver { "db" => i.is_multiple_of(2), "all" => true, _ => false };
                    if still_firing && reaches {
                        prop_assert!(last.is_some(), "{} never heard of firing alert {}", receiver, i);
                    }
                }
            }
        }
    }
}
