//! The standalone server: its own runtime on a named thread, behind a guard.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::Monitor;
use crate::error::{Error, Result};

/// Default limit of a request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Default interval between runs of the health checks while the server runs: 10 s.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Default time requests in flight get to finish when the server stops: 5 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

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
///     .body_limit(16 * 1024)
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
    body_limit: usize,
    health_check_interval: Option<Duration>,
    shutdown_timeout: Duration,
}

impl Default for HttpServerBuilder {
    fn default() -> Self {
        HttpServerBuilder {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            bearer_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            health_check_interval: Some(DEFAULT_HEALTH_CHECK_INTERVAL),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl fmt::Debug for HttpServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerBuilder")
            .field("addr", &self.addr)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("body_limit", &self.body_limit)
            .field("health_check_interval", &self.health_check_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
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
    /// `GET /health` and `GET /` (see [the module docs](crate::http#access)).
    ///
    /// Defaults to no token.
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

    /// The routes with this builder's token and body limit, for merging into
    /// an application's own axum router.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let routes = watchpost::http::HttpServer::builder().bearer_token("t").router(engine.monitor());
    /// let app = axum::Router::new().nest("/monitoring", routes);
    /// # let _ = app;
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn router(&self, monitor: Monitor) -> axum::Router {
        super::routes::build(monitor, self.bearer_token.clone(), self.body_limit)
    }

    /// Binds the address and starts serving on a new thread named
    /// `watchpost-http` with its own single-threaded tokio runtime.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidConfig`] (field `addr`) if the address cannot be bound.
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
        let app = self.router(monitor.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let interval = self.health_check_interval.filter(|d| !d.is_zero());
        let grace = self.shutdown_timeout;
        let thread = thread::Builder::new()
            .name("watchpost-http".into())
            .spawn(move || {
                runtime.block_on(serve(listener, app, monitor, interval, grace, stop_rx));
                runtime.shutdown_timeout(grace);
            })
            .map_err(Error::Spawn)?;
        Ok(HttpServerGuard { local_addr, stop: stop_tx, thread: Some(thread) })
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    monitor: Monitor,
    health_interval: Option<Duration>,
    grace: Duration,
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
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped(stop.clone()));
    let deadline = async {
        stopped(stop).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        _ = server => {}
        () = deadline => {} // requests still in flight after the grace period are dropped
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
