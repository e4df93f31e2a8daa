//! Unit tests of the alert manager: every transition and option, with explicit times.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::key::SeriesKey;

use NotificationKind::{Firing, FlappingStarted, FlappingStopped, Repeat, Resolved};

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;

fn cpu() -> SeriesKey {
    SeriesKey::new("cpu", &[("host", "a")]).unwrap()
}

/// A manager over one series, `cpu{host="a"}`.
struct Rig {
    mgr: AlertManager,
    view: MemoryView,
    key: SeriesKey,
}

impl Rig {
    fn new(rules: Vec<AlertRule>) -> Self {
        Rig { mgr: AlertManager::new(rules).unwrap(), view: MemoryView::new(), key: cpu() }
    }

    fn one(rule: RuleBuilder) -> Self {
        Rig::new(vec![rule.build().unwrap()])
    }

    /// Records `v` at `t` and evaluates at `t`.
    fn push(&mut self, t: i64, v: f64) -> Vec<(String, NotificationKind)> {
        self.view.push(self.key.clone(), t, v);
        self.tick(t)
    }

    /// Evaluates at `t` without new data.
    fn tick(&mut self, t: i64) -> Vec<(String, NotificationKind)> {
        self.mgr.evaluate(t, &self.view).into_iter().map(|n| (n.rule, n.kind)).collect()
    }

    fn push_full(&mut self, t: i64, v: f64) -> Vec<Notification> {
        self.view.push(self.key.clone(), t, v);
        self.mgr.evaluate(t, &self.view)
    }

    #[track_caller]
    fn state(&self, rule: &str) -> AlertState {
        self.mgr
            .instances()
            .into_iter()
            .find(|a| a.rule == rule && a.series == self.key)
            .map_or(AlertState::Inactive, |a| a.state)
    }
}

fn n(rule: &str, kind: NotificationKind) -> Vec<(String, NotificationKind)> {
    vec![(rule.to_owned(), kind)]
}

fn none() -> Vec<(String, NotificationKind)> {
    Vec::new()
}

fn rule(name: &str) -> RuleBuilder {
    AlertRule::builder(name, "cpu").without_flap_detection()
}

/// `last > limit` over a day, so ticks far from the last sample still see it.
fn above_long(b: RuleBuilder, limit: f64) -> RuleBuilder {
    b.threshold(Aggregate::Last, Duration::from_hours(24), CompareOp::Gt, limit)
}

#[test]
fn second_rule_on_same_metric_does_not_replace_first() {
    let mut r = Rig::new(vec![
        rule("warn").above(80.0).build().unwrap(),
        rule("crit").above(95.0).severity(Severity::Critical).build().unwrap(),
    ]);
    r.mgr.set_default_inhibition(false);
    assert_eq!(r.push(0, 85.0), n("warn", Firing));
    assert_eq!(r.push(SEC, 99.0), n("crit", Firing));
    assert_eq!(r.state("warn"), AlertState::Firing);
    assert_eq!(r.state("crit"), AlertState::Firing);
    assert_eq!(r.mgr.active_alerts().len(), 2);
}

#[test]
fn pending_then_firing_on_tick_without_new_samples() {
    let mut r = Rig::one(rule("r").above(80.0).pending_for(Duration::from_secs(30)));
    assert_eq!(r.push(0, 90.0), none());
    assert_eq!(r.state("r"), AlertState::Pending);
    assert_eq!(r.tick(29 * SEC), none());
    assert_eq!(r.state("r"), AlertState::Pending);
    assert_eq!(r.tick(30 * SEC), n("r", Firing));
    let a = &r.mgr.active_alerts()[0];
    assert_eq!((a.pending_since_ms, a.firing_since_ms), (Some(0), Some(30 * SEC)));
}

#[test]
fn pending_returns_to_inactive_without_notice() {
    let mut r = Rig::one(rule("r").above(80.0).pending_for(Duration::from_secs(30)));
    r.push(0, 90.0);
    assert_eq!(r.push(10 * SEC, 50.0), none());
    assert_eq!(r.state("r"), AlertState::Inactive);
    // The pending timer restarts.
    r.push(20 * SEC, 90.0);
    assert_eq!(r.tick(45 * SEC), none());
    assert_eq!(r.tick(50 * SEC), n("r", Firing));
}

#[test]
fn keep_firing_for_recovering_and_back() {
    let mut r = Rig::one(rule("r").above(80.0).keep_firing_for(Duration::from_mins(1)));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    assert_eq!(r.push(10 * SEC, 50.0), none());
    assert_eq!(r.state("r"), AlertState::Recovering);
    assert_eq!(r.push(20 * SEC, 90.0), none()); // back: keeps firing, no new notice
    assert_eq!(r.state("r"), AlertState::Firing);
    assert_eq!(r.push(30 * SEC, 50.0), none());
    assert_eq!(r.tick(89 * SEC), none());
    assert_eq!(r.state("r"), AlertState::Recovering);
    assert_eq!(r.tick(90 * SEC), n("r", Resolved));
    assert_eq!(r.state("r"), AlertState::Resolved);
}

#[test]
fn hysteresis_fires_above_80_resolves_below_70() {
    let mut r = Rig::one(rule("r").above(80.0).recover_below(70.0));
    assert_eq!(r.push(0, 81.0), n("r", Firing));
    assert_eq!(r.push(SEC, 75.0), none());
    assert_eq!(r.state("r"), AlertState::Firing);
    assert_eq!(r.push(2 * SEC, 70.0), none());
    assert_eq!(r.push(3 * SEC, 69.9), n("r", Resolved));
    // Between the thresholds a resolved alert does not fire again.
    assert_eq!(r.push(4 * SEC, 75.0), none());
    assert_eq!(r.state("r"), AlertState::Resolved);
}

#[test]
fn m_of_n_counts_new_samples_only() {
    let mut r = Rig::one(rule("r").above(80.0).m_of_n(2, 3));
    assert_eq!(r.push(0, 90.0), none());
    assert_eq!(r.tick(SEC), none()); // a tick is not a new evaluation step
    assert_eq!(r.tick(2 * SEC), none());
    assert_eq!(r.push(3 * SEC, 50.0), none());
    assert_eq!(r.push(4 * SEC, 90.0), n("r", Firing)); // 2 of the last 3
    assert_eq!(r.push(5 * SEC, 50.0), n("r", Resolved)); // 50, 90, 50: 1 of 3
}

#[test]
fn resolved_carries_start_end_duration_peak_last() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(10 * SEC, 85.0);
    r.push(20 * SEC, 97.5);
    r.push(30 * SEC, 90.0);
    let out = r.push_full(40 * SEC, 42.0);
    assert_eq!(out.len(), 1);
    let res = out[0].resolution.unwrap();
    assert_eq!(out[0].started_at.unwrap().timestamp_millis(), 10 * SEC);
    assert_eq!(res.resolved_at.timestamp_millis(), 40 * SEC);
    assert_eq!(res.duration_ms, 30 * SEC);
    assert_eq!(res.peak_value, Some(97.5));
    assert_eq!(res.last_value, Some(42.0));
}

#[test]
fn peak_is_lowest_for_below_rules() {
    let mut r = Rig::one(AlertRule::builder("low", "cpu").below(10.0).without_flap_detection());
    r.push(0, 5.0);
    r.push(SEC, 2.0);
    r.push(2 * SEC, 7.0);
    let out = r.push_full(3 * SEC, 50.0);
    assert_eq!(out[0].resolution.unwrap().peak_value, Some(2.0));
}

#[test]
fn resolve_then_quick_refire_sends_both() {
    let mut r = Rig::one(rule("r").above(80.0));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    assert_eq!(r.push(SEC, 10.0), n("r", Resolved));
    assert_eq!(r.push(2 * SEC, 90.0), n("r", Firing));
}

#[test]
fn window_aggregates_drive_rules() {
    let mut r = Rig::one(rule("avg").threshold(
        Aggregate::Avg,
        Duration::from_secs(30),
        CompareOp::Gt,
        50.0,
    ));
    assert_eq!(r.push(0, 100.0), n("avg", Firing));
    assert_eq!(r.push(10 * SEC, 10.0), none()); // avg 55
    assert_eq!(r.push(20 * SEC, 10.0), n("avg", Resolved)); // avg 40
    // Samples age out of the window on a tick.
    let mut r = Rig::one(rule("cnt").threshold(
        Aggregate::Count,
        Duration::from_secs(10),
        CompareOp::Ge,
        3.0,
    ));
    r.push(0, 1.0);
    r.push(SEC, 1.0);
    assert_eq!(r.push(2 * SEC, 1.0), n("cnt", Firing));
    assert_eq!(r.tick(11 * SEC), n("cnt", Resolved)); // count is 1, not no data
}

#[test]
fn samples_after_now_are_ignored() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.view.push(r.key.clone(), 5 * SEC, 99.0);
    r.view.push(r.key.clone(), 0, 10.0);
    assert_eq!(r.tick(SEC), none());
    assert_eq!(r.tick(5 * SEC), n("r", Firing));
}

#[test]
fn no_data_pauses_and_resumes_without_resolving() {
    let mut r = Rig::one(rule("r").above(80.0).threshold(
        Aggregate::Last,
        Duration::from_mins(1),
        CompareOp::Gt,
        80.0,
    ));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    assert_eq!(r.tick(2 * MIN), none()); // window empty: NoData, not a resolve
    assert_eq!(r.state("r"), AlertState::NoData);
    assert_eq!(r.mgr.active_alerts().len(), 1);
    assert_eq!(r.push(3 * MIN, 95.0), none()); // resumes firing, no second Firing
    assert_eq!(r.state("r"), AlertState::Firing);
    assert_eq!(r.tick(5 * MIN), none());
    assert_eq!(r.push(6 * MIN, 10.0), n("r", Resolved)); // NoData → Resolved
}

#[test]
fn no_data_policies() {
    let window =
        |b: RuleBuilder| b.threshold(Aggregate::Max, Duration::from_mins(1), CompareOp::Gt, 80.0);
    // KeepLast: state frozen.
    let mut r = Rig::one(window(rule("r")).no_data(NoDataPolicy::KeepLast));
    r.push(0, 90.0);
    assert_eq!(r.tick(5 * MIN), none());
    assert_eq!(r.state("r"), AlertState::Firing);
    // Ok: resolves.
    let mut r = Rig::one(window(rule("r")).no_data(NoDataPolicy::Ok));
    r.push(0, 90.0);
    assert_eq!(r.tick(5 * MIN), n("r", Resolved));
    // Alerting: fires with no value.
    let mut r = Rig::one(window(rule("r")).no_data(NoDataPolicy::Alerting));
    r.push(0, 10.0);
    let out = r.mgr.evaluate(5 * MIN, &r.view);
    assert_eq!((out[0].kind, out[0].value), (Firing, None));
}

#[test]
fn absent_fires_on_ticks_and_resolves_on_data() {
    let mut r = Rig::one(rule("gone").absent_for(Duration::from_secs(30)));
    assert_eq!(r.push(0, 1.0), none());
    assert_eq!(r.tick(30 * SEC), none()); // the sample at 0 is still within 30 s
    assert_eq!(r.tick(31 * SEC), n("gone", Firing));
    assert_eq!(r.push(40 * SEC, 1.0), n("gone", Resolved));
}

#[test]
fn absent_without_any_series_uses_equal_matchers() {
    let mut mgr = AlertManager::new(vec![
        AlertRule::builder("no_heartbeat", "heartbeat")
            .label_eq("job", "chat")
            .absent_for(Duration::from_secs(10))
            .build()
            .unwrap(),
    ])
    .unwrap();
    let mut view = MemoryView::new();
    // The absence counts from when the rule started watching, not from the epoch.
    assert!(mgr.evaluate(0, &view).is_empty());
    assert!(mgr.evaluate(9_999, &view).is_empty());
    let out = mgr.evaluate(10_000, &view);
    assert_eq!(out[0].series.to_string(), r#"heartbeat{job="chat"}"#);
    // The real series appears with more labels: the placeholder resolves and goes away.
    let real = SeriesKey::new("heartbeat", &[("job", "chat"), ("pod", "1")]).unwrap();
    view.push(real, 11_000, 1.0);
    let out = mgr.evaluate(11_000, &view);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].kind, out[0].series.to_string()),
        (Resolved, r#"heartbeat{job="chat"}"#.to_owned())
    );
    let ids: Vec<String> = mgr.instances().into_iter().map(|a| a.series.to_string()).collect();
    assert_eq!(ids, [r#"heartbeat{job="chat",pod="1"}"#]);
}

#[test]
fn matchers_select_series_and_yield_one_alert_each() {
    let mut mgr = AlertManager::new(vec![
        AlertRule::builder("busy", "msgs")
            .matcher(Matcher::regex("room", "gen.*|support").unwrap())
            .matcher(Matcher::not_equal("env", "test"))
            .above(10.0)
            .build()
            .unwrap(),
    ])
    .unwrap();
    let mut view = MemoryView::new();
    for (room, env) in
        [("general", "prod"), ("support", ""), ("random", "prod"), ("general", "test")]
    {
        let mut labels = vec![("room", room)];
        if !env.is_empty() {
            labels.push(("env", env));
        }
        view.push(SeriesKey::new("msgs", &labels).unwrap(), 0, 50.0);
    }
    let mut fired: Vec<String> =
        mgr.evaluate(0, &view).into_iter().map(|n| n.series.to_string()).collect();
    fired.sort();
    assert_eq!(fired, [r#"msgs{env="prod",room="general"}"#, r#"msgs{room="support"}"#]);
}

#[test]
fn templates_render_value_threshold_and_labels() {
    let mut r = Rig::one(
        rule("r")
            .above(80.0)
            .label("team", "infra")
            .title("{{severity}}: {{rule}} on {{labels.host}}")
            .message("{{labels.__name__}} {{value}} > {{threshold}} ({{labels.team}}, {{state}})"),
    );
    let out = r.push_full(0, 91.234);
    assert_eq!(out[0].title, "warning: r on a");
    assert_eq!(out[0].message, "cpu 91.23 > 80 (infra, firing)");
    // As Prometheus labels the alert of `cpu > 80`: no `__name__`.
    let labels: Vec<(&str, &str)> =
        out[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        labels,
        [("alertname", "r"), ("host", "a"), ("severity", "warning"), ("team", "infra")]
    );
    assert_eq!(out[0].alert_id, r#"r/cpu{host="a"}"#);
}

#[test]
fn repeat_per_rule_and_per_severity() {
    let mut r = Rig::one(above_long(rule("r"), 80.0).repeat_every(Duration::from_mins(10)));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    assert_eq!(r.tick(9 * MIN), none());
    assert_eq!(r.tick(10 * MIN), n("r", Repeat));
    assert_eq!(r.tick(15 * MIN), none());
    assert_eq!(r.tick(20 * MIN), n("r", Repeat));

    let mut r = Rig::one(above_long(rule("c"), 80.0).severity(Severity::Critical));
    r.push(0, 90.0);
    assert_eq!(r.tick(4 * 60 * MIN - 1), none());
    assert_eq!(r.tick(4 * 60 * MIN), n("c", Repeat));
    r.mgr.set_repeat_interval(Severity::Critical, None).unwrap();
    assert_eq!(r.tick(9 * 60 * MIN), none());
}

#[test]
fn default_inhibition_critical_mutes_warning_but_not_its_resolve() {
    let mut r = Rig::new(vec![
        rule("warn").above(80.0).build().unwrap(),
        rule("crit").above(95.0).severity(Severity::Critical).build().unwrap(),
    ]);
    // Jump straight to 99: only the critical is announced.
    assert_eq!(r.push(0, 99.0), n("crit", Firing));
    let warn = r.mgr.active_alerts().into_iter().find(|a| a.rule == "warn").unwrap();
    assert!(warn.inhibited && !warn.firing_notified);
    // Critical resolves, warning still firing: now the warning is announced,
    // after the resolve that released it (cause order, not rule order).
    assert_eq!(r.push(SEC, 90.0), vec![("crit".into(), Resolved), ("warn".into(), Firing)]);
    // Critical again: the warning's resolve is still sent when it resolves.
    assert_eq!(r.push(2 * SEC, 99.0), n("crit", Firing));
    assert_eq!(r.push(3 * SEC, 10.0), vec![("warn".into(), Resolved), ("crit".into(), Resolved)]);
}

#[test]
fn other_series_and_families_are_not_inhibited() {
    let mut mgr = AlertManager::new(vec![
        rule("warn").above(80.0).build().unwrap(),
        rule("crit").above(95.0).severity(Severity::Critical).build().unwrap(),
        rule("other").above(80.0).family("x").build().unwrap(),
    ])
    .unwrap();
    let mut view = MemoryView::new();
    let b = SeriesKey::new("cpu", &[("host", "b")]).unwrap();
    view.push(cpu(), 0, 99.0);
    view.push(b, 0, 85.0);
    let mut out: Vec<String> = mgr.evaluate(0, &view).into_iter().map(|n| n.alert_id).collect();
    out.sort();
    assert_eq!(
        out,
        [
            r#"crit/cpu{host="a"}"#,
            r#"other/cpu{host="a"}"#,
            r#"other/cpu{host="b"}"#,
            r#"warn/cpu{host="b"}"#
        ]
    );
}

#[test]
fn custom_inhibit_rule_with_equal_labels() {
    let mut mgr = AlertManager::new(vec![
        AlertRule::builder("host_down", "up")
            .below(1.0)
            .severity(Severity::Critical)
            .build()
            .unwrap(),
        rule("cpu_high").above(80.0).build().unwrap(),
    ])
    .unwrap();
    mgr.add_inhibit_rule(InhibitRule::new(
        vec![Matcher::equal("alertname", "host_down")],
        vec![Matcher::equal("alertname", "cpu_high")],
        ["host"],
    ));
    let mut view = MemoryView::new();
    view.push(SeriesKey::new("up", &[("host", "a")]).unwrap(), 0, 0.0);
    view.push(cpu(), 0, 90.0);
    view.push(SeriesKey::new("cpu", &[("host", "b")]).unwrap(), 0, 90.0);
    let out: Vec<String> = mgr.evaluate(0, &view).into_iter().map(|n| n.alert_id).collect();
    assert_eq!(out, [r#"host_down/up{host="a"}"#, r#"cpu_high/cpu{host="b"}"#]);
}

#[test]
fn inhibit_rule_never_inhibits_itself() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.mgr.add_inhibit_rule(InhibitRule::new(
        vec![Matcher::equal("alertname", "r")],
        vec![Matcher::equal("alertname", "r")],
        ["host"],
    ));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
}

#[test]
fn silence_mutes_then_announces_when_it_ends() {
    let mut r = Rig::one(rule("r").above(80.0));
    let id = r
        .mgr
        .add_silence(
            Silence::new(vec![Matcher::equal("host", "a")], 0, 10 * MIN).unwrap().created_by("ana"),
        )
        .unwrap();
    assert_eq!(r.push(0, 90.0), none());
    let a = &r.mgr.active_alerts()[0];
    assert_eq!((a.state, a.silenced_by), (AlertState::Firing, Some(id)));
    // Silenced firing that resolves: nothing was announced, so no resolve.
    assert_eq!(r.push(MIN, 10.0), none());
    assert_eq!(r.push(2 * MIN, 90.0), none());
    assert!(r.mgr.expire_silence(id, 3 * MIN));
    assert!(!r.mgr.expire_silence(id, 3 * MIN));
    assert!(r.mgr.silences()[0].is_expired(3 * MIN));
    assert_eq!(r.tick(3 * MIN), n("r", Firing)); // announced now
    assert_eq!(r.push(4 * MIN, 10.0), n("r", Resolved));
    // Expired silences are forgotten after the retention period.
    r.tick(3 * MIN + 24 * 60 * MIN + 1);
    assert!(r.mgr.silences().is_empty());
}

#[test]
fn silence_does_not_swallow_resolve_of_announced_firing() {
    let mut r = Rig::one(rule("r").above(80.0));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    r.mgr
        .add_silence(Silence::new(vec![Matcher::equal("alertname", "r")], 0, 60 * MIN).unwrap())
        .unwrap();
    assert_eq!(r.push(SEC, 10.0), n("r", Resolved));
}

#[test]
fn future_silence_starts_later() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.mgr
        .add_silence(Silence::new(vec![Matcher::equal("host", "a")], MIN, 2 * MIN).unwrap())
        .unwrap();
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    assert_eq!(r.push(SEC, 10.0), n("r", Resolved));
    assert_eq!(r.push(MIN, 90.0), none());
}

#[test]
fn acknowledge_mutes_repeats_until_resolved_and_keeps_resolve() {
    let mut r = Rig::one(above_long(rule("r"), 80.0).repeat_every(Duration::from_mins(1)));
    let id = r.push_full(0, 90.0)[0].alert_id.clone();
    assert!(r.mgr.acknowledge(&id, SEC));
    assert!(!r.mgr.acknowledge(&id, SEC)); // already acknowledged
    assert_eq!(r.tick(5 * MIN), none());
    assert_eq!(r.push(6 * MIN, 10.0), n("r", Resolved));
    // A new firing is not acknowledged.
    assert_eq!(r.push(7 * MIN, 90.0), n("r", Firing));
    assert!(!r.mgr.active_alerts()[0].acknowledged);
    assert!(!r.mgr.acknowledge("r/nope", 0));
    assert!(!r.mgr.acknowledge("garbage", 0));
    let kinds: Vec<AlertEventKind> = r.mgr.history_since(0).into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&AlertEventKind::Acknowledged));
}

#[test]
fn flapping_replaces_transition_notices() {
    let mut r = Rig::one(AlertRule::builder("r", "cpu").above(80.0));
    let mut all = Vec::new();
    let mut t = 0;
    for i in 0..12 {
        t += SEC;
        all.extend(r.push(t, if i % 2 == 0 { 90.0 } else { 10.0 }));
    }
    // 90,10,90,10: F R F, then flapping starts at the 4th change (weighted ≥ 20 %).
    let kinds: Vec<NotificationKind> = all.iter().map(|(_, k)| *k).collect();
    let start = kinds.iter().position(|k| *k == FlappingStarted).expect("flapping detected");
    assert!(kinds[start + 1..].is_empty(), "{kinds:?}");
    assert!(r.mgr.active_alerts().iter().all(|a| a.flapping) || r.state("r") != AlertState::Firing);
    // Stable for a while: flapping stops, and the open firing is reconciled.
    let mut after = Vec::new();
    for _ in 0..25 {
        t += SEC;
        after.extend(r.push(t, 10.0));
    }
    let after: Vec<NotificationKind> = after.into_iter().map(|(_, k)| k).collect();
    let firing_open = kinds[..start].iter().filter(|k| **k == Firing).count()
        > kinds[..start].iter().filter(|k| **k == Resolved).count();
    if firing_open {
        assert_eq!(after, [FlappingStopped, Resolved]);
    } else {
        assert_eq!(after, [FlappingStopped]);
    }
}

#[test]
fn remove_rule_queues_resolve_for_announced_firing() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(0, 90.0);
    let removed = r.mgr.remove_rule("r", SEC).unwrap();
    assert_eq!(removed.name(), "r");
    let out = r.mgr.evaluate(2 * SEC, &r.view);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, Resolved);
    assert_eq!(out[0].resolution.unwrap().resolved_at.timestamp_millis(), SEC);
    assert_eq!(out[0].resolution.unwrap().reason, ResolveReason::RuleRemoved);
    assert!(r.mgr.evaluate(3 * SEC, &r.view).is_empty());
}

#[test]
fn resolve_reason_says_why() {
    // A recovery says Recovered.
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(0, 90.0);
    let out = r.push_full(SEC, 10.0);
    assert_eq!(out[0].resolution.unwrap().reason, ResolveReason::Recovered);
    assert!(!out[0].to_log_line().contains("reason="));
    // Resolving a series resolves its alerts under every rule, with the reason given.
    let mut r = Rig::new(vec![
        rule("warn").above(80.0).build().unwrap(),
        rule("crit").above(95.0).severity(Severity::Critical).build().unwrap(),
        rule("quiet").above(99.0).build().unwrap(),
    ]);
    r.mgr.set_default_inhibition(false);
    r.push(0, 97.0);
    assert_eq!(r.mgr.resolve_series(&r.key.clone(), ResolveReason::Stale, SEC), 3);
    r.view.remove(&r.key.clone());
    let out = r.mgr.evaluate(2 * SEC, &r.view);
    let got: Vec<(&str, ResolveReason)> =
        out.iter().map(|n| (n.rule.as_str(), n.resolution.unwrap().reason)).collect();
    assert_eq!(got, [("warn", ResolveReason::Stale), ("crit", ResolveReason::Stale)]);
    assert!(out[0].to_log_line().contains(" reason=stale"), "{}", out[0].to_log_line());
    assert!(r.mgr.instances().is_empty());
    // Older JSON without a reason reads back as Recovered.
    let mut json: serde_json::Value = serde_json::to_value(&out[0]).unwrap();
    json["resolution"].as_object_mut().unwrap().remove("reason");
    let back: Notification = serde_json::from_value(json).unwrap();
    assert_eq!(back.resolution.unwrap().reason, ResolveReason::Recovered);
}

#[test]
fn replace_rule_keeps_firing_state() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(0, 90.0);
    assert!(
        r.mgr.replace_rule(rule("r").above(85.0).label("v", "2").build().unwrap(), SEC).is_some()
    );
    assert_eq!(r.push(2 * SEC, 88.0), none()); // still firing, not re-announced
    assert_eq!(r.mgr.active_alerts()[0].labels["v"], "2");
    // Replacing with a rule on another metric retires the instance with a resolve.
    let other = AlertRule::builder("r", "mem").above(1.0).build().unwrap();
    r.mgr.replace_rule(other, 3 * SEC);
    assert_eq!(r.tick(4 * SEC), n("r", Resolved));
    // Replacing an unknown name adds it.
    assert!(r.mgr.replace_rule(rule("new").above(1.0).build().unwrap(), 0).is_none());
    assert_eq!(r.mgr.rules().count(), 2);
}

#[test]
fn vanished_series_instances_are_forgotten_when_idle() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(0, 10.0);
    assert_eq!(r.mgr.instances().len(), 1);
    r.view.remove(&r.key.clone());
    r.tick(SEC);
    assert!(r.mgr.instances().is_empty());
    // A firing one stays (in NoData) until it resolves.
    r.push(2 * SEC, 90.0);
    r.view.remove(&r.key.clone());
    assert_eq!(r.tick(3 * SEC), none());
    assert_eq!(r.state("r"), AlertState::NoData);
}

#[test]
fn history_is_capped_and_filtered_by_time() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.mgr.set_history_capacity(3).unwrap();
    for i in 0..5 {
        r.push(i * 2 * SEC, 90.0);
        r.push(i * 2 * SEC + SEC, 10.0);
    }
    let h = r.mgr.history_since(0);
    assert_eq!(h.len(), 3);
    assert!(h.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(r.mgr.history_since(9 * SEC).len(), 1);
    assert_eq!(r.mgr.recent_events(2).len(), 2);
    let last = h.last().unwrap();
    assert_eq!(
        last.kind,
        AlertEventKind::StateChanged { from: AlertState::Firing, to: AlertState::Resolved }
    );
    assert_eq!(last.notified, Some(Resolved));
}

#[test]
fn late_and_repeat_notices_are_in_history() {
    let mut r = Rig::one(rule("r").above(80.0).repeat_every(Duration::from_mins(1)));
    r.push(0, 90.0);
    r.tick(MIN);
    let last = r.mgr.recent_events(1).pop().unwrap();
    assert_eq!(last.kind, AlertEventKind::Notified(Repeat));
}

#[test]
fn evaluating_twice_at_the_same_time_is_idempotent() {
    let mut r =
        Rig::one(AlertRule::builder("r", "cpu").above(80.0).repeat_every(Duration::from_mins(1)));
    assert_eq!(r.push(0, 90.0), n("r", Firing));
    let before = r.mgr.instances();
    assert_eq!(r.tick(0), none());
    assert_eq!(r.mgr.instances(), before);
}

#[test]
fn default_rules_both_cpu_levels_active() {
    let mut mgr = AlertManager::with_default_rules();
    let mut view = MemoryView::new();
    let k = SeriesKey::new("system_cpu_usage", &[]).unwrap();
    let mut sent = Vec::new();
    // Every 10 s: 85, then 96 from 130 s, 91 from 320 s, 50 from 390 s. The
    // rules read the 1-minute average (7 samples) and wait 2 minutes.
    for t in (0..=420).step_by(10) {
        let v = match t {
            0..130 => 85.0,
            130..320 => 96.0,
            320..390 => 91.0,
            _ => 50.0,
        };
        view.push(k.clone(), t * SEC, v);
        for n in mgr.evaluate(t * SEC, &view) {
            sent.push((t, n.rule.clone(), n.kind, n.title.clone(), n.message.clone()));
        }
    }
    let brief: Vec<(i64, &str, NotificationKind)> =
        sent.iter().map(|(t, r, k, _, _)| (*t, r.as_str(), *k)).collect();
    assert_eq!(
        brief,
        [
            (120, "cpu_usage_warning", Firing),  // average 85 since 0
            (310, "cpu_usage_critical", Firing), // average above 95 since 190
            // 91 keeps the critical (hysteresis of 5 points); at 390 the
            // average is (6 × 91 + 50) / 7 = 85.1
            (390, "cpu_usage_critical", Resolved),
            (410, "cpu_usage_warning", Resolved), // (4 × 91 + 3 × 50) / 7 = 73.4
        ]
    );
    assert_eq!(sent[0].3, "High CPU usage");
    assert_eq!(sent[1].3, "Critical CPU usage");
    assert_eq!(sent[1].4, "CPU usage is 96% (threshold 95%)");
}

#[test]
fn notification_and_views_round_trip_through_json() {
    let mut r = Rig::one(rule("r").above(80.0));
    r.push(0, 90.5);
    let out = r.push_full(2_500, 10.25);
    let json = serde_json::to_string(&out[0]).unwrap();
    assert!(json.contains(r#""kind":"resolved""#), "{json}");
    let back: Notification = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out[0]);
    let events: Vec<AlertEventView> =
        r.mgr.history_since(0).iter().map(AlertEventView::from).collect();
    let back: Vec<AlertEventView> =
        serde_json::from_str(&serde_json::to_string(&events).unwrap()).unwrap();
    assert_eq!(back, events);
}

#[test]
fn json_lines_and_log_notifiers_write_one_line_each() {
    let mut r = Rig::one(rule("r").above(80.0));
    let json = JsonLinesNotifier::new(Vec::new());
    let log = LogNotifier::new(Vec::new());
    for n in r.push_full(0, 90.0).iter().chain(r.push_full(60_000, 10.0).iter()) {
        json.notify(n).unwrap();
        log.notify(n).unwrap();
    }
    let json = String::from_utf8(json.into_inner()).unwrap();
    let parsed: Vec<Notification> =
        json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 2);
    let log = String::from_utf8(log.into_inner()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].contains(" FIRING warning r cpu{host=\"a\"} value=90 threshold=80: "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" RESOLVED ") && lines[1].contains("duration=60s peak=90"),
        "{}",
        lines[1]
    );
}

// ---------------------------------------------------------------------------
// Properties over random value sequences.

/// The reference model: `> 80` fires, `< 70` recovers, `for` and `keep_firing_for`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    Inactive,
    Pending(i64),
    Firing,
    Recovering(i64),
    Resolved,
}

fn model_step(m: Model, v: f64, t: i64, pending: i64, keep: i64) -> Model {
    let fire = v > 80.0;
    let clear = v < 70.0;
    match m {
        Model::Inactive | Model::Resolved if fire && pending == 0 => Model::Firing,
        Model::Inactive | Model::Resolved if fire => Model::Pending(t),
        Model::Pending(_) if !fire => Model::Inactive,
        Model::Pending(since) if t - since >= pending => Model::Firing,
        Model::Firing if clear && keep == 0 => Model::Resolved,
        Model::Firing if clear => Model::Recovering(t),
        Model::Recovering(_) if !clear => Model::Firing,
        Model::Recovering(since) if t - since >= keep => Model::Resolved,
        other => other,
    }
}

fn model_state(m: Model) -> AlertState {
    match m {
        Model::Inactive => AlertState::Inactive,
        Model::Pending(_) => AlertState::Pending,
        Model::Firing => AlertState::Firing,
        Model::Recovering(_) => AlertState::Recovering,
        Model::Resolved => AlertState::Resolved,
    }
}

/// (value, seconds until the next step, whether the step is a sample or a tick)
fn steps() -> impl Strategy<Value = Vec<(f64, i64, bool)>> {
    prop::collection::vec((prop_oneof![0.0..100.0, 60.0..90.0], 1i64..40, any::<bool>()), 1..120)
}

proptest! {
    #[test]
    fn state_matches_reference_model(
        seq in steps(),
        pending in prop_oneof![Just(0i64), 1i64..90],
        keep in prop_oneof![Just(0i64), 1i64..90],
    ) {
        let mut r = Rig::one(
            above_long(rule("r"), 80.0)
                .recover_below(70.0)
                .pending_for(Duration::from_secs(pending.unsigned_abs()))
                .keep_firing_for(Duration::from_secs(keep.unsigned_abs())),
        );
        let mut m = Model::Inactive;
        let mut last = None;
        let mut t = 0;
        for (v, gap, is_sample) in seq {
            t += gap * SEC;
            if is_sample || last.is_none() {
                r.push(t, v);
                last = Some(v);
            } else {
                r.tick(t);
            }
            m = model_step(m, last.unwrap(), t, pending * SEC, keep * SEC);
            prop_assert_eq!(r.state("r"), model_state(m), "at t={}", t);
        }
    }

    #[test]
    fn firing_and_resolve_alternate_per_instance(
        seq in steps(),
        flap in any::<bool>(),
        silence in prop::option::of((0i64..2_000, 1i64..2_000)),
        ack_at in prop::option::of(0usize..120),
        critical_too in any::<bool>(),
    ) {
        let mut rules = vec![above_long(AlertRule::builder("warn", "cpu"), 80.0).recover_below(70.0)];
        if critical_too {
            rules.push(above_long(AlertRule::builder("crit", "cpu"), 90.0).severity(Severity::Critical));
        }
        let rules = rules
            .into_iter()
            .map(|b| if flap { b } else { b.without_flap_detection() }.repeat_every(Duration::from_mins(1)))
            .map(|b| b.build().unwrap())
            .collect();
        let mut r = Rig::new(rules);
        if let Some((start, len)) = silence {
            r.mgr.add_silence(
                Silence::new(vec![Matcher::equal("host", "a")], start * SEC, (start + len) * SEC).unwrap(),
            ).unwrap();
        }
        let mut open = std::collections::HashMap::<String, bool>::new();
        let mut t = 0;
        for (i, (v, gap, is_sample)) in seq.into_iter().enumerate() {
            t += gap * SEC;
            let out = if is_sample || i == 0 {
                r.push_full(t, v)
            } else {
                r.mgr.evaluate(t, &r.view)
            };
            if ack_at == Some(i) {
                for a in r.mgr.active_alerts() {
                    r.mgr.acknowledge(&a.alert_id, t);
                }
            }
            for n in out {
                let is_open = open.entry(n.alert_id.clone()).or_insert(false);
                match n.kind {
                    Firing => {
                        prop_assert!(!*is_open, "second Firing without Resolved for {}", n.alert_id);
                        *is_open = true;
                    }
                    Resolved => {
                        prop_assert!(*is_open, "Resolved without a notified Firing for {}", n.alert_id);
                        prop_assert!(n.resolution.is_some());
                        *is_open = false;
                    }
                    Repeat => prop_assert!(*is_open),
                    FlappingStarted | FlappingStopped => {}
                }
            }
        }
        // Whatever is still open is still firing (or paused firing).
        for a in r.mgr.instances() {
            prop_assert_eq!(a.firing_notified, open.get(&a.alert_id).copied().unwrap_or(false));
        }
    }
}

// ---------------------------------------------------------------------------
// Forecast and anomaly-rate conditions
// ---------------------------------------------------------------------------

#[allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]
mod forecast_and_anomaly_rate {
    use super::*;
    use crate::analysis::{CrossDirection, ForecastCondition};
    use crate::history::Sample;

    const HOUR: i64 = 60 * MIN;

    fn disk_rule() -> RuleBuilder {
        let h = Duration::from_hours(1);
        rule("disk_fills").forecast(
            h,
            ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h).unwrap(),
        )
    }

    /// Pushes a sample every 5 minutes from `from` to `to` (inclusive) on the
    /// line through (`from`, `v0`) with `per_hour` slope; returns every
    /// notification and the last value.
    fn ramp(r: &mut Rig, from: i64, to: i64, v0: f64, per_hour: f64) -> (Vec<Notification>, f64) {
        let mut out = Vec::new();
        let mut t = from;
        let mut v = v0;
        while t <= to {
            #[allow(clippy::cast_precision_loss)]
            {
                v = v0 + per_hour * (t - from) as f64 / HOUR as f64;
            }
            out.extend(r.push_full(t, v));
            t += 5 * MIN;
        }
        (out, v)
    }

    #[test]
    fn forecast_fires_inside_the_horizon_and_clears_only_beyond_the_clear_horizon() {
        let mut r = Rig::one(disk_rule());
        // 2 %/h from 60 %: full at 20 h. Before 12 h the crossing is more than 8 h away.
        let (fired, _) = ramp(&mut r, 0, 11 * HOUR + 55 * MIN, 60.0, 2.0);
        assert!(fired.is_empty(), "{fired:?}");
        assert_eq!(r.state("disk_fills"), AlertState::Inactive);
        // at 12 h 5 min: 7 h 55 min left
        let (fired, v) =
            ramp(&mut r, 12 * HOUR + 5 * MIN, 12 * HOUR + 5 * MIN, 84.166_666_666_666_67, 2.0);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].kind, Firing);
        let eta_h = fired[0].value.unwrap();
        assert!((eta_h - (100.0 - v) / 2.0).abs() < 1e-6, "{eta_h}");
        assert!((eta_h - (7.0 + 55.0 / 60.0)).abs() < 1e-6, "{eta_h}");
        assert_eq!(fired[0].threshold, Some(8.0));

        // slows to 0.5 %/h: once the hour-long window holds only the new slope,
        // the crossing is ~30 h away: beyond 8 h but within 48 h, so it keeps firing
        let start = 12 * HOUR + 10 * MIN;
        let (out, v) = ramp(&mut r, start, start + 90 * MIN, v + 2.0 / 12.0, 0.5);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.state("disk_fills"), AlertState::Firing);
        let eta_now = r.mgr.active_alerts()[0].value.unwrap();
        assert!((eta_now - (100.0 - v) / 0.5).abs() < 1e-6, "{eta_now}");
        assert!(eta_now > 8.0 && eta_now < 48.0, "{eta_now}");

        // almost flat (0.1 %/h): ~145 h away, beyond 48 h: resolves, with the peak
        // being the shortest time left
        let start = start + 95 * MIN;
        let (out, v) = ramp(&mut r, start, start + 90 * MIN, v + 0.5 / 12.0, 0.1);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, Resolved);
        let res = out[0].resolution.unwrap();
        // the first point of the slower phase still continued the 2 %/h line: 7 h 50 min left
        assert!((res.peak_value.unwrap() - (7.0 + 50.0 / 60.0)).abs() < 1e-6, "{res:?}");
        assert!(res.last_value.unwrap() > 48.0, "{res:?}");
        assert!(v < 100.0);
    }

    #[test]
    fn forecast_falling_and_explicit_recovery() {
        // free space falling towards 10 %; the rule's own recovery overrides the implied one
        let h = Duration::from_hours(1);
        let fc = ForecastCondition::new(10.0, CrossDirection::Falling, 4 * h, 24 * h).unwrap();
        let mut r = Rig::one(rule("free_low").forecast(h, fc).recover_when(Condition::Threshold {
            aggregate: Aggregate::Last,
            window: h,
            op: CompareOp::Gt,
            value: 50.0,
        }));
        // 10 %/h from 40 %: 10 % reached in 3 h
        let (out, _) = ramp(&mut r, 0, HOUR, 40.0, -10.0);
        assert_eq!(out.iter().map(|n| n.kind).collect::<Vec<_>>(), [Firing]);
        // stops falling: no crossing predicted any more, but the recovery wants > 50 %
        let (out, _) = ramp(&mut r, HOUR + 5 * MIN, 3 * HOUR, 30.0, 0.0);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.state("free_low"), AlertState::Firing);
        let (out, _) = ramp(&mut r, 3 * HOUR + 5 * MIN, 3 * HOUR + 5 * MIN, 60.0, 0.0);
        assert_eq!(out.iter().map(|n| n.kind).collect::<Vec<_>>(), [Resolved]);
    }

    #[test]
    fn forecast_with_fewer_than_three_samples_is_no_data() {
        let mut r = Rig::one(disk_rule());
        r.push(0, 99.0);
        r.push(MIN, 99.5);
        assert_eq!(r.state("disk_fills"), AlertState::NoData);
        r.push(2 * MIN, 99.9);
        assert_eq!(r.state("disk_fills"), AlertState::Firing);
    }

    fn scored(t: i64, score: Option<f64>) -> Sample {
        Sample { anomaly_score: score, ..Sample::new(t, 1.0) }
    }

    #[test]
    fn anomaly_rate_fires_above_the_level_and_resolves_below() {
        let mut r = Rig::one(rule("odd").anomaly_rate_above(Duration::from_secs(9), 0.2));
        let push = |r: &mut Rig, t: i64, s: Option<f64>| {
            r.view.push_sample(r.key.clone(), scored(t, s));
            r.mgr.evaluate(t, &r.view)
        };
        // ten quiet points, one a second: the window [t-9s, t] holds ten of them
        for i in 0..10 {
            assert!(push(&mut r, i * SEC, Some(0.1)).is_empty());
        }
        assert!(push(&mut r, 10 * SEC, Some(0.9)).is_empty()); // 1 of 10
        assert!(push(&mut r, 11 * SEC, Some(0.5)).is_empty()); // 2 of 10: not above 0.2
        let out = push(&mut r, 12 * SEC, Some(0.7)); // 3 of 10
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].kind, out[0].value, out[0].threshold), (Firing, Some(0.3), Some(0.2)));
        // unscored points do not count: still 3 of 10 scored
        assert!(push(&mut r, 13 * SEC, None).is_empty());
        assert_eq!(r.state("odd"), AlertState::Firing);
        // quiet again: the anomalies leave the window one by one
        let mut resolved_at = None;
        for i in 14..25 {
            if push(&mut r, i * SEC, Some(0.0)).iter().any(|n| n.kind == Resolved) {
                resolved_at = Some(i);
                break;
            }
        }
        // at 20 s the window [11 s, 20 s] holds 0.5 and 0.7 among 9 scored: 2/9 > 0.2;
        // at 21 s it holds 0.7 among 9: 1/9
        assert_eq!(resolved_at, Some(21));
    }

    /// A view whose samples carry no scores but which knows them separately.
    struct Scores(MemoryView, Vec<(i64, f64)>);
    impl SeriesView for Scores {
        fn series_named(&self, name: &str) -> Vec<SeriesKey> {
            self.0.series_named(name)
        }
        fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
            self.0.samples(key, since_ms)
        }
        fn anomaly_scores(&self, _: &SeriesKey, since: i64) -> Option<Vec<(i64, f64)>> {
            Some(self.1.iter().copied().filter(|&(t, _)| t >= since).collect())
        }
    }

    #[test]
    fn anomaly_rate_without_scores_is_no_data_or_reads_the_view() {
        let mut r = Rig::one(rule("odd").anomaly_rate_above(Duration::from_mins(1), 0.0));
        r.push(0, 1.0);
        assert_eq!(r.state("odd"), AlertState::NoData);

        let mut mgr = AlertManager::new(vec![
            rule("odd").anomaly_rate_above(Duration::from_mins(1), 0.0).build().unwrap(),
        ])
        .unwrap();
        let mut view = Scores(MemoryView::new(), vec![(0, 0.2), (SEC, 0.3)]);
        view.0.push(cpu(), 0, 1.0);
        view.0.push(cpu(), SEC, 1.0);
        assert!(mgr.evaluate(SEC, &view).is_empty());
        view.1.push((2 * SEC, 0.95));
        view.0.push(cpu(), 2 * SEC, 1.0);
        let out = mgr.evaluate(2 * SEC, &view);
        assert_eq!(out[0].kind, Firing);
        assert!((out[0].value.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // a score stamped after the evaluation time is not read
        view.1.push((10 * SEC, 0.99));
        let a = &mgr.instances()[0];
        assert!((a.value.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }

    fn banded(t: i64, v: f64, band: Option<(f64, f64)>) -> Sample {
        Sample { expected_band: band, ..Sample::new(t, v) }
    }

    #[test]
    fn outside_expected_band_follows_the_newest_banded_sample() {
        let mut r = Rig::one(rule("unusual").outside_expected_band(Duration::from_mins(1)));
        let push = |r: &mut Rig, s: Sample| {
            let t = s.timestamp_ms;
            r.view.push_sample(r.key.clone(), s);
            r.mgr.evaluate(t, &r.view)
        };
        // no band learnt yet: no data
        assert!(push(&mut r, banded(0, 10.0, None)).is_empty());
        assert_eq!(r.state("unusual"), AlertState::NoData);
        assert!(push(&mut r, banded(SEC, 10.0, Some((8.0, 12.0)))).is_empty());
        assert_eq!(r.state("unusual"), AlertState::Inactive);
        let out = push(&mut r, banded(2 * SEC, 12.5, Some((8.0, 12.0))));
        assert_eq!((out[0].kind, out[0].value, out[0].threshold), (Firing, Some(12.5), None));
        // a sample without a band does not hide the newest banded one
        assert!(push(&mut r, banded(3 * SEC, 11.0, None)).is_empty());
        assert_eq!(r.state("unusual"), AlertState::Firing);
        // below the band fires too; back inside resolves
        assert!(push(&mut r, banded(4 * SEC, 7.0, Some((8.0, 12.0)))).is_empty());
        let out = push(&mut r, banded(5 * SEC, 8.0, Some((8.0, 12.0))));
        assert_eq!(out[0].kind, Resolved);
        assert_eq!(out[0].resolution.unwrap().last_value, Some(8.0));
    }

    #[test]
    fn new_conditions_are_validated_with_the_offending_value() {
        let h = Duration::from_hours(1);
        let fc = ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h).unwrap();
        let cases: Vec<(RuleBuilder, &str)> = vec![
            (rule("a").forecast(Duration::ZERO, fc), "window 0ns"),
            (
                rule("a").forecast(h, ForecastCondition { clear_beyond: h, ..fc }),
                "clear_beyond 3600s is shorter than warn_within 28800s",
            ),
            (
                rule("a").forecast(h, ForecastCondition { threshold: f64::NAN, ..fc }),
                "forecast threshold NaN",
            ),
            (
                rule("a").forecast(h, ForecastCondition { warn_within: Duration::ZERO, ..fc }),
                "warn_within 0ns",
            ),
            (rule("a").forecast(h, fc).recover_below(50.0), "needs a threshold condition"),
            (rule("a").anomaly_rate_above(h, 1.0), "level 1 is not in [0, 1)"),
            (rule("a").anomaly_rate_above(h, -0.1), "level -0.1"),
            (
                rule("a").condition(Condition::AnomalyRate {
                    window: h,
                    min_score: 0.0,
                    above: 0.1,
                }),
                "min_score 0 is not in (0, 1]",
            ),
            (rule("a").anomaly_rate_above(Duration::ZERO, 0.1), "window 0ns"),
            (rule("a").outside_expected_band(Duration::ZERO), "window 0ns"),
        ];
        for (b, needle) in cases {
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    proptest! {
        #[test]
        fn anomaly_share_matches_a_reference_count(
            scores in prop::collection::vec(prop::option::of(0.0f64..=1.0), 1..60),
            level in 0.0f64..0.99,
            min_score in 0.01f64..=1.0,
        ) {
            let c = Condition::AnomalyRate { window: Duration::from_mins(1), min_score, above: level };
            let window: Vec<Sample> =
                scores.iter().enumerate().map(|(i, s)| scored(i as i64 * SEC, *s)).collect();
            let n = scores.iter().flatten().count();
            let hits = scores.iter().flatten().filter(|&&s| s >= min_score).count();
            match c.verdict(&window, 60 * SEC, || None) {
                crate::alert::rule::Verdict::NoData => prop_assert_eq!(n, 0),
                crate::alert::rule::Verdict::Value { breach, value } => {
                    let share = hits as f64 / n as f64;
                    prop_assert!((0.0..=1.0).contains(&value.unwrap()));
                    prop_assert_eq!(value, Some(share));
                    prop_assert_eq!(breach, share > level);
                }
            }
        }

        #[test]
        fn forecast_of_a_line_predicts_its_crossing(
            slope_per_hour in 0.5f64..20.0,
            start in 0.0f64..50.0,
        ) {
            let h = Duration::from_hours(1);
            let fc = ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h).unwrap();
            let c = Condition::Forecast { window: h, forecast: fc };
            let window: Vec<Sample> = (0..=12)
                .map(|i| Sample::new(i * 5 * MIN, start + slope_per_hour * i as f64 / 12.0))
                .collect();
            let now = HOUR;
            let expected_h = (100.0 - (start + slope_per_hour)) / slope_per_hour;
            match c.verdict(&window, now, || None) {
                crate::alert::rule::Verdict::Value { breach, value } => {
                    let got = value.unwrap();
                    prop_assert!((got - expected_h).abs() < 1e-6 * expected_h.max(1.0), "{} vs {}", got, expected_h);
                    prop_assert_eq!(breach, got <= 8.0);
                }
                v @ crate::alert::rule::Verdict::NoData => prop_assert!(false, "{:?}", v),
            }
        }
    }
}

/// Issue 10, defect 1: a `for` counts only time continuously satisfied by
/// data. As in Prometheus, the pending alert restarts when data returns
/// (there it is dropped once the series leaves the 5-minute lookback).
#[test]
fn pending_for_restarts_after_a_no_data_gap() {
    let mut r = Rig::one(rule("r").above(5.0).pending_for(Duration::from_mins(10)));
    assert_eq!(r.push(0, 6.0), none());
    for m in 1..60 {
        assert_eq!(r.tick(m * MIN), none(), "minute {m}");
    }
    assert_eq!(r.state("r"), AlertState::NoData);
    let paused = r.mgr.instances()[0].paused_from;
    assert_eq!(paused, Some(AlertState::Pending));
    let wire = AlertView::from(&r.mgr.active_alerts()[0]);
    assert_eq!((wire.state, wire.paused_from), (AlertState::NoData, Some(AlertState::Pending)));
    let mut fired = None;
    for m in 60..=80 {
        if r.push(m * MIN, 6.0) == n("r", Firing) {
            fired = Some(m);
            break;
        }
    }
    assert_eq!(fired, Some(70), "Prometheus fires at minute 70");
}

/// Issue 10, defect 1 with `KeepLast`: timers do not advance while the
/// window is empty, and a `for` never fires on a gap.
#[test]
fn keep_last_does_not_count_the_gap_toward_for() {
    let mut r = Rig::one(
        rule("r").above(5.0).pending_for(Duration::from_mins(10)).no_data(NoDataPolicy::KeepLast),
    );
    assert_eq!(r.push(0, 6.0), none());
    for m in 1..10 {
        assert_eq!(r.tick(m * MIN), none(), "minute {m}");
    }
    assert_eq!(r.state("r"), AlertState::Pending);
    let mut fired = None;
    for m in 10..=30 {
        if r.push(m * MIN, 6.0) == n("r", Firing) {
            fired = Some(m);
            break;
        }
    }
    assert_eq!(fired, Some(20), "Prometheus fires at minute 20");
}

/// `keep_firing_for` paused by missing data resumes where it stopped: the
/// paused time does not count.
#[test]
fn keep_firing_for_does_not_count_paused_time() {
    let mut r = Rig::one(
        rule("r")
            .threshold(Aggregate::Last, Duration::from_mins(1), CompareOp::Gt, 5.0)
            .keep_firing_for(Duration::from_mins(5)),
    );
    assert_eq!(r.push(0, 6.0), n("r", Firing));
    assert_eq!(r.push(MIN, 1.0), none()); // recovering since minute 1
    assert_eq!(r.push(2 * MIN, 1.0), none());
    assert_eq!(r.tick(3 * MIN), none()); // the sample at 2 is still in the window
    assert_eq!(r.tick(4 * MIN), none()); // window empty: paused
    assert_eq!(r.state("r"), AlertState::NoData);
    assert_eq!(r.mgr.instances()[0].paused_from, Some(AlertState::Recovering));
    // Data returns at minute 30: 3 of the 5 minutes were served before the
    // pause (minutes 1–4), so it resolves 2 minutes later, not at once.
    assert_eq!(r.push(30 * MIN, 1.0), none());
    assert_eq!(r.state("r"), AlertState::Recovering);
    assert_eq!(r.push(31 * MIN, 1.0), none());
    assert_eq!(r.push(32 * MIN, 1.0), n("r", Resolved));
}

/// Issue 10, defect 2: an acknowledgement made while pending carries over to
/// the firing, but never mutes the Firing or the Resolved.
#[test]
fn acknowledging_a_pending_alert_still_announces_firing_and_resolve() {
    let mut r = Rig::one(
        rule("r")
            .above(5.0)
            .pending_for(Duration::from_mins(2))
            .repeat_every(Duration::from_mins(1)),
    );
    let id = "r/cpu{host=\"a\"}";
    assert_eq!(r.push(0, 6.0), none());
    assert!(r.mgr.acknowledge(id, 30 * SEC));
    assert_eq!(r.push(MIN, 6.0), none());
    assert_eq!(r.push(2 * MIN, 6.0), n("r", Firing));
    assert!(r.mgr.active_alerts()[0].acknowledged);
    assert_eq!(r.push(3 * MIN, 6.0), none()); // the repeat is muted by the ack
    assert_eq!(r.push(4 * MIN, 1.0), n("r", Resolved));
}

/// Issue 10, defect 3: flap detection counts the transitions a handler would
/// see; an alert that never fires never flaps.
#[test]
fn an_alert_that_never_fires_never_flaps() {
    let mut r =
        Rig::one(AlertRule::builder("r", "cpu").above(5.0).pending_for(Duration::from_mins(10)));
    let mut all = Vec::new();
    for m in 0..30 {
        all.extend(r.push(m * MIN, if m % 2 == 0 { 6.0 } else { 4.0 }));
        assert!(!r.mgr.instances()[0].flapping, "minute {m}");
    }
    for m in 30..60 {
        all.extend(r.push(m * MIN, 4.0));
    }
    assert_eq!(all, none());
    let flaps = r.mgr.history_since(0).into_iter().filter(|e| {
        matches!(e.kind, AlertEventKind::FlappingStarted | AlertEventKind::FlappingStopped)
    });
    assert_eq!(flaps.count(), 0);
}

/// A Firing that reads below its threshold says why: hysteresis holds it and
/// an inhibition just released it.
#[test]
fn firing_below_its_threshold_says_held_and_released() {
    let mut r = Rig::new(vec![
        rule("warn").above(80.0).recover_below(75.0).build().unwrap(),
        rule("crit").above(95.0).recover_below(90.0).severity(Severity::Critical).build().unwrap(),
    ]);
    let first = r.push_full(0, 97.0);
    assert_eq!((first[0].held_by_recovery, first[0].was_inhibited_by.as_deref()), (None, None));
    let out = r.push_full(SEC, 75.51);
    let kinds: Vec<(&str, NotificationKind)> =
        out.iter().map(|n| (n.rule.as_str(), n.kind)).collect();
    assert_eq!(kinds, [("crit", Resolved), ("warn", Firing)]);
    let warn = &out[1];
    assert_eq!(warn.held_by_recovery, Some(75.0));
    assert_eq!(warn.was_inhibited_by.as_deref(), Some("crit"));
    let line = warn.to_log_line();
    assert!(
        line.contains("value=75.51 threshold=80 (held above recovery 75; was inhibited by crit):"),
        "{line}"
    );
    // The crit's resolve says neither.
    assert_eq!((out[0].held_by_recovery, out[0].was_inhibited_by.as_deref()), (None, None));
    // Back above the threshold: no longer held; released only once.
    r.mgr.set_repeat_interval(Severity::Warning, Some(Duration::from_secs(1))).unwrap();
    let again = r.push_full(2 * SEC, 85.0);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].kind, again[0].held_by_recovery), (Repeat, None));
    assert_eq!(again[0].was_inhibited_by, None);
    assert!(!again[0].to_log_line().contains("held"));
}
