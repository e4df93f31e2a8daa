//! Email over SMTP (plain, STARTTLS or TLS) through lettre.

use std::fmt::{self, Write as _};

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::delivery::{Delivery, DeliveryStats, Secret, Tracker, retry};
use super::payload::{headline, label_list, rfc3339};
use super::{AlertGroup, Receiver};
use crate::alert::NotifyResult;
use crate::error::{Error, Result};
use crate::registry::Registry;

/// How the SMTP connection is protected.
///
/// # Examples
///
/// ```
/// use watchpost::notify::SmtpSecurity;
/// assert_eq!(SmtpSecurity::StartTls.default_port(), 587);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// No encryption (a trusted local relay only).
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpSecurity {
    /// 25, 587 or 465.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::notify::SmtpSecurity::Tls.default_port(), 465);
    /// ```
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        }
    }
}

/// Mails each group over SMTP. The subject is the headline
/// (`[FIRING:1] alertname: <title>` for one alert); the plain-text body
/// holds every alert's title and message (its templates), labels, start
/// and end. Retries connection errors and transient (4xx) SMTP replies,
/// never permanent (5xx) ones. The password never appears in `Debug` or errors.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use watchpost::notify::{EmailReceiver, ReceiverNotifier, SmtpSecurity};
///
/// let mail = Arc::new(
///     EmailReceiver::builder("smtp.example.com", "watchpost@example.com", ["oncall@example.com"])
///         .security(SmtpSecurity::StartTls)
///         .credentials("watchpost", "s3cret")
///         .build()?,
/// );
/// let engine = watchpost::Engine::builder()
///     .notifier("mail", ReceiverNotifier(Arc::clone(&mail)))
///     .build()?;
/// mail.register_metrics(engine.registry())?;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct EmailReceiver {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: SmtpTransport,
    delivery: Delivery,
    tracker: Tracker,
    server: String,
}

/// Settings of an [`EmailReceiver`].
///
/// # Examples
///
/// See [`EmailReceiver`].
pub struct EmailBuilder {
    name: String,
    host: String,
    port: Option<u16>,
    security: SmtpSecurity,
    credentials: Option<(String, Secret)>,
    from: String,
    to: Vec<String>,
    delivery: Delivery,
}

impl fmt::Debug for EmailBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl EmailReceiver {
    /// Starts the settings: the SMTP server, the sender and the recipients.
    /// STARTTLS by default.
    ///
    /// # Examples
    ///
    /// See [`EmailReceiver`].
    pub fn builder<I, S>(host: impl Into<String>, from: impl Into<String>, to: I) -> EmailBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EmailBuilder {
            name: "email".to_owned(),
            host: host.into(),
            port: None,
            security: SmtpSecurity::StartTls,
            credentials: None,
            from: from.into(),
            to: to.into_iter().map(Into::into).collect(),
            delivery: Delivery::default(),
        }
    }

    /// The delivery counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::notify::EmailReceiver::builder("localhost", "a@example.com", ["b@example.com"]).build()?;
    /// assert_eq!(m.stats().sent, 0);
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
    /// See [`EmailReceiver`].
    pub fn register_metrics(&self, registry: &Registry) -> Result<()> {
        self.tracker.register(registry, &self.name)
    }

    /// The message of a group.
    fn message(&self, group: &AlertGroup) -> std::result::Result<Message, String> {
        let mut subject = headline(group);
        if let [only] = group.alerts.as_slice() {
            subject.push_str(": ");
            subject.push_str(&only.title);
        }
        let mut body = String::new();
        for n in &group.alerts {
            let state = if super::is_firing(n) { "FIRING" } else { "RESOLVED" };
            let _ = write!(
                body,
                "[{state}] {} ({})\n\n{}\n\n",
                n.title,
                n.severity.as_str(),
                n.message
            );
            let _ = writeln!(body, "labels: {}", label_list(&n.labels));
            if let Some(start) = n.started_at {
                let _ = writeln!(body, "started: {}", rfc3339(start));
            }
            if let Some(r) = n.resolution {
                let _ = writeln!(body, "resolved: {}", rfc3339(r.resolved_at));
            }
            body.push('\n');
        }
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.header(ContentType::TEXT_PLAIN).body(body).map_err(|e| e.to_string())
    }
}

impl EmailBuilder {
    /// The receiver's name (default `email`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{EmailReceiver, Receiver};
    /// let m = EmailReceiver::builder("localhost", "a@example.com", ["b@example.com"]).name("mail").build()?;
    /// assert_eq!(m.name(), "mail");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The server's port (default: that of the security mode).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{EmailReceiver, SmtpSecurity};
    /// let m = EmailReceiver::builder("127.0.0.1", "a@example.com", ["b@example.com"])
    ///     .security(SmtpSecurity::Plain)
    ///     .port(2525)
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Plain, STARTTLS (the default) or TLS.
    ///
    /// # Examples
    ///
    /// See [`EmailBuilder::port`].
    #[must_use]
    pub fn security(mut self, security: SmtpSecurity) -> Self {
        self.security = security;
        self
    }

    /// The login. The password is never printed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::EmailReceiver;
    /// let b = EmailReceiver::builder("localhost", "a@example.com", ["b@example.com"]).credentials("u", "hunter2");
    /// assert!(!format!("{b:?}").contains("hunter2"));
    /// ```
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Secret(password.into())));
        self
    }

    /// Timeout (of each SMTP command), retries and backoff.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Delivery, EmailReceiver};
    /// let m = EmailReceiver::builder("localhost", "a@example.com", ["b@example.com"])
    ///     .delivery(Delivery::new(std::time::Duration::from_secs(10), 2)?)
    ///     .build()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Checks the addresses and prepares the transport (connections are
    /// made per message).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `from` or `to` (an address that does
    /// not parse, or no recipient) or `host` (TLS cannot be set up for it).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::EmailReceiver;
    /// let e = EmailReceiver::builder("localhost", "not an address", ["b@example.com"]).build().unwrap_err();
    /// assert!(e.to_string().contains("not an address"));
    /// ```
    pub fn build(self) -> Result<EmailReceiver> {
        let parse = |field: &'static str, a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| Error::InvalidConfig { field, reason: format!("{a:?}: {e}") })
        };
        let from = parse("from", &self.from)?;
        if self.to.is_empty() {
            return Err(Error::InvalidConfig { field: "to", reason: "no recipient".to_owned() });
        }
        let to = self.to.iter().map(|a| parse("to", a)).collect::<Result<Vec<_>>>()?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| Error::InvalidConfig {
                field: "host",
                reason: format!("{host:?}: {e}"),
            })
        };
        let tls = match self.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls(&self.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&self.host)?),
        };
        let port = self.port.unwrap_or(self.security.default_port());
        let mut transport = SmtpTransport::builder_dangerous(&self.host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.delivery.timeout()));
        if let Some((user, password)) = self.credentials {
            transport = transport.credentials(Credentials::new(user, password.0));
        }
        Ok(EmailReceiver {
            name: self.name,
            from,
            to,
            transport: transport.build(),
            delivery: self.delivery,
            tracker: Tracker::default(),
            server: format!("{}:{port}", self.host),
        })
    }
}

impl Receiver for EmailReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, group: &AlertGroup) -> NotifyResult {
        let message = self.message(group)?;
        let label = format!("SMTP {}", self.server);
        retry(&self.delivery, &self.tracker, &label, || {
            self.transport.send(&message).map(drop).map_err(|e| (!e.is_permanent(), e.to_string()))
        })?;
        Ok(())
    }
}

impl fmt::Debug for EmailReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailReceiver")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .field("delivery", &self.delivery)
            .field("stats", &self.tracker)
            .finish_non_exhaustive()
    }
}
