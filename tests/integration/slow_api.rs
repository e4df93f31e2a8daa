//! The slow-operation log over HTTP: `GET /api/slow` and `DELETE /api/slow`
//! (bearer token), filled by the `tracing` layer through real spans.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use watchpost::ManualClock;
use watchpost::integrations::TracingLayer;

use crate::http::{AUTH, TOKEN, get, request, start};
use crate::util::{T0, builder};

#[test]
fn slow_operations_are_listed_and_cleared_over_http() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let layer =
        TracingLayer::builder(&engine).slow_threshold(Duration::from_millis(100)).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for (name, ms) in [("db_query", 120), ("render", 20), ("db_query", 480), ("send", 200)] {
            tracing::info_span!("request").in_scope(|| {
                tracing::info_span!("step", op = name)
                    .in_scope(|| clock.advance(Duration::from_millis(ms)));
            });
        }
    });
    // every `request` span is as slow as its `step`: 3 of each over 100 ms
    let server = start(&engine, |b| b.bearer_token(TOKEN));
    let addr = server.local_addr();
    let listed = get(addr, "/api/slow");
    assert_eq!(listed.status, 401, "reading needs the token like every API route");
    let listed = request(addr, "GET", "/api/slow", AUTH).json();
    assert_eq!(listed["count"], 6, "{listed}");
    assert_eq!(listed["max_seconds"], 0.48);
    let by_name: Vec<(&str, u64)> = listed["by_name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_name, [("request", 3), ("step", 3)]);
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0]["name"], "step");
    assert_eq!(entries[0]["fields"]["op"], "db_query");
    assert_eq!(entries[0]["parents"][0], "request");
    assert_eq!(entries[1]["name"], "request");
    assert_eq!(entries[1]["parents"].as_array().map(Vec::len), Some(0));

    // clearing needs the token
    assert_eq!(request(addr, "DELETE", "/api/slow", &[]).status, 401);
    assert_eq!(engine.slow_operations().len(), 6);
    let cleared = request(addr, "DELETE", "/api/slow", AUTH);
    assert_eq!((cleared.status, cleared.json()["cleared"].as_u64()), (200, Some(6)));
    assert!(engine.slow_operations().is_empty());
    assert_eq!(request(addr, "GET", "/api/slow", AUTH).json()["count"], 0);
}

#[test]
fn without_a_token_the_log_is_readable_and_clearing_is_refused() {
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock).build().unwrap();
    let layer = TracingLayer::builder(&engine).slow_threshold(Duration::ZERO).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        drop(tracing::info_span!("tick"));
    });
    let server = start(&engine, |b| b);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/api/slow").json()["count"], 1);
    let refused = request(addr, "DELETE", "/api/slow", &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("DELETE /api/slow"), "{}", refused.body);
    assert_eq!(engine.slow_operations().len(), 1);
    let d = get(addr, "/api/dashboard").json();
    assert_eq!(d["slow_operations"]["entries"][0]["name"], "tick");
}
