//! Import of Prometheus alerting-rule files (a subset).
//!
//! Accepted: `groups[].rules[]` with `alert`, `expr`, `for`,
//! `keep_firing_for`, `labels` and `annotations`, where `expr` compares
//! one metric selector (`name{label="v", label=~"re"}`), bare or wrapped in
//! one `rate(...[w])` or `*_over_time(...[w])`, with a number. Anything
//! else is an error that quotes the expression and names what is not
//! supported.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::rule::{ConditionSpec, RuleSpec};
use crate::alert::{Aggregate, CompareOp, DEFAULT_WINDOW, MatchOp, Matcher, Severity};
use crate::error::{ConfigProblem, Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    #[serde(default)]
    #[allow(dead_code, reason = "the engine evaluates on every tick; accepted and ignored")]
    interval: Option<String>,
    #[serde(default)]
    rules: Vec<PromRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromRule {
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    record: Option<String>,
    expr: String,
    #[serde(default, rename = "for")]
    pending: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// What [`import_prometheus_rules`] made of a file.
///
/// # Examples
///
/// ```
/// let i = watchpost::config::import_prometheus_rules("groups: []", "empty.yml")?;
/// assert!(i.rules.is_empty() && i.notes.is_empty());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PrometheusImport {
    /// One rule per alerting rule, in file order.
    pub rules: Vec<RuleSpec>,
    /// What was accepted but has no exact counterpart (annotations other
    /// than `summary` and `description`, renamed duplicates).
    pub notes: Vec<String>,
}

/// Converts a Prometheus alerting-rule file (YAML) to rules.
///
/// | Prometheus | watchpost |
/// |---|---|
/// | `alert` | `name` (a repeated name gets `_SEVERITY` or `_N` appended, with a note) |
/// | `expr: m{l="v"} > 5` | `metric`, `matchers`, threshold on `last` over 5 m |
/// | `expr: rate(m[5m]) > 5` | threshold on `rate` over 5 m |
/// | `avg_`/`min_`/`max_`/`sum_`/`count_`/`last_over_time(m[w])`, `quantile_over_time(q, m[w])` | the same aggregate over `w` |
/// | `for`, `keep_firing_for` | the same |
/// | `labels.severity` (`info`, `warning`, `error`, `critical`) | `severity` |
/// | other `labels` | `labels` |
/// | `annotations.summary`, `annotations.description` | `title`, `message` (`{{ $value }}` → `{{value}}`, `{{ $labels.x }}` → `{{labels.x}}`) |
///
/// `number op selector` is turned around (`5 < m` is `m > 5`).
///
/// # Errors
///
/// [`Error::Config`] listing every rule that is outside the subset or
/// invalid, with its line, the expression quoted and what is not
/// supported: recording rules, aggregations (`sum by (...)`), binary
/// operations between vectors, arithmetic, `bool`, `offset`, `@`,
/// subqueries, other functions, templates beyond `$value` and `$labels`.
///
/// # Examples
///
/// ```
/// let yaml = r#"
/// groups:
///   - name: node
///     rules:
///       - alert: HostHighCpu
///         expr: avg_over_time(node_cpu_busy_percent{job="node"}[5m]) > 90
///         for: 10m
///         labels: { severity: critical }
///         annotations:
///           summary: "CPU busy on {{ $labels.instance }}"
///           description: "{{ $value }}% busy"
/// "#;
/// let import = watchpost::config::import_prometheus_rules(yaml, "node.yml")?;
/// let rule = import.rules[0].to_rule()?;
/// assert_eq!(rule.condition().to_string(), "avg over 300s > 90");
/// assert_eq!(rule.matchers()[0].to_string(), r#"job="node""#);
///
/// let bad = "groups: [{name: g, rules: [{alert: A, expr: 'sum by (job) (up) == 0'}]}]";
/// let err = watchpost::config::import_prometheus_rules(bad, "bad.yml").unwrap_err();
/// assert!(err.to_string().contains("aggregation `sum`"), "{err}");
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn import_prometheus_rules(text: &str, file: &str) -> Result<PrometheusImport> {
    let parsed: RuleFile = serde_norway::from_str(text).map_err(|e| {
        let loc = e.location();
        Error::Config {
            file: file.to_owned(),
            problems: vec![ConfigProblem {
                line: loc.as_ref().map(serde_norway::Location::line),
                column: loc.as_ref().map(serde_norway::Location::column),
                field: String::new(),
                message: e.to_string(),
            }],
        }
    })?;
    let mut out = PrometheusImport::default();
    let mut problems = Vec::new();
    let mut seen_alerts: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, group) in parsed.groups.iter().enumerate() {
        for (r, rule) in group.rules.iter().enumerate() {
            let field = format!("groups[{g}].rules[{r}]");
            let place = locate(text, rule, &mut seen_alerts);
            let problem = |message: String| ConfigProblem {
                line: place,
                column: place.map(|_| 1),
                field: field.clone(),
                message,
            };
            match convert(rule) {
                Ok(mut spec) => {
                    for key in rule.annotations.keys() {
                        if key != "summary" && key != "description" {
                            out.notes.push(format!(
                                "{field} ({}): annotation {key:?} has no counterpart and was dropped",
                                spec.name
                            ));
                        }
                    }
                    if out.rules.iter().any(|s| s.name == spec.name) {
                        let old = spec.name.clone();
                        let mut name = format!("{old}_{}", spec.severity);
                        let mut n = 2;
                        while out.rules.iter().any(|s| s.name == name) {
                            name = format!("{old}_{n}");
                            n += 1;
                        }
                        out.notes.push(format!("{field}: second alert {old:?} renamed {name:?}"));
                        spec.name = name;
                    }
                    match spec.to_rule() {
                        Ok(_) => out.rules.push(spec),
                        Err(e) => problems.push(problem(e.to_string())),
                    }
                }
                Err(message) => problems.push(problem(message)),
            }
        }
        let _ = &group.name;
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Config { file: file.to_owned(), problems })
    }
}

/// The line of the rule's `alert:` or `record:` key (YAML values carry no place).
fn locate<'a>(
    text: &str,
    rule: &'a PromRule,
    seen: &mut BTreeMap<&'a str, usize>,
) -> Option<usize> {
    let (key, name) = match (&rule.alert, &rule.record) {
        (Some(a), _) => ("alert:", a.as_str()),
        (None, Some(r)) => ("record:", r.as_str()),
        (None, None) => return None,
    };
    let nth = seen.entry(name).or_insert(0);
    let found = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim().trim_matches(|c| c == '"' || c == '\'') == name)
        })
        .nth(*nth)
        .map(|(i, _)| i + 1);
    *nth += 1;
    found
}

fn duration(what: &str, text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{what} {text:?} is not a duration: {e}"))
}

fn convert(rule: &PromRule) -> std::result::Result<RuleSpec, String> {
    let Some(name) = &rule.alert else {
        return Err(format!(
            "recording rule {:?} is not supported (only alerting rules are)",
            rule.record.as_deref().unwrap_or("")
        ));
    };
    let e = parse_expr(&rule.expr)
        .map_err(|why| format!("expr {:?}: {why} is not supported", rule.expr.trim()))?;
    let mut spec = RuleSpec::new(
        name.clone(),
        e.metric,
        ConditionSpec::Threshold {
            aggregate: e.aggregate,
            window: e.window,
            op: e.op,
            value: e.value,
        },
    );
    spec.matchers = e.matchers;
    if let Some(d) = &rule.pending {
        spec.pending_for = duration("for", d)?;
    }
    if let Some(d) = &rule.keep_firing_for {
        spec.keep_firing_for = duration("keep_firing_for", d)?;
    }
    for (k, v) in &rule.labels {
        if k == "severity" {
            spec.severity = match v.as_str() {
                "info" => Severity::Info,
                "warning" => Severity::Warning,
                "error" => Severity::Error,
                "critical" => Severity::Critical,
                other => {
                    return Err(format!(
                        "label severity {other:?} is not one of info, warning, error, critical"
                    ));
                }
            };
        } else {
            spec.labels.insert(k.clone(), v.clone());
        }
    }
    if let Some(s) = rule.annotations.get("summary") {
        spec.title = template(s).map_err(|w| format!("annotation summary {s:?}: {w}"))?;
    }
    if let Some(s) = rule.annotations.get("description") {
        spec.message = template(s).map_err(|w| format!("annotation description {s:?}: {w}"))?;
    }
    Ok(spec)
}

/// A Go template with `$value` and `$labels.x` only, in watchpost's syntax.
fn template(text: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("an unclosed `{{`".to_owned());
        };
        let inner = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        // `printf "%.2f" $value` and `$value | humanize*` print the value.
        let inner = inner
            .strip_prefix("printf")
            .map_or(inner, |p| p.trim_start().split_once(' ').map_or(p, |(_, arg)| arg.trim()));
        let inner = inner.split_once('|').map_or(inner, |(v, f)| {
            if f.trim().starts_with("humanize") { v.trim() } else { inner }
        });
        if inner == "$value" {
            out.push_str("{{value}}");
        } else if let Some(label) = inner.strip_prefix("$labels.") {
            out.push_str("{{labels.");
            out.push_str(label);
            out.push_str("}}");
        } else {
            return Err(format!(
                "the template action `{{{{{}}}}}` (only $value and $labels.NAME)",
                &after[..end]
            ));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The parts of an accepted expression.
#[derive(Debug, PartialEq)]
struct Expr {
    metric: String,
    matchers: Vec<String>,
    aggregate: Aggregate,
    window: Duration,
    op: CompareOp,
    value: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Dur(String),
    Punct(&'static str),
}

const PUNCT: [&str; 21] = [
    "==", "!=", ">=", "<=", "=~", "!~", ">", "<", "=", "(", ")", "{", "}", "[", "]", ",", "+", "-",
    "*", "/", "%",
];

fn lex(src: &str) -> std::result::Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut in_range = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '@' {
            return Err("the `@` modifier".to_owned());
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if in_range && c != ']' {
            let start = i;
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            toks.push(Tok::Dur(chars[start..i].iter().collect::<String>().trim().to_owned()));
        } else if c == '"' || c == '\'' || c == '`' {
            let mut lit = String::new();
            i += 1;
            loop {
                let Some(&ch2) = chars.get(i) else {
                    return Err("an unterminated string".to_owned());
                };
                i += 1;
                if ch2 == c {
                    break;
                }
                if ch2 == '\\' && c != '`' {
                    let Some(&esc) = chars.get(i) else {
                        return Err("an unterminated string".to_owned());
                    };
                    i += 1;
                    match esc {
                        'n' => lit.push('\n'),
                        't' => lit.push('\t'),
                        'r' => lit.push('\r'),
                        '\\' | '"' | '\'' => lit.push(esc),
                        other => {
                            lit.push('\\');
                            lit.push(other);
                        }
                    }
                } else {
                    lit.push(ch2);
                }
            }
            toks.push(Tok::Str(lit));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '+' || chars[i] == '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) => toks.push(Tok::Num(n)),
                // A duration outside brackets (after `offset`, say).
                Err(_) => toks.push(Tok::Dur(text)),
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.to_ascii_lowercase().as_str() {
                "inf" => toks.push(Tok::Num(f64::INFINITY)),
                "nan" => toks.push(Tok::Num(f64::NAN)),
                _ => toks.push(Tok::Ident(word)),
            }
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) else {
                return Err(format!("the character {c:?}"));
            };
            match *p {
                "[" => in_range = true,
                "]" => in_range = false,
                _ => {}
            }
            i += p.len();
            toks.push(Tok::Punct(p));
        }
    }
    Ok(toks)
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

fn flipped(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        other => other,
    }
}

fn parse_expr(src: &str) -> std::result::Result<Expr, String> {
    let toks = lex(src)?;
    let mut depth = 0i32;
    let mut cmp = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct("(" | "{" | "[") => depth += 1,
            Tok::Punct(")" | "}" | "]") => depth -= 1,
            Tok::Punct(p) if depth == 0 && p.parse::<CompareOp>().is_ok() => cmp.push(i),
            Tok::Punct(p @ ("+" | "*" | "/" | "%")) if depth == 0 => {
                return Err(format!("the arithmetic operator `{p}`"));
            }
            Tok::Punct("-") if depth == 0 && i > 0 && !matches!(toks[i - 1], Tok::Punct(_)) => {
                return Err("the arithmetic operator `-`".to_owned());
            }
            Tok::Ident(w) if depth == 0 && matches!(w.as_str(), "and" | "or" | "unless") => {
                return Err(format!("the set operator `{w}` between two vectors"));
            }
            Tok::Ident(w) if w == "offset" => return Err("the `offset` modifier".to_owned()),
            Tok::Ident(w) if w == "by" || w == "without" => {
                let agg = toks.iter().find_map(|t| match t {
                    Tok::Ident(a) if AGGREGATIONS.contains(&a.as_str()) => Some(a.as_str()),
                    _ => None,
                });
                return Err(match agg {
                    Some(a) => format!("the aggregation `{a}` grouped with `{w}`"),
                    None => format!("grouping with `{w}`"),
                });
            }
            _ => {}
        }
    }
    let &[at] = cmp.as_slice() else {
        return Err(if cmp.is_empty() {
            "an expression without a comparison with a number".to_owned()
        } else {
            "more than one comparison".to_owned()
        });
    };
    let Tok::Punct(p) = toks[at] else { unreachable!("comparisons are punctuation") };
    let mut op = p.parse::<CompareOp>().unwrap_or(CompareOp::Gt);
    let (mut left, mut right) = (&toks[..at], &toks[at + 1..]);
    if let Some(Tok::Ident(w)) = right.first()
        && w == "bool"
    {
        return Err("the `bool` modifier".to_owned());
    }
    if let Some(v) = number(left) {
        if number(right).is_some() {
            return Err("a comparison between two numbers".to_owned());
        }
        std::mem::swap(&mut left, &mut right);
        op = flipped(op);
        return finish(left, op, v);
    }
    let Some(v) = number(right) else {
        return Err("a binary operation between two vector expressions".to_owned());
    };
    finish(left, op, v)
}

fn number(toks: &[Tok]) -> Option<f64> {
    match toks {
        [Tok::Num(n)] | [Tok::Punct("+"), Tok::Num(n)] => Some(*n),
        [Tok::Punct("-"), Tok::Num(n)] => Some(-n),
        [Tok::Punct("("), inner @ .., Tok::Punct(")")] => number(inner),
        _ => None,
    }
}

fn finish(toks: &[Tok], op: CompareOp, value: f64) -> std::result::Result<Expr, String> {
    let (aggregate, window, sel) = match toks {
        [Tok::Ident(f), Tok::Punct("("), inner @ .., Tok::Punct(")")]
            if !AGGREGATIONS.contains(&f.as_str()) && !inner.is_empty() =>
        {
            let (aggregate, inner) = match f.as_str() {
                "rate" => (Aggregate::Rate, inner),
                "avg_over_time" => (Aggregate::Avg, inner),
                "min_over_time" => (Aggregate::Min, inner),
                "max_over_time" => (Aggregate::Max, inner),
                "sum_over_time" => (Aggregate::Sum, inner),
                "count_over_time" => (Aggregate::Count, inner),
                "last_over_time" => (Aggregate::Last, inner),
                "quantile_over_time" => match inner {
                    [Tok::Num(q), Tok::Punct(","), rest @ ..] => (Aggregate::Quantile(*q), rest),
                    _ => {
                        return Err(
                            "quantile_over_time without a number as its first argument".to_owned()
                        );
                    }
                },
                other => return Err(format!("the function `{other}`")),
            };
            let [sel @ .., Tok::Punct("["), Tok::Dur(d), Tok::Punct("]")] = inner else {
                return Err(format!("`{f}` without a range selector `[window]` as its argument"));
            };
            if d.contains(':') {
                return Err(format!("the subquery `[{d}]`"));
            }
            (aggregate, duration("range", d)?, sel)
        }
        [Tok::Ident(f), ..] if AGGREGATIONS.contains(&f.as_str()) => {
            return Err(format!("the aggregation `{f}`"));
        }
        [Tok::Ident(f), Tok::Punct("("), ..] => return Err(format!("the function `{f}`")),
        _ => (Aggregate::Last, DEFAULT_WINDOW, toks),
    };
    let (metric, matchers) = selector(sel)?;
    Ok(Expr { metric, matchers, aggregate, window, op, value })
}

fn selector(toks: &[Tok]) -> std::result::Result<(String, Vec<String>), String> {
    let (mut metric, body) = match toks {
        [Tok::Ident(m)] => return Ok((m.clone(), Vec::new())),
        [Tok::Ident(m), Tok::Punct("{"), body @ .., Tok::Punct("}")] => (Some(m.clone()), body),
        [Tok::Punct("{"), body @ .., Tok::Punct("}")] => (None, body),
        [.., Tok::Punct("]")] => return Err("a range selector outside a function".to_owned()),
        _ if toks.contains(&Tok::Punct("(")) => {
            return Err("a nested expression (one selector, optionally in one function)".to_owned());
        }
        _ => return Err("an expression that is not a metric selector".to_owned()),
    };
    let mut matchers = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let [Tok::Ident(name), Tok::Punct(p), Tok::Str(value), tail @ ..] = rest else {
            return Err("a label matcher that is not `name op \"value\"`".to_owned());
        };
        let op = match *p {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Regex,
            "!~" => MatchOp::NotRegex,
            other => return Err(format!("the matcher operator `{other}`")),
        };
        if name == "__name__" && op == MatchOp::Equal && metric.is_none() {
            metric = Some(value.clone());
        } else {
            let m = Matcher::new(name, op, value).map_err(|e| format!("the matcher ({e})"))?;
            matchers.push(m.to_string());
        }
        rest = match tail {
            [Tok::Punct(","), more @ ..] => more,
            [] => tail,
            _ => return Err("a label matcher list that is not comma-separated".to_owned()),
        };
    }
    let metric = metric.ok_or_else(|| "a selector without a metric name".to_owned())?;
    Ok((metric, matchers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Expr {
        parse_expr(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn err(src: &str) -> String {
        parse_expr(src).unwrap_err()
    }

    #[test]
    fn the_subset_parses() {
        let e = ok(r#"node_load1{job="node", instance=~"web-\\d+"} > 4"#);
        assert_eq!(e.metric, "node_load1");
        assert_eq!(e.matchers, [r#"job="node""#, r#"instance=~"web-\\d+""#]);
        assert_eq!(
            (e.aggregate, e.window, e.op, e.value),
            (Aggregate::Last, DEFAULT_WINDOW, CompareOp::Gt, 4.0)
        );
        let e = ok("rate(http_errors_total[5m]) >= 0.5");
        assert_eq!(
            (e.aggregate, e.window, e.op),
            (Aggregate::Rate, Duration::from_mins(5), CompareOp::Ge)
        );
        let e = ok("quantile_over_time(0.9, latency_seconds[10m]) > 1e-1");
        assert_eq!((e.aggregate, e.value), (Aggregate::Quantile(0.9), 0.1));
        let e = ok(r#"10 < {__name__="free_bytes", mount!="/boot",}"#);
        assert_eq!((e.metric.as_str(), e.op, e.value), ("free_bytes", CompareOp::Gt, 10.0));
        let e = ok("m < -1");
        assert_eq!(e.value, -1.0);
    }

    #[test]
    fn outside_the_subset_says_what() {
        assert!(
            err("sum by (job) (rate(x[5m])) > 1").contains("aggregation `sum` grouped with `by`")
        );
        assert!(err("sum(x) > 1").contains("aggregation `sum`"));
        assert!(err("a / b > 1").contains("arithmetic operator `/`"));
        assert!(err("a > b").contains("two vector expressions"));
        assert!(err("a > 1 and b > 1").contains("set operator `and`"));
        assert!(err("a > bool 1").contains("`bool`"));
        assert!(err("up").contains("without a comparison"));
        assert!(err("predict_linear(x[1h], 3600) < 0").contains("`predict_linear`"));
        assert!(err("max_over_time(x[1h:5m]) > 1").contains("subquery"));
        assert!(err("x[5m] > 1").contains("range selector outside"));
        assert!(err("x offset 5m > 1").contains("offset"));
        assert!(err("rate(x) > 1").contains("without a range selector"));
    }

    #[test]
    fn templates_translate_or_fail() {
        assert_eq!(
            template("{{ $labels.instance }} at {{ $value | humanizePercentage }}").unwrap(),
            "{{labels.instance}} at {{value}}"
        );
        assert_eq!(template(r#"{{ printf "%.2f" $value }}"#).unwrap(), "{{value}}");
        assert!(template("{{ range $x }}").unwrap_err().contains("range"));
    }
}
