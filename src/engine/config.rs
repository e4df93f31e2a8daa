//! Configuration documents on the engine: [`EngineBuilder::config`],
//! [`EngineBuilder::config_file`] and [`Monitor::reload_config`].

use std::path::Path;

use super::{EngineBuilder, Monitor};
use crate::alert::{AlertManager, DEFAULT_CRITICAL_REPEAT, Severity};
use crate::config::{Config, ReloadReport, SilenceSpec};
use crate::error::{ConfigProblem, Error, Result};

impl EngineBuilder {
    /// Applies a configuration document when the engine is built: its
    /// `[engine]` settings override the builder's, its rules join (and
    /// replace default rules of the same name), and its inhibit rules,
    /// silences and detector choices are added. A later
    /// [`Monitor::reload_config`] diffs against this document.
    ///
    /// Defaults to none.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = watchpost::config::Config::from_toml_str(r#"
    ///     [engine]
    ///     default_alert_rules = false
    ///     [[rules]]
    ///     name = "gone"
    ///     metric = "heartbeat"
    ///     condition = { kind = "absent", duration = "30s" }
    /// "#, "inline")?;
    /// let engine = watchpost::Engine::builder().without_system_source().config(config).build()?;
    /// assert_eq!(engine.alert_rules().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(Ok(config));
        self
    }

    /// Reads the TOML file at `path` (see [`config`](Self::config)); a
    /// file that cannot be read or has any problem makes
    /// [`build`](Self::build) fail with [`Error::Config`], which lists
    /// every problem with its line and column.
    ///
    /// Defaults to none.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .config_file("missing.toml")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("missing.toml: cannot read the file"));
    /// ```
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.config = Some(Config::load(path));
        self
    }

    /// The builder with `config` applied (called by `build`).
    pub(super) fn apply_config(mut self, config: &Config) -> Result<Self> {
        self = self.apply_settings(config);
        for (metric, choice) in &config.detectors {
            self = self.anomaly_detector_for(metric, choice.spec().cloned());
        }
        for (metric, domain) in &config.domains {
            // Checked by build_all below, which fails the build on an error.
            if let Ok(d) = domain.to_domain() {
                self = self.metric_domain(metric, d);
            }
        }
        #[cfg(feature = "notify")]
        if let Some(router) = config.router(std::sync::Arc::clone(&self.clock))? {
            self = self.notifier("router", router);
        }
        let built = config.build_all().map_err(|e| rebrand(e, "configuration"))?;
        self = self.alert_rules(built.rules);
        for rule in built.inhibit_rules {
            self = self.inhibit_rule(rule);
        }
        self.pending_silences = built.silences;
        Ok(self)
    }

    /// The builder with the `[engine]` settings of `config` applied.
    fn apply_settings(mut self, config: &Config) -> Self {
        let s = &config.engine;
        if let Some(v) = s.sample_interval {
            self = self.sample_interval(v);
        }
        if let Some(v) = s.history_capacity {
            self = self.history_capacity(v);
        }
        if let Some(v) = s.history_max_age {
            self = self.history_max_age(v);
        }
        if let Some(v) = s.series_cap {
            self = self.series_cap(v);
        }
        if let Some(v) = s.total_series_cap {
            self = self.total_series_cap(v);
        }
        if let Some(v) = s.max_name_length {
            self = self.max_name_length(v);
        }
        if let Some(v) = s.max_label_value_length {
            self = self.max_label_value_length(v);
        }
        if let Some(v) = s.max_labels {
            self = self.max_labels(v);
        }
        if let Some(v) = s.record_queue_capacity {
            self = self.record_queue_capacity(v);
        }
        if let Some(v) = s.staleness_horizon {
            self = self.staleness_horizon(v);
        }
        if s.default_alert_rules == Some(false) {
            self = self.without_default_alert_rules();
        }
        if s.default_inhibition == Some(false) {
            self = self.without_default_inhibition();
        }
        if let Some(choice) = &s.anomaly_detector {
            self = match choice.spec() {
                Some(spec) => self.anomaly_detector(spec.clone()),
                None => self.without_anomaly_detection(),
            };
        }
        if let Some(v) = s.anomaly_threshold {
            self = self.anomaly_threshold(v);
        }
        if let Some(v) = s.alert_history_capacity {
            self = self.alert_history_capacity(v);
        }
        if let Some(v) = s.notification_queue_capacity {
            self = self.notification_queue_capacity(v);
        }
        for (severity, every) in &s.repeat_interval {
            self = self.alert_repeat_interval(*severity, every.0);
        }
        if let Some(v) = s.summary_window {
            self = self.summary_window(v);
        }
        if s.system_source == Some(false) {
            self = self.without_system_source();
        }
        #[cfg(feature = "system")]
        if s.system_source == Some(true) {
            self = self.system_source(true);
        }
        if let Some(v) = s.dashboard_recent_points {
            self = self.dashboard_recent_points(v);
        }
        if let Some(v) = s.dashboard_statistics_window {
            self = self.dashboard_statistics_window(v);
        }
        if let Some(v) = s.dashboard_recent_alert_events {
            self = self.dashboard_recent_alert_events(v);
        }
        if let Some(v) = s.notifier_queue_capacity {
            self = self.notifier_queue_capacity(v);
        }
        if let Some(v) = s.notification_flush_timeout {
            self = self.notification_flush_timeout(v);
        }
        if let Some(v) = s.notifier_shutdown_grace {
            self = self.notifier_shutdown_grace(v);
        }
        if let Some(v) = s.notifier_stuck_timeout {
            self = self.notifier_stuck_timeout(v);
        }
        if let Some(v) = &s.state_dir {
            self = self.state_dir(v.clone());
        }
        if let Some(v) = s.state_write_delay {
            self = self.state_write_delay(v);
        }
        if let Some(v) = s.history_snapshot_interval {
            self = self.history_snapshot_interval(v);
        }
        if let Some(v) = s.history_snapshots {
            self = self.history_snapshots(v);
        }
        if let Some(v) = &s.performance_checks {
            self = self.performance_checks(v.clone());
        }
        self
    }

    /// Checks the `[engine]` settings of `config` as `build` would, without
    /// starting anything: a reload must refuse a document the next start
    /// would refuse, even for settings that only take effect then.
    fn check_settings(config: &Config) -> Result<()> {
        let builder = EngineBuilder::default().apply_settings(config);
        builder.validate().and_then(|()| builder.validate_limits()).map_err(|e| {
            let field = match &e {
                Error::InvalidConfig { field, .. } => format!("engine.{field}"),
                _ => "engine".to_owned(),
            };
            let message = match &e {
                Error::InvalidConfig { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            Error::Config {
                file: "configuration".to_owned(),
                problems: vec![ConfigProblem { line: None, column: None, field, message }],
            }
        })
    }
}

/// Names the document in an error that came without one.
fn rebrand(e: Error, file: &str) -> Error {
    match e {
        Error::Config { problems, .. } => Error::Config { file: file.to_owned(), problems },
        other => other,
    }
}

impl Monitor {
    /// Reads the TOML file at `path` and applies it, **all or nothing**.
    ///
    /// The whole file is parsed and every entry built first; on any
    /// problem nothing changes and [`Error::Config`] lists every problem
    /// with file, line, column, field path and offending value. Otherwise,
    /// against the document in force (the one given to the builder or the
    /// last reload):
    ///
    /// - a rule whose definition is unchanged keeps its alerts as they
    ///   are: pending timers, firing state, acknowledgements;
    /// - a changed rule restarts cleanly: its alerts are dropped (a firing
    ///   one that was announced resolves once, with
    ///   [`ResolveReason::RuleRemoved`](crate::alert::ResolveReason::RuleRemoved))
    ///   and the new definition starts from `Inactive`, so it fires again
    ///   after its own `for` if its condition holds;
    /// - a rule that the previous document defined and the new one does not
    ///   is removed, and its announced alerts resolve once with
    ///   `RuleRemoved`; rules added in code are left alone unless the file
    ///   defines a rule of the same name;
    /// - inhibit rules of the previous document are replaced by the new
    ///   ones; silences of the previous document that the new one no longer
    ///   lists are expired, new ones are added;
    /// - `default_inhibition` and `repeat_interval` take effect; a change
    ///   to any other `[engine]` setting or to `[detectors]` is listed in
    ///   [`ReloadReport::restart_required`] and does not take effect.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a file that cannot be read or has any problem.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("watchpost-doc-reload-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = dir.join("watchpost.toml");
    /// std::fs::write(&file, r#"
    /// [[rules]]
    /// name = "backlog"
    /// metric = "queue_depth"
    /// condition = { kind = "threshold", aggregate = "last", window = "1m", op = "gt", value = 100.0 }
    /// "#)?;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let report = engine.reload_config(&file)?;
    /// assert_eq!(report.added, ["backlog"]);
    /// std::fs::write(&file, "[[rules]]\nname = \"backlog\"\n")?; // no metric, no condition
    /// let err = engine.reload_config(&file).unwrap_err();
    /// assert!(err.to_string().contains("watchpost.toml:1:1"), "{err}");
    /// assert!(engine.alert_rules().iter().any(|r| r.name() == "backlog")); // unchanged
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reload_config(&self, path: impl AsRef<Path>) -> Result<ReloadReport> {
        let path = path.as_ref();
        let config = Config::load(path)?;
        self.apply_config(config).map_err(|e| rebrand(e, &path.display().to_string()))
    }

    /// Applies a configuration document, as [`reload_config`](Self::reload_config)
    /// does with a file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] listing every problem; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::Config;
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let mut config = Config::default();
    /// config.engine.history_capacity = Some(50);
    /// let report = engine.apply_config(config)?;
    /// assert_eq!(report.restart_required, ["history_capacity"]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn apply_config(&self, config: Config) -> Result<ReloadReport> {
        let built = config.build_all()?;
        EngineBuilder::check_settings(&config)?;
        let now = self.clock_now_ms();
        let mut current = self.shared.config.lock();
        let mut report = ReloadReport {
            restart_required: config
                .engine
                .needs_restart_from(&current.engine)
                .into_iter()
                .map(String::from)
                .collect(),
            ..ReloadReport::default()
        };
        if config.detectors != current.detectors {
            report.restart_required.push("detectors".to_owned());
        }
        if config.domains != current.domains {
            report.restart_required.push("domains".to_owned());
        }
        #[cfg(feature = "notify")]
        if config.route != current.route || config.receivers != current.receivers {
            report.restart_required.push("route and receivers".to_owned());
        }
        {
            let mut mgr = self.shared.alerts.lock();
            apply_rules(&mut mgr, &current, &config, built.rules, now, &mut report);
            let mut inhibit: Vec<_> = mgr.inhibit_rules().to_vec();
            let old_inhibit: Vec<_> =
                current.inhibit_rules.iter().filter_map(|s| s.to_inhibit_rule().ok()).collect();
            inhibit.retain(|r| !old_inhibit.contains(r));
            inhibit.extend(built.inhibit_rules);
            mgr.set_inhibit_rules(inhibit);
            apply_silences(
                &mut mgr,
                &current.silences,
                &config.silences,
                built.silences,
                now,
                &mut report,
            );
            if let Some(on) = config.engine.default_inhibition {
                mgr.set_default_inhibition(on);
            } else if current.engine.default_inhibition.is_some() {
                mgr.set_default_inhibition(true);
            }
            for severity in Severity::ALL {
                let old = current.engine.repeat_interval.get(&severity);
                let new = config.engine.repeat_interval.get(&severity);
                if old != new {
                    let every = match new {
                        Some(r) => r.0,
                        None if severity == Severity::Critical => Some(DEFAULT_CRITICAL_REPEAT),
                        None => None,
                    };
                    // Checked by build_all: a zero interval never gets here.
                    let _ = mgr.set_repeat_interval(severity, every);
                }
            }
        }
        *current = config;
        drop(current);
        self.evaluate_soon();
        Ok(report)
    }

    /// The configuration document in force: the one given to the builder
    /// or the last one applied (empty when there was none).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert!(engine.config().rules.is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn config(&self) -> Config {
        self.shared.config.lock().clone()
    }
}

impl Monitor {
    /// The configuration in effect: the `[engine]` settings and detector
    /// choices of the document in force, and every rule, inhibit rule and
    /// silence the engine holds now, wherever it came from (defaults, code,
    /// file, HTTP). Expired silences are left out, and so are secrets:
    /// inline ones read `"<redacted>"` (see [`Config::redacted`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let config = engine.effective_config();
    /// assert_eq!(config.rules.len(), 5); // the default rules
    /// assert!(config.to_toml().contains("name = \"cpu_usage_warning\""));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn effective_config(&self) -> Config {
        let mut config = self.config().redacted();
        let now = self.clock_now_ms();
        let mgr = self.shared.alerts.lock();
        config.rules = mgr.rules().map(crate::config::RuleSpec::from_rule).collect();
        config.inhibit_rules =
            mgr.inhibit_rules().iter().map(crate::config::InhibitSpec::from_inhibit_rule).collect();
        config.silences = mgr
            .silences()
            .iter()
            .filter(|s| !s.is_expired(now))
            .map(SilenceSpec::from_silence)
            .collect();
        config
    }
}

/// Adds, replaces and removes rules as [`Monitor::reload_config`] documents.
fn apply_rules(
    mgr: &mut AlertManager,
    old: &Config,
    new: &Config,
    rules: Vec<crate::alert::AlertRule>,
    now: i64,
    report: &mut ReloadReport,
) {
    for old_spec in &old.rules {
        if !new.rules.iter().any(|r| r.name == old_spec.name)
            && mgr.remove_rule(&old_spec.name, now).is_some()
        {
            report.removed.push(old_spec.name.clone());
        }
    }
    for (rule, spec) in rules.into_iter().zip(&new.rules) {
        match mgr.rule(&spec.name) {
            Some(existing) if *existing == rule => report.unchanged.push(spec.name.clone()),
            Some(_) => {
                mgr.remove_rule(&spec.name, now);
                report.changed.push(spec.name.clone());
                // Cannot fail: the name was just freed.
                let _ = mgr.add_rule(rule);
            }
            None => {
                report.added.push(spec.name.clone());
                let _ = mgr.add_rule(rule);
            }
        }
    }
}

/// Expires the previous document's silences the new one drops and adds its new ones.
fn apply_silences(
    mgr: &mut AlertManager,
    old: &[SilenceSpec],
    new: &[SilenceSpec],
    built: Vec<crate::alert::Silence>,
    now: i64,
    report: &mut ReloadReport,
) {
    let live: Vec<(crate::alert::SilenceId, SilenceSpec)> = mgr
        .silences()
        .iter()
        .filter(|s| !s.is_expired(now))
        .map(|s| (s.id(), SilenceSpec::from_silence(s)))
        .collect();
    for (id, spec) in &live {
        if old.contains(spec) && !new.contains(spec) && mgr.expire_silence(*id, now) {
            report.silences_expired += 1;
        }
    }
    for (silence, spec) in built.into_iter().zip(new) {
        if live.iter().any(|(_, s)| s == spec) {
            continue;
        }
        match mgr.add_silence(silence) {
            Ok(_) => report.silences_added += 1,
            Err(e) => report.problems.push(ConfigProblem {
                line: None,
                column: None,
                field: "silences".to_owned(),
                message: e.to_string(),
            }),
        }
    }
}
