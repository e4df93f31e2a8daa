//! A tower middleware that records every request an HTTP service answers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response, header};
use parking_lot::RwLock;

use crate::clock::Clock;
use crate::engine::Monitor;
use crate::error::Result;
use crate::metric::{Counter, DEFAULT_BUCKETS, Gauge, Histogram};

/// Requests answered: `http_server_requests_total{method, route, status_class}`.
pub const REQUESTS_TOTAL: &str = "http_server_requests_total";
/// Time to the response's headers, in seconds:
/// `http_server_request_duration_seconds{method, route, status_class}`.
pub const REQUEST_DURATION_SECONDS: &str = "http_server_request_duration_seconds";
/// Requests being served: `http_server_requests_in_flight{method, route}`.
pub const REQUESTS_IN_FLIGHT: &str = "http_server_requests_in_flight";
/// Response body sizes, when known: `http_server_response_size_bytes{method, route, status_class}`.
pub const RESPONSE_SIZE_BYTES: &str = "http_server_response_size_bytes";
/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds of the response size histogram, in bytes: 64 B to 4 MiB.
const SIZE_BUCKETS: [f64; 9] =
    [64.0, 256.0, 1024.0, 4096.0, 16_384.0, 65_536.0, 262_144.0, 1_048_576.0, 4_194_304.0];

/// The `method` label: the standard methods by name, any other as `OTHER`,
/// so a client cannot add series by inventing methods.
const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"];

/// The `status_class` label; `error` when the service failed instead of answering.
const CLASSES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "error"];
const ERROR_CLASS: usize = 6;

fn method_index(method: &Method) -> usize {
    METHODS.iter().position(|m| *m == method.as_str()).unwrap_or(METHODS.len() - 1)
}

fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// The series of one finished (method, route, status class).
#[derive(Clone)]
struct Done {
    requests: Counter,
    duration: Histogram,
    size: Histogram,
}

/// The series of one route template, each registered on its first use, or
/// refused once (the series cap) and not retried: `None`.
struct RouteSeries {
    route: Box<str>,
    /// Per method.
    in_flight: Vec<OnceLock<Option<Gauge>>>,
    /// Per method × status class.
    done: Vec<OnceLock<Option<Done>>>,
}

impl RouteSeries {
    fn new(route: &str) -> Self {
        RouteSeries {
            route: route.into(),
            in_flight: (0..METHODS.len()).map(|_| OnceLock::new()).collect(),
            done: (0..METHODS.len() * CLASSES.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    fn in_flight(&self, monitor: &Monitor, method: usize) -> Option<&Gauge> {
        self.in_flight[method]
            .get_or_init(|| {
                let labels = [("method", METHODS[method]), ("route", &*self.route)];
                monitor.gauge_with(REQUESTS_IN_FLIGHT, &labels).ok()
            })
            .as_ref()
    }

    fn done(&self, monitor: &Monitor, method: usize, class: usize) -> Option<&Done> {
        self.done[method * CLASSES.len() + class]
            .get_or_init(|| {
                let labels = [
                    ("method", METHODS[method]),
                    ("route", &*self.route),
                    ("status_class", CLASSES[class]),
                ];
                let done = || -> Result<Done> {
                    Ok(Done {
                        requests: monitor.counter_with(REQUESTS_TOTAL, &labels)?,
                        duration: monitor.histogram_with(
                            REQUEST_DURATION_SECONDS,
                            &labels,
                            &DEFAULT_BUCKETS,
                        )?,
                        size: monitor.histogram_with(
                            RESPONSE_SIZE_BYTES,
                            &labels,
                            &SIZE_BUCKETS,
                        )?,
                    })
                };
                done().ok()
            })
            .as_ref()
    }
}

struct Shared {
    monitor: Monitor,
    clock: Arc<dyn Clock>,
    /// Route template → its series. Bounded by the application's routes
    /// plus [`UNMATCHED_ROUTE`].
    routes: RwLock<HashMap<Box<str>, Arc<RouteSeries>, foldhash::fast::RandomState>>,
}

impl Shared {
    /// The series of `route`: one read lock and one lookup per request, the
    /// insertion once per route.
    fn route(&self, route: &str) -> Arc<RouteSeries> {
        if let Some(series) = self.routes.read().get(route) {
            return Arc::clone(series);
        }
        let mut routes = self.routes.write();
        Arc::clone(routes.entry(route.into()).or_insert_with(|| Arc::new(RouteSeries::new(route))))
    }
}

/// A tower `Layer` that records, for every request, by
/// method, route template and status class:
///
/// | series | kind | labels |
/// |---|---|---|
/// | `http_server_requests_total` | counter | `method`, `route`, `status_class` |
/// | `http_server_request_duration_seconds` | histogram (Prometheus' default buckets) | `method`, `route`, `status_class` |
/// | `http_server_requests_in_flight` | gauge | `method`, `route` |
/// | `http_server_response_size_bytes` | histogram (64 B to 4 MiB) | `method`, `route`, `status_class` |
///
/// - `route` is the template the request matched (axum's [`MatchedPath`]:
///   `/rooms/{id}`, never `/rooms/42`), so the number of series stays bounded
///   by the application's routes; a request no route matched is counted as
///   `route="unmatched"`. Add the layer with [`axum::Router::layer`], which
///   runs it after routing; outside an axum router every request is
///   `unmatched`.
/// - `method` is one of the standard methods, or `OTHER`; `status_class` is
///   `1xx` … `5xx`, or `error` when the service failed instead of answering
///   (axum's services never do).
/// - The duration runs, on the engine's [`Clock`] (its monotonic reading),
///   from the call to the response's headers; the time a streamed body takes
///   is not included.
/// - The response size is the `Content-Length`, or the body's exact size
///   hint; a body of unknown length (streamed) is not observed.
/// - A request whose future is dropped (the client went away) leaves the
///   in-flight gauge and is not counted as answered.
///
/// The handles are registered on a series' first request and cached per
/// route template, so the path of a request takes one read lock and one
/// lookup, and updates atomics. A series refused
/// by the engine's cardinality caps is not recorded (the registry counts the
/// refusal).
///
/// # Examples
///
/// ```
/// use axum::routing::get;
/// use watchpost::http::HttpMetricsLayer;
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let app: axum::Router = axum::Router::new()
///     .route("/rooms/{id}", get(|| async { "room" }))
///     .layer(HttpMetricsLayer::new(engine.monitor()));
/// # let _ = app;
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpMetricsLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetricsLayer")
            .field("routes", &self.shared.routes.read().len())
            .finish_non_exhaustive()
    }
}

impl HttpMetricsLayer {
    /// A layer recording into `monitor`'s engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let layer = watchpost::http::HttpMetricsLayer::new(engine.monitor());
    /// # let _ = layer;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn new(monitor: Monitor) -> Self {
        let clock = Arc::clone(monitor.clock());
        HttpMetricsLayer {
            shared: Arc::new(Shared { monitor, clock, routes: RwLock::new(HashMap::default()) }),
        }
    }
}

impl<S> tower_layer::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> HttpMetrics<S> {
        HttpMetrics { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service [`HttpMetricsLayer`] wraps around another.
///
/// # Examples
///
/// ```
/// use tower_layer::Layer as _;
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let service = watchpost::http::HttpMetricsLayer::new(engine.monitor())
///     .layer(axum::Router::new());
/// # let _: watchpost::http::HttpMetrics<axum::Router> = service;
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for HttpMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetrics").field("inner", &self.inner).finish_non_exhaustive()
    }
}

/// Takes the request out of the in-flight gauge however its future ends.
struct InFlight(Option<Gauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.sub(1.0);
        }
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for HttpMetrics<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = method_index(request.method());
        let series = self.shared.route(
            request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
        );
        let in_flight = series.in_flight(&self.shared.monitor, method).cloned();
        if let Some(g) = &in_flight {
            g.add(1.0);
        }
        let guard = InFlight(in_flight);
        let shared = Arc::clone(&self.shared);
        let started = shared.clock.monotonic_nanos();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let elapsed_ns = shared.clock.monotonic_nanos().saturating_sub(started).max(0);
            drop(guard);
            let (class, size) = match &result {
                Ok(response) => (class_index(response.status().as_u16()), body_size(response)),
                Err(_) => (ERROR_CLASS, None),
            };
            if let Some(done) = series.done(&shared.monitor, method, class) {
                done.requests.inc();
                #[allow(clippy::cast_precision_loss)] // nanoseconds as seconds
                done.duration.observe(elapsed_ns as f64 / 1e9);
                if let Some(bytes) = size {
                    #[allow(clippy::cast_precision_loss)] // sizes far below 2^53
                    done.size.observe(bytes as f64);
                }
            }
            result
        })
    }
}

/// The `Content-Length`, else the body's exact size hint.
fn body_size<B: http_body::Body>(response: &Response<B>) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok())
        .or_else(|| response.body().size_hint().exact())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        assert_eq!(METHODS[method_index(&Method::from_bytes(b"BREW").unwrap())], "OTHER");
        assert_eq!(CLASSES[class_index(204)], "2xx");
        assert_eq!(CLASSES[class_index(404)], "4xx");
        assert_eq!(CLASSES[class_index(503)], "5xx");
        assert_eq!(CLASSES[class_index(101)], "1xx");
        assert_eq!(CLASSES[class_index(999)], "other");
    }
}
