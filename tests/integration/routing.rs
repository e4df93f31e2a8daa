//! Routing and grouping through a running engine: the router as a notifier,
//! its timers on a `ManualClock`, and receivers that fail or hang.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver as Rx, Sender};
use watchpost::alert::{AlertRule, Matcher, NotificationKind, NotifyResult};
use watchpost::notify::{AlertGroup, Receiver, Route, Router};
use watchpost::{Engine, ManualClock};

use crate::util::{T0, builder};

/// A receiver that forwards every group it is sent into a channel.
struct Inbox {
    name: &'static str,
    tx: Sender<AlertGroup>,
}

impl Receiver for Inbox {
    fn name(&self) -> &str {
        self.name
    }
    fn send(&self, group: &AlertGroup) -> NotifyResult {
        self.tx.send(group.clone()).map_err(|e| e.to_string().into())
    }
}

fn inbox(name: &'static str) -> (Inbox, Rx<AlertGroup>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Inbox { name, tx }, rx)
}

/// (room, kind) of each alert in a message.
fn rooms(g: &AlertGroup) -> Vec<(String, NotificationKind)> {
    g.alerts.iter().map(|n| (n.labels["room"].clone(), n.kind)).collect()
}

fn engine(clock: &ManualClock, router: &Arc<Router>) -> Engine {
    builder(clock)
        .without_default_alert_rules()
        .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build().unwrap())
        .alert_rule(
            AlertRule::builder("slow_query", "query_ms")
                .above(500.0)
                .label("team", "db")
                .build()
                .unwrap(),
        )
        .notifier("router", Arc::clone(router))
        .build()
        .unwrap()
}

fn step(clock: &ManualClock, engine: &Engine, router: &Router, by: Duration) {
    clock.advance(by);
    engine.flush().unwrap();
    assert!(router.poll());
}

#[test]
fn group_wait_collects_siblings_into_one_message() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let root = Route::builder()
        .receiver("ops")
        .group_by(["alertname"])
        .group_wait(Duration::from_secs(30));
    let router =
        Arc::new(Router::builder(root).receiver(ops).clock(clock.clone()).build().unwrap());
    let engine = engine(&clock, &router);

    engine.record("temp", &[("room", "a")], 35.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(1));
    engine.record("temp", &[("room", "b")], 36.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(10));
    assert!(rx.try_recv().is_err(), "sent before group_wait ended");
    assert_eq!(router.next_due(), Some(T0 + 1_000 + 30_000));

    step(&clock, &engine, &router, Duration::from_secs(20));
    let msgs: Vec<AlertGroup> = rx.try_iter().collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(
        rooms(&msgs[0]),
        [("a".into(), NotificationKind::Firing), ("b".into(), NotificationKind::Firing)]
    );
    assert_eq!(msgs[0].group_labels["alertname"], "hot");
    assert_eq!(msgs[0].group_key, r#"{}:{alertname="hot"}"#);
}

#[test]
fn group_interval_batches_changes_and_repeat_interval_resends() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let root = Route::builder()
        .receiver("ops")
        .group_by(["alertname"])
        .group_interval(Duration::from_mins(1))
        .repeat_interval(Duration::from_mins(10));
    let router =
        Arc::new(Router::builder(root).receiver(ops).clock(clock.clone()).build().unwrap());
    let engine = engine(&clock, &router);

    engine.record("temp", &[("room", "a")], 35.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(1)); // group_wait 0: at once
    assert_eq!(rooms(&rx.try_recv().unwrap()), [("a".into(), NotificationKind::Firing)]);

    // Two changes within the interval: b fires, a resolves.
    engine.record("temp", &[("room", "b")], 40.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(10));
    engine.record("temp", &[("room", "a")], 20.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(10));
    assert!(rx.try_recv().is_err(), "changes must wait for group_interval");
    step(&clock, &engine, &router, Duration::from_secs(41)); // 61 s after the first message
    let batch = rx.try_recv().unwrap();
    assert_eq!(
        rooms(&batch),
        [("a".into(), NotificationKind::Resolved), ("b".into(), NotificationKind::Firing)]
    );
    assert!(rx.try_recv().is_err());

    // Nothing changes: the group is sent again after repeat_interval, without a.
    step(&clock, &engine, &router, Duration::from_secs(590));
    assert!(rx.try_recv().is_err());
    step(&clock, &engine, &router, Duration::from_secs(10));
    assert_eq!(rooms(&rx.try_recv().unwrap()), [("b".into(), NotificationKind::Firing)]);
    assert_eq!(router.stats()["ops"].sent, 3);
}

#[test]
fn continue_routes_deliver_to_two_receivers() {
    let clock = ManualClock::at_millis(T0);
    let (ops, ops_rx) = inbox("ops");
    let (db, db_rx) = inbox("db");
    let (all, all_rx) = inbox("all");
    let root = Route::builder()
        .receiver("ops")
        .child(Route::matching([Matcher::equal("team", "db")]).receiver("db").continue_(true))
        .child(Route::matching([Matcher::equal("alertname", "slow_query")]).receiver("all"));
    let router = Arc::new(
        Router::builder(root)
            .receiver(ops)
            .receiver(db)
            .receiver(all)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let engine = engine(&clock, &router);

    engine.record("query_ms", &[("room", "q")], 900.0).unwrap();
    engine.record("temp", &[("room", "t")], 35.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(1));
    let db_msgs: Vec<_> = db_rx.try_iter().collect();
    let all_msgs: Vec<_> = all_rx.try_iter().collect();
    let ops_msgs: Vec<_> = ops_rx.try_iter().collect();
    assert_eq!(db_msgs.len(), 1);
    assert_eq!(all_msgs.len(), 1);
    assert_eq!(rooms(&db_msgs[0]), rooms(&all_msgs[0]));
    assert_eq!(rooms(&db_msgs[0]), [("q".into(), NotificationKind::Firing)]);
    // The temperature alert matches no child: the root delivers it.
    assert_eq!(ops_msgs.len(), 1);
    assert_eq!(rooms(&ops_msgs[0]), [("t".into(), NotificationKind::Firing)]);
}

#[test]
fn zero_timings_deliver_the_resolve_at_the_transition() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let router = Arc::new(
        Router::builder(Route::builder().receiver("ops").group_by(["alertname"]))
            .receiver(ops)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let engine = engine(&clock, &router);
    engine.record("temp", &[("room", "a")], 35.0).unwrap();
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    // No poll and no clock step: the notify call itself handed the message over.
    assert_eq!(
        rooms(&rx.recv_timeout(Duration::from_secs(10)).unwrap()),
        [("a".into(), NotificationKind::Firing)]
    );
    engine.record("temp", &[("room", "a")], 20.0).unwrap();
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let resolved = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(rooms(&resolved), [("a".into(), NotificationKind::Resolved)]);
    assert_eq!(resolved.at.timestamp_millis(), T0 + 2_000);
    assert_eq!(router.next_due(), None, "a group with only resolved alerts disappears");
}

#[test]
fn shutdown_sends_what_waits_for_group_wait() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let root = Route::builder().receiver("ops").group_wait(Duration::from_mins(5));
    let router =
        Arc::new(Router::builder(root).receiver(ops).clock(clock.clone()).build().unwrap());
    let engine = engine(&clock, &router);
    engine.record("temp", &[("room", "a")], 35.0).unwrap();
    step(&clock, &engine, &router, Duration::from_secs(1));
    assert!(rx.try_recv().is_err());
    engine.shutdown().unwrap();
    assert_eq!(rooms(&rx.try_recv().unwrap()), [("a".into(), NotificationKind::Firing)]);
}

/// Blocks every send until the test lets it go.
struct Hang {
    release: Rx<()>,
    entered: Sender<()>,
    left: Sender<()>,
}

impl Receiver for Hang {
    fn name(&self) -> &'static str {
        "hang"
    }
    fn send(&self, _: &AlertGroup) -> NotifyResult {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        let _ = self.left.send(());
        Err("gave up".into())
    }
}

/// Fails every send: with an error, or by panicking.
struct Fail {
    panic: bool,
}

impl Receiver for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }
    fn send(&self, _: &AlertGroup) -> NotifyResult {
        assert!(!self.panic, "receiver bug");
        Err("endpoint down".into())
    }
}

#[test]
fn a_hanging_or_failing_receiver_delays_neither_the_others_nor_evaluation() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let (release_tx, release) = crossbeam_channel::unbounded();
    let (entered, entered_rx) = crossbeam_channel::unbounded();
    let (left, left_rx) = crossbeam_channel::unbounded();
    let root = Route::builder()
        .receiver("ops")
        .group_by(["..."])
        .child(Route::matching([]).receiver("hang").continue_(true))
        .child(Route::matching([]).receiver("fail").continue_(true))
        .child(Route::matching([]).receiver("ops"));
    let router = Arc::new(
        Router::builder(root)
            .receiver(Hang { release, entered, left })
            .receiver(Fail { panic: false })
            .receiver(ops)
            .clock(clock.clone())
            .flush_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let engine = engine(&clock, &router);

    engine.record("temp", &[("room", "a")], 35.0).unwrap();
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap(); // "hang" is stuck in send now
    assert!(!router.poll(), "poll reports the receiver that did not finish");
    assert_eq!(rooms(&rx.try_recv().unwrap()), [("a".into(), NotificationKind::Firing)]);

    // Evaluation goes on, and ops hears of each transition while hang still hangs.
    for (i, v) in [(1, 20.0), (2, 35.0), (3, 20.0)] {
        engine.record("temp", &[("room", "a")], v).unwrap();
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        let kind = if i % 2 == 1 { NotificationKind::Resolved } else { NotificationKind::Firing };
        assert_eq!(rooms(&rx.recv_timeout(Duration::from_secs(10)).unwrap()), [("a".into(), kind)]);
    }
    assert!(engine.active_alerts().is_empty());
    // Waits for "fail"; "hang" missed a deadline already and is not waited for.
    let started = std::time::Instant::now();
    assert!(!router.poll());
    assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
    let stats = router.stats();
    assert_eq!(stats["ops"].sent, 4);
    assert_eq!((stats["fail"].failed, stats["fail"].panicked), (4, 0));
    assert_eq!(stats["hang"].sent + stats["hang"].failed, 0);
    // The three messages that fell due while hang was busy wait as one
    // (one group), ending resolved.
    assert_eq!(stats["hang"].merged, 2);
    assert_eq!(stats["hang"].dropped, 1, "the first resolve was lost to the refiring");

    // Once released, hang gets the merged message (one resolve) and is waited for again.
    release_tx.send(()).unwrap();
    left_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    release_tx.send(()).unwrap();
    left_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(router.poll());
    assert_eq!(router.stats()["hang"].failed, 2);
}

#[test]
fn a_panicking_receiver_is_counted_and_keeps_its_thread() {
    let clock = ManualClock::at_millis(T0);
    let (ops, rx) = inbox("ops");
    let root = Route::builder()
        .receiver("ops")
        .child(Route::matching([]).receiver("fail").continue_(true))
        .child(Route::matching([]).receiver("ops"));
    let router = Arc::new(
        Router::builder(root)
            .receiver(Fail { panic: true })
            .receiver(ops)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let engine = engine(&clock, &router);
    for v in [35.0, 20.0] {
        engine.record("temp", &[("room", "a")], v).unwrap();
        step(&clock, &engine, &router, Duration::from_secs(1));
    }
    assert_eq!(rx.try_iter().count(), 2);
    let fail = router.stats()["fail"];
    assert_eq!((fail.sent, fail.failed, fail.panicked), (0, 2, 2));
}
