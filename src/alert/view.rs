//! The data the alert manager reads: a trait over the engine's history, and an
//! in-memory implementation for tests, benches and examples.

use std::collections::BTreeMap;

use crate::history::Sample;
use crate::key::SeriesKey;

/// Read access to series history, implemented by the engine over its ring
/// buffers (and by [`MemoryView`] for tests).
///
/// # Examples
///
/// ```
/// use watchpost::{Sample, SeriesKey, alert::SeriesView};
///
/// struct One(SeriesKey, Vec<Sample>);
/// impl SeriesView for One {
///     fn series_named(&self, name: &str) -> Vec<SeriesKey> {
///         if self.0.name() == name { vec![self.0.clone()] } else { vec![] }
///     }
///     fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
///         if *key != self.0 { return vec![] }
///         self.1.iter().copied().filter(|s| s.timestamp_ms >= since_ms).collect()
///     }
/// }
/// let view = One(SeriesKey::new("up", &[])?, vec![Sample::new(0, 1.0)]);
/// assert_eq!(view.samples(&SeriesKey::new("up", &[])?, 0).len(), 1);
/// assert!(view.anomaly_scores(&SeriesKey::new("up", &[])?, 0).is_none());
/// # Ok::<(), watchpost::Error>(())
/// ```
pub trait SeriesView {
    /// Keys of all series with metric name `name`.
    fn series_named(&self, name: &str) -> Vec<SeriesKey>;

    /// Samples of `key` with `since_ms <= timestamp_ms`, oldest first. Samples
    /// newer than the evaluation time are ignored by the manager.
    fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample>;

    /// Anomaly scores in [0, 1] of `key` as `(timestamp_ms, score)` with
    /// `since_ms <= timestamp_ms`, oldest first; `None` if the view has no
    /// detector for the series. Read by the anomaly-rate condition. Default: `None`.
    fn anomaly_scores(&self, key: &SeriesKey, since_ms: i64) -> Option<Vec<(i64, f64)>> {
        let _ = (key, since_ms);
        None
    }
}

impl<V: SeriesView + ?Sized> SeriesView for &V {
    fn series_named(&self, name: &str) -> Vec<SeriesKey> {
        (**self).series_named(name)
    }
    fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
        (**self).samples(key, since_ms)
    }
    fn anomaly_scores(&self, key: &SeriesKey, since_ms: i64) -> Option<Vec<(i64, f64)>> {
        (**self).anomaly_scores(key, since_ms)
    }
}

/// A [`SeriesView`] over plain vectors: push samples, evaluate rules.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::{MemoryView, SeriesView}};
/// let mut view = MemoryView::new();
/// let key = SeriesKey::new("temp", &[("room", "lab")])?;
/// view.push(key.clone(), 1_000, 21.5);
/// view.push(key.clone(), 2_000, 22.0);
/// assert_eq!(view.series_named("temp"), [key.clone()]);
/// assert_eq!(view.samples(&key, 1_500).len(), 1);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryView {
    series: BTreeMap<SeriesKey, Vec<Sample>>,
}

impl MemoryView {
    /// An empty view.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{MemoryView, SeriesView};
    /// assert!(MemoryView::new().series_named("x").is_empty());
    /// ```
    pub fn new() -> Self {
        MemoryView::default()
    }

    /// Adds a sample, keeping each series sorted by time (a sample at an existing
    /// timestamp replaces it).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::{MemoryView, SeriesView}};
    /// let mut view = MemoryView::new();
    /// let key = SeriesKey::new("m", &[])?;
    /// view.push(key.clone(), 2, 2.0);
    /// view.push(key.clone(), 1, 1.0);
    /// let ts: Vec<i64> = view.samples(&key, 0).iter().map(|s| s.timestamp_ms).collect();
    /// assert_eq!(ts, [1, 2]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn push(&mut self, key: SeriesKey, timestamp_ms: i64, value: f64) {
        self.push_sample(key, Sample::new(timestamp_ms, value));
    }

    /// Adds a whole sample, with its anomaly score and expected band, as the
    /// engine's history holds them (replacing one at the same timestamp).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Sample, SeriesKey, alert::{MemoryView, SeriesView}};
    /// let mut view = MemoryView::new();
    /// let key = SeriesKey::new("latency", &[])?;
    /// view.push_sample(key.clone(), Sample { anomaly_score: Some(0.9), ..Sample::new(1_000, 0.25) });
    /// assert_eq!(view.samples(&key, 0)[0].anomaly_score, Some(0.9));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn push_sample(&mut self, key: SeriesKey, sample: Sample) {
        let timestamp_ms = sample.timestamp_ms;
        let samples = self.series.entry(key).or_default();
        match samples.last() {
            Some(last) if last.timestamp_ms < timestamp_ms => samples.push(sample),
            None => samples.push(sample),
            Some(_) => match samples.binary_search_by_key(&timestamp_ms, |s| s.timestamp_ms) {
                Ok(i) => samples[i] = sample,
                Err(i) => samples.insert(i, sample),
            },
        }
    }

    /// Removes the series `key`, as if it had been evicted.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::{MemoryView, SeriesView}};
    /// let mut view = MemoryView::new();
    /// let key = SeriesKey::new("m", &[])?;
    /// view.push(key.clone(), 1, 1.0);
    /// view.remove(&key);
    /// assert!(view.series_named("m").is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn remove(&mut self, key: &SeriesKey) {
        self.series.remove(key);
    }

    /// Drops samples older than `before_ms` from every series.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{SeriesKey, alert::{MemoryView, SeriesView}};
    /// let mut view = MemoryView::new();
    /// let key = SeriesKey::new("m", &[])?;
    /// view.push(key.clone(), 1, 1.0);
    /// view.push(key.clone(), 5, 1.0);
    /// view.trim(3);
    /// assert_eq!(view.samples(&key, 0).len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn trim(&mut self, before_ms: i64) {
        for samples in self.series.values_mut() {
            let cut = samples.partition_point(|s| s.timestamp_ms < before_ms);
            samples.drain(..cut);
        }
    }
}

impl SeriesView for MemoryView {
    fn series_named(&self, name: &str) -> Vec<SeriesKey> {
        self.series.keys().filter(|k| k.name() == name).cloned().collect()
    }

    fn samples(&self, key: &SeriesKey, since_ms: i64) -> Vec<Sample> {
        self.series.get(key).map_or_else(Vec::new, |samples| {
            let start = samples.partition_point(|s| s.timestamp_ms < since_ms);
            samples[start..].to_vec()
        })
    }
}
