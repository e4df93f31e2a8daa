//! Alerting through the public API: rules, defaults, noise control, audit trail and wire types.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use watchpost::alert::{
    AlertEventView, AlertManager, AlertRule, AlertState, AlertView, FnNotifier, JsonLinesNotifier,
    Matcher, MemoryView, Notification, NotificationKind, Notifier, SeriesView, Severity, Silence,
};
use watchpost::{Sample, SeriesKey};

const SEC: i64 = 1_000;

/// A `SeriesView` written the way an engine would: a map of ring-like vectors.
#[derive(Default)]
struct History(BTreeMap<SeriesKey, Vec<Sample>>);

impl History {
    fn record(&mut self, key: &SeriesKey, t: i64, v: f64) {
        self.0.entry(key.clone()).or_default().push(Sample::new(t, v));
    }
}

impl SeriesView for History {
    fn series_named(&self, name: &str) -> Vec<SeriesKey> {
        self.0.keys().filter(|k| k.name() == name).cloned().collect()
    }
    fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
        self.0.get(key).map_or_else(Vec::new, |s| {
            s.iter().copied().filter(|x| x.timestamp_ms >= since_ms).collect()
        })
    }
}

#[test]
fn default_rules_over_a_custom_view_with_an_audit_trail() -> watchpost::Result<()> {
    let mut mgr = AlertManager::with_default_rules();
    let audit = JsonLinesNotifier::new(Vec::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let closure = FnNotifier(move |n: &Notification| sink.lock().push((n.rule.clone(), n.kind)));
    let handlers: Vec<&dyn Notifier> = vec![&audit, &closure];

    let cpu = SeriesKey::new("system_cpu_usage", &[("host", "chat-1")])?;
    let disk = SeriesKey::new("system_disk_usage", &[("mount", "/var")])?;
    let mut view = History::default();
    // One sample every 5 minutes: the defaults average the last minute (here
    // the newest sample) and wait 2 minutes (disk: 5) before firing.
    let script =
        [(0, 50.0, 91.0), (1, 85.0, 91.0), (2, 97.0, 80.0), (3, 97.0, 80.0), (4, 40.0, 80.0)];
    for (step, cpu_v, disk_v) in script {
        let t = step * 300 * SEC;
        view.record(&cpu, t, cpu_v);
        view.record(&disk, t, disk_v);
        for n in mgr.evaluate(t, &view) {
            for h in &handlers {
                h.notify(&n).map_err(|e| watchpost::Error::InvalidConfig {
                    field: "test",
                    reason: e.to_string(),
                })?;
            }
        }
    }
    let seen = seen.lock().clone();
    let expect: Vec<(String, NotificationKind)> = [
        ("disk_usage_warning", NotificationKind::Firing), // 5 min at 91
        // same evaluation: the resolve first (cause order), then the firing
        ("disk_usage_warning", NotificationKind::Resolved),
        ("cpu_usage_warning", NotificationKind::Firing), // 5 min above 80
        ("cpu_usage_critical", NotificationKind::Firing), // 5 min above 95
        ("cpu_usage_warning", NotificationKind::Resolved), // same evaluation, rule order
        ("cpu_usage_critical", NotificationKind::Resolved),
    ]
    .into_iter()
    .map(|(r, k)| (r.to_owned(), k))
    .collect();
    assert_eq!(seen, expect);

    // The audit trail reads back into the same notifications.
    let text = String::from_utf8(audit.into_inner()).expect("utf-8");
    let back: Vec<Notification> =
        text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(back.len(), 6);
    let crit_resolved = &back[5];
    let r = crit_resolved.resolution.expect("resolve carries its resolution");
    assert_eq!((r.duration_ms, r.peak_value, r.last_value), (300 * SEC, Some(97.0), Some(40.0)));
    assert_eq!(crit_resolved.labels["host"], "chat-1");
    Ok(())
}

#[test]
fn users_replace_and_drop_defaults() -> watchpost::Result<()> {
    let mut mgr = AlertManager::with_default_rules();
    mgr.remove_rule("disk_usage_warning", 0).expect("default exists");
    mgr.replace_rule(
        AlertRule::builder("memory_usage_warning", "system_memory_usage")
            .above(70.0)
            .pending_for(Duration::from_secs(30))
            .build()?,
        0,
    );
    let mut view = MemoryView::new();
    let mem = SeriesKey::new("system_memory_usage", &[])?;
    let disk = SeriesKey::new("system_disk_usage", &[])?;
    view.push(disk, 0, 99.0);
    view.push(mem.clone(), 0, 75.0);
    assert!(mgr.evaluate(0, &view).is_empty());
    view.push(mem, 30 * SEC, 76.0);
    let out = mgr.evaluate(30 * SEC, &view);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule, "memory_usage_warning");
    Ok(())
}

#[test]
fn silences_are_created_listed_and_expired() -> watchpost::Result<()> {
    let mut mgr = AlertManager::with_default_rules();
    let matcher: Matcher = r#"host=~"chat-.*""#.parse()?;
    let id = mgr.add_silence(Silence::new(vec![matcher], 0, 3_600 * SEC)?.comment("deploy"))?;
    assert_eq!(mgr.silences().len(), 1);
    assert_eq!(mgr.silences()[0].why(), "deploy");

    let mut view = MemoryView::new();
    let cpu = SeriesKey::new("system_cpu_usage", &[("host", "chat-2")])?;
    view.push(cpu.clone(), 0, 90.0);
    assert!(mgr.evaluate(0, &view).is_empty()); // pending: the default waits 2 minutes
    view.push(cpu.clone(), 120 * SEC, 90.0);
    assert!(mgr.evaluate(120 * SEC, &view).is_empty());
    let alert = &mgr.active_alerts()[0];
    assert_eq!((alert.state, alert.silenced_by), (AlertState::Firing, Some(id)));

    assert!(mgr.expire_silence(id, 180 * SEC));
    view.push(cpu, 180 * SEC, 90.0);
    let out = mgr.evaluate(180 * SEC, &view);
    assert_eq!(out[0].kind, NotificationKind::Firing);
    Ok(())
}

#[test]
fn dashboard_wire_types_keep_seed_fields() -> Result<(), Box<dyn std::error::Error>> {
    let mut mgr = AlertManager::new(vec![
        AlertRule::builder("room_busy", "messages_per_second")
            .above(100.0)
            .severity(Severity::Error)
            .title("Room {{labels.room}} busy")
            .message("{{value}} msg/s > {{threshold}}")
            .build()?,
    ])?;
    let mut view = MemoryView::new();
    view.push(SeriesKey::new("messages_per_second", &[("room", "general")])?, 5 * SEC, 120.0);
    mgr.evaluate(5 * SEC, &view);

    let active: Vec<AlertView> = mgr.active_alerts().iter().map(AlertView::from).collect();
    let json = serde_json::to_value(&active)?;
    let a = &json[0];
    for field in [
        "id",
        "title",
        "message",
        "metric_name",
        "current_value",
        "threshold",
        "labels",
        "timestamp",
        "state",
    ] {
        assert!(a.get(field).is_some(), "missing {field} in {a}");
    }
    assert_eq!(a["labels"]["severity"], "error");
    for redundant in ["level", "resolved"] {
        assert!(a.get(redundant).is_none(), "{redundant} in {a}");
    }
    assert_eq!(a["state"], "firing");
    assert_eq!(a["title"], "Room general busy");
    assert_eq!(a["message"], "120 msg/s > 100");
    assert_eq!(a["timestamp"], "1970-01-01T00:00:05Z");

    let events: Vec<AlertEventView> =
        mgr.history_since(0).iter().map(AlertEventView::from).collect();
    let back: Vec<AlertEventView> = serde_json::from_str(&serde_json::to_string(&events)?)?;
    assert_eq!(back, events);
    assert_eq!(events[0].event, watchpost::alert::EventKind::StateChanged);
    assert_eq!(events[0].state, AlertState::Firing);
    Ok(())
}
