//! The standalone server: its own runtime on a named thread, behind a guard.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

use super::host::AllowedHosts;
use super::routes::{self, Access, Mount};
use super::scrape::ScrapeCache;
use crate::engine::Monitor;
use crate::error::{Error, Result};

/// Default limit of a request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Default interval between runs of the health checks while the server runs: 10 s.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Default time requests in flight get to finish when the server stops: 5 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a client has to send a request's headers, counted from the
/// connection's start or the end of its previous response: 5 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of connections the standalone server serves at once: 128.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Default time a rendering of `/metrics` is reused for later scrapes: 500 ms.
pub const DEFAULT_SCRAPE_CACHE_TTL: Duration = Duration::from_millis(500);
/// Largest accepted [`HttpServerBuilder::max_connections`]: 65 536.
const MAX_CONNECTIONS_LIMIT: usize = 1 << 16;

/// The standalone HTTP server; see [`HttpServer::builder`].
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let server = watchpost::http::HttpServer::builder().start(engine.monitor())?;
/// assert!(server.local_addr().ip().is_loopback());
/// server.shutdown()?;
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug)]
pub struct HttpServer {
    _private: (),
}

impl HttpServer {
    /// A builder with every setting at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = watchpost::http::HttpServer::builder();
    /// # let _ = builder;
    /// ```
    pub fn builder() -> HttpServerBuilder {
        HttpServerBuilder::default()
    }
}

/// Configures the routes and, with [`start`](HttpServerBuilder::start), a
/// standalone server. Every setter names its default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::http::HttpServer;
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let server = HttpServer::builder()
///     .addr("127.0.0.1:0".parse().unwrap())
///     .bearer_token("s3cret")
///     .allow_host("metrics.example.com")
///     .body_limit(16 * 1024)
///     .header_read_timeout(Duration::from_secs(2))
///     .max_connections(32)
///     .scrape_cache_ttl(Duration::from_millis(250))
///     .health_check_interval(Some(Duration::from_secs(30)))
///     .start(engine.monitor())?;
/// assert_ne!(server.local_addr().port(), 0);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct HttpServerBuilder {
    addr: SocketAddr,
    bearer_token: Option<Arc<str>>,
    allowed_hosts: Vec<String>,
    body_limit: usize,
    header_read_timeout: Duration,
    max_connections: usize,
    scrape_cache_ttl: Duration,
    health_check_interval: Option<Duration>,
    shutdown_timeout: Duration,
    prefix: String,
    without_routes: Vec<String>,
    record_requests: bool,
}

impl Default for HttpServerBuilder {
    fn default() -> Self {
        HttpServerBuilder {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            bearer_token: None,
            allowed_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            scrape_cache_ttl: DEFAULT_SCRAPE_CACHE_TTL,
            health_check_interval: Some(DEFAULT_HEALTH_CHECK_INTERVAL),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            prefix: String::new(),
            without_routes: Vec::new(),
            record_requests: false,
        }
    }
}

impl fmt::Debug for HttpServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerBuilder")
            .field("addr", &self.addr)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("body_limit", &self.body_limit)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("scrape_cache_ttl", &self.scrape_cache_ttl)
            .field("health_check_interval", &self.health_check_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("prefix", &self.prefix)
            .field("without_routes", &self.without_routes)
            .field("record_requests", &self.record_requests)
            .finish()
    }
}

impl HttpServerBuilder {
    /// The address to listen on. Port 0 picks a free port; read it back
    /// with [`HttpServerGuard::local_addr`]. Listening beyond loopback
    /// exposes your metrics to the network: set a bearer token.
    ///
    /// Defaults to `127.0.0.1:0`.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().addr(([127, 0, 0, 1], 9898).into());
    /// # let _ = b;
    /// ```
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Requires `Authorization: Bearer <token>` on every route except
    /// `GET /health` and `GET /` (see [the module docs](crate::http#access)),
    /// and enables the routes that change state (acknowledging alerts,
    /// creating and expiring silences), which answer `403` without a token.
    /// The token is visible ASCII (no spaces); [`random_token`](super::random_token)
    /// makes one.
    ///
    /// Defaults to no token: reading routes open, mutating routes disabled.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().bearer_token("s3cret");
    /// # let _ = b;
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(Arc::from(token.into()));
        self
    }

    /// Another host name (or IP address) the server answers to. Requests
    /// whose `Host` names anything else get `421 Misdirected Request`, which
    /// keeps pages on other sites out even when their name resolves to this
    /// server (DNS rebinding). Give the name clients use when the server is
    /// reached through one (`metrics.example.com`, without a port; ports are
    /// not compared). May be called several times.
    ///
    /// Always allowed: `localhost`, loopback addresses and the address the
    /// server is bound to (every IP address when bound to `0.0.0.0` or `::`,
    /// since an IP address never comes from a DNS answer).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().allow_host("watchpost.internal");
    /// # let _ = b;
    /// ```
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into());
        self
    }

    /// How long a client may take to send a request's headers, from the
    /// moment the connection opens or its previous response was sent; then
    /// the connection is closed. This closes half-sent requests and idle
    /// keep-alive connections, so slow clients cannot hold
    /// [`max_connections`](Self::max_connections) for long.
    ///
    /// Defaults to [`DEFAULT_HEADER_READ_TIMEOUT`] (5 s); must be above zero.
    /// Longer than [`MAX_DURATION`](crate::MAX_DURATION) saturates to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = watchpost::http::HttpServer::builder().header_read_timeout(Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.min(crate::MAX_DURATION);
        self
    }

    /// How many connections the standalone server serves at once. Beyond it,
    /// new connections wait in the listen backlog until one closes.
    ///
    /// Defaults to [`DEFAULT_MAX_CONNECTIONS`] (128); from 1 to 65 536.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().max_connections(16);
    /// # let _ = b;
    /// ```
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// How long a rendering of `/metrics` answers later scrapes, in engine
    /// clock time. Scrapes that arrive while one renders always share it;
    /// [`Duration::ZERO`] keeps only that sharing.
    ///
    /// Defaults to [`DEFAULT_SCRAPE_CACHE_TTL`] (500 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = watchpost::http::HttpServer::builder().scrape_cache_ttl(Duration::ZERO);
    /// # let _ = b;
    /// ```
    pub fn scrape_cache_ttl(mut self, ttl: Duration) -> Self {
        self.scrape_cache_ttl = ttl;
        self
    }

    /// The largest request body accepted, in bytes; larger requests get `413`.
    ///
    /// Defaults to [`DEFAULT_BODY_LIMIT`] (64 KiB).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().body_limit(1024);
    /// # let _ = b;
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How often the standalone server runs the health checks, so that
    /// `health_check_up` and `health_check_latency_seconds` stay current;
    /// `None` runs them only on `GET /health/detailed`.
    ///
    /// Defaults to [`DEFAULT_HEALTH_CHECK_INTERVAL`] (10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().health_check_interval(None);
    /// # let _ = b;
    /// ```
    pub fn health_check_interval(mut self, every: Option<Duration>) -> Self {
        self.health_check_interval = every;
        self
    }

    /// How long requests in flight may take to finish when the server stops.
    ///
    /// Defaults to [`DEFAULT_SHUTDOWN_TIMEOUT`] (5 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = watchpost::http::HttpServer::builder().shutdown_timeout(Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether the server records the requests it answers through
    /// [`HttpMetricsLayer`](super::HttpMetricsLayer) (`http_server_requests_total`
    /// and the other `http_server_*` series, by route template), as an
    /// application's own routes would be. Applies to [`start`](Self::start);
    /// a [`router`](Self::router) gets the layer from the application.
    ///
    /// Defaults to `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().record_requests(true);
    /// # let _ = b;
    /// ```
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record_requests = record;
        self
    }

    /// Mounts every route under `prefix` (`/monitor`: the page at
    /// `/monitor` and `/monitor/`, the API at `/monitor/api/…`), for
    /// embedding in an application that owns the other paths. With a prefix,
    /// [`router`](Self::router) sets no fallback: paths outside the routes
    /// stay the application's (its own fallback included).
    ///
    /// Defaults to none (the routes at `/`). A prefix starts with `/`, has no
    /// trailing `/`, and is made of letters, digits and `-._~/`; others are
    /// an error from [`router`](Self::router) and [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::http::HttpServer::builder().prefix("/monitor");
    /// # let _ = b;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Leaves out routes the application already serves itself, by their
    /// path as the [module docs](crate::http#routes) list them (without the
    /// [`prefix`](Self::prefix)): `"/health"`, `"/metrics"`, `"/"` (the page),
    /// `"/api/series"`, … Merging routes an application already has into its
    /// router panics in axum ("Overlapping method route").
    ///
    /// Defaults to none: every route. An unknown path is an error from
    /// [`router`](Self::router) and [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .merge(watchpost::http::HttpServer::builder().without_routes(["/health"]).router(engine.monitor())?);
    /// # let _ = app;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn without_routes<I>(mut self, paths: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.without_routes.extend(paths.into_iter().map(Into::into));
        self
    }

    /// The routes with this builder's token, host names, body limit,
    /// prefix, left-out routes and scrape cache, for merging into an application's own axum router. The
    /// connection settings ([`header_read_timeout`](Self::header_read_timeout),
    /// [`max_connections`](Self::max_connections)) belong to the application's
    /// server then.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty bearer token or one with
    /// characters other than visible ASCII (field `bearer_token`), or a host
    /// given to [`allow_host`](Self::allow_host) that is not a host name or an
    /// IP address (field `allowed_hosts`), an invalid [`prefix`](Self::prefix)
    /// (field `prefix`) or an unknown path given to
    /// [`without_routes`](Self::without_routes) (field `without_routes`).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let routes = watchpost::http::HttpServer::builder().bearer_token("t").router(engine.monitor())?;
    /// let app = axum::Router::new().nest("/monitoring", routes);
    /// # let _ = app;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn router(&self, monitor: Monitor) -> Result<axum::Router> {
        let hosts = self.hosts()?;
        self.routes(monitor, hosts, self.prefix.is_empty())
    }

    fn mount(&self, fallback: bool) -> Result<Mount> {
        let p = &self.prefix;
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
        if !p.is_empty()
            && (!p.starts_with('/')
                || p.ends_with('/')
                || p.contains("//")
                || !p.chars().all(valid_char))
        {
            return Err(Error::InvalidConfig {
                field: "prefix",
                reason: format!(
                    "{p:?}: expected a path like \"/monitor\": a leading `/`, no trailing `/`, \
                     letters, digits and `-._~/`"
                ),
            });
        }
        if let Some(unknown) =
            self.without_routes.iter().find(|w| !routes::ROUTES.contains(&w.as_str()))
        {
            return Err(Error::InvalidConfig {
                field: "without_routes",
                reason: format!(
                    "{unknown:?} is not a route; the routes are {}",
                    routes::ROUTES.join(", ")
                ),
            });
        }
        Ok(Mount { prefix: p.clone(), without: self.without_routes.clone(), fallback })
    }

    fn hosts(&self) -> Result<AllowedHosts> {
        AllowedHosts::new(&self.allowed_hosts)
            .map_err(|reason| Error::InvalidConfig { field: "allowed_hosts", reason })
    }

    fn routes(
        &self,
        monitor: Monitor,
        hosts: AllowedHosts,
        fallback: bool,
    ) -> Result<axum::Router> {
        if let Some(token) = &self.bearer_token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::InvalidConfig {
                field: "bearer_token",
                reason: format!(
                    "a token of {} bytes: expected at least one byte, all visible ASCII \
                     without spaces",
                    token.len()
                ),
            });
        }
        let access = Access {
            token: self.bearer_token.clone(),
            body_limit: self.body_limit,
            hosts,
            scrape_cache: Arc::new(ScrapeCache::new(self.scrape_cache_ttl)),
            mount: self.mount(fallback)?,
        };
        Ok(routes::build(monitor, access))
    }

    fn check_connection_limits(&self) -> Result<()> {
        if self.header_read_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                field: "header_read_timeout",
                reason: "0 s: expected a duration above zero".to_owned(),
            });
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(Error::InvalidConfig {
                field: "max_connections",
                reason: format!(
                    "{}: expected from 1 to {MAX_CONNECTIONS_LIMIT}",
                    self.max_connections
                ),
            });
        }
        Ok(())
    }

    /// Binds the address and starts serving on a new thread named
    /// `watchpost-http` with its own single-threaded tokio runtime.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidConfig`] if the address cannot be bound (field
    ///   `addr`), or for a setting out of range (`header_read_timeout`,
    ///   `max_connections`, and those [`router`](Self::router) checks).
    /// - [`Error::Spawn`] if the runtime or the thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let server = watchpost::http::HttpServer::builder().start(engine.monitor())?;
    /// let taken = server.local_addr();
    /// assert!(watchpost::http::HttpServer::builder().addr(taken).start(engine.monitor()).is_err());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn start(self, monitor: Monitor) -> Result<HttpServerGuard> {
        self.check_connection_limits()?;
        let hosts = self.hosts()?.with_bind_ip(self.addr.ip());
        let mut app = self.routes(monitor.clone(), hosts, true)?;
        if self.record_requests {
            app = app.layer(super::HttpMetricsLayer::new(monitor.clone()));
        }
        self.serve_app(monitor, app)
    }

    /// [`start`](Self::start) with the routes already built.
    fn serve_app(self, monitor: Monitor, app: axum::Router) -> Result<HttpServerGuard> {
        let bind_error = |e: std::io::Error| Error::InvalidConfig {
            field: "addr",
            reason: format!("cannot listen on {}: {e}", self.addr),
        };
        let listener = std::net::TcpListener::bind(self.addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("watchpost-http-blocking")
            .max_blocking_threads(8)
            .build()
            .map_err(Error::Spawn)?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(Error::Spawn)?
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let interval = self.health_check_interval.filter(|d| !d.is_zero());
        let limits = Limits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections,
            grace: self.shutdown_timeout,
        };
        let thread = thread::Builder::new()
            .name("watchpost-http".into())
            .spawn(move || {
                let grace = limits.grace;
                runtime.block_on(serve(listener, app, monitor, interval, limits, stop_rx));
                runtime.shutdown_timeout(grace);
            })
            .map_err(Error::Spawn)?;
        Ok(HttpServerGuard { local_addr, stop: stop_tx, thread: Some(thread) })
    }
}

/// The standalone server's connection settings.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    max_connections: usize,
    grace: Duration,
}

/// Accepts while a connection slot is free; serves each connection with
/// hyper's HTTP/1 server (with the header read timeout) on its own task; on
/// stop, closes the listener and lets the connections finish, up to `grace`.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    monitor: Monitor,
    health_interval: Option<Duration>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    if let Some(every) = health_interval {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let m = monitor.clone();
                let _ = tokio::task::spawn_blocking(move || m.health()).await;
            }
        });
    }
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut stop = stop;
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        // A slot first: beyond the limit, connections wait in the backlog.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = &mut stopped => break,
        };
        let Ok(slot) = slot else { break }; // never closed
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let Ok((stream, _peer)) = accepted else {
            // out of file descriptors, say: give closing connections a moment
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await; // a client that went away or timed out
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {} // requests still in flight are dropped
    }
}

/// A running standalone server. Dropping it (or [`shutdown`](Self::shutdown))
/// stops accepting, lets requests in flight finish (up to the shutdown
/// timeout) and joins the server thread.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().without_system_source().build()?;
/// let server = watchpost::http::HttpServer::builder().start(engine.monitor())?;
/// println!("serving on {}", server.url());
/// drop(server); // stopped and joined
/// # Ok::<(), watchpost::Error>(())
/// ```
#[must_use = "the server stops when the guard is dropped"]
pub struct HttpServerGuard {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServerGuard {
    /// The address the server listens on (with the port picked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let server = watchpost::http::HttpServer::builder().start(engine.monitor())?;
    /// assert_eq!(server.local_addr().ip().to_string(), "127.0.0.1");
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The dashboard's URL, `http://<addr>/`.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let server = watchpost::http::HttpServer::builder().start(engine.monitor())?;
    /// assert_eq!(server.url(), format!("http://{}/", server.local_addr()));
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr)
    }

    /// Stops the server and joins its thread.
    ///
    /// # Errors
    ///
    /// [`Error::WorkerPanicked`] if the server thread panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// watchpost::http::HttpServer::builder().start(engine.monitor())?.shutdown()?;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else { return Ok(()) };
        let _ = self.stop.send(true);
        if thread.thread().id() == thread::current().id() {
            return Ok(()); // dropped on the server thread itself: it exits on its own
        }
        thread.join().map_err(|_| Error::WorkerPanicked)
    }
}

impl Drop for HttpServerGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl fmt::Debug for HttpServerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerGuard")
            .field("local_addr", &self.local_addr)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;

    use super::*;
    use crate::export::Format;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("an answer within 10 s");
        raw
    }

    /// A rendering of `/metrics` that cannot finish (its slot is held) waits on
    /// the blocking pool: the single async worker keeps answering `/health`
    /// and the other routes meanwhile.
    #[test]
    fn a_stuck_rendering_does_not_stall_the_server() {
        let engine = crate::Engine::builder().without_system_source().build().unwrap();
        engine.counter("jobs_total").unwrap().add(2);
        let cache = Arc::new(ScrapeCache::new(Duration::ZERO));
        let builder = HttpServer::builder().health_check_interval(None);
        let access = Access {
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            hosts: AllowedHosts::loopback(),
            scrape_cache: Arc::clone(&cache),
            mount: routes::Mount::default(),
        };
        let app = routes::build(engine.monitor(), access);
        let server = builder.serve_app(engine.monitor(), app).unwrap();
        let addr = server.local_addr();

        let held = cache.hold(Format::Prometheus);
        let scrape = thread::spawn(move || get(addr, "/metrics"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.waiting() < 1 {
            assert!(Instant::now() < deadline, "the scrape never reached the cache");
            thread::yield_now();
        }
        assert!(get(addr, "/health").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/api/alerts").starts_with("HTTP/1.1 200"));
        assert!(!scrape.is_finished(), "the scrape waits for the rendering");
        drop(held);
        let scraped = scrape.join().unwrap();
        assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
        assert!(scraped.contains("jobs_total 2\n"), "{scraped}");
    }
}
