//! The alert side of [`Monitor`]: rules, silences, acknowledgements,
//! queries and notification handlers. The logic lives in
//! [`crate::alert::AlertManager`]; the worker evaluates it after each ingest
//! and on every tick, and the dispatcher delivers what it decides.

use std::time::Duration;

use super::{Control, Monitor};
use crate::alert::{
    ActiveAlert, AlertEvent, AlertRule, InhibitRule, Matcher, NotificationStats, Notifier, Silence,
    SilenceId,
};
use crate::error::Result;

impl Monitor {
    /// Asks the worker to evaluate the rules now rather than at the next tick.
    pub(super) fn evaluate_soon(&self) {
        let _ = self.control.send(Control::Evaluate);
    }

    /// The engine clock's time, in ms since the Unix epoch.
    pub(crate) fn clock_now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// The engine clock, for integrations that time work themselves.
    #[cfg_attr(not(any(feature = "tracing", feature = "http")), allow(dead_code))]
    pub(crate) fn clock(&self) -> &std::sync::Arc<dyn crate::clock::Clock> {
        &self.shared.clock
    }

    /// Adds an alert rule while running; it is evaluated at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a rule with
    /// that name exists (use [`replace_alert_rule`](Self::replace_alert_rule)).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Severity};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.add_alert_rule(
    ///     AlertRule::builder("cpu_usage_page", "system_cpu_usage").above(99.0)
    ///         .severity(Severity::Critical).build()?,
    /// )?;
    /// assert!(engine.add_alert_rule(
    ///     AlertRule::builder("cpu_usage_page", "system_cpu_usage").above(98.0).build()?
    /// ).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn add_alert_rule(&self, rule: AlertRule) -> Result<()> {
        self.shared.alerts.lock().add_rule(rule)?;
        self.evaluate_soon();
        Ok(())
    }

    /// Adds `rule`, or replaces the rule of the same name and returns it.
    /// Alerts on series the new rule still selects keep their state; the
    /// others are dropped, and those whose firing was announced get their
    /// resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::AlertRule;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let old = engine.replace_alert_rule(
    ///     AlertRule::builder("cpu_usage_warning", "system_cpu_usage").above(70.0).build()?,
    /// );
    /// assert_eq!(old.unwrap().condition().to_string(), "avg over 60s > 80");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn replace_alert_rule(&self, rule: AlertRule) -> Option<AlertRule> {
        let now = self.clock_now_ms();
        let old = self.shared.alerts.lock().replace_rule(rule, now);
        self.evaluate_soon();
        old
    }

    /// Removes the rule named `name` and returns it; its alerts whose firing
    /// was announced get their resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(engine.remove_alert_rule("disk_usage_warning").is_some());
    /// assert!(engine.remove_alert_rule("disk_usage_warning").is_none());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn remove_alert_rule(&self, name: &str) -> Option<AlertRule> {
        let now = self.clock_now_ms();
        let old = self.shared.alerts.lock().remove_rule(name, now);
        self.evaluate_soon();
        old
    }

    /// The alert rules, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let names: Vec<String> = engine.alert_rules().iter().map(|r| r.name().to_owned()).collect();
    /// assert_eq!(names[..2], ["cpu_usage_warning", "cpu_usage_critical"]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.shared.alerts.lock().rules().cloned().collect()
    }

    /// Adds a custom inhibit rule while running.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{InhibitRule, Matcher};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.add_inhibit_rule(InhibitRule::new(
    ///     vec![Matcher::equal("alertname", "chat_down")],
    ///     vec![Matcher::equal("severity", "warning")],
    ///     ["room"],
    /// ));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn add_inhibit_rule(&self, rule: InhibitRule) {
        self.shared.alerts.lock().add_inhibit_rule(rule);
        self.evaluate_soon();
    }

    /// Adds a silence (matchers plus start and end, in ms since the epoch by
    /// the engine's clock) and returns its id. Alerts it matches keep their
    /// state but send nothing while it is active.
    ///
    /// # Errors
    ///
    /// As [`AlertManager::add_silence`](crate::alert::AlertManager::add_silence):
    /// a creator or comment over its length limit, or too many silences.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{Matcher, Silence};
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    /// let now_ms = i64::try_from(now.as_millis()).unwrap();
    /// let silence = Silence::new(vec![Matcher::equal("mount", "/")], now_ms, now_ms + 3_600_000)?;
    /// let id = engine.add_silence(silence)?;
    /// assert_eq!(engine.silences()[0].id(), id);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn add_silence(&self, silence: Silence) -> Result<SilenceId> {
        let id = self.shared.alerts.lock().add_silence(silence)?;
        self.evaluate_soon();
        Ok(id)
    }

    /// Silences the alerts `matchers` select from now for `duration`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for no matchers,
    /// a zero duration or one longer than
    /// [`Silence::MAX_DURATION_MS`](crate::alert::Silence::MAX_DURATION_MS),
    /// or as [`add_silence`](Self::add_silence).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::Matcher;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let id = engine.silence_for(vec![Matcher::equal("severity", "warning")], Duration::from_hours(2))?;
    /// assert!(engine.silences()[0].is_active(engine.silences()[0].starts_at_ms()));
    /// assert!(engine.expire_silence(id));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn silence_for(&self, matchers: Vec<Matcher>, duration: Duration) -> Result<SilenceId> {
        if duration.is_zero() {
            return Err(crate::Error::InvalidConfig {
                field: "silence.duration",
                reason: "0s; it must be at least 1 ms".to_owned(),
            });
        }
        let now = self.clock_now_ms();
        let end = now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
        self.add_silence(Silence::new(matchers, now, end)?)
    }

    /// Every silence: active, future, and expired within the last
    /// [`SILENCE_RETENTION`](crate::alert::SILENCE_RETENTION).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(engine.silences().is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn silences(&self) -> Vec<Silence> {
        self.shared.alerts.lock().silences().to_vec()
    }

    /// Ends silence `id` now; returns whether it was still running or pending.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(!engine.expire_silence(watchpost::alert::SilenceId(42)));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn expire_silence(&self, id: SilenceId) -> bool {
        let now = self.clock_now_ms();
        let expired = self.shared.alerts.lock().expire_silence(id, now);
        self.evaluate_soon();
        expired
    }

    /// Acknowledges the active alert `alert_id` (`rule/series`, as in
    /// [`ActiveAlert::alert_id`]): no repeats or flapping notices until it
    /// resolves; the announcement of its firing (if it was pending) and its
    /// resolve are still sent. Returns whether an unacknowledged active alert
    /// was found.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(!engine.acknowledge_alert("cpu_usage_warning/system_cpu_usage"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn acknowledge_alert(&self, alert_id: &str) -> bool {
        let now = self.clock_now_ms();
        self.shared.alerts.lock().acknowledge(alert_id, now)
    }

    /// Alerts pending, firing or recovering (also while paused in no-data).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge("system_cpu_usage")?.set(85.0);
    /// engine.flush()?;
    /// let active = engine.active_alerts();
    /// assert_eq!(active[0].rule, "cpu_usage_warning");
    /// assert!(active[0].state.is_active()); // pending: the default waits 2 minutes
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        self.shared.alerts.lock().active_alerts()
    }

    /// Alert history events of the last `window` by the engine's clock,
    /// oldest first (the seed's `get_alert_history(hours)`); at most the
    /// configured [`alert_history_capacity`](crate::EngineBuilder::alert_history_capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// engine.gauge("system_memory_usage")?.set(90.0);
    /// engine.flush()?;
    /// let events = engine.alert_history(Duration::from_hours(24));
    /// assert_eq!(events[0].rule, "memory_usage_warning");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn alert_history(&self, window: Duration) -> Vec<AlertEvent> {
        let since = self
            .clock_now_ms()
            .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        self.shared.alerts.lock().history_since(since)
    }

    /// Registers a notification handler while running. It receives every
    /// notification decided after this returns, on a thread of its own: a
    /// handler that panics is caught and counted, one that is slow or blocks
    /// delays neither evaluation nor the other handlers. A slow handler loses
    /// nothing: what waits for it is coalesced per alert instance, and it
    /// sees every resolve of a firing it saw. Only a stuck one (see
    /// [`notifier_stuck_timeout`](crate::EngineBuilder::notifier_stuck_timeout))
    /// loses notifications, counted in its `dropped` and in
    /// `watchpost_notifications_dropped_total{handler="<name>"}`.
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`](crate::Error::ShutDown) after shutdown,
    /// [`Error::Spawn`](crate::Error::Spawn) if its thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, ChannelNotifier, NotificationKind};
    /// let engine = watchpost::Engine::builder().without_system_source()
    ///     .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build()?)
    ///     .build()?;
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// engine.add_notifier("inbox", ChannelNotifier::new(tx))?;
    /// engine.gauge("temp")?.set(35.0);
    /// engine.flush()?; // evaluates and waits for the handlers
    /// let n = rx.try_recv().unwrap();
    /// assert_eq!((n.rule.as_str(), n.kind), ("hot", NotificationKind::Firing));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_notifier(&self, name: impl Into<String>, notifier: impl Notifier) -> Result<()> {
        let name = name.into();
        let metrics = crate::dispatch::HandlerMetrics::register(&self.shared.registry, &name);
        self.shared.notify.register(name, notifier, metrics)
    }

    /// Counters of the notification queue and of every handler (delivered,
    /// failed, panicked, dropped, coalesced).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::FnNotifier;
    /// let engine = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .alert_rule(watchpost::alert::AlertRule::builder("disk_full", "system_disk_usage")
    ///         .above(90.0).build()?)
    ///     .notifier("noop", FnNotifier(|_: &watchpost::alert::Notification| {}))
    ///     .build()?;
    /// engine.gauge("system_disk_usage")?.set(95.0);
    /// engine.flush()?;
    /// let s = engine.notification_stats();
    /// assert_eq!((s.submitted, s.handlers[0].name.as_str(), s.handlers[0].delivered), (1, "noop", 1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn notification_stats(&self) -> NotificationStats {
        self.shared.notify.stats()
    }

    /// Waits until every notification decided so far has been handled by
    /// every handler, at most `timeout` (wall time; longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION) saturates to it); returns whether all were.
    /// Returns `true` at once after shutdown (everything was delivered then).
    ///
    /// Blocks; from async code call it through `tokio::task::spawn_blocking`
    /// (see [the guide](crate::guide::http#calling-the-engine-from-async-code)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(engine.flush_notifications(Duration::from_secs(1)));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn flush_notifications(&self, timeout: Duration) -> bool {
        self.shared.notify.flush_timeout(timeout.min(crate::MAX_DURATION))
    }
}
