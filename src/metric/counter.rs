use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Number of cells a counter is striped over. Threads are spread over the
/// cells, so two threads hammering one counter rarely share a cache line.
const STRIPES: usize = 8;

/// One cell on its own cache line pair (adjacent-line prefetchers pull 128 bytes).
#[repr(align(128))]
#[derive(Default)]
struct Cell128(AtomicU64);

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The stripe this thread writes to, assigned round-robin on first use.
#[inline]
fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v == usize::MAX {
            let n = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
            s.set(n);
            n
        } else {
            v
        }
    })
}

#[derive(Default)]
struct CounterCore {
    cells: [Cell128; STRIPES],
}

/// A monotonic counter. Cloning shares the count.
///
/// Increments go to a per-thread stripe (one of eight cache-line-padded
/// cells), so contended counters scale; reading sums the stripes.
///
/// The total counts modulo 2^64: past `u64::MAX` it wraps (an increment is
/// one atomic add, with no check). The engine's rate series
/// (`<name>:rate`) takes a wrap into account and stays exact; Prometheus
/// sees the drop of the total as a counter reset, which its `rate()` handles.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let sent = engine.counter_with("messages_total", &[("room", "general")])?;
/// sent.inc();
/// sent.add(2);
/// assert_eq!(sent.get(), 3);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a counter does nothing unless you increment it"]
pub struct Counter {
    core: Arc<CounterCore>,
}

impl Counter {
    /// A counter not attached to any engine (useful for tests and defaults).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::Counter::detached();
    /// c.inc();
    /// assert_eq!(c.get(), 1);
    /// ```
    pub fn detached() -> Self {
        Counter::default()
    }

    /// Adds one.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::Counter::detached();
    /// c.inc();
    /// assert_eq!(c.get(), 1);
    /// ```
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::Counter::detached();
    /// c.add(5);
    /// assert_eq!(c.get(), 5);
    /// ```
    #[inline]
    pub fn add(&self, n: u64) {
        self.core.cells[stripe()].0.fetch_add(n, Relaxed);
    }

    /// The current total, modulo 2^64 (it wraps past `u64::MAX`).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::Counter::detached();
    /// assert_eq!(c.get(), 0);
    /// c.add(u64::MAX);
    /// c.inc();
    /// assert_eq!(c.get(), 0); // wrapped; the rate series counts this as +1
    /// ```
    pub fn get(&self) -> u64 {
        self.core.cells.iter().fold(0u64, |acc, c| acc.wrapping_add(c.0.load(Relaxed)))
    }

    /// Raises the total to `value` if it is below; never lowers it (a
    /// counter is monotonic). Concurrent calls agree: each retries until the
    /// cell it raises is unchanged since it read the total. An increment racing with it
    /// on another thread is kept on top.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn raise_to(&self, value: u64) {
        let first = &self.core.cells[0].0;
        loop {
            // Read the cell before the total: the exchange below fails if
            // anything changed the cell since, so the total it used is current.
            let current = first.load(Relaxed);
            let total = self.get();
            if value <= total {
                return;
            }
            let raised = current.wrapping_add(value - total);
            if first.compare_exchange(current, raised, Relaxed, Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Whether two handles share one counter.
    #[cfg(test)]
    pub(crate) fn same_as(&self, other: &Counter) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("value", &self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_to_concurrently_lands_on_the_highest_value() {
        let c = Counter::detached();
        c.add(3);
        c.raise_to(2); // never lowers
        assert_eq!(c.get(), 3);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for v in 0..5_000u64 {
                        c.raise_to(v * 4 + t);
                    }
                });
            }
        });
        // An overshoot (raising by a stale difference) would end above it.
        assert_eq!(c.get(), 4_999 * 4 + 3);
    }

    #[test]
    fn threads_sum_exactly() {
        let c = Counter::detached();
        std::thread::scope(|s| {
            for _ in 0..12 {
                let c = c.clone();
                s.spawn(move || (0..10_000).for_each(|_| c.inc()));
            }
        });
        assert_eq!(c.get(), 120_000);
        assert!(c.same_as(&c.clone()));
        assert!(!c.same_as(&Counter::detached()));
    }
}
