//! Anomaly likelihood: raw scores normalised against their own history.

use statrs::function::erf::erfc;

use super::window::{as_f64, floor_index};
use super::{check_f64, check_usize, unit};
use crate::Result;

/// Number of blocks the long window is kept in.
const BLOCKS: usize = 32;
/// Short windows of up to this many raw scores are kept inside the struct
/// (the default is 20); longer ones in one heap buffer.
const INLINE_SHORT: usize = 24;

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
// the fields read on every point first, so they share a cache line or two
#[repr(C)]
pub struct AnomalyLikelihood {
    /// Count, sum and sum of squares of the averages in the current block.
    current: [f64; 3],
    /// Count, sum and sum of squares over the full blocks.
    blocks_total: [f64; 3],
    min_std: f64,
    /// Sum of the short window, in units of 1/65 535.
    short_sum: u32,
    /// `1 / (SCALE * short_len)`, so the short average is a product.
    inv_len: f64,
    /// Points seen (saturating), and how many of them are only learnt from.
    seen: u32,
    learning: u32,
    block_len: u32,
    /// Fill, oldest slot and length of the short window.
    short_len: u16,
    short_head: u16,
    short_cap: u16,
    /// Full blocks so far (at most `BLOCKS`) and the slot of the next one.
    filled: u8,
    next_block: u8,
    /// The short window (raw scores in units of 1/65 535) when it fits here.
    short: [u16; INLINE_SHORT],
    /// Sum and sum of squares of each full block of `block_len` averages.
    blocks: [[f32; 2]; BLOCKS],
    /// The short window when it is longer than `INLINE_SHORT` (else empty).
    spill: Vec<u16>,
    /// The long window as configured (the rest of the settings are above).
    long_window: u32,
}

impl AnomalyLikelihood {
    /// Builds the normaliser.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = watchpost::detect::AnomalyLikelihood::new(Default::default());
    /// ```
    #[allow(clippy::needless_pass_by_value)] // by value, like every detector's settings
    pub fn new(cfg: LikelihoodConfig) -> Self {
        // the setters keep these far inside the narrower types
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let cap = cfg.short_window.clamp(1, usize::from(u16::MAX));
        AnomalyLikelihood {
            current: [0.0; 3],
            blocks_total: [0.0; 3],
            min_std: cfg.min_std,
            inv_len: 0.0,
            short_sum: 0,
            seen: 0,
            learning: narrow(cfg.learning),
            block_len: narrow(cfg.long_window.div_ceil(BLOCKS)),
            short_len: 0,
            short_head: 0,
            short_cap: u16::try_from(cap).unwrap_or(u16::MAX),
            filled: 0,
            next_block: 0,
            short: [0; INLINE_SHORT],
            blocks: [[0.0; 2]; BLOCKS],
            spill: if cap > INLINE_SHORT { vec![0; cap] } else { Vec::new() },
            long_window: narrow(cfg.long_window),
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
        let cfg = LikelihoodConfig {
            short_window: usize::from(self.short_cap),
            long_window: self.long_window as usize,
            learning: self.learning as usize,
            min_std: self.min_std,
        };
        *self = AnomalyLikelihood::new(cfg);
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
        std::mem::size_of::<Self>() + self.spill.capacity() * std::mem::size_of::<u16>()
    }

    /// How far `avg` lies above the mean of the averages in the long
    /// window, in standard deviations (floored at `min_std`); 0 at or below it.
    fn z_above(&self, avg: f64) -> f64 {
        let mut acc = self.current;
        for (a, b) in acc.iter_mut().zip(self.blocks_total) {
            *a += b;
        }
        if acc[0] == 0.0 {
            return avg / self.min_std;
        }
        let inv = acc[0].recip();
        let mean = acc[1] * inv;
        if avg <= mean {
            return 0.0;
        }
        let var = (acc[2] * inv - mean * mean).max(0.0);
        (avg - mean) / var.sqrt().max(self.min_std)
    }

    /// Feeds one raw score (clamped into `[0, 1]`, NaN as 0) and returns the
    /// likelihood score in `[0, 1]`; 0 while learning.
    pub fn update(&mut self, raw: f64) -> f64 {
        let q = quantise(raw);
        if let Some(old) = self.push_short(q) {
            self.short_sum -= u32::from(old);
        }
        self.short_sum += u32::from(q);
        let avg = (f64::from(self.short_sum) * self.inv_len).clamp(0.0, 1.0);
        let score = if self.seen >= self.learning { tail_score(self.z_above(avg)) } else { 0.0 };
        self.current[0] += 1.0;
        self.current[1] += avg;
        self.current[2] += avg * avg;
        if self.current[0] >= f64::from(self.block_len) {
            self.close_block();
        }
        self.seen = self.seen.saturating_add(1);
        score
    }

    /// Appends a quantised raw score to the short window, returning the one
    /// it evicted once the window is full.
    fn push_short(&mut self, q: u16) -> Option<u16> {
        let cap = usize::from(self.short_cap);
        let buf = if self.spill.is_empty() { &mut self.short[..cap] } else { &mut self.spill[..] };
        if self.short_len < self.short_cap {
            buf[usize::from(self.short_len)] = q;
            self.short_len += 1;
            self.inv_len = (SCALE * f64::from(self.short_len)).recip();
            return None;
        }
        let head = usize::from(self.short_head);
        let old = std::mem::replace(&mut buf[head], q);
        self.short_head = if head + 1 == cap { 0 } else { self.short_head + 1 };
        Some(old)
    }

    /// Stores the current block's sums and starts the next block.
    #[cold]
    fn close_block(&mut self) {
        #[allow(clippy::cast_possible_truncation)] // f32 is the blocks' precision
        let block = [self.current[1] as f32, self.current[2] as f32];
        self.blocks[usize::from(self.next_block)] = block;
        if usize::from(self.filled) < BLOCKS {
            self.filled += 1;
        }
        self.next_block =
            if usize::from(self.next_block) + 1 == BLOCKS { 0 } else { self.next_block + 1 };
        self.current = [0.0; 3];
        let filled = usize::from(self.filled);
        let mut total = [f64::from(self.block_len) * as_f64(filled), 0.0, 0.0];
        for b in &self.blocks[..filled] {
            total[1] += f64::from(b[0]);
            total[2] += f64::from(b[1]);
        }
        self.blocks_total = total;
    }
}

/// A raw score clamped into `[0, 1]` (NaN as 0) in units of `1 / SCALE`,
/// rounded to the nearest unit, halves away from zero: what
/// `(unit(raw) * SCALE).round()` gives, without a call into libm.
fn quantise(raw: f64) -> u16 {
    let y = unit(raw) * SCALE;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // y in 0..=65 535
    let whole = y as u16;
    // exact: `y` and its integer part share their leading bits
    let frac = y - f64::from(whole);
    whole + u16::from(frac >= 0.5)
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

    /// The straightforward form of the normaliser: a queue for the short
    /// window, `f64::round`, a growing list of blocks.
    struct Reference {
        cfg: LikelihoodConfig,
        short: std::collections::VecDeque<u16>,
        blocks: Vec<[f32; 2]>,
        next: usize,
        current: [f64; 3],
        seen: usize,
    }

    impl Reference {
        fn update(&mut self, raw: f64) -> f64 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let q = (unit(raw) * SCALE).round() as u16;
            self.short.push_back(q);
            if self.short.len() > self.cfg.short_window {
                self.short.pop_front();
            }
            let sum: u32 = self.short.iter().map(|&v| u32::from(v)).sum();
            let avg = (f64::from(sum) * (SCALE * as_f64(self.short.len())).recip()).clamp(0.0, 1.0);
            let block_len = self.cfg.long_window.div_ceil(BLOCKS);
            let mut acc = [as_f64(self.blocks.len() * block_len), 0.0, 0.0];
            for b in &self.blocks {
                acc[1] += f64::from(b[0]);
                acc[2] += f64::from(b[1]);
            }
            for (a, c) in acc.iter_mut().zip(self.current) {
                *a += c;
            }
            let z = if acc[0] == 0.0 {
                avg / self.cfg.min_std
            } else {
                let mean = acc[1] * acc[0].recip();
                let var = (acc[2] * acc[0].recip() - mean * mean).max(0.0);
                if avg <= mean { 0.0 } else { (avg - mean) / var.sqrt().max(self.cfg.min_std) }
            };
            let score = if self.seen >= self.cfg.learning { tail_score(z) } else { 0.0 };
            self.current =
                [self.current[0] + 1.0, self.current[1] + avg, self.current[2] + avg * avg];
            if self.current[0] >= as_f64(block_len) {
                #[allow(clippy::cast_possible_truncation)]
                let block = [self.current[1] as f32, self.current[2] as f32];
                if self.blocks.len() < BLOCKS {
                    self.blocks.push(block);
                } else {
                    self.blocks[self.next] = block;
                }
                self.next = (self.next + 1) % BLOCKS;
                self.current = [0.0; 3];
            }
            self.seen += 1;
            score
        }
    }

    proptest::proptest! {
        /// Rounding without libm is `f64::round` on every score in `[0, 1]`.
        #[test]
        fn quantise_is_round(raw in -0.5f64..1.5, k in 0u32..65_536) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let round = |x: f64| (unit(x) * SCALE).round() as u16;
            proptest::prop_assert_eq!(quantise(raw), round(raw));
            // the halves, where the two roundings would part
            let half = (f64::from(k) + 0.5) / SCALE;
            proptest::prop_assert_eq!(quantise(half), round(half));
            let next = f64::from_bits(half.to_bits() + 1);
            proptest::prop_assert_eq!(quantise(next), round(next));
            let prev = f64::from_bits(half.to_bits() - 1);
            proptest::prop_assert_eq!(quantise(prev), round(prev));
        }

        /// The packed normaliser (short window inside the struct or on the
        /// heap, fixed block array) scores exactly like the straightforward one.
        #[test]
        fn packed_state_scores_like_the_reference(
            raws in proptest::collection::vec(0.0f64..1.0, 1..3_000),
            short in proptest::sample::select(vec![1usize, 3, 20, 24, 25, 100]),
            long in 32usize..600,
            learning in 1usize..300,
        ) {
            let cfg = LikelihoodConfig::default()
                .with_short_window(short)
                .and_then(|c| c.with_long_window(long))
                .and_then(|c| c.with_learning(learning))
                .expect("valid settings");
            let mut packed = AnomalyLikelihood::new(cfg.clone());
            let mut reference = Reference {
                cfg,
                short: std::collections::VecDeque::new(),
                blocks: Vec::new(),
                next: 0,
                current: [0.0; 3],
                seen: 0,
            };
            for (i, &raw) in raws.iter().enumerate() {
                // some raw scores far from the others, so the tails are reached
                let raw = if i % 97 == 96 { 1.0 } else { raw * raw * 0.3 };
                let (a, b) = (packed.update(raw), reference.update(raw));
                proptest::prop_assert_eq!(a.to_bits(), b.to_bits(), "point {}: {} vs {}", i, a, b);
            }
        }
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
