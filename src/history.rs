//! Bounded per-series history: one ring buffer of samples per series.

use std::fmt;

use chrono::{DateTime, Utc};
use ringbuffer::{AllocRingBuffer, RingBuffer};
use serde::{Deserialize, Serialize};

use crate::clock::ms_to_datetime;
use crate::key::SeriesId;

/// The largest history capacity (samples per series) an engine accepts: 1 048 576 (2^20).
///
/// A series' ring buffer is allocated whole when the series gets its first
/// sample, with room for the capacity rounded up to a power of two, at 32
/// bytes a sample: 32 MiB per series at this maximum. Enough for a week of
/// one sample a second.
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
    /// The anomaly detector's score in `[0, 1]`, where the series has a detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_score: Option<f64>,
    /// The band (lower, upper) the detector expected this value in, once it has learnt one.
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

/// A sample as stored: 32 bytes, with the detector's annotation as `f32`s
/// (NaN when absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stored {
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
    score: f32,
    lower: f32,
    upper: f32,
}

impl Stored {
    fn from_sample(s: Sample) -> Self {
        #[allow(clippy::cast_possible_truncation)]
        let (lower, upper) =
            s.expected_band.map_or((f32::NAN, f32::NAN), |(l, u)| (l as f32, u as f32));
        #[allow(clippy::cast_possible_truncation)]
        let score = s.anomaly_score.map_or(f32::NAN, |v| v as f32);
        Stored { timestamp_ms: s.timestamp_ms, value: s.value, score, lower, upper }
    }

    pub(crate) fn sample(&self) -> Sample {
        Sample {
            timestamp_ms: self.timestamp_ms,
            value: self.value,
            anomaly_score: (!self.score.is_nan()).then_some(f64::from(self.score)),
            expected_band: (!self.lower.is_nan() && !self.upper.is_nan())
                .then_some((f64::from(self.lower), f64::from(self.upper))),
        }
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

/// The history of one series: newest `capacity` samples, optionally no older than `max_age_ms`.
pub(crate) struct SeriesHistory {
    ring: AllocRingBuffer<Stored>,
    max_age_ms: Option<i64>,
}

impl SeriesHistory {
    /// A history of `capacity` samples, clamped to `1..=MAX_HISTORY_CAPACITY`
    /// (the builder rejects anything outside): `AllocRingBuffer::new` neither
    /// checks its allocation nor its power-of-two rounding, so no other value
    /// may reach it.
    pub(crate) fn new(capacity: usize, max_age_ms: Option<i64>) -> Self {
        let capacity = capacity.clamp(1, MAX_HISTORY_CAPACITY);
        SeriesHistory { ring: AllocRingBuffer::new(capacity), max_age_ms }
    }

    /// Adds a sample, keeping time order. A sample at the same timestamp as
    /// the newest replaces its value; an older one is inserted in place (or
    /// dropped if it is older than everything a full buffer holds).
    pub(crate) fn push(&mut self, s: Sample) -> Pushed {
        let s = Stored::from_sample(s);
        let outcome = match self.ring.back_mut() {
            None => {
                let _ = self.ring.enqueue(s);
                Pushed::Appended
            }
            Some(last) if last.timestamp_ms < s.timestamp_ms => {
                let _ = self.ring.enqueue(s);
                Pushed::Appended
            }
            Some(last) if last.timestamp_ms == s.timestamp_ms => {
                // keep the annotation the first value at this instant got
                *last = Stored { value: s.value, ..*last };
                Pushed::Replaced
            }
            Some(_) => self.insert_older(s),
        };
        self.evict_old();
        outcome
    }

    /// Sets the detector's annotation on the newest sample.
    pub(crate) fn annotate_newest(&mut self, score: f64, band: Option<(f64, f64)>) {
        if let Some(last) = self.ring.back_mut() {
            *last = Stored::from_sample(Sample {
                anomaly_score: Some(score),
                expected_band: band,
                ..last.sample()
            });
        }
    }

    fn insert_older(&mut self, s: Stored) -> Pushed {
        if self.ring.is_full() && self.ring.front().is_some_and(|f| f.timestamp_ms > s.timestamp_ms)
        {
            return Pushed::Dropped; // older than anything kept: it would be evicted at once
        }
        // Rare (concurrent record() calls racing): rebuild the buffer in order.
        let mut all: Vec<Stored> = self.ring.iter().copied().collect();
        let pos = all.partition_point(|x| x.timestamp_ms < s.timestamp_ms);
        let outcome = if all.get(pos).is_some_and(|x| x.timestamp_ms == s.timestamp_ms) {
            all[pos] = Stored { value: s.value, ..all[pos] };
            Pushed::Replaced
        } else {
            all.insert(pos, s);
            Pushed::Inserted
        };
        self.ring.clear();
        for x in all {
            let _ = self.ring.enqueue(x);
        }
        outcome
    }

    fn evict_old(&mut self) {
        if let (Some(age), Some(newest)) =
            (self.max_age_ms, self.ring.back().map(|s| s.timestamp_ms))
        {
            while self.ring.front().is_some_and(|f| f.timestamp_ms < newest.saturating_sub(age)) {
                let _ = self.ring.dequeue();
            }
        }
    }

    /// Index of the first sample at or after `since_ms`.
    fn first_at_or_after(&self, since_ms: i64) -> usize {
        let (mut lo, mut hi) = (0usize, self.ring.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ring.get(mid).expect("in range").timestamp_ms < since_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Samples with `since_ms <= timestamp <= until_ms`, oldest first.
    pub(crate) fn window(&self, since_ms: i64, until_ms: i64) -> Vec<Sample> {
        let start = self.first_at_or_after(since_ms);
        self.ring
            .iter()
            .skip(start)
            .take_while(|s| s.timestamp_ms <= until_ms)
            .map(Stored::sample)
            .collect()
    }

    /// Calls `f` on each stored sample with `since_ms <= timestamp`.
    pub(crate) fn for_each_since(&self, since_ms: i64, f: impl FnMut(&Stored)) {
        let start = self.first_at_or_after(since_ms);
        self.ring.iter().skip(start).for_each(f);
    }

    /// The newest `n` samples, oldest first.
    pub(crate) fn last_n(&self, n: usize) -> Vec<Sample> {
        let skip = self.ring.len().saturating_sub(n);
        self.ring.iter().skip(skip).map(Stored::sample).collect()
    }

    pub(crate) fn latest(&self) -> Option<Sample> {
        self.ring.back().map(Stored::sample)
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
        self.get(id).and_then(|h| h.ring.back()).map(|s| s.timestamp_ms)
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
