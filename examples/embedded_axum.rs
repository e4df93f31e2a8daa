//! An axum application that embeds watchpost: its own `/` and `/health`,
//! watchpost's page and API under `/monitor`, and the HTTP metrics
//! middleware on every route. It sends itself a few requests, checks what
//! was recorded, and stops (or keeps serving with `--hold`).
//!
//! ```text
//! cargo run --features http --example embedded_axum
//! cargo run --features http --example embedded_axum -- --hold 60    # then open the printed URL
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use watchpost::Engine;
use watchpost::http::{HttpMetricsLayer, HttpServer, REQUESTS_TOTAL};

/// `GET path` over a fresh connection; the status code.
fn status_of(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut hold = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--hold", Some(secs)) => hold = Duration::from_secs(secs.parse::<u64>()?.min(86_400)),
            _ => {
                return Err(format!(
                    "unknown argument '{arg}'; usage: embedded_axum [--hold SECONDS]"
                )
                .into());
            }
        }
    }
    let engine = Engine::builder()
        .without_system_source()
        .sample_interval(Duration::from_secs(1))
        .build()?;
    let monitor = engine.monitor();

    let app = Router::new()
        .route("/", get(|| async { "the chat server" }))
        .route("/health", get(|| async { "ok" }))
        .route("/rooms/{id}", get(|| async { "a room" }))
        // The application keeps its own /health; watchpost goes under /monitor.
        .merge(
            HttpServer::builder()
                .prefix("/monitor")
                .without_routes(["/health"])
                .router(monitor.clone())?,
        )
        .layer(HttpMetricsLayer::new(monitor.clone()));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime.block_on(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        })
    });
    eprintln!("monitoring on http://{addr}/monitor");

    for path in ["/rooms/1", "/rooms/42", "/health", "/monitor/api/dashboard", "/nowhere"] {
        eprintln!("GET {path}: {}", status_of(addr, path)?);
    }
    let rooms = monitor.counter_with(
        REQUESTS_TOTAL,
        &[("method", "GET"), ("route", "/rooms/{id}"), ("status_class", "2xx")],
    )?;
    assert_eq!(rooms.get(), 2, "both room requests under the route template");
    std::thread::sleep(hold);

    let _ = stop.send(());
    server.join().map_err(|_| "the server thread panicked")??;
    engine.shutdown()?;
    Ok(())
}
