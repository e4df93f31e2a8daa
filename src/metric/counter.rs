use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Number of cells a contended counter is striped over. Threads are spread
/// over the cells, so two threads hammering one counter rarely share a cache line.
const STRIPES: usize = 8;

/// One cell on its own cache line pair (adjacent-line prefetchers pull 128 bytes).
#[repr(align(128))]
#[derive(Default)]
struct Cell128(AtomicU64);

/// Source of thread ids (from 1; 0 means "no owner yet").
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// This thread's id, assigned on first use; its stripe is the id modulo [`STRIPES`].
#[inline]
fn thread_id() -> u64 {
    THREAD.with(|s| {
        let v = s.get();
        if v == 0 {
            let n = NEXT_THREAD.fetch_add(1, Relaxed);
            s.set(n);
            n
        } else {
            v
        }
    })
}

/// A counter striped lazily, the way Java's `LongAdder` is: one word until
/// an increment meets another thread's, then eight padded cells on top.
#[derive(Default)]
struct CounterCore {
    /// The owner's count, and everyone's while nobody contends.
    base: AtomicU64,
    /// The first thread to increment: it always adds to `base`, with one
    /// atomic add. Other threads exchange `base` while nobody contends.
    owner: AtomicU64,
    /// Allocated when another thread's exchange on `base` first fails.
    cells: OnceLock<Box<[Cell128; STRIPES]>>,
}

/// A monotonic counter. Cloning shares the count.
///
/// An uncontended counter is a few words, cheap to read: the first thread
/// to increment it adds to its count with one atomic add, the others with
/// one atomic exchange. The first time another thread's increment collides
/// with one in flight the counter grows eight cache-line-padded cells and,
/// from then on, the other threads add to their own cells, so contended
/// counters scale; reading sums the count and the cells.
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
        let core = &*self.core;
        let me = thread_id();
        let owner = core.owner.load(Relaxed);
        if owner == me
            || (owner == 0 && core.owner.compare_exchange(0, me, Relaxed, Relaxed).is_ok())
        {
            core.base.fetch_add(n, Relaxed);
            return;
        }
        #[allow(clippy::cast_possible_truncation)]
        let stripe = (me % STRIPES as u64) as usize;
        if let Some(cells) = core.cells.get() {
            cells[stripe].0.fetch_add(n, Relaxed);
            return;
        }
        let current = core.base.load(Relaxed);
        if core.base.compare_exchange(current, current.wrapping_add(n), Relaxed, Relaxed).is_err() {
            // another thread got in between: stripe from now on
            core.cells.get_or_init(Box::default)[stripe].0.fetch_add(n, Relaxed);
        }
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
        let base = self.core.base.load(Relaxed);
        match self.core.cells.get() {
            None => base,
            Some(cells) => cells.iter().fold(base, |acc, c| acc.wrapping_add(c.0.load(Relaxed))),
        }
    }

    /// Whether increments have met contention and go to striped cells.
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.core.cells.get().is_some()
    }

    /// Raises the total to `value` if it is below; never lowers it (a
    /// counter is monotonic). Concurrent calls agree: each retries until the
    /// cell it raises is unchanged since it read the total. An increment racing with it
    /// on another thread is kept on top.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn raise_to(&self, value: u64) {
        let first = &self.core.base;
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
    fn an_uncontended_counter_stays_unstriped_and_contention_stripes_it() {
        let c = Counter::detached();
        for _ in 0..1_000 {
            c.inc();
        }
        std::thread::scope(|s| {
            s.spawn(|| (0..1_000).for_each(|_| c.inc()));
        });
        // one thread at a time never collides
        assert!(!c.is_striped());
        assert_eq!(c.get(), 2_000);
        assert_eq!(std::mem::size_of::<CounterCore>(), 32);
        // threads hammering it together do, and the total stays exact
        // (a collision needs two threads on two cores at once: a loaded
        // machine may take many rounds, so allow many; each is a few ms)
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(4);
        let mut rounds = 0u64;
        while !c.is_striped() && rounds < 2_000 {
            let go = std::sync::Barrier::new(threads);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        go.wait();
                        (0..20_000).for_each(|_| c.inc());
                    });
                }
            });
            rounds += 1;
        }
        assert!(c.is_striped(), "no collision in {rounds} rounds");
        assert_eq!(c.get(), 2_000 + rounds * 20_000 * threads as u64);
        c.raise_to(c.get() + 5);
        assert_eq!(c.get(), 2_005 + rounds * 20_000 * threads as u64);
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
