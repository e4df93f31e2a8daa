//! Runs a watchpost detector over the Numenta Anomaly Benchmark and scores it.
//!
//! ```text
//! cargo run --release --features nab --example nab -- \
//!     --data NAB/data --out results/watchpost \
//!     [--detector ensemble] [--labels NAB/labels/combined_windows.json] [--threshold 0.5]
//! cargo run --release --features nab --example nab -- \
//!     --data NAB/data --labels NAB/labels/combined_windows.json --loco
//! ```
//!
//! Reads every `DATA/<category>/<file>.csv`, feeds the rows in file order to a
//! fresh detector per file, and writes `OUT/<category>/<file>.csv` with the
//! header `timestamp,value,anomaly_score`. With `--labels` it scores its own
//! output under NAB's three profiles (threshold optimised over the corpus, as
//! NAB does), and with `--threshold` also at that fixed threshold. It reports
//! detections per day on the `artificialNoAnomaly` files, where every
//! detection is a false positive.
//!
//! `--loco` runs leave-one-category-out validation of the default ensemble
//! over the small parameter grid declared in [`grid`]: for each category, the
//! grid point and threshold are chosen on the other categories (best standard
//! score, optimised threshold) and the held-out category is scored with both.
//! It prints what each fold picked, the held-out scores, their mean, the
//! pooled out-of-sample score (every file scored by the choice made without
//! its category) and the in-sample score of the default settings.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use watchpost::detect::{
    DetectorSpec, EnsembleConfig,
    nab::{self, FileCase, Labels, PROFILES, STANDARD, Series},
};

struct Args {
    data: PathBuf,
    out: PathBuf,
    spec: DetectorSpec,
    labels: Option<PathBuf>,
    threshold: Option<f64>,
    per_file: bool,
    loco: bool,
}

const USAGE: &str = "usage: nab --data DIR --out DIR [--detector NAME] [--labels FILE] \
                     [--threshold T] [--per-file]\n       nab --data DIR --labels FILE --loco";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut data, mut out, mut labels, mut threshold) = (None, None, None, None);
    let mut detector = String::from("ensemble");
    let (mut per_file, mut loco) = (false, false);
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
            "--loco" => loco = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let spec: DetectorSpec = detector.parse().map_err(|e| format!("{e}"))?;
    if loco && labels.is_none() {
        return Err(format!("--loco needs --labels\n{USAGE}"));
    }
    Ok(Args {
        data: data.ok_or(format!("--data is required\n{USAGE}"))?,
        out: match out {
            Some(o) => o,
            None if loco => PathBuf::new(),
            None => return Err(format!("--out is required\n{USAGE}")),
        },
        spec,
        labels,
        threshold,
        per_file,
        loco,
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
    if args.loco {
        return loco(&args.data, labels.as_ref().ok_or("--loco needs --labels")?);
    }
    let started = Instant::now();
    let run = nab::run_corpus(&args.data, labels.as_ref(), &args.spec, Some(&args.out))
        .map_err(|e| e.to_string())?;
    let rows: usize = run.cases.iter().map(|c| c.scores.len()).sum();
    let mut probe = args.spec.build();
    probe.update(0, 1.0);
    println!(
        "# detector={} bytes/series={} files={} rows={} out={} ({:.2} s)",
        args.spec.name(),
        probe.memory_bytes(),
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

/// The declared parameter grid of the leave-one-category-out validation:
/// every combination of these settings of the default ensemble.
///
/// The relative floor and the warm-up are not in the grid: they are set by
/// what a live engine needs (quiet on healthy machines, a first score within
/// a few hundred points), not by these files.
fn grid() -> Result<Vec<(String, EnsembleConfig)>, String> {
    let mut out = Vec::new();
    for refractory in [75, 150, 300] {
        for margin in [0.05, 0.1, 0.2] {
            for breakthrough in [true, false] {
                let cfg = EnsembleConfig::default()
                    .with_breakthrough(breakthrough)
                    .with_refractory(refractory)
                    .and_then(|c| c.with_breakout_margin(margin))
                    .map_err(|e| e.to_string())?;
                out.push((
                    format!("refractory={refractory} margin={margin} breakthrough={breakthrough}"),
                    cfg,
                ));
            }
        }
    }
    Ok(out)
}

fn category(case: &FileCase) -> &str {
    case.rel.split('/').next().unwrap_or_default()
}

fn subset(cases: &[FileCase], keep: impl Fn(&str) -> bool) -> Vec<FileCase> {
    cases.iter().filter(|c| keep(category(c))).cloned().collect()
}

/// Leave-one-category-out validation over [`grid`].
fn loco(data: &std::path::Path, labels: &Labels) -> Result<(), String> {
    let started = Instant::now();
    let mut series = Vec::new();
    for rel in nab::list_data_files(data).map_err(|e| e.to_string())? {
        let Some(windows) = labels.windows.get(&rel) else {
            eprintln!("warning: {rel} has no labels; left out");
            continue;
        };
        let s = Series::read(data.join(&rel)).map_err(|e| e.to_string())?;
        series.push((rel, s, windows.clone()));
    }
    let grid = grid()?;
    let default_cfg = EnsembleConfig::default();
    let mut runs: Vec<Vec<FileCase>> = Vec::new();
    let mut default_run = None;
    for (name, cfg) in &grid {
        let spec = DetectorSpec::Ensemble(cfg.clone());
        let cases = series
            .iter()
            .map(|(rel, s, w)| FileCase::new(rel, s, w, nab::run_detector(&spec, s)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        if *cfg == default_cfg {
            default_run = Some(runs.len());
        }
        eprintln!("# ran {name}");
        runs.push(cases);
    }
    let mut categories: Vec<String> = series
        .iter()
        .map(|(rel, _, _)| rel.split('/').next().unwrap_or_default().to_owned())
        .collect();
    categories.dedup();
    println!("# leave-one-category-out over {} grid points ({} files)", grid.len(), series.len());
    let mut held_scores = Vec::new();
    let mut pooled = Vec::new();
    for held in &categories {
        let (mut best, mut best_i) = (None::<nab::ProfileScore>, 0);
        for (i, cases) in runs.iter().enumerate() {
            let train = subset(cases, |c| c != held);
            let r = nab::score(&train, &STANDARD, None);
            if best.as_ref().is_none_or(|b| r.normalized > b.normalized) {
                best = Some(r);
                best_i = i;
            }
        }
        let train = best.ok_or("empty grid")?;
        let test = subset(&runs[best_i], |c| c == held);
        let r = nab::score(&test, &STANDARD, Some(train.threshold));
        let quiet: Vec<f64> = test
            .iter()
            .filter(|c| c.rel.starts_with("artificialNoAnomaly/"))
            .filter_map(|c| c.detections_per_day(train.threshold))
            .collect();
        #[allow(clippy::cast_precision_loss)] // a handful of files
        let fp_day =
            if quiet.is_empty() { 0.0 } else { quiet.iter().sum::<f64>() / quiet.len() as f64 };
        println!(
            "held out {held:<22} picked [{}] threshold={:.4} train={:6.2}  held-out score={:6.2} \
             windows_hit={}/{} fp_rows={} fp/day(no-anomaly files)={fp_day:.3}",
            grid[best_i].0,
            train.threshold,
            train.normalized,
            r.normalized,
            r.windows_hit,
            r.scored_windows,
            r.fp_rows
        );
        if r.normalized.is_finite() {
            held_scores.push(r.normalized);
        }
        // pooled: the held-out rows, thresholded at the training threshold
        for c in test {
            let mut c = c;
            for s in &mut c.scores {
                *s = if *s >= train.threshold { 1.0 } else { 0.0 };
            }
            pooled.push(c);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = held_scores.iter().sum::<f64>() / held_scores.len().max(1) as f64;
    println!("held-out mean over the {} categories with windows: {mean:.2}", held_scores.len());
    let p = nab::score(&pooled, &STANDARD, Some(1.0));
    println!(
        "pooled out-of-sample score (all files, each at its fold's choice): {:.2}  windows_hit={}/{} fp_rows={}",
        p.normalized, p.windows_hit, p.scored_windows, p.fp_rows
    );
    let all = runs
        .iter()
        .enumerate()
        .map(|(i, cases)| (i, nab::score(cases, &STANDARD, None)))
        .max_by(|a, b| a.1.normalized.total_cmp(&b.1.normalized).then(b.0.cmp(&a.0)));
    if let Some((i, r)) = all {
        println!("chosen on all four categories: [{}] score={:.2}", grid[i].0, r.normalized);
    }
    if let Some(i) = default_run {
        let r = nab::score(&runs[i], &STANDARD, None);
        let f = nab::score(&runs[i], &STANDARD, Some(watchpost::detect::DEFAULT_THRESHOLD));
        println!(
            "in-sample, default settings: {:.2} (optimised threshold {:.4}), {:.2} at the fixed threshold {}",
            r.normalized,
            r.threshold,
            f.normalized,
            watchpost::detect::DEFAULT_THRESHOLD
        );
    }
    println!("# {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
