//! Tests of the dispatcher, through its threads.

use std::sync::Barrier;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::alert::{
    AlertManager, AlertRule, ChannelNotifier, FnNotifier, MemoryView, NotificationKind,
    TryFnNotifier,
};
use crate::key::SeriesKey;

/// Detached counters for a handler.
fn m() -> HandlerMetrics {
    HandlerMetrics::default()
}

/// One batch per evaluation: `rounds` times, every one of `instances` series
/// of metric `m` goes above the threshold (a Firing each), then back below
/// it (a Resolved each).
fn rounds(instances: usize, rounds: usize) -> Vec<Vec<Notification>> {
    let mut mgr = AlertManager::new(vec![
        AlertRule::builder("r", "m").above(1.0).without_flap_detection().build().unwrap(),
    ])
    .unwrap();
    let keys: Vec<SeriesKey> = (0..instances)
        .map(|i| SeriesKey::new("m", &[("i", i.to_string().as_str())]).unwrap())
        .collect();
    let mut view = MemoryView::new();
    let mut out = Vec::new();
    let mut t = 0;
    for round in 0..2 * rounds {
        t += 1_000;
        for key in &keys {
            view.push(key.clone(), t, if round % 2 == 0 { 5.0 } else { 0.0 });
        }
        out.push(mgr.evaluate(t, &view));
    }
    out
}

/// `count` distinct notifications: firings of `count / 2` (rounded up)
/// instances, then their resolves.
fn notifications(count: usize) -> Vec<Notification> {
    rounds(count.div_ceil(2), 1).into_iter().flatten().take(count).collect()
}

#[test]
fn delivers_in_order_to_every_handler_and_flushes_on_shutdown() {
    struct Flag(Arc<AtomicBool>, ChannelNotifier);
    impl Notifier for Flag {
        fn notify(&self, n: &Notification) -> crate::alert::NotifyResult {
            self.1.notify(n)
        }
        fn flush(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (tx_a, rx_a) = crossbeam_channel::unbounded();
    let (tx_b, rx_b) = crossbeam_channel::unbounded();
    let flushed = Arc::new(AtomicBool::new(false));
    let d = Dispatcher::builder()
        .handler("a", ChannelNotifier::new(tx_a), m())
        .handler("b", Flag(Arc::clone(&flushed), ChannelNotifier::new(tx_b)), m())
        .build()
        .unwrap();
    let h = d.handle();
    let sent = notifications(50);
    assert_eq!(h.send_all(sent.clone()), 50);
    d.shutdown().unwrap();
    assert!(flushed.load(Ordering::SeqCst));
    let got_a: Vec<u64> = rx_a.try_iter().map(|n| n.id).collect();
    let got_b: Vec<u64> = rx_b.try_iter().map(|n| n.id).collect();
    let want: Vec<u64> = sent.iter().map(|n| n.id).collect();
    assert_eq!(got_a, want);
    assert_eq!(got_b, want);
    let stats = h.stats();
    assert_eq!(stats.submitted, 50);
    assert!(stats.handlers.iter().all(|s| s.delivered == 50 && s.failed == 0 && s.dropped == 0));
    // After shutdown, submissions are rejected and counted.
    assert!(!h.try_send(sent[0].clone()));
    assert_eq!(h.stats().rejected, 1);
    assert!(matches!(
        h.register("late", FnNotifier(|_: &Notification| {}), m()),
        Err(Error::ShutDown)
    ));
    h.flush(); // returns at once
}

#[test]
fn panicking_and_failing_handlers_are_counted_and_do_not_stop_others() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let d = Dispatcher::builder()
        .handler(
            "panics",
            FnNotifier(|n: &Notification| {
                assert!(n.kind != NotificationKind::Resolved, "handler bug");
            }),
            m(),
        )
        .handler("fails", TryFnNotifier(|_: &Notification| Err("endpoint down".into())), m())
        .handler("ok", ChannelNotifier::new(tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    h.send_all(notifications(10));
    h.flush();
    let stats = h.stats();
    let by_name = |name: &str| stats.handlers.iter().find(|s| s.name == name).unwrap().clone();
    assert_eq!(
        (by_name("panics").delivered, by_name("panics").failed, by_name("panics").panicked),
        (5, 5, 5)
    );
    assert_eq!(
        (by_name("fails").delivered, by_name("fails").failed, by_name("fails").panicked),
        (0, 10, 0)
    );
    assert_eq!(by_name("ok").delivered, 10);
    assert_eq!(rx.try_iter().count(), 10);
    d.shutdown().unwrap();
}

#[test]
fn a_handler_with_too_much_waiting_counts_as_stuck_and_drops_what_waits() {
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (fast_tx, fast_rx) = crossbeam_channel::unbounded();
    let blocker = FnNotifier(move |_: &Notification| {
        let _ = entered_tx.try_send(());
        let _ = release_rx.recv(); // blocks until the test releases it
    });
    let d = Dispatcher::builder()
        .handler_capacity(2)
        .handler("blocking", blocker, m())
        .handler("fast", ChannelNotifier::new(fast_tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    let batch = notifications(9); // five instances: no coalescing
    assert!(h.try_send(batch[0].clone()));
    entered_rx.recv().unwrap(); // the blocking handler holds the first one
    assert_eq!(fast_rx.recv().unwrap().id, batch[0].id);
    // The evaluator keeps submitting without blocking, and the other handler
    // receives each one while the first is stuck (each is awaited before the
    // next is sent, so not even two wait for the fast handler).
    for n in &batch[1..] {
        assert!(h.try_send(n.clone()));
        assert_eq!(fast_rx.recv().unwrap().id, n.id);
    }
    h.sync().unwrap(); // the fan-out has handed everything out
    // waiting for "blocking": 1, 2, 3 > 2 (all 3 dropped), 1, 2, 3 (dropped), 1, 2
    let blocking = h.stats().handlers[0].clone();
    assert_eq!((blocking.delivered, blocking.dropped, blocking.coalesced), (0, 6, 0));
    assert!(!h.flush_timeout(Duration::from_millis(1)));
    // Release it: the one in hand and the two waiting are delivered on shutdown.
    drop(release_tx);
    d.shutdown().unwrap();
    let blocking = h.stats().handlers[0].clone();
    assert_eq!((blocking.delivered, blocking.dropped), (3, 6));
    assert_eq!(h.stats().handlers[1].delivered, 9);
}

#[test]
fn main_queue_overflow_is_counted() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let d = Dispatcher::builder()
        .capacity(4)
        .handler("ok", ChannelNotifier::new(tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    h.pause(release_rx); // the fan-out thread is blocked and the queue is empty
    let accepted = notifications(10).into_iter().filter(|n| h.try_send(n.clone())).count();
    assert_eq!(accepted, 4);
    assert_eq!(h.stats().overflowed, 6);
    drop(release_tx);
    h.flush();
    assert_eq!(rx.try_iter().count(), 4);
    d.shutdown().unwrap();
}

#[test]
fn handlers_registered_while_running_see_later_notifications() {
    let d = Dispatcher::builder().build().unwrap();
    let h = d.handle();
    let batch = notifications(6);
    h.send_all(batch[..3].iter().cloned());
    let (tx, rx) = crossbeam_channel::unbounded();
    h.register("late", ChannelNotifier::new(tx), m()).unwrap();
    h.send_all(batch[3..].iter().cloned());
    h.flush();
    let got: Vec<u64> = rx.try_iter().map(|n| n.id).collect();
    assert_eq!(got, batch[3..].iter().map(|n| n.id).collect::<Vec<_>>());
    assert_eq!(h.stats().handlers[0].name, "late");
    drop(d); // Drop stops and joins too
    assert!(!h.try_send(batch[0].clone()));
}

#[test]
fn concurrent_submitters_lose_nothing_below_capacity() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let d = Dispatcher::builder()
        .capacity(4_096)
        .handler_capacity(4_096)
        .handler("ok", ChannelNotifier::new(tx), m())
        .build()
        .unwrap();
    let batch = notifications(100);
    let barrier = Barrier::new(4);
    thread::scope(|s| {
        for _ in 0..4 {
            let h = d.handle();
            let (batch, barrier) = (&batch, &barrier);
            s.spawn(move || {
                barrier.wait();
                for n in batch {
                    assert!(h.try_send(n.clone()));
                }
            });
        }
    });
    d.shutdown().unwrap();
    assert_eq!(rx.try_iter().count(), 400);
}

#[test]
fn dropping_the_owner_on_a_handler_thread_does_not_deadlock() {
    let slot: Arc<Mutex<Option<Dispatcher>>> = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let inner = Arc::clone(&slot);
    let d = Dispatcher::builder()
        .handler(
            "owner",
            FnNotifier(move |_: &Notification| {
                let owned = inner.lock().take();
                drop(owned); // shuts down from the handler's own thread
                let _ = done_tx.try_send(());
            }),
            m(),
        )
        .build()
        .unwrap();
    let h = d.handle();
    *slot.lock() = Some(d);
    assert!(h.try_send(notifications(1).remove(0)));
    done_rx.recv().unwrap();
    assert!(!h.try_send(notifications(1).remove(0)));
}

#[test]
fn zero_capacity_is_rejected() {
    assert!(Dispatcher::builder().capacity(0).build().is_err());
    let err = Dispatcher::builder().handler_capacity(0).build().unwrap_err();
    assert!(err.to_string().contains("notifier_queue_capacity"), "{err}");
    let err = Dispatcher::builder().stuck_timeout(Duration::from_micros(999)).build().unwrap_err();
    assert!(err.to_string().contains("notifier_stuck_timeout"), "{err}");
}

/// Checks what one handler received: per instance, Firing and Resolved
/// alternate starting with a Firing, and the last is a Resolved. Returns
/// (firings, resolves).
fn assert_alternates(got: &[Notification]) -> (usize, usize) {
    let mut open = std::collections::HashMap::<&str, bool>::new();
    let (mut firings, mut resolves) = (0, 0);
    for n in got {
        let firing = open.entry(n.alert_id.as_str()).or_insert(false);
        match n.kind {
            NotificationKind::Firing => {
                assert!(!*firing, "two firings in a row for {}", n.alert_id);
                *firing = true;
                firings += 1;
            }
            NotificationKind::Resolved => {
                assert!(*firing, "a resolve without its firing for {}", n.alert_id);
                *firing = false;
                resolves += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(open.values().all(|f| !f), "a firing without its resolve");
    (firings, resolves)
}

#[test]
fn a_slow_handler_loses_nothing_whatever_the_burst() {
    // 1 000 instances x 6 fire/resolve rounds, all decided while the handler
    // is held inside its first call: 12 000 notices, 12 per instance.
    let (instances, k) = (1_000, 6);
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let slow = FnNotifier(move |n: &Notification| {
        if entered_tx.try_send(()).is_ok() {
            let _ = release_rx.recv(); // held until every round is decided
        }
        tx.send(n.clone()).unwrap();
    });
    let (fast_tx, fast_rx) = crossbeam_channel::unbounded();
    let d = Dispatcher::builder()
        .handler("slow", slow, m())
        .handler("fast", ChannelNotifier::new(fast_tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    let batches = rounds(instances, k);
    let total: usize = batches.iter().map(Vec::len).sum();
    assert_eq!(total, 2 * instances * k);
    let mut batches = batches.into_iter();
    assert_eq!(h.send_all(batches.next().unwrap()), instances);
    entered_rx.recv().unwrap();
    // The fast handler keeps up: it has taken every round of four before the
    // next four are decided. (A handler whose thread gets no CPU while nine
    // rounds are decided has whole episodes coalesced, by design; on a
    // loaded machine an unpaced burst can do that to any handler.)
    for (i, b) in batches.enumerate() {
        if i % 4 == 3 {
            let targets = h.sync().unwrap();
            let (fast, accepted) = &targets[1];
            assert!(fast.wait_for(*accepted, None));
        }
        assert_eq!(h.send_all(b), instances); // never blocks, never refused
    }
    h.sync().unwrap();
    drop(release_tx);
    h.flush();
    let got: Vec<Notification> = rx.try_iter().collect();
    let (firings, resolves) = assert_alternates(&got);
    let stats = h.stats();
    let slow = &stats.handlers[0];
    assert_eq!(stats.overflowed, 0);
    assert_eq!(slow.dropped, 0, "{slow:?}");
    assert_eq!(slow.delivered, got.len() as u64);
    assert_eq!(slow.delivered + slow.coalesced, total as u64, "{slow:?}");
    // Per instance, the handler holds the first Firing of instance 0 while
    // the rest wait: at most INSTANCE_LIMIT (8) wait per instance, whole
    // unseen Firing/Resolved pairs collapsing to make room. Instance 0 gets
    // its first Firing, then R F R F R F R; the others F R F R F R F R.
    assert_eq!(mailbox::INSTANCE_LIMIT, 8);
    assert_eq!(got.len(), 8 * instances);
    assert_eq!((firings, resolves), (4 * instances, 4 * instances));
    let first: Vec<u64> =
        got.iter().filter(|n| n.alert_id == got[0].alert_id).map(|n| n.id).collect();
    let sent_first: Vec<u64> = rounds(instances, k)
        .iter()
        .flatten()
        .filter(|n| n.alert_id == got[0].alert_id)
        .map(|n| n.id)
        .collect();
    // the resolve of the delivered firing is the very next one, then the latest three episodes
    assert_eq!(first[..2], sent_first[..2]);
    assert_eq!(first[2..], sent_first[sent_first.len() - 6..]);
    // the fast handler kept up: everything, nothing coalesced, all of it
    // handled when `flush` returned (the last rounds were not paced)
    let fast: Vec<Notification> = fast_rx.try_iter().collect();
    assert_eq!(assert_alternates(&fast), (instances * k, instances * k));
    assert_eq!(stats.handlers[1].coalesced, 0);
    d.shutdown().unwrap();
}

#[test]
fn only_a_stuck_handler_loses_and_its_losses_are_counted() {
    const STUCK: Duration = Duration::from_secs(1);
    let instances = 300;
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let stuck = FnNotifier(move |_: &Notification| {
        if entered_tx.try_send(()).is_ok() {
            let _ = release_rx.recv(); // stuck in its first call
        }
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let registry = Registry::new(1_000);
    let d = Dispatcher::builder()
        .stuck_timeout(STUCK)
        .handler("stuck", stuck, HandlerMetrics::register(&registry, "stuck"))
        .handler("healthy", ChannelNotifier::new(tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    let mut batches = rounds(instances, 2).into_iter();
    let entered = Instant::now(); // before the handler takes its first
    h.send_all(batches.next().unwrap()); // firings
    entered_rx.recv().unwrap();
    // just into its call it is slow, not stuck: the resolves wait for it
    h.send_all(batches.next().unwrap());
    h.sync().unwrap();
    assert!(entered.elapsed() < STUCK, "the machine is too slow for this test");
    assert_eq!(h.stats().handlers[0].dropped, 0);
    // Once the call has lasted STUCK it is stuck: what waits and what comes is
    // dropped. (Call durations are wall time; sleeping guarantees the bound.)
    std::thread::sleep(STUCK);
    h.send_all(batches.next().unwrap());
    h.send_all(batches.next().unwrap());
    assert!(!h.flush_timeout(Duration::from_millis(20)), "the stuck one is not done");
    let stats = h.stats();
    let (stuck, healthy) = (&stats.handlers[0], &stats.handlers[1]);
    // in hand: 1; waiting when it got stuck: 2 x 300 - 1; then 2 x 300 more
    assert_eq!((stuck.delivered, stuck.dropped, stuck.coalesced), (0, 4 * 300 - 1, 0));
    assert_eq!(healthy.delivered, 4 * 300);
    assert_eq!(healthy.dropped, 0);
    let got: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(assert_alternates(&got), (2 * instances, 2 * instances));
    // the counter in the registry counts the same
    let dropped =
        registry.counter("watchpost_notifications_dropped_total", &[("handler", "stuck")]).unwrap();
    assert_eq!(dropped.get(), stuck.dropped);
    // once the call returns, it receives what is decided from then on
    drop(release_tx);
    h.flush(); // the call in hand returns
    h.send_all(rounds(1, 1).remove(0));
    h.flush();
    let stuck = h.stats().handlers[0].clone();
    assert_eq!((stuck.delivered, stuck.dropped), (2, 4 * 300 - 1));
    d.shutdown().unwrap();
}

#[test]
fn durations_too_long_to_add_saturate() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let d = Dispatcher::builder()
        .grace(Duration::MAX)
        .stuck_timeout(Duration::MAX)
        .handler("ok", ChannelNotifier::new(tx), m())
        .build()
        .unwrap();
    let h = d.handle();
    assert_eq!(h.send_all(notifications(4)), 4);
    assert!(h.flush_timeout(Duration::MAX));
    assert_eq!(rx.try_iter().count(), 4);
    h.send_all(notifications(2));
    d.shutdown().unwrap(); // waits for the handler with a saturated deadline
    assert_eq!(rx.try_iter().count(), 2);
    assert!(deadline_after(Duration::MAX) > Instant::now());
}

/// A handler whose every call waits for a token from the test, recording
/// each id once its call is about to return; it reports each call it enters.
fn gated() -> (impl Notifier, Sender<()>, Receiver<u64>, Arc<Mutex<Vec<u64>>>) {
    let (token_tx, token_rx) = crossbeam_channel::unbounded::<()>();
    let (entered_tx, entered_rx) = crossbeam_channel::unbounded::<u64>();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&handled);
    let notifier = FnNotifier(move |n: &Notification| {
        let _ = entered_tx.send(n.id);
        let _ = token_rx.recv();
        record.lock().push(n.id);
    });
    (notifier, token_tx, entered_rx, handled)
}

/// Runs `flush` on a thread of its own, and returns once that flush is
/// waiting for `hs` or has returned; the thread's result is whether the
/// flush settled everything and how many ids were handled when it returned.
fn flush_on_a_thread(
    hs: &Arc<HandlerShared>,
    handled: &Arc<Mutex<Vec<u64>>>,
    flush: impl FnOnce() -> bool + Send + 'static,
) -> JoinHandle<(bool, usize)> {
    let handled = Arc::clone(handled);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let join = thread::spawn(move || {
        let all = flush();
        let seen = handled.lock().len();
        let _ = done_tx.send(());
        (all, seen)
    });
    // a condition, not a sleep: the flush is blocked in the wait, or done
    while hs.waiters.load(Ordering::SeqCst) == 0 && done_rx.is_empty() {
        thread::yield_now();
    }
    join
}

#[test]
fn flush_returns_only_after_every_notify_call_has_returned() {
    let (notifier, tokens, entered, handled) = gated();
    let d = Dispatcher::builder().handler("gated", notifier, m()).build().unwrap();
    let h = d.handle();
    let sent = notifications(3);
    assert_eq!(h.send_all(sent.clone()), 3);
    tokens.send(()).unwrap();
    tokens.send(()).unwrap();
    for n in &sent {
        assert_eq!(entered.recv().unwrap(), n.id);
    }
    // the third call has been taken from the mailbox but has not returned
    assert_eq!(handled.lock().len(), 2);
    assert!(!h.flush_timeout(Duration::ZERO), "a call in progress is not settled");
    let hs = Arc::clone(&h.shared.handlers.lock()[0]);
    let flush = flush_on_a_thread(&hs, &handled, {
        let h = h.clone();
        move || {
            h.flush();
            true
        }
    });
    assert_eq!(hs.waiters.load(Ordering::SeqCst), 1, "flush returned during the call");
    tokens.send(()).unwrap();
    let (_, seen) = flush.join().unwrap();
    assert_eq!(seen, 3, "everything handled when flush returned");
    d.shutdown().unwrap();
}

#[test]
fn a_flush_gives_up_on_one_call_once_and_waits_again_when_it_returns() {
    let (notifier, tokens, entered, handled) = gated();
    let d = Dispatcher::builder().handler("gated", notifier, m()).build().unwrap();
    let h = d.handle();
    let sent = notifications(2);
    assert!(h.try_send(sent[0].clone()));
    assert_eq!(entered.recv().unwrap(), sent[0].id);
    assert!(!h.flush_timeout(Duration::ZERO)); // gives up on the first call
    // still in that call: later flushes do not wait for it
    let started = Instant::now();
    assert!(!h.flush_timeout(Duration::from_mins(10)));
    assert!(started.elapsed() < Duration::from_mins(10));
    assert!(h.try_send(sent[1].clone()));
    tokens.send(()).unwrap(); // the call it was late on returns
    assert_eq!(entered.recv().unwrap(), sent[1].id);
    // in its next call: a flush with a deadline waits for it again
    let hs = Arc::clone(&h.shared.handlers.lock()[0]);
    let flush = flush_on_a_thread(&hs, &handled, {
        let h = h.clone();
        move || h.flush_timeout(Duration::from_mins(10))
    });
    assert_eq!(hs.waiters.load(Ordering::SeqCst), 1, "flush did not wait for the next call");
    tokens.send(()).unwrap();
    assert_eq!(flush.join().unwrap(), (true, 2));
    d.shutdown().unwrap();
}
