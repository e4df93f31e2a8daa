//! The sender: a bounded queue per shard fed by the worker without
//! blocking, and one thread per shard that batches, encodes, posts and
//! retries.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, select};
use parking_lot::Mutex;

use super::RemoteWriteConfig;
use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use crate::clock::Clock;
use crate::dashboard::RemoteWriteStatus;
use crate::engine::sink::{SampleSink, Scored};
use crate::error::{Error, Result};
use crate::key::SeriesKey;
use crate::metric::{Counter, Gauge};
use crate::registry::Registry;

/// How often an idle shard wakes to check its batch's deadline.
const TICK: Duration = Duration::from_millis(100);

/// Which series of a key a queued sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Value,
    Score,
    Lower,
    Upper,
}

impl Part {
    fn suffix(self) -> &'static str {
        match self {
            Part::Value => "",
            Part::Score => ":anomaly_score",
            Part::Lower => ":expected_lower",
            Part::Upper => ":expected_upper",
        }
    }
}

/// One queued sample.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) key: Arc<SeriesKey>,
    pub(crate) part: Part,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
    /// Counts the sample among its series' samples still queued or in flight
    /// until it is dropped (sent, refused or dropped alike).
    _ticket: Ticket,
    /// For a series that just moved to this shard: its samples still queued
    /// or in flight on the shard it left. This shard holds the sample back
    /// until they are gone, so the series is never sent out of order.
    after: Option<Arc<AtomicU64>>,
}

impl Item {
    /// Whether samples of its series sent by another shard are still pending.
    fn must_wait(&self) -> bool {
        self.after.as_ref().is_some_and(|a| a.load(Ordering::Acquire) > 0)
    }
}

/// One unit of a series' samples in flight; released when dropped.
#[derive(Debug)]
struct Ticket(Arc<AtomicU64>);

impl Ticket {
    fn new(count: &Arc<AtomicU64>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Ticket(Arc::clone(count))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a series' samples go, and how many of them are queued or in
/// flight there: a series moves to another shard only when none is.
struct Route {
    shard: usize,
    in_flight: Arc<AtomicU64>,
    /// The in-flight count on the shard the series left, until it is 0.
    previous: Option<Arc<AtomicU64>>,
}

enum Control {
    /// Send everything queued now, then answer.
    Flush(Sender<()>),
    /// Deliver what can be delivered before the shutdown deadline, then exit.
    Stop,
}

/// The sender's counters, registered as watchpost's own metrics.
#[derive(Clone)]
struct Counters {
    produced: Counter,
    sent: Counter,
    failed: Counter,
    retried: Counter,
    dropped: Counter,
    pending: Gauge,
}

impl Counters {
    fn register(r: &Registry) -> Result<Self> {
        let c = Counters {
            produced: r.counter("watchpost_remote_write_samples_total", &[])?,
            sent: r.counter("watchpost_remote_write_samples_sent_total", &[])?,
            failed: r.counter("watchpost_remote_write_samples_failed_total", &[])?,
            retried: r.counter("watchpost_remote_write_samples_retried_total", &[])?,
            dropped: r.counter("watchpost_remote_write_samples_dropped_total", &[])?,
            pending: r.gauge("watchpost_remote_write_pending_samples", &[])?,
        };
        for (name, help) in [
            ("watchpost_remote_write_samples_total", "Samples handed to the remote-write sender."),
            (
                "watchpost_remote_write_samples_sent_total",
                "Samples the remote-write receiver accepted.",
            ),
            (
                "watchpost_remote_write_samples_failed_total",
                "Samples in requests the receiver refused with a 4xx (not retried).",
            ),
            (
                "watchpost_remote_write_samples_retried_total",
                "Samples sent again after a 5xx, a 429 or a connection error.",
            ),
            (
                "watchpost_remote_write_samples_dropped_total",
                "Samples dropped by remote write: oldest first on a full queue, and at shutdown.",
            ),
            (
                "watchpost_remote_write_pending_samples",
                "Samples queued for remote write or in a request not yet answered.",
            ),
        ] {
            r.describe(name, help)?;
        }
        Ok(c)
    }

    fn pending(&self) -> u64 {
        let done = self.sent.get() + self.failed.get() + self.dropped.get();
        self.produced.get().saturating_sub(done)
    }

    fn publish_pending(&self) {
        #[allow(clippy::cast_precision_loss)]
        self.pending.set(self.pending() as f64);
    }
}

/// What the shards share.
struct Inner {
    config: RemoteWriteConfig,
    clock: Arc<dyn Clock>,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    /// Batches dropped on a refusal, for the log's back-off.
    refused: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn error(&self, why: String) {
        *self.last_error.lock() = Some(why);
    }

    /// Keeps the reason of a dropped batch and logs it on stderr: the 1st,
    /// 2nd, 4th, 8th … refusal, so a receiver that refuses everything
    /// cannot flood the log.
    fn refused(&self, why: String) {
        let n = self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            eprintln!(
                "watchpost: warning: remote write to {}: {why} ({n} batch{} dropped so far)",
                super::redact_url(&self.config.url),
                if n == 1 { "" } else { "es" }
            );
        }
        self.error(why);
    }
}

/// The worker's side of one shard.
struct ShardQueue {
    tx: Sender<Item>,
    /// A receiver too, to drop the oldest sample when the queue is full.
    oldest: Receiver<Item>,
    control: Sender<Control>,
}

/// The remote-write sink: queues on the worker, sends on its shard threads.
pub(crate) struct Writer {
    inner: Arc<Inner>,
    shards: Vec<ShardQueue>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    hasher: foldhash::fast::FixedState,
    /// Shards in use: from `shards` up to `max_shards`.
    active: AtomicUsize,
    /// Each series' shard (the worker is the only caller of `accept`).
    routes: Mutex<HashMap<Arc<SeriesKey>, Route>>,
}

impl Writer {
    /// Registers the counters and starts one thread per shard.
    pub(crate) fn start(
        config: RemoteWriteConfig,
        registry: &Registry,
        clock: &Arc<dyn Clock>,
    ) -> Result<Arc<Writer>> {
        config.validate()?;
        let counters = Counters::register(registry)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let (shards_n, first) = (config.max_shards, config.shards);
        let capacity = config.queue_capacity;
        let inner = Arc::new(Inner {
            config,
            clock: Arc::clone(clock),
            counters,
            last_error: Mutex::new(None),
            refused: std::sync::atomic::AtomicU64::new(0),
        });
        let mut shards = Vec::with_capacity(shards_n);
        let mut threads = Vec::with_capacity(shards_n);
        for i in 0..shards_n {
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            let (control_tx, control_rx) = crossbeam_channel::unbounded();
            let shard = Shard {
                inner: Arc::clone(&inner),
                agent: agent.clone(),
                data: rx.clone(),
                control: control_rx,
                pending: Vec::new(),
                deferred: std::collections::VecDeque::new(),
                started_ms: 0,
                labels: HashMap::new(),
                held: Vec::new(),
                stop_at: None,
                raw: Vec::new(),
                body: Vec::new(),
            };
            let spawned = thread::Builder::new()
                .name(format!("watchpost-remote-write-{i}"))
                .spawn(move || shard.run());
            match spawned {
                Ok(join) => threads.push(join),
                Err(e) => {
                    for s in &shards {
                        let s: &ShardQueue = s;
                        let _ = s.control.send(Control::Stop);
                    }
                    drop(shards);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::Spawn(e));
                }
            }
            shards.push(ShardQueue { tx, oldest: rx, control: control_tx });
        }
        Ok(Arc::new(Writer {
            inner,
            shards,
            threads: Mutex::new(threads),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
            active: AtomicUsize::new(first),
            routes: Mutex::new(HashMap::new()),
        }))
    }

    /// The shard `key` belongs to among the `active` shards in use.
    fn shard_of(&self, key: &SeriesKey, active: usize) -> usize {
        if active <= 1 {
            return 0;
        }
        usize::try_from(self.hasher.hash_one(key) % active as u64).unwrap_or(0)
    }

    /// The shard for `key`'s next samples, their in-flight count, and the
    /// in-flight count they wait for. A series follows its hash among the
    /// shards in use now; when that moves it, the new shard holds its samples
    /// back until the old one has sent (or dropped) those it had, so the
    /// series is never reordered. One move at a time per series.
    fn route(&self, key: &Arc<SeriesKey>) -> (usize, Arc<AtomicU64>, Option<Arc<AtomicU64>>) {
        let desired = self.shard_of(key, self.active.load(Ordering::Relaxed));
        let mut routes = self.routes.lock();
        let route = routes.entry(Arc::clone(key)).or_insert_with(|| Route {
            shard: desired,
            in_flight: Arc::new(AtomicU64::new(0)),
            previous: None,
        });
        if route.previous.as_ref().is_some_and(|p| p.load(Ordering::Acquire) == 0) {
            route.previous = None;
        }
        if route.shard != desired && route.previous.is_none() {
            if route.in_flight.load(Ordering::Acquire) > 0 {
                let fresh = Arc::new(AtomicU64::new(0));
                route.previous = Some(std::mem::replace(&mut route.in_flight, fresh));
            }
            route.shard = desired;
        }
        (route.shard, Arc::clone(&route.in_flight), route.previous.clone())
    }

    /// One more shard takes part when `queue`'s is more than half full.
    fn grow_if_backed_up(&self, queue: &ShardQueue) {
        let active = self.active.load(Ordering::Relaxed);
        if active < self.shards.len() && queue.tx.len() > self.inner.config.queue_capacity / 2 {
            self.active.store(active + 1, Ordering::Relaxed);
        }
    }

    /// Queues one sample; on a full queue the oldest sample goes (counted).
    fn enqueue(&self, queue: &ShardQueue, item: Item) {
        let c = &self.inner.counters;
        c.produced.inc();
        let mut item = item;
        for _ in 0..2 {
            match queue.tx.try_send(item) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    if queue.oldest.try_recv().is_ok() {
                        c.dropped.inc();
                    }
                    item = back;
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        c.dropped.inc();
    }
}

impl SampleSink for Writer {
    fn accept(&self, key: &Arc<SeriesKey>, s: Scored) {
        if !self.inner.config.selects(key) {
            return;
        }
        let (shard, in_flight, after) = self.route(key);
        let queue = &self.shards[shard];
        let ts = s.sample.timestamp_ms;
        let item = |part, value| Item {
            key: Arc::clone(key),
            part,
            timestamp_ms: ts,
            value,
            _ticket: Ticket::new(&in_flight),
            after: after.clone(),
        };
        self.enqueue(queue, item(Part::Value, s.sample.value));
        if self.inner.config.anomaly_series {
            if let Some(score) = s.score {
                self.enqueue(queue, item(Part::Score, score));
            }
            if let Some((lower, upper)) = s.band {
                self.enqueue(queue, item(Part::Lower, lower));
                self.enqueue(queue, item(Part::Upper, upper));
            }
        }
        self.grow_if_backed_up(queue);
    }

    fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let acks: Vec<_> = self
            .shards
            .iter()
            .filter_map(|s| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                s.control.send(Control::Flush(tx)).ok().map(|()| rx)
            })
            .collect();
        for ack in acks {
            let _ = ack.recv_deadline(deadline);
        }
        self.inner.counters.publish_pending();
    }

    fn shutdown(&self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return;
        }
        for s in &self.shards {
            let _ = s.control.send(Control::Stop);
        }
        for t in threads {
            let _ = t.join();
        }
        // anything the worker queued after the shards left
        for s in &self.shards {
            while s.oldest.try_recv().is_ok() {
                self.inner.counters.dropped.inc();
            }
        }
        self.inner.counters.publish_pending();
    }

    fn status(&self) -> RemoteWriteStatus {
        let c = &self.inner.counters;
        RemoteWriteStatus {
            url: super::redact_url(&self.inner.config.url).to_owned(),
            shards: self.active.load(Ordering::Relaxed),
            produced: c.produced.get(),
            sent: c.sent.get(),
            failed: c.failed.get(),
            retried: c.retried.get(),
            dropped: c.dropped.get(),
            pending: c.pending(),
            last_error: self.inner.last_error.lock().clone(),
        }
    }
}

/// Why a request failed.
enum Failure {
    /// 5xx, 429 or no answer: try again, after `Retry-After` if given.
    Retry(String, Option<Duration>),
    /// Any other status: the batch is dropped.
    Refused(String),
}

/// One shard's thread.
struct Shard {
    inner: Arc<Inner>,
    agent: ureq::Agent,
    data: Receiver<Item>,
    control: Receiver<Control>,
    /// The batch being filled.
    pending: Vec<Item>,
    /// Samples of series that moved here, held until the shard they left
    /// has sent theirs (see [`Item::must_wait`]), oldest first.
    deferred: std::collections::VecDeque<Item>,
    /// The clock's time when the batch's first sample arrived.
    started_ms: i64,
    /// Label sets by series, built once.
    labels: HashMap<(Arc<SeriesKey>, Part), Vec<Label>>,
    /// Flushes waiting for this shard.
    held: Vec<Sender<()>>,
    /// Set by `Stop`: give up retrying after this instant.
    stop_at: Option<Instant>,
    raw: Vec<u8>,
    body: Vec<u8>,
}

impl Shard {
    fn run(mut self) {
        loop {
            if self.stop_at.is_some() {
                return self.finish();
            }
            select! {
                recv(self.control) -> c => match c {
                    Ok(Control::Flush(ack)) => {
                        self.held.push(ack);
                        self.drain();
                        self.release();
                    }
                    Ok(Control::Stop) | Err(_) => self.note_stop(),
                },
                recv(self.data) -> item => if let Ok(item) = item {
                    self.push(item);
                    if self.pending.len() >= self.inner.config.max_samples_per_send {
                        self.send_pending();
                    }
                },
                default(TICK) => {}
            }
            self.release_deferred();
            let deadline_ms = super::duration_ms(self.inner.config.batch_send_deadline);
            if !self.pending.is_empty()
                && self.inner.clock.now_ms().saturating_sub(self.started_ms) >= deadline_ms
            {
                self.send_pending();
            }
            self.inner.counters.publish_pending();
        }
    }

    /// After `Stop` (seen here or while waiting to retry): sends what is
    /// queued until the shutdown deadline, then drops and counts the rest.
    fn finish(mut self) {
        self.drain();
        self.release();
        let left = (self.pending.len() + self.deferred.len() + self.data.try_iter().count()) as u64;
        self.inner.counters.dropped.add(left);
        self.inner.counters.publish_pending();
    }

    fn push(&mut self, item: Item) {
        self.release_deferred();
        let behind_held = item.after.as_ref().is_some_and(|a| {
            self.deferred.iter().any(|d| d.after.as_ref().is_some_and(|b| Arc::ptr_eq(a, b)))
        });
        if behind_held || item.must_wait() {
            // held samples are bounded like the queue: past it the oldest go
            if self.deferred.len() >= self.inner.config.queue_capacity
                && self.deferred.pop_front().is_some()
            {
                self.inner.counters.dropped.inc();
            }
            self.deferred.push_back(item);
            return;
        }
        self.add(item);
    }

    fn add(&mut self, item: Item) {
        if self.pending.is_empty() {
            self.started_ms = self.inner.clock.now_ms();
        }
        self.pending.push(item);
    }

    /// Moves the held samples of every series whose old shard is done into
    /// the batch, in order. Whether a series may go is read once per pass,
    /// so its samples go together or wait together; other series' samples
    /// never wait behind them.
    fn release_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let mut verdict: Vec<(*const AtomicU64, bool)> = Vec::new();
        let mut still = std::collections::VecDeque::with_capacity(self.deferred.len());
        for item in std::mem::take(&mut self.deferred) {
            let wait = match &item.after {
                None => false,
                Some(a) => {
                    let ptr = Arc::as_ptr(a);
                    if let Some(&(_, w)) = verdict.iter().find(|(p, _)| *p == ptr) {
                        w
                    } else {
                        let w = a.load(Ordering::Acquire) > 0;
                        verdict.push((ptr, w));
                        w
                    }
                }
            };
            if wait {
                still.push_back(item);
            } else {
                self.add(item);
            }
        }
        self.deferred = still;
    }

    /// Sends everything queued, in batches, until the queue is empty (or
    /// the shutdown deadline passes).
    fn drain(&mut self) {
        // held samples wait for another shard: give it a moment (bounded)
        let wait_until = Instant::now() + Duration::from_millis(200);
        loop {
            self.release_deferred();
            if self.pending.is_empty() && !self.deferred.is_empty() && Instant::now() < wait_until {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            while self.pending.len() < self.inner.config.max_samples_per_send {
                match self.data.try_recv() {
                    Ok(item) => self.push(item),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if self.pending.is_empty() || self.past_stop() {
                return;
            }
            self.send_pending();
        }
    }

    fn release(&mut self) {
        for ack in self.held.drain(..) {
            let _ = ack.send(());
        }
    }

    fn note_stop(&mut self) {
        if self.stop_at.is_none() {
            self.stop_at = Some(Instant::now() + self.inner.config.shutdown_timeout);
        }
    }

    fn past_stop(&self) -> bool {
        self.stop_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Sends the batch, retrying recoverable failures with capped
    /// exponential backoff (or the receiver's `Retry-After`, capped too)
    /// until it is delivered, refused, or the shutdown deadline passes.
    fn send_pending(&mut self) {
        let items = std::mem::take(&mut self.pending);
        if items.is_empty() {
            return;
        }
        let n = items.len() as u64;
        let request = self.request(&items);
        if let Err(e) = super::proto::encode_into(&request, &mut self.raw, &mut self.body) {
            self.inner.counters.failed.add(n);
            self.inner.refused(format!("dropped a batch of {n} samples: {e}"));
            return;
        }
        let c = self.inner.counters.clone();
        let (min_backoff, max_backoff) =
            (self.inner.config.min_backoff, self.inner.config.max_backoff);
        let mut backoff = min_backoff;
        loop {
            match self.post() {
                Ok(()) => {
                    c.sent.add(n);
                    return;
                }
                Err(Failure::Refused(why)) => {
                    c.failed.add(n);
                    self.inner.refused(format!("dropped a batch of {n} samples: {why}"));
                    return;
                }
                Err(Failure::Retry(why, after)) => {
                    self.inner.error(why);
                    let wait = after.unwrap_or(backoff).min(max_backoff);
                    backoff = (backoff * 2).min(max_backoff);
                    if !self.wait(wait) {
                        c.dropped.add(n);
                        return;
                    }
                    c.retried.add(n);
                }
            }
        }
    }

    /// Waits `d` before a retry, answering flushes at once (the receiver is
    /// failing: they cannot wait for it) and noting a stop. False when the
    /// shutdown deadline passed.
    fn wait(&mut self, d: Duration) -> bool {
        self.release();
        let mut until = Instant::now() + d;
        loop {
            if let Some(stop) = self.stop_at {
                if Instant::now() >= stop {
                    return false;
                }
                until = until.min(stop);
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            match self.control.recv_timeout(until - now) {
                Ok(Control::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Ok(Control::Stop) => self.note_stop(),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    // the writer is gone: nothing can arrive; sleep out the wait
                    self.note_stop();
                    let end = self.stop_at.map_or(until, |stop| stop.min(until));
                    thread::sleep(end.saturating_duration_since(Instant::now()));
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    /// The request for `items`: one time series per series and part, its
    /// samples in queue order.
    fn request(&mut self, items: &[Item]) -> WriteRequest {
        let mut index: HashMap<(*const SeriesKey, Part), usize> = HashMap::new();
        let mut timeseries: Vec<TimeSeries> = Vec::new();
        if self.labels.len() > 65_536 {
            self.labels.clear();
        }
        for item in items {
            let slot = *index.entry((Arc::as_ptr(&item.key), item.part)).or_insert_with(|| {
                let labels = self
                    .labels
                    .entry((Arc::clone(&item.key), item.part))
                    .or_insert_with(|| self.inner.config.label_set(&item.key, item.part.suffix()))
                    .clone();
                timeseries.push(TimeSeries { labels, samples: Vec::new() });
                timeseries.len() - 1
            });
            timeseries[slot]
                .samples
                .push(Sample { value: item.value, timestamp: item.timestamp_ms });
        }
        WriteRequest { timeseries, metadata: Vec::new() }
    }

    /// One POST of the encoded body.
    fn post(&self) -> std::result::Result<(), Failure> {
        let cfg = &self.inner.config;
        let mut request = self
            .agent
            .post(&cfg.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(auth) = &cfg.authorization {
            request = request.header("Authorization", auth.0.as_str());
        }
        let target = super::redact_url(&cfg.url);
        let mut response = request
            .send(self.body.as_slice())
            .map_err(|e| Failure::Retry(format!("POST {target}: {e}"), None))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut text = String::new();
        let _ = response.body_mut().as_reader().take(4 * 1024).read_to_string(&mut text);
        let why = format!("POST {target}: status {status}: {}", text.trim());
        if status >= 500 || status == 429 {
            Err(Failure::Retry(why, retry_after))
        } else {
            Err(Failure::Refused(why))
        }
    }
}
