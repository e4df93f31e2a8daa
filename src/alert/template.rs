//! Annotation templates: `{{value}}`, `{{threshold}}`, `{{labels.room}}` and friends.

use crate::error::{Error, Result};
use crate::format::{Unit, format_number};

/// One placeholder in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value,
    Threshold,
    ValueWithUnit,
    ThresholdWithUnit,
    Rule,
    Metric,
    Series,
    Severity,
    State,
    Label(String),
}

/// A title or message template, parsed and checked when the rule is built.
///
/// Placeholders: `{{value}}` (the condition's current value), `{{threshold}}`,
/// `{{value_with_unit}}` and `{{threshold_with_unit}}` (the same with the
/// metric's unit, see [`Unit::of_metric`](crate::Unit::of_metric): `25.3 ms`,
/// `1.5 GiB`, `85%`), `{{rule}}`, `{{metric}}`, `{{series}}`
/// (`name{labels}`), `{{severity}}`, `{{state}}` and `{{labels.NAME}}` (the
/// alert's label `NAME`, empty when absent; `{{labels.__name__}}` is the
/// metric, although the alert's labels do not carry it). Numbers print with
/// [`format_number`](crate::format_number): at most 4 significant digits, no
/// trailing zeros, no floating-point noise.
///
/// When the condition has no value (its window holds no data, or the rule
/// watches for absence), a template that shows the value reads
/// `no data for METRIC for WINDOW` instead, such as `no data for
/// message_latency_seconds:p90 for 5 min`: a sentence, not `is n/a s`.
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
    /// How far back the condition reads, for the no-data sentence.
    pub(crate) window_ms: i64,
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
                "value_with_unit" => Part::ValueWithUnit,
                "threshold_with_unit" => Part::ThresholdWithUnit,
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
                                 threshold, value_with_unit, threshold_with_unit, rule, metric, \
                                 series, severity, state, labels.NAME"
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
        let shows_value = self.parts.iter().any(|p| matches!(p, Part::Value | Part::ValueWithUnit));
        if cx.value.is_none() && shows_value {
            return no_data_sentence(cx.metric, cx.window_ms);
        }
        let unit = Unit::of_metric(cx.metric);
        let number = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), format_number);
        let with_unit = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| unit.format(v));
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value => out.push_str(&number(cx.value)),
                Part::Threshold => out.push_str(&number(cx.threshold)),
                Part::ValueWithUnit => out.push_str(&with_unit(cx.value)),
                Part::ThresholdWithUnit => out.push_str(&with_unit(cx.threshold)),
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

/// Writes `v` with [`format_number`]; `n/a` for `None`. The log line's
/// `value=` and `threshold=` fields use it.
pub(crate) fn push_number(out: &mut String, v: Option<f64>) {
    match v {
        None => out.push_str("n/a"),
        Some(v) => out.push_str(&format_number(v)),
    }
}

/// `no data for METRIC for WINDOW`, or without the window when it is zero.
fn no_data_sentence(metric: &str, window_ms: i64) -> String {
    if window_ms > 0 {
        #[allow(clippy::cast_precision_loss, reason = "a window in ms is far below 2^52")]
        let window = Unit::Seconds.format(window_ms as f64 / 1000.0);
        format!("no data for {metric} for {window}")
    } else {
        format!("no data for {metric}")
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
            window_ms: 300_000,
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
        assert_eq!(render("{{value}}", Some(-0.001)), "-0.001");
        assert_eq!(render("{{value}}", Some(0.047_512)), "0.04751");
        assert_eq!(render("{{value}}", Some(0.5)), "0.5");
        assert_eq!(render("{{value}}", Some(0.003_000_000_000_000_000_5)), "0.003");
        assert_eq!(render("{{value}}", Some(1.5)), "1.5");
        assert_eq!(render("{{threshold}} {{value}}", Some(86_019.305_019_305_01)), "80 86019");
        assert_eq!(render("plain", None), "plain");
    }

    #[test]
    fn no_data_reads_as_a_sentence() {
        // Before: "p90 latency is n/a s".
        assert_eq!(render("p90 latency is {{value}} s", None), "no data for m for 5 min");
        assert_eq!(render("{{value_with_unit}} over", None), "no data for m for 5 min");
        // Templates without the value render as written.
        assert_eq!(render("{{metric}} above {{threshold}}", None), "m above 80");
    }

    #[test]
    fn units_come_from_the_metric() {
        let label = |_: &str| None;
        let render = |metric: &'static str, value: f64, threshold: f64| {
            Template::parse("{{value_with_unit}} (threshold {{threshold_with_unit}})")
                .unwrap()
                .render(&RenderContext {
                    value: Some(value),
                    threshold: Some(threshold),
                    window_ms: 0,
                    rule: "r",
                    metric,
                    series: metric,
                    severity: "warning",
                    state: "firing",
                    label: &label,
                })
        };
        assert_eq!(
            render("message_latency_seconds:p90", 0.045_123, 0.020),
            "45.12 ms (threshold 20 ms)"
        );
        assert_eq!(
            render("system_cpu_usage", 58.823_532_104_492_19, 80.0),
            "58.82% (threshold 80%)"
        );
        assert_eq!(render("heap_bytes", 3.0 * 1024.0 * 1024.0, 4096.0), "3 MiB (threshold 4 KiB)");
        assert_eq!(render("queue_depth", 12.0, 100.0), "12 (threshold 100)");
        assert_eq!(no_data_sentence("up", 0), "no data for up");
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        for bad in ["{{nope}}", "{{labels.}}", "a {{value"] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
