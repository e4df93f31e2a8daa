//! The default host rules.

use std::time::Duration;

use crate::alert::condition::{Aggregate, CompareOp};
use crate::alert::rule::{AlertRule, Severity};

/// The window the default rules average over.
const DEFAULT_RULE_WINDOW: Duration = Duration::from_mins(1);

/// The default rules: CPU > 80 % warning and > 95 % critical, memory > 85 %
/// warning and > 95 % critical, disk > 90 % warning, on `system_cpu_usage`,
/// `system_memory_usage` and `system_disk_usage` (percent).
///
/// Each compares the average of the last minute, fires once that average has
/// stayed above the threshold for a while (`for` 2 minutes for CPU and
/// memory, 5 minutes for disk), and recovers 5 points lower (hysteresis, on
/// the same average). A one-sample burst therefore pages nobody. The critical
/// rules inhibit the warnings on the same series.
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
    const FOR: Duration = Duration::from_mins(2);
    const DISK_FOR: Duration = Duration::from_mins(5);
    // (rule, metric, what in a title, what starting a sentence, limit, severity, for)
    let spec: [(&str, &str, &str, &str, f64, Severity, Duration); 5] = [
        ("cpu_usage_warning", "system_cpu_usage", "CPU", "CPU", 80.0, Severity::Warning, FOR),
        ("cpu_usage_critical", "system_cpu_usage", "CPU", "CPU", 95.0, Severity::Critical, FOR),
        (
            "memory_usage_warning",
            "system_memory_usage",
            "memory",
            "Memory",
            85.0,
            Severity::Warning,
            FOR,
        ),
        (
            "memory_usage_critical",
            "system_memory_usage",
            "memory",
            "Memory",
            95.0,
            Severity::Critical,
            FOR,
        ),
        (
            "disk_usage_warning",
            "system_disk_usage",
            "disk",
            "Disk",
            90.0,
            Severity::Warning,
            DISK_FOR,
        ),
    ];
    spec.iter()
        .map(|&(name, metric, what, sentence, limit, severity, pending)| {
            let level = if severity == Severity::Critical { "Critical" } else { "High" };
            AlertRule::builder(name, metric)
                .threshold(Aggregate::Avg, DEFAULT_RULE_WINDOW, CompareOp::Gt, limit)
                .recover_below(limit - 5.0)
                .pending_for(pending)
                .severity(severity)
                .title(format!("{level} {what} usage"))
                .message(format!(
                    "{sentence} usage is {{{{value}}}}% (threshold {{{{threshold}}}}%)"
                ))
                .build()
                .expect("default rules are valid")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Titles and messages read as a person writes them: "High CPU usage",
    /// not "High cpu usage"; a window without data is a sentence, not "n/a%".
    #[test]
    fn titles_and_messages_read_well() {
        use crate::alert::{AlertManager, MemoryView};
        use crate::key::SeriesKey;
        let titles: Vec<String> =
            default_rules().iter().map(|r| r.title.source().to_owned()).collect();
        assert_eq!(
            titles,
            [
                "High CPU usage",
                "Critical CPU usage",
                "High memory usage",
                "Critical memory usage",
                "High disk usage"
            ]
        );
        let mut mgr = AlertManager::new(default_rules()).unwrap();
        let cpu = SeriesKey::new("system_cpu_usage", &[]).unwrap();
        let mut view = MemoryView::new();
        let mut sent = Vec::new();
        for s in 0..200_i64 {
            view.push(cpu.clone(), s * 1_000, 99.123_456_789);
            sent.extend(mgr.evaluate(s * 1_000, &view));
        }
        let critical = sent.iter().find(|n| n.rule == "cpu_usage_critical").unwrap();
        assert_eq!(critical.title, "Critical CPU usage");
        assert_eq!(critical.message, "CPU usage is 99.12% (threshold 95%)");
    }

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

    /// CPU sampled every second: one burst to 100 % among 50 % samples pages
    /// nobody; a sustained 90 % warns after the average has held for 2 minutes.
    #[test]
    fn a_one_sample_burst_does_not_page_and_sustained_load_warns() {
        use crate::alert::{AlertManager, MemoryView, NotificationKind};
        use crate::key::SeriesKey;
        let mut mgr = AlertManager::new(default_rules()).unwrap();
        let cpu = SeriesKey::new("system_cpu_usage", &[]).unwrap();
        let mut view = MemoryView::new();
        let mut sent = Vec::new();
        for s in 0..600_i64 {
            let v = match s {
                90 => 100.0,
                300.. => 90.0,
                _ => 50.0,
            };
            view.push(cpu.clone(), s * 1_000, v);
            for n in mgr.evaluate(s * 1_000, &view) {
                sent.push((s, n.rule, n.kind));
            }
        }
        // The 1-minute average passes 80 once 46 of its 60 samples read 90:
        // (46 * 90 + 14 * 50) / 60 = 80.67, at second 345.
        let avg_crosses = (300..600)
            .find(|&s| {
                let at_90 = f64::from((s - 300 + 1).min(60));
                (at_90 * 90.0 + (60.0 - at_90) * 50.0) / 60.0 > 80.0
            })
            .unwrap();
        assert_eq!(avg_crosses, 345);
        assert_eq!(sent, [(345 + 120, "cpu_usage_warning".to_owned(), NotificationKind::Firing)]);
    }
}
