//! What the layer keeps per span name and target (a [`SpanSite`]: the
//! duration histogram, errors, max), the list of span callsites that the
//! span table refers to by index, and a per-thread cache of both lookups.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing_core::Metadata;
use tracing_core::callsite::Identifier;

use super::SpanStats;
use crate::metric::{Counter, Histogram};

/// Everything the layer keeps per span name and target.
pub(super) struct SpanSite {
    pub(super) name: &'static str,
    pub(super) target: &'static str,
    pub(super) duration: Histogram,
    /// `None` unless busy time is on.
    pub(super) busy: Option<Histogram>,
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

/// Slots of each half of the per-thread cache.
const CACHE_SLOTS: usize = 64;

/// A callsite's index, cached by callsite.
struct ByMeta {
    layer: u64,
    meta: &'static Metadata<'static>,
    index: u32,
}

/// A callsite and its site, cached by index.
struct ByIndex {
    layer: u64,
    index: u32,
    meta: &'static Metadata<'static>,
    site: Arc<SpanSite>,
}

struct Cache {
    by_meta: [Option<ByMeta>; CACHE_SLOTS],
    by_index: [Option<ByIndex>; CACHE_SLOTS],
}

thread_local! {
    /// The callsites this thread used last, direct-mapped by callsite (or
    /// index) and layer: a span finds its callsite's index when it is
    /// created, and its site when it closes, without a lock or a shared
    /// write. It keeps at most `CACHE_SLOTS` sites alive per thread, also of
    /// layers dropped since, until their slots are reused.
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            by_meta: [const { None }; CACHE_SLOTS],
            by_index: [const { None }; CACHE_SLOTS],
        })
    };
}

#[allow(clippy::cast_possible_truncation, reason = "only the low bits pick the slot")]
fn slot(key: usize, layer: u64) -> usize {
    (key ^ (layer as usize).wrapping_mul(0x9e37)) % CACHE_SLOTS
}

/// The index of callsite `meta` in layer `layer`'s list, from this thread's
/// cache or, on a miss, from `resolve`.
pub(super) fn callsite_index(
    layer: u64,
    meta: &'static Metadata<'static>,
    resolve: impl FnOnce() -> u32,
) -> u32 {
    let slot = slot(std::ptr::from_ref(meta).addr() >> 4, layer);
    let hit = CACHE
        .try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let entry = cache.by_meta[slot].as_ref()?;
            (entry.layer == layer && std::ptr::eq(entry.meta, meta)).then_some(entry.index)
        })
        .ok()
        .flatten();
    if let Some(index) = hit {
        return index;
    }
    let index = resolve();
    // (a nested call or thread exit leaves the cache as it is)
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache.by_meta[slot] = Some(ByMeta { layer, meta, index });
        }
    });
    index
}

/// Runs `f` on callsite `index` of layer `layer` and its site, from this
/// thread's cache or, on a miss, from `resolve` (`None` when it knows no
/// such callsite).
pub(super) fn with_callsite<R>(
    layer: u64,
    index: u32,
    resolve: impl FnOnce() -> Option<Callsite>,
    f: impl FnOnce(&'static Metadata<'static>, &SpanSite) -> R,
) -> Option<R> {
    let slot = slot(index as usize, layer);
    let mut f = Some(f);
    let hit = CACHE
        .try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let entry = cache.by_index[slot].as_ref()?;
            if entry.layer != layer || entry.index != index {
                return None;
            }
            f.take().map(|f| f(entry.meta, &entry.site))
        })
        .ok()
        .flatten();
    if hit.is_some() {
        return hit;
    }
    let (meta, site) = resolve()?;
    let out = f.take().map(|f| f(meta, &site));
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache.by_index[slot] = Some(ByIndex { layer, index, meta, site });
        }
    });
    out
}
