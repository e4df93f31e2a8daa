//! The messages of Prometheus' remote-write 1.0 protocol (`prompb`), written
//! by hand for prost: field numbers and types as in Prometheus'
//! `prompb/remote.proto` and `prompb/types.proto`.

use crate::error::{Error, Result};

/// The body of a remote-write request, before snappy compression.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
/// let request = WriteRequest {
///     timeseries: vec![TimeSeries {
///         labels: vec![Label { name: "__name__".into(), value: "up".into() }],
///         samples: vec![Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
///     }],
///     metadata: vec![],
/// };
/// let body = watchpost::remote_write::proto::encode(&request)?;
/// assert_eq!(watchpost::remote_write::proto::decode(&body)?, request);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series and their samples (field 1).
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (field 3); watchpost sends none.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// One series: its labels, sorted by name, and its samples, oldest first.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::TimeSeries;
/// assert!(TimeSeries::default().samples.is_empty());
/// ```
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, `__name__` included, sorted by name (field 1).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in time order (field 2).
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// A label pair.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::Label;
/// let l = Label { name: "job".into(), value: "chat".into() };
/// assert_eq!(l.name, "job");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Label {
    /// Label name (field 1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value (field 2).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One sample.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::Sample;
/// let s = Sample { value: 0.5, timestamp: 1_000 };
/// assert_eq!(s.timestamp, 1_000);
/// ```
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// The value (field 1, `double`).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch (field 2, `int64`).
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Metric metadata (`prompb.MetricMetadata`), decoded for completeness.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::MetricMetadata;
/// assert_eq!(MetricMetadata::default().r#type, 0);
/// ```
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// The metric type as `prompb.MetricMetadata.MetricType` numbers it (field 1).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The family's name (field 2).
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text (field 4).
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit (field 5).
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Encodes `request` as protobuf and compresses it with snappy's block
/// format: the body of a remote-write POST.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::{encode, WriteRequest};
/// // an empty request is an empty protobuf message: snappy's header only
/// assert_eq!(encode(&WriteRequest::default())?, [0]);
/// # Ok::<(), watchpost::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidConfig`] (field `remote_write body`) for a request past
/// snappy's limit of 4 GiB.
pub fn encode(request: &WriteRequest) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut out = Vec::new();
    encode_into(request, &mut raw, &mut out)?;
    Ok(out)
}

/// [`encode`] reusing two buffers: `raw` receives the protobuf bytes and
/// `out` the compressed body (both are cleared first).
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::proto::{encode, encode_into, WriteRequest};
/// let (mut raw, mut out) = (Vec::new(), Vec::new());
/// encode_into(&WriteRequest::default(), &mut raw, &mut out)?;
/// assert_eq!(out, encode(&WriteRequest::default())?);
/// # Ok::<(), watchpost::Error>(())
/// ```
///
/// # Errors
///
/// As [`encode`].
pub fn encode_into(request: &WriteRequest, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<()> {
    use prost::Message as _;
    raw.clear();
    raw.reserve(request.encoded_len());
    request.encode_raw(raw); // a Vec grows as needed
    out.clear();
    out.resize(snap::raw::max_compress_len(raw.len()), 0);
    let n = snap::raw::Encoder::new().compress(raw, out).map_err(|e| Error::InvalidConfig {
        field: "remote_write body",
        reason: format!("{} bytes cannot be compressed ({e})", raw.len()),
    })?;
    out.truncate(n);
    Ok(())
}

/// Decompresses and decodes a remote-write body, as a receiver does.
///
/// # Errors
///
/// [`Error::InvalidConfig`] (field `remote_write body`) naming what is wrong:
/// bad snappy data or a protobuf that is not a `WriteRequest`.
///
/// # Examples
///
/// ```
/// let e = watchpost::remote_write::proto::decode(b"\xff").unwrap_err();
/// assert!(e.to_string().contains("snappy"), "{e}");
/// ```
pub fn decode(body: &[u8]) -> Result<WriteRequest> {
    use prost::Message as _;
    let bad = |reason: String| Error::InvalidConfig { field: "remote_write body", reason };
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("not snappy block data ({e})")))?;
    WriteRequest::decode(raw.as_slice())
        .map_err(|e| bad(format!("not a protobuf WriteRequest ({e})")))
}
