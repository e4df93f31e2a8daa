//! watchpost's integration tests: one binary, one module per subsystem.
#![allow(clippy::float_cmp, clippy::missing_panics_doc, missing_docs, unreachable_pub)]

mod alerting;
mod analysis;
mod anomaly;
mod config;
mod dashboard;
mod detection;
mod engine_alerts;
mod export;
mod extremes;
mod fuzz;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod http_rules;
mod lifecycle;
mod load;
#[cfg(feature = "metrics")]
mod metrics_facade;
#[cfg(feature = "http")]
mod middleware;
mod persistence;
mod prometheus_import;
mod props;
#[cfg(all(feature = "notify", feature = "http"))]
mod receivers;
#[cfg(all(feature = "remote-write", feature = "http"))]
mod remote_write;
mod routing;
mod settings;
#[cfg(all(feature = "http", feature = "tracing"))]
mod slow_api;
mod staleness;
#[cfg(feature = "tracing")]
mod tracing_layer;
mod util;
