//! DingTalk robot webhooks: a markdown message, signed when a secret is set.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::delivery::{Delivery, DeliveryStats, Http, Post, Secret, Tracker, check_url};
use super::payload::{headline, label_list};
use super::{AlertGroup, Receiver};
use crate::alert::NotifyResult;
use crate::error::Result;
use crate::registry::Registry;

/// Posts each group to a DingTalk robot as a markdown message. With a
/// signing secret ("加签"), every post carries `timestamp` (ms, by the
/// receiver's clock) and `sign` = urlencode(base64(HMAC-SHA256(secret,
/// "{timestamp}\n{secret}"))) as query parameters, as DingTalk defines it.
/// DingTalk answers 200 with an `errcode`: a non-zero one is a failure.
/// The access token (in the URL) and the secret never appear in `Debug` or errors.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use watchpost::notify::{DingTalkReceiver, ReceiverNotifier};
///
/// let ding = Arc::new(
///     DingTalkReceiver::new("ding", "https://oapi.dingtalk.com/robot/send?access_token=XXXX")?
///         .secret("SEC0123456789"),
/// );
/// let engine = watchpost::Engine::builder()
///     .notifier("ding", ReceiverNotifier(Arc::clone(&ding)))
///     .build()?;
/// ding.register_metrics(engine.registry())?;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct DingTalkReceiver {
    name: String,
    url: Secret,
    secret: Option<Secret>,
    http: Http,
    tracker: Tracker,
}

/// DingTalk's signature of `timestamp_ms` with `secret`, before URL encoding.
pub(crate) fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl DingTalkReceiver {
    /// A DingTalk receiver named `name` posting to the robot `url`
    /// (`https://oapi.dingtalk.com/robot/send?access_token=…`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `url` when it is not an http(s) URL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::notify::DingTalkReceiver::new("d", "oapi.dingtalk.com").is_err());
    /// ```
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self> {
        Ok(DingTalkReceiver {
            name: name.into(),
            url: Secret(check_url("url", url)?),
            secret: None,
            http: Http::new(Delivery::default()),
            tracker: Tracker::default(),
        })
    }

    /// Signs every post with the robot's secret.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = watchpost::notify::DingTalkReceiver::new("d", "https://oapi.dingtalk.com/robot/send?access_token=t0k")?
    ///     .secret("SECabc");
    /// let shown = format!("{d:?}");
    /// assert!(!shown.contains("SECabc") && !shown.contains("t0k"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(Secret(secret.into()));
        self
    }

    /// The clock of the signature's timestamp (default the system clock).
    ///
    /// # Examples
    ///
    /// ```
    /// let _d = watchpost::notify::DingTalkReceiver::new("d", "https://oapi.dingtalk.com/robot/send")?
    ///     .clock(watchpost::SystemClock);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn clock(self, clock: impl crate::clock::Clock) -> Self {
        self.tracker.set_clock(std::sync::Arc::new(clock));
        self
    }

    /// Timeout, retries and backoff of each post.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Delivery, DingTalkReceiver};
    /// let _d = DingTalkReceiver::new("d", "https://oapi.dingtalk.com/robot/send")?
    ///     .delivery(Delivery::new(std::time::Duration::from_secs(3), 2)?);
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
    /// let d = watchpost::notify::DingTalkReceiver::new("d", "https://oapi.dingtalk.com/robot/send")?;
    /// assert_eq!(d.stats().sent, 0);
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
    /// See [`DingTalkReceiver`].
    pub fn register_metrics(&self, registry: &Registry) -> Result<()> {
        self.tracker.register(registry, &self.name)
    }
}

/// The markdown message of a group.
fn message(group: &AlertGroup) -> serde_json::Value {
    let title = headline(group);
    let mut text = format!("### {title}\n");
    for n in &group.alerts {
        let state = if super::is_firing(n) {
            "<font color=\"#d63232\">FIRING</font>"
        } else {
            "<font color=\"#2eb886\">RESOLVED</font>"
        };
        let _ = write!(
            text,
            "\n**{state}** {} ({})\n\n> {}\n\n`{}`\n",
            n.title,
            n.severity.as_str(),
            n.message,
            label_list(&n.labels)
        );
    }
    json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
}

impl Receiver for DingTalkReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, group: &AlertGroup) -> NotifyResult {
        let body = serde_json::to_vec(&message(group))?;
        let query = match &self.secret {
            Some(secret) => {
                let ts = self.tracker.now().timestamp_millis();
                vec![
                    ("timestamp".to_owned(), ts.to_string()),
                    ("sign".to_owned(), sign(&secret.0, ts)),
                ]
            }
            None => Vec::new(),
        };
        let post = Post {
            label: "DingTalk robot",
            url: &self.url.0,
            query,
            headers: &[],
            body: &body,
            errcode_in_body: true,
        };
        self.http.post(&post, &self.tracker)?;
        Ok(())
    }
}

impl fmt::Debug for DingTalkReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkReceiver")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret)
            .field("delivery", &self.http.delivery)
            .field("stats", &self.tracker)
            .finish_non_exhaustive()
    }
}
