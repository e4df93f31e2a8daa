//! Slack incoming webhooks: one message with a coloured attachment per group.

use std::fmt;

use serde_json::json;

use super::delivery::{Delivery, DeliveryStats, Http, Post, Secret, Tracker, check_url};
use super::payload::{headline, label_list};
use super::{AlertGroup, GroupStatus, Receiver};
use crate::alert::{NotifyResult, Severity};
use crate::error::Result;
use crate::registry::Registry;

/// Posts each group to a Slack incoming webhook: a headline
/// (`[FIRING:2] alertname` or `[RESOLVED] alertname`) and one attachment
/// whose colour says the state at a glance: green when resolved, else by
/// the worst severity firing (critical and error red, warning amber, info
/// blue). The webhook URL is a secret: it never appears in `Debug` or errors.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use watchpost::notify::{ReceiverNotifier, SlackReceiver};
///
/// let slack = Arc::new(
///     SlackReceiver::new("slack", "https://hooks.slack.com/services/T000/B000/XXXX")?
///         .channel("#alerts")
///         .username("watchpost"),
/// );
/// let engine = watchpost::Engine::builder()
///     .notifier("slack", ReceiverNotifier(Arc::clone(&slack)))
///     .build()?;
/// slack.register_metrics(engine.registry())?;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct SlackReceiver {
    name: String,
    url: Secret,
    channel: Option<String>,
    username: Option<String>,
    http: Http,
    tracker: Tracker,
}

/// The attachment colour of a group.
pub(crate) fn colour(group: &AlertGroup) -> &'static str {
    if group.status() == GroupStatus::Resolved {
        return "#2eb886";
    }
    match group.firing().map(|n| n.severity).max() {
        Some(Severity::Critical | Severity::Error) => "#d63232",
        Some(Severity::Warning) => "#daa038",
        _ => "#439fe0",
    }
}

impl SlackReceiver {
    /// A Slack receiver named `name` posting to the incoming-webhook `url`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] naming `url` when it is not an http(s) URL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::notify::SlackReceiver::new("s", "hooks.slack.com").is_err());
    /// ```
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self> {
        Ok(SlackReceiver {
            name: name.into(),
            url: Secret(check_url("url", url)?),
            channel: None,
            username: None,
            http: Http::new(Delivery::default()),
            tracker: Tracker::default(),
        })
    }

    /// The channel to post in, instead of the webhook's own.
    ///
    /// # Examples
    ///
    /// See [`SlackReceiver`].
    #[must_use]
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The name the message is posted under.
    ///
    /// # Examples
    ///
    /// See [`SlackReceiver`].
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Timeout, retries and backoff of each post.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Delivery, SlackReceiver};
    /// let _s = SlackReceiver::new("s", "https://hooks.slack.com/services/x")?
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
    /// let s = watchpost::notify::SlackReceiver::new("s", "https://hooks.slack.com/services/x")?;
    /// assert_eq!(s.stats().failed, 0);
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
    /// See [`SlackReceiver`].
    pub fn register_metrics(&self, registry: &Registry) -> Result<()> {
        self.tracker.register(registry, &self.name)
    }

    fn message(&self, group: &AlertGroup) -> serde_json::Value {
        let title = headline(group);
        let text = group
            .alerts
            .iter()
            .map(|n| {
                let state = if super::is_firing(n) { "FIRING" } else { "RESOLVED" };
                format!(
                    "*{state}* {} ({})\n{}\n`{}`",
                    n.title,
                    n.severity.as_str(),
                    n.message,
                    label_list(&n.labels)
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut message = json!({
            "text": title,
            "attachments": [{
                "color": colour(group),
                "fallback": title,
                "title": title,
                "text": text,
                "mrkdwn_in": ["text"],
                "footer": "watchpost",
            }],
        });
        if let Some(c) = &self.channel {
            message["channel"] = json!(c);
        }
        if let Some(u) = &self.username {
            message["username"] = json!(u);
        }
        message
    }
}

impl Receiver for SlackReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, group: &AlertGroup) -> NotifyResult {
        let body = serde_json::to_vec(&self.message(group))?;
        let post = Post {
            label: "Slack webhook",
            url: &self.url.0,
            query: Vec::new(),
            headers: &[],
            body: &body,
            errcode_in_body: false,
        };
        self.http.post(&post, &self.tracker)?;
        Ok(())
    }
}

impl fmt::Debug for SlackReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackReceiver")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("channel", &self.channel)
            .field("delivery", &self.http.delivery)
            .field("stats", &self.tracker)
            .finish_non_exhaustive()
    }
}
