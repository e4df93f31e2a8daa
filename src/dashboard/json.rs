//! The dashboard as JSON: `serde_json`'s pretty layout, byte for byte, with
//! the statistics written straight from the cached series list.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Anomaly, Dashboard, EngineStats, LogEventEntry, Point, RemoteWriteStatus, SeriesOrder,
    SlowOperationsSection, Statistics, SystemStatus,
};
use crate::alert::{AlertEventView, AlertView, NotificationStats};
use crate::analysis::PerformanceSummary;
use crate::registry::Registry;

/// `dashboard` with `statistics` as pretty-printed JSON, byte for byte what
/// `serde_json::to_string_pretty` writes for the typed snapshot, into a
/// buffer sized by the last snapshot of this registry.
pub(crate) fn to_json(
    registry: &Registry,
    dashboard: &Dashboard,
    statistics: &Statistics,
) -> serde_json::Result<String> {
    /// `Dashboard`'s fields in its order, with the statistics from `Statistics`.
    #[derive(Serialize)]
    struct Json<'a> {
        schema_version: &'a u32,
        generated_at: &'a DateTime<Utc>,
        uptime_seconds: &'a f64,
        system_status: &'a SystemStatus,
        recent_metrics: &'a BTreeMap<String, Vec<Point>>,
        statistics: &'a Statistics,
        engine: &'a EngineStats,
        active_alerts: &'a [AlertView],
        recent_alert_events: &'a [AlertEventView],
        anomalies: &'a [Anomaly],
        performance_summary: &'a PerformanceSummary,
        notifications: &'a NotificationStats,
        slow_operations: &'a SlowOperationsSection,
        recent_log_events: &'a [LogEventEntry],
        #[serde(skip_serializing_if = "Option::is_none")]
        remote_write: &'a Option<RemoteWriteStatus>,
    }
    // every field named: a field added to `Dashboard` does not compile here until it is written
    let Dashboard {
        schema_version,
        generated_at,
        uptime_seconds,
        system_status,
        recent_metrics,
        statistics: _,
        engine,
        active_alerts,
        recent_alert_events,
        anomalies,
        performance_summary,
        notifications,
        slow_operations,
        recent_log_events,
        remote_write,
    } = dashboard;
    let json = Json {
        schema_version,
        generated_at,
        uptime_seconds,
        system_status,
        recent_metrics,
        statistics,
        engine,
        active_alerts,
        recent_alert_events,
        anomalies,
        performance_summary,
        notifications,
        slow_operations,
        recent_log_events,
        remote_write,
    };
    let cache = registry.extension::<SeriesOrder>();
    let json = pretty(&json, cache.json_len.load(Ordering::Relaxed) + 1024)?;
    cache.json_len.store(json.len(), Ordering::Relaxed);
    Ok(json)
}

/// `value` as `serde_json::to_string_pretty` writes it, into a buffer of `capacity`.
fn pretty<T: Serialize + ?Sized>(value: &T, capacity: usize) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(capacity);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, Pretty::default()))?;
    // serde_json writes UTF-8 only
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

/// `serde_json`'s `PrettyFormatter` with its two-space indent, writing a line
/// break and its indent in one piece instead of one write per level.
#[derive(Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break and two spaces per level (deeper levels take more writes).
    const BREAK: &'static [u8] =
        b"\n                                                                ";

    fn new_line<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        let mut spaces = 2 * self.depth;
        let first = spaces.min(Self::BREAK.len() - 1);
        w.write_all(&Self::BREAK[..=first])?;
        spaces -= first;
        while spaces > 0 {
            let n = spaces.min(Self::BREAK.len() - 1);
            w.write_all(&Self::BREAK[1..=n])?;
            spaces -= n;
        }
        Ok(())
    }
}

impl Pretty {
    /// `[` or `{`: one level deeper, nothing in it yet.
    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    /// `]` or `}`, on a line of its own unless the container is empty.
    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.new_line(w)?;
        }
        w.write_all(bracket)
    }

    /// Before an element or a key: a comma after the first, then a new line.
    fn entry<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.new_line(w)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.entry(w, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.entry(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value: nested arrays and objects (empty ones too), strings, numbers.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e9f64..1e9).prop_map(serde_json::Value::from),
            "[a-z\"\\\n é]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(48, 256, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{0,3}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn pretty_writes_what_serde_json_writes(v in json()) {
            prop_assert_eq!(pretty(&v, 0).unwrap(), serde_json::to_string_pretty(&v).unwrap());
        }
    }

    #[test]
    fn pretty_indents_deeper_than_its_run_of_spaces() {
        let mut v = serde_json::json!({"leaf": [1, {}, []]});
        for i in 0..80 {
            v = if i % 2 == 0 { serde_json::json!([v, 2.5]) } else { serde_json::json!({"k": v}) };
        }
        assert_eq!(pretty(&v, 16).unwrap(), serde_json::to_string_pretty(&v).unwrap());
    }
}
