//! The state directory's file writers on their own, for benches and tests
//! (feature `test-util`, outside semver guarantees). The engine writes its
//! state directory through exactly these paths.

use std::io;
use std::path::Path;

use crate::alert::AlertManager;
use crate::key::SeriesKey;

use super::{ALERTS_FILE, HISTORY_FILE, alert_state, file, history_snapshot};

/// Encodes the state of `mgr` (instances and silences) and writes it
/// atomically to `dir/alerts.state`, as the engine does; returns the file's size.
///
/// # Errors
///
/// The I/O error of the write, fsync or rename.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("watchpost-sf-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mgr = watchpost::alert::AlertManager::with_default_rules();
/// let bytes = watchpost::state_files::write_alert_state(&dir, &mgr, 0)?;
/// assert_eq!(std::fs::metadata(dir.join("alerts.state"))?.len(), bytes);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_alert_state(dir: &Path, mgr: &AlertManager, now_ms: i64) -> io::Result<u64> {
    let payload = alert_state::encode(mgr, now_ms);
    let bytes = file::frame(alert_state::MAGIC, alert_state::VERSION, 0, &payload);
    file::write_atomic(&dir.join(ALERTS_FILE), &bytes)?;
    Ok(bytes.len() as u64)
}

/// Encodes, compresses and writes a history snapshot of `series` (each
/// `(timestamp_ms, value)` oldest first) atomically to
/// `dir/history.snapshot`, as the engine does; returns the file's size.
///
/// # Errors
///
/// The I/O error of the write, fsync or rename.
///
/// # Examples
///
/// ```
/// use watchpost::SeriesKey;
/// let dir = std::env::temp_dir().join(format!("watchpost-sh-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let series = vec![(SeriesKey::new("cpu", &[]).unwrap(), vec![(0, 1.0), (1_000, 2.0)])];
/// assert!(watchpost::state_files::write_history_snapshot(&dir, &series, 0)? > 24);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_history_snapshot(
    dir: &Path,
    series: &[(SeriesKey, Vec<(i64, f64)>)],
    now_ms: i64,
) -> io::Result<u64> {
    let payload = history_snapshot::encode(now_ms, series.iter().map(|(k, s)| (k, s.as_slice())));
    let bytes =
        file::frame(history_snapshot::MAGIC, history_snapshot::VERSION, file::FLAG_LZ4, &payload);
    file::write_atomic(&dir.join(HISTORY_FILE), &bytes)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to `path` the way the state files are written (temporary
/// file in the same directory, fsync, rename, fsync of the directory): the
/// baseline's write in the benches.
///
/// # Errors
///
/// The I/O error of the write, fsync or rename.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("watchpost-wa-{}", std::process::id()));
/// watchpost::state_files::write_atomic(&path, b"{}")?;
/// assert_eq!(std::fs::read(&path)?, b"{}");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    file::write_atomic(path, bytes)
}

/// The bytes [`write_alert_state`] writes (header and postcard payload),
/// without writing them: the encoding's share of the cost.
///
/// # Examples
///
/// ```
/// let mgr = watchpost::alert::AlertManager::with_default_rules();
/// assert_eq!(&watchpost::state_files::encode_alert_state(&mgr, 0)[..8], b"WPALERTS");
/// ```
pub fn encode_alert_state(mgr: &AlertManager, now_ms: i64) -> Vec<u8> {
    let payload = alert_state::encode(mgr, now_ms);
    file::frame(alert_state::MAGIC, alert_state::VERSION, 0, &payload)
}

/// The bytes [`write_history_snapshot`] writes (header and LZ4-compressed
/// postcard payload), without writing them.
///
/// # Examples
///
/// ```
/// use watchpost::SeriesKey;
/// let series = vec![(SeriesKey::new("cpu", &[]).unwrap(), vec![(0, 1.0)])];
/// assert_eq!(&watchpost::state_files::encode_history_snapshot(&series, 0)[..8], b"WPHISTRY");
/// ```
pub fn encode_history_snapshot(series: &[(SeriesKey, Vec<(i64, f64)>)], now_ms: i64) -> Vec<u8> {
    let payload = history_snapshot::encode(now_ms, series.iter().map(|(k, s)| (k, s.as_slice())));
    file::frame(history_snapshot::MAGIC, history_snapshot::VERSION, file::FLAG_LZ4, &payload)
}
