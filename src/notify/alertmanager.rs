//! Alertmanager's v2 API: `POST /api/v2/alerts`, with re-sending of the
//! alerts still firing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::{Sender, bounded};
use parking_lot::Mutex;

use super::delivery::{Delivery, DeliveryStats, Http, Post, Secret, Tracker, check_url};
use super::payload::PostableAlert;
use super::{AlertGroup, Receiver, is_firing};
use crate::alert::{Notification, NotifyResult};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::registry::Registry;

/// How often the re-send thread looks at the clock (wall time).
const POLL: Duration = Duration::from_millis(50);

/// Pushes alerts to one or more Alertmanagers (an HA pair gets every alert
/// at each address) through their v2 API, as Prometheus does: firing alerts
/// with labels, annotations (`summary`, `description`), `startsAt` and
/// `generatorURL`; resolved ones with `endsAt`.
///
/// The alerts still firing are re-sent every `resend_interval` (default
/// 1 min, by the [`Clock`] given) by a thread of the receiver's own, with an
/// `endsAt` four intervals ahead, so Alertmanager neither expires them nor
/// forgets them across its own restart. The thread stops on drop and on the
/// engine's shutdown.
///
/// Share it through an `Arc` to read [`stats`](Self::stats) and register
/// its metrics once the engine is built.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use watchpost::notify::{AlertmanagerReceiver, ReceiverNotifier};
///
/// let am = Arc::new(
///     AlertmanagerReceiver::builder(["http://am-1:9093", "http://am-2:9093"])
///         .resend_interval(Duration::from_secs(30))
///         .generator_url("http://chat-1:9898/")
///         .build()?,
/// );
/// let engine = watchpost::Engine::builder()
///     .notifier("alertmanager", ReceiverNotifier(Arc::clone(&am)))
///     .build()?;
/// am.register_metrics(engine.registry())?;
/// assert_eq!(am.stats().failed, 0);
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct AlertmanagerReceiver {
    inner: Arc<Inner>,
    stop: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

struct Inner {
    name: String,
    urls: Vec<String>,
    headers: Vec<(String, Secret)>,
    generator_url: Option<String>,
    http: Http,
    tracker: Tracker,
    clock: Arc<dyn Clock>,
    resend_interval: Duration,
    max_active: usize,
    /// The alerts still firing, by alert id, and when they were last sent.
    active: Mutex<BTreeMap<String, Notification>>,
    last_resend: Mutex<DateTime<Utc>>,
}

/// Settings of an [`AlertmanagerReceiver`].
///
/// # Examples
///
/// See [`AlertmanagerReceiver`].
pub struct AlertmanagerBuilder {
    name: String,
    urls: Vec<String>,
    bearer_token: Option<Secret>,
    generator_url: Option<String>,
    delivery: Delivery,
    clock: Arc<dyn Clock>,
    resend_interval: Duration,
    max_active: usize,
}

impl fmt::Debug for AlertmanagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerBuilder")
            .field("name", &self.name)
            .field("urls", &self.urls)
            .field("bearer_token", &self.bearer_token)
            .field("resend_interval", &self.resend_interval)
            .finish_non_exhaustive()
    }
}

impl AlertmanagerReceiver {
    /// Starts the settings with the Alertmanagers' base URLs
    /// (`http://host:9093`; `/api/v2/alerts` is appended).
    ///
    /// # Examples
    ///
    /// See [`AlertmanagerReceiver`].
    pub fn builder<I, S>(urls: I) -> AlertmanagerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AlertmanagerBuilder {
            name: "alertmanager".to_owned(),
            urls: urls.into_iter().map(Into::into).collect(),
            bearer_token: None,
            generator_url: None,
            delivery: Delivery::default(),
            clock: Arc::new(SystemClock),
            resend_interval: Duration::from_mins(1),
            max_active: 10_000,
        }
    }

    /// The delivery counters (one message per Alertmanager and send).
    ///
    /// # Examples
    ///
    /// See [`AlertmanagerReceiver`].
    pub fn stats(&self) -> DeliveryStats {
        self.inner.tracker.stats()
    }

    /// Mirrors the counters as `watchpost_receiver_*{receiver=<name>}`
    /// series of `registry` (the engine's), so `/metrics` and the dashboard
    /// show them.
    ///
    /// # Errors
    ///
    /// A series cap of the registry reached.
    ///
    /// # Examples
    ///
    /// See [`AlertmanagerReceiver`].
    pub fn register_metrics(&self, registry: &Registry) -> Result<()> {
        self.inner.tracker.register(registry, &self.inner.name)
    }

    /// The number of alerts it keeps re-sending.
    ///
    /// # Examples
    ///
    /// ```
    /// let am = watchpost::notify::AlertmanagerReceiver::builder(["http://127.0.0.1:9093"]).build()?;
    /// assert_eq!(am.active(), 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn active(&self) -> usize {
        self.inner.active.lock().len()
    }

    fn stop(&self) {
        if let Some((stop, thread)) = self.stop.lock().take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl AlertmanagerBuilder {
    /// The receiver's name (default `alertmanager`), as routes and metrics name it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{AlertmanagerReceiver, Receiver};
    /// let am = AlertmanagerReceiver::builder(["http://127.0.0.1:9093"]).name("am-eu").build()?;
    /// assert_eq!(am.name(), "am-eu");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How often the alerts still firing are re-sent (default 1 min, at
    /// least 1 s). Keep it under Alertmanager's `resolve_timeout` (5 min).
    ///
    /// # Examples
    ///
    /// See [`AlertmanagerReceiver`].
    #[must_use]
    pub fn resend_interval(mut self, interval: Duration) -> Self {
        self.resend_interval = interval;
        self
    }

    /// The clock of re-sending and of `endsAt` (default the system clock;
    /// give the engine's).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::AlertmanagerReceiver;
    /// let am = AlertmanagerReceiver::builder(["http://127.0.0.1:9093"])
    ///     .clock(watchpost::SystemClock)
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The `generatorURL` of every alert: where to look (a dashboard).
    ///
    /// # Examples
    ///
    /// See [`AlertmanagerReceiver`].
    #[must_use]
    pub fn generator_url(mut self, url: impl Into<String>) -> Self {
        self.generator_url = Some(url.into());
        self
    }

    /// An `Authorization: Bearer` token (a proxy in front of Alertmanager).
    /// Never printed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::AlertmanagerReceiver;
    /// let b = AlertmanagerReceiver::builder(["http://127.0.0.1:9093"]).bearer_token("s3cret");
    /// assert!(!format!("{b:?}").contains("s3cret"));
    /// ```
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(Secret(format!("Bearer {}", token.into())));
        self
    }

    /// Timeout, retries and backoff of each post.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{AlertmanagerReceiver, Delivery};
    /// let am = AlertmanagerReceiver::builder(["http://127.0.0.1:9093"])
    ///     .delivery(Delivery::new(std::time::Duration::from_secs(2), 1)?)
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// How many firing alerts it keeps for re-sending (default 10 000);
    /// past it, new ones are sent once and counted in `dropped`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::AlertmanagerReceiver;
    /// assert!(AlertmanagerReceiver::builder(["http://127.0.0.1:9093"]).max_active(0).build().is_err());
    /// ```
    #[must_use]
    pub fn max_active(mut self, alerts: usize) -> Self {
        self.max_active = alerts;
        self
    }

    /// Checks the settings and starts the re-send thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `urls` (none, or one that is not an
    /// http(s) URL), `resend_interval` (under 1 s) or `max_active` (0);
    /// [`Error::Spawn`] if the thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::AlertmanagerReceiver;
    /// let e = AlertmanagerReceiver::builder(["am:9093"]).build().unwrap_err();
    /// assert!(e.to_string().contains("am:9093"));
    /// ```
    pub fn build(self) -> Result<AlertmanagerReceiver> {
        if self.urls.is_empty() {
            return Err(Error::InvalidConfig {
                field: "urls",
                reason: "no Alertmanager URL given".to_owned(),
            });
        }
        let urls = self
            .urls
            .iter()
            .map(|u| {
                check_url("urls", u).map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
            })
            .collect::<Result<Vec<_>>>()?;
        if self.resend_interval < Duration::from_secs(1) {
            return Err(Error::InvalidConfig {
                field: "resend_interval",
                reason: format!("{:?} is under 1 s", self.resend_interval),
            });
        }
        if self.max_active == 0 {
            return Err(Error::InvalidConfig {
                field: "max_active",
                reason: "0: must keep at least one alert".to_owned(),
            });
        }
        let tracker = Tracker::default();
        tracker.set_clock(Arc::clone(&self.clock));
        let inner = Arc::new(Inner {
            name: self.name,
            urls,
            headers: self
                .bearer_token
                .map(|t| ("authorization".to_owned(), t))
                .into_iter()
                .collect(),
            generator_url: self.generator_url,
            http: Http::new(self.delivery),
            tracker,
            clock: Arc::clone(&self.clock),
            resend_interval: self.resend_interval,
            max_active: self.max_active,
            active: Mutex::new(BTreeMap::new()),
            last_resend: Mutex::new(self.clock.now()),
        });
        let (stop, stopped) = bounded::<()>(0);
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name(format!("watchpost-am-{}", inner.name))
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(POLL)
                {
                    worker.resend_due();
                }
            })
            .map_err(Error::Spawn)?;
        Ok(AlertmanagerReceiver { inner, stop: Mutex::new(Some((stop, thread))) })
    }
}

impl Inner {
    /// `endsAt` of a firing alert sent now.
    fn valid_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let ahead =
            chrono::Duration::from_std(self.resend_interval * 4).unwrap_or(chrono::Duration::MAX);
        now.checked_add_signed(ahead).unwrap_or(now)
    }

    /// Posts `alerts` to every Alertmanager. `Ok` when at least one took
    /// them (the cluster gossips them to the others).
    fn post(&self, alerts: &[&Notification]) -> NotifyResult {
        let now = self.clock.now();
        let until = self.valid_until(now);
        let body: Vec<_> = alerts
            .iter()
            .map(|n| PostableAlert::new(n, self.generator_url.as_deref(), until))
            .collect();
        let body = serde_json::to_vec(&body)?;
        let mut errors = Vec::new();
        for url in &self.urls {
            let post = Post {
                label: url,
                url,
                query: Vec::new(),
                headers: &self.headers,
                body: &body,
                errcode_in_body: false,
            };
            if let Err(e) = self.http.post(&post, &self.tracker) {
                errors.push(e);
            }
        }
        if errors.len() == self.urls.len() { Err(errors.join("; ").into()) } else { Ok(()) }
    }

    /// Re-sends the active alerts when the interval has passed since the
    /// last (re-)send; returns how many it sent.
    fn resend_due(&self) -> usize {
        let now = self.clock.now();
        {
            let mut last = self.last_resend.lock();
            let interval =
                chrono::Duration::from_std(self.resend_interval).unwrap_or(chrono::Duration::MAX);
            if now.signed_duration_since(*last) < interval {
                return 0;
            }
            *last = now;
        }
        let active: Vec<Notification> = self.active.lock().values().cloned().collect();
        if active.is_empty() {
            return 0;
        }
        let refs: Vec<&Notification> = active.iter().collect();
        let _ = self.post(&refs);
        active.len()
    }
}

impl Receiver for AlertmanagerReceiver {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn send(&self, group: &AlertGroup) -> NotifyResult {
        {
            let mut active = self.inner.active.lock();
            let mut dropped = 0;
            for n in &group.alerts {
                if is_firing(n) {
                    if active.len() < self.inner.max_active || active.contains_key(&n.alert_id) {
                        active.insert(n.alert_id.clone(), n.clone());
                    } else {
                        dropped += 1;
                    }
                } else {
                    active.remove(&n.alert_id);
                }
            }
            if dropped > 0 {
                self.inner.tracker.dropped(dropped);
            }
        }
        let alerts: Vec<&Notification> = group.alerts.iter().collect();
        self.inner.post(&alerts)
    }

    fn flush(&self) {
        self.stop();
    }
}

impl Drop for AlertmanagerReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for AlertmanagerReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerReceiver")
            .field("name", &self.inner.name)
            .field("urls", &self.inner.urls)
            .field("headers", &self.inner.headers)
            .field("resend_interval", &self.inner.resend_interval)
            .field("active", &self.active())
            .field("stats", &self.inner.tracker)
            .finish_non_exhaustive()
    }
}
