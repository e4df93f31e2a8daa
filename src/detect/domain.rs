//! The values a metric can take, so that expected bands stay inside them.

use crate::format::Unit;
use crate::{Error, Result};

/// The closed range of values a metric can take: percentages lie in
/// `[0, 100]`, rates, counts, sizes and durations are never negative.
///
/// A detector's expected band is drawn from a spread around a level, so on
/// its own it can reach outside what the metric can do (a band of
/// `[-141, 149]` for a CPU usage in percent); [`Domain::clamp_band`] cuts it
/// back. [`Domain::of_metric`] guesses the domain from the metric's name with
/// the same suffix conventions as [`Unit::of_metric`]; the engine uses it
/// unless a metric declares its own with
/// `EngineBuilder::metric_domain`.
///
/// # Examples
///
/// ```
/// use watchpost::detect::Domain;
///
/// assert_eq!(Domain::PERCENT.clamp_band((-141.0, 149.0)), (0.0, 100.0));
/// assert_eq!(Domain::of_metric("system_cpu_usage"), Domain::PERCENT);
/// assert_eq!(Domain::of_metric("messages_total:rate"), Domain::NON_NEGATIVE);
/// assert_eq!(Domain::of_metric("temperature_celsius"), Domain::UNBOUNDED);
/// let ratio = Domain::new(0.0, 1.0)?;
/// assert_eq!(ratio.clamp_band((0.2, 1.3)), (0.2, 1.0));
/// assert!(Domain::new(1.0, 0.0).is_err());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Domain {
    lower: f64,
    upper: f64,
}

impl Default for Domain {
    fn default() -> Self {
        Domain::UNBOUNDED
    }
}

impl Domain {
    /// Any real value.
    pub const UNBOUNDED: Domain = Domain { lower: f64::NEG_INFINITY, upper: f64::INFINITY };
    /// Zero or more: rates, counts, sizes, durations.
    pub const NON_NEGATIVE: Domain = Domain { lower: 0.0, upper: f64::INFINITY };
    /// A percentage of a whole, `[0, 100]`.
    pub const PERCENT: Domain = Domain { lower: 0.0, upper: 100.0 };

    /// The values from `lower` to `upper` (either may be infinite).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `domain` when a bound is NaN or
    /// `lower >= upper`.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::Domain;
    /// assert!(Domain::new(0.0, f64::INFINITY).is_ok());
    /// let err = Domain::new(f64::NAN, 1.0).unwrap_err().to_string();
    /// assert!(err.contains("NaN"), "{err}");
    /// ```
    pub fn new(lower: f64, upper: f64) -> Result<Domain> {
        if lower.is_nan() || upper.is_nan() || lower >= upper {
            return Err(Error::InvalidConfig {
                field: "domain",
                reason: format!("needs lower < upper, got [{lower}, {upper}]"),
            });
        }
        Ok(Domain { lower, upper })
    }

    /// The smallest value of the domain.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::detect::Domain::PERCENT.lower(), 0.0);
    /// ```
    pub fn lower(&self) -> f64 {
        self.lower
    }

    /// The largest value of the domain.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::detect::Domain::PERCENT.upper(), 100.0);
    /// ```
    pub fn upper(&self) -> f64 {
        self.upper
    }

    /// The band `(lower, upper)` cut to the domain. A band entirely outside
    /// the domain collapses onto its nearest bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::Domain;
    /// assert_eq!(Domain::NON_NEGATIVE.clamp_band((-3.0, 5.0)), (0.0, 5.0));
    /// assert_eq!(Domain::PERCENT.clamp_band((120.0, 130.0)), (100.0, 100.0));
    /// ```
    pub fn clamp_band(&self, band: (f64, f64)) -> (f64, f64) {
        let clamp = |v: f64| if v.is_nan() { v } else { v.clamp(self.lower, self.upper) };
        (clamp(band.0), clamp(band.1))
    }

    /// The domain the name of metric `name` implies: percentages (`_percent`,
    /// `_usage`, except a process's CPU usage, which counts in percent of one
    /// CPU and can pass 100) are `[0, 100]`; sizes (`bytes`), durations
    /// (`_seconds`), rates (`:rate`, `:count_rate`), counts (`_total`,
    /// `_count`), load averages, file descriptors and thread counts are never
    /// negative; anything else is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::Domain;
    /// assert_eq!(Domain::of_metric("system_disk_usage"), Domain::PERCENT);
    /// assert_eq!(Domain::of_metric("app_cpu_usage"), Domain::NON_NEGATIVE);
    /// assert_eq!(Domain::of_metric("system_load_average_15m"), Domain::NON_NEGATIVE);
    /// assert_eq!(Domain::of_metric("message_latency_seconds:p99"), Domain::NON_NEGATIVE);
    /// ```
    pub fn of_metric(name: &str) -> Domain {
        let base = name.split_once(':').map_or(name, |(b, _)| b);
        match Unit::of_metric(name) {
            Unit::Percent if base == "app_cpu_usage" => Domain::NON_NEGATIVE,
            Unit::Percent => Domain::PERCENT,
            Unit::None => {
                let counted = base.ends_with("_total")
                    || base.ends_with("_count")
                    || base.contains("load_average")
                    || base.ends_with("_file_descriptors")
                    || base.ends_with("_thread_count");
                if counted { Domain::NON_NEGATIVE } else { Domain::UNBOUNDED }
            }
            _ => Domain::NON_NEGATIVE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_metrics_get_their_domains() {
        for name in ["system_cpu_usage", "system_memory_usage", "system_swap_usage"] {
            assert_eq!(Domain::of_metric(name), Domain::PERCENT, "{name}");
        }
        for name in [
            "system_network_bytes_sent:rate",
            "app_memory_usage",
            "app_file_descriptors",
            "app_thread_count",
            "requests_total:rate",
        ] {
            assert_eq!(Domain::of_metric(name), Domain::NON_NEGATIVE, "{name}");
        }
        assert_eq!(Domain::of_metric("queue_depth_delta"), Domain::UNBOUNDED);
    }

    #[test]
    fn clamping_keeps_nan_and_order() {
        let (lo, hi) = Domain::PERCENT.clamp_band((f64::NAN, 50.0));
        assert!(lo.is_nan());
        assert!((hi - 50.0).abs() < f64::EPSILON);
        let (lo, hi) = Domain::PERCENT.clamp_band((-5.0, -1.0));
        assert!(lo <= hi && lo.abs() < f64::EPSILON);
    }
}
