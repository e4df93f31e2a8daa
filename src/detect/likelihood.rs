//! Anomaly likelihood: raw scores normalised against their own history.

use statrs::function::erf::erfc;

use super::window::{Ring, as_f64, floor_index};
use super::{check_f64, check_usize, unit};
use crate::Result;

/// Number of blocks the long window is kept in.
const BLOCKS: usize = 32;

/// Settings of [`AnomalyLikelihood`]; every setter validates its argument.
///
/// # Examples
///
/// ```
/// use watchpost::detect::LikelihoodConfig;
///
/// let cfg = LikelihoodConfig::default().with_short_window(5)?.with_long_window(2_000)?;
/// assert!(LikelihoodConfig::default().with_long_window(10).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LikelihoodConfig {
    short_window: usize,
    long_window: usize,
    learning: usize,
    min_std: f64,
}

impl Default for LikelihoodConfig {
    /// Short window 20 points, long window 4 096 points, 200 points of
    /// learning, a floor of 0.02 on the spread of averaged raw scores.
    fn default() -> Self {
        LikelihoodConfig { short_window: 20, long_window: 4096, learning: 200, min_std: 0.02 }
    }
}

impl LikelihoodConfig {
    /// Sets how many raw scores are averaged before comparing (1..=1000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `short_window` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::LikelihoodConfig::default().with_short_window(0).is_err());
    /// ```
    pub fn with_short_window(mut self, n: usize) -> Result<Self> {
        self.short_window = check_usize("short_window", n, 1, 1000)?;
        Ok(self)
    }

    /// Sets how many averages the reference distribution covers
    /// (32..=1 000 000; kept in 32 blocks, so memory does not grow with it).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `long_window` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::LikelihoodConfig::default().with_long_window(8_640).is_ok());
    /// ```
    pub fn with_long_window(mut self, n: usize) -> Result<Self> {
        self.long_window = check_usize("long_window", n, BLOCKS, 1_000_000)?;
        Ok(self)
    }

    /// Sets how many points are only learnt from, scoring 0 (1..=1 000 000).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `learning` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::LikelihoodConfig::default().with_learning(300).is_ok());
    /// ```
    pub fn with_learning(mut self, n: usize) -> Result<Self> {
        self.learning = check_usize("learning", n, 1, 1_000_000)?;
        Ok(self)
    }

    /// Sets the floor on the standard deviation of averaged raw scores
    /// (0.0001..=1), which keeps a series that was perfectly quiet from
    /// calling its first wobble a one-in-a-billion event.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `min_std` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::LikelihoodConfig::default().with_min_std(0.0).is_err());
    /// ```
    pub fn with_min_std(mut self, min_std: f64) -> Result<Self> {
        self.min_std = check_f64("min_std", min_std, 1e-4, 1.0)?;
        Ok(self)
    }
}

/// Turns raw anomaly scores in `[0, 1]` into a likelihood score in `[0, 1]`
/// that means the same on every series.
///
/// The short moving average of raw scores is compared with the distribution
/// (mean and variance) of those averages over the long window; the score is
/// the Gaussian upper-tail probability `q` on a log scale,
/// `ln(q + 1e-10) / ln(1e-10)`: 0.5 for `q = 1e-5`, 1 for `q → 0`, and 0 when
/// the average is at or below its usual level.
///
/// O(1) per point; memory: the short window (raw scores in steps of
/// 1/65 535, summed exactly) plus 32 blocks of sums (`f32`).
///
/// # Examples
///
/// ```
/// use watchpost::detect::AnomalyLikelihood;
///
/// let mut l = AnomalyLikelihood::new(Default::default());
/// for i in 0..1_000 {
///     l.update(if i % 10 == 0 { 0.3 } else { 0.1 });
/// }
/// assert!(l.update(0.1) < 0.1);
/// let mut peak = 0.0_f64;
/// for _ in 0..5 {
///     peak = peak.max(l.update(1.0));
/// }
/// assert!(peak > 0.9);
/// ```
#[derive(Debug, Clone)]
pub struct AnomalyLikelihood {
    cfg: LikelihoodConfig,
    block_len: usize,
    short: Ring<u16>,
    /// Sum of the short window, in units of 1/65 535.
    short_sum: u32,
    /// Sum and sum of squares of each full block of `block_len` averages.
    blocks: Vec<[f32; 2]>,
    /// Count, sum and sum of squares over the full blocks.
    blocks_total: [f64; 3],
    next_block: usize,
    current: [f64; 3],
    seen: usize,
}

impl AnomalyLikelihood {
    /// Builds the normaliser.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = watchpost::detect::AnomalyLikelihood::new(Default::default());
    /// ```
    pub fn new(cfg: LikelihoodConfig) -> Self {
        let block_len = cfg.long_window.div_ceil(BLOCKS);
        AnomalyLikelihood {
            short: Ring::new(cfg.short_window),
            cfg,
            block_len,
            short_sum: 0,
            blocks: Vec::with_capacity(BLOCKS),
            blocks_total: [0.0; 3],
            next_block: 0,
            current: [0.0; 3],
            seen: 0,
        }
    }

    /// Forgets everything learnt.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = watchpost::detect::AnomalyLikelihood::new(Default::default());
    /// l.update(1.0);
    /// l.reset();
    /// ```
    pub fn reset(&mut self) {
        *self = AnomalyLikelihood::new(self.cfg.clone());
    }

    /// Bytes held, its own size plus heap capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = watchpost::detect::AnomalyLikelihood::new(Default::default());
    /// assert!(l.memory_bytes() < 2_000);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.short.heap_bytes()
            + self.blocks.capacity() * std::mem::size_of::<[f32; 2]>()
    }

    /// How far `avg` lies above the mean of the averages in the long
    /// window, in standard deviations (floored at `min_std`); 0 at or below it.
    fn z_above(&self, avg: f64) -> f64 {
        let mut acc = self.current;
        for (a, b) in acc.iter_mut().zip(self.blocks_total) {
            *a += b;
        }
        if acc[0] == 0.0 {
            return avg / self.cfg.min_std;
        }
        let inv = acc[0].recip();
        let mean = acc[1] * inv;
        if avg <= mean {
            return 0.0;
        }
        let var = (acc[2] * inv - mean * mean).max(0.0);
        (avg - mean) / var.sqrt().max(self.cfg.min_std)
    }

    /// Feeds one raw score (clamped into `[0, 1]`, NaN as 0) and returns the
    /// likelihood score in `[0, 1]`; 0 while learning.
    pub fn update(&mut self, raw: f64) -> f64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in 0..=65 535
        let q = (unit(raw) * SCALE).round() as u16;
        if let Some(old) = self.short.push(q) {
            self.short_sum -= u32::from(old);
        }
        self.short_sum += u32::from(q);
        let avg = (f64::from(self.short_sum) / (SCALE * as_f64(self.short.len()))).clamp(0.0, 1.0);
        let score =
            if self.seen >= self.cfg.learning { tail_score(self.z_above(avg)) } else { 0.0 };
        self.current[0] += 1.0;
        self.current[1] += avg;
        self.current[2] += avg * avg;
        if self.current[0] >= as_f64(self.block_len) {
            #[allow(clippy::cast_possible_truncation)] // f32 is the blocks' precision
            let block = [self.current[1] as f32, self.current[2] as f32];
            if self.blocks.len() < BLOCKS {
                self.blocks.push(block);
            } else {
                self.blocks[self.next_block] = block;
            }
            self.next_block = (self.next_block + 1) % BLOCKS;
            self.current = [0.0; 3];
            let mut total = [as_f64(self.blocks.len() * self.block_len), 0.0, 0.0];
            for b in &self.blocks {
                total[1] += f64::from(b[0]);
                total[2] += f64::from(b[1]);
            }
            self.blocks_total = total;
        }
        self.seen = self.seen.saturating_add(1);
        score
    }
}

/// Raw scores are kept in steps of `1 / SCALE`.
const SCALE: f64 = 65_535.0;

/// Log-scaled Gaussian upper tail of `z`: `ln(q + 1e-10) / ln(1e-10)`, and 0
/// at or below the mean (`z <= 0`, where it would be at most 0.03).
///
/// Read from a table of [`TAIL_POINTS`] values over `0..TAIL_MAX` with linear
/// interpolation (within 1e-5 of [`tail_score_exact`]); computed exactly
/// beyond the table.
pub(crate) fn tail_score(z: f64) -> f64 {
    if z.is_nan() || z <= 0.0 {
        return 0.0;
    }
    let pos = z * TAIL_STEPS_PER_UNIT;
    if pos >= as_f64(TAIL_POINTS - 1) {
        return tail_score_exact(z);
    }
    let table = tail_table();
    let i = floor_index(pos, TAIL_POINTS - 2);
    let frac = pos - as_f64(i);
    let (lo, hi) = (f64::from(table[i]), f64::from(table[i + 1]));
    lo + (hi - lo) * frac
}

/// Points of the [`tail_score`] table (4 KiB of `f32`, shared by all series).
const TAIL_POINTS: usize = 1025;
/// The table covers `z` in `0..TAIL_MAX`.
const TAIL_MAX: f64 = 8.0;
#[allow(clippy::cast_precision_loss)] // a small constant
const TAIL_STEPS_PER_UNIT: f64 = (TAIL_POINTS - 1) as f64 / TAIL_MAX;

fn tail_table() -> &'static [f32; TAIL_POINTS] {
    static TABLE: std::sync::OnceLock<[f32; TAIL_POINTS]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        #[allow(clippy::cast_possible_truncation)] // f32 is the table's precision
        // the first point is the limit from above (0.03), not the 0 at z = 0
        std::array::from_fn(|i| {
            tail_score_exact((as_f64(i) / TAIL_STEPS_PER_UNIT).max(f64::MIN_POSITIVE)) as f32
        })
    })
}

/// [`tail_score`] from `erfc` and `ln` (the table's source).
pub(crate) fn tail_score_exact(z: f64) -> f64 {
    if z.is_nan() || z <= 0.0 {
        return 0.0;
    }
    let q = 0.5 * erfc(z / std::f64::consts::SQRT_2);
    unit((q + 1e-10).ln() / 1e-10_f64.ln())
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are expected
mod tests {
    use super::*;

    #[test]
    fn tail_score_is_monotonic_and_calibrated() {
        assert_eq!(tail_score(-5.0), 0.0);
        assert!(tail_score(0.01) < 0.031);
        assert!((tail_score(4.265) - 0.5).abs() < 0.01); // q = 1e-5
        assert!(tail_score(10.0) > 0.99);
        assert_eq!(tail_score(f64::INFINITY), 1.0);
        assert_eq!(tail_score(f64::NAN), 0.0);
        let mut last = 0.0;
        for i in 0..100 {
            let s = tail_score(f64::from(i) / 10.0 - 3.0);
            assert!(s >= last);
            last = s;
        }
    }

    #[test]
    fn the_tail_table_follows_erfc() {
        let mut worst = 0.0_f64;
        for i in 0..20_000 {
            let z = f64::from(i) * 0.000_5;
            worst = worst.max((tail_score(z) - tail_score_exact(z)).abs());
        }
        assert!(worst < 1e-5, "{worst}");
        // an independent oracle: q = 1e-5 at z = 4.264891 (statrs-free)
        assert!((tail_score(4.264_891) - 0.5).abs() < 1e-4);
    }

    #[test]
    fn steady_raw_scores_give_low_likelihood() {
        let mut l = AnomalyLikelihood::new(LikelihoodConfig::default());
        let noise = crate::detect::testutil::noise(5_000, 5);
        let worst = noise.iter().map(|e| l.update(0.3 + 0.2 * e)).skip(300).fold(0.0, f64::max);
        assert!(worst < 0.5, "{worst}");
    }

    #[test]
    fn memory_is_fixed() {
        let mut l = AnomalyLikelihood::new(LikelihoodConfig::default());
        for i in 0..100_000 {
            l.update(f64::from(i % 7) / 7.0);
        }
        let m = l.memory_bytes();
        for _ in 0..100_000 {
            l.update(0.5);
        }
        assert_eq!(l.memory_bytes(), m);
    }
}
