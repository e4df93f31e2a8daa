//! `/api/rules` and `/api/config` against a real server on 127.0.0.1:0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use watchpost::ManualClock;
use watchpost::alert::{AlertState, NotificationKind};
use watchpost::http::HttpServer;

use crate::util::{T0, builder};

const TOKEN: &str = "s3cret";

/// One request with `Connection: close`; returns the status and the JSON body.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: bool,
) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let auth = if token { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

const BACKLOG: &str = r#"{"name": "queue_backlog", "metric": "queue_depth",
    "condition": {"kind": "threshold", "aggregate": "last", "window": "5m", "op": "gt", "value": 100.0},
    "for": "1m", "severity": "critical", "labels": {"team": "chat"}}"#;

#[test]
fn rules_are_listed_created_replaced_and_deleted_with_builder_checks() {
    let clock = ManualClock::at_millis(T0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let engine = builder(&clock)
        .without_default_alert_rules()
        .notifier("inbox", watchpost::alert::ChannelNotifier::new(tx))
        .build()
        .unwrap();
    let server = HttpServer::builder()
        .health_check_interval(None)
        .bearer_token(TOKEN)
        .start(engine.monitor())
        .unwrap();
    let addr = server.local_addr();

    // Without a token: 401, and nothing is created.
    assert_eq!(send(addr, "POST", "/api/rules", Some(BACKLOG), false).0, 401);
    assert_eq!(send(addr, "GET", "/api/rules", None, true).1, Value::Array(vec![]));

    let (status, body) = send(addr, "POST", "/api/rules", Some(BACKLOG), true);
    assert_eq!(status, 201, "{body}");
    assert_eq!(engine.alert_rules()[0].pending(), Duration::from_mins(1));
    assert_eq!(send(addr, "POST", "/api/rules", Some(BACKLOG), true).0, 409);

    // GET gives back the same document (as the file format writes it).
    let (status, got) = send(addr, "GET", "/api/rules/queue_backlog", None, true);
    assert_eq!(status, 200);
    let sent: Value = serde_json::from_str(BACKLOG).unwrap();
    assert_eq!(got, sent);
    assert_eq!(send(addr, "GET", "/api/rules/nope", None, true).0, 404);

    // The builder's checks: m > n is refused, naming the values.
    let bad = BACKLOG.replace("\"for\": \"1m\"", "\"m_of_n\": {\"m\": 9, \"n\": 5}");
    let (status, body) = send(addr, "PUT", "/api/rules/queue_backlog", Some(&bad), true);
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains('9') && msg.contains('5'), "{msg}");
    // A type error names the field path.
    let bad = BACKLOG.replace("\"gt\"", "\"greater\"");
    let (status, body) = send(addr, "POST", "/api/rules", Some(&bad), true);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("condition"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("greater"), "{body}");

    // Fire it, replace it (same series still selected: it keeps firing), delete it: one resolve.
    engine.gauge("queue_depth").unwrap().set(500.0);
    engine.flush().unwrap();
    clock.advance(Duration::from_mins(2));
    engine.flush().unwrap();
    assert_eq!(engine.active_alerts()[0].state, AlertState::Firing);
    let stricter = BACKLOG.replace("100.0", "50.0");
    assert_eq!(send(addr, "PUT", "/api/rules/queue_backlog", Some(&stricter), true).0, 200);
    assert_eq!(engine.alert_rules()[0].condition().to_string(), "last over 300s > 50");
    assert_eq!(send(addr, "DELETE", "/api/rules/queue_backlog", None, true).0, 200);
    assert_eq!(send(addr, "DELETE", "/api/rules/queue_backlog", None, true).0, 404);
    clock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let kinds: Vec<NotificationKind> = rx.try_iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NotificationKind::Firing, NotificationKind::Resolved]);
}

#[test]
fn config_shows_what_is_in_effect() {
    let clock = ManualClock::at_millis(T0);
    let config = watchpost::config::Config::from_toml_str(
        "[detectors]\nqueue_depth = \"ewma\"\n[detectors.latency_p90]\nkind = \"robust_z\"\nwindow = 64\n",
        "detectors.toml",
    )
    .unwrap();
    let engine = builder(&clock).config(config).build().unwrap();
    let server = HttpServer::builder()
        .health_check_interval(None)
        .bearer_token(TOKEN)
        .start(engine.monitor())
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(send(addr, "GET", "/api/config", None, false).0, 401);
    let (status, config) = send(addr, "GET", "/api/config", None, true);
    assert_eq!(status, 200);
    let names: Vec<&str> =
        config["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    let expected: Vec<String> = engine.alert_rules().iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, expected);
    // detector choices as written: a name, or a table with its parameters
    assert_eq!(config["detectors"]["queue_depth"], "ewma");
    assert_eq!(
        config["detectors"]["latency_p90"],
        serde_json::json!({"kind": "robust_z", "window": 64})
    );
    // It is a valid configuration document: it loads back.
    let back: watchpost::config::Config = serde_json::from_value(config).unwrap();
    assert_eq!(back, engine.effective_config());
}

#[test]
fn without_a_token_rule_writes_are_disabled() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let server = HttpServer::builder().health_check_interval(None).start(engine.monitor()).unwrap();
    let addr = server.local_addr();
    assert_eq!(send(addr, "POST", "/api/rules", Some(BACKLOG), false).0, 403);
    assert_eq!(send(addr, "DELETE", "/api/rules/cpu_usage_warning", None, false).0, 403);
    assert_eq!(send(addr, "GET", "/api/rules", None, false).0, 200);
    assert_eq!(engine.alert_rules().len(), 5);
}
