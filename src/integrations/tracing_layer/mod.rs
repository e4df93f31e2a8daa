//! A `tracing_subscriber::Layer` that feeds watchpost: span durations and
//! APM statistics, the slow-operation log, and log events counted by level.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::alert::{Aggregate, AlertRule, CompareOp, Severity};
use crate::apm::{
    DEFAULT_RECENT_EVENTS, DEFAULT_SLOW_CAPACITY, LogEvent, LogLevel, MAX_TRACING_LIST_CAPACITY,
    SlowOperation, SlowOperations,
};
use crate::clock::Clock;
use crate::engine::Monitor;
use crate::error::{Error, Result};
use crate::metric::{Counter, Histogram};

mod fields;
mod sites;
mod spans;

use self::fields::{FieldVisitor, Fields, owned};
use self::sites::{CallsiteIndex, Sites, SpanSite};
use self::spans::{NewSpan, SpanFields, SpanTable};

/// Spans slower than this go to the slow-operation log unless their name has
/// its own threshold: 500 ms.
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_millis(500);

/// The default threshold of the rule `error_log_rate` that building a
/// [`TracingLayer`] adds: 10 ERROR events per minute from one target.
pub const DEFAULT_ERROR_LOG_RATE: f64 = 10.0;

/// Bucket bounds of `span_duration_seconds` and `span_busy_seconds`, in
/// seconds: 100 µs to 30 s.
const SPAN_BUCKETS: [f64; 17] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// APM statistics of one span name and target ([`TracingLayer::stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanStats {
    /// The span's name.
    pub name: String,
    /// The span's target.
    pub target: String,
    /// Spans closed.
    pub calls: u64,
    /// Closed spans that recorded an `error` field (with any value but
    /// `false`) or held an ERROR event.
    pub errors: u64,
    /// Mean duration, creation to close: the duration histogram's sum over
    /// its count, to the nanosecond.
    pub mean: Duration,
    /// Median duration, interpolated in the histogram's buckets (at most `max`).
    pub p50: Duration,
    /// 90th percentile, as `p50`.
    pub p90: Duration,
    /// 99th percentile, as `p50`.
    pub p99: Duration,
    /// Longest duration (exact).
    pub max: Duration,
}

struct Inner {
    monitor: Monitor,
    clock: Arc<dyn Clock>,
    sites: RwLock<Sites>,
    /// The callsites of `sites`, for lookups without the lock.
    callsites: CallsiteIndex,
    default_slow: Duration,
    slow_overrides: HashMap<String, Duration>,
    capture_fields: bool,
    busy_time: bool,
}

/// A [`tracing_subscriber::Layer`] that feeds a watchpost engine (feature
/// `tracing`):
///
/// - every closed span observes `span_duration_seconds{span, target}`
///   (creation to close), with [`busy_time`](TracingLayerBuilder::busy_time)
///   also `span_busy_seconds{span, target}` (time between enter and exit),
///   and updates the APM statistics of [`stats`](Self::stats);
/// - spans slower than their threshold go to the engine's [`SlowOperations`]
///   log ([`Monitor::slow_operations`]) with their fields, duration, start and
///   parent spans;
/// - every event increments `log_events_total{level, target}` (its `:rate`
///   series feeds the rule [`error_rate_rule`](Self::error_rate_rule), which
///   building the layer adds), and ERROR and WARN events are kept in the
///   engine's recent events ([`Monitor::recent_log_events`]).
///
/// Layers built from the same engine share its slow-operation log and recent
/// events; the capacities of the last one built apply.
///
/// Time comes from the engine clock, so a `ManualClock` makes durations exact
/// in tests. The handle is cheap to clone: clones share the statistics and
/// settings; each copy added to a subscriber keeps that subscriber's open
/// spans apart (span ids are unique within one subscriber only), in a table
/// of its own (64 KiB; spans open at once beyond about a thousand take a
/// slower, locked path).
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// use watchpost::integrations::TracingLayer;
///
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let layer = TracingLayer::new(&engine);
/// let subscriber = tracing_subscriber::registry().with(layer.clone());
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!("handle_message").in_scope(|| tracing::error!(room = "lobby", "send failed"));
/// });
/// let stats = layer.stats();
/// assert_eq!((stats[0].name.as_str(), stats[0].calls, stats[0].errors), ("handle_message", 1, 1));
/// assert_eq!(layer.recent_events()[0].message, "send failed");
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct TracingLayer {
    inner: Arc<Inner>,
    /// The open spans of the subscriber this layer is part of: a new table
    /// when the layer joins a subscriber (`on_layer`), so clones in several
    /// subscribers never mix up their span ids.
    spans: Arc<SpanTable>,
}

/// Settings of a [`TracingLayer`], from [`TracingLayer::builder`].
#[derive(Debug)]
#[must_use]
pub struct TracingLayerBuilder {
    monitor: Monitor,
    default_slow: Duration,
    slow_overrides: HashMap<String, Duration>,
    slow_capacity: usize,
    recent_events: usize,
    capture_fields: bool,
    busy_time: bool,
    error_rate: Option<f64>,
}

impl TracingLayerBuilder {
    /// The threshold of the default rule `error_log_rate`, in ERROR events per
    /// minute and target (default [`DEFAULT_ERROR_LOG_RATE`]). Building the
    /// layer adds the rule ([`TracingLayer::error_rate_rule`]) to the engine
    /// unless it already has a rule of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine).error_rate_rule(30.0).build()?;
    /// assert!(engine.alert_rules().iter().any(|r| r.name() == "error_log_rate"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn error_rate_rule(mut self, per_minute: f64) -> Self {
        self.error_rate = Some(per_minute);
        self
    }

    /// Builds the layer without adding the default rule `error_log_rate`,
    /// like [`EngineBuilder::without_default_alert_rules`](crate::EngineBuilder::without_default_alert_rules)
    /// for the host rules.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine)
    ///     .without_error_rate_rule()
    ///     .build()?;
    /// assert!(!engine.alert_rules().iter().any(|r| r.name() == "error_log_rate"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn without_error_rate_rule(mut self) -> Self {
        self.error_rate = None;
        self
    }

    /// Whether to measure busy time, the time spent inside a span between
    /// enter and exit, into `span_busy_seconds{span, target}` and
    /// [`SlowOperation::busy`] (default `false`). It costs two more clock
    /// readings and two atomic updates of the span's slot in the layer's
    /// span table per entry, about two thirds more than the layer's overhead
    /// without it (docs/integrations.md has the figures).
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine).busy_time(true).build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn busy_time(mut self, on: bool) -> Self {
        self.busy_time = on;
        self
    }

    /// Spans slower than `threshold` go to the slow-operation log (default
    /// [`DEFAULT_SLOW_THRESHOLD`]). `Duration::ZERO` logs every span.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine)
    ///     .slow_threshold(std::time::Duration::from_millis(200))
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.default_slow = threshold;
        self
    }

    /// A threshold for the spans named `name`, in place of the default one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// use std::time::Duration;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine)
    ///     .slow_threshold_for("db_query", Duration::from_millis(50))
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn slow_threshold_for(mut self, name: impl Into<String>, threshold: Duration) -> Self {
        self.slow_overrides.insert(name.into(), threshold);
        self
    }

    /// How many slow operations the engine's log keeps before evicting the
    /// oldest (default [`DEFAULT_SLOW_CAPACITY`], 1 to
    /// [`MAX_TRACING_LIST_CAPACITY`]); building the layer applies it to the log.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// use watchpost::integrations::TracingLayer;
    /// assert!(TracingLayer::builder(&engine).slow_capacity(0).build().is_err());
    /// let layer = TracingLayer::builder(&engine).slow_capacity(16).build()?;
    /// assert_eq!(layer.slow_operations().capacity(), 16);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn slow_capacity(mut self, capacity: usize) -> Self {
        self.slow_capacity = capacity;
        self
    }

    /// How many recent ERROR and WARN events the engine keeps (default
    /// [`DEFAULT_RECENT_EVENTS`], 0 to [`MAX_TRACING_LIST_CAPACITY`]; 0 keeps
    /// none); building the layer applies it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine).recent_events(10).build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recent_events(mut self, capacity: usize) -> Self {
        self.recent_events = capacity;
        self
    }

    /// Whether spans keep their fields for the slow-operation log (default
    /// `true`). Numbers and booleans, up to two per span, stay in the
    /// layer's span table as they are, formatted only if the span turns out
    /// slow; text values, more fields and fields recorded after creation
    /// are copied beside it (an allocation each). Without capture an
    /// `error` field still counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::integrations::TracingLayer::builder(&engine).capture_fields(false).build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn capture_fields(mut self, capture: bool) -> Self {
        self.capture_fields = capture;
        self
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting when a capacity is out of
    /// range or the error-rate threshold is negative or not finite.
    ///
    /// # Examples
    ///
    /// See [`TracingLayer`].
    pub fn build(self) -> Result<TracingLayer> {
        let check = |field: &'static str, value: usize, min: usize| {
            if (min..=MAX_TRACING_LIST_CAPACITY).contains(&value) {
                Ok(())
            } else {
                Err(Error::InvalidConfig {
                    field,
                    reason: format!(
                        "must be between {min} and {MAX_TRACING_LIST_CAPACITY}, got {value}"
                    ),
                })
            }
        };
        check("slow_capacity", self.slow_capacity, 1)?;
        check("recent_events", self.recent_events, 0)?;
        if let Some(per_minute) = self.error_rate {
            let rule = TracingLayer::error_rate_rule(per_minute)?;
            if !self.monitor.alert_rules().iter().any(|r| r.name() == rule.name()) {
                self.monitor.add_alert_rule(rule)?;
            }
        }
        let clock = Arc::clone(self.monitor.clock());
        // The engine's operations log takes this layer's capacities.
        let log = self.monitor.operations_log();
        log.slow.set_capacity(self.slow_capacity);
        log.events.set_capacity(self.recent_events);
        Ok(TracingLayer {
            inner: Arc::new(Inner {
                monitor: self.monitor,
                clock,
                sites: RwLock::default(),
                callsites: CallsiteIndex::default(),
                default_slow: self.default_slow,
                slow_overrides: self.slow_overrides,
                capture_fields: self.capture_fields,
                busy_time: self.busy_time,
            }),
            spans: Arc::default(),
        })
    }
}

impl TracingLayer {
    /// A layer with every setting at its default.
    ///
    /// # Examples
    ///
    /// See [`TracingLayer`].
    #[allow(clippy::missing_panics_doc, reason = "the default settings are valid")]
    pub fn new(monitor: &Monitor) -> Self {
        Self::builder(monitor).build().expect("the default settings are valid")
    }

    /// A builder with every setting at its default.
    ///
    /// # Examples
    ///
    /// See [`TracingLayerBuilder`]'s setters.
    pub fn builder(monitor: &Monitor) -> TracingLayerBuilder {
        TracingLayerBuilder {
            monitor: monitor.clone(),
            default_slow: DEFAULT_SLOW_THRESHOLD,
            slow_overrides: HashMap::new(),
            slow_capacity: DEFAULT_SLOW_CAPACITY,
            recent_events: DEFAULT_RECENT_EVENTS,
            capture_fields: true,
            busy_time: false,
            error_rate: Some(DEFAULT_ERROR_LOG_RATE),
        }
    }

    /// APM statistics per span name and target, sorted by name then target.
    ///
    /// # Examples
    ///
    /// See [`TracingLayer`].
    pub fn stats(&self) -> Vec<SpanStats> {
        let sites: Vec<Arc<SpanSite>> = self.inner.sites.read().by_name.values().cloned().collect();
        let mut out: Vec<SpanStats> = sites.iter().map(|s| s.stats()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.target.cmp(&b.target)));
        out
    }

    /// The slow-operation log this layer fills (a shared handle).
    ///
    /// # Examples
    ///
    /// See [`SlowOperations`].
    pub fn slow_operations(&self) -> SlowOperations {
        self.inner.monitor.slow_operations()
    }

    /// The most recent ERROR and WARN events, oldest first.
    ///
    /// # Examples
    ///
    /// See [`TracingLayer`].
    pub fn recent_events(&self) -> Vec<LogEvent> {
        self.inner.monitor.recent_log_events()
    }

    /// An alert rule `error_log_rate` that fires when a target logs more
    /// than `per_minute` ERROR events per minute, measured as the rate of
    /// `log_events_total{level="error"}` over the last minute (one alert per
    /// target). Building a layer adds it with [`DEFAULT_ERROR_LOG_RATE`]
    /// unless told otherwise ([`TracingLayerBuilder::error_rate_rule`],
    /// [`TracingLayerBuilder::without_error_rate_rule`]); add it yourself with
    /// [`Monitor::add_alert_rule`] or
    /// [`EngineBuilder::alert_rule`](crate::EngineBuilder::alert_rule).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `per_minute` when it is negative or
    /// not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::integrations::TracingLayer;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.add_alert_rule(TracingLayer::error_rate_rule(10.0)?)?;
    /// assert!(TracingLayer::error_rate_rule(f64::NAN).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn error_rate_rule(per_minute: f64) -> Result<AlertRule> {
        if !per_minute.is_finite() || per_minute < 0.0 {
            return Err(Error::InvalidConfig {
                field: "per_minute",
                reason: format!("must be a finite number >= 0, got {per_minute}"),
            });
        }
        AlertRule::builder("error_log_rate", "log_events_total")
            .label_eq("level", "error")
            .threshold(Aggregate::Rate, Duration::from_mins(1), CompareOp::Gt, per_minute / 60.0)
            .severity(Severity::Error)
            .title(format!("More than {per_minute} error events per minute from {{{{labels.target}}}}"))
            .message("{{labels.target}} logs {{value}} error events per second (threshold {{threshold}})")
            .build()
    }
}

impl fmt::Debug for TracingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingLayer")
            .field("default_slow", &self.inner.default_slow)
            .field("slow_overrides", &self.inner.slow_overrides)
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Inner {
    fn now_ns(&self) -> i64 {
        self.clock.monotonic_nanos()
    }

    /// The index of a span callsite in the callsite list: plain loads from
    /// the lock-free table, else [`register`](Self::register).
    fn callsite_index(&self, meta: &'static Metadata<'static>) -> u32 {
        self.callsites.index_of(meta).unwrap_or_else(|| self.register(meta))
    }

    /// Runs `f` on callsite `index` and its site: from the lock-free table,
    /// else under the read lock of the callsite list.
    fn with_callsite<R>(
        &self,
        index: u32,
        f: impl FnOnce(&'static Metadata<'static>, &SpanSite) -> R,
    ) -> Option<R> {
        if let Some((meta, site)) = self.callsites.get(index) {
            return Some(f(meta, site));
        }
        let (meta, site) = self.sites.read().callsites.get(index as usize)?.clone();
        Some(f(meta, &site))
    }

    /// The index of a span callsite: one read lock, the registration (and
    /// the site of its name and target if it is the first) once per
    /// callsite.
    fn register(&self, meta: &'static Metadata<'static>) -> u32 {
        let id = meta.callsite();
        if let Some(index) = self.sites.read().by_callsite.get(&id) {
            return *index;
        }
        let mut sites = self.sites.write();
        if let Some(index) = sites.by_callsite.get(&id) {
            return *index;
        }
        let key = (meta.name(), meta.target());
        #[allow(clippy::single_match_else, reason = "two paths of similar weight")]
        let site = match sites.by_name.get(&key) {
            Some(site) => Arc::clone(site),
            None => {
                let labels = [("span", meta.name()), ("target", meta.target())];
                // A refused series (cap, label too long) still gets its statistics.
                let histogram = |name| {
                    self.monitor.histogram_with(name, &labels, &SPAN_BUCKETS).unwrap_or_else(|_| {
                        Histogram::with_bounds(&SPAN_BUCKETS).expect("valid bounds")
                    })
                };
                let slow =
                    self.slow_overrides.get(meta.name()).copied().unwrap_or(self.default_slow);
                let duration = histogram("span_duration_seconds");
                let busy = self.busy_time.then(|| histogram("span_busy_seconds"));
                let site = Arc::new(SpanSite {
                    name: meta.name(),
                    target: meta.target(),
                    duration_ns: duration.nanos_buckets(),
                    duration,
                    busy_ns: busy.as_ref().and_then(Histogram::nanos_buckets),
                    busy,
                    errors: AtomicU64::new(0),
                    max_ns: AtomicU64::new(0),
                    slow_ns: nanos(slow),
                });
                sites.by_name.insert(key, Arc::clone(&site));
                site
            }
        };
        // More span callsites than a u32 counts do not exist in one program.
        let index = u32::try_from(sites.callsites.len()).unwrap_or(u32::MAX);
        let callsite = (meta, site);
        self.callsites.add(index, &callsite);
        sites.callsites.push(callsite);
        sites.by_callsite.insert(id, index);
        index
    }

    /// Counts one event of its callsite: a read lock on the hot path, the
    /// registration once per callsite.
    fn count_event(&self, meta: &'static Metadata<'static>) {
        let id = meta.callsite();
        if let Some(c) = self.sites.read().events.get(&id) {
            c.inc();
            return;
        }
        let level = log_level(*meta.level()).as_str();
        let counter = self
            .monitor
            .counter_with("log_events_total", &[("level", level), ("target", meta.target())])
            .unwrap_or_else(|_| Counter::detached());
        counter.inc();
        self.sites.write().events.insert(id, counter);
    }
}

fn log_level(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

impl<S> Layer<S> for TracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        // Span ids are unique within one subscriber only.
        self.spans = Arc::default();
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        let mut error = false;
        if !attrs.values().is_empty() {
            let mut visitor = FieldVisitor::span(&mut fields, self.inner.capture_fields);
            attrs.record(&mut visitor);
            error = visitor.error;
        }
        let callsite = self.inner.callsite_index(attrs.metadata());
        let created_ns = self.inner.now_ns();
        self.spans.insert(id.into_u64(), NewSpan { created_ns, callsite, error, fields });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        let mut visitor = FieldVisitor::span(&mut fields, self.inner.capture_fields);
        values.record(&mut visitor);
        let error = visitor.error;
        self.spans.record(id.into_u64(), error, fields);
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        if self.inner.busy_time {
            self.spans.enter(id.into_u64(), self.inner.now_ns());
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        if self.inner.busy_time {
            self.spans.exit(id.into_u64(), self.inner.now_ns());
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        self.inner.count_event(meta);
        let level = *meta.level();
        if level != Level::ERROR && level != Level::WARN {
            return;
        }
        let span = ctx.event_span(event);
        if level == Level::ERROR
            && let Some(span) = &span
        {
            self.spans.set_error(span.id().into_u64());
        }
        let mut fields = Fields::new();
        let mut visitor = FieldVisitor {
            fields: &mut fields,
            capture: true,
            error: false,
            message: None,
            take_message: true,
        };
        event.record(&mut visitor);
        let message = visitor.message.take().unwrap_or_default();
        self.inner.monitor.operations_log().events.push(LogEvent {
            at: self.inner.clock.now(),
            level: log_level(level),
            target: meta.target().to_string(),
            message,
            fields: owned(fields),
            span: span.map(|s| s.name().to_string()),
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // The clock first: its latency overlaps the table lookup.
        let now = self.inner.now_ns();
        let Some(state) = self.spans.remove(id.into_u64()) else { return };
        let total_ns = u64::try_from(now.saturating_sub(state.created_ns)).unwrap_or(0);
        let slow = self.inner.with_callsite(state.callsite, |meta, site| {
            site.observe(total_ns, state.busy_ns);
            if state.error {
                site.errors.fetch_add(1, Ordering::Relaxed);
            }
            // A plain load first: the max rarely moves, and a locked update costs.
            if total_ns > site.max_ns.load(Ordering::Relaxed) {
                site.max_ns.fetch_max(total_ns, Ordering::Relaxed);
            }
            (total_ns >= site.slow_ns).then_some(meta)
        });
        let Some(Some(meta)) = slow else { return };
        let mut parents: Vec<String> = ctx
            .span(&id)
            .map(|span| span.scope().skip(1).map(|p| p.name().to_string()).collect())
            .unwrap_or_default();
        parents.reverse();
        // The start on the wall clock: one more reading, for slow spans only.
        let duration = Duration::from_nanos(total_ns);
        let started = chrono::TimeDelta::from_std(duration)
            .ok()
            .and_then(|d| self.inner.clock.now().checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.inner.monitor.operations_log().slow.push(SlowOperation {
            name: meta.name().to_string(),
            target: meta.target().to_string(),
            duration,
            busy: self.inner.busy_time.then(|| Duration::from_nanos(state.busy_ns)),
            started,
            error: state.error,
            fields: state.fields(meta),
            parents,
        });
    }
}

#[cfg(test)]
mod tests;
