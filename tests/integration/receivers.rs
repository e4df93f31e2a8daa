//! The receivers against a local HTTP server (axum on its own tokio runtime):
//! payload shapes, the DingTalk signature, retries, timeouts and the
//! Alertmanager re-send on the engine's clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use watchpost::alert::{AlertManager, AlertRule, MemoryView, Notification, Severity};
use watchpost::notify::{
    AlertGroup, AlertmanagerReceiver, Delivery, DingTalkReceiver, Receiver, ReceiverNotifier,
    SlackReceiver, WebhookReceiver,
};
use watchpost::{ManualClock, SeriesKey};

use crate::util::{T0, builder};

/// One request the sink received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Value,
}

/// What the sink answers.
#[derive(Clone)]
enum Answer {
    /// These statuses first (with a body naming them), then 200 with `ok_body`.
    Script(Vec<u16>, &'static str),
    /// Never answers.
    Hang,
}

/// A local HTTP server that records every request.
struct Sink {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start(answer: Answer) -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(match &answer {
            Answer::Script(s, _) => s.clone(),
            Answer::Hang => Vec::new(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |req: Request| {
                    let recorded = Arc::clone(&recorded);
                    let script = Arc::clone(&script);
                    let answer = answer.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                        let query = parts
                            .uri
                            .query()
                            .map(|q| {
                                q.split('&')
                                    .filter_map(|kv| kv.split_once('='))
                                    .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let headers = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                            .collect();
                        recorded.lock().push(Seen {
                            path: parts.uri.path().to_owned(),
                            query,
                            headers,
                            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        });
                        let (status, body) = match answer {
                            Answer::Hang => std::future::pending().await,
                            Answer::Script(_, ok) => {
                                let mut s = script.lock();
                                if s.is_empty() {
                                    (200, ok.to_owned())
                                } else {
                                    let status = s.remove(0);
                                    (status, format!("scripted failure {status}"))
                                }
                            }
                        };
                        Response::builder()
                            .status(StatusCode::from_u16(status).unwrap())
                            .body(Body::from(body))
                            .unwrap()
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
        });
        Sink { addr, seen, stop: Some(stop), thread: Some(thread) }
    }

    fn ok() -> Sink {
        Sink::start(Answer::Script(Vec::new(), "ok"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Waits (wall time, at most 10 s) until the sink has seen `n` requests.
    #[track_caller]
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.seen.lock().len() < n {
            assert!(Instant::now() < deadline, "waited for {n} requests, got {:?}", self.seen());
            std::thread::sleep(Duration::from_millis(5));
        }
        self.seen()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(JoinHandle::join);
    }
}

/// `%XX` and `+` decoding of a query value.
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A fast policy for tests: 300 ms per attempt, two retries, 1–5 ms backoff.
fn fast() -> Delivery {
    Delivery::new(Duration::from_millis(300), 2)
        .unwrap()
        .with_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .unwrap()
}

/// A firing notification and its resolve, of rule `hot` (critical) on
/// `temp{room="lab"}`.
fn fire_and_resolve() -> (Notification, Notification) {
    let rule = AlertRule::builder("hot", "temp")
        .above(30.0)
        .severity(Severity::Critical)
        .title("{{labels.room}} is hot")
        .build()
        .unwrap();
    let mut mgr = AlertManager::new(vec![rule]).unwrap();
    let key = SeriesKey::new("temp", &[("room", "lab")]).unwrap();
    let mut view = MemoryView::new();
    view.push(key.clone(), T0, 35.0);
    let firing = mgr.evaluate(T0, &view).remove(0);
    view.push(key, T0 + 60_000, 20.0);
    let resolved = mgr.evaluate(T0 + 60_000, &view).remove(0);
    (firing, resolved)
}

#[test]
fn webhook_posts_alertmanagers_payload_with_the_bearer_token() {
    let sink = Sink::ok();
    let hook = WebhookReceiver::new("oncall", &sink.url("/hook"))
        .unwrap()
        .bearer_token("t0ken")
        .header("x-team", "chat")
        .external_url("http://chat-1:9898/")
        .delivery(fast());
    let shown = format!("{hook:?}");
    assert!(!shown.contains("t0ken") && !shown.contains("chat\""), "{shown}");
    let (firing, resolved) = fire_and_resolve();
    hook.send(&AlertGroup::single("oncall", &firing)).unwrap();
    hook.send(&AlertGroup::single("oncall", &resolved)).unwrap();
    let seen = sink.wait_for(2);
    assert_eq!(seen[0].path, "/hook");
    assert_eq!(seen[0].headers["authorization"], "Bearer t0ken");
    assert_eq!(seen[0].headers["x-team"], "chat");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    let b = &seen[0].body;
    assert_eq!(b["version"], "4");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "oncall");
    assert_eq!(b["truncatedAlerts"], 0);
    assert_eq!(b["externalURL"], "http://chat-1:9898/");
    assert!(b["groupKey"].as_str().unwrap().contains("hot"), "{b}");
    assert_eq!(b["commonLabels"]["alertname"], "hot");
    assert_eq!(b["commonLabels"]["room"], "lab");
    assert_eq!(b["commonAnnotations"]["summary"], "lab is hot");
    let a = &b["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["severity"], "critical");
    assert!(a["labels"].get("__name__").is_none(), "{a}");
    assert_eq!(a["annotations"]["summary"], "lab is hot");
    assert_eq!(a["startsAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["generatorURL"], "http://chat-1:9898/");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    let r = &seen[1].body;
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["alerts"][0]["status"], "resolved");
    assert_eq!(r["alerts"][0]["endsAt"], "2026-01-01T00:01:00.000Z");
    assert_eq!(r["alerts"][0]["fingerprint"], a["fingerprint"]);
    let s = hook.stats();
    assert_eq!((s.sent, s.failed, s.retried), (2, 0, 0));
}

#[test]
fn a_server_that_fails_twice_gets_the_notification_once_after_two_retries() {
    let sink = Sink::start(Answer::Script(vec![500, 503], "ok"));
    let hook = WebhookReceiver::new("w", &sink.url("/")).unwrap().delivery(fast());
    let (firing, _) = fire_and_resolve();
    hook.send(&AlertGroup::single("w", &firing)).unwrap();
    let seen = sink.seen();
    assert_eq!(seen.len(), 3, "two failures and the delivery");
    assert!(seen.iter().all(|s| s.body == seen[0].body));
    let s = hook.stats();
    assert_eq!((s.sent, s.failed, s.retried), (1, 0, 2), "{s:?}");
}

#[test]
fn too_many_requests_is_retried_and_other_4xx_are_not() {
    let sink = Sink::start(Answer::Script(vec![429], "ok"));
    let hook = WebhookReceiver::new("w", &sink.url("/")).unwrap().delivery(fast());
    let (firing, _) = fire_and_resolve();
    hook.send(&AlertGroup::single("w", &firing)).unwrap();
    assert_eq!(sink.seen().len(), 2);

    let sink = Sink::start(Answer::Script(vec![400, 400, 400], "ok"));
    let hook = WebhookReceiver::new("w", &sink.url("/?token=q5ecret")).unwrap().delivery(fast());
    let e = hook.send(&AlertGroup::single("w", &firing)).unwrap_err().to_string();
    assert_eq!(sink.seen().len(), 1, "a 400 is not retried");
    assert!(e.contains("400") && e.contains("scripted failure 400"), "{e}");
    assert!(!e.contains("q5ecret"), "{e}");
    let s = hook.stats();
    assert_eq!((s.sent, s.failed, s.retried), (0, 1, 0));
    assert_eq!(s.last_error.as_deref(), Some(e.as_str()));
}

#[test]
fn a_server_that_never_answers_costs_bounded_time_and_counts_a_failure() {
    let sink = Sink::start(Answer::Hang);
    let delivery = Delivery::new(Duration::from_millis(200), 1)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .unwrap();
    let hook = WebhookReceiver::new("w", &sink.url("/")).unwrap().delivery(delivery);
    let (firing, _) = fire_and_resolve();
    let started = Instant::now();
    assert!(hook.send(&AlertGroup::single("w", &firing)).is_err());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "two attempts of 200 ms: {took:?}");
    assert!(took < delivery.max_send_time() + Duration::from_millis(500), "{took:?}");
    assert_eq!(sink.seen().len(), 2);
    let s = hook.stats();
    assert_eq!((s.sent, s.failed, s.retried), (0, 1, 1));
    assert!(s.last_error.unwrap().contains("(after 2 attempts"));
}

#[test]
fn slack_colours_firing_by_severity_and_resolved_green() {
    let sink = Sink::ok();
    let url = sink.url("/services/T000/B000/s3cretpath");
    let slack = SlackReceiver::new("slack", &url).unwrap().channel("#alerts").delivery(fast());
    assert!(!format!("{slack:?}").contains("s3cretpath"));
    let (firing, resolved) = fire_and_resolve();
    slack.send(&AlertGroup::single("slack", &firing)).unwrap();
    slack.send(&AlertGroup::single("slack", &resolved)).unwrap();
    let seen = sink.wait_for(2);
    let (f, r) = (&seen[0].body, &seen[1].body);
    assert_eq!(f["channel"], "#alerts");
    assert_eq!(f["text"], "[FIRING:1] hot");
    assert_eq!(f["attachments"][0]["color"], "#d63232");
    assert!(
        f["attachments"][0]["text"].as_str().unwrap().contains("*FIRING* lab is hot (critical)")
    );
    assert_eq!(r["text"], "[RESOLVED] hot");
    assert_eq!(r["attachments"][0]["color"], "#2eb886");
    assert!(r["attachments"][0]["text"].as_str().unwrap().contains("*RESOLVED*"));
}

#[test]
fn dingtalk_signs_with_the_secret_and_fails_on_a_nonzero_errcode() {
    let sink = Sink::start(Answer::Script(Vec::new(), r#"{"errcode":0,"errmsg":"ok"}"#));
    let clock = ManualClock::at_millis(T0 + 123);
    let secret = "SECa1b2c3";
    let ding = DingTalkReceiver::new("ding", &sink.url("/robot/send?access_token=t0k"))
        .unwrap()
        .secret(secret)
        .clock(clock.clone())
        .delivery(fast());
    let shown = format!("{ding:?}");
    assert!(!shown.contains(secret) && !shown.contains("t0k"), "{shown}");
    let (firing, _) = fire_and_resolve();
    ding.send(&AlertGroup::single("ding", &firing)).unwrap();
    let seen = &sink.seen()[0];
    assert_eq!(seen.path, "/robot/send");
    assert_eq!(seen.query["access_token"], "t0k");
    assert_eq!(seen.query["timestamp"], (T0 + 123).to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}\n{secret}", T0 + 123).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(seen.query["sign"], expected);
    assert_eq!(seen.body["msgtype"], "markdown");
    assert_eq!(seen.body["markdown"]["title"], "[FIRING:1] hot");
    assert!(seen.body["markdown"]["text"].as_str().unwrap().contains("lab is hot"));

    let refusing =
        Sink::start(Answer::Script(Vec::new(), r#"{"errcode":310000,"errmsg":"sign not match"}"#));
    let ding =
        DingTalkReceiver::new("ding", &refusing.url("/robot/send")).unwrap().delivery(fast());
    let e = ding.send(&AlertGroup::single("ding", &firing)).unwrap_err().to_string();
    assert!(e.contains("sign not match"), "{e}");
    assert_eq!(refusing.seen().len(), 1);
}

#[test]
fn alertmanager_gets_v2_alerts_at_every_address_and_active_ones_again_each_interval() {
    let (a, b) = (Sink::ok(), Sink::ok());
    let clock = ManualClock::at_millis(T0);
    let am = AlertmanagerReceiver::builder([a.url(""), b.url("/")])
        .clock(clock.clone())
        .resend_interval(Duration::from_mins(1))
        .generator_url("http://chat-1:9898/")
        .bearer_token("am-t0ken")
        .delivery(fast())
        .build()
        .unwrap();
    assert!(!format!("{am:?}").contains("am-t0ken"));
    let (firing, resolved) = fire_and_resolve();
    am.send(&AlertGroup::single("am", &firing)).unwrap();
    for sink in [&a, &b] {
        let seen = sink.wait_for(1);
        assert_eq!(seen[0].path, "/api/v2/alerts");
        assert_eq!(seen[0].headers["authorization"], "Bearer am-t0ken");
        let alert = &seen[0].body[0];
        assert_eq!(alert["labels"]["alertname"], "hot");
        assert_eq!(alert["labels"]["room"], "lab");
        assert_eq!(alert["annotations"]["summary"], "lab is hot");
        assert_eq!(alert["startsAt"], "2026-01-01T00:00:00.000Z");
        assert_eq!(alert["endsAt"], "2026-01-01T00:04:00.000Z", "four resend intervals ahead");
        assert_eq!(alert["generatorURL"], "http://chat-1:9898/");
    }
    assert_eq!(am.active(), 1);

    // Not yet due: nothing more, however long the thread polls.
    clock.advance(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!((a.seen().len(), b.seen().len()), (1, 1));
    // Due by the clock: the active alert again, with endsAt moved on.
    clock.advance(Duration::from_secs(31));
    for sink in [&a, &b] {
        let again = &sink.wait_for(2)[1].body[0];
        assert_eq!(again["labels"]["alertname"], "hot");
        assert_eq!(again["endsAt"], "2026-01-01T00:05:01.000Z");
    }

    am.send(&AlertGroup::single("am", &resolved)).unwrap();
    let ended = &a.wait_for(3)[2].body[0];
    assert_eq!(ended["endsAt"], "2026-01-01T00:01:00.000Z");
    assert_eq!(am.active(), 0);
    clock.advance(Duration::from_mins(2));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.seen().len(), 3, "a resolved alert is not re-sent");
    assert_eq!(am.stats().sent, 6);
}

#[test]
fn alertmanager_keeps_a_bounded_active_set_and_counts_the_rest() {
    let sink = Sink::ok();
    let am = AlertmanagerReceiver::builder([sink.url("")])
        .max_active(1)
        .delivery(fast())
        .build()
        .unwrap();
    let (firing, _) = fire_and_resolve();
    let mut other = firing.clone();
    other.alert_id = "hot/temp{room=\"hall\"}".into();
    am.send(&AlertGroup::single("am", &firing)).unwrap();
    am.send(&AlertGroup::single("am", &other)).unwrap();
    assert_eq!(am.active(), 1);
    assert_eq!(am.stats().dropped, 1);
    assert_eq!(sink.seen().len(), 2, "sent once all the same");
}

#[test]
fn an_engine_delivers_through_a_receiver_and_shows_its_counters_in_metrics() {
    let sink = Sink::start(Answer::Script(vec![502], "ok"));
    let clock = ManualClock::at_millis(T0);
    let hook = Arc::new(WebhookReceiver::new("hook", &sink.url("/")).unwrap().delivery(fast()));
    let engine = builder(&clock)
        .alert_rule(AlertRule::builder("hot", "temp").above(30.0).build().unwrap())
        .notifier("hook", ReceiverNotifier(Arc::clone(&hook)))
        .build()
        .unwrap();
    hook.register_metrics(engine.registry()).unwrap();
    engine.record("temp", &[("room", "lab")], 35.0).unwrap();
    engine.flush().unwrap();
    assert!(engine.flush_notifications(Duration::from_secs(10)));
    assert_eq!(sink.seen().len(), 2);
    assert_eq!(sink.seen()[1].body["status"], "firing");
    let text = engine.prometheus_text();
    assert!(text.contains("watchpost_receiver_sent_total{receiver=\"hook\"} 1"), "{text}");
    assert!(text.contains("watchpost_receiver_retried_total{receiver=\"hook\"} 1"), "{text}");
    assert!(text.contains("watchpost_receiver_failed_total{receiver=\"hook\"} 0"), "{text}");
    assert!(text.contains("# HELP watchpost_receiver_retried_total"), "{text}");
    let handler = &engine.notification_stats().handlers[0];
    assert_eq!((handler.delivered, handler.failed), (1, 0));
    engine.shutdown().unwrap();
}

/// A webhook described in a file sends what the same receiver built in code
/// sends: its headers (secrets from the environment), its external URL, and
/// the retries of its `delivery` table.
#[test]
fn a_webhook_from_a_file_has_its_headers_external_url_and_delivery() {
    let sink = Sink::start(Answer::Script(vec![503], "ok"));
    let secret = std::env::temp_dir().join(format!("watchpost-team-{}", std::process::id()));
    std::fs::write(&secret, "chat\n").unwrap();
    let text = format!(
        r#"
kind = "webhook"
name = "oncall"
url = "{}"
headers = {{ x-team = {{ file = {:?} }}, x-tier = "1" }}
external_url = "http://chat-1:9898/"
delivery = {{ timeout = "300ms", retries = 1, initial_backoff = "1ms", max_backoff = "5ms" }}
"#,
        sink.url("/hook"),
        secret.display().to_string(),
    );
    let spec: watchpost::config::ReceiverSpec = toml::from_str(&text).unwrap();
    let hook = spec.to_receiver().unwrap();
    let (firing, _) = fire_and_resolve();
    hook.send(&AlertGroup::single("oncall", &firing)).unwrap();
    let seen = sink.wait_for(2); // one 503, one retry
    assert_eq!(seen[1].headers["x-team"], "chat");
    assert_eq!(seen[1].headers["x-tier"], "1");
    assert_eq!(seen[1].body["externalURL"], "http://chat-1:9898/");
    // shown redacted: the inline header value, not the reference to the file
    let shown = toml::to_string(&spec.redacted()).unwrap();
    assert!(shown.contains("watchpost-team-") && !shown.contains("\"1\""), "{shown}");
    // a delivery the constructor refuses is an error naming the value
    let bad: watchpost::config::ReceiverSpec =
        toml::from_str(&text.replace("retries = 1", "retries = 99")).unwrap();
    let err = bad.to_receiver().err().unwrap().to_string();
    assert!(err.contains("99"), "{err}");
    let _ = std::fs::remove_file(&secret);
}
