//! Annotation templates: `{{value}}`, `{{threshold}}`, `{{labels.room}}` and friends.

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// One placeholder in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value,
    Threshold,
    Rule,
    Metric,
    Series,
    Severity,
    State,
    Label(String),
}

/// A title or message template, parsed and checked when the rule is built.
///
/// Placeholders: `{{value}}` (the condition's current value, `n/a` when there
/// is none), `{{threshold}}`, `{{rule}}`, `{{metric}}`, `{{series}}`
/// (`name{labels}`), `{{severity}}`, `{{state}}` and `{{labels.NAME}}` (the
/// alert's label `NAME`, empty when absent; `{{labels.__name__}}` is the
/// metric, although the alert's labels do not carry it). Numbers print with at most two
/// decimals (three significant digits below 1) and no trailing zeros.
///
/// # Examples
///
/// ```
/// use watchpost::alert::Template;
/// let t = Template::parse("CPU at {{value}}% on {{labels.host}}")?;
/// assert_eq!(t.source(), "CPU at {{value}}% on {{labels.host}}");
/// assert!(Template::parse("{{valu}}").is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template is rendered against.
pub(crate) struct RenderContext<'a> {
    pub(crate) value: Option<f64>,
    pub(crate) threshold: Option<f64>,
    pub(crate) rule: &'a str,
    pub(crate) metric: &'a str,
    pub(crate) series: &'a str,
    pub(crate) severity: &'a str,
    pub(crate) state: &'a str,
    pub(crate) label: &'a dyn Fn(&str) -> Option<&'a str>,
}

impl Template {
    /// Parses `source`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] quoting an unknown placeholder or an unclosed `{{`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::alert::Template::parse("open {{value").is_err());
    /// ```
    pub fn parse(source: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| Error::InvalidConfig {
                field: "template",
                reason: format!("unclosed \"{{{{\" in {source:?}"),
            })?;
            let name = after[..end].trim();
            let part = match name {
                "value" => Part::Value,
                "threshold" => Part::Threshold,
                "rule" => Part::Rule,
                // The alert's labels carry no `__name__` (as in Prometheus);
                // the name still reads as the metric.
                "metric" | "labels.__name__" => Part::Metric,
                "series" => Part::Series,
                "severity" => Part::Severity,
                "state" => Part::State,
                _ => match name.strip_prefix("labels.") {
                    Some(label) if !label.is_empty() => Part::Label(label.to_owned()),
                    _ => {
                        return Err(Error::InvalidConfig {
                            field: "template",
                            reason: format!(
                                "unknown placeholder {name:?} in {source:?}; known: value, \
                                 threshold, rule, metric, series, severity, state, labels.NAME"
                            ),
                        });
                    }
                },
            };
            parts.push(part);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    /// The text the template was parsed from.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = watchpost::alert::Template::parse("hi")?;
    /// assert_eq!(t.source(), "hi");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn render(&self, cx: &RenderContext<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value => push_number(&mut out, cx.value),
                Part::Threshold => push_number(&mut out, cx.threshold),
                Part::Rule => out.push_str(cx.rule),
                Part::Metric => out.push_str(cx.metric),
                Part::Series => out.push_str(cx.series),
                Part::Severity => out.push_str(cx.severity),
                Part::State => out.push_str(cx.state),
                Part::Label(name) => out.push_str((cx.label)(name).unwrap_or("")),
            }
        }
        out
    }
}

/// Writes `v` with at most two decimals, or three significant digits below 1
/// (latencies in seconds stay readable), without trailing zeros; `n/a` for `None`.
pub(crate) fn push_number(out: &mut String, v: Option<f64>) {
    match v {
        None => out.push_str("n/a"),
        Some(v) => {
            let start = out.len();
            let decimals = if v != 0.0 && v.abs() < 1.0 {
                #[allow(clippy::cast_possible_truncation, reason = "log10 of a value in (0, 1)")]
                let magnitude = v.abs().log10().floor() as i32;
                usize::try_from(2 - magnitude).unwrap_or(2).min(12)
            } else {
                2
            };
            let _ = write!(out, "{v:.decimals$}");
            if out[start..].contains('.') {
                let trimmed = out.trim_end_matches('0').trim_end_matches('.').len();
                out.truncate(trimmed);
            }
            if &out[start..] == "-0" {
                out.truncate(start);
                out.push('0');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, value: Option<f64>) -> String {
        let label = |name: &str| if name == "room" { Some("general") } else { None };
        Template::parse(src).unwrap().render(&RenderContext {
            value,
            threshold: Some(80.0),
            rule: "r",
            metric: "m",
            series: "m{room=\"general\"}",
            severity: "warning",
            state: "firing",
            label: &label,
        })
    }

    #[test]
    fn renders_every_placeholder() {
        assert_eq!(
            render("{{rule}}/{{metric}}/{{series}}/{{severity}}/{{state}}", None),
            "r/m/m{room=\"general\"}/warning/firing"
        );
        assert_eq!(
            render("{{ value }} > {{threshold}} in {{labels.room}}{{labels.x}}!", Some(81.256)),
            "81.26 > 80 in general!"
        );
        assert_eq!(render("{{value}}", None), "n/a");
        assert_eq!(render("{{value}}", Some(-0.001)), "-0.001");
        assert_eq!(render("{{value}}", Some(0.047_512)), "0.0475");
        assert_eq!(render("{{value}}", Some(0.5)), "0.5");
        assert_eq!(render("{{value}}", Some(-1e-15)), "0");
        assert_eq!(render("{{value}}", Some(1.5)), "1.5");
        assert_eq!(render("plain", None), "plain");
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        for bad in ["{{nope}}", "{{labels.}}", "a {{value"] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
