//! Dashboard snapshot: serde wire types with a schema version.
//!
//! The JSON layout is documented in `docs/dashboard.md`. Every number is
//! finite; optional values are `null`. Series are sorted by name and labels
//! so the output is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::alert::{AlertEventView, AlertView, NotificationStats};
use crate::analysis::{
    AnomalyDigest, PerformanceSummary, Point as AnalysisPoint, SeriesSource, SummaryConfig,
};
use crate::clock::ms_to_datetime;
use crate::history::History;
use crate::key::{Labels, SeriesId, SeriesKey};
use crate::kind::MetricKind;
use crate::registry::Registry;
use crate::stats::Summary;

mod json;
mod window;

pub(crate) use json::to_json;

pub use crate::apm::{
    DASHBOARD_SLOW_ENTRIES, LogEventEntry, SlowNameEntry, SlowOperationEntry, SlowOperationsSection,
};

/// Version of the dashboard JSON layout; bumped on any rename or removal.
pub const SCHEMA_VERSION: u32 = 2;

/// A snapshot of everything a dashboard shows.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.gauge("active_users")?.set(3.0);
/// engine.flush()?;
/// let d = engine.dashboard();
/// assert_eq!(d.schema_version, watchpost::dashboard::SCHEMA_VERSION);
/// assert!(d.statistics.iter().any(|s| s.series == "active_users"));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// [`SCHEMA_VERSION`] of this layout.
    pub schema_version: u32,
    /// When the snapshot was taken (RFC 3339).
    pub generated_at: DateTime<Utc>,
    /// Seconds since the engine was built.
    pub uptime_seconds: f64,
    /// Latest host figures, `null` where unknown (for example without the system source).
    pub system_status: SystemStatus,
    /// The last points of the selected series, keyed by series (`name{labels}`).
    pub recent_metrics: BTreeMap<String, Vec<Point>>,
    /// Statistics of every series with samples in the statistics window.
    pub statistics: Vec<SeriesStatistics>,
    /// The engine's own figures.
    pub engine: EngineStats,
    /// Alerts pending, firing or recovering (also while paused in `no_data`),
    /// in rule order.
    pub active_alerts: Vec<AlertView>,
    /// The newest alert history events (state changes, flapping,
    /// acknowledgements, notifications), oldest first.
    pub recent_alert_events: Vec<AlertEventView>,
    /// Anomalies detected inside the statistics window, oldest first (at most 256).
    pub anomalies: Vec<Anomaly>,
    /// Performance analysis of CPU, memory, disk and network over the
    /// statistics window: statistics, trends, forecasts, status, issues and
    /// recommendations.
    pub performance_summary: PerformanceSummary,
    /// Counters of the notification pipeline and of every handler:
    /// delivered, failed, panicked, dropped (lost: the handler was stuck)
    /// and coalesced.
    #[serde(default)]
    pub notifications: NotificationStats,
    /// The slow-operation log: count, mean, max, per span name, and its
    /// newest entries (at most [`DASHBOARD_SLOW_ENTRIES`]).
    #[serde(default)]
    pub slow_operations: SlowOperationsSection,
    /// The newest ERROR and WARN log events, oldest first (bounded).
    #[serde(default)]
    pub recent_log_events: Vec<LogEventEntry>,
    /// Counters of the remote-write sender (feature `remote-write`); absent
    /// when remote write is not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<RemoteWriteStatus>,
}

/// The remote-write sender's counters, in samples: every sample handed to it
/// ends as exactly one of `sent`, `failed` or `dropped`, or is still
/// `pending`.
///
/// # Examples
///
/// ```
/// use watchpost::dashboard::RemoteWriteStatus;
/// let s = RemoteWriteStatus { produced: 10, sent: 7, failed: 1, dropped: 2, ..Default::default() };
/// assert_eq!(s.produced, s.sent + s.failed + s.dropped + s.pending);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteWriteStatus {
    /// The receiver's URL, without its query.
    pub url: String,
    /// Sender shards (connections) in use, each keeping its series in order;
    /// more open while the receiver cannot keep up, up to `max_shards`.
    pub shards: usize,
    /// Samples handed to the sender by the worker.
    pub produced: u64,
    /// Samples the receiver accepted (2xx).
    pub sent: u64,
    /// Samples in requests the receiver refused with a 4xx other than 429:
    /// not retried.
    pub failed: u64,
    /// Samples sent again after a 5xx, a 429 or a connection error.
    pub retried: u64,
    /// Samples dropped: the oldest ones when the queue was full, and what
    /// was left at shutdown.
    pub dropped: u64,
    /// Samples queued or in a request not yet answered.
    pub pending: u64,
    /// The latest error (status and body, or the connection error), if any.
    pub last_error: Option<String>,
}

/// A point whose anomaly score reached the engine's threshold.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use std::time::Duration;
/// let clock = watchpost::ManualClock::at_millis(0);
/// let engine = watchpost::Engine::builder()
///     .without_system_source()
///     .clock(clock.clone())
///     .dashboard_statistics_window(Duration::from_hours(1))
///     .build()?;
/// // a steady series, one value a second, then a jump far outside anything seen
/// for i in 0..300 {
///     engine.record("queue_depth", &[], 10.0 + f64::from(i % 3))?;
///     clock.advance(Duration::from_secs(1));
/// }
/// engine.record("queue_depth", &[], 500.0)?;
/// engine.flush()?;
/// let a = engine.dashboard().anomalies;
/// assert_eq!(a.len(), 1);
/// assert_eq!((a[0].series.as_str(), a[0].value), ("queue_depth", 500.0));
/// assert!(a[0].score >= watchpost::detect::DEFAULT_THRESHOLD);
/// # }
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The series as `name{labels}`.
    pub series: String,
    /// The metric name.
    pub name: String,
    /// The labels.
    pub labels: Labels,
    /// When the point was sampled.
    pub timestamp: DateTime<Utc>,
    /// Its value.
    pub value: f64,
    /// Its anomaly score in `[0, 1]`.
    pub score: f64,
    /// The lower edge of the band the detector expected, if it had learnt one.
    pub expected_lower: Option<f64>,
    /// The upper edge of that band.
    pub expected_upper: Option<f64>,
}

/// Latest host figures, in percent.
///
/// # Examples
///
/// ```
/// let s = watchpost::dashboard::SystemStatus {
///     cpu_usage: Some(12.5), memory_usage: None, disk_usage: None,
///     timestamp: chrono::DateTime::UNIX_EPOCH,
/// };
/// assert_eq!(serde_json::to_value(&s)?["memory_usage"], serde_json::Value::Null);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// Latest `system_cpu_usage`.
    pub cpu_usage: Option<f64>,
    /// Latest `system_memory_usage`.
    pub memory_usage: Option<f64>,
    /// Latest `system_disk_usage`.
    pub disk_usage: Option<f64>,
    /// When the snapshot was taken.
    pub timestamp: DateTime<Utc>,
}

/// One point of a series.
///
/// # Examples
///
/// ```
/// let p = watchpost::dashboard::Point {
///     timestamp: chrono::DateTime::UNIX_EPOCH, value: 1.0, score: None, lower: None, upper: None,
/// };
/// assert_eq!(serde_json::to_string(&p)?, r#"{"timestamp":"1970-01-01T00:00:00Z","value":1.0}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When it was sampled.
    pub timestamp: DateTime<Utc>,
    /// The value.
    pub value: f64,
    /// The anomaly score, where the series has a detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The lower edge of the expected band, once the detector has learnt one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// The upper edge of the expected band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
}

/// Statistics of one series over the statistics window.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.record("orders", &[], 5.0)?;
/// engine.flush()?;
/// let s = engine.dashboard().statistics.into_iter().find(|s| s.name == "orders").unwrap();
/// assert_eq!((s.stats.count, s.stats.max), (1, 5.0));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStatistics {
    /// The series as `name{labels}`.
    pub series: String,
    /// The metric name.
    pub name: String,
    /// The labels.
    pub labels: Labels,
    /// The series' kind.
    pub kind: MetricKind,
    /// count, min, max, mean, median, stddev, p90, p95, p99.
    #[serde(flatten)]
    pub stats: Summary,
}

/// The engine's own figures.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.record("orders", &[], 1.0)?;
/// engine.flush()?;
/// assert!(engine.stats().samples_ingested >= 1);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineStats {
    /// Number of series, derived ones included.
    pub series_count: u64,
    /// Samples written into history since the engine started.
    pub samples_ingested: u64,
    /// Samples dropped: `record()` on a full queue or after shutdown, or too old to keep.
    pub samples_dropped: u64,
    /// Non-finite values dropped by handles and `record()`.
    pub nonfinite_dropped: u64,
    /// Registrations refused by a series cap or a name or label limit
    /// (the sum of `series_rejected_by_reason`).
    pub series_rejected: u64,
    /// Registrations refused, by reason.
    #[serde(default)]
    pub series_rejected_by_reason: SeriesRejections,
    /// Samples waiting in the `record()` queue.
    pub queue_depth: u64,
    /// How long the last collection took, in milliseconds (by the engine's clock).
    pub last_collection_duration_ms: f64,
    /// Samples held in history.
    pub history_samples: u64,
    /// Recorded observations (`record()`) that replaced an earlier one of
    /// their series at the same millisecond; history keeps one value per
    /// millisecond (the last). Included in `samples_ingested`.
    #[serde(default)]
    pub samples_coalesced: u64,
    /// Panics the worker caught and survived.
    #[serde(default)]
    pub worker_panics: u64,
    /// `record_at()` samples dropped for being older than their series' newest sample.
    #[serde(default)]
    pub samples_out_of_order: u64,
}

/// Registrations refused, by reason (also exposed as
/// `watchpost_registrations_rejected_total{reason="…"}`, with these field names
/// as the reasons).
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().max_labels(1).build()?;
/// assert!(engine.gauge_with("g", &[("a", "1"), ("b", "2")]).is_err());
/// let r = engine.stats().series_rejected_by_reason;
/// assert_eq!((r.too_many_labels, r.series_cap), (1, 0));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRejections {
    /// The metric name already had as many series as the per-name cap allows.
    pub series_cap: u64,
    /// The engine already held as many series as the total cap allows.
    pub total_series_cap: u64,
    /// A metric name or label name was over the length limit.
    pub name_too_long: u64,
    /// A label value was over the length limit.
    pub label_value_too_long: u64,
    /// A series had more labels than the limit.
    pub too_many_labels: u64,
}

/// What to put into a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct DashboardConfig {
    pub(crate) recent_metrics: Vec<String>,
    pub(crate) recent_points: usize,
    pub(crate) statistics_window_ms: i64,
    pub(crate) performance: SummaryConfig,
    pub(crate) recent_alert_events: usize,
}

/// The history of unlabelled series, as the analysis module reads it.
pub(crate) struct HistorySource<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) history: &'a History,
    pub(crate) since_ms: i64,
    pub(crate) until_ms: i64,
    /// The engine's recent anomalies (any time; filtered to the window here).
    pub(crate) anomalies: &'a [Anomaly],
}

impl SeriesSource for HistorySource<'_> {
    fn points(&self, name: &str) -> Option<std::borrow::Cow<'_, [AnalysisPoint]>> {
        let id = self.registry.lookup(name, &[])?;
        let h = self.history.get(id)?;
        let points: Vec<AnalysisPoint> = h
            .window(self.since_ms, self.until_ms)
            .into_iter()
            .map(|s| AnalysisPoint::new(s.timestamp_ms, s.value))
            .collect();
        Some(std::borrow::Cow::Owned(points))
    }

    fn anomalies(&self) -> Vec<AnomalyDigest> {
        let mut by_series: BTreeMap<&str, AnomalyDigest> = BTreeMap::new();
        for a in self.anomalies {
            let t = a.timestamp.timestamp_millis();
            if t < self.since_ms || t > self.until_ms {
                continue;
            }
            let d = by_series.entry(&a.series).or_insert_with(|| AnomalyDigest {
                series: a.series.clone(),
                count: 0,
                latest_ms: t,
                latest_value: a.value,
                max_score: a.score,
            });
            d.count += 1;
            if t >= d.latest_ms {
                d.latest_ms = t;
                d.latest_value = a.value;
            }
            d.max_score = d.max_score.max(a.score);
        }
        by_series.into_values().collect()
    }
}

/// One series in dashboard order: sorted by name and labels, with its name
/// written out (`name{labels}`).
struct Listed {
    id: SeriesId,
    key: Arc<SeriesKey>,
    kind: MetricKind,
    series: String,
}

/// The registry's series in dashboard order, kept between snapshots and
/// built again when the registry changes (its generation): sorting the keys
/// and writing their names out was a tenth of a snapshot.
#[derive(Default)]
struct SeriesOrder {
    cached: Mutex<Option<(u64, Arc<[Listed]>)>>,
    /// Length of the last snapshot as JSON.
    json_len: AtomicUsize,
}

impl SeriesOrder {
    fn get(&self, registry: &Registry) -> Arc<[Listed]> {
        // read before the series: a change in between makes the next call rebuild
        let generation = registry.generation();
        let mut cached = self.cached.lock();
        if let Some((g, list)) = cached.as_ref()
            && *g == generation
        {
            return Arc::clone(list);
        }
        let list: Arc<[Listed]> = registry
            .infos_with_ids()
            .into_iter()
            .map(|(id, key, kind)| Listed { id, series: key.to_string(), key, kind })
            .collect();
        *cached = Some((generation, Arc::clone(&list)));
        list
    }
}

/// The per-series statistics of a snapshot, computed once: turned into
/// [`SeriesStatistics`] for the typed snapshot, or written as JSON straight
/// from the registry's cached series list (no copy of names and labels).
pub(crate) struct Statistics {
    listed: Arc<[Listed]>,
    /// Index into `listed`, and the series' statistics.
    rows: Vec<(usize, Summary)>,
}

impl Statistics {
    /// The typed section.
    pub(crate) fn into_typed(self) -> Vec<SeriesStatistics> {
        self.rows
            .into_iter()
            .map(|(i, stats)| {
                let Listed { key, kind, series, .. } = &self.listed[i];
                SeriesStatistics {
                    series: series.clone(),
                    name: key.name().to_owned(),
                    labels: key.labels().clone(),
                    kind: *kind,
                    stats,
                }
            })
            .collect()
    }
}

/// Serializes as `Vec<SeriesStatistics>` does.
impl Serialize for Statistics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        /// One row, field for field as `SeriesStatistics` (with `stats` flattened).
        struct Row<'a>(&'a Listed, &'a Summary);
        impl Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let (Listed { key, kind, series, .. }, s) = (self.0, self.1);
                let mut row = serializer.serialize_struct("SeriesStatistics", 14)?;
                row.serialize_field("series", series)?;
                row.serialize_field("name", key.name())?;
                row.serialize_field("labels", key.labels())?;
                row.serialize_field("kind", kind)?;
                let Summary { count, min, max, mean, median, p50, stddev, p90, p95, p99 } = s;
                row.serialize_field("count", count)?;
                row.serialize_field("min", min)?;
                row.serialize_field("max", max)?;
                row.serialize_field("mean", mean)?;
                row.serialize_field("median", median)?;
                row.serialize_field("p50", p50)?;
                row.serialize_field("stddev", stddev)?;
                row.serialize_field("p90", p90)?;
                row.serialize_field("p95", p95)?;
                row.serialize_field("p99", p99)?;
                row.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for (i, stats) in &self.rows {
            seq.serialize_element(&Row(&self.listed[*i], stats))?;
        }
        seq.end()
    }
}

/// Builds a snapshot from the registry and history at `now_ms`; its
/// `statistics` are left empty and come apart.
pub(crate) fn build(
    registry: &Registry,
    history: &History,
    config: &DashboardConfig,
    now_ms: i64,
    started_ms: i64,
    engine: EngineStats,
    anomalies: Vec<Anomaly>,
) -> (Dashboard, Statistics) {
    let generated_at = ms_to_datetime(now_ms);
    let infos = registry.extension::<SeriesOrder>().get(registry);
    let latest = |name: &str| {
        infos
            .iter()
            .find(|s| s.key.name() == name && s.key.labels().is_empty())
            .and_then(|s| history.get(s.id))
            .and_then(crate::history::SeriesHistory::latest)
            .map(|s| s.value)
    };
    let system_status = SystemStatus {
        cpu_usage: latest("system_cpu_usage"),
        memory_usage: latest("system_memory_usage"),
        disk_usage: latest("system_disk_usage"),
        timestamp: generated_at,
    };
    let mut recent_metrics = BTreeMap::new();
    for Listed { id, key, series, .. } in infos.iter() {
        if config.recent_metrics.iter().any(|n| n == key.name()) {
            let points = history
                .get(*id)
                .map(|h| h.last_n(config.recent_points))
                .unwrap_or_default()
                .into_iter()
                .map(|s| Point {
                    timestamp: s.timestamp(),
                    value: s.value,
                    score: s.anomaly_score,
                    lower: s.expected_band.map(|b| b.0),
                    upper: s.expected_band.map(|b| b.1),
                })
                .collect();
            recent_metrics.insert(series.clone(), points);
        }
    }
    let since = now_ms.saturating_sub(config.statistics_window_ms);
    let mut rows = Vec::with_capacity(infos.len());
    // working space for every series: the window's samples, its values, their ranking
    let (mut scratch, mut values) = (Vec::new(), Vec::new());
    let mut window = window::WindowStats::default();
    for (i, Listed { id, .. }) in infos.iter().enumerate() {
        let Some(h) = history.get(*id) else { continue };
        values.clear();
        h.values_between(since, now_ms, &mut scratch, &mut values);
        if let Some(stats) = window.summarize(&values) {
            rows.push((i, stats));
        }
    }
    let source = HistorySource {
        registry,
        history,
        since_ms: since,
        until_ms: now_ms,
        anomalies: &anomalies,
    };
    let performance_summary =
        crate::analysis::performance_summary(&source, now_ms, &config.performance);
    #[allow(clippy::cast_precision_loss)]
    let uptime_seconds = (now_ms.saturating_sub(started_ms)).max(0) as f64 / 1000.0;
    let dashboard = Dashboard {
        schema_version: SCHEMA_VERSION,
        generated_at,
        uptime_seconds,
        system_status,
        recent_metrics,
        statistics: Vec::new(),
        engine,
        active_alerts: Vec::new(),
        recent_alert_events: Vec::new(),
        anomalies,
        performance_summary,
        notifications: NotificationStats::default(),
        slow_operations: SlowOperationsSection::default(),
        recent_log_events: Vec::new(),
        remote_write: None,
    };
    (dashboard, Statistics { listed: infos, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Sample;

    #[test]
    fn json_is_the_typed_snapshot_pretty_printed() {
        let registry = Registry::new(100);
        let mut history = History::new(100, None);
        for (name, labels) in [("b", vec![("room", "x\"y")]), ("a", vec![]), ("idle", vec![])] {
            let _ = registry.gauge(name, &labels).unwrap();
            if name == "idle" {
                continue;
            }
            let id = registry.lookup(name, &labels).unwrap();
            for t in 0..50i32 {
                history.push(id, Sample::new(i64::from(t) * 1_000, f64::from(t * 37 % 11) - 3.5));
            }
        }
        let config = DashboardConfig {
            recent_metrics: vec!["a".to_owned()],
            recent_points: 3,
            statistics_window_ms: 20_000,
            performance: SummaryConfig::default(),
            recent_alert_events: 5,
        };
        let (mut d, statistics) =
            build(&registry, &history, &config, 49_000, 0, EngineStats::default(), Vec::new());
        d.remote_write =
            Some(RemoteWriteStatus { url: "http://x/".to_owned(), ..Default::default() });
        let json = to_json(&registry, &d, &statistics).unwrap();
        d.statistics = statistics.into_typed();
        assert_eq!(json, serde_json::to_string_pretty(&d).unwrap());
        let series: Vec<&str> = d.statistics.iter().map(|s| s.series.as_str()).collect();
        assert_eq!(series, ["a", "b{room=\"x\\\"y\"}"]);
        assert_eq!(d.statistics[0].stats.count, 21);
        // without remote write the key is left out, as in the typed snapshot
        d.remote_write = None;
        let (_, statistics) =
            build(&registry, &history, &config, 49_000, 0, EngineStats::default(), Vec::new());
        let json = to_json(&registry, &d, &statistics).unwrap();
        assert!(!json.contains("remote_write"));
        assert_eq!(json, serde_json::to_string_pretty(&d).unwrap());
    }
}
