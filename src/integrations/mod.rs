//! Adapters to the instrumentation a Rust service already has, each behind
//! its own feature: see [the guide](crate::guide::integrations).
//!
//! - [`MetricsRecorder`] (feature `metrics`): watchpost as the recorder of
//!   the [`metrics`](https://docs.rs/metrics) facade.
//! - [`TracingLayer`] (feature `tracing`): span timing and APM statistics,
//!   slow operations and log events by level from `tracing`.
//! - [`SlowOperations`] and [`LogEvent`]: the engine's operations log, which
//!   the `tracing` layer fills and [`Monitor::slow_operations`](crate::Monitor::slow_operations),
//!   the dashboard and the HTTP API read (always available).

#[cfg(feature = "metrics")]
mod metrics_facade;
#[cfg(feature = "tracing")]
mod tracing_layer;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use self::tracing_layer::{
    DEFAULT_ERROR_LOG_RATE, DEFAULT_SLOW_THRESHOLD, SpanStats, TracingLayer, TracingLayerBuilder,
};
pub use crate::apm::{
    DEFAULT_RECENT_EVENTS, DEFAULT_SLOW_CAPACITY, LogEvent, LogLevel, MAX_TRACING_LIST_CAPACITY,
    SlowNameStats, SlowOperation, SlowOperations, SlowStats,
};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_facade::MetricsRecorder;
