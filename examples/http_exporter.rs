//! Serves watchpost's HTTP endpoints on 127.0.0.1, scrapes its own
//! `/metrics` once over TCP, checks what it got, and stops.
//!
//! ```text
//! cargo run --features http --example http_exporter
//! cargo run --features http --example http_exporter -- --print            # the exposition to stdout
//! cargo run --features http --example http_exporter -- --hold 60          # keep serving for a minute
//! cargo run --features http --example http_exporter -- --addr 127.0.0.1:9898 --hold 60
//! ```
//!
//! The engine has every kind of instrument, a health check, and one gauge
//! whose label value is hostile HTML (`<script>alert(1)</script>`): the
//! exposition escapes what its format requires and the dashboard page shows
//! it as text. The server runs without a bearer token, so it is closed to
//! writes: the example checks that creating a silence is refused (`403`) and
//! that a request for another host name is misdirected (`421`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use watchpost::Engine;
use watchpost::health::HealthCheck;
use watchpost::http::HttpServer;

/// A label value that must never become markup.
const PROBE: &str = "<script>alert(1)</script>";

const USAGE: &str = "\
Usage: http_exporter [--addr ADDR] [--hold SECONDS] [--print]

Options:
  --addr ADDR       where to listen (default 127.0.0.1:0, a free port)
  --hold SECONDS    keep serving this long after the self-check (default 0)
  --print           print the /metrics body to stdout";

struct Options {
    addr: SocketAddr,
    hold: Duration,
    print: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o =
        Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), hold: Duration::ZERO, print: false };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--print" => o.print = true,
            "--addr" => {
                let v = args.next().ok_or("--addr needs a value")?;
                o.addr = v.parse().map_err(|_| format!("invalid address '{v}'"))?;
            }
            "--hold" => {
                let v = args.next().ok_or("--hold needs a value")?;
                let secs: u64 = v.parse().map_err(|_| format!("invalid seconds '{v}'"))?;
                o.hold = Duration::from_secs(secs.min(86_400));
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Some(o))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(options) = parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let engine = Engine::builder()
        .dashboard_recent_metrics(["queue_depth", "label_probe", "http_requests_total:rate"])
        .build()?;
    let registry = engine.registry();
    registry.describe("http_requests_total", "Requests served, by route.")?;
    registry.describe("queue_depth", "Jobs waiting in the queue.")?;
    registry.describe("request_duration_seconds", "Time to serve a request.")?;
    registry.describe("payload_size_bytes", "Size of request payloads.")?;
    registry.describe("label_probe", "A gauge whose label value is hostile HTML.")?;
    let requests = engine.counter_with("http_requests_total", &[("route", "/")])?;
    let queue = engine.gauge("queue_depth")?;
    let duration = engine.histogram_with("request_duration_seconds", &[], &[0.01, 0.1, 1.0])?;
    let payload = engine.summary("payload_size_bytes")?;
    let probe = engine.gauge_with("label_probe", &[("value", PROBE)])?;
    engine.register_health_check(HealthCheck::new("self", || Ok(())))?;

    requests.add(3);
    queue.set(7.0);
    probe.set(1.0);
    for v in [0.004, 0.02, 0.3] {
        duration.observe(v);
        payload.observe(v * 1000.0);
    }

    let server = HttpServer::builder().addr(options.addr).start(engine.monitor())?;
    eprintln!("http_exporter: serving on {}", server.url());

    let addr = server.local_addr();
    let host = addr.to_string();
    let (status, body) = send(addr, "GET /metrics", &host, "")?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("http_requests_total{route=\"/\"} 3\n"), "{body}");
    assert!(body.contains("request_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{body}");
    assert!(body.contains("label_probe{value=\"<script>alert(1)</script>\"} 1.0\n"), "{body}");
    if options.print {
        std::io::stdout().write_all(body.as_bytes())?;
    }
    // closed by default: no token, no writes
    let silence = r#"{"matchers": ["alertname=~\".*\""], "duration_seconds": 60}"#;
    let (status, answer) = send(addr, "POST /api/silences", &host, silence)?;
    assert_eq!(status, 403, "{answer}");
    assert!(engine.silences().is_empty());
    // a page on evil.example whose name resolves here is not served (DNS rebinding)
    let (status, answer) = send(addr, "GET /metrics", "evil.example", "")?;
    assert_eq!(status, 421, "{answer}");

    // Keep the numbers moving while the page is watched.
    let end = Instant::now() + options.hold;
    let mut step = 0.0_f64;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500).min(end - Instant::now()));
        step += 1.0;
        requests.inc();
        queue.set(7.0 + 3.0 * (step / 4.0).sin());
        duration.observe(0.01 * (1.0 + step % 5.0));
    }
    server.shutdown()?;
    engine.shutdown()?;
    Ok(())
}

/// `request` (method and path) for `host`, with a JSON `body`, over a plain
/// TCP connection; the status and the body of the answer.
fn send(
    addr: SocketAddr,
    request: &str,
    host: &str,
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{request} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Err("unexpected chunked answer".into());
    }
    Ok((status, body.to_owned()))
}
