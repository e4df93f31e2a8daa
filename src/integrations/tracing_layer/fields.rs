//! Field values of spans and events, captured typed and formatted only when
//! they are shown (a slow span, a kept event).

use std::fmt;

use smallvec::SmallVec;
use tracing_core::Metadata;
use tracing_core::field::{Field, Visit};

/// A captured field: its name, its position in its callsite's field set
/// (how a span's table slot refers to it) and its value.
pub(super) struct Captured {
    pub(super) name: &'static str,
    pub(super) index: usize,
    pub(super) value: FieldValue,
}

/// Captured fields: up to two without an allocation.
pub(super) type Fields = SmallVec<[Captured; 2]>;

/// A captured field value, formatted only if the span turns out slow.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FieldValue {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Text(Box<str>),
}

// Tags of the values a span's table slot keeps as bits (3 bits, never 0).
const U64: u8 = 1;
const I64: u8 = 2;
const F64: u8 = 3;
const BOOL: u8 = 4;

impl FieldValue {
    /// A value without an allocation as a 3-bit tag (never 0) and 64 bits,
    /// the way a span's table slot keeps it; `None` for text.
    pub(super) fn to_bits(&self) -> Option<(u8, u64)> {
        match self {
            FieldValue::U64(v) => Some((U64, *v)),
            FieldValue::I64(v) => Some((I64, v.cast_unsigned())),
            FieldValue::F64(v) => Some((F64, v.to_bits())),
            FieldValue::Bool(v) => Some((BOOL, u64::from(*v))),
            FieldValue::Text(_) => None,
        }
    }

    /// The value [`to_bits`](Self::to_bits) encoded.
    pub(super) fn from_bits(tag: u8, bits: u64) -> Option<FieldValue> {
        match tag {
            U64 => Some(FieldValue::U64(bits)),
            I64 => Some(FieldValue::I64(bits.cast_signed())),
            F64 => Some(FieldValue::F64(f64::from_bits(bits))),
            BOOL => Some(FieldValue::Bool(bits != 0)),
            _ => None,
        }
    }
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
    fields.into_iter().map(|c| (c.name.to_string(), c.value.to_string())).collect()
}

/// The name of field `index` of callsite `meta`.
pub(super) fn field_name(meta: &'static Metadata<'static>, index: usize) -> &'static str {
    meta.fields().iter().nth(index).map_or("?", |f| f.name())
}

/// Where a [`FieldVisitor`] puts the fields it keeps.
pub(super) trait FieldSink {
    fn push(&mut self, field: Captured);

    /// Keeps a value [`FieldValue::to_bits`] encoded: a sink that stores
    /// the bits takes them as they are.
    #[inline]
    fn push_bits(&mut self, field: &Field, tag: u8, bits: u64) {
        if let Some(value) = FieldValue::from_bits(tag, bits) {
            self.push(Captured { name: field.name(), index: field.index(), value });
        }
    }
}

impl FieldSink for Fields {
    #[inline]
    fn push(&mut self, field: Captured) {
        SmallVec::push(self, field);
    }
}

/// Collects field values without formatting the primitive ones, and notes
/// an `error` field. Events take their `message` apart; spans keep it as a
/// field.
pub(super) struct FieldVisitor<'a, K> {
    pub(super) fields: &'a mut K,
    pub(super) capture: bool,
    pub(super) error: bool,
    pub(super) message: Option<String>,
    pub(super) take_message: bool,
}

impl<'a, K: FieldSink> FieldVisitor<'a, K> {
    /// A visitor for a span's fields, keeping them when `capture` is set.
    pub(super) fn span(fields: &'a mut K, capture: bool) -> Self {
        FieldVisitor { fields, capture, error: false, message: None, take_message: false }
    }

    /// Keeps a number or boolean, encoded as [`FieldValue::to_bits`] does.
    #[inline]
    fn put_bits(&mut self, field: &Field, tag: u8, bits: u64) {
        // Any `error` value but `false` marks an error.
        if field.name() == "error" && !(tag == BOOL && bits == 0) {
            self.error = true;
        }
        if self.capture {
            self.fields.push_bits(field, tag, bits);
        }
    }

    fn put_text(&mut self, field: &Field, value: impl FnOnce() -> String) {
        if self.take_message && field.name() == "message" && self.message.is_none() {
            self.message = Some(value());
            return;
        }
        self.error |= field.name() == "error";
        if self.capture {
            let value = FieldValue::Text(value().into_boxed_str());
            self.fields.push(Captured { name: field.name(), index: field.index(), value });
        }
    }
}

impl<K: FieldSink> Visit for FieldVisitor<'_, K> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put_bits(field, U64, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put_bits(field, I64, value.cast_unsigned());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put_bits(field, F64, value.to_bits());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put_bits(field, BOOL, u64::from(value));
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
