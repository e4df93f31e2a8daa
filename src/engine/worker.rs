use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::sink::Scored;
use super::{Control, Record, Shared};
use crate::alert::SeriesView;
use crate::clock::ms_to_datetime;
use crate::dashboard::Anomaly;
use crate::detect::{Detector, DetectorSpec};
use crate::history::{History, Pushed, Sample};
use crate::key::{SeriesId, SeriesKey};
use crate::kind::MetricKind;
use crate::registry::{Collector, Instrument};
use crate::source::Source;

/// Recent anomalies kept for the dashboard.
pub(crate) const ANOMALY_LOG: usize = 256;

/// What the worker knows of each series, refreshed when the registry changes,
/// so ingesting takes no registry lock.
#[derive(Default)]
pub(crate) struct SeriesCache {
    generation: Option<u64>,
    /// Gauges of the series `record()` writes to.
    gauges: Vec<Option<crate::metric::Gauge>>,
    keys: Vec<Arc<SeriesKey>>,
    /// The detector each series gets (None: no detection).
    plan: Vec<Option<DetectorSpec>>,
    /// The values each series can take; expected bands are cut to them.
    domains: Vec<crate::detect::Domain>,
    detectors: Vec<Option<Box<dyn Detector>>>,
    /// Series ids by metric name and by key, for the alert manager's view.
    by_name: HashMap<String, Vec<SeriesId>>,
    ids: HashMap<Arc<SeriesKey>, SeriesId>,
    /// Series removed from the registry: their queued samples are discarded.
    removed: Vec<bool>,
    /// The registry's count of removed series when this cache was built.
    removed_seen: usize,
    /// Series past the staleness horizon at the last evaluation: hidden from
    /// the rules (see `EngineBuilder::staleness_horizon`).
    stale: Vec<bool>,
    /// History from the state directory whose series are not registered
    /// yet: the rules see it, and it moves into history (replayed through
    /// the detector) when its series is registered.
    restored: crate::persist::RestoredHistory,
    /// Samples appended since the last hand-over to the sinks (remote
    /// write), with the index of each series' newest one: a later value at
    /// the same millisecond replaces it there, as it does in history.
    taps: Vec<(usize, Scored)>,
    newest_tap: HashMap<usize, usize>,
    /// Set while a flush or the shutdown drains: every kept sample goes.
    pub(crate) hand_over_all: bool,
}

/// How long a series' newest sample is kept back from the sinks while it
/// can still be replaced by an observation at the same millisecond that
/// reaches the worker late (a thread that read the clock, then waited to
/// queue its record). A value once sent is never sent again, so sending it
/// sealed keeps what a receiver holds equal to history.
const SEAL_MS: i64 = 1_000;

impl SeriesCache {
    /// A cache that hands `restored` history to its series as they register.
    pub(crate) fn restoring(restored: crate::persist::RestoredHistory) -> Self {
        SeriesCache { restored, ..SeriesCache::default() }
    }

    /// Moves the restored samples of the series registered from index
    /// `from` on into history, through `push`, so their detectors warm up
    /// on them and annotate them.
    fn claim_restored(&mut self, shared: &Shared, from: usize) {
        let claimed: Vec<(SeriesId, Vec<Sample>)> = (from..self.keys.len())
            .filter(|&i| !self.removed[i])
            .filter_map(|i| {
                let id = SeriesId(u32::try_from(i).expect("fewer than 2^32 series"));
                Some((id, self.restored.take(&self.keys[i])?))
            })
            .collect();
        if claimed.is_empty() {
            return;
        }
        let mut history = shared.history.write();
        for (id, samples) in claimed {
            for s in samples {
                let _ = self.push(shared, &mut history, id, s);
            }
        }
    }

    /// Every series' samples as (timestamp, value), oldest first: the
    /// registered ones from `history`, then restored ones still unclaimed.
    pub(crate) fn all_samples(&self, history: &History) -> Vec<(SeriesKey, Vec<(i64, f64)>)> {
        let mut out = Vec::with_capacity(self.keys.len() + self.restored.series.len());
        for (i, key) in self.keys.iter().enumerate() {
            let id = SeriesId(u32::try_from(i).expect("fewer than 2^32 series"));
            if self.removed[i] {
                continue;
            }
            if let Some(h) = history.get(id) {
                let samples: Vec<(i64, f64)> = h
                    .window(i64::MIN, i64::MAX)
                    .into_iter()
                    .map(|s| (s.timestamp_ms, s.value))
                    .collect();
                out.push(((**key).clone(), samples));
            }
        }
        for (key, samples) in &self.restored.series {
            out.push((key.clone(), samples.iter().map(|s| (s.timestamp_ms, s.value)).collect()));
        }
        out
    }

    /// Takes in the series registered since the last call. Entries are only
    /// ever appended (a recorded series becoming sampled changes nothing
    /// here), so this reads the new ones only.
    fn refresh(&mut self, shared: &Shared) {
        let generation = shared.registry.generation();
        if self.generation == Some(generation) {
            return;
        }
        let detection = &shared.detection;
        let removed_now = shared.registry.removed_count();
        if removed_now != self.removed_seen {
            // a removal changes entries in place: read them all again (the
            // detectors of the series still there are kept)
            self.gauges.clear();
            self.keys.clear();
            self.plan.clear();
            self.domains.clear();
            self.removed.clear();
            self.by_name.clear();
            self.ids.clear();
            self.removed_seen = removed_now;
        }
        let seen = self.keys.len();
        shared.registry.with_entries(|entries| {
            for (i, e) in entries.iter().enumerate().skip(seen) {
                let id = SeriesId(u32::try_from(i).expect("fewer than 2^32 series"));
                self.gauges.push(match &e.instrument {
                    Instrument::Recorded(g) | Instrument::Gauge(g) => Some(g.clone()),
                    _ => None,
                });
                self.keys.push(Arc::clone(&e.key));
                let removed = matches!(e.instrument, Instrument::Removed);
                self.removed.push(removed);
                self.domains.push(
                    detection
                        .domains
                        .get(e.key.name())
                        .copied()
                        .unwrap_or_else(|| crate::detect::Domain::of_metric(e.key.name())),
                );
                if removed {
                    self.plan.push(None);
                    continue;
                }
                self.by_name.entry(e.key.name().to_owned()).or_default().push(id);
                self.ids.insert(Arc::clone(&e.key), id);
                self.plan.push(if let Some(choice) = detection.per_metric.get(e.key.name()) {
                    choice.clone()
                } else {
                    // cumulative series (counter totals, observation counts) are not
                    // watched themselves: their rates and quantiles are
                    let cumulative = !matches!(e.instrument, Instrument::Derived { .. })
                        && e.kind != MetricKind::Gauge;
                    if cumulative { None } else { detection.default.clone() }
                });
            }
        });
        self.detectors.resize_with(self.plan.len(), || None);
        for (detector, removed) in self.detectors.iter_mut().zip(&self.removed) {
            if *removed {
                *detector = None;
            }
        }
        self.stale.resize(self.keys.len(), false);
        self.generation = Some(generation);
        if !self.restored.is_empty() {
            self.claim_restored(shared, seen);
        }
    }

    /// Marks the series whose newest sample is older than `cutoff_ms` stale;
    /// returns the stale keys if they changed since the last call.
    fn update_stale(
        &mut self,
        history: &History,
        cutoff_ms: i64,
    ) -> Option<std::collections::HashSet<SeriesKey>> {
        let mut changed = false;
        for (i, stale) in self.stale.iter_mut().enumerate() {
            let id = SeriesId(u32::try_from(i).expect("fewer than 2^32 series"));
            let now_stale =
                !self.removed[i] && history.newest_ms(id).is_some_and(|t| t < cutoff_ms);
            changed |= now_stale != *stale;
            *stale = now_stale;
        }
        changed.then(|| {
            self.stale
                .iter()
                .zip(&self.keys)
                .filter(|(stale, _)| **stale)
                .map(|(_, key)| (**key).clone())
                .collect()
        })
    }

    /// Keeps an appended sample for the sinks (remote write).
    fn tap(&mut self, shared: &Shared, i: usize, sample: Scored) {
        if !shared.sinks.is_empty() {
            self.newest_tap.insert(i, self.taps.len());
            self.taps.push((i, sample));
        }
    }

    /// A value that replaced series `i`'s sample at the same millisecond
    /// replaces it among the kept samples too (once handed over, it stays).
    fn retap(&mut self, i: usize, sample: Sample) {
        if let Some(&at) = self.newest_tap.get(&i)
            && let Some((_, kept)) = self.taps.get_mut(at)
            && kept.sample.timestamp_ms == sample.timestamp_ms
        {
            kept.sample.value = sample.value;
        }
    }

    /// Hands the kept samples to the sinks; never blocks. A series' newest
    /// sample younger than [`SEAL_MS`] stays for the next hand-over (unless
    /// a flush or the shutdown asks for all), so a late value at its
    /// millisecond replaces it before it leaves.
    fn hand_over(&mut self, shared: &Shared) {
        if self.taps.is_empty() {
            return;
        }
        let sealed_before = shared.clock.now_ms().saturating_sub(SEAL_MS);
        let newest = std::mem::take(&mut self.newest_tap);
        let mut kept = Vec::new();
        for (at, (i, sample)) in std::mem::take(&mut self.taps).into_iter().enumerate() {
            if !self.hand_over_all
                && newest.get(&i) == Some(&at)
                && sample.sample.timestamp_ms > sealed_before
            {
                self.newest_tap.insert(i, kept.len());
                kept.push((i, sample));
                continue;
            }
            for sink in &shared.sinks {
                sink.accept(&self.keys[i], sample);
            }
        }
        self.taps = kept;
    }

    /// Pushes one sample into history and, when it is the series' newest,
    /// scores it; says what became of it.
    fn push(
        &mut self,
        shared: &Shared,
        history: &mut History,
        id: SeriesId,
        sample: Sample,
    ) -> Pushed {
        let outcome = history.push(id, sample);
        if outcome == Pushed::Replaced {
            self.retap(id.index(), sample);
        }
        if outcome != Pushed::Appended {
            return outcome;
        }
        let i = id.index();
        let Some(Some(spec)) = self.plan.get(i) else {
            self.tap(shared, i, Scored { sample, score: None, band: None });
            return outcome;
        };
        let detector = self.detectors[i].get_or_insert_with(|| spec.build());
        let domain = self.domains.get(i).copied().unwrap_or_default();
        let band = detector.expected_band().map(|b| domain.clamp_band(b));
        let score = detector.update(sample.timestamp_ms, sample.value);
        if let Some(h) = history.get_mut(id) {
            h.annotate_newest(score, band);
        }
        self.tap(shared, i, Scored { sample, score: Some(score), band });
        if score >= shared.detection.threshold {
            let key = &self.keys[i];
            let mut log = shared.anomalies.lock();
            if log.len() == ANOMALY_LOG {
                log.pop_front();
            }
            log.push_back(Anomaly {
                series: key.to_string(),
                name: key.name().to_owned(),
                labels: key.labels().clone(),
                timestamp: sample.timestamp(),
                value: sample.value,
                score,
                expected_lower: band.map(|b| b.0),
                expected_upper: band.map(|b| b.1),
            });
        }
        outcome
    }
}

/// The alert manager's read access to history, through the worker's cache.
struct EngineView<'a> {
    cache: &'a SeriesCache,
    history: &'a History,
}

impl EngineView<'_> {
    fn window(&self, key: &SeriesKey, since_ms: i64) -> (Option<SeriesId>, Vec<Sample>) {
        let Some(&id) = self.cache.ids.get(key) else { return (None, Vec::new()) };
        let samples =
            self.history.get(id).map(|h| h.window(since_ms, i64::MAX)).unwrap_or_default();
        (Some(id), samples)
    }
}

impl SeriesView for EngineView<'_> {
    fn series_named(&self, name: &str) -> Vec<SeriesKey> {
        let mut keys: Vec<SeriesKey> = self
            .cache
            .by_name
            .get(name)
            .map(|ids| {
                ids.iter()
                    .filter(|id| !self.cache.stale[id.index()])
                    .map(|id| (*self.cache.keys[id.index()]).clone())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(restored) = self.cache.restored.by_name.get(name) {
            keys.extend(restored.iter().cloned());
        }
        keys
    }

    fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
        if let Some(restored) = self.cache.restored.series.get(key) {
            let start = restored.partition_point(|s| s.timestamp_ms < since_ms);
            return restored[start..].to_vec();
        }
        self.window(key, since_ms).1
    }

    fn anomaly_scores(&self, key: &SeriesKey, since_ms: i64) -> Option<Vec<(i64, f64)>> {
        let (Some(id), samples) = self.window(key, since_ms) else { return None };
        self.cache.plan.get(id.index())?.as_ref()?;
        Some(samples.iter().filter_map(|s| Some((s.timestamp_ms, s.anomaly_score?))).collect())
    }
}

/// Most records ingested under one history lock.
const BATCH: usize = 4_096;

/// The tick after one due at `due` that ran until `now`: the next point of the
/// `interval` grid, skipping the ones already past (a tick late by more than an
/// interval is not followed by a burst of catch-up ticks).
fn next_deadline(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(due).as_nanos();
    let step = interval.as_nanos().max(1);
    let skipped = u32::try_from(behind / step).unwrap_or(u32::MAX);
    due.checked_add(interval.saturating_mul(skipped.saturating_add(1))).unwrap_or(now + interval)
}

/// The one collector loop: a tick deadline, the record queue's nudges and control messages.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: Receiver<Control>,
    pub(crate) nudge: Receiver<()>,
    pub(crate) sources: Vec<Box<dyn Source>>,
    pub(crate) collector: Collector,
    pub(crate) readings: Vec<(SeriesId, f64)>,
    pub(crate) batch: Vec<Record>,
    pub(crate) interval: Duration,
    pub(crate) last_nonfinite: u64,
    pub(crate) cache: SeriesCache,
    /// The batch being ingested, so a panic in the middle loses no count.
    pub(crate) tally: Tally,
    /// Most records the current batch takes.
    pub(crate) batch_limit: usize,
    /// Writes the state directory, if there is one.
    pub(crate) persister: Option<crate::persist::Persister>,
}

/// What became of the records of the batch being ingested.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    taken: u64,
    kept: u64,
    dropped: u64,
    coalesced: u64,
    /// `record_at()` samples older than their series' newest.
    late: u64,
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Worker {
    /// Runs until shutdown. Each wakeup does a bounded amount of work: a
    /// drain takes at most what was queued when it started (never "until the
    /// queue is empty", which a fast producer never lets happen) and a
    /// nudged one stops when the tick is due, so the tick, whose deadline is
    /// checked before every wait, runs on time under any ingest load; the
    /// queue absorbs the rest and counts its overflow.
    pub(crate) fn run(mut self) {
        let mut next_tick = Instant::now() + self.interval;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick = next_deadline(next_tick, self.interval, Instant::now());
                continue;
            }
            select! {
                recv(self.nudge) -> r => match r {
                    Ok(()) => {
                        if self.drain(Some(next_tick)) > 0 {
                            self.evaluate_alerts();
                        }
                    }
                    Err(_) => break, // every Monitor is gone
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(done)) => {
                        self.cache.hand_over_all = true;
                        self.drain(None);
                        self.tick();
                        self.cache.hand_over_all = false;
                        let _ = done.send(());
                    }
                    Ok(Control::Evaluate) => {
                        self.drain(None);
                        self.evaluate_alerts();
                    }
                    Ok(Control::Shutdown) | Err(_) => break,
                },
                default(next_tick - now) => {}
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        self.cache.hand_over_all = true;
        self.drain(None);
        self.tick();
        let _ = self.guarded(Self::persist_final);
    }

    /// Ingests the records queued when it starts, and no more (records
    /// arriving meanwhile wait for the next wakeup), stopping early at
    /// `until`; returns how many it took. The queue is first in, first out,
    /// so without `until` this takes everything recorded before the call.
    fn drain(&mut self, until: Option<Instant>) -> usize {
        let mut budget = self.shared.records.len();
        let mut taken = 0;
        while budget > 0 {
            let n = self.ingest_queued(budget.min(BATCH));
            if n == 0 {
                break;
            }
            taken += n;
            budget -= n;
            if until.is_some_and(|t| Instant::now() >= t) {
                break;
            }
        }
        taken
    }

    /// Runs one step of the worker, catching a panic in it (a clock, source,
    /// detector or rule that panics): it is counted in
    /// `watchpost_worker_panics_total`, reported by `health()`, and the
    /// worker goes on with the next step.
    /// Returns whether it panicked.
    fn guarded(&mut self, step: fn(&mut Self)) -> bool {
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| step(self))) else { return false };
        let m = &self.shared.metrics;
        m.worker_panics.inc();
        *m.last_worker_panic.lock() = Some(panic_message(&*payload));
        self.batch.clear();
        self.readings.clear();
        true
    }

    /// Evaluates every alert rule at the clock's current time and hands the
    /// notifications to the dispatcher (which never blocks; overflow is counted).
    fn evaluate_alerts(&mut self) {
        let _ = self.guarded(Self::evaluate_alerts_now);
    }

    fn evaluate_alerts_now(&mut self) {
        let shared = &*self.shared;
        self.cache.refresh(shared);
        let mut due = None;
        let notifications = {
            let history = shared.history.read();
            let now_ms = shared.clock.now_ms();
            let stale = shared
                .staleness_ms
                .and_then(|h| self.cache.update_stale(&history, now_ms.saturating_sub(h)));
            let mut alerts = shared.alerts.lock();
            if let Some(stale) = stale {
                alerts.set_stale(stale);
            }
            let view = EngineView { cache: &self.cache, history: &history };
            let out = alerts.evaluate(now_ms, &view);
            #[allow(clippy::cast_precision_loss)]
            shared.metrics.alerts_firing.set(alerts.firing_count() as f64);
            if let Some(p) = self.persister.as_mut() {
                due = p.alerts_due(&alerts, now_ms);
            }
            out
        };
        if !notifications.is_empty() {
            shared.notify.send_all(notifications);
        }
        // written after the notifications are handed over, outside the locks
        if let (Some(payload), Some(p)) = (due, self.persister.as_mut()) {
            p.write_alerts(&payload);
        }
    }

    /// Ingests up to `limit` queued records under one lock; returns how many it took.
    fn ingest_queued(&mut self, limit: usize) -> usize {
        self.batch_limit = limit;
        let panicked = self.guarded(Self::ingest_batch);
        let t = std::mem::take(&mut self.tally);
        let m = &self.shared.metrics;
        m.ingested.add(t.kept);
        m.coalesced.add(t.coalesced);
        m.out_of_order.add(t.late);
        // records of a batch cut short by a panic were not all ingested: dropped
        let unfinished =
            if panicked { t.taken.saturating_sub(t.kept + t.dropped + t.late) } else { 0 };
        m.dropped.add(t.dropped + unfinished);
        usize::try_from(t.taken).unwrap_or(usize::MAX)
    }

    fn ingest_batch(&mut self) {
        while self.batch.len() < self.batch_limit {
            match self.shared.records.pop() {
                Some(r) => self.batch.push(r),
                None => break,
            }
        }
        if self.batch.is_empty() {
            return;
        }
        self.tally.taken = self.batch.len() as u64;
        let shared = &*self.shared;
        self.cache.refresh(shared);
        let mut history = shared.history.write();
        for r in self.batch.drain(..) {
            let i = r.id.index();
            let t = &mut self.tally;
            if self.cache.removed.get(i).copied().unwrap_or(false) {
                t.dropped += 1;
                continue;
            }
            let newest = history.newest_ms(r.id);
            // record_at: a sample older than the newest is dropped, never inserted
            if r.explicit && newest.is_some_and(|n| n > r.timestamp_ms) {
                t.late += 1;
                continue;
            }
            let sample = Sample::new(r.timestamp_ms, r.value);
            let kept = match self.cache.push(shared, &mut history, r.id, sample) {
                Pushed::Dropped => {
                    t.dropped += 1;
                    false
                }
                // history keeps one value per series and millisecond: the
                // earlier observation is overwritten, and that is counted
                Pushed::Replaced => {
                    t.kept += 1;
                    t.coalesced += 1;
                    true
                }
                Pushed::Appended | Pushed::Inserted => {
                    t.kept += 1;
                    true
                }
            };
            // Recorded series also show their latest value through their gauge.
            if kept
                && newest.is_none_or(|n| n <= r.timestamp_ms)
                && let Some(Some(g)) = self.cache.gauges.get(i)
            {
                g.set(r.value);
            }
        }
        self.cache.hand_over(shared);
    }

    /// Samples every instrument, evaluates the alert rules, then ingests the queue.
    ///
    /// Sampling and evaluation come first so that they keep the interval
    /// under any ingest load; the drain that follows is bounded by a quarter
    /// of the interval (what it leaves waits in the queue), and the rules are
    /// evaluated again when it took anything.
    fn tick(&mut self) {
        let _ = self.guarded(Self::sample);
        self.evaluate_alerts();
        let _ = self.guarded(Self::snapshot_if_due);
        if self.drain(Some(Instant::now() + self.interval / 4)) > 0 {
            self.evaluate_alerts();
        }
    }

    /// Runs the sources, samples every instrument and appends the readings to history.
    fn sample(&mut self) {
        let shared = Arc::clone(&self.shared);
        let started = shared.clock.now_ms();
        let now = ms_to_datetime(started);
        for s in &mut self.sources {
            if catch_unwind(AssertUnwindSafe(|| s.collect(now))).is_err() {
                shared.metrics.source_errors.inc();
            }
        }
        let m = &shared.metrics;
        #[allow(clippy::cast_precision_loss)]
        {
            m.queue_depth.set(shared.records.len() as f64);
            m.series.set(shared.registry.len() as f64);
            m.rejected.set(shared.registry.rejected_series() as f64);
        }
        // Handles count their own non-finite drops; publish the total as a counter.
        let nonfinite = shared.registry.nonfinite_total() + m.record_nonfinite.get();
        if nonfinite > self.last_nonfinite {
            m.nonfinite.add(nonfinite - self.last_nonfinite);
            self.last_nonfinite = nonfinite;
        }
        self.readings.clear();
        if self.collector.collect(
            &shared.registry,
            started,
            shared.summary_window_ms,
            &mut self.readings,
        ) {
            m.clock_jumps.inc();
        }
        self.cache.refresh(&shared);
        let mut kept = 0;
        {
            let mut history = shared.history.write();
            for (id, value) in self.readings.drain(..) {
                if value.is_finite()
                    && self
                        .cache
                        .push(&shared, &mut history, id, Sample::new(started, value))
                        .kept()
                {
                    kept += 1;
                }
            }
            self.cache.hand_over(&shared);
        }
        m.ingested.add(kept);
        #[allow(clippy::cast_precision_loss)]
        m.collection_seconds
            .set(shared.clock.now_ms().saturating_sub(started).max(0) as f64 / 1000.0);
    }
}
