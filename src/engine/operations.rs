//! The operations log through the [`Monitor`]: slow operations and recent
//! ERROR/WARN events (filled by the `tracing` layer).

use super::Monitor;
use crate::apm::{
    DASHBOARD_SLOW_ENTRIES, LogEvent, LogEventEntry, OperationsLog, SlowOperations,
    SlowOperationsSection,
};

impl Monitor {
    /// The engine's slow-operation log (a shared handle): the spans a
    /// `TracingLayer` (feature `tracing`) built from this engine found slower
    /// than their threshold, with [`stats`](SlowOperations::stats) and
    /// [`clear`](SlowOperations::clear). Empty while no layer feeds it. The
    /// dashboard shows it as `slow_operations`, the HTTP API as `/api/slow`.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// let slow = engine.slow_operations();
    /// assert!(slow.is_empty());
    /// assert_eq!(slow.stats().count, 0);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn slow_operations(&self) -> SlowOperations {
        self.shared.operations.slow.clone()
    }

    /// Empties the slow-operation log (and resets its `recorded` and
    /// `evicted` counts), like `DELETE /api/slow`; returns how many
    /// operations it removed.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = watchpost::Engine::builder().without_system_source().build()?;
    /// assert_eq!(engine.clear_slow_operations(), 0);
    /// assert!(engine.slow_operations().is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn clear_slow_operations(&self) -> usize {
        self.shared.operations.slow.clear()
    }

    /// The most recent ERROR and WARN events a `TracingLayer` (feature
    /// `tracing`) built from this engine saw, oldest first (bounded; empty
    /// while no layer feeds the engine). The dashboard shows them as
    /// `recent_log_events`.
    ///
    /// # Examples
    ///
    /// See [`LogEvent`].
    pub fn recent_log_events(&self) -> Vec<LogEvent> {
        self.shared.operations.events.list()
    }

    /// The dashboard's `slow_operations` and `recent_log_events`.
    pub(super) fn operations_sections(&self) -> (SlowOperationsSection, Vec<LogEventEntry>) {
        let log = &self.shared.operations;
        (
            log.slow.section(DASHBOARD_SLOW_ENTRIES),
            log.events.list().iter().map(LogEventEntry::from).collect(),
        )
    }

    /// The operations log itself, for the layer that fills it.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn operations_log(&self) -> &OperationsLog {
        &self.shared.operations
    }
}
