//! The state directory's writes, against the budgets in DESIGN.md:
//!
//! - alert state of 1 000 firing alerts (encode, frame, atomic write with
//!   fsync of the file and the directory): ≤ 5 ms;
//! - history snapshot of 1 000 series × 1 000 samples (encode, LZ4, atomic
//!   write): ≤ 200 ms.
//!
//! Baseline in the same run: `serde_json` of the same data (the alerts as
//! their wire views, the history as `(key, [(t, v)])`) written the same way.
//! The file sizes are printed before the measurements, and the encoding is
//! also measured on its own: on a virtual disk the two flushes of an atomic
//! write dominate a small file's cost. The floor those flushes set on this
//! disk is measured in the same run: an atomic write of a 32-byte file, and
//! an fdatasync of a tiny file plus an fsync of its directory.
//! In the engine the alert state is written on a thread of its own, so this
//! cost is never paid by the worker or the notification path.
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use watchpost::SeriesKey;
use watchpost::alert::{AlertManager, AlertRule, AlertView, Matcher, MemoryView, Silence};
use watchpost::state_files::{
    encode_alert_state, encode_history_snapshot, write_alert_state, write_atomic,
    write_history_snapshot,
};

const ALERTS: usize = 1_000;
const SERIES: usize = 1_000;
const SAMPLES: usize = 1_000;

/// xorshift64*: seeded, dependency-free noise.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        #[allow(clippy::cast_precision_loss, reason = "53 random bits")]
        let bits = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64;
        bits / 9_007_199_254_740_992.0 // 2^53
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("watchpost-bench-persist-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("a temporary directory");
    d
}

/// 1 000 firing alerts (one rule over 1 000 series), 100 acknowledged, 10 silences.
fn firing_alerts(rng: &mut Rng) -> AlertManager {
    let rule = AlertRule::builder("room_busy", "room_load").above(100.0).build().expect("rule");
    let mut mgr = AlertManager::new(vec![rule]).expect("one rule");
    let mut view = MemoryView::new();
    for i in 0..ALERTS {
        let key = SeriesKey::new("room_load", &[("room", &format!("room-{i}"))]).expect("key");
        view.push(key, 0, 100.0 + 100.0 * rng.next_f64());
    }
    for n in mgr.evaluate(0, &view).iter().take(100) {
        mgr.acknowledge(&n.alert_id, 1);
    }
    for i in 0..10 {
        let s = Silence::new(vec![Matcher::equal("room", &format!("room-{i}"))], 0, 3_600_000)
            .expect("silence")
            .comment("maintenance");
        mgr.add_silence(s).expect("room for silences");
    }
    assert_eq!(mgr.firing_count(), ALERTS);
    mgr
}

fn history(rng: &mut Rng) -> Vec<(SeriesKey, Vec<(i64, f64)>)> {
    (0..SERIES)
        .map(|i| {
            let key = SeriesKey::new("request_latency_ms", &[("route", &format!("/r/{i}"))])
                .expect("key");
            let mut v = 50.0;
            let samples = (0..SAMPLES)
                .map(|j| {
                    v = (v + rng.next_f64() - 0.5).max(0.0);
                    (1_767_225_600_000 + 1_000 * i64::try_from(j).expect("small"), v)
                })
                .collect();
            (key, samples)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = dir();
    let json_path = dir.join("baseline.json");

    let mgr = firing_alerts(&mut rng);
    let views: Vec<AlertView> = mgr.active_alerts().iter().map(AlertView::from).collect();
    let state_size = write_alert_state(&dir, &mgr, 0).expect("write");
    let json = serde_json::to_vec(&views).expect("json");
    println!(
        "alert state, {ALERTS} firing alerts: {state_size} bytes (serde_json views: {} bytes)",
        json.len()
    );

    let mut g = c.benchmark_group("persist_alert_state_1000");
    g.bench_function("postcard_atomic_write", |b| {
        b.iter(|| write_alert_state(&dir, black_box(&mgr), 1).expect("write"));
    });
    g.bench_function("baseline_serde_json_atomic_write", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&views)).expect("json");
            write_atomic(&json_path, &bytes).expect("write");
        });
    });
    // the two shares of the cost: encoding, and the atomic write (two fsyncs)
    g.bench_function("postcard_encode_only", |b| {
        b.iter(|| encode_alert_state(black_box(&mgr), 1));
    });
    g.bench_function("baseline_serde_json_encode_only", |b| {
        b.iter(|| serde_json::to_vec(black_box(&views)).expect("json"));
    });
    let encoded = encode_alert_state(&mgr, 1);
    g.bench_function("atomic_write_only", |b| {
        b.iter(|| write_atomic(&json_path, black_box(&encoded)).expect("write"));
    });
    // The same write with fsync (data and metadata) of the temporary file
    // instead of fdatasync, as before: what sync_data saves.
    g.bench_function("atomic_write_only_fsync_instead_of_fdatasync", |b| {
        b.iter(|| {
            let tmp = dir.join(".fsync.tmp");
            let mut f = std::fs::File::create(&tmp).expect("create");
            f.write_all(black_box(&encoded)).expect("write");
            f.sync_all().expect("fsync");
            drop(f);
            std::fs::rename(&tmp, &json_path).expect("rename");
            std::fs::File::open(&dir).expect("dir").sync_all().expect("fsync dir");
        });
    });
    // The floor of any durable write on this disk: the same atomic write of
    // a 32-byte file, and the two flushes alone (fdatasync of a tiny file,
    // fsync of its directory), with no encoding and next to no data.
    let tiny_path = dir.join("tiny.state");
    g.bench_function("baseline_atomic_write_32_bytes", |b| {
        b.iter(|| write_atomic(&tiny_path, black_box(&[7u8; 32])).expect("write"));
    });
    let bare_path = dir.join("bare.bin");
    g.bench_function("baseline_fdatasync_tiny_file_and_fsync_dir", |b| {
        b.iter(|| {
            let mut f = std::fs::File::create(&bare_path).expect("create");
            f.write_all(black_box(&[7u8; 32])).expect("write");
            f.sync_data().expect("fdatasync");
            std::fs::File::open(&dir).expect("dir").sync_all().expect("fsync dir");
        });
    });
    g.finish();

    let series = history(&mut rng);
    let snapshot_size = write_history_snapshot(&dir, &series, 0).expect("write");
    let json = serde_json::to_vec(&series).expect("json");
    println!(
        "history snapshot, {SERIES} series x {SAMPLES} samples: {snapshot_size} bytes \
         ({:.2} bytes/sample; serde_json: {} bytes)",
        f64::from(u32::try_from(snapshot_size).expect("under 4 GB"))
            / f64::from(u32::try_from(SERIES * SAMPLES).expect("a million")),
        json.len()
    );
    drop(json);

    let mut g = c.benchmark_group("persist_history_snapshot_1000x1000");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("postcard_lz4_atomic_write", |b| {
        b.iter(|| write_history_snapshot(&dir, black_box(&series), 1).expect("write"));
    });
    g.bench_function("baseline_serde_json_atomic_write", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&series)).expect("json");
            write_atomic(&json_path, &bytes).expect("write");
        });
    });
    g.bench_function("postcard_lz4_encode_only", |b| {
        b.iter(|| encode_history_snapshot(black_box(&series), 1));
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
