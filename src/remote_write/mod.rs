//! Prometheus remote write (feature `remote-write`): the samples the worker
//! appends to history, pushed to Prometheus or any store that speaks its
//! remote-write 1.0 protocol (Mimir, Thanos Receive, `VictoriaMetrics`,
//! Cortex, Grafana Cloud).
//!
//! Configure it with [`RemoteWriteConfig`] and hand it to
//! [`EngineBuilder::remote_write`](crate::EngineBuilder::remote_write). The
//! worker never sends: it puts each appended sample into a bounded queue
//! without blocking (when the queue is full the oldest sample is dropped and
//! counted), and one sender thread per shard batches, encodes (protobuf
//! `WriteRequest`, snappy block compression), posts and retries. The
//! counters are in `/metrics` (`watchpost_remote_write_*`) and in the
//! dashboard's `remote_write` section. The guide is `docs/fleet.md`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use watchpost::remote_write::RemoteWriteConfig;
//! // Prometheus listens on http://HOST:9090/api/v1/write; port 9 is closed
//! let config = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write")?
//!     .job("chat")?
//!     .batch_send_deadline(Duration::from_secs(1))
//!     .shutdown_timeout(Duration::from_millis(100));
//! let engine = watchpost::Engine::builder()
//!     .without_system_source()
//!     .remote_write(config)
//!     .build()?;
//! assert_eq!(engine.dashboard().remote_write.unwrap().shards, 1);
//! # Ok::<(), watchpost::Error>(())
//! ```

pub mod proto;
mod sender;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::Matcher;
use crate::engine::EngineBuilder;
use crate::error::{Error, Result};
use crate::key::SeriesKey;
use proto::Label;

/// Samples per request unless set (Prometheus' `max_samples_per_send`).
pub const DEFAULT_MAX_SAMPLES_PER_SEND: usize = 2_000;
/// Samples each shard's queue holds unless set (Prometheus' `capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// The largest [`RemoteWriteConfig::queue_capacity`] (and so
/// `max_samples_per_send`): 1 048 576 samples per shard. A shard's queue is
/// allocated whole when the sender starts.
///
/// # Examples
///
/// ```
/// use watchpost::remote_write::{MAX_QUEUE_CAPACITY, RemoteWriteConfig};
/// let config = RemoteWriteConfig::new("http://localhost/w")?.queue_capacity(MAX_QUEUE_CAPACITY + 1);
/// let err = watchpost::Engine::builder().remote_write(config).build().unwrap_err();
/// assert!(err.to_string().contains("remote_write.queue_capacity"));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// The most shards the sender opens unless set (see [`RemoteWriteConfig::max_shards`]).
///
/// # Examples
///
/// ```
/// assert_eq!(watchpost::remote_write::DEFAULT_MAX_SHARDS, 4);
/// ```
pub const DEFAULT_MAX_SHARDS: usize = 4;
/// How long a partial batch waits for more samples unless set.
pub const DEFAULT_BATCH_SEND_DEADLINE: Duration = Duration::from_secs(5);

/// Where and how to push: URL, credentials, extra labels, which series,
/// batching, queueing, sharding and retries.
///
/// Every series is sent with the extra labels `instance` (the host name)
/// and `job` (the executable's name) unless the series has a label of that
/// name already; both can be replaced, and more added, with
/// [`label`](Self::label).
///
/// # Sharding
///
/// Samples are spread over sender threads, the *shards* (one connection
/// each), by a hash of their series, so every series stays in order on one
/// connection. The sender starts with [`shards`](Self::shards) of them (1 by
/// default) and opens more, up to [`max_shards`](Self::max_shards) (4 by
/// default), when one cannot keep up: whenever a shard's queue is more than
/// half full, one more shard takes part. New series go to the shards in use
/// by their hash; a series already sending moves to its new shard only once
/// none of its samples is queued or in flight on the old one, so no series
/// is ever sent out of order. Shards are not given back while the engine
/// runs. One shard sends a batch of 2 000 samples in a few milliseconds on
/// loopback: it keeps up with tens of thousands of samples per second; with
/// a receiver's round trip `r` and `s` samples per second, about `s × r /
/// max_samples_per_send` shards are needed (the figure Prometheus' queue
/// manager reshards by).
///
/// # Examples
///
/// ```
/// use watchpost::alert::Matcher;
/// use watchpost::remote_write::RemoteWriteConfig;
/// let config = RemoteWriteConfig::new("https://prometheus.example.com/api/v1/write")?
///     .bearer_token("s3cret")
///     .label("region", "eu-1")?
///     .exclude([Matcher::regex("__name__", "watchpost_.*")?])
///     .anomaly_series(true)
///     .shards(2);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct RemoteWriteConfig {
    url: String,
    authorization: Option<Secret>,
    labels: Vec<(String, String)>,
    include: Vec<Vec<Matcher>>,
    exclude: Vec<Vec<Matcher>>,
    anomaly_series: bool,
    max_samples_per_send: usize,
    batch_send_deadline: Duration,
    queue_capacity: usize,
    shards: usize,
    max_shards: usize,
    min_backoff: Duration,
    max_backoff: Duration,
    timeout: Duration,
    shutdown_timeout: Duration,
}

#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for RemoteWriteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriteConfig")
            .field("url", &redact_url(&self.url))
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .field("labels", &self.labels)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("anomaly_series", &self.anomaly_series)
            .field("max_samples_per_send", &self.max_samples_per_send)
            .field("batch_send_deadline", &self.batch_send_deadline)
            .field("queue_capacity", &self.queue_capacity)
            .field("shards", &self.shards)
            .field("max_shards", &self.max_shards)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl RemoteWriteConfig {
    /// Pushes to `url` (for Prometheus: `http://host:9090/api/v1/write`,
    /// with `--web.enable-remote-write-receiver`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (field `remote_write.url`) if `url` is not
    /// an absolute `http` or `https` URL with a host.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::remote_write::RemoteWriteConfig;
    /// let e = RemoteWriteConfig::new("ftp://x/write").unwrap_err();
    /// assert!(e.to_string().contains("ftp://x/write"), "{e}");
    /// ```
    pub fn new(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidConfig {
            field: "remote_write.url",
            reason: format!("{:?}: {why}", redact_url(url)),
        };
        let uri: ureq::http::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("the scheme must be http or https"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        Ok(RemoteWriteConfig {
            url: url.to_owned(),
            authorization: None,
            labels: vec![
                ("instance".to_owned(), host_name()),
                ("job".to_owned(), application_name()),
            ],
            include: Vec::new(),
            exclude: Vec::new(),
            anomaly_series: false,
            max_samples_per_send: DEFAULT_MAX_SAMPLES_PER_SEND,
            batch_send_deadline: DEFAULT_BATCH_SEND_DEADLINE,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            shards: 1,
            max_shards: DEFAULT_MAX_SHARDS,
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        })
    }

    /// Sends `Authorization: Basic …` with `user` and `password`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .basic_auth("push", "pw");
    /// assert!(!format!("{c:?}").contains("pw\""));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(Secret(format!("Basic {token}")));
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .bearer_token("t0ken");
    /// assert!(!format!("{c:?}").contains("t0ken"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.authorization = Some(Secret(format!("Bearer {token}")));
        self
    }

    /// Adds the label `name="value"` to every series that lacks `name`, or
    /// replaces the value of an extra label set before (`instance`, `job`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (field `remote_write.label`) for a name that
    /// is not a Prometheus label name, or that starts with `__`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?;
    /// assert!(c.clone().label("region", "eu").is_ok());
    /// assert!(c.label("__name__", "x").unwrap_err().to_string().contains("__name__"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn label(mut self, name: &str, value: &str) -> Result<Self> {
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid || name.starts_with("__") {
            return Err(Error::InvalidConfig {
                field: "remote_write.label",
                reason: format!("{name:?} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"),
            });
        }
        match self.labels.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.labels.push((name.to_owned(), value.to_owned())),
        }
        Ok(self)
    }

    /// The `instance` label (default: the host name).
    ///
    /// # Errors
    ///
    /// None in practice: `instance` is a valid label name.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .instance("chat-7")?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn instance(self, value: &str) -> Result<Self> {
        self.label("instance", value)
    }

    /// The `job` label (default: the executable's name).
    ///
    /// # Errors
    ///
    /// None in practice: `job` is a valid label name.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .job("chat")?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn job(self, value: &str) -> Result<Self> {
        self.label("job", value)
    }

    /// Sends only series matched by all of `matchers` (or by all matchers of
    /// another `include`); `__name__` matches the metric name. Without an
    /// include every series is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::Matcher;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .include([Matcher::regex("__name__", "chat_.*")?]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn include(mut self, matchers: impl IntoIterator<Item = Matcher>) -> Self {
        self.include.push(matchers.into_iter().collect());
        self
    }

    /// Leaves out series matched by all of `matchers` (checked after the
    /// includes).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::Matcher;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .exclude([Matcher::equal("room", "debug")]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn exclude(mut self, matchers: impl IntoIterator<Item = Matcher>) -> Self {
        self.exclude.push(matchers.into_iter().collect());
        self
    }

    /// Also sends, for series with an anomaly detector, the series
    /// `<name>:anomaly_score`, `<name>:expected_lower` and
    /// `<name>:expected_upper` at the same timestamps (default: off).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .anomaly_series(true);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn anomaly_series(mut self, on: bool) -> Self {
        self.anomaly_series = on;
        self
    }

    /// Samples per request (default [`DEFAULT_MAX_SAMPLES_PER_SEND`]; at
    /// least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .max_samples_per_send(500);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn max_samples_per_send(mut self, samples: usize) -> Self {
        self.max_samples_per_send = samples;
        self
    }

    /// How long, by the engine's clock, a partial batch waits for more
    /// samples before it is sent (default [`DEFAULT_BATCH_SEND_DEADLINE`]).
    /// Longer than [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .batch_send_deadline(Duration::from_secs(1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn batch_send_deadline(mut self, deadline: Duration) -> Self {
        self.batch_send_deadline = deadline.min(crate::MAX_DURATION);
        self
    }

    /// Samples each shard's queue holds (default [`DEFAULT_QUEUE_CAPACITY`];
    /// at least `max_samples_per_send`, at most [`MAX_QUEUE_CAPACITY`]). While the receiver is down the
    /// queue fills; past it the oldest samples are dropped and counted, so
    /// memory stays bounded by `max_shards × (queue_capacity +
    /// max_samples_per_send)` samples, plus at most `queue_capacity` more per
    /// shard for samples of series that just moved between shards and wait
    /// for the shard they left (see [Sharding](Self#sharding)).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .queue_capacity(50_000);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn queue_capacity(mut self, samples: usize) -> Self {
        self.queue_capacity = samples;
        self
    }

    /// Sender threads in use from the start (default 1, at most 64); see
    /// [Sharding](Self#sharding). Raises [`max_shards`](Self::max_shards) to
    /// the same count when it was lower.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .shards(4);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self.max_shards = self.max_shards.max(shards);
        self
    }

    /// The most sender threads the sender opens when the shards in use
    /// cannot keep up (default [`DEFAULT_MAX_SHARDS`], at most 64, at least
    /// [`shards`](Self::shards)); see [Sharding](Self#sharding). `1` keeps
    /// one connection for good.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .max_shards(8);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn max_shards(mut self, shards: usize) -> Self {
        self.max_shards = shards;
        self
    }

    /// The first and the longest wait between retries (defaults 30 ms and
    /// 5 s); the wait doubles after each failure, and a `Retry-After` in
    /// seconds from the receiver replaces it, capped at `max`. Longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(10));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min.min(crate::MAX_DURATION);
        self.max_backoff = max.min(crate::MAX_DURATION);
        self
    }

    /// How long one request may take (default 30 s). Longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .timeout(Duration::from_secs(10));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(crate::MAX_DURATION);
        self
    }

    /// How long shutdown keeps sending what is queued (default 5 s); what
    /// is left then is dropped and counted. Longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = watchpost::remote_write::RemoteWriteConfig::new("http://localhost/w")?
    ///     .shutdown_timeout(Duration::from_secs(1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout.min(crate::MAX_DURATION);
        self
    }

    /// Checks the numbers; each error names the setting and the value.
    fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.max_samples_per_send == 0 {
            return bad("remote_write.max_samples_per_send", "must be at least 1, got 0".into());
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return bad(
                "remote_write.queue_capacity",
                format!("must be at most {MAX_QUEUE_CAPACITY}, got {}", self.queue_capacity),
            );
        }
        if self.queue_capacity < self.max_samples_per_send {
            return bad(
                "remote_write.queue_capacity",
                format!(
                    "must be at least max_samples_per_send ({}), got {}",
                    self.max_samples_per_send, self.queue_capacity
                ),
            );
        }
        if !(1..=64).contains(&self.shards) {
            return bad("remote_write.shards", format!("must be 1 to 64, got {}", self.shards));
        }
        if !(self.shards..=64).contains(&self.max_shards) {
            return bad(
                "remote_write.max_shards",
                format!("must be {} (shards) to 64, got {}", self.shards, self.max_shards),
            );
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return bad(
                "remote_write.backoff",
                format!(
                    "min must be above zero and at most max, got {:?} and {:?}",
                    self.min_backoff, self.max_backoff
                ),
            );
        }
        if self.timeout.is_zero() {
            return bad("remote_write.timeout", "must be above zero, got 0s".into());
        }
        Ok(())
    }

    /// Whether series `key` is sent.
    fn selects(&self, key: &SeriesKey) -> bool {
        let all = |matchers: &Vec<Matcher>| {
            matchers.iter().all(|m| {
                let value = if m.name() == "__name__" {
                    Some(key.name())
                } else {
                    key.labels().get(m.name())
                };
                m.matches(value)
            })
        };
        (self.include.is_empty() || self.include.iter().any(all)) && !self.exclude.iter().any(all)
    }

    /// The labels of `key` with `suffix` on its name: the series' own, the
    /// extra labels it lacks, and `__name__`, sorted by name.
    fn label_set(&self, key: &SeriesKey, suffix: &str) -> Vec<Label> {
        let mut labels: Vec<Label> = key
            .labels()
            .iter()
            .map(|(name, value)| Label { name: name.to_owned(), value: value.to_owned() })
            .collect();
        for (name, value) in &self.labels {
            if key.labels().get(name).is_none() {
                labels.push(Label { name: name.clone(), value: value.clone() });
            }
        }
        labels
            .push(Label { name: "__name__".to_owned(), value: format!("{}{suffix}", key.name()) });
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels
    }
}

impl EngineBuilder {
    /// Pushes every sample the worker appends to history to a
    /// Prometheus remote-write receiver (feature `remote-write`). A second
    /// call replaces the first.
    ///
    /// Only samples appended in time order are sent (a `record_at` older
    /// than its series' newest sample, or one that replaces a sample at the
    /// same millisecond, stays local): remote-write receivers refuse
    /// out-of-order samples. The settings are checked by
    /// [`build`](Self::build), which fails with [`Error::InvalidConfig`]
    /// naming the setting.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::remote_write::RemoteWriteConfig;
    /// let config = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write")?.shards(0);
    /// let e = watchpost::Engine::builder().remote_write(config).build().unwrap_err();
    /// assert_eq!(e.to_string(), "invalid remote_write.shards: must be 1 to 64, got 0");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn remote_write(mut self, config: RemoteWriteConfig) -> Self {
        self.sinks = vec![Box::new(move |registry, clock| {
            let writer: Arc<dyn crate::engine::sink::SampleSink> =
                sender::Writer::start(config, registry, clock)?;
            Ok(writer)
        })];
        self
    }
}

/// A URL without its query (where some receivers take tokens).
fn redact_url(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The host's name, for the `instance` label.
fn host_name() -> String {
    #[cfg(feature = "system")]
    if let Some(name) = sysinfo::System::host_name().ok().filter(|n| !n.is_empty()) {
        return name;
    }
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The executable's name, for the `job` label.
fn application_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "watchpost".to_owned())
}

#[cfg(test)]
mod tests;
