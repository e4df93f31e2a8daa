//! A JSON POST in Alertmanager's webhook format.

use std::fmt;

use super::delivery::{
    Delivery, DeliveryStats, Http, Post, Secret, Tracker, check_url, redact_url,
};
use super::payload::WebhookPayload;
use super::{AlertGroup, Receiver};
use crate::alert::NotifyResult;
use crate::error::Result;
use crate::registry::Registry;

/// Posts each group as Alertmanager's webhook payload (`version: "4"`,
/// `groupKey`, `truncatedAlerts`, `status`, `receiver`, `groupLabels`,
/// `commonLabels`, `commonAnnotations`, `externalURL`, and `alerts[]` with
/// `status`, `labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`,
/// `fingerprint`), so any consumer of Alertmanager's webhooks accepts it.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use watchpost::notify::{ReceiverNotifier, WebhookReceiver};
///
/// let hook = Arc::new(
///     WebhookReceiver::new("oncall", "https://hooks.example.com/alerts")?
///         .bearer_token("s3cret")
///         .header("x-team", "chat")
///         .external_url("http://chat-1:9898/"),
/// );
/// let engine = watchpost::Engine::builder()
///     .notifier("oncall", ReceiverNotifier(Arc::clone(&hook)))
///     .build()?;
/// hook.register_metrics(engine.registry())?;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct WebhookReceiver {
    name: String,
    url: String,
    headers: Vec<(String, Secret)>,
    external_url: String,
    max_alerts: usize,
    http: Http,
    tracker: Tracker,
}

impl WebhookReceiver {
    /// A webhook receiver named `name` posting to `url`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `url` when it is not an http(s) URL.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = watchpost::notify::WebhookReceiver::new("x", "localhost:80").unwrap_err();
    /// assert!(e.to_string().contains("localhost:80"));
    /// ```
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self> {
        Ok(WebhookReceiver {
            name: name.into(),
            url: check_url("url", url)?,
            headers: Vec::new(),
            external_url: String::new(),
            max_alerts: 0,
            http: Http::new(Delivery::default()),
            tracker: Tracker::default(),
        })
    }

    /// Sends `Authorization: Bearer <token>`. Never printed.
    ///
    /// # Examples
    ///
    /// See [`WebhookReceiver`].
    #[must_use]
    pub fn bearer_token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sends a header with every post; its value is kept out of `Debug`.
    ///
    /// # Examples
    ///
    /// See [`WebhookReceiver`].
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), Secret(value.to_owned())));
        self
    }

    /// The payload's `externalURL` (where the alerts come from); default empty.
    /// Alerts' `generatorURL` is the same.
    ///
    /// # Examples
    ///
    /// See [`WebhookReceiver`].
    #[must_use]
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = url.into();
        self
    }

    /// At most this many alerts per post, the rest counted in
    /// `truncatedAlerts` (default 0: all).
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = watchpost::notify::WebhookReceiver::new("x", "http://127.0.0.1:1/")?.max_alerts(10);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn max_alerts(mut self, alerts: usize) -> Self {
        self.max_alerts = alerts;
        self
    }

    /// Timeout, retries and backoff of each post.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Delivery, WebhookReceiver};
    /// let _h = WebhookReceiver::new("x", "http://127.0.0.1:1/")?
    ///     .delivery(Delivery::new(std::time::Duration::from_secs(1), 0)?);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.http = Http::new(delivery);
        self
    }

    /// The delivery counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = watchpost::notify::WebhookReceiver::new("x", "http://127.0.0.1:1/")?;
    /// assert_eq!(h.stats().sent, 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn stats(&self) -> DeliveryStats {
        self.tracker.stats()
    }

    /// Mirrors the counters as `watchpost_receiver_*{receiver=<name>}` series.
    ///
    /// # Errors
    ///
    /// A series cap of the registry reached.
    ///
    /// # Examples
    ///
    /// See [`WebhookReceiver`].
    pub fn register_metrics(&self, registry: &Registry) -> Result<()> {
        self.tracker.register(registry, &self.name)
    }
}

impl Receiver for WebhookReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, group: &AlertGroup) -> NotifyResult {
        let payload =
            WebhookPayload::new(group, &self.external_url, &self.external_url, self.max_alerts);
        let body = serde_json::to_vec(&payload)?;
        let post = Post {
            label: redact_url(&self.url),
            url: &self.url,
            query: Vec::new(),
            headers: &self.headers,
            body: &body,
            errcode_in_body: false,
        };
        self.http.post(&post, &self.tracker)?;
        Ok(())
    }
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers)
            .field("delivery", &self.http.delivery)
            .field("stats", &self.tracker)
            .finish_non_exhaustive()
    }
}
