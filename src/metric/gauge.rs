use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
struct GaugeCore {
    bits: AtomicU64,
    nonfinite: AtomicU64,
}

/// A value that goes up and down, stored as `f64` bits in an atomic. Cloning shares the value.
///
/// Non-finite inputs (NaN, ±∞) are dropped and counted; the gauge keeps its value.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let users = engine.gauge("active_users")?;
/// users.set(10.0);
/// users.add(2.0);
/// users.sub(1.0);
/// users.set(f64::NAN); // dropped and counted
/// assert_eq!(users.get(), 11.0);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a gauge does nothing unless you set it"]
pub struct Gauge {
    core: Arc<GaugeCore>,
}

impl Gauge {
    /// A gauge not attached to any engine, starting at 0.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::Gauge::detached().get(), 0.0);
    /// ```
    pub fn detached() -> Self {
        Gauge::default()
    }

    /// Sets the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = watchpost::Gauge::detached();
    /// g.set(3.5);
    /// assert_eq!(g.get(), 3.5);
    /// ```
    #[inline]
    pub fn set(&self, v: f64) {
        if v.is_finite() {
            self.core.bits.store(v.to_bits(), Relaxed);
        } else {
            self.core.nonfinite.fetch_add(1, Relaxed);
        }
    }

    /// Adds `delta` (which may be negative).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = watchpost::Gauge::detached();
    /// g.add(2.0);
    /// g.add(-0.5);
    /// assert_eq!(g.get(), 1.5);
    /// ```
    #[inline]
    pub fn add(&self, delta: f64) {
        if !delta.is_finite() {
            self.core.nonfinite.fetch_add(1, Relaxed);
            return;
        }
        let mut cur = self.core.bits.load(Relaxed);
        loop {
            let next = f64::from_bits(cur) + delta;
            if !next.is_finite() {
                self.core.nonfinite.fetch_add(1, Relaxed);
                return;
            }
            match self.core.bits.compare_exchange_weak(cur, next.to_bits(), Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Subtracts `delta`.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = watchpost::Gauge::detached();
    /// g.sub(2.0);
    /// assert_eq!(g.get(), -2.0);
    /// ```
    #[inline]
    pub fn sub(&self, delta: f64) {
        self.add(-delta);
    }

    /// The current value.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = watchpost::Gauge::detached();
    /// g.set(1.0);
    /// assert_eq!(g.get(), 1.0);
    /// ```
    pub fn get(&self) -> f64 {
        f64::from_bits(self.core.bits.load(Relaxed))
    }

    /// How many non-finite inputs were dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = watchpost::Gauge::detached();
    /// g.set(f64::INFINITY);
    /// assert_eq!(g.dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.core.nonfinite.load(Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn same_as(&self, other: &Gauge) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_adds_are_not_lost() {
        let g = Gauge::detached();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let g = g.clone();
                s.spawn(move || (0..5_000).for_each(|_| g.add(1.0)));
            }
        });
        assert_eq!(g.get(), 20_000.0);
    }

    #[test]
    fn overflow_to_infinity_is_dropped() {
        let g = Gauge::detached();
        g.set(f64::MAX);
        g.add(f64::MAX);
        assert_eq!(g.get(), f64::MAX);
        assert_eq!(g.dropped(), 1);
        assert!(g.same_as(&g.clone()));
    }
}
