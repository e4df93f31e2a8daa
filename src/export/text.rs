//! The text encoders. The sorted layout of families and series, with label
//! sets rendered once, is cached per registry and rebuilt only when the
//! registry changes, so a scrape is mostly copying bytes and formatting
//! numbers.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::Format;
use crate::kind::MetricKind;
use crate::registry::{Entry, Instrument, Registry};

/// Quantiles a summary exposes, with their label values.
const SUMMARY_QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")];

/// The cached layout of one registry.
#[derive(Default)]
pub(crate) struct LayoutCache {
    layout: Mutex<Option<Arc<Layout>>>,
    /// Size of the last output, to reserve the next one at once.
    last_len: AtomicUsize,
}

struct Layout {
    generation: u64,
    entries: usize,
    families: Vec<Family>,
}

struct Family {
    /// The registered name (the key for HELP texts).
    name: Box<str>,
    kind: MetricKind,
    /// The name of the family's samples (`x_total` for a counter), and its 0.0.4 family name.
    sample: Box<str>,
    /// The OpenMetrics family name (`x` for a counter `x_total`).
    openmetrics_name: Box<str>,
    /// Rendered bucket bounds of a histogram, without `+Inf`.
    le: Vec<Box<str>>,
    series: Vec<Series>,
}

struct Series {
    /// Index of the entry in the registry.
    index: usize,
    /// `a="1",b="2"`, escaped, without braces; empty without labels.
    labels: Box<str>,
    /// `sample{labels} ` for counters and gauges; empty otherwise.
    prefix: Box<str>,
}

impl LayoutCache {
    fn get(&self, registry: &Registry, entries: &[Entry]) -> Arc<Layout> {
        let generation = registry.generation();
        let mut slot = self.layout.lock();
        if let Some(layout) = slot.as_ref()
            && layout.generation == generation
            && layout.entries == entries.len()
        {
            return Arc::clone(layout);
        }
        let layout = Arc::new(build_layout(entries, generation));
        *slot = Some(Arc::clone(&layout));
        layout
    }
}

fn build_layout(entries: &[Entry], generation: u64) -> Layout {
    let mut order: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e.instrument, Instrument::Derived { .. } | Instrument::Removed))
        .map(|(i, _)| i)
        .collect();
    order.sort_by(|a, b| entries[*a].key.cmp(&entries[*b].key));
    let mut families: Vec<Family> = Vec::new();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut start = 0;
    while start < order.len() {
        let name = entries[order[start]].key.name();
        let end =
            start + order[start..].iter().take_while(|i| entries[**i].key.name() == name).count();
        let group = &order[start..end];
        start = end;
        let first = &entries[group[0]];
        let kind = first.kind;
        let (sample, openmetrics_name) = match kind {
            MetricKind::Counter => match name.strip_suffix("_total") {
                Some(base) if !base.is_empty() => (name.to_owned(), base.to_owned()),
                _ => (format!("{name}_total"), name.to_owned()),
            },
            _ => (name.to_owned(), name.to_owned()),
        };
        let mut names = vec![sample.clone(), openmetrics_name.clone()];
        match kind {
            MetricKind::Histogram => {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            MetricKind::Summary => names.extend(["_sum", "_count"].map(|s| format!("{name}{s}"))),
            MetricKind::Counter | MetricKind::Gauge => {}
        }
        if names.iter().any(|n| claimed.contains(n)) {
            continue; // would repeat a family or sample name of an earlier family
        }
        claimed.extend(names);
        let reserved = match kind {
            MetricKind::Histogram => Some("le"),
            MetricKind::Summary => Some("quantile"),
            MetricKind::Counter | MetricKind::Gauge => None,
        };
        let le = match &first.instrument {
            Instrument::Histogram(h) => h.bounds().iter().map(|b| render_f64(*b).into()).collect(),
            _ => Vec::new(),
        };
        let series = group
            .iter()
            .filter(|i| reserved.is_none_or(|r| entries[**i].key.labels().get(r).is_none()))
            .map(|&index| {
                let key = &entries[index].key;
                let labels = if key.labels().is_empty() {
                    String::new()
                } else {
                    let all = key.labels().to_string(); // `{a="1"}`, values escaped
                    all[1..all.len() - 1].to_owned()
                };
                let prefix = match kind {
                    MetricKind::Counter | MetricKind::Gauge if labels.is_empty() => {
                        format!("{sample} ")
                    }
                    MetricKind::Counter | MetricKind::Gauge => format!("{sample}{{{labels}}} "),
                    MetricKind::Histogram | MetricKind::Summary => String::new(),
                };
                Series { index, labels: labels.into(), prefix: prefix.into() }
            })
            .collect();
        families.push(Family {
            name: name.into(),
            kind,
            sample: sample.into(),
            openmetrics_name: openmetrics_name.into(),
            le,
            series,
        });
    }
    Layout { generation, entries: entries.len(), families }
}

/// HELP texts of watchpost's own metrics and of the system source.
fn builtin_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "watchpost_samples_ingested_total" => "Samples written into history.",
        "watchpost_samples_dropped_total" => {
            "Samples dropped: record() on a full queue or after shutdown, or too old to keep."
        }
        "watchpost_nonfinite_dropped_total" => "Non-finite values dropped by handles and record().",
        "watchpost_source_errors_total" => "Source collections that panicked.",
        "watchpost_series_rejected" => {
            "Registrations refused by a series cap or a name or label limit."
        }
        "watchpost_registrations_rejected_total" => "Registrations refused, by reason.",
        "watchpost_record_queue_depth" => "Samples waiting in the record() queue.",
        "watchpost_series" => "Series in the registry, derived ones included.",
        "watchpost_collection_duration_seconds" => "How long the last collection took.",
        "watchpost_notifications_delivered_total" => {
            "Notifications a handler handled successfully."
        }
        "watchpost_notifications_failed_total" => {
            "Notifications for which a handler returned an error or panicked."
        }
        "watchpost_notifications_dropped_total" => {
            "Notifications a handler lost because it was stuck (the only losses)."
        }
        "watchpost_notifications_coalesced_total" => {
            "Notifications merged while waiting for a slow handler (not losses)."
        }
        "system_cpu_usage" => "CPU usage of the host, percent of all CPUs.",
        "system_memory_usage" => "Memory in use on the host, percent of RAM.",
        "system_swap_usage" => "Swap in use on the host, percent.",
        "system_disk_usage" => "Disk space used on the host, percent.",
        "system_network_bytes_sent" => "Bytes sent on all network interfaces.",
        "system_network_bytes_recv" => "Bytes received on all network interfaces.",
        "system_load_average_1m" => "Load average over 1 minute.",
        "system_load_average_5m" => "Load average over 5 minutes.",
        "system_load_average_15m" => "Load average over 15 minutes.",
        "app_cpu_usage" => "CPU used by this process, percent of one CPU.",
        "app_memory_usage" => "Resident memory of this process, in MB.",
        "app_file_descriptors" => "Open file descriptors of this process.",
        "app_thread_count" => "Threads of this process.",
        _ => return None,
    })
}

pub(super) fn encode(registry: &Registry, format: Format, out: &mut String) {
    let cache = registry.extension::<LayoutCache>();
    out.reserve(cache.last_len.load(Ordering::Relaxed) + 64);
    let before = out.len();
    let mut scratch = Vec::new();
    registry.with_entries(|entries| {
        let layout = cache.get(registry, entries);
        // Read counters and gauges in registration order first: that walks
        // their memory in the order it was allocated, which the sorted order
        // of the output does not.
        let values: Vec<u64> = entries
            .iter()
            .map(|e| match &e.instrument {
                Instrument::Counter(c) => c.get(),
                Instrument::Gauge(g) | Instrument::Recorded(g) => g.get().to_bits(),
                _ => 0,
            })
            .collect();
        for family in &layout.families {
            write_family(registry, format, family, entries, &values, &mut scratch, out);
        }
    });
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    cache.last_len.store(out.len() - before, Ordering::Relaxed);
}

fn write_family(
    registry: &Registry,
    format: Format,
    family: &Family,
    entries: &[Entry],
    values: &[u64],
    scratch: &mut Vec<u64>,
    out: &mut String,
) {
    let family_name = match format {
        Format::Prometheus => &family.sample,
        Format::OpenMetrics => &family.openmetrics_name,
    };
    out.push_str("# HELP ");
    out.push_str(family_name);
    out.push(' ');
    match registry.description(&family.name) {
        Some(help) => push_help(out, &help, format),
        None => match builtin_help(&family.name) {
            Some(help) => push_help(out, help, format),
            None => {
                let _ = write!(out, "{} {}", family.kind, family.name);
            }
        },
    }
    out.push_str("\n# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push('\n');
    for series in &family.series {
        match &entries[series.index].instrument {
            Instrument::Counter(_) => {
                out.push_str(&series.prefix);
                push_u64(out, values[series.index]);
                out.push('\n');
            }
            Instrument::Gauge(_) | Instrument::Recorded(_) => {
                out.push_str(&series.prefix);
                push_f64(out, f64::from_bits(values[series.index]));
                out.push('\n');
            }
            Instrument::Histogram(h) => {
                let snapshot = h.snapshot();
                scratch.clear();
                scratch.extend_from_slice(&snapshot.counts);
                let mut cumulative = 0u64;
                for (i, count) in scratch.iter().enumerate() {
                    cumulative += count;
                    let le = family.le.get(i).map_or("+Inf", |s| s);
                    push_sample_start(out, &family.name, "_bucket", &series.labels);
                    if !series.labels.is_empty() {
                        out.push(',');
                    }
                    out.push_str("le=\"");
                    out.push_str(le);
                    out.push_str("\"} ");
                    push_u64(out, cumulative);
                    out.push('\n');
                }
                write_sum_count(out, format, family, series, snapshot.sum, cumulative);
            }
            Instrument::Summary(s) => {
                let quantiles = s.quantiles();
                for (q, label) in SUMMARY_QUANTILES {
                    push_sample_start(out, &family.name, "", &series.labels);
                    if !series.labels.is_empty() {
                        out.push(',');
                    }
                    out.push_str("quantile=\"");
                    out.push_str(label);
                    out.push_str("\"} ");
                    let value = quantiles.map_or(f64::NAN, |qs| {
                        if q <= 0.5 {
                            qs.p50
                        } else if q <= 0.9 {
                            qs.p90
                        } else {
                            qs.p99
                        }
                    });
                    push_f64(out, value);
                    out.push('\n');
                }
                write_sum_count(out, format, family, series, s.sum(), s.count());
            }
            Instrument::Derived { .. } | Instrument::Removed => {}
        }
    }
}

/// `_sum` and `_count` of a histogram or summary. OpenMetrics treats the sum
/// as a counter, so a negative sum is left out there.
fn write_sum_count(
    out: &mut String,
    format: Format,
    family: &Family,
    series: &Series,
    sum: f64,
    count: u64,
) {
    if format == Format::Prometheus || sum >= 0.0 {
        push_sample_start(out, &family.name, "_sum", &series.labels);
        close_labels(out, &series.labels);
        push_f64(out, sum);
        out.push('\n');
    }
    push_sample_start(out, &family.name, "_count", &series.labels);
    close_labels(out, &series.labels);
    push_u64(out, count);
    out.push('\n');
}

/// `name` + `suffix`, then `{labels` (always opened: the caller adds more
/// labels or closes it with [`close_labels`]).
fn push_sample_start(out: &mut String, name: &str, suffix: &str, labels: &str) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
}

fn close_labels(out: &mut String, labels: &str) {
    if labels.is_empty() {
        // `name{` was written: take the brace back
        out.pop();
        out.push(' ');
    } else {
        out.push_str("} ");
    }
}

/// HELP text, escaped: `\` and newlines in both formats, `"` too in OpenMetrics.
fn push_help(out: &mut String, help: &str, format: Format) {
    let mut rest = help;
    while let Some(i) = rest.find(['\\', '\n', '"']) {
        out.push_str(&rest[..i]);
        match rest.as_bytes()[i] {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            _ if format == Format::OpenMetrics => out.push_str("\\\""),
            _ => out.push('"'),
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        #[allow(clippy::cast_possible_truncation)] // a digit
        {
            buf[i] = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// A float as both formats accept it: `NaN`, `+Inf`, `-Inf`, or the shortest
/// text that reads back to the same value (`1.0`, `0.005`, `1e-7`).
fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        if v.is_sign_negative() {
            out.push('-');
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // |v| < 1e15, integral
        push_u64(out, v.abs() as u64);
        out.push_str(".0");
    } else {
        let _ = write!(out, "{v:?}");
    }
}

fn render_f64(v: f64) -> String {
    let mut s = String::new();
    push_f64(&mut s, v);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{openmetrics_text, prometheus_text};

    fn registry() -> Registry {
        Registry::new(100)
    }

    #[test]
    fn numbers() {
        let r = |v| render_f64(v);
        assert_eq!(r(1.0), "1.0");
        assert_eq!(r(-3.0), "-3.0");
        assert_eq!(r(0.005), "0.005");
        assert_eq!(r(1e-7), "1e-7");
        assert_eq!(r(f64::INFINITY), "+Inf");
        assert_eq!(r(f64::NEG_INFINITY), "-Inf");
        assert_eq!(r(f64::NAN), "NaN");
        assert_eq!(r(1e20), "1e20");
        let mut s = String::new();
        push_u64(&mut s, 0);
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, "018446744073709551615");
    }

    #[test]
    fn label_values_are_escaped() {
        let reg = registry();
        reg.gauge("g", &[("v", "a\\b\"c\nd")]).unwrap().set(1.0);
        reg.gauge("g", &[("v", "<script>alert(1)</script>")]).unwrap().set(2.0);
        let text = prometheus_text(&reg);
        assert!(text.contains("g{v=\"a\\\\b\\\"c\\nd\"} 1.0\n"), "{text}");
        assert!(text.contains("g{v=\"<script>alert(1)</script>\"} 2.0\n"), "{text}");
        assert!(!text.contains('\r'));
        assert_eq!(text.lines().filter(|l| l.starts_with("g{")).count(), 2);
    }

    #[test]
    fn help_is_escaped_per_format() {
        let reg = registry();
        reg.describe("g", "say \"hi\"\nback\\slash").unwrap();
        let _ = reg.gauge("g", &[]).unwrap();
        assert!(prometheus_text(&reg).contains("# HELP g say \"hi\"\\nback\\\\slash\n"));
        assert!(openmetrics_text(&reg).contains("# HELP g say \\\"hi\\\"\\nback\\\\slash\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let reg = registry();
        let h = reg.histogram("lat_seconds", &[("op", "get")], Some(&[0.1, 1.0, 10.0])).unwrap();
        for v in [0.05, 0.05, 0.5, 5.0, 50.0] {
            h.observe(v);
        }
        let text = prometheus_text(&reg);
        let expected = "# HELP lat_seconds histogram lat_seconds\n\
            # TYPE lat_seconds histogram\n\
            lat_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n\
            lat_seconds_bucket{op=\"get\",le=\"1.0\"} 3\n\
            lat_seconds_bucket{op=\"get\",le=\"10.0\"} 4\n\
            lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n\
            lat_seconds_sum{op=\"get\"} 55.6\n\
            lat_seconds_count{op=\"get\"} 5\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn histogram_without_labels() {
        let reg = registry();
        reg.histogram("h", &[], Some(&[1.0])).unwrap().observe(2.0);
        let text = prometheus_text(&reg);
        assert!(
            text.contains(
                "h_bucket{le=\"1.0\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 2.0\nh_count 1\n"
            )
        );
    }

    #[test]
    fn counters_keep_one_sample_name_in_both_formats() {
        let reg = registry();
        reg.counter("messages_total", &[("room", "a")]).unwrap().add(7);
        reg.counter("bytes_sent", &[]).unwrap().add(9);
        let prom = prometheus_text(&reg);
        assert!(prom.contains("# TYPE messages_total counter\nmessages_total{room=\"a\"} 7\n"));
        assert!(prom.contains("# TYPE bytes_sent_total counter\nbytes_sent_total 9\n"));
        let om = openmetrics_text(&reg);
        assert!(om.contains("# HELP messages counter messages_total\n"));
        assert!(om.contains("# TYPE messages counter\nmessages_total{room=\"a\"} 7\n"));
        assert!(om.contains("# TYPE bytes_sent counter\nbytes_sent_total 9\n"));
        assert!(om.ends_with("# EOF\n"));
        assert_eq!(om.matches("# EOF").count(), 1);
        assert!(!prom.contains("# EOF"));
    }

    #[test]
    fn derived_series_are_not_exposed() {
        let reg = registry();
        let _ = reg.counter("c_total", &[]).unwrap();
        let _ = reg.histogram("h", &[], None).unwrap();
        let text = prometheus_text(&reg);
        assert!(!text.contains(':'), "{text}");
    }

    #[test]
    fn summaries() {
        let reg = registry();
        let s = reg.summary("size_bytes", &[]).unwrap();
        let text = prometheus_text(&reg);
        assert!(text.contains("size_bytes{quantile=\"0.5\"} NaN\n"), "{text}");
        for v in 1..=100 {
            s.observe(f64::from(v));
        }
        let text = prometheus_text(&reg);
        assert!(text.contains("# TYPE size_bytes summary\n"));
        assert!(text.contains("size_bytes{quantile=\"0.99\"} "));
        assert!(text.contains("size_bytes_sum 5050.0\nsize_bytes_count 100\n"), "{text}");
    }

    #[test]
    fn sorted_and_deterministic() {
        let reg = registry();
        let _ = reg.gauge("zeta", &[]).unwrap();
        let _ = reg.gauge("alpha", &[("k", "2")]).unwrap();
        let _ = reg.gauge("alpha", &[("k", "1")]).unwrap();
        let text = prometheus_text(&reg);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, ["alpha{k=\"1\"} 0.0", "alpha{k=\"2\"} 0.0", "zeta 0.0"]);
        assert_eq!(text, prometheus_text(&reg));
        // the cached layout follows new registrations
        let _ = reg.gauge("beta", &[]).unwrap();
        assert!(prometheus_text(&reg).contains("beta 0.0\n"));
    }

    #[test]
    fn clashing_names_are_left_out() {
        let reg = registry();
        reg.counter("jobs", &[]).unwrap().inc();
        reg.counter("jobs_total", &[]).unwrap().add(2);
        let _ = reg.histogram("h", &[], None).unwrap();
        let _ = reg.gauge("h_count", &[]).unwrap();
        let _ = reg.histogram("x", &[("le", "oops")], None).unwrap();
        let text = prometheus_text(&reg);
        assert_eq!(text.matches("\njobs_total ").count(), 1, "{text}");
        assert!(!text.contains("# TYPE h_count"));
        assert!(!text.contains("oops"));
    }

    #[test]
    fn non_finite_gauges() {
        let reg = registry();
        let g = reg.gauge("g", &[]).unwrap();
        g.set(-0.25);
        assert!(prometheus_text(&reg).contains("g -0.25\n"));
    }
}
