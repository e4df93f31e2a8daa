//! Prometheus alerting-rule files through the importer. The files under
//! `tests/data/prometheus_rules/` are checked by `promtool check rules` (the
//! oracle that they are valid Prometheus) when promtool is installed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use watchpost::alert::{AlertState, Severity};
use watchpost::config::{Config, import_prometheus_rules};
use watchpost::{Error, ManualClock};

use crate::util::{T0, builder};

fn data(name: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/prometheus_rules").join(name);
    (std::fs::read_to_string(&path).unwrap(), path.display().to_string())
}

#[test]
fn promtool_accepts_every_rule_file() {
    let Ok(out) = Command::new("promtool").arg("--version").output() else {
        eprintln!("SKIP: promtool is not installed (Debian package prometheus)");
        return;
    };
    assert!(out.status.success());
    for name in ["node_cpu.yml", "node_memory.yml", "node_disk.yml", "unsupported.yml"] {
        let (_, path) = data(name);
        let out = Command::new("promtool").args(["check", "rules", &path]).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The scenario of an_imported_rule_fires_after_its_for_in_an_engine, in Prometheus.
    let (_, path) = data("node_memory_test.yml");
    let out = Command::new("promtool").args(["test", "rules", &path]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn mixin_style_files_import_with_their_thresholds_windows_and_severities() {
    let (text, file) = data("node_cpu.yml");
    let import = import_prometheus_rules(&text, &file).unwrap();
    let names: Vec<&str> = import.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["NodeHighCpuBusy", "NodeHighCpuBusy_critical", "NodeHighLoad", "NodeCpuStealHigh"]
    );
    let rules: Vec<_> = import.rules.iter().map(|s| s.to_rule().unwrap()).collect();
    assert_eq!(rules[0].condition().to_string(), "avg over 300s > 90");
    assert_eq!(rules[0].pending(), Duration::from_mins(15));
    assert_eq!(rules[0].severity(), Severity::Warning);
    assert_eq!(rules[1].condition().to_string(), "avg over 300s > 97");
    assert_eq!(rules[1].severity(), Severity::Critical);
    assert_eq!(rules[2].condition().to_string(), "last over 300s >= 16");
    assert_eq!(rules[2].keep_firing_for(), Duration::from_mins(10));
    assert_eq!(
        rules[2].matchers().iter().map(ToString::to_string).collect::<Vec<_>>(),
        [r#"job="node""#, r#"instance!~"batch-.*""#]
    );
    assert_eq!(rules[2].labels(), [("team".to_owned(), "platform".to_owned())]);
    assert_eq!(rules[3].condition().to_string(), "rate over 300s > 0.1");
    assert_eq!(
        import.rules[0].message,
        "CPU on {{labels.instance}} has been {{value}}% busy for 15 minutes."
    );
    // runbook_url has no counterpart: reported, not silently lost.
    assert!(import.notes.iter().any(|n| n.contains("runbook_url")), "{:?}", import.notes);
    assert!(import.notes.iter().any(|n| n.contains("renamed")), "{:?}", import.notes);

    let (text, file) = data("node_memory.yml");
    let import = import_prometheus_rules(&text, &file).unwrap();
    let swap =
        import.rules.iter().find(|r| r.name == "NodeSwapAlmostFull").unwrap().to_rule().unwrap();
    // `5 > min_over_time(...)` turned around.
    assert_eq!(swap.condition().to_string(), "min over 600s < 5");
    let oom = import.rules.iter().find(|r| r.name == "NodeOomKills").unwrap().to_rule().unwrap();
    assert_eq!(
        (oom.condition().to_string().as_str(), oom.severity()),
        ("sum over 3600s > 0", Severity::Error)
    );

    let (text, file) = data("node_disk.yml");
    let import = import_prometheus_rules(&text, &file).unwrap();
    let io =
        import.rules.iter().find(|r| r.name == "NodeDiskIOSaturation").unwrap().to_rule().unwrap();
    assert_eq!(io.condition().to_string(), "quantile(0.9) over 1800s > 10");
    assert_eq!(import.rules.len(), 4);
}

#[test]
fn rules_outside_the_subset_are_each_refused_with_the_reason_and_line() {
    let (text, file) = data("unsupported.yml");
    let err = import_prometheus_rules(&text, &file).unwrap_err();
    let Error::Config { problems, .. } = &err else { panic!("{err}") };
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
    let expect = [
        ("record: instance:node_cpu", "recording rule"),
        ("alert: NodeFilesystemSpaceFillingUp", "`predict_linear`"),
        ("alert: NodeMemoryLow", "arithmetic operator `/`"),
        ("alert: TargetDown", "aggregation `sum` grouped with `by`"),
        ("alert: NodeClockNotSynchronising", "set operator `and`"),
    ];
    assert_eq!(problems.len(), expect.len(), "{err}");
    for (p, (at, why)) in problems.iter().zip(expect) {
        assert_eq!(p.line, line_of(at), "{p:?}");
        assert!(p.message.contains(why), "{why}: {p:?}");
        if !at.starts_with("record") {
            assert!(p.message.contains("expr \""), "the expression is quoted: {p:?}");
        }
    }
}

#[test]
fn an_imported_rule_fires_after_its_for_in_an_engine() {
    let (text, file) = data("node_memory.yml");
    let mut config = Config::default();
    config.rules = import_prometheus_rules(&text, &file).unwrap().rules;
    config.engine.default_alert_rules = Some(false);
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).config(config).build().unwrap();
    let used = engine
        .gauge_with("node_memory_used_percent", &[("job", "node"), ("instance", "a")])
        .unwrap();
    let other_job =
        engine.gauge_with("node_memory_used_percent", &[("job", "x"), ("instance", "a")]).unwrap();
    let state = |e: &watchpost::Engine| {
        e.active_alerts()
            .into_iter()
            .filter(|a| a.rule == "NodeMemoryHighUtilization")
            .map(|a| (a.series.labels().get("job").unwrap_or("").to_owned(), a.state))
            .collect::<Vec<_>>()
    };
    for minute in 0..=15 {
        used.set(95.0);
        other_job.set(95.0);
        engine.flush().unwrap();
        let expected = if minute < 15 { AlertState::Pending } else { AlertState::Firing };
        // Only the job="node" series is selected.
        assert_eq!(state(&engine), [("node".to_owned(), expected)], "minute {minute}");
        clock.advance(Duration::from_mins(1));
    }
    let firing =
        engine.active_alerts().into_iter().find(|a| a.state == AlertState::Firing).unwrap();
    assert_eq!(firing.title, "Host is running out of memory.");
    assert!(firing.message.contains("at a, has been above 90%"), "{}", firing.message);
    assert!(firing.message.contains("currently at 95%"), "{}", firing.message);
}
