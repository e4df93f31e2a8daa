//! Health checks: named components (a database, a cache, a peer) with a
//! check closure, a timeout and a latency threshold.
//!
//! Register them with [`Monitor::register_health_check`](crate::Monitor::register_health_check);
//! [`Monitor::health`](crate::Monitor::health) runs them all and returns a
//! [`HealthReport`]. A component is
//!
//! - [`Status::Healthy`] when its check returns `Ok` within the latency threshold,
//! - [`Status::Degraded`] when it returns `Ok` but slower than that,
//! - [`Status::Unhealthy`] when it returns `Err`, panics, or does not return within its timeout.
//!
//! The overall status is the worst status of the critical components; a
//! non-critical component that fails or is slow makes it
//! [`Status::Degraded`] at most. Without components it is healthy.
//!
//! Checks run on their own threads, in parallel, never on the caller's
//! thread, so a check that hangs costs the caller its timeout and nothing
//! more. A check that is still running from an earlier call is not started
//! again: later calls wait for that run (until its timeout counted from when
//! it started), so a hung check holds at most one thread. Timeouts and
//! latencies are measured on the monotonic clock ([`std::time::Instant`]);
//! `checked_at` comes from the engine's clock.
//!
//! Each run also updates two gauges per component, so alert rules and
//! Prometheus see the results: `health_check_up{component="…"}` (1 unless
//! unhealthy, else 0) and `health_check_latency_seconds{component="…"}`.
//! They change only when the checks run: when the application calls
//! [`Monitor::health`](crate::Monitor::health), on `GET /health/detailed`,
//! and periodically while the HTTP server (feature `http`) runs.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use watchpost::health::{HealthCheck, Status};
//!
//! let engine = watchpost::Engine::builder().without_system_source().build()?;
//! engine.register_health_check(
//!     HealthCheck::new("database", || Ok(()))
//!         .timeout(Duration::from_secs(1))
//!         .degraded_after(Duration::from_millis(200)),
//! )?;
//! engine.register_health_check(
//!     HealthCheck::new("cache", || Err("connection refused".to_owned())).critical(false),
//! )?;
//!
//! let report = engine.health();
//! assert_eq!(report.status, Status::Degraded); // only a non-critical component failed
//! let cache = report.components.iter().find(|c| c.name == "cache").unwrap();
//! assert_eq!(cache.status, Status::Unhealthy);
//! assert_eq!(cache.error.as_deref(), Some("connection refused"));
//! assert!(engine.prometheus_text().contains("health_check_up{component=\"cache\"} 0.0"));
//! # Ok::<(), watchpost::Error>(())
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use crate::clock::ms_to_datetime;
use crate::error::Result;
use crate::metric::Gauge;
use crate::registry::Registry;

/// Default timeout of a check: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default latency above which a passing check is degraded: 1 s.
pub const DEFAULT_DEGRADED_AFTER: Duration = Duration::from_secs(1);

const UP: &str = "health_check_up";
const LATENCY: &str = "health_check_latency_seconds";

type CheckFn = dyn Fn() -> std::result::Result<(), String> + Send + Sync;

/// A named component's check: a closure returning `Ok(())` when the
/// component works, `Err(reason)` when it does not.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::health::HealthCheck;
/// let check = HealthCheck::new("peer", || {
///     std::net::TcpStream::connect_timeout(&"127.0.0.1:9".parse().unwrap(), Duration::from_millis(100))
///         .map(drop)
///         .map_err(|e| e.to_string())
/// })
/// .timeout(Duration::from_millis(500))
/// .critical(false);
/// assert_eq!(check.name(), "peer");
/// ```
#[derive(Clone)]
#[must_use = "a health check does nothing until it is registered"]
pub struct HealthCheck {
    name: String,
    check: Arc<CheckFn>,
    timeout: Duration,
    degraded_after: Duration,
    critical: bool,
}

impl HealthCheck {
    /// A check of component `name` (any text; it becomes the `component`
    /// label), critical, with the default timeout and latency threshold.
    ///
    /// # Examples
    ///
    /// ```
    /// let check = watchpost::health::HealthCheck::new("cache", || Ok(()));
    /// # let _ = check;
    /// ```
    pub fn new(
        name: impl Into<String>,
        check: impl Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        HealthCheck {
            name: name.into(),
            check: Arc::new(check),
            timeout: DEFAULT_TIMEOUT,
            degraded_after: DEFAULT_DEGRADED_AFTER,
            critical: true,
        }
    }

    /// How long a run may take before the component counts as unhealthy.
    /// Longer than [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// Defaults to [`DEFAULT_TIMEOUT`] (5 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let check = watchpost::health::HealthCheck::new("db", || Ok(())).timeout(Duration::from_secs(2));
    /// # let _ = check;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(crate::MAX_DURATION);
        self
    }

    /// Latency above which a passing check makes the component degraded.
    /// Longer than [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// Defaults to [`DEFAULT_DEGRADED_AFTER`] (1 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let check = watchpost::health::HealthCheck::new("db", || Ok(()))
    ///     .degraded_after(Duration::from_millis(250));
    /// # let _ = check;
    /// ```
    pub fn degraded_after(mut self, latency: Duration) -> Self {
        self.degraded_after = latency.min(crate::MAX_DURATION);
        self
    }

    /// Whether the component's status decides the overall status. A
    /// non-critical component that fails only degrades it.
    ///
    /// Defaults to `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// let check = watchpost::health::HealthCheck::new("cache", || Ok(())).critical(false);
    /// # let _ = check;
    /// ```
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// The component's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::health::HealthCheck::new("db", || Ok(())).name(), "db");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("degraded_after", &self.degraded_after)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

/// The health of a component, or of the whole application.
///
/// Ordered from best to worst, so the worst of several is their `max`.
///
/// # Examples
///
/// ```
/// use watchpost::health::Status;
/// assert!(Status::Unhealthy > Status::Degraded);
/// assert_eq!(serde_json::to_string(&Status::Degraded)?, "\"degraded\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Working, and fast enough.
    Healthy,
    /// Working but slow, or a non-critical component is failing.
    Degraded,
    /// Failing, or not answering within its timeout.
    Unhealthy,
}

impl Status {
    /// The lowercase name, as in JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::health::Status::Healthy.as_str(), "healthy");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one component's check.
///
/// # Examples
///
/// ```
/// use watchpost::health::{HealthCheck, Status};
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// engine.register_health_check(HealthCheck::new("db", || Ok(())))?;
/// let db = &engine.health().components[0];
/// assert_eq!((db.name.as_str(), db.status, db.critical), ("db", Status::Healthy, true));
/// assert!(db.error.is_none());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// The component's name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Whether it decides the overall status.
    pub critical: bool,
    /// How long the check took, in seconds (the timeout if it did not return).
    pub latency_seconds: f64,
    /// Why it is unhealthy or degraded; `null` when healthy.
    pub error: Option<String>,
}

/// Every component's health and the overall status.
///
/// # Examples
///
/// ```
/// use watchpost::health::Status;
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let report = engine.health();
/// assert_eq!(report.status, Status::Healthy); // no components
/// assert!(report.components.is_empty());
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The worst status of the critical components; failing non-critical
    /// components make it degraded at most.
    pub status: Status,
    /// When the checks ran (engine clock).
    pub checked_at: DateTime<Utc>,
    /// Each component, sorted by name.
    pub components: Vec<ComponentHealth>,
    /// Panics the engine's worker caught and survived since the engine
    /// started (also `watchpost_worker_panics_total`). They do not change
    /// `status`, which is about the application's components.
    #[serde(default)]
    pub worker_panics: u64,
    /// The message of the newest of them.
    #[serde(default)]
    pub last_worker_panic: Option<String>,
}

/// The outcome of one run of a check.
type Outcome = (std::result::Result<(), String>, Duration);

/// One run of a check, shared by every caller that waits for it.
struct Run {
    started: Instant,
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

struct Registered {
    check: HealthCheck,
    up: Gauge,
    latency: Gauge,
    /// The newest run; a new one starts only when it has finished.
    run: Mutex<Option<Arc<Run>>>,
}

/// The health checks of one engine (kept with its registry).
#[derive(Default)]
pub(crate) struct HealthChecks {
    checks: Mutex<Vec<Arc<Registered>>>,
}

/// Registers `check`, replacing a check of the same name.
pub(crate) fn register(registry: &Registry, check: HealthCheck) -> Result<()> {
    let labels = [("component", check.name.as_str())];
    let up = registry.gauge(UP, &labels)?;
    let latency = registry.gauge(LATENCY, &labels)?;
    registry.describe(UP, "Whether a health-checked component is up (1) or unhealthy (0).")?;
    registry.describe(LATENCY, "How long the component's last health check took.")?;
    up.set(1.0);
    let registered = Arc::new(Registered { check, up, latency, run: Mutex::new(None) });
    let checks = registry.extension::<HealthChecks>();
    let mut all = checks.checks.lock();
    all.retain(|r| r.check.name != registered.check.name);
    let at = all.partition_point(|r| r.check.name < registered.check.name);
    all.insert(at, registered);
    Ok(())
}

/// Runs every check (in parallel) and reports, at `now_ms` by the engine's clock.
pub(crate) fn run_all(registry: &Registry, now_ms: i64) -> HealthReport {
    let checks: Vec<Arc<Registered>> = registry.extension::<HealthChecks>().checks.lock().clone();
    let runs: Vec<_> = checks.iter().map(|r| start(r)).collect();
    let components: Vec<ComponentHealth> =
        checks.iter().zip(runs).map(|(r, run)| finish(r, run)).collect();
    let status = components
        .iter()
        .map(|c| if c.critical { c.status } else { c.status.min(Status::Degraded) })
        .max()
        .unwrap_or(Status::Healthy);
    HealthReport {
        status,
        checked_at: ms_to_datetime(now_ms),
        components,
        worker_panics: 0,
        last_worker_panic: None,
    }
}

/// Starts a run of `r`, or joins the one still in progress.
fn start(r: &Registered) -> std::result::Result<Arc<Run>, String> {
    let mut slot = r.run.lock();
    if let Some(run) = slot.as_ref()
        && run.outcome.lock().is_none()
    {
        return Ok(Arc::clone(run));
    }
    let run =
        Arc::new(Run { started: Instant::now(), outcome: Mutex::new(None), done: Condvar::new() });
    let check = Arc::clone(&r.check.check);
    let shared = Arc::clone(&run);
    thread::Builder::new()
        .name("watchpost-health".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| check()))
                .unwrap_or_else(|_| Err("the check panicked".to_owned()));
            let took = shared.started.elapsed();
            *shared.outcome.lock() = Some((result, took));
            shared.done.notify_all();
        })
        .map_err(|e| format!("cannot start a thread for the check: {e}"))?;
    *slot = Some(Arc::clone(&run));
    Ok(run)
}

/// Waits for `run` until the check's timeout and turns the outcome into a component status.
fn finish(r: &Registered, run: std::result::Result<Arc<Run>, String>) -> ComponentHealth {
    let check = &r.check;
    let (status, latency, error) = match run {
        Err(e) => (Status::Unhealthy, Duration::ZERO, Some(e)),
        Ok(run) => {
            // no deadline past what `Instant` can hold: wait for the outcome
            let deadline = run.started.checked_add(check.timeout);
            let mut outcome = run.outcome.lock();
            while outcome.is_none() {
                match deadline {
                    Some(d) if run.done.wait_until(&mut outcome, d).timed_out() => break,
                    Some(_) => {}
                    None => run.done.wait(&mut outcome),
                }
            }
            match outcome.clone() {
                None => (
                    Status::Unhealthy,
                    run.started.elapsed(),
                    Some(format!("no answer within the timeout of {:?}", check.timeout)),
                ),
                Some((Err(e), took)) => (Status::Unhealthy, took, Some(e)),
                Some((Ok(()), took)) if took > check.degraded_after => (
                    Status::Degraded,
                    took,
                    Some(format!(
                        "slow: took {took:?}, more than the threshold of {:?}",
                        check.degraded_after
                    )),
                ),
                Some((Ok(()), took)) => (Status::Healthy, took, None),
            }
        }
    };
    r.up.set(if status == Status::Unhealthy { 0.0 } else { 1.0 });
    r.latency.set(latency.as_secs_f64());
    ComponentHealth {
        name: check.name.clone(),
        status,
        critical: check.critical,
        latency_seconds: latency.as_secs_f64(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_status_follows_critical_components() {
        let reg = Registry::new(100);
        register(&reg, HealthCheck::new("a", || Ok(()))).unwrap();
        assert_eq!(run_all(&reg, 0).status, Status::Healthy);
        register(&reg, HealthCheck::new("b", || Err("down".into())).critical(false)).unwrap();
        assert_eq!(run_all(&reg, 0).status, Status::Degraded);
        register(&reg, HealthCheck::new("c", || Err("down".into()))).unwrap();
        let report = run_all(&reg, 0);
        assert_eq!(report.status, Status::Unhealthy);
        let names: Vec<&str> = report.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        // re-registering replaces
        register(&reg, HealthCheck::new("c", || Ok(()))).unwrap();
        assert_eq!(run_all(&reg, 0).status, Status::Degraded);
        assert_eq!(run_all(&reg, 0).components.len(), 3);
    }

    #[test]
    fn slow_checks_degrade_and_panics_fail() {
        let reg = Registry::new(100);
        // any run takes longer than a threshold of zero
        register(&reg, HealthCheck::new("slow", || Ok(())).degraded_after(Duration::ZERO)).unwrap();
        register(&reg, HealthCheck::new("boom", || panic!("kaboom"))).unwrap();
        let report = run_all(&reg, 0);
        let slow = report.components.iter().find(|c| c.name == "slow").unwrap();
        assert_eq!(slow.status, Status::Degraded);
        assert!(slow.error.as_deref().unwrap().starts_with("slow"));
        let boom = report.components.iter().find(|c| c.name == "boom").unwrap();
        assert_eq!(boom.status, Status::Unhealthy);
        assert_eq!(boom.error.as_deref(), Some("the check panicked"));
    }

    #[test]
    fn the_longest_timeouts_saturate_and_do_not_panic() {
        let reg = Registry::new(100);
        let check =
            HealthCheck::new("db", || Ok(())).timeout(Duration::MAX).degraded_after(Duration::MAX);
        assert_eq!(
            (check.timeout, check.degraded_after),
            (crate::MAX_DURATION, crate::MAX_DURATION)
        );
        register(&reg, check).unwrap();
        let report = run_all(&reg, 0);
        assert_eq!(report.status, Status::Healthy);
        assert!(report.components[0].error.is_none());
    }

    #[test]
    fn a_hung_check_times_out_and_is_not_started_twice() {
        let reg = Registry::new(100);
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, gate) = crossbeam_channel::bounded::<()>(0);
        let counter = Arc::clone(&started);
        register(
            &reg,
            HealthCheck::new("hung", move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = gate.recv(); // until the test ends
                Ok(())
            })
            .timeout(Duration::from_millis(50)),
        )
        .unwrap();
        let t = Instant::now();
        let first = run_all(&reg, 0);
        let second = run_all(&reg, 0);
        assert!(t.elapsed() < Duration::from_secs(5));
        for report in [&first, &second] {
            assert_eq!(report.status, Status::Unhealthy);
            assert!(report.components[0].error.as_deref().unwrap().contains("timeout"));
        }
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(reg.lookup(UP, &[("component", "hung")]).map(|_| ()), Some(()));
        drop(release);
    }
}
