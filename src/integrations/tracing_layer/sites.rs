//! What the layer keeps per span name and target (a [`SpanSite`]: the
//! duration histogram, errors, max), and the list of span callsites that
//! the span table refers to by index, with a table for lock-free lookups.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing_core::Metadata;
use tracing_core::callsite::Identifier;

use super::SpanStats;
use crate::metric::histogram::NanosBuckets;
use crate::metric::{Counter, Histogram};

/// Everything the layer keeps per span name and target.
pub(super) struct SpanSite {
    pub(super) name: &'static str,
    pub(super) target: &'static str,
    pub(super) duration: Histogram,
    /// `duration`'s bounds in nanoseconds (`None`: observe in seconds).
    pub(super) duration_ns: Option<NanosBuckets>,
    /// `None` unless busy time is on.
    pub(super) busy: Option<Histogram>,
    /// `busy`'s bounds in nanoseconds.
    pub(super) busy_ns: Option<NanosBuckets>,
    pub(super) errors: AtomicU64,
    pub(super) max_ns: AtomicU64,
    pub(super) slow_ns: u64,
}

/// A span callsite and the site of its name and target.
pub(super) type Callsite = (&'static Metadata<'static>, Arc<SpanSite>);

#[derive(Default)]
pub(super) struct Sites {
    /// Span callsites in registration order: the span table keeps a span's
    /// position in this list.
    pub(super) callsites: Vec<Callsite>,
    pub(super) by_callsite: HashMap<Identifier, u32, foldhash::fast::RandomState>,
    pub(super) by_name:
        HashMap<(&'static str, &'static str), Arc<SpanSite>, foldhash::fast::RandomState>,
    pub(super) events: HashMap<Identifier, Counter, foldhash::fast::RandomState>,
}

/// `sum` seconds over `count`, rounded to the nanosecond (zero without
/// spans): the mean `/metrics` gives as `_sum / _count`. Reading it from the
/// histogram saves a sum of its own, one atomic update per span.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a finite mean in nanoseconds, rounded, negative ones clamped to zero"
)]
fn mean_of(sum: f64, count: u64) -> Duration {
    if count == 0 || !sum.is_finite() {
        return Duration::ZERO;
    }
    Duration::from_nanos((sum / count as f64 * 1e9).round().max(0.0) as u64)
}

impl SpanSite {
    /// Observes a span's duration, and its busy time when kept.
    pub(super) fn observe(&self, total_ns: u64, busy_ns: u64) {
        observe_nanos(&self.duration, self.duration_ns.as_ref(), total_ns);
        if let Some(busy) = &self.busy {
            observe_nanos(busy, self.busy_ns.as_ref(), busy_ns);
        }
    }

    pub(super) fn stats(&self) -> SpanStats {
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let max = Duration::from_nanos(max_ns);
        let snapshot = self.duration.snapshot();
        let calls = snapshot.count;
        let q = |q: f64| {
            snapshot
                .quantile(q)
                .map_or(Duration::ZERO, |s| Duration::from_secs_f64(s.max(0.0)).min(max))
        };
        SpanStats {
            name: self.name.to_string(),
            target: self.target.to_string(),
            calls,
            errors: self.errors.load(Ordering::Relaxed),
            mean: mean_of(snapshot.sum, calls),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max,
        }
    }
}

/// Callsites found without a lock: the first this many registered.
const FAST_CALLSITES: usize = 512;

/// Slots one lookup by address probes.
const PROBES: usize = 8;

/// Span callsites by index and by address for the hot path: entries are
/// written once, when a callsite registers (under the write lock of
/// [`Sites`]), and then only read, so a span finds its callsite with plain
/// loads; no lock, no shared write, no per-thread state. Callsites past
/// [`FAST_CALLSITES`], or whose address finds no free slot, are looked up
/// in [`Sites`] under its read lock.
pub(super) struct CallsiteIndex {
    by_index: Box<[OnceLock<Callsite>]>,
    /// `(address of the callsite's metadata, index)`.
    by_addr: Box<[OnceLock<(usize, u32)>]>,
}

impl Default for CallsiteIndex {
    fn default() -> Self {
        Self::with_capacity(FAST_CALLSITES)
    }
}

fn addr_of(meta: &'static Metadata<'static>) -> usize {
    std::ptr::from_ref(meta).addr()
}

impl CallsiteIndex {
    /// Room for `callsites` callsites; the table by address has at least
    /// twice as many slots (a power of two), so that probes stay short.
    pub(super) fn with_capacity(callsites: usize) -> Self {
        let slots = (2 * callsites).next_power_of_two();
        CallsiteIndex {
            by_index: (0..callsites).map(|_| OnceLock::new()).collect(),
            by_addr: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    fn probe(&self, addr: usize) -> impl Iterator<Item = &OnceLock<(usize, u32)>> {
        let mask = self.by_addr.len() - 1;
        // Metadata are statics at least 8 bytes apart: drop the low bits.
        let home = (addr >> 3).wrapping_mul(0x9e37_79b9);
        (0..PROBES.min(mask + 1)).map(move |i| &self.by_addr[(home + i) & mask])
    }

    /// The index of callsite `meta`, if it is in the fast table.
    pub(super) fn index_of(&self, meta: &'static Metadata<'static>) -> Option<u32> {
        let addr = addr_of(meta);
        for slot in self.probe(addr) {
            match slot.get() {
                Some((a, index)) if *a == addr => return Some(*index),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Callsite `index` and its site, if it is in the fast table.
    pub(super) fn get(&self, index: u32) -> Option<&Callsite> {
        self.by_index.get(index as usize)?.get()
    }

    /// Adds a callsite just registered (called under the write lock of
    /// [`Sites`], so entries are set once and in order).
    pub(super) fn add(&self, index: u32, callsite: &Callsite) {
        let Some(slot) = self.by_index.get(index as usize) else { return };
        let _ = slot.set(callsite.clone());
        let addr = addr_of(callsite.0);
        if let Some(free) = self.probe(addr).find(|s| s.get().is_none()) {
            let _ = free.set((addr, index));
        }
    }
}

/// `ns` into `histogram`, by its nanosecond limits when it has them.
fn observe_nanos(histogram: &Histogram, limits: Option<&NanosBuckets>, ns: u64) {
    match limits {
        Some(limits) => histogram.observe_nanos(ns, limits),
        #[allow(clippy::cast_precision_loss)] // nanoseconds as seconds
        None => histogram.observe(ns as f64 / 1e9),
    }
}
