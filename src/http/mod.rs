//! HTTP endpoints (feature `http`), on axum: Prometheus scraping, health,
//! the JSON API and a self-contained HTML dashboard.
//!
//! Two ways in:
//!
//! - [`router`] returns an [`axum::Router`] to merge into an application
//!   that already runs tokio (most Rust chat servers do);
//! - [`HttpServer::builder`] starts a standalone server with its own small
//!   runtime on a thread named `watchpost-http`, behind an
//!   [`HttpServerGuard`] that shuts it down gracefully and joins the thread
//!   when dropped. It listens on `127.0.0.1` (an ephemeral port) unless given
//!   another address.
//!
//! # Routes
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | the registry as Prometheus text 0.0.4, or OpenMetrics 1.0 when the `Accept` header asks for it |
//! | `GET /health` | liveness: `200 {"status":"ok"}` as long as the server answers; runs no checks |
//! | `GET /health/detailed` | runs the [health checks](crate::health): a [`HealthReport`](crate::health::HealthReport), `503` when unhealthy |
//! | `GET /api/dashboard` | the [dashboard snapshot](crate::dashboard::Dashboard) JSON |
//! | `GET /api/alerts` | `{"active": [...], "recent": [...]}`: the dashboard's `active_alerts` and `recent_alert_events` |
//! | `POST /api/alerts/ack` | `{"id": "rule/series"}`: acknowledge an active alert |
//! | `GET /api/silences`, `POST /api/silences`, `DELETE /api/silences/{id}` | list, create (`{"matchers": [...], "duration_seconds": n}`) and expire silences |
//! | `GET /api/series?name=…&labels=k:v,…&window=SECONDS&step=SECONDS` | the history of the series whose label set is exactly `labels` over the last `window` seconds (default 300), downsampled to one point per `step` (mean, min, max, count) if given; `400` on bad input, `404` for an unknown series |
//! | `GET /api/series?name=…&labels=k:v&match=subset` | an array: every series of `name` whose labels include `labels` |
//! | `GET /api/series/list?name=…&labels=k:v` (or `/api/series` without `name`) | the series that exist: `[{series, name, labels, kind}]` |
//! | `GET /` | the HTML dashboard: no CDN, no request beyond this server; polls `/api/dashboard` every 2 s |
//!
//! Errors are JSON: `{"error": "…"}`. Every response carries
//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`; no CORS
//! headers are sent, so browsers keep other origins out.
//!
//! # Access
//!
//! Closed by default:
//!
//! - **Writes need a token.** Without a [bearer token](HttpServerBuilder::bearer_token)
//!   the routes that change state (`POST /api/alerts/ack`, `POST /api/silences`,
//!   `DELETE /api/silences/{id}`) answer `403`; the reading routes are open.
//!   [`random_token`] makes a token to show once at start.
//! - **With a token**, every route except `GET /health` and `GET /` answers
//!   `401` unless the request carries `Authorization: Bearer <token>`.
//!   `/health` stays open for liveness probes and `/` is a static page without
//!   data; the page reads the token from the URL fragment
//!   (`http://host:port/#token=…`, which browsers never send to the server)
//!   and sends it with its API calls.
//! - **Host names are checked.** A request whose `Host` is not `localhost`, a
//!   loopback address, the bound address or a name given to
//!   [`HttpServerBuilder::allow_host`] gets `421 Misdirected Request`, so a
//!   page elsewhere cannot reach the server through DNS rebinding.
//! - **Slow clients are cut off.** The standalone server closes a connection
//!   that has not sent its request headers within
//!   [`HttpServerBuilder::header_read_timeout`] (5 s), and serves at most
//!   [`HttpServerBuilder::max_connections`] (128) at once; more wait in the
//!   listen backlog. Request bodies are limited
//!   ([`HttpServerBuilder::body_limit`], `413` beyond it).
//! - **Heavy routes run off the async worker** (on tokio's blocking pool), so
//!   `/health` answers while a snapshot or a scrape renders, and scrapes that
//!   arrive together share one rendering
//!   ([`HttpServerBuilder::scrape_cache_ttl`], 500 ms).
//!
//! # Examples
//!
//! Standalone:
//!
//! ```no_run
//! use watchpost::http::HttpServer;
//! let engine = watchpost::Engine::builder().build()?;
//! let token = watchpost::http::random_token()?;
//! let server = HttpServer::builder().bearer_token(token.clone()).start(engine.monitor())?;
//! println!("dashboard at {}#token={token}", server.url());
//! // ... run the application ...
//! drop(server); // stops the server and joins its thread
//! # Ok::<(), watchpost::Error>(())
//! ```
//!
//! Under a prefix in an application that has its own `/health`, with the
//! [`HttpMetricsLayer`] recording the application's requests (see
//! [the integrations guide](crate::guide::integrations#http-middleware-and-embedding)):
//!
//! ```
//! use watchpost::http::{HttpMetricsLayer, HttpServer};
//! let engine = watchpost::Engine::builder().without_system_source().build()?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .merge(HttpServer::builder().prefix("/monitor").without_routes(["/health"]).router(engine.monitor())?)
//!     .layer(HttpMetricsLayer::new(engine.monitor()));
//! # let _ = app;
//! # Ok::<(), watchpost::Error>(())
//! ```
//!
//! Merged into an application's own axum router:
//!
//! ```
//! let engine = watchpost::Engine::builder().without_system_source().build()?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hello" }))
//!     .merge(watchpost::http::router(engine.monitor()));
//! # let _ = app;
//! # Ok::<(), watchpost::Error>(())
//! ```

mod assets;
mod host;
mod middleware;
mod routes;
mod rules;
mod scrape;
mod server;

pub use middleware::{
    HttpMetrics, HttpMetricsLayer, REQUEST_DURATION_SECONDS, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL,
    RESPONSE_SIZE_BYTES, UNMATCHED_ROUTE,
};
pub use server::{
    DEFAULT_BODY_LIMIT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_HEALTH_CHECK_INTERVAL,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SCRAPE_CACHE_TTL, DEFAULT_SHUTDOWN_TIMEOUT, HttpServer,
    HttpServerBuilder, HttpServerGuard,
};

use crate::engine::Monitor;
use crate::error::{Error, Result};

/// Every route with the defaults, for merging into an application's own axum
/// router: no bearer token (reading routes open, mutating routes `403`),
/// requests addressed to `localhost` or a loopback address only, the default
/// body limit and scrape cache. [`HttpServerBuilder::router`] makes one with
/// a token, other host names and other limits.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let app = watchpost::http::router(engine.monitor());
/// # let _ = app;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn router(monitor: Monitor) -> axum::Router {
    let access = routes::Access {
        token: None,
        body_limit: DEFAULT_BODY_LIMIT,
        hosts: host::AllowedHosts::loopback(),
        scrape_cache: std::sync::Arc::new(scrape::ScrapeCache::new(DEFAULT_SCRAPE_CACHE_TTL)),
        mount: routes::Mount::default(),
    };
    routes::build(monitor, access)
}

/// A fresh bearer token from the operating system's random source: 32 bytes
/// as 64 hexadecimal digits. For a server started without a configured
/// token; show it once (a URL `http://host:port/#token=…` opens the dashboard
/// with it) and keep it out of logs.
///
/// # Errors
///
/// [`Error::InvalidConfig`] (field `bearer_token`) if the operating system
/// has no random bytes to give.
///
/// # Examples
///
/// ```
/// let token = watchpost::http::random_token()?;
/// assert_eq!(token.len(), 64);
/// assert_ne!(token, watchpost::http::random_token()?);
/// let builder = watchpost::http::HttpServer::builder().bearer_token(token);
/// # let _ = builder;
/// # Ok::<(), watchpost::Error>(())
/// ```
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::InvalidConfig {
        field: "bearer_token",
        reason: format!("cannot draw a random token: {e}"),
    })?;
    Ok(bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// The HTML dashboard served at `GET /`: one self-contained page.
///
/// # Examples
///
/// ```
/// assert!(watchpost::http::DASHBOARD_HTML.starts_with("<!DOCTYPE html>"));
/// ```
pub const DASHBOARD_HTML: &str = include_str!("../../assets/dashboard.html");
