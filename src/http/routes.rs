//! The routes and their handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::AllowedHosts;
use super::scrape::ScrapeCache;
use crate::engine::Monitor;
use crate::export::{self, Format};
use crate::health::Status;
use crate::history::Sample;
use crate::key::{Labels, SeriesKey};
use crate::kind::MetricKind;

/// Default window of `/api/series`, in seconds.
const DEFAULT_WINDOW_SECS: f64 = 300.0;
/// Longest window `/api/series` accepts: 30 days.
const MAX_WINDOW_SECS: f64 = 30.0 * 86_400.0;

/// What the routes enforce, from [`HttpServerBuilder`](super::HttpServerBuilder).
#[derive(Debug)]
pub(super) struct Access {
    /// Required on every route but `/health` and `/`; without one the
    /// mutating routes are disabled.
    pub(super) token: Option<Arc<str>>,
    pub(super) body_limit: usize,
    pub(super) hosts: AllowedHosts,
    pub(super) scrape_cache: Arc<ScrapeCache>,
}

/// The handlers' state: the monitor, and the scrape cache for `/metrics`.
#[derive(Debug, Clone)]
pub(super) struct Api {
    monitor: Monitor,
    scrape: Arc<ScrapeCache>,
}

impl FromRef<Api> for Monitor {
    fn from_ref(api: &Api) -> Monitor {
        api.monitor.clone()
    }
}

/// Builds every route with the given access rules.
pub(super) fn build(monitor: Monitor, access: Access) -> Router {
    let Access { token, body_limit, hosts, scrape_cache } = access;
    let api = Api { monitor, scrape: scrape_cache };
    // Closed by default: without a token nobody may change state.
    let (ack, create, expire) = if token.is_some() {
        (post(acknowledge), post(create_silence), delete(expire_silence))
    } else {
        (post(writes_disabled), post(writes_disabled), delete(writes_disabled))
    };
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/detailed", get(health_detailed))
        .route("/api/dashboard", get(dashboard))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/ack", ack)
        .route("/api/silences", get(silences).merge(create))
        .route("/api/silences/{id}", expire)
        .route("/api/series", get(series))
        .with_state(api);
    let protected = match token {
        Some(token) => protected.layer(middleware::from_fn_with_state(token, require_token)),
        None => protected,
    };
    Router::new()
        .route("/", get(page))
        .route("/assets/{file}", get(super::assets::asset))
        .route("/health", get(liveness))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::new(hosts), check_host))
        .layer(middleware::map_response(common_headers))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
}

/// `421` unless the request names this server, in its `Host` header and in
/// the authority of an absolute request URI (when it has one).
async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let mut given = request.headers().get_all(header::HOST).iter();
    let verdict = match (given.next(), given.next()) {
        (None, _) if request.uri().authority().is_none() => Err("missing Host header".to_owned()),
        (Some(_), Some(_)) => Err("more than one Host header".to_owned()),
        (host, _) => host
            .map(|h| h.to_str().map_err(|_| "invalid Host header".to_owned()))
            .into_iter()
            .chain(request.uri().authority().map(|a| Ok(a.as_str())))
            .try_for_each(|authority| hosts.check(authority?)),
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(reason) => error(StatusCode::MISDIRECTED_REQUEST, reason),
    }
}

/// Stands in for the mutating routes when the server has no bearer token.
async fn writes_disabled(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::FORBIDDEN,
        format!(
            "{method} {} changes state and is disabled: the server has no bearer token \
             (HttpServerBuilder::bearer_token)",
            uri.path()
        ),
    )
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without returning early on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                 img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        super::DASHBOARD_HTML,
    )
        .into_response()
}

async fn liveness() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Off the async worker, and shared with the scrapes that arrive within the
/// scrape cache's TTL or while it renders.
async fn metrics(State(api): State<Api>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let Api { monitor, scrape } = api;
    let rendered = blocking(move || {
        scrape.get(
            format,
            || monitor.clock_now_ms(),
            |out| {
                export::encode(monitor.registry(), format, out);
            },
        )
    });
    match rendered.await {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(response) => response,
    }
}

/// Runs `f` on the blocking pool: it may wait on locks or, for health checks, on timeouts.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

/// Runs `f`, which builds a response (JSON is serialized as it is built), on
/// the blocking pool: serializing a snapshot of many series takes long.
async fn respond_blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    blocking(f).await.unwrap_or_else(|response| response)
}

async fn health_detailed(State(monitor): State<Monitor>) -> Response {
    respond_blocking(move || {
        let report = monitor.health();
        let status = if report.status == Status::Unhealthy {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        (status, axum::Json(report)).into_response()
    })
    .await
}

async fn dashboard(State(monitor): State<Monitor>) -> Response {
    respond_blocking(move || axum::Json(monitor.dashboard()).into_response()).await
}

async fn alerts(State(monitor): State<Monitor>) -> Response {
    respond_blocking(move || {
        let (active, recent) = monitor.alert_views();
        axum::Json(json!({ "active": active, "recent": recent })).into_response()
    })
    .await
}

/// Body of `POST /api/alerts/ack`.
#[derive(Debug, Deserialize)]
struct AckRequest {
    id: String,
}

async fn acknowledge(
    State(monitor): State<Monitor>,
    body: Result<axum::Json<AckRequest>, JsonRejection>,
) -> Response {
    let axum::Json(req) = match body {
        Ok(body) => body,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("invalid body: {}", e.body_text()));
        }
    };
    let id = req.id.clone();
    match blocking(move || monitor.acknowledge_alert(&req.id)).await {
        Ok(true) => axum::Json(json!({ "acknowledged": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no unacknowledged active alert {id:?}")),
        Err(response) => response,
    }
}

/// A silence on the wire.
#[derive(Debug, Serialize)]
struct SilenceView {
    id: u64,
    matchers: Vec<String>,
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
    created_by: String,
    comment: String,
    active: bool,
    expired: bool,
}

async fn silences(State(monitor): State<Monitor>) -> Response {
    respond_blocking(move || {
        let now = monitor.clock_now_ms();
        let list: Vec<SilenceView> = monitor
            .silences()
            .iter()
            .map(|s| SilenceView {
                id: s.id().0,
                matchers: s.matchers().iter().map(ToString::to_string).collect(),
                starts_at: crate::clock::ms_to_datetime(s.starts_at_ms()),
                ends_at: crate::clock::ms_to_datetime(s.ends_at_ms()),
                created_by: s.creator().to_owned(),
                comment: s.why().to_owned(),
                active: s.is_active(now),
                expired: s.is_expired(now),
            })
            .collect();
        axum::Json(json!({ "silences": list })).into_response()
    })
    .await
}

/// Body of `POST /api/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    /// `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
    matchers: Vec<String>,
    /// From now for this long; or `ends_at`.
    duration_seconds: Option<f64>,
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    ends_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// Longest silence the API accepts: a year.
const MAX_SILENCE_SECS: f64 = 366.0 * 86_400.0;

fn parse_silence(req: SilenceRequest, now_ms: i64) -> Result<crate::alert::Silence, String> {
    let matchers = req
        .matchers
        .iter()
        .map(|m| m.parse::<crate::alert::Matcher>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let starts = req.starts_at.map_or(now_ms, |t| t.timestamp_millis());
    let ends = match (req.duration_seconds, req.ends_at) {
        (Some(d), None) if d > 0.0 && d <= MAX_SILENCE_SECS => {
            #[allow(clippy::cast_possible_truncation, reason = "at most a year in ms")]
            let ms = (d * 1000.0).round() as i64;
            starts.saturating_add(ms)
        }
        (Some(d), None) => {
            return Err(format!(
                "invalid duration_seconds {d}: expected more than 0 and at most {MAX_SILENCE_SECS}"
            ));
        }
        (None, Some(end)) => end.timestamp_millis(),
        _ => return Err("give exactly one of duration_seconds and ends_at".to_owned()),
    };
    Ok(crate::alert::Silence::new(matchers, starts, ends)
        .map_err(|e| e.to_string())?
        .created_by(req.created_by)
        .comment(req.comment))
}

async fn create_silence(
    State(monitor): State<Monitor>,
    body: Result<axum::Json<SilenceRequest>, JsonRejection>,
) -> Response {
    let axum::Json(req) = match body {
        Ok(body) => body,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("invalid body: {}", e.body_text()));
        }
    };
    let created = blocking(move || {
        parse_silence(req, monitor.clock_now_ms())
            .and_then(|silence| monitor.add_silence(silence).map_err(|e| e.to_string()))
    });
    match created.await {
        Ok(Ok(id)) => (StatusCode::CREATED, axum::Json(json!({ "id": id.0 }))).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(response) => response,
    }
}

async fn expire_silence(State(monitor): State<Monitor>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, format!("invalid silence id {id:?}"));
    };
    match blocking(move || monitor.expire_silence(crate::alert::SilenceId(id))).await {
        Ok(true) => axum::Json(json!({ "expired": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no running or pending silence {id}")),
        Err(response) => response,
    }
}

/// Query of `/api/series`.
#[derive(Debug, Deserialize)]
pub(super) struct SeriesQuery {
    name: Option<String>,
    labels: Option<String>,
    window: Option<String>,
}

/// Answer of `/api/series`.
#[derive(Debug, Serialize)]
struct SeriesAnswer {
    /// `name{labels}`.
    series: String,
    name: String,
    labels: Labels,
    kind: MetricKind,
    window_seconds: f64,
    samples: Vec<SamplePoint>,
}

#[derive(Debug, Serialize)]
struct SamplePoint {
    timestamp: chrono::DateTime<chrono::Utc>,
    timestamp_ms: i64,
    value: f64,
    /// The anomaly score, where the series has a detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// The expected band, once the detector has learnt one.
    #[serde(skip_serializing_if = "Option::is_none")]
    lower: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper: Option<f64>,
}

impl From<Sample> for SamplePoint {
    fn from(s: Sample) -> Self {
        SamplePoint {
            timestamp: s.timestamp(),
            timestamp_ms: s.timestamp_ms,
            value: s.value,
            score: s.anomaly_score,
            lower: s.expected_band.map(|b| b.0),
            upper: s.expected_band.map(|b| b.1),
        }
    }
}

/// Parses `k:v,k2:v2` (a value may contain `:` but not `,`).
fn parse_labels(text: &str) -> Result<Vec<(&str, &str)>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            pair.split_once(':')
                .ok_or_else(|| format!("invalid labels: expected name:value, got {pair:?}"))
        })
        .collect()
}

fn parse_window(text: Option<&str>) -> Result<f64, String> {
    let Some(text) = text else { return Ok(DEFAULT_WINDOW_SECS) };
    match text.trim().parse::<f64>() {
        Ok(w) if w > 0.0 && w <= MAX_WINDOW_SECS => Ok(w),
        _ => Err(format!(
            "invalid window {text:?}: expected a number of seconds above 0 and at most {MAX_WINDOW_SECS}"
        )),
    }
}

async fn series(
    State(monitor): State<Monitor>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid query string: {e}")),
    };
    respond_blocking(move || series_answer(&monitor, &query)).await
}

/// The answer of `/api/series`; on the blocking pool, as copying a long
/// window takes a while.
fn series_answer(monitor: &Monitor, query: &SeriesQuery) -> Response {
    let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing query parameter name");
    };
    let labels = match parse_labels(query.labels.as_deref().unwrap_or_default()) {
        Ok(labels) => labels,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let key = match SeriesKey::new(name, &labels) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let window = match parse_window(query.window.as_deref()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // one index lookup, not a listing of every series
    let registry = monitor.registry();
    let kind = registry
        .lookup(name, &labels)
        .and_then(|id| registry.with_entries(|entries| entries.get(id.index()).map(|e| e.kind)));
    let Some(kind) = kind else {
        return error(StatusCode::NOT_FOUND, format!("no series {key}"));
    };
    let samples = monitor.history_with(name, &labels, Duration::from_secs_f64(window));
    axum::Json(SeriesAnswer {
        series: key.to_string(),
        name: key.name().to_owned(),
        labels: key.labels().clone(),
        kind,
        window_seconds: window,
        samples: samples.into_iter().map(SamplePoint::from).collect(),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_windows() {
        assert_eq!(parse_labels("").unwrap(), vec![]);
        assert_eq!(
            parse_labels("room:general,url:http://x").unwrap(),
            vec![("room", "general"), ("url", "http://x")]
        );
        assert!(parse_labels("room").unwrap_err().contains("\"room\""));
        assert_eq!(parse_window(None).unwrap(), DEFAULT_WINDOW_SECS);
        assert_eq!(parse_window(Some("1.5")).unwrap(), 1.5);
        for bad in ["0", "-1", "NaN", "inf", "abc", "1e12"] {
            assert!(parse_window(Some(bad)).is_err(), "{bad}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
