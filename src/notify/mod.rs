//! Notifications that leave the process: receivers (Alertmanager, webhook,
//! Slack, DingTalk, email), the route tree and grouping.
//!
//! The alert manager decides *what* happened to each alert instance
//! ([`Notification`]); this module decides *who* hears of it and *when*:
//!
//! - a [`Receiver`] delivers an [`AlertGroup`] (one or more alerts that share
//!   a route and the values of its `group_by` labels) to one destination;
//! - the route tree and the grouper choose the receivers of each alert and
//!   batch alerts into groups, as Alertmanager does (`group_by`,
//!   `group_wait`, `group_interval`, `repeat_interval`);
//! - [`ReceiverNotifier`] connects a receiver straight to the engine as a
//!   [`Notifier`], one alert per group, for the simplest setups.
//!
//! Everything here is pure or owns its own threads; the engine is never
//! blocked by a receiver.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert::{Notification, NotificationKind, Notifier, NotifyResult};

/// Whether a group still has firing alerts.
///
/// # Examples
///
/// ```
/// use watchpost::notify::GroupStatus;
/// assert_eq!(GroupStatus::Firing.as_str(), "firing");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// At least one alert of the group is firing.
    Firing,
    /// Every alert of the group has resolved.
    Resolved,
}

impl GroupStatus {
    /// `"firing"` or `"resolved"`, as in Alertmanager's payloads.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::notify::GroupStatus::Resolved.as_str(), "resolved");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Firing => "firing",
            GroupStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for GroupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alerts one receiver gets in one message: those of one route that
/// share the values of the route's `group_by` labels. Each alert instance
/// appears once, as its latest notification: `Firing` or `Repeat` (still
/// firing) or `Resolved`.
///
/// # Examples
///
/// ```
/// use watchpost::{SeriesKey, alert::*, notify::{AlertGroup, GroupStatus}};
/// let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
/// let mut view = MemoryView::new();
/// view.push(SeriesKey::new("temp", &[("room", "lab")])?, 0, 35.0);
/// let n = &mgr.evaluate(0, &view)[0];
/// let group = AlertGroup::single("ops", n);
/// assert_eq!(group.status(), GroupStatus::Firing);
/// assert_eq!(group.firing().count(), 1);
/// assert_eq!(group.common_labels()["room"], "lab");
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlertGroup {
    /// The receiver's name.
    pub receiver: String,
    /// Identifies the group across messages: the route's path and the
    /// `group_by` values, as Alertmanager's `groupKey`.
    pub group_key: String,
    /// The values of the route's `group_by` labels shared by every alert.
    pub group_labels: BTreeMap<String, String>,
    /// The alerts, the latest notification of each instance, in the order
    /// the instances joined the group.
    pub alerts: Vec<Notification>,
    /// When the message was put together.
    pub at: DateTime<Utc>,
}

impl AlertGroup {
    /// A group of one alert, for receivers used without routing.
    ///
    /// # Examples
    ///
    /// See [`AlertGroup`].
    pub fn single(receiver: impl Into<String>, notification: &Notification) -> Self {
        AlertGroup {
            receiver: receiver.into(),
            group_key: format!("{{}}:{{alert_id={:?}}}", notification.alert_id),
            group_labels: BTreeMap::new(),
            alerts: vec![notification.clone()],
            at: notification.at,
        }
    }

    /// `Firing` while any alert of the group fires.
    ///
    /// # Examples
    ///
    /// See [`AlertGroup`].
    pub fn status(&self) -> GroupStatus {
        if self.firing().next().is_some() { GroupStatus::Firing } else { GroupStatus::Resolved }
    }

    /// The alerts still firing.
    ///
    /// # Examples
    ///
    /// See [`AlertGroup`].
    pub fn firing(&self) -> impl Iterator<Item = &Notification> {
        self.alerts.iter().filter(|n| is_firing(n))
    }

    /// The alerts that resolved.
    ///
    /// # Examples
    ///
    /// See [`AlertGroup`].
    pub fn resolved(&self) -> impl Iterator<Item = &Notification> {
        self.alerts.iter().filter(|n| n.kind == NotificationKind::Resolved)
    }

    /// The labels every alert of the group has with the same value
    /// (Alertmanager's `commonLabels`).
    ///
    /// # Examples
    ///
    /// See [`AlertGroup`].
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        let mut alerts = self.alerts.iter();
        let Some(first) = alerts.next() else { return BTreeMap::new() };
        let mut common = first.labels.clone();
        for n in alerts {
            common.retain(|k, v| n.labels.get(k) == Some(v));
        }
        common
    }

    /// The annotations of an alert, as Alertmanager names them: `summary`
    /// (the rendered title) and `description` (the rendered message).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::{SeriesKey, alert::*, notify::AlertGroup};
    /// # let mut mgr = AlertManager::new(vec![AlertRule::builder("hot", "temp").above(30.0).build()?])?;
    /// # let mut view = MemoryView::new();
    /// # view.push(SeriesKey::new("temp", &[])?, 0, 35.0);
    /// let n = &mgr.evaluate(0, &view)[0];
    /// let a = AlertGroup::annotations(n);
    /// assert_eq!(a["summary"], n.title);
    /// assert_eq!(a["description"], n.message);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn annotations(notification: &Notification) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("summary".to_owned(), notification.title.clone()),
            ("description".to_owned(), notification.message.clone()),
        ])
    }

    /// The annotations every alert of the group has with the same value
    /// (Alertmanager's `commonAnnotations`).
    ///
    /// # Examples
    ///
    /// See [`AlertGroup::annotations`].
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        let mut alerts = self.alerts.iter();
        let Some(first) = alerts.next() else { return BTreeMap::new() };
        let mut common = Self::annotations(first);
        for n in alerts {
            let a = Self::annotations(n);
            common.retain(|k, v| a.get(k) == Some(v));
        }
        common
    }
}

/// Whether a notification says its alert fires (`Firing` or `Repeat`).
fn is_firing(n: &Notification) -> bool {
    matches!(n.kind, NotificationKind::Firing | NotificationKind::Repeat)
}

/// Delivers a group of alerts to one destination. Called on a thread of its
/// own (never the engine's worker); it may block for as long as its own
/// timeout allows. Implementations keep secrets out of `Debug` and errors.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use watchpost::alert::NotifyResult;
/// use watchpost::notify::{AlertGroup, Receiver};
///
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl Receiver for Count {
///     fn name(&self) -> &str { "count" }
///     fn send(&self, group: &AlertGroup) -> NotifyResult {
///         self.0.fetch_add(group.alerts.len(), Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// let _r: Box<dyn Receiver> = Box::new(Count::default());
/// ```
pub trait Receiver: Send + Sync + 'static {
    /// The receiver's name, as routes refer to it.
    fn name(&self) -> &str;

    /// Delivers one group.
    ///
    /// # Errors
    ///
    /// Whatever made the delivery fail after the receiver's own retries.
    fn send(&self, group: &AlertGroup) -> NotifyResult;

    /// Called once when the engine shuts down (through
    /// [`ReceiverNotifier`] or a router): stop background work. Default: nothing.
    fn flush(&self) {}
}

impl<R: Receiver + ?Sized> Receiver for Box<R> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn send(&self, group: &AlertGroup) -> NotifyResult {
        (**self).send(group)
    }
    fn flush(&self) {
        (**self).flush();
    }
}

impl<R: Receiver + ?Sized> Receiver for std::sync::Arc<R> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn send(&self, group: &AlertGroup) -> NotifyResult {
        (**self).send(group)
    }
    fn flush(&self) {
        (**self).flush();
    }
}

/// A [`Receiver`] used directly as a [`Notifier`]: every firing, repeat and
/// resolve is sent at once as a group of one; flapping notices are skipped.
///
/// # Examples
///
/// ```
/// # use std::sync::atomic::{AtomicUsize, Ordering};
/// # use watchpost::alert::NotifyResult;
/// # use watchpost::notify::{AlertGroup, Receiver, ReceiverNotifier};
/// # #[derive(Default)]
/// # struct Count(AtomicUsize);
/// # impl Receiver for Count {
/// #     fn name(&self) -> &str { "count" }
/// #     fn send(&self, g: &AlertGroup) -> NotifyResult { self.0.fetch_add(1, Ordering::Relaxed); Ok(()) }
/// # }
/// let engine = watchpost::Engine::builder()
///     .without_system_source()
///     .notifier("count", ReceiverNotifier(Count::default()))
///     .build()?;
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiverNotifier<R>(pub R);

impl<R: Receiver> Notifier for ReceiverNotifier<R> {
    fn notify(&self, notification: &Notification) -> NotifyResult {
        match notification.kind {
            NotificationKind::Firing | NotificationKind::Repeat | NotificationKind::Resolved => {
                self.0.send(&AlertGroup::single(self.0.name(), notification))
            }
            _ => Ok(()),
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

mod group;
mod route;
mod router;

pub use self::group::Grouper;
pub use self::route::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, GroupBy, Route, RouteTree,
};
pub use self::router::{DEFAULT_ROUTER_FLUSH_TIMEOUT, Router, RouterBuilder, RouterStats};

#[cfg(feature = "notify")]
mod alertmanager;
#[cfg(feature = "notify")]
mod delivery;
#[cfg(feature = "notify")]
mod dingtalk;
#[cfg(feature = "notify")]
mod email;
#[cfg(feature = "notify")]
mod payload;
#[cfg(feature = "notify")]
mod slack;
#[cfg(feature = "notify")]
mod webhook;

#[cfg(feature = "notify")]
pub use self::alertmanager::{AlertmanagerBuilder, AlertmanagerReceiver};
#[cfg(feature = "notify")]
pub use self::delivery::{Delivery, DeliveryStats};
#[cfg(feature = "notify")]
pub use self::dingtalk::DingTalkReceiver;
#[cfg(feature = "notify")]
pub use self::email::{EmailBuilder, EmailReceiver, SmtpSecurity};
#[cfg(feature = "notify")]
pub use self::slack::SlackReceiver;
#[cfg(feature = "notify")]
pub use self::webhook::WebhookReceiver;
