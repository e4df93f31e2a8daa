//! Memory per series, measured by a counting global allocator (this test
//! binary's own, so the rest of the suite runs on the plain allocator).
#![allow(clippy::cast_precision_loss, missing_docs)]

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cap::Cap;
use watchpost::{Engine, EngineBuilder, ManualClock};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// 2026-01-01T00:00:00Z in milliseconds.
const T0: i64 = 1_767_225_600_000;
const SERIES: usize = 400;

/// The tests share the counting allocator: they run one at a time, or each
/// would count what the other allocates.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Heap bytes held per series once `SERIES` recorded series each have
/// `samples` samples (history full at the default capacity of 1 000).
fn bytes_per_series(configure: impl FnOnce(EngineBuilder) -> EngineBuilder, samples: u32) -> f64 {
    let clock = ManualClock::at_millis(T0);
    let engine = configure(
        Engine::builder()
            .clock(clock.clone())
            .without_system_source()
            .sample_interval(Duration::from_hours(24)),
    )
    .build()
    .unwrap();
    // Warm up what does not grow with the series: the worker's ingest batch.
    let warm = engine.recorder("warm_up", &[]).unwrap();
    for i in 0..20_000 {
        warm.record(f64::from(i % 7));
    }
    engine.flush().unwrap();
    let names: Vec<String> = (0..SERIES).map(|i| format!("room-{i:04}")).collect();
    let before = ALLOCATOR.allocated();
    {
        let recorders: Vec<_> =
            names.iter().map(|n| engine.recorder("room_users", &[("room", n)]).unwrap()).collect();
        for t in 0..samples {
            for (i, r) in recorders.iter().enumerate() {
                // a steady series with a little texture: no anomaly storm
                r.record(100.0 + ((t as usize + i) % 5) as f64);
            }
            clock.advance(Duration::from_secs(1));
            if t % 100 == 99 {
                engine.flush().unwrap();
            }
        }
        engine.flush().unwrap();
    }
    let after = ALLOCATOR.allocated();
    assert_eq!(engine.stats().samples_dropped, 0, "the queue must not overflow here");
    (after.saturating_sub(before)) as f64 / SERIES as f64
}

#[test]
fn memory_per_series_is_bounded_and_documented() {
    let _serial = serial();
    let registered = bytes_per_series(|b| b, 0);
    let with_detector = bytes_per_series(|b| b, 1_000);
    let without = bytes_per_series(EngineBuilder::without_anomaly_detection, 1_000);
    let short_history = bytes_per_series(|b| b.history_capacity(100), 1_000);
    let short_without =
        bytes_per_series(|b| b.without_anomaly_detection().history_capacity(100), 1_000);
    eprintln!(
        "bytes per series with a full history of 1 000 samples: {with_detector:.0} with the \
         default detector, {without:.0} without; history of 100: {short_history:.0} with the \
         detector, {short_without:.0} without; registered, no sample yet: {registered:.0}"
    );
    // docs/reliability.md quotes these figures (about 31 000 and 13 600
    // bytes); the bounds leave room for allocator rounding, not for a new
    // per-series structure.
    assert!(with_detector < 36_000.0, "{with_detector}");
    assert!(without < 15_000.0, "{without}");
    assert!(registered < 1_000.0, "{registered}");
    // Without a detector only the rings grow with the capacity: 1 024 slots
    // instead of 128, 12 bytes each (and a little more for the engine's own
    // series that get their first sample meanwhile: 16-byte slots would be
    // over 14 300).
    let ring = without - short_without;
    assert!(ring > 896.0 * 12.0 && ring < 12_000.0, "{ring}");
    // With one, 8 bytes a slot of annotations too (896 × 20 bytes), and the
    // engine's detection state differs with how much it has seen, by up to
    // about 4 KiB.
    assert!(with_detector - short_history > 17_500.0, "{short_history}");
    assert!(with_detector - short_history < 22_500.0, "{short_history}");
}

#[test]
fn the_total_series_cap_bounds_memory_whatever_the_label_values() {
    let _serial = serial();
    let clock = ManualClock::at_millis(T0);
    let engine = Engine::builder()
        .clock(clock)
        .without_system_source()
        .sample_interval(Duration::from_hours(24))
        .total_series_cap(1_000)
        .build()
        .unwrap();
    engine.flush().unwrap();
    let before = ALLOCATOR.allocated();
    // 1 000 names x 1 000 values, each with a 1 KiB label value: without the
    // cap this is a million series and gigabytes of keys.
    let value = "v".repeat(1_000);
    let mut refused = 0u64;
    for name in 0..1_000 {
        for i in 0..1_000 {
            let v = format!("{i:04}{value}");
            if engine.record(&format!("m{name}"), &[("id", &v)], 1.0).is_err() {
                refused += 1;
            }
        }
    }
    engine.flush().unwrap();
    let grown = ALLOCATOR.allocated().saturating_sub(before);
    let stats = engine.stats();
    assert_eq!(stats.series_count, 1_000);
    assert_eq!(stats.series_rejected_by_reason.total_series_cap, refused);
    assert!(refused > 998_000, "{refused}");
    eprintln!("1 000 000 registrations against a cap of 1 000: {grown} bytes held");
    // Each series holds its ring (allocated whole on its first sample), its
    // detector and its key: about 100 KB at most here, never more series.
    assert!(grown < 1_000 * 100_000, "{grown} bytes for at most 1 000 series");
}
