//! Framed files written atomically: a header with a magic, a format version,
//! the payload length and a CRC-32, then the payload.
//!
//! ```text
//! offset  size  field
//!      0     8  magic ("WPALERTS" or "WPHISTRY")
//!      8     2  format version, little endian
//!     10     2  flags (bit 0: payload is LZ4-compressed)
//!     12     4  CRC-32 (IEEE) of bytes 8..12, 16..24 and the payload
//!     16     8  payload length in bytes, little endian
//!     24     …  payload
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 24;

/// Flag: the payload is compressed with LZ4 (size-prepended block).
pub(crate) const FLAG_LZ4: u16 = 1;

/// Largest payload a file may declare: 1 GiB, so a corrupt length cannot
/// make the reader allocate without bound.
const MAX_PAYLOAD: u64 = 1 << 30;

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[8..12]);
    h.update(&header[16..24]);
    h.update(payload);
    h.finalize()
}

/// The file's bytes: header, then `payload`.
pub(crate) fn frame(magic: [u8; 8], version: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = checksum(&out, payload);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the header of `bytes` and returns the flags and the payload, or
/// why the file cannot be trusted.
pub(crate) fn unframe(magic: [u8; 8], version: u16, bytes: &[u8]) -> Result<(u16, &[u8]), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the {HEADER_LEN}-byte header", bytes.len()));
    }
    if bytes[..8] != magic {
        return Err(format!(
            "magic {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[..8]),
            String::from_utf8_lossy(&magic)
        ));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let found = u16_at(8);
    let flags = u16_at(10);
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if len > MAX_PAYLOAD || len != payload.len() as u64 {
        return Err(format!(
            "header says {len} payload bytes, the file holds {} (truncated or extended)",
            payload.len()
        ));
    }
    let actual = checksum(bytes, payload);
    if actual != crc {
        return Err(format!("checksum {actual:#010x} does not match the header's {crc:#010x}"));
    }
    if found != version {
        return Err(format!("format version {found}, this build reads version {version}"));
    }
    if flags & !FLAG_LZ4 != 0 {
        return Err(format!("unknown flags {flags:#06x}"));
    }
    Ok((flags, payload))
}

/// The temporary file `write_atomic` writes before renaming it over `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves either
/// the old file or the new one: write a temporary file in the same
/// directory, flush its data (`fdatasync`: the contents and the size, not
/// the timestamps, which nothing reads), rename it over `path`, fsync the
/// directory so the rename itself survives a power cut.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the rename durable (a directory's entries are synced through the
/// directory opened for reading, on Unix).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Removes temporary files a killed writer left next to `path`.
pub(crate) fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && Path::new(&n).extension().is_some_and(|e| e == "tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No file: a first start.
    Missing,
    /// The file's flags and payload, checked.
    Valid(u16, Vec<u8>),
    /// The file could not be trusted; it was moved to `moved_to` (if the
    /// rename worked) and the caller starts fresh.
    Corrupt {
        /// Why, with the offending value.
        reason: String,
        /// Where it went.
        moved_to: Option<PathBuf>,
    },
}

/// Reads and checks `path`. A file that cannot be read or fails a check is
/// renamed to `<name>.corrupt-<now_ms>` so it is kept for inspection and
/// never read again.
pub(crate) fn load(path: &Path, magic: [u8; 8], version: u16, now_ms: i64) -> Loaded {
    remove_stale_temps(path);
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return move_aside(path, format!("cannot be read: {e}"), now_ms),
    };
    match unframe(magic, version, &bytes) {
        Ok((flags, payload)) => Loaded::Valid(flags, payload.to_vec()),
        Err(reason) => move_aside(path, reason, now_ms),
    }
}

/// Renames a file that failed its checks out of the way.
pub(crate) fn move_aside(path: &Path, reason: String, now_ms: i64) -> Loaded {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = path.with_file_name(format!("{name}.corrupt-{now_ms}"));
    let moved_to = fs::rename(path, &target).ok().map(|()| target);
    Loaded::Corrupt { reason, moved_to }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"WPTESTXX";

    #[test]
    fn frame_round_trips_and_rejects_every_single_byte_change() {
        let bytes = frame(MAGIC, 3, 0, b"hello state");
        assert_eq!(unframe(MAGIC, 3, &bytes).unwrap(), (0, &b"hello state"[..]));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(unframe(MAGIC, 3, &b).is_err(), "a change at byte {i} went unnoticed");
        }
        for n in 0..bytes.len() {
            assert!(unframe(MAGIC, 3, &bytes[..n]).is_err(), "truncated to {n} bytes");
        }
    }

    #[test]
    fn errors_name_the_offending_value() {
        let bytes = frame(MAGIC, 2, 0, b"x");
        assert_eq!(
            unframe(MAGIC, 3, &bytes).unwrap_err(),
            "format version 2, this build reads version 3"
        );
        let e = unframe(*b"WPOTHERX", 2, &bytes).unwrap_err();
        assert!(e.contains("WPTESTXX"), "{e}");
        let e = unframe(MAGIC, 2, &bytes[..HEADER_LEN]).unwrap_err();
        assert!(e.contains("header says 1 payload bytes, the file holds 0"), "{e}");
    }

    #[test]
    fn write_atomic_replaces_and_load_moves_corrupt_files_aside() {
        let dir = std::env::temp_dir().join(format!("watchpost-file-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.state");
        assert!(matches!(load(&path, MAGIC, 1, 0), Loaded::Missing));
        write_atomic(&path, &frame(MAGIC, 1, 0, b"one")).unwrap();
        write_atomic(&path, &frame(MAGIC, 1, 0, b"two")).unwrap();
        assert!(matches!(load(&path, MAGIC, 1, 0), Loaded::Valid(0, p) if p == b"two"));
        // a temporary file left by a killed writer is removed on load
        fs::write(dir.join(".alerts.state.999.tmp"), b"partial").unwrap();
        let _ = load(&path, MAGIC, 1, 0);
        assert!(!dir.join(".alerts.state.999.tmp").exists());

        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).unwrap();
        match load(&path, MAGIC, 1, 1_234) {
            Loaded::Corrupt { reason, moved_to } => {
                assert!(reason.contains("truncated"), "{reason}");
                assert_eq!(moved_to.unwrap(), dir.join("alerts.state.corrupt-1234"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
        assert!(dir.join("alerts.state.corrupt-1234").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
