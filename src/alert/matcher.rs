//! Label matchers (`=`, `!=`, `=~`, `!~`), shared by rules, silences and inhibit rules.

use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};

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
/// expressions are anchored at both ends, as in Prometheus: the pattern must
/// be a valid expression on its own and is compiled as `^(?s:pattern)$`, so
/// `room=~"gen.*"` matches `general` but not `in-general`, no pattern can
/// escape the anchors (`gen)|(x` is rejected), and `.` matches a newline, as
/// in Prometheus 3.
///
/// The printed form (`Display`) parses back to the same matcher: the value is
/// quoted, with `\`, `"` and a newline escaped as `\\`, `\"` and `\n`.
///
/// Besides its series' labels (without `__name__`, as in Prometheus), an
/// alert carries `alertname` (the rule name), `severity` and the rule's
/// labels; silences and inhibit rules may match on those too.
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
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored(name, value)?),
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
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

impl FromStr for Matcher {
    type Err = Error;

    /// Parses `name="value"`, `name!="value"`, `name=~"regex"` or `name!~"regex"`,
    /// as Alertmanager does. Spaces around the name, the operator and the value
    /// are ignored. Double quotes around the value are optional; `\"`, `\\` and
    /// `\n` are escapes for `"`, `\` and a newline, any other backslash is kept
    /// as it is (so `=~"a\.b"` is the regex `a\.b`), and a `"` inside the value
    /// must be escaped.
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
        let (quoted, body) = match raw.strip_prefix('"') {
            Some(inner) => (true, inner),
            None => (false, raw),
        };
        let mut value = String::with_capacity(body.len());
        let mut closed = false;
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('"' | '\\')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None if quoted => return Err(bad("has an unterminated quote")),
                    None => value.push('\\'),
                },
                '"' if quoted => {
                    if !chars.as_str().is_empty() {
                        return Err(bad("has text after the closing quote"));
                    }
                    closed = true;
                }
                '"' => return Err(bad("has an unescaped quote in an unquoted value")),
                c => value.push(c),
            }
        }
        if quoted && !closed {
            return Err(bad("has an unterminated quote"));
        }
        Matcher::new(name, op, &value)
    }
}

/// Compiles `pattern` anchored at both ends, with `.` matching a newline.
///
/// The pattern is first compiled on its own, so that a pattern whose
/// parentheses do not balance (`gen)|(x`) cannot close the anchoring group and
/// match outside the anchors.
fn anchored(name: &str, pattern: &str) -> Result<Regex> {
    let invalid = |e: regex::Error| Error::InvalidConfig {
        field: "matcher",
        reason: format!("regex {pattern:?} for label {name:?} is invalid: {e}"),
    };
    let compile = |p: &str| {
        RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_SIZE_LIMIT).build()
    };
    compile(pattern).map_err(invalid)?;
    compile(&format!("^(?s:{pattern})$")).map_err(invalid)
}

/// Most heap a matcher's compiled regular expression may take (the `regex`
/// crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 18;

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
    use proptest::prelude::*;

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

    #[test]
    fn a_pattern_cannot_escape_the_anchors() {
        // compiled as `^(?:gen)|(x)$` this matched every value starting with "gen"
        // or ending with "x", such as "in-box"
        let err = Matcher::regex("room", "gen)|(x").unwrap_err().to_string();
        assert!(err.contains(r#""gen)|(x""#), "{err}");
        assert!(r#"room=~"gen)|(x""#.parse::<Matcher>().is_err());
        // flags set by the pattern stay inside the anchoring group
        let m = Matcher::regex("room", "(?m)gen").unwrap();
        assert!(!m.matches(Some("gen\nx")));
        assert!(!m.matches(Some("x\ngen")));
    }

    #[test]
    fn dot_matches_a_newline_as_in_prometheus_3() {
        let m = Matcher::regex("msg", "a.b").unwrap();
        assert!(m.matches(Some("a\nb")));
        assert!(Matcher::regex("msg", ".*").unwrap().matches(Some("two\nlines")));
        // a pattern may still turn it off
        assert!(!Matcher::regex("msg", "(?-s)a.b").unwrap().matches(Some("a\nb")));
    }

    #[test]
    fn printed_values_escape_only_backslash_quote_and_newline() {
        let m = Matcher::equal("v", "tab\there \"q\" back\\slash\nnl\r\u{1b}é");
        assert_eq!(m.to_string(), "v=\"tab\there \\\"q\\\" back\\\\slash\\nnl\r\u{1b}é\"");
        assert_eq!(m.to_string().parse::<Matcher>().unwrap(), m);
    }

    #[test]
    fn parses_escapes_as_alertmanager_does() {
        let cases = [
            (r#"a="x\"y""#, "x\"y"),
            (r#"a="x\\y""#, "x\\y"),
            (r#"a="x\ny""#, "x\ny"),
            // any other escape keeps its backslash, so regexes read naturally
            (r#"a="x\.y""#, "x\\.y"),
            (r#"a="x\ty""#, "x\\ty"),
            (r"a=x\", "x\\"),
            (r#"a = "  spaced  "  "#, "  spaced  "),
            (r#"a="""#, ""),
        ];
        for (text, value) in cases {
            assert_eq!(text.parse::<Matcher>().unwrap().value(), value, "{text}");
        }
        for text in [r#"a="x"y""#, r#"a="x\""#, r#"a="x"#, r#"a=x"y"#, r#"a="x" y"#] {
            let err = text.parse::<Matcher>().unwrap_err().to_string();
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
    }

    fn any_op() -> impl Strategy<Value = MatchOp> {
        prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::Regex),
            Just(MatchOp::NotRegex)
        ]
    }

    /// Arbitrary Unicode, with the characters that need escaping made common.
    fn any_value() -> impl Strategy<Value = String> {
        let special = prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\r'),
            Just('\t'),
            Just(' '),
            Just('='),
            Just('~'),
            Just('!'),
            any::<char>()
        ];
        prop::collection::vec(special, 0..24).prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn print_then_parse_gives_the_same_matcher(
            name in "[a-zA-Z_][a-zA-Z0-9_]{0,12}",
            op in any_op(),
            raw in any_value(),
            literal in any::<bool>(),
            probe in any_value(),
        ) {
            // half the regex cases are the value escaped (always valid), the rest
            // whatever of the raw value compiles
            let value = if literal && matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
                regex::escape(&raw)
            } else {
                raw.clone()
            };
            let Ok(m) = Matcher::new(&name, op, &value) else {
                prop_assume!(false);
                unreachable!()
            };
            let text = m.to_string();
            let back: Matcher = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_string(), text);
            for v in [probe.as_str(), raw.as_str(), value.as_str(), ""] {
                prop_assert_eq!(back.matches(Some(v)), m.matches(Some(v)));
            }
            if literal && op == MatchOp::Regex {
                prop_assert!(m.matches(Some(&raw)));
            }
        }
    }
}
