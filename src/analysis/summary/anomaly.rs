//! The summary's anomaly issues: series with more than isolated anomalous
//! points, grouped by metric.

use std::collections::BTreeMap;

use super::{AnomalyDigest, Issue, Severity};
use crate::format::Unit;

/// One issue per metric name whose series had at least `min_points`
/// anomalous points in the window; series below that are left out (an
/// isolated point on a healthy machine is no issue).
pub(super) fn issues(
    digests: Vec<AnomalyDigest>,
    min_points: usize,
    severity: Severity,
) -> Vec<Issue> {
    let mut by_metric: BTreeMap<String, Vec<AnomalyDigest>> = BTreeMap::new();
    for d in digests.into_iter().filter(|d| d.count >= min_points.max(1)) {
        let metric = d.series.split('{').next().unwrap_or_default().to_owned();
        by_metric.entry(metric).or_default().push(d);
    }
    by_metric
        .into_iter()
        .filter_map(|(metric, mut group)| {
            group.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.series.cmp(&b.series)));
            let points: usize = group.iter().map(|d| d.count).sum();
            let latest = group.iter().max_by_key(|d| d.latest_ms)?;
            let max_score = group.iter().map(|d| d.max_score).fold(0.0, f64::max);
            let unit = Unit::of_metric(&metric);
            let (series, spread) = if group.len() == 1 {
                (group[0].series.clone(), ",".to_owned())
            } else {
                let listed: Vec<String> =
                    group.iter().take(5).map(|d| format!("{} ({})", d.series, d.count)).collect();
                let more = group.len().saturating_sub(5);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                (metric.clone(), format!(" across {} series: {}{more};", group.len(), listed.join(", ")))
            };
            Some(Issue {
                series,
                severity,
                message: format!(
                    "Anomalous behaviour: {points} unusual point{} in the window{spread} the latest \
                     {} at {} (score up to {max_score:.2})",
                    if points == 1 { "" } else { "s" },
                    unit.format(latest.latest_value),
                    crate::clock::ms_to_datetime(latest.latest_ms).format("%Y-%m-%d %H:%M:%S UTC"),
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(series: &str, count: usize, latest_ms: i64, value: f64) -> AnomalyDigest {
        AnomalyDigest {
            series: series.to_owned(),
            count,
            latest_ms,
            latest_value: value,
            max_score: 0.8,
        }
    }

    #[test]
    fn isolated_points_are_no_issue() {
        let found = issues(
            vec![
                digest("system_disk_usage", 1, 0, 70.269),
                digest("system_load_average_15m", 2, 0, 1.68),
            ],
            3,
            Severity::Warning,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn series_of_one_metric_are_grouped() {
        let found = issues(
            vec![
                digest("latency_seconds{route=\"/a\"}", 4, 1_000, 0.5),
                digest("latency_seconds{route=\"/b\"}", 6, 2_000, 0.7),
                digest("latency_seconds{route=\"/c\"}", 1, 3_000, 9.0),
                digest("queue_depth", 3, 500, 40.0),
            ],
            3,
            Severity::Warning,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].series, "latency_seconds");
        assert_eq!(
            found[0].message,
            "Anomalous behaviour: 10 unusual points in the window across 2 series: \
             latency_seconds{route=\"/b\"} (6), latency_seconds{route=\"/a\"} (4); the latest \
             700 ms at 1970-01-01 00:00:02 UTC (score up to 0.80)"
        );
        assert_eq!(found[1].series, "queue_depth");
        assert_eq!(
            found[1].message,
            "Anomalous behaviour: 3 unusual points in the window, the latest 40 at \
             1970-01-01 00:00:00 UTC (score up to 0.80)"
        );
    }
}
