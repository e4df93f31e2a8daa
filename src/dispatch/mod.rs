//! The notification dispatcher: delivers notifications to handlers on threads
//! of their own, so that no handler can stall evaluation or another handler,
//! and loses nothing for a handler that keeps up eventually.
//!
//! # Design
//!
//! ```text
//!  evaluator ──try_send(batch)──► [main queue, bounded] ──► "watchpost-dispatch" (fan-out)
//!                                                             │ push into each mailbox
//!                          ┌──────────────────────────────────┼───────────────────────┐
//!                          ▼                                  ▼                       ▼
//!            [mailbox, coalesced per alert]     [mailbox, coalesced per alert]       ...
//!                          │                                  │
//!            "watchpost-handler-audit"            "watchpost-handler-log"
//!             catch_unwind(notify)                 catch_unwind(notify)
//! ```
//!
//! - Submitting never blocks. The evaluator hands over one batch per
//!   evaluation; a full main queue (only possible if the fan-out thread is
//!   starved) drops the batch and counts its notifications (`overflowed`).
//! - The fan-out thread never blocks either: it pushes each notification (one
//!   `Arc`, shared by all handlers) into every handler's mailbox under a
//!   short lock. A mailbox is not a bounded channel: it keeps the waiting
//!   notices in order, coalesced per alert instance (see [`mailbox`]), so
//!   what waits is bounded by the number of alert instances times
//!   [`mailbox::INSTANCE_LIMIT`]. A handler that is merely slow loses
//!   nothing: it sees every `Resolved` whose `Firing` it saw, in order.
//! - A handler is *stuck* when the call it is in has lasted
//!   `stuck_timeout` or longer, or when more than `handler_capacity` notices
//!   wait for it. Call durations are wall time on the monotonic clock, like
//!   the flush timeout and the grace period: the engine's [`Clock`](crate::Clock)
//!   times the data, while this times threads (a wall clock stepped forward
//!   must not make every busy handler stuck). A notification for a stuck
//!   handler is dropped, together with everything waiting for it, and
//!   counted in its `dropped`; once the call returns it receives what is
//!   decided from then on. Only a stuck handler loses notifications.
//! - Each handler runs on its own thread and is called under `catch_unwind`:
//!   an error counts as `failed`, a panic as `failed` and `panicked`.
//! - Handlers can be added at build time or while running; a handler added
//!   while running receives every notification submitted after the
//!   registration returns.
//! - Shutdown closes a gate (later submissions are rejected and counted),
//!   then queues a stop message behind everything already accepted. The
//!   fan-out thread hands everything out, closes the mailboxes and joins the
//!   handler threads, which drain their mailboxes and call
//!   [`Notifier::flush`] before they exit. A handler still busy when the
//!   grace period (10 s by default) ends is left running, detached, and what
//!   still waits for it counts as dropped.
//! - Every deadline saturates: a duration too long to add to now waits in
//!   effect forever instead of overflowing.
//! - A thread never joins itself: if the last owner is dropped on one of the
//!   dispatcher's own threads, the join is skipped and the threads finish on
//!   their own.

mod mailbox;
#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex, RwLock};

use self::mailbox::Mailbox;
use crate::alert::{HandlerStats, Notification, NotificationStats, Notifier};
use crate::error::{Error, Result};
use crate::metric::Counter;
use crate::registry::Registry;

/// Default capacity of the main queue, in batches (one per evaluation).
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 1_024;

/// Default time shutdown waits for the handlers to finish: 10 s.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Default most notices that may wait for one handler (after coalescing)
/// before it counts as stuck.
pub(crate) const DEFAULT_HANDLER_QUEUE_CAPACITY: usize = 65_536;

/// Default time one handler call may last (wall time) before the handler
/// counts as stuck: 30 s.
pub(crate) const DEFAULT_STUCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How far a deadline lies when the requested one cannot be represented.
const FAR_FUTURE: Duration = Duration::from_hours(100 * 365 * 24);

/// Counters of the dispatcher and of each handler.
pub(crate) type DispatcherStats = NotificationStats;

/// `Instant::now() + d`, saturating instead of overflowing: a duration too
/// long to add waits about a century, in effect forever.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).or_else(|| now.checked_add(FAR_FUTURE)).unwrap_or(now)
}

enum Msg {
    Notify(Vec<Notification>),
    AddHandler(HandlerSlot),
    /// Replies with each handler and how many notifications it was handed so far.
    Sync(Sender<Vec<(Arc<HandlerShared>, u64)>>),
    Shutdown,
    /// Signals `.0`, then blocks the fan-out thread until `.1` yields (tests only).
    #[cfg(test)]
    Pause(Sender<()>, Receiver<()>),
}

/// The counters one handler exposes in the registry (and so in `/metrics`),
/// labelled `handler="<name>"`; detached ones count for nobody.
#[derive(Clone, Default)]
pub(crate) struct HandlerMetrics {
    delivered: Counter,
    failed: Counter,
    dropped: Counter,
    coalesced: Counter,
}

impl HandlerMetrics {
    /// Registers (or fetches) the counters of handler `name` in `registry`.
    /// A counter the registry refuses (a series cap, a label too long) stays
    /// detached: the handler's [`HandlerStats`] still count.
    pub(crate) fn register(registry: &Registry, name: &str) -> Self {
        let counter = |metric: &str| {
            registry.counter(metric, &[("handler", name)]).unwrap_or_else(|_| Counter::detached())
        };
        HandlerMetrics {
            delivered: counter("watchpost_notifications_delivered_total"),
            failed: counter("watchpost_notifications_failed_total"),
            dropped: counter("watchpost_notifications_dropped_total"),
            coalesced: counter("watchpost_notifications_coalesced_total"),
        }
    }
}

/// One handler's mailbox and the bookkeeping `flush` and shutdown wait on.
#[derive(Default)]
struct Inbox {
    mail: Mailbox,
    /// Notifications handed to this handler.
    accepted: u64,
    /// Of `accepted`, those done with: handled, coalesced or dropped.
    settled: u64,
    /// When the handler took the notification it is handling.
    busy_since: Option<Instant>,
    /// Calls started so far: numbers the call in progress.
    calls: u64,
    /// The call in progress when a flush last gave up waiting for this
    /// handler: later flushes do not wait while that same call lasts.
    late_call: Option<u64>,
    /// No more notifications come: drain and exit.
    closed: bool,
    /// The thread has drained its mailbox and flushed, and is about to exit.
    finished: bool,
}

/// State shared between one handler's thread and everyone who reads its counters.
struct HandlerShared {
    name: String,
    thread: Mutex<Option<ThreadId>>,
    inbox: Mutex<Inbox>,
    /// Signalled when notifications arrive or the mailbox closes.
    work: Condvar,
    /// Signalled when `settled` grows or the thread finishes.
    progress: Condvar,
    delivered: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    dropped: AtomicU64,
    coalesced: AtomicU64,
    metrics: HandlerMetrics,
    /// Flushes waiting in [`wait_for`](Self::wait_for) (tests only).
    #[cfg(test)]
    waiters: std::sync::atomic::AtomicUsize,
}

impl HandlerShared {
    fn stats(&self) -> HandlerStats {
        HandlerStats {
            name: self.name.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
        }
    }

    /// Counts `n` notifications dropped; call with the inbox locked.
    fn drop_waiting(&self, inbox: &mut Inbox, n: u64) {
        if n > 0 {
            inbox.settled += n;
            self.dropped.fetch_add(n, Ordering::Relaxed);
            self.metrics.dropped.add(n);
        }
    }

    /// Hands `n` over (the inbox locked): dropped if the handler is stuck
    /// at `now`, else into the mailbox, coalesced.
    fn offer(&self, inbox: &mut Inbox, n: Arc<Notification>, now: Instant, limits: &Limits) {
        inbox.accepted += 1;
        let stuck = inbox
            .busy_since
            .is_some_and(|since| now.saturating_duration_since(since) >= limits.stuck);
        if stuck {
            let lost = inbox.mail.clear() + 1;
            self.drop_waiting(inbox, lost);
            return;
        }
        let coalesced = inbox.mail.push(n);
        if coalesced > 0 {
            inbox.settled += coalesced;
            self.coalesced.fetch_add(coalesced, Ordering::Relaxed);
            self.metrics.coalesced.add(coalesced);
        }
        if inbox.mail.len() > limits.handler_capacity {
            let lost = inbox.mail.clear();
            self.drop_waiting(inbox, lost);
        }
    }

    /// Waits until the thread has drained its mailbox and flushed, at most
    /// until `deadline`; returns whether it has.
    fn wait_finished(&self, deadline: Instant) -> bool {
        let mut inbox = self.inbox.lock();
        while !inbox.finished {
            if self.progress.wait_until(&mut inbox, deadline).timed_out() {
                return inbox.finished;
            }
        }
        true
    }

    /// Waits until `target` notifications are settled: each handled (its
    /// `notify` call has returned), coalesced or dropped; `false` on
    /// timeout. A handler still in the call an earlier flush gave up on is
    /// not waited for (`false` at once): one stuck call delays one flush,
    /// not every flush. Once that call returns, flushes wait for the
    /// handler again, however much waits for it.
    fn wait_for(&self, target: u64, deadline: Option<Instant>) -> bool {
        if *self.thread.lock() == Some(thread::current().id()) {
            return true; // called from this handler itself: waiting would deadlock
        }
        let mut inbox = self.inbox.lock();
        if inbox.settled >= target {
            return true;
        }
        if deadline.is_some()
            && inbox.busy_since.is_some()
            && inbox.late_call.is_some_and(|late| late == inbox.calls)
        {
            return false;
        }
        #[cfg(test)]
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut done = true;
        while inbox.settled < target {
            match deadline {
                None => self.progress.wait(&mut inbox),
                Some(d) => {
                    if self.progress.wait_until(&mut inbox, d).timed_out() && inbox.settled < target
                    {
                        inbox.late_call = inbox.busy_since.map(|_| inbox.calls);
                        done = false;
                        break;
                    }
                }
            }
        }
        #[cfg(test)]
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        done
    }
}

/// What the fan-out thread keeps per handler.
struct HandlerSlot {
    shared: Arc<HandlerShared>,
    join: JoinHandle<()>,
}

/// When a handler counts as stuck.
#[derive(Debug, Clone, Copy)]
struct Limits {
    handler_capacity: usize,
    stuck: Duration,
}

struct Shared {
    /// `true` while submissions are accepted.
    open: RwLock<bool>,
    submitted: AtomicU64,
    /// `submitted` as of the start of the last flush that saw every handler done.
    flushed_through: AtomicU64,
    overflowed: AtomicU64,
    rejected: AtomicU64,
    handlers: Mutex<Vec<Arc<HandlerShared>>>,
    threads: Mutex<Vec<ThreadId>>,
    /// How long shutdown waits for the handlers to finish.
    grace: Duration,
}

impl Shared {
    fn on_own_thread(&self) -> bool {
        self.threads.lock().contains(&thread::current().id())
    }
}

/// Builds a [`Dispatcher`]; every setter documents its default.
pub(crate) struct DispatcherBuilder {
    capacity: usize,
    handler_capacity: usize,
    grace: Duration,
    stuck_timeout: Duration,
    handlers: Vec<(String, Box<dyn Notifier>, HandlerMetrics)>,
}

impl std::fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("capacity", &self.capacity)
            .field("handler_capacity", &self.handler_capacity)
            .field("grace", &self.grace)
            .field("stuck_timeout", &self.stuck_timeout)
            .field("handlers", &self.handlers.iter().map(|(n, ..)| n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DispatcherBuilder {
    /// Capacity of the main queue, in batches. Default: [`DEFAULT_QUEUE_CAPACITY`].
    pub(crate) fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Most notices that may wait for one handler (after coalescing); past
    /// it, the handler counts as stuck. Default: [`DEFAULT_HANDLER_QUEUE_CAPACITY`].
    pub(crate) fn handler_capacity(mut self, capacity: usize) -> Self {
        self.handler_capacity = capacity;
        self
    }

    /// How long shutdown waits for the handlers to drain their mailboxes and
    /// flush; one still busy then is left running, detached. Default:
    /// [`DEFAULT_SHUTDOWN_GRACE`].
    pub(crate) fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long one handler call may last (wall time) before the handler
    /// counts as stuck. Default: [`DEFAULT_STUCK_TIMEOUT`].
    pub(crate) fn stuck_timeout(mut self, timeout: Duration) -> Self {
        self.stuck_timeout = timeout;
        self
    }

    /// Registers a handler to start with, counting also into `metrics`. Default: none.
    pub(crate) fn handler(
        mut self,
        name: impl Into<String>,
        notifier: impl Notifier,
        metrics: HandlerMetrics,
    ) -> Self {
        self.handlers.push((name.into(), Box::new(notifier), metrics));
        self
    }

    /// Validates the settings and starts the threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero capacity or stuck timeout,
    /// [`Error::Spawn`] if a thread cannot be started (threads already
    /// started are stopped and joined).
    pub(crate) fn build(self) -> Result<Dispatcher> {
        for (field, v) in [
            ("notification_queue_capacity", self.capacity),
            ("notifier_queue_capacity", self.handler_capacity),
        ] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be at least 1, got 0".to_owned(),
                });
            }
        }
        if self.stuck_timeout < Duration::from_millis(1) {
            return Err(Error::InvalidConfig {
                field: "notifier_stuck_timeout",
                reason: format!("must be at least 1 ms, got {:?}", self.stuck_timeout),
            });
        }
        let limits = Limits { handler_capacity: self.handler_capacity, stuck: self.stuck_timeout };
        let shared = Arc::new(Shared {
            open: RwLock::new(true),
            submitted: AtomicU64::new(0),
            flushed_through: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            handlers: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            grace: self.grace,
        });
        let mut slots = Vec::with_capacity(self.handlers.len());
        for (name, notifier, metrics) in self.handlers {
            match spawn_handler(&shared, name, notifier, metrics) {
                Ok(slot) => slots.push(slot),
                Err(e) => {
                    stop_slots(slots, shared.grace);
                    return Err(e);
                }
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(self.capacity);
        let fan_shared = Arc::clone(&shared);
        // If this spawn fails, the closure and the slots in it are dropped: the
        // handler threads wait for work that never comes. Close them first.
        let slots = SlotsGuard(Some(slots));
        let join = thread::Builder::new()
            .name("watchpost-dispatch".to_owned())
            .spawn(move || {
                let mut slots = slots;
                fan_out(&rx, slots.0.take().unwrap_or_default(), &fan_shared, limits);
            })
            .map_err(Error::Spawn)?;
        shared.threads.lock().push(join.thread().id());
        Ok(Dispatcher { handle: DispatcherHandle { tx, shared }, join: Some(join) })
    }
}

/// Closes the mailboxes of the slots it still holds when dropped, so their
/// threads end on their own (without joining them).
struct SlotsGuard(Option<Vec<HandlerSlot>>);

impl Drop for SlotsGuard {
    fn drop(&mut self) {
        for slot in self.0.take().unwrap_or_default() {
            slot.shared.inbox.lock().closed = true;
            slot.shared.work.notify_all();
        }
    }
}

/// Owns the dispatcher's threads: [`shutdown`](Self::shutdown) (or drop) delivers
/// everything accepted, flushes the handlers and joins the threads.
pub(crate) struct Dispatcher {
    handle: DispatcherHandle,
    join: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("stats", &self.handle.stats()).finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A builder with the documented defaults.
    pub(crate) fn builder() -> DispatcherBuilder {
        DispatcherBuilder {
            capacity: DEFAULT_QUEUE_CAPACITY,
            handler_capacity: DEFAULT_HANDLER_QUEUE_CAPACITY,
            grace: DEFAULT_SHUTDOWN_GRACE,
            stuck_timeout: DEFAULT_STUCK_TIMEOUT,
            handlers: Vec::new(),
        }
    }

    /// A cloneable handle for submitting, registering and reading stats.
    pub(crate) fn handle(&self) -> DispatcherHandle {
        self.handle.clone()
    }

    /// Stops accepting notifications, delivers everything accepted, calls
    /// [`Notifier::flush`] on every handler and joins the threads.
    ///
    /// # Errors
    ///
    /// [`Error::WorkerPanicked`] if the fan-out thread panicked.
    pub(crate) fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(join) = self.join.take() else { return Ok(()) };
        {
            let mut open = self.handle.shared.open.write();
            *open = false;
        }
        // Every accepted message is ahead of this one; the fan-out thread drains
        // the queue, so this blocks only while the queue is full.
        let _ = self.handle.tx.send(Msg::Shutdown);
        if self.handle.shared.on_own_thread() {
            return Ok(()); // never join the current thread; the threads finish on their own
        }
        join.join().map_err(|_| Error::WorkerPanicked)
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Submits notifications, registers handlers and reads counters; cheap to clone.
#[derive(Clone)]
pub(crate) struct DispatcherHandle {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DispatcherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherHandle").finish_non_exhaustive()
    }
}

impl DispatcherHandle {
    /// Queues `n` without blocking. Returns `false` if it was dropped: the queue
    /// was full (counted as overflowed) or the dispatcher is shutting down
    /// (counted as rejected).
    #[cfg(test)]
    pub(crate) fn try_send(&self, n: Notification) -> bool {
        self.send_all([n]) == 1
    }

    /// Queues every notification of `batch` as one message, without
    /// blocking; returns how many were accepted (all or none).
    pub(crate) fn send_all(&self, batch: impl IntoIterator<Item = Notification>) -> usize {
        let batch: Vec<Notification> = batch.into_iter().collect();
        let len = batch.len();
        if len == 0 {
            return 0;
        }
        let count = len as u64;
        let open = self.shared.open.read();
        if !*open {
            self.shared.rejected.fetch_add(count, Ordering::Relaxed);
            return 0;
        }
        match self.tx.try_send(Msg::Notify(batch)) {
            Ok(()) => {
                self.shared.submitted.fetch_add(count, Ordering::AcqRel);
                len
            }
            Err(TrySendError::Full(_)) => {
                self.shared.overflowed.fetch_add(count, Ordering::Relaxed);
                0
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.rejected.fetch_add(count, Ordering::Relaxed);
                0
            }
        }
    }

    /// Adds a handler while running, counting also into `metrics`. It
    /// receives every notification submitted after this returns.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if its thread cannot be started, [`Error::ShutDown`]
    /// if the dispatcher is shutting down.
    pub(crate) fn register(
        &self,
        name: impl Into<String>,
        notifier: impl Notifier,
        metrics: HandlerMetrics,
    ) -> Result<()> {
        let slot = spawn_handler(&self.shared, name.into(), Box::new(notifier), metrics)?;
        let open = self.shared.open.read();
        if !*open {
            drop(open);
            stop_slots(vec![slot], self.shared.grace);
            return Err(Error::ShutDown);
        }
        // Blocking is bounded: the fan-out thread drains the queue and never blocks.
        match self.tx.send(Msg::AddHandler(slot)) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendError(msg)) => {
                drop(open);
                if let Msg::AddHandler(slot) = msg {
                    stop_slots(vec![slot], self.shared.grace);
                }
                Err(Error::ShutDown)
            }
        }
    }

    /// Counters of the dispatcher and every handler.
    pub(crate) fn stats(&self) -> DispatcherStats {
        DispatcherStats {
            submitted: self.shared.submitted.load(Ordering::Relaxed),
            overflowed: self.shared.overflowed.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            handlers: self.shared.handlers.lock().iter().map(|h| h.stats()).collect(),
        }
    }

    /// Waits until every notification accepted before the call has been
    /// settled (handled, coalesced or dropped) by every handler. A handler
    /// that blocks makes this wait too; see [`flush_timeout`](Self::flush_timeout).
    /// Returns at once after shutdown (everything was delivered then).
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        let _ = self.flush_until(|| None);
    }

    /// Like [`flush`](Self::flush), waiting at most `timeout` for each
    /// handler (and not at all for one still in the call an earlier flush
    /// gave up on); returns whether everything was settled. A
    /// `timeout` too long to represent waits in effect forever.
    pub(crate) fn flush_timeout(&self, timeout: Duration) -> bool {
        self.flush_until(|| Some(deadline_after(timeout)))
    }

    /// Waits for every handler, each until `deadline()` (taken when its turn
    /// comes); returns whether everything was settled.
    fn flush_until(&self, deadline: impl Fn() -> Option<Instant>) -> bool {
        // Nothing accepted since the last complete flush: no round trip to the fan-out thread.
        let submitted = self.shared.submitted.load(Ordering::Acquire);
        if self.shared.flushed_through.load(Ordering::Acquire) == submitted {
            return true;
        }
        let Some(targets) = self.sync() else { return true };
        let all =
            targets.iter().fold(true, |all, (h, target)| h.wait_for(*target, deadline()) && all);
        if all {
            self.shared.flushed_through.fetch_max(submitted, Ordering::AcqRel);
        }
        all
    }

    /// Waits until the fan-out thread has handed out everything accepted
    /// before the call; returns each handler with its accepted count.
    fn sync(&self) -> Option<Vec<(Arc<HandlerShared>, u64)>> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        {
            let open = self.shared.open.read();
            if !*open {
                return None;
            }
            self.tx.send(Msg::Sync(reply_tx)).ok()?;
        }
        reply_rx.recv().ok()
    }

    /// Blocks the fan-out thread until `release` yields or disconnects; returns
    /// once it is blocked.
    #[cfg(test)]
    fn pause(&self, release: Receiver<()>) {
        let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
        let _ = self.tx.send(Msg::Pause(entered_tx, release));
        let _ = entered_rx.recv();
    }
}

fn spawn_handler(
    shared: &Arc<Shared>,
    name: String,
    notifier: Box<dyn Notifier>,
    metrics: HandlerMetrics,
) -> Result<HandlerSlot> {
    let thread_name: String =
        format!("watchpost-handler-{name}").chars().filter(|c| *c != '\0').collect();
    let hs = Arc::new(HandlerShared {
        name,
        thread: Mutex::new(None),
        inbox: Mutex::new(Inbox::default()),
        work: Condvar::new(),
        progress: Condvar::new(),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        panicked: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        coalesced: AtomicU64::new(0),
        metrics,
        #[cfg(test)]
        waiters: std::sync::atomic::AtomicUsize::new(0),
    });
    let worker = Arc::clone(&hs);
    let join = thread::Builder::new()
        .name(thread_name)
        .spawn(move || run_handler(notifier.as_ref(), &worker))
        .map_err(Error::Spawn)?;
    *hs.thread.lock() = Some(join.thread().id());
    shared.threads.lock().push(join.thread().id());
    shared.handlers.lock().push(Arc::clone(&hs));
    Ok(HandlerSlot { shared: hs, join })
}

fn run_handler(notifier: &dyn Notifier, hs: &HandlerShared) {
    loop {
        let next = {
            let mut inbox = hs.inbox.lock();
            loop {
                if let Some(n) = inbox.mail.pop() {
                    inbox.busy_since = Some(Instant::now());
                    inbox.calls += 1;
                    break Some(n);
                }
                if inbox.closed {
                    break None;
                }
                hs.work.wait(&mut inbox);
            }
        };
        let Some(n) = next else { break };
        match catch_unwind(AssertUnwindSafe(|| notifier.notify(&n))) {
            Ok(Ok(())) => {
                hs.delivered.fetch_add(1, Ordering::Relaxed);
                hs.metrics.delivered.inc();
            }
            Ok(Err(_)) => {
                hs.failed.fetch_add(1, Ordering::Relaxed);
                hs.metrics.failed.inc();
            }
            Err(_) => {
                hs.panicked.fetch_add(1, Ordering::Relaxed);
                hs.failed.fetch_add(1, Ordering::Relaxed);
                hs.metrics.failed.inc();
            }
        }
        {
            let mut inbox = hs.inbox.lock();
            inbox.busy_since = None;
            inbox.settled += 1;
        }
        hs.progress.notify_all();
    }
    let _ = catch_unwind(AssertUnwindSafe(|| notifier.flush()));
    hs.inbox.lock().finished = true;
    hs.progress.notify_all();
}

fn fan_out(rx: &Receiver<Msg>, mut slots: Vec<HandlerSlot>, shared: &Shared, limits: Limits) {
    while let Ok(msg) = rx.recv() {
        if !handle_msg(msg, &mut slots, limits) {
            break;
        }
    }
    // The gate is closed, so nothing new arrives; hand out any stragglers.
    while let Ok(msg) = rx.try_recv() {
        handle_msg(msg, &mut slots, limits);
    }
    stop_slots(slots, shared.grace);
}

/// Handles one message; `false` means stop.
fn handle_msg(msg: Msg, slots: &mut Vec<HandlerSlot>, limits: Limits) -> bool {
    match msg {
        Msg::Notify(batch) => {
            let now = Instant::now();
            let batch: Vec<Arc<Notification>> = batch.into_iter().map(Arc::new).collect();
            for slot in slots.iter() {
                let hs = &slot.shared;
                {
                    let mut inbox = hs.inbox.lock();
                    for n in &batch {
                        hs.offer(&mut inbox, Arc::clone(n), now, &limits);
                    }
                }
                hs.work.notify_one();
                hs.progress.notify_all(); // drops and coalescing settle notices too
            }
        }
        Msg::AddHandler(slot) => slots.push(slot),
        Msg::Sync(reply) => {
            let targets =
                slots.iter().map(|s| (Arc::clone(&s.shared), s.shared.inbox.lock().accepted));
            let _ = reply.send(targets.collect());
        }
        Msg::Shutdown => return false,
        #[cfg(test)]
        Msg::Pause(entered, release) => {
            let _ = entered.send(());
            let _ = release.recv();
        }
    }
    true
}

/// Closes the mailboxes and joins the handler threads (they drain and flush
/// first). A handler still busy `grace` after this starts is left running,
/// detached: what still waits for it counts as dropped.
fn stop_slots(slots: Vec<HandlerSlot>, grace: Duration) {
    let me = thread::current().id();
    let deadline = deadline_after(grace);
    for slot in &slots {
        slot.shared.inbox.lock().closed = true;
        slot.shared.work.notify_all();
    }
    for HandlerSlot { shared: hs, join } in slots {
        if join.thread().id() == me {
            continue;
        }
        if hs.wait_finished(deadline) {
            let _ = join.join();
        } else {
            let mut inbox = hs.inbox.lock();
            let lost = inbox.mail.clear();
            hs.drop_waiting(&mut inbox, lost);
            drop(inbox);
            drop(join); // detached
        }
    }
}
