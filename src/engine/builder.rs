use std::fmt;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use parking_lot::RwLock;

use super::worker::Worker;
use super::{Engine, Monitor, SelfMetrics, Shared};
use crate::clock::{Clock, SystemClock};
use crate::dashboard::DashboardConfig;
use crate::detect::DetectorSpec;
use crate::error::{Error, Result};
use crate::history::History;
use crate::registry::{Collector, Registry};
use crate::source::Source;

/// Default sample interval: 1 s.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Default history capacity per series: 1 000 samples.
pub const DEFAULT_HISTORY_CAPACITY: usize = 1_000;
/// Default cap on series per metric name: 1 000.
pub const DEFAULT_SERIES_CAP: usize = 1_000;
/// Default capacity of the `record()` queue: 65 536 samples.
pub const DEFAULT_RECORD_QUEUE_CAPACITY: usize = 65_536;

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
    record_queue_capacity: usize,
    summary_window: Duration,
    clock: Arc<dyn Clock>,
    system_source: bool,
    sources: Vec<Box<dyn Source>>,
    recent_metrics: Vec<String>,
    recent_points: usize,
    statistics_window: Duration,
    performance: crate::analysis::SummaryConfig,
    detection: super::Detection,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            history_max_age: None,
            series_cap: DEFAULT_SERIES_CAP,
            record_queue_capacity: DEFAULT_RECORD_QUEUE_CAPACITY,
            summary_window: Duration::from_mins(1),
            clock: Arc::new(SystemClock),
            system_source: cfg!(feature = "system"),
            sources: Vec::new(),
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
            },
        }
    }
}

impl EngineBuilder {
    /// How often the worker runs the sources and samples every instrument into history.
    ///
    /// Defaults to 1 s.
    pub fn sample_interval(mut self, every: Duration) -> Self {
        self.sample_interval = every;
        self
    }

    /// Samples kept per series; the oldest is dropped when full.
    ///
    /// Defaults to 1 000.
    pub fn history_capacity(mut self, samples: usize) -> Self {
        self.history_capacity = samples;
        self
    }

    /// Also drop samples older than `age` (relative to the series' newest sample).
    ///
    /// Defaults to no age limit.
    pub fn history_max_age(mut self, age: Duration) -> Self {
        self.history_max_age = Some(age);
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

    /// Capacity of the queue between `record()` and the worker; when it is
    /// full, samples are dropped and counted.
    ///
    /// Defaults to 65 536.
    pub fn record_queue_capacity(mut self, samples: usize) -> Self {
        self.record_queue_capacity = samples;
        self
    }

    /// The sliding window of [`Summary`](crate::Summary) quantiles.
    ///
    /// Defaults to 60 s.
    pub fn summary_window(mut self, window: Duration) -> Self {
        self.summary_window = window;
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

    /// The window the dashboard's per-series statistics cover.
    ///
    /// Defaults to 5 minutes.
    pub fn dashboard_statistics_window(mut self, window: Duration) -> Self {
        self.statistics_window = window;
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

    /// The score at or above which a point counts as an anomaly.
    ///
    /// Defaults to [`DEFAULT_THRESHOLD`](crate::detect::DEFAULT_THRESHOLD) (0.5).
    pub fn anomaly_threshold(mut self, threshold: f64) -> Self {
        self.detection.threshold = threshold;
        self
    }

    /// Validates the settings, registers every source and starts the worker thread.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidConfig`] naming the setting if an interval, window,
    ///   capacity or cap is zero, or the anomaly threshold is outside (0, 1].
    /// - [`Error::InvalidMetricName`] for a bad name in the recent metrics or detector overrides.
    /// - [`Error::Source`] or a registration error from a source.
    /// - [`Error::Spawn`] if the worker thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::Engine::builder().history_capacity(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid history_capacity: must be at least 1, got 0");
    /// ```
    pub fn build(self) -> Result<Engine> {
        let zero = |field: &'static str, what: &str| Error::InvalidConfig {
            field,
            reason: format!("must be at least {what}, got 0"),
        };
        if self.sample_interval.is_zero() {
            return Err(zero("sample_interval", "1 ms"));
        }
        if self.history_capacity == 0 {
            return Err(zero("history_capacity", "1"));
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
        let to_ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let registry = Registry::new(self.series_cap);
        let r = &registry;
        let metrics = SelfMetrics {
            ingested: r.counter("watchpost_samples_ingested_total", &[])?,
            dropped: r.counter("watchpost_samples_dropped_total", &[])?,
            nonfinite: r.counter("watchpost_nonfinite_dropped_total", &[])?,
            record_nonfinite: crate::metric::Counter::detached(),
            source_errors: r.counter("watchpost_source_errors_total", &[])?,
            rejected: r.gauge("watchpost_series_rejected", &[])?,
            queue_depth: r.gauge("watchpost_record_queue_depth", &[])?,
            series: r.gauge("watchpost_series", &[])?,
            collection_seconds: r.gauge("watchpost_collection_duration_seconds", &[])?,
        };
        let mut sources = Vec::new();
        #[cfg(feature = "system")]
        if self.system_source {
            sources.push(Box::new(crate::source::SystemSource::new()?) as Box<dyn Source>);
        }
        sources.extend(self.sources);
        for s in &mut sources {
            s.register(&registry)?;
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
            },
            summary_window_ms: to_ms(self.summary_window),
            metrics,
            worker_thread: OnceLock::new(),
            detection: self.detection,
            anomalies: parking_lot::Mutex::new(std::collections::VecDeque::new()),
            records: crossbeam_queue::ArrayQueue::new(self.record_queue_capacity),
            closed: std::sync::atomic::AtomicBool::new(false),
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
            cache: super::worker::SeriesCache::default(),
        };
        let join = thread::Builder::new()
            .name("watchpost-worker".into())
            .spawn(move || worker.run())
            .map_err(Error::Spawn)?;
        let _ = shared.worker_thread.set(join.thread().id());
        let engine = Engine {
            monitor: Monitor { shared, control: control_tx, nudge: nudge_tx },
            worker: Some(join),
        };
        // A first collection before returning: sources get their baseline and
        // the state a caller sees right after build() does not depend on timing.
        engine.flush()?;
        Ok(engine)
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("sample_interval", &self.sample_interval)
            .field("history_capacity", &self.history_capacity)
            .field("history_max_age", &self.history_max_age)
            .field("series_cap", &self.series_cap)
            .field("record_queue_capacity", &self.record_queue_capacity)
            .field("summary_window", &self.summary_window)
            .field("system_source", &self.system_source)
            .field("sources", &self.sources.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>())
            .field("recent_metrics", &self.recent_metrics)
            .field("recent_points", &self.recent_points)
            .field("statistics_window", &self.statistics_window)
            .field("performance", &self.performance)
            .field("detection", &self.detection)
            .finish_non_exhaustive()
    }
}
