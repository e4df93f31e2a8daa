//! watchpost: an in-process monitoring engine.
#![cfg_attr(test, allow(clippy::float_cmp))]
pub mod analysis;
mod clock;
pub mod dashboard;
mod engine;
mod error;
mod history;
mod key;
mod kind;
mod metric;
mod registry;
mod source;
pub mod stats;

#[cfg(any(test, feature = "test-util"))]
pub use crate::clock::ManualClock;
#[cfg(feature = "system")]
pub use crate::source::SystemSource;
pub use crate::{
    clock::{Clock, SystemClock},
    engine::{
        DEFAULT_HISTORY_CAPACITY, DEFAULT_RECORD_QUEUE_CAPACITY, DEFAULT_SAMPLE_INTERVAL,
        DEFAULT_SERIES_CAP, Engine, EngineBuilder, Monitor, Recorder,
    },
    error::{Error, Result},
    history::Sample,
    key::{Labels, SeriesKey, validate_metric_name},
    kind::MetricKind,
    metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, HistogramSnapshot, Summary},
    registry::{Derivation, Registry, SeriesInfo},
    source::Source,
};
