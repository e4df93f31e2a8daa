//! Range breakout: a value beyond the recent minimum or maximum.

/// Points per block of the range window.
const BLOCK: usize = 64;

/// The minimum and maximum of roughly the last `blocks * 64` points, kept as
/// per-block extremes so the state is fixed-size and each update O(1)
/// amortised; scores how far a value breaks out of that range.
#[derive(Debug, Clone)]
pub(crate) struct RangeBreakout {
    blocks: Vec<(f64, f64)>,
    cap: usize,
    next: usize,
    current: (f64, f64),
    in_current: usize,
    full: (f64, f64),
    seen: usize,
    warmup: usize,
}

impl RangeBreakout {
    pub(crate) fn new(blocks: usize, warmup: usize) -> Self {
        RangeBreakout {
            blocks: Vec::with_capacity(blocks.max(1)),
            cap: blocks.max(1),
            next: 0,
            current: (f64::INFINITY, f64::NEG_INFINITY),
            in_current: 0,
            full: (f64::INFINITY, f64::NEG_INFINITY),
            seen: 0,
            warmup,
        }
    }

    /// Forgets every point, keeping the settings.
    pub(crate) fn reset(&mut self) {
        *self = RangeBreakout::new(self.cap, self.warmup);
    }

    /// The current (min, max), once warm.
    pub(crate) fn range(&self) -> Option<(f64, f64)> {
        let lo = self.full.0.min(self.current.0);
        let hi = self.full.1.max(self.current.1);
        (self.seen >= self.warmup && lo <= hi).then_some((lo, hi))
    }

    /// How far `x` lies outside the range, as a fraction of the range's
    /// width (0 inside; infinite when the range has no width); 0 before warm-up.
    /// How far `x` lies beyond the recent range, as a fraction of its width;
    /// 0 when it lies less than `floor` beyond it.
    pub(crate) fn excess(&self, x: f64, floor: f64) -> f64 {
        let Some((lo, hi)) = self.range() else { return 0.0 };
        let out = (x - hi).max(lo - x);
        if out <= 0.0 || out < floor {
            0.0
        } else if hi > lo {
            out / (hi - lo)
        } else {
            f64::INFINITY
        }
    }

    pub(crate) fn learn(&mut self, x: f64) {
        self.current = (self.current.0.min(x), self.current.1.max(x));
        self.in_current += 1;
        self.seen = self.seen.saturating_add(1);
        if self.in_current == BLOCK {
            if self.blocks.len() < self.cap {
                self.blocks.push(self.current);
            } else {
                self.blocks[self.next] = self.current;
            }
            self.next = (self.next + 1) % self.cap;
            self.current = (f64::INFINITY, f64::NEG_INFINITY);
            self.in_current = 0;
            self.full =
                self.blocks.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(a, b)| {
                    (lo.min(a), hi.max(b))
                });
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<(f64, f64)>()
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are expected
mod tests {
    use super::*;

    #[test]
    fn breakout_is_relative_to_the_recent_range() {
        let mut b = RangeBreakout::new(4, 10);
        for i in 0..300 {
            b.learn(f64::from(i % 10));
        }
        assert_eq!(b.excess(5.0, 0.0), 0.0);
        assert!((b.excess(10.8, 0.0) - 0.2).abs() < 1e-12);
        assert!((b.excess(-0.9, 0.0) - 0.1).abs() < 1e-12);
        // old extremes age out
        b.learn(1_000.0);
        assert!(b.excess(500.0, 0.0) == 0.0);
        for _ in 0..BLOCK * 5 {
            b.learn(5.0);
        }
        assert_eq!(b.range(), Some((5.0, 5.0)));
        assert_eq!(b.excess(5.1, 0.0), f64::INFINITY);
    }
}
