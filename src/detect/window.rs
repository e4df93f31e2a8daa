//! Bounded buffers shared by the detectors: a sorted window for rolling
//! quantiles.

/// The last `cap` values, kept sorted with each one's arrival slot, so any
/// quantile of the window costs O(1) and an update O(cap) memory moves
/// (10 bytes a value).
#[derive(Debug, Clone)]
pub(crate) struct SortedWindow {
    /// The window's values in order.
    sorted: Vec<f64>,
    /// For each sorted value, its slot in arrival order (`0..cap`, cyclic),
    /// so the oldest value is found without a second copy of the window.
    slots: Vec<u16>,
    /// The slot the next value takes: the oldest one's once the window is full.
    next: u16,
    cap: usize,
}

impl SortedWindow {
    /// A window of `cap` values (at most 65 536).
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, 1 << 16);
        SortedWindow {
            sorted: Vec::with_capacity(cap),
            slots: Vec::with_capacity(cap),
            next: 0,
            cap,
        }
    }

    pub(crate) fn push(&mut self, v: f64) {
        let slot = self.next;
        self.next = if usize::from(slot) + 1 == self.cap { 0 } else { slot + 1 };
        let j = self.sorted.partition_point(|&s| s < v);
        if self.sorted.len() == self.cap {
            // the oldest value leaves. Moving only the values between its
            // slot and the new one's gives the same order as a remove and an
            // insert, with a third of the copying on average.
            let i = find(&self.slots, slot);
            if j <= i {
                self.sorted.copy_within(j..i, j + 1);
                self.slots.copy_within(j..i, j + 1);
                self.sorted[j] = v;
                self.slots[j] = slot;
            } else {
                self.sorted.copy_within(i + 1..j, i);
                self.slots.copy_within(i + 1..j, i);
                self.sorted[j - 1] = v;
                self.slots[j - 1] = slot;
            }
            return;
        }
        self.sorted.insert(j, v);
        self.slots.insert(j, slot);
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
        Some(self.between(lo, pos - as_f64(lo)))
    }

    /// The median, upper and lower quartile, bit for bit as [`Self::quantile`]
    /// gives them, with the positions in integer steps: a quarter of `n - 1`
    /// is exact in `f64`, so its floor and fraction are too. `None` when empty.
    pub(crate) fn quartiles(&self) -> Option<[f64; 3]> {
        let last = self.sorted.len().checked_sub(1)?;
        let at = |quarters: usize| {
            let k = quarters * last;
            self.between(k / 4, as_f64(k % 4) * 0.25)
        };
        Some([at(2), at(3), at(1)])
    }

    /// The value `frac` of the way from the `lo`-th to the next sorted value.
    fn between(&self, lo: usize, frac: f64) -> f64 {
        let hi = (lo + 1).min(self.sorted.len() - 1);
        self.sorted[lo] + (self.sorted[hi] - self.sorted[lo]) * frac
    }

    pub(crate) fn clear(&mut self) {
        self.sorted.clear();
        self.slots.clear();
        self.next = 0;
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<f64>()
            + self.slots.capacity() * std::mem::size_of::<u16>()
    }
}

/// Index of `slot` in `slots` (0 if absent): a scan in chunks without an
/// early exit inside a chunk, which the compiler turns into vector compares.
#[allow(clippy::needless_bitwise_bool)] // no branch per element, on purpose
fn find(slots: &[u16], slot: u16) -> usize {
    const CHUNK: usize = 16;
    let mut base = 0;
    for chunk in slots.chunks(CHUNK) {
        if chunk.iter().fold(false, |hit, &s| hit | (s == slot)) {
            return base + chunk.iter().position(|&s| s == slot).unwrap_or(0);
        }
        base += CHUNK;
    }
    0
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
        x as usize // truncation is the floor here (0 < x < max), without a libm call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            cap in 1usize..40,
        ) {
            let mut w = SortedWindow::new(cap);
            for (k, v) in values.iter().enumerate() {
                w.push(f64::from(*v));
                let start = (k + 1).saturating_sub(cap);
                let mut want: Vec<f64> = values[start..=k].iter().map(|&x| f64::from(x)).collect();
                want.sort_by(f64::total_cmp);
                proptest::prop_assert_eq!(&w.sorted, &want);
                let fresh = [0.5, 0.75, 0.25].map(|q| w.quantile(q).map(f64::to_bits));
                let stepped = w.quartiles().expect("not empty").map(|v| Some(v.to_bits()));
                proptest::prop_assert_eq!(stepped, fresh);
            }
        }
    }
}
