use std::time::Duration;

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

pub fn engine() -> (Engine, ManualClock) {
    let clock = ManualClock::at_millis(T0);
    (builder(&clock).build().expect("valid config"), clock)
}

#[track_caller]
pub fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{actual} != {expected}");
}
