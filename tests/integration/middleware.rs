//! The HTTP metrics middleware and the embedded router, through real axum
//! applications served on 127.0.0.1 by a tokio runtime on its own thread,
//! with a tiny HTTP/1.1 client on `std::net::TcpStream`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use watchpost::http::{
    HttpMetricsLayer, HttpServer, REQUEST_DURATION_SECONDS, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL,
    RESPONSE_SIZE_BYTES,
};
use watchpost::{DEFAULT_BUCKETS, ManualClock, Monitor};

use crate::util::{T0, builder};

/// The middleware's response size buckets, in bytes.
const SIZE_BUCKETS: [f64; 9] =
    [64.0, 256.0, 1024.0, 4096.0, 16_384.0, 65_536.0, 262_144.0, 1_048_576.0, 4_194_304.0];

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on 127.0.0.1:0 from a current-thread runtime on a new
/// thread; the server stops when the returned sender is dropped.
fn serve(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (addr_rx.recv_timeout(IO_TIMEOUT).expect("the server starts"), stop_tx)
}

/// Sends `GET path` (`Connection: close`); returns the status and the body.
fn get_path(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of headers");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut data: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = data.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        data = &rest[size + 2..];
    }
}

fn requests(m: &Monitor, method: &str, route: &str, class: &str) -> u64 {
    let labels = [("method", method), ("route", route), ("status_class", class)];
    m.counter_with(REQUESTS_TOTAL, &labels).unwrap().get()
}

fn in_flight(m: &Monitor, method: &str, route: &str) -> f64 {
    m.gauge_with(REQUESTS_IN_FLIGHT, &[("method", method), ("route", route)]).unwrap().get()
}

/// Every request of the app takes 250 ms on the engine clock.
fn app(monitor: &Monitor, clock: &ManualClock) -> Router {
    let c = clock.clone();
    Router::new()
        .route(
            "/rooms/{id}",
            get(move |Path(id): Path<String>| {
                let c = c.clone();
                async move {
                    c.advance(Duration::from_millis(250));
                    if id == "missing" {
                        (StatusCode::NOT_FOUND, "no room")
                    } else {
                        (StatusCode::OK, "room!")
                    }
                }
            })
            .post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .layer(HttpMetricsLayer::new(monitor.clone()))
}

#[test]
fn middleware_labels_by_route_template_method_and_status_class() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let m = engine.monitor();
    let (addr, _stop) = serve(app(&m, &clock));

    for id in ["1", "42", "7"] {
        assert_eq!(get_path(addr, "GET", &format!("/rooms/{id}")).0, 200);
    }
    assert_eq!(get_path(addr, "GET", "/rooms/missing").0, 404);
    assert_eq!(get_path(addr, "POST", "/rooms/9").0, 500);
    assert_eq!(get_path(addr, "GET", "/nowhere/1").0, 404);
    assert_eq!(get_path(addr, "BREW", "/rooms/1").0, 405);

    assert_eq!(requests(&m, "GET", "/rooms/{id}", "2xx"), 3);
    assert_eq!(requests(&m, "GET", "/rooms/{id}", "4xx"), 1);
    assert_eq!(requests(&m, "POST", "/rooms/{id}", "5xx"), 1);
    assert_eq!(requests(&m, "GET", "unmatched", "4xx"), 1);
    assert_eq!(requests(&m, "OTHER", "/rooms/{id}", "4xx"), 1);
    // Never the raw path, never an invented method.
    let series: Vec<String> = m.series().iter().map(|s| s.key.to_string()).collect();
    assert!(series.iter().all(|s| !s.contains("/rooms/42") && !s.contains("BREW")), "{series:?}");

    let labels = [("method", "GET"), ("route", "/rooms/{id}"), ("status_class", "2xx")];
    let duration =
        m.histogram_with(REQUEST_DURATION_SECONDS, &labels, &DEFAULT_BUCKETS).unwrap().snapshot();
    assert_eq!(duration.count, 3);
    assert!((duration.sum - 0.75).abs() < 1e-9, "three requests of 250 ms: {}", duration.sum);
    let size = m.histogram_with(RESPONSE_SIZE_BYTES, &labels, &SIZE_BUCKETS).unwrap().snapshot();
    assert_eq!((size.count, size.sum), (3, 15.0), "three bodies of 5 bytes");

    assert_eq!(in_flight(&m, "GET", "/rooms/{id}"), 0.0);
    assert_eq!(in_flight(&m, "GET", "unmatched"), 0.0);
}

#[test]
fn middleware_counts_requests_in_flight_until_they_end() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let m = engine.monitor();
    let release = Arc::new(tokio::sync::Notify::new());
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let r = Arc::clone(&release);
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (r, entered) = (Arc::clone(&r), entered_tx.clone());
                async move {
                    entered.send(()).unwrap();
                    r.notified().await;
                    "done"
                }
            }),
        )
        .layer(HttpMetricsLayer::new(m.clone()));
    let (addr, _stop) = serve(app);

    let client = thread::spawn(move || get_path(addr, "GET", "/slow"));
    entered_rx.recv_timeout(IO_TIMEOUT).expect("the handler runs");
    assert_eq!(in_flight(&m, "GET", "/slow"), 1.0);
    assert_eq!(requests(&m, "GET", "/slow", "2xx"), 0);
    release.notify_one();
    assert_eq!(client.join().unwrap(), (200, "done".to_owned()));
    assert_eq!(in_flight(&m, "GET", "/slow"), 0.0);
    assert_eq!(requests(&m, "GET", "/slow", "2xx"), 1);
}

#[test]
fn the_router_merges_into_an_app_that_has_its_own_health_route() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let routes =
        HttpServer::builder().without_routes(["/health"]).router(engine.monitor()).unwrap();
    let app = Router::new().route("/health", get(|| async { "app is fine" })).merge(routes);
    let (addr, _stop) = serve(app);
    assert_eq!(get_path(addr, "GET", "/health"), (200, "app is fine".to_owned()));
    let (status, body) = get_path(addr, "GET", "/api/dashboard");
    assert_eq!(status, 200);
    assert!(body.contains("\"schema_version\""), "{body}");
}

#[test]
fn the_router_mounts_under_a_prefix_with_the_page_at_both_urls() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    engine.gauge("room_count").unwrap().set(3.0);
    engine.flush().unwrap();
    let m = engine.monitor();
    let routes = HttpServer::builder().prefix("/monitor").router(m.clone()).unwrap();
    let app = Router::new()
        .route("/", get(|| async { "the app" }))
        .merge(routes)
        .fallback(|| async { (StatusCode::NOT_FOUND, "app 404") })
        .layer(HttpMetricsLayer::new(m.clone()));
    let (addr, _stop) = serve(app);

    // Without the trailing slash the page's relative requests would go to
    // `/api/…`: it carries a base that points them under the prefix.
    let (status, page) = get_path(addr, "GET", "/monitor");
    assert_eq!(status, 200);
    assert!(page.contains(r#"<base href="./monitor/">"#), "{}", &page[..200]);
    let (status, page) = get_path(addr, "GET", "/monitor/");
    assert_eq!(status, 200);
    assert!(page.contains("api/dashboard") && !page.contains("<base"), "{}", &page[..200]);

    let (status, body) = get_path(addr, "GET", "/monitor/api/series?name=room_count");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("room_count"), "{body}");
    assert_eq!(get_path(addr, "GET", "/monitor/assets/uPlot.min.css").0, 200);
    assert_eq!(get_path(addr, "GET", "/").1, "the app");
    // Nothing of watchpost outside the prefix; the app's fallback stays.
    assert_eq!(get_path(addr, "GET", "/api/dashboard"), (404, "app 404".to_owned()));
    assert_eq!(get_path(addr, "GET", "/metrics"), (404, "app 404".to_owned()));

    assert_eq!(requests(&m, "GET", "/monitor/api/series", "2xx"), 1);
    assert_eq!(requests(&m, "GET", "unmatched", "4xx"), 2);
}

#[test]
fn a_router_nested_by_the_app_serves_a_page_whose_requests_stay_under_it() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let app = Router::new().nest("/ops", watchpost::http::router(engine.monitor()));
    let (addr, _stop) = serve(app);
    let (status, page) = get_path(addr, "GET", "/ops");
    assert_eq!(status, 200);
    assert!(page.contains(r#"<base href="./ops/">"#), "{}", &page[..200]);
    assert_eq!(get_path(addr, "GET", "/ops/api/dashboard").0, 200);
}

#[test]
fn bad_prefixes_and_unknown_routes_are_errors_naming_them() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    for bad in ["monitor", "/monitor/", "/a//b", "/{id}", "/mon itor"] {
        let err = HttpServer::builder().prefix(bad).router(engine.monitor()).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{bad}: {err}");
        assert!(err.to_string().contains("prefix"), "{err}");
    }
    let err =
        HttpServer::builder().without_routes(["/healthz"]).router(engine.monitor()).unwrap_err();
    assert!(
        err.to_string().contains("\"/healthz\"") && err.to_string().contains("/health,"),
        "{err}"
    );
    let err = HttpServer::builder().prefix("/x/").start(engine.monitor()).unwrap_err();
    assert!(err.to_string().contains("\"/x/\""), "{err}");
}

#[test]
fn the_standalone_server_records_its_own_requests_when_asked() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let quiet = HttpServer::builder().start(engine.monitor()).unwrap();
    assert_eq!(get_path(quiet.local_addr(), "GET", "/health").0, 200);
    quiet.shutdown().unwrap();
    assert!(!engine.prometheus_text().contains(REQUESTS_TOTAL), "recorded without asking");

    let server = HttpServer::builder().record_requests(true).start(engine.monitor()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get_path(addr, "GET", "/health").0, 200);
    assert_eq!(get_path(addr, "GET", "/health").0, 200);
    assert_eq!(get_path(addr, "GET", "/api/series/nothing/here").0, 404);
    server.shutdown().unwrap();
    let m = engine.monitor();
    assert_eq!(requests(&m, "GET", "/health", "2xx"), 2);
    assert_eq!(requests(&m, "GET", "unmatched", "4xx"), 1);
}
