#![doc = include_str!("../README.md")]
//!
//! # Metric kinds
//!
//! | kind | handle | in history |
//! |---|---|---|
//! | counter | [`Counter`]: `inc`, `add` | running total, plus `<name>:rate` per second |
//! | gauge | [`Gauge`]: `set`, `add`, `sub` | the value at each sample |
//! | histogram | [`Histogram`]: `observe` | observation count, plus `:count_rate`, `:p50`, `:p90`, `:p99` of each interval |
//! | summary | [`Summary`]: `observe` | observation count, plus `:count_rate` and quantiles of the sliding window |
//! | recorded | [`Monitor::record`], [`Recorder`] | each observation at its own timestamp (a gauge) |
//!
//! A series is a metric name plus a sorted label set ([`SeriesKey`]). A name
//! keeps the kind it was first registered with.
//!
//! # Threads and upkeep
//!
//! Writers touch only atomics. Once per sample interval, and on
//! [`Monitor::flush`], the worker thread drains the `record()` queue, runs
//! every [`Source`], reads every instrument and appends the readings to the
//! ring buffers under a write lock that writers never take. Queries and
//! [`Monitor::dashboard`] take a short read lock and return owned values.
//!
//! # Dashboard JSON
//!
//! [`dashboard::Dashboard`] is versioned ([`dashboard::SCHEMA_VERSION`]); the
//! layout is documented in `docs/dashboard.md`.
//!
//! # Minimum Rust version
//!
//! 1.95 (sysinfo 0.40 needs it).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::float_cmp))]
pub mod alert;
pub mod analysis;
mod clock;
pub mod dashboard;
pub mod detect;
mod dispatch;
mod engine;
mod error;
pub mod export;
mod format;
pub mod health;
mod history;
mod key;
mod kind;
mod metric;
pub mod notify;
mod registry;
mod source;
pub mod stats;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(any(test, feature = "test-util"))]
pub use crate::clock::ManualClock;
#[cfg(feature = "system")]
pub use crate::source::SystemSource;
pub use crate::{
    clock::{Clock, MAX_DURATION, SystemClock},
    engine::{
        DEFAULT_HISTORY_CAPACITY, DEFAULT_NOTIFY_FLUSH_TIMEOUT, DEFAULT_RECENT_ALERT_EVENTS,
        DEFAULT_RECORD_QUEUE_CAPACITY, DEFAULT_SAMPLE_INTERVAL, DEFAULT_SERIES_CAP, Engine,
        EngineBuilder, MAX_NOTIFICATION_QUEUE_CAPACITY, MAX_RECORD_QUEUE_CAPACITY, Monitor,
        Recorder,
    },
    error::{Error, Result},
    format::{Unit, format_number},
    health::HealthCheck,
    history::{MAX_HISTORY_CAPACITY, Sample},
    key::{Labels, SeriesKey, validate_metric_name},
    kind::MetricKind,
    metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, HistogramSnapshot, Summary},
    registry::{Derivation, Registry, SeriesInfo},
    source::Source,
};

/// The Rust examples in `docs/` compile and run as doc tests.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../docs/alerts.md")]
    struct Alerts;
    #[doc = include_str!("../docs/analysis.md")]
    struct Analysis;
    #[doc = include_str!("../docs/anomaly.md")]
    struct Anomaly;
    #[doc = include_str!("../docs/dashboard.md")]
    struct Dashboard;
    #[doc = include_str!("../docs/http.md")]
    struct Http;
    #[doc = include_str!("../docs/reliability.md")]
    struct Reliability;
}
