//! Bounded buffers shared by the detectors: a ring of recent values and a
//! sorted window for rolling quantiles.

/// A fixed-capacity ring of the most recent values, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    head: usize,
    cap: usize,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        Ring { buf: Vec::with_capacity(cap), head: 0, cap: cap.max(1) }
    }

    /// Appends `v`, returning the value it evicted once the ring is full.
    pub(crate) fn push(&mut self, v: f64) -> Option<f64> {
        if self.buf.len() < self.cap {
            self.buf.push(v);
            None
        } else {
            let old = std::mem::replace(&mut self.buf[self.head], v);
            self.head += 1;
            if self.head == self.cap {
                self.head = 0;
            }
            Some(old)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The value `back` steps before the newest one (`0` is the newest).
    pub(crate) fn back(&self, back: usize) -> Option<f64> {
        let n = self.buf.len();
        if back >= n {
            return None;
        }
        let newest = if n < self.cap { n - 1 } else { (self.head + self.cap - 1) % self.cap };
        Some(self.buf[(newest + self.cap - back) % self.cap])
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<f64>()
    }
}

/// The last `cap` values, kept both in arrival order and sorted, so any
/// quantile of the window costs O(1) and an update O(cap) memory moves.
#[derive(Debug, Clone)]
pub(crate) struct SortedWindow {
    ring: Ring,
    sorted: Vec<f64>,
}

impl SortedWindow {
    pub(crate) fn new(cap: usize) -> Self {
        SortedWindow { ring: Ring::new(cap), sorted: Vec::with_capacity(cap) }
    }

    /// Adds a finite value, dropping the oldest one when full.
    pub(crate) fn push(&mut self, v: f64) {
        let j = self.sorted.partition_point(|&s| s < v);
        if let Some(old) = self.ring.push(v) {
            let i = self.sorted.partition_point(|&s| s < old);
            // `old` is in the window, so `i` points at an equal value. Moving
            // only the values between the two slots gives the same order as a
            // remove and an insert, with a third of the copying on average.
            if i < self.sorted.len() {
                if j <= i {
                    self.sorted.copy_within(j..i, j + 1);
                    self.sorted[j] = v;
                } else {
                    self.sorted.copy_within(i + 1..j, i);
                    self.sorted[j - 1] = v;
                }
                return;
            }
        }
        self.sorted.insert(j, v);
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `q`-quantile (0..=1) by linear interpolation; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let pos = q.clamp(0.0, 1.0) * as_f64(n - 1);
        let lo = floor_index(pos, n - 1);
        let hi = (lo + 1).min(n - 1);
        let frac = pos - as_f64(lo);
        Some(self.sorted[lo] + (self.sorted[hi] - self.sorted[lo]) * frac)
    }

    pub(crate) fn clear(&mut self) {
        self.ring.clear();
        self.sorted.clear();
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes() + self.sorted.capacity() * std::mem::size_of::<f64>()
    }
}

/// `n` as a float; counts in detectors stay far below 2^52, so nothing is lost.
#[allow(clippy::cast_precision_loss)] // window lengths and counters are small
pub(crate) fn as_f64(n: usize) -> f64 {
    n as f64
}

/// `floor(x)` as an index, clamped to `0..=max`; NaN maps to 0.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
pub(crate) fn floor_index(x: f64, max: usize) -> usize {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= as_f64(max) {
        max
    } else {
        x.floor() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest() {
        let mut r = Ring::new(3);
        for v in 1..=5 {
            r.push(f64::from(v));
        }
        assert_eq!(
            (r.back(0), r.back(1), r.back(2), r.back(3)),
            (Some(5.0), Some(4.0), Some(3.0), None)
        );
    }

    #[test]
    fn sorted_window_quantiles_follow_the_window() {
        let mut w = SortedWindow::new(5);
        for v in [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 10.0] {
            w.push(v);
        }
        // window holds 4, 2, 3, 10, 10
        assert_eq!(w.len(), 5);
        assert_eq!(w.quantile(0.0), Some(2.0));
        assert_eq!(w.quantile(0.5), Some(4.0));
        assert_eq!(w.quantile(1.0), Some(10.0));
    }

    proptest::proptest! {
        /// The sorted view is exactly the window's values, sorted, after any pushes.
        #[test]
        fn sorted_view_is_the_window_sorted(
            values in proptest::collection::vec(-5i32..5, 0..200),
            cap in 1usize..12,
        ) {
            let mut w = SortedWindow::new(cap);
            for (k, v) in values.iter().enumerate() {
                w.push(f64::from(*v));
                let start = (k + 1).saturating_sub(cap);
                let mut want: Vec<f64> = values[start..=k].iter().map(|&x| f64::from(x)).collect();
                want.sort_by(f64::total_cmp);
                proptest::prop_assert_eq!(&w.sorted, &want);
            }
        }
    }
}
