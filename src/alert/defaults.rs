//! The default host rules.

use crate::alert::rule::{AlertRule, Severity};

/// The default rules: CPU > 80 % warning and > 95 % critical, memory > 85 %
/// warning and > 95 % critical, disk > 90 % warning, on `system_cpu_usage`,
/// `system_memory_usage` and `system_disk_usage` (percent).
///
/// Each fires on the newest sample and recovers 5 points lower (hysteresis);
/// the critical rules inhibit the warnings on the same series.
///
/// # Panics
///
/// Never: the rules are constants known to be valid.
///
/// # Examples
///
/// ```
/// let rules = watchpost::alert::default_rules();
/// let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
/// assert_eq!(names, ["cpu_usage_warning", "cpu_usage_critical", "memory_usage_warning",
///                    "memory_usage_critical", "disk_usage_warning"]);
/// ```
pub fn default_rules() -> Vec<AlertRule> {
    let spec: [(&str, &str, &str, f64, Severity); 5] = [
        ("cpu_usage_warning", "system_cpu_usage", "CPU", 80.0, Severity::Warning),
        ("cpu_usage_critical", "system_cpu_usage", "CPU", 95.0, Severity::Critical),
        ("memory_usage_warning", "system_memory_usage", "Memory", 85.0, Severity::Warning),
        ("memory_usage_critical", "system_memory_usage", "Memory", 95.0, Severity::Critical),
        ("disk_usage_warning", "system_disk_usage", "Disk", 90.0, Severity::Warning),
    ];
    spec.iter()
        .map(|&(name, metric, what, limit, severity)| {
            let level = if severity == Severity::Critical { "Critical" } else { "High" };
            AlertRule::builder(name, metric)
                .above(limit)
                .recover_below(limit - 5.0)
                .severity(severity)
                .title(format!("{level} {} usage", what.to_lowercase()))
                .message(format!("{what} usage is {{{{value}}}}% (threshold {{{{threshold}}}}%)"))
                .build()
                .expect("default rules are valid")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_distinct_and_keep_both_cpu_levels() {
        let rules = default_rules();
        let cpu: Vec<_> = rules.iter().filter(|r| r.metric() == "system_cpu_usage").collect();
        assert_eq!(cpu.len(), 2);
        assert_eq!(cpu[0].condition().threshold(), Some(80.0));
        assert_eq!(cpu[1].condition().threshold(), Some(95.0));
        assert_eq!(cpu[1].severity(), Severity::Critical);
        assert!(cpu.iter().all(|r| r.family() == "system_cpu_usage"));
    }
}
