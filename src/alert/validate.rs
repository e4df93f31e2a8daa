//! Validation: a [`RuleBuilder`] becomes an [`AlertRule`] only if every part holds.

use std::time::Duration;

use crate::alert::builder::{RecoverySpec, RuleBuilder};
use crate::alert::condition::Condition;
use crate::alert::rule::{AlertRule, duration_ms, invalid};
use crate::alert::template::Template;
use crate::error::Result;
use crate::key::validate_metric_name;

impl RuleBuilder {
    /// Validates and builds the rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) (quoting the bad value) when the name is empty,
    /// a label or matcher name is invalid, no condition was set, a threshold is
    /// not finite, a window or duration is zero or too large, a quantile is
    /// outside [0, 1], `m_of_n` is not `1 ≤ m ≤ n ≤ 64` or is used with an
    /// absence condition, a recovery threshold is given for an absence
    /// condition, or a template has an unknown placeholder;
    /// [`Error::InvalidMetricName`](crate::Error::InvalidMetricName) for a bad metric name.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::alert::AlertRule::builder("a", "m").build().unwrap_err();
    /// assert!(err.to_string().contains("condition"));
    /// ```
    pub fn build(self) -> Result<AlertRule> {
        if self.name.trim().is_empty() {
            return Err(invalid("rule.name", format!("{:?} must not be empty", self.name)));
        }
        validate_metric_name(&self.metric)?;
        if let Some(bad) = &self.bad_matcher_name {
            return Err(invalid(
                "matcher",
                format!("label name {bad:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        let condition = self.condition.ok_or_else(|| {
            invalid("rule.condition", format!("rule {:?} has no condition", self.name))
        })?;
        condition.validate("rule.condition")?;
        let recovery = match self.recovery {
            None => None,
            Some(RecoverySpec::Full(c)) => Some(c),
            Some(RecoverySpec::Threshold(op, value)) => match &condition {
                Condition::Threshold { aggregate, window, .. } => {
                    Some(Condition::Threshold { aggregate: *aggregate, window: *window, op, value })
                }
                other => {
                    return Err(invalid(
                        "rule.recovery",
                        format!(
                            "rule {:?}: a recovery threshold needs a threshold condition, not {other}",
                            self.name
                        ),
                    ));
                }
            },
        };
        if let Some(r) = &recovery {
            r.validate("rule.recovery")?;
        }
        if let Some((m, n)) = self.m_of_n {
            if !(1 <= m && m <= n && n <= 64) {
                return Err(invalid("rule.m_of_n", format!("{m} of {n} needs 1 <= m <= n <= 64")));
            }
            if matches!(condition, Condition::Absent { .. }) {
                return Err(invalid(
                    "rule.m_of_n",
                    format!("rule {:?}: m_of_n does not apply to an absence condition", self.name),
                ));
            }
        }
        let mut labels = Vec::with_capacity(self.labels.len());
        for (k, v) in self.labels {
            if !crate::key::is_valid_label_name(&k) || k == "alertname" || k == "severity" {
                return Err(invalid(
                    "rule.labels",
                    format!("label name {k:?} is invalid or reserved (alertname, severity)"),
                ));
            }
            labels.retain(|(old, _): &(String, String)| *old != k);
            labels.push((k, v));
        }
        labels.sort();
        let pending_ms = checked_ms("rule.pending_for", self.pending)?;
        let keep_firing_ms = checked_ms("rule.keep_firing_for", self.keep_firing)?;
        let repeat_ms = match self.repeat {
            Some(d) if d.is_zero() => {
                return Err(invalid(
                    "rule.repeat_every",
                    "0s; omit it to use the default".to_owned(),
                ));
            }
            Some(d) => Some(checked_ms("rule.repeat_every", d)?),
            None => None,
        };
        Ok(AlertRule {
            family: self.family.unwrap_or_else(|| self.metric.clone()),
            name: self.name,
            metric: self.metric,
            matchers: self.matchers,
            condition,
            recovery,
            pending_ms,
            keep_firing_ms,
            m_of_n: self.m_of_n,
            no_data: self.no_data,
            severity: self.severity,
            labels,
            title: Template::parse(&self.title)?,
            message: Template::parse(&self.message)?,
            repeat_ms,
            flap: self.flap,
        })
    }
}

fn checked_ms(field: &'static str, d: Duration) -> Result<i64> {
    let ms = duration_ms(d);
    // Keep a wide margin so `now + ms` never overflows for any realistic `now`.
    if ms > i64::MAX / 4 {
        return Err(invalid(field, format!("{d:?} is too long")));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::condition::{Aggregate, CompareOp};
    use crate::alert::rule::DEFAULT_WINDOW;

    #[test]
    fn build_validates_and_quotes() {
        let b = || AlertRule::builder("r", "m");
        let cases: Vec<(RuleBuilder, &str)> = vec![
            (AlertRule::builder(" ", "m").above(1.0), "\" \""),
            (b().above(f64::NAN), "NaN"),
            (b().threshold(Aggregate::Avg, Duration::ZERO, CompareOp::Gt, 1.0), "window"),
            (b().threshold(Aggregate::Quantile(1.5), DEFAULT_WINDOW, CompareOp::Gt, 1.0), "1.5"),
            (b().above(1.0).m_of_n(0, 3), "0 of 3"),
            (b().above(1.0).m_of_n(2, 65), "2 of 65"),
            (b().absent_for(Duration::from_secs(1)).m_of_n(1, 2), "absence"),
            (b().absent_for(Duration::from_secs(1)).recover_below(2.0), "recovery"),
            (b().absent_for(Duration::ZERO), "absent duration"),
            (b().above(1.0).label("__x", "y"), "\"__x\""),
            (b().above(1.0).label("alertname", "y"), "\"alertname\""),
            (b().above(1.0).label_eq("9x", "y"), "\"9x\""),
            (b().above(1.0).message("{{nope}}"), "\"nope\""),
            (b().above(1.0).repeat_every(Duration::ZERO), "0s"),
            (b().above(1.0).pending_for(Duration::MAX), "too long"),
        ];
        for (builder, needle) in cases {
            let err = builder.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        assert!(AlertRule::builder("r", "bad name").above(1.0).build().is_err());
    }

    #[test]
    fn recovery_shorthand_reuses_window() {
        let r = AlertRule::builder("r", "m")
            .threshold(Aggregate::Avg, Duration::from_mins(1), CompareOp::Gt, 80.0)
            .recover_below(70.0)
            .build()
            .unwrap();
        assert_eq!(
            r.recovery(),
            Some(&Condition::Threshold {
                aggregate: Aggregate::Avg,
                window: Duration::from_mins(1),
                op: CompareOp::Lt,
                value: 70.0
            })
        );
    }
}
