use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, select};

use super::{Control, Record, Shared};
use crate::clock::ms_to_datetime;
use crate::history::Sample;
use crate::key::SeriesId;
use crate::registry::{Collector, Instrument};
use crate::source::Source;

/// Most records ingested under one history lock.
const BATCH: usize = 4_096;

/// The one collector loop: `select!` over the ticker, the record queue and control messages.
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
    /// Gauges of the series `record()` writes to, by series index; refreshed
    /// when the registry changes, so ingesting takes no registry lock.
    pub(crate) gauges: Vec<Option<crate::metric::Gauge>>,
    pub(crate) gauges_generation: Option<u64>,
}

impl Worker {
    pub(crate) fn run(mut self) {
        let ticker = crossbeam_channel::tick(self.interval);
        loop {
            select! {
                recv(ticker) -> _ => self.tick(),
                recv(self.nudge) -> r => match r {
                    Ok(()) => self.drain(),
                    Err(_) => break, // every Monitor is gone
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(done)) => {
                        self.drain();
                        self.tick();
                        let _ = done.send(());
                    }
                    Ok(Control::Shutdown) | Err(_) => break,
                },
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        self.drain();
        self.tick();
    }

    /// Ingests everything in the record queue.
    fn drain(&mut self) {
        loop {
            self.ingest_queued();
            if self.shared.records.is_empty() {
                break;
            }
        }
    }

    /// Ingests up to `BATCH` queued records under one lock.
    fn ingest_queued(&mut self) {
        while self.batch.len() < BATCH {
            match self.shared.records.pop() {
                Some(r) => self.batch.push(r),
                None => break,
            }
        }
        if self.batch.is_empty() {
            return;
        }
        let shared = &*self.shared;
        let generation = shared.registry.generation();
        if self.gauges_generation != Some(generation) {
            self.gauges = shared.registry.with_entries(|entries| {
                entries
                    .iter()
                    .map(|e| match &e.instrument {
                        Instrument::Recorded(g) | Instrument::Gauge(g) => Some(g.clone()),
                        _ => None,
                    })
                    .collect()
            });
            self.gauges_generation = Some(generation);
        }
        // Recorded series also show their latest value through their gauge.
        for r in &self.batch {
            if let Some(Some(g)) = self.gauges.get(r.id.index()) {
                g.set(r.value);
            }
        }
        let (mut kept, mut dropped) = (0, 0);
        {
            let mut history = shared.history.write();
            for r in self.batch.drain(..) {
                if history.push(r.id, Sample::new(r.timestamp_ms, r.value)) {
                    kept += 1;
                } else {
                    dropped += 1;
                }
            }
        }
        shared.metrics.ingested.add(kept);
        shared.metrics.dropped.add(dropped);
    }

    /// Runs the sources, samples every instrument and appends the readings to history.
    fn tick(&mut self) {
        self.drain();
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
        self.collector.collect(
            &shared.registry,
            started,
            shared.summary_window_ms,
            &mut self.readings,
        );
        let mut kept = 0;
        {
            let mut history = shared.history.write();
            for (id, value) in self.readings.drain(..) {
                if value.is_finite() && history.push(id, Sample::new(started, value)) {
                    kept += 1;
                }
            }
        }
        m.ingested.add(kept);
        #[allow(clippy::cast_precision_loss)]
        m.collection_seconds.set((shared.clock.now_ms() - started).max(0) as f64 / 1000.0);
    }
}
