//! The rule builder: every setting of a rule, each with its default.

use std::time::Duration;

use crate::alert::condition::{Aggregate, CompareOp, Condition};
use crate::alert::matcher::Matcher;
use crate::alert::rule::{
    DEFAULT_MESSAGE, DEFAULT_TITLE, DEFAULT_WINDOW, FlapDetection, NoDataPolicy, Severity,
};
use crate::analysis::ForecastCondition;

/// Builds an [`AlertRule`](crate::alert::AlertRule); every setter documents its default.
///
/// A condition is required: [`condition`](Self::condition),
/// [`threshold`](Self::threshold), [`above`](Self::above),
/// [`below`](Self::below) or [`absent_for`](Self::absent_for).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::alert::{Aggregate, AlertRule, CompareOp, NoDataPolicy, Severity};
/// let rule = AlertRule::builder("p99_latency_high", "request_latency_seconds")
///     .label_eq("route", "/send")
///     .threshold(Aggregate::Quantile(0.99), Duration::from_mins(5), CompareOp::Gt, 0.25)
///     .recover_below(0.2)
///     .m_of_n(3, 5)
///     .keep_firing_for(Duration::from_mins(2))
///     .no_data(NoDataPolicy::KeepLast)
///     .severity(Severity::Error)
///     .label("team", "chat")
///     .title("Slow {{labels.route}}")
///     .message("p99 is {{value}} s (limit {{threshold}} s)")
///     .repeat_every(Duration::from_hours(1))
///     .build()?;
/// assert_eq!(rule.keep_firing_for(), Duration::from_mins(2));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RuleBuilder {
    pub(crate) name: String,
    pub(crate) metric: String,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) condition: Option<Condition>,
    pub(crate) recovery: Option<RecoverySpec>,
    pub(crate) pending: Duration,
    pub(crate) keep_firing: Duration,
    pub(crate) m_of_n: Option<(u32, u32)>,
    pub(crate) no_data: NoDataPolicy,
    pub(crate) severity: Severity,
    pub(crate) family: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) title: String,
    pub(crate) message: String,
    pub(crate) repeat: Option<Duration>,
    pub(crate) flap: Option<FlapDetection>,
    pub(crate) bad_matcher_name: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum RecoverySpec {
    Full(Condition),
    Threshold(CompareOp, f64),
}

impl RuleBuilder {
    pub(crate) fn new(name: String, metric: String) -> Self {
        RuleBuilder {
            name,
            metric,
            matchers: Vec::new(),
            condition: None,
            recovery: None,
            pending: Duration::ZERO,
            keep_firing: Duration::ZERO,
            m_of_n: None,
            no_data: NoDataPolicy::NoData,
            severity: Severity::Warning,
            family: None,
            labels: Vec::new(),
            title: DEFAULT_TITLE.to_owned(),
            message: DEFAULT_MESSAGE.to_owned(),
            repeat: None,
            flap: Some(FlapDetection::default()),
            bad_matcher_name: None,
        }
    }

    /// Adds a label matcher; a series must satisfy all of them. Default: none
    /// (every series of the metric).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Matcher};
    /// let r = AlertRule::builder("a", "disk").matcher(Matcher::not_regex("mount", "/snap/.*")?).above(90.0).build()?;
    /// assert_eq!(r.matchers()[0].to_string(), r#"mount!~"/snap/.*""#);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn matcher(mut self, m: Matcher) -> Self {
        self.matchers.push(m);
        self
    }

    /// Shorthand for `matcher(Matcher::equal(name, value))`; a bad label name is
    /// reported by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").label_eq("room", "x").above(1.0).build()?;
    /// assert_eq!(r.matchers()[0].value(), "x");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn label_eq(mut self, name: &str, value: &str) -> Self {
        match Matcher::new(name, crate::alert::MatchOp::Equal, value) {
            Ok(m) => self.matchers.push(m),
            Err(_) => self.bad_matcher_name = Some(name.to_owned()),
        }
        self
    }

    /// Sets the firing condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{AlertRule, Condition};
    /// let r = AlertRule::builder("gone", "heartbeat")
    ///     .condition(Condition::Absent { duration: Duration::from_mins(2) })
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "absent for 120s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn condition(mut self, c: Condition) -> Self {
        self.condition = Some(c);
        self
    }

    /// Fires when `aggregate` over the last `window` compares true with `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{Aggregate, AlertRule, CompareOp};
    /// let r = AlertRule::builder("errors", "errors_total")
    ///     .threshold(Aggregate::Rate, Duration::from_mins(1), CompareOp::Ge, 5.0)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "rate over 60s >= 5");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn threshold(
        self,
        aggregate: Aggregate,
        window: Duration,
        op: CompareOp,
        value: f64,
    ) -> Self {
        self.condition(Condition::Threshold { aggregate, window, op, value })
    }

    /// Fires when the newest sample of the last 5 minutes is `> value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(80.0).build()?;
    /// assert_eq!(r.condition().to_string(), "last over 300s > 80");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn above(self, value: f64) -> Self {
        self.threshold(Aggregate::Last, DEFAULT_WINDOW, CompareOp::Gt, value)
    }

    /// Fires when the newest sample of the last 5 minutes is `< value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "free_bytes").below(1e9).build()?;
    /// assert_eq!(r.condition().to_string(), "last over 300s < 1000000000");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn below(self, value: f64) -> Self {
        self.threshold(Aggregate::Last, DEFAULT_WINDOW, CompareOp::Lt, value)
    }

    /// Fires when the series has had no sample for `duration`.
    ///
    /// When no series matches at all, the rule still yields one alert whose
    /// labels are the rule's `=` matchers, like Prometheus' `absent()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").absent_for(Duration::from_secs(30)).build()?;
    /// assert_eq!(r.condition().to_string(), "absent for 30s");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn absent_for(self, duration: Duration) -> Self {
        self.condition(Condition::Absent { duration })
    }

    /// Fires when the trend fitted over the last `window` is predicted to
    /// reach `forecast.threshold` within `forecast.warn_within`; clears when
    /// no crossing is predicted within `forecast.clear_beyond` (see
    /// [`Condition::Forecast`]). `{{value}}` is the hours left.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::analysis::{CrossDirection, ForecastCondition};
    /// let h = Duration::from_hours(1);
    /// let disk_full = ForecastCondition::new(100.0, CrossDirection::Rising, 8 * h, 48 * h)?;
    /// let r = watchpost::alert::AlertRule::builder("disk_fills_soon", "system_disk_usage")
    ///     .forecast(6 * h, disk_full)
    ///     .message("{{labels.mount}} full in {{value}} h")
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(),
    ///            "forecast over 21600s: rising to 100 within 28800s (clears beyond 172800s)");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn forecast(self, window: Duration, forecast: ForecastCondition) -> Self {
        self.condition(Condition::Forecast { window, forecast })
    }

    /// Fires when more than `level` (a share in [0, 1)) of the samples of
    /// the last `window` are anomalous, that is score at least
    /// [`DEFAULT_THRESHOLD`](crate::detect::DEFAULT_THRESHOLD) (0.5, the
    /// engine's default); see [`Condition::AnomalyRate`] for another score.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("latency_unusual", "message_latency_seconds:p90")
    ///     .anomaly_rate_above(Duration::from_mins(5), 0.2)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "anomaly rate (score >= 0.5) over 300s > 0.2");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn anomaly_rate_above(self, window: Duration, level: f64) -> Self {
        self.condition(Condition::AnomalyRate {
            window,
            min_score: crate::detect::DEFAULT_THRESHOLD,
            above: level,
        })
    }

    /// Fires while the series' newest sample (within `window`) lies outside
    /// the band its anomaly detector expected: an adaptive threshold, learnt
    /// per series (see [`Condition::OutsideExpectedBand`]). Pair it with
    /// [`pending_for`](Self::pending_for) or [`m_of_n`](Self::m_of_n) to
    /// ignore single excursions.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("users_unusual", "active_users")
    ///     .outside_expected_band(Duration::from_mins(5))
    ///     .m_of_n(3, 5)
    ///     .build()?;
    /// assert_eq!(r.condition().to_string(), "newest sample over 300s outside its expected band");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn outside_expected_band(self, window: Duration) -> Self {
        self.condition(Condition::OutsideExpectedBand { window })
    }

    /// A separate recovery condition (hysteresis). Default: none, so the alert
    /// recovers as soon as the firing condition stops holding.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::alert::{Aggregate, AlertRule, CompareOp, Condition};
    /// let r = AlertRule::builder("a", "m")
    ///     .above(80.0)
    ///     .recover_when(Condition::Threshold {
    ///         aggregate: Aggregate::Max,
    ///         window: Duration::from_mins(2),
    ///         op: CompareOp::Lt,
    ///         value: 70.0,
    ///     })
    ///     .build()?;
    /// assert!(r.recovery().is_some());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_when(mut self, c: Condition) -> Self {
        self.recovery = Some(RecoverySpec::Full(c));
        self
    }

    /// Recovers only once the firing condition's aggregate, over the same window, is `< value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(80.0).recover_below(70.0).build()?;
    /// assert_eq!(r.recovery().unwrap().to_string(), "last over 300s < 70");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_below(mut self, value: f64) -> Self {
        self.recovery = Some(RecoverySpec::Threshold(CompareOp::Lt, value));
        self
    }

    /// Recovers only once the firing condition's aggregate, over the same window, is `> value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").below(10.0).recover_above(20.0).build()?;
    /// assert_eq!(r.recovery().unwrap().to_string(), "last over 300s > 20");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn recover_above(mut self, value: f64) -> Self {
        self.recovery = Some(RecoverySpec::Threshold(CompareOp::Gt, value));
        self
    }

    /// How long the condition must hold before the alert fires (Prometheus'
    /// `for`); the alert is `Pending` meanwhile. Default: zero (fire at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).pending_for(Duration::from_mins(5)).build()?;
    /// assert_eq!(r.pending(), Duration::from_mins(5));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn pending_for(mut self, d: Duration) -> Self {
        self.pending = d;
        self
    }

    /// How long a firing alert stays firing (`Recovering`) after it recovers;
    /// if the condition comes back meanwhile it simply keeps firing. Default: zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).keep_firing_for(Duration::from_mins(1)).build()?;
    /// assert_eq!(r.keep_firing_for(), Duration::from_mins(1));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn keep_firing_for(mut self, d: Duration) -> Self {
        self.keep_firing = d;
        self
    }

    /// The condition counts as active when it held in at least `m` of the last
    /// `n` evaluations that saw new data (1 ≤ m ≤ n ≤ 64). Default: off (every
    /// evaluation decides alone).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).m_of_n(3, 5).build();
    /// assert!(r.is_ok());
    /// assert!(watchpost::alert::AlertRule::builder("a", "m").above(1.0).m_of_n(6, 5).build().is_err());
    /// ```
    pub fn m_of_n(mut self, m: u32, n: u32) -> Self {
        self.m_of_n = Some((m, n));
        self
    }

    /// What to do when the window holds no data. Default: [`NoDataPolicy::NoData`].
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, NoDataPolicy};
    /// let r = AlertRule::builder("a", "m").above(1.0).no_data(NoDataPolicy::Ok).build()?;
    /// assert_eq!(r.no_data(), NoDataPolicy::Ok);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn no_data(mut self, policy: NoDataPolicy) -> Self {
        self.no_data = policy;
        self
    }

    /// The severity. Default: [`Severity::Warning`].
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, Severity};
    /// let r = AlertRule::builder("a", "m").above(1.0).severity(Severity::Info).build()?;
    /// assert_eq!(r.severity(), Severity::Info);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// The family for default inhibition: a firing alert mutes alerts of lower
    /// severity in the same family on the same series. Default: the metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).family("saturation").build()?;
    /// assert_eq!(r.family(), "saturation");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    /// Adds a label to the rule's alerts (it overrides a series label of the
    /// same name). Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).label("team", "ops").build()?;
    /// assert_eq!(r.labels().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// The title template (see [`Template`](crate::alert::Template)). Default: [`DEFAULT_TITLE`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::AlertRule::builder("a", "m").above(1.0).title("{{bad}}").build().is_err());
    /// ```
    pub fn title(mut self, template: impl Into<String>) -> Self {
        self.title = template.into();
        self
    }

    /// The message template (see [`Template`](crate::alert::Template)). Default: [`DEFAULT_MESSAGE`].
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).message("{{value}} > {{threshold}}").build();
    /// assert!(r.is_ok());
    /// ```
    pub fn message(mut self, template: impl Into<String>) -> Self {
        self.message = template.into();
        self
    }

    /// Re-send a `Repeat` notification this often while the alert keeps firing
    /// (unless muted). Default: the manager's interval for the rule's severity
    /// (see [`AlertManager::set_repeat_interval`](crate::alert::AlertManager::set_repeat_interval)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).repeat_every(Duration::from_hours(4)).build();
    /// assert!(r.is_ok());
    /// ```
    pub fn repeat_every(mut self, d: Duration) -> Self {
        self.repeat = Some(d);
        self
    }

    /// Flap detection thresholds. Default: [`FlapDetection::default`] (on, 5 % / 20 %).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{AlertRule, FlapDetection};
    /// let r = AlertRule::builder("a", "m").above(1.0).flap_detection(FlapDetection::new(25.0, 50.0)?).build();
    /// assert!(r.is_ok());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn flap_detection(mut self, f: FlapDetection) -> Self {
        self.flap = Some(f);
        self
    }

    /// Turns flap detection off for this rule.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = watchpost::alert::AlertRule::builder("a", "m").above(1.0).without_flap_detection().build();
    /// assert!(r.is_ok());
    /// ```
    pub fn without_flap_detection(mut self) -> Self {
        self.flap = None;
        self
    }
}
