//! The notification dispatcher: delivers notifications to handlers on threads
//! of their own, so that no handler can stall evaluation or another handler.
//!
//! # Design
//!
//! ```text
//!  evaluator ──try_send──► [main queue, bounded] ──► "watchpost-dispatch" (fan-out)
//!                                                      │ try_send to each handler
//!                          ┌───────────────────────────┼───────────────────────────┐
//!                          ▼                           ▼                           ▼
//!                [handler queue, bounded]    [handler queue, bounded]            ...
//!                          │                           │
//!            "watchpost-handler-audit"      "watchpost-handler-log"
//!             catch_unwind(notify)           catch_unwind(notify)
//! ```
//!
//! - Submitting never blocks: a full main queue drops the notification and
//!   counts it (`overflowed`).
//! - The fan-out thread never blocks either: it hands each notification (one
//!   `Arc`, shared by all handlers) to every handler queue with `try_send`; a
//!   full handler queue drops it for that handler only and counts it in the
//!   handler's `dropped`. A handler that blocks therefore fills only its own
//!   queue, and every other handler keeps receiving.
//! - Each handler runs on its own thread and is called under `catch_unwind`:
//!   an error counts as `failed`, a panic as `failed` and `panicked`.
//! - Handlers can be added at build time or while running; a handler added
//!   while running receives every notification submitted after the
//!   registration returns.
//! - Shutdown closes a gate (later submissions are rejected and counted),
//!   then queues a stop message behind everything already accepted. The
//!   fan-out thread hands everything out, closes the handler queues and joins
//!   the handler threads, which drain their queues and call
//!   [`Notifier::flush`] before they exit. Nothing accepted is lost, unless a
//!   handler queue was already full (counted as dropped), or a handler is
//!   still busy when the grace period (10 s by default) ends: it is then left
//!   running, detached, and what it has not taken counts as dropped.
//! - A thread never joins itself: if the last owner is dropped on one of the
//!   dispatcher's own threads, the join is skipped and the threads finish on
//!   their own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::alert::{HandlerStats, Notification, NotificationStats, Notifier};
use crate::error::{Error, Result};

/// Default capacity of the main queue.
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 1_024;

/// Default time shutdown waits for the handlers to finish: 10 s.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Default capacity of each handler's queue.
pub(crate) const DEFAULT_HANDLER_QUEUE_CAPACITY: usize = 256;

/// Counters of the dispatcher and of each handler.
pub(crate) type DispatcherStats = NotificationStats;

enum Msg {
    Notify(Box<Notification>),
    AddHandler(HandlerSlot),
    /// Replies with each handler and how many notifications were queued to it so far.
    Sync(Sender<Vec<(Arc<HandlerShared>, u64)>>),
    Shutdown,
    /// Signals `.0`, then blocks the fan-out thread until `.1` yields (tests only).
    #[cfg(test)]
    Pause(Sender<()>, Receiver<()>),
}

/// State shared between one handler's thread and everyone who reads its counters.
struct HandlerShared {
    name: String,
    thread: Mutex<Option<ThreadId>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    dropped: AtomicU64,
    /// Notifications taken off the queue and handled (delivered or failed).
    processed: Mutex<u64>,
    progress: Condvar,
    /// Set when a flush gave up waiting for this handler; later flushes do
    /// not wait for it again until it has caught up.
    lagging: std::sync::atomic::AtomicBool,
    /// Set (under `processed`) when the thread has drained its queue and
    /// flushed the notifier, just before it exits.
    finished: std::sync::atomic::AtomicBool,
}

impl HandlerShared {
    fn stats(&self) -> HandlerStats {
        HandlerStats {
            name: self.name.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Waits until the thread has drained its queue and flushed, at most until
    /// `deadline`; returns whether it has.
    fn wait_finished(&self, deadline: Instant) -> bool {
        let mut processed = self.processed.lock();
        while !self.finished.load(Ordering::Acquire) {
            if self.progress.wait_until(&mut processed, deadline).timed_out() {
                return self.finished.load(Ordering::Acquire);
            }
        }
        true
    }

    /// Waits until `target` notifications were processed; `false` on timeout.
    /// A handler that missed an earlier flush's deadline and has not caught up
    /// since is not waited for (`false` at once): one stuck handler delays
    /// one flush, not every flush.
    fn wait_for(&self, target: u64, deadline: Option<Instant>) -> bool {
        if *self.thread.lock() == Some(thread::current().id()) {
            return true; // called from this handler itself: waiting would deadlock
        }
        let mut processed = self.processed.lock();
        if *processed >= target {
            self.lagging.store(false, Ordering::Relaxed);
            return true;
        }
        if deadline.is_some() && self.lagging.load(Ordering::Relaxed) {
            return false;
        }
        while *processed < target {
            match deadline {
                None => self.progress.wait(&mut processed),
                Some(d) => {
                    if self.progress.wait_until(&mut processed, d).timed_out()
                        && *processed < target
                    {
                        self.lagging.store(true, Ordering::Relaxed);
                        return false;
                    }
                }
            }
        }
        self.lagging.store(false, Ordering::Relaxed);
        true
    }
}

/// What the fan-out thread keeps per handler.
struct HandlerSlot {
    tx: Sender<Arc<Notification>>,
    shared: Arc<HandlerShared>,
    join: JoinHandle<()>,
    queued: u64,
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
    handler_capacity: usize,
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
    handlers: Vec<(String, Box<dyn Notifier>)>,
}

impl std::fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("capacity", &self.capacity)
            .field("handler_capacity", &self.handler_capacity)
            .field("grace", &self.grace)
            .field("handlers", &self.handlers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

impl DispatcherBuilder {
    /// Capacity of the main queue. Default: [`DEFAULT_QUEUE_CAPACITY`].
    pub(crate) fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Capacity of each handler's queue. Default: [`DEFAULT_HANDLER_QUEUE_CAPACITY`].
    pub(crate) fn handler_capacity(mut self, capacity: usize) -> Self {
        self.handler_capacity = capacity;
        self
    }

    /// How long shutdown waits for the handlers to drain their queues and
    /// flush; one still busy then is left running, detached. Default:
    /// [`DEFAULT_SHUTDOWN_GRACE`].
    pub(crate) fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Registers a handler to start with. Default: none.
    pub(crate) fn handler(mut self, name: impl Into<String>, notifier: impl Notifier) -> Self {
        self.handlers.push((name.into(), Box::new(notifier)));
        self
    }

    /// Validates the settings and starts the threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero capacity, [`Error::Spawn`] if a thread
    /// cannot be started (threads already started are stopped and joined).
    pub(crate) fn build(self) -> Result<Dispatcher> {
        for (field, v) in [
            ("dispatcher.capacity", self.capacity),
            ("dispatcher.handler_capacity", self.handler_capacity),
        ] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "0; it must be at least 1".to_owned(),
                });
            }
        }
        let shared = Arc::new(Shared {
            open: RwLock::new(true),
            submitted: AtomicU64::new(0),
            flushed_through: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            handlers: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            handler_capacity: self.handler_capacity,
            grace: self.grace,
        });
        let mut slots = Vec::with_capacity(self.handlers.len());
        for (name, notifier) in self.handlers {
            match spawn_handler(&shared, name, notifier) {
                Ok(slot) => slots.push(slot),
                Err(e) => {
                    stop_slots(slots, shared.grace);
                    return Err(e);
                }
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(self.capacity);
        let grace = shared.grace;
        // If this spawn fails, the closure and the slots in it are dropped: the
        // handler queues close and the handler threads end on their own.
        let join = thread::Builder::new()
            .name("watchpost-dispatch".to_owned())
            .spawn(move || fan_out(&rx, slots, grace))
            .map_err(Error::Spawn)?;
        shared.threads.lock().push(join.thread().id());
        Ok(Dispatcher { handle: DispatcherHandle { tx, shared }, join: Some(join) })
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
    pub(crate) fn try_send(&self, n: Notification) -> bool {
        let open = self.shared.open.read();
        if !*open {
            self.shared.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(Msg::Notify(Box::new(n))) {
            Ok(()) => {
                self.shared.submitted.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(TrySendError::Full(_)) => {
                self.shared.overflowed.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues every notification of `batch`; returns how many were accepted.
    pub(crate) fn send_all(&self, batch: impl IntoIterator<Item = Notification>) -> usize {
        batch.into_iter().map(|n| usize::from(self.try_send(n))).sum()
    }

    /// Adds a handler while running. It receives every notification submitted
    /// after this returns.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if its thread cannot be started, [`Error::ShutDown`]
    /// if the dispatcher is shutting down.
    pub(crate) fn register(&self, name: impl Into<String>, notifier: impl Notifier) -> Result<()> {
        let slot = spawn_handler(&self.shared, name.into(), Box::new(notifier))?;
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
    /// handled (delivered, failed or dropped) by every handler. A handler that
    /// blocks makes this wait too; see [`flush_timeout`](Self::flush_timeout).
    /// Returns at once after shutdown (everything was delivered then).
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        let _ = self.flush_until(|| None);
    }

    /// Like [`flush`](Self::flush), waiting at most `timeout` for each
    /// handler (and not at all for one that missed an earlier deadline and
    /// has not caught up); returns whether everything was handled.
    pub(crate) fn flush_timeout(&self, timeout: Duration) -> bool {
        self.flush_until(|| Some(Instant::now() + timeout))
    }

    /// Waits for every handler, each until `deadline()` (taken when its turn
    /// comes); returns whether everything was handled.
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
    /// before the call; returns each handler with its queued count.
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
) -> Result<HandlerSlot> {
    let (tx, rx) = crossbeam_channel::bounded::<Arc<Notification>>(shared.handler_capacity);
    let thread_name: String =
        format!("watchpost-handler-{name}").chars().filter(|c| *c != '\0').collect();
    let hs = Arc::new(HandlerShared {
        name,
        thread: Mutex::new(None),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        panicked: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        processed: Mutex::new(0),
        lagging: std::sync::atomic::AtomicBool::new(false),
        finished: std::sync::atomic::AtomicBool::new(false),
        progress: Condvar::new(),
    });
    let worker = Arc::clone(&hs);
    let join = thread::Builder::new()
        .name(thread_name)
        .spawn(move || run_handler(&rx, notifier.as_ref(), &worker))
        .map_err(Error::Spawn)?;
    *hs.thread.lock() = Some(join.thread().id());
    shared.threads.lock().push(join.thread().id());
    shared.handlers.lock().push(Arc::clone(&hs));
    Ok(HandlerSlot { tx, shared: hs, join, queued: 0 })
}

fn run_handler(rx: &Receiver<Arc<Notification>>, notifier: &dyn Notifier, hs: &HandlerShared) {
    for n in rx {
        match catch_unwind(AssertUnwindSafe(|| notifier.notify(&n))) {
            Ok(Ok(())) => hs.delivered.fetch_add(1, Ordering::Relaxed),
            Ok(Err(_)) => hs.failed.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                hs.panicked.fetch_add(1, Ordering::Relaxed);
                hs.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        *hs.processed.lock() += 1;
        hs.progress.notify_all();
    }
    let _ = catch_unwind(AssertUnwindSafe(|| notifier.flush()));
    let _guard = hs.processed.lock();
    hs.finished.store(true, Ordering::Release);
    hs.progress.notify_all();
}

fn fan_out(rx: &Receiver<Msg>, mut slots: Vec<HandlerSlot>, grace: Duration) {
    while let Ok(msg) = rx.recv() {
        if !handle_msg(msg, &mut slots) {
            break;
        }
    }
    // The gate is closed, so nothing new arrives; hand out any stragglers.
    while let Ok(msg) = rx.try_recv() {
        handle_msg(msg, &mut slots);
    }
    stop_slots(slots, grace);
}

/// Handles one message; `false` means stop.
fn handle_msg(msg: Msg, slots: &mut Vec<HandlerSlot>) -> bool {
    match msg {
        Msg::Notify(n) => {
            let n = Arc::new(*n);
            for slot in slots.iter_mut() {
                match slot.tx.try_send(Arc::clone(&n)) {
                    Ok(()) => slot.queued += 1,
                    Err(_) => {
                        slot.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Msg::AddHandler(slot) => slots.push(slot),
        Msg::Sync(reply) => {
            let _ = reply.send(slots.iter().map(|s| (Arc::clone(&s.shared), s.queued)).collect());
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

/// Closes the handler queues and joins their threads (they drain and flush
/// first). A handler still busy `grace` after this starts is left running,
/// detached: what it has not taken yet counts as dropped.
fn stop_slots(slots: Vec<HandlerSlot>, grace: Duration) {
    let me = thread::current().id();
    let deadline = Instant::now() + grace;
    let pending: Vec<(JoinHandle<()>, Arc<HandlerShared>, u64)> = slots
        .into_iter()
        .map(|s| {
            drop(s.tx);
            (s.join, s.shared, s.queued)
        })
        .collect();
    for (join, hs, queued) in pending {
        if join.thread().id() == me {
            continue;
        }
        if hs.wait_finished(deadline) {
            let _ = join.join();
        } else {
            let processed = *hs.processed.lock();
            // the one in progress may still complete; everything behind it is lost
            let lost = queued.saturating_sub(processed).saturating_sub(1);
            hs.dropped.fetch_add(lost, Ordering::Relaxed);
            drop(join); // detached
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::alert::{
        AlertManager, AlertRule, ChannelNotifier, FnNotifier, MemoryView, NotificationKind,
        TryFnNotifier,
    };
    use crate::key::SeriesKey;

    /// `count` distinct notifications (firing, then resolved, for one rule).
    fn notifications(count: usize) -> Vec<Notification> {
        let mut mgr = AlertManager::new(vec![
            AlertRule::builder("r", "m").above(1.0).without_flap_detection().build().unwrap(),
        ])
        .unwrap();
        let key = SeriesKey::new("m", &[]).unwrap();
        let mut view = MemoryView::new();
        let mut out = Vec::new();
        let mut t = 0;
        while out.len() < count {
            t += 1_000;
            view.push(key.clone(), t, if out.len() % 2 == 0 { 5.0 } else { 0.0 });
            out.extend(mgr.evaluate(t, &view));
        }
        out
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
            .handler("a", ChannelNotifier::new(tx_a))
            .handler("b", Flag(Arc::clone(&flushed), ChannelNotifier::new(tx_b)))
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
        assert!(
            stats.handlers.iter().all(|s| s.delivered == 50 && s.failed == 0 && s.dropped == 0)
        );
        // After shutdown, submissions are rejected and counted.
        assert!(!h.try_send(sent[0].clone()));
        assert_eq!(h.stats().rejected, 1);
        assert!(matches!(
            h.register("late", FnNotifier(|_: &Notification| {})),
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
            )
            .handler("fails", TryFnNotifier(|_: &Notification| Err("endpoint down".into())))
            .handler("ok", ChannelNotifier::new(tx))
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
    fn blocking_handler_delays_neither_others_nor_submitters_and_drops_are_counted() {
        let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let (fast_tx, fast_rx) = crossbeam_channel::unbounded();
        let blocker = FnNotifier(move |_: &Notification| {
            let _ = entered_tx.try_send(());
            let _ = release_rx.recv(); // blocks until the test releases it
        });
        let d = Dispatcher::builder()
            .handler_capacity(2)
            .handler("blocking", blocker)
            .handler("fast", ChannelNotifier::new(fast_tx))
            .build()
            .unwrap();
        let h = d.handle();
        let batch = notifications(10);
        assert!(h.try_send(batch[0].clone()));
        entered_rx.recv().unwrap(); // the blocking handler holds the first one
        assert_eq!(fast_rx.recv().unwrap().id, batch[0].id);
        // The evaluator keeps submitting without blocking, and the other handler
        // receives each one while the first is stuck (each is awaited before the
        // next is sent, so the fast handler's small queue never overflows).
        for n in &batch[1..] {
            assert!(h.try_send(n.clone()));
            assert_eq!(fast_rx.recv().unwrap().id, n.id);
        }
        h.sync().unwrap(); // the fan-out has handed everything out
        let blocking = h.stats().handlers[0].clone();
        assert_eq!((blocking.delivered, blocking.dropped), (0, 7)); // 1 in hand + 2 queued
        assert!(!h.flush_timeout(Duration::from_millis(1)));
        // Release it: the in-hand one and the two queued are delivered on shutdown.
        drop(release_tx);
        d.shutdown().unwrap();
        let blocking = h.stats().handlers[0].clone();
        assert_eq!((blocking.delivered, blocking.dropped), (3, 7));
    }

    #[test]
    fn main_queue_overflow_is_counted() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let d = Dispatcher::builder()
            .capacity(4)
            .handler("ok", ChannelNotifier::new(tx))
            .build()
            .unwrap();
        let h = d.handle();
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        h.pause(release_rx); // the fan-out thread is blocked and the queue is empty
        let accepted = h.send_all(notifications(10));
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
        h.register("late", ChannelNotifier::new(tx)).unwrap();
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
            .handler("ok", ChannelNotifier::new(tx))
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
        assert!(err.to_string().contains("handler_capacity"), "{err}");
    }
}
