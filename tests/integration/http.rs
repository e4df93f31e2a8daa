//! The HTTP routes, against a real server on 127.0.0.1:0, with a tiny
//! HTTP/1.1 client on `std::net::TcpStream`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use watchpost::health::HealthCheck;
use watchpost::http::{HttpServer, HttpServerGuard};
use watchpost::{Engine, ManualClock};

use crate::util::{T0, builder};

/// Every read and connect gives up after this long, so a broken server fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse(&raw)
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

fn parse(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Response { status, headers, body: String::from_utf8(body).unwrap() }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

pub(crate) fn start(
    engine: &Engine,
    configure: impl FnOnce(watchpost::http::HttpServerBuilder) -> watchpost::http::HttpServerBuilder,
) -> HttpServerGuard {
    configure(HttpServer::builder().health_check_interval(None))
        .start(engine.monitor())
        .expect("server starts")
}

fn manual_engine() -> (Engine, ManualClock) {
    let clock = ManualClock::at_millis(T0);
    let engine = crate::util::eager(builder(&clock))
        .dashboard_recent_metrics(["active_users"])
        .build()
        .unwrap();
    (engine, clock)
}

#[test]
fn metrics_in_both_formats() {
    let (engine, _clock) = manual_engine();
    engine.counter_with("messages_total", &[("room", "general")]).unwrap().add(3);
    let server = start(&engine, |b| b);
    assert!(server.local_addr().ip().is_loopback());

    let plain = get(server.local_addr(), "/metrics");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert!(plain.body.contains("messages_total{room=\"general\"} 3\n"));
    assert!(!plain.body.contains("# EOF"));

    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let om = request(server.local_addr(), "GET", "/metrics", &[("Accept", accept)]);
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.contains("# TYPE messages counter\n"));
    assert!(om.body.ends_with("# EOF\n"));
    // no CORS, even when a browser says where it comes from
    let cross = request(server.local_addr(), "GET", "/metrics", &[("Origin", "http://evil.test")]);
    assert!(cross.header("access-control-allow-origin").is_none());
    assert_eq!(cross.header("cache-control"), Some("no-store"));
    server.shutdown().unwrap();
}

#[test]
fn liveness_dashboard_alerts_and_page() {
    let (engine, clock) = manual_engine();
    let users = engine.gauge("active_users").unwrap();
    for v in [3.0, 5.0] {
        users.set(v);
        clock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    let server = start(&engine, |b| b);
    let addr = server.local_addr();

    let live = get(addr, "/health");
    assert_eq!((live.status, live.json()["status"].as_str()), (200, Some("ok")));

    let dashboard = get(addr, "/api/dashboard");
    assert_eq!(dashboard.status, 200);
    assert_eq!(dashboard.header("content-type"), Some("application/json"));
    let d = dashboard.json();
    assert_eq!(d["schema_version"], 2);
    assert_eq!(d["recent_metrics"]["active_users"].as_array().unwrap().len(), 2);

    let alerts = get(addr, "/api/alerts").json();
    assert_eq!(alerts, serde_json::json!({ "active": [], "recent": [] }));

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("content-security-policy").unwrap().contains("connect-src 'self'"));
    assert_eq!(page.body, watchpost::http::DASHBOARD_HTML);

    let missing = get(addr, "/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "no such route");
    assert_eq!(request(addr, "POST", "/metrics", &[("Content-Length", "0")]).status, 405);
}

#[test]
fn bearer_token() {
    let (engine, _clock) = manual_engine();
    let server = start(&engine, |b| b.bearer_token("s3cret"));
    let addr = server.local_addr();
    for path in
        ["/metrics", "/api/dashboard", "/api/alerts", "/health/detailed", "/api/series?name=x"]
    {
        let denied = get(addr, path);
        assert_eq!(denied.status, 401, "{path}");
        assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
        let wrong = request(addr, "GET", path, &[("Authorization", "Bearer nope")]);
        assert_eq!(wrong.status, 401, "{path}");
    }
    // writes too
    for (method, path) in
        [("POST", "/api/silences"), ("DELETE", "/api/silences/1"), ("POST", "/api/alerts/ack")]
    {
        assert_eq!(send_json_as(addr, method, path, "{}", &[]).status, 401, "{method} {path}");
    }
    assert_eq!(get(addr, "/api/silences").status, 401);
    let ok = request(addr, "GET", "/metrics", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200);
    // liveness and the static page stay open
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/").status, 200);
    // and so do the page's vendored scripts, which it loads from its own origin
    let script = get(addr, "/assets/uPlot.iife.min.js");
    assert_eq!(script.status, 200);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert!(script.body.contains("uPlot"));
    assert_eq!(
        get(addr, "/assets/uPlot.min.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(get(addr, "/assets/nope.js").json()["error"], "no asset \"nope.js\"");
    let csp = get(addr, "/").header("content-security-policy").unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(watchpost::http::DASHBOARD_HTML.contains("src=\"assets/uPlot.iife.min.js\""));
}

#[test]
fn detailed_health_is_503_when_a_critical_component_fails() {
    let (engine, _clock) = manual_engine();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    engine
        .register_health_check(HealthCheck::new("cache", || Err("down".into())).critical(false))
        .unwrap();
    let degraded = get(addr, "/health/detailed");
    assert_eq!(degraded.status, 200);
    assert_eq!(degraded.json()["status"], "degraded");

    engine
        .register_health_check(HealthCheck::new("database", || Err("connection refused".into())))
        .unwrap();
    let failing = get(addr, "/health/detailed");
    assert_eq!(failing.status, 503);
    let report = failing.json();
    assert_eq!(report["status"], "unhealthy");
    let db =
        report["components"].as_array().unwrap().iter().find(|c| c["name"] == "database").unwrap();
    assert_eq!(db["error"], "connection refused");
    assert_eq!(db["critical"], true);
}

#[test]
fn a_hanging_check_does_not_hang_the_endpoint() {
    let (engine, _clock) = manual_engine();
    let (release, gate) = crossbeam_channel::bounded::<()>(0);
    engine
        .register_health_check(
            HealthCheck::new("peer", move || {
                let _ = gate.recv(); // hangs until the test ends
                Ok(())
            })
            .timeout(Duration::from_millis(200)),
        )
        .unwrap();
    let server = start(&engine, |b| b);
    let started = Instant::now();
    let response = get(server.local_addr(), "/health/detailed");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(response.status, 503);
    let peer = &response.json()["components"][0];
    assert!(peer["error"].as_str().unwrap().contains("timeout"), "{peer}");
    // liveness is not affected
    assert_eq!(get(server.local_addr(), "/health").status, 200);
    drop(release);
}

#[test]
fn series_queries() {
    let (engine, clock) = manual_engine();
    let general = engine.counter_with("messages_total", &[("room", "general")]).unwrap();
    for _ in 0..3 {
        general.add(2);
        clock.advance(Duration::from_secs(10));
        engine.flush().unwrap();
    }
    let server = start(&engine, |b| b);
    let addr = server.local_addr();

    let all = get(addr, "/api/series?name=messages_total&labels=room:general&window=600");
    assert_eq!(all.status, 200, "{}", all.body);
    let v = all.json();
    assert_eq!(v["series"], "messages_total{room=\"general\"}");
    assert_eq!(v["kind"], "counter");
    let values: Vec<f64> =
        v["samples"].as_array().unwrap().iter().map(|s| s["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [2.0, 4.0, 6.0]);
    assert_eq!(v["samples"][2]["timestamp_ms"], T0 + 30_000);

    let recent = get(addr, "/api/series?name=messages_total&labels=room:general&window=15").json();
    assert_eq!(recent["samples"].as_array().unwrap().len(), 2);
    let rate = get(addr, "/api/series?name=messages_total:rate&labels=room:general").json();
    assert_eq!(rate["samples"][0]["value"], 0.2);
    // rates have a detector: every sample carries its score; counter totals have none
    for s in rate["samples"].as_array().unwrap() {
        let score = s["score"].as_f64().unwrap_or_else(|| panic!("no score in {s}"));
        assert!((0.0..=1.0).contains(&score), "{s}");
    }
    assert!(v["samples"][0].get("score").is_none(), "{}", v["samples"][0]);

    for (query, needle) in [
        ("?name=bad%20name", "invalid metric name"),
        ("?name=messages_total&labels=room", "invalid labels"),
        ("?name=messages_total&labels=__x:1", "invalid label name"),
        ("?name=messages_total&window=0", "invalid window"),
        ("?name=messages_total&window=soon", "invalid window"),
    ] {
        let bad = get(addr, &format!("/api/series{query}"));
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert!(bad.json()["error"].as_str().unwrap().contains(needle), "{query}: {}", bad.body);
    }
    let unknown = get(addr, "/api/series?name=messages_total&labels=room:nowhere");
    assert_eq!(unknown.status, 404);
}

/// Two rooms of one counter, with a spike at one sample of `general`.
fn two_rooms() -> (Engine, ManualClock) {
    let (engine, clock) = manual_engine();
    let general = engine.counter_with("messages_total", &[("room", "general")]).unwrap();
    let dev = engine.counter_with("messages_total", &[("room", "dev"), ("team", "core")]).unwrap();
    engine.gauge("active_users").unwrap().set(3.0);
    for step in 0..12u64 {
        general.add(if step == 7 { 50 } else { 1 });
        dev.add(2);
        clock.advance(Duration::from_secs(5));
        engine.flush().unwrap();
    }
    (engine, clock)
}

#[test]
fn series_listing() {
    let (engine, _clock) = two_rooms();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    let names = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s["series"].as_str().unwrap().to_owned()).collect()
    };

    // without a name: every series, sorted, with name, labels and kind
    let all = get(addr, "/api/series");
    assert_eq!(all.status, 200, "{}", all.body);
    let all = all.json();
    let listed = names(&all);
    let mut sorted = listed.clone();
    sorted.sort();
    assert!(listed.contains(&"active_users".to_owned()), "{listed:?}");
    assert!(listed.contains(&"messages_total:rate{room=\"dev\",team=\"core\"}".to_owned()));
    let general = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["series"] == "messages_total{room=\"general\"}")
        .unwrap();
    assert_eq!(
        *general,
        serde_json::json!({
            "series": "messages_total{room=\"general\"}",
            "name": "messages_total",
            "labels": {"room": "general"},
            "kind": "counter",
        })
    );
    assert_eq!(get(addr, "/api/series/list").json(), all);

    // filtered by name, and by a label subset
    let rates = get(addr, "/api/series/list?name=messages_total:rate").json();
    assert_eq!(
        names(&rates),
        [
            "messages_total:rate{room=\"dev\",team=\"core\"}",
            "messages_total:rate{room=\"general\"}"
        ]
    );
    assert_eq!(get(addr, "/api/series?name=&labels=team:core").json().as_array().unwrap().len(), 2);
    let core = get(addr, "/api/series/list?labels=team:core").json();
    assert_eq!(
        names(&core),
        [
            "messages_total{room=\"dev\",team=\"core\"}",
            "messages_total:rate{room=\"dev\",team=\"core\"}"
        ]
    );
    assert_eq!(get(addr, "/api/series/list?name=nothing_here").json(), serde_json::json!([]));

    for (query, needle) in [
        ("/api/series/list?name=bad%20name", "invalid metric name"),
        ("/api/series/list?labels=room", "invalid labels"),
        ("/api/series/list?labels=__x:1", "invalid label name"),
        ("/api/series/list?labels=a:1,a:2", "\"a\""),
        ("/api/series?window=60", "window needs name"),
        ("/api/series/list?step=5", "step needs name"),
    ] {
        let bad = get(addr, query);
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert!(bad.json()["error"].as_str().unwrap().contains(needle), "{query}: {}", bad.body);
    }
}

#[test]
fn series_selection_by_label_subset() {
    let (engine, _clock) = two_rooms();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();

    // the issue: a derived series asked for without its labels is a 404 that says what exists
    let missing = get(addr, "/api/series?name=messages_total:rate");
    assert_eq!(missing.status, 404);
    let message = missing.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("has 2 series with other labels"), "{message}");
    assert!(message.contains("match=subset"), "{message}");
    let none = get(addr, "/api/series?name=nothing_here").json();
    assert_eq!(none["error"], "no series nothing_here");

    // match=subset: every series of the name whose labels include the given ones, as an array
    let both = get(addr, "/api/series?name=messages_total:rate&match=subset&window=600");
    assert_eq!(both.status, 200, "{}", both.body);
    let both = both.json();
    let both = both.as_array().unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[0]["labels"], serde_json::json!({"room": "dev", "team": "core"}));
    assert_eq!(both[1]["series"], "messages_total:rate{room=\"general\"}");
    assert_eq!(both[0]["samples"].as_array().unwrap().len(), 11);
    assert_eq!(both[0]["samples"][0]["value"], 0.4); // 2 per 5 s

    let core = get(addr, "/api/series?name=messages_total&labels=team:core&match=subset").json();
    let core = core.as_array().unwrap();
    assert_eq!(core.len(), 1);
    assert_eq!(core[0]["series"], "messages_total{room=\"dev\",team=\"core\"}");
    assert_eq!(core[0]["kind"], "counter");
    // the same series asked for by a subset is not found by exact match
    assert_eq!(get(addr, "/api/series?name=messages_total&labels=team:core").status, 404);
    // the single-object answer is unchanged when the full label set is given
    let exact = get(addr, "/api/series?name=messages_total&labels=room:dev,team:core").json();
    assert_eq!(exact["samples"], core[0]["samples"]);
    assert_eq!(
        get(addr, "/api/series?name=messages_total&labels=room:x&match=subset").json(),
        serde_json::json!([])
    );
    let bad = get(addr, "/api/series?name=messages_total&match=prefix");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("invalid match \"prefix\""));
}

#[test]
fn series_selection_is_capped() {
    let (engine, _clock) = manual_engine();
    for i in 0..101 {
        engine.gauge_with("per_user", &[("user", &i.to_string())]).unwrap().set(1.0);
    }
    engine.flush().unwrap();
    let server = start(&engine, |b| b);
    let too_many = get(server.local_addr(), "/api/series?name=per_user&match=subset");
    assert_eq!(too_many.status, 400);
    let message = too_many.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("101 series of per_user, more than 100"), "{message}");
    let one = get(server.local_addr(), "/api/series?name=per_user&labels=user:7&match=subset");
    assert_eq!(one.json().as_array().unwrap().len(), 1);
}

#[test]
fn series_steps() {
    let (engine, _clock) = two_rooms();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    // general's total goes 1, 2, ..., 7, 57, 58, ... 61 at T0 + 5 s, 10 s, ... 60 s
    let raw = get(addr, "/api/series?name=messages_total&labels=room:general&window=600").json();
    let raw: Vec<f64> =
        raw["samples"].as_array().unwrap().iter().map(|s| s["value"].as_f64().unwrap()).collect();
    assert_eq!(raw.len(), 12);

    let stepped =
        get(addr, "/api/series?name=messages_total&labels=room:general&window=600&step=20");
    assert_eq!(stepped.status, 200, "{}", stepped.body);
    let stepped = stepped.json();
    assert_eq!(stepped["step_seconds"], 20.0);
    let points = stepped["samples"].as_array().unwrap();
    // buckets aligned to 20 s since the epoch, stamped with their start; T0 is on an edge
    let starts: Vec<i64> = points.iter().map(|p| p["timestamp_ms"].as_i64().unwrap()).collect();
    assert_eq!(starts, [T0, T0 + 20_000, T0 + 40_000, T0 + 60_000]);
    let expect = [&raw[0..3], &raw[3..7], &raw[7..11], &raw[11..12]];
    for (point, bucket) in points.iter().zip(expect) {
        #[allow(clippy::cast_precision_loss)]
        let mean = bucket.iter().sum::<f64>() / bucket.len() as f64;
        assert_eq!(point["value"].as_f64().unwrap(), mean, "{point}");
        assert_eq!(point["min"].as_f64().unwrap(), bucket[0], "{point}");
        assert_eq!(point["max"].as_f64().unwrap(), *bucket.last().unwrap(), "{point}");
        assert_eq!(point["count"].as_u64().unwrap(), bucket.len() as u64, "{point}");
    }
    // the rate's spike is kept as a bucket's max, and its highest score too
    let rate =
        get(addr, "/api/series?name=messages_total:rate&labels=room:general&window=600&step=60")
            .json();
    let spike = rate["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["max"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(spike, 10.0); // 50 in 5 s
    assert!(rate["samples"][0]["score"].as_f64().is_some(), "{rate}");
    // and with match=subset, every series is downsampled
    let subset =
        get(addr, "/api/series?name=messages_total&match=subset&window=600&step=600").json();
    for s in subset.as_array().unwrap() {
        let points = s["samples"].as_array().unwrap();
        assert!(points.len() <= 2, "{s}");
        assert_eq!(points.iter().map(|p| p["count"].as_u64().unwrap()).sum::<u64>(), 12);
    }

    for (query, needle) in [
        ("&window=300&step=0.2", "use a step of at least 0.301 seconds"),
        ("&window=300&step=301", "invalid step \"301\""),
        ("&step=0", "invalid step \"0\""),
        ("&step=fast", "invalid step \"fast\""),
    ] {
        let bad = get(addr, &format!("/api/series?name=messages_total&labels=room:general{query}"));
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert!(bad.json()["error"].as_str().unwrap().contains(needle), "{query}: {}", bad.body);
    }
}

#[test]
fn raw_series_are_capped_at_the_newest_points() {
    let clock = ManualClock::at_millis(T0);
    let engine = crate::util::eager(builder(&clock)).history_capacity(1_500).build().unwrap();
    for i in 0..1_200u32 {
        engine.record("queue_depth", &[], f64::from(i)).unwrap();
        clock.advance(Duration::from_millis(100));
    }
    engine.flush().unwrap();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    let raw = get(addr, "/api/series?name=queue_depth&window=600").json();
    assert_eq!(raw["truncated"], true);
    let samples = raw["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1_000);
    assert_eq!(samples[0]["value"], 200.0);
    assert_eq!(samples[999]["value"], 1_199.0);
    // a window that fits is not flagged
    let short = get(addr, "/api/series?name=queue_depth&window=10").json();
    assert!(short.get("truncated").is_none(), "{short}");
    // a step covers the whole window
    let stepped = get(addr, "/api/series?name=queue_depth&window=600&step=60").json();
    let counts: u64 =
        stepped["samples"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(counts, 1_200);
}

#[test]
fn request_bodies_are_limited() {
    let (engine, _clock) = manual_engine();
    let server = start(&engine, |b| b.body_limit(1024));
    let addr = server.local_addr();
    let big = request(addr, "GET", "/metrics", &[("Content-Length", "1000000")]);
    assert_eq!(big.status, 413);
    let small = request(addr, "GET", "/health", &[("Content-Length", "0")]);
    assert_eq!(small.status, 200);
}

#[test]
fn dropping_the_guard_stops_the_server() {
    let (engine, _clock) = manual_engine();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/health").status, 200);
    // an idle keep-alive connection must not hold the shutdown up
    let idle = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    drop(idle);
    // the address is free again
    let again = HttpServer::builder().addr(addr).start(engine.monitor()).unwrap();
    assert_eq!(get(again.local_addr(), "/health").status, 200);
}

#[test]
fn router_merges_into_an_application() {
    let (engine, _clock) = manual_engine();
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .merge(watchpost::http::router(engine.monitor()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    assert_eq!(get(addr, "/hello").body, "hello");
    assert_eq!(get(addr, "/metrics").status, 200);
    // the merged routes check the Host too, and keep their mutating routes closed
    let rebound = format!(
        "GET /metrics HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    assert_eq!(send_raw(addr, &rebound).status, 421);
    assert_eq!(send_json_as(addr, "POST", "/api/silences", "{}", &[]).status, 403);
    stop.send(()).unwrap();
    thread.join().unwrap();
}

pub(crate) const TOKEN: &str = "s3cret";
pub(crate) const AUTH: &[(&str, &str)] = &[("Authorization", "Bearer s3cret")];

/// Sends `body` as JSON with `method`, with the test token.
fn send_json(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    send_json_as(addr, method, path, body, AUTH)
}

/// Sends `body` as JSON with `method` and `headers`.
fn send_json_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    send_raw(addr, &format!("{head}\r\n{body}"))
}

/// Sends `raw` as it is and reads the whole response.
fn send_raw(addr: SocketAddr, raw: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the response");
    parse(&answer)
}

#[test]
fn silences_and_acknowledgements_over_http() {
    let (engine, clock) = manual_engine();
    let (tx, rx) = crossbeam_channel::unbounded();
    engine.add_notifier("inbox", watchpost::alert::ChannelNotifier::new(tx)).unwrap();
    let server = start(&engine, |b| b.bearer_token(TOKEN));
    let addr = server.local_addr();

    // a silence on /data, then the disk alert fires muted
    let created = send_json(
        addr,
        "POST",
        "/api/silences",
        r#"{"matchers": ["mount=\"/data\""], "duration_seconds": 3600, "created_by": "ops", "comment": "migration"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_u64().unwrap();
    engine.gauge_with("system_disk_usage", &[("mount", "/data")]).unwrap().set(95.0);
    engine.flush().unwrap();
    assert_eq!(rx.try_iter().count(), 0, "silenced");
    let list = request(addr, "GET", "/api/silences", AUTH).json();
    let s = &list["silences"][0];
    assert_eq!((s["id"].as_u64(), s["active"].as_bool()), (Some(id), Some(true)));
    assert_eq!(s["matchers"][0], "mount=\"/data\"");
    assert_eq!((s["created_by"].as_str(), s["comment"].as_str()), (Some("ops"), Some("migration")));
    assert_eq!(s["ends_at"], "2026-01-01T01:00:00Z");

    // expiring it announces the firing
    clock.advance(Duration::from_mins(1));
    assert_eq!(request(addr, "DELETE", &format!("/api/silences/{id}"), AUTH).status, 200);
    engine.flush().unwrap();
    let fired: Vec<_> = rx.try_iter().collect();
    assert_eq!(fired.len(), 1);
    assert_eq!(request(addr, "DELETE", &format!("/api/silences/{id}"), AUTH).status, 404);
    assert_eq!(request(addr, "DELETE", "/api/silences/x", AUTH).status, 400);
    assert_eq!(request(addr, "GET", "/api/silences", AUTH).json()["silences"][0]["expired"], true);

    // acknowledge by id; a second time is a 404
    let body = format!(r#"{{"id": "{}"}}"#, fired[0].alert_id.replace('"', "\\\""));
    let ack = send_json(addr, "POST", "/api/alerts/ack", &body);
    assert_eq!(ack.status, 200, "{}", ack.body);
    assert!(engine.active_alerts()[0].acknowledged);
    assert_eq!(send_json(addr, "POST", "/api/alerts/ack", &body).status, 404);

    for (body, needle) in [
        (r#"{"matchers": [], "duration_seconds": 60}"#, "at least one matcher"),
        (r#"{"matchers": ["room"], "duration_seconds": 60}"#, "has no operator"),
        (r#"{"matchers": ["a=\"b\""]}"#, "exactly one of duration_seconds and ends_at"),
        (r#"{"matchers": ["a=\"b\""], "duration_seconds": -5}"#, "invalid duration_seconds -5"),
        (r#"{"matchers": ["a=\"b\""], "ends_at": "2025-01-01T00:00:00Z"}"#, "is not after start"),
        (r#"{"matchers": ["a=\"b\""], "duration_seconds": 60, "extra": 1}"#, "unknown field"),
        ("not json", "invalid body"),
    ] {
        let r = send_json(addr, "POST", "/api/silences", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains(needle), "{body}: {}", r.body);
    }
}

/// Without a token nobody can silence, acknowledge or expire: the routes
/// answer 403 and change nothing, while the reading routes stay open.
#[test]
fn mutating_routes_are_closed_without_a_token() {
    let (engine, _clock) = manual_engine();
    let (tx, rx) = crossbeam_channel::unbounded();
    engine.add_notifier("inbox", watchpost::alert::ChannelNotifier::new(tx)).unwrap();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();

    let silence_all = r#"{"matchers": ["alertname=~\".*\""], "duration_seconds": 3600}"#;
    let refused = send_json_as(addr, "POST", "/api/silences", silence_all, &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let reason = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(reason.contains("POST /api/silences") && reason.contains("bearer token"), "{reason}");
    assert!(engine.silences().is_empty());

    engine.gauge_with("system_disk_usage", &[("mount", "/data")]).unwrap().set(95.0);
    engine.flush().unwrap();
    let fired: Vec<_> = rx.try_iter().collect();
    assert_eq!(fired.len(), 1, "not silenced");
    let ack = format!(r#"{{"id": "{}"}}"#, fired[0].alert_id.replace('"', "\\\""));
    assert_eq!(send_json_as(addr, "POST", "/api/alerts/ack", &ack, &[]).status, 403);
    assert!(!engine.active_alerts()[0].acknowledged);
    assert_eq!(request(addr, "DELETE", "/api/silences/1", &[]).status, 403);
    // a token in the request does not open a server that has none
    assert_eq!(send_json(addr, "POST", "/api/silences", silence_all).status, 403);
    assert!(engine.silences().is_empty());

    // reading stays as documented
    assert_eq!(get(addr, "/api/silences").status, 200);
    assert_eq!(get(addr, "/api/alerts").json()["active"].as_array().unwrap().len(), 1);
    assert_eq!(get(addr, "/metrics").status, 200);
    drop(server);

    // with a token: 401 without it, 201 with it
    let server = start(&engine, |b| b.bearer_token(TOKEN));
    let addr = server.local_addr();
    assert_eq!(send_json_as(addr, "POST", "/api/silences", silence_all, &[]).status, 401);
    assert_eq!(send_json(addr, "POST", "/api/silences", silence_all).status, 201);
    assert_eq!(engine.silences().len(), 1);
}

#[test]
fn random_tokens_open_the_mutating_routes() {
    let (engine, _clock) = manual_engine();
    let token = watchpost::http::random_token().unwrap();
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let server = start(&engine, |b| b.bearer_token(token.clone()));
    let auth = format!("Bearer {token}");
    let body = r#"{"matchers": ["room=\"dev\""], "duration_seconds": 60}"#;
    let created = send_json_as(
        server.local_addr(),
        "POST",
        "/api/silences",
        body,
        &[("Authorization", &auth)],
    );
    assert_eq!(created.status, 201, "{}", created.body);

    for bad in ["", "two words", "tab\there", "ünïcode"] {
        let err = HttpServer::builder().bearer_token(bad).start(engine.monitor()).unwrap_err();
        assert!(err.to_string().contains("invalid bearer_token"), "{bad:?}: {err}");
    }
}

/// DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1
/// still sends `Host: evil.example`.
#[test]
fn requests_for_other_hosts_are_misdirected() {
    let (engine, _clock) = manual_engine();
    let server = start(&engine, |b| b.bearer_token(TOKEN).allow_host("metrics.example.com"));
    let addr = server.local_addr();
    let port = addr.port();
    let send = |method: &str, path: &str, host: &str| {
        let body = r#"{"matchers": ["a=\"b\""], "duration_seconds": 60}"#;
        send_raw(
            addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
                 Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    for host in
        ["evil.example", &format!("evil.example:{port}"), "localhost.evil.example", "10.9.8.7"]
    {
        for (method, path) in
            [("GET", "/metrics"), ("GET", "/health"), ("GET", "/"), ("POST", "/api/silences")]
        {
            let r = send(method, path, host);
            assert_eq!(r.status, 421, "{method} {path} Host: {host}: {}", r.body);
            assert!(
                r.json()["error"].as_str().unwrap().contains(&format!("{host:?}")),
                "{}",
                r.body
            );
        }
    }
    assert!(engine.silences().is_empty());
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("[::1]:{port}"),
        "metrics.example.com".to_owned(),
        format!("metrics.example.com:{port}"),
    ] {
        assert_eq!(send("GET", "/metrics", &host).status, 200, "{host}");
    }
    assert_eq!(send("POST", "/api/silences", "localhost").status, 201);
    // the authority of an absolute request URI is checked too
    let absolute = format!(
        "GET http://evil.example/metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(send_raw(addr, &absolute).status, 421);
    let missing = send_raw(addr, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(missing.status, 421);
    assert_eq!(missing.json()["error"], "missing Host header");

    let err = HttpServer::builder().allow_host("metrics.example.com:9898").start(engine.monitor());
    let err = err.unwrap_err().to_string();
    assert!(err.contains("allowed_hosts") && err.contains("\"metrics.example.com:9898\""), "{err}");
}

/// A client that never finishes its headers is cut off after the header read
/// timeout; connections beyond the limit wait for a free slot; the server
/// answers again afterwards.
#[test]
fn slow_clients_are_cut_off_and_connections_limited() {
    let (engine, _clock) = manual_engine();
    let timeout = Duration::from_millis(300);
    // tokio's timer has millisecond resolution: allow a little early
    let at_least = Duration::from_millis(250);
    let server = start(&engine, |b| b.header_read_timeout(timeout).max_connections(2));
    let addr = server.local_addr();
    let started = Instant::now();
    let half_sent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    // both slots are taken: a complete request waits for one
    let waiting = std::thread::spawn(move || (get(addr, "/health"), started.elapsed()));
    for mut s in half_sent {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("closed by the server, not by our read timeout");
        let closed_after = started.elapsed();
        assert!(closed_after >= at_least, "{closed_after:?}");
        assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
        // a request still incomplete never gets an answer of the route
        assert!(!String::from_utf8_lossy(&rest).contains("\"ok\""));
    }
    let (answer, answered_after) = waiting.join().unwrap();
    assert_eq!(answer.status, 200);
    assert!(answered_after >= at_least, "served early: {answered_after:?}");
    assert_eq!(get(addr, "/health").status, 200);

    for (configure, needle) in [
        (HttpServer::builder().max_connections(0), "invalid max_connections: 0"),
        (HttpServer::builder().max_connections(1 << 20), "invalid max_connections: 1048576"),
        (HttpServer::builder().header_read_timeout(Duration::ZERO), "invalid header_read_timeout"),
    ] {
        let err = configure.start(engine.monitor()).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}

/// An idle keep-alive connection is closed after the header read timeout
/// too, so it does not hold a slot.
#[test]
fn idle_keep_alive_connections_are_closed() {
    let (engine, _clock) = manual_engine();
    let server =
        start(&engine, |b| b.header_read_timeout(Duration::from_millis(200)).max_connections(1));
    let addr = server.local_addr();
    let mut kept = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    kept.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(kept, "GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    kept.read_to_end(&mut raw).expect("answered, then closed when idle");
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    assert_eq!(get(addr, "/health").status, 200, "the slot is free again");
}

/// Scrapes within the cache TTL (engine clock time) share one rendering.
#[test]
fn scrapes_share_a_rendering_within_the_ttl() {
    let (engine, clock) = manual_engine();
    let jobs = engine.counter("jobs_total").unwrap();
    jobs.inc();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    assert!(get(addr, "/metrics").body.contains("jobs_total 1\n"));
    jobs.inc();
    let bodies: Vec<String> = (0..8)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics").body))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(bodies.iter().all(|b| b.contains("jobs_total 1\n")), "rendered again within the TTL");
    clock.advance(watchpost::http::DEFAULT_SCRAPE_CACHE_TTL);
    assert!(get(addr, "/metrics").body.contains("jobs_total 2\n"));
    // OpenMetrics has its own rendering
    let om = request(addr, "GET", "/metrics", &[("Accept", "application/openmetrics-text")]);
    assert!(om.body.contains("jobs_total 2\n") && om.body.ends_with("# EOF\n"), "{}", om.body);

    let uncached = start(&engine, |b| b.scrape_cache_ttl(Duration::ZERO));
    jobs.inc();
    assert!(get(uncached.local_addr(), "/metrics").body.contains("jobs_total 3\n"));
    jobs.inc();
    assert!(get(uncached.local_addr(), "/metrics").body.contains("jobs_total 4\n"));
}

/// The figures in docs/http.md: 200 000 series; `/health` latency while
/// `/api/series` and `/metrics` run, and `/metrics` latency under 50
/// concurrent scrapers. Run with
/// `cargo test --release --all-features --test integration http::load_figures -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, for release builds"]
fn load_figures() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let engine = Engine::builder().without_system_source().series_cap(300_000).build().unwrap();
    let gauges: Vec<_> = (0..200_000)
        .map(|i| engine.gauge_with("load_gauge", &[("i", &i.to_string())]).unwrap())
        .collect();
    for (i, g) in gauges.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        g.set(i as f64);
    }
    engine.flush().unwrap();
    let server = HttpServer::builder().health_check_interval(None).start(engine.monitor()).unwrap();
    let addr = server.local_addr();

    let timed = |path: &str| {
        let t = Instant::now();
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        t.elapsed()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let health_worst = Arc::new(Mutex::new(Duration::ZERO));
    let prober = {
        let (stop, worst) = (stop.clone(), health_worst.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(get(addr, "/health").status, 200);
                let e = t.elapsed();
                let mut w = worst.lock().unwrap();
                *w = (*w).max(e);
                n += 1;
            }
            n
        })
    };
    let series: Vec<Duration> =
        (0..20).map(|i| timed(&format!("/api/series?name=load_gauge&labels=i:{i}"))).collect();
    let metrics: Vec<Duration> = (0..5).map(|_| timed("/metrics")).collect();
    let dashboard = timed("/api/dashboard");
    stop.store(true, Ordering::Relaxed);
    let health_probes = prober.join().unwrap();
    eprintln!(
        "200000 series: /api/series worst {:?}, /metrics worst {:?}, /api/dashboard {:?}; \
         /health worst {:?} over {health_probes} probes meanwhile",
        series.iter().max().unwrap(),
        metrics.iter().max().unwrap(),
        dashboard,
        health_worst.lock().unwrap()
    );

    scrape_under_load(addr, "200000 series");
    drop(server);
    drop(gauges);
    let small = Engine::builder().without_system_source().build().unwrap();
    let _counters: Vec<_> = (0..1_000)
        .map(|i| small.counter_with("small_total", &[("i", &i.to_string())]).unwrap())
        .collect();
    let server = HttpServer::builder().health_check_interval(None).start(small.monitor()).unwrap();
    scrape_under_load(server.local_addr(), "1000 series");
}

/// 50 threads scraping `/metrics` back to back for 10 s; prints the latencies.
fn scrape_under_load(addr: SocketAddr, what: &str) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let stop = Arc::new(AtomicBool::new(false));
    let scrapers: Vec<_> = (0..50)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    assert_eq!(get(addr, "/metrics").status, 200);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = scrapers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort();
    let p = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        all[((all.len() - 1) as f64 * q) as usize]
    };
    eprintln!(
        "50 scrapers for 10 s, {what}: {} scrapes, p50 {:?}, p99 {:?}, max {:?}",
        all.len(),
        p(0.5),
        p(0.99),
        all.last().unwrap()
    );
}

#[test]
fn alerts_carry_each_fact_once_and_leave_quiet_transitions_out() {
    use watchpost::alert::{Aggregate, AlertRule, CompareOp};
    let (engine, clock) = manual_engine();
    engine
        .add_alert_rule(
            AlertRule::builder("big_orders", "order_value")
                .threshold(Aggregate::Last, Duration::from_secs(10), CompareOp::Gt, 100.0)
                .build()
                .unwrap(),
        )
        .unwrap();
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    // a series that comes and goes: inactive → no_data → inactive, twice
    for _ in 0..2 {
        engine.record("order_value", &[], 5.0).unwrap();
        engine.flush().unwrap();
        clock.advance(Duration::from_secs(30));
        engine.flush().unwrap();
    }
    engine.record("order_value", &[], 500.0).unwrap();
    engine.flush().unwrap();

    let full: Vec<String> = engine
        .alert_history(Duration::from_hours(1))
        .iter()
        .map(|e| format!("{:?}", e.kind))
        .collect();
    assert!(full.len() >= 4, "the full history keeps the quiet transitions: {full:?}");
    assert!(full.iter().any(|k| k.contains("NoData")), "{full:?}");

    let alerts = get(addr, "/api/alerts").json();
    let recent = alerts["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1, "only the firing: {recent:?}");
    let firing = &recent[0];
    assert_eq!(firing["event"], "state_changed");
    assert_eq!(firing["from_state"], "no_data");
    assert_eq!(firing["state"], "firing");
    assert_eq!(firing["notified"], "firing");
    assert_eq!(firing["labels"]["severity"], "warning");
    let active = &alerts["active"][0];
    assert_eq!(active["state"], "firing");
    assert_eq!(active["labels"]["severity"], "warning");
    for redundant in ["level", "resolved"] {
        assert!(active.get(redundant).is_none(), "{redundant} in {active}");
        assert!(firing.get(redundant).is_none(), "{redundant} in {firing}");
    }
    // the dashboard shows the same views
    let d = get(addr, "/api/dashboard").json();
    assert_eq!(d["recent_alert_events"], alerts["recent"]);
    assert_eq!(d["active_alerts"], alerts["active"]);
}
