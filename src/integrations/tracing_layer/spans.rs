//! Per-span state of the `tracing` layer, kept out of the registry's span
//! extensions: a sharded table keyed by span id (no allocation per span, one
//! short lock per edge), the captured field values, and a per-thread cache of
//! the per-callsite statistics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::FixedState;
use parking_lot::Mutex;
use smallvec::SmallVec;
use tracing_core::Metadata;
use tracing_core::field::{Field, Visit};

use super::SpanSite;

/// A span's captured fields: up to two without an allocation.
pub(super) type Fields = SmallVec<[(&'static str, FieldValue); 2]>;

/// A captured field value, formatted only if the span turns out slow.
pub(super) enum FieldValue {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Text(Box<str>),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::U64(v) => v.fmt(f),
            FieldValue::I64(v) => v.fmt(f),
            FieldValue::F64(v) => write!(f, "{v:?}"),
            FieldValue::Bool(v) => v.fmt(f),
            FieldValue::Text(v) => f.write_str(v),
        }
    }
}

/// The fields as owned `(name, value)` pairs, values formatted.
pub(super) fn owned(fields: Fields) -> Vec<(String, String)> {
    fields.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Collects field values without formatting the primitive ones, and notes
/// an `error` field. Events take their `message` apart; spans keep it as a
/// field.
pub(super) struct FieldVisitor<'a> {
    pub(super) fields: &'a mut Fields,
    pub(super) capture: bool,
    pub(super) error: bool,
    pub(super) message: Option<String>,
    pub(super) take_message: bool,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: FieldValue) {
        if field.name() == "error" && !matches!(value, FieldValue::Bool(false)) {
            self.error = true;
        }
        if self.capture {
            self.fields.push((field.name(), value));
        }
    }

    fn put_text(&mut self, field: &Field, value: impl FnOnce() -> String) {
        if self.take_message && field.name() == "message" && self.message.is_none() {
            self.message = Some(value());
            return;
        }
        self.error |= field.name() == "error";
        if self.capture {
            self.fields.push((field.name(), FieldValue::Text(value().into_boxed_str())));
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::I64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, || value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, || value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_text(field, || format!("{value:?}"));
    }
}

/// What the layer keeps about one open span. Times are
/// [`Clock::monotonic_nanos`](crate::Clock::monotonic_nanos) readings.
pub(super) struct SpanState {
    /// The span's callsite: its statistics are looked up at close.
    pub(super) meta: &'static Metadata<'static>,
    pub(super) created_ns: i64,
    pub(super) entered_ns: i64,
    pub(super) busy_ns: u64,
    /// Nested entries on the thread that has the span entered.
    pub(super) entered: u32,
    pub(super) error: bool,
    pub(super) fields: Fields,
}

/// Shards of the span table: enough that threads creating spans at once
/// rarely meet on one lock.
const SHARDS: usize = 16;

#[derive(Default)]
#[repr(align(64))]
struct Shard(Mutex<HashMap<u64, SpanState, FixedState>>);

/// The open spans of one subscriber, by span id. A span's state is inserted
/// when it is created and removed when it closes, possibly on another
/// thread; each edge takes one shard lock for a hash-table operation on a
/// fixed-size value (the table's storage is reused, so no allocation per
/// span once it has grown to the number of spans open at once).
pub(super) struct SpanTable {
    hasher: FixedState,
    shards: [Shard; SHARDS],
}

impl Default for SpanTable {
    fn default() -> Self {
        SpanTable {
            hasher: FixedState::default(),
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }
}

impl SpanTable {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, SpanState, FixedState>> {
        // The top bits of the hash pick the shard; the map uses all of it.
        let h = self.hasher.hash_one(id);
        #[allow(clippy::cast_possible_truncation, reason = "a value below SHARDS")]
        let index = (h >> 60) as usize % SHARDS;
        &self.shards[index].0
    }

    pub(super) fn insert(&self, id: u64, state: SpanState) {
        self.shard(id).lock().insert(id, state);
    }

    pub(super) fn remove(&self, id: u64) -> Option<SpanState> {
        self.shard(id).lock().remove(&id)
    }

    /// Runs `f` on the state of span `id`, if the table holds it.
    pub(super) fn with<R>(&self, id: u64, f: impl FnOnce(&mut SpanState) -> R) -> Option<R> {
        self.shard(id).lock().get_mut(&id).map(f)
    }

    /// Open spans held (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }
}

/// Slots of the per-thread site cache.
const SITE_CACHE_SLOTS: usize = 64;

/// One cached callsite of one layer.
struct CachedSite {
    layer: u64,
    meta: &'static Metadata<'static>,
    site: Arc<SpanSite>,
}

thread_local! {
    /// The per-callsite statistics this thread used last, direct-mapped by
    /// callsite and layer: a span finds its site without a lock or a shared
    /// write. It keeps at most `SITE_CACHE_SLOTS` sites alive per thread,
    /// also of layers dropped since, until their slots are reused.
    static SITE_CACHE: RefCell<[Option<CachedSite>; SITE_CACHE_SLOTS]> =
        const { RefCell::new([const { None }; SITE_CACHE_SLOTS]) };
}

/// Runs `f` on the site of callsite `meta` of layer `layer` from this
/// thread's cache, filling the slot with `resolve` on a miss. `None` when
/// the cache is unavailable (thread exit, a nested call): the caller then
/// resolves the site itself.
pub(super) fn with_cached_site<R>(
    layer: u64,
    meta: &'static Metadata<'static>,
    resolve: impl FnOnce() -> Arc<SpanSite>,
    f: &mut Option<impl FnOnce(&SpanSite) -> R>,
) -> Option<R> {
    let addr = std::ptr::from_ref(meta).addr();
    #[allow(clippy::cast_possible_truncation, reason = "only the low bits pick the slot")]
    let slot = ((addr >> 4) ^ (layer as usize).wrapping_mul(0x9e37)) % SITE_CACHE_SLOTS;
    SITE_CACHE
        .try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            let entry = &mut cache[slot];
            let hit =
                entry.as_ref().is_some_and(|c| c.layer == layer && std::ptr::eq(c.meta, meta));
            if !hit {
                *entry = Some(CachedSite { layer, meta, site: resolve() });
            }
            let site = &entry.as_ref()?.site;
            f.take().map(|f| f(site))
        })
        .ok()
        .flatten()
}
