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
    /// Longest a silence may last, from start to end: 366 days, in ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{Matcher, Silence};
    /// let m = || vec![Matcher::equal("room", "a")];
    /// assert!(Silence::new(m(), 0, Silence::MAX_DURATION_MS).is_ok());
    /// assert!(Silence::new(m(), 0, Silence::MAX_DURATION_MS + 1).is_err());
    /// ```
    pub const MAX_DURATION_MS: i64 = 366 * 86_400_000;

    /// Most matchers in one silence.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{Matcher, Silence};
    /// let many = vec![Matcher::equal("room", "a"); Silence::MAX_MATCHERS + 1];
    /// assert!(Silence::new(many, 0, 1).is_err());
    /// ```
    pub const MAX_MATCHERS: usize = 8;

    /// Most bytes of label name plus value (or pattern) in one matcher of a silence.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{Matcher, Silence};
    /// let long = Matcher::equal("room", &"a".repeat(Silence::MAX_MATCHER_LEN));
    /// assert!(Silence::new(vec![long], 0, 1).is_err());
    /// ```
    pub const MAX_MATCHER_LEN: usize = 256;

    /// Most bytes in [`created_by`](Silence::created_by), checked by
    /// [`AlertManager::add_silence`](crate::alert::AlertManager::add_silence).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Silence::MAX_CREATED_BY_LEN, 128);
    /// ```
    pub const MAX_CREATED_BY_LEN: usize = 128;

    /// Most bytes in [`comment`](Silence::comment), checked by
    /// [`AlertManager::add_silence`](crate::alert::AlertManager::add_silence).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Silence::MAX_COMMENT_LEN, 1_024);
    /// ```
    pub const MAX_COMMENT_LEN: usize = 1_024;

    /// A silence over `[starts_at_ms, ends_at_ms)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `matchers` is empty (a silence must not mute
    /// everything by accident), has more than [`MAX_MATCHERS`](Silence::MAX_MATCHERS)
    /// matchers or one longer than [`MAX_MATCHER_LEN`](Silence::MAX_MATCHER_LEN),
    /// if `ends_at_ms <= starts_at_ms`, or if it would last longer than
    /// [`MAX_DURATION_MS`](Silence::MAX_DURATION_MS). The message names the value.
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
        if matchers.len() > Self::MAX_MATCHERS {
            return Err(Error::InvalidConfig {
                field: "silence.matchers",
                reason: format!("{} matchers; at most {}", matchers.len(), Self::MAX_MATCHERS),
            });
        }
        if let Some(m) =
            matchers.iter().find(|m| m.name().len() + m.value().len() > Self::MAX_MATCHER_LEN)
        {
            return Err(Error::InvalidConfig {
                field: "silence.matchers",
                reason: format!(
                    "matcher {}{}{} has {} bytes of name and value; at most {}",
                    m.name(),
                    m.op(),
                    preview(m.value()),
                    m.name().len() + m.value().len(),
                    Self::MAX_MATCHER_LEN
                ),
            });
        }
        if ends_at_ms <= starts_at_ms {
            return Err(Error::InvalidConfig {
                field: "silence.ends_at",
                reason: format!("end {ends_at_ms} ms is not after start {starts_at_ms} ms"),
            });
        }
        let max_ms = i128::from(Self::MAX_DURATION_MS);
        if i128::from(ends_at_ms) - i128::from(starts_at_ms) > max_ms {
            return Err(Error::InvalidConfig {
                field: "silence.ends_at",
                reason: format!(
                    "end {ends_at_ms} ms is more than {max_ms} ms (366 days) after start {starts_at_ms} ms"
                ),
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

    /// Records who created it. Default: empty. At most
    /// [`MAX_CREATED_BY_LEN`](Silence::MAX_CREATED_BY_LEN) bytes, checked when
    /// the silence is added.
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

    /// Records why. Default: empty. At most
    /// [`MAX_COMMENT_LEN`](Silence::MAX_COMMENT_LEN) bytes, checked when the
    /// silence is added.
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

    /// Checks the limits that the builder methods cannot report.
    pub(crate) fn validate_text(&self) -> Result<()> {
        for (field, text, max) in [
            ("silence.created_by", &self.created_by, Self::MAX_CREATED_BY_LEN),
            ("silence.comment", &self.comment, Self::MAX_COMMENT_LEN),
        ] {
            if text.len() > max {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("{} is {} bytes; at most {max}", preview(text), text.len()),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn mutes(&self, now_ms: i64, labels: &BTreeMap<String, String>) -> bool {
        self.is_active(now_ms) && all_match(&self.matchers, |k| labels.get(k).map(String::as_str))
    }
}

/// The first 40 characters of `text`, quoted, for error messages about long texts.
fn preview(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertManager, MAX_SILENCES};

    const DAY_MS: i64 = 86_400_000;

    fn room() -> Vec<Matcher> {
        vec![Matcher::equal("room", "a")]
    }

    #[test]
    fn an_end_date_cannot_bypass_the_duration_limit() {
        // 9999-12-31T00:00:00Z, the end that went past the one-year limit on duration_seconds
        let end = 253_402_214_400_000;
        let err = Silence::new(room(), 0, end).unwrap_err().to_string();
        assert!(err.contains("silence.ends_at") && err.contains("253402214400000"), "{err}");
        assert!(Silence::new(room(), 0, 366 * DAY_MS).is_ok());
        assert!(Silence::new(room(), 0, 366 * DAY_MS + 1).is_err());
        // no overflow on extreme instants
        assert!(Silence::new(room(), i64::MIN, i64::MAX).is_err());
    }

    #[test]
    fn matcher_count_and_length_are_capped() {
        let many = vec![Matcher::equal("room", "a"); Silence::MAX_MATCHERS + 1];
        let err = Silence::new(many, 0, 1).unwrap_err().to_string();
        assert!(err.contains("9 matchers"), "{err}");
        assert!(
            Silence::new(vec![Matcher::equal("room", "a"); Silence::MAX_MATCHERS], 0, 1).is_ok()
        );

        let value = "v".repeat(Silence::MAX_MATCHER_LEN - 3);
        assert!(Silence::new(vec![Matcher::equal("abc", &value)], 0, 1).is_ok());
        let long = Matcher::equal("abcd", &value);
        let err = Silence::new(vec![long], 0, 1).unwrap_err().to_string();
        assert!(err.contains("257 bytes") && err.contains(r#"abcd="vvv"#), "{err}");
        assert!(err.len() < 200, "the message quotes a prefix, not the whole value: {err}");
    }

    #[test]
    fn comment_and_creator_lengths_are_checked_when_added() {
        let mut mgr = AlertManager::default();
        let ok = Silence::new(room(), 0, 1)
            .unwrap()
            .created_by("c".repeat(Silence::MAX_CREATED_BY_LEN))
            .comment("é".repeat(Silence::MAX_COMMENT_LEN / 2));
        assert!(mgr.add_silence(ok).is_ok());

        let comment = Silence::new(room(), 0, 1).unwrap().comment("x".repeat(60 * 1024));
        let err = mgr.add_silence(comment).unwrap_err().to_string();
        assert!(err.contains("silence.comment") && err.contains("61440 bytes"), "{err}");
        assert!(err.len() < 200, "{err}");
        let creator = Silence::new(room(), 0, 1)
            .unwrap()
            .created_by("y".repeat(Silence::MAX_CREATED_BY_LEN + 1));
        let err = mgr.add_silence(creator).unwrap_err().to_string();
        assert!(err.contains("silence.created_by") && err.contains("129 bytes"), "{err}");
        assert_eq!(mgr.silences().len(), 1);
    }

    #[test]
    fn the_number_of_silences_is_capped_and_ended_ones_make_room() {
        let mut mgr = AlertManager::default();
        for i in 0..MAX_SILENCES {
            let start = i64::try_from(i).unwrap();
            mgr.add_silence(Silence::new(room(), start, DAY_MS + start).unwrap()).unwrap();
        }
        // all still running at DAY_MS - 1
        let next = Silence::new(room(), DAY_MS - 1, 2 * DAY_MS).unwrap();
        let err = mgr.add_silence(next.clone()).unwrap_err().to_string();
        assert!(err.contains("500 silences") && err.contains(&(DAY_MS - 1).to_string()), "{err}");
        assert_eq!(mgr.silences().len(), MAX_SILENCES);
        // from DAY_MS the first one has ended: it is forgotten to make room
        let first = mgr.silences()[0].id();
        let id = mgr.add_silence(Silence::new(room(), DAY_MS, 2 * DAY_MS).unwrap()).unwrap();
        assert_eq!(mgr.silences().len(), MAX_SILENCES);
        assert!(mgr.silences().iter().all(|s| s.id() != first));
        assert!(mgr.silences().iter().any(|s| s.id() == id));
        // expiring one makes room at once
        let second = mgr.silences()[0].id();
        assert!(mgr.expire_silence(second, 10));
        assert!(mgr.add_silence(Silence::new(room(), 10, DAY_MS).unwrap()).is_ok());
    }
}
