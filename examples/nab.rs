//! Runs a watchpost detector over the Numenta Anomaly Benchmark and scores it.
//!
//! ```text
//! cargo run --release --features nab --example nab -- \
//!     --data NAB/data --out results/watchpost \
//!     [--detector ensemble] [--labels NAB/labels/combined_windows.json] [--threshold 0.5]
//! ```
//!
//! Reads every `DATA/<category>/<file>.csv`, feeds the rows in file order to a
//! fresh detector per file, and writes `OUT/<category>/<file>.csv` with the
//! header `timestamp,value,anomaly_score`. With `--labels` it scores its own
//! output under NAB's three profiles (threshold optimised over the corpus, as
//! NAB does), and with `--threshold` also at that fixed threshold. It reports
//! detections per day on the `artificialNoAnomaly` files, where every
//! detection is a false positive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use watchpost::detect::{
    DetectorSpec,
    nab::{self, FileCase, Labels, PROFILES},
};

struct Args {
    data: PathBuf,
    out: PathBuf,
    spec: DetectorSpec,
    labels: Option<PathBuf>,
    threshold: Option<f64>,
    per_file: bool,
}

const USAGE: &str = "usage: nab --data DIR --out DIR [--detector NAME] [--labels FILE] \
                     [--threshold T] [--per-file]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut data, mut out, mut labels, mut threshold) = (None, None, None, None);
    let mut detector = String::from("ensemble");
    let mut per_file = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--labels" => labels = Some(PathBuf::from(value()?)),
            "--detector" => detector = value()?,
            "--threshold" => {
                let v = value()?;
                threshold = Some(v.parse::<f64>().map_err(|e| format!("--threshold {v:?}: {e}"))?);
            }
            "--per-file" => per_file = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let spec: DetectorSpec = detector.parse().map_err(|e| format!("{e}"))?;
    Ok(Args {
        data: data.ok_or(format!("--data is required\n{USAGE}"))?,
        out: out.ok_or(format!("--out is required\n{USAGE}"))?,
        spec,
        labels,
        threshold,
        per_file,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let labels =
        args.labels.as_ref().map(Labels::read).transpose().map_err(|e| format!("labels: {e}"))?;
    let started = Instant::now();
    let run = nab::run_corpus(&args.data, labels.as_ref(), &args.spec, Some(&args.out))
        .map_err(|e| e.to_string())?;
    let rows: usize = run.cases.iter().map(|c| c.scores.len()).sum();
    println!(
        "# detector={} files={} rows={} out={} ({:.2} s)",
        args.spec.name(),
        run.cases.len(),
        rows,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if labels.is_none() {
        return Ok(());
    }
    for rel in &run.unlabelled {
        eprintln!("warning: {rel} has no labels; not scored");
    }
    let mut standard_thr = None;
    for profile in &PROFILES {
        let r = nab::score(&run.cases, profile, None);
        if profile.name == "standard" {
            standard_thr = Some(r.threshold);
        }
        println!(
            "{:<19} optimised threshold={:<8.4} score={:6.2}  windows_hit={}/{} fp_rows={}",
            profile.name, r.threshold, r.normalized, r.windows_hit, r.scored_windows, r.fp_rows
        );
    }
    if let Some(t) = args.threshold {
        for profile in &PROFILES {
            let r = nab::score(&run.cases, profile, Some(t));
            println!(
                "{:<19} fixed threshold={:<12.4} score={:6.2}  windows_hit={}/{} fp_rows={}",
                profile.name, t, r.normalized, r.windows_hit, r.scored_windows, r.fp_rows
            );
        }
    }
    let quiet: Vec<&FileCase> =
        run.cases.iter().filter(|c| c.rel.starts_with("artificialNoAnomaly/")).collect();
    let mut thresholds: Vec<(&str, f64)> =
        standard_thr.map(|t| ("optimised", t)).into_iter().collect();
    thresholds.extend(args.threshold.map(|t| ("fixed", t)));
    for (what, t) in thresholds {
        let rates: Vec<f64> = quiet.iter().filter_map(|c| c.detections_per_day(t)).collect();
        if !rates.is_empty() {
            #[allow(clippy::cast_precision_loss)] // a handful of files
            let mean = rates.iter().sum::<f64>() / rates.len() as f64;
            println!(
                "artificialNoAnomaly false positives/day at the {what} threshold {t:.4}: {mean:.3}"
            );
        }
    }
    if args.per_file {
        let t = args.threshold.or(standard_thr).unwrap_or(0.5);
        for c in &run.cases {
            let r = nab::score(std::slice::from_ref(c), &PROFILES[0], Some(t));
            println!(
                "  {:<58} raw={:8.3} hit={}/{} fp={}",
                c.rel, r.raw, r.windows_hit, r.scored_windows, r.fp_rows
            );
        }
    }
    Ok(())
}
