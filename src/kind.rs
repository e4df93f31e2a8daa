//! Metric kinds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of instrument a series belongs to.
///
/// # Examples
///
/// ```
/// use watchpost::MetricKind;
/// assert_eq!(MetricKind::Counter.as_str(), "counter");
/// assert_eq!(MetricKind::Histogram.to_string(), "histogram");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A monotonic count.
    Counter,
    /// A value that goes up and down, or a series of explicit observations.
    Gauge,
    /// Observations counted into fixed buckets, with sum and count.
    Histogram,
    /// Observations summarised as quantiles over a sliding time window.
    Summary,
}

impl MetricKind {
    /// The kind's lowercase name, as used in Prometheus `# TYPE` lines and the dashboard.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::MetricKind::Gauge.as_str(), "gauge");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
