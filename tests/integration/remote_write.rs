//! Remote write against a local receiver (axum on its own tokio runtime):
//! what arrives equals history, batching, the batch deadline on the
//! engine's clock, retries, refused batches, an outage with bounded memory,
//! and shards that keep each series on one connection in order.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{TimeZone, Utc};
use parking_lot::Mutex;
use watchpost::alert::Matcher;
use watchpost::remote_write::RemoteWriteConfig;
use watchpost::remote_write::proto::{self, WriteRequest};
use watchpost::{Engine, ManualClock};

use crate::util::{T0, builder};

/// A scripted answer: status and `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    request: WriteRequest,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A local remote-write receiver: answers each request with the next
/// scripted `(status, Retry-After)`, 503 while `down`, else 204.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    down: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (recorded, scripted, is_down) =
            (Arc::clone(&seen), Arc::clone(&script), Arc::clone(&down));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |req: Request| {
                    let (recorded, scripted, is_down) =
                        (Arc::clone(&recorded), Arc::clone(&scripted), Arc::clone(&is_down));
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
                        let headers = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                            .collect();
                        let request = proto::decode(&bytes).expect("a valid remote-write body");
                        let (status, after) = if is_down.load(Ordering::SeqCst) {
                            (503, None)
                        } else {
                            scripted.lock().pop_front().unwrap_or((204, None))
                        };
                        recorded.lock().push(Seen { status, headers, request });
                        let mut response =
                            Response::builder().status(StatusCode::from_u16(status).unwrap());
                        if let Some(after) = after {
                            response = response.header("retry-after", after);
                        }
                        response.body(Body::from(format!("answer {status}"))).unwrap()
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
        });
        Receiver { addr, seen, script, down, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Waits (wall time, at most 10 s) until `n` requests arrived.
    #[track_caller]
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(Instant::now() < until, "{} of {n} requests after 10 s", seen.len());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Only the test's `chat_*` series, small batches and quick retries.
fn config(rx: &Receiver) -> RemoteWriteConfig {
    RemoteWriteConfig::new(&rx.url())
        .unwrap()
        .instance("test-host")
        .unwrap()
        .job("chat")
        .unwrap()
        .include([Matcher::regex("__name__", "chat_.*").unwrap()])
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
}

fn at(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// Every series that arrived, by its label set (`name{k="v",...}`), with its
/// samples in arrival order.
fn arrived(seen: &[Seen]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for s in seen {
        for ts in &s.request.timeseries {
            let key = ts
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",");
            out.entry(key).or_default().extend(ts.samples.iter().map(|p| (p.timestamp, p.value)));
        }
    }
    out
}

#[test]
fn what_arrives_is_what_history_holds_with_scores_and_bands() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).remote_write(config(&rx).anomaly_series(true)).build().unwrap();
    for i in 0..60 {
        let v = if i == 50 { 900.0 } else { 100.0 + f64::from(i % 7) };
        engine
            .record_at(
                "chat_latency",
                &[("room", "general")],
                at(T0 - 60_000 + i64::from(i) * 1000),
                v,
            )
            .unwrap();
    }
    engine.flush().unwrap();
    let seen = rx.wait_for(1);
    for s in &seen {
        assert_eq!(s.header("content-encoding"), Some("snappy"));
        assert_eq!(s.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(s.header("x-prometheus-remote-write-version"), Some("0.1.0"));
        for ts in &s.request.timeseries {
            let names: Vec<_> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted, "labels sorted by name");
        }
    }
    let got = arrived(&seen);
    let key = |name: &str| {
        format!("__name__={name:?},instance=\"test-host\",job=\"chat\",room=\"general\"")
    };
    let history =
        engine.history_with("chat_latency", &[("room", "general")], Duration::from_hours(1));
    assert_eq!(history.len(), 60);
    let values: Vec<_> = history.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(got[&key("chat_latency")], values);
    // the score and the band of every scored sample, at its timestamp
    let scores = &got[&key("chat_latency:anomaly_score")];
    let expected: Vec<_> =
        history.iter().filter_map(|s| s.anomaly_score.map(|a| (s.timestamp_ms, a))).collect();
    assert_eq!(scores.len(), expected.len());
    for ((t, a), (te, e)) in scores.iter().zip(&expected) {
        assert_eq!(t, te);
        // history keeps scores in steps of 1/10 000
        assert!((a - e).abs() <= 0.5e-4 + 1e-12, "score {a} vs history {e}");
    }
    assert!(!expected.is_empty());
    let lower = &got[&key("chat_latency:expected_lower")];
    let upper = &got[&key("chat_latency:expected_upper")];
    let bands: Vec<_> =
        history.iter().filter_map(|s| s.expected_band.map(|b| (s.timestamp_ms, b))).collect();
    assert!(!bands.is_empty());
    assert_eq!(lower.len(), bands.len());
    for (((t, l), (_, u)), (tb, (bl, bu))) in lower.iter().zip(upper).zip(&bands) {
        assert_eq!(t, tb);
        // history keeps the lower edge as an f32 and the width to 2^-8 of itself
        assert!((l - bl).abs() <= 1e-6 * bl.abs().max(1.0), "lower {l} vs history {bl}");
        assert!((u - bu).abs() <= (bu - bl) * 2f64.powi(-8) + 1e-6 * bu.abs().max(1.0));
    }
    // counted in the dashboard and in /metrics
    let status = engine.dashboard().remote_write.unwrap();
    let total = 60 + expected.len() as u64 + 2 * bands.len() as u64;
    assert_eq!((status.produced, status.sent, status.failed, status.dropped), (total, total, 0, 0));
    assert_eq!(status.pending, 0);
    let text = engine.prometheus_text();
    assert!(text.contains(&format!("watchpost_remote_write_samples_sent_total {total}")), "{text}");
    engine.shutdown().unwrap();
}

#[test]
fn the_dashboard_has_no_remote_write_section_without_remote_write() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    assert!(engine.dashboard().remote_write.is_none());
    assert!(!engine.dashboard_json().unwrap().contains("remote_write"));
    assert!(!engine.prometheus_text().contains("remote_write"));
}

#[test]
fn batches_hold_at_most_max_samples_per_send_in_order() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).remote_write(config(&rx).max_samples_per_send(4)).build().unwrap();
    for i in 0..10 {
        engine.record_at("chat_messages", &[], at(T0 - 10_000 + i * 1000), i as f64).unwrap();
    }
    engine.flush().unwrap();
    let seen = rx.wait_for(3);
    let sizes: Vec<usize> =
        seen.iter().map(|s| s.request.timeseries.iter().map(|t| t.samples.len()).sum()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let got = arrived(&seen);
    let values: Vec<f64> = got.values().next().unwrap().iter().map(|p| p.1).collect();
    assert_eq!(values, (0..10).map(f64::from).collect::<Vec<_>>());
}

#[test]
fn a_partial_batch_waits_for_the_deadline_on_the_engines_clock() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    // the worker ingests on a 10 ms tick: no flush, so nothing forces a send
    let engine = builder(&clock)
        .sample_interval(Duration::from_millis(10))
        .remote_write(config(&rx).batch_send_deadline(Duration::from_secs(30)))
        .build()
        .unwrap();
    let requests_at_build = rx.seen().len();
    engine.record_at("chat_messages", &[], at(T0 - 1000), 1.0).unwrap();
    // the shard wakes every 100 ms: three of its wakes pass without a send
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(rx.seen().len(), requests_at_build, "sent before the deadline");
    clock.advance(Duration::from_secs(30));
    let seen = rx.wait_for(requests_at_build + 1);
    assert_eq!(arrived(&seen).values().next().unwrap(), &[(T0 - 1000, 1.0)]);
    engine.shutdown().unwrap();
}

#[test]
fn server_errors_and_429_are_retried_honouring_a_capped_retry_after() {
    let rx = Receiver::start();
    rx.script.lock().extend([(503, None), (429, Some("3600"))]);
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).remote_write(config(&rx)).build().unwrap();
    let m = engine.monitor();
    for i in 0..3 {
        engine.record_at("chat_messages", &[], at(T0 - 3000 + i * 1000), 7.0).unwrap();
    }
    let started = Instant::now();
    engine.flush().unwrap();
    engine.shutdown().unwrap();
    // Retry-After: 3600 is capped at the 20 ms max backoff
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let seen = rx.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.request == seen[0].request), "the same batch each time");
    let s = m.dashboard().remote_write.unwrap();
    assert_eq!((s.sent, s.retried, s.failed, s.dropped, s.pending), (3, 6, 0, 0, 0));
    assert!(s.last_error.unwrap().contains("status 429"));
}

#[test]
fn a_refused_batch_is_dropped_with_its_reason_and_the_next_goes_through() {
    let rx = Receiver::start();
    rx.script.lock().push_back((400, None));
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).remote_write(config(&rx)).build().unwrap();
    engine.record_at("chat_messages", &[], at(T0 - 2000), 1.0).unwrap();
    engine.record_at("chat_messages", &[], at(T0 - 1000), 2.0).unwrap();
    engine.flush().unwrap();
    engine.record_at("chat_messages", &[], at(T0), 3.0).unwrap();
    engine.flush().unwrap();
    let s = engine.dashboard().remote_write.unwrap();
    assert_eq!((s.sent, s.failed, s.retried, s.dropped), (1, 2, 0, 0));
    let why = s.last_error.unwrap();
    assert!(
        why.contains("status 400") && why.contains("answer 400") && why.contains("2 samples"),
        "{why}"
    );
    assert_eq!(rx.seen().len(), 2);
}

#[test]
fn an_outage_keeps_memory_bounded_and_the_totals_add_up() {
    let rx = Receiver::start();
    rx.down.store(true, Ordering::SeqCst);
    let clock = ManualClock::at_millis(T0);
    let (capacity, batch) = (10, 5);
    let engine = builder(&clock)
        .remote_write(
            config(&rx).queue_capacity(capacity).max_samples_per_send(batch).max_shards(1),
        )
        .build()
        .unwrap();
    let m = engine.monitor();
    let produced = 100;
    for i in 0..produced {
        engine.record_at("chat_messages", &[], at(T0 - 100_000 + i * 1000), i as f64).unwrap();
        if i % 10 == 9 {
            // returns although the receiver fails: flush never waits for an outage
            let started = Instant::now();
            engine.flush().unwrap();
            assert!(started.elapsed() < Duration::from_secs(2));
            let s = m.dashboard().remote_write.unwrap();
            assert!(s.pending <= (capacity + batch) as u64, "memory bound: {s:?}");
        }
    }
    rx.wait_for(2);
    rx.down.store(false, Ordering::SeqCst);
    engine.shutdown().unwrap();
    let s = m.dashboard().remote_write.unwrap();
    assert_eq!(s.produced, produced as u64);
    assert_eq!(s.sent + s.dropped + s.failed, s.produced, "{s:?}");
    assert_eq!(s.pending, 0);
    assert!(s.dropped >= (produced as u64) - (capacity + batch) as u64, "{s:?}");
    assert!(s.retried > 0 && s.last_error.as_deref().unwrap().contains("503"));
    // delivered: each sample once, in order, the newest queue-full among them
    let delivered: Vec<f64> = rx
        .seen()
        .iter()
        .filter(|seen| seen.status == 204)
        .flat_map(|seen| {
            seen.request.timeseries.iter().flat_map(|t| t.samples.iter().map(|p| p.value))
        })
        .collect();
    let unique = delivered;
    assert_eq!(unique.len() as u64, s.sent);
    assert!(unique.len() >= capacity, "{s:?}");
    let last: Vec<f64> = ((produced - capacity as i64)..produced).map(|i| i as f64).collect();
    let tail: Vec<f64> = unique[unique.len() - capacity..].to_vec();
    assert_eq!(tail, last);
    assert!(unique.windows(2).all(|w| w[0] < w[1]), "{unique:?}");
}

#[test]
fn shards_keep_each_series_on_one_connection_in_order() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    let engine: Engine = builder(&clock).remote_write(config(&rx).shards(4)).build().unwrap();
    for t in 0..5 {
        for s in 0..40 {
            let room = format!("r{s}");
            engine
                .record_at(
                    "chat_rooms",
                    &[("room", &room)],
                    at(T0 - 5000 + t * 1000),
                    (s * 10 + t) as f64,
                )
                .unwrap();
        }
    }
    engine.flush().unwrap();
    assert_eq!(engine.dashboard().remote_write.unwrap().sent, 200);
    let seen = rx.seen();
    // one flush: each shard sent one request, its own series
    assert!(seen.len() >= 2, "{} requests", seen.len());
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        for ts in &s.request.timeseries {
            let room = ts.labels.iter().find(|l| l.name == "room").unwrap().value.clone();
            assert_eq!(*owner.entry(room).or_insert(i), i, "a series in two requests");
        }
    }
    assert_eq!(owner.len(), 40);
    for samples in arrived(&seen).values() {
        assert_eq!(samples.len(), 5);
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

#[test]
fn a_backed_up_shard_opens_another_and_no_series_is_reordered() {
    let rx = Receiver::start();
    rx.down.store(true, Ordering::SeqCst);
    let clock = ManualClock::at_millis(T0);
    let (series, points) = (40_i64, 30_i64);
    let engine: Engine = builder(&clock)
        .remote_write(config(&rx).queue_capacity(1_000).max_samples_per_send(50))
        .build()
        .unwrap();
    let m = engine.monitor();
    assert_eq!(m.dashboard().remote_write.unwrap().shards, 1, "one shard to start with");
    // the receiver is down: the first shard's queue backs up past half full
    for t in 0..points {
        for s in 0..series {
            let room = format!("r{s}");
            let value = (s * 1_000 + t) as f64;
            engine
                .record_at("chat_rooms", &[("room", &room)], at(T0 - 60_000 + t * 1000), value)
                .unwrap();
        }
        engine.flush().unwrap();
    }
    let grown = m.dashboard().remote_write.unwrap().shards;
    assert!(grown > 1, "still {grown} shard with a backed-up queue");
    rx.down.store(false, Ordering::SeqCst);
    let total = (series * points) as u64;
    for _ in 0..200 {
        if m.dashboard().remote_write.unwrap().sent == total {
            break;
        }
        engine.flush().unwrap();
    }
    let s = m.dashboard().remote_write.unwrap();
    assert_eq!((s.sent, s.dropped, s.failed), (total, 0, 0), "{s:?}");
    let accepted: Vec<Seen> = rx.seen().into_iter().filter(|s| s.status == 204).collect();
    let arrived = arrived(&accepted);
    assert_eq!(arrived.len(), series as usize);
    for (key, samples) in &arrived {
        let times: Vec<i64> = samples.iter().map(|p| p.0).collect();
        let expected: Vec<i64> = (0..points).map(|t| T0 - 60_000 + t * 1000).collect();
        assert_eq!(times, expected, "{key} arrived out of order or incomplete");
    }
    engine.shutdown().unwrap();
}

#[test]
fn a_newest_sample_waits_until_a_late_value_at_its_millisecond_can_no_longer_replace_it() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    // ticks every 20 ms of real time ingest without a flush
    let engine = builder(&clock)
        .sample_interval(Duration::from_millis(20))
        .remote_write(config(&rx))
        .build()
        .unwrap();
    let latest = || engine.latest("chat_typing").map(|s| s.value);
    let until = |want: f64| {
        // the worker ingests on its own (no flush): wait for it, bounded
        for _ in 0..2_000 {
            if latest() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the worker never ingested {want}: {:?}", latest());
    };
    engine.record_at("chat_typing", &[], at(T0), 1.0).unwrap();
    until(1.0);
    // a late observation of the same millisecond, ingested by another drain
    engine.record_at("chat_typing", &[], at(T0), 5.0).unwrap();
    until(5.0);
    engine.flush().unwrap();
    let accepted: Vec<Seen> = rx.seen().into_iter().filter(|s| s.status == 204).collect();
    let sent: Vec<(i64, f64)> = arrived(&accepted).into_values().flatten().collect();
    assert_eq!(sent, [(T0, 5.0)], "what was sent is what history holds");
    engine.shutdown().unwrap();
}

#[test]
fn a_value_that_replaces_one_at_the_same_millisecond_is_the_one_sent() {
    let rx = Receiver::start();
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).remote_write(config(&rx)).build().unwrap();
    engine.record_at("chat_messages", &[], at(T0 - 2000), 1.0).unwrap();
    engine.record_at("chat_messages", &[], at(T0 - 1000), 2.0).unwrap();
    engine.record_at("chat_messages", &[], at(T0 - 1000), 5.0).unwrap(); // coalesced
    engine.flush().unwrap();
    let history: Vec<_> = engine
        .history("chat_messages", Duration::from_hours(1))
        .iter()
        .map(|s| (s.timestamp_ms, s.value))
        .collect();
    assert_eq!(history, [(T0 - 2000, 1.0), (T0 - 1000, 5.0)]);
    assert_eq!(arrived(&rx.seen()).into_values().next().unwrap(), history);
    let s = engine.dashboard().remote_write.unwrap();
    assert_eq!((s.produced, s.sent), (2, 2));
}
