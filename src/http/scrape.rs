//! Scrapes that arrive together share one rendering of the exposition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use parking_lot::Mutex;

use crate::export::Format;

/// The last rendering per format, reused while it is younger than the TTL
/// (engine clock time), and shared by every scrape that waited for it.
///
/// The slot's lock is held while rendering, so scrapes that arrive during a
/// rendering wait for it and take its result (single flight) instead of
/// rendering again one after the other. Callers run on the blocking pool,
/// where waiting on a lock costs no async worker.
#[derive(Debug)]
pub(super) struct ScrapeCache {
    ttl_ms: i64,
    slots: [Slot; 2],
    #[cfg(test)]
    waiting: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    /// Renderings finished so far; read before taking the lock to tell
    /// whether one finished while this caller waited.
    finished: AtomicU64,
    last: Mutex<Option<(i64, Bytes)>>,
}

impl ScrapeCache {
    pub(super) fn new(ttl: Duration) -> Self {
        ScrapeCache {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            slots: [Slot::default(), Slot::default()],
            #[cfg(test)]
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The exposition in `format`: the cached one when it is fresh or was
    /// rendered while this call waited, else a new one from `render`.
    /// `now_ms` is read once the slot is ours.
    pub(super) fn get(
        &self,
        format: Format,
        now_ms: impl FnOnce() -> i64,
        render: impl FnOnce(&mut String),
    ) -> Bytes {
        let slot = &self.slots[usize::from(format == Format::OpenMetrics)];
        let seen = slot.finished.load(Ordering::Acquire);
        #[cfg(test)]
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut last = slot.last.lock();
        #[cfg(test)]
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let now = now_ms();
        if let Some((at, body)) = last.as_ref() {
            let shared = slot.finished.load(Ordering::Acquire) != seen;
            let age = now.saturating_sub(*at);
            if shared || (0..self.ttl_ms).contains(&age) {
                return body.clone();
            }
        }
        let mut text = String::new();
        render(&mut text);
        let body = Bytes::from(text);
        *last = Some((now, body.clone()));
        slot.finished.fetch_add(1, Ordering::Release);
        body
    }
}

#[cfg(test)]
impl ScrapeCache {
    /// Holds `format`'s slot, as a rendering in progress would.
    pub(super) fn hold(&self, format: Format) -> parking_lot::MutexGuard<'_, Option<(i64, Bytes)>> {
        self.slots[usize::from(format == Format::OpenMetrics)].last.lock()
    }

    /// Scrapes waiting for a slot.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    use super::*;

    #[test]
    fn fresh_renderings_are_reused_per_format_until_the_ttl() {
        let cache = ScrapeCache::new(Duration::from_millis(500));
        let renders = AtomicUsize::new(0);
        let get = |format, now: i64| {
            cache.get(
                format,
                || now,
                |out| {
                    let n = renders.fetch_add(1, Ordering::SeqCst);
                    out.push_str("render ");
                    out.push_str(&n.to_string());
                },
            )
        };
        assert_eq!(get(Format::Prometheus, 1_000), "render 0");
        assert_eq!(get(Format::Prometheus, 1_499), "render 0");
        assert_eq!(get(Format::OpenMetrics, 1_499), "render 1", "one slot per format");
        assert_eq!(get(Format::Prometheus, 1_500), "render 2", "expired at the TTL");
        assert_eq!(get(Format::Prometheus, 900), "render 3", "a clock that went back renders");
        let uncached = ScrapeCache::new(Duration::ZERO);
        let n = AtomicUsize::new(0);
        for _ in 0..3 {
            uncached.get(
                Format::Prometheus,
                || 5,
                |_| {
                    n.fetch_add(1, Ordering::SeqCst);
                },
            );
        }
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn concurrent_scrapes_render_once() {
        let cache = Arc::new(ScrapeCache::new(Duration::from_millis(500)));
        let renders = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (cache, renders, start) = (cache.clone(), renders.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    cache.get(
                        Format::Prometheus,
                        || 7,
                        |out| {
                            renders.fetch_add(1, Ordering::SeqCst);
                            out.push_str("text");
                        },
                    )
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "text");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }

    /// Without a TTL, scrapes that wait for a rendering in progress still take its result.
    #[test]
    fn scrapes_waiting_for_a_rendering_share_it() {
        let cache = Arc::new(ScrapeCache::new(Duration::ZERO));
        let renders = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = crossbeam_channel::bounded::<()>(0);
        let (release, gate) = crossbeam_channel::bounded::<()>(0);
        let first = {
            let (cache, renders) = (cache.clone(), renders.clone());
            std::thread::spawn(move || {
                cache.get(
                    Format::Prometheus,
                    || 1,
                    |out| {
                        renders.fetch_add(1, Ordering::SeqCst);
                        started_tx.send(()).unwrap();
                        gate.recv().unwrap();
                        out.push_str("slow");
                    },
                )
            })
        };
        started.recv().unwrap();
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (cache, renders) = (cache.clone(), renders.clone());
                std::thread::spawn(move || {
                    cache.get(
                        Format::Prometheus,
                        || 2,
                        |_| {
                            renders.fetch_add(1, Ordering::SeqCst);
                        },
                    )
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.waiting() < 4 {
            assert!(Instant::now() < deadline, "the waiters never queued");
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), "slow");
        for w in waiters {
            assert_eq!(w.join().unwrap(), "slow");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        // a later scrape, with no rendering in progress and no TTL, renders again
        cache.get(
            Format::Prometheus,
            || 3,
            |_| {
                renders.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }
}
