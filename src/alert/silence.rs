//! Silences and inhibit rules: muting notifications without touching state.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::alert::matcher::{Matcher, all_match};
use crate::error::{Error, Result};

/// Identifies a silence inside one manager.
///
/// # Examples
///
/// ```
/// let id = watchpost::alert::SilenceId(7);
/// assert_eq!(id.to_string(), "7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SilenceId(pub u64);

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Mutes the notifications of every alert whose labels match all matchers,
/// from `starts_at_ms` (inclusive) to `ends_at_ms` (exclusive).
///
/// A silenced alert still changes state and still appears in queries. Its
/// firing is not announced while the silence lasts (and is announced when the
/// silence ends if the alert still fires); a resolve is still sent for a
/// firing that was announced before the silence began.
///
/// # Examples
///
/// ```
/// use watchpost::alert::{Matcher, Silence};
/// let s = Silence::new(vec![Matcher::equal("alertname", "cpu_usage_warning")], 0, 3_600_000)?
///     .created_by("ops")
///     .comment("load test");
/// assert!(s.is_active(10));
/// assert!(!s.is_active(3_600_000));
/// assert!(Silence::new(vec![], 0, 1).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub(crate) id: SilenceId,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) starts_at_ms: i64,
    pub(crate) ends_at_ms: i64,
    pub(crate) created_by: String,
    pub(crate) comment: String,
}

impl Silence {
    /// A silence over `[starts_at_ms, ends_at_ms)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `matchers` is empty (a silence must not mute
    /// everything by accident) or `ends_at_ms <= starts_at_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{Matcher, Silence};
    /// let err = Silence::new(vec![Matcher::equal("room", "a")], 5, 5).unwrap_err();
    /// assert!(err.to_string().contains("5"));
    /// ```
    pub fn new(matchers: Vec<Matcher>, starts_at_ms: i64, ends_at_ms: i64) -> Result<Self> {
        if matchers.is_empty() {
            return Err(Error::InvalidConfig {
                field: "silence.matchers",
                reason: "a silence needs at least one matcher".to_owned(),
            });
        }
        if ends_at_ms <= starts_at_ms {
            return Err(Error::InvalidConfig {
                field: "silence.ends_at",
                reason: format!("end {ends_at_ms} ms is not after start {starts_at_ms} ms"),
            });
        }
        Ok(Silence {
            id: SilenceId(0),
            matchers,
            starts_at_ms,
            ends_at_ms,
            created_by: String::new(),
            comment: String::new(),
        })
    }

    /// Records who created it. Default: empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?.created_by("ana");
    /// assert_eq!(s.creator(), "ana");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn created_by(mut self, who: impl Into<String>) -> Self {
        self.created_by = who.into();
        self
    }

    /// Records why. Default: empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?.comment("deploy");
    /// assert_eq!(s.why(), "deploy");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    #[must_use]
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = text.into();
        self
    }

    /// The id assigned by [`AlertManager::add_silence`](crate::alert::AlertManager::add_silence)
    /// (0 before that).
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence, SilenceId};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?;
    /// assert_eq!(s.id(), SilenceId(0));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn id(&self) -> SilenceId {
        self.id
    }

    /// The matchers.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?;
    /// assert_eq!(s.matchers().len(), 1);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Start, in ms since the epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// assert_eq!(Silence::new(vec![Matcher::equal("a", "b")], 3, 9)?.starts_at_ms(), 3);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn starts_at_ms(&self) -> i64 {
        self.starts_at_ms
    }

    /// End (exclusive), in ms since the epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// assert_eq!(Silence::new(vec![Matcher::equal("a", "b")], 3, 9)?.ends_at_ms(), 9);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn ends_at_ms(&self) -> i64 {
        self.ends_at_ms
    }

    /// Who created it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// assert_eq!(Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?.creator(), "");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn creator(&self) -> &str {
        &self.created_by
    }

    /// Why it was created.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// assert_eq!(Silence::new(vec![Matcher::equal("a", "b")], 0, 1)?.why(), "");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn why(&self) -> &str {
        &self.comment
    }

    /// Whether it mutes at `now_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// let s = Silence::new(vec![Matcher::equal("a", "b")], 10, 20)?;
    /// assert_eq!((s.is_active(9), s.is_active(10), s.is_active(20)), (false, true, false));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.starts_at_ms <= now_ms && now_ms < self.ends_at_ms
    }

    /// Whether it has ended at `now_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{Matcher, Silence};
    /// assert!(Silence::new(vec![Matcher::equal("a", "b")], 0, 5)?.is_expired(5));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.ends_at_ms
    }

    pub(crate) fn mutes(&self, now_ms: i64, labels: &BTreeMap<String, String>) -> bool {
        self.is_active(now_ms) && all_match(&self.matchers, |k| labels.get(k).map(String::as_str))
    }
}

/// Mutes target alerts while a source alert fires, like Alertmanager's
/// `inhibit_rules`: a firing alert matching `source` mutes every alert that
/// matches `target` and has the same values for the `equal` labels (an absent
/// label counts as `""`). An alert never inhibits itself.
///
/// # Examples
///
/// ```
/// use watchpost::alert::{InhibitRule, Matcher};
/// // A node that is down mutes every other alert about that node.
/// let r = InhibitRule::new(
///     vec![Matcher::equal("alertname", "node_down")],
///     vec![Matcher::not_equal("alertname", "node_down")],
///     ["host"],
/// );
/// assert_eq!(r.equal(), ["host"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl InhibitRule {
    /// A rule with source matchers, target matchers and labels that must be equal.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{InhibitRule, Matcher};
    /// let r = InhibitRule::new(vec![Matcher::equal("severity", "critical")],
    ///                          vec![Matcher::equal("severity", "warning")], ["room"]);
    /// assert_eq!(r.source().len(), 1);
    /// ```
    pub fn new<S: Into<String>>(
        source: Vec<Matcher>,
        target: Vec<Matcher>,
        equal: impl IntoIterator<Item = S>,
    ) -> Self {
        InhibitRule { source, target, equal: equal.into_iter().map(Into::into).collect() }
    }

    /// The source matchers.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{InhibitRule, Matcher};
    /// let r = InhibitRule::new(vec![], vec![Matcher::equal("a", "b")], ["x"]);
    /// assert!(r.source().is_empty());
    /// ```
    pub fn source(&self) -> &[Matcher] {
        &self.source
    }

    /// The target matchers.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{InhibitRule, Matcher};
    /// let r = InhibitRule::new(vec![], vec![Matcher::equal("a", "b")], ["x"]);
    /// assert_eq!(r.target().len(), 1);
    /// ```
    pub fn target(&self) -> &[Matcher] {
        &self.target
    }

    /// The labels that must be equal on source and target.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::alert::{InhibitRule, Matcher};
    /// let r = InhibitRule::new(vec![], vec![], ["x", "y"]);
    /// assert_eq!(r.equal(), ["x", "y"]);
    /// ```
    pub fn equal(&self) -> &[String] {
        &self.equal
    }

    pub(crate) fn is_source(&self, labels: &BTreeMap<String, String>) -> bool {
        all_match(&self.source, |k| labels.get(k).map(String::as_str))
    }

    pub(crate) fn is_target(&self, labels: &BTreeMap<String, String>) -> bool {
        all_match(&self.target, |k| labels.get(k).map(String::as_str))
    }

    pub(crate) fn equal_key(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        self.equal.iter().map(|k| labels.get(k).cloned().unwrap_or_default()).collect()
    }
}
