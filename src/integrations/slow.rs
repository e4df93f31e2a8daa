//! The bounded lists the `tracing` layer keeps for the application: spans
//! slower than their threshold ([`SlowOperations`]) and the most recent
//! ERROR and WARN events ([`LogEvent`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// One span that took longer than its slow threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowOperation {
    /// The span's name (`info_span!("db_query")` → `db_query`).
    pub name: String,
    /// The span's target (by default the module path that created it).
    pub target: String,
    /// From the span's creation to its close, by the engine clock.
    pub duration: Duration,
    /// Time spent inside the span (between enter and exit).
    pub busy: Duration,
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
    recorded: u64,
    evicted: u64,
}

/// The slow-operation log: a bounded list of the spans that took longer than
/// their threshold, shared by the [`TracingLayer`](super::TracingLayer)
/// that fills it and the application that reads it. Cloning shares the list.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tracing_subscriber::layer::SubscriberExt;
/// use watchpost::integrations::TracingLayer;
///
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let layer = TracingLayer::builder(&engine).slow_threshold(Duration::ZERO).build()?;
/// let slow = layer.slow_operations();
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
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct SlowOperations {
    inner: Arc<Mutex<SlowInner>>,
    capacity: usize,
}

impl SlowOperations {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SlowInner {
                list: VecDeque::with_capacity(capacity.min(1024)),
                recorded: 0,
                evicted: 0,
            })),
            capacity,
        }
    }

    pub(crate) fn push(&self, op: SlowOperation) {
        let mut inner = self.inner.lock();
        if inner.list.len() == self.capacity {
            inner.list.pop_front();
            inner.evicted += 1;
        }
        inner.list.push_back(op);
        inner.recorded += 1;
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
    /// let layer = watchpost::integrations::TracingLayer::new(&engine);
    /// assert_eq!(layer.slow_operations().len(), 0);
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
    /// let layer = watchpost::integrations::TracingLayer::new(&engine);
    /// assert_eq!(layer.slow_operations().capacity(), watchpost::integrations::DEFAULT_SLOW_CAPACITY);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Empties the list and resets the `recorded` and `evicted` counts.
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.list.clear();
        inner.recorded = 0;
        inner.evicted = 0;
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
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// One ERROR or WARN event, as kept by
/// [`TracingLayer::recent_events`](super::TracingLayer::recent_events).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// When the event happened, by the engine clock.
    pub at: DateTime<Utc>,
    /// `ERROR` or `WARN`.
    pub level: tracing_core::Level,
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
    list: Mutex<VecDeque<LogEvent>>,
    capacity: usize,
}

impl RecentEvents {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { list: Mutex::new(VecDeque::with_capacity(capacity.min(1024))), capacity }
    }

    pub(crate) fn push(&self, event: LogEvent) {
        if self.capacity == 0 {
            return;
        }
        let mut list = self.list.lock();
        if list.len() == self.capacity {
            list.pop_front();
        }
        list.push_back(event);
    }

    pub(crate) fn list(&self) -> Vec<LogEvent> {
        self.list.lock().iter().cloned().collect()
    }
}
