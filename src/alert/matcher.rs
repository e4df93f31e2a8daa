//! Label matchers (`=`, `!=`, `=~`, `!~`), shared by rules, silences and inhibit rules.

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::error::{Error, Result};

/// How a [`Matcher`] compares a label value.
///
/// # Examples
///
/// ```
/// use watchpost::alert::MatchOp;
/// assert_eq!(MatchOp::NotRegex.to_string(), "!~");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// The value equals the given string (`=`).
    Equal,
    /// The value differs from the given string (`!=`).
    NotEqual,
    /// The whole value matches the regular expression (`=~`).
    Regex,
    /// The whole value does not match the regular expression (`!~`).
    NotRegex,
}

impl MatchOp {
    /// The operator as written in a matcher: `=`, `!=`, `=~` or `!~`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::MatchOp::Equal.as_str(), "=");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label, Prometheus style.
///
/// A label that is absent has the value `""`, so `room!="x"` matches a series
/// without a `room` label and `room=""` selects exactly those series. Regular
/// expressions are anchored at both ends, as in Prometheus: `room=~"gen.*"`
/// matches `general` but not `in-general`.
///
/// Besides its series' labels, an alert carries `alertname` (the rule name),
/// `severity` and `__name__` (the metric name); silences and inhibit rules may
/// match on those too.
///
/// # Examples
///
/// ```
/// use watchpost::alert::Matcher;
/// let m: Matcher = r#"room=~"general|support""#.parse()?;
/// assert!(m.matches(Some("support")));
/// assert!(!m.matches(Some("random")));
/// assert!(Matcher::not_equal("room", "x").matches(None));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher with operator `op`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `name` is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`)
    /// or, for [`MatchOp::Regex`] and [`MatchOp::NotRegex`], if `value` is not a valid
    /// regular expression. The message quotes the bad text.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{MatchOp, Matcher};
    /// assert!(Matcher::new("room", MatchOp::Regex, "gen(").is_err());
    /// assert!(Matcher::new("9room", MatchOp::Equal, "a").is_err());
    /// assert!(Matcher::new("room", MatchOp::NotRegex, "dev-.*").is_ok());
    /// ```
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self> {
        if !is_matcher_name(name) {
            return Err(Error::InvalidConfig {
                field: "matcher",
                reason: format!("label name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
            });
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| Error::InvalidConfig {
                    field: "matcher",
                    reason: format!("regex {value:?} for label {name:?} is invalid: {e}"),
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher { name: name.to_owned(), op, value: value.to_owned(), regex })
    }

    /// `name="value"`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid label name; use [`Matcher::new`] for names that are not constants.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::alert::Matcher::equal("room", "general");
    /// assert_eq!(m.to_string(), r#"room="general""#);
    /// ```
    #[track_caller]
    pub fn equal(name: &str, value: &str) -> Self {
        Matcher::new(name, MatchOp::Equal, value).expect("valid label name")
    }

    /// `name!="value"`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid label name; use [`Matcher::new`] for names that are not constants.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::alert::Matcher::not_equal("room", "test");
    /// assert!(m.matches(Some("general")));
    /// ```
    #[track_caller]
    pub fn not_equal(name: &str, value: &str) -> Self {
        Matcher::new(name, MatchOp::NotEqual, value).expect("valid label name")
    }

    /// `name=~"pattern"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad name or pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::alert::Matcher::regex("mount", "/(home|var)")?;
    /// assert!(m.matches(Some("/var")));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn regex(name: &str, pattern: &str) -> Result<Self> {
        Matcher::new(name, MatchOp::Regex, pattern)
    }

    /// `name!~"pattern"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad name or pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::alert::Matcher::not_regex("mount", "/snap/.*")?;
    /// assert!(!m.matches(Some("/snap/core")));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn not_regex(name: &str, pattern: &str) -> Result<Self> {
        Matcher::new(name, MatchOp::NotRegex, pattern)
    }

    /// The label name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Matcher::equal("room", "a").name(), "room");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::alert::{MatchOp, Matcher};
    /// assert_eq!(Matcher::equal("room", "a").op(), MatchOp::Equal);
    /// ```
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::alert::Matcher::equal("room", "a").value(), "a");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label with value `value` (`None` when the label is absent) matches.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = watchpost::alert::Matcher::equal("room", "");
    /// assert!(m.matches(None));
    /// ```
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl FromStr for Matcher {
    type Err = Error;

    /// Parses `name=value`, `name!="value"`, `name=~"regex"` or `name!~"regex"`.
    /// Double quotes around the value are optional; inside them `\"` and `\\` are escapes.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidConfig {
            field: "matcher",
            reason: format!("{s:?} {why}; expected name=\"value\", !=, =~ or !~"),
        };
        let pos = s.find(['=', '!']).ok_or_else(|| bad("has no operator"))?;
        let name = s[..pos].trim();
        let rest = &s[pos..];
        let (op, raw) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(bad("has an unknown operator"));
        };
        let raw = raw.trim();
        let value = if let Some(inner) = raw.strip_prefix('"') {
            let inner = inner.strip_suffix('"').ok_or_else(|| bad("has an unterminated quote"))?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some(other) => out.push(other),
                        None => return Err(bad("ends with a lone backslash")),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            raw.to_owned()
        };
        Matcher::new(name, op, &value)
    }
}

/// Label names for matchers: the label grammar, plus the reserved `__name__`.
fn is_matcher_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
}

/// Whether every matcher accepts the labels looked up through `get`.
pub(crate) fn all_match<'a>(matchers: &[Matcher], get: impl Fn(&str) -> Option<&'a str>) -> bool {
    matchers.iter().all(|m| m.matches(get(m.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_operators() {
        let cases = [
            ("room=general", MatchOp::Equal, "general"),
            (r#"room = "gen eral""#, MatchOp::Equal, "gen eral"),
            (r#"room!="x""#, MatchOp::NotEqual, "x"),
            (r#"room=~"a|b""#, MatchOp::Regex, "a|b"),
            (r#"room!~"a.*""#, MatchOp::NotRegex, "a.*"),
            (r#"room="say \"hi\"""#, MatchOp::Equal, "say \"hi\""),
        ];
        for (text, op, value) in cases {
            let m: Matcher = text.parse().unwrap();
            assert_eq!((m.name(), m.op(), m.value()), ("room", op, value), "{text}");
        }
    }

    #[test]
    fn rejects_bad_text_quoting_it() {
        for text in ["room", "=x", r#"room="x"#, "9a=b", r#"a=~"(""#] {
            let err = text.parse::<Matcher>().unwrap_err().to_string();
            assert!(err.contains("matcher"), "{err}");
        }
        let err = Matcher::regex("a", "(").unwrap_err().to_string();
        assert!(err.contains("\"(\""), "{err}");
    }

    #[test]
    fn regex_is_anchored_and_absent_is_empty() {
        let m = Matcher::regex("room", "gen.*").unwrap();
        assert!(m.matches(Some("general")));
        assert!(!m.matches(Some("in-general")));
        assert!(!m.matches(None));
        assert!(Matcher::regex("room", ".*").unwrap().matches(None));
        assert!(Matcher::not_regex("room", "x+").unwrap().matches(None));
        assert!(Matcher::equal("__name__", "cpu").matches(Some("cpu")));
    }

    #[test]
    fn display_round_trips() {
        let m = Matcher::regex("room", "a\"b|c").unwrap();
        let back: Matcher = m.to_string().parse().unwrap();
        assert_eq!(back, m);
    }
}
