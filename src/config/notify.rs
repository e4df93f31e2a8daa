//! Notification routes and receivers as written in a file (feature `notify`).
//!
//! Secrets (webhook URLs that carry a token, bearer tokens, passwords) are
//! read from the environment (`{ env = "VAR" }`) or a file
//! (`{ file = "/run/secrets/x" }`); an inline string is accepted too, and is
//! redacted wherever the configuration is shown.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Matcher;
use crate::error::{Error, Result};
use crate::notify::{
    AlertmanagerReceiver, Delivery, DingTalkReceiver, EmailReceiver, Receiver, Route,
    SlackReceiver, SmtpSecurity, WebhookReceiver,
};

/// A receiver's `delivery` table: [`Delivery::new`] (`timeout` per attempt,
/// default 5 s; `retries`, default 3) and
/// [`Delivery::with_backoff`] (`initial_backoff` and `max_backoff`, given
/// together; default 500 ms and 4 s).
///
/// # Examples
///
/// ```
/// let d: watchpost::config::DeliverySpec = toml::from_str("timeout = \"2s\"\nretries = 1")?;
/// assert_eq!(d.to_delivery()?.timeout(), std::time::Duration::from_secs(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DeliverySpec {
    /// Timeout of one attempt.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Backoff before the first retry.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub initial_backoff: Option<Duration>,
    /// Cap on the backoff.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Duration>,
}

impl DeliverySpec {
    /// The delivery policy, through [`Delivery::new`] and [`Delivery::with_backoff`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a value they refuse, or one backoff without the other.
    ///
    /// # Examples
    ///
    /// ```
    /// let d: watchpost::config::DeliverySpec = toml::from_str("retries = 99")?;
    /// assert!(d.to_delivery().unwrap_err().to_string().contains("99"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_delivery(&self) -> Result<Delivery> {
        let d = Delivery::new(
            self.timeout.unwrap_or_else(|| Delivery::default().timeout()),
            self.retries.unwrap_or(3),
        )?;
        match (self.initial_backoff, self.max_backoff) {
            (Some(initial), Some(max)) => d.with_backoff(initial, max),
            (None, None) => Ok(d),
            _ => Err(Error::InvalidConfig {
                field: "delivery",
                reason: "give initial_backoff and max_backoff together".to_owned(),
            }),
        }
    }
}

/// The delivery policy of an optional `delivery` table.
fn delivery(spec: Option<&DeliverySpec>) -> Result<Option<Delivery>> {
    spec.map(DeliverySpec::to_delivery).transpose()
}

/// What [`Secret::redacted`] shows instead of an inline secret.
pub const REDACTED: &str = "<redacted>";

/// A secret: from an environment variable, a file, or (discouraged) inline.
///
/// # Examples
///
/// ```
/// use watchpost::config::Secret;
/// let s: Secret = serde_json::from_str(r#"{ "env": "HOME" }"#)?;
/// assert_eq!(s, Secret::Env { env: "HOME".into() });
/// assert!(Secret::Env { env: "WATCHPOST_NO_SUCH_VARIABLE".into() }.resolve().unwrap_err()
///     .to_string().contains("WATCHPOST_NO_SUCH_VARIABLE"));
/// assert_eq!(Secret::Inline("x".into()).redacted(), Secret::Inline("<redacted>".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// `{ env = "VAR" }`: the value of an environment variable.
    Env {
        /// The variable's name.
        env: String,
    },
    /// `{ file = "path" }`: a file's contents, without a trailing newline.
    File {
        /// The file's path.
        file: String,
    },
    /// `"value"`: inline; shown as [`REDACTED`].
    Inline(String),
}

impl Secret {
    /// The secret's value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable that is not set or the
    /// file that cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::config::Secret::Inline("t".into()).resolve()?, "t");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn resolve(&self) -> Result<String> {
        match self {
            Secret::Env { env } => std::env::var(env).map_err(|e| Error::InvalidConfig {
                field: "secret",
                reason: format!("environment variable {env:?}: {e}"),
            }),
            Secret::File { file } => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| Error::InvalidConfig {
                    field: "secret",
                    reason: format!("file {file:?}: {e}"),
                }),
            Secret::Inline(s) => Ok(s.clone()),
        }
    }

    /// The same reference with an inline value replaced by [`REDACTED`].
    ///
    /// # Examples
    ///
    /// See [`Secret`].
    #[must_use]
    pub fn redacted(&self) -> Secret {
        match self {
            Secret::Inline(_) => Secret::Inline(REDACTED.to_owned()),
            other => other.clone(),
        }
    }
}

/// A route as written in a file, as Alertmanager writes it: `receiver`,
/// `matchers`, `continue`, `group_by`, `group_wait`, `group_interval`,
/// `repeat_interval` and child `routes`; see [`Route`].
///
/// # Examples
///
/// ```
/// let spec: watchpost::config::RouteSpec = toml::from_str(r#"
///     receiver = "ops"
///     group_by = ["alertname"]
///     group_wait = "10s"
///     [[routes]]
///     matchers = ['severity="critical"']
///     receiver = "pager"
/// "#)?;
/// let tree = watchpost::notify::RouteTree::new(spec.to_route()?, ["ops", "pager"])?;
/// assert_eq!(tree.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteSpec {
    /// The receiver (default: the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Matchers an alert must satisfy (none on the root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    /// Whether matching goes on to the next sibling.
    #[serde(default, rename = "continue", skip_serializing_if = "std::ops::Not::not")]
    pub continue_: bool,
    /// Labels that group alerts (`["..."]`: every label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// How long a new group waits before its first message.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<Duration>,
    /// How long a group waits before a message about changes.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<Duration>,
    /// How long before an unchanged group is sent again.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Duration>,
    /// Child routes, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
}

impl RouteSpec {
    /// The route, through [`Route`]'s builder (the tree is checked when the
    /// router is built: receivers that exist, valid `group_by`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] quoting a matcher that does not parse.
    ///
    /// # Examples
    ///
    /// See [`RouteSpec`].
    pub fn to_route(&self) -> Result<Route> {
        let matchers =
            self.matchers.iter().map(|m| m.parse::<Matcher>()).collect::<Result<Vec<_>>>()?;
        let mut r = Route::matching(matchers).continue_(self.continue_);
        if let Some(name) = &self.receiver {
            r = r.receiver(name.clone());
        }
        if let Some(labels) = &self.group_by {
            r = r.group_by(labels.iter().map(String::as_str));
        }
        if let Some(d) = self.group_wait {
            r = r.group_wait(d);
        }
        if let Some(d) = self.group_interval {
            r = r.group_interval(d);
        }
        if let Some(d) = self.repeat_interval {
            r = r.repeat_interval(d);
        }
        for child in &self.routes {
            r = r.child(child.to_route()?);
        }
        Ok(r)
    }
}

/// A receiver as written in a file: a table with a `kind` and the settings
/// of that receiver's constructor and builder. Secrets are [`Secret`]s.
///
/// | `kind` | fields |
/// |---|---|
/// | `webhook` | `name`, `url`, `bearer_token`, `max_alerts`, `headers` (name → secret), `external_url` |
/// | `slack` | `name`, `url` (secret: the URL carries the token), `channel`, `username` |
/// | `alertmanager` | `name`, `urls`, `bearer_token`, `resend_interval`, `generator_url`, `max_active` |
/// | `dingtalk` | `name`, `url` (secret), `secret` |
/// | `email` | `name`, `host`, `port`, `security` (`plain`, `start_tls`, `tls`), `from`, `to`, `user`, `password` |
///
/// Every kind also takes a `delivery` table ([`DeliverySpec`]): timeout,
/// retries and backoff.
///
/// # Examples
///
/// ```
/// let spec: watchpost::config::ReceiverSpec = toml::from_str(r#"
///     kind = "webhook"
///     name = "ops"
///     url = "http://127.0.0.1:9/hook"
///     bearer_token = { env = "WATCHPOST_DOC_NO_SUCH_TOKEN" }
/// "#)?;
/// let Err(err) = spec.to_receiver() else { panic!("the variable is not set") };
/// assert!(err.to_string().contains("WATCHPOST_DOC_NO_SUCH_TOKEN"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs, reason = "the table above documents each field")]
pub enum ReceiverSpec {
    /// [`WebhookReceiver`].
    Webhook {
        name: String,
        url: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bearer_token: Option<Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_alerts: Option<usize>,
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        headers: std::collections::BTreeMap<String, Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliverySpec>,
    },
    /// [`SlackReceiver`].
    Slack {
        name: String,
        url: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliverySpec>,
    },
    /// [`AlertmanagerReceiver`].
    Alertmanager {
        name: String,
        urls: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bearer_token: Option<Secret>,
        #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
        resend_interval: Option<Duration>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generator_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_active: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliverySpec>,
    },
    /// [`DingTalkReceiver`].
    Dingtalk {
        name: String,
        url: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliverySpec>,
    },
    /// [`EmailReceiver`].
    Email {
        name: String,
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security: Option<SmtpSecurity>,
        from: String,
        to: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliverySpec>,
    },
}

impl ReceiverSpec {
    /// The receiver's name.
    ///
    /// # Examples
    ///
    /// See [`ReceiverSpec`].
    pub fn name(&self) -> &str {
        match self {
            ReceiverSpec::Webhook { name, .. }
            | ReceiverSpec::Slack { name, .. }
            | ReceiverSpec::Alertmanager { name, .. }
            | ReceiverSpec::Dingtalk { name, .. }
            | ReceiverSpec::Email { name, .. } => name,
        }
    }

    /// Resolves the secrets and builds the receiver through its constructor
    /// and builder.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a secret that cannot be read or a
    /// setting the receiver refuses (a bad URL, say).
    ///
    /// # Examples
    ///
    /// See [`ReceiverSpec`].
    pub fn to_receiver(&self) -> Result<Box<dyn Receiver>> {
        Ok(match self {
            ReceiverSpec::Webhook {
                name,
                url,
                bearer_token,
                max_alerts,
                headers,
                external_url,
                delivery: d,
            } => {
                let mut r = WebhookReceiver::new(name.clone(), &url.resolve()?)?;
                if let Some(t) = bearer_token {
                    r = r.bearer_token(&t.resolve()?);
                }
                if let Some(n) = max_alerts {
                    r = r.max_alerts(*n);
                }
                for (header, value) in headers {
                    r = r.header(header, &value.resolve()?);
                }
                if let Some(u) = external_url {
                    r = r.external_url(u.clone());
                }
                if let Some(d) = delivery(d.as_ref())? {
                    r = r.delivery(d);
                }
                Box::new(r)
            }
            ReceiverSpec::Slack { name, url, channel, username, delivery: d } => {
                let mut r = SlackReceiver::new(name.clone(), &url.resolve()?)?;
                if let Some(c) = channel {
                    r = r.channel(c.clone());
                }
                if let Some(u) = username {
                    r = r.username(u.clone());
                }
                if let Some(d) = delivery(d.as_ref())? {
                    r = r.delivery(d);
                }
                Box::new(r)
            }
            ReceiverSpec::Alertmanager {
                name,
                urls,
                bearer_token,
                resend_interval,
                generator_url,
                max_active,
                delivery: d,
            } => {
                let mut b = AlertmanagerReceiver::builder(urls).name(name.clone());
                if let Some(t) = bearer_token {
                    b = b.bearer_token(t.resolve()?);
                }
                if let Some(d) = resend_interval {
                    b = b.resend_interval(*d);
                }
                if let Some(u) = generator_url {
                    b = b.generator_url(u.clone());
                }
                if let Some(n) = max_active {
                    b = b.max_active(*n);
                }
                if let Some(d) = delivery(d.as_ref())? {
                    b = b.delivery(d);
                }
                Box::new(b.build()?)
            }
            ReceiverSpec::Dingtalk { name, url, secret, delivery: d } => {
                let mut r = DingTalkReceiver::new(name.clone(), &url.resolve()?)?;
                if let Some(s) = secret {
                    r = r.secret(s.resolve()?);
                }
                if let Some(d) = delivery(d.as_ref())? {
                    r = r.delivery(d);
                }
                Box::new(r)
            }
            ReceiverSpec::Email {
                name,
                host,
                port,
                security,
                from,
                to,
                user,
                password,
                delivery: d,
            } => {
                let mut b = EmailReceiver::builder(host.clone(), from.clone(), to.iter().cloned())
                    .name(name.clone());
                if let Some(d) = delivery(d.as_ref())? {
                    b = b.delivery(d);
                }
                if let Some(p) = port {
                    b = b.port(*p);
                }
                if let Some(s) = security {
                    b = b.security(*s);
                }
                match (user, password) {
                    (Some(u), Some(p)) => b = b.credentials(u.clone(), p.resolve()?),
                    (None, None) => {}
                    _ => {
                        return Err(Error::InvalidConfig {
                            field: "password",
                            reason: format!(
                                "receiver {name:?}: give both user and password, or neither"
                            ),
                        });
                    }
                }
                Box::new(b.build()?)
            }
        })
    }

    /// The same spec with inline secrets replaced by [`REDACTED`].
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::{ReceiverSpec, Secret};
    /// let spec: ReceiverSpec = toml::from_str("kind = \"slack\"\nname = \"s\"\nurl = \"https://hooks.example/T/B/x\"")?;
    /// let shown = toml::to_string(&spec.redacted())?;
    /// assert!(shown.contains("<redacted>") && !shown.contains("hooks.example"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn redacted(&self) -> ReceiverSpec {
        let mut spec = self.clone();
        let hide = |s: &mut Secret| *s = s.redacted();
        match &mut spec {
            ReceiverSpec::Webhook { url, bearer_token, headers, .. } => {
                hide(url);
                bearer_token.iter_mut().for_each(hide);
                headers.values_mut().for_each(hide);
            }
            ReceiverSpec::Slack { url, .. } => hide(url),
            ReceiverSpec::Alertmanager { bearer_token, .. } => {
                bearer_token.iter_mut().for_each(hide);
            }
            ReceiverSpec::Dingtalk { url, secret, .. } => {
                hide(url);
                secret.iter_mut().for_each(hide);
            }
            ReceiverSpec::Email { password, .. } => password.iter_mut().for_each(hide),
        }
        spec
    }
}
