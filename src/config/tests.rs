use std::time::Duration;

use super::*;
use crate::alert::{AlertRule, CompareOp, FlapDetection, Matcher, NoDataPolicy, Severity};
use crate::analysis::{CrossDirection, ForecastCondition};

fn problems(err: Error) -> Vec<ConfigProblem> {
    match err {
        Error::Config { problems, .. } => problems,
        other => panic!("not a config error: {other}"),
    }
}

/// Rules built in code with every setting, one per condition kind.
fn code_rules() -> Vec<AlertRule> {
    let h = Duration::from_hours(1);
    vec![
        AlertRule::builder("p99_latency_high", "request_latency_seconds")
            .label_eq("route", "/send")
            .matcher(Matcher::not_regex("room", "test-.*").unwrap())
            .threshold(
                crate::alert::Aggregate::Quantile(0.99),
                Duration::from_mins(5),
                CompareOp::Gt,
                0.25,
            )
            .recover_below(0.2)
            .m_of_n(3, 5)
            .pending_for(Duration::from_secs(90))
            .keep_firing_for(Duration::from_mins(2))
            .no_data(NoDataPolicy::KeepLast)
            .severity(Severity::Error)
            .family("latency")
            .label("team", "chat")
            .title("Slow {{labels.route}}")
            .message("p99 is {{value}} s (limit {{threshold}} s)")
            .repeat_every(Duration::from_hours(1))
            .flap_detection(FlapDetection::new(25.0, 50.0).unwrap())
            .build()
            .unwrap(),
        AlertRule::builder("heartbeat_missing", "chat_heartbeat")
            .absent_for(Duration::from_secs(30))
            .without_flap_detection()
            .build()
            .unwrap(),
        AlertRule::builder("disk_fills_soon", "system_disk_usage")
            .forecast(
                6 * h,
                ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h).unwrap(),
            )
            .build()
            .unwrap(),
        AlertRule::builder("users_unusual", "active_users")
            .anomaly_rate_above(Duration::from_mins(5), 0.2)
            .build()
            .unwrap(),
        AlertRule::builder("band", "active_users")
            .outside_expected_band(Duration::from_mins(5))
            .severity(Severity::Info)
            .build()
            .unwrap(),
    ]
}

#[test]
fn code_built_rules_round_trip_through_toml() {
    let config = Config {
        rules: code_rules().iter().map(RuleSpec::from_rule).collect(),
        ..Config::default()
    };
    let text = config.to_toml();
    let back = Config::from_toml_str(&text, "round.toml").unwrap();
    assert_eq!(back, config, "{text}");
    for (rule, spec) in code_rules().iter().zip(&back.rules) {
        let rebuilt = spec.to_rule().unwrap();
        // The spec is the rule's canonical form: it rebuilds an equal rule,
        // so reloads and saved state can tell rules apart by it.
        assert_eq!(rebuilt, *rule);
        // Every observable setting survives, including the derived recovery condition.
        assert_eq!(rebuilt.condition(), rule.condition());
        assert_eq!(rebuilt.recovery(), rule.recovery());
        assert_eq!(rebuilt.pending(), rule.pending());
        assert_eq!(rebuilt.keep_firing_for(), rule.keep_firing_for());
        assert_eq!(rebuilt.m_of_n, rule.m_of_n);
        assert_eq!(rebuilt.flap, rule.flap);
        assert_eq!(rebuilt.repeat_ms, rule.repeat_ms);
        assert_eq!(rebuilt.labels(), rule.labels());
        assert_eq!(rebuilt.family(), rule.family());
        assert_eq!(rebuilt.title, rule.title);
        assert_eq!(
            rebuilt.matchers().iter().map(ToString::to_string).collect::<Vec<_>>(),
            rule.matchers().iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
    // Humane units on the wire, not {secs, nanos}.
    assert!(text.contains("for = \"1m 30s\""), "{text}");
    assert!(text.contains("window = \"6h\""), "{text}");
}

#[test]
fn rules_round_trip_through_json_too() {
    for rule in code_rules() {
        let json = serde_json::to_string(&rule).unwrap();
        let back: AlertRule = serde_json::from_str(&json).unwrap();
        assert_eq!(RuleSpec::from_rule(&back), RuleSpec::from_rule(&rule), "{json}");
    }
}

#[test]
fn deserializing_goes_through_the_builder_checks() {
    // m > n is refused by RuleBuilder::build; so is it from a document.
    let json = r#"{"name":"a","metric":"m","condition":{"kind":"absent","duration":"1m"},
                   "m_of_n":{"m":6,"n":5}}"#;
    let err = serde_json::from_str::<AlertRule>(json).unwrap_err().to_string();
    assert!(err.contains('6') && err.contains('5'), "{err}");
}

#[test]
fn every_bad_rule_is_reported_with_its_line_and_column() {
    let text = r#"# watchpost rules
[[rules]]
name = "good"
metric = "m"
condition = { kind = "absent", duration = "1m" }

[[rules]]
name = "bad_regex"
metric = "m"
matchers = ['room=~"gen("']
condition = { kind = "absent", duration = "1m" }

[[rules]]
name = "bad_template"
metric = "m"
title = "{{nope}}"
condition = { kind = "absent", duration = "1m" }

[[rules]]
name = "good"
metric = "m2"
condition = { kind = "absent", duration = "1m" }
"#;
    let p = problems(Config::from_toml_str(text, "r.toml").unwrap_err());
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!((p[0].line, p[0].column), (Some(7), Some(1)));
    assert!(p[0].field.starts_with("rules[1]"), "{:?}", p[0]);
    assert!(p[0].message.contains("gen("), "{:?}", p[0]);
    assert_eq!(p[1].line, Some(13));
    assert!(p[1].message.contains("nope"), "{:?}", p[1]);
    assert_eq!(p[2].line, Some(19));
    assert_eq!(p[2].field, "rules[3].name");
    assert!(p[2].message.contains("line 2"), "{:?}", p[2]);
}

#[test]
fn a_type_error_names_the_field_path_line_and_value() {
    let text = "[[rules]]\nname = \"a\"\nmetric = \"m\"\ncondition = { kind = \"absent\", duration = \"5 parsecs\" }\n";
    let err = Config::from_toml_str(text, "t.toml").unwrap_err();
    let p = problems(err);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(4), "{:?}", p[0]);
    assert_eq!((p[0].field.as_str(), p[0].column), ("rules[0].condition", Some(13)), "{:?}", p[0]);
    assert!(p[0].message.contains("parsecs"), "{:?}", p[0]);
}

#[test]
fn unknown_fields_are_errors_not_ignored() {
    let text = "[engine]\nsample_intervall = \"5s\"\n";
    let p = problems(Config::from_toml_str(text, "t.toml").unwrap_err());
    assert_eq!(p[0].line, Some(2), "{:?}", p[0]);
    assert!(p[0].message.contains("sample_intervall"), "{:?}", p[0]);
}

#[test]
fn syntax_errors_have_a_place() {
    let p = problems(Config::from_toml_str("[[rules]\nname = 1", "t.toml").unwrap_err());
    assert_eq!(p[0].line, Some(1), "{:?}", p[0]);
}

#[test]
fn zero_repeat_interval_is_refused_off_is_not() {
    let p = problems(
        Config::from_toml_str("[engine]\nrepeat_interval = { critical = \"0s\" }\n", "t.toml")
            .unwrap_err(),
    );
    assert_eq!(p[0].field, "engine.repeat_interval.critical");
    let ok =
        Config::from_toml_str("[engine]\nrepeat_interval = { critical = \"off\" }\n", "t.toml");
    assert_eq!(ok.unwrap().engine.repeat_interval[&Severity::Critical], RepeatSetting(None));
}

#[test]
fn silences_and_inhibit_rules_are_checked_by_their_constructors() {
    let text = r#"
[[inhibit_rules]]
source = ['alertname="host_down"']
target = ['severity=~"warn("']

[[silences]]
matchers = []
starts_at = "2026-01-01T00:00:00Z"
ends_at = "2026-01-02T00:00:00Z"
"#;
    let p = problems(Config::from_toml_str(text, "t.toml").unwrap_err());
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!((p[0].field.as_str(), p[0].line), ("inhibit_rules[0].matcher", Some(2)));
    assert_eq!((p[1].field.as_str(), p[1].line), ("silences[0].silence.matchers", Some(6)));
}

#[test]
fn detector_parameters_in_a_file_build_what_code_builds() {
    use crate::detect::{DetectorSpec, EnsembleConfig, RobustZConfig, SeasonalConfig};
    let text = r#"
[detectors]
queue_depth = "ewma"
heartbeat = "none"

[detectors.message_latency_p90]
kind = "robust_z"
window = 64
sigmas = 5.0

[detectors.active_users]
kind = "ensemble"
refractory = 50
weekly = false
seasonal = { period_ms = 3600000, buckets = 60 }
"#;
    let config = Config::from_toml_str(text, "d.toml").unwrap();
    let spec = |m: &str| config.detectors[m].spec().cloned();
    assert_eq!(
        spec("message_latency_p90"),
        Some(DetectorSpec::RobustZ(
            RobustZConfig::default().with_window(64).unwrap().with_sigmas(5.0).unwrap()
        ))
    );
    assert_eq!(
        spec("active_users"),
        Some(DetectorSpec::Ensemble(
            EnsembleConfig::default().with_refractory(50).unwrap().without_weekly().with_seasonal(
                SeasonalConfig::default()
                    .with_period_ms(3_600_000)
                    .unwrap()
                    .with_buckets(60)
                    .unwrap()
            )
        ))
    );
    assert_eq!(spec("queue_depth"), Some("ewma".parse().unwrap()));
    assert_eq!(spec("heartbeat"), None);
    // written back as written, and read again to the same thing
    let back = Config::from_toml_str(&config.to_toml(), "back.toml").unwrap();
    assert_eq!(back, config, "{}", config.to_toml());
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["detectors"]["message_latency_p90"]["window"], 64);
    assert_eq!(json["detectors"]["queue_depth"], "ewma");
    // YAML says the same
    let yaml = "detectors:\n  message_latency_p90: { kind: robust_z, window: 64, sigmas: 5.0 }\n";
    let y = Config::from_yaml_str(yaml, "d.yml").unwrap();
    assert_eq!(y.detectors["message_latency_p90"], config.detectors["message_latency_p90"]);
}

#[test]
fn a_bad_detector_parameter_names_file_line_field_and_value() {
    let text = r#"[detectors]
queue_depth = "ewma"

[detectors.message_latency_p90]
kind = "robust_z"
sigmas = 5.0
window = 2

[detectors.active_users]
kind = "ensemble"
likelihood = { short_window = 5, long_window = 10 }
"#;
    let err = Config::from_toml_str(text, "d.toml").unwrap_err();
    let msg = err.to_string();
    let p = problems(err);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].field, "detectors.active_users.likelihood.long_window");
    assert_eq!((p[0].line, p[0].column), (Some(11), Some(34)), "{:?}", p[0]);
    assert_eq!(p[0].message, "must be in 32..=1000000, got 10");
    assert_eq!(p[1].field, "detectors.message_latency_p90.window");
    assert_eq!((p[1].line, p[1].column), (Some(7), Some(1)), "{:?}", p[1]);
    assert_eq!(p[1].message, "must be in 8..=8192, got 2");
    assert!(
        msg.contains(
            "d.toml:7:1: detectors.message_latency_p90.window: must be in 8..=8192, got 2"
        ),
        "{msg}"
    );

    let p = problems(
        Config::from_toml_str("[detectors]\nq = { kind = \"ewma\", spam = 1 }\n", "d.toml")
            .unwrap_err(),
    );
    assert_eq!(p[0].line, Some(2), "{:?}", p[0]);
    assert!(p[0].message.contains("spam"), "{:?}", p[0]);
    let p = problems(Config::from_toml_str("[detectors]\nq = \"zscore\"\n", "d.toml").unwrap_err());
    assert_eq!((p[0].field.as_str(), p[0].line), ("detectors.q", Some(2)), "{:?}", p[0]);
    assert!(p[0].message.contains("\"zscore\""), "{:?}", p[0]);
    let p = problems(
        Config::from_yaml_str("detectors:\n  q: { kind: ewma, span: 0.5 }\n", "d.yml").unwrap_err(),
    );
    assert!(p[0].field.starts_with("detectors.q"), "{:?}", p[0]);
    assert!(p[0].message.contains("span: must be in [1, 1000000], got 0.5"), "{:?}", p[0]);
}

#[test]
fn domains_load_through_domain_new_with_a_place_for_errors() {
    let text = "[domains]\ncache_hit_ratio = { lower = 0.0, upper = 1.0 }\nqueue_depth = { lower = 0.0 }\n";
    let config = Config::from_toml_str(text, "d.toml").unwrap();
    let d = config.domains["cache_hit_ratio"].to_domain().unwrap();
    assert_eq!((d.lower(), d.upper()), (0.0, 1.0));
    assert_eq!(config.domains["queue_depth"].to_domain().unwrap().upper(), f64::INFINITY);
    assert_eq!(Config::from_toml_str(&config.to_toml(), "back.toml").unwrap(), config);
    let bad = "[domains]\nok = { lower = 0.0 }\nratio = { lower = 1.0, upper = 0.0 }\n";
    let p = problems(Config::from_toml_str(bad, "d.toml").unwrap_err());
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, Some(3), "{:?}", p[0]);
    assert!(p[0].field.starts_with("domains.ratio"), "{:?}", p[0]);
    assert!(p[0].message.contains("[1, 0]"), "{:?}", p[0]);
    // the engine takes them like metric_domain in code
    let engine = crate::Engine::builder().without_system_source().config(config).build();
    assert!(engine.is_ok());
}
