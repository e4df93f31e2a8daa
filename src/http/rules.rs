//! `/api/rules` and `/api/config`: alert rules over HTTP, in the same JSON
//! form as the configuration file's `[[rules]]` ([`RuleSpec`]), checked by
//! the same builder.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde_json::json;

use super::routes::{Api, blocking, error, writes_disabled};
use crate::config::RuleSpec;
use crate::engine::Monitor;

/// The method routers of `/api/rules` and `/api/rules/{name}`; without a
/// token the writes answer 403 like the other mutating routes.
pub(super) fn routes(writable: bool) -> (MethodRouter<Api>, MethodRouter<Api>) {
    if writable {
        (get(list).merge(post(create)), get(one).merge(put(replace)).merge(delete(remove)))
    } else {
        (
            get(list).merge(post(writes_disabled)),
            get(one).merge(put(writes_disabled)).merge(delete(writes_disabled)),
        )
    }
}

/// Parses a rule body: JSON errors name the field path, line and column;
/// rule errors are the builder's.
fn parse(body: &[u8]) -> Result<crate::alert::AlertRule, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let spec: RuleSpec = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("invalid body at {}: {}", e.path(), e.inner()))?;
    spec.to_rule().map_err(|e| e.to_string())
}

async fn list(State(monitor): State<Monitor>) -> Response {
    match blocking(move || monitor.alert_rules()).await {
        Ok(rules) => {
            axum::Json(rules.iter().map(RuleSpec::from_rule).collect::<Vec<_>>()).into_response()
        }
        Err(response) => response,
    }
}

async fn one(State(monitor): State<Monitor>, Path(name): Path<String>) -> Response {
    let wanted = name.clone();
    let found = blocking(move || monitor.alert_rules().into_iter().find(|r| r.name() == wanted));
    match found.await {
        Ok(Some(rule)) => axum::Json(RuleSpec::from_rule(&rule)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no rule named {name:?}")),
        Err(response) => response,
    }
}

async fn create(State(monitor): State<Monitor>, body: Bytes) -> Response {
    let rule = match parse(&body) {
        Ok(rule) => rule,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let name = rule.name().to_owned();
    match blocking(move || monitor.add_alert_rule(rule)).await {
        Ok(Ok(())) => (StatusCode::CREATED, axum::Json(json!({ "created": name }))).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(response) => response,
    }
}

async fn replace(
    State(monitor): State<Monitor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let rule = match parse(&body) {
        Ok(rule) => rule,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if rule.name() != name {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the body names rule {:?}, the path {name:?}", rule.name()),
        );
    }
    match blocking(move || monitor.replace_alert_rule(rule)).await {
        Ok(Some(_)) => axum::Json(json!({ "replaced": name })).into_response(),
        Ok(None) => (StatusCode::CREATED, axum::Json(json!({ "created": name }))).into_response(),
        Err(response) => response,
    }
}

async fn remove(State(monitor): State<Monitor>, Path(name): Path<String>) -> Response {
    let wanted = name.clone();
    match blocking(move || monitor.remove_alert_rule(&wanted)).await {
        Ok(Some(_)) => axum::Json(json!({ "deleted": name })).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no rule named {name:?}")),
        Err(response) => response,
    }
}

/// `GET /api/config`: the effective configuration, inline secrets
/// redacted (see [`Monitor::effective_config`]).
pub(super) async fn config(State(monitor): State<Monitor>) -> Response {
    match blocking(move || monitor.effective_config()).await {
        Ok(config) => axum::Json(config).into_response(),
        Err(response) => response,
    }
}
