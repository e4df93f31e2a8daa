//! The state directory: alert state and history that survive a restart.
//!
//! Two files, each framed with a magic, a format version, its length and a
//! CRC-32 (see [`file`]), and replaced atomically:
//!
//! - `alerts.state`: alert instances and silences, written a short,
//!   clock-driven delay after they change (coalescing bursts) and at
//!   shutdown, by a thread of its own ([`AlertQueue`]);
//! - `history.snapshot`: every series' samples, written periodically and at
//!   shutdown.
//!
//! A file that fails its checks is renamed to `<name>.corrupt-<ms>`, counted
//! and reported, and the engine starts without it. docs/persistence.md has
//! the guarantees and the formats.

pub(crate) mod alert_state;
pub(crate) mod file;
pub(crate) mod history_snapshot;
#[cfg(any(test, feature = "test-util"))]
pub mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::alert::AlertManager;
use crate::error::{Error, Result};
use crate::key::SeriesKey;
use crate::metric::Counter;
use crate::registry::Registry;

pub(crate) use history_snapshot::{Caps, RestoredHistory};

/// Name of the alert state file in the state directory.
pub(crate) const ALERTS_FILE: &str = "alerts.state";
/// Name of the history snapshot in the state directory.
pub(crate) const HISTORY_FILE: &str = "history.snapshot";

/// The state directory's settings, from the builder.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) dir: PathBuf,
    pub(crate) write_delay_ms: i64,
    /// `None`: history is not saved or restored.
    pub(crate) snapshot_interval_ms: Option<i64>,
}

/// Counters and the last problem, shared with the health check.
#[derive(Debug)]
pub(crate) struct Status {
    writes: Counter,
    write_errors: Counter,
    corrupt: Counter,
    dropped: Vec<(alert_state::DropReason, Counter)>,
    /// The newest problem worth a health note.
    pub(crate) note: Mutex<Option<String>>,
    /// Whether the last write of each file failed.
    pub(crate) failing: Mutex<[bool; 2]>,
}

impl Status {
    fn register(r: &Registry) -> Result<Self> {
        let mut dropped = Vec::new();
        for reason in alert_state::DropReason::ALL {
            let c =
                r.counter("watchpost_state_restore_dropped_total", &[("reason", reason.as_str())])?;
            dropped.push((reason, c));
        }
        for (name, help) in [
            ("watchpost_state_writes_total", "State files written to the state directory."),
            ("watchpost_state_write_errors_total", "Writes to the state directory that failed."),
            (
                "watchpost_state_files_corrupt_total",
                "State files that failed their checks at start and were moved aside.",
            ),
            (
                "watchpost_state_restore_dropped_total",
                "Saved alert instances and silences not restored, by reason.",
            ),
        ] {
            r.describe(name, help)?;
        }
        Ok(Status {
            writes: r.counter("watchpost_state_writes_total", &[])?,
            write_errors: r.counter("watchpost_state_write_errors_total", &[])?,
            corrupt: r.counter("watchpost_state_files_corrupt_total", &[])?,
            dropped,
            note: Mutex::new(None),
            failing: Mutex::new([false; 2]),
        })
    }

    /// The health check's verdict: an error text while a write is failing or
    /// after a file was moved aside at start.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        match (&*self.note.lock(), self.failing.lock().iter().any(|f| *f)) {
            (Some(note), _) => Err(note.clone()),
            (None, true) => Err("writing the state directory fails".to_owned()),
            (None, false) => Ok(()),
        }
    }

    /// A warning for an operator reading the process's stderr (once per
    /// unusable file at start, once per run of failing writes); the counters
    /// and the health check carry the same facts. A `sticky` one stays the
    /// health check's note for the life of the engine.
    fn warn(&self, text: String, sticky: bool) {
        eprintln!("watchpost: warning: {text}");
        if sticky {
            *self.note.lock() = Some(text);
        }
    }
}

/// Reads and writes the state directory on behalf of the worker.
#[derive(Debug)]
pub(crate) struct Persister {
    dir: PathBuf,
    write_delay_ms: i64,
    snapshot_interval_ms: Option<i64>,
    marker: Option<[u64; 4]>,
    dirty_since: Option<i64>,
    last_snapshot_ms: i64,
    pub(crate) status: Arc<Status>,
    /// The history snapshot being written off the worker, if any.
    pub(crate) snapshot_writer: Option<std::thread::JoinHandle<()>>,
    /// The thread that writes the alert state, and what it is to write
    /// next; without one (it could not be started) the caller writes.
    alert_writer: Option<(Arc<AlertQueue>, std::thread::JoinHandle<()>)>,
}

/// The alert state waiting for the writer thread. Only the newest is kept:
/// a state superseded before the thread got to it is never written, so a
/// slow disk makes fewer writes, not a backlog.
#[derive(Debug, Default)]
pub(crate) struct AlertQueue {
    next: Mutex<(Option<Vec<u8>>, bool)>,
    ready: parking_lot::Condvar,
}

impl AlertQueue {
    fn put(&self, payload: Vec<u8>) {
        self.next.lock().0 = Some(payload);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.next.lock().1 = true;
        self.ready.notify_one();
    }

    /// The writer thread's loop: frames and writes each state put, until
    /// closed with nothing left to write.
    fn run(&self, status: &Status, path: &Path) {
        loop {
            let payload = {
                let mut next = self.next.lock();
                loop {
                    if let Some(p) = next.0.take() {
                        break p;
                    }
                    if next.1 {
                        return;
                    }
                    self.ready.wait(&mut next);
                }
            };
            let bytes = file::frame(alert_state::MAGIC, alert_state::VERSION, 0, &payload);
            write_file(status, path, 0, &bytes);
        }
    }
}

impl Drop for Persister {
    /// Writes what the alert writer holds and joins it.
    fn drop(&mut self) {
        self.finish_alert_writer();
    }
}

impl Persister {
    /// Opens the directory (creating it), restores the alert state into
    /// `mgr` and reads the history snapshot, as of `now_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the directory if it cannot be created.
    pub(crate) fn open(
        opts: Options,
        registry: &Registry,
        mgr: &mut AlertManager,
        caps: Caps,
        now_ms: i64,
    ) -> Result<(Persister, RestoredHistory)> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| Error::InvalidConfig {
            field: "state_dir",
            reason: format!("cannot create {}: {e}", opts.dir.display()),
        })?;
        let status = Arc::new(Status::register(registry)?);
        let mut p = Persister {
            dir: opts.dir,
            write_delay_ms: opts.write_delay_ms,
            snapshot_interval_ms: opts.snapshot_interval_ms,
            marker: None,
            dirty_since: None,
            last_snapshot_ms: now_ms,
            status,
            snapshot_writer: None,
            alert_writer: None,
        };
        p.restore_alerts(mgr, now_ms);
        p.marker = Some(mgr.change_marker());
        let history = if p.snapshot_interval_ms.is_some() {
            p.restore_history(caps, now_ms)
        } else {
            RestoredHistory::default()
        };
        Ok((p, history))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads a file; a corrupt one is moved aside, counted and warned about.
    fn load(
        &self,
        name: &str,
        magic: [u8; 8],
        version: u16,
        now_ms: i64,
    ) -> Option<(u16, Vec<u8>)> {
        let path = self.path(name);
        match file::load(&path, magic, version, now_ms) {
            file::Loaded::Missing => None,
            file::Loaded::Valid(flags, payload) => Some((flags, payload)),
            file::Loaded::Corrupt { reason, moved_to } => {
                self.corrupt(&path, &reason, moved_to.as_deref());
                None
            }
        }
    }

    fn corrupt(&self, path: &Path, reason: &str, moved_to: Option<&Path>) {
        self.status.corrupt.inc();
        let whereto = moved_to.map_or_else(
            || "could not be moved aside".to_owned(),
            |p| format!("moved to {}", p.display()),
        );
        self.status.warn(
            format!(
                "state file {} is unusable ({reason}); {whereto}; starting without it",
                path.display()
            ),
            true,
        );
    }

    fn restore_alerts(&self, mgr: &mut AlertManager, now_ms: i64) {
        let Some((_, payload)) =
            self.load(ALERTS_FILE, alert_state::MAGIC, alert_state::VERSION, now_ms)
        else {
            return;
        };
        match alert_state::restore(mgr, &payload) {
            Ok(r) => {
                for (_, reason) in &r.dropped {
                    if let Some((_, c)) = self.status.dropped.iter().find(|(d, _)| d == reason) {
                        c.inc();
                    }
                }
                if !r.dropped.is_empty() {
                    let mut names: Vec<String> = r
                        .dropped
                        .iter()
                        .map(|(what, why)| format!("{what} ({})", why.as_str()))
                        .collect();
                    let more = names.len().saturating_sub(5);
                    names.truncate(5);
                    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                    eprintln!(
                        "watchpost: saved alert state not restored: {}{more}",
                        names.join(", ")
                    );
                }
            }
            Err(reason) => {
                // checksummed but undecodable: written by an incompatible build
                let path = self.path(ALERTS_FILE);
                let file::Loaded::Corrupt { moved_to, .. } =
                    file::move_aside(&path, reason.clone(), now_ms)
                else {
                    unreachable!("move_aside reports a corrupt file")
                };
                self.corrupt(&path, &reason, moved_to.as_deref());
            }
        }
    }

    fn restore_history(&self, caps: Caps, now_ms: i64) -> RestoredHistory {
        let Some((flags, payload)) =
            self.load(HISTORY_FILE, history_snapshot::MAGIC, history_snapshot::VERSION, now_ms)
        else {
            return RestoredHistory::default();
        };
        let decoded = if flags & file::FLAG_LZ4 == 0 {
            Err("payload is not LZ4-compressed".to_owned())
        } else {
            history_snapshot::decode(&payload, caps)
        };
        decoded.unwrap_or_else(|reason| {
            let path = self.path(HISTORY_FILE);
            if let file::Loaded::Corrupt { moved_to, .. } =
                file::move_aside(&path, reason.clone(), now_ms)
            {
                self.corrupt(&path, &reason, moved_to.as_deref());
            }
            RestoredHistory::default()
        })
    }

    /// After an evaluation: notes a change of `mgr` and returns the encoded
    /// alert state once the write delay has passed since the first
    /// unsaved change (so a burst of changes makes one write).
    pub(crate) fn alerts_due(&mut self, mgr: &AlertManager, now_ms: i64) -> Option<Vec<u8>> {
        let marker = mgr.change_marker();
        if self.marker != Some(marker) {
            self.marker = Some(marker);
            self.dirty_since.get_or_insert(now_ms);
        }
        let since = self.dirty_since?;
        (now_ms.saturating_sub(since) >= self.write_delay_ms)
            .then(|| alert_state::encode(mgr, now_ms))
    }

    /// The alert state of `mgr`, encoded, for a write regardless of changes.
    pub(crate) fn alerts_now(&mut self, mgr: &AlertManager, now_ms: i64) -> Vec<u8> {
        self.marker = Some(mgr.change_marker());
        alert_state::encode(mgr, now_ms)
    }

    /// Writes an encoded alert state: hands it to the writer thread if
    /// there is one (replacing a state it has not written yet), else writes
    /// it here.
    pub(crate) fn write_alerts(&mut self, payload: &[u8]) {
        self.dirty_since = None;
        if let Some((queue, _)) = &self.alert_writer {
            queue.put(payload.to_vec());
            return;
        }
        let bytes = file::frame(alert_state::MAGIC, alert_state::VERSION, 0, payload);
        self.write(ALERTS_FILE, 0, &bytes);
    }

    /// The alert writer's queue and the loop a thread of its own runs
    /// (the engine starts it; see [`set_alert_writer`](Self::set_alert_writer)).
    pub(crate) fn alert_writer_job(&self) -> (Arc<AlertQueue>, impl FnOnce() + Send + 'static) {
        let queue = Arc::new(AlertQueue::default());
        let (q, status, path) =
            (Arc::clone(&queue), Arc::clone(&self.status), self.path(ALERTS_FILE));
        (queue, move || q.run(&status, &path))
    }

    /// From now on alert state is written by the thread `handle` runs for `queue`.
    pub(crate) fn set_alert_writer(
        &mut self,
        queue: Arc<AlertQueue>,
        handle: std::thread::JoinHandle<()>,
    ) {
        self.alert_writer = Some((queue, handle));
    }

    /// Waits for the alert writer to write what it holds, and stops it;
    /// later writes happen on the caller's thread.
    pub(crate) fn finish_alert_writer(&mut self) {
        if let Some((queue, handle)) = self.alert_writer.take() {
            queue.close();
            let _ = handle.join();
        }
    }

    /// Whether history snapshots are on and one is due at `now_ms`.
    pub(crate) fn snapshot_due(&self, now_ms: i64) -> bool {
        self.snapshot_interval_ms
            .is_some_and(|every| now_ms.saturating_sub(self.last_snapshot_ms) >= every)
    }

    /// Whether history snapshots are on.
    pub(crate) fn saves_history(&self) -> bool {
        self.snapshot_interval_ms.is_some()
    }

    /// The work of a history snapshot of `series` (each oldest first):
    /// encoding, compression and the atomic write, as a job the engine can
    /// run off its worker thread. Counts as the snapshot taken at `now_ms`.
    pub(crate) fn history_job(
        &mut self,
        now_ms: i64,
        series: Vec<(SeriesKey, Vec<(i64, f64)>)>,
    ) -> impl FnOnce() + Send + 'static {
        self.last_snapshot_ms = now_ms;
        let path = self.path(HISTORY_FILE);
        let status = Arc::clone(&self.status);
        move || {
            let payload =
                history_snapshot::encode(now_ms, series.iter().map(|(k, s)| (k, s.as_slice())));
            let bytes = file::frame(
                history_snapshot::MAGIC,
                history_snapshot::VERSION,
                file::FLAG_LZ4,
                &payload,
            );
            write_file(&status, &path, 1, &bytes);
        }
    }

    fn write(&self, name: &str, slot: usize, bytes: &[u8]) {
        write_file(&self.status, &self.path(name), slot, bytes);
    }
}

/// Writes `bytes` to `path` atomically and counts the outcome; `slot` is
/// the file's entry in [`Status::failing`].
fn write_file(status: &Status, path: &Path, slot: usize, bytes: &[u8]) {
    let result = file::write_atomic(path, bytes);
    let was_failing = std::mem::replace(&mut status.failing.lock()[slot], result.is_err());
    match result {
        Ok(()) => status.writes.inc(),
        Err(e) => {
            status.write_errors.inc();
            if !was_failing {
                status.warn(format!("cannot write {}: {e}", path.display()), false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::alert::{AlertRule, Matcher, MemoryView, Silence};

    /// The two rules of [`state_file`]: one fires at once, one waits a minute.
    fn rules() -> Vec<AlertRule> {
        vec![
            AlertRule::builder("hot", "temp").above(30.0).build().unwrap(),
            AlertRule::builder("warm", "temp")
                .above(20.0)
                .pending_for(Duration::from_mins(1))
                .build()
                .unwrap(),
        ]
    }

    /// A real alert state file: two rules, firing and pending instances, a silence.
    fn state_file() -> Vec<u8> {
        let mut mgr = AlertManager::new(rules()).unwrap();
        let mut view = MemoryView::new();
        for room in ["a", "b", "c"] {
            view.push(SeriesKey::new("temp", &[("room", room)]).unwrap(), 0, 35.0);
        }
        mgr.evaluate(0, &view);
        mgr.add_silence(Silence::new(vec![Matcher::equal("room", "a")], 0, 60_000).unwrap())
            .unwrap();
        let payload = alert_state::encode(&mgr, 0);
        file::frame(alert_state::MAGIC, alert_state::VERSION, 0, &payload)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bit_flip_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = state_file();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(file::unframe(alert_state::MAGIC, alert_state::VERSION, &bytes).is_err());
        }

        #[test]
        fn any_truncation_is_detected(pos in any::<prop::sample::Index>()) {
            let bytes = state_file();
            let n = pos.index(bytes.len());
            prop_assert!(file::unframe(alert_state::MAGIC, alert_state::VERSION, &bytes[..n]).is_err());
        }

        /// A payload that passes the checksum but was not written by this
        /// format (another build, a bug) is an error, never a panic.
        #[test]
        fn arbitrary_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut mgr = AlertManager::default();
            let _ = alert_state::restore(&mut mgr, &payload);
            let caps = Caps { samples_per_series: 10, max_age_ms: None, series: 10 };
            let _ = history_snapshot::decode(&payload, caps);
        }
    }

    #[test]
    fn the_state_file_restores_what_it_saved() {
        let bytes = state_file();
        let (_, payload) = file::unframe(alert_state::MAGIC, alert_state::VERSION, &bytes).unwrap();
        let mut mgr = AlertManager::new(rules()).unwrap();
        let r = alert_state::restore(&mut mgr, payload).unwrap();
        assert_eq!((r.instances, r.silences, r.dropped.len()), (6, 1, 0));
        assert_eq!(mgr.firing_count(), 3);
    }
}
