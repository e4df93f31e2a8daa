//! Detector choices as written in a file: a name with default parameters
//! (`"robust_z"`), or a table with a `kind` and that kind's parameters.
//!
//! Every parameter has the name and unit of the `with_*` method of the
//! detector's settings type in [`crate::detect`], and is applied through
//! that method, so a file accepts exactly the values code does.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::detect::{
    DetectorSpec, Domain, EnsembleConfig, EwmaConfig, LikelihoodConfig, NoveltyConfig,
    RobustZConfig, SeasonalConfig,
};
use crate::error::{Error, Result};

/// The anomaly detector of a metric: `"none"`, a name from
/// [`DetectorSpec::NAMES`] with its default parameters, or a table with a
/// `kind` and parameters ([`DetectorParams`]).
///
/// ```toml
/// [detectors]
/// queue_depth = "ewma"
///
/// [detectors.message_latency_p90]
/// kind = "robust_z"
/// window = 64
/// sigmas = 5.0
/// ```
///
/// # Examples
///
/// ```
/// use watchpost::config::DetectorChoice;
/// use watchpost::detect::{DetectorSpec, RobustZConfig};
/// let c: DetectorChoice = "seasonal".parse()?;
/// assert_eq!(c.spec().unwrap().name(), "seasonal");
/// assert!("none".parse::<DetectorChoice>()?.spec().is_none());
/// assert!("nope".parse::<DetectorChoice>().is_err());
///
/// let table: DetectorChoice = toml::from_str::<toml::Table>("d = { kind = \"robust_z\", window = 64 }")?
///     ["d"].clone().try_into()?;
/// let code = DetectorSpec::RobustZ(RobustZConfig::default().with_window(64)?);
/// assert_eq!(table.spec(), Some(&code));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorChoice {
    spec: Option<DetectorSpec>,
    /// As written, when written as a table.
    params: Option<DetectorParams>,
}

impl DetectorChoice {
    /// The detector, or `None` for no anomaly detection.
    ///
    /// # Examples
    ///
    /// ```
    /// let c: watchpost::config::DetectorChoice = "ewma".parse()?;
    /// assert!(c.spec().is_some());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn spec(&self) -> Option<&DetectorSpec> {
        self.spec.as_ref()
    }

    /// The parameters, when the choice was given as a table.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::{DetectorChoice, DetectorParams, EwmaParams};
    /// let mut p = EwmaParams::default();
    /// p.span = Some(20.0);
    /// let c = DetectorChoice::try_from(DetectorParams::Ewma(p))?;
    /// assert!(matches!(c.params(), Some(DetectorParams::Ewma(p)) if p.span == Some(20.0)));
    /// assert!("ewma".parse::<DetectorChoice>()?.params().is_none());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn params(&self) -> Option<&DetectorParams> {
        self.params.as_ref()
    }
}

impl FromStr for DetectorChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let spec = if s == "none" { None } else { Some(s.parse()?) };
        Ok(DetectorChoice { spec, params: None })
    }
}

impl TryFrom<DetectorParams> for DetectorChoice {
    type Error = Error;

    /// Applies every parameter through the detector's `with_*` method.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the parameter's path (such as
    /// `robust.window`) and its value.
    fn try_from(params: DetectorParams) -> Result<Self> {
        let spec = params.to_spec()?;
        Ok(DetectorChoice { spec: Some(spec), params: Some(params) })
    }
}

impl fmt::Display for DetectorChoice {
    /// The detector's name, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec.as_ref().map_or("none", DetectorSpec::name))
    }
}

impl Serialize for DetectorChoice {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.params {
            Some(p) => p.serialize(s),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for DetectorChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        DetectorSetting::deserialize(d)?.check().map_err(|p| {
            de::Error::custom(if p.field.is_empty() {
                p.message
            } else {
                format!("{}: {}", p.field, p.message)
            })
        })
    }
}

/// A detector choice as written, not yet checked: the name or the table.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "read once per metric from a file")]
pub(crate) enum DetectorSetting {
    Name(String),
    Params(DetectorParams),
}

/// A parameter that its detector's `with_*` method refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamProblem {
    /// Its path inside the detector's table (`window`, `robust.window`); empty for a bad name.
    pub(crate) field: String,
    /// The method's reason, with the value.
    pub(crate) message: String,
}

impl DetectorSetting {
    /// The choice, with every parameter applied and checked.
    pub(crate) fn check(self) -> std::result::Result<DetectorChoice, ParamProblem> {
        match self {
            DetectorSetting::Name(name) => name.parse().map_err(|e| ParamProblem {
                field: String::new(),
                message: match e {
                    Error::InvalidConfig { reason, .. } => reason,
                    other => other.to_string(),
                },
            }),
            DetectorSetting::Params(params) => {
                let spec = params.build()?;
                Ok(DetectorChoice { spec: Some(spec), params: Some(params) })
            }
        }
    }
}

impl<'de> Deserialize<'de> for DetectorSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DetectorSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a detector name or a table with a `kind` and its parameters")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(DetectorSetting::Name(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                DetectorParams::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DetectorSetting::Params)
            }
        }
        d.deserialize_any(V)
    }
}

/// A detector with parameters: `kind` names the detector, every other
/// field is optional and keeps the detector's default when absent.
///
/// | `kind` | parameters |
/// |---|---|
/// | `ensemble` (also `default`) | [`EnsembleParams`] |
/// | `robust_z` | [`RobustZParams`] |
/// | `ewma` | [`EwmaParams`] |
/// | `seasonal` | [`SeasonalParams`] |
/// | `novelty` | [`NoveltyParams`] |
///
/// # Examples
///
/// ```
/// use watchpost::config::DetectorParams;
/// let p: DetectorParams = toml::from_str("kind = \"seasonal\"\nperiod_ms = 3600000\nbuckets = 60")?;
/// assert_eq!(p.to_spec()?.name(), "seasonal");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(clippy::large_enum_variant, reason = "read once per metric from a file")]
pub enum DetectorParams {
    /// [`EnsembleConfig`].
    #[serde(alias = "default")]
    Ensemble(EnsembleParams),
    /// [`RobustZConfig`].
    RobustZ(RobustZParams),
    /// [`EwmaConfig`].
    Ewma(EwmaParams),
    /// [`SeasonalConfig`].
    Seasonal(SeasonalParams),
    /// [`NoveltyConfig`].
    Novelty(NoveltyParams),
}

impl DetectorParams {
    /// The detector these parameters describe, each applied through its
    /// `with_*` method.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the parameter's path and its value.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::config::{DetectorParams, RobustZParams};
    /// let mut p = RobustZParams::default();
    /// p.window = Some(2);
    /// let err = DetectorParams::RobustZ(p).to_spec().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid detector: window: must be in 8..=8192, got 2");
    /// ```
    pub fn to_spec(&self) -> Result<DetectorSpec> {
        self.build().map_err(|p| Error::InvalidConfig {
            field: "detector",
            reason: format!("{}: {}", p.field, p.message),
        })
    }

    fn build(&self) -> std::result::Result<DetectorSpec, ParamProblem> {
        Ok(match self {
            DetectorParams::Ensemble(p) => DetectorSpec::Ensemble(p.config("")?),
            DetectorParams::RobustZ(p) => DetectorSpec::RobustZ(p.config("")?),
            DetectorParams::Ewma(p) => DetectorSpec::Ewma(p.config("")?),
            DetectorParams::Seasonal(p) => {
                DetectorSpec::Seasonal(p.config(SeasonalConfig::default(), "")?)
            }
            DetectorParams::Novelty(p) => DetectorSpec::Novelty(p.config("")?),
        })
    }
}

/// Applies `value` (if set) to `cfg` through `with`; a refusal names the
/// parameter as `prefix` + the method's field.
fn apply<C, V>(
    cfg: C,
    value: Option<V>,
    prefix: &str,
    with: impl FnOnce(C, V) -> Result<C>,
) -> std::result::Result<C, ParamProblem> {
    let Some(v) = value else { return Ok(cfg) };
    with(cfg, v).map_err(|e| match e {
        Error::InvalidConfig { field, reason } => {
            ParamProblem { field: format!("{prefix}{field}"), message: reason }
        }
        other => ParamProblem {
            field: prefix.trim_end_matches('.').to_owned(),
            message: other.to_string(),
        },
    })
}

/// Parameters of [`RobustZConfig`] (`kind = "robust_z"`).
///
/// # Examples
///
/// ```
/// let p: watchpost::config::RobustZParams = toml::from_str("window = 64\nsigmas = 5")?;
/// assert_eq!(p.window, Some(64));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RobustZParams {
    /// [`with_window`](RobustZConfig::with_window), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// [`with_sigmas`](RobustZConfig::with_sigmas), in robust standard deviations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<f64>,
    /// [`with_warmup`](RobustZConfig::with_warmup), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
}

impl RobustZParams {
    fn config(&self, prefix: &str) -> std::result::Result<RobustZConfig, ParamProblem> {
        let c = RobustZConfig::default();
        let c = apply(c, self.window, prefix, RobustZConfig::with_window)?;
        let c = apply(c, self.sigmas, prefix, RobustZConfig::with_sigmas)?;
        apply(c, self.warmup, prefix, RobustZConfig::with_warmup)
    }
}

/// Parameters of [`EwmaConfig`] (`kind = "ewma"`).
///
/// # Examples
///
/// ```
/// let p: watchpost::config::EwmaParams = toml::from_str("span = 32.0")?;
/// assert_eq!(p.span, Some(32.0));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EwmaParams {
    /// [`with_span`](EwmaConfig::with_span), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<f64>,
    /// [`with_sigmas`](EwmaConfig::with_sigmas), in standard deviations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<f64>,
    /// [`with_warmup`](EwmaConfig::with_warmup), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
}

impl EwmaParams {
    fn config(&self, prefix: &str) -> std::result::Result<EwmaConfig, ParamProblem> {
        let c = EwmaConfig::default();
        let c = apply(c, self.span, prefix, EwmaConfig::with_span)?;
        let c = apply(c, self.sigmas, prefix, EwmaConfig::with_sigmas)?;
        apply(c, self.warmup, prefix, EwmaConfig::with_warmup)
    }
}

/// Parameters of [`SeasonalConfig`] (`kind = "seasonal"`).
///
/// # Examples
///
/// ```
/// let p: watchpost::config::SeasonalParams = toml::from_str("period_ms = 3600000\nbuckets = 60")?;
/// assert_eq!(p.buckets, Some(60));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SeasonalParams {
    /// [`with_period_ms`](SeasonalConfig::with_period_ms), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<i64>,
    /// [`with_buckets`](SeasonalConfig::with_buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<usize>,
    /// [`with_alpha`](SeasonalConfig::with_alpha), a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// [`with_sigmas`](SeasonalConfig::with_sigmas), in standard deviations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<f64>,
}

impl SeasonalParams {
    /// `base` with these parameters applied.
    fn config(
        &self,
        base: SeasonalConfig,
        prefix: &str,
    ) -> std::result::Result<SeasonalConfig, ParamProblem> {
        let c = apply(base, self.period_ms, prefix, SeasonalConfig::with_period_ms)?;
        let c = apply(c, self.buckets, prefix, SeasonalConfig::with_buckets)?;
        let c = apply(c, self.alpha, prefix, SeasonalConfig::with_alpha)?;
        apply(c, self.sigmas, prefix, SeasonalConfig::with_sigmas)
    }
}

/// Parameters of [`NoveltyConfig`] (`kind = "novelty"`).
///
/// # Examples
///
/// ```
/// let p: watchpost::config::NoveltyParams = toml::from_str("levels = 12\norder = 4")?;
/// assert_eq!(p.order, Some(4));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NoveltyParams {
    /// [`with_levels`](NoveltyConfig::with_levels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<usize>,
    /// [`with_order`](NoveltyConfig::with_order), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    /// [`with_table_bits`](NoveltyConfig::with_table_bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_bits: Option<u32>,
    /// [`with_range_window`](NoveltyConfig::with_range_window), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_window: Option<usize>,
}

impl NoveltyParams {
    fn config(&self, prefix: &str) -> std::result::Result<NoveltyConfig, ParamProblem> {
        let c = NoveltyConfig::default();
        let c = apply(c, self.levels, prefix, NoveltyConfig::with_levels)?;
        let c = apply(c, self.order, prefix, NoveltyConfig::with_order)?;
        let c = apply(c, self.table_bits, prefix, NoveltyConfig::with_table_bits)?;
        apply(c, self.range_window, prefix, NoveltyConfig::with_range_window)
    }
}

/// Parameters of [`LikelihoodConfig`] (the `likelihood` table of an ensemble).
///
/// # Examples
///
/// ```
/// let p: watchpost::config::LikelihoodParams = toml::from_str("long_window = 8640")?;
/// assert_eq!(p.long_window, Some(8640));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LikelihoodParams {
    /// [`with_short_window`](LikelihoodConfig::with_short_window), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_window: Option<usize>,
    /// [`with_long_window`](LikelihoodConfig::with_long_window), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_window: Option<usize>,
    /// [`with_learning`](LikelihoodConfig::with_learning), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<usize>,
    /// [`with_min_std`](LikelihoodConfig::with_min_std).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_std: Option<f64>,
}

impl LikelihoodParams {
    fn config(&self, prefix: &str) -> std::result::Result<LikelihoodConfig, ParamProblem> {
        let c = LikelihoodConfig::default();
        let c = apply(c, self.short_window, prefix, LikelihoodConfig::with_short_window)?;
        let c = apply(c, self.long_window, prefix, LikelihoodConfig::with_long_window)?;
        let c = apply(c, self.learning, prefix, LikelihoodConfig::with_learning)?;
        apply(c, self.min_std, prefix, LikelihoodConfig::with_min_std)
    }
}

/// The second seasonal member of an ensemble: `false` drops it
/// ([`without_weekly`](EnsembleConfig::without_weekly)), a table sets its
/// parameters ([`with_weekly`](EnsembleConfig::with_weekly)) over the
/// weekly default (a 7-day period in 168 buckets).
///
/// # Examples
///
/// ```
/// use watchpost::config::WeeklyParams;
/// let off: WeeklyParams = serde_json::from_str("false")?;
/// assert_eq!(off, WeeklyParams::Enabled(false));
/// let p: WeeklyParams = serde_json::from_str(r#"{"buckets": 84}"#)?;
/// assert!(matches!(p, WeeklyParams::Params(s) if s.buckets == Some(84)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WeeklyParams {
    /// `true` keeps the default weekly member, `false` drops it.
    Enabled(bool),
    /// The weekly member with these parameters.
    Params(SeasonalParams),
}

/// Parameters of [`EnsembleConfig`] (`kind = "ensemble"`): how the members
/// are combined, and each member's own parameters as a sub-table.
///
/// # Examples
///
/// ```
/// let p: watchpost::config::EnsembleParams = toml::from_str(r#"
///     refractory = 50
///     weekly = false
///     robust = { window = 64 }
/// "#)?;
/// assert_eq!(p.refractory, Some(50));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EnsembleParams {
    /// [`with_refractory`](EnsembleConfig::with_refractory), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refractory: Option<usize>,
    /// [`with_threshold`](EnsembleConfig::with_threshold), a score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// [`with_breakthrough`](EnsembleConfig::with_breakthrough).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakthrough: Option<bool>,
    /// [`with_relative_floor`](EnsembleConfig::with_relative_floor), a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_floor: Option<f64>,
    /// [`with_breakout_margin`](EnsembleConfig::with_breakout_margin), a fraction of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakout_margin: Option<f64>,
    /// [`with_breakout_window`](EnsembleConfig::with_breakout_window), in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakout_window: Option<usize>,
    /// [`with_robust`](EnsembleConfig::with_robust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robust: Option<RobustZParams>,
    /// [`with_ewma`](EnsembleConfig::with_ewma).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ewma: Option<EwmaParams>,
    /// [`with_seasonal`](EnsembleConfig::with_seasonal), over the daily default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonal: Option<SeasonalParams>,
    /// [`with_weekly`](EnsembleConfig::with_weekly) or
    /// [`without_weekly`](EnsembleConfig::without_weekly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyParams>,
    /// [`with_likelihood`](EnsembleConfig::with_likelihood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likelihood: Option<LikelihoodParams>,
}

/// The default weekly member of an ensemble, through the public setters.
fn weekly_base() -> std::result::Result<SeasonalConfig, ParamProblem> {
    let c = apply(SeasonalConfig::default(), Some(7 * 86_400_000), "weekly.", |c, v| {
        c.with_period_ms(v)
    })?;
    apply(c, Some(168), "weekly.", SeasonalConfig::with_buckets)
}

impl EnsembleParams {
    fn config(&self, prefix: &str) -> std::result::Result<EnsembleConfig, ParamProblem> {
        let c = EnsembleConfig::default();
        let c = apply(c, self.refractory, prefix, EnsembleConfig::with_refractory)?;
        let c = apply(c, self.threshold, prefix, EnsembleConfig::with_threshold)?;
        let c = apply(c, self.breakthrough, prefix, |c, on| Ok(c.with_breakthrough(on)))?;
        let c = apply(c, self.relative_floor, prefix, EnsembleConfig::with_relative_floor)?;
        let c = apply(c, self.breakout_margin, prefix, EnsembleConfig::with_breakout_margin)?;
        let mut c = apply(c, self.breakout_window, prefix, EnsembleConfig::with_breakout_window)?;
        if let Some(p) = &self.robust {
            c = c.with_robust(p.config(&format!("{prefix}robust."))?);
        }
        if let Some(p) = &self.ewma {
            c = c.with_ewma(p.config(&format!("{prefix}ewma."))?);
        }
        if let Some(p) = &self.seasonal {
            c = c
                .with_seasonal(p.config(SeasonalConfig::default(), &format!("{prefix}seasonal."))?);
        }
        match &self.weekly {
            None | Some(WeeklyParams::Enabled(true)) => {}
            Some(WeeklyParams::Enabled(false)) => c = c.without_weekly(),
            Some(WeeklyParams::Params(p)) => {
                c = c.with_weekly(p.config(weekly_base()?, &format!("{prefix}weekly."))?);
            }
        }
        if let Some(p) = &self.likelihood {
            c = c.with_likelihood(p.config(&format!("{prefix}likelihood."))?);
        }
        Ok(c)
    }
}

/// The values a metric can take (`[domains]`, see
/// [`metric_domain`](crate::EngineBuilder::metric_domain)): `lower` and
/// `upper`, each unbounded when absent, checked by [`Domain::new`].
///
/// # Examples
///
/// ```
/// let d: watchpost::config::DomainSpec = toml::from_str("lower = 0.0\nupper = 1.0")?;
/// assert_eq!(d.to_domain()?.upper(), 1.0);
/// let open: watchpost::config::DomainSpec = toml::from_str("lower = 0.0")?;
/// assert_eq!(open.to_domain()?.upper(), f64::INFINITY);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DomainSpec {
    /// The smallest value; none: unbounded below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// The largest value; none: unbounded above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
}

impl DomainSpec {
    /// The domain, through [`Domain::new`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `domain` with both bounds when
    /// `lower >= upper` or a bound is NaN.
    ///
    /// # Examples
    ///
    /// ```
    /// let d: watchpost::config::DomainSpec = toml::from_str("lower = 5.0\nupper = 1.0")?;
    /// assert!(d.to_domain().unwrap_err().to_string().contains("[5, 1]"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_domain(&self) -> Result<Domain> {
        Domain::new(self.lower.unwrap_or(f64::NEG_INFINITY), self.upper.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(toml_value: &str) -> std::result::Result<DetectorChoice, String> {
        let t: toml::Table =
            toml::from_str(&format!("d = {toml_value}")).map_err(|e| e.to_string())?;
        t["d"].clone().try_into().map_err(|e: toml::de::Error| e.message().to_owned())
    }

    #[test]
    fn every_kind_with_parameters_builds_what_code_builds() -> Result<()> {
        let cases = [
            (
                r#"{ kind = "robust_z", window = 64, sigmas = 5, warmup = 10 }"#,
                DetectorSpec::RobustZ(
                    RobustZConfig::default().with_window(64)?.with_sigmas(5.0)?.with_warmup(10)?,
                ),
            ),
            (
                r#"{ kind = "ewma", span = 20.5, sigmas = 3.0, warmup = 5 }"#,
                DetectorSpec::Ewma(
                    EwmaConfig::default().with_span(20.5)?.with_sigmas(3.0)?.with_warmup(5)?,
                ),
            ),
            (
                r#"{ kind = "seasonal", period_ms = 3600000, buckets = 60, alpha = 0.1, sigmas = 3.5 }"#,
                DetectorSpec::Seasonal(
                    SeasonalConfig::default()
                        .with_period_ms(3_600_000)?
                        .with_buckets(60)?
                        .with_alpha(0.1)?
                        .with_sigmas(3.5)?,
                ),
            ),
            (
                r#"{ kind = "novelty", levels = 12, order = 4, table_bits = 12, range_window = 512 }"#,
                DetectorSpec::Novelty(
                    NoveltyConfig::default()
                        .with_levels(12)?
                        .with_order(4)?
                        .with_table_bits(12)?
                        .with_range_window(512)?,
                ),
            ),
            (
                r#"{ kind = "ensemble", refractory = 50, threshold = 0.6, breakthrough = false,
                     relative_floor = 0.02, breakout_margin = 0.25, breakout_window = 1024,
                     robust = { window = 64 }, ewma = { span = 32.0 },
                     seasonal = { buckets = 24 }, weekly = { buckets = 84 },
                     likelihood = { short_window = 5, long_window = 2000, learning = 100, min_std = 0.05 } }"#,
                DetectorSpec::Ensemble(
                    EnsembleConfig::default()
                        .with_refractory(50)?
                        .with_threshold(0.6)?
                        .with_breakthrough(false)
                        .with_relative_floor(0.02)?
                        .with_breakout_margin(0.25)?
                        .with_breakout_window(1024)?
                        .with_robust(RobustZConfig::default().with_window(64)?)
                        .with_ewma(EwmaConfig::default().with_span(32.0)?)
                        .with_seasonal(SeasonalConfig::default().with_buckets(24)?)
                        .with_weekly(
                            SeasonalConfig::default()
                                .with_period_ms(7 * 86_400_000)?
                                .with_buckets(84)?,
                        )
                        .with_likelihood(
                            LikelihoodConfig::default()
                                .with_short_window(5)?
                                .with_long_window(2000)?
                                .with_learning(100)?
                                .with_min_std(0.05)?,
                        ),
                ),
            ),
            (
                r#"{ kind = "default", weekly = false }"#,
                DetectorSpec::Ensemble(EnsembleConfig::default().without_weekly()),
            ),
        ];
        for (text, code) in cases {
            let c = choice(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.spec(), Some(&code), "{text}");
            // a parameter that differs from the code path is noticed
            assert_ne!(c.spec(), Some(&code.name().parse::<DetectorSpec>()?), "{text}");
        }
        Ok(())
    }

    #[test]
    fn a_refused_parameter_is_named_with_its_value() {
        let e = choice(r#"{ kind = "robust_z", window = 2 }"#).unwrap_err();
        assert_eq!(e, "window: must be in 8..=8192, got 2");
        let e = choice(r#"{ kind = "ensemble", likelihood = { long_window = 10 } }"#).unwrap_err();
        assert_eq!(e, "likelihood.long_window: must be in 32..=1000000, got 10");
        let e = choice(r#"{ kind = "ewma", spam = 3 }"#).unwrap_err();
        assert!(e.contains("unknown field `spam`"), "{e}");
        let e = choice(r#"{ kind = "zscore" }"#).unwrap_err();
        assert!(e.contains("unknown variant `zscore`"), "{e}");
        let e = choice(r#""zscore""#).unwrap_err();
        assert!(e.contains("\"zscore\""), "{e}");
    }

    #[test]
    fn a_table_serializes_as_written_and_a_name_as_a_string() {
        let c = choice(r#"{ kind = "robust_z", window = 64 }"#).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"kind":"robust_z","window":64}"#);
        let back: DetectorChoice =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let n = choice("\"ewma\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"ewma\"");
    }
}
