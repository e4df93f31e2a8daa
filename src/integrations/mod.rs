//! Entry points for the instrumentation a service already has: each plugs an
//! ecosystem crate into a watchpost engine, behind its own feature. See the
//! [integrations guide](crate::guide::integrations).

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
