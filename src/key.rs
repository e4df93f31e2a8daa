//! Validated metric names, label sets and series identities.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Checks a metric name against Prometheus' grammar `[a-zA-Z_:][a-zA-Z0-9_:]*`.
///
/// # Errors
///
/// [`Error::InvalidMetricName`] quoting `name` if it does not match.
///
/// # Examples
///
/// ```
/// use watchpost::validate_metric_name;
/// assert!(validate_metric_name("http_requests_total").is_ok());
/// assert!(validate_metric_name("job:rate5m").is_ok());
/// assert!(validate_metric_name("2xx").is_err());
/// ```
pub fn validate_metric_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(Error::InvalidMetricName { name: name.to_owned() }) }
}

/// Whether `label` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*` without the reserved `__` prefix.
pub(crate) fn is_valid_label_name(label: &str) -> bool {
    let mut bytes = label.bytes();
    let ok = match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    };
    ok && !label.starts_with("__")
}

/// Size limits on the parts of a series key, checked before a series is
/// registered so that a label carrying a request body cannot eat the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyLimits {
    /// Longest metric name or label name, in bytes.
    pub(crate) name_bytes: usize,
    /// Longest label value, in bytes.
    pub(crate) label_value_bytes: usize,
    /// Most labels on one series.
    pub(crate) labels: usize,
}

impl KeyLimits {
    /// No limits (registries made outside an engine, in tests).
    #[cfg(test)]
    pub(crate) const NONE: KeyLimits =
        KeyLimits { name_bytes: usize::MAX, label_value_bytes: usize::MAX, labels: usize::MAX };

    /// Checks the sizes of `name` and `pairs` (not their grammar).
    ///
    /// Errors quote at most the first 64 bytes of an over-long name.
    pub(crate) fn check(&self, name: &str, pairs: &[(&str, &str)]) -> Result<()> {
        let too_long =
            |n: &str| Error::NameTooLong { name: shorten(n), len: n.len(), limit: self.name_bytes };
        if name.len() > self.name_bytes {
            return Err(too_long(name));
        }
        if pairs.len() > self.labels {
            return Err(Error::TooManyLabels {
                metric: name.to_owned(),
                count: pairs.len(),
                limit: self.labels,
            });
        }
        for (k, v) in pairs {
            if k.len() > self.name_bytes {
                return Err(too_long(k));
            }
            if v.len() > self.label_value_bytes {
                return Err(Error::LabelValueTooLong {
                    metric: name.to_owned(),
                    label: (*k).to_owned(),
                    len: v.len(),
                    limit: self.label_value_bytes,
                });
            }
        }
        Ok(())
    }
}

/// The first 64 bytes of `s` (cut at a character boundary), with `…` if cut.
fn shorten(s: &str) -> String {
    const KEEP: usize = 64;
    if s.len() <= KEEP {
        return s.to_owned();
    }
    let mut end = KEEP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A sorted, validated set of label pairs: part of a series' identity.
///
/// # Examples
///
/// ```
/// use watchpost::Labels;
/// let labels = Labels::new("messages_total", &[("room", "general"), ("kind", "text")])?;
/// assert_eq!(labels.get("room"), Some("general"));
/// assert_eq!(labels.to_string(), r#"{kind="text",room="general"}"#);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

/// Labels serialize as a JSON object: `{"room": "general"}`.
impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
        let pairs: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Labels::new("", &pairs).map_err(serde::de::Error::custom)
    }
}

impl Labels {
    /// Validates and sorts `pairs` given for metric `metric` (the name is only used in errors).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLabelName`] or [`Error::DuplicateLabel`], quoting the label.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::Labels;
    /// assert!(Labels::new("m", &[("__name__", "x")]).is_err());
    /// assert!(Labels::new("m", &[("a", "1"), ("a", "2")]).is_err());
    /// ```
    pub fn new(metric: &str, pairs: &[(&str, &str)]) -> Result<Self> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if !is_valid_label_name(k) {
                return Err(Error::InvalidLabelName {
                    metric: metric.to_owned(),
                    label: (*k).to_owned(),
                });
            }
            out.push(((*k).to_owned(), (*v).to_owned()));
        }
        out.sort();
        if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateLabel { metric: metric.to_owned(), label: w[0].0.clone() });
        }
        Ok(Labels(out))
    }

    /// No labels.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::Labels::empty().is_empty());
    /// ```
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// The value of label `name`, if present.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = watchpost::Labels::new("m", &[("room", "a")])?;
    /// assert_eq!(l.get("room"), Some("a"));
    /// assert_eq!(l.get("other"), None);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    /// The pairs, sorted by label name.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = watchpost::Labels::new("m", &[("b", "2"), ("a", "1")])?;
    /// let names: Vec<&str> = l.iter().map(|(k, _)| k).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::Labels::empty().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::Labels::empty().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these labels equal `pairs` taken as a set (in any order).
    pub(crate) fn matches_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            // pairs given sorted (one label, or a call site that sorts) compare in one pass
            && (self.0.iter().zip(pairs).all(|((k, v), (pk, pv))| k == pk && v == pv)
                || pairs.iter().all(|(k, v)| self.get(k) == Some(*v)))
    }
}

impl fmt::Display for Labels {
    /// Prometheus style: `{a="1",b="2"}` with `\`, `"` and newlines escaped; empty labels print nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(k)?;
            f.write_str("=\"")?;
            let mut rest = v.as_str();
            while let Some(i) = rest.find(['\\', '"', '\n']) {
                f.write_str(&rest[..i])?;
                f.write_str(match rest.as_bytes()[i] {
                    b'\\' => "\\\\",
                    b'"' => "\\\"",
                    _ => "\\n",
                })?;
                rest = &rest[i + 1..];
            }
            f.write_str(rest)?;
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// A series' identity: a metric name plus its labels.
///
/// # Examples
///
/// ```
/// use watchpost::SeriesKey;
/// let key = SeriesKey::new("messages_total", &[("room", "general")])?;
/// assert_eq!(key.name(), "messages_total");
/// assert_eq!(key.to_string(), r#"messages_total{room="general"}"#);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeriesKey {
    name: String,
    labels: Labels,
}

/// Reads `{"name": …, "labels": {…}}` and validates it as [`SeriesKey::new`] does.
impl<'de> Deserialize<'de> for SeriesKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            name: String,
            labels: Labels,
        }
        let Raw { name, labels } = Raw::deserialize(deserializer)?;
        validate_metric_name(&name).map_err(serde::de::Error::custom)?;
        Ok(SeriesKey { name, labels })
    }
}

impl SeriesKey {
    /// Validates `name` and `labels` and builds the key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`], [`Error::InvalidLabelName`] or [`Error::DuplicateLabel`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::SeriesKey::new("", &[]).is_err());
    /// ```
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Result<Self> {
        validate_metric_name(name)?;
        Ok(SeriesKey { name: name.to_owned(), labels: Labels::new(name, labels)? })
    }

    /// Builds a key from parts that are already valid.
    pub(crate) fn from_parts(name: String, labels: Labels) -> Self {
        SeriesKey { name, labels }
    }

    /// The metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::SeriesKey::new("up", &[])?.name(), "up");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The labels.
    ///
    /// # Examples
    ///
    /// ```
    /// let key = watchpost::SeriesKey::new("up", &[("job", "chat")])?;
    /// assert_eq!(key.labels().get("job"), Some("chat"));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Whether this key equals `name` plus `pairs` (in any order).
    pub(crate) fn matches(&self, name: &str, pairs: &[(&str, &str)]) -> bool {
        self.name == name && self.labels.matches_pairs(pairs)
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.labels)
    }
}

/// Dense index of a series inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SeriesId(pub(crate) u32);

impl SeriesId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// A hash of a name and a label set that does not depend on label order, so a
/// lookup needs neither sorting nor allocation.
pub(crate) fn lookup_hash<S: BuildHasher>(state: &S, name: &str, pairs: &[(&str, &str)]) -> u64 {
    let mut h = state.build_hasher();
    name.hash(&mut h);
    pairs.len().hash(&mut h);
    let mut combined: u64 = h.finish();
    for (k, v) in pairs {
        let mut lh = state.build_hasher();
        k.hash(&mut lh);
        v.hash(&mut lh);
        combined = combined.wrapping_add(lh.finish());
    }
    combined
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference grammar, written independently as a regex-like check over chars.
    fn reference_metric(s: &str) -> bool {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_lowercase()
                    || c.is_ascii_uppercase()
                    || c == '_'
                    || c == ':'
                    || (i > 0 && c.is_ascii_digit())
            })
    }

    fn reference_label(s: &str) -> bool {
        !s.is_empty()
            && !s.starts_with("__")
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_lowercase()
                    || c.is_ascii_uppercase()
                    || c == '_'
                    || (i > 0 && c.is_ascii_digit())
            })
    }

    proptest! {
        #[test]
        fn metric_names_follow_grammar(s in "[a-zA-Z0-9_:\\-. é]{0,12}") {
            prop_assert_eq!(validate_metric_name(&s).is_ok(), reference_metric(&s));
        }

        #[test]
        fn valid_metric_names_accepted(s in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}") {
            prop_assert!(validate_metric_name(&s).is_ok());
        }

        #[test]
        fn label_names_follow_grammar(s in "[a-zA-Z0-9_:\\-. ]{0,12}") {
            prop_assert_eq!(is_valid_label_name(&s), reference_label(&s));
        }

        #[test]
        fn lookup_hash_ignores_order(a in "[a-z]{1,5}", b in "[a-z]{1,5}") {
            let st = std::collections::hash_map::RandomState::new();
            let h1 = lookup_hash(&st, "m", &[("x", &a), ("y", &b)]);
            let h2 = lookup_hash(&st, "m", &[("y", &b), ("x", &a)]);
            prop_assert_eq!(h1, h2);
        }
    }

    #[test]
    fn errors_quote_the_bad_text() {
        let e = validate_metric_name("cpu usage").unwrap_err().to_string();
        assert!(e.contains("\"cpu usage\""), "{e}");
        let e = Labels::new("m", &[("bad-label", "x")]).unwrap_err().to_string();
        assert!(e.contains("\"bad-label\""), "{e}");
        let e = Labels::new("m", &[("a", "1"), ("a", "2")]).unwrap_err().to_string();
        assert!(e.contains("\"a\""), "{e}");
    }

    #[test]
    fn limits_name_the_offending_part() {
        let l = KeyLimits { name_bytes: 8, label_value_bytes: 4, labels: 2 };
        assert!(l.check("abcdefgh", &[("k", "1234")]).is_ok());
        let e = l.check("abcdefghi", &[]).unwrap_err();
        assert!(matches!(e, Error::NameTooLong { len: 9, limit: 8, .. }), "{e}");
        let e = l.check("m", &[("labelname", "x")]).unwrap_err();
        assert!(e.to_string().contains("\"labelname\" is 9 bytes long"), "{e}");
        let e = l.check("m", &[("k", "12345")]).unwrap_err().to_string();
        assert_eq!(e, "value of label \"k\" on metric \"m\" is 5 bytes long, over the limit of 4");
        let e = l.check("m", &[("a", ""), ("b", ""), ("c", "")]).unwrap_err();
        assert!(matches!(e, Error::TooManyLabels { count: 3, limit: 2, .. }), "{e}");
        // a huge name is quoted by its start only, cut at a character boundary
        let long = "é".repeat(1000);
        let e = KeyLimits { name_bytes: 256, ..l }.check(&long, &[]).unwrap_err().to_string();
        assert!(e.len() < 200 && e.contains("…") && e.contains("2000 bytes"), "{e}");
        assert!(KeyLimits::NONE.check(&long, &[("k", &long)]).is_ok());
    }

    #[test]
    fn labels_display_escapes() {
        let l = Labels::new("m", &[("v", "a\"b\\c\nd")]).unwrap();
        assert_eq!(l.to_string(), r#"{v="a\"b\\c\nd"}"#);
    }
}
