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

/// The copy of `layer` that `dispatch`'s subscriber holds: the one with the
/// subscriber's span table.
fn own(dispatch: &tracing::Dispatch) -> &TracingLayer {
    dispatch.downcast_ref::<TracingLayer>().expect("the subscriber's layer")
}

#[test]
fn fields_in_the_slot_beside_it_and_recorded_later_reach_the_slow_log_in_order() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer =
        TracingLayer::builder(&engine).slow_threshold(Duration::ZERO).build().expect("valid");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        // Two primitive values: kept as bits in the span's slot.
        let inline = tracing::info_span!("inline", n = -3_i64, ok = true);
        assert_eq!(own(&dispatch).spans.spilled_len(), 0);
        // Text, and more fields than a slot holds: beside the slot.
        let text = tracing::info_span!("text", room = "lobby", n = 1_u64);
        let many = tracing::info_span!("many", a = 1_u64, b = 2.5_f64, c = false);
        assert_eq!(own(&dispatch).spans.spilled_len(), 2);
        // Recorded after creation: the slot's fields move beside it first.
        let late = tracing::info_span!("late", id = 7_u64, user = tracing::field::Empty);
        late.record("user", "ann");
        late.record("id", 8_u64);
        assert_eq!(own(&dispatch).spans.spilled_len(), 3);
        drop((inline, text, many, late));
    });
    let ops = layer.slow_operations().list();
    let fields = |name: &str| ops.iter().find(|o| o.name == name).expect(name).fields.clone();
    let expect = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    };
    assert_eq!(fields("inline"), expect(&[("n", "-3"), ("ok", "true")]));
    assert_eq!(fields("text"), expect(&[("room", "lobby"), ("n", "1")]));
    assert_eq!(fields("many"), expect(&[("a", "1"), ("b", "2.5"), ("c", "false")]));
    assert_eq!(fields("late"), expect(&[("id", "7"), ("user", "ann"), ("id", "8")]));
    assert_eq!(own(&dispatch).spans.spilled_len(), 0, "closed spans leave no fields behind");
    assert_eq!(own(&dispatch).spans.len(), 0);
}

#[test]
fn more_spans_open_at_once_than_the_table_has_slots_are_all_timed() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::builder(&engine)
        .slow_threshold(Duration::from_hours(1))
        .build()
        .expect("valid");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    let open: Vec<tracing::Span> = tracing::dispatcher::with_default(&dispatch, || {
        (0..3_000_u64)
            .map(|i| {
                clock.advance(Duration::from_millis(1));
                tracing::info_span!("held", i)
            })
            .collect()
    });
    let table = &own(&dispatch).spans;
    assert_eq!(table.len(), 3_000);
    assert!(table.overflowed() > 0, "some spans found no slot");
    clock.advance(Duration::from_millis(10));
    // Closed in creation order: the first one open longest.
    tracing::dispatcher::with_default(&dispatch, || drop(open));
    let stats = layer.stats();
    assert_eq!(stats[0].calls, 3_000);
    assert_eq!(stats[0].max, Duration::from_millis(3_000 - 1 + 10));
    assert_eq!(table.len(), 0);
    assert_eq!(table.overflowed(), 0);
}

#[test]
fn slots_are_reused_and_every_duration_counts_once() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::new(&engine);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        for ms in 1..=5_000_u64 {
            let span = tracing::info_span!("again", ms);
            clock.advance(Duration::from_millis(ms % 7));
            drop(span);
        }
    });
    let s = &layer.stats()[0];
    assert_eq!(s.calls, 5_000);
    assert_eq!(s.max, Duration::from_millis(6));
    let total_ms: u64 = (1..=5_000_u64).map(|ms| ms % 7).sum();
    assert_eq!(s.mean, Duration::from_nanos(total_ms * 1_000_000 / 5_000));
    assert_eq!(own(&dispatch).spans.len(), 0);
}

#[test]
fn busy_time_is_the_outermost_entry_also_across_threads() {
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::builder(&engine)
        .busy_time(true)
        .slow_threshold(Duration::ZERO)
        .build()
        .expect("valid");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("work");
        clock.advance(Duration::from_millis(100)); // idle
        {
            let _outer = span.enter();
            clock.advance(Duration::from_millis(10));
            span.in_scope(|| clock.advance(Duration::from_millis(5))); // nested
            let (remote, remote_clock, remote_dispatch) =
                (span.clone(), clock.clone(), dispatch.clone());
            // Entered on a second thread while this one holds it.
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&remote_dispatch, || {
                    remote.in_scope(|| remote_clock.advance(Duration::from_millis(3)));
                });
            })
            .join()
            .expect("the second thread");
            clock.advance(Duration::from_millis(2));
        }
        clock.advance(Duration::from_millis(50)); // idle
        span.in_scope(|| clock.advance(Duration::from_millis(7)));
    });
    let op = &layer.slow_operations().list()[0];
    assert_eq!(op.duration, Duration::from_millis(100 + 10 + 5 + 3 + 2 + 50 + 7));
    assert_eq!(op.busy, Some(Duration::from_millis(10 + 5 + 3 + 2 + 7)));
}

#[test]
fn callsites_past_the_lock_free_table_are_found_in_the_list() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::sites::{Callsite, CallsiteIndex, SpanSite};
    use crate::Histogram;

    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    let metas: Vec<&'static tracing::Metadata<'static>> =
        tracing::dispatcher::with_default(&dispatch, || {
            [tracing::info_span!("a"), tracing::info_span!("b"), tracing::info_span!("c")]
                .iter()
                .map(|s| s.metadata().expect("an enabled span"))
                .collect()
        });
    let site = |meta: &'static tracing::Metadata<'static>| -> Callsite {
        let site = SpanSite {
            name: meta.name(),
            target: meta.target(),
            duration: Histogram::detached(),
            duration_ns: None,
            busy: None,
            busy_ns: None,
            errors: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            slow_ns: 0,
        };
        (meta, Arc::new(site))
    };
    // Room for two: the third callsite is left to the locked list.
    let index = CallsiteIndex::with_capacity(2);
    for (i, meta) in (0_u32..).zip(&metas) {
        index.add(i, &site(meta));
    }
    assert_eq!(index.index_of(metas[0]), Some(0));
    assert_eq!(index.index_of(metas[1]), Some(1));
    assert_eq!(index.index_of(metas[2]), None);
    assert_eq!(index.get(1).map(|c| c.1.name), Some("b"));
    assert!(index.get(2).is_none());
}

#[test]
fn threads_opening_closing_and_handing_over_spans_at_once_lose_none() {
    const THREADS: usize = 4;
    const SPANS: usize = 5_000;
    let clock = ManualClock::at_millis(1_000_000);
    let engine = engine(&clock);
    let layer = TracingLayer::builder(&engine).busy_time(true).build().expect("valid");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    let (tx, rx) = std::sync::mpsc::channel::<tracing::Span>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dispatch, tx, rx) = (dispatch.clone(), tx.clone(), rx.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..SPANS {
                        let outer = tracing::info_span!("outer", t, i);
                        let _in = outer.enter();
                        let inner = tracing::info_span!("inner", room = "lobby", i);
                        if i % 3 == 0 {
                            // Closed on whichever thread takes it.
                            tx.send(inner).expect("receiver");
                        } else {
                            inner.in_scope(|| {});
                        }
                        if i % 3 == 1 {
                            let taken = rx.lock().expect("receiver").try_recv();
                            drop(taken);
                        }
                    }
                });
            })
        })
        .collect();
    drop(tx);
    for w in workers {
        w.join().expect("a worker");
    }
    // What no worker took closes here.
    tracing::dispatcher::with_default(&dispatch, || {
        while let Ok(span) = rx.lock().expect("receiver").try_recv() {
            drop(span);
        }
    });
    let calls = |name: &str| layer.stats().iter().find(|s| s.name == name).map(|s| s.calls);
    assert_eq!(calls("outer"), Some((THREADS * SPANS) as u64));
    assert_eq!(calls("inner"), Some((THREADS * SPANS) as u64));
    let table = &dispatch.downcast_ref::<TracingLayer>().expect("the layer").spans;
    assert_eq!(table.len(), 0, "every closed span left its slot");
    assert_eq!(table.spilled_len(), 0, "and its fields");
    assert_eq!(table.overflowed(), 0);
}
