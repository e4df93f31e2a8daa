//! The recorder of the `metrics` facade: `metrics::counter!` and friends
//! register and update ordinary watchpost instruments.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::metrics::{
    Counter as FacadeCounter, CounterFn, Gauge as FacadeGauge, GaugeFn,
    Histogram as FacadeHistogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit,
};
use parking_lot::{Mutex, RwLock};

use crate::engine::Monitor;
use crate::error::{Error, Result};
use crate::kind::MetricKind;
use crate::metric::{Counter, Gauge, Histogram, Summary};
use crate::registry::{Instrument, Registry};

/// The counter of facade registrations and descriptions that watchpost
/// refused (bad name or label, kind clash, series cap).
const REJECTED_METRIC: &str = "watchpost_metrics_facade_rejected_total";

/// Labels converted without allocating, up to this many.
const INLINE_LABELS: usize = 8;

/// A recorder for the [`metrics`](https://docs.rs/metrics) facade that
/// registers every facade metric as a watchpost instrument of one engine.
///
/// Once [installed](MetricsRecorder::install),
/// `metrics::counter!("requests_total", "route" => "/chat").increment(1)`
/// updates the watchpost counter `requests_total{route="/chat"}`: it is in
/// history (with its `:rate` series), in alert rules, in the dashboard and in
/// `/metrics`, like a counter registered with
/// [`Monitor::counter_with`](crate::Monitor::counter_with).
///
/// | facade | watchpost |
/// |---|---|
/// | counter: `increment`, `absolute` | [`Counter`]: `add`; `absolute` raises the total, never lowers it |
/// | gauge: `increment`, `decrement`, `set` | [`Gauge`]: `add`, `sub`, `set` |
/// | histogram: `record` | [`Histogram`] with [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS); a name registered beforehand as a histogram with other buckets keeps them, and one registered as a [`Summary`] stays a summary |
/// | `describe_*` | [`Registry::describe`]: the HELP text, followed by ` (unit: seconds)` when a unit is given |
///
/// Names and labels are validated as everywhere in watchpost. A
/// registration watchpost refuses (a name such as `http.requests`, a bad
/// label name, a name registered as another kind, a series cap reached)
/// never panics: the facade gets a handle that does nothing, and the refusal
/// is counted in [`rejected`](MetricsRecorder::rejected), in the series
/// `watchpost_metrics_facade_rejected_total`, and described by
/// [`last_rejection`](MetricsRecorder::last_rejection).
///
/// Handles are cached by the facade's key, so a macro called by name on
/// every request costs one hash-map lookup under a read lock.
///
/// Not to be confused with [`watchpost::Recorder`](crate::Recorder), the
/// handle that records explicit observations into one series.
///
/// # Examples
///
/// ```
/// use watchpost::integrations::MetricsRecorder;
///
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let recorder = MetricsRecorder::new(&engine);
/// // In an application: `recorder.install()?` once, at start-up.
/// metrics::with_local_recorder(&recorder, || {
///     metrics::describe_counter!("requests_total", "Requests served.");
///     metrics::counter!("requests_total", "route" => "/chat").increment(2);
///     metrics::gauge!("connections").set(7.0);
///     metrics::histogram!("latency_seconds").record(0.02);
/// });
/// engine.flush()?;
/// assert_eq!(engine.latest_with("requests_total", &[("route", "/chat")]).unwrap().value, 2.0);
/// assert!(engine.prometheus_text().contains("# HELP requests_total Requests served.\n"));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct MetricsRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    monitor: Monitor,
    counters: HandleCache<FacadeCounter>,
    gauges: HandleCache<FacadeGauge>,
    histograms: HandleCache<FacadeHistogram>,
    rejected: Counter,
    last_rejection: Mutex<Option<String>>,
}

impl MetricsRecorder {
    /// A recorder that registers the facade's metrics in `monitor`'s engine.
    /// It does nothing until it is [installed](MetricsRecorder::install) (or
    /// used through `metrics::with_local_recorder`).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let recorder = watchpost::integrations::MetricsRecorder::new(&engine);
    /// assert_eq!(recorder.rejected(), 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn new(monitor: &crate::Monitor) -> Self {
        let rejected = monitor.counter(REJECTED_METRIC).unwrap_or_else(|_| Counter::detached());
        let _ = monitor.registry().describe(
            REJECTED_METRIC,
            "Registrations and descriptions of the metrics facade that watchpost refused.",
        );
        MetricsRecorder {
            inner: Arc::new(Inner {
                monitor: monitor.clone(),
                counters: HandleCache::default(),
                gauges: HandleCache::default(),
                histograms: HandleCache::default(),
                rejected,
                last_rejection: Mutex::new(None),
            }),
        }
    }

    /// Installs a clone of this recorder as the global recorder of the
    /// `metrics` facade, for the rest of the process. The engine's handle
    /// stays alive with it; after the engine shuts down, updates still reach
    /// its instruments but are no longer sampled.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (field `metrics recorder`) if a global
    /// `metrics` recorder is already installed, by watchpost or another crate.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let recorder = watchpost::integrations::MetricsRecorder::new(&engine);
    /// recorder.install()?;
    /// assert!(recorder.install().is_err()); // only one global recorder per process
    /// metrics::counter!("jobs_total").increment(1);
    /// engine.flush()?;
    /// assert_eq!(engine.latest("jobs_total").unwrap().value, 1.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn install(&self) -> Result<()> {
        ::metrics::set_global_recorder(self.clone()).map_err(|_| Error::InvalidConfig {
            field: "metrics recorder",
            reason: "a global `metrics` recorder is already installed".to_owned(),
        })
    }

    /// How many registrations and descriptions watchpost refused so far (also
    /// the series `watchpost_metrics_facade_rejected_total`). A refused
    /// metric is retried, and counted again, each time the facade registers it.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let recorder = watchpost::integrations::MetricsRecorder::new(&engine);
    /// metrics::with_local_recorder(&recorder, || metrics::counter!("http.requests").increment(1));
    /// assert_eq!(recorder.rejected(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.get()
    }

    /// Why the last refused registration or description was refused: the
    /// error's message, naming the offending value.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let recorder = watchpost::integrations::MetricsRecorder::new(&engine);
    /// assert_eq!(recorder.last_rejection(), None);
    /// metrics::with_local_recorder(&recorder, || metrics::gauge!("queue depth").set(1.0));
    /// assert!(recorder.last_rejection().unwrap().contains("\"queue depth\""));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn last_rejection(&self) -> Option<String> {
        self.inner.last_rejection.lock().clone()
    }
}

impl Inner {
    fn registry(&self) -> &Registry {
        self.monitor.registry()
    }

    fn reject(&self, err: &Error) {
        self.rejected.inc();
        *self.last_rejection.lock() = Some(err.to_string());
    }

    fn describe(&self, key: &KeyName, unit: Option<Unit>, description: &str) {
        let help = match unit {
            Some(unit) => format!("{description} (unit: {})", unit.as_str()),
            None => description.to_owned(),
        };
        if let Err(e) = self.registry().describe(key.as_str(), &help) {
            self.reject(&e);
        }
    }

    fn register_histogram(&self, name: &str, labels: &[(&str, &str)]) -> Result<FacadeHistogram> {
        let registry = self.registry();
        match registry.histogram(name, labels, None) {
            Ok(h) => Ok(FacadeHistogram::from_arc(Arc::new(Observe::Histogram(h)))),
            Err(Error::KindMismatch { registered: MetricKind::Summary, .. }) => {
                let s = registry.summary(name, labels)?;
                Ok(FacadeHistogram::from_arc(Arc::new(Observe::Summary(s))))
            }
            Err(Error::BucketMismatch { .. }) => {
                let bounds = registered_bounds(registry, name);
                let h = registry.histogram(name, labels, bounds.as_deref())?;
                Ok(FacadeHistogram::from_arc(Arc::new(Observe::Histogram(h))))
            }
            Err(e) => Err(e),
        }
    }
}

/// The buckets of the histograms already registered as `name`.
fn registered_bounds(registry: &Registry, name: &str) -> Option<Vec<f64>> {
    registry.with_entries(|entries| {
        entries.iter().find_map(|e| match &e.instrument {
            Instrument::Histogram(h) if e.key.name() == name => Some(h.bounds().to_vec()),
            _ => None,
        })
    })
}

impl ::metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, &description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> FacadeCounter {
        let inner = &*self.inner;
        inner.counters.get_or_register(inner, key, FacadeCounter::noop, |name, labels| {
            let c = inner.registry().counter(name, labels)?;
            Ok(FacadeCounter::from_arc(Arc::new(Count(c))))
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> FacadeGauge {
        let inner = &*self.inner;
        inner.gauges.get_or_register(inner, key, FacadeGauge::noop, |name, labels| {
            let g = inner.registry().gauge(name, labels)?;
            Ok(FacadeGauge::from_arc(Arc::new(Level(g))))
        })
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> FacadeHistogram {
        let inner = &*self.inner;
        inner.histograms.get_or_register(inner, key, FacadeHistogram::noop, |name, labels| {
            inner.register_histogram(name, labels)
        })
    }
}

impl fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field("monitor", &self.inner.monitor)
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

/// Facade handles by the facade's key. `Key` hashes as its precomputed
/// hash, so a lookup does not rehash the name and labels.
struct HandleCache<H> {
    map: RwLock<HashMap<Key, H, BuildHasherDefault<KeyHashPassThrough>>>,
    /// [`Registry::removals`] when the map was last valid.
    removals: AtomicUsize,
}

impl<H> Default for HandleCache<H> {
    fn default() -> Self {
        HandleCache { map: RwLock::new(HashMap::default()), removals: AtomicUsize::new(0) }
    }
}

impl<H: Clone> HandleCache<H> {
    fn get_or_register(
        &self,
        inner: &Inner,
        key: &Key,
        noop: fn() -> H,
        register: impl FnOnce(&str, &[(&str, &str)]) -> Result<H>,
    ) -> H {
        // A removed series leaves its handles detached: start afresh.
        let removals = inner.registry().removals();
        if self.removals.load(Ordering::Acquire) != removals {
            let mut map = self.map.write();
            map.clear();
            self.removals.store(removals, Ordering::Release);
        } else if let Some(h) = self.map.read().get(key) {
            return h.clone();
        }
        match with_labels(key, |labels| register(key.name(), labels)) {
            Ok(h) => self.map.write().entry(key.clone()).or_insert(h).clone(),
            Err(e) => {
                inner.reject(&e);
                noop()
            }
        }
    }
}

/// Passes on the `u64` that [`Key`]'s `Hash` writes (its precomputed hash).
#[derive(Default)]
struct KeyHashPassThrough(u64);

impl Hasher for KeyHashPassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `Key`; stays a valid hasher for anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Runs `f` over the key's labels as `(name, value)` pairs.
fn with_labels<R>(key: &Key, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    let mut inline = [("", ""); INLINE_LABELS];
    let mut n = 0;
    for label in key.labels() {
        if n == INLINE_LABELS {
            let all: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            return f(&all);
        }
        inline[n] = (label.key(), label.value());
        n += 1;
    }
    f(&inline[..n])
}

struct Count(Counter);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.add(value);
    }

    fn absolute(&self, value: u64) {
        self.0.raise_to(value);
    }
}

struct Level(Gauge);

impl GaugeFn for Level {
    fn increment(&self, value: f64) {
        self.0.add(value);
    }

    fn decrement(&self, value: f64) {
        self.0.sub(value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

enum Observe {
    Histogram(Histogram),
    Summary(Summary),
}

impl HistogramFn for Observe {
    fn record(&self, value: f64) {
        match self {
            Observe::Histogram(h) => h.observe(value),
            Observe::Summary(s) => s.observe(value),
        }
    }
}
