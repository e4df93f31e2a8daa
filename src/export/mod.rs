//! Exposition of the registry in the Prometheus text format 0.0.4 and in
//! OpenMetrics 1.0.
//!
//! These are plain functions over a [`Registry`]: they need no HTTP server
//! and no feature. [`Monitor::prometheus_text`](crate::Monitor::prometheus_text)
//! and [`Monitor::openmetrics_text`](crate::Monitor::openmetrics_text) are
//! the shortcuts; [`Format::from_accept`] picks the format a scraper asks for.
//!
//! # What is exposed
//!
//! The current value of every instrument, read directly (not from history):
//!
//! | kind | samples |
//! |---|---|
//! | counter | `<name>_total` (the name as registered if it already ends in `_total`) |
//! | gauge, recorded series | `<name>` |
//! | histogram | `<name>_bucket{le="…"}` (cumulative, ending with `le="+Inf"`), `<name>_sum`, `<name>_count` |
//! | summary | `<name>{quantile="0.5"}`, `0.9`, `0.99` over the sliding window (`NaN` when it is empty), `<name>_sum`, `<name>_count` |
//!
//! A counter keeps one sample name in both formats, so a query does not
//! depend on which format the scraper negotiated: `messages_total` is the
//! sample `messages_total` in 0.0.4 and, in OpenMetrics, the sample
//! `messages_total` of the family `messages`. A counter registered without the
//! suffix (`bytes_sent`) is exposed as `bytes_sent_total` in both.
//!
//! Derived series (`<name>:rate`, `<name>:p99`, …) live in history only and
//! are not exposed: Prometheus computes rates and quantiles itself.
//!
//! Families are sorted by name and series by labels, so the output is
//! deterministic. Every family has `# HELP` and `# TYPE` lines; the HELP text
//! is the one given to [`Registry::describe`], or a built-in one for
//! watchpost's own metrics, or a generic one. Label values are escaped
//! (`\\`, `\"`, `\n`), and so is HELP text. OpenMetrics output ends with
//! `# EOF`.
//!
//! Two families that would expose the same sample name (a counter `jobs`
//! beside a counter `jobs_total`, or a histogram `x` beside a gauge
//! `x_count`), and series whose own labels would clash with `le` or
//! `quantile`, are left out rather than producing output a scraper rejects;
//! the first in sorted order wins.
//!
//! # Examples
//!
//! ```
//! use watchpost::export::{self, Format};
//! let engine = watchpost::Engine::builder().without_system_source().build()?;
//! engine.counter_with("messages_total", &[("room", "general")])?.add(3);
//!
//! let text = export::prometheus_text(engine.registry());
//! assert!(text.contains("# TYPE messages_total counter\n"));
//! assert!(text.contains("messages_total{room=\"general\"} 3\n"));
//!
//! let om = export::openmetrics_text(engine.registry());
//! assert!(om.contains("# TYPE messages counter\nmessages_total{room=\"general\"} 3\n"));
//! assert!(om.ends_with("# EOF\n"));
//!
//! let format = Format::from_accept(Some("application/openmetrics-text; version=1.0.0"));
//! assert_eq!(format, Format::OpenMetrics);
//! # Ok::<(), watchpost::Error>(())
//! ```

mod text;

use crate::registry::Registry;

/// An exposition format.
///
/// # Examples
///
/// ```
/// use watchpost::export::Format;
/// assert_eq!(Format::Prometheus.content_type(), "text/plain; version=0.0.4; charset=utf-8");
/// assert_eq!(Format::from_accept(None), Format::Prometheus);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::export::Format;
    /// assert_eq!(
    ///     Format::OpenMetrics.content_type(),
    ///     "application/openmetrics-text; version=1.0.0; charset=utf-8"
    /// );
    /// ```
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` (version 1.0.0 or no version) with a
    /// higher or equal quality than `text/plain`, the 0.0.4 text format
    /// otherwise (also when the header is missing).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::export::Format;
    /// // what Prometheus sends
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
    ///                   version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    /// assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
    /// ```
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Prometheus };
        let mut best_om: Option<f64> = None;
        let mut best_text: Option<f64> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0;
            let mut version = None;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "q" => q = v.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            if q <= 0.0 {
                continue;
            }
            let slot = match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    &mut best_om
                }
                "text/plain" => &mut best_text,
                _ => continue,
            };
            if slot.is_none_or(|best| q > best) {
                *slot = Some(q);
            }
        }
        match (best_om, best_text) {
            (Some(om), Some(text)) if om >= text => Format::OpenMetrics,
            (Some(_), None) => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// Appends the registry's exposition in `format` to `out`.
///
/// # Examples
///
/// ```
/// use watchpost::export::{Format, encode};
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.gauge("active_users")?.set(4.0);
/// let mut out = String::new();
/// encode(engine.registry(), Format::Prometheus, &mut out);
/// assert!(out.contains("active_users 4.0\n"));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn encode(registry: &Registry, format: Format, out: &mut String) {
    text::encode(registry, format, out);
}

/// The registry in the Prometheus text format 0.0.4.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let h = engine.histogram_with("latency_seconds", &[], &[0.1, 1.0])?;
/// h.observe(0.05);
/// h.observe(0.5);
/// let text = watchpost::export::prometheus_text(engine.registry());
/// assert!(text.contains("latency_seconds_bucket{le=\"0.1\"} 1\n"));
/// assert!(text.contains("latency_seconds_bucket{le=\"1.0\"} 2\n"));
/// assert!(text.contains("latency_seconds_bucket{le=\"+Inf\"} 2\n"));
/// assert!(text.contains("latency_seconds_count 2\n"));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn prometheus_text(registry: &Registry) -> String {
    let mut out = String::new();
    text::encode(registry, Format::Prometheus, &mut out);
    out
}

/// The registry in OpenMetrics 1.0 text, ending with `# EOF`.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.counter("jobs_total")?.inc();
/// let text = watchpost::export::openmetrics_text(engine.registry());
/// assert!(text.contains("# TYPE jobs counter\njobs_total 1\n"));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn openmetrics_text(registry: &Registry) -> String {
    let mut out = String::new();
    text::encode(registry, Format::OpenMetrics, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn accept_negotiation() {
        let f = |s| Format::from_accept(Some(s));
        assert_eq!(f("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(f("application/openmetrics-text; version=0.0.1"), Format::Prometheus);
        assert_eq!(
            f("text/plain;q=0.9, application/openmetrics-text;version=1.0.0;q=0.5"),
            Format::Prometheus
        );
        assert_eq!(f("application/openmetrics-text;q=0"), Format::Prometheus);
        assert_eq!(f("APPLICATION/OpenMetrics-Text; Version=1.0.0"), Format::OpenMetrics);
        assert_eq!(f(""), Format::Prometheus);
    }
}
