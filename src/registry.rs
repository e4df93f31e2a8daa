//! The series index: names and labels to dense ids, instruments, cardinality caps.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::RandomState;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::{KeyLimits, SeriesId, SeriesKey, lookup_hash};
use crate::kind::MetricKind;
use crate::metric::histogram_quantile;
use crate::metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, Summary};

/// What a series derived from an instrument shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivation {
    /// Per-second rate of a counter (`<name>:rate`).
    Rate,
    /// Per-second rate of a histogram's or summary's observation count (`<name>:count_rate`).
    CountRate,
    /// A quantile: of a histogram's observations during the last interval, or
    /// of a summary's sliding window (`<name>:p50`, `:p90`, `:p99`).
    Quantile(f64),
}

impl Derivation {
    fn suffix(self) -> &'static str {
        match self {
            Derivation::Rate => "rate",
            Derivation::CountRate => "count_rate",
            Derivation::Quantile(q) if q <= 0.5 => "p50",
            Derivation::Quantile(q) if q <= 0.9 => "p90",
            Derivation::Quantile(_) => "p99",
        }
    }
}

const QUANTILES: [Derivation; 3] =
    [Derivation::Quantile(0.5), Derivation::Quantile(0.9), Derivation::Quantile(0.99)];

#[derive(Clone)]
pub(crate) enum Instrument {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
    Summary(Summary),
    /// A gauge-like series fed only by `record()`.
    Recorded(Gauge),
    /// Computed by the collector from its parent.
    Derived {
        parent: SeriesId,
        how: Derivation,
    },
    /// A removed series: its id is never reused, so a stale handle or queued
    /// record cannot write into another series.
    Removed,
}

/// A series [`Registry::remove`] took out: its id and key.
pub(crate) type RemovedSeries = (SeriesId, Arc<SeriesKey>);

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) key: Arc<SeriesKey>,
    pub(crate) kind: MetricKind,
    pub(crate) instrument: Instrument,
    pub(crate) derived: Vec<(Derivation, SeriesId)>,
}

struct NameInfo {
    kind: MetricKind,
    bounds: Option<Vec<f64>>,
    series: usize,
    derived: bool,
}

/// Why a registration was refused (the `reason` label of
/// `watchpost_registrations_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The metric name reached its per-name series cap.
    SeriesCap,
    /// The engine reached its total series cap.
    TotalSeriesCap,
    /// A metric name or label name over the length limit.
    NameTooLong,
    /// A label value over the length limit.
    LabelValueTooLong,
    /// More labels than the limit.
    TooManyLabels,
}

impl Reject {
    pub(crate) const ALL: [Reject; 5] = [
        Reject::SeriesCap,
        Reject::TotalSeriesCap,
        Reject::NameTooLong,
        Reject::LabelValueTooLong,
        Reject::TooManyLabels,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reject::SeriesCap => "series_cap",
            Reject::TotalSeriesCap => "total_series_cap",
            Reject::NameTooLong => "name_too_long",
            Reject::LabelValueTooLong => "label_value_too_long",
            Reject::TooManyLabels => "too_many_labels",
        }
    }
}

/// Who asks for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A handle (counter, gauge, histogram, summary).
    Handle,
    /// `record()`: the series is fed by the queue, not sampled.
    Record,
    /// The engine's own instruments: exempt from the per-name cap and the
    /// name and label limits (not from the total cap).
    Engine,
}

/// Caps and limits a registry enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Series per metric name (derived series counted under their own names).
    pub(crate) per_name: usize,
    /// Series in the whole registry, derived ones included.
    pub(crate) total: usize,
    /// Sizes of names and labels.
    pub(crate) key: KeyLimits,
}

/// What a lookup by name and labels needs of a series.
struct Slot {
    key: Arc<SeriesKey>,
    kind: MetricKind,
    instrument: Instrument,
}

/// The lookup side of the registry: written only for one insert at a time
/// and read only for one lookup at a time, so a lookup never waits long.
#[derive(Default)]
struct Index {
    by_hash: HashMap<u64, Vec<SeriesId>>,
    slots: Vec<Slot>,
}

impl Index {
    fn find(&self, name: &str, labels: &[(&str, &str)], h: u64) -> Option<SeriesId> {
        self.by_hash
            .get(&h)?
            .iter()
            .copied()
            .find(|id| self.slots[id.index()].key.matches(name, labels))
    }
}

/// Metric names and the number of series: held for the whole of a
/// registration, which it serialises.
#[derive(Default)]
struct Names {
    by_name: HashMap<String, NameInfo>,
    total: usize,
}

/// Describes one series: its identity, kind and, for derived series, what it derives from.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.counter("logins_total")?;
/// let all = engine.series();
/// let rate = all.iter().find(|s| s.key.name() == "logins_total:rate").unwrap();
/// assert_eq!(rate.derived_from.as_ref().unwrap().name(), "logins_total");
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Name and labels.
    pub key: SeriesKey,
    /// The kind of the series' own values (derived series are gauges).
    pub kind: MetricKind,
    /// The series this one is computed from, if derived.
    pub derived_from: Option<SeriesKey>,
    /// How it is computed, if derived.
    pub derivation: Option<Derivation>,
}

/// The registry of series. Sources register their instruments through it.
///
/// Obtain it from [`Monitor::registry`](crate::Monitor::registry) or in
/// [`Source::register`](crate::Source::register). A metric name keeps one
/// kind; each name has a cap on its number of series, the registry a cap on
/// its total, and names and labels have length limits (see
/// [`EngineBuilder`](crate::EngineBuilder)).
///
/// Registering never stalls recording: lookups (`record()`, fetching an
/// existing handle) use an index that is only ever locked for one lookup or
/// one insert, never while the series are read in bulk (sampling,
/// exposition).
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let reg = engine.registry();
/// let c = reg.counter("jobs_total", &[("queue", "email")])?;
/// c.inc();
/// assert!(reg.gauge("jobs_total", &[]).is_err()); // already a counter
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct Registry {
    index: RwLock<Index>,
    /// Every series in id order, for the readers that walk them all.
    entries: RwLock<Vec<Entry>>,
    names: Mutex<Names>,
    /// Number of live series (entries not removed), readable without a lock.
    len: AtomicUsize,
    /// Non-finite values counted by the instruments of removed series.
    removed_nonfinite: AtomicU64,
    /// Number of series removed so far (entries changed in place).
    removed: AtomicUsize,
    /// Bumped on every change to the entries, so readers can cache them.
    generation: AtomicU64,
    limits: Limits,
    /// Refused registrations, by reason (in the order of [`Reject::ALL`]).
    rejected: [Counter; 5],
    hasher: RandomState,
    /// HELP texts given with [`Registry::describe`], by metric name.
    help: RwLock<HashMap<String, Arc<str>>>,
    /// Per-registry state of the layers above (exposition caches, health
    /// checks), one value per type, created on first use.
    extensions: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    /// This registry among all of the process, for the per-thread cache of lookups.
    uid: u64,
    /// Bumped, under the index's write lock, whenever a series leaves the
    /// index: lookups cached before then are stale.
    index_epoch: AtomicU64,
}

/// Source of [`Registry`] uids.
static NEXT_REGISTRY_UID: AtomicU64 = AtomicU64::new(1);

/// A `recorded()` lookup one thread made recently.
struct CachedLookup {
    registry: u64,
    epoch: u64,
    /// Of the name and the labels in the order of the call that cached it.
    hash: u64,
    id: SeriesId,
    key: Arc<SeriesKey>,
}

/// Slots of the per-thread lookup cache (direct-mapped by hash).
const LOOKUP_CACHE: usize = 32;

thread_local! {
    /// The series `record()` by name found last on this thread, so a repeat
    /// takes neither the index's lock nor its map.
    static RECENT_LOOKUPS: std::cell::RefCell<[Option<CachedLookup>; LOOKUP_CACHE]> =
        const { std::cell::RefCell::new([const { None }; LOOKUP_CACHE]) };
}

impl Registry {
    /// A registry with a per-name cap of `series_cap` and no other limit.
    #[cfg(test)]
    pub(crate) fn new(series_cap: usize) -> Self {
        Self::with_limits(Limits { per_name: series_cap, total: usize::MAX, key: KeyLimits::NONE })
    }

    pub(crate) fn with_limits(limits: Limits) -> Self {
        Registry {
            index: RwLock::new(Index::default()),
            entries: RwLock::new(Vec::new()),
            names: Mutex::new(Names::default()),
            len: AtomicUsize::new(0),
            removed_nonfinite: AtomicU64::new(0),
            removed: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            limits,
            rejected: std::array::from_fn(|_| Counter::detached()),
            hasher: RandomState::default(),
            help: RwLock::new(HashMap::new()),
            extensions: Mutex::new(Vec::new()),
            uid: NEXT_REGISTRY_UID.fetch_add(1, Ordering::Relaxed),
            index_epoch: AtomicU64::new(0),
        }
    }

    /// Registers (or fetches) the counter `name` with `labels`.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, a name or
    /// label over its length limit, or a series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let a = engine.registry().counter("hits_total", &[])?;
    /// let b = engine.registry().counter("hits_total", &[])?;
    /// a.inc();
    /// assert_eq!(b.get(), 1); // the same series
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter> {
        self.counter_as(name, labels, Origin::Handle, Counter::detached)
    }

    /// Registers the counter `name` with `labels` as `make()` (the engine's
    /// own counters, which it creates before it has a registry), or fetches
    /// it. Exempt from the per-name cap and the name and label limits.
    pub(crate) fn counter_from(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Counter,
    ) -> Result<Counter> {
        self.counter_as(name, labels, Origin::Engine, make)
    }

    fn counter_as(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        origin: Origin,
        make: impl FnOnce() -> Counter,
    ) -> Result<Counter> {
        let (_, entry) =
            self.get_or_register(name, labels, MetricKind::Counter, None, origin, || {
                Instrument::Counter(make())
            })?;
        match entry {
            Instrument::Counter(c) => Ok(c),
            _ => unreachable!("kind checked at registration"),
        }
    }

    /// Registers (or fetches) the gauge `name` with `labels`.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, a name or
    /// label over its length limit, or a series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.registry().gauge("queue_depth", &[("queue", "email")])?.set(3.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge> {
        let (_, entry) =
            self.get_or_register(name, labels, MetricKind::Gauge, None, Origin::Handle, || {
                Instrument::Gauge(Gauge::detached())
            })?;
        match entry {
            Instrument::Gauge(g) | Instrument::Recorded(g) => Ok(g),
            _ => unreachable!("kind checked at registration"),
        }
    }

    /// Registers (or fetches) the histogram `name` with `labels` and bucket upper `bounds`
    /// (`None` for [`DEFAULT_BUCKETS`]).
    ///
    /// # Panics
    ///
    /// Never: the bounds are validated before the histogram is made.
    ///
    /// # Errors
    ///
    /// Invalid name, labels or bounds; a name registered as another kind or
    /// with other bounds; a name or label over its length limit; or a series
    /// cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let h = engine.registry().histogram("payload_bytes", &[], Some(&[100.0, 1000.0]))?;
    /// h.observe(512.0);
    /// assert!(engine.registry().histogram("payload_bytes", &[], Some(&[1.0])).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn histogram(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: Option<&[f64]>,
    ) -> Result<Histogram> {
        let bounds = bounds.unwrap_or(&DEFAULT_BUCKETS);
        crate::metric::validate_bounds(bounds)?;
        let (_, entry) = self.get_or_register(
            name,
            labels,
            MetricKind::Histogram,
            Some(bounds),
            Origin::Handle,
            || Instrument::Histogram(Histogram::with_bounds(bounds).expect("bounds validated")),
        )?;
        match entry {
            Instrument::Histogram(h) => Ok(h),
            _ => unreachable!("kind checked at registration"),
        }
    }

    /// Registers (or fetches) the summary `name` with `labels`.
    ///
    /// # Errors
    ///
    /// Invalid name or labels, a name registered as another kind, a name or
    /// label over its length limit, or a series cap reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.registry().summary("request_size_bytes", &[])?.observe(42.0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn summary(&self, name: &str, labels: &[(&str, &str)]) -> Result<Summary> {
        let (_, entry) =
            self.get_or_register(name, labels, MetricKind::Summary, None, Origin::Handle, || {
                Instrument::Summary(Summary::detached())
            })?;
        match entry {
            Instrument::Summary(s) => Ok(s),
            _ => unreachable!("kind checked at registration"),
        }
    }

    /// How many registrations were refused: by a series cap (per name or
    /// total) or a name or label over its limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().series_cap(1).build()?;
    /// engine.counter_with("c_total", &[("user", "1")])?;
    /// assert!(engine.counter_with("c_total", &[("user", "2")]).is_err());
    /// assert_eq!(engine.registry().rejected_series(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn rejected_series(&self) -> u64 {
        self.rejected.iter().map(Counter::get).sum()
    }

    /// Refused registrations for `reason`.
    pub(crate) fn rejected_for(&self, reason: Reject) -> u64 {
        self.rejection_counter(reason).get()
    }

    /// The counter of refused registrations for `reason`.
    pub(crate) fn rejection_counter(&self, reason: Reject) -> Counter {
        let i = Reject::ALL.iter().position(|r| *r == reason).expect("every reason is listed");
        self.rejected[i].clone()
    }

    fn reject(&self, reason: Reject, err: Error) -> Error {
        self.rejection_counter(reason).inc();
        err
    }

    /// Id of an existing series, without allocating.
    pub(crate) fn lookup(&self, name: &str, labels: &[(&str, &str)]) -> Option<SeriesId> {
        let h = lookup_hash(&self.hasher, name, labels);
        self.index.read().find(name, labels, h)
    }

    /// Id of the series `record()` writes to, registering it on first use.
    pub(crate) fn recorded(&self, name: &str, labels: &[(&str, &str)]) -> Result<SeriesId> {
        // The cache is keyed by the labels in the caller's order: one hasher
        // over the whole call, and a comparison pair by pair (a call site
        // passes its labels in the same order every time).
        let call = {
            let mut h = self.hasher.build_hasher();
            name.hash(&mut h);
            for (k, v) in labels {
                k.hash(&mut h);
                v.hash(&mut h);
            }
            h.finish()
        };
        #[allow(clippy::cast_possible_truncation)]
        let slot_of = (call as usize) % LOOKUP_CACHE;
        let epoch = self.index_epoch.load(Ordering::Acquire);
        let cached = RECENT_LOOKUPS.with(|c| {
            let c = c.borrow();
            let e = c[slot_of].as_ref()?;
            (e.registry == self.uid
                && e.epoch == epoch
                && e.hash == call
                && e.key.matches(name, labels))
            .then_some(e.id)
        });
        if let Some(id) = cached {
            return Ok(id);
        }
        let h = lookup_hash(&self.hasher, name, labels);
        {
            let index = self.index.read();
            if let Some(id) = index.find(name, labels, h) {
                let slot = &index.slots[id.index()];
                return match &slot.instrument {
                    Instrument::Gauge(_) | Instrument::Recorded(_) => {
                        // read under the lock: no removal is changing the index meanwhile
                        let epoch = self.index_epoch.load(Ordering::Acquire);
                        let entry = CachedLookup {
                            registry: self.uid,
                            epoch,
                            hash: call,
                            id,
                            key: Arc::clone(&slot.key),
                        };
                        RECENT_LOOKUPS.with(|c| c.borrow_mut()[slot_of] = Some(entry));
                        Ok(id)
                    }
                    _ => Err(Error::KindMismatch {
                        name: name.to_owned(),
                        registered: slot.kind,
                        requested: MetricKind::Gauge,
                    }),
                };
            }
        }
        let (id, _) =
            self.get_or_register(name, labels, MetricKind::Gauge, None, Origin::Record, || {
                Instrument::Recorded(Gauge::detached())
            })?;
        Ok(id)
    }

    /// The instrument of existing series `id`, checked against what is asked for.
    fn existing(
        &self,
        id: SeriesId,
        name: &str,
        kind: MetricKind,
        bounds: Option<&[f64]>,
        origin: Origin,
    ) -> Result<Instrument> {
        let (registered, instrument) = {
            let index = self.index.read();
            let slot = &index.slots[id.index()];
            (slot.kind, slot.instrument.clone())
        };
        if registered != kind || matches!(instrument, Instrument::Derived { .. }) {
            return Err(Error::KindMismatch { name: name.to_owned(), registered, requested: kind });
        }
        if let (Some(b), Instrument::Histogram(h)) = (bounds, &instrument)
            && h.bounds() != b
        {
            return Err(Error::BucketMismatch { name: name.to_owned() });
        }
        // A handle asked for a series so far fed only by record(): it is now sampled.
        if let Instrument::Recorded(g) = &instrument
            && origin != Origin::Record
        {
            let _names = self.names.lock();
            let sampled = Instrument::Gauge(g.clone());
            self.entries.write()[id.index()].instrument = sampled.clone();
            self.index.write().slots[id.index()].instrument = sampled.clone();
            self.generation.fetch_add(1, Ordering::Release);
            return Ok(sampled);
        }
        Ok(instrument)
    }

    fn get_or_register(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
        bounds: Option<&[f64]>,
        origin: Origin,
        make: impl FnOnce() -> Instrument,
    ) -> Result<(SeriesId, Instrument)> {
        if let Some(id) = self.lookup(name, labels) {
            return Ok((id, self.existing(id, name, kind, bounds, origin)?));
        }
        if let Err(e) = self.limits.key.check(name, labels)
            && origin != Origin::Engine
        {
            let reason = match e {
                Error::LabelValueTooLong { .. } => Reject::LabelValueTooLong,
                Error::TooManyLabels { .. } => Reject::TooManyLabels,
                _ => Reject::NameTooLong,
            };
            return Err(self.reject(reason, e));
        }
        let key = SeriesKey::new(name, labels)?;
        let mut names = self.names.lock();
        // Another thread may have registered it between our lookup and the lock.
        if let Some(id) = self.lookup(name, labels) {
            drop(names);
            return Ok((id, self.existing(id, name, kind, bounds, origin)?));
        }
        match names.by_name.get(name) {
            Some(info) if info.kind != kind || info.derived => {
                return Err(Error::KindMismatch {
                    name: name.to_owned(),
                    registered: info.kind,
                    requested: kind,
                });
            }
            Some(info) if info.bounds.as_deref().is_some_and(|b| Some(b) != bounds) => {
                return Err(Error::BucketMismatch { name: name.to_owned() });
            }
            Some(info) if info.series >= self.limits.per_name && origin != Origin::Engine => {
                return Err(self.reject(
                    Reject::SeriesCap,
                    Error::CardinalityExceeded {
                        name: name.to_owned(),
                        limit: self.limits.per_name,
                    },
                ));
            }
            _ => {}
        }
        let derivations: &[Derivation] = match kind {
            MetricKind::Counter => &[Derivation::Rate],
            MetricKind::Gauge => &[],
            MetricKind::Histogram | MetricKind::Summary => {
                &[Derivation::CountRate, QUANTILES[0], QUANTILES[1], QUANTILES[2]]
            }
        };
        if names.total.saturating_add(1 + derivations.len()) > self.limits.total {
            return Err(self.reject(
                Reject::TotalSeriesCap,
                Error::TotalSeriesExceeded { name: name.to_owned(), limit: self.limits.total },
            ));
        }
        // Derived names must not clash with a user's metric of another kind.
        let dnames: Vec<String> =
            derivations.iter().map(|d| format!("{name}:{}", d.suffix())).collect();
        for dname in &dnames {
            if let Some(info) = names.by_name.get(dname)
                && !info.derived
            {
                return Err(Error::KindMismatch {
                    name: dname.clone(),
                    registered: info.kind,
                    requested: MetricKind::Gauge,
                });
            }
        }
        let instrument = make();
        let parent =
            self.append(&mut names, key, kind, bounds, &instrument, derivations, dnames)?;
        drop(names);
        Ok((parent, instrument))
    }

    /// Appends series `key` and its derived series (already checked), and
    /// returns the id of `key`.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        names: &mut Names,
        key: SeriesKey,
        kind: MetricKind,
        bounds: Option<&[f64]>,
        instrument: &Instrument,
        derivations: &[Derivation],
        dnames: Vec<String>,
    ) -> Result<SeriesId> {
        let name = key.name().to_owned();
        // Ids are handed out in order while `names` is held.
        // Removed series keep their ids, so the next id is the number of entries.
        let next = self.entries.read().len();
        let too_many = || Error::TotalSeriesExceeded { name: name.clone(), limit: names.total };
        u32::try_from(next + 1 + derivations.len()).map_err(|_| too_many())?;
        let parent = SeriesId(u32::try_from(next).map_err(|_| too_many())?);
        let mut new = Vec::with_capacity(1 + derivations.len());
        let mut parent_entry =
            Entry { key: Arc::new(key), kind, instrument: instrument.clone(), derived: Vec::new() };
        for (i, (&d, dname)) in derivations.iter().zip(dnames).enumerate() {
            let id = SeriesId(parent.0 + 1 + u32::try_from(i).expect("at most 4 derivations"));
            parent_entry.derived.push((d, id));
            let dkey = SeriesKey::from_parts(dname, parent_entry.key.labels().clone());
            new.push(Entry {
                key: Arc::new(dkey),
                kind: MetricKind::Gauge,
                instrument: Instrument::Derived { parent, how: d },
                derived: Vec::new(),
            });
        }
        new.insert(0, parent_entry);
        for e in &new {
            let info = names.by_name.entry(e.key.name().to_owned()).or_insert(NameInfo {
                kind: e.kind,
                bounds: bounds.filter(|_| e.kind == MetricKind::Histogram).map(<[f64]>::to_vec),
                series: 0,
                derived: matches!(e.instrument, Instrument::Derived { .. }),
            });
            info.series += 1;
        }
        names.total += new.len();
        // Entries first, then the generation, then the index: whoever finds
        // the new id by a lookup also sees the entries and the new generation.
        let slots: Vec<(u64, Slot)> = new
            .iter()
            .map(|e| {
                let pairs: Vec<(&str, &str)> = e.key.labels().iter().collect();
                let h = lookup_hash(&self.hasher, e.key.name(), &pairs);
                (
                    h,
                    Slot {
                        key: Arc::clone(&e.key),
                        kind: e.kind,
                        instrument: e.instrument.clone(),
                    },
                )
            })
            .collect();
        {
            let mut entries = self.entries.write();
            let added = new.len();
            entries.extend(new);
            self.len.fetch_add(added, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::Release);
        {
            let mut index = self.index.write();
            for (h, slot) in slots {
                let id = SeriesId(u32::try_from(index.slots.len()).expect("checked above"));
                index.by_hash.entry(h).or_default().push(id);
                index.slots.push(slot);
            }
        }
        Ok(parent)
    }

    /// Removes series `name{labels}` and the series derived from it; returns
    /// their ids and keys (the series first), or `None` if it does not exist.
    /// Their ids are never reused; handles to them keep working but feed nothing.
    pub(crate) fn remove(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<Vec<RemovedSeries>>> {
        // serialised with registrations
        let mut names = self.names.lock();
        let Some(id) = self.lookup(name, labels) else { return Ok(None) };
        let mut entries = self.entries.write();
        if let Instrument::Derived { parent, .. } = entries[id.index()].instrument {
            return Err(Error::InvalidConfig {
                field: "remove_series.name",
                reason: format!(
                    "{} is derived from {}; remove that series instead",
                    entries[id.index()].key,
                    entries[parent.index()].key
                ),
            });
        }
        let mut ids = vec![id];
        ids.extend(entries[id.index()].derived.iter().map(|(_, d)| *d));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let entry = &mut entries[id.index()];
            let nonfinite = match &entry.instrument {
                Instrument::Gauge(g) | Instrument::Recorded(g) => g.dropped(),
                Instrument::Histogram(h) => h.dropped(),
                Instrument::Summary(s) => s.dropped(),
                _ => 0,
            };
            entry.instrument = Instrument::Removed;
            entry.derived.clear();
            let key = Arc::clone(&entry.key);
            self.removed_nonfinite.fetch_add(nonfinite, Ordering::Relaxed);
            self.len.fetch_sub(1, Ordering::Release);
            self.removed.fetch_add(1, Ordering::Release);
            names.total = names.total.saturating_sub(1);
            if let Some(info) = names.by_name.get_mut(key.name()) {
                info.series = info.series.saturating_sub(1);
                if info.series == 0 {
                    names.by_name.remove(key.name());
                }
            }
            out.push((id, key));
        }
        drop(entries);
        self.generation.fetch_add(1, Ordering::Release);
        let mut index = self.index.write();
        for (id, key) in &out {
            let pairs: Vec<(&str, &str)> = key.labels().iter().collect();
            let h = lookup_hash(&self.hasher, key.name(), &pairs);
            if let Some(bucket) = index.by_hash.get_mut(&h) {
                bucket.retain(|x| x != id);
                if bucket.is_empty() {
                    index.by_hash.remove(&h);
                }
            }
            index.slots[id.index()].instrument = Instrument::Removed;
        }
        self.index_epoch.fetch_add(1, Ordering::Release);
        drop(index);
        Ok(Some(out))
    }

    /// Sets the description of metric `name`, shown as its `# HELP` line by
    /// the Prometheus and OpenMetrics exposition. The name need not be
    /// registered yet; describing it again replaces the text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`] if `name` is not a valid metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.registry().describe("messages_total", "Chat messages accepted by the server.")?;
    /// engine.counter("messages_total")?.inc();
    /// assert!(engine.prometheus_text().contains("# HELP messages_total Chat messages accepted"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn describe(&self, name: &str, help: &str) -> Result<()> {
        crate::key::validate_metric_name(name)?;
        self.help.write().insert(name.to_owned(), Arc::from(help));
        Ok(())
    }

    /// The description of metric `name`, if one was given.
    pub(crate) fn description(&self, name: &str) -> Option<Arc<str>> {
        self.help.read().get(name).cloned()
    }

    /// This registry's instance of `T`, created with `T::default()` on first use.
    pub(crate) fn extension<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut slots = self.extensions.lock();
        if let Some(found) = slots.iter().find_map(|e| Arc::clone(e).downcast::<T>().ok()) {
            return found;
        }
        let made = Arc::new(T::default());
        slots.push(Arc::clone(&made) as Arc<dyn Any + Send + Sync>);
        made
    }

    /// Number of series removed so far: handles cached outside the registry
    /// are stale once it changes.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn removals(&self) -> usize {
        self.removed.load(Ordering::Acquire)
    }

    /// Changes whenever an entry is added or changed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Runs `f` over every entry under the read lock of the entries (which
    /// delays registrations, never lookups).
    pub(crate) fn with_entries<R>(&self, f: impl FnOnce(&[Entry]) -> R) -> R {
        f(&self.entries.read())
    }

    /// Non-finite values dropped by all instruments so far.
    pub(crate) fn nonfinite_total(&self) -> u64 {
        self.entries
            .read()
            .iter()
            .map(|e| match &e.instrument {
                Instrument::Gauge(g) | Instrument::Recorded(g) => g.dropped(),
                Instrument::Histogram(h) => h.dropped(),
                Instrument::Summary(s) => s.dropped(),
                Instrument::Counter(_) | Instrument::Derived { .. } | Instrument::Removed => 0,
            })
            .sum::<u64>()
            + self.removed_nonfinite.load(Ordering::Relaxed)
    }

    /// Number of series removed so far: readers that cache entries by
    /// position read them all again when it changes.
    pub(crate) fn removed_count(&self) -> usize {
        self.removed.load(Ordering::Acquire)
    }

    /// Number of series, derived ones included (removed ones not).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Id, key and kind of every series, sorted by name and labels.
    pub(crate) fn infos_with_ids(&self) -> Vec<(SeriesId, Arc<SeriesKey>, MetricKind)> {
        let entries = self.entries.read();
        let mut out: Vec<_> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e.instrument, Instrument::Removed))
            .map(|(i, e)| (SeriesId(u32::try_from(i).expect("fits")), Arc::clone(&e.key), e.kind))
            .collect();
        drop(entries);
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// Every series, sorted by name and labels.
    pub(crate) fn infos(&self) -> Vec<SeriesInfo> {
        let entries = self.entries.read();
        let mut out: Vec<SeriesInfo> = entries
            .iter()
            .filter(|e| !matches!(e.instrument, Instrument::Removed))
            .map(|e| {
                let (derived_from, derivation) = match &e.instrument {
                    Instrument::Derived { parent, how } => {
                        (Some((*entries[parent.index()].key).clone()), Some(*how))
                    }
                    _ => (None, None),
                };
                SeriesInfo { key: (*e.key).clone(), kind: e.kind, derived_from, derivation }
            })
            .collect();
        drop(entries);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("series", &self.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Per-series memory the collector needs between ticks.
#[derive(Clone, Default)]
enum Prev {
    #[default]
    None,
    Counter {
        at_ms: i64,
        value: u64,
    },
    Buckets {
        at_ms: i64,
        counts: Vec<u64>,
    },
    Count {
        at_ms: i64,
        count: u64,
    },
}

/// Reads every instrument once per tick and computes derived series.
#[derive(Default)]
pub(crate) struct Collector {
    prev: Vec<Prev>,
    scratch: Vec<u64>,
    delta: Vec<u64>,
    last_rotation_ms: Option<i64>,
    /// The time of the previous collection.
    last_ms: Option<i64>,
}

/// A collection later than the previous one by more than this (about 100
/// years) means the clock leapt: no real interval is that long.
#[allow(clippy::cast_possible_truncation, reason = "100 years of milliseconds fit in an i64")]
const MAX_INTERVAL_MS: i64 = crate::clock::MAX_DURATION.as_millis() as i64;

impl Collector {
    /// Appends `(series, value)` readings at `now_ms` to `out`. Rotates
    /// summary windows when a quarter of `summary_window_ms` has passed.
    ///
    /// Returns whether the clock jumped since the previous collection: went
    /// backwards, or forwards by more than any real interval. Rates are then
    /// skipped for this interval, and every series starts afresh from these
    /// readings.
    pub(crate) fn collect(
        &mut self,
        registry: &Registry,
        now_ms: i64,
        summary_window_ms: i64,
        out: &mut Vec<(SeriesId, f64)>,
    ) -> bool {
        let jumped = self
            .last_ms
            .is_some_and(|last| now_ms < last || now_ms.saturating_sub(last) > MAX_INTERVAL_MS);
        self.last_ms = Some(now_ms);
        if jumped {
            self.prev.iter_mut().for_each(|p| *p = Prev::None);
            self.last_rotation_ms = None;
        }
        let rotate = match self.last_rotation_ms {
            None => {
                self.last_rotation_ms = Some(now_ms);
                false
            }
            Some(last) if now_ms.saturating_sub(last) >= summary_window_ms / 4 => {
                self.last_rotation_ms = Some(now_ms);
                true
            }
            Some(_) => false,
        };
        registry.with_entries(|entries| {
            if self.prev.len() < entries.len() {
                self.prev.resize(entries.len(), Prev::None);
            }
            for (i, e) in entries.iter().enumerate() {
                let id = SeriesId(u32::try_from(i).expect("fits"));
                match &e.instrument {
                    Instrument::Counter(c) => {
                        let v = c.get();
                        #[allow(clippy::cast_precision_loss)] // exact below 2^53
                        out.push((id, v as f64));
                        if let Prev::Counter { at_ms, value } = self.prev[i]
                            && now_ms > at_ms
                        {
                            // A counter only goes down when its total wrapped
                            // past u64::MAX (it has no reset): the wrapping
                            // difference is the exact increase.
                            let inc = v.wrapping_sub(value);
                            #[allow(clippy::cast_precision_loss)]
                            let rate = inc as f64 * 1000.0 / now_ms.saturating_sub(at_ms) as f64;
                            for (_, did) in &e.derived {
                                out.push((*did, rate));
                            }
                        }
                        if !matches!(self.prev[i], Prev::Counter { at_ms, .. } if at_ms >= now_ms) {
                            self.prev[i] = Prev::Counter { at_ms: now_ms, value: v };
                        }
                    }
                    Instrument::Gauge(g) => out.push((id, g.get())),
                    Instrument::Histogram(h) => self.collect_histogram(i, e, h, now_ms, out),
                    Instrument::Summary(s) => {
                        if rotate {
                            s.rotate();
                        }
                        self.collect_summary(i, e, s, now_ms, out);
                    }
                    Instrument::Recorded(_) | Instrument::Derived { .. } | Instrument::Removed => {}
                }
            }
        });
        jumped
    }

    fn collect_histogram(
        &mut self,
        i: usize,
        e: &Entry,
        h: &Histogram,
        now_ms: i64,
        out: &mut Vec<(SeriesId, f64)>,
    ) {
        let id = SeriesId(u32::try_from(i).expect("fits"));
        h.counts_into(&mut self.scratch);
        let total: u64 = self.scratch.iter().sum();
        #[allow(clippy::cast_precision_loss)]
        out.push((id, total as f64));
        match &self.prev[i] {
            Prev::Buckets { at_ms, counts } if now_ms > *at_ms => {
                self.delta.clear();
                self.delta.extend(
                    self.scratch
                        .iter()
                        .zip(counts)
                        .map(|(now, before)| now.saturating_sub(*before)),
                );
                let dt = now_ms.saturating_sub(*at_ms);
                let observed: u64 = self.delta.iter().sum();
                for (how, did) in &e.derived {
                    match how {
                        #[allow(clippy::cast_precision_loss)]
                        Derivation::CountRate => {
                            out.push((*did, observed as f64 * 1000.0 / dt as f64));
                        }
                        Derivation::Quantile(q) => {
                            if let Some(v) = histogram_quantile(h.bounds(), &self.delta, *q) {
                                out.push((*did, v));
                            }
                        }
                        Derivation::Rate => {}
                    }
                }
            }
            Prev::Buckets { .. } => return, // same instant: keep the older baseline
            _ => {}
        }
        self.prev[i] = Prev::Buckets { at_ms: now_ms, counts: self.scratch.clone() };
    }

    fn collect_summary(
        &mut self,
        i: usize,
        e: &Entry,
        summary: &Summary,
        now_ms: i64,
        out: &mut Vec<(SeriesId, f64)>,
    ) {
        let id = SeriesId(u32::try_from(i).expect("fits"));
        let count = summary.count();
        #[allow(clippy::cast_precision_loss)]
        out.push((id, count as f64));
        let quantiles = summary.quantiles();
        let rate = match self.prev[i] {
            #[allow(clippy::cast_precision_loss)]
            Prev::Count { at_ms, count: before } if now_ms > at_ms => Some(
                count.saturating_sub(before) as f64 * 1000.0 / now_ms.saturating_sub(at_ms) as f64,
            ),
            _ => None,
        };
        for (how, did) in &e.derived {
            match how {
                Derivation::CountRate => {
                    if let Some(r) = rate {
                        out.push((*did, r));
                    }
                }
                Derivation::Quantile(q) => {
                    if let Some(qs) = quantiles {
                        let v = if *q <= 0.5 {
                            qs.p50
                        } else if *q <= 0.9 {
                            qs.p90
                        } else {
                            qs.p99
                        };
                        out.push((*did, v));
                    }
                }
                Derivation::Rate => {}
            }
        }
        if !matches!(self.prev[i], Prev::Count { at_ms, .. } if at_ms >= now_ms) {
            self.prev[i] = Prev::Count { at_ms: now_ms, count };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_lookups_cached_per_thread_follow_removals_and_registries() {
        let r = Registry::new(10);
        let a = r.recorded("orders", &[("shop", "eu")]).unwrap();
        assert_eq!(r.recorded("orders", &[("shop", "eu")]).unwrap(), a); // cached now
        let b = r.recorded("orders", &[("shop", "us")]).unwrap();
        assert_ne!(a, b);
        assert_eq!(r.recorded("orders", &[("shop", "eu")]).unwrap(), a);
        // a removal makes what was cached stale: the series comes back under a new id
        assert!(r.remove("orders", &[("shop", "eu")]).unwrap().is_some());
        let a2 = r.recorded("orders", &[("shop", "eu")]).unwrap();
        assert!(a2 != a && a2 != b);
        assert_eq!(r.recorded("orders", &[("shop", "us")]).unwrap(), b);
        // another registry on the same thread does not see this one's ids
        let other = Registry::new(10);
        let _ = other.gauge("first", &[]).unwrap();
        let o = other.recorded("orders", &[("shop", "eu")]).unwrap();
        assert_eq!(o, SeriesId(1));
        assert_eq!(r.recorded("orders", &[("shop", "eu")]).unwrap(), a2);
        // the cache is keyed by the call's label order; any order finds the one series
        let ab = r.recorded("pairs", &[("a", "1"), ("b", "2")]).unwrap();
        for _ in 0..2 {
            assert_eq!(r.recorded("pairs", &[("b", "2"), ("a", "1")]).unwrap(), ab);
            assert_eq!(r.recorded("pairs", &[("a", "1"), ("b", "2")]).unwrap(), ab);
        }
        // labels that differ only in where a name ends and its value begins
        let split = r.recorded("pairs", &[("ab", "c")]).unwrap();
        let other = r.recorded("pairs", &[("a", "bc")]).unwrap();
        assert_ne!(split, other);
        assert_eq!(r.recorded("pairs", &[("ab", "c")]).unwrap(), split);
        assert_eq!(r.recorded("pairs", &[("a", "bc")]).unwrap(), other);
        // a kind mismatch is never cached as a hit
        let _ = r.counter("hits_total", &[]).unwrap();
        assert!(r.recorded("hits_total", &[]).is_err());
        assert!(r.recorded("hits_total", &[]).is_err());
    }

    #[test]
    fn kinds_and_caps() {
        let r = Registry::new(2);
        let c = r.counter("a_total", &[("x", "1")]).unwrap();
        assert!(c.same_as(&r.counter("a_total", &[("x", "1")]).unwrap()));
        assert!(matches!(r.gauge("a_total", &[]), Err(Error::KindMismatch { .. })));
        let _ = r.counter("a_total", &[("x", "2")]).unwrap();
        assert!(matches!(
            r.counter("a_total", &[("x", "3")]),
            Err(Error::CardinalityExceeded { limit: 2, .. })
        ));
        assert_eq!(r.rejected_series(), 1);
        // derived series cannot be registered by users as something else
        assert!(r.counter("a_total:rate", &[]).is_err());
        // label order does not matter
        let g = r.gauge("g", &[("a", "1"), ("b", "2")]).unwrap();
        assert!(g.same_as(&r.gauge("g", &[("b", "2"), ("a", "1")]).unwrap()));
    }

    #[test]
    fn total_cap_counts_derived_series_and_is_counted_by_reason() {
        let r = Registry::with_limits(Limits { per_name: 100, total: 7, key: KeyLimits::NONE });
        let _c = r.counter("a_total", &[]).unwrap(); // 2 series: the total and its rate
        let _h = r.histogram("h", &[], None).unwrap(); // 5 series: 7 in all
        let e = r.gauge("g", &[]).unwrap_err();
        assert!(matches!(e, Error::TotalSeriesExceeded { limit: 7, .. }), "{e}");
        assert!(e.to_string().contains("\"g\""), "{e}");
        assert!(r.recorded("g", &[("k", "v")]).is_err());
        assert_eq!(r.len(), 7);
        assert_eq!(r.rejected_for(Reject::TotalSeriesCap), 2);
        assert_eq!(r.rejected_for(Reject::SeriesCap), 0);
        // existing series are still served
        assert!(r.counter("a_total", &[]).is_ok());
        // a histogram needs 5 free slots, not 1
        let r = Registry::with_limits(Limits { per_name: 100, total: 4, key: KeyLimits::NONE });
        assert!(r.histogram("h", &[], None).is_err());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn length_limits_are_counted_by_reason() {
        let key = KeyLimits { name_bytes: 16, label_value_bytes: 8, labels: 2 };
        let r = Registry::with_limits(Limits { per_name: 100, total: 100, key });
        assert!(matches!(r.gauge(&"n".repeat(17), &[]), Err(Error::NameTooLong { .. })));
        assert!(r.gauge("g", &[(&"l".repeat(17), "v")]).is_err());
        let big = "x".repeat(1 << 20);
        assert!(matches!(r.recorded("g", &[("user", &big)]), Err(Error::LabelValueTooLong { .. })));
        assert!(matches!(
            r.counter("c", &[("a", "1"), ("b", "2"), ("c", "3")]),
            Err(Error::TooManyLabels { .. })
        ));
        assert_eq!(r.rejected_for(Reject::NameTooLong), 2);
        assert_eq!(r.rejected_for(Reject::LabelValueTooLong), 1);
        assert_eq!(r.rejected_for(Reject::TooManyLabels), 1);
        assert_eq!(r.rejected_series(), 4);
        assert_eq!(r.len(), 0);
        assert!(r.gauge("g", &[("user", "12345678")]).is_ok()); // at the limit is fine
    }

    #[test]
    fn a_registration_waiting_on_a_bulk_reader_does_not_stall_lookups() {
        use std::sync::mpsc;
        use std::time::{Duration, Instant};
        let registry = Registry::new(100);
        let r = &registry;
        let recorded = r.recorded("orders", &[("shop", "eu")]).unwrap();
        let counter = r.counter("jobs_total", &[]).unwrap();
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::scope(|s| {
            // A reader of every series (sampling, exposition) holds them ...
            s.spawn(move || {
                r.with_entries(|_| {
                    held_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(20));
                });
            });
            held_rx.recv().unwrap();
            // ... so a new registration waits for it, holding its place in line
            let registering = s.spawn(|| r.gauge("new_series", &[]).unwrap());
            let deadline = Instant::now() + Duration::from_secs(20);
            while !r.entries.is_locked_exclusive() {
                assert!(Instant::now() < deadline, "the registration never queued");
                std::thread::yield_now();
            }
            // record() and fetching existing handles still answer at once
            s.spawn(move || {
                let id = r.recorded("orders", &[("shop", "eu")]).unwrap();
                let c = r.counter("jobs_total", &[]).unwrap();
                let missing = r.lookup("new_series", &[]);
                done_tx.send((id, c, missing)).unwrap();
            });
            let got = done_rx.recv_timeout(Duration::from_secs(20));
            release_tx.send(()).unwrap();
            let (id, c, missing) = got.expect("a lookup waited for the registration");
            assert_eq!(id, recorded);
            assert!(c.same_as(&counter));
            assert_eq!(missing, None);
            let _g = registering.join().unwrap();
        });
        assert!(r.lookup("new_series", &[]).is_some());
    }

    #[test]
    fn counter_rate_and_reset() {
        let r = Registry::new(10);
        let c = r.counter("c_total", &[]).unwrap();
        let mut col = Collector::default();
        let mut out = Vec::new();
        col.collect(&r, 0, 60_000, &mut out);
        assert_eq!(out.len(), 1); // no rate before a second reading
        c.add(10);
        out.clear();
        col.collect(&r, 2_000, 60_000, &mut out);
        assert_eq!(out, vec![(SeriesId(0), 10.0), (SeriesId(1), 5.0)]);
    }

    #[test]
    fn counter_rate_is_exact_across_a_wrap_of_the_total() {
        let r = Registry::new(10);
        let c = r.counter("c_total", &[]).unwrap();
        let mut col = Collector::default();
        let mut out = Vec::new();
        c.add(u64::MAX - 1);
        col.collect(&r, 0, 60_000, &mut out);
        c.add(6); // the total wraps to 4
        out.clear();
        col.collect(&r, 2_000, 60_000, &mut out);
        assert_eq!(out, vec![(SeriesId(0), 4.0), (SeriesId(1), 3.0)]);
    }

    #[test]
    fn a_clock_jump_skips_the_rates_and_they_restart_from_the_new_time() {
        let r = Registry::new(10);
        let c = r.counter("c_total", &[]).unwrap();
        let h = r.histogram("lat", &[], Some(&[1.0])).unwrap();
        let s = r.summary("size", &[]).unwrap();
        let mut col = Collector::default();
        let mut out = Vec::new();
        let rates = |out: &[(SeriesId, f64)]| -> Vec<SeriesId> {
            let derived: Vec<SeriesId> = [1, 3, 8].map(SeriesId).to_vec(); // c:rate, lat:count_rate, size:count_rate
            out.iter().map(|(id, _)| *id).filter(|id| derived.contains(id)).collect()
        };
        assert!(!col.collect(&r, -5_000_000_000_000_000_000, 60_000, &mut out));
        for (t, jumped) in [
            (5_000_000_000_000_000_000, true), // forwards by more than any interval
            (0, true),                         // backwards
            (1_000, false),
        ] {
            c.add(10);
            h.observe(0.5);
            s.observe(1.0);
            out.clear();
            assert_eq!(col.collect(&r, t, 60_000, &mut out), jumped, "{t}");
            if jumped {
                assert!(rates(&out).is_empty(), "{t}: {out:?}");
            } else {
                assert_eq!(rates(&out).len(), 3, "{out:?}");
                assert!(out.contains(&(SeriesId(1), 10.0)), "{out:?}");
            }
        }
        // the same instant twice is not a jump, and gives no rate
        out.clear();
        assert!(!col.collect(&r, 1_000, 60_000, &mut out));
        assert!(rates(&out).is_empty());
    }

    #[test]
    fn summary_windows_rotate_again_after_the_clock_went_backwards() {
        let r = Registry::new(10);
        let s = r.summary("size", &[]).unwrap();
        let mut col = Collector::default();
        let mut out = Vec::new();
        col.collect(&r, 1_000_000, 4_000, &mut out);
        assert!(col.collect(&r, 0, 4_000, &mut out));
        s.observe(1.0);
        // four quarters of the window later the observation has left it
        for t in [1_000, 2_000, 3_000, 4_000, 5_000] {
            col.collect(&r, t, 4_000, &mut out);
        }
        assert!(s.quantiles().is_none(), "{:?}", s.quantiles());
    }

    #[test]
    fn histogram_quantiles_cover_the_last_interval_only() {
        let r = Registry::new(10);
        let h = r.histogram("lat", &[], Some(&[1.0, 2.0, 4.0])).unwrap();
        let mut col = Collector::default();
        let mut out = Vec::new();
        for _ in 0..100 {
            h.observe(0.5);
        }
        col.collect(&r, 0, 60_000, &mut out);
        for _ in 0..10 {
            h.observe(3.0);
        }
        out.clear();
        col.collect(&r, 1_000, 60_000, &mut out);
        let p50 = out.iter().find(|(id, _)| *id == SeriesId(2)).unwrap().1;
        assert!((2.0..=4.0).contains(&p50), "{p50}");
        let rate = out.iter().find(|(id, _)| *id == SeriesId(1)).unwrap().1;
        assert!((rate - 10.0).abs() < 1e-9);
    }
}
