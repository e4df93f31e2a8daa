//! Time as an input: the [`Clock`] trait, the real [`SystemClock`] and, with
//! feature `test-util`, the [`ManualClock`] that tests move by hand.

use std::fmt;
#[cfg(any(test, feature = "test-util"))]
use std::sync::Arc;
#[cfg(any(test, feature = "test-util"))]
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// The longest duration any watchpost setting takes: 100 years (of 365 days).
///
/// Longer durations, up to [`Duration::MAX`](std::time::Duration::MAX),
/// saturate to it, so an "as good as forever" timeout or window is accepted
/// and no deadline computed from it can overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(watchpost::MAX_DURATION, Duration::from_hours(100 * 365 * 24));
/// assert!(Duration::MAX > watchpost::MAX_DURATION);
/// ```
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_hours(100 * 365 * 24);

/// Milliseconds in `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A source of the current time. Every time-dependent decision in watchpost reads one.
///
/// # Examples
///
/// ```
/// use watchpost::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now.timestamp() > 0);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// A reading in nanoseconds for measuring durations: only the difference
    /// between two readings of the same clock means anything. Cheaper than
    /// [`now`](Self::now) on [`SystemClock`] (a monotonic `Instant`, no date
    /// conversion); [`ManualClock`] returns its milliseconds × 10⁶, so
    /// durations measured on it are exact.
    ///
    /// Defaults to [`now_ms`](Self::now_ms) × 10⁶ (saturating).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Clock, SystemClock};
    /// let start = SystemClock.monotonic_nanos();
    /// assert!(SystemClock.monotonic_nanos() >= start);
    /// ```
    fn monotonic_nanos(&self) -> i64 {
        self.now_ms().saturating_mul(1_000_000)
    }

    /// The current time in milliseconds since the Unix epoch, read as
    /// cheaply as the clock can: it may be behind [`now_ms`](Self::now_ms)
    /// by up to the clock's granularity, never ahead of it. `record()` and
    /// [`Recorder::record`](crate::Recorder::record) stamp their samples
    /// with it, so it is read once per recorded sample.
    ///
    /// Defaults to [`now_ms`](Self::now_ms), so a clock that does not
    /// override it (like [`ManualClock`]) stamps samples exactly. On Linux
    /// [`SystemClock`] reads `CLOCK_REALTIME_COARSE`: the wall time at the
    /// kernel's last timer tick (1 to 10 ms apart, 4 ms on most
    /// distributions' kernels), several times cheaper than a precise
    /// reading.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Clock, SystemClock};
    /// let coarse = SystemClock.coarse_now_ms();
    /// let precise = SystemClock.now_ms();
    /// assert!(coarse <= precise && precise - coarse < 1_000);
    /// ```
    fn coarse_now_ms(&self) -> i64 {
        self.now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
    fn monotonic_nanos(&self) -> i64 {
        (**self).monotonic_nanos()
    }
    fn coarse_now_ms(&self) -> i64 {
        (**self).coarse_now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
    fn monotonic_nanos(&self) -> i64 {
        (**self).monotonic_nanos()
    }
    fn coarse_now_ms(&self) -> i64 {
        (**self).coarse_now_ms()
    }
}

/// The wall clock (`chrono::Utc::now`). The engine's default.
///
/// # Examples
///
/// ```
/// use watchpost::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
    /// Nanoseconds since the first call in this process, from `quanta`: the
    /// CPU's invariant time-stamp counter scaled to nanoseconds where it has
    /// one, else the operating system's monotonic clock. About half the cost
    /// of an `Instant` reading where the TSC is usable; the `tracing` layer
    /// and the HTTP middleware read it twice per span or request.
    fn monotonic_nanos(&self) -> i64 {
        static BASE: std::sync::OnceLock<(quanta::Clock, u64)> = std::sync::OnceLock::new();
        let (clock, base) = BASE.get_or_init(|| {
            let clock = quanta::Clock::new();
            let base = clock.raw();
            (clock, base)
        });
        i64::try_from(clock.delta_as_nanos(*base, clock.raw())).unwrap_or(i64::MAX)
    }
    /// On Linux, `CLOCK_REALTIME_COARSE` from the vDSO: the wall time at the
    /// kernel's last timer tick (`CONFIG_HZ`: 1 to 10 ms), without reading
    /// the time-stamp counter. Elsewhere [`now_ms`](Clock::now_ms).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[allow(clippy::useless_conversion)] // tv_nsec is a c_long on some targets
    fn coarse_now_ms(&self) -> i64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        t.tv_sec.saturating_mul(1_000).saturating_add(i64::from(t.tv_nsec) / 1_000_000)
    }
}

/// A clock that only moves when told to. Clones share one time.
///
/// Available with feature `test-util`. Combine it with a long sample interval
/// and [`Monitor::flush`](crate::Monitor::flush) for deterministic tests.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::{Clock, ManualClock};
/// let clock = ManualClock::at_millis(1_000);
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock standing at `millis` milliseconds after the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Clock, ManualClock};
    /// assert_eq!(ManualClock::at_millis(0).now().timestamp(), 0);
    /// ```
    pub fn at_millis(millis: i64) -> Self {
        ManualClock { millis: Arc::new(AtomicI64::new(millis)) }
    }

    /// A clock standing at `time` (millisecond precision).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Clock, ManualClock};
    /// let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    /// assert_eq!(ManualClock::at(t).now(), t);
    /// ```
    pub fn at(time: DateTime<Utc>) -> Self {
        Self::at_millis(time.timestamp_millis())
    }

    /// Moves the clock forward by `by` (millisecond precision), saturating
    /// at `i64::MAX` milliseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use watchpost::{Clock, ManualClock};
    /// let clock = ManualClock::at_millis(0);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.now_ms(), 2_000);
    /// ```
    pub fn advance(&self, by: std::time::Duration) {
        let ms = duration_ms(by);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(ms)));
    }

    /// Sets the clock to `millis` milliseconds after the Unix epoch (it may go backwards).
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::{Clock, ManualClock};
    /// let clock = ManualClock::at_millis(5);
    /// clock.set_millis(3);
    /// assert_eq!(clock.now_ms(), 3);
    /// ```
    pub fn set_millis(&self, millis: i64) {
        self.millis.store(millis, Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        ms_to_datetime(self.now_ms())
    }
    fn now_ms(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(any(test, feature = "test-util"))]
impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("millis", &self.millis.load(Ordering::SeqCst)).finish()
    }
}

/// Converts milliseconds since the Unix epoch to a `DateTime`, saturating at chrono's range.
pub(crate) fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

impl fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_nanos_follow_the_manual_clock_exactly_and_the_system_clock_forward() {
        let clock = ManualClock::at_millis(1_500);
        let shared: std::sync::Arc<dyn Clock> = std::sync::Arc::new(clock.clone());
        assert_eq!(shared.monotonic_nanos(), 1_500_000_000);
        clock.advance(std::time::Duration::from_millis(7));
        assert_eq!(shared.monotonic_nanos(), 1_507_000_000);
        let a = SystemClock.monotonic_nanos();
        let b = SystemClock.monotonic_nanos();
        assert!(a >= 0 && b >= a, "{a} then {b}");
    }

    #[test]
    fn coarse_readings_lag_the_precise_clock_by_less_than_a_tick_and_are_exact_on_the_manual_clock()
    {
        let clock = ManualClock::at_millis(1_234);
        let shared: std::sync::Arc<dyn Clock> = std::sync::Arc::new(clock.clone());
        assert_eq!(shared.coarse_now_ms(), 1_234);
        clock.advance(std::time::Duration::from_millis(1));
        assert_eq!(shared.coarse_now_ms(), 1_235);
        // the coarse reading is never ahead of a precise one taken after it,
        // and behind it by at most one timer tick (10 ms at the slowest
        // common CONFIG_HZ; a descheduled thread may see more, hence the slack)
        let mut lags = Vec::new();
        for _ in 0..1_000 {
            let coarse = SystemClock.coarse_now_ms();
            let precise = SystemClock.now_ms();
            assert!(coarse <= precise, "coarse {coarse} ahead of precise {precise}");
            lags.push(precise - coarse);
        }
        lags.sort_unstable();
        assert!(lags[lags.len() / 2] <= 10, "median lag {} ms", lags[lags.len() / 2]);
    }

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::at_millis(i64::MAX - 10);
        clock.advance(std::time::Duration::from_millis(5));
        assert_eq!(clock.now_ms(), i64::MAX - 5);
        clock.advance(std::time::Duration::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
        assert_eq!(duration_ms(MAX_DURATION), 3_153_600_000_000);
    }
}
