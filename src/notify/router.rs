//! The router: a [`Notifier`] that groups notifications along a route tree
//! and delivers the groups to receivers, each on a thread of its own.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::alert::{Notification, NotificationKind, Notifier, NotifyResult};
use crate::clock::{Clock, MAX_DURATION, SystemClock};
use crate::error::{Error, Result};
use crate::notify::group::Grouper;
use crate::notify::route::{Route, RouteTree};
use crate::notify::{AlertGroup, Receiver};

/// Default time [`Router::poll`], [`Notifier::flush`] and drop wait for the
/// receivers: 10 s.
pub const DEFAULT_ROUTER_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest the timer sleeps before it reads the clock again, so that a
/// clock that is set (or stepped) is noticed within this time.
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(1);

/// Counts of one receiver's messages.
///
/// # Examples
///
/// ```
/// let s = watchpost::notify::RouterStats::default();
/// assert_eq!(s.sent + s.failed + s.merged + s.dropped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouterStats {
    /// Messages the receiver accepted.
    pub sent: u64,
    /// Messages whose delivery returned an error or panicked.
    pub failed: u64,
    /// Of `failed`, those that panicked.
    pub panicked: u64,
    /// Messages that fell due while an earlier message of the same group
    /// still waited for the busy receiver, and were merged into it.
    pub merged: u64,
    /// Alert resolves lost in a merge: the alert fired again before the
    /// receiver took the message that held its resolve.
    pub dropped: u64,
}

/// Builds a [`Router`]: the route tree, the receivers and the clock.
///
/// # Examples
///
/// See [`Router`].
#[must_use]
pub struct RouterBuilder {
    root: Route,
    receivers: Vec<Box<dyn Receiver>>,
    clock: Arc<dyn Clock>,
    flush_timeout: Duration,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.receivers.iter().map(Receiver::name).collect();
        f.debug_struct("RouterBuilder")
            .field("root", &self.root)
            .field("receivers", &names)
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Adds a receiver; routes name it by [`Receiver::name`].
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn receiver(mut self, receiver: impl Receiver) -> Self {
        self.receivers.push(Box::new(receiver));
        self
    }

    /// The clock the group timers read (default: [`SystemClock`]). Give it
    /// the engine's clock; tests give it a `ManualClock` and call
    /// [`Router::poll`].
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long [`Router::poll`], [`Notifier::flush`] and drop wait for the
    /// receivers (default [`DEFAULT_ROUTER_FLUSH_TIMEOUT`], 10 s; longer
    /// values are capped at [`MAX_DURATION`](crate::MAX_DURATION)).
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// Validates the tree against the receivers and starts the threads: one
    /// per receiver and the timer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for two receivers with one name or an invalid
    /// route tree (see [`RouteTree::new`]); [`Error::Spawn`] if a thread
    /// cannot be started.
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn build(self) -> Result<Router> {
        let mut by_name = HashMap::new();
        for (i, r) in self.receivers.iter().enumerate() {
            if by_name.insert(r.name().to_owned(), i).is_some() {
                return Err(Error::InvalidConfig {
                    field: "receiver",
                    reason: format!("two receivers are named {:?}", r.name()),
                });
            }
        }
        let tree = RouteTree::new(self.root, self.receivers.iter().map(Receiver::name))?;
        let shared = Arc::new(Shared {
            grouper: Mutex::new(Grouper::new(tree)),
            clock: self.clock,
            lanes: self.receivers.into_iter().map(Lane::new).collect(),
            by_name,
            timer: Mutex::new(TimerState::default()),
            timer_cv: Condvar::new(),
            flush_timeout: self.flush_timeout,
        });
        let mut router = Router { shared, timer: None, workers: Vec::new() };
        for i in 0..router.shared.lanes.len() {
            let s = Arc::clone(&router.shared);
            let name = format!("watchpost-receiver-{}", s.lanes[i].receiver.name());
            let h = thread::Builder::new().name(name).spawn(move || s.lanes[i].run());
            router.workers.push(h.map_err(Error::Spawn)?);
        }
        let s = Arc::clone(&router.shared);
        let h = thread::Builder::new()
            .name("watchpost-router-timer".into())
            .spawn(move || s.run_timer());
        router.timer = Some(h.map_err(Error::Spawn)?);
        Ok(router)
    }
}

/// A [`Notifier`] that routes each notification through a [`Route`] tree,
/// groups it (`group_by`, `group_wait`, `group_interval`,
/// `repeat_interval`, see [`Grouper`]) and delivers each group message to
/// its [`Receiver`] on that receiver's own thread.
///
/// - A slow, failing or hanging receiver delays nobody: not the engine
///   (which calls the router on its dispatcher's handler thread, and the
///   router only queues), not the other receivers.
/// - While a receiver is busy, the messages that fall due for it wait,
///   one per group: a later message of the same group replaces the waiting
///   one and keeps the resolves it listed (counted as `merged`), so what
///   waits is bounded by the number of groups.
/// - A timer thread sends the messages when they fall due, reading the
///   router's [`Clock`]; [`Router::poll`] does the same at once and waits
///   for the receivers, which makes tests with a `ManualClock` exact.
/// - With the default zero `group_wait` and `group_interval`, every firing
///   and every resolve is handed to the receivers within the `notify` call
///   that brought it.
/// - [`Notifier::flush`] (called by the engine on shutdown) sends every
///   change still waiting for its timer, then waits for the receivers;
///   dropping the router stops and joins its threads (a receiver still
///   busy after the flush timeout is left to finish on its own).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use watchpost::alert::{AlertRule, NotifyResult};
/// use watchpost::notify::{AlertGroup, Receiver, Route, Router};
///
/// #[derive(Default, Clone)]
/// struct Inbox(Arc<Mutex<Vec<AlertGroup>>>);
/// impl Receiver for Inbox {
///     fn name(&self) -> &str { "ops" }
///     fn send(&self, group: &AlertGroup) -> NotifyResult {
///         self.0.lock().unwrap().push(group.clone());
///         Ok(())
///     }
/// }
///
/// let inbox = Inbox::default();
/// let router = Arc::new(
///     Router::builder(Route::builder().receiver("ops").group_by(["alertname"]))
///         .receiver(inbox.clone())
///         .build()?,
/// );
/// let engine = watchpost::Engine::builder()
///     .without_system_source()
///     .without_default_alert_rules()
///     .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build()?)
///     .notifier("router", Arc::clone(&router))
///     .build()?;
/// engine.record("temp", &[("room", "lab")], 35.0)?;
/// engine.flush()?;
/// assert!(router.poll());
/// let sent = inbox.0.lock().unwrap();
/// assert_eq!(sent[0].group_labels["alertname"], "hot");
/// assert_eq!(sent[0].firing().count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Router {
    shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Router {
    /// Starts building a router on the route tree `root`.
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn builder(root: Route) -> RouterBuilder {
        RouterBuilder {
            root,
            receivers: Vec::new(),
            clock: Arc::new(SystemClock),
            flush_timeout: DEFAULT_ROUTER_FLUSH_TIMEOUT,
        }
    }

    /// Hands the messages due now (by the router's clock) to the receivers
    /// and waits until every receiver has delivered everything it was
    /// handed, at most the flush timeout. Returns `false` if a receiver was
    /// still busy then; a receiver that missed a deadline is not waited for
    /// again until the delivery it was late on returns.
    ///
    /// # Examples
    ///
    /// See [`Router`].
    pub fn poll(&self) -> bool {
        self.shared.send_due();
        self.shared.wait_idle()
    }

    /// When the next group message falls due, in milliseconds since the
    /// Unix epoch on the router's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Route, Router};
    /// # use watchpost::{alert::NotifyResult, notify::{AlertGroup, Receiver}};
    /// # struct Ops;
    /// # impl Receiver for Ops {
    /// #     fn name(&self) -> &str { "ops" }
    /// #     fn send(&self, _: &AlertGroup) -> NotifyResult { Ok(()) }
    /// # }
    /// let router = Router::builder(Route::builder().receiver("ops")).receiver(Ops).build()?;
    /// assert_eq!(router.next_due(), None);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn next_due(&self) -> Option<i64> {
        self.shared.grouper.lock().next_due()
    }

    /// Each receiver's counts, by receiver name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Route, Router};
    /// # use watchpost::{alert::NotifyResult, notify::{AlertGroup, Receiver}};
    /// # struct Ops;
    /// # impl Receiver for Ops {
    /// #     fn name(&self) -> &str { "ops" }
    /// #     fn send(&self, _: &AlertGroup) -> NotifyResult { Ok(()) }
    /// # }
    /// let router = Router::builder(Route::builder().receiver("ops")).receiver(Ops).build()?;
    /// assert_eq!(router.stats()["ops"].sent, 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn stats(&self) -> BTreeMap<String, RouterStats> {
        self.shared.lanes.iter().map(|l| (l.receiver.name().to_owned(), l.stats())).collect()
    }
}

impl Notifier for Router {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        if matches!(
            notification.kind,
            NotificationKind::Firing | NotificationKind::Repeat | NotificationKind::Resolved
        ) {
            let now = self.shared.clock.now_ms();
            let mut grouper = self.shared.grouper.lock();
            grouper.on_notification(notification, now);
            let due = grouper.due(now);
            self.shared.dispatch(due);
            drop(grouper);
            self.shared.wake_timer();
        }
        Ok(())
    }

    /// Sends every change still waiting for its group's timer and waits for
    /// the receivers (at most the flush timeout), then flushes each receiver.
    fn flush(&self) {
        let now = self.shared.clock.now_ms();
        let mut grouper = self.shared.grouper.lock();
        let waiting = grouper.drain(now);
        self.shared.dispatch(waiting);
        drop(grouper);
        self.shared.wait_idle();
        // stops what the receivers run of their own (an Alertmanager re-send)
        for lane in &self.shared.lanes {
            lane.receiver.flush();
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shared.timer.lock().stop = true;
        self.shared.timer_cv.notify_all();
        if let Some(h) = self.timer.take() {
            let _ = h.join();
        }
        let deadline = deadline_after(self.shared.flush_timeout);
        for (lane, h) in self.shared.lanes.iter().zip(self.workers.drain(..)) {
            if lane.stop_and_wait(deadline) {
                let _ = h.join();
            } // else: still busy in a send; it exits on its own when that returns.
        }
    }
}

struct Shared {
    grouper: Mutex<Grouper>,
    clock: Arc<dyn Clock>,
    lanes: Vec<Lane>,
    by_name: HashMap<String, usize>,
    timer: Mutex<TimerState>,
    timer_cv: Condvar,
    flush_timeout: Duration,
}

#[derive(Default)]
struct TimerState {
    stop: bool,
    wake: bool,
}

impl Shared {
    fn send_due(&self) {
        let now = self.clock.now_ms();
        let mut grouper = self.grouper.lock();
        let due = grouper.due(now);
        self.dispatch(due);
    }

    /// Hands messages to their lanes. Called with the grouper locked, so the
    /// messages of one group reach its lane in the order they were made.
    fn dispatch(&self, groups: Vec<AlertGroup>) {
        for g in groups {
            if let Some(&i) = self.by_name.get(&g.receiver) {
                self.lanes[i].push(g);
            }
        }
    }

    fn wake_timer(&self) {
        self.timer.lock().wake = true;
        self.timer_cv.notify_all();
    }

    fn wait_idle(&self) -> bool {
        let deadline = deadline_after(self.flush_timeout);
        let mut all = true;
        for lane in &self.lanes {
            all &= lane.wait_idle(deadline);
        }
        all
    }

    fn run_timer(&self) {
        loop {
            let next = self.grouper.lock().next_due();
            let now = self.clock.now_ms();
            if next.is_some_and(|t| t <= now) {
                self.send_due();
                continue;
            }
            let sleep = next.map_or(TIMER_MAX_SLEEP, |t| {
                Duration::from_millis(u64::try_from(t.saturating_sub(now)).unwrap_or(0))
                    .min(TIMER_MAX_SLEEP)
            });
            let mut state = self.timer.lock();
            if state.stop {
                return;
            }
            if !state.wake {
                let _ = self.timer_cv.wait_for(&mut state, sleep);
            }
            state.wake = false;
            if state.stop {
                return;
            }
        }
    }
}

struct Lane {
    receiver: Box<dyn Receiver>,
    state: Mutex<LaneState>,
    /// Wakes the lane's thread.
    work: Condvar,
    /// Wakes those waiting for the lane to be idle.
    idle: Condvar,
    sent: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    merged: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct LaneState {
    /// Messages waiting, at most one per group, in the order they fell due.
    pending: Vec<AlertGroup>,
    busy: bool,
    stop: bool,
    exited: bool,
    /// Counts the batches taken; the one in hand while `busy`.
    batch: u64,
    /// The batch a wait gave up on; later waits skip the lane while it is
    /// still in that batch.
    late_batch: Option<u64>,
}

impl Lane {
    fn new(receiver: Box<dyn Receiver>) -> Self {
        Lane {
            receiver,
            state: Mutex::new(LaneState::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            merged: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> RouterStats {
        RouterStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            merged: self.merged.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn push(&self, group: AlertGroup) {
        let mut state = self.state.lock();
        if let Some(old) = state.pending.iter_mut().find(|p| p.group_key == group.group_key) {
            let lost = merge(old, group);
            self.merged.fetch_add(1, Ordering::Relaxed);
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        } else {
            state.pending.push(group);
        }
        drop(state);
        self.work.notify_one();
    }

    fn run(&self) {
        loop {
            let batch = {
                let mut state = self.state.lock();
                while state.pending.is_empty() && !state.stop {
                    self.work.wait(&mut state);
                }
                if state.pending.is_empty() {
                    state.exited = true;
                    self.idle.notify_all();
                    return;
                }
                state.busy = true;
                state.batch += 1;
                std::mem::take(&mut state.pending)
            };
            for group in &batch {
                match catch_unwind(AssertUnwindSafe(|| self.receiver.send(group))) {
                    Ok(Ok(())) => self.sent.fetch_add(1, Ordering::Relaxed),
                    Ok(Err(_)) => self.failed.fetch_add(1, Ordering::Relaxed),
                    Err(_) => {
                        self.panicked.fetch_add(1, Ordering::Relaxed);
                        self.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            let mut state = self.state.lock();
            state.busy = false;
            drop(state);
            self.idle.notify_all();
        }
    }

    /// Waits until the lane has nothing to do, at most until `deadline`.
    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        if state.busy && state.late_batch == Some(state.batch) {
            return false;
        }
        while (state.busy || !state.pending.is_empty()) && !state.exited {
            let timed_out = if let Some(d) = deadline {
                self.idle.wait_until(&mut state, d).timed_out()
            } else {
                self.idle.wait(&mut state);
                false
            };
            if timed_out && (state.busy || !state.pending.is_empty()) {
                state.late_batch = Some(state.batch);
                return false;
            }
        }
        true
    }

    /// Asks the thread to finish what waits and exit; `true` once it has,
    /// `false` if it is still busy at `deadline`.
    fn stop_and_wait(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        state.stop = true;
        self.work.notify_all();
        while !state.exited {
            match deadline {
                Some(d) => {
                    if self.idle.wait_until(&mut state, d).timed_out() && !state.exited {
                        return false;
                    }
                }
                None => self.idle.wait(&mut state),
            }
        }
        true
    }
}

/// Merges a later message of one group into the one still waiting: the later
/// one lists every alert still in the group, so it wins; the resolves listed
/// only by the earlier one are kept. Returns the resolves lost because their
/// alert fires again in the later message.
fn merge(waiting: &mut AlertGroup, later: AlertGroup) -> u64 {
    let mut lost = 0;
    let mut kept = Vec::new();
    for n in waiting.alerts.drain(..) {
        if n.kind != NotificationKind::Resolved {
            continue;
        }
        if later.alerts.iter().any(|l| l.alert_id == n.alert_id) {
            lost += 1;
        } else {
            kept.push(n);
        }
    }
    *waiting = later;
    kept.append(&mut waiting.alerts);
    waiting.alerts = kept;
    lost
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
