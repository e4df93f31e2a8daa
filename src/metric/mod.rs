//! Lock-free metric handles: [`Counter`], [`Gauge`], [`Histogram`], [`Summary`].
//!
//! Handles are cheap to clone (an `Arc` around atomics). Recording through
//! them takes no lock, allocates nothing and cannot fail: non-finite values
//! are counted and dropped.

mod counter;
mod gauge;
pub(crate) mod histogram;
mod summary;

pub use counter::Counter;
pub use gauge::Gauge;
pub use histogram::{DEFAULT_BUCKETS, Histogram, HistogramSnapshot};
pub(crate) use histogram::{quantile_from_buckets as histogram_quantile, validate_bounds};
pub use summary::Summary;

/// Adds `v` to the `f64` stored as bits in `cell` (compare-and-swap loop).
#[inline]
pub(crate) fn atomic_add_f64(cell: &std::sync::atomic::AtomicU64, v: f64) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut cur = cell.load(Relaxed);
    loop {
        let next = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}
