//! Alert rules, the per-instance state machine, silences, inhibition and
//! notifications.
//!
//! This module is pure: it never spawns threads, reads the clock or does I/O
//! (except the built-in notifiers, which write to a `Write` you hand them).
//! The engine owns an [`AlertManager`], calls [`AlertManager::evaluate`] with
//! the current time and a [`SeriesView`] over its history after each ingest
//! and on every tick, and passes the returned [`Notification`]s to its
//! dispatcher, which calls your [`Notifier`]s on their own threads.
//!
//! # Overview
//!
//! - A [rule](AlertRule) selects series by metric name and [label
//!   matchers](Matcher) and yields one alert instance per matching series.
//!   Any number of rules may watch one metric: a warning at 80 and a
//!   critical at 95 are two rules and two alerts.
//! - Each instance runs the state machine documented on [`AlertState`]:
//!   `Inactive → Pending → Firing → Recovering → Resolved`, plus `NoData`.
//! - Notifications: [`Firing`](NotificationKind::Firing),
//!   [`Resolved`](NotificationKind::Resolved) (at the transition, only for a
//!   notified firing, with duration and peak), [`Repeat`](NotificationKind::Repeat),
//!   and [`FlappingStarted`](NotificationKind::FlappingStarted) /
//!   [`FlappingStopped`](NotificationKind::FlappingStopped).
//! - Noise control: default inhibition (a firing critical mutes the warning
//!   of the same family on the same series), [inhibit rules](InhibitRule),
//!   [silences](Silence), [acknowledgement](AlertManager::acknowledge) and
//!   Nagios-style [flap detection](FlapDetection).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use watchpost::{SeriesKey, alert::*};
//!
//! let mut mgr = AlertManager::with_default_rules();
//! mgr.add_rule(
//!     AlertRule::builder("heartbeat_missing", "chat_heartbeat")
//!         .absent_for(Duration::from_secs(30))
//!         .severity(Severity::Error)
//!         .build()?,
//! )?;
//! let mut view = MemoryView::new();
//! view.push(SeriesKey::new("chat_heartbeat", &[])?, 0, 1.0);
//! assert!(mgr.evaluate(10_000, &view).is_empty());
//! let n = mgr.evaluate(40_000, &view); // no heartbeat for 40 s
//! assert_eq!(n[0].rule, "heartbeat_missing");
//! assert_eq!(n[0].kind, NotificationKind::Firing);
//! # Ok::<(), watchpost::Error>(())
//! ```
mod builder;
mod condition;
mod defaults;
mod manager;
mod matcher;
mod notify;
mod restore;
mod rule;
mod silence;
mod state;
mod template;
mod validate;
mod view;
mod wire;

pub use self::builder::RuleBuilder;
pub use self::condition::{Aggregate, CompareOp, Condition};
pub use self::defaults::default_rules;
pub use self::manager::{
    ActiveAlert, AlertEvent, AlertEventKind, AlertManager, DEFAULT_CRITICAL_REPEAT,
    DEFAULT_HISTORY_CAPACITY, MAX_SILENCES, SILENCE_RETENTION,
};
pub use self::matcher::{MatchOp, Matcher};
pub use self::notify::{
    ChannelNotifier, FnNotifier, HandlerStats, JsonLinesNotifier, LogNotifier, Notification,
    NotificationKind, NotificationStats, Notifier, NotifyResult, Resolution, ResolveReason,
    TryFnNotifier,
};
pub use self::rule::{
    AlertRule, DEFAULT_MESSAGE, DEFAULT_TITLE, DEFAULT_WINDOW, FlapDetection, NoDataPolicy,
    Severity,
};
pub use self::silence::{InhibitRule, Silence, SilenceId};
pub use self::state::AlertState;
pub(crate) use self::state::Instance;
pub use self::template::Template;
pub use self::view::{MemoryView, SeriesView};
pub(crate) use self::wire::is_quiet;
pub use self::wire::{AlertEventView, AlertView, EventKind};

#[cfg(test)]
mod tests;
