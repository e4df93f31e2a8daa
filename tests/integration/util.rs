use std::time::Duration;

use watchpost::alert::{AlertRule, Condition, Severity};
use watchpost::{Engine, EngineBuilder, ManualClock};

/// 2026-01-01T00:00:00Z in milliseconds.
pub const T0: i64 = 1_767_225_600_000;

/// A builder for deterministic tests: manual clock at `T0`, no system
/// source, and a sample interval so long that only `flush()` samples.
pub fn builder(clock: &ManualClock) -> EngineBuilder {
    Engine::builder()
        .clock(clock.clone())
        .without_system_source()
        .sample_interval(Duration::from_hours(24))
}

/// A test engine ([`builder`]) with [`eager_host_rules`].
pub fn engine() -> (Engine, ManualClock) {
    let clock = ManualClock::at_millis(T0);
    (eager(builder(&clock)).build().expect("valid config"), clock)
}

/// The default host rules with their names, thresholds, recoveries,
/// severities and titles, but on the newest sample and without `for`, so one
/// `flush()` fires them. Engine tests that use them exercise delivery, muting
/// and the API; the defaults' own timing (a 1-minute average held for
/// minutes) is tested beside them.
pub fn eager_host_rules() -> Vec<AlertRule> {
    watchpost::alert::default_rules()
        .iter()
        .map(|d| {
            let level_of = |c: Option<&Condition>| match c {
                Some(Condition::Threshold { value, .. }) => *value,
                other => panic!("default rules compare thresholds, not {other:?}"),
            };
            let (limit, recover) = (level_of(Some(d.condition())), level_of(d.recovery()));
            let (level, what) = match (d.severity(), d.metric()) {
                (Severity::Critical, m) => ("Critical", m),
                (_, m) => ("High", m),
            };
            let what = what.trim_start_matches("system_").trim_end_matches("_usage");
            AlertRule::builder(d.name(), d.metric())
                .above(limit)
                .recover_below(recover)
                .severity(d.severity())
                .title(format!("{level} {what} usage"))
                .build()
                .expect("valid rule")
        })
        .collect()
}

/// Replaces the default host rules of `b` by [`eager_host_rules`] (by name).
pub fn eager(b: EngineBuilder) -> EngineBuilder {
    eager_host_rules().into_iter().fold(b, EngineBuilder::alert_rule)
}

#[track_caller]
pub fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{actual} != {expected}");
}
