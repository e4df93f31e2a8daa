//! Novelty of the recent shape of a series, over a quantised short window.

use super::breakout::RangeBreakout;
use super::window::{as_f64, floor_index};
use super::{Detector, check_usize, clean_input};
use crate::Result;

/// Settings of [`Novelty`]; every setter validates its argument.
///
/// # Examples
///
/// ```
/// use watchpost::detect::NoveltyConfig;
///
/// let cfg = NoveltyConfig::default().with_levels(12)?.with_order(4)?;
/// assert!(NoveltyConfig::default().with_table_bits(30).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NoveltyConfig {
    levels: usize,
    order: usize,
    table_bits: u32,
    range_window: usize,
    warmup: usize,
}

impl Default for NoveltyConfig {
    /// 10 levels of the range of the last 1 024 points, patterns of 3 points,
    /// tables of 2^10 counters, 64 points of warm-up.
    fn default() -> Self {
        NoveltyConfig { levels: 10, order: 3, table_bits: 10, range_window: 1024, warmup: 64 }
    }
}

impl NoveltyConfig {
    /// Sets how many levels the current range is quantised into (2..=64).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `levels` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::NoveltyConfig::default().with_levels(1).is_err());
    /// ```
    pub fn with_levels(mut self, levels: usize) -> Result<Self> {
        self.levels = check_usize("levels", levels, 2, 64)?;
        Ok(self)
    }

    /// Sets the pattern length in points (1..=8).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `order` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::NoveltyConfig::default().with_order(9).is_err());
    /// ```
    pub fn with_order(mut self, order: usize) -> Result<Self> {
        self.order = check_usize("order", order, 1, 8)?;
        Ok(self)
    }

    /// Sets the size of the pattern table to `2^bits` counters (6..=16), the
    /// cap on this detector's memory.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `table_bits` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::NoveltyConfig::default().with_table_bits(12).is_ok());
    /// ```
    pub fn with_table_bits(mut self, bits: u32) -> Result<Self> {
        self.table_bits =
            u32::try_from(check_usize("table_bits", bits as usize, 6, 16)?).unwrap_or(10);
        Ok(self)
    }

    /// Sets how many recent points define the range that is quantised
    /// (64..=262 144, rounded up to a multiple of 64).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `range_window` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::NoveltyConfig::default().with_range_window(8).is_err());
    /// ```
    pub fn with_range_window(mut self, points: usize) -> Result<Self> {
        self.range_window = check_usize("range_window", points, 64, 1 << 18)?;
        Ok(self)
    }
}

/// Scores how unpredictable the newest point is given the few before it.
///
/// Values are quantised into levels of the range (minimum to maximum) of the
/// last `range_window` points (kept as per-block extremes, so it moves in
/// steps and familiar shapes stay familiar), the last `order` levels form a
/// pattern, and two hashed tables of counters (capped at `2^table_bits` each,
/// halved when they fill up) count patterns and their contexts. The score is `1 - count(pattern) /
/// (count(context) + 1)`: 1 for a shape never seen, near 0 for a shape the
/// series repeats.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{Detector, Novelty};
///
/// let mut d = Novelty::new(Default::default());
/// let wave = [0.0, 5.0, 10.0, 5.0];
/// for i in 0..400 {
///     d.update(i, wave[i as usize % 4]);
/// }
/// assert!(d.update(400, 0.0) < 0.1); // the wave goes on
/// assert!(d.update(401, 10.0) > 0.9); // a shape never seen
/// ```
#[derive(Debug, Clone)]
pub struct Novelty {
    cfg: NoveltyConfig,
    range: RangeBreakout,
    recent: [u8; 8],
    pattern: Vec<u16>,
    context: Vec<u16>,
    total: u32,
    seen: usize,
}

impl Novelty {
    /// Builds the detector.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::detect::Novelty::new(Default::default());
    /// ```
    pub fn new(cfg: NoveltyConfig) -> Self {
        let size = 1usize << cfg.table_bits;
        Novelty {
            range: RangeBreakout::new(cfg.range_window.div_ceil(64), 1),
            cfg,
            recent: [0; 8],
            pattern: vec![0; size],
            context: vec![0; size],
            total: 0,
            seen: 0,
        }
    }

    fn level(&self, x: f64) -> u8 {
        let l = self.cfg.levels;
        let (lo, hi) = self.range.range().unwrap_or((x, x));
        let idx = if x < lo {
            0
        } else if x > hi {
            l + 1
        } else if hi > lo {
            1 + floor_index((x - lo) / (hi - lo) * as_f64(l), l - 1)
        } else {
            1
        };
        u8::try_from(idx).unwrap_or(u8::MAX)
    }

    fn hash(levels: &[u8], salt: u64) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ salt;
        for &b in levels {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^ (h >> 29)
    }

    /// Scores `x` and learns it.
    pub(crate) fn step(&mut self, x: f64) -> f64 {
        let level = self.level(x);
        let k = self.cfg.order;
        self.recent.copy_within(0..7, 1);
        self.recent[0] = level;
        let mask = (1usize << self.cfg.table_bits) - 1;
        let slot = |h: u64| usize::try_from(h).unwrap_or(0) & mask;
        let p = slot(Self::hash(&self.recent[..k], 1));
        let c = slot(Self::hash(&self.recent[1..k], 2));
        let score = if self.seen >= self.cfg.warmup {
            1.0 - f64::from(self.pattern[p]) / (f64::from(self.context[c]) + 1.0)
        } else {
            0.0
        };
        self.pattern[p] = self.pattern[p].saturating_add(1);
        self.context[c] = self.context[c].saturating_add(1);
        self.total += 1;
        if self.total >= 1 << 14 {
            for v in self.pattern.iter_mut().chain(self.context.iter_mut()) {
                *v /= 2;
            }
            self.total /= 2;
        }
        self.range.learn(x);
        self.seen = self.seen.saturating_add(1);
        score.clamp(0.0, 1.0)
    }
}

impl Detector for Novelty {
    fn name(&self) -> &'static str {
        "novelty"
    }

    fn update(&mut self, _timestamp_ms: i64, value: f64) -> f64 {
        match clean_input(value) {
            Some(x) => self.step(x),
            None => 0.0,
        }
    }

    fn expected_band(&self) -> Option<(f64, f64)> {
        self.range.range()
    }

    fn reset(&mut self) {
        *self = Novelty::new(self.cfg.clone());
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.pattern.capacity() + self.context.capacity()) * 2
            + self.range.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::*;

    fn det() -> Novelty {
        Novelty::new(NoveltyConfig::default())
    }

    #[test]
    fn repeated_shape_is_familiar_and_a_new_one_is_not() {
        let mut values: Vec<f64> = (0..3_000).map(|i| [1.0, 3.0, 2.0, 5.0][i % 4]).collect();
        values[2_000] = 4.0;
        let scores = run(&mut det(), &values);
        assert!(scores[2_000] > 0.9);
        assert!(max_excluding(&scores, 2_000..2_004, 200) < 0.5);
    }

    #[test]
    fn a_step_is_novel_then_familiar() {
        let values: Vec<f64> =
            (0..4_000).map(|i| if i < 2_000 { 1.0 } else { 9.0 } + f64::from(i % 3)).collect();
        let scores = run(&mut det(), &values);
        assert!(scores[2_000..2_003].iter().any(|&s| s > 0.9));
        // the range keeps adapting to the new level, so a few patterns stay new
        let late = scores[2_500..].iter().filter(|&&s| s >= 0.5).count();
        assert!(late < 75, "{late}");
    }

    #[test]
    fn constant_series_scores_zero_after_warmup() {
        let scores = run(&mut det(), &vec![7.0; 1_000]);
        assert!(scores[100..].iter().all(|&s| s < 0.05));
    }

    #[test]
    fn memory_is_fixed() {
        let mut d = det();
        let before = d.memory_bytes();
        run(&mut d, &noise(50_000, 3));
        assert_eq!(d.memory_bytes(), before);
    }

    #[test]
    fn non_finite_and_huge_values() {
        check_robust_to_bad_input(&mut det());
    }
}
