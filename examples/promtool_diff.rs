//! Drives an `Engine` through alerting scenarios for the differential test
//! against Prometheus (`scripts/promtool_diff.sh`).
//!
//! Reads scenarios as JSON (a file named by the first argument, or stdin),
//! runs each on a fresh engine with a `ManualClock` (one evaluation a minute
//! from time 0: set the clock, `record_at` the minute's samples, `flush`), and
//! prints one JSON line per scenario and minute with the firing alerts:
//!
//! ```text
//! {"scenario":"ops","minute":3,"firing":[{"alertname":"gt","severity":"warning","i":"a"}],"active":[…]}
//! ```
//!
//! Each alert is its labels as Prometheus forms them: the series labels
//! (without `__name__`), the rule's labels, `severity` and `alertname`.
//! `firing` also holds alerts paused in no data while firing (no resolve was
//! sent); `active` adds the pending ones and those paused otherwise.
//!
//! ```text
//! cargo run --features test-util --example promtool_diff -- scenarios.json
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use serde::Deserialize;
use watchpost::alert::{Aggregate, AlertRule, AlertState, CompareOp, Matcher, Severity};
use watchpost::{Engine, ManualClock};

#[derive(Deserialize)]
struct Scenario {
    name: String,
    minutes: u32,
    /// Seconds; `null` turns the staleness horizon off.
    #[serde(default = "default_staleness")]
    staleness_s: Option<u64>,
    series: Vec<Series>,
    rules: Vec<Rule>,
}

#[allow(clippy::unnecessary_wraps, reason = "serde's default for an Option field")]
fn default_staleness() -> Option<u64> {
    Some(300)
}

#[derive(Deserialize)]
struct Series {
    metric: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// One value a minute from minute 0; `null` is no sample.
    values: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    metric: String,
    /// Prometheus matcher text, `i="a"`, `env=~"pr.*"`.
    #[serde(default)]
    matchers: Vec<String>,
    /// `last`, `avg`, `min`, `max`, `sum`, `count`, `rate` or `quantile`.
    aggregate: String,
    #[serde(default)]
    quantile: f64,
    window_s: u64,
    /// `>`, `>=`, `<`, `<=`, `==` or `!=`.
    op: String,
    value: f64,
    #[serde(default)]
    for_s: u64,
    #[serde(default)]
    keep_firing_for_s: u64,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn default_severity() -> String {
    "warning".to_owned()
}

fn build_rule(r: &Rule) -> Result<AlertRule, Box<dyn std::error::Error>> {
    let aggregate = match r.aggregate.as_str() {
        "last" => Aggregate::Last,
        "avg" => Aggregate::Avg,
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "sum" => Aggregate::Sum,
        "count" => Aggregate::Count,
        "rate" => Aggregate::Rate,
        "quantile" => Aggregate::Quantile(r.quantile),
        other => return Err(format!("rule {}: unknown aggregate {other:?}", r.name).into()),
    };
    let op: CompareOp = r.op.parse().map_err(|e| format!("rule {}: {e}", r.name))?;
    let severity = match r.severity.as_str() {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "error" => Severity::Error,
        "critical" => Severity::Critical,
        other => return Err(format!("rule {}: unknown severity {other:?}", r.name).into()),
    };
    let mut b = AlertRule::builder(&r.name, &r.metric)
        .threshold(aggregate, Duration::from_secs(r.window_s), op, r.value)
        .pending_for(Duration::from_secs(r.for_s))
        .keep_firing_for(Duration::from_secs(r.keep_firing_for_s))
        .severity(severity)
        .without_flap_detection();
    for m in &r.matchers {
        b = b.matcher(m.parse::<Matcher>()?);
    }
    for (k, v) in &r.labels {
        b = b.label(k, v);
    }
    Ok(b.build()?)
}

fn run(s: &Scenario, out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::at_millis(0);
    let mut builder = Engine::builder()
        .clock(clock.clone())
        .without_system_source()
        .without_default_alert_rules()
        .without_anomaly_detection()
        .sample_interval(Duration::from_hours(24));
    if let Some(secs) = s.staleness_s {
        builder = builder.staleness_horizon(Duration::from_secs(secs));
    }
    for r in &s.rules {
        builder = builder.alert_rule(build_rule(r)?);
    }
    let rule_labels: BTreeMap<&str, (&str, &BTreeMap<String, String>)> =
        s.rules.iter().map(|r| (r.name.as_str(), (r.severity.as_str(), &r.labels))).collect();
    let engine = builder.build()?;
    for minute in 0..s.minutes {
        let t = i64::from(minute) * 60_000;
        clock.set_millis(t);
        let at = chrono::DateTime::from_timestamp_millis(t).ok_or("time out of range")?;
        for series in &s.series {
            if let Some(Some(v)) = series.values.get(minute as usize) {
                let labels: Vec<(&str, &str)> =
                    series.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                engine.record_at(&series.metric, &labels, at, *v)?;
            }
        }
        engine.flush()?;
        let (mut firing, mut active) = (Vec::new(), Vec::new());
        for a in engine.active_alerts() {
            // paused in no data while firing: no resolve was sent, it still fires
            let paused_firing = a.state == AlertState::NoData
                && a.firing_since_ms.is_some()
                && a.resolved_at_ms.is_none();
            let mut labels: BTreeMap<String, String> =
                a.series.labels().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            if let Some((severity, extra)) = rule_labels.get(a.rule.as_str()) {
                labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                labels.insert("severity".to_owned(), (*severity).to_owned());
            }
            labels.insert("alertname".to_owned(), a.rule.clone());
            if a.state.is_firing() || paused_firing {
                firing.push(labels.clone());
            }
            active.push(labels);
        }
        firing.sort();
        active.sort();
        let line = serde_json::json!(
            {"scenario": s.name, "minute": minute, "firing": firing, "active": active}
        );
        writeln!(out, "{line}")?;
    }
    engine.shutdown()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    match std::env::args().nth(1) {
        Some(path) => text = std::fs::read_to_string(path)?,
        None => {
            std::io::stdin().read_to_string(&mut text)?;
        }
    }
    let scenarios: Vec<Scenario> = serde_json::from_str(&text)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for s in &scenarios {
        run(s, &mut out).map_err(|e| format!("scenario {}: {e}", s.name))?;
    }
    out.flush()?;
    Ok(())
}
