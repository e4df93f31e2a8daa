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
    pub(super) mount: Mount,
}

/// Where the routes are mounted, and which the application serves itself.
#[derive(Debug, Clone)]
pub(super) struct Mount {
    /// `""`, or a validated path prefix without a trailing `/` (`/monitor`).
    pub(super) prefix: String,
    /// Route paths (without the prefix) left out.
    pub(super) without: Vec<String>,
    /// Whether unmatched paths get watchpost's JSON `404`.
    pub(super) fallback: bool,
}

impl Default for Mount {
    fn default() -> Self {
        Mount { prefix: String::new(), without: Vec::new(), fallback: true }
    }
}

/// Every route path, as [`Mount::without`] names them.
pub(super) const ROUTES: [&str; 16] = [
    "/",
    "/assets/{file}",
    "/health",
    "/metrics",
    "/health/detailed",
    "/api/dashboard",
    "/api/alerts",
    "/api/alerts/ack",
    "/api/silences",
    "/api/silences/{id}",
    "/api/series",
    "/api/series/list",
    "/api/rules",
    "/api/rules/{name}",
    "/api/config",
    "/api/slow",
];

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
    let Access { token, body_limit, hosts, scrape_cache, mount } = access;
    let Mount { prefix, without, fallback } = mount;
    let wanted = |path: &str| !without.iter().any(|w| w == path);
    let at = |path: &str| format!("{prefix}{path}");
    let api = Api { monitor, scrape: scrape_cache };
    // Closed by default: without a token nobody may change state.
    let (ack, create, expire, clear_slow) = if token.is_some() {
        (post(acknowledge), post(create_silence), delete(expire_silence), delete(clear_slow))
    } else {
        (
            post(writes_disabled),
            post(writes_disabled),
            delete(writes_disabled),
            delete(writes_disabled),
        )
    };
    let (rules, rule) = super::rules::routes(token.is_some());
    let mut protected = Router::new();
    for (path, handler) in [
        ("/metrics", get(metrics)),
        ("/health/detailed", get(health_detailed)),
        ("/api/dashboard", get(dashboard)),
        ("/api/alerts", get(alerts)),
        ("/api/alerts/ack", ack),
        ("/api/silences", get(silences).merge(create)),
        ("/api/silences/{id}", expire),
        ("/api/series", get(series)),
        ("/api/series/list", get(series_list)),
        ("/api/rules", rules),
        ("/api/rules/{name}", rule),
        ("/api/config", get(super::rules::config)),
        ("/api/slow", get(slow).merge(clear_slow)),
    ] {
        if wanted(path) {
            protected = protected.route(&at(path), handler);
        }
    }
    let protected = protected.with_state(api);
    let protected = match token {
        Some(token) => protected.layer(middleware::from_fn_with_state(token, require_token)),
        None => protected,
    };
    let mut open = Router::new();
    if wanted("/") {
        open = if prefix.is_empty() {
            open.route("/", get(page))
        } else {
            open.route(&prefix, get(page)).route(&at("/"), get(page))
        };
    }
    if wanted("/assets/{file}") {
        open = open.route(&at("/assets/{file}"), get(super::assets::asset));
    }
    if wanted("/health") {
        open = open.route(&at("/health"), get(liveness));
    }
    let routes = open.merge(protected);
    let routes = if fallback { routes.fallback(not_found) } else { routes };
    routes
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
pub(super) async fn writes_disabled(method: Method, uri: Uri) -> Response {
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
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
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

/// The page, with a `<base>` when its URL does not end in `/` (`/monitor`,
/// mounted or nested under a prefix), so that its relative requests
/// (`api/dashboard`, `assets/…`) go under the prefix rather than to `/api/…`.
async fn page(request: Request) -> Response {
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path(), |o| o.0.path());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                 img-src data:; connect-src 'self'; base-uri 'self'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page_html(path),
    )
        .into_response()
}

/// [`DASHBOARD_HTML`](super::DASHBOARD_HTML) for the page at `path`. The
/// `<base>` is relative (`./monitor/`), so it also holds behind a proxy that
/// mounts the server under another prefix.
fn page_html(path: &str) -> std::borrow::Cow<'static, str> {
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.is_empty() {
        return std::borrow::Cow::Borrowed(super::DASHBOARD_HTML);
    }
    let mut escaped = String::with_capacity(last.len());
    for c in last.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    let base = format!("<head>\n<base href=\"./{escaped}/\">");
    std::borrow::Cow::Owned(super::DASHBOARD_HTML.replacen("<head>", &base, 1))
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
pub(super) async fn blocking<T: Send + 'static>(
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

/// The slow-operation log: statistics and every entry.
async fn slow(State(monitor): State<Monitor>) -> Response {
    axum::Json(monitor.slow_operations().section(usize::MAX)).into_response()
}

/// Empties the slow-operation log.
async fn clear_slow(State(monitor): State<Monitor>) -> Response {
    axum::Json(json!({ "cleared": monitor.clear_slow_operations() })).into_response()
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

/// Most points one series of `/api/series` carries: raw samples beyond it
/// are cut to the newest, and a `step` may not ask for more buckets.
const MAX_POINTS: usize = 1_000;
/// Most series one `/api/series?match=subset` answer carries.
const MAX_SELECTED_SERIES: usize = 100;
/// Most series one listing (`/api/series` without `name`, `/api/series/list`) carries.
const MAX_LISTED_SERIES: usize = 10_000;
/// Finest `step` accepted, in seconds (history is kept in milliseconds).
const MIN_STEP_SECS: f64 = 0.001;

/// Query of `/api/series` and `/api/series/list`.
#[derive(Debug, Deserialize)]
pub(super) struct SeriesQuery {
    name: Option<String>,
    labels: Option<String>,
    window: Option<String>,
    step: Option<String>,
    #[serde(rename = "match")]
    matching: Option<String>,
}

/// How `labels` selects series of `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The series whose label set is exactly `labels`: one object.
    Exact,
    /// Every series whose labels include `labels`: an array.
    Subset,
}

fn parse_match(text: Option<&str>) -> Result<Match, String> {
    match text {
        None | Some("exact") => Ok(Match::Exact),
        Some("subset") => Ok(Match::Subset),
        Some(other) => Err(format!("invalid match {other:?}: expected exact or subset")),
    }
}

/// One entry of a series listing.
#[derive(Debug, Serialize)]
struct SeriesListing {
    /// `name{labels}`.
    series: String,
    name: String,
    labels: Labels,
    kind: MetricKind,
}

/// Answer of `/api/series` for one series.
#[derive(Debug, Serialize)]
struct SeriesAnswer {
    /// `name{labels}`.
    series: String,
    name: String,
    labels: Labels,
    kind: MetricKind,
    window_seconds: f64,
    /// The bucket width, when the samples were downsampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    step_seconds: Option<f64>,
    /// Present (`true`) when the window held more than [`MAX_POINTS`] raw
    /// samples and only the newest are returned.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    samples: Vec<SamplePoint>,
}

#[derive(Debug, Serialize)]
struct SamplePoint {
    timestamp: chrono::DateTime<chrono::Utc>,
    timestamp_ms: i64,
    /// The sample's value; for a bucket, the mean of its samples.
    value: f64,
    /// The anomaly score, where the series has a detector; for a bucket, the highest.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// The expected band, once the detector has learnt one (raw samples only).
    #[serde(skip_serializing_if = "Option::is_none")]
    lower: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper: Option<f64>,
    /// For a bucket: the smallest sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    /// For a bucket: the largest sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    /// For a bucket: how many samples it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
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
            min: None,
            max: None,
            count: None,
        }
    }
}

/// A step bucket being filled.
struct Bucket {
    index: i64,
    sum: f64,
    min: f64,
    max: f64,
    count: usize,
    score: Option<f64>,
}

impl Bucket {
    fn start(index: i64, s: &Sample) -> Self {
        Bucket { index, sum: s.value, min: s.value, max: s.value, count: 1, score: s.anomaly_score }
    }

    fn add(&mut self, s: &Sample) {
        self.sum += s.value;
        self.min = self.min.min(s.value);
        self.max = self.max.max(s.value);
        self.count += 1;
        self.score = match (self.score, s.anomaly_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn point(self, step_ms: i64) -> SamplePoint {
        let at = self.index.saturating_mul(step_ms);
        #[allow(clippy::cast_precision_loss, reason = "at most MAX_HISTORY_CAPACITY samples")]
        let mean = self.sum / self.count as f64;
        SamplePoint {
            timestamp: crate::clock::ms_to_datetime(at),
            timestamp_ms: at,
            // the mean of finite values can overflow to ±∞; the extremes bound it
            value: if mean.is_finite() { mean } else { mean.clamp(self.min, self.max) },
            score: self.score,
            lower: None,
            upper: None,
            min: Some(self.min),
            max: Some(self.max),
            count: Some(self.count),
        }
    }
}

/// One point per `step_ms` bucket that holds samples. Buckets are aligned
/// to multiples of the step since the Unix epoch (so consecutive polls agree)
/// and stamped with their start; a point carries the mean, min, max and
/// count of its samples and their highest anomaly score. `samples` are
/// oldest first, as history returns them.
fn downsample(samples: &[Sample], step_ms: i64) -> Vec<SamplePoint> {
    let mut points = Vec::new();
    let mut open: Option<Bucket> = None;
    for s in samples {
        let index = s.timestamp_ms.div_euclid(step_ms);
        match &mut open {
            Some(b) if b.index == index => b.add(s),
            _ => {
                if let Some(done) = open.replace(Bucket::start(index, s)) {
                    points.push(done.point(step_ms));
                }
            }
        }
    }
    points.extend(open.map(|b| b.point(step_ms)));
    points
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

/// The step in milliseconds, if one is asked for: at least [`MIN_STEP_SECS`],
/// at most the window, and coarse enough that the window has at most
/// [`MAX_POINTS`] buckets.
fn parse_step(text: Option<&str>, window: f64) -> Result<Option<i64>, String> {
    let Some(text) = text else { return Ok(None) };
    let step = match text.trim().parse::<f64>() {
        Ok(s) if (MIN_STEP_SECS..=window).contains(&s) => s,
        _ => {
            return Err(format!(
                "invalid step {text:?}: expected a number of seconds from {MIN_STEP_SECS} \
                 to the window ({window})"
            ));
        }
    };
    // a window that does not start on a bucket edge touches one bucket more
    let buckets = (window / step).ceil() + 1.0;
    #[allow(clippy::cast_precision_loss, reason = "a small constant")]
    let max = MAX_POINTS as f64;
    if buckets > max {
        return Err(format!(
            "invalid step {text:?}: {buckets} buckets over a window of {window} seconds, \
             more than {MAX_POINTS}; use a step of at least {} seconds",
            (window / (max - 1.0) * 1000.0).ceil() / 1000.0
        ));
    }
    #[allow(clippy::cast_possible_truncation, reason = "at most 30 days in ms")]
    Ok(Some(((step * 1000.0).round() as i64).max(1)))
}

async fn series(
    State(monitor): State<Monitor>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> Response {
    let query = match series_query(query) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    respond_blocking(move || {
        if query.name.as_deref().is_some_and(|n| !n.is_empty()) {
            series_answer(&monitor, &query)
        } else {
            series_listing(&monitor, &query)
        }
    })
    .await
}

async fn series_list(
    State(monitor): State<Monitor>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> Response {
    let query = match series_query(query) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    respond_blocking(move || series_listing(&monitor, &query)).await
}

/// The series query, or what is wrong with its query string.
fn series_query(query: Result<Query<SeriesQuery>, QueryRejection>) -> Result<SeriesQuery, String> {
    query.map(|Query(q)| q).map_err(|e| format!("invalid query string: {e}"))
}

/// `labels` of the query, validated (names, duplicates) for metric `name`.
fn query_labels<'q>(query: &'q SeriesQuery, name: &str) -> Result<Vec<(&'q str, &'q str)>, String> {
    let labels = parse_labels(query.labels.as_deref().unwrap_or_default())?;
    Labels::new(name, &labels).map_err(|e| e.to_string())?;
    Ok(labels)
}

/// Whether `key` has every label of `wanted`.
fn has_labels(key: &SeriesKey, wanted: &[(&str, &str)]) -> bool {
    wanted.iter().all(|(k, v)| key.labels().get(k) == Some(*v))
}

/// Every series (of `name`, if given) whose labels include `labels`, sorted
/// by name and labels: `[{series, name, labels, kind}]`.
fn series_listing(monitor: &Monitor, query: &SeriesQuery) -> Response {
    let name = query.name.as_deref().filter(|n| !n.is_empty());
    for (param, given) in [
        ("window", query.window.is_some()),
        ("step", query.step.is_some()),
        ("match", query.matching.is_some()),
    ] {
        if given {
            return error(
                StatusCode::BAD_REQUEST,
                format!("query parameter {param} needs name: a listing has no samples"),
            );
        }
    }
    if let Some(name) = name
        && let Err(e) = crate::key::validate_metric_name(name)
    {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let labels = match query_labels(query, name.unwrap_or_default()) {
        Ok(labels) => labels,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let listing: Vec<SeriesListing> = monitor
        .registry()
        .infos_with_ids()
        .into_iter()
        .filter(|(_, key, _)| name.is_none_or(|n| key.name() == n) && has_labels(key, &labels))
        .map(|(_, key, kind)| SeriesListing {
            series: key.to_string(),
            name: key.name().to_owned(),
            labels: key.labels().clone(),
            kind,
        })
        .collect();
    if listing.len() > MAX_LISTED_SERIES {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} series match, more than {MAX_LISTED_SERIES}: narrow the listing with name \
                 and labels",
                listing.len()
            ),
        );
    }
    axum::Json(listing).into_response()
}

/// The answer of `/api/series` with a `name`; on the blocking pool, as
/// copying a long window takes a while.
fn series_answer(monitor: &Monitor, query: &SeriesQuery) -> Response {
    match series_selection(monitor, query) {
        Ok(response) => response,
        Err((status, message)) => error(status, message),
    }
}

fn series_selection(
    monitor: &Monitor,
    query: &SeriesQuery,
) -> Result<Response, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let name = query.name.as_deref().unwrap_or_default();
    crate::key::validate_metric_name(name).map_err(|e| bad(e.to_string()))?;
    let labels = query_labels(query, name).map_err(bad)?;
    let window = parse_window(query.window.as_deref()).map_err(bad)?;
    let step_ms = parse_step(query.step.as_deref(), window).map_err(bad)?;
    let answer = |key: &SeriesKey, kind: MetricKind| {
        let pairs: Vec<(&str, &str)> = key.labels().iter().collect();
        let samples = monitor.history_with(name, &pairs, Duration::from_secs_f64(window));
        let (samples, truncated) = if let Some(step) = step_ms {
            (downsample(&samples, step), false)
        } else {
            let cut = samples.len().saturating_sub(MAX_POINTS);
            (samples.into_iter().skip(cut).map(SamplePoint::from).collect(), cut > 0)
        };
        SeriesAnswer {
            series: key.to_string(),
            name: key.name().to_owned(),
            labels: key.labels().clone(),
            kind,
            window_seconds: window,
            #[allow(clippy::cast_precision_loss, reason = "at most 30 days in ms")]
            step_seconds: step_ms.map(|s| s as f64 / 1000.0),
            truncated,
            samples,
        }
    };
    let registry = monitor.registry();
    match parse_match(query.matching.as_deref()).map_err(bad)? {
        Match::Exact => {
            let key = SeriesKey::new(name, &labels).map_err(|e| bad(e.to_string()))?;
            // one index lookup, not a listing of every series
            let kind = registry.lookup(name, &labels).and_then(|id| {
                registry.with_entries(|entries| entries.get(id.index()).map(|e| e.kind))
            });
            match kind {
                Some(kind) => Ok(axum::Json(answer(&key, kind)).into_response()),
                None => Err((StatusCode::NOT_FOUND, not_found_hint(monitor, &key))),
            }
        }
        Match::Subset => {
            let selected: Vec<(Arc<SeriesKey>, MetricKind)> = registry
                .infos_with_ids()
                .into_iter()
                .filter(|(_, key, _)| key.name() == name && has_labels(key, &labels))
                .map(|(_, key, kind)| (key, kind))
                .collect();
            if selected.len() > MAX_SELECTED_SERIES {
                return Err(bad(format!(
                    "labels select {} series of {name}, more than {MAX_SELECTED_SERIES}: \
                     give more labels",
                    selected.len()
                )));
            }
            let answers: Vec<SeriesAnswer> =
                selected.iter().map(|(key, kind)| answer(key, *kind)).collect();
            Ok(axum::Json(answers).into_response())
        }
    }
}

/// `no series <key>`, and how to reach the series of that name that exist.
fn not_found_hint(monitor: &Monitor, key: &SeriesKey) -> String {
    let same_name = monitor.registry().with_entries(|entries| {
        entries
            .iter()
            .filter(|e| {
                e.key.name() == key.name()
                    && !matches!(e.instrument, crate::registry::Instrument::Removed)
            })
            .count()
    });
    if same_name == 0 {
        format!("no series {key}")
    } else {
        format!(
            "no series {key}; {} has {same_name} series with other labels: select them with \
             match=subset, or list them at /api/series/list?name={}",
            key.name(),
            key.name()
        )
    }
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

    fn sample(at_ms: i64, value: f64, score: Option<f64>) -> Sample {
        Sample { timestamp_ms: at_ms, value, anomaly_score: score, expected_band: None }
    }

    #[test]
    fn downsampling_gives_one_point_per_aligned_bucket() {
        let samples = [
            sample(9_500, 1.0, Some(0.1)),
            sample(10_000, 2.0, Some(0.9)),
            sample(12_000, 6.0, Some(0.2)),
            sample(19_999, 4.0, None),
            sample(35_000, -1.0, None),
        ];
        let points = downsample(&samples, 10_000);
        let got: Vec<_> = points
            .iter()
            .map(|p| (p.timestamp_ms, p.value, p.min, p.max, p.count, p.score))
            .collect();
        assert_eq!(
            got,
            [
                (0, 1.0, Some(1.0), Some(1.0), Some(1), Some(0.1)),
                (10_000, 4.0, Some(2.0), Some(6.0), Some(3), Some(0.9)),
                (30_000, -1.0, Some(-1.0), Some(-1.0), Some(1), None),
            ]
        );
        assert!(downsample(&[], 1_000).is_empty());
        // before the epoch, buckets still align downwards
        assert_eq!(downsample(&[sample(-1, 1.0, None)], 1_000)[0].timestamp_ms, -1_000);
        // a mean of huge finite values stays finite
        let huge = downsample(&[sample(0, f64::MAX, None), sample(1, f64::MAX, None)], 1_000);
        assert_eq!(huge[0].value, f64::MAX);
    }

    #[test]
    fn steps_and_match_modes() {
        assert_eq!(parse_step(None, 300.0).unwrap(), None);
        assert_eq!(parse_step(Some("10"), 300.0).unwrap(), Some(10_000));
        assert_eq!(parse_step(Some("0.5"), 300.0).unwrap(), Some(500));
        // 300 s in steps of 0.3 s is 1 001 buckets: one too many
        let err = parse_step(Some("0.3"), 300.0).unwrap_err();
        assert!(err.contains("\"0.3\"") && err.contains("at least 0.301"), "{err}");
        assert_eq!(parse_step(Some("0.301"), 300.0).unwrap(), Some(301));
        for bad in ["0", "-1", "NaN", "inf", "soon", "301", "0.0001"] {
            let err = parse_step(Some(bad), 300.0).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(parse_match(None).unwrap(), Match::Exact);
        assert_eq!(parse_match(Some("subset")).unwrap(), Match::Subset);
        assert!(parse_match(Some("prefix")).unwrap_err().contains("\"prefix\""));
    }
}
