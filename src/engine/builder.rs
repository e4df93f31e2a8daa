use std::fmt;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use parking_lot::RwLock;

use super::worker::Worker;
use super::{Engine, Monitor, SelfMetrics, Shared};
use crate::alert::{AlertManager, AlertRule, InhibitRule, Notifier, Severity};
use crate::clock::{Clock, MAX_DURATION, SystemClock, duration_ms};
use crate::dashboard::DashboardConfig;
use crate::detect::DetectorSpec;
use crate::error::{Error, Result};
use crate::history::{History, MAX_HISTORY_CAPACITY};
use crate::registry::{Collector, Registry};
use crate::source::Source;

/// Default sample interval: 1 s.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Default history capacity per series: 1 000 samples.
pub const DEFAULT_HISTORY_CAPACITY: usize = 1_000;
/// Default cap on series per metric name: 1 000.
pub const DEFAULT_SERIES_CAP: usize = 1_000;
/// Default cap on series in the whole engine, derived ones included: 100 000.
pub const DEFAULT_TOTAL_SERIES_CAP: usize = 100_000;
/// Default limit on the length of a metric name or label name: 256 bytes.
pub const DEFAULT_MAX_NAME_LENGTH: usize = 256;
/// Default limit on the length of a label value: 1 024 bytes.
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: usize = 1_024;
/// Default limit on the number of labels of one series: 32.
pub const DEFAULT_MAX_LABELS: usize = 32;
/// Default capacity of the `record()` queue: 65 536 samples.
pub const DEFAULT_RECORD_QUEUE_CAPACITY: usize = 65_536;
/// Default number of alert history events in the dashboard: 50.
pub const DEFAULT_RECENT_ALERT_EVENTS: usize = 50;
/// The largest `record()` queue an engine accepts: 1 048 576 samples (2^20).
///
/// The queue is allocated whole when the engine is built, at 32 bytes a
/// slot: 32 MiB at this maximum.
///
/// # Examples
///
/// ```
/// let err = watchpost::Engine::builder()
///     .without_system_source()
///     .record_queue_capacity(usize::MAX)
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().starts_with("invalid record_queue_capacity: must be at most 1048576"));
/// ```
pub const MAX_RECORD_QUEUE_CAPACITY: usize = 1 << 20;
/// The largest notification queue an engine accepts, for the main queue and
/// for each handler's own: 65 536 notifications (2^16).
///
/// # Examples
///
/// ```
/// let err = watchpost::Engine::builder()
///     .without_system_source()
///     .notifier_queue_capacity(watchpost::MAX_NOTIFICATION_QUEUE_CAPACITY + 1)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "invalid notifier_queue_capacity: must be at most 65536, got 65537");
/// ```
pub const MAX_NOTIFICATION_QUEUE_CAPACITY: usize = 1 << 16;

/// Configures and starts an [`Engine`]. Every setter names its default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let engine = watchpost::Engine::builder()
///     .sample_interval(Duration::from_secs(5))
///     .history_capacity(720)
///     .history_max_age(Duration::from_hours(1))
///     .without_system_source()
///     .build()?;
/// # Ok::<(), watchpost::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct EngineBuilder {
    sample_interval: Duration,
    history_capacity: usize,
    history_max_age: Option<Duration>,
    series_cap: usize,
    limits: crate::registry::Limits,
    record_queue_capacity: usize,
    summary_window: Duration,
    pub(super) clock: Arc<dyn Clock>,
    system_source: bool,
    sources: Vec<Box<dyn Source>>,
    /// Exporters started with the engine (remote write).
    pub(crate) sinks: Vec<super::sink::SinkFactory>,
    recent_metrics: Vec<String>,
    recent_points: usize,
    statistics_window: Duration,
    performance: crate::analysis::SummaryConfig,
    detection: super::Detection,
    alerting: Alerting,
    pub(super) persist: super::persist::Settings,
    pub(super) config: Option<Result<crate::config::Config>>,
    /// Silences of the configuration document, added once the manager exists.
    pub(super) pending_silences: Vec<crate::alert::Silence>,
}

/// The alert settings of a builder.
struct Alerting {
    default_rules: bool,
    rules: Vec<AlertRule>,
    notifiers: Vec<(String, Box<dyn Notifier>)>,
    inhibit_rules: Vec<InhibitRule>,
    default_inhibition: bool,
    repeat: Vec<(Severity, Option<Duration>)>,
    history_capacity: usize,
    recent_events: usize,
    queue_capacity: usize,
    handler_queue_capacity: usize,
    flush_timeout: Duration,
    shutdown_grace: Duration,
    stuck_timeout: Duration,
    staleness: Option<Duration>,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            default_rules: true,
            rules: Vec::new(),
            notifiers: Vec::new(),
            inhibit_rules: Vec::new(),
            default_inhibition: true,
            repeat: Vec::new(),
            history_capacity: crate::alert::DEFAULT_HISTORY_CAPACITY,
            recent_events: DEFAULT_RECENT_ALERT_EVENTS,
            queue_capacity: crate::dispatch::DEFAULT_QUEUE_CAPACITY,
            handler_queue_capacity: crate::dispatch::DEFAULT_HANDLER_QUEUE_CAPACITY,
            flush_timeout: super::DEFAULT_NOTIFY_FLUSH_TIMEOUT,
            shutdown_grace: crate::dispatch::DEFAULT_SHUTDOWN_GRACE,
            stuck_timeout: crate::dispatch::DEFAULT_STUCK_TIMEOUT,
            staleness: None,
        }
    }
}

impl Alerting {
    /// The manager these settings describe: the default rules (unless turned
    /// off), each replaced by a rule of the same name, then the other rules.
    fn manager(&mut self) -> Result<AlertManager> {
        let mut mgr = AlertManager::default();
        if self.default_rules {
            for rule in crate::alert::default_rules() {
                mgr.add_rule(rule)?;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for rule in std::mem::take(&mut self.rules) {
            if !seen.insert(rule.name().to_owned()) {
                return Err(Error::InvalidConfig {
                    field: "alert_rule",
                    reason: format!("two rules are named {:?}", rule.name()),
                });
            }
            mgr.replace_rule(rule, 0);
        }
        mgr.set_default_inhibition(self.default_inhibition);
        for rule in std::mem::take(&mut self.inhibit_rules) {
            mgr.add_inhibit_rule(rule);
        }
        for (severity, every) in &self.repeat {
            mgr.set_repeat_interval(*severity, *every)?;
        }
        mgr.set_history_capacity(self.history_capacity)?;
        Ok(mgr)
    }
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            history_max_age: None,
            series_cap: DEFAULT_SERIES_CAP,
            limits: crate::registry::Limits {
                per_name: DEFAULT_SERIES_CAP,
                total: DEFAULT_TOTAL_SERIES_CAP,
                key: crate::key::KeyLimits {
                    name_bytes: DEFAULT_MAX_NAME_LENGTH,
                    label_value_bytes: DEFAULT_MAX_LABEL_VALUE_LENGTH,
                    labels: DEFAULT_MAX_LABELS,
                },
            },
            record_queue_capacity: DEFAULT_RECORD_QUEUE_CAPACITY,
            summary_window: Duration::from_mins(1),
            clock: Arc::new(SystemClock),
            system_source: cfg!(feature = "system"),
            sources: Vec::new(),
            sinks: Vec::new(),
            recent_metrics: ["system_cpu_usage", "system_memory_usage", "app_memory_usage"]
                .map(String::from)
                .to_vec(),
            recent_points: 20,
            statistics_window: Duration::from_mins(5),
            performance: crate::analysis::SummaryConfig::default(),
            detection: super::Detection {
                default: Some(DetectorSpec::default()),
                per_metric: std::collections::HashMap::new(),
                threshold: crate::detect::DEFAULT_THRESHOLD,
                domains: std::collections::HashMap::new(),
            },
            alerting: Alerting::default(),
            persist: super::persist::Settings::default(),
            config: None,
            pending_silences: Vec::new(),
        }
    }
}

impl EngineBuilder {
    /// How often the worker runs the sources and samples every instrument into history.
    /// At least 1 ms; longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to 1 s.
    pub fn sample_interval(mut self, every: Duration) -> Self {
        self.sample_interval = every.min(MAX_DURATION);
        self
    }

    /// Samples kept per series; the oldest is dropped when full. At most
    /// [`MAX_HISTORY_CAPACITY`](crate::MAX_HISTORY_CAPACITY).
    ///
    /// Defaults to 1 000.
    pub fn history_capacity(mut self, samples: usize) -> Self {
        self.history_capacity = samples;
        self
    }

    /// Also drop samples older than `age` (relative to the series' newest
    /// sample). At least 1 ms; longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to no age limit.
    pub fn history_max_age(mut self, age: Duration) -> Self {
        self.history_max_age = Some(age.min(MAX_DURATION));
        self
    }

    /// Maximum number of series per metric name; registrations past it fail
    /// with [`Error::CardinalityExceeded`] and are counted.
    ///
    /// Defaults to 1 000.
    pub fn series_cap(mut self, series: usize) -> Self {
        self.series_cap = series;
        self
    }

    /// Maximum number of series in the whole engine, derived ones included
    /// (a counter brings a `:rate` series, a histogram or summary four more),
    /// and the engine's own `watchpost_*` series too. A registration that
    /// would pass it fails with [`Error::TotalSeriesExceeded`] and is counted
    /// (`reason="total_series_cap"`). With the default history (1 000
    /// samples) and detector a series holds about 49 KB once its history is
    /// full (see `docs/reliability.md` for how to size an engine).
    ///
    /// Defaults to [`DEFAULT_TOTAL_SERIES_CAP`] (100 000).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().total_series_cap(100).build()?;
    /// let refused = (0..100).filter(|i| engine.gauge(&format!("g{i}")).is_err()).count();
    /// assert!(refused > 0);
    /// assert_eq!(engine.stats().series_rejected_by_reason.total_series_cap, refused as u64);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn total_series_cap(mut self, series: usize) -> Self {
        self.limits.total = series;
        self
    }

    /// Longest metric name or label name accepted, in bytes; a longer one
    /// fails with [`Error::NameTooLong`] and is counted (`reason="name_too_long"`).
    ///
    /// Defaults to [`DEFAULT_MAX_NAME_LENGTH`] (256).
    pub fn max_name_length(mut self, bytes: usize) -> Self {
        self.limits.key.name_bytes = bytes;
        self
    }

    /// Longest label value accepted, in bytes; a longer one fails with
    /// [`Error::LabelValueTooLong`] and is counted (`reason="label_value_too_long"`).
    ///
    /// Defaults to [`DEFAULT_MAX_LABEL_VALUE_LENGTH`] (1 024).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().max_label_value_length(8).build()?;
    /// let err = engine.record("logins", &[("user", "a-very-long-id")], 1.0).unwrap_err();
    /// assert!(err.to_string().contains("14 bytes long, over the limit of 8"));
    /// assert_eq!(engine.stats().series_rejected_by_reason.label_value_too_long, 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn max_label_value_length(mut self, bytes: usize) -> Self {
        self.limits.key.label_value_bytes = bytes;
        self
    }

    /// Most labels one series may have; more fail with
    /// [`Error::TooManyLabels`] and are counted (`reason="too_many_labels"`).
    ///
    /// Defaults to [`DEFAULT_MAX_LABELS`] (32).
    pub fn max_labels(mut self, labels: usize) -> Self {
        self.limits.key.labels = labels;
        self
    }

    /// Capacity of the queue between `record()` and the worker; when it is
    /// full, samples are dropped and counted. At most [`MAX_RECORD_QUEUE_CAPACITY`].
    ///
    /// Defaults to 65 536.
    pub fn record_queue_capacity(mut self, samples: usize) -> Self {
        self.record_queue_capacity = samples;
        self
    }

    /// The sliding window of [`Summary`](crate::Summary) quantiles. At least
    /// 4 ms; longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to 60 s.
    pub fn summary_window(mut self, window: Duration) -> Self {
        self.summary_window = window.min(MAX_DURATION);
        self
    }

    /// The clock every time-dependent decision reads.
    ///
    /// Defaults to [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Runs the built-in [`SystemSource`](crate::SystemSource) (feature `system`).
    ///
    /// Defaults to on when feature `system` is enabled.
    #[cfg(feature = "system")]
    #[cfg_attr(docsrs, doc(cfg(feature = "system")))]
    pub fn system_source(mut self, on: bool) -> Self {
        self.system_source = on;
        self
    }

    /// Turns the built-in system source off.
    ///
    /// Defaults to on when feature `system` is enabled.
    pub fn without_system_source(mut self) -> Self {
        self.system_source = false;
        self
    }

    /// Adds a [`Source`] the worker runs every sample interval.
    ///
    /// Defaults to none beyond the system source.
    pub fn source(mut self, source: impl Source) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Metric names whose last points the dashboard's `recent_metrics` shows.
    ///
    /// Defaults to `system_cpu_usage`, `system_memory_usage`, `app_memory_usage`.
    pub fn dashboard_recent_metrics<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.recent_metrics = names.into_iter().map(Into::into).collect();
        self
    }

    /// How many points per series `recent_metrics` shows.
    ///
    /// Defaults to 20.
    pub fn dashboard_recent_points(mut self, points: usize) -> Self {
        self.recent_points = points;
        self
    }

    /// The window the dashboard's per-series statistics cover. At least 1 ms;
    /// longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to 5 minutes.
    pub fn dashboard_statistics_window(mut self, window: Duration) -> Self {
        self.statistics_window = window.min(MAX_DURATION);
        self
    }

    /// Series, checks and forecast settings of the dashboard's
    /// `performance_summary` (see [`SummaryConfig`](crate::analysis::SummaryConfig)).
    ///
    /// Defaults to [`SummaryConfig::default`](crate::analysis::SummaryConfig::default):
    /// CPU mean > 80, memory mean > 85, memory rising, memory or disk predicted to fill.
    pub fn performance_checks(mut self, config: crate::analysis::SummaryConfig) -> Self {
        self.performance = config;
        self
    }

    /// The anomaly detector every eligible series gets: gauges, recorded
    /// series and derived series (rates, quantiles). Cumulative series
    /// (counter totals, histogram and summary counts) are skipped; their
    /// rates are watched instead. Scores are kept beside each sample in
    /// history and points at or above the threshold are listed in the
    /// dashboard's `anomalies`.
    ///
    /// Defaults to the ensemble ([`DetectorSpec::default`]).
    pub fn anomaly_detector(mut self, spec: DetectorSpec) -> Self {
        self.detection.default = Some(spec);
        self
    }

    /// Turns anomaly detection off for every series not named in
    /// [`anomaly_detector_for`](Self::anomaly_detector_for).
    ///
    /// Defaults to on (the ensemble).
    pub fn without_anomaly_detection(mut self) -> Self {
        self.detection.default = None;
        self
    }

    /// The detector for every series of metric `name` (derived series have
    /// their own names, such as `messages_total:rate`); `None` turns detection
    /// off for it. Overrides the default and the eligibility rule.
    ///
    /// Defaults to the default detector for eligible series.
    pub fn anomaly_detector_for(mut self, name: &str, spec: Option<DetectorSpec>) -> Self {
        self.detection.per_metric.insert(name.to_owned(), spec);
        self
    }

    /// Declares the values every series of metric `name` can take; the
    /// expected band its detector reports (in history, the dashboard and the
    /// anomaly log) is cut to it.
    ///
    /// Defaults to [`Domain::of_metric`](crate::detect::Domain::of_metric):
    /// `[0, 100]` for percentages, never negative for rates, counts, sizes
    /// and durations, unbounded otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::Domain;
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .metric_domain("cache_hit_ratio", Domain::new(0.0, 1.0)?)
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn metric_domain(mut self, name: &str, domain: crate::detect::Domain) -> Self {
        self.detection.domains.insert(name.to_owned(), domain);
        self
    }

    /// The score at or above which a point counts as an anomaly.
    ///
    /// Defaults to [`DEFAULT_THRESHOLD`](crate::detect::DEFAULT_THRESHOLD) (0.5).
    pub fn anomaly_threshold(mut self, threshold: f64) -> Self {
        self.detection.threshold = threshold;
        self
    }

    /// Adds an alert rule. A rule with the name of a [default
    /// rule](crate::alert::default_rules) replaces it; any number of rules may
    /// watch the same metric.
    ///
    /// Defaults to the default rules only (CPU > 80 warning and > 95
    /// critical, memory > 85 warning and > 95 critical, disk > 90 warning).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Severity};
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .alert_rule(AlertRule::builder("slow_messages", "message_latency_seconds:p99")
    ///         .above(0.5)
    ///         .severity(Severity::Warning)
    ///         .build()?)
    ///     .build()?;
    /// assert_eq!(engine.alert_rules().len(), 6);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn alert_rule(mut self, rule: AlertRule) -> Self {
        self.alerting.rules.push(rule);
        self
    }

    /// Adds every rule of `rules` (see [`alert_rule`](Self::alert_rule)).
    ///
    /// Defaults to the default rules only.
    pub fn alert_rules(mut self, rules: impl IntoIterator<Item = AlertRule>) -> Self {
        self.alerting.rules.extend(rules);
        self
    }

    /// Starts without the [default rules](crate::alert::default_rules).
    ///
    /// Defaults to with them.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .without_default_alert_rules()
    ///     .build()?;
    /// assert!(engine.alert_rules().is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn without_default_alert_rules(mut self) -> Self {
        self.alerting.default_rules = false;
        self
    }

    /// Registers a notification handler under `name`. It runs on a thread of
    /// its own, and what waits for it is coalesced per alert instance; see
    /// [`Monitor::add_notifier`](crate::Monitor::add_notifier).
    ///
    /// Defaults to no handler (alerts are still tracked and shown).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{FnNotifier, LogNotifier};
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .notifier("log", LogNotifier::stderr())
    ///     .notifier("pager", FnNotifier(|n: &watchpost::alert::Notification| {
    ///         let _ = (n.kind, &n.title);
    ///     }))
    ///     .build()?;
    /// assert_eq!(engine.notification_stats().handlers.len(), 2);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn notifier(mut self, name: impl Into<String>, notifier: impl Notifier) -> Self {
        self.alerting.notifiers.push((name.into(), Box::new(notifier)));
        self
    }

    /// Adds a custom inhibit rule.
    ///
    /// Defaults to none (besides default inhibition).
    pub fn inhibit_rule(mut self, rule: InhibitRule) -> Self {
        self.alerting.inhibit_rules.push(rule);
        self
    }

    /// Turns off default inhibition (a firing alert muting alerts of lower
    /// severity in the same family on the same series).
    ///
    /// Defaults to on.
    pub fn without_default_inhibition(mut self) -> Self {
        self.alerting.default_inhibition = false;
        self
    }

    /// The repeat interval of alerts of `severity` whose rule sets none;
    /// `None` turns repeats off. Longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to [`DEFAULT_CRITICAL_REPEAT`](crate::alert::DEFAULT_CRITICAL_REPEAT)
    /// (4 h) for critical, no repeats otherwise.
    pub fn alert_repeat_interval(mut self, severity: Severity, every: Option<Duration>) -> Self {
        self.alerting.repeat.push((severity, every.map(|d| d.min(MAX_DURATION))));
        self
    }

    /// Alert history events kept (oldest dropped first).
    ///
    /// Defaults to [`DEFAULT_HISTORY_CAPACITY`](crate::alert::DEFAULT_HISTORY_CAPACITY) (1 000).
    pub fn alert_history_capacity(mut self, events: usize) -> Self {
        self.alerting.history_capacity = events;
        self
    }

    /// How many of the newest alert history events the dashboard's
    /// `recent_alert_events` shows.
    ///
    /// Defaults to [`DEFAULT_RECENT_ALERT_EVENTS`] (50).
    pub fn dashboard_recent_alert_events(mut self, events: usize) -> Self {
        self.alerting.recent_events = events;
        self
    }

    /// Capacity, in evaluations, of the queue between evaluation and the
    /// handlers' fan-out (each evaluation hands over its notifications as one
    /// entry); when full, notifications are dropped and counted
    /// (`overflowed`). The fan-out never blocks, so it fills only if its
    /// thread is starved.
    /// At most [`MAX_NOTIFICATION_QUEUE_CAPACITY`].
    ///
    /// Defaults to 1 024.
    pub fn notification_queue_capacity(mut self, notifications: usize) -> Self {
        self.alerting.queue_capacity = notifications;
        self
    }

    /// The most notifications that may wait for one handler. What waits is
    /// coalesced per alert instance (at most 8 each), so a slow handler never
    /// comes near it; past it, the handler counts as stuck: what waits for it
    /// is dropped and counted in its `dropped`.
    /// At most [`MAX_NOTIFICATION_QUEUE_CAPACITY`].
    ///
    /// Defaults to 65 536.
    pub fn notifier_queue_capacity(mut self, notifications: usize) -> Self {
        self.alerting.handler_queue_capacity = notifications;
        self
    }

    /// How long [`Monitor::flush`](crate::Monitor::flush) waits at most for
    /// each handler to take the notifications of its evaluation (wall time).
    /// A handler that misses it is not waited for again while it is still
    /// in the call it was late on.
    /// Longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to [`DEFAULT_NOTIFY_FLUSH_TIMEOUT`](crate::DEFAULT_NOTIFY_FLUSH_TIMEOUT) (5 s).
    pub fn notification_flush_timeout(mut self, timeout: Duration) -> Self {
        self.alerting.flush_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// How long [`Engine::shutdown`](crate::Engine::shutdown) (or drop) waits
    /// for the handlers to deliver what is queued and flush (wall time). A
    /// handler still busy then is left running, detached, and the
    /// notifications it has not taken count as dropped, so a handler that
    /// hangs cannot hang shutdown. Longer than [`MAX_DURATION`] saturates to it.
    ///
    /// Defaults to 10 s.
    pub fn notifier_shutdown_grace(mut self, grace: Duration) -> Self {
        self.alerting.shutdown_grace = grace.min(MAX_DURATION);
        self
    }

    /// How long one handler call may last (wall time, like
    /// [`notification_flush_timeout`](Self::notification_flush_timeout))
    /// before the handler counts as stuck. A notification for a stuck handler is
    /// dropped, with everything waiting for it, and counted in its `dropped`
    /// (and `watchpost_notifications_dropped_total{handler}`) until the call
    /// returns. A handler that is slow but returns loses nothing.
    ///
    /// Defaults to 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .notifier_stuck_timeout(Duration::from_mins(2)) // a mail relay that may take a while
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn notifier_stuck_timeout(mut self, timeout: Duration) -> Self {
        self.alerting.stuck_timeout = timeout;
        self
    }

    /// A series whose newest sample is older than `horizon` (by the engine's
    /// clock) is stale: it drops out of rule evaluation, and its alerts are
    /// dropped, each whose firing was announced getting a resolve with
    /// [`ResolveReason::Stale`](crate::alert::ResolveReason::Stale). Absence
    /// rules keep watching it. A new sample makes it fresh again, with new
    /// alerts (a `for` starts over). Prometheus' equivalent is its 5 minute
    /// lookback: set 5 minutes to resolve like it does.
    ///
    /// Defaults to off: a silent series stays in evaluation and its alerts
    /// follow their rule's no-data policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .staleness_horizon(Duration::from_mins(5))
    ///     .build()?;
    /// assert!(watchpost::Engine::builder().staleness_horizon(Duration::ZERO).build().is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn staleness_horizon(mut self, horizon: Duration) -> Self {
        self.alerting.staleness = Some(horizon);
        self
    }

    /// Validates the settings, registers every source and starts the worker thread.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidConfig`] naming the setting and the value if an
    ///   interval or window is shorter than its minimum, a capacity or cap is
    ///   zero or a capacity is above its maximum ([`MAX_HISTORY_CAPACITY`](crate::MAX_HISTORY_CAPACITY),
    ///   [`MAX_RECORD_QUEUE_CAPACITY`], [`MAX_NOTIFICATION_QUEUE_CAPACITY`]),
    ///   or the anomaly threshold is outside (0, 1].
    /// - [`Error::InvalidMetricName`] for a bad name in the recent metrics or detector overrides.
    /// - [`Error::InvalidConfig`] for two alert rules with one name, a zero
    ///   repeat interval or a zero alert history or queue capacity.
    /// - [`Error::Source`] or a registration error from a source.
    /// - [`Error::Spawn`] if the worker thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::Engine::builder().history_capacity(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid history_capacity: must be at least 1, got 0");
    /// ```
    pub fn build(mut self) -> Result<Engine> {
        let config = match self.config.take() {
            Some(config) => {
                let config = config?;
                self = self.apply_config(&config)?;
                config
            }
            None => crate::config::Config::default(),
        };
        self.validate()?;
        let to_ms = duration_ms;
        self.validate_limits()?;
        let registry = Registry::with_limits(crate::registry::Limits {
            per_name: self.series_cap,
            ..self.limits
        });
        let r = &registry;
        let metrics = self_metrics(r)?;
        let mut alerts = self.alerting.manager()?;
        let caps =
            super::persist::caps(self.history_capacity, self.history_max_age, self.limits.total);
        let (persister, restored) = self.persist.open(r, &mut alerts, caps, self.clock.now_ms())?;
        // after the restore: a file silence the state directory kept is not added twice
        for silence in std::mem::take(&mut self.pending_silences) {
            alerts.add_config_silence(silence)?;
        }
        let mut dispatcher = crate::dispatch::Dispatcher::builder()
            .capacity(self.alerting.queue_capacity)
            .handler_capacity(self.alerting.handler_queue_capacity)
            .grace(self.alerting.shutdown_grace)
            .stuck_timeout(self.alerting.stuck_timeout);
        for (name, notifier) in std::mem::take(&mut self.alerting.notifiers) {
            let metrics = crate::dispatch::HandlerMetrics::register(r, &name);
            dispatcher = dispatcher.handler(name, notifier, metrics);
        }
        let mut sources = Vec::new();
        #[cfg(feature = "system")]
        if self.system_source {
            sources.push(Box::new(crate::source::SystemSource::new()?) as Box<dyn Source>);
        }
        sources.extend(self.sources);
        for s in &mut sources {
            s.register(&registry)?;
        }
        let dispatcher = dispatcher.build()?;
        let mut sinks: Vec<Arc<dyn super::sink::SampleSink>> = Vec::new();
        for start in std::mem::take(&mut self.sinks) {
            match start(&registry, &self.clock) {
                Ok(sink) => sinks.push(sink),
                Err(e) => {
                    for s in &sinks {
                        s.shutdown();
                    }
                    let _ = dispatcher.shutdown();
                    return Err(e);
                }
            }
        }
        let shared = Arc::new(Shared {
            started_ms: self.clock.now_ms(),
            clock: self.clock,
            registry,
            history: RwLock::new(History::new(
                self.history_capacity,
                self.history_max_age.map(to_ms),
            )),
            dashboard: DashboardConfig {
                recent_metrics: self.recent_metrics,
                recent_points: self.recent_points,
                statistics_window_ms: to_ms(self.statistics_window),
                performance: self.performance,
                recent_alert_events: self.alerting.recent_events,
            },
            summary_window_ms: to_ms(self.summary_window),
            metrics,
            worker_thread: OnceLock::new(),
            detection: self.detection,
            anomalies: parking_lot::Mutex::new(std::collections::VecDeque::new()),
            records: crossbeam_queue::ArrayQueue::new(self.record_queue_capacity),
            closed: std::sync::atomic::AtomicBool::new(false),
            alerts: parking_lot::Mutex::new(alerts),
            notify: dispatcher.handle(),
            notify_flush_timeout: self.alerting.flush_timeout,
            staleness_ms: self.alerting.staleness.map(to_ms),
            config: parking_lot::Mutex::new(config),
            operations: crate::apm::OperationsLog::default(),
            sinks,
        });
        let (nudge_tx, nudge_rx) = crossbeam_channel::bounded(1);
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let worker = Worker {
            shared: Arc::clone(&shared),
            control: control_rx,
            nudge: nudge_rx,
            sources,
            collector: Collector::default(),
            readings: Vec::new(),
            batch: Vec::new(),
            interval: self.sample_interval,
            last_nonfinite: 0,
            cache: super::worker::SeriesCache::restoring(restored),
            tally: super::worker::Tally::default(),
            batch_limit: 0,
            persister,
        };
        let join = thread::Builder::new()
            .name("watchpost-worker".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                shared.sinks.iter().for_each(|s| s.shutdown());
                Error::Spawn(e)
            })?;
        let _ = shared.worker_thread.set(join.thread().id());
        let engine = Engine {
            monitor: Monitor { shared, control: control_tx, nudge: nudge_tx },
            worker: Some(join),
            dispatcher: Some(dispatcher),
        };
        // A first collection before returning: sources get their baseline and
        // the state a caller sees right after build() does not depend on timing.
        engine.flush()?;
        Ok(engine)
    }
}

impl EngineBuilder {
    /// Checks the series cap and the name and label limits.
    pub(super) fn validate_limits(&self) -> Result<()> {
        let key = &self.limits.key;
        for (field, value, min) in [
            ("total_series_cap", self.limits.total, 64),
            ("max_name_length", key.name_bytes, 64),
            ("max_label_value_length", key.label_value_bytes, 1),
            ("max_labels", key.labels, 1),
        ] {
            if value < min {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("must be at least {min}, got {value}"),
                });
            }
        }
        Ok(())
    }

    /// Checks every setting that can be checked before anything starts.
    pub(super) fn validate(&self) -> Result<()> {
        let zero = |field: &'static str, what: &str| Error::InvalidConfig {
            field,
            reason: format!("must be at least {what}, got 0"),
        };
        if self.sample_interval < Duration::from_millis(1) {
            return Err(Error::InvalidConfig {
                field: "sample_interval",
                reason: format!("must be at least 1 ms, got {:?}", self.sample_interval),
            });
        }
        if self.history_capacity == 0 {
            return Err(zero("history_capacity", "1"));
        }
        let capacities = [
            ("history_capacity", self.history_capacity, MAX_HISTORY_CAPACITY),
            ("record_queue_capacity", self.record_queue_capacity, MAX_RECORD_QUEUE_CAPACITY),
            (
                "notification_queue_capacity",
                self.alerting.queue_capacity,
                MAX_NOTIFICATION_QUEUE_CAPACITY,
            ),
            (
                "notifier_queue_capacity",
                self.alerting.handler_queue_capacity,
                MAX_NOTIFICATION_QUEUE_CAPACITY,
            ),
        ];
        for (field, value, max) in capacities {
            if value > max {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("must be at most {max}, got {value}"),
                });
            }
        }
        if self.history_max_age.is_some_and(|a| a.as_millis() == 0) {
            return Err(zero("history_max_age", "1 ms"));
        }
        if self.series_cap == 0 {
            return Err(zero("series_cap", "1"));
        }
        if self.record_queue_capacity == 0 {
            return Err(zero("record_queue_capacity", "1"));
        }
        if self.summary_window.as_millis() < 4 {
            return Err(Error::InvalidConfig {
                field: "summary_window",
                reason: format!("must be at least 4 ms, got {:?}", self.summary_window),
            });
        }
        if self.statistics_window.as_millis() == 0 {
            return Err(zero("dashboard_statistics_window", "1 ms"));
        }
        for name in self.recent_metrics.iter().chain(self.detection.per_metric.keys()) {
            crate::key::validate_metric_name(name)?;
        }
        if !(self.detection.threshold > 0.0 && self.detection.threshold <= 1.0) {
            return Err(Error::InvalidConfig {
                field: "anomaly_threshold",
                reason: format!("must be in (0, 1], got {}", self.detection.threshold),
            });
        }
        if self.alerting.queue_capacity == 0 {
            return Err(zero("notification_queue_capacity", "1"));
        }
        if self.alerting.handler_queue_capacity == 0 {
            return Err(zero("notifier_queue_capacity", "1"));
        }
        if self.alerting.history_capacity == 0 {
            return Err(zero("alert_history_capacity", "1"));
        }
        // zero is the manager's to reject; below a millisecond would repeat on every evaluation
        for (severity, every) in &self.alerting.repeat {
            if let Some(d) = every
                && !d.is_zero()
                && d.as_millis() == 0
            {
                return Err(Error::InvalidConfig {
                    field: "alert_repeat_interval",
                    reason: format!("must be at least 1 ms, got {d:?} for {severity}"),
                });
            }
        }
        if self.alerting.staleness.is_some_and(|h| h.as_millis() == 0) {
            return Err(zero("staleness_horizon", "1 ms"));
        }
        self.persist.validate()
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("sample_interval", &self.sample_interval)
            .field("history_capacity", &self.history_capacity)
            .field("history_max_age", &self.history_max_age)
            .field("series_cap", &self.series_cap)
            .field("limits", &self.limits)
            .field("record_queue_capacity", &self.record_queue_capacity)
            .field("summary_window", &self.summary_window)
            .field("system_source", &self.system_source)
            .field("sources", &self.sources.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>())
            .field("recent_metrics", &self.recent_metrics)
            .field("recent_points", &self.recent_points)
            .field("statistics_window", &self.statistics_window)
            .field("performance", &self.performance)
            .field("detection", &self.detection)
            .field(
                "alert_rules",
                &self.alerting.rules.iter().map(AlertRule::name).collect::<Vec<_>>(),
            )
            .field("default_alert_rules", &self.alerting.default_rules)
            .field("notifiers", &self.alerting.notifiers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("persist", &self.persist)
            .finish_non_exhaustive()
    }
}

/// Registers the engine's own series (`watchpost_*`) with their HELP texts.
fn self_metrics(r: &Registry) -> Result<SelfMetrics> {
    for reason in crate::registry::Reject::ALL {
        let counter = r.rejection_counter(reason);
        let _registered = r.counter_from(
            "watchpost_registrations_rejected_total",
            &[("reason", reason.as_str())],
            || counter,
        )?;
    }
    let metrics = SelfMetrics {
        ingested: r.counter("watchpost_samples_ingested_total", &[])?,
        dropped: r.counter("watchpost_samples_dropped_total", &[])?,
        out_of_order: r.counter("watchpost_samples_out_of_order_total", &[])?,
        nonfinite: r.counter("watchpost_nonfinite_dropped_total", &[])?,
        record_nonfinite: crate::metric::Counter::detached(),
        source_errors: r.counter("watchpost_source_errors_total", &[])?,
        rejected: r.gauge("watchpost_series_rejected", &[])?,
        queue_depth: r.gauge("watchpost_record_queue_depth", &[])?,
        series: r.gauge("watchpost_series", &[])?,
        collection_seconds: r.gauge("watchpost_collection_duration_seconds", &[])?,
        alerts_firing: r.gauge("watchpost_alerts_firing", &[])?,
        coalesced: r.counter("watchpost_coalesced_samples_total", &[])?,
        clock_jumps: r.counter("watchpost_clock_jumps_total", &[])?,
        worker_panics: r.counter("watchpost_worker_panics_total", &[])?,
        last_worker_panic: parking_lot::Mutex::new(None),
    };
    for (name, help) in [
        (
            "watchpost_coalesced_samples_total",
            "Recorded samples that replaced one of their series at the same millisecond.",
        ),
        (
            "watchpost_clock_jumps_total",
            "Collections at which the clock went backwards or leapt; their rates were skipped.",
        ),
        ("watchpost_worker_panics_total", "Panics the worker caught and survived."),
    ] {
        r.describe(name, help)?;
    }
    Ok(metrics)
}
