//! The state directory: alert state, silences and history across a
//! restart (manual clock and `flush()`), unusable files moved aside, and a
//! writer killed with SIGKILL at arbitrary moments.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::Receiver;
use watchpost::alert::{
    AlertRule, AlertState, ChannelNotifier, Matcher, NoDataPolicy, Notification, NotificationKind,
};
use watchpost::health::Status;
use watchpost::{Engine, EngineBuilder, ManualClock};

use crate::util::{T0, builder};

/// A fresh state directory for one test.
fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchpost-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn inbox() -> (ChannelNotifier, Receiver<Notification>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ChannelNotifier::new(tx), rx)
}

fn got(rx: &Receiver<Notification>) -> Vec<(String, NotificationKind)> {
    rx.try_iter().map(|n| (n.rule, n.kind)).collect()
}

fn busy(pending: Duration) -> AlertRule {
    AlertRule::builder("room_busy", "room_load").above(100.0).pending_for(pending).build().unwrap()
}

/// An engine on `dir` with `rules` only, reporting to the returned inbox.
fn engine_on(
    dir: &Path,
    clock: &ManualClock,
    rules: &[AlertRule],
) -> (Engine, Receiver<Notification>) {
    let (tx, rx) = inbox();
    let b: EngineBuilder = builder(clock)
        .without_default_alert_rules()
        .state_dir(dir)
        .state_write_delay(Duration::ZERO)
        .notifier("inbox", tx);
    let engine = rules.iter().cloned().fold(b, EngineBuilder::alert_rule).build().unwrap();
    (engine, rx)
}

fn record_at(engine: &Engine, clock: &ManualClock, at_ms: i64, value: f64) {
    clock.set_millis(at_ms);
    engine.record("room_load", &[("room", "general")], value).unwrap();
    engine.flush().unwrap();
}

#[test]
fn a_pending_for_goes_on_across_a_restart() {
    let dir = state_dir("pending");
    let clock = ManualClock::at_millis(T0);
    let rule = busy(Duration::from_mins(1));
    let (a, rx) = engine_on(&dir, &clock, std::slice::from_ref(&rule));
    record_at(&a, &clock, T0, 150.0);
    record_at(&a, &clock, T0 + 30_000, 150.0);
    assert_eq!(a.active_alerts()[0].state, AlertState::Pending);
    a.shutdown().unwrap();
    assert!(got(&rx).is_empty());

    // down for 5 s: the 5-minute window still holds data, the `for` goes on
    clock.set_millis(T0 + 35_000);
    let (b, rx) = engine_on(&dir, &clock, &[rule]);
    assert_eq!(b.active_alerts()[0].pending_since_ms, Some(T0));
    record_at(&b, &clock, T0 + 59_999, 150.0);
    assert!(got(&rx).is_empty(), "fired before its `for` ran out");
    record_at(&b, &clock, T0 + 60_000, 150.0);
    b.flush_notifications(Duration::from_secs(5));
    let n: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, NotificationKind::Firing);
    // after the remaining 30 s, not a whole new minute
    assert_eq!(n[0].started_at.unwrap().timestamp_millis(), T0 + 60_000);
    b.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_firing_alert_is_not_announced_again_and_resolves_once_with_its_acknowledgement() {
    let dir = state_dir("firing");
    let clock = ManualClock::at_millis(T0);
    let rule = busy(Duration::ZERO);
    let (first, rx) = engine_on(&dir, &clock, std::slice::from_ref(&rule));
    record_at(&first, &clock, T0, 180.0);
    first.flush_notifications(Duration::from_secs(5));
    assert_eq!(got(&rx), [("room_busy".to_owned(), NotificationKind::Firing)]);
    let id = first.active_alerts()[0].alert_id.clone();
    assert!(first.acknowledge_alert(&id));
    record_at(&first, &clock, T0 + 1_000, 150.0);
    first.shutdown().unwrap();

    clock.set_millis(T0 + 10_000);
    let (second, rx) = engine_on(&dir, &clock, &[rule]);
    record_at(&second, &clock, T0 + 11_000, 160.0);
    let active = second.active_alerts();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].state, AlertState::Firing);
    assert!(active[0].acknowledged, "the acknowledgement was lost");
    assert!(active[0].firing_notified);
    assert_eq!(active[0].firing_since_ms, Some(T0));
    second.flush_notifications(Duration::from_secs(5));
    assert!(got(&rx).is_empty(), "the firing was announced a second time");

    record_at(&second, &clock, T0 + 12_000, 50.0);
    record_at(&second, &clock, T0 + 13_000, 50.0);
    second.flush_notifications(Duration::from_secs(5));
    let sent: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].kind, NotificationKind::Resolved);
    let res = sent[0].resolution.unwrap();
    assert_eq!((res.duration_ms, res.peak_value), (12_000, Some(180.0)));
    second.shutdown().unwrap();

    // and a third start has nothing left to resolve
    let (third, rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    record_at(&third, &clock, T0 + 14_000, 50.0);
    third.shutdown().unwrap();
    assert!(got(&rx).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn silences_survive_a_restart_with_their_ids() {
    let dir = state_dir("silences");
    let clock = ManualClock::at_millis(T0);
    let rule = busy(Duration::ZERO);
    let (a, _rx) = engine_on(&dir, &clock, std::slice::from_ref(&rule));
    let id =
        a.silence_for(vec![Matcher::equal("room", "general")], Duration::from_hours(1)).unwrap();
    a.shutdown().unwrap();

    let (b, rx) = engine_on(&dir, &clock, &[rule]);
    let s = b.silences();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].id(), s[0].ends_at_ms()), (id, T0 + 3_600_000));
    record_at(&b, &clock, T0 + 1_000, 150.0);
    b.flush_notifications(Duration::from_secs(5));
    assert!(got(&rx).is_empty(), "the silence did not mute the firing");
    assert_eq!(b.active_alerts()[0].silenced_by, Some(id));
    assert!(b.expire_silence(id));
    b.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn downtime_counts_as_no_data_under_each_rule_policy() {
    let dir = state_dir("nodata");
    let clock = ManualClock::at_millis(T0);
    let rule = |name: &str, policy| {
        AlertRule::builder(name, "room_load").above(100.0).no_data(policy).build().unwrap()
    };
    let rules = [rule("ok_policy", NoDataPolicy::Ok), rule("paused_policy", NoDataPolicy::NoData)];
    let (a, rx) = engine_on(&dir, &clock, &rules);
    record_at(&a, &clock, T0, 150.0);
    a.shutdown().unwrap();
    assert_eq!(got(&rx).len(), 2);

    // down for 10 minutes, longer than the rules' 5-minute window
    clock.set_millis(T0 + 600_000);
    let (b, rx) = engine_on(&dir, &clock, &rules);
    b.flush_notifications(Duration::from_secs(5));
    let n: Vec<Notification> = rx.try_iter().collect();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!((n[0].rule.as_str(), n[0].kind), ("ok_policy", NotificationKind::Resolved));
    let paused = b.active_alerts();
    assert_eq!(paused.len(), 1);
    assert_eq!(
        (paused[0].rule.as_str(), paused[0].state, paused[0].paused_from),
        ("paused_policy", AlertState::NoData, Some(AlertState::Firing))
    );

    // data returns: the paused alert goes on firing without a new announcement,
    // the resolved one fires anew
    record_at(&b, &clock, T0 + 601_000, 150.0);
    b.flush_notifications(Duration::from_secs(5));
    assert_eq!(got(&rx), [("ok_policy".to_owned(), NotificationKind::Firing)]);
    b.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn state_of_a_changed_rule_is_dropped_and_counted() {
    let dir = state_dir("changed");
    let clock = ManualClock::at_millis(T0);
    let (a, _rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    record_at(&a, &clock, T0, 150.0);
    a.shutdown().unwrap();

    let stricter = AlertRule::builder("room_busy", "room_load").above(120.0).build().unwrap();
    let (b, rx) = engine_on(&dir, &clock, &[stricter]);
    assert!(
        b.prometheus_text()
            .contains("watchpost_state_restore_dropped_total{reason=\"rule_changed\"} 1")
    );
    // the new rule starts from scratch: its firing is announced
    record_at(&b, &clock, T0 + 1_000, 150.0);
    b.flush_notifications(Duration::from_secs(5));
    assert_eq!(got(&rx), [("room_busy".to_owned(), NotificationKind::Firing)]);
    b.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn history_survives_a_restart_and_the_detector_starts_warm() {
    let dir = state_dir("history");
    let clock = ManualClock::at_millis(T0);
    let (a, _rx) = engine_on(&dir, &clock, &[]);
    let values: Vec<f64> = (0..300).map(|i| 50.0 + f64::from(i % 7)).collect();
    for (i, v) in values.iter().enumerate() {
        clock.set_millis(T0 + 1_000 * i64::try_from(i).unwrap());
        a.record("latency_ms", &[], *v).unwrap();
    }
    a.flush().unwrap();
    a.shutdown().unwrap();
    assert!(dir.join("history.snapshot").exists());

    clock.set_millis(T0 + 400_000);
    let (b, _rx) = engine_on(&dir, &clock, &[]);
    b.record("latency_ms", &[], 53.0).unwrap();
    b.flush().unwrap();
    let h = b.history("latency_ms", Duration::from_hours(1));
    assert_eq!(h.len(), 301);
    let restored: Vec<f64> = h[..300].iter().map(|s| s.value).collect();
    assert_eq!(restored, values);
    // replayed through the detector: the new sample is scored against a band
    assert!(h[300].expected_band.is_some(), "{:?}", h[300]);
    b.shutdown().unwrap();

    // a cold engine has no band for its first sample
    let cold = builder(&clock).build().unwrap();
    cold.record("latency_ms", &[], 53.0).unwrap();
    cold.flush().unwrap();
    assert!(cold.latest("latency_ms").unwrap().expected_band.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds an engine on a directory holding a damaged `alerts.state`.
fn start_on_damaged(test: &str, damage: impl FnOnce(&mut Vec<u8>)) {
    let dir = state_dir(test);
    let clock = ManualClock::at_millis(T0);
    let (a, _rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    record_at(&a, &clock, T0, 150.0);
    a.shutdown().unwrap();
    let path = dir.join("alerts.state");
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    clock.set_millis(T0 + 5_000);
    let (b, rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    assert!(dir.join(format!("alerts.state.corrupt-{}", T0 + 5_000)).exists());
    assert!(b.prometheus_text().contains("watchpost_state_files_corrupt_total 1"));
    let health = b.health();
    assert_eq!(health.status, Status::Degraded);
    let note = health.components.iter().find(|c| c.name == "state_dir").unwrap();
    assert!(note.error.as_deref().unwrap().contains("moved to"), "{note:?}");
    // started fresh: the firing is announced again
    record_at(&b, &clock, T0 + 6_000, 150.0);
    b.flush_notifications(Duration::from_secs(5));
    assert_eq!(got(&rx), [("room_busy".to_owned(), NotificationKind::Firing)]);
    b.shutdown().unwrap();
    // and the fresh state written at shutdown is valid
    let (c, _rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    assert!(c.prometheus_text().contains("watchpost_state_files_corrupt_total 0"));
    c.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_state_file_is_moved_aside_and_the_engine_starts_fresh() {
    start_on_damaged("truncated", |b| b.truncate(b.len() / 2));
}

#[test]
fn a_bit_flipped_state_file_is_moved_aside_and_the_engine_starts_fresh() {
    start_on_damaged("flipped", |b| {
        let i = b.len() - 3;
        b[i] ^= 0x04;
    });
}

#[test]
fn an_unwritable_state_dir_is_a_build_error_naming_it() {
    let file = state_dir("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = builder(&ManualClock::at_millis(T0)).state_dir(file.join("sub")).build().unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("invalid state_dir: cannot create "), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    let _ = std::fs::remove_file(&file);
}

/// The environment variable that makes [`state_writer_child`] write.
const WRITER_ENV: &str = "WATCHPOST_TEST_STATE_WRITER_DIR";

/// Not a test of its own: run as a child process by
/// [`sigkill_at_any_moment_leaves_old_or_new_files`], it writes the state
/// directory as fast as it can until it is killed.
#[test]
fn state_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else { return };
    let clock = ManualClock::at_millis(T0);
    let engine = builder(&clock)
        .without_default_alert_rules()
        .alert_rule(busy(Duration::ZERO))
        .state_dir(PathBuf::from(dir))
        .state_write_delay(Duration::ZERO)
        .history_snapshot_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    for i in 0i64.. {
        // every step changes the alert state and is a second later: both
        // files are rewritten at every flush
        clock.set_millis(T0 + 1_000 * i);
        let value = if i % 2 == 0 { 150.0 } else { 50.0 };
        engine.record("room_load", &[("room", "general")], value).unwrap();
        engine.flush().unwrap();
    }
}

#[test]
fn sigkill_at_any_moment_leaves_old_or_new_files() {
    let dir = state_dir("sigkill");
    let exe = std::env::current_exe().unwrap();
    for round in 0..20u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "persistence::state_writer_child", "--test-threads=1", "--quiet"])
            .env(WRITER_ENV, &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // wait until it writes, then let it run a varying while (0-45 ms)
        let started = std::time::Instant::now();
        while !dir.join("history.snapshot").exists() && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(round * 7 % 46));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    assert!(dir.join("alerts.state").exists() && dir.join("history.snapshot").exists());

    let clock = ManualClock::at_millis(T0 + 1_000_000);
    let (engine, _rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    assert!(engine.prometheus_text().contains("watchpost_state_files_corrupt_total 0"));
    assert_eq!(engine.health().status, Status::Healthy);
    // what the last child wrote is there: its alert and its history
    assert_eq!(engine.alert_rules().len(), 1);
    engine.record("room_load", &[("room", "general")], 50.0).unwrap();
    engine.flush().unwrap();
    let h = engine.history_with("room_load", &[("room", "general")], Duration::from_hours(24));
    assert!(h.len() > 1, "{h:?}");
    engine.shutdown().unwrap();
    // nothing moved aside, no temporary file left (by the children or by
    // this engine, whose writes are done once it is shut down)
    let moved: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("corrupt") || Path::new(n).extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A silence of the configuration file that the state directory also kept
/// is one silence after a restart, with the id it had; a silence added over
/// the API beside it keeps its own id too.
#[test]
fn a_file_silence_restored_from_the_state_directory_is_not_duplicated() {
    let dir = state_dir("config-silence");
    let clock = ManualClock::at_millis(T0);
    let path = dir.with_extension("toml");
    let silence = r#"
[[silences]]
matchers = ['room="general"']
starts_at = "2026-01-01T00:00:00Z"
ends_at = "2026-01-01T06:00:00Z"
comment = "planned work"
"#;
    std::fs::write(&path, "").unwrap();
    let start = |clock: &ManualClock| {
        builder(clock)
            .without_default_alert_rules()
            .state_dir(&dir)
            .state_write_delay(Duration::ZERO)
            .config_file(&path)
            .build()
            .unwrap()
    };
    // first run: a silence over the API, then the file's silence by a reload
    let a = start(&clock);
    let by_hand =
        a.silence_for(vec![Matcher::equal("room", "lobby")], Duration::from_hours(1)).unwrap();
    std::fs::write(&path, silence).unwrap();
    assert_eq!(a.reload_config(&path).unwrap().silences_added, 1);
    let from_file = a.silences().iter().find(|s| s.why() == "planned work").unwrap().id();
    a.shutdown().unwrap();

    // two restarts with the file: the same two silences, with their ids
    for _ in 0..2 {
        clock.advance(Duration::from_secs(10));
        let b = start(&clock);
        let mut ids: Vec<_> = b.silences().iter().map(|s| (s.id(), s.why().to_owned())).collect();
        ids.sort();
        assert_eq!(ids, [(by_hand, String::new()), (from_file, "planned work".to_owned())]);
        b.shutdown().unwrap();
    }

    // and the file still owns its silence: dropping it from the file expires it
    let c = start(&clock);
    std::fs::write(&path, "").unwrap();
    assert_eq!(c.reload_config(&path).unwrap().silences_expired, 1);
    let live: Vec<_> = c
        .silences()
        .iter()
        .filter(|s| !s.is_expired(T0 + 20_000))
        .map(watchpost::alert::Silence::id)
        .collect();
    assert_eq!(live, [by_hand]);
    c.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&path);
}

/// Alert state is written on a thread of its own: a write stuck on the disk
/// (here: the temporary file is a FIFO nobody reads, so opening it blocks)
/// holds up neither evaluation nor notifications, and the newest state is
/// written once the disk answers again.
#[cfg(target_os = "linux")]
#[test]
fn a_stalled_state_write_holds_up_neither_evaluation_nor_notifications() {
    use std::io::Read;
    let dir = state_dir("stalled");
    let clock = ManualClock::at_millis(T0);
    let (engine, rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    let tmp = dir.join(format!(".alerts.state.{}.tmp", std::process::id()));
    let made = std::process::Command::new("mkfifo").arg(&tmp).status().unwrap();
    assert!(made.success());

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let worker_side = {
        let (engine, clock) = (engine.monitor(), clock.clone());
        std::thread::spawn(move || {
            for (i, value) in [150.0, 50.0].into_iter().enumerate() {
                clock.set_millis(T0 + 1_000 * i64::try_from(i).unwrap());
                engine.record("room_load", &[("room", "general")], value).unwrap();
                engine.flush().unwrap();
            }
            done_tx.send(()).unwrap();
        })
    };
    // both evaluations finish while the first write is stuck
    done_rx.recv_timeout(Duration::from_secs(20)).expect("evaluation waited for the disk");
    worker_side.join().unwrap();
    engine.flush_notifications(Duration::from_secs(5));
    let kinds: Vec<NotificationKind> = got(&rx).into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds, [NotificationKind::Firing, NotificationKind::Resolved]);

    // the disk answers: the stuck write fails on the FIFO, the newest state follows
    let mut stuck = Vec::new();
    std::fs::File::open(&tmp).unwrap().read_to_end(&mut stuck).unwrap();
    let started = std::time::Instant::now();
    while !dir.join("alerts.state").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown().unwrap();
    let (again, rx) = engine_on(&dir, &clock, &[busy(Duration::ZERO)]);
    again.flush_notifications(Duration::from_secs(5));
    assert!(got(&rx).is_empty(), "the resolved alert was saved as resolved");
    assert!(again.active_alerts().iter().all(|a| a.state != AlertState::Firing));
    again.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
