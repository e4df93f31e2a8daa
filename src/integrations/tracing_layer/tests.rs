//! The layer's own span table: spans that move between threads, and
//! clones in several subscribers.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

use super::TracingLayer;
use crate::{Engine, ManualClock};

fn engine(clock: &ManualClock) -> Engine {
    Engine::builder().clock(clock.clone()).without_system_source().build().expect("valid")
}

#[test]
fn a_span_closed_on_another_thread_is_timed_and_leaves_no_state() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::builder(&engine)
        .slow_threshold(Duration::from_millis(50))
        .build()
        .expect("valid");
    let subscriber = tracing_subscriber::registry().with(layer.clone());
    let dispatch = tracing::Dispatch::new(subscriber);
    let span =
        tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("moved", job = 7_u64));
    clock.advance(Duration::from_millis(80));
    let remote = dispatch.clone();
    std::thread::spawn(move || tracing::dispatcher::with_default(&remote, || drop(span)))
        .join()
        .expect("the closing thread");
    let stats = layer.stats();
    assert_eq!((stats[0].name.as_str(), stats[0].calls), ("moved", 1));
    assert_eq!(stats[0].max, Duration::from_millis(80));
    let slow = engine.slow_operations().list();
    assert_eq!(slow[0].fields, [("job".to_string(), "7".to_string())]);
    // The table that held the span belongs to the subscriber's copy of the layer.
    let own = dispatch.downcast_ref::<TracingLayer>().expect("the subscriber's layer");
    assert!(!std::sync::Arc::ptr_eq(&own.spans, &layer.spans));
    assert_eq!(own.spans.len(), 0, "closed spans leave nothing behind");
    assert_eq!(layer.spans.len(), 0);
}

#[test]
fn clones_in_two_subscribers_keep_spans_with_equal_ids_apart() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::new(&engine);
    let first = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    let second = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    // Fresh registries hand out the same first span id.
    let a = tracing::dispatcher::with_default(&first, || tracing::info_span!("first"));
    clock.advance(Duration::from_millis(10));
    let b = tracing::dispatcher::with_default(&second, || tracing::info_span!("second"));
    assert_eq!(a.id(), b.id(), "the case this test is about");
    clock.advance(Duration::from_millis(30));
    tracing::dispatcher::with_default(&first, || drop(a));
    tracing::dispatcher::with_default(&second, || drop(b));
    let stats = layer.stats();
    let max = |name: &str| stats.iter().find(|s| s.name == name).map(|s| (s.calls, s.max));
    assert_eq!(max("first"), Some((1, Duration::from_millis(40))));
    assert_eq!(max("second"), Some((1, Duration::from_millis(30))));
}
