//! Bounded per-series history: one ring buffer of samples per series.

use std::fmt;

use chrono::{DateTime, Utc};
use ringbuffer::{AllocRingBuffer, RingBuffer};
use serde::{Deserialize, Serialize};

use crate::clock::ms_to_datetime;
use crate::key::SeriesId;

#[cfg(test)]
mod model_tests;
mod stored;

use stored::Annotation;
pub(crate) use stored::Stored;

/// The largest history capacity (samples per series) an engine accepts: 1 048 576 (2^20).
///
/// A series' ring buffer is allocated whole when the series gets its first
/// sample, with room for the capacity rounded up to a power of two, at 12
/// bytes a sample, plus 8 bytes a sample for the annotations of a series
/// with a detector: 12 to 20 MiB per series at this maximum (4 MiB more
/// while the samples a series holds span more than 49.7 days). Enough for a
/// week of one sample a second.
///
/// # Examples
///
/// ```
/// let err = watchpost::Engine::builder()
///     .without_system_source()
///     .history_capacity(watchpost::MAX_HISTORY_CAPACITY + 1)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "invalid history_capacity: must be at most 1048576, got 1048577");
/// ```
pub const MAX_HISTORY_CAPACITY: usize = 1 << 20;

/// One timestamped value of a series.
///
/// # Examples
///
/// ```
/// let s = watchpost::Sample::new(1_000, 2.5);
/// assert_eq!(s.timestamp().timestamp(), 1);
/// assert_eq!(s.value, 2.5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (always finite).
    pub value: f64,
    /// The anomaly detector's score in `[0, 1]`, where the series has a
    /// detector (history keeps it in steps of 1/10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_score: Option<f64>,
    /// The band (lower, upper) the detector expected this value in, once it
    /// has learnt one (history keeps the lower edge as an `f32` and the width
    /// to 2^-8 of itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_band: Option<(f64, f64)>,
}

impl Sample {
    /// A sample at `timestamp_ms` milliseconds since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::Sample::new(5, 1.0).timestamp_ms, 5);
    /// ```
    pub fn new(timestamp_ms: i64, value: f64) -> Self {
        Sample { timestamp_ms, value, anomaly_score: None, expected_band: None }
    }

    /// The timestamp as a `DateTime`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = watchpost::Sample::new(0, 1.0);
    /// assert_eq!(s.timestamp().to_rfc3339(), "1970-01-01T00:00:00+00:00");
    /// ```
    pub fn timestamp(&self) -> DateTime<Utc> {
        ms_to_datetime(self.timestamp_ms)
    }
}

/// What [`SeriesHistory::push`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// It is the new newest sample.
    Appended,
    /// It replaced a sample with the same timestamp.
    Replaced,
    /// It was older than the newest and went in its place.
    Inserted,
    /// It was older than everything a full buffer keeps.
    Dropped,
}

impl Pushed {
    pub(crate) fn kept(self) -> bool {
        self != Pushed::Dropped
    }
}

/// The high 32 bits of the timestamp offsets of a series whose samples span
/// more than `u32::MAX` ms, in a ring in step with the samples.
struct Wide {
    highs: AllocRingBuffer<u32>,
}

/// The history of one series: newest `capacity` samples, optionally no older than `max_age_ms`.
///
/// Samples are 12 bytes in the ring (see `Stored`): the value, and the
/// timestamp as a 32-bit offset in milliseconds from the series' base, a
/// time at or before its oldest sample. When an offset would not fit, the
/// ring is re-based on its oldest sample (one pass over it, about every 49.7
/// days of a regular series); when even that does not fit (the samples held
/// span more than 49.7 days), a side ring keeps the high 32 bits of every
/// offset until they fit again, so any `i64` timestamp reads back exactly.
/// Passes over the whole ring are at least `len` pushes apart, so a push is
/// amortised O(1) whatever the timestamps.
///
/// The detector's annotations (score and expected band, 8 bytes, see
/// `Annotation`), which only series with a detector have, are kept in a
/// second ring of the same capacity in step with the first, allocated when
/// the first annotation arrives.
pub(crate) struct SeriesHistory {
    ring: AllocRingBuffer<Stored>,
    /// Every offset counts from here: at or before the oldest sample.
    base_ms: i64,
    /// Pushes since the last pass over the whole ring (re-basing, widening).
    since_pass: u32,
    wide: Option<Box<Wide>>,
    annotations: Option<AllocRingBuffer<Annotation>>,
    max_age_ms: Option<i64>,
}

/// The low and high halves of an offset.
#[allow(clippy::cast_possible_truncation)]
fn split(offset: u64) -> (u32, u32) {
    (offset as u32, (offset >> 32) as u32)
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

impl SeriesHistory {
    /// A history of `capacity` samples, clamped to `1..=MAX_HISTORY_CAPACITY`
    /// (the builder rejects anything outside): `AllocRingBuffer::new` neither
    /// checks its allocation nor its power-of-two rounding, so no other value
    /// may reach it.
    pub(crate) fn new(capacity: usize, max_age_ms: Option<i64>) -> Self {
        let capacity = capacity.clamp(1, MAX_HISTORY_CAPACITY);
        SeriesHistory {
            ring: AllocRingBuffer::new(capacity),
            base_ms: 0,
            since_pass: 0,
            wide: None,
            annotations: None,
            max_age_ms,
        }
    }

    /// The offset of `t` from the base; `None` before it.
    #[allow(clippy::cast_sign_loss)]
    fn offset_of(&self, t: i64) -> Option<u64> {
        // t - base is in [0, 2^64): exact in wrapping arithmetic
        (t >= self.base_ms).then(|| t.wrapping_sub(self.base_ms) as u64)
    }

    #[allow(clippy::cast_possible_wrap)]
    fn time_of(&self, offset: u64) -> i64 {
        // the inverse of `offset_of`
        self.base_ms.wrapping_add(offset as i64)
    }

    /// The offset of the `i`th sample held, oldest first.
    fn offset_at(&self, i: usize) -> Option<u64> {
        let low = self.ring.get(i)?.offset();
        let high = self.wide.as_ref().and_then(|w| w.highs.get(i).copied()).unwrap_or(0);
        Some(join(low, high))
    }

    fn time_at(&self, i: usize) -> Option<i64> {
        self.offset_at(i).map(|o| self.time_of(o))
    }

    /// Adds a sample, keeping time order. A sample at the same timestamp as
    /// the newest replaces its value; an older one is inserted in place (or
    /// dropped if it is older than everything a full buffer holds).
    pub(crate) fn push(&mut self, s: Sample) -> Pushed {
        let outcome = match self.newest_ms() {
            Some(last) if last == s.timestamp_ms => {
                // keep the annotation the first value at this instant got
                if let Some(last) = self.ring.back_mut() {
                    last.set_value(s.value);
                }
                Pushed::Replaced
            }
            Some(last) if last > s.timestamp_ms => self.insert_older(s),
            _ => {
                self.enqueue(s);
                Pushed::Appended
            }
        };
        self.evict_old();
        outcome
    }

    /// Drops the oldest sample.
    fn dequeue(&mut self) {
        let _ = self.ring.dequeue();
        if let Some(a) = &mut self.annotations {
            let _ = a.dequeue();
        }
        if let Some(w) = &mut self.wide {
            let _ = w.highs.dequeue();
        }
    }

    /// Appends `s` after the newest sample.
    fn enqueue(&mut self, s: Sample) {
        if self.ring.is_full() {
            self.dequeue();
        }
        if self.ring.is_empty() {
            self.base_ms = s.timestamp_ms;
            self.wide = None;
        }
        let (low, high) = split(self.offset_for(s.timestamp_ms));
        let _ = self.ring.enqueue(Stored::new(low, s.value));
        if let Some(w) = &mut self.wide {
            let _ = w.highs.enqueue(high);
        }
        let a = Annotation::of(s.anomaly_score, s.expected_band);
        if self.annotations.is_none() && !a.is_none() {
            // the sample just enqueued gets its annotation below
            self.allocate_annotations(self.ring.len() - 1);
        }
        if let Some(annotations) = &mut self.annotations {
            let _ = annotations.enqueue(a);
        }
        debug_assert!(self.annotations.as_ref().is_none_or(|b| b.len() == self.ring.len()));
        debug_assert!(self.wide.as_ref().is_none_or(|w| w.highs.len() == self.ring.len()));
    }

    /// The offset a new newest sample at `t` gets (`t` is after every sample
    /// held), after re-basing or widening the ring if it needs to.
    fn offset_for(&mut self, t: i64) -> u64 {
        let offset = self.offset_of(t).unwrap_or(0);
        let fits = u32::try_from(offset).is_ok();
        let may_pass = self.since_pass as usize >= self.ring.len();
        self.since_pass = self.since_pass.saturating_add(1);
        if fits && self.wide.is_none() {
            return offset;
        }
        let oldest = self.time_at(0).unwrap_or(t);
        // t >= oldest >= base: the subtraction cannot overflow
        let span_fits = self.offset_of(oldest).is_some_and(|o| u32::try_from(offset - o).is_ok());
        if may_pass && span_fits {
            self.rebase(oldest);
            self.since_pass = 1;
            return self.offset_of(t).unwrap_or(0);
        }
        if self.wide.is_none() {
            // the offsets held all fit in 32 bits: their high halves are 0
            let mut highs = AllocRingBuffer::new(self.ring.capacity());
            for _ in 0..self.ring.len() {
                let _ = highs.enqueue(0);
            }
            self.wide = Some(Box::new(Wide { highs }));
            self.since_pass = 1;
        }
        offset
    }

    /// Moves the base to `base` (at or before the oldest sample, and every
    /// offset from it fits in 32 bits) and drops the high halves.
    fn rebase(&mut self, base: i64) {
        let shift = self.offset_of(base).unwrap_or(0);
        let wide = self.wide.take();
        let mut highs = wide.as_ref().map(|w| w.highs.iter());
        for s in self.ring.iter_mut() {
            let high = highs.as_mut().and_then(Iterator::next).copied().unwrap_or(0);
            let (low, high) = split(join(s.offset(), high).wrapping_sub(shift));
            debug_assert_eq!(high, 0);
            s.set_offset(low);
        }
        self.base_ms = base;
    }

    /// Starts the annotation ring, with none for the oldest `n` samples held.
    fn allocate_annotations(&mut self, n: usize) {
        let mut annotations = AllocRingBuffer::new(self.ring.capacity());
        for _ in 0..n {
            let _ = annotations.enqueue(Annotation::NONE);
        }
        self.annotations = Some(annotations);
    }

    /// Sets the detector's annotation on the newest sample.
    pub(crate) fn annotate_newest(&mut self, score: f64, band: Option<(f64, f64)>) {
        if self.ring.is_empty() {
            return;
        }
        if self.annotations.is_none() {
            self.allocate_annotations(self.ring.len());
        }
        if let Some(a) = self.annotations.as_mut().and_then(RingBuffer::back_mut) {
            *a = Annotation::of(Some(score), band);
        }
    }

    fn insert_older(&mut self, s: Sample) -> Pushed {
        if self.ring.is_full() && self.time_at(0).is_some_and(|f| f > s.timestamp_ms) {
            return Pushed::Dropped; // older than anything kept: it would be evicted at once
        }
        // Rare (concurrent record() calls racing): rebuild the buffer in order.
        let mut all = self.window(i64::MIN, i64::MAX);
        let pos = all.partition_point(|x| x.timestamp_ms < s.timestamp_ms);
        let outcome = if all.get(pos).is_some_and(|x| x.timestamp_ms == s.timestamp_ms) {
            all[pos].value = s.value;
            Pushed::Replaced
        } else {
            all.insert(pos, s);
            Pushed::Inserted
        };
        self.ring.clear();
        self.wide = None;
        if let Some(a) = &mut self.annotations {
            a.clear();
        }
        for x in all {
            self.enqueue(x);
        }
        outcome
    }

    fn evict_old(&mut self) {
        if let (Some(age), Some(newest)) = (self.max_age_ms, self.newest_ms()) {
            let cutoff = newest.saturating_sub(age);
            while self.time_at(0).is_some_and(|f| f < cutoff) {
                self.dequeue();
            }
        }
    }

    /// Index of the first sample at or after `since_ms`.
    fn first_at_or_after(&self, since_ms: i64) -> usize {
        let Some(since) = self.offset_of(since_ms) else {
            return 0; // before the base, so before every sample
        };
        let (mut lo, mut hi) = (0usize, self.ring.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.offset_at(mid).is_some_and(|o| o < since) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The stored samples from index `start` on, copied out of the ring
    /// whole (two contiguous halves, no per-sample index arithmetic).
    fn copy_from(&self, start: usize, out: &mut Vec<Stored>) {
        let n = self.ring.len().saturating_sub(start);
        // every slot is overwritten below: a reused buffer is only resized,
        // not cleared and filled again
        out.resize(n, Stored::EMPTY);
        if n > 0 {
            self.ring.copy_to_slice(start, out);
        }
    }

    /// The high halves of the offsets from index `start` on, for a ring
    /// that has them.
    fn highs_from(&self, start: usize) -> Option<Vec<u32>> {
        let w = self.wide.as_ref()?;
        let n = w.highs.len().saturating_sub(start);
        let mut out = vec![0; n];
        if n > 0 {
            w.highs.copy_to_slice(start, &mut out);
        }
        Some(out)
    }

    /// The annotations from index `start` on, as [`copy_from`](Self::copy_from).
    fn annotations_from(&self, start: usize) -> Vec<Annotation> {
        let n = self.ring.len().saturating_sub(start);
        match &self.annotations {
            Some(a) if n > 0 => {
                let mut out = vec![Annotation::NONE; n];
                a.copy_to_slice(start, &mut out);
                out
            }
            _ => vec![Annotation::NONE; n],
        }
    }

    /// Samples from index `start` on while `timestamp <= until_ms`.
    fn samples_from(&self, start: usize, until_ms: i64) -> Vec<Sample> {
        let Some(until) = self.offset_of(until_ms) else {
            return Vec::new(); // before the base, so before every sample
        };
        let mut stored = Vec::new();
        self.copy_from(start, &mut stored);
        let annotations = self.annotations_from(start);
        let highs = self.highs_from(start);
        stored
            .iter()
            .zip(annotations)
            .enumerate()
            .map(|(i, (s, a))| (join(s.offset(), highs.as_ref().map_or(0, |h| h[i])), s.value(), a))
            .take_while(|(offset, ..)| *offset <= until)
            .map(|(offset, value, a)| Sample {
                timestamp_ms: self.time_of(offset),
                value,
                anomaly_score: a.score(),
                expected_band: a.band(),
            })
            .collect()
    }

    /// Samples with `since_ms <= timestamp <= until_ms`, oldest first.
    pub(crate) fn window(&self, since_ms: i64, until_ms: i64) -> Vec<Sample> {
        self.samples_from(self.first_at_or_after(since_ms), until_ms)
    }

    /// Appends to `out` the values with `since_ms <= timestamp <= until_ms`,
    /// oldest first; `scratch` is working space kept between calls.
    pub(crate) fn values_between(
        &self,
        since_ms: i64,
        until_ms: i64,
        scratch: &mut Vec<Stored>,
        out: &mut Vec<f64>,
    ) {
        let Some(until) = self.offset_of(until_ms) else {
            return; // before the base, so before every sample
        };
        let start = self.first_at_or_after(since_ms);
        self.copy_from(start, scratch);
        out.reserve(scratch.len());
        match self.highs_from(start) {
            None => out.extend(
                scratch.iter().take_while(|s| u64::from(s.offset()) <= until).map(|s| s.value()),
            ),
            Some(highs) => out.extend(
                scratch
                    .iter()
                    .zip(highs)
                    .take_while(|(s, high)| join(s.offset(), *high) <= until)
                    .map(|(s, _)| s.value()),
            ),
        }
    }

    /// The newest `n` samples, oldest first.
    pub(crate) fn last_n(&self, n: usize) -> Vec<Sample> {
        self.samples_from(self.ring.len().saturating_sub(n), i64::MAX)
    }

    pub(crate) fn latest(&self) -> Option<Sample> {
        let a = self
            .annotations
            .as_ref()
            .and_then(RingBuffer::back)
            .copied()
            .unwrap_or(Annotation::NONE);
        let s = self.ring.back()?;
        Some(Sample {
            timestamp_ms: self.newest_ms()?,
            value: s.value(),
            anomaly_score: a.score(),
            expected_band: a.band(),
        })
    }

    /// Timestamp of the newest sample.
    pub(crate) fn newest_ms(&self) -> Option<i64> {
        self.time_at(self.ring.len().checked_sub(1)?)
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

/// The history of every series, indexed by [`SeriesId`].
pub(crate) struct History {
    series: Vec<Option<SeriesHistory>>,
    capacity: usize,
    max_age_ms: Option<i64>,
    /// Series removed from the registry: samples for them are dropped.
    removed: Vec<bool>,
}

impl History {
    pub(crate) fn new(capacity: usize, max_age_ms: Option<i64>) -> Self {
        History { series: Vec::new(), capacity, max_age_ms, removed: Vec::new() }
    }

    /// Appends a sample to series `id`; says what became of it.
    pub(crate) fn push(&mut self, id: SeriesId, s: Sample) -> Pushed {
        let i = id.index();
        if self.removed.get(i).copied().unwrap_or(false) {
            return Pushed::Dropped;
        }
        if self.series.len() <= i {
            self.series.resize_with(i + 1, || None);
        }
        self.series[i]
            .get_or_insert_with(|| SeriesHistory::new(self.capacity, self.max_age_ms))
            .push(s)
    }

    /// Forgets the history of series `id` (removed from the registry) and
    /// drops every sample pushed for it from now on.
    pub(crate) fn remove(&mut self, id: SeriesId) {
        let i = id.index();
        if let Some(slot) = self.series.get_mut(i) {
            *slot = None;
        }
        if self.removed.len() <= i {
            self.removed.resize(i + 1, false);
        }
        self.removed[i] = true;
    }

    /// Timestamp of the newest sample of series `id`.
    pub(crate) fn newest_ms(&self, id: SeriesId) -> Option<i64> {
        self.get(id).and_then(SeriesHistory::newest_ms)
    }

    pub(crate) fn get(&self, id: SeriesId) -> Option<&SeriesHistory> {
        self.series.get(id.index()).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: SeriesId) -> Option<&mut SeriesHistory> {
        self.series.get_mut(id.index()).and_then(Option::as_mut)
    }

    /// Total number of samples held.
    pub(crate) fn total_samples(&self) -> usize {
        self.series.iter().flatten().map(SeriesHistory::len).sum()
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("series", &self.series.len())
            .field("capacity", &self.capacity)
            .field("max_age_ms", &self.max_age_ms)
            .field("removed", &self.removed.iter().filter(|r| **r).count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_exceeds_capacity_and_stays_ordered(
            cap in 1usize..64,
            stamps in prop::collection::vec(0i64..500, 0..300),
        ) {
            let mut h = SeriesHistory::new(cap, None);
            for (i, t) in stamps.iter().enumerate() {
                #[allow(clippy::cast_precision_loss)]
                h.push(Sample::new(*t, i as f64));
                prop_assert!(h.len() <= cap);
                prop_assert_eq!(h.capacity(), cap);
            }
            let all = h.window(i64::MIN, i64::MAX);
            prop_assert!(all.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
        }

        #[test]
        fn keeps_newest_n_in_order(cap in 1usize..64, n in 0usize..256) {
            let mut h = SeriesHistory::new(cap, None);
            for i in 0..n {
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
                h.push(Sample::new(i as i64, i as f64));
            }
            let got: Vec<f64> = h.window(i64::MIN, i64::MAX).iter().map(|s| s.value).collect();
            #[allow(clippy::cast_precision_loss)]
            let want: Vec<f64> = (n.saturating_sub(cap)..n).map(|i| i as f64).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn window_returns_exactly_the_samples_inside(
            stamps in prop::collection::btree_set(0i64..10_000, 0..200),
            a in 0i64..10_000,
            len in 0i64..10_000,
        ) {
            let mut h = SeriesHistory::new(1_000, None);
            for t in &stamps {
                #[allow(clippy::cast_precision_loss)]
                h.push(Sample::new(*t, *t as f64));
            }
            let got: Vec<i64> = h.window(a, a + len).iter().map(|s| s.timestamp_ms).collect();
            let want: Vec<i64> = stamps.iter().copied().filter(|t| (a..=a + len).contains(t)).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// The sample history hands back for `s`: annotations as stored.
    fn as_stored(s: Sample) -> Sample {
        let a = Annotation::of(s.anomaly_score, s.expected_band);
        Sample { anomaly_score: a.score(), expected_band: a.band(), ..s }
    }

    proptest! {
        #[test]
        fn annotated_samples_come_back_as_pushed_in_order(
            cap in 1usize..40,
            steps in prop::collection::vec(
                (prop_oneof![1i64..5_000, Just(1i64 << 33)],
                 -1e6f64..1e6, prop::option::of(0.0f64..1.0),
                 prop::option::of((-1e3f64..1e3, 0.0f64..1e3)), any::<bool>()),
                0..120),
        ) {
            let mut h = SeriesHistory::new(cap, None);
            let mut model: Vec<Sample> = Vec::new();
            let mut t = -1_000_000i64;
            for (gap, value, score, band, annotate_later) in steps {
                t += gap;
                let band = band.map(|(l, w)| (l, l + w));
                if annotate_later {
                    prop_assert_eq!(h.push(Sample::new(t, value)), Pushed::Appended);
                    if let Some(score) = score {
                        h.annotate_newest(score, band);
                    }
                } else {
                    let s = Sample { anomaly_score: score, expected_band: band, ..Sample::new(t, value) };
                    prop_assert_eq!(h.push(s), Pushed::Appended);
                }
                let annotated = !annotate_later || score.is_some();
                let kept = Sample {
                    anomaly_score: if annotated { score } else { None },
                    expected_band: if annotated { band } else { None },
                    ..Sample::new(t, value)
                };
                model.push(as_stored(kept));
                let excess = model.len().saturating_sub(cap);
                model.drain(..excess);
                prop_assert_eq!(h.window(i64::MIN, i64::MAX), model.clone());
                prop_assert_eq!(h.latest(), model.last().copied());
                prop_assert_eq!(h.last_n(3), model[model.len().saturating_sub(3)..].to_vec());
                let mut values = Vec::new();
                h.values_between(t - 10_000, t - 1, &mut Vec::new(), &mut values);
                let want: Vec<f64> = model
                    .iter()
                    .filter(|m| (t - 10_000..t).contains(&m.timestamp_ms))
                    .map(|m| m.value)
                    .collect();
                prop_assert_eq!(values, want);
            }
        }
    }

    #[test]
    fn annotations_exist_only_where_a_detector_gave_them() {
        let mut plain = SeriesHistory::new(8, None);
        plain.push(Sample::new(1, 1.0));
        plain.annotate_newest(0.5, None);
        assert!(plain.annotations.is_some());
        plain.push(Sample::new(2, 2.0));
        plain.annotate_newest(0.25, Some((1.0, 3.0)));
        let mut unscored = SeriesHistory::new(8, None);
        unscored.push(Sample::new(1, 1.0));
        assert!(unscored.annotations.is_none());
        let w = plain.window(i64::MIN, i64::MAX);
        assert_eq!((w[0].anomaly_score, w[0].expected_band), (Some(0.5), None));
        assert_eq!((w[1].anomaly_score, w[1].expected_band), (Some(0.25), Some((1.0, 3.0))));
    }

    #[test]
    fn a_late_sample_far_back_is_inserted_in_order() {
        let mut h = SeriesHistory::new(8, None);
        h.push(Sample::new(i64::MAX - 1, 1.0));
        h.annotate_newest(0.5, Some((0.0, 2.0)));
        assert_eq!(h.push(Sample::new(i64::MIN, 0.5)), Pushed::Inserted);
        let w = h.window(i64::MIN, i64::MAX);
        assert_eq!(w.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(), [i64::MIN, i64::MAX - 1]);
        assert_eq!((w[0].anomaly_score, w[1].anomaly_score), (None, Some(0.5)));
    }

    #[test]
    fn capacity_is_clamped_before_it_reaches_the_ring() {
        // ringbuffer 0.16 rounds the capacity up to a power of two without
        // checking for overflow, and does not check its allocation
        let mut h = SeriesHistory::new(usize::MAX, None);
        assert_eq!(h.capacity(), MAX_HISTORY_CAPACITY);
        h.push(Sample::new(1, 1.0));
        assert_eq!(h.len(), 1);
        assert_eq!(SeriesHistory::new(0, None).capacity(), 1);
    }

    #[test]
    fn a_removed_series_takes_no_more_samples() {
        let mut h = History::new(10, None);
        let id = SeriesId(3);
        assert_eq!(h.push(id, Sample::new(1, 1.0)), Pushed::Appended);
        h.remove(id);
        assert!(h.get(id).is_none());
        assert_eq!(h.push(id, Sample::new(2, 2.0)), Pushed::Dropped);
        assert!(h.get(id).is_none() && h.newest_ms(id).is_none());
        assert_eq!(h.push(SeriesId(4), Sample::new(2, 2.0)), Pushed::Appended);
    }

    #[test]
    fn max_age_evicts() {
        let mut h = SeriesHistory::new(100, Some(10));
        for t in 0..30 {
            #[allow(clippy::cast_precision_loss)]
            h.push(Sample::new(t, t as f64));
        }
        let w = h.window(i64::MIN, i64::MAX);
        assert_eq!(w.first().unwrap().timestamp_ms, 19);
        assert_eq!(w.len(), 11);
    }

    #[test]
    fn late_samples_are_inserted_in_order() {
        let mut h = SeriesHistory::new(3, None);
        h.push(Sample::new(10, 1.0));
        h.push(Sample::new(30, 3.0));
        assert_eq!(h.push(Sample::new(20, 2.0)), Pushed::Inserted);
        assert_eq!(h.window(0, 100).iter().map(|s| s.value).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
        // full, and older than the oldest: dropped
        assert_eq!(h.push(Sample::new(5, 0.5)), Pushed::Dropped);
        assert_eq!(h.push(Sample::new(30, 3.5)), Pushed::Replaced);
        h.annotate_newest(0.75, Some((1.0, 2.0)));
        let newest = h.latest().unwrap();
        assert_eq!(
            (newest.value, newest.anomaly_score, newest.expected_band),
            (3.5, Some(0.75), Some((1.0, 2.0)))
        );
        // a later value at the same instant keeps the annotation
        assert_eq!(h.push(Sample::new(30, 3.0)), Pushed::Replaced);
        assert_eq!(h.latest().unwrap().anomaly_score, Some(0.75));
        assert_eq!(h.latest().unwrap().value, 3.0);
        assert_eq!(h.last_n(2).len(), 2);
    }
}
