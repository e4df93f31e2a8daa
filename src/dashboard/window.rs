//! Per-series statistics of the dashboard's window: the numbers
//! [`crate::stats::summarize`] gives, bit for bit, without sorting each window.
//!
//! The percentiles need only a handful of order statistics (the median's one
//! or two ranks, two ranks each for p90, p95 and p99, the minimum and the
//! maximum). A window already in order (a counter's running total, a rising
//! gauge) is read directly; any other is ranked by selection on integer keys
//! that order like [`f64::total_cmp`] (the order the sort used): one
//! selection of the median, one above it of the lowest rank the upper
//! percentiles need, and a sort of the few values above that.

use crate::stats::{Summary, mean_stddev, summary_of};

/// Working space kept between series and between snapshots.
#[derive(Debug, Default)]
pub(super) struct WindowStats {
    /// The window's values as keys ordered like `f64::total_cmp`.
    keys: Vec<u64>,
}

/// A key that orders like [`f64::total_cmp`]: negative values have all their
/// bits flipped, others only the sign bit.
fn key(v: f64) -> u64 {
    let bits = v.to_bits();
    // all ones for a negative value, zero otherwise
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]
    let negative = ((bits as i64) >> 63) as u64;
    bits ^ (negative | (1 << 63))
}

/// The value of a [`key`].
fn value(key: u64) -> f64 {
    let bits = if key >> 63 == 1 { key ^ (1 << 63) } else { !key };
    f64::from_bits(bits)
}

/// Below this many values a window is sorted whole: selection saves nothing.
const SELECT_FROM: usize = 64;

impl WindowStats {
    /// Statistics of `values` (finite, as history holds them), as
    /// `stats::summarize` computes them; `None` when empty.
    pub(super) fn summarize(&mut self, values: &[f64]) -> Option<Summary> {
        debug_assert!(values.iter().all(|v| v.is_finite()));
        let count = values.len();
        if count == 0 {
            return None;
        }
        // Mean and sample variance exactly as `stats` sums them: the same bits.
        let (mean, stddev) = mean_stddev(values);
        self.keys.clear();
        self.keys.extend(values.iter().map(|v| key(*v)));
        let ranked = rank(&mut self.keys);
        let at = |i: usize| value(ranked[i]);
        let (min, max) = (at(0), at(count - 1));
        let median = if count % 2 == 1 {
            at(count / 2)
        } else {
            f64::midpoint(at(count / 2 - 1), at(count / 2))
        };
        let [p90, p95, p99] = [0.90, 0.95, 0.99].map(|tau| quantile(count, tau, at));
        Some(summary_of(count, (min, max), (mean, stddev), [median, p90, p95, p99]))
    }
}

/// Puts every rank the summary reads (see [`ranks_read`]) at its place in
/// sorted order, leaving the others in some order; returns `keys`.
fn rank(keys: &mut [u64]) -> &[u64] {
    let n = keys.len();
    if keys.is_sorted() {
        return keys;
    }
    let upper = ranks_read(n).into_iter().filter(|&r| r > n / 2).min().unwrap_or(0);
    if n < SELECT_FROM || upper <= n / 2 {
        keys.sort_unstable();
        return keys;
    }
    // the median's upper rank, then, above it, everything from `upper` on in
    // order (p90, p95, p99 and the maximum)
    let (lower_half, _, upper_half) = keys.select_nth_unstable(n / 2);
    let (_, _, top) = upper_half.select_nth_unstable(upper - n / 2 - 1);
    top.sort_unstable();
    // below it, the median's lower rank and the minimum
    if let Some(i) = position_of_max(lower_half) {
        lower_half.swap(i, n / 2 - 1);
    }
    if let Some(i) = position_of_min(&lower_half[..n / 2 - 1]) {
        lower_half.swap(i, 0);
    }
    keys
}

fn position_of_max(keys: &[u64]) -> Option<usize> {
    keys.iter().enumerate().max_by_key(|(_, k)| **k).map(|(i, _)| i)
}

fn position_of_min(keys: &[u64]) -> Option<usize> {
    keys.iter().enumerate().min_by_key(|(_, k)| **k).map(|(i, _)| i)
}

/// The sorted ranks a summary of `n > 0` values reads: 0, `n - 1`, the
/// median's and each percentile's.
fn ranks_read(n: usize) -> [usize; 10] {
    let mut ranks = [0, n - 1, n / 2, n.saturating_sub(1) / 2, 0, 0, 0, 0, 0, 0];
    for (pair, tau) in ranks[4..].chunks_exact_mut(2).zip([0.90, 0.95, 0.99]) {
        pair.copy_from_slice(&match r8(n, tau) {
            Pick::At(i) => [i, i],
            Pick::Between(k, _) => [k - 1, k],
        });
    }
    ranks
}

/// Where quantile `tau` of `n` sorted values lies by the R-8 rule
/// (median-unbiased) that `stats` and statrs' `OrderStatistics::quantile` use.
enum Pick {
    /// At this rank.
    At(usize),
    /// Between ranks `k - 1` and `k`, this fraction of the way.
    Between(usize, f64),
}

fn r8(n: usize, tau: f64) -> Pick {
    #[allow(clippy::cast_precision_loss)]
    let h = (n as f64 + 1.0 / 3.0) * tau + 1.0 / 3.0;
    #[allow(clippy::cast_possible_truncation)]
    let hf = h as i64;
    if hf <= 0 || tau <= 0.0 {
        return Pick::At(0);
    }
    #[allow(clippy::cast_possible_wrap)]
    if hf >= n as i64 || tau >= 1.0 {
        return Pick::At(n - 1);
    }
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let k = hf as usize;
    #[allow(clippy::cast_precision_loss)]
    let frac = h - hf as f64;
    Pick::Between(k, frac)
}

/// Quantile `tau` of `n` values whose sorted rank `i` is `at(i)`, with the
/// arithmetic `stats` uses.
fn quantile(n: usize, tau: f64, at: impl Fn(usize) -> f64) -> f64 {
    match r8(n, tau) {
        Pick::At(i) => at(i),
        Pick::Between(k, frac) => at(k - 1) + frac * (at(k) - at(k - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every field's bits, so that `-0.0` and `0.0` differ.
    fn bits(s: &Summary) -> [u64; 10] {
        [
            s.count as u64,
            s.min.to_bits(),
            s.max.to_bits(),
            s.mean.to_bits(),
            s.median.to_bits(),
            s.p50.to_bits(),
            s.stddev.to_bits(),
            s.p90.to_bits(),
            s.p95.to_bits(),
            s.p99.to_bits(),
        ]
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6f64..1e6,
            (0i8..4).prop_map(f64::from),
            Just(-0.0),
            Just(0.0),
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
            Just(f64::MAX),
            Just(f64::MIN),
        ]
    }

    proptest! {
        #[test]
        fn summaries_are_those_of_stats_bit_for_bit(
            values in prop_oneof![
                prop::collection::vec(finite(), 1..700),
                prop::collection::vec(-1e3f64..1e3, 60..400),
                prop::collection::vec((0i8..3).prop_map(f64::from), 1..400),
                prop::collection::vec(-1e6f64..1e6, 1..500).prop_map(|mut v| {
                    v.sort_by(f64::total_cmp);
                    v
                }),
                prop::collection::vec(-1e6f64..1e6, 1..500).prop_map(|mut v| {
                    v.sort_by(|a, b| b.total_cmp(a));
                    v
                }),
            ],
        ) {
            let mut window = WindowStats::default();
            let got = window.summarize(&values).unwrap();
            let want = crate::stats::summarize(&values).unwrap();
            prop_assert_eq!(bits(&got), bits(&want), "{:?} vs {:?}", got, want);
            // the working space carries nothing over to the next window
            let again = window.summarize(&values[..=values.len() / 2]).unwrap();
            let want = crate::stats::summarize(&values[..=values.len() / 2]).unwrap();
            prop_assert_eq!(bits(&again), bits(&want));
        }

        #[test]
        fn keys_order_like_total_cmp(a in prop::num::f64::ANY, b in prop::num::f64::ANY) {
            prop_assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b));
            prop_assert_eq!(value(key(a)).to_bits(), a.to_bits());
        }
    }

    #[test]
    fn every_rank_read_is_in_place_after_ranking() {
        for n in [1usize, 2, 3, 63, 64, 65, 100, 299, 300, 301, 1_000] {
            // a fixed shuffle of 0..n, with -0.0 and 0.0 both present
            #[allow(clippy::cast_precision_loss)]
            let mut values: Vec<f64> = (0..n).map(|i| ((i * 7_919) % n) as f64).collect();
            values[0] = -0.0;
            let mut keys: Vec<u64> = values.iter().map(|v| key(*v)).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            let ranked = rank(&mut keys).to_vec();
            for r in ranks_read(n) {
                assert_eq!(ranked[r], sorted[r], "n = {n}, rank {r}");
            }
        }
        assert!(WindowStats::default().summarize(&[]).is_none());
    }
}
