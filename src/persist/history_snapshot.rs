//! The history snapshot: every series' samples (timestamp, value), encoded
//! with postcard (timestamps as zigzag-varint deltas) and compressed with LZ4.
//! Anomaly scores and bands are not saved: replaying the samples through
//! the series' detector recomputes them and warms the detector up.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::history::Sample;
use crate::key::SeriesKey;

/// The history snapshot's magic.
pub(crate) const MAGIC: [u8; 8] = *b"WPHISTRY";
/// The history snapshot's format version.
pub(crate) const VERSION: u16 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    saved_at_ms: i64,
    series: Vec<SeriesState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SeriesState {
    name: String,
    labels: Vec<(String, String)>,
    first_ms: i64,
    /// Differences between consecutive timestamps (the first is 0).
    deltas: Vec<i64>,
    values: Vec<f64>,
}

/// Encodes and compresses `series` (each oldest first).
pub(crate) fn encode<'a>(
    saved_at_ms: i64,
    series: impl IntoIterator<Item = (&'a SeriesKey, &'a [(i64, f64)])>,
) -> Vec<u8> {
    let series = series
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(key, samples)| {
            let first_ms = samples[0].0;
            let mut prev = first_ms;
            let mut deltas = Vec::with_capacity(samples.len());
            let mut values = Vec::with_capacity(samples.len());
            for &(t, v) in samples {
                deltas.push(t.wrapping_sub(prev));
                prev = t;
                values.push(v);
            }
            SeriesState {
                name: key.name().to_owned(),
                labels: key.labels().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                first_ms,
                deltas,
                values,
            }
        })
        .collect();
    let raw = postcard::to_stdvec(&SnapshotFile { saved_at_ms, series })
        .expect("plain data always encodes");
    lz4_flex::compress_prepend_size(&raw)
}

/// History read back from a snapshot, waiting for its series to be
/// registered again; until then the rules see it through the engine's view.
#[derive(Debug, Default)]
pub(crate) struct RestoredHistory {
    pub(crate) series: HashMap<SeriesKey, Vec<Sample>>,
    pub(crate) by_name: HashMap<String, Vec<SeriesKey>>,
    /// Series or samples the snapshot held beyond the caps in force, or invalid.
    pub(crate) discarded: usize,
}

impl RestoredHistory {
    /// Takes the restored samples of `key`, if any.
    pub(crate) fn take(&mut self, key: &SeriesKey) -> Option<Vec<Sample>> {
        let samples = self.series.remove(key)?;
        if let Some(keys) = self.by_name.get_mut(key.name()) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_name.remove(key.name());
            }
        }
        Some(samples)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// The limits restored history is held to: those of the engine it goes into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) samples_per_series: usize,
    pub(crate) max_age_ms: Option<i64>,
    pub(crate) series: usize,
}

/// Decompresses and decodes a snapshot, keeping at most `caps` (the newest
/// samples of each series, within its max age; series beyond the cap are
/// discarded and counted). Timestamps must increase and values be finite:
/// other samples are discarded and counted.
pub(crate) fn decode(payload: &[u8], caps: Caps) -> Result<RestoredHistory, String> {
    // LZ4 expands at most about 255:1: a larger declared size is corrupt,
    // and is refused before anything is allocated for it
    let declared = payload.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4")));
    if u64::from(declared) > (payload.len() as u64).saturating_mul(255) {
        return Err(format!(
            "declares {declared} bytes uncompressed from {} compressed",
            payload.len()
        ));
    }
    let raw = lz4_flex::decompress_size_prepended(payload)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    let file: SnapshotFile =
        postcard::from_bytes(&raw).map_err(|e| format!("cannot decode: {e}"))?;
    let mut out = RestoredHistory::default();
    for s in file.series {
        if out.series.len() >= caps.series || s.deltas.len() != s.values.len() {
            out.discarded += 1;
            continue;
        }
        let pairs: Vec<(&str, &str)> =
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let Ok(key) = SeriesKey::new(&s.name, &pairs) else {
            out.discarded += 1;
            continue;
        };
        let mut samples: Vec<Sample> = Vec::with_capacity(s.values.len());
        let mut t = s.first_ms;
        for (d, v) in s.deltas.iter().zip(&s.values) {
            t = t.saturating_add(*d);
            let in_order = samples.last().is_none_or(|p| p.timestamp_ms < t);
            if in_order && v.is_finite() {
                samples.push(Sample::new(t, *v));
            } else {
                out.discarded += 1;
            }
        }
        if let (Some(age), Some(newest)) = (caps.max_age_ms, samples.last().map(|s| s.timestamp_ms))
        {
            let keep_from =
                samples.partition_point(|s| s.timestamp_ms < newest.saturating_sub(age));
            out.discarded += keep_from;
            samples.drain(..keep_from);
        }
        let excess = samples.len().saturating_sub(caps.samples_per_series);
        out.discarded += excess;
        samples.drain(..excess);
        if samples.is_empty() {
            continue;
        }
        out.by_name.entry(key.name().to_owned()).or_default().push(key.clone());
        out.series.insert(key, samples);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps { samples_per_series: 1_000, max_age_ms: None, series: 1_000 };

    #[test]
    fn round_trip_keeps_every_sample_and_holds_restored_history_to_the_caps() {
        let a = SeriesKey::new("cpu", &[("core", "0")]).unwrap();
        let b = SeriesKey::new("mem", &[]).unwrap();
        let sa: Vec<(i64, f64)> =
            (0..10u8).map(|i| (1_000 * i64::from(i), f64::from(i) * 0.5)).collect();
        let sb = [(-5, f64::MAX), (7, -0.0)];
        let bytes = encode(99, [(&a, &sa[..]), (&b, &sb[..])]);
        let r = decode(&bytes, CAPS).unwrap();
        let got: Vec<(i64, f64)> = r.series[&a].iter().map(|s| (s.timestamp_ms, s.value)).collect();
        assert_eq!(got, sa);
        assert_eq!(r.series[&b][0].value, f64::MAX);
        assert_eq!(r.by_name["cpu"], vec![a.clone()]);

        let small = Caps { samples_per_series: 3, max_age_ms: None, series: 1 };
        let r = decode(&bytes, small).unwrap();
        let got: Vec<i64> = r.series[&a].iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(got, [7_000, 8_000, 9_000]);
        assert_eq!((r.series.len(), r.discarded), (1, 7 + 1));

        let young = Caps { samples_per_series: 100, max_age_ms: Some(2_000), series: 10 };
        let r = decode(&bytes, young).unwrap();
        assert_eq!(r.series[&a].len(), 3); // 7 s, 8 s, 9 s: no older than 2 s before the newest
    }

    #[test]
    fn out_of_order_and_non_finite_samples_are_discarded() {
        let a = SeriesKey::new("x", &[]).unwrap();
        let s = [(10, 1.0), (5, 2.0), (20, f64::NAN), (30, 3.0)];
        let r = decode(&encode(0, [(&a, &s[..])]), CAPS).unwrap();
        let got: Vec<(i64, f64)> = r.series[&a].iter().map(|s| (s.timestamp_ms, s.value)).collect();
        assert_eq!((got, r.discarded), (vec![(10, 1.0), (30, 3.0)], 2));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[1, 2, 3], CAPS).is_err());
        assert!(decode(&lz4_flex::compress_prepend_size(&[0xff; 64]), CAPS).is_err());
    }
}
