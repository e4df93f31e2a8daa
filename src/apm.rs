//! The bounded lists of the engine's operations log: spans slower than their
//! threshold ([`SlowOperations`]) and the most recent ERROR and WARN events
//! ([`LogEvent`]). Every engine owns one; the `tracing` layer
//! (`integrations::TracingLayer`, feature `tracing`) fills it, and the
//! `Monitor`, the dashboard and the HTTP API read it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How many slow operations the log keeps before evicting the oldest: 256.
pub const DEFAULT_SLOW_CAPACITY: usize = 256;
/// How many recent ERROR and WARN events the log keeps: 100.
pub const DEFAULT_RECENT_EVENTS: usize = 100;
/// The largest accepted capacity of the slow-operation log and of the recent
/// events list: 65 536.
pub const MAX_TRACING_LIST_CAPACITY: usize = 65_536;

/// One span that took longer than its slow threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowOperation {
    /// The span's name (`info_span!("db_query")` → `db_query`).
    pub name: String,
    /// The span's target (by default the module path that created it).
    pub target: String,
    /// From the span's creation to its close, by the engine clock.
    pub duration: Duration,
    /// Time spent inside the span (between enter and exit), when the layer
    /// measures busy time (`TracingLayerBuilder::busy_time`).
    pub busy: Option<Duration>,
    /// When the span was created, by the engine clock.
    pub started: DateTime<Utc>,
    /// The span's fields as `(name, value)`, values formatted with `Debug`
    /// (strings without quotes), in the order they were recorded.
    pub fields: Vec<(String, String)>,
    /// The names of the enclosing spans, outermost first.
    pub parents: Vec<String>,
    /// Whether the span recorded an `error` field or held an ERROR event.
    pub error: bool,
}

/// Statistics of the slow operations of one span name.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowNameStats {
    /// The span name.
    pub name: String,
    /// How many slow operations with this name the list holds.
    pub count: usize,
    /// Their mean duration.
    pub mean: Duration,
    /// Their longest duration.
    pub max: Duration,
}

/// Statistics over the slow-operation list ([`SlowOperations::stats`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlowStats {
    /// Slow operations in the list.
    pub count: usize,
    /// Their mean duration (zero when the list is empty).
    pub mean: Duration,
    /// Their longest duration (zero when the list is empty).
    pub max: Duration,
    /// The same per span name, the most frequent first (ties by name).
    pub by_name: Vec<SlowNameStats>,
    /// Slow operations recorded since the start or the last
    /// [`clear`](SlowOperations::clear), including those evicted.
    pub recorded: u64,
    /// Slow operations evicted from the full list (the oldest goes first).
    pub evicted: u64,
}

struct SlowInner {
    list: VecDeque<SlowOperation>,
    capacity: usize,
    recorded: u64,
    evicted: u64,
}

/// The slow-operation log: a bounded list of the spans that took longer than
/// their threshold. Each engine owns one
/// ([`Monitor::slow_operations`](crate::Monitor::slow_operations)), which a
/// `TracingLayer` (feature `tracing`) built from that engine fills; the
/// dashboard's `slow_operations` section and `GET /api/slow` (feature
/// `http`) show it. Cloning shares the list.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tracing")] {
/// use std::time::Duration;
/// use tracing_subscriber::layer::SubscriberExt;
/// use watchpost::integrations::TracingLayer;
///
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let layer = TracingLayer::builder(&engine).slow_threshold(Duration::ZERO).build()?;
/// let slow = engine.slow_operations(); // the same list as layer.slow_operations()
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!("checkout", order = 42).in_scope(|| {});
/// });
/// let ops = slow.list();
/// assert_eq!(ops[0].name, "checkout");
/// assert_eq!(ops[0].fields, [("order".to_string(), "42".to_string())]);
/// assert_eq!(slow.stats().count, 1);
/// slow.clear();
/// assert!(slow.is_empty());
/// # }
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct SlowOperations {
    inner: Arc<Mutex<SlowInner>>,
}

impl SlowOperations {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SlowInner {
                list: VecDeque::new(),
                capacity: capacity.max(1),
                recorded: 0,
                evicted: 0,
            })),
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn push(&self, op: SlowOperation) {
        let mut inner = self.inner.lock();
        if inner.list.len() >= inner.capacity {
            inner.list.pop_front();
            inner.evicted += 1;
        }
        inner.list.push_back(op);
        inner.recorded += 1;
    }

    /// Keeps at most `capacity` (at least 1) operations from now on,
    /// evicting the oldest beyond it.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut inner = self.inner.lock();
        inner.capacity = capacity.max(1);
        while inner.list.len() > inner.capacity {
            inner.list.pop_front();
            inner.evicted += 1;
        }
    }

    /// The slow operations held, oldest first.
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn list(&self) -> Vec<SlowOperation> {
        self.inner.lock().list.iter().cloned().collect()
    }

    /// How many slow operations the list holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert_eq!(engine.slow_operations().len(), 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.lock().list.len()
    }

    /// Whether the list is empty.
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn is_empty(&self) -> bool {
        self.inner.lock().list.is_empty()
    }

    /// How many slow operations the list keeps before evicting the oldest.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert_eq!(engine.slow_operations().capacity(), watchpost::integrations::DEFAULT_SLOW_CAPACITY);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.lock().capacity
    }

    /// Empties the list and resets the `recorded` and `evicted` counts;
    /// returns how many operations it removed.
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn clear(&self) -> usize {
        let mut inner = self.inner.lock();
        let removed = inner.list.len();
        inner.list.clear();
        inner.recorded = 0;
        inner.evicted = 0;
        removed
    }

    /// Count, mean and maximum duration over the list, overall and per span
    /// name.
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn stats(&self) -> SlowStats {
        let inner = self.inner.lock();
        let mut by_name: Vec<(String, usize, Duration, Duration)> = Vec::new();
        let (mut total, mut max) = (Duration::ZERO, Duration::ZERO);
        for op in &inner.list {
            total = total.saturating_add(op.duration);
            max = max.max(op.duration);
            match by_name.iter_mut().find(|(n, ..)| *n == op.name) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 = entry.2.saturating_add(op.duration);
                    entry.3 = entry.3.max(op.duration);
                }
                None => by_name.push((op.name.clone(), 1, op.duration, op.duration)),
            }
        }
        let mut by_name: Vec<SlowNameStats> = by_name
            .into_iter()
            .map(|(name, count, sum, max)| SlowNameStats {
                name,
                count,
                mean: mean(sum, count),
                max,
            })
            .collect();
        by_name.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        SlowStats {
            count: inner.list.len(),
            mean: mean(total, inner.list.len()),
            max,
            by_name,
            recorded: inner.recorded,
            evicted: inner.evicted,
        }
    }
}

fn mean(sum: Duration, count: usize) -> Duration {
    match u32::try_from(count) {
        Ok(0) => Duration::ZERO,
        Ok(n) => sum / n,
        // More than u32::MAX entries cannot be held; divide in floating point.
        #[allow(clippy::cast_precision_loss)]
        Err(_) => Duration::from_secs_f64(sum.as_secs_f64() / count as f64),
    }
}

impl fmt::Debug for SlowOperations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlowOperations")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// The level of a [`LogEvent`], as the `level` label of `log_events_total`
/// spells it (`"error"`, `"warn"`, …).
///
/// # Examples
///
/// ```
/// use watchpost::integrations::LogLevel;
/// assert_eq!(LogLevel::Error.as_str(), "error");
/// assert_eq!(serde_json::to_string(&LogLevel::Warn)?, r#""warn""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `ERROR`.
    Error,
    /// `WARN`.
    Warn,
    /// `INFO`.
    Info,
    /// `DEBUG`.
    Debug,
    /// `TRACE`.
    Trace,
}

impl LogLevel {
    /// The lowercase name: `error`, `warn`, `info`, `debug` or `trace`.
    ///
    /// # Examples
    ///
    /// See [`LogLevel`].
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ERROR or WARN event, as kept by the engine's operations log
/// ([`Monitor::recent_log_events`](crate::Monitor::recent_log_events)) when a
/// `TracingLayer` (feature `tracing`) feeds it.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// // empty until a tracing layer built from this engine sees an ERROR or WARN event
/// let events: Vec<watchpost::integrations::LogEvent> = engine.recent_log_events();
/// assert!(events.is_empty());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// When the event happened, by the engine clock.
    pub at: DateTime<Utc>,
    /// [`LogLevel::Error`] or [`LogLevel::Warn`].
    pub level: LogLevel,
    /// The event's target.
    pub target: String,
    /// The `message` field (the format string's text), empty when absent.
    pub message: String,
    /// The other fields as `(name, value)`, values formatted with `Debug`
    /// (strings without quotes).
    pub fields: Vec<(String, String)>,
    /// The name of the span the event happened in, if any.
    pub span: Option<String>,
}

/// A bounded list of the newest events, oldest first.
pub(crate) struct RecentEvents {
    list: Mutex<(VecDeque<LogEvent>, usize)>,
}

impl RecentEvents {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { list: Mutex::new((VecDeque::new(), capacity)) }
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn push(&self, event: LogEvent) {
        let mut guard = self.list.lock();
        let (list, capacity) = &mut *guard;
        if *capacity == 0 {
            return;
        }
        if list.len() >= *capacity {
            list.pop_front();
        }
        list.push_back(event);
    }

    /// Keeps at most `capacity` events (0: none) from now on.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut guard = self.list.lock();
        let (list, cap) = &mut *guard;
        *cap = capacity;
        while list.len() > capacity {
            list.pop_front();
        }
    }

    pub(crate) fn list(&self) -> Vec<LogEvent> {
        self.list.lock().0.iter().cloned().collect()
    }
}

/// The engine's operations log: slow operations and recent ERROR/WARN events.
pub(crate) struct OperationsLog {
    pub(crate) slow: SlowOperations,
    pub(crate) events: RecentEvents,
}

impl Default for OperationsLog {
    fn default() -> Self {
        OperationsLog {
            slow: SlowOperations::new(DEFAULT_SLOW_CAPACITY),
            events: RecentEvents::new(DEFAULT_RECENT_EVENTS),
        }
    }
}

impl fmt::Debug for OperationsLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationsLog").field("slow", &self.slow).finish_non_exhaustive()
    }
}

/// How many slow operations, newest, the dashboard's `slow_operations.entries`
/// carries (its statistics cover the whole log): 50.
pub const DASHBOARD_SLOW_ENTRIES: usize = 50;

/// The dashboard's `slow_operations` section and the body of `GET /api/slow`:
/// statistics over the slow-operation log and its newest entries.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let section = engine.dashboard().slow_operations;
/// assert_eq!((section.count, section.entries.len()), (0, 0));
/// let json = serde_json::to_value(&section)?;
/// assert_eq!(json["mean_seconds"], 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlowOperationsSection {
    /// Slow operations in the log.
    pub count: u64,
    /// Their mean duration, in seconds (0 when the log is empty).
    pub mean_seconds: f64,
    /// Their longest duration, in seconds (0 when the log is empty).
    pub max_seconds: f64,
    /// Slow operations recorded since the start or the last clear, evicted ones included.
    pub recorded: u64,
    /// Slow operations evicted from the full log.
    pub evicted: u64,
    /// How many the log keeps before evicting the oldest.
    pub capacity: u64,
    /// The same statistics per span name, the most frequent first.
    pub by_name: Vec<SlowNameEntry>,
    /// The newest slow operations, oldest first.
    pub entries: Vec<SlowOperationEntry>,
}

/// Statistics of one span name in [`SlowOperationsSection::by_name`].
///
/// # Examples
///
/// ```
/// let e = watchpost::dashboard::SlowNameEntry {
///     name: "db_query".into(), count: 2, mean_seconds: 0.75, max_seconds: 1.0,
/// };
/// assert_eq!(serde_json::to_value(&e)?["max_seconds"], 1.0);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowNameEntry {
    /// The span name.
    pub name: String,
    /// Slow operations of that name in the log.
    pub count: u64,
    /// Their mean duration, in seconds.
    pub mean_seconds: f64,
    /// Their longest duration, in seconds.
    pub max_seconds: f64,
}

/// One slow operation in [`SlowOperationsSection::entries`].
///
/// # Examples
///
/// ```
/// let e = watchpost::dashboard::SlowOperationEntry {
///     name: "db_query".into(), target: "app::db".into(), duration_seconds: 1.5,
///     busy_seconds: Some(1.0), started: chrono::DateTime::UNIX_EPOCH,
///     fields: [("table".to_string(), "users".to_string())].into(),
///     parents: vec!["handle_request".into()], error: false,
/// };
/// assert_eq!(serde_json::to_value(&e)?["fields"]["table"], "users");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowOperationEntry {
    /// The span's name.
    pub name: String,
    /// The span's target.
    pub target: String,
    /// From the span's creation to its close, in seconds.
    pub duration_seconds: f64,
    /// Time spent inside the span (between enter and exit), in seconds;
    /// `null` unless the layer measures busy time.
    pub busy_seconds: Option<f64>,
    /// When the span was created (RFC 3339).
    pub started: DateTime<Utc>,
    /// The span's fields; a field recorded twice shows its last value.
    pub fields: BTreeMap<String, String>,
    /// The names of the enclosing spans, outermost first.
    pub parents: Vec<String>,
    /// Whether the span recorded an `error` field or held an ERROR event.
    pub error: bool,
}

/// One ERROR or WARN event in the dashboard's `recent_log_events`.
///
/// # Examples
///
/// ```
/// use watchpost::integrations::LogLevel;
/// let e = watchpost::dashboard::LogEventEntry {
///     timestamp: chrono::DateTime::UNIX_EPOCH, level: LogLevel::Error, target: "app".into(),
///     message: "send failed".into(), fields: Default::default(), span: None,
/// };
/// assert_eq!(serde_json::to_value(&e)?["level"], "error");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEventEntry {
    /// When the event happened (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// `error` or `warn`.
    pub level: LogLevel,
    /// The event's target.
    pub target: String,
    /// The event's message (empty when it had none).
    pub message: String,
    /// The other fields; a field recorded twice shows its last value.
    pub fields: BTreeMap<String, String>,
    /// The name of the span the event happened in, if any.
    pub span: Option<String>,
}

impl From<&LogEvent> for LogEventEntry {
    fn from(e: &LogEvent) -> Self {
        LogEventEntry {
            timestamp: e.at,
            level: e.level,
            target: e.target.clone(),
            message: e.message.clone(),
            fields: e.fields.iter().cloned().collect(),
            span: e.span.clone(),
        }
    }
}

impl From<&SlowOperation> for SlowOperationEntry {
    fn from(op: &SlowOperation) -> Self {
        SlowOperationEntry {
            name: op.name.clone(),
            target: op.target.clone(),
            duration_seconds: op.duration.as_secs_f64(),
            busy_seconds: op.busy.map(|b| b.as_secs_f64()),
            started: op.started,
            fields: op.fields.iter().cloned().collect(),
            parents: op.parents.clone(),
            error: op.error,
        }
    }
}

impl SlowOperations {
    /// Statistics over the log and its newest `entries` operations (all of
    /// them with `usize::MAX`), as the dashboard and `GET /api/slow` show them.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let section = engine.slow_operations().section(10);
    /// assert_eq!(section.capacity, watchpost::integrations::DEFAULT_SLOW_CAPACITY as u64);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn section(&self, entries: usize) -> SlowOperationsSection {
        let stats = self.stats();
        let (capacity, entries) = {
            let inner = self.inner.lock();
            let skip = inner.list.len().saturating_sub(entries);
            (inner.capacity, inner.list.iter().skip(skip).map(SlowOperationEntry::from).collect())
        };
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        SlowOperationsSection {
            count: count(stats.count),
            mean_seconds: stats.mean.as_secs_f64(),
            max_seconds: stats.max.as_secs_f64(),
            recorded: stats.recorded,
            evicted: stats.evicted,
            capacity: count(capacity),
            by_name: stats
                .by_name
                .iter()
                .map(|n| SlowNameEntry {
                    name: n.name.clone(),
                    count: count(n.count),
                    mean_seconds: n.mean.as_secs_f64(),
                    max_seconds: n.max.as_secs_f64(),
                })
                .collect(),
            entries,
        }
    }
}
