//! What every receiver shares: the delivery policy (timeout, retries with
//! exponential backoff and jitter), the delivery counters, secrets that stay
//! out of `Debug`, and the HTTP POST that applies the policy.

use std::fmt;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::metric::{Counter, Gauge};
use crate::registry::Registry;

/// How a receiver delivers one message: the timeout of one attempt, how many
/// times it retries a connection error, a timeout, a 5xx or a 429, and the
/// backoff between attempts (doubling from `initial` up to `max`, each wait
/// drawn at random between half and all of it). Any other 4xx is not retried.
///
/// One send blocks for at most [`max_send_time`](Self::max_send_time); the
/// defaults (5 s, 3 retries, 0.5 s to 4 s) keep it at 23.5 s, under the
/// engine's 30 s stuck timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::notify::Delivery;
/// let d = Delivery::new(Duration::from_secs(2), 2)?
///     .with_backoff(Duration::from_millis(100), Duration::from_secs(1))?;
/// assert_eq!(d.max_send_time(), Duration::from_millis(6_300));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    timeout: Duration,
    retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout: Duration::from_secs(5),
            retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl Delivery {
    /// A policy with the given timeout per attempt (1 ms to 10 min) and
    /// number of retries (at most 20), and the default backoff.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `timeout` or `retries` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(watchpost::notify::Delivery::new(Duration::ZERO, 1).is_err());
    /// ```
    pub fn new(timeout: Duration, retries: u32) -> Result<Self> {
        if timeout < Duration::from_millis(1) || timeout > Duration::from_mins(10) {
            return Err(Error::InvalidConfig {
                field: "timeout",
                reason: format!("{timeout:?} is outside 1 ms ..= 10 min"),
            });
        }
        if retries > 20 {
            return Err(Error::InvalidConfig {
                field: "retries",
                reason: format!("{retries} is more than 20"),
            });
        }
        Ok(Delivery { timeout, retries, ..Delivery::default() })
    }

    /// The backoff before the first retry (at least 1 ms) and its cap (at
    /// least `initial`, at most 10 min).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `backoff` when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let d = watchpost::notify::Delivery::default();
    /// assert!(d.with_backoff(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    /// ```
    pub fn with_backoff(self, initial: Duration, max: Duration) -> Result<Self> {
        if initial < Duration::from_millis(1) || max < initial || max > Duration::from_mins(10) {
            return Err(Error::InvalidConfig {
                field: "backoff",
                reason: format!(
                    "initial {initial:?}, max {max:?}: need 1 ms <= initial <= max <= 10 min"
                ),
            });
        }
        Ok(Delivery { initial_backoff: initial, max_backoff: max, ..self })
    }

    /// The timeout of one attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::notify::Delivery::default().timeout(), std::time::Duration::from_secs(5));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest one send can block: every attempt timing out, with the
    /// longest backoff between them.
    ///
    /// # Examples
    ///
    /// See [`Delivery`].
    pub fn max_send_time(&self) -> Duration {
        let mut total = self.timeout * (self.retries + 1);
        for attempt in 0..self.retries {
            total += self.backoff(attempt);
        }
        total
    }

    /// The longest wait before retry `attempt` (0 for the first retry).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// A wait drawn between half and all of [`backoff`](Self::backoff).
    fn jittered(&self, attempt: u32) -> Duration {
        self.backoff(attempt).mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// Delivery counters of one receiver: a copy, read with the receiver's
/// `stats()` method. With the receiver's `metrics(engine.registry())` setting the same
/// figures are also series of the engine (`watchpost_receiver_*`), so they show
/// in `/metrics` and the dashboard.
///
/// # Examples
///
/// ```
/// let s = watchpost::notify::DeliveryStats::default();
/// assert_eq!(s.sent + s.failed + s.retried + s.dropped, 0);
/// assert!(s.last_error.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// Messages delivered (one per destination and message).
    pub sent: u64,
    /// Messages given up: a 4xx other than 429, or every retry failed.
    pub failed: u64,
    /// Attempts repeated after a connection error, a timeout, a 5xx or a 429.
    pub retried: u64,
    /// Alerts the receiver could not keep (the Alertmanager receiver's
    /// active set is bounded); the queue in front of every receiver counts
    /// its own losses in the engine's handler stats.
    pub dropped: u64,
    /// The last failure: status and response body, or the transport error.
    /// Never holds a secret.
    pub last_error: Option<String>,
    /// When the last failure happened, by the receiver's clock.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The engine series that mirror a receiver's counters.
struct Series {
    sent: Counter,
    failed: Counter,
    retried: Counter,
    dropped: Counter,
    last_error: Gauge,
}

/// A receiver's live counters.
pub(crate) struct Tracker {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<(String, DateTime<Utc>)>>,
    series: Mutex<Option<Series>>,
    clock: Mutex<Arc<dyn Clock>>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            series: Mutex::new(None),
            clock: Mutex::new(Arc::new(SystemClock)),
        }
    }
}

impl Tracker {
    pub(crate) fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.lock() = clock;
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.lock().now()
    }

    /// Registers `watchpost_receiver_{sent,failed,retried,dropped}_total`
    /// and `watchpost_receiver_last_error_timestamp_seconds`, labelled
    /// `receiver=<name>`, and brings them up to date.
    pub(crate) fn register(&self, registry: &Registry, name: &str) -> Result<()> {
        let labels = [("receiver", name)];
        let series = Series {
            sent: registry.counter("watchpost_receiver_sent_total", &labels)?,
            failed: registry.counter("watchpost_receiver_failed_total", &labels)?,
            retried: registry.counter("watchpost_receiver_retried_total", &labels)?,
            dropped: registry.counter("watchpost_receiver_dropped_total", &labels)?,
            last_error: registry
                .gauge("watchpost_receiver_last_error_timestamp_seconds", &labels)?,
        };
        for (metric, help) in [
            ("watchpost_receiver_sent_total", "Messages a receiver delivered."),
            ("watchpost_receiver_failed_total", "Messages a receiver gave up after its retries."),
            ("watchpost_receiver_retried_total", "Delivery attempts a receiver repeated."),
            ("watchpost_receiver_dropped_total", "Alerts a receiver could not keep."),
            (
                "watchpost_receiver_last_error_timestamp_seconds",
                "When a receiver last failed (its error text: the receiver's stats()).",
            ),
        ] {
            registry.describe(metric, help)?;
        }
        let s = self.stats();
        series.sent.add(s.sent);
        series.failed.add(s.failed);
        series.retried.add(s.retried);
        series.dropped.add(s.dropped);
        if let Some(at) = s.last_error_at {
            series.last_error.set(seconds(at));
        }
        *self.series.lock() = Some(series);
        Ok(())
    }

    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = &*self.series.lock() {
            s.sent.inc();
        }
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = &*self.series.lock() {
            s.retried.inc();
        }
    }

    pub(crate) fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        if let Some(s) = &*self.series.lock() {
            s.dropped.add(n);
        }
    }

    pub(crate) fn failed(&self, error: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let at = self.now();
        *self.last_error.lock() = Some((error.to_owned(), at));
        if let Some(s) = &*self.series.lock() {
            s.failed.inc();
            s.last_error.set(seconds(at));
        }
    }

    pub(crate) fn stats(&self) -> DeliveryStats {
        let last = self.last_error.lock().clone();
        DeliveryStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_error_at: last.as_ref().map(|(_, at)| *at),
            last_error: last.map(|(e, _)| e),
        }
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stats(), f)
    }
}

#[allow(clippy::cast_precision_loss)]
fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// Runs `attempt` under `delivery`'s policy: `Err((true, _))` retries after
/// a jittered backoff while retries remain. Counts in `tracker`.
pub(crate) fn retry(
    delivery: &Delivery,
    tracker: &Tracker,
    label: &str,
    mut attempt: impl FnMut() -> std::result::Result<(), (bool, String)>,
) -> std::result::Result<(), String> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        let (again, error) = match attempt() {
            Ok(()) => {
                tracker.sent();
                return Ok(());
            }
            Err(e) => e,
        };
        if !again || tries >= delivery.retries {
            let error = if tries > 0 {
                format!(
                    "{label}: {error} (after {} attempts in {:?})",
                    tries + 1,
                    started.elapsed()
                )
            } else {
                format!("{label}: {error}")
            };
            tracker.failed(&error);
            return Err(error);
        }
        std::thread::sleep(delivery.jittered(tries));
        tries += 1;
        tracker.retried();
    }
}

/// A secret (token, signing key, password): `Debug` prints `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Checks that `url` is an absolute `http` or `https` URL with a host.
pub(crate) fn check_url(field: &'static str, url: &str) -> Result<String> {
    let bad = |why: &str| Error::InvalidConfig { field, reason: format!("{url:?}: {why}") };
    let uri: ureq::http::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url.to_owned())
}

/// A URL for messages and errors: scheme, host, port and path, without the
/// query (where DingTalk's and others' tokens live).
pub(crate) fn redact_url(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

/// One HTTP POST with a JSON body under a [`Delivery`] policy.
pub(crate) struct Post<'a> {
    /// How errors name the destination: never a secret.
    pub(crate) label: &'a str,
    pub(crate) url: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: &'a [(String, Secret)],
    pub(crate) body: &'a [u8],
    /// DingTalk answers 200 with `{"errcode": n}`: a non-zero code fails.
    pub(crate) errcode_in_body: bool,
}

/// The HTTP side of a receiver: a ureq client with the policy's timeout.
pub(crate) struct Http {
    agent: ureq::Agent,
    pub(crate) delivery: Delivery,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http").field("delivery", &self.delivery).finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(delivery: Delivery) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(delivery.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Http { agent, delivery }
    }

    /// Posts, retrying as the policy says; counts in `tracker`. The error
    /// names the destination (never its secret part), the status and the
    /// response body.
    pub(crate) fn post(
        &self,
        post: &Post<'_>,
        tracker: &Tracker,
    ) -> std::result::Result<(), String> {
        retry(&self.delivery, tracker, &format!("POST {}", post.label), || self.attempt(post))
    }

    /// One attempt: `Err((retry, why))` on failure.
    fn attempt(&self, post: &Post<'_>) -> std::result::Result<(), (bool, String)> {
        let mut request = self.agent.post(post.url).header("content-type", "application/json");
        for (name, value) in post.headers {
            request = request.header(name.as_str(), value.0.as_str());
        }
        for (name, value) in &post.query {
            request = request.query(name, value);
        }
        let mut response = request.send(post.body).map_err(|e| (true, e.to_string()))?;
        let status = response.status().as_u16();
        let mut body = String::new();
        let _ = response.body_mut().as_reader().take(16 * 1024).read_to_string(&mut body);
        if (200..300).contains(&status) {
            if post.errcode_in_body {
                let code = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("errcode").and_then(serde_json::Value::as_i64));
                if code != Some(0) {
                    return Err((false, format!("status {status}: {}", body.trim())));
                }
            }
            return Ok(());
        }
        let retry = status >= 500 || status == 429;
        Err((retry, format!("status {status}: {}", body.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half() {
        let d = Delivery::new(Duration::from_secs(1), 5)
            .unwrap()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(300))
            .unwrap();
        let waits: Vec<_> = (0..5).map(|a| d.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 300, 300, 300]);
        for _ in 0..100 {
            let j = d.jittered(1);
            assert!(j >= Duration::from_millis(100) && j <= Duration::from_millis(200), "{j:?}");
        }
        assert_eq!(d.backoff(200), Duration::from_millis(300));
    }

    #[test]
    fn bad_settings_name_the_value() {
        let e = Delivery::new(Duration::from_secs(601), 1).unwrap_err().to_string();
        assert!(e.contains("timeout") && e.contains("601s"), "{e}");
        let e = Delivery::new(Duration::from_secs(1), 21).unwrap_err().to_string();
        assert!(e.contains("retries") && e.contains("21"), "{e}");
        let e = check_url("url", "ftp://x").unwrap_err().to_string();
        assert!(e.contains("ftp://x"), "{e}");
        assert!(check_url("url", "http:///nohost").is_err());
        assert!(check_url("url", "https://hooks.example.com/a?b=c").is_ok());
    }

    #[test]
    fn secrets_and_queries_stay_out_of_debug_and_errors() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "\"***\"");
        assert_eq!(redact_url("https://x/robot/send?access_token=abc"), "https://x/robot/send");
    }

    #[test]
    fn an_unreachable_url_fails_after_the_retries_and_counts() {
        let d = Delivery::new(Duration::from_millis(200), 2)
            .unwrap()
            .with_backoff(Duration::from_millis(1), Duration::from_millis(2))
            .unwrap();
        let http = Http::new(d);
        let tracker = Tracker::default();
        // Port 9 on loopback: connection refused.
        let url = "http://127.0.0.1:9/x?token=s3cret";
        let post = Post {
            label: redact_url(url),
            url,
            query: vec![],
            headers: &[],
            body: b"{}",
            errcode_in_body: false,
        };
        let e = http.post(&post, &tracker).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        let s = tracker.stats();
        assert_eq!((s.sent, s.failed, s.retried), (0, 1, 2), "{s:?}");
        assert_eq!(s.last_error.as_deref(), Some(e.as_str()));
    }
}
