//! Adapters to the instrumentation a Rust service already has, each behind
//! its own feature: see [the guide](crate::guide::integrations).
//!
//! - [`MetricsRecorder`] (feature `metrics`): watchpost as the recorder of
//!   the [`metrics`](https://docs.rs/metrics) facade.

#[cfg(feature = "metrics")]
mod metrics_facade;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_facade::MetricsRecorder;
