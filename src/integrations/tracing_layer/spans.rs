//! The open spans of one subscriber, by span id, kept out of the registry's
//! span extensions (which allocate per span).
//!
//! A span's state lives in a slot of a fixed table of atomics: creating a
//! span claims a free slot near the hash of its id with one
//! compare-and-swap, closing it reads the slot and frees it with a plain
//! store. No lock, no allocation, one atomic read-modify-write per span.
//! Primitive field values (up to [`INLINE_FIELDS`]) stay in the slot as
//! bits; text values, more fields and fields recorded later go to a sharded
//! side table, as do spans that find every slot near their id taken (more
//! spans open at once than the table holds comfortably).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::FixedState;
use parking_lot::Mutex;
use tracing_core::Metadata;

use super::fields::{Captured, FieldSink, FieldValue, Fields, field_name};

/// Primitive field values a slot keeps without the side table.
pub(super) const INLINE_FIELDS: usize = 2;

/// Slots of the table: a power of two. 64 bytes each, so 64 KiB per
/// subscriber the layer is part of.
const SLOTS: usize = 1 << 10;

/// Slots a span may take, from the hash of its id onwards.
const WINDOW: usize = 8;

/// Shards of the side tables.
const SHARDS: usize = 16;

// The layout of `Slot::info`.
const CALLSITE_MASK: u64 = 0xffff_ffff;
const ERROR: u64 = 1 << 32;
/// The span's fields are in the side table, not in the slot.
const SPILLED: u64 = 1 << 33;
const COUNT_SHIFT: u32 = 34;
const FIELD_SHIFT: u32 = 40;
/// A field index that fits the 5 bits a slot has for it.
const MAX_INLINE_INDEX: usize = 31;

// The layout of `Slot::busy`: the nesting depth of entries in the low
// byte, the time of the outermost entry after the span's creation above it.
const DEPTH_MASK: u64 = 0xff;
const MAX_OFFSET: u64 = u64::MAX >> 8;

/// One open span. Written by the thread that creates the span before any
/// other thread can know its id; read and freed by the thread that closes
/// it, which got the span from the creator through some synchronisation.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct Slot {
    /// The span id, 0 when the slot is free (span ids are never 0).
    id: AtomicU64,
    /// [`Clock::monotonic_nanos`](crate::Clock::monotonic_nanos) at creation.
    created_ns: AtomicI64,
    /// Callsite index, error and spilled flags, inline field count and, per
    /// inline field, its value's tag and its index in the callsite's fields.
    info: AtomicU64,
    values: [AtomicU64; INLINE_FIELDS],
    /// Entry depth and the time of the outermost entry (busy time only).
    busy: AtomicU64,
    /// Busy time so far, in nanoseconds (busy time only).
    busy_ns: AtomicU64,
}

impl Slot {
    fn write(&self, created_ns: i64, info: u64, values: [u64; INLINE_FIELDS]) {
        self.created_ns.store(created_ns, Ordering::Relaxed);
        self.info.store(info, Ordering::Relaxed);
        for (cell, v) in self.values.iter().zip(values) {
            cell.store(v, Ordering::Relaxed);
        }
        self.busy.store(0, Ordering::Relaxed);
        self.busy_ns.store(0, Ordering::Relaxed);
    }

    fn read(&self) -> ClosedSpan {
        let info = self.info.load(Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation, reason = "the mask keeps 32 bits")]
        ClosedSpan {
            created_ns: self.created_ns.load(Ordering::Relaxed),
            callsite: (info & CALLSITE_MASK) as u32,
            error: info & ERROR != 0,
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            fields: InlineFields {
                info,
                values: std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed)),
            },
            spilled: None,
        }
    }

    /// Enters the span at `now`: the outermost entry notes the time.
    fn enter(&self, now: i64) {
        let created = self.created_ns.load(Ordering::Relaxed);
        let _ = self.busy.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            let depth = w & DEPTH_MASK;
            if depth == 0 {
                let offset = u64::try_from(now.saturating_sub(created)).unwrap_or(0);
                Some(offset.min(MAX_OFFSET) << 8 | 1)
            } else {
                // Deeper nesting than a byte counts saturates, as the old u32 did.
                (depth < DEPTH_MASK).then_some(w + 1)
            }
        });
    }

    /// Exits the span at `now`: the outermost exit adds the time since the
    /// outermost entry to the busy time.
    fn exit(&self, now: i64) {
        let Ok(w) = self.busy.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            let depth = w & DEPTH_MASK;
            match depth {
                0 => None,
                1 => Some(0),
                _ => Some(w - 1),
            }
        }) else {
            return;
        };
        if w & DEPTH_MASK == 1 {
            let created = self.created_ns.load(Ordering::Relaxed);
            let since = u64::try_from(now.saturating_sub(created)).unwrap_or(0);
            let spent = since.saturating_sub(w >> 8);
            self.busy_ns.fetch_add(spent, Ordering::Relaxed);
        }
    }
}

/// A span as it is created.
pub(super) struct NewSpan {
    pub(super) created_ns: i64,
    /// The index of the span's callsite in the layer's callsite list.
    pub(super) callsite: u32,
    pub(super) error: bool,
    pub(super) fields: SpanFields,
}

/// A span's fields as its visitor collects them: encoded for the slot
/// while they fit it, else in a list for the side table.
#[derive(Default)]
pub(super) struct SpanFields {
    /// Inline field count and per-field bits, laid out as in `Slot::info`.
    info: u64,
    values: [u64; INLINE_FIELDS],
    /// Boxed: the common span moves without it.
    spilled: Option<Box<Fields>>,
}

impl FieldSink for SpanFields {
    fn push(&mut self, field: Captured) {
        if let Some(spilled) = &mut self.spilled {
            spilled.push(field);
            return;
        }
        match field.value.to_bits() {
            Some((tag, bits)) if self.fits(field.index) => self.put(field.index, tag, bits),
            _ => self.spill(field),
        }
    }

    #[inline]
    fn push_bits(&mut self, field: &tracing_core::field::Field, tag: u8, bits: u64) {
        if self.spilled.is_none() && self.fits(field.index()) {
            self.put(field.index(), tag, bits);
        } else if let Some(value) = FieldValue::from_bits(tag, bits) {
            self.spill(Captured { name: field.name(), index: field.index(), value });
        }
    }
}

impl SpanFields {
    /// Whether one more field, `index` in its callsite's fields, fits the slot.
    #[inline]
    fn fits(&self, index: usize) -> bool {
        inline_count(self.info) < INLINE_FIELDS && index <= MAX_INLINE_INDEX
    }

    #[inline]
    fn put(&mut self, index: usize, tag: u8, bits: u64) {
        let count = inline_count(self.info);
        let packed = u64::from(tag) << 5 | index as u64;
        self.info += 1 << COUNT_SHIFT;
        self.info |= packed << field_shift(count);
        self.values[count] = bits;
    }

    /// Moves the fields to a list for the side table, `field` last.
    fn spill(&mut self, field: Captured) {
        let spilled =
            self.spilled.get_or_insert_with(|| Box::new(decode(self.info, &self.values).collect()));
        spilled.push(field);
    }
}

/// Where the bits of inline field `i` start in `info`.
fn field_shift(i: usize) -> u32 {
    #[allow(clippy::cast_possible_truncation, reason = "i < INLINE_FIELDS")]
    let i = i as u32;
    FIELD_SHIFT + 8 * i
}

fn inline_count(info: u64) -> usize {
    #[allow(clippy::cast_possible_truncation, reason = "a 2-bit count")]
    let count = ((info >> COUNT_SHIFT) & 0b11) as usize;
    count
}

/// The fields kept in a slot's `info` and values, by index in the
/// callsite's fields (named when the span is shown).
fn decode(info: u64, values: &[u64; INLINE_FIELDS]) -> impl Iterator<Item = Captured> + '_ {
    values.iter().take(inline_count(info)).enumerate().filter_map(move |(i, bits)| {
        #[allow(clippy::cast_possible_truncation, reason = "one byte per field")]
        let packed = (info >> field_shift(i)) as u8;
        let value = FieldValue::from_bits(packed >> 5, *bits)?;
        Some(Captured { name: "", index: usize::from(packed & 0x1f), value })
    })
}

/// The fields a slot held, undecoded.
pub(super) struct InlineFields {
    info: u64,
    values: [u64; INLINE_FIELDS],
}

/// What the table held about a span, handed out when it closes.
pub(super) struct ClosedSpan {
    pub(super) created_ns: i64,
    pub(super) callsite: u32,
    pub(super) error: bool,
    pub(super) busy_ns: u64,
    fields: InlineFields,
    spilled: Option<Box<Fields>>,
}

impl ClosedSpan {
    /// The span's fields in the order they were recorded, as owned
    /// `(name, value)` pairs; `meta` is the span's callsite.
    pub(super) fn fields(self, meta: &'static Metadata<'static>) -> Vec<(String, String)> {
        let named = |c: Captured| {
            // Fields that were in a slot are known by their index only.
            let name = if c.name.is_empty() { field_name(meta, c.index) } else { c.name };
            (name.to_string(), c.value.to_string())
        };
        match self.spilled {
            Some(fields) => (*fields).into_iter().map(named).collect(),
            None => decode(self.fields.info, &self.fields.values).map(named).collect(),
        }
    }
}

type Shard<V> = Mutex<HashMap<u64, V, FixedState>>;

/// The open spans of one subscriber, by span id. A span is inserted when it
/// is created and removed when it closes, possibly on another thread.
pub(super) struct SpanTable {
    slots: Box<[Slot]>,
    /// Spans that found no free slot, and how many there are (checked
    /// before taking a shard lock).
    overflow: [Shard<Slot>; SHARDS],
    overflowed: AtomicUsize,
    /// Fields that do not fit a slot, of spans flagged [`SPILLED`].
    spilled: [Shard<Box<Fields>>; SHARDS],
    hasher: FixedState,
}

impl Default for SpanTable {
    fn default() -> Self {
        SpanTable {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            overflow: std::array::from_fn(|_| Mutex::default()),
            overflowed: AtomicUsize::new(0),
            spilled: std::array::from_fn(|_| Mutex::default()),
            hasher: FixedState::default(),
        }
    }
}

/// The first slot a span id may take.
fn home(id: u64) -> usize {
    // Fibonacci hashing: the top bits of the product spread ids that
    // differ in any bits.
    #[allow(clippy::cast_possible_truncation, reason = "a value below SLOTS")]
    let h = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize;
    h
}

impl SpanTable {
    fn shard<'a, V>(&self, shards: &'a [Shard<V>; SHARDS], id: u64) -> &'a Shard<V> {
        #[allow(clippy::cast_possible_truncation, reason = "a value below SHARDS")]
        let index = (self.hasher.hash_one(id) >> 60) as usize % SHARDS;
        &shards[index]
    }

    fn window(&self, id: u64) -> impl Iterator<Item = &Slot> {
        let home = home(id);
        (0..WINDOW).map(move |i| &self.slots[(home + i) & (SLOTS - 1)])
    }

    /// Runs `f` on the slot of span `id`, if the table holds it.
    fn with<R>(&self, id: u64, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        if let Some(slot) = self.window(id).find(|s| s.id.load(Ordering::Relaxed) == id) {
            return Some(f(slot));
        }
        if self.overflowed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.shard(&self.overflow, id).lock().get(&id).map(f)
    }

    /// Holds span `id` until [`remove`](Self::remove).
    pub(super) fn insert(&self, id: u64, span: NewSpan) {
        let NewSpan { created_ns, callsite, error, fields } = span;
        let SpanFields { mut info, values, spilled } = fields;
        if let Some(spilled) = spilled {
            self.shard(&self.spilled, id).lock().insert(id, spilled);
            info = SPILLED;
        }
        info |= u64::from(callsite);
        if error {
            info |= ERROR;
        }
        let claimed = self.window(id).find(|s| {
            s.id.load(Ordering::Relaxed) == 0
                && s.id.compare_exchange(0, id, Ordering::Acquire, Ordering::Relaxed).is_ok()
        });
        if let Some(slot) = claimed {
            slot.write(created_ns, info, values);
            return;
        }
        let slot = Slot::default();
        slot.id.store(id, Ordering::Relaxed);
        slot.write(created_ns, info, values);
        self.shard(&self.overflow, id).lock().insert(id, slot);
        self.overflowed.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets span `id` and hands out what the table held about it.
    pub(super) fn remove(&self, id: u64) -> Option<ClosedSpan> {
        let slot = self.window(id).find(|s| s.id.load(Ordering::Relaxed) == id);
        let mut closed = if let Some(slot) = slot {
            let closed = slot.read();
            // Everything is read: the slot is free for the next span.
            slot.id.store(0, Ordering::Release);
            closed
        } else {
            if self.overflowed.load(Ordering::Relaxed) == 0 {
                return None;
            }
            let slot = self.shard(&self.overflow, id).lock().remove(&id)?;
            self.overflowed.fetch_sub(1, Ordering::Relaxed);
            slot.read()
        };
        if closed.fields.info & SPILLED != 0 {
            closed.spilled = self.shard(&self.spilled, id).lock().remove(&id);
        }
        Some(closed)
    }

    /// Notes an error in span `id`.
    pub(super) fn set_error(&self, id: u64) {
        self.with(id, |slot| slot.info.fetch_or(ERROR, Ordering::Relaxed));
    }

    /// Adds fields recorded after the span's creation (and an error they
    /// show): all of the span's fields move to the side table.
    pub(super) fn record(&self, id: u64, error: bool, fields: Fields) {
        self.with(id, |slot| {
            if error {
                slot.info.fetch_or(ERROR, Ordering::Relaxed);
            }
            if fields.is_empty() {
                return;
            }
            // The shard lock orders concurrent recordings of one span.
            let mut spilled = self.shard(&self.spilled, id).lock();
            let kept = spilled.entry(id).or_default();
            let info = slot.info.load(Ordering::Relaxed);
            if info & SPILLED == 0 {
                // The span's fields so far come first, decoded from the slot.
                let values = std::array::from_fn(|i| slot.values[i].load(Ordering::Relaxed));
                kept.extend(decode(info, &values));
                slot.info.fetch_or(SPILLED, Ordering::Relaxed);
            }
            kept.extend(fields);
        });
    }

    /// Enters span `id` at `now` (busy time).
    pub(super) fn enter(&self, id: u64, now: i64) {
        self.with(id, |slot| slot.enter(now));
    }

    /// Exits span `id` at `now` (busy time).
    pub(super) fn exit(&self, id: u64, now: i64) {
        self.with(id, |slot| slot.exit(now));
    }

    /// Open spans held (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let in_slots = self.slots.iter().filter(|s| s.id.load(Ordering::Relaxed) != 0).count();
        in_slots + self.overflow.iter().map(|s| s.lock().len()).sum::<usize>()
    }

    /// Open spans that found no free slot (for tests).
    #[cfg(test)]
    pub(super) fn overflowed(&self) -> usize {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Spans whose fields are in the side table (for tests).
    #[cfg(test)]
    pub(super) fn spilled_len(&self) -> usize {
        self.spilled.iter().map(|s| s.lock().len()).sum()
    }
}
