//! Rates and increases of cumulative counters, with reset handling.

use super::{Point, clean, finite_or, seconds_between};

/// The increase from `prev` to `value` of a counter: a drop means the counter
/// was reset, so the new value is all increase since the reset (Prometheus
/// style). Never negative, always finite.
fn step(prev: f64, value: f64) -> f64 {
    let delta = if value >= prev { value - prev } else { value };
    finite_or(delta.max(0.0), 0.0)
}

/// Per-second rates of a cumulative counter, one point per interval, stamped
/// with the interval's end.
///
/// A value lower than its predecessor is a counter reset: the new value
/// counts as the increase since the reset, so rates are never negative.
/// Points that share a timestamp add their increase to the next interval.
/// Non-finite points are ignored; unsorted input is sorted first.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, counter_rates};
/// let c = [Point::new(0, 100.0), Point::new(10_000, 150.0), Point::new(20_000, 20.0)];
/// let r = counter_rates(&c);
/// assert_eq!(r, vec![Point::new(10_000, 5.0), Point::new(20_000, 2.0)]); // reset: 20 in 10 s
/// ```
pub fn counter_rates(points: &[Point]) -> Vec<Point> {
    let pts = clean(points);
    let Some(first) = pts.first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(pts.len().saturating_sub(1));
    let (mut anchor_ts, mut prev, mut pending) = (first.ts_ms, first.value, 0.0f64);
    for p in &pts[1..] {
        pending = finite_or(pending + step(prev, p.value), f64::MAX);
        prev = p.value;
        if p.ts_ms > anchor_ts {
            let dt = seconds_between(anchor_ts, p.ts_ms);
            out.push(Point::new(p.ts_ms, finite_or(pending / dt, f64::MAX)));
            anchor_ts = p.ts_ms;
            pending = 0.0;
        }
    }
    out
}

/// The total increase of a cumulative counter over the window, counting
/// resets as in [`counter_rates`]. Observed increments are summed without
/// extrapolating to the window's edges. 0 for fewer than two points.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, increase};
/// let c = [Point::new(0, 10.0), Point::new(1000, 30.0), Point::new(2000, 5.0)];
/// assert_eq!(increase(&c), 25.0); // 20, then a reset to 5
/// ```
pub fn increase(points: &[Point]) -> f64 {
    let pts = clean(points);
    let total: f64 = pts.windows(2).map(|w| step(w[0].value, w[1].value)).sum();
    finite_or(total, 0.0)
}

/// The average per-second rate of a cumulative counter over the window:
/// [`increase`] divided by the window's span. `None` with fewer than two
/// finite points or a zero span.
///
/// # Examples
///
/// ```
/// use watchpost::analysis::{Point, average_rate};
/// let c = [Point::new(0, 0.0), Point::new(30_000, 600.0), Point::new(60_000, 900.0)];
/// assert_eq!(average_rate(&c), Some(15.0));
/// ```
pub fn average_rate(points: &[Point]) -> Option<f64> {
    let pts = clean(points);
    let span = seconds_between(pts.first()?.ts_ms, pts.last()?.ts_ms);
    (span > 0.0).then(|| finite_or(increase(&pts) / span, f64::MAX))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the expected values are exact
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resets_and_duplicates() {
        let c = [
            Point::new(0, 5.0),
            Point::new(1000, 8.0),
            Point::new(1000, 9.0), // same instant: carried into the next interval
            Point::new(3000, 1.0), // reset
            Point::new(4000, f64::NAN),
            Point::new(5000, 3.0),
        ];
        let r = counter_rates(&c);
        assert_eq!(r, vec![Point::new(1000, 3.0), Point::new(3000, 1.0), Point::new(5000, 1.0)]);
        assert_eq!(increase(&c), 4.0 + 1.0 + 2.0);
        assert_eq!(average_rate(&c), Some(7.0 / 5.0));
        assert!(counter_rates(&[]).is_empty());
        assert_eq!(increase(&[Point::new(0, 1.0)]), 0.0);
        assert_eq!(average_rate(&[Point::new(0, 1.0), Point::new(0, 2.0)]), None);
    }

    #[test]
    fn unsorted_input_is_sorted() {
        let c = [Point::new(2000, 30.0), Point::new(0, 10.0), Point::new(1000, 20.0)];
        assert_eq!(counter_rates(&c), vec![Point::new(1000, 10.0), Point::new(2000, 10.0)]);
    }

    proptest! {
        #[test]
        fn rates_never_negative(
            raw in prop::collection::vec((0i64..1_000_000, prop::num::f64::ANY), 0..100),
        ) {
            let pts: Vec<Point> = raw.into_iter().map(Point::from).collect();
            for r in counter_rates(&pts) {
                prop_assert!(r.value >= 0.0 && r.value.is_finite());
            }
            let inc = increase(&pts);
            prop_assert!(inc >= 0.0 && inc.is_finite());
            prop_assert!(average_rate(&pts).is_none_or(|r| r >= 0.0 && r.is_finite()));
        }

        #[test]
        fn counter_with_resets_integrates_back(
            incs in prop::collection::vec(0u32..1000, 1..50),
            resets in prop::collection::vec(any::<bool>(), 50),
        ) {
            // build a counter that resets to its increment now and then
            let mut value = 0.0;
            let mut pts = vec![Point::new(0, 0.0)];
            let mut total = 0.0;
            for (i, (&inc, &reset)) in incs.iter().zip(&resets).enumerate() {
                let inc = f64::from(inc);
                // a reset restarts the counter, which then counts `inc`
                value = if reset && inc < value { inc } else { value + inc };
                total += inc;
                pts.push(Point::new(i64::try_from(i + 1).unwrap() * 1000, value));
            }
            let rates = counter_rates(&pts);
            prop_assert!(rates.iter().all(|r| r.value >= 0.0));
            let integrated: f64 = rates.iter().map(|r| r.value).sum(); // 1 s intervals
            prop_assert!((integrated - total).abs() < 1e-6);
            prop_assert!((increase(&pts) - total).abs() < 1e-6);
        }
    }
}
