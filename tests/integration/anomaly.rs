//! The default detector on a few NAB files shipped in `tests/data/nab`
//! (NAB's MIT license is beside them): runs the same harness as
//! `examples/nab.rs` and checks score floors measured on these files.

#![cfg(feature = "nab")]

use std::path::{Path, PathBuf};

use watchpost::detect::{
    DEFAULT_THRESHOLD, DetectorSpec,
    nab::{self, Labels, PROFILES, STANDARD, Series},
};

fn nab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab")
}

fn labels() -> Labels {
    Labels::read(nab_dir().join("labels/combined_windows.json")).expect("labels parse")
}

#[test]
fn default_detector_clears_the_nab_floor() {
    let labels = labels();
    let out = std::env::temp_dir().join(format!("watchpost-nab-{}", std::process::id()));
    let run = nab::run_corpus(
        nab_dir().join("data"),
        Some(&labels),
        &DetectorSpec::default(),
        Some(&out),
    )
    .expect("harness runs");
    assert_eq!(run.cases.len(), 5);
    assert!(run.unlabelled.is_empty());

    // Measured: 79.9 standard (8/8 windows, 4 false positives) at both the
    // optimised and the default threshold.
    let best = nab::score(&run.cases, &STANDARD, None);
    assert!(best.normalized >= 70.0, "{best:?}");
    let fixed = nab::score(&run.cases, &STANDARD, Some(DEFAULT_THRESHOLD));
    assert!(fixed.normalized >= 70.0, "{fixed:?}");
    assert!(fixed.windows_hit >= 7, "{fixed:?}");
    assert!(fixed.fp_rows <= 12, "{fixed:?}");
    for profile in &PROFILES {
        let r = nab::score(&run.cases, profile, Some(DEFAULT_THRESHOLD));
        assert!(r.normalized >= 65.0, "{r:?}");
    }

    // no false alarms on the file without anomalies
    let quiet =
        run.cases.iter().find(|c| c.rel.starts_with("artificialNoAnomaly/")).expect("quiet file");
    assert!(quiet.detections_per_day(DEFAULT_THRESHOLD).expect("has rows") < 0.5);

    // the results mirror the input row for row
    for case in &run.cases {
        let input = Series::read(nab_dir().join("data").join(&case.rel)).expect("input");
        let text = std::fs::read_to_string(out.join(&case.rel)).expect("results written");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), input.len());
        for (row, ts) in rows.iter().zip(&input.timestamps) {
            assert!(row.starts_with(ts.as_str()), "{row} vs {ts}");
            let score: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&score));
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn every_detector_runs_on_nab_files() {
    let labels = labels();
    for name in DetectorSpec::NAMES {
        let spec: DetectorSpec = name.parse().expect("known name");
        let run = nab::run_corpus(nab_dir().join("data"), Some(&labels), &spec, None)
            .expect("harness runs");
        let r = nab::score(&run.cases, &STANDARD, None);
        assert!(r.normalized.is_finite() && r.normalized >= 0.0, "{name}: {r:?}");
    }
}
