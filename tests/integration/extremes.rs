//! Every numeric setting at its extremes (0, 1, the largest integer, the
//! longest duration, NaN and the infinities): each either works, through a
//! build, a few collections, the read paths and a shutdown, or is an error
//! naming the setting and the value. Nothing panics, nothing aborts on a
//! huge allocation.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use watchpost::alert::{AlertRule, ChannelNotifier, Severity};
use watchpost::detect::{
    DetectorSpec, EnsembleConfig, EwmaConfig, LikelihoodConfig, NoveltyConfig, RobustZConfig,
    SeasonalConfig,
};
use watchpost::health::HealthCheck;
use watchpost::notify::{Route, Router};
use watchpost::{EngineBuilder, ManualClock, Result};

use crate::util::{T0, builder};

/// A value given to a setting.
#[derive(Debug, Clone, Copy)]
enum V {
    N(usize),
    D(Duration),
    F(f64),
}

const USIZES: [V; 4] = [V::N(0), V::N(1), V::N(2), V::N(usize::MAX)];
const DURATIONS: [V; 5] = [
    V::D(Duration::ZERO),
    V::D(Duration::from_nanos(1)),
    V::D(Duration::from_millis(1)),
    V::D(Duration::from_secs(1)),
    V::D(Duration::MAX),
];
const FLOATS: [V; 8] = [
    V::F(f64::NAN),
    V::F(f64::INFINITY),
    V::F(f64::NEG_INFINITY),
    V::F(-1.0),
    V::F(0.0),
    V::F(0.5),
    V::F(1.0),
    V::F(f64::MAX),
];

impl V {
    fn n(self) -> usize {
        match self {
            V::N(n) => n,
            other => panic!("not a count: {other:?}"),
        }
    }
    fn d(self) -> Duration {
        match self {
            V::D(d) => d,
            other => panic!("not a duration: {other:?}"),
        }
    }
    fn f(self) -> f64 {
        match self {
            V::F(f) => f,
            other => panic!("not a float: {other:?}"),
        }
    }
    fn u32(self) -> u32 {
        u32::try_from(self.n()).unwrap_or(u32::MAX)
    }
    /// How an error message may spell the value.
    fn spellings(self) -> Vec<String> {
        match self {
            V::N(n) if n == usize::MAX => {
                vec![n.to_string(), u32::MAX.to_string(), i64::MAX.to_string()]
            }
            V::N(n) => vec![n.to_string()],
            V::D(d) => vec![
                format!("{d:?}"),
                format!("got {}", d.as_millis()),
                format!("{} ms", d.as_millis()),
                format!("{}ms", d.as_millis()),
                format!("{}s", d.as_secs()),
                format!("{} s", d.as_secs()),
            ],
            V::F(f) => vec![format!("{f}"), format!("{f:?}"), format!("{f:e}")],
        }
    }
}

/// Panics on the engine's own threads (named `watchpost…`) outside test
/// code, as the hook below saw them. Tests elsewhere make handlers and
/// clocks panic on purpose: those panic in `tests/` and are not counted.
static THREAD_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that records [`THREAD_PANICS`].
fn watch_engine_threads() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or_default().to_owned();
            let location = info.location().map(ToString::to_string).unwrap_or_default();
            if thread.starts_with("watchpost") && !location.starts_with("tests/") {
                let mut seen = THREAD_PANICS.lock().unwrap_or_else(PoisonError::into_inner);
                seen.push(format!("thread {thread} at {location}: {info}"));
            }
            previous(info);
        }));
    });
}

/// Runs `run` with each value; returns what went wrong: a panic (on the
/// calling thread or on one of the engine's), or an error that names
/// neither `setting` nor the value.
fn sweep(setting: &str, values: &[V], run: impl Fn(V) -> Result<()>) -> String {
    watch_engine_threads();
    let mut problems = String::new();
    for &v in values {
        eprintln!("{setting} = {v:?}"); // an abort is located by the last line
        let outcome = catch_unwind(AssertUnwindSafe(|| run(v)));
        for panic in THREAD_PANICS.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            let _ = writeln!(problems, "{setting} = {v:?}: {panic}");
        }
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let msg = e.to_string();
                let names_value = v.spellings().iter().any(|s| msg.contains(s.as_str()));
                if !msg.contains(setting) || !names_value {
                    let _ = writeln!(problems, "{setting} = {v:?}: unclear error {msg:?}");
                }
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let _ = writeln!(problems, "{setting} = {v:?}: panicked: {what}");
            }
        }
    }
    problems
}

/// Builds, records through every kind of instrument and `record`, collects
/// three times, reads every view and shuts down.
fn exercise(b: EngineBuilder, clock: &ManualClock) -> Result<()> {
    let engine = b.build()?;
    let gauge = engine.gauge("load")?;
    let requests = engine.counter("requests_total")?;
    let latency = engine.histogram("latency_seconds")?;
    let size = engine.summary("size_bytes")?;
    for i in 0..3 {
        gauge.set(f64::from(i) * 40.0);
        requests.inc();
        latency.observe(0.1);
        size.observe(f64::from(i));
        engine.record("business", &[("room", "a")], f64::from(i))?;
        clock.advance(Duration::from_secs(1));
        engine.flush()?;
    }
    engine.dashboard_json()?;
    let _ = engine.prometheus_text();
    let _ = engine.history("load", Duration::from_mins(1));
    let _ = engine.health();
    let _ = engine.active_alerts();
    engine.shutdown()
}

/// [`exercise`] with `setting` applied to the test builder.
fn engine_with(setting: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Result<()> {
    let clock = ManualClock::at_millis(T0);
    let (tx, _rx) = crossbeam_channel::unbounded();
    let b = builder(&clock)
        .notifier("inbox", ChannelNotifier::new(tx))
        .alert_rule(AlertRule::builder("load_high", "load").above(50.0).build()?);
    exercise(setting(b), &clock)
}

type EngineSetting = fn(EngineBuilder, V) -> EngineBuilder;

#[test]
fn every_engine_setting_works_or_names_itself_and_the_value() {
    let table: Vec<(&str, &[V], EngineSetting)> = vec![
        ("sample_interval", &DURATIONS, |b, v| b.sample_interval(v.d())),
        ("history_capacity", &USIZES, |b, v| b.history_capacity(v.n())),
        ("history_max_age", &DURATIONS, |b, v| b.history_max_age(v.d())),
        ("series_cap", &USIZES, |b, v| b.series_cap(v.n())),
        ("total_series_cap", &USIZES, |b, v| b.total_series_cap(v.n())),
        ("max_name_length", &USIZES, |b, v| b.max_name_length(v.n())),
        ("max_label_value_length", &USIZES, |b, v| b.max_label_value_length(v.n())),
        ("max_labels", &USIZES, |b, v| b.max_labels(v.n())),
        ("record_queue_capacity", &USIZES, |b, v| b.record_queue_capacity(v.n())),
        ("summary_window", &DURATIONS, |b, v| b.summary_window(v.d())),
        ("dashboard_recent_points", &USIZES, |b, v| b.dashboard_recent_points(v.n())),
        ("dashboard_statistics_window", &DURATIONS, |b, v| b.dashboard_statistics_window(v.d())),
        ("anomaly_threshold", &FLOATS, |b, v| b.anomaly_threshold(v.f())),
        ("repeat_interval", &DURATIONS, |b, v| {
            b.alert_repeat_interval(Severity::Warning, Some(v.d()))
        }),
        ("alert_history_capacity", &USIZES, |b, v| b.alert_history_capacity(v.n())),
        ("dashboard_recent_alert_events", &USIZES, |b, v| b.dashboard_recent_alert_events(v.n())),
        ("notification_queue_capacity", &USIZES, |b, v| b.notification_queue_capacity(v.n())),
        ("notifier_queue_capacity", &USIZES, |b, v| b.notifier_queue_capacity(v.n())),
        ("notification_flush_timeout", &DURATIONS, |b, v| b.notification_flush_timeout(v.d())),
        ("notifier_shutdown_grace", &DURATIONS, |b, v| b.notifier_shutdown_grace(v.d())),
        ("notifier_stuck_timeout", &DURATIONS, |b, v| b.notifier_stuck_timeout(v.d())),
        ("staleness_horizon", &DURATIONS, |b, v| b.staleness_horizon(v.d())),
    ];
    let mut problems = String::new();
    for (setting, values, apply) in table {
        problems += &sweep(setting, values, |v| engine_with(|b| apply(b, v)));
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn persistence_settings_work_or_name_themselves_and_the_value() {
    let dir = std::env::temp_dir().join(format!("watchpost-extremes-{}", std::process::id()));
    let table: Vec<(&str, EngineSetting)> = vec![
        ("state_write_delay", |b, v| b.state_write_delay(v.d())),
        ("history_snapshot_interval", |b, v| b.history_snapshot_interval(v.d())),
    ];
    let mut problems = String::new();
    for (setting, apply) in table {
        problems += &sweep(setting, &DURATIONS, |v| {
            let _ = std::fs::remove_dir_all(&dir);
            engine_with(|b| apply(b.state_dir(&dir).history_snapshots(true), v))
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "\n{problems}");
}

type RuleSetting = fn(watchpost::alert::RuleBuilder, V) -> watchpost::alert::RuleBuilder;

#[test]
fn every_rule_number_works_or_names_itself_and_the_value() {
    let table: Vec<(&str, &[V], RuleSetting)> = vec![
        ("threshold", &FLOATS, |r, v| r.above(v.f())),
        ("threshold", &FLOATS, |r, v| r.below(v.f())),
        ("absent duration", &DURATIONS, |r, v| r.absent_for(v.d())),
        ("window", &DURATIONS, |r, v| r.anomaly_rate_above(v.d(), 0.5)),
        ("anomaly rate", &FLOATS, |r, v| r.anomaly_rate_above(Duration::from_mins(1), v.f())),
        ("window", &DURATIONS, |r, v| r.outside_expected_band(v.d())),
        ("recover", &FLOATS, |r, v| r.above(1.0).recover_below(v.f())),
        ("recover", &FLOATS, |r, v| r.below(1.0).recover_above(v.f())),
        ("for", &DURATIONS, |r, v| r.above(1.0).pending_for(v.d())),
        ("keep_firing_for", &DURATIONS, |r, v| r.above(1.0).keep_firing_for(v.d())),
        ("m_of_n", &USIZES, |r, v| r.above(1.0).m_of_n(v.u32(), v.u32())),
        ("m_of_n", &USIZES, |r, v| r.above(1.0).m_of_n(1, v.u32())),
        ("repeat", &DURATIONS, |r, v| r.above(1.0).repeat_every(v.d())),
    ];
    let mut problems = String::new();
    for (setting, values, apply) in table {
        problems += &sweep(setting, values, |v| {
            let rule = apply(AlertRule::builder("r", "load"), v).build()?;
            engine_with(|b| b.alert_rule(rule.clone()))
        });
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn health_check_and_route_durations_work_or_name_themselves_and_the_value() {
    type Check = fn(HealthCheck, Duration) -> HealthCheck;
    type RouteSetting = fn(Route, Duration) -> Route;
    let mut problems = String::new();
    let checks: [(&str, Check); 2] =
        [("timeout", |c, d| c.timeout(d)), ("degraded_after", |c, d| c.degraded_after(d))];
    for (setting, apply) in checks {
        problems += &sweep(setting, &DURATIONS, |v| {
            let clock = ManualClock::at_millis(T0);
            let engine = builder(&clock).build()?;
            engine.register_health_check(apply(HealthCheck::new("db", || Ok(())), v.d()))?;
            let _ = engine.health();
            engine.shutdown()
        });
    }
    let routes: [(&str, RouteSetting); 3] = [
        ("group_wait", |r, d| r.group_wait(d)),
        ("group_interval", |r, d| r.group_interval(d)),
        ("repeat_interval", |r, d| r.repeat_interval(d)),
    ];
    for (setting, apply) in routes {
        problems += &sweep(setting, &DURATIONS, |v| {
            let clock = ManualClock::at_millis(T0);
            let grouping = Router::builder(apply(Route::builder().receiver("null"), v.d()))
                .receiver(Null)
                .clock(clock.clone())
                .build()?;
            engine_with(|b| b.notifier("router", grouping))
        });
    }
    problems += &sweep("flush_timeout", &DURATIONS, |v| {
        let grouping =
            Router::builder(Route::builder().receiver("null")).receiver(Null).flush_timeout(v.d());
        engine_with(|b| b.notifier("router", grouping.build().expect("a valid router")))
    });
    assert!(problems.is_empty(), "\n{problems}");
}

/// A receiver that accepts every group.
struct Null;

impl watchpost::notify::Receiver for Null {
    fn name(&self) -> &'static str {
        "null"
    }
    fn send(&self, _: &watchpost::notify::AlertGroup) -> watchpost::alert::NotifyResult {
        Ok(())
    }
}

#[test]
fn every_detector_number_works_or_names_itself_and_the_value() {
    type Spec = fn(V) -> Result<DetectorSpec>;
    let table: Vec<(&str, &[V], Spec)> = vec![
        ("window", &USIZES, |v| {
            Ok(DetectorSpec::RobustZ(RobustZConfig::default().with_window(v.n())?))
        }),
        ("sigmas", &FLOATS, |v| {
            Ok(DetectorSpec::RobustZ(RobustZConfig::default().with_sigmas(v.f())?))
        }),
        ("warmup", &USIZES, |v| {
            Ok(DetectorSpec::RobustZ(RobustZConfig::default().with_warmup(v.n())?))
        }),
        ("span", &FLOATS, |v| Ok(DetectorSpec::Ewma(EwmaConfig::default().with_span(v.f())?))),
        ("sigmas", &FLOATS, |v| Ok(DetectorSpec::Ewma(EwmaConfig::default().with_sigmas(v.f())?))),
        ("warmup", &USIZES, |v| Ok(DetectorSpec::Ewma(EwmaConfig::default().with_warmup(v.n())?))),
        ("levels", &USIZES, |v| {
            Ok(DetectorSpec::Novelty(NoveltyConfig::default().with_levels(v.n())?))
        }),
        ("order", &USIZES, |v| {
            Ok(DetectorSpec::Novelty(NoveltyConfig::default().with_order(v.n())?))
        }),
        ("table_bits", &USIZES, |v| {
            Ok(DetectorSpec::Novelty(NoveltyConfig::default().with_table_bits(v.u32())?))
        }),
        ("range_window", &USIZES, |v| {
            Ok(DetectorSpec::Novelty(NoveltyConfig::default().with_range_window(v.n())?))
        }),
        ("buckets", &USIZES, |v| {
            Ok(DetectorSpec::Seasonal(SeasonalConfig::default().with_buckets(v.n())?))
        }),
        ("alpha", &FLOATS, |v| {
            Ok(DetectorSpec::Seasonal(SeasonalConfig::default().with_alpha(v.f())?))
        }),
        ("sigmas", &FLOATS, |v| {
            Ok(DetectorSpec::Seasonal(SeasonalConfig::default().with_sigmas(v.f())?))
        }),
        ("period", &USIZES, |v| {
            let ms = i64::try_from(v.n()).unwrap_or(i64::MAX);
            Ok(DetectorSpec::Seasonal(SeasonalConfig::default().with_period_ms(ms)?))
        }),
        ("refractory", &USIZES, |v| {
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_refractory(v.n())?))
        }),
        ("threshold", &FLOATS, |v| {
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_threshold(v.f())?))
        }),
        ("relative_floor", &FLOATS, |v| {
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_relative_floor(v.f())?))
        }),
        ("breakout_margin", &FLOATS, |v| {
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_breakout_margin(v.f())?))
        }),
        ("breakout_window", &USIZES, |v| {
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_breakout_window(v.n())?))
        }),
        ("short_window", &USIZES, |v| {
            let l = LikelihoodConfig::default().with_short_window(v.n())?;
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_likelihood(l)))
        }),
        ("long_window", &USIZES, |v| {
            let l = LikelihoodConfig::default().with_long_window(v.n())?;
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_likelihood(l)))
        }),
        ("learning", &USIZES, |v| {
            let l = LikelihoodConfig::default().with_learning(v.n())?;
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_likelihood(l)))
        }),
        ("min_std", &FLOATS, |v| {
            let l = LikelihoodConfig::default().with_min_std(v.f())?;
            Ok(DetectorSpec::Ensemble(EnsembleConfig::default().with_likelihood(l)))
        }),
    ];
    let mut problems = String::new();
    for (setting, values, spec) in table {
        problems += &sweep(setting, values, |v| {
            let spec = spec(v)?;
            let mut d = spec.build();
            for i in 0..200_i32 {
                let _ = d.update(T0 + i64::from(i) * 60_000, f64::from(i % 7));
            }
            engine_with(|b| b.anomaly_detector(spec.clone()))
        });
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn histogram_bounds_and_domains_work_or_name_the_value() {
    let mut problems = String::new();
    problems += &sweep("bound", &FLOATS, |v| {
        let h = watchpost::Histogram::with_bounds(&[v.f()])?;
        h.observe(1.0);
        Ok(())
    });
    problems += &sweep("domain", &FLOATS, |v| {
        let domain = watchpost::detect::Domain::new(v.f(), f64::MAX)?;
        engine_with(|b| b.metric_domain("load", domain))
    });
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn manual_clock_extremes_saturate() {
    for millis in [i64::MIN, -1, 0, i64::MAX] {
        let clock = ManualClock::at_millis(millis);
        clock.advance(Duration::MAX);
        let _ = watchpost::Clock::now(&clock);
        clock.set_millis(millis);
        let _ = watchpost::Clock::now_ms(&clock);
    }
    let clock = ManualClock::at_millis(i64::MAX - 1_000);
    let engine = builder(&clock).build().unwrap();
    engine.gauge("load").unwrap().set(1.0);
    clock.advance(Duration::MAX);
    engine.flush().unwrap();
    engine.dashboard_json().unwrap();
    engine.shutdown().unwrap();
}

#[cfg(feature = "remote-write")]
#[test]
fn every_remote_write_setting_works_or_names_itself_and_the_value() {
    use watchpost::remote_write::RemoteWriteConfig;
    type Setting = fn(RemoteWriteConfig, V) -> RemoteWriteConfig;
    let table: Vec<(&str, &[V], Setting)> = vec![
        ("max_samples_per_send", &USIZES, |c, v| c.max_samples_per_send(v.n())),
        ("batch_send_deadline", &DURATIONS, |c, v| c.batch_send_deadline(v.d())),
        ("queue_capacity", &USIZES, |c, v| c.queue_capacity(v.n())),
        ("shards", &USIZES, |c, v| c.shards(v.n())),
        ("max_shards", &USIZES, |c, v| c.max_shards(v.n())),
        ("backoff", &DURATIONS, |c, v| c.backoff(v.d(), Duration::MAX)),
        ("backoff", &DURATIONS, |c, v| c.backoff(Duration::from_millis(1), v.d())),
        ("timeout", &DURATIONS, |c, v| c.timeout(v.d())),
        ("shutdown_timeout", &DURATIONS, |c, v| c.shutdown_timeout(v.d())),
    ];
    let mut problems = String::new();
    for (setting, values, apply) in table {
        problems += &sweep(setting, values, |v| {
            // nothing listens on port 9; no series is selected, so nothing
            // waits to be sent at shutdown
            let config = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write")?
                .include([watchpost::alert::Matcher::equal("__name__", "nothing_selected")]);
            engine_with(|b| b.remote_write(apply(config.clone(), v)))
        });
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[cfg(feature = "http")]
#[test]
fn every_http_server_setting_works_or_names_itself_and_the_value() {
    use std::io::{Read, Write};
    use watchpost::http::{HttpServer, HttpServerBuilder};
    type Setting = fn(HttpServerBuilder, V) -> HttpServerBuilder;
    let table: Vec<(&str, &[V], Setting)> = vec![
        ("header_read_timeout", &DURATIONS, |s, v| s.header_read_timeout(v.d())),
        ("max_connections", &USIZES, |s, v| s.max_connections(v.n())),
        ("scrape_cache_ttl", &DURATIONS, |s, v| s.scrape_cache_ttl(v.d())),
        ("body_limit", &USIZES, |s, v| s.body_limit(v.n())),
        ("health_check_interval", &DURATIONS, |s, v| s.health_check_interval(Some(v.d()))),
        ("shutdown_timeout", &DURATIONS, |s, v| s.shutdown_timeout(v.d())),
    ];
    let mut problems = String::new();
    for (setting, values, apply) in table {
        problems += &sweep(setting, values, |v| {
            let clock = ManualClock::at_millis(T0);
            let engine = builder(&clock).build()?;
            let server = apply(HttpServer::builder().addr(([127, 0, 0, 1], 0).into()), v)
                .start(engine.monitor())?;
            let mut conn = std::net::TcpStream::connect(server.local_addr()).map_err(|e| {
                watchpost::Error::InvalidConfig { field: "connect", reason: e.to_string() }
            })?;
            conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let host = server.local_addr();
            write!(conn, "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            let _ = conn.read_to_string(&mut reply);
            server.shutdown()?;
            engine.shutdown()
        });
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[cfg(feature = "tracing")]
#[test]
fn every_tracing_layer_setting_works_or_names_itself_and_the_value() {
    use watchpost::integrations::{TracingLayer, TracingLayerBuilder};
    type Setting = fn(TracingLayerBuilder, V) -> TracingLayerBuilder;
    let table: Vec<(&str, &[V], Setting)> = vec![
        ("per_minute", &FLOATS, |t, v| t.error_rate_rule(v.f())),
        ("slow_threshold", &DURATIONS, |t, v| t.slow_threshold(v.d())),
        ("slow_threshold", &DURATIONS, |t, v| t.slow_threshold_for("op", v.d())),
        ("slow_capacity", &USIZES, |t, v| t.slow_capacity(v.n())),
        ("recent_events", &USIZES, |t, v| t.recent_events(v.n())),
    ];
    let mut problems = String::new();
    for (setting, values, apply) in table {
        problems += &sweep(setting, values, |v| {
            use tracing_subscriber::layer::SubscriberExt as _;
            let clock = ManualClock::at_millis(T0);
            let engine = builder(&clock).build()?;
            let layer = apply(TracingLayer::builder(&engine.monitor()), v).build()?;
            let subscriber = tracing_subscriber::registry().with(layer.clone());
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("op");
                let _g = span.enter();
                tracing::error!("boom");
            });
            let _ = layer.stats();
            let _ = layer.slow_operations();
            let _ = layer.recent_events();
            clock.advance(Duration::from_secs(1));
            engine.flush()?;
            engine.shutdown()
        });
    }
    assert!(problems.is_empty(), "\n{problems}");
}
