//! The engine's state directory: the builder's settings, opening it at
//! build time, and the worker's writes (see `crate::persist` and
//! docs/persistence.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::EngineBuilder;
use super::worker::Worker;
use crate::alert::AlertManager;
use crate::clock::duration_ms;
use crate::error::{Error, Result};
use crate::persist::{Caps, Options, Persister, RestoredHistory};
use crate::registry::Registry;

/// How long after a change of alert state it is written, by default: 1 s
/// of engine clock time (changes in between are written together).
const DEFAULT_WRITE_DELAY: Duration = Duration::from_secs(1);
/// How often the history snapshot is written, by default: every 5 minutes
/// of engine clock time (and at shutdown).
const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_mins(5);

/// The state directory settings of a builder.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    dir: Option<PathBuf>,
    write_delay: Duration,
    snapshot_interval: Duration,
    history: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dir: None,
            write_delay: DEFAULT_WRITE_DELAY,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            history: true,
        }
    }
}

impl EngineBuilder {
    /// Keeps alert state and history in `dir` (created if missing), so they
    /// survive a restart, a crash or a `SIGKILL`. Off by default.
    ///
    /// At build the engine restores what the directory holds: alert
    /// instances of rules whose definition is unchanged (a pending `for`
    /// goes on, a firing alert is not announced again and resolves once),
    /// acknowledgements, silences, and the history, which is replayed
    /// through each series' detector. Time spent down counts as time without
    /// data, under each rule's [`NoDataPolicy`](crate::alert::NoDataPolicy).
    /// Alert state is written [`state_write_delay`](Self::state_write_delay)
    /// after it changes and at shutdown; history every
    /// [`history_snapshot_interval`](Self::history_snapshot_interval) and at
    /// shutdown. Each file is replaced atomically; one that fails its
    /// checksum is moved aside and the engine starts without it. See
    /// [the guide](crate::guide::persistence).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("watchpost-doc-{}", std::process::id()));
    /// let engine = watchpost::Engine::builder().without_system_source().state_dir(&dir).build()?;
    /// engine.shutdown()?;
    /// assert!(dir.join("alerts.state").exists());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.persist.dir = Some(dir.into());
        self
    }

    /// How long after a change of alert state (a transition, a
    /// notification, an acknowledgement, a silence) the state file is
    /// written, measured on the engine's clock at its evaluations; changes
    /// in between are written together. Zero writes at the evaluation that
    /// saw the change.
    ///
    /// Defaults to 1 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::Engine::builder().state_write_delay(std::time::Duration::from_millis(200));
    /// # let _ = b;
    /// ```
    pub fn state_write_delay(mut self, delay: Duration) -> Self {
        self.persist.write_delay = delay;
        self
    }

    /// How often the history snapshot is written (also at shutdown),
    /// measured on the engine's clock at its ticks.
    ///
    /// Defaults to 5 minutes; at least 1 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = watchpost::Engine::builder()
    ///     .without_system_source()
    ///     .history_snapshot_interval(std::time::Duration::from_millis(10))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "invalid history_snapshot_interval: must be at least 1 s, got 10ms");
    /// ```
    pub fn history_snapshot_interval(mut self, every: Duration) -> Self {
        self.persist.snapshot_interval = every;
        self
    }

    /// Whether the state directory also keeps the history (default `true`);
    /// `false` keeps alert state and silences only.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = watchpost::Engine::builder().history_snapshots(false);
    /// # let _ = b;
    /// ```
    pub fn history_snapshots(mut self, on: bool) -> Self {
        self.persist.history = on;
        self
    }
}

impl Settings {
    pub(super) fn validate(&self) -> Result<()> {
        if self.snapshot_interval < Duration::from_secs(1) {
            return Err(Error::InvalidConfig {
                field: "history_snapshot_interval",
                reason: format!("must be at least 1 s, got {:?}", self.snapshot_interval),
            });
        }
        Ok(())
    }

    /// Opens the state directory, if one is set: restores alert state into
    /// `mgr`, reads the history snapshot and registers the `state_dir`
    /// health check (non-critical: a problem makes the engine degraded).
    pub(super) fn open(
        &self,
        registry: &Registry,
        mgr: &mut AlertManager,
        caps: Caps,
        now_ms: i64,
    ) -> Result<(Option<Persister>, RestoredHistory)> {
        let Some(dir) = &self.dir else { return Ok((None, RestoredHistory::default())) };
        let opts = Options {
            dir: dir.clone(),
            write_delay_ms: duration_ms(self.write_delay),
            snapshot_interval_ms: self.history.then(|| duration_ms(self.snapshot_interval)),
        };
        let (mut p, restored) = Persister::open(opts, registry, mgr, caps, now_ms)?;
        // Alert state is written on a thread of its own, never on the worker
        // or the dispatcher; if none can be started, the worker writes it.
        let (queue, job) = p.alert_writer_job();
        if let Ok(handle) = std::thread::Builder::new().name("watchpost-state".into()).spawn(job) {
            p.set_alert_writer(queue, handle);
        }
        let status = Arc::clone(&p.status);
        crate::health::register(
            registry,
            crate::health::HealthCheck::new("state_dir", move || status.check()).critical(false),
        )?;
        Ok((Some(p), restored))
    }
}

impl Worker {
    /// Starts a history snapshot if one is due and the last one finished.
    pub(super) fn snapshot_if_due(&mut self) {
        if self.persister.is_none() {
            return; // without a state directory the clock is not read here
        }
        let now_ms = self.shared.clock.now_ms();
        let Some(p) = self.persister.as_ref() else { return };
        let busy = p.snapshot_writer.as_ref().is_some_and(|w| !w.is_finished());
        if p.snapshot_due(now_ms) && !busy {
            self.snapshot_history(now_ms, true);
        }
    }

    /// Copies every series' samples (under the history read lock), then
    /// encodes and writes them: on a thread of its own when `background`
    /// (the worker only pays for the copy), else here.
    fn snapshot_history(&mut self, now_ms: i64, background: bool) {
        if !self.persister.as_ref().is_some_and(Persister::saves_history) {
            return;
        }
        let series = {
            let history = self.shared.history.read();
            self.cache.all_samples(&history)
        };
        let Some(p) = self.persister.as_mut() else { return };
        if let Some(previous) = p.snapshot_writer.take() {
            let _ = previous.join();
        }
        let job = p.history_job(now_ms, series);
        if !background {
            job();
            return;
        }
        // If no thread can be started, this snapshot is skipped: the next
        // interval or the shutdown writes one.
        if let Ok(handle) = std::thread::Builder::new().name("watchpost-snapshot".into()).spawn(job)
        {
            p.snapshot_writer = Some(handle);
        }
    }

    /// At shutdown, after the last evaluation: writes both files, waiting
    /// for a snapshot still being written.
    pub(super) fn persist_final(&mut self) {
        if self.persister.is_none() {
            return;
        }
        let now_ms = self.shared.clock.now_ms();
        let Some(p) = self.persister.as_mut() else { return };
        let payload = p.alerts_now(&self.shared.alerts.lock(), now_ms);
        p.write_alerts(&payload);
        p.finish_alert_writer();
        self.snapshot_history(now_ms, false);
    }
}

/// The caps restored history is held to.
pub(super) fn caps(capacity: usize, max_age: Option<Duration>, series: usize) -> Caps {
    Caps { samples_per_series: capacity, max_age_ms: max_age.map(duration_ms), series }
}
