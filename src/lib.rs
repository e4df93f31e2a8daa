// The README and the guides link to each other by their paths in the
// repository (`docs/alerts.md`), as reference links; these definitions come
// first, so in rustdoc the same links lead to the `guide` modules.
#![doc = include_str!("guide_links.md")]
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
//! layout is documented in [`guide::dashboard`].
//!
//! # Guides
//!
//! The guides in the repository's `docs/` are rendered here too:
//! [`guide::alerts`], [`guide::anomaly`], [`guide::analysis`],
//! [`guide::dashboard`], [`guide::http`] and [`guide::reliability`]. Their
//! Rust examples run as doc tests.
//!
//! # Blocking calls and async code
//!
//! Recording never blocks: handle updates are atomics and
//! [`Monitor::record`] drops and counts when its queue is full. A few calls
//! do wait, and belong on a blocking thread in async code: see
//! [the guide](guide::http#calling-the-engine-from-async-code).
//!
//! # Minimum Rust version
//!
//! 1.95 (sysinfo 0.40 needs it).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::float_cmp))]
pub mod alert;
pub mod analysis;
mod apm;
mod clock;
pub mod config;
pub mod dashboard;
pub mod detect;
mod dispatch;
mod engine;
mod error;
pub mod export;
mod format;
pub mod health;
mod history;
pub mod integrations;
mod key;
mod kind;
mod metric;
pub mod notify;
mod persist;
mod registry;
#[cfg(feature = "remote-write")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-write")))]
pub mod remote_write;
mod source;
pub mod stats;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(any(test, feature = "test-util"))]
pub use crate::clock::ManualClock;
/// The state directory's file writers on their own, for benches and tests
/// (feature `test-util`, outside semver guarantees).
#[cfg(any(test, feature = "test-util"))]
pub use crate::persist::support as state_files;
#[cfg(feature = "system")]
pub use crate::source::SystemSource;
pub use crate::{
    clock::{Clock, MAX_DURATION, SystemClock},
    engine::{
        DEFAULT_HISTORY_CAPACITY, DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_LABELS,
        DEFAULT_MAX_NAME_LENGTH, DEFAULT_NOTIFY_FLUSH_TIMEOUT, DEFAULT_RECENT_ALERT_EVENTS,
        DEFAULT_RECORD_QUEUE_CAPACITY, DEFAULT_SAMPLE_INTERVAL, DEFAULT_SERIES_CAP,
        DEFAULT_TOTAL_SERIES_CAP, Engine, EngineBuilder, MAX_NOTIFICATION_QUEUE_CAPACITY,
        MAX_RECORD_QUEUE_CAPACITY, Monitor, Recorder,
    },
    error::{ConfigProblem, Error, Result},
    format::{Unit, format_number},
    health::HealthCheck,
    history::{MAX_HISTORY_CAPACITY, Sample},
    key::{Labels, SeriesKey, validate_metric_name},
    kind::MetricKind,
    metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, HistogramSnapshot, Summary},
    registry::{Derivation, Registry, SeriesInfo},
    source::Source,
};

/// The guides from the repository's `docs/` directory. Their Rust examples
/// compile and run as doc tests.
#[allow(clippy::doc_markdown, reason = "prose written for GitHub and rustdoc alike")]
pub mod guide {
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/alerts.md")]
    pub mod alerts {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/analysis.md")]
    pub mod analysis {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/anomaly.md")]
    pub mod anomaly {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/config.md")]
    pub mod config {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/dashboard.md")]
    pub mod dashboard {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/http.md")]
    pub mod http {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/integrations.md")]
    pub mod integrations {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/notify.md")]
    #[cfg(feature = "notify")]
    pub mod notify {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/persistence.md")]
    pub mod persistence {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/fleet.md")]
    #[cfg(feature = "remote-write")]
    pub mod fleet {}
    #[doc = include_str!("guide_links.md")]
    #[doc = include_str!("../docs/reliability.md")]
    pub mod reliability {}
}
