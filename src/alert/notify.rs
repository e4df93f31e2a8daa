//! Notifications and the handlers that receive them.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::alert::rule::Severity;
use crate::alert::state::AlertState;
use crate::alert::template::push_number;
use crate::key::SeriesKey;

/// Why a notification was sent.
///
/// # Examples
///
/// ```
/// use watchpost::alert::NotificationKind;
/// assert_eq!(NotificationKind::FlappingStarted.as_str(), "flapping_started");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The alert started firing (or, muted until now, may be announced now).
    Firing,
    /// The alert resolved. Sent only for a notified firing; carries a [`Resolution`].
    Resolved,
    /// The alert is still firing; sent every repeat interval.
    Repeat,
    /// The alert started flapping: per-transition notices stop until it settles.
    FlappingStarted,
    /// The alert stopped flapping.
    FlappingStopped,
}

impl NotificationKind {
    /// The snake-case name used on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::NotificationKind::Resolved.as_str(), "resolved");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Firing => "firing",
            NotificationKind::Resolved => "resolved",
            NotificationKind::Repeat => "repeat",
            NotificationKind::FlappingStarted => "flapping_started",
            NotificationKind::FlappingStopped => "flapping_stopped",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a firing ended: attached to every [`NotificationKind::Resolved`].
///
/// # Examples
///
/// ```
/// use watchpost::alert::Resolution;
/// use watchpost::alert::ResolveReason;
/// let r = Resolution { resolved_at: chrono::DateTime::UNIX_EPOCH, duration_ms: 60_000,
///                      peak_value: Some(97.0), last_value: Some(60.0),
///                      reason: ResolveReason::Recovered };
/// assert_eq!(r.duration_ms, 60_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// When the alert resolved (the transition, which may precede the notice
    /// when the alert was flapping).
    pub resolved_at: DateTime<Utc>,
    /// `resolved_at - started_at` in milliseconds.
    pub duration_ms: i64,
    /// The worst value seen while firing (highest for `>`, `>=`, `==`, `!=`; lowest for `<`, `<=`).
    pub peak_value: Option<f64>,
    /// The last value seen.
    pub last_value: Option<f64>,
    /// Why it resolved (absent in JSON written before the field existed: `recovered`).
    #[serde(default)]
    pub reason: ResolveReason,
}

/// Why a firing alert resolved: carried by every [`Resolution`].
///
/// # Examples
///
/// ```
/// use watchpost::alert::ResolveReason;
/// assert_eq!(ResolveReason::default(), ResolveReason::Recovered);
/// assert_eq!(serde_json::to_string(&ResolveReason::SeriesRemoved)?, "\"series_removed\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResolveReason {
    /// The condition stopped holding (after any recovery condition and `keep_firing_for`).
    #[default]
    Recovered,
    /// Its rule was removed, or replaced by one that no longer selects the series.
    RuleRemoved,
    /// Its series was removed ([`Monitor::remove_series`](crate::Monitor::remove_series)).
    SeriesRemoved,
    /// Its series went silent for longer than the engine's staleness horizon
    /// ([`EngineBuilder::staleness_horizon`](crate::EngineBuilder::staleness_horizon)).
    Stale,
}

/// One notification about one alert instance (a rule × series).
///
/// Serializes to one flat JSON object and back; every float is finite or `null`.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::{AlertManager, AlertRule, MemoryView, NotificationKind}};
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("temp", &[("room", "lab")])?, 1_000, 35.0);
/// let n = &mgr.evaluate(1_000, &view)[0];
/// assert_eq!(n.kind, NotificationKind::Firing);
/// assert_eq!(n.labels["room"], "lab");
/// let json = serde_json::to_string(n)?;
/// assert_eq!(&serde_json::from_str::<watchpost::alert::Notification>(&json)?, n);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Increasing sequence number within one manager.
    pub id: u64,
    /// What happened.
    pub kind: NotificationKind,
    /// Stable identity of the alert instance: `rule/series`.
    pub alert_id: String,
    /// The rule's name.
    pub rule: String,
    /// The series the alert is about.
    pub series: SeriesKey,
    /// The rule's severity.
    pub severity: Severity,
    /// The instance's state when the notice was made.
    pub state: AlertState,
    /// Series labels, rule labels, `alertname`, `severity` and `__name__`.
    pub labels: BTreeMap<String, String>,
    /// The rendered title template.
    pub title: String,
    /// The rendered message template.
    pub message: String,
    /// The condition's latest value, if any.
    pub value: Option<f64>,
    /// The firing threshold (for an absence rule: the duration in seconds).
    pub threshold: Option<f64>,
    /// When the notice was made (the evaluation time).
    pub at: DateTime<Utc>,
    /// When the alert started firing, if it did.
    pub started_at: Option<DateTime<Utc>>,
    /// How the firing ended (only on `Resolved`).
    pub resolution: Option<Resolution>,
}

impl Notification {
    /// The metric name (the series' name).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::{SeriesKey, alert::*};
    /// # let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// # let mut view = MemoryView::new();
    /// # view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
    /// let n = &mgr.evaluate(0, &view)[0];
    /// assert_eq!(n.metric(), "temp");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn metric(&self) -> &str {
        self.series.name()
    }

    /// One human-readable line, as [`LogNotifier`] writes it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::{SeriesKey, alert::*};
    /// # let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// # let mut view = MemoryView::new();
    /// # view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
    /// let n = &mgr.evaluate(0, &view)[0];
    /// assert_eq!(n.to_log_line(),
    ///     "1970-01-01T00:00:00.000Z FIRING warning hot temp value=35 threshold=30: hot on temp - temp is 35 (threshold 30)");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn to_log_line(&self) -> String {
        let mut line = String::with_capacity(160);
        line.push_str(&self.at.to_rfc3339_opts(SecondsFormat::Millis, true));
        line.push(' ');
        line.push_str(&self.kind.as_str().to_uppercase());
        line.push(' ');
        line.push_str(self.severity.as_str());
        line.push(' ');
        line.push_str(&self.rule);
        line.push(' ');
        line.push_str(&self.series.to_string());
        line.push_str(" value=");
        push_number(&mut line, self.value);
        line.push_str(" threshold=");
        push_number(&mut line, self.threshold);
        if let Some(r) = &self.resolution {
            let _ = write!(line, " duration={}s peak=", r.duration_ms / 1_000);
            push_number(&mut line, r.peak_value);
        }
        line.push_str(": ");
        line.push_str(&self.title);
        line.push_str(" - ");
        line.push_str(&self.message);
        line
    }
}

/// What a [`Notifier`] returns: any error counts as a failed delivery.
pub type NotifyResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Receives notifications. Runs on the engine's dispatcher, never on the
/// evaluating thread; a panic is caught and counted as a failure.
///
/// Closures come in through [`FnNotifier`]; `Box<N>` and `Arc<N>` forward.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use watchpost::alert::{Notification, Notifier, NotifyResult};
///
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl Notifier for Count {
///     fn notify(&self, _n: &Notification) -> NotifyResult {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// let boxed: Box<dyn Notifier> = Box::new(std::sync::Arc::new(Count::default()));
/// boxed.flush();
/// ```
pub trait Notifier: Send + Sync + 'static {
    /// Handles one notification.
    ///
    /// # Errors
    ///
    /// Whatever went wrong delivering it; the dispatcher counts it as failed.
    fn notify(&self, notification: &Notification) -> NotifyResult;

    /// Flushes buffered output; called once on shutdown. Default: nothing.
    fn flush(&self) {}
}

impl<N: Notifier + ?Sized> Notifier for Box<N> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        (**self).notify(notification)
    }
    fn flush(&self) {
        (**self).flush();
    }
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        (**self).notify(notification)
    }
    fn flush(&self) {
        (**self).flush();
    }
}

/// Adapts a closure `Fn(&Notification)` into a [`Notifier`] that always succeeds.
///
/// # Examples
///
/// ```
/// use watchpost::alert::{FnNotifier, Notifier};
/// let n = FnNotifier(|n: &watchpost::alert::Notification| println!("{}", n.title));
/// let _boxed: Box<dyn Notifier> = Box::new(n);
/// ```
#[derive(Clone, Copy)]
pub struct FnNotifier<F>(pub F);

impl<F: Fn(&Notification) + Send + Sync + 'static> Notifier for FnNotifier<F> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        (self.0)(notification);
        Ok(())
    }
}

impl<F> fmt::Debug for FnNotifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnNotifier(..)")
    }
}

/// Adapts a fallible closure `Fn(&Notification) -> NotifyResult` into a [`Notifier`].
///
/// # Examples
///
/// ```
/// use watchpost::alert::{Notification, Notifier, TryFnNotifier};
/// let n = TryFnNotifier(|_: &Notification| Err("webhook down".into()));
/// let _boxed: Box<dyn Notifier> = Box::new(n);
/// ```
#[derive(Clone, Copy)]
pub struct TryFnNotifier<F>(pub F);

impl<F: Fn(&Notification) -> NotifyResult + Send + Sync + 'static> Notifier for TryFnNotifier<F> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        (self.0)(notification)
    }
}

impl<F> fmt::Debug for TryFnNotifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryFnNotifier(..)")
    }
}

/// Forwards notifications into a `crossbeam_channel::Sender` without blocking;
/// a full or disconnected channel is a failed delivery.
///
/// # Examples
///
/// ```
/// use watchpost::alert::ChannelNotifier;
/// let (tx, rx) = crossbeam_channel::bounded(16);
/// let notifier = ChannelNotifier::new(tx);
/// # let _ = (notifier, rx);
/// ```
#[derive(Debug, Clone)]
pub struct ChannelNotifier {
    tx: crossbeam_channel::Sender<Notification>,
}

impl ChannelNotifier {
    /// Wraps `tx`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = crossbeam_channel::unbounded();
    /// let _n = watchpost::alert::ChannelNotifier::new(tx);
    /// ```
    pub fn new(tx: crossbeam_channel::Sender<Notification>) -> Self {
        ChannelNotifier { tx }
    }
}

impl Notifier for ChannelNotifier {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        self.tx.try_send(notification.clone()).map_err(|e| e.to_string().into())
    }
}

/// Writes one JSON object per notification, one per line, to any `Write`:
/// an audit trail that [`Notification`]'s `Deserialize` reads back.
///
/// Each line is written and the writer flushed in one call, so a line is
/// never split between notifications. Wrap files in a `BufWriter` if you like;
/// it is flushed after each line anyway.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*};
/// let sink = JsonLinesNotifier::new(Vec::new());
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
/// for n in mgr.evaluate(0, &view) {
///     sink.notify(&n).map_err(|e| e.to_string()).unwrap();
/// }
/// let text = String::from_utf8(sink.into_inner()).unwrap();
/// let back: Notification = serde_json::from_str(text.lines().next().unwrap())?;
/// assert_eq!(back.rule, "hot");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonLinesNotifier<W> {
    out: Mutex<W>,
}

impl<W: Write + Send + 'static> JsonLinesNotifier<W> {
    /// Writes to `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _n = watchpost::alert::JsonLinesNotifier::new(std::io::stdout());
    /// ```
    pub fn new(out: W) -> Self {
        JsonLinesNotifier { out: Mutex::new(out) }
    }

    /// Returns the writer.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = watchpost::alert::JsonLinesNotifier::new(Vec::<u8>::new());
    /// assert!(n.into_inner().is_empty());
    /// ```
    pub fn into_inner(self) -> W {
        self.out.into_inner()
    }
}

impl<W: Write + Send + 'static> Notifier for JsonLinesNotifier<W> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        let mut line = serde_json::to_vec(notification)?;
        line.push(b'\n');
        let mut out = self.out.lock();
        out.write_all(&line)?;
        out.flush()?;
        Ok(())
    }

    fn flush(&self) {
        let _ = self.out.lock().flush();
    }
}

impl<W> fmt::Debug for JsonLinesNotifier<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLinesNotifier(..)")
    }
}

/// Writes one human-readable line per notification (see
/// [`Notification::to_log_line`]) to any `Write`, for example stderr.
/// watchpost never prints on its own; register this to get log lines.
///
/// # Examples
///
/// ```
/// use watchpost::alert::LogNotifier;
/// let to_stderr = LogNotifier::stderr();
/// let to_buffer = LogNotifier::new(Vec::new());
/// # let _ = (to_stderr, to_buffer);
/// ```
pub struct LogNotifier<W> {
    out: Mutex<W>,
}

impl LogNotifier<std::io::Stderr> {
    /// Writes to standard error.
    ///
    /// # Examples
    ///
    /// ```
    /// let _n = watchpost::alert::LogNotifier::stderr();
    /// ```
    pub fn stderr() -> Self {
        LogNotifier::new(std::io::stderr())
    }
}

impl<W: Write + Send + 'static> LogNotifier<W> {
    /// Writes to `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _n = watchpost::alert::LogNotifier::new(Vec::new());
    /// ```
    pub fn new(out: W) -> Self {
        LogNotifier { out: Mutex::new(out) }
    }

    /// Returns the writer.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = watchpost::alert::LogNotifier::new(Vec::<u8>::new());
    /// assert!(n.into_inner().is_empty());
    /// ```
    pub fn into_inner(self) -> W {
        self.out.into_inner()
    }
}

impl<W: Write + Send + 'static> Notifier for LogNotifier<W> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        let mut line = notification.to_log_line();
        line.push('\n');
        let mut out = self.out.lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    fn flush(&self) {
        let _ = self.out.lock().flush();
    }
}

impl<W> fmt::Debug for LogNotifier<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogNotifier(..)")
    }
}

/// Delivery counters of one registered handler.
///
/// # Examples
///
/// ```
/// let s = watchpost::alert::HandlerStats { name: "audit".into(), ..Default::default() };
/// assert_eq!(s.delivered + s.failed + s.dropped, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerStats {
    /// The name it was registered under.
    pub name: String,
    /// Notifications it handled successfully.
    pub delivered: u64,
    /// Notifications for which it returned an error or panicked.
    pub failed: u64,
    /// Of `failed`, how many panicked.
    pub panicked: u64,
    /// Notifications it never saw because its queue was full.
    pub dropped: u64,
}

/// Counters of the notification pipeline: the shared queue and every handler.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let s = engine.notification_stats();
/// assert_eq!((s.submitted, s.overflowed, s.rejected), (0, 0, 0));
/// assert!(s.handlers.is_empty());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationStats {
    /// Notifications accepted into the queue in front of the handlers.
    pub submitted: u64,
    /// Notifications dropped because that queue was full.
    pub overflowed: u64,
    /// Notifications refused because the engine was shutting down.
    pub rejected: u64,
    /// Per handler, in registration order.
    pub handlers: Vec<HandlerStats>,
}
