//! The JSON shapes Alertmanager defines: the v2 API's posted alert and the
//! webhook receiver's payload (version 4).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{AlertGroup, is_firing};
use crate::alert::Notification;

/// Go's zero time, which Alertmanager's webhook puts in `endsAt` of a firing alert.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's fingerprint of a label set: FNV-1a 64 over the sorted
/// names and values, each followed by the byte 255, as 16 hex digits.
pub(crate) fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[255]);
        add(value.as_bytes());
        add(&[255]);
    }
    format!("{h:016x}")
}

/// When the alert started: its `started_at`, else the notice's time.
fn starts_at(n: &Notification) -> DateTime<Utc> {
    n.started_at.unwrap_or(n.at)
}

/// When a resolved alert ended.
fn ended_at(n: &Notification) -> DateTime<Utc> {
    n.resolution.map_or(n.at, |r| r.resolved_at)
}

/// One alert of `POST /api/v2/alerts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "generatorURL")]
    generator_url: Option<&'a str>,
}

impl<'a> PostableAlert<'a> {
    /// A firing alert is valid until `valid_until` (Alertmanager resolves it
    /// then unless it is sent again); a resolved one ends when it resolved.
    pub(crate) fn new(
        n: &'a Notification,
        generator_url: Option<&'a str>,
        valid_until: DateTime<Utc>,
    ) -> Self {
        let ends_at = if is_firing(n) { valid_until } else { ended_at(n) };
        PostableAlert {
            labels: &n.labels,
            annotations: AlertGroup::annotations(n),
            starts_at: rfc3339(starts_at(n)),
            ends_at: rfc3339(ends_at),
            generator_url,
        }
    }
}

/// One alert of the webhook payload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookPayload<'a> {
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: usize,
    status: &'static str,
    receiver: &'a str,
    group_labels: &'a BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    alerts: Vec<WebhookAlert<'a>>,
}

impl<'a> WebhookPayload<'a> {
    /// The payload of `group`, keeping the first `max_alerts` alerts
    /// (0: all) and counting the rest in `truncatedAlerts`.
    pub(crate) fn new(
        group: &'a AlertGroup,
        external_url: &'a str,
        generator_url: &'a str,
        max_alerts: usize,
    ) -> Self {
        let keep = if max_alerts == 0 { group.alerts.len() } else { max_alerts };
        let alerts = group
            .alerts
            .iter()
            .take(keep)
            .map(|n| {
                let firing = is_firing(n);
                WebhookAlert {
                    status: if firing { "firing" } else { "resolved" },
                    labels: &n.labels,
                    annotations: AlertGroup::annotations(n),
                    starts_at: rfc3339(starts_at(n)),
                    ends_at: if firing { GO_ZERO_TIME.to_owned() } else { rfc3339(ended_at(n)) },
                    generator_url,
                    fingerprint: fingerprint(&n.labels),
                }
            })
            .collect::<Vec<_>>();
        WebhookPayload {
            version: "4",
            group_key: &group.group_key,
            truncated_alerts: group.alerts.len() - alerts.len(),
            status: group.status().as_str(),
            receiver: &group.receiver,
            group_labels: &group.group_labels,
            common_labels: group.common_labels(),
            common_annotations: group.common_annotations(),
            external_url,
            alerts,
        }
    }
}

/// A short plain-text account of a group, for chat and email: a headline
/// and one paragraph per alert.
pub(crate) fn headline(group: &AlertGroup) -> String {
    let firing = group.firing().count();
    let name = group
        .common_labels()
        .get("alertname")
        .cloned()
        .or_else(|| group.alerts.first().map(|n| n.rule.clone()))
        .unwrap_or_default();
    match group.status() {
        super::GroupStatus::Firing => format!("[FIRING:{firing}] {name}"),
        super::GroupStatus::Resolved => format!("[RESOLVED] {name}"),
    }
}

/// The labels as `a="b", c="d"`.
pub(crate) fn label_list(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Prometheus' model.LabelSet{}.Fingerprint() of the empty set is the FNV offset.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let a = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let b = BTreeMap::from([("a".to_owned(), "c".to_owned())]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // What Alertmanager 0.25 reports for this alert (checked by scripts/alertmanager_interop.sh).
        let hot = BTreeMap::from(
            [("alertname", "hot"), ("room", "lab"), ("severity", "critical")]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(fingerprint(&hot), "aebfddb2816582ab");
    }
}
