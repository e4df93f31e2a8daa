//! watchpost: an in-process monitoring engine.
mod clock;
pub mod detect;
mod error;
mod key;
mod kind;
pub mod stats;

#[cfg(any(test, feature = "test-util"))]
pub use crate::clock::ManualClock;
pub use crate::{
    clock::{Clock, SystemClock},
    error::{Error, Result},
    key::{Labels, SeriesKey, validate_metric_name},
    kind::MetricKind,
};
