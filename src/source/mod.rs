//! Collectors that run on the engine's worker once per sample interval.

#[cfg(feature = "system")]
mod system;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::registry::Registry;

#[cfg(feature = "system")]
#[cfg_attr(docsrs, doc(cfg(feature = "system")))]
pub use system::SystemSource;

/// A collector the engine calls once per sample interval, before it reads the instruments.
///
/// A source registers its instruments once in [`register`](Source::register)
/// and sets them in [`collect`](Source::collect). It runs on the worker
/// thread: keep `collect` short. A panicking `collect` is caught and counted
/// (`watchpost_source_errors_total`); the source keeps being called.
///
/// # Examples
///
/// ```
/// use watchpost::{Gauge, Registry, Result, Source};
///
/// struct QueueDepth { gauge: Option<Gauge> }
///
/// impl Source for QueueDepth {
///     fn name(&self) -> &str { "queue_depth" }
///     fn register(&mut self, registry: &Registry) -> Result<()> {
///         self.gauge = Some(registry.gauge("queue_depth", &[])?);
///         Ok(())
///     }
///     fn collect(&mut self, _now: chrono::DateTime<chrono::Utc>) {
///         if let Some(g) = &self.gauge { g.set(7.0); }
///     }
/// }
///
/// let engine = watchpost::Engine::builder()
///     .without_system_source()
///     .source(QueueDepth { gauge: None })
///     .build()?;
/// engine.flush()?;
/// assert_eq!(engine.latest("queue_depth").unwrap().value, 7.0);
/// # Ok::<(), watchpost::Error>(())
/// ```
pub trait Source: Send + 'static {
    /// A short name, used in errors.
    fn name(&self) -> &str;

    /// Registers the source's instruments. Called once, when the engine is built.
    ///
    /// # Errors
    ///
    /// Whatever registration fails with; the engine's `build()` returns it.
    fn register(&mut self, registry: &Registry) -> Result<()>;

    /// Reads the outside world into the registered instruments.
    fn collect(&mut self, now: DateTime<Utc>);
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn register(&mut self, registry: &Registry) -> Result<()> {
        (**self).register(registry)
    }
    fn collect(&mut self, now: DateTime<Utc>) {
        (**self).collect(now);
    }
}
