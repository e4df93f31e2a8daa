//! Adapters to the instrumentation a Rust service already has, each behind
//! its own feature: see [the guide](crate::guide::integrations).
//!
//! - [`MetricsRecorder`] (feature `metrics`): watchpost as the recorder of
//!   the [`metrics`](https://docs.rs/metrics) facade.
//! - [`TracingLayer`] (feature `tracing`): span timing and APM statistics,
//!   slow operations and log events by level from `tracing`.

#[cfg(feature = "metrics")]
mod metrics_facade;
#[cfg(feature = "tracing")]
mod slow;
#[cfg(feature = "tracing")]
mod tracing_layer;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use self::{
    slow::{LogEvent, SlowNameStats, SlowOperation, SlowOperations, SlowStats},
    tracing_layer::{
        DEFAULT_RECENT_EVENTS, DEFAULT_SLOW_CAPACITY, DEFAULT_SLOW_THRESHOLD,
        MAX_TRACING_LIST_CAPACITY, SpanStats, TracingLayer, TracingLayerBuilder,
    },
};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_facade::MetricsRecorder;
