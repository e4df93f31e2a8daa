//! Configuration from a file: alert rules, inhibit rules, silences,
//! detector choices and engine settings, in TOML.
//!
//! Every type has serde with the names and units of its builder (durations
//! as text: `"30s"`, `"5m"`, `"1h 30m"`), and every entry is built through
//! the same builder or constructor code uses, so a file can describe
//! exactly what code can build. [`Config::load`] reads a file and reports
//! **every** problem it finds, each with file, line, column, the field's
//! path and the offending value; nothing is applied unless the whole file
//! is valid. The guide is [docs/config.md](crate::guide::config).
//!
//! A subset of Prometheus alerting-rule files can be imported too (see
//! [`import_prometheus_rules`]).
//!
//! # Examples
//!
//! ```
//! use watchpost::config::Config;
//! let config = Config::from_toml_str(r#"
//!     [engine]
//!     sample_interval = "5s"
//!
//!     [[rules]]
//!     name = "queue_backlog"
//!     metric = "queue_depth"
//!     condition = { kind = "threshold", aggregate = "avg", window = "1m", op = "gt", value = 100.0 }
//!     for = "2m"
//! "#, "watchpost.toml")?;
//! assert_eq!(config.rules[0].to_rule()?.pending(), std::time::Duration::from_mins(2));
//! let engine = watchpost::Engine::builder().without_system_source().config(config).build()?;
//! assert!(engine.alert_rules().iter().any(|r| r.name() == "queue_backlog"));
//! # Ok::<(), watchpost::Error>(())
//! ```

mod detector;
#[cfg(feature = "notify")]
mod notify;
mod prometheus;
mod rule;
mod settings;
mod spans;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use self::detector::DetectorSetting;
pub use self::detector::{
    DetectorChoice, DetectorParams, DomainSpec, EnsembleParams, EwmaParams, LikelihoodParams,
    NoveltyParams, RobustZParams, SeasonalParams, WeeklyParams,
};
#[cfg(feature = "notify")]
#[cfg_attr(docsrs, doc(cfg(feature = "notify")))]
pub use self::notify::{DeliverySpec, REDACTED, ReceiverSpec, RouteSpec, Secret};
pub use self::prometheus::{PrometheusImport, import_prometheus_rules};
pub use self::rule::{ConditionSpec, FlapSpec, InhibitSpec, MOfN, RuleSpec, SilenceSpec};
pub use self::settings::{EngineSettings, RepeatSetting};
use self::spans::Place;
use crate::error::{ConfigProblem, Error, Result};

/// The whole configuration: what a file describes.
///
/// | table | type |
/// |---|---|
/// | `[engine]` | [`EngineSettings`] |
/// | `[detectors]` | metric name → [`DetectorChoice`] |
/// | `[domains]` | metric name → [`DomainSpec`] |
/// | `[[rules]]` | [`RuleSpec`] |
/// | `[[inhibit_rules]]` | [`InhibitSpec`] |
/// | `[[silences]]` | [`SilenceSpec`] |
///
/// # Examples
///
/// ```
/// use watchpost::{alert::AlertRule, config::{Config, RuleSpec}};
/// let mut config = Config::default();
/// config.rules.push(RuleSpec::from_rule(&AlertRule::builder("hot", "temp").above(30.0).build()?));
/// let text = config.to_toml();
/// assert_eq!(Config::from_toml_str(&text, "x.toml")?, config);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Engine settings.
    #[serde(default, skip_serializing_if = "EngineSettings::is_empty")]
    pub engine: EngineSettings,
    /// The anomaly detector of each named metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detectors: BTreeMap<String, DetectorChoice>,
    /// The values each named metric can take.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domains: BTreeMap<String, DomainSpec>,
    /// Alert rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// Inhibit rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibit_rules: Vec<InhibitSpec>,
    /// Silences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<SilenceSpec>,
    /// The notification route tree (feature `notify`); with it the engine
    /// gets a [`Router`](crate::notify::Router) handler named `"router"`.
    #[cfg(feature = "notify")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteSpec>,
    /// The receivers the routes name (feature `notify`).
    #[cfg(feature = "notify")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<ReceiverSpec>,
}

/// What a document builds: every entry checked.
#[derive(Debug, Default)]
pub(crate) struct Built {
    pub(crate) rules: Vec<crate::alert::AlertRule>,
    pub(crate) inhibit_rules: Vec<crate::alert::InhibitRule>,
    pub(crate) silences: Vec<crate::alert::Silence>,
}

/// What [`Monitor::reload_config`](crate::Monitor::reload_config) changed.
///
/// # Examples
///
/// ```
/// let report = watchpost::config::ReloadReport::default();
/// assert!(report.added.is_empty() && report.restart_required.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Rules that did not exist before.
    pub added: Vec<String>,
    /// Rules whose definition changed: restarted from `Inactive`.
    pub changed: Vec<String>,
    /// Rules of the previous document that the new one drops.
    pub removed: Vec<String>,
    /// Rules whose definition is the same: their alerts keep their state.
    pub unchanged: Vec<String>,
    /// Silences added.
    pub silences_added: usize,
    /// Silences of the previous document that were expired.
    pub silences_expired: usize,
    /// Settings that changed but take effect only on a restart.
    pub restart_required: Vec<String>,
    /// Entries that were valid but could not be applied (a full silence store).
    pub problems: Vec<ConfigProblem>,
}

/// The document as parsed, with the place of each entry for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: EngineSettings,
    #[serde(default)]
    detectors: BTreeMap<String, toml::Spanned<DetectorSetting>>,
    #[serde(default)]
    domains: BTreeMap<String, toml::Spanned<DomainSpec>>,
    #[serde(default)]
    rules: Vec<toml::Spanned<RuleSpec>>,
    #[serde(default)]
    inhibit_rules: Vec<toml::Spanned<InhibitSpec>>,
    #[serde(default)]
    silences: Vec<toml::Spanned<SilenceSpec>>,
    #[cfg(feature = "notify")]
    #[serde(default)]
    route: Option<toml::Spanned<RouteSpec>>,
    #[cfg(feature = "notify")]
    #[serde(default)]
    receivers: Vec<toml::Spanned<ReceiverSpec>>,
}

impl Config {
    /// Reads and checks the file at `path`: YAML if its name ends in
    /// `.yml` or `.yaml`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with every problem found (one for a file that
    /// cannot be read or is not valid TOML).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::config::Config::load("no/such/file.toml").unwrap_err();
    /// assert!(err.to_string().starts_with("no/such/file.toml: "));
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        match std::fs::read_to_string(path) {
            Ok(text) if yaml => Config::from_yaml_str(&text, &name),
            Ok(text) => Config::from_toml_str(&text, &name),
            Err(e) => Err(Error::Config {
                file: name,
                problems: vec![ConfigProblem {
                    line: None,
                    column: None,
                    field: String::new(),
                    message: format!("cannot read the file: {e}"),
                }],
            }),
        }
    }

    /// Parses and checks a TOML document; `file` names it in errors.
    ///
    /// Every rule, inhibit rule, silence, detector and setting is built
    /// and checked; all problems are reported together.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = r#"
    /// [[rules]]
    /// name = "a"
    /// metric = "m"
    /// condition = { kind = "threshold", aggregate = "last", window = "5m", op = "gt", value = 1.0 }
    /// m_of_n = { m = 6, n = 5 }
    ///
    /// [[rules]]
    /// name = "b"
    /// metric = "bad metric"
    /// condition = { kind = "absent", duration = "1m" }
    /// "#;
    /// let err = watchpost::config::Config::from_toml_str(text, "rules.toml").unwrap_err();
    /// let msg = err.to_string();
    /// assert!(msg.contains("rules.toml:2:1: rules[0]"), "{msg}");
    /// assert!(msg.contains("rules.toml:8:1: rules[1]"), "{msg}");
    /// assert!(msg.contains("\"bad metric\""), "{msg}");
    /// ```
    pub fn from_toml_str(text: &str, file: &str) -> Result<Config> {
        let raw: RawConfig = match parse(text) {
            Ok(raw) => raw,
            Err(problem) => {
                return Err(Error::Config { file: file.to_owned(), problems: vec![problem] });
            }
        };
        let mut problems = Vec::new();
        let mut config = Config { engine: raw.engine, ..Config::default() };
        for (metric, spanned) in raw.detectors {
            let span = spanned.span();
            match spanned.into_inner().check() {
                Ok(choice) => {
                    config.detectors.insert(metric, choice);
                }
                Err(p) => problems.push(detector_problem(text, span, &metric, p)),
            }
        }
        for (metric, spanned) in raw.domains {
            let span = spanned.span();
            let spec = spanned.into_inner();
            if let Err(e) = spec.to_domain() {
                problems.push(problem_at(text, span.start, &format!("domains.{metric}"), &e));
            }
            config.domains.insert(metric, spec);
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, spanned) in raw.rules.into_iter().enumerate() {
            let span = spanned.span();
            let spec = spanned.into_inner();
            let base = format!("rules[{i}]");
            if let Err(e) = spec.to_rule() {
                problems.push(problem_at(text, span.start, &base, &e));
            }
            let line = Place::of(text, span.start).line;
            if let Some(first) = names.insert(spec.name.clone(), line) {
                problems.push(problem_at(
                    text,
                    span.start,
                    &format!("{base}.name"),
                    &Error::InvalidConfig {
                        field: "",
                        reason: format!(
                            "a rule named {:?} is already defined at line {first}",
                            spec.name
                        ),
                    },
                ));
            }
            config.rules.push(spec);
        }
        for (i, spanned) in raw.inhibit_rules.into_iter().enumerate() {
            let span = spanned.span();
            let spec = spanned.into_inner();
            if let Err(e) = spec.to_inhibit_rule() {
                problems.push(problem_at(text, span.start, &format!("inhibit_rules[{i}]"), &e));
            }
            config.inhibit_rules.push(spec);
        }
        for (i, spanned) in raw.silences.into_iter().enumerate() {
            let span = spanned.span();
            let spec = spanned.into_inner();
            if let Err(e) = spec.to_silence() {
                problems.push(problem_at(text, span.start, &format!("silences[{i}]"), &e));
            }
            config.silences.push(spec);
        }
        #[cfg(feature = "notify")]
        {
            for (i, spanned) in raw.receivers.into_iter().enumerate() {
                let span = spanned.span();
                let spec = spanned.into_inner();
                if let Err(e) = spec.to_receiver() {
                    problems.push(problem_at(text, span.start, &format!("receivers[{i}]"), &e));
                }
                config.receivers.push(spec);
            }
            if let Some(spanned) = raw.route {
                let span = spanned.span();
                let spec = spanned.into_inner();
                let names: Vec<&str> = config.receivers.iter().map(ReceiverSpec::name).collect();
                let tree = spec
                    .to_route()
                    .and_then(|root| crate::notify::RouteTree::new(root, names).map(drop));
                if let Err(e) = tree {
                    problems.push(problem_at(text, span.start, "", &e));
                }
                config.route = Some(spec);
            }
        }
        if let Err(Error::Config { problems: more, .. }) = config.build_all() {
            // What the per-entry checks above could not place: engine settings.
            problems.extend(more.into_iter().filter(|p| p.field.starts_with("engine")));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Error::Config { file: file.to_owned(), problems })
        }
    }

    /// Parses and checks a YAML document (the same fields as TOML); `file`
    /// names it in errors. Type errors carry their line and column; the
    /// checks made by builders carry the field path only (YAML values keep
    /// no place).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// let yaml = "
    /// rules:
    ///   - name: gone
    ///     metric: heartbeat
    ///     condition: { kind: absent, duration: 30s }
    ///   - name: bad
    ///     metric: m
    ///     condition: { kind: absent, duration: 30s }
    ///     m_of_n: { m: 9, n: 5 }
    /// ";
    /// let err = watchpost::config::Config::from_yaml_str(yaml, "w.yml").unwrap_err();
    /// assert!(err.to_string().starts_with("w.yml: rules[1].m_of_n"), "{err}");
    /// let ok = watchpost::config::Config::from_yaml_str(&yaml[..yaml.find("  - name: bad").unwrap()], "w.yml")?;
    /// assert_eq!(ok.rules[0].to_rule()?.condition().to_string(), "absent for 30s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Config> {
        let de = serde_norway::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let loc = e.inner().location();
            // The YAML error repeats its own path and place; keep the rest.
            let mut message = e.inner().to_string();
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            let cut = message
                .split_once(": ")
                .filter(|(head, _)| path.starts_with(head))
                .map(|(head, _)| head.len() + 2);
            if let Some(cut) = cut {
                message.drain(..cut);
            }
            Error::Config {
                file: file.to_owned(),
                problems: vec![ConfigProblem {
                    line: loc.as_ref().map(serde_norway::Location::line),
                    column: loc.as_ref().map(serde_norway::Location::column),
                    field: if path == "." { String::new() } else { path },
                    message,
                }],
            }
        })?;
        match config.build_all() {
            Ok(_) => Ok(config),
            Err(Error::Config { problems, .. }) => {
                Err(Error::Config { file: file.to_owned(), problems })
            }
            Err(other) => Err(other),
        }
    }

    /// Builds every rule, inhibit rule and silence, and checks the
    /// settings that are not checked by a builder, collecting every problem.
    pub(crate) fn build_all(&self) -> Result<Built> {
        let mut built = Built::default();
        let mut problems = Vec::new();
        let mut push = |base: String, e: &Error| {
            let mut p = problem_at("", 0, &base, e);
            (p.line, p.column) = (None, None);
            problems.push(p);
        };
        let mut names = std::collections::BTreeSet::new();
        for (i, spec) in self.rules.iter().enumerate() {
            match spec.to_rule() {
                Ok(rule) => built.rules.push(rule),
                Err(e) => push(format!("rules[{i}]"), &e),
            }
            if !names.insert(spec.name.as_str()) {
                push(
                    format!("rules[{i}].name"),
                    &Error::InvalidConfig {
                        field: "",
                        reason: format!("two rules are named {:?}", spec.name),
                    },
                );
            }
        }
        for (metric, spec) in &self.domains {
            if let Err(e) = spec.to_domain() {
                push(format!("domains.{metric}"), &e);
            }
        }
        for (i, spec) in self.inhibit_rules.iter().enumerate() {
            match spec.to_inhibit_rule() {
                Ok(r) => built.inhibit_rules.push(r),
                Err(e) => push(format!("inhibit_rules[{i}]"), &e),
            }
        }
        for (i, spec) in self.silences.iter().enumerate() {
            match spec.to_silence() {
                Ok(s) => built.silences.push(s),
                Err(e) => push(format!("silences[{i}]"), &e),
            }
        }
        #[cfg(feature = "notify")]
        {
            for (i, spec) in self.receivers.iter().enumerate() {
                if let Err(e) = spec.to_receiver() {
                    push(format!("receivers[{i}]"), &e);
                }
            }
            if let Some(route) = &self.route {
                let names: Vec<&str> = self.receivers.iter().map(ReceiverSpec::name).collect();
                let tree = route
                    .to_route()
                    .and_then(|root| crate::notify::RouteTree::new(root, names).map(drop));
                if let Err(e) = tree {
                    push(String::new(), &e);
                }
            }
        }
        if cfg!(not(feature = "system")) && self.engine.system_source == Some(true) {
            push(
                "engine.system_source".to_owned(),
                &Error::InvalidConfig {
                    field: "",
                    reason: "true needs the feature `system`, which this build lacks".to_owned(),
                },
            );
        }
        for (severity, every) in &self.engine.repeat_interval {
            if every.0.is_some_and(|d| d.is_zero()) {
                push(
                    format!("engine.repeat_interval.{severity}"),
                    &Error::InvalidConfig {
                        field: "",
                        reason: "\"0s\"; write \"off\" to turn repeats off".to_owned(),
                    },
                );
            }
        }
        if problems.is_empty() {
            Ok(built)
        } else {
            Err(Error::Config { file: "configuration".to_owned(), problems })
        }
    }

    /// The notification router the document describes, if it has a
    /// `[route]`: receivers built (secrets resolved) and the tree checked.
    #[cfg(feature = "notify")]
    pub(crate) fn router(
        &self,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<Option<crate::notify::Router>> {
        let Some(route) = &self.route else { return Ok(None) };
        let mut b = crate::notify::Router::builder(route.to_route()?).clock(clock);
        for r in &self.receivers {
            b = b.receiver(r.to_receiver()?);
        }
        b.build().map(Some)
    }

    /// The same configuration with inline secrets replaced by
    /// `"<redacted>"` (references to the environment or files are kept).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = watchpost::config::Config::default();
    /// assert_eq!(c.redacted(), c);
    /// ```
    #[must_use]
    pub fn redacted(&self) -> Config {
        #[allow(unused_mut, reason = "only receivers hold secrets")]
        let mut c = self.clone();
        #[cfg(feature = "notify")]
        {
            c.receivers = c.receivers.iter().map(ReceiverSpec::redacted).collect();
        }
        c
    }

    /// The configuration as a TOML document.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = watchpost::config::Config::default().to_toml();
    /// assert!(text.is_empty());
    /// ```
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

fn parse(text: &str) -> std::result::Result<RawConfig, ConfigProblem> {
    let de = toml::Deserializer::parse(text).map_err(|e| problem_from_toml(text, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Spanned<T> shows up in the path as a private field; drop it.
        let path = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        problem_from_toml(text, if path == "." { "" } else { &path }, e.inner())
    })
}

fn problem_from_toml(text: &str, field: &str, e: &toml::de::Error) -> ConfigProblem {
    let place = e.span().map(|s| Place::of(text, s.start));
    ConfigProblem {
        line: place.map(|p| p.line),
        column: place.map(|p| p.column),
        field: field.to_owned(),
        message: e.message().trim_end().to_owned(),
    }
}

/// A detector parameter refused by its `with_*` method, placed at the line
/// of the parameter's key inside the detector's table (else the table).
fn detector_problem(
    text: &str,
    span: std::ops::Range<usize>,
    metric: &str,
    p: detector::ParamProblem,
) -> ConfigProblem {
    let base = format!("detectors.{metric}");
    let key = p.field.rsplit('.').next().unwrap_or_default();
    // A `[detectors.x]` table's span covers its header only: look on to the next header.
    let header = text.get(span.clone()).is_some_and(|t| t.starts_with('['));
    let end = if header {
        text.get(span.end..).and_then(|rest| rest.find("\n[")).map_or(text.len(), |i| span.end + i)
    } else {
        span.end
    };
    let within = text.get(span.start..end).unwrap_or_default();
    let offset = (!key.is_empty())
        .then(|| {
            within.match_indices(key).map(|(i, _)| i).find(|&i| {
                let before = within[..i].chars().next_back();
                let after = within[i + key.len()..].trim_start();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('=')
            })
        })
        .flatten()
        .map_or(span.start, |i| span.start + i);
    let place = Place::of(text, offset);
    ConfigProblem {
        line: Some(place.line),
        column: Some(place.column),
        field: if p.field.is_empty() { base } else { format!("{base}.{}", p.field) },
        message: p.message,
    }
}

/// A problem with the entry that starts at byte `offset`; the field path is
/// `base` plus the builder's field name.
fn problem_at(text: &str, offset: usize, base: &str, e: &Error) -> ConfigProblem {
    let place = Place::of(text, offset);
    let (field, message) = match e {
        Error::InvalidConfig { field, reason } if base.is_empty() => {
            ((*field).to_owned(), reason.clone())
        }
        Error::InvalidConfig { field, reason } if !field.is_empty() => {
            (format!("{base}.{}", field.trim_start_matches("rule.")), reason.clone())
        }
        Error::InvalidConfig { reason, .. } => (base.to_owned(), reason.clone()),
        other => (base.to_owned(), other.to_string()),
    };
    ConfigProblem { line: Some(place.line), column: Some(place.column), field, message }
}

#[cfg(test)]
mod tests;
