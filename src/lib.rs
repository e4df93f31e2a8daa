//! watchpost: an in-process monitoring engine.
pub mod alert;
mod clock;
mod dispatch;
mod error;
mod history;
mod key;
mod kind;
mod metric;
mod registry;
pub mod stats;

#[cfg(any(test, feature = "test-util"))]
pub use crate::clock::ManualClock;
pub use crate::{
    clock::{Clock, SystemClock},
    error::{Error, Result},
    history::Sample,
    key::{Labels, SeriesKey, validate_metric_name},
    kind::MetricKind,
    metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, HistogramSnapshot, Summary},
    registry::{Derivation, Registry, SeriesInfo},
};
