//! Configuration files on a running engine: load at build, reload all or
//! nothing, alert state across reloads. Manual clock and `flush()` only.

use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::Receiver;
use watchpost::alert::{
    AlertState, ChannelNotifier, Notification, NotificationKind, ResolveReason,
};
use watchpost::{Error, ManualClock};

use crate::util::{T0, builder};

/// A file in a fresh directory of its own.
fn file(test: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchpost-config-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("watchpost.toml");
    std::fs::write(&path, contents).unwrap();
    path
}

fn inbox() -> (ChannelNotifier, Receiver<Notification>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ChannelNotifier::new(tx), rx)
}

const QUEUE_RULES: &str = r#"
[engine]
default_alert_rules = false

[[rules]]
name = "queue_backlog"
metric = "queue_depth"
condition = { kind = "threshold", aggregate = "last", window = "5m", op = "gt", value = 100.0 }
for = "1m"

[[rules]]
name = "queue_empty"
metric = "queue_depth"
condition = { kind = "threshold", aggregate = "last", window = "5m", op = "eq", value = 0.0 }
"#;

fn rule_names(engine: &watchpost::Engine) -> Vec<String> {
    engine.alert_rules().iter().map(|r| r.name().to_owned()).collect()
}

#[test]
fn a_file_with_one_bad_rule_changes_nothing_and_says_where() {
    let clock = ManualClock::at_millis(T0);
    let path = file("bad", QUEUE_RULES);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    assert_eq!(rule_names(&engine), ["queue_backlog", "queue_empty"]);

    let bad = QUEUE_RULES.replace("value = 100.0", "value = 50.0")
        + r#"
[[rules]]
name = "new_rule"
metric = "queue_depth"
matchers = ['queue=~"(unclosed"']
condition = { kind = "absent", duration = "1m" }
"#;
    std::fs::write(&path, &bad).unwrap();
    let err = engine.reload_config(&path).unwrap_err();
    let Error::Config { file, problems } = &err else { panic!("{err}") };
    assert_eq!(file, &path.display().to_string());
    assert_eq!(problems.len(), 1, "{problems:?}");
    // The [[rules]] header of the bad rule: line 17 of the file.
    let header = bad.lines().position(|l| l.contains("new_rule")).unwrap();
    assert_eq!((problems[0].line, problems[0].column), (Some(header), Some(1)));
    assert!(problems[0].message.contains("(unclosed"), "{err}");
    assert!(err.to_string().starts_with(&format!("{}:{header}:1: rules[2]", path.display())));
    // Nothing changed: not the new rule, not the threshold of the good one.
    assert_eq!(rule_names(&engine), ["queue_backlog", "queue_empty"]);
    assert_eq!(engine.alert_rules()[0].condition().to_string(), "last over 300s > 100");
}

#[test]
fn an_unchanged_rule_keeps_its_pending_timer_a_changed_one_restarts() {
    let clock = ManualClock::at_millis(T0);
    let path = file("pending", QUEUE_RULES);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    let depth = engine.gauge("queue_depth").unwrap();
    depth.set(150.0);
    engine.flush().unwrap();
    let pending = |e: &watchpost::Engine, rule: &str| {
        e.active_alerts()
            .into_iter()
            .find(|a| a.rule == rule)
            .map(|a| (a.state, a.pending_since_ms))
    };
    assert_eq!(pending(&engine, "queue_backlog"), Some((AlertState::Pending, Some(T0))));

    // 40 s later the file is reloaded with only the other rule changed.
    clock.advance(Duration::from_secs(40));
    std::fs::write(&path, QUEUE_RULES.replace("op = \"eq\"", "op = \"le\"")).unwrap();
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.unchanged, ["queue_backlog"]);
    assert_eq!(report.changed, ["queue_empty"]);
    engine.flush().unwrap();
    assert_eq!(pending(&engine, "queue_backlog"), Some((AlertState::Pending, Some(T0))));

    // 20 s more: the `for` of 1 m counted from T0 is over, it fires.
    clock.advance(Duration::from_secs(20));
    engine.flush().unwrap();
    assert_eq!(pending(&engine, "queue_backlog").unwrap().0, AlertState::Firing);

    // Changing the rule itself restarts it: pending again, from now.
    let le = QUEUE_RULES.replace("op = \"eq\"", "op = \"le\"");
    std::fs::write(&path, le.replace("for = \"1m\"", "for = \"2m\"")).unwrap();
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.changed, ["queue_backlog"]);
    engine.flush().unwrap();
    assert_eq!(pending(&engine, "queue_backlog"), Some((AlertState::Pending, Some(T0 + 60_000))));
}

#[test]
fn a_removed_rules_firing_alert_resolves_once_with_the_reason() {
    let clock = ManualClock::at_millis(T0);
    let path = file("removed", QUEUE_RULES);
    let (tx, rx) = inbox();
    let engine = builder(&clock).config_file(&path).notifier("inbox", tx).build().unwrap();
    let depth = engine.gauge("queue_depth").unwrap();
    depth.set(0.0);
    engine.flush().unwrap();
    let fired: Vec<_> = rx.try_iter().collect();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].rule.as_str(), fired[0].kind), ("queue_empty", NotificationKind::Firing));

    let without = QUEUE_RULES.split("[[rules]]\nname = \"queue_empty\"").next().unwrap();
    std::fs::write(&path, without).unwrap();
    clock.advance(Duration::from_secs(5));
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.removed, ["queue_empty"]);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    let after: Vec<_> = rx.try_iter().collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (after[0].rule.as_str(), after[0].kind),
        ("queue_empty", NotificationKind::Resolved)
    );
    assert_eq!(after[0].resolution.unwrap().reason, ResolveReason::RuleRemoved);
    assert_eq!(rule_names(&engine), ["queue_backlog"]);
}

#[test]
fn settings_that_need_a_restart_are_reported_not_applied() {
    let clock = ManualClock::at_millis(T0);
    let path = file("restart", QUEUE_RULES);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    let changed = QUEUE_RULES.replace(
        "default_alert_rules = false",
        "default_alert_rules = false\nhistory_capacity = 10\nrecord_queue_capacity = 64",
    );
    std::fs::write(&path, changed).unwrap();
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.restart_required, ["history_capacity", "record_queue_capacity"]);
    assert_eq!(report.unchanged.len(), 2);
    // The running history still keeps its old capacity (the builder default).
    let g = engine.gauge("g").unwrap();
    for i in 0..20 {
        g.set(f64::from(i));
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    assert_eq!(engine.history("g", Duration::from_hours(1)).len(), 20);
}

#[test]
fn a_setting_the_next_start_would_refuse_makes_the_whole_reload_fail() {
    let clock = ManualClock::at_millis(T0);
    let path = file("restart_invalid", QUEUE_RULES);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    let before = rule_names(&engine);
    assert_eq!(before, ["queue_backlog", "queue_empty"]);
    // a valid rule change next to a capacity no engine accepts
    let changed = QUEUE_RULES
        .replace("default_alert_rules = false", "default_alert_rules = false\nhistory_capacity = 0")
        .replace("name = \"queue_empty\"", "name = \"queue_drained\"");
    std::fs::write(&path, &changed).unwrap();
    let err = engine.reload_config(&path).unwrap_err().to_string();
    assert!(err.contains("engine.history_capacity"), "{err}");
    assert!(err.contains("got 0"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert_eq!(rule_names(&engine), before, "nothing changed");
    // the same document is refused at a start too
    assert!(builder(&clock).config_file(&path).build().is_err());
}

#[test]
fn rules_added_in_code_survive_a_reload_that_does_not_name_them() {
    let clock = ManualClock::at_millis(T0);
    let path = file("code", QUEUE_RULES);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    engine
        .add_alert_rule(
            watchpost::alert::AlertRule::builder("code_rule", "m").above(1.0).build().unwrap(),
        )
        .unwrap();
    std::fs::write(&path, "[engine]\ndefault_alert_rules = false\n").unwrap();
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.removed, ["queue_backlog", "queue_empty"]);
    assert_eq!(rule_names(&engine), ["code_rule"]);
}

#[test]
fn silences_and_inhibit_rules_from_the_file_apply_and_reload() {
    let clock = ManualClock::at_millis(T0);
    let silence = r#"
[[silences]]
matchers = ['alertname="queue_empty"']
starts_at = "2026-01-01T00:00:00Z"
ends_at = "2026-01-02T00:00:00Z"
comment = "nightly drain"

[[inhibit_rules]]
source = ['alertname="queue_backlog"']
target = ['alertname="queue_empty"']
"#;
    let path = file("silences", &(QUEUE_RULES.to_owned() + silence));
    let engine = builder(&clock).config_file(&path).build().unwrap();
    assert_eq!(engine.silences().len(), 1);
    assert_eq!(engine.silences()[0].why(), "nightly drain");
    assert_eq!(engine.config().inhibit_rules.len(), 1);
    // Reloading the same file adds nothing twice.
    let report = engine.reload_config(&path).unwrap();
    assert_eq!((report.silences_added, report.silences_expired), (0, 0));
    assert_eq!(engine.silences().len(), 1);
    // Dropping the silence from the file expires it.
    std::fs::write(&path, QUEUE_RULES).unwrap();
    let report = engine.reload_config(&path).unwrap();
    assert_eq!(report.silences_expired, 1);
    assert!(engine.silences().iter().all(|s| !s.is_active(T0)));
}

#[cfg(feature = "notify")]
mod routes_and_receivers {
    use super::*;

    fn doc(token_file: &str) -> String {
        format!(
            r#"
[engine]
default_alert_rules = false

[route]
receiver = "ops"
group_by = ["alertname"]
group_wait = "0s"

[[route.routes]]
matchers = ['severity="critical"']
receiver = "pager"

[[receivers]]
kind = "webhook"
name = "ops"
url = "http://127.0.0.1:9/ops"
bearer_token = {{ file = "{token_file}" }}

[[receivers]]
kind = "slack"
name = "pager"
url = "https://hooks.slack.invalid/services/T000/B000/inline-secret"
"#
        )
    }

    #[test]
    fn a_route_tree_with_receivers_becomes_the_router_handler() {
        let clock = ManualClock::at_millis(T0);
        let token = file("token", "s3cret-token\n");
        let path = file("route", &doc(&token.display().to_string()));
        let engine = builder(&clock).config_file(&path).build().unwrap();
        let handlers: Vec<String> =
            engine.notification_stats().handlers.into_iter().map(|h| h.name).collect();
        assert_eq!(handlers, ["router"]);
        // Shown with the inline Slack URL redacted, the file reference kept.
        let shown = engine.effective_config().to_toml();
        assert!(!shown.contains("inline-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains(&token.display().to_string()), "{shown}");
        // A reload with another route reports a restart, it does not rebuild the router.
        std::fs::write(&path, doc(&token.display().to_string()).replace("\"0s\"", "\"30s\""))
            .unwrap();
        let report = engine.reload_config(&path).unwrap();
        assert_eq!(report.restart_required, ["route and receivers"]);
    }

    #[test]
    fn a_missing_secret_or_receiver_is_placed() {
        let text = doc("/nonexistent/watchpost-token")
            .replace("receiver = \"pager\"", "receiver = \"pagr\"");
        let err = watchpost::config::Config::from_toml_str(&text, "n.toml").unwrap_err();
        let Error::Config { problems, .. } = &err else { panic!("{err}") };
        assert_eq!(problems.len(), 2, "{err}");
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
        // The route tree names a receiver that does not exist.
        assert_eq!(problems[1].field, "route", "{err}");
        assert!(problems[1].message.contains("pagr"), "{err}");
        assert_eq!(problems[1].line, line_of("[route]"));
        // The webhook's token file cannot be read.
        assert_eq!(problems[0].field, "receivers[0].secret");
        assert!(problems[0].message.contains("/nonexistent/watchpost-token"), "{err}");
        assert_eq!(problems[0].line, line_of("[[receivers]]"));
    }
}

#[test]
fn a_yaml_file_loads_like_toml_and_places_type_errors() {
    let clock = ManualClock::at_millis(T0);
    let yaml = r"
engine:
  default_alert_rules: false
rules:
  - name: queue_backlog
    metric: queue_depth
    condition: { kind: threshold, aggregate: last, window: 5m, op: gt, value: 100.0 }
    for: 1m
";
    let dir = std::env::temp_dir().join(format!("watchpost-config-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("watchpost.yaml");
    std::fs::write(&path, yaml).unwrap();
    let engine = builder(&clock).config_file(&path).build().unwrap();
    // The same rule as the TOML document describes.
    let toml_config = watchpost::config::Config::from_toml_str(QUEUE_RULES, "q.toml").unwrap();
    assert_eq!(engine.config().rules[0], toml_config.rules[0]);

    std::fs::write(&path, yaml.replace("value: 100.0", "value: lots")).unwrap();
    let err = engine.reload_config(&path).unwrap_err();
    let Error::Config { problems, .. } = &err else { panic!("{err}") };
    // The rule's entry (line 5): the condition is read whole before its fields.
    assert_eq!(problems[0].line, Some(5), "{err}");
    assert!(problems[0].field.starts_with("rules[0].condition"), "{err}");
    assert!(problems[0].message.contains("lots"), "{err}");
}

const ONE_RULE: &str = r#"
[engine]
default_alert_rules = false

[[rules]]
name = "queue_backlog"
metric = "queue_depth"
matchers = ['queue="mail"']
condition = { kind = "threshold", aggregate = "last", window = "5m", op = "gt", value = 100.0 }
recovery = { kind = "threshold", aggregate = "last", window = "5m", op = "lt", value = 80.0 }
keep_firing_for = "10s"
labels = { team = "chat" }
title = "Backlog on {{labels.queue}}"
"#;

/// A reload sees any difference in a rule's definition, however small, and
/// only then restarts it; the same definition keeps its alert as it was.
#[test]
fn a_rule_counts_as_changed_when_any_part_differs_and_unchanged_only_when_identical() {
    let variants = [
        ("title", ONE_RULE.replace("Backlog on", "Backlog in")),
        ("message", ONE_RULE.to_owned() + "message = \"{{value}} waiting\"\n"),
        ("label", ONE_RULE.replace("team = \"chat\"", "team = \"ops\"")),
        ("extra label", ONE_RULE.replace("team = \"chat\"", "team = \"chat\", tier = \"1\"")),
        ("for", ONE_RULE.to_owned() + "for = \"1s\"\n"),
        ("keep_firing_for", ONE_RULE.replace("\"10s\"", "\"11s\"")),
        ("recovery", ONE_RULE.replace("value = 80.0", "value = 70.0")),
        ("m_of_n", ONE_RULE.to_owned() + "m_of_n = { m = 1, n = 2 }\n"),
        ("no_data", ONE_RULE.to_owned() + "no_data = \"keep_last\"\n"),
        ("severity", ONE_RULE.to_owned() + "severity = \"critical\"\n"),
        ("matcher", ONE_RULE.replace("queue=\"mail\"", "queue=~\"mail\"")),
        ("flap", ONE_RULE.to_owned() + "flap_detection = false\n"),
    ];
    for (what, text) in variants {
        let clock = ManualClock::at_millis(T0);
        let path = file("identity", ONE_RULE);
        let (tx, rx) = inbox();
        let engine = builder(&clock).config_file(&path).notifier("inbox", tx).build().unwrap();
        engine.gauge_with("queue_depth", &[("queue", "mail")]).unwrap().set(150.0);
        engine.flush().unwrap();
        assert_eq!(rx.try_iter().count(), 1, "{what}: fired once");

        // the same text: unchanged, still firing, nothing sent again
        clock.advance(Duration::from_secs(1));
        let report = engine.reload_config(&path).unwrap();
        assert_eq!(report.unchanged, ["queue_backlog"], "{what}");
        engine.flush().unwrap();
        let alert = engine.active_alerts().into_iter().next().unwrap();
        assert_eq!((alert.state, alert.firing_since_ms), (AlertState::Firing, Some(T0)), "{what}");
        assert_eq!(rx.try_iter().count(), 0, "{what}: an unchanged rule does not fire again");

        // one part different: changed, restarted
        std::fs::write(&path, &text).unwrap();
        let report = engine.reload_config(&path).unwrap();
        assert_eq!(report.changed, ["queue_backlog"], "{what}");
        assert!(report.unchanged.is_empty(), "{what}");
    }
}

/// The settings of the state directory, the dashboard and the notifier
/// queues come from `[engine]` like the others, checked by the same builder.
#[test]
fn state_dashboard_and_notifier_settings_load_from_the_file() {
    let clock = ManualClock::at_millis(T0);
    let dir = std::env::temp_dir().join(format!("watchpost-config-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = format!(
        r#"[engine]
default_alert_rules = false
system_source = false
summary_window = "30s"
dashboard_recent_points = 3
dashboard_statistics_window = "1m"
dashboard_recent_alert_events = 10
notifier_queue_capacity = 128
notification_flush_timeout = "2s"
notifier_shutdown_grace = "3s"
notifier_stuck_timeout = "20s"
state_dir = {dir:?}
state_write_delay = "0s"
history_snapshot_interval = "1m"
history_snapshots = false
"#
    );
    let path = file("state-settings", &settings);
    let engine = builder(&clock).config_file(&path).build().unwrap();
    let g = engine.gauge("g").unwrap();
    for i in 0..5 {
        g.set(f64::from(i));
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    assert_eq!(engine.config().engine.dashboard_recent_points, Some(3));
    // a change of any of them is reported as needing a restart
    std::fs::write(
        &path,
        settings.replace("dashboard_recent_points = 3", "dashboard_recent_points = 4"),
    )
    .unwrap();
    assert_eq!(engine.reload_config(&path).unwrap().restart_required, ["dashboard_recent_points"]);
    engine.shutdown().unwrap();
    // state_dir without history snapshots: alert state only
    assert!(dir.join("alerts.state").exists());
    assert!(!dir.join("history.snapshot").exists());

    // checked as code would be
    std::fs::write(
        &path,
        settings.replace("\"1m\"\nhistory_snapshots", "\"10ms\"\nhistory_snapshots"),
    )
    .unwrap();
    let err = builder(&clock).config_file(&path).build().unwrap_err().to_string();
    assert!(err.contains("history_snapshot_interval") && err.contains("10ms"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn performance_checks_come_from_the_file_with_durations_as_text() {
    use watchpost::analysis::{CheckKind, Severity, SummaryConfig};
    let clock = ManualClock::at_millis(T0);
    let path = file(
        "performance",
        r#"
[engine]
default_alert_rules = false

[engine.performance_checks]
anomaly_min_points = 5
capacity = "off"
forecast_support = { min_span = "10m" }

[[engine.performance_checks.checks]]
series = "queue_depth"
kind = { mean_above = { threshold = 50.0, severity = "critical" } }
issue = "queue too deep"
recommendation = "add consumers"

[[engine.performance_checks.checks]]
series = "disk_used"
kind = { exhaustion = { threshold = 90.0, critical_within = "2h", warning_within = "1d" } }
issue = "disk filling"
recommendation = "clean up"
"#,
    );
    let config = watchpost::config::Config::load(&path).unwrap();
    let checks = config.engine.performance_checks.as_ref().unwrap();
    // every field left out keeps its default
    let defaults = SummaryConfig::default();
    assert_eq!(checks.cpu_series, defaults.cpu_series);
    assert_eq!(checks.anomaly_min_points, 5);
    assert_eq!(checks.capacity, None);
    assert_eq!(checks.anomaly_severity, defaults.anomaly_severity);
    assert_eq!(checks.forecast_support.min_span, Duration::from_mins(10));
    assert_eq!(checks.forecast_support.min_r_squared, defaults.forecast_support.min_r_squared);
    assert_eq!(checks.checks.len(), 2);
    assert_eq!(
        checks.checks[1].kind,
        CheckKind::Exhaustion {
            threshold: 90.0,
            critical_within: Duration::from_hours(2),
            warning_within: Duration::from_hours(24),
        }
    );

    // the engine built from the file raises the file's check
    let engine = builder(&clock).config_file(&path).build().unwrap();
    engine.gauge("queue_depth").unwrap().set(80.0);
    engine.flush().unwrap();
    let issues = engine.dashboard().performance_summary.summary.issues;
    let issue = issues.iter().find(|i| i.series == "queue_depth").expect("the file's check");
    assert_eq!(issue.severity, Severity::Critical);
    assert!(issue.message.contains("queue too deep"), "{}", issue.message);

    // written back, the durations are text again and read the same
    let text = config.to_toml();
    assert!(text.contains("critical_within = \"2h\""), "{text}");
    assert!(text.contains("capacity = \"off\""), "{text}");
    let again = watchpost::config::Config::from_toml_str(&text, "again.toml").unwrap();
    assert_eq!(again.engine.performance_checks, config.engine.performance_checks);

    // a bad value names where it is
    let bad = file(
        "performance_bad",
        "[engine.performance_checks]\nforecast_support = { min_span = \"ten minutes\" }\n",
    );
    let err = watchpost::config::Config::load(&bad).unwrap_err().to_string();
    assert!(err.contains("watchpost.toml:2"), "{err}");
}
