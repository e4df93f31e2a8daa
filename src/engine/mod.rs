//! The engine: owner of the threads ([`Engine`]) and the cloneable handle ([`Monitor`]).

mod alerts;
mod builder;
mod config;
mod operations;
mod persist;
pub(crate) mod sink;
mod worker;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::OnceLock;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use builder::{
    DEFAULT_HISTORY_CAPACITY, DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_LABELS,
    DEFAULT_MAX_NAME_LENGTH, DEFAULT_RECENT_ALERT_EVENTS, DEFAULT_RECORD_QUEUE_CAPACITY,
    DEFAULT_SAMPLE_INTERVAL, DEFAULT_SERIES_CAP, DEFAULT_TOTAL_SERIES_CAP, EngineBuilder,
    MAX_NOTIFICATION_QUEUE_CAPACITY, MAX_RECORD_QUEUE_CAPACITY,
};

use crate::clock::Clock;
use crate::dashboard::{self, Dashboard, DashboardConfig, EngineStats};
use crate::error::{Error, Result};
use crate::history::{History, Sample};
use crate::key::SeriesId;
use crate::metric::{Counter, Gauge, Histogram, Summary};
use crate::registry::{Registry, SeriesInfo};

/// How long [`Monitor::flush`] waits at most for each handler to take the
/// notifications of its evaluation, by default: 5 s of wall time (see
/// [`EngineBuilder::notification_flush_timeout`]).
pub const DEFAULT_NOTIFY_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    static RECORDS_SINCE_CHECK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// An explicit observation on its way to the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) id: SeriesId,
    /// Given by the caller (`record_at`): dropped and counted if older than
    /// the series' newest sample, rather than inserted in place.
    pub(crate) explicit: bool,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

/// How far ahead of the engine clock [`Monitor::record_at`] accepts a sample: 10 minutes.
const RECORD_AT_MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

pub(crate) enum Control {
    Flush(Sender<()>),
    /// Evaluate the alert rules now (they changed).
    Evaluate,
    Shutdown,
}

/// The engine's own instruments, also visible as `watchpost_*` series.
pub(crate) struct SelfMetrics {
    pub(crate) ingested: Counter,
    pub(crate) dropped: Counter,
    /// `record_at` samples older than their series' newest sample.
    pub(crate) out_of_order: Counter,
    pub(crate) nonfinite: Counter,
    pub(crate) record_nonfinite: Counter,
    pub(crate) source_errors: Counter,
    pub(crate) rejected: Gauge,
    pub(crate) queue_depth: Gauge,
    pub(crate) series: Gauge,
    pub(crate) collection_seconds: Gauge,
    pub(crate) alerts_firing: Gauge,
    /// Recorded observations that replaced one at the same millisecond.
    pub(crate) coalesced: Counter,
    /// Ticks at which the clock went backwards or leapt (rates skipped).
    pub(crate) clock_jumps: Counter,
    /// Panics caught on the worker.
    pub(crate) worker_panics: Counter,
    pub(crate) last_worker_panic: parking_lot::Mutex<Option<String>>,
}

/// State shared by the worker and every [`Monitor`].
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry,
    pub(crate) history: RwLock<History>,
    pub(crate) dashboard: DashboardConfig,
    pub(crate) summary_window_ms: i64,
    pub(crate) started_ms: i64,
    pub(crate) metrics: SelfMetrics,
    pub(crate) worker_thread: OnceLock<ThreadId>,
    /// Explicit observations waiting for the worker (lock-free, bounded).
    pub(crate) records: ArrayQueue<Record>,
    /// Set by the worker before its final drain; later records count as dropped.
    pub(crate) closed: AtomicBool,
    pub(crate) detection: Detection,
    /// Recent anomalies, oldest first (bounded).
    pub(crate) anomalies: parking_lot::Mutex<std::collections::VecDeque<crate::dashboard::Anomaly>>,
    /// Rules, alert instances, silences and alert history. The worker
    /// evaluates it after each ingest and on every tick.
    pub(crate) alerts: parking_lot::Mutex<crate::alert::AlertManager>,
    /// Submits notifications to the handlers' threads; never blocks.
    pub(crate) notify: crate::dispatch::DispatcherHandle,
    /// How long `flush()` waits for each handler.
    pub(crate) notify_flush_timeout: Duration,
    /// A series silent for longer than this drops out of rule evaluation.
    pub(crate) staleness_ms: Option<i64>,
    /// The configuration document in force (empty when none was given);
    /// reloads diff against it.
    pub(crate) config: parking_lot::Mutex<crate::config::Config>,
    /// Slow operations and recent ERROR/WARN events (the `tracing` layer fills it).
    pub(crate) operations: crate::apm::OperationsLog,
    /// Exporters that push appended samples out of the process.
    pub(crate) sinks: Vec<Arc<dyn sink::SampleSink>>,
}

/// Which detector each series gets.
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub(crate) default: Option<crate::detect::DetectorSpec>,
    pub(crate) per_metric: std::collections::HashMap<String, Option<crate::detect::DetectorSpec>>,
    pub(crate) threshold: f64,
    /// Declared domains by metric name (others: `Domain::of_metric`).
    pub(crate) domains: std::collections::HashMap<String, crate::detect::Domain>,
}

/// A cheap, cloneable handle to a running engine: register metrics, record,
/// query, snapshot. Pass it around your application.
///
/// Obtain one with [`Engine::monitor`]; an [`Engine`] also derefs to it.
/// After the engine is shut down, queries still answer from the last state,
/// `record()` counts its samples as dropped and `flush()` returns
/// [`Error::ShutDown`].
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let monitor = engine.monitor();
/// std::thread::spawn(move || monitor.counter("jobs_total").map(|c| c.inc())).join().unwrap()?;
/// engine.flush()?;
/// assert_eq!(engine.latest("jobs_total").unwrap().value, 1.0);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
    control: Sender<Control>,
    /// Wakes the worker when the record queue fills up (capacity 1: never blocks).
    nudge: Sender<()>,
}

/// The monitoring engine: owns the worker thread, which it stops and joins
/// on [`shutdown`](Engine::shutdown) or drop. Derefs to [`Monitor`].
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.gauge("active_users")?.set(42.0);
/// engine.flush()?;
/// assert_eq!(engine.latest("active_users").unwrap().value, 42.0);
/// engine.shutdown()?;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct Engine {
    monitor: Monitor,
    worker: Option<JoinHandle<()>>,
    dispatcher: Option<crate::dispatch::Dispatcher>,
}

impl Engine {
    /// A builder with every setting at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// A cloneable handle to this engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let m: watchpost::Monitor = engine.monitor();
    /// m.gauge("g")?.set(1.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// Stops the worker after it ingests everything queued, takes a last
    /// sample and evaluates the alert rules a last time, joins it, then
    /// delivers every pending notification to every handler, calls
    /// [`Notifier::flush`](crate::alert::Notifier::flush) on each and joins
    /// their threads. A handler still busy after
    /// [`notifier_shutdown_grace`](EngineBuilder::notifier_shutdown_grace)
    /// (10 s by default) is left running, detached, and what it has not taken
    /// counts as dropped.
    ///
    /// Blocks until the worker and the handlers finish; from async code call it
    /// through `tokio::task::spawn_blocking` (see [the guide](crate::guide::http#calling-the-engine-from-async-code)).
    ///
    /// # Errors
    ///
    /// [`Error::WorkerPanicked`] if the worker thread or the dispatcher panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let m = engine.monitor();
    /// m.record("orders", &[], 3.0)?;
    /// engine.shutdown()?;
    /// assert_eq!(m.latest("orders").unwrap().value, 3.0); // nothing accepted is lost
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let worker = match self.worker.take() {
            None => Ok(()),
            Some(join) => {
                let _ = self.monitor.control.send(Control::Shutdown);
                if join.thread().id() == thread::current().id() {
                    Ok(()) // dropped on the worker itself (inside a source): it exits on its own
                } else {
                    join.join().map_err(|_| Error::WorkerPanicked)
                }
            }
        };
        // After the worker's last append: the sinks deliver what they hold.
        for sink in &self.monitor.shared.sinks {
            sink.shutdown();
        }
        // After the worker's last evaluation: nothing it queued is lost.
        let dispatcher =
            self.dispatcher.take().map_or(Ok(()), crate::dispatch::Dispatcher::shutdown);
        worker.and(dispatcher)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Deref for Engine {
    type Target = Monitor;
    fn deref(&self) -> &Monitor {
        &self.monitor
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("monitor", &self.monitor)
            .field("running", &self.worker.is_some())
            .field("dispatcher", &self.dispatcher)
            .finish()
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("series", &self.shared.registry.len())
            .finish_non_exhaustive()
    }
}

/// A handle that records explicit observations into one series, with the
/// name and labels resolved once.
///
/// Not the `metrics` crate's `Recorder` trait: the recorder for the
/// `metrics` facade is `watchpost::integrations::MetricsRecorder` (feature
/// `metrics`).
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let orders = engine.recorder("orders_value", &[("shop", "eu")])?;
/// orders.record(19.5);
/// engine.flush()?;
/// assert_eq!(engine.latest_with("orders_value", &[("shop", "eu")]).unwrap().value, 19.5);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct Recorder {
    monitor: Monitor,
    id: SeriesId,
}

impl Recorder {
    /// Records `value` with the engine clock's current time (read as
    /// [`Monitor::record`] reads it). Never blocks: when the queue is full
    /// the sample is dropped and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.recorder("x", &[])?.record(1.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[inline]
    pub fn record(&self, value: f64) {
        self.monitor.send_record(self.id, value);
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").field("series", &self.id.0).finish_non_exhaustive()
    }
}

impl Monitor {
    /// The registry, for registering instruments with labels and buckets.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.registry().counter("x_total", &[("a", "b")])?.inc();
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Registers (or fetches) a counter without labels.
    ///
    /// # Errors
    ///
    /// An invalid name, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.counter("cache_hits_total")?.inc();
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn counter(&self, name: &str) -> Result<Counter> {
        self.shared.registry.counter(name, &[])
    }

    /// Registers (or fetches) a counter with labels.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.counter_with("messages_total", &[("room", "general")])?.inc();
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn counter_with(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter> {
        self.shared.registry.counter(name, labels)
    }

    /// Registers (or fetches) a gauge without labels.
    ///
    /// # Errors
    ///
    /// An invalid name, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge("active_users")?.set(5.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn gauge(&self, name: &str) -> Result<Gauge> {
        self.shared.registry.gauge(name, &[])
    }

    /// Registers (or fetches) a gauge with labels.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge_with("room_users", &[("room", "general")])?.set(5.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn gauge_with(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge> {
        self.shared.registry.gauge(name, labels)
    }

    /// Registers (or fetches) a histogram with [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS).
    ///
    /// # Errors
    ///
    /// An invalid name, a name registered as another kind or with other buckets, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.histogram("message_latency_seconds")?.observe(0.012);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn histogram(&self, name: &str) -> Result<Histogram> {
        self.shared.registry.histogram(name, &[], None)
    }

    /// Registers (or fetches) a histogram with labels and custom bucket upper bounds.
    ///
    /// # Errors
    ///
    /// Invalid name, labels or buckets, a name registered as another kind or
    /// with other buckets, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let h = engine.histogram_with("payload_bytes", &[("dir", "in")], &[64.0, 1024.0, 65536.0])?;
    /// h.observe(300.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn histogram_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Result<Histogram> {
        self.shared.registry.histogram(name, labels, Some(buckets))
    }

    /// Registers (or fetches) a summary without labels.
    ///
    /// # Errors
    ///
    /// An invalid name, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.summary("message_size_bytes")?.observe(120.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn summary(&self, name: &str) -> Result<Summary> {
        self.shared.registry.summary(name, &[])
    }

    /// Registers (or fetches) a summary with labels.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.summary_with("message_size_bytes", &[("room", "a")])?.observe(120.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn summary_with(&self, name: &str, labels: &[(&str, &str)]) -> Result<Summary> {
        self.shared.registry.summary(name, labels)
    }

    /// Records an explicit observation of series `name{labels}`, timestamped
    /// with the engine's clock now, read through
    /// [`Clock::coarse_now_ms`](crate::Clock::coarse_now_ms): exact with a
    /// [`ManualClock`](crate::ManualClock); with the default
    /// [`SystemClock`](crate::SystemClock) on Linux, the wall time at the
    /// kernel's last timer tick (up to 1 to 10 ms early, and observations of
    /// one series within one tick share a millisecond, so the last of them is
    /// kept). For an exact time pass it to [`record_at`](Self::record_at).
    /// The series is a gauge, created on first
    /// use. Never blocks and takes no lock on the queue (a lock-free bounded
    /// queue the worker drains every tick, and sooner when it is a quarter
    /// full): on a full queue the sample is dropped and counted
    /// (`samples_dropped`); a non-finite value is dropped and counted
    /// (`nonfinite_dropped`). [`flush`](Monitor::flush) makes it visible.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.record("checkout_value", &[("currency", "eur")], 42.5)?;
    /// engine.flush()?;
    /// assert_eq!(engine.latest_with("checkout_value", &[("currency", "eur")]).unwrap().value, 42.5);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn record(&self, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        let id = self.shared.registry.recorded(name, labels)?;
        self.send_record(id, value);
        Ok(())
    }

    /// Records an observation of series `name{labels}` at `timestamp` rather
    /// than at the clock's time now: backfill, imported data, replayed
    /// scenarios. Otherwise as [`record`](Self::record) (queued, never blocks,
    /// non-finite values dropped and counted).
    ///
    /// The policy for timestamps (see `docs/alerts.md`, "Explicit timestamps"):
    ///
    /// - more than 10 minutes (600 s) ahead of the engine clock: refused here, with
    ///   [`Error::SampleRejected`] naming the series and the timestamp;
    /// - older than the newest sample the series holds when the worker
    ///   ingests it: dropped and counted in
    ///   [`EngineStats::samples_out_of_order`] and
    ///   `watchpost_samples_out_of_order_total` (history is never reordered);
    /// - at the same timestamp as the newest sample: replaces its value;
    /// - ahead of the clock (within the 10 minutes): stored, and seen by the
    ///   alert rules once the clock reaches it.
    ///
    /// # Errors
    ///
    /// [`Error::SampleRejected`] for a timestamp too far ahead; invalid name
    /// or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use chrono::{TimeDelta, Utc};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let now = Utc::now();
    /// engine.record_at("imported", &[("src", "csv")], now - TimeDelta::minutes(2), 1.0)?;
    /// engine.record_at("imported", &[("src", "csv")], now - TimeDelta::minutes(1), 2.0)?;
    /// engine.record_at("imported", &[("src", "csv")], now - TimeDelta::minutes(3), 0.5)?; // late
    /// let err = engine.record_at("imported", &[], now + TimeDelta::hours(1), 3.0).unwrap_err();
    /// assert!(err.to_string().starts_with("sample of imported at "));
    /// engine.flush()?;
    /// assert_eq!(engine.latest_with("imported", &[("src", "csv")]).unwrap().value, 2.0);
    /// assert_eq!(engine.stats().samples_out_of_order, 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn record_at(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timestamp: chrono::DateTime<chrono::Utc>,
        value: f64,
    ) -> Result<()> {
        let timestamp_ms = timestamp.timestamp_millis();
        let now = self.shared.clock.now_ms();
        if timestamp_ms > now.saturating_add(RECORD_AT_MAX_AHEAD_MS) {
            let series = crate::key::SeriesKey::new(name, labels)?.to_string();
            return Err(Error::SampleRejected {
                series,
                timestamp: timestamp.to_rfc3339(),
                reason: format!(
                    "{}.{:03} s ahead of the engine clock ({}); at most 600 s ahead is accepted",
                    (timestamp_ms - now) / 1000,
                    (timestamp_ms - now) % 1000,
                    crate::clock::ms_to_datetime(now).to_rfc3339()
                ),
            });
        }
        let id = self.shared.registry.recorded(name, labels)?;
        if !value.is_finite() {
            self.shared.metrics.record_nonfinite.inc();
            return Ok(());
        }
        self.enqueue(Record { id, explicit: true, timestamp_ms, value });
        Ok(())
    }

    /// Removes series `name{labels}`: its history, its anomaly detector and
    /// the series derived from it go, and its alerts are dropped, each whose
    /// firing was announced getting a resolve with
    /// [`ResolveReason::SeriesRemoved`](crate::alert::ResolveReason::SeriesRemoved).
    /// Returns whether the series existed.
    ///
    /// Handles to a removed series keep working but feed nothing, and
    /// samples of it still queued are discarded. Registering or recording
    /// the name and labels again starts a new, empty series. A removed
    /// series frees its place under the series caps; the registry keeps
    /// a small tombstone per removed series (its name, labels and kind).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `name` is a derived series (`x_total:rate`):
    /// remove the series it is derived from.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.record("room_users", &[("room", "closed")], 3.0)?;
    /// engine.flush()?;
    /// assert!(engine.remove_series("room_users", &[("room", "closed")])?);
    /// assert!(engine.latest_with("room_users", &[("room", "closed")]).is_none());
    /// assert!(!engine.remove_series("room_users", &[("room", "closed")])?);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn remove_series(&self, name: &str, labels: &[(&str, &str)]) -> Result<bool> {
        let Some(removed) = self.shared.registry.remove(name, labels)? else { return Ok(false) };
        {
            let mut history = self.shared.history.write();
            for (id, _) in &removed {
                history.remove(*id);
            }
        }
        let now = self.shared.clock.now_ms();
        {
            let mut alerts = self.shared.alerts.lock();
            for (_, key) in &removed {
                alerts.resolve_series(key, crate::alert::ResolveReason::SeriesRemoved, now);
            }
        }
        let _ = self.control.send(Control::Evaluate);
        Ok(true)
    }

    /// A [`Recorder`] for series `name{labels}`: `record()` with the lookup done once.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, or the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let r = engine.recorder("signups", &[])?;
    /// r.record(1.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recorder(&self, name: &str, labels: &[(&str, &str)]) -> Result<Recorder> {
        let id = self.shared.registry.recorded(name, labels)?;
        Ok(Recorder { monitor: self.clone(), id })
    }

    #[inline]
    fn send_record(&self, id: SeriesId, value: f64) {
        if !value.is_finite() {
            self.shared.metrics.record_nonfinite.inc();
            return;
        }
        // the coarse reading: the clock is most of the caller's cost otherwise
        let timestamp_ms = self.shared.clock.coarse_now_ms();
        self.enqueue(Record { id, explicit: false, timestamp_ms, value });
    }

    #[inline]
    fn enqueue(&self, record: Record) {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            shared.metrics.dropped.inc();
            return;
        }
        if shared.records.push(record).is_err() {
            shared.metrics.dropped.inc();
        }
        // Past a quarter full, ask the worker to drain before the next tick.
        // The length is read on every 64th record of a thread only: reading it
        // touches cache lines the worker writes.
        let check = RECORDS_SINCE_CHECK.with(|n| {
            let v = n.get().wrapping_add(1);
            n.set(v);
            v % 64 == 0
        });
        if check && shared.records.len() >= shared.records.capacity() / 4 {
            let _ = self.nudge.try_send(());
        }
    }

    /// Waits until everything recorded before this call is ingested, the
    /// instruments have been sampled at the clock's current time, the alert
    /// rules evaluated, and the resulting notifications handled by every
    /// handler: each handler's `notify` call for them has returned (or the
    /// notification was coalesced away while the handler was busy, or
    /// dropped because it was stuck; both are counted in
    /// [`notification_stats`](Self::notification_stats)). Use it in tests
    /// (with a [`ManualClock`](crate::ManualClock)) and before reading
    /// history you just wrote.
    ///
    /// A handler that blocks delays one `flush` by at most
    /// [`notification_flush_timeout`](EngineBuilder::notification_flush_timeout)
    /// (wall time, 5 s by default); later flushes do not wait for it while
    /// it is still in the call it was late on, and wait for it again once
    /// that call has returned.
    ///
    /// Blocks; from async code call it through `tokio::task::spawn_blocking`
    /// (see [the guide](crate::guide::http#calling-the-engine-from-async-code)).
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`] if the engine is no longer running.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge("g")?.set(2.0);
    /// engine.flush()?;
    /// assert_eq!(engine.latest("g").unwrap().value, 2.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        if self.shared.worker_thread.get() == Some(&thread::current().id()) {
            return Ok(()); // called from a source during a tick: that tick is the flush
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.control.send(Control::Flush(tx)).map_err(|_| Error::ShutDown)?;
        rx.recv().map_err(|_| Error::ShutDown)?;
        for sink in &self.shared.sinks {
            sink.flush(self.shared.notify_flush_timeout);
        }
        self.flush_notifications(self.shared.notify_flush_timeout);
        Ok(())
    }

    /// The newest sample of the unlabelled series `name` (the seed's `get_latest_metric`).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(engine.latest("nothing_here").is_none());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn latest(&self, name: &str) -> Option<Sample> {
        self.latest_with(name, &[])
    }

    /// The newest sample of series `name{labels}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge_with("room_users", &[("room", "a")])?.set(4.0);
    /// engine.flush()?;
    /// assert_eq!(engine.latest_with("room_users", &[("room", "a")]).unwrap().value, 4.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn latest_with(&self, name: &str, labels: &[(&str, &str)]) -> Option<Sample> {
        let id = self.shared.registry.lookup(name, labels)?;
        self.shared.history.read().get(id).and_then(crate::history::SeriesHistory::latest)
    }

    /// Samples of the unlabelled series `name` from the last `window`
    /// (by the engine's clock), oldest first (the seed's `get_metric_history`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.record("orders", &[], 1.0)?;
    /// engine.flush()?;
    /// assert_eq!(engine.history("orders", Duration::from_secs(60)).len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn history(&self, name: &str, window: Duration) -> Vec<Sample> {
        self.history_with(name, &[], window)
    }

    /// Samples of series `name{labels}` from the last `window`, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.record("orders", &[("shop", "eu")], 1.0)?;
    /// engine.flush()?;
    /// assert_eq!(engine.history_with("orders", &[("shop", "eu")], Duration::from_secs(60)).len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn history_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        window: Duration,
    ) -> Vec<Sample> {
        let Some(id) = self.shared.registry.lookup(name, labels) else { return Vec::new() };
        let now = self.shared.clock.now_ms();
        let since = now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        self.shared.history.read().get(id).map(|h| h.window(since, now)).unwrap_or_default()
    }

    /// Every series with its kind and labels, sorted by name and labels.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge_with("room_users", &[("room", "a")])?;
    /// let s = engine.series();
    /// assert!(s.iter().any(|i| i.key.name() == "room_users" && i.key.labels().get("room") == Some("a")));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn series(&self) -> Vec<SeriesInfo> {
        self.shared.registry.infos()
    }

    /// The engine's own figures.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.record("x", &[], f64::NAN)?;
    /// assert_eq!(engine.stats().nonfinite_dropped, 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn stats(&self) -> EngineStats {
        let m = &self.shared.metrics;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        EngineStats {
            series_count: self.shared.registry.len() as u64,
            samples_ingested: m.ingested.get(),
            // records left in the queue of a stopped engine will never be ingested
            samples_dropped: m.dropped.get()
                + if self.shared.closed.load(Ordering::Acquire) {
                    self.shared.records.len() as u64
                } else {
                    0
                },
            nonfinite_dropped: self.shared.registry.nonfinite_total() + m.record_nonfinite.get(),
            series_rejected: self.shared.registry.rejected_series(),
            series_rejected_by_reason: self.series_rejections(),
            queue_depth: self.shared.records.len() as u64,
            last_collection_duration_ms: m.collection_seconds.get() * 1000.0,
            history_samples: self.shared.history.read().total_samples() as u64,
            samples_coalesced: m.coalesced.get(),
            worker_panics: m.worker_panics.get(),
            samples_out_of_order: m.out_of_order.get(),
        }
    }

    /// Refused registrations by reason.
    fn series_rejections(&self) -> crate::dashboard::SeriesRejections {
        use crate::registry::Reject;
        let r = &self.shared.registry;
        crate::dashboard::SeriesRejections {
            series_cap: r.rejected_for(Reject::SeriesCap),
            total_series_cap: r.rejected_for(Reject::TotalSeriesCap),
            name_too_long: r.rejected_for(Reject::NameTooLong),
            label_value_too_long: r.rejected_for(Reject::LabelValueTooLong),
            too_many_labels: r.rejected_for(Reject::TooManyLabels),
        }
    }

    /// A dashboard snapshot: system status, recent points, statistics, engine
    /// figures, active alerts and recent alert events, anomalies, performance summary.
    ///
    /// Computes statistics and trends over every series (milliseconds for
    /// thousands): from async code call it through `tokio::task::spawn_blocking`
    /// (see [the guide](crate::guide::http#calling-the-engine-from-async-code)).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let d = engine.dashboard();
    /// assert!(d.active_alerts.is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn dashboard(&self) -> Dashboard {
        let (mut d, statistics) = self.snapshot();
        d.statistics = statistics.into_typed();
        d
    }

    /// A snapshot with its statistics apart, for [`dashboard`](Self::dashboard)
    /// and [`dashboard_json`](Self::dashboard_json).
    fn snapshot(&self) -> (Dashboard, dashboard::Statistics) {
        let stats = self.stats();
        let now = self.shared.clock.now_ms();
        let anomalies = self.recent_anomalies(now);
        let (active_alerts, recent_alert_events) = self.alert_views();
        let history = self.shared.history.read();
        let (mut d, statistics) = dashboard::build(
            &self.shared.registry,
            &history,
            &self.shared.dashboard,
            now,
            self.shared.started_ms,
            stats,
            anomalies,
        );
        drop(history);
        d.active_alerts = active_alerts;
        d.recent_alert_events = recent_alert_events;
        d.notifications = self.shared.notify.stats();
        (d.slow_operations, d.recent_log_events) = self.operations_sections();
        d.remote_write = self.shared.sinks.first().map(|s| s.status());
        (d, statistics)
    }

    /// Statistics, trend and forecast of series `name{labels}` over the last `window`.
    /// `None` if the series does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{AnalysisConfig, Direction};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let a = engine.analyze("nothing", &[], Duration::from_mins(5), &AnalysisConfig::default());
    /// assert!(a.is_none());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn analyze(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        window: Duration,
        config: &crate::analysis::AnalysisConfig,
    ) -> Option<crate::analysis::SeriesAnalysis> {
        let id = self.shared.registry.lookup(name, labels)?;
        let now = self.shared.clock.now_ms();
        let since = now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let points: Vec<crate::analysis::Point> = {
            let history = self.shared.history.read();
            history
                .get(id)
                .map(|h| h.window(since, now))
                .unwrap_or_default()
                .into_iter()
                .map(|s| crate::analysis::Point::new(s.timestamp_ms, s.value))
                .collect()
        };
        Some(crate::analysis::analyze_series(&points, now, config))
    }

    /// The performance summary (CPU, memory, disk, network; status, issues,
    /// recommendations) over the dashboard's statistics window.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::analysis::HealthStatus;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert_eq!(engine.performance_summary().summary.status, HealthStatus::Healthy);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn performance_summary(&self) -> crate::analysis::PerformanceSummary {
        let now = self.shared.clock.now_ms();
        let anomalies = self.recent_anomalies(now);
        let history = self.shared.history.read();
        let source = dashboard::HistorySource {
            registry: &self.shared.registry,
            history: &history,
            since_ms: now.saturating_sub(self.shared.dashboard.statistics_window_ms),
            until_ms: now,
            anomalies: &anomalies,
        };
        crate::analysis::performance_summary(&source, now, &self.shared.dashboard.performance)
    }

    /// The logged anomalies inside the statistics window ending at `now_ms`, oldest first.
    fn recent_anomalies(&self, now_ms: i64) -> Vec<crate::dashboard::Anomaly> {
        let since = now_ms.saturating_sub(self.shared.dashboard.statistics_window_ms);
        let log = self.shared.anomalies.lock();
        log.iter().filter(|a| a.timestamp.timestamp_millis() >= since).cloned().collect()
    }

    /// The dashboard's `active_alerts` and `recent_alert_events`, without the
    /// rest of a snapshot.
    pub(crate) fn alert_views(
        &self,
    ) -> (Vec<crate::alert::AlertView>, Vec<crate::alert::AlertEventView>) {
        let alerts = self.shared.alerts.lock();
        (
            alerts.active_alerts().iter().map(crate::alert::AlertView::from).collect(),
            alerts
                .recent_events_where(self.shared.dashboard.recent_alert_events, |e| {
                    !crate::alert::is_quiet(e)
                })
                .iter()
                .map(crate::alert::AlertEventView::from)
                .collect(),
        )
    }

    /// The dashboard snapshot as pretty-printed JSON (layout in `docs/dashboard.md`).
    ///
    /// Like [`dashboard`](Self::dashboard), call it through
    /// `tokio::task::spawn_blocking` from async code.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if serialization fails (it does not for finite data).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let json: serde_json::Value = serde_json::from_str(&engine.dashboard_json()?)?;
    /// assert_eq!(json["schema_version"], 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dashboard_json(&self) -> Result<String> {
        let (d, statistics) = self.snapshot();
        Ok(dashboard::to_json(&self.shared.registry, &d, &statistics)?)
    }
}

// ---------------------------------------------------------------------------
// Exposition and health checks (logic in `crate::export` and `crate::health`)
// ---------------------------------------------------------------------------

impl Monitor {
    /// Every instrument in the Prometheus text format 0.0.4 (see
    /// [`export`](crate::export) for what is exposed and how).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.counter_with("messages_total", &[("room", "dev")])?.add(2);
    /// assert!(engine.prometheus_text().contains("messages_total{room=\"dev\"} 2\n"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn prometheus_text(&self) -> String {
        crate::export::prometheus_text(&self.shared.registry)
    }

    /// Every instrument in OpenMetrics 1.0 text, ending with `# EOF`.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge("active_users")?.set(3.0);
    /// let text = engine.openmetrics_text();
    /// assert!(text.contains("active_users 3.0\n") && text.ends_with("# EOF\n"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn openmetrics_text(&self) -> String {
        crate::export::openmetrics_text(&self.shared.registry)
    }

    /// Registers a health check, replacing one of the same name, and its
    /// gauges `health_check_up{component}` and `health_check_latency_seconds{component}`.
    ///
    /// # Errors
    ///
    /// A registration error of the gauges, for example the series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::health::HealthCheck;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.register_health_check(HealthCheck::new("database", || Ok(())))?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn register_health_check(&self, check: crate::health::HealthCheck) -> Result<()> {
        crate::health::register(&self.shared.registry, check)
    }

    /// Runs every health check in parallel, each on its own thread and
    /// bounded by its timeout, and reports (see [`health`](crate::health)).
    /// Blocks for at most the longest timeout.
    ///
    /// From async code call it through `tokio::task::spawn_blocking` (see
    /// [the guide](crate::guide::http#calling-the-engine-from-async-code)).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::health::{HealthCheck, Status};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.register_health_check(HealthCheck::new("database", || Err("refused".into())))?;
    /// assert_eq!(engine.health().status, Status::Unhealthy);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn health(&self) -> crate::health::HealthReport {
        let mut report = crate::health::run_all(&self.shared.registry, self.shared.clock.now_ms());
        report.worker_panics = self.shared.metrics.worker_panics.get();
        report.last_worker_panic.clone_from(&self.shared.metrics.last_worker_panic.lock());
        report
    }
}
