//! Numbers for people: significant digits, no floating-point noise, units
//! inferred from a metric's name.
//!
//! Alert templates, the performance summary's issues and the examples' log
//! lines all print numbers through [`format_number`] and [`Unit::format`], so
//! a value reads the same everywhere.

/// How many significant digits [`format_number`] keeps (the integer part of a
/// larger number is never rounded away).
const SIGNIFICANT_DIGITS: i32 = 4;

/// Writes `v` with at most 4 significant digits and no trailing zeros.
///
/// The integer part of a number of 10 000 or more is kept whole (it rounds to
/// an integer). Magnitudes below 10⁻⁶ or from 10¹⁵ up use exponent notation
/// (`1.5e-9`); `NaN`, `+Inf` and `-Inf` are spelled out as Prometheus does.
/// Floating-point noise such as `0.0030000000000000005` reads `0.003`.
///
/// # Examples
///
/// ```
/// use watchpost::format_number;
/// assert_eq!(format_number(0.1 + 0.2), "0.3");
/// assert_eq!(format_number(0.003_000_000_000_000_000_5), "0.003");
/// assert_eq!(format_number(86_019.305_019_305_01), "86019");
/// assert_eq!(format_number(58.823_532_104_492_19), "58.82");
/// assert_eq!(format_number(1e-4), "0.0001");
/// assert_eq!(format_number(-2.5), "-2.5");
/// ```
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".to_owned();
    }
    if !(1e-6..1e15).contains(&a) {
        let digits = usize::try_from(SIGNIFICANT_DIGITS - 1).unwrap_or(3);
        let s = format!("{v:.digits$e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
            None => s,
        };
    }
    #[allow(clippy::cast_possible_truncation, reason = "log10 of a value in [1e-6, 1e15)")]
    let magnitude = a.log10().floor() as i32;
    let decimals = usize::try_from(SIGNIFICANT_DIGITS - 1 - magnitude).unwrap_or(0);
    let s = format!("{v:.decimals$}");
    let s = trim_zeros(&s);
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// Drops trailing zeros after a decimal point, and the point if nothing follows.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// The unit of a metric's values, for display.
///
/// [`Unit::of_metric`] infers it from the name's suffix, following
/// Prometheus' naming conventions; [`Unit::format`] writes a value with
/// [`format_number`] and the unit, scaled to a readable size.
///
/// # Examples
///
/// ```
/// use watchpost::Unit;
/// assert_eq!(Unit::of_metric("message_latency_seconds:p90"), Unit::Seconds);
/// assert_eq!(Unit::Seconds.format(0.025_3), "25.3 ms");
/// assert_eq!(Unit::of_metric("system_cpu_usage").format(58.823_532), "58.82%");
/// assert_eq!(Unit::of_metric("heap_bytes").format(3.5 * 1024.0 * 1024.0), "3.5 MiB");
/// assert_eq!(Unit::of_metric("messages_total:rate").format(12.0), "12/s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// A plain number.
    None,
    /// Bytes, shown in B, KiB, MiB, GiB, TiB or PiB.
    Bytes,
    /// Mebibytes (watchpost's own `app_memory_usage`), shown like [`Unit::Bytes`].
    Mebibytes,
    /// Seconds, shown in ns, µs, ms, s, min, h or d.
    Seconds,
    /// Percent (0–100), shown with `%`.
    Percent,
    /// Events per second (a counter's `:rate`, a histogram's `:count_rate`).
    PerSecond,
    /// Bytes per second (the `:rate` of a byte counter).
    BytesPerSecond,
}

impl Unit {
    /// The unit of series `name`, from its suffix: `_bytes` (or a `bytes`
    /// word, as in `system_network_bytes_sent`) → [`Bytes`](Unit::Bytes),
    /// `_seconds` → [`Seconds`](Unit::Seconds), `_percent` and `_usage` →
    /// [`Percent`](Unit::Percent), each also before `_total`. Derived series
    /// keep their source's unit (`:p99`), except rates: `:rate` is per second
    /// ([`BytesPerSecond`](Unit::BytesPerSecond) for bytes) and `:count_rate`
    /// is [`PerSecond`](Unit::PerSecond). `app_memory_usage` is in
    /// [`Mebibytes`](Unit::Mebibytes). Anything else is [`Unit::None`].
    ///
    /// A histogram's base series counts observations: format it with
    /// [`Unit::None`], whatever its name.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::Unit;
    /// assert_eq!(Unit::of_metric("system_memory_usage"), Unit::Percent);
    /// assert_eq!(Unit::of_metric("system_network_bytes_sent:rate"), Unit::BytesPerSecond);
    /// assert_eq!(Unit::of_metric("message_latency_seconds:count_rate"), Unit::PerSecond);
    /// assert_eq!(Unit::of_metric("active_users"), Unit::None);
    /// ```
    pub fn of_metric(name: &str) -> Unit {
        let (base, derived) = name.split_once(':').unwrap_or((name, ""));
        let base = base.strip_suffix("_total").unwrap_or(base);
        let unit = if base == "app_memory_usage" {
            Unit::Mebibytes
        } else if base.split('_').any(|word| word == "bytes") {
            Unit::Bytes
        } else if base.ends_with("_seconds") {
            Unit::Seconds
        } else if base.ends_with("_percent") || base.ends_with("_usage") {
            Unit::Percent
        } else {
            Unit::None
        };
        match derived {
            "rate" if matches!(unit, Unit::Bytes | Unit::Mebibytes) => Unit::BytesPerSecond,
            "rate" | "count_rate" => Unit::PerSecond,
            _ => unit,
        }
    }

    /// Writes `v` in this unit: [`format_number`] of the value scaled to a
    /// readable size, then the unit's symbol.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::Unit;
    /// assert_eq!(Unit::Seconds.format(300.0), "5 min");
    /// assert_eq!(Unit::Seconds.format(0.000_05), "50 µs");
    /// assert_eq!(Unit::Bytes.format(1536.0), "1.5 KiB");
    /// assert_eq!(Unit::Percent.format(0.0030000000000000005), "0.003%");
    /// assert_eq!(Unit::None.format(86_019.305), "86019");
    /// ```
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return format_number(v);
        }
        match self {
            Unit::None => format_number(v),
            Unit::Percent => format!("{}%", format_number(v)),
            Unit::PerSecond => format!("{}/s", format_number(v)),
            Unit::Bytes => bytes(v),
            Unit::Mebibytes => bytes(v * 1024.0 * 1024.0),
            Unit::BytesPerSecond => format!("{}/s", bytes(v)),
            Unit::Seconds => seconds(v),
        }
    }
}

/// Bytes in binary multiples.
fn bytes(v: f64) -> String {
    const SYMBOLS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = v;
    let mut symbol = SYMBOLS[0];
    for next in &SYMBOLS[1..] {
        if scaled.abs() < 1024.0 {
            break;
        }
        scaled /= 1024.0;
        symbol = next;
    }
    format!("{} {symbol}", format_number(scaled))
}

/// Seconds in the largest unit that keeps the number at 1 or more.
fn seconds(v: f64) -> String {
    let a = v.abs();
    let (scaled, symbol) = if a == 0.0 {
        (0.0, "s")
    } else if a >= 2.0 * 86_400.0 {
        (v / 86_400.0, "d")
    } else if a >= 7_200.0 {
        (v / 3_600.0, "h")
    } else if a >= 120.0 {
        (v / 60.0, "min")
    } else if a >= 1.0 {
        (v, "s")
    } else if a >= 1e-3 {
        (v * 1e3, "ms")
    } else if a >= 1e-6 {
        (v * 1e6, "µs")
    } else {
        (v * 1e9, "ns")
    };
    format!("{} {symbol}", format_number(scaled))
}

/// An `f32` reading as the `f64` its shortest decimal form denotes, so that
/// 58.823532 stays 58.823532 instead of becoming 58.82353210449219.
#[cfg(any(feature = "system", test))]
pub(crate) fn f32_to_f64(x: f32) -> f64 {
    if x.is_finite() { x.to_string().parse().unwrap_or(f64::from(x)) } else { f64::from(x) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn noise_is_gone() {
        for (v, want) in [
            (0.003_000_000_000_000_000_5, "0.003"),
            (86_019.305_019_305_01, "86019"),
            (58.823_532_104_492_19, "58.82"),
            (1e-4, "0.0001"),
            (0.1 + 0.2, "0.3"),
            (100.0, "100"),
            (1234.56, "1235"),
            (0.047_512, "0.04751"),
            (-1e-15, "-1e-15"),
            (-0.000_04, "-0.00004"),
            (2.5e18, "2.5e18"),
            (9.999_96, "10"),
            (0.0, "0"),
            (-0.0, "0"),
        ] {
            assert_eq!(format_number(v), want, "{v:?}");
        }
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(Unit::Seconds.format(f64::INFINITY), "+Inf");
    }

    #[test]
    fn units_scale() {
        assert_eq!(Unit::Seconds.format(0.0), "0 s");
        assert_eq!(Unit::Seconds.format(0.020), "20 ms");
        assert_eq!(Unit::Seconds.format(1.5e-7), "150 ns");
        assert_eq!(Unit::Seconds.format(59.0), "59 s");
        assert_eq!(Unit::Seconds.format(3.0 * 3600.0), "3 h");
        assert_eq!(Unit::Seconds.format(3.0 * 86_400.0), "3 d");
        assert_eq!(Unit::Bytes.format(512.0), "512 B");
        assert_eq!(Unit::Bytes.format(5.0 * 1024.0_f64.powi(3)), "5 GiB");
        assert_eq!(Unit::Mebibytes.format(35.25), "35.25 MiB");
        assert_eq!(Unit::BytesPerSecond.format(2048.0), "2 KiB/s");
        assert_eq!(Unit::PerSecond.format(0.5), "0.5/s");
    }

    #[test]
    fn units_from_names() {
        for (name, unit) in [
            ("http_request_duration_seconds", Unit::Seconds),
            ("cpu_seconds_total", Unit::Seconds),
            ("cpu_seconds_total:rate", Unit::PerSecond),
            ("heap_bytes", Unit::Bytes),
            ("sent_bytes_total:rate", Unit::BytesPerSecond),
            ("system_network_bytes_recv", Unit::Bytes),
            ("disk_percent", Unit::Percent),
            ("system_disk_usage", Unit::Percent),
            ("app_memory_usage", Unit::Mebibytes),
            ("app_memory_usage:rate", Unit::BytesPerSecond),
            ("message_latency_seconds:p99", Unit::Seconds),
            ("room_occupancy", Unit::None),
            ("bytesize", Unit::None),
        ] {
            assert_eq!(Unit::of_metric(name), unit, "{name}");
        }
    }

    #[test]
    fn f32_readings_keep_their_shortest_form() {
        let reading = 58.823_532_f32;
        assert_eq!(f64::from(reading).to_string(), "58.82353210449219");
        assert_eq!(f32_to_f64(reading).to_string(), "58.823532");
        assert_eq!(f32_to_f64(0.1), 0.1);
        assert!(f32_to_f64(f32::NAN).is_nan());
        assert_eq!(f32_to_f64(f32::INFINITY), f64::INFINITY);
    }

    /// Significant digits of a decimal string: digits from the first non-zero
    /// one, not counting the exponent or trailing integer zeros' absence.
    fn significant(s: &str) -> usize {
        let mantissa = s.split('e').next().unwrap_or(s);
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits.trim_start_matches('0').len()
    }

    proptest! {
        #[test]
        fn at_most_four_significant_digits_and_close(v in prop::num::f64::NORMAL) {
            let s = format_number(v);
            let back: f64 = s.parse().unwrap();
            let integer_digits = if v.abs() >= 1.0 && v.abs() < 1e15 {
                format!("{:.0}", v.abs()).len()
            } else {
                0
            };
            prop_assert!(significant(&s) <= integer_digits.max(4), "{v:?} -> {s}");
            prop_assert!(((back - v) / v).abs() <= 5e-4, "{v:?} -> {s}");
            prop_assert!(!s.contains("-0") || s.starts_with("-0."), "{v:?} -> {s}");
        }

        #[test]
        fn f32_readings_round_trip(x in prop::num::f32::NORMAL) {
            let wide = f32_to_f64(x);
            #[allow(clippy::cast_possible_truncation)]
            let narrow = wide as f32;
            prop_assert_eq!(narrow, x);
            prop_assert!(wide.to_string().len() <= x.to_string().len() + 1);
        }

        #[test]
        fn units_never_panic(v in prop::num::f64::ANY, name in "[a-z_:]{0,24}") {
            let s = Unit::of_metric(&name).format(v);
            prop_assert!(!s.is_empty());
        }
    }
}
