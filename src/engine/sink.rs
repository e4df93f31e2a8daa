//! Where the worker hands the samples it appends to history, for exporters
//! that push them out of the process (remote write). The engine knows only
//! this trait; the exporters above it implement it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::dashboard::RemoteWriteStatus;
use crate::error::Result;
use crate::history::Sample;
use crate::key::SeriesKey;
use crate::registry::Registry;

/// A sample the worker appended to history, with its anomaly score and the
/// expected band when the series has a detector.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "remote-write"), allow(dead_code, reason = "read by remote write"))]
pub(crate) struct Scored {
    pub(crate) sample: Sample,
    pub(crate) score: Option<f64>,
    pub(crate) band: Option<(f64, f64)>,
}

/// A consumer of appended samples. `accept` runs on the worker under the
/// history lock: it must not block, allocate much or fail.
pub(crate) trait SampleSink: Send + Sync {
    /// Takes one sample; never blocks (a full queue drops and counts).
    fn accept(&self, key: &Arc<SeriesKey>, sample: Scored);
    /// Delivers what was accepted so far, waiting at most `timeout`.
    fn flush(&self, timeout: Duration);
    /// Delivers what it can within its own deadline and joins its threads.
    fn shutdown(&self);
    /// Counters for the dashboard.
    fn status(&self) -> RemoteWriteStatus;
}

/// Starts a sink once the registry and the clock exist (it registers its
/// own metrics).
pub(crate) type SinkFactory =
    Box<dyn FnOnce(&Registry, &Arc<dyn Clock>) -> Result<Arc<dyn SampleSink>> + Send>;
