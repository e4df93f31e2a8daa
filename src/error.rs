//! The crate's one error type.

use std::fmt;

use crate::kind::MetricKind;

/// Everything that can go wrong when configuring watchpost or registering a series.
///
/// Recording through a handle never fails; errors surface when an engine is
/// built or when a series is registered.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let err = engine.counter("bad name").unwrap_err();
/// assert!(err.to_string().contains("\"bad name\""));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting or constructor argument was rejected.
    InvalidConfig {
        /// The setting that was rejected.
        field: &'static str,
        /// Why, including the offending value.
        reason: String,
    },
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName {
        /// The rejected name.
        name: String,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*` or starts with the reserved `__`.
    InvalidLabelName {
        /// The metric the label was given for.
        metric: String,
        /// The rejected label name.
        label: String,
    },
    /// The same label name was given twice for one series.
    DuplicateLabel {
        /// The metric the labels were given for.
        metric: String,
        /// The repeated label name.
        label: String,
    },
    /// The name is already registered as another kind of metric.
    KindMismatch {
        /// The metric name.
        name: String,
        /// The kind it was first registered as.
        registered: MetricKind,
        /// The kind that was asked for now.
        requested: MetricKind,
    },
    /// A histogram was registered again with other bucket bounds.
    BucketMismatch {
        /// The metric name.
        name: String,
    },
    /// The metric name already has as many series as its cardinality cap allows.
    CardinalityExceeded {
        /// The metric name.
        name: String,
        /// The cap in force.
        limit: usize,
    },
    /// The engine already holds as many series as its total cap allows
    /// (see [`EngineBuilder::total_series_cap`](crate::EngineBuilder::total_series_cap)).
    TotalSeriesExceeded {
        /// The metric name whose registration was refused.
        name: String,
        /// The cap in force.
        limit: usize,
    },
    /// A metric name or label name is longer than the engine allows
    /// (see [`EngineBuilder::max_name_length`](crate::EngineBuilder::max_name_length)).
    NameTooLong {
        /// The start of the rejected name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A label value is longer than the engine allows
    /// (see [`EngineBuilder::max_label_value_length`](crate::EngineBuilder::max_label_value_length)).
    LabelValueTooLong {
        /// The metric the label was given for.
        metric: String,
        /// The label whose value was rejected.
        label: String,
        /// The value's length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A series has more labels than the engine allows
    /// (see [`EngineBuilder::max_labels`](crate::EngineBuilder::max_labels)).
    TooManyLabels {
        /// The metric the labels were given for.
        metric: String,
        /// How many labels were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The engine has been shut down, so the request cannot be served.
    ShutDown,
    /// A thread could not be spawned.
    Spawn(std::io::Error),
    /// An engine thread panicked.
    WorkerPanicked,
    /// A source failed to start.
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// JSON serialization failed.
    Json(serde_json::Error),
    /// A sample given to [`Monitor::record_at`](crate::Monitor::record_at)
    /// was refused before it was queued (for example, too far in the future).
    SampleRejected {
        /// The series, as `name{labels}`.
        series: String,
        /// The sample's timestamp, RFC 3339.
        timestamp: String,
        /// Why, with the limit in force.
        reason: String,
    },
    /// A configuration (a file, or a document given over HTTP) was rejected
    /// as a whole: every problem found, each with its place.
    Config {
        /// The file name, or a description such as `"request body"`.
        file: String,
        /// Every problem found, in the order of the document.
        problems: Vec<ConfigProblem>,
    },
}

/// One problem in a configuration document.
///
/// Displayed as `file:line:column: field: message`, the way compilers print
/// errors, so editors can jump to it.
///
/// # Examples
///
/// ```
/// let text = "[[rules]]\nname = \"cpu\"\nmetric = \"cpu usage\"\n";
/// let err = watchpost::config::Config::from_toml_str(text, "demo.toml").unwrap_err();
/// let watchpost::Error::Config { problems, .. } = &err else { unreachable!() };
/// assert_eq!(problems[0].line, Some(1));
/// assert!(err.to_string().starts_with("demo.toml:1:1: rules[0]"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// 1-based line, when the problem has a place in the document.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the problem has a place.
    pub column: Option<usize>,
    /// The path of the offending field, such as `rules[2].condition`.
    pub field: String,
    /// What is wrong, quoting the offending value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, "{line}:{col}: ")?;
        }
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::InvalidMetricName { name } => {
                write!(f, "invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
            }
            Error::InvalidLabelName { metric, label } => write!(
                f,
                "invalid label name {label:?} on metric {metric:?}: must match \
                 [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\""
            ),
            Error::DuplicateLabel { metric, label } => {
                write!(f, "label {label:?} given twice on metric {metric:?}")
            }
            Error::KindMismatch { name, registered, requested } => {
                write!(f, "metric {name:?} is registered as a {registered}, not a {requested}")
            }
            Error::BucketMismatch { name } => {
                write!(f, "histogram {name:?} is already registered with other bucket bounds")
            }
            Error::CardinalityExceeded { name, limit } => {
                write!(f, "metric {name:?} already has {limit} series, its cardinality cap")
            }
            Error::TotalSeriesExceeded { name, limit } => write!(
                f,
                "metric {name:?} refused: the engine already holds {limit} series, its total series cap"
            ),
            Error::NameTooLong { name, len, limit } => {
                write!(f, "name {name:?} is {len} bytes long, over the limit of {limit}")
            }
            Error::LabelValueTooLong { metric, label, len, limit } => write!(
                f,
                "value of label {label:?} on metric {metric:?} is {len} bytes long, over the limit of {limit}"
            ),
            Error::TooManyLabels { metric, count, limit } => {
                write!(f, "metric {metric:?} has {count} labels, over the limit of {limit}")
            }
            Error::ShutDown => f.write_str("the engine has been shut down"),
            Error::Spawn(e) => write!(f, "could not spawn an engine thread: {e}"),
            Error::WorkerPanicked => f.write_str("an engine thread panicked"),
            Error::Source { source_name, reason } => {
                write!(f, "source {source_name:?} failed: {reason}")
            }
            Error::Json(e) => write!(f, "JSON serialization failed: {e}"),
            Error::SampleRejected { series, timestamp, reason } => {
                write!(f, "sample of {series} at {timestamp} rejected: {reason}")
            }
            Error::Config { file, problems } => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    if p.line.is_some() {
                        write!(f, "{file}:{p}")?;
                    } else {
                        write!(f, "{file}: {p}")?;
                    }
                }
                if problems.is_empty() {
                    write!(f, "{file}: rejected")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn(e) => Some(e),
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}
